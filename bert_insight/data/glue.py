"""GLUE sentence(-pair) tasks as sentence-examples frames (example_id, text_a, text_b, label, task).

``load_glue`` reads the GLUE tsv files (a task folder, the GLUE root, one file, or a zip), the bundled
QNLI dev set, or the `datasets` hub copy; ``validate_sentence_examples`` checks a frame built by hand;
``split_examples`` makes a seeded, label-stratified train/test split of one.
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from bert_insight.data._files import as_local_path, bundled_path
from bert_insight.data.examples import unique_example_ids
from bert_insight.errors import BertInsightInputError


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: its names, labels (in label-id order), metrics and splits."""

    name: str  # canonical: "mrpc", "stsb", "sst2", "rte", "qnli", "qqp", "mnli"
    folder: str  # the task's folder in GLUE's glue_data: "MRPC", "STS-B", ...
    label_names: tuple[str, ...]  # () for the regression task stsb
    is_pair: bool  # False only for sst2
    metrics: tuple[str, ...]
    splits: tuple[str, ...]
    hf_config: str  # the `datasets` GLUE config name

    @property
    def is_regression(self) -> bool:
        return not self.label_names

    @property
    def num_labels(self) -> int:
        """Outputs of a model head for the task: 1 for the regression task stsb."""
        return len(self.label_names) or 1


_SPLITS = ("train", "dev", "test")
GLUE_TASKS: dict[str, GlueTask] = {
    "mrpc": GlueTask("mrpc", "MRPC", ("not_equivalent", "equivalent"), True, ("accuracy", "f1"), _SPLITS, "mrpc"),
    "stsb": GlueTask("stsb", "STS-B", (), True, ("pearson", "spearman"), _SPLITS, "stsb"),
    "sst2": GlueTask("sst2", "SST-2", ("negative", "positive"), False, ("accuracy",), _SPLITS, "sst2"),
    "rte": GlueTask("rte", "RTE", ("entailment", "not_entailment"), True, ("accuracy",), _SPLITS, "rte"),
    "qnli": GlueTask("qnli", "QNLI", ("entailment", "not_entailment"), True, ("accuracy",), _SPLITS, "qnli"),
    "qqp": GlueTask("qqp", "QQP", ("not_duplicate", "duplicate"), True, ("accuracy", "f1"), _SPLITS, "qqp"),
    "mnli": GlueTask("mnli", "MNLI", ("entailment", "neutral", "contradiction"), True, ("accuracy",),
                     ("train", "dev_matched", "dev_mismatched"), "mnli"),
}

SENTENCE_EXAMPLE_COLUMNS = ("example_id", "text_a", "text_b", "label", "task")
SCORE_RANGE = (0.0, 5.0)  # STS-B similarity scores


@dataclass(frozen=True)
class _Layout:
    """Where a task's fields are: tsv header names, the `datasets` column names, and candidate files."""

    text_a: str
    text_b: str | None
    label: str
    hf_text: tuple[str, str | None]
    # split -> alternatives, each a group of files read one after the other (first complete group wins)
    files: dict[str, tuple[tuple[str, ...], ...]]
    headerless: tuple[str, ...] = ()  # the columns of files that may come without a header row
    folder_aliases: tuple[str, ...] = ()


_STSB_COLUMNS = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
                 "score")
