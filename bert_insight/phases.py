"""The transformation phases of van Aken et al. 2019 ("How does BERT answer questions?"), measured.

The paper reads four phases off per-layer PCA plots of one example's token vectors by eye: (1) semantic
clustering, (2) entity matching, (3) question-fact matching, (4) answer extraction (section 5.1), and
says wrong predictions can be told apart in the vectors of early layers (5.3). This module keeps the
plots (:func:`token_projection`, :func:`token_clusters`, views in :mod:`bert_insight.viz.phases`) and
adds numbers per (example, layer) (:func:`phase_scores`), curves over layers with bootstrap intervals
(:func:`phase_curves`) and a cross-validated test of the failure claim (:func:`failure_separation`).

Start from :func:`bert_insight.hidden_states` and label the tokens with :func:`phase_roles` (the
paper's colours: prediction > question > supporting fact > other). Distances are euclidean on the raw
hidden states: the paper takes "distances between token vectors as indication for semantic
relations" (3.1), and PCA preserves euclidean geometry. docs/phases.md says how to read each measure.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .errors import BertInsightInputError
from .frames import require_columns
from .representations import PROJECTION_METHODS, TokenVectors, _check_vectors, _chosen_layers, _projector
from .resampling import resample_indices
from .text import is_punctuation, is_stopword

#: Token labels of :func:`phase_roles`, in the paper's colour precedence (special tokens apart).
PHASE_ROLES = ("prediction", "question", "supporting_fact", "other", "special")
#: Columns :func:`phase_roles` reads from the sentences frame (bert_insight.data.context_sentences).
SENTENCE_COLUMNS = ("example_id", "sentence_index", "char_start", "char_end", "is_supporting")
FIT_CHOICES = ("per_layer_example", "per_layer")
#: The measures of :func:`phase_scores` and which way is "more of the phase": the peak of a curve is
#: the layer with the highest mean ("higher") or the lowest ("lower"); a "baseline" has no peak.
MEASURES: dict[str, str] = {
    "role_silhouette": "higher",
    "answer_separation": "higher",
    "question_fact_ratio": "lower",
    "sentence_purity": "higher",
    "sentence_purity_chance": "baseline",
    "same_word_ratio": "lower",
}
#: Phase-role tokens the measures look at (special tokens never count).
_MEASURED_ROLES = ("question", "supporting_fact", "other", "prediction")
_AXES = ("x", "y", "z")
_CHANCE_PERMUTATIONS = 20
VECTORS_MADE_BY = "bert_insight.hidden_states"
SENTENCES_MADE_BY = "bert_insight.data.context_sentences"


# ---- labels ------------------------------------------------------------------------------------------
def _as_bool(values: pd.Series, *, what: str) -> np.ndarray:
    """Booleans from a bool or 0/1 column; anything else is refused (NaN would silently become True)."""
    if values.dtype == bool:
        return values.to_numpy()
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any() or not numeric.isin([0, 1]).all():
        raise BertInsightInputError(f"{what} must hold True/False (or 1/0) in every row; found "
                                    f"{sorted(map(str, pd.unique(values)))[:5]}.")
    return numeric.to_numpy().astype(bool)


def _sentence_of(char_start: np.ndarray, char_end: np.ndarray, sentences: pd.DataFrame) -> np.ndarray:
    """The sentence_index holding each token: the sentence whose [char_start, char_end) holds the token's
    first character; a token starting in a gap between sentences takes the sentence it overlaps most;
    -1 when it overlaps none."""
    ordered = sentences.sort_values("char_start")
    starts = ordered["char_start"].to_numpy(dtype=np.int64)
    ends = ordered["char_end"].to_numpy(dtype=np.int64)
    labels = ordered["sentence_index"].to_numpy(dtype=np.int64)
    position = np.searchsorted(starts, char_start, side="right") - 1
    inside = (position >= 0) & (char_start < ends[np.clip(position, 0, None)])
    result = np.where(inside, labels[np.clip(position, 0, None)], -1)
    for i in np.flatnonzero(~inside):
        overlap = np.minimum(ends, char_end[i]) - np.maximum(starts, char_start[i])
        if overlap.size and overlap.max() > 0:
            result[i] = labels[int(np.argmax(overlap))]
    return result


def phase_roles(
    vectors: TokenVectors,
    *,
    sentences: pd.DataFrame,
    predictions: pd.DataFrame | None = None,
) -> TokenVectors:
    """Label every token as the paper's figures colour it, and by the context sentence holding it.

    ``sentences``: one row per context sentence (the frame of ``bert_insight.data.context_sentences``:
    example_id, sentence_index, char_start, char_end (offsets into the example's context, end
    exclusive), text, is_supporting) for every example of ``vectors``. ``predictions`` (the frame of
    :func:`bert_insight.predict`: example_id, pred_start, pred_end) give the predicted span; when None
    the tokens' ``in_answer`` column is used: in :func:`bert_insight.hidden_states` that is the
    predicted answer for QA handles (the span the analysis window was chosen for) and the first gold
    answer for handles without a QA head (a base encoder, GPT-2).

    Returns a new :class:`~bert_insight.representations.TokenVectors` (the vector arrays are shared,
    not copied) whose tokens frame gains two columns:

    - ``phase_role``: "special" for special tokens, else the first that applies of "prediction" (a
      context token overlapping the predicted span), "question" (segment question), "supporting_fact"
      (a context token in a sentence with is_supporting), "other";
    - ``sentence_index``: the context sentence holding the token (-1 for question and special tokens,
      and for a context token outside every given sentence).
    """
    vectors = _check_vectors(vectors)
    tokens = require_columns(vectors.tokens, ["example_id", "token_index", "segment", "char_start", "char_end"],
                             what="vectors.tokens", made_by=VECTORS_MADE_BY).reset_index(drop=True).copy()
    sentences = require_columns(sentences, SENTENCE_COLUMNS, what="sentences", made_by=SENTENCES_MADE_BY)
    ids = tokens["example_id"].astype(str).to_numpy()
    sentence_ids = sentences["example_id"].astype(str)
    missing = sorted(set(ids) - set(sentence_ids))
    if missing:
        raise BertInsightInputError(
            f"sentences has no rows for {len(missing)} example(s) of the vectors, e.g. {missing[:3]}; make it with "
            f"{SENTENCES_MADE_BY} from the same examples."
        )
    supporting = _as_bool(sentences["is_supporting"], what="sentences.is_supporting")
    segment = tokens["segment"].to_numpy()
    context = segment == "context"
    char_start = tokens["char_start"].to_numpy(dtype=np.int64)
    char_end = tokens["char_end"].to_numpy(dtype=np.int64)

    if predictions is None:
        require_columns(tokens, ["in_answer"], what="vectors.tokens", made_by=VECTORS_MADE_BY)
        predicted = context & _as_bool(tokens["in_answer"], what="vectors.tokens.in_answer")
    else:
        predictions = require_columns(predictions, ["example_id", "pred_start", "pred_end"], what="predictions",
                                      made_by="bert_insight.predict")
        by_id = predictions.assign(example_id=predictions["example_id"].astype(str))
        if by_id["example_id"].duplicated().any():
            raise BertInsightInputError("predictions hold several rows for one example; pass one row per example "
                                        "(the frame of bert_insight.predict).")
        absent = sorted(set(ids) - set(by_id["example_id"]))
        if absent:
            raise BertInsightInputError(f"predictions have no row for {len(absent)} example(s) of the vectors, e.g. "
                                        f"{absent[:3]}; pass the predictions the vectors were computed from.")
        spans = by_id.set_index("example_id")[["pred_start", "pred_end"]].astype(np.int64)
        pred_start = spans["pred_start"].reindex(ids).to_numpy()
        pred_end = spans["pred_end"].reindex(ids).to_numpy()
        # Overlap, as tokens_frame marks in_answer; a null prediction (-1, -1) marks nothing.
        predicted = context & (pred_start >= 0) & (char_start < pred_end) & (char_end > pred_start)

    sentence_index = np.full(len(tokens), -1, dtype=np.int64)
    in_supporting = np.zeros(len(tokens), dtype=bool)
    frame = sentences.assign(_id=sentence_ids.to_numpy(), _supporting=supporting)
    for example_id, rows in frame.groupby("_id", sort=False):
        where = np.flatnonzero(context & (ids == example_id))
        if not where.size:
            continue
        found = _sentence_of(char_start[where], char_end[where], rows)
        sentence_index[where] = found
        supporting_ids = set(rows.loc[rows["_supporting"], "sentence_index"].astype(np.int64))
        in_supporting[where] = np.isin(found, list(supporting_ids)) & (found >= 0)

    tokens["phase_role"] = np.select(
        [segment == "special", predicted, segment == "question", context & in_supporting],
        ["special", "prediction", "question", "supporting_fact"], "other")
    tokens["sentence_index"] = sentence_index
    tokens.attrs = dict(vectors.tokens.attrs)
    attrs = {**vectors.attrs, "phase_roles": {"answer": "in_answer" if predictions is None else "predictions"}}
    return TokenVectors(dict(vectors.vectors), tokens, attrs)


# ---- fits per (layer, example) ---------------------------------------------------------------------------
def _first_token_rows(tokens: pd.DataFrame) -> np.ndarray:
    """Positions (0..n-1) of each example's first token (lowest token_index)."""
    positions = pd.Series(np.arange(len(tokens)), index=tokens.index)
    first = tokens.assign(_pos=positions.to_numpy()).sort_values(["token_index", "_pos"])
    return first.drop_duplicates("example_id")["_pos"].to_numpy()


