"""Per-head attention statistics over a data set (Kovaleva et al. 2019, sections 4.3 and 4.5-4.6,
Figures 5-7), each a tidy frame with one row per (layer, head).

Every statistic streams: maps are produced batch by batch (:func:`~bert_insight.attention.maps.iter_attention`)
and folded into per-head running sums, so the peak memory is one batch's maps whatever the number of
examples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BertInsightInputError
from ..frames import frame_attrs
from ..models.handle import ClassifierHandle, ModelHandle, QAModelHandle, require_model_handle
from .maps import TOKEN_KINDS, attention_inputs, iter_attention, resolve_selection

SPECIAL_TOKEN_COLUMNS = ("task", "layer", "head", *(f"to_{kind}" for kind in TOKEN_KINDS),
                         *(f"cls_query_to_{kind}" for kind in TOKEN_KINDS), "n_examples")
SIMILARITY_COLUMNS = ("task", "layer", "head", "cosine_similarity", "n_examples")


def task_label(handle: ModelHandle) -> str:
    """What the ``task`` column says for a handle's rows: the classifier's task, "qa", or "encoder"."""
    if isinstance(handle, ClassifierHandle):
        return handle.task
    return "qa" if isinstance(handle, QAModelHandle) else "encoder"


def head_columns(layers: tuple[int, ...], heads: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The layer and head columns of a per-head frame, in (layer, head) order."""
    layer_grid, head_grid = np.meshgrid(np.array(layers), np.array(heads), indexing="ij")
    return {"layer": layer_grid.ravel(), "head": head_grid.ravel()}


def special_token_attention(
    handle: ModelHandle,
    examples: pd.DataFrame,
    *,
    layers="all",
    heads="all",
    predictions: pd.DataFrame | None = None,
    max_length: int | None = None,
    doc_stride: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """How much each head attends to [CLS], to the separators, to punctuation and to the other tokens
    (Figure 6), and where the [CLS] query itself looks (Figure 7 is its last layer).

    For every example and head, the attention of each query is summed over the keys of a kind
    (cls; sep: every separator, RoBERTa's </s> too; punctuation; other), then averaged over the
    example's queries; those shares are averaged over examples. Each row's four ``to_*`` values sum to
    1, as do its four ``cls_query_to_*`` values (the [CLS] query's row of the map, split by key kind).

    Returns columns task (the classifier's task, "qa", or "encoder"), layer, head, to_cls, to_sep,
    to_punctuation, to_other, cls_query_to_cls, cls_query_to_sep, cls_query_to_punctuation,
    cls_query_to_other, n_examples.
    """
    layers, heads = resolve_selection(handle, layers, heads)
    inputs = attention_inputs(handle, examples, predictions=predictions, max_length=max_length,
                              doc_stride=doc_stride, progress=False)
    shape = (len(layers), len(heads))
    to_kind = {kind: np.zeros(shape) for kind in TOKEN_KINDS}
    cls_to_kind = {kind: np.zeros(shape) for kind in TOKEN_KINDS}
    count = 0
    for _, tokens, weights in iter_attention(handle, inputs, layers=layers, heads=heads, batch_size=batch_size,
                                             progress=progress):
        kinds = tokens["kind"].to_numpy()
        cls_positions = np.flatnonzero(kinds == "cls")
        for kind in TOKEN_KINDS:
            keys = kinds == kind
            mass = weights[..., keys].sum(axis=-1)  # (L, H, T): each query's attention to this kind
            to_kind[kind] += mass.mean(axis=-1)
            if len(cls_positions):
                cls_to_kind[kind] += mass[..., cls_positions[0]]
        count += 1
    columns = {"task": task_label(handle), **head_columns(layers, heads)}
    for kind in TOKEN_KINDS:
        columns[f"to_{kind}"] = (to_kind[kind] / count).ravel()
    for kind in TOKEN_KINDS:
        columns[f"cls_query_to_{kind}"] = (cls_to_kind[kind] / count).ravel()
    columns["n_examples"] = count
    frame = pd.DataFrame(columns, columns=list(SPECIAL_TOKEN_COLUMNS))
    frame.attrs = frame_attrs(handle, "special_token_attention", {
        "layers": list(layers), "heads": list(heads), "max_length": max_length, "doc_stride": doc_stride})
    return frame


def attention_similarity(
    handle_a: ModelHandle,
    handle_b: ModelHandle,
    examples: pd.DataFrame,
    *,
    layers="all",
    heads="all",
    predictions: pd.DataFrame | None = None,
    max_length: int | None = None,
    doc_stride: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """Per head, the cosine similarity of two models' flattened attention maps on the same inputs,
    averaged over examples (Figure 5: pre-trained against fine-tuned; 1 = the head did not change).

    Both models must share the tokenizer (the same token ids for every input) and the layer and head
    counts. QA examples take the windows of whichever handle is a QA handle (``handle_b`` first).

    Returns columns task (``handle_b``'s task label), layer, head, cosine_similarity, n_examples.
    """
    layers, heads = resolve_selection(handle_a, layers, heads)
    require_model_handle(handle_b, "attention verbs")
    if (handle_a.num_layers, handle_a.num_heads) != (handle_b.num_layers, handle_b.num_heads):
        raise BertInsightInputError(
            f"The two models differ in shape ({handle_a.num_layers} x {handle_a.num_heads} against "
            f"{handle_b.num_layers} x {handle_b.num_heads} layers x heads); compare models of one architecture, "
            "e.g. a checkpoint before and after fine-tuning.")
    chooser = handle_b if isinstance(handle_b, QAModelHandle) or not isinstance(handle_a, QAModelHandle) else handle_a
    inputs = attention_inputs(chooser, examples, predictions=predictions, max_length=max_length,
                              doc_stride=doc_stride, progress=False)
    other = handle_a if chooser is handle_b else handle_b
    vocabulary = getattr(other.tokenizer, "get_vocab", lambda: None)()
    if vocabulary is not None and vocabulary != chooser.tokenizer.get_vocab():
        raise BertInsightInputError(
            f"{handle_a.name!r} and {handle_b.name!r} have different tokenizers, so their maps are over different "
            "tokens; compare two models that share one tokenizer.")
    total = np.zeros((len(layers), len(heads)))
    count = 0
    stream = dict(layers=layers, heads=heads, batch_size=batch_size)
    for (_, _, first), (_, _, second) in zip(iter_attention(handle_a, inputs, progress=progress, **stream),
                                             iter_attention(handle_b, inputs, progress=False, **stream)):
        a = first.reshape(len(layers), len(heads), -1).astype(np.float64)
        b = second.reshape(len(layers), len(heads), -1).astype(np.float64)
        total += (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
        count += 1
    frame = pd.DataFrame({"task": task_label(handle_b), **head_columns(layers, heads),
                          "cosine_similarity": (total / count).ravel(), "n_examples": count},
                         columns=list(SIMILARITY_COLUMNS))
    frame.attrs = frame_attrs(handle_b, "attention_similarity", {
        "model_a": handle_a.name, "layers": list(layers), "heads": list(heads), "max_length": max_length,
        "doc_stride": doc_stride})
    return frame
