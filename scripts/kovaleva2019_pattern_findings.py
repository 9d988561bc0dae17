"""The attention pattern proportions docs/attention.md quotes (Kovaleva et al. 2019, Figure 2).

    .venv/bin/python scripts/kovaleva2019_pattern_findings.py --glue-dir ../shared/data/glue [--n 500]

Needs the default classifiers (`make classifiers`) and the QA default. Classifies every (example,
layer, head) map of each fine-tuned GLUE default, of the pre-trained MiniLM on the same inputs, and of
the QA default on held-out SQuAD questions with the shipped pattern classifier; prints the share of each
class per model and task, and the heterogeneous share by layer; writes the frames to
runs/kovaleva2019_patterns/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

import bert_insight as bi  # noqa: E402
from bert_insight.models.default_classifiers import DEFAULT_TASKS, base_classifier, recipe_data  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--n", type=int, default=500, help="evaluation examples per task (the paper: up to 1,000)")
    parser.add_argument("--qa-n", type=int, default=200, help="held-out SQuAD questions for the QA default")
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--output", default="runs/kovaleva2019_patterns")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    frames = []
    for task in args.tasks:
        _, evaluation, _ = recipe_data(task, args.glue_dir)
        examples = evaluation.sample(n=min(args.n, len(evaluation)), random_state=1)
        torch.manual_seed(0)
        for name, handle in (("pre-trained", base_classifier(task)),
                             ("fine-tuned", bi.load_classifier(task=task, glue_dir=args.glue_dir))):
            frames.append(bi.attention_classes(handle, examples, progress=False).assign(model=name))
        print(f"{task}: {len(examples)} examples, done after {time.perf_counter() - started:.0f} s", flush=True)
    squad = bi.load_squad(split="heldout").sample(n=args.qa_n, random_state=1)
    frames.append(bi.attention_classes(bi.load_qa_model(), squad, progress=False).assign(model="fine-tuned"))
    classes = pd.concat(frames, ignore_index=True)
    classes.to_csv(output / "attention_classes.csv.gz", index=False)
    proportions = bi.class_proportions(classes)
    proportions.to_csv(output / "class_proportions.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print("\nclass proportions (share of all layer x head maps over the examples)")
        print(proportions.pivot_table(index=["model", "task"], columns="class", values="proportion")
              .reindex(columns=proportions["class"].unique()).round(3).to_string())
        print("\nheterogeneous share by layer")
        print(classes.assign(heterogeneous=classes["class"].eq("heterogeneous"))
              .groupby(["model", "task", "layer"])["heterogeneous"].mean().round(3).unstack("layer").to_string())
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
