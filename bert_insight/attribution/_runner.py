"""What every layer-wise attribution verb shares: one analysis window per example, the results cache,
and the rows of the attributions and convergence frames (layer_ig and layer_deeplift make the same
frames, so every analysis and view serves both)."""

from __future__ import annotations

import hashlib
import json
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from ..cache import ResultCache
from ..errors import BertInsightInputError
from ..frames import CONVERGENCE_COLUMNS
from ..qa import validated_analysis_windows
from ._ig_core import TARGETS

FRAMES = ("attributions", "convergence")
_SEGMENTS = {0: "question", 1: "context", None: "special"}


def check_targets(targets) -> tuple[str, ...]:
    """The chosen targets in the order of ``TARGETS``; one clear error for anything else."""
    chosen = (targets,) if isinstance(targets, str) else tuple(targets) if isinstance(targets, Iterable) else ()
    unknown = [target for target in chosen if target not in TARGETS]
    if not chosen or unknown:
        raise BertInsightInputError(
            f"targets={targets!r}; choose from {TARGETS}: 'start' / 'end' attribute the logit of the predicted "
            "start / end token (the paper's text), 'start+end' their sum (the paper's released code)."
        )
    return tuple(target for target in TARGETS if target in chosen)


def example_key(example_id: str, question: str, context: str, prediction) -> str:
    content = json.dumps([example_id, question, context, prediction], default=str)
    return f"{example_id}:{hashlib.sha256(content.encode()).hexdigest()[:16]}"


class WindowRows:
    """Accumulates one window's attribution and convergence rows."""

    def __init__(self, window, method: str, quadrature: str) -> None:
        self.window, self.method, self.quadrature = window, method, quadrature
        self.segment = np.array([_SEGMENTS[sequence] for sequence in window.sequence_ids], dtype=object)
        self.word_index = np.array([-1 if word is None or sequence is None else int(word)
                                    for word, sequence in zip(window.word_ids, window.sequence_ids)], dtype=np.int64)
        self.in_context = self.segment == "context"
        self.attribution_parts: list[pd.DataFrame] = []
        self.convergence_rows: list[tuple] = []

    def add(self, layer: int, target: str, attribution: torch.Tensor, at_input: float, at_reference: float) -> None:
        """``attribution``: (T, D) per hidden unit; ``at_input - at_reference`` is what it should add up to."""
        attribution = attribution.double()
        score = attribution.sum(-1).cpu().numpy()
        norm = attribution.norm(dim=-1).cpu().numpy()
        passage = norm[self.in_context].sum()
        importance = (np.where(self.in_context, norm / passage, 0.0) if passage > 0
                      else np.zeros(len(self.window)))
        self.attribution_parts.append(pd.DataFrame({
            "example_id": self.window.example_id, "method": self.method, "quadrature": self.quadrature,
            "layer": layer, "target": target, "token_index": np.arange(len(self.window)),
            "word_index": self.word_index, "segment": self.segment,
            "score": score, "norm": norm, "importance": importance,
        }))
        change = at_input - at_reference
        delta = float(score.sum()) - change
        self.convergence_rows.append((self.window.example_id, self.method, self.quadrature, layer, target, delta,
                                      abs(delta) / abs(change) if change != 0 else float("nan")))

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"attributions": pd.concat(self.attribution_parts, ignore_index=True),
                "convergence": pd.DataFrame(self.convergence_rows, columns=list(CONVERGENCE_COLUMNS))}


def attribute_examples(handle, examples: pd.DataFrame, *, function: str, params: dict, fingerprint: str,
                       predictions: pd.DataFrame | None, max_length: int, doc_stride: int, cache_dir,
                       progress: bool, attribute: Callable, frames: tuple[str, ...] = FRAMES
                       ) -> dict[str, pd.DataFrame]:
    """Run ``attribute(window, start_index, end_index) -> {frame name: frame}`` on the analysis window of
    every example through the results cache; returns each frame concatenated in the examples' order.
    ``fingerprint``: the handle's, read once by the verb (it hashes the weights).

    Given predictions are checked against every window up front (tokenising only); without them an
    example is predicted only when it must be attributed, so a resumed run predicts nothing twice.
    """
    cache = ResultCache(cache_dir, fingerprint=fingerprint, function=function, params=params)
    given = None
    if predictions is not None:
        given = {str(row.example_id): [str(row.window_index), str(row.start_index), str(row.end_index)]
                 for row in predictions.itertuples(index=False)}
    keys = [example_key(row.example_id, row.question, row.context,
                        None if given is None else given.get(row.example_id))
            for row in examples.itertuples(index=False)]
    position_of = {key: position for position, key in enumerate(keys)}
    chosen = {} if predictions is None else dict(zip(keys, validated_analysis_windows(
        handle, examples, predictions=predictions, max_length=max_length, doc_stride=doc_stride)))

    def compute(key: str) -> dict[str, pd.DataFrame]:
        if key not in chosen:
            (chosen[key],) = validated_analysis_windows(handle, examples.iloc[[position_of[key]]], predictions=None,
                                                        max_length=max_length, doc_stride=doc_stride)
        return attribute(*chosen[key])

    results = cache.compute(keys, compute, frames, progress=progress, desc=function)
    return {name: pd.concat([results[key][name] for key in keys], ignore_index=True) for name in frames}
