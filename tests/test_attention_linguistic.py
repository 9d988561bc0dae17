"""Attention to linguistic features and between linked words (Kovaleva et al. 2019, sections 4.2, 4.4,
4.5) and the CoNLL-U / PropBank readers they use, against loop-by-loop references on a tiny model."""

from __future__ import annotations

import gzip
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED_DATA, tiny_classifier, tiny_qa_model

from bert_insight import BertInsightInputError, from_model
from bert_insight.attention.linguistic import (
    feature_attention,
    relation_heads,
    token_to_token_attention,
    word_pieces,
)
from bert_insight.data._files import bundled_path
from bert_insight.data.conllu import (
    BUNDLED_CONLLU,
    coreference_links,
    dependency_links,
    load_conllu,
    propbank_links,
    sentences_as_examples,
)
from bert_insight.windows import encode_sentences


# ---- CoNLL-U written by the tests ----------------------------------------------------------------------
def conllu_text(sentences) -> str:
    """CoNLL-U of ``sentences``: (sent_id, words), each word (form, upos, head 1-based, deprel[, misc]);
    a ("1-2", form) tuple is a multiword-token line."""
    lines = []
    for sent_id, words in sentences:
        forms = [w[0] for w in words if len(w) > 2]
        lines += [f"# sent_id = {sent_id}", "# text = " + " ".join(forms)]
        number = 0
        for word in words:
            if len(word) == 2:
                lines.append(f"{word[0]}\t{word[1]}\t_\t_\t_\t_\t_\t_\t_\t_")
                continue
            number += 1
            form, upos, head, deprel, *misc = word
            lines.append("\t".join([str(number), form, form.lower(), upos, "_", "_", str(head), deprel, "_",
                                    misc[0] if misc else "_"]))
        lines.append("")
    return "\n".join(lines) + "\n"


FEATURE_SENTENCES = [
    ("a", [("The", "DET", 2, "det"), ("cat", "NOUN", 5, "nsubj"), ("3-4", "didn't"), ("did", "AUX", 5, "aux"),
           ("n't", "PART", 5, "advmod"), ("eat", "VERB", 0, "root"), ("the", "DET", 7, "det"),
           ("fish", "NOUN", 5, "obj"), (".", "PUNCT", 5, "punct")]),
    ("b", [("She", "PRON", 3, "nsubj"), ("never", "ADV", 3, "advmod"), ("gives", "VERB", 0, "root"),
           ("him", "PRON", 3, "iobj"), ("flowers", "NOUN", 3, "obj"), (".", "PUNCT", 3, "punct")]),
    ("c", [("Dogs", "NOUN", 4, "nsubj:pass"), ("were", "AUX", 4, "aux:pass"), ("not", "PART", 4, "advmod"),
           ("seen", "VERB", 0, "root"), ("by", "ADP", 6, "case"), ("Mary", "PROPN", 4, "obl"),
           (",", "PUNCT", 9, "punct"), ("who", "PRON", 9, "nsubj"), ("runs", "VERB", 6, "acl:relcl"),
           (".", "PUNCT", 4, "punct")]),
    ("d", [("Zorblaxian", "PROPN", 2, "compound"), ("weather", "NOUN", 0, "root"), ("today", "NOUN", 2, "obl:tmod"),
           ("!", "PUNCT", 2, "punct")]),
]
#: What each feature should pick in FEATURE_SENTENCES, by hand (0-based word indices per element).
EXPECTED_ELEMENTS = {
    "a": {"noun": [[1], [6]], "verb": [[4]], "subject": [[1]], "object": [[6]], "negation": [[2, 3]]},
    "b": {"noun": [[4]], "verb": [[2]], "pronoun": [[0], [3]], "subject": [[0]], "object": [[3], [4]],
          "negation": [[1]]},
    "c": {"noun": [[0], [5]], "verb": [[3], [8]], "pronoun": [[7]], "subject": [[0], [7]], "negation": [[2]]},
    "d": {"noun": [[0], [1], [2]]},
}
#: (verb, subject) word pairs of FEATURE_SENTENCES.
EXPECTED_VERB_SUBJECT = {"a": [(4, 1)], "b": [(2, 0)], "c": [(3, 0), (8, 7)]}
FEATURES = ("noun", "verb", "pronoun", "subject", "object", "negation")


