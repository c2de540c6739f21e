"""The dashboard as a person sees it: `streamlit run app.py` in headless Chromium (Playwright).

Visits every page (no error element; a screenshot of each into artifacts/screenshots/), starts a 5-step tiny-model
run in the fine-tune lab and watches it finish and get evaluated (on MKQA answers), then searches with that model
and sees results.
The lab uses a run registry of its own (HYBRIDVIZ_RUNS), so the test never touches cache/runs.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# exceptions, error alerts, and any dialog (no page opens one by itself: Streamlit's "Page not found" is)
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"], [role="dialog"]'
pytestmark = pytest.mark.slow



def _app_headings() -> dict[str, str]:
    """URL path -> heading, in the menu's order: app.py at /, then Streamlit's own discovery of pages/ (the same
    functions name and order the files: `3_Language_pairs.py` is /Language_pairs, heading "Language pairs")."""
    from streamlit.source_util import page_icon_and_name, page_sort_key

    files = sorted((p for p in (ROOT / "pages").glob("*.py") if p.name != "__init__.py"), key=page_sort_key)
    return {"": "hybridviz", **{page_icon_and_name(p)[1]: page_icon_and_name(p)[1].replace("_", " ") for p in files}}


HEADINGS = _app_headings()
PAGES = list(HEADINGS)  # every page's URL path, in the menu's order


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _studies_of(runs: Path) -> Path:
    """The server's own studies folder beside its run registry (the tests never touch cache/studies)."""
    return runs.parent / f"{runs.name}-studies"


