"""Edge-probing builders for pos / deps / consts / srl (bert_insight.data.edge_syntax).

Expected targets are derived here from the raw CoNLL-U / .gold_skel lines (own small readers, not the
package's), or written by hand for a few known sentences of UD English EWT dev.
"""

from __future__ import annotations

import gzip
import re
from collections import Counter

import pytest
from conftest import SHARED_DATA

from bert_insight import BertInsightInputError
from bert_insight.data._files import bundled_path
from bert_insight.data.edge_syntax import (BUNDLED, build_consts, build_deps, build_pos, build_srl,
                                           constituent_label)
from bert_insight.data.edge_tasks import check_task, load_edge_task

DOC = "weblog-blogspot.com_nominations_20041117172713_ENG_20041117_172713"
S1, S2, S4 = f"{DOC}-0001", f"{DOC}-0002", f"{DOC}-0004"  # "From the AP comes this story :", "President Bush ...", "***"


@pytest.fixture(scope="module")
def tasks():
    return {"pos": build_pos(), "deps": build_deps(), "consts": build_consts(), "srl": build_srl()}


def _raw_lines(name: str) -> list[str]:
    with gzip.open(bundled_path(name), "rt", encoding="utf-8") as handle:
        return handle.read().splitlines()


def _conllu_words(name: str) -> dict[str, list[list[str]]]:
    """sent_id -> the 10 fields of each word line (multiword ranges and empty nodes skipped)."""
    sentences, current = {}, None
    for line in _raw_lines(name):
        if line.startswith("# sent_id = "):
            current = sentences.setdefault(line[len("# sent_id = "):], [])
        elif line and not line.startswith("#"):
            fields = line.split("\t")
            if fields[0].isdigit():
                current.append(fields)
    return sentences


def _skel_sentences(name: str) -> list[list[list[str]]]:
    blocks, block = [], []
    for line in _raw_lines(name) + [""]:
        if line.strip():
            block.append(line.split())
        elif block:
            blocks.append(block)
            block = []
    return blocks


def _targets(task, split, text_id):
    rows = task.targets[(task.targets.split == split) & (task.targets.text_id == text_id)]
    return [(r.span1_start, r.span1_end, r.span2_start, r.span2_end, r.labels) for r in rows.itertuples()]


def _made(task, split):
    report = task.report[task.report.split == split]
    return int(report[report.outcome == "made"]["n"].sum())


def _dropped(task, split):
    report = task.report[(task.report.split == split) & (task.report.outcome == "dropped")]
    return dict(zip(report["reason"], report["n"].astype(int)))


# ---- pos ---------------------------------------------------------------------------------------------------
def test_pos_is_the_xpos_of_every_word(tasks):
    task = tasks["pos"]
    assert not task.two_spans and task.splits == ("train", "dev")
    assert _targets(task, "dev", S1) == [(i, i + 1, -1, -1, (tag,)) for i, tag in
                                         enumerate(["IN", "DT", "NNP", "VBZ", "DT", "NN", ":"])]
    for split in ("train", "dev"):
        words = _conllu_words(BUNDLED[split][0])
        expected = Counter(fields[4] for sentence in words.values() for fields in sentence)
        got = Counter(label for labels in task.targets[task.targets.split == split]["labels"] for label in labels)
        assert got == expected
        assert _made(task, split) == sum(expected.values()) and _dropped(task, split) == {}
        texts = task.texts[task.texts.split == split]
        assert dict(zip(texts.text_id, texts.words)) == {k: tuple(f[1] for f in v) for k, v in words.items()}
    assert {"NN", "-LRB-", "HYPH", "PRP$"} <= set(task.labels) and "NOUN" not in task.labels


# ---- deps --------------------------------------------------------------------------------------------------
def test_deps_link_dependent_to_head_and_drop_roots(tasks):
    task = tasks["deps"]
    # From(case->AP) the(det->AP) AP(obl->comes) comes(root) this(det->story) story(nsubj->comes) :(punct->comes)
    assert _targets(task, "dev", S1) == [(0, 1, 2, 3, ("case",)), (1, 2, 2, 3, ("det",)), (2, 3, 3, 4, ("obl",)),
                                         (4, 5, 5, 6, ("det",)), (5, 6, 3, 4, ("nsubj",)), (6, 7, 3, 4, ("punct",))]
    assert S4 not in set(task.texts.text_id)  # "***": its only word is the root
    for split in ("train", "dev"):
        words = [fields for sentence in _conllu_words(BUNDLED[split][0]).values() for fields in sentence]
        assert _dropped(task, split) == {"root relation": sum(f[6] == "0" for f in words)}
        assert _made(task, split) == sum(f[6] != "0" for f in words) == int((task.targets.split == split).sum())
        expected = Counter(f[7] for f in words if f[6] != "0")
        got = Counter(label for labels in task.targets[task.targets.split == split]["labels"] for label in labels)
        assert got == expected
    assert {"nsubj:pass", "nmod:poss", "compound:prt"} <= set(task.labels) and "root" not in task.labels


