"""The Encoder wrapper: a loaded sentence-transformers model with its retrieval prefixes, its fingerprint, the
fast copies that encode in bf16 or int8, and the embedding cache every encode goes through.

Where a model comes from is the locators' business (encoders/locators.py); which precision it encodes in is the
policy's (encoders/policy.py).
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from hybridviz.data import paths
from hybridviz.encoders.cache import EmbeddingCache
from hybridviz.encoders.policy import PRECISIONS, check_precision, encoding_device
from hybridviz.errors import EncoderUnavailable

CHUNK = 2048  # texts encoded (and cached) per step of a long encode
# texts per forward pass: on 2 CPU cores batches of 16 ran 1.3-1.4x faster than 64 on XQuAD-R sentences (less padding,
# activations stay in cache) and no slower on questions (bench/encode.py; measured 2026-11-26)
ENCODE_BATCH = 16

TYPED_MEMORY = 4096  # typed search queries remembered per encoder (~6 MB at 384 dimensions)


@dataclass
class Encoder:
    """A loaded sentence-transformers model with its retrieval prefixes and an embedding cache."""

    spec: str
    label: str
    model: object  # SentenceTransformer
    query_prefix: str = ""
    passage_prefix: str = ""
    use_cache: bool = True
    # "bf16": a bfloat16 copy encodes (~1.7x faster on CPUs with AVX512-BF16); "int8": an ONNX Runtime copy with
    # int8 weights (onnx_int8.py). Each precision has its own cache entries.
    precision: str = "fp32"
    languages: frozenset | None = None  # the languages the model supports (None: any); evaluations skip others
    _fingerprints: dict = field(default_factory=dict, repr=False)
    _fast_models: dict = field(default_factory=dict, repr=False)
    # typed search queries (store=False): kept in memory, bounded, never written; the disk cache is not read for
    # them either (loading every shard of a model's query cache costs ~20 ms and ~100 MB per call)
    _typed: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _typed_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        check_precision(self.precision)

    @property
    def fingerprint(self) -> str:
        """sha256 over the weights (names and bytes), tokenizer vocabulary, maximum length and precision."""
        if self.precision not in self._fingerprints:
            h = self._weights_hash()
            tokenizer = getattr(self.model, "tokenizer", None)
            backend = getattr(tokenizer, "backend_tokenizer", None)
            if backend is not None:
                from hybridviz.encoders.tokenizer_cache import identity

                h.update(identity(backend, _tokenizer_identity).encode())
            self._fingerprints.update(self._finish_fingerprint(h))
        return self._fingerprints[self.precision]

    def legacy_fingerprint(self) -> str:
        """The fingerprint as defined before commit ef07552, which hashed the tokenizer's serialisation *with* its
        call state. Bundle evaluations written before then carry it; it equals the current definition's weights
        and lengths, so a match proves the same model. Meaningful only on a freshly loaded encoder (no encode yet)."""
        h = self._weights_hash()
        backend = getattr(getattr(self.model, "tokenizer", None), "backend_tokenizer", None)
        if backend is not None:
            h.update(backend.to_str().encode())
        return self._finish_fingerprint(h)[self.precision]

    def _weights_hash(self):
        h = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            # the tensor's own buffer, not a bytes copy of it (the 0.38 GB embedding matrix of me5-small)
            h.update(memoryview(tensor.detach().cpu().contiguous().numpy()).cast("B"))
        return h

    def _finish_fingerprint(self, h) -> dict[str, str]:
        h.update(str(self.model.max_seq_length).encode())
        out = {"fp32": h.hexdigest()}
        for precision in PRECISIONS[1:]:  # fp32 keys stay as they were; other precisions get their own
            other = h.copy()
            other.update(precision.encode())
            if precision == "int8":  # a new export format computes other int8 vectors: new cache entries
                from hybridviz.encoders.onnx_int8 import FORMAT_VERSION

                other.update(f"onnx-v{FORMAT_VERSION}".encode())
            out[precision] = other.hexdigest()
        return out

    def _encoding_model(self):
        device = encoding_device()
        if self.precision == "fp32" and device == "cpu":
            return self.model
        if self.precision not in self._fast_models:
            if self.precision == "int8":
                self._fast_models["int8"] = self._int8_model()
            else:
                import torch

                # a copy: the fingerprint reads the loaded (CPU) weights
                dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
                self._fast_models[self.precision] = copy.deepcopy(self.model).to(device=device, dtype=dtype)
        return self._fast_models[self.precision]

    def encode_only(self) -> "Encoder":
        """Keep one copy of the weights, the one that encodes: for a long-lived encoder that only encodes (the app's
        shared ones). Every precision's fingerprint is computed first, from the weights as loaded; then, where the
        encoding copy differs from them (bf16, or another device), the loaded weights are converted in place instead
        of being kept beside a copy (me5-small: 0.24 GB in bf16 instead of 0.47 + 0.24 GB). Afterwards
        `legacy_fingerprint` and `model.state_dict()` describe the converted weights. Returns the encoder."""
        if self.precision == "int8" or self.precision in self._fast_models:
            return self
        device = encoding_device()
        if self.precision == "fp32" and device == "cpu":
            return self
        import torch

        if any(p not in self._fingerprints for p in PRECISIONS):  # every precision's, before the weights change
            self._fingerprints.pop(self.precision, None)
            self.fingerprint
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self._fast_models[self.precision] = self.model.to(device=device, dtype=dtype)
        return self

    def _int8_model(self):
        from hybridviz.encoders.onnx_int8 import FORMAT_VERSION, OnnxInt8Model, export_int8

        self.fingerprint  # computes every precision's fingerprint; the export is named by the fp32 weights'
        folder = paths.MODELS_DIR / "onnx-int8" / f"{self._fingerprints['fp32'][:32]}-v{FORMAT_VERSION}"
        prefixes = (self.query_prefix, self.passage_prefix)
        try:
            return OnnxInt8Model(self.model, export_int8(self.model, folder, prefixes))
        except EncoderUnavailable:  # a damaged export: rebuild once, never trust it
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            return OnnxInt8Model(self.model, export_int8(self.model, folder, prefixes))

    @property
    def dimension(self) -> int:
        return self.model.get_embedding_dimension()

    @property
    def max_seq_length(self) -> int:
        return self.model.max_seq_length

    def prefix(self, kind: str) -> str:
        if kind not in ("query", "passage"):
            raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
        return self.query_prefix if kind == "query" else self.passage_prefix

    def prepare(self, corpus) -> None:
        """Nothing to fit for a plain encoder (a debiased one fits its index-time variant on the corpus)."""

    def encode(self, texts: list[str], kind: str, batch_size: int = ENCODE_BATCH, progress: bool | None = None,
               langs: list[str] | None = None, on_progress=None, store: bool = True) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text (cached on disk by fingerprint+prefix+text).

        Texts are de-duplicated; what is not cached is encoded longest first in cached chunks. `langs` is
        accepted for a uniform call with debiased encoders, which need each text's language. `on_progress(done,
        total)` is called after each cached chunk (total: the texts that were not cached). `store=False` (a
        typed search query) neither reads nor writes the disk cache: the last TYPED_MEMORY such texts are kept in
        memory instead.
        """
        texts = [str(t) for t in texts]
        prefix = self.prefix(kind)
        if not store:
            return self._encode_typed(texts, prefix, batch_size)
        unique = list(dict.fromkeys(texts))
        if not unique:
            return np.zeros((0, self.dimension), dtype=np.float32)
        cache = EmbeddingCache(paths.EMBEDDINGS_DIR, self.fingerprint, prefix) if self.use_cache else None
        cached, missing = cache.lookup(unique) if cache is not None else (None, list(range(len(unique))))
        # everything cached: the model is not touched (a deferred encoder never loads its weights)
        vectors = cached if cached is not None else np.zeros((len(unique), self.dimension), dtype=np.float32)
        if missing:
            # Longest first, in chunks that are cached as soon as they are done: batches carry little padding,
            # and an interrupted long encode keeps what it finished.
            missing = sorted(missing, key=lambda i: -len(unique[i]))
            show = progress if progress is not None else len(missing) >= 2000
            with tqdm(total=len(missing), desc=f"encoding ({kind})", unit="text", disable=not show) as bar:
                for start in range(0, len(missing), CHUNK):
                    chunk = missing[start : start + CHUNK]
                    todo = [unique[i] for i in chunk]
                    new = np.asarray(self._encoding_model().encode([prefix + t for t in todo], batch_size=batch_size,
                                                       show_progress_bar=False, convert_to_numpy=True,
                                                       normalize_embeddings=True), dtype=np.float32)
                    vectors[chunk] = new
                    if cache is not None:
                        cache.add(todo, new)
                    bar.update(len(chunk))
                    if on_progress is not None:
                        on_progress(min(start + CHUNK, len(missing)), len(missing))
        row = {t: i for i, t in enumerate(unique)}
        return vectors[[row[t] for t in texts]]

    def _encode_typed(self, texts: list[str], prefix: str, batch_size: int) -> np.ndarray:
        with self._typed_lock:  # one encoder serves every session of the app
            keys = [prefix + t for t in texts]
            todo = [k for k in dict.fromkeys(keys) if k not in self._typed]
            if todo:
                new = self._encoding_model().encode(todo, batch_size=batch_size, show_progress_bar=False,
                                                    convert_to_numpy=True, normalize_embeddings=True)
                for key, vector in zip(todo, np.asarray(new, dtype=np.float32)):
                    self._typed[key] = vector
            out = np.stack([self._typed[k] for k in keys]) if keys else np.zeros((0, self.dimension), dtype=np.float32)
            for key in keys:
                self._typed.move_to_end(key)
            while len(self._typed) > TYPED_MEMORY:
                self._typed.popitem(last=False)
            return out


def _tokenizer_identity(backend) -> str:
    """The tokenizer's serialisation without its call state: encoding sets truncation and padding on the backend,
    and a fingerprint taken after an encode must equal one taken before."""
    from tokenizers import Tokenizer

    fresh = Tokenizer.from_str(backend.to_str())
    fresh.no_truncation()
    fresh.no_padding()
    return fresh.to_str()

