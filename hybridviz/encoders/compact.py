"""Compact fine-tuned models: only the tensors training changed, as a delta from the base model's weights.

Two encodings of the delta (bench/compact.py measures both: size and cosine to the full model):
- `lowrank:r=R` — each changed matrix's delta as a rank-R factorisation U·V (truncated SVD, factors in fp16);
- `int4` / `int8` — each changed tensor's delta quantised symmetrically per group of GROUP values (scales fp16).
Vectors (biases, LayerNorm) are stored whole in fp16 under either encoding. The file is a safetensors file with
the encoding, the base model's fingerprint and the source run in its metadata; `apply_delta` rebuilds the
weights on top of the base, and refuses a base other than the one the delta was taken from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

GROUP = 64
_ENCODING = re.compile(r"^(lowrank:r=(?P<rank>\d+)|int(?P<bits>4|8))$")


def _parse(encoding: str) -> tuple[str, int]:
    m = _ENCODING.match(encoding)
    if not m:
        raise ValueError(f"unknown delta encoding {encoding!r}; use lowrank:r=<rank>, int4 or int8")
    return ("lowrank", int(m["rank"])) if m["rank"] else ("int", int(m["bits"]))


def _quantise(delta: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-group quantisation of a flat tensor: (int8 codes, fp16 scales); int4 codes packed 2/byte."""
    flat = delta.reshape(-1).float()
    pad = (-flat.numel()) % GROUP
    groups = torch.nn.functional.pad(flat, (0, pad)).reshape(-1, GROUP)
    top = 2 ** (bits - 1) - 1
    scales = groups.abs().amax(dim=1).clamp_min(1e-12) / top
    codes = torch.round(groups / scales[:, None]).clamp(-top, top).to(torch.int8)
    if bits == 4:
        u = (codes.reshape(-1) + 8).to(torch.uint8)  # 1..15
        codes = (u[0::2] | (u[1::2] << 4)).to(torch.uint8)
    return codes, scales.half()


def _dequantise(codes: torch.Tensor, scales: torch.Tensor, bits: int, shape) -> torch.Tensor:
    if bits == 4:
        low, high = (codes & 0x0F).to(torch.int16) - 8, (codes >> 4).to(torch.int16) - 8
        codes = torch.stack([low, high], dim=1).reshape(-1)
    values = codes.float().reshape(-1, GROUP) * scales.float()[:, None]
    n = int(np.prod(shape))
    return values.reshape(-1)[:n].reshape(shape)


def make_delta(base: dict, tuned: dict, encoding: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, info) of the delta tuned − base over the tensors that differ."""
    kind, value = _parse(encoding)
    tensors, changed = {}, []
    for name, weight in tuned.items():
        if name not in base or torch.equal(weight, base[name]):
            continue
        changed.append(name)
        delta = weight.float() - base[name].float()
        if delta.ndim < 2:
            tensors[f"{name}::full"] = delta.half()
        elif kind == "lowrank":
            u, s, vh = torch.linalg.svd(delta, full_matrices=False)
            r = min(value, s.numel())
            tensors[f"{name}::u"] = (u[:, :r] * s[:r]).half()
            tensors[f"{name}::v"] = vh[:r].half().contiguous()
        else:
            codes, scales = _quantise(delta, value)
            tensors[f"{name}::q{value}"] = codes
            tensors[f"{name}::scale"] = scales
    return tensors, {"encoding": encoding, "changed": changed}


def apply_delta(base: dict, tensors: dict[str, torch.Tensor], encoding: str) -> dict:
    """The tuned weights rebuilt from the base and a delta made by `make_delta`.

    Rebuilt in float64 and rounded once to the weight's dtype: a float32 matmul's rounding depends on how BLAS
    splits it over threads, and the model fingerprint (a hash of the bytes) must not.
    """
    kind, value = _parse(encoding)
    out = dict(base)
    names = {key.split("::")[0] for key in tensors}
    for name in names:
        w = base[name]
        if f"{name}::full" in tensors:
            delta = tensors[f"{name}::full"].double()
        elif kind == "lowrank":
            delta = tensors[f"{name}::u"].double() @ tensors[f"{name}::v"].double()
        else:
            delta = _dequantise(tensors[f"{name}::q{value}"], tensors[f"{name}::scale"], value, w.shape).double()
        out[name] = (w.double() + delta).to(w.dtype)
    return out


def save_delta(path: Path, tensors: dict, info: dict, metadata: dict) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"encoding": info["encoding"], **{k: json.dumps(v) if not isinstance(v, str) else v
                                             for k, v in metadata.items()}}
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_delta(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata() or {})
    return load_file(str(path)), meta
