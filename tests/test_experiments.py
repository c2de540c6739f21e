"""The experiment layer: paired tests against scipy, the grid as resumable units, bundles and summaries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from hybridviz.experiments.bundle import BundleError, load_bundle, write_summary
from hybridviz.errors import HybridvizError
from hybridviz.experiments.grid import GridSpec, merge_bundle, plan, run_grid
from hybridviz.experiments.stats import mean_std, paired_tests, sign_flip_p

ROOT = Path(__file__).resolve().parents[1]


def test_sign_flip_matches_scipy_permutation_test():
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.15, 0.4):
        diff = rng.normal(shift, 1.0, 30)
        ours = sign_flip_p(diff, n_resamples=20_000, seed=1)
        ref = stats.permutation_test((diff,), np.mean, permutation_type="samples", n_resamples=20_000,
                                     vectorized=True, rng=np.random.default_rng(2)).pvalue
        assert abs(ours - ref) < 0.02, (shift, ours, ref)


def test_paired_tests_and_mean_std_agree_with_scipy_and_numpy():
    rng = np.random.default_rng(0)
    a = rng.random(500)
    b = a + rng.normal(0.03, 0.1, 500)
    res = paired_tests(a, b, n_resamples=2000)
    t = stats.ttest_rel(b, a)
    assert res["t"] == pytest.approx(t.statistic) and res["p_ttest"] == pytest.approx(t.pvalue)
    assert res["delta"] == pytest.approx(float(np.mean(b - a)))
    assert res["p_randomisation"] < 0.01  # a real shift of 0.03 over 500 queries is found
    assert paired_tests(a, a)["p_randomisation"] == 1.0
    ms = mean_std([0.2, 0.4, 0.9])
    assert ms["mean"] == pytest.approx(0.5) and ms["std"] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))
    assert mean_std([0.3])["std"] == 0.0 and mean_std([])["n"] == 0


def test_plan_reuses_x_y_and_x_x_mono_as_the_alpha_ends():
    spec = GridSpec(sampler_method="center")
    units = plan(spec)
    labels = [u.label for u in units]
    # base and the methods on it, 3 samplers x 5 seeds each followed by the sampler method on it, 2 extra alphas
    assert labels[0] == "base" and len(labels) == 1 + 3 * 5 + 2 + len(spec.methods) + 3 * 5
    assert labels[1:1 + len(spec.methods)] == [f"base+{m}" for m in spec.methods]
    first = 1 + len(spec.methods)
    assert labels[first:first + 4] == ["x-x-mono-s0", "x-x-mono-s0+center", "x-y-s0", "x-y-s0+center"]
    assert labels[-2:] == ["hybrid-a0.25-s0", "hybrid-a0.75-s0"]
    assert "x-y-s3+center" in labels and all(u.method == "center" for u in units if u.label.endswith("+center")
                                              and not u.label.startswith("base"))
    assert [u.alpha for u in units if u.label.startswith("hybrid-a")] == [0.25, 0.75]
    run_ids = [u.config.run_id() for u in units if u.config and not u.method]
    assert len(set(run_ids)) == len(run_ids)  # a sampler + method unit reuses its sampler's run
    # same step budget for every fine-tune
    assert {u.config.steps for u in units if u.config} == {GridSpec().steps}


@pytest.mark.slow
def test_tiny_grid_writes_a_complete_bundle(tiny_grid):
    out, spec, manifest, root = tiny_grid
    assert set(manifest["units"]) == {u.label for u in plan(spec)}
    assert all(u["state"] == "done" for u in manifest["units"].values())
    assert manifest["provenance"]["commit"] and manifest["provenance"]["command"] is not None
    tasks = {u.label: u.tasks for u in plan(spec)}
    for label, unit in manifest["units"].items():
        folder = out / "models" / label
        assert sorted(p.parent.name for p in folder.glob("*/metrics.json")) == sorted(tasks[label])
        assert (folder / "xquad-r" / "per_query.npz").exists()  # bundles hold the compact encoding
        assert not list(folder.glob("*/per_query*.gz"))
        assert (folder / "xquad-r" / "per_query_pairs.npz").exists()
        if unit["sampler"] != "base":
            assert json.loads((folder / "training" / "status.json").read_text())["state"] == "done"
    bundle = load_bundle(out)
    assert set(bundle.groups()) == {"base", "x-x-mono", "x-y", "hybrid", "hybrid-a0.7", "base+center@index"}
    # no weights in a bundle
    assert not list(out.rglob("*.safetensors"))


@pytest.mark.slow
def test_summary_means_and_tests_come_from_the_per_model_files(tiny_grid):
    out, spec, manifest, root = tiny_grid
    summary = json.loads((out / "summary.json").read_text())
    bundle = load_bundle(out)
    cell = next(c for c in summary["cells"] if c["task"] == "mkqa-queries" and c["setting"] == "multi"
                and c["metric"] == "mAP" and c["group"] == "hybrid")
    values = [bundle.get(f"hybrid-s{s}", "mkqa-queries").metrics["settings"]["multi"]["macro"]["mAP"]
              for s in spec.seeds]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx(np.mean(values))
    assert cell["std"] == pytest.approx(np.std(values, ddof=1))
    # the per-query file reproduces the macro figure: mean per language, then over languages
    result = bundle.get("hybrid-s0", "mkqa-queries")
    compact = result.compact()
    langs = dict(zip(compact.query_ids, compact.query_langs))
    per_lang = {}
    for query, ap in result.per_query("multi", "mAP").items():
        per_lang.setdefault(langs[query], []).append(ap)
    macro = np.mean([np.mean(v) for v in per_lang.values()])
    assert macro == pytest.approx(result.macro("multi", "mAP"), abs=1e-5)
    # a paired test for every headline comparison that has data; p-values are probabilities
    test = next(t for t in summary["tests"] if t["task"] == "mkqa-queries" and t["setting"] == "multi"
                and t["metric"] == "mAP" and t["a"] == "x-y" and t["b"] == "hybrid")
    a = [np.mean([bundle.get(f"x-y-s{s}", "mkqa-queries").per_query("multi", "mAP")[q] for s in spec.seeds])
         for q in sorted(result.per_query("multi", "mAP"))]
    checkpoint = test["per_checkpoint"]
    assert checkpoint["n"] == len(a) and checkpoint["mean_a"] == pytest.approx(np.mean(a))
    assert all(0 < t["per_checkpoint"]["p_randomisation"] <= 1 and 0 <= t["per_checkpoint"]["p_ttest"] <= 1
               for t in summary["tests"] if t["delta"] != 0 and t["per_checkpoint"])
    # sampler pairs carry the per-checkpoint test; comparisons with a training-free method form their own family
    assert all(t["per_checkpoint"] for t in summary["tests"] if "+" not in t["a"] + t["b"])
    # (the tiny grid's only method, center@index, is transductive: a family of its own, experiments/plan.py)
    assert {t["correction"] for t in summary["tests"] if "+" in t["a"] + t["b"]} == {"bh (transductive)"}
    # the run-level comparison: delta from the per-seed macro figures, p-values adjusted in their family
    runs_a = [bundle.get(f"x-y-s{s}", "mkqa-queries").macro("multi", "mAP") for s in spec.seeds]
    assert test["delta"] == pytest.approx(np.mean(values) - np.mean(runs_a))
    assert test["ci_low"] <= test["delta"] <= test["ci_high"]
    assert test["family"] == "primary" and test["correction"] == "holm (primary)"
    assert all(t["p"] <= t["p_adjusted"] <= 1 for t in summary["tests"])
    # alpha = 0 / 0.5 / 1 are the x-y, hybrid and x-x-mono runs of seed 0; 0.7 is trained for the sweep only
    assert [(p["alpha"], p["label"]) for p in summary["alpha_sweep"]] == [
        (0.0, "x-y-s0"), (0.5, "hybrid-s0"), (0.7, "hybrid-a0.7-s0"), (1.0, "x-x-mono-s0")]
    assert summary["seen_languages"] == ["ar", "de", "en", "es", "hi", "vi", "zh"]


@pytest.mark.slow
def test_rerunning_the_grid_skips_finished_units(tiny_grid):
    out, spec, manifest, root = tiny_grid
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    logs = []
    again = run_grid(out, spec, log=logs.append, runs_root=root / "runs")
    assert logs == [] and again["units"].keys() == manifest["units"].keys()
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}


@pytest.mark.slow
def test_refresh_reevaluates_legacy_provenance_after_retraining_to_the_same_weights(tiny_grid, tmp_path):
    """A copy of the tiny bundle whose x-y seed-1 evaluation lacks code provenance and whose weights are gone:
    --refresh retrains (same fingerprint), re-evaluates, swaps the folder in, and the figures are unchanged."""
    import shutil

    out, spec, manifest, root = tiny_grid
    copy, runs = tmp_path / "bundle", tmp_path / "runs"
    shutil.copytree(out, copy)
    folder = copy / "models" / "x-y-s1" / "xquad-r"
    before = json.loads((folder / "metrics.json").read_text())
    legacy = {**before, "provenance": {k: v for k, v in before["provenance"].items() if k != "code"}}
    (folder / "metrics.json").write_text(json.dumps(legacy))
    logs = []
    run_grid(copy, spec, log=logs.append, runs_root=runs, only=["x-y-s1"], refresh=True)
    assert any("training" in m for m in logs) and any("re-evaluating xquad-r" in m for m in logs)
    after = json.loads((folder / "metrics.json").read_text())
    assert after["provenance"]["code"]["source_sha256"] and after["model"]["fingerprint"] == before["model"]["fingerprint"]
    assert after["settings"]["multi"]["macro"] == pytest.approx(before["settings"]["multi"]["macro"], abs=1e-9)
    assert not list(folder.parent.glob("*.refresh")) and not list(folder.parent.glob("*.old"))

    # an evaluation of another model is never replaced; one under the legacy fingerprint of the same weights is
    from hybridviz.encoders import load_encoder
    from hybridviz.errors import HybridvizError

    model = load_encoder(str(next(runs.glob("*/model"))))
    # a saved fine-tune's tokenizer carries the truncation its training set: the two definitions differ
    assert model.legacy_fingerprint() != model.fingerprint == after["model"]["fingerprint"]
    for fingerprint, ok in (("0" * 64, False), (model.legacy_fingerprint(), True)):
        stale = {**after, "provenance": legacy["provenance"], "model": {**after["model"], "fingerprint": fingerprint}}
        (folder / "metrics.json").write_text(json.dumps(stale))
        if ok:
            run_grid(copy, spec, log=lambda m: None, runs_root=runs, only=["x-y-s1"], refresh=True)
            assert json.loads((folder / "metrics.json").read_text())["provenance"]["code"]["source_sha256"]
        else:
            with pytest.raises(HybridvizError, match="not replacing"):
                run_grid(copy, spec, log=lambda m: None, runs_root=runs, only=["x-y-s1"], refresh=True)


@pytest.mark.slow
def test_grid_refuses_to_mix_settings_and_bundles_report_damage(tiny_grid, tmp_path):
    from hybridviz.errors import HybridvizError

    out, spec, manifest, root = tiny_grid
    with pytest.raises(HybridvizError, match="other settings"):
        run_grid(out, GridSpec(model="tiny", steps=4), log=lambda m: None, runs_root=root / "runs")
    with pytest.raises(BundleError, match="experiment --out"):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="damaged"):
        write_summary(tmp_path / "bad")


@pytest.mark.slow
def test_sweep_and_budget_check_choose_on_held_out_groups(tmp_path, monkeypatch, data_root):
    from hybridviz.experiments.sweep import run_budget_check, run_sweep
    from hybridviz.data import paths
    from hybridviz.training.trainer import TrainConfig, load_pairs, validation_pairs

    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path / "runs")
    base = TrainConfig(model="tiny", steps=3, batch_size=8, freeze_word_embeddings=False,
                       train_languages=["en", "de"], mixed_precision="fp32")
    state = run_sweep(tmp_path / "sweep", base, learning_rates=(1e-4, 1e-2), warmup_shares=(0.34, 0.0),
                      log=lambda m: None)
    trials = [t for k, t in state["trials"].items() if k != "base"]
    assert len(trials) == 3  # two learning rates, then the other warm-up at the better one
    best = max(trials, key=lambda t: t["multi_mAP"])
    assert state["chosen"]["learning_rate"] == best["learning_rate"]
    assert state["chosen"]["warmup_steps"] == best["warmup_steps"]
    # the held-out groups never reach training
    held = TrainConfig(**{**base.__dict__, "holdout": 0.2})
    assert not set(load_pairs(held).group) & set(validation_pairs(held).group)
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text())["chosen"] == state["chosen"]

    budget = run_budget_check(tmp_path / "step-budget", budgets=(2, 4), samplers=("x-y", "hybrid"), base=base,
                              log=lambda m: None)
    assert {(t["sampler"], t["steps"]) for t in budget["trials"].values()} == {
        (s, n) for s in ("x-y", "hybrid") for n in (2, 4)} | {("base", 0)}
    # step 0: the untrained model on the same held-out groups the sweep scored it on
    assert budget["trials"]["base"]["multi_mAP"] == state["trials"]["base"]["multi_mAP"]
    assert set(budget["rankings"]) == {"2", "4"} and set(budget["ranking_changes"]) == {"mono", "cross", "multi"}
    for steps, by in budget["rankings"].items():  # a ranking is the trials sorted by their held-out mAP
        scores = {t["sampler"]: t["multi_mAP"] for t in budget["trials"].values() if t["steps"] == int(steps)}
        assert "base" not in scores
        assert by["multi"] == sorted(scores, key=lambda s: -scores[s])

    from hybridviz.experiments.bundle import read_step_budget, step_budget_frame

    frame = step_budget_frame(read_step_budget(tmp_path))
    assert len(frame) == (2 * 2 + 1) * 3  # (samplers x budgets + base) x settings
    hybrid4 = next(t for t in budget["trials"].values() if (t["sampler"], t["steps"]) == ("hybrid", 4))
    row = frame[(frame.sampler == "hybrid") & (frame.steps == 4) & (frame.setting == "cross")]
    assert row["mAP"].item() == hybrid4["cross_mAP"]


def test_a_grid_continues_with_more_seeds_but_not_with_other_settings():
    from dataclasses import asdict

    from hybridviz.experiments.grid import spec_extends

    old = asdict(GridSpec(seeds=[0, 1, 2]))
    del old["encode_batch_size"]  # written before the field existed: it evaluated at 64
    assert spec_extends(old, asdict(GridSpec()))
    assert not spec_extends(old, asdict(GridSpec(encode_batch_size=16)))
    assert not spec_extends(asdict(GridSpec()), asdict(GridSpec(seeds=[0, 1])))  # seeds dropped
    assert not spec_extends(old, asdict(GridSpec(steps=300)))


def test_seed_deltas_match_seeds_and_compare_a_single_model_with_every_seed():
    from hybridviz.experiments.stats import seed_deltas

    assert seed_deltas({0: 0.5}, {0: 0.6, 1: 0.4}) == pytest.approx([0.1, -0.1])  # base vs each seed
    assert seed_deltas({0: 0.5, 1: 0.7, 2: None}, {1: 0.8, 0: 0.4, 2: 0.9}) == pytest.approx([-0.1, 0.1])
    assert seed_deltas({}, {0: 0.1}) == []


@pytest.mark.slow
def test_a_retrained_run_with_other_weights_adds_nothing_to_its_unit(tiny_grid, tmp_path):
    """Retraining on another machine gave other weights (seen on the bf16 grid: every retrained seed differed):
    the pending evaluation of such a unit, and its +method units, must not join the old checkpoint's figures."""
    import shutil

    from hybridviz.errors import HybridvizError

    out, spec, manifest, root = tiny_grid
    copy = tmp_path / "bundle"
    shutil.copytree(out, copy)
    unit = copy / "models" / "x-y-s1"
    shutil.rmtree(unit / "mkqa-answers")  # pending: would be evaluated on the retrained weights
    metrics = json.loads((unit / "xquad-r" / "metrics.json").read_text())
    metrics["model"]["fingerprint"] = "0" * 64  # the checkpoint the bundle evaluated is not the one retrained
    (unit / "xquad-r" / "metrics.json").write_text(json.dumps(metrics))
    record = (unit / "training" / "train_log.jsonl").read_bytes()
    with pytest.raises(HybridvizError, match="not replacing or adding"):
        run_grid(copy, spec, log=lambda m: None, runs_root=tmp_path / "runs", only=["x-y-s1"])
    assert not (unit / "mkqa-answers").exists()
    assert (unit / "training" / "train_log.jsonl").read_bytes() == record

    # --replace-retrained: the unit is evaluated anew on every task and swapped in whole, one checkpoint again
    logs = []
    run_grid(copy, spec, log=logs.append, runs_root=tmp_path / "runs", only=["x-y-s1"], replace_retrained=True)
    assert any("evaluating the retrained model anew" in m for m in logs)
    fingerprints = {json.loads(p.read_text())["model"]["fingerprint"] for p in unit.glob("*/metrics.json")}
    assert len(fingerprints) == 1 and "0" * 64 not in fingerprints
    assert sorted(p.parent.name for p in unit.glob("*/metrics.json")) == sorted(e["task"] for e in spec.evaluations)
    assert not (copy / "models" / "x-y-s1.retrained").exists() and not (copy / "models" / "x-y-s1.old").exists()
    state = json.loads((copy / "manifest.json").read_text())["units"]["x-y-s1"]
    assert state["state"] == "done" and "0" * 64 in state["replaced"]["old_fingerprints"]
    assert state["replaced"]["new_fingerprint"] in fingerprints and "cpu" in state["replaced"]["machine"]
    assert load_bundle(copy).get("x-y-s1", "mkqa-answers").metrics["model"]["fingerprint"] in fingerprints