def write_words(tmp_path, sentences, name="tiny.conllu"):
    path = tmp_path / name
    path.write_text(conllu_text(sentences), encoding="utf-8")
    return load_conllu(path)


# ---- slow references: the model's own attentions, tokens mapped to words by character containment -----
def reference_maps(handle, words: list[str]):
    """(attentions (L, H, T, T) straight from the model, pieces of each word)."""
    text = " ".join(words)
    encoded = handle.tokenizer(text, truncation=True, max_length=128, return_tensors="pt", return_offsets_mapping=True)
    offsets = encoded.pop("offset_mapping")[0].tolist()
    if not handle.adapter.uses_token_type_ids:
        encoded.pop("token_type_ids", None)
    with torch.no_grad():
        output = handle.model(**encoded, output_attentions=True)
    maps = torch.stack(output.attentions, dim=1)[0].double().numpy()
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    pieces = [[] for _ in words]
    for token, (start, end) in enumerate(offsets):
        if end <= start:
            continue  # [CLS], [SEP]
        for index, word in enumerate(words):
            if starts[index] <= start < starts[index] + len(word):
                pieces[index].append(token)
    return maps, pieces


def sentence_words(sentences):
    return {sent_id: [w[0] for w in words if len(w) > 2] for sent_id, words in sentences}


def slow_feature_attention(handle, sentences, elements_of):
    """Loop by loop: per head and feature, max over elements of (sum over queries and pieces) / T,
    averaged over the sentences that have the feature."""
    per_feature = {feature: [] for feature in FEATURES}
    for sent_id, words in sentence_words(sentences).items():
        maps, pieces = reference_maps(handle, words)
        n_layers, n_heads, length, _ = maps.shape
        for feature, elements in elements_of[sent_id].items():
            scores = np.zeros((n_layers, n_heads))
            for layer in range(n_layers):
                for head in range(n_heads):
                    best = -1.0
                    for element in elements:
                        total = 0.0
                        for word in element:
                            for key in pieces[word]:
                                for query in range(length):
                                    total += maps[layer, head, query, key]
                        best = max(best, total / length)
                    scores[layer, head] = best
            per_feature[feature].append(scores)
    return {feature: (np.mean(scores, axis=0), len(scores)) for feature, scores in per_feature.items() if scores}


# ---- load_conllu ---------------------------------------------------------------------------------------
def test_load_conllu_reads_the_bundled_slice_like_a_plain_parse():
    with gzip.open(bundled_path(BUNDLED_CONLLU), "rt", encoding="utf-8") as handle:
        blocks = [block for block in handle.read().split("\n\n") if block.strip()]
    expected_rows, sent_ids, texts, n_multiword = [], [], {}, 0
    for block in blocks:
        sent_id = next(line[12:] for line in block.splitlines() if line.startswith("# sent_id = "))
        sent_ids.append(sent_id)
        texts[sent_id] = next(line[9:] for line in block.splitlines() if line.startswith("# text = "))
        for line in block.splitlines():
            fields = line.split("\t")
            if line.startswith("#"):
                continue
            if "-" in fields[0]:
                n_multiword += 1
            elif "." not in fields[0]:
                expected_rows.append((sent_id, int(fields[0]) - 1, fields[1], fields[3], int(fields[6]) - 1, fields[7]))
    words = load_conllu()
    assert len(blocks) == 500 == words.attrs["n_sentences"] == words["sentence_id"].nunique()
    assert list(words["sentence_id"].unique()) == sent_ids
    columns = ["sentence_id", "word_index", "word", "upos", "head", "deprel"]
    got = list(words[columns].itertuples(index=False, name=None))
    assert got == expected_rows and len(got) == words.attrs["n_words"]
    assert (words["head"] == -1).sum() == sum(1 for row in expected_rows if row[5] == "root")
    assert Counter(words["upos"]) == Counter(row[3] for row in expected_rows)
    assert dict(zip(words["sentence_id"], words["text"])) == texts
    assert n_multiword > 0 and words["multiword"].notna().sum() >= 2 * n_multiword


@pytest.mark.shared
def test_bundled_slice_is_the_first_500_sentences_of_ewt_dev():
    dev = SHARED_DATA / "ud_english_ewt" / "en_ewt-ud-dev.conllu"
    with gzip.open(bundled_path(BUNDLED_CONLLU), "rt", encoding="utf-8") as handle:
        bundled = handle.read()
    assert dev.read_text(encoding="utf-8").startswith(bundled) and bundled.count("# sent_id") == 500
    pd.testing.assert_frame_equal(load_conllu(dev, max_sentences=500), load_conllu())


