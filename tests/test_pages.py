"""Every dashboard page rendered by streamlit's AppTest on a real (tiny-model) result bundle: no exception, the
expected widgets, and an interaction that changes what is shown. Empty states name the command to run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "pages"


@pytest.fixture
def bundle_root(tiny_grid, monkeypatch, tmp_path):
    """Pages read the tiny grid's bundle; lab and search see an empty run registry of their own."""
    from hybridviz.experiments import bundle
    from hybridviz.data import paths

    out, spec, manifest, root = tiny_grid
    monkeypatch.setattr(bundle, "REFERENCE_DIR", out.parent)
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    from hybridviz import projection

    monkeypatch.setattr(projection, "MAP_TIMINGS", tmp_path / "map-timings.json")  # the tiny models' rates: not here
    return out


def page(name: str, timeout: int = 240) -> AppTest:
    """The page of that name: app.py (the Overview) or pages/<n>_<name> (the prefix only orders the menu)."""
    path = ROOT / name if name == "app.py" else next(PAGES.glob(f"[0-9]_{name}"))
    return AppTest.from_file(str(path), default_timeout=timeout)


def test_page_urls_are_those_of_the_first_release():
    """Streamlit derives each page's URL from its file name (the numeric prefix stripped, its menu order): every
    URL that was ever shared still opens its page, in the menu's order, under the same heading."""
    from streamlit.source_util import page_icon_and_name, page_sort_key

    files = sorted((p for p in PAGES.glob("*.py") if p.name != "__init__.py"), key=page_sort_key)
    urls = [page_icon_and_name(p)[1] for p in files]
    assert urls == ["Sampler_comparison", "Robustness", "Language_pairs", "Language_bias", "Embedding_map",
                    "Search", "Fine-tune_lab", "Evaluation_details", "Study"]
    for path, url in zip(files, urls):  # each draws its menu label as its heading, first
        title = url.replace("_", " ")
        assert f'heading("{title}")' in path.read_text(), path.name


def chart_specs(at) -> list[str]:
    return [c.proto.spec for c in at.get("plotly_chart")]


@pytest.mark.slow
def test_overview_shows_headline_reported_rows_and_provenance(bundle_root):
    at = page("app.py").run()
    assert not at.exception
    ours = at.dataframe[0].value
    assert list(ours["sampler"]) == ["base (no fine-tune)", "X-X-mono", "X-Y", "hybrid",
                                     "base + center@index (training-free, transductive)"]
    # the verdict is generated for the samplers, and again with the training-free methods
    verdict = " ".join(m.value for m in at.markdown)
    assert "samplers (and the base)" in verdict and "every inductive method, training-free ones included" in verdict
    assert "multilingual mAP:" in verdict and any(word in verdict for word in (
        "ahead of", "equivalent within", "not equivalent within", "undetermined between"))
    # the transductive method (center@index) has its own section and never leads an inductive verdict
    assert "transductive (fitted on the evaluation pool" in verdict
    leaders = [line.split(" is ")[0] for line in verdict.splitlines() if " is highest" in line or " is lowest" in line]
    assert not any("center@index" in leader for leader in leaders)
    assert "post hoc plan" in " ".join(c.value for c in at.caption)
    summary = json.loads((bundle_root / "summary.json").read_text())
    cell = next(c for c in summary["cells"] if c["task"] == "xquad-r" and c["group"] == "hybrid"
                and c["setting"] == "multi" and c["metric"] == "mAP")
    shown = ours.loc[ours["sampler"] == "hybrid", "multi mAP"].iloc[0]
    assert shown.startswith(f"{cell['mean']:.4f} ± {cell['std']:.4f} (n=2)")
    assert len(at.dataframe) == 3 + 1 + 1 + 1  # a table per benchmark, reported, tests, data status
    mkqa_queries = at.dataframe[1].value
    assert set(mkqa_queries["mono mAP"]) == {"n/a"}  # a query's only same-language item is itself
    reported = at.dataframe[3].value
    assert set(reported["model"]) == {"XLM-R (reported)", "LaBSE (reported)"}
    assert any("reported" in s.value.lower() for s in at.subheader)
    assert any("python -m hybridviz experiment" in c.value or "commit" in c.value for c in at.caption)


def test_overview_without_bundle_names_the_command(monkeypatch, tmp_path, data_root):
    from hybridviz.experiments import bundle

    monkeypatch.setattr(bundle, "REFERENCE_DIR", tmp_path)
    at = page("app.py").run()
    assert not at.exception
    assert "python -m hybridviz experiment" in at.info[0].value