def _fit_groups(tokens: pd.DataFrame, fit: str, drop_first_token: bool,
                keep: np.ndarray | None = None) -> list[np.ndarray]:
    """Row positions of every fit: one group per example ("per_layer_example") or one for all tokens."""
    if fit not in FIT_CHOICES:
        raise BertInsightInputError(
            f"fit={fit!r}; use 'per_layer_example' (one fit per layer and example, as the paper's per-example "
            "plots) or 'per_layer' (one fit per layer over all the tokens given).")
    keep = np.ones(len(tokens), dtype=bool) if keep is None else keep.copy()
    if drop_first_token:
        keep[_first_token_rows(tokens)] = False
    if fit == "per_layer":
        return [np.flatnonzero(keep)]
    codes, _ = pd.factorize(tokens["example_id"].astype(str))
    groups = [np.flatnonzero((codes == code) & keep) for code in range(codes.max() + 1)]
    return [group for group in groups if group.size]


def _labels(vectors: TokenVectors) -> pd.DataFrame:
    return require_columns(vectors.tokens, ["example_id", "token_index"], what="vectors.tokens",
                           made_by=VECTORS_MADE_BY).reset_index(drop=True)


def _check_small_groups(groups: list[np.ndarray], tokens: pd.DataFrame, needed: int, what: str) -> None:
    for group in groups:
        if group.size < needed:
            example = tokens["example_id"].iloc[group[0]] if group.size else "?"
            raise BertInsightInputError(
                f"example {example!r} has {group.size} token(s) left, too few for {what} (needs {needed}); drop it "
                "with vectors.select(example_ids=...), or use fit='per_layer'.")


