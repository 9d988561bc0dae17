"""Builders for the four syntactic edge-probing tasks of Tenney et al. 2019 ("BERT rediscovers the
classical NLP pipeline"): part-of-speech (``pos``), constituents (``consts``), dependencies (``deps``)
and semantic roles (``srl``), all over the English Web Treebank.

The paper took POS, constituents and SRL from OntoNotes 5.0 (LDC, not free) and dependencies from UD
English EWT. Here all four come from EWT: UD English EWT for words, XPOS and dependencies, and the
PropBank EWT annotation (``.gold_skel`` files: gold PTB parse bits and PropBank frames, words masked)
for constituents and SRL. The words of every task are UD EWT's syntactic words (``load_conllu``'s word
column) and ``text_id`` is the UD ``sent_id``, so a sentence has one word sequence in all four tasks;
a skel sentence is matched to its UD sentence by document and sentence number
(:func:`bert_insight.data.conllu.skel_sentence_id`) and used only when both have the same number of
words (then token i is UD word i).

Conventions follow jiant v1 (github.com/nyu-mll/jiant, tag v1.3.2), which made the paper's data:
``probing/data/ud_to_json.py`` (deps), ``probing/data/extract_ontonotes_all.py`` (const, srl) and
``probing/split_constituent_data.py`` (const -> pos / nonterminal). Each builder's docstring says
where it differs. Texts without any target are left out (as jiant's SRL records, one per frame).

``source``: None = small slices bundled with the package (UD EWT train first 260 sentences, UD EWT dev
first 500, and their PropBank skel sentences; train and dev only), or the folder holding
``ud_english_ewt/`` (en_ewt-ud-<split>.conllu[.gz]) and ``propbank_ewt_skel/``
(ewt.<split>.gold_skel[.gz]), e.g. ../shared/data.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bert_insight.data._files import bundled_path
from bert_insight.data.conllu import BUNDLED_CONLLU, load_conllu, skel_bracket_spans, skel_sentence_id, skel_sentences
from bert_insight.data.edge_tasks import SPLITS, EdgeTask, check_splits, make_task
from bert_insight.errors import BertInsightInputError

UD_FOLDER = "ud_english_ewt"
SKEL_FOLDER = "propbank_ewt_skel"
#: Bundled slices per split: (UD EWT CoNLL-U, PropBank EWT skel), names under bert_insight/data/bundled.
BUNDLED = {
    "train": ("edge_probing/ud_ewt_train_first260.conllu.gz", "edge_probing/propbank_ewt_train_first260.gold_skel.gz"),
    "dev": (BUNDLED_CONLLU, "edge_probing/propbank_ewt_dev_first500.gold_skel.gz"),
}
LICENCE = "CC BY-SA 4.0"
UD_CORPUS = "UD English EWT (Silveira et al. 2014; universaldependencies.org/treebanks/en_ewt)"
SKEL_CORPUS = "PropBank EWT (github.com/propbank/propbank-release, data/google/ewt .gold_skel files)"
JIANT = "github.com/nyu-mll/jiant v1.3.2"


# ---- inputs ----------------------------------------------------------------------------------------------
def _split_names(task_name: str, splits: Sequence[str], bundled: bool) -> tuple[str, ...]:
    if bundled:
        return check_splits(task_name, splits, tuple(BUNDLED), where="the bundled slices have",
                            hint="; pass source=<folder of the corpora> for test.")
    return check_splits(task_name, splits, SPLITS, where="EWT has", hint=".")


def _find(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


def _inputs(task_name: str, source: str | os.PathLike | None, splits: Sequence[str], *,
            skel: bool) -> dict[str, tuple]:
    """{split: (UD CoNLL-U path, skel path or None, UD name, skel name)}; one error for all missing files."""
    splits = _split_names(task_name, splits, source is None)
    if source is None:
        return {split: (bundled_path(BUNDLED[split][0]), bundled_path(BUNDLED[split][1]) if skel else None,
                        f"bundled:{BUNDLED[split][0]}", f"bundled:{BUNDLED[split][1]}" if skel else None)
                for split in splits}
    folder = Path(source).expanduser()
    found, missing = {}, []
    for split in splits:
        ud_names = (f"en_ewt-ud-{split}.conllu", f"en_ewt-ud-{split}.conllu.gz")
        ud = _find(folder / UD_FOLDER, ud_names)
        if ud is None:
            missing.append(f"{folder / UD_FOLDER}/{ud_names[0]}[.gz]")
        skel_path = None
        if skel:
            skel_names = (f"ewt.{split}.gold_skel", f"ewt.{split}.gold_skel.gz")
            skel_path = _find(folder / SKEL_FOLDER, skel_names)
            if skel_path is None:
                missing.append(f"{folder / SKEL_FOLDER}/{skel_names[0]}[.gz]")
        found[split] = (ud, skel_path, str(ud), str(skel_path) if skel_path else None)
    if missing:
        needs = f"{UD_FOLDER}/" + (f" and {SKEL_FOLDER}/" if skel else "")
        raise BertInsightInputError(
            f"source={str(folder)!r} should be the folder holding {needs} (e.g. ../shared/data); missing: "
            + ", ".join(missing) + ". Pass that folder, or source=None for the bundled slices.")
    return found


_UD_CACHE: dict[tuple, dict] = {}


def _ud_sentences(path: Path) -> dict[str, dict[str, tuple]]:
    """sent_id -> {"words", "xpos", "head", "deprel"} (tuples, in word order) of a UD file, in file order;
    cached per (path, size, mtime) for the last 3 files, since every builder reads the same ones."""
    stat = Path(path).stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _UD_CACHE:
        words = load_conllu(path)
        sentences: dict[str, dict[str, list]] = {}
        columns = (words[c].tolist() for c in ("sentence_id", "word", "xpos", "head", "deprel"))
        for sentence_id, word, xpos, head, deprel in zip(*columns):  # load_conllu: file order, words 0..n-1
            sentence = sentences.setdefault(sentence_id, {"words": [], "xpos": [], "head": [], "deprel": []})
            for column, value in (("words", word), ("xpos", xpos), ("head", int(head)), ("deprel", deprel)):
                sentence[column].append(value)
        if len(_UD_CACHE) >= 3:  # train, dev, test
            _UD_CACHE.pop(next(iter(_UD_CACHE)))
        _UD_CACHE[key] = {sentence_id: {column: tuple(values) for column, values in sentence.items()}
                          for sentence_id, sentence in sentences.items()}
    return _UD_CACHE[key]


def _info(inputs: dict[str, tuple], corpora: str, caveats: list[str], conventions: str, **extra) -> dict:
    source = {split: {"ud": ud_name, **({"skel": skel_name} if skel_name else {})}
              for split, (_, _, ud_name, skel_name) in inputs.items()}
    return {"source": source, "licence": LICENCE, "corpus": corpora, "caveats": caveats,
            "conventions": conventions, **extra}


def _report(split: str, made: int, dropped: Counter) -> list[tuple]:
    return [(split, "made", "", made)] + [(split, "dropped", reason, n) for reason, n in dropped.items() if n]


def _texts(split: str, sentences: dict, used: Sequence[str]) -> list[tuple]:
    return [(split, sentence_id, sentences[sentence_id]["words"]) for sentence_id in used]


def _word_targets(inputs: dict[str, tuple], target) -> tuple[list, list, list]:
    """Texts, targets and report of a task with one target per UD word: ``target(sentence, i)`` gives
    (span1_start, span1_end, span2_start, span2_end, label) or the reason word i is dropped."""
    texts, targets, report = [], [], []
    for split, (ud_path, _, _, _) in inputs.items():
        sentences = _ud_sentences(ud_path)
        dropped, made, used = Counter(), 0, []
        for sentence_id, sentence in sentences.items():
            n_before = made
            for i in range(len(sentence["words"])):
                made_or_reason = target(sentence, i)
                if isinstance(made_or_reason, str):
                    dropped[made_or_reason] += 1
                    continue
                targets.append((split, sentence_id, *made_or_reason))
                made += 1
            if made > n_before:
                used.append(sentence_id)
        texts += _texts(split, sentences, used)
        report += _report(split, made, dropped)
    return texts, targets, report


# ---- pos -------------------------------------------------------------------------------------------------
def build_pos(source: str | os.PathLike | None = None, *, splits: Sequence[str] = ("train", "dev")) -> EdgeTask:
    """Part-of-speech edge probing: one target per UD EWT word, span1 = [i, i+1), label = its XPOS
    (Penn Treebank tag, e.g. NN, VBZ, -LRB-, and EWT's web tags ADD, GW, NFP, AFX, XX, HYPH).

    jiant took POS from the preterminals (height-1 nodes) of the OntoNotes trees
    (split_constituent_data.py); the PTB tags of EWT are UD's XPOS column, which also covers the UD
    sentences that have no PropBank skel. Words whose XPOS is ``_`` are dropped (counted; none in EWT).
    """
    inputs = _inputs("pos", source, splits, skel=False)

    def target(sentence, i):
        tag = sentence["xpos"][i]
        return "no XPOS (_)" if tag in ("_", "") else (i, i + 1, -1, -1, tag)

    texts, targets, report = _word_targets(inputs, target)
    return make_task("pos", texts, targets, two_spans=False, report=report, info=_info(
        inputs, UD_CORPUS, ["OntoNotes 5.0 POS in the paper; UD English EWT XPOS (PTB tags) here."],
        f"label = XPOS of each word ({JIANT} probing/split_constituent_data.py: pos = height-1 constituents)."))


# ---- deps ------------------------------------------------------------------------------------------------
def build_deps(source: str | os.PathLike | None = None, *, splits: Sequence[str] = ("train", "dev")) -> EdgeTask:
    """Dependency edge probing over UD EWT basic dependencies: span1 = the dependent word [d, d+1),
    span2 = its head word [h, h+1), label = the deprel with its subtype kept (nsubj:pass, obl:tmod,
    compound:prt, ...), as jiant's probing/data/ud_to_json.py (which copies the DEPREL column).

    Differences from jiant: jiant keeps the root relation as a self-loop (span2 = span1, label
    "root"); here it has no head word, so root targets are dropped and counted ("root relation").
    jiant drops whole sentences holding enhanced-dependency empty nodes (ids like 8.1); here the empty
    nodes are skipped (load_conllu) and the sentence's basic dependencies kept. jiant used UD 2.2;
    this reads whatever release ``source`` holds (the bundled slices: UD ~2.16).
    """
    inputs = _inputs("deps", source, splits, skel=False)

    def target(sentence, i):
        head = sentence["head"][i]
        return "root relation" if head < 0 else (i, i + 1, head, head + 1, sentence["deprel"][i])

    texts, targets, report = _word_targets(inputs, target)
    return make_task("deps", texts, targets, two_spans=True, report=report, info=_info(
        inputs, UD_CORPUS, ["UD English EWT as in the paper (jiant used UD 2.2; this is the release in source).",
                            "root relations dropped (jiant: self-loop targets labelled 'root')."],
        f"span1 = dependent, span2 = head, label = deprel with subtypes ({JIANT} probing/data/ud_to_json.py)."))


# ---- consts ----------------------------------------------------------------------------------------------
def constituent_label(label: str) -> str:
    """A PTB node label without function tags and indices, as jiant's constituents_to_record:
    NP-SBJ-1 -> NP, NP=2 -> NP, S-TPC|ADV -> S; -LRB- and friends stay whole."""
    if label.startswith("-") and label.endswith("-"):
        return label
    return label.replace("=", "-").replace("|", "-").split("-")[0] or label


def _skel_matches(split: str, sentences: dict, skel_path: Path, skel_name: str):
    """(skel sentence, sent_id or None, why it is unusable or None) for each skel sentence."""
    for block in skel_sentences(skel_path, skel_name):
        sentence_id = skel_sentence_id(block)
        if sentence_id not in sentences:
            yield block, sentence_id, f"sentence not in UD EWT {split}"
        elif len(sentences[sentence_id]["words"]) != len(block):
            yield block, sentence_id, "word count differs from UD"
        else:
            yield block, sentence_id, None


def build_consts(source: str | os.PathLike | None = None, *,
                 splits: Sequence[str] = ("train", "dev")) -> EdgeTask:
    """Constituent (nonterminal) edge probing from the gold PTB trees in the PropBank EWT skel's
    parse-bit column: one target per nonterminal node, span1 = the words [i, j) it covers, label = its
    category without function tags or indices (:func:`constituent_label`).

    As jiant's nonterminal task (extract_ontonotes_all.py ``constituents_to_record`` over every
    subtree of the tree, then split_constituent_data.py keeping height > 1): every node above the
    preterminal (POS) level counts, the root TOP included, and each node of a unary chain (TOP -> S,
    S -> VP over the same words) is its own target with one label, so a span can appear in several
    targets. Targets are in preorder (a parent before its children). The skel trees have no empty
    elements (traces), so every node covers at least one word.

    Trees of skel sentences that have no UD sentence in the split, or whose leaf count differs from
    the UD word count, are dropped with all their nodes (counted by reason).
    """
    inputs = _inputs("consts", source, splits, skel=True)
    texts, targets, report = [], [], []
    n_without_tree = {}
    for split, (ud_path, skel_path, _, skel_name) in inputs.items():
        sentences = _ud_sentences(ud_path)
        dropped, made, used = Counter(), 0, []
        for block, sentence_id, problem in _skel_matches(split, sentences, skel_path, skel_name):
            nodes = sorted(skel_bracket_spans(block, 5, skel_name, complete=True), key=lambda span: span[3])
            if problem:
                dropped[problem] += len(nodes)
                continue
            for label, start, end, _ in nodes:
                targets.append((split, sentence_id, start, end, -1, -1, constituent_label(label)))
            made += len(nodes)
            if nodes:
                used.append(sentence_id)
        n_without_tree[split] = len(sentences) - len(used)
        texts += _texts(split, sentences, used)
        report += _report(split, made, dropped)
    return make_task("consts", texts, targets, two_spans=False, report=report, info=_info(
        inputs, f"{SKEL_CORPUS} trees over {UD_CORPUS} words",
        ["OntoNotes 5.0 constituents in the paper; the gold PTB trees of EWT (PropBank EWT skel) here."],
        f"every nonterminal incl. TOP and unary-chain nodes, labels without function tags ({JIANT} "
        "probing/data/extract_ontonotes_all.py, probing/split_constituent_data.py).",
        ud_sentences_without_tree=n_without_tree))


# ---- srl -------------------------------------------------------------------------------------------------
def build_srl(source: str | os.PathLike | None = None, *, splits: Sequence[str] = ("train", "dev")) -> EdgeTask:
    """Semantic role edge probing from the PropBank EWT frames (all predicates: verbal, nominal,
    adjectival, light-verb): for each frame (SRL column of the skel), span1 = the predicate (its V
    span), span2 = an argument's span, label = the role as annotated: ARG0..ARG5, ARGA, ARGM-* (TMP,
    LOC, ...), R-* (references) and C-* (continuations) kept, as jiant's extract_ontonotes_all.py
    ``get_frames`` (every span of the frame other than V is a target, C-V included).

    Differences from jiant: jiant writes one record per frame (the sentence repeated); here a sentence
    is one text holding all its frames' targets. A frame without a V span is dropped (counted; jiant
    would have failed on it). Skel sentences with no UD sentence in the split or a different word count
    are dropped with all their arguments (counted by reason).
    """
    inputs = _inputs("srl", source, splits, skel=True)
    texts, targets, report = [], [], []
    n_frames = {}
    for split, (ud_path, skel_path, _, skel_name) in inputs.items():
        sentences = _ud_sentences(ud_path)
        dropped, made, used, frames = Counter(), 0, [], 0
        for block, sentence_id, problem in _skel_matches(split, sentences, skel_path, skel_name):
            n_before = made
            for column in range(8, len(block[0][1])):
                spans = skel_bracket_spans(block, column, skel_name, complete=True)
                predicates = [(start, end) for label, start, end, _ in spans if label == "V"]
                arguments = sorted((start, end, rank, label) for label, start, end, rank in spans if label != "V")
                if problem:
                    dropped[problem] += len(arguments)
                    continue
                if not predicates:
                    dropped["frame without a V span"] += len(arguments)
                    continue
                frames += 1
                p_start, p_end = predicates[-1]  # jiant: the last V span
                for start, end, _, label in arguments:
                    targets.append((split, sentence_id, p_start, p_end, start, end, label))
                made += len(arguments)
            if made > n_before:
                used.append(sentence_id)
        n_frames[split] = frames
        texts += _texts(split, sentences, used)
        report += _report(split, made, dropped)
    return make_task("srl", texts, targets, two_spans=True, report=report, info=_info(
        inputs, f"{SKEL_CORPUS} frames over {UD_CORPUS} words",
        ["OntoNotes 5.0 SRL (CoNLL-2012) in the paper; PropBank EWT (unified PropBank, incl. nominal and "
         "adjectival predicates) here."],
        f"span1 = predicate (V), span2 = argument, all roles incl. R-/C- ({JIANT} "
        "probing/data/extract_ontonotes_all.py get_frames).",
        frames=n_frames))
