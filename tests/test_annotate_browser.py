"""The annotation page (`python -m headlab.annotate`) driven by hand, as a person would: headless
Chromium on loopback, keys 1-5 and u, the labels file after each step, and a restart.

Skipped with the reason where Chromium, chromedriver or Selenium is missing (tests/browser.py).
The screenshot of the page is saved as ``annotate.png`` in the test's temporary folder.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from selenium.webdriver.common.by import By

import browser
from browser import console_errors, headless_chromium, require_browser, wait_for
from headlab.analysis.patterns import MAPS_SCHEMA, PATTERNS
from headlab.annotate import MapEntry, load_maps
from headlab.data.labels import read_labels
from headlab.io.png import write_png

ROOT = Path(__file__).resolve().parents[1]
N_MAPS = 7
SIZE = 16
SEED = 3
START_SECONDS = 60.0


def write_exported_maps(folder: Path) -> Path:
    """A maps table of `N_MAPS` small synthetic maps with their PNGs, as rule export_maps writes them."""
    folder.mkdir(parents=True)
    rows, images = [], {}
    for i in range(N_MAPS):
        values = np.full((SIZE, SIZE), 0.01, dtype=np.float32)
        if i % 3 == 0:
            values[:, 0] = 1.0  # a vertical stripe on [CLS]
        if i % 3 == 1:
            values[np.arange(SIZE - 1), np.arange(1, SIZE)] = 1.0  # the next token
        if i % 3 == 2:
            values[: SIZE // 2, : SIZE // 2] = values[SIZE // 2 :, SIZE // 2 :] = 0.5  # two blocks
        values /= values.sum(axis=1, keepdims=True)
        name = f"tiny__MRPC__e{10 + i}_L{1 + i % 2}_H{1 + i % 4}"
        rows.append(
            {
                "map_id": name,
                "model": "tiny",
                "task": "MRPC",
                "example": 10 + i,
                "layer": 1 + i % 2,
                "head": 1 + i % 4,
                "n_tokens": 20 + i,
                "size": SIZE,
                "values": values.ravel().tolist(),
            }
        )
        images[name] = values
    pl.DataFrame(rows, schema=MAPS_SCHEMA).write_parquet(folder / "maps.parquet")
    for name, values in images.items():
        write_png(folder / "png" / f"{name}.png", values, scale=8)
    return folder / "maps.parquet"


@contextmanager
def annotate_server(maps: Path, labels: Path) -> Iterator[str]:
    """`python -m headlab.annotate` on a free loopback port: its address; stopped with Ctrl-C (SIGINT)."""
    command = [sys.executable, "-m", "headlab.annotate", "--maps", str(maps), "--labels", str(labels)]
    command += ["--annotator", "ana", "--port", "0", "--seed", str(SEED)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "scripts"), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    printed, url, deadline = [], None, time.monotonic() + START_SECONDS
    while url is None and time.monotonic() < deadline and process.poll() is None:
        try:
            printed.append(lines.get(timeout=0.5))
        except queue.Empty:
            continue
        if printed[-1].startswith("open http://"):
            url = printed[-1].split()[1]
    try:
        assert url is not None, f"the server printed no address:\n{''.join(printed)}"
        assert url.startswith("http://127.0.0.1:"), url  # loopback by default
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, f"the server did not stop cleanly on Ctrl-C: {process.returncode}"


def shown(driver) -> dict[str, object]:
    """What the page shows now: the map's id, its image's state and the info line."""
    return driver.execute_script(
        "const img = document.getElementById('map');"
        "return {id: img.dataset.mapId || null, hidden: img.hidden, src: img.getAttribute('src'),"
        " loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth,"
        " info: document.getElementById('info').textContent,"
        " buttons: Array.from(document.querySelectorAll('#buttons button')).map(b => b.textContent)};"
    )


def progress_is(driver, done: int):
    """A condition: the page reports `done` maps labelled and its map image has loaded."""

    def check():
        now = shown(driver)
        settled = now["loaded"] or now["hidden"]
        return now if settled and f"{done} / {N_MAPS} labelled by ana" in now["info"] else None

    return check


def press(driver, key: str) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(key)


def label_rows(path: Path) -> list[tuple[str, str, str]]:
    table = read_labels(path)
    return list(zip(table["map_id"], table["label"], table["annotator"], strict=True))


def expect_map(state: dict[str, object], entry: MapEntry) -> None:
    assert state["id"] == entry.map_id, state
    assert state["src"] == f"/png/{entry.map_id}.png" and state["loaded"], state
    assert state["width"] == SIZE * 8, state  # the exported PNG itself, 8 px per cell
    info = f"{entry.task}, example {entry.example}, layer {entry.layer}, head {entry.head}"
    info += f" ({entry.n_tokens} tokens)"
    assert info in state["info"], state


@pytest.mark.browser
def test_annotation_page_in_a_browser(tmp_path: Path) -> None:
    require_browser()
    maps = write_exported_maps(tmp_path / "tiny" / "MRPC" / "maps")
    labels = tmp_path / "labels.csv"
    order = load_maps([maps], seed=SEED)  # the order the server shows them in
    answers: list[tuple[str, str, str]] = []

    with headless_chromium(tmp_path / "profile") as driver:
        with annotate_server(maps, labels) as url:
            driver.get(url)
            first = wait_for(progress_is(driver, 0), "the first map")
            expect_map(first, order[0])
            assert first["buttons"] == [f"{i + 1} {name}" for i, name in enumerate(PATTERNS)]
            assert not labels.exists(), "the labels file was written before any answer"

            # Keys 1-5 answer the five classes, one map each, in the order shown.
            for i, key in enumerate("12345"):
                press(driver, key)
                state = wait_for(progress_is(driver, i + 1), f"answer {key}")
                answers.append((order[i].map_id, PATTERNS[i], "ana"))
                assert label_rows(labels) == answers, f"after key {key}"
                expect_map(state, order[i + 1])

            # u takes the last answer back: its row leaves the file and its map is shown again.
            press(driver, "u")
            state = wait_for(progress_is(driver, 4), "the undo")
            answers.pop()
            assert label_rows(labels) == answers
            expect_map(state, order[4])
            press(driver, "3")
            state = wait_for(progress_is(driver, 5), "the answer after the undo")
            answers.append((order[4].map_id, PATTERNS[2], "ana"))
            assert label_rows(labels) == answers
            expect_map(state, order[5])
            driver.save_screenshot(str(tmp_path / "annotate.png"))

        # A restart resumes at the first unlabelled map, with the file as it was.
        with annotate_server(maps, labels) as url:
            driver.get(url)
            state = wait_for(progress_is(driver, 5), "the page after the restart")
            expect_map(state, order[5])
            assert label_rows(labels) == answers
            for done, key in ((6, "2"), (7, "5")):
                press(driver, key)
                state = wait_for(progress_is(driver, done), f"answer {key} after the restart")
            answers += [(order[5].map_id, PATTERNS[1], "ana"), (order[6].map_id, PATTERNS[4], "ana")]
            assert "All maps labelled" in state["info"] and state["hidden"], state
            press(driver, "1")  # nothing left to answer: no row is added
            time.sleep(0.3)
            assert label_rows(labels) == answers
            assert console_errors(driver) == []

    table = read_labels(labels)
    assert table.height == N_MAPS and table["map_id"].n_unique() == N_MAPS
    assert table["time"].str.contains(r"^\d{4}-\d\d-\d\dT").all()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left
    assert (tmp_path / "annotate.png").read_bytes().startswith(b"\x89PNG")


def test_without_a_browser_the_test_is_skipped_with_the_reason_or_fails_when_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.delenv(browser.REQUIRED, raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium and chromedriver not found: apt-get install"):
        require_browser()
    monkeypatch.setenv(browser.REQUIRED, "1")
    with pytest.raises(pytest.fail.Exception, match="HEADLAB_BROWSER=1 but the browser cannot run"):
        require_browser()