def token_projection(
    vectors: TokenVectors,
    *,
    method: str = "pca",
    fit: str = "per_layer_example",
    layers: str | int | Iterable[int] = "all",
    n_components: int = 2,
    seed: int = 0,
    drop_first_token: bool = False,
    perplexity: float | None = None,
) -> pd.DataFrame:
    """2-d (or 3-d) maps of the token vectors, as the paper's Figures 4-9.

    ``method``: "pca" (the paper's choice: "the most distinct clusters"), "tsne" or "ica".
    ``fit="per_layer_example"`` fits one projection per (layer, example) on that example's tokens (the
    paper's plots: one example, one map per layer); ``"per_layer"`` fits one per layer over every token
    given. ``drop_first_token`` leaves each example's first token out of the fit and the frame (van
    Aken 5.2: GPT-2 puts so much on the first token that PCA separates it from all the rest).
    ``perplexity``: t-SNE only (default min(30, (n_tokens - 1) / 3) per fit).

    Columns: every column of ``vectors.tokens`` (phase_role and sentence_index too, after
    :func:`phase_roles`), with ``layer`` after example_id, then x, y (and z when n_components=3).
    """
    vectors = _check_vectors(vectors)
    if method not in PROJECTION_METHODS:
        raise BertInsightInputError(f"method={method!r}; use one of {PROJECTION_METHODS}.")
    if isinstance(n_components, bool) or n_components not in (2, 3):
        raise BertInsightInputError(f"n_components={n_components!r}; use 2 or 3.")
    tokens = _labels(vectors)
    groups = _fit_groups(tokens, fit, drop_first_token)
    _check_small_groups(groups, tokens, n_components + 1, f"a {n_components}-d {method} map")
    chosen = _chosen_layers(vectors, layers)
    kept = np.sort(np.concatenate(groups))
    frames = []
    # One thread: these are many small fits, where OpenMP/BLAS threads cost more in synchronisation
    # than they save (and the machine is usually shared).
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*did not converge.*")  # FastICA on short passages
        for layer in chosen:
            array = vectors.vectors[layer]
            points = np.full((len(tokens), n_components), np.nan)
            for rows in groups:
                projector = _projector(method, n_components, seed, perplexity, rows.size)
                points[rows] = projector.fit_transform(array[rows].astype(np.float64))
            frame = tokens.iloc[kept].copy()
            frame.insert(1, "layer", layer)
            for axis, values in zip(_AXES, points[kept].T):
                frame[axis] = values
            frames.append(frame)
    result = pd.concat(frames, ignore_index=True)
    result.attrs = {**vectors.attrs, "projection": {"method": method, "fit": fit, "n_components": n_components,
                                                     "seed": seed, "drop_first_token": drop_first_token,
                                                     "perplexity": perplexity}}
    return result