_LAYOUTS: dict[str, _Layout] = {
    "mrpc": _Layout("#1 String", "#2 String", "Quality", ("sentence1", "sentence2"), {
        # GLUE's own test.tsv has no labels; the original MSRP test file is the same pairs, labelled
        "train": (("train.tsv",), ("msr_paraphrase_train.txt",)),
        "test": (("msr_paraphrase_test.txt",), ("test.tsv",))}),
    "stsb": _Layout("sentence1", "sentence2", "score", ("sentence1", "sentence2"), {
        "train": (("train.tsv",), ("resplit_train_part1.tsv", "resplit_train_part2.tsv"))},
        headerless=_STSB_COLUMNS, folder_aliases=("SST-B",)),  # the `datasets` dummy zip misspells it
    "sst2": _Layout("sentence", None, "label", ("sentence", None), {
        "train": (("train.tsv",), ("alps_train_split.tsv", "alps_dev_split.tsv"))}),
    "rte": _Layout("sentence1", "sentence2", "label", ("sentence1", "sentence2"), {
        "train": (("train.tsv",), ("resplit_train.tsv",)),
        "dev": (("dev.tsv",), ("resplit_dev.tsv",)),
        "test": (("resplit_test.tsv",), ("test.tsv",))}),
    "qnli": _Layout("question", "sentence", "label", ("question", "sentence"), {}),
    "qqp": _Layout("question1", "question2", "is_duplicate", ("question1", "question2"), {}),
    "mnli": _Layout("sentence1", "sentence2", "gold_label", ("premise", "hypothesis"), {}),
}
# GLUE's recipe for MRPC: train = the MSRP train file minus the dev pairs listed in dev_ids.tsv
_MRPC_DEV_IDS = ("dev_ids.tsv", "dev_ids")
_MRPC_ID_COLUMNS = ("#1 ID", "#2 ID")

BUNDLED_GLUE = {("qnli", "dev"): "glue_qnli_dev.tsv.gz"}  # only QNLI's licence (CC BY-SA 4.0) allows it
_HF_SPLITS = {"dev": "validation", "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"}


def _canonical(task: str) -> str:
    return "".join(ch for ch in task.lower() if ch not in "-_ ")


def glue_task(task: str | GlueTask) -> GlueTask:
    """The :class:`GlueTask` called ``task``, ignoring case and '-' / '_' ("STS-B", "sst-2", "MNLI")."""
    if isinstance(task, GlueTask):
        return task
    spec = GLUE_TASKS.get(_canonical(task)) if isinstance(task, str) else None
    if spec is None:
        raise BertInsightInputError(
            f"unknown GLUE task {task!r}; choose one of {', '.join(GLUE_TASKS)} (case and '-' are ignored, "
            "so 'STS-B' and 'SST-2' work). CoLA and WNLI are not supported.")
    return spec


def _check_split(spec: GlueTask, split: str) -> None:
    if split in spec.splits:
        return
    if spec.name == "mnli" and split in ("dev", "validation"):
        raise BertInsightInputError(
            "MNLI has two dev sets: pass split='dev_matched' (same genres as train) or split='dev_mismatched' "
            f"(other genres), not {split!r}.")
    raise BertInsightInputError(f"split {split!r} is not a GLUE {spec.name} split; choose one of {list(spec.splits)}.")


# ---------------------------------------------------------------------------------------------- tsv files

@dataclass(frozen=True)
class _TsvText:
    source: str  # the path shown in messages and attrs
    text: str
    drop_pairs: frozenset[tuple[str, str]] = frozenset()  # MRPC dev pairs to leave out of the MSRP train file


def _decode(data: bytes, source: str) -> str:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8-sig")  # some GLUE files (MRPC) start with a byte-order mark
    except UnicodeDecodeError as err:
        raise BertInsightInputError(
            f"{source} is not UTF-8 text ({err}). Pass a GLUE .tsv file (plain or gzipped) or a .zip of them."
        ) from None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _allowed_labels(spec: GlueTask) -> str:
    return ", ".join(f"{i} or {name!r}" for i, name in enumerate(spec.label_names))


