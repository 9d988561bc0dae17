"""QA probing tasks of van Aken et al. 2019 ("How does BERT answer questions?", section 3.2) in the
edge-probing format of :mod:`bert_insight.data.edge_tasks`.

* :func:`context_sentences`: the sentences of every example's context, with which of them support the
  answer (bAbI / HotpotQA: the given supporting facts; SQuAD: the sentence holding the answer).
* :func:`supporting_facts_task`: "Supporting Facts": one text per example (question words, then
  context words, read by the encoder as a sentence pair), one binary target per context sentence:
  span1 = the question, span2 = the sentence, label "supporting" or none.
* :func:`question_type_task`: "Question Type Classification": TREC (Li and Roth 2002) from nltk's
  ``qc`` corpus, one target per question (the whole question), its coarse or fine class. Its licence
  is "research use", so it is never bundled: pass the folder holding ``nltk_data/`` (../shared/data).
"""

from __future__ import annotations

import bisect
import os
import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bert_insight.data.edge_tasks import EdgeTask, check_splits, make_task
from bert_insight.data.examples import first_answer_span, validate_examples
from bert_insight.errors import BertInsightInputError

SENTENCE_COLUMNS = ("example_id", "sentence_index", "char_start", "char_end", "text", "is_supporting")
SUPPORTING_LABEL = "supporting"
#: Extra target columns of :func:`supporting_facts_task` (the sentence each target is about).
SUPPORTING_TARGET_COLUMNS = ("example_id", "sentence_index", "char_start", "char_end")

# ---- sentence splitting (SQuAD-style contexts without given sentences) -------------------------------
#: Words that end in a period without ending the sentence (lower case, without the final period).
#: "etc." is left out on purpose: it ends a sentence at least as often as it continues one.
ABBREVIATIONS = frozenset("""
    mr mrs ms dr prof sr jr st mt ft rev gen col lt sgt capt cmdr adm gov sen rep pres supt insp hon
    messrs mme mlle fr br sra srta vs vol no nos op pp ch fig figs eq approx ca cf al inc ltd co corp
    bros dept univ assn est jan feb mar apr jun jul aug sep sept oct nov dec
""".split())
# End punctuation (maybe closing quotes/brackets), whitespace, then what can open a sentence.
_BOUNDARY = re.compile(r"""[.!?]+["'\u201d\u2019)\]]*(\s+)(?=["'\u201c\u2018(\[]?[A-Z0-9])""")
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # "U.S", "e.g", "i.e", "Ph.D" before the final period


def _is_abbreviation(text: str, punct_start: int) -> bool:
    """Whether the word ending at the period at ``punct_start`` is an abbreviation or an initial."""
    if text[punct_start] != ".":
        return False
    word_start = max(text.rfind(" ", 0, punct_start), text.rfind("\n", 0, punct_start),
                     text.rfind("\t", 0, punct_start)) + 1
    word = text[word_start:punct_start].lstrip("\"'\u201c\u2018([")
    if not word:
        return False
    if text[punct_start:punct_start + 2] == "..":  # an ellipsis ends a sentence like any other
        return False
    return (word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isalpha())
            or _DOTTED.fullmatch(word) is not None)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Half-open character spans of the sentences of ``text``, by a fixed rule (no trained model, so
    the same text always splits the same way): a sentence ends at . ! or ? (plus any closing quotes or
    brackets) followed by whitespace and an upper-case letter, a digit or an opening quote, unless the
    period ends an abbreviation ("Mr.", "e.g.", "U.S.", see :data:`ABBREVIATIONS`) or a single initial
    ("J. R. R. Tolkien"). Spans hold no leading or trailing whitespace; empty pieces are dropped."""
    pieces, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if _is_abbreviation(text, match.start()):
            continue
        pieces.append((start, match.start(1)))
        start = match.end(1)
    pieces.append((start, len(text)))
    spans = []
    for begin, end in pieces:
        chunk = text[begin:end]
        stripped = chunk.strip()
        if stripped:
            begin += len(chunk) - len(chunk.lstrip())
            spans.append((begin, begin + len(stripped)))
    return spans


# ---- sentences of the contexts ------------------------------------------------------------------------
def _spans(value: Any) -> list[tuple[int, int]] | None:
    """A cell holding (start, end) pairs as a list of int tuples; None for a missing cell."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return [(int(start), int(end)) for start, end in value]


