"""Statistics for comparing methods, with the training run (seed) as the unit of evidence.

A sampler comparison asks whether *another* training run with sampler B would beat one with sampler A, on
*other* questions like these. Two sources of chance therefore matter: the training run (seed) and the sample of
questions, where all language versions of one question form one cluster (they share their difficulty). The
functions here treat both:

- `compare_runs`: effect Δ = mean over B's runs − mean over A's runs of a headline figure, a 95 % interval and
  a two-sided p-value from a *two-level* bootstrap, how many of the n_a x n_b run pairs agree in sign (unpaired,
  as the test: the analysis plan, experiments/plan.py, says why), the minimum detectable effect and an
  equivalence test (TOST) against the plan's margin.
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
- `seed_permutation_p`: the exact permutation test of run labels (scipy); with 5 + 5 runs it cannot go below
  2/252 ≈ .008. The marks use `marks_p` = max(t-based p, permutation p), so they never claim more than the
  permutation of the runs can carry; with a one-run side (the base) there is no permutation test and the
  t-based p stands.
- Clusters: the question by default; `paragraph_clusters` joins the questions that share a paragraph of the
  pool (XQuAD-R, MLQA-R), as the plan's cluster level says.
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


def cluster_of(query_id: str, clusters: "ClusterMap | dict | None" = None) -> str:
    """The cluster a query belongs to: by default the parallel question (query ids are "<lang>:<question id>");
    with a mapping (`paragraph_clusters`), the mapping's cluster, the question for a query it lacks."""
    if clusters is not None:
        found = (clusters.of if isinstance(clusters, ClusterMap) else clusters).get(query_id)
        if found is not None:
            return found
    return query_id.split(":", 1)[1] if ":" in query_id else query_id


@dataclass(frozen=True, eq=False)
class ClusterMap:
    """query id -> cluster id for one task, at a named level ("paragraph"); hashed by identity, so a task's
    cluster layout is computed once per map."""
    level: str
    of: dict


def paragraph_clusters(relevant: dict[str, list[str]]) -> ClusterMap:
    """Paragraph-level clusters of XQuAD-R / MLQA-R queries from their relevant items' candidate ids
    ("<lang>:<paragraph index>:<sentence index>"): the connected components of the graph linking each question
    (all language versions of it: the query id's "<question id>") with the paragraphs holding its relevant
    sentences, so questions that share a paragraph, in any language, fall into one cluster. A query without
    relevant items stays its question's cluster."""
    from hybridviz.data.splits import linked_components

    root = linked_components([("q:" + cluster_of(query), "p:" + cand.rsplit(":", 1)[0])
                              for query, items in relevant.items() for cand in items],
                             ["q:" + cluster_of(query) for query in relevant])
    components: dict[str, list[str]] = {}
    for node, r in root.items():
        if node.startswith("p:"):
            components.setdefault(r, []).append(node[2:])
    names = {r: "paragraph:" + min(paragraphs) for r, paragraphs in components.items()}
    return ClusterMap("paragraph", {q: names.get(root["q:" + cluster_of(q)], cluster_of(q)) for q in relevant})


def cluster_matrix(runs: list[dict[str, float]], clusters: ClusterMap | dict | None = None
                   ) -> tuple[np.ndarray, list[str]]:
    """(runs x clusters) matrix of each run's mean value per cluster, over the queries every run has.

    `clusters`: the task's mapping of query ids to clusters (`paragraph_clusters`); by default the question
    (all its language versions). On balanced benchmarks (every question in every language, as in XQuAD-R and
    the MKQA slices) the mean over question clusters equals the language macro-average the headline reports;
    the run-level test takes its effect from the headline figures and only the spread from this matrix.
    """
    if not runs:
        raise ValueError("no runs")
    if clusters is not None and not isinstance(clusters, ClusterMap):
        clusters = ClusterMap("mapping", dict(clusters))
    common = set(runs[0]).intersection(*runs[1:]) if len(runs) > 1 else set(runs[0])
    queries, cols, names = _cluster_layout(frozenset(common), clusters)
    counts = np.bincount(cols, minlength=len(names)).astype(float)
    out = np.empty((len(runs), len(names)))
    values = operator.itemgetter(*queries) if len(queries) > 1 else lambda run: [run[q] for q in queries]
    for r, run in enumerate(runs):
        sums = np.bincount(cols, weights=np.array(values(run), dtype=float), minlength=len(names))
        out[r] = sums / counts
    return out, names


