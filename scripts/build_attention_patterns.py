"""Build the labelled attention-pattern set shipped in bert_insight/data/bundled/attention_patterns/.

    .venv/bin/python scripts/build_attention_patterns.py collect [--glue-dir ../shared/data/glue]
    .venv/bin/python scripts/build_attention_patterns.py sheets --out /tmp/attention_sheets [--only unaudited]
    .venv/bin/python scripts/build_attention_patterns.py record --sheet /tmp/attention_sheets/sheet_003.csv \
        --changes "4=block,17=heterogeneous"
    .venv/bin/python scripts/build_attention_patterns.py apply

``collect`` draws maps from the offline models (the QA default on held-out SQuAD windows of 384 and
of 128 tokens, the five GLUE classifiers and the pre-trained MiniLM on their tasks' evaluation
examples, and short inputs: SST-2 cut at 16 tokens, MRPC pairs at 24), picks examples from the short,
middle and long thirds of a pool so several input lengths appear, and from each example eight to ten
(layer, head) maps: one random head in every layer, two more drawn with weights inverse to their rule
class's frequency among that example's 72 maps, then one block candidate (:func:`block_candidate`)
and, in the short inputs, one rule-diagonal map, where the example has one. Diagonal and block heads
are rare, so the set over-represents them; class proportions come from the classifier, not from this
set. It stores every map downsampled to 32 x 32 (float16 byte planes, maps.npz) and a table (maps.csv)
of provenance (map_id, model, task, max_length, example_id, layer, head, n_tokens, kinds), features,
rule label, audited label and split, and keeps the full-resolution maps in --full (outside the
repository) for the audit. Sources are only ever appended, each with its own seeded streams, so
earlier maps (and their audit rows) survive a rebuild; ``apply`` refuses an audit.csv naming maps that
are gone.

The split (made by ``apply``) holds out a quarter of the inputs: StratifiedGroupKFold on the final
labels, grouped by (task, example_id), so no input, whichever model read it, has maps in both parts.

The audit: ``sheets`` renders contact sheets of 24 maps (sqrt intensity so faint structure shows; red
marks [CLS]/[SEP] keys, blue punctuation; a strip above each map shows the attention each 1/32 of the
keys gets, so a one-token [CLS] stripe of a long map is not missed; the title gives the label shown and
three features: v = max(top_columns, stripes), d = local, s = to_cls + to_sep) and beside each PNG a
csv of its map_ids and shown labels. After looking at a sheet, ``record`` writes one row per map on it
into audit.csv: the shown label, or the one given in --changes (panel number = label), replacing any
earlier decision on those maps. audit.csv therefore lists exactly the maps looked at. ``apply`` (also
run at the end of ``collect``) fills maps.csv's label (audited label, else rule label), audited and
split columns from it.

Labelling guide used in the audit (what dominates the map by attention mass; the s and v numbers in
the titles helped with the thresholds, so the labels lean on the same quantities as the features):
  vertical            one or a few full-height stripes carry about half of the attention or more
                      (v >= ~0.45), the rest diffuse;
  diagonal            a line on / beside the main diagonal, or a soft band a few tokens wide, carries it
                      and stripes are weak (s < ~0.3);
  vertical_diagonal   a clear diagonal and a clear stripe (s >= ~0.3);
  block               squares on the diagonal with spread attention inside and little across: the two
                      segments of a pair, question and passage, or the sentences of a passage;
  heterogeneous       none of these dominates (scattered, off-diagonal alignment lines, diffuse).
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

import bert_insight as bi  # noqa: E402
from bert_insight.attention.maps import attention_inputs, iter_attention, resolve_selection  # noqa: E402
from bert_insight.attention.patterns import (  # noqa: E402
    FEATURE_NAMES,
    IMAGE_SIZE,
    PATTERN_CLASSES,
    bundled_patterns_dir,
    downsample,
    encode_kinds,
    pack_images,
    pattern_features,
    rule_label,
)
from bert_insight.models.default_classifiers import DEFAULT_TASKS, base_classifier, recipe_data  # noqa: E402

EXAMPLES_PER_SOURCE = 12
POOL = 120
QA_POOL = 48
UNIFORM_PER_EXAMPLE = 6  # one per layer (MiniLM has 6)
ENRICHED_PER_EXAMPLE = 2
PRETRAINED_TASKS = ("mrpc", "qnli", "rte", "sst2")
HELDOUT_FOLDS = 4
SHORT_INPUT = 24  # max_length of the short-input sources
SEED = 0
TABLE_COLUMNS = ("map_id", "model", "task", "max_length", "example_id", "layer", "head", "kinds", *FEATURE_NAMES,
                 "rule_label", "label", "audited", "split")
AUDIT_COLUMNS = ("map_id", "label")
SHORT_NAMES = {"vertical": "vert", "diagonal": "diag", "vertical_diagonal": "v+d", "block": "block",
               "heterogeneous": "het"}


def sources(glue_dir: str):
    """(model, task, max_length, handle factory, examples factory) for every stream of maps."""
    def glue_eval(task):
        return lambda: recipe_data(task, glue_dir)[1]

    squad = lambda: bi.load_squad(split="heldout")  # noqa: E731
    yield "qa-squad", "squad", 384, bi.load_qa_model, squad
    yield "qa-squad", "squad", 128, bi.load_qa_model, squad
    for task in DEFAULT_TASKS:
        yield f"glue-{task}", task, 128, (lambda t=task: bi.load_classifier(task=t, glue_dir=glue_dir)), glue_eval(task)
    for task in PRETRAINED_TASKS:
        yield "pretrained", task, 128, (lambda t=task: base_classifier(t)), glue_eval(task)
    # Short inputs (truncated): few natural inputs are under 16 tokens, so short maps, where every token
    # covers several image bins, would otherwise be rare. Appended last, so the streams above keep their seeds.
    yield "glue-sst2", "sst2", 16, (lambda: bi.load_classifier(task="sst2", glue_dir=glue_dir)), glue_eval("sst2")
    yield "pretrained", "mrpc", 24, (lambda: base_classifier("mrpc")), glue_eval("mrpc")


def pick_by_length(inputs, rng: np.random.Generator, count: int) -> list[int]:
    """Indices of ``count`` inputs, equally many from the short, middle and long thirds of the pool."""
    order = np.argsort([len(window) for window, _ in inputs], kind="stable")
    thirds = np.array_split(order, 3)
    chosen = []
    for part, third in enumerate(thirds):
        want = count // 3 + (1 if part < count % 3 else 0)
        chosen += rng.choice(third, size=min(want, len(third)), replace=False).tolist()
    return sorted(chosen)


def pick_heads(rules: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(layer, head) pairs of one example: a random head per layer, then ENRICHED_PER_EXAMPLE more with
    weights inverse to the frequency of their rule class among the example's maps."""
    n_layers, n_heads = rules.shape
    picked = [(layer, int(rng.integers(n_heads))) for layer in range(n_layers)][:UNIFORM_PER_EXAMPLE]
    flat = rules.ravel()
    classes, counts = np.unique(flat, return_counts=True)
    frequency = dict(zip(classes, counts))
    weights = np.array([1.0 / frequency[label] for label in flat])
    for layer, head in picked:
        weights[layer * n_heads + head] = 0.0
    for _ in range(ENRICHED_PER_EXAMPLE):
        index = int(rng.choice(len(flat), p=weights / weights.sum()))
        picked.append(divmod(index, n_heads))
        weights[index] = 0.0
    return picked


