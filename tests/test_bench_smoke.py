"""The benchmark suite runs end to end (smoke mode: tiny model, tiny inputs; no figure is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_suite_smoke(tmp_path, data_root):
    # two scripts at a time: smoke mode asserts no figure, and most of each script is importing torch
    proc = subprocess.run([sys.executable, "bench/run_all.py", "--smoke", "--jobs", "2", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(results) == {"encode", "evaluate", "train_step", "search", "speed_goals", "debias", "mkqa_nq"}
    for name, result in results.items():
        assert result["baseline"] and result["machine"]["cores"] and result["command"], name
    encode = results["encode"]["rows"]
    assert {r["method"] for r in encode} >= {"hybridviz fp32", "hybridviz int8"}
    assert all(r["ratio"] > 0 for r in encode)
    baselines = [r for r in encode if r["method"].startswith("plain")]
    assert [r["ratio"] for r in baselines] == [1.0, 1.0], "each kind's ratios are against its own baseline median"
    assert results["encode"]["repeats"] == 2
    assert all(r["min_texts_per_s"] <= r["texts_per_s"] <= r["max_texts_per_s"] for r in encode)
    assert min(r["cos_min"] for r in encode if r["method"] == "hybridviz fp32") > 0.999  # same model, same maths
    naive, *ours = results["evaluate"]["rows"]
    assert all(abs(r["multi_mAP"] - naive["multi_mAP"]) < 1e-4 for r in ours), "ours and naive agree on mAP"
    assert results["train_step"]["rows"][1]["speed-up"] > 0 and results["train_step"]["rows"][1]["max_loss_diff"] < 0.5
    naive, *ours = results["speed_goals"]["evaluation"]
    assert naive["path"].startswith("baseline") and len(ours) == 3
    assert all(abs(r["multi_mAP"] - naive["multi_mAP"]) < 1e-6 for r in ours), "warm paths agree with the naive AP"
    debias = results["debias"]["rows"]
    assert [r["method"].split(":")[0] for r in debias] == ["center", "lir", "lsar", "leace"]
    assert all(r["fit_ratio"] > 0 and r["apply_ratio"] > 0 for r in debias)
    assert [r["ratio"] for r in results["mkqa_nq"]["rows"]][0] == 1.0
    scaling = results["search"]["scaling"]
    assert [r["index"].split()[0] for r in scaling] == ["exact", "HNSW", "IVF-Flat"]  # one size in smoke mode
    assert all(0.0 <= r["recall@10"] <= 1.0 and r["ms_per_query"] > 0 for r in scaling)