def test_load_conllu_skips_multiword_tokens_and_empty_nodes(tmp_path):
    text = ("# newdoc id = doc1\n# sent_id = s1\n# text = I can't go.\n"
            "1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_\n"
            "2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_\n"
            "2\tca\tcan\tAUX\tMD\t_\t4\taux\t_\t_\n"
            "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_\n"
            "4\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No\n"
            "4.1\tgo\tgo\tVERB\tVB\t_\t_\t_\t4:conj\t_\n"
            "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_\n\n"
            "1\tYes\tyes\tINTJ\tUH\t_\t0\troot\t_\t_\n")  # no sent_id, no final blank line
    plain = tmp_path / "x.conllu"
    plain.write_text(text, encoding="utf-8")
    packed = tmp_path / "x.conllu.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    words = load_conllu(plain)
    pd.testing.assert_frame_equal(words, load_conllu(packed))
    assert words["word"].tolist() == ["I", "ca", "n't", "go", ".", "Yes"]
    assert words["head"].tolist() == [3, 3, 3, -1, 3, -1]
    assert words["sentence_id"].tolist() == ["s1"] * 5 + ["2"]
    assert words["multiword"].tolist() == [None, "can't", "can't", None, None, None]
    assert words["multiword_start"].tolist() == [-1, 1, 1, -1, -1, -1]
    assert words["doc_id"].tolist() == ["doc1"] * 6 and words["text"].tolist()[:1] == ["I can't go."]
    assert words["misc"].tolist()[3] == "SpaceAfter=No"
    assert load_conllu(plain, max_sentences=1)["sentence_id"].unique().tolist() == ["s1"]


@pytest.mark.parametrize("bad_line, match", [
    ("2\tgo\tgo\tVERB\tVB\t_\t0\troot\t_", "line 4: 9 tab-separated fields"),
    ("3\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_", "line 4: word number '3' where 2"),
    ("2\tgo\tgo\tVERB\tVB\t_\t7\troot\t_\t_", "line 4: HEAD 7 is not a word"),
    ("2\tgo\tgo\tVERB\tVB\t_\t_\troot\t_\t_", "line 4: HEAD '_'"),
])
def test_load_conllu_names_the_file_and_line_of_a_malformed_line(tmp_path, bad_line, match):
    path = tmp_path / "broken.conllu"
    path.write_text("# sent_id = s1\n# text = I go\n1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_\n" + bad_line + "\n\n")
    with pytest.raises(BertInsightInputError, match="broken.conllu, line") as error:
        load_conllu(path)
    assert match in str(error.value)


def test_repeated_sent_id_and_bad_arguments_are_refused(tmp_path):
    word = "1\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_\n"
    path = tmp_path / "twice.conllu"
    path.write_text(f"# sent_id = s1\n{word}\n# sent_id = s1\n{word}\n")
    with pytest.raises(BertInsightInputError, match="line 4: sent_id 's1' repeats the sentence at line 1"):
        load_conllu(path)
    with pytest.raises(BertInsightInputError, match="no such file"):
        load_conllu(tmp_path / "absent.conllu")
    with pytest.raises(BertInsightInputError, match="max_sentences"):
        load_conllu(max_sentences=0)


# ---- sentences and word pieces -------------------------------------------------------------------------
def test_word_pieces_give_each_word_its_wordpieces(tmp_path, tokenizer):
    words = write_words(tmp_path, FEATURE_SENTENCES)
    examples = sentences_as_examples(words)
    assert examples["text_a"].tolist()[1] == "She never gives him flowers ."
    assert examples["text_b"].isna().all() and examples["label"].isna().all()
    windows = encode_sentences(tokenizer, examples)
    multi_piece = 0
    for example, window in zip(examples.itertuples(), windows):
        own = words[words.sentence_id == example.example_id]["word"].tolist()
        assert [example.text_a[start:end] for start, end in example.word_spans] == own
        pieces = word_pieces(window, example.word_spans)
        tokens = tokenizer.convert_ids_to_tokens(window.input_ids)
        for word, positions in zip(own, pieces):
            assert "".join(tokens[p].removeprefix("##") for p in positions) == word.lower()
            multi_piece += len(positions) > 1
        assert sorted(p for ps in pieces for p in ps) == list(range(1, len(tokens) - 1))  # every non-special token
    assert multi_piece >= 2  # "zorblaxian" and "n't" are several pieces
    short = encode_sentences(tokenizer, examples.iloc[[2]], max_length=6)  # [CLS] + 4 tokens + [SEP]
    pieces = word_pieces(short[0], examples["word_spans"].iloc[2])
    assert [len(p) for p in pieces] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]