@pytest.mark.slow
def test_sampler_comparison_changes_with_the_metric(bundle_root):
    at = page("Sampler_comparison.py").run()
    assert not at.exception
    assert [s.label for s in at.selectbox][:2] == ["Setting", "Metric"]
    before = chart_specs(at)
    assert len(before) == 4  # dots, effect-size forest, per-language bars, alpha sweep
    assert "95 % interval, run as the unit" in before[1] and "hybrid" in before[1]
    at.selectbox(key="param_metric").select("max_rank_distance").run()
    assert not at.exception
    after = chart_specs(at)
    assert after[0] != before[0] and "rank distance" in after[0]
    assert any("python -m hybridviz budget" in i.value for i in at.info)  # no step-budget check beside it yet


@pytest.mark.slow
def test_sampler_comparison_shows_the_step_budget_check(tiny_grid, monkeypatch, tmp_path):
    from hybridviz.experiments import bundle

    out = tiny_grid[0]
    (tmp_path / out.name).symlink_to(out)
    (tmp_path / "step-budget").mkdir()
    trials = {f"{s}-{n}": {"sampler": s, "steps": n, "run_id": f"{s}-{n}", "mono_mAP": 0.5, "cross_mAP": 0.4,
                           "multi_mAP": m} for (s, n, m) in [("x-y", 100, .31), ("hybrid", 100, .30),
                                                               ("x-y", 300, .32), ("hybrid", 300, .33)]}
    state = {"trials": trials, "rankings": {"100": {"multi": ["x-y", "hybrid"]}, "300": {"multi": ["hybrid", "x-y"]}},
             "ranking_changes": {"mono": False, "cross": False, "multi": True}}
    (tmp_path / "step-budget" / "budget.json").write_text(json.dumps(state))
    monkeypatch.setattr(bundle, "REFERENCE_DIR", tmp_path)
    at = page("Sampler_comparison.py").run()
    assert not at.exception
    specs = chart_specs(at)
    assert len(specs) == 5 and "Step budget" in specs[4] and '"name":"X-Y"' in specs[4].replace(" ", "")
    table = at.dataframe[-1].value
    assert list(table["ranking (best first)"]) == ["X-Y > hybrid", "hybrid > X-Y"]
    assert any("changes between budgets for: multi" in c.value for c in at.caption)

    (tmp_path / "step-budget" / "budget.json").write_text('{"trials": {"a": {"steps": 1}}}')
    at = page("Sampler_comparison.py").run()
    assert not at.exception and "python -m hybridviz budget" in at.error[0].value  # damaged: said, not a crash


@pytest.mark.slow
def test_language_pairs_delta_changes_with_the_sampler(bundle_root):
    at = page("Language_pairs.py").run()
    assert not at.exception
    before = chart_specs(at)
    assert len(before) == 2 and '"zmid":0' in before[1].replace(" ", "")
    at.selectbox(key="param_b").select("x-y").run()
    assert not at.exception
    after = chart_specs(at)
    assert after[1] != before[1] and "x-y" in after[1]
    # one run against one trained run (an alpha point has one seed): no run-level map, said so
    at.selectbox(key="param_a").select("base").run()
    alpha_point = next(o for o in at.selectbox(key="param_b").options if o.startswith("hybrid-a"))
    at.selectbox(key="param_b").select(alpha_point).run()
    assert not at.exception and len(chart_specs(at)) == 1
    assert any("no run-level comparison to map" in i.value for i in at.info)
    at.selectbox(key="param_b").select("x-y").run()
    assert len(chart_specs(at)) == 2  # base (one run) against five seeds: mapped
    # MKQA queries has no diagonal (no monolingual setting): its NaN cells stay out of the BH family (pandas 3's
    # stack keeps them, and scipy refused the map)
    at.selectbox(key="param_task").select("mkqa-queries").run()
    assert not at.exception
    assert "mkqa" in chart_specs(at)[1].lower()


@pytest.mark.slow
def test_language_bias_query_rank_plot(bundle_root):
    at = page("Language_bias.py").run()
    assert not at.exception
    assert len(chart_specs(at)) == 3
    box = at.selectbox(key="param_query")
    assert box.index == 0 and box.options[0].startswith(("ar:", "de:", "en:"))
    before = chart_specs(at)[2]
    box.select_index(len(box.options) - 1).run()
    assert not at.exception and at.selectbox(key="param_query").index == len(box.options) - 1
    assert chart_specs(at)[2] != before
    at.text_input(key="needle").input("zz-no-such-id").run()
    assert not at.exception and "No query id contains" in at.warning[0].value


