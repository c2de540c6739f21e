"""The prompts a saved sentence-transformers folder lists, so plain sentence-transformers encodes as hybridviz does.

hybridviz passes its prefixes explicitly ("query: " / "passage: " for the E5 family). A user who loads a folder in
sentence-transformers, or runs MTEB on it, gets the folder's prompts instead: ``encode_query`` takes ``"query"``,
``encode_document`` the first of ``"document"``, ``"passage"``, ``"corpus"`` it finds. sentence-transformers (5 and
later) fills ``"query"`` and ``"document"`` into every model's prompts, as ``""`` when the folder names none, so a
folder that lists only ``"passage": "passage: "`` encodes documents without their prefix. hybridviz therefore saves
the passage prefix under both ``"document"`` and ``"passage"``.

Folders written before this fix: ``python -m hybridviz.encoders.prompts`` repairs every folder hybridviz wrote in
its cache (the imported base models and the fine-tuned runs; ``--check`` only lists them), or name folders (with
``--query-prefix`` / ``--passage-prefix`` where the folder does not record its prefixes). Only
``config_sentence_transformers.json`` changes; the weights, and so every fingerprint and cached embedding, stay.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

CONFIG = "config_sentence_transformers.json"
E5_PREFIXES = ("query: ", "passage: ")  # as encoders/registry.py (a test checks they agree)
# base folders hybridviz imports into cache/models, and the prefixes its encoders use with them
BASE_FOLDERS = {"me5-small-q4-": E5_PREFIXES, "tiny-seed": E5_PREFIXES, "muse-v3-": ("", "")}


def saved_prompts(query_prefix: str, passage_prefix: str) -> dict[str, str]:
    """The prompts to save with a model whose encoder uses these prefixes."""
    return {"query": query_prefix, "document": passage_prefix, "passage": passage_prefix}


def repair_folder(path: str | Path, query_prefix: str | None = None, passage_prefix: str | None = None,
                  write: bool = True) -> dict[str, str] | None:
    """Make the folder's saved prompts `saved_prompts(...)`; the prefixes default to what the folder records
    (its "query" prompt, its "passage" prompt, else its "document" one). Returns the new prompts when they
    differ from the saved ones (written unless `write` is False), else None."""
    config_path = Path(path) / CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"{path} is not a sentence-transformers folder (no {CONFIG}).")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    prompts = dict(config.get("prompts") or {})
    query = query_prefix if query_prefix is not None else prompts.get("query") or ""
    passage = passage_prefix if passage_prefix is not None else prompts.get("passage") or prompts.get("document") or ""
    # what plain sentence-transformers reads: "query", and "document" (filled in as "" when absent) before "passage"
    if (prompts.get("query", ""), prompts.get("document", ""), prompts.get("passage", passage)) == (query, passage,
                                                                                                   passage):
        return None
    wanted = {**prompts, **saved_prompts(query, passage)}
    if write:
        config["prompts"] = wanted
        fd, tmp = tempfile.mkstemp(dir=config_path.parent, prefix=".config-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=4)
        os.replace(tmp, config_path)
    return wanted


def hybridviz_folders(models_dir: Path | None = None, runs_dir: Path | None = None):
    """(folder, query prefix, passage prefix) of every model folder hybridviz wrote: the base imports (the prefixes
    its encoders use with them) and each run's model and checkpoints (None: the prefixes the run saved)."""
    from hybridviz.data import paths

    models_dir = Path(models_dir or paths.MODELS_DIR)
    runs_dir = Path(runs_dir or paths.RUNS_DIR)
    for folder in sorted(models_dir.glob("*")):
        prefixes = next((v for k, v in BASE_FOLDERS.items() if folder.name.startswith(k)), None)
        if prefixes is not None and (folder / CONFIG).is_file():
            yield folder, *prefixes
    for config in sorted(runs_dir.glob(f"*/model/{CONFIG}")) + sorted(runs_dir.glob(f"*/checkpoints/*/{CONFIG}")):
        yield config.parent, *_run_prefixes(config.parent)


def _run_prefixes(folder: Path) -> tuple[str | None, str | None]:
    """The prefixes hybridviz trains a run's base with (None, None: unknown, keep what the folder records)."""
    run_dir = folder.parent if folder.name == "model" else folder.parent.parent
    try:
        model = str(json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("model", ""))
    except (OSError, ValueError):
        return None, None
    if model == "me5-small" or model == "tiny" or model.startswith("tiny:"):
        return E5_PREFIXES
    return ("", "") if model == "muse" else (None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridviz.encoders.prompts",
                                     description="Save the query and passage prefixes under the prompt names "
                                                 "plain sentence-transformers reads (query, document, passage).")
    parser.add_argument("folders", nargs="*", help="model folders (default: every folder hybridviz wrote)")
    parser.add_argument("--query-prefix")
    parser.add_argument("--passage-prefix")
    parser.add_argument("--check", action="store_true", help="list the folders to repair; change nothing")
    args = parser.parse_args(argv)
    if args.folders:
        targets = [(Path(f), args.query_prefix, args.passage_prefix) for f in args.folders]
    else:
        targets = list(hybridviz_folders())
    changed = 0
    for folder, query, passage in targets:
        try:
            new = repair_folder(folder, query, passage, write=not args.check)
        except (OSError, ValueError) as exc:
            print(f"{folder}: {exc}", file=sys.stderr)
            return 2
        if new is not None:
            changed += 1
            print(f"{folder}: {'would set' if args.check else 'set'} prompts {json.dumps(new, ensure_ascii=False)}")
    print(f"{changed} of {len(targets)} folder(s) {'need' if args.check else 'needed'} new prompts.")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
