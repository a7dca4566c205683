"""What every job script needs: a log file, progress bars into it, thread limits."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import TracebackType
from typing import TextIO

from tqdm import tqdm


def job_logger(log_path: str | Path | None, name: str = "headlab") -> logging.Logger:
    """A logger that writes to the job's log file (and stderr when there is none)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    handler: logging.Handler
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, mode="w")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    _log_uncaught_exceptions(logger)
    return logger


def _log_uncaught_exceptions(logger: logging.Logger) -> None:
    """A job that dies still leaves its traceback in its log (what --show-failed-logs prints)."""
    default_hook = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        logger.error("job failed: %s", error, exc_info=(kind, error, trace))
        default_hook(kind, error, trace)

    sys.excepthook = hook


def log_stream(logger: logging.Logger) -> TextIO:
    """The stream behind the logger's first handler, for tqdm to draw into."""
    for handler in logger.handlers:
        stream = getattr(handler, "stream", None)
        if stream is not None:
            return stream
    return sys.stderr


def progress_bar(logger: logging.Logger, total: int, desc: str) -> tqdm:
    """A tqdm bar written into the job's log, refreshed at most every 5 s (logs stay short)."""
    return tqdm(
        total=total, desc=desc, file=log_stream(logger), mininterval=5.0, ascii=True, dynamic_ncols=False
    )


def limit_threads(threads: int) -> None:
    """Use exactly the cores Snakemake gave the job."""
    import torch  # deferred: the data and plotting environments have no torch

    torch.set_num_threads(max(1, int(threads)))
