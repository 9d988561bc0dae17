"""DuoRC, HotpotQA and bAbI into the examples frame (answers located in the context by search)."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import pandas as pd

from bert_insight._compat import keywords_only, renamed
from bert_insight.data._files import as_local_path, bundled_path, locate_answer, read_json, read_text
from bert_insight.data.examples import make_frame, validate_examples
from bert_insight.errors import BertInsightInputError

BUNDLED_DUORC = "duorc_selfrc_dev_slice.json.gz"
BUNDLED_HOTPOTQA = "hotpotqa_dev_distractor_first10.json.gz"
#: The bAbI English 1k set, one gzipped file per task and split (CC BY 3.0).
BUNDLED_BABI_DIR = "babi_en_1k"


def _located_answers(context: str, texts: list[str], prefer: list[tuple[int, int]] = ()) -> list[dict[str, Any]]:
    """The given answer texts that occur in ``context``, with their answer_start (duplicates dropped)."""
    answers, seen = [], set()
    for text in texts:
        hit = locate_answer(context, text, prefer)
        if hit is not None and hit not in seen:
            seen.add(hit)
            answers.append({"text": hit[1], "answer_start": hit[0]})
    return answers


def _source(path: str | os.PathLike | None, bundled: str, what: str) -> tuple[Path, str]:
    if path is None:
        return bundled_path(bundled), f"bundled:{bundled}"
    local = as_local_path(path, what)
    return local, str(local)


@renamed(path="source")
def load_duorc(source: str | os.PathLike | None = None) -> pd.DataFrame:
    """DuoRC (SelfRC or ParaphraseRC) questions as an examples frame.

    ``source``: None (the bundled slice) or a DuoRC json (.json / .json.gz / .zip): either the original layout (a list of movies
    ``{id, title, plot, qa: [{id, question, answers, no_answer}]}``) or rows of the Hugging Face
    layout ``{plot_id, plot, title, question_id, question, answers, no_answer}``. None = the bundled
    slice (one SelfRC dev movie, "The Forbidden Kingdom").

    DuoRC gives answers as text only, so each is searched in the plot as whole words (exact case,
    then ignoring case, then without trailing punctuation). Returns a DataFrame with columns
    example_id (the question id), question, context (the plot), answers (the located answers),
    is_impossible (no_answer, or no answer text found in the plot), title, plus answer_texts (the
    answers as given), answer_found (bool), no_answer (bool), plot_id.
    """
    path, source = _source(source, BUNDLED_DUORC, "load_duorc")
    data = read_json(path)
    rows = data if isinstance(data, list) else data.get("data", []) if isinstance(data, dict) else []
    if not rows or not isinstance(rows[0], dict) or not ({"plot", "qa"} <= rows[0].keys() or "question" in rows[0]):
        raise BertInsightInputError(
            f"{source} is not in a DuoRC layout: expected a list of movies {{id, title, plot, qa}} or of "
            "question rows {plot_id, plot, title, question_id, question, answers, no_answer}.")
    if "qa" in rows[0]:  # original layout: one item per movie
        rows = [{"plot_id": movie.get("id", ""), "plot": movie["plot"], "title": movie.get("title", ""),
                 "question_id": qa["id"], "question": qa["question"], "answers": qa.get("answers", []),
                 "no_answer": qa.get("no_answer", False)} for movie in rows for qa in movie["qa"]]
    records = []
    for row in rows:
        texts = [t for t in row.get("answers", []) if isinstance(t, str)]
        answers = [] if row.get("no_answer") else _located_answers(row["plot"], texts)
        records.append({
            "example_id": str(row["question_id"]), "question": row["question"], "context": row["plot"],
            "answers": answers, "is_impossible": not answers, "title": row.get("title", ""),
            "answer_texts": texts, "answer_found": bool(answers), "no_answer": bool(row.get("no_answer")),
            "plot_id": row.get("plot_id", ""),
        })
    return validate_examples(make_frame(records, {"dataset": "duorc", "source": source}))


def _hotpot_paragraphs(item: dict[str, Any]) -> tuple[list[tuple[str, list[str]]], list[tuple[str, int]]]:
    """(title, sentences) paragraphs and (title, sentence index) supporting facts, in either layout."""
    context, facts = item["context"], item.get("supporting_facts", [])
    if isinstance(context, dict):  # Hugging Face layout: {"title": [...], "sentences": [[...], ...]}
        paragraphs = list(zip(context["title"], context["sentences"]))
    else:  # official layout: [[title, [sentences]], ...]
        paragraphs = [(title, sentences) for title, sentences in context]
    if isinstance(facts, dict):
        facts = list(zip(facts["title"], facts["sent_id"]))
    return paragraphs, [(str(title), int(index)) for title, index in facts]


HOTPOTQA_SETTINGS = ("full", "supporting_facts", "distractor")


def _hotpot_context(paragraphs: list[tuple[str, list[str]]], keep: list[tuple[int, list[int]]]
                    ) -> tuple[str, dict[tuple[str, int], tuple[int, int]], list[tuple[int, int]]]:
    """The context of the kept (paragraph position, sentence indices): one line per paragraph, "<title>:
    <sentence> <sentence> ...". Also (title, sentence index) -> (char_start, char_end) and every
    non-empty sentence's span in context order."""
    lines, spans, in_order, offset = [], {}, [], 0
    for position, indices in keep:
        title, sentences = paragraphs[position]
        line = f"{title}:"
        for index in indices:
            sentence = sentences[index].strip()
            line += " "
            span = (offset + len(line), offset + len(line) + len(sentence))
            spans[(title, index)] = span
            if sentence:  # an empty sentence is no sentence (and would be a span without words)
                in_order.append(span)
            line += sentence
        lines.append(line)
        offset += len(line) + 1  # the "\n" joining paragraphs
    return "\n".join(lines), spans, in_order


