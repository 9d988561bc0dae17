"""Attention maps and per-head statistics (Kovaleva et al. 2019) on tiny models of every family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_classifier, tiny_qa_model

from bert_insight import BertInsightInputError, from_model
from bert_insight.attention.maps import attention_maps, eager_attention
from bert_insight.attention.stats import attention_similarity, special_token_attention

FAMILIES = ("bert", "roberta", "electra", "albert", "distilbert")


def sentence_examples(n: int, seed: int = 0, pairs: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = "the cat , sat on a mat . while dogs ran through green fields of tall grass !".split()
    rows = []
    for i in range(n):
        rows.append({"example_id": f"s{i}", "text_a": " ".join(rng.choice(words, size=rng.integers(2, 14))),
                     "text_b": " ".join(rng.choice(words, size=rng.integers(2, 9))) if pairs else None,
                     "label": int(rng.integers(0, 2))})
    return pd.DataFrame(rows)


def own_attentions(handle, text_a: str, text_b: str | None) -> np.ndarray:
    """The model's own output_attentions (eager), one unpadded input: (L, H, T, T)."""
    pair = (text_a, text_b) if text_b is not None else (text_a,)
    encoded = handle.tokenizer(*pair, truncation=True, max_length=128, return_tensors="pt")
    if not handle.adapter.uses_token_type_ids:
        encoded.pop("token_type_ids", None)
    with torch.no_grad():
        output = handle.model(**encoded, output_attentions=True)
    return torch.stack(output.attentions, dim=1)[0].numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_maps_equal_the_models_own_attentions_and_ignore_padding(family, tokenizer):
    handle = from_model(tiny_classifier(family), tokenizer, device="cpu", task="mrpc")
    examples = sentence_examples(7, seed=2)
    maps = attention_maps(handle, examples, batch_size=3, progress=False)  # padded batches of 3
    for example in examples.itertuples():
        weights = maps[example.example_id].weights
        np.testing.assert_allclose(weights, own_attentions(handle, example.text_a, example.text_b), atol=1e-5)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
        assert len(maps[example.example_id].tokens) == weights.shape[-1]


def test_sdpa_handle_gets_maps_and_keeps_its_implementation(tokenizer):
    handle = from_model(tiny_classifier("bert", attention="sdpa"), tokenizer, device="cpu", task="mrpc")
    before = handle.model.config._attn_implementation
    examples = sentence_examples(3)
    maps = attention_maps(handle, examples, progress=False)
    assert handle.model.config._attn_implementation == before == "sdpa"
    with eager_attention(handle.model):
        reference = own_attentions(handle, examples.text_a[0], examples.text_b[0])
    np.testing.assert_allclose(maps["s0"].weights, reference, atol=1e-5)


def test_no_implementation_switch_survives_an_exception(tokenizer):
    handle = from_model(tiny_classifier("bert", attention="sdpa"), tokenizer, device="cpu", task="mrpc")
    encoded = tokenizer("a cat", "sat", return_tensors="pt")
    with pytest.raises(RuntimeError, match="boom"):
        with eager_attention(handle.model):
            weights = handle.model(**encoded, output_attentions=True).attentions
            assert weights[0] is not None and torch.isfinite(weights[0]).all()
            raise RuntimeError("boom")
    assert handle.model.config._attn_implementation == "sdpa"


def test_layer_and_head_selection_picks_those_maps(tokenizer):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    examples = sentence_examples(2)
    every = attention_maps(handle, examples, progress=False)
    some = attention_maps(handle, examples, layers=[2, 0], heads=[3, 1], progress=False)
    assert some["s1"].layers == (0, 2) and some["s1"].heads == (1, 3)
    np.testing.assert_array_equal(some["s1"].map(2, 3), every["s1"].weights[2, 3])
    for bad, match in (({"layers": [3]}, "0..2"), ({"heads": [4]}, "out of range"), ({"heads": []}, "empty")):
        with pytest.raises(BertInsightInputError, match=match):
            attention_maps(handle, examples, progress=False, **bad)
    with pytest.raises(BertInsightInputError, match="not collected"):
        some["s1"].map(1, 1)


def test_qa_examples_use_the_analysis_windows(tokenizer):
    from bert_insight import predict, tokens
    from bert_insight.data.squad import load_squad

    handle = from_model(tiny_qa_model("bert"), tokenizer, device="cpu")
    examples = load_squad(split="heldout").head(3)
    predictions = predict(handle, examples, max_length=96, doc_stride=32, progress=False)
    maps = attention_maps(handle, examples, predictions=predictions, progress=False)
    frame = tokens(handle, examples, predictions=predictions, progress=False)
    for example_id in examples["example_id"]:
        expected = frame[frame.example_id == example_id]
        got = maps[example_id].tokens
        assert got["token"].tolist() == expected["token"].tolist()
        assert maps[example_id].weights.shape[-1] == len(expected) <= 96
    classifier = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    with pytest.raises(BertInsightInputError, match="need a QA handle"):
        attention_maps(classifier, examples, progress=False)


