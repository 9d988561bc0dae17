"""Adapters must reproduce the model's own forward pass piece by piece, for every family."""

from __future__ import annotations

import pytest
import torch

from bert_insight.errors import BertInsightInputError
from bert_insight.models.adapters import ADAPTERS, adapter_for
from tests.conftest import tiny_qa_model

FAMILIES = sorted(ADAPTERS)


@pytest.mark.parametrize("family", FAMILIES)
def test_blocks_chain_reproduces_hidden_states_and_logits(family):
    model = tiny_qa_model(family)
    adapter = adapter_for(model)
    torch.manual_seed(1)
    input_ids = torch.randint(1000, 2000, (2, 11))
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 6:] = 1
    kwargs = {"token_type_ids": token_type_ids} if adapter.uses_token_type_ids else {}
    with torch.no_grad():
        reference = model(input_ids=input_ids, output_hidden_states=True, **kwargs)
        hidden = adapter.embed(model, input_ids, token_type_ids if adapter.uses_token_type_ids else None)
        assert torch.allclose(hidden, reference.hidden_states[0], atol=1e-5)
        for layer in range(adapter.num_layers(model)):
            hidden = adapter.run_block(model, layer, hidden)
            assert torch.allclose(hidden, reference.hidden_states[layer + 1], atol=1e-5), layer
        start, end = adapter.qa_logits(model, hidden)
    assert torch.allclose(start, reference.start_logits, atol=1e-5)
    assert torch.allclose(end, reference.end_logits, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_from_middle_layer_match_full_forward(family):
    model = tiny_qa_model(family)
    adapter = adapter_for(model)
    input_ids = torch.randint(1000, 2000, (1, 9))
    with torch.no_grad():
        reference = model(input_ids=input_ids, output_hidden_states=True)
        start, end = adapter.logits_from_layer(model, 2, reference.hidden_states[2])
    assert torch.allclose(start, reference.start_logits, atol=1e-5)
    assert torch.allclose(end, reference.end_logits, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_named_parts_are_the_modules_the_forward_pass_uses(family):
    """Hooks on the adapter's modules see, inside the model's own forward: the value projection takes
    hidden state ``layer``; the self-attention returns the layer's attention probabilities; and the
    attention output projection takes exactly probabilities @ values, head by head. A wrong path (another
    layer's module, the feed-forward's dense, the key projection) fails one of these."""
    model = tiny_qa_model(family)  # eager attention, so the model returns its attention weights
    adapter = adapter_for(model)
    heads = adapter.num_heads(model)
    input_ids = torch.randint(1000, 2000, (1, 9), generator=torch.Generator().manual_seed(2))
    calls: dict[tuple[str, int], list] = {}  # (part, id(module)) -> what each call saw, in call order

    def keep(name, module, what):
        def hook(_module, inputs, output):
            calls.setdefault((name, id(module)), []).append(inputs[0] if what == "input" else output)
        return module.register_forward_hook(hook)

    parts = {"value_in": (adapter.value_projection, "input"), "value_out": (adapter.value_projection, "output"),
             "attention_out": (adapter.self_attention, "output"),
             "context": (adapter.attention_output_projection, "input")}
    modules = {name: [part(model, layer) for layer in range(adapter.num_layers(model))]
               for name, (part, _) in parts.items()}
    handles = [keep(name, module, parts[name][1])
               for name, layers in modules.items() for module in {id(m): m for m in layers}.values()]
    try:
        with torch.no_grad():
            reference = model(input_ids=input_ids, output_hidden_states=True, output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()

    def seen(name, layer):
        # ALBERT shares one block across layers: its k-th use is the k-th layer that names it.
        module = modules[name][layer]
        occurrence = sum(other is module for other in modules[name][:layer])
        return calls[name, id(module)][occurrence]

    for layer in range(adapter.num_layers(model)):
        assert torch.allclose(seen("value_in", layer), reference.hidden_states[layer], atol=1e-5), layer
        probabilities = reference.attentions[layer]  # (1, heads, T, T)
        outputs = seen("attention_out", layer)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        assert any(torch.is_tensor(part) and part.shape == probabilities.shape
                   and torch.allclose(part, probabilities, atol=1e-6) for part in outputs), layer
        values = seen("value_out", layer)
        per_head = values.view(1, values.shape[1], heads, -1).transpose(1, 2)  # (1, heads, T, head_dim)
        context = (probabilities @ per_head).transpose(1, 2).reshape(values.shape)
        assert torch.allclose(seen("context", layer), context, atol=1e-5), layer
    assert adapter.qa_head(model) is model.qa_outputs


def test_unsupported_family_names_the_supported_ones():
    from transformers import T5Config

    with pytest.raises(BertInsightInputError, match=r"albert, bert, distilbert, electra, roberta \(and GPT-2"):
        adapter_for(T5Config())


def test_encoder_table_holds_the_encoder_families_and_gpt2_is_a_decoder():
    from transformers import GPT2Config

    from bert_insight.models.adapters import DECODER_ADAPTERS

    assert FAMILIES == ["albert", "bert", "distilbert", "electra", "roberta"]
    assert not any(ADAPTERS[family].causal or ADAPTERS[family].unsupported for family in FAMILIES)
    gpt2 = adapter_for(GPT2Config(n_layer=1, n_embd=16, n_head=2))
    assert gpt2 is DECODER_ADAPTERS["gpt2"] and gpt2.causal and not gpt2.uses_token_type_ids


@pytest.mark.parametrize("family", FAMILIES)
def test_headless_base_models_run_through_the_same_table(family):
    """A model without a task head (BertModel, ...: what load_base_model loads) is its own base model; the
    adapter's embed and blocks reproduce its hidden states, and from_model wraps it as a plain ModelHandle."""
    import transformers as tf

    from bert_insight.models.handle import ModelHandle, from_model

    qa = tiny_qa_model(family)
    base = tf.AutoModel.from_config(qa.config)
    # QA models build their base without the pooler, which hidden states never use.
    missing, unexpected = base.load_state_dict(getattr(qa, ADAPTERS[family].base_model_attr).state_dict(),
                                               strict=False)
    assert not unexpected and all(key.startswith("pooler") for key in missing)
    base.eval()
    adapter = adapter_for(base)
    assert adapter.base_model(base) is base and adapter.base_model(qa) is getattr(qa, adapter.base_model_attr)
    input_ids = torch.randint(1000, 2000, (1, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        reference = base(input_ids=input_ids, output_hidden_states=True).hidden_states
        expected = qa(input_ids=input_ids, output_hidden_states=True).hidden_states
        hidden = adapter.embed(base, input_ids)
        assert torch.allclose(hidden, reference[0], atol=1e-5)
        for layer in range(adapter.num_layers(base)):
            hidden = adapter.run_block(base, layer, hidden)
            assert torch.allclose(hidden, reference[layer + 1], atol=1e-5), layer
    for ours, theirs in zip(reference, expected):
        assert torch.allclose(ours, theirs, atol=1e-6)
    assert type(from_model(base, None, device="cpu")) is ModelHandle
