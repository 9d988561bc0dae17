"""Semantic edge-probing builders (bert_insight.data.edge_semantics): entities, coref, spr, relations."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import re
from collections import Counter

import pytest

from bert_insight.data import edge_semantics as es
from bert_insight.data._files import bundled_path
from bert_insight.data.edge_tasks import check_task, load_edge_task
from bert_insight.errors import BertInsightInputError
from conftest import SHARED_DATA


def _bundled_text(name: str) -> str:
    with gzip.open(bundled_path(f"edge_probing/{name}"), "rt", encoding="utf-8") as handle:
        return handle.read()


def _words(task):
    return dict(zip(task.texts["text_id"], task.texts["words"]))


def _made(task, split):
    rows = task.report[(task.report["split"] == split) & (task.report["outcome"] == "made")]
    return int(rows["n"].sum())


def _dropped(task, split):
    rows = task.report[(task.report["split"] == split) & (task.report["outcome"] == "dropped")]
    return int(rows["n"].sum())


@pytest.fixture(scope="module")
def coref():
    return es.build_coref()


@pytest.fixture(scope="module")
def spr():
    return es.build_spr()


@pytest.fixture(scope="module")
def relations():
    return es.build_relations()


# ---- coref (GAP) ---------------------------------------------------------------------------------------
def _gap_rows(split):
    return list(csv.DictReader(io.StringIO(_bundled_text(es.BUNDLED_GAP[split])), delimiter="\t",
                               quoting=csv.QUOTE_NONE))


def test_coref_gap_targets_match_the_rows(coref):
    check_task(coref)
    assert coref.labels == ("coreferent",) and coref.binary and coref.two_spans
    words = _words(coref)
    targets = coref.targets.set_index("target_id")
    checked = 0
    for row in _gap_rows("train")[:40]:
        text_id = f"gap:{row['ID']}"
        if f"{text_id}:1" not in targets.index:
            continue
        for number, letter in enumerate("AB"):
            t = targets.loc[f"{text_id}:{number}"]
            w = words[text_id]
            # the pronoun span's words are the pronoun at its character offset
            offset = int(row["Pronoun-offset"])
            assert row["Text"][offset:offset + len(row["Pronoun"])] == row["Pronoun"]
            assert w[t.span1_start:t.span1_end] == (row["Pronoun"],)
            assert "".join(w[t.span2_start:t.span2_end]) == row[letter].replace(" ", "")
            # the word span starts at the name's character offset in " ".join-free terms: the words
            # before it rebuild the text before the offset (spaces aside)
            assert "".join(w[:t.span2_start]) == re.sub(r"\s", "", row["Text"][:int(row[f"{letter}-offset"])])
            assert t.labels == (("coreferent",) if row[f"{letter}-coref"] == "TRUE" else ())
            checked += 1
    assert checked >= 70


def test_coref_gap_splits_counts_and_negatives(coref):
    assert coref.splits == ("train", "dev")
    for split in ("train", "dev"):
        rows = _gap_rows(split)
        part = coref.targets[coref.targets["split"] == split]
        assert _made(coref, split) == len(part)
        assert _made(coref, split) + _dropped(coref, split) == 2 * len(rows)
        positives = sum(row[f"{x}-coref"] == "TRUE" for row in rows for x in "AB")
        made_positive = int(part["labels"].map(len).sum())
        assert positives - _dropped(coref, split) <= made_positive <= positives
        assert set(part["labels"]) == {(), ("coreferent",)}
    assert 1800 <= _made(coref, "train") <= 1900 and 880 <= _made(coref, "dev") <= 908
    # one text per GAP row, words without spaces
    assert all(" " not in w for words in coref.texts["words"] for w in words)


def test_coref_gap_drops_misaligned_names():
    row = {"ID": "x", "Text": "Ming-but met Bo. He left.", "Pronoun": "He", "Pronoun-offset": "17",
           "A": "Ming", "A-offset": "0", "A-coref": "TRUE", "B": "Bo", "B-offset": "13", "B-coref": "FALSE"}
    words, pairs, dropped = es._gap_targets(row)
    assert words == ("Ming-but", "met", "Bo", ".", "He", "left", ".")
    assert pairs == [(4, 5, 2, 3, ())]
    assert dropped == Counter({"name does not align with word boundaries": 1})
    words, pairs, dropped = es._gap_targets({**row, "Pronoun-offset": "16"})
    assert pairs == [] and dropped == Counter({"pronoun offset does not point at the pronoun text": 2})


# ---- spr -----------------------------------------------------------------------------------------------
def _spr_raw():
    lines = _bundled_text(es.BUNDLED_SPR).splitlines()
    header = json.loads(lines[0])
    return header, [json.loads(line) for line in lines[1:]]


def test_spr_labels_are_the_properties_above_zero(spr):
    check_task(spr)
    assert spr.labels == es.SPR2_PROPERTIES and not spr.binary
    header, records = _spr_raw()
    index = {p: i for i, p in enumerate(header["properties"])}
    targets = spr.targets.set_index(["text_id", "span1_start", "span2_start"])
    words = _words(spr)
    checked = 0
    for record in records[:60]:
        by_pred = Counter(p for p, a, v in record["pairs"])
        for pred, arg, values in record["pairs"]:
            expected = tuple(p for p in es.SPR2_PROPERTIES if values[index[p]] is not None and values[index[p]] > 0)
            match = spr.targets[(spr.targets["text_id"] == record["key"]) & (spr.targets["span1_start"] == pred - 1)
                                & (spr.targets["span2_start"] <= arg - 1) & (spr.targets["span2_end"] > arg - 1)]
            if not expected:
                continue
            assert len(match) >= 1
            row = match.iloc[0] if len(match) == 1 else match[match["labels"] == expected].iloc[0]
            assert row["labels"] == expected
            assert row["span1_end"] == pred
            assert words[record["key"]] == tuple(record["words"])
            checked += 1
        assert by_pred
    assert checked >= 100
    assert targets.index.is_unique


def test_spr_report_counts_and_threshold(spr):
    _, records = _spr_raw()
    for split in ("train", "dev"):
        n_pairs = sum(len(r["pairs"]) for r in records if r["split"] == split)
        assert _made(spr, split) == int((spr.targets["split"] == split).sum())
        assert _made(spr, split) + _dropped(spr, split) == n_pairs
    assert 1900 <= _made(spr, "train") <= 2100 and 600 <= _made(spr, "dev") <= 650
    strict = es.build_spr(threshold=1.0)
    loose = {(r.text_id, r.span1_start, r.span2_start): set(r.labels) for r in spr.targets.itertuples()}
    for r in strict.targets.itertuples():
        assert set(r.labels) <= loose[(r.text_id, r.span1_start, r.span2_start)]
    assert strict.label_matrix().sum() < spr.label_matrix().sum()


def test_spr_argument_span_leaves_out_the_predicate_branch():
    # "the man who left" : arg "man" (1), relative clause "left" (3) holds the predicate
    heads = [1, -1, 3, 1]
    upos = ["DET", "NOUN", "PRON", "VERB"]
    assert es._argument_span(heads, upos, 3, 1) == (0, 2)
    # trailing punctuation trimmed: "the man ," with "," attached to man
    assert es._argument_span([1, 3, 1, -1], ["DET", "NOUN", "PUNCT", "VERB"], 3, 1) == (0, 2)


# ---- relations -----------------------------------------------------------------------------------------
def _semeval_raw():
    blocks = [b.split("\n") for b in _bundled_text(es.BUNDLED_SEMEVAL).strip().split("\n\n")]
    return [(re.match(r"^(\d+)\s", b[0]).group(1), b[0].split("\t", 1)[1].strip().strip('"'), b[1]) for b in blocks]


def test_relations_spans_labels_and_split(relations):
    check_task(relations)
    assert len(relations.labels) == 19 and "Other" in relations.labels
    raw = _semeval_raw()
    assert len(raw) == 3600
    rng = random.Random(42)
    expected_split = {i: ("train" if rng.random() <= 0.85 else "dev") for i, _, _ in raw}
    targets = relations.targets.set_index("text_id")
    words = _words(relations)
    checked = 0
    for example_id, tagged, label in raw[:200]:
        text_id = f"semeval:{example_id}"
        if text_id not in targets.index:
            continue
        t = targets.loc[text_id]
        assert t["split"] == expected_split[example_id]
        assert t["labels"] == (label,)
        w = words[text_id]
        e1 = re.search(r"<e1>(.*?)</e1>", tagged).group(1)
        e2 = re.search(r"<e2>(.*?)</e2>", tagged).group(1)
        assert "".join(w[t.span1_start:t.span1_end]) == e1.replace(" ", "")
        assert "".join(w[t.span2_start:t.span2_end]) == e2.replace(" ", "")
        assert "".join(w) == re.sub(r"</?e[12]>|\s", "", tagged)
        checked += 1
    assert checked >= 195
    for split in ("train", "dev"):
        n = sum(s == split for s in expected_split.values())
        assert _made(relations, split) + _dropped(relations, split) == n
    assert 2900 <= _made(relations, "train") <= 3100 and 500 <= _made(relations, "dev") <= 560


# ---- bad input -----------------------------------------------------------------------------------------
def test_entities_needs_the_shared_folder(tmp_path):
    with pytest.raises(BertInsightInputError, match="cannot be bundled"):
        es.build_entities()
    with pytest.raises(BertInsightInputError, match="en_gum-ud-dev.conllu"):
        es.build_entities(tmp_path)
    with pytest.raises(BertInsightInputError, match="cannot be bundled"):
        es.build_coref(corpus="gum")


@pytest.mark.parametrize("name, expected", [("coref", "gap-development.tsv"), ("spr", "protoroles_normalized"),
                                            ("relations", "TRAIN_FILE.TXT")])
def test_missing_corpus_files_name_what_is_expected(tmp_path, name, expected):
    with pytest.raises(BertInsightInputError, match=expected):
        load_edge_task(name, tmp_path)


def test_bad_options():
    with pytest.raises(BertInsightInputError, match="splits"):
        es.build_relations(splits=("validation",))
    with pytest.raises(BertInsightInputError, match="test"):
        es.build_relations(splits=("test",))
    with pytest.raises(BertInsightInputError, match="corpus"):
        es.build_coref(corpus="ontonotes")
    with pytest.raises(BertInsightInputError, match="properties"):
        es.build_spr(properties=("agency",))


# ---- full corpora (../shared/data) ---------------------------------------------------------------------
@pytest.mark.shared
def test_full_relations_and_coref():
    rel = es.build_relations(SHARED_DATA, splits=("train", "dev", "test"))
    assert _made(rel, "train") + _dropped(rel, "train") + _made(rel, "dev") + _dropped(rel, "dev") == 8000
    assert _made(rel, "test") + _dropped(rel, "test") == 2717
    assert 1100 <= _made(rel, "dev") <= 1250 and _made(rel, "test") >= 2700
    bundled = es.build_relations()
    full = rel.targets.set_index("target_id")
    for row in bundled.targets.itertuples():  # the bundled slice is a subset, split the same way
        assert full.loc[row.target_id, "split"] == row.split and full.loc[row.target_id, "labels"] == row.labels
    gap = es.build_coref(SHARED_DATA, splits=("train", "dev", "test"))
    assert _made(gap, "train") + _dropped(gap, "train") == 4000 and _made(gap, "test") + _dropped(gap, "test") == 4000
    assert _made(gap, "dev") + _dropped(gap, "dev") == 908 and _dropped(gap, "train") < 40
    gum = es.build_coref(SHARED_DATA, corpus="gum")
    check_task(gum)
    assert gum.splits == ("train", "dev") and len(gum.targets) > 5000
    positive = gum.targets["labels"].map(len).to_numpy().astype(bool)
    assert 0.05 < positive.mean() < 0.5
    both = es.build_coref(SHARED_DATA, corpus="both")
    assert len(both.targets) == _made(gap, "train") + _made(gap, "dev") + len(gum.targets)


@pytest.mark.shared
def test_full_entities_from_gum():
    task = es.build_entities(SHARED_DATA)
    check_task(task)
    assert set(task.info["dev_documents"]) and 0.2 < (task.targets["split"] == "dev").mean() < 0.4
    counts = Counter(label for labels in task.targets["labels"] for label in labels)
    assert counts.most_common(1)[0][0] == "person" and len(task.targets) > 500
    words = _words(task)
    assert ("Byron",) in {words[t.text_id][t.span1_start:t.span1_end] for t in task.targets.itertuples()}
    every = es.build_entities(SHARED_DATA, named_only=False)
    assert len(every.targets) > 5 * len(task.targets)
    # dev documents hold no train sentence
    docs = {d: s for s, d in zip(task.texts["split"], task.texts["text_id"].str.rsplit("-", n=1).str[0])}
    assert {docs[d] for d in task.info["dev_documents"] if d in docs} == {"dev"}


@pytest.mark.shared
def test_full_spr_alignment_and_bundled_slice():
    task = es.build_spr(SHARED_DATA, splits=("train", "dev", "test"))
    check_task(task)
    assert task.info["alignment"] == {"train": [(12, 0), (11477, 1)], "dev": [(1, 0), (344, -1)], "test": [(5, 0)]}
    assert _made(task, "train") > 4500 and _made(task, "dev") > 600 and _made(task, "test") > 550
    bundled = es.build_spr()
    full = task.targets.set_index("target_id")
    for row in bundled.targets.itertuples():
        assert (full.loc[row.target_id, "span2_start"], full.loc[row.target_id, "labels"]) == (row.span2_start, row.labels)
    # the aligned sentence's predicate word is usually a verb
    words = _words(task)
    verbs = sum(words[t.text_id][t.span1_start].lower().endswith(("ed", "s", "ing", "e")) for t in task.targets.itertuples())
    assert verbs > 0.5 * len(task.targets)
