"""Benchmark: the head-ablation sweep against one full forward per ablation.

    python benchmarks/ablate_heads.py                    # issue 10's sizes: QA default on 200 held-out
                                                         # SQuAD questions, BERT-base size on 64 inputs
    python benchmarks/ablate_heads.py --qa-examples 40 --base-examples 12   # what fits in ~30 min
    python benchmarks/ablate_heads.py --quick            # smoke run (a few minutes)

Ablations: every single head and every whole layer (L*H + L of them), mode "uniform", batch size 16.
  sweep  bert_insight.attention.ablation.sweep_outputs: per input, the blocks run once intact; each
         ablation starts from the intact hidden state below its layer, up to 16 ablations per forward.
  loop   for each ablation, ``disabled_heads`` around the model's own forward over every input, in
         length-sorted padded batches of 16.
Both must give the same logits (max abs difference printed). The bound on the gain is about
2L/(L+1): 1.71x for 6 layers, 1.85x for 12. Targets (fp32): >= 1.6x on MiniLM, >= 1.75x on BERT-base
size. The sweep is run again under bf16 autocast; "decisions changed" counts (ablation, example)
pairs whose decision differs from fp32's (QA: the predicted answer text; classifier: the argmax).
Models: the offline QA default (MiniLM-L6, 6 x 12) and a BERT-base-sized BertForSequenceClassification
(12 x 12, hidden 768) with random weights on QNLI sentence pairs cut at 128 tokens.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS = {"minilm-qa": 1.6, "bert-base": 1.75}


def qa_setup(n: int):
    import bert_insight as bi
    from bert_insight.windows import encode_validated_windows

    handle = bi.load_qa_model(device="cpu")
    examples = bi.validate_examples(bi.load_squad(split="heldout").sample(n=n, random_state=0))
    windows = encode_validated_windows(handle.tokenizer, examples, max_length=384, doc_stride=128)
    return handle, examples, windows


def base_setup(n: int):
    import torch
    import transformers

    from bert_insight.data.glue import load_glue
    from bert_insight.models.default_classifiers import base_classifier
    from bert_insight.models.handle import from_model
    from bert_insight.windows import encode_sentences

    tokenizer = base_classifier("qnli", device="cpu").tokenizer
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, num_labels=2)
    handle = from_model(transformers.BertForSequenceClassification(config).eval(), tokenizer, device="cpu",
                        task="qnli", name="bert-base-sized (random)")
    examples = load_glue("qnli", "dev").sample(n=n, random_state=0)
    return handle, examples, encode_sentences(tokenizer, examples, max_length=128)


def loop_outputs(handle, windows, ablations, *, batch_size: int):
    """Reference: the full model once per ablation, hooks from ``disabled_heads``."""
    import torch

    from bert_insight.attention.ablation import disabled_heads
    from bert_insight.windows import length_sorted_batches

    batches = length_sorted_batches(windows, batch_size)
    results = []
    with torch.inference_mode():
        for ablation in ablations:
            per_window = [None] * len(windows)
            with disabled_heads(handle, list(ablation), mode="uniform"):
                for batch in batches:
                    output = handle.model(**handle.batch_inputs([windows[i] for i in batch]))
                    for row, index in enumerate(batch):
                        size = len(windows[index])
                        if hasattr(output, "start_logits"):
                            per_window[index] = (output.start_logits[row, :size].float(),
                                                 output.end_logits[row, :size].float())
                        else:
                            per_window[index] = output.logits[row].float()
            results.append(per_window)
    return results


def flat(outputs):
    import torch

    return torch.cat([torch.cat(item) if isinstance(item, tuple) else item for item in outputs])


def decisions(handle, examples, windows, ablated):
    """Per ablation, one decision per example: the predicted answer text (QA) or the argmax class."""
    import torch

    from bert_insight.models.handle import QAModelHandle
    from bert_insight.qa import decode_predictions

    if isinstance(handle, QAModelHandle):
        return [[row["pred_text"] for row in decode_predictions(examples, windows, outputs, max_answer_length=30,
                                                                      squad2=False, threshold=0.0)]
                for outputs in ablated]
    return [torch.stack(outputs).argmax(dim=1).tolist() for outputs in ablated]


def run(name: str, handle, examples, windows, *, batch_size: int, with_loop: bool) -> dict:
    import torch

    from bert_insight.attention.ablation import parse_ablations, sweep_outputs

    ablations = parse_ablations("each", handle.num_layers, handle.num_heads) + \
        parse_ablations("layers", handle.num_layers, handle.num_heads)
    torch.set_grad_enabled(False)
    started = time.perf_counter()
    _, swept = sweep_outputs(handle, windows, ablations, mode="uniform", batch_size=batch_size, progress=False)
    sweep_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, swept_bf16 = sweep_outputs(handle, windows, ablations, mode="uniform", batch_size=batch_size,
                                      progress=False)
    bf16_seconds = time.perf_counter() - started
    fp32_decisions = decisions(handle, examples, windows, swept)
    bf16_decisions = decisions(handle, examples, windows, swept_bf16)
    changed = sum(a != b for left, right in zip(fp32_decisions, bf16_decisions) for a, b in zip(left, right))
    total = sum(len(left) for left in fp32_decisions)
    result = {"model": name, "ablations": len(ablations), "inputs": len(windows), "examples": len(examples),
              "tokens": sum(len(window) for window in windows), "sweep_s": sweep_seconds, "bf16_s": bf16_seconds,
              "changed": changed, "decisions": total}
    if with_loop:
        started = time.perf_counter()
        looped = loop_outputs(handle, windows, ablations, batch_size=batch_size)
        result["loop_s"] = time.perf_counter() - started
        result["max_diff"] = max(float((flat(a) - flat(b)).abs().max()) for a, b in zip(swept, looped))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qa-examples", type=int, default=200)
    parser.add_argument("--base-examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models", nargs="+", default=["minilm-qa", "bert-base"], choices=sorted(TARGETS))
    parser.add_argument("--quick", action="store_true", help="8 QA questions, 4 BERT-base inputs")
    parser.add_argument("--no-loop", action="store_true", help="time the sweep (fp32, bf16) only")
    args = parser.parse_args()
    if args.quick:
        args.qa_examples, args.base_examples = 8, 4
    import torch

    from bert_insight.models.default import cpu_name

    print(f"CPU: {cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"batch size {args.batch_size}; mode uniform; every head and every layer", flush=True)
    print(f"{'model':10} {'examples':>8} {'inputs':>6} {'tokens':>7} {'ablations':>9} {'loop s':>8} {'sweep s':>8} "
          f"{'ratio':>6} {'target':>6} {'max diff':>9} {'bf16 s':>7} {'bf16 x':>6} {'bf16 changed':>14}", flush=True)
    failed = False
    for name in args.models:
        handle, examples, windows = qa_setup(args.qa_examples) if name == "minilm-qa" else base_setup(args.base_examples)
        result = run(name, handle, examples, windows, batch_size=args.batch_size, with_loop=not args.no_loop)
        loop = result.get("loop_s")
        ratio = loop / result["sweep_s"] if loop else float("nan")
        verdict = "" if loop is None else ("PASS" if ratio >= TARGETS[name] else "FAIL")
        failed |= verdict == "FAIL"
        print(f"{name:10} {result['examples']:>8} {result['inputs']:>6} {result['tokens']:>7} {result['ablations']:>9} "
              f"{loop or float('nan'):>8.1f} {result['sweep_s']:>8.1f} {ratio:>5.2f}x {TARGETS[name]:>5.2f}x "
              f"{result.get('max_diff', float('nan')):>9.1e} {result['bf16_s']:>7.1f} "
              f"{result['sweep_s'] / result['bf16_s']:>5.2f}x {result['changed']:>6}/{result['decisions']:<7} {verdict}",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
