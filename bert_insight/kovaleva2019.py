"""Kovaleva et al. 2019, Table 1: GLUE scores of BERT pre-trained (untrained head), fine-tuned from a
random (normal) initialisation, and fine-tuned from the pre-trained weights, here for MiniLM-L6.

``kovaleva2019_table1`` measures the three columns per task with the default classifiers' recipe
(:mod:`bert_insight.models.default_classifiers`) and puts the paper's BERT-base numbers beside them.
The paper fine-tuned BERT-base (110M parameters, raw MLM pre-training) on the full GLUE training
sets; ours is all-MiniLM-L6-v2 (22M, a sentence-embedding model distilled and then contrastively
trained), on the data available offline (see each row's ``data`` column), so the table compares
trends, not numbers.
"""

from __future__ import annotations

import os
import time

import pandas as pd

from .classification import evaluate_classifier
from .errors import BertInsightInputError
from .models.default_classifiers import (
    CLASSIFIER_SETTINGS,
    DEFAULT_TASKS,
    base_classifier,
    check_default_task,
    load_default_classifier,
    recipe_data,
    use_bf16_for,
)
from .models.finetune import finetune_classifier

#: The three model columns of Table 1, in the paper's order.
TABLE1_MODELS = ("pre-trained, untrained head", "fine-tuned from random init", "fine-tuned from pre-trained")
#: Table 1 of the paper (BERT-base, GLUE dev sets): task -> metric -> the three columns. The paper labels
#: STS-B's metric "Acc"; a regression task has none, so we read it as the correlation GLUE reports.
PAPER_TABLE1 = {
    "mrpc": {"f1": (0.0, 81.2, 87.9), "accuracy": (31.6, 68.3, 82.3)},
    "stsb": {"pearson": (33.1, 2.9, 82.7)},
    "sst2": {"accuracy": (49.1, 80.5, 92.0)},
    "qqp": {"f1": (0.0, 0.0, 65.2), "accuracy": (60.9, 63.2, 78.6)},
    "rte": {"accuracy": (52.7, 52.7, 64.6)},
    "qnli": {"accuracy": (52.8, 49.5, 84.4)},
    "mnli": {"accuracy": (31.7, 61.0, 78.6)},
}
TABLE1_COLUMNS = ("task", "metric", "model", "value", "paper_value", "n_eval_examples", "seconds", "data")


def kovaleva2019_table1(
    tasks: tuple[str, ...] | list[str] = DEFAULT_TASKS,
    *,
    glue_dir: str | os.PathLike | None = None,
    precision: str = "auto",
    progress: bool = True,
) -> pd.DataFrame:
    """Table 1 for MiniLM-L6: per task, three models scored on the same evaluation examples.

    * "pre-trained, untrained head": all-MiniLM-L6-v2 with a new head (seeded), not trained;
    * "fine-tuned from random init": the same architecture re-initialised from its config (normal,
      std 0.02), fine-tuned with the default recipe (batch 32, 3 epochs, lr 5e-5);
    * "fine-tuned from pre-trained": the task's default classifier (built first if absent).

    Returns a long frame with columns task, metric (accuracy, f1, pearson, spearman), model (one of
    :data:`TABLE1_MODELS`), value (ours, percent), paper_value (BERT-base in the paper; NaN where the
    paper has none, e.g. Spearman), n_eval_examples, seconds (training time; 0 for the untrained
    model) and data (what trained and evaluated it). The random-init fine-tune costs as much as a
    default build: about a minute (RTE) to ten (SST-2) on 2 CPU cores.
    """
    import torch

    if isinstance(tasks, str):
        tasks = [tasks]
    tasks = [check_default_task(task) for task in tasks]
    if not tasks:
        raise BertInsightInputError("tasks is empty; pass GLUE task names such as ('mrpc', 'rte').")
    use_bf16 = use_bf16_for(precision)
    rows = []
    for task in tasks:
        train, evaluation, description = recipe_data(task, glue_dir)
        evaluate = dict(max_length=CLASSIFIER_SETTINGS["max_length"], progress=progress)
        torch.manual_seed(CLASSIFIER_SETTINGS["seed"])
        untrained = base_classifier(task)
        measured = {TABLE1_MODELS[0]: (evaluate_classifier(untrained, evaluation, **evaluate)[0], 0.0)}
        started = time.perf_counter()
        random_init = finetune_classifier(untrained, train, init="random", bf16=use_bf16, progress=progress,
                                          **CLASSIFIER_SETTINGS)
        measured[TABLE1_MODELS[1]] = (evaluate_classifier(random_init, evaluation, **evaluate)[0],
                                      time.perf_counter() - started)
        default = load_default_classifier(task, glue_dir=glue_dir)
        measured[TABLE1_MODELS[2]] = (evaluate_classifier(default, evaluation, **evaluate)[0],
                                      float(default.card.get("training_seconds", float("nan"))))
        paper = PAPER_TABLE1.get(task, {})
        for column, model_name in enumerate(TABLE1_MODELS):
            scores, seconds = measured[model_name]
            for row in scores.itertuples():
                paper_values = paper.get(row.metric)
                rows.append({"task": task, "metric": row.metric, "model": model_name, "value": float(row.value),
                             "paper_value": paper_values[column] if paper_values else float("nan"),
                             "n_eval_examples": int(row.n_examples), "seconds": round(seconds, 1),
                             "data": description})
    frame = pd.DataFrame(rows, columns=list(TABLE1_COLUMNS))
    frame.attrs = {"function": "kovaleva2019_table1", "params": {"tasks": list(tasks), "precision": precision,
                                                                 "bf16": use_bf16, "glue_dir": str(glue_dir)}}
    return frame


def table1_wide(table: pd.DataFrame) -> pd.DataFrame:
    """``kovaleva2019_table1``'s frame as the paper lays it out: one row per task and metric, ours and
    the paper's value for each of the three models side by side (columns ``<model> | ours`` and
    ``<model> | paper``)."""
    wide = table.pivot_table(index=["task", "metric"], columns="model", values=["value", "paper_value"],
                             sort=False)
    columns = []
    for model_name in TABLE1_MODELS:
        for source, label in (("value", "ours"), ("paper_value", "paper")):
            if (source, model_name) in wide.columns:
                columns.append(((source, model_name), f"{model_name} | {label}"))
    result = wide[[key for key, _ in columns]]
    result.columns = [name for _, name in columns]
    return result.round(1)


def main(argv: list[str] | None = None) -> int:
    """``python -m bert_insight.kovaleva2019 [--glue-dir PATH] [--tasks mrpc rte ...] [--output CSV]``."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m bert_insight.kovaleva2019", description=main.__doc__)
    parser.add_argument("--glue-dir", default=None, help="GLUE data folder (holding MRPC/, STS-B/, ...)")
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--output", default="runs/kovaleva2019_table1.csv", help="where the long frame goes")
    args = parser.parse_args(argv)
    try:
        table = kovaleva2019_table1(args.tasks, glue_dir=args.glue_dir, precision=args.precision)
    except BertInsightInputError as error:
        print(f"error: {error}")
        return 2
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table1_wide(table).to_string())
    print(f"written: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
