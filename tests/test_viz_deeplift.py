"""token_heatmap and output_view render the frames of layer_deeplift: colours, slider, bars."""

from __future__ import annotations

import re

import pytest
from bokeh.models import ColumnDataSource, CustomJS, Div, Slider

from bert_insight import predict, tokens as token_frame, viz
from bert_insight.attribution.layer_deeplift import layer_deeplift
from bert_insight.errors import BertInsightInputError
from bert_insight.viz._common import signed_colors
from tests.test_layer_ig import WINDOW, make_examples


@pytest.fixture(scope="module")
def frames(tiny_handle):
    examples = make_examples(2)
    predictions = predict(tiny_handle, examples, progress=False, **WINDOW)
    attributions, _, outputs = layer_deeplift(tiny_handle, examples, predictions=predictions, progress=False)
    return attributions, outputs, token_frame(tiny_handle, examples, predictions=predictions)


def test_each_layer_colours_every_token_by_its_own_signed_score(frames):
    attributions, _, tokens = frames
    layout = viz.token_heatmap(attributions, tokens=tokens, example_id="q1", target="end")
    slider = next(model for model in layout.select({"type": Slider}))
    htmls = next(model for model in layout.select({"type": CustomJS})).args["htmls"]
    layers = sorted(attributions["layer"].unique())
    assert (slider.start, slider.end, len(htmls)) == (layers[0], layers[-1], len(layers))
    for layer, html in zip(layers, htmls):
        rows = attributions.query("example_id == 'q1' and target == 'end' and layer == @layer").sort_values("token_index")
        colours = re.findall(r"background:(#[0-9a-fA-F]{6})", html)
        assert colours == signed_colors(rows["score"].to_numpy())
        assert html.count("<span") == len(tokens.query("example_id == 'q1'"))
    assert next(model for model in layout.select({"type": Div, "name": "tokens"})).text == htmls[0]


def test_output_view_bars_are_the_frames_probabilities(frames):
    _, outputs, tokens = frames
    layout = viz.output_view(outputs, tokens=tokens, example_id="q0")
    source = next(model for model in layout.select({"type": ColumnDataSource, "name": "outputs"}))
    expected = outputs.query("example_id == 'q0'").sort_values("token_index")
    assert list(source.data["start_probability"]) == pytest.approx(expected["start_probability"].tolist())
    assert list(source.data["token"]) == tokens.query("example_id == 'q0'").sort_values("token_index")["token"].tolist()


def test_unknown_example_is_named(frames):
    attributions, outputs, tokens = frames
    with pytest.raises(BertInsightInputError, match="nope"):
        viz.token_heatmap(attributions, tokens=tokens, example_id="nope")
    with pytest.raises(BertInsightInputError, match="nope"):
        viz.output_view(outputs, tokens=tokens, example_id="nope")
