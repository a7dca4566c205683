"""The paper's pattern classifier (Sec. 4.1): a CNN with 8 convolutional layers and ReLU.

The paper trained it on ~400 hand-labelled attention maps (F1 0.86) and used it to estimate the
share of each class (Figure 2). Here:

* input: a map downsampled to size x size over the real tokens (`headlab.measure.maps.downsample_map`,
  the same bins as `downsample_maps` below), divided by its own maximum so every map spans [0, 1]
  whatever the sentence length;
* `PatternCNN`: 3x3 convolutions (padding 1) each followed by ReLU, 2x2 max pooling after every
  second convolution, global average pooling, one linear layer to the 5 classes
  (`headlab.analysis.patterns.PATTERNS`); the widths are ``patterns.cnn.channels`` (8 entries: 8 layers).
  With ``batch_norm`` (default) a BatchNorm sits between each convolution and its ReLU: the
  paper names only convolutions and ReLU, but without it training on a few hundred sparse maps
  sometimes collapses to one class (seen in 2 of 5 seeds on the synthetic test set; none with it);
* training (`train_cnn`): a seeded, stratified held-out split (``test_fraction`` of each class),
  AdamW, cross-entropy weighted by inverse class frequency (the labelled set is unbalanced: 30%
  vertical in the paper), seeded initialisation and shuffles: the same data and settings give the
  same weights on the CPU;
* reports (`metrics_table`): accuracy, macro F1 (over the classes present in gold or predicted
  labels, as scikit-learn's default), per-class precision / recall / F1 / support and the
  confusion matrix; `cnn_reports` gives them for the training and the held-out split, with the
  prediction of every labelled map;
* `cnn_record` is the state_dict with the architecture (channels, batch_norm, size, classes),
  what `headlab.io.torch_state.write_torch_state` saves and `load_cnn` rebuilds the network
  from; `classify_maps` labels unlabelled maps; `HeadMapClassifier` is an engine observer that
  labels every head map of a batch on the fly (rule pattern_classes with a labels file).

Nothing here writes files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from headlab.analysis.patterns import PATTERNS, section_values
from headlab.io.torch_state import read_torch_state

METRICS_SCHEMA: dict[str, Any] = {
    "model": pl.String,
    "split": pl.String,  # "train" or "test"
    "metric": pl.String,  # accuracy, f1_macro, n_maps, precision, recall, f1, support, count
    "pattern": pl.String,  # the (gold) class of per-class rows and confusion cells; null otherwise
    "predicted": pl.String,  # the predicted class of confusion cells ("count"); null otherwise
    "value": pl.Float64,
}
PREDICTIONS_SCHEMA: dict[str, Any] = {
    "map_id": pl.String,
    "split": pl.String,
    "label": pl.String,
    "predicted": pl.String,
    "confidence": pl.Float64,
}


@dataclass(frozen=True)
class CnnSettings:
    """Architecture and training of the CNN (config ``patterns.cnn``)."""

    channels: tuple[int, ...]  # eight convolutions (the schema's default: 8, 8, 16, 16, 32 x 4)
    batch_norm: bool
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    test_fraction: float
    seed: int

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ValueError("patterns.cnn.channels must be a non-empty list of positive widths")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"patterns.cnn.test_fraction = {self.test_fraction} must be in [0, 1)")

    @classmethod
    def from_config(cls, entry: Mapping[str, Any] | None) -> CnnSettings:
        """From the config mapping (every key of the schema's section)."""
        entry = section_values(cls, entry, "patterns.cnn")
        return cls(**{**entry, "channels": tuple(int(c) for c in entry["channels"])})

    @property
    def min_size(self) -> int:
        """The smallest map side the pooling stages leave at least one cell of."""
        return 2 ** (len(self.channels) // 2)


class PatternCNN(nn.Module):
    """Convolutions with ReLU (pooling after every second one), global average pooling, linear."""

    def __init__(
        self, channels: Sequence[int], batch_norm: bool = True, n_classes: int = len(PATTERNS)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 1
        for i, out in enumerate(channels):
            layers.append(nn.Conv2d(width, out, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
            width = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        features = self.features(maps)  # (maps, channels, size / 2^pools, size / 2^pools)
        return self.classifier(features.mean(dim=(-2, -1)))  # (maps, classes)


def prepare(maps: torch.Tensor) -> torch.Tensor:
    """(maps, size, size) attention -> (maps, 1, size, size) scaled to a maximum of 1 per map."""
    maps = maps.float()
    peak = maps.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)  # (maps, 1, 1)
    return (maps / peak)[:, None]  # (maps, 1, size, size)


def downsample_maps(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(maps, n, n) over real tokens -> (maps, size, size), adaptive average pooling."""
    return F.adaptive_avg_pool2d(maps.float(), size)  # (maps, size, size)


def class_indices(labels: Sequence[str]) -> np.ndarray:
    """Labels (names in `PATTERNS`) -> class indices (labels,) int64."""
    unknown = sorted(set(labels) - set(PATTERNS))
    if unknown:
        raise ValueError(f"unknown pattern label(s) {unknown}; valid: {list(PATTERNS)}")
    return np.array([PATTERNS.index(label) for label in labels], dtype=np.int64)


def split_indices(classes: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified split: round(test_fraction * n_c) maps of each class c held out.

    A class with a single map stays in training. Returns sorted (train, test) positions.
    """
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        n_test = round(test_fraction * members.size) if members.size > 1 else 0
        n_test = min(n_test, members.size - 1)
        test.extend(rng.permutation(members)[:n_test].tolist())
    test_idx = np.array(sorted(test), dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(classes.size), test_idx)
    return train_idx, test_idx


@dataclass
class TrainedCnn:
    model: PatternCNN
    size: int
    train_idx: np.ndarray  # positions of the training maps
    test_idx: np.ndarray  # positions of the held-out maps
    losses: list[float]  # mean training loss per epoch


def train_cnn(
    maps: np.ndarray,
    labels: Sequence[str],
    settings: CnnSettings,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, float], object] | None = None,
) -> TrainedCnn:
    """Train on (maps, size, size) downsampled maps with their pattern labels."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[1] != maps.shape[2]:
        raise ValueError(f"maps must be (maps, size, size), got {maps.shape}")
    size = maps.shape[-1]
    if size < settings.min_size:
        raise ValueError(f"maps of {size}x{size} are too small for {len(settings.channels)} conv layers")
    classes = class_indices(labels)
    train_idx, test_idx = split_indices(classes, settings.test_fraction, settings.seed)
    where = torch.device(device)
    inputs = prepare(torch.from_numpy(maps[train_idx])).to(where)  # (train, 1, size, size)
    targets = torch.from_numpy(classes[train_idx]).to(where)  # (train,)
    counts = np.bincount(classes[train_idx], minlength=len(PATTERNS)).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = PatternCNN(settings.channels, settings.batch_norm).to(where)
        shuffle = torch.Generator().manual_seed(settings.seed)
        optimiser = torch.optim.AdamW(
            model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        class_weight = torch.tensor(weights, dtype=torch.float32, device=where)  # (classes,)
        model.train()
        for epoch in range(settings.epochs):
            order = torch.randperm(len(train_idx), generator=shuffle).to(where)  # (train,)
            total = 0.0
            for start in range(0, len(order), settings.batch_size):
                chosen = order[start : start + settings.batch_size]  # (batch,)
                logits = model(inputs[chosen])  # (batch, classes)
                loss = F.cross_entropy(logits, targets[chosen], weight=class_weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(chosen)
            losses.append(total / max(len(order), 1))
            if on_epoch is not None:
                on_epoch(epoch + 1, losses[-1])
    model.eval()
    return TrainedCnn(model, size, train_idx, test_idx, losses)


@torch.inference_mode()
def class_probabilities(
    model: PatternCNN,
    maps: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Softmax probabilities (maps, classes) of downsampled (maps, size, size) maps."""
    where = torch.device(device)
    was_training = model.training
    model.to(where).eval()
    tensor = torch.as_tensor(np.asarray(maps, dtype=np.float32)) if isinstance(maps, np.ndarray) else maps
    chunks = [
        torch.softmax(model(prepare(tensor[i : i + batch_size].to(where))).float(), dim=-1).cpu()
        for i in range(0, tensor.shape[0], batch_size)
    ]  # each (chunk, classes)
    model.train(was_training)
    if not chunks:
        return np.zeros((0, len(PATTERNS)), dtype=np.float32)
    return torch.cat(chunks).numpy()


def classify_maps(
    model: PatternCNN,
    maps: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> tuple[list[str], np.ndarray]:
    """Pattern names and their probabilities (maps,) for unlabelled downsampled maps."""
    probs = class_probabilities(model, maps, batch_size, device)  # (maps, classes)
    best = probs.argmax(axis=1)
    return [PATTERNS[i] for i in best], probs[np.arange(len(best)), best].astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


def confusion_matrix(gold: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(classes, classes) counts: [gold, predicted]."""
    matrix = np.zeros((len(PATTERNS), len(PATTERNS)), dtype=np.int64)
    np.add.at(matrix, (gold, predicted), 1)
    return matrix


def class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per class precision, recall, F1 (0 where undefined) and support, from a confusion matrix."""
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def macro_f1(gold: np.ndarray, predicted: np.ndarray) -> float:
    """Mean F1 over the classes present in gold or predicted labels."""
    matrix = confusion_matrix(gold, predicted)
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return float(class_scores(matrix)["f1"][present].mean()) if present.any() else float("nan")


def metrics_table(model_alias: str, split: str, gold: np.ndarray, predicted: np.ndarray) -> pl.DataFrame:
    """Scores of one split as long rows (`METRICS_SCHEMA`)."""
    rows: list[dict[str, Any]] = []

    def add(metric: str, value: float, pattern: str | None = None, other: str | None = None) -> None:
        rows.append(
            {
                "model": model_alias,
                "split": split,
                "metric": metric,
                "pattern": pattern,
                "predicted": other,
                "value": float(value),
            }
        )

    add("n_maps", gold.size)
    if gold.size:
        add("accuracy", float(np.mean(gold == predicted)))
        add("f1_macro", macro_f1(gold, predicted))
    matrix = confusion_matrix(gold, predicted)
    for metric, values in class_scores(matrix).items():
        for pattern, value in zip(PATTERNS, values, strict=True):
            add(metric, value, pattern)
    for i, gold_pattern in enumerate(PATTERNS):
        for j, predicted_pattern in enumerate(PATTERNS):
            add("count", matrix[i, j], gold_pattern, predicted_pattern)
    return pl.DataFrame(rows, schema=METRICS_SCHEMA)


def cnn_reports(
    model_alias: str,
    trained: TrainedCnn,
    labelled: pl.DataFrame,
    maps: np.ndarray,
    device: torch.device | str,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The trained CNN's scores and predictions on the maps it was trained and tested on.

    `labelled` has ``map_id`` and ``label`` per map, `maps` the maps (maps, size, size) in the
    same order, as given to `train_cnn`. Returns the metrics (`METRICS_SCHEMA`: `metrics_table`
    of the training split, then of the held-out one) and one prediction per map
    (`PREDICTIONS_SCHEMA`: its split, label, predicted class and that class's probability).
    """
    gold = class_indices(labelled["label"].to_list())  # (maps,)
    probs = class_probabilities(trained.model, maps, device=device)  # (maps, classes)
    predicted = probs.argmax(axis=1)  # (maps,)
    split = np.full(labelled.height, "train", dtype=object)
    split[trained.test_idx] = "test"
    metrics = pl.concat(
        [
            metrics_table(model_alias, name, gold[idx], predicted[idx])
            for name, idx in (("train", trained.train_idx), ("test", trained.test_idx))
        ]
    )
    predictions = pl.DataFrame(
        {
            "map_id": labelled["map_id"],
            "split": split.tolist(),
            "label": labelled["label"],
            "predicted": [PATTERNS[i] for i in predicted],
            "confidence": probs[np.arange(labelled.height), predicted].astype(np.float64),
        },
        schema=PREDICTIONS_SCHEMA,
    )
    return metrics, predictions


# ---------------------------------------------------------------------------------------------
# The saved record
# ---------------------------------------------------------------------------------------------


def cnn_record(model: PatternCNN, size: int, channels: Sequence[int]) -> dict[str, Any]:
    """The state_dict (on the CPU) with what rebuilds the network (channels, batch_norm, size,
    classes): what `headlab.io.torch_state.write_torch_state` saves."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    batch_norm = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    return {
        "state_dict": state,
        "channels": list(channels),
        "batch_norm": batch_norm,
        "size": int(size),
        "classes": list(PATTERNS),
    }


def load_cnn(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> tuple[PatternCNN, int]:
    """The CNN saved from `cnn_record` (eval mode, on `device`) and the map size it was trained on."""
    record = read_torch_state(path)
    if list(record["classes"]) != list(PATTERNS):
        raise ValueError(f"{path}: classes {record['classes']} differ from {list(PATTERNS)}")
    model = PatternCNN(record["channels"], bool(record["batch_norm"]))
    model.load_state_dict(record["state_dict"])
    return model.to(torch.device(device)).eval(), int(record["size"])


# ---------------------------------------------------------------------------------------------
# Every head map of a forward pass, on the fly
# ---------------------------------------------------------------------------------------------


class HeadMapClassifier:
    """Engine observer: class probabilities of every (row, layer, head) map of the current batch.

    Each row's map is cut to its real tokens, pooled to the CNN's size on the device, and
    classified at once; only (batch, layers, heads, classes) probabilities are kept.
    """

    def __init__(self, model: PatternCNN, size: int, n_layers: int, n_heads: int) -> None:
        self.model = model.eval()
        self.size = size
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.probs = torch.zeros(0, n_layers, n_heads, len(PATTERNS))  # (batch, layers, heads, classes)

    def start(self, batch_size: int) -> None:
        self.probs = torch.full((batch_size, self.n_layers, self.n_heads, len(PATTERNS)), float("nan"))

    def __call__(self, layer: int, probs: torch.Tensor, key_is_real: torch.Tensor) -> None:
        pooled = []
        for row in range(probs.shape[0]):
            real = key_is_real[row].nonzero().flatten()  # (tokens,)
            maps = probs[row][:, real][:, :, real]  # (heads, query, key) over real tokens
            pooled.append(downsample_maps(maps, self.size))  # (heads, size, size)
        stacked = torch.cat(pooled)  # (batch * heads, size, size)
        logits = self.model(prepare(stacked)).float()  # (batch * heads, classes)
        chances = torch.softmax(logits, dim=-1).cpu()  # (batch * heads, classes)
        self.probs[:, layer] = chances.view(probs.shape[0], self.n_heads, len(PATTERNS))
