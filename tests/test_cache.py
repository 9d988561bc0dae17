from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from bert_insight.cache import ResultCache
from bert_insight.errors import BertInsightInputError

REPO = Path(__file__).resolve().parents[1]


def _frame(key: str, value: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"key": [key, key], "value": [value, value + 1]})


class Counting:
    """A compute function that records the keys it was called with."""

    def __init__(self, value: int = 0, fail_on: str | None = None):
        self.calls: list[str] = []
        self.value = value
        self.fail_on = fail_on

    def __call__(self, key: str) -> dict[str, pd.DataFrame]:
        self.calls.append(key)
        if key == self.fail_on:
            raise RuntimeError("killed")
        return {"x": _frame(key, self.value), "y": pd.DataFrame({"n": [len(key)]})}


def _cache(root, **kwargs) -> ResultCache:
    return ResultCache(root, fingerprint="abc", function="f", params={"n_steps": 5}, **kwargs)


def test_saved_frames_come_back_and_partial_entries_do_not(tmp_path):
    cache = ResultCache(tmp_path, fingerprint="abc", function="layer_ig", params={"n_steps": 5})
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    cache.save("example-1", {"attributions": frame})
    assert cache.load("example-2", ("attributions",)) is None
    assert cache.load("example-1", ("attributions", "convergence")) is None  # incomplete entry
    pd.testing.assert_frame_equal(cache.load("example-1", ("attributions",))["attributions"], frame)
    assert len(cache) == 1


def test_different_parameters_or_model_do_not_share_entries(tmp_path):
    frame = pd.DataFrame({"a": [1]})
    ResultCache(tmp_path, fingerprint="abc", function="f", params={"n_steps": 5}).save("e", {"x": frame})
    assert ResultCache(tmp_path, fingerprint="abc", function="f", params={"n_steps": 6}).load("e", ("x",)) is None
    assert ResultCache(tmp_path, fingerprint="abd", function="f", params={"n_steps": 5}).load("e", ("x",)) is None
    assert ResultCache(tmp_path, fingerprint="abc", function="f", params={"n_steps": 5}).load("e", ("x",)) is not None


def test_disabled_cache_stores_nothing(tmp_path):
    cache = ResultCache(None, fingerprint="abc", function="f", params={})
    cache.save("e", {"x": pd.DataFrame({"a": [1]})})
    assert cache.load("e", ("x",)) is None
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ cache_dir


@pytest.mark.parametrize("cache_dir", ["", "   ", "\t\n"])
def test_empty_cache_dir_is_refused_instead_of_using_the_working_directory(tmp_path, monkeypatch, cache_dir):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BertInsightInputError, match="pass a directory path, or None for no cache"):
        _cache(cache_dir)
    assert list(tmp_path.iterdir()) == []


def test_cache_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "results.parquet"
    path.write_text("not a directory")
    with pytest.raises(BertInsightInputError, match="not a directory"):
        _cache(path)
    with pytest.raises(BertInsightInputError, match="part of that path is a file"):
        _cache(path / "below")
    assert path.read_text() == "not a directory"


def test_cache_dir_of_another_type_is_refused():
    with pytest.raises(BertInsightInputError, match="str or os.PathLike"):
        _cache(True)


def test_home_is_expanded_and_the_manifest_is_written_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    cache = _cache("~/results")
    assert cache.directory == tmp_path / "home" / "results" / "f" / cache.run_key
    assert not (tmp_path / "~").exists()  # no literal "~" directory
    manifest = json.loads((cache.directory / "manifest.json").read_text())
    assert manifest == {"function": "f", "fingerprint": "abc", "params": {"n_steps": 5}}
    assert sorted(p.name for p in cache.directory.iterdir()) == ["manifest.json"]  # no temporary left


# -------------------------------------------------------------------------------------------- compute


def test_compute_loads_stored_keys_computes_the_rest_in_the_given_order(tmp_path):
    _cache(tmp_path).save("b", {"x": _frame("b", 100), "y": pd.DataFrame({"n": [7]})})
    compute = Counting()
    results = _cache(tmp_path).compute(["c", "b", "a", "c"], compute, ("x", "y"))
    assert list(results) == ["c", "b", "a"]
    assert compute.calls == ["c", "a"]
    assert results["b"]["x"]["value"].tolist() == [100, 101]  # stored value, not recomputed
    pd.testing.assert_frame_equal(results["a"]["x"], _frame("a"))
    # A second run computes nothing and returns the same frames.
    again = Counting(value=5)
    reloaded = _cache(tmp_path).compute(["a", "b", "c"], again, ("x", "y"))
    assert again.calls == []
    for key in "abc":
        pd.testing.assert_frame_equal(reloaded[key]["x"], results[key]["x"])
    assert not list(_cache(tmp_path).directory.glob("*.claim"))


