"""Model inputs: QA windows (the question plus one slice of the context), sentence(-pair) inputs,
and batches of either.

A long context is cut into overlapping windows (question first, then a slice of the context), as in
Hugging Face's ``run_qa.py``. Every verb that runs a QA model goes through :func:`encode_windows`, and
``bert_insight.models.handle.QAModelHandle.batch_inputs`` turns windows into padded tensors.

Sentence tasks (GLUE) use the same :class:`QAWindow` record, one per example, with text_a as
sequence 0 and text_b as sequence 1 (:func:`encode_sentences`), so batching, tokens frames and
attention analyses serve both kinds of model.

Handles without a QA head (a base encoder, GPT-2) get one window per example instead
(:func:`encode_question_context`): the first window of the usual pair for encoders, and for causal
decoders the question, a space and the context as one sequence without special tokens, each token's
segment read from its character offsets.

Shapes: one window is T tokens; a batch is (B, T_max) after dynamic padding.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pandas as pd
import torch

from .data.examples import validate_examples
from .errors import BertInsightInputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: Window settings of every verb unless the predictions frame says otherwise.
DEFAULT_MAX_LENGTH = 384
DEFAULT_DOC_STRIDE = 128


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
def _check_tokenizer(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise BertInsightInputError(
            f"{type(tokenizer).__name__} is a slow tokenizer; QA windows need character offsets from a fast "
            "tokenizer. Load it with AutoTokenizer.from_pretrained(name, use_fast=True)."
        )


def check_window_sizes(max_length: int, doc_stride: int) -> None:
    if not (isinstance(max_length, int) and max_length > 0):
        raise BertInsightInputError(f"max_length={max_length!r}; pass a positive number of tokens such as 384.")
    if not (isinstance(doc_stride, int) and 0 <= doc_stride < max_length):
        raise BertInsightInputError(
            f"doc_stride={doc_stride!r} must be a whole number of overlapping tokens in [0, max_length); "
            "the usual choice is 128 with max_length=384."
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
def encode_windows(tokenizer: PreTrainedTokenizerBase, examples: pd.DataFrame, *, max_length: int = DEFAULT_MAX_LENGTH,
                   doc_stride: int = DEFAULT_DOC_STRIDE) -> list[QAWindow]:
    """Cut every example into overlapping windows of at most ``max_length`` tokens.

    Question first, context second; only the context is truncated, consecutive windows share
    ``doc_stride`` context tokens. Returns the windows of all examples, in example order.
    """
    return encode_validated_windows(tokenizer, validate_examples(examples), max_length=max_length,
                                    doc_stride=doc_stride)


def encode_validated_windows(tokenizer: PreTrainedTokenizerBase, examples: pd.DataFrame, *, max_length: int,
                             doc_stride: int) -> list[QAWindow]:
    """:func:`encode_windows` for a frame that already went through ``validate_examples`` (verbs validate
    once on entry)."""
    _check_tokenizer(tokenizer)
    check_window_sizes(max_length, doc_stride)
    if examples.empty:
        return []
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


# ---- one window per example (handles without a QA head) ----------------------------------------------
def text_word_spans(tokenizer, text: str, shift: int = 0, *, trim_spaces: bool = False) -> dict[int, tuple[int, int]]:
    """Character span of every tokenizer word of ``text`` (word number -> (start, end)), shifted by ``shift``.

    ``trim_spaces``: drop the whitespace byte-level BPE folds into a word ("Ġgame" spans "game"); a
    word of whitespace only gets the empty span at its end, as the tokenizers' own ``trim_offsets`` does.
    """
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: dict[int, tuple[int, int]] = {}
    for word, (start, end) in zip(encoding.word_ids(), encoding["offset_mapping"]):
        if word is None:
            continue
        low, high = spans.get(word, (start, end))
        spans[word] = (min(low, start), max(high, end))
    if trim_spaces:
        spans = {word: _trimmed(text, start, end) for word, (start, end) in spans.items()}
    return {word: (start + shift, end + shift) for word, (start, end) in spans.items()}


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) without outer whitespace; whitespace only: the empty span at ``end``."""
    low, high = start, end
    while low < high and text[low].isspace():
        low += 1
    while high > low and text[high - 1].isspace():
        high -= 1
    return (low, high) if low < high else (end, end)


