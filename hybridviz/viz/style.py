"""Shared names, orders and colours, so every figure shows a sampler or a benchmark the same way."""

from __future__ import annotations

SAMPLER_ORDER = ["base", "x-x-mono", "x-y", "hybrid"]
SAMPLER_LABELS = {"base": "base (no fine-tune)", "x-x-mono": "X-X-mono", "x-y": "X-Y", "hybrid": "hybrid"}
SAMPLER_COLORS = {"base": "#7f7f7f", "x-x-mono": "#1f77b4", "x-y": "#ff7f0e", "hybrid": "#2ca02c"}
TASK_LABELS = {"xquad-r": "XQuAD-R", "mlqa-r": "MLQA-R", "mkqa-queries": "MKQA queries",
               "mkqa-answers": "MKQA answers", "mkqa-mteb": "MKQA · MTEB MKQARetrieval protocol",
               "mkqa-answers-v1": "MKQA answers, first protocol (rewards identical strings; being replaced)"}
METRIC_LABELS = {"mAP": "mAP", "max_rank_distance": "max rank distance (lower is better)",
                 "same_lang@10": "same-language share of top 10", "rank_corr": "rank correlation",
                 "MRR": "MRR", "nDCG@10": "nDCG@10", "R@1": "R@1", "R@10": "R@10"}
# measured over a pool of every language only: offered for the multilingual setting alone
MULTI_ONLY_METRICS = ("max_rank_distance", "same_lang@10", "rank_corr")


def setting_metrics(setting: str) -> list[str]:
    """The metrics a setting is shown by: the retrieval metrics, then (multilingual) the bias measures."""
    shown = [m for m in METRIC_LABELS if m not in MULTI_ONLY_METRICS]
    return shown + (list(MULTI_ONLY_METRICS) if setting == "multi" else [])


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


# a training-free method (encoders/debias.py) on the base: a hue of its own, none a sampler's; "@index" (fitted on
# the evaluation pool) a darker shade of its method's hue
METHOD_COLORS = {"center": "#9467bd", "lir": "#e377c2", "lsar": "#8c564b", "leace": "#bcbd22"}
METHOD_INDEX_COLORS = {"center": "#4b2a7b", "lir": "#a3307f", "lsar": "#4e2f28", "leace": "#6b6b10"}
# a sampler with a training-free method on top: the light shade of the sampler's own hue (tab20's pairs)
SAMPLER_LIGHT_COLORS = {"base": "#c7c7c7", "x-x-mono": "#9ecae9", "x-y": "#ffbb78", "hybrid": "#98df8a"}
OTHER_COLORS = ["#17becf", "#d62728", "#393b79", "#e7ba52", "#843c39", "#637939", "#7b4173", "#3182bd"]


def group_color(group: str) -> str:
    """One colour per method, the same in every figure: the four samplers' own; a training-free method on the base
    its method's hue; a fine-tune with a method on top the light shade of its sampler; the rest (α points, lab
    runs) a colour of their own from a palette no sampler or method uses."""
    if group in SAMPLER_COLORS:
        return SAMPLER_COLORS[group]
    model, _, method = group.partition("+")
    name = method.split(":")[0].removesuffix("@index")
    if model == "base" and name in METHOD_COLORS:
        return (METHOD_INDEX_COLORS if method.endswith("@index") else METHOD_COLORS)[name]
    if method and model in SAMPLER_LIGHT_COLORS:
        return SAMPLER_LIGHT_COLORS[model]
    return OTHER_COLORS[sum(map(ord, group)) % len(OTHER_COLORS)]


def legend_below(fig, rows: int = 2) -> None:
    """The legend as rows under the plot (long method names and many methods fit the page's width), the plot made
    taller by as much."""
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0,
                              "title": {"text": ""}},
                      height=(fig.layout.height or 420) + 28 * rows, margin={"b": 40 + 28 * rows})


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


# a comparison's verdict (experiments/stats.py VERDICTS), read from the named method's side: one colour each,
# distinguishable with red-green colour blindness (blue / vermilion from Okabe & Ito, then purple and greys)
VERDICT_COLORS = {"better": "#0072B2", "worse": "#D55E00", "equivalent": "#009E73",
                  "not equivalent": "#CC79A7", "undetermined": "#9a9a9a"}
