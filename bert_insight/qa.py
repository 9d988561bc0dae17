"""Extractive QA: predict answer spans over sliding windows, score them against SQuAD, and pick the
window every per-example analysis looks at.

``predict`` runs the model on every window (:mod:`bert_insight.windows`), searches all spans of
context tokens exhaustively (start <= end < start + max_answer_length) in every window, and keeps the
best one per example. ``analysis_windows`` hands every per-example analysis the one window that holds
the predicted answer, so their ``token_index`` values join across frames.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd
import torch

from ._compat import keywords_only
from .data.examples import gold_answers, validate_examples
from .errors import BertInsightInputError
from .frames import PREDICTION_COLUMNS, frame_attrs, require_columns
from .text import exact_match_score, f1_score, normalize_answer, question_type
from .windows import (
    DEFAULT_DOC_STRIDE,
    DEFAULT_MAX_LENGTH,
    QAWindow,
    check_window_sizes,
    encode_validated_windows,
    length_sorted_batches,
)

if TYPE_CHECKING:
    from .models.handle import QAModelHandle

QUESTION_TYPE_ORDER = (
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how many", "how much", "how", "other",
)



def _window_logits(handle: QAModelHandle, windows: list[QAWindow], *, batch_size: int,
                   progress: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Start and end logits (float32, CPU, trimmed to each window's length) for every window."""
    from tqdm.auto import tqdm

    batches = length_sorted_batches(windows, batch_size)
    results: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(windows)
    with torch.inference_mode():
        for batch in tqdm(batches, desc="predict", unit="batch", disable=not progress):
            inputs = handle.batch_inputs([windows[i] for i in batch])
            output = handle.model(**inputs)
            starts = output.start_logits.float().cpu()
            ends = output.end_logits.float().cpu()
            for row, index in enumerate(batch):
                length = len(windows[index])
                results[index] = (starts[row, :length].clone(), ends[row, :length].clone())
    return results  # type: ignore[return-value]


def _best_span(window: QAWindow, start: torch.Tensor, end: torch.Tensor,
               max_answer_length: int) -> tuple[float, int, int]:
    """Highest start+end logit over context spans with start <= end < start + max_answer_length."""
    context = torch.tensor([sequence == 1 for sequence in window.sequence_ids])
    if not context.any():
        return -math.inf, 0, 0
    scores = start[:, None] + end[None, :]
    positions = torch.arange(len(window))
    width = positions[None, :] - positions[:, None]
    valid = context[:, None] & context[None, :] & (width >= 0) & (width < max_answer_length)
    scores = scores.masked_fill(~valid, -math.inf)
    flat = int(torch.argmax(scores))
    start_index, end_index = divmod(flat, len(window))
    return float(scores[start_index, end_index]), start_index, end_index


def _span_probability(start: torch.Tensor, end: torch.Tensor, start_index: int, end_index: int) -> float:
    return float(torch.softmax(start, 0)[start_index] * torch.softmax(end, 0)[end_index])


def _gold_texts(example) -> list[str]:
    return [answer["text"] for answer in gold_answers(example)]


def score_prediction(prediction: str, gold_texts: list[str], *, squad2: bool) -> tuple[float, float]:
    """(exact match, F1) of ``prediction`` against the gold answers, each in [0, 1].

    SQuAD 1.1 rule (official v1.1 script): max over gold answers, NaN when there is no gold answer.
    SQuAD 2.0 rule (official v2.0 script): gold answers that normalise to nothing count as "no answer";
    a "no answer" gold or an empty prediction scores 1 only when both are empty.
    """
    if not squad2:
        if not gold_texts:
            return math.nan, math.nan
        exact = max(float(exact_match_score(prediction, gold)) for gold in gold_texts)
        return exact, max(f1_score(prediction, gold) for gold in gold_texts)
    golds = [gold for gold in gold_texts if normalize_answer(gold)] or [""]
    predicted_tokens = normalize_answer(prediction).split()

    def overlap(gold: str) -> float:
        gold_tokens = normalize_answer(gold).split()
        if not gold_tokens or not predicted_tokens:
            return float(gold_tokens == predicted_tokens)
        return f1_score(prediction, gold)

    exact = max(float(exact_match_score(prediction, gold)) for gold in golds)
    return exact, max(overlap(gold) for gold in golds)


