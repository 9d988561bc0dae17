"""Offline Penn-Treebank part-of-speech tags for passage words (no ``nltk.download`` needed).

The default tagger is nltk's averaged perceptron (:class:`nltk.tag.perceptron.PerceptronTagger`) with
a few extra word-shape features, trained on the UD English EWT train split (XPOS column = PTB tags,
CC BY-SA 4.0, see ``data/bundled/ud_ewt_pos_ATTRIBUTION.md``). Training takes minutes in pure
Python, so the trained weights ship with the package as gzipped JSON
(``data/bundled/ud_ewt_pos_tagger.json.gz``); :func:`train_tagger` rebuilds them from the CoNLL-U file
(``python -m bert_insight.pos en_ewt-ud-train.conllu.gz --dev en_ewt-ud-dev.conllu
--test en_ewt-ud-test.conllu``, about 15 minutes). Tagging is deterministic: the
weights are fixed and nltk breaks score ties alphabetically.

``tagger="nltk"`` uses nltk's own English model instead when its data is installed
(``taggers/averaged_perceptron_tagger_eng``), and any object with a ``tag(words)`` method
returning (word, tag) pairs works too.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import pandas as pd
from nltk.tag.perceptron import PerceptronTagger

from .errors import BertInsightInputError

BUNDLED = Path(__file__).resolve().parent / "data" / "bundled"
TAGGER_FILE = BUNDLED / "ud_ewt_pos_tagger.json.gz"
HELDOUT_FILE = BUNDLED / "ud_ewt_pos_dev_slice.tsv.gz"
FEATURES_VERSION = 1
_SENTENCE_END = {".", "?", "!"}


def _shape(word: str) -> str:
    """Collapsed character classes: "Denver" -> "Xx", "1,000" -> "d,d", "U.S." -> "X.X."."""
    shape = re.sub(r"[A-Z]+", "X", word)
    shape = re.sub(r"[a-z]+", "x", shape)
    return re.sub(r"[0-9]+", "d", shape)[:6]


class EWTPerceptronTagger(PerceptronTagger):
    """nltk's averaged perceptron with extra suffix, prefix and word-shape features.

    The extra features lift accuracy on EWT dev from 0.932 (nltk's feature set) to the value in the
    bundled file's metadata. Changing :meth:`_get_features` needs new weights (bump FEATURES_VERSION).
    """

    def __init__(self) -> None:
        super().__init__(load=False)

    def _get_features(self, i, word, context, prev, prev2):
        features = super()._get_features(i, word, context, prev, prev2)
        i += len(self.START)
        for name, value in (
            ("i suffix1", word[-1:]),
            ("i suffix2", word[-2:]),
            ("i suffix4", word[-4:]),
            ("i pref3", word[:3]),
            ("i shape", _shape(word)),
            ("i-1 word+i word", f"{context[i - 1]} {context[i]}"),
            ("i word+i+1 word", f"{context[i]} {context[i + 1]}"),
            ("i-1 tag+i suffix", f"{prev} {word[-3:]}"),
        ):
            features[f"{name} {value}"] += 1
        return features


# ---- reading UD and training ----------------------------------------------------------------------------
def read_conllu_xpos(path: str | Path) -> list[list[tuple[str, str]]]:
    """Sentences of (word form, XPOS tag) pairs from a CoNLL-U file (``.gz`` allowed).

    Multi-word token lines ("3-4") and empty nodes ("5.1") are skipped, so "don't" appears as the
    syntactic words "do" and "n't", as in the Penn Treebank.
    """
    path = Path(path)
    if not path.is_file():
        raise BertInsightInputError(f"No CoNLL-U file at {str(path)!r}; pass the path of a UD .conllu file.")
    opener = gzip.open if path.suffix == ".gz" else open

    def word_and_xpos(line: str) -> tuple[str, str] | None:
        if line.startswith("#"):
            return None
        columns = line.split("\t")
        if "-" in columns[0] or "." in columns[0]:
            return None
        return columns[1], columns[4]

    with opener(path, "rt", encoding="utf-8") as handle:
        return _blank_line_sentences(handle, word_and_xpos)


def _blank_line_sentences(lines: Iterable[str], parse) -> list[list[tuple[str, str]]]:
    """Sentences separated by blank lines; ``parse`` turns a line into a (word, tag) pair or None (skip)."""
    sentences, current = [], []
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            if current:
                sentences.append(current)
                current = []
            continue
        pair = parse(line)
        if pair is not None:
            current.append(pair)
    if current:
        sentences.append(current)
    return sentences


def train_tagger(sentences: Sequence[Sequence[tuple[str, str]]], *, n_iter: int = 5,
                 seed: int = 0) -> EWTPerceptronTagger:
    """Train an :class:`EWTPerceptronTagger` on (word, tag) sentences; same input and seed, same weights."""
    tagger = EWTPerceptronTagger()
    # nltk shuffles with the global `random` module: seed it for reproducible weights, then restore it.
    state = random.getstate()
    random.seed(seed)
    try:
        tagger.train([list(sentence) for sentence in sentences], nr_iter=n_iter)
    finally:
        random.setstate(state)
    return tagger


def compact_weights(tagger: PerceptronTagger, *, min_weight: float = 0.5, decimals: int = 1) -> PerceptronTagger:
    """Drop weights smaller than ``min_weight`` in magnitude and round the rest, in place.

    The bundled file uses the defaults: 1.2 MB instead of 2 MB gzipped, and EWT dev accuracy stays
    at 0.938 (it drops to 0.934 at min_weight=1 and 0.920 at 2).
    """
    compact = {}
    for feature, by_class in tagger.model.weights.items():
        kept = {label: round(weight, decimals) for label, weight in by_class.items() if abs(weight) >= min_weight}
        if kept:
            compact[feature] = kept
    tagger.model.weights = compact
    return tagger


def save_tagger(tagger: PerceptronTagger, path: str | Path, *, metadata: dict | None = None) -> Path:
    """Write the tagger's weights, tag dictionary and classes as gzipped JSON (no pickle)."""
    weights, tagdict, classes = tagger.encode_json_obj()
    payload = {
        "features_version": FEATURES_VERSION,
        "metadata": metadata or {},
        "classes": sorted(classes),
        "tagdict": dict(sorted(tagdict.items())),
        "weights": {feature: dict(sorted(by_class.items())) for feature, by_class in sorted(weights.items())
                    if by_class},
    }
    path = Path(path)
    # No file name or time in the gzip header: the same weights give the same bytes.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
        handle.write(json.dumps(payload, separators=(",", ":")).encode())
    return path


def load_tagger(path: str | Path = TAGGER_FILE) -> EWTPerceptronTagger:
    """An :class:`EWTPerceptronTagger` with the weights stored at ``path`` by :func:`save_tagger`."""
    path = Path(path)
    if not path.is_file():
        raise BertInsightInputError(
            f"No tagger weights at {str(path)!r}. Reinstall bert_insight, or rebuild them with "
            "`python -m bert_insight.pos path/to/en_ewt-ud-train.conllu.gz`."
        )
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        payload = json.load(handle)
    if payload.get("features_version") != FEATURES_VERSION:
        raise BertInsightInputError(
            f"The tagger weights at {str(path)!r} were trained for features version "
            f"{payload.get('features_version')}, this code uses {FEATURES_VERSION}; retrain them."
        )
    tagger = EWTPerceptronTagger()
    tagger.decode_json_params((payload["weights"], payload["tagdict"], payload["classes"]))
    tagger.metadata = payload.get("metadata", {})
    return tagger


@lru_cache(maxsize=1)
def default_tagger() -> EWTPerceptronTagger:
    """The bundled EWT-trained tagger (loaded once per process)."""
    return load_tagger(TAGGER_FILE)


@lru_cache(maxsize=1)
def _nltk_tagger() -> PerceptronTagger:
    try:
        return PerceptronTagger(load=True, lang="eng")
    except LookupError as error:
        raise BertInsightInputError(
            "tagger='nltk' needs nltk's averaged_perceptron_tagger_eng data, which is not installed. Use "
            "tagger=None for the bundled offline tagger, or install the data and set NLTK_DATA."
        ) from error


def resolve_tagger(tagger=None):
    """None -> the bundled tagger; "nltk" -> nltk's own English model; else an object with ``tag``."""
    if tagger is None or tagger == "bundled":
        return default_tagger()
    if tagger == "nltk":
        return _nltk_tagger()
    if not callable(getattr(tagger, "tag", None)):
        raise BertInsightInputError(
            f"tagger={tagger!r}: pass None (bundled), 'nltk', or an object whose tag(words) returns "
            "(word, tag) pairs."
        )
    return tagger


def tagging_accuracy(sentences: Iterable[Sequence[tuple[str, str]]], *, tagger=None) -> float:
    """Share of words whose predicted tag equals the gold tag."""
    tagger = resolve_tagger(tagger)
    correct = total = 0
    for sentence in sentences:
        words, gold = zip(*sentence)
        predicted = [tag for _, tag in tagger.tag(list(words))]
        correct += sum(p == g for p, g in zip(predicted, gold))
        total += len(gold)
    if total == 0:
        raise BertInsightInputError("tagging_accuracy got no words; pass non-empty sentences.")
    return correct / total


def read_heldout_slice(path: str | Path = HELDOUT_FILE) -> list[list[tuple[str, str]]]:
    """The bundled held-out sentences (from EWT dev, never trained on): word<TAB>tag lines."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return _blank_line_sentences(handle, lambda line: tuple(line.split("\t")))


# ---- tagging passages -----------------------------------------------------------------------------------
def _sentences(words: Sequence[str]) -> list[list[str]]:
    """Split a word sequence after ".", "?" and "!" (the tagger's context features stop at sentences)."""
    sentences, current = [], []
    for word in words:
        current.append(word)
        if word in _SENTENCE_END:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def pos_tag_words(words: Sequence[str], *, tagger=None) -> list[str]:
    """Penn Treebank tags of ``words`` (a passage's words in order), one tag per word.

    Words are the tokenizer's words (punctuation separate), tagged sentence by sentence.
    """
    if isinstance(words, str):
        raise BertInsightInputError("pos_tag_words takes a list of words, not one string; split it first.")
    tagger = resolve_tagger(tagger)
    words = [str(word) for word in words]
    tags: list[str] = []
    for sentence in _sentences(words):
        tags.extend(tag for _, tag in tagger.tag(sentence))
    return tags


def tag_passages(tokens: pd.DataFrame, *, tagger=None) -> pd.DataFrame:
    """POS tag of every passage word in a tokens frame (:func:`bert_insight.text.tokens`).

    Columns: example_id, word_index, word, pos (Penn Treebank tag). One row per context word.
    """
    needed = {"example_id", "word_index", "word", "segment"}
    if not isinstance(tokens, pd.DataFrame) or not needed <= set(tokens.columns):
        raise BertInsightInputError(
            f"tag_passages needs a tokens frame with columns {sorted(needed)} (from bert_insight.tokens)."
        )
    words = (tokens.loc[tokens["segment"] == "context", ["example_id", "word_index", "word"]]
             .drop_duplicates(["example_id", "word_index"])
             .sort_values(["example_id", "word_index"], kind="stable"))
    tagger = resolve_tagger(tagger)
    tags = []
    for _, passage in words.groupby("example_id", sort=False):
        tags.extend(pos_tag_words(passage["word"].tolist(), tagger=tagger))
    return words.assign(pos=tags).reset_index(drop=True)


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Train the bundled EWT POS tagger.")
    parser.add_argument("train", help="en_ewt-ud-train.conllu(.gz)")
    parser.add_argument("--dev", help="en_ewt-ud-dev.conllu, for the accuracy stored in the metadata")
    parser.add_argument("--test", help="en_ewt-ud-test.conllu, likewise")
    parser.add_argument("--out", default=str(TAGGER_FILE))
    parser.add_argument("--n-iter", type=int, default=5)
    arguments = parser.parse_args(argv)
    started = time.perf_counter()
    tagger = compact_weights(train_tagger(read_conllu_xpos(arguments.train), n_iter=arguments.n_iter))
    metadata = {"source": "UD English EWT train (XPOS), commit 15d613d8", "n_iter": arguments.n_iter,
                "seed": 0, "min_weight": 0.5, "decimals": 1,
                "train_seconds": round(time.perf_counter() - started, 1)}
    for split, path in (("dev", arguments.dev), ("test", arguments.test)):
        if path:
            metadata[f"{split}_accuracy"] = round(tagging_accuracy(read_conllu_xpos(path), tagger=tagger), 4)
    save_tagger(tagger, arguments.out, metadata=metadata)
    print(json.dumps(metadata))


if __name__ == "__main__":
    _main()
