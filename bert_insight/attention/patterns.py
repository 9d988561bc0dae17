"""Classes of self-attention maps (Kovaleva et al. 2019, section 4.1, Figures 1-2): vertical, diagonal,
vertical+diagonal, block and heterogeneous, and the share of heads in each class per task.

The paper hand-labelled about 400 maps and trained a CNN on them; neither was released. This module
ships both, rebuilt on the offline MiniLM models: a labelled set of about 1,360 maps (``data/bundled/
attention_patterns``, drawn by ``scripts/build_attention_patterns.py`` from the QA default, the five
GLUE classifiers and the pre-trained MiniLM, every one looked at and labelled by eye) and a small CNN
trained on three quarters of it (``scripts/train_attention_patterns.py``; its held-out scores are in
``classifier.json``). The classes, as the audit labelled them (what dominates the map by mass):

- **vertical**: one or a few full-height stripes carry about half of the attention or more ([CLS],
  [SEP], often a full stop or comma; the paper says "mainly" special tokens), the rest is diffuse;
- **diagonal**: a line on or beside the main diagonal carries it: the previous, same or next token,
  or a soft band a few tokens wide;
- **vertical_diagonal**: a clear stripe (about 0.3 of the attention or more) and a clear diagonal;
- **block**: attention spread inside squares on the diagonal and little across them: the two
  segments of a sentence pair or question + passage, or the sentences of a passage;
- **heterogeneous**: none of these dominates (scattered, input-specific, or diffuse).

Known limitation: on inputs of at most about 16 tokens a diagonal map with some uniform haze is
called vertical_diagonal (short diagonal heads in the labelled set are crisp, short
vertical_diagonal ones hazy); from about 20 tokens on it is not.

Inputs of the CNN (:func:`pattern_image`): the map reduced to a fixed ``size`` x ``size`` image by
:func:`downsample`, plus three channels made only from the tokens' kinds and the input length: which
key columns are [CLS]/[SEP], which (query, key) pairs lie inside one segment, and where the band of
offsets -1..+1 falls (at 32 bins a long input's band is one bin wide, a short one's several; the
convolutions cannot tell that from the map alone). The hand-made features
(:func:`pattern_features`) and the rules on them (:func:`rule_label`) gave the labels the audit started
from; :func:`feature_baseline` is a logistic regression on those features, the CNN's comparison.
"""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from ..data._files import bundled_path
from ..errors import BertInsightInputError
from ..frames import frame_attrs, require_columns
from ..models.handle import ModelHandle
from .maps import attention_inputs, iter_attention, resolve_selection
from .stats import head_columns, task_label

PATTERN_CLASSES = ("vertical", "diagonal", "vertical_diagonal", "block", "heterogeneous")
PROBABILITY_COLUMNS = tuple(f"p_{name}" for name in PATTERN_CLASSES)
CLASS_COLUMNS = ("task", "example_id", "layer", "head", "class", *PROBABILITY_COLUMNS)
PROPORTION_COLUMNS = ("task", "class", "proportion", "n_maps")
IMAGE_SIZE = 32
#: Classifier input channels: the downsampled map and :func:`context_channels`' three.
N_CHANNELS = 4
#: One letter per token kind (``maps.TOKEN_KINDS``), so the labelled set stores an input's kinds as a string.
KIND_LETTERS = {"cls": "c", "sep": "s", "punctuation": "p", "other": "o"}
SPECIAL_KINDS = ("cls", "sep")
#: Where the shipped labelled maps and classifier live.
BUNDLED_DIR = "attention_patterns"
FEATURE_NAMES = ("n_tokens", "n_segments", "to_cls", "to_sep", "to_punctuation", "top_columns", "stripes",
                 "offset_minus1", "offset_0", "offset_plus1", "band", "local", "own_segment", "other_segment",
                 "segment_contrast", "entropy", "max_weight")
#: A key column is a stripe when the queries give it at least this much attention on average (and at
#: least twice the uniform 1/T, so short inputs do not count every column).
STRIPE_SHARE = 0.05
#: Offsets |query - key| <= LOCAL_WIDTH count as local (the diagonal band of a soft diagonal).
LOCAL_WIDTH = 2