def is_squad2(examples: pd.DataFrame, null_threshold: float | None) -> bool:
    if null_threshold is not None:
        return True
    return "is_impossible" in examples.columns and bool(examples["is_impossible"].fillna(False).astype(bool).any())


def decode_predictions(examples: pd.DataFrame, windows: list[QAWindow],
                       logits: list[tuple[torch.Tensor, torch.Tensor]], *, max_answer_length: int, squad2: bool,
                       threshold: float) -> list[dict]:
    """One prediction row per example (``predict``'s columns) from every window's start and end logits:
    the best span over the example's windows, or the null answer in SQuAD 2.0 mode."""
    windows_of: dict[str, list[int]] = {}
    for position, window in enumerate(windows):
        windows_of.setdefault(window.example_id, []).append(position)

    rows = []
    for _, example in examples.iterrows():
        example_id = str(example["example_id"])
        candidates = windows_of[example_id]
        best = (-math.inf, candidates[0], 0, 0)
        null = (math.inf, candidates[0])
        for position in candidates:
            start, end = logits[position]
            span_score, start_index, end_index = _best_span(windows[position], start, end, max_answer_length)
            if span_score > best[0]:
                best = (span_score, position, start_index, end_index)
            null_score = float(start[0] + end[0])
            if null_score < null[0]:
                null = (null_score, position)
        use_null = best[0] == -math.inf or (squad2 and null[0] > best[0] + threshold)
        if use_null:
            score, position, start_index, end_index = null[0], null[1], 0, 0
            text, char_start, char_end = "", -1, -1
        else:
            score, position, start_index, end_index = best
            char_start, char_end = windows[position].char_span(start_index, end_index)
            text = example["context"][char_start:char_end]
        start, end = logits[position]
        exact, overlap = score_prediction(text, _gold_texts(example), squad2=squad2)
        rows.append({
            "example_id": example_id,
            "pred_text": text,
            "pred_start": char_start,
            "pred_end": char_end,
            "start_index": start_index,
            "end_index": end_index,
            "window_index": windows[position].window_index,
            "score": score,
            "confidence": _span_probability(start, end, start_index, end_index),
            "exact_match": exact,
            "f1": overlap,
            "n_windows": windows[position].n_windows,
        })
    return rows


