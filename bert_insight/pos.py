"""Offline Penn-Treebank part-of-speech tags for passage words (no ``nltk.download`` needed).

The default tagger is nltk's averaged perceptron (:class:`nltk.tag.perceptron.PerceptronTagger`) with
a few extra word-shape features, trained on the UD English EWT train split (XPOS column = PTB tags,
CC BY-SA 4.0, see ``data/bundled/ud_ewt_pos_ATTRIBUTION.md``). Training takes minutes in pure
Python, so the trained weights ship with the package as gzipped JSON
(``data/bundled/ud_ewt_pos_tagger.json.gz``); :mod:`bert_insight.pos_training` rebuilds them from the
CoNLL-U file (``python -m bert_insight.pos_training en_ewt-ud-train.conllu.gz --dev en_ewt-ud-dev.conllu
--test en_ewt-ud-test.conllu``, about 15 minutes). Tagging is deterministic: the
weights are fixed and nltk breaks score ties alphabetically.

``tagger="nltk"`` uses nltk's own English model instead when its data is installed
(``taggers/averaged_perceptron_tagger_eng``), and any object with a ``tag(words)`` method
returning (word, tag) pairs works too.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Sequence
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


def load_tagger(path: str | Path = TAGGER_FILE) -> EWTPerceptronTagger:
    """An :class:`EWTPerceptronTagger` with the weights stored at ``path`` by :func:`save_tagger`."""
    path = Path(path)
    if not path.is_file():
        raise BertInsightInputError(
            f"No tagger weights at {str(path)!r}. Reinstall bert_insight, or rebuild them with "
            "`python -m bert_insight.pos_training path/to/en_ewt-ud-train.conllu.gz`."
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