# ---- images ----------------------------------------------------------------------------------------------
@lru_cache(maxsize=512)
def _resampling(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, n) matrices from the overlap of ``size`` equal bins with ``n`` positions on one axis:
    ``query`` averages positions into bins (rows sum to 1), ``key`` sums them (columns sum to 1, so
    attention mass is kept). For n < size this repeats positions, a bin that straddles two positions
    sharing them by overlap (plain nearest-neighbour repetition would make a uniform map striped when
    size is not a multiple of n)."""
    edges = np.arange(size + 1) * (n / size)
    positions = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(edges[1:, None], positions + 1) - np.maximum(edges[:-1, None], positions),
                      0.0, None)
    query = overlap / overlap.sum(axis=1, keepdims=True)
    key = overlap / overlap.sum(axis=0, keepdims=True)
    query.setflags(write=False)
    key.setflags(write=False)
    return query, key


def _check_maps(maps: np.ndarray, what: str = "map") -> np.ndarray:
    maps = np.asarray(maps)
    if maps.ndim < 2 or maps.shape[-1] != maps.shape[-2] or maps.shape[-1] < 2:
        raise BertInsightInputError(
            f"{what} must be a square (T, T) attention map with T >= 2 (or a stack (..., T, T)); got shape "
            f"{maps.shape}. Take one from attention_maps(...)[example_id].map(layer, head).")
    return maps


def downsample(map: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """A (T, T) attention map (or a stack (..., T, T)) as a (size, size) image, for any T >= 2.

    ``image[i, j]`` is the attention the queries of row bin ``i`` give, on average, to the keys of
    column bin ``j`` (bins weighted by their overlap with each position, so T < size repeats positions).
    Rows keep summing to 1 like the map's own rows, whatever T: a uniform map becomes 1/size
    everywhere; a diagonal of a long map stays a line one bin wide.
    """
    maps = _check_maps(map)
    query, key = _resampling(maps.shape[-1], int(size))
    return query @ maps.astype(np.float64) @ key.T


def segment_ids(kinds) -> np.ndarray:
    """Each position's segment: the runs of tokens between [CLS]/[SEP] tokens are segments 0, 1, ...;
    [CLS]/[SEP] themselves are -1 (sentence pair: text_a 0, text_b 1; QA: question 0, passage 1)."""
    kinds = np.asarray(kinds)
    special = np.isin(kinds, SPECIAL_KINDS)
    starts = ~special & np.concatenate([[True], special[:-1]])
    return np.where(special, -1, np.cumsum(starts) - 1)


def context_channels(kinds, size: int = IMAGE_SIZE) -> np.ndarray:
    """Three (size, size) channels made from the tokens' kinds alone: the share of [CLS]/[SEP] keys in
    each column bin, the share of (query, key) pairs in one segment (a block-diagonal mask), and the
    share of pairs at offsets -1, 0, +1 (the diagonal band)."""
    kinds = np.asarray(kinds)
    query, _ = _resampling(len(kinds), int(size))
    special = np.isin(kinds, SPECIAL_KINDS).astype(np.float64)
    segments = segment_ids(kinds)
    same = (segments[:, None] == segments[None, :]) & (segments[:, None] >= 0)
    columns = np.broadcast_to(query @ special, (size, size))
    positions = np.arange(len(kinds))
    band = (np.abs(positions[:, None] - positions[None, :]) <= 1).astype(np.float64)
    return np.stack([columns, query @ same @ query.T, query @ band @ query.T])


def pattern_image(map: np.ndarray, kinds, size: int = IMAGE_SIZE) -> np.ndarray:
    """The classifier's input for one map or a stack (..., T, T) of maps of one input: (..., 4, size,
    size) float32, channels :func:`downsample` and :func:`context_channels`, rounded to float16 as the
    labelled set stores them (so a live map and its stored copy get the same prediction)."""
    maps = _check_maps(map)
    if len(kinds) != maps.shape[-1]:
        raise BertInsightInputError(f"kinds has {len(kinds)} entries for maps over {maps.shape[-1]} tokens; pass "
                                    "the tokens frame's kind column of the same input.")
    return stack_channels(downsample(maps, size), kinds)


def stack_channels(images: np.ndarray, kinds) -> np.ndarray:
    """Downsampled maps (..., size, size) of one input and its token kinds -> (..., 4, size, size)."""
    images = np.asarray(images, dtype=np.float16).astype(np.float32)
    context = np.broadcast_to(context_channels(kinds, images.shape[-1]).astype(np.float16).astype(np.float32),
                              (*images.shape[:-2], N_CHANNELS - 1, *images.shape[-2:]))
    return np.concatenate([images[..., None, :, :], context], axis=-3)


def encode_kinds(kinds) -> str:
    """Token kinds as one letter each (c, s, p, o), the labelled set's ``kinds`` column."""
    return "".join(KIND_LETTERS[kind] for kind in kinds)


