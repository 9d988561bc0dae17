"""Hidden states of the tokens inside an edge task's target spans, computed once and cached on disk.

A probe sees only the tokens of its target spans (Tenney et al. 2019, section 2), so only those are
kept: for each text, the union of its targets' word pieces, every requested layer, in float16 (half
the bytes of float32; BERT-family hidden states stay far inside its range). The encoder never runs
again for the same (model weights, task data, layers, max_length): the arrays go to
``<cache_dir>/edge_states/<key>.npz``, written atomically.

Words map to word pieces through the fast tokenizer's character offsets into the words joined by
single spaces: a piece belongs to the word whose characters it covers, with no re-tokenisation.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..cache import _atomic_write, _cache_root
from ..data.edge_tasks import EdgeTask, label_matrix
from ..device import release_freed_memory
from ..errors import BertInsightInputError
from ..layers import resolve_layers
from ..models.adapters import require_encoder
from ..models.handle import ModelHandle, require_model_handle
from ..text import joined_word_spans
from ..windows import encode_sentences, length_sorted_batches, word_pieces

STATE_DTYPE = np.float16
TARGET_INFO_COLUMNS = ("split", "text_id", "target_id", "span1_start", "span1_end", "span2_start", "span2_end",
                       "labels")


@dataclass
class EncodedTargets:
    """One split of a task, encoded: what probes train and score on.

    ``states`` (n_tokens, n_layers, hidden) float16: the kept tokens' hidden states for ``layers``;
    ``span1`` / ``span2`` (n_targets, 2): [start, end) row ranges into ``states`` (span2 None for
    single-span tasks); ``labels`` (n_targets, n_labels) bool; ``label_names``; ``targets``: the
    targets kept (rows of the task's targets frame, same order); ``dropped``: reason -> count of
    targets that could not be encoded (e.g. beyond ``max_length``).
    """

    states: np.ndarray
    layers: tuple[int, ...]
    span1: np.ndarray
    span2: np.ndarray | None
    labels: np.ndarray
    label_names: tuple[str, ...]
    targets: pd.DataFrame
    task: str
    dropped: dict[str, int] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.span1)

    @property
    def two_spans(self) -> bool:
        return self.span2 is not None

    def subset(self, rows: np.ndarray) -> "EncodedTargets":
        """The targets at ``rows`` (states are shared, not copied)."""
        rows = np.asarray(rows)
        return EncodedTargets(self.states, self.layers, self.span1[rows],
                              None if self.span2 is None else self.span2[rows], self.labels[rows], self.label_names,
                              self.targets.iloc[rows].reset_index(drop=True), self.task, dict(self.dropped),
                              dict(self.attrs))

    def __repr__(self) -> str:
        return (f"EncodedTargets({self.task!r}: {len(self)} targets, {len(self.states)} tokens, layers "
                f"{list(self.layers)}, {len(self.label_names)} labels)")


def _segments(words, n_words_a: int) -> list[tuple[int, int, tuple]]:
    """(sequence id, index of its first word, its words): one segment, or two for a paired text whose
    first ``n_words_a`` words are text_a (e.g. a question) and the rest text_b (e.g. its passage)."""
    words = tuple(words)
    if n_words_a > 0:
        return [(0, 0, words[:n_words_a]), (1, n_words_a, words[n_words_a:])]
    return [(0, 0, words)]


def _word_pieces(window, words, n_words_a: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Per word, the [first, last + 1) token positions of its pieces (-1, 0 for a word with none)."""
    first = np.full(len(words), -1, dtype=np.int64)
    stop = np.zeros(len(words), dtype=np.int64)
    for sequence_id, offset, segment in _segments(words, n_words_a):
        for k, pieces in enumerate(word_pieces(window, joined_word_spans(segment), sequence=sequence_id)):
            if pieces:
                first[offset + k], stop[offset + k] = pieces[0], pieces[-1] + 1
    return first, stop


def _token_ranges(window, words, targets: pd.DataFrame, two_spans: bool, max_length: int, n_words_a: int = -1):
    """Token [start, end) of each target's span1 (and span2): (n, 2 or 4) int, which targets can be
    encoded, and reason -> count for the others."""
    first, stop = _word_pieces(window, words, n_words_a)
    # Per word: its character end within its own segment, and how much of that segment the (possibly
    # cut) input still holds.
    char_ends = np.zeros(len(words), dtype=np.int64)
    covered = np.zeros(len(words), dtype=np.int64)
    for sequence_id, offset, segment in _segments(words, n_words_a):
        held = max((end for (start, end), sequence in zip(window.offsets, window.sequence_ids)
                    if sequence == sequence_id and end > start), default=0)
        for k, (_, end) in enumerate(joined_word_spans(segment)):
            char_ends[offset + k] = end
            covered[offset + k] = held
    columns = [("span1_start", "span1_end")] + ([("span2_start", "span2_end")] if two_spans else [])
    ranges = np.zeros((len(targets), 2 * len(columns)), dtype=np.int64)
    valid = np.ones(len(targets), dtype=bool)
    reasons = {"past": 0, "none": 0}
    for k, (start_column, end_column) in enumerate(columns):
        for row, (s, e) in enumerate(zip(targets[start_column].to_numpy(), targets[end_column].to_numpy())):
            if not valid[row]:
                continue
            if (char_ends[s:e] > covered[s:e]).any():
                valid[row] = False
                reasons["past"] += 1
                continue
            pieces = first[s:e] >= 0
            if not pieces.any():
                valid[row] = False
                reasons["none"] += 1
                continue
            ranges[row, 2 * k] = first[s:e][pieces].min()
            ranges[row, 2 * k + 1] = stop[s:e][pieces].max()
    names = {"past": f"span reaches past max_length={max_length} pieces", "none": "span words have no word piece"}
    return ranges, valid, {names[key]: n for key, n in reasons.items() if n}


def task_digest(task: EdgeTask) -> str:
    """Identifies a task's texts and targets (for the states cache)."""
    digest = hashlib.sha256()
    split_at = task.texts["n_words_a"] if "n_words_a" in task.texts else [-1] * len(task.texts)
    for text_id, words, n_words_a in zip(task.texts["text_id"], task.texts["words"], split_at):
        digest.update(f"{text_id}\t{n_words_a}\t{' '.join(words)}\n".encode())
    columns = ["target_id", "span1_start", "span1_end", "span2_start", "span2_end"]
    digest.update(pd.util.hash_pandas_object(task.targets[columns], index=False).to_numpy().tobytes())
    digest.update("|".join("/".join(labels) for labels in task.targets["labels"]).encode())
    digest.update("|".join(task.labels).encode())
    return digest.hexdigest()[:16]


def encode_targets(handle: ModelHandle, task: EdgeTask, *, layers="all", max_length: int | None = None,
                   batch_size: int = 32, cache_dir: str | os.PathLike | None = None,
                   progress: bool = True) -> EncodedTargets:
    """The hidden states of ``task``'s target tokens (all its splits together: call ``task.split(...)``
    first for one), for ``layers`` ("all" = 0..L). Texts longer than ``max_length`` pieces (default:
    the model's position limit) are cut; targets reaching past the cut are dropped and counted, as are
    targets whose words have no piece at all."""
    require_model_handle(handle, "edge probing")
    if not isinstance(task, EdgeTask):
        raise BertInsightInputError(f"task must be an EdgeTask (load_edge_task(name) or read_jiant_json), not "
                                    f"{type(task).__name__}.")
    # A decoder reads a text pair as one stream with no separator: untested ground, refused.
    require_encoder(handle.adapter, "Edge probing", handle.name)
    chosen = tuple(resolve_layers(layers, handle.num_layers, axis="hidden_states"))
    max_length = min(512, handle.usable_positions or 512) if max_length is None else max_length
    handle.check_fits(max_length)
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{handle.fingerprint}|{task.name}|{task_digest(task)}|{chosen}|{max_length}".encode())
        path = _cache_root(cache_dir) / "edge_states" / f"{key.hexdigest()[:20]}.npz"
        if path.exists():
            try:
                return _read(path, task)
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)  # a corrupt entry: recompute it
    encoded = _encode(handle, task, chosen, max_length, batch_size, progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda temporary: _write(temporary, encoded))
    return encoded


