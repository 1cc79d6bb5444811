"""Load on a real `hfaid review` server, beside the previous code's server in the same run.

Sessions behave like the review page: this code's sessions talk to the review API as the bundled
component does (login, leased images loaded ahead, a click shows the next loaded image at once,
the vote is posted behind it); the previous code's sessions speak Streamlit's websocket protocol
and download each shown image (a rerun per click). Each run: N sessions x M votes at reviewer
pace (think 1-3 s) and saturated (think 0-0.2 s), then paced again while one client floods the
login form. Reports click -> next image on screen (p50/p95/max), vote round trips, server CPU,
votes stored, rule violations. `--queue-scale` times the queue's next-image and next-16 queries
at 10k and 1M images.

    flock -x /tmp/hfaid-bench.lock .venv/bin/python benchmarks/bench_review_load.py \
        --base /work/wt-21-base                          # previous code: a worktree of 9740d3d
    .venv/bin/python benchmarks/bench_review_load.py --small   # 4 sessions x 10 votes
    .venv/bin/python benchmarks/bench_review_load.py --queue-scale
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.review_fixtures import (  # noqa: E402
    PASSWORD,
    browser_login,
    build_review_catalog,
    component_frame,
    free_port,
    start_server,
    stop_server,
)

CAPTION = re.compile(r"image ([0-9a-f]{12})")


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(1000 * statistics.median(values), 1),
            "p95": round(1000 * percentile(values, 95), 1), "max": round(1000 * max(values), 1)}


# ---- this code: the component's protocol over the review API --------------------------------


class ApiSession:
    """One reviewer's page: leased images loaded ahead (meta, fit view, crops, as the
    component's prefetch does), a click shows the next loaded image, the vote is posted behind
    it, one request at a time, and the answer's leases are merged in."""

    def __init__(self, base: str, name: str, stats: dict) -> None:
        self.name, self.stats = name, stats
        self.http = httpx2.AsyncClient(base_url=base, timeout=120,
                                       limits=httpx2.Limits(max_connections=6),
                                       headers={"X-Hfaid": "1"})
        self.queue: list[str] = []
        self.tickets: dict[str, str] = {}
        self.gone: set[str] = set()
        self.loads: dict[str, asyncio.Task] = {}
        self.chain: asyncio.Task | None = None

    async def login(self) -> None:
        for _ in range(60):  # "busy" (a flood) or a delay: the reviewer tries again
            r = await self.http.post("/api/review/login", json={"name": self.name,
                                                                "password": PASSWORD})
            if r.status_code not in (429, 503):
                break
            await asyncio.sleep(r.json().get("retry_after", 1))
        r.raise_for_status()
        r = await self.http.get("/api/review/state")
        r.raise_for_status()
        self.merge(r.json()["items"])

    def merge(self, items: list[dict]) -> None:
        self.tickets.update((i["image_id"], i["ticket"]) for i in items)
        ids = [i["image_id"] for i in items]
        keep = [q for i, q in enumerate(self.queue) if i == 0 or q in ids]
        keep += [i for i in ids if i not in keep and i not in self.gone]
        self.queue = keep
        for image_id in self.queue:
            if image_id not in self.loads:
                self.loads[image_id] = asyncio.create_task(self.load(image_id))

    async def load(self, image_id: str) -> bool:
        """The fit view and crops, one request (as the component loads an image ahead)."""
        r = await self.http.get(f"/api/review/bundle/{image_id}",
                                params={"t": self.tickets[image_id]})
        self.stats["image_mb"] += len(r.content) / 1e6
        return r.status_code == 200

    async def on_screen(self) -> str | None:
        """The first leased image once its pixels are here (waiting for leases if needed)."""
        for _ in range(600):
            while self.queue:
                image_id = self.queue[0]
                if await self.loads[image_id]:
                    return image_id
                self.queue.pop(0)  # a file error: the page moves on
            if self.chain is not None and not self.chain.done():
                await asyncio.wait([self.chain])
            else:
                r = await self.http.get("/api/review/state")
                self.merge(r.json()["items"])
                if not self.queue:
                    return None
        return None

    async def post(self, previous: asyncio.Task | None, vote: dict) -> None:
        if previous is not None:
            await previous
        start = time.perf_counter()
        r = await self.http.post("/api/review/vote", json=vote)
        self.stats["ack"].append(time.perf_counter() - start)
        body = r.json()
        if r.status_code != 200:
            self.stats["refused"] += 1
        self.merge(body.get("items", []))

    async def run(self, votes: int, rng: random.Random, think: tuple[float, float]) -> int:
        await self.login()
        cast = 0
        image = await self.on_screen()
        while image is not None and cast < votes:
            await asyncio.sleep(rng.uniform(*think))  # the reviewer looks before clicking
            start = time.perf_counter()
            decision = "accept" if rng.random() < 0.7 else "reject"
            vote = {"image_id": image, "decision": decision,
                    "reasons": ["blur"] if decision == "reject" else [], "seen_ms": 1000}
            self.gone.add(image)
            self.queue.pop(0)
            self.chain = asyncio.create_task(self.post(self.chain, vote))
            cast += 1
            image = await self.on_screen()
            if image is not None:
                self.stats["shown"].append(time.perf_counter() - start)
        if self.chain is not None:
            await self.chain
        for task in self.loads.values():  # images loaded ahead that nobody will look at
            task.cancel()
        await asyncio.gather(*self.loads.values(), return_exceptions=True)
        await self.http.aclose()
        return cast


