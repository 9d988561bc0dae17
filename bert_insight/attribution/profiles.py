"""Clusters of examples by where their attribution lies, layer by layer (the DeepLIFT study's clustering
"by question", made measurable).

Each example becomes a profile: for every layer, the share of its absolute attribution score on
question tokens, answer tokens, supporting passage tokens, other passage tokens and special tokens
(summed over the targets present). k-means groups the profiles; per cluster the mean profile, the mix
of question types and of answerable vs unanswerable questions, and a chi-square test of whether
cluster and question type (or answerability) are independent.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd

from ..errors import BertInsightInputError
from ..frames import ATTRIBUTION_COLUMNS, require_columns
from ..text import question_type

#: Token groups of a profile. "supporting": passage tokens within 5 words of the answer or repeating a
#: question word (the tokens frame's roles supporting and question_word); "other": the rest of the passage.
PROFILE_GROUPS = ("question", "answer", "supporting", "other", "special")
_GROUP_OF_ROLE = {"answer": "answer", "supporting": "supporting", "question_word": "supporting", "other": "other",
                  "question": "question", "special": "special"}
MAX_AUTO_K = 8


class ProfileClusters(NamedTuple):
    """What :func:`cluster_profiles` returns."""

    clusters: pd.DataFrame
    profiles: pd.DataFrame
    mix: pd.DataFrame
    independence: pd.DataFrame
    silhouette: pd.DataFrame


def _magnitude_shares(attributions: pd.DataFrame, labels: pd.DataFrame, column: str, order: tuple[str, ...],
                      by: list[str]) -> pd.DataFrame:
    """Per ``by`` (e.g. example and layer) the share of absolute score on each value of ``labels[column]``
    (labels: example_id, token_index, ``column``); long frame: ``by``, ``column``, share (sums to 1)."""
    joined = attributions.astype({"example_id": str}).merge(labels.astype({"example_id": str}),
                                                            on=["example_id", "token_index"], how="left")
    if joined[column].isna().any():
        missing = joined.loc[joined[column].isna(), "example_id"].iloc[0]
        raise BertInsightInputError(
            f"tokens has no row for some attributed tokens (first example: {missing!r}); make both frames from "
            "the same examples and predictions (tokens(handle, examples, predictions=predictions)).")
    joined["magnitude"] = joined["score"].abs()
    sums = joined.groupby(by + [column], sort=False)["magnitude"].sum()
    table = sums.unstack(column, fill_value=0.0).reindex(columns=list(order), fill_value=0.0)
    shares = table.div(table.sum(axis=1).replace(0.0, np.nan), axis=0).fillna(0.0)
    return shares.stack().rename("share").reset_index()


def profile_shares(attributions: pd.DataFrame, *, tokens: pd.DataFrame) -> pd.DataFrame:
    """Per example, layer and group the share of absolute score (targets summed). Columns: example_id,
    layer, group, share (sums to 1 over the groups of an example and layer)."""
    require_columns(attributions, ATTRIBUTION_COLUMNS, what="attributions",
                    made_by="bert_insight.layer_deeplift or bert_insight.layer_ig")
    require_columns(tokens, ("example_id", "token_index", "role"), what="tokens", made_by="bert_insight.tokens")
    methods = attributions["method"].unique().tolist()
    if len(methods) > 1:
        raise BertInsightInputError(f"attributions mix the methods {methods}; cluster one method at a time.")
    groups = tokens[["example_id", "token_index"]].assign(group=tokens["role"].map(_GROUP_OF_ROLE).fillna("other"))
    groups.loc[tokens["role"].isna().to_numpy(), "group"] = np.nan  # no role: reported as a missing token
    return _magnitude_shares(attributions, groups, "group", PROFILE_GROUPS, ["example_id", "layer"])


#: What :func:`layer_focus` measures: the DeepLIFT study's reading of its heatmaps, one kind per token.
FOCUS_KINDS = ("cls", "sep", "punctuation", "question", "answer", "passage")


def token_kinds(tokens: pd.DataFrame) -> pd.Series:
    """Each token's kind of :data:`FOCUS_KINDS` (aligned with ``tokens``): cls (the window's first special
    token), sep (its other special tokens), punctuation (a piece of punctuation only), question, answer
    (role answer), passage (the rest)."""
    from ..text import is_punctuation

    require_columns(tokens, ("example_id", "token_index", "token", "segment", "role"), what="tokens",
                    made_by="bert_insight.tokens")
    first = tokens.groupby(tokens["example_id"].astype(str))["token_index"].transform("min")
    special = tokens["segment"] == "special"
    kinds = np.select(
        [special & (tokens["token_index"] == first), special, tokens["token"].astype(str).map(is_punctuation),
         tokens["segment"] == "question", tokens["role"] == "answer"],
        ["cls", "sep", "punctuation", "question", "answer"], default="passage")
    return pd.Series(kinds, index=tokens.index, name="kind")


def layer_focus(attributions: pd.DataFrame, *, tokens: pd.DataFrame) -> pd.DataFrame:
    """Per layer and target, the mean over examples of the share of absolute score on each token kind
    (:func:`token_kinds`): cls, sep, punctuation, question, answer, passage. Columns: layer, target, kind,
    share, n_examples. The measured form of "early layers look at [SEP], then at punctuation, then at
    question keywords; the output at the answer"."""
    require_columns(attributions, ATTRIBUTION_COLUMNS, what="attributions",
                    made_by="bert_insight.layer_deeplift or bert_insight.layer_ig")
    kinds = tokens[["example_id", "token_index"]].assign(kind=token_kinds(tokens))
    long = _magnitude_shares(attributions, kinds, "kind", FOCUS_KINDS, ["example_id", "layer", "target"])
    result = long.groupby(["layer", "target", "kind"], sort=False)["share"].mean().rename("share").reset_index()
    result["n_examples"] = long["example_id"].nunique()
    result["kind"] = pd.Categorical(result["kind"], categories=list(FOCUS_KINDS), ordered=True)
    return result.sort_values(["target", "layer", "kind"]).reset_index(drop=True)