def _encode(handle, task, chosen, max_length, batch_size, progress) -> EncodedTargets:
    from tqdm.auto import tqdm

    texts = task.texts.reset_index(drop=True)
    split_at = (texts["n_words_a"].astype(int) if "n_words_a" in texts.columns
                else pd.Series(-1, index=texts.index))
    segments = [_segments(words, n) for words, n in zip(texts["words"], split_at)]
    frame = pd.DataFrame({"example_id": texts["text_id"],
                          "text_a": [" ".join(parts[0][2]) for parts in segments],
                          "text_b": [" ".join(parts[1][2]) if len(parts) > 1 else None for parts in segments]})
    windows = encode_sentences(handle.tokenizer, frame, max_length=max_length)
    by_text = {text_id: rows for text_id, rows in task.targets.groupby("text_id", sort=False).groups.items()}
    layer_index = list(chosen)
    state_pieces: list[np.ndarray] = []
    kept_targets: list[np.ndarray] = []
    span_rows: list[np.ndarray] = []
    dropped: dict[str, int] = {}
    offset = 0
    model = handle.model
    batches = length_sorted_batches(windows, batch_size)
    with torch.inference_mode():
        for batch in tqdm(batches, desc=f"encoding {task.name}", unit="batch", disable=not progress):
            output = model(**handle.batch_inputs([windows[i] for i in batch]), output_hidden_states=True)
            hidden = torch.stack([output.hidden_states[layer] for layer in layer_index], dim=2)  # (B, T, layers, d)
            del output
            for row, text_index in enumerate(batch):
                text_id = texts.at[text_index, "text_id"]
                if text_id not in by_text:
                    continue
                targets = task.targets.loc[by_text[text_id]]
                ranges, valid, reasons = _token_ranges(windows[text_index], texts.at[text_index, "words"], targets,
                                                       task.two_spans, max_length, int(split_at[text_index]))
                for reason, n in reasons.items():
                    dropped[reason] = dropped.get(reason, 0) + n
                if not valid.any():
                    continue
                ranges = ranges[valid]
                pairs = ranges.reshape(len(ranges), -1, 2)
                positions = np.unique(np.concatenate([np.arange(s, e) for s, e in pairs.reshape(-1, 2) if e > s]))
                state_pieces.append(hidden[row, positions].float().cpu().numpy().astype(STATE_DTYPE))
                rows = np.stack([np.searchsorted(positions, pairs[..., 0]),
                                 np.searchsorted(positions, pairs[..., 1] - 1) + 1], axis=-1) + offset
                span_rows.append(rows.reshape(len(ranges), -1))
                kept_targets.append(np.asarray(by_text[text_id])[valid])
                offset += len(positions)
            del hidden
            release_freed_memory()
    if not kept_targets:
        raise BertInsightInputError(f"no target of task {task.name!r} could be encoded ({dropped}); check the spans "
                                    "and max_length.")
    order = np.concatenate(kept_targets)
    spans = np.concatenate(span_rows)
    # Back to the task's target order (the batches ran shortest text first).
    rank = np.argsort(task.targets.index.get_indexer(order), kind="stable")
    targets = task.targets.loc[order[rank]].reset_index(drop=True)
    spans = spans[rank]
    return EncodedTargets(
        states=np.concatenate(state_pieces), layers=chosen, span1=spans[:, :2],
        span2=spans[:, 2:] if task.two_spans else None, labels=label_matrix(targets["labels"], task.labels),
        label_names=task.labels,
        targets=targets[list(TARGET_INFO_COLUMNS)], task=task.name, dropped=dropped,
        attrs={"model": handle.name, "max_length": max_length, "layers": list(chosen)})


