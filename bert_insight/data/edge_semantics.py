"""Builders for the semantic edge-probing tasks of Tenney et al. 2019 ("BERT rediscovers the classical
NLP pipeline"): entity typing, coreference, semantic proto-roles and relation classification, each made
from a free corpus (the paper used OntoNotes, SPR1 and SemEval-2010; OntoNotes is not free: read
jiant's OntoNotes JSON with :func:`bert_insight.data.edge_tasks.read_jiant_json` if you have it).

==========  ====================================  =================================  ===============
task        corpus (folder under ``source``)       targets                            bundled slice
==========  ====================================  =================================  ===============
entities    ud_english_gum (CC BY-NC-SA 4.0)       mention span -> entity type        none (licence)
coref       gap_coreference (Apache-2.0),          (pronoun, name) / (mention,        GAP
            ud_english_gum                         mention) -> "coreferent" or not
spr         uds_protoroles_spr2 + ud_english_ewt   (predicate, argument) -> the       UDS 2.0 + EWT
            (CC BY-SA 4.0)                         proto-role properties that hold
relations   semeval2010_task8 (CC BY 3.0)          (e1, e2) -> directed relation      SemEval
==========  ====================================  =================================  ===============

Every builder takes ``source`` = None (the slices bundled in ``data/bundled/edge_probing``) or the
folder holding the corpus folders (``../shared/data``; a corpus folder itself also works) and
``splits``. Words are PTB-style word lists without spaces (the probe aligns them to word pieces
through the character offsets of ``" ".join(words)``). Each task's ``report`` counts the targets made
and dropped (and why), per split; ``info`` names the files, the licence and where the task differs
from the paper's. The jiant v1 conversion scripts these follow are named in each builder's docstring.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bert_insight.data._files import bundled_path, read_text
from bert_insight.data.conllu import _mentions, load_conllu, sentence_groups
from bert_insight.data.edge_tasks import EdgeTask, check_splits, make_task
from bert_insight.errors import BertInsightInputError

BUNDLED_DIR = "edge_probing"
BUNDLED_GAP = {"train": "coref_gap-development_first950.tsv.gz", "dev": "coref_gap-validation.tsv.gz"}
BUNDLED_SPR = "spr_uds2-protoroles_ewt_slice.jsonl.gz"
BUNDLED_SEMEVAL = "relations_semeval2010-task8_train_first3600.txt.gz"

#: The 14 SPR2 proto-role properties (White et al. 2016; jiant's edges-spr2 labels). UDS 2.0 also rates
#: manner, location, time and purpose of non-core arguments; those are not SPR2 properties.
SPR2_PROPERTIES = ("awareness", "change_of_location", "change_of_possession", "change_of_state",
                   "change_of_state_continuous", "existed_after", "existed_before", "existed_during",
                   "instigation", "partitive", "sentient", "volition", "was_for_benefit", "was_used")
UDS_EXTRA_PROPERTIES = ("location", "manner", "purpose", "time")
#: SemEval-2010 Task 8: 9 relations x 2 directions + Other.
SEMEVAL_RELATIONS = ("Cause-Effect", "Component-Whole", "Content-Container", "Entity-Destination",
                     "Entity-Origin", "Instrument-Agency", "Member-Collection", "Message-Topic",
                     "Product-Producer")
SEMEVAL_LABELS = tuple(f"{r}({a},{b})" for r in SEMEVAL_RELATIONS for a, b in (("e1", "e2"), ("e2", "e1"))) + ("Other",)
#: GUM's entity types (the second field of an ``Entity=(id-type-...`` opening).
GUM_ENTITY_TYPES = ("abstract", "animal", "event", "object", "organization", "person", "place", "plant",
                    "substance", "time")
COREF_LABEL = "coreferent"

_GUM_LICENCE = "CC BY-NC-SA 4.0 (non-commercial; never bundled)"
_GUM_FILE = ("ud_english_gum", "en_gum-ud-dev.conllu")
_GAP_FILES = {"train": "gap-development.tsv", "dev": "gap-validation.tsv", "test": "gap-test.tsv"}
_SEMEVAL_FILES = {"train": "training/TRAIN_FILE.TXT", "test": "testing_keys/TEST_FILE_FULL.TXT"}
_EWT_FILES = {"train": "en_ewt-ud-train.conllu", "dev": "en_ewt-ud-dev.conllu", "test": "en_ewt-ud-test.conllu"}
_UDS_ZIP = "protoroles_normalized_uds2.0.zip"


# ---- shared helpers ------------------------------------------------------------------------------------
def _corpus_file(source: Path, folder: str, relative: str) -> Path:
    """``source/folder/relative``, or ``source/relative`` when ``source`` is the corpus folder itself
    (also accepting a ``.gz`` twin of the file)."""
    for base in (Path(source) / folder, Path(source)):
        for candidate in (base / relative, base / (relative + ".gz")):
            if candidate.is_file():
                return candidate
    return Path(source) / folder / relative


def _require_files(task: str, source: Path, folder: str, relatives: Sequence[str]) -> list[Path]:
    paths = [_corpus_file(source, folder, rel) for rel in relatives]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise BertInsightInputError(
            f"edge task {task!r}: missing {missing}. Pass as source the folder holding the corpus folder "
            f"{folder!r} (e.g. ../shared/data), which must contain {[f'{folder}/{r}' for r in relatives]} "
            "(a .gz copy of a file also works).")
    return paths


def _report(split: str, made: int, dropped: Counter) -> list[tuple]:
    return [(split, "made", "", made)] + [(split, "dropped", reason, n) for reason, n in sorted(dropped.items()) if n]


_WHITESPACE = re.compile(r"\s+")
#: PTB-style words: numbers with inner . , : /, clitics split off ("do" "n't", "John" "'s"),
#: hyphenated words kept whole, "..." "--" and quote pairs, any other non-space character alone.
_TOKEN = re.compile(r"""
    \d+(?:[.,:/]\d+)+
  | \w+?(?=n't\b)
  | n't\b
  | '(?:s|re|ve|ll|d|m|em)\b
  | \w+(?:[-/&]\w+|'(?!(?:s|re|ve|ll|d|m|em)\b)\w+)*
  | \.\.\. | -- | `` | ''
  | \S
""", re.X | re.I)


def _span_tokenize(text: str) -> list[tuple[int, int]]:
    """Character spans of PTB-style words of ``text`` (a regex in the spirit of the Penn Treebank
    tokenizer: punctuation split off, clitics separate, hyphenated words whole; abbreviations lose their
    period to a word of its own). No span contains whitespace. (nltk's TreebankWordTokenizer is not
    used: it handles one sentence at a time and importing nltk takes seconds.)"""
    return [m.span() for m in _TOKEN.finditer(text)]


def _char_to_word_span(spans: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """The half-open word span covering characters [start, end) exactly, or None when a boundary falls
    inside a word (or between words)."""
    first = next((i for i, (s, _) in enumerate(spans) if s == start), None)
    last = next((i for i, (_, e) in enumerate(spans) if e == end), None)
    if first is None or last is None or last < first:
        return None
    return first, last + 1


def _clean_words(words: Sequence[str]) -> tuple[str, ...]:
    """UD words with any inner whitespace (a few EWT forms such as phone numbers) replaced by '_', so
    ``" ".join(words).split()`` gives the words back."""
    return tuple(_WHITESPACE.sub("_", str(w).strip()) or "_" for w in words)


def _mention_head(heads, start: int, end: int) -> int:
    inside = [i for i in range(start, end) if not start <= heads[i] < end]
    return inside[0] if inside else start


_ENTITY_OPEN = re.compile(r"\(([^()\-\[]+)(?:\[[^\]]*\])?-([^()\-]+)")


def _gum_sentences(path: Path) -> list[dict]:
    """GUM's sentences with their CorefUD mentions: dicts of doc_id, sentence_id, words, heads, upos and
    mentions = sorted unique (start, end, entity id, type or None) tuples; ``n_duplicate`` counts
    mentions repeating another's span (dropped)."""
    words = load_conllu(path)
    out = []
    for sentence_id, rows in sentence_groups(words):
        misc = rows["misc"].tolist()
        types = {}
        for value in misc:
            entity = next((p[7:] for p in str(value or "").split("|") if p.startswith("Entity=")), "")
            for eid, kind in _ENTITY_OPEN.findall(entity):
                types.setdefault(eid, kind)
        seen, mentions, duplicates = set(), [], 0
        for eid, start, end in sorted(_mentions(misc), key=lambda m: (m[1], m[2], m[0])):
            if (start, end) in seen:
                duplicates += 1
                continue
            seen.add((start, end))
            mentions.append((start, end, eid, types.get(eid)))
        out.append({"doc_id": rows["doc_id"].iloc[0], "sentence_id": sentence_id,
                    "words": _clean_words(rows["word"]), "heads": rows["head"].tolist(),
                    "upos": rows["upos"].tolist(), "mentions": mentions, "n_duplicate": duplicates})
    return out


def _gum_doc_split(sentences: list[dict], dev_every: int) -> dict[str, str]:
    """Document id -> "train" / "dev": the documents sorted by id, every ``dev_every``-th one (the 4th,
    8th, ...) to dev. GUM ids start with the genre, so dev gets documents of every genre."""
    docs = sorted({s["doc_id"] for s in sentences})
    return {doc: ("dev" if (i + 1) % dev_every == 0 else "train") for i, doc in enumerate(docs)}


def _gum_path(task: str, source: Path | None) -> Path:
    if source is None:
        raise BertInsightInputError(
            f"edge task {task!r}: the GUM corpus cannot be bundled ({_GUM_LICENCE}). Pass the folder holding "
            "ud_english_gum/en_gum-ud-dev.conllu as source (e.g. ../shared/data), or read jiant's OntoNotes "
            "JSON files with bert_insight.data.edge_tasks.read_jiant_json if you have OntoNotes.")
    return _require_files(task, source, *_GUM_FILE[:1], [_GUM_FILE[1]])[0]


# ---- entities ------------------------------------------------------------------------------------------
def build_entities(source: Path | None = None, *, splits: Sequence[str] = ("train", "dev"),
                   named_only: bool = True, dev_every: int = 4) -> EdgeTask:
    """Entity typing (Tenney's "Entities", which used OntoNotes NER) from UD English GUM's CorefUD
    ``Entity=`` annotations: each mention span -> its entity type (person, place, organization, time,
    event, abstract, object, substance, animal, plant: 10 labels, one per target).

    ``source`` is required: GUM is CC BY-NC-SA 4.0 and is not bundled (``source=None`` raises).
    GUM has only its dev file here: its documents are split by id (sorted, every ``dev_every``-th, 25%
    by default, to dev; the rest, 75%, to train), recorded in ``info["dev_documents"]``.

    ``named_only=True`` (default) keeps mentions whose head word (the word whose head lies outside the
    mention) is a proper noun (upos PROPN), and of those only the outermost (a named mention nested in
    another is dropped), which is closest to OntoNotes NER: flat spans of named entities, no pronouns or
    common-noun phrases. (OntoNotes' numeric types DATE, CARDINAL, ... have no GUM counterpart; GUM's
    "time" mentions headed by a proper noun, e.g. months, remain.) ``named_only=False`` keeps every
    mention, pronouns and nested mentions included (entity typing of all mentions). Mentions sharing a
    span with an earlier one are dropped either way. Follows jiant's ``extract_ontonotes_all.py``
    (task "ner": one single-span target per entity span).
    """
    splits = check_splits("entities", splits, ("train", "dev"))
    path = _gum_path("entities", source)
    sentences = _gum_sentences(path)
    doc_split = _gum_doc_split(sentences, dev_every)
    texts, targets, report = [], [], []
    for split in splits:
        made, dropped = 0, Counter()
        for sentence in (s for s in sentences if doc_split[s["doc_id"]] == split):
            dropped["mention with the same span as another"] += sentence["n_duplicate"]
            heads, upos, kept = sentence["heads"], sentence["upos"], []
            for start, end, eid, kind in sentence["mentions"]:
                if kind not in GUM_ENTITY_TYPES:
                    dropped["mention without a known entity type"] += 1
                elif named_only and upos[_mention_head(heads, start, end)] != "PROPN":
                    dropped["not a named mention (head word not PROPN)"] += 1
                else:
                    kept.append((start, end, kind))
            if named_only:
                outer = [m for m in kept if not any(o is not m and o[0] <= m[0] and m[1] <= o[1] for o in kept)]
                dropped["named mention nested in another named mention"] += len(kept) - len(outer)
                kept = outer
            if kept:
                texts.append((split, sentence["sentence_id"], sentence["words"]))
                targets.extend((split, sentence["sentence_id"], s, e, -1, -1, kind) for s, e, kind in kept)
                made += len(kept)
        report += _report(split, made, dropped)
    dev_docs = sorted(d for d, s in doc_split.items() if s == "dev")
    return make_task("entities", texts, targets, labels=GUM_ENTITY_TYPES, two_spans=False, report=report, info={
        "source": {"gum": str(path)}, "licence": _GUM_LICENCE, "corpus": "UD English GUM dev (CorefUD Entity=)",
        "named_only": named_only, "dev_documents": dev_docs,
        "split": f"GUM dev documents sorted by id, every {dev_every}th to dev ({len(dev_docs)} of {len(doc_split)} "
                 "documents), the rest to train",
        "caveats": "The paper used OntoNotes 5.0 NER (18 types); GUM has 10 entity types over all mentions. "
                   "With named_only, only outermost mentions headed by a proper noun."})


# ---- coreference ---------------------------------------------------------------------------------------
def _read_gap(path: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(read_text(path)), sep="\t", quoting=csv.QUOTE_NONE, dtype=str,
                        keep_default_na=False)
    needed = ["ID", "Text", "Pronoun", "Pronoun-offset", "A", "A-offset", "A-coref", "B", "B-offset", "B-coref"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise BertInsightInputError(f"{name}: not a GAP TSV file (lacks columns {missing}; it needs {needed}).")
    return frame


def _gap_targets(row) -> tuple[tuple[str, ...] | None, list[tuple], Counter]:
    """(words, [(s1, e1, s2, e2, labels)], dropped reasons) of one GAP row."""
    dropped = Counter()
    text = row["Text"]
    spans = _span_tokenize(text)
    words = tuple(text[s:e] for s, e in spans)

    def span_of(name, offset, what):
        try:
            offset = int(offset)
        except ValueError:
            return None, f"{what} offset is not a number"
        if text[offset: offset + len(name)] != name:
            return None, f"{what} offset does not point at the {what} text"
        found = _char_to_word_span(spans, offset, offset + len(name))
        return found, None if found else f"{what} does not align with word boundaries"

    pronoun, why = span_of(row["Pronoun"], row["Pronoun-offset"], "pronoun")
    if pronoun is None:
        dropped[why] += 2
        return words, [], dropped
    out = []
    for letter in ("A", "B"):
        name_span, why = span_of(row[letter], row[f"{letter}-offset"], "name")
        flag = row[f"{letter}-coref"].strip().upper()
        if name_span is None:
            dropped[why] += 1
        elif flag not in ("TRUE", "FALSE"):
            dropped[f"{letter}-coref flag is neither TRUE nor FALSE"] += 1
        else:
            out.append((*pronoun, *name_span, (COREF_LABEL,) if flag == "TRUE" else ()))
    return words, out, dropped


def _gum_pairs(sentence: dict, chain_sizes: Counter) -> tuple[list[tuple], Counter]:
    """All pairs (earlier, later mention) of one GUM sentence, as jiant's ``find_links``; pairs with a
    singleton mention (an entity mentioned once in its document) are dropped: OntoNotes, which jiant's
    coreference task comes from, does not annotate singletons."""
    dropped = Counter({"mention pair with a mention of the same span": 0})
    mentions = sentence["mentions"]
    n_all = len(mentions) + sentence["n_duplicate"]
    dropped["mention pair with a mention of the same span"] = n_all * (n_all - 1) // 2 - len(mentions) * (len(mentions) - 1) // 2
    out = []
    for i, (s1, e1, id1, _) in enumerate(mentions):
        for s2, e2, id2, _ in mentions[i + 1:]:
            if chain_sizes[(sentence["doc_id"], id1)] < 2 or chain_sizes[(sentence["doc_id"], id2)] < 2:
                dropped["mention pair with a singleton mention"] += 1
            else:
                out.append((s1, e1, s2, e2, (COREF_LABEL,) if id1 == id2 else ()))
    return out, dropped


def build_coref(source: Path | None = None, *, splits: Sequence[str] = ("train", "dev"),
                corpus: str = "gap", dev_every: int = 4) -> EdgeTask:
    """Coreference as a binary two-span task (label "coreferent"; a negative target carries no label).
    Tenney's "Coref." used OntoNotes (jiant ``extract_ontonotes_all.py``, task "coref": every pair of
    mentions within a sentence, coreferent or not).

    ``corpus="gap"`` (default; bundled): GAP (Webster et al. 2018, Apache-2.0). Each row's Wikipedia text
    is PTB-style tokenized (``_span_tokenize``) and gives two targets: span1 = the pronoun,
    span2 = name A, and (pronoun, name B), positive when the A-coref / B-coref flag is TRUE. Character
    offsets must map exactly to whole words; targets where they do not are dropped and counted. GAP's
    convention for splits: gap-development -> "train", gap-validation -> "dev", gap-test -> "test".
    Unlike OntoNotes coref, a GAP text is a paragraph (several sentences) and span1 is always a pronoun.

    ``corpus="gum"`` (needs ``source``; CC BY-NC-SA 4.0, not bundled): UD English GUM's CorefUD
    mentions, jiant's OntoNotes recipe: every pair of mentions in a sentence (span1 the earlier by
    start, then end), positive when both belong to the same entity. Mentions of entities mentioned only
    once in their document (singletons, which OntoNotes does not annotate) are left out, and so are
    mentions repeating another's span. Documents split as in :func:`build_entities` (train / dev).
    ``corpus="both"``: the targets of both in one task (text ids keep them apart).
    """
    if corpus not in ("gap", "gum", "both"):
        raise BertInsightInputError(f"build_coref: corpus={corpus!r}; pass 'gap', 'gum' or 'both'.")
    allowed = ("train", "dev") if corpus == "gum" else ("train", "dev", "test")
    splits = check_splits("coref", splits, allowed)
    texts, targets, report, info_source = [], [], [], {}
    counts: dict[str, tuple[int, Counter]] = {s: (0, Counter()) for s in splits}

    def add(split, text_id, words, pairs, dropped):
        made, total = counts[split]
        total.update(dropped)
        if pairs:
            texts.append((split, text_id, words))
            targets.extend((split, text_id, *pair) for pair in pairs)
        counts[split] = (made + len(pairs), total)

    if corpus in ("gap", "both"):
        if source is None:
            paths = {s: bundled_path(f"{BUNDLED_DIR}/{BUNDLED_GAP[s]}") for s in splits if s in BUNDLED_GAP}
            if len(paths) < len(splits):
                raise BertInsightInputError(
                    f"edge task 'coref': the bundled GAP slice has only the splits {list(BUNDLED_GAP)}; pass "
                    "source (the folder holding gap_coreference/) for 'test'.")
        else:
            paths = dict(zip(splits, _require_files("coref", source, "gap_coreference", [_GAP_FILES[s] for s in splits])))
        for split, path in paths.items():
            info_source[f"gap:{split}"] = str(path) if source is not None else f"bundled:{path.name}"
            for _, row in _read_gap(path, str(path)).iterrows():
                words, pairs, dropped = _gap_targets(row)
                add(split, f"gap:{row['ID']}", words, pairs, dropped)
    if corpus in ("gum", "both"):
        path = _gum_path("coref", source)
        info_source["gum"] = str(path)
        sentences = _gum_sentences(path)
        doc_split = _gum_doc_split(sentences, dev_every)
        chain_sizes = Counter((s["doc_id"], m[2]) for s in sentences for m in s["mentions"])
        for sentence in sentences:
            split = doc_split[sentence["doc_id"]]
            if split in counts:
                pairs, dropped = _gum_pairs(sentence, chain_sizes)
                add(split, f"gum:{sentence['sentence_id']}", sentence["words"], pairs, dropped)
    for split in splits:
        report += _report(split, *counts[split])
    return make_task("coref", texts, targets, labels=(COREF_LABEL,), two_spans=True, report=report, info={
        "source": info_source, "corpus": corpus,
        "licence": {"gap": "Apache-2.0", "gum": _GUM_LICENCE, "both": f"GAP Apache-2.0; GUM {_GUM_LICENCE}"}[corpus],
        "split": "GAP: development -> train, validation -> dev, test -> test (GAP's own convention); GUM: dev "
                 f"documents sorted by id, every {dev_every}th to dev",
        "caveats": "The paper used OntoNotes coreference (mention pairs within a sentence). GAP: pronoun-name pairs "
                   "over a paragraph, PTB-style regex tokenization. GUM: singleton mentions left out (as in OntoNotes)."})


# ---- semantic proto-roles ------------------------------------------------------------------------------
def _node_number(node: str) -> int:
    return int(node.rsplit("-", 1)[1])


def _uds_annotations(path: Path) -> dict[str, dict]:
    """UDS key ("ewt-<split>-<n>") -> {(pred, arg) 1-based token numbers: {property: value}}."""
    data = json.loads(read_text(path))
    if not isinstance(data, dict) or "data" not in data:
        raise BertInsightInputError(f"{path}: not the UDS protoroles JSON ({{'metadata':..., 'data': {{...}}}}).")
    out = {}
    for key, pairs in data["data"].items():
        parsed = {}
        for pair_key, annotation in pairs.items():
            pred, arg = pair_key.split("%%")
            parsed[(_node_number(pred), _node_number(arg))] = {
                prop: float(v["value"]) for prop, v in annotation.get("protoroles", {}).items()}
        out[key] = parsed
    return out


def _align_uds(keys: dict[str, dict], sentences: list[dict], max_shift: int = 8, change_cost: float = 3.0) -> dict:
    """UDS sentence number n (1-based, counted in UD EWT v1.2, which UDS was built on) -> index into
    ``sentences`` (the current UD EWT release of the same split).

    A few sentences were split or merged between EWT v1.2 and later releases, so the n-th sentence
    drifts by a small offset in parts of a split. The offsets are found by a Viterbi pass over the
    annotated sentences in order: a sentence scores, at offset k, one point per (predicate, argument)
    pair whose argument word depends on the predicate word in the candidate sentence, half a point
    per predicate that is a VERB / AUX / ADJ and per argument that is a NOUN / PROPN / PRON / NUM, minus
    one per position beyond the sentence; changing offset costs ``change_cost``. (On UD EWT 2.16 this
    finds offset 0 everywhere but +1 from train sentence 11477 and -1 from dev sentence 344.)"""
    items = sorted((n, pairs) for n, pairs in keys.items())
    shifts = range(-max_shift, max_shift + 1)

    def score(n, pairs, k):
        i = n - 1 + k
        if not 0 <= i < len(sentences):
            return -100.0
        heads, upos = sentences[i]["heads"], sentences[i]["upos"]
        total = 0.0
        for pred, arg in pairs:
            if pred > len(heads) or arg > len(heads):
                total -= 1
                continue
            total += (heads[arg - 1] == pred - 1) + 0.5 * (upos[pred - 1] in ("VERB", "AUX", "ADJ")) \
                + 0.5 * (upos[arg - 1] in ("NOUN", "PROPN", "PRON", "NUM"))
        return total

    best = {k: (score(*items[0], k) - 0.01 * abs(k), (k,)) for k in shifts} if items else {}
    back = []
    for n, pairs in items[1:]:
        new, pointers = {}, {}
        for k in shifts:
            value, j = max((best[j][0] - change_cost * (j != k) - 0.001 * abs(k - j), j) for j in shifts)
            new[k] = (value + score(n, pairs, k), None)
            pointers[k] = j
        back.append(pointers)
        best = new
    if not items:
        return {}
    k = max(best, key=lambda s: best[s][0])
    path = [k]
    for pointers in reversed(back):
        k = pointers[k]
        path.append(k)
    path.reverse()
    return {n: n - 1 + shift for (n, _), shift in zip(items, path)}


def _argument_span(heads: list[int], upos: list[str], pred: int, arg: int) -> tuple[int, int]:
    """Word span (half-open, 0-based) of the argument headed by word ``arg``: its dependency subtree
    without the branch that holds the predicate (e.g. the relative clause of "the man who left"), the
    contiguous block around the head, edge punctuation trimmed."""
    children = defaultdict(list)
    for i, h in enumerate(heads):
        children[h].append(i)
    members, stack = {arg}, [arg]
    while stack:
        node = stack.pop()
        for child in children[node]:
            if child == pred or child in members:
                continue
            members.add(child)
            stack.append(child)

    def contains_pred(node):
        seen, todo = set(), [node]
        while todo:
            x = todo.pop()
            if x == pred:
                return True
            seen.add(x)
            todo.extend(c for c in children[x] if c not in seen)
        return False

    for child in children[arg]:
        if child != pred and child in members and contains_pred(child):
            drop, todo = set(), [child]
            while todo:
                x = todo.pop()
                drop.add(x)
                todo.extend(children[x])
            members -= drop
    start = end = arg
    while start - 1 in members:
        start -= 1
    while end + 1 in members:
        end += 1
    while start < arg and upos[start] == "PUNCT":
        start += 1
    while end > arg and upos[end] == "PUNCT":
        end -= 1
    return start, end + 1


def _spr_records(source: Path | None, splits: Sequence[str]) -> tuple[list[dict], dict, dict]:
    """Joined UDS + EWT sentences: dicts of split, key, sent_id, words, heads, upos and pairs
    {(pred, arg): {property: value}}; plus the source files and alignment notes."""
    if source is None:
        path = bundled_path(f"{BUNDLED_DIR}/{BUNDLED_SPR}")
        lines = read_text(path).splitlines()
        header = json.loads(lines[0])
        properties = header["properties"]
        records = []
        for line in lines[1:]:
            r = json.loads(line)
            if r["split"] in splits:
                pairs = {(p, a): {prop: v for prop, v in zip(properties, values) if v is not None}
                         for p, a, values in r["pairs"]}
                records.append({**r, "words": tuple(r["words"]), "pairs": pairs})
        present = {r["split"] for r in records}
        missing = [s for s in splits if s not in present]
        if missing:
            raise BertInsightInputError(f"edge task 'spr': the bundled slice has no {missing} split (it has train "
                                        "and dev); pass source (the folder holding uds_protoroles_spr2/ and "
                                        "ud_english_ewt/).")
        return records, {"bundled": path.name}, header.get("alignment", {})
    uds_path = _require_files("spr", source, "uds_protoroles_spr2", [_UDS_ZIP])[0]
    ewt_paths = dict(zip(splits, _require_files("spr", source, "ud_english_ewt", [_EWT_FILES[s] for s in splits])))
    annotations = _uds_annotations(uds_path)
    records, alignment = [], {}
    for split in splits:
        sentences = [{"sent_id": sid, "words": _clean_words(rows["word"]), "heads": rows["head"].tolist(),
                      "upos": rows["upos"].tolist()} for sid, rows in sentence_groups(load_conllu(ewt_paths[split]))]
        keys = {int(key.rsplit("-", 1)[1]): pairs for key, pairs in annotations.items()
                if key.split("-")[1] == split}
        mapping = _align_uds(keys, sentences)
        shifts = sorted({(n, i - n + 1) for n, i in mapping.items()})
        changes, last = [], None
        for n, shift in shifts:
            if shift != last:
                changes.append((n, shift))
                last = shift
        alignment[split] = changes
        for n in sorted(keys):
            sentence = sentences[mapping[n]]
            records.append({"split": split, "key": f"ewt-{split}-{n}", **sentence, "pairs": keys[n]})
    return records, {"uds": str(uds_path), **{f"ewt:{s}": str(p) for s, p in ewt_paths.items()}}, alignment


def build_spr(source: Path | None = None, *, splits: Sequence[str] = ("train", "dev"), threshold: float = 0.0,
              properties: Sequence[str] = SPR2_PROPERTIES) -> EdgeTask:
    """Semantic proto-roles (Tenney's "SPR"; the paper reports SPR1 and SPR2) from the UDS 2.0 normalized
    proto-role annotations on UD English EWT (the successor of SPR2, CC BY-SA 4.0): span1 = the
    predicate word, span2 = the argument, labels = the properties (of ``properties``, default the 14 of
    SPR2) whose normalized value is above ``threshold``. Splits: the data's own (ewt-train / dev / test).

    Follows jiant's ``probing/data/convert-spr2.py`` (span1 = predicate token, span2 = argument,
    multi-label), with these differences:
    * jiant averaged the raw 1-5 Likert ratings of applicable annotations and kept a property at mean
      >= 4. The UDS 2.0 release here has only *normalized* values (annotator-debiased, confidence-
      weighted; 0 = undecided, and "not applicable" counts as unlikely), so a property holds when its
      value > ``threshold`` (0: more likely than not). The label set is comparable, the rates not exactly.
    * jiant kept targets with no property; an EdgeTask's multi-label targets need at least one label,
      so such pairs are dropped (counted), as are pairs rated only on manner / location / time / purpose
      (UDS additions for non-core arguments, not SPR2 properties).
    * UDS gives the argument's head word only; span2 is its UD dependency subtree without the branch
      holding the predicate (contiguous block around the head, edge punctuation trimmed). jiant's SPR2
      used the annotated argument span.
    * Words come from the current UD English EWT release; UDS counts sentences in EWT v1.2, and the
      few sentences split or merged since then shift the numbering in parts of train and dev: the
      offsets are recovered from the dependency trees (``info["alignment"]``; see ``_align_uds``).
    """
    splits = check_splits("spr", splits, ("train", "dev", "test"))
    properties = tuple(properties)
    unknown = [p for p in properties if p not in SPR2_PROPERTIES + UDS_EXTRA_PROPERTIES]
    if unknown or not properties:
        raise BertInsightInputError(f"build_spr: unknown properties {unknown}; choose from "
                                    f"{list(SPR2_PROPERTIES + UDS_EXTRA_PROPERTIES)}.")
    records, files, alignment = _spr_records(source, splits)
    texts, targets, report = [], [], []
    for split in splits:
        made, dropped = 0, Counter()
        for record in (r for r in records if r["split"] == split):
            n_words, made_here = len(record["words"]), []
            for (pred, arg), values in sorted(record["pairs"].items()):
                if not 1 <= pred <= n_words or not 1 <= arg <= n_words:
                    dropped["predicate or argument beyond the aligned EWT sentence"] += 1
                    continue
                if pred == arg:
                    dropped["argument is the predicate word"] += 1
                    continue
                if not any(p in values for p in properties):
                    dropped["no rating of the chosen properties (UDS manner/location/time/purpose only)"] += 1
                    continue
                labels = tuple(p for p in properties if values.get(p, float("-inf")) > threshold)
                if not labels:
                    dropped[f"no property above threshold {threshold:g}"] += 1
                    continue
                start, end = _argument_span(record["heads"], record["upos"], pred - 1, arg - 1)
                made_here.append((split, record["key"], pred - 1, pred, start, end, labels))
            if made_here:
                texts.append((split, record["key"], record["words"]))
                targets.extend(made_here)
                made += len(made_here)
        report += _report(split, made, dropped)
    return make_task("spr", texts, targets, labels=properties, two_spans=True, report=report, info={
        "source": files, "licence": "CC BY-SA 4.0 (UDS 2.0 protoroles; UD English EWT)",
        "corpus": "UDS 2.0 normalized semantic proto-roles (SPR2 successor) on UD English EWT",
        "threshold": threshold, "alignment": alignment,
        "split": "the data's own: ewt-train -> train, ewt-dev -> dev, ewt-test -> test",
        "caveats": "SPR2 (UDS 2.0 normalized values, label when value > threshold); the paper's SPR1 is on PTB "
                   "(not free). Argument spans are UD subtrees of the annotated head word."})


# ---- relations -----------------------------------------------------------------------------------------
_SEMEVAL_LINE = re.compile(r'^(\d+)\s+"(.*)"\s*$')
_TAG = re.compile(r"</?e[12]>")


def _semeval_examples(path: Path, name: str) -> list[tuple[str, str, str]]:
    """(id, tagged sentence, label) triples of a SemEval-2010 Task 8 file (sentence line, label line,
    comment line, blank line)."""
    blocks, current = [], []
    for line in read_text(path).splitlines() + [""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            blocks.append(current)
            current = []
    out = []
    for block in blocks:
        match = _SEMEVAL_LINE.match(block[0])
        if not match or len(block) < 2:
            raise BertInsightInputError(f"{name}: {block[0][:60]!r} does not start a SemEval-2010 Task 8 example "
                                        '(<id>\\t"sentence with <e1>..</e1> and <e2>..</e2>", then the label line).')
        out.append((match.group(1), match.group(2), block[1].replace(" ", "")))
    return out


def _semeval_target(tagged: str) -> tuple[tuple[str, ...] | None, tuple[int, int, int, int] | None, str | None]:
    """(words, (e1 start, e1 end, e2 start, e2 end), why dropped) of a tagged sentence."""
    clean, offsets, position = [], {}, 0
    for match in _TAG.finditer(tagged):
        clean.append(tagged[position: match.start()])
        offsets[match.group()] = sum(len(piece) for piece in clean)
        position = match.end()
    clean.append(tagged[position:])
    text = "".join(clean)
    if set(offsets) != {"<e1>", "</e1>", "<e2>", "</e2>"}:
        return None, None, "e1 / e2 tags missing"
    spans = _span_tokenize(text)
    words = tuple(text[s:e] for s, e in spans)
    e1 = _char_to_word_span(spans, offsets["<e1>"], offsets["</e1>"])
    e2 = _char_to_word_span(spans, offsets["<e2>"], offsets["</e2>"])
    if e1 is None or e2 is None:
        return words, None, "entity tag boundary inside a word"
    return words, (*e1, *e2), None


def build_relations(source: Path | None = None, *, splits: Sequence[str] = ("train", "dev"),
                    train_fraction: float = 0.85, seed: int = 42) -> EdgeTask:
    """Relation classification (Tenney's "Rel. (SemEval)") on SemEval-2010 Task 8 (CC BY 3.0): span1 =
    the <e1> nominal, span2 = the <e2> nominal, one label of 19 (9 relations x 2 directions, e.g.
    "Cause-Effect(e1,e2)", plus "Other").

    Follows jiant's ``probing/data/get_semeval_data.sh`` / ``convert-semeval2010-task8.py``: SemEval has
    no dev set, so the training file is split deterministically as jiant's ``deterministic_split.py
    -s 42 -f 0.85`` does (``random.seed(seed)``, then each example in file order goes to train when
    ``random.random() <= train_fraction``, else to "dev"); the test file is "test". Differs from jiant
    in tokenization: jiant split the tagged sentence on whitespace (so "elements." stayed one word); here
    the tag-free sentence is PTB-style tokenized (``_span_tokenize``) and the tags' character
    offsets become word spans (examples whose tag falls inside a word are dropped and counted).

    ``source=None`` reads the bundled slice: the first 3,600 training examples, split the same way (the
    seeded draws are those of the full file, so bundled train / dev are subsets of the full ones).
    """
    splits = check_splits("relations", splits, ("train", "dev", "test"))
    if source is None:
        if "test" in splits:
            raise BertInsightInputError("edge task 'relations': the bundled slice has only training examples "
                                        "(train / dev); pass source (the folder holding semeval2010_task8/) for "
                                        "'test'.")
        files = {"train": bundled_path(f"{BUNDLED_DIR}/{BUNDLED_SEMEVAL}")}
    else:
        wanted = sorted({"test" if s == "test" else "train" for s in splits})
        files = dict(zip(wanted, _require_files("relations", source, "semeval2010_task8",
                                                [_SEMEVAL_FILES[f] for f in wanted])))
    examples = {split: [] for split in splits}
    for file_split, path in files.items():
        triples = _semeval_examples(path, str(path))
        if file_split == "train":
            rng = random.Random(seed)
            for triple in triples:
                split = "train" if rng.random() <= train_fraction else "dev"
                if split in examples:
                    examples[split].append(triple)
        elif "test" in examples:
            examples["test"] = triples
    texts, targets, report = [], [], []
    for split in splits:
        made, dropped = 0, Counter()
        for example_id, tagged, label in examples[split]:
            if label not in SEMEVAL_LABELS:
                dropped["unknown relation label"] += 1
                continue
            words, spans, why = _semeval_target(tagged)
            if spans is None:
                dropped[why] += 1
                continue
            text_id = f"semeval:{example_id}"
            texts.append((split, text_id, words))
            targets.append((split, text_id, *spans, label))
            made += 1
        report += _report(split, made, dropped)
    return make_task("relations", texts, targets, labels=SEMEVAL_LABELS, two_spans=True, report=report, info={
        "source": {k: (str(p) if source is not None else f"bundled:{p.name}") for k, p in files.items()},
        "licence": "CC BY 3.0 (SemEval-2010 Task 8, Hendrickx et al. 2010)",
        "split": f"training file split as jiant's deterministic_split.py (seed {seed}, fraction {train_fraction}) "
                 "into train and dev; test file -> test",
        "caveats": "PTB tokenization (jiant split on whitespace)."})
