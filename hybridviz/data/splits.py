"""Seeded splits of parallel groups, shared by training (validation hold-out) and debiasing (fit hold-out), and the
linked components they are drawn over (questions that share a paragraph: the hold-out and the statistics' clusters)."""

from __future__ import annotations

import numpy as np


def held_out_groups(groups, fraction: float, seed: int = 0) -> set[str]:
    """A seeded `fraction` of the distinct group ids (whole groups: all language versions together)."""
    unique = sorted(set(groups))
    if fraction <= 0:
        return set()
    rng = np.random.default_rng(seed)
    return set(rng.choice(unique, size=int(round(len(unique) * fraction)), replace=False).tolist())


def linked_components(links, nodes=()) -> dict[str, str]:
    """The connected components of an undirected graph: node -> the root naming its component.

    `links` are (a, b) pairs, applied in order: each hangs b's component under a's root (so the roots, and with
    them the seeded hold-out drawn over them, stay what they were when training/validation.py was written);
    `nodes` adds nodes without links."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    for node in nodes:
        find(node)
    return {node: find(node) for node in list(parent)}
