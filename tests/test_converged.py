"""The converged regime: the fast step computes sentence-transformers' loss, early stopping keeps the best
checkpoint, the held-out pool holds whole paragraphs, the curves command records the curve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hybridviz.training.trainer import FAST_STEP, TrainConfig, load_pairs, train, validation_corpus, validation_pairs

TINY = dict(model="tiny", batch_size=16, freeze_word_embeddings=False, train_languages=["en", "de", "es"],
            learning_rate=2e-3)


@pytest.mark.parametrize("sub_batch", [1, 5, 16, 64])
def test_bucketed_loss_and_gradients_equal_sentence_transformers_own(data_root, tiny, sub_batch):
    """Oracle: sentence-transformers' MultipleNegativesRankingLoss on the padded batch (fp32, no dropout)."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from hybridviz.training.losses import BucketedMultipleNegativesRankingLoss, set_attention

    pairs = load_pairs(TrainConfig(train_languages=["en", "de", "zh"]))
    model = tiny.model
    model.eval()  # dropout off: the two must then be the same function
    texts_q = ["query: " + t for t in pairs.query[:24]]
    texts_p = ["passage: " + t for t in pairs.positive[:24]]
    lengths = model.tokenize(texts_p)["attention_mask"].sum(1)
    assert lengths.min() < lengths.max(), "the batch must have padding to remove"
    labels = torch.arange(24)
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(loss_fn):
        loss = loss_fn([model.tokenize(texts_q), model.tokenize(texts_p)], labels)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return loss.item(), grads

    ref, ref_grads = loss_and_grads(MultipleNegativesRankingLoss(model, scale=20.0))
    previous = set_attention(model, "eager")
    try:
        ours, our_grads = loss_and_grads(BucketedMultipleNegativesRankingLoss(model, sub_batch=sub_batch, scale=20.0))
    finally:
        set_attention(model, previous)
    assert ours == pytest.approx(ref, abs=1e-5)
    used = [(a, b) for a, b in zip(ref_grads, our_grads) if a is not None]
    assert len(used) > 20 and all(b is not None for _, b in used)
    # relative per tensor, with a floor: some gradients are zero in exact arithmetic (a key bias shifts every
    # attention logit of a row alike) and only rounding noise is left in them
    worst = max(float((a - b).abs().max() / (a.abs().max() + 1e-6)) for a, b in used)
    assert worst < 1e-3, worst


def test_the_held_out_pool_is_every_sentence_of_whole_paragraph_components(data_root):
    from hybridviz.data.lareqa import load_lareqa

    config = TrainConfig(train_languages=["en", "de", "es"], holdout=0.2, extra={"holdout_pool": "paragraphs"})
    train_pairs, held = load_pairs(config), validation_pairs(config)
    corpus = validation_corpus(config)
    assert corpus.notes["pool"] == "paragraphs"
    assert not set(train_pairs.group) & set(held.group)
    pool = set(corpus.cand_texts)
    assert not {p for p in train_pairs.positive} & pool, "no training answer sentence lies in the validation pool"
    data = load_lareqa("mlqa-r", ["en", "de", "es"])
    paragraphs = {tuple(cid.split(":")[:2]) for cid in corpus.cand_ids}
    whole = [s.id for s in data.sentences if tuple(s.id.split(":")[:2]) in paragraphs]
    assert sorted(whole) == sorted(corpus.cand_ids), "every sentence of each held-out paragraph, nothing else"
    assert len(corpus.cand_ids) > 3 * len(set(held.positive)), "far more candidates than answers"
    for q in range(len(corpus.query_ids)):
        assert corpus.relevant_candidates(q), corpus.query_ids[q]
    answers = TrainConfig(train_languages=["en", "de", "es"], holdout=0.2)  # the older pool is unchanged
    assert validation_corpus(answers).notes["pool"] == "answers"


