"""Edge-probing tasks (Tenney et al. 2019) in one format, whichever corpus they come from.

A task is a set of texts (each a sequence of words) and targets over them: ``span1`` = words
[span1_start, span1_end), an optional ``span2`` (two-span tasks: dependencies, SRL, coreference, SPR,
relations) and a set of labels. This is jiant's edge-probing layout (one JSON record per text:
``{"text": "w1 w2 ...", "targets": [{"span1": [i, j], "span2": [k, m], "label": "X" or [...]}]}``)
kept as two frames, so :func:`read_jiant_json` reads jiant's files (OntoNotes for users who have it)
and :meth:`EdgeTask.to_jiant_json` writes them.

Labels are multi-label as in jiant (sigmoid outputs, one decision per (target, label)). A binary task
(coreference: are the two mentions coreferent?) has one label, which a positive target carries and a
negative one does not, so micro-F1 over its decisions is the F1 of the positive label.

Builders (``load_edge_task(name)``) make the suite from free data; see :data:`EDGE_TASKS`.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bert_insight.data._files import as_local_path, read_text
from bert_insight.errors import BertInsightInputError

TEXT_COLUMNS = ("split", "text_id", "words")
TARGET_COLUMNS = ("split", "text_id", "target_id", "span1_start", "span1_end", "span2_start", "span2_end",
                  "labels")
REPORT_COLUMNS = ("split", "outcome", "reason", "n")
SPLITS = ("train", "dev", "test")

#: Task name -> "module:function" of its builder (imported only when asked for, so a missing optional
#: corpus never breaks the others).
EDGE_TASKS: dict[str, str] = {
    "pos": "bert_insight.data.edge_syntax:build_pos",
    "consts": "bert_insight.data.edge_syntax:build_consts",
    "deps": "bert_insight.data.edge_syntax:build_deps",
    "srl": "bert_insight.data.edge_syntax:build_srl",
    "entities": "bert_insight.data.edge_semantics:build_entities",
    "coref": "bert_insight.data.edge_semantics:build_coref",
    "spr": "bert_insight.data.edge_semantics:build_spr",
    "relations": "bert_insight.data.edge_semantics:build_relations",
    "question_type": "bert_insight.data.qa_probing:question_type_task",
}


@dataclass
class EdgeTask:
    """One edge-probing task.

    ``texts``: split, text_id, words (a tuple of str), and for a task on text pairs (a question and its
    passage) n_words_a: words[:n_words_a] are the first text, the rest the second; the encoder reads
    them as a sentence pair, and spans index the joined words. ``targets``: split, text_id, target_id (unique
    within the task), span1_start, span1_end, span2_start, span2_end (word indices, half-open; span2
    -1/-1 for single-span tasks), labels (a tuple of label names; empty = a negative target of a binary
    task), then any extra columns a builder adds (e.g. where the target came from; kept by ``split`` and
    ``sample``). ``labels``: the label vocabulary, in output order. ``two_spans``: whether span2 is used.
    ``report``: split, outcome ("made" / "dropped"), reason, n: what the builder kept and left out.
    ``info``: source files, licence, caveats (e.g. "SPR2, the paper used SPR1").
    """

    name: str
    texts: pd.DataFrame
    targets: pd.DataFrame
    labels: tuple[str, ...]
    two_spans: bool
    report: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REPORT_COLUMNS)))
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = tuple(str(label) for label in self.labels)
        check_task(self)

    @property
    def binary(self) -> bool:
        """One label: F1 is that (positive) label's."""
        return len(self.labels) == 1

    @property
    def splits(self) -> tuple[str, ...]:
        present = set(self.targets["split"])
        return tuple(split for split in SPLITS if split in present) + tuple(sorted(present - set(SPLITS)))

    def split(self, name: str) -> "EdgeTask":
        """The same task restricted to one split (texts, targets and report rows)."""
        if name not in self.splits:
            raise BertInsightInputError(f"task {self.name!r} has no split {name!r}; it has {list(self.splits)}.")
        return EdgeTask(self.name, self.texts[self.texts["split"] == name].reset_index(drop=True),
                        self.targets[self.targets["split"] == name].reset_index(drop=True), self.labels,
                        self.two_spans, self.report[self.report["split"] == name].reset_index(drop=True),
                        dict(self.info))

    def sample(self, split: str, n_targets: int | None, *, seed: int = 0) -> "EdgeTask":
        """The split with at most ``n_targets`` targets: whole texts drawn in a seeded order until the
        budget is reached (so a text's targets stay together), the last text cut to fit."""
        part = self.split(split)
        if n_targets is None or len(part.targets) <= n_targets:
            return part
        if n_targets < 1:
            raise BertInsightInputError(f"n_targets={n_targets}: ask for at least one target.")
        order = np.random.default_rng(seed).permutation(part.texts["text_id"].to_numpy())
        counts = part.targets.groupby("text_id", sort=False).size()
        chosen, total = [], 0
        for text_id in order:
            if total >= n_targets:
                break
            chosen.append(text_id)
            total += int(counts.get(text_id, 0))
        rank = {text_id: i for i, text_id in enumerate(chosen)}
        targets = part.targets[part.targets["text_id"].isin(rank)].copy()
        targets = targets.iloc[np.argsort(targets["text_id"].map(rank).to_numpy(), kind="stable")][:n_targets]
        texts = part.texts[part.texts["text_id"].isin(set(targets["text_id"]))]
        return EdgeTask(self.name, texts.reset_index(drop=True), targets.reset_index(drop=True), self.labels,
                        self.two_spans, part.report, {**self.info, "sampled": {split: n_targets, "seed": seed}})

    def label_matrix(self) -> np.ndarray:
        """(n_targets, n_labels) bool: which labels each target carries."""
        return label_matrix(self.targets["labels"], self.labels)

    def to_jiant_json(self, directory: str | os.PathLike) -> dict[str, Path]:
        """Write one jiant edge-probing JSON-lines file per split (``<split>.json``); returns their paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for split in self.splits:
            part = self.split(split)
            by_text = {text_id: [] for text_id in part.texts["text_id"]}
            for row in part.targets.itertuples(index=False):
                target = {"span1": [int(row.span1_start), int(row.span1_end)]}
                if self.two_spans:
                    target["span2"] = [int(row.span2_start), int(row.span2_end)]
                target["label"] = list(row.labels)
                by_text[row.text_id].append(target)
            path = directory / f"{split}.json"
            with open(path, "w", encoding="utf-8") as handle:
                split_at = part.texts["n_words_a"] if "n_words_a" in part.texts else [None] * len(part.texts)
                for text_id, words, n_words_a in zip(part.texts["text_id"], part.texts["words"], split_at):
                    info = {"text_id": text_id, **({"n_words_a": int(n_words_a)} if n_words_a is not None else {})}
                    record = {"text": " ".join(words), "targets": by_text[text_id], "info": info}
                    handle.write(json.dumps(record) + "\n")
            paths[split] = path
        return paths

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split} {int((self.targets['split'] == split).sum())}" for split in self.splits)
        return (f"EdgeTask({self.name!r}: {len(self.labels)} labels, {'two spans' if self.two_spans else 'one span'}; "
                f"targets {sizes})")


def check_splits(task_name: str, splits: Sequence[str] | str, allowed: Sequence[str], *,
                 where: str = "this corpus has", hint: str = ". Pass some of those.") -> tuple[str, ...]:
    """``splits`` as a tuple, or one error naming the ``allowed`` ones (``where`` says whose they are)."""
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    unknown = [split for split in splits if split not in allowed]
    if not splits or unknown:
        raise BertInsightInputError(f"edge task {task_name!r}: splits={list(splits)}; {where} only "
                                    f"{list(allowed)}{hint}")
    return splits


def label_matrix(target_labels: Iterable[Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    """(n_targets, n_labels) bool from each target's label tuple, columns in ``vocabulary`` order."""
    index = {label: i for i, label in enumerate(vocabulary)}
    rows = list(target_labels)
    matrix = np.zeros((len(rows), len(index)), dtype=bool)
    for row, labels in enumerate(rows):
        for label in labels:
            matrix[row, index[label]] = True
    return matrix