def slow_special_shares(maps, kinds_of) -> dict[tuple[int, int], dict[str, float]]:
    """Loop by loop: for each head, each query's attention summed over keys of a kind, averaged."""
    result = {}
    n_layers, n_heads = next(iter(maps.values())).weights.shape[:2]
    for layer in range(n_layers):
        for head in range(n_heads):
            shares = {"cls": 0.0, "sep": 0.0, "punctuation": 0.0, "other": 0.0}
            for example_id, example in maps.items():
                weights = example.weights[layer, head]
                kinds = kinds_of[example_id]
                for kind in shares:
                    total = 0.0
                    for query in range(len(kinds)):
                        total += sum(weights[query, key] for key in range(len(kinds)) if kinds[key] == kind)
                    shares[kind] += total / len(kinds) / len(maps)
            result[(layer, head)] = shares
    return result


@pytest.mark.parametrize("family", ("bert", "roberta"))
def test_special_token_attention_matches_a_loop_reference(family, tokenizer):
    import transformers

    own_tokenizer = tokenizer
    if family == "roberta":  # <s> and </s> are its CLS and SEP: a byte-level BPE tokenizer of its own
        own_tokenizer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=_tiny_bpe(), bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
            pad_token="<pad>", unk_token="<unk>")
        own_tokenizer._tokenizer.post_processor = _roberta_processor(own_tokenizer)
    handle = from_model(tiny_classifier(family), own_tokenizer, device="cpu", task="mrpc")
    examples = sentence_examples(5, seed=4)
    maps = attention_maps(handle, examples, progress=False)
    kinds_of = {example_id: example.tokens["kind"].tolist() for example_id, example in maps.items()}
    for kinds in kinds_of.values():
        assert kinds[0] == "cls" and kinds.count("sep") >= 2 and "punctuation" in kinds
    frame = special_token_attention(handle, examples, batch_size=2, progress=False).set_index(["layer", "head"])
    for (layer, head), shares in slow_special_shares(maps, kinds_of).items():
        for kind, value in shares.items():
            assert frame.loc[(layer, head), f"to_{kind}"] == pytest.approx(value, abs=1e-6)
    sums = frame[["to_cls", "to_sep", "to_punctuation", "to_other"]].sum(axis=1)
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
    np.testing.assert_allclose(frame[[c for c in frame.columns if c.startswith("cls_query_")]].sum(axis=1), 1.0,
                               atol=1e-5)
    assert (frame["n_examples"] == 5).all() and (frame["task"] == "mrpc").all()


def _tiny_bpe():
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = "the cat , sat on a mat . while dogs ran through green fields of tall grass !".split()
    # <pad> first: the tiny RoBERTa config pads with id 0 (its position ids skip the padding id)
    vocab = {token: i for i, token in enumerate(["<pad>", "<s>", "</s>", "<unk>"] + [f"Ġ{w}" for w in words] + words)}
    bpe = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    return bpe


def _roberta_processor(own_tokenizer):
    from tokenizers import processors

    return processors.RobertaProcessing(("</s>", own_tokenizer.convert_tokens_to_ids("</s>")),
                                        ("<s>", own_tokenizer.convert_tokens_to_ids("<s>")),
                                        trim_offsets=True, add_prefix_space=True)


def test_similarity_is_one_with_itself_and_matches_a_direct_cosine(tokenizer):
    first = from_model(tiny_classifier("bert", seed=1), tokenizer, device="cpu", task="mrpc")
    second = from_model(tiny_classifier("bert", seed=2), tokenizer, device="cpu", task="mrpc")
    examples = sentence_examples(4, seed=5)
    same = attention_similarity(first, first, examples, progress=False)
    np.testing.assert_allclose(same["cosine_similarity"], 1.0, atol=1e-6)
    frame = attention_similarity(first, second, examples, batch_size=3, progress=False).set_index(["layer", "head"])
    maps_a = attention_maps(first, examples, progress=False)
    maps_b = attention_maps(second, examples, progress=False)
    for layer, head in [(0, 0), (2, 3)]:
        cosines = []
        for example_id in maps_a:
            a = maps_a[example_id].map(layer, head).ravel()
            b = maps_b[example_id].map(layer, head).ravel()
            cosines.append(float(a @ b / np.sqrt((a @ a) * (b @ b))))
        assert frame.loc[(layer, head), "cosine_similarity"] == pytest.approx(np.mean(cosines), abs=1e-7)
    assert frame["cosine_similarity"].lt(1.0).any()