def _parse_label(value: str, spec: GlueTask, where: str) -> int | float:
    value = value.strip()
    if spec.is_regression:
        low, high = SCORE_RANGE
        score = float(value) if _is_number(value) else math.nan
        if not low <= score <= high:  # NaN fails too
            raise BertInsightInputError(
                f"{where}: STS-B score {value!r} is not a number in [{low:g}, {high:g}]. Fix the score column "
                "of that line.")
        return score
    if value in spec.label_names:  # RTE, QNLI, MNLI write names
        return spec.label_names.index(value)
    if value.isascii() and value.isdigit() and int(value) < len(spec.label_names):  # MRPC, SST-2, QQP write ids
        return int(value)
    raise BertInsightInputError(
        f"{where}: label {value!r} is not a GLUE {spec.name} label; allowed: {_allowed_labels(spec)}. "
        "Fix that line, or check that the file belongs to this task.")


def _unlabelled_error(spec: GlueTask, source: str, what: str) -> BertInsightInputError:
    hint = (" The original MSRP test file msr_paraphrase_test.txt holds the same pairs with labels: pass it, or "
            "a folder holding it." if spec.name == "mrpc" else "")
    dev = "dev_matched" if spec.name == "mnli" else "dev"
    return BertInsightInputError(
        f"{source} {what}: it is a GLUE test file, and GLUE test sets carry no labels (the GLUE server keeps "
        f"them).{hint} For labelled held-out data use split={dev!r}, or split_examples(load_glue("
        f"{spec.name!r}, 'train')).")


def _parse_tsv(file: _TsvText, spec: GlueTask) -> list[tuple[str, str | None, int | float]]:
    """(text_a, text_b, label) of each row of one GLUE tsv file, checked."""
    layout = _LAYOUTS[spec.name]
    # GLUE texts hold no newlines and no quoting (a '"' is text), so a row is one line split on tabs
    lines = [(number, line.rstrip("\r")) for number, line in enumerate(file.text.split("\n"), start=1)]
    lines = [(number, line) for number, line in lines if line.strip()]  # e.g. after the final newline
    if not lines:
        raise BertInsightInputError(f"{file.source} is empty; expected a GLUE {spec.name} tsv file with a header line.")
    first = lines[0][1].split("\t")
    if layout.headerless and len(first) == len(layout.headerless) and _is_number(first[-1]):
        header, body = list(layout.headerless), lines  # STS-B train parts come without a header
    else:
        header, body = [name.strip() for name in first], lines[1:]
    texts = [c for c in (layout.text_a, layout.text_b) if c is not None]
    missing = [c for c in texts + [layout.label] if c not in header]
    # a header cell merely ending in the label name (e.g. "BOMQuality") is a damaged header, not a test file
    damaged = [name for name in header if name != layout.label and name.endswith(layout.label)]
    if missing == [layout.label] and not damaged:
        raise _unlabelled_error(spec, file.source, f"has no {layout.label!r} column")
    if missing:
        raise BertInsightInputError(
            f"{file.source} lacks the GLUE {spec.name} column(s) {missing} (its header line has {header}). "
            f"Pass the task's own tsv file: GLUE {spec.name} needs the columns {texts + [layout.label]}.")
    index_a, index_label = header.index(layout.text_a), header.index(layout.label)
    index_b = header.index(layout.text_b) if layout.text_b is not None else None
    index_ids = [header.index(c) for c in _MRPC_ID_COLUMNS] if file.drop_pairs else []
    rows = []
    for number, line in body:
        fields = line.split("\t")
        where = f"{file.source} line {number}"
        if len(fields) != len(header):
            raise BertInsightInputError(
                f"{where} has {len(fields)} tab-separated fields, but the header has {len(header)} ({header}). "
                "The line is truncated or a text holds a tab: fix it or get a fresh copy of the file.")
        if index_ids and tuple(fields[i] for i in index_ids) in file.drop_pairs:
            continue
        text_a = fields[index_a]
        text_b = fields[index_b] if index_b is not None else None
        for column, text in ((layout.text_a, text_a), (layout.text_b, text_b)):
            if column is not None and not text.strip():
                raise BertInsightInputError(
                    f"{where}: the {column!r} text is empty. Every GLUE example needs its text(s); drop or fix "
                    "that line.")
        rows.append((text_a, text_b, _parse_label(fields[index_label], spec, where)))
    return rows


