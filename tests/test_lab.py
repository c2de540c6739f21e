"""The fine-tune lab's queue: a flood of requests is bounded and reported; cancel stops a queued run; a real
tiny run goes from queued to evaluated through the background worker."""

from __future__ import annotations

import os
import time

import pytest

from hybridviz.data import paths
from hybridviz.experiments import lab
from hybridviz.training import runs
from hybridviz.training.trainer import TrainConfig

TINY = dict(model="tiny", steps=3, batch_size=8, warmup_steps=0, freeze_word_embeddings=False,
            learning_rate=1e-3, train_languages=["en", "de"], mixed_precision="fp32")


def test_request_flood_is_bounded_and_reported(tmp_path, monkeypatch, data_root):
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path)
    monkeypatch.setattr(lab, "start_worker", lambda run, root: os.getpid())  # alive, never trains
    accepted, refused = [], []
    for seed in range(20):
        try:
            accepted.append(lab.submit(TrainConfig(**TINY, seed=seed), tasks=["mkqa-answers"]))
        except lab.QueueFull as exc:
            refused.append(str(exc))
    assert len(accepted) == lab.MAX_WAITING + 1 and len(refused) == 20 - len(accepted)
    assert all("queue is full" in msg for msg in refused)
    assert [r.id for r in lab.queue()] == [r.id for r in accepted]  # first come, first served
    with pytest.raises(lab.QueueFull, match="already queued"):
        lab.submit(TrainConfig(**TINY, seed=0))
    # cancelling a queued run frees a place
    monkeypatch.setattr(lab.os, "killpg", lambda pid, sig: None)  # the fake worker is this test process
    assert lab.cancel(accepted[0]) == "cancelled before it started"
    assert accepted[0].status()["state"] == "cancelled"
    assert lab.submit(TrainConfig(**TINY, seed=99)).status()["state"] == "queued"


@pytest.mark.slow
def test_two_submits_of_the_same_form_at_once_start_one_worker(tmp_path, monkeypatch, data_root):
    """Enter in a form field submits, and so does the button a second later: one worker, one 'already queued'."""
    import subprocess
    import sys
    import threading

    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path)
    started = []

    def slow_worker(run, root):  # widen the window between the check and the start, as a real spawn does
        time.sleep(0.5)
        started.append(run.id)
        return os.getpid()

    monkeypatch.setattr(lab, "start_worker", slow_worker)
    results, barrier = [], threading.Barrier(2)

    def submit():
        barrier.wait()
        try:
            results.append(lab.submit(TrainConfig(**TINY, seed=7), tasks=["mkqa-answers"]).id)
        except lab.AlreadyQueued as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 1 and sum("already queued" in r for r in results) == 1
    # a second worker process for the same run stops at once instead of training or evaluating it again
    run = lab.queue()[0]
    with runs.file_lock(run.dir / ".worker.lock"):
        done = subprocess.run([sys.executable, "-m", "hybridviz", "lab-run", run.id, "--root", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "another worker already has run" in done.stderr


@pytest.mark.slow
def test_lab_run_trains_then_evaluates_in_the_background(tmp_path, monkeypatch, data_root):
    monkeypatch.setattr(paths, "RUNS_DIR", tmp_path)
    monkeypatch.setenv("HYBRIDVIZ_RUNS", str(tmp_path))
    run = lab.submit(TrainConfig(**TINY), evaluations=[{"task": "mkqa-answers", "languages": ["en", "es"],
                                                         "limit": 40},
                                                        {"task": "xquad-r", "languages": ["en", "de"], "limit": 150}])
    deadline = time.time() + 300
    while time.time() < deadline and lab.evaluation_state(run).get("state") not in ("done", "failed"):
        time.sleep(1)
    assert run.status()["state"] == "done", (run.dir / "lab.log").read_text()[-2000:]
    assert lab.evaluation_state(run)["state"] == "done"
    from hybridviz.experiments.bundle import lab_results

    results = lab_results(tmp_path)
    assert sorted((r.group, r.task) for r in results) == [(f"lab:{run.id}", "mkqa-answers"),
                                                          (f"lab:{run.id}", "xquad-r")]
    assert all(0 <= r.macro("multi", "mAP") <= 1 for r in results)
    # first figures: a sample where the benchmark is larger than one (mkqa-answers' 40 examples are not)
    samples = lab.evaluation_state(run)["samples"]
    assert list(samples) == ["xquad-r"] and samples["xquad-r"]["questions"] == lab.SAMPLE_QUESTIONS
    from hybridviz.results.store import read_metrics

    sample = read_metrics(run.dir / "samples" / "xquad-r")
    full = next(r for r in results if r.task == "xquad-r").metrics
    assert sample["notes"]["pool"] == "sampled paragraphs"
    assert sample["counts"]["candidates"] < full["counts"]["candidates"] / 2
    assert samples["xquad-r"]["multi mAP"] == sample["settings"]["multi"]["macro"]["mAP"]
