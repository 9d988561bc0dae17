"""QA fine-tuning (bert_insight.models.finetune) and the offline default model's build (models.default)."""

from __future__ import annotations

import json
import random
import threading
import time

import pandas as pd
import pytest
import torch

from bert_insight.errors import BertInsightInputError
from bert_insight.models import default as default_model
from bert_insight.models import store
from bert_insight.models.finetune import finetune_qa, training_log, training_windows
from bert_insight.models.handle import from_model
from bert_insight.models.loading import load_qa_model
from bert_insight.qa import predict
from conftest import tiny_qa_model


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP barriers make them crawl.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


CODE_WORDS = "apple river stone cloud maple tiger violet copper harbor lantern meadow falcon".split()
FILLER = "the weather was mild and people walked along the quiet road near the old market".split()


def code_examples(n: int, seed: int) -> pd.DataFrame:
    """Synthetic QA: the answer is always the word after "code", which moves around the context."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        answer = rng.choice(CODE_WORDS)
        decoy = rng.choice([word for word in CODE_WORDS if word != answer])
        before = " ".join(rng.choices(FILLER, k=rng.randint(2, 12)))
        after = " ".join(rng.choices(FILLER, k=rng.randint(2, 12)))
        context = f"{before} {decoy} then the code {answer} was used. {after}"
        start = context.index(f"code {answer}") + len("code ")
        rows.append({"example_id": f"code-{seed}-{i}", "question": "What was the code?", "context": context,
                     "answers": [{"text": answer, "answer_start": start}], "is_impossible": False,
                     "title": "synthetic"})
    return pd.DataFrame(rows)


WINDOWS = dict(max_length=64, doc_stride=16)


def test_finetune_learns_the_word_after_code(tokenizer):
    train, unseen = code_examples(30, seed=0), code_examples(30, seed=1)
    base = from_model(tiny_qa_model("bert"), tokenizer, name="tiny-bert", device="cpu")
    before = [p.detach().clone() for p in base.model.parameters()]

    tuned = finetune_qa(base, train, epochs=40, lr=3e-3, batch_size=8, bf16=False, progress=False, **WINDOWS)

    log = training_log(tuned)
    assert list(log["step"]) == list(range(1, len(log) + 1))
    assert log["loss"].tail(8).mean() < 0.2 * log["loss"].head(4).mean()
    assert predict(base, train, progress=False, **WINDOWS)["exact_match"].mean() < 0.2
    assert predict(tuned, train, progress=False, **WINDOWS)["exact_match"].mean() >= 0.9
    # It learned the rule, not the 30 answers: new contexts, new positions.
    assert predict(tuned, unseen, progress=False, **WINDOWS)["exact_match"].mean() >= 0.5
    # The handle passed in is copied, not trained in place.
    assert all(torch.equal(a, b) for a, b in zip(before, base.model.parameters()))


def test_training_windows_label_the_answer_characters(tokenizer):
    from bert_insight.data import load_squad

    examples = load_squad(limit=150)
    labelled = training_windows(tokenizer, examples, max_length=96, doc_stride=32)
    by_id = examples.set_index("example_id")
    positives = set()
    assert sum(item.window.n_windows > 1 for item in labelled) > 50  # many multi-window examples
    for item in labelled:
        window = item.window
        answer = by_id.loc[window.example_id, "answers"][0]
        char_start, char_end = answer["answer_start"], answer["answer_start"] + len(answer["text"])
        context = window.context_positions
        inside = window.offsets[context[0]][0] <= char_start and char_end <= window.offsets[context[-1]][1]
        assert item.has_answer == inside
        if not inside:
            assert item.start_position == item.end_position == window.input_ids.index(tokenizer.cls_token_id)
            continue
        positives.add(window.example_id)
        start, end = item.start_position, item.end_position
        assert window.sequence_ids[start] == window.sequence_ids[end] == 1
        # start/end tokens are exactly the tokens holding the answer's first and last characters.
        assert window.offsets[start][0] <= char_start < window.offsets[start][1]
        assert window.offsets[end][0] < char_end <= window.offsets[end][1]
        text = by_id.loc[window.example_id, "context"][window.offsets[start][0]: window.offsets[end][1]]
        assert answer["text"] in text and len(text) - len(answer["text"]) <= 2 * 12  # at most a word piece each side
    assert positives == set(examples["example_id"])  # every answer fits in some window here


def test_unanswerable_examples_point_at_cls(tokenizer):
    examples = code_examples(3, seed=2)
    examples.loc[1, "answers"] = []
    labelled = [item for item in training_windows(tokenizer, examples, **WINDOWS) if item.window.example_id == "code-2-1"]
    assert labelled and all(not item.has_answer and item.start_position == item.end_position == 0 for item in labelled)


def test_bad_answer_offsets_are_refused(tokenizer):
    examples = code_examples(2, seed=3)
    examples.at[0, "answers"] = [{"text": "apple", "answer_start": 10_000}]
    with pytest.raises(BertInsightInputError, match="answer_start"):
        training_windows(tokenizer, examples, **WINDOWS)


def test_time_budget_shrinks_the_schedule_so_lr_still_reaches_zero(tokenizer, monkeypatch):
    import bert_insight.models.training as training

    clock = iter(range(10_000))  # a fake clock: every reading is one second later
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(clock)))
    base = from_model(tiny_qa_model("bert"), tokenizer, name="tiny-bert", device="cpu")
    tuned = finetune_qa(base, code_examples(40, 0), epochs=10, lr=1e-3, batch_size=8, bf16=False,
                        progress=False, max_seconds=20, **WINDOWS)
    log = training_log(tuned)
    assert len(log) < 10 * 5  # 10 epochs of 5 batches were asked for
    assert log["seconds"].iloc[-1] <= 21
    assert log["lr"].iloc[-1] == pytest.approx(0.0, abs=1e-12)
    assert log["lr"].max() == pytest.approx(1e-3, rel=0.2)
    assert tuned.card["stopped_by_time_budget"]


def test_time_budget_plan_grows_when_the_machine_gets_faster(tokenizer, monkeypatch):
    import bert_insight.models.training as training

    readings = [0.0]

    def clock():  # 2 s per step for the first 10 steps, then 0.5 s per step
        readings.append(readings[-1] + (2.0 if len(readings) <= 11 else 0.5))
        return readings[-2]

    monkeypatch.setattr(training.time, "perf_counter", clock)
    base = from_model(tiny_qa_model("bert"), tokenizer, name="tiny-bert", device="cpu")
    tuned = finetune_qa(base, code_examples(40, 0), epochs=10, lr=1e-3, batch_size=8, bf16=False,
                        progress=False, max_seconds=30, **WINDOWS)
    log = training_log(tuned)
    # At 2 s per step only 15 steps fit in 30 s; the speed-up leaves room for more, still inside the budget.
    assert 15 < len(log) < 50 and log["seconds"].iloc[-1] <= 31
    assert log["lr"].iloc[-1] == pytest.approx(0.0, abs=1e-12)


def test_output_dir_round_trips(tokenizer, tmp_path):
    base = from_model(tiny_qa_model("bert"), tokenizer, name="tiny-bert", device="cpu")
    examples = code_examples(8, 0)
    tuned = finetune_qa(base, examples, epochs=1, lr=1e-3, batch_size=4, bf16=True, dropout=0.0, progress=False,
                        output_dir=tmp_path / "tuned", **WINDOWS)
    assert tuned.card["bf16"] is True and all(pd.notna(training_log(tuned)["loss"]))
    # dropout=0 applies to training only: the model keeps its configured rates.
    rates = {m.p for m in tuned.model.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {base.model.config.hidden_dropout_prob}
    reloaded = load_qa_model(tmp_path / "tuned", device="cpu")
    assert reloaded.card["steps"] == tuned.card["steps"] == 2
    ours = predict(tuned, examples, progress=False, **WINDOWS)
    theirs = predict(reloaded, examples, progress=False, **WINDOWS)
    pd.testing.assert_series_equal(ours["score"], theirs["score"], rtol=1e-4)


def test_bad_settings_are_refused(tokenizer):
    base = from_model(tiny_qa_model("bert"), tokenizer, name="tiny-bert", device="cpu")
    with pytest.raises(BertInsightInputError, match="lr"):
        finetune_qa(base, code_examples(2, 0), lr=-1.0, progress=False)
    with pytest.raises(BertInsightInputError, match="answers"):
        finetune_qa(base, code_examples(2, 0).drop(columns="answers"), progress=False)


# ---- the default model's build -----------------------------------------------------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path))
    return tmp_path


def fake_build(card: dict, *, delay: float = 0.0, fail: bool = False, calls: list | None = None):
    """Stands in for build_into: writes every file of a complete model (store.REQUIRED_FILES), or dies."""
    def build(directory, *, progress, train_seconds=None):
        if calls is not None:
            calls.append(directory)
        (directory / "config.json").write_text("{}")
        time.sleep(delay)
        if fail:
            raise KeyboardInterrupt("killed mid-build")
        (directory / "model.safetensors").write_bytes(b"weights")
        (directory / "tokenizer.json").write_text("{}")
        (directory / "model_card.json").write_text(json.dumps(card))
        return card
    return build


def test_default_model_dir_follows_the_cache_variable(cache):
    assert store.default_model_dir() == cache / "models" / "minilm-l6-squad11-v1"


def test_killed_build_leaves_no_model(cache, monkeypatch):
    monkeypatch.setattr(default_model, "build_into", fake_build({}, fail=True))
    with pytest.raises(KeyboardInterrupt):
        default_model.ensure_default_model(progress=False)
    target = store.default_model_dir()
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir()] == [".minilm-l6-squad11-v1.lock"]
    # The lock was released: the next build goes ahead and succeeds.
    monkeypatch.setattr(default_model, "build_into", fake_build({"f1": 1.0}))
    assert default_model.ensure_default_model(progress=False) == target
    assert store.read_default_card() == {"f1": 1.0}


def test_rebuild_replaces_the_old_model_in_one_step(cache, monkeypatch):
    monkeypatch.setattr(default_model, "build_into", fake_build({"version": 1}))
    target = default_model.ensure_default_model(progress=False)
    monkeypatch.setattr(default_model, "build_into", fake_build({"version": 2}, fail=True))
    with pytest.raises(KeyboardInterrupt):
        default_model.ensure_default_model(progress=False, rebuild=True)
    assert store.read_default_card() == {"version": 1}  # a failed rebuild keeps the old model
    monkeypatch.setattr(default_model, "build_into", fake_build({"version": 2}))
    assert default_model.ensure_default_model(progress=False, rebuild=True) == target
    assert store.read_default_card() == {"version": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == [".minilm-l6-squad11-v1.lock", target.name]


def test_concurrent_callers_wait_for_one_build(cache, monkeypatch):
    calls: list = []
    monkeypatch.setattr(default_model, "build_into", fake_build({"built": True}, delay=0.5, calls=calls))
    results, errors = [], []

    def call():
        try:
            results.append(default_model.ensure_default_model(progress=False))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(calls) == 1  # the others waited on the lock, then found the finished model
    assert results == [store.default_model_dir()] * 3


def test_lock_blocks_another_process(cache):
    import subprocess
    import sys

    from filelock import FileLock

    target = store.default_model_dir()
    target.parent.mkdir(parents=True)
    lock = FileLock(str(target.parent / ".minilm-l6-squad11-v1.lock"))
    with lock:
        probe = ("import sys, filelock; lock = filelock.FileLock(sys.argv[1])\n"
                 "try:\n    lock.acquire(timeout=0.2); print('acquired')\n"
                 "except filelock.Timeout:\n    print('blocked')\n")
        output = subprocess.run([sys.executable, "-c", probe, lock.lock_file], capture_output=True, text=True,
                                timeout=60).stdout.strip()
    assert output == "blocked"


@pytest.mark.slow
def test_default_model_card_records_heldout_scores(default_handle):
    from bert_insight.data import HELDOUT_TITLES

    card = default_handle.card
    assert set(card["eval_articles"]) == set(HELDOUT_TITLES)
    assert not set(card["training_articles"]) & set(card["eval_articles"])
    assert len(card["training_articles"]) == 42 and card["n_train_questions"] > 9000
    assert card["n_eval_questions"] > 500
    # An untrained QA head scores near 0; the card's scores must show real learning.
    assert 30 <= card["exact_match"] <= card["f1"] <= 100
    losses = training_log(card)["loss"]
    assert losses.tail(20).mean() < 0.6 * losses.head(10).mean()


def test_a_damaged_default_model_is_reported_not_used_or_silently_rebuilt(cache, monkeypatch):
    calls: list = []
    monkeypatch.setattr(default_model, "build_into", fake_build({"f1": 1.0}, calls=calls))
    target = default_model.ensure_default_model(progress=False)
    (target / "model.safetensors").unlink()
    with pytest.raises(BertInsightInputError, match="lacks model.safetensors or pytorch_model.bin"):
        default_model.ensure_default_model(progress=False)
    with pytest.raises(BertInsightInputError, match="incomplete"):
        load_qa_model(device="cpu")
    assert len(calls) == 1
    default_model.ensure_default_model(progress=False, rebuild=True)  # what the message tells users to do
    (target / "model_card.json").write_text("{not json")
    with pytest.raises(BertInsightInputError, match="corrupt"):
        load_qa_model(device="cpu")


def test_standard_recipe_is_a_fixed_number_of_fp32_steps(monkeypatch):
    """The build asks finetune_qa for STANDARD_STEPS steps in fp32 and no time budget; a time budget is opt-in."""
    seen = {}

    def fake_finetune(handle, train, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(default_model, "finetune_qa", fake_finetune)
    monkeypatch.setattr(default_model, "load_checkpoint", lambda *args, **kwargs: None)
    with pytest.raises(KeyboardInterrupt):
        default_model.build_into(None, progress=False)
    assert seen["max_steps"] == default_model.STANDARD_STEPS and seen["max_seconds"] is None
    assert seen["bf16"] is False and "epochs" not in seen
    assert default_model.recipe_name(None) == default_model.STANDARD_RECIPE
    assert default_model.recipe_name(600.0) == "time-budget-10min-fp32"


def test_max_steps_fixes_the_run_whatever_the_clock_says(tokenizer, monkeypatch):
    import bert_insight.models.training as training

    base = from_model(tiny_qa_model("bert"), tokenizer, name="tiny-bert", device="cpu")
    examples = code_examples(24, 0)
    settings = dict(max_steps=7, lr=1e-3, batch_size=4, bf16=False, progress=False, **WINDOWS)
    first = finetune_qa(base, examples, **settings)
    clock = iter(range(0, 10_000_000, 1000))  # a machine 1000x slower: no budget, so the run is the same
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(clock)))
    second = finetune_qa(base, examples, **settings)
    assert first.card["steps"] == second.card["steps"] == 7 and not second.card["stopped_by_time_budget"]
    assert training_log(first)["loss"].tolist() == training_log(second)["loss"].tolist()
    for ours, theirs in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(ours, theirs)
    with pytest.raises(BertInsightInputError, match="not both"):
        finetune_qa(base, examples, max_steps=3, epochs=1.0, progress=False)


def test_finetune_takes_a_handle_not_a_name(tmp_path):
    with pytest.raises(BertInsightInputError, match="load_qa_model"):
        finetune_qa(str(tmp_path), code_examples(2, 0), progress=False)