def test_computed_frames_equal_what_a_later_cached_run_loads(tmp_path):
    def compute(key):
        return {"x": pd.DataFrame({"v": [1, 2, 3]}, index=[10, 20, 30])}

    fresh = _cache(tmp_path).compute(["k"], compute, ("x",))["k"]["x"]
    cached = _cache(tmp_path).compute(["k"], compute, ("x",))["k"]["x"]
    pd.testing.assert_frame_equal(fresh, cached)
    assert fresh.index.tolist() == [0, 1, 2]


def test_compute_without_cache_dir_computes_every_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compute = Counting()
    results = ResultCache(None, fingerprint="abc", function="f", params={}).compute(["b", "a"], compute, ("x",))
    assert compute.calls == ["b", "a"]
    assert list(results) == ["b", "a"]
    assert list(results["a"]) == ["x"]
    pd.testing.assert_frame_equal(results["b"]["x"], _frame("b"))
    assert list(tmp_path.iterdir()) == []


def test_a_killed_run_keeps_what_it_finished_and_leaves_no_claim(tmp_path):
    with pytest.raises(RuntimeError, match="killed"):
        _cache(tmp_path).compute(["a", "b", "c", "d"], Counting(fail_on="c"), ("x", "y"))
    cache = _cache(tmp_path)
    assert len(cache) == 2
    assert not list(cache.directory.glob("*.claim"))
    resumed = Counting()
    results = cache.compute(["a", "b", "c", "d"], resumed, ("x", "y"))
    assert resumed.calls == ["c", "d"]
    assert [results[key]["x"]["key"].iloc[0] for key in results] == ["a", "b", "c", "d"]


def test_compute_returning_too_few_frames_is_an_error_and_stores_nothing(tmp_path):
    cache = _cache(tmp_path)
    with pytest.raises(ValueError, match="missing"):
        cache.compute(["a"], lambda key: {"x": _frame(key)}, ("x", "y"))
    assert len(cache) == 0


def test_progress_bar_counts_keys(tmp_path, capsys):
    _cache(tmp_path).compute(["a", "b", "c"], Counting(), ("x",), progress=True, desc="probe")
    err = capsys.readouterr().err
    assert "probe" in err and "3/3" in err


# ------------------------------------------------------------------------------------- corrupt entries


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_entry_warns_is_deleted_and_recomputed(tmp_path, damage):
    cache = _cache(tmp_path)
    cache.save("a", {"x": _frame("a", 1), "y": pd.DataFrame({"n": [1]})})
    path = next(cache.directory.glob("*.x.parquet"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00garbage" * 20)

    compute = Counting(value=42)
    with pytest.warns(RuntimeWarning, match=path.name):
        results = _cache(tmp_path).compute(["a"], compute, ("x", "y"))
    assert compute.calls == ["a"]
    assert results["a"]["x"]["value"].tolist() == [42, 43]
    # The file was replaced by the recomputed (valid) value.
    assert pd.read_parquet(path)["value"].tolist() == [42, 43]


def test_load_of_a_corrupt_entry_returns_none_and_deletes_the_file(tmp_path):
    cache = _cache(tmp_path)
    cache.save("a", {"x": _frame("a")})
    path = next(cache.directory.glob("*.x.parquet"))
    path.write_bytes(b"PAR1 not really")
    with pytest.warns(RuntimeWarning, match="corrupt cache entry"):
        assert cache.load("a", ("x",)) is None
    assert not path.exists()


# ------------------------------------------------------------------------------------------------ claims


def _write_claim(cache: ResultCache, key: str, **content) -> Path:
    path = cache._claim_path(key)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
                                **content}))
    return path


def test_claim_is_exclusive_and_only_its_owner_releases_it(tmp_path):
    first, second = _cache(tmp_path), _cache(tmp_path)
    assert first.claim("a")
    path = first._claim_path("a")
    content = json.loads(path.read_text())
    assert content["pid"] == os.getpid() and content["host"] == socket.gethostname()
    assert abs(content["time"] - time.time()) < 60
    assert not second.claim("a")  # same live pid: not stale
    second.release("a")
    assert path.exists()
    first.release("a")
    assert not path.exists()
    assert second.claim("a")


def test_claim_of_a_killed_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cache = _cache(tmp_path)
    claim = _write_claim(cache, "b", pid=dead.pid)  # what kill -9 during compute("b") leaves behind
    probe = _cache(tmp_path)
    assert probe.claim("b")  # fails fast (rather than waiting an hour in compute) if not taken over
    probe.release("b")
    assert not claim.exists()
    _write_claim(cache, "b", pid=dead.pid)
    compute = Counting()
    started = time.monotonic()
    results = cache.compute(["a", "b"], compute, ("x",))
    assert time.monotonic() - started < 5  # not waiting for the claim timeout
    assert compute.calls == ["a", "b"]
    pd.testing.assert_frame_equal(results["b"]["x"], _frame("b"))
    assert not claim.exists()


