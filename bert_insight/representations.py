"""Hidden states of every token, per layer, and their 2-d / 3-d projections and clusters.

:func:`hidden_states` runs the model once per example on its analysis window (the window holding the
predicted answer, :func:`bert_insight.qa.analysis_windows`), so token_index values join with the
tokens and attributions frames. :func:`project_tokens` gives the t-SNE / PCA / ICA maps of
Ramnath et al. 2020 (Figures 2-3: one example, one map per layer); :func:`kmeans_tokens` clusters the
same vectors (van Aken et al. 2019).

A handle without a QA head (a base encoder, or GPT-2 from :func:`bert_insight.load_base_model`) has no
prediction to pick a window: its window is the question followed by the context, one per example
(:func:`bert_insight.tokens_frame.question_context_windows`).

Layer convention (DESIGN.md): layer 0 is the embedding output, layer l the output of block l - 1.
For GPT-2, Hugging Face's last hidden state (layer L) has the final LayerNorm ``ln_f`` applied
(docs/gpt2.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from .data.examples import validate_examples
from .errors import BertInsightInputError
from .frames import frame_attrs
from .layers import resolve_layers
from .models.handle import ModelHandle, QAModelHandle, require_model_handle
from .tokens_frame import answer_windows, question_context_windows, truncation_note, window_tokens

PROJECTION_METHODS = ("tsne", "pca", "ica")
_AXES = ("x", "y", "z")
TOKEN_LABELS = ("example_id", "token_index", "token", "word", "segment", "role")


@dataclass
class TokenVectors:
    """Hidden states of the tokens in ``tokens`` (same row order): ``vectors[layer]`` is a float32
    array of shape (n_tokens, hidden_size) for every layer computed."""

    vectors: dict[int, np.ndarray]
    tokens: pd.DataFrame
    attrs: dict = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return sorted(self.vectors)

    def __len__(self) -> int:
        return len(self.tokens)

    def select(self, *, example_ids: Iterable[str] | str | None = None,
               segments: Iterable[str] | str | None = None) -> "TokenVectors":
        """The tokens of some examples and/or segments (question / context / special)."""
        mask = np.ones(len(self.tokens), dtype=bool)
        if example_ids is not None:
            wanted = {example_ids} if isinstance(example_ids, str) else {str(e) for e in example_ids}
            mask &= self.tokens["example_id"].astype(str).isin(wanted).to_numpy()
        if segments is not None:
            wanted = {segments} if isinstance(segments, str) else set(segments)
            mask &= self.tokens["segment"].isin(wanted).to_numpy()
        if not mask.any():
            raise BertInsightInputError(
                f"No token matches example_ids={example_ids!r}, segments={segments!r}; check the ids "
                "against vectors.tokens.example_id and use segments among question / context / special."
            )
        return TokenVectors({layer: array[mask] for layer, array in self.vectors.items()},
                            self.tokens[mask].reset_index(drop=True), dict(self.attrs))

    def __repr__(self) -> str:
        n_examples = self.tokens["example_id"].nunique() if len(self.tokens) else 0
        hidden = next(iter(self.vectors.values())).shape[1] if self.vectors else 0
        return (f"TokenVectors({len(self.tokens)} tokens of {n_examples} examples, layers {self.layers}, "
                f"hidden size {hidden})")


def hidden_states(
    handle: ModelHandle,
    examples: pd.DataFrame,
    *,
    layers: str | int | Iterable[int] = "all",
    predictions: pd.DataFrame | None = None,
    max_length: int | None = None,
    doc_stride: int | None = None,
    progress: bool = True,
) -> TokenVectors:
    """Hidden states of every token of each example's analysis window, for the chosen ``layers``
    ("all" = hidden states 0..L, see :mod:`bert_insight.layers`; or layer numbers).

    Returns a :class:`TokenVectors`: ``.vectors[layer]`` (n_tokens, hidden_size) float32 arrays whose
    rows follow ``.tokens``, the tokens frame of :func:`bert_insight.tokens` (example_id,
    token_index, token, word_index, word, segment, role, char_start, char_end, in_answer,
    in_question, near_answer, is_number, is_stopword).

    QA handles: ``predictions`` (from :func:`bert_insight.predict`) choose the windows (the one holding the
    predicted answer) and their settings; they are computed when None. Handles without a QA head
    (:func:`bert_insight.load_base_model`, a classifier): one window per example, the question followed
    by the context -- the usual pair for encoders ([CLS] question [SEP] context [SEP]), and for GPT-2
    ``question + " " + context`` as one sequence without special tokens, each token's segment from its
    character offsets -- cut to ``max_length`` tokens (default 384; the examples cut are listed in
    ``attrs["truncated"]`` and ``attrs["note"]`` says so); roles come from the first gold answer;
    ``predictions`` and ``doc_stride`` are refused. GPT-2's layer L is the last block's output after the
    final LayerNorm (Hugging Face's convention; docs/gpt2.md).
    """
    from tqdm.auto import tqdm

    require_model_handle(handle, "hidden_states")
    examples = validate_examples(examples, allow_empty=False)
    chosen_layers = resolve_layers(layers, handle.num_layers, axis="hidden_states")
    extra: dict = {}
    trim = False
    if isinstance(handle, QAModelHandle):
        chosen, max_length, doc_stride = answer_windows(handle, examples, predictions=predictions,
                                                        max_length=max_length, doc_stride=doc_stride,
                                                        progress=progress)
        params = {"layers": chosen_layers, "max_length": max_length, "doc_stride": doc_stride}
    else:
        chosen, max_length, truncated = question_context_windows(handle, examples, max_length=max_length,
                                                                 predictions=predictions, doc_stride=doc_stride)
        params = {"layers": chosen_layers, "max_length": max_length, "doc_stride": None,
                  "window": "question_context"}
        extra = {"note": truncation_note(truncated, max_length), "truncated": truncated}
        trim = handle.adapter.causal
    # A decoder's key/value cache is never reused here.
    forward_options = {"use_cache": False} if handle.adapter.causal else {}
    pieces: dict[int, list[np.ndarray]] = {layer: [] for layer in chosen_layers}
    frames = []
    with torch.inference_mode():
        for example, window, span in tqdm(chosen, desc="hidden states", disable=not progress):
            output = handle.model(**handle.batch_inputs([window]), output_hidden_states=True, **forward_options)
            for layer in chosen_layers:
                pieces[layer].append(output.hidden_states[layer][0].float().cpu().numpy())
            frames.append(window_tokens(handle.tokenizer, window, example["question"], example["context"], span,
                                        trim_spaces=trim))
    tokens = pd.concat(frames, ignore_index=True)
    attrs = frame_attrs(handle, "bert_insight.hidden_states", params, **extra)
    tokens.attrs = dict(attrs)
    return TokenVectors({layer: np.concatenate(arrays) for layer, arrays in pieces.items()}, tokens, attrs)


def _check_vectors(vectors) -> TokenVectors:
    if not isinstance(vectors, TokenVectors):
        raise BertInsightInputError(
            f"Expected the TokenVectors that bert_insight.hidden_states returns (got {type(vectors).__name__})."
        )
    return vectors


def _chosen_layers(vectors: TokenVectors, layers) -> list[int]:
    if isinstance(layers, str) and layers == "all":
        return vectors.layers
    chosen = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    missing = [layer for layer in chosen if layer not in vectors.vectors]
    if missing or not chosen:
        raise BertInsightInputError(
            f"layers={layers!r}: these vectors hold layers {vectors.layers}; compute the others with "
            "hidden_states(..., layers=...)."
        )
    return [int(layer) for layer in chosen]


def _projector(method: str, n_components: int, seed: int, perplexity: float | None, n_samples: int):
    from sklearn.decomposition import PCA, FastICA
    from sklearn.manifold import TSNE

    if method == "pca":
        return PCA(n_components=n_components, random_state=seed)
    if method == "ica":
        return FastICA(n_components=n_components, random_state=seed, whiten="unit-variance", max_iter=1000)
    # t-SNE needs perplexity < n_samples; sklearn's default 30 is too large for one short passage.
    perplexity = perplexity if perplexity is not None else float(min(30.0, max(2.0, (n_samples - 1) / 3)))
    if perplexity >= n_samples:
        raise BertInsightInputError(
            f"perplexity={perplexity} must be below the number of tokens ({n_samples}); pass a smaller one."
        )
    return TSNE(n_components=n_components, perplexity=perplexity, random_state=seed, init="pca")


def project_tokens(
    vectors: TokenVectors,
    *,
    layers="all",
    method: str = "tsne",
    n_components: int = 2,
    seed: int = 0,
    perplexity: float | None = None,
) -> pd.DataFrame:
    """2-d (or 3-d) map of the token vectors, fitted separately for each layer.

    ``method``: "tsne" (sklearn TSNE, PCA initialisation; perplexity defaults to
    min(30, (n_tokens - 1) / 3)), "pca" or "ica" (FastICA). All tokens in ``vectors`` share one map per
    layer; pass ``vectors.select(example_ids=...)`` for the one-example maps of Ramnath et al.

    Columns: example_id, layer, token_index, token, word, segment, role, x, y (and z when
    n_components=3).
    """
    vectors = _check_vectors(vectors)
    if method not in PROJECTION_METHODS:
        raise BertInsightInputError(f"method={method!r}; use one of {PROJECTION_METHODS}.")
    if n_components not in (2, 3):
        raise BertInsightInputError(f"n_components={n_components!r}; use 2 or 3.")
    if len(vectors) <= n_components:
        raise BertInsightInputError(
            f"Only {len(vectors)} tokens: a {n_components}-d map needs more; select more examples or segments."
        )
    labels = vectors.tokens[list(TOKEN_LABELS)].reset_index(drop=True)
    frames = []
    for layer in _chosen_layers(vectors, layers):
        projector = _projector(method, n_components, seed, perplexity, len(vectors))
        # One OpenMP thread: on maps of a few hundred tokens sklearn's Barnes-Hut t-SNE spends more on
        # thread synchronisation than it saves (15x slower with 2 threads on a busy 2-core machine).
        with threadpool_limits(1, user_api="openmp"):
            points = projector.fit_transform(vectors.vectors[layer].astype(np.float64))
        frame = labels.copy()
        frame.insert(1, "layer", layer)
        for axis, column in zip(_AXES, points.T):
            frame[axis] = column
        frames.append(frame)
    result = pd.concat(frames, ignore_index=True)
    result.attrs = {**vectors.attrs, "projection": {"method": method, "n_components": n_components,
                                                     "seed": seed, "perplexity": perplexity}}
    return result


def kmeans_tokens(
    vectors: TokenVectors,
    *,
    n_clusters: int = 5,
    layers="all",
    seed: int = 0,
) -> pd.DataFrame:
    """k-means cluster of every token vector, fitted separately for each layer (sklearn KMeans).

    Columns: example_id, layer, token_index, token, word, segment, role, cluster (0..n_clusters-1).
    """
    from sklearn.cluster import KMeans

    vectors = _check_vectors(vectors)
    if not isinstance(n_clusters, (int, np.integer)) or not 1 <= n_clusters <= len(vectors):
        raise BertInsightInputError(
            f"n_clusters={n_clusters!r}; pass a whole number between 1 and the number of tokens ({len(vectors)})."
        )
    labels = vectors.tokens[list(TOKEN_LABELS)].reset_index(drop=True)
    frames = []
    for layer in _chosen_layers(vectors, layers):
        model = KMeans(n_clusters=int(n_clusters), n_init=10, random_state=seed)
        frame = labels.copy()
        frame.insert(1, "layer", layer)
        frame["cluster"] = model.fit_predict(vectors.vectors[layer].astype(np.float64))
        frames.append(frame)
    result = pd.concat(frames, ignore_index=True)
    result.attrs = {**vectors.attrs, "kmeans": {"n_clusters": int(n_clusters), "seed": seed}}
    return result
