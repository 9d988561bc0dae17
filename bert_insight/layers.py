"""Which layers a verb looks at: one resolver, so ``layers="all"`` means the same in every verb.

Two axes (DESIGN.md): hidden states 0..L (0 = embedding output, l = the input of block l, L = the last
block's output), used by attributions, hidden states and probing; and blocks 0..L-1, used by attention
maps and heads. ``"all"`` is every index of the verb's axis. On the hidden-state axis,
``"block_inputs"`` is 0..L-1 (the inputs of the L blocks) and ``"block_outputs"`` 1..L (the outputs
of the L blocks: Ramnath et al.'s L0..L11 on BERT-base, whose released code replaces the output of
block l by the interpolated tensor).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .errors import BertInsightInputError

AXES = ("hidden_states", "blocks")


def layer_range(axis: str, num_layers: int) -> range:
    """Every index of ``axis`` for a model of ``num_layers`` blocks."""
    if axis not in AXES:
        raise ValueError(f"axis={axis!r}; one of {AXES}")
    return range(num_layers + 1) if axis == "hidden_states" else range(num_layers)


def resolve_layers(layers: str | int | Iterable[int], num_layers: int, *, axis: str = "hidden_states") -> list[int]:
    """Sorted, distinct layer indices for ``layers``: "all", "block_inputs" / "block_outputs" (hidden
    states only), one index or several. Indices outside the axis get one error naming the valid range."""
    valid = layer_range(axis, num_layers)
    names = {"all": list(valid)}
    if axis == "hidden_states":
        names["block_inputs"] = list(range(num_layers))
        names["block_outputs"] = list(range(1, num_layers + 1))
    span = f"{valid.start}..{valid.stop - 1}"
    meaning = ("hidden states: 0 = embedding output, l = input of block l, "
               f"{num_layers} = last block's output" if axis == "hidden_states" else "block indices")
    if isinstance(layers, str):
        if layers not in names:
            raise BertInsightInputError(
                f"layers={layers!r}; pass {' or '.join(repr(name) for name in names)}, one layer number, or a "
                f"list of them in {span} ({meaning})."
            )
        return names[layers]
    chosen = ([layers] if isinstance(layers, (int, np.integer)) else list(layers) if isinstance(layers, Iterable)
              else None)
    if not chosen or any(isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) for layer in chosen):
        raise BertInsightInputError(
            f"layers={layers!r}; pass {' or '.join(repr(name) for name in names)}, one layer number, or a "
            f"non-empty list of layer numbers in {span} ({meaning})."
        )
    bad = [int(layer) for layer in chosen if int(layer) not in valid]
    if bad:
        raise BertInsightInputError(
            f"layer {bad[0]} is out of range: this model has {num_layers} blocks, so {span} ({meaning})."
        )
    return sorted({int(layer) for layer in chosen})