# ---- the previous code: Streamlit's websocket protocol, a rerun per click -------------------


class WsSession:
    """One browser tab of the previous app: widget ids come from the server's deltas; images
    are fetched as soon as their delta arrives, like a browser rendering the streamed page."""

    def __init__(self, url: str, stats: dict) -> None:
        self.url, self.stats = url, stats
        self.page_hash = ""
        self.fetches: list[asyncio.Task] = []

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.url, subprotocols=["streamlit"], max_size=None)

    async def rerun(self, widgets: list[tuple[str, str, object]]) -> dict:
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
        seen = {"buttons": {}, "inputs": {}, "texts": []}
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
                elif etype in ("markdown", "alert"):
                    seen["texts"].append(getattr(el, etype).body)
                elif etype == "imgs":
                    self.fetches += [asyncio.create_task(self.fetch(i.url)) for i in el.imgs.imgs]
            elif kind == "script_finished":
                if fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    return seen
                if fwd.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    raise RuntimeError(f"script finished with status {fwd.script_finished}")

    async def fetch(self, url: str) -> None:
        host, port = self.url.split("/")[2].split(":")
        path = url if url.startswith("/") else "/" + url
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        self.stats["image_mb"] += len(data) / 1e6

    async def images_loaded(self) -> None:
        fetches, self.fetches = self.fetches, []
        await asyncio.gather(*fetches)

    async def login(self, name: str, password: str) -> dict:
        seen = await self.rerun([])
        return await self.rerun([
            (seen["inputs"]["Username"], "string_value", name),
            (seen["inputs"]["Password"], "string_value", password),
            (seen["buttons"]["Log in"], "trigger_value", True),
        ])

    async def run(self, name: str, votes: int, rng: random.Random,
                  think: tuple[float, float]) -> int:
        await self.connect()
        seen = await self.login(name, PASSWORD)
        if "Accept" not in seen["buttons"]:  # st.rerun() after login: the next run shows it
            seen = await self.collect()
        await self.images_loaded()
        cast = 0
        while cast < votes:
            texts = " ".join(seen["texts"])
            if not CAPTION.search(texts) or "Accept" not in seen["buttons"]:
                break
            label = "Accept" if rng.random() < 0.7 else "Reject"
            await asyncio.sleep(rng.uniform(*think))
            start = time.perf_counter()
            seen = await self.rerun([(seen["buttons"][label], "trigger_value", True)])
            await self.images_loaded()
            self.stats["shown"].append(time.perf_counter() - start)
            self.stats["ack"].append(self.stats["shown"][-1])
            cast += 1
        await self.ws.close()
        return cast