def _hotpot_keep(paragraphs: list[tuple[str, list[str]]], facts: list[tuple[str, int]], setting: str, *,
                 max_words: int, rng: random.Random, example_id: str) -> list[tuple[int, list[int]]]:
    """Which paragraphs and sentences ``setting`` keeps, in their original order."""
    everything = [(position, list(range(len(sentences)))) for position, (_, sentences) in enumerate(paragraphs)]
    if setting == "full":
        return everything
    fact_titles = {title for title, _ in facts}
    if setting == "supporting_facts":
        wanted = set(facts)
        keep = [(position, [i for i in range(len(sentences)) if (title, i) in wanted])
                for position, (title, sentences) in enumerate(paragraphs)]
        keep = [(position, indices) for position, indices in keep if indices]
        if not keep:
            raise BertInsightInputError(
                f"load_hotpotqa(setting='supporting_facts'): question {example_id!r} has no supporting fact that "
                "names a sentence of its paragraphs (test files carry none); use setting='full' or 'distractor'.")
        return keep
    # distractor: leave out whole non-supporting paragraphs, in a seeded order, until the context is short
    dropped: set[int] = set()
    order = [position for position, (title, _) in enumerate(paragraphs) if title not in fact_titles]
    rng.shuffle(order)
    for position in order:
        kept = [item for item in everything if item[0] not in dropped]
        if len(_hotpot_context(paragraphs, kept)[0].split()) <= max_words:
            break
        dropped.add(position)
    return [item for item in everything if item[0] not in dropped]


