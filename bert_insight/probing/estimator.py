"""EdgeProbe: one edge probe as a scikit-learn style estimator on encoded targets."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from ..errors import BertInsightInputError
from .bank import ProbeSpec
from .encode import EncodedTargets
from .train import ProbeSettings, micro_f1, predict_bank, train_bank

MIXES = ("none", "scalar", "cumulative")


def probe_spec(layer: int | None, mix: str, layers: tuple[int, ...]) -> ProbeSpec:
    """The layers one probe mixes, as positions into ``layers`` (the encoded hidden-state layers)."""
    if mix not in MIXES:
        raise BertInsightInputError(f"mix={mix!r}; one of {MIXES}.")
    top = max(layers)
    if mix == "scalar":
        if layer is not None:
            raise BertInsightInputError("mix='scalar' mixes every encoded layer; leave layer=None (or use "
                                        "mix='cumulative' with layer=l for layers 0..l).")
        return ProbeSpec("mix", top, tuple(range(len(layers))))
    if layer is None or isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise BertInsightInputError(f"mix={mix!r} needs layer= one of the encoded layers {list(layers)}.")
    if layer not in layers:
        raise BertInsightInputError(f"layer={layer} was not encoded; the data hold layers {list(layers)}.")
    if mix == "none":
        return ProbeSpec("layer", int(layer), (layers.index(layer),))
    lower = [position for position, value in enumerate(layers) if value <= layer]
    if [layers[p] for p in lower] != list(range(layer + 1)):
        raise BertInsightInputError(f"a cumulative probe at layer {layer} mixes layers 0..{layer}; the data hold "
                                    f"{list(layers)}. Encode with layers='all'.")
    return ProbeSpec("cumulative", int(layer), tuple(lower))


def _check_data(X) -> EncodedTargets:
    if not isinstance(X, EncodedTargets):
        raise BertInsightInputError(f"X must be EncodedTargets (bert_insight.probing.encode_targets(handle, task)), "
                                    f"not {type(X).__name__}.")
    if len(X) == 0:
        raise BertInsightInputError(f"X holds no targets of task {X.task!r}.")
    return X


class EdgeProbe(BaseEstimator):
    """An edge probe (Tenney et al. 2019) on a frozen encoder's cached hidden states.

    ``layer`` / ``mix``: mix="none" probes hidden state ``layer`` alone; "scalar" learns softmax
    weights over every encoded layer and a scale gamma (eq. 1); "cumulative" does the same over layers
    0..``layer`` (the paper's P^(layer)). ``pooling``: "attention" (self-attentive span pooling, as jiant)
    or "mean". The other parameters are jiant's training recipe (``bert_insight.probing.train``);
    ``validation_fraction`` of the training texts is held out for early stopping.

    Fit on :class:`~bert_insight.probing.encode.EncodedTargets` (``encode_targets(handle, task)``):
    ``fit(X)`` uses ``X.labels``; ``y`` may replace them ((n_targets, n_labels) 0/1). Fitted
    attributes: ``classes_`` (label names), ``layers_`` (the hidden-state layers mixed), ``weights_``
    (their softmax weights, summing to 1), ``gamma_``, ``n_epochs_``, ``best_validation_f1_``,
    ``bank_`` (the torch module).
    """

    def __init__(self, *, layer: int | None = None, mix: str = "none", pooling: str = "attention",
                 hidden_size: int = 256, dropout: float = 0.3, lr: float = 1e-3, batch_size: int = 32,
                 max_epochs: int = 50, patience: int = 5, validation_fraction: float = 0.1, seed: int = 0,
                 device: str = "auto"):
        self.layer = layer
        self.mix = mix
        self.pooling = pooling
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.device = device

    def _settings(self) -> ProbeSettings:
        return ProbeSettings(hidden_size=self.hidden_size, dropout=self.dropout, lr=self.lr,
                             batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience,
                             pooling=self.pooling, validation_fraction=self.validation_fraction).check()

    def fit(self, X: EncodedTargets, y=None) -> "EdgeProbe":
        data = _check_data(X)
        if y is not None:
            labels = np.asarray(y)
            if labels.shape != data.labels.shape:
                raise BertInsightInputError(f"y has shape {labels.shape}; it needs {data.labels.shape} "
                                            "(targets x labels, 0/1).")
            data = EncodedTargets(data.states, data.layers, data.span1, data.span2, labels.astype(bool),
                                  data.label_names, data.targets, data.task, data.dropped, data.attrs)
        spec = probe_spec(self.layer, self.mix, data.layers)
        from ..device import resolve_device

        device = resolve_device(self.device)
        bank, history = train_bank([spec], data, settings=self._settings(), seed=self.seed, device=device)
        self.bank_ = bank
        self.spec_ = spec
        self.classes_ = np.array(data.label_names)
        self.layers_ = np.array([data.layers[p] for p in spec.allowed])
        weights = bank.mix_weights().detach().cpu().numpy()[0]
        self.weights_ = weights[list(spec.allowed)]
        self.gamma_ = float(bank.gamma.detach().cpu()[0])
        self.n_epochs_ = history["epochs"]
        self.best_validation_f1_ = history["best_validation_f1"][0]
        self.encoded_layers_ = tuple(data.layers)
        return self

    def _fitted(self, X) -> EncodedTargets:
        if not hasattr(self, "bank_"):
            raise BertInsightInputError("this EdgeProbe is not fitted yet; call fit(X) first.")
        data = _check_data(X)
        if tuple(data.layers) != self.encoded_layers_:
            raise BertInsightInputError(f"X holds layers {list(data.layers)}; the probe was fitted on "
                                        f"{list(self.encoded_layers_)}. Encode both splits the same way.")
        if tuple(data.label_names) != tuple(self.classes_):
            unknown = sorted(set(data.label_names) - set(self.classes_))
            raise BertInsightInputError(
                "X's labels differ from the ones the probe was fitted on"
                + (f" (unknown: {unknown[:8]})" if unknown else "") + "; encode both splits of one task.")
        return data

    def predict_proba(self, X: EncodedTargets) -> np.ndarray:
        """(n_targets, n_labels) probability of each label (independent sigmoids: rows need not sum to 1)."""
        data = self._fitted(X)
        return predict_bank(self.bank_, data, device=next(self.bank_.parameters()).device)[0]

    def predict(self, X: EncodedTargets) -> np.ndarray:
        """(n_targets, n_labels) bool: the labels whose probability exceeds 0.5."""
        return self.predict_proba(X) > 0.5

    def score(self, X: EncodedTargets, y=None) -> float:
        """Micro-averaged F1 (percent) over every (target, label) decision."""
        data = self._fitted(X)
        labels = data.labels if y is None else np.asarray(y).astype(bool)
        return micro_f1(self.predict_proba(data), labels)[2]

