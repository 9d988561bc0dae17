"""Benchmark: bert_insight.layer_ig against captum's LayerIntegratedGradients.

    python benchmarks/layer_ig.py            # the full run (see benchmarks/README.md for the last results)
    python benchmarks/layer_ig.py --quick    # a smoke run: 1 example, short windows, few steps

One process, the same SQuAD 1.1 dev examples (held-out articles) for every contender:
  (a) the MiniLM-L6 QA model (the offline default when built, else all-MiniLM-L6-v2 with a new QA head),
  (b) a BERT-base-sized BertForQuestionAnswering (12 layers, 768, 12 heads) with random weights (biases
      and LayerNorms redrawn as in the tests, otherwise layer IG is degenerate).
Contenders, all at hidden states 0..L-1, targets start and end, zero baseline at the layer:
  captum   LayerIntegratedGradients looped over layers and targets on the model's own forward (the
           hidden state is gated to zero for the baseline), riemann_right, best internal_batch_size of
           a few tried on the first example (tuning not timed);
  fp32     layer_ig(precision="fp32"); bf16: layer_ig(precision="bf16").
Reported: seconds per example, ratio to captum, agreement with captum (max |difference| of per-token
score and norm relative to captum's largest; Pearson correlation of importance; share of (example,
layer, target) with the same top-5 context words), and achieved GFLOP/s (FLOPs counted by torch's
FlopCounterMode, extrapolated linearly in n_steps from two small counted runs) as a share of a
matrix-product peak measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import flop_registry  # noqa: E402

from bert_insight.attribution import layer_ig as layer_ig_module  # noqa: E402
from bert_insight.attribution.layer_ig import layer_ig  # noqa: E402
from bert_insight.device import bf16_is_fast, reused_heap  # noqa: E402
from bert_insight.models.handle import from_model  # noqa: E402
from bert_insight.models.loading import load_qa_model  # noqa: E402
from bert_insight.qa import analysis_windows, predict  # noqa: E402
from bert_insight.testing import captum_layer_ig, redraw_parameters, top_word_sets  # noqa: E402

TARGET_NAMES = ("start", "end")


# ---- environment --------------------------------------------------------------------------------------
def matmul_peak(dtype: torch.dtype, size: int, repeats: int = 3) -> float:
    """GFLOP/s of the best of ``repeats`` square matrix products of ``size``."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def matmul_peaks(args) -> dict:
    """fp32 and bf16 peaks (GFLOP/s) and the product sizes they were measured at."""
    size = 1024 if args.quick else 2048
    # Emulated bf16 products run at well under 1 GFLOP/s: a smaller one measures the same rate.
    bf16_size = size if args.native_bf16 else 512
    return {"fp32": matmul_peak(torch.float32, size), "bf16": matmul_peak(torch.bfloat16, bf16_size),
            "fp32_size": size, "bf16_size": bf16_size}


def load_examples(n: int) -> pd.DataFrame:
    from bert_insight.data import load_squad

    # Held-out articles: the offline default model was not fine-tuned on them.
    return load_squad(split="heldout").head(n).reset_index(drop=True)


def minilm_handle():
    from bert_insight.models.store import default_model_dir, is_built

    if is_built():
        return load_qa_model(default_model_dir(), device="cpu"), "offline default (fine-tuned)"
    from bert_insight.models.offline import minilm_base_dir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        handle = load_qa_model(minilm_base_dir(), allow_new_qa_head=True, device="cpu")
    return handle, "all-MiniLM-L6-v2 + new QA head (default model not built)"


def bert_base_handle(tokenizer):
    import transformers as tf

    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=tokenizer.vocab_size)  # 12 layers, 768, 12 heads, 3072
    config._attn_implementation = "sdpa"
    model = redraw_parameters(tf.BertForQuestionAnswering(config))
    return from_model(model.eval(), tokenizer, name="random BERT-base", device="cpu"), "random weights"