# ---- consts ------------------------------------------------------------------------------------------------
def test_constituent_labels_lose_function_tags():
    assert [constituent_label(x) for x in ("NP-SBJ-1", "NP=2", "S-TPC|ADV", "VP", "-LRB-", "WHNP-3")] == [
        "NP", "NP", "S", "VP", "-LRB-", "WHNP"]


def test_consts_are_every_nonterminal_in_preorder(tasks):
    task = tasks["consts"]
    # (TOP(SINV(PP From (NP the AP)) (VP comes) (NP this story) :))
    assert _targets(task, "dev", S1) == [(0, 7, -1, -1, ("TOP",)), (0, 7, -1, -1, ("SINV",)), (0, 3, -1, -1, ("PP",)),
                                         (1, 3, -1, -1, ("NP",)), (3, 4, -1, -1, ("VP",)), (4, 6, -1, -1, ("NP",))]
    # a unary chain: (TOP(X ***)) gives one target per node, same span
    assert _targets(task, "dev", S4) == [(0, 1, -1, -1, ("TOP",)), (0, 1, -1, -1, ("X",))]
    for split in ("train", "dev"):
        blocks = _skel_sentences(BUNDLED[split][1])
        brackets = [label for block in blocks for line in block for label in re.findall(r"\(([^(*]+)", line[5])]
        assert _made(task, split) == len(brackets) and _dropped(task, split) == {}
        got = Counter(label for labels in task.targets[task.targets.split == split]["labels"] for label in labels)
        assert got == Counter(brackets) and got["TOP"] == len(blocks)
    assert "NN" not in task.labels and {"NP", "VP", "S", "SBAR", "NML"} <= set(task.labels)


# ---- srl ---------------------------------------------------------------------------------------------------
def test_srl_pairs_each_predicate_with_its_arguments(tasks):
    task = tasks["srl"]
    # President Bush on Tuesday nominated two individuals to replace retiring jurists on federal courts in ...
    assert _targets(task, "dev", S2) == [
        (4, 5, 0, 2, ("ARG0",)), (4, 5, 2, 4, ("ARGM-TMP",)), (4, 5, 5, 7, ("ARG1",)), (4, 5, 7, 18, ("ARG2",)),
        (8, 9, 5, 7, ("ARG0",)), (8, 9, 9, 18, ("ARG1",))]
    for split in ("train", "dev"):
        cells = [cell for block in _skel_sentences(BUNDLED[split][1]) for line in block for cell in line[8:]]
        roles = [label for cell in cells for label in re.findall(r"\(([^(*]+)", cell) if label != "V"]
        assert _made(task, split) == len(roles) and _dropped(task, split) == {}
        got = Counter(label for labels in task.targets[task.targets.split == split]["labels"] for label in labels)
        assert got == Counter(roles)
        # span1 is always a V span of the skel
        part = task.targets[task.targets.split == split]
        assert (part.span1_end - part.span1_start >= 1).all()
    assert {"R-ARG0", "C-ARG1", "ARGM-TMP", "C-V"} <= set(task.labels)


# ---- shared across tasks -----------------------------------------------------------------------------------
def test_the_four_tasks_share_ud_words_and_pass_check_task(tasks):
    words = dict(zip(tasks["pos"].texts.text_id, tasks["pos"].texts.words))
    for name, task in tasks.items():
        check_task(task)
        assert task.info["licence"] == "CC BY-SA 4.0" and task.info["caveats"]
        assert all(words[t] == w for t, w in zip(task.texts.text_id, task.texts.words)), name
        assert set(task.targets.text_id) == set(task.texts.text_id), name  # no text without targets
        assert 2000 <= int((task.targets.split == "train").sum()) <= 6000, name
        assert int((task.targets.split == "dev").sum()) >= 1000, name
    assert load_edge_task("srl").labels == tasks["srl"].labels


def _corpus(tmp_path, skel_blocks):
    """A corpus folder: the first 3 sentences of the bundled UD dev and the given skel sentences."""
    lines, n = [], 0
    for line in _raw_lines(BUNDLED["dev"][0]):
        lines.append(line)
        n += not line
        if n == 3:
            break
    (tmp_path / "ud_english_ewt").mkdir()
    (tmp_path / "ud_english_ewt" / "en_ewt-ud-dev.conllu").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "propbank_ewt_skel").mkdir()
    text = "\n\n".join("\n".join(" ".join(line) for line in block) for block in skel_blocks) + "\n"
    (tmp_path / "propbank_ewt_skel" / "ewt.dev.gold_skel").write_text(text, encoding="utf-8")
    return tmp_path


