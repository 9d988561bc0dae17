"""The figures docs/attention.md quotes for Kovaleva et al. 2019 part 1, on the offline models.

    .venv/bin/python scripts/kovaleva2019_part1_findings.py --glue-dir ../shared/data/glue [--n 200]

Needs the default classifiers (`make classifiers`) and the QA default. Prints, per model:
  1. attention to [CLS] / [SEP] / punctuation by layer (mean over heads; Figure 6),
  2. cosine similarity of pre-trained vs fine-tuned maps by layer (Figure 5),
  3. relation heads on PropBank EWT dev predicate -> core-argument links (Figure 3),
and writes the frames to runs/kovaleva2019_part1/.
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
from bert_insight.attention.linguistic import relation_heads  # noqa: E402
from bert_insight.data.conllu import load_conllu, propbank_links  # noqa: E402
from bert_insight.models.default_classifiers import DEFAULT_TASKS, base_classifier, recipe_data  # noqa: E402


def by_layer(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame.groupby(["task", "layer"])[columns].mean().round(3)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--n", type=int, default=200, help="evaluation examples per task")
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--output", default="runs/kovaleva2019_part1")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    shares, similarities = [], []
    for task in args.tasks:
        _, evaluation, _ = recipe_data(task, args.glue_dir)
        examples = evaluation.sample(n=min(args.n, len(evaluation)), random_state=0)
        tuned = bi.load_classifier(task=task, glue_dir=args.glue_dir)
        torch.manual_seed(0)
        pretrained = base_classifier(task)
        for name, handle in (("pre-trained", pretrained), ("fine-tuned", tuned)):
            frame = bi.special_token_attention(handle, examples, progress=False)
            shares.append(frame.assign(model=name))
        similarities.append(bi.attention_similarity(pretrained, tuned, examples, progress=False))
        print(f"{task}: done after {time.perf_counter() - started:.0f} s", flush=True)
    qa = bi.load_qa_model()
    squad = bi.load_squad(split="heldout").sample(n=min(args.n, 100), random_state=0)
    shares.append(bi.special_token_attention(qa, squad, progress=False).assign(model="fine-tuned"))
    shares = pd.concat(shares, ignore_index=True)
    similarities = pd.concat(similarities, ignore_index=True)
    shares.to_csv(output / "special_token_attention.csv", index=False)
    similarities.to_csv(output / "attention_similarity.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print("\n1. attention to special tokens and punctuation, mean over heads, by layer")
        print(shares.groupby(["model", "task", "layer"])[["to_cls", "to_sep", "to_punctuation"]].mean().round(3)
              .unstack("layer").to_string())
        print("\n2. pre-trained vs fine-tuned cosine similarity, mean over heads, by layer")
        print(similarities.groupby(["task", "layer"])["cosine_similarity"].mean().round(3).unstack("layer").to_string())

    shared = Path(args.glue_dir).resolve().parent
    words = load_conllu(shared / "ud_english_ewt" / "en_ewt-ud-dev.conllu")
    links = propbank_links(words, skel=shared / "propbank_ewt_skel" / "ewt.dev.gold_skel.gz")
    torch.manual_seed(0)
    encoders = {"pre-trained MiniLM": base_classifier("mrpc"), "QA default": qa}
    if "mrpc" in args.tasks:
        encoders["MRPC default"] = bi.load_classifier(task="mrpc", glue_dir=args.glue_dir)
    print("\n3. relation heads (PropBank EWT dev, predicate -> core argument, the paper's filters)")
    for name, handle in encoders.items():
        frame = relation_heads(handle, words, links=links, progress=False)
        frame.assign(model=name).to_csv(output / f"relation_heads_{name.split()[0].lower()}.csv", index=False)
        best = frame.sort_values("value", ascending=False).head(3)
        print(f"{name}: {frame.attrs['n_sentences']} sentences, {frame.attrs['n_links']} links survive; "
              f"99th percentile {frame.attrs['percentile_99']:.3f}; heads above it {frame.attrs['top_heads']}; "
              f"best: " + ", ".join(f"{r.layer}-{r.head} {r.value:.3f}" for r in best.itertuples())
              + f"; median head {frame['value'].median():.3f}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