# ---- one real browser beside the simulated sessions ---------------------------------------


def browser_reviewer(base: str, name: str, votes: int, think: tuple[float, float],
                     out: dict) -> int:
    """Chromium (Playwright) voting by key at reviewer pace; the component's own measurements
    (key press -> next image painted, after the frame) are collected."""
    from playwright.sync_api import sync_playwright

    from tests.conftest import chromium_path

    rng = random.Random(99)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(),
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        browser_login(page, base, name)
        frame = component_frame(page)
        frame.wait_for_function("() => document.body.dataset.image", timeout=60_000)
        cast = 0
        for _ in range(votes):
            page.wait_for_timeout(1000 * max(0.45, rng.uniform(*think)))
            before = frame.evaluate("() => document.body.dataset.image")
            if not before:
                break
            page.keyboard.press("a")
            cast += 1
            frame.wait_for_function("p => document.body.dataset.image !== p", arg=before,
                                    timeout=60_000)
        page.wait_for_timeout(1500)  # the last vote's request
        timings = frame.evaluate("() => window.hfaidTimings.map(t => t.ms)")
        out["painted"] = [t / 1000 for t in timings]
        browser.close()
    return cast


# ---- the login flood ------------------------------------------------------------------------


async def flood_api(base: str, stop: asyncio.Event, counts: dict) -> None:
    """One client (its own address) posting wrong passwords for made-up names, 4 at a time."""
    transport = httpx2.AsyncHTTPTransport(local_address="127.0.0.99")
    async with httpx2.AsyncClient(base_url=base, transport=transport, timeout=60,
                                  headers={"X-Hfaid": "1"}) as http:
        async def loop(k: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                r = await http.post("/api/review/login",
                                    json={"name": f"x{k}-{i}", "password": "wrong guess"})
                counts[r.status_code] = counts.get(r.status_code, 0) + 1

        await asyncio.gather(*[loop(k) for k in range(4)])


async def flood_ws(url: str, stop: asyncio.Event, counts: dict) -> None:
    """The previous app's login form, submitted over and over by 4 tabs of one browser."""
    async def loop(k: int) -> None:
        s = WsSession(url, {"image_mb": 0.0})
        await s.connect()
        i = 0
        while not stop.is_set():
            i += 1
            await s.login(f"x{k}-{i}", "wrong guess")
            counts["submits"] = counts.get("submits", 0) + 1
        await s.ws.close()

    await asyncio.gather(*[loop(k) for k in range(4)])


# ---- one run --------------------------------------------------------------------------------


async def drive(kind: str, port: int, sessions: int, votes: int, seed: int,
                think: tuple[float, float], flood: bool, browser: bool = False) -> dict:
    stats = {"shown": [], "ack": [], "refused": 0, "image_mb": 0.0}
    base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/_stcore/stream"
    stop, counts = asyncio.Event(), {}
    flooder = None
    if flood:
        flooder = asyncio.create_task(flood_api(base, stop, counts) if kind == "new"
                                      else flood_ws(ws, stop, counts))
        await asyncio.sleep(2)  # the flood is on before the first click
    if kind == "new":
        runs = [ApiSession(base, f"r{i:02d}", stats).run(votes, random.Random(seed + i), think)
                for i in range(sessions)]
    else:
        runs = [WsSession(ws, stats).run(f"r{i:02d}", votes, random.Random(seed + i), think)
                for i in range(sessions)]
    real: dict = {}
    if browser and kind == "new":  # one more reviewer, in Chromium
        async def in_chromium() -> int:
            try:
                return await asyncio.to_thread(browser_reviewer, base, f"r{sessions:02d}",
                                               votes, think, real)
            except Exception as exc:  # noqa: BLE001 - reported, the load run goes on
                real["error"] = repr(exc)
                return 0

        runs.append(in_chromium())
    cpu0 = _server_cpu(port)
    start = time.perf_counter()
    cast = sum(await asyncio.gather(*runs))
    wall = time.perf_counter() - start
    cpu = _server_cpu(port) - cpu0
    stop.set()
    if flooder is not None:
        await flooder
    return {"cast": cast, "wall_s": round(wall, 1), "server_cpu_s": round(cpu, 1),
            "shown_ms": summary_ms(stats["shown"]), "vote_round_trip_ms": summary_ms(stats["ack"]),
            "refused": stats["refused"], "image_mb": round(stats["image_mb"], 1),
            "flood": counts or None,
            **({"chromium_painted_ms": summary_ms(real.get("painted", [])),
                "chromium_error": real.get("error")} if real else {})}


_SERVER_PIDS: dict[int, int] = {}


def _server_cpu(port: int) -> float:
    """CPU seconds used so far by the server process group listening on `port`."""
    pid = _SERVER_PIDS.get(port)
    if pid is None:
        return 0.0
    total = 0.0
    for child in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(p) for p in out.split()]
    return kids + [g for k in kids for g in _children(k)]


