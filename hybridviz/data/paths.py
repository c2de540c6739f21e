"""Where benchmark files live: $HYBRIDVIZ_DATA, else ../shared/data beside the checkout, else cache/data."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hybridviz.errors import DataFileMissing

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("HYBRIDVIZ_CACHE", REPO_ROOT / "cache"))
DOWNLOAD_DIR = CACHE_DIR / "data"
MODELS_DIR = CACHE_DIR / "models"  # imported encoders, int8 exports
# embedding cache (fingerprint + prefix + text); HYBRIDVIZ_EMBEDDINGS moves only it (a test that compares two
# computations of the same embeddings gives each its own)
EMBEDDINGS_DIR = Path(os.environ.get("HYBRIDVIZ_EMBEDDINGS", CACHE_DIR / "embeddings"))
MODEL_CARDS_DIR = CACHE_DIR / "model-cards"  # a model's fingerprint, prefixes and lengths, keyed by its files
EVALUATIONS_DIR = CACHE_DIR / "evaluations"  # `python -m hybridviz evaluate` outputs the app lists
UMAP_DIR = CACHE_DIR / "umap"  # embedding-map coordinates
UPLOADS_DIR = CACHE_DIR / "uploads"  # the lab's validated training files
DEBIAS_DIR = CACHE_DIR / "debias"  # fitted debiasing methods
# committed result bundles and the compact models shipped with them (git holds these, not the rest of cache/)
REFERENCE_DIR = CACHE_DIR / "reference"
MAIN_BUNDLE = "sampler-grid"  # the 100-step grid; its shipped models keep short specs, ref:<unit>
# the bundle the dashboard opens on: the first of these present (a converged verdict once one is complete)
OPENING_BUNDLES = ("converged-me5-mlqa-r", "converged-muse-mlqa-r", MAIN_BUNDLE)
# fine-tuned runs; HYBRIDVIZ_RUNS moves only them (a test server gets its own registry, shares the model cache)
RUNS_DIR = Path(os.environ.get("HYBRIDVIZ_RUNS", CACHE_DIR / "runs"))
# studies run from the dashboard's Study page: each a result bundle (cache/studies/<name>/) with its request and
# worker state beside the bundle files; HYBRIDVIZ_STUDIES moves them (a test server gets its own)
STUDIES_DIR = Path(os.environ.get("HYBRIDVIZ_STUDIES", CACHE_DIR / "studies"))


def data_dirs() -> list[Path]:
    """Candidate data directories in priority order (only the first existing one is used per file)."""
    env = os.environ.get("HYBRIDVIZ_DATA")
    if env:
        return [Path(env)]
    return [REPO_ROOT.parent / "shared" / "data", DOWNLOAD_DIR]


def data_dir() -> Path:
    """The data directory in use: the first candidate that exists (cache/data when none does)."""
    for d in data_dirs():
        if d.is_dir():
            return d
    return data_dirs()[-1]


def find_file(relative: str, source: str) -> Path:
    """Resolve `relative` (e.g. 'xquad-r/en.json') in the data directories or raise a precise error."""
    for d in data_dirs():
        path = d / relative
        if path.is_file():
            return path
    raise DataFileMissing(relative, [str(d) for d in data_dirs()], source)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
