"""Words, word pieces and their roles: SQuAD answer normalisation, question types, number words,
stopwords and the tokens frame that every per-token analysis joins on.
"""

from __future__ import annotations

import bisect
import re
import string
from collections import Counter
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from .models.loading import QAModelHandle
    from .qa import QAWindow

# ---- SQuAD answer normalisation (the official evaluate-v1.1.py logic) ---------------------------------
_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (official SQuAD)."""
    text = text.lower()
    text = "".join(character for character in text if character not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    """True when the two answers are equal after :func:`normalize_answer`."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token-overlap F1 of the normalised answers (official SQuAD 1.1: 0 when nothing overlaps)."""
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(ground_truth).split()
    common = Counter(predicted) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


# ---- question types -------------------------------------------------------------------------------------
_WH_WORDS = {"what", "which", "who", "whom", "whose", "when", "where", "why"}


def question_type(question: str) -> str:
    """The first wh-word of ``question``: what, which, who, whom, whose, when, where, why, how many,
    how much, how, or "other" when there is none ("What's" counts as what)."""
    words = re.findall(r"[a-z]+", question.lower())
    for position, word in enumerate(words):
        if word in _WH_WORDS:
            return word
        if word == "how":
            following = words[position + 1] if position + 1 < len(words) else ""
            return f"how {following}" if following in ("many", "much") else "how"
    return "other"


# ---- numbers and stopwords ------------------------------------------------------------------------------
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand "
    "million billion".split()
)
_NUMERAL = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$")


def is_number_word(word: str) -> bool:
    """True for numerals ("7", "1,000", "3.5", "-2") and number words (one..twenty, thirty..ninety,
    hundred, thousand, million, billion; hyphenated ones like "twenty-one")."""
    word = word.strip().lower()
    if not word:
        return False
    if any(character.isdigit() for character in word) and _NUMERAL.match(word):
        return True
    parts = word.split("-")
    return all(part in NUMBER_WORDS for part in parts)


def _stopwords() -> frozenset[str]:
    # scikit-learn's list ships with the package: no nltk download needed.
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


def is_stopword(word: str) -> bool:
    """True when ``word`` (lower-cased) is in scikit-learn's English stopword list."""
    return word.lower() in _stopwords()


def _is_punctuation(word: str) -> bool:
    return not any(character.isalnum() for character in word)


# ---- the tokens frame ---------------------------------------------------------------------------------
TOKEN_COLUMNS = (
    "example_id", "token_index", "token", "word_index", "word", "segment", "role", "char_start", "char_end",
    "in_answer", "in_question", "near_answer", "is_number", "is_stopword",
)
SUPPORTING_DISTANCE = 5


def _word_spans(tokenizer, text: str, shift: int = 0) -> dict[int, tuple[int, int]]:
    """Character span of every tokenizer word of ``text`` (word number -> (start, end))."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: dict[int, tuple[int, int]] = {}
    for word, (start, end) in zip(encoding.word_ids(), encoding["offset_mapping"]):
        if word is None:
            continue
        low, high = spans.get(word, (start, end))
        spans[word] = (min(low, start), max(high, end))
    return {word: (start + shift, end + shift) for word, (start, end) in spans.items()}


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


def answer_span(example, prediction=None) -> tuple[int, int] | None:
    """Character span [start, end) of the first gold answer, else of the prediction, else None."""
    answers = example.get("answers") if hasattr(example, "get") else None
    if answers is not None and not isinstance(answers, float) and len(answers):
        first = list(answers)[0]
        return int(first["answer_start"]), int(first["answer_start"]) + len(first["text"])
    if prediction is not None and int(prediction["pred_start"]) >= 0:
        return int(prediction["pred_start"]), int(prediction["pred_end"])
    return None


def window_tokens(tokenizer: PreTrainedTokenizerBase, window: QAWindow, question: str, context: str,
                  span: tuple[int, int] | None) -> pd.DataFrame:
    """The tokens frame of one :class:`~bert_insight.qa.QAWindow` (see :func:`tokens` for columns).

    ``span`` is the answer's character span in ``context`` (None: no answer, so no answer roles).
    """
    stopwords = _stopwords()
    shift = len(question) - len(question.lstrip())
    word_spans = {0: _word_spans(tokenizer, question.lstrip(), shift), 1: _word_spans(tokenizer, context)}
    texts = {0: question, 1: context}

    def word_text(sequence: int, word: int) -> str:
        start, end = word_spans[sequence][word]
        return texts[sequence][start:end]

    question_words = {
        word_text(0, word).lower() for word in word_spans[0]
        if not _is_punctuation(word_text(0, word)) and word_text(0, word).lower() not in stopwords
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
            in_answer = span is not None and char_start < span[1] and char_end > span[0]
            in_question = text.lower() in question_words
            word_in_answer = bool(answer_words) and answer_words[0] <= word <= answer_words[-1]
            near_answer = bool(answer_words) and not word_in_answer and min(
                abs(word - answer_words[0]), abs(word - answer_words[-1])) <= SUPPORTING_DISTANCE
            segment = "context"
            if in_answer:
                role = "answer"
            elif in_question:
                role = "question_word"
            elif near_answer:
                role = "supporting"
            else:
                role = "other"
        else:
            segment = role = "question"
        is_number = is_number_word(text) or _inside_numeral(char_start, char_end, *numerals[sequence])
        rows.append((window.example_id, index, piece, int(word), text, segment, role, int(char_start),
                     int(char_end), bool(in_answer), bool(in_question), bool(near_answer), bool(is_number),
                     text.lower() in stopwords))
    return pd.DataFrame(rows, columns=list(TOKEN_COLUMNS))


def tokens(
    handle: QAModelHandle,
    examples: pd.DataFrame,
    *,
    predictions: pd.DataFrame | None = None,
    max_length: int = 384,
    doc_stride: int = 128,
) -> pd.DataFrame:
    """One row per token of each example's analysis window (the window holding the predicted answer).

    Columns: example_id, token_index (position in the model input), token (word piece), word_index
    (the tokenizer's word number within the question or the context; -1 for special tokens), word
    (the whole word's original text), segment (question / context / special), role (context tokens:
    answer > question_word > supporting > other; otherwise the segment name), char_start, char_end
    (span in the question or context; -1 for special tokens), and booleans in_answer (the piece
    overlaps the first gold answer, or the predicted answer when there is no gold), in_question (a
    context word whose lower-case form is a non-stopword, non-punctuation question word), near_answer
    (a context word within 5 words of the answer, outside it), is_number (numerals such as "1,000" or
    "3.5" and number words), is_stopword (scikit-learn's English stopwords).

    ``predictions`` come from :func:`bert_insight.predict` with the same max_length and doc_stride;
    they are computed when None.
    """
    from .qa import _validated, analysis_windows, predict

    examples = _validated(examples)
    if predictions is None:
        predictions = predict(handle, examples, max_length=max_length, doc_stride=doc_stride, progress=False)
    chosen = analysis_windows(handle, examples, predictions, max_length=max_length, doc_stride=doc_stride)
    predicted = {str(row["example_id"]): row for _, row in predictions.iterrows()}
    frames = []
    for (_, example), (window, _, _) in zip(examples.iterrows(), chosen):
        span = answer_span(example, predicted.get(str(example["example_id"])))
        frames.append(window_tokens(handle.tokenizer, window, example["question"], example["context"], span))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(TOKEN_COLUMNS))
    frame.attrs = {
        "model": handle.name,
        "fingerprint": handle.fingerprint,
        "function": "bert_insight.tokens",
        "params": {"max_length": max_length, "doc_stride": doc_stride},
    }
    return frame
