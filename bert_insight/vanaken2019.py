"""van Aken et al. 2019 ("How Does BERT Answer Questions?", CIKM): the probing suite over several
models, the normalised ability heatmap (Figure 6) and the paper's numbers and readings to put ours beside.

The paper probes BERT-base fine-tuned on SQuAD and on bAbI and BERT-base without fine-tuning (Figure 2;
BERT-large and HotpotQA in Figure 3) on named-entity labelling, coreference, relations, question type
and supporting facts, layer by layer, in macro-averaged F1. Its figures are images: only the text's
statements about them survive (:data:`VANAKEN2019_PROBING_CLAIMS`), so the comparison is with those.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .data.edge_tasks import EdgeTask
from .errors import BertInsightInputError
from .frames import require_columns
from .models.default_babi import VANAKEN2019_TABLE2
from .models.handle import ModelHandle
from .probing.edge import edge_probe

PROBING_COLUMNS = ("model", "task", "layer", "metric", "value", "n_train", "n_targets")

#: What the paper's text says about its probing figures (Figures 2, 3 and 6), one row per claim, with
#: the quantity of ours that tests it (see :func:`probing_summary`).
VANAKEN2019_PROBING_CLAIMS = pd.DataFrame([
    ("fine_tuning_small", "Fine-tuning barely changes NEL, COREF and REL (Figures 2-3)",
     "mean |fine-tuned - pre-trained| over layers, NEL/COREF/REL"),
    ("nel_first", "NEL is solved first; COREF and REL peak in later layers (Figure 6)",
     "peak layer of entities < peak layers of coref and relations"),
    ("sup_last", "Supporting facts are distinguished within the last layers (Figure 6), rising over layers "
                 "for SQuAD and bAbI (Figure 2)", "peak layer of supporting facts, fine-tuned models"),
    ("ques_squad_gain", "The SQuAD model beats the pre-trained one on question type from layer 5 of 12 on",
     "fine-tuned - pre-trained on question_type, upper half of the layers"),
    ("ques_babi_loss", "The bAbI model loses part of its question-type ability",
     "bAbI model - pre-trained on question_type, upper half"),
    ("last_layer_drop", "General abilities drop in the last layers of fine-tuned models (answer extraction)",
     "fine-tuned: last layer - best layer, NEL/COREF/REL"),
], columns=["claim", "paper", "measured_by"])

#: The paper's reading of its PCA plots: the depth (share of the 12 layers of BERT-base) where each
#: phase shows. "early" = the first third, "middle", "higher" = the last half, "last" = the last layers.
VANAKEN2019_PHASES = pd.DataFrame([
    ("semantic_clustering", 1, "early layers (the second layer shown in Figures 4a, 5a)"),
    ("entity_matching", 2, "middle layers"),
    ("sentence_grouping", None, "not a phase; kept into late layers (Figure 9 shows layer 7 of 12)"),
    ("question_fact_matching", 3, "higher layers (some examples earlier)"),
    ("answer_extraction", 4, "last layers (layer 11 of 12 shown in Figure 4d)"),
], columns=["phase", "paper_phase", "paper_depth"])


def probing_suite(
    handles: Mapping[str, ModelHandle],
    tasks: Mapping[str, str | EdgeTask] | Iterable[str | EdgeTask],
    *,
    source: str | os.PathLike | None = None,
    layers: str | int | Iterable[int] = "all",
    n_train: int | None = 4000,
    n_eval: int | None = 1000,
    probe_params: Mapping[str, Any] | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Edge-probe every model of ``handles`` (name -> handle: e.g. {"squad": ..., "babi": ...,
    "pretrained": ...}) on every task, one probe per hidden state (Figures 2-3 of van Aken et al.).

    ``tasks``: builder names (``source`` = the corpora folder) or EdgeTasks (e.g.
    :func:`bert_insight.supporting_facts_task`), as a mapping name -> task or a list (names taken from
    the tasks). Every model sees the same sampled targets (``seed``). Returns a frame with columns
    model, task, layer, metric ("f1": micro-F1, the positive label's for a binary task; "macro_f1": the
    paper's metric; "precision", "recall"), value (percent), n_train, n_targets (evaluation targets).
    """
    if not isinstance(handles, Mapping) or not handles:
        raise BertInsightInputError("handles must be a non-empty mapping name -> model handle, e.g. "
                                    "{'squad': load_qa_model(), 'pretrained': base_classifier('sst2')}.")
    named = dict(tasks) if isinstance(tasks, Mapping) else {
        (task if isinstance(task, str) else task.name): task for task in tasks}
    if not named:
        raise BertInsightInputError("tasks is empty; pass builder names or EdgeTasks.")
    frames = []
    for model_name, handle in handles.items():
        for task_name, task in named.items():
            result = edge_probe(handle, task, modes=("layer",), layers=layers, n_train=n_train, n_eval=n_eval,
                                source=source, probe_params=probe_params, seed=seed, cache_dir=cache_dir,
                                progress=progress)
            scores = result.scores.assign(model=model_name, task=task_name,
                                          n_train=int(result.summary["n_train"].iloc[0]))
            frames.append(scores[list(PROBING_COLUMNS)])
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs = {"verb": "probing_suite", "params": {"models": list(handles), "tasks": list(named),
                                                        "n_train": n_train, "n_eval": n_eval, "seed": seed}}
    return frame