def test_feature_elements_follow_the_paper_definitions(tmp_path):
    from bert_insight.attention.linguistic import feature_elements

    words = write_words(tmp_path, FEATURE_SENTENCES)
    for sent_id, rows in words.groupby("sentence_id"):
        for feature in FEATURES:
            assert feature_elements(rows, feature) == EXPECTED_ELEMENTS[sent_id].get(feature, []), (sent_id, feature)
    split = write_words(tmp_path, [("e", [("They", "PRON", 3, "nsubj"), ("ca", "AUX", 3, "aux"),
                                          ("n't", "PART", 3, "advmod"), ("stop", "VERB", 0, "root"),
                                          ("Nothing", "PRON", 3, "obj")])], name="split.conllu")
    assert feature_elements(split, "negation") == [[1, 2], [4]]  # ca + n't without a multiword line


# ---- section 4.4 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ("bert", "distilbert"))
def test_feature_attention_matches_a_loop_reference(tmp_path, tokenizer, family):
    # an MRPC (pair-task) classifier still reads single treebank sentences
    handle = from_model(tiny_classifier(family), tokenizer, device="cpu", task="mrpc")
    words = write_words(tmp_path, FEATURE_SENTENCES)
    frame = feature_attention(handle, words, batch_size=3, progress=False)
    assert list(frame.columns) == ["task", "layer", "head", "feature", "value", "n_sentences"]
    expected = slow_feature_attention(handle, FEATURE_SENTENCES, EXPECTED_ELEMENTS)
    assert set(frame["feature"]) == set(expected) == set(FEATURES)
    for feature, (scores, n_sentences) in expected.items():
        rows = frame[frame.feature == feature].set_index(["layer", "head"])
        assert (rows["n_sentences"] == n_sentences).all()
        for (layer, head), value in rows["value"].items():
            assert value == pytest.approx(scores[layer, head], abs=1e-6)
    assert {f: n for f, (_, n) in expected.items()} == {"noun": 4, "verb": 3, "pronoun": 2, "subject": 3,
                                                         "object": 2, "negation": 3}
    assert (frame["task"] == "mrpc").all() and frame["value"].nunique() > 10


def test_feature_attention_selection_and_absent_features(tmp_path, tokenizer):
    handle = from_model(tiny_qa_model("bert"), tokenizer, device="cpu")
    words = write_words(tmp_path, FEATURE_SENTENCES)
    every = feature_attention(handle, words, progress=False)
    some = feature_attention(handle, words, features=["negation"], layers=[2], heads=[1, 3], progress=False)
    assert (some["task"] == "qa").all() and len(some) == 2
    joined = some.merge(every, on=["layer", "head", "feature"], suffixes=("", "_all"))
    np.testing.assert_allclose(joined["value"], joined["value_all"], atol=1e-9)
    # a feature no sentence has: NaN with n_sentences 0 (documented), the others still computed
    only_d = words[words.sentence_id == "d"]
    frame = feature_attention(handle, only_d, features=("object", "noun"), progress=False)
    assert frame[frame.feature == "object"]["value"].isna().all()
    assert (frame[frame.feature == "object"]["n_sentences"] == 0).all()
    assert frame[frame.feature == "noun"]["value"].notna().all()


def test_feature_attention_refuses_bad_input(tmp_path, tokenizer):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    words = write_words(tmp_path, FEATURE_SENTENCES)
    with pytest.raises(BertInsightInputError, match=r"unknown feature 'adjective'.*noun \(upos NOUN or PROPN\)"):
        feature_attention(handle, words, features=["noun", "adjective"], progress=False)
    with pytest.raises(BertInsightInputError, match=r"lacks the column\(s\) \['upos'\]"):
        feature_attention(handle, words.drop(columns="upos"), features=["noun"], progress=False)
    feature_attention(handle, words.drop(columns="upos"), features=["subject"], progress=False)  # needs deprel only
    with pytest.raises(BertInsightInputError, match="word_index"):
        feature_attention(handle, words[words.word_index != 1], progress=False)
    with pytest.raises(BertInsightInputError, match="model handle"):
        feature_attention("bert-base-uncased", words)
    with pytest.raises(BertInsightInputError, match="features is empty"):
        feature_attention(handle, words, features=[])


