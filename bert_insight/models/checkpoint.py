"""Loading a checkpoint (a local directory or a Hugging Face hub name) into a handle -- a QA model, a
sequence classifier, or a base model without a task head -- and saving one.

Every failure a user can cause -- a directory without config.json, a truncated weights file, an
unknown dtype, a name that is not a string, a corrupt model card -- becomes one
BertInsightInputError that says what to do.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from ..errors import BertInsightInputError
from .adapters import adapter_for, require_encoder
from .handle import ATTENTION_CHOICES, ClassifierHandle, ModelHandle, QAModelHandle, from_model
from .store import CARD_FILE, read_card

DTYPE_NAMES = ("float32", "float16", "bfloat16")


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """None, a torch floating dtype, or its name ("float32", "float16", "bfloat16")."""
    if dtype is None or isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and dtype in DTYPE_NAMES:
        return getattr(torch, dtype)
    raise BertInsightInputError(f"dtype={dtype!r}; pass None (the checkpoint's own), one of {DTYPE_NAMES} "
                                "or the matching torch dtype.")


def check_attention(attention: str) -> str:
    if attention not in ATTENTION_CHOICES:
        raise BertInsightInputError(
            f"attention={attention!r}; use one of {ATTENTION_CHOICES} ('eager' for attention maps and head "
            "ablation, 'sdpa' otherwise).")
    return attention


def _config_for(source: str, display_name: str, local: bool):
    from transformers import AutoConfig

    if local and not (Path(source) / "config.json").is_file():
        raise BertInsightInputError(
            f"{source} has no config.json, so it is not a saved model. Pass the directory that "
            "save_pretrained (or bert_insight's save_checkpoint) wrote, or a hub name.")
    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        where = "the directory" if local else "the hub (needs internet once)"
        raise BertInsightInputError(
            f"Could not load a model config for {display_name!r} from {where}: {error.__class__.__name__}. "
            "Without internet, pass a local directory, or None for the offline default model."
        ) from error


def _weights(auto_class, source: str, kwargs: dict, display_name: str):
    from transformers.utils import logging as hf_logging

    # transformers prints a table of newly initialised heads; we check the loading info ourselves
    # (and refuse or allow the new head explicitly), so the table is noise.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return _weights_quietly(auto_class, source, kwargs, display_name)
    finally:
        hf_logging.set_verbosity(verbosity)


def _weights_quietly(auto_class, source: str, kwargs: dict, display_name: str):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            return _from_pretrained_with_info(auto_class, source, kwargs)
        except (OSError, RuntimeError, ValueError, EOFError) as error:
            # safetensors raises its own SafetensorError (a subclass of none of these) on truncated files
            raise _weights_error(display_name, error) from error
        except Exception as error:
            if type(error).__name__ == "SafetensorError":
                raise _weights_error(display_name, error) from error
            raise


def _tokenizer(source: str, display_name: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise BertInsightInputError(
            f"Could not load the tokenizer of {display_name!r}: {error.__class__.__name__}. Save the tokenizer "
            "next to the weights (tokenizer.save_pretrained(directory)).") from error


def _load_kwargs(attention: str, dtype) -> dict:
    kwargs = {"attn_implementation": check_attention(attention)}
    torch_dtype = resolve_dtype(dtype)
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    return kwargs


def load_checkpoint(
    source: str,
    *,
    device: str | torch.device = "auto",
    attention: str = "sdpa",
    dtype: torch.dtype | str | None = None,
    allow_new_qa_head: bool = False,
    display_name: str | None = None,
) -> QAModelHandle:
    """A handle for the QA checkpoint at ``source``: an existing local directory or a hub name.

    The directory's ``model_card.json`` (if any) becomes the handle's card. A checkpoint without a
    trained QA head is refused unless ``allow_new_qa_head``.
    """
    from transformers import AutoModelForQuestionAnswering

    kwargs = _load_kwargs(attention, dtype)
    display_name = display_name or source
    local = Path(source).is_dir()
    adapter = require_encoder(adapter_for(_config_for(source, display_name, local)), "Question answering",
                              display_name)
    card = read_card(source) if local else {}
    model, info = _weights(AutoModelForQuestionAnswering, source, kwargs, display_name)
    missing = set(info.get("missing_keys", []))
    if any(key.startswith(adapter.qa_head_path) for key in missing) and not allow_new_qa_head:
        raise BertInsightInputError(
            f"{display_name!r} has no trained question-answering head (qa_outputs was newly initialised). "
            "Use a *ForQuestionAnswering checkpoint, fine-tune it with bert_insight.finetune_qa, or pass "
            "allow_new_qa_head=True to analyse the untrained head anyway."
        )
    return from_model(model, _tokenizer(source, display_name), name=display_name, device=device, card=card)


#: Parameter-name prefixes of the sequence-classification heads of the supported families.
CLASSIFIER_HEAD_PREFIXES = ("classifier.", "pre_classifier.")


def load_classifier_checkpoint(
    source: str,
    *,
    task: str | None = None,
    device: str | torch.device = "auto",
    attention: str = "sdpa",
    dtype: torch.dtype | str | None = None,
    allow_new_classifier_head: bool = False,
    display_name: str | None = None,
) -> ClassifierHandle:
    """A :class:`ClassifierHandle` for the sequence-classification checkpoint at ``source`` (a local
    directory or a hub name) for ``task`` (None: the task the card or config names).

    A checkpoint without a trained head for the task (a base model, or a head of another size) is
    refused unless ``allow_new_classifier_head``: then a new, randomly initialised head of the task's size
    is attached (the seed is torch's global one).
    """
    from transformers import AutoModelForSequenceClassification

    from ..data.glue import glue_task

    kwargs = _load_kwargs(attention, dtype)
    display_name = display_name or source
    local = Path(source).is_dir()
    config = _config_for(source, display_name, local)
    require_encoder(adapter_for(config), "Sequence classification", display_name)
    card = read_card(source) if local else {}
    task = task or card.get("task") or getattr(config, "finetuning_task", None)
    if not task:
        raise BertInsightInputError(
            f"{display_name!r} does not say which task it classifies; pass task= (e.g. 'mrpc', 'stsb', 'sst2').")
    try:
        spec = glue_task(task)
    except BertInsightInputError:
        spec = None
    trained_as_classifier = any(str(name).endswith("ForSequenceClassification")
                                for name in (getattr(config, "architectures", None) or []))
    if spec is not None:
        if trained_as_classifier and int(config.num_labels) != spec.num_labels:
            if not allow_new_classifier_head:
                raise BertInsightInputError(
                    f"{display_name!r} has a classifier head with {config.num_labels} outputs; GLUE {spec.name} needs "
                    f"{spec.num_labels}. Load it for its own task, or pass allow_new_classifier_head=True to "
                    "replace the head with an untrained one of the right size.")
            kwargs["ignore_mismatched_sizes"] = True
        # The task's head size and label names go into the config (transformers 5 takes no such kwargs).
        config.num_labels = spec.num_labels
        config.finetuning_task = spec.name
        names = spec.label_names or ("score",)
        config.id2label = dict(enumerate(names))
        config.label2id = {label: i for i, label in enumerate(names)}
        kwargs["config"] = config
    model, info = _weights(AutoModelForSequenceClassification, source, kwargs, display_name)
    missing = [key for key in info.get("missing_keys", []) if key.startswith(CLASSIFIER_HEAD_PREFIXES)]
    mismatched = info.get("mismatched_keys", [])
    if (missing or mismatched) and not allow_new_classifier_head:
        raise BertInsightInputError(
            f"{display_name!r} has no trained classifier head for {task!r} (the head was newly initialised). "
            "Fine-tune it with bert_insight.finetune_classifier, or pass allow_new_classifier_head=True to "
            "analyse the untrained head anyway.")
    return from_model(model, _tokenizer(source, display_name), name=display_name, device=device, card=card,
                      task=spec.name if spec is not None else task)


def load_base_checkpoint(
    source: str,
    *,
    device: str | torch.device = "auto",
    attention: str = "sdpa",
    dtype: torch.dtype | str | None = None,
    display_name: str | None = None,
) -> ModelHandle:
    """A plain :class:`ModelHandle` for the model at ``source`` (a local directory or a hub name) without
    a task head: ``AutoModel`` gives the bare encoder or decoder (``BertModel``, ``GPT2Model``; a task
    head saved with the weights is left out). A tokenizer without a pad token (GPT-2's) gets its
    end-of-text token as pad token, so batches can be padded (on the right, which causal attention never
    sees)."""
    from transformers import AutoModel

    kwargs = _load_kwargs(attention, dtype)
    display_name = display_name or source
    local = Path(source).is_dir()
    adapter = adapter_for(_config_for(source, display_name, local))
    card = read_card(source) if local else {}
    model, _ = _weights(AutoModel, source, kwargs, display_name)
    tokenizer = _tokenizer(source, display_name)
    if adapter.causal and getattr(tokenizer, "pad_token", None) is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return from_model(model, tokenizer, name=display_name, device=device, card=card)


def _weights_error(name: str, error: Exception) -> BertInsightInputError:
    return BertInsightInputError(
        f"The weights of {name!r} cannot be read ({error.__class__.__name__}: {str(error)[:200]}); the file is "
        "probably truncated or corrupt. Save, copy or download the model again (for the default model: "
        "`bert-insight model build --rebuild` or `bert-insight model import PATH --replace`).")


def _from_pretrained_with_info(auto_class, source: str, kwargs: dict):
    try:
        return auto_class.from_pretrained(source, output_loading_info=True, **kwargs)
    except TypeError:
        # transformers 4.x before the `dtype` rename
        if "dtype" in kwargs:
            kwargs = {**kwargs, "torch_dtype": kwargs.pop("dtype")}
        return auto_class.from_pretrained(source, output_loading_info=True, **kwargs)


def save_checkpoint(handle: ModelHandle, output_dir: str | os.PathLike) -> Path:
    """Write the model (``save_pretrained``), its tokenizer and ``model_card.json`` to ``output_dir``."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    handle.model.save_pretrained(output)
    handle.tokenizer.save_pretrained(output)
    (output / CARD_FILE).write_text(json.dumps(dict(handle.card), indent=1, default=str))
    return output
