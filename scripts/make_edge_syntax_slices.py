"""Rebuild bert_insight/data/bundled/edge_probing/{ud_ewt_train_first260.conllu.gz, propbank_ewt_{train_first260,dev_first500}.gold_skel.gz}
from ../shared/data (see ATTRIBUTION.md). Run from the repo root: .venv/bin/python scripts/make_edge_syntax_slices.py"""
import gzip, hashlib
from bert_insight.data.conllu import skel_sentences, skel_sentence_id, load_conllu
D = "../shared/data/"
OUT = "bert_insight/data/bundled/edge_probing/"
N = 260
text = gzip.open(D + "ud_english_ewt/en_ewt-ud-train.conllu.gz", "rt", encoding="utf-8").read()
# cut after the N-th sentence's terminating blank line
lines = text.split("\n"); n = 0; out = []; in_sent = False
for line in lines:
    out.append(line)
    if line.strip() and not line.startswith("#"):
        in_sent = True
    elif not line.strip() and in_sent:
        n += 1; in_sent = False
        if n == N:
            break
slice_text = "\n".join(out) + "\n"
assert text.startswith(slice_text)
print("ud train slice sha256", hashlib.sha256(slice_text.encode()).hexdigest(), len(slice_text))
with gzip.GzipFile(OUT + f"ud_ewt_train_first{N}.conllu.gz", "wb", mtime=0, compresslevel=9) as h:
    h.write(slice_text.encode("utf-8"))
for split, ud in (("train", OUT + f"ud_ewt_train_first{N}.conllu.gz"), ("dev", "bert_insight/data/bundled/ud_ewt_dev_first500.conllu.gz")):
    ids = set(load_conllu(ud)["sentence_id"])
    raw = gzip.open(D + f"propbank_ewt_skel/ewt.{split}.gold_skel.gz", "rt", encoding="utf-8").read().split("\n")
    kept = []; found = set()
    for block in skel_sentences(D + f"propbank_ewt_skel/ewt.{split}.gold_skel.gz"):
        sid = skel_sentence_id(block)
        if sid in ids:
            found.add(sid)
            kept.append("\n".join(raw[ln - 1] for ln, _ in block))
    assert all("[WORD]" == raw[ln-1].split()[3] for ln in range(1, len(raw)+1) if raw[ln-1].strip()) 
    body = "\n\n".join(kept) + "\n\n"
    name = OUT + f"propbank_ewt_{split}_first{N if split == 'train' else 500}.gold_skel.gz"
    with gzip.GzipFile(name, "wb", mtime=0, compresslevel=9) as h:
        h.write(body.encode("utf-8"))
    print(split, "skel sentences kept", len(kept), "UD sentences without skel", len(ids - found))
