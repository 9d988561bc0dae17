"""The offline POS tagger: accuracy on held-out UD EWT, determinism, file round trip, passage tagging."""

from __future__ import annotations

import pandas as pd
import pytest

from bert_insight.errors import BertInsightInputError
from bert_insight.pos import default_tagger, load_tagger, pos_tag_words, tag_passages
from bert_insight.pos_training import read_conllu_xpos, read_heldout_slice, save_tagger, tagging_accuracy, train_tagger
from tests.conftest import SHARED_DATA

CONLLU = """# sent_id = 1
# text = I don't know.
1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tit\tit\tPRON\tPRP\t_\t_\t_\t4:obj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
1\tHello\thello\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def test_read_conllu_skips_multiword_tokens_and_empty_nodes(tmp_path):
    path = tmp_path / "tiny.conllu"
    path.write_text(CONLLU)
    assert read_conllu_xpos(path) == [
        [("I", "PRP"), ("do", "VBP"), ("n't", "RB"), ("know", "VB"), (".", ".")],
        [("Hello", "UH")],
    ]
    with pytest.raises(BertInsightInputError, match="No CoNLL-U file"):
        read_conllu_xpos(tmp_path / "missing.conllu")


def test_bundled_tagger_accuracy_on_held_out_ewt_slice():
    heldout = read_heldout_slice()
    assert sum(len(sentence) for sentence in heldout) > 4000
    assert tagging_accuracy(heldout) >= 0.93


@pytest.mark.shared
def test_bundled_tagger_accuracy_on_full_ewt_dev():
    dev = read_conllu_xpos(SHARED_DATA / "ud_english_ewt" / "en_ewt-ud-dev.conllu")
    assert tagging_accuracy(dev) >= 0.93


def test_tags_of_a_wikipedia_style_sentence():
    words = ["The", "Denver", "Broncos", "defeated", "the", "Carolina", "Panthers", "24", "–", "10", "to",
             "earn", "their", "third", "title", "."]
    tags = pos_tag_words(words)
    # Team names are NNP or NNPS in EWT (annotators differ); the en dash is left unchecked.
    assert [tags[i] for i in (0, 1, 3, 4, 5, 7)] == ["DT", "NNP", "VBD", "DT", "NNP", "CD"]
    assert tags[2] in ("NNP", "NNPS") and tags[6] in ("NNP", "NNPS")
    assert tags[9:] == ["CD", "TO", "VB", "PRP$", "JJ", "NN", "."]


def test_training_is_deterministic_and_weights_round_trip(tmp_path):
    sentences = read_heldout_slice()[:150]
    first = train_tagger(sentences, n_iter=2, seed=0)
    second = train_tagger(sentences, n_iter=2, seed=0)
    assert first.model.weights == second.model.weights
    path = save_tagger(first, tmp_path / "tagger.json.gz")
    assert path.read_bytes() == save_tagger(second, tmp_path / "again.json.gz").read_bytes()
    reloaded = load_tagger(path)
    probe = read_heldout_slice()[150:200]
    for sentence in probe:
        words = [word for word, _ in sentence]
        assert reloaded.tag(words) == first.tag(words)


def test_default_tagger_is_deterministic_across_loads():
    words = [word for sentence in read_heldout_slice()[:40] for word, _ in sentence]
    assert pos_tag_words(words) == pos_tag_words(words, tagger=load_tagger())
    assert default_tagger() is default_tagger()


def test_tag_passages_follows_word_order_per_example():
    # Example b comes first and its word pieces are out of order; word 0 has two pieces.
    tokens = pd.DataFrame({
        "example_id": ["b", "b", "b", "b", "b", "b", "a", "a", "a", "a", "a"],
        "word_index": [-1, 3, 2, 1, 0, 0, -1, 0, 0, 1, 2],
        "word": ["[CLS]", ".", "flows", "river", "The", "The", "[CLS]", "What", "She", "sings", "."],
        "segment": ["special"] + ["context"] * 5 + ["special", "question", "context", "context", "context"],
    })
    frame = tag_passages(tokens)
    assert frame[["example_id", "word_index", "word"]].values.tolist() == [
        ["a", 0, "She"], ["a", 1, "sings"], ["a", 2, "."],
        ["b", 0, "The"], ["b", 1, "river"], ["b", 2, "flows"], ["b", 3, "."]]
    assert frame["pos"].tolist() == ["PRP", "VBZ", ".", "DT", "NN", "VBZ", "."]


def test_input_errors():
    with pytest.raises(BertInsightInputError, match="list of words"):
        pos_tag_words("The dog barked")
    with pytest.raises(BertInsightInputError, match="columns"):
        tag_passages(pd.DataFrame({"word": ["a"]}))
    with pytest.raises(BertInsightInputError, match="tag\\(words\\)"):
        pos_tag_words(["a"], tagger=42)
    with pytest.raises(BertInsightInputError, match="No tagger weights"):
        load_tagger("/nonexistent/tagger.json.gz")


def test_nltk_tagger_missing_data_gives_a_clear_error(monkeypatch, tmp_path):
    import nltk

    from bert_insight import pos

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    pos._nltk_tagger.cache_clear()
    try:
        with pytest.raises(BertInsightInputError, match="averaged_perceptron_tagger_eng"):
            pos_tag_words(["a"], tagger="nltk")
    finally:
        pos._nltk_tagger.cache_clear()