def _check_k(k, k_range) -> tuple[int, int] | None:
    if isinstance(k, str):
        if k != "auto":
            raise BertInsightInputError(f"k={k!r}; pass 'auto' (best silhouette over k_range) or a whole number >= 1.")
        if (not isinstance(k_range, (tuple, list)) or len(k_range) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in k_range)
                or not 2 <= k_range[0] <= k_range[1]):
            raise BertInsightInputError(f"k_range={k_range!r}; pass (low, high) whole numbers with 2 <= low <= high "
                                        "(both ends are tried).")
        return int(k_range[0]), int(k_range[1])
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise BertInsightInputError(f"k={k!r}; pass 'auto' or a whole number >= 1.")
    return None


def _silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    n_labels = len(np.unique(labels))
    if not 2 <= n_labels <= len(labels) - 1:  # sklearn's own condition for a defined silhouette
        return float("nan")
    return float(silhouette_score(points, labels, metric="euclidean"))


def token_clusters(
    vectors: TokenVectors,
    *,
    k: int | str = "auto",
    k_range: tuple[int, int] = (2, 8),
    layers: str | int | Iterable[int] = "all",
    fit: str = "per_layer_example",
    seed: int = 0,
    drop_first_token: bool = False,
) -> pd.DataFrame:
    """k-means clusters of the token vectors (sklearn KMeans, n_init=10), per (layer, example) or per layer.

    The paper chose k by eye from each layer's PCA plot (3.1); ``k="auto"`` takes, for each fit, the k in
    ``k_range`` (both ends included, capped at n_tokens - 1) with the best silhouette (ties: the smaller
    k); an int fixes k. ``fit`` and ``drop_first_token`` as in :func:`token_projection`.

    Columns: every column of ``vectors.tokens``, with ``layer`` after example_id, then cluster (0..k-1),
    k (the fit's number of clusters) and silhouette (of that fit: the same value on each of its rows;
    NaN when undefined, e.g. k=1).
    """
    from sklearn.cluster import KMeans

    vectors = _check_vectors(vectors)
    k_bounds = _check_k(k, k_range)
    tokens = _labels(vectors)
    groups = _fit_groups(tokens, fit, drop_first_token)
    needed = k_bounds[0] + 1 if k_bounds is not None else int(k)
    _check_small_groups(groups, tokens, needed, f"k-means with k={k!r}")
    chosen = _chosen_layers(vectors, layers)
    kept = np.sort(np.concatenate(groups))
    frames = []
    with threadpool_limits(1), warnings.catch_warnings():
        # Duplicate vectors (a repeated special token) can leave fewer distinct clusters than k.
        warnings.filterwarnings("ignore", message=".*distinct clusters.*")
        for layer in chosen:
            array = vectors.vectors[layer]
            cluster = np.full(len(tokens), -1, dtype=np.int64)
            chosen_k = np.zeros(len(tokens), dtype=np.int64)
            silhouette = np.full(len(tokens), np.nan)
            for rows in groups:
                points = array[rows].astype(np.float64)
                candidates = ([int(k)] if k_bounds is None
                              else list(range(k_bounds[0], min(k_bounds[1], rows.size - 1) + 1)))
                best = None
                for candidate in candidates:
                    labels = KMeans(n_clusters=candidate, n_init=10, random_state=seed).fit_predict(points)
                    score = _silhouette(points, labels)
                    if best is None or (not np.isnan(score) and (np.isnan(best[0]) or score > best[0])):
                        best = (score, candidate, labels)
                cluster[rows], chosen_k[rows], silhouette[rows] = best[2], best[1], best[0]
            frame = tokens.iloc[kept].copy()
            frame.insert(1, "layer", layer)
            frame["cluster"] = cluster[kept]
            frame["k"] = chosen_k[kept]
            frame["silhouette"] = silhouette[kept]
            frames.append(frame)
    result = pd.concat(frames, ignore_index=True)
    result.attrs = {**vectors.attrs, "clusters": {"k": k, "k_range": tuple(k_range), "fit": fit, "seed": seed,
                                                   "drop_first_token": drop_first_token}}
    return result