def ability_heatmap(scores: pd.DataFrame, *, metric: str = "macro_f1") -> pd.DataFrame:
    """The values of Figure 6: each (model, task)'s score over layers, normalised to [0, 1] by its own
    minimum and maximum, so a row shows where that ability is strongest.

    Returns columns model, task, layer, value (percent), normalised (NaN when a row is constant),
    peak_layer (the row's best layer; ties to the earlier), relative_depth (layer / the last layer).
    """
    require_columns(scores, ("model", "task", "layer", "metric", "value"), what="scores",
                    made_by="bert_insight.vanaken2019.probing_suite")
    part = scores[scores["metric"] == metric]
    if part.empty:
        raise BertInsightInputError(f"no rows with metric {metric!r}; the scores hold "
                                    f"{sorted(scores['metric'].unique())}.")
    rows = []
    for (model, task), group in part.groupby(["model", "task"], sort=False):
        group = group.sort_values("layer")
        values = group["value"].to_numpy(dtype=float)
        spread = values.max() - values.min()
        normalised = (values - values.min()) / spread if spread > 0 else np.full(len(values), np.nan)
        peak = int(group["layer"].to_numpy()[int(np.argmax(values))])
        top = int(group["layer"].max())
        for layer, value, share in zip(group["layer"], values, normalised):
            rows.append((model, task, int(layer), float(value), float(share), peak, int(layer) / top if top else 0.0))
    return pd.DataFrame(rows, columns=["model", "task", "layer", "value", "normalised", "peak_layer",
                                       "relative_depth"])


def probing_summary(scores: pd.DataFrame, *, pretrained: str = "pretrained", metric: str = "macro_f1") -> pd.DataFrame:
    """Per (model, task): the numbers the paper's probing claims are about.

    Columns model, task, layer0, best, peak_layer, last (percent at layer 0, the best layer and the
    last layer), last_minus_best, and for a fine-tuned model (any model other than ``pretrained``)
    mean_abs_gap (mean over layers of |model - pretrained|), upper_half_gap (mean of model - pretrained
    over the upper half of the layers); NaN for the pre-trained model itself.
    """
    heat = ability_heatmap(scores, metric=metric)
    base = heat[heat["model"] == pretrained].set_index(["task", "layer"])["value"]
    rows = []
    for (model, task), group in heat.groupby(["model", "task"], sort=False):
        group = group.set_index("layer")["value"].sort_index()
        top = int(group.index.max())
        row = {"model": model, "task": task, "layer0": float(group.iloc[0]), "best": float(group.max()),
               "peak_layer": int(group.idxmax()), "last": float(group.loc[top]),
               "last_minus_best": float(group.loc[top] - group.max()), "mean_abs_gap": np.nan,
               "upper_half_gap": np.nan}
        if model != pretrained and (task, 0) in base.index:
            reference = base.loc[task].reindex(group.index)
            gap = group - reference
            row["mean_abs_gap"] = float(gap.abs().mean())
            row["upper_half_gap"] = float(gap[gap.index > top / 2].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def table2_comparison(ours: Mapping[str, float]) -> pd.DataFrame:
    """The paper's Table 2 (BERT and GPT-2 fine-tuned, and the baselines) beside ``ours`` (dataset ->
    our model's score in percent: "squad" F1... as measured). Columns dataset, paper_baseline,
    paper_bert, paper_gpt2, ours."""
    rows = [(dataset, values["baseline"], values["bert"], values["gpt2"], ours.get(dataset, np.nan))
            for dataset, values in VANAKEN2019_TABLE2.items()]
    return pd.DataFrame(rows, columns=["dataset", "paper_baseline", "paper_bert", "paper_gpt2", "ours"])


def phase_comparison(curves: pd.DataFrame, *, num_layers: int) -> pd.DataFrame:
    """Where each measured phase peaks (from :func:`bert_insight.phase_curves`) beside the paper's
    reading of its plots. Columns measure, phase, peak_layer, relative_depth (peak / num_layers),
    paper_depth.

    Measures (docs/phases.md): same_word_ratio reads phase 1 (pieces of one word close together
    wherever they occur, as in a word-embedding space: its lowest point), sentence_purity the grouping
    by sentence the paper sees in its Figure 9, question_fact_ratio phase 3 (question tokens closest to
    the supporting fact: its lowest point), answer_separation phase 4. Phase 2 (entity matching) has no
    measure: it needs entity and coreference annotations the QA data does not have.
    """
    require_columns(curves, ("measure", "layer", "mean", "peak"), what="curves", made_by="bert_insight.phase_curves")
    phase_of = {"same_word_ratio": "semantic_clustering", "sentence_purity": "sentence_grouping",
                "question_fact_ratio": "question_fact_matching", "answer_separation": "answer_extraction"}
    paper = VANAKEN2019_PHASES.set_index("phase")["paper_depth"]
    rows = []
    for measure, phase in phase_of.items():
        peaks = curves[(curves["measure"] == measure) & curves["peak"]]
        if peaks.empty:
            continue
        layer = int(peaks["layer"].iloc[0])
        rows.append((measure, phase, layer, layer / num_layers, paper[phase]))
    return pd.DataFrame(rows, columns=["measure", "phase", "peak_layer", "relative_depth", "paper_depth"])
