"""Loading question-answering models into a small handle."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..device import resolve_device
from ..errors import BertInsightInputError
from .adapters import ArchitectureAdapter, adapter_for

ATTENTION_CHOICES = ("sdpa", "eager")


@dataclass
class QAModelHandle:
    """A QA model ready for analysis: model (eval mode), tokenizer, adapter, device, name.

    ``fingerprint`` identifies the weights for the results cache.
    """

    model: nn.Module
    tokenizer: object
    adapter: ArchitectureAdapter
    device: torch.device
    name: str
    attention: str = "sdpa"
    card: dict = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return self.adapter.num_layers(self.model)

    @property
    def num_heads(self) -> int:
        return self.adapter.num_heads(self.model)

    @property
    def fingerprint(self) -> str:
        """A short hash of the model's name, card and a sample of its weights (cache key)."""
        import hashlib

        digest = hashlib.sha256(self.name.encode())
        digest.update(repr(sorted((k, str(v)) for k, v in self.card.items() if k != "seconds")).encode())
        with torch.no_grad():
            for _, parameter in list(self.model.named_parameters())[:: max(1, len(list(self.model.parameters())) // 16)]:
                digest.update(parameter.detach().float().flatten()[:256].cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"QAModelHandle(name={self.name!r}, family={self.adapter.family!r}, layers={self.num_layers}, "
            f"heads={self.num_heads}, device={self.device}, attention={self.attention!r})"
        )


def from_model(
    model: nn.Module,
    tokenizer,
    *,
    name: str = "in-memory model",
    device: str | torch.device = "auto",
    card: dict | None = None,
) -> QAModelHandle:
    """Wrap an already built ``*ForQuestionAnswering`` model and its tokenizer in a handle."""
    adapter = adapter_for(model)
    _require_qa_head(model, adapter, name)
    resolved = resolve_device(device)
    model = model.to(resolved).eval()
    attention = getattr(model.config, "_attn_implementation", None) or "sdpa"
    return QAModelHandle(model, tokenizer, adapter, resolved, name, attention, dict(card or {}))


def _require_qa_head(model: nn.Module, adapter: ArchitectureAdapter, name: str) -> None:
    try:
        head = adapter.qa_head(model)
    except AttributeError:
        head = None
    if not isinstance(head, nn.Linear) or head.out_features != 2:
        raise BertInsightInputError(
            f"{name!r} has no question-answering head (a `qa_outputs` layer with 2 outputs). Load a "
            "*ForQuestionAnswering checkpoint, or fine-tune one with bert_insight.finetune_qa."
        )


def _looks_like_local_path(name: str) -> bool:
    return (name.startswith((".", "/", "~"))
            or (os.sep in name and not _is_hub_id(name))
            or Path(name).exists())


def _is_hub_id(name: str) -> bool:
    # Hub ids are "name" or "org/name" with no other separators.
    parts = name.split("/")
    return len(parts) <= 2 and all(parts) and not name.startswith((".", "/", "~"))


def load_qa_model(
    name_or_path: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "auto",
    attention: str = "sdpa",
    dtype: torch.dtype | str | None = None,
    allow_new_qa_head: bool = False,
) -> QAModelHandle:
    """Load a question-answering model into a :class:`QAModelHandle`.

    ``name_or_path`` is a Hugging Face hub name (downloaded by ``from_pretrained``; needs internet
    once), a local directory, or None for the offline default (MiniLM-L6 fine-tuned on SQuAD 1.1,
    built on first use, see :func:`bert_insight.models.default.default_model_dir`).

    ``attention="eager"`` is needed for attention maps and head ablation; "sdpa" is faster otherwise.
    A checkpoint without a trained QA head is refused unless ``allow_new_qa_head=True``.
    """
    if attention not in ATTENTION_CHOICES:
        raise BertInsightInputError(f"attention={attention!r}; use one of {ATTENTION_CHOICES}.")
    if name_or_path is None:
        from .default import ensure_default_model

        path = ensure_default_model()
        return _load_from(str(path), device=device, attention=attention, dtype=dtype, allow_new=False,
                          display_name="bert-insight/minilm-l6-squad (offline default)")
    name = os.fspath(name_or_path)
    expanded = os.path.expanduser(name)
    if _looks_like_local_path(name) and not Path(expanded).is_dir():
        raise BertInsightInputError(
            f"Local model path {name!r} does not exist (or is not a directory). Check the path, or pass "
            "a Hugging Face hub name such as 'deepset/bert-base-cased-squad2', or None for the offline default."
        )
    return _load_from(expanded if Path(expanded).is_dir() else name, device=device, attention=attention,
                      dtype=dtype, allow_new=allow_new_qa_head, display_name=name)


def _load_from(source: str, *, device, attention, dtype, allow_new: bool, display_name: str) -> QAModelHandle:
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as error:
        raise BertInsightInputError(
            f"Could not load a model config from {source!r}: {error.__class__.__name__}. Without internet, "
            "pass a local directory or None for the offline default model."
        ) from error
    adapter = adapter_for(config)
    kwargs = {"attn_implementation": attention}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        model, info = _from_pretrained_with_info(AutoModelForQuestionAnswering, source, kwargs)
    missing = set(info.get("missing_keys", []))
    if any(key.startswith(adapter.qa_head_path) for key in missing) and not allow_new:
        raise BertInsightInputError(
            f"{display_name!r} has no trained question-answering head (qa_outputs was newly initialised). "
            "Use a *ForQuestionAnswering checkpoint, fine-tune it with bert_insight.finetune_qa, or pass "
            "allow_new_qa_head=True to analyse the untrained head anyway."
        )
    tokenizer = AutoTokenizer.from_pretrained(source)
    card = _read_card(source)
    handle = from_model(model, tokenizer, name=display_name, device=device, card=card)
    handle.attention = attention
    return handle


def _from_pretrained_with_info(auto_class, source: str, kwargs: dict):
    try:
        return auto_class.from_pretrained(source, output_loading_info=True, **kwargs)
    except TypeError:
        # transformers 4.x before the `dtype` rename
        if "dtype" in kwargs:
            kwargs = {**kwargs, "torch_dtype": kwargs.pop("dtype")}
        return auto_class.from_pretrained(source, output_loading_info=True, **kwargs)


def _read_card(source: str) -> dict:
    import json

    card_path = Path(source) / "model_card.json"
    if card_path.is_file():
        return json.loads(card_path.read_text())
    return {}