def _fail(task_name: str, message: str) -> None:
    raise BertInsightInputError(f"edge task {task_name!r}: {message}")


def check_task(task: EdgeTask) -> None:
    """One clear error for a malformed task: missing columns, empty task, a span outside its text or
    empty, a span2 on a single-span task (or none on a two-span one), unknown labels, duplicate ids."""
    name = task.name
    for frame, columns, what in ((task.texts, TEXT_COLUMNS, "texts"), (task.targets, TARGET_COLUMNS, "targets")):
        if not isinstance(frame, pd.DataFrame):
            _fail(name, f"{what} must be a DataFrame with columns {list(columns)}.")
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            _fail(name, f"{what} lacks columns {missing}; it needs {list(columns)}.")
    if task.targets.empty:
        _fail(name, "has no targets. Check the builder's report (task.report) for why every target was dropped.")
    if not task.labels:
        _fail(name, "has an empty label vocabulary.")
    if task.targets["target_id"].duplicated().any():
        _fail(name, "target_id values repeat; each target needs its own id.")
    if task.texts["text_id"].duplicated().any():
        _fail(name, "text_id values repeat; each text needs its own id (prefix them with the split if needed).")
    if "n_words_a" in task.texts.columns:
        split_at = task.texts["n_words_a"].to_numpy()
        sizes = task.texts["words"].map(len).to_numpy()
        bad = (split_at < 1) | (split_at >= sizes)
        if bad.any():
            row = task.texts[bad].iloc[0]
            _fail(name, f"text {row['text_id']!r} has n_words_a={row['n_words_a']} for {len(row['words'])} words; a "
                        "pair needs at least one word on each side.")
    lengths = dict(zip(task.texts["text_id"], task.texts["words"].map(len)))
    missing_texts = sorted(set(task.targets["text_id"]) - set(lengths))
    if missing_texts:
        _fail(name, f"targets name texts that are not in texts: {missing_texts[:5]}.")
    n_words = task.targets["text_id"].map(lengths).to_numpy()
    spans = [("span1_start", "span1_end")] + ([("span2_start", "span2_end")] if task.two_spans else [])
    for start_column, end_column in spans:
        start = task.targets[start_column].to_numpy()
        end = task.targets[end_column].to_numpy()
        bad = (start < 0) | (end <= start) | (end > n_words)
        if bad.any():
            row = task.targets[bad].iloc[0]
            _fail(name, f"target {row['target_id']!r} has {start_column[:5]} [{row[start_column]}, {row[end_column]}) "
                        f"outside its text of {n_words[bad][0]} words (spans are half-open word ranges, 0-based).")
    if not task.two_spans and ((task.targets["span2_start"] != -1) | (task.targets["span2_end"] != -1)).any():
        _fail(name, "is a single-span task but some targets have a span2; set span2_start = span2_end = -1 or "
                    "two_spans=True.")
    known = set(task.labels)
    unknown = sorted({label for labels in task.targets["labels"] for label in labels} - known)
    if unknown:
        _fail(name, f"targets carry labels {unknown[:8]} that are not in the task's labels {list(task.labels)[:8]}.")
    if not task.binary and (task.targets["labels"].map(len) == 0).any():
        _fail(name, "some targets have no label; only a binary (one-label) task has negative targets.")


