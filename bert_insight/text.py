"""Strings only (the lowest layer: no model, no frames): SQuAD answer normalisation, question types,
number words, stopwords, and the priority of token roles. The tokens frame built from them is
:mod:`bert_insight.tokens_frame`.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

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


def stopword_set() -> frozenset[str]:
    """scikit-learn's English stopword list (ships with the package: no nltk download needed)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


def is_stopword(word: str) -> bool:
    """True when ``word`` (lower-cased) is in scikit-learn's English stopword list."""
    return word.lower() in stopword_set()


def is_punctuation(word: str) -> bool:
    """True when ``word`` has no letter or digit."""
    return not any(character.isalnum() for character in word)


# ---- token roles ----------------------------------------------------------------------------------------
#: Roles of passage tokens, strongest first: a word is one role, the strongest of its pieces' roles.
ROLE_PRIORITY = ("answer", "question_word", "supporting", "other")
#: A context word within this many words of the answer (and outside it) is a supporting word.
SUPPORTING_DISTANCE = 5


def strongest_role(roles: Iterable[str]) -> str:
    """The role of a word from its pieces' roles (answer > question_word > supporting > other); a word
    straddling the answer boundary is an answer word. Roles outside ROLE_PRIORITY (question, special)
    are returned as they are when no passage role is present."""
    roles = list(roles)
    present = set(roles)
    return next((role for role in ROLE_PRIORITY if role in present), roles[0] if roles else "other")


def joined_word_spans(words: Iterable[str]) -> list[tuple[int, int]]:
    """(char_start, char_end) of each word in the words joined by single spaces."""
    spans, start = [], 0
    for word in words:
        spans.append((start, start + len(word)))
        start += len(word) + 1
    return spans