def one_run(kind: str, name: str, template: Path, folder: Path, code: Path, args, think,
            flood) -> dict:
    """A fresh copy of the catalog (cold preview cache), a fresh server of `code`, one drive."""
    label = f"{kind}-{name}"
    run_dir = folder / label
    run_dir.mkdir()
    catalog = run_dir / "catalog.duckdb"
    shutil.copy(template, catalog)
    port = free_port()
    load0 = os.getloadavg()[0]
    extra = ["--prepare"] if args.prepare else []
    proc = start_server(catalog, port, run_dir / "server.log", *extra, root=code)
    _SERVER_PIDS[port] = proc.pid
    try:
        result = asyncio.run(drive(kind, port, args.sessions, args.votes, args.seed, think, flood,
                                   browser=args.browser and think[1] >= 1))
    finally:
        stop_server(proc)
    stored, violations = _check(code, catalog)
    result.update({"run": label + ("-prepared" if args.prepare else ""), "think_s": think,
                   "stored": stored,
                   "rule_violations": violations,
                   "load_avg_1min": [round(load0, 1), round(os.getloadavg()[0], 1)]})
    print(json.dumps(result), flush=True)
    return result


# ---- the queue at 10k and 1M ----------------------------------------------------------------


def synthetic_catalog(path: Path, images: int) -> None:
    """A catalog shaped like a day into reviewing a big pool: `images` in the review queue
    (five funnel stages of outcomes each), 30% done with two votes, 200 with one vote, 60
    reviewer accounts."""
    from db.catalog import Catalog
    from db.migrate import migrate

    cat = Catalog(path)
    migrate(cat)
    done, half = int(images * 0.3), 200
    with cat.connect() as con:
        con.execute(f"INSERT INTO images (image_id, bytes, format, width, height) "
                    f"SELECT sha256(i::VARCHAR), 1000, 'JPEG', 640, 480 FROM range({images}) t(i)")
        con.execute("INSERT INTO paths (path, image_id, source, size) SELECT '/pool/' || "
                    "image_id || '.jpg', image_id, 'bench', 1000 FROM images")
        for stage in ("clean", "dedup", "quality", "aesthetic", "review_queue"):
            con.execute(f"INSERT INTO stage_outcomes (image_id, stage, status) "
                        f"SELECT image_id, '{stage}', 'pass' FROM images")
        con.execute("INSERT INTO reviewers (name, role, password_hash) SELECT 'q' || i, "
                    "'reviewer', 'x' FROM range(60) t(i)")
        con.execute(
            f"""INSERT INTO review_votes (image_id, reviewer, decision, reasons, cast_at)
            WITH o AS (SELECT image_id, row_number() OVER (ORDER BY image_id) AS n FROM images)
            SELECT image_id, 'q' || (n % 50), 'accept', [], now() FROM o WHERE n <= {done + half}
            UNION ALL
            SELECT image_id, 'q' || (n % 50 + 1), 'accept', [], now() FROM o WHERE n <= {done}""")
        con.execute("CHECKPOINT")


