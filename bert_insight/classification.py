"""Sentence(-pair) classification: predict GLUE-style labels or scores, and score them.

``classify`` runs a :class:`~bert_insight.models.handle.ClassifierHandle` on an examples frame
(``bert_insight.data.glue`` layout); ``evaluate_classifier`` adds the task's GLUE metrics: accuracy
and F1 (of class 1) for MRPC and QQP, Pearson and Spearman correlation for STS-B, accuracy otherwise.
All metrics are in percent, as GLUE and the papers report them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from .data.glue import GlueTask, glue_task, validate_sentence_examples
from .errors import BertInsightInputError
from .frames import CLASSIFIER_PREDICTION_COLUMNS, CLASSIFIER_SCORE_COLUMNS, frame_attrs
from .windows import DEFAULT_SENTENCE_MAX_LENGTH, encode_sentences, length_sorted_batches

if TYPE_CHECKING:
    from .models.handle import ClassifierHandle

#: Metrics of tasks outside GLUE: accuracy for classifiers, correlations for regression heads.
OTHER_TASK_METRICS = {False: ("accuracy",), True: ("pearson", "spearman")}


def require_classifier(handle, verb: str) -> ClassifierHandle:
    """``handle`` if it is a ClassifierHandle, else one BertInsightInputError saying what to load."""
    from .models.handle import ClassifierHandle

    if not isinstance(handle, ClassifierHandle):
        raise BertInsightInputError(
            f"{verb} needs a sentence classifier handle (got {type(handle).__name__}); load one with "
            "bert_insight.load_classifier(task='mrpc') or fine-tune one with bert_insight.finetune_classifier.")
    return handle


def handle_task(handle: ClassifierHandle, examples=None) -> GlueTask:
    """The :class:`GlueTask` of the handle's task; for a task outside GLUE, one made from the handle's
    labels (pairs when ``examples`` have text_b strings)."""
    try:
        return glue_task(handle.task)
    except BertInsightInputError:
        paired = (isinstance(examples, pd.DataFrame) and "text_b" in examples.columns
                  and bool(examples["text_b"].map(lambda text: isinstance(text, str)).any()))
        labels = () if handle.is_regression else (handle.label_names or tuple(map(str, range(handle.num_labels))))
        return GlueTask(handle.task, "", labels, paired, OTHER_TASK_METRICS[handle.is_regression], (), "")


def validated_task_examples(handle: ClassifierHandle, examples, *, require_labels: bool = True) -> pd.DataFrame:
    """``examples`` checked against the handle's task (labels in its label set, pairs or single)."""
    return validate_sentence_examples(examples, task=handle_task(handle, examples), allow_empty=False,
                                      require_labels=require_labels)


def class_logits(handle: ClassifierHandle, examples: pd.DataFrame, *, max_length: int, batch_size: int,
                 progress: bool) -> torch.Tensor:
    """(n_examples, num_labels) float32 logits on the CPU, in example order (examples validated)."""
    from tqdm.auto import tqdm

    handle.check_fits(max_length)
    windows = encode_sentences(handle.tokenizer, examples, max_length=max_length)
    batches = length_sorted_batches(windows, batch_size)
    logits = torch.empty((len(windows), handle.num_labels), dtype=torch.float32)
    with torch.inference_mode():
        for batch in tqdm(batches, desc="classify", unit="batch", disable=not progress):
            output = handle.model(**handle.batch_inputs([windows[i] for i in batch]))
            logits[batch] = output.logits.float().cpu()
    return logits


