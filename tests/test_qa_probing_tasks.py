"""QA probing tasks of van Aken et al. 2019: context sentences, supporting facts, bAbI candidates,
HotpotQA settings, TREC question types."""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA

import bert_insight
from bert_insight.data import (context_sentences, load_babi, load_hotpotqa, load_squad, question_type_task,
                               supporting_facts_task)
from bert_insight.data.edge_tasks import load_edge_task
from bert_insight.data.qa_probing import split_sentences
from bert_insight.errors import BertInsightInputError

BUNDLED = Path(__file__).resolve().parents[1] / "bert_insight" / "data" / "bundled"


def frame(rows: list[dict], **attrs) -> pd.DataFrame:
    examples = pd.DataFrame(rows)
    examples.attrs = dict(attrs)
    return examples


def answer(context: str, text: str) -> list[dict]:
    return [{"text": text, "answer_start": context.index(text)}]


# ---------------------------------------------------------------- sentences


def test_sentence_split_keeps_abbreviations_and_initials_inside_a_sentence():
    text = ('Mr. Smith met Dr. Jones in the U.S. capital on Jan. 5. They spoke for hours, e.g. about J. R. R. '
            'Tolkien! Was it useful? "Yes," said Mrs. Smith. 1990 was a good year... The end.')
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "Mr. Smith met Dr. Jones in the U.S. capital on Jan. 5.",
        "They spoke for hours, e.g. about J. R. R. Tolkien!",
        "Was it useful?",
        '"Yes," said Mrs. Smith.',
        "1990 was a good year...",
        "The end.",
    ]
    # a lower-case word after the period does not start a sentence; leading/trailing space is not in it
    assert [(s, e) for s, e in split_sentences("  One ends. two goes on.  ")] == [(2, 24)]


def test_squad_supporting_sentence_is_the_answers_sentence():
    squad = load_squad(split="heldout")
    paragraph = squad[squad["context"].str.startswith("The U.S. government has engaged")]
    sentences = context_sentences(paragraph)
    # the paragraph read by hand: five sentences, "U.S." and "W." never end one
    expected = [
        "The U.S. government has engaged in efforts to counter Islamism, or violent Islamism, since 2001.",
        "These efforts were centred in the U.S. around public diplomacy programmes conducted by the State Department.",
        "There have been calls to create an independent agency in the U.S. with a specific mission of undermining "
        "Islamism and jihadism.",
        'Christian Whiton, an official in the George W. Bush administration, called for a new agency focused on the '
        'nonviolent practice of "political warfare" aimed at undermining the ideology.',
        "U.S. Defense Secretary Robert Gates called for establishing something similar to the defunct U.S. "
        "Information Agency, which was charged with undermining the communist ideology during the Cold War.",
    ]
    context = paragraph["context"].iloc[0]
    for example_id, part in sentences.groupby("example_id"):
        assert part["text"].tolist() == expected
        assert part["sentence_index"].tolist() == list(range(5))
        assert all(context[s:e] == t for s, e, t in zip(part["char_start"], part["char_end"], part["text"]))
        assert part["is_supporting"].sum() == 1
        gold = paragraph.set_index("example_id").loc[example_id, "answers"][0]
        supporting = part[part["is_supporting"]].iloc[0]
        assert gold["text"] in supporting["text"]
        assert supporting["char_start"] <= gold["answer_start"] < supporting["char_end"]
    by_id = sentences[sentences["is_supporting"]].set_index("example_id")["sentence_index"]
    assert by_id["57303048947a6a140053d255"] == 1  # "State" (Department)
    assert by_id["57303048947a6a140053d257"] == 4  # "U.S. Defense Secretary": the sentence that starts with it
    assert list(sentences.columns) == ["example_id", "sentence_index", "char_start", "char_end", "text",
                                       "is_supporting"]


