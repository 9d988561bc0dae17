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


def test_loading_faults_get_one_clear_error_each(tmp_path, tokenizer):
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(b"x")
    with pytest.raises(BertInsightInputError, match="no config.json"):
        load_qa_model(no_config)
    saved = tmp_path / "saved"
    tiny_qa_model("bert").save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    with pytest.raises(BertInsightInputError, match="dtype='float8'"):
        load_qa_model(saved, dtype="float8")
    with pytest.raises(BertInsightInputError, match="got int"):
        load_qa_model(42)
    weights = saved / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    with pytest.raises(BertInsightInputError, match="truncated or corrupt"):
        load_qa_model(saved, device="cpu")


def test_a_handle_is_immutable_and_its_fingerprint_follows_the_weights(tokenizer):
    import dataclasses

    from bert_insight.models.handle import from_model

    handle = from_model(tiny_qa_model("bert"), tokenizer, name="tiny", device="cpu", card={"steps": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        handle.name = "other"
    with pytest.raises(TypeError):
        handle.card["steps"] = 4
    before = handle.fingerprint
    assert handle.fingerprint == before  # deterministic
    with torch.no_grad():
        handle.model.bert.encoder.layer[0].output.dense.bias.data[3] += 1e-3  # not seen by version counters
    assert handle.fingerprint != before
    renamed = dataclasses.replace(handle, name="other")
    assert renamed.fingerprint != handle.fingerprint and renamed.card == {"steps": 3}
