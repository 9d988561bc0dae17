"""``edge_probe``: Tenney et al. 2019's layer analysis of one task, every probe trained in one bank.

For a task, the encoder runs once (hidden states of the target tokens, cached); then the L+1
single-layer probes, the L+1 cumulative probes P^(0..L) and the full scalar mix train together
(:mod:`bert_insight.probing.bank`). Identical probes are trained once: the single-layer probe 0 is
P^(0), and the full mix is P^(L).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data.edge_tasks import EdgeTask, load_edge_task
from ..device import resolve_device
from ..errors import BertInsightInputError
from ..frames import frame_attrs
from ..layers import resolve_layers
from ..models.handle import ModelHandle, require_model_handle
from .bank import ProbeBank, ProbeSpec
from .encode import EncodedTargets, encode_targets
from .summary import center_of_gravity, differential_scores, expected_layer, kl_to_uniform
from .train import ProbeSettings, macro_f1, micro_f1, predict_bank, train_bank

MODES = ("layer", "cumulative", "mix")
SCORE_COLUMNS = ("task", "mode", "layer", "metric", "value", "n_targets")
WEIGHT_COLUMNS = ("task", "layer", "weight")
SUMMARY_COLUMNS = ("task", "center_of_gravity", "expected_layer", "kl_weights", "kl_delta", "f1_layer0", "f1_all",
                   "n_train", "n_eval")
DELTA_COLUMNS = ("task", "layer", "delta")
TRACE_COLUMNS = ("task", "text_id", "target_id", "span1_text", "span2_text", "layer", "label", "is_gold",
                 "probability")


@dataclass
class EdgeProbeResult:
    """What :func:`edge_probe` learned about one task.

    ``scores``: task, mode ("layer" / "cumulative" / "mix"), layer (the probe's hidden-state layer; the
    highest one mixed), metric ("f1", "precision", "recall": micro-averaged over every (target, label)
    decision, jiant's metric; "macro_f1": the mean of the labels' F1, a binary task's positive and
    negative class, van Aken et al.'s metric; all percent), value, n_targets
    (evaluation targets). ``weights``: task, layer, weight (the full mix's softmax weights).
    ``deltas``: task, layer, delta (eq. 3, l >= 1). ``summary``: task, center_of_gravity (eq. 2),
    expected_layer (eq. 4; NaN when the Deltas sum to <= 0), kl_weights, kl_delta (KL to uniform, nats),
    f1_layer0, f1_all, n_train, n_eval. ``bank`` / ``probes`` (mode, layer) -> position in the bank;
    ``evaluation`` the encoded evaluation targets, ``probabilities`` (P, n_targets, n_labels) every probe's
    predictions on them, and ``task`` their EdgeTask (for :func:`probe_traces`);
    ``history``: epochs and validation F1 per probe.
    """

    scores: pd.DataFrame
    weights: pd.DataFrame
    deltas: pd.DataFrame
    summary: pd.DataFrame
    bank: ProbeBank
    probes: dict[tuple[str, int], int]
    evaluation: EncodedTargets
    probabilities: np.ndarray
    task: EdgeTask | None
    history: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.scores

    def __repr__(self) -> str:
        row = self.summary.iloc[0]
        return (f"EdgeProbeResult({row['task']!r}: f1 layer 0 {row['f1_layer0']:.1f}, all {row['f1_all']:.1f}, "
                f"center of gravity {row['center_of_gravity']:.2f}, expected layer {row['expected_layer']:.2f})")


def _check_modes(modes) -> tuple[str, ...]:
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unknown = [mode for mode in modes if mode not in MODES]
    if not modes or unknown:
        raise BertInsightInputError(f"modes={modes!r}; choose among {MODES}.")
    return modes


def _resolve_task(task, source) -> EdgeTask:
    if isinstance(task, EdgeTask):
        return task
    if isinstance(task, str):
        return load_edge_task(task, source)
    raise BertInsightInputError(f"task must be a task name (load_edge_task's) or an EdgeTask, not {type(task).__name__}.")


def _eval_split(task: EdgeTask) -> str:
    for name in ("dev", "test"):
        if name in task.splits:
            return name
    raise BertInsightInputError(f"task {task.name!r} has splits {list(task.splits)}; edge_probe scores on 'dev' "
                                "(or 'test'), so the task needs one.")


def plan_probes(modes: Sequence[str], layers: Sequence[int], num_layers: int) -> tuple[list[ProbeSpec], dict]:
    """The distinct probes ``modes`` x ``layers`` need (positions = hidden-state layers 0..max), and
    (mode, layer) -> index into that list."""
    specs: list[ProbeSpec] = []
    where: dict[tuple[int, ...], int] = {}
    rows: dict[tuple[str, int], int] = {}

    def add(mode: str, layer: int, allowed: tuple[int, ...]) -> None:
        if allowed not in where:
            where[allowed] = len(specs)
            specs.append(ProbeSpec(mode, layer, allowed))
        rows[(mode, layer)] = where[allowed]

    for mode in modes:
        if mode == "mix":
            add("mix", num_layers, tuple(range(num_layers + 1)))
            continue
        for layer in layers:
            add(mode, layer, (layer,) if mode == "layer" else tuple(range(layer + 1)))
    return specs, rows


def edge_probe(
    handle: ModelHandle,
    task: str | EdgeTask,
    *,
    modes: Iterable[str] = MODES,
    layers: str | int | Iterable[int] = "all",
    n_train: int | None = 10_000,
    n_eval: int | None = None,
    source: str | os.PathLike | None = None,
    probe_params: Mapping[str, Any] | None = None,
    max_length: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> EdgeProbeResult:
    """Edge probing of ``task`` on ``handle``'s frozen encoder (Tenney et al. 2019, sections 2-3).

    ``task``: a builder's name ("pos", "consts", "deps", "entities", "srl", "coref", "spr",
    "relations"; built from ``source`` = the corpora folder, or the bundled slices when None) or an
    :class:`~bert_insight.data.edge_tasks.EdgeTask`. Probes train on at most ``n_train`` targets of
    its "train" split (whole texts, seeded) and are scored on ``n_eval`` targets of "dev" (or "test").
    ``modes``: "layer" (one probe per hidden state in ``layers``), "cumulative" (P^(l) mixing 0..l for l
    in ``layers``), "mix" (all layers). ``probe_params``: EdgeProbe's training parameters (hidden_size,
    dropout, lr, batch_size, max_epochs, patience, pooling, validation_fraction). ``batch_size``: texts
    per encoder forward. ``cache_dir`` keeps the encoded states across calls.

    Returns an :class:`EdgeProbeResult` with frames ``scores`` (task, mode, layer, metric, value,
    n_targets), ``weights`` (task, layer, weight), ``deltas`` (task, layer, delta) and ``summary``
    (task, center_of_gravity, expected_layer, kl_weights, kl_delta, f1_layer0, f1_all, n_train, n_eval).
    """
    require_model_handle(handle, "edge probing")
    modes = _check_modes(modes)
    chosen = resolve_layers(layers, handle.num_layers, axis="hidden_states")
    settings = ProbeSettings(**dict(probe_params or {})).check()
    full = _resolve_task(task, source)
    if "train" not in full.splits:
        raise BertInsightInputError(f"task {full.name!r} has no 'train' split (it has {list(full.splits)}).")
    evaluation_split = _eval_split(full)
    train_task = full.sample("train", n_train, seed=seed)
    eval_task = full.sample(evaluation_split, n_eval, seed=seed)
    top = handle.num_layers if "mix" in modes else max(chosen)
    encoded_layers = list(range(top + 1)) if ("cumulative" in modes or "mix" in modes) else chosen
    options = dict(layers=encoded_layers, max_length=max_length, batch_size=batch_size, cache_dir=cache_dir,
                   progress=progress)
    train = encode_targets(handle, train_task, **options)
    evaluation = encode_targets(handle, eval_task, **options)
    params = {"modes": list(modes), "layers": list(chosen), "n_train": n_train, "n_eval": n_eval, "seed": seed,
              "max_length": max_length, "probe": settings.__dict__, "eval_split": evaluation_split}
    attrs = frame_attrs(handle, "edge_probe", params, dropped={"train": train.dropped, "eval": evaluation.dropped})
    return probe_encoded(train, evaluation, modes=modes, layers=chosen, num_layers=handle.num_layers,
                         settings=settings, seed=seed, device=resolve_device(handle.device), progress=progress,
                         task=eval_task, attrs=attrs)


def probe_encoded(train: EncodedTargets, evaluation: EncodedTargets, *, modes: Sequence[str], layers: Sequence[int],
                  num_layers: int, settings: ProbeSettings, seed: int = 0, device="cpu", progress: bool = False,
                  task: EdgeTask | None = None, attrs: Mapping[str, Any] | None = None) -> EdgeProbeResult:
    """:func:`edge_probe` after the encoder: train the probes of ``modes`` x ``layers`` on encoded
    training targets together, score them on ``evaluation`` and summarise (the frames of
    :class:`EdgeProbeResult`). ``num_layers`` = L, the encoder's blocks."""
    modes = _check_modes(modes)
    chosen = list(layers)
    name = train.task
    if tuple(train.layers) != tuple(evaluation.layers) or train.label_names != evaluation.label_names:
        raise BertInsightInputError("train and evaluation must be encoded from one task with the same layers.")
    specs, rows = plan_probes(modes, chosen, num_layers)
    missing = sorted({layer for spec in specs for layer in spec.allowed} - set(train.layers))
    if missing:
        raise BertInsightInputError(f"the encoded targets lack layers {missing}; encode with layers='all'.")
    positions = {layer: position for position, layer in enumerate(train.layers)}
    specs = [ProbeSpec(s.kind, s.layer, tuple(positions[layer] for layer in s.allowed)) for s in specs]
    bank, history = train_bank(specs, train, settings=settings, seed=seed, device=device, progress=progress)
    probabilities = predict_bank(bank, evaluation, device=device)
    score_rows = []
    for (mode, layer), index in rows.items():
        precision, recall, f1 = micro_f1(probabilities[index], evaluation.labels)
        macro = macro_f1(probabilities[index], evaluation.labels)
        for metric, value in (("f1", f1), ("precision", precision), ("recall", recall), ("macro_f1", macro)):
            score_rows.append((name, mode, layer, metric, value, len(evaluation)))
    scores = pd.DataFrame(score_rows, columns=list(SCORE_COLUMNS))
    mix_weights = bank.mix_weights().detach().cpu().numpy()
    weights = pd.DataFrame(columns=list(WEIGHT_COLUMNS))
    if ("mix", num_layers) in rows:
        weights = pd.DataFrame({"task": name, "layer": list(train.layers),
                                "weight": mix_weights[rows[("mix", num_layers)]]})
    f1 = scores[scores["metric"] == "f1"]
    cumulative = f1[f1["mode"] == "cumulative"].set_index("layer")["value"]
    complete = "cumulative" in modes and list(cumulative.index) == list(range(num_layers + 1))
    deltas = pd.DataFrame(columns=list(DELTA_COLUMNS))
    if complete:
        deltas = pd.DataFrame({"task": name, "layer": list(range(1, num_layers + 1)),
                               "delta": differential_scores(cumulative.to_numpy())})
    mix_f1 = f1.loc[f1["mode"] == "mix", "value"]
    summary = pd.DataFrame([{
        "task": name,
        "center_of_gravity": center_of_gravity(weights["weight"]) if len(weights) else np.nan,
        "expected_layer": expected_layer(cumulative.to_numpy()) if complete else np.nan,
        "kl_weights": kl_to_uniform(weights["weight"]) if len(weights) else np.nan,
        "kl_delta": kl_to_uniform(deltas["delta"]) if len(deltas) else np.nan,
        "f1_layer0": float(cumulative.get(0, f1.loc[(f1["mode"] == "layer") & (f1["layer"] == 0), "value"].max())),
        "f1_all": float(mix_f1.iloc[0]) if len(mix_f1) else (float(cumulative.iloc[-1]) if complete else np.nan),
        "n_train": len(train), "n_eval": len(evaluation)}], columns=list(SUMMARY_COLUMNS))
    for frame in (scores, weights, deltas, summary):
        frame.attrs = {**dict(attrs or {}), "history": history}
    return EdgeProbeResult(scores, weights, deltas, summary, bank, rows, evaluation, probabilities, task, history)


