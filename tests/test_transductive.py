"""The sampling variance of a transductive (index-time) fit: refits with other question-sample seeds."""

from __future__ import annotations

import pytest


def test_index_fit_spread_refits_on_other_question_samples(data_root):
    from hybridviz.experiments.transductive import SampledIndexFit, index_fit_spread

    out = index_fit_spread("tiny", "xquad-r", sample_seeds=(0, 1, 2), languages=["en", "de", "th"], limit=20,
                           settings=["multi"])
    rows = out["per_seed"]
    assert [r["sample_seed"] for r in rows] == [0, 1, 2]
    assert all("sampled groups" in r["fit_source"] for r in rows)
    # other samples of test questions give other fits, hence other figures
    assert len({r["fit_fingerprint"] for r in rows}) == 3
    spread = out["spread"]["multi mAP"]
    assert spread["n"] == 3 and spread["mean"] == pytest.approx(sum(r["multi mAP"] for r in rows) / 3)
    assert "mono mAP" not in out["spread"]  # a setting not evaluated has no spread
    with pytest.raises(ValueError, match="not an index-time"):
        SampledIndexFit(None, "center", 0)
