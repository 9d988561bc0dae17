"""The tokens frame every per-token analysis joins on: one row per token of each example's analysis
window (the window holding the predicted answer), with its word, segment and role.

Handles without a QA head (a base encoder, GPT-2) have no predictions: their window is the question
followed by the context (:func:`question_context_windows`), with the same columns.

This module sits above :mod:`bert_insight.qa` (it needs predictions to choose the windows) and below
the analyses that join on ``token_index``.
"""

from __future__ import annotations

import bisect
import re
import string
from typing import TYPE_CHECKING

import pandas as pd

from ._compat import keywords_only
from .data.examples import first_answer_span, validate_examples
from .errors import BertInsightInputError
from .frames import TOKEN_COLUMNS, frame_attrs
from .models.handle import ModelHandle, QAModelHandle, require_model_handle
from .qa import validated_analysis_windows, window_settings
from .text import ROLE_PRIORITY, SUPPORTING_DISTANCE, is_number_word, is_punctuation, stopword_set
from .windows import DEFAULT_MAX_LENGTH, QAWindow, encode_question_context, text_word_spans

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def _numeric_chunks(text: str) -> tuple[list[int], list[tuple[int, int, bool]]]:
    """Whitespace-separated chunks, trimmed of outer punctuation, flagged when they are numerals.

    Tokenizers split "1,000" into "1", ",", "000"; the comma belongs to the number, a trailing comma
    (as in "5, 6") does not.
    """
    starts, chunks = [], []
    for match in re.finditer(r"\S+", text):
        chunk = match.group()
        left = len(chunk) - len(chunk.lstrip(string.punctuation))
        right = len(chunk.rstrip(string.punctuation))
        start, end = match.start() + left, match.start() + max(right, left)
        starts.append(match.start())
        chunks.append((start, end, is_number_word(text[start:end])))
    return starts, chunks


def _inside_numeral(char_start: int, char_end: int, starts: list[int], chunks) -> bool:
    position = bisect.bisect_right(starts, char_start) - 1
    if position < 0:
        return False
    start, end, numeric = chunks[position]
    return numeric and start <= char_start and char_end <= end


def window_tokens(tokenizer: PreTrainedTokenizerBase, window: QAWindow, question: str, context: str,
                  span: tuple[int, int] | None, *, trim_spaces: bool = False) -> pd.DataFrame:
    """The tokens frame of one :class:`~bert_insight.qa.QAWindow` (see :func:`tokens` for columns).

    ``span`` is the answer's character span in ``context`` (None: no answer, so no answer roles).
    ``trim_spaces``: words' spans leave out the whitespace byte-level BPE folds into them (the windows of
    causal decoders, :func:`bert_insight.windows.encode_question_context`, count words that way).
    """
    stopwords = stopword_set()
    shift = len(question) - len(question.lstrip())
    word_spans = {0: text_word_spans(tokenizer, question.lstrip(), shift, trim_spaces=trim_spaces),
                  1: text_word_spans(tokenizer, context, trim_spaces=trim_spaces)}
    texts = {0: question, 1: context}

    def word_text(sequence: int, word: int) -> str:
        start, end = word_spans[sequence][word]
        return texts[sequence][start:end]

    question_words = {
        word_text(0, word).lower() for word in word_spans[0]
        if not is_punctuation(word_text(0, word)) and word_text(0, word).lower() not in stopwords
    }
    answer_words: list[int] = []
    if span is not None:
        answer_words = sorted(
            word for word, (start, end) in word_spans[1].items() if start < span[1] and end > span[0]
        )
    numerals = {sequence: _numeric_chunks(texts[sequence]) for sequence in (0, 1)}
    pieces = tokenizer.convert_ids_to_tokens(window.input_ids)

    rows = []
    for index, (piece, sequence, word, (char_start, char_end)) in enumerate(
        zip(pieces, window.sequence_ids, window.word_ids, window.offsets)
    ):
        if sequence is None:
            rows.append((window.example_id, index, piece, -1, piece, "special", "special", -1, -1,
                         False, False, False, False, False))
            continue
        text = word_text(sequence, word)
        in_answer = in_question = near_answer = False
        if sequence == 1:
            in_question = text.lower() in question_words
            word_in_answer = bool(answer_words) and answer_words[0] <= word <= answer_words[-1]
            if char_start < char_end:
                in_answer = span is not None and char_start < span[1] and char_end > span[0]
            else:  # a whitespace piece of a byte-level BPE word ("Ġ" of "Ġ"+"De"): covers no character
                in_answer = word_in_answer and span is not None
            near_answer = bool(answer_words) and not word_in_answer and min(
                abs(word - answer_words[0]), abs(word - answer_words[-1])) <= SUPPORTING_DISTANCE
            segment = "context"
            role = next(name for name, flag in zip(ROLE_PRIORITY, (in_answer, in_question, near_answer, True))
                        if flag)
        else:
            segment = role = "question"
        is_number = is_number_word(text) or _inside_numeral(char_start, char_end, *numerals[sequence])
        rows.append((window.example_id, index, piece, int(word), text, segment, role, int(char_start),
                     int(char_end), bool(in_answer), bool(in_question), bool(near_answer), bool(is_number),
                     text.lower() in stopwords))
    return pd.DataFrame(rows, columns=list(TOKEN_COLUMNS))


