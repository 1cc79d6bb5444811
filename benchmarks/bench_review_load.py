"""Load on a real `hfaid review` server: N reviewer sessions cast M votes each over Streamlit's
own websocket protocol (what the browser sends), downloading each shown image over HTTP as a
browser does; reports click-to-next-image latency and checks that every vote was stored and the
two-reviewer rule held.

    .venv/bin/python benchmarks/bench_review_load.py            # 20 sessions x 50 votes
    .venv/bin/python benchmarks/bench_review_load.py --small    # 4 sessions x 10 votes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from db.review import current_votes, rule_violations, state_counts  # noqa: E402
from hfaid.commands.review import APP_SCRIPT, streamlit_argv  # noqa: E402
from tests.review_fixtures import PASSWORD, build_review_catalog  # noqa: E402

CAPTION = re.compile(r"image ([0-9a-f]{12})")
# The floor: the same login + Accept/Reject loop in a bare Streamlit app with no catalog,
# no previews; our page's latency is reported next to it (same machine, same minute).
BASELINE_APP = """
import secrets
import streamlit as st
if "user" not in st.session_state:
    with st.form("login"):
        name = st.text_input("Username")
        st.text_input("Password", type="password")
        if st.form_submit_button("Log in"):
            st.session_state["user"] = name
            st.rerun()
else:
    st.caption("image " + secrets.token_hex(6))
    st.button("Accept")
    st.button("Reject")
"""


class Session:
    """One browser tab's worth of protocol: widget ids come from the server's deltas; images are
    fetched as soon as their delta arrives, like a browser rendering the page as it streams."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws = None
        self.page_hash = ""
        self.fetches: list[asyncio.Task] = []
        self.image_bytes = 0

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.url, subprotocols=["streamlit"], max_size=None)

    async def rerun(self, widgets: list[tuple[str, str, object]]) -> dict:
        """Send one rerun (like a click); return what the finished run showed."""
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = self.page_hash
        for widget_id, kind, value in widgets:
            w = msg.rerun_script.widget_states.widgets.add()
            w.id = widget_id
            setattr(w, kind, value)
        await self.ws.send(msg.SerializeToString())
        return await self.collect()

    async def collect(self) -> dict:
        seen = {"buttons": {}, "inputs": {}, "texts": [], "images": 0}
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await asyncio.wait_for(self.ws.recv(), timeout=120))
            kind = fwd.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = fwd.new_session.page_script_hash
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                el = fwd.delta.new_element
                etype = el.WhichOneof("type")
                if etype == "button":
                    seen["buttons"][el.button.label] = el.button.id
                elif etype == "text_input":
                    seen["inputs"][el.text_input.label] = el.text_input.id
                elif etype == "markdown":
                    seen["texts"].append(el.markdown.body)
                elif etype == "alert":
                    seen["texts"].append(el.alert.body)
                elif etype == "imgs":
                    seen["images"] += 1
                    self.fetches += [asyncio.create_task(self.fetch(i.url)) for i in el.imgs.imgs]
            elif kind == "script_finished":
                if fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    return seen
                if fwd.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    raise RuntimeError(f"script finished with status {fwd.script_finished}")

    async def fetch(self, url: str) -> None:
        """GET one media URL (HTTP/1.1, like a browser's parallel image requests)."""
        host, port = self.url.split("/")[2].split(":")
        path = url if url.startswith("/") else "/" + url
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"GET {path}: {data[:80]!r}")
        self.image_bytes += len(data)

    async def images_loaded(self) -> None:
        """Wait for every image fetch started so far (the next image is then on screen)."""
        fetches, self.fetches = self.fetches, []
        await asyncio.gather(*fetches)

    @staticmethod
    def image_of(seen: dict) -> str | None:
        for text in seen["texts"]:
            match = CAPTION.search(text)
            if match:
                return match.group(1)
        return None


async def reviewer(url: str, name: str, votes: int, latencies: dict[str, list[float]],
                   rng: random.Random, results: dict, think: tuple[float, float]) -> None:
    s = Session(url)
    await s.connect()
    seen = await s.rerun([])
    seen = await s.rerun([
        (seen["inputs"]["Username"], "string_value", name),
        (seen["inputs"]["Password"], "string_value", PASSWORD),
        (seen["buttons"]["Log in"], "trigger_value", True),
    ])
    if "Accept" not in seen["buttons"]:  # st.rerun() after login: the next run shows the page
        seen = await s.collect()
    await s.images_loaded()
    cast = 0
    while cast < votes:
        image = s.image_of(seen)
        if image is None or "Accept" not in seen["buttons"]:
            break  # nothing left for this reviewer
        label = "Accept" if rng.random() < 0.7 else "Reject"
        await asyncio.sleep(rng.uniform(*think))  # the reviewer looks before clicking
        start = time.perf_counter()
        seen = await s.rerun([(seen["buttons"][label], "trigger_value", True)])
        latencies["rerun"].append(time.perf_counter() - start)
        await s.images_loaded()
        latencies["shown"].append(time.perf_counter() - start)
        if s.image_of(seen) == image:
            raise RuntimeError(f"{name}: the same image {image} came back after a vote")
        if any("already" in t or "no longer" in t for t in seen["texts"]):
            results["refused"] += 1
        cast += 1
    results["cast"] += cast
    results["image_mb"] += s.image_bytes / 1e6
    await s.ws.close()