# ---- section 4.5 ---------------------------------------------------------------------------------------
def slow_token_to_token(handle, words_of, pairs_of):
    total, n_links = 0.0, 0
    for sent_id, pairs in pairs_of.items():
        maps, pieces = reference_maps(handle, words_of[sent_id])
        for query_word, key_word in pairs:
            link = np.zeros(maps.shape[:2])
            for layer in range(maps.shape[0]):
                for head in range(maps.shape[1]):
                    link[layer, head] = sum(maps[layer, head, pieces[query_word][0], key] for key in pieces[key_word])
            total, n_links = total + link, n_links + 1
    return total / n_links, n_links


def test_token_to_token_verb_subject_matches_a_loop_reference(tmp_path, tokenizer):
    handle = from_model(tiny_classifier("bert", seed=3), tokenizer, device="cpu", task="sst2")
    words = write_words(tmp_path, FEATURE_SENTENCES)
    frame = token_to_token_attention(handle, words, batch_size=2, progress=False)
    assert list(frame.columns) == ["task", "layer", "head", "relation", "value", "n_links"]
    expected, n_links = slow_token_to_token(handle, sentence_words(FEATURE_SENTENCES), EXPECTED_VERB_SUBJECT)
    assert n_links == 4 and (frame["n_links"] == 4).all() and (frame["relation"] == "verb_subject").all()
    for row in frame.itertuples():
        assert row.value == pytest.approx(expected[row.layer, row.head], abs=1e-6)
    nothing = token_to_token_attention(handle, words[words.sentence_id == "d"], progress=False)
    assert nothing["value"].isna().all() and (nothing["n_links"] == 0).all()


COREF_SENTENCES = [
    ("g1", [("The", "DET", 2, "det", "Entity=(e1-animal-new"), ("dog", "NOUN", 3, "nsubj", "Entity=e1)"),
            ("said", "VERB", 0, "root"), ("it", "PRON", 5, "nsubj", "Entity=(e1-animal-giv)"),
            ("slept", "VERB", 3, "ccomp"), (".", "PUNCT", 3, "punct")]),
    ("g2", [("Anna", "PROPN", 2, "nsubj", "Entity=(e2-person-new)"), ("met", "VERB", 0, "root"),
            ("Bo", "PROPN", 2, "obj", "Entity=(e3-person-new)"), ("and", "CCONJ", 5, "cc"),
            ("thanked", "VERB", 2, "conj"), ("him", "PRON", 5, "obj", "Entity=(e3-person-giv)"),
            (".", "PUNCT", 2, "punct")]),
]


def test_noun_pronoun_uses_coreference_and_says_when_there_is_none(tmp_path, tokenizer):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    words = write_words(tmp_path, COREF_SENTENCES, name="coref.conllu")
    links = coreference_links(words)
    assert list(zip(links.sentence_id, links.source_start, links.target_start)) == [("g1", 3, 1), ("g2", 5, 2)]
    frame = token_to_token_attention(handle, words, relation="noun_pronoun", progress=False)
    expected, n_links = slow_token_to_token(handle, sentence_words(COREF_SENTENCES), {"g1": [(3, 1)], "g2": [(5, 2)]})
    assert (frame["n_links"] == n_links).all()
    for row in frame.itertuples():
        assert row.value == pytest.approx(expected[row.layer, row.head], abs=1e-6)
    plain = write_words(tmp_path, FEATURE_SENTENCES)
    with pytest.raises(BertInsightInputError, match="noun_pronoun' needs coreference"):
        token_to_token_attention(handle, plain, relation="noun_pronoun", progress=False)
    with pytest.raises(BertInsightInputError, match="relation='verb_object'"):
        token_to_token_attention(handle, plain, relation="verb_object", progress=False)


@pytest.mark.shared
def test_coreference_links_of_gum_link_pronouns_to_earlier_nouns():
    words = load_conllu(SHARED_DATA / "ud_english_gum" / "en_gum-ud-dev.conllu", max_sentences=300)
    links = coreference_links(words)
    assert len(links) > 20
    upos = words.set_index(["sentence_id", "word_index"])["upos"]
    for link in links.itertuples():
        assert upos[(link.sentence_id, link.source_start)] == "PRON"
        assert upos[(link.sentence_id, link.target_start)] in ("NOUN", "PROPN")
        assert link.target_start < link.source_start


