"""The model handle every verb takes: model (eval mode), tokenizer, adapter, device, name, card.

A handle is immutable: derive a new one with :func:`dataclasses.replace` or :func:`from_model`. Its
:attr:`~QAModelHandle.fingerprint` hashes every parameter and buffer, so it follows the weights: an
in-place edit after loading (a pruned head, a ``load_state_dict``) gives a new fingerprint and the
results cache never hands back results of the old weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import torch
from torch import nn

from ..device import resolve_device
from ..errors import BertInsightInputError
from ..windows import QAWindow, collate_windows
from .adapters import ArchitectureAdapter, adapter_for

ATTENTION_CHOICES = ("sdpa", "eager")


def _read_only(card: Mapping | None) -> Mapping:
    # A deep copy through JSON: the handle's card cannot be changed through a reference the caller kept.
    return MappingProxyType(json.loads(json.dumps(dict(card or {}), default=str)))


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 (16 hex digits) of every parameter and buffer: names, dtypes, shapes and bytes.

    Hashing the bytes (about 0.07 s for MiniLM's 90 MB, 0.35 s for BERT-base on one CPU core) rather
    than trusting tensor version counters also catches edits through ``parameter.data``, which
    autograd's counters do not see.
    """
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in (*model.named_parameters(), *model.named_buffers()):
            flat = tensor.detach().contiguous().cpu()
            digest.update(f"{name}|{flat.dtype}|{tuple(flat.shape)}|".encode())
            digest.update(flat.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class ModelHandle:
    """A model ready for analysis: ``model`` (eval mode), ``tokenizer`` (fast), ``adapter``, ``device``,
    ``name``, ``attention`` ("sdpa" or "eager") and a read-only ``card`` (the model card).

    The verbs that only read the encoder (attention maps, hidden states) take any handle; QA verbs
    take a :class:`QAModelHandle`, classification verbs a :class:`ClassifierHandle`. A plain
    ``ModelHandle`` wraps a model without a task head (``BertModel``, ``GPT2Model``, ``GPT2LMHeadModel``;
    :func:`bert_insight.load_base_model`); GPT-2 handles serve hidden states only (docs/gpt2.md).
    """

    model: nn.Module
    tokenizer: object
    adapter: ArchitectureAdapter
    device: torch.device
    name: str
    attention: str = "sdpa"
    card: Mapping = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "card", _read_only(self.card))

    @property
    def num_layers(self) -> int:
        """Number of blocks L (hidden states run 0..L)."""
        return self.adapter.num_layers(self.model)

    @property
    def num_heads(self) -> int:
        return self.adapter.num_heads(self.model)

    @property
    def fingerprint(self) -> str:
        """Identifies the weights (and the name) for the results cache; recomputed on every access, so
        a verb reads it once per call."""
        return hashlib.sha256(f"{self.name}|{weights_fingerprint(self.model)}".encode()).hexdigest()[:16]

    @property
    def pad_token_id(self) -> int:
        """The tokenizer's padding id; for a tokenizer that defines none, the end-of-text id of a causal
        decoder (GPT-2's convention) or 0. Padded positions are masked, and windows are padded on the
        right, so with causal attention the real tokens never see them."""
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is None and self.adapter.causal:
            pad = getattr(self.tokenizer, "eos_token_id", None)
        return 0 if pad is None else int(pad)

    def batch_inputs(self, windows: list[QAWindow]) -> dict[str, torch.Tensor]:
        """Model keyword arguments for ``windows`` on the handle's device, padded to the longest one.

        Keys: input_ids and attention_mask, shape (batch, longest window); token_type_ids where the family
        embeds segment ids and the tokenizer made them (``collate_windows`` checks the windows).
        """
        return collate_windows(windows, self.device, pad_token_id=self.pad_token_id,
                               token_type_ids=self.adapter.uses_token_type_ids)

    @property
    def usable_positions(self) -> int | None:
        """The longest input the position embeddings take (None when the config names no limit)."""
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions is None:
            return None
        # RoBERTa-style position ids start after the padding index, which uses up two positions.
        return positions - 2 if self.adapter.family == "roberta" else positions

    def check_fits(self, max_length: int) -> None:
        """Raise BertInsightInputError when windows of ``max_length`` tokens exceed the position embeddings."""
        usable = self.usable_positions
        if usable is None:
            return
        if max_length > usable:
            raise BertInsightInputError(
                f"max_length={max_length} exceeds the {usable} positions {self.name!r} can embed; "
                f"pass max_length={usable} or less (and a doc_stride below it)."
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, family={self.adapter.family!r}, layers={self.num_layers}, "
            f"heads={self.num_heads}, device={self.device}, attention={self.attention!r}{self._repr_extra()})"
        )

    def _repr_extra(self) -> str:
        return ""


@dataclass(frozen=True, eq=False)
class QAModelHandle(ModelHandle):
    """A handle on a ``*ForQuestionAnswering`` model (a ``qa_outputs`` layer with 2 outputs)."""


@dataclass(frozen=True, eq=False)
class ClassifierHandle(ModelHandle):
    """A handle on a ``*ForSequenceClassification`` model for one sentence(-pair) task.

    ``task`` is the GLUE task name ("mrpc", "stsb", ...) or a user's own name; ``label_names`` the
    class names in label-id order (empty for a regression head such as STS-B's).
    """

    task: str = ""
    label_names: tuple[str, ...] = ()

    @property
    def num_labels(self) -> int:
        return int(self.model.config.num_labels)

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    def _repr_extra(self) -> str:
        return f", task={self.task!r}, labels={list(self.label_names) or 'regression'}"