# ---- captum, the reference (bert_insight.testing.captum_layer_ig, as in the tests) -------------------
def captum_frame(handle, window, start: int, end: int, layers, n_steps: int,
                 internal_batch_size: int | None) -> pd.DataFrame:
    """captum's attributions of one window as rows like layer_ig's (score, norm, importance)."""
    in_context = np.array([sequence == 1 for sequence in window.sequence_ids])
    rows = []
    for layer in layers:
        for target, index in (("start", start), ("end", end)):
            attribution, _ = captum_layer_ig(handle, window, layer, target, index, "riemann", n_steps,
                                             internal_batch_size)
            attribution = attribution.double()
            norm = attribution.norm(dim=-1).numpy()
            rows.append(pd.DataFrame({
                "example_id": window.example_id, "method": "layer_ig", "quadrature": "riemann",
                "layer": layer, "target": target,
                "token_index": np.arange(len(window)),
                "word_index": [-1 if w is None else w for w in window.word_ids],
                "segment": np.where(in_context, "context", "other"),
                "score": attribution.sum(-1).numpy(), "norm": norm,
                "importance": np.where(in_context, norm / norm[in_context].sum(), 0.0),
            }))
    return pd.concat(rows, ignore_index=True)


# ---- agreement and FLOPs -------------------------------------------------------------------------------
def agreement(ours: pd.DataFrame, reference: pd.DataFrame) -> dict:
    keys = ["example_id", "layer", "target", "token_index"]
    joined = reference.merge(ours, on=keys, suffixes=("_ref", "_ours"))
    assert len(joined) == len(reference), "frames do not cover the same tokens"
    worst = 0.0
    for _, group in joined.groupby(["example_id", "layer", "target"]):
        for column in ("score", "norm"):
            scale = group[f"{column}_ref"].abs().max()
            worst = max(worst, (group[f"{column}_ours"] - group[f"{column}_ref"]).abs().max() / scale)
    same_top = (top_word_sets(ours) == top_word_sets(reference)).mean()
    return {"max_rel_diff": worst,
            "importance_r": float(np.corrcoef(joined.importance_ref, joined.importance_ours)[0, 1]),
            "top5_same": float(same_top)}


_ONEDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None)


class _FlopCount(TorchDispatchMode):
    """Sums torch's own per-operator FLOP formulas (torch.utils.flop_counter.flop_registry).

    FlopCounterMode itself tracks modules with autograd hooks that clash with captum's hooks, so this
    mode counts the same operators without module tracking.
    """

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func._overloadpacket is _ONEDNN_LINEAR:  # layer_ig's CPU linear kernel (not in torch's registry)
            inputs, weight = args[0], args[1]
            self.total += 2 * inputs.numel() * weight.shape[0]
            return out
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def counted_flops(run) -> float:
    with _FlopCount() as counter:
        run()
    return float(counter.total)


def flops_at(n_steps: int, count_at) -> float:
    """FLOPs are affine in n_steps: count two small runs and extrapolate."""
    low, high = count_at(2), count_at(3)
    return low + (high - low) * (n_steps - 2)