def test_babi_supporting_sentences_are_the_supporting_lines():
    path = BUNDLED / "babi_en_1k" / "qa2_two-supporting-facts_test.txt.gz"
    # the file parsed here, independently of the loader: per question, its story's statements so far
    # (line id, text) and the supporting line ids
    expected, story = [], []
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        number, text = line.split(" ", 1)
        if number == "1":
            story = []
        if "\t" in text:
            expected.append((list(story), {int(i) for i in text.split("\t")[2].split()}))
        else:
            story.append((int(number), text.strip()))
    sentences = context_sentences(load_babi(task=2, split="test"))
    groups = [part for _, part in sentences.groupby("example_id", sort=False)]
    assert len(groups) == len(expected) == 1_000
    for part, (statements, support) in zip(groups, expected):
        assert part["text"].tolist() == [text for _, text in statements]  # every statement is a sentence
        assert part["is_supporting"].tolist() == [line_id in support for line_id, _ in statements]
        assert part["is_supporting"].sum() == 2  # task 2: two supporting facts


def test_hotpotqa_sentences_leave_the_title_prefix_out():
    examples = load_hotpotqa()
    sentences = context_sentences(examples)
    contexts = examples.set_index("example_id")["context"]
    for row in sentences.itertuples():
        context = contexts[row.example_id]
        line_start = context.rfind("\n", 0, row.char_start) + 1
        title = context[line_start:context.index(":", line_start)]
        assert row.char_start > line_start + len(title)
        assert context[row.char_start:row.char_end] == row.text == row.text.strip()
    n_supporting = sentences.groupby("example_id")["is_supporting"].sum()
    assert (n_supporting == examples.set_index("example_id")["supporting_spans"].map(len)).all()


def test_examples_without_answers_or_supporting_facts_get_one_error():
    context = "One sentence here. Another one there."
    examples = frame([
        {"example_id": "a", "question": "Q?", "context": context, "answers": answer(context, "Another")},
        {"example_id": "b", "question": "Q?", "context": context, "answers": [], "is_impossible": True},
        {"example_id": "c", "question": "Q?", "context": context, "answers": [], "is_impossible": True},
    ])
    with pytest.raises(BertInsightInputError, match=r"2 example\(s\).*\['b', 'c'\].*supporting_spans.*answers"):
        context_sentences(examples)
    with pytest.raises(BertInsightInputError, match=r"\['b', 'c'\]"):
        supporting_facts_task(examples)
    no_answers = examples.drop(columns=["answers", "is_impossible"])
    with pytest.raises(BertInsightInputError, match="3 example"):
        context_sentences(no_answers)
    with pytest.raises(BertInsightInputError, match="empty supporting_spans"):
        context_sentences(no_answers.assign(supporting_spans=[[(0, 5)], [], [(0, 5)]]))


# ---------------------------------------------------------------- supporting facts task


def words_and_sentences(task, examples):
    texts = task.texts.set_index("text_id")
    sentences = context_sentences(examples).set_index(["example_id", "sentence_index"])
    return texts, sentences


def test_supporting_task_spans_are_the_question_and_each_sentence():
    examples = load_squad(split="heldout")
    task = supporting_facts_task(examples)
    assert task.name == "supporting_facts_squad" and task.binary and task.two_spans
    assert task.labels == ("supporting",)
    texts, sentences = words_and_sentences(task, examples)
    questions = examples.set_index("example_id")["question"]
    for row in task.targets.itertuples():
        words, n_a = texts.loc[row.text_id, "words"], texts.loc[row.text_id, "n_words_a"]
        assert (row.span1_start, row.span1_end) == (0, n_a)
        assert list(words[:n_a]) == questions[row.text_id].split()
        sentence = sentences.loc[(row.example_id, row.sentence_index)]
        assert " ".join(words[row.span2_start:row.span2_end]) == " ".join(sentence["text"].split())
        assert (row.char_start, row.char_end) == (sentence["char_start"], sentence["char_end"])
        assert row.labels == (("supporting",) if sentence["is_supporting"] else ())
    # one positive per (multi-sentence) SQuAD question: the answer's sentence
    assert (task.targets.groupby("text_id")["labels"].apply(lambda ls: sum(map(bool, ls))) == 1).all()
    assert "answer" in task.info["supporting_rule"]
    # every sentence of a kept context is a target, in order
    per_text = task.targets.groupby("text_id")["sentence_index"].apply(list)
    assert all(indices == list(range(len(indices))) for indices in per_text)


