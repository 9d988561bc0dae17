"""Self-attention maps (Kovaleva et al. 2019): per example, the (layer, head, query, key) weights as a
numpy array with the tokens frame beside it.

Maps come from the model's own forward with ``output_attentions=True``. transformers 5 returns the
weights only from the eager attention implementation, so :func:`eager_attention` switches the model
to it for the duration of one call and restores the user's choice in ``finally`` (the handle is left
as it was). Statistics over a data set go through :func:`iter_attention`, which yields one example at
a time from batches of similar-length inputs: peak memory is one batch's maps, whatever the size of
the data set.

Inputs: QA examples (question, context) use the window holding the predicted answer, the same
windows as :func:`bert_insight.predict` and :func:`bert_insight.tokens` (so ``token_index`` joins);
sentence examples (text_a, text_b: ``bert_insight.load_glue``) one input per example, truncated to
``max_length`` tokens. Any handle reads sentence examples; QA examples need a QA handle.

Shapes: a map array is (n_layers, n_heads, T, T), query by key, T the example's own length (no
padding), float32; rows sum to 1 over the keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..data.examples import validate_examples
from ..data.glue import validate_sentence_examples
from ..device import release_freed_memory
from ..errors import BertInsightInputError
from ..frames import SENTENCE_TOKEN_COLUMNS, frame_attrs
from ..layers import resolve_layers
from ..models.adapters import require_encoder
from ..models.handle import ClassifierHandle, ModelHandle, QAModelHandle, require_model_handle
from ..text import is_punctuation
from ..tokens_frame import answer_windows, window_tokens
from ..windows import DEFAULT_SENTENCE_MAX_LENGTH, QAWindow, encode_sentences, length_sorted_batches

#: Token kinds every attention statistic groups keys by (``kind`` column of the tokens frames here).
TOKEN_KINDS = ("cls", "sep", "punctuation", "other")


@contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` with eager attention inside the block (it returns attention weights only then on
    transformers 5); its own implementation is restored afterwards, also after an exception."""
    config = model.config
    previous = getattr(config, "_attn_implementation", None)
    if previous == "eager":
        yield
        return
    setter = getattr(model, "set_attn_implementation", None)
    can_switch = getattr(model, "_can_set_attn_implementation", None)
    # transformers 5 switches the attention function at call time; 4.x models pick their attention
    # classes when built (and their SDPA classes fall back to the eager path when asked for weights),
    # so there only the config flag is set, for code that reads it.
    dynamic = setter is not None and (can_switch is None or bool(can_switch()))
    try:
        if dynamic:
            setter("eager")
        else:
            config._attn_implementation = "eager"
        yield
    finally:
        if dynamic and previous is not None:
            setter(previous)
        else:
            config._attn_implementation = previous


# ---- inputs --------------------------------------------------------------------------------------------
def is_sentence_frame(examples) -> bool:
    return isinstance(examples, pd.DataFrame) and "text_a" in examples.columns


def _token_kinds(tokenizer, window: QAWindow, pieces: list[str]) -> list[str]:
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    kinds = []
    for token_id, piece, sequence in zip(window.input_ids, pieces, window.sequence_ids):
        if token_id == cls_id and sequence is None:
            kinds.append("cls")
        elif token_id == sep_id and sequence is None:
            kinds.append("sep")
        elif sequence is not None and is_punctuation(piece.lstrip("Ġ▁#")):
            kinds.append("punctuation")
        else:
            kinds.append("other")
    return kinds


def sentence_tokens(tokenizer, window: QAWindow, text_a: str, text_b: str | None) -> pd.DataFrame:
    """The tokens frame of one sentence(-pair) input: columns of ``frames.SENTENCE_TOKEN_COLUMNS``
    (example_id, token_index, token, word_index, word, segment text_a / text_b / special, char_start,
    char_end, kind cls / sep / punctuation / other)."""
    pieces = tokenizer.convert_ids_to_tokens(window.input_ids)
    texts = {0: text_a, 1: text_b or ""}
    kinds = _token_kinds(tokenizer, window, pieces)
    rows = []
    for index, (piece, sequence, word, (start, end), kind) in enumerate(
            zip(pieces, window.sequence_ids, window.word_ids, window.offsets, kinds)):
        if sequence is None:
            rows.append((window.example_id, index, piece, -1, piece, "special", -1, -1, kind))
        else:
            rows.append((window.example_id, index, piece, int(word), texts[sequence][start:end],
                         "text_a" if sequence == 0 else "text_b", int(start), int(end), kind))
    return pd.DataFrame(rows, columns=list(SENTENCE_TOKEN_COLUMNS))