# ---- one model -----------------------------------------------------------------------------------------
def bench_model(label: str, handle, how: str, examples: pd.DataFrame, args, peaks: dict) -> dict:
    print(f"\n=== {label}: {handle.name} ({how}); {handle.num_layers} layers, "
          f"hidden {handle.model.config.hidden_size}", flush=True)
    window_args = dict(max_length=args.max_length, doc_stride=args.doc_stride)
    predictions = predict(handle, examples, progress=False, **window_args)
    chosen = analysis_windows(handle, examples, predictions=predictions, **window_args)
    lengths = [len(window) for window, _, _ in chosen]
    print(f"examples {len(examples)}, window lengths {lengths}, n_steps {args.n_steps}", flush=True)
    layers = list(range(handle.num_layers))
    n_steps = args.n_steps

    # captum: pick its best internal_batch_size on the first example, layer 0, target start (untimed).
    first_window, first_start, _ = chosen[0]
    tried = {}
    for size in args.captum_batch_sizes:
        size = None if size == 0 else min(size, n_steps)
        if size in tried:
            continue
        start = time.perf_counter()
        captum_layer_ig(handle, first_window, 0, "start", first_start, "riemann", n_steps, size)
        tried[size] = time.perf_counter() - start
    best_size = min(tried, key=tried.get)
    print("captum internal_batch_size tried (s for layer 0, start): "
          + ", ".join(f"{'all' if k is None else k}: {v:.1f}" for k, v in tried.items())
          + f" -> {'all' if best_size is None else best_size}", flush=True)

    def time_ours(position: int, precision: str, chosen_layers=None) -> tuple[float, pd.DataFrame]:
        one = examples.iloc[[position]]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            frames = layer_ig(handle, one, layers=chosen_layers or layers, n_steps=n_steps, quadrature="riemann",
                              precision=precision, progress=False, predictions=predictions, **window_args)
        return time.perf_counter() - start, frames.attributions

    seconds = {"captum": [], "fp32": [], "bf16": []}
    frames = {"captum": [], "fp32": [], "bf16": []}
    # Both contenders run inside one reused heap for the whole loop (the allocator setting layer_ig runs
    # under), kept between calls as layer_ig keeps it between the windows of one call: the pages of the
    # buffers are touched once per run, not once per example (the levers table prices the difference).
    with reused_heap():
        # Untimed warm-up of ours, as captum's batch-size tuning above warms its kernels: oneDNN builds its
        # primitives on first use (about 0.7 s per process and precision, not per window length). The
        # first layer, whose path runs every block: the heap then holds the largest working set.
        for precision in ("fp32", "bf16") if args.native_bf16 else ("fp32",):
            time_ours(0, precision, layers[:1])
        for position, (window, start_index, end_index) in enumerate(chosen):
            # Interleave contenders per example so drifts in machine load hit all of them alike.
            begin = time.perf_counter()
            frames["captum"].append(captum_frame(handle, window, start_index, end_index, layers, n_steps,
                                                 best_size))
            seconds["captum"].append(time.perf_counter() - begin)
            for precision in ("fp32", "bf16") if args.native_bf16 else ("fp32",):
                elapsed, frame = time_ours(position, precision)
                seconds[precision].append(elapsed)
                frames[precision].append(frame)
            print(f"  example {position} ({len(window)} tokens): "
                  + ", ".join(f"{name} {values[-1]:.1f}s" for name, values in seconds.items() if values),
                  flush=True)

    bf16_slice = None
    if not args.native_bf16:
        # Emulated bf16 is far slower than fp32 here: time it on a slice (first example, the top layers),
        # next to fp32 on the same slice, and scale fp32's full-run ratio by the measured slowdown.
        slice_layers = layers[-args.bf16_layers:]
        fp32_seconds, _ = time_ours(0, "fp32", slice_layers)
        bf16_seconds, frame = time_ours(0, "bf16", slice_layers)
        frames["bf16"].append(frame)
        bf16_slice = {"layers": slice_layers, "fp32": fp32_seconds, "bf16": bf16_seconds}
        print(f"  bf16 slice (example 0, layers {slice_layers}): fp32 {fp32_seconds:.1f}s, "
              f"bf16 {bf16_seconds:.1f}s", flush=True)

    # FLOPs per example (first window). Both methods' cost is affine in the layer index (identical
    # blocks) and in n_steps, so count the first and last layer at 2 and 3 steps and extrapolate.
    last_window_index = chosen[0][2]

    def ours_count(layer):
        return lambda steps: counted_flops(lambda: layer_ig_module._attribute_window(
            handle, first_window, first_start, last_window_index, layers=[layer], targets=TARGET_NAMES,
            quadrature="riemann", n_steps=steps, precision="fp32", steps_per_batch=None,
            blocks=layer_ig_module.prepare_blocks(handle.adapter, handle.model, "fp32", torch.device("cpu"))))

    def captum_count(layer):  # one target; the other costs the same
        return lambda steps: 2 * counted_flops(lambda: captum_layer_ig(
            handle, first_window, layer, "start", first_start, "riemann", steps, None))

    def over_layers(count) -> float:
        first, last = flops_at(n_steps, count(layers[0])), flops_at(n_steps, count(layers[-1]))
        return len(layers) * (first + last) / 2

    flops = {"captum": over_layers(captum_count), "fp32": over_layers(ours_count)}
    flops["bf16"] = flops["fp32"]

    reference = pd.concat(frames["captum"], ignore_index=True)
    mean_captum = float(np.mean(seconds["captum"]))
    summary = {}
    for name in ("captum", "fp32", "bf16"):
        if not frames[name]:
            continue
        ours = pd.concat(frames[name], ignore_index=True)
        if seconds[name]:
            per_example = float(np.mean(seconds[name]))
            first_seconds = seconds[name][0]
        else:  # the emulated-bf16 slice
            slowdown = bf16_slice["bf16"] / bf16_slice["fp32"]
            per_example = float(np.mean(seconds["fp32"])) * slowdown
            first_seconds = seconds["fp32"][0] * slowdown
        # FLOPs were counted on the first example, so divide by that example's own time.
        gflops = flops[name] / first_seconds / 1e9
        row = {"seconds_per_example": per_example, "ratio_vs_captum": mean_captum / per_example,
               "gflop_per_example": flops[name] / 1e9, "gflops": gflops,
               "share_of_peak": gflops / peaks["bf16" if name == "bf16" else "fp32"]}
        if name != "captum":
            covered = reference.merge(ours[["example_id", "layer"]].drop_duplicates(), on=["example_id", "layer"])
            row.update(agreement(ours, covered))
        summary[name] = row
    table = pd.DataFrame(summary).T
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 200,
                           "display.max_columns", None):
        print(table, flush=True)
    if bf16_slice is not None:
        print("  (bf16 row: seconds and ratio scaled from the slice above; agreement on the slice only)")
    # The ratio is the product of two factors: fewer FLOPs than captum (the algorithm) and the speed per
    # FLOP against captum's (the kernels; below 1 where our smaller products and the elementwise work they
    # leave run at a lower share of the peak than captum's).
    for name in ("fp32", "bf16"):
        if name in summary:
            flop_ratio = summary["captum"]["gflop_per_example"] / summary[name]["gflop_per_example"]
            per_flop = summary[name]["ratio_vs_captum"] / flop_ratio
            target = 2.5 if name == "fp32" else 5.0
            print(f"  {name}: {summary[name]['ratio_vs_captum']:.2f}x = {flop_ratio:.2f}x fewer FLOPs x "
                  f"{per_flop:.2f} captum's speed per FLOP ({target:g}x needs {target / flop_ratio:.2f})", flush=True)

    # The machine's speed can drift during a run (shared hosts): the same products again, for comparison.
    now = matmul_peaks(args)
    print(f"  matmul peak after this model: fp32 {now['fp32']:.1f}, bf16 {now['bf16']:.1f} GFLOP/s (at the "
          f"start: fp32 {peaks['fp32']:.1f}, bf16 {peaks['bf16']:.1f}); a large change means the ratios above "
          "are noisy", flush=True)
    fp32, bf16 = summary["fp32"], summary["bf16"]
    equal = fp32["max_rel_diff"] <= 1e-3 and fp32["top5_same"] == 1.0
    verdicts = {
        "fp32 >= 2.5x captum at equal results": fp32["ratio_vs_captum"] >= 2.5 and equal,
        "bf16 >= 5x captum, importance r >= 0.999, top-5 same >= 99%": (
            bf16["ratio_vs_captum"] >= 5 and bf16["importance_r"] >= 0.999 and bf16["top5_same"] >= 0.99),
    }
    for what, ok in verdicts.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {what}", flush=True)
    return {"table": table, "verdicts": verdicts}