def _supporting_rule(examples: pd.DataFrame) -> str:
    return "supporting_spans" if "supporting_spans" in examples.columns else "answer_sentence"


def context_sentences(examples: pd.DataFrame) -> pd.DataFrame:
    """The sentences of every example's context and whether each supports the answer.

    Sentences: the examples' ``sentence_spans`` where given (``load_babi``: one per story statement;
    ``load_hotpotqa``: one per given sentence, the paragraph's "Title:" prefix not part of it), else
    :func:`split_sentences` (a fixed regex rule; SQuAD). Supporting: with a ``supporting_spans`` column
    (bAbI, HotpotQA) a sentence that overlaps a supporting span; otherwise (SQuAD) the sentence holding
    the first gold answer's start, as van Aken et al. did.

    Returns a DataFrame with columns example_id, sentence_index (0-based within the context),
    char_start, char_end (half-open offsets into the example's context), text (the context's
    characters there), is_supporting (bool); examples in the given order, sentences in context order.
    ``attrs``: dataset (when the examples say it) and rule ("supporting_spans" / "answer_sentence").

    Raises BertInsightInputError (naming them) when some examples have neither supporting spans nor a
    gold answer.
    """
    attrs = dict(getattr(examples, "attrs", {}) or {})
    examples = validate_examples(examples, allow_empty=False)
    rule = _supporting_rule(examples)
    has_sentences = "sentence_spans" in examples.columns
    rows, lacking = [], []
    for example in examples.to_dict("records"):
        context = example["context"]
        given = _spans(example.get("sentence_spans")) if has_sentences else None
        spans = [span for span in given if span[1] > span[0]] if given is not None else split_sentences(context)
        if rule == "supporting_spans":
            support = _spans(example.get("supporting_spans")) or []
            flags = [any(s < e2 and s2 < e for s2, e2 in support if e2 > s2) for s, e in spans]
        else:
            answer = first_answer_span(example)
            support = [] if answer is None else [answer]
            # the sentence holding the answer's start; one starting later if the start sits between two
            index = None if answer is None else next(
                (i for i, (s, e) in enumerate(spans) if answer[0] < e), None)
            flags = [i == index for i in range(len(spans))]
        if not support:
            lacking.append(example["example_id"])
        for index, ((start, end), flag) in enumerate(zip(spans, flags)):
            rows.append((example["example_id"], index, start, end, context[start:end], bool(flag)))
    if lacking:
        what = ("an empty supporting_spans list" if rule == "supporting_spans"
                else "no gold answer (and no supporting_spans column)")
        raise BertInsightInputError(
            f"context_sentences: {len(lacking)} example(s) have {what}, so no sentence can be marked as "
            f"supporting: {lacking[:5]}{' ...' if len(lacking) > 5 else ''}. Pass examples with a "
            "supporting_spans column (load_babi, load_hotpotqa) or with answers (list of {'text', "
            "'answer_start'}), or drop these rows (e.g. examples[~examples['is_impossible']]).")
    frame = pd.DataFrame(rows, columns=list(SENTENCE_COLUMNS))
    for column in ("sentence_index", "char_start", "char_end"):
        frame[column] = frame[column].astype("int64")
    frame["is_supporting"] = frame["is_supporting"].astype(bool)
    frame.attrs = {**({"dataset": attrs["dataset"]} if "dataset" in attrs else {}), "rule": rule}
    return frame


# ---- supporting facts -----------------------------------------------------------------------------------
_WORD = re.compile(r"\S+")


