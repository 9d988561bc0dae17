"""SQuAD normalisation, question types, number words and the tokens frame."""

from __future__ import annotations

import pandas as pd
import pytest

from bert_insight.qa import predict
from bert_insight.tokens_frame import tokens
from bert_insight.text import (
    exact_match_score,
    f1_score,
    is_number_word,
    normalize_answer,
    question_type,
)

MAX_LENGTH, STRIDE = 128, 32


# ---- official SQuAD v1.1 behaviour, worked by hand ------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Cat's  hat!", "cats hat"),  # lower, punctuation dropped, article dropped, spaces collapsed
        ("An apple a day", "apple day"),
        ("theater", "theater"),  # articles only as whole words
        ("  Hello,\tWorld  ", "hello world"),
        ("the-a", "thea"),  # punctuation goes first, so "the-a" is one word and no article remains
        ("A", ""),
    ],
)
def test_normalize_answer_follows_the_official_script(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_and_f1_hand_worked():
    assert exact_match_score("The Eiffel Tower.", "eiffel tower")
    assert not exact_match_score("Eiffel", "Eiffel Tower")
    # "cat sat" vs "cat sat down": 2 shared, precision 1, recall 2/3 -> F1 0.8
    assert f1_score("the cat sat", "a cat sat down") == pytest.approx(0.8)
    # repeated tokens count once per occurrence in both: 1 shared, precision 1/2, recall 1 -> 2/3
    assert f1_score("cat cat", "cat") == pytest.approx(2 / 3)
    assert f1_score("dog", "cat") == 0.0
    assert f1_score("the", "cat") == 0.0  # empty after normalisation: nothing overlaps


@pytest.mark.parametrize(
    "question, expected",
    [
        ("What's the capital of France?", "what"),
        ("In which year did the war end?", "which"),
        ("Who wrote it, and when?", "who"),
        ("To whom was the letter sent?", "whom"),
        ("Whose idea was the bridge?", "whose"),
        ("When did it open?", "when"),
        ("Where is the museum?", "where"),
        ("Why did they leave?", "why"),
        ("How many moons does Mars have?", "how many"),
        ("How much did it cost?", "how much"),
        ("How did the fire start?", "how"),
        ("Name the largest planet.", "other"),
        ("The treaty was signed where?", "where"),
    ],
)
def test_question_type_is_the_first_wh_word(question, expected):
    assert question_type(question) == expected


@pytest.mark.parametrize("word", ["7", "1,000", "3.5", "-2", "seven", "Twenty", "twenty-one", "million", "1,000,000"])
def test_numbers_are_recognised(word):
    assert is_number_word(word)


@pytest.mark.parametrize("word", ["", ",", ".", "3rd", "1,00", "one-sided", "often", "seventh", "1990s"])
def test_non_numbers_are_rejected(word):
    assert not is_number_word(word)


# ---- the tokens frame -----------------------------------------------------------------------------------
JAZZ_QUESTION = "Which instrument did Coltrane play at the Newport festival?"
JAZZ_CONTEXT = ("At the Newport festival in 1957, John Coltrane played the tenor saxophone beautifully while "
                "thousands of listeners watched from the lawn near the harbour.")
# Roles of the context words, worked by hand. The answer is words 11-12; words 6-10 and 13-17 lie within 5
# words of it; Newport, festival and Coltrane also occur in the question ("At", "the" are stopwords,
# "played" is not "play").
JAZZ_ROLES = [
    ("At", "other"), ("the", "other"), ("Newport", "question_word"), ("festival", "question_word"),
    ("in", "other"), ("1957", "other"), (",", "supporting"), ("John", "supporting"),
    ("Coltrane", "question_word"), ("played", "supporting"), ("the", "supporting"), ("tenor", "answer"),
    ("saxophone", "answer"), ("beautifully", "supporting"), ("while", "supporting"),
    ("thousands", "supporting"), ("of", "supporting"), ("listeners", "supporting"), ("watched", "other"),
    ("from", "other"), ("the", "other"), ("lawn", "other"), ("near", "other"), ("the", "other"),
    ("harbour", "other"), (".", "other"),
]
NUMBER_CONTEXT = "About 1,000 people came, 3.5 times more than the twenty-one of 2019, and one hundred stayed."
NUMBER_WORDS = {"1", ",", "000", "3", ".", "5", "twenty", "-", "one", "2019", "hundred"}


def hand_examples() -> pd.DataFrame:
    return pd.DataFrame([
        {"example_id": "jazz", "question": JAZZ_QUESTION, "context": JAZZ_CONTEXT,
         "answers": [{"text": "tenor saxophone", "answer_start": JAZZ_CONTEXT.index("tenor saxophone")}],
         "is_impossible": False, "title": "hand-made"},
        {"example_id": "numbers", "question": "How many people came in 2019?", "context": NUMBER_CONTEXT,
         "answers": [{"text": "1,000", "answer_start": NUMBER_CONTEXT.index("1,000")}],
         "is_impossible": False, "title": "hand-made"},
    ])


@pytest.fixture(scope="module")
def jazz_tokens(tiny_handle):
    # The hand-worked roles are those of the gold answer (the default, answer="predicted", follows the model).
    return tokens(tiny_handle, hand_examples(), answer="gold", max_length=MAX_LENGTH, doc_stride=STRIDE)


def test_context_roles_match_the_hand_worked_example(jazz_tokens):
    context = jazz_tokens[(jazz_tokens["example_id"] == "jazz") & (jazz_tokens["segment"] == "context")]
    words = context.groupby("word_index", sort=True).agg(word=("word", "first"), roles=("role", set))
    assert all(len(roles) == 1 for roles in words["roles"])  # every piece of a word has its word's role here
    assert list(zip(words["word"], words["roles"].map(min))) == JAZZ_ROLES
    by_word = context.drop_duplicates("word_index").set_index("word_index")
    assert by_word["in_answer"].tolist() == [role == "answer" for _, role in JAZZ_ROLES]
    assert by_word.loc[9, "near_answer"] and not by_word.loc[9, "in_question"]  # "played"
    assert by_word.loc[8, "in_question"] and by_word.loc[8, "near_answer"]  # Coltrane: both, role question_word
    assert by_word.loc[1, "is_stopword"] and not by_word.loc[12, "is_stopword"]


def test_word_pieces_share_a_word_index_and_rebuild_the_word(jazz_tokens):
    for (example_id, segment), part in jazz_tokens[jazz_tokens["segment"] != "special"].groupby(["example_id", "segment"]):
        example = hand_examples().set_index("example_id").loc[example_id]
        text = example["question"] if segment == "question" else example["context"]
        for _, pieces in part.groupby("word_index"):
            starts, ends = pieces["char_start"].tolist(), pieces["char_end"].tolist()
            assert starts[1:] == ends[:-1]  # pieces are adjacent, in order
            assert text[starts[0]:ends[-1]] == pieces["word"].iloc[0]
            assert pieces["word"].nunique() == 1
    coltrane = jazz_tokens[(jazz_tokens["word"] == "Coltrane") & (jazz_tokens["segment"] == "context")]
    assert coltrane["token"].tolist() == ["colt", "##rane"] and coltrane["word_index"].nunique() == 1
    assert jazz_tokens[jazz_tokens["word"] == "Coltrane"]["segment"].tolist() == ["question"] * 2 + ["context"] * 2


def test_special_tokens_and_question_tokens_carry_their_segment(jazz_tokens):
    jazz = jazz_tokens[jazz_tokens["example_id"] == "jazz"]
    assert jazz["token_index"].tolist() == list(range(len(jazz)))
    special = jazz[jazz["segment"] == "special"]
    assert special["token"].tolist() == ["[CLS]", "[SEP]", "[SEP]"]
    assert set(special["role"]) == {"special"} and set(special["word_index"]) == {-1}
    question = jazz[jazz["segment"] == "question"]
    assert set(question["role"]) == {"question"} and not question[["in_answer", "in_question"]].any().any()
    assert question["word"].tolist()[:3] == ["Which", "instrument", "did"]


def test_numbers_are_flagged_in_the_tokens_frame(jazz_tokens):
    numbers = jazz_tokens[(jazz_tokens["example_id"] == "numbers") & (jazz_tokens["segment"] == "context")]
    flagged = numbers[numbers["is_number"]]
    assert set(flagged["token"]) == NUMBER_WORDS
    commas = numbers[numbers["token"] == ","]
    assert commas["is_number"].tolist() == [True, False, False]  # "1,000" yes; "came," and "2019," no
    assert numbers[numbers["in_answer"]]["token"].tolist() == ["1", ",", "000"]
    year = jazz_tokens[(jazz_tokens["example_id"] == "jazz") & (jazz_tokens["word"] == "1957")]
    assert year["is_number"].all()


def test_without_gold_the_predicted_span_is_the_answer(tiny_handle):
    examples = hand_examples().drop(columns=["answers", "is_impossible"])
    predictions = predict(tiny_handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
    frame = tokens(tiny_handle, examples, predictions=predictions, max_length=MAX_LENGTH, doc_stride=STRIDE)
    for row in predictions.to_dict("records"):
        own = frame[frame["example_id"] == row["example_id"]]
        assert own.loc[own["in_answer"], "token_index"].tolist() == list(range(row["start_index"], row["end_index"] + 1))
    assert frame.attrs["model"] == "tiny-bert"
