"""Seeded splits of parallel groups, shared by training (validation hold-out) and debiasing (fit hold-out)."""

from __future__ import annotations

import numpy as np


def held_out_groups(groups, fraction: float, seed: int = 0) -> set[str]:
    """A seeded `fraction` of the distinct group ids (whole groups: all language versions together)."""
    unique = sorted(set(groups))
    if fraction <= 0:
        return set()
    rng = np.random.default_rng(seed)
    return set(rng.choice(unique, size=int(round(len(unique) * fraction)), replace=False).tolist())