def make_task(name: str, texts: Iterable[tuple[str, str, Sequence[str]]], targets: Iterable[tuple],
              *, labels: Sequence[str] | None = None, two_spans: bool, report: Iterable[tuple] = (),
              info: Mapping[str, Any] | None = None, target_columns: Sequence[str] = ()) -> EdgeTask:
    """An :class:`EdgeTask` from plain rows (what builders produce).

    ``texts``: (split, text_id, words) or (split, text_id, words, n_words_a) for text pairs. ``targets``: (split, text_id, span1_start, span1_end, span2_start,
    span2_end, labels) with labels a str or a sequence of str; target ids are "<text_id>:<n>".
    ``labels``: the vocabulary (default: every label seen, sorted). ``report``: (split, outcome, reason, n).
    ``target_columns``: names of extra target columns (e.g. where a target came from); each target row
    then ends with one value per name, after its labels. They are kept by ``split`` and ``sample``.
    """
    rows = [(row[0], str(row[1]), tuple(str(w) for w in row[2]), *(int(x) for x in row[3:4])) for row in texts]
    paired = bool(rows) and all(len(row) == 4 for row in rows)
    if rows and not paired and any(len(row) == 4 for row in rows):
        raise BertInsightInputError(f"edge task {name!r}: some texts give n_words_a and some do not; a task is all "
                                    "text pairs or all single texts.")
    text_frame = pd.DataFrame(rows, columns=[*TEXT_COLUMNS, *(["n_words_a"] if paired else [])])
    extra = tuple(target_columns)
    clash = [column for column in extra if column in TARGET_COLUMNS]
    if clash:
        raise BertInsightInputError(f"edge task {name!r}: target_columns {clash} are standard target columns; "
                                    "name the extra columns differently.")
    rows, counters = [], {}
    for split, text_id, s1, e1, s2, e2, target_labels, *values in targets:
        if len(values) != len(extra):
            raise BertInsightInputError(f"edge task {name!r}: a target row has {len(values)} extra values for "
                                        f"target_columns {list(extra)}; give one value per extra column.")
        text_id = str(text_id)
        number = counters.get(text_id, 0)
        counters[text_id] = number + 1
        target_labels = (target_labels,) if isinstance(target_labels, str) else tuple(str(x) for x in target_labels)
        rows.append((split, text_id, f"{text_id}:{number}", int(s1), int(e1), int(s2), int(e2), target_labels,
                     *values))
    target_frame = pd.DataFrame(rows, columns=[*TARGET_COLUMNS, *extra])
    for column in TARGET_COLUMNS[3:7]:
        target_frame[column] = target_frame[column].astype("int64")
    vocabulary = tuple(labels) if labels is not None else tuple(sorted({l for ls in target_frame["labels"] for l in ls}))
    report_frame = pd.DataFrame(list(report), columns=list(REPORT_COLUMNS))
    report_frame["n"] = report_frame["n"].astype("int64")
    return EdgeTask(name, text_frame, target_frame, vocabulary, two_spans, report_frame, dict(info or {}))