def classify(
    handle: ClassifierHandle,
    examples: pd.DataFrame,
    *,
    max_length: int = DEFAULT_SENTENCE_MAX_LENGTH,
    batch_size: int = 32,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict the label (or STS-B score) of every example.

    Returns one row per example with columns example_id, task, label (the gold label or score; NaN
    when the frame has none), prediction (class id, or the predicted score for a regression head),
    correct (prediction == label; NaN for regression or without gold), and one ``prob_<label name>``
    column per class (softmax probabilities, summing to 1 per row; none for regression). ``attrs``
    carry the model name, fingerprint and parameters.
    """
    handle = require_classifier(handle, "classify")
    examples = validated_task_examples(handle, examples, require_labels=False)
    logits = class_logits(handle, examples, max_length=max_length, batch_size=batch_size, progress=progress)
    labels = pd.to_numeric(examples["label"], errors="coerce").to_numpy(dtype=float)
    frame = pd.DataFrame({"example_id": examples["example_id"].astype(str).to_numpy(), "task": handle.task,
                          "label": labels})
    if handle.is_regression:
        frame["prediction"] = logits[:, 0].numpy().astype(float)
        frame["correct"] = np.nan
    else:
        probabilities = torch.softmax(logits, dim=-1).numpy()
        frame["prediction"] = probabilities.argmax(axis=1).astype(int)
        frame["correct"] = np.where(np.isnan(labels), np.nan, (frame["prediction"].to_numpy() == labels).astype(float))
        for index, name in enumerate(handle.label_names or [str(i) for i in range(handle.num_labels)]):
            frame[f"prob_{name}"] = probabilities[:, index].astype(float)
    frame = frame[list(CLASSIFIER_PREDICTION_COLUMNS) + [c for c in frame.columns if c.startswith("prob_")]]
    frame.attrs = frame_attrs(handle, "classify", {"max_length": max_length, "batch_size": batch_size},
                              task=handle.task)
    return frame


def score_predictions(predictions: pd.DataFrame, metrics: tuple[str, ...]) -> dict[str, float]:
    """``metrics`` (accuracy, f1, pearson, spearman; in percent) of a :func:`classify` frame."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score

    gold = predictions["label"].to_numpy(dtype=float)
    predicted = predictions["prediction"].to_numpy(dtype=float)
    values = {}
    for metric in metrics:
        if metric == "accuracy":
            values[metric] = 100.0 * accuracy_score(gold.astype(int), predicted.astype(int))
        elif metric == "f1":
            values[metric] = 100.0 * f1_score(gold.astype(int), predicted.astype(int), zero_division=0.0)
        elif metric in ("pearson", "spearman"):
            # A constant prediction has no correlation; report 0, not NaN, as GLUE's scorer does.
            if np.ptp(predicted) == 0 or np.ptp(gold) == 0:
                values[metric] = 0.0
            else:
                statistic = pearsonr if metric == "pearson" else spearmanr
                values[metric] = 100.0 * float(statistic(gold, predicted)[0])
        else:
            raise BertInsightInputError(f"Unknown metric {metric!r}; use accuracy, f1, pearson or spearman.")
    return values


def evaluate_classifier(
    handle: ClassifierHandle,
    examples: pd.DataFrame,
    *,
    max_length: int = DEFAULT_SENTENCE_MAX_LENGTH,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score ``handle`` on labelled ``examples``: returns ``(scores, predictions)``.

    ``scores`` has one row per metric with columns task, metric (accuracy and f1 for MRPC/QQP,
    pearson and spearman for STS-B, accuracy otherwise), value (percent) and n_examples;
    ``predictions`` is :func:`classify`'s frame.
    """
    predictions = classify(handle, examples, max_length=max_length, batch_size=batch_size, progress=progress)
    unlabelled = predictions["label"].isna()
    if unlabelled.any():
        raise BertInsightInputError(
            f"{int(unlabelled.sum())} example(s) have no label (first: {predictions.loc[unlabelled, 'example_id'].iloc[0]!r}); "
            "evaluate_classifier needs gold labels. Use classify for unlabelled data.")
    values = score_predictions(predictions, handle_task(handle).metrics)
    scores = pd.DataFrame([{"task": handle.task, "metric": metric, "value": value, "n_examples": len(predictions)}
                           for metric, value in values.items()], columns=list(CLASSIFIER_SCORE_COLUMNS))
    scores.attrs = dict(predictions.attrs, function="evaluate_classifier")
    return scores, predictions