def predict(
    handle: QAModelHandle,
    examples: pd.DataFrame,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    doc_stride: int = DEFAULT_DOC_STRIDE,
    batch_size: int = 16,
    max_answer_length: int = 30,
    null_threshold: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict the answer span of every example.

    Every window of an example is searched exhaustively for the context span with the highest
    start + end logit (start <= end <= start + max_answer_length - 1); the best window wins. When any
    example is unanswerable (``is_impossible``) or ``null_threshold`` is given (SQuAD 2.0 mode), the
    null score (start + end logit of the first token, lowest over windows) competes: the prediction is
    empty when null_score > best_span_score + null_threshold, as in Hugging Face's ``run_qa.py``.
    ``null_threshold=None`` takes the threshold tuned on the model's training data where its card has one
    (the offline SQuAD 2.0 default: :func:`tune_null_threshold`), else 0.0.

    Returns one row per example with columns: example_id, pred_text, pred_start, pred_end (character
    offsets into the context, end exclusive; -1 for an empty prediction), start_index, end_index (token
    positions in the chosen window; 0 for an empty prediction), window_index, score (start + end logit),
    confidence (softmax(start)[start_index] * softmax(end)[end_index] within that window), exact_match,
    f1 (in [0, 1], official SQuAD normalisation, max over gold answers; NaN without gold in SQuAD 1.1
    mode), n_windows. ``attrs`` carry the model name, fingerprint and parameters.
    """
    from .models.handle import require_qa_handle

    require_qa_handle(handle, "predict")
    examples = validate_examples(examples, allow_empty=False)
    check_window_sizes(max_length, doc_stride)
    handle.check_fits(max_length)
    if not (isinstance(max_answer_length, int) and max_answer_length > 0):
        raise BertInsightInputError(f"max_answer_length={max_answer_length!r}; pass a positive number of tokens.")
    null_threshold = _checked_threshold(handle, null_threshold)
    squad2 = is_squad2(examples, null_threshold)
    threshold = 0.0 if null_threshold is None else float(null_threshold)
    windows = encode_validated_windows(handle.tokenizer, examples, max_length=max_length, doc_stride=doc_stride)
    logits = _window_logits(handle, windows, batch_size=batch_size, progress=progress)

    rows = decode_predictions(examples, windows, logits, max_answer_length=max_answer_length, squad2=squad2,
                              threshold=threshold)
    frame = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    frame.attrs = frame_attrs(handle, "bert_insight.predict", {
        "max_length": max_length, "doc_stride": doc_stride, "max_answer_length": max_answer_length,
        "null_threshold": null_threshold, "squad2": squad2})
    return frame


def _checked_threshold(handle, null_threshold):
    """``null_threshold``, or the model card's tuned one when None (None when the card has none)."""
    if null_threshold is None:
        tuned = (getattr(handle, "card", None) or {}).get("null_threshold")
        return None if tuned is None else float(tuned)
    if isinstance(null_threshold, bool) or not isinstance(null_threshold, (int, float)) or math.isnan(null_threshold):
        raise BertInsightInputError(f"null_threshold={null_threshold!r}; pass a number (the margin by which the "
                                    "null score must beat the best span) or None.")
    return float(null_threshold)


def tune_null_threshold(
    handle: QAModelHandle,
    examples: pd.DataFrame,
    *,
    candidates=None,
    max_length: int = DEFAULT_MAX_LENGTH,
    doc_stride: int = DEFAULT_DOC_STRIDE,
    batch_size: int = 16,
    max_answer_length: int = 30,
    progress: bool = True,
) -> tuple[float, pd.DataFrame]:
    """The SQuAD 2.0 null threshold with the best F1 on ``examples`` (tune on training data only).

    The model runs once and each example's best span and null answer are decoded once; every candidate
    threshold (default: -10 to 10 in steps of 0.5) then picks between them. Returns ``(threshold, frame)`` with the frame's columns null_threshold, exact_match,
    f1 (percent), no_answer_rate (share of empty predictions); ties go to the threshold nearest 0.
    """
    from .models.handle import require_qa_handle

    require_qa_handle(handle, "tune_null_threshold")
    examples = validate_examples(examples, allow_empty=False)
    check_window_sizes(max_length, doc_stride)
    handle.check_fits(max_length)
    values = [x / 2 for x in range(-20, 21)] if candidates is None else [float(value) for value in candidates]
    if not values or any(math.isnan(value) for value in values):
        raise BertInsightInputError(f"candidates={candidates!r}; pass a non-empty list of numbers or None.")
    windows = encode_validated_windows(handle.tokenizer, examples, max_length=max_length, doc_stride=doc_stride)
    logits = _window_logits(handle, windows, batch_size=batch_size, progress=progress)
    # Two decodes give each example's best span and its null answer with their scores; a threshold only
    # chooses between them (null when null_score > span_score + threshold, as decode_predictions does).
    spans = pd.DataFrame(decode_predictions(examples, windows, logits, max_answer_length=max_answer_length,
                                            squad2=True, threshold=math.inf))
    nulls = pd.DataFrame(decode_predictions(examples, windows, logits, max_answer_length=max_answer_length,
                                            squad2=True, threshold=-math.inf))
    no_span = spans["pred_text"].eq("") & spans["start_index"].eq(0)  # no context span at all
    rows = []
    for value in values:
        use_null = no_span | (nulls["score"] > spans["score"] + value)
        chosen = nulls.where(use_null, spans)
        rows.append({"null_threshold": value, "exact_match": 100.0 * chosen["exact_match"].mean(),
                     "f1": 100.0 * chosen["f1"].mean(), "no_answer_rate": float(use_null.mean())})
    frame = pd.DataFrame(rows, columns=["null_threshold", "exact_match", "f1", "no_answer_rate"])
    best = frame.assign(distance=frame["null_threshold"].abs()).sort_values(["f1", "distance"],
                                                                              ascending=[False, True]).iloc[0]
    frame.attrs = frame_attrs(handle, "bert_insight.tune_null_threshold", {
        "max_length": max_length, "doc_stride": doc_stride, "max_answer_length": max_answer_length})
    return float(best["null_threshold"]), frame


def _one_row_per_example(predictions: pd.DataFrame) -> pd.Series:
    """The predictions' example ids as strings; an error when an example has several rows."""
    ids = predictions["example_id"].astype(str)
    repeated = ids[ids.duplicated()]
    if len(repeated):
        raise BertInsightInputError(
            f"predictions hold several rows for {repeated.nunique()} example(s) (first: {repeated.iloc[0]!r}); "
            "every verb reads one prediction per example. Keep one row each, e.g. "
            "predictions.drop_duplicates('example_id')."
        )
    return ids


@keywords_only("examples")
def evaluate(predictions: pd.DataFrame, *, examples: pd.DataFrame) -> pd.DataFrame:
    """SQuAD exact match and F1 (percent), overall and per question type.

    ``predictions`` (one row per example, from :func:`predict`) are re-scored on ``pred_text`` against
    the gold answers of ``examples`` (SQuAD 2.0 rule when any example is unanswerable). Returns columns
    group ("all"; in SQuAD 2.0 mode "has_answer" and "no_answer", the official script's HasAns / NoAns;
    then the question types present, in the order of ``QUESTION_TYPE_ORDER``: first wh-word of the
    question), n, exact_match, f1. Examples without gold answers in SQuAD 1.1 mode are
    left out of the means.
    """
    examples = validate_examples(examples, allow_empty=False)
    require_columns(predictions, ("example_id", "pred_text"), what="predictions", made_by="bert_insight.predict")
    predicted = dict(zip(_one_row_per_example(predictions), predictions["pred_text"]))
    missing = [str(i) for i in examples["example_id"] if str(i) not in predicted]
    if missing:
        raise BertInsightInputError(
            f"{len(missing)} example(s) have no prediction (first: {missing[0]!r}); predict every example, "
            "or evaluate only the examples you predicted."
        )
    squad2 = is_squad2(examples, None)
    rows = []
    for _, example in examples.iterrows():
        text = predicted[str(example["example_id"])]
        text = "" if not isinstance(text, str) else text
        golds = _gold_texts(example)
        exact, overlap = score_prediction(text, golds, squad2=squad2)
        rows.append({"group": question_type(example["question"]), "exact_match": exact, "f1": overlap,
                     "answerable": bool(golds)})
    scored = pd.DataFrame(rows, columns=["group", "exact_match", "f1", "answerable"]).dropna()

    def summary(group: str, part: pd.DataFrame) -> dict:
        return {"group": group, "n": len(part), "exact_match": 100.0 * part["exact_match"].mean(),
                "f1": 100.0 * part["f1"].mean()}

    result = [summary("all", scored)]
    if squad2:  # the official SQuAD 2.0 script's HasAns / NoAns breakdown
        result += [summary(name, scored[scored["answerable"] == answerable])
                   for name, answerable in (("has_answer", True), ("no_answer", False))
                   if (scored["answerable"] == answerable).any()]
    for group in QUESTION_TYPE_ORDER:
        part = scored[scored["group"] == group]
        if len(part):
            result.append(summary(group, part))
    frame = pd.DataFrame(result, columns=["group", "n", "exact_match", "f1"])
    frame.attrs = dict(getattr(predictions, "attrs", {}))
    return frame


# ---- the analysis window of each example ----------------------------------------------------------
_TRUSTED_COLUMNS = ("example_id", "window_index", "start_index", "end_index", "pred_start", "pred_end")


def window_settings(predictions: pd.DataFrame | None, max_length: int | None,
                    doc_stride: int | None) -> tuple[int, int]:
    """The windows an analysis uses: those the predictions were made with (``predictions.attrs``), the
    defaults (384 / 128) without predictions. An explicit value that disagrees with the predictions'
    is an error, since the token positions would not match."""
    recorded = dict(getattr(predictions, "attrs", {}).get("params", {})) if predictions is not None else {}
    resolved = []
    for name, given, default in (("max_length", max_length, DEFAULT_MAX_LENGTH),
                                 ("doc_stride", doc_stride, DEFAULT_DOC_STRIDE)):
        made_with = recorded.get(name)
        if given is not None and made_with is not None and int(given) != int(made_with):
            raise BertInsightInputError(
                f"{name}={given} but the predictions were made with {name}={made_with}; leave {name} out "
                "(analyses use the predictions' windows) or predict again with the windows you want."
            )
        resolved.append(int(given if given is not None else made_with if made_with is not None else default))
    check_window_sizes(*resolved)
    return resolved[0], resolved[1]


def _check_prediction(row, window: QAWindow | None, example_id: str, max_length: int, doc_stride: int) -> None:
    """Every field of a prediction row that analyses trust, checked against the window it names."""
    def refuse(why: str) -> None:
        raise BertInsightInputError(
            f"The prediction for example {example_id!r} does not match its windows at max_length={max_length}, "
            f"doc_stride={doc_stride}: {why}. Pass the predictions frame bert_insight.predict made for these "
            "examples and this model (or predictions=None to predict again)."
        )

    if window is None:
        refuse(f"window_index={row.window_index!r} names no window")
    try:
        start_index, end_index = int(row.start_index), int(row.end_index)
        pred_start, pred_end = int(row.pred_start), int(row.pred_end)
    except (TypeError, ValueError):
        refuse("start_index, end_index, pred_start and pred_end must be whole numbers")
    if pred_start < 0 or pred_end < 0:  # a null (SQuAD 2.0 "no answer") prediction points at CLS
        if (pred_start, pred_end, start_index, end_index) != (-1, -1, 0, 0):
            refuse(f"a null answer has pred_start = pred_end = -1 and start_index = end_index = 0, not "
                   f"{pred_start}, {pred_end}, {start_index}, {end_index}")
        return
    context = set(window.context_positions)
    if not (start_index in context and end_index in context and start_index <= end_index):
        refuse(f"start_index={start_index}, end_index={end_index} are not an ordered pair of context tokens "
               f"of the {len(window)}-token window")
    if window.char_span(start_index, end_index) != (pred_start, pred_end):
        refuse(f"tokens {start_index}..{end_index} cover characters {window.char_span(start_index, end_index)}, "
               f"not pred_start={pred_start}, pred_end={pred_end}")


@keywords_only("predictions")
def analysis_windows(
    handle: QAModelHandle,
    examples: pd.DataFrame,
    *,
    predictions: pd.DataFrame | None = None,
    max_length: int | None = None,
    doc_stride: int | None = None,
) -> list[tuple[QAWindow, int, int]]:
    """For each example (in order), the window holding its predicted answer and the answer's
    start and end token positions in it (0, 0 for an empty SQuAD 2.0 prediction).

    ``predictions`` from :func:`predict` choose the windows (computed when None); the window settings
    are the predictions' own (:func:`window_settings`). Every field used is checked against the window.
    """
    examples = validate_examples(examples, allow_empty=False)
    return validated_analysis_windows(handle, examples, predictions=predictions, max_length=max_length,
                                      doc_stride=doc_stride)


def validated_analysis_windows(handle: QAModelHandle, examples: pd.DataFrame, *,
                               predictions: pd.DataFrame | None, max_length: int | None,
                               doc_stride: int | None,
                               progress: bool = False) -> list[tuple[QAWindow, int, int]]:
    """:func:`analysis_windows` for examples a verb has already validated."""
    from .models.handle import require_qa_handle

    require_qa_handle(handle, "this QA analysis")
    max_length, doc_stride = window_settings(predictions, max_length, doc_stride)
    if predictions is None:
        predictions = predict(handle, examples, max_length=max_length, doc_stride=doc_stride, progress=progress)
    require_columns(predictions, _TRUSTED_COLUMNS, what="predictions", made_by="bert_insight.predict")
    by_id = dict(zip(_one_row_per_example(predictions), predictions.itertuples(index=False)))
    windows = encode_validated_windows(handle.tokenizer, examples, max_length=max_length, doc_stride=doc_stride)
    lookup = {(window.example_id, window.window_index): window for window in windows}
    chosen = []
    for example_id in examples["example_id"]:
        row = by_id.get(example_id)
        if row is None:
            raise BertInsightInputError(
                f"No prediction for example {example_id!r}; pass predictions for every example (or None)."
            )
        try:
            window = lookup.get((example_id, int(row.window_index)))
        except (TypeError, ValueError):
            window = None
        _check_prediction(row, window, example_id, max_length, doc_stride)
        chosen.append((window, int(row.start_index), int(row.end_index)))
    return chosen
