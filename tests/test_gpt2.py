"""GPT-2 handles: hidden states of a causal decoder (van Aken et al. 2019, section 5.2), on a tiny random
GPT2Config and a byte-level BPE tokenizer trained here (no hub, no files).

References are independent of the library's code path: Hugging Face's own ``output_hidden_states`` for
ids made by calling the tokenizer directly, the embedding tables, the tokens' decoded text, and the
model run on single sequences against padded batches.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest
import torch

from bert_insight import BertInsightInputError, from_model, hidden_states, load_base_model, tokens
from bert_insight.frames import TOKEN_COLUMNS
from bert_insight.models.adapters import ADAPTERS, DECODER_ADAPTERS, adapter_for
from bert_insight.models.handle import ClassifierHandle, ModelHandle, QAModelHandle

EXAMPLES = pd.DataFrame({
    "example_id": ["e1", "e2", "e3"],
    "question": ["Who won the game?", "  How many fans came?", "Where is the cat?"],
    "context": ["The Denver Broncos won the game against Carolina in 2016.",
                "About 70,000 fans came to the stadium  to watch the final.",
                "\nThe cat is in the garden. The dog is in the kitchen."],
    "answers": [[{"text": "Denver Broncos", "answer_start": 4}], [{"text": "70,000", "answer_start": 6}],
                [{"text": "garden", "answer_start": 19}]],
})
TRAINING_TEXT = [*EXAMPLES["question"], *EXAMPLES["context"], "Sheep are afraid of wolves. Mice are afraid of cats."]
EOS = "<|endoftext|>"


def gpt2_tokenizer(trim_offsets: bool = False):
    """A byte-level BPE tokenizer (GPT-2's pre-tokenizer and byte alphabet) trained on a few sentences.

    ``trim_offsets``: whether its offsets leave out the leading space of "Ġword" pieces (GPT-2's own
    tokenizer keeps it; RoBERTa's trims it); the library must give the same frame either way.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(trim_offsets=trim_offsets)
    bpe.train_from_iterator(TRAINING_TEXT, vocab_size=320, min_frequency=1, special_tokens=[EOS],
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, bos_token=EOS, unk_token=EOS)


def tiny_gpt2(tokenizer, *, attention: str = "eager", head: bool = True, seed: int = 0):
    """GPT2LMHeadModel (or GPT2Model) with 2 layers, n_embd 32, 2 heads; LayerNorms and biases redrawn so
    that no parameter is at its trivial initial value."""
    import transformers as tf

    torch.manual_seed(seed)
    config = tf.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=128, vocab_size=len(tokenizer),
                           bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    config._attn_implementation = attention  # before construction: 4.x picks the attention class then
    model = (tf.GPT2LMHeadModel if head else tf.GPT2Model)(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".ln_" in f".{name}" or name.endswith("bias"):
                noise = torch.randn(parameter.shape, generator=generator) * 0.1
                parameter.copy_(noise + (1.0 if name.endswith("weight") else 0.0))
    return model.eval()


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2_tokenizer()


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def handle(request, tokenizer):
    return from_model(tiny_gpt2(tokenizer, attention=request.param), tokenizer, name="tiny-gpt2", device="cpu")


def joined_ids(tokenizer, question: str, context: str) -> list[int]:
    return tokenizer(question.strip() + " " + context, add_special_tokens=False)["input_ids"]


# ---- handles and adapter ---------------------------------------------------------------------------------
def test_from_model_gives_a_plain_model_handle_that_pads_with_eos(tokenizer):
    for head in (True, False):
        handle = from_model(tiny_gpt2(tokenizer, head=head), tokenizer, device="cpu")
        assert type(handle) is ModelHandle
        assert not isinstance(handle, (QAModelHandle, ClassifierHandle))
        assert handle.adapter.family == "gpt2" and handle.adapter.causal
        assert (handle.num_layers, handle.num_heads) == (2, 2)
        assert handle.pad_token_id == tokenizer.eos_token_id
    assert tokenizer.pad_token is None  # from_model does not change the caller's tokenizer
    assert "gpt2" not in ADAPTERS and adapter_for(tiny_gpt2(tokenizer).config) is DECODER_ADAPTERS["gpt2"]


@pytest.mark.parametrize("method, args", [
    ("value_projection", (0,)), ("attention_output_projection", (0,)), ("run_block", (0, None)),
    ("logits_from_layer", (0, None)), ("qa_head", ()), ("qa_logits", (None,)), ("classifier_logits", (None,)),
])
def test_unsupported_adapter_methods_raise_one_clear_error(tokenizer, method, args):
    model = tiny_gpt2(tokenizer)
    adapter = adapter_for(model)
    with pytest.raises(BertInsightInputError, match=rf"does not support {method}: .*hidden_states only"):
        getattr(adapter, method)(model, *args)


def test_supported_adapter_parts_are_the_ones_the_forward_uses(tokenizer):
    """embed is hidden state 0, the blocks are transformer.h in order, and self_attention's output holds
    the attention probabilities the model returns (eager)."""
    model = tiny_gpt2(tokenizer)
    adapter = adapter_for(model)
    ids = torch.tensor([joined_ids(tokenizer, "Who won the game?", "The Denver Broncos won.")])
    seen = []
    hook = adapter.self_attention(model, 1).register_forward_hook(lambda module, inputs, output: seen.append(output))
    try:
        with torch.no_grad():
            reference = model(input_ids=ids, output_hidden_states=True, output_attentions=True, use_cache=False)
            embedded = adapter.embed(model, ids)
    finally:
        hook.remove()
    torch.testing.assert_close(embedded, model.transformer.wte(ids) + model.transformer.wpe(torch.arange(ids.shape[1])))
    torch.testing.assert_close(embedded, reference.hidden_states[0])
    assert adapter.blocks(model) == list(model.transformer.h)
    outputs = seen[0] if isinstance(seen[0], tuple) else (seen[0],)
    assert any(torch.is_tensor(part) and part.shape == reference.attentions[1].shape
               and torch.allclose(part, reference.attentions[1]) for part in outputs)


# ---- hidden states ---------------------------------------------------------------------------------------
def test_hidden_states_equal_the_models_output_hidden_states_layer_by_layer(handle, tokenizer):
    vectors = hidden_states(handle, EXAMPLES, progress=False)
    assert vectors.layers == [0, 1, 2]
    model = handle.model
    for example in EXAMPLES.itertuples():
        ids = torch.tensor([joined_ids(tokenizer, example.question, example.context)])
        raw_last = []
        hook = model.transformer.h[-1].register_forward_hook(
            lambda module, inputs, output: raw_last.append(output[0] if isinstance(output, tuple) else output))
        try:
            with torch.no_grad():
                reference = model(input_ids=ids, output_hidden_states=True).hidden_states
        finally:
            hook.remove()
        rows = (vectors.tokens["example_id"] == example.example_id).to_numpy()
        assert vectors.tokens[rows]["token"].tolist() == tokenizer.convert_ids_to_tokens(ids[0])
        assert vectors.tokens[rows]["token_index"].tolist() == list(range(ids.shape[1]))
        assert len(reference) == handle.num_layers + 1
        for layer, expected in enumerate(reference):
            np.testing.assert_allclose(vectors.vectors[layer][rows], expected[0].numpy(), atol=1e-5)
        # Layer L is after the final LayerNorm (Hugging Face's convention, docs/gpt2.md).
        with torch.no_grad():
            np.testing.assert_allclose(vectors.vectors[2][rows], model.transformer.ln_f(raw_last[0])[0].numpy(),
                                       atol=1e-5)
    assert vectors.attrs["params"]["window"] == "question_context" and vectors.attrs["truncated"] == []


def test_right_padding_leaves_the_real_tokens_states_unchanged(handle):
    from bert_insight.windows import encode_question_context

    windows, _ = encode_question_context(handle.tokenizer, EXAMPLES, max_length=128, joined=True)
    lengths = [len(window) for window in windows]
    assert len(set(lengths)) == len(lengths)  # the shorter ones really get padded
    batch = handle.batch_inputs(windows)
    for row, length in enumerate(lengths):
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (max(lengths) - length)
        assert (batch["input_ids"][row, length:] == handle.tokenizer.eos_token_id).all()
    assert "token_type_ids" not in batch  # GPT-2 would embed them with its token embeddings
    with torch.no_grad():
        padded = handle.model(**batch, output_hidden_states=True).hidden_states
        for row, window in enumerate(windows):
            alone = handle.model(input_ids=torch.tensor([window.input_ids]), output_hidden_states=True).hidden_states
            for layer in range(handle.num_layers + 1):
                torch.testing.assert_close(padded[layer][row, : lengths[row]], alone[layer][0], atol=1e-5, rtol=1e-5)


def test_the_state_of_a_token_does_not_depend_on_later_tokens(handle):
    changed = EXAMPLES.head(1).copy()
    changed["context"] = ["The Denver Broncos won the game against Carolina in 1999."]
    first = hidden_states(handle, EXAMPLES.head(1), progress=False)
    second = hidden_states(handle, changed, progress=False)
    a, b = first.tokens["token"].tolist(), second.tokens["token"].tolist()
    same = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    assert same > 10
    for layer in first.layers:
        np.testing.assert_array_equal(first.vectors[layer][:same], second.vectors[layer][:same])
        assert not np.allclose(first.vectors[layer][same], second.vectors[layer][same])


# ---- the tokens frame --------------------------------------------------------------------------------------
@pytest.mark.parametrize("trim_offsets", [False, True])
def test_segments_and_char_offsets_map_back_to_the_question_and_context(trim_offsets):
    tokenizer = gpt2_tokenizer(trim_offsets)
    handle = from_model(tiny_gpt2(tokenizer), tokenizer, device="cpu")
    frame = hidden_states(handle, EXAMPLES, layers=[0], progress=False).tokens
    assert list(frame.columns) == list(TOKEN_COLUMNS)
    for example in EXAMPLES.itertuples():
        rows = frame[frame["example_id"] == example.example_id]
        texts = {"question": example.question, "context": example.context}
        ids = joined_ids(tokenizer, example.question, example.context)
        for row, token_id in zip(rows.itertuples(), ids):
            decoded = tokenizer.decode([token_id])  # the token's own text, with the space it carries
            if row.segment == "special":
                assert decoded == " " and (row.word_index, row.char_start, row.char_end) == (-1, -1, -1)
                continue
            text = texts[row.segment]
            assert text[row.char_start: row.char_end] == decoded.strip()
            assert row.word_index >= 0 and text[row.char_start: row.char_end] in row.word
        # Read in order, the pieces of each segment spell its text (whitespace aside), nothing twice.
        for segment, text in texts.items():
            part = rows[rows["segment"] == segment]
            spelled = "".join(text[start:end] for start, end in zip(part["char_start"], part["char_end"]))
            assert spelled == re.sub(r"\s", "", text)
            assert (np.diff(part["char_start"]) >= 0).all()
        assert rows["segment"].tolist() == sorted(rows["segment"], key=["question", "special", "context"].index)
        answer = example.answers[0]
        in_answer = rows[rows["in_answer"]]
        assert set(in_answer["role"]) == {"answer"} and (in_answer["segment"] == "context").all()
        assert example.context[in_answer["char_start"].min(): in_answer["char_end"].max()] == answer["text"]
    if trim_offsets:
        untrimmed = gpt2_tokenizer(False)
        other = hidden_states(from_model(tiny_gpt2(untrimmed), untrimmed, device="cpu"), EXAMPLES, layers=[0],
                              progress=False).tokens
        pd.testing.assert_frame_equal(frame, other)


def test_tokens_verb_gives_the_hidden_states_rows(handle):
    vectors = hidden_states(handle, EXAMPLES, layers=[0], progress=False)
    pd.testing.assert_frame_equal(tokens(handle, EXAMPLES, progress=False), vectors.tokens)


def test_truncation_is_noted_and_qa_settings_are_refused(handle, tokenizer):
    vectors = hidden_states(handle, EXAMPLES, layers=[0], max_length=16, progress=False)
    counts = vectors.tokens.groupby("example_id").size()
    assert (counts == 16).all()
    assert vectors.attrs["truncated"] == ["e1", "e2", "e3"] and "cut to max_length=16" in vectors.attrs["note"]
    first = vectors.tokens[vectors.tokens["example_id"] == "e1"]["token"].tolist()
    expected = joined_ids(tokenizer, EXAMPLES["question"].iloc[0], EXAMPLES["context"].iloc[0])[:16]
    assert first == tokenizer.convert_ids_to_tokens(expected)
    with pytest.raises(BertInsightInputError, match="fills all max_length=4 tokens"):
        hidden_states(handle, EXAMPLES, max_length=4, progress=False)
    with pytest.raises(BertInsightInputError, match="no QA head"):
        hidden_states(handle, EXAMPLES, doc_stride=32, progress=False)
    with pytest.raises(BertInsightInputError, match="exceeds the 128 positions"):
        hidden_states(handle, EXAMPLES, max_length=200, progress=False)


def test_qa_verbs_refuse_a_gpt2_handle(handle):
    from bert_insight import predict

    with pytest.raises(BertInsightInputError, match="question-answering model handle"):
        predict(handle, EXAMPLES, progress=False)
    with pytest.raises(BertInsightInputError, match="Expected a model handle"):
        hidden_states(handle.model, EXAMPLES, progress=False)


def test_encoder_only_verbs_refuse_a_gpt2_handle(handle):
    from bert_insight import attention_maps, encode_targets
    from test_probing import SENTENCES, word_task

    with pytest.raises(BertInsightInputError, match="Edge probing needs an encoder"):
        encode_targets(handle, word_task(SENTENCES), progress=False)
    with pytest.raises(BertInsightInputError, match="Attention maps and head ablation needs an encoder"):
        attention_maps(handle, EXAMPLES, progress=False)


# ---- loading ------------------------------------------------------------------------------------------------
def test_load_base_model_round_trip_sets_the_pad_token(tmp_path, tokenizer):
    model = tiny_gpt2(tokenizer, attention="sdpa")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    handle = load_base_model(tmp_path, device="cpu", attention="eager")
    assert type(handle) is ModelHandle and type(handle.model).__name__ == "GPT2Model"
    assert handle.tokenizer.pad_token == EOS and handle.attention == "eager"
    ids = torch.tensor([joined_ids(tokenizer, "Who won?", "The Broncos won.")])
    with torch.no_grad():
        expected = model(input_ids=ids, output_hidden_states=True).hidden_states
        got = handle.model(input_ids=ids, output_hidden_states=True).hidden_states
    for a, b in zip(expected, got):
        torch.testing.assert_close(a, b)


def test_load_base_model_errors_say_what_to_do(tmp_path, tokenizer, monkeypatch):
    import transformers

    from bert_insight import load_classifier, load_qa_model

    with pytest.raises(BertInsightInputError, match="does not exist"):
        load_base_model(tmp_path / "missing")
    with pytest.raises(BertInsightInputError, match="hub name such as 'gpt2'"):
        load_base_model(None)
    with pytest.raises(BertInsightInputError, match="attention"):
        load_base_model("gpt2", attention="flash")

    def unreachable(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", unreachable)
    with pytest.raises(BertInsightInputError, match=r"from the hub \(needs internet once\).*Without internet"):
        load_base_model("gpt2")
    monkeypatch.undo()
    tiny_gpt2(tokenizer).save_pretrained(tmp_path / "gpt2")
    tokenizer.save_pretrained(tmp_path / "gpt2")
    with pytest.raises(BertInsightInputError, match="hidden states only.*albert, bert, distilbert, electra, roberta"):
        load_qa_model(tmp_path / "gpt2", device="cpu")
    with pytest.raises(BertInsightInputError, match="load_base_model"):
        load_classifier(tmp_path / "gpt2", task="mrpc", device="cpu")


@pytest.mark.skipif(not os.environ.get("BERT_INSIGHT_HUB_TESTS"),
                    reason="downloads gpt2 from the hub: set BERT_INSIGHT_HUB_TESTS=1 where there is internet")
def test_gpt2_from_the_hub():  # pragma: no cover
    handle = load_base_model("gpt2", device="cpu")
    vectors = hidden_states(handle, EXAMPLES.head(1), progress=False)
    assert vectors.layers == list(range(13)) and set(vectors.tokens["segment"]) >= {"question", "context"}
