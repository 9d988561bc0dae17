"""Many edge probes as one module: P probes share every step over the same cached hidden states.

Each probe is jiant's edge-probing classifier (Tenney et al. 2019, ICLR; jiant v1.3.2
``jiant/modules/edge_probing.py``) on a scalar mix of layers (Peters et al. 2018 eq. 1 = Tenney et al.
2019 eq. 1):

    h_i = gamma * sum_l softmax(a)_l h_i^(l)     over the probe's allowed layers
    u_i = W1 h_i + b1                           per-token projection, separate for span1 and span2
    span = sum_{i in span} softmax_i(w . u_i) u_i   self-attentive pooling (allennlp's
                                                 SelfAttentiveSpanExtractor, without its bias: a
                                                 softmax ignores a shift) or the mean
    logits = W3 LayerNorm(tanh(W2 [span1; span2] + b2)) (dropout before W3) + b3

with sigmoid outputs and binary cross-entropy (multi-label, one decision per label). A single-layer
probe allows one layer (its weight is fixed at 1); a cumulative probe l allows layers 0..l; the full
mix allows all. The probes' parameters are stacked along a leading probe axis and applied with
batched matrix products, so one pass over the data trains all P; their parameters never mix
(separate Adam state per element), and probe p's initial values are drawn from a generator seeded by
(seed, p's description), so a probe gets the same start alone or in a bank.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

POOLINGS = ("attention", "mean")


@dataclass(frozen=True)
class ProbeSpec:
    """Which layers one probe mixes: ``allowed`` positions into the cached layers; ``kind`` "layer",
    "cumulative" or "mix"; ``layer`` the probe's (highest) hidden-state layer."""

    kind: str
    layer: int
    allowed: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.layer}:{','.join(map(str, self.allowed))}"


def _probe_seed(seed: int, spec: ProbeSpec) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}|{spec.key}".encode()).digest()[:8], "little") % (2 ** 63)


def _uniform(generator: torch.Generator, shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    """nn.Linear's default initialisation (kaiming-uniform with a = sqrt(5) = U(-1/sqrt(fan_in), ...))."""
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


class ProbeBank(nn.Module):
    """P edge probes over cached states of ``n_layers`` layers of width ``input_size``."""

    def __init__(self, specs: list[ProbeSpec], *, n_layers: int, input_size: int, n_labels: int, two_spans: bool,
                 hidden_size: int = 256, dropout: float = 0.3, pooling: str = "attention", seed: int = 0):
        super().__init__()
        self.specs = list(specs)
        self.two_spans = two_spans
        self.pooling = pooling
        P, d, h = len(specs), input_size, hidden_size
        n_spans = 2 if two_spans else 1
        allowed = torch.zeros(P, n_layers, dtype=torch.bool)
        for p, spec in enumerate(specs):
            allowed[p, list(spec.allowed)] = True
        self.register_buffer("allowed", allowed)
        # Single-layer probes keep their one weight at 1: the logits only matter where 2+ layers mix.
        self.mix_logits = nn.Parameter(torch.zeros(P, n_layers))
        self.gamma = nn.Parameter(torch.ones(P))
        tensors = {name: [] for name in ("proj_w", "proj_b", "att_w", "w2", "b2", "w3", "b3")}
        for spec in specs:
            g = torch.Generator().manual_seed(_probe_seed(seed, spec))
            tensors["proj_w"].append(_uniform(g, (n_spans, d, h), d))
            tensors["proj_b"].append(_uniform(g, (n_spans, h), d))
            tensors["att_w"].append(_uniform(g, (n_spans, h), h))
            tensors["w2"].append(_uniform(g, (n_spans * h, h), n_spans * h))
            tensors["b2"].append(_uniform(g, (h,), n_spans * h))
            tensors["w3"].append(_uniform(g, (h, n_labels), h))
            tensors["b3"].append(_uniform(g, (n_labels,), h))
        for name, values in tensors.items():
            setattr(self, name, nn.Parameter(torch.stack(values)))
        self.ln_w = nn.Parameter(torch.ones(P, h))
        self.ln_b = nn.Parameter(torch.zeros(P, h))
        self.dropout = nn.Dropout(dropout)

    def mix_weights(self) -> torch.Tensor:
        """(P, n_layers) softmax weights over each probe's allowed layers (0 elsewhere)."""
        logits = self.mix_logits.masked_fill(~self.allowed, float("-inf"))
        return torch.softmax(logits, dim=-1)

    def _pool(self, projected: torch.Tensor, index: torch.Tensor, span: int) -> torch.Tensor:
        """projected (P, T, h); index (n, S) rows into T, -1 = padding -> (P, n, h)."""
        mask = index >= 0
        safe = index.clamp(min=0)
        members = projected[:, safe]  # (P, n, S, h)
        if self.pooling == "mean":
            weights = mask.to(projected.dtype) / mask.sum(dim=1, keepdim=True).clamp(min=1)
            return torch.einsum("pnsh,ns->pnh", members, weights)
        scores = torch.einsum("pnsh,ph->pns", members, self.att_w[:, span])
        scores = scores.masked_fill(~mask, float("-inf"))
        return torch.einsum("pnsh,pns->pnh", members, torch.softmax(scores, dim=-1))

    def forward(self, states: torch.Tensor, span1: torch.Tensor, span2: torch.Tensor | None = None) -> torch.Tensor:
        """states (T, n_layers, d) float32; span1/span2 (n, S) rows of ``states`` (-1 = padding) ->
        logits (P, n, n_labels)."""
        mixed = torch.einsum("pl,tld->ptd", self.mix_weights(), states) * self.gamma[:, None, None]
        pooled = []
        for span, index in enumerate([span1] + ([span2] if self.two_spans else [])):
            projected = torch.baddbmm(self.proj_b[:, span, None, :], mixed, self.proj_w[:, span])
            pooled.append(self._pool(projected, index, span))
        joined = torch.cat(pooled, dim=-1)  # (P, n, spans * h)
        hidden = torch.tanh(torch.baddbmm(self.b2[:, None, :], joined, self.w2))
        hidden = nn.functional.layer_norm(hidden, hidden.shape[-1:]) * self.ln_w[:, None, :] + self.ln_b[:, None, :]
        return torch.baddbmm(self.b3[:, None, :], self.dropout(hidden), self.w3)

    def probe_state(self, p: int) -> dict[str, torch.Tensor]:
        """Probe p's parameters (copies), to keep its best state during training."""
        return {name: value[p].detach().clone() for name, value in self.named_parameters()}

    def load_probe_state(self, p: int, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, value in self.named_parameters():
                value[p].copy_(state[name])


def span_index(spans: np.ndarray, *, cap: int | None = None) -> np.ndarray:
    """(n, 2) [start, end) row ranges -> (n, S) row indices padded with -1 (S = the longest span, or
    ``cap``: longer spans keep their first ``cap`` rows)."""
    lengths = spans[:, 1] - spans[:, 0]
    width = int(lengths.max()) if len(spans) else 1
    if cap is not None:
        width = min(width, cap)
    offsets = np.arange(width)
    index = spans[:, :1] + offsets[None, :]
    return np.where(offsets[None, :] < np.minimum(lengths, width)[:, None], index, -1)