@renamed(path="source")
def load_hotpotqa(source: str | os.PathLike | None = None, *, setting: str = "full", max_words: int = 350,
                  seed: int = 0) -> pd.DataFrame:
    """HotpotQA questions as an examples frame, the paragraphs joined into one context.

    ``source``: None (the bundled slice) or a HotpotQA json (.json / .json.gz / .zip) in the Hugging Face layout (context =
    {title, sentences}, supporting_facts = {title, sent_id}) or the official one (lists of pairs).
    None = the bundled slice (the first 10 questions of dev, distractor setting).

    ``setting`` (van Aken et al. 2019, section 3.1): "full" = every given paragraph; "supporting_facts"
    = only the supporting sentences, each paragraph's line keeping its "<title>:" prefix (the paper's
    "HotpotQA Support Only (SP)"); "distractor" = the paper's reduced distractor setting: whole
    non-supporting paragraphs are left out, in an order seeded by ``seed`` (and the question's id),
    until the context has at most ``max_words`` words (350: about 512 word pieces) or no distractor is
    left; supporting paragraphs are always kept.

    The context is one line per paragraph, "<title>: <sentence> <sentence> ...". The answer is
    searched in the supporting sentences first, then anywhere; yes/no answers are not spans.
    Returns a DataFrame with columns example_id (the HotpotQA id, else "hotpotqa-<position in file>"),
    question, context, answers, is_impossible (no answer span found), title (the supporting
    paragraphs' titles joined by " | "), plus answer_text (as given), answer_found (bool), type, level,
    supporting_facts (list of (title, sentence index)), supporting_spans (list of (char_start,
    char_end) of those sentences in the context; facts pointing past a paragraph's end are skipped),
    sentence_spans ((char_start, char_end) of every non-empty sentence in the context, in order; the
    title prefix is not part of a sentence). ``attrs``: dataset, source, setting (and max_words, seed
    for "distractor").
    """
    if setting not in HOTPOTQA_SETTINGS:
        raise BertInsightInputError(f"load_hotpotqa: setting={setting!r}; pass one of {list(HOTPOTQA_SETTINGS)}.")
    if setting == "distractor" and (isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1):
        raise BertInsightInputError(f"load_hotpotqa: max_words={max_words!r}; pass a positive int (350 words is "
                                    "about 512 word pieces).")
    path, source = _source(source, BUNDLED_HOTPOTQA, "load_hotpotqa")
    data = read_json(path)
    if not isinstance(data, list) or not data or not {"question", "answer", "context"} <= set(data[0]):
        raise BertInsightInputError(
            f"{source} is not in the HotpotQA layout: expected a list of {{question, answer, context, "
            "supporting_facts}} items.")
    records = []
    for position, item in enumerate(data):
        example_id = str(item.get("id") or item.get("_id") or f"hotpotqa-{position:05d}")
        paragraphs, facts = _hotpot_paragraphs(item)
        # seeded per question, so a question's context does not depend on which others are in the file
        keep = _hotpot_keep(paragraphs, facts, setting, max_words=max_words,
                            rng=random.Random(f"{seed}:{example_id}"), example_id=example_id)
        context, spans, sentence_spans = _hotpot_context(paragraphs, keep)
        supporting_spans = [spans[fact] for fact in facts if fact in spans]
        answers = _located_answers(context, [item["answer"]], supporting_spans)
        records.append({
            "example_id": example_id,
            "question": item["question"], "context": context, "answers": answers, "is_impossible": not answers,
            "title": " | ".join(dict.fromkeys(title for title, _ in facts)),
            "answer_text": item["answer"], "answer_found": bool(answers), "type": item.get("type"),
            "level": item.get("level"), "supporting_facts": facts, "supporting_spans": supporting_spans,
            "sentence_spans": sentence_spans,
        })
    attrs = {"dataset": "hotpotqa", "source": source, "setting": setting,
             **({"max_words": max_words, "seed": seed} if setting == "distractor" else {})}
    return validate_examples(make_frame(records, attrs))


def _babi_candidates(folder: Path, task: int, split: str) -> list[Path]:
    return sorted([*folder.glob(f"qa{task}_*_{split}.txt"), *folder.glob(f"qa{task}_*_{split}.txt.gz")])


def _babi_file(path_or_dir: str | os.PathLike | None, task: int, split: str) -> tuple[Path, str]:
    if path_or_dir is None:
        matches = _babi_candidates(bundled_path(BUNDLED_BABI_DIR), task, split)
        if not matches:  # a broken install: the bundled set is complete
            raise BertInsightInputError(f"the bundled bAbI file qa{task}_*_{split}.txt.gz is missing from "
                                        f"{bundled_path(BUNDLED_BABI_DIR)}; reinstall bert_insight or pass the "
                                        "folder of the bAbI 'en' tasks.")
        return matches[0], f"bundled:{BUNDLED_BABI_DIR}/{matches[0].name}"
    local = as_local_path(path_or_dir, "load_babi")
    if local.is_file():
        return local, str(local)
    for folder in (local, local / "en"):
        matches = _babi_candidates(folder, task, split)
        if matches:
            return matches[0], str(matches[0])
    raise BertInsightInputError(
        f"no bAbI file qa{task}_*_{split}.txt in {str(local)!r} (or its en/ folder). Pass the folder that "
        "holds the official qa1_..._train.txt / _test.txt files, or one such file.")


def _babi_questions(text: str, source: str):
    """(story index, line id, statements so far as (line id, text), question, answer, supporting ids) for
    every question line of a bAbI file."""
    story_index, statements = 0, []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        line_id, _, rest = line.partition(" ")
        if not line_id.isdigit():
            raise BertInsightInputError(
                f"{source} line {line_number} does not start with a line id: {line!r}. Expected the official "
                "bAbI format 'ID text' / 'ID question<TAB>answer<TAB>supporting ids'.")
        if line_id == "1":
            story_index, statements = story_index + 1, []
        if "\t" not in rest:
            statements.append((int(line_id), rest.strip()))
            continue
        question, answer, support = (rest.split("\t") + ["", ""])[:3]
        yield story_index, line_id, list(statements), question.strip(), answer.strip(), [int(i) for i in support.split()]