def _candidates(spec: GlueTask, split: str) -> tuple[tuple[str, ...], ...]:
    return _LAYOUTS[spec.name].files.get(split, ((f"{split}.tsv",),))


def _describe(groups: tuple[tuple[str, ...], ...]) -> str:
    return " or ".join(" + ".join(group) for group in groups)


def _mrpc_dev_pairs(text: str) -> frozenset[tuple[str, str]]:
    pairs = (line.rstrip("\r").split("\t") for line in text.split("\n") if line.strip())
    return frozenset((fields[0], fields[1]) for fields in pairs if len(fields) >= 2)


def _folder_files(spec: GlueTask, split: str, folder: Path) -> list[_TsvText] | None:
    """The split's files in a task folder, or None when no complete group of candidates is there."""
    for group in _candidates(spec, split):
        paths = [folder / name for name in group]
        if all(path.is_file() for path in paths):
            files = [_TsvText(str(path), _decode(path.read_bytes(), str(path))) for path in paths]
            dev_ids = folder / _MRPC_DEV_IDS[0]
            if group == ("msr_paraphrase_train.txt",) and dev_ids.is_file():
                pairs = _mrpc_dev_pairs(_decode(dev_ids.read_bytes(), str(dev_ids)))
                files = [_TsvText(f"{files[0].source} minus {dev_ids}", files[0].text, pairs)]
            return files
    return None


def _task_folder(spec: GlueTask, root: Path) -> Path | None:
    names = {n.lower() for n in (spec.folder, spec.name, *_LAYOUTS[spec.name].folder_aliases)}
    folders = [child for child in sorted(root.iterdir()) if child.is_dir() and child.name.lower() in names]
    return folders[0] if folders else None


def _zip_files(spec: GlueTask, split: str, path: Path) -> list[_TsvText]:
    with zipfile.ZipFile(path) as archive:
        members = [n for n in archive.namelist() if not n.endswith("/") and not n.startswith("__MACOSX")]
        folder_names = {n.lower() for n in (spec.folder, spec.name, *_LAYOUTS[spec.name].folder_aliases)}

        def member(name: str) -> str | None:
            found = [m for m in members if PurePosixPath(m).name == name]
            if len(found) > 1:  # a zip of several tasks: take the one in this task's folder
                found = [m for m in found if folder_names & {p.lower() for p in PurePosixPath(m).parts[:-1]}]
            if len(found) > 1:
                raise BertInsightInputError(
                    f"{path} holds several {name!r} files ({found[:5]}); unzip it and pass the task folder you mean.")
            return found[0] if found else None

        # the `datasets` dummy zips name MRPC's files without an extension ("train", "test")
        groups = _candidates(spec, split) + ((split,),)
        for group in groups:
            names = [member(name) for name in group]
            if all(names):
                files = [_TsvText(f"{path}:{name}", _decode(archive.read(name), f"{path}:{name}")) for name in names]
                dev_ids = next(filter(None, (member(n) for n in _MRPC_DEV_IDS)), None)
                if group == ("msr_paraphrase_train.txt",) and dev_ids:
                    pairs = _mrpc_dev_pairs(_decode(archive.read(dev_ids), f"{path}:{dev_ids}"))
                    files = [_TsvText(f"{files[0].source} minus {path}:{dev_ids}", files[0].text, pairs)]
                return files
    raise BertInsightInputError(
        f"{path} holds no GLUE {spec.name} {split} file: looked for {_describe(groups)} at any folder depth "
        f"(it has {members[:8]}). Pass a zip of the {spec.folder} folder, or the folder itself.")


