"""On-disk embedding cache keyed by (model fingerprint, prefix, text).

Layout: `<root>/<fingerprint>/<sha1(prefix)>/shard-*.npz`. Each encode call that computes new vectors writes one
shard (keys = sha1 of the text, vectors, and a sha256 over both) to a temporary file and renames it into place,
so readers never see a half-written shard. A shard that fails to load or whose checksum does not match is
reported, deleted and its texts recomputed — never trusted. Shards are merged once they become many.
"""

from __future__ import annotations

import hashlib
import os
import logging
import tempfile
from pathlib import Path

import numpy as np
import psutil

MAX_SHARDS = 16
log = logging.getLogger("hybridviz")


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


def _key_bytes(keys: np.ndarray) -> list[bytes]:
    """The 20 bytes of each stored key. Not `bytes(key)`: numpy's S20 strips trailing NULs, so one digest in 256
    (those ending in 0x00) would never be found again and its text would be re-encoded on every call."""
    raw = np.ascontiguousarray(keys, dtype="S20").view(np.uint8).reshape(len(keys), 20)
    return [row.tobytes() for row in raw]


def _checksum(keys: np.ndarray, vectors: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(keys).tobytes())
    h.update(np.ascontiguousarray(vectors).tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """Vectors for one model and one prefix. Not shared between threads; shards make processes safe."""

    def __init__(self, root: str | os.PathLike, fingerprint: str, prefix: str):
        self.dir = Path(root) / fingerprint / hashlib.sha1(prefix.encode("utf-8")).hexdigest()[:16]
        self._index: dict[bytes, int] = {}
        self._vectors: list[np.ndarray] = []
        self._loaded_shards: set[str] = set()
        self.corrupt_shards: list[str] = []

    # ------------------------------------------------------------------ reading
    def _refresh(self) -> None:
        if not self.dir.is_dir():
            return
        for shard in sorted(self.dir.glob("shard-*.npz")):
            if shard.name in self._loaded_shards:
                continue
            try:
                with np.load(shard, allow_pickle=False) as z:
                    keys, vectors, checksum = z["keys"], z["vectors"], str(z["checksum"])
                if checksum != _checksum(keys, vectors) or len(keys) != len(vectors):
                    raise ValueError("checksum mismatch")
            except Exception as exc:  # truncated zip, bad arrays, wrong checksum: recompute, never trust
                log.warning(f"Embedding cache shard {shard} is corrupt ({exc}); it was removed and its texts "
                            f"are re-encoded.")
                self.corrupt_shards.append(str(shard))
                shard.unlink(missing_ok=True)
                continue
            self._loaded_shards.add(shard.name)
            base = sum(len(v) for v in self._vectors)
            self._vectors.append(vectors)
            for i, key in enumerate(_key_bytes(keys)):
                self._index[key] = base + i

    def lookup(self, texts: list[str]) -> tuple[np.ndarray | None, list[int]]:
        """Cached vectors for `texts` (rows of misses are zero) and the positions that still need encoding."""
        self._refresh()
        if not self._index:
            return None, list(range(len(texts)))
        flat = np.concatenate(self._vectors) if len(self._vectors) > 1 else self._vectors[0]
        if len(self._vectors) > 1:
            self._vectors = [flat]
        out = np.zeros((len(texts), flat.shape[1]), dtype=np.float32)
        missing = []
        for pos, text in enumerate(texts):
            row = self._index.get(text_key(text))
            if row is None:
                missing.append(pos)
            else:
                out[pos] = flat[row]
        return out, missing

    # ------------------------------------------------------------------ writing
    def add(self, texts: list[str], vectors: np.ndarray) -> None:
        if not texts:
            return
        keys = np.array([text_key(t) for t in texts], dtype="S20")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._write_shard(keys, vectors)
        self._refresh()
        if len(list(self.dir.glob("shard-*.npz"))) > MAX_SHARDS:
            self._compact()

    def _write_shard(self, keys: np.ndarray, vectors: np.ndarray) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f"{os.getpid()}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, keys=keys, vectors=vectors, checksum=np.array(_checksum(keys, vectors)))
                f.flush()
                os.fsync(f.fileno())
            name = self.dir / f"shard-{hashlib.sha1(keys.tobytes()).hexdigest()[:16]}-{os.getpid()}.npz"
            os.replace(tmp, name)
            return name
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _remove_stale_temporaries(self) -> None:
        """Half-written shards of processes that died mid-write (e.g. SIGKILL) are never read; delete them."""
        for tmp in self.dir.glob("*.tmp"):
            pid = tmp.name.split("-", 1)[0]
            if pid.isdigit() and not psutil.pid_exists(int(pid)):
                tmp.unlink(missing_ok=True)

    def _compact(self) -> None:
        """Merge every shard into one (written first, old shards removed after)."""
        self._refresh()
        old = [self.dir / name for name in self._loaded_shards]  # a shard another process adds now survives
        keys = np.array(list(self._index), dtype="S20")
        flat = np.concatenate(self._vectors)
        merged = self._write_shard(keys, flat[[self._index[k] for k in _key_bytes(keys)]])
        for shard in old:
            if shard != merged:
                shard.unlink(missing_ok=True)
        self._index, self._vectors, self._loaded_shards = {}, [], set()
        self._refresh()
