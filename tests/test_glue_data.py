"""GLUE loaders: known sizes and label balances of the real files, each layout's fallbacks, input errors,
user-made frames and the stratified re-split. References are read independently with the csv module."""

from __future__ import annotations

import csv
import gzip
import io
import shutil
import sys
import types
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bert_insight.data import GLUE_TASKS, glue_task, load_glue, split_examples, validate_sentence_examples
from bert_insight.errors import BertInsightInputError
from tests.conftest import SHARED_DATA

BUNDLED_QNLI = Path(__file__).resolve().parents[1] / "bert_insight" / "data" / "bundled" / "glue_qnli_dev.tsv.gz"
GLUE = SHARED_DATA / "glue"


def reference_rows(text: str) -> list[dict[str, str]]:
    """Rows of a GLUE tsv read by the csv module, with no quote processing (GLUE's own reader)."""
    return list(csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))


def reference_file(path: Path) -> list[dict[str, str]]:
    return reference_rows(path.read_text(encoding="utf-8-sig"))


def write_tsv(path: Path, lines: list[str], bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def qnli_dev() -> pd.DataFrame:
    return load_glue("qnli")


@pytest.fixture(scope="module")
def qnli_reference() -> list[dict[str, str]]:
    return reference_rows(gzip.decompress(BUNDLED_QNLI.read_bytes()).decode("utf-8"))


# ------------------------------------------------------------------------------------------------ tasks

@pytest.mark.parametrize("spelling, name", [("STS-B", "stsb"), ("sts-b", "stsb"), ("SST-2", "sst2"),
                                            ("sst-2", "sst2"), ("MNLI", "mnli"), ("Mrpc", "mrpc"), ("qqp", "qqp")])
def test_glue_task_ignores_case_and_dashes(spelling, name):
    assert glue_task(spelling) is GLUE_TASKS[name]


def test_task_facts():
    assert glue_task("stsb").is_regression and glue_task("stsb").num_labels == 1 and glue_task("stsb").label_names == ()
    assert glue_task("mnli").num_labels == 3 and glue_task("mnli").splits == ("train", "dev_matched", "dev_mismatched")
    assert [t.name for t in GLUE_TASKS.values() if not t.is_pair] == ["sst2"]
    assert {t.name for t in GLUE_TASKS.values() if "f1" in t.metrics} == {"mrpc", "qqp"}
    assert glue_task("stsb").metrics == ("pearson", "spearman") and glue_task("stsb").folder == "STS-B"
    assert glue_task("rte").label_names.index("entailment") == 0 and glue_task("mrpc").label_names[1] == "equivalent"


def test_unknown_task_lists_the_tasks():
    with pytest.raises(BertInsightInputError, match="unknown GLUE task 'cola'.*mrpc, stsb, sst2, rte, qnli, qqp, mnli"):
        load_glue("cola")


def test_unknown_split_lists_the_splits():
    with pytest.raises(BertInsightInputError, match=r"'validation' is not a GLUE rte split.*'train', 'dev', 'test'"):
        load_glue("rte", "validation")
    with pytest.raises(BertInsightInputError, match="dev_matched.*dev_mismatched"):
        load_glue("mnli", "dev")


# ---------------------------------------------------------------------------------------- bundled QNLI

def test_bundled_qnli_dev_matches_the_file(qnli_dev, qnli_reference):
    assert len(qnli_dev) == len(qnli_reference) == 5_463
    names = glue_task("qnli").label_names
    assert qnli_dev["text_a"].tolist() == [row["question"] for row in qnli_reference]
    assert qnli_dev["text_b"].tolist() == [row["sentence"] for row in qnli_reference]
    assert qnli_dev["label"].tolist() == [names.index(row["label"]) for row in qnli_reference]
    assert qnli_dev.loc[0, "text_a"] == "What came into force after the new constitution was herald?"
    assert qnli_dev.loc[1, "label"] == 1  # not_entailment
    assert qnli_dev["example_id"].tolist()[:2] == ["qnli-dev-0", "qnli-dev-1"] and qnli_dev["example_id"].is_unique
    assert qnli_dev.attrs == {"dataset": "glue", "task": "qnli", "split": "dev",
                              "source": "bundled:glue_qnli_dev.tsv.gz", "n_examples": 5_463}


@pytest.mark.shared
def test_bundled_qnli_is_the_shared_dev_file_byte_for_byte():
    assert gzip.decompress(BUNDLED_QNLI.read_bytes()) == (GLUE / "QNLI" / "dev.tsv").read_bytes()
    shared = load_glue("qnli", "dev", path=GLUE / "QNLI")
    shared.attrs = {}
    bundled = load_glue("qnli")
    bundled.attrs = {}
    pd.testing.assert_frame_equal(shared, bundled)


# ------------------------------------------------------------------------------------- no bundled copy

def test_not_bundled_without_datasets_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(BertInsightInputError, match=r"mrpc is not bundled.*path=.*pip install datasets"):
        load_glue("mrpc")
    with pytest.raises(BertInsightInputError,
                       match=r"only the GLUE qnli dev set is bundled.*split_examples\(load_glue"):
        load_glue("qnli", "train")


def fake_datasets(load_dataset) -> types.ModuleType:
    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset
    return module


def test_a_datasets_failure_becomes_one_input_error_without_its_traceback(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(offline))
    with pytest.raises(BertInsightInputError, match="ConnectionError: no network") as caught:
        load_glue("sst2", "train")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_hub_rows_use_the_hub_split_and_column_names(monkeypatch):
    calls = []

    def load_dataset(name, config, split):
        calls.append((name, config, split))
        if split == "test_matched":
            raise AssertionError("not asked")
        return [{"premise": "A man sleeps.", "hypothesis": "A person rests.", "label": 0, "idx": 0},
                {"premise": "A man sleeps.", "hypothesis": "A man runs.", "label": 2, "idx": 1}]

    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(load_dataset))
    frame = load_glue("MNLI", "dev_matched")
    assert calls == [("glue", "mnli", "validation_matched")]
    assert frame["text_b"].tolist() == ["A person rests.", "A man runs."] and frame["label"].tolist() == [0, 2]
    assert frame.attrs["source"] == "hf:glue/mnli:validation_matched"
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(
        lambda name, config, split: [{"question1": "a?", "question2": "b?", "label": -1, "idx": 0}]))
    with pytest.raises(BertInsightInputError, match="GLUE test sets carry no labels"):
        load_glue("qqp", "test")