def attention_inputs(handle: ModelHandle, examples: pd.DataFrame, *, predictions=None,
                     max_length: int | None = None, doc_stride: int | None = None,
                     progress: bool = False) -> list[tuple[QAWindow, pd.DataFrame]]:
    """One (window, tokens frame) per example, in example order. The tokens frame of a QA example is
    :func:`bert_insight.tokens`' rows plus ``kind``; of a sentence example :func:`sentence_tokens`."""
    require_model_handle(handle, "attention verbs")
    if is_sentence_frame(examples):
        if predictions is not None or doc_stride is not None:
            raise BertInsightInputError("predictions and doc_stride are for QA examples; sentence examples "
                                        "take max_length only.")
        task = handle.task if isinstance(handle, ClassifierHandle) else _frame_task_or_none(examples)
        if task is not None:
            frame = _validated_sentences(handle, examples, task)
        else:
            frame = validate_sentence_examples(examples, task=_generic_task(examples), allow_empty=False,
                                               require_labels=False)
        handle.check_fits(max_length or DEFAULT_SENTENCE_MAX_LENGTH)
        windows = encode_sentences(handle.tokenizer, frame, max_length=max_length or DEFAULT_SENTENCE_MAX_LENGTH)
        return [(window, sentence_tokens(handle.tokenizer, window, row.text_a, row.text_b))
                for window, row in zip(windows, frame.itertuples())]
    if not isinstance(handle, QAModelHandle):
        raise BertInsightInputError(
            f"QA examples (question, context) need a QA handle to choose their windows; {handle.name!r} is a "
            f"{type(handle).__name__}. Pass sentence examples (text_a, text_b) for it, or load_qa_model().")
    frame = validate_examples(examples, allow_empty=False)
    chosen, _, _ = answer_windows(handle, frame, predictions=predictions, max_length=max_length,
                                  doc_stride=doc_stride, progress=progress)
    inputs = []
    for example, window, span in chosen:
        tokens = window_tokens(handle.tokenizer, window, example["question"], example["context"], span)
        tokens["kind"] = _token_kinds(handle.tokenizer, window, tokens["token"].tolist())
        inputs.append((window, tokens))
    return inputs


def _frame_task_or_none(examples: pd.DataFrame) -> str | None:
    if "task" in examples.columns and len(examples) and isinstance(examples["task"].iloc[0], str):
        return str(examples["task"].iloc[0])
    return examples.attrs.get("task")


def _validated_sentences(handle, examples, task):
    from ..classification import handle_task

    if isinstance(handle, ClassifierHandle):
        spec = handle_task(handle, examples)
    else:
        from ..data.glue import glue_task

        spec = glue_task(task)
    return validate_sentence_examples(examples, task=spec, allow_empty=False, require_labels=False)


def _generic_task(examples: pd.DataFrame):
    """A task description for sentence examples of no named task (labels are not needed for maps)."""
    from ..data.glue import GlueTask

    paired = "text_b" in examples.columns and bool(examples["text_b"].map(lambda t: isinstance(t, str)).any())
    return GlueTask("sentences", "", ("0", "1"), paired, (), (), "")


# ---- maps ----------------------------------------------------------------------------------------------
def check_heads(heads, num_heads: int) -> tuple[int, ...]:
    """``"all"`` or head indices in [0, num_heads) into a sorted tuple; one clear error otherwise."""
    if isinstance(heads, str):
        if heads == "all":
            return tuple(range(num_heads))
        raise BertInsightInputError(f"heads={heads!r}; pass 'all' or a list of head indices in 0..{num_heads - 1}.")
    values = [heads] if isinstance(heads, (int, np.integer)) else list(heads)
    if not values:
        raise BertInsightInputError("heads is empty; pass 'all' or at least one head index.")
    for head in values:
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= head < num_heads:
            raise BertInsightInputError(
                f"head {head!r} is out of range: the model has {num_heads} heads per layer, 0..{num_heads - 1}.")
    return tuple(sorted(set(int(head) for head in values)))