def decode_kinds(letters: str) -> np.ndarray:
    by_letter = {letter: kind for kind, letter in KIND_LETTERS.items()}
    return np.array([by_letter[letter] for letter in letters])


# ---- features and rules -----------------------------------------------------------------------------------
def pattern_features(map: np.ndarray, kinds) -> dict[str, float]:
    """Interpretable features of one (T, T) map (query by key; ``kinds`` the tokens frame's kind column).

    All masses are means over queries of attention summed over a set of keys:
    to_cls / to_sep / to_punctuation (keys of that kind), top_columns (the three keys with the most
    attention, summed: about 1 for a vertical map), stripes (the keys that get at least
    :data:`STRIPE_SHARE` and 2/T of the attention on average, summed), offset_minus1 / offset_0 / offset_plus1
    (the previous / same / next token) and band (their sum), local (offsets up to :data:`LOCAL_WIDTH`
    either way), own_segment and other_segment (queries inside a segment, keys inside their own segment
    but not local / inside another segment), segment_contrast
    (the attention density, per key, inside the own segment over the sum of both densities: 0.5 when
    attention ignores segments, 1 when it stays inside; 0.5 for single-segment inputs), entropy (of
    each query's row over log T: 1 = uniform) and max_weight (each row's largest weight). n_tokens and
    n_segments describe the input.
    """
    weights = _check_maps(map).astype(np.float64)
    if weights.ndim != 2:
        raise BertInsightInputError(f"pattern_features takes one (T, T) map, got shape {weights.shape}.")
    kinds = np.asarray(kinds)
    n = weights.shape[0]
    if len(kinds) != n:
        raise BertInsightInputError(f"kinds has {len(kinds)} entries for a map over {n} tokens.")
    columns = weights.mean(axis=0)
    offsets = {offset: float(np.trace(weights, offset=offset)) / n
               for offset in range(-LOCAL_WIDTH, LOCAL_WIDTH + 1)}
    segments = segment_ids(kinds)
    rows, cols = np.indices((n, n))
    outside_band = np.abs(rows - cols) > LOCAL_WIDTH
    inside = segments >= 0
    own = (segments[:, None] == segments[None, :]) & inside[:, None] & outside_band
    other = (segments[:, None] != segments[None, :]) & inside[:, None] & inside[None, :]
    n_segments = int(segments.max()) + 1 if inside.any() else 0
    own_mass = other_mass = 0.0
    contrast = 0.5
    if inside.any():
        queries = weights[inside]
        own_mass = float((queries * own[inside]).sum(axis=1).mean())
        other_mass = float((queries * other[inside]).sum(axis=1).mean())
        if n_segments >= 2:
            own_density = own_mass / max(own[inside].sum(axis=1).mean(), 1.0)
            other_density = other_mass / max(other[inside].sum(axis=1).mean(), 1.0)
            total = own_density + other_density
            contrast = own_density / total if total > 0 else 0.5
    safe = np.clip(weights, 1e-12, None)
    entropy = float((-(weights * np.log(safe)).sum(axis=1)).mean() / np.log(n))
    return {
        "n_tokens": float(n), "n_segments": float(n_segments),
        "to_cls": float(columns[kinds == "cls"].sum()), "to_sep": float(columns[kinds == "sep"].sum()),
        "to_punctuation": float(columns[kinds == "punctuation"].sum()),
        "top_columns": float(np.sort(columns)[-3:].sum()),
        "stripes": float(columns[columns >= max(STRIPE_SHARE, 2.0 / n)].sum()),
        "offset_minus1": offsets[-1], "offset_0": offsets[0], "offset_plus1": offsets[1],
        "band": offsets[-1] + offsets[0] + offsets[1], "local": sum(offsets.values()),
        "own_segment": own_mass, "other_segment": other_mass,
        "segment_contrast": float(contrast), "entropy": entropy, "max_weight": float(weights.max(axis=1).mean()),
    }