def test_bad_inputs_to_attention_verbs(tokenizer):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    with pytest.raises(BertInsightInputError, match="model handle"):
        attention_maps("bert-base-uncased", sentence_examples(2))
    with pytest.raises(BertInsightInputError, match="text_b"):
        attention_maps(handle, sentence_examples(2, pairs=False))  # MRPC is a pair task
    with pytest.raises(BertInsightInputError, match="batch_size"):
        attention_maps(handle, sentence_examples(2), batch_size=0)
    wider = from_model(_four_layer_classifier(), tokenizer, device="cpu", task="mrpc")
    with pytest.raises(BertInsightInputError, match="differ in shape"):
        attention_similarity(handle, wider, sentence_examples(2))


def _four_layer_classifier():
    import transformers as tf

    config = tf.BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                           max_position_embeddings=128, num_labels=2)
    config._attn_implementation = "eager"
    return tf.BertForSequenceClassification(config).eval()


def test_head_grid_shows_the_mean_per_head(tokenizer):
    from bert_insight import viz

    frame = pd.DataFrame({"task": "mrpc", "layer": [0, 0, 1, 1, 1], "head": [0, 1, 0, 1, 1],
                          "value": [0.1, 0.2, 0.3, 0.4, 0.6]})
    fig = viz.head_grid(frame, value="value")
    source = fig.select_one({"name": "head_grid"})
    cells = {(l, h): v for l, h, v in zip(source.data["layer"], source.data["head"], source.data["value"])}
    assert cells == {(0, 0): 0.1, (0, 1): 0.2, (1, 0): 0.3, (1, 1): pytest.approx(0.5)}
    with pytest.raises(BertInsightInputError, match="lacks"):
        viz.head_grid(frame, value="to_cls")
    mixed = pd.concat([frame, frame.assign(task="rte")])
    with pytest.raises(BertInsightInputError, match="task="):
        viz.head_grid(mixed, value="value")


def test_attention_view_holds_every_map_and_escapes_tokens(tokenizer):
    from bokeh.embed import file_html
    from bokeh.models import HoverTool
    from bokeh.resources import INLINE

    from bert_insight import viz

    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    examples = pd.DataFrame({"example_id": ["x"], "text_a": ["<b>bold</b> & co"], "text_b": ["a cat"], "label": [0]})
    maps = attention_maps(handle, examples, progress=False)
    layout = viz.attention_view(maps, layer=1, head=2)
    shown = layout.select_one({"name": "attention_map"})
    np.testing.assert_allclose(shown.data["weight"], maps["x"].map(1, 2).ravel(), atol=1e-7)
    store = layout.select_one({"name": "attention_store"})
    assert len(store.data["names"]) == 3 * 4
    np.testing.assert_allclose(store.data["maps"][store.data["names"].index("2-3")], maps["x"].map(2, 3).ravel(),
                               atol=1e-7)
    # Labels are the raw pieces (bokeh draws axes on a canvas and escapes @field tooltips: no {safe})
    pieces = maps["x"].tokens["token"].tolist()
    assert "<" in pieces and shown.data["key"][: len(pieces)] == [f"{i}: {p}" for i, p in enumerate(pieces)]
    hover = layout.select_one({"type": HoverTool})
    assert all("{safe}" not in field for _, field in hover.tooltips)
    page = file_html(layout, INLINE, "attention")
    assert "cdn.bokeh.org" not in page and "require.js" not in page


def test_a_paused_stream_leaves_no_inference_mode_or_eager_switch_behind(tokenizer):
    """The caller's code runs between yields: grad mode and the attention implementation must be its own."""
    from bert_insight.attention.maps import attention_inputs, iter_attention

    handle = from_model(tiny_classifier("bert", attention="sdpa"), tokenizer, device="cpu", task="mrpc")
    examples = sentence_examples(6, seed=7)
    inputs = attention_inputs(handle, examples)
    stream = iter_attention(handle, inputs, layers=(0,), heads=(0,), batch_size=2, progress=False)
    next(stream)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert handle.model.config._attn_implementation == "sdpa"
    del stream  # abandoned half-way


def test_streams_do_not_wait_for_the_input_order(tokenizer):
    """The longest input first: the stream still yields the shorter ones before it (no backlog of maps)."""
    from bert_insight.attention.maps import attention_inputs, iter_attention

    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    examples = sentence_examples(6, seed=8)
    examples.loc[0, "text_a"] = " ".join(["cat"] * 60)
    inputs = attention_inputs(handle, examples)
    order = [window.example_id for window, _, _ in iter_attention(handle, inputs, layers=(0,), heads=(0,),
                                                                    batch_size=2, progress=False)]
    assert order[-1] == "s0" and sorted(order) == sorted(examples["example_id"])
    maps = attention_maps(handle, examples, batch_size=2, progress=False)
    assert list(maps) == examples["example_id"].tolist()
