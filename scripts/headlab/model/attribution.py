"""One forward and one backward pass: every head's first-order disabling effect and Michel's importance.

Definitions (per example x, per head h of layer l):
- score s(x): the log-probability of the gold label (classification) or minus the squared error
  (regression); higher is better. The loss of Michel et al. 2019 is L = -s.
- attribution patching (Nanda; Kramar et al. 2024): disabling h replaces its output o_h by o'_h
  (mode uniform: the mean of the value vectors over the real tokens; zero: 0; mean: the reference
  mean). The engine's `Patches` make the output o_h + alpha_h (o'_h - o_h) with alpha = 0, so the
  forward pass is the model's and d s / d alpha_h = grad_o s . (o'_h - o_h): the first-order
  estimate of the change in s when h alone is disabled. One backward pass gives it for every
  head, every mode and every example at once (each example has its own alphas; examples do not
  interact in eval mode).
- importance (Michel et al. 2019): a gate xi_h = 1 multiplying o_h; I_h = E_x |d L(x) / d xi_h|.
  Since d s / d alpha_h(zero) = -o_h . grad_o s = -d s / d xi_h = d L / d xi_h, the gate gradient
  is the zero mode's estimate and I_h = E_x |estimate_zero|.

Weights are frozen during the pass (no parameter gradients: the backward pass costs about one
forward pass), so a screen costs about three forward passes against one per mask for the sweep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from headlab.model.batching import Batch, restore_order
from headlab.model.engine import Controls, engine_attached, head_count, layer_count
from headlab.model.inference import inputs_for
from headlab.model.interventions import Intervention, Patches


def example_scores(logits: torch.Tensor, labels: torch.Tensor, is_regression: bool) -> torch.Tensor:
    """(batch,) score of each example: log p(gold) from logits (batch, labels), or -(output - gold)^2."""
    if is_regression:
        if logits.shape[-1] != 1:
            raise ValueError(f"regression logits must have one column, got {logits.shape[-1]}")
        return -((logits[:, 0].float() - labels.float()) ** 2)  # (batch,)
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (batch, labels)
    return log_probs.gather(1, labels.long()[:, None])[:, 0]  # (batch,)


@contextlib.contextmanager
def gradient_session(model: PreTrainedModel, device: torch.device) -> Iterator[PreTrainedModel]:
    """Model on `device` in eval mode (no dropout), engine attached, autograd on but weights frozen;
    restores the training flag and every parameter's requires_grad after, also after an error."""
    was_training = model.training
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    model.to(device).eval()
    try:
        for parameter, _ in frozen:
            parameter.requires_grad_(False)
        with engine_attached(model), torch.enable_grad():
            yield model
    finally:
        for parameter, flag in frozen:
            parameter.requires_grad_(flag)
        model.train(was_training)


def attribution_pass(
    model: PreTrainedModel,
    batches: Sequence[Batch],
    n_examples: int,
    device: torch.device,
    modes: Sequence[str],
    is_regression: bool,
    means: torch.Tensor | None = None,
    pruned: torch.Tensor | None = None,
    progress: Callable[[int], object] | None = None,
) -> dict[str, np.ndarray]:
    """mode -> estimates (examples, layers, heads) in table order: the first-order change in each
    example's score when each head alone is disabled in that mode. `means` (layers, heads,
    head_dim): mode mean's reference means. `pruned` (layers, heads) bool: heads already removed
    (zero mode) during the pass, as in an iterative pruning step; their estimates are 0."""
    layers, heads = layer_count(model), head_count(model)
    chunks: dict[str, list[np.ndarray]] = {mode: [] for mode in modes}
    with gradient_session(model, device):
        for batch in batches:
            size = len(batch.rows)
            alphas = {
                mode: torch.zeros(size, layers, heads, device=device, requires_grad=True) for mode in modes
            }  # each (batch, layers, heads)
            intervention = None
            if pruned is not None:
                disabled = pruned.to(device)[None].expand(size, layers, heads)  # (batch, layers, heads)
                intervention = Intervention(disabled.contiguous(), "zero")
            controls = Controls(intervention=intervention, patches=Patches(alphas, means))
            logits = model(**inputs_for(model, batch, device), headlab=controls).logits  # (batch, labels)
            total = example_scores(logits, batch.labels.to(device), is_regression).sum()
            gradients = torch.autograd.grad(total, list(alphas.values()))
            for mode, gradient in zip(alphas, gradients, strict=True):
                chunks[mode].append(gradient.detach().double().cpu().numpy())  # (batch, layers, heads)
            if progress is not None:
                progress(1)
    rows = [b.rows for b in batches]
    estimates = {mode: restore_order(parts, rows, n_examples) for mode, parts in chunks.items()}
    if pruned is not None:  # a removed head cannot be disabled again (its patch is not a removal)
        for values in estimates.values():
            values[:, pruned.cpu().numpy()] = 0.0  # (examples, layers, heads)
    return estimates


def importance_of(zero_estimates: np.ndarray) -> np.ndarray:
    """Michel's per-example |dL/dxi_h| from the zero mode's estimates (examples, layers, heads)."""
    return np.abs(zero_estimates)


def normalized_by_layer(importance: np.ndarray) -> np.ndarray:
    """Michel's per-layer normalisation of (layers, heads) importances: each layer divided by its L2
    norm over the heads; a layer whose heads are all 0 (all pruned) stays 0."""
    norms = np.linalg.norm(importance, axis=-1, keepdims=True)  # (layers, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, importance / norms, 0.0)
