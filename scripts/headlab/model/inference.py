"""Forward passes over a set of batches, through the engine, in inference mode."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from headlab.model.batching import Batch, restore_order
from headlab.model.engine import Controls, Observer, engine_attached, model_family

PRECISIONS = ("float32", "bf16")
# The precision of this process's inference passes (scoring, sweeps, attention): float32 unless
# a job asks for bf16 (config key precision) through `set_inference_precision`.
_INFERENCE_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar(
    "inference_precision", default="float32"
)


def set_inference_precision(precision: str, device: torch.device) -> None:
    """Every later inference pass of this job runs in `precision`; bf16 only on CUDA (autocast),
    an error elsewhere (on a CPU it is slower and less exact)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision is {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type != "cuda":
        raise ValueError(f"precision: bf16 needs a CUDA device, not {device}; use float32 (the default)")
    _INFERENCE_PRECISION.set(precision)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Training's precision: bf16 autocast on CUDA; full precision elsewhere (CPU bf16 is slower
    here and less exact)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Inference's precision: float32, or bf16 autocast on CUDA where the job asked for it."""
    if _INFERENCE_PRECISION.get() == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def inference_session(model: PreTrainedModel, device: torch.device) -> Iterator[PreTrainedModel]:
    """Model on `device`, eval mode, engine attached, no autograd; restores the attention setting."""
    was_training = model.training
    model.to(device).eval()
    try:
        with engine_attached(model), torch.inference_mode(), inference_autocast(device):
            yield model
    finally:
        model.train(was_training)


def inputs_for(model: PreTrainedModel, batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    """The batch as the model's forward takes it (token_type_ids only where the family reads them)."""
    types = model_family(model).takes_token_type_ids(model.config)
    return batch.model_inputs(device, token_type_ids=types)


def batch_logits(
    model: PreTrainedModel, batch: Batch, device: torch.device, controls: Controls | None
) -> np.ndarray:
    outputs = model(**inputs_for(model, batch, device), headlab=controls)
    return outputs.logits.float().cpu().numpy()  # (batch, labels)


def predict_logits(
    model: PreTrainedModel, batches: Sequence[Batch], n_examples: int, device: torch.device
) -> np.ndarray:
    """Logits (examples, labels) in table order, with no intervention."""
    with inference_session(model, device):
        chunks = [batch_logits(model, batch, device, None) for batch in batches]
    return restore_order(chunks, [b.rows for b in batches], n_examples)


def observed_pass(
    model: PreTrainedModel,
    batches: Iterable[Batch],
    device: torch.device,
    observers: Sequence[Observer],
    prepare: Callable[[Batch], bool | None] | None = None,
    collect: Callable[[Batch], object] | None = None,
    on_batch: Callable[[int], object] | None = None,
) -> None:
    """The one forward loop of the attention analyses: per batch, `prepare(batch)` (sets the
    observers up for it; returning False skips the batch), a forward pass through the engine in
    inference mode that feeds every layer's probabilities to `observers`, then `collect(batch)`
    (reads the observers). `on_batch(1)` after each batch, for progress bars."""
    controls = Controls(observers=list(observers))
    with inference_session(model, device):
        for batch in batches:
            if prepare is None or prepare(batch) is not False:
                model(**inputs_for(model, batch, device), headlab=controls)
                if collect is not None:
                    collect(batch)
            if on_batch is not None:
                on_batch(1)