def levers(handle, examples: pd.DataFrame, args) -> None:
    """Each lever of the fast path switched off alone, on the first example (all layers, both targets).

    Runs first in the process: reused_heap() leaves glibc's thresholds set on exit, so "default heap" is
    only the default before any layer_ig call.
    """
    import contextlib
    import os

    window_args = dict(max_length=args.max_length, doc_stride=args.doc_stride)
    one = examples.head(1)
    predictions = predict(handle, one, progress=False, **window_args)
    precisions = ("fp32", "bf16") if args.native_bf16 else ("fp32",)
    for precision in precisions:  # warm-up, untimed
        layer_ig(handle, one, layers=[handle.num_layers - 1], precision=precision, progress=False,
                 predictions=predictions, **window_args)

    def timed(precision: str, layers="block_inputs") -> float:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            layer_ig(handle, one, layers=layers, n_steps=args.n_steps, precision=precision, progress=False,
                     predictions=predictions, **window_args)
        return time.perf_counter() - start

    @contextlib.contextmanager
    def patched(name, value):
        saved = getattr(layer_ig_module, name)
        setattr(layer_ig_module, name, value)
        try:
            yield
        finally:
            setattr(layer_ig_module, name, saved)

    @contextlib.contextmanager
    def forced_kernel(backend):
        os.environ["BERT_INSIGHT_LINEAR_KERNEL"] = backend
        try:
            yield
        finally:
            del os.environ["BERT_INSIGHT_LINEAR_KERNEL"]

    def untaped_blocks(*arguments):
        """The prepared blocks with the taped backward off (it runs only for a known GELU): every block
        below the last then goes through autograd, one backward pass per target."""
        import dataclasses

        from bert_insight.attribution._ig_blocks import prepare_blocks

        blocks = prepare_blocks(*arguments)
        return None if blocks is None else [dataclasses.replace(block, gelu_approximate=None) for block in blocks]

    # (label, switch, whether the heap is kept between calls as in the timed comparison below)
    variants = [
        ("default heap (no reused_heap)", lambda: patched("reused_heap", contextlib.nullcontext), False),
        ("heap trimmed after each call", contextlib.nullcontext, False),
        ("all levers", contextlib.nullcontext, True),
        ("family forward (no prepared blocks)", lambda: patched("prepare_blocks", lambda *a: None), True),
        ("autograd backward per target (no tapes)", lambda: patched("prepare_blocks", untaped_blocks), True),
        ("oneDNN linear forced", lambda: forced_kernel("onednn"), True),
        ("aten F.linear forced", lambda: forced_kernel("aten"), True),
    ]

    def measured(switch, kept_heap: bool, precision: str) -> float:
        with switch(), (reused_heap() if kept_heap else contextlib.nullcontext()):
            if kept_heap:  # a kept heap is warm: its pages were touched by an earlier call
                timed(precision, layers=[0])
            return timed(precision)

    # Each variant is timed right before its own run of all levers, and its ratio is to that run: this
    # machine drifts by 5-10% within minutes, which one shared baseline would put into every ratio.
    rows = []
    baselines = {precision: [] for precision in precisions}
    for label, switch, kept_heap in variants:
        if label == "all levers":
            continue
        row = {"variant": label}
        for precision in precisions:
            row[f"{precision} s"] = measured(switch, kept_heap, precision)
            baseline = measured(contextlib.nullcontext, True, precision)
            baselines[precision].append(baseline)
            row[f"{precision} vs all levers"] = row[f"{precision} s"] / baseline
        rows.append(row)
    rows.insert(0, {"variant": "all levers (median of the paired runs)",
                    **{f"{precision} s": float(np.median(baselines[precision])) for precision in precisions},
                    **{f"{precision} vs all levers": 1.0 for precision in precisions}})
    table = pd.DataFrame(rows).set_index("variant")
    print(f"\n=== levers, one at a time (first example, {args.n_steps} steps, all layers, start and end; ratio > 1: "
          "slower without the lever)")
    with pd.option_context("display.float_format", "{:.3g}".format, "display.width", 200,
                           "display.max_columns", None):
        print(table, flush=True)
    from bert_insight.attribution._ig_blocks import prepare_blocks

    for precision in precisions:
        blocks = prepare_blocks(handle.adapter, handle.model, precision, torch.device("cpu"))
        parts = ("qkv", "query", "attention_output", "ffn_in", "ffn_out")
        choice = {f"{tuple(getattr(blocks[0], part).weight.shape[::-1])}":
                  f"{getattr(blocks[0], part).backend} / {getattr(blocks[0], part).backward_backend}"
                  for part in parts}
        print(f"linear kernels chosen by measurement here, {precision} (in, out): forward / backward: "
              + ", ".join(f"{shape} {backend}" for shape, backend in choice.items()), flush=True)


