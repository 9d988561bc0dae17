"""The examples frame every QA loader returns, and the check other modules run on user-made frames."""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from bert_insight.errors import BertInsightInputError

EXAMPLE_COLUMNS = ("example_id", "question", "context", "answers", "is_impossible", "title")
REQUIRED_COLUMNS = ("example_id", "question", "context")


def make_frame(records: Iterable[dict[str, Any]], attrs: dict[str, Any]) -> pd.DataFrame:
    """Examples frame from row dicts: the standard columns first, dataset extras after."""
    frame = pd.DataFrame.from_records(list(records))
    if frame.empty:
        frame = pd.DataFrame(columns=list(EXAMPLE_COLUMNS))
    extras = [c for c in frame.columns if c not in EXAMPLE_COLUMNS]
    frame = frame[list(EXAMPLE_COLUMNS) + extras]
    frame["is_impossible"] = frame["is_impossible"].astype(bool)
    frame.attrs.update(attrs)
    return frame


def unique_example_ids(frame: pd.DataFrame) -> list[str]:
    """The frame's example ids as strings; BertInsightInputError naming the repeated ones."""
    ids = [str(i) for i in frame["example_id"].tolist()]
    duplicated = sorted(pd.Series(ids)[pd.Series(ids).duplicated()].unique())
    if duplicated:
        raise BertInsightInputError(
            f"example_id must be unique; repeated: {duplicated[:10]}. Give every example its own id.")
    return ids


