"""Where GLUE comes from: `data.source: auto`, and a hub that cannot be reached failing within
seconds with what to do (offline variables honoured, no retries, a short probe otherwise).

The hub cases run `load_hub_dataset` in a fresh process with an empty Hugging Face cache, since
datasets and huggingface_hub read their settings when they are imported.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from headlab.data import glue_hub
from headlab.data.glue import prepare_split, resolve_source
from tiny import write_tiny_glue

ROOT = Path(__file__).resolve().parents[2]
FAST_SECONDS = 20.0  # datasets itself retried for about 30 s


def test_auto_is_local_when_the_folder_exists_and_the_hub_otherwise(tmp_path: Path) -> None:
    assert resolve_source("auto", tmp_path) == "local"
    assert resolve_source("auto", tmp_path / "missing") == "hub"
    assert resolve_source("auto", None) == "hub"
    assert resolve_source("local", tmp_path / "missing") == "local"  # local stays local: an error later
    assert resolve_source("hub", tmp_path) == "hub"


def test_auto_reads_an_existing_folder(tmp_path: Path) -> None:
    glue = write_tiny_glue(tmp_path / "glue", ("MRPC",))
    table, metadata = prepare_split("MRPC", "dev", "auto", glue, None, 5, 0, None)
    assert metadata["source"] == "local" and metadata["source_path"] == str(glue / "MRPC" / "dev.tsv")
    assert table.num_rows == 5


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_in_fresh_process(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    """`load_hub_dataset` of MRPC train in a new interpreter with an empty cache and `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    base.update(HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH=str(ROOT / "scripts"), **env)
    code = (
        "from headlab.data.glue_hub import load_hub_dataset\n"
        "from headlab.data.tasks import get_task\n"
        "load_hub_dataset(get_task('MRPC'), 'train', None)\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], env=base, capture_output=True, text=True, timeout=120, check=False
    )
    return done, time.monotonic() - start


def assert_says_what_to_do(done: subprocess.CompletedProcess, reason: str) -> None:
    assert done.returncode != 0, done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("headlab.data.glue_table.GlueDataError: cannot read GLUE MRPC train"), message
    assert reason in message, message
    assert "connect this machine to the internet" in message, message
    assert "point data.local_dir at a GLUE folder in the glue_data/<TASK>/{train,dev}.tsv layout" in message
    assert "Retrying" not in done.stderr, done.stderr


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_offline_variables_fail_within_seconds_with_both_ways(tmp_path: Path, variable: str) -> None:
    done, seconds = load_in_fresh_process(tmp_path, **{variable: "1"})
    assert_says_what_to_do(done, f"offline mode is on ({variable}=1)")
    assert seconds < FAST_SECONDS, seconds


def test_an_unreachable_hub_fails_within_seconds_without_offline_variables(tmp_path: Path) -> None:
    # Nothing listens on that port: the probe is refused, datasets never starts its retries.
    done, seconds = load_in_fresh_process(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    assert_says_what_to_do(done, "the hub cannot be reached (ConnectError")
    assert seconds < FAST_SECONDS, seconds


@pytest.fixture
def answering_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local HTTP server that answers 404 to everything, as the hub's endpoint."""

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = "http://{}:{}".format(*server.server_address[:2])
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_the_probe_counts_any_answer_and_names_a_refusal(
    answering_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert glue_hub.hub_unreachable(timeout=5) is None  # a 404 is an answer
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    start = time.monotonic()
    reason = glue_hub.hub_unreachable(timeout=2)
    assert reason is not None and reason.startswith("ConnectError"), reason
    assert time.monotonic() - start < 5


def test_start_problem_only_without_a_cached_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path))
    for name in ("HF_DATASETS_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    glue_hub.start_problem.cache_clear()
    try:
        assert glue_hub.cached_copies() == []
        assert glue_hub.start_problem() == "offline mode is on (HF_DATASETS_OFFLINE=1)"
        (tmp_path / "datasets" / "nyu-mll___glue").mkdir(parents=True)  # a copy built earlier
        glue_hub.start_problem.cache_clear()
        assert glue_hub.cached_copies() == [tmp_path / "datasets" / "nyu-mll___glue"]
        assert glue_hub.start_problem() is None  # the job tries the cache
    finally:
        glue_hub.start_problem.cache_clear()
