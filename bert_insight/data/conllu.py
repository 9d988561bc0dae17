"""CoNLL-U treebanks (Universal Dependencies) as a words frame, sentence examples made from it, and
links between words for the relation analyses of Kovaleva et al. 2019 (section 4.2).

``load_conllu`` reads any CoNLL-U file (plain or gzipped) into one row per syntactic word;
``sentences_as_examples`` turns the sentences into sentence examples (text_a = the words joined by
single spaces, with each word's character span so model tokens map back to words);
``dependency_links`` (verb -> subject / object subtrees), ``propbank_links`` (PropBank predicate ->
core argument, for UD English EWT) and ``coreference_links`` (pronoun -> antecedent noun, from
CorefUD-style ``Entity=`` annotations such as UD English GUM's) make link frames over word spans.

Spans of words are half-open: ``start`` is the first word's index (0-based), ``end`` one past the last.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

from bert_insight.data._files import as_local_path, bundled_path, read_text
from bert_insight.errors import BertInsightInputError
from bert_insight.frames import require_columns
from bert_insight.text import joined_word_spans

#: The first 500 sentences of UD English EWT dev (CC BY-SA 4.0; ATTRIBUTION.md).
BUNDLED_CONLLU = "ud_ewt_dev_first500.conllu.gz"
WORD_COLUMNS = ("sentence_id", "word_index", "word", "lemma", "upos", "xpos", "feats", "head", "deprel", "misc",
                "multiword", "multiword_start", "doc_id", "text")
#: A links frame: one row per link between two word spans of a sentence (``relation`` says which).
LINK_COLUMNS = ("sentence_id", "source_start", "source_end", "target_start", "target_end", "relation")
#: Dependency relations of a subject / an object (UD v2 labels and the subtypes EWT uses for them).
SUBJECT_RELATIONS = ("nsubj", "nsubj:pass")
OBJECT_RELATIONS = ("obj", "iobj")
PROPBANK_CORE_ROLES = ("ARG0", "ARG1", "ARG2", "ARG3", "ARG4", "ARG5")
_WORDS_MADE_BY = "bert_insight.data.conllu.load_conllu"


# ---- reading -------------------------------------------------------------------------------------------
class _Sentence:
    def __init__(self, first_line: int):
        self.first_line = first_line
        self.sent_id: str | None = None
        self.text: str | None = None
        self.rows: list[list] = []
        self.head_lines: list[int] = []
        self.multiword: dict[int, tuple[int, str]] = {}  # 1-based word id -> (first word id, form)


def load_conllu(source: str | os.PathLike | None = None, *, max_sentences: int | None = None) -> pd.DataFrame:
    """One row per syntactic word of a CoNLL-U file (UD treebanks; plain or .gz).

    ``source``: None = the bundled slice (the first 500 sentences of UD English EWT dev, 7,621
    words), or the path of a ``.conllu`` / ``.conllu.gz`` file. ``max_sentences``: read only that many.

    Multiword-token lines (``3-4 don't``) and empty nodes (``5.1``) are not words: they are skipped, and
    each word of a multiword token records its form (``multiword``) and the index of its first word
    (``multiword_start``), so "didn't" = did + n't stays recoverable.

    Returns a DataFrame with columns sentence_id (``# sent_id``, else the sentence's 1-based number as
    a string), word_index (0-based within the sentence), word (FORM), lemma, upos, xpos, feats, head
    (0-based index of the head word; -1 for the root), deprel, misc (the raw MISC field), multiword
    (form of the multiword token holding the word, or None), multiword_start (-1 when none), doc_id
    (the last ``# newdoc id``, or None) and text (the sentence's ``# text``, or None); ``attrs`` hold
    dataset ("conllu"), source, n_sentences and n_words.

    Raises BertInsightInputError naming the file and line of the first malformed line (not 10
    tab-separated fields, a word number out of sequence, a head that is not a word of the sentence, a
    repeated sent_id).
    """
    if max_sentences is not None and (isinstance(max_sentences, bool) or not isinstance(max_sentences, int)
                                      or max_sentences <= 0):
        raise BertInsightInputError(f"max_sentences={max_sentences!r}; pass a positive number or None for all.")
    if source is None:
        path, name = bundled_path(BUNDLED_CONLLU), f"bundled:{BUNDLED_CONLLU}"
    else:
        path = as_local_path(source, "load_conllu")
        name = str(path)
    try:
        content = read_text(path)
    except UnicodeDecodeError as err:
        raise BertInsightInputError(f"{name} is not UTF-8 text ({err}); pass a CoNLL-U file.") from err
    records: list[list] = []
    seen_ids: dict[str, int] = {}
    doc_id: str | None = None
    sentence: _Sentence | None = None
    n_sentences = 0

    def fail(line_number: int, what: str):
        raise BertInsightInputError(f"{name}, line {line_number}: {what}. Fix that line or pass a valid CoNLL-U "
                                    "file (10 tab-separated fields per word line, blank line after each sentence).")

    def finish(current: _Sentence) -> None:
        nonlocal n_sentences
        n_words = len(current.rows)
        sentence_id = current.sent_id if current.sent_id is not None else str(n_sentences + 1)
        if sentence_id in seen_ids:
            fail(current.first_line, f"sent_id {sentence_id!r} repeats the sentence at line {seen_ids[sentence_id]}")
        seen_ids[sentence_id] = current.first_line
        for row, line_number in zip(current.rows, current.head_lines):
            if not 0 <= row[6] <= n_words:
                fail(line_number, f"HEAD {row[6]} is not a word of this {n_words}-word sentence (0 = root)")
        for index, row in enumerate(current.rows):
            first, form = current.multiword.get(index + 1, (0, None))
            records.append([sentence_id, index, row[1], row[2], row[3], row[4], row[5], row[6] - 1, row[7], row[9],
                            form, first - 1 if form is not None else -1, doc_id, current.text])
        n_sentences += 1

    for line_number, raw in enumerate(content.splitlines(), start=1):
        line = raw.rstrip("\r")
        if max_sentences is not None and n_sentences >= max_sentences:
            break
        if not line.strip():
            if sentence is not None and sentence.rows:
                finish(sentence)
            sentence = None
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            key = key.strip()
            if key in ("newdoc id", "newdoc"):
                doc_id = value.strip() or None
            elif sentence is not None and sentence.rows:
                fail(line_number, "a comment inside a sentence (comments go before its first word)")
            else:
                sentence = sentence or _Sentence(line_number)
                if key == "sent_id":
                    sentence.sent_id = value.strip()
                elif key == "text":
                    sentence.text = value.strip()
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            fail(line_number, f"{len(fields)} tab-separated fields instead of 10")
        sentence = sentence or _Sentence(line_number)
        word_id = fields[0]
        if re.fullmatch(r"\d+\.\d+", word_id):  # an empty node (enhanced dependencies only)
            continue
        multi = re.fullmatch(r"(\d+)-(\d+)", word_id)
        if multi:
            first, last = int(multi.group(1)), int(multi.group(2))
            if first != len(sentence.rows) + 1 or last < first:
                fail(line_number, f"multiword token {word_id!r} does not start at the next word "
                                  f"({len(sentence.rows) + 1})")
            for number in range(first, last + 1):
                sentence.multiword[number] = (first, fields[1])
            continue
        if not word_id.isdigit() or int(word_id) != len(sentence.rows) + 1:
            fail(line_number, f"word number {word_id!r} where {len(sentence.rows) + 1} was expected")
        if not fields[6].isdigit():
            fail(line_number, f"HEAD {fields[6]!r} is not a word number (0 = root)")
        row = list(fields)
        row[6] = int(fields[6])
        sentence.rows.append(row)
        sentence.head_lines.append(line_number)
    if sentence is not None and sentence.rows and (max_sentences is None or n_sentences < max_sentences):
        finish(sentence)
    if not records:
        raise BertInsightInputError(f"{name} holds no sentences; pass a CoNLL-U file with word lines.")
    frame = pd.DataFrame(records, columns=list(WORD_COLUMNS))
    frame["word_index"] = frame["word_index"].astype("int64")
    frame["head"] = frame["head"].astype("int64")
    frame["multiword_start"] = frame["multiword_start"].astype("int64")
    for column in ("multiword", "doc_id", "text"):  # None, not NaN, where absent
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame.attrs = {"dataset": "conllu", "source": name, "n_sentences": n_sentences, "n_words": len(frame)}
    return frame


# ---- words -> sentences --------------------------------------------------------------------------------
def require_words(words, columns=("sentence_id", "word_index", "word")) -> pd.DataFrame:
    """``words`` checked for ``columns`` (one clear error otherwise)."""
    return require_columns(words, columns, what="words", made_by=_WORDS_MADE_BY)


def sentence_groups(words: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(sentence_id, the sentence's rows ordered by word_index) in order of first appearance; the
    word indices of every sentence must be 0..n-1."""
    groups = []
    for sentence_id, rows in words.groupby("sentence_id", sort=False):
        rows = rows.sort_values("word_index", kind="stable")
        indices = rows["word_index"].to_numpy()
        if not np.array_equal(indices, np.arange(len(rows))):
            raise BertInsightInputError(
                f"sentence {sentence_id!r} has word_index {indices[:12].tolist()}...; every sentence needs the words "
                "0..n-1, once each. Pass the frame of load_conllu (or filter whole sentences only).")
        groups.append((str(sentence_id), rows))
    return groups


def sentences_as_examples(words: pd.DataFrame) -> pd.DataFrame:
    """Each sentence of a words frame as a sentence example, for any attention verb.

    Returns a DataFrame with columns example_id (the sentence_id), text_a (the words joined by single
    spaces), text_b (None), label (NaN), word_spans (one (char_start, char_end) span into text_a per
    word, in word order: tokens whose character offsets overlap a word's span are its pieces, see
    ``bert_insight.windows.word_pieces``) and n_words; ``attrs`` keep the words' attrs.
    """
    require_words(words)
    rows = []
    for sentence_id, sentence in sentence_groups(words):
        for word in sentence["word"]:
            if not isinstance(word, str) or not word.strip():
                raise BertInsightInputError(f"sentence {sentence_id!r} has an empty word ({word!r}); every word "
                                            "needs its text.")
        spans = joined_word_spans(sentence["word"])
        rows.append((sentence_id, " ".join(sentence["word"]), None, np.nan, spans, len(spans)))
    frame = pd.DataFrame(rows, columns=["example_id", "text_a", "text_b", "label", "word_spans", "n_words"])
    frame["label"] = frame["label"].astype("float64")
    frame.attrs = dict(words.attrs)
    return frame


# ---- links ---------------------------------------------------------------------------------------------
def _links_frame(rows: list[tuple], extra: tuple[str, ...] = (), **attrs) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[*LINK_COLUMNS, *extra])
    for column in LINK_COLUMNS[1:5]:
        frame[column] = frame[column].astype("int64")
    frame.attrs = attrs
    return frame


def dependency_links(words: pd.DataFrame, *, relations=SUBJECT_RELATIONS + OBJECT_RELATIONS) -> pd.DataFrame:
    """Links from UD dependencies: every verb (upos VERB) -> the subtree of each of its dependents whose
    deprel is in ``relations`` (default nsubj, nsubj:pass, obj, iobj), a stand-in for predicate ->
    argument links where no semantic-role annotation exists.

    The target span runs from the leftmost to the rightmost word of the dependent's subtree (UD EWT
    subtrees are contiguous nearly always). Returns the columns of ``LINK_COLUMNS``: sentence_id,
    source_start, source_end (the verb: one word), target_start, target_end, relation (the deprel).
    """
    require_words(words, ("sentence_id", "word_index", "word", "upos", "head", "deprel"))
    wanted = set(relations)
    rows = []
    for sentence_id, sentence in sentence_groups(words):
        heads = sentence["head"].to_numpy()
        upos = sentence["upos"].to_numpy()
        for dependent, (head, deprel) in enumerate(zip(heads, sentence["deprel"])):
            if deprel in wanted and head >= 0 and upos[head] == "VERB":
                subtree = _subtree(heads, dependent)
                rows.append((sentence_id, int(head), int(head) + 1, min(subtree), max(subtree) + 1, deprel))
    return _links_frame(rows, source=words.attrs.get("source"), links="dependency")


def _subtree(heads: np.ndarray, root: int) -> list[int]:
    members, frontier = [root], [root]
    while frontier:
        children = [int(i) for i in np.flatnonzero(np.isin(heads, frontier)) if i not in members]
        members.extend(children)
        frontier = children
    return members


def _skel_sentence_id(doc: str, number: int) -> str:
    """The UD EWT sent_id of PropBank EWT sentence ``number`` (0-based) of ``doc``:
    google/ewt/<genre>/<nn>/<name>.xml, 0 -> "<genre>-<name>-0001"."""
    parts = doc.split("/")
    name = parts[-1][:-4] if parts[-1].endswith(".xml") else parts[-1]
    genre = parts[2] if len(parts) >= 4 else parts[0]
    return f"{genre}-{name}-{number + 1:04d}"


def propbank_links(words, *, skel: str | os.PathLike) -> pd.DataFrame:
    """Predicate -> core argument (ARG0..ARG5) links of PropBank's English Web Treebank annotation,
    over the words of UD English EWT.

    ``words``: the words frame of a UD English EWT file (``load_conllu()``, the bundled dev slice, or
    ``load_conllu("en_ewt-ud-dev.conllu")``) or the path of such a file. ``skel``: the matching
    PropBank ``.gold_skel`` file (plain or .gz; propbank-release's data/google/ewt files concatenated,
    word column masked as ``[WORD]``).

    The skel's sentences are matched to UD sentences by document and sentence number (doc
    google/ewt/<genre>/<nn>/<name>.xml, sentence k -> sent_id "<genre>-<name>-<k+1, 4 digits>"), and a
    sentence is used only when both have the same number of words (then token i is UD word i: both
    follow the PTB tokenisation of EWT). Skel sentences absent from ``words`` are skipped, as are the
    few whose word counts differ (``attrs["n_mismatched"]``); modifiers (ARGM-*), references (R-ARG*)
    and continuations (C-ARG*) are not core arguments and are left out.

    Returns the columns of ``LINK_COLUMNS`` (sentence_id, source_start, source_end = the predicate's
    span, target_start, target_end = the argument's span, relation = the role "ARG0".."ARG5") plus
    roleset ("nominate.01"); ``attrs`` hold n_sentences (skel sentences found in words with matching
    word counts), n_mismatched and n_absent.
    """
    if not isinstance(words, pd.DataFrame):
        words = load_conllu(words)
    require_words(words)
    lengths = words.groupby("sentence_id", sort=False)["word_index"].size().to_dict()
    path = as_local_path(skel, "propbank_links")
    name = str(path)
    rows: list[tuple] = []
    counts = {"n_sentences": 0, "n_mismatched": 0, "n_absent": 0}
    for block in skel_sentences(path, name):
        sentence_id = skel_sentence_id(block)
        if sentence_id not in lengths:
            counts["n_absent"] += 1
        elif lengths[sentence_id] != len(block):
            counts["n_mismatched"] += 1
        else:
            counts["n_sentences"] += 1
            rows.extend((sentence_id, *link) for link in _skel_links(block, name))
    frame = _links_frame(rows, ("roleset",), source=words.attrs.get("source"), skel=name, links="propbank", **counts)
    return frame


#: One sentence of a .gold_skel file: (line number, the line's whitespace-separated fields) per token.
SkelBlock = list[tuple[int, list[str]]]


def skel_sentences(path, name: str | None = None) -> Iterator[SkelBlock]:
    """The sentences of a PropBank ``.gold_skel`` file (plain or .gz), one block of token lines each.

    A line holds doc, sentence number, token number (from 0), word (masked ``[WORD]``), PTB POS,
    PTB parse bit, predicate lemma, roleset, then one SRL column per predicate. A sentence ends at a
    blank line or where (doc, sentence number) changes. Raises BertInsightInputError naming the file
    and line of a line that is not a skel line or does not continue its sentence.
    """
    name = name or str(path)
    block: SkelBlock = []
    for line_number, raw in enumerate(read_text(path).splitlines(), start=1):
        fields = raw.split()
        if not fields:
            if block:
                yield block
            block = []
            continue
        if len(fields) < 8 or not fields[1].isdigit() or not fields[2].isdigit():
            raise BertInsightInputError(
                f"{name}, line {line_number}: not a PropBank .gold_skel line (doc, sentence number, token number, "
                "word, POS, parse bit, lemma, roleset, one SRL column per predicate). Pass a .gold_skel file.")
        if block and (fields[0], fields[1]) != (block[0][1][0], block[0][1][1]):
            yield block
            block = []
        if int(fields[2]) != len(block) or (block and len(fields) != len(block[0][1])):
            raise BertInsightInputError(
                f"{name}, line {line_number}: token {fields[2]} with {len(fields)} fields does not continue its "
                "sentence (tokens numbered from 0, the same number of SRL columns on every line). Pass a .gold_skel "
                "file.")
        block.append((line_number, fields))
    if block:
        yield block


def skel_sentence_id(block: SkelBlock) -> str:
    """The UD EWT sent_id of a skel sentence (see :func:`_skel_sentence_id`)."""
    first = block[0][1]
    return _skel_sentence_id(first[0], int(first[1]))


def skel_bracket_spans(block: SkelBlock, column: int, name: str, *, complete: bool = False) -> list[tuple]:
    """(label, start, end, rank) of the bracketed spans in ``column`` of a skel sentence (the parse bit,
    column 5, or an SRL column, 8 on): ``(NP*`` opens an NP at a token, each ``)`` closes the latest open
    span. ``rank`` is the order of opening (preorder for a tree); the list is in closing order.
    ``complete``: also raise when a span is still open at the end of the sentence."""
    spans, stack, opened = [], [], 0
    what = "the parse bit" if column == 5 else f"SRL column {column - 7}"
    for position, (line_number, fields) in enumerate(block):
        cell = fields[column]
        for label in re.findall(r"\(([^()*]+)", cell):
            stack.append((label, position, opened))
            opened += 1
        for _ in range(cell.count(")")):
            if not stack:
                raise BertInsightInputError(f"{name}, line {line_number}: {what} closes a span it never opened. "
                                            "Pass a valid .gold_skel file.")
            label, start, rank = stack.pop()
            spans.append((label, start, position + 1, rank))
    if complete and stack:
        raise BertInsightInputError(f"{name}, line {block[-1][0]}: {what} leaves {len(stack)} span(s) open at the end "
                                    f"of the sentence ({[label for label, _, _ in stack]}). Pass a valid .gold_skel file.")
    return spans


def _skel_links(block: SkelBlock, name: str) -> list[tuple]:
    """(source_start, source_end, target_start, target_end, role, roleset) of one skel sentence."""
    n_columns = len(block[0][1]) - 8
    links = []
    for column in range(8, 8 + n_columns):
        spans = skel_bracket_spans(block, column, name)
        predicates = [(start, end) for label, start, end, _ in spans if label == "V"]
        if not predicates:
            continue
        source_start, source_end = predicates[0]
        roleset = block[source_start][1][7]
        for label, start, end, _ in spans:
            if label in PROPBANK_CORE_ROLES:
                links.append((source_start, source_end, start, end, label, roleset))
    return links


# ---- coreference ---------------------------------------------------------------------------------------
def _mentions(misc_values) -> list[tuple[str, int, int]]:
    """(entity id, start, end) of the CorefUD ``Entity=`` mentions of one sentence's MISC fields:
    ``(id-attrs...`` opens a mention at a word, ``id)`` closes it, ``(id-attrs...)`` is a one-word one."""
    mentions, open_mentions = [], []
    for index, misc in enumerate(misc_values):
        entity = next((part[7:] for part in str(misc or "").split("|") if part.startswith("Entity=")), "")
        position = 0
        while position < len(entity):
            if entity[position] == "(":
                stop = position + 1
                while stop < len(entity) and entity[stop] not in "()":
                    stop += 1
                eid = re.sub(r"\[.*?\]", "", entity[position + 1: stop].split("-")[0])
                if stop < len(entity) and entity[stop] == ")":
                    mentions.append((eid, index, index + 1))
                    position = stop + 1
                else:
                    open_mentions.append((eid, index))
                    position = stop
            else:
                stop = entity.find(")", position)
                if stop < 0:
                    break
                eid = re.sub(r"\[.*?\]", "", entity[position:stop])
                for k in range(len(open_mentions) - 1, -1, -1):
                    if open_mentions[k][0] == eid:
                        mentions.append((eid, open_mentions[k][1], index + 1))
                        del open_mentions[k]
                        break
                position = stop + 1
    return mentions


def has_coreference(words: pd.DataFrame) -> bool:
    """True when the words' MISC column carries CorefUD ``Entity=`` annotations."""
    return "misc" in words.columns and bool(words["misc"].astype(str).str.contains("Entity=", regex=False).any())


def coreference_links(words: pd.DataFrame) -> pd.DataFrame:
    """Pronoun -> antecedent noun links inside a sentence, from CorefUD ``Entity=`` annotations in the
    MISC column (UD English GUM has them: ``load_conllu("en_gum-ud-dev.conllu")``; UD EWT does not).

    For each one-word mention whose word is a pronoun (upos PRON), the antecedent is the nearest
    earlier mention of the same entity in the same sentence whose head word (the mention's word whose
    head lies outside the mention) is a noun (NOUN / PROPN). Returns the columns of ``LINK_COLUMNS``:
    source = the pronoun, target = the antecedent's head noun (one word each), relation
    "noun_pronoun". Raises BertInsightInputError when there is no ``Entity=`` annotation at all.
    """
    require_words(words, ("sentence_id", "word_index", "word", "upos", "head", "misc"))
    if not has_coreference(words):
        raise BertInsightInputError(
            "words carry no coreference: noun_pronoun needs CorefUD Entity= annotations in the misc column (UD "
            "English GUM has them: load_conllu('en_gum-ud-dev.conllu')); UD English EWT has none.")
    rows = []
    for sentence_id, sentence in sentence_groups(words):
        heads = sentence["head"].to_numpy()
        upos = sentence["upos"].to_numpy()
        mentions = sorted(_mentions(sentence["misc"].tolist()), key=lambda m: (m[1], m[2]))
        head_of = {}
        for eid, start, end in mentions:
            inside = [i for i in range(start, end) if not start <= heads[i] < end]
            head_of[(eid, start, end)] = inside[0] if inside else start
        for eid, start, end in mentions:
            if end - start != 1 or upos[start] != "PRON":
                continue
            earlier = [head_of[m] for m in mentions
                       if m[0] == eid and m[2] <= start and upos[head_of[m]] in ("NOUN", "PROPN")]
            if earlier:
                noun = max(earlier)
                rows.append((sentence_id, start, start + 1, noun, noun + 1, "noun_pronoun"))
    return _links_frame(rows, source=words.attrs.get("source"), links="coreference")

