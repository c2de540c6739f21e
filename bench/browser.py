"""What the browser benchmarks share: a streamlit server on a free localhost port, and "settled" timing.

A page has settled when the app shows no script run, spinner or skeleton, something is drawn (and an optional
selector is present) for QUIET_S seconds in a row; its time is when that quiet began, the quiet itself not counted.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
# what "idle" and "an error" mean is the browser test's: one definition for the test and the benchmarks
from test_browser import BUSY_JS, CHROMIUM, CHROMIUM_ARGS, ERRORS, PAGES  # noqa: E402,F401

QUIET_S = 1.0
ACTION_TIMEOUT_S = 180.0


PROGRESS = '[data-testid="stProgress"]'


def settle(page, start: float, need: str | None = None, timeout_s: float = ACTION_TIMEOUT_S,
           trace: dict | None = None) -> float:
    """Seconds from `start` (a perf_counter time) until the app turned idle and stayed so for QUIET_S.

    `trace` (a dict) receives what a person saw while waiting: `longest_wait_without_progress_s` (the longest
    busy stretch with no progress bar on screen) and `progress_texts` (the distinct texts of the bars seen)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    deadline = start + timeout_s
    quiet_since, bare_since, texts, longest = None, None, [], 0.0
    while time.perf_counter() < deadline:
        busy = page.evaluate(BUSY_JS) or (need is not None and page.locator(need).count() == 0)
        now = time.perf_counter()
        if trace is not None:
            bars = page.locator(PROGRESS)
            shown = [t.strip() for t in bars.all_inner_texts() if t.strip()] if bars.count() else []
            texts += [t for t in shown if t not in texts]
            if busy and not shown:
                bare_since = now if bare_since is None else bare_since
                longest = max(longest, now - bare_since)
            else:
                bare_since = None
            trace.update(longest_wait_without_progress_s=round(longest, 2), progress_texts=texts[:40])
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= QUIET_S:
            return quiet_since - start
        page.wait_for_timeout(100)
    raise TimeoutError(f"{page.url} did not settle within {timeout_s:.0f} s")


def first_content(page, start: float, timeout_s: float = ACTION_TIMEOUT_S) -> float:
    """Seconds from `start` until the page's own content (a heading or text in the main area) is drawn."""
    page.locator('[data-testid="stMain"] [data-testid="stHeading"], [data-testid="stMain"] [data-testid="stMarkdown"]'
                 ).first.wait_for(timeout=timeout_s * 1000)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict | None = None, cwd=ROOT) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free localhost port; returns once its health check answers."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--server.address", "127.0.0.1"], cwd=cwd,
                              env={**os.environ, "PYTHONPATH": str(cwd), **(env or {})},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("streamlit did not start within 120 s")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