# ------------------------------------------------------------------------------ local files (tmp_path)

def test_quotes_are_text_and_a_bom_is_not_part_of_the_header(tmp_path):
    # with csv's default quoting the '"' would swallow the newline and merge both rows into one
    path = write_tsv(tmp_path / "MRPC" / "dev.tsv", [
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        '1\t1\t2\tHe said "no.\t"The end',
        "0\t3\t4\tA second pair.\tIts other half.",
    ], bom=True)
    frame = load_glue("mrpc", "dev", path=path.parent)
    assert frame["text_a"].tolist() == ['He said "no.', "A second pair."]
    assert frame["text_b"].tolist() == ['"The end', "Its other half."] and frame["label"].tolist() == [1, 0]
    assert frame.attrs["source"] == str(path)


def test_a_glue_root_picks_the_task_folder(tmp_path):
    write_tsv(tmp_path / "SST-2" / "dev.tsv", ["sentence\tlabel", "fine film \t1", "dull \t0", "grand \t1"])
    write_tsv(tmp_path / "RTE" / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA b.\tC d.\tentailment"])
    sst2 = load_glue("SST-2", "dev", path=tmp_path)
    assert sst2["text_a"].tolist() == ["fine film ", "dull ", "grand "] and sst2["label"].tolist() == [1, 0, 1]
    assert sst2["text_b"].isna().all() and sst2["task"].eq("sst2").all()
    assert load_glue("rte", "dev", path=tmp_path)["label"].tolist() == [0]


def test_sst2_train_falls_back_to_the_two_alps_files_in_order(tmp_path):
    write_tsv(tmp_path / "alps_train_split.tsv", ["sentence\tlabel", "one \t1", "two \t0"])
    write_tsv(tmp_path / "alps_dev_split.tsv", ["sentence\tlabel", "three \t0"])
    frame = load_glue("sst2", "train", path=tmp_path)
    assert frame["text_a"].tolist() == ["one ", "two ", "three "]
    assert frame["example_id"].tolist() == ["sst2-train-0", "sst2-train-1", "sst2-train-2"]
    assert frame.attrs["source"] == f"{tmp_path / 'alps_train_split.tsv'} + {tmp_path / 'alps_dev_split.tsv'}"
    write_tsv(tmp_path / "train.tsv", ["sentence\tlabel", "own train \t1"])  # GLUE's own file wins
    assert load_glue("sst2", "train", path=tmp_path)["text_a"].tolist() == ["own train "]


def test_stsb_train_parts_are_read_without_a_header(tmp_path):
    row = "{i}\tmain-captions\tMSRvid\t2012test\t000{i}\tnone\tnone\tSentence {i}.\tOther {i}.\t{score}"
    write_tsv(tmp_path / "resplit_train_part1.tsv", [row.format(i=0, score="5.000"), row.format(i=1, score="3.800")])
    write_tsv(tmp_path / "resplit_train_part2.tsv", [row.format(i=2, score="0.000")])
    frame = load_glue("sts-b", "train", path=tmp_path)
    assert frame["label"].tolist() == [5.0, 3.8, 0.0] and frame["label"].dtype == np.float64
    assert frame["text_a"].tolist() == ["Sentence 0.", "Sentence 1.", "Sentence 2."]


def test_a_zip_is_searched_at_any_depth_for_the_split(tmp_path):
    archive = tmp_path / "qqp.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("a/b/QQP/dev.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                           "7\t1\t2\tWhy?\tHow come?\t1\n")
        handle.writestr("a/b/QQP/train.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                             "8\t3\t4\tWhere?\tWhen?\t0\n")
    frame = load_glue("qqp", "dev", path=archive)
    assert frame[["text_a", "text_b", "label"]].values.tolist() == [["Why?", "How come?", 1]]
    assert frame.attrs["source"] == f"{archive}:a/b/QQP/dev.tsv"
    with pytest.raises(BertInsightInputError, match="no GLUE qqp test file.*test.tsv"):
        load_glue("qqp", "test", path=archive)


def test_missing_columns_are_named_with_the_file(tmp_path):
    path = write_tsv(tmp_path / "dev.tsv", ["index\tquestion\tpassage\tlabel", "0\tWhy?\tBecause.\tentailment"])
    with pytest.raises(BertInsightInputError, match=r"dev.tsv lacks the GLUE qnli column\(s\) \['sentence'\]"):
        load_glue("qnli", "dev", path=path)


def test_a_bad_label_names_file_line_value_and_the_labels(tmp_path):
    path = write_tsv(tmp_path / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tA.\tB.\tentailment",
                                            "1\tC.\tD.\tcontradiction"])
    with pytest.raises(BertInsightInputError,
                       match=r"dev.tsv line 3: label 'contradiction' is not a GLUE rte label.*'entailment'.*"
                             r"'not_entailment'"):
        load_glue("rte", "dev", path=path)
    path = write_tsv(tmp_path / "sst.tsv", ["sentence\tlabel", "good \t1", "bad \t0", "odd \t2"])
    with pytest.raises(BertInsightInputError, match=r"sst.tsv line 4: label '2'"):
        load_glue("sst2", "dev", path=path)