def _start_server(runs: Path) -> tuple[subprocess.Popen, str]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    port = _free_port()
    env = {**os.environ, "HYBRIDVIZ_RUNS": str(runs), "HYBRIDVIZ_STUDIES": str(_studies_of(runs)),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start within 60 s")
    return proc, url


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server: a busy machine can take longer than 20 s to end its session threads; then kill it."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory, data_root):
    runs = tmp_path_factory.mktemp("browser-runs")
    proc, url = _start_server(runs)
    yield url, runs
    _stop(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


BUSY_JS = """() => {
    const busy = document.querySelector('[data-testid="stStatusWidget"]')
        || document.querySelector('[data-testid="stSpinner"]')
        || document.querySelector('[data-testid="stSkeleton"]');
    const drawn = document.querySelectorAll('[data-testid="stMarkdown"], [data-testid="stAlert"]').length > 0;
    return Boolean(busy) || !drawn;
}"""


# a cold Embedding map loads two models, encodes 660 items each and compiles UMAP: 48 s on a CPU with native bf16,
# 140 s in fp32 on an AVX2-only one (bench/results/dashboard-avx2.json); the limit leaves room for a slower CI
def wait_idle(page, quiet_s: float = 4.0, timeout_s: float = 600.0) -> None:
    """Until the app has been idle (no script run, spinner or skeleton; something drawn) for `quiet_s` seconds
    in a row: a page that is still computing hides the error it is about to raise."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    deadline = time.time() + timeout_s
    quiet_since = None
    while time.time() < deadline:
        if page.evaluate(BUSY_JS):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since >= quiet_s:
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"{page.url} did not settle within {timeout_s:.0f} s")


def errors_on(page) -> list[str]:
    found = page.locator(ERRORS)
    return [found.nth(i).inner_text()[:300] for i in range(found.count())]


def heading_and_menu(page) -> tuple[list[str], list[str]]:
    main = page.locator('[data-testid="stMain"] h1').all_inner_texts()
    menu = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]').all_inner_texts()
    return [t.strip() for t in main], [t.strip() for t in menu]


def test_a_page_url_as_a_fresh_servers_first_visit_gets_the_menu_and_heading(tmp_path, browser, data_root):
    """A fresh server's first visit is a page URL: Streamlit's discovery of pages/ serves that page with its
    heading and the whole menu in the files' order (no hand-over, no second run)."""
    proc, url = _start_server(tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/Evaluation_details")
        wait_idle(page)
        headings, menu = heading_and_menu(page)
        assert headings[:1] == ["Evaluation details"]
        assert menu[1:4] == ["Sampler comparison", "Robustness", "Language pairs"], menu  # the prefixes' order
        assert len(menu) == len(PAGES), menu
        assert errors_on(page) == []
        page.close()
    finally:
        _stop(proc)


def test_every_page_renders_without_error(server, browser):
    url, _ = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    for name in PAGES:
        page.goto(f"{url}/{name}")
        wait_idle(page)
        assert errors_on(page) == [], name
        assert heading_and_menu(page)[0][:1] == [HEADINGS[name]], name
        page.screenshot(path=str(ARTIFACTS / f"{name or 'Overview'}.png"), full_page=True)
    page.close()


def test_lab_run_finishes_then_search_with_it(server, browser):
    url, runs = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # the form's model and benchmarks preset from the URL: evaluated on MKQA answers only, the pool searched below
    # (its embeddings are then cached; the four full benchmarks took ~2 of the test's 3.5 min on an idle CPU)
    page.goto(f"{url}/Fine-tune_lab?model=tiny&tasks=mkqa-answers")
    wait_idle(page)
    steps = page.get_by_label("Steps", exact=True)
    for attempt in range(3):  # a rerun in flight (the live fragment ticks every 2 s) can leave it inert briefly
        try:
            steps.fill("5", timeout=15_000)
            break
        except Exception:
            if attempt == 2:
                raise
            wait_idle(page)
    steps.press("Enter")  # Enter only commits the value (no form: it used to submit)...
    # ...and the button submits: one worker (a rerun in flight can still show its stale copy: either message)
    page.get_by_role("button", name="Start fine-tune").first.click()
    # the second press reruns the page over the first's "Queued …": either message, then one run on disk
    page.get_by_text(re.compile("already queued|Queued hybrid")).first.wait_for(timeout=60_000)
    # no wait_idle here: while a run is shown the live fragment reruns every 2 s, and on a loaded CPU the page
    # never stays idle for 4 s in a row until long after the run is done; its expander title says when
    page.get_by_text("evaluation done", exact=False).first.wait_for(timeout=900_000)
    page.get_by_text("evaluation done", exact=False).first.click()
    page.get_by_text("Evaluated: it appears on the other pages", exact=False).wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "Fine-tune_lab-finished.png"), full_page=True)
    assert errors_on(page) == []
    queued = [p.name for p in runs.iterdir() if (p / "lab.json").exists()]
    assert len(queued) == 1  # one run...
    workers = subprocess.run(["pgrep", "-fc", f"lab-run {queued[0]}"], capture_output=True, text=True).stdout
    assert int(workers.strip() or 0) <= 1  # ...and never two workers for it
    evaluated = [p.name for p in (runs / queued[0] / "evaluations").iterdir()]
    assert evaluated == ["mkqa-answers"]  # the benchmarks preset from the URL, and only those
    run_id = queued[0]
    label = next(line for line in _model_labels(runs) if run_id in line)

    query = "who wrote the song let it be"
    page.goto(f"{url}/Search?" + urlencode({"pool": "MKQA answers", "models": label, "q": query}))
    wait_idle(page)
    page.locator('[data-testid="stTable"]').first.wait_for(timeout=240_000)
    assert errors_on(page) == []
    assert "known relevant" not in page.content()  # a free-text query has no known relevant items
    page.screenshot(path=str(ARTIFACTS / "Search-results.png"), full_page=True)
    # with a lab run beside the base, the pages that list models draw both
    for name in ("Embedding_map", "Search", "Sampler_comparison", "Language_pairs"):
        page.goto(f"{url}/{name}")
        wait_idle(page)
        assert errors_on(page) == [], name
        page.screenshot(path=str(ARTIFACTS / f"{name}-with-lab-run.png"), full_page=True)
    page.close()


def _model_labels(runs: Path) -> list[str]:
    code = ("import sys; from pathlib import Path; from hybridviz.data import paths; "
            f"paths.RUNS_DIR = Path({str(runs)!r}); from hybridviz.dashboard import available_models; "
            "print('\\n'.join(available_models()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_a_tiny_study_from_the_form_to_a_verdict_on_every_page(server, browser, tmp_path_factory):
    """#33: a newcomer's study from the dashboard alone: the Study form (preset from the URL: tiny model, 2
    samplers x 2 seeds, 3 steps, a tiny custom BEIR set), Enter in a box submits nothing, the button queues the
    grid as one background job, the page follows it to the end, and the study's bundle is then read by the
    Overview (its verdict) and the other pages. Screenshots into artifacts/screenshots/Study-*.png."""
    from hybridviz.tasks import build_corpus, write_beir

    url, runs = server
    studies = _studies_of(runs)
    folder = tmp_path_factory.mktemp("browser-beir") / "mini-xquad"
    write_beir(build_corpus("xquad-r", ["en", "de"], limit=12, seed=0), folder)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    query = urlencode([("name", "tiny-study"), ("model", "tiny"), ("samplers", "x-x-mono"), ("samplers", "x-y"),
                       ("seeds", "0, 1"), ("steps", "3"), ("batch", "8"), ("lr", "0.001"), ("languages", "en, de"),
                       ("tasks", ""), ("custom", str(folder))])
    page.goto(f"{url}/Study?{query}")
    wait_idle(page)
    assert errors_on(page) == []
    page.get_by_label(re.compile("^Steps")).press("Enter")  # commits the value, submits nothing
    wait_idle(page)
    assert not list(studies.glob("*/study.json"))
    started = time.time()
    page.get_by_role("button", name="Start study").click()
    page.get_by_text("Study 'tiny-study' queued", exact=False).wait_for(timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "Study-queued.png"), full_page=True)
    # the live list reruns every 2 s: no wait_idle; the expander title says when it is done
    page.get_by_text("tiny-study · done", exact=False).first.wait_for(timeout=1_500_000)
    wall = time.time() - started
    page.screenshot(path=str(ARTIFACTS / "Study-done.png"), full_page=True)
    assert errors_on(page) == []
    (ARTIFACTS / "Study-wall-time.txt").write_text(f"tiny study (2 samplers x 2 seeds, 3 steps): {wall:.0f} s\n")
    for name in ("", "Sampler_comparison", "Language_pairs", "Language_bias", "Evaluation_details"):
        page.goto(f"{url}/{name}?bundle=study:tiny-study")
        wait_idle(page)
        assert errors_on(page) == [], name
        if not name:
            assert "Verdict, computed from the bundle" in page.content()
        page.screenshot(path=str(ARTIFACTS / f"Study-{name or 'Overview'}.png"), full_page=True)
    page.goto(f"{url}/Robustness")  # every bundle is a set-up there: the study is listed beside the reference ones
    wait_idle(page)
    assert errors_on(page) == [] and "study:tiny-study" in page.content()
    page.screenshot(path=str(ARTIFACTS / "Study-Robustness.png"), full_page=True)
    page.close()