def probe_traces(result: EdgeProbeResult, *, max_mean_prob: float = 0.7, mode: str = "cumulative") -> pd.DataFrame:
    """Per-layer predictions for the hard targets (Tenney et al. 2019, section 4.1, Figure 3).

    For every evaluation target whose most probable label has a mean probability over the probes of
    ``mode`` ("cumulative": P^(0..L), as the paper; or "layer") of at most ``max_mean_prob`` (the
    paper's heuristic), the probability of its gold label(s) and of the strongest wrong label at each
    layer. Returns columns task, text_id, target_id, span1_text, span2_text, layer, label, is_gold,
    probability (one row per target, layer and label shown).
    """
    if not isinstance(result, EdgeProbeResult):
        raise BertInsightInputError(f"result must be edge_probe's EdgeProbeResult, not {type(result).__name__}.")
    if not 0 < max_mean_prob <= 1:
        raise BertInsightInputError(f"max_mean_prob={max_mean_prob!r}; pass a probability in (0, 1].")
    layers = sorted(layer for kind, layer in result.probes if kind == mode)
    if not layers:
        raise BertInsightInputError(f"the result has no {mode!r} probes; run edge_probe with modes including {mode!r}.")
    stacked = result.probabilities[[result.probes[(mode, layer)] for layer in layers]]  # (layers, n, labels)
    mean = stacked.mean(axis=0)
    hard = np.flatnonzero(mean.max(axis=1) <= max_mean_prob)
    words = {} if result.task is None else dict(zip(result.task.texts["text_id"], result.task.texts["words"]))
    names = result.evaluation.label_names
    rows = []
    targets = result.evaluation.targets
    for index in hard:
        target = targets.iloc[index]
        text = words.get(target["text_id"], ())
        span1 = " ".join(text[target["span1_start"]: target["span1_end"]])
        span2 = " ".join(text[target["span2_start"]: target["span2_end"]]) if target["span2_start"] >= 0 else ""
        gold = np.flatnonzero(result.evaluation.labels[index])
        wrong = [k for k in np.argsort(-mean[index]) if k not in set(gold)][:1]
        for label in [*gold, *wrong]:
            for position, layer in enumerate(layers):
                rows.append((result.evaluation.task, target["text_id"], target["target_id"], span1, span2, layer,
                             names[label], bool(label in set(gold)), float(stacked[position, index, label])))
    frame = pd.DataFrame(rows, columns=list(TRACE_COLUMNS))
    frame.attrs = {**result.scores.attrs, "function": "probe_traces",
                   "trace_params": {"max_mean_prob": max_mean_prob, "mode": mode}}
    return frame