def read_jiant_json(paths: Mapping[str, str | os.PathLike] | str | os.PathLike, *, name: str,
                    labels: Sequence[str] | None = None) -> EdgeTask:
    """A task from jiant's edge-probing JSON-lines files (e.g. OntoNotes' ``ner/train.json``).

    ``paths``: {split: file}, or a folder holding ``train.json`` / ``dev.json`` / ``test.json`` (also
    jiant's ``*.json.retokenized``-free names like ``development.json``). Words are the record's text
    split on whitespace (jiant's convention); a target's ``label`` may be a string or a list.
    """
    if not isinstance(paths, Mapping):
        folder = as_local_path(paths, "read_jiant_json")
        aliases = {"train": ("train.json",), "dev": ("dev.json", "development.json", "val.json"), "test": ("test.json",)}
        paths = {split: folder / found for split, names in aliases.items()
                 for found in [next((n for n in names if (folder / n).exists()), None)] if found}
        if not paths:
            raise BertInsightInputError(f"read_jiant_json: {str(folder)!r} has no train.json, dev.json or test.json.")
    texts, targets = [], []
    for split, path in paths.items():
        local = as_local_path(path, "read_jiant_json")
        for line_number, line in enumerate(read_text(local).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                words = record["text"].split()
                info = record.get("info", {})
                text_id = str(info.get("text_id", f"{split}-{line_number}"))
                texts.append((split, text_id, words, *([int(info["n_words_a"])] if "n_words_a" in info else [])))
                for target in record["targets"]:
                    span2 = target.get("span2", [-1, -1])
                    targets.append((split, text_id, *target["span1"], *span2, target["label"]))
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise BertInsightInputError(
                    f"{local}, line {line_number}: not a jiant edge-probing record ({error}); each line needs "
                    '{"text": ..., "targets": [{"span1": [i, j], "label": ...}]}.') from None
    two_spans = any(target[4] != -1 for target in targets)
    return make_task(name, texts, targets, labels=labels, two_spans=two_spans,
                     info={"source": {split: str(path) for split, path in paths.items()}, "format": "jiant"})


def load_edge_task(name: str, source: str | os.PathLike | None = None, **options: Any) -> EdgeTask:
    """The edge-probing task ``name`` (one of :data:`EDGE_TASKS`) built from free data.

    ``source``: None = the slices bundled with the package (small; enough for tests and a quick look),
    or the folder holding the corpora (../shared/data: ud_english_ewt, propbank_ewt_skel,
    ud_english_gum, gap_coreference, uds_protoroles_spr2, semeval2010_task8). ``options`` go to the
    builder (see its docstring). Each builder's ``report`` says how many targets it made and dropped,
    and why.
    """
    if name not in EDGE_TASKS:
        raise BertInsightInputError(f"unknown edge task {name!r}; the builders are {sorted(EDGE_TASKS)} "
                                    "(or read jiant JSON files with read_jiant_json).")
    module_name, function_name = EDGE_TASKS[name].split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    return builder(None if source is None else Path(source), **options)
