"""How much a transductive method's figures depend on its random sample of test questions.

An index-time method (`center@index`, encoders/debias.py) is fitted on the evaluation pool and on a seeded 20 % of
the benchmark's question groups, which are then evaluated too. The bundles evaluate one sample (seed 0). This
refits it with other sample seeds on the same model and reports the spread of the headline figures over them, the
variance a single fit hides:

    python -m hybridviz transductive-spread --model me5-small --task xquad-r --sample-seeds 0,1,2,3,4

Each fit re-encodes only what the base's embedding cache lacks (the pool and the questions are the same texts for
every seed), so after the first seed a refit costs the fit and the scoring, not the encoding.
"""

from __future__ import annotations

from typing import Callable

from hybridviz.encoders.debias import DebiasedEncoder, index_texts, parse_method
from hybridviz.encoders.registry import load_encoder
from hybridviz.evaluate import evaluate
from hybridviz.experiments.stats import mean_std

SPREAD_CELLS = (("mono", "mAP"), ("cross", "mAP"), ("multi", "mAP"), ("multi", "max_rank_distance"))


class SampledIndexFit(DebiasedEncoder):
    """An index-time debiased encoder whose question sample is drawn with `sample_seed` (the bundles: 0)."""

    def __init__(self, base, method: str, sample_seed: int):
        spec = parse_method(method)
        if spec.fit != "index":
            raise ValueError(f"{method}: not an index-time (transductive) method; nothing is sampled")
        super().__init__(base, spec)
        self.sample_seed = sample_seed

    def prepare(self, corpus) -> None:
        key = f"{corpus.task}:{len(corpus.cand_texts)}:{len(corpus.query_texts)}:{self.sample_seed}"
        if self._fitted_on != key:
            self.debiaser = self._fit(index_texts(corpus, seed=self.sample_seed))
            self._fitted_on = key


def index_fit_spread(model: str, task: str, method: str = "center@index", sample_seeds=(0, 1, 2, 3, 4),
                     languages: list[str] | None = None, limit: int | None = None, precision: str | None = None,
                     batch_size: int | None = None, settings: list[str] | None = None, base=None,
                     log: Callable[[str], None] | None = None) -> dict:
    """`model`+`method` evaluated on `task` once per question-sample seed: per seed the headline figures, and
    their mean and standard deviation over the seeds (the fit's sampling variance, the model held fixed)."""
    if precision is None:  # the policy's default (encoders/policy.py)
        from hybridviz.encoders.policy import default_precision

        precision = base.precision if base is not None else default_precision(model)
    base = base or load_encoder(model, precision=precision)
    per_seed = []
    for seed in sample_seeds:
        encoder = SampledIndexFit(base, method, seed)
        report = evaluate(f"{model}+{method}", task, languages=languages, limit=limit, settings=settings,
                          encoder=encoder, precision=precision, batch_size=batch_size, log=log)
        figures = {f"{s} {m}": report["settings"].get(s, {}).get("macro", {}).get(m) for s, m in SPREAD_CELLS}
        per_seed.append({"sample_seed": seed, **figures,
                         "fit_source": report["model"].get("debias", {}).get("fit_source"),
                         "fit_fingerprint": encoder.debiaser.fingerprint})
    spread = {name: mean_std([row[name] for row in per_seed]) for name in per_seed[0] if " " in name
              and any(row[name] is not None for row in per_seed)}
    return {"model": model, "method": method, "task": task, "sample_seeds": list(sample_seeds),
            "languages": languages, "limit": limit, "per_seed": per_seed, "spread": spread}
