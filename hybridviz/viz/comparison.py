"""Sampler comparison figures: per-seed dots with mean +/- std, per-language bars, the alpha sweep."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hybridviz.metrics import LOWER_IS_BETTER
from hybridviz.results.store import ModelResult
from hybridviz.tasks import SETTINGS, is_seen
from hybridviz.viz.style import METRIC_LABELS, TASK_LABELS, group_color, group_label, group_order, legend_below


def macro_value(r: ModelResult, setting: str, metric: str) -> float | None:
    if metric == "rank_corr":
        return r.metrics.get("settings", {}).get("multi", {}).get("mean_rank_correlation", {}).get("macro")
    return r.macro(setting, metric)


def not_applicable(results: list[ModelResult], tasks: list[str], setting: str) -> dict[str, str]:
    """Benchmark -> why it has no values in this setting, as its evaluations recorded it (tasks.setting_applicable:
    MKQA queries has no monolingual setting, MTEB's MKQARetrieval no cross-lingual or multilingual one)."""
    reasons = {}
    for r in results:
        reason = r.metrics.get("settings", {}).get(setting, {}).get("not_applicable")
        if r.task in tasks and reason:
            reasons.setdefault(r.task, reason.removeprefix("not applicable: "))
    return reasons


def seed_frame(results: list[ModelResult], tasks: list[str], setting: str, metric: str) -> pd.DataFrame:
    """One row per model and task: its macro value (the figures behind the dots)."""
    rows = [{"task": r.task, "group": r.group, "label": r.label, "seed": r.seed,
             "value": macro_value(r, setting, metric)} for r in results if r.task in tasks]
    frame = pd.DataFrame(rows, columns=["task", "group", "label", "seed", "value"])
    return frame.dropna(subset=["value"])


def sampler_dots(frame: pd.DataFrame, setting: str, metric: str) -> go.Figure:
    """A panel per benchmark: one dot per seed, a bar at the mean with +/- one std."""
    tasks = list(dict.fromkeys(frame["task"]))
    fig = make_subplots(rows=1, cols=max(len(tasks), 1), subplot_titles=[TASK_LABELS.get(t, t) for t in tasks])
    for col, task in enumerate(tasks, start=1):
        sub = frame[frame["task"] == task]
        for group in group_order(set(sub["group"])):
            g = sub[sub["group"] == group]
            color = group_color(group)
            std = g["value"].std(ddof=1) if len(g) > 1 else 0.0
            fig.add_trace(go.Bar(x=[group], y=[g["value"].mean()], marker_color=color, opacity=0.35,
                                 error_y={"type": "data", "array": [std], "visible": len(g) > 1},
                                 name=group, legendgroup=group, showlegend=col == 1,
                                 hovertemplate=f"{group}<br>mean %{{y:.4f}} ± {std:.4f} (n={len(g)})<extra></extra>"),
                          row=1, col=col)
            fig.add_trace(go.Scatter(x=[group] * len(g), y=g["value"], mode="markers",
                                     marker={"color": color, "size": 9, "line": {"width": 1, "color": "white"}},
                                     text=g["label"], showlegend=False, legendgroup=group,
                                     hovertemplate="%{text}: %{y:.4f}<extra></extra>"), row=1, col=col)
        low, high = sub["value"].min(), sub["value"].max()
        pad = (high - low) * 0.6 + 1e-3
        fig.update_yaxes(range=[max(low - pad, 0), high + pad], row=1, col=col)
    fig.update_layout(title=f"{setting} · {METRIC_LABELS.get(metric, metric)} (dots: seeds; bar: mean ± std)",
                      barmode="overlay", height=420, margin={"t": 80})
    legend_below(fig, rows=-(-len(set(frame["group"])) // 4))
    return fig


def per_language_frame(seen: list[str], results: list[ModelResult], task: str, setting: str,
                       metric: str = "mAP") -> pd.DataFrame:
    """Mean +/- std over seeds of each query language's value, with the language marked seen / unseen."""
    rows = []
    for r in results:
        if r.task != task:
            continue
        per = r.metrics.get("settings", {}).get(setting, {}).get("per_language", {})
        for lang, values in per.items():
            if values.get(metric) is not None:
                rows.append({"group": r.group, "label": r.label, "lang": lang, "value": values[metric]})
    frame = pd.DataFrame(rows, columns=["group", "label", "lang", "value"])
    if frame.empty:
        return frame.assign(mean=[], std=[], n=[], seen=[])
    agg = frame.groupby(["group", "lang"])["value"].agg(["mean", "std", "count"]).reset_index()
    agg = agg.rename(columns={"count": "n"}).fillna({"std": 0.0})
    agg["seen"] = agg["lang"].map(lambda lang: "seen in training" if is_seen(lang, seen) else "unseen")
    return agg


def per_language_bars(frame: pd.DataFrame, task: str, setting: str, metric: str) -> go.Figure:
    order = group_order(set(frame["group"]))
    fig = px.bar(frame.sort_values(["seen", "lang"]), x="lang", y="mean", color="group", error_y="std",
                 barmode="group", facet_col="seen", category_orders={"group": order},
                 color_discrete_map={g: group_color(g) for g in order}, hover_data=["n"],
                 labels={"lang": "query language", "mean": METRIC_LABELS.get(metric, metric), "group": "sampler"})
    fig.for_each_trace(lambda t: t.update(name=group_label(t.name)))
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))  # "seen in training", "unseen"
    fig.update_xaxes(matches=None)
    fig.update_yaxes(rangemode="tozero")  # a bar's length is its value: every bar starts at zero
    fig.update_layout(title=f"{TASK_LABELS.get(task, task)} · {setting} · {metric} per query language "
                            "(mean ± std over seeds)", height=430)
    legend_below(fig, rows=-(-len(order) // 4))
    return fig


def alpha_line(points: list[dict]) -> go.Figure:
    """The alpha sweep: multilingual mAP (left) and max rank distance (right) against alpha."""
    frame = pd.DataFrame(points)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=frame["alpha"], y=frame["mAP"], mode="lines+markers", name="multi mAP",
                             text=frame["label"], hovertemplate="α=%{x}: mAP %{y:.4f} (%{text})<extra></extra>"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=frame["alpha"], y=frame["max_rank_distance"], mode="lines+markers",
                             name="max rank distance", line={"dash": "dot"},
                             hovertemplate="α=%{x}: rank distance %{y:.1f}<extra></extra>"), secondary_y=True)
    fig.update_xaxes(title="α (probability of an X-X-mono batch)", tickvals=list(frame["alpha"]))
    fig.update_yaxes(title_text="multilingual mAP", secondary_y=False)
    fig.update_yaxes(title_text="max rank distance (lower is better)", secondary_y=True)
    fig.update_layout(title="α sweep on XQuAD-R (one seed): α=0 is X-Y, α=1 is X-X-mono", height=400)
    return fig


def step_budget_set_up(state: dict) -> str:
    """What a step-budget check trained, for its chart's title: its recorded set-up, or (a check from before the
    set-up was recorded) the command and commit that made it, said as such."""
    cfg = state.get("base_config")
    if cfg:
        return (f"{cfg['model']} · {cfg['train_data']} · batch {cfg['batch_size']} · "
                f"lr {cfg['learning_rate']:g}")
    prov = state.get("provenance", {})
    commit = (prov.get("commit") or "")[:7]
    return (f"'{prov.get('command', 'python -m hybridviz budget')}' with its defaults"
            + (f" at commit {commit}" if commit else "") + " (settings not recorded then)")


def step_budget_lines(frame: pd.DataFrame, seed: int | None = None, set_up: str | None = None) -> go.Figure:
    """Held-out mAP of each sampler after each step budget, one panel per setting."""
    order = group_order(set(frame["sampler"]))
    fig = px.line(frame, x="steps", y="mAP", color="sampler", facet_col="setting", markers=True,
                  facet_col_spacing=0.07, category_orders={"sampler": order, "setting": list(SETTINGS)},
                  color_discrete_map={g: group_color(g) for g in order}, hover_data=["run_id"])
    fig.for_each_trace(lambda t: t.update(name=group_label(t.name)))
    # each panel its own scale, with few short ticks, and room between panels for them
    fig.update_yaxes(matches=None, showticklabels=True, nticks=5, tickformat=".3f")
    fig.update_xaxes(tickvals=sorted(frame["steps"].unique()), title="training steps")
    fig.for_each_annotation(lambda a: a.update(text=a.text.replace("setting=", "") + " mAP"))
    seed_text = f", seed {seed}" if seed is not None else ""
    fig.update_layout(title=f"Step budget: held-out groups of the training data (20 %, never trained on){seed_text}"
                            + (f"<br><sup>{set_up}</sup>" if set_up else ""), height=380)
    return fig


FOREST_SETTINGS = {"mono": "mono", "cross": "cross", "multi": "multi"}
DIRECTION_COLORS = {"better": "#1a9850", "worse": "#d73027", "none": "#7f7f7f"}


def forest_frame(summary: dict, a: str, b: str, metric: str, alpha: float) -> pd.DataFrame:
    """One row per benchmark x setting: Δ (b − a) of `metric` with its interval, direction and adjusted p.

    The reading says better / worse only where the family-adjusted p is below `alpha` (the marks' and the
    verdict's rule, experiments.verdict.ALPHA): an interval that alone excludes 0 is not a reading after the
    multiplicity correction."""
    rows = []
    for t in summary.get("tests", []):
        if t["metric"] != metric or {t["a"], t["b"]} != {a, b} or "verdict" not in t:
            continue  # (no verdict: a summary from before the analysis plan's statistics)
        sign = 1 if (t["a"], t["b"]) == (a, b) else -1
        low, high = sorted((sign * t["ci_low"], sign * t["ci_high"]))
        detectable = t["verdict"] in ("better", "worse") and t["p_adjusted"] < alpha
        d = t["direction"] if sign == 1 else {"better": "worse", "worse": "better"}.get(t["direction"], "equal")
        digits = 1 if metric == "max_rank_distance" else 4
        within = "" if t.get("margin") is None else f" ±{t['margin']:.{digits}f}"
        equivalence = {"equivalent": f"equivalent within{within}",
                       "not equivalent": f"not equivalent within{within}"}.get(
            t["verdict"], f"undetermined (MDE {t['mde']:.{digits}f})" if not detectable else "")
        rows.append({"benchmark": TASK_LABELS.get(t["task"], t["task"]), "setting": t["setting"],
                     "row": f"{TASK_LABELS.get(t['task'], t['task'])} · {t['setting']}", "delta": sign * t["delta"],
                     "ci_low": low, "ci_high": high, "p_adjusted": t["p_adjusted"], "correction": t["correction"],
                     "pairs_agree": f"{t['pairs_agree']}/{t['n_pairs']} run pairs",
                     "reading": d if detectable else "no detectable difference", "equivalence": equivalence})
    return pd.DataFrame(rows, columns=["benchmark", "setting", "row", "delta", "ci_low", "ci_high", "p_adjusted",
                                       "correction", "pairs_agree", "reading", "equivalence"])


def forest_plot(frame: pd.DataFrame, a: str, b: str, metric: str) -> go.Figure:
    """Δ with its 95 % interval per benchmark x setting, a zero line, colour = better / worse / undetectable."""
    fig = go.Figure()
    for reading, color in (("better", DIRECTION_COLORS["better"]), ("worse", DIRECTION_COLORS["worse"]),
                           ("no detectable difference", DIRECTION_COLORS["none"])):
        part = frame[frame["reading"] == reading]
        if part.empty:
            continue
        name = {"better": f"{group_label(b)} better", "worse": f"{group_label(b)} worse"}.get(
            reading, reading)
        fig.add_trace(go.Scatter(
            x=part["delta"], y=part["row"], mode="markers", name=name, marker={"color": color, "size": 11},
            error_x={"type": "data", "symmetric": False, "array": part["ci_high"] - part["delta"],
                     "arrayminus": part["delta"] - part["ci_low"], "color": color, "thickness": 2},
            customdata=part[["ci_low", "ci_high", "p_adjusted", "correction", "pairs_agree"]].values,
            hovertemplate="%{y}<br>Δ %{x:+.4f} (95 % CI %{customdata[0]:+.4f} to %{customdata[1]:+.4f})<br>"
                          "adjusted p = %{customdata[2]:.3g} (%{customdata[3]})<br>agreeing: "
                          "%{customdata[4]}<extra></extra>"))
    fig.add_vline(x=0, line_color="black", line_width=1)
    lower = " (lower is better)" if metric in LOWER_IS_BETTER else ""
    fig.update_layout(title=f"{group_label(b)} − {group_label(a)}: Δ {METRIC_LABELS.get(metric, metric)}"
                            f"{lower}, 95 % interval, run as the unit",
                      xaxis_title=f"Δ {metric} (b − a)", yaxis={"autorange": "reversed", "title": ""},
                      height=160 + 45 * max(len(frame), 1), legend={"orientation": "h", "y": -0.25})
    return fig


def setup_forest_frame(bundles, a: str, b: str, metric: str, alpha: float, task: str | None = None,
                       setting: str | None = None, names: list[str] | None = None) -> pd.DataFrame:
    """forest_frame's rows (those of one benchmark x setting where given), once per bundle (set-up), labelled by
    what it trained (`names`: each bundle's name, its folder's name by default)."""
    frames = []
    for i, bundle in enumerate(bundles):
        spec = bundle.manifest.get("spec", {})
        frame = forest_frame(bundle.summary, a, b, metric, alpha)
        if task is not None:
            frame = frame[frame["benchmark"] == TASK_LABELS.get(task, task)]
        if setting is not None:
            frame = frame[frame["setting"] == setting]
        frame = frame.copy()
        name = names[i] if names else bundle.path.name
        frame["row"] = (f"{name}: {spec.get('model')} · {spec.get('train_data', 'mlqa-r')} · batch "
                        f"{spec.get('batch_size')} · {spec.get('steps')} steps")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _segments(mask) -> list[list[int]]:
    """The runs of consecutive True positions in `mask` (a list of booleans), as lists of positions."""
    out, current = [], []
    for i, value in enumerate(mask):
        if value:
            current.append(i)
        elif current:
            out, current = out + [current], []
    return out + [current] if current else out


def learning_curve_bands(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """Held-out mAP along training, one panel per setting: per sampler the mean over the seeds that reached each
    step (line) and the seeds' range (band); each seed's best step (the kept checkpoint) as a marker on its own
    curve.

    Early-stopped runs end at different steps, so a sampler's seeds thin out along the run: the line is solid
    where every seed is present and dashed where some have stopped (the mean of those left; the hover says how
    many of how many), and the band is drawn only where two or more seeds remain (one seed has no range).

    `frame`: one row per (sampler, seed, step) with mono_mAP, cross_mAP, multi_mAP and a boolean `best`."""
    settings = [s for s in ("mono", "cross", "multi") if f"{s}_mAP" in frame]
    fig = make_subplots(rows=1, cols=len(settings), subplot_titles=[f"held-out {s} mAP" for s in settings],
                        horizontal_spacing=0.07)
    order = group_order(set(frame["sampler"]))
    thinned = False
    for col, setting in enumerate(settings, start=1):
        y = f"{setting}_mAP"
        for sampler in order:
            part = frame[frame["sampler"] == sampler]
            n = part["seed"].nunique()
            stats = part.dropna(subset=[y]).groupby("step")[y].agg(["mean", "min", "max", "count"]).reset_index()
            stats["of"] = n
            steps, count = list(stats["step"]), list(stats["count"])
            color = group_color(sampler)
            for seg in _segments([c >= 2 for c in count]):
                fig.add_trace(go.Scatter(x=[steps[i] for i in seg] + [steps[i] for i in seg[::-1]],
                                         y=[stats["max"][i] for i in seg] + [stats["min"][i] for i in seg[::-1]],
                                         fill="toself", fillcolor=color, opacity=0.18, line={"width": 0},
                                         hoverinfo="skip", showlegend=False, legendgroup=sampler),
                              row=1, col=col)
            partial = [c < n for c in count]
            thinned = thinned or any(partial)
            near = [p or (i > 0 and partial[i - 1]) or (i + 1 < len(partial) and partial[i + 1])
                    for i, p in enumerate(partial)]  # a dashed stretch starts at the last full step
            hover = (f"{group_label(sampler)} · step %{{x}}<br>mean %{{y:.4f}} over %{{customdata[2]}} of "
                     "%{customdata[3]} seeds (range %{customdata[0]:.4f} to %{customdata[1]:.4f})<extra></extra>")
            for keep, dash, first in (([not p for p in partial], "solid", True), (near, "dash", False)):
                if not any(keep):
                    continue
                fig.add_trace(go.Scatter(x=steps, y=[m if k else None for m, k in zip(stats["mean"], keep)],
                                         mode="lines+markers", line={"color": color, "width": 2, "dash": dash},
                                         marker={"size": 5, "symbol": "circle" if first else "circle-open"},
                                         name=group_label(sampler), legendgroup=sampler,
                                         showlegend=col == 1 and (first or all(partial)),
                                         customdata=stats[["min", "max", "count", "of"]].values,
                                         hovertemplate=hover), row=1, col=col)
            best = part[part["best"]]
            if not best.empty:
                fig.add_trace(go.Scatter(x=best["step"], y=best[y], mode="markers", showlegend=False,
                                         legendgroup=sampler, marker={"color": color, "size": 9, "symbol": "star"},
                                         customdata=best[["seed"]].values,
                                         hovertemplate=f"{group_label(sampler)}, seed %{{customdata[0]}}: best "
                                                       "checkpoint at step %{x}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(title_text="training steps", row=1, col=col)
    n = frame.groupby("sampler")["seed"].nunique()
    seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    lines = [title] if title else []
    lines.append(f"<sup>held-out paragraphs: mean over {seeds} seed(s), band = the seeds' range; ★ = each run's best "
                 "checkpoint</sup>")
    if thinned:
        lines.append("<sup>dashed where some seeds have stopped (the mean of those left); band only where 2 or more "
                     "remain</sup>")
    fig.update_layout(title="<br>".join(lines), height=440, margin={"t": 60 + 22 * len(lines)},
                      legend={"orientation": "h", "y": -0.2})
    return fig