# ---- section 4.2 ---------------------------------------------------------------------------------------
def plain_sentence(sent_id: str, text: str):
    forms = text.split()
    return (sent_id, [(form, "X", 0 if i == 0 else 1, "root" if i == 0 else "dep") for i, form in enumerate(forms)])


RELATION_SENTENCES = [
    plain_sentence("s1", "the old man quickly gave the young girl a book ."),
    plain_sentence("s2", "one two three four five six seven eight nine ten eleven twelve thirteen"),
    plain_sentence("s3", "alpha beta gamma delta epsilon zeta eta theta iota kappa"),
    plain_sentence("s4", "cats chase mice in the garden"),
]
RELATION_LINKS = pd.DataFrame([
    ("s1", 4, 5, 0, 3),   # kept: element of exactly 3 words, exactly 2 apart
    ("s1", 4, 5, 8, 10),  # kept
    ("s2", 0, 1, 5, 6),   # dropped: the sentence has 13 words
    ("s3", 0, 1, 3, 7),   # dropped: an element of 4 words
    ("s3", 5, 6, 6, 7),   # dropped: adjacent
    ("s4", 1, 2, 0, 1),   # dropped: adjacent
    ("s4", 1, 2, 3, 6),   # kept
], columns=["sentence_id", "source_start", "source_end", "target_start", "target_end"])


def slow_relation_heads(handle, words_of, links):
    scores = []
    for sent_id, group in links.groupby("sentence_id"):
        maps, pieces = reference_maps(handle, words_of[sent_id])
        score = np.zeros(maps.shape[:2])
        for layer in range(maps.shape[0]):
            for head in range(maps.shape[1]):
                best = 0.0
                for link in group.itertuples():
                    source = [p for w in range(link.source_start, link.source_end) for p in pieces[w]]
                    target = [p for w in range(link.target_start, link.target_end) for p in pieces[w]]
                    for s in source:
                        for t in target:
                            best = max(best, maps[layer, head, s, t], maps[layer, head, t, s])
                score[layer, head] = best
        scores.append(score)
    return np.mean(scores, axis=0), len(scores)


def test_relation_heads_filter_like_the_paper_and_match_a_loop_reference(tmp_path, tokenizer):
    handle = from_model(tiny_classifier("bert", seed=5), tokenizer, device="cpu", task="mrpc")
    words = write_words(tmp_path, RELATION_SENTENCES, name="relations.conllu")
    words_of = sentence_words(RELATION_SENTENCES)
    frame = relation_heads(handle, words, links=RELATION_LINKS, batch_size=2, progress=False)
    assert list(frame.columns) == ["task", "layer", "head", "value", "n_sentences"]
    kept = RELATION_LINKS.iloc[[0, 1, 6]]
    expected, n_sentences = slow_relation_heads(handle, words_of, kept)
    assert frame.attrs["n_sentences"] == n_sentences == 2 and frame.attrs["n_links"] == 3
    assert (frame["n_sentences"] == 2).all()
    for row in frame.itertuples():
        assert row.value == pytest.approx(expected[row.layer, row.head], abs=1e-6)
    # the adjacent s4 link would have changed the scores
    with_adjacent, _ = slow_relation_heads(handle, words_of, RELATION_LINKS.iloc[[0, 1, 5, 6]])
    assert not np.allclose(with_adjacent, expected, atol=1e-6)
    threshold = np.percentile(frame["value"], 99)
    assert frame.attrs["percentile_99"] == pytest.approx(threshold)
    above = frame[frame["value"] > threshold].sort_values("value", ascending=False)
    assert frame.attrs["top_heads"] == [[int(l), int(h)] for l, h in zip(above["layer"], above["head"])]
    assert len(frame.attrs["top_heads"]) >= 1
    # looser filters let the 13-word sentence, the 4-word element and the adjacent links back in
    loose = relation_heads(handle, words, links=RELATION_LINKS, max_sentence_tokens=13, max_element_tokens=4,
                           min_distance=1, progress=False)
    assert loose.attrs["n_sentences"] == 4 and loose.attrs["n_links"] == 7
    expected_loose, _ = slow_relation_heads(handle, words_of, RELATION_LINKS)
    np.testing.assert_allclose(loose["value"], expected_loose.ravel(), atol=1e-6)


