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
    from transformers import GPT2Config

    with pytest.raises(BertInsightInputError, match="albert, bert, distilbert, electra, roberta"):
        adapter_for(GPT2Config())