@pytest.mark.slow
def test_embedding_map_with_tiny_models(bundle_root, monkeypatch):
    from hybridviz import dashboard

    monkeypatch.setattr(dashboard, "available_models", lambda: {"tiny seed 0": "tiny", "tiny seed 1": "tiny:1"})
    at = page("Embedding_map.py").run()
    assert not at.exception
    (spec,) = chart_specs(at)  # one figure, a full-width panel per model, one shared legend
    assert "tiny seed 0" in spec and "tiny seed 1" in spec and "language silhouette" in spec
    scores = at.dataframe[0].value
    assert list(scores["model"]) == ["tiny seed 0", "tiny seed 1"]
    linked = at.selectbox(key="param_group")  # a parallel set by its text, not its hex id
    assert all(not all(c in "0123456789abcdef" for c in option) for option in linked.options)
    assert any("computing the 2 here afresh takes about" in c.value for c in at.caption)
    at.selectbox(key="param_source").select("mkqa queries").run()
    assert not at.exception and len(at.dataframe[0].value) == 2


@pytest.mark.slow
def test_embedding_map_with_a_single_model_draws_it_once(bundle_root, monkeypatch):
    """A fresh clone with only the base model: both sides default to it; that once crashed with a duplicate
    plotly element id."""
    from hybridviz import dashboard

    monkeypatch.setattr(dashboard, "available_models", lambda: {"tiny": "tiny"})
    at = page("Embedding_map.py").run()
    assert not at.exception
    assert len(chart_specs(at)) == 1 and list(at.dataframe[0].value["model"]) == ["tiny"]


@pytest.mark.slow
def test_search_results_and_bad_queries(bundle_root, monkeypatch):
    from hybridviz import dashboard

    monkeypatch.setattr(dashboard, "available_models", lambda: {"tiny": "tiny"})
    at = page("Search.py").run()
    assert not at.exception and "Type a query" in at.info[0].value
    at.selectbox(key="param_pool").select("MKQA answers").run()
    at.text_area[0].input("who wrote the song let it be").run()
    assert not at.exception
    hits = at.table[0].value  # a table: the hit's text wraps, shown whole
    assert len(hits) == 10 and set(hits.columns) >= {"rank", "lang", "score", "relevant", "text"}
    assert set(hits["relevant"]) == {"unknown"} and not at.warning
    at.text_area[0].input("🙂🙂🙂 ??? ###").run()  # nothing to match: one warning, whatever the scores
    assert not at.exception and len(at.warning) == 1 and "no letters or digits" in at.warning[0].value
    at.text_area[0].input("x" * 10_000).run()
    assert not at.exception and "10,000 characters" in at.error[0].value
    at.text_area[0].input("   ").run()
    assert not at.exception and "Type a query" in at.info[0].value


@pytest.mark.slow
def test_fine_tune_lab_rejects_bad_settings_and_shows_empty_state(bundle_root):
    from hybridviz.data import paths

    at = page("Fine-tune_lab.py").run()
    assert not at.exception
    assert "No lab run yet" in at.info[0].value
    at.number_input(key="batch").set_value(100_000)  # larger than the training data
    at.button[0].click().run()
    assert not at.exception
    assert "Invalid training settings" in at.error[0].value and "larger than the" in at.error[0].value
    at.number_input(key="batch").set_value(32)
    at.multiselect(key="languages").select("en")
    at.selectbox(key="sampler").select("x-y")
    at.button[0].click().run()
    assert "needs at least two training languages" in at.error[0].value
    assert not list(paths.RUNS_DIR.glob("*/status.json")), "a rejected run leaves nothing behind"


@pytest.mark.slow
def test_fine_tune_lab_presets_model_and_benchmarks_from_the_url(bundle_root):
    from hybridviz.tasks import DEFAULT_EVALUATIONS

    at = page("Fine-tune_lab.py")
    at.query_params["model"] = "tiny"
    at.query_params["tasks"] = ["mkqa-answers", "no-such-task"]  # an unknown name is dropped
    at.run()
    assert not at.exception
    assert at.selectbox(key="model").value == "tiny"
    assert at.multiselect(key="tasks").value == ["mkqa-answers"]
    at = page("Fine-tune_lab.py").run()  # no preset: every benchmark
    assert at.multiselect(key="tasks").value == [e["task"] for e in DEFAULT_EVALUATIONS]