def _babi_candidate_answers(path: Path, source_given: bool, task: int, split: str, source: str) -> list[str]:
    """Every distinct answer of the task, over its train and its test file (sorted), so that both splits'
    contexts list the same candidates."""
    other = "test" if split == "train" else "train"
    if source_given:
        siblings = _babi_candidates(path.parent, task, other)
        if not siblings:
            raise BertInsightInputError(
                f"load_babi(candidates=True) lists every answer of task {task} from its train and test files, but "
                f"there is no qa{task}_*_{other}.txt next to {source}. Pass the folder holding both files.")
        other_path = siblings[0]
    else:
        other_path = _babi_file(None, task, other)[0]
    answers = set()
    for file_path in (path, other_path):
        answers.update(q[4] for q in _babi_questions(read_text(file_path), str(file_path)) if q[4])
    return sorted(answers)


@keywords_only("task", "split")
@renamed(path_or_dir="source")
def load_babi(source: str | os.PathLike | None = None, *, task: int = 1, split: str = "test",
              candidates: bool = False) -> pd.DataFrame:
    """bAbI questions (official text format) as an examples frame.

    ``source``: None (the bundled English 1k set: all 20 tasks, train and test), a bAbI task file
    (.txt or .txt.gz), or a folder holding ``qa{task}_*_{split}.txt`` (or its ``en/`` subfolder).

    Each question's context is its story's statements so far, joined by spaces (question lines are
    left out). The answer is searched in the supporting statements first, then anywhere; answers
    that are not words of the story (yes/no, counts, lists) leave answers empty -- unless
    ``candidates``: then every context ends with " Candidates: a b c ...", every distinct answer of
    the task (over its train and test files, sorted; a list answer such as "n,w" is one candidate),
    and an answer not in the story is located in that list (is_impossible False). This is how van
    Aken et al. 2019 made bAbI a span task. example_id does not depend on ``candidates``.

    Returns a DataFrame with columns example_id ("babi-qa<task>-<split>-<story>-<line id>"), question,
    context, answers, is_impossible (no answer span found), title ("qa<task> story <n>"), plus
    answer_text (as given), answer_found (bool), task, story_index, supporting_fact_ids (the story line
    ids), supporting_spans ((char_start, char_end) of those lines in the context), sentence_spans (of
    every story statement in the context), and with ``candidates`` answer_in_story (bool). ``attrs``:
    dataset, task, split, source, candidates (bool), candidate_answers (the appended list, or []).
    """
    if task not in range(1, 21):
        raise BertInsightInputError(f"task must be an int from 1 to 20, got {task!r}.")
    if split not in ("train", "test"):
        raise BertInsightInputError(f"split must be 'train' or 'test', got {split!r}.")
    path, source_name = _babi_file(source, task, split)
    named = re.match(r"qa(\d+)_.*?(?:_(train|test))?\.txt(?:\.gz)?$", path.name)
    if named:  # an explicit file says its own task and split
        task, split = int(named.group(1)), named.group(2) or split
    listed = _babi_candidate_answers(path, source is not None, task, split, source_name) if candidates else []
    suffix = " Candidates: " + " ".join(listed) if candidates else ""
    records = []
    for story_index, line_id, statements, question, answer, fact_ids in _babi_questions(read_text(path), source_name):
        spans, offset = {}, 0
        for statement_id, statement in statements:
            spans[statement_id] = (offset, offset + len(statement))
            offset += len(statement) + 1
        story = " ".join(statement for _, statement in statements)
        supporting_spans = [spans[i] for i in fact_ids if i in spans]
        # the story is a prefix of the context, so offsets found in it hold in the context too
        answers = _located_answers(story, [answer], supporting_spans)
        in_story = bool(answers)
        if candidates and not answers and answer in listed:
            start = len(story) + len(" Candidates: ") + sum(len(c) + 1 for c in listed[:listed.index(answer)])
            answers = [{"text": answer, "answer_start": start}]
        records.append({
            "example_id": f"babi-qa{task}-{split}-{story_index}-{line_id}", "question": question,
            "context": story + suffix, "answers": answers, "is_impossible": not answers,
            "title": f"qa{task} story {story_index}", "answer_text": answer, "answer_found": bool(answers),
            "task": task, "story_index": story_index, "supporting_fact_ids": fact_ids,
            "supporting_spans": supporting_spans, "sentence_spans": list(spans.values()),
            **({"answer_in_story": in_story} if candidates else {}),
        })
    attrs = {"dataset": "babi", "task": task, "split": split, "source": source_name, "candidates": bool(candidates),
             "candidate_answers": listed}
    return validate_examples(make_frame(records, attrs))