#: Thresholds of :func:`rule_label` (mass shares, see :func:`pattern_features`).
RULE_THRESHOLDS = dict(structured=0.55, vertical_share=0.25, diagonal_share=0.65, block_own=0.45,
                       block_contrast=0.75)


def rule_label(features: dict[str, float]) -> str:
    """The rule-based class of a map from its :func:`pattern_features`.

    Vertical mass V = max(top_columns, stripes), diagonal mass D = local, each as its excess over a
    uniform map of the same length ((m - u) / (1 - u), u the uniform map's value), so short inputs are
    not structured by default. A map is structured when V + D >= 0.55; then D's part of that sum
    decides: below 0.25 vertical, above 0.65 diagonal, between vertical_diagonal. Otherwise a
    two-segment input whose queries keep at least 0.45 of their attention inside their own segment
    (not local), with segment_contrast >= 0.75, is block; the rest heterogeneous. On the audited set
    these rules agree with the audit on about two thirds of the maps (classifier.json, "rules").
    """
    t = RULE_THRESHOLDS
    n = int(features["n_tokens"])
    offsets = np.arange(-LOCAL_WIDTH, LOCAL_WIDTH + 1)
    uniform_local = float(np.clip(n - np.abs(offsets), 0, None).sum()) / n ** 2

    def excess(mass: float, uniform: float) -> float:
        return max(0.0, (mass - uniform) / (1.0 - uniform)) if uniform < 1 else 0.0

    vertical = max(excess(features["top_columns"], min(3 / n, 1.0)), excess(features["stripes"], 0.0))
    diagonal = excess(features["local"], uniform_local)
    structured = vertical + diagonal
    if structured >= t["structured"]:
        share = diagonal / structured
        if share < t["vertical_share"]:
            return "vertical"
        return "diagonal" if share > t["diagonal_share"] else "vertical_diagonal"
    if (features["n_segments"] >= 2 and features["own_segment"] >= t["block_own"]
            and features["segment_contrast"] >= t["block_contrast"]):
        return "block"
    return "heterogeneous"