def test_single_sentence_contexts_are_dropped_and_reported():
    two = "It rained. Then it stopped."
    examples = frame([
        {"example_id": "one", "question": "When?", "context": "Just one sentence here.",
         "answers": answer("Just one sentence here.", "one"), "title": "A"},
        {"example_id": "two", "question": "What then?", "context": two, "answers": answer(two, "stopped"),
         "title": "B"},
    ], dataset="toy")
    task = supporting_facts_task(examples, dev_fraction=0)
    assert task.name == "supporting_facts_toy"
    assert set(task.texts["text_id"]) == {"two"}
    assert task.targets["labels"].tolist() == [(), ("supporting",)]
    report = task.report.set_index(["split", "outcome"])
    assert report.loc[("train", "dropped"), "reason"] == "single-sentence context"
    assert report.loc[("train", "dropped"), "n"] == 1 and report.loc[("train", "made"), "n"] == 2
    with pytest.raises(BertInsightInputError, match="every one of the 1 contexts has a single sentence"):
        supporting_facts_task(examples.iloc[:1])


def test_group_split_keeps_each_title_on_one_side_and_is_seeded():
    examples = load_babi(task=1, split="train")
    task = supporting_facts_task(examples, dev_fraction=0.25, seed=3)
    titles = examples.set_index("example_id")["title"]
    sides = task.texts.assign(title=task.texts["text_id"].map(titles)).groupby("title")["split"].nunique()
    assert (sides == 1).all()
    dev_titles = set(task.texts.loc[task.texts["split"] == "dev", "text_id"].map(titles))
    assert len(dev_titles) == round(0.25 * examples["title"].nunique())
    again = supporting_facts_task(examples, dev_fraction=0.25, seed=3)
    other = supporting_facts_task(examples, dev_fraction=0.25, seed=4)
    assert again.texts["split"].tolist() == task.texts["split"].tolist()
    assert other.texts["split"].tolist() != task.texts["split"].tolist()
    # a split column wins over the group split
    given = examples.assign(split=["test" if i % 2 else "train" for i in range(len(examples))])
    by_column = supporting_facts_task(given)
    assert set(by_column.splits) == {"train", "test"}
    assert (by_column.texts["split"] == by_column.texts["text_id"].map(given.set_index("example_id")["split"])).all()
    with pytest.raises(BertInsightInputError, match="dev_fraction"):
        supporting_facts_task(examples, dev_fraction=1.0)


def test_babi_supporting_task_has_two_positives_per_question_and_keeps_extra_columns():
    examples = load_babi(task=2, split="test")
    task = supporting_facts_task(examples)
    assert task.name == "supporting_facts_babi" and "supporting_spans" in task.info["supporting_rule"]
    positives = task.targets.groupby("text_id")["labels"].apply(lambda ls: sum(map(bool, ls)))
    assert (positives == 2).all()
    # every question has at least two statements, so none is dropped
    assert len(task.texts) == len(examples) and set(task.report["outcome"]) == {"made"}
    part = task.sample("dev", 10, seed=1)
    assert {"example_id", "sentence_index", "char_start", "char_end"} <= set(part.targets.columns)
    assert (part.targets["example_id"] == part.targets["text_id"]).all()
    assert list(task.split("train").targets.columns) == list(task.targets.columns)


