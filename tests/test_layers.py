"""The house stays layered: a module imports only from its own floor's package or from lower floors, whether
the import sits at the top of the file or inside a function (where it would be hiding a cycle).

Floors, lowest first (README "Shape of the code"); units on one floor never import each other:
  0 errors, fileio, provenance
  1 data/* (loaders, paths, splits, text), metrics, paper, the package's __init__
  2 tasks (queries, pools, relevance), index (search structures)
  3 encoders/* (policy: the device and the one default precision; encoder: the wrapper; locators: the kinds of
    model name; cards; registry: loading; the embedding cache, debiasing), results/* (the evaluation results:
    format = the schema, codec = the per-query encodings, store = the only code that reads and writes evaluation
    folders and bundle files, report = renderers to markdown, LaTeX and CSV)
  4 search, projection, evaluate (use an encoder on a task: evaluate orchestrates one evaluation); viz/*
    (figure builders: they draw the frames and statistics they are given, read through results, and never
    compute or import experiments)
  5 training/* (samplers, trainer, runs; the held-out validation scores through evaluate), mteb_export, mkqa_nq
  6 experiments/* (grid, sweeps, statistics, bundles, the lab's queue: they train *and* evaluate), status,
    samplers (the public re-export of training/samplers for sentence-transformers scripts)
  8 dashboard, cli/* (parser: one add_<command>_parser each; commands: their imports inside)
    (they call experiments, then viz)
  9 __main__
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hybridviz"
FLOORS = {
    "errors": 0, "fileio": 0, "provenance": 0,
    "data": 1, "metrics": 1, "paper": 1, "__init__": 1,
    "tasks": 2, "index": 2,
    "encoders": 3, "results": 3,
    "search": 4, "projection": 4, "evaluate": 4,
    "training": 5, "mteb_export": 5, "mkqa_nq": 5,
    "experiments": 6, "status": 6, "samplers": 6,
    "viz": 4,
    "dashboard": 8, "cli": 8,
    "__main__": 9,
}


def unit_of(module: str) -> str:
    """'hybridviz.training.runs' -> 'training' (a subpackage or a top-level module is one unit)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hybridviz"):
            if node.module == "hybridviz":  # `from hybridviz import x`: x is the unit
                out += [(node.lineno, f"hybridviz.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("hybridviz.")]
    return out


def back_arrows() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "hybridviz." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        source = unit_of(module) if not module.endswith("__init__") or module.count(".") > 1 else "__init__"
        for line, target in imports_of(path):
            dest = unit_of(target)
            if dest == source:
                continue
            if FLOORS[dest] >= FLOORS[source]:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} {source} (floor {FLOORS[source]}) -> "
                             f"{dest} (floor {FLOORS[dest]})")
    return found


def test_every_unit_has_a_floor():
    units = {unit_of("hybridviz." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts))
             for p in PACKAGE.rglob("*.py")}
    assert units <= set(FLOORS), units - set(FLOORS)


def test_no_import_runs_up_or_across_a_floor():
    assert back_arrows() == []


def test_the_checker_sees_the_old_back_arrows(tmp_path, monkeypatch):
    """The four arrows this test was written against, planted in a copy: each is reported."""
    import shutil

    copy = tmp_path / "hybridviz"
    shutil.copytree(PACKAGE, copy)
    planted = {
        "training/runs.py": "from hybridviz.experiments.grid import GridSpec\n",
        "encoders/registry.py": "def _runs():\n    from hybridviz.training import runs\n",
        "training/trainer.py": "from hybridviz.experiments.sweep import run_sweep\n",
        "search.py": "from hybridviz.experiments.grid import MKQA_ALL\nfrom hybridviz.training.data import normalise\n",
        "viz/tables.py": "from hybridviz.experiments.bundle import load_bundle\n",
        "projection.py": "from hybridviz.evaluate import evaluate\n",  # across floor 4
    }
    for rel, code in planted.items():
        with open(copy / rel, "a", encoding="utf-8") as f:
            f.write("\n" + code)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", copy)
    (copy / "cli" / "parser.py").open("a", encoding="utf-8").write("\nfrom hybridviz import __main__\n")  # up
    (copy / "encoders" / "policy.py").open("a", encoding="utf-8").write(
        "\ndef _grid():\n    from hybridviz.experiments import grid\n")
    found = back_arrows()
    for needle in ("runs.py", "registry.py", "trainer.py", "search.py", "tables.py", "projection.py"):
        assert any(needle in f for f in found), needle
    assert sum("search.py" in f for f in found) == 2
    assert any("cli/parser.py" in f and "__main__" in f for f in found)
    assert any("encoders/policy.py" in f and "experiments" in f for f in found)


def test_the_command_line_and_the_encoders_are_packages_of_their_floors():
    for module in ("cli/__init__.py", "cli/parser.py", "cli/commands.py", "results/report.py"):
        assert (PACKAGE / module).is_file(), module
    for module in ("policy", "encoder", "locators", "cards", "registry"):
        assert (PACKAGE / "encoders" / f"{module}.py").is_file(), module
    assert not (PACKAGE / "cli.py").exists()
    assert unit_of("hybridviz.cli.parser") == "cli" and FLOORS["cli"] == 8
    assert unit_of("hybridviz.encoders.policy") == "encoders" and FLOORS["encoders"] == 3
