"""Custom evaluation sets (`beir:<folder>`, data/beir.py) in a grid: added to its evaluations and validated before
any unit trains or evaluates.

A grid's evaluations may only grow (grid.EXTENSIBLE), so a bundle keeps the custom sets it was given: continuing it
without naming them again evaluates them too, instead of refusing the shrunken list.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from hybridviz.tasks import check_task, is_custom_task


def custom_evaluations(out: Path) -> list[dict]:
    """The custom-set evaluations recorded in the bundle at `out` ([] for a new bundle)."""
    try:
        spec = json.loads((Path(out) / "manifest.json").read_text()).get("spec") or {}
    except (OSError, ValueError):
        return []
    return [dict(e) for e in spec.get("evaluations", []) if is_custom_task(e.get("task", ""))]


def with_custom_tasks(spec, tasks: list[str] | None, out: Path | None = None):
    """`spec` (a GridSpec) with an evaluation of every `beir:<folder>` in `tasks` (whole set, every language) and
    of every custom set the bundle at `out` already holds; each set is validated now, so a bad folder stops the
    grid before its first unit. Other names in `tasks` are left to the grid (they select built-in benchmarks)."""
    names = {e["task"] for e in spec.evaluations}
    extra: list[dict] = []
    for ev in (custom_evaluations(out) if out is not None else []) + [
            {"task": t, "languages": None, "limit": None} for t in tasks or [] if is_custom_task(t)]:
        if ev["task"] not in names:
            names.add(ev["task"])
            extra.append(ev)
    for ev in [e for e in spec.evaluations if is_custom_task(e["task"])] + extra:
        check_task(ev["task"])
    return replace(spec, evaluations=[*spec.evaluations, *extra]) if extra else spec
