"""SQuAD 1.1 / 2.0 into the examples frame, with the fixed article split of the offline default model."""

from __future__ import annotations

import functools
import os
from typing import Any, Iterator

import pandas as pd

from bert_insight._compat import renamed
from bert_insight.data._files import as_local_path, bundled_path, looks_like_path, read_json
from bert_insight.data.examples import make_frame, validate_examples
from bert_insight.errors import BertInsightInputError

# The last 6 articles of SQuAD 1.1 dev (1,145 questions): never seen when the offline default model
# is fine-tuned on the other 42 dev articles, so analyses on them are not on training data.
HELDOUT_TITLES: tuple[str, ...] = (
    "Scottish_Parliament", "Islamism", "Imperialism", "United_Methodist_Church", "French_and_Indian_War", "Force",
)

BUNDLED_SQUAD = {"1.1": "squad_v1.1_dev.json.gz", "2.0": "squad_v2.0_dev_subset.json.gz"}
SPLITS = ("all", "train", "heldout")


@functools.lru_cache(maxsize=2)
def _bundled_json(name: str) -> Any:
    """Parsed bundled file, kept: notebooks and tests load the same file many times (read-only use)."""
    return read_json(bundled_path(name))


def _squad_json_records(data: Any, source: str) -> Iterator[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise BertInsightInputError(
            f"{source} is not in the SQuAD layout {{'data': [{{'title', 'paragraphs': [{{'context', 'qas'}}]}}]}}. "
            "Pass the official SQuAD train/dev json (or its .gz / .zip).")
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield {
                    "example_id": str(qa["id"]),
                    "question": qa["question"],
                    "context": paragraph["context"],
                    "answers": [{"text": a["text"], "answer_start": a["answer_start"]} for a in qa.get("answers", [])],
                    "is_impossible": bool(qa.get("is_impossible", False)),
                    "title": article.get("title", ""),
                }


def _hub_records(name: str, hf_split: str) -> Iterator[dict[str, Any]]:
    try:
        import datasets  # optional: only for names on the Hugging Face hub
    except ImportError as err:
        raise BertInsightInputError(
            f"{name!r} is not a local file, and loading it from the Hugging Face hub needs the `datasets` package, "
            "which is not installed. Pass a local path to a SQuAD .json / .json.gz / .zip file "
            "(or `pip install datasets`).") from err
    try:
        dataset = datasets.load_dataset(name, split=hf_split)
    except Exception as err:  # datasets raises many types (connection, missing split, unknown name)
        raise BertInsightInputError(
            f"could not load {name!r} (split {hf_split!r}) with datasets.load_dataset: {type(err).__name__}: "
            f"{err}. If you are offline, pass a local path to a SQuAD .json / .json.gz / .zip file.") from err
    for row in dataset:
        answers = row.get("answers") or {"text": [], "answer_start": []}
        yield {
            "example_id": str(row["id"]),
            "question": row["question"],
            "context": row["context"],
            "answers": [{"text": t, "answer_start": int(s)} for t, s in zip(answers["text"], answers["answer_start"])],
            "is_impossible": len(answers["text"]) == 0,
            "title": row.get("title", ""),
        }


@renamed(path_or_name="source")
def load_squad(source: str | os.PathLike | None = None, *, version: str = "1.1", split: str = "all",
               limit: int | None = None, hf_split: str = "validation") -> pd.DataFrame:
    """SQuAD questions as an examples frame.

    Parameters
    ----------
    source:
        None = the bundled file for ``version`` (1.1: the complete SQuAD 1.1 dev set, 10,570 questions in
        48 articles; 2.0: 16 articles of SQuAD 2.0 dev, 6,078 questions, 3,168 unanswerable). A local
        path (.json, .json.gz, or .zip holding one json) in the official SQuAD layout. Anything else is
        a Hugging Face ``datasets`` name (e.g. "squad", "squad_v2"), loaded with ``hf_split``.
    version: "1.1" or "2.0".
    split:
        "all"; "heldout" = the articles in ``HELDOUT_TITLES`` (not used to fine-tune the offline
        default models); "train" = every other article. Needs SQuAD dev data (1.1: all six held-out
        articles; 2.0: at least one, the bundled subset has five).
    limit: keep the first ``limit`` questions (after the split).

    Returns a DataFrame with columns example_id (the SQuAD id), question, context, answers (list of
    {"text", "answer_start"}; [] when unanswerable), is_impossible (bool), title; ``attrs`` records the
    source, version and split.
    """
    if version not in BUNDLED_SQUAD:
        raise BertInsightInputError(f"version must be '1.1' or '2.0', got {version!r}.")
    if split not in SPLITS:
        raise BertInsightInputError(f"split must be one of {SPLITS}, got {split!r}.")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise BertInsightInputError(f"limit must be a non-negative int or None, got {limit!r}.")

    if source is None:
        source = f"bundled:{BUNDLED_SQUAD[version]}"
        records = list(_squad_json_records(_bundled_json(BUNDLED_SQUAD[version]), source))
    elif looks_like_path(source):
        path = as_local_path(source, "load_squad")
        records = list(_squad_json_records(read_json(path), str(path)))
        source = str(path)
    else:
        name = str(source)
        source = f"hf:{name}:{hf_split}"
        records = list(_hub_records(name, hf_split))

    if split != "all":
        titles = {record["title"] for record in records}
        missing = sorted(set(HELDOUT_TITLES) - titles)
        # SQuAD 2.0 dev has the 1.1 dev articles; the bundled 16-article subset holds 5 of the 6 held out.
        unusable = missing if version == "1.1" else ([] if titles & set(HELDOUT_TITLES) else sorted(HELDOUT_TITLES))
        if unusable:
            raise BertInsightInputError(
                f"split={split!r} is the article split of the offline default models and needs SQuAD dev "
                f"articles (the bundled files or the official dev json); {source} with version={version!r} "
                f"lacks {unusable}. Use split='all', or select articles by the title column.")
        keep_heldout = split == "heldout"
        records = [r for r in records if (r["title"] in HELDOUT_TITLES) == keep_heldout]
    if limit is not None:
        records = records[:limit]
    frame = make_frame(records, {"dataset": "squad", "version": version, "source": source, "split": split})
    return validate_examples(frame)
