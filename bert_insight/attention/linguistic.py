"""Attention to linguistic features and between linked words (Kovaleva et al. 2019, sections 4.2, 4.4
and 4.5), on treebank sentences (a words frame: :func:`bert_insight.data.conllu.load_conllu`).

Each sentence is one input, its words joined by single spaces (text_a only, whatever the model's
task, so any handle reads them), cut at ``max_length`` tokens (default 128). Model tokens map back to
the treebank's words by character offsets (:func:`word_pieces`): a word's pieces are the tokens whose
offsets overlap its span. Attention *into* a word is the sum over its pieces; attention *from* a word
is that of its first piece. Words cut off by truncation have no pieces and count as absent.

Like :mod:`bert_insight.attention.stats`, every statistic streams the maps batch by batch
(:func:`~bert_insight.attention.maps.iter_attention`) into per-head running sums, and returns a tidy
frame with one row per (layer, head) and value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.conllu import (
    LINK_COLUMNS,
    OBJECT_RELATIONS,
    SUBJECT_RELATIONS,
    coreference_links,
    has_coreference,
    require_words,
    sentence_groups,
    sentences_as_examples,
)
from ..errors import BertInsightInputError
from ..frames import frame_attrs
from ..models.handle import ModelHandle
from ..windows import DEFAULT_SENTENCE_MAX_LENGTH, encode_sentences, word_pieces
from .maps import iter_attention, resolve_selection, sentence_tokens
from .stats import head_columns, task_label

#: Footnote 6 of the paper: its hand-made list of negation words (matched lower-cased; a contraction
#: such as "didn't", two UD words did + n't, matches as one element made of both words).
NEGATION_WORDS = frozenset({"neither", "nor", "not", "never", "none", "don't", "won't", "didn't", "hadn't",
                            "haven't", "can't", "isn't", "wasn't", "shouldn't", "couldn't", "nothing", "nowhere"})
#: Features of section 4.4 and what marks a word as one (UD v2 tags and relations).
FEATURES = {
    "noun": "upos NOUN or PROPN",
    "verb": "upos VERB",
    "pronoun": "upos PRON",
    "subject": "deprel " + " or ".join(SUBJECT_RELATIONS),
    "object": "deprel " + " or ".join(OBJECT_RELATIONS),
    "negation": "a word of footnote 6's list (NEGATION_WORDS), lower-cased",
}
RELATIONS = ("verb_subject", "noun_pronoun")
FEATURE_COLUMNS = ("task", "layer", "head", "feature", "value", "n_sentences")
TOKEN_TO_TOKEN_COLUMNS = ("task", "layer", "head", "relation", "value", "n_links")
RELATION_HEAD_COLUMNS = ("task", "layer", "head", "value", "n_sentences")
_FEATURE_COLUMNS_NEEDED = {"noun": "upos", "verb": "upos", "pronoun": "upos", "subject": "deprel",
                           "object": "deprel", "negation": "word"}


# ---- words <-> model tokens ----------------------------------------------------------------------------
def _normal(word) -> str:
    return str(word).lower().replace("\u2019", "'")


def feature_elements(sentence: pd.DataFrame, feature: str) -> list[list[int]]:
    """Word indices of each element of ``feature`` in one sentence's rows (ordered by word_index):
    one word per element, except a negated contraction (all words of its multiword token, or
    word + "n't" when the treebank split it without a multiword line)."""
    if feature in ("noun", "verb", "pronoun"):
        tags = {"noun": ("NOUN", "PROPN"), "verb": ("VERB",), "pronoun": ("PRON",)}[feature]
        return [[i] for i in np.flatnonzero(sentence["upos"].isin(tags).to_numpy()).tolist()]
    if feature in ("subject", "object"):
        relations = SUBJECT_RELATIONS if feature == "subject" else OBJECT_RELATIONS
        return [[i] for i in np.flatnonzero(sentence["deprel"].isin(relations).to_numpy()).tolist()]
    if feature != "negation":
        raise BertInsightInputError(_unknown_feature(feature))
    forms = [_normal(word) for word in sentence["word"]]
    multiword = (sentence["multiword"].tolist() if "multiword" in sentence.columns else [None] * len(forms))
    starts = (sentence["multiword_start"].tolist() if "multiword_start" in sentence.columns else [-1] * len(forms))
    elements: list[list[int]] = []
    for index, form in enumerate(forms):
        surface = multiword[index]
        if isinstance(surface, str) and starts[index] >= 0:
            if _normal(surface) in NEGATION_WORDS:
                if starts[index] == index:  # the contraction once, at its first word
                    elements.append([i for i in range(len(forms)) if starts[i] == index])
                continue
        if form in NEGATION_WORDS:
            elements.append([index])
        elif form == "n't" and index > 0 and forms[index - 1] + "n't" in NEGATION_WORDS:
            elements.append([index - 1, index])
    return elements


def _unknown_feature(feature) -> str:
    known = ", ".join(f"{name} ({rule})" for name, rule in FEATURES.items())
    return f"unknown feature {feature!r}; the features are: {known}."


def _check_features(features) -> tuple[str, ...]:
    values = (features,) if isinstance(features, str) else tuple(features)
    if not values:
        raise BertInsightInputError(f"features is empty; pass some of {list(FEATURES)}.")
    for feature in values:
        if feature not in FEATURES:
            raise BertInsightInputError(_unknown_feature(feature))
    return tuple(dict.fromkeys(values))


# ---- shared streaming ----------------------------------------------------------------------------------
def _sentence_inputs(handle: ModelHandle, words: pd.DataFrame, max_length: int | None):
    """(sentence_id, rows, window, pieces per word) for every sentence, and the tokens-frame inputs."""
    length = DEFAULT_SENTENCE_MAX_LENGTH if max_length is None else max_length
    handle.check_fits(length)
    examples = sentences_as_examples(words)
    groups = sentence_groups(words)
    windows = encode_sentences(handle.tokenizer, examples, max_length=length)
    prepared = []
    for (sentence_id, rows), window, example in zip(groups, windows, examples.itertuples()):
        prepared.append((sentence_id, rows, window, word_pieces(window, example.word_spans), example.text_a))
    return prepared


def _stream(handle, prepared, *, layers, heads, batch_size, progress):
    """Yield (position in ``prepared``, maps float64 (n_layers, n_heads, T, T)) for each prepared sentence,
    in the stream's batch order."""
    inputs = [(window, sentence_tokens(handle.tokenizer, window, text, None))
              for _, _, window, _, text in prepared]
    position = {id(window): index for index, (window, _) in enumerate(inputs)}
    stream = iter_attention(handle, inputs, layers=layers, heads=heads, batch_size=batch_size, progress=progress)
    for window, _, weights in stream:
        yield position[id(window)], weights.astype(np.float64)