def start_server(catalog: Path, port: int, log: Path, baseline: bool = False,
                 prepare: bool = False) -> subprocess.Popen:
    if baseline:  # the same Streamlit server settings as `hfaid review`, another script
        app = log.with_name("baseline_app.py")
        app.write_text(BASELINE_APP)
        argv = [str(app) if a == str(APP_SCRIPT) else a for a in streamlit_argv("127.0.0.1", port)]
    else:
        argv = [sys.executable, "-m", "hfaid.cli", "review", "--port", str(port),
                "--stage-input", "ingest", "--catalog", str(catalog)]
        argv += ["--prepare"] if prepare else []
    proc = subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=ROOT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("server did not start")


async def drive(url: str, sessions: int, votes: int, seed: int,
                think: tuple[float, float]) -> tuple[dict[str, list[float]], dict]:
    latencies: dict[str, list[float]] = {"rerun": [], "shown": []}
    results = {"cast": 0, "refused": 0, "image_mb": 0.0}
    await asyncio.gather(*[
        reviewer(url, f"r{i:02d}", votes, latencies, random.Random(seed + i), results, think)
        for i in range(sessions)
    ])
    return latencies, results


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(1000 * statistics.median(values), 1),
            "p95": round(1000 * percentile(values, 95), 1),
            "max": round(1000 * max(values), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="4 sessions x 10 votes")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--votes", type=int, default=50)
    parser.add_argument("--images", type=int, default=0, help="queue size [default: enough]")
    parser.add_argument("--image-size", default="640x480")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prepare", action="store_true",
                        help="`hfaid review --prepare`: previews built before serving (not timed)")
    parser.add_argument("--think", default="0,0.2",
                        help="min,max seconds a reviewer looks before clicking")
    args = parser.parse_args()
    if args.small:
        args.sessions, args.votes = 4, 10
    args.think = tuple(float(v) for v in args.think.split(","))
    images = args.images or max(20, args.sessions * args.votes // 2 + 100)
    size = tuple(int(v) for v in args.image_size.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="hfaid-bench-review-"))
    t0 = time.perf_counter()
    cat = build_review_catalog(folder, images, [f"r{i:02d}" for i in range(args.sessions)], [],
                               size=size)
    setup_s = time.perf_counter() - t0
    runs = {}
    for name in ("baseline", "review"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = start_server(cat.path, port, folder / f"{name}.log", baseline=name == "baseline",
                            prepare=args.prepare)
        try:
            t0 = time.perf_counter()
            latencies, results = asyncio.run(drive(
                f"ws://127.0.0.1:{port}/_stcore/stream", args.sessions, args.votes, args.seed,
                args.think))
            runs[name] = (latencies, results, time.perf_counter() - t0)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    latencies, results, wall = runs["review"]
    stored = current_votes(cat).num_rows
    violations = rule_violations(cat)
    report = {
        "sessions": args.sessions, "votes_per_session": args.votes, "queue_images": images,
        "think_s": args.think, "previews": "prepared" if args.prepare else "lazy",
        "image_size": args.image_size, "votes_cast": results["cast"], "votes_stored": stored,
        "refused": results["refused"], "rule_violations": len(violations),
        "states": state_counts(cat, None), "wall_s": round(wall, 1),
        "votes_per_s": round(stored / wall, 1),
        # "rerun": click sent -> the rerun showing the next image finished (image URLs known);
        # "shown": ... and its fit view and crops downloaded, as a browser would show them.
        "click_to_next_ms": summary_ms(latencies["rerun"]),
        "click_to_image_shown_ms": summary_ms(latencies["shown"]),
        "image_mb_downloaded": round(results["image_mb"], 1),
        "setup_s": round(setup_s, 1), "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 1),
        "baseline_click_to_next_ms": summary_ms(runs["baseline"][0]["rerun"]),
    }
    report["p95_ratio_to_baseline"] = round(
        report["click_to_image_shown_ms"]["p95"] / report["baseline_click_to_next_ms"]["p95"], 2)
    print(json.dumps(report, indent=2))
    if stored != args.sessions * args.votes or violations:
        print("FAILED: " + "; ".join(violations[:5]) + f" stored {stored}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
