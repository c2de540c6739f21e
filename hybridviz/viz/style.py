"""Shared names, orders and colours, so every figure shows a sampler or a benchmark the same way."""

from __future__ import annotations

import plotly.express as px

SAMPLER_ORDER = ["base", "x-x-mono", "x-y", "hybrid"]
SAMPLER_LABELS = {"base": "base (no fine-tune)", "x-x-mono": "X-X-mono", "x-y": "X-Y", "hybrid": "hybrid"}
SAMPLER_COLORS = {"base": "#7f7f7f", "x-x-mono": "#1f77b4", "x-y": "#ff7f0e", "hybrid": "#2ca02c"}
TASK_LABELS = {"xquad-r": "XQuAD-R", "mlqa-r": "MLQA-R", "mkqa-queries": "MKQA queries",
               "mkqa-answers": "MKQA answers", "mkqa-mteb": "MKQA · MTEB MKQARetrieval protocol",
               "mkqa-answers-v1": "MKQA answers, first protocol (rewards identical strings; being replaced)"}
METRIC_LABELS = {"mAP": "mAP", "max_rank_distance": "max rank distance (lower is better)",
                 "same_lang@10": "same-language share of top 10", "rank_corr": "rank correlation",
                 "MRR": "MRR", "nDCG@10": "nDCG@10", "R@1": "R@1", "R@10": "R@10"}


def group_label(group: str) -> str:
    """'X-Y', 'base + center (training-free)', 'X-Y + lir:k=1 (fine-tuned + training-free)'."""
    if "+" not in group:
        return SAMPLER_LABELS.get(group, group)
    model, method = group.split("+", 1)
    # an index-time fit (encoders/debias.py "@index") sees the evaluation pool and test questions: transductive
    kind = "training-free, transductive" if method.endswith("@index") else "training-free"
    if model == "base":
        return f"base + {method} ({kind})"
    return f"{SAMPLER_LABELS.get(model, model)} + {method} (fine-tuned + {kind})"


def group_order(groups) -> list[str]:
    """Samplers in their fixed order, then training-free methods on the base, samplers with a method, then alpha
    points and lab runs alphabetically."""
    known = [g for g in SAMPLER_ORDER if g in groups]
    rest = [g for g in groups if g not in SAMPLER_ORDER]
    rank = {g: i for i, g in enumerate(SAMPLER_ORDER)}

    def key(g):
        model = g.split("+", 1)[0]
        return (not g.startswith("base+"), "+" not in g, rank.get(model, len(rank)), g)
    return known + sorted(rest, key=key)


def group_color(group: str) -> str:
    if group in SAMPLER_COLORS:
        return SAMPLER_COLORS[group]
    if group.startswith("base+"):  # training-free on the base: purples
        return ["#6a3d9a", "#9467bd", "#c5b0d5", "#8c564b", "#e377c2"][sum(map(ord, group)) % 5]
    palette = px.colors.qualitative.Dark24
    return palette[sum(map(ord, group)) % len(palette)]


# Kelly's colours of maximum contrast (Kelly 1965; white and near-black left out), then a few distinct extras:
# enough for MKQA's 17 languages with no two in one hue family.
LANGUAGE_PALETTE = ["#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#848482", "#008856",
                    "#E68FAC", "#0067A5", "#F99379", "#604E97", "#F6A600", "#B3446C", "#DCD300", "#882D17",
                    "#8DB600", "#654522", "#E25822", "#2B3D26", "#00CED1", "#1E1E8C"]


def language_colors(langs) -> dict[str, str]:
    """A distinct colour per language, stable for a given set of languages."""
    return {lang: LANGUAGE_PALETTE[i % len(LANGUAGE_PALETTE)] for i, lang in enumerate(sorted(langs))}


def chart_config(image_format: str = "png", name: str = "hybridviz") -> dict:
    """Plotly modebar config: the camera button downloads the figure as PNG or SVG."""
    return {"toImageButtonOptions": {"format": image_format, "filename": name, "scale": 2},
            "displaylogo": False}