def _params(layers, heads, max_length, batch_size, **extra) -> dict:
    return {**extra, "layers": list(layers), "heads": list(heads), "max_length": max_length,
            "batch_size": batch_size}


# ---- section 4.4: attention to linguistic features -----------------------------------------------------
def feature_attention(
    handle: ModelHandle,
    words: pd.DataFrame,
    *,
    features=("noun", "verb", "pronoun", "subject", "object", "negation"),
    layers="all",
    heads="all",
    max_length: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """How much attention each head pays to words of a linguistic feature (section 4.4): "vertical
    stripes" on nouns, verbs, pronouns, subjects, objects and negation words.

    For every sentence, head and element of a feature, the attention into the element is summed over
    all queries (every token of the input, [CLS] and [SEP] included) and divided by the input's
    length in tokens; an element of several word pieces (or words: a contraction) gets the sum over
    its pieces. The sentence's score is the maximum over its elements of that feature; sentences
    without the feature are skipped for it; the scores are averaged over the remaining sentences.

    Features (``FEATURES``): noun = upos NOUN or PROPN, verb = upos VERB, pronoun = upos PRON, subject
    = deprel nsubj or nsubj:pass, object = deprel obj or iobj, negation = a word of the paper's
    footnote-6 list (``NEGATION_WORDS``, lower-cased; "didn't" = did + n't counts as one element).

    ``words``: a words frame (:func:`bert_insight.data.conllu.load_conllu`: sentence_id, word_index,
    word, upos, deprel). A feature that no sentence has gets value NaN and n_sentences 0.

    Returns columns task (the classifier's task, "qa" or "encoder"), layer, head, feature, value,
    n_sentences (sentences that have the feature), one row per feature and head.
    """
    layers, heads = resolve_selection(handle, layers, heads)
    features = _check_features(features)
    needed = sorted({"sentence_id", "word_index", "word", *(_FEATURE_COLUMNS_NEEDED[f] for f in features)})
    require_words(words, needed)
    prepared = []
    for item in _sentence_inputs(handle, words, max_length):
        _, rows, _, pieces, _ = item
        elements = {}
        for feature in features:
            with_pieces = [sum((pieces[w] for w in element), []) for element in feature_elements(rows, feature)]
            if any(with_pieces):
                elements[feature] = [p for p in with_pieces if p]
        if elements:
            prepared.append((item, elements))
    shape = (len(layers), len(heads))
    total = {feature: np.zeros(shape) for feature in features}
    count = dict.fromkeys(features, 0)
    for index, weights in _stream(handle, [item for item, _ in prepared], layers=layers, heads=heads,
                                     batch_size=batch_size, progress=progress):
        into = weights.sum(axis=-2) / weights.shape[-1]  # (L, H, T): each key's attention from all queries
        for feature, element_pieces in prepared[index][1].items():
            scores = np.stack([into[..., element].sum(axis=-1) for element in element_pieces])
            total[feature] += scores.max(axis=0)
            count[feature] += 1
    grid = head_columns(layers, heads)
    parts = []
    for feature in features:
        value = total[feature] / count[feature] if count[feature] else np.full(shape, np.nan)
        parts.append(pd.DataFrame({"task": task_label(handle), **grid, "feature": feature, "value": value.ravel(),
                                   "n_sentences": count[feature]}, columns=list(FEATURE_COLUMNS)))
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs = frame_attrs(handle, "feature_attention", _params(layers, heads, max_length, batch_size,
                                                                     features=list(features)),
                              n_sentences=len(words["sentence_id"].unique()))
    return frame


# ---- section 4.5: token-to-token attention -------------------------------------------------------------
def _relation_pairs(words: pd.DataFrame, relation: str) -> dict[str, list[tuple[int, int]]]:
    """sentence_id -> (query word, key word) pairs of ``relation``."""
    if relation == "verb_subject":
        require_words(words, ("sentence_id", "word_index", "word", "upos", "head", "deprel"))
        pairs = {}
        for sentence_id, rows in sentence_groups(words):
            heads = rows["head"].to_numpy()
            upos = rows["upos"].to_numpy()
            found = [(int(heads[w]), w) for w, deprel in enumerate(rows["deprel"])
                     if deprel in SUBJECT_RELATIONS and heads[w] >= 0 and upos[heads[w]] == "VERB"]
            if found:
                pairs[sentence_id] = found
        return pairs
    if relation == "noun_pronoun":
        if not isinstance(words, pd.DataFrame) or not has_coreference(words):
            raise BertInsightInputError(
                "relation='noun_pronoun' needs coreference: a words frame whose misc column carries CorefUD Entity= "
                "annotations, e.g. load_conllu('en_gum-ud-dev.conllu') (UD English GUM); UD English EWT has none. "
                "Use relation='verb_subject' for EWT.")
        pairs = {}
        for link in coreference_links(words).itertuples():
            pairs.setdefault(link.sentence_id, []).append((int(link.source_start), int(link.target_start)))
        return pairs
    raise BertInsightInputError(f"relation={relation!r}; pass one of {list(RELATIONS)}.")


def token_to_token_attention(
    handle: ModelHandle,
    words: pd.DataFrame,
    *,
    relation: str = "verb_subject",
    layers="all",
    heads="all",
    max_length: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """Per head, how much a word attends to the word it is linked with (section 4.5), averaged over
    every link in the data.

    ``relation="verb_subject"``: for every verb (upos VERB) and each of its subjects (deprel nsubj or
    nsubj:pass), the attention of the verb's first piece (query) into the subject word (key: the sum
    over its pieces). ``relation="noun_pronoun"``: query = a pronoun, key = its antecedent noun in the
    same sentence, from CorefUD ``Entity=`` annotations in ``words["misc"]``
    (:func:`bert_insight.data.conllu.coreference_links`; UD English GUM has them, EWT does not: an
    error says so). Links with a word truncated away are skipped; no link at all gives value NaN.

    Returns columns task, layer, head, relation, value (mean attention over links), n_links.
    """
    layers, heads = resolve_selection(handle, layers, heads)
    require_words(words)
    pairs = _relation_pairs(words, relation)
    prepared = []
    for item in _sentence_inputs(handle, words, max_length):
        sentence_id, _, _, pieces, _ = item
        usable = [(pieces[query][0], pieces[key]) for query, key in pairs.get(sentence_id, ())
                  if pieces[query] and pieces[key]]
        if usable:
            prepared.append((item, usable))
    total = np.zeros((len(layers), len(heads)))
    n_links = 0
    for index, weights in _stream(handle, [item for item, _ in prepared], layers=layers, heads=heads,
                                     batch_size=batch_size, progress=progress):
        for query, keys in prepared[index][1]:
            total += weights[..., query, keys].sum(axis=-1)
            n_links += 1
    value = total / n_links if n_links else np.full(total.shape, np.nan)
    frame = pd.DataFrame({"task": task_label(handle), **head_columns(layers, heads), "relation": relation,
                          "value": value.ravel(), "n_links": n_links}, columns=list(TOKEN_TO_TOKEN_COLUMNS))
    frame.attrs = frame_attrs(handle, "token_to_token_attention", _params(layers, heads, max_length, batch_size,
                                                                            relation=relation),
                              n_sentences=len(prepared))
    return frame


# ---- section 4.2: relation-specific heads --------------------------------------------------------------
def _positive(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise BertInsightInputError(f"{name}={value!r}; pass a whole number >= {minimum}.")
    return int(value)


def _check_links(links, lengths: dict[str, int]) -> pd.DataFrame:
    if not isinstance(links, pd.DataFrame):
        raise BertInsightInputError(
            f"links must be a pandas DataFrame with columns {list(LINK_COLUMNS[:5])}, got {type(links).__name__}. "
            "Make one with bert_insight.data.conllu.propbank_links or dependency_links.")
    missing = [column for column in LINK_COLUMNS[:5] if column not in links.columns]
    if missing:
        raise BertInsightInputError(
            f"links lacks the column(s) {missing} (it has {list(links.columns)}); pass the frame of "
            "bert_insight.data.conllu.propbank_links or dependency_links (word spans, end exclusive).")
    absent = sorted(set(links["sentence_id"].astype(str)) - set(lengths))
    if absent:
        raise BertInsightInputError(
            f"links name {len(absent)} sentence(s) that words lacks (e.g. {absent[:3]}); keep the links of words' "
            "sentences only (links[links.sentence_id.isin(words.sentence_id)]).")
    for link in links.itertuples():
        n_words = lengths[str(link.sentence_id)]
        spans = [(link.source_start, link.source_end), (link.target_start, link.target_end)]
        if not all(isinstance(v, (int, np.integer)) and 0 <= start < end <= n_words
                   for start, end in spans for v in (start, end)):
            raise BertInsightInputError(
                f"link {spans} of sentence {link.sentence_id!r} is not a pair of word spans of its {n_words} words "
                "(start < end <= n_words, end exclusive).")
    return links


def link_distance(source: tuple[int, int], target: tuple[int, int]) -> int:
    """Words between the nearest ends of two spans, plus one: 1 = adjacent, 0 = overlapping."""
    (source_start, source_end), (target_start, target_end) = source, target
    if target_start >= source_end:
        return target_start - source_end + 1
    if source_start >= target_end:
        return source_start - target_end + 1
    return 0


def relation_heads(
    handle: ModelHandle,
    words: pd.DataFrame,
    *,
    links: pd.DataFrame,
    max_sentence_tokens: int = 12,
    max_element_tokens: int = 3,
    min_distance: int = 2,
    layers="all",
    heads="all",
    max_length: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """Heads whose attention follows semantic links (section 4.2, Figure 3): per head, the maximum
    attention weight between the two ends of a sentence's links, averaged over sentences.

    ``links``: word spans to link in ``words``' sentences (columns sentence_id, source_start,
    source_end, target_start, target_end; end exclusive), e.g. predicate -> core argument from
    :func:`bert_insight.data.conllu.propbank_links` (the paper used FrameNet lexical unit -> core frame
    element) or verb -> subject / object subtree from ``dependency_links``.

    The paper's filters, counted in the treebank's words: sentences of more than
    ``max_sentence_tokens`` words are dropped; a link whose source or target spans more than
    ``max_element_tokens`` words is dropped, and so is one whose ends are fewer than ``min_distance``
    words apart (1 = adjacent; :func:`link_distance`); a sentence with no link left is dropped. (Each
    FrameNet sentence holds one frame, so the paper drops sentences; here a sentence holds all its
    predicates' links, so the element and distance filters drop links.)

    For each surviving sentence and head the score is the largest weight between any piece of a
    link's source and any piece of its target, in both directions (query source -> key target and
    back), over all the sentence's links; scores are averaged over sentences.

    Returns columns task, layer, head, value, n_sentences; ``attrs`` add n_sentences and n_links (what
    survived the filters), percentile_99 (the 99th percentile of the heads' values) and top_heads
    ([layer, head] pairs whose value exceeds it, highest first). Raises BertInsightInputError when no
    sentence survives.
    """
    layers, heads = resolve_selection(handle, layers, heads)
    max_sentence_tokens = _positive(max_sentence_tokens, "max_sentence_tokens")
    max_element_tokens = _positive(max_element_tokens, "max_element_tokens")
    min_distance = _positive(min_distance, "min_distance", minimum=0)
    require_words(words)
    groups = sentence_groups(words)
    lengths = {sentence_id: len(rows) for sentence_id, rows in groups}
    links = _check_links(links, lengths)
    kept: dict[str, list[tuple[tuple[int, int], tuple[int, int]]]] = {}
    for link in links.itertuples():
        sentence_id = str(link.sentence_id)
        source = (int(link.source_start), int(link.source_end))
        target = (int(link.target_start), int(link.target_end))
        if (lengths[sentence_id] <= max_sentence_tokens and source[1] - source[0] <= max_element_tokens
                and target[1] - target[0] <= max_element_tokens and link_distance(source, target) >= min_distance):
            kept.setdefault(sentence_id, []).append((source, target))
    chosen = words[words["sentence_id"].astype(str).isin(kept)]
    prepared = []
    if len(chosen):
        for item in _sentence_inputs(handle, chosen, max_length):
            sentence_id, _, _, pieces, _ = item
            usable = []
            for (s0, s1), (t0, t1) in kept[sentence_id]:
                source = sum(pieces[s0:s1], [])
                target = sum(pieces[t0:t1], [])
                if source and target:
                    usable.append((source, target))
            if usable:
                prepared.append((item, usable))
    if not prepared:
        raise BertInsightInputError(
            f"no sentence survives the filters (at most {max_sentence_tokens} words, elements of at most "
            f"{max_element_tokens} words, linked words at least {min_distance} apart) among {len(lengths)} sentences "
            f"and {len(links)} links; pass more sentences or loosen the filters.")
    total = np.zeros((len(layers), len(heads)))
    for index, weights in _stream(handle, [item for item, _ in prepared], layers=layers, heads=heads,
                                     batch_size=batch_size, progress=progress):
        best = np.full(total.shape, -np.inf)
        for source, target in prepared[index][1]:
            forward = weights[:, :, source][:, :, :, target]
            backward = weights[:, :, target][:, :, :, source]
            best = np.maximum(best, np.maximum(forward.max(axis=(-2, -1)), backward.max(axis=(-2, -1))))
        total += best
    value = (total / len(prepared)).ravel()
    grid = head_columns(layers, heads)
    frame = pd.DataFrame({"task": task_label(handle), **grid, "value": value, "n_sentences": len(prepared)},
                         columns=list(RELATION_HEAD_COLUMNS))
    percentile = float(np.percentile(value, 99))
    top = frame[frame["value"] > percentile].sort_values("value", ascending=False)
    frame.attrs = frame_attrs(handle, "relation_heads", _params(
        layers, heads, max_length, batch_size, max_sentence_tokens=max_sentence_tokens,
        max_element_tokens=max_element_tokens, min_distance=min_distance),
        n_sentences=len(prepared), n_links=sum(len(usable) for _, usable in prepared), percentile_99=percentile,
        top_heads=[[int(layer), int(head)] for layer, head in zip(top["layer"], top["head"])])
    return frame
