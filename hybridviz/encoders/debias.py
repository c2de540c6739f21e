"""Training-free language debiasing of embeddings, applied at encode time, composable with any model spec.

Methods (each re-normalises the result to unit length, as retrieval compares cosines):
- `center`: subtract the mean embedding of the text's (kind, language): queries and passages carry different
  prefixes, so each side has its own means.
- `lir:k=K` (Yang et al. 2021, "A simple and effective method to eliminate the self language bias in multilingual
  representations"): remove the top-K singular directions of the text's language (its uncentred embeddings).
- `lsar:r=R` (Xie et al., EMNLP 2022, "Discovering low-rank subspaces for language-agnostic multilingual
  representations"): the rank-R subspace spanned by the centred language means is language-specific; project it
  out of every embedding (no language needed at apply time).
- `leace` (Belrose et al. 2023, LEAst-squares Concept Erasure, through EleutherAI's `concept-erasure` package):
  the affine map after which no linear classifier predicts the language better than a constant.

Fit data, recorded in the fitted method and shown with it — never relevance labels:
- default (`train`): the training-side texts of MLQA-R dev (its questions and answer sentences, the texts the
  samplers train on), optionally without a held-out share of question groups (for choosing K and R);
- `@index` (index time): the unlabeled texts of the pool being indexed and a seeded sample of the benchmark's
  questions (texts and languages only).
Languages without fitting text (XQuAD-R's el, ru, th, tr for an MLQA-R fit) are handled explicitly and recorded:
`center` uses the mean of the fitted languages' means of that side, `lir` the top-K directions of all fit texts.
A text whose language is not given (a free-text search query) gets the language whose mean it is closest to.

Spec grammar: `<model spec>+<method>[:k=K|:r=R][@index]`, e.g. `me5-small+center`, `run:<id>+lir:k=4`,
`me5-small+center@index`. Without K or R, the value chosen on held-out MLQA-R groups is used
(`python -m hybridviz debias-sweep`; cache/reference/debias-sweep/sweep.json), else DEFAULT_PARAMS.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hybridviz.data.paths import DEBIAS_DIR, REFERENCE_DIR
from hybridviz.errors import UnknownName

METHODS = ("center", "lir", "lsar", "leace")
DEFAULT_PARAMS = {"lir": {"k": 1}, "lsar": {"r": 4}}
FITS = ("train", "index")
FIT_DIR = DEBIAS_DIR
SWEEP_PATH = REFERENCE_DIR / "debias-sweep" / "sweep.json"
INDEX_QUERY_SHARE = 0.2  # share of a benchmark's question groups whose texts fit the query side @index
_SPEC = re.compile(r"^(?P<method>[a-z]+)(?::(?P<params>[a-z]=\d+(?:,[a-z]=\d+)*))?(?:@(?P<fit>[a-z]+))?$")


@dataclass(frozen=True)
class MethodSpec:
    method: str
    params: tuple = ()  # sorted (name, value) pairs
    fit: str = "train"

    @property
    def name(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.method}{':' + params if params else ''}{'@' + self.fit if self.fit != 'train' else ''}"


def chosen_params(method: str) -> dict:
    """K / R as chosen on held-out MLQA-R groups (the committed sweep), else the defaults."""
    if SWEEP_PATH.exists():
        try:
            chosen = json.loads(SWEEP_PATH.read_text()).get("chosen", {})
            if method in chosen:
                return dict(chosen[method])
        except (OSError, ValueError):
            pass
    return dict(DEFAULT_PARAMS.get(method, {}))


def parse_method(text: str) -> MethodSpec:
    m = _SPEC.match(text.strip())
    if not m or m["method"] not in METHODS:
        raise UnknownName(f"Unknown debiasing method {text!r}; use one of {', '.join(METHODS)} "
                          f"(e.g. center, lir:k=4, lsar:r=2, leace, center@index).")
    fit = m["fit"] or "train"
    if fit not in FITS:
        raise UnknownName(f"Unknown fit {fit!r} in {text!r}; use @index or nothing (training-side texts).")
    params = chosen_params(m["method"])
    for item in (m["params"] or "").split(","):
        if item:
            key, value = item.split("=")
            if key not in DEFAULT_PARAMS.get(m["method"], {}):
                raise UnknownName(f"{m['method']} takes no parameter {key!r}.")
            if int(value) < 1:
                raise UnknownName(f"{m['method']}: {key} must be at least 1.")
            params[key] = int(value)
    return MethodSpec(m["method"], tuple(sorted(params.items())), fit)


def split_spec(spec: str) -> tuple[str, MethodSpec | None]:
    """'run:x+lir:k=4' -> ('run:x', MethodSpec('lir', (('k', 4),))); a spec without a method -> (spec, None)."""
    if "+" not in spec:
        return spec, None
    base, method = spec.rsplit("+", 1)
    if not base.strip():
        raise UnknownName(f"{spec!r} names a debiasing method but no model before the '+'.")
    return base.strip(), parse_method(method)


# ------------------------------------------------------------------------------------------------ fitting


@dataclass
class FitTexts:
    texts: list[str]
    langs: list[str]
    kinds: list[str]  # "query" / "passage"
    source: str  # what the texts are, for the record


def training_side_texts(exclude_groups=frozenset()) -> FitTexts:
    """MLQA-R dev questions and answer sentences (the samplers' training texts), without `exclude_groups`
    (whole question groups held out for choosing K and R)."""
    from hybridviz.data.lareqa import load_lareqa

    data = load_lareqa("mlqa-r")
    held = set(exclude_groups)
    texts, langs, kinds = [], [], []
    for q in data.questions:
        if q.group not in held:
            texts.append(q.text), langs.append(q.lang), kinds.append("query")
    for s in data.sentences:
        if s.groups and not (s.groups & held):
            texts.append(s.text), langs.append(s.lang), kinds.append("passage")
    what = "MLQA-R dev questions and answer sentences"
    if held:
        what += f" (without {len(held)} held-out question groups)"
    return FitTexts(texts, langs, kinds, what)


def index_texts(corpus, share: float = INDEX_QUERY_SHARE, seed: int = 0) -> FitTexts:
    """The pool's unlabeled texts and a seeded share of the benchmark's question groups (texts only)."""
    from hybridviz.data.splits import held_out_groups

    sample = held_out_groups(corpus.query_groups, share, seed)
    texts = list(corpus.cand_texts)
    langs = list(corpus.cand_langs)
    kinds = [corpus.candidate_kind] * len(texts)
    for text, lang, group in zip(corpus.query_texts, corpus.query_langs, corpus.query_groups):
        if group in sample:
            texts.append(text), langs.append(lang), kinds.append("query")
    return FitTexts(texts, langs, kinds, f"index time: the {corpus.task} pool ({len(corpus.cand_texts)} texts) "
                                         f"and the questions of {len(sample)} sampled groups, texts only")


@dataclass
class Debiaser:
    """A fitted method: arrays plus the record of what fitted it."""

    spec: MethodSpec
    arrays: dict[str, np.ndarray]
    record: dict = field(default_factory=dict)

    # -------------------------------------------------------------------------------------------- apply
    def transform(self, x: np.ndarray, kind: str, langs: list[str] | None = None, normalise: bool = True
                  ) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        method = self.spec.method
        if method in ("center", "lir"):
            langs = self._languages(x, kind, langs)
        if method == "center":
            out = x - self._means(kind)[self._index(langs)]
        elif method == "lir":
            out = x.copy()
            bases = self.arrays["lir_bases"]  # (languages + fallback, k, d)
            for i, idx in _groups(self._index(langs)):
                v = bases[i]
                out[idx] -= (x[idx] @ v.T) @ v
        elif method == "lsar":
            v = self.arrays["lsar_basis"]
            out = x - (x @ v.T) @ v
        else:  # leace: x - P (x - mean), P the oblique projection of the eraser
            out = x - (x - self.arrays["leace_mean"]) @ self.arrays["leace_proj"].T
        if not normalise:
            return out
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)

    def _means(self, kind: str) -> np.ndarray:
        return self.arrays[f"center_{kind}"]  # (languages + fallback, d)

    def _index(self, langs: list[str]) -> np.ndarray:
        known = {lang: i for i, lang in enumerate(self.languages)}
        fallback = len(self.languages)
        return np.array([known.get(lang, fallback) for lang in langs], dtype=int)

    def _languages(self, x: np.ndarray, kind: str, langs: list[str] | None) -> list[str]:
        if langs is not None:
            if len(langs) != len(x):
                raise ValueError("one language per text")
            return list(langs)
        means = self.arrays[f"center_{kind}"][: len(self.languages)]
        return [self.languages[i] for i in np.argmax(x @ means.T, axis=1)]

    @property
    def languages(self) -> list[str]:
        return [str(x) for x in self.arrays["languages"]]

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(self.spec.name.encode())
        for key in sorted(self.arrays):
            h.update(key.encode())
            h.update(np.ascontiguousarray(self.arrays[key]).tobytes())
        return h.hexdigest()

    def save(self, path: Path) -> Path:
        from hybridviz.fileio import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, **self.arrays, _record=np.array(json.dumps(
            {**self.record, "spec": self.spec.name, "method": self.spec.method, "params": dict(self.spec.params),
             "fit": self.spec.fit})))
        atomic_write_bytes(Path(path), buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "Debiaser":
        with np.load(path, allow_pickle=False) as z:
            record = json.loads(str(z["_record"]))
            arrays = {k: z[k] for k in z.files if k != "_record"}
        return cls(parse_method(record["spec"]), arrays, record)


def _groups(index: np.ndarray):
    for value in np.unique(index):
        yield int(value), np.flatnonzero(index == value)


def _top_directions(x: np.ndarray, k: int) -> np.ndarray:
    """(k, d): the top-k right singular vectors of x (uncentred, as LIR uses them)."""
    _, _, vt = np.linalg.svd(np.asarray(x, dtype=np.float64), full_matrices=False)
    return vt[:k].astype(np.float32)


def fit(spec: MethodSpec, x: np.ndarray, langs: list[str], kinds: list[str], source: str = "") -> Debiaser:
    """Fit `spec` on embeddings `x` of texts with their languages and kinds (query / passage)."""
    x = np.asarray(x, dtype=np.float32)
    langs, kinds = np.asarray(langs), np.asarray(kinds)
    languages = sorted(set(langs.tolist()))
    if len(languages) < 2:
        raise ValueError("debiasing needs texts in at least two languages")
    arrays: dict[str, np.ndarray] = {"languages": np.array(languages)}
    params = dict(spec.params)
    # per-side language means (and the mean of those means as the fallback row): also the language guesser
    for kind in ("query", "passage"):
        rows = []
        for lang in languages:
            sel = (langs == lang) & (kinds == kind)
            rows.append(x[sel].mean(axis=0) if sel.any() else x[langs == lang].mean(axis=0))
        rows.append(np.mean(rows, axis=0))
        arrays[f"center_{kind}"] = np.stack(rows).astype(np.float32)
    if spec.method == "lir":
        k = params["k"]
        arrays["lir_bases"] = np.stack([_top_directions(x[langs == lang], k) for lang in languages]
                                       + [_top_directions(x, k)])
    elif spec.method == "lsar":
        r = params["r"]
        if r >= len(languages):
            raise ValueError(f"lsar: rank {r} must be below the number of fitted languages ({len(languages)})")
        means = np.stack([x[langs == lang].mean(axis=0) for lang in languages]).astype(np.float64)
        arrays["lsar_basis"] = _top_directions(means - means.mean(axis=0), r)
    elif spec.method == "leace":
        import torch
        from concept_erasure import LeaceFitter

        z = torch.nn.functional.one_hot(torch.as_tensor([languages.index(lang) for lang in langs]),
                                        len(languages)).double()
        fitter = LeaceFitter(x.shape[1], len(languages), dtype=torch.float64)
        fitter.update(torch.as_tensor(x, dtype=torch.float64), z)
        eraser = fitter.eraser
        # the eraser maps x to x - (x - bias) @ proj_right^T @ proj_left^T: stored as one (d, d) matrix
        bias = eraser.bias if eraser.bias is not None else torch.zeros(x.shape[1], dtype=torch.float64)
        arrays["leace_mean"] = bias.numpy().astype(np.float32)
        arrays["leace_proj"] = (eraser.proj_left @ eraser.proj_right).numpy().astype(np.float32)
    counts: dict = {}
    for lang, kind in zip(langs.tolist(), kinds.tolist()):
        counts.setdefault(lang, {"query": 0, "passage": 0})[kind] += 1
    record = {"spec": spec.name, "method": spec.method, "params": dict(spec.params), "fit": spec.fit,
              "fit_source": source, "fit_counts": dict(sorted(counts.items())), "fitted_languages": languages,
              "fallback": {"center": "the mean of the fitted languages' means (per side)",
                           "lir": "the top-k directions of all fit texts"}.get(spec.method,
                                                                               "none needed (language-free)")}
    return Debiaser(spec, arrays, record)


# ------------------------------------------------------------------------------------------------ encoder


class DebiasedEncoder:
    """An encoder whose embeddings pass through a fitted debiasing method (the base's cache serves encoding)."""

    def __init__(self, base, spec: MethodSpec):
        self.base = base
        self.method = spec
        self.spec = f"{base.spec}+{spec.name}"
        self.label = f"{base.label} + {spec.name} (training-free)"
        self.debiaser: Debiaser | None = None
        self._fitted_on: str | None = None

    def __getattr__(self, name):  # model, prefixes, precision, use_cache... are the base's
        if name in ("base", "method"):
            raise AttributeError(name)
        return getattr(self.base, name)

    @property
    def precision(self):
        return self.base.precision

    @precision.setter
    def precision(self, value):
        self.base.precision = value

    @property
    def fingerprint(self) -> str:
        self._ensure_fitted()
        return hashlib.sha256(f"{self.base.fingerprint}+{self.debiaser.fingerprint}".encode()).hexdigest()

    def prepare(self, corpus) -> None:
        """Fit the index-time variant on this corpus (a no-op for training-side fits)."""
        if self.method.fit == "index":
            key = f"{corpus.task}:{len(corpus.cand_texts)}:{len(corpus.query_texts)}"
            if self._fitted_on != key:
                self.debiaser = self._fit(index_texts(corpus))
                self._fitted_on = key

    def _ensure_fitted(self) -> None:
        if self.debiaser is not None:
            return
        if self.method.fit == "index":
            raise ValueError(f"{self.spec}: an index-time method is fitted on the pool it indexes; "
                             f"call prepare(corpus) first")
        self.debiaser = self._fit(training_side_texts())

    def _fit(self, texts: FitTexts) -> Debiaser:
        h = hashlib.sha256(json.dumps([self.base.fingerprint, self.method.name, texts.source,
                                       texts.texts, texts.langs, texts.kinds]).encode()).hexdigest()[:32]
        path = FIT_DIR / f"{h}.npz"
        if path.exists():
            try:
                return Debiaser.load(path)
            except Exception:  # a damaged fit is a cache entry: refit, never trust it
                path.unlink(missing_ok=True)
        x = np.zeros((len(texts.texts), self.base.dimension), dtype=np.float32)
        kinds = np.asarray(texts.kinds)
        for kind in ("query", "passage"):
            idx = np.flatnonzero(kinds == kind)
            if idx.size:
                x[idx] = self.base.encode([texts.texts[i] for i in idx], kind)
        fitted = fit(self.method, x, texts.langs, texts.kinds, texts.source)
        fitted.record["base_fingerprint"] = self.base.fingerprint
        fitted.save(path)
        return fitted

    def encode(self, texts: list[str], kind: str, batch_size: int | None = None, progress: bool | None = None,
               langs: list[str] | None = None, on_progress=None, store: bool = True) -> np.ndarray:
        self._ensure_fitted()
        kwargs = {} if batch_size is None else {"batch_size": batch_size}
        x = self.base.encode(texts, kind, progress=progress, on_progress=on_progress, store=store, **kwargs)
        return self.debiaser.transform(x, kind, langs)
