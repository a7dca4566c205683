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


def test_fine_tuning_scales_with_each_task_own_cost_per_token(tmp_path: Path) -> None:
    """A trained task: its own seconds per token times the target's tokens, so a fourth epoch costs a
    third of three; an untrained task: the fit's overhead per job plus its rate."""
    module = estimator()

    def benchmark(name: str, seconds: float) -> Path:
        path = tmp_path / f"{name}.benchmark.tsv"
        path.write_text(f"s\th:m:s\n{seconds}\t0:00:00\n")
        return path

    # the finished run: RTE 2 runs of 3 epochs over 1000 tokens, 375 s each; MRPC 2 runs, 400 s each
    measured = {
        "finetune RTE": [(benchmark("rte-42", 375.0), 3000.0), (benchmark("rte-43", 375.0), 3000.0)],
        "finetune MRPC": [(benchmark("mrpc-42", 400.0), 6000.0), (benchmark("mrpc-43", 400.0), 6000.0)],
    }
    # the target: RTE at 4 epochs (2 runs), MRPC unchanged, SST-2 not in the finished run (2 runs)
    work = {"finetune RTE": 2 * 4000.0, "finetune MRPC": 2 * 6000.0, "finetune SST-2": 2 * 5000.0}
    work["finetune"] = sum(work.values())
    overhead, rate = 20.0, 0.06
    estimate = module.finetune_estimate(measured, work, (overhead, rate), jobs=6)
    rte, mrpc = 2 * 375.0 * 4 / 3, 2 * 400.0
    sst2 = 10000.0 / work["finetune"] * 6 * overhead + rate * 10000.0  # its share of the jobs
    assert abs(estimate - (rte + mrpc + sst2)) < 1e-6 * estimate