def from_model(
    model: nn.Module,
    tokenizer,
    *,
    name: str = "in-memory model",
    device: str | torch.device = "auto",
    card: Mapping | None = None,
    task: str | None = None,
) -> ModelHandle:
    """Wrap an already built model and its (fast) tokenizer in a handle.

    A ``*ForQuestionAnswering`` model (a ``qa_outputs`` layer) gives a :class:`QAModelHandle`; a
    ``*ForSequenceClassification`` model a :class:`ClassifierHandle` for ``task`` (a GLUE task name, or
    your own name; None reads it from the card or ``config.finetuning_task``); any other model of a
    supported family (a headless ``BertModel``, a masked-LM model) and every GPT-2 model (``GPT2Model``,
    ``GPT2LMHeadModel``; a GPT-2 task head is not used) a plain :class:`ModelHandle`, for the verbs
    that read hidden states. The model is moved to ``device`` and put in eval mode; its attention
    implementation is read from its config. The tokenizer is not changed (a GPT-2 handle pads with the
    end-of-text id when the tokenizer has no pad token: :attr:`ModelHandle.pad_token_id`).
    """
    if not isinstance(model, nn.Module):
        raise BertInsightInputError(
            f"from_model needs a torch model (got {type(model).__name__}); to load by name or path use "
            "bert_insight.load_qa_model, bert_insight.load_classifier or bert_insight.load_base_model."
        )
    adapter = adapter_for(model)
    card = dict(card or {})
    if adapter.causal:
        kind = "base"
    elif is_sequence_classifier(model):
        kind = "classifier"
    elif is_qa_model(model):
        kind = "qa"
    else:
        kind = "base"
    if kind == "classifier":
        task_name, label_names = classifier_task(model, task if task is not None else card.get("task"), name)
    elif kind == "qa":
        require_qa_head(model, adapter, name)
    resolved = resolve_device(device)
    model = model.to(resolved).eval()
    attention = getattr(model.config, "_attn_implementation", None) or "sdpa"
    if kind == "classifier":
        return ClassifierHandle(model, tokenizer, adapter, resolved, str(name), attention, card,
                                task=task_name, label_names=label_names)
    handle_class = QAModelHandle if kind == "qa" else ModelHandle
    return handle_class(model, tokenizer, adapter, resolved, str(name), attention, card)


def is_qa_model(model: nn.Module) -> bool:
    """True for a ``*ForQuestionAnswering`` model, or any model with a ``qa_outputs`` submodule (its
    head is then checked by :func:`require_qa_head`)."""
    return (type(model).__name__.endswith("ForQuestionAnswering")
            or isinstance(getattr(model, "qa_outputs", None), nn.Module))


def is_sequence_classifier(model: nn.Module) -> bool:
    """True for a ``*ForSequenceClassification`` model (a pooled-output head with num_labels outputs)."""
    return type(model).__name__.endswith("ForSequenceClassification")


def classifier_task(model: nn.Module, task: str | None, name: str) -> tuple[str, tuple[str, ...]]:
    """The task name and label names of a sequence classifier: a GLUE task's own labels (checked
    against the head's size), or for another task the config's ``id2label``."""
    from ..data.glue import GLUE_TASKS, glue_task

    config = model.config
    task = task or getattr(config, "finetuning_task", None)
    if not task:
        raise BertInsightInputError(
            f"{name!r} is a sequence classifier but says no task; pass task= (a GLUE task such as 'mrpc', "
            f"one of {sorted(GLUE_TASKS)}, or your own task's name).")
    num_labels = int(config.num_labels)
    try:
        spec = glue_task(task)
    except BertInsightInputError:  # the user's own task
        spec = None
    if spec is not None:
        if spec.num_labels != num_labels:
            raise BertInsightInputError(
                f"{name!r} has a head with {num_labels} output(s), but GLUE {spec.name} needs {spec.num_labels} "
                f"({list(spec.label_names) or 'one regression score'}). Load it with the matching task, or "
                f"re-head it: load_classifier(name, task={spec.name!r}, allow_new_classifier_head=True).")
        return spec.name, spec.label_names
    if num_labels == 1:
        return str(task), ()
    id2label = getattr(config, "id2label", None) or {}
    return str(task), tuple(str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(num_labels))


def require_model_handle(handle, verb: str) -> ModelHandle:
    """``handle`` if it is a model handle of any kind (QA, classifier, plain), else one
    BertInsightInputError saying how to get one."""
    if not isinstance(handle, ModelHandle):
        raise BertInsightInputError(
            f"Expected a model handle for {verb} (got {type(handle).__name__}); load one with "
            "bert_insight.load_qa_model, load_classifier, load_base_model or from_model.")
    return handle


def require_qa_handle(handle, verb: str) -> QAModelHandle:
    """``handle`` if it is a QAModelHandle, else one BertInsightInputError saying what to pass."""
    if not isinstance(handle, QAModelHandle):
        kind = (f"a {handle.task!r} sentence classifier" if isinstance(handle, ClassifierHandle)
                else type(handle).__name__)
        raise BertInsightInputError(
            f"{verb} needs a question-answering model handle, got {kind}. Load one with "
            "bert_insight.load_qa_model(); for classifiers use bert_insight.classify / evaluate_classifier.")
    return handle


def require_qa_head(model: nn.Module, adapter: ArchitectureAdapter, name: str) -> None:
    """Raise BertInsightInputError unless ``model`` has a 2-output ``qa_outputs`` layer."""
    try:
        head = adapter.qa_head(model)
    except AttributeError:
        head = None
    if not isinstance(head, nn.Linear) or head.out_features != 2:
        raise BertInsightInputError(
            f"{name!r} has no question-answering head (a `qa_outputs` layer with 2 outputs). Load a "
            "*ForQuestionAnswering checkpoint, or fine-tune one with bert_insight.finetune_qa."
        )
