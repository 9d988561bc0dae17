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
(seed, the layers p mixes), so a probe gets the same start alone or in a bank.
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
    # The layers a probe mixes define it (the single-layer probe 0 and P^(0) are one probe).
    allowed = ",".join(map(str, spec.allowed))
    return int.from_bytes(hashlib.sha256(f"{seed}|{allowed}".encode()).digest()[:8], "little") % (2 ** 63)


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
            stacked = torch.stack(values)
            if name in ("proj_w", "proj_b", "att_w"):
                # One parameter per span: a slice of a shared one would make backward zero-fill and
                # accumulate the whole (P, spans, d, h) tensor for each span (a fifth of a step).
                setattr(self, name, nn.ParameterList([nn.Parameter(stacked[:, k].clone()) for k in range(n_spans)]))
            else:
                setattr(self, name, nn.Parameter(stacked))
        self.ln_w = nn.Parameter(torch.ones(P, h))
        self.ln_b = nn.Parameter(torch.zeros(P, h))
        self.dropout = float(dropout)

    def mix_weights(self, probes: torch.Tensor | None = None) -> torch.Tensor:
        """(P, n_layers) softmax weights over each probe's allowed layers (0 elsewhere); ``probes``
        selects some rows."""
        logits, allowed = self.mix_logits, self.allowed
        if probes is not None:
            logits, allowed = logits[probes], allowed[probes]
        return torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)

    def _dropout(self, hidden: torch.Tensor) -> torch.Tensor:
        # Inverted dropout from a uniform draw: torch's bernoulli_ kernel took a tenth of a step on CPU.
        if not self.training or self.dropout == 0:
            return hidden
        keep = torch.empty_like(hidden).uniform_() >= self.dropout
        return hidden * keep / (1 - self.dropout)

    def _pool(self, projected: torch.Tensor, members: torch.Tensor, att_w: torch.Tensor) -> torch.Tensor:
        """projected (P, T, h); members (n, T) bool, True where token t is in target n's span -> (P, n, h).

        A masked softmax over all T tokens and one batched product: no gather of span rows, whose
        backward (a scatter-add) cost more than the matrix products here."""
        if self.pooling == "mean":
            weights = members.to(projected.dtype)
            weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1)
            return torch.matmul(weights, projected)  # (n, T) @ (P, T, h) -> (P, n, h)
        scores = torch.einsum("pth,ph->pt", projected, att_w)
        scores = scores[:, None, :].masked_fill(~members, float("-inf"))  # (P, n, T)
        return torch.bmm(torch.softmax(scores, dim=-1), projected)

    def forward(self, spans, probes: torch.Tensor | None = None) -> torch.Tensor:
        """``spans``: per span (span1, then span2 for two-span tasks) a pair (states (T_k, n_layers, d)
        float32, members (n, T_k) bool: which of those rows each target's span holds) -> logits
        (P, n, n_labels). Each span has its own block of rows, so its projection runs only on its own
        tokens. ``probes`` (indices) runs only those probes (in that order)."""
        def take(parameter: torch.Tensor) -> torch.Tensor:
            return parameter if probes is None else parameter[probes]

        weights, gamma = self.mix_weights(probes), take(self.gamma)[:, None, None]
        pooled = []
        for span, (states, members) in enumerate(spans):
            mixed = torch.einsum("pl,tld->ptd", weights, states) * gamma
            projected = torch.baddbmm(take(self.proj_b[span])[:, None, :], mixed, take(self.proj_w[span]))
            pooled.append(self._pool(projected, members, take(self.att_w[span])))
        joined = torch.cat(pooled, dim=-1)  # (P, n, spans * h)
        hidden = torch.tanh(torch.baddbmm(take(self.b2)[:, None, :], joined, take(self.w2)))
        hidden = nn.functional.layer_norm(hidden, hidden.shape[-1:]) * take(self.ln_w)[:, None, :] + \
            take(self.ln_b)[:, None, :]
        return torch.baddbmm(take(self.b3)[:, None, :], self._dropout(hidden), take(self.w3))

    def probe_state(self, p: int) -> dict[str, torch.Tensor]:
        """Probe p's parameters (copies), to keep its best state during training."""
        return {name: value[p].detach().clone() for name, value in self.named_parameters()}

    def load_probe_state(self, p: int, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, value in self.named_parameters():
                value[p].copy_(state[name])


def span_members(spans: np.ndarray, n_rows: int) -> np.ndarray:
    """(n, 2) [start, end) row ranges -> (n, n_rows) bool membership."""
    rows = np.arange(n_rows)[None, :]
    return (rows >= spans[:, :1]) & (rows < spans[:, 1:2])
