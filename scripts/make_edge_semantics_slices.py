"""Write the bundled slices of bert_insight/data/bundled/edge_probing/ used by
bert_insight.data.edge_semantics (coref: GAP, spr: UDS 2.0 + UD EWT words, relations: SemEval-2010).

Usage: python scripts/make_edge_semantics_slices.py ../shared/data
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from bert_insight.data import edge_semantics as es

OUT = Path(__file__).resolve().parents[1] / "bert_insight" / "data" / "bundled" / "edge_probing"
GAP_TRAIN_ROWS = 950  # URL column dropped
SPR_TRAIN_SENTENCES = 900
SEMEVAL_TRAIN_EXAMPLES = 3600  # annotator comments emptied


def _round(value):
    """3 decimals, away from 0 so the sign (what a label depends on at threshold 0) is kept."""
    if value is None:
        return None
    rounded = round(value, 3)
    return rounded if rounded != 0 or value == 0 else (0.001 if value > 0 else -0.001)


def write_gz(name: str, text: str) -> None:
    with gzip.GzipFile(OUT / name, "wb", mtime=0) as handle:  # mtime 0: the same bytes on every run
        handle.write(text.encode("utf-8"))
    print(name, (OUT / name).stat().st_size, "bytes")


def main(shared: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    gap = shared / "gap_coreference"
    for source, name, rows in (("gap-development.tsv", es.BUNDLED_GAP["train"], GAP_TRAIN_ROWS),
                               ("gap-validation.tsv", es.BUNDLED_GAP["dev"], None)):
        lines = (gap / source).read_text(encoding="utf-8").splitlines()
        keep = [line.rsplit("\t", 1)[0] for line in (lines[: 1 + rows] if rows else lines)]  # without URL
        write_gz(name, "\n".join(keep) + "\n")

    records, _, alignment = es._spr_records(shared, ("train", "dev"))
    properties = es.SPR2_PROPERTIES + es.UDS_EXTRA_PROPERTIES
    train = sorted((r for r in records if r["split"] == "train"), key=lambda r: int(r["key"].rsplit("-", 1)[1]))
    chosen = train[:SPR_TRAIN_SENTENCES] + [r for r in records if r["split"] == "dev"]
    lines = [json.dumps({"properties": properties, "alignment": alignment,
                         "made_by": "scripts/make_edge_semantics_slices.py"})]
    for r in chosen:
        pairs = [[p, a, [_round(values.get(prop)) for prop in properties]] for (p, a), values in sorted(r["pairs"].items())]
        lines.append(json.dumps({"split": r["split"], "key": r["key"], "sent_id": r["sent_id"], "words": list(r["words"]),
                                 "heads": r["heads"], "upos": r["upos"], "pairs": pairs}, separators=(",", ":")))
    write_gz(es.BUNDLED_SPR, "\n".join(lines) + "\n")

    text = (shared / "semeval2010_task8" / "training" / "TRAIN_FILE.TXT").read_text(encoding="utf-8")
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()][:SEMEVAL_TRAIN_EXAMPLES]
    blocks = ["\n".join(b.strip("\n").split("\n")[:2] + ["Comment:"]) for b in blocks]
    write_gz(es.BUNDLED_SEMEVAL, "\n\n".join(b.strip("\n") for b in blocks) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