@functools.lru_cache(maxsize=8)
def _cluster_layout(common: frozenset, clusters: ClusterMap | None) -> tuple[list[str], np.ndarray, list[str]]:
    """(queries in order, each one's cluster index, clusters in order): a bundle's comparisons of one task share
    their query set and cluster map, so this is computed once per pair of them."""
    queries = sorted(common)
    of = [cluster_of(q, clusters) for q in queries]
    names = sorted(set(of))
    index = {c: i for i, c in enumerate(names)}
    return queries, np.array([index[c] for c in of], dtype=np.int64), names


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


def minimum_detectable_effect(se: float, df: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true |Δ| that a two-sided t test at `alpha` with this standard error and `df` detects with
    probability `power` (noncentral t, as statsmodels' TTestIndPower: a test checks them against each other).
    0 for se = 0; inf where no effect reaches the power (cannot happen for power < 1)."""
    if se <= 0:
        return 0.0
    from scipy import optimize, stats

    crit = float(stats.t.ppf(1 - alpha / 2, df))

    def shortfall(nc: float) -> float:
        reach = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
        if not np.isfinite(reach):  # scipy's noncentral t fails far in its tail at large df: the normal limit
            reach = float(stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc))
        return reach - power

    high = crit + float(stats.norm.ppf(power)) + 3
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-10)) * se


def tost_p(delta: float, se: float, df: int, margin: float | None) -> float | None:
    """Two one-sided t tests of equivalence, H0: |true Δ| >= margin, with the comparison's own SE and df: the
    larger of the two one-sided p-values (as statsmodels' ttost_ind). None without a margin."""
    if margin is None or not np.isfinite(delta):
        return None
    if se <= 0:
        return 0.0 if abs(delta) < margin else 1.0
    from scipy import stats

    p_low = float(stats.t.sf((delta + margin) / se, df))  # H0: Δ <= −margin
    p_high = float(stats.t.cdf((delta - margin) / se, df))  # H0: Δ >= +margin
    return max(p_low, p_high)


def marks_p(p: float, p_permutation: float | None, rule: str = "max(t, permutation)") -> float:
    """The p-value behind the marks and the verdict: the larger of the t-based p and the exact permutation p
    (capped by the permutation floor), or the t-based p where no permutation test exists (a one-run side)."""
    if rule == "max(t, permutation)" and p_permutation is not None:
        return max(p, p_permutation)
    return p


def run_pairs_agreeing(a_values, b_values, delta: float) -> tuple[int, int]:
    """(run pairs whose b − a has the sign of delta, all n_a x n_b run pairs): unpaired, as the test."""
    a_values, b_values = np.asarray(a_values, float), np.asarray(b_values, float)
    diffs = b_values[None, :] - a_values[:, None]
    agree = int(np.sum((np.sign(diffs) == np.sign(delta)) & (diffs != 0))) if delta != 0 else 0
    return agree, int(diffs.size)


@dataclass
class Comparison:
    delta: float  # mean of b minus mean of a, in the metric's units
    ci_low: float
    ci_high: float
    p: float  # two-sided, run as the unit (bootstrap SE, t on the runs' degrees of freedom)
    se: float
    df: int
    p_permutation: float | None
    p_marks: float  # marks_p(p, p_permutation): what the marks and the verdict adjust and read
    marks_test: str  # which test p_marks is, in words
    pairs_agree: int  # run pairs (one run of a, one of b) whose difference has the sign of delta
    n_pairs: int  # n_a x n_b
    mde: float  # minimum detectable |Δ| at the plan's power, two-sided alpha, this SE and df (uncorrected)
    margin: float | None  # the plan's equivalence margin for this cell
    p_tost: float | None  # two one-sided tests against ±margin, same SE and df
    n_a: int
    n_b: int
    clusters: int
    cluster_level: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def compare_runs(a_runs: list[dict[str, float]], b_runs: list[dict[str, float]], a_values: list[float],
                 b_values: list[float], a_seeds: list | None = None, b_seeds: list | None = None,
                 n_resamples: int = 4000, seed: int = 0, clusters: ClusterMap | dict | None = None,
                 margin: float | None = None, alpha: float = 0.05, power: float = 0.8,
                 marks_rule: str = "max(t, permutation)") -> Comparison:
    """Method B against method A on one headline cell, the run as the unit.

    `*_runs`: per run, query id -> per-query value (for the cluster resampling); `*_values`: per run, the
    headline figure (the language macro-average); `*_seeds`: the runs' seeds (not paired: the plan's test is
    two-sample). `clusters`: the task's query -> cluster map (default: the question); `margin`, `alpha`,
    `power`, `marks_rule`: the plan's.
    """
    if not a_runs or not b_runs or len(a_runs) != len(a_values) or len(b_runs) != len(b_values):
        raise ValueError("each side needs one per-query table and one headline value per run")
    x, names = cluster_matrix(list(a_runs) + list(b_runs), clusters)
    xa, xb = x[: len(a_runs)], x[len(a_runs):]
    a_values, b_values = np.asarray(a_values, float), np.asarray(b_values, float)
    delta = float(b_values.mean() - a_values.mean())
    replicates = two_level_bootstrap(xa, xb, a_values, b_values, n_resamples=n_resamples, seed=seed)
    se = float(replicates.std(ddof=1))
    df = run_degrees_of_freedom(len(a_runs), len(b_runs), len(names))
    from scipy import stats
    t_crit = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))
    if se > 0:
        p = float(2 * stats.t.sf(abs(delta) / se, df))
    else:
        p = 1.0 if delta == 0 else 0.0
    p_perm = seed_permutation_p(a_values, b_values)
    agree, n_pairs = run_pairs_agreeing(a_values, b_values, delta)
    level = clusters.level if isinstance(clusters, ClusterMap) else "question" if clusters is None else "mapping"
    return Comparison(delta=delta, ci_low=delta - t_crit * se, ci_high=delta + t_crit * se, p=p, se=se, df=df,
                      p_permutation=p_perm, p_marks=marks_p(p, p_perm, marks_rule),
                      marks_test=("max(t, exact permutation of runs)" if p_perm is not None and
                                  marks_rule == "max(t, permutation)" else
                                  "t only (a one-run side: no permutation test)" if p_perm is None else "t"),
                      pairs_agree=agree, n_pairs=n_pairs, mde=minimum_detectable_effect(se, df, alpha, power),
                      margin=margin, p_tost=tost_p(delta, se, df, margin), n_a=len(a_runs), n_b=len(b_runs),
                      clusters=len(names), cluster_level=level)


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


VERDICTS = ("better", "worse", "equivalent", "not equivalent", "undetermined")


def verdict_of(p_adjusted: float | None, p_tost_adjusted: float | None, delta: float, ci_low: float,
               ci_high: float, margin: float | None, metric: str, alpha: float = 0.05) -> str:
    """One comparison's reading (b against a): "better" / "worse" where the marks' family-adjusted p is below
    alpha (by the metric's direction); else "equivalent" where the family-adjusted TOST p is below alpha (the
    difference lies within ±margin); else "not equivalent" where the comparison's 95 % interval lies wholly
    outside ±margin (shown to exceed it, though not significant by the marks' rule); else "undetermined"."""
    if p_adjusted is not None and p_adjusted < alpha:
        d = direction(delta, metric)
        if d in ("better", "worse"):
            return d
    if p_tost_adjusted is not None and p_tost_adjusted < alpha:
        return "equivalent"
    if margin is not None and (ci_low > margin or ci_high < -margin):
        return "not equivalent"
    return "undetermined"


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