def test_claim_of_a_live_process_on_another_host_is_kept_until_it_times_out(tmp_path):
    cache = _cache(tmp_path, claim_timeout=60)
    _write_claim(cache, "a", host="elsewhere", pid=1)
    assert not cache.claim("a")
    _write_claim(cache, "b", host="elsewhere", pid=1, time=time.time() - 120)
    assert cache.claim("b")


def test_old_claim_of_a_live_process_is_taken_over_after_claim_timeout(tmp_path):
    cache = _cache(tmp_path, claim_timeout=30, poll_interval=0.05)
    _write_claim(cache, "a", time=time.time() - 31)  # this (live) process, but too old
    compute = Counting()
    assert list(cache.compute(["a"], compute, ("x",))) == ["a"]
    assert compute.calls == ["a"]


def test_unreadable_claim_counts_as_live_only_while_young(tmp_path):
    cache = _cache(tmp_path)
    path = cache._claim_path("a")
    path.write_text("")  # writer died between creating and filling the claim
    assert not cache.claim("a")
    old = time.time() - 60
    os.utime(path, (old, old))
    assert cache.claim("a")


def test_key_claimed_by_another_run_is_waited_for_not_computed(tmp_path):
    owner, waiter = _cache(tmp_path), _cache(tmp_path, poll_interval=0.05, claim_timeout=30)
    assert owner.claim("b")

    def finish():
        time.sleep(0.6)
        owner.save("b", {"x": _frame("b", 7)})
        owner.release("b")

    thread = threading.Thread(target=finish)
    thread.start()
    compute = Counting()
    started = time.monotonic()
    results = waiter.compute(["a", "b", "c"], compute, ("x",))
    thread.join()
    assert time.monotonic() - started >= 0.5
    assert compute.calls == ["a", "c"]  # the others first, then waited for "b"
    assert list(results) == ["a", "b", "c"]
    assert results["b"]["x"]["value"].tolist() == [7, 8]


def test_key_released_without_a_result_is_computed_by_the_waiting_run(tmp_path):
    owner, waiter = _cache(tmp_path), _cache(tmp_path, poll_interval=0.05, claim_timeout=30)
    assert owner.claim("a")
    timer = threading.Timer(0.3, owner.release, args=("a",))  # the owner's compute raised
    timer.start()
    compute = Counting(value=3)
    results = waiter.compute(["a"], compute, ("x",))
    timer.join()
    assert compute.calls == ["a"]
    assert results["a"]["x"]["value"].tolist() == [3, 4]


# ----------------------------------------------------------------------------------- two processes

WORKER = textwrap.dedent("""
    import os, pickle, sys, time
    import pandas as pd
    from bert_insight.cache import ResultCache

    cache_dir, log, out, go = sys.argv[1:5]

    def compute(key):
        time.sleep(0.3)
        with open(log, "a") as file:
            file.write(key + "\\n")
        return {"x": pd.DataFrame({"key": [key], "pid": [os.getpid()]})}

    cache = ResultCache(cache_dir, fingerprint="abc", function="f", params={}, poll_interval=0.05)
    while not os.path.exists(go):
        time.sleep(0.01)
    results = cache.compute([f"k{i}" for i in range(6)], compute, ("x",))
    with open(out, "wb") as file:
        pickle.dump(results, file)
""")


def test_two_processes_share_the_work_and_return_the_same_frames(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cache_dir, go = tmp_path / "cache", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    workers = [subprocess.Popen([sys.executable, str(script), str(cache_dir), str(tmp_path / f"log{i}"),
                                 str(tmp_path / f"out{i}"), str(go)], env=env, stderr=subprocess.PIPE)
               for i in range(2)]
    time.sleep(0.2)
    go.touch()
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()

    logs = [(tmp_path / f"log{i}").read_text().split() if (tmp_path / f"log{i}").exists() else []
            for i in range(2)]
    keys = [f"k{i}" for i in range(6)]
    assert Counter(logs[0] + logs[1]) == Counter(keys)  # every key computed exactly once in total
    assert logs[0] and logs[1]  # both did some of the work
    outputs = [pickle.loads((tmp_path / f"out{i}").read_bytes()) for i in range(2)]
    pids = [worker.pid for worker in workers]
    for output in outputs:
        assert list(output) == keys
    for key in keys:
        pd.testing.assert_frame_equal(outputs[0][key]["x"], outputs[1][key]["x"])
        computed_by = 0 if key in logs[0] else 1
        assert outputs[0][key]["x"]["pid"].tolist() == [pids[computed_by]]  # the other run read it
    assert not list(cache_dir.rglob("*.claim"))