def feature_baseline(*, seed: int = 0):
    """The comparison model: standardised :data:`FEATURE_NAMES` (n_tokens as log) -> multinomial logistic
    regression with balanced class weights (an unfitted scikit-learn pipeline; fit on a features frame)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    logged = ColumnTransformer([("log_tokens", FunctionTransformer(np.log), ["n_tokens"])],
                               remainder="passthrough")
    return make_pipeline(logged, StandardScaler(),
                         LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=seed))


# ---- the CNN --------------------------------------------------------------------------------------------
def _network(channels: int, widths: tuple[int, ...], n_classes: int, dropout: float) -> nn.Sequential:
    """3x3 convolutions with ReLU, a 2x2 max-pool after every second one, global average, linear."""
    layers: list[nn.Module] = []
    previous = channels
    for index, width in enumerate(widths):
        layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU()]
        if index % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        previous = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(previous, n_classes)]
    return nn.Sequential(*layers)


class AttentionPatternClassifier(ClassifierMixin, BaseEstimator):
    """A small CNN that sorts attention maps into :data:`PATTERN_CLASSES` (scikit-learn style).

    ``fit(images, labels)`` takes (n, 4, size, size) inputs from :func:`pattern_image` and class names;
    ``predict_proba`` returns (n, 5) probabilities in :data:`PATTERN_CLASSES` order (``classes_``).
    Eight 3x3 convolutions (``widths``; the paper's CNN had eight too) with ReLU, trained with Adam on
    class-weighted cross-entropy, half of each batch turned by 180 degrees (reversing the token order
    keeps every class). Training is deterministic on one machine for one ``seed`` and thread count
    (retraining gives bit-identical weights); keep ``weight_decay`` small (1e-3 collapsed training to
    one class in three of four cross-validation folds).
    The attention channel enters as ``sqrt(image * size)`` (1 = uniform), which spreads the faint
    structure of heterogeneous maps against the near-1 peaks of vertical ones.
    """

    def __init__(self, *, size: int = IMAGE_SIZE, widths: tuple[int, ...] = (16, 16, 24, 24, 32, 32, 48, 48),
                 epochs: int = 100, batch_size: int = 32, lr: float = 2e-3, weight_decay: float = 1e-4,
                 dropout: float = 0.1, augment: bool = True, seed: int = 0):
        self.size = size
        self.widths = widths
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.augment = augment
        self.seed = seed

    def _inputs(self, images) -> torch.Tensor:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != (N_CHANNELS, self.size, self.size):
            raise BertInsightInputError(
                f"images must be (n, {N_CHANNELS}, {self.size}, {self.size}) classifier inputs from "
                f"pattern_image(); got shape {images.shape}.")
        tensor = torch.from_numpy(images.copy())
        tensor[:, 0] = torch.sqrt(torch.clamp(tensor[:, 0], min=0) * self.size)
        return tensor

    def fit(self, images, labels) -> "AttentionPatternClassifier":
        labels = np.asarray(labels)
        unknown = sorted(set(labels.tolist()) - set(PATTERN_CLASSES))
        if unknown:
            raise BertInsightInputError(f"labels {unknown} are not pattern classes; use {list(PATTERN_CLASSES)}.")
        inputs = self._inputs(images)
        if len(inputs) != len(labels):
            raise BertInsightInputError(f"{len(inputs)} images but {len(labels)} labels; pass one label per image.")
        started = time.perf_counter()
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        self.classes_ = np.array(PATTERN_CLASSES)
        targets = torch.tensor([PATTERN_CLASSES.index(label) for label in labels])
        counts = torch.bincount(targets, minlength=len(PATTERN_CLASSES)).float()
        # Inverse-frequency weights (absent classes weigh 0): rare classes such as block still count.
        weight = torch.where(counts > 0, counts.sum() / (len(PATTERN_CLASSES) * counts.clamp(min=1)), 0.0)
        network = _network(N_CHANNELS, tuple(self.widths), len(PATTERN_CLASSES), self.dropout)
        optimiser = torch.optim.Adam(network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps = self.epochs * -(-len(inputs) // self.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=self.lr, total_steps=steps)
        loss_function = nn.CrossEntropyLoss(weight=weight)
        self.loss_history_ = []
        network.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(inputs), generator=generator)
            total = 0.0
            for start in range(0, len(inputs), self.batch_size):
                batch = order[start:start + self.batch_size]
                x = inputs[batch]
                if self.augment:
                    turn = torch.rand(len(batch), generator=generator) < 0.5
                    x = torch.where(turn[:, None, None, None], torch.flip(x, dims=(-2, -1)), x)
                loss = loss_function(network(x), targets[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
            self.loss_history_.append(total / len(inputs))
        network.eval()
        self.network_ = network
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _check_fitted(self) -> nn.Module:
        network = getattr(self, "network_", None)
        if network is None:
            raise BertInsightInputError("This AttentionPatternClassifier is not fitted; call fit(images, labels) "
                                        "or AttentionPatternClassifier.load(path).")
        return network

    def predict_proba(self, images) -> np.ndarray:
        """(n, 5) class probabilities, columns in :data:`PATTERN_CLASSES` order."""
        network = self._check_fitted()
        inputs = self._inputs(images)
        with torch.inference_mode():
            chunks = [torch.softmax(network(inputs[start:start + 512]).double(), dim=1)
                      for start in range(0, len(inputs), 512)]
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, len(PATTERN_CLASSES)))

    def predict(self, images) -> np.ndarray:
        return self.classes_[self.predict_proba(images).argmax(axis=1)]

    def save(self, path: str | os.PathLike, *, info: dict[str, Any] | None = None) -> Path:
        """Write the fitted classifier into the directory ``path``: classifier.npz (float32 weights) and
        classifier.json (constructor parameters, classes, ``info`` such as held-out scores)."""
        network = self._check_fitted()
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "classifier.npz",
                 **{name: tensor.detach().numpy() for name, tensor in network.state_dict().items()})
        params = {key: list(value) if isinstance(value, tuple) else value for key, value in self.get_params().items()}
        config = {"params": params, "classes": list(self.classes_), "info": info or {}}
        (directory / "classifier.json").write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AttentionPatternClassifier":
        """A classifier saved by :meth:`save` (a directory holding classifier.npz and classifier.json);
        its ``info_`` is the saved ``info``."""
        directory = Path(path)
        files = [directory / "classifier.json", directory / "classifier.npz"]
        missing = [str(file) for file in files if not file.is_file()]
        if missing:
            raise BertInsightInputError(
                f"No saved attention-pattern classifier at {str(directory)!r} (missing {missing}). Pass a directory "
                "written by AttentionPatternClassifier.save(), or classifier=None for the shipped one.")
        config = json.loads(files[0].read_text())
        params = config["params"]
        params["widths"] = tuple(params["widths"])
        classifier = cls(**params)
        network = _network(N_CHANNELS, classifier.widths, len(config["classes"]), classifier.dropout)
        with np.load(files[1]) as weights:
            network.load_state_dict({name: torch.from_numpy(weights[name]) for name in weights.files})
        classifier.network_ = network.eval()
        classifier.classes_ = np.array(config["classes"])
        classifier.info_ = config.get("info", {})
        return classifier


def bundled_patterns_dir() -> Path:
    """The shipped labelled maps and classifier: ``bert_insight/data/bundled/attention_patterns``."""
    return bundled_path(BUNDLED_DIR)


def load_pattern_classifier(classifier=None) -> AttentionPatternClassifier:
    """``None`` -> the shipped classifier; a directory -> :meth:`AttentionPatternClassifier.load`; a fitted
    classifier is returned as it is."""
    if isinstance(classifier, AttentionPatternClassifier):
        classifier._check_fitted()
        return classifier
    if classifier is None:
        return AttentionPatternClassifier.load(bundled_patterns_dir())
    if isinstance(classifier, (str, os.PathLike)):
        return AttentionPatternClassifier.load(classifier)
    raise BertInsightInputError(
        f"classifier must be None (the shipped one), a directory saved by AttentionPatternClassifier.save() or a "
        f"fitted AttentionPatternClassifier; got {type(classifier).__name__}.")


def _classifier_name(classifier) -> str:
    if classifier is None:
        return "bundled"
    return str(classifier) if isinstance(classifier, (str, os.PathLike)) else "in-memory"


def pack_images(images: np.ndarray) -> dict[str, np.ndarray]:
    """float16 images as two byte planes (high and low bytes) for ``np.savez_compressed``: the noisy
    low bytes no longer interleave with the regular high ones, which deflates about 9% smaller."""
    planes = np.ascontiguousarray(images, dtype="<f2").view(np.uint8).reshape(*images.shape, 2)
    return {"low": planes[..., 0], "high": planes[..., 1]}


def unpack_images(stored) -> np.ndarray:
    """The float16 images of :func:`pack_images`' planes (any mapping holding ``low`` and ``high``)."""
    planes = np.stack([stored["low"], stored["high"]], axis=-1)
    return np.ascontiguousarray(planes).view("<f2")[..., 0]


def load_labelled_patterns(directory: str | os.PathLike | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The labelled set: its table (maps.csv: provenance model, task, example_id, layer, head, n_tokens,
    kinds, the :data:`FEATURE_NAMES`, rule_label, label, audited, split) and the classifier inputs
    (n, 4, size, size) rebuilt from the stored float16 images (maps.npz, :func:`pack_images`) and each
    row's kinds."""
    directory = Path(directory) if directory is not None else bundled_patterns_dir()
    table_path, images_path = directory / "maps.csv", directory / "maps.npz"
    if not table_path.is_file() or not images_path.is_file():
        raise BertInsightInputError(f"No labelled attention maps at {str(directory)!r} (maps.csv and maps.npz); "
                                    "build them with scripts/build_attention_patterns.py.")
    table = pd.read_csv(table_path, keep_default_na=False)
    with np.load(images_path) as stored:
        images = unpack_images(stored)
    inputs = np.stack([stack_channels(image, decode_kinds(kinds)) for image, kinds in zip(images, table["kinds"])])
    return table, inputs


# ---- verbs --------------------------------------------------------------------------------------------------
def attention_classes(
    handle: ModelHandle,
    examples: pd.DataFrame,
    *,
    classifier: AttentionPatternClassifier | str | os.PathLike | None = None,
    layers="all",
    heads="all",
    predictions: pd.DataFrame | None = None,
    max_length: int | None = None,
    doc_stride: int | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """The pattern class of every (example, layer, head) map (Kovaleva et al. 2019, section 4.1).

    ``classifier``: None = the shipped CNN, a directory saved by :meth:`AttentionPatternClassifier.save`,
    or a fitted classifier. ``layers``, ``heads``, ``predictions``, ``max_length``, ``doc_stride`` select
    maps and inputs as in :func:`bert_insight.attention_maps`; the maps stream (one batch at a time).

    Returns columns task (the classifier's task, "qa", or "encoder"), example_id, layer, head, class
    (the most probable of :data:`PATTERN_CLASSES`), p_vertical, p_diagonal, p_vertical_diagonal,
    p_block, p_heterogeneous (summing to 1 per row).
    """
    model = load_pattern_classifier(classifier)
    layers, heads = resolve_selection(handle, layers, heads)
    inputs = attention_inputs(handle, examples, predictions=predictions, max_length=max_length,
                              doc_stride=doc_stride, progress=False)
    order = {window.example_id: index for index, (window, _) in enumerate(inputs)}
    pieces = []
    grid = head_columns(layers, heads)
    for window, tokens, weights in iter_attention(handle, inputs, layers=layers, heads=heads,
                                                  batch_size=batch_size, progress=progress):
        size = weights.shape[-1]
        images = pattern_image(weights.reshape(-1, size, size), tokens["kind"].to_numpy(), model.size)
        probabilities = model.predict_proba(images)
        piece = pd.DataFrame({"example_id": window.example_id, **grid,
                              "class": model.classes_[probabilities.argmax(axis=1)]})
        for name, column in zip(model.classes_, probabilities.T):
            piece[f"p_{name}"] = column
        pieces.append((order[window.example_id], piece))
    pieces.sort(key=lambda item: item[0])  # example order, not the stream's length order
    frame = pd.concat([piece for _, piece in pieces], ignore_index=True)
    frame.insert(0, "task", task_label(handle))
    frame = frame[list(CLASS_COLUMNS)]
    frame.attrs = frame_attrs(handle, "attention_classes", {
        "layers": list(layers), "heads": list(heads), "max_length": max_length, "doc_stride": doc_stride,
        "classifier": _classifier_name(classifier)})
    return frame


def class_proportions(frame: pd.DataFrame) -> pd.DataFrame:
    """Share of maps in each pattern class per task (Figure 2), from :func:`attention_classes`' frame.

    Groups by task (and by model too when the frame has a ``model`` column, e.g. several handles
    concatenated with ``.assign(model=...)``). Returns columns task, class (every one of
    :data:`PATTERN_CLASSES`, in that order, zeros included), proportion (summing to 1 per task),
    n_maps (maps of that class).
    """
    frame = require_columns(frame, ("task", "class"), what="frame", made_by="attention_classes()")
    unknown = sorted(set(frame["class"]) - set(PATTERN_CLASSES))
    if unknown:
        raise BertInsightInputError(f"class values {unknown} are not pattern classes {list(PATTERN_CLASSES)}; pass "
                                    "the frame made by attention_classes().")
    keys = [column for column in ("model", "task") if column in frame.columns]
    counts = (frame.groupby(keys, sort=False)["class"].value_counts()
              .unstack(fill_value=0).reindex(columns=list(PATTERN_CLASSES), fill_value=0))
    long = counts.stack().rename("n_maps").reset_index()
    long["proportion"] = long["n_maps"] / long.groupby(keys)["n_maps"].transform("sum")
    long["n_maps"] = long["n_maps"].astype(int)
    return long[[*keys[:-1], *PROPORTION_COLUMNS]].reset_index(drop=True)
