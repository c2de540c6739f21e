"""Faults a long-running CPU tool meets: processes killed mid-write, two fine-tunes at once, malformed input files,
untrusted pickles. Each test provokes the fault for real (SIGKILL, two processes, fuzzed bytes)."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridviz.data.lareqa import load_lareqa
from hybridviz.data.mkqa import read_mkqa_file
from hybridviz.encoders.cache import EmbeddingCache
from hybridviz.errors import HybridvizError
from hybridviz.training.data import jsonl_pairs
from hybridviz.training.runs import Run

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ killed cache write

CACHE_WRITER = """
import os, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from hybridviz.encoders.cache import EmbeddingCache
cache = EmbeddingCache({dir!r}, "model", "query: ")
cache.add(["a", "b"], np.ones((2, 4), dtype=np.float32))
def stalled_fsync(fd):  # the shard's bytes are written but not yet renamed into place: kill here
    open({flag!r}, "w").close()
    time.sleep(120)
os.fsync = stalled_fsync
cache.add(["c", "d"], np.full((2, 4), 2, dtype=np.float32))
"""


def test_sigkill_during_cache_write_leaves_the_cache_readable(tmp_path):
    flag = tmp_path / "writing"
    proc = subprocess.Popen([sys.executable, "-c", CACHE_WRITER.format(root=str(ROOT), dir=str(tmp_path / "c"),
                                                                       flag=str(flag))])
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert flag.exists(), "the writer never reached the second shard"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shard_dir = next((tmp_path / "c" / "model").iterdir())
    assert len(list(shard_dir.glob("*.tmp"))) == 1, "the kill left a half-written shard behind"

    cache = EmbeddingCache(tmp_path / "c", "model", "query: ")
    vectors, missing = cache.lookup(["a", "b", "c", "d"])
    assert missing == [2, 3] and cache.corrupt_shards == []  # the finished shard intact, the killed one absent
    np.testing.assert_array_equal(vectors[:2], np.ones((2, 4)))
    cache.add(["c", "d"], np.full((2, 4), 2, dtype=np.float32))
    assert list(shard_dir.glob("*.tmp")) == [], "the dead writer's temporary file is swept"
    vectors, missing = EmbeddingCache(tmp_path / "c", "model", "query: ").lookup(["a", "b", "c", "d"])
    assert missing == [] and vectors[3, 0] == 2


# ------------------------------------------------------------------------------------ two fine-tunes at once


@pytest.mark.slow
def test_two_fine_tunes_started_at_once_both_finish_one_after_the_other(tmp_path, data_root, tiny):
    models = tmp_path / "models"  # tiny's model folder lives in the default cache; runs go to tmp_path
    models.symlink_to(Path(tiny.model[0].auto_model.name_or_path).parents[1])
    env = {**os.environ, "HYBRIDVIZ_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-m", "hybridviz", "train", "--model", "tiny", "--batch-size", "8",
                               "--steps", "4", "--lr", "1e-3", "--warmup", "0", "--languages", "en,de",
                               "--seed", str(seed), "--mixed-precision", "fp32"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (0, 1)]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    runs = [Run(p.parent.name, tmp_path / "runs") for p in (tmp_path / "runs").glob("*/status.json")]
    assert len(runs) == 2
    statuses = sorted((r.status() for r in runs), key=lambda s: s["started"])
    assert all(s["state"] == "done" for s in statuses)
    assert statuses[0]["finished"] <= statuses[1]["started"], "the second waited for the first"
    for run in runs:  # each run's files are its own
        assert json.loads((run.dir / "config.json").read_text())["seed"] == int(run.id.split("-s")[1][0])
        assert [r["step"] for r in run.train_log()] == [1, 2, 3, 4]
        assert (run.model_dir / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------------ malformed inputs

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=4),
                           max_leaves=12)


def _fuzzed(valid: bytes):
    """Bytes a broken file might hold: a truncated valid file, random bytes, or well-formed JSON of wrong shape."""
    return st.one_of(
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
        st.binary(max_size=300),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.lists(JSON_VALUES, max_size=4).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
    )


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


def _loads_or_fails_clearly(load, folder: Path) -> None:
    before = _tree(folder)
    try:
        load()
    except HybridvizError as exc:
        assert str(exc).strip(), "an error must say what went wrong"
    assert _tree(folder) == before, "a failed load must write nothing"


MKQA_VALID = (b'{"example_id": "1", "queries": {"en": "who?", "de": "wer?"}, '
              b'"answers": {"en": [{"type": "entity", "text": "Ada"}], "de": [{"type": "entity", "text": "Ada"}]}}\n')
LAREQA_VALID = json.dumps({"data": [{"paragraphs": [{"context": "Ada wrote. It ran.", "sentences": ["Ada wrote.", "It ran."],
                                                      "sentence_breaks": [[0, 10], [11, 18]],
                                                      "qas": [{"id": "q1", "question": "Who wrote?",
                                                               "answers": [{"text": "Ada", "answer_start": 0}]}]}]}]}
                          ).encode()
JSONL_VALID = (b'{"id": "1", "lang": "en", "query": "who?", "positive": "Ada."}\n'
               b'{"id": "1", "lang": "de", "query": "wer?", "positive": "Ada."}\n')
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(blob=_fuzzed(MKQA_VALID), gz=st.booleans())
def test_mkqa_loader_survives_malformed_files(tmp_path, blob, gz):
    path = tmp_path / ("m.jsonl.gz" if gz else "m.jsonl")
    path.write_bytes(gzip.compress(blob) if gz and blob[:1] != b"\x1f" else blob)
    _loads_or_fails_clearly(lambda: read_mkqa_file(path), tmp_path)


@FUZZ
@given(blob=_fuzzed(LAREQA_VALID))
def test_lareqa_loader_survives_malformed_files(tmp_path, monkeypatch, blob):
    (tmp_path / "xquad-r").mkdir(exist_ok=True)
    (tmp_path / "xquad-r" / "en.json").write_bytes(blob)
    monkeypatch.setenv("HYBRIDVIZ_DATA", str(tmp_path))
    _loads_or_fails_clearly(lambda: load_lareqa("xquad-r", ["en"]), tmp_path)


@FUZZ
@given(blob=_fuzzed(JSONL_VALID))
def test_training_jsonl_import_survives_malformed_files(tmp_path, blob):
    path = tmp_path / "train.jsonl"
    path.write_bytes(blob)
    _loads_or_fails_clearly(lambda: jsonl_pairs(path), tmp_path)


def test_unknown_languages_fail_clearly():
    with pytest.raises(HybridvizError, match="xx"):
        load_lareqa("xquad-r", ["en", "xx"])


# ------------------------------------------------------------------------------------------ no untrusted pickles

PICKLE_LOADS = re.compile(r"pickle\.loads?\(|allow_pickle\s*=\s*True|torch\.load\((?![^)]*weights_only\s*=\s*True)")


def test_no_code_path_unpickles_untrusted_files():
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in [*ROOT.glob("hybridviz/**/*.py"), *ROOT.glob("app.py"),
                                                                *ROOT.glob("pages/*.py"), *ROOT.glob("bench/*.py")]
                 for n, line in enumerate(path.read_text().splitlines(), 1) if PICKLE_LOADS.search(line)]
    assert offenders == [], f"pickle-capable loads: {offenders}"


def test_fine_tuned_weights_are_safetensors_and_pickles_are_refused(tmp_path, tiny):
    import torch

    from hybridviz.encoders import load_encoder
    from hybridviz.errors import EncoderUnavailable

    folder = tmp_path / "model"
    tiny.model.save(str(folder))
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    from hybridviz.encoders.registry import Encoder

    saved = Encoder("saved", "saved", tiny.model).fingerprint  # of the weights as they are now
    assert load_encoder(str(folder), use_cache=False).fingerprint == saved
    # a folder that only offers a pickled checkpoint is not silently executed
    (folder / "model.safetensors").unlink()

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"x": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(EncoderUnavailable):
        load_encoder(str(folder), use_cache=False)
    assert not (tmp_path / "pwned").exists()


def test_atomic_writes_get_the_mode_a_plain_write_gets(tmp_path):
    """Results written atomically are readable by others as any file is (mkstemp alone makes them 0600)."""
    from hybridviz.fileio import atomic_write_text

    atomic_write_text(tmp_path / "atomic.json", "{}")
    (tmp_path / "plain.json").write_text("{}")
    assert (tmp_path / "atomic.json").stat().st_mode == (tmp_path / "plain.json").stat().st_mode
