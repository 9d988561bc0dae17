"""Hidden states against the model's own output_hidden_states; projections against sklearn and
planted structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bert_insight.errors import BertInsightInputError
from bert_insight.representations import TokenVectors, hidden_states, kmeans_tokens, project_tokens

from tests.conftest import tiny_qa_model

EXAMPLES = pd.DataFrame({
    "example_id": ["e1", "e2"],
    "question": ["Who won the game?", "How many fans came?"],
    "context": ["The Denver Broncos won the game against Carolina in 2016.",
                "About 70,000 fans came to the stadium to watch the final."],
    "answers": [[{"text": "Denver Broncos", "answer_start": 4}], [{"text": "70,000", "answer_start": 6}]],
})
WINDOW = dict(max_length=96, doc_stride=32)


@pytest.fixture(scope="module", params=["bert", "distilbert"])
def handle(request, tokenizer):
    from bert_insight.models.handle import from_model

    return from_model(tiny_qa_model(request.param), tokenizer, name=f"tiny-{request.param}", device="cpu")


def test_hidden_states_equal_the_models_output_hidden_states(handle, tokenizer):
    vectors = hidden_states(handle, EXAMPLES, **WINDOW)
    assert vectors.layers == list(range(handle.num_layers + 1))
    for example in EXAMPLES.itertuples():
        encoded = tokenizer(example.question, example.context, return_tensors="pt")
        if handle.adapter.family == "distilbert":
            encoded.pop("token_type_ids")
        with torch.no_grad():
            reference = handle.model(**encoded, output_hidden_states=True).hidden_states
        rows = (vectors.tokens["example_id"] == example.example_id).to_numpy()
        tokens = vectors.tokens[rows]
        assert tokens["token"].tolist() == tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
        assert tokens["token_index"].tolist() == list(range(len(tokens)))
        for layer, expected in enumerate(reference):
            np.testing.assert_allclose(vectors.vectors[layer][rows], expected[0].numpy(), atol=1e-5)


def test_hidden_states_layer_subset_and_bad_layers(tiny_handle):
    full = hidden_states(tiny_handle, EXAMPLES.head(1), **WINDOW)
    some = hidden_states(tiny_handle, EXAMPLES.head(1), layers=[3, 0], **WINDOW)
    assert some.layers == [0, 3]
    np.testing.assert_array_equal(some.vectors[3], full.vectors[3])
    with pytest.raises(BertInsightInputError, match=r"so 0\.\.3 \(hidden states: 0 = embedding output"):
        hidden_states(tiny_handle, EXAMPLES.head(1), layers=[4], **WINDOW)


def test_select_keeps_rows_aligned(tiny_handle):
    vectors = hidden_states(tiny_handle, EXAMPLES, layers=[1], **WINDOW)
    context = vectors.select(example_ids="e2", segments="context")
    mask = ((vectors.tokens["example_id"] == "e2") & (vectors.tokens["segment"] == "context")).to_numpy()
    np.testing.assert_array_equal(context.vectors[1], vectors.vectors[1][mask])
    assert set(context.tokens["segment"]) == {"context"}
    with pytest.raises(BertInsightInputError, match="No token matches"):
        vectors.select(example_ids="nope")


# ---- projections on synthetic vectors ---------------------------------------------------------------------
def synthetic_vectors(n_per_cluster=15, n_clusters=3, dim=16, seed=0) -> tuple[TokenVectors, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(n_clusters, dim))
    truth = np.repeat(np.arange(n_clusters), n_per_cluster)
    layer0 = centres[truth] + rng.normal(size=(len(truth), dim))
    layer1 = rng.normal(size=(len(truth), dim)) * np.linspace(5, 0.1, dim)
    n = len(truth)
    tokens = pd.DataFrame({"example_id": "s", "token_index": range(n), "token": [f"t{i}" for i in range(n)],
                           "word": [f"t{i}" for i in range(n)], "segment": "context", "role": "other"})
    return TokenVectors({0: layer0.astype(np.float32), 1: layer1.astype(np.float32)}, tokens), truth


def test_pca_projection_matches_sklearn():
    from sklearn.decomposition import PCA

    vectors, _ = synthetic_vectors()
    frame = project_tokens(vectors, method="pca")
    for layer in (0, 1):
        expected = PCA(n_components=2).fit_transform(vectors.vectors[layer].astype(np.float64))
        got = frame[frame["layer"] == layer][["x", "y"]].to_numpy()
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert frame["token"].tolist()[:3] == ["t0", "t1", "t2"]


def test_tsne_keeps_planted_clusters_apart_and_is_seeded():
    vectors, truth = synthetic_vectors()
    frame = project_tokens(vectors, layers=[0], method="tsne", seed=3)
    points = frame[["x", "y"]].to_numpy()
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert (truth[distances.argmin(axis=1)] == truth).all()
    again = project_tokens(vectors, layers=[0], method="tsne", seed=3)
    np.testing.assert_allclose(again[["x", "y"]].to_numpy(), points)


def test_ica_recovers_independent_sources():
    rng = np.random.default_rng(0)
    n = 400
    sources = np.c_[np.sign(np.sin(np.linspace(0, 40, n))), rng.uniform(-1, 1, n)]
    mixed = sources @ rng.normal(size=(2, 6))
    tokens = pd.DataFrame({"example_id": "s", "token_index": range(n), "token": "t", "word": "t",
                           "segment": "context", "role": "other"})
    frame = project_tokens(TokenVectors({0: mixed}, tokens), method="ica")
    correlation = np.abs(np.corrcoef(np.c_[frame[["x", "y"]].to_numpy(), sources].T)[:2, 2:])
    assert sorted(correlation.max(axis=0)) > [0.98, 0.98]


def test_kmeans_recovers_planted_clusters():
    from sklearn.metrics import adjusted_rand_score

    vectors, truth = synthetic_vectors()
    frame = kmeans_tokens(vectors, n_clusters=3, layers=[0])
    assert adjusted_rand_score(truth, frame["cluster"]) == 1.0
    with pytest.raises(BertInsightInputError, match="n_clusters"):
        kmeans_tokens(vectors, n_clusters=0)


def test_projection_input_errors():
    vectors, _ = synthetic_vectors()
    with pytest.raises(BertInsightInputError, match="method"):
        project_tokens(vectors, method="umap")
    with pytest.raises(BertInsightInputError, match="layers"):
        project_tokens(vectors, layers=[7], method="pca")
    with pytest.raises(BertInsightInputError, match="perplexity"):
        project_tokens(vectors, method="tsne", perplexity=100)
    with pytest.raises(BertInsightInputError, match="TokenVectors"):
        project_tokens(np.zeros((5, 2)))


def test_hidden_states_tokens_join_the_tokens_frame(tiny_handle):
    from bert_insight.tokens_frame import tokens

    vectors = hidden_states(tiny_handle, EXAMPLES, layers=[0], **WINDOW)
    expected = tokens(tiny_handle, EXAMPLES, **WINDOW)
    pd.testing.assert_frame_equal(vectors.tokens, expected, check_like=False)


@pytest.fixture(scope="module", params=["bert", "distilbert"])
def base_and_qa(request, tokenizer):
    """A headless encoder (what load_base_model gives) and the QA model it is the base of."""
    from bert_insight.models.handle import from_model

    qa = tiny_qa_model(request.param)
    base = getattr(qa, "bert" if request.param == "bert" else "distilbert")
    return (from_model(base, tokenizer, name=f"tiny-{request.param}-base", device="cpu"),
            from_model(qa, tokenizer, name=f"tiny-{request.param}", device="cpu"))


def test_base_encoder_window_is_the_question_context_pair(base_and_qa, tokenizer):
    """Without a QA head the window is [CLS] question [SEP] context [SEP]: the model's own hidden states for
    the tokenizer's pair, and the same tokens frame as the QA handle's (one window each) with gold answers."""
    from bert_insight.models.handle import ModelHandle
    from bert_insight.tokens_frame import tokens

    base, qa = base_and_qa
    assert type(base) is ModelHandle
    vectors = hidden_states(base, EXAMPLES, progress=False)
    for example in EXAMPLES.itertuples():
        encoded = tokenizer(example.question, example.context, return_tensors="pt")
        if base.adapter.family == "distilbert":
            encoded.pop("token_type_ids")
        with torch.no_grad():
            reference = base.model(**encoded, output_hidden_states=True).hidden_states
        rows = (vectors.tokens["example_id"] == example.example_id).to_numpy()
        assert vectors.tokens[rows]["token"].tolist() == tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
        for layer, expected in enumerate(reference):
            np.testing.assert_allclose(vectors.vectors[layer][rows], expected[0].numpy(), atol=1e-5)
    pd.testing.assert_frame_equal(vectors.tokens, tokens(qa, EXAMPLES, answer="gold", progress=False, **WINDOW))
    qa_vectors = hidden_states(qa, EXAMPLES, progress=False, **WINDOW)
    for layer in vectors.layers:
        np.testing.assert_allclose(vectors.vectors[layer], qa_vectors.vectors[layer], atol=1e-6)
    assert vectors.attrs["params"]["window"] == "question_context" and vectors.attrs["truncated"] == []
    assert "params" in qa_vectors.attrs and "window" not in qa_vectors.attrs["params"]


def test_base_encoder_truncates_the_context_and_says_so(base_and_qa, tokenizer):
    base, _ = base_and_qa
    vectors = hidden_states(base, EXAMPLES, layers=[0], max_length=16, progress=False)
    for example in EXAMPLES.itertuples():
        expected = tokenizer(example.question, example.context, truncation="only_second", max_length=16)
        rows = vectors.tokens[vectors.tokens["example_id"] == example.example_id]
        assert rows["token"].tolist() == tokenizer.convert_ids_to_tokens(expected["input_ids"])
        assert rows["token"].iloc[-1] == tokenizer.sep_token
    assert vectors.attrs["truncated"] == ["e1", "e2"]
    assert "cut to max_length=16" in vectors.attrs["note"]
    with pytest.raises(BertInsightInputError, match="no QA head"):
        hidden_states(base, EXAMPLES, predictions=pd.DataFrame(), progress=False)
    with pytest.raises(BertInsightInputError, match="leaving no room for the context within max_length=6"):
        hidden_states(base, EXAMPLES, max_length=6, progress=False)


@pytest.mark.slow
def test_default_model_hidden_states_reproduce_the_predicted_span_score(default_handle):
    """On long SQuAD passages the vectors come from the window holding the prediction: the QA head
    applied to the last layer's vectors gives back predict's span score."""
    from bert_insight import load_squad, predict

    examples = load_squad(split="heldout")
    examples = examples[examples["context"].str.len() > 1200].head(3)
    windows = dict(max_length=128, doc_stride=48)
    predictions = predict(default_handle, examples, progress=False, **windows)
    assert (predictions["n_windows"] > 1).all()
    last = default_handle.num_layers
    vectors = hidden_states(default_handle, examples, layers=[last], predictions=predictions, **windows)
    for prediction in predictions.itertuples():
        rows = (vectors.tokens["example_id"] == prediction.example_id).to_numpy()
        hidden = torch.tensor(vectors.vectors[last][rows][None], device=default_handle.device)
        with torch.no_grad():
            start, end = default_handle.adapter.qa_logits(default_handle.model, hidden)
        score = float(start[0, prediction.start_index] + end[0, prediction.end_index])
        assert score == pytest.approx(prediction.score, abs=1e-3)