ANSWER_CHOICES = ("predicted", "gold")


def answer_windows(handle: QAModelHandle, examples: pd.DataFrame, *, predictions: pd.DataFrame | None,
                   max_length: int | None, doc_stride: int | None, progress: bool,
                   answer: str = "predicted") -> tuple[list[tuple[pd.Series, QAWindow, tuple[int, int] | None]], int, int]:
    """For validated examples: (example row, analysis window, answer span) each, and the window settings.

    Predicts first when ``predictions`` is None. ``answer="predicted"``: the span is the predicted one (its
    tokens' characters, which the analysis window has checked against pred_start/pred_end; None for a
    null prediction); ``"gold"``: the first gold answer's, else the predicted one. Every per-token verb
    (tokens, hidden states) starts here.
    """
    if answer not in ANSWER_CHOICES:
        raise BertInsightInputError(f"answer={answer!r}; use 'predicted' (the model's span: Ramnath et al.'s "
                                    "definition) or 'gold' (the first gold answer, else the predicted span).")
    max_length, doc_stride = window_settings(predictions, max_length, doc_stride)
    chosen = validated_analysis_windows(handle, examples, predictions=predictions, max_length=max_length,
                                        doc_stride=doc_stride, progress=progress)
    spans = []
    for (_, example), (window, start_index, end_index) in zip(examples.iterrows(), chosen):
        predicted = window.char_span(start_index, end_index) if start_index in window.context_positions else None
        spans.append((example, window, predicted if answer == "predicted" else first_answer_span(example) or predicted))
    return spans, max_length, doc_stride


def question_context_windows(handle: ModelHandle, examples: pd.DataFrame, *, max_length: int | None = None,
                             predictions: pd.DataFrame | None = None, doc_stride: int | None = None
                             ) -> tuple[list[tuple[pd.Series, QAWindow, tuple[int, int] | None]], int, list[str]]:
    """For validated examples and a handle without a QA head: (example row, window, answer span) each, the
    max_length used (default 384, or the model's positions when fewer) and the ids of the examples whose
    context was cut to fit it.

    One window per example, the question followed by the context
    (:func:`bert_insight.windows.encode_question_context`; one sequence for causal decoders such as GPT-2).
    Nothing is predicted, so the answer span is the first gold answer's (None without one).
    ``predictions`` and ``doc_stride`` belong to QA handles' sliding windows and are refused.
    """
    require_model_handle(handle, "the tokens frame")
    if predictions is not None or doc_stride is not None:
        raise BertInsightInputError(
            f"{handle.name!r} has no QA head, so its window is the question followed by the context (one per "
            "example, no sliding windows): drop predictions= and doc_stride=, and pass max_length= only.")
    if max_length is None:
        # The default never exceeds what the position embeddings take (a small model's default is its size).
        max_length = min(DEFAULT_MAX_LENGTH, handle.usable_positions or DEFAULT_MAX_LENGTH)
    handle.check_fits(max_length)
    windows, truncated = encode_question_context(handle.tokenizer, examples, max_length=max_length,
                                                 joined=handle.adapter.causal)
    chosen = [(example, window, first_answer_span(example))
              for (_, example), window in zip(examples.iterrows(), windows)]
    return chosen, max_length, truncated