def block_candidate(f: dict[str, float]) -> bool:
    """Maps that may be block maps: two segments, attention kept inside the own segment (not local), no
    strong stripe. Block maps are rare (about 3% of heads), so each example adds one of these."""
    return (f["n_segments"] >= 2 and f["segment_contrast"] >= 0.72 and f["own_segment"] >= 0.35
            and f["local"] < 0.35 and max(f["top_columns"], f["stripes"]) < 0.5)


def collect(args) -> None:
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    rows, images, full = [], [], {}
    started = time.perf_counter()
    for number, (model, task, max_length, load_handle, load_examples) in enumerate(sources(args.glue_dir)):
        rng = np.random.default_rng([SEED, number])
        extra_rng = np.random.default_rng([SEED, number, 1])  # own streams: the other picks stay as they were
        short_rng = np.random.default_rng([SEED, number, 2])
        torch.manual_seed(SEED)  # the pre-trained model's fresh head (irrelevant to attention, but fixed)
        handle = load_handle()
        examples = load_examples()
        pool = examples.sample(n=min(QA_POOL if model.startswith("qa") else POOL, len(examples)),
                               random_state=number)
        window_settings = dict(max_length=max_length, doc_stride=max_length // 2) if model.startswith("qa") else \
            dict(max_length=max_length)
        inputs = attention_inputs(handle, pool, progress=False, **window_settings)
        chosen = [inputs[i] for i in pick_by_length(inputs, rng, EXAMPLES_PER_SOURCE)]
        layers, heads = resolve_selection(handle, "all", "all")
        for window, tokens, weights in iter_attention(handle, chosen, layers=layers, heads=heads, batch_size=4,
                                                      progress=False):
            kinds = tokens["kind"].to_numpy()
            features = [[pattern_features(weights[layer, head], kinds) for head in heads] for layer in layers]
            rules = np.array([[rule_label(f) for f in row] for row in features])
            picked = pick_heads(rules, rng)
            candidates = [(layer, head) for layer in layers for head in heads
                          if (layer, head) not in picked and block_candidate(features[layer][head])]
            if candidates:
                picked.append(candidates[int(extra_rng.integers(len(candidates)))])
            if max_length <= SHORT_INPUT:  # short diagonal maps are rarer still, and look least like long ones
                diagonals = [(layer, head) for layer in layers for head in heads
                             if (layer, head) not in picked and rules[layer, head] == "diagonal"]
                if diagonals:
                    picked.append(diagonals[int(short_rng.integers(len(diagonals)))])
            for layer, head in picked:
                map_id = f"{model}/{task}/{max_length}/{window.example_id}/L{layer}H{head}"
                f = features[layer][head]
                rows.append({"map_id": map_id, "model": model, "task": task, "max_length": max_length,
                             "example_id": window.example_id, "layer": layer, "head": head,
                             "kinds": encode_kinds(kinds), **f, "rule_label": rules[layer, head]})
                images.append(downsample(weights[layer, head], IMAGE_SIZE).astype(np.float16))
                full[map_id] = weights[layer, head].astype(np.float16)
        print(f"{model} {task} {max_length}: {len(rows)} maps after {time.perf_counter() - started:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    table["split"] = "train"  # set by apply_audit, from the final labels
    table["label"] = table["rule_label"]
    table["audited"] = False
    table = table[list(TABLE_COLUMNS)]
    table.to_csv(output / "maps.csv", index=False, float_format="%.4g")
    np.savez_compressed(output / "maps.npz", **pack_images(np.stack(images)))
    Path(args.full).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.full, ids=np.array(list(full)), **{f"m{i}": m for i, m in enumerate(full.values())})
    apply_audit(output)


def heldout_split(table: pd.DataFrame) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    groups = (table["task"] + "/" + table["example_id"]).to_numpy()
    folds = StratifiedGroupKFold(n_splits=HELDOUT_FOLDS, shuffle=True, random_state=SEED)
    _, heldout = next(folds.split(table, table["label"], groups))
    split = np.full(len(table), "train", dtype=object)
    split[heldout] = "heldout"
    return split


def apply_audit(output: Path) -> None:
    table = pd.read_csv(output / "maps.csv", keep_default_na=False)
    audit_path = output / "audit.csv"
    audit = pd.read_csv(audit_path) if audit_path.is_file() else pd.DataFrame(columns=list(AUDIT_COLUMNS))
    unknown = sorted(set(audit["map_id"]) - set(table["map_id"]))
    if unknown:
        raise SystemExit(f"audit.csv names maps that are not in maps.csv: {unknown[:5]}")
    bad = sorted(set(audit["label"]) - set(PATTERN_CLASSES))
    if bad:
        raise SystemExit(f"audit.csv has labels that are not classes: {bad}")
    labels = dict(zip(audit["map_id"], audit["label"]))
    table["audited"] = table["map_id"].isin(labels)
    table["label"] = [labels.get(map_id, rule) for map_id, rule in zip(table["map_id"], table["rule_label"])]
    table["split"] = heldout_split(table)
    table.to_csv(output / "maps.csv", index=False, float_format="%.4g")
    changed = int((table["label"] != table["rule_label"]).sum())
    print(f"{len(table)} maps, {int(table['audited'].sum())} audited, {changed} labels changed by the audit")
    print(table.groupby("split")["label"].value_counts().unstack(fill_value=0).to_string())


# ---- the audit ------------------------------------------------------------------------------------------
def load_full(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return {map_id: stored[f"m{i}"].astype(np.float32) for i, map_id in enumerate(stored["ids"])}


def render_sheet(panels: list[tuple[str, np.ndarray, np.ndarray]], path: Path, columns: int = 6) -> None:
    """One PNG of (title, map, kinds) panels: sqrt intensity, maps over 160 tokens area-downsampled.

    Above each map a strip shows the attention each 1/32 of the keys gets, averaged over queries
    (black = half of all attention), so a one-token [CLS] stripe in a long map is not missed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 2.3, rows * 2.7), dpi=80, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, (title, weights, kinds) in zip(axes.ravel(), panels):
        n = weights.shape[0]
        shown = downsample(weights, 160) if n > 160 else weights
        size = shown.shape[0]
        intensity = np.sqrt(np.clip(shown, 0, None))
        intensity = intensity / max(float(intensity.max()), 1e-6)
        profile = downsample(weights, IMAGE_SIZE).mean(axis=0)
        strip_row = np.sqrt(np.clip(profile / 0.5, 0, 1))[np.minimum(np.arange(size) * IMAGE_SIZE // size,
                                                                      IMAGE_SIZE - 1)]
        strip = max(2, size // 12)
        gap = max(1, size // 40)
        composite = np.vstack([np.tile(strip_row, (strip, 1)), np.zeros((gap, size)), intensity])
        axis.imshow(composite, cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        scale = size / n
        for kind_set, colour, marker_size in ((("cls", "sep"), "red", 14), (("punctuation",), "dodgerblue", 8)):
            positions = (np.flatnonzero(np.isin(kinds, kind_set)) + 0.5) * scale - 0.5
            axis.scatter(positions, np.full(len(positions), -size / 25), marker="v", s=marker_size, c=colour,
                         clip_on=False)
        axis.set_xlim(-0.5, size - 0.5)
        axis.set_ylim(composite.shape[0] - 0.5, -size / 12)
        axis.set_title(title, fontsize=9)
    figure.tight_layout(pad=0.3)
    figure.savefig(path)
    plt.close(figure)


def sheets(args) -> None:
    from bert_insight.attention.patterns import decode_kinds

    table = pd.read_csv(Path(args.output) / "maps.csv", keep_default_na=False)
    if args.only == "unaudited":
        table = table[~table["audited"]]
    elif args.only == "heldout":
        table = table[table["split"] == "heldout"]
    if args.query:
        table = table.query(args.query)
    # Sheets grouped by rule class, shuffled inside it (seeded), so one sheet compares like with like.
    table = table.sample(frac=1.0, random_state=SEED).sort_values(args.show, kind="stable")
    full = load_full(args.full)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_sheet = 24
    for number, start in enumerate(range(0, len(table), per_sheet)):
        part = table.iloc[start:start + per_sheet]
        panels = [(f"{i} {SHORT_NAMES[getattr(row, args.show)]} v{max(row.top_columns, row.stripes):.2f} "
                   f"d{row.local:.2f} s{row.to_cls + row.to_sep:.2f}", full[row.map_id], decode_kinds(row.kinds))
                  for i, row in enumerate(part.itertuples())]
        name = f"sheet_{args.first + number:03d}"
        render_sheet(panels, out / f"{name}.png")
        part[["map_id"]].assign(shown=part[args.show], panel=range(len(part))).to_csv(out / f"{name}.csv", index=False)
    print(f"{-(-len(table) // per_sheet)} sheets of {len(table)} maps in {out}")


def record(args) -> None:
    """Write the decisions on one looked-at sheet into audit.csv (replacing earlier rows of its maps)."""
    output = Path(args.output)
    shown = pd.read_csv(args.sheet)
    labels = dict(zip(shown["panel"], shown["shown" if "shown" in shown else "rule_label"]))
    for change in filter(None, (part.strip() for part in (args.changes or "").split(","))):
        panel, label = change.split("=")
        if int(panel) not in labels or label not in PATTERN_CLASSES:
            raise SystemExit(f"bad change {change!r}: panels 0..{len(labels) - 1}, labels {PATTERN_CLASSES}")
        labels[int(panel)] = label
    decided = pd.DataFrame({"map_id": shown["map_id"], "label": [labels[p] for p in shown["panel"]]})
    audit_path = output / "audit.csv"
    audit = pd.read_csv(audit_path) if audit_path.is_file() else pd.DataFrame(columns=list(AUDIT_COLUMNS))
    audit = pd.concat([audit[~audit["map_id"].isin(decided["map_id"])], decided], ignore_index=True)
    audit.to_csv(audit_path, index=False)
    apply_audit(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=str(bundled_patterns_dir()))
    parser.add_argument("--full", default="/tmp/attention_patterns_full.npz",
                        help="full-resolution maps for the audit sheets (not shipped)")
    commands = parser.add_subparsers(dest="command", required=True)
    collect_parser = commands.add_parser("collect")
    collect_parser.add_argument("--glue-dir", default="../shared/data/glue")
    sheet_parser = commands.add_parser("sheets")
    sheet_parser.add_argument("--out", default="/tmp/attention_sheets")
    sheet_parser.add_argument("--only", choices=("all", "unaudited", "heldout"), default="all")
    sheet_parser.add_argument("--first", type=int, default=0, help="number of the first sheet")
    sheet_parser.add_argument("--show", choices=("rule_label", "label"), default="rule_label",
                              help="the label printed on each panel, and the one record keeps unless changed")
    sheet_parser.add_argument("--query", default="", help="pandas query on maps.csv choosing the maps to show")
    record_parser = commands.add_parser("record")
    record_parser.add_argument("--sheet", required=True)
    record_parser.add_argument("--changes", default="", help='"panel=label,..." for the panels the audit relabels')
    commands.add_parser("apply")
    args = parser.parse_args()
    {"collect": collect, "sheets": sheets, "record": record, "apply": lambda a: apply_audit(Path(a.output))}[
        args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