class RecordingBar:
    """Stands in for st.progress: records what the bar would show."""

    def __init__(self, log: list):
        self.log = log

    def progress(self, value, text):
        self.log.append((round(value, 3), text))

    def empty(self):
        self.log.append("emptied")


def test_search_eta_counts_encoding_only():
    """The first chunk's time (model load, warm-up) is not the rate: no estimate until a second chunk is done,
    then (time since the first chunk) / (candidates since) x candidates left."""
    from hybridviz.search import EncodingClock, has_words

    clock = EncodingClock()
    assert clock.left(21.0, 64, 13_014) is None  # 21 s, mostly loading the model: "estimating"
    assert clock.left(23.0, 192, 13_014) == pytest.approx(2.0 / 128 * (13_014 - 192))  # ~200 s, not 4,347
    assert not has_words("🙂🙂🙂 ??? ###") and has_words("Что?") and has_words("2024") and has_words("東京")


def test_step_progress_reports_the_time_left_from_the_weight_done(monkeypatch):
    """The bar's ETA = seconds per unit of weight so far x weight left; before the first step it says so."""
    from hybridviz import dashboard

    texts = []
    clock = iter([100.0, 104.0, 110.0])  # start; after step 1 (4 s for weight 1); after step 2
    monkeypatch.setattr(dashboard.st, "progress", lambda value, text: RecordingBar(texts))
    monkeypatch.setattr(dashboard.time, "perf_counter", lambda: next(clock))
    progress = dashboard.StepProgress("Mapping", [1, 3, 4])
    progress.begin("loading")
    progress.end()
    progress.end()
    progress.close()
    assert texts[0] == (0.0, "Mapping: loading · estimating the time left…")
    assert texts[1] == (0.125, "Mapping: 1 of 3 done · about 28 s left")  # 4 s per unit x 7 units
    assert texts[2] == (0.5, "Mapping: 2 of 3 done · about 10 s left")  # 10 s / 4 units x 4 units
    assert texts[-1] == "emptied"


def test_page_progress_shows_on_a_pages_first_full_run_in_a_session_only(monkeypatch):
    """A page's bar: on its first run in a session, over its sections with an ETA; once a run reached close(), the
    page's later reruns draw no bar; a run cut short (no close) leaves the next one its bar."""
    from hybridviz import dashboard

    drawn = []
    monkeypatch.setattr(dashboard.st, "progress", lambda value, text: RecordingBar(drawn))
    monkeypatch.setattr(dashboard.st, "session_state", {})

    def visit(page, finish=True):
        drawn.clear()
        progress = dashboard.PageProgress(page, [1, 3])
        progress.next("reading")
        progress.next("drawing")
        if finish:
            progress.close()
        return list(drawn)

    first = visit("Robustness", finish=False)
    assert first[0] == (0.0, "Loading the page: reading · estimating the time left…")
    assert first[1][0] == 0.25 and first[1][1].startswith("Loading the page: 1 of 2 done · about ")
    assert first[2][0] == 0.25 and first[2][1].startswith("Loading the page: drawing · about ")
    assert "emptied" not in first
    again = visit("Robustness")  # cut short before: the bar again, this time to its end
    assert again[0] == first[0] and again[-1] == "emptied"
    assert visit("Robustness") == []  # drawn once in full: no bar on its reruns
    assert visit("Overview")[0] == first[0]  # another page has its own


