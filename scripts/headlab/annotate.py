"""Label exported attention maps by hand (Sec. 4.1: the paper annotated ~400 maps): a local web page.

    python -m headlab.annotate --maps results/minilm/SST-2/seed-42/maps/maps.parquet \\
        --maps results/minilm/STS-B/seed-42/maps/maps.parquet --labels labels.csv --annotator ana

then open the printed address (http://127.0.0.1:8765/ by default). The page shows one map at a
time (the PNG that rule export_maps wrote beside the maps table, ``png/<map_id>.png``) with five
buttons, one per class; keys 1-5 answer, u takes the last answer back (a key pressed while the
previous answer is still on its way is ignored, so no map is answered twice). Every answer is
written to the labels file at once (the whole file is rewritten to a temporary sibling and
renamed, so it is never half-written), and a restart resumes at the first map this annotator has
not labelled. Maps come in a seeded shuffled order (``--seed``) so that tasks and layers mix.

The labels file (its format: `headlab.data.labels`) has the columns ``map_id, label,
annotator, time`` (ISO 8601, UTC), one row per answer; `final_labels` keeps the last answer per
map (what rule train_pattern_cnn reads through the config key ``patterns.labels``). Only the
standard library serves the page; the server listens on the loopback address unless told
otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from headlab.data.labels import LABEL_SCHEMA, PATTERNS, read_labels, write_labels

DEFAULT_PORT = 8765
MAX_BODY = 4096


# ---------------------------------------------------------------------------------------------
# The session: which map comes next, answers, undo
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapEntry:
    map_id: str
    task: str
    example: int
    layer: int
    head: int
    n_tokens: int
    png: Path


def load_maps(paths: Sequence[str | os.PathLike[str]], seed: int = 0) -> list[MapEntry]:
    """Every map of the maps tables (PNG in ``png/`` beside each table), in a seeded shuffled order."""
    entries: list[MapEntry] = []
    for path in paths:
        table = pl.read_parquet(
            Path(path), columns=["map_id", "task", "example", "layer", "head", "n_tokens"]
        )
        folder = Path(path).parent / "png"
        for row in table.iter_rows(named=True):
            entries.append(
                MapEntry(
                    row["map_id"],
                    row["task"],
                    int(row["example"]),
                    int(row["layer"]),
                    int(row["head"]),
                    int(row["n_tokens"]),
                    folder / f"{row['map_id']}.png",
                )
            )
    names = [e.map_id for e in entries]
    if len(set(names)) != len(names):
        raise ValueError("a map_id appears in more than one maps table")
    order = np.random.default_rng(seed).permutation(len(entries))
    return [entries[i] for i in order]


class AnnotationSession:
    """The maps, the labels file and one annotator; thread-safe (the server is threaded)."""

    def __init__(self, maps: Sequence[MapEntry], labels_path: str | os.PathLike[str], annotator: str) -> None:
        if not annotator:
            raise ValueError("an annotator name is required")
        self.maps = list(maps)
        self.by_id = {m.map_id: m for m in self.maps}
        self.labels_path = Path(labels_path)
        self.annotator = annotator
        self.labels = read_labels(self.labels_path)
        self.lock = threading.Lock()

    def _mine(self) -> set[str]:
        return set(self.labels.filter(pl.col("annotator") == self.annotator)["map_id"].to_list())

    def state(self) -> dict[str, Any]:
        """The next map this annotator has not labelled (null when done) and the progress."""
        with self.lock:
            mine = self._mine() & set(self.by_id)
            upcoming = next((m for m in self.maps if m.map_id not in mine), None)
            return {
                "map": None
                if upcoming is None
                else {
                    "map_id": upcoming.map_id,
                    "task": upcoming.task,
                    "example": upcoming.example,
                    "layer": upcoming.layer,
                    "head": upcoming.head,
                    "n_tokens": upcoming.n_tokens,
                    "png": f"/png/{upcoming.map_id}.png",
                },
                "done": len(mine),
                "total": len(self.maps),
                "annotator": self.annotator,
                "patterns": list(PATTERNS),
            }

    def answer(self, map_id: str, label: str) -> dict[str, Any]:
        """Record one answer and write the labels file; returns the new state."""
        if map_id not in self.by_id:
            raise KeyError(f"unknown map_id {map_id!r}")
        if label not in PATTERNS:
            raise ValueError(f"unknown label {label!r}; valid: {list(PATTERNS)}")
        with self.lock:
            row = {
                "map_id": map_id,
                "label": label,
                "annotator": self.annotator,
                "time": datetime.now(UTC).isoformat(timespec="microseconds"),
            }
            self.labels = pl.concat([self.labels, pl.DataFrame([row], schema=LABEL_SCHEMA)])
            write_labels(self.labels, self.labels_path)
        return self.state()

    def undo(self) -> dict[str, Any]:
        """Take back this annotator's latest answer (if any); returns the new state."""
        with self.lock:
            positions = np.flatnonzero((self.labels["annotator"] == self.annotator).to_numpy())
            if positions.size:
                keep = np.ones(self.labels.height, dtype=bool)
                keep[positions[-1]] = False
                self.labels = self.labels.filter(pl.Series(keep))
                write_labels(self.labels, self.labels_path)
        return self.state()