def _local_files(spec: GlueTask, split: str, path: str | os.PathLike) -> list[_TsvText]:
    local = as_local_path(path, "load_glue")
    if local.is_dir():
        files = _folder_files(spec, split, local)
        if files is None:  # a GLUE root holding task folders?
            folder = _task_folder(spec, local)
            files = _folder_files(spec, split, folder) if folder is not None else None
            if files is None:
                where = str(folder) if folder is not None else f"{local}, nor a {spec.folder}/ folder there"
                raise BertInsightInputError(
                    f"no GLUE {spec.name} {split} file in {where}: looked for {_describe(_candidates(spec, split))}. "
                    f"Pass the {spec.folder} folder of GLUE's glue_data (or the folder holding it), one .tsv file, "
                    "or a .zip.")
        return files
    if zipfile.is_zipfile(local):
        return _zip_files(spec, split, local)
    return [_TsvText(str(local), _decode(local.read_bytes(), str(local)))]  # one file: the task's layout


# ---------------------------------------------------------------------------------------- bundled and hub

def _not_bundled_error(spec: GlueTask, split: str, reason: str) -> BertInsightInputError:
    bundled = [s for (t, s) in BUNDLED_GLUE if t == spec.name]
    if bundled:
        return BertInsightInputError(
            f"only the GLUE {spec.name} {'/'.join(bundled)} set is bundled with bert_insight, not {split!r}, and "
            f"the `datasets` hub copy is not available ({reason}). For a train/test split of the bundled data use "
            f"split_examples(load_glue({spec.name!r}, {bundled[0]!r})); or pass path= to a {spec.folder} folder, "
            "or go online with `pip install datasets`.")
    return BertInsightInputError(
        f"GLUE {spec.name} is not bundled with bert_insight (its licence allows research use, not "
        f"redistribution), and the `datasets` hub copy is not available ({reason}). Pass path= to a GLUE folder "
        f"(the {spec.folder} folder of glue_data, or the folder holding it), a .tsv file or a .zip; or go online "
        "with `pip install datasets`.")


def _hub_rows(spec: GlueTask, split: str) -> tuple[list[tuple[str, str | None, int | float]], str]:
    hf_split = _HF_SPLITS.get(split, split)
    source = f"hf:glue/{spec.hf_config}:{hf_split}"
    try:
        import datasets  # optional: only for tasks that are not bundled
    except ImportError:
        raise _not_bundled_error(spec, split, "the `datasets` package is not installed") from None
    column_a, column_b = _LAYOUTS[spec.name].hf_text
    try:
        dataset = datasets.load_dataset("glue", spec.hf_config, split=hf_split)
        raw = [(row[column_a], row[column_b] if column_b else None, row["label"]) for row in dataset]
    except Exception as err:  # datasets raises many types (connection, missing split); none should leak out
        reason = f"datasets.load_dataset('glue', {spec.hf_config!r}, split={hf_split!r}) failed: " \
                 f"{type(err).__name__}: {str(err)[:300]}"
        raise _not_bundled_error(spec, split, reason) from None
    rows = []
    for position, (text_a, text_b, label) in enumerate(raw):
        where = f"{source} row {position}"
        if label == -1:  # how `datasets` marks GLUE's unlabelled test sets
            raise _unlabelled_error(spec, source, "has label -1")
        if not isinstance(text_a, str) or not text_a.strip() or (column_b and not (isinstance(text_b, str)
                                                                                   and text_b.strip())):
            raise BertInsightInputError(f"{where}: a text is empty. Every GLUE example needs its text(s).")
        rows.append((text_a, text_b, _parse_label(str(label), spec, where)))
    return rows, source


