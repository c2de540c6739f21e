"""Dashboard latency: first paint of every page from warm caches, and search latency per pool.

    python bench/dashboard.py --out bench/results/dashboard.json [--queries 50]

First paint = from navigation until the page has rendered and no script run is in progress, in headless
Chromium against `streamlit run app.py`; each page is loaded once to warm the caches, then timed `--repeats`
times (median reported). Search latency = `PoolIndex.search` of benchmark queries (in-process, the app's code
path after the first query: the model and the pool index are cached resources), p50 / p95 over `--queries`
queries per pool with the base model. The machine and the load average are recorded with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PAGES = ["", "Sampler_comparison", "Language_pairs", "Language_bias", "Embedding_map", "Search", "Fine-tune_lab",
         "Evaluation_details"]


def first_paint(port: int, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    from test_browser import wait_idle

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name in PAGES:
            page.goto(f"http://127.0.0.1:{port}/{name}")
            wait_idle(page)  # warm-up load: caches filled
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/{name}")
                wait_idle(page)
                times.append(time.perf_counter() - start)
            out[name or "Overview"] = round(statistics.median(times), 3)
        browser.close()
    return out


def search_latency(n_queries: int) -> dict:
    from search import pool_latency

    rows, _ = pool_latency(n_queries)
    return {r["pool"]: {"candidates": r["candidates"], "index_build_s": round(r["index_build_s"], 2),
                        "p50_ms": round(r["p50_ms"], 1), "p95_ms": round(r["p95_ms"], 1), "queries": r["queries"]}
            for r in rows}


def server_memory_mb(pid: int) -> dict:
    """RSS now and at its peak (VmHWM) of the streamlit server and its children, after every page was shown."""
    import psutil

    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    peak = 0.0
    for p in procs:
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
            peak += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024
        except (OSError, StopIteration):
            pass
    return {"rss_mb": round(sum(p.memory_info().rss for p in procs) / 2 ** 20), "peak_rss_mb": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/dashboard.json")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port", type=int, default=8599)
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(args.port), "--server.address", "127.0.0.1"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        paint = first_paint(args.port, args.repeats)
        memory = server_memory_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    search = search_latency(args.queries)
    result = {"first_paint_s": paint, "search": search, "app_memory_after_all_pages": memory,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "load_average": os.getloadavg()},
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("page                 first paint (s, warm)")
    for name, t in paint.items():
        print(f"{name:<20} {t:>8.2f}")
    print(f"app server RSS after every page: {memory['rss_mb']} MB (peak {memory['peak_rss_mb']} MB)")
    print("\npool                 candidates   p50 ms   p95 ms")
    for name, s in search.items():
        print(f"{name:<20} {s['candidates']:>10,} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f}")


if __name__ == "__main__":
    main()
