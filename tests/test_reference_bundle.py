"""Every committed result bundle (cache/reference/*/manifest.json: the sampler grid, the robustness set-ups) is
what the code computes.

Checked for each: its summary is recomputed from its per-model files; one paired test is recomputed; and its base
encoder is re-evaluated on a slice (XQuAD-R monolingual German: 1,190 questions against the German pool) and
matches the committed per-query values. Fine-tuned weights are not committed (hundreds of MB each), so fine-tuned
runs are checked through their files, not re-evaluated; `python -m hybridviz experiment` retrains them on demand.
A bundle under an analysis plan is also checked against git's history: the plan came first, and its stopping rule
stopped every run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import slice_check

from hybridviz.experiments.bundle import find_bundles, load_bundle, summarise, task_clusters
from hybridviz.experiments.plan import plan_of
from hybridviz.experiments.stats import compare_runs, paired_tests

REFERENCE = Path(__file__).resolve().parents[1] / "cache" / "reference"
BUNDLES = sorted({p.name for p in find_bundles(REFERENCE)} | {"sampler-grid"})  # the main one must be there


@pytest.fixture(scope="module", params=BUNDLES)
def bundle(request):
    path = REFERENCE / request.param
    if not (path / "manifest.json").exists():
        pytest.fail(f"the reference bundle is missing: {path}")
    return load_bundle(path)


def test_bundle_records_its_provenance(bundle):
    prov = bundle.manifest["provenance"]
    assert prov["command"].startswith("python -m hybridviz experiment")
    assert len(prov["commit"]) == 40 and prov["machine"]["cpus"] >= 1 and prov["created"]
    assert bundle.manifest["wall_s"] > 0
    for r in bundle.results:
        assert r.metrics["provenance"]["commit"] and r.metrics["model"]["fingerprint"]


@pytest.mark.slow  # the quick tier stays under 3 min (#32)
def test_summary_recomputes_from_the_per_model_files(bundle):
    committed = bundle.summary
    fresh = summarise(bundle, n_resamples=10)  # cells only are compared here; p-values below
    key = lambda c: (c["task"], c["setting"], c["metric"], c["group"])  # noqa: E731
    assert {key(c): c["values"] for c in fresh["cells"]} == {key(c): c["values"] for c in committed["cells"]}
    for c in committed["cells"]:
        assert c["mean"] == pytest.approx(float(np.mean([v for v in c["values"] if v is not None])))
    test = next(t for t in committed["tests"] if t["task"] == "xquad-r" and t["setting"] == "multi"
                and t["metric"] == "mAP" and t["a"] == "base")
    runs_a = [r.per_query("multi", "mAP") for r in bundle.select(test["a"], "xquad-r")]
    runs_b = [r.per_query("multi", "mAP") for r in bundle.select(test["b"], "xquad-r")]
    queries = sorted(set.intersection(*(set(r) for r in runs_a + runs_b)))
    a = np.array([np.mean([r[q] for r in runs_a]) for q in queries])
    b = np.array([np.mean([r[q] for r in runs_b]) for q in queries])
    again = paired_tests(a, b, n_resamples=committed.get("n_resamples", 10_000))
    for name in ("n", "delta", "t", "p_ttest", "p_randomisation"):
        assert again[name] == pytest.approx(test["per_checkpoint"][name], rel=1e-6, abs=1e-9), name
    # the run-level comparison recomputes from the same files with the same resamples
    values_a = [r.macro("multi", "mAP") for r in bundle.select(test["a"], "xquad-r")]
    values_b = [r.macro("multi", "mAP") for r in bundle.select(test["b"], "xquad-r")]
    plan = plan_of(bundle.manifest)  # the bundle's analysis plan: its clusters (XQuAD-R: paragraphs) and margin
    run_level = compare_runs(runs_a, runs_b, values_a, values_b,
                             [r.seed for r in bundle.select(test["a"], "xquad-r")],
                             [r.seed for r in bundle.select(test["b"], "xquad-r")],
                             n_resamples=committed.get("n_resamples", 10_000),
                             clusters=task_clusters(bundle, "xquad-r", plan), margin=test["margin"],
                             alpha=plan.alpha, power=plan.power, marks_rule=plan.test["marks"])
    for name in ("delta", "ci_low", "ci_high", "p", "p_marks", "pairs_agree", "clusters", "mde", "p_tost"):
        assert getattr(run_level, name) == pytest.approx(test[name], rel=1e-9, abs=1e-12), name


def test_every_run_of_the_bundle_shares_its_code_settings(bundle):
    """Runs compared in one bundle were evaluated at one length, batch and precision, and trained alike."""
    evaluated = {(r.metrics["model"].get("precision"), r.metrics["model"].get("batch_size", 64),
                  r.metrics["provenance"].get("settings", {}).get("max_seq_length", 512)) for r in bundle.results}
    assert len(evaluated) == 1, evaluated
    # and from committed code: a dirty working tree's source is recorded by hash only, held by no commit
    dirty = [f"{r.label}/{r.task}" for r in bundle.results if r.metrics["provenance"].get("code", {}).get("dirty")]
    assert not dirty, dirty
    trained = set()
    for label in {r.label for r in bundle.results if r.seed is not None}:  # trained runs (not base, base+method)
        cfg = bundle.training_config(label)
        status = json.loads((bundle.path / "models" / label / "training" / "status.json").read_text())
        trained.add((cfg["max_seq_length"], cfg["mixed_precision"], cfg["batch_size"], cfg["steps"],
                     status.get("saved_max_seq_length", 512)))
    assert len(trained) == 1, trained


# (model, precision, batch size) -> the slice's fresh macro, per-query APs and query counts. Bundles that share a
# base encoder (the sampler grid and the mE5-small robustness bundle) compare their committed values with one
# re-evaluation: the slice takes ~16 s of the suite's 15 minutes.
_FRESH_SLICES: dict[tuple, tuple[float, dict[str, float], int]] = {}


def _fresh_slice(model: str, precision: str, batch_size: int, tmp_path: Path) -> tuple[float, dict[str, float], int]:
    import csv

    from hybridviz.evaluate import evaluate

    key = (model, precision, batch_size)
    if key not in _FRESH_SLICES:
        report = evaluate(model, "xquad-r", languages=["de"], settings=["mono"], precision=precision,
                          out_dir=tmp_path, batch_size=batch_size)
        json.dumps(report)  # the report is plain JSON
        with open(tmp_path / "per_query_settings.csv", encoding="utf-8") as f:
            fresh = {r["query_id"]: float(r["ap"]) for r in csv.DictReader(f)}
        _FRESH_SLICES[key] = (report["settings"]["mono"]["per_language"]["de"]["mAP"], fresh,
                              report["settings"]["mono"]["n_queries"]["de"])
    return _FRESH_SLICES[key]


@pytest.mark.slow
def test_base_encoder_reevaluated_on_a_slice_matches(bundle, data_root, tmp_path):
    from hybridviz.encoders import load_encoder

    committed = bundle.get("base", "xquad-r")
    precision = committed.metrics["model"].get("precision", "fp32")
    check = slice_check(precision, committed.metrics["provenance"].get("machine"))
    # bf16 sums depend on the texts per forward pass; bundles from before it was recorded used 64
    batch_size = committed.metrics["model"].get("batch_size", 64)
    model = bundle.manifest["spec"]["model"]
    fresh_macro, fresh, n_queries = _fresh_slice(model, check.precision, batch_size, tmp_path)
    # the same weights, whatever precision recomputes them (the fingerprint names weights and precision)
    assert load_encoder(model, precision=precision).fingerprint == committed.metrics["model"]["fingerprint"]
    assert fresh_macro == pytest.approx(committed.metrics["settings"]["mono"]["per_language"]["de"]["mAP"],
                                        abs=check.macro_abs)
    # per query: the committed values are those of the same questions now
    per_query = committed.per_query("mono", "mAP")
    de = {q: v for q, v in per_query.items() if q.startswith("de:")}
    assert len(de) == n_queries
    assert np.mean(list(de.values())) == pytest.approx(fresh_macro, abs=check.macro_abs)
    assert fresh.keys() == de.keys()
    diffs = np.abs([fresh[q] - de[q] for q in de])
    # bf16 sums depend on how texts are batched (an empty embedding cache batches German alone), so a few near
    # ties flip (AP 1 <-> .5); with the cache the grid left behind the values are identical
    assert diffs.mean() < check.mean_abs and (diffs > 1e-3).mean() < check.moved_share


def test_the_one_pass_per_query_table_reads_what_per_query_reads(bundle):
    """summarise reads each result's files once (per_query_table); every figure equals the one-at-a-time reader."""
    result = bundle.get("base", "xquad-r")
    table = result.per_query_table()
    expected = {("multi", "max_rank_distance"), ("multi", "same_lang@10")} | {
        (s, m) for s in result.metrics["settings"] for m in ("mAP", "MRR", "nDCG@10")}
    assert set(table) == expected
    for (setting, metric), values in table.items():
        assert values == result.per_query(setting, metric), (setting, metric)


