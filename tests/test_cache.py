from __future__ import annotations

import pandas as pd

from bert_insight.cache import ResultCache


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
