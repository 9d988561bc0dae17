"""Benchmark: Tenney et al. 2019's edge-probing suite on MiniLM, and training all probes together.

    python benchmarks/probing.py                         # the suite: 8 tasks, up to 10,000 training
                                                         # targets each (needs ../shared/data)
    python benchmarks/probing.py --tasks pos coref --n-train 3000 --ratio-tasks pos   # a smaller run
    python benchmarks/probing.py --quick                 # bundled slices, a few minutes

Per task: build it (the data builders), encode it (hidden states of the target tokens, all 7 layers,
float16), train the L+1 single-layer probes, the L+1 cumulative probes and the scalar mix as one
bank (13 distinct probes for 6 layers: the single-layer probe 0 is P^(0), the mix is P^(6)), score
them on up to --n-eval targets of the dev split. For the --ratio-tasks, every probe is trained again
alone on the same cached states with the same settings and seed: seconds of both and the ratio, and
each probe's F1 both ways (dropout draws differ between the two, so F1s agree within seed noise).
Wall time covers everything from building the first task to scoring the last; peak memory is the
process's maximum resident set size.
Targets (issue 11, 2 cores): the whole suite in under 45 minutes, peak memory under 6 GB, joint
training at least 3x faster than one probe at a time.
Model: the pre-trained all-MiniLM-L6-v2 (a sentence-embedding model, not the paper's MLM BERT).
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASKS = ("pos", "consts", "deps", "entities", "srl", "coref", "spr", "relations")
TARGETS = {"suite_minutes": 45, "peak_gb": 6, "joint_ratio": 3.0}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-eval", type=int, default=2_000)
    parser.add_argument("--source", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--ratio-tasks", nargs="*", default=["pos", "coref"])
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="bundled slices, 1,500 training targets, 2 tasks")
    parser.add_argument("--cache-dir", default=None, help="keep encoded states here (default: none)")
    args = parser.parse_args()

    import numpy as np
    import torch

    import bert_insight as bi
    from bert_insight.models.default_classifiers import base_classifier
    from bert_insight.probing.edge import probe_encoded
    from bert_insight.probing.train import ProbeSettings

    source = None if args.quick else args.source
    tasks = ["pos", "coref"] if args.quick else args.tasks
    n_train = 1_500 if args.quick else args.n_train
    ratio_tasks = ["pos"] if args.quick else args.ratio_tasks
    settings = ProbeSettings(**({"max_epochs": args.max_epochs} if args.max_epochs else {}))
    print(f"CPU: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; probe settings "
          f"{settings}", flush=True)
    torch.manual_seed(0)
    handle = base_classifier("sst2", device="cpu")
    started = time.perf_counter()
    rows, summaries = [], []
    for name in tasks:
        t0 = time.perf_counter()
        task = bi.load_edge_task(name, source)
        t1 = time.perf_counter()
        train_task = task.sample("train", n_train, seed=0)
        eval_task = task.sample("dev" if "dev" in task.splits else "test", args.n_eval, seed=0)
        options = dict(layers="all", cache_dir=args.cache_dir, progress=False)
        train = bi.encode_targets(handle, train_task, **options)
        evaluation = bi.encode_targets(handle, eval_task, **options)
        t2 = time.perf_counter()
        joint = probe_encoded(train, evaluation, modes=("layer", "cumulative", "mix"), layers=range(7), num_layers=6,
                              settings=settings, seed=0, task=eval_task)
        t3 = time.perf_counter()
        row = {"task": name, "n_train": len(train), "n_eval": len(evaluation), "tokens": len(train.states),
               "build_s": t1 - t0, "encode_s": t2 - t1, "joint_s": t3 - t2, "epochs": joint.history["epochs"]}
        summaries.append(joint.summary)
        print(f"{name}: {len(train)} train / {len(evaluation)} eval targets; build {t1 - t0:.0f} s, encode "
              f"{t2 - t1:.0f} s, {len(set(joint.probes.values()))} probes together {t3 - t2:.0f} s "
              f"({joint.history['epochs']} epochs)", flush=True)
        if name in ratio_tasks:
            f1 = joint.scores[joint.scores["metric"] == "f1"]
            alone_seconds, differences = 0.0, []
            seen = {}
            for (mode, layer), index in sorted(joint.probes.items(), key=lambda item: item[1]):
                if index in seen:
                    continue
                t4 = time.perf_counter()
                single = probe_encoded(train, evaluation, modes=(mode,), layers=[layer], num_layers=6,
                                       settings=settings, seed=0)
                alone_seconds += time.perf_counter() - t4
                value = single.scores[(single.scores["metric"] == "f1")]["value"].iloc[0]
                together = f1[(f1["mode"] == mode) & (f1["layer"] == layer)]["value"].iloc[0]
                seen[index] = (mode, layer, together, value)
                differences.append(abs(together - value))
            row.update(alone_s=alone_seconds, ratio=alone_seconds / row["joint_s"],
                       max_f1_difference=max(differences), mean_f1_difference=float(np.mean(differences)))
            print(f"  one at a time: {alone_seconds:.0f} s -> joint is {row['ratio']:.2f}x faster; F1 per probe "
                  "(together / alone):", flush=True)
            for mode, layer, together, value in seen.values():
                print(f"    {mode:>10} {layer}: {together:6.2f} / {value:6.2f}", flush=True)
        rows.append(row)
    wall = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print("\n" + pd.DataFrame(rows).round(2).to_string(index=False))
        print("\n" + pd.concat(summaries, ignore_index=True).round(3).to_string(index=False))
    print(f"\nwall time {wall / 60:.1f} min (target < {TARGETS['suite_minutes']} for the full suite); peak memory "
          f"{peak_gb:.2f} GB (target < {TARGETS['peak_gb']})")
    ratios = [row["ratio"] for row in rows if "ratio" in row]
    if ratios:
        print(f"joint training vs one probe at a time: {min(ratios):.2f}x-{max(ratios):.2f}x "
              f"(target >= {TARGETS['joint_ratio']}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
