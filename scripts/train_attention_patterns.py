"""Train the shipped attention-pattern CNN and the feature baseline on the labelled set's train split.

    .venv/bin/python scripts/train_attention_patterns.py [--cv]

Reads bert_insight/data/bundled/attention_patterns/ (maps.csv, maps.npz: scripts/build_attention_patterns.py),
fits :class:`AttentionPatternClassifier` and :func:`feature_baseline` on the rows with split == "train",
reports macro F1 and per-class F1 of both on split == "heldout" (never seen in training), and saves the
CNN (classifier.npz + classifier.json, whose ``info`` records the held-out scores, the class counts,
the audit counts, the training time and the CPU) into the same folder. ``--cv`` only reports grouped
4-fold cross-validation on the train split (for choosing settings without touching the held-out part).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402
from sklearn.model_selection import StratifiedGroupKFold  # noqa: E402

from bert_insight.attention.patterns import (  # noqa: E402
    FEATURE_NAMES,
    PATTERN_CLASSES,
    AttentionPatternClassifier,
    bundled_patterns_dir,
    feature_baseline,
    load_labelled_patterns,
)
from bert_insight.models.default import cpu_name  # noqa: E402

SEED = 0


def scores(truth, predicted) -> dict:
    per_class = f1_score(truth, predicted, labels=list(PATTERN_CLASSES), average=None, zero_division=0)
    return {"macro_f1": float(f1_score(truth, predicted, labels=list(PATTERN_CLASSES), average="macro",
                                       zero_division=0)),
            "f1": {name: round(float(value), 4) for name, value in zip(PATTERN_CLASSES, per_class)},
            "accuracy": float(np.mean(np.asarray(truth) == np.asarray(predicted)))}


def report(name: str, result: dict) -> None:
    per_class = "  ".join(f"{label} {value:.3f}" for label, value in result["f1"].items())
    print(f"{name:>9}: macro F1 {result['macro_f1']:.4f}  accuracy {result['accuracy']:.3f}  |  {per_class}")


def cross_validate(table: pd.DataFrame, inputs: np.ndarray) -> None:
    train = table["split"].to_numpy() == "train"
    part, images = table[train].reset_index(drop=True), inputs[train]
    groups = (part["task"] + "/" + part["example_id"]).to_numpy()
    folds = StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=SEED)
    cnn, baseline = [], []
    for fold, (fit_rows, test_rows) in enumerate(folds.split(part, part["label"], groups)):
        labels = part["label"].to_numpy()
        model = AttentionPatternClassifier(seed=SEED).fit(images[fit_rows], labels[fit_rows])
        cnn.append(scores(labels[test_rows], model.predict(images[test_rows]))["macro_f1"])
        features = part[list(FEATURE_NAMES)]
        logistic = feature_baseline(seed=SEED).fit(features.iloc[fit_rows], labels[fit_rows])
        baseline.append(scores(labels[test_rows], logistic.predict(features.iloc[test_rows]))["macro_f1"])
        print(f"fold {fold}: CNN {cnn[-1]:.4f}  baseline {baseline[-1]:.4f}", flush=True)
    print(f"mean: CNN {np.mean(cnn):.4f}  baseline {np.mean(baseline):.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(bundled_patterns_dir()))
    parser.add_argument("--output", default=str(bundled_patterns_dir()))
    parser.add_argument("--cv", action="store_true", help="only cross-validate on the train split")
    args = parser.parse_args()
    table, inputs = load_labelled_patterns(args.data)
    if args.cv:
        cross_validate(table, inputs)
        return 0
    train = table["split"].to_numpy() == "train"
    heldout = ~train
    labels = table["label"].to_numpy()

    started = time.perf_counter()
    cnn = AttentionPatternClassifier(seed=SEED).fit(inputs[train], labels[train])
    train_seconds = time.perf_counter() - started
    cnn_scores = scores(labels[heldout], cnn.predict(inputs[heldout]))
    features = table[list(FEATURE_NAMES)]
    baseline = feature_baseline(seed=SEED).fit(features[train], labels[train])
    baseline_scores = scores(labels[heldout], baseline.predict(features[heldout]))
    rule_scores = scores(labels[heldout], table["rule_label"].to_numpy()[heldout])
    print(f"train {int(train.sum())} maps, held out {int(heldout.sum())}; CNN trained in {train_seconds:.1f} s "
          f"({torch.get_num_threads()} threads, {cpu_name()})")
    report("CNN", cnn_scores)
    report("baseline", baseline_scores)
    report("rules", rule_scores)

    def counts(column: str, rows=slice(None)) -> dict:
        values = table.loc[rows, column].value_counts()
        return {name: int(values.get(name, 0)) for name in PATTERN_CLASSES}

    info = {
        "name": "bert-insight attention-pattern CNN v1",
        "heldout_macro_f1": cnn_scores["macro_f1"],
        "heldout": {"cnn": cnn_scores, "feature_baseline": baseline_scores, "rules": rule_scores},
        "n_maps": {"train": int(train.sum()), "heldout": int(heldout.sum())},
        "class_counts": {"label": counts("label"), "rule_label": counts("rule_label"),
                         "train": counts("label", train), "heldout": counts("label", heldout)},
        "audit": {"n_audited": int(table["audited"].sum()),
                  "n_changed": int((table["label"] != table["rule_label"]).sum())},
        "train_seconds": round(train_seconds, 1),
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "torch": torch.__version__,
    }
    path = cnn.save(args.output, info=info)
    size = sum(file.stat().st_size for file in path.glob("classifier.*"))
    print(f"saved {path} (classifier.npz + classifier.json, {size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
