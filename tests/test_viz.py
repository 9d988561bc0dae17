"""The bokeh views: escaping of token text, the slider payloads, colour sign convention, scatter data.

Frames are synthetic but shaped like bert_insight.tokens / layer_ig / importance_jsd / project_tokens.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from bokeh.embed import components, file_html
from bokeh.models import CustomJS, Div, GlyphRenderer, GroupFilter
from bokeh.resources import CDN

from bert_insight import viz
from bert_insight.attribution.analysis import QuantifierAnalysis
from bert_insight.errors import BertInsightInputError
from bert_insight.frames import ATTRIBUTION_COLUMNS, TOKEN_COLUMNS
from bert_insight.text import is_number_word, is_stopword

# The old spellings (k=, tokens by position) warn; the views are called with the new ones only.
pytestmark = pytest.mark.filterwarnings("error:.*is deprecated; pass:DeprecationWarning")

EVIL = "<script>pwn()</script>"
EVIL_ESCAPED = "&lt;script&gt;pwn()&lt;/script&gt;"


def make_tokens(example_id: str = "ex1") -> pd.DataFrame:
    """[CLS] question [SEP] context [SEP], one context word split in two pieces, one word is EVIL; exactly
    the columns of bert_insight.tokens (frames.TOKEN_COLUMNS). The question and context are their words
    joined by spaces, so char_start / char_end are offsets into those strings."""
    question = ["what", "is", EVIL, "?"]
    context = ["the", "cat", "sat", "on", "the", "mat", "near", EVIL, "and", "a", "dog", "today"]
    roles = {5: "answer", 6: "answer", 3: "supporting", 4: "supporting", 7: "question_word", 8: "supporting"}
    special = (-1, "special", "special", -1, -1)
    rows = [("[CLS]", "[CLS]", *special)]
    for segment, words in (("question", question), ("context", context)):
        offset = 0
        for i, word in enumerate(words):
            pieces = ["ca", "##t"] if word == "cat" else [word]
            ends = [offset + 2, offset + 3] if word == "cat" else [offset + len(word)]
            starts = [offset, offset + 2] if word == "cat" else [offset]
            role = roles.get(i, "other") if segment == "context" else "question"
            rows += [(piece, word, i, segment, role, start, end) for piece, start, end in zip(pieces, starts, ends)]
            offset += len(word) + 1
        rows.append(("[SEP]", "[SEP]", *special))
    frame = pd.DataFrame(rows, columns=["token", "word", "word_index", "segment", "role", "char_start", "char_end"])
    frame.insert(0, "token_index", range(len(frame)))
    frame.insert(0, "example_id", example_id)
    frame["in_answer"] = frame["role"].eq("answer")
    frame["in_question"] = frame["role"].eq("question_word")
    frame["near_answer"] = frame["role"].eq("supporting")
    real = frame["segment"].ne("special")
    frame["is_number"] = real & frame["word"].map(is_number_word)
    frame["is_stopword"] = real & frame["word"].map(is_stopword)
    return frame[list(TOKEN_COLUMNS)]


def make_attributions(tokens: pd.DataFrame, n_layers: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    context = tokens["segment"].eq("context").to_numpy()
    rows = []
    for example_id, example in tokens.groupby("example_id"):
        for layer in range(n_layers):
            for target in ("start", "end"):
                norm = rng.random(len(example))
                importance = np.where(context[: len(example)], norm, 0.0)
                rows.append(pd.DataFrame({
                    "example_id": example_id, "method": "layer_ig", "quadrature": "riemann", "layer": layer,
                    "target": target,
                    "token_index": example["token_index"].to_numpy(), "word_index": example["word_index"].to_numpy(),
                    "segment": example["segment"].to_numpy(), "score": rng.normal(size=len(example)),
                    "norm": norm, "importance": importance / importance.sum(),
                }, columns=list(ATTRIBUTION_COLUMNS)))
    return pd.concat(rows, ignore_index=True)


def test_synthetic_frames_have_exactly_the_producers_columns(frames):
    tokens, attributions = frames
    assert tuple(tokens.columns) == TOKEN_COLUMNS
    assert tuple(attributions.columns) == ATTRIBUTION_COLUMNS


@pytest.fixture
def frames():
    tokens = make_tokens()
    return tokens, make_attributions(tokens)


def html_strings(layout) -> list[str]:
    """Every string that bokeh renders as HTML: Div texts and the per-layer HTML handed to CustomJS."""
    strings = [div.text for div in layout.select({"type": Div})]
    for callback in layout.select({"type": CustomJS}):
        for value in callback.args.values():
            if isinstance(value, list):
                strings += [item for item in value if isinstance(item, str)]
    return strings


class SpanReader(HTMLParser):
    """The text and inline style of each <span> of a passage."""

    def __init__(self):
        super().__init__()
        self.spans: list[tuple[str, str]] = []
        self._style: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "span":
            self._style = dict(attrs).get("style", "")

    def handle_data(self, data):
        if self._style is not None:
            self.spans.append((data, self._style))
            self._style = None


def spans_of(html: str) -> list[tuple[str, str]]:
    reader = SpanReader()
    reader.feed(html)
    return reader.spans


def background(style: str) -> str | None:
    found = re.search(r"background:(#[0-9a-f]{6})", style)
    return found.group(1) if found else None


def reference_word_scores(attributions, tokens, target="start"):
    """Word scores computed independently: sum the pieces of each context word."""
    context = tokens[tokens["segment"] == "context"][["token_index", "word"]]
    joined = attributions[attributions["target"] == target].merge(context, on="token_index")
    return joined.groupby(["layer", "word_index"]).agg(word=("word", "first"), importance=("importance", "sum"),
                                                       score=("score", "sum")).reset_index()


# ----------------------------------------------------------------------------------------------------
# escaping


def html_views(tokens, attributions):
    """The views that render token text as HTML (Divs, per-layer HTML for the slider)."""
    return [
        viz.passage_view(attributions, tokens=tokens, example_id="ex1", top_k=3),
        viz.passage_view(attributions, tokens=tokens, example_id="ex1", top_k=3, color_by="score"),
        viz.qa_roles_view(tokens, example_id="ex1"),
    ]


def canvas_views(tokens):
    """The views that draw token text on the canvas only (bokeh glyphs and hover tooltips, no HTML)."""
    projection = tokens.merge(pd.DataFrame({"layer": range(3)}), how="cross")
    projection["x"] = np.arange(len(projection), dtype=float)
    projection["y"] = -np.arange(len(projection), dtype=float)
    curves = pd.DataFrame({"layer": [0, 1, 0, 1], "category": [EVIL, EVIL, "noun", "noun"],
                           "share": [0.1, 0.2, 0.9, 0.8]})
    return [viz.token_scatter(projection), viz.layer_curves(curves)]


def test_token_text_is_escaped_in_html_the_views_render(frames):
    tokens, attributions = frames
    for layout in html_views(tokens, attributions):
        strings = html_strings(layout)
        for text in strings:
            assert "<script>pwn" not in text
        # the evil word is shown, escaped, not dropped
        assert any(EVIL_ESCAPED in text for text in strings)
    for layout in canvas_views(tokens):
        assert html_strings(layout) == []


def test_token_text_never_appears_unescaped_in_embedded_output(frames):
    tokens, attributions = frames
    for layout in html_views(tokens, attributions) + canvas_views(tokens):
        page = file_html(layout, CDN, "test")
        script, div = components(layout)
        for output in (page, script, div):
            assert "<script>pwn" not in output
            assert "pwn()</script>" not in output


# ----------------------------------------------------------------------------------------------------
# passage view: the slider's payload


@pytest.mark.parametrize("k", [1, 3, 5])
def test_topk_source_holds_exactly_each_layers_top_words(frames, k):
    tokens, attributions = frames
    layout = viz.passage_view(attributions, tokens=tokens, example_id="ex1", target="start", top_k=k)
    data = layout.select_one({"name": "topk_words"}).data
    shown = pd.DataFrame({"layer": data["layer"], "word_index": data["word_index"], "rank": data["rank"]})

    words = reference_word_scores(attributions, tokens)
    expected = words.sort_values("importance", ascending=False).groupby("layer").head(k)
    for layer, rows in expected.groupby("layer"):
        got = shown[shown["layer"] == layer].sort_values("rank")
        assert list(got["word_index"]) == list(rows["word_index"]), layer
        assert list(got["rank"]) == list(range(1, k + 1))
    assert len(shown) == k * words["layer"].nunique()


def test_slider_switches_to_html_highlighting_that_layers_top_words(frames):
    tokens, attributions = frames
    k = 3
    layout = viz.passage_view(attributions, tokens=tokens, example_id="ex1", target="end", top_k=k)
    slider = layout.select_one({"name": "layer_slider"})
    (callback,) = slider.js_property_callbacks["change:value"]
    layers, htmls = callback.args["layers"], callback.args["htmls"]
    assert layers == [0, 1, 2, 3, 4] and (slider.start, slider.end) == (0, 4)

    words = reference_word_scores(attributions, tokens, target="end")
    for layer, html in zip(layers, htmls):
        layer_words = words[words["layer"] == layer].sort_values("word_index")
        spans = spans_of(html)
        assert [text for text, _ in spans] == list(layer_words["word"])
        highlighted = {i for i, (_, style) in enumerate(spans) if background(style)}
        top = set(layer_words.reset_index(drop=True).nlargest(k, "importance").index)
        assert highlighted == top
        # the answer span ("mat near") is underlined
        underlined = {text for text, style in spans if "border-bottom" in style}
        assert underlined == {"mat", "near"}
    # the first layer is what a static export shows
    assert layout.select_one({"name": "passage"}).text == htmls[0]


def test_word_scores_sum_the_pieces_of_split_words(frames):
    tokens, attributions = frames
    words = viz.passage_word_scores(attributions, tokens=tokens, example_id="ex1", target="start")
    cat_pieces = tokens[tokens["token"].isin(["ca", "##t"])]["token_index"]
    for layer in range(5):
        rows = attributions[(attributions["layer"] == layer) & (attributions["target"] == "start")]
        expected = rows[rows["token_index"].isin(cat_pieces)]["importance"].sum()
        got = words[(words["layer"] == layer) & (words["word"] == "cat")]["importance"]
        assert got.item() == pytest.approx(expected)
    # importances of the passage words still sum to 1 per layer
    assert np.allclose(words.groupby("layer")["importance"].sum(), 1.0)


# ----------------------------------------------------------------------------------------------------
# colours


def test_signed_colours_are_centred_at_zero():
    values = np.array([-4.0, -1.0, -0.05, 0.05, 0.5, 2.0])
    colors = viz.signed_colors(values)
    middle = len(viz.DIVERGING) // 2
    negative_half, positive_half = set(viz.DIVERGING[:middle]), set(viz.DIVERGING[middle:])
    for value, color in zip(values, colors):
        assert color in (negative_half if value < 0 else positive_half), (value, color)
    # the largest magnitude sets the symmetric limit: -4 is the end of the palette, +2 only half way
    assert colors[0] == viz.DIVERGING[0]
    assert colors[-1] != viz.DIVERGING[-1]
    mapper = viz.signed_color_mapper(values)
    assert (mapper.low, mapper.high) == (-4.0, 4.0)


def test_score_colouring_of_the_passage_follows_the_sign(frames):
    tokens, attributions = frames
    layout = viz.passage_view(attributions, tokens=tokens, example_id="ex1", top_k=2, color_by="score")
    htmls = layout.select_one({"name": "layer_slider"}).js_property_callbacks["change:value"][0].args["htmls"]
    words = reference_word_scores(attributions, tokens)
    middle = len(viz.DIVERGING) // 2
    checked = 0
    for layer, html in enumerate(htmls):
        scores = words[words["layer"] == layer].sort_values("word_index")["score"].to_numpy()
        for score, (_, style) in zip(scores, spans_of(html)):
            position = viz.DIVERGING.index(background(style))
            assert position < middle if score < 0 else position >= middle
            checked += 1
    assert checked == 12 * 5


# ----------------------------------------------------------------------------------------------------
# scatter, heatmaps, curves


def test_scatter_source_coordinates_equal_the_projection_frame():
    rng = np.random.default_rng(1)
    tokens = make_tokens()
    projection = tokens.merge(pd.DataFrame({"layer": [0, 3, 6]}), how="cross").sample(frac=1, random_state=0)
    projection["x"] = rng.normal(size=len(projection))
    projection["y"] = rng.normal(size=len(projection))
    layout = viz.token_scatter(projection)
    data = pd.DataFrame(layout.select_one({"name": "projection"}).data)
    key = ["layer", "token_index"]
    merged = data.merge(projection, on=key, suffixes=("_shown", ""))
    assert len(merged) == len(projection) == len(data)
    assert np.array_equal(merged["x_shown"], merged["x"]) and np.array_equal(merged["y_shown"], merged["y"])
    assert (merged["category"] == merged["role"]).all() and (merged["token_shown"] == merged["token"]).all()
    # the slider and the view filter start on the same layer and the callback moves the filter
    slider = layout.select_one({"name": "layer_slider"})
    (layer_filter,) = layout.select({"type": GroupFilter})
    assert layer_filter.group == slider.value == 6
    assert "layer_filter.group = cb_obj.value" in slider.js_property_callbacks["change:value"][0].code


def test_jsd_heatmaps_average_examples_and_share_one_scale():
    rng = np.random.default_rng(2)
    pairs = pd.MultiIndex.from_product([["e1", "e2"], range(4), range(4)], names=["example_id", "layer_a", "layer_b"])
    head = pd.DataFrame({"jsd": rng.random(len(pairs))}, index=pairs).reset_index()
    tail = head.assign(jsd=head["jsd"] * 3)
    layout = viz.jsd_heatmaps(head, tail)
    for name, frame in (("jsd_head", head), ("jsd_tail", tail)):
        shown = pd.DataFrame(layout.select_one({"name": name}).data)
        expected = frame.groupby(["layer_a", "layer_b"])["jsd"].mean().reset_index()
        merged = shown.merge(expected, on=["layer_a", "layer_b"])
        assert len(merged) == 16 and np.allclose(merged["value"], merged["jsd"])
    # own scale per map by default (each from 0 to its own maximum), one common scale on request
    for name, frame in (("jsd_head", head), ("jsd_tail", tail)):
        (renderer,) = [r for r in layout.select({"type": GlyphRenderer}) if r.data_source.name == name]
        mapper = renderer.glyph.fill_color.transform
        assert mapper.low == 0 and mapper.high == pytest.approx(frame.groupby(["layer_a", "layer_b"])["jsd"].mean().max())
    shared = viz.jsd_heatmaps(head, tail, shared_scale=True)
    (mapper,) = {renderer.glyph.fill_color.transform for renderer in shared.select({"type": GlyphRenderer})}
    assert mapper.high == pytest.approx(tail.groupby(["layer_a", "layer_b"])["jsd"].mean().max())


def test_layer_curves_plot_the_mean_share_per_layer_and_facet():
    frame = pd.DataFrame({
        "example_id": ["a", "b"] * 8, "target": ["end"] * 8 + ["start"] * 8,
        "layer": [0, 0, 1, 1] * 4, "category": (["answer"] * 4 + ["other"] * 4) * 2,
        "share": np.linspace(0, 1, 16),
    })
    layout = viz.layer_curves(frame)
    assert len(layout.children) == 2
    expected = frame.groupby(["target", "category", "layer"])["share"].mean()
    for fig, target in zip(layout.children, ["start", "end"]):  # start first, whatever the frame's order
        assert target in fig.title.text
        for renderer in fig.renderers:
            data = renderer.data_source.data
            for layer, share, group in zip(data["x"], data["y"], data["group"]):
                assert share == pytest.approx(expected[(target, group, layer)])


# ----------------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_a_helpful_error(frames):
    tokens, attributions = frames
    with pytest.raises(BertInsightInputError, match="lacks the column"):
        viz.passage_view(attributions.drop(columns="importance"), tokens=tokens, example_id="ex1")
    with pytest.raises(BertInsightInputError, match="example_id='nope'"):
        viz.passage_view(attributions, tokens=tokens, example_id="nope")
    with pytest.raises(BertInsightInputError, match="positive whole number"):
        viz.passage_view(attributions, tokens=tokens, example_id="ex1", top_k=0)
    two_methods = pd.concat([attributions, attributions.assign(method="layer_deeplift")])
    with pytest.raises(BertInsightInputError, match="method="):
        viz.passage_view(two_methods, tokens=tokens, example_id="ex1")
    with pytest.raises(BertInsightInputError, match="layer columns"):
        viz.jsd_heatmaps(pd.DataFrame({"a": [0], "jsd": [0.1]}), pd.DataFrame({"a": [0], "jsd": [0.1]}))
    with pytest.raises(BertInsightInputError, match="coordinate"):
        viz.token_scatter(tokens.assign(layer=0))


# ----------------------------------------------------------------------------------------------------
# the paper-comparison table


def test_ramnath_comparison_reports_early_and_late_means_and_the_trend_direction():
    layers = range(6)  # early = layers 0-1, late = layers 4-5
    pairs = pd.MultiIndex.from_product([["start", "end"], layers, layers], names=["target", "layer_a", "layer_b"])
    head = pd.DataFrame(index=pairs).reset_index()
    head["jsd"] = (head["layer_a"] - head["layer_b"]).abs() / 10  # divergence grows with layer distance
    tail = head.assign(jsd=0.01)
    rows = []
    for target in ("start", "end"):
        for layer in layers:
            answer = 0.1 * layer + (0.05 if target == "end" else 0.0)
            rows += [(layer, target, "answer", answer), (layer, target, "question_word", 0.5 - 0.05 * layer),
                     (layer, target, "supporting", 0.2), (layer, target, "other", 0.3 - 0.05 * layer)]
    categories = pd.DataFrame(rows, columns=["layer", "target", "category", "share"])
    pos = pd.DataFrame({"layer": list(layers), "target": "start", "pos_group": "noun", "share": 0.4})
    focus = pd.DataFrame({"layer": list(layers), "target": "start", "numeric_ratio": [0.5, 0.4, 0.3, 0.2, 0.1, 0.0]})
    performance = pd.DataFrame({"group": ["quantifier_multi_number", "rest"], "exact_match": [0.5, 0.75]})

    table = viz.ramnath2020_comparison(jsd_head=head, jsd_tail=tail, categories=categories, pos=pos,
                                       quantifiers=QuantifierAnalysis(focus, performance))
    table = table.set_index(table["statistic"].str.split().str[:3].str.join(" "))
    assert table.attrs == {"early_layers": [0, 1], "late_layers": [4, 5], "dataset": "squad"}
    # JSD: early-early pairs are (0,1),(1,0): 0.1; early-late pairs |a-b| in {3,4,5}: mean 0.4
    jsd = table.loc["Fig. 1 JSD"].iloc[0]
    assert (jsd["a"], jsd["b"], jsd["same_trend"]) == (pytest.approx(0.1), pytest.approx(0.4), True)
    answer = table.loc["Table 1 answer"]
    assert answer["a"] == pytest.approx((0.0 + 0.1 + 0.05 + 0.15) / 4) and answer["b"] == pytest.approx(
        (0.4 + 0.5 + 0.45 + 0.55) / 4)
    assert answer["same_trend"] is True
    assert table.loc["Table 1 question"]["same_trend"] is True   # falls with depth, as in the paper
    assert table.loc["Table 1 supporting"]["same_trend"] is False  # flat: not the paper's rise
    numbers = table.loc["Sec. 5.2 passage"]
    assert (numbers["a"], numbers["b"], numbers["same_trend"]) == (pytest.approx(0.45), pytest.approx(0.05), False)
    em = table.loc["Sec. 5.2 exact"]
    assert (em["a"], em["b"], em["same_trend"]) == (50.0, 75.0, None)
    assert table.loc["Table 5 nouns"]["same_trend"] is None
    # the paper's own numbers: first vs last third of its Table 1 (percent -> fraction), Fig. 1's stated range
    paper_answer = viz.RAMNATH2020_PAPER[("squad", "category", "answer")]
    assert answer["paper_a"] == pytest.approx(sum(paper_answer[:4]) / 400)
    assert answer["paper_b"] == pytest.approx(sum(paper_answer[8:]) / 400)
    jsd_range = table[table["statistic"] == "Fig. 1 JSD range, top-2 kept"].iloc[0]
    assert (jsd_range["paper_a"], jsd_range["paper_b"]) == (0.08, 0.72)
    assert (jsd_range["a"], jsd_range["b"]) == (pytest.approx(0.1), pytest.approx(0.5))
    assert (numbers["paper_a"], numbers["paper_b"]) == (pytest.approx(0.056), pytest.approx((0.177 + 0.155) / 2))


def test_by_depth_averages_each_third_of_the_layers_next_to_bert_base():
    layers = range(6)  # thirds: 0-1, 2-3, 4-5
    categories = pd.DataFrame([(layer, target, "answer", 0.1 * layer + (0.1 if target == "end" else 0.0))
                               for layer in layers for target in ("start", "end")],
                              columns=["layer", "target", "category", "share"])
    pos = pd.DataFrame({"layer": list(layers), "target": "start", "pos_group": "noun", "share": 0.4})
    focus = pd.DataFrame({"layer": list(layers), "target": "start", "numeric_share": [0.0, 0.2, 0.2, 0.2, 0.6, 0.6]})
    table = viz.ramnath2020_by_depth(categories=categories, pos=pos,
                                     quantifiers=QuantifierAnalysis(focus, pd.DataFrame()))
    table = table.set_index(["group", "depth"])
    # ours: mean over the third's layers and both targets
    assert table.loc[("answer", "early"), "ours"] == pytest.approx((0.0 + 0.1 + 0.1 + 0.2) / 4)
    assert table.loc[("answer", "late"), "ours"] == pytest.approx((0.4 + 0.5 + 0.5 + 0.6) / 4)
    assert table.loc[("numeric_share", "middle"), "ours"] == pytest.approx(0.2)
    assert table.loc[("noun", "late"), "ours"] == pytest.approx(0.4)
    # BERT-base: 12 layers in thirds of four, percent -> fraction
    answer = viz.MLRC2020_BERT_BASE_SQUAD[("category", "answer")]
    assert table.loc[("answer", "early"), "bert_base"] == pytest.approx(sum(answer[:4]) / 400)
    assert table.loc[("answer", "late"), "bert_base"] == pytest.approx(sum(answer[8:]) / 400)
    # groups we did not measure stay NaN rather than vanish
    assert np.isnan(table.loc[("verb", "early"), "ours"])
    assert set(table.index.get_level_values("depth")) == {"early", "middle", "late"}
    # the paper's Table 1 and its section 5.2 ratio, reported only at L0 (early) and L10-L11 (late)
    paper = viz.RAMNATH2020_PAPER[("squad", "category", "answer")]
    assert table.loc[("answer", "middle"), "paper"] == pytest.approx(sum(paper[4:8]) / 400)
    assert table.loc[("numeric_ratio", "early"), "paper"] == pytest.approx(0.056)
    assert np.isnan(table.loc[("numeric_ratio", "middle"), "paper"])