def test_supporting_targets_encode_as_a_sentence_pair(tokenizer):
    from conftest import tiny_classifier

    from bert_insight import from_model
    from bert_insight.probing.encode import encode_targets

    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    task = supporting_facts_task(load_babi(task=1, split="test").iloc[:12]).split("train")
    encoded = encode_targets(handle, task, layers=[0, 1], progress=False)
    assert len(encoded) == len(task.targets) and not encoded.dropped
    assert encoded.span2 is not None and (encoded.span2[:, 1] > encoded.span2[:, 0]).all()


# ---------------------------------------------------------------- bAbI candidates


def raw_babi_answers(task: int) -> set[str]:
    answers = set()
    for path in (BUNDLED / "babi_en_1k").glob(f"qa{task}_*.txt.gz"):
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            if "\t" in line:
                answers.add(line.split("\t")[1].strip())
    return answers


def test_candidates_locate_every_answer_and_are_the_same_for_train_and_test():
    for task in range(1, 21):
        train, test = (load_babi(task=task, split=split, candidates=True) for split in ("train", "test"))
        assert train.attrs["candidates"] and train.attrs["candidate_answers"] == test.attrs["candidate_answers"]
        listed = train.attrs["candidate_answers"]
        assert listed == sorted(raw_babi_answers(task))
        for examples in (train, test):
            assert not examples["is_impossible"].any(), task
            for row in examples.itertuples():
                assert row.context.endswith(" Candidates: " + " ".join(listed))
                (gold,) = row.answers
                start = gold["answer_start"]
                assert gold["text"] == row.answer_text == row.context[start:start + len(gold["text"])]
                story_end = len(row.context) - len(" Candidates: " + " ".join(listed))
                assert (start < story_end) == row.answer_in_story
                if start >= story_end:  # a candidate is one whole whitespace token of the list
                    assert row.answer_text in row.context[story_end:].split()
    plain = load_babi(task=19, split="test")
    with_candidates = load_babi(task=19, split="test", candidates=True)
    assert plain["example_id"].tolist() == with_candidates["example_id"].tolist()
    assert plain["is_impossible"].all()  # path answers such as "n,w" are never words of the story
    assert not plain.attrs["candidates"] and plain.attrs["candidate_answers"] == []
    assert all(c.startswith(p) for p, c in zip(plain["context"], with_candidates["context"]))


def test_candidates_need_both_files_of_a_task(tmp_path):
    source = BUNDLED / "babi_en_1k" / "qa1_single-supporting-fact_test.txt.gz"
    lonely = tmp_path / "qa1_single-supporting-fact_test.txt"
    lonely.write_bytes(gzip.decompress(source.read_bytes()))
    assert len(load_babi(lonely)) == 1_000
    with pytest.raises(BertInsightInputError, match="qa1_\\*_train.txt"):
        load_babi(lonely, candidates=True)
    (tmp_path / "qa1_single-supporting-fact_train.txt").write_bytes(
        gzip.decompress((BUNDLED / "babi_en_1k" / "qa1_single-supporting-fact_train.txt.gz").read_bytes()))
    from_folder = load_babi(tmp_path, task=1, candidates=True)
    assert from_folder["context"].tolist() == load_babi(task=1, candidates=True)["context"].tolist()


# ---------------------------------------------------------------- HotpotQA settings


def hotpot_raw() -> list[dict]:
    return json.loads(gzip.decompress((BUNDLED / "hotpotqa_dev_distractor_first10.json.gz").read_bytes()))


def paragraph_lines(context: str) -> dict[str, str]:
    return {line.split(":", 1)[0]: line for line in context.split("\n")}


def line_title(context: str, position: int) -> str:
    return context[context.rfind("\n", 0, position) + 1:].split(":", 1)[0]