def queue_scale(folder: Path, base: Path | None, sizes: list[int], rounds: int = 40) -> list[dict]:
    """The queue's per-click queries at each size, interleaved round by round so that the
    shared machine's load hits every size alike; wall and CPU time per call. A click = the vote
    and the lease top-up (one transaction); a first page = a new reviewer's first leases; next
    16 = the unleased images the server builds previews for. The previous code's claim (one
    SQL over the whole queue) beside them."""
    from db.catalog import Catalog
    from db.review import Rules, Vote, next_images, sync_queue, upcoming_images

    rows, cats = {}, {}
    for n in sizes:
        path = folder / f"queue-{n}.duckdb"
        t0 = time.perf_counter()
        synthetic_catalog(path, n)
        rows[n] = {"images": n, "build_s": round(time.perf_counter() - t0, 1),
                   "previous_claim_ms": _old_claim(path, base, 3 if n >= 500_000 else 10)
                   if base else None}
        cats[n] = Catalog(path)
        t0 = time.perf_counter()
        sync_queue(cats[n], "review_queue", force=True)  # once, when the server starts
        rows[n]["queue_sync_s"] = round(time.perf_counter() - t0, 2)
    rules = Rules(lease_s=300, ahead=3)
    timings = {n: {"click": [], "first_page": [], "next16": []} for n in sizes}
    held = {}
    with contextlib.ExitStack() as stack:
        for n in sizes:  # held open with one DuckDB thread, as the server's keeper does
            stack.enter_context(cats[n].connect()).execute("SET threads = 1")
            upcoming_images(cats[n], "review_queue", 16)  # the prefetcher at start
            held[n] = next_images(cats[n], "q55", "review_queue", rules)

        def timed(kind: str, n: int, fn) -> None:
            w0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            timings[n][kind].append((time.perf_counter() - w0, time.process_time() - c0))
            return out

        for i in range(rounds):
            for n in sizes:
                held[n] = timed("click", n, lambda n=n: next_images(
                    cats[n], "q55", "review_queue", rules, Vote(held[n][0].image_id, "accept")))
                timed("first_page", n, lambda n=n, i=i: next_images(
                    cats[n], f"q{i % 50}", "review_queue", rules))
                timed("next16", n, lambda n=n: upcoming_images(cats[n], "review_queue", 16))
    for n in sizes:
        for kind, values in timings[n].items():
            rows[n][f"{kind}_ms"] = {"wall": summary_ms([w for w, _ in values]),
                                     "cpu": summary_ms([c for _, c in values])}
        rows[n]["load_avg_1min"] = round(os.getloadavg()[0], 1)
        print(json.dumps(rows[n]), flush=True)
        cats[n].path.unlink()
    return [rows[n] for n in sizes]


