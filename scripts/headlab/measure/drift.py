"""How much fine-tuning changes each head's attention (Sec. 4.3, Figure 5).

For one example and one head, the **cosine similarity** between two models' attention maps is

    cos = sum_{i,k} A[i,k] B[i,k] / ( ||A|| ||B|| )

over the real tokens only: both the query rows and the key columns of padding are left out
(transformers' padding rows are not zero: a padded query still attends to the real keys). A
head's drift is the mean (and the standard deviation, ddof 0) of this cosine over the dev
sample; 1 means the fine-tuned head attends exactly as the pretrained one, lower means a larger
change (the paper's Figure 5: "darker colors correspond to greater differences").

The two models read the same batches. Per batch the first model's pass records its maps, one
batch at a time, as a (batch, layers, heads, query, key) tensor on the device (padding cells
zeroed); the second model's pass reduces them with its own maps in an observer, layer by layer,
to (batch, layers, heads) cosines. No other map is kept.

Output table (`DRIFT_SCHEMA`), one row per (layer, head), sorted by layer then head:
``model, task, layer, head`` (1-based), ``cosine_mean``, ``cosine_std``, ``n_examples``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import torch
from transformers import PreTrainedModel

from headlab.model.batching import Batch
from headlab.model.engine import Controls, head_count, layer_count
from headlab.model.inference import inference_session, inputs_for

DRIFT_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("layer", pa.int32(), nullable=False),
        pa.field("head", pa.int32(), nullable=False),
        pa.field("cosine_mean", pa.float64(), nullable=False),
        pa.field("cosine_std", pa.float64(), nullable=False),
        pa.field("n_examples", pa.int64(), nullable=False),
    ]
)


def real_cells(is_real: torch.Tensor) -> torch.Tensor:
    """(batch, 1, query, key) bool: both the query and the key are real tokens."""
    return is_real[:, None, :, None] & is_real[:, None, None, :]


def masked_cosine(first: torch.Tensor, second: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
    """Per example and head, the cosine of two maps over real cells only.

    first, second (batch, heads, query, key); is_real (batch, tokens) bool. Returns (batch, heads).
    """
    cells = real_cells(is_real.bool()).float()  # (batch, 1, query, key)
    a = first.float() * cells  # (batch, heads, query, key)
    b = second.float() * cells  # (batch, heads, query, key)
    dot = (a * b).sum(dim=(-2, -1))  # (batch, heads)
    return dot / (a.square().sum(dim=(-2, -1)).sqrt() * b.square().sum(dim=(-2, -1)).sqrt())


class MapRecorder:
    """Observer of the first pass: the batch's maps (batch, layers, heads, query, key), padding zeroed."""

    def __init__(self, n_layers: int) -> None:
        self.n_layers = n_layers
        self.maps = torch.zeros(0)  # (batch, layers, heads, query, key)
        self.is_real = torch.zeros(0, dtype=torch.bool)  # (batch, tokens)

    def start(self, is_real: torch.Tensor) -> None:
        self.is_real = is_real.bool()
        self.maps = torch.zeros(0)  # frees the previous batch's maps before the next pass

    def __call__(self, layer: int, probs: torch.Tensor, key_is_real: torch.Tensor) -> None:
        if layer == 0:
            batch, heads, queries, keys = probs.shape
            shape = (batch, self.n_layers, heads, queries, keys)
            self.maps = torch.empty(shape, dtype=torch.float32, device=probs.device)
        cells = real_cells(self.is_real)  # (batch, 1, query, key)
        self.maps[:, layer] = probs.float() * cells  # (batch, heads, query, key)


class CosineObserver:
    """Observer of the second pass: cosines (batch, layers, heads) against a `MapRecorder`'s maps."""

    def __init__(self, recorder: MapRecorder, n_layers: int, n_heads: int) -> None:
        self.recorder = recorder
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.cosines = torch.zeros(0, n_layers, n_heads)  # (batch, layers, heads)

    def start(self) -> None:
        batch = self.recorder.is_real.shape[0]
        shape = (batch, self.n_layers, self.n_heads)
        self.cosines = torch.full(shape, float("nan"), device=self.recorder.is_real.device)

    def __call__(self, layer: int, probs: torch.Tensor, key_is_real: torch.Tensor) -> None:
        with torch.autocast(probs.device.type, enabled=False):
            first = self.recorder.maps[:, layer]  # (batch, heads, query, key)
            self.cosines[:, layer] = masked_cosine(first, probs, self.recorder.is_real)  # (batch, heads)


def drift_pass(
    first_model: PreTrainedModel,
    second_model: PreTrainedModel,
    batches: Sequence[Batch],
    n_examples: int,
    device: torch.device | str,
    on_batch: Callable[[int], object] | None = None,
) -> np.ndarray:
    """Per example, layer and head the cosine between the two models' maps: (examples, layers, heads)."""
    n_layers, n_heads = layer_count(first_model), head_count(first_model)
    if (layer_count(second_model), head_count(second_model)) != (n_layers, n_heads):
        raise ValueError(
            f"the models differ in size: {n_layers} x {n_heads} and "
            f"{layer_count(second_model)} x {head_count(second_model)} (layers x heads)"
        )
    where = torch.device(device)
    recorder = MapRecorder(n_layers)
    cosine = CosineObserver(recorder, n_layers, n_heads)
    out = np.full((n_examples, n_layers, n_heads), np.nan)  # (examples, layers, heads)
    with inference_session(first_model, where), inference_session(second_model, where):
        for batch in batches:
            inputs = inputs_for(first_model, batch, where)
            recorder.start(inputs["attention_mask"].bool())
            first_model(**inputs, headlab=Controls(observers=[recorder]))
            cosine.start()
            second_model(**inputs, headlab=Controls(observers=[cosine]))
            out[batch.rows] = cosine.cosines.double().cpu().numpy()  # (batch, layers, heads)
            if on_batch is not None:
                on_batch(1)
    return out


def drift_table(model: str, task: str, cosines: np.ndarray) -> pa.Table:
    """The per-head table from per-example cosines (examples, layers, heads), sorted by layer, head."""
    n, n_layers, n_heads = cosines.shape
    if n == 0:
        raise ValueError("no examples: nothing to average")
    layer, head = np.meshgrid(
        np.arange(1, n_layers + 1, dtype=np.int32), np.arange(1, n_heads + 1, dtype=np.int32), indexing="ij"
    )  # (layers, heads) each
    size = n_layers * n_heads
    return pa.table(
        {
            "model": pa.array([model] * size, pa.string()),
            "task": pa.array([task] * size, pa.string()),
            "layer": pa.array(layer.ravel()),
            "head": pa.array(head.ravel()),
            "cosine_mean": pa.array(cosines.mean(axis=0).ravel()),  # (layers * heads,)
            "cosine_std": pa.array(cosines.std(axis=0).ravel()),
            "n_examples": pa.array(np.full(size, n, dtype=np.int64)),
        },
        schema=DRIFT_SCHEMA,
    )