def test_a_row_with_the_wrong_number_of_fields_names_its_line(tmp_path):
    path = write_tsv(tmp_path / "dev.tsv", ["sentence\tlabel", "good \t1", "a tab\tinside \t0"])
    with pytest.raises(BertInsightInputError, match=r"dev.tsv line 3 has 3 tab-separated fields, but the header has 2"):
        load_glue("sst2", "dev", path=path)


def test_an_empty_text_names_its_line(tmp_path):
    path = write_tsv(tmp_path / "dev.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                                            "1\t1\t2\tWhy?\tHow?\t0", "2\t3\t4\tWhere?\t \t1"])
    with pytest.raises(BertInsightInputError, match=r"dev.tsv line 3: the 'question2' text is empty"):
        load_glue("qqp", "dev", path=path)


def test_missing_files_say_what_was_looked_for(tmp_path):
    with pytest.raises(BertInsightInputError, match="no such file or folder"):
        load_glue("mrpc", "dev", path=tmp_path / "absent")
    (tmp_path / "RTE").mkdir()
    with pytest.raises(BertInsightInputError, match=r"no GLUE rte test file in .*RTE: looked for resplit_test.tsv or "
                                                    r"test.tsv"):
        load_glue("rte", "test", path=tmp_path)
    with pytest.raises(BertInsightInputError, match="looked for dev.tsv"):
        load_glue("qqp", "dev", path=tmp_path)


def test_an_unlabelled_glue_test_file_is_refused(tmp_path):
    folder = tmp_path / "MRPC"
    write_tsv(folder / "test.tsv", ["index\t#1 ID\t#2 ID\t#1 String\t#2 String", "0\t1\t2\tA.\tB."])
    with pytest.raises(BertInsightInputError, match="GLUE test sets carry no labels.*msr_paraphrase_test.txt"):
        load_glue("mrpc", "test", path=folder)
    write_tsv(folder / "msr_paraphrase_test.txt", ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t1\t2\tA.\tB."],
              bom=True)
    assert load_glue("mrpc", "test", path=folder)["label"].tolist() == [1]  # the labelled MSRP file wins


def test_mrpc_train_falls_back_to_msrp_train_minus_the_dev_ids(tmp_path):
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    write_tsv(tmp_path / "msr_paraphrase_train.txt", [header, "1\t10\t11\tTrain a.\tTrain b.",
                                                      "0\t20\t21\tDev a.\tDev b.", "0\t30\t31\tTrain c.\tTrain d."])
    assert len(load_glue("mrpc", "train", path=tmp_path)) == 3  # without dev_ids.tsv: every pair
    write_tsv(tmp_path / "dev_ids.tsv", ["20\t21"])
    frame = load_glue("mrpc", "train", path=tmp_path)
    assert frame["text_a"].tolist() == ["Train a.", "Train c."] and frame["label"].tolist() == [1, 0]
    assert frame["example_id"].tolist() == ["mrpc-train-0", "mrpc-train-1"]


@pytest.mark.parametrize("score", ["5.2", "-0.1", "high", "nan"])
def test_an_stsb_score_outside_0_to_5_is_refused(tmp_path, score):
    path = write_tsv(tmp_path / "dev.tsv", [
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
        "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man.\tA person.\t4.000",
        f"1\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA cat.\tA dog.\t{score}"])
    with pytest.raises(BertInsightInputError,
                       match=rf"dev.tsv line 3: STS-B score '{score}' is not a number in \[0, 5\]"):
        load_glue("stsb", "dev", path=path)


# --------------------------------------------------------------------------------- user-made frames

def test_validate_normalises_labels_and_adds_the_task():
    frame = pd.DataFrame({"example_id": [1, 2, 3], "text_a": ["a", "b", "c"], "text_b": ["x", "y", "z"],
                          "label": [np.int64(2), 0.0, np.float32(1)], "extra": [7, 8, 9]})
    checked = validate_sentence_examples(frame, task="MNLI")
    assert list(checked.columns) == ["example_id", "text_a", "text_b", "label", "task", "extra"]
    assert checked["label"].tolist() == [2, 0, 1] and checked["label"].dtype == np.int64
    assert checked["example_id"].tolist() == ["1", "2", "3"] and checked["task"].eq("mnli").all()
    sst2 = validate_sentence_examples(pd.DataFrame({"example_id": ["s"], "text_a": ["ok"], "label": [1]}), task="sst2")
    assert sst2["text_b"].tolist() == [None]
    stsb = validate_sentence_examples(pd.DataFrame({"example_id": ["p"], "text_a": ["a"], "text_b": ["b"],
                                                    "label": [np.int32(4)], "task": ["STS-B"]}), task="stsb")
    assert stsb["label"].tolist() == [4.0] and stsb["label"].dtype == np.float64 and stsb["task"].tolist() == ["stsb"]


@pytest.mark.parametrize("task, change, message", [
    ("mrpc", {"label": [0, 1.5]}, r"example 'b': label must be a GLUE mrpc label id, an int in range\(2\)"),
    ("mrpc", {"label": [0, 2]}, r"example 'b': label .*\(0 = not_equivalent, 1 = equivalent\), got 2"),
    ("mrpc", {"label": [0, True]}, "example 'b': label"),
    ("mrpc", {"example_id": ["a", "a"]}, r"repeated: \['a'\]"),
    ("mrpc", {"text_a": ["one", " "]}, "example 'b': text_a is empty"),
    ("mrpc", {"text_b": ["x", None]}, "example 'b': text_b is None, but GLUE mrpc is a sentence-pair task"),
    ("sst2", {"text_b": [None, "y"]}, "example 'b': text_b is 'y', but GLUE sst2 is a single-sentence task"),
    ("stsb", {"label": [4.5, 5.5]}, r"example 'b': label must be an STS-B similarity score, a number in \[0, 5\]"),
    ("mrpc", {"task": ["mrpc", "rte"]}, "example 'b': its task is 'rte'"),
])
def test_validate_refuses_bad_rows_naming_the_example(task, change, message):
    frame = pd.DataFrame({"example_id": ["a", "b"], "text_a": ["one", "two"], "text_b": ["x", "y"], "label": [0, 1]})
    for column, values in change.items():
        frame[column] = pd.Series(values, dtype=object)
    with pytest.raises(BertInsightInputError, match=message):
        validate_sentence_examples(frame, task=task)


def test_validate_refuses_missing_columns_and_empty_frames():
    with pytest.raises(BertInsightInputError, match=r"lacks column\(s\) \['text_b'\]"):
        validate_sentence_examples(pd.DataFrame({"example_id": ["a"], "text_a": ["x"], "label": [0]}), task="rte")
    empty = pd.DataFrame(columns=["example_id", "text_a", "text_b", "label"])
    assert validate_sentence_examples(empty, task="rte").empty
    with pytest.raises(BertInsightInputError, match="examples is empty"):
        validate_sentence_examples(empty, task="rte", allow_empty=False)


# ------------------------------------------------------------------------------------ split_examples

def test_split_examples_is_stratified_seeded_and_keeps_ids(qnli_dev):
    train, test = split_examples(qnli_dev, test_fraction=0.2, seed=0)
    assert len(test) == 1_093 and len(train) + len(test) == len(qnli_dev)
    assert set(train["example_id"]).isdisjoint(test["example_id"])
    assert set(train["example_id"]) | set(test["example_id"]) == set(qnli_dev["example_id"])
    original = Counter(qnli_dev["label"])
    for label, count in original.items():
        assert abs(Counter(test["label"])[label] - 0.2 * count) <= 1
        assert abs(Counter(train["label"])[label] - 0.8 * count) <= 1
    joined = test.merge(qnli_dev, on="example_id", suffixes=("", "_original"))
    assert (joined["text_a"] == joined["text_a_original"]).all() and (joined["label"] == joined["label_original"]).all()
    assert train.attrs["split"] == "dev-train" and test.attrs["split"] == "dev-test"
    assert test.attrs["resplit"] == "test_fraction=0.2, seed=0" and test.attrs["source"] == qnli_dev.attrs["source"]
    again, _ = split_examples(qnli_dev, test_fraction=0.2, seed=0)
    other, _ = split_examples(qnli_dev, test_fraction=0.2, seed=1)
    assert again["example_id"].tolist() == train["example_id"].tolist() != other["example_id"].tolist()


def test_split_examples_of_a_regression_task_and_bad_arguments():
    frame = pd.DataFrame({"example_id": [f"p{i}" for i in range(10)], "text_a": ["a"] * 10, "text_b": ["b"] * 10,
                          "label": [i / 2 for i in range(10)], "task": "stsb"})
    train, test = split_examples(frame, test_fraction=0.3, seed=3)
    assert (len(train), len(test)) == (7, 3) and test["label"].dtype == np.float64
    assert sorted(train["label"].tolist() + test["label"].tolist()) == frame["label"].tolist()
    with pytest.raises(BertInsightInputError, match="test_fraction must be a number between 0 and 1"):
        split_examples(frame, test_fraction=1.0)
    lonely = frame.assign(task="sst2", text_b=None, label=[0] * 9 + [1])  # one example of label 1
    with pytest.raises(BertInsightInputError, match="cannot split 10 sst2 examples"):
        split_examples(lonely)
    with pytest.raises(BertInsightInputError, match="cannot tell which GLUE task"):
        split_examples(frame.drop(columns="task"))


# ----------------------------------------------------------------------------------- shared GLUE data

@pytest.mark.shared
@pytest.mark.parametrize("task, split, size, file, text_column", [
    ("mrpc", "train", 3_668, "MRPC/train.tsv", "#1 String"),
    ("mrpc", "dev", 408, "MRPC/dev.tsv", "#1 String"),
    ("mrpc", "test", 1_725, "MRPC/msr_paraphrase_test.txt", "#1 String"),
    ("stsb", "dev", 1_500, "STS-B/dev.tsv", "sentence1"),
    ("rte", "train", 1_244, "RTE/resplit_train.tsv", "sentence1"),
    ("rte", "dev", 139, "RTE/resplit_dev.tsv", "sentence1"),
    ("rte", "test", 1_384, "RTE/resplit_test.tsv", "sentence1"),
    ("sst2", "dev", 872, "SST-2/dev.tsv", "sentence"),
    ("qnli", "dev", 5_463, "QNLI/dev.tsv", "question"),
])
def test_shared_glue_sizes_and_texts(task, split, size, file, text_column):
    frame = load_glue(task, split, path=GLUE)
    reference = reference_file(GLUE / file)
    assert len(frame) == len(reference) == size
    assert frame["text_a"].tolist() == [row[text_column] for row in reference]
    assert frame.attrs["source"] == str(GLUE / file) and frame.attrs["n_examples"] == size


@pytest.mark.shared
def test_shared_label_balances():
    sst2 = load_glue("sst2", "dev", path=GLUE / "SST-2")
    assert sst2.loc[0, "text_a"].strip() == "it 's a charming and often affecting journey ."
    assert Counter(sst2["label"]) == {1: 444, 0: 428}
    rte = load_glue("rte", "test", path=GLUE)
    reference = reference_file(GLUE / "RTE" / "resplit_test.tsv")
    assert (rte["label"] == 0).sum() == sum(row["label"] == "entailment" for row in reference)
    mrpc = load_glue("mrpc", "dev", path=GLUE)
    assert mrpc["label"].tolist() == [int(row["Quality"]) for row in reference_file(GLUE / "MRPC" / "dev.tsv")]
    assert mrpc.loc[0, "text_b"].startswith('"The foodservice')  # a '"' is text (no quote processing)


@pytest.mark.shared
def test_shared_sst2_and_stsb_train_join_their_parts():
    sst2 = load_glue("sst2", "train", path=GLUE)
    parts = [row for name in ("alps_train_split.tsv", "alps_dev_split.tsv")
             for row in reference_file(GLUE / "SST-2" / name)]
    assert len(sst2) == 67_349
    assert sst2["text_a"].tolist() == [row["sentence"] for row in parts]
    assert sst2["label"].tolist() == [int(row["label"]) for row in parts]
    stsb = load_glue("stsb", "train", path=GLUE / "STS-B")
    rows = [line.split("\t") for name in ("resplit_train_part1.tsv", "resplit_train_part2.tsv")
            for line in (GLUE / "STS-B" / name).read_text(encoding="utf-8").splitlines()]
    assert len(stsb) == len(rows) == 5_749
    assert stsb["label"].tolist() == [float(row[9]) for row in rows] and stsb["label"].between(0, 5).all()
    assert stsb.loc[0, "text_a"] == "A plane is taking off." and stsb["text_b"].iloc[-1] == rows[-1][8]


@pytest.mark.shared
def test_shared_mrpc_train_fallback_equals_glue_train(tmp_path):
    for name in ("msr_paraphrase_train.txt", "dev_ids.tsv"):
        shutil.copy(GLUE / "MRPC" / name, tmp_path / name)
    fallback = load_glue("mrpc", "train", path=tmp_path)
    glue = load_glue("mrpc", "train", path=GLUE / "MRPC")
    fallback.attrs, glue.attrs = {}, {}
    pd.testing.assert_frame_equal(fallback, glue)
    with pytest.raises(BertInsightInputError, match="GLUE test sets carry no labels"):
        load_glue("mrpc", "test", path=GLUE / "MRPC" / "test.tsv")


@pytest.mark.shared
def test_shared_qqp_and_mnli_from_the_datasets_dummy_zips():
    zips = GLUE / "hf_dummy_samples"
    qqp = load_glue("qqp", "dev", path=zips / "qqp.zip")
    assert qqp["text_a"].tolist() == ["Why are African-Americans so beautiful?",
                                      "I want to pursue PhD in Computer Science about social network,what is the open "
                                      "problem in social networks?"]
    assert qqp["label"].tolist() == [0, 0]
    assert load_glue("qqp", "train", path=zips / "qqp.zip")["label"].tolist() == [0, 1, 0]
    with zipfile.ZipFile(zips / "mnli.zip") as archive:
        reference = reference_rows(archive.read("dummy_data/MNLI/dev_mismatched.tsv").decode("utf-8"))
    mismatched = load_glue("mnli", "dev_mismatched", path=zips / "mnli.zip")
    names = glue_task("mnli").label_names
    assert mismatched["text_b"].tolist() == [row["sentence2"] for row in reference]
    assert mismatched["label"].tolist() == [names.index(row["gold_label"]) for row in reference]
    matched = load_glue("mnli", "dev_matched", path=zips / "mnli.zip")
    assert matched["text_a"].tolist()[0] == "The new rights are nice enough" and matched["label"].tolist() == [1, 2]
    stsb = load_glue("stsb", "dev", path=zips / "stsb.zip")  # its folder is misspelt SST-B
    assert stsb["label"].tolist() == [5.0, 4.75]
