"""Dashboard latency: first paint of every page cold and warm, the first search, and search latency per pool.

    python bench/dashboard.py --out bench/results/dashboard.json [--queries 50] [--repeats 3]

First paint = from navigation until the page's own content (a heading or text in the main area) is drawn;
settled = until the app shows no script run, spinner or skeleton for 1 s, that second not counted
(bench/browser.py); both in headless Chromium against `streamlit run app.py`. For the cold visit also: the longest
stretch the page was busy with no progress bar on screen, and the texts its bars showed (the ETAs).
  cold: a freshly started server per page, its first visit (no cached data, resources or bundle in memory);
  warm: the same page again on that server, median of `--repeats`.
First search = a fresh server, the Search page opened with a benchmark question in the URL: seconds until the
first results table shows (partial while the pool encodes) and until the page settles with the full ranking.
Memory tour (`--memory-tour`): one server, one browser session visits every page, searches each pool once (with
a benchmark question) and opens the Embedding map with four models; the server's RSS (the streamlit process and
its children, sampled every 0.5 s as bench/load.py does) after each step, its peak, and at the end (goal < 3 GB).
Run it in a fresh clone (`git clone`; HYBRIDVIZ_DATA pointing at the data) for the new user's figures: nothing
encoded yet. Search latency = `PoolIndex.search` in-process (bench/search.py), p50 / p95 per pool.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from urllib.parse import urlencode
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import machine  # noqa: E402
from browser import (CHROMIUM, CHROMIUM_ARGS, ERRORS, PAGES, first_content, settle, start_server,  # noqa: E402
                     stop_server)


PARTIAL = " (partial: the best of the candidates encoded so far)"
NOT_TIMED = "not timed (--first-results-only)"


def first_paint(repeats: int, pages: list[str] = PAGES) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name in pages:
            server, url = start_server()
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                start = time.perf_counter()
                page.goto(f"{url}/{name}")
                cold_paint = first_content(page, start, timeout_s=600)
                trace = {}
                cold = settle(page, start, timeout_s=600, trace=trace)
                warm, warm_paint = [], []
                for _ in range(repeats):
                    start = time.perf_counter()
                    page.goto(f"{url}/{name}")
                    warm_paint.append(first_content(page, start))
                    warm.append(settle(page, start))
                errors = page.locator(ERRORS).count()
                page.close()
            finally:
                stop_server(server)
            out[name or "Overview"] = {"cold_paint_s": round(cold_paint, 3), "cold_s": round(cold, 3),
                                       "warm_paint_s": round(statistics.median(warm_paint), 3),
                                       "warm_s": round(statistics.median(warm), 3), "errors": errors,
                                       "cold_longest_wait_without_progress_s": trace["longest_wait_without_progress_s"],
                                       "cold_progress_texts": trace["progress_texts"]}
    return out


def first_search(pool: str, query: str, complete: bool = True) -> dict:
    from playwright.sync_api import sync_playwright

    server, url = start_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto(f"{url}/Search?" + urlencode({"pool": pool, "q": query}))
            page.locator('[data-testid="stTable"]').first.wait_for(timeout=600_000)
            first = time.perf_counter() - start
            partial = page.get_by_text("Partial results", exact=False).count() > 0
            done = settle(page, start, need='[data-testid="stTable"]', timeout_s=1200) if complete else None
            errors = page.locator(ERRORS).count()
            browser.close()
    finally:
        stop_server(server)
    return {"pool": pool, "query": query, "first_results_s": round(first, 2), "first_results_partial": partial,
            "complete_s": None if done is None else round(done, 2), "errors": errors}


TOUR_SEARCHES = [("XQuAD-R sentences", "Wer schrieb die Unabhängigkeitserklärung der Vereinigten Staaten?"),
                 ("MKQA answers", "who wrote the song let it be"),
                 ("MKQA queries", "quand a été construite la tour eiffel")]
TOUR_MAP_MODELS = 4


def memory_tour(models: list[str] | None = None) -> dict:
    """RSS of one server through the tour: every page, one search per pool, one Embedding map of four models."""
    from playwright.sync_api import sync_playwright

    from load import MemorySampler

    if models is None:
        from hybridviz.dashboard import available_models

        models = list(available_models())[:TOUR_MAP_MODELS]
    steps = [(f"visit {name or 'Overview'}", name, None) for name in PAGES]
    steps += [(f"search {pool}", "Search?" + urlencode({"pool": pool, "q": query}), '[data-testid="stTable"]')
              for pool, query in TOUR_SEARCHES]
    steps += [(f"Embedding map, {len(models)} models", "Embedding_map?" + urlencode({"models": models}, doseq=True),
               '[data-testid="stPlotlyChart"]')]
    server, url = start_server()
    memory = MemorySampler(server.pid)
    memory.start()
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for what, target, need in steps:
                start = time.perf_counter()
                page.goto(f"{url}/{target}")
                seconds = settle(page, start, need=need, timeout_s=1200)
                time.sleep(1.0)  # a sample after the step
                rows.append({"step": what, "seconds": round(seconds, 1), "errors": page.locator(ERRORS).count(),
                             "rss_mb": round(memory.samples[-1]), "peak_so_far_mb": round(memory.peak_mb)})
                print(f"{what:<40} {seconds:7.1f} s  RSS {rows[-1]['rss_mb']:>6} MB  "
                      f"peak {rows[-1]['peak_so_far_mb']:>6} MB", flush=True)
            browser.close()
        time.sleep(3.0)
        end_mb = memory.samples[-1]
    finally:
        memory.stop.set()
        memory.join()
        stop_server(server)
    return {"map_models": models, "steps": rows, "rss_end_mb": round(end_mb), "rss_peak_mb": round(memory.peak_mb),
            "goal_rss_mb": 3072}


def search_latency(n_queries: int) -> dict:
    from search import pool_latency

    rows, _ = pool_latency(n_queries)
    return {r["pool"]: {"candidates": r["candidates"], "index_build_s": round(r["index_build_s"], 2),
                        "p50_ms": round(r["p50_ms"], 1), "p95_ms": round(r["p95_ms"], 1), "queries": r["queries"]}
            for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/dashboard.json")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-search-latency", action="store_true")
    parser.add_argument("--skip-first-search", action="store_true")
    parser.add_argument("--first-results-only", action="store_true",
                        help="time the first search until its first results, not until the whole pool is encoded")
    parser.add_argument("--memory-tour", action="store_true",
                        help="only the memory tour (one server: every page, a search per pool, a 4-model map)")
    parser.add_argument("--pages", help="comma-separated page URLs (Overview is the empty name; default: all)")
    args = parser.parse_args()
    fresh = not any((ROOT / "cache" / "embeddings").glob("*"))
    if args.memory_tour:
        tour = memory_tour()
        result = {"embedding_cache_empty_at_start": fresh, "memory_tour": tour, "machine": machine(),
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"server RSS: {tour['rss_end_mb']} MB at the end of the tour, peak {tour['rss_peak_mb']} MB "
              f"(goal < {tour['goal_rss_mb']} MB)")
        return
    search = None if args.skip_first_search else \
        first_search("XQuAD-R sentences", "Wer schrieb die Unabhängigkeitserklärung der Vereinigten Staaten?",
                     complete=not args.first_results_only)
    pages = PAGES if args.pages is None else ["" if p == "Overview" else p for p in args.pages.split(",")]
    paint = first_paint(args.repeats, pages)
    latency = {} if args.skip_search_latency else search_latency(args.queries)
    result = {"embedding_cache_empty_at_start": fresh, "first_search": search, "first_paint_s": paint,
              "search": latency, "machine": machine(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if search:
        print(f"first search ({'fresh clone: nothing encoded' if fresh else 'embedding cache not empty'}): "
              f"first results {search['first_results_s']:.1f} s{PARTIAL if search['first_results_partial'] else ''}, "
              f"complete {NOT_TIMED if search['complete_s'] is None else format(search['complete_s'], '.1f') + ' s'}, "
              f"errors {search['errors']}")
    print("page                 cold: first paint  settled   warm: first paint  settled   errors   "
          "cold: longest wait without a progress bar")
    for name, t in paint.items():
        print(f"{name:<20} {t['cold_paint_s']:>17.2f} {t['cold_s']:>8.2f} {t['warm_paint_s']:>18.2f} "
              f"{t['warm_s']:>8.2f} {t['errors']:>8}   {t['cold_longest_wait_without_progress_s']:>6.2f}")
    if latency:
        print("\npool                 candidates   p50 ms   p95 ms")
        for name, s in latency.items():
            print(f"{name:<20} {s['candidates']:>10,} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f}")


if __name__ == "__main__":
    main()
