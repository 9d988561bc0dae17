"""The van Aken et al. 2019 suite: the probing loop over models, the normalised heatmap, the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bert_insight import BertInsightInputError, edge_probe, from_model
from bert_insight.vanaken2019 import ability_heatmap, phase_comparison, probing_suite, probing_summary, table2_comparison
from conftest import tiny_classifier
from test_probing import SENTENCES, word_task


def scores_frame(curves: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    rows = [(model, task, layer, "macro_f1", value, 100, 50)
            for (model, task), values in curves.items() for layer, value in enumerate(values)]
    return pd.DataFrame(rows, columns=["model", "task", "layer", "metric", "value", "n_train", "n_targets"])


def test_heatmap_normalises_each_row_by_its_own_range_and_finds_the_peak():
    scores = scores_frame({("squad", "coref"): [50, 60, 80, 70], ("squad", "flat"): [40, 40, 40, 40]})
    heat = ability_heatmap(scores)
    coref = heat[heat["task"] == "coref"].sort_values("layer")
    np.testing.assert_allclose(coref["normalised"], [0, 1 / 3, 1, 2 / 3])
    assert set(coref["peak_layer"]) == {2}
    np.testing.assert_allclose(coref["relative_depth"], [0, 1 / 3, 2 / 3, 1])
    assert heat[heat["task"] == "flat"]["normalised"].isna().all()  # a constant row has no peak to show
    with pytest.raises(BertInsightInputError, match="metric 'f1'"):
        ability_heatmap(scores, metric="f1")


def test_summary_gaps_against_the_pretrained_model_by_hand():
    scores = scores_frame({("pretrained", "ques"): [50, 60, 70, 70, 60],
                           ("squad", "ques"): [50, 62, 75, 80, 90]})
    summary = probing_summary(scores).set_index("model")
    assert np.isnan(summary.loc["pretrained", "mean_abs_gap"])
    squad = summary.loc["squad"]
    assert squad["mean_abs_gap"] == pytest.approx((0 + 2 + 5 + 10 + 30) / 5)
    assert squad["upper_half_gap"] == pytest.approx((10 + 30) / 2)  # layers 3, 4 of 0..4
    assert squad["peak_layer"] == 4 and squad["last_minus_best"] == 0
    assert summary.loc["pretrained", "last_minus_best"] == -10


def test_suite_rows_are_edge_probes_own_scores(tokenizer):
    # Same task, same seed: the suite is a loop over edge_probe and must not change its numbers.
    handles = {"a": from_model(tiny_classifier("bert", seed=0), tokenizer, device="cpu", task="mrpc"),
               "b": from_model(tiny_classifier("bert", seed=1), tokenizer, device="cpu", task="mrpc")}
    task = word_task(SENTENCES)
    params = {"max_epochs": 2, "hidden_size": 8}
    suite = probing_suite(handles, [task], n_train=None, n_eval=None, probe_params=params, progress=False)
    for name, handle in handles.items():
        direct = edge_probe(handle, task, modes=("layer",), n_train=None, n_eval=None, probe_params=params,
                            progress=False).scores
        ours = suite[suite["model"] == name].reset_index(drop=True)
        np.testing.assert_allclose(ours["value"], direct["value"])
        assert list(ours["metric"]) == list(direct["metric"]) and set(ours["task"]) == {"toy"}
    assert {"f1", "macro_f1"} <= set(suite["metric"])
    with pytest.raises(BertInsightInputError, match="mapping name"):
        probing_suite({}, [task])


def test_table2_and_phase_comparison_put_the_paper_beside_ours():
    table = table2_comparison({"babi": 80.0}).set_index("dataset")
    assert table.loc["babi", "paper_bert"] == 93.4 and table.loc["babi", "ours"] == 80.0
    assert np.isnan(table.loc["squad", "ours"])
    curves = pd.DataFrame({"measure": ["answer_separation"] * 3, "layer": [0, 1, 2], "mean": [0.1, 0.5, 0.9],
                           "peak": [False, False, True]})
    comparison = phase_comparison(curves, num_layers=2)
    assert comparison["peak_layer"].tolist() == [2] and comparison["relative_depth"].tolist() == [1.0]
    assert comparison["phase"].tolist() == ["answer_extraction"]


def test_probing_heatmap_draws_each_models_rows_on_one_scale():
    from bokeh.embed import file_html
    from bokeh.models import ColumnDataSource, LinearColorMapper
    from bokeh.resources import INLINE

    from bert_insight.viz.probing import probing_heatmap

    scores = scores_frame({("squad", "<coref>"): [50, 60, 80], ("pretrained", "<coref>"): [55, 58, 57]})
    heat = ability_heatmap(scores)
    layout = probing_heatmap(heat)
    sources = [m for m in layout.select({"type": ColumnDataSource})]
    assert len(sources) == 2
    by_model = {tuple(s.data["value"]): s for s in sources}
    squad = by_model[(50.0, 60.0, 80.0)]
    np.testing.assert_allclose(squad.data["normalised"], [0, 1 / 3, 1])
    mappers = list(layout.select({"type": LinearColorMapper}))
    assert {(m.low, m.high) for m in mappers} == {(0.0, 1.0)}
    html = file_html(layout, INLINE, "heat")
    assert "<coref>" not in html and list(squad.data["task"]) == ["&lt;coref&gt;"] * 3
    with pytest.raises(BertInsightInputError, match="value="):
        probing_heatmap(heat, value="f1")
