"""QA data loaders: known counts of the real data sets, answer offsets, supporting spans, input errors."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from bert_insight.data import (HELDOUT_TITLES, load_babi, load_duorc, load_hotpotqa, load_squad,
                               validate_examples)
from bert_insight.errors import BertInsightInputError

BUNDLED = Path(__file__).resolve().parents[1] / "bert_insight" / "data" / "bundled"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def squad11() -> pd.DataFrame:
    return load_squad()


@pytest.fixture(scope="module")
def squad11_raw() -> dict:
    with gzip.open(BUNDLED / "squad_v1.1_dev.json.gz") as handle:
        return json.load(handle)


def assert_answers_at_offsets(frame: pd.DataFrame) -> None:
    for row in frame.itertuples():
        for answer in row.answers:
            start = answer["answer_start"]
            assert row.context[start:start + len(answer["text"])] == answer["text"], row.example_id


def within(span_start: int, span_end: int, spans) -> bool:
    return any(s <= span_start and span_end <= e for s, e in spans)


# ---------------------------------------------------------------- SQuAD


def test_bundled_squad11_is_the_official_dev_file():
    # SOURCE.txt: sha256 of the official dev-v1.1.json
    digest = hashlib.sha256(gzip.open(BUNDLED / "squad_v1.1_dev.json.gz").read()).hexdigest()
    assert digest == "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9"


def test_squad11_known_counts(squad11):
    assert len(squad11) == 10_570
    assert squad11["title"].nunique() == 48
    assert squad11["context"].nunique() == 2_067
    assert squad11["example_id"].is_unique
    assert not squad11["is_impossible"].any()
    assert squad11.loc[0, "example_id"] == "56be4db0acb8001400a502ec"
    assert squad11.loc[0, "answers"][0] == {"text": "Denver Broncos", "answer_start": 177}
    assert_answers_at_offsets(squad11)


def test_heldout_titles_are_the_last_six_articles(squad11_raw):
    assert tuple(article["title"] for article in squad11_raw["data"][-6:]) == HELDOUT_TITLES


def test_heldout_and_train_split(squad11, squad11_raw):
    heldout, train = load_squad(split="heldout"), load_squad(split="train")
    raw_heldout = sum(len(p["qas"]) for a in squad11_raw["data"][-6:] for p in a["paragraphs"])
    assert len(heldout) == raw_heldout == 1_145
    assert set(heldout["title"]) == set(HELDOUT_TITLES)
    assert len(train) == 10_570 - 1_145 and train["title"].nunique() == 42
    assert not set(train["title"]) & set(heldout["title"])
    assert not set(train["example_id"]) & set(heldout["example_id"])
    assert set(train["example_id"]) | set(heldout["example_id"]) == set(squad11["example_id"])


def test_limit_keeps_the_first_questions_of_the_split():
    first = load_squad(split="heldout", limit=7)
    assert first["example_id"].tolist() == load_squad(split="heldout")["example_id"].iloc[:7].tolist()
    assert first["title"].unique().tolist() == ["Scottish_Parliament"]


def test_bundled_squad20_subset_has_answerable_and_unanswerable():
    frame = load_squad(version="2.0")
    assert (len(frame), frame["title"].nunique(), int(frame["is_impossible"].sum())) == (6_078, 16, 3_168)
    assert (frame["answers"].map(len) == 0).equals(frame["is_impossible"])
    assert_answers_at_offsets(frame)


def test_squad20_split_is_the_default_models_article_split():
    heldout, train = load_squad(version="2.0", split="heldout"), load_squad(version="2.0", split="train")
    assert set(heldout["title"]) == set(HELDOUT_TITLES) - {"United_Methodist_Church"}  # not in the subset
    assert not set(train["title"]) & set(HELDOUT_TITLES)
    assert len(heldout) + len(train) == 6_078


def test_squad20_split_needs_a_heldout_article(tmp_path):
    frame = load_squad(version="2.0")
    raw = {"version": "v2.0", "data": [{"title": "Normans", "paragraphs": [{
        "context": frame["context"].iloc[0],
        "qas": [{"id": "x", "question": "q?", "answers": [], "is_impossible": True}]}]}]}
    path = tmp_path / "normans.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(BertInsightInputError, match="lacks"):
        load_squad(path, version="2.0", split="heldout")


def test_json_gz_and_zip_read_alike(tmp_path, squad11_raw):
    small = {"version": "1.1", "data": squad11_raw["data"][-1:]}
    (tmp_path / "small.json").write_text(json.dumps(small))
    with gzip.open(tmp_path / "small.json.gz", "wt") as handle:
        json.dump(small, handle)
    with zipfile.ZipFile(tmp_path / "small.zip", "w") as archive:
        archive.writestr("inner/small.json", json.dumps(small))
    frames = [load_squad(tmp_path / name) for name in ("small.json", "small.json.gz", "small.zip")]
    assert len(frames[0]) == 206  # the article "Force"
    for other in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], other)


def write_squad(tmp_path: Path, question: str, context: str, answer: str, start: int) -> Path:
    data = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": [
        {"id": "q-ok", "question": "Fine?", "answers": [{"text": "ok", "answer_start": 0}]},
        {"id": "q-bad-7", "question": question, "answers": [{"text": answer, "answer_start": start}]}]}]}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def test_squad_file_with_misplaced_answer_names_the_example(tmp_path):
    path = write_squad(tmp_path, "Where?", "ok then: the answer is Paris.", "Paris", 3)
    with pytest.raises(BertInsightInputError, match=r"q-bad-7.*'then:'.*\[23\]"):
        load_squad(path)


def test_squad_file_with_empty_question_names_the_example(tmp_path):
    path = write_squad(tmp_path, "  ", "ok then: the answer is Paris.", "Paris", 23)
    with pytest.raises(BertInsightInputError, match=r"q-bad-7.*question is empty"):
        load_squad(path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(version="3.0"), "version"),
    (dict(split="dev"), "split must be"),
    (dict(limit=-1), "limit"),
])
def test_load_squad_bad_arguments(kwargs, message):
    with pytest.raises(BertInsightInputError, match=message):
        load_squad(**kwargs)


def test_split_needs_the_heldout_articles(tmp_path, squad11_raw):
    path = tmp_path / "first.json"
    path.write_text(json.dumps({"version": "1.1", "data": squad11_raw["data"][:1]}))
    with pytest.raises(BertInsightInputError, match="lacks"):
        load_squad(path, split="heldout")


def test_hub_name_without_datasets_asks_for_a_local_path(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(BertInsightInputError, match="local path"):
        load_squad("rajpurkar/squad")


def test_missing_local_file_is_an_input_error(tmp_path):
    with pytest.raises(BertInsightInputError, match="no such file"):
        load_squad(tmp_path / "absent.json")


@pytest.mark.shared
def test_shared_squad11_zip_equals_bundled(squad11):
    shared = load_squad(SHARED_DATA / "squad_v1.1" / "dev-v1.1.json.zip")
    assert len(shared) == 10_570 and shared["title"].nunique() == 48
    shared.attrs, bundled = {}, squad11.copy()
    bundled.attrs = {}
    pd.testing.assert_frame_equal(shared, bundled)
    assert len(load_squad(SHARED_DATA / "squad_v1.1" / "dev-v1.1.json.zip", split="heldout")) == 1_145


@pytest.mark.shared
def test_shared_squad20_subset_counts():
    frame = load_squad(SHARED_DATA / "squad_v2.0_cs224n_subset" / "dev-v2.0-subset.json.gz", version="2.0")
    assert (len(frame), frame["title"].nunique(), int(frame["is_impossible"].sum())) == (6_078, 16, 3_168)
    assert (frame["answers"].map(len) == 0).equals(frame["is_impossible"])
    bundled = load_squad(version="2.0")
    assert bundled["example_id"].tolist() == frame["example_id"].tolist()


# ---------------------------------------------------------------- validate_examples


def hand_made(**changes) -> pd.DataFrame:
    row = dict(example_id="mine-1", question="Who wrote it?", context="It was written by Ada in 1843.",
               answers=[{"text": "Ada", "answer_start": 18}])
    return pd.DataFrame([row, {**row, "example_id": "mine-2", "question": "When?",
                               "answers": [{"text": "1843", "answer_start": 25}], **changes}])


def test_validate_accepts_a_hand_made_frame_and_fills_defaults():
    frame = validate_examples(hand_made())
    assert frame.columns[:6].tolist() == ["example_id", "question", "context", "answers", "is_impossible", "title"]
    assert frame["is_impossible"].tolist() == [False, False] and frame["title"].tolist() == ["", ""]
    unanswerable = validate_examples(hand_made(answers=[]))
    assert unanswerable["is_impossible"].tolist() == [False, True]


def test_validate_accepts_a_frame_without_gold_answers():
    frame = validate_examples(hand_made().drop(columns="answers"))
    assert "answers" not in frame.columns and "is_impossible" not in frame.columns
    assert frame["example_id"].tolist() == ["mine-1", "mine-2"]
    with pytest.raises(BertInsightInputError, match=r"mine-2.*question is empty"):
        validate_examples(hand_made(question=" ").drop(columns="answers"))


def test_validate_converts_hugging_face_answers():
    frame = validate_examples(hand_made(answers={"text": ["1843"], "answer_start": [25]}))
    assert frame.loc[1, "answers"] == [{"text": "1843", "answer_start": 25}]


@pytest.mark.parametrize("changes, pattern", [
    (dict(question=""), r"mine-2.*question is empty"),
    (dict(context="   "), r"mine-2.*context is empty"),
    (dict(answers=[{"text": "1843", "answer_start": 24}]), r"mine-2.*answer_start=24.*' 184'.*\[25\]"),
    (dict(answers=[{"text": "1844", "answer_start": 25}]), r"mine-2.*'1843'.*does not occur"),
    (dict(answers=[{"text": "1843"}]), r"mine-2.*'answer_start'"),
    (dict(is_impossible=True), r"mine-2.*is_impossible"),
    (dict(example_id="mine-1"), r"unique.*mine-1"),
])
def test_validate_rejects_bad_rows_naming_the_example(changes, pattern):
    with pytest.raises(BertInsightInputError, match=pattern):
        validate_examples(hand_made(**changes))


def test_validate_lists_required_columns():
    with pytest.raises(BertInsightInputError, match=r"\['context'\].*Required columns: \['example_id', 'question', 'context'\]"):
        validate_examples(hand_made().drop(columns="context"))
    with pytest.raises(BertInsightInputError, match="DataFrame"):
        validate_examples([{"question": "x"}])


# ---------------------------------------------------------------- DuoRC


def assert_duorc_answers_match_given_text(frame: pd.DataFrame) -> None:
    assert_answers_at_offsets(frame)
    for row in frame.itertuples():
        given = {t.strip().rstrip(".!?,;:").lower() for t in row.answer_texts}
        for answer in row.answers:
            assert answer["text"].rstrip(".!?,;:").lower() in given, row.example_id
        assert row.is_impossible == (not row.answers) and row.answer_found == bool(row.answers)


def test_duorc_answer_start_points_at_the_answer():
    frame = load_duorc()
    assert len(frame) == 14 and set(frame["title"]) == {"The Forbidden Kingdom"}
    assert_duorc_answers_match_given_text(frame)
    # "Lu" must be the name, not the first letters of "Lupo" (which comes earlier in the plot)
    lu = frame[frame["question"] == "Who drinks the elixir?"].iloc[0]
    start = lu.answers[0]["answer_start"]
    assert lu.context.find("Lu") < start and lu.context[start:start + 3] == "Lu "
    # case differs in the plot: "Celestial Soldiers" is written "celestial soldiers"
    soldiers = frame[frame["answer_texts"].map(lambda t: t == ["Celestial Soldiers"])].iloc[0]
    assert soldiers.answers[0]["text"] == "celestial soldiers"
    assert frame.loc[frame["answer_texts"].map(lambda t: t == ["Yes"]), "is_impossible"].all()


def test_duorc_no_answer_and_flat_layout(tmp_path):
    with gzip.open(BUNDLED / "duorc_selfrc_dev_slice.json.gz") as handle:
        movies = json.load(handle)
    movies[0]["qa"][1]["no_answer"] = True
    (tmp_path / "movies.json").write_text(json.dumps(movies))
    flat = [{"plot_id": m["id"], "plot": m["plot"], "title": m["title"], "question_id": q["id"],
             "question": q["question"], "answers": q["answers"], "no_answer": q["no_answer"]}
            for m in movies for q in m["qa"]]
    (tmp_path / "flat.json").write_text(json.dumps(flat))
    nested, rows = load_duorc(tmp_path / "movies.json"), load_duorc(tmp_path / "flat.json")
    assert nested.loc[1, "is_impossible"] and nested.loc[1, "answers"] == [] and nested.loc[1, "no_answer"]
    nested.attrs, rows.attrs = {}, {}
    pd.testing.assert_frame_equal(nested, rows)


@pytest.mark.shared
def test_shared_duorc_sample():
    for split, n_questions in (("train", 117), ("dev", 68), ("test", 82)):
        frame = load_duorc(SHARED_DATA / "duorc_sample" / f"SelfRC_{split}.json")
        assert len(frame) == n_questions and frame["title"].nunique() == 5
        assert_duorc_answers_match_given_text(frame)
        # an answer written verbatim in the plot as whole words must be found
        for row in frame[~frame["no_answer"]].itertuples():
            verbatim = any(re.search(r"(?<!\w)" + re.escape(t) + r"(?!\w)", row.context)
                           for t in row.answer_texts if t.lower() not in ("yes", "no"))
            assert row.answer_found or not verbatim, row.example_id
    dev = load_duorc(SHARED_DATA / "duorc_sample" / "SelfRC_dev.json")
    bundled = load_duorc()
    assert bundled["example_id"].tolist() == dev.loc[dev["title"] == "The Forbidden Kingdom", "example_id"].tolist()


# ---------------------------------------------------------------- HotpotQA


def hotpot_raw(path: Path) -> list[dict]:
    return json.loads(gzip.open(path).read() if path.suffix == ".gz" else path.read_text())


def assert_hotpot_spans_hold_supporting_sentences(frame: pd.DataFrame, raw: list[dict]) -> None:
    assert len(frame) == len(raw)
    for row, item in zip(frame.itertuples(), raw):
        sentences = dict(zip(item["context"]["title"], item["context"]["sentences"]))
        facts = list(zip(item["supporting_facts"]["title"], item["supporting_facts"]["sent_id"]))
        assert row.supporting_facts == facts
        assert len(row.supporting_spans) == len(facts)
        for (title, index), (start, end) in zip(facts, row.supporting_spans):
            assert row.context[start:end] == sentences[title][index].strip()
            # the sentence sits in its own paragraph's line, which starts with the title
            line_start = row.context.rfind("\n", 0, start) + 1
            assert row.context.startswith(f"{title}:", line_start)
        assert row.answer_text == item["answer"] and row.question == item["question"]
        if item["answer"] in ("yes", "no"):
            assert row.is_impossible and row.answers == []
        for answer in row.answers:
            assert answer["text"] == item["answer"]
            assert within(answer["answer_start"], answer["answer_start"] + len(answer["text"]), row.supporting_spans)


def test_hotpotqa_supporting_spans_hold_the_supporting_sentences():
    frame = load_hotpotqa()
    assert_hotpot_spans_hold_supporting_sentences(frame, hotpot_raw(BUNDLED / "hotpotqa_dev_distractor_first10.json.gz"))
    assert frame.loc[0, "question"] == "Were Scott Derrickson and Ed Wood of the same nationality?"
    assert frame["answer_found"].sum() == 7  # 3 of the first 10 are yes/no comparisons


@pytest.mark.shared
def test_shared_hotpotqa_first100():
    path = SHARED_DATA / "hotpotqa_dev_distractor_first100" / "hotpot_dev_distractor_first100_hfformat.json"
    frame = load_hotpotqa(path)
    assert_hotpot_spans_hold_supporting_sentences(frame, hotpot_raw(path))
    assert frame["type"].value_counts().to_dict() == {"bridge": 79, "comparison": 21}
    assert frame["question"].iloc[:10].tolist() == load_hotpotqa()["question"].tolist()


# ---------------------------------------------------------------- bAbI


def babi_lines(path: Path) -> list[list[tuple[int, str]]]:
    """Stories as (line id, text) lists, parsed independently of the loader."""
    stories: list[list[tuple[int, str]]] = []
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    for line in text.splitlines():
        number, text = line.split(" ", 1)
        if number == "1":
            stories.append([])
        stories[-1].append((int(number), text))
    return stories


def assert_babi_spans_hold_supporting_lines(frame: pd.DataFrame, path: Path) -> None:
    stories = babi_lines(path)
    questions = [(s, n, t) for s, story in enumerate(stories, 1) for n, t in story if "\t" in t]
    assert len(frame) == len(questions)
    for row, (story, number, text) in zip(frame.itertuples(), questions):
        question, answer, support = text.split("\t")
        lines = dict(stories[story - 1])
        assert (row.story_index, row.question, row.answer_text) == (story, question.strip(), answer)
        assert row.supporting_fact_ids == [int(i) for i in support.split()]
        assert "?" not in row.context  # question lines are not part of the story text
        for line_id, (start, end) in zip(row.supporting_fact_ids, row.supporting_spans):
            assert row.context[start:end] == lines[line_id].strip()
        for answer_span in row.answers:
            start = answer_span["answer_start"]
            assert within(start, start + len(answer_span["text"]), row.supporting_spans)


BUNDLED_BABI_QA1_TEST = BUNDLED / "babi_en_1k" / "qa1_single-supporting-fact_test.txt.gz"


def test_babi_supporting_spans_contain_the_supporting_sentences():
    frame = load_babi()
    assert_babi_spans_hold_supporting_lines(frame, BUNDLED_BABI_QA1_TEST)
    assert (len(frame), frame["story_index"].max()) == (1_000, 200)
    assert frame["answer_found"].all()  # task 1 answers are always a place named in the story
    # within a story each question's context extends the previous one
    for _, story in frame.groupby("story_index"):
        contexts = story["context"].tolist()
        assert all(later.startswith(earlier) for earlier, later in zip(contexts, contexts[1:]))


def test_bundled_babi_holds_every_task_and_split():
    names = sorted(path.name for path in (BUNDLED / "babi_en_1k").glob("qa*.txt.gz"))
    assert len(names) == 40
    for task in (2, 3):  # tasks whose answers are named in a supporting line
        for split in ("train", "test"):
            frame = load_babi(task=task, split=split)
            assert len(frame) == 1_000 and frame.attrs["split"] == split and (frame["task"] == task).all()
            path = BUNDLED / "babi_en_1k" / frame.attrs["source"].split("/")[-1]
            assert path.name.startswith(f"qa{task}_") and path.name.endswith(f"_{split}.txt.gz")
            assert_babi_spans_hold_supporting_lines(frame, path)


def test_babi_bad_arguments(tmp_path):
    with pytest.raises(BertInsightInputError, match="split must be"):
        load_babi(task=2, split="dev")
    with pytest.raises(BertInsightInputError, match="task must be"):
        load_babi(task=21)
    with pytest.raises(BertInsightInputError, match="no bAbI file qa1_"):
        load_babi(tmp_path)


@pytest.mark.shared
def test_shared_babi_tasks():
    folder = SHARED_DATA / "babi_tasks_1-20_v1-2"
    for task, file_name in ((1, "qa1_single-supporting-fact_test.txt"), (2, "qa2_two-supporting-facts_test.txt")):
        frame = load_babi(folder, task=task)  # finds en/ inside the folder
        assert len(frame) == 1_000 and frame["answer_found"].all()
        assert_babi_spans_hold_supporting_lines(frame, folder / "en" / file_name)
    shared, bundled = load_babi(folder / "en"), load_babi()
    assert shared.attrs["source"] != bundled.attrs["source"]
    shared.attrs, bundled.attrs = {}, {}
    pd.testing.assert_frame_equal(shared, bundled)
    yes_no = load_babi(folder, task=6, split="train")
    assert len(yes_no) == 1_000 and yes_no["is_impossible"].all()
    assert set(yes_no["answer_text"]) == {"yes", "no"}


@pytest.mark.shared
def test_bundled_babi_files_equal_the_shared_ones():
    shared = sorted((SHARED_DATA / "babi_tasks_1-20_v1-2" / "en").glob("qa*.txt"))
    assert len(shared) == 40
    for path in shared:
        assert gzip.decompress((BUNDLED / "babi_en_1k" / (path.name + ".gz")).read_bytes()) == path.read_bytes()


def test_nearest_questions_finds_the_same_words_first_and_then_the_closest():
    from bert_insight.data import nearest_questions

    frame = load_squad(version="2.0")
    asked = frame["question"].iloc[40]
    found = nearest_questions(frame, asked.upper(), n=3)
    assert found["question"].iloc[0] == asked and found["similarity"].iloc[0] == pytest.approx(1.0)
    assert found["similarity"].is_monotonic_decreasing
    nearest = nearest_questions(frame, "when did beyonce start becoming popular?", n=1)
    assert "when" in nearest["question"].iloc[0].lower() and 0 < nearest["similarity"].iloc[0] < 1
    with pytest.raises(BertInsightInputError, match="question="):
        nearest_questions(frame, "  ")
