"""Read a tokenizer's files once per process, not once per model load.

Every model hybridviz loads from the mE5 family (the offline default, each fine-tuned run, each shipped compact
model, the tiny test model) carries the same 250k-piece tokenizer. `transformers` parses its `tokenizer.json`
(17 MB) again on every load: about 0.8 s of a 1 s load of the tiny model, and the grid, the lab and the pages load
models again and again. `reusing_tokenizers()` wraps one sentence-transformers load: while it is active, the
processor that sentence-transformers asks `transformers` for is taken from a small cache keyed by the *content*
of the folder's tokenizer files (sha256) and the loading arguments, so two folders with identical files share it.

A hit returns a shallow copy: the Rust tokenizer (read-only vocabulary and rules; the call state — truncation,
padding — is set by transformers on every call) is shared, the Python object and its containers are the load's
own, so `model_max_length` and `name_or_path` stay per model. The dashboard already shared one tokenizer between
encoders read from the same files (memory); this shares it from the first load.

`identity(backend, compute)` memoises the fingerprint's tokenizer identity (encoder.py) for a shared backend.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "sentencepiece.bpe.model", "vocab.txt", "processor_config.json", "chat_template.jinja")
MAX_ENTRIES = 2  # tokenizers held (the mE5 family shares one; ~0.3 GB each for a 250k vocabulary)

_lock = threading.RLock()
_entries: OrderedDict = OrderedDict()  # key -> {"processor": ..., "identity": str | None}
_digests: dict = {}  # (path, size, mtime_ns) -> sha256 hex: a file is hashed once while unchanged
stats = {"hits": 0, "misses": 0}


def _digest(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _digests[key]


def cache_key(folder: str | Path, kwargs: dict) -> tuple | None:
    """What a load's processor depends on: the tokenizer files' contents and the loading arguments; None when
    `folder` is not a local folder with a `tokenizer.json` (a hub name, or a model of another kind)."""
    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file():
        return None
    files = tuple((name, _digest(folder / name)) for name in TOKENIZER_FILES if (folder / name).is_file())
    try:
        args = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
    except TypeError:
        return None
    return files, args


def _own_copy(processor, folder: str):
    mine = copy.copy(processor)
    for name, value in list(vars(mine).items()):
        if isinstance(value, (dict, list, set)) and not name.startswith("_tokenizer"):
            setattr(mine, name, copy.copy(value))
    try:
        mine.name_or_path = str(folder)
    except AttributeError:
        pass
    return mine


class _CachingProcessor:
    """Stands in for `transformers.AutoProcessor` inside sentence-transformers' Transformer module."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def from_pretrained(self, name_or_path, *args, **kwargs):
        key = None if args else cache_key(name_or_path, kwargs)
        if key is None:
            return self._real.from_pretrained(name_or_path, *args, **kwargs)
        with _lock:
            return self._cached(key, name_or_path, kwargs)

    def _cached(self, key, name_or_path, kwargs):
        entry = _entries.get(key)
        if entry is None:
            stats["misses"] += 1
            entry = {"processor": self._real.from_pretrained(name_or_path, **kwargs), "identity": None}
            _entries[key] = entry
            while len(_entries) > MAX_ENTRIES:
                _entries.popitem(last=False)
        else:
            stats["hits"] += 1
            _entries.move_to_end(key)
        return _own_copy(entry["processor"], str(name_or_path))


@contextmanager
def reusing_tokenizers(enabled: bool = True):
    """Within this block, sentence-transformers' Transformer modules take their processor from the cache. Loads
    are serialised (the module attribute is swapped for the block's length). `enabled=False`: load as usual (a
    module that lowercases edits its tokenizer's normaliser, which must then be its own)."""
    if not enabled:
        yield
        return
    try:
        from sentence_transformers.base.modules import transformer as module
    except ImportError:  # another sentence-transformers layout: load as usual
        yield
        return
    with _lock:
        real = module.AutoProcessor
        if isinstance(real, _CachingProcessor):  # nested
            yield
            return
        module.AutoProcessor = _CachingProcessor(real)
        try:
            yield
        finally:
            module.AutoProcessor = real


def identity(backend, compute) -> str:
    """`compute(backend)`, remembered for a backend held in the cache (shared by every model loaded with it)."""
    with _lock:
        for entry in _entries.values():
            if getattr(entry["processor"], "backend_tokenizer", None) is backend:
                if entry["identity"] is None:
                    entry["identity"] = compute(backend)
                return entry["identity"]
    return compute(backend)


def clear() -> None:
    with _lock:
        _entries.clear()
        _digests.clear()
