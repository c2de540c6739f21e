"""Evaluation results: one package writes them and reads them.

- `format`: the schema (file names, metrics.json's fields, the per-query columns, the compact format's version);
- `codec`: the encodings of the per-query records (text and compact), bytes and text only;
- `store`: the only code that opens, writes, stages, swaps, upgrades or validates an evaluation folder or a
  bundle's files (`read_metrics`, `write_outputs`, `compact_folder`, `ModelResult`, ...);
- `report`: renderers of tables and reports to markdown, LaTeX and CSV (`Report`).

`from hybridviz.results import read_metrics` keeps working: the names of the modules are found here on first use,
so importing one module (the CLI's renderers) does not import the others.
"""

from __future__ import annotations

import importlib

_MODULES = ("format", "codec", "store", "report")


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    for module in _MODULES:
        found = importlib.import_module(f"{__name__}.{module}")
        if module == name:
            return found
        if hasattr(found, name):
            value = getattr(found, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
