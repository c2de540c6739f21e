"""Encoder registry: one `load_encoder(spec)` for every kind of model hybridviz evaluates.

The parts live in their own modules; this one loads, and re-exports their names for the callers of old:
- encoders/policy.py — the device and precision policy (the one default precision: `default_precision`);
- encoders/encoder.py — the Encoder wrapper (fingerprint, fast copies, the embedding cache);
- encoders/locators.py — the kinds of model name (me5-small, muse, tiny, hf:, run:, ref:<unit>, a folder;
  `<spec>+<method>` is composed here), where their files are and how they load;
- encoders/cards.py — model cards, which spare a later load the hashing of the weights.
"""

from __future__ import annotations

import threading

from hybridviz.encoders.cards import (CARD_LIBRARIES, CARD_VERSION, card_path, read_card, sources_signature,
                                      write_card)
from hybridviz.encoders.debias import DebiasedEncoder, split_spec
from hybridviz.encoders.encoder import CHUNK, ENCODE_BATCH, TYPED_MEMORY, Encoder
from hybridviz.encoders.locators import (E5_PREFIXES, IMPORT_VERSION, LOCATORS, compact_base, compact_models,
                                         declared_languages, kinds_sentence, load_located, local_model_dir,
                                         locator_kinds, me5_small_dir, model_sources, muse_dir, tiny_dir,
                                         unknown_model_message)
from hybridviz.encoders.policy import (PRECISIONS, bf16_is_fast, check_precision, default_precision,
                                       encoding_device, evaluation_precision)
from hybridviz.errors import UnknownName

__all__ = ["CARD_LIBRARIES", "CARD_VERSION", "CHUNK", "E5_PREFIXES", "ENCODE_BATCH", "IMPORT_VERSION", "LOCATORS",
           "PRECISIONS", "TYPED_MEMORY", "DeferredEncoder", "Encoder", "bf16_is_fast", "card_path", "compact_base",
           "compact_models", "declared_languages", "default_precision", "encoding_device", "evaluation_precision",
           "kinds_sentence", "load_encoder", "local_model_dir", "locator_kinds", "me5_small_dir", "muse_dir",
           "resolve_spec", "tiny_dir", "unknown_model_message"]


def resolve_spec(spec: str) -> str:
    """Normalise a spec string (strip spaces); raise for the empty spec."""
    spec = (spec or "").strip()
    if not spec:
        raise UnknownName(f"No model given; use {kinds_sentence()}.")
    return spec


def load_encoder(spec: str = "me5-small", use_cache: bool = True, precision: str = "fp32",
                 lazy: bool = False) -> Encoder:
    """Load the encoder named by `spec` (encoders/locators.py); `precision` "bf16" encodes in bfloat16, "int8"
    with ONNX Runtime (the default of evaluations is the policy's, `default_precision(spec)`; this loader's is the
    model as its files hold it).

    A model read from local files gets a card (its fingerprint, prefixes and lengths, keyed by the files' paths,
    sizes and modification times): later loads take the fingerprint from it instead of hashing ~0.5 GB of weights.
    `lazy`: where a card exists, return a `DeferredEncoder` that loads the weights only when a text is not in the
    embedding cache (a warm re-evaluation never loads them).
    """
    spec = resolve_spec(spec)
    check_precision(precision)
    base, method = split_spec(spec)
    if method is not None:  # "<model>+<method>": a training-free debiasing step after the model
        return DebiasedEncoder(load_encoder(base, use_cache, precision, lazy), method)
    sources = model_sources(spec)
    signature = sources_signature(sources) if sources else None
    card = read_card(spec, signature) if signature else None
    if lazy and card is not None:
        return DeferredEncoder(spec, card, use_cache=use_cache, precision=precision)
    encoder = load_located(spec, use_cache)
    encoder.precision = precision
    if card is not None:
        encoder._fingerprints.update(card["fingerprints"])
    elif signature is not None:  # hashed now, on the weights exactly as the files hold them
        write_card(spec, signature, encoder)
    return encoder


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
                    self.__dict__["_model"] = load_located(self.spec, self.use_cache).model
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
