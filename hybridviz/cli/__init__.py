"""Command line: `python -m hybridviz <command> ...` (`--help` lists them: evaluate, fetch, data, train, sweep,
budget, curves, experiment, merge-bundles, compact-results, summarise, robustness, debias-sweep,
transductive-spread, ship, export-mteb, mkqa-nq, lab-run, study-run).

- cli/parser.py: one `add_<command>_parser` per command and the argument groups they share;
- cli/commands.py: one `cmd_<command>(args)` per command, each importing what it needs when it runs;
- the renderers they print live below: results/report.py (summary and plain tables) and experiments/reports.py
  (headline, verdict and robustness tables, which need the statistics).

Errors a user can fix (unknown task or language, missing or malformed data, unavailable model, corrupt files)
are printed as one sentence on stderr with exit status 2 — no traceback.
"""

from __future__ import annotations

import sys

from hybridviz.errors import HybridvizError

RENDERERS = {"summary_table": ("hybridviz.results.report", "summary_table"),
             "_markdown_table": ("hybridviz.results.report", "markdown_table"),
             **{name: ("hybridviz.experiments.reports", name)
                for name in ("pair_markdown", "robustness_markdown", "training_free_markdown", "headline_markdown")}}


def build_parser():
    from hybridviz.cli.parser import build_parser

    return build_parser()


def main(argv: list[str] | None = None) -> int:
    import logging

    args = build_parser().parse_args(argv)
    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING, stream=sys.stderr)
    try:
        return args.func(args)
    except HybridvizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def __getattr__(name: str):
    """`from hybridviz.cli import headline_markdown` (and the other renderers) as before, loaded on first use."""
    if name in RENDERERS:
        import importlib

        module, attr = RENDERERS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'hybridviz.cli' has no attribute {name!r}")
