"""The reference means of mean ablation: each head's context vector averaged over a sample.

Mean ablation (ablation mode `mean`) replaces a head's output, its context vector before the
output projection, by that vector's mean over a reference sample (the task's training sample
by default): per layer and head, the mean over every real token of every reference example.
One streaming pass through the engine's context observers: only the running sums (layers x
heads x head_dim) and token counts are kept, never the activations.

Table (`MEANS_SCHEMA`), one row per (layer, head), 1-based: `mean` (list<float64>, head_dim
values), `n_tokens`, `n_examples`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from transformers import PreTrainedModel

from headlab.model.batching import Batch
from headlab.model.engine import Controls, head_count, layer_count
from headlab.model.inference import batch_logits, inference_session

MEANS_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("task", pa.string()),
        ("seed", pa.int64()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("mean", pa.list_(pa.float64())),
        ("n_tokens", pa.int64()),
        ("n_examples", pa.int64()),
    ]
)


class ContextSums:
    """A context observer summing each layer's head outputs over real tokens (float64)."""

    def __init__(self, layers: int) -> None:
        self.sums: list[torch.Tensor | None] = [None] * layers  # each (heads, head_dim)
        self.tokens = [0] * layers

    def __call__(self, layer: int, context: torch.Tensor, key_is_real: torch.Tensor) -> None:
        real = key_is_real.to(torch.float64)  # (batch, query): the queries are the keys' tokens
        total = torch.einsum("bhqd,bq->hd", context.to(torch.float64), real)  # (heads, head_dim)
        previous = self.sums[layer]
        self.sums[layer] = total if previous is None else previous + total
        self.tokens[layer] += int(real.sum().item())

    def means(self) -> torch.Tensor:
        """(layers, heads, head_dim); an error naming a layer no token reached."""
        missing = [layer for layer, total in enumerate(self.sums) if total is None or self.tokens[layer] == 0]
        if missing:
            raise ValueError(f"no reference token reached layer(s) {[m + 1 for m in missing]}")
        return torch.stack([total / count for total, count in zip(self.sums, self.tokens, strict=True)])  # type: ignore[operator]


def reference_means(
    model: PreTrainedModel,
    batches: Sequence[Batch],
    device: torch.device,
    on_batch: Callable[[int], object] | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """(means (layers, heads, head_dim) in float64, real tokens per layer) over the batches."""
    sums = ContextSums(layer_count(model))
    controls = Controls(context_observers=(sums,))
    with inference_session(model, device):
        for batch in batches:
            batch_logits(model, batch, device, controls)
            if on_batch:
                on_batch(1)
    return sums.means(), sums.tokens


def means_table(
    model: str, task: str, seed: int, means: torch.Tensor, tokens: list[int], n_examples: int
) -> pa.Table:
    layers, heads, _ = means.shape
    rows = [
        {
            "model": model,
            "task": task,
            "seed": seed,
            "layer": layer + 1,
            "head": head + 1,
            "mean": means[layer, head].tolist(),
            "n_tokens": tokens[layer],
            "n_examples": n_examples,
        }
        for layer in range(layers)
        for head in range(heads)
    ]
    return pa.Table.from_pylist(rows, schema=MEANS_SCHEMA)


def read_means(table: pa.Table, model: PreTrainedModel) -> torch.Tensor:
    """(layers, heads, head_dim) float32 from a means table, checked against the model's size."""
    layers, heads = layer_count(model), head_count(model)
    if table.num_rows != layers * heads:
        raise ValueError(f"the means table has {table.num_rows} rows; the model has {layers} x {heads} heads")
    frame = table.sort_by([("layer", "ascending"), ("head", "ascending")])
    values = np.array(frame.column("mean").to_pylist(), dtype=np.float64)  # (layers * heads, head_dim)
    return torch.from_numpy(values.reshape(layers, heads, -1)).to(torch.float32)


def means_for_modes(
    path: str | Path | None, modes: Sequence[str], model: PreTrainedModel
) -> torch.Tensor | None:
    """Mode mean's reference means (layers, heads, head_dim) from the checkpoint's head_means table
    when `modes` include mean, else None; an error when mean is asked and the table is not given."""
    if "mean" not in modes:
        return None
    if path is None:
        raise ValueError("mode 'mean' needs the head_means table of the checkpoint (input means)")
    import pyarrow.parquet as pq

    return read_means(pq.read_table(path), model)