def _split_into_unit_bundles(bundle: Path, root: Path) -> list[Path]:
    """One bundle folder per unit, as `experiment --only <unit> --no-summary` writes them (a lent GPU machine)."""
    import shutil

    manifest = json.loads((bundle / "manifest.json").read_text())
    folders = []
    for label, state in manifest["units"].items():
        folder = root / label
        shutil.copytree(bundle / "models" / label, folder / "models" / label)
        shutil.copytree(bundle / "layouts", folder / "layouts")
        (folder / "manifest.json").write_text(json.dumps({**manifest, "units": {label: state}}))
        folders.append(folder)
    return folders


@pytest.mark.slow
def test_units_run_in_folders_of_their_own_merge_into_the_same_bundle(tiny_grid, tmp_path):
    out, spec, manifest, root = tiny_grid
    folders = _split_into_unit_bundles(out, tmp_path / "units")
    unfinished = folders[-1]
    state = json.loads((unfinished / "manifest.json").read_text())
    label = next(iter(state["units"]))
    state["units"][label]["state"] = "training interrupted"
    (unfinished / "manifest.json").write_text(json.dumps(state))
    # what a lent GPU machine sends back: the unit folders packed into a few tar files (scripts/pack_bundles.py)
    import subprocess
    import sys
    import tarfile

    (tmp_path / "work" / "mix").mkdir(parents=True)
    for f in folders:
        f.rename(tmp_path / "work" / "mix" / f.name)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "pack_bundles.py"), str(tmp_path / "work"),
                           str(tmp_path / "out")], capture_output=True, text=True, check=True)
    assert "left behind: none" in done.stdout
    back = tmp_path / "back"
    for pack in sorted((tmp_path / "out").glob("units-*.tar")):
        assert pack.stat().st_size < 16 * 2 ** 20
        with tarfile.open(pack) as outer:
            for member in outer.getmembers():
                with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                    inner.extractall(back, filter="data")
    folders = [back / "mix" / f.name for f in folders]
    unfinished = folders[-1]
    assert all((f / "manifest.json").exists() for f in folders)
    merged = tmp_path / "merged"
    got = [merge_bundle(f, merged) for f in folders]
    assert got[-1] == [] and sorted(x for g in got for x in g) == sorted(set(manifest["units"]) - {label})
    # the finished unit is merged once; a second merge of it is refused and changes nothing
    with pytest.raises(HybridvizError, match="already holds"):
        merge_bundle(folders[0], merged)
    # the unfinished one joins once it is done; then the merged bundle summarises as the original did
    state["units"][label]["state"] = "done"
    (unfinished / "manifest.json").write_text(json.dumps(state))
    assert merge_bundle(unfinished, merged) == [label]
    ours, theirs = write_summary(merged), json.loads((out / "summary.json").read_text())
    assert ours["cells"] == theirs["cells"] and ours["tests"] == theirs["tests"]
    # another grid (another batch size) is refused
    other = json.loads((folders[0] / "manifest.json").read_text())
    other["spec"]["batch_size"] += 1
    (folders[0] / "manifest.json").write_text(json.dumps(other))
    with pytest.raises(HybridvizError, match="batch_size"):
        merge_bundle(folders[0], tmp_path / "merged")


