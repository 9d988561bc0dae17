"""Sentence classifiers: handles, classify / evaluate_classifier, finetune_classifier, loading, defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED_DATA, tiny_classifier, tiny_qa_model

from bert_insight import (
    BertInsightInputError,
    ClassifierHandle,
    classify,
    evaluate_classifier,
    finetune_classifier,
    from_model,
    load_classifier,
    load_glue,
    predict,
    save_checkpoint,
)
from bert_insight.classification import score_predictions
from bert_insight.data.glue import split_examples
from bert_insight.models.handle import weights_fingerprint

FAMILIES = ("bert", "roberta", "electra", "albert", "distilbert")


def pair_examples(n: int, task: str = "mrpc", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = "the cat sat on a mat while dogs ran through green fields of tall grass".split()
    rows = []
    for i in range(n):
        a = " ".join(rng.choice(words, size=rng.integers(3, 12)))
        b = " ".join(rng.choice(words, size=rng.integers(3, 12)))
        label = float(rng.uniform(0, 5)) if task == "stsb" else int(rng.integers(0, 2))
        rows.append({"example_id": f"ex{i}", "text_a": a, "text_b": b, "label": label})
    return pd.DataFrame(rows)


def reference_logits(handle: ClassifierHandle, examples: pd.DataFrame, max_length: int = 128) -> torch.Tensor:
    """One example at a time through the tokenizer and the Hugging Face forward: no batching, no padding."""
    rows = []
    with torch.no_grad():
        for example in examples.itertuples():
            pair = (example.text_a, example.text_b) if isinstance(example.text_b, str) else (example.text_a,)
            encoded = handle.tokenizer(*pair, truncation=True, max_length=max_length, return_tensors="pt")
            if not handle.adapter.uses_token_type_ids:
                encoded.pop("token_type_ids", None)
            rows.append(handle.model(**encoded).logits[0].float())
    return torch.stack(rows)


@pytest.mark.parametrize("family", FAMILIES)
def test_classify_matches_unbatched_forward_for_every_family(family, tokenizer):
    handle = from_model(tiny_classifier(family, num_labels=2), tokenizer, name=f"tiny-{family}", device="cpu",
                        task="mrpc")
    assert isinstance(handle, ClassifierHandle) and handle.task == "mrpc"
    examples = pair_examples(13, seed=1)
    frame = classify(handle, examples, batch_size=4, progress=False)
    probabilities = frame[["prob_not_equivalent", "prob_equivalent"]].to_numpy()
    expected = torch.softmax(reference_logits(handle, examples), dim=-1).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert (frame["prediction"].to_numpy() == expected.argmax(axis=1)).all()
    assert (frame["correct"].to_numpy() == (frame["prediction"] == examples["label"]).to_numpy()).all()


def test_regression_head_predicts_the_raw_score(tokenizer):
    handle = from_model(tiny_classifier("bert", num_labels=1), tokenizer, device="cpu", task="stsb")
    assert handle.is_regression and handle.label_names == ()
    examples = pair_examples(9, task="stsb")
    frame = classify(handle, examples, batch_size=3, progress=False)
    np.testing.assert_allclose(frame["prediction"], reference_logits(handle, examples)[:, 0].numpy(), atol=1e-5)
    assert frame["correct"].isna().all() and not any(c.startswith("prob_") for c in frame.columns)


def test_single_sentence_task_uses_one_segment(tokenizer):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="sst2")
    examples = pd.DataFrame({"example_id": ["a", "b"], "text_a": ["a fine film", "dull and long"],
                             "text_b": [None, None], "label": [1, 0]})
    frame = classify(handle, examples, progress=False)
    expected = torch.softmax(reference_logits(handle, examples), dim=-1)[:, 1].numpy()
    np.testing.assert_allclose(frame["prob_positive"], expected, atol=1e-5)


def textbook_scores(gold: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    true_positive = float(((gold == 1) & (predicted == 1)).sum())
    precision = true_positive / max((predicted == 1).sum(), 1)
    recall = true_positive / max((gold == 1).sum(), 1)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"accuracy": 100 * float((gold == predicted).mean()), "f1": 100 * f1}


def ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort()
    result = np.empty(len(values))
    result[order] = np.arange(len(values))
    return result


def test_metrics_match_textbook_definitions():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    predicted = np.where(rng.uniform(size=200) < 0.7, gold, 1 - gold)
    frame = pd.DataFrame({"label": gold.astype(float), "prediction": predicted})
    ours = score_predictions(frame, ("accuracy", "f1"))
    for metric, value in textbook_scores(gold, predicted).items():
        assert ours[metric] == pytest.approx(value, abs=1e-9)
    scores = rng.uniform(0, 5, 300)  # continuous: no ties, so ranks are unambiguous
    guesses = scores + rng.normal(0, 1.5, 300)
    frame = pd.DataFrame({"label": scores, "prediction": guesses})
    ours = score_predictions(frame, ("pearson", "spearman"))
    assert ours["pearson"] == pytest.approx(100 * np.corrcoef(scores, guesses)[0, 1], abs=1e-9)
    assert ours["spearman"] == pytest.approx(100 * np.corrcoef(ranks(scores), ranks(guesses))[0, 1], abs=1e-9)


def test_evaluate_classifier_scores_the_predictions_it_returns(tokenizer):
    handle = from_model(tiny_classifier("bert", seed=3), tokenizer, device="cpu", task="mrpc")
    examples = pair_examples(40, seed=4)
    scores, predictions = evaluate_classifier(handle, examples, progress=False)
    expected = textbook_scores(examples["label"].to_numpy(), predictions["prediction"].to_numpy())
    by_metric = scores.set_index("metric")["value"]
    assert list(by_metric.index) == ["accuracy", "f1"] and (scores["n_examples"] == 40).all()
    assert by_metric["accuracy"] == pytest.approx(expected["accuracy"])
    assert by_metric["f1"] == pytest.approx(expected["f1"])


def test_finetune_leaves_the_input_handle_alone_and_is_seeded(tokenizer):
    base = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    before = weights_fingerprint(base.model)
    settings = dict(max_steps=4, batch_size=8, lr=1e-3, bf16=False, progress=False)
    first = finetune_classifier(base, pair_examples(32), **settings)
    second = finetune_classifier(base, pair_examples(32), **settings)
    assert weights_fingerprint(base.model) == before
    assert weights_fingerprint(first.model) == weights_fingerprint(second.model) != before
    assert first.card["steps"] == 4 and first.card["task"] == "mrpc" and first.card["init"] == "pretrained"
    assert len(first.card["training_log"]) == 4


def test_random_init_redraws_every_weight(tokenizer):
    # seed 7 for the "pre-trained" weights: a model drawn with the training seed (0) would be redrawn identically
    base = from_model(tiny_classifier("bert", seed=7), tokenizer, device="cpu", task="mrpc")
    tuned = finetune_classifier(base, pair_examples(16), max_steps=1, lr=1e-9, batch_size=8, bf16=False,
                                init="random", progress=False)
    own = dict(base.model.named_parameters())
    for name, parameter in tuned.model.named_parameters():
        assert not torch.allclose(parameter, own[name]), name  # lr 1e-9: any change is the re-init
    assert tuned.card["init"] == "random"


def test_regression_finetune_lowers_the_squared_error(tokenizer):
    # Scores that depend on the input (length of text_a) are learnable; MSE on the training data must fall.
    examples = pair_examples(64, task="stsb", seed=2)
    examples["label"] = examples["text_a"].str.split().str.len().clip(0, 10) / 2.0
    base = from_model(tiny_classifier("bert", num_labels=1, seed=1), tokenizer, device="cpu", task="stsb")
    before = classify(base, examples, progress=False)
    tuned = finetune_classifier(base, examples, epochs=15.0, lr=3e-3, batch_size=16, bf16=False, progress=False)
    after = classify(tuned, examples, progress=False)
    mse = lambda frame: float(((frame["prediction"] - frame["label"]) ** 2).mean())  # noqa: E731
    assert mse(after) < 0.5 * mse(before)


def test_finetuned_minilm_beats_the_majority_class_on_real_qnli():
    """A learning test on real data (the bundled QNLI dev set): MiniLM fine-tuned on 640 pairs for 60
    steps must beat the majority class of 400 unseen pairs by a clear margin."""
    from bert_insight.models.default_classifiers import base_classifier

    train, held_out = split_examples(load_glue("qnli", "dev"), test_fraction=0.2, seed=1)
    train = train.head(640)
    held_out = held_out.head(400)
    torch.manual_seed(0)
    base = base_classifier("qnli", device="cpu")
    tuned = finetune_classifier(base, train, max_steps=60, batch_size=16, lr=1e-4, max_length=96, bf16=False,
                                progress=False)
    scores, _ = evaluate_classifier(tuned, held_out, max_length=96, progress=False)
    majority = 100 * held_out["label"].value_counts(normalize=True).max()
    assert scores.set_index("metric").loc["accuracy", "value"] > majority + 5


def test_saved_classifier_loads_back_with_its_task(tokenizer, tmp_path):
    handle = from_model(tiny_classifier("bert", seed=5), tokenizer, device="cpu", task="rte",
                        card={"task": "rte", "note": "tiny"})
    save_checkpoint(handle, tmp_path / "rte")
    loaded = load_classifier(tmp_path / "rte", device="cpu", attention="eager")
    assert isinstance(loaded, ClassifierHandle) and loaded.task == "rte"
    assert loaded.label_names == ("entailment", "not_entailment") and loaded.card["note"] == "tiny"
    examples = pair_examples(6)
    np.testing.assert_allclose(classify(loaded, examples, progress=False)["prob_entailment"],
                               classify(handle, examples, progress=False)["prob_entailment"], atol=1e-6)


def test_loading_refuses_untrained_or_mis_sized_heads(tokenizer, tmp_path):
    save_checkpoint(from_model(tiny_qa_model("bert"), tokenizer, device="cpu"), tmp_path / "qa")
    with pytest.raises(BertInsightInputError, match="allow_new_classifier_head"):
        load_classifier(tmp_path / "qa", task="mrpc", device="cpu")
    head = load_classifier(tmp_path / "qa", task="mrpc", device="cpu", allow_new_classifier_head=True)
    assert head.num_labels == 2
    save_checkpoint(from_model(tiny_classifier("bert", num_labels=3), tokenizer, device="cpu", task="mnli"),
                    tmp_path / "mnli")
    with pytest.raises(BertInsightInputError, match="3 outputs"):
        load_classifier(tmp_path / "mnli", task="mrpc", device="cpu")
    with pytest.raises(BertInsightInputError, match="needs 2"):
        from_model(tiny_classifier("bert", num_labels=3), tokenizer, device="cpu", task="mrpc")
    with pytest.raises(BertInsightInputError, match="task="):
        load_classifier(None)


def test_wrong_handles_and_bad_examples_get_one_clear_error(tokenizer):
    classifier = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    qa = from_model(tiny_qa_model("bert"), tokenizer, device="cpu")
    with pytest.raises(BertInsightInputError, match="sentence classifier handle"):
        classify(qa, pair_examples(2))
    with pytest.raises(BertInsightInputError, match="question-answering model handle"):
        predict(classifier, pd.DataFrame({"example_id": ["q"], "question": ["who?"], "context": ["Ann did."]}))
    bad = pair_examples(3)
    bad.loc[1, "label"] = 7
    with pytest.raises(BertInsightInputError, match="ex1"):
        classify(classifier, bad)
    unlabelled = pair_examples(3)
    unlabelled["label"] = np.nan
    assert classify(classifier, unlabelled, progress=False)["correct"].isna().all()
    with pytest.raises(BertInsightInputError, match="no label"):
        evaluate_classifier(classifier, unlabelled, progress=False)
    with pytest.raises(BertInsightInputError, match="handle's head is for 'mrpc'"):
        finetune_classifier(classifier, pair_examples(4), task="rte", max_steps=1)
    with pytest.raises(BertInsightInputError, match="init="):
        finetune_classifier(classifier, pair_examples(4), init="xavier", max_steps=1)


def test_qnli_recipe_splits_the_bundled_dev_set_reproducibly():
    from bert_insight.models.default_classifiers import recipe_data

    train, evaluation, description = recipe_data("qnli")
    again, _, _ = recipe_data("qnli")
    assert (len(train), len(evaluation)) == (4370, 1093)
    assert train["example_id"].tolist() == again["example_id"].tolist()
    assert not set(train["example_id"]) & set(evaluation["example_id"])
    assert abs(train["label"].mean() - evaluation["label"].mean()) < 0.01
    assert "seed 0" in description


def test_default_recipe_passes_the_paper_settings(monkeypatch, tmp_path):
    import bert_insight.models.default_classifiers as defaults

    seen = {}

    def fake_finetune(handle, train, **settings):
        seen.update(settings, n=len(train), task=handle.task)
        raise KeyboardInterrupt

    monkeypatch.setattr(defaults, "finetune_classifier", fake_finetune)
    with pytest.raises(KeyboardInterrupt):
        defaults.build_classifier_into(tmp_path, "qnli", precision="fp32", progress=False)
    assert seen["epochs"] == 3.0 and seen["batch_size"] == 32 and seen["bf16"] is False
    assert seen["task"] == "qnli" and seen["n"] == 4370
    with pytest.raises(BertInsightInputError, match="no offline default"):
        defaults.check_default_task("mnli")


@pytest.mark.shared
def test_sst2_recipe_subsamples_with_a_seed():
    from bert_insight.models.default_classifiers import SST2_TRAIN_EXAMPLES, recipe_data

    train, evaluation, description = recipe_data("sst2", SHARED_DATA / "glue")
    assert len(train) == SST2_TRAIN_EXAMPLES and len(evaluation) == 872
    assert train.index.is_monotonic_increasing and f"{SST2_TRAIN_EXAMPLES:,}" in description


def test_cli_refuses_task_and_all_together(capsys):
    from bert_insight.cli import main

    assert main(["model", "build", "--task", "mrpc", "--all"]) != 0
    assert "not both" in capsys.readouterr().err
    assert main(["model", "build", "--task", "mnli"]) != 0
    assert "no offline default" in capsys.readouterr().err


def test_table1_puts_each_model_beside_the_papers_column(monkeypatch):
    """The three models' scores land in their own rows, beside the paper's value for the same column."""
    import types

    import bert_insight.kovaleva2019 as kovaleva

    examples = pair_examples(8)
    monkeypatch.setattr(kovaleva, "recipe_data", lambda task, glue_dir: (examples, examples, "test data"))
    fake = {name: types.SimpleNamespace(score=score, card={"training_seconds": 12.0})
            for name, score in (("untrained", 31.0), ("random", 68.0), ("default", 82.0))}
    monkeypatch.setattr(kovaleva, "base_classifier", lambda task: fake["untrained"])
    monkeypatch.setattr(kovaleva, "finetune_classifier", lambda handle, train, init, **settings: fake[init])
    monkeypatch.setattr(kovaleva, "load_default_classifier", lambda task, glue_dir: fake["default"])

    def fake_evaluate(handle, evaluation, **settings):
        frame = pd.DataFrame({"task": "mrpc", "metric": ["accuracy", "f1"], "value": [handle.score, handle.score + 1],
                              "n_examples": len(evaluation)})
        return frame, None

    monkeypatch.setattr(kovaleva, "evaluate_classifier", fake_evaluate)
    table = kovaleva.kovaleva2019_table1(["mrpc"], precision="fp32", progress=False)
    accuracy = table[table.metric == "accuracy"].set_index("model")
    assert accuracy["value"].tolist() == [31.0, 68.0, 82.0]
    assert accuracy["paper_value"].tolist() == [31.6, 68.3, 82.3]  # Table 1, MRPC accuracy
    assert table[table.metric == "f1"]["paper_value"].tolist() == [0.0, 81.2, 87.9]
    wide = kovaleva.table1_wide(table)
    assert wide.loc[("mrpc", "f1"), "fine-tuned from pre-trained | ours"] == 83.0
    assert wide.loc[("mrpc", "accuracy"), "pre-trained, untrained head | paper"] == 31.6


def test_default_classifier_is_built_once_then_loaded_by_task(tokenizer, monkeypatch, tmp_path, capsys):
    """The store, lock and staging work for the classifiers: the first load builds (here a tiny model
    stands in for the recipe), later loads and `model info --task` read the placed model."""
    import bert_insight.models.default_classifiers as defaults
    from bert_insight.cli import main

    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path))
    builds = []

    def tiny_build(directory, task, *, glue_dir, precision, progress):
        builds.append(task)
        card = {"task": task, "recipe": "tiny", "scores": {"accuracy": 55.5}, "n_eval_examples": 3}
        save_checkpoint(from_model(tiny_classifier("bert", seed=2), tokenizer, device="cpu", task=task, card=card),
                        directory)
        return card

    monkeypatch.setattr(defaults, "build_classifier_into", tiny_build)
    assert main(["model", "info", "--task", "rte"]) == 1
    assert "not built yet" in capsys.readouterr().err
    first = load_classifier(task="RTE", device="cpu")
    second = load_classifier(task="rte", device="cpu")
    assert builds == ["rte"] and first.task == second.task == "rte"
    assert weights_fingerprint(first.model) == weights_fingerprint(second.model)
    assert defaults.default_classifier_dir("rte") == tmp_path / "models" / "minilm-l6-glue-rte-v1"
    assert not list((tmp_path / "models").glob(".minilm-l6-glue-rte-v1.building-*"))  # staging cleaned up
    assert main(["model", "info", "--task", "rte"]) == 0
    assert "55.5" in capsys.readouterr().out