def load_glue(task: str, split: str = "dev", *, path: str | os.PathLike | None = None) -> pd.DataFrame:
    """One split of a GLUE task as a sentence-examples frame.

    Parameters
    ----------
    task: "mrpc", "stsb", "sst2", "rte", "qnli", "qqp" or "mnli" (case and '-' ignored: "STS-B").
    split: "train", "dev" or "test"; for mnli "train", "dev_matched" or "dev_mismatched".
    path:
        None = the bundled copy where there is one (QNLI dev only: the complete 5,463 pairs, CC BY-SA 4.0),
        otherwise ``datasets.load_dataset("glue", task)`` (needs `pip install datasets` and network; dev
        is the hub's "validation"). A GLUE task folder holding the tsv files, or a folder holding task
        folders (the GLUE root; the folder is picked by ``GlueTask.folder``), one .tsv file (read in the
        task's layout whatever ``split`` says; ``split`` then only names the rows), or a .zip holding
        ``<split>.tsv`` at any depth (e.g. the `datasets` dummy data).

    Files are tab-separated with no quoting (a '"' is text) and may start with a byte-order mark.
    Besides GLUE's own ``<split>.tsv`` these layouts are read:

    - MRPC: test = msr_paraphrase_test.txt (the MSRP test file, labelled; GLUE's test.tsv has no labels
      and is refused); train falls back to msr_paraphrase_train.txt, minus the dev pairs in
      dev_ids.tsv when that file is next to it (GLUE's own recipe; without it all 4,076 pairs, dev included).
    - SST-2: train falls back to alps_train_split.tsv + alps_dev_split.tsv (together GLUE train).
    - STS-B: train falls back to resplit_train_part1.tsv + resplit_train_part2.tsv (headerless).
    - RTE: train/dev fall back to resplit_train.tsv / resplit_dev.tsv, and test = resplit_test.tsv. That
      copy is a re-split of GLUE train+dev pooled (all labelled; the original dev boundary is lost), so
      its "dev" is not GLUE's dev and scores on it are not comparable to published RTE dev numbers.

    Returns a DataFrame with columns example_id (str, ``"<task>-<split>-<row>"``, row 0-based over the
    split), text_a (str), text_b (str; None for sst2), label (int label id in ``GlueTask.label_names``
    order; float score in [0, 5] for stsb), task (the canonical task name); ``attrs`` holds dataset
    ("glue"), task, split, source (the file(s) read) and n_examples.

    Raises BertInsightInputError for an unknown task or split, a missing file, a header without the
    task's columns, an unlabelled GLUE test file, and (naming the file and 1-based line) a row with the
    wrong number of fields, an empty text or a label outside the task's labels.
    """
    spec = glue_task(task)
    _check_split(spec, split)
    if path is not None:
        files = _local_files(spec, split, path)
        rows = [row for file in files for row in _parse_tsv(file, spec)]
        source = " + ".join(file.source for file in files)
    elif (spec.name, split) in BUNDLED_GLUE:
        name = BUNDLED_GLUE[spec.name, split]
        source = f"bundled:{name}"
        rows = _parse_tsv(_TsvText(source, _decode(bundled_path(name).read_bytes(), source)), spec)
    else:
        rows, source = _hub_rows(spec, split)
    frame = pd.DataFrame({
        "example_id": [f"{spec.name}-{split}-{position}" for position in range(len(rows))],
        "text_a": pd.Series([row[0] for row in rows], dtype=object),
        "text_b": pd.Series([row[1] for row in rows], dtype=object),
        "label": pd.Series([row[2] for row in rows], dtype="float64" if spec.is_regression else "int64"),
        "task": spec.name,
    })
    frame = validate_sentence_examples(frame, task=spec)
    frame.attrs = {"dataset": "glue", "task": spec.name, "split": split, "source": source, "n_examples": len(frame)}
    return frame


# ---------------------------------------------------------------------------------- user-made frames

def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _example_label(value: Any, spec: GlueTask, example_id: str) -> int | float:
    is_real = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if spec.is_regression:
        low, high = SCORE_RANGE
        if not is_real or not low <= float(value) <= high:
            raise BertInsightInputError(
                f"example {example_id!r}: label must be an STS-B similarity score, a number in [{low:g}, "
                f"{high:g}], got {value!r}.")
        return float(value)
    if is_real and float(value).is_integer() and int(value) in range(spec.num_labels):
        return int(value)
    raise BertInsightInputError(
        f"example {example_id!r}: label must be a GLUE {spec.name} label id, an int in range({spec.num_labels}) "
        f"({', '.join(f'{i} = {n}' for i, n in enumerate(spec.label_names))}), got {value!r}.")


