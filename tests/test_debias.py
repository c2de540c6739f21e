"""Training-free debiasing (hybridviz/encoders/debias.py): each method's defining property, the spec grammar,
the fit record, and that fitting reads no evaluation text."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score as average_precision

from hybridviz.encoders.debias import Debiaser, fit, parse_method, split_spec, training_side_texts
from hybridviz.errors import UnknownName

LANGS = ["de", "en", "zh"]


def synthetic(n_topics=40, dim=24, seed=0):
    """Each text = its topic + its language's offset + noise; parallel texts share the topic."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(n_topics, dim))
    offsets = {lang: rng.normal(scale=2.0, size=dim) for lang in LANGS}
    x, langs, kinds, topic = [], [], [], []
    for t in range(n_topics):
        for lang in LANGS:
            for kind in ("query", "passage"):
                x.append(topics[t] + offsets[lang] + (0.3 if kind == "query" else -0.3) + rng.normal(scale=0.2, size=dim))
                langs.append(lang), kinds.append(kind), topic.append(t)
    x = np.array(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), langs, kinds, np.array(topic)


def test_centering_equalises_the_language_means_of_each_side():
    x, langs, kinds, _ = synthetic()
    d = fit(parse_method("center"), x, langs, kinds)
    for kind in ("query", "passage"):
        sel = np.array(kinds) == kind
        out = d.transform(x[sel], kind, list(np.array(langs)[sel]), normalise=False)
        for lang in LANGS:
            assert np.abs(out[np.array(langs)[sel] == lang].mean(axis=0)).max() < 1e-5


@pytest.mark.parametrize("method,rank", [("lir:k=2", 2), ("lsar:r=2", 2)])
def test_lir_and_lsar_are_projections_that_remove_exactly_their_rank(method, rank):
    x, langs, kinds, _ = synthetic()
    d = fit(parse_method(method), x, langs, kinds)
    once = d.transform(x, "passage", langs, normalise=False)
    twice = d.transform(once, "passage", langs, normalise=False)
    assert np.allclose(once, twice, atol=1e-5)  # idempotent
    removed = x - once
    if method.startswith("lsar"):
        assert np.linalg.matrix_rank(removed, tol=1e-4) == rank
        basis = d.arrays["lsar_basis"]
        assert np.allclose(basis @ basis.T, np.eye(rank), atol=1e-5) and np.abs(once @ basis.T).max() < 1e-5
    else:
        for lang in LANGS:
            sel = np.array(langs) == lang
            assert np.linalg.matrix_rank(removed[sel], tol=1e-4) == rank


def test_after_leace_a_linear_probe_predicts_the_language_at_chance():
    x, langs, kinds, _ = synthetic(n_topics=80)
    probe = LogisticRegression(max_iter=2000)
    assert probe.fit(x, langs).score(x, langs) > 0.95  # the language is linearly there before
    d = fit(parse_method("leace"), x, langs, kinds)
    erased = d.transform(x, "passage", normalise=False)
    accuracy = LogisticRegression(max_iter=2000).fit(erased, langs).score(erased, langs)
    assert accuracy < 1 / len(LANGS) + 0.12  # chance is 1/3 (balanced)


def test_debiasing_lifts_multilingual_retrieval_and_keeps_monolingual():
    x, langs, kinds, topic = synthetic(seed=1)
    q, p = np.array(kinds) == "query", np.array(kinds) == "passage"
    langs_arr = np.array(langs)

    def multi_and_mono(qv, pv):
        scores = qv @ pv.T
        multi = np.mean([average_precision(topic[p] == topic[q][i], scores[i]) for i in range(q.sum())])
        mono = []
        for lang in LANGS:
            qi, pi = langs_arr[q] == lang, langs_arr[p] == lang
            s = qv[qi] @ pv[pi].T
            mono += [average_precision(topic[p][pi] == topic[q][qi][i], s[i]) for i in range(qi.sum())]
        return multi, np.mean(mono)

    before = multi_and_mono(x[q], x[p])
    d = fit(parse_method("center"), x, langs, kinds)
    after = multi_and_mono(d.transform(x[q], "query", list(langs_arr[q])),
                           d.transform(x[p], "passage", list(langs_arr[p])))
    assert after[0] > before[0] + 0.1 and after[1] >= before[1] - 0.02


def test_unknown_languages_fall_back_and_missing_languages_are_guessed():
    x, langs, kinds, _ = synthetic()
    d = fit(parse_method("center"), x, langs, kinds, source="synthetic")
    fallback = d.arrays["center_query"][-1]
    out = d.transform(x[:1], "query", ["th"], normalise=False)  # th was not fitted
    assert np.allclose(out[0], x[0] - fallback, atol=1e-6)
    assert d.record["fitted_languages"] == LANGS and "mean of the fitted" in d.record["fallback"]
    guessed = d.transform(x[:6], "query", None)  # the nearest language mean picks each text's language
    assert np.allclose(guessed, d.transform(x[:6], "query", langs[:6]), atol=1e-6)


def test_spec_grammar_and_saved_fit(tmp_path):
    assert split_spec("me5-small") == ("me5-small", None)
    base, m = split_spec("run:x-y-s0+lir:k=4")
    assert base == "run:x-y-s0" and m.method == "lir" and dict(m.params) == {"k": 4} and m.fit == "train"
    assert split_spec("me5-small+center@index")[1].name == "center@index"
    for bad in ("me5-small+whiten", "me5-small+lir:r=2", "me5-small+lir:k=0", "+center", "me5-small+center@eval"):
        with pytest.raises(UnknownName):
            split_spec(bad)
    x, langs, kinds, _ = synthetic()
    d = fit(parse_method("lsar:r=2"), x, langs, kinds, source="synthetic")
    again = Debiaser.load(d.save(tmp_path / "m.npz"))
    assert again.fingerprint == d.fingerprint and again.record["fit_source"] == "synthetic"
    assert np.allclose(again.transform(x, "query"), d.transform(x, "query"))


@pytest.mark.slow
def test_fitting_texts_are_training_side_and_never_evaluation_texts(data_root):
    from hybridviz.training.data import _evaluation_texts, normalise

    fit_texts = training_side_texts()
    evaluation = _evaluation_texts(("xquad-r", "mkqa"))
    assert fit_texts.texts and not any(normalise(t) in evaluation for t in fit_texts.texts)
    assert set(fit_texts.langs) == {"ar", "de", "en", "es", "hi", "vi", "zh"}
    assert len(training_side_texts({"no-such-group"}).texts) == len(fit_texts.texts)
    from hybridviz.data.lareqa import load_lareqa

    groups = sorted({q.group for q in load_lareqa("mlqa-r").questions})[:100]
    fewer = training_side_texts(set(groups))
    assert len(fewer.texts) < len(fit_texts.texts) and "100 held-out question groups" in fewer.source


def test_a_debiased_model_evaluates_and_records_its_fit(tmp_path, data_root):
    from hybridviz.evaluate import evaluate

    plain = evaluate("tiny", "xquad-r", languages=["en", "de", "th"], limit=20, settings=["multi"])
    report = evaluate("tiny+center@index", "xquad-r", languages=["en", "de", "th"], limit=20, settings=["multi"],
                      out_dir=tmp_path)
    record = report["model"]["debias"]
    assert record["fit"] == "index" and record["fitted_languages"] == ["de", "en", "th"]
    assert "xquad-r pool" in record["fit_source"]
    assert report["model"]["fingerprint"] != plain["model"]["fingerprint"]
    assert report["settings"]["multi"]["macro"]["mAP"] != plain["settings"]["multi"]["macro"]["mAP"]