def test_hotpotqa_supporting_facts_context_holds_exactly_the_supporting_sentences():
    examples = load_hotpotqa(setting="supporting_facts")
    assert examples.attrs["setting"] == "supporting_facts"
    sentences = context_sentences(examples)
    for item, row in zip(hotpot_raw(), examples.itertuples()):
        given = dict(zip(item["context"]["title"], item["context"]["sentences"]))
        facts = list(zip(item["supporting_facts"]["title"], item["supporting_facts"]["sent_id"]))
        wanted = [given[t][i].strip() for t, i in facts if i < len(given[t])]
        mine = sentences[sentences["example_id"] == row.example_id]
        assert sorted(mine["text"]) == sorted(wanted) and mine["is_supporting"].all()
        assert [row.context[s:e] for s, e in row.supporting_spans] == wanted
        # each line is "<title>:" and that paragraph's supporting sentences
        for title, line in paragraph_lines(row.context).items():
            assert title in {t for t, _ in facts}
            assert line == f"{title}: " + " ".join(given[title][i].strip() for i in sorted(
                {i for t, i in facts if t == title and i < len(given[title])}))
        for gold in row.answers:
            assert row.context[gold["answer_start"]:].startswith(gold["text"])
    assert examples["answer_found"].sum() == load_hotpotqa()["answer_found"].sum()


def test_hotpotqa_distractor_keeps_supporting_paragraphs_and_respects_max_words():
    full = load_hotpotqa()
    for max_words in (350, 120):
        examples = load_hotpotqa(setting="distractor", max_words=max_words)
        assert examples.attrs["setting"] == "distractor" and examples.attrs["max_words"] == max_words
        for item, row, whole in zip(hotpot_raw(), examples.itertuples(), full.itertuples()):
            fact_titles = set(item["supporting_facts"]["title"])
            lines, whole_lines = paragraph_lines(row.context), paragraph_lines(whole.context)
            assert fact_titles <= set(lines)  # supporting paragraphs always stay, whole
            assert all(line == whole_lines[title] for title, line in lines.items())
            assert [t for t in whole_lines if t in lines] == list(lines)  # original order
            assert len(row.context.split()) <= max_words or set(lines) == fact_titles
            assert sorted(row.context[s:e] for s, e in row.supporting_spans) == sorted(
                whole.context[s:e] for s, e in whole.supporting_spans)
            assert [row.context[s:e] for s, e in row.sentence_spans] == [
                whole.context[s:e] for s, e in whole.sentence_spans if line_title(whole.context, s) in lines]
    seeded = [load_hotpotqa(setting="distractor", max_words=200, seed=seed)["context"].tolist() for seed in (0, 0, 1)]
    assert seeded[0] == seeded[1] and seeded[0] != seeded[2]


def test_hotpotqa_and_question_type_bad_options():
    with pytest.raises(BertInsightInputError, match="setting='oracle'.*'full', 'supporting_facts', 'distractor'"):
        load_hotpotqa(setting="oracle")
    with pytest.raises(BertInsightInputError, match="max_words"):
        load_hotpotqa(setting="distractor", max_words=0)
    with pytest.raises(BertInsightInputError, match="labels='medium'"):
        question_type_task(SHARED_DATA, labels="medium")
    with pytest.raises(BertInsightInputError, match="not bundled.*nltk_data"):
        question_type_task(None)
    with pytest.raises(BertInsightInputError, match="not bundled"):
        load_edge_task("question_type")


# ---------------------------------------------------------------- question types (TREC)

QC_TRAIN = ("DESC:manner How did serfdom develop in and then leave Russia ?\n"
            "ENTY:cremat What films featured the character Popeye Doyle ?\n"
            "\n"
            "LOC:city Which city has the oldest relationship as a sister\xf0city with Los Angeles ?\n"
            "HUM:ind Who killed Gandhi ?\n")
QC_TEST = "NUM:dist How far is it from Denver to Aspen ?\nABBR:exp What does NASA stand for ?\n"


def write_qc(folder: Path) -> Path:
    corpora = folder / "nltk_data" / "corpora"
    corpora.mkdir(parents=True)
    with zipfile.ZipFile(corpora / "qc.zip", "w") as archive:
        archive.writestr("qc/", "")
        archive.writestr("qc/README", "TREC question classification")
        archive.writestr("qc/train.txt", QC_TRAIN.encode("latin-1"))
        archive.writestr("qc/test.txt", QC_TEST.encode("latin-1"))
    return corpora / "qc.zip"