def _word_at(spans: dict[int, tuple[int, int]], start: int, end: int) -> int:
    """The word whose span overlaps [start, end) (an empty span: the whitespace word ending there, else the
    word holding that position), else the last word starting before it (the first word when none does)."""
    ordered = sorted(spans.items(), key=lambda item: (item[1][0], item[0]))
    if end > start:
        tests = [lambda low, high: low < end and high > start]
    else:
        tests = [lambda low, high: low == high == start, lambda low, high: low <= start < high]
    for test in tests:
        for word, (low, high) in ordered:
            if test(low, high):
                return word
    before = [word for word, (low, _) in ordered if low <= start]
    return before[-1] if before else ordered[0][0]


def _joined_window(tokenizer, example_id: str, question: str, context: str, max_length: int
                   ) -> tuple[QAWindow, bool]:
    """The window of a causal decoder: question (leading/trailing whitespace dropped), one space, context,
    no special tokens, cut to ``max_length`` tokens; and whether the context was cut."""
    shift = len(question) - len(question.lstrip())
    stripped = question.strip()
    text = f"{stripped} {context}"
    question_end, context_start = len(stripped), len(stripped) + 1
    # One token more than fits tells whether anything was cut, without tokenizing a long context in full.
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                         max_length=max_length + 1)
    truncated = len(encoding["input_ids"]) > max_length
    ids = list(encoding["input_ids"])[:max_length]
    words = {0: text_word_spans(tokenizer, question.lstrip(), shift, trim_spaces=True),
             1: text_word_spans(tokenizer, context, trim_spaces=True)}
    offsets, sequence_ids, word_ids = [], [], []
    for raw_start, raw_end in list(encoding["offset_mapping"])[:max_length]:
        start, end = _trimmed(text, int(raw_start), int(raw_end))
        if start == end:  # whitespace only: it sits where it ends
            sequence = None if start == context_start else (0 if start < context_start else 1)
        else:
            sequence = 0 if start < context_start else 1
        if sequence == 0:
            start, end = start + shift, min(end, question_end) + shift
        elif sequence == 1:
            start, end = max(start, context_start) - context_start, end - context_start
        if sequence is None:
            # The joining space, when it is a token of its own: in neither text, like a special token.
            offsets.append((0, 0))
            word_ids.append(None)
        else:
            offsets.append((start, end))
            word_ids.append(_word_at(words[sequence], start, end))
        sequence_ids.append(sequence)
    if 1 not in sequence_ids:
        raise BertInsightInputError(
            f"The question of example {example_id!r} fills all max_length={max_length} tokens, leaving none for "
            "the context. Raise max_length or shorten the question."
        )
    window = QAWindow(example_id=example_id, window_index=0, input_ids=ids, token_type_ids=None, offsets=offsets,
                      sequence_ids=sequence_ids, word_ids=word_ids, n_windows=1)
    return window, truncated


def encode_question_context(tokenizer: PreTrainedTokenizerBase, examples: pd.DataFrame, *,
                            max_length: int = DEFAULT_MAX_LENGTH, joined: bool = False
                            ) -> tuple[list[QAWindow], list[str]]:
    """One window per (validated) example: the question followed by the context, for handles without a QA
    head (no prediction picks a window). Returns the windows in example order and the ids of the examples
    whose context was cut to fit ``max_length`` tokens.

    ``joined=False`` (encoders): the usual pair ([CLS] question [SEP] context [SEP] for BERT), only the
    context truncated: the first window :func:`encode_windows` makes. ``joined=True`` (causal decoders,
    GPT-2): ``question + " " + context`` as one sequence without special tokens, truncated at the end;
    each token's sequence id (0 question, 1 context) comes from its character offsets, which are trimmed of
    the whitespace byte-level BPE folds into a token ("Ġgame" -> "game") and index the question or the
    context as in every window; a token holding only the joining space has sequence id None. ``word_ids``
    are the tokenizer's word numbers within the question or the context alone (as the tokens frame counts
    words).
    """
    _check_tokenizer(tokenizer)
    if isinstance(max_length, bool) or not (isinstance(max_length, int) and max_length > 0):
        raise BertInsightInputError(f"max_length={max_length!r}; pass a positive number of tokens such as 384.")
    if examples.empty:
        return [], []
    if not joined:
        questions = [question.lstrip() for question in examples["question"]]
        lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        for example_id, length in zip(examples["example_id"], lengths):
            if max_length - specials - length <= 0:
                raise BertInsightInputError(
                    f"The question of example {example_id!r} has {length} tokens, leaving no room for the context "
                    f"within max_length={max_length} (with {specials} special tokens). Raise max_length or "
                    "shorten the question.")
        firsts = [window for window in encode_validated_windows(tokenizer, examples, max_length=max_length,
                                                                  doc_stride=0) if window.window_index == 0]
        truncated = [window.example_id for window in firsts if window.n_windows > 1]
        return [replace(window, n_windows=1) for window in firsts], truncated
    windows, truncated = [], []
    for example_id, question, context in zip(examples["example_id"], examples["question"], examples["context"]):
        window, cut = _joined_window(tokenizer, str(example_id), question, context, max_length)
        windows.append(window)
        if cut:
            truncated.append(str(example_id))
    return windows, truncated


