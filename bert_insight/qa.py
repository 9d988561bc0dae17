"""Extractive QA with sliding windows: encode, predict answer spans, score them against SQuAD.

A long context is cut into overlapping windows (question first, then a slice of the context), as in
Hugging Face's ``run_qa.py``. ``predict`` runs the model on every window, searches all spans of
context tokens exhaustively (start <= end < start + max_answer_length) in every window, and keeps the
best one per example. ``analysis_windows`` hands every per-example analysis the one window that holds
the predicted answer, so their ``token_index`` values join across frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import torch

from .errors import BertInsightInputError
from .text import exact_match_score, f1_score, normalize_answer, question_type

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from .models.loading import QAModelHandle

QUESTION_TYPE_ORDER = (
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how many", "how much", "how", "other",
)

PREDICTION_COLUMNS = (
    "example_id", "pred_text", "pred_start", "pred_end", "start_index", "end_index", "window_index",
    "score", "confidence", "exact_match", "f1", "n_windows",
)


@dataclass(frozen=True)
class QAWindow:
    """One model input: the question plus one slice of the context.

    ``offsets[i]`` is token i's (start, end) character span in the question (``sequence_ids[i] == 0``)
    or the context (``sequence_ids[i] == 1``); special tokens have ``sequence_ids[i] is None`` and
    offsets (0, 0). ``word_ids[i]`` is the tokenizer's word number within its own sequence.
    ``token_type_ids`` is None for tokenizers without segment ids (RoBERTa, DistilBERT).
    """

    example_id: str
    window_index: int
    input_ids: list[int]
    token_type_ids: list[int] | None
    offsets: list[tuple[int, int]]
    sequence_ids: list[int | None]
    word_ids: list[int | None]
    n_windows: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def context_positions(self) -> list[int]:
        """Token positions that belong to the context."""
        return [i for i, sequence in enumerate(self.sequence_ids) if sequence == 1]

    def char_span(self, start_index: int, end_index: int) -> tuple[int, int]:
        """Context characters [start, end) covered by context tokens start_index..end_index."""
        return self.offsets[start_index][0], self.offsets[end_index][1]


# ---- input checks ------------------------------------------------------------------------------------
def _validated(examples: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(examples, pd.DataFrame):
        raise BertInsightInputError(
            f"examples must be a pandas DataFrame (got {type(examples).__name__}); build one with "
            "bert_insight.load_squad or with columns example_id, question, context, answers."
        )
    try:
        from .data import validate_examples
    except ImportError:  # the data module is optional for hand-built frames
        validate_examples = None
    if validate_examples is not None:
        checked = validate_examples(examples)
        if isinstance(checked, pd.DataFrame):
            examples = checked
    missing = [column for column in ("example_id", "question", "context") if column not in examples.columns]
    if missing:
        raise BertInsightInputError(
            f"examples lack the column(s) {missing}; an examples frame needs example_id, question, context "
            "(and answers for scoring). bert_insight.load_squad returns one."
        )
    duplicated = examples["example_id"][examples["example_id"].duplicated()]
    if len(duplicated):
        raise BertInsightInputError(
            f"example_id must be unique; {duplicated.iloc[0]!r} occurs more than once. Drop duplicates first."
        )
    for column in ("question", "context"):
        bad = examples[~examples[column].map(lambda value: isinstance(value, str) and bool(value.strip()))]
        if len(bad):
            raise BertInsightInputError(
                f"Example {bad['example_id'].iloc[0]!r} has an empty {column}; every example needs a "
                f"non-empty question and context. Drop or fix it before calling bert_insight."
            )
    return examples.reset_index(drop=True)


def _check_tokenizer(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise BertInsightInputError(
            f"{type(tokenizer).__name__} is a slow tokenizer; QA windows need character offsets from a fast "
            "tokenizer. Load it with AutoTokenizer.from_pretrained(name, use_fast=True)."
        )


def _check_window_sizes(max_length: int, doc_stride: int) -> None:
    if not (isinstance(max_length, int) and max_length > 0):
        raise BertInsightInputError(f"max_length={max_length!r}; pass a positive number of tokens such as 384.")
    if not (isinstance(doc_stride, int) and 0 <= doc_stride < max_length):
        raise BertInsightInputError(
            f"doc_stride={doc_stride!r} must be a whole number of overlapping tokens in [0, max_length); "
            "the usual choice is 128 with max_length=384."
        )


def _check_model_fits(handle, max_length: int) -> None:
    config = handle.model.config
    positions = getattr(config, "max_position_embeddings", None)
    if positions is None:
        return
    # RoBERTa-style position ids start after the padding index, which uses up two positions.
    usable = positions - 2 if handle.adapter.family == "roberta" else positions
    if max_length > usable:
        raise BertInsightInputError(
            f"max_length={max_length} exceeds the {usable} positions {handle.name!r} can embed; "
            f"pass max_length={usable} or less (and a doc_stride below it)."
        )


def _check_questions_fit(tokenizer, examples: pd.DataFrame, questions: list[str], max_length: int,
                         doc_stride: int) -> None:
    # The Rust tokenizer panics (uncatchable as Exception) when the question leaves no room for the
    # context stride, so check the room first.
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    for example_id, length in zip(examples["example_id"], lengths):
        room = max_length - specials - length
        if room <= doc_stride:
            raise BertInsightInputError(
                f"The question of example {example_id!r} has {length} tokens, leaving {room} context tokens "
                f"per window, not more than doc_stride={doc_stride}. Raise max_length, lower doc_stride or "
                "shorten the question."
            )


# ---- windows -------------------------------------------------------------------------------------------
def encode_windows(tokenizer: PreTrainedTokenizerBase, examples: pd.DataFrame, *, max_length: int = 384,
                   doc_stride: int = 128) -> list[QAWindow]:
    """Cut every example into overlapping windows of at most ``max_length`` tokens.

    Question first, context second; only the context is truncated, consecutive windows share
    ``doc_stride`` context tokens. Returns the windows of all examples, in example order.
    """
    _check_tokenizer(tokenizer)
    _check_window_sizes(max_length, doc_stride)
    examples = _validated(examples)
    raw_questions = examples["question"].tolist()
    # Leading spaces change byte-level BPE tokens (RoBERTa); strip them and shift offsets back.
    questions = [question.lstrip() for question in raw_questions]
    shifts = [len(raw) - len(stripped) for raw, stripped in zip(raw_questions, questions)]
    _check_questions_fit(tokenizer, examples, questions, max_length, doc_stride)
    encoding = tokenizer(
        questions,
        examples["context"].tolist(),
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    sample_of_window = encoding["overflow_to_sample_mapping"]
    counts = pd.Series(sample_of_window).value_counts().to_dict()
    has_token_types = "token_type_ids" in encoding
    windows: list[QAWindow] = []
    seen: dict[int, int] = {}
    for position, sample in enumerate(sample_of_window):
        sequence_ids = encoding.sequence_ids(position)
        shift = shifts[sample]
        offsets = [
            (start + shift, end + shift) if sequence == 0 else (int(start), int(end))
            for (start, end), sequence in zip(encoding["offset_mapping"][position], sequence_ids)
        ]
        window_index = seen.get(sample, 0)
        seen[sample] = window_index + 1
        windows.append(
            QAWindow(
                example_id=str(examples["example_id"].iloc[sample]),
                window_index=window_index,
                input_ids=list(encoding["input_ids"][position]),
                token_type_ids=list(encoding["token_type_ids"][position]) if has_token_types else None,
                offsets=offsets,
                sequence_ids=list(sequence_ids),
                word_ids=list(encoding.word_ids(position)),
                n_windows=int(counts[sample]),
            )
        )
    return windows


def _uses_token_types(handle, windows: list[QAWindow]) -> bool:
    return handle.adapter.uses_token_type_ids and all(window.token_type_ids is not None for window in windows)


def window_inputs(window: QAWindow, device: torch.device | str, *, token_type_ids: bool = True) -> dict:
    """Model keyword arguments for one window on ``device``: tensors of shape (1, len(window)), no padding.

    Keys: input_ids, attention_mask and, when the window has them and ``token_type_ids`` is true,
    token_type_ids.
    """
    return collate_windows([window], device, pad_token_id=0, token_type_ids=token_type_ids)


def collate_windows(windows: list[QAWindow], device: torch.device | str, *, pad_token_id: int,
                    token_type_ids: bool = True) -> dict:
    """Pad ``windows`` to the longest one in the batch (dynamic padding) and stack them on ``device``."""
    width = max(len(window) for window in windows)
    input_ids = torch.full((len(windows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(windows), width), dtype=torch.long)
    with_types = token_type_ids and all(window.token_type_ids is not None for window in windows)
    types = torch.zeros((len(windows), width), dtype=torch.long) if with_types else None
    for row, window in enumerate(windows):
        input_ids[row, : len(window)] = torch.tensor(window.input_ids)
        attention_mask[row, : len(window)] = 1
        if types is not None:
            types[row, : len(window)] = torch.tensor(window.token_type_ids)
    inputs = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
    if types is not None:
        inputs["token_type_ids"] = types.to(device)
    return inputs


def _window_logits(handle: QAModelHandle, windows: list[QAWindow], *, batch_size: int,
                   progress: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Start and end logits (float32, CPU, trimmed to each window's length) for every window."""
    from tqdm.auto import tqdm

    if not (isinstance(batch_size, int) and batch_size > 0):
        raise BertInsightInputError(f"batch_size={batch_size!r}; pass a positive whole number such as 16.")
    pad_token_id = handle.tokenizer.pad_token_id
    pad_token_id = 0 if pad_token_id is None else pad_token_id
    use_types = _uses_token_types(handle, windows)
    # Batching windows of similar length keeps padding (wasted compute) small.
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    results: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(windows)
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for batch in tqdm(batches, desc="predict", unit="batch", disable=not progress):
            inputs = collate_windows([windows[i] for i in batch], handle.device, pad_token_id=pad_token_id,
                                     token_type_ids=use_types)
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