def resolve_selection(handle: ModelHandle, layers, heads) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The block indices and head indices an attention verb collects (checks the handle, then both)."""
    require_model_handle(handle, "attention verbs")
    require_encoder(handle.adapter, "Attention maps and head ablation", handle.name)
    return tuple(resolve_layers(layers, handle.num_layers, axis="blocks")), check_heads(heads, handle.num_heads)


def iter_attention(handle: ModelHandle, inputs: list[tuple[QAWindow, pd.DataFrame]], *,
                   layers: tuple[int, ...], heads: tuple[int, ...], batch_size: int,
                   progress: bool) -> Iterator[tuple[QAWindow, pd.DataFrame, np.ndarray]]:
    """For each input, its window, tokens frame and maps (len(layers), len(heads), T, T), in batch order
    (shortest inputs first: the same order for the same inputs, so two models' streams zip).

    Batches hold inputs of similar length (little padding); only one batch's maps are alive at a time.
    """
    from tqdm.auto import tqdm

    batches = length_sorted_batches([window for window, _ in inputs], batch_size)
    head_index = torch.tensor(heads)
    model = handle.model
    for batch in tqdm(batches, desc="attention", unit="batch", disable=not progress):
        # The contexts close before anything is yielded: a paused or abandoned generator must not leave
        # the caller in inference mode or the model in eager attention.
        with eager_attention(model), torch.inference_mode():
            windows = [inputs[i][0] for i in batch]
            output = model(**handle.batch_inputs(windows), output_attentions=True)
            if not output.attentions or output.attentions[0] is None:
                raise BertInsightInputError(
                    f"{handle.name!r} returned no attention weights even with eager attention; its family may "
                    "not support output_attentions.")
            attentions = [output.attentions[layer] for layer in layers]
            del output
            if len(heads) != handle.num_heads:
                attentions = [weights[:, head_index] for weights in attentions]
            # numpy views of the per-layer tensors (no copy for float32 on the CPU): the batch's maps exist
            # once, and each row is copied out, unpadded, only when it is yielded.
            arrays = [weights.float().cpu().numpy() for weights in attentions]
            del attentions
        for row, index in enumerate(batch):
            window, tokens = inputs[index]
            size = len(window)
            yield window, tokens, np.stack([weights[row, :, :size, :size] for weights in arrays])
        del arrays
        release_freed_memory()


@dataclass(frozen=True)
class ExampleAttention:
    """One example's maps: ``weights`` (n_layers, n_heads, T, T) float32 for ``layers`` x ``heads``,
    query by key, and ``tokens`` (its tokens frame, one row per position)."""

    example_id: str
    weights: np.ndarray
    tokens: pd.DataFrame
    layers: tuple[int, ...]
    heads: tuple[int, ...]

    def map(self, layer: int, head: int) -> np.ndarray:
        """The (T, T) map of one head (model layer and head numbers, not positions in the arrays)."""
        if layer not in self.layers or head not in self.heads:
            raise BertInsightInputError(
                f"layer {layer}, head {head} was not collected; these maps hold layers {list(self.layers)} "
                f"and heads {list(self.heads)}.")
        return self.weights[self.layers.index(layer), self.heads.index(head)]


class AttentionMaps(Mapping):
    """Attention maps of several examples: a read-only mapping example_id -> :class:`ExampleAttention`,
    in example order, with ``attrs`` (model, fingerprint, parameters) like the library's frames."""

    def __init__(self, examples: list[ExampleAttention], attrs: dict):
        self._examples = {example.example_id: example for example in examples}
        self.attrs = attrs

    def __getitem__(self, example_id: str) -> ExampleAttention:
        try:
            return self._examples[example_id]
        except KeyError:
            raise KeyError(f"no maps for example {example_id!r}; this holds {list(self._examples)[:5]}...") from None

    def __iter__(self):
        return iter(self._examples)

    def __len__(self) -> int:
        return len(self._examples)

    def tokens(self) -> pd.DataFrame:
        """Every example's tokens frame, concatenated."""
        return pd.concat([example.tokens for example in self._examples.values()], ignore_index=True)

    def __repr__(self) -> str:
        first = next(iter(self._examples.values()), None)
        shape = "" if first is None else f", layers={list(first.layers)}, heads={len(first.heads)}"
        return f"AttentionMaps({len(self)} examples{shape}, model={self.attrs.get('model')!r})"


def attention_maps(
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
) -> AttentionMaps:
    """Self-attention maps of every example, kept in memory (for a few examples: views, inspection;
    statistics over a data set stream instead, see :mod:`bert_insight.attention.stats`).

    ``layers`` are block indices ("all" = 0..L-1; see :func:`bert_insight.layers.resolve_layers`),
    ``heads`` "all" or head indices. QA examples use the analysis windows (``predictions`` choose them,
    computed when None; ``max_length``/``doc_stride`` as in :func:`bert_insight.tokens`); sentence
    examples are cut at ``max_length`` (default 128) tokens.

    Returns an :class:`AttentionMaps`: example_id -> ExampleAttention with ``weights`` (n_layers,
    n_heads, T, T) float32 and ``tokens`` (the QA tokens frame's columns plus kind, or for sentences
    example_id, token_index, token, word_index, word, segment, char_start, char_end, kind).
    """
    layer_tuple, head_tuple = resolve_selection(handle, layers, heads)
    inputs = attention_inputs(handle, examples, predictions=predictions, max_length=max_length,
                              doc_stride=doc_stride, progress=False)
    by_id = {window.example_id: ExampleAttention(window.example_id, weights, tokens, layer_tuple, head_tuple)
             for window, tokens, weights in iter_attention(handle, inputs, layers=layer_tuple, heads=head_tuple,
                                                           batch_size=batch_size, progress=progress)}
    collected = [by_id[window.example_id] for window, _ in inputs]  # example order
    return AttentionMaps(collected, frame_attrs(handle, "attention_maps", {
        "layers": list(layer_tuple), "heads": list(head_tuple), "max_length": max_length, "doc_stride": doc_stride,
        "batch_size": batch_size}))
