"""``load_qa_model`` and ``load_classifier``: a hub name, a local directory, or None for an offline
default, into a handle; ``load_base_model``: a model without a task head (an encoder, or GPT-2) by hub
name or local directory.

This is the top of the models package: it may build the default model (models.default), which in turn
only uses the lower modules (handle, checkpoint, store, finetune), so no module below imports this one.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import BertInsightInputError
from .checkpoint import (
    check_attention,
    load_base_checkpoint,
    load_checkpoint,
    load_classifier_checkpoint,
    resolve_dtype,
)
from .default import DEFAULT_DISPLAY_NAME, ensure_default_model
from .default_classifiers import load_default_classifier
from .handle import ClassifierHandle, ModelHandle, QAModelHandle


#: Names of offline defaults other than None (a directory of the same name in the working directory wins).
OFFLINE_QA_MODELS = ("squad2", "babi")


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
    """Load a question-answering model into a :class:`~bert_insight.models.handle.QAModelHandle`.

    ``name_or_path`` is a Hugging Face hub name (downloaded by ``from_pretrained``; needs internet
    once), a local directory, or None for the offline default (MiniLM-L6 fine-tuned on SQuAD 1.1,
    built on first use or imported with ``bert-insight model import``; see docs/default_model.md).

    ``attention="eager"`` is needed for attention maps and head ablation; "sdpa" is faster otherwise.
    ``dtype`` is None (the checkpoint's own), "float32", "float16" or "bfloat16". A checkpoint without
    a trained QA head is refused unless ``allow_new_qa_head=True``. ``"squad2"`` is the offline SQuAD 2.0
    default (the SQuAD 1.1 default fine-tuned on the bundled SQuAD 2.0 training articles, with a tuned
    null threshold that ``predict`` uses; built on first use, ``bert-insight model build --squad2``).
    ``"babi"`` is the offline bAbI model (MiniLM-L6 fine-tuned on all 20 bAbI tasks, span prediction over
    contexts ending with the candidate answers; built on first use, ``bert-insight model build --babi``).
    """
    check_attention(attention)
    resolve_dtype(dtype)
    if name_or_path is None:
        path = ensure_default_model()
        return load_checkpoint(str(path), device=device, attention=attention, dtype=dtype,
                               display_name=DEFAULT_DISPLAY_NAME)
    if isinstance(name_or_path, str) and name_or_path in OFFLINE_QA_MODELS and not Path(name_or_path).is_dir():
        if name_or_path == "babi":
            from .default_babi import BABI_DISPLAY_NAME, ensure_babi_model

            return load_checkpoint(str(ensure_babi_model()), device=device, attention=attention, dtype=dtype,
                                   display_name=BABI_DISPLAY_NAME)
        from .default_squad2 import SQUAD2_DISPLAY_NAME, ensure_squad2_model

        return load_checkpoint(str(ensure_squad2_model()), device=device, attention=attention, dtype=dtype,
                               display_name=SQUAD2_DISPLAY_NAME)
    name, source = _checked_source(name_or_path, "load_qa_model", "deepset/bert-base-cased-squad2")
    return load_checkpoint(source, device=device, attention=attention, dtype=dtype,
                           allow_new_qa_head=allow_new_qa_head, display_name=name)


def _checked_source(name_or_path, verb: str, example: str, *, offline_default: bool = True) -> tuple[str, str]:
    """(display name, what from_pretrained gets) for a hub name or an existing local directory;
    ``offline_default``: whether the messages may suggest None (the verb's offline default)."""
    or_none = ", or None for the offline default" if offline_default else ""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise BertInsightInputError(
            f"{verb} takes a hub name or a local directory as a string or path (got "
            f"{type(name_or_path).__name__}); for a model already in memory use bert_insight.from_model(model, "
            "tokenizer)."
        )
    name = os.fspath(name_or_path)
    if not name.strip():
        raise BertInsightInputError(f"{verb} got an empty name; pass a hub name or a directory{or_none}.")
    expanded = os.path.expanduser(name)
    if _looks_like_local_path(name) and not Path(expanded).is_dir():
        raise BertInsightInputError(
            f"Local model path {name!r} does not exist (or is not a directory). Check the path, or pass "
            f"a Hugging Face hub name such as {example!r}{or_none}."
        )
    return name, expanded if Path(expanded).is_dir() else name


def load_classifier(
    name_or_path: str | os.PathLike | None = None,
    *,
    task: str | None = None,
    device: str | torch.device = "auto",
    attention: str = "sdpa",
    dtype: torch.dtype | str | None = None,
    allow_new_classifier_head: bool = False,
    glue_dir: str | os.PathLike | None = None,
) -> ClassifierHandle:
    """Load a sentence(-pair) classifier into a :class:`~bert_insight.models.handle.ClassifierHandle`.

    ``name_or_path`` is a hub name, a local directory, or None for the offline default of ``task``
    (MiniLM-L6 fine-tuned on GLUE MRPC, STS-B, SST-2, RTE or QNLI; built on first use, from
    ``glue_dir`` or the bundled QNLI data; see docs/classifiers.md). ``task`` is a GLUE task name
    ("mrpc", "stsb", "sst2", "rte", "qnli", "qqp", "mnli") or your own task's name; None takes the
    task the checkpoint's card or config names.

    ``attention``, ``dtype`` and ``device`` mean what they mean for :func:`load_qa_model`. A checkpoint
    without a trained head for the task (e.g. a base model to fine-tune) is refused unless
    ``allow_new_classifier_head=True``.
    """
    check_attention(attention)
    resolve_dtype(dtype)
    if name_or_path is None:
        if task is None:
            raise BertInsightInputError(
                "load_classifier() needs task= for the offline default (one of 'mrpc', 'stsb', 'sst2', 'rte', "
                "'qnli'), or a hub name / local directory.")
        return load_default_classifier(task, device=device, attention=attention, dtype=dtype, glue_dir=glue_dir)
    name, source = _checked_source(name_or_path, "load_classifier", "textattack/bert-base-uncased-MRPC")
    return load_classifier_checkpoint(source, task=task, device=device, attention=attention, dtype=dtype,
                                      allow_new_classifier_head=allow_new_classifier_head, display_name=name)


def load_base_model(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device = "auto",
    attention: str = "sdpa",
    dtype: torch.dtype | str | None = None,
) -> ModelHandle:
    """Load a model without a task head into a plain :class:`~bert_insight.models.handle.ModelHandle`.

    ``name_or_path`` is a Hugging Face hub name (``"gpt2"``, ``"bert-base-uncased"``; downloaded by
    ``from_pretrained``, needs internet once) or a local directory that ``save_pretrained`` wrote. Any
    supported encoder family (albert, bert, distilbert, electra, roberta) or GPT-2 loads through
    ``AutoModel``, so a task head saved with the weights is left out. The handle serves the verbs that
    read hidden states (:func:`bert_insight.hidden_states`: one window per example, the question
    followed by the context); GPT-2 handles serve only those (docs/gpt2.md). A GPT-2 tokenizer without
    a pad token gets its end-of-text token as pad token.

    ``attention`` ("sdpa" or "eager"), ``dtype`` (None, "float32", "float16", "bfloat16") and ``device``
    mean what they mean for :func:`load_qa_model`.
    """
    check_attention(attention)
    resolve_dtype(dtype)
    if name_or_path is None:
        raise BertInsightInputError(
            "load_base_model needs a hub name such as 'gpt2' or 'bert-base-uncased', or a local directory; the "
            "offline default is a QA model: use bert_insight.load_qa_model() for it.")
    name, source = _checked_source(name_or_path, "load_base_model", "gpt2", offline_default=False)
    return load_base_checkpoint(source, device=device, attention=attention, dtype=dtype, display_name=name)