# ---- phase scores ------------------------------------------------------------------------------------------
def _purity(clusters: np.ndarray, sentences: np.ndarray) -> float:
    """Share of tokens whose sentence is the majority sentence of their cluster."""
    _, cluster_codes = np.unique(clusters, return_inverse=True)
    _, sentence_codes = np.unique(sentences, return_inverse=True)
    counts = np.zeros((cluster_codes.max() + 1, sentence_codes.max() + 1), dtype=np.int64)
    np.add.at(counts, (cluster_codes, sentence_codes), 1)
    return float(counts.max(axis=1).sum() / len(clusters))


def _sentence_purity(points: np.ndarray, sentences: np.ndarray, seed: int) -> tuple[float, float]:
    from sklearn.cluster import KMeans

    k = len(np.unique(sentences))
    if k < 2:  # one sentence: every clustering is pure, nothing to measure
        return float("nan"), float("nan")
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(points)
    rng = np.random.default_rng(seed)
    # The same cluster sizes with the tokens shuffled: what purity the sentence sizes alone give.
    chance = np.mean([_purity(rng.permutation(clusters), sentences) for _ in range(_CHANCE_PERMUTATIONS)])
    return _purity(clusters, sentences), float(chance)


def _same_word_ratio(distances: np.ndarray, frame: pd.DataFrame) -> float:
    """Mean distance between occurrences of the same word piece in different words of the example, over
    the mean distance between pieces of different words (content words only)."""
    words = frame["word"].astype(str).str.lower().to_numpy()
    stop = (frame["is_stopword"].astype(bool).to_numpy() if "is_stopword" in frame
            else np.array([is_stopword(word) for word in words]))
    content = ~stop & np.array([not is_punctuation(word) for word in words])
    if content.sum() < 3:
        return float("nan")
    words = words[content]
    pieces = frame["token"].astype(str).str.lower().to_numpy()[content]
    occurrence = (frame["segment"].astype(str) + ":" + frame["word_index"].astype(str)).to_numpy()[content]
    distances = distances[np.ix_(content, content)]
    upper = np.triu(np.ones(distances.shape, dtype=bool), k=1)
    same_word = words[:, None] == words[None, :]
    same = upper & same_word & (pieces[:, None] == pieces[None, :]) & (occurrence[:, None] != occurrence[None, :])
    different = upper & ~same_word
    if not same.any() or not different.any():
        return float("nan")
    return float(distances[same].mean() / distances[different].mean())


def _example_scores(points: np.ndarray, frame: pd.DataFrame, seed: int) -> dict[str, float]:
    from scipy.spatial.distance import pdist, squareform
    from sklearn.metrics import silhouette_score

    nan = float("nan")
    roles = frame["phase_role"].to_numpy()
    distances = squareform(pdist(points, metric="euclidean"))
    scores = dict.fromkeys(MEASURES, nan)

    n_roles = len(np.unique(roles))
    if 2 <= n_roles <= len(roles) - 1:
        scores["role_silhouette"] = float(silhouette_score(distances, roles, metric="precomputed"))

    answer, rest = roles == "prediction", roles != "prediction"
    if answer.any() and rest.sum() >= 2:
        centre = points[rest].mean(axis=0)
        spread = float(np.sqrt(((points[rest] - centre) ** 2).sum(axis=1).mean()))
        if spread > 0:
            scores["answer_separation"] = float(np.linalg.norm(points[answer].mean(axis=0) - centre) / spread)

    question, fact, other = roles == "question", roles == "supporting_fact", roles == "other"
    if question.any() and fact.any() and other.any():
        to_other = distances[np.ix_(question, other)].mean()
        if to_other > 0:
            scores["question_fact_ratio"] = float(distances[np.ix_(question, fact)].mean() / to_other)

    sentence = frame["sentence_index"].to_numpy(dtype=np.int64)
    in_sentence = (frame["segment"].to_numpy() == "context") & (sentence >= 0)
    if in_sentence.sum() >= 2:
        scores["sentence_purity"], scores["sentence_purity_chance"] = _sentence_purity(
            points[in_sentence], sentence[in_sentence], seed)

    scores["same_word_ratio"] = _same_word_ratio(distances, frame)
    return scores


