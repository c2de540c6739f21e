"""The dashboard under load: N concurrent headless-browser users against one `streamlit run app.py`, against the
same actions by one user.

    python bench/load.py --out bench/results/load.json [--users 8] [--seconds 120]

Localhost only; the server gets a fresh, empty runs folder (HYBRIDVIZ_RUNS), so the lab submit touches nothing
of yours. Each user (its own process and Chromium) loops over a fixed, bounded script until the time is up:
  visit   one of the eight pages (rotating, each user starting at another page);
  search  the Search page with a benchmark question in the URL (pool rotating), until the results table shows;
  filter  a changed selection (Sampler comparison setting / Language pairs benchmark, through the URL);
and user 0 submits one tiny fine-tune in the lab at its first turn (5 steps; its worker evaluates afterwards,
so the server shares the CPU with it, as it would in use).
Latency of an action = from navigation until the app turned idle (no script run, spinner or skeleton, and
something drawn), the idle period itself not counted. After every action the page is checked for error elements
and dialogs. The server's RSS (the streamlit process and its children other than lab workers) is sampled every
0.5 s; the peak is the goal's figure (< 4 GB). Phase 1 runs one user, phase 2 `--users` users, same duration.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from browser import ACTION_TIMEOUT_S, CHROMIUM, CHROMIUM_ARGS, ERRORS, settle, start_server, stop_server
from common import write_result

PAGES = ["", "Sampler_comparison", "Language_pairs", "Language_bias", "Embedding_map", "Search", "Fine-tune_lab",
         "Evaluation_details"]
SEARCHES = [("XQuAD-R sentences", "Wer schrieb die Unabhängigkeitserklärung?"),
            ("MKQA answers", "who wrote the song let it be"),
            ("MKQA queries", "quand a été construite la tour eiffel"),
            ("XQuAD-R sentences", "What causes the tides?")]
FILTERS = ["Sampler_comparison?setting=cross", "Language_pairs?task=mkqa-queries", "Sampler_comparison?setting=mono",
           "Language_pairs?task=xquad-r"]
def user(url: str, user_id: int, seconds: float, lab: bool, results) -> None:
    from playwright.sync_api import sync_playwright

    records = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(ACTION_TIMEOUT_S * 1000)  # a slow answer under load is measured, not an error
        page.set_default_navigation_timeout(ACTION_TIMEOUT_S * 1000)
        end = time.perf_counter() + seconds
        turn = 0

        def act(kind: str, target: str, need: str | None = None, then=None):
            start = time.perf_counter()
            error = None
            try:
                page.goto(f"{url}/{target}")
                if then is not None:
                    then()
                latency = settle(page, start, need)
                found = page.locator(ERRORS)
                if found.count():
                    error = found.first.inner_text()[:200]
            except Exception as exc:  # a timeout or a crashed page is a failed action, recorded
                latency, error = time.perf_counter() - start, f"{type(exc).__name__}: {str(exc)[:200]}"
            records.append({"user": user_id, "action": kind, "target": target, "seconds": latency, "error": error})

        def submit():
            steps = page.get_by_label("Steps", exact=True)
            steps.wait_for()
            steps.fill("5")
            page.get_by_role("button", name="Start fine-tune").click()
            page.get_by_text("Queued", exact=False).first.wait_for()

        while time.perf_counter() < end:
            if lab and turn == 0:
                act("lab submit", "Fine-tune_lab?model=tiny", then=submit)
            act("visit", PAGES[(user_id + turn) % len(PAGES)])
            if time.perf_counter() >= end:
                break
            pool, query = SEARCHES[(user_id + turn) % len(SEARCHES)]
            act("search", "Search?" + urlencode({"pool": pool, "q": query}), need='[data-testid="stTable"]')
            if time.perf_counter() >= end:
                break
            act("filter", FILTERS[(user_id + turn) % len(FILTERS)])
            turn += 1
        browser.close()
    results.put(records)


class MemorySampler(threading.Thread):
    """RSS of the server and its children (lab workers apart) every 0.5 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.peak_mb = self.worker_peak_mb = 0.0
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            server = worker = 0
            try:
                for p in [self.proc, *self.proc.children(recursive=True)]:
                    try:
                        rss = p.memory_info().rss
                        if "lab-run" in " ".join(p.cmdline()):
                            worker += rss
                        else:
                            server += rss
                    except Exception:
                        pass
            except Exception:
                pass
            self.samples.append(server / 2 ** 20)
            self.peak_mb = max(self.peak_mb, server / 2 ** 20)
            self.worker_peak_mb = max(self.worker_peak_mb, worker / 2 ** 20)
            self.stop.wait(0.5)