# ---------------------------------------------------------------------------------------------
# The web page and the server
# ---------------------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>headlab: attention patterns</title>
<link rel="icon" href="data:,">
<style>
 body { font-family: sans-serif; margin: 2em auto; max-width: 760px; color: #222; }
 #map { width: 384px; height: 384px; image-rendering: pixelated; border: 1px solid #999; }
 button { font-size: 1em; margin: 0.2em; padding: 0.5em 0.8em; }
 .hint { color: #666; font-size: 0.9em; }
</style></head>
<body>
<h2>Which pattern is this attention map?</h2>
<p id="info"></p>
<img id="map" alt="attention map (rows: query tokens, columns: key tokens)">
<div id="buttons"></div>
<p class="hint">Keys 1-5 answer, u takes the last answer back. Rows are query tokens, columns key
tokens, darker is more attention, downsampled over the real tokens. Vertical: stripes on
[CLS]/[SEP] (and punctuation); diagonal: previous/next token; vertical+diagonal: both; block:
attention within each sentence of a pair; heterogeneous: anything else.</p>
<p id="status" class="hint"></p>
<script>
let state = null;
let busy = false;  // one request at a time: a key pressed before the answer arrives is ignored,
                   // so it can never label the map that is still shown a second time
async function call(path, body) {
  if (busy) return;
  busy = true;
  try {
    const options = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                                 body: JSON.stringify(body)};
    const response = await fetch(path, options);
    const data = await response.json();
    if (!response.ok) { document.getElementById("status").textContent = data.error; return; }
    show(data);
  } finally {
    busy = false;
  }
}
function show(data) {
  state = data;
  const buttons = document.getElementById("buttons");
  buttons.innerHTML = "";
  data.patterns.forEach((name, i) => {
    const b = document.createElement("button");
    b.textContent = (i + 1) + " " + name;
    b.onclick = () => answer(name);
    buttons.appendChild(b);
  });
  const progress = data.done + " / " + data.total + " labelled by " + data.annotator;
  if (data.map === null) {
    document.getElementById("info").textContent = "All maps labelled. " + progress;
    document.getElementById("map").removeAttribute("src");
    document.getElementById("map").dataset.mapId = "";
    document.getElementById("map").hidden = true;
    return;
  }
  const m = data.map;
  document.getElementById("info").textContent = m.task + ", example " + m.example + ", layer " + m.layer +
    ", head " + m.head + " (" + m.n_tokens + " tokens). " + progress;
  document.getElementById("map").src = m.png;
  document.getElementById("map").dataset.mapId = m.map_id;
  document.getElementById("map").hidden = false;
  document.getElementById("status").textContent = "";
}
function answer(name) { if (state && state.map) call("/api/label", {map_id: state.map.map_id, label: name}); }
document.addEventListener("keydown", (event) => {
  if (!state) return;
  const i = parseInt(event.key, 10);
  if (i >= 1 && i <= state.patterns.length) answer(state.patterns[i - 1]);
  if (event.key === "u") call("/api/undo", {});
});
call("/api/next");
</script></body></html>
"""


def make_server(
    session: AnnotationSession, host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> ThreadingHTTPServer:
    """A server for `session` (port 0: any free port, see ``server.server_address``); not started."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep the terminal quiet
            return

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_GET(self) -> None:
            if self.path == "/":
                self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
            elif self.path == "/api/next":
                self._json(HTTPStatus.OK, session.state())
            elif self.path.startswith("/png/") and self.path.endswith(".png"):
                entry = session.by_id.get(self.path[len("/png/") : -len(".png")])
                if entry is None or not entry.png.is_file():
                    self._json(HTTPStatus.NOT_FOUND, {"error": f"no image {self.path}"})
                else:
                    self._send(HTTPStatus.OK, entry.png.read_bytes(), "image/png")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/api/label":
                    self._json(HTTPStatus.OK, session.answer(str(body["map_id"]), str(body["label"])))
                elif self.path == "/api/undo":
                    self._json(HTTPStatus.OK, session.undo())
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"error": f"no action {self.path}"})
            except (KeyError, ValueError, TypeError) as error:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m headlab.annotate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--maps", action="append", required=True, help="a maps.parquet of export_maps (repeatable)"
    )
    parser.add_argument("--labels", required=True, help="labels file to write (.csv or .parquet)")
    parser.add_argument("--annotator", default=os.environ.get("USER", "annotator"), help="your name")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order the maps are shown in")
    args = parser.parse_args(argv)
    session = AnnotationSession(load_maps(args.maps, args.seed), args.labels, args.annotator)
    server = make_server(session, args.host, args.port)
    host, port = server.server_address[:2]
    state = session.state()
    print(
        f"{state['done']} of {state['total']} maps labelled by {args.annotator}; labels go to {args.labels}"
    )
    print(f"open http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