@pytest.mark.slow
def test_one_trained_run_per_side_gets_no_run_level_comparison(tiny_grid, tmp_path, capsys):
    """A bundle's first seed alone (each sampler one checkpoint): the seed's effect cannot be told from the
    checkpoint's, so no sampler pair and no sampler-against-base pair gets a run-level test or mark; the base
    against a training-free method on it (both deterministic) still does."""
    from hybridviz.experiments.stats import run_level_possible

    assert run_level_possible([None], [None]) and run_level_possible([None], [0, 1])
    assert not run_level_possible([None], [0]) and not run_level_possible([0], [1])
    out, spec, manifest, root = tiny_grid
    first_seed = tmp_path / "first-seed"
    for folder in _split_into_unit_bundles(out, tmp_path / "units"):
        if not folder.name.endswith("-s1"):
            merge_bundle(folder, first_seed)
    pairs = {(t["a"], t["b"]) for t in write_summary(first_seed, n_resamples=200)["tests"]}
    assert pairs == {("base", "base+center@index")}
    from hybridviz.cli import main

    main(["summarise", str(first_seed), "--read", "--markdown"])
    printed = capsys.readouterr().out
    assert printed.count("- none yet: no two samplers have a run-level comparison") == len(spec.evaluations)
    everything = {(t["a"], t["b"]) for t in json.loads((out / "summary.json").read_text())["tests"]}
    assert ("x-y", "hybrid") in everything or ("hybrid", "x-y") in everything  # two seeds each: compared