def phase(url: str, users: int, seconds: float, lab: bool) -> list[dict]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=user, args=(url, i, seconds, lab and i == 0, queue)) for i in range(users)]
    for p in procs:
        p.start()
    records = []
    for _ in procs:
        records += queue.get(timeout=seconds + 2 * ACTION_TIMEOUT_S + 120)
    for p in procs:
        p.join(timeout=60)
    return records


def summarise(records: list[dict]) -> dict:
    out = {}
    for kind in sorted({r["action"] for r in records}):
        times = [r["seconds"] for r in records if r["action"] == kind and r["error"] is None]
        out[kind] = {"n": sum(r["action"] == kind for r in records),
                     "errors": sum(r["action"] == kind and r["error"] is not None for r in records),
                     "p50_s": float(np.percentile(times, 50)) if times else None,
                     "p95_s": float(np.percentile(times, 95)) if times else None}
    return out


def warm_pools() -> dict:
    """Fill the embedding cache of every Search pool for the default model first (untimed): the load test is
    about serving, not about a first encode (bench/dashboard.py times that)."""
    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.policy import evaluation_precision
    from hybridviz.search import POOLS, PoolIndex, load_pool

    encoder = load_encoder("me5-small", precision=evaluation_precision("me5-small"))
    seconds = {}
    for name in POOLS:
        start = time.perf_counter()
        PoolIndex.build(encoder, load_pool(name))
        seconds[name] = round(time.perf_counter() - start, 1)
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--no-lab", action="store_true", help="skip the one lab submit")
    p.add_argument("--users-only", action="store_true", help="skip the one-user phase")
    p.add_argument("--out", default="bench/results/load.json")
    args = p.parse_args()
    warm_up = warm_pools()
    runs = tempfile.mkdtemp(prefix="hybridviz-load-runs-")
    server, url = start_server({"HYBRIDVIZ_RUNS": runs})
    try:
        memory = MemorySampler(server.pid)
        memory.start()
        one = [] if args.users_only else phase(url, 1, args.seconds, lab=False)
        rss_after_one = memory.peak_mb
        many = phase(url, args.users, args.seconds, lab=not args.no_lab)
        memory.stop.set()
        memory.join()
    finally:
        stop_server(server)
        for worker in Path(runs).glob("*/lab.json"):  # a lab worker outliving the server is stopped
            subprocess.run(["pkill", "-f", f"lab-run {worker.parent.name}"], capture_output=True)
    result = {"warm_up_pool_build_s": warm_up, "users": args.users, "seconds": args.seconds, "baseline": "the same actions by one user",
              "one_user": summarise(one), "many_users": summarise(many),
              "errors": [r for r in one + many if r["error"] is not None],
              "server_rss_peak_mb": {"one_user": round(rss_after_one), "all": round(memory.peak_mb)},
              "lab_worker_rss_peak_mb": round(memory.worker_peak_mb), "goal_rss_mb": 4096,
              "actions": one + many}
    write_result(args.out, "load", result)
    print(f"{'action':<12} {'1 user: n  err  p50 s  p95 s':>30}   {f'{args.users} users: n  err  p50 s  p95 s':>32}")
    for kind in result["many_users"]:
        a, b = result["one_user"].get(kind, {}), result["many_users"][kind]

        def cols(s):
            if not s:
                return f"{'-':>30}"
            f = lambda v: f"{v:6.2f}" if v is not None else "     -"
            return f"{s['n']:>12} {s['errors']:>4} {f(s['p50_s'])} {f(s['p95_s'])}"
        print(f"{kind:<12} {cols(a)}   {cols(b)}")
    print(f"server RSS peak: {result['server_rss_peak_mb']['one_user']} MB (1 user), "
          f"{result['server_rss_peak_mb']['all']} MB (all phases; goal < 4096 MB); lab worker peak "
          f"{result['lab_worker_rss_peak_mb']} MB; errors: {len(result['errors'])}")


if __name__ == "__main__":
    main()
