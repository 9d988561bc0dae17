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
def test_named_parts_have_the_expected_shapes(family):
    model = tiny_qa_model(family)
    adapter = adapter_for(model)
    hidden = model.config.hidden_size if family != "distilbert" else model.config.dim
    for layer in range(adapter.num_layers(model)):
        assert adapter.value_projection(model, layer).out_features == hidden
        assert adapter.attention_output_projection(model, layer).in_features == hidden
    assert adapter.qa_head(model).out_features == 2


def test_unsupported_family_names_the_supported_ones():
    from transformers import GPT2Config

    with pytest.raises(BertInsightInputError, match="albert, bert, distilbert, electra, roberta"):
        adapter_for(GPT2Config())