def test_question_type_task_from_a_qc_zip(tmp_path):
    archive = write_qc(tmp_path)
    task = load_edge_task("question_type", tmp_path)
    assert task.labels == ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM") and not task.two_spans
    assert task.splits == ("train", "test")
    targets = task.targets.merge(task.texts, on=["split", "text_id"])
    assert targets["labels"].tolist() == [("DESC",), ("ENTY",), ("LOC",), ("HUM",), ("NUM",), ("ABBR",)]
    assert (targets["span1_start"] == 0).all() and (targets["span1_end"] == targets["words"].map(len)).all()
    assert targets["words"].iloc[2] == tuple("Which city has the oldest relationship as a sister\xf0city with Los "
                                             "Angeles ?".split())
    assert targets["words"].iloc[0][0] == "How"  # the label is not a word
    fine = question_type_task(archive, labels="fine", splits="test")
    assert fine.labels == tuple(sorted(["DESC:manner", "ENTY:cremat", "LOC:city", "HUM:ind", "NUM:dist", "ABBR:exp"]))
    assert fine.splits == ("test",) and fine.targets["labels"].tolist() == [("NUM:dist",), ("ABBR:exp",)]
    # the same task from the nltk_data folder and from an unzipped qc folder
    assert question_type_task(tmp_path / "nltk_data").targets.equals(task.targets)
    unzipped = tmp_path / "unzipped"
    zipfile.ZipFile(archive).extractall(unzipped)
    assert question_type_task(unzipped).targets.equals(task.targets)
    assert bert_insight.question_type_task is question_type_task
    with pytest.raises(BertInsightInputError, match="no dev split"):
        question_type_task(archive, splits=("dev",))


def test_question_type_malformed_line_and_missing_corpus(tmp_path):
    with pytest.raises(BertInsightInputError, match="found no qc.zip"):
        question_type_task(tmp_path)
    bad = tmp_path / "bad.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("qc/train.txt", "What is this ?\n")
        archive.writestr("qc/test.txt", QC_TEST)
    bad.write_bytes(buffer.getvalue())
    with pytest.raises(BertInsightInputError, match="train.txt line 1 is not 'COARSE:fine question'"):
        question_type_task(bad)


@pytest.mark.shared
def test_shared_trec_question_types():
    coarse = load_edge_task("question_type", SHARED_DATA)
    counts = coarse.targets["split"].value_counts().to_dict()
    assert counts == {"train": 5_452, "test": 500}
    assert len(coarse.labels) == 6 and {label for (label,) in coarse.targets["labels"]} == set(coarse.labels)
    fine = question_type_task(SHARED_DATA / "nltk_data" / "corpora" / "qc.zip", labels="fine")
    assert len(fine.labels) == 50
    assert all(re.fullmatch(r"[A-Z]+:\w+", label) for label in fine.labels)
    first = fine.texts.iloc[0]
    assert " ".join(first["words"]) == "How did serfdom develop in and then leave Russia ?"
    assert fine.targets["labels"].iloc[0] == ("DESC:manner",)


@pytest.mark.shared
def test_shared_hotpotqa_settings():
    path = SHARED_DATA / "hotpotqa_dev_distractor_first100" / "hotpot_dev_distractor_first100_hfformat.json"
    distractor = load_hotpotqa(path, setting="distractor")
    full = load_hotpotqa(path)
    assert (distractor["supporting_spans"].map(len) == full["supporting_spans"].map(len)).all()
    assert (distractor["context"].str.split().map(len) <= 350).mean() > 0.9
    task = supporting_facts_task(load_hotpotqa(path, setting="supporting_facts"))
    assert all(labels == ("supporting",) for labels in task.targets["labels"])
