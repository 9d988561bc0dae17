"""Benchmark: bert_insight.layer_deeplift against layer_ig (50 steps) and captum's LayerDeepLift.

    python benchmarks/layer_deeplift.py           # MiniLM (3 examples) and a BERT-base-sized model (1)
    python benchmarks/layer_deeplift.py --quick   # smoke run: MiniLM, 1 example, 128 tokens

The same SQuAD 1.1 held-out examples as benchmarks/layer_ig.py, hidden states 0..L-1, targets start and
end. Contenders, one process:
  layer_ig         precision fp32, n_steps 50 (the paper's setting), zero baseline at each layer;
  deeplift zero    layer_deeplift(baseline="zero"): the same baseline as layer_ig;
  deeplift input   layer_deeplift(baseline="reference_input"): question and context tokens -> [PAD];
  captum           captum.attr.LayerDeepLift looped over layers and targets, same [PAD] reference input,
                   on the model's own forward.
Printed per model: seconds per example, the ratio of layer_ig's time to each DeepLIFT's (target: >= 15x
on the BERT-base-sized model), the largest summation-to-delta gap |sum(scores) - (F(x) - F(x'))| /
|F(x) - F(x')| of each DeepLIFT, and the mean Spearman correlation of per-token importance with layer_ig
over (example, layer, target) -- reported, not a target: they are different methods.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.layer_ig import bert_base_handle, load_examples, minilm_handle  # noqa: E402
from bert_insight.attribution.layer_deeplift import layer_deeplift  # noqa: E402
from bert_insight.attribution.layer_ig import layer_ig  # noqa: E402
from bert_insight.models.default import cpu_name  # noqa: E402
from bert_insight.qa import analysis_windows, predict  # noqa: E402
from bert_insight.testing import module_holding_layer  # noqa: E402


def timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def captum_deeplift(handle, windows, layers) -> tuple[float, float]:
    """captum's LayerDeepLift per window, layer and target: (seconds, largest relative summation gap)."""
    from captum.attr import LayerDeepLift

    model, gaps, seconds = handle.model, [], 0.0
    for window, start_index, end_index in windows:
        inputs = handle.batch_inputs([window])
        kept = torch.tensor([sequence is None for sequence in window.sequence_ids])
        reference = torch.where(kept, inputs["input_ids"][0], handle.pad_token_id)[None]
        extra = {key: value for key, value in inputs.items() if key not in ("input_ids", "attention_mask")}
        for target, index in (("start", start_index), ("end", end_index)):
            class Target(torch.nn.Module):  # captum wants a module whose output it indexes
                def __init__(self):
                    super().__init__()
                    self.inner = model

                def forward(self, input_ids):
                    out = self.inner(input_ids=input_ids, **{k: v.expand(len(input_ids), -1) for k, v in extra.items()})
                    return (out.start_logits if target == "start" else out.end_logits)[:, index: index + 1]

            wrapper = Target().eval()
            for layer in layers:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    explainer = LayerDeepLift(wrapper, module_holding_layer(handle, layer))
                    began = time.perf_counter()
                    attribution, delta = explainer.attribute(inputs["input_ids"], baselines=reference, target=0,
                                                             return_convergence_delta=True)
                    seconds += time.perf_counter() - began
                with torch.no_grad():
                    change = float(wrapper(inputs["input_ids"])[0, 0] - wrapper(reference)[0, 0])
                gaps.append(abs(float(delta.sum())) / max(abs(change), 1e-12))
    return seconds, max(gaps)


def spearman_with_ig(deeplift: pd.DataFrame, ig: pd.DataFrame) -> float:
    keys = ["example_id", "layer", "target", "token_index"]
    joined = deeplift[keys + ["importance"]].merge(ig[keys + ["importance"]], on=keys, suffixes=("_dl", "_ig"))
    joined = joined[joined["importance_ig"] > 0]  # passage tokens
    values = [part["importance_dl"].rank().corr(part["importance_ig"].rank())
              for _, part in joined.groupby(["example_id", "layer", "target"])]
    return float(np.nanmean(values))


def bench(label: str, handle, examples: pd.DataFrame, args) -> dict:
    settings = dict(max_length=args.max_length, doc_stride=args.doc_stride)
    predictions = predict(handle, examples, progress=False, **settings)
    layers = list(range(handle.num_layers))
    n = len(examples)
    common = dict(predictions=predictions, layers=layers, progress=False)
    layer_deeplift(handle, examples.head(1), **common)  # warm-up (first-call allocations)
    (ig, _), ig_seconds = timed(lambda: layer_ig(handle, examples, n_steps=args.n_steps, **common))
    (zero, zero_gap, _), zero_seconds = timed(lambda: layer_deeplift(handle, examples, **common))
    (reference, reference_gap, _), reference_seconds = timed(
        lambda: layer_deeplift(handle, examples, baseline="reference_input", **common))
    row = {
        "model": label, "examples": n, "tokens": int(np.mean([len(w) for w, _, _ in
                                                               analysis_windows(handle, examples, predictions=predictions)])),
        "layer_ig_s": ig_seconds / n,
        "deeplift_zero_s": zero_seconds / n, "ratio_zero": ig_seconds / zero_seconds,
        "gap_zero": float(zero_gap["relative_delta"].max()),
        "deeplift_input_s": reference_seconds / n, "ratio_input": ig_seconds / reference_seconds,
        "gap_input": float(reference_gap["relative_delta"].max()),
        "spearman_zero_vs_ig": spearman_with_ig(zero, ig), "spearman_input_vs_ig": spearman_with_ig(reference, ig),
    }
    if not args.skip_captum:
        windows = analysis_windows(handle, examples, predictions=predictions)
        captum_seconds, captum_gap = captum_deeplift(handle, windows, layers)
        row.update(captum_s=captum_seconds / n, captum_gap=captum_gap)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: MiniLM, 1 example, 128 tokens")
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--bert-base-examples", type=int, default=1)
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--skip-bert-base", action="store_true")
    parser.add_argument("--skip-captum", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.examples, args.max_length, args.doc_stride, args.skip_bert_base = 1, 128, 64, True
    print(f"CPU: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    handle, how = minilm_handle()
    print(f"MiniLM: {how}")
    rows.append(bench("MiniLM-L6", handle, load_examples(args.examples), args))
    if not args.skip_bert_base:
        base, how = bert_base_handle(handle.tokenizer)
        print(f"BERT-base size: {how}")
        rows.append(bench("BERT-base size", base, load_examples(args.bert_base_examples), args))
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))
    for row in rows:
        verdict = "PASS" if row["ratio_zero"] >= 15 else "FAIL"
        print(f"{row['model']}: layer_deeplift (zero baseline) {row['ratio_zero']:.1f}x faster than layer_ig at "
              f"{args.n_steps} steps (target 15x on BERT-base size: {verdict if row['model'] != 'MiniLM-L6' else 'n/a'}); "
              f"largest summation gap {max(row['gap_zero'], row['gap_input']):.1e}"
              + (f"; captum LayerDeepLift {row['captum_s']:.2f} s/example, gap {row['captum_gap']:.1e}"
                 if "captum_s" in row else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