def _group_splits(examples: pd.DataFrame, dev_fraction: float, seed: int) -> tuple[dict[str, str], str]:
    """example_id -> split, and how it was decided: the examples' own ``split`` column, else whole groups
    (title, or the example itself without one) drawn in a seeded order, about ``dev_fraction`` to dev."""
    if "split" in examples.columns:
        splits = examples["split"].astype(str)
        unknown = sorted(set(splits) - {"train", "dev", "test"})
        if unknown:
            raise BertInsightInputError(f"supporting_facts_task: the examples' split column holds {unknown[:5]}; "
                                        "use train / dev / test, or drop the column to split by title.")
        return dict(zip(examples["example_id"], splits)), "the examples' split column"
    if not 0 <= dev_fraction < 1:
        raise BertInsightInputError(f"supporting_facts_task: dev_fraction={dev_fraction!r}; pass a number in [0, 1).")
    titles = examples["title"].astype(str) if "title" in examples.columns else pd.Series([""] * len(examples))
    # an example without a title is a group of its own, so it never drags others along
    groups = [title if title.strip() else f"example:{example_id}"
              for title, example_id in zip(titles, examples["example_id"])]
    unique = sorted(set(groups))
    n_dev = int(round(dev_fraction * len(unique)))
    if dev_fraction > 0 and len(unique) > 1:
        n_dev = min(max(n_dev, 1), len(unique) - 1)  # both sides non-empty whenever that is possible
    dev = set(np.random.default_rng(seed).permutation(np.array(unique, dtype=object))[:n_dev])
    return ({example_id: "dev" if group in dev else "train" for example_id, group in zip(examples["example_id"], groups)},
            f"whole groups (title, else example_id), seed {seed}, {n_dev} of {len(unique)} groups to dev")


def supporting_facts_task(examples: pd.DataFrame, *, dev_fraction: float = 0.25, seed: int = 0,
                          name: str | None = None) -> EdgeTask:
    """van Aken et al.'s "Supporting Facts" probing task: does this context sentence support the answer
    to this question?

    One text per example: the question's words, then the context's words (both split on whitespace;
    ``n_words_a`` = the question's word count, so the encoder reads them as a sentence pair). One
    target per context sentence (:func:`context_sentences`): span1 = the whole question [0, n_words_a),
    span2 = the sentence's words, labels ("supporting",) or () -- a binary task, F1 is the
    "supporting" label's. Contexts of a single sentence are left out (nothing to tell apart) and
    counted in ``report``.

    Splits: the examples' ``split`` column (train / dev / test) when it has one; otherwise whole
    groups (``title``: an article for SQuAD, a story for bAbI; the example itself without a title) in
    an order seeded by ``seed``, about ``dev_fraction`` of them to "dev", the rest to "train".
    ``name`` defaults to "supporting_facts_<dataset>" (``examples.attrs["dataset"]``).

    Returns an :class:`EdgeTask`: texts split, text_id (= example_id), words, n_words_a; targets split,
    text_id, target_id, span1_start, span1_end, span2_start, span2_end, labels, plus example_id,
    sentence_index, char_start, char_end (the sentence's offsets in the context). ``info``: dataset,
    source, supporting_rule, split_rule.
    """
    attrs = dict(getattr(examples, "attrs", {}) or {})
    examples = validate_examples(examples, allow_empty=False)
    dataset = str(attrs.get("dataset") or "examples")
    name = name or f"supporting_facts_{dataset}"
    sentences = context_sentences(examples)
    split_of, split_rule = _group_splits(examples, dev_fraction, seed)
    by_example = dict(iter(sentences.groupby("example_id", sort=False)))
    texts, targets, made, dropped = [], [], Counter(), Counter()
    for example in examples.itertuples(index=False):
        split = split_of[example.example_id]
        rows = by_example.get(example.example_id)
        if rows is None:  # given sentence_spans that name no sentence
            dropped[(split, "context without sentences")] += 1
            continue
        if len(rows) < 2:
            dropped[(split, "single-sentence context")] += 1
            continue
        question = example.question.split()
        matches = list(_WORD.finditer(example.context))
        starts, ends = [m.start() for m in matches], [m.end() for m in matches]
        n_a = len(question)
        kept = []
        for row in rows.itertuples(index=False):
            first, stop = bisect.bisect_right(ends, row.char_start), bisect.bisect_left(starts, row.char_end)
            if stop <= first:  # a given sentence span of whitespace only
                dropped[(split, "sentence without words")] += 1
                continue
            kept.append((split, example.example_id, 0, n_a, n_a + first, n_a + stop,
                         (SUPPORTING_LABEL,) if row.is_supporting else (), example.example_id,
                         int(row.sentence_index), int(row.char_start), int(row.char_end)))
        if len(kept) < 2:
            dropped[(split, "single-sentence context")] += len(kept)
            continue
        texts.append((split, example.example_id, question + [m.group() for m in matches], n_a))
        targets.extend(kept)
        made[split] += len(kept)
    if not targets:
        raise BertInsightInputError(
            f"supporting_facts_task: every one of the {len(examples)} contexts has a single sentence, so there "
            "is no sentence to tell apart from another; pass examples whose contexts hold two or more sentences "
            "(context_sentences(examples) shows how they split).")
    present = [s for s in ("train", "dev", "test") if s in set(split_of.values())]
    report = [(split, "made", "", made[split]) for split in present]
    report += [(split, "dropped", reason, n) for (split, reason), n in sorted(dropped.items()) if n]
    rule = sentences.attrs["rule"]
    info = {
        "dataset": dataset, "source": attrs.get("source"),
        "supporting_rule": ("a sentence overlapping one of the example's supporting_spans (the given supporting facts)"
                            if rule == "supporting_spans" else
                            "the sentence holding the first gold answer's start (as van Aken et al. 2019 did for "
                            "SQuAD); sentences split by bert_insight.data.qa_probing.split_sentences"),
        "split_rule": split_rule, "paper": "van Aken et al. 2019, section 3.2, Supporting Facts",
    }
    return make_task(name, texts, targets, labels=(SUPPORTING_LABEL,), two_spans=True, report=report, info=info,
                     target_columns=SUPPORTING_TARGET_COLUMNS)