def _write(path: Path, encoded: EncodedTargets) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, states=encoded.states, layers=np.array(encoded.layers), span1=encoded.span1,
                 span2=encoded.span2 if encoded.span2 is not None else np.zeros((0, 2), dtype=np.int64),
                 target_ids=encoded.targets["target_id"].to_numpy(dtype=str),
                 dropped_reasons=np.array(list(encoded.dropped), dtype=str),
                 dropped_counts=np.array(list(encoded.dropped.values()), dtype=np.int64),
                 model=np.array(encoded.attrs.get("model", "")), max_length=np.array(encoded.attrs.get("max_length", 0)))


def _read(path: Path, task: EdgeTask) -> EncodedTargets:
    with np.load(path, allow_pickle=False) as stored:
        position = pd.Index(task.targets["target_id"]).get_indexer(stored["target_ids"])
        if (position < 0).any():
            raise ValueError("cached targets are not the task's")
        targets = task.targets.iloc[position].reset_index(drop=True)
        layers = tuple(int(layer) for layer in stored["layers"])
        return EncodedTargets(
            states=stored["states"], layers=layers, span1=stored["span1"],
            span2=stored["span2"] if task.two_spans else None, labels=label_matrix(targets["labels"], task.labels),
            label_names=task.labels,
            targets=targets[list(TARGET_INFO_COLUMNS)], task=task.name,
            dropped=dict(zip(stored["dropped_reasons"].tolist(), stored["dropped_counts"].tolist())),
            attrs={"model": str(stored["model"]), "max_length": int(stored["max_length"]), "layers": list(layers),
                   "cached": str(path)})
