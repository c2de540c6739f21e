"""Samplers, checked by counting batch compositions over thousands of batches of real MLQA-R pairs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from hybridviz.training.data import lareqa_pairs
from hybridviz.training.samplers import HybridBatchSampler, SamplerConfigError, make_sampler

N_BATCHES = 3000
BATCH = 32


@pytest.fixture(scope="module")
def pairs(data_root):
    return lareqa_pairs("mlqa-r").columns()


def draw(pairs, **kwargs):
    sampler = HybridBatchSampler(pairs, batch_size=kwargs.pop("batch_size", BATCH), drop_last=True,
                                 num_batches=kwargs.pop("num_batches", N_BATCHES), **kwargs)
    return sampler, list(sampler)


def composition(pairs, batch):
    q = [pairs["query_lang"][i] for i in batch]
    p = [pairs["passage_lang"][i] for i in batch]
    return q, p


def assert_within_binomial(count, n, p, sigmas=4.5):
    assert abs(count - n * p) <= sigmas * np.sqrt(n * p * (1 - p)) + 1, (count, n, p)


def test_training_pair_counts(pairs):
    counts = lareqa_pairs("mlqa-r").counts()
    assert counts["pairs"] == 15747 and counts["groups"] == 1148
    assert counts["per_pair"]["en-en"] == 1148 and counts["per_pair"]["ar-de"] == 207
    assert counts["per_language"]["en"] == {"mono": 1148, "cross": 3051}


@pytest.mark.parametrize("alpha", [0.5, 0.25])
def test_hybrid_mixes_batch_types_at_rate_alpha(pairs, alpha):
    _, batches = draw(pairs, alpha=alpha, seed=1)
    assert len(batches) == N_BATCHES and all(len(b) == BATCH for b in batches)
    mono = 0
    for b in batches:
        q, p = composition(pairs, b)
        if q[0] == p[0]:
            mono += 1
            assert set(q) == set(p) == {q[0]}, "a mono batch is one language throughout"
        else:
            assert all(x != y for x, y in zip(q, p)), "an x-y batch has no same-language pair"
    assert_within_binomial(mono, N_BATCHES, alpha)


def test_mono_languages_uniform_by_default(pairs):
    _, batches = draw(pairs, alpha=1.0, seed=2)
    langs = Counter(pairs["query_lang"][b[0]] for b in batches)
    assert set(langs) == {"ar", "de", "en", "es", "hi", "vi", "zh"}
    for lang, n in langs.items():
        assert_within_binomial(n, N_BATCHES, 1 / 7)


def test_mono_languages_proportional_and_temperature(pairs):
    sizes = Counter(q for q, p in zip(pairs["query_lang"], pairs["passage_lang"]) if q == p)
    for weighting, exponent in (("proportional", 1.0), (0.5, 0.5)):
        sampler, batches = draw(pairs, alpha=1.0, seed=3, language_weighting=weighting)
        weights = {lang: n ** exponent for lang, n in sizes.items()}
        total = sum(weights.values())
        langs = Counter(pairs["query_lang"][b[0]] for b in batches)
        for lang, w in weights.items():
            assert_within_binomial(langs[lang], N_BATCHES, w / total)


def test_alpha_extremes_reproduce_the_pure_samplers(pairs):
    for alpha, expect_mono in ((1.0, True), (0.0, False)):
        _, batches = draw(pairs, alpha=alpha, num_batches=500)
        assert all((pairs["query_lang"][b[0]] == pairs["passage_lang"][b[0]]) == expect_mono for b in batches)
    assert make_sampler("x-y")(pairs, batch_size=BATCH, drop_last=True).alpha == 0.0
    assert make_sampler("x-x-mono")(pairs, batch_size=BATCH, drop_last=True).alpha == 1.0
    assert make_sampler("hybrid", alpha=0.3)(pairs, batch_size=BATCH, drop_last=True).alpha == 0.3


def test_no_duplicates_in_any_batch(pairs):
    _, batches = draw(pairs, alpha=0.5, seed=4)
    for b in batches:
        assert len({pairs["group"][i] for i in b}) == len(b), "one pair per parallel group"
        texts = [pairs["query"][i] for i in b] + [pairs["positive"][i] for i in b]
        assert len(set(texts)) == len(texts), "no text twice"


def test_every_pair_is_used_before_reuse(pairs):
    # x-y pool: 11,155 cross pairs; 300 batches of 32 = 9,600 draws must all be distinct
    _, batches = draw(pairs, alpha=0.0, num_batches=300, seed=5)
    drawn = [i for b in batches for i in b]
    assert len(set(drawn)) == len(drawn)


def test_seeded_reproducible_and_reseeded_per_epoch(pairs):
    a, first = draw(pairs, alpha=0.5, seed=7, num_batches=50)
    _, again = draw(pairs, alpha=0.5, seed=7, num_batches=50)
    assert first == again
    a.set_epoch(1)
    assert list(a) != first
    _, other_seed = draw(pairs, alpha=0.5, seed=8, num_batches=50)
    assert other_seed != first


def test_distributed_ranks_share_the_batch_type_per_step(pairs):
    sampler, batches = draw(pairs, alpha=0.5, seed=9, world_size=2, num_batches=2000)
    kinds = list(sampler.batch_types())
    assert all(kinds[i] == kinds[i + 1] for i in range(0, len(kinds), 2))
    assert len(set(kinds[0::2])) > 1
    for i in range(0, len(batches), 2):  # what accelerate deals to rank 0 and rank 1 at one step
        mono = [pairs["query_lang"][b[0]] == pairs["passage_lang"][b[0]] for b in batches[i : i + 2]]
        assert mono[0] == mono[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 1.5}, r"alpha must lie in \[0, 1\]"),
    ({"alpha": -0.1}, r"alpha must lie in \[0, 1\]"),
    ({"batch_size": 600}, "exceeds"),
    ({"batch_size": 1}, "at least 2"),
    ({"language_weighting": "loud"}, "language_weighting"),
])
def test_invalid_settings_rejected(pairs, kwargs, message):
    with pytest.raises(SamplerConfigError, match=message):
        HybridBatchSampler(pairs, batch_size=kwargs.pop("batch_size", BATCH), drop_last=True, **kwargs)


def test_unknown_sampler_name():
    with pytest.raises(SamplerConfigError, match="Unknown sampler"):
        make_sampler("mono")


@pytest.mark.parametrize("name, alpha", [("x-y", 0.0), ("x-x-mono", 1.0)])
def test_hybrid_at_alpha_ends_draws_the_same_batches_as_the_pure_samplers(pairs, name, alpha):
    """The experiment grid reuses the x-y / x-x-mono runs as the alpha = 0 / 1 points of the alpha sweep."""
    pure = list(make_sampler(name, 0.5)(pairs, batch_size=BATCH, drop_last=True, seed=4,
                                                        num_batches=200))
    hybrid = list(make_sampler("hybrid", alpha)(pairs, batch_size=BATCH, drop_last=True, seed=4,
                                                                num_batches=200))
    assert pure == hybrid


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_source_mix_draws_sources_by_size_to_the_temperature(data_root, temperature):
    """A mix of MLQA-R, Mintaka and XLingHealth: over thousands of batches each source's share is
    n_s^t / sum n^t (within binomial noise), every batch stays inside one source, and inside it the hybrid sampler
    still makes x-x-mono batches at rate alpha."""
    from datasets import Dataset
    from torch.utils.data import ConcatDataset

    from hybridviz.training.data import extra_pairs, mix_pairs
    from hybridviz.training.samplers import SourceMixBatchSampler

    mix = mix_pairs({"mlqa-r": lareqa_pairs("mlqa-r"), "mintaka": extra_pairs("mintaka"),
                     "xlinghealth": extra_pairs("xlinghealth")})
    parts = mix.by_source()
    datasets = {n: Dataset.from_dict({"query": p.query, "positive": p.positive}) for n, p in parts.items()}
    metadata = {n: p.columns() for n, p in parts.items()}
    factory = make_sampler("hybrid", 0.5, metadata=metadata)
    samplers = [factory(d, batch_size=16, drop_last=True, seed=3) for d in datasets.values()]
    concat = ConcatDataset(list(datasets.values()))
    mixer = SourceMixBatchSampler(concat, samplers, seed=3, temperature=temperature, world_size=1)
    bounds = np.cumsum([0] + [len(d) for d in datasets.values()])
    names, sources, mono = list(datasets), Counter(), Counter()
    for epoch in range(3):
        mixer.set_epoch(epoch)
        for batch in mixer:
            source = int(np.searchsorted(bounds, batch[0], side="right") - 1)
            assert all(bounds[source] <= i < bounds[source + 1] for i in batch) and len(batch) == 16
            local = parts[names[source]]
            q = [local.query_lang[i - bounds[source]] for i in batch]
            p = [local.passage_lang[i - bounds[source]] for i in batch]
            sources[source] += 1
            mono[source] += q[0] == p[0] and set(q) == set(p) == {q[0]}
    total = sum(sources.values())
    assert total == 3 * len(mixer) > 2000
    sizes = np.array([len(d) for d in datasets.values()], dtype=float)
    expected = sizes ** temperature / (sizes ** temperature).sum()
    for s, share in enumerate(expected):
        assert_within_binomial(sources[s], total, share)
        assert_within_binomial(mono[s], sources[s], 0.5)
    with pytest.raises(SamplerConfigError, match="temperature"):
        SourceMixBatchSampler(concat, samplers, temperature=2.0)