def _gold_texts(row) -> list[str]:
    answers = row.get("answers") if hasattr(row, "get") else None
    if answers is None or (isinstance(answers, float) and math.isnan(answers)):
        return []
    return [answer["text"] for answer in list(answers)]


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


def _is_squad2(examples: pd.DataFrame, null_threshold: float | None) -> bool:
    if null_threshold is not None:
        return True
    return "is_impossible" in examples.columns and bool(examples["is_impossible"].fillna(False).astype(bool).any())


def predict(
    handle: QAModelHandle,
    examples: pd.DataFrame,
    *,
    max_length: int = 384,
    doc_stride: int = 128,
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
    empty when null_score > best_span_score + null_threshold (default 0.0), as in Hugging Face's
    ``run_qa.py``.

    Returns one row per example with columns: example_id, pred_text, pred_start, pred_end (character
    offsets into the context, end exclusive; -1 for an empty prediction), start_index, end_index (token
    positions in the chosen window; 0 for an empty prediction), window_index, score (start + end logit),
    confidence (softmax(start)[start_index] * softmax(end)[end_index] within that window), exact_match,
    f1 (in [0, 1], official SQuAD normalisation, max over gold answers; NaN without gold in SQuAD 1.1
    mode), n_windows. ``attrs`` carry the model name, fingerprint and parameters.
    """
    examples = _validated(examples)
    _check_model_fits(handle, max_length)
    if not (isinstance(max_answer_length, int) and max_answer_length > 0):
        raise BertInsightInputError(f"max_answer_length={max_answer_length!r}; pass a positive number of tokens.")
    squad2 = _is_squad2(examples, null_threshold)
    threshold = 0.0 if null_threshold is None else float(null_threshold)
    windows = encode_windows(handle.tokenizer, examples, max_length=max_length, doc_stride=doc_stride)
    logits = _window_logits(handle, windows, batch_size=batch_size, progress=progress)

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
    frame = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    frame.attrs = {
        "model": handle.name,
        "fingerprint": handle.fingerprint,
        "function": "bert_insight.predict",
        "params": {"max_length": max_length, "doc_stride": doc_stride, "max_answer_length": max_answer_length,
                   "null_threshold": null_threshold, "squad2": squad2},
    }
    return frame


def evaluate(predictions: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """SQuAD exact match and F1 (percent), overall and per question type.

    ``pred_text`` is re-scored against the examples' gold answers (SQuAD 2.0 rule when any example is
    unanswerable). Returns columns group ("all", then the question types present, in the order of
    ``QUESTION_TYPE_ORDER``: first wh-word of the question), n, exact_match, f1. Examples without gold
    answers in SQuAD 1.1 mode are left out of the means.
    """
    examples = _validated(examples)
    if not isinstance(predictions, pd.DataFrame) or not {"example_id", "pred_text"} <= set(predictions.columns):
        raise BertInsightInputError(
            "predictions must be a DataFrame with columns example_id and pred_text, as returned by "
            "bert_insight.predict."
        )
    predicted = dict(zip(predictions["example_id"].astype(str), predictions["pred_text"]))
    missing = [str(i) for i in examples["example_id"] if str(i) not in predicted]
    if missing:
        raise BertInsightInputError(
            f"{len(missing)} example(s) have no prediction (first: {missing[0]!r}); predict every example, "
            "or evaluate only the examples you predicted."
        )
    squad2 = _is_squad2(examples, None)
    rows = []
    for _, example in examples.iterrows():
        text = predicted[str(example["example_id"])]
        text = "" if not isinstance(text, str) else text
        exact, overlap = score_prediction(text, _gold_texts(example), squad2=squad2)
        rows.append({"group": question_type(example["question"]), "exact_match": exact, "f1": overlap})
    scored = pd.DataFrame(rows, columns=["group", "exact_match", "f1"]).dropna()

    def summary(group: str, part: pd.DataFrame) -> dict:
        return {"group": group, "n": len(part), "exact_match": 100.0 * part["exact_match"].mean(),
                "f1": 100.0 * part["f1"].mean()}

    result = [summary("all", scored)]
    for group in QUESTION_TYPE_ORDER:
        part = scored[scored["group"] == group]
        if len(part):
            result.append(summary(group, part))
    frame = pd.DataFrame(result, columns=["group", "n", "exact_match", "f1"])
    frame.attrs = dict(getattr(predictions, "attrs", {}))
    return frame


def analysis_windows(
    handle: QAModelHandle,
    examples: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
    *,
    max_length: int = 384,
    doc_stride: int = 128,
) -> list[tuple[QAWindow, int, int]]:
    """For each example (in order), the window holding its predicted answer and the answer's
    start and end token positions in it (0, 0 for an empty SQuAD 2.0 prediction).

    ``predictions`` (from :func:`predict` with the same max_length and doc_stride) are computed when
    None.
    """
    examples = _validated(examples)
    if predictions is None:
        predictions = predict(handle, examples, max_length=max_length, doc_stride=doc_stride, progress=False)
    needed = {"example_id", "window_index", "start_index", "end_index", "pred_start", "pred_end"}
    if not isinstance(predictions, pd.DataFrame) or not needed <= set(predictions.columns):
        raise BertInsightInputError(
            f"predictions must be the frame bert_insight.predict returns (columns {sorted(needed)})."
        )
    by_id = {str(row.example_id): row for row in predictions.itertuples(index=False)}
    windows = encode_windows(handle.tokenizer, examples, max_length=max_length, doc_stride=doc_stride)
    lookup = {(window.example_id, window.window_index): window for window in windows}
    chosen = []
    for example_id in examples["example_id"].astype(str):
        row = by_id.get(example_id)
        if row is None:
            raise BertInsightInputError(
                f"No prediction for example {example_id!r}; pass predictions for every example (or None)."
            )
        window = lookup.get((example_id, int(row.window_index)))
        start_index, end_index = int(row.start_index), int(row.end_index)
        consistent = window is not None and end_index < len(window) and (
            row.pred_start < 0 or window.char_span(start_index, end_index) == (row.pred_start, row.pred_end)
        )
        if not consistent:
            raise BertInsightInputError(
                f"The prediction for example {example_id!r} does not match its windows at max_length="
                f"{max_length}, doc_stride={doc_stride}; pass the same max_length and doc_stride that "
                "predict used (or predictions=None)."
            )
        chosen.append((window, start_index, end_index))
    return chosen