@pytest.mark.slow
def test_early_stopping_keeps_the_best_checkpoint_and_records_the_curve(tmp_path, data_root, tiny, monkeypatch):
    """A planted validation curve (peak at step 10, then falling): patience 2 stops at step 30, and the saved
    model is checkpoint 10's weights (oracle: the checkpoint file the trainer wrote)."""
    from safetensors.torch import load_file

    from hybridviz.training import validation

    planted = {0: 0.30, 10: 0.50, 20: 0.40, 30: 0.35, 40: 0.60}
    calls = []

    def fake_score(self, model):
        step = [0, 10, 20, 30, 40][len(calls)]
        calls.append(step)
        return {"mono_mAP": planted[step], "cross_mAP": planted[step], "multi_mAP": planted[step],
                "mean_mAP": planted[step]}

    monkeypatch.setattr(validation.HeldOutEvaluator, "score", fake_score)
    saved = {}
    import transformers.trainer as hf_trainer

    original = hf_trainer.Trainer._save_checkpoint

    def spy(self, model, trial):
        original(self, model, trial)
        step = self.state.global_step
        saved[step] = {k: v.clone() for k, v in self.model.state_dict().items()}

    monkeypatch.setattr(hf_trainer.Trainer, "_save_checkpoint", spy)
    config = TrainConfig(**{**TINY, "freeze_word_embeddings": True}, steps=50, holdout=0.2,
                         extra={**FAST_STEP, "eval_steps": 10, "patience": 2, "holdout_pool": "paragraphs"})
    run = train(config, root=tmp_path)
    status = run.status()
    assert status["state"] == "done"
    assert (status["stopped_at"], status["best_step"], status["early_stopped"]) == (30, 10, True)
    assert status["best_metric"] == pytest.approx(0.50) and status["beats_base"] is True
    curve = [json.loads(line) for line in (run.dir / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in curve] == [0, 10, 20, 30]
    final = load_file(next(run.model_dir.rglob("model.safetensors")))
    key = "encoder.layer.0.attention.self.query.weight"
    at = lambda step: next(v for k, v in saved[step].items() if k.endswith(key))  # noqa: E731
    assert torch.equal(final[key], at(10)), "the saved model is the best checkpoint"
    assert not torch.equal(final[key], at(30))


def test_bad_early_stopping_settings_are_refused_before_any_work(tmp_path, data_root):
    from hybridviz.errors import HybridvizError

    for extra, message in [({"patience": 2}, "needs eval steps"), ({"eval_steps": 10}, "held-out share"),
                           ({"criterion": "loss"}, "criterion must be one of"),
                           ({"holdout_pool": "docs"}, "holdout pool must be"), ({"sub_batch": -1}, "sub-batch")]:
        with pytest.raises(HybridvizError, match=message):
            train(TrainConfig(**TINY, steps=5, extra=extra), root=tmp_path)
    assert not list(tmp_path.glob("*/model"))


@pytest.mark.slow
def test_curves_command_records_each_runs_validation_curve_and_probes(tmp_path, data_root, tiny):
    from conftest import run_cli

    (tmp_path / "cache").mkdir()  # runs and embeddings of its own; the imported models shared (not rebuilt)
    (tmp_path / "cache" / "models").symlink_to(Path(tiny.model[0].auto_model.name_or_path).parents[1])
    out = tmp_path / "curves"
    proc = run_cli("curves", "--model", "tiny", "--out", str(out), "--seeds", "0", "--samplers", "x-y,hybrid",
                   "--max-steps", "20", "--eval-steps", "10", "--probe-steps", "10", "--warmup", "2",
                   "--languages", "en,de", "--batch-size", "16", env={"HYBRIDVIZ_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = json.loads((out / "curves.json").read_text())
    assert set(state["runs"]) == {"x-y-s0", "hybrid-s0"}
    for r in state["runs"].values():
        assert [v["step"] for v in r["validation"]] == [0, 10, 20]
        assert r["best_step"] in (10, 20) and r["stopped_at"] == 20
        assert [p["step"] for p in r["probes"]] == [10, "best"]
        assert r["pool"]["pool"] == "paragraphs" and r["pool"]["candidates"] > r["pool"]["queries"]
    assert state["regime"]["criterion"] == "mean_mAP" and state["config"]["extra"]["sub_batch"] == 16
    again = run_cli("curves", "--model", "tiny", "--out", str(out), "--seeds", "0", "--samplers", "x-y,hybrid",
                    "--max-steps", "20", "--eval-steps", "10", "--probe-steps", "10", "--warmup", "2",
                    "--languages", "en,de", "--batch-size", "16", env={"HYBRIDVIZ_CACHE": str(tmp_path / "cache")})
    assert again.returncode == 0 and "curves:" not in again.stderr, "finished runs are not trained again"


@pytest.mark.parametrize("p", [0.1, 0.25])
def test_fast_dropout_draws_bernoulli_masks_at_the_rate_asked(p):
    """training/losses.py fast_dropout: each element dropped with probability round(p * 65536) / 65536, alike
    in the four 16-bit lanes of a draw (binomial test, scipy), kept ones scaled by 1 / (1 - p), the gradient the
    same mask; seeded by torch's generator; off in eval mode."""
    from scipy.stats import binomtest

    from hybridviz.training.losses import fast_dropout

    torch.manual_seed(0)
    x = torch.rand(1001, 997) + 0.5  # no zeros: a zero output is a dropped element; odd size: a partial draw
    x.requires_grad_(True)
    y = fast_dropout(x, p)
    dropped = y == 0
    rate = round(p * 65536) / 65536
    n = dropped.numel()
    assert binomtest(int(dropped.sum()), n, rate).pvalue > 1e-3
    lanes = dropped.flatten()[: n - n % 4].view(-1, 4)
    for lane in range(4):
        assert binomtest(int(lanes[:, lane].sum()), lanes.shape[0], rate).pvalue > 1e-3, lane
    torch.testing.assert_close(y[~dropped], (x / (1 - p))[~dropped].detach())
    y.sum().backward()
    torch.testing.assert_close(x.grad, (~dropped).float() / (1 - p))
    torch.manual_seed(0)
    again = torch.rand(1001, 997) + 0.5  # the same seed, the same draws: the same mask
    assert torch.equal(fast_dropout(again, p) == 0, dropped)
    assert fast_dropout(x, p, training=False) is x and fast_dropout(x, 0.0) is x


def test_fast_dropout_modules_leave_evaluation_unchanged_and_are_put_back(tiny):
    """use_fast_dropout swaps every nn.Dropout and the attention of the transformer; in eval mode the model
    embeds as before (SDPA against eager attention with eager's additive mask), in train mode the masks are
    drawn, and restore() puts the very modules and the attention back."""
    from hybridviz.training.losses import DROPOUT_ATTENTION, transformer_of, use_fast_dropout

    model = tiny.model
    inner = transformer_of(model)
    before_attention = inner.config._attn_implementation
    originals = [m for m in inner.modules() if type(m) is torch.nn.Dropout]
    assert originals
    features = model.tokenize(["query: who wrote it?", "query: Wer schrieb die Unabhängigkeitserklärung?"])
    model.eval()
    with torch.no_grad():
        reference = model(dict(features))["sentence_embedding"]
    restore = use_fast_dropout(model)
    try:
        assert inner.config._attn_implementation == DROPOUT_ATTENTION
        assert not [m for m in inner.modules() if type(m) is torch.nn.Dropout]
        with torch.no_grad():
            torch.testing.assert_close(model(dict(features))["sentence_embedding"], reference, atol=1e-5, rtol=1e-5)
            model.train()
            torch.manual_seed(1)
            noisy = model(dict(features))["sentence_embedding"]
            assert not torch.allclose(noisy, reference, atol=1e-4)
    finally:
        model.eval()
        restore()
    assert inner.config._attn_implementation == before_attention
    assert [m for m in inner.modules() if type(m) is torch.nn.Dropout] == originals