def length_sorted_batches(windows: list[QAWindow], batch_size: int) -> list[list[int]]:
    """Indices of ``windows`` in batches of at most ``batch_size``, shortest windows first: members of a
    batch have similar lengths, so padding (wasted compute) stays small. Checks ``batch_size``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise BertInsightInputError(f"batch_size={batch_size!r}; pass a positive whole number such as 16.")
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def collate_windows(windows: list[QAWindow], device: torch.device | str, *, pad_token_id: int,
                    token_type_ids: bool = True) -> dict:
    """Pad ``windows`` to the longest one in the batch (dynamic padding) and stack them on ``device``.

    token_type_ids are included when asked for and every window has them (the one place that decides).
    """
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


# ---- sentence(-pair) inputs ------------------------------------------------------------------------
#: Sentence-task inputs longer than this are truncated (longest sentence first), as GLUE fine-tuning does.
DEFAULT_SENTENCE_MAX_LENGTH = 128


def encode_sentences(tokenizer: PreTrainedTokenizerBase, examples: pd.DataFrame, *,
                     max_length: int = DEFAULT_SENTENCE_MAX_LENGTH) -> list[QAWindow]:
    """One window per example of a sentence-task frame (``bert_insight.data.glue``'s layout, validated
    by the caller): text_a as sequence 0 and text_b (when the task has pairs) as sequence 1, truncated
    longest-first to ``max_length`` tokens. ``offsets`` index text_a or text_b by ``sequence_ids``."""
    _check_tokenizer(tokenizer)
    if not (isinstance(max_length, int) and max_length > 0):
        raise BertInsightInputError(f"max_length={max_length!r}; pass a positive number of tokens such as 128.")
    if examples.empty:
        return []
    first = examples["text_a"].tolist()
    second = examples["text_b"].tolist()
    paired = any(isinstance(text, str) for text in second)
    if paired and not all(isinstance(text, str) for text in second):
        raise BertInsightInputError("Some examples have a text_b and some do not; a frame holds one task, all "
                                    "pairs or all single sentences.")
    specials = tokenizer.num_special_tokens_to_add(pair=paired)
    if max_length <= specials + (2 if paired else 1):
        raise BertInsightInputError(f"max_length={max_length} leaves no room for text after the {specials} "
                                    "special tokens; pass 128 or so.")
    encoding = tokenizer(first, second if paired else None, truncation=True, max_length=max_length,
                         return_offsets_mapping=True, padding=False)
    has_token_types = "token_type_ids" in encoding
    windows = []
    for row, example_id in enumerate(examples["example_id"]):
        windows.append(QAWindow(
            example_id=str(example_id), window_index=0, input_ids=list(encoding["input_ids"][row]),
            token_type_ids=list(encoding["token_type_ids"][row]) if has_token_types else None,
            offsets=[(int(start), int(end)) for start, end in encoding["offset_mapping"][row]],
            sequence_ids=list(encoding.sequence_ids(row)), word_ids=list(encoding.word_ids(row)), n_windows=1,
        ))
    return windows


def word_pieces(window: QAWindow, word_spans, *, sequence: int = 0) -> list[list[int]]:
    """For each word (a (char_start, char_end) span into the window's text ``sequence``: 0 = text_a,
    1 = text_b; :func:`bert_insight.text.joined_word_spans` gives them for words joined by spaces),
    the positions of its tokens in ``window``: tokens of that sequence whose character offsets overlap
    the span, in order (first = the word's first piece). A word truncated away gets []."""
    spans = [(int(start), int(end)) for start, end in word_spans]
    starts = [start for start, _ in spans]
    pieces: list[list[int]] = [[] for _ in spans]
    for position, ((start, end), token_sequence) in enumerate(zip(window.offsets, window.sequence_ids)):
        if token_sequence != sequence or end <= start:
            continue
        word = bisect.bisect_left(starts, end) - 1  # last word starting before the token ends
        while word >= 0 and spans[word][1] > start:
            pieces[word].append(position)
            word -= 1
    return [sorted(p) for p in pieces]
