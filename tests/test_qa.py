"""QA windows, span predictions, SQuAD scoring and analysis windows."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import transformers as tf

from bert_insight.errors import BertInsightInputError
from bert_insight.models.handle import from_model
from bert_insight.qa import analysis_windows, evaluate, predict, score_prediction
from bert_insight.windows import encode_windows
from tests.conftest import SHARED_DATA, TINY_SIZES, redraw_parameters, tiny_qa_model

MAX_LENGTH = 128  # the tiny models embed 128 positions
STRIDE = 32

HARBOUR_SENTENCES = [
    "The harbour town of Kelsey grew around a fishing pier built by the first settlers.",
    "Every spring the council repaired the sea wall after the winter storms had cracked it.",
    "Merchants sold salted cod, rope and lamp oil from wooden stalls along the quay.",
    "A lighthouse on the northern cliff guided the trawlers home through the fog.",
    "The schoolhouse doubled as a chapel on Sundays until a stone church was finished.",
    "Children learned to mend nets before they could read, according to the town records.",
    "In dry summers the well on Mill Street ran low and water was carried up from the river.",
    "The railway reached Kelsey late, and with it came visitors who rented rooms by the week.",
    "Painters admired the grey light over the bay and sold their canvases in the city.",
    "A small museum now keeps the logbooks of the old harbour master.",
]
ANSWER_SENTENCE = "At the summer fair a stranger played (saxophone and the violin) for the crowd."
ANSWER = "saxophone and the violin"


def make_examples(rows: list[dict]) -> pd.DataFrame:
    """An examples frame (docs/CONTRACTS.md) from dicts with id, question, context and optional answer."""
    records = []
    for row in rows:
        answer = row.get("answer")
        answers = [] if answer is None else [{"text": answer, "answer_start": row["context"].index(answer)}]
        records.append({
            "example_id": row["id"], "question": row["question"], "context": row["context"],
            "answers": answers, "is_impossible": row.get("is_impossible", False), "title": "hand-made",
        })
    return pd.DataFrame(records)


def harbour_context(sentences_before: int, sentences_after: int) -> str:
    filler = [HARBOUR_SENTENCES[i % len(HARBOUR_SENTENCES)] for i in range(sentences_before + sentences_after)]
    return " ".join(filler[:sentences_before] + [ANSWER_SENTENCE] + filler[sentences_before:])


class MarkedSpanQA(tf.BertForQuestionAnswering):
    """A tiny BERT QA model whose logits we control.

    start logits = noise * (the tiny model's own logits) + boost where the input is ``start_id``
    (+ cls_boost on the first token); end logits likewise with ``end_id``. With noise > 0 the real
    forward pass (padding, attention mask, token types) still shapes the output.
    """

    def __init__(self, config, *, start_id: int, end_id: int, boost: float = 20.0, noise: float = 1.0,
                 cls_boost: float = 0.0):
        super().__init__(config)
        self.marks = dict(start_id=start_id, end_id=end_id, boost=boost, noise=noise, cls_boost=cls_boost)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        output = super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids, **kwargs)
        marks = self.marks
        first = torch.zeros_like(output.start_logits)
        first[:, 0] = marks["cls_boost"]
        output.start_logits = (marks["noise"] * output.start_logits
                               + marks["boost"] * (input_ids == marks["start_id"]) + first)
        output.end_logits = marks["noise"] * output.end_logits + marks["boost"] * (input_ids == marks["end_id"]) + first
        return output


def marked_handle(tokenizer, **marks):
    config = tf.BertConfig(vocab_size=30522, **TINY_SIZES)
    torch.manual_seed(0)
    ids = tokenizer.convert_tokens_to_ids(["saxophone", "violin"])
    model = MarkedSpanQA(config, start_id=ids[0], end_id=ids[1], **marks)
    redraw_parameters(model)
    return from_model(model.eval(), tokenizer, name="marked-span", device="cpu")


QUESTION = "What did the stranger play at the summer fair?"


# ---- windows ------------------------------------------------------------------------------------------------
def test_long_context_windows_cover_it_and_offsets_point_at_the_token_text(tokenizer):
    context = harbour_context(62, 62)
    assert len(context) >= 10_000
    examples = make_examples([{"id": "long", "question": QUESTION, "context": context, "answer": ANSWER}])
    windows = encode_windows(tokenizer, examples, max_length=MAX_LENGTH, doc_stride=STRIDE)
    assert len(windows) > 10 and all(len(window) <= MAX_LENGTH for window in windows)
    assert [window.window_index for window in windows] == list(range(len(windows)))
    assert {window.n_windows for window in windows} == {len(windows)}
    covered = set()
    for window, following in zip(windows, windows[1:] + [None]):
        positions = window.context_positions
        for position in positions:
            start, end = window.offsets[position]
            piece = tokenizer.convert_ids_to_tokens(window.input_ids[position]).removeprefix("##")
            assert context[start:end].lower() == piece
            covered.update(range(start, end))
        if following is not None:  # consecutive windows share exactly doc_stride context tokens
            shared = set(map(tuple, (window.offsets[p] for p in positions))) & set(
                map(tuple, (following.offsets[p] for p in following.context_positions)))
            assert len(shared) == STRIDE
    assert covered == {i for i, character in enumerate(context) if not character.isspace()}


def test_windows_without_token_type_ids_store_none_and_shift_question_offsets():
    from transformers import AutoTokenizer

    from bert_insight.models.offline import minilm_base_dir

    no_types = AutoTokenizer.from_pretrained(minilm_base_dir(), model_input_names=["input_ids", "attention_mask"])
    question = "   Which instrument?"
    examples = make_examples([{"id": "q", "question": question, "context": "A violin and a drum.", "answer": "violin"}])
    (window,) = encode_windows(no_types, examples, max_length=MAX_LENGTH, doc_stride=STRIDE)
    assert window.token_type_ids is None
    question_pieces = [(window.offsets[i], window.input_ids[i]) for i, s in enumerate(window.sequence_ids) if s == 0]
    assert [question[start:end].lower() for (start, end), _ in question_pieces] == ["which", "instrument", "?"]


def byte_level_tokenizer(texts: list[str]):
    """A RoBERTa-style byte-level BPE tokenizer trained on ``texts`` (no hub download)."""
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=600, min_frequency=1, special_tokens=specials)
    bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")),
                                           trim_offsets=True, add_prefix_space=False)
    return tf.RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                   sep_token="</s>", cls_token="<s>", pad_token="<pad>", unk_token="<unk>",
                                   mask_token="<mask>")


def family_handle(family: str, tokenizer):
    if family == "roberta":
        tokenizer = byte_level_tokenizer(HARBOUR_SENTENCES + [ANSWER_SENTENCE, QUESTION])
    elif family == "distilbert":
        from transformers import AutoTokenizer

        from bert_insight.models.offline import minilm_base_dir

        tokenizer = AutoTokenizer.from_pretrained(minilm_base_dir(), model_input_names=["input_ids", "attention_mask"])
    return from_model(tiny_qa_model(family), tokenizer, name=f"tiny-{family}", device="cpu")


def assorted_examples() -> pd.DataFrame:
    return make_examples([
        {"id": "long", "question": QUESTION, "context": harbour_context(9, 7), "answer": ANSWER},
        {"id": "short", "question": "Who guided the trawlers?", "context": HARBOUR_SENTENCES[3],
         "answer": "A lighthouse"},
        {"id": "medium", "question": " Where was water carried from?", "context": " ".join(HARBOUR_SENTENCES[4:8]),
         "answer": "the river"},
        {"id": "no-gold", "question": "What did painters admire?", "context": HARBOUR_SENTENCES[8]},
    ])


# ---- predictions ------------------------------------------------------------------------------------------
def test_span_deep_in_a_10000_character_context_maps_back_to_its_characters(tokenizer):
    handle = marked_handle(tokenizer)
    context = harbour_context(78, 50)
    assert len(context) >= 10_000
    examples = make_examples([{"id": "long", "question": QUESTION, "context": context, "answer": ANSWER}])
    (row,) = predict(handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False).to_dict("records")
    assert row["n_windows"] > 10 and row["window_index"] > 5
    assert (row["pred_start"], row["pred_end"]) == (context.index(ANSWER), context.index(ANSWER) + len(ANSWER))
    assert row["pred_text"] == ANSWER and row["exact_match"] == 1.0 and row["f1"] == 1.0


def test_answer_only_in_the_third_window_is_found(tokenizer):
    handle = marked_handle(tokenizer)
    context = harbour_context(13, 12)
    examples = make_examples([{"id": "third", "question": QUESTION, "context": context, "answer": ANSWER}])
    windows = encode_windows(tokenizer, examples, max_length=MAX_LENGTH, doc_stride=STRIDE)
    saxophone = tokenizer.convert_tokens_to_ids("saxophone")
    holding = [window.window_index for window in windows if saxophone in window.input_ids]
    assert holding == [2] and len(windows) >= 4  # precondition: the answer lies in window 2 only
    (row,) = predict(handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False).to_dict("records")
    assert row["window_index"] == 2 and row["pred_text"] == ANSWER
    window = windows[2]
    assert window.input_ids[row["start_index"]] == saxophone
    assert window.char_span(row["start_index"], row["end_index"]) == (row["pred_start"], row["pred_end"])


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "albert", "electra"])
def test_batched_predictions_agree_with_one_by_one(family, tokenizer):
    handle = family_handle(family, tokenizer)
    examples = assorted_examples()
    batched = predict(handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, batch_size=8, progress=False)
    single = predict(handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, batch_size=1, progress=False)
    assert batched["n_windows"].max() > 1  # padding really happens in the batched run
    for column in ("pred_text", "pred_start", "pred_end", "start_index", "end_index", "window_index"):
        assert batched[column].tolist() == single[column].tolist(), column
    assert batched["score"].to_numpy() == pytest.approx(single["score"].to_numpy(), abs=1e-4)
    assert batched["confidence"].to_numpy() == pytest.approx(single["confidence"].to_numpy(), rel=1e-4)


def brute_force_best(handle, windows, max_answer_length):
    """Textbook search: every window run alone, every (start, end) pair checked in Python loops."""
    best = (-math.inf, None, None, None, None)
    for window in windows:
        with torch.no_grad():
            output = handle.model(**handle.batch_inputs([window]))
        start, end = output.start_logits[0].tolist(), output.end_logits[0].tolist()
        for i in window.context_positions:
            for j in window.context_positions:
                if i <= j <= i + max_answer_length - 1 and start[i] + end[j] > best[0]:
                    best = (start[i] + end[j], window, i, j, (start, end))
    return best


def test_best_span_and_confidence_match_brute_force_over_all_spans(tiny_handle):
    examples = assorted_examples()
    predictions = predict(tiny_handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, max_answer_length=5,
                          progress=False)
    windows = encode_windows(tiny_handle.tokenizer, examples, max_length=MAX_LENGTH, doc_stride=STRIDE)
    for row in predictions.to_dict("records"):
        own = [window for window in windows if window.example_id == row["example_id"]]
        score, window, i, j, (start, end) = brute_force_best(tiny_handle, own, 5)
        assert (row["window_index"], row["start_index"], row["end_index"]) == (window.window_index, i, j)
        assert row["score"] == pytest.approx(score, abs=1e-5)
        # joint softmax over every (start, end) pair of the window, no factorisation assumed
        pair_scores = torch.tensor(start)[:, None] + torch.tensor(end)[None, :]
        joint = torch.exp(pair_scores[i, j] - torch.logsumexp(pair_scores.flatten(), 0))
        assert row["confidence"] == pytest.approx(float(joint), rel=1e-5)
        assert 0.0 < row["confidence"] < 1.0


def test_null_answer_wins_by_the_squad2_rule_and_scores_by_it(tokenizer):
    handle = marked_handle(tokenizer, boost=3.0, noise=0.0, cls_boost=10.0)
    context = "At the summer fair a stranger played (saxophone and the violin) for the crowd."
    examples = make_examples([
        {"id": "impossible", "question": "What did the mayor sing?", "context": context, "is_impossible": True},
        {"id": "answerable", "question": QUESTION, "context": context, "answer": ANSWER},
    ])
    null = predict(handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False).set_index("example_id")
    # null score 10 + 10 = 20 beats the best span 3 + 3 = 6
    assert null["pred_text"].tolist() == ["", ""] and null["pred_start"].tolist() == [-1, -1]
    assert null["score"].tolist() == [20.0, 20.0]
    assert null.loc["impossible", ["exact_match", "f1"]].tolist() == [1.0, 1.0]
    assert null.loc["answerable", ["exact_match", "f1"]].tolist() == [0.0, 0.0]
    # every other token has logit 0, so the null probability has a closed form
    window = encode_windows(tokenizer, examples, max_length=MAX_LENGTH, doc_stride=STRIDE)[0]
    p_first = math.exp(10) / (math.exp(10) + math.exp(3) + len(window) - 2)
    assert null.loc["impossible", "confidence"] == pytest.approx(p_first ** 2, rel=1e-5)

    # 20 > 6 + 13 still prefers null; 20 > 6 + 15 does not
    assert predict(handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, null_threshold=13.0, progress=False)["pred_text"].eq("").all()
    spans = predict(handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, null_threshold=15.0, progress=False).set_index("example_id")
    assert spans["pred_text"].tolist() == [ANSWER, ANSWER] and spans["score"].tolist() == [6.0, 6.0]
    assert spans.loc["impossible", "exact_match"] == 0.0 and spans.loc["answerable", "exact_match"] == 1.0

    # SQuAD 1.1 mode (nothing impossible, no threshold): the null score never competes
    answerable = examples.iloc[[1]]
    assert predict(handle, answerable, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)["pred_text"].tolist() == [ANSWER]


def test_examples_without_gold_answers_score_nan_in_squad11_mode(tiny_handle):
    predictions = predict(tiny_handle, assorted_examples(), max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
    scores = predictions.set_index("example_id")
    assert math.isnan(scores.loc["no-gold", "exact_match"]) and math.isnan(scores.loc["no-gold", "f1"])
    for row in predictions.to_dict("records"):
        context = assorted_examples().set_index("example_id").loc[row["example_id"], "context"]
        assert row["pred_text"] == context[row["pred_start"]:row["pred_end"]]
    assert predictions.attrs["model"] == "tiny-bert" and predictions.attrs["params"]["max_length"] == MAX_LENGTH


# ---- scoring ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prediction, golds, squad2, expected",
    [
        ("the Eiffel Tower", ["Eiffel Tower"], False, (1.0, 1.0)),
        ("Eiffel", ["the Eiffel Tower", "Eiffel"], False, (1.0, 1.0)),  # max over gold answers
        ("tower in Paris", ["Eiffel Tower"], False, (0.0, 0.4)),  # 1 shared of 3 and 2 tokens: 2*(1/3*1/2)/(5/6)
        ("", ["Eiffel Tower"], False, (0.0, 0.0)),
        ("anything", [], False, (math.nan, math.nan)),
        ("", [], True, (1.0, 1.0)),  # SQuAD 2.0: no answer, predicted none
        ("Paris", [], True, (0.0, 0.0)),
        ("", ["Paris"], True, (0.0, 0.0)),
        ("the", [], True, (1.0, 1.0)),  # normalises to nothing, as the v2.0 script counts it
    ],
)
def test_score_prediction_hand_worked(prediction, golds, squad2, expected):
    result = score_prediction(prediction, golds, squad2=squad2)
    assert result == pytest.approx(expected, nan_ok=True)


def test_evaluate_percent_overall_and_by_question_type():
    examples = make_examples([
        {"id": "1", "question": "What is the tower?", "context": "The Eiffel Tower is tall.", "answer": "The Eiffel Tower"},
        {"id": "2", "question": "what city holds it?", "context": "It stands in Paris, France.", "answer": "Paris"},
        {"id": "3", "question": "How many legs does it have?", "context": "It has four legs.", "answer": "four"},
        {"id": "4", "question": "Who built it?", "context": "Gustave Eiffel built it.", "answer": "Gustave Eiffel"},
    ])
    predictions = pd.DataFrame({"example_id": ["1", "2", "3", "4"],
                                "pred_text": ["Eiffel Tower", "Paris, France", "four legs", "Eiffel"]})
    # EM: 1, 0, 0, 0. F1: 1, 2/3, 2/3, 2/3.
    result = evaluate(predictions, examples=examples).set_index("group")
    assert result.index.tolist() == ["all", "what", "who", "how many"]
    assert result.loc["all", "n"] == 4
    assert result.loc["all", "exact_match"] == pytest.approx(25.0)
    assert result.loc["all", "f1"] == pytest.approx(100 * (1 + 3 * 2 / 3) / 4)
    assert result.loc["what", ["exact_match", "f1"]].tolist() == pytest.approx([50.0, 100 * (1 + 2 / 3) / 2])
    assert result.loc["who", "f1"] == pytest.approx(100 * 2 / 3)
    with pytest.raises(BertInsightInputError, match="'4'"):
        evaluate(predictions.iloc[:3], examples=examples)


# ---- analysis windows -------------------------------------------------------------------------------------
def test_analysis_windows_hold_the_predicted_span_and_reproduce_its_score(tiny_handle):
    examples = assorted_examples()
    predictions = predict(tiny_handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
    chosen = analysis_windows(tiny_handle, examples, predictions=predictions)
    for (window, start_index, end_index), row in zip(chosen, predictions.to_dict("records")):
        assert window.example_id == row["example_id"] and window.window_index == row["window_index"]
        assert window.char_span(start_index, end_index) == (row["pred_start"], row["pred_end"])
        inputs = tiny_handle.batch_inputs([window])
        assert inputs["input_ids"].shape == (1, len(window)) and bool(inputs["attention_mask"].all())
        with torch.no_grad():
            output = tiny_handle.model(**inputs)
        score = output.start_logits[0, start_index] + output.end_logits[0, end_index]
        assert float(score) == pytest.approx(row["score"], abs=1e-5)
    with pytest.raises(BertInsightInputError, match="predictions were made with max_length"):
        analysis_windows(tiny_handle, examples.iloc[:1], predictions=predictions, max_length=64, doc_stride=16)
    # Without explicit settings the predictions' own are used.
    again = analysis_windows(tiny_handle, examples, predictions=predictions)
    assert [(w.example_id, w.window_index, s, e) for w, s, e in again] == \
        [(w.example_id, w.window_index, s, e) for w, s, e in chosen]


# ---- input errors -----------------------------------------------------------------------------------------
def test_bad_inputs_raise_input_errors_that_say_what_to_do(tiny_handle):
    good = assorted_examples()
    empty_question = good.copy()
    empty_question.loc[1, "question"] = "  "
    with pytest.raises(BertInsightInputError, match="'short'.*question"):
        predict(tiny_handle, empty_question, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
    empty_context = good.copy()
    empty_context.loc[2, "context"] = ""
    with pytest.raises(BertInsightInputError, match="'medium'.*context"):
        encode_windows(tiny_handle.tokenizer, empty_context, max_length=MAX_LENGTH, doc_stride=STRIDE)
    long_question = good.copy()
    long_question.loc[0, "question"] = "Which " * 120 + "one?"
    with pytest.raises(BertInsightInputError, match="'long'.*Raise max_length"):
        predict(tiny_handle, long_question, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
    with pytest.raises(BertInsightInputError, match="max_length=128"):
        predict(tiny_handle, good, progress=False)  # default 384 exceeds the tiny model's 128 positions
    with pytest.raises(BertInsightInputError, match="doc_stride"):
        encode_windows(tiny_handle.tokenizer, good, max_length=64, doc_stride=64)
    with pytest.raises(BertInsightInputError, match="DataFrame"):
        predict(tiny_handle, [{"question": "q", "context": "c"}], progress=False)


# ---- real data --------------------------------------------------------------------------------------------
def squad_dev_examples(limit: int) -> pd.DataFrame:
    import json
    import zipfile

    with zipfile.ZipFile(SHARED_DATA / "squad_v1.1" / "dev-v1.1.json.zip") as archive:
        name = next(n for n in archive.namelist() if n.endswith(".json"))
        articles = json.loads(archive.read(name))["data"]
    records = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                records.append({"example_id": qa["id"], "question": qa["question"], "context": paragraph["context"],
                                "answers": qa["answers"], "is_impossible": False, "title": article["title"]})
    frame = pd.DataFrame(records)
    # the longest contexts first: they need several windows
    return frame.loc[frame["context"].str.len().sort_values(ascending=False).index].head(limit).reset_index(drop=True)


@pytest.mark.shared
def test_every_squad_gold_answer_lies_inside_some_window(tokenizer):
    examples = squad_dev_examples(40)
    windows = encode_windows(tokenizer, examples, max_length=MAX_LENGTH, doc_stride=STRIDE)
    assert max(window.n_windows for window in windows) > 3
    for example in examples.to_dict("records"):
        answer = example["answers"][0]
        start, end = answer["answer_start"], answer["answer_start"] + len(answer["text"])
        own = [window for window in windows if window.example_id == example["example_id"]]
        holding = [
            window for window in own
            if min(window.offsets[p][0] for p in window.context_positions) <= start
            and max(window.offsets[p][1] for p in window.context_positions) >= end
        ]
        assert holding, example["example_id"]


@pytest.mark.slow
def test_default_model_exact_match_on_held_out_questions(default_handle):
    from bert_insight.data import load_squad

    examples = load_squad(split="heldout").head(20)
    predictions = predict(default_handle, examples, progress=False)
    assert evaluate(predictions, examples=examples).set_index("group").loc["all", "exact_match"] > 30


def test_squad2_bundled_slice_scores_every_empty_prediction_by_impossibility(tiny_handle):
    from bert_insight.data import load_squad

    examples = load_squad(version="2.0", limit=24)
    assert 0 < examples["is_impossible"].sum() < len(examples)
    # a hugely negative threshold makes the null answer win everywhere
    predictions = predict(tiny_handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, null_threshold=-1e9,
                          progress=False)
    assert predictions["pred_text"].eq("").all() and predictions["start_index"].eq(0).all()
    expected = 100 * examples["is_impossible"].mean()
    overall = evaluate(predictions, examples=examples).set_index("group").loc["all"]
    assert overall["exact_match"] == pytest.approx(expected) and overall["f1"] == pytest.approx(expected)
    assert overall["n"] == len(examples)


# ---- faults a hostile user found ---------------------------------------------------------------------
def test_every_field_of_a_prediction_is_checked_against_its_window(tiny_handle):
    examples = assorted_examples().head(2)
    predictions = predict(tiny_handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
    width = len(analysis_windows(tiny_handle, examples.head(1), predictions=predictions)[0][0])
    null = {"pred_text": "", "pred_start": -1, "pred_end": -1, "start_index": 0, "end_index": 0}
    broken = [
        ({**null, "start_index": -1, "end_index": -1}, "null answer"),  # -1 would attribute the last token
        ({**null, "end_index": width + 5}, "null answer"),
        ({"start_index": width + 5, "end_index": width + 6}, "context tokens"),  # past the window
        ({"start_index": 0, "end_index": 0}, "context tokens"),  # CLS is no answer token of a real span
        ({"window_index": 7}, "names no window"),
        ({"start_index": "two"}, "whole numbers"),
    ]
    for change, says in broken:
        bad = predictions.copy()
        bad["start_index"] = bad["start_index"].astype(object)
        for column, value in change.items():
            bad.at[0, column] = value
        with pytest.raises(BertInsightInputError, match=says):
            analysis_windows(tiny_handle, examples, predictions=bad)
    # A consistent null prediction is accepted (SQuAD 2.0 "no answer").
    valid_null = predictions.copy()
    for column, value in null.items():
        valid_null.at[0, column] = value
    assert analysis_windows(tiny_handle, examples, predictions=valid_null)[0][1:] == (0, 0)


def test_evaluate_refuses_several_predictions_for_one_example(tiny_handle):
    examples = assorted_examples().head(3)
    predictions = predict(tiny_handle, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
    doubled = pd.concat([predictions, predictions.iloc[[1]].assign(pred_text="something else")])
    with pytest.raises(BertInsightInputError, match="several rows for 1 example"):
        evaluate(doubled, examples=examples)
    with pytest.raises(BertInsightInputError, match="several rows"):
        analysis_windows(tiny_handle, examples, predictions=doubled)
    with pytest.warns(DeprecationWarning, match="examples="):  # the old positional call still works
        old = evaluate(predictions, examples)
    pd.testing.assert_frame_equal(old, evaluate(predictions, examples=examples))


def test_every_verb_refuses_an_empty_examples_frame_the_same_way(tiny_handle):
    from bert_insight import hidden_states, layer_ig, tokens

    empty = assorted_examples().head(0)
    for verb in (predict, tokens, hidden_states, layer_ig, analysis_windows):
        with pytest.raises(BertInsightInputError, match="examples is empty"):
            verb(tiny_handle, empty)
    with pytest.raises(BertInsightInputError, match="examples is empty"):
        evaluate(pd.DataFrame({"example_id": [], "pred_text": []}), examples=empty)


# ---- SQuAD 2.0: the null threshold -------------------------------------------------------------------
def test_tuned_threshold_is_the_best_of_the_candidates_predict_would_score(tiny_handle):
    from bert_insight.data import load_squad
    from bert_insight.qa import tune_null_threshold

    examples = load_squad(version="2.0", limit=30)
    candidates = [-3.0, -0.5, 0.0, 0.5, 3.0]
    best, curve = tune_null_threshold(tiny_handle, examples, candidates=candidates, max_length=MAX_LENGTH,
                                      doc_stride=STRIDE, progress=False)
    for value in candidates:  # the same numbers as predicting at each threshold and scoring
        predictions = predict(tiny_handle, examples, null_threshold=value, max_length=MAX_LENGTH, doc_stride=STRIDE,
                              progress=False)
        scores = evaluate(predictions, examples=examples).set_index("group").loc["all"]
        row = curve.set_index("null_threshold").loc[value]
        assert row["f1"] == pytest.approx(scores["f1"]) and row["exact_match"] == pytest.approx(scores["exact_match"])
        assert row["no_answer_rate"] == pytest.approx(predictions["pred_text"].eq("").mean())
    assert curve.set_index("null_threshold").loc[best, "f1"] == curve["f1"].max()


def test_predict_uses_the_cards_threshold_and_evaluate_splits_answerable(tokenizer):
    from dataclasses import replace

    from bert_insight.data import load_squad

    examples = load_squad(version="2.0", limit=30)
    handle = from_model(tiny_qa_model("bert"), tokenizer, name="tiny", device="cpu")
    tuned = replace(handle, card={"null_threshold": -2.5})
    by_card = predict(tuned, examples, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
    explicit = predict(handle, examples, null_threshold=-2.5, max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
    pd.testing.assert_frame_equal(by_card, explicit)
    assert by_card.attrs["params"]["null_threshold"] == -2.5
    scores = evaluate(by_card, examples=examples).set_index("group")
    answerable = ~examples["is_impossible"]
    assert scores.loc["has_answer", "n"] == answerable.sum() and scores.loc["no_answer", "n"] == (~answerable).sum()
    overall = (scores.loc["has_answer", "f1"] * answerable.sum() + scores.loc["no_answer", "f1"] * (~answerable).sum())
    assert overall / len(examples) == pytest.approx(scores.loc["all", "f1"])
    with pytest.raises(BertInsightInputError, match="null_threshold="):
        predict(handle, examples, null_threshold="high", max_length=MAX_LENGTH, doc_stride=STRIDE, progress=False)