# ---- question type (TREC) ---------------------------------------------------------------------------------
QC_FILES = {"train": "train.txt", "test": "test.txt"}
#: The six coarse TREC classes of Li and Roth (2002).
COARSE_QUESTION_TYPES = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
_QC_LICENCE = "research use (Li and Roth 2002, via nltk_data); never bundled"


def _qc_texts(source: str | os.PathLike | None) -> tuple[dict[str, str], str]:
    """split -> the text of qc's train.txt / test.txt, and where they came from. ``source``: a folder
    holding nltk_data/ (or nltk_data itself, or its corpora/), qc.zip, or an unzipped qc folder."""
    hint = ("Pass the folder holding nltk_data/ (e.g. ../shared/data), the nltk_data folder, or "
            "nltk_data/corpora/qc.zip itself.")
    if source is None:
        raise BertInsightInputError(
            "question_type: the TREC question classification corpus (nltk's qc, licence 'research use') is not "
            f"bundled. {hint}")
    path = Path(source).expanduser()
    if not path.exists():
        raise BertInsightInputError(f"question_type: no such file or folder {str(path)!r}. {hint}")
    if path.is_dir():
        for base in (path / "nltk_data" / "corpora", path / "corpora", path):
            if (base / "qc.zip").is_file():
                path = base / "qc.zip"
                break
            folder = base / "qc" if (base / "qc").is_dir() else base
            if all((folder / name).is_file() for name in QC_FILES.values()):
                # latin-1: the corpus is not UTF-8 (one byte > 127 in train.txt) and latin-1 decodes any byte
                return ({split: (folder / name).read_bytes().decode("latin-1") for split, name in QC_FILES.items()},
                        str(folder))
        else:
            raise BertInsightInputError(f"question_type: found no qc.zip or qc/train.txt + qc/test.txt under "
                                        f"{str(path)!r}. {hint}")
    if not zipfile.is_zipfile(path):
        raise BertInsightInputError(f"question_type: {str(path)!r} is not a zip file. {hint}")
    with zipfile.ZipFile(path) as archive:
        members = {Path(member).name: member for member in archive.namelist() if not member.endswith("/")}
        missing = [name for name in QC_FILES.values() if name not in members]
        if missing:
            raise BertInsightInputError(f"question_type: {str(path)!r} holds no {missing}; expected nltk's qc.zip "
                                        "(qc/train.txt, qc/test.txt).")
        return {split: archive.read(members[name]).decode("latin-1") for split, name in QC_FILES.items()}, str(path)


