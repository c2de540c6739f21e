"""The command line answers at once where it has nothing to compute: `--help`, an argument error, `data` and
`summarise --read` import neither torch nor sentence-transformers (bench/cli_start.py times them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sentence_transformers", "transformers", "pandas", "sklearn")
PROBE = """
import json, sys
from hybridviz.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code, "heavy": [m for m in {heavy!r} if m in sys.modules]}}), file=sys.stderr)
"""


def _probe(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=list(argv), heavy=HEAVY)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    return json.loads(done.stderr.strip().splitlines()[-1]) | {"stderr": done.stderr, "stdout": done.stdout}


@pytest.mark.parametrize("argv", [["--help"], ["evaluate", "--help"], ["evaluate", "--no-such-flag"],
                                  ["evaluate"], ["merge-bundles", "x"], ["no-such-command"],
                                  ["train", "--steps", "many"]])
def test_help_and_argument_errors_import_nothing_heavy(argv):
    out = _probe(*argv)
    assert out["code"] == (0 if "--help" in argv else 2), out["stderr"]
    assert out["heavy"] == [], out["heavy"]


def test_reading_a_summary_imports_nothing_heavy():
    bundle = ROOT / "cache" / "reference" / "sampler-grid"
    if not (bundle / "summary.json").is_file():
        pytest.skip("no committed bundle")
    out = _probe("summarise", str(bundle), "--read")
    assert out["code"] == 0 and "cells" in out["stdout"], out["stderr"]
    assert out["heavy"] == [], out["heavy"]


def test_every_command_has_its_own_parser_function_and_keeps_its_name():
    from hybridviz.cli import parser

    names = {"evaluate", "fetch", "data", "train", "sweep", "budget", "curves", "experiment", "merge-bundles",
             "compact-results", "summarise", "robustness", "answers", "debias-sweep", "transductive-spread", "ship",
             "export-mteb", "mkqa-nq", "lab-run", "study-run"}
    built = parser.build_parser()
    sub = next(a for a in built._actions if isinstance(a, type(built._subparsers._group_actions[0])))
    assert set(sub.choices) == names
    assert {f.__name__ for f in parser.COMMANDS} == {f"add_{n.replace('-', '_')}_parser" for n in names}
    assert "ref:<unit>" in sub.choices["evaluate"].format_help()  # --model's kinds come from the locators


def test_renderers_are_importable_from_the_cli_as_before():
    import importlib

    import hybridviz.cli as cli
    from hybridviz.cli import RENDERERS

    for name, (module, attr) in RENDERERS.items():
        assert getattr(cli, name) is getattr(importlib.import_module(module), attr)
    assert cli.summary_table.__module__ == "hybridviz.results.report"
    assert cli.headline_markdown.__module__ == "hybridviz.experiments.reports"
