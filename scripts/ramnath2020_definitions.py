"""Ramnath et al. 2020 under the paper's definitions and under this library's earlier ones, side by side.

    python scripts/ramnath2020_definitions.py --cache-dir runs/ig_cache --n 200

Draws the notebook's questions (held-out SQuAD 1.1 dev, seed 0), runs layer_ig at hidden states 0..L
through the cache (a `make reproduce` run fills it: then nothing is recomputed), and prints per third of
the depth: the paper's Tables 1/5 and section 5.2, the BERT-base re-measurement (MLRC 2020), ours with
the paper's definitions (block outputs 1..L, predicted answer, the authors' POS lists and ascii
punctuation, confusing-number ratio) and ours with the earlier ones (block inputs 0..L-1, gold answer,
exclusive POS groups with unicode punctuation, all-numbers ratio), in percent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bert_insight as bi  # noqa: E402


def analyses(attributions, tokens, examples, predictions, *, paper: bool):
    kwargs = dict(grouping="paper", punctuation="ascii") if paper else dict(grouping="exclusive", punctuation="unicode")
    categories = bi.topk_categories(attributions, tokens=tokens, top_k=5)
    pos = bi.topk_pos(attributions, tokens=tokens, top_k=5, **kwargs)
    quantifiers = bi.quantifier_analysis(
        attributions, examples=examples, predictions=predictions, tokens=tokens, top_k=5,
        **(dict() if paper else dict(ratio="all_numbers", quantifier="wh", numbers="lexical")))
    return categories, pos, quantifiers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="squad", choices=("squad", "duorc"))
    parser.add_argument("--cache-dir", default="runs/ig_cache")
    parser.add_argument("--n-steps", type=int, default=50)
    args = parser.parse_args(argv)
    handle = bi.load_qa_model()
    pool = bi.load_squad(split="heldout") if args.dataset == "squad" else bi.load_duorc()
    examples = pool.sample(n=min(args.n, len(pool)), random_state=args.seed)
    predictions = bi.predict(handle, examples, progress=False)
    attributions, _ = bi.layer_ig(handle, examples, predictions=predictions, layers="all", n_steps=args.n_steps,
                                  cache_dir=args.cache_dir, progress=True)
    L = handle.num_layers
    # Block outputs 1..L-1: the last one (L) is degenerate with logit targets (only the target token reaches
    # the linear QA head), where the authors' probability target is not.
    outputs = attributions[(attributions["layer"] >= 1) & (attributions["layer"] <= L - 1)]
    inputs = attributions[attributions["layer"] <= L - 1]
    predicted = bi.tokens(handle, examples, predictions=predictions)
    gold = bi.tokens(handle, examples, predictions=predictions, answer="gold")
    tables = {}
    for name, frames, paper in (("ours_paper_definitions", (outputs, predicted), True),
                                ("ours_earlier_definitions", (inputs, gold), False)):
        categories, pos, quantifiers = analyses(*frames, examples, predictions, paper=paper)
        tables[name] = bi.ramnath2020_by_depth(categories=categories, pos=pos, quantifiers=quantifiers,
                                               dataset=args.dataset)
        if paper:
            comparison = bi.ramnath2020_comparison(
                jsd_head=bi.importance_jsd(outputs, top_k=2, keep="head"),
                jsd_tail=bi.importance_jsd(outputs, top_k=2, keep="tail"),
                categories=categories, pos=pos, quantifiers=quantifiers, dataset=args.dataset)
            performance = quantifiers.performance
    joined = tables["ours_paper_definitions"].rename(columns={"ours": "ours_paper_definitions"})
    joined["ours_earlier_definitions"] = tables["ours_earlier_definitions"]["ours"].to_numpy()
    columns = ["statistic", "group", "depth", "paper", "bert_base", "ours_paper_definitions",
               "ours_earlier_definitions"]
    print(f"{args.dataset}: {len(examples)} questions, EM {100 * predictions['exact_match'].mean():.1f}; "
          f"{handle.name}; hidden states 1..{L - 1} (paper definitions; {L} is degenerate) and 0..{L - 1} (earlier)")
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print((joined[columns].set_index(["statistic", "group", "depth"]) * 100).round(1).to_string())
        print()
        print(comparison.round(3).to_string(index=False))
        print()
        print(performance.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