def quadrature_steps(handle, examples: pd.DataFrame, args) -> None:
    """Completeness gap of Riemann at n_steps against Gauss-Legendre at fewer steps (fp32)."""
    window_args = dict(max_length=args.max_length, doc_stride=args.doc_stride)
    predictions = predict(handle, examples, progress=False, **window_args)
    rows = []
    settings = [("riemann", args.n_steps)] + [("gausslegendre", steps) for steps in args.gl_steps]
    for method, steps in settings:
        start = time.perf_counter()
        _, convergence = layer_ig(handle, examples, n_steps=steps, quadrature=method, progress=False,
                                  predictions=predictions, **window_args)
        rows.append({"method": method, "n_steps": steps,
                     "median_relative_delta": convergence.relative_delta.median(),
                     "p90_relative_delta": convergence.relative_delta.quantile(0.9),
                     "max_relative_delta": convergence.relative_delta.max(),
                     "seconds_per_example": (time.perf_counter() - start) / len(examples)})
    print("\n=== completeness gap by quadrature (fp32, MiniLM, all layers, start and end)")
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 200,
                           "display.max_columns", None):
        print(pd.DataFrame(rows).to_string(index=False), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: MiniLM only, 1 example, 128 tokens, 8 steps")
    parser.add_argument("--examples", type=int, default=3, help="SQuAD examples for MiniLM")
    parser.add_argument("--bert-base-examples", type=int, default=1)
    parser.add_argument("--bf16-layers", type=int, default=2,
                        help="without native bf16: time bf16 on the top N layers of the first example only")
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--captum-batch-sizes", type=int, nargs="+", default=[0, 25, 10],
                        help="internal_batch_size values tried for captum (0 = all steps at once)")
    parser.add_argument("--gl-steps", type=int, nargs="*", default=[10, 20, 30])
    parser.add_argument("--skip-bert-base", action="store_true")
    parser.add_argument("--skip-levers", action="store_true", help="skip the one-lever-off runs (MiniLM)")
    args = parser.parse_args(argv)
    if args.quick:
        args.skip_bert_base = args.skip_levers = True
        args.examples, args.bert_base_examples, args.n_steps = 1, 1, 8
        args.max_length, args.doc_stride, args.captum_batch_sizes, args.gl_steps = 128, 64, [0, 4], [4]
        args.bf16_layers = 1
    native_bf16 = args.native_bf16 = bf16_is_fast(torch.device("cpu"))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16}, {platform.processor()}")
    peaks = matmul_peaks(args)
    print(f"matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s ({peaks['fp32_size']}^3), bf16 {peaks['bf16']:.1f} "
          f"GFLOP/s ({peaks['bf16_size']}^3)", flush=True)

    from bert_insight.device import cpu_description

    print(f"CPU: {cpu_description()}", flush=True)
    examples = load_examples(max(args.examples, args.bert_base_examples))
    handle, how = minilm_handle()
    if not args.skip_levers:
        levers(handle, examples, args)
    results = {"minilm": bench_model("MiniLM-L6", handle, how, examples.head(args.examples), args, peaks)}
    quadrature_steps(handle, examples.head(args.examples), args)
    if not args.skip_bert_base:
        base, base_how = bert_base_handle(handle.tokenizer)
        results["bert-base"] = bench_model("BERT-base", base, base_how, examples.head(args.bert_base_examples),
                                           args, peaks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