def truncation_note(truncated: list[str], max_length: int) -> str:
    """The ``attrs["note"]`` of a frame made from question-then-context windows."""
    if not truncated:
        return f"One window per example: the question followed by the whole context (max_length={max_length})."
    return (f"One window per example: the question followed by the context, cut to max_length={max_length} "
            f"tokens for {len(truncated)} example(s) (attrs['truncated']); raise max_length to keep more context.")


@keywords_only("predictions")
def tokens(
    handle: ModelHandle,
    examples: pd.DataFrame,
    *,
    predictions: pd.DataFrame | None = None,
    answer: str = "predicted",
    max_length: int | None = None,
    doc_stride: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per token of each example's analysis window (the window holding the predicted answer).

    Columns: example_id, token_index (position in the model input), token (word piece), word_index
    (the tokenizer's word number within the question or the context; -1 for special tokens), word
    (the whole word's original text), segment (question / context / special), role (context tokens:
    answer > question_word > supporting > other; otherwise the segment name), char_start, char_end
    (span in the question or context; -1 for special tokens), and booleans in_answer (the piece
    overlaps the answer: ``answer="predicted"``, the default, the model's predicted span, as Ramnath et
    al. used "for all the analysis"; ``"gold"``, the first gold answer, or the predicted one when there is
    no gold; nothing for a "no answer" prediction), in_question (a
    context word whose lower-case form is a non-stopword, non-punctuation question word), near_answer
    (a context word within 5 words of the answer, outside it), is_number (numerals such as "1,000" or
    "3.5" and number words), is_stopword (scikit-learn's English stopwords).

    ``predictions`` from :func:`bert_insight.predict` choose the windows (computed when None, with
    ``max_length`` / ``doc_stride`` or the defaults 384 / 128); with predictions, the window settings
    are the predictions' own.

    A handle without a QA head (:func:`bert_insight.load_base_model`, GPT-2) has no predictions: each
    example's window is its question followed by its context (:func:`question_context_windows`; cut to
    ``max_length``, listed in ``attrs["truncated"]``), and the answer is the first gold answer.
    """
    examples = validate_examples(examples, allow_empty=False)
    if not isinstance(handle, QAModelHandle):
        if answer not in ANSWER_CHOICES:
            raise BertInsightInputError(f"answer={answer!r}; use 'predicted' or 'gold'.")
        chosen, max_length, truncated = question_context_windows(handle, examples, max_length=max_length,
                                                                 predictions=predictions, doc_stride=doc_stride)
        trim = handle.adapter.causal
        frame = pd.concat([window_tokens(handle.tokenizer, window, example["question"], example["context"], span,
                                         trim_spaces=trim) for example, window, span in chosen], ignore_index=True)
        frame.attrs = frame_attrs(handle, "bert_insight.tokens",
                                  {"max_length": max_length, "doc_stride": None, "answer": "gold",
                                   "window": "question_context"},
                                  note=truncation_note(truncated, max_length), truncated=truncated)
        return frame
    chosen, max_length, doc_stride = answer_windows(handle, examples, predictions=predictions,
                                                    max_length=max_length, doc_stride=doc_stride, progress=progress,
                                                    answer=answer)
    frames = [window_tokens(handle.tokenizer, window, example["question"], example["context"], span)
              for example, window, span in chosen]
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs = frame_attrs(handle, "bert_insight.tokens", {"max_length": max_length, "doc_stride": doc_stride,
                                                              "answer": answer})
    return frame
