"""Shared fixtures: tiny random models of every supported family, the offline default model, data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bert_insight.testing import redraw_parameters  # noqa: F401  (tests import it from here too)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


TINY_SIZES = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=128)


def tiny_qa_model(family: str = "bert", seed: int = 0, attention: str = "eager"):
    """A randomly initialised *ForQuestionAnswering model of ``family`` with 3 layers and 4 heads."""
    return _tiny_model(family, "ForQuestionAnswering", seed=seed, attention=attention)


def tiny_classifier(family: str = "bert", num_labels: int = 2, seed: int = 0, attention: str = "eager",
                    task: str | None = None):
    """A randomly initialised *ForSequenceClassification model of ``family`` (3 layers, 4 heads) with a
    ``num_labels`` head (1: a regression head) and ``config.finetuning_task = task``."""
    model = _tiny_model(family, "ForSequenceClassification", seed=seed, attention=attention, num_labels=num_labels)
    model.config.finetuning_task = task
    return model


def _tiny_model(family: str, head: str, *, seed: int, attention: str, **config_extra):
    import transformers as tf

    torch.manual_seed(seed)
    vocab = 30522
    if family == "bert":
        config, prefix = tf.BertConfig(vocab_size=vocab, **TINY_SIZES, **config_extra), "Bert"
    elif family == "roberta":
        config = tf.RobertaConfig(vocab_size=vocab, pad_token_id=0, **{**TINY_SIZES, "max_position_embeddings": 130},
                                  **config_extra)
        prefix = "Roberta"
    elif family == "electra":
        config, prefix = tf.ElectraConfig(vocab_size=vocab, embedding_size=16, **TINY_SIZES, **config_extra), "Electra"
    elif family == "albert":
        config, prefix = tf.AlbertConfig(vocab_size=vocab, embedding_size=16, **TINY_SIZES, **config_extra), "Albert"
    elif family == "distilbert":
        config = tf.DistilBertConfig(vocab_size=vocab, dim=32, n_layers=3, n_heads=4, hidden_dim=64,
                                     max_position_embeddings=128, **config_extra)
        prefix = "DistilBert"
    else:
        raise ValueError(family)
    model_class = getattr(tf, prefix + head)
    # Set before construction: transformers 4.x picks the attention class when the model is built.
    config._attn_implementation = attention
    model = model_class(config)
    return redraw_parameters(model, seed).eval()


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from bert_insight.models.offline import minilm_base_dir

    return AutoTokenizer.from_pretrained(minilm_base_dir())


@pytest.fixture(scope="session")
def tiny_handle(tokenizer):
    from bert_insight.models.handle import from_model

    return from_model(tiny_qa_model("bert"), tokenizer, name="tiny-bert", device="cpu")


@pytest.fixture(scope="session")
def default_handle():
    """The offline default model, built once per machine (cached) and loaded once per test run."""
    from bert_insight import load_qa_model

    return load_qa_model(device="cpu")


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason="../shared/data is absent")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)
