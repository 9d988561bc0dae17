"""load_qa_model: local checkpoints round-trip; bad input gets one clear BertInsightInputError."""

from __future__ import annotations

import pytest
import torch

from bert_insight import BertInsightInputError, load_qa_model
from tests.conftest import tiny_qa_model


def test_saved_qa_checkpoint_loads_with_the_same_logits(tmp_path, tokenizer):
    model = tiny_qa_model("bert")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    handle = load_qa_model(str(tmp_path), device="cpu", attention="eager")
    input_ids = torch.tensor([[101, 2054, 2003, 102, 1996, 3899, 102]])
    with torch.no_grad():
        expected = model(input_ids=input_ids).start_logits
        got = handle.model(input_ids=input_ids).start_logits
    assert torch.allclose(expected, got, atol=1e-6)
    assert handle.adapter.family == "bert" and handle.num_layers == 3 and handle.num_heads == 4


def test_missing_local_path_says_what_to_pass(tmp_path):
    with pytest.raises(BertInsightInputError, match="does not exist"):
        load_qa_model(str(tmp_path / "no-such-model"))


def test_checkpoint_without_qa_head_is_refused_unless_allowed(tmp_path, tokenizer):
    from transformers import BertModel

    base = BertModel(tiny_qa_model("bert").config)
    base.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(BertInsightInputError, match="no trained question-answering head"):
        load_qa_model(str(tmp_path), device="cpu")
    handle = load_qa_model(str(tmp_path), device="cpu", allow_new_qa_head=True)
    assert handle.adapter.qa_head(handle.model).out_features == 2


def test_unsupported_architecture_names_the_supported_families(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=16, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(BertInsightInputError, match="albert, bert, distilbert, electra, roberta"):
        load_qa_model(str(tmp_path), device="cpu")


def test_bad_attention_and_device_choices():
    with pytest.raises(BertInsightInputError, match="attention"):
        load_qa_model("anything", attention="flash")
    from bert_insight.device import resolve_device

    with pytest.raises(BertInsightInputError, match="device"):
        resolve_device("tpu-please")
