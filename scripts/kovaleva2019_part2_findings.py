"""The head-disabling figures docs/attention.md quotes for Kovaleva et al. 2019 (section 4.6, Figures 8-9).

    .venv/bin/python scripts/kovaleva2019_part2_findings.py --glue-dir ../shared/data/glue [--n 300]

For each default GLUE classifier (and the QA default on held-out SQuAD), disables every single head and
every whole layer ("uniform", the paper's), on at most ``--n`` examples of the task's evaluation split
(a seeded sample), and prints per task: the intact score, the best and worst single head and whole layer
with their paired-bootstrap 95% intervals and p-values, and how many single heads improve the score
with an interval above 0. Writes the frames to runs/kovaleva2019_part2/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

import bert_insight as bi  # noqa: E402
from bert_insight.models.default_classifiers import DEFAULT_TASKS, recipe_data  # noqa: E402

#: The metric the paper's Figures 8-9 plot per task (STS-B: a correlation; the others accuracy).
FIGURE_METRIC = {"mrpc": "accuracy", "qnli": "accuracy", "rte": "accuracy", "sst2": "accuracy", "stsb": "pearson",
                 "qa": "f1"}


#: The heads above the 99th percentile in the relation-head analysis (part 1), whose disabling the
#: paper's Discussion checks (its two frame-semantic heads did not matter for any GLUE task).
RELATION_HEADS = ("2-8", "3-1")


def describe(row) -> str:
    return (f"{row.ablation} {row.delta:+.2f} [{row.ci_low:+.2f}, {row.ci_high:+.2f}] p={row.p_value:.3f}")


def summarise(frame: pd.DataFrame, task: str) -> str:
    metric = FIGURE_METRIC[task]
    rows = frame[frame["metric"] == metric]
    heads, layers = rows[rows["head"] != "all"], rows[rows["head"] == "all"]
    heads = heads.sort_values("delta")
    layers = layers.sort_values("delta")
    gains = heads[heads["ci_low"] > 0]
    losses = heads[heads["ci_high"] < 0]
    return (f"{task} ({metric}, n={int(rows['n_examples'].iloc[0])}): intact {rows['baseline'].iloc[0]:.2f}\n"
            f"  best head  {describe(heads.iloc[-1])}\n  worst head {describe(heads.iloc[0])}\n"
            f"  heads with delta > 0: {int((heads['delta'] > 0).sum())} of {len(heads)}; interval above 0: "
            f"{len(gains)}; below 0: {len(losses)}; mean single-head delta {heads['delta'].mean():+.3f}\n"
            f"  relation heads (docs/attention.md, Figure 3): "
            + ", ".join(describe(row) for row in heads[heads["ablation"].isin(RELATION_HEADS)].itertuples()) + "\n"
            f"  best layer  {describe(layers.iloc[-1])}\n  worst layer {describe(layers.iloc[0])}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--n", type=int, default=300, help="evaluation examples per task (seeded sample)")
    parser.add_argument("--qa-n", type=int, default=100, help="held-out SQuAD questions for the QA default")
    parser.add_argument("--tasks", nargs="+", default=[*DEFAULT_TASKS, "qa"])
    parser.add_argument("--mode", default="uniform", choices=["uniform", "zero"])
    parser.add_argument("--output", default="runs/kovaleva2019_part2")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for task in args.tasks:
        if task == "qa":
            handle = bi.load_qa_model()
            examples = bi.load_squad(split="heldout").sample(n=args.qa_n, random_state=0)
        else:
            _, evaluation, _ = recipe_data(task, args.glue_dir)
            examples = evaluation.sample(n=min(args.n, len(evaluation)), random_state=0)
            handle = bi.load_classifier(task=task, glue_dir=args.glue_dir)
        frames = [bi.ablate_heads(handle, examples, ablations=kind, mode=args.mode, progress=False)
                  for kind in ("each", "layers")]
        frame = pd.concat(frames, ignore_index=True)
        frame.to_csv(output / f"ablate_heads_{task}_{args.mode}.csv", index=False)
        print(summarise(frame, task), flush=True)
        print(f"  ({time.perf_counter() - started:.0f} s so far)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