def test_unmatched_skel_sentences_are_dropped_and_counted(tmp_path):
    blocks = _skel_sentences(BUNDLED["dev"][1])
    first, second = blocks[0], blocks[1]  # UD -0001 (7 words), -0002 (19 words)
    as_third = [[line[0], "2", *line[2:]] for line in first]  # claims to be UD -0003 (not 7 words)
    elsewhere = [[line[0].replace("nominations", "nowhere"), *line[1:]] for line in first]  # no such UD doc
    folder = _corpus(tmp_path, [first, second, as_third, elsewhere])
    consts = build_consts(folder, splits=("dev",))
    assert _made(consts, "dev") == 6 + sum(line[5].count("(") for line in second)
    assert _dropped(consts, "dev") == {"word count differs from UD": 6, "sentence not in UD EWT dev": 6}
    assert set(consts.texts.text_id) == {S1, S2} and consts.info["ud_sentences_without_tree"] == {"dev": 1}
    srl = build_srl(folder, splits=("dev",))
    assert _made(srl, "dev") == 2 + 6  # 'comes': ARG2 ARG1; S2 as above
    assert _dropped(srl, "dev") == {"word count differs from UD": 2, "sentence not in UD EWT dev": 2}


def test_a_frame_without_predicate_is_dropped(tmp_path):
    first = [[*line[:8], line[8].replace("(V*)", "*")] for line in _skel_sentences(BUNDLED["dev"][1])[0]]
    srl = build_srl(_corpus(tmp_path, [first, _skel_sentences(BUNDLED["dev"][1])[1]]), splits=("dev",))
    assert _dropped(srl, "dev") == {"frame without a V span": 2} and _made(srl, "dev") == 6


def test_missing_or_malformed_input_is_one_clear_error(tmp_path):
    with pytest.raises(BertInsightInputError, match=r"ud_english_ewt/.*en_ewt-ud-train\.conllu.*en_ewt-ud-dev"):
        build_pos(tmp_path / "nowhere")
    folder = _corpus(tmp_path, [_skel_sentences(BUNDLED["dev"][1])[0]])
    assert len(build_deps(folder, splits=("dev",)).targets) > 0
    with pytest.raises(BertInsightInputError, match=r"propbank_ewt_skel/ewt\.train\.gold_skel"):
        build_srl(folder, splits=("train", "dev"))
    with pytest.raises(BertInsightInputError, match="bundled slices have only"):
        build_consts(splits=("test",))
    broken = [line[:] for line in _skel_sentences(BUNDLED["dev"][1])[0]]
    broken[-1][5] = "*)"  # the tree's last two brackets now close only one: TOP stays open
    (tmp_path / "b").mkdir()
    _corpus(tmp_path / "b", [broken])
    with pytest.raises(BertInsightInputError, match="ewt.dev.gold_skel, line 7: the parse bit leaves 1 span"):
        build_consts(tmp_path / "b", splits=("dev",))


# ---- full corpora ------------------------------------------------------------------------------------------
@pytest.mark.shared
def test_the_full_ewt_tasks():
    from bert_insight.data.conllu import load_conllu

    splits = ("train", "dev", "test")
    tasks = {name: builder(SHARED_DATA, splits=splits)
             for name, builder in (("pos", build_pos), ("deps", build_deps), ("consts", build_consts),
                                   ("srl", build_srl))}
    for name, task in tasks.items():
        print(task, task.report.to_dict("records"))
    ud = SHARED_DATA / "ud_english_ewt"
    for split, file in (("train", "en_ewt-ud-train.conllu.gz"), ("dev", "en_ewt-ud-dev.conllu"),
                        ("test", "en_ewt-ud-test.conllu")):
        words = load_conllu(ud / file)
        assert _made(tasks["pos"], split) == len(words)
        assert _made(tasks["deps"], split) == len(words) - words.attrs["n_sentences"]
        assert _dropped(tasks["deps"], split) == {"root relation": words.attrs["n_sentences"]}
    assert len(tasks["pos"].targets) == 204577 + 25147 + 25094
    consts, srl = tasks["consts"], tasks["srl"]
    # dev: 1,974 skel sentences, 1 absent from UD dev, 5 with other word counts (as propbank_links)
    assert int((consts.targets.split == "dev").sum()) == 23490
    assert set(_dropped(consts, "dev")) == {"sentence not in UD EWT dev", "word count differs from UD"}
    assert int(((consts.targets.split == "train") & consts.targets.labels.map(lambda x: x == ("TOP",))).sum()) \
        == 12543 - 19
    assert 80000 < int((srl.targets.split == "train").sum()) < 83000
    assert {"ARG0", "ARG5", "R-ARG1", "C-ARG1", "ARGM-TMP"} <= set(srl.labels)
