"""The device and precision policy: where encoders and training compute, and in which precision.

Every entry point takes its precision from here (the CLI's evaluate, experiment, train, sweep, budget, curves,
transductive-spread and mkqa-nq; the lab; the grid; search in the dashboard; the benches).

The one default, `default_precision(spec)`:
- **bf16** where this machine computes bfloat16 natively (a CPU with AVX512-BF16 or AMX, or a CUDA GPU with bf16);
- **fp32** elsewhere, and always for `tiny` (hidden 32: bf16 kernels are 25x slower there) and `muse` (no attention
  to speed up; its sums over tokens want float32) -- and for every model derived from them (`run:` of a mUSE
  fine-tune is not told apart here: pass the precision explicitly where it matters).

It holds for evaluation and for training alike (training knows fp32 and bf16; int8 is an evaluation precision
only). A continued result bundle keeps the precisions it was started with (experiments/grid.inherited_settings):
that is the one place where an entry point departs from the default, and it says so on stderr (`note_departure`).

The device: a visible CUDA GPU, unless HYBRIDVIZ_DEVICE=cpu; else the CPU (`encoding_device`). Training follows
the same rule.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hybridviz.errors import UnknownName
from hybridviz.provenance import gpu_allowed

PRECISIONS = ("fp32", "bf16", "int8")  # of evaluation (encoding)
TRAIN_PRECISIONS = ("fp32", "bf16")  # of training (autocast)
FP32_MODELS = ("tiny", "muse")  # spec prefixes computed in fp32 whatever the machine

# one line for --help texts, so every command describes the default the same way
DEFAULT_HELP = "default: bf16 where this machine computes it natively, else fp32; fp32 for tiny and muse"


def encoding_device() -> str:
    """Where fp32/bf16 encoding runs: a visible CUDA GPU, unless HYBRIDVIZ_DEVICE=cpu; else the CPU. Training
    follows the same rule (the trainer uses the GPU whenever torch sees one)."""
    if not gpu_allowed():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def bf16_is_fast() -> bool:
    """Whether this machine computes bfloat16 natively (AVX512-BF16/AMX on CPU, or a CUDA GPU that does)."""
    if encoding_device() == "cuda":
        import torch

        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_precision(spec: str | None = None) -> str:
    """THE default precision (module docstring): of evaluation and of training, for the model `spec`. Without a
    spec, the machine's: bf16 where it is fast, else fp32."""
    if spec is not None and str(spec).strip().startswith(FP32_MODELS):
        return "fp32"
    return "bf16" if bf16_is_fast() else "fp32"


def evaluation_precision(spec: str) -> str:
    """The default precision of evaluating `spec` (the same rule as training's: `default_precision`)."""
    return default_precision(spec)


def training_precision(spec: str | None = None) -> str:
    """The default precision of training `spec` (the same rule as evaluation's: `default_precision`)."""
    return default_precision(spec)


def check_precision(precision: str, training: bool = False) -> str:
    """`precision` when it is one this kind of work knows, else a one-sentence error."""
    known = TRAIN_PRECISIONS if training else PRECISIONS
    if precision not in known:
        what = "training precision" if training else "precision"
        raise UnknownName(f"Unknown {what} {precision!r}; use one of {', '.join(known)}.")
    return precision


def training_precision_problem(precision: str) -> str | None:
    """The reason a training precision is refused (TrainConfig.validate collects these), or None."""
    if precision not in TRAIN_PRECISIONS:
        return f"mixed precision must be {' or '.join(TRAIN_PRECISIONS)}, not {precision!r}"
    return None


def bf16_slow_warning(*precisions: str) -> str | None:
    """The warning for work in bf16 on a machine without native bf16 (several times slower, other last bits)."""
    if "bf16" in precisions and not bf16_is_fast():
        return ("warning: this grid computes in bf16, which this CPU lacks natively (no AVX512-BF16 or AMX): "
                "encoding and training run several times slower than fp32 here, and bf16 sums may differ in their "
                "last bits from those of the machine that wrote the bundle.")
    return None


def note_departure(what: str, chosen: str, spec: str | None, why: str, stream=None) -> bool:
    """Where an entry point uses another precision than the default, say so on one line of stderr. Returns
    whether it did (nothing is printed where `chosen` is the default)."""
    default = default_precision(spec)
    if chosen == default:
        return False
    print(f"note: {what} in {chosen}, not the default {default} ({why})", file=stream or sys.stderr)
    return True