def question_type_task(source: str | os.PathLike | None = None, *, labels: str = "coarse",
                       splits: Sequence[str] | str = ("train", "test")) -> EdgeTask:
    """van Aken et al.'s "Question Type Classification" probing task: TREC question classification (Li
    and Roth 2002; nltk's ``qc`` corpus: 5,452 train and 500 test questions).

    ``source``: the folder holding ``nltk_data/`` (../shared/data), the nltk_data folder, or ``qc.zip``
    (never bundled: its licence is "research use"; None is an error). ``labels``: "coarse" (ABBR, DESC,
    ENTY, HUM, LOC, NUM) or "fine" ("DESC:manner", ...; 50 classes). ``splits``: some of train / test
    (test is what ``edge_probe`` scores on; the corpus has no dev split).

    One target per question: span1 = the whole question (words split on whitespace), one label (a
    multi-class task in the multi-label format). Returns an :class:`EdgeTask`: texts split, text_id
    ("<split>-<line number>"), words; targets split, text_id, target_id, span1_start, span1_end,
    span2_start = span2_end = -1, labels (one class). Lines without a question are dropped and counted
    in ``report``.
    """
    if labels not in ("coarse", "fine"):
        raise BertInsightInputError(f"question_type: labels={labels!r}; pass 'coarse' (6 classes) or 'fine' (50).")
    splits = check_splits("question_type", splits, tuple(QC_FILES), where="TREC (nltk qc) has",
                          hint="; it has no dev split, edge_probe scores on test.")
    raw, where = _qc_texts(source)
    parsed: dict[str, list[tuple[int, str, list[str]]]] = {}
    dropped: Counter = Counter()
    for split, text in raw.items():
        parsed[split] = []
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            label, _, question = line.strip().partition(" ")
            coarse, colon, fine = label.partition(":")
            if not colon or coarse not in COARSE_QUESTION_TYPES or not fine:
                raise BertInsightInputError(
                    f"question_type: {where} {QC_FILES[split]} line {line_number} is not 'COARSE:fine question': "
                    f"{line[:80]!r}. The coarse classes are {list(COARSE_QUESTION_TYPES)}.")
            words = question.split()
            if not words:
                dropped[split] += 1
                continue
            parsed[split].append((line_number, coarse if labels == "coarse" else label, words))
    # the vocabulary covers both files, so it does not depend on which splits were asked for
    vocabulary = (COARSE_QUESTION_TYPES if labels == "coarse"
                  else tuple(sorted({label for rows in parsed.values() for _, label, _ in rows})))
    texts, targets, report = [], [], []
    for split in splits:
        for line_number, label, words in parsed[split]:
            text_id = f"{split}-{line_number}"
            texts.append((split, text_id, words))
            targets.append((split, text_id, 0, len(words), -1, -1, (label,)))
        report.append((split, "made", "", len(parsed[split])))
        if dropped[split]:
            report.append((split, "dropped", "line without a question", dropped[split]))
    info = {"source": where, "licence": _QC_LICENCE, "labels": labels,
            "paper": "van Aken et al. 2019, section 3.2, Question Type Classification (Li and Roth 2002)",
            "caveat": "multi-class task in the multi-label format: each target carries exactly one label"}
    return make_task(f"question_type_{labels}" if labels == "fine" else "question_type", texts, targets,
                     labels=vocabulary, two_spans=False, report=report, info=info)