def _check_k(k, n_examples: int) -> None:
    if k == "auto":
        if n_examples < 3:
            raise BertInsightInputError(f"k='auto' needs at least 3 examples to compare silhouettes; got {n_examples}.")
        return
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k < n_examples:
        raise BertInsightInputError(f"k={k!r}; pass 'auto' (chosen by silhouette) or a whole number of clusters "
                                    f"from 2 to {n_examples - 1} (one fewer than the {n_examples} examples).")


def cluster_profiles(
    attributions: pd.DataFrame,
    *,
    tokens: pd.DataFrame,
    examples: pd.DataFrame,
    k: int | str = "auto",
    features: Iterable[str] = PROFILE_GROUPS,
    seed: int = 0,
    predictions: pd.DataFrame | None = None,
) -> ProfileClusters:
    """Cluster examples by their per-layer attribution profile (k-means; ``k="auto"``: the best silhouette
    for k = 2..8).

    ``attributions``: from :func:`bert_insight.layer_deeplift` (or ``layer_ig``); ``tokens``: from
    :func:`bert_insight.tokens` on the same examples and predictions; ``examples``: the examples frame
    (question types from the question's wh-word; answerable from ``is_impossible`` where present, else
    from the gold answers). ``features``: which groups' shares form the profile (any of
    :data:`PROFILE_GROUPS`). ``predictions`` (optional, from :func:`bert_insight.predict`) add the variable
    "prediction": "span" or "no_answer" (an empty prediction, whose targets are the [CLS] logits).

    Returns ProfileClusters(clusters, profiles, mix, independence, silhouette):
      clusters: example_id, cluster (0-based, ordered by size, largest first).
      profiles: cluster, layer, group, share (mean share of absolute score over the cluster's examples),
        n_examples.
      mix: cluster, variable ("question_type", "answerable", and "prediction" when predictions are given),
        value, count, share (within the cluster).
      independence: variable, chi2, dof, p_value, cramers_v, n_examples (chi-square test of independence
        of cluster and variable; NaN where the variable takes one value).
      silhouette: k, silhouette (every k tried; one row when k was given).
    """
    from scipy.stats import chi2_contingency
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    chosen = list(features)
    unknown = [name for name in chosen if name not in PROFILE_GROUPS]
    if not chosen or unknown:
        raise BertInsightInputError(f"features={features!r}; choose groups from {PROFILE_GROUPS}.")
    require_columns(examples, ("example_id", "question"), what="examples", made_by="bert_insight.load_squad")
    shares = profile_shares(attributions, tokens=tokens)
    shares = shares[shares["group"].isin(chosen)]
    table = shares.pivot_table(index="example_id", columns=["layer", "group"], values="share", fill_value=0.0)
    n_examples = len(table)
    _check_k(k, n_examples)
    vectors = table.to_numpy()

    def fit(n_clusters: int) -> np.ndarray:
        return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(vectors)

    if k == "auto":
        tried = []
        for n_clusters in range(2, min(MAX_AUTO_K, n_examples - 1) + 1):
            labels = fit(n_clusters)
            score = silhouette_score(vectors, labels) if len(set(labels)) > 1 else float("nan")
            tried.append((n_clusters, float(score), labels))
        best = max(tried, key=lambda item: (np.nan_to_num(item[1], nan=-2.0), -item[0]))
        labels = best[2]
        silhouette = pd.DataFrame([(n, s) for n, s, _ in tried], columns=["k", "silhouette"])
    else:
        labels = fit(int(k))
        score = silhouette_score(vectors, labels) if len(set(labels)) > 1 else float("nan")
        silhouette = pd.DataFrame([(int(k), float(score))], columns=["k", "silhouette"])
    # Clusters renumbered by size (largest first) so that a rerun with another seed reads alike.
    order = {old: new for new, old in enumerate(pd.Series(labels).value_counts(sort=True).index)}
    clusters = pd.DataFrame({"example_id": table.index.astype(str), "cluster": [order[label] for label in labels]})

    member = shares.merge(clusters, on="example_id")
    profiles = (member.groupby(["cluster", "layer", "group"], sort=True)["share"].mean().rename("share")
                .reset_index())
    sizes = clusters["cluster"].value_counts()
    profiles["n_examples"] = profiles["cluster"].map(sizes).astype(int)

    described = examples.astype({"example_id": str}).set_index("example_id").reindex(clusters["example_id"])
    if described["question"].isna().any():
        raise BertInsightInputError("examples lacks some attributed example ids; pass the examples the "
                                    "attributions were made from.")
    if "is_impossible" in described.columns:
        answerable = ~described["is_impossible"].fillna(False).astype(bool)
    elif "answers" in described.columns:
        answerable = described["answers"].map(lambda answers: bool(len(answers)) if answers is not None else False)
    else:
        answerable = pd.Series(True, index=described.index)
    variables = {"question_type": described["question"].map(question_type).to_numpy(),
                 "answerable": answerable.to_numpy()}
    if predictions is not None:
        require_columns(predictions, ("example_id", "pred_text"), what="predictions", made_by="bert_insight.predict")
        texts = predictions.astype({"example_id": str}).set_index("example_id")["pred_text"]
        predicted = texts.reindex(clusters["example_id"])
        if predicted.isna().any():
            raise BertInsightInputError("predictions lack some attributed example ids; pass the predictions the "
                                        "attributions were made from.")
        variables["prediction"] = np.where(predicted.astype(str).eq(""), "no_answer", "span")
    mix_parts, tests = [], []
    for name, values in variables.items():
        crossed = pd.crosstab(clusters["cluster"].to_numpy(), values)
        counts = crossed.stack().rename("count").reset_index()
        counts.columns = ["cluster", "value", "count"]
        counts["variable"] = name
        counts["share"] = counts["count"] / counts["cluster"].map(sizes)
        mix_parts.append(counts[["cluster", "variable", "value", "count", "share"]])
        if crossed.shape[0] > 1 and crossed.shape[1] > 1:
            chi2, p_value, dof, _ = chi2_contingency(crossed.to_numpy())
            cramers_v = float(np.sqrt(chi2 / (n_examples * (min(crossed.shape) - 1))))
            tests.append((name, float(chi2), int(dof), float(p_value), cramers_v, n_examples))
        else:
            tests.append((name, float("nan"), 0, float("nan"), float("nan"), n_examples))
    mix = pd.concat(mix_parts, ignore_index=True)
    mix["value"] = mix["value"].astype(str)
    independence = pd.DataFrame(tests, columns=["variable", "chi2", "dof", "p_value", "cramers_v", "n_examples"])
    attrs = {"function": "bert_insight.cluster_profiles", "k": int(clusters["cluster"].nunique()),
             "features": chosen, "seed": seed, "method": attributions["method"].iloc[0]}
    for frame in (clusters, profiles, mix, independence, silhouette):
        frame.attrs = dict(attrs)
    return ProfileClusters(clusters, profiles, mix, independence, silhouette)