def _old_claim(path: Path, base: Path, reps: int) -> dict:
    """The previous code's claim_next (one SQL over the whole queue) on a copy of the catalog."""
    copy = path.with_name("old-" + path.name)
    shutil.copy(path, copy)
    code = (
        "import json, time\nfrom pathlib import Path\nfrom db.catalog import Catalog\n"
        "from db.review import claim_next\n"
        f"cat = Catalog(Path({str(copy)!r}))\nout = []\n"
        f"with cat.connect():\n    for i in range({reps}):\n        t0 = time.perf_counter()\n"
        "        claim_next(cat, f'q{i}', 'review_queue', 300)\n"
        "        out.append(time.perf_counter() - t0)\nprint(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=base, env={**os.environ, "PYTHONPATH": str(base)}, check=True)
    copy.unlink()
    return summary_ms(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="4 sessions x 10 votes")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--votes", type=int, default=50)
    parser.add_argument("--image-size", default="640x480")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", type=Path, help="a worktree of the previous code (9740d3d)")
    parser.add_argument("--runs", default="paced,saturated,flood",
                        help="which of paced, saturated, flood")
    parser.add_argument("--queue-scale", action="store_true",
                        help="only time the queue's next-image queries at 10k and 1M images")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--prepare", action="store_true",
                        help="`hfaid review --prepare`: previews built before serving (not timed)")
    parser.add_argument("--browser", action="store_true",
                        help="one more reviewer in Chromium in the paced runs (key -> painted)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hfaid-bench-review-"))
    report: dict = {"cpus": os.cpu_count(), "commit": _commit()}
    try:
        if args.queue_scale:
            rows = queue_scale(folder, args.base, [int(s) for s in args.sizes.split(",")])
            small, big = rows[0], rows[-1]
            report["queue"] = rows
            report["ratios_p50_big_over_small"] = {
                f"{kind}_{clock}": round(big[f"{kind}_ms"][clock]["p50"]
                                         / small[f"{kind}_ms"][clock]["p50"], 2)
                for kind in ("click", "first_page", "next16") for clock in ("wall", "cpu")}
            if small["previous_claim_ms"] and big["previous_claim_ms"]:
                report["ratios_p50_big_over_small"]["previous_claim_wall"] = round(
                    big["previous_claim_ms"]["p50"] / small["previous_claim_ms"]["p50"], 2)
            print(json.dumps(report, indent=2))
            return
        if args.small:
            args.sessions, args.votes = 4, 10
        images = args.sessions * args.votes // 2 + 100
        size = tuple(int(v) for v in args.image_size.split("x"))
        t0 = time.perf_counter()
        names = [f"r{i:02d}" for i in range(args.sessions + 1)]  # + the Chromium one
        template = build_review_catalog(folder / "template", images, names, [], size=size).path
        if args.base is not None:  # the same photos, in a catalog of the previous schema
            base_template = _base_catalog(args.base, folder / "base-template", images, names,
                                          size)
        report.update({"sessions": args.sessions, "votes_per_session": args.votes,
                       "queue_images": images, "image_size": args.image_size,
                       "setup_s": round(time.perf_counter() - t0, 1), "runs": []})
        plan = {"paced": ((1.0, 3.0), False), "saturated": ((0.0, 0.2), False),
                "flood": ((1.0, 3.0), True)}
        for name in args.runs.split(","):
            think, flood = plan[name]
            if args.base is not None:
                report["runs"].append(one_run("previous", name, base_template, folder,
                                              args.base, args, think, flood))
            report["runs"].append(one_run("new", name, template, folder, ROOT, args, think,
                                          flood))
        print(json.dumps(report, indent=2))
        expected = args.sessions * args.votes
        bad = [r["run"] for r in report["runs"] if r["cast"] < expected
               or r["stored"] != r["cast"] or r["rule_violations"]]
        if bad:
            print(f"FAILED: {bad} did not store every vote cast ({expected}+) without rule "
                  "violations", file=sys.stderr)
            sys.exit(1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check(code: Path, catalog: Path) -> tuple[int, int]:
    """Votes stored and rule violations, by that code's own checks (the schemas differ)."""
    script = ("import json\nfrom pathlib import Path\nfrom db.catalog import Catalog\n"
              "from db.review import current_votes, rule_violations\n"
              f"cat = Catalog(Path({str(catalog)!r}))\n"
              "print(json.dumps([current_votes(cat).num_rows, len(rule_violations(cat))]))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=code, check=True, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(code)})
    stored, violations = json.loads(done.stdout.strip().splitlines()[-1])
    return stored, violations


def _base_catalog(base: Path, folder: Path, images: int, names: list[str],
                  size: tuple[int, int]) -> Path:
    """The previous code's build of the same catalog (it refuses a newer schema)."""
    code = ("from pathlib import Path\nfrom tests.review_fixtures import build_review_catalog\n"
            f"build_review_catalog(Path({str(folder)!r}), {images}, {names!r}, [], "
            f"size={size!r})\n")
    subprocess.run([sys.executable, "-c", code], cwd=base, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(base)})
    return folder / "catalog.duckdb"


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, cwd=ROOT)
    return out.stdout.strip()


if __name__ == "__main__":
    main()
