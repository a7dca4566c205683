"""What benchmarks/estimate_runtime.py counts as a job's work, against hand counts: a pruning
curve's dev-set passes (levels x orders), a FrameNet job's masks, a task's epochs under
finetune.by_task and the fine-tuning runs per task with scratch seeds."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def estimator() -> ModuleType:
    path = ROOT / "benchmarks" / "estimate_runtime.py"
    spec = importlib.util.spec_from_file_location("estimate_runtime", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config(**sections: dict) -> dict:
    base = {
        "pruning": {"step": 0.1, "of": "total", "max_share": 0.5, "random_draws": 2},
        "framenet": {"random_sets": {"count": 10}},
        "finetune": {"epochs": 3, "seeds": [42, 43, 44], "scratch_seeds": [42]},
    }
    return {**base, **sections}


def test_a_pruning_curve_costs_its_levels_times_its_orders() -> None:
    module = estimator()
    # 72 heads, 7 at a time up to 36: levels 0, 7, 14, 21, 28, 35, 36; orders importance, delta,
    # delta_heldout and 2 random draws
    assert module.pruning_passes(config(), 72) == 7 * 5
    # up to 28 (40 %): levels 0, 7, 14, 21, 28; one random draw
    smaller = config(pruning={"step": 0.1, "of": "total", "max_share": 0.4, "random_draws": 1})
    assert module.pruning_passes(smaller, 72) == 5 * 4


def test_framenet_masks_epochs_and_runs_per_task() -> None:
    module = estimator()
    assert module.framenet_masks(config()) == 2 + 10
    tuned = config(finetune={"epochs": 3, "seeds": [42, 43], "by_task": {"RTE": {"epochs": 5}}})
    assert module.epochs_of(tuned, "RTE") == 5 and module.epochs_of(tuned, "MRPC") == 3
    assert module.trained_seeds(config()) == 3 + 1  # scratch for seed 42 only
    assert module.trained_seeds(tuned) == 2 + 2  # no scratch_seeds: every seed trains scratch too