def _require_phase_columns(vectors: TokenVectors) -> pd.DataFrame:
    tokens = vectors.tokens
    if "phase_role" not in tokens.columns or "sentence_index" not in tokens.columns:
        raise BertInsightInputError(
            "vectors.tokens has no phase_role / sentence_index columns; call "
            "bert_insight.phase_roles(vectors, sentences=..., predictions=...) first and pass its result.")
    return require_columns(tokens, ["example_id", "token_index", "token", "word_index", "word", "segment"],
                           what="vectors.tokens", made_by=VECTORS_MADE_BY).reset_index(drop=True)


def phase_scores(
    vectors: TokenVectors,
    *,
    layers: str | int | Iterable[int] = "all",
    drop_first_token: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Numbers for the paper's phases, one row per (example, layer), on the vectors of
    :func:`phase_roles` (euclidean distances in the full hidden space; special tokens left out of every
    measure; ``drop_first_token`` leaves each example's first token out too).

    Columns: example_id, layer, n_tokens (tokens measured), and

    - ``role_silhouette``: silhouette of the phase_role labels (question / supporting_fact / other /
      prediction); high = the roles form separate groups. NaN with fewer than 2 roles.
    - ``answer_separation`` (phase 4): distance from the centroid of the prediction tokens to the
      centroid of the other tokens, over the root-mean-square distance of those others to their
      centroid; high = the answer sits apart. NaN without prediction tokens.
    - ``question_fact_ratio`` (phase 3): mean distance from question tokens to supporting_fact tokens
      over mean distance from question tokens to "other" context tokens; below 1 = the question is
      matched onto its supporting fact. NaN when a group is empty (supporting-fact tokens inside the
      prediction count as prediction, by the paper's colour precedence).
    - ``sentence_purity``: k-means (k = number of context sentences present, seeded) on the context
      tokens; the share of tokens whose cluster's majority sentence is their own (Figure 9: tokens
      grouped by sentence). ``sentence_purity_chance``: the same with the cluster labels randomly
      permuted (mean of 20 seeded permutations: same cluster sizes), the baseline to read it against.
      NaN with fewer than 2 sentences.
    - ``same_word_ratio`` (phase 1): mean distance between pieces of the same content word at different
      places of the example (the question's word and its copy in the passage too) over the mean distance
      between pieces of different content words; well below 1 = vectors still encode the word type,
      an embedding-like space (Ethayarajh 2019's self-similarity, against its anisotropy baseline). NaN
      when no content word repeats.
    """
    vectors = _check_vectors(vectors)
    tokens = _require_phase_columns(vectors)
    unknown = sorted(set(tokens["phase_role"].astype(str)) - set(PHASE_ROLES))
    if unknown:
        raise BertInsightInputError(f"vectors.tokens.phase_role holds {unknown}; the roles are {PHASE_ROLES}. "
                                    "Make the column with bert_insight.phase_roles.")
    measured = tokens["phase_role"].isin(_MEASURED_ROLES).to_numpy() & (tokens["segment"] != "special").to_numpy()
    groups = _fit_groups(tokens, "per_layer_example", drop_first_token, keep=measured)
    chosen = _chosen_layers(vectors, layers)
    rows = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*distinct clusters.*")
        for group in groups:
            frame = tokens.iloc[group]
            for layer in chosen:
                scores = _example_scores(vectors.vectors[layer][group].astype(np.float64), frame, seed)
                rows.append({"example_id": frame["example_id"].iloc[0], "layer": layer, "n_tokens": int(group.size),
                             **scores})
    result = pd.DataFrame(rows, columns=["example_id", "layer", "n_tokens", *MEASURES])
    result.attrs = {**vectors.attrs, "phase_scores": {"drop_first_token": drop_first_token, "seed": seed,
                                                       "distance": "euclidean"}}
    return result


# ---- curves over layers ------------------------------------------------------------------------------------
def _score_measures(scores: pd.DataFrame, measures) -> list[str]:
    if measures is None:
        found = [name for name in MEASURES if name in scores.columns]
        found += [name for name in scores.columns if name not in MEASURES and name not in
                  ("example_id", "layer", "n_tokens") and pd.api.types.is_numeric_dtype(scores[name])
                  and not pd.api.types.is_bool_dtype(scores[name])]
        if not found:
            raise BertInsightInputError("scores has no measure column; pass the frame of bert_insight.phase_scores.")
        return found
    chosen = [measures] if isinstance(measures, str) else list(measures)
    absent = [name for name in chosen if name not in scores.columns]
    if absent or not chosen:
        raise BertInsightInputError(f"measures={measures!r}: scores has no column {absent}; pick among "
                                    f"{[c for c in scores.columns if c not in ('example_id', 'layer')]}.")
    return chosen


def phase_curves(
    scores: pd.DataFrame,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Each measure of :func:`phase_scores` averaged over examples, per layer, with a bootstrap interval.

    NaN scores (a measure undefined on an example) are left out of that (measure, layer). The interval
    is the percentile bootstrap over examples (:func:`bert_insight.resampling.resample_indices`); NaN
    when fewer than 2 examples have the measure.

    Columns: measure, layer, mean, ci_low, ci_high, n (examples), direction ("higher": more of the phase
    is a higher value; "lower": for question_fact_ratio and same_word_ratio, below 1 is the phase;
    "baseline": sentence_purity_chance), peak (True on the layer where the mean is highest, or lowest for
    direction "lower"; never on a baseline).
    """
    require_columns(scores, ["example_id", "layer"], what="scores", made_by="bert_insight.phase_scores")
    if not isinstance(confidence, (float, int)) or isinstance(confidence, bool) or not 0 < confidence < 1:
        raise BertInsightInputError(f"confidence={confidence!r}; pass a number between 0 and 1, e.g. 0.95.")
    measures = _score_measures(scores, None)
    tail = (1.0 - confidence) / 2.0
    rows = []
    for measure in measures:
        for layer, group in scores.groupby("layer", sort=True):
            values = group[measure].to_numpy(dtype=float)
            values = values[~np.isnan(values)]
            low = high = float("nan")
            if values.size >= 2:
                means = values[resample_indices(values.size, n_resamples=n_resamples, seed=seed)].mean(axis=1)
                low, high = (float(v) for v in np.quantile(means, [tail, 1.0 - tail]))
            rows.append({"measure": measure, "layer": int(layer), "mean": float(values.mean()) if values.size else np.nan,
                         "ci_low": low, "ci_high": high, "n": int(values.size),
                         "direction": MEASURES.get(measure, "higher")})
    result = pd.DataFrame(rows, columns=["measure", "layer", "mean", "ci_low", "ci_high", "n", "direction"])
    result["peak"] = False
    for measure, group in result.groupby("measure", sort=False):
        direction = group["direction"].iloc[0]
        if direction == "baseline" or group["mean"].isna().all():
            continue
        best = group["mean"].idxmin() if direction == "lower" else group["mean"].idxmax()
        result.loc[best, "peak"] = True
    result.attrs = {**scores.attrs, "phase_curves": {"confidence": confidence, "n_resamples": n_resamples,
                                                      "seed": seed}}
    return result


# ---- failure states (5.3) -----------------------------------------------------------------------------------
def _correct_labels(correct) -> pd.Series:
    if isinstance(correct, pd.DataFrame):
        require_columns(correct, ["example_id", "correct"], what="correct",
                        made_by="you (a frame with example_id and a boolean correct column)")
        correct = pd.Series(correct["correct"].to_numpy(), index=correct["example_id"].to_numpy())
    elif not isinstance(correct, pd.Series):
        raise BertInsightInputError(
            f"correct must be a boolean Series indexed by example_id, or a frame with example_id and correct (got "
            f"{type(correct).__name__}); e.g. predictions.set_index('example_id')['exact_match'] == 1.")
    index = correct.index.astype(str)
    if index.duplicated().any():
        raise BertInsightInputError("correct holds several values for one example_id; pass one per example.")
    return pd.Series(_as_bool(correct, what="correct"), index=index)


def _wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    from scipy.stats import norm

    z = float(norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    share = successes / n
    denominator = 1.0 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def failure_separation(
    scores: pd.DataFrame,
    *,
    correct: pd.Series | pd.DataFrame,
    measures: str | Iterable[str] | None = None,
    n_splits: int = 5,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Can a layer's phase scores tell right from wrong predictions? (van Aken 5.3: "prediction errors
    can be recognized in the vector representations of even early layers").

    For each layer: a logistic regression (mean imputation of NaN scores, standardised features, all
    inside the cross-validation) on that layer's per-example ``measures`` (default: every measure of
    :func:`phase_scores` in the frame except the chance baseline) predicting ``correct`` (a boolean
    Series indexed by example_id, or a frame with example_id and correct; e.g.
    ``predictions.set_index("example_id")["exact_match"] == 1``). Stratified ``n_splits``-fold
    cross-validation (shuffled, seeded); every example is scored once, by the model not trained on it.

    Columns: layer, n (examples), n_correct, accuracy (cross-validated), ci_low, ci_high (Wilson interval
    of that accuracy over the n examples), majority_baseline (accuracy of always guessing the larger
    class: read accuracy against it), roc_auc (of the cross-validated probabilities).
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    require_columns(scores, ["example_id", "layer"], what="scores", made_by="bert_insight.phase_scores")
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise BertInsightInputError(f"n_splits={n_splits!r}; pass a whole number >= 2 (5 is usual).")
    if not isinstance(confidence, (float, int)) or isinstance(confidence, bool) or not 0 < confidence < 1:
        raise BertInsightInputError(f"confidence={confidence!r}; pass a number between 0 and 1, e.g. 0.95.")
    chosen = _score_measures(scores, measures)
    if measures is None:
        chosen = [name for name in chosen if MEASURES.get(name) != "baseline"]
    labels = _correct_labels(correct)
    ids = scores["example_id"].astype(str)
    absent = sorted(set(ids) - set(labels.index))
    if absent:
        raise BertInsightInputError(f"correct has no value for {len(absent)} example(s) of scores, e.g. {absent[:3]}; "
                                    "pass one per example.")
    rows = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(Skipping features|empty features).*")
        for layer, group in scores.assign(example_id=ids).groupby("layer", sort=True):
            if group["example_id"].duplicated().any():
                raise BertInsightInputError(f"scores hold several rows for one example at layer {layer}; pass the "
                                            "frame of bert_insight.phase_scores (one row per example and layer).")
            y = labels.reindex(group["example_id"]).to_numpy()
            n, n_correct = len(y), int(y.sum())
            smaller = min(n_correct, n - n_correct)
            if smaller < n_splits:
                raise BertInsightInputError(
                    f"at layer {layer}, {smaller} example(s) are {'correct' if n_correct <= n - n_correct else 'wrong'}: "
                    f"fewer than n_splits={n_splits}, so a stratified fold would miss that class; lower n_splits or "
                    "add examples of both kinds.")
            features = group[chosen].to_numpy(dtype=float)
            features = features[:, ~np.isnan(features).all(axis=0)]  # a measure undefined at this layer
            row = {"layer": int(layer), "n": n, "n_correct": n_correct, "majority_baseline": max(smaller, n - smaller) / n}
            if features.shape[1] == 0:
                rows.append({**row, "accuracy": np.nan, "ci_low": np.nan, "ci_high": np.nan, "roc_auc": np.nan})
                continue
            model = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), LogisticRegression(max_iter=1000))
            folds = StratifiedKFold(n_splits=int(n_splits), shuffle=True, random_state=seed)
            probability = cross_val_predict(model, features, y.astype(int), cv=folds, method="predict_proba")[:, 1]
            hits = int(((probability > 0.5) == y).sum())
            low, high = _wilson(hits, n, confidence)
            rows.append({**row, "accuracy": hits / n, "ci_low": low, "ci_high": high,
                         "roc_auc": float(roc_auc_score(y, probability))})
    columns = ["layer", "n", "n_correct", "accuracy", "ci_low", "ci_high", "majority_baseline", "roc_auc"]
    result = pd.DataFrame(rows)[columns]
    result.attrs = {**scores.attrs, "failure_separation": {"measures": chosen, "n_splits": int(n_splits),
                                                            "seed": seed, "confidence": confidence}}
    return result


__all__ = [
    "MEASURES",
    "PHASE_ROLES",
    "failure_separation",
    "phase_curves",
    "phase_roles",
    "phase_scores",
    "token_clusters",
    "token_projection",
]