REPO = REFERENCE.parents[1]
PLANNED = [name for name in BUNDLES
           if "analysis_plan" in json.loads((REFERENCE / name / "manifest.json").read_text(encoding="utf-8"))]


def _git(*args: str) -> str:
    import subprocess

    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr.strip()}"
    return done.stdout.strip()


@pytest.mark.parametrize("name", PLANNED)
def test_the_analysis_plan_was_committed_before_the_bundles_first_run_and_its_rule_was_followed(name):
    """#31: the plan's commit precedes the bundle's first training run, every unit's code descends from it, the
    plan file at that commit is the plan the bundle holds, and every run was stopped by the plan's rule. The
    oracle is git's own history (commit times and ancestry) and the runs' own training records."""
    from hybridviz.experiments.plan import AnalysisPlan

    if _git("rev-parse", "--is-shallow-repository") == "true":
        pytest.skip("a shallow clone lacks the history that dates the plan")
    bundle = load_bundle(REFERENCE / name)
    held = bundle.manifest["analysis_plan"]
    assert held["commit"] and held["file"], "the bundle names no commit for its plan"
    at_commit = AnalysisPlan.from_json(_git("show", f"{held['commit']}:{held['file']}"))
    assert at_commit.to_dict() == held["plan"]
    committed_at = int(_git("log", "-1", "--format=%ct", held["commit"]))
    stopping, seeds = held["plan"]["stopping"], held["plan"]["seeds"]
    started, trained_seeds = [], set()
    for folder in sorted((bundle.path / "models").glob("*/training")):
        status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        started.append(status["started"])
        trained_seeds.add(config["seed"])
        extra = config["extra"]
        assert (config["steps"], config["warmup_steps"], extra["eval_steps"], extra["patience"]) == (
            stopping["max_steps"], stopping["warmup_steps"], stopping["eval_steps"], stopping["patience"]), folder
        assert status["state"] == "done" and status["best_step"] % stopping["eval_steps"] == 0, folder
        # stopped after `patience` validations without a gain, or at the budget
        assert (status["stopped_at"] == status["best_step"] + stopping["patience"] * stopping["eval_steps"]
                or status["stopped_at"] == stopping["max_steps"]), (folder, status)
    assert started and min(started) > committed_at, "a run started before the plan was committed"
    assert trained_seeds == set(seeds)
    for result in bundle.results:
        commit = result.metrics["provenance"]["commit"]
        _git("merge-base", "--is-ancestor", held["commit"], commit)  # raises where the code predates the plan
