"""Loading a QA checkpoint (a local directory or a Hugging Face hub name) into a handle, and saving one.

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
from .adapters import adapter_for
from .handle import ATTENTION_CHOICES, QAModelHandle, from_model
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
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    check_attention(attention)
    torch_dtype = resolve_dtype(dtype)
    display_name = display_name or source
    local = Path(source).is_dir()
    if local and not (Path(source) / "config.json").is_file():
        raise BertInsightInputError(
            f"{source} has no config.json, so it is not a saved model. Pass the directory that "
            "save_pretrained (or bert_insight's save_checkpoint) wrote, or a hub name.")
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        where = "the directory" if local else "the hub (needs internet once)"
        raise BertInsightInputError(
            f"Could not load a model config for {display_name!r} from {where}: {error.__class__.__name__}. "
            "Without internet, pass a local directory, or None for the offline default model."
        ) from error
    adapter = adapter_for(config)
    card = read_card(source) if local else {}
    kwargs = {"attn_implementation": attention}
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            model, info = _from_pretrained_with_info(AutoModelForQuestionAnswering, source, kwargs)
        except (OSError, RuntimeError, ValueError, EOFError) as error:
            # safetensors raises its own SafetensorError (a subclass of none of these) on truncated files
            raise _weights_error(display_name, error) from error
        except Exception as error:
            if type(error).__name__ == "SafetensorError":
                raise _weights_error(display_name, error) from error
            raise
    missing = set(info.get("missing_keys", []))
    if any(key.startswith(adapter.qa_head_path) for key in missing) and not allow_new_qa_head:
        raise BertInsightInputError(
            f"{display_name!r} has no trained question-answering head (qa_outputs was newly initialised). "
            "Use a *ForQuestionAnswering checkpoint, fine-tune it with bert_insight.finetune_qa, or pass "
            "allow_new_qa_head=True to analyse the untrained head anyway."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise BertInsightInputError(
            f"Could not load the tokenizer of {display_name!r}: {error.__class__.__name__}. Save the tokenizer "
            "next to the weights (tokenizer.save_pretrained(directory)).") from error
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


def save_checkpoint(handle: QAModelHandle, output_dir: str | os.PathLike) -> Path:
    """Write the model (``save_pretrained``), its tokenizer and ``model_card.json`` to ``output_dir``."""
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    handle.model.save_pretrained(output)
    handle.tokenizer.save_pretrained(output)
    (output / CARD_FILE).write_text(json.dumps(dict(handle.card), indent=1, default=str))
    return output
