"""The tidy frames' column names, their ``attrs``, and the one check every consumer of a frame runs.

One place for each fact: producers build their frames from these constants and consumers check
against them, so a renamed column cannot leave a stale copy behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .errors import BertInsightInputError

#: :func:`bert_insight.predict`
PREDICTION_COLUMNS = (
    "example_id", "pred_text", "pred_start", "pred_end", "start_index", "end_index", "window_index",
    "score", "confidence", "exact_match", "f1", "n_windows",
)
#: :func:`bert_insight.tokens`
TOKEN_COLUMNS = (
    "example_id", "token_index", "token", "word_index", "word", "segment", "role", "char_start", "char_end",
    "in_answer", "in_question", "near_answer", "is_number", "is_stopword",
)
#: Tokens of a sentence(-pair) input (attention verbs on GLUE-style examples); ``kind`` is cls / sep /
#: punctuation / other (QA tokens frames get the same column there).
SENTENCE_TOKEN_COLUMNS = ("example_id", "token_index", "token", "word_index", "word", "segment", "char_start",
                          "char_end", "kind")
#: :func:`bert_insight.layer_ig` (and later attribution methods): ``method`` names the attribution
#: method ("layer_ig"), ``quadrature`` the integration rule it used ("riemann" / "gausslegendre").
ATTRIBUTION_COLUMNS = ("example_id", "method", "quadrature", "layer", "target", "token_index", "word_index",
                       "segment", "score", "norm", "importance")
#: :func:`bert_insight.classify` (followed by one ``prob_<label name>`` column per class).
CLASSIFIER_PREDICTION_COLUMNS = ("example_id", "task", "label", "prediction", "correct")
#: The scores frame of :func:`bert_insight.evaluate_classifier`.
CLASSIFIER_SCORE_COLUMNS = ("task", "metric", "value", "n_examples")
CONVERGENCE_COLUMNS = ("example_id", "method", "quadrature", "layer", "target", "delta", "relative_delta")


def frame_attrs(handle, function: str, params: Mapping[str, Any], *, fingerprint: str | None = None,
                **extra: Any) -> dict[str, Any]:
    """The ``attrs`` of a verb's frame: model name, weights fingerprint, the verb (``function``) and its
    parameters, so a saved parquet file says how it was made. A verb that already read
    ``handle.fingerprint`` (hashing the weights) passes it as ``fingerprint``."""
    return {"model": handle.name, "fingerprint": fingerprint or handle.fingerprint, "function": function,
            **extra, "params": dict(params)}


def require_columns(frame: Any, columns: Iterable[str], *, what: str, made_by: str,
                    allow_empty: bool = False) -> pd.DataFrame:
    """Return ``frame`` if it is a DataFrame with ``columns`` (and rows, unless ``allow_empty``); else
    raise BertInsightInputError naming what is missing and the function that makes the frame."""
    if not isinstance(frame, pd.DataFrame):
        raise BertInsightInputError(
            f"{what} must be a pandas DataFrame, got {type(frame).__name__}. Pass the frame made by {made_by}."
        )
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise BertInsightInputError(
            f"{what} lacks the column(s) {missing} (it has {list(frame.columns)}). Pass the frame made by {made_by}."
        )
    if frame.empty and not allow_empty:
        raise BertInsightInputError(f"{what} is empty. Pass the (non-empty) frame made by {made_by}.")
    return frame
