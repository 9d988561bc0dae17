"""Benchmark: streaming per-head attention statistics against collecting every map first.

    python benchmarks/attention.py            # 1,000 examples of 128 tokens, MiniLM and BERT-base size
    python benchmarks/attention.py --quick    # 64 examples (a smoke run)

Each contender runs in a fresh subprocess so its peak resident memory (ru_maxrss of the child) is its
own; the parent prints seconds, peak MB and ratios measured in the same run, and checks that both
give the same numbers.
  streaming  bert_insight.attention.stats.special_token_attention: batches of 16, maps folded into
             per-head sums as they come;
  baseline   the same batches through the model with output_attentions=True, every map kept
             (float32, unpadded), then the same statistic computed over the kept maps.
Each pair runs twice: under glibc's default allocator settings (what a notebook gets), and with
MALLOC_MMAP_THRESHOLD_=1048576, which stops glibc from raising its mmap threshold after the first large
free, so freed per-batch buffers go back to the system instead of staying in a fragmented heap: the
difference between the two rows is allocator retention, not data the code holds.
Models: all-MiniLM-L6-v2 (6 layers, 12 heads) with a new classifier head, and a BERT-base-sized
BertForSequenceClassification (12 layers, 768, 12 heads) with random weights. Inputs: sentence pairs
of 128 tokens made from the bundled QNLI dev set (pairs joined until they fill 128 tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def examples_of_length(tokenizer, n: int, length: int):
    """``n`` sentence pairs from QNLI dev that the tokenizer cuts at exactly ``length`` tokens."""
    import pandas as pd

    from bert_insight.data.glue import load_glue

    dev = load_glue("qnli", "dev")
    rows = []
    texts_a, texts_b = dev["text_a"].tolist(), dev["text_b"].tolist()
    i = 0
    while len(rows) < n:
        a, b = texts_a[i % len(texts_a)], texts_b[i % len(texts_b)]
        j = i + 1
        while len(tokenizer(a, b)["input_ids"]) < length + 8:  # long enough to be truncated to `length`
            b = b + " " + texts_b[j % len(texts_b)]
            j += 1
        rows.append({"example_id": f"b{len(rows)}", "text_a": a, "text_b": b, "label": 0})
        i += 1
    return pd.DataFrame(rows)


def make_handle(model_name: str):
    import torch

    from bert_insight.models.default_classifiers import base_classifier
    from bert_insight.models.handle import from_model

    torch.manual_seed(0)
    base = base_classifier("qnli", device="cpu")
    if model_name == "minilm":
        return base
    import transformers

    config = transformers.BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, num_labels=2)
    config._attn_implementation = "eager"
    tokenizer = base.tokenizer
    del base  # only its tokenizer is needed; freed so the peak below is the BERT-base run's own
    return from_model(transformers.BertForSequenceClassification(config).eval(), tokenizer, device="cpu",
                      task="qnli", name="bert-base-sized (random)")


def run_one(model_name: str, method: str, n: int, length: int) -> dict:
    import numpy as np
    import torch

    from bert_insight.attention.maps import TOKEN_KINDS, attention_inputs, eager_attention
    from bert_insight.attention.stats import special_token_attention

    handle = make_handle(model_name)
    examples = examples_of_length(handle.tokenizer, n, length)
    started = time.perf_counter()
    if method == "streaming":
        frame = special_token_attention(handle, examples, max_length=length, batch_size=16, progress=False)
        result = frame[[f"to_{kind}" for kind in TOKEN_KINDS]].to_numpy()
    else:
        inputs = attention_inputs(handle, examples, max_length=length)
        kept = []
        with torch.inference_mode(), eager_attention(handle.model):
            for begin in range(0, len(inputs), 16):
                batch = inputs[begin: begin + 16]
                output = handle.model(**handle.batch_inputs([w for w, _ in batch]), output_attentions=True)
                stacked = torch.stack(output.attentions, dim=1).float()
                for row, (window, tokens) in enumerate(batch):
                    size = len(window)
                    kept.append((stacked[row, :, :, :size, :size].numpy().copy(), tokens["kind"].to_numpy()))
        sums = {kind: 0.0 for kind in TOKEN_KINDS}
        for weights, kinds in kept:
            for kind in TOKEN_KINDS:
                sums[kind] = sums[kind] + weights[..., kinds == kind].sum(-1).mean(-1)
        result = np.stack([(sums[kind] / len(kept)).ravel() for kind in TOKEN_KINDS], axis=1)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "result": result.tolist()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=["minilm", "bert-base"], choices=["minilm", "bert-base"])
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.examples or (64 if args.quick else 1000)
    if args.child:
        print(json.dumps(run_one(args.child[0], args.child[1], n, args.length)))
        return 0
    import numpy as np

    from bert_insight.models.default import cpu_name

    cpu = cpu_name()
    print(f"CPU: {cpu}; {n} examples of {args.length} tokens; batches of 16")
    print(f"{'model':9} {'allocator':10} {'method':10} {'seconds':>8} {'peak MB':>8}")
    allocators = {"default": {}, "mmap-1MB": {"MALLOC_MMAP_THRESHOLD_": "1048576"}}
    for model_name in args.models:
        for allocator, variables in allocators.items():
            measured = {}
            for method in ("streaming", "baseline"):
                command = [sys.executable, __file__, "--child", model_name, method, "--examples", str(n),
                           "--length", str(args.length)]
                output = subprocess.run(command, check=True, capture_output=True, text=True,
                                        env={**os.environ, **variables}).stdout
                measured[method] = json.loads(output.strip().splitlines()[-1])
                print(f"{model_name:9} {allocator:10} {method:10} {measured[method]['seconds']:8.1f} "
                      f"{measured[method]['peak_mb']:8.0f}", flush=True)
            difference = float(np.abs(np.array(measured["streaming"]["result"])
                                      - np.array(measured["baseline"]["result"])).max())
            print(f"{model_name:9} {allocator:10} streaming/baseline: time "
                  f"x{measured['streaming']['seconds'] / measured['baseline']['seconds']:.2f}, peak memory "
                  f"x{measured['streaming']['peak_mb'] / measured['baseline']['peak_mb']:.2f}; "
                  f"max |difference| of the shares {difference:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