def _normalise_answers(value: Any, example_id: str) -> list[dict[str, Any]]:
    """Answers as a list of {"text", "answer_start"}; also takes the HF dict-of-lists layout."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, dict):  # Hugging Face datasets: {"text": [...], "answer_start": [...]}
        texts, starts = list(value.get("text", [])), list(value.get("answer_start", []))
        if len(texts) != len(starts):
            raise BertInsightInputError(
                f"example {example_id!r}: answers has {len(texts)} texts but {len(starts)} answer_starts. "
                "Give one answer_start per answer text.")
        value = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    if not hasattr(value, "__iter__") or isinstance(value, (str, bytes)):
        raise BertInsightInputError(
            f"example {example_id!r}: answers must be a list of {{'text': str, 'answer_start': int}} "
            f"(empty for an unanswerable question), got {type(value).__name__} {value!r}.")
    answers = []
    for answer in value:
        if not isinstance(answer, dict) or "text" not in answer or "answer_start" not in answer:
            raise BertInsightInputError(
                f"example {example_id!r}: each answer must be a dict with keys 'text' and 'answer_start', "
                f"got {answer!r}.")
        start = answer["answer_start"]
        if type(start) is int:
            pass
        elif isinstance(start, numbers.Real) and not isinstance(start, bool) and float(start).is_integer():
            start = int(start)
        else:
            raise BertInsightInputError(
                f"example {example_id!r}: answer_start must be an integer character offset, got {start!r}.")
        if type(answer["text"]) is not str or not answer["text"]:
            raise BertInsightInputError(
                f"example {example_id!r}: answer text must be a non-empty string, got {answer['text']!r}.")
        answers.append({**answer, "answer_start": start})
    return answers


def _misplaced_answer_message(example_id: str, context: str, text: str, start: int) -> str:
    found_at, position = [], context.find(text)
    while position >= 0 and len(found_at) < 5:
        found_at.append(position)
        position = context.find(text, position + 1)
    where = (f"the text does occur at offset(s) {found_at}" if found_at
             else "the text does not occur anywhere in the context")
    return (f"example {example_id!r}: answer {text!r} is not at answer_start={start}; the context there reads "
            f"{context[max(start, 0):max(start, 0) + len(text)]!r} ({where}). Fix answer_start (a 0-based "
            "character offset into context) or the answer text.")


def validate_examples(examples: pd.DataFrame, *, allow_empty: bool = True) -> pd.DataFrame:
    """Check an examples frame (a loader's or one built by hand) and return a normalised copy.

    Every verb calls this once on entry with ``allow_empty=False``: an empty frame (often a filter
    that matched nothing) is refused with one error instead of empty results further down.

    Required columns: example_id, question, context. Optional: answers (list of {"text",
    "answer_start"}, empty for an unanswerable question; the Hugging Face dict-of-lists layout is
    converted; leave the column out when the gold answers are unknown: such a frame can be predicted
    on but not scored), is_impossible (default: no answers; False without an answers column), title
    (default ""). Extra columns are kept.

    Returns a DataFrame with columns example_id (str, unique), question, context, answers (when
    given), is_impossible (bool, when answers or is_impossible is given), title, then the extras.

    Raises BertInsightInputError naming the example when an id is duplicated, a question or context is
    empty, an answer's text is not at its answer_start, or an unanswerable example has answers.
    """
    if not isinstance(examples, pd.DataFrame):
        raise BertInsightInputError(
            f"examples must be a pandas DataFrame with columns {list(REQUIRED_COLUMNS)}, got "
            f"{type(examples).__name__}. Build one with pd.DataFrame(...) or use bert_insight.load_squad().")
    missing = [c for c in REQUIRED_COLUMNS if c not in examples.columns]
    if missing:
        raise BertInsightInputError(
            f"examples frame lacks column(s) {missing}. Required columns: {list(REQUIRED_COLUMNS)}; "
            "optional: answers (list of {'text', 'answer_start'}, [] if unanswerable), is_impossible, title.")
    if not allow_empty and examples.empty:
        raise BertInsightInputError(
            "examples is empty; pass at least one example (a filter such as examples[examples.title == ...] "
            "may have matched nothing).")
    frame = examples.copy()
    ids = unique_example_ids(frame)
    has_answers = "answers" in frame.columns
    answers_column = ([_normalise_answers(a, i) for a, i in zip(frame["answers"].tolist(), ids)] if has_answers
                      else [[] for _ in ids])
    # a missing is_impossible (column or cell) means "unanswerable iff no answers", as in SQuAD 2.0;
    # without gold answers nothing says a question is unanswerable
    given = frame["is_impossible"].tolist() if "is_impossible" in frame.columns else [None] * len(frame)
    impossible = [(has_answers and not answers) if pd.isna(flag) else bool(flag)
                  for flag, answers in zip(given, answers_column)]
    for example_id, question, context, answers, unanswerable in zip(
            ids, frame["question"].tolist(), frame["context"].tolist(), answers_column, impossible):
        for name, value in (("question", question), ("context", context)):
            if not isinstance(value, str) or not value.strip():
                raise BertInsightInputError(
                    f"example {example_id!r}: {name} is empty ({value!r}). Every example needs a non-empty "
                    f"{name} string; drop or fix this row.")
        for answer in answers:
            text, start = answer["text"], answer["answer_start"]
            if start < 0 or context[start:start + len(text)] != text:
                raise BertInsightInputError(_misplaced_answer_message(example_id, context, text, start))
        if unanswerable and answers:
            raise BertInsightInputError(
                f"example {example_id!r}: is_impossible is True but it has {len(answers)} answer(s). "
                "Set is_impossible=False or answers=[].")
    frame["example_id"] = pd.Series(ids, index=frame.index)
    if has_answers:
        frame["answers"] = pd.Series(answers_column, index=frame.index, dtype=object)
    if has_answers or "is_impossible" in frame.columns:
        frame["is_impossible"] = pd.Series(impossible, index=frame.index, dtype=bool)
    if "title" not in frame.columns:
        frame["title"] = ""
    extras = [c for c in frame.columns if c not in EXAMPLE_COLUMNS]
    return frame[[c for c in EXAMPLE_COLUMNS if c in frame.columns] + extras]


def gold_answers(example: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The gold answers of one validated example (a row of an examples frame): a list of
    {"text", "answer_start"}; [] when the frame has no answers column or the question is unanswerable."""
    answers = example.get("answers") if hasattr(example, "get") else None
    if answers is None or (isinstance(answers, float) and math.isnan(answers)):
        return []
    return list(answers)


def first_answer_span(example: Mapping[str, Any]) -> tuple[int, int] | None:
    """Character span [start, end) of the first gold answer of ``example`` in its context, or None."""
    answers = gold_answers(example)
    if not answers:
        return None
    start = int(answers[0]["answer_start"])
    return start, start + len(answers[0]["text"])


def nearest_questions(examples: pd.DataFrame, question: str, *, n: int = 5) -> pd.DataFrame:
    """The ``n`` examples whose question is most like ``question`` (cosine of word TF-IDF vectors fitted on
    the examples' questions; case ignored), most alike first: the examples frame's rows plus a column
    similarity (1.0 for the same words). Finds a paper's example, or the nearest one, in other data."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    examples = validate_examples(examples, allow_empty=False)
    if not isinstance(question, str) or not question.strip():
        raise BertInsightInputError(f"question={question!r}; pass the question text to look for.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BertInsightInputError(f"n={n!r}; pass a positive number of examples to return.")
    vectorizer = TfidfVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b").fit(examples["question"])
    similarity = cosine_similarity(vectorizer.transform([question]), vectorizer.transform(examples["question"]))[0]
    order = np.argsort(-similarity, kind="stable")[:n]
    nearest = examples.iloc[order].copy()
    nearest["similarity"] = similarity[order]
    return nearest