def test_box_statistics_are_the_quartiles_and_tukey_whiskers_plotly_would_draw():
    """Per group, against numpy on that group alone: linear quartiles, and the furthest values inside 1.5 IQR."""
    import numpy as np
    import pandas as pd

    from hybridviz.viz.bias import box_statistics, rank_distance_boxes

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"group": rng.choice(["x-y", "hybrid"], 3000),
                          "query_lang": rng.choice(["de", "en", "zh"], 3000),
                          "max_rank_distance": np.round(rng.lognormal(2, 1.5, 3000))})
    frame.loc[:5, "max_rank_distance"] = np.nan  # a query without parallel items is left out
    stats = box_statistics(frame, ["group", "query_lang"], "max_rank_distance")
    assert len(stats) == 6
    for row in stats.itertuples():
        v = frame[(frame.group == row.group) & (frame.query_lang == row.query_lang)]["max_rank_distance"].dropna()
        v = v.to_numpy()
        q1, q2, q3 = np.percentile(v, [25, 50, 75])
        assert (row.q1, row.median, row.q3, row.n) == pytest.approx((q1, q2, q3, len(v)))
        assert row.upperfence == v[v <= q3 + 1.5 * (q3 - q1)].max() and row.upperfence < v.max()  # outliers exist
        assert row.lowerfence == v[v >= q1 - 1.5 * (q3 - q1)].min()
    fig = rank_distance_boxes(stats, "xquad-r")
    assert {t.name for t in fig.data} == {"X-Y", "hybrid"} and all(t.y is None for t in fig.data)  # no raw values
    # a log axis labelled in plain numbers (1, 2, 5, 10, 20, ...), not plotly's "5, 2, 1000, 5, 2, 100"
    ticks = list(fig.layout.yaxis.tickvals)
    assert fig.layout.yaxis.type == "log" and len(ticks) >= 3 and ticks == sorted(ticks)
    assert list(fig.layout.yaxis.ticktext) == [f"{t:,g}" for t in ticks]  # "50", "100", "1,000": never "5, 2"
    from hybridviz.viz.bias import log_ticks

    assert log_ticks(3, 2500) == [2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
    assert log_ticks(25, 99) == [20, 30, 50, 70, 100]  # within a decade: more ticks
    pooled = rank_distance_boxes(box_statistics(frame, ["group"], "max_rank_distance"), "xquad-r", pooled=True)
    assert len(pooled.data) == 2 and all(len(t.q1) == 1 for t in pooled.data)  # one box per sampler


def test_per_language_views_name_the_languages_a_model_left_out(monkeypatch):
    from types import SimpleNamespace

    from hybridviz import dashboard

    shown = []
    monkeypatch.setattr(dashboard.st, "caption", shown.append)
    muse = {"notes": {"unsupported_languages": ["el", "hi", "vi"]}, "model": {"label": "multilingual USE v3"}}
    results = [SimpleNamespace(group="x-y", metrics=muse), SimpleNamespace(group="x-y", metrics=muse),
               SimpleNamespace(group="base", metrics={"notes": {}, "model": {"label": "mE5"}})]
    dashboard.unsupported_languages_note(results)
    assert shown == ["Not evaluated: el, hi, vi — multilingual USE v3 does not support them (left out, not "
                     "averaged in)."]


@pytest.mark.slow
def test_robustness_page_gives_each_set_up_its_verdict_rows(bundle_root):
    from hybridviz.experiments.bundle import load_bundle
    from hybridviz.experiments.robustness import robustness_rows

    at = page("Robustness.py").run()
    assert not at.exception
    rows = [r for r in robustness_rows([load_bundle(bundle_root)]) if r["task"] == "xquad-r"]
    table = at.dataframe[0].value
    assert len(table) == len(rows) > 0 and set(table["set-up"]) == {bundle_root.name}
    assert list(table["cell"]) == [f"{r['setting']} {r['metric']}" for r in rows]
    assert any("Only one set-up" in i.value for i in at.info)
    assert "95 % interval, run as the unit" in chart_specs(at)[0]


def test_robustness_page_draws_an_early_stopped_bundles_learning_curves(monkeypatch, tmp_path):
    """A converged (early-stopped) bundle under the reference folder, with no verdict yet: the page still draws
    its curves with a band over seeds, its summary rows and the XQuAD-R sample, titled by bundle and regime."""
    from conftest import write_converged_bundle
    from hybridviz.data import paths
    from hybridviz.experiments import bundle
    from hybridviz.experiments.curves import bundle_curves, probe_summary, summary_rows

    reference = tmp_path / "reference"
    path = write_converged_bundle(reference, "converged-planted")
    write_converged_bundle(reference, "fixed-budget", early_stopping=False)  # no curves: no section
    monkeypatch.setattr(bundle, "REFERENCE_DIR", reference)
    monkeypatch.setattr(paths, "STUDIES_DIR", tmp_path / "studies")
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    at = page("Robustness.py").run()
    assert not at.exception
    assert any("No bundle with a run-level sampler verdict yet" in i.value for i in at.info)
    specs = chart_specs(at)
    assert len(specs) == 1 and "early-stopped bundle converged-planted: tiny · mlqa-r · batch 16" in specs[0]
    assert "fixed-budget" not in " ".join(specs)
    assert "band only where 2 or more remain" in specs[0]
    captions = " ".join(c.value for c in at.caption)
    assert "Seeds along the run: X-X-mono: 3 seeds to step 200, 2 or more to 250, one seed alone to 300" in captions
    assert "up to 400 steps, stopping after 2 validations without a gain" in captions
    state = bundle_curves(path)
    tables = [d.value for d in at.dataframe]
    summary = next(t for t in tables if "best steps" in t)
    assert summary.to_dict("records") == pytest.approx(summary_rows(state))
    assert list(summary["stopped at"]) == ["200, 300, 250", "300, 300, 400", "150, 250, 350"]
    probes = next(t for t in tables if "multi min" in t)
    assert probes.to_dict("records") == pytest.approx(probe_summary(state))
    assert any("python -m hybridviz budget" in i.value for i in at.info)  # the sections after it still drawn


def test_sampler_figures_distinct_colours_bars_from_zero_and_reasons_for_missing_settings():
    """The 12 methods of the sampler grid get 12 colours; per-language bars start at zero and their legend sits
    under the plot; a benchmark without a setting is named with its recorded reason."""
    from types import SimpleNamespace

    import pandas as pd

    from hybridviz.viz.comparison import not_applicable, per_language_bars, step_budget_set_up
    from hybridviz.viz.style import group_color

    groups = ["base", "x-x-mono", "x-y", "hybrid", "base+center", "base+center@index", "base+leace", "base+lir:k=1",
              "base+lsar:r=4", "x-x-mono+center", "x-y+center", "hybrid+center"]
    assert len({group_color(g) for g in groups}) == len(groups)
    frame = pd.DataFrame([{"group": g, "lang": lang, "mean": 0.5 + 0.01 * i, "std": 0.01, "n": 2,
                           "seen": "seen in training" if lang == "de" else "unseen"}
                          for i, g in enumerate(groups) for lang in ("de", "fi")])
    fig = per_language_bars(frame, "mkqa-queries", "multi", "mAP")
    assert all(axis.rangemode == "tozero" for axis in (fig.layout.yaxis, fig.layout.yaxis2))
    assert fig.layout.legend.orientation == "h" and "X-X-mono + center (fine-tuned + training-free)" in {
        t.name for t in fig.data}
    mteb = SimpleNamespace(task="mkqa-mteb", metrics={"settings": {"multi": {"not_applicable": (
        "not applicable: MTEB's MKQARetrieval is monolingual (each language's questions against that language's "
        "answer strings)")}}})
    xquad = SimpleNamespace(task="xquad-r", metrics={"settings": {"multi": {"macro": {"mAP": 0.5}}}})
    assert not_applicable([mteb, xquad], ["xquad-r", "mkqa-mteb"], "multi") == {
        "mkqa-mteb": "MTEB's MKQARetrieval is monolingual (each language's questions against that language's answer "
                     "strings)"}
    old = {"provenance": {"command": "python -m hybridviz budget", "commit": "5ac3eb3c98"}}
    assert step_budget_set_up(old) == ("'python -m hybridviz budget' with its defaults at commit 5ac3eb3 (settings not "
                                       "recorded then)")
    assert step_budget_set_up({"base_config": {"model": "muse", "train_data": "mlqa-r", "batch_size": 100,
                                               "learning_rate": 1e-4}}) == "muse · mlqa-r · batch 100 · lr 0.0001"


def test_full_tables_fit_their_longest_text():
    import pandas as pd

    from hybridviz.viz.tables import column_widths

    frame = pd.DataFrame({"sampler": ["base + center@index (training-free, transductive)", "X-Y"], "n": [1, 2],
                          "verdict": ["hybrid and X-Y equivalent within ±0.0100", "undetermined"]})
    widths = column_widths(frame)
    assert set(widths) == {"sampler", "verdict"} and widths["sampler"] > 7 * 49 and widths["verdict"] > 7 * 41


def test_embedding_map_estimate_from_the_rates_last_measured(tmp_path, monkeypatch):
    from hybridviz import projection

    monkeypatch.setattr(projection, "MAP_TIMINGS", tmp_path / "timings.json")
    seconds, source = projection.map_seconds_estimate(660, ["me5-small", "run:x"])
    assert seconds == pytest.approx(41.2) and "idle 2-core" in source  # the bench's cold visit, before any map
    projection.record_map_time("me5-small", 33.0, 660)  # 50 ms per item measured here
    seconds, source = projection.map_seconds_estimate(660, ["me5-small"])
    assert seconds == pytest.approx(33.0) and source == "the last maps computed on this machine"


def test_the_menu_names_the_overview_and_each_page_draws_its_heading_before_the_library():
    """Streamlit's own menu would call the home page "app": it is hidden, and pages.menu() draws the same links
    with the Overview named. Every page calls heading() before it imports pandas or the library, so a cold visit
    paints its heading while those imports run."""
    import ast
    import tomllib

    from pages import page_files
    from streamlit.source_util import page_icon_and_name

    config = tomllib.loads((PAGES.parent / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showSidebarNavigation"] is False
    menu = page_files()
    assert menu[0] == ("app.py", "Overview")
    assert [label for _, label in menu[1:]] == [page_icon_and_name(PAGES.parent / path)[1].replace("_", " ")
                                               for path, _ in menu[1:]]
    for path, _ in menu:
        tree = ast.parse((PAGES.parent / path).read_text())
        order = [(node.lineno, "heading") for node in tree.body if isinstance(node, ast.Expr)
                 and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "heading"]
        heavy = [node.lineno for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                 and any(name in ast.unparse(node) for name in ("hybridviz", "pandas", "numpy", "plotly"))]
        assert order and heavy and order[0][0] < min(heavy), path


@pytest.fixture
def studies_root(monkeypatch, tmp_path):
    from hybridviz.data import paths

    root = tmp_path / "studies"
    monkeypatch.setattr(paths, "STUDIES_DIR", root)
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    return root


def test_study_page_validates_and_only_the_button_submits(studies_root, data_root):
    """Enter in a box (a value committed) submits nothing; the button checks the request and names the problem;
    nothing is written for a refused request."""
    at = page("Study.py").run()
    assert not at.exception
    assert "No study yet" in at.info[0].value
    at.text_input(key="name").input("my study").run()  # Enter in the name box: no submit, no message
    at.number_input(key="steps").set_value(5).run()
    assert not at.exception and not at.error and not at.success
    at.button(key="start").click().run()
    assert "Study name 'my study'" in at.error[0].value
    at.text_input(key="name").input("s1")
    at.selectbox(key="model").select("tiny")
    at.text_input(key="seeds").input("0")
    at.button(key="start").click().run()
    assert not at.exception and "at least two seeds" in at.error[0].value
    at.text_input(key="seeds").input("0, 1")
    at.text_area(key="custom").input("/no/such/folder")
    at.button(key="start").click().run()
    assert not at.exception and "/no/such/folder" in at.error[0].value
    assert not list(studies_root.glob("*/study.json")), "a refused study leaves nothing behind"


def test_study_defaults_are_the_models_own_sweep(studies_root, data_root, tmp_path):
    """The learning rate and warm-up start at what the model's held-out sweep chose (cache/reference/lr-sweep*),
    as `experiment` does; a model without a sweep gets the trainer's defaults, said under the box."""
    from hybridviz.results.store import sweep_choice

    me5, me5_file = sweep_choice("me5-small")
    muse, _ = sweep_choice("muse")
    assert me5_file.parent.name == "lr-sweep" and me5["learning_rate"] != muse["learning_rate"]
    assert sweep_choice("tiny")[0] == {}
    (tmp_path / "lr-sweep").mkdir()
    (tmp_path / "lr-sweep" / "sweep.json").write_text("{damaged")
    assert sweep_choice("me5-small", tmp_path)[0] == {}  # a damaged file is no sweep
    at = page("Study.py").run()
    assert at.number_input(key="lr:me5-small").value == me5["learning_rate"]
    at.selectbox(key="model").select("muse").run()
    assert not at.exception
    assert at.number_input(key="lr:muse").value == muse["learning_rate"]
    assert at.number_input(key="warmup:muse").value == muse["warmup_steps"]
    at.selectbox(key="model").select("tiny").run()
    assert at.number_input(key="lr:tiny").value == 3e-5
    assert any("No learning-rate sweep for tiny" in c.value for c in at.caption)


@pytest.mark.slow
def test_a_running_study_is_listed_with_a_partial_verdict(bundle_root, studies_root):
    """A study's bundle joins the selector (study:<name>) once each sampler has two finished runs; until the
    study is complete the Overview and the other pages say its verdict is partial; the Study page shows its
    units and offers Resume when its worker is gone."""
    import shutil

    from hybridviz.fileio import write_json_atomic

    folder = studies_root / "s1"
    shutil.copytree(bundle_root, folder)
    spec = json.loads((folder / "manifest.json").read_text())["spec"]
    write_json_atomic(folder / "study.json", {"name": "s1", "spec": spec, "submitted": 1.0})
    write_json_atomic(folder / "status.json", {"state": "cancelled", "error": "cancelled while [x-y-s1] training"})
    at = page("app.py")
    at.query_params["bundle"] = "study:s1"
    at.run()
    assert not at.exception
    assert any("Partial" in w.value for w in at.warning)
    assert any("partial" in h.value for h in at.subheader)
    at = page("Sampler_comparison.py")
    at.query_params["bundle"] = "study:s1"
    at.run()
    assert not at.exception and any("Partial" in w.value for w in at.warning)
    at = page("Study.py").run()
    assert not at.exception
    assert "Resume" in [b.label for b in at.button]
    write_json_atomic(folder / "status.json", {"state": "done"})
    at = page("app.py")
    at.query_params["bundle"] = "study:s1"
    at.run()
    assert not at.exception and not any("Partial" in w.value for w in at.warning)


def test_study_page_shows_where_each_unit_runs(studies_root, data_root):
    """A study on a Ray cluster: the form offers the executor, and the unit table reads progress.json (the grid's
    driver writes it): a unit running on its node, a failed one with its error, the executor in the caption."""
    import os
    from dataclasses import asdict

    from hybridviz.experiments.grid import GridSpec
    from hybridviz.fileio import write_json_atomic

    folder = studies_root / "r1"
    spec = GridSpec(model="tiny", samplers=["x-y"], seeds=[0, 1], alphas=[], methods=[], sampler_method=None,
                    steps=3, evaluations=[{"task": "xquad-r", "languages": None, "limit": 10}])
    write_json_atomic(folder / "study.json", {"name": "r1", "spec": asdict(spec), "submitted": 1.0, "executor": {
        "kind": "ray", "address": "auto", "cpus_per_unit": 4, "gpus_per_unit": None, "max_retries": 2}})
    write_json_atomic(folder / "status.json", {"state": "running", "pid": os.getpid(), "updated": 1.0})
    write_json_atomic(folder / "progress.json", {"executor": {"kind": "ray"}, "units": {
        "base": {"state": "done", "host": "gpu-1"},
        "x-y-s0": {"state": "running", "host": "gpu-7", "node_id": "abcdef123", "device": "cuda", "attempt": 2},
        "x-y-s1": {"state": "failed", "host": "gpu-2", "error": "OSError: disk full"}}})
    at = page("Study.py").run()
    assert not at.exception
    frame = at.dataframe[0].value
    states = dict(zip(frame["unit"], frame["state"]))
    assert states == {"base": "pending", "x-y-s0": "running on gpu-7", "x-y-s1": "failed"}
    assert "running on gpu-7 (node abcdef…, cuda, attempt 2)" in list(frame["where"])
    assert "OSError: disk full" in list(frame["error"]) and 2 in list(frame["attempt"])
    assert any("Ray cluster (auto, 4 CPUs per unit)" in c.value for c in at.caption)
    assert at.selectbox(key="executor").value == "serial"  # the form's default
    at.selectbox(key="executor").select("ray").run()
    assert not at.exception and not at.text_input(key="ray_address").disabled


def test_a_bundle_page_reads_its_bundle_without_importing_torch():
    """A cold visit to a page that reads a bundle (the Overview, Sampler comparison, Robustness, Language pairs)
    pays no torch / sentence-transformers import for reading it and saying how far its models trained (that import
    once put 5 s on each such page's cold visit: bench/results/dashboard-fresh-after.json)."""
    from conftest import assert_runs_without_heavy_imports

    code = ("import sys\n"
            "from hybridviz import dashboard\n"
            "from hybridviz.experiments import curves, effects, plan, robustness, verdict\n"
            "from hybridviz.experiments.bundle import load_bundle, training_extent\n"
            "from hybridviz.viz import comparison, effects as viz_effects, tables\n"
            f"bundle = load_bundle({str(ROOT / 'cache' / 'reference' / 'sampler-grid')!r})\n"
            "assert training_extent(bundle)['text']\n"
            "from hybridviz.data.paths import REFERENCE_DIR\n"
            "for name in curves.find_curves():\n"
            "    state = curves.read_curves(REFERENCE_DIR / name)\n"
            "    curves.curve_frame(state), curves.probe_frame(state), curves.summary_rows(state)\n"
            )
    assert_runs_without_heavy_imports(code)