def test_relation_heads_refuse_bad_links(tmp_path, tokenizer):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    words = write_words(tmp_path, RELATION_SENTENCES, name="relations.conllu")
    with pytest.raises(BertInsightInputError, match=r"links lacks the column\(s\) \['target_end'\]"):
        relation_heads(handle, words, links=RELATION_LINKS.drop(columns="target_end"), progress=False)
    with pytest.raises(BertInsightInputError, match="sentence\\(s\\) that words lacks"):
        relation_heads(handle, words[words.sentence_id != "s1"], links=RELATION_LINKS, progress=False)
    backwards = RELATION_LINKS.assign(target_end=RELATION_LINKS["target_start"])
    with pytest.raises(BertInsightInputError, match="not a pair of word spans"):
        relation_heads(handle, words, links=backwards, progress=False)
    with pytest.raises(BertInsightInputError, match="no sentence survives the filters"):
        relation_heads(handle, words, links=RELATION_LINKS.iloc[[2, 3, 4, 5]], progress=False)
    with pytest.raises(BertInsightInputError, match="min_distance"):
        relation_heads(handle, words, links=RELATION_LINKS, min_distance=-1, progress=False)
    with pytest.raises(TypeError):
        relation_heads(handle, words, RELATION_LINKS)  # links is keyword-only (a supporting frame)


def test_dependency_links_are_verb_to_argument_subtrees(tmp_path):
    words = write_words(tmp_path, FEATURE_SENTENCES)
    links = dependency_links(words)
    got = list(zip(links.sentence_id, links.source_start, links.source_end, links.target_start, links.target_end,
                   links.relation))
    assert got == [("a", 4, 5, 0, 2, "nsubj"), ("a", 4, 5, 5, 7, "obj"),          # "The cat", "the fish"
                   ("b", 2, 3, 0, 1, "nsubj"), ("b", 2, 3, 3, 4, "iobj"), ("b", 2, 3, 4, 5, "obj"),
                   ("c", 3, 4, 0, 1, "nsubj:pass"), ("c", 8, 9, 7, 8, "nsubj")]


@pytest.mark.shared
def test_propbank_links_on_the_bundled_ewt_slice():
    skel = SHARED_DATA / "propbank_ewt_skel" / "ewt.dev.gold_skel.gz"
    words = load_conllu()
    links = propbank_links(words, skel=skel)
    assert links.attrs["n_sentences"] == 500 and links.attrs["n_mismatched"] == 0
    sentence = "weblog-blogspot.com_nominations_20041117172713_ENG_20041117_172713-0002"
    own = links[links.sentence_id == sentence]
    # "President Bush on Tuesday nominated two individuals to replace retiring jurists on federal courts ..."
    assert list(zip(own.roleset, own.relation, own.source_start, own.target_start, own.target_end)) == [
        ("nominate.01", "ARG0", 4, 0, 2), ("nominate.01", "ARG1", 4, 5, 7), ("nominate.01", "ARG2", 4, 7, 18),
        ("replace.01", "ARG0", 8, 5, 7), ("replace.01", "ARG1", 8, 9, 18)]
    assert set(links["relation"]) <= {"ARG0", "ARG1", "ARG2", "ARG3", "ARG4", "ARG5"}
    lengths = words.groupby("sentence_id")["word_index"].size()
    assert (links["target_end"] <= links["sentence_id"].map(lengths)).all()
    # the full dev split: 1,974 skel sentences, 5 whose word counts differ from UD's, 1 absent from UD dev
    full = propbank_links(SHARED_DATA / "ud_english_ewt" / "en_ewt-ud-dev.conllu", skel=skel)
    assert (full.attrs["n_sentences"], full.attrs["n_mismatched"], full.attrs["n_absent"]) == (1968, 5, 1)


def test_propbank_links_name_a_malformed_skel_line(tmp_path):
    words = write_words(tmp_path, RELATION_SENTENCES[3:], name="one.conllu")
    skel = tmp_path / "bad.gold_skel"
    skel.write_text("google/ewt/x/00/doc.xml 0 0 [WORD] NN (TOP* - - *\nshort line\n")
    with pytest.raises(BertInsightInputError, match="bad.gold_skel, line 2"):
        propbank_links(words, skel=skel)