def validate_sentence_examples(examples: pd.DataFrame, *, task: str | GlueTask,
                               allow_empty: bool = True, require_labels: bool = True) -> pd.DataFrame:
    """Check a sentence-examples frame (``load_glue``'s or one built by hand) and return a normalised copy.

    Required columns: example_id, text_a, label, and text_b for pair tasks (for sst2 it may be left out;
    when given it must be None / NaN). Optional: task (must name ``task``; added when absent). Extra
    columns are kept. Labels: an int label id in range(num_labels) (numpy ints and whole-number floats
    are accepted), or for stsb a score in [0, 5].

    Returns a DataFrame with columns example_id (str, unique), text_a (str), text_b (str; None for sst2),
    label (int64; float64 for stsb), task (the canonical name), then the extras; ``attrs`` are kept.

    With ``require_labels=False`` (for predicting on unlabelled data) the label column may be absent
    or hold None / NaN: those labels are NaN (and the column float64).

    Raises BertInsightInputError naming the example for a repeated id, an empty text, a text_b on a
    single-sentence task, a label outside the task's labels, or a task cell naming another task.
    """
    spec = glue_task(task)
    if not require_labels and isinstance(examples, pd.DataFrame) and "label" not in examples.columns:
        examples = examples.assign(label=np.nan)
    required = ["example_id", "text_a"] + (["text_b"] if spec.is_pair else []) + ["label"]
    if not isinstance(examples, pd.DataFrame):
        raise BertInsightInputError(
            f"examples must be a pandas DataFrame with columns {required}, got {type(examples).__name__}. Build "
            f"one with pd.DataFrame(...) or use bert_insight.load_glue({spec.name!r}).")
    missing = [c for c in required if c not in examples.columns]
    if missing:
        raise BertInsightInputError(
            f"examples frame lacks column(s) {missing}. GLUE {spec.name} examples need the columns {required}"
            f"{'' if spec.is_pair else ' (text_b stays None: sst2 is a single-sentence task)'}.")
    if not allow_empty and examples.empty:
        raise BertInsightInputError(
            "examples is empty; pass at least one example (a filter on the frame may have matched nothing).")
    frame = examples.copy()
    ids = unique_example_ids(frame)
    if "task" in frame.columns:
        for example_id, value in zip(ids, frame["task"].tolist()):
            if not isinstance(value, str) or _canonical(value) != spec.name:
                raise BertInsightInputError(
                    f"example {example_id!r}: its task is {value!r}, but the examples are checked as GLUE "
                    f"{spec.name!r}. Pass task= matching the task column, or drop the rows of other tasks.")
    texts_b = frame["text_b"].tolist() if "text_b" in frame.columns else [None] * len(frame)
    for example_id, text_a, text_b in zip(ids, frame["text_a"].tolist(), texts_b):
        if not isinstance(text_a, str) or not text_a.strip():
            raise BertInsightInputError(
                f"example {example_id!r}: text_a is empty ({text_a!r}). Every example needs a non-empty text_a "
                "string; drop or fix this row.")
        if spec.is_pair and (not isinstance(text_b, str) or not text_b.strip()):
            raise BertInsightInputError(
                f"example {example_id!r}: text_b is {text_b!r}, but GLUE {spec.name} is a sentence-pair task: "
                "give every example a non-empty text_b string.")
        if not spec.is_pair and not _is_missing(text_b):
            raise BertInsightInputError(
                f"example {example_id!r}: text_b is {text_b!r}, but GLUE {spec.name} is a single-sentence task: "
                "set text_b to None (or put both sentences in text_a).")
    labels = [np.nan if not require_labels and _is_missing(value) else _example_label(value, spec, example_id)
              for example_id, value in zip(ids, frame["label"].tolist())]
    frame["example_id"] = pd.Series(ids, index=frame.index, dtype=object)
    if not spec.is_pair:
        frame["text_b"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    unlabelled = any(isinstance(label, float) and math.isnan(label) for label in labels)
    frame["label"] = pd.Series(labels, index=frame.index,
                               dtype="float64" if spec.is_regression or unlabelled else "int64")
    frame["task"] = spec.name
    extras = [c for c in frame.columns if c not in SENTENCE_EXAMPLE_COLUMNS]
    return frame[list(SENTENCE_EXAMPLE_COLUMNS) + extras]


def _frame_task(examples: Any) -> str:
    """The one task of a sentence-examples frame: its task column, else ``attrs["task"]``."""
    if isinstance(examples, pd.DataFrame) and "task" in examples.columns and len(examples):
        tasks = sorted({_canonical(str(t)) for t in examples["task"].tolist()})
        if len(tasks) != 1:
            raise BertInsightInputError(
                f"examples mix the tasks {tasks}; split each task's examples on their own "
                "(e.g. examples[examples.task == 'mrpc']).")
        return tasks[0]
    task = examples.attrs.get("task") if isinstance(examples, pd.DataFrame) else None
    if not task:
        raise BertInsightInputError(
            "cannot tell which GLUE task the examples are: give them a task column (load_glue and "
            "validate_sentence_examples add one).")
    return str(task)


def split_examples(examples: pd.DataFrame, *, test_fraction: float = 0.2,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random train/test split of a sentence-examples frame, stratified by label.

    Classification tasks keep each label's share in both parts (to within one example); stsb scores
    are split without stratification. Rows keep their original order within each part and their
    example_id, so the parts join back to the original. For a labelled held-out set where GLUE has none
    (e.g. ``split_examples(load_glue("qnli", "dev"))``).

    Returns (train, test): frames with the columns of :func:`validate_sentence_examples`; ``attrs`` are
    the input's plus split (``"<old split>-train"`` / ``"<old split>-test"``), resplit
    (``"test_fraction=..., seed=..."``) and n_examples.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real) or not 0 < test_fraction < 1:
        raise BertInsightInputError(
            f"test_fraction must be a number between 0 and 1 (exclusive), got {test_fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise BertInsightInputError(f"seed must be a non-negative int, got {seed!r}.")
    if not isinstance(examples, pd.DataFrame):
        raise BertInsightInputError(
            f"examples must be a pandas DataFrame of sentence examples (e.g. from load_glue), got "
            f"{type(examples).__name__}.")
    spec = glue_task(_frame_task(examples))
    frame = validate_sentence_examples(examples, task=spec, allow_empty=False)
    from sklearn.model_selection import train_test_split  # slow to import; only this function needs it

    positions = np.arange(len(frame))
    try:
        train_positions, test_positions = train_test_split(
            positions, test_size=float(test_fraction), random_state=int(seed),
            stratify=None if spec.is_regression else frame["label"].to_numpy())
    except ValueError as err:  # too few examples of a label, or a part too small to hold every label
        raise BertInsightInputError(
            f"cannot split {len(frame)} {spec.name} examples with test_fraction={test_fraction} stratified by "
            f"label ({err}). Use more examples or a test_fraction that leaves every label in both parts.") from None
    old_split = examples.attrs.get("split", "examples")
    parts = []
    for name, chosen in (("train", train_positions), ("test", test_positions)):
        part = frame.iloc[np.sort(chosen)].reset_index(drop=True)
        part.attrs = {**examples.attrs, "split": f"{old_split}-{name}",
                      "resplit": f"test_fraction={test_fraction}, seed={seed}", "n_examples": len(part)}
        parts.append(part)
    return parts[0], parts[1]
