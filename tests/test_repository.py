"""What git holds under cache/: result bundles (finished in cache/reference/, in progress in cache/partial/) and
compact shipped models of at most 10 MB each; never data copies, full model weights or embedding caches."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_BYTES = 10 * 1024 * 1024
WEIGHTS = (".safetensors", ".bin", ".pt", ".onnx", ".npy")


def tracked(prefix: str) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", prefix], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.decode().split("\0") if p]


def test_git_holds_only_bundles_and_compact_models_under_cache():
    files = tracked("cache")
    assert files, "cache/reference/ is committed"
    outside = [p for p in files if p != "cache/.gitkeep" and not p.startswith(("cache/reference/", "cache/partial/"))]
    assert outside == []
    too_big = [p for p in files if (ROOT / p).stat().st_size > MAX_FILE_BYTES]
    assert too_big == []
    # weights only as compact deltas of a bundle's shipped units; embeddings (.npz of vectors) never
    weights = [p for p in files if p.endswith(WEIGHTS) and "/compact/" not in p]
    assert weights == []
    results = ("/per_query_pairs.npz", "/per_query.npz")  # an evaluation's per-query figures (results/)
    caches = [p for p in files if "/embeddings/" in p or "/models/" in p and p.endswith(".npz")
              and not p.endswith(results)]
    assert caches == []
