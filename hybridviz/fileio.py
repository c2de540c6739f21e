"""Atomic file writes: a temporary file in the same folder, then a rename, so readers never see half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the mode open() would give it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(path: str | os.PathLike, payload: dict, compact: bool = False) -> None:
    """`compact`: no indentation (a bundle's metrics.json files are about a third smaller; `python -m json.tool`
    shows them indented)."""
    atomic_write_text(path, compact_json(payload) if compact else json.dumps(payload, indent=1, ensure_ascii=False))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The complete lines of a JSONL log ([] without the file; a line cut by a kill is skipped, the rest kept)."""
    path = Path(path)
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def compact_json(payload) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
