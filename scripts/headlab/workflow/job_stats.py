"""The "Job stats" table Snakemake prints before a (dry) run: rule -> planned jobs."""

from __future__ import annotations

from collections import Counter


def job_stats(output: str) -> Counter[str]:
    """The first "Job stats" table of a run's output, rule -> count (without the total)."""
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        return Counter()
    counts: Counter[str] = Counter()
    for line in lines[start + 3 :]:  # the title, the header and the dashes
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts
