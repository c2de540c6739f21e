"""Statistics for comparing methods, with the training run (seed) as the unit of evidence.

A sampler comparison asks whether *another* training run with sampler B would beat one with sampler A, on
*other* questions like these. Two sources of chance therefore matter: the training run (seed) and the sample of
questions, where all language versions of one question form one cluster (they share their difficulty). The
functions here treat both:

- `compare_runs`: effect Δ = mean over B's runs − mean over A's runs of a headline figure (for seed-matched
  runs: the mean of the per-seed differences), a 95 % interval and a two-sided p-value from a *two-level*
  bootstrap, and how many seeds agree in sign.
- The bootstrap has two levels. Level 1 resamples each side's runs (seeds): their spread carries the seed's
  effect and each run's own question-level noise. Level 2 resamples question clusters of the run-averaged
  effect, shrunk to the estimated between-question variance of the *true* effect (its heterogeneity), so the
  within-run noise is not counted twice (Davison & Hinkley 1997, Bootstrap Methods, sec. 3.8). Seeds and
  questions are crossed here (every run answers the same questions), so one cluster resample serves both sides
  and the question difficulty they share cancels. Resampling whole clusters keeps the language versions of a
  question together.
- With 5 seeds a plain bootstrap underestimates the between-run variance (by (n−1)/n, and its percentiles
  ignore that the variance is itself estimated from 5 values), so its 95 % interval would cover ~85 %. Hence
  resampled run deviations are expanded by sqrt(n/(n−1)), and the interval and p-value use the bootstrap
  standard error with a t quantile on the runs' degrees of freedom (n_a + n_b − 2, or n − 1 against a single
  model; between two single models, e.g. the base and a training-free method on it, only the question sample
  varies: clusters − 1). Without question heterogeneity this is Student's two-sample t-test over runs (a test
  checks it against scipy), and `tests/test_stats.py` checks by simulation that the false-positive rate stays
  near 5 % under the null and that a planted difference is found.
- `seed_permutation_p`: the exact permutation test of seed labels (scipy), shown beside it as a check; with
  5 + 5 runs it cannot go below 2/252 ≈ .008.
- `paired_tests` / `sign_flip_p`: the query-level paired test of two *particular checkpoints* (seed-averaged
  per query). It answers a narrower question and is labelled "per checkpoint" wherever it is shown.
- Multiplicity: `holm` within the small primary family named up front, `benjamini_hochberg` (scipy) for
  everything else, which is labelled secondary.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass

import numpy as np

from hybridviz.metrics import LOWER_IS_BETTER

# scipy.stats is imported by the functions that test (~1 s): every page imports this module through the bundle
# reader, and a page's cold first paint would otherwise wait for it while reading a precomputed summary.

CONFIDENCE = 0.95


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of per-seed figures."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            "n": int(arr.size)}


# ------------------------------------------------------------------------------------------ clusters


def cluster_of(query_id: str) -> str:
    """The parallel question a query belongs to: query ids are "<lang>:<question id>"."""
    return query_id.split(":", 1)[1] if ":" in query_id else query_id


def cluster_matrix(runs: list[dict[str, float]]) -> tuple[np.ndarray, list[str]]:
    """(runs x clusters) matrix of each run's mean value per question cluster, over the queries every run has.

    On balanced benchmarks (every question in every language, as in XQuAD-R and the MKQA slices) the mean
    over clusters equals the language macro-average the headline reports.
    """
    if not runs:
        raise ValueError("no runs")
    common = set(runs[0]).intersection(*runs[1:]) if len(runs) > 1 else set(runs[0])
    queries, cols, clusters = _cluster_layout(frozenset(common))
    counts = np.bincount(cols, minlength=len(clusters)).astype(float)
    out = np.empty((len(runs), len(clusters)))
    values = operator.itemgetter(*queries) if len(queries) > 1 else lambda run: [run[q] for q in queries]
    for r, run in enumerate(runs):
        sums = np.bincount(cols, weights=np.array(values(run), dtype=float), minlength=len(clusters))
        out[r] = sums / counts
    return out, clusters


@functools.lru_cache(maxsize=8)
def _cluster_layout(common: frozenset) -> tuple[list[str], np.ndarray, list[str]]:
    """(queries in order, each one's cluster index, clusters in order): a bundle's comparisons of one task share
    their query set, so this is computed once per set."""
    clusters = sorted({cluster_of(q) for q in common})
    index = {c: i for i, c in enumerate(clusters)}
    queries = sorted(common)
    return queries, np.array([index[cluster_of(q)] for q in queries], dtype=np.int64), clusters


# ------------------------------------------------------------------------------------------ run-level test


def residual_mean_square(x: np.ndarray) -> float:
    """Run x question interaction mean square of one side's (runs x clusters) table (0 for a single run)."""
    n, c = x.shape
    if n < 2 or c < 2:
        return 0.0
    res = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    return float((res ** 2).sum() / ((n - 1) * (c - 1)))


def question_heterogeneity(a: np.ndarray, b: np.ndarray) -> float:
    """Moment estimate of tau^2, the variance over question clusters of the true effect b − a.

    The per-cluster difference of run means also carries each run's own question-level noise (sigma_e^2 / n per
    side), which the run-level resampling already counts; it is subtracted so that nothing is counted twice.
    """
    d = b.mean(axis=0) - a.mean(axis=0)
    if d.size < 2:
        return 0.0
    noise = residual_mean_square(a) / a.shape[0] + residual_mean_square(b) / b.shape[0]
    return max(0.0, float(d.var(ddof=1)) - noise)


def _run_level(values: np.ndarray, rng: np.random.Generator, k: int) -> np.ndarray:
    """k replicates of the mean of `values` resampled with replacement, deviations expanded by sqrt(n/(n-1))."""
    n = values.size
    if n == 1:
        return np.full(k, values[0])
    centre = values.mean()
    picks = values[rng.integers(0, n, size=(k, n))]
    return centre + math.sqrt(n / (n - 1)) * (picks.mean(axis=1) - centre)


def two_level_bootstrap(a: np.ndarray, b: np.ndarray, a_values=None, b_values=None, n_resamples: int = 4000,
                        seed: int = 0, chunk: int = 1000) -> np.ndarray:
    """Bootstrap replicates of mean(b runs) − mean(a runs), resampling runs and question clusters.

    `a`, `b`: (runs x clusters) matrices over the same clusters; `*_values`: the runs' headline figures
    (default: the row means). Level 1 resamples each side's runs (deviations expanded by sqrt(n/(n−1))). Level 2
    resamples the clusters of the run-averaged effect, shrunk to the estimated heterogeneity tau^2 (Davison &
    Hinkley 1997, sec. 3.8: adjust each stage's residuals to its variance component, so the within-run noise
    that level 1 already carries is not counted again). A one-run side (the base) adds no run-level term.
    """
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError("both sides need the same clusters")
    a_values = a.mean(axis=1) if a_values is None else np.asarray(a_values, float)
    b_values = b.mean(axis=1) if b_values is None else np.asarray(b_values, float)
    d = b.mean(axis=0) - a.mean(axis=0)
    spread = float(d.var(ddof=1)) if d.size > 1 else 0.0
    shrink = math.sqrt(question_heterogeneity(a, b) / spread) if spread > 0 else 0.0
    effects = shrink * (d - d.mean())
    rng = np.random.default_rng(seed)
    n_clusters = effects.size
    out = []
    for start in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - start)
        clusters = effects[rng.integers(0, n_clusters, size=(k, n_clusters))].mean(axis=1)
        out.append(_run_level(b_values, rng, k) - _run_level(a_values, rng, k) + clusters)
    return np.concatenate(out)


def run_level_possible(a_seeds: list, b_seeds: list) -> bool:
    """Whether two methods' runs support a run-level comparison. Not when each side is one run and one of them
    was trained (has a seed): the seed's effect cannot be told from the checkpoint's, so only the per-checkpoint
    test describes them (a bundle's first seed, say). Two untrained single models (the base, a training-free
    method on it) are deterministic: only the questions vary, and the cluster test is the run-level one."""
    return not (len(a_seeds) == 1 and len(b_seeds) == 1 and (a_seeds[0] is not None or b_seeds[0] is not None))


def run_degrees_of_freedom(n_a: int, n_b: int, clusters: int) -> int:
    if n_a > 1 and n_b > 1:
        return n_a + n_b - 2
    if n_a == n_b == 1:
        # two single models (the base and a training-free method on it): no run variance to estimate, only the
        # question sample -- the paired test over clusters, on the clusters' degrees of freedom
        return max(clusters - 1, 1)
    return max(n_a, n_b) - 1


def seed_permutation_p(a_values, b_values) -> float | None:
    """Exact two-sided permutation test of run labels (scipy), None when a side has one run."""
    a_values, b_values = np.asarray(a_values, float), np.asarray(b_values, float)
    if a_values.size < 2 or b_values.size < 2:
        return None
    if np.ptp(np.concatenate([a_values, b_values])) == 0:
        return 1.0
    from scipy import stats
    res = stats.permutation_test((b_values, a_values), lambda x, y: np.mean(x) - np.mean(y),
                                 permutation_type="independent", alternative="two-sided", n_resamples=np.inf)
    return float(res.pvalue)


@dataclass
class Comparison:
    delta: float  # mean of b minus mean of a, in the metric's units
    ci_low: float
    ci_high: float
    p: float  # two-sided, run as the unit (bootstrap SE, t on the runs' degrees of freedom)
    se: float
    df: int
    p_permutation: float | None
    seed_deltas: list[float]
    seeds_agree: int  # seeds whose difference has the sign of delta
    n_a: int
    n_b: int
    clusters: int

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def compare_runs(a_runs: list[dict[str, float]], b_runs: list[dict[str, float]], a_values: list[float],
                 b_values: list[float], a_seeds: list | None = None, b_seeds: list | None = None,
                 n_resamples: int = 4000, seed: int = 0) -> Comparison:
    """Method B against method A on one headline cell, the run as the unit.

    `*_runs`: per run, query id -> per-query value (for the cluster resampling); `*_values`: per run, the
    headline figure (the language macro-average); `*_seeds`: the runs' seeds (seed-matched differences).
    """
    if not a_runs or not b_runs or len(a_runs) != len(a_values) or len(b_runs) != len(b_values):
        raise ValueError("each side needs one per-query table and one headline value per run")
    x, clusters = cluster_matrix(list(a_runs) + list(b_runs))
    xa, xb = x[: len(a_runs)], x[len(a_runs):]
    a_values, b_values = np.asarray(a_values, float), np.asarray(b_values, float)
    delta = float(b_values.mean() - a_values.mean())
    replicates = two_level_bootstrap(xa, xb, a_values, b_values, n_resamples=n_resamples, seed=seed)
    se = float(replicates.std(ddof=1))
    df = run_degrees_of_freedom(len(a_runs), len(b_runs), len(clusters))
    from scipy import stats
    t_crit = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))
    if se > 0:
        p = float(2 * stats.t.sf(abs(delta) / se, df))
    else:
        p = 1.0 if delta == 0 else 0.0
    deltas = seed_deltas(dict(zip(a_seeds or range(len(a_values)), a_values)),
                         dict(zip(b_seeds or range(len(b_values)), b_values)))
    agree = sum(1 for d in deltas if np.sign(d) == np.sign(delta) and d != 0)
    return Comparison(delta=delta, ci_low=delta - t_crit * se, ci_high=delta + t_crit * se, p=p, se=se, df=df,
                      p_permutation=seed_permutation_p(a_values, b_values), seed_deltas=deltas,
                      seeds_agree=agree, n_a=len(a_runs), n_b=len(b_runs), clusters=len(clusters))


def seed_deltas(a: dict, b: dict) -> list[float]:
    """Per-seed differences b − a; a one-model side (the base) is compared with every seed of the other."""
    a = {s: v for s, v in a.items() if v is not None}
    b = {s: v for s, v in b.items() if v is not None}
    if not a or not b:
        return []
    if len(a) == 1:
        (va,) = a.values()
        return [float(b[s] - va) for s in sorted(b, key=str)]
    if len(b) == 1:
        (vb,) = b.values()
        return [float(vb - a[s]) for s in sorted(a, key=str)]
    return [float(b[s] - a[s]) for s in sorted(set(a) & set(b), key=str)]


# ------------------------------------------------------------------------------------------ multiplicity


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    p = np.asarray(pvalues, float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate), in the input order (scipy)."""
    p = np.asarray(pvalues, float)
    from scipy import stats
    return stats.false_discovery_control(p, method="bh") if p.size else p


# ------------------------------------------------------------------------------------------ direction, marks


def direction(delta: float, metric: str) -> str:
    """'better' / 'worse' / 'equal' for b against a, by the metric's direction (lower is better for bias)."""
    if delta == 0 or not np.isfinite(delta):
        return "equal"
    improves = delta < 0 if metric in LOWER_IS_BETTER else delta > 0
    return "better" if improves else "worse"


def stars(p: float | None) -> str:
    if p is None:
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def mark(p_adjusted: float | None, delta: float, metric: str) -> str:
    """▲ (better) or ▼ (worse) with stars for an adjusted p < .05; '' otherwise."""
    s = stars(p_adjusted)
    if not s:
        return ""
    d = direction(delta, metric)
    return ("▲" if d == "better" else "▼" if d == "worse" else "") + s


# ------------------------------------------------------------------------------------------ per checkpoint


def paired_tests(a: np.ndarray, b: np.ndarray, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Per checkpoint: paired tests of b − a over the same queries (t-test and sign-flip randomisation).

    `a`, `b`: one value per query (for several seeds, the mean over seeds of each query's value). Queries are
    treated as independent: this describes these checkpoints, not the samplers.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError("paired tests need two equally long arrays of at least two queries")
    diff = b - a
    if not np.any(diff):
        return {"n": int(a.size), "mean_a": float(a.mean()), "mean_b": float(b.mean()), "delta": 0.0,
                "t": 0.0, "p_ttest": 1.0, "p_randomisation": 1.0}
    from scipy import stats
    t = stats.ttest_rel(b, a)
    return {"n": int(a.size), "mean_a": float(a.mean()), "mean_b": float(b.mean()), "delta": float(diff.mean()),
            "t": float(t.statistic), "p_ttest": float(t.pvalue),
            "p_randomisation": sign_flip_p(diff, n_resamples, seed)}


def sign_flip_p(diff: np.ndarray, n_resamples: int = 10_000, seed: int = 0, chunk: int = 500) -> float:
    """Two-sided paired randomisation test of mean(diff) = 0: flip each query's sign at random.

    The same test as `scipy.stats.permutation_test(..., permutation_type="samples")` (a test checks they
    agree), done as chunked matrix products: 13k queries x 10k resamples take a second, not half a minute.
    The p-value counts the observed statistic as one of the resamples, so it is never 0.
    """
    rng = np.random.default_rng(seed)
    observed = abs(diff.mean())
    extreme = 0
    for start in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - start)
        signs = rng.integers(0, 2, size=(k, diff.size), dtype=np.int8) * 2 - 1
        extreme += int(np.sum(np.abs(signs @ diff) / diff.size >= observed - 1e-12))
    return (extreme + 1) / (n_resamples + 1)
