"""hybridviz: hybrid batch training for multilingual dense retrieval, measured."""

from hybridviz import provenance as _provenance  # noqa: F401  (snapshots the code identity at import)
