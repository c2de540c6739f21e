"""Atomic file writes: a temporary file in the same folder, then a rename, so readers never see half a file. And
the strict reading of a user's JSON-lines file (`iter_jsonl`), whose errors name the file and the line."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


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


def iter_lines(path: str | os.PathLike, error: type[Exception] = ValueError,
               where: str = "{path}:{line}") -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of a text file (gzip-compressed where its name ends in .gz), decoded one
    by one so that a bad byte names its line; a BOM before the first line is dropped, line ends are stripped.
    A problem raises `error` (the caller's class), its message starting with the place: `where` formatted with
    the file and the line number ("{path}:{line}", or "{path}, line {line}"), or the file alone where it cannot
    be read."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise error(f"{where.format(path=path, line=n)}: not UTF-8 text ({exc.reason} at byte "
                                f"{exc.start} of the line).") from None
                if n == 1:
                    text = text.lstrip("\ufeff")
                yield n, text.rstrip("\r\n")
    except (OSError, EOFError) as exc:  # a missing file, a damaged .gz
        raise error(f"{path}: cannot be read ({exc}).") from None


def iter_jsonl(path: str | os.PathLike, error: type[Exception] = ValueError, what: str = "a JSON object",
               where: str = "{path}:{line}") -> Iterator[tuple[int, dict]]:
    """(line number, row) of every non-blank line of a JSON-lines file (`iter_lines`), each line a JSON object;
    the first line that is not raises `error` naming the file and the line (`where`): malformed JSON with its
    column, or "expected <what>, got <type>". Unlike `read_jsonl` (a log, whose cut last line is skipped), a
    user's data file is valid as a whole or refused."""
    path = Path(path)
    for n, line in iter_lines(path, error, where):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where.format(path=path, line=n)}: malformed JSON ({exc.msg} at column "
                        f"{exc.colno}).") from None
        if not isinstance(row, dict):
            raise error(f"{where.format(path=path, line=n)}: expected {what}, got {type(row).__name__}.")
        yield n, row
