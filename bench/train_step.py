"""Training step time and loss curve: hybridviz's fast step vs a plain sentence-transformers fit of the same batches.

    python bench/train_step.py --out bench/results/train_step.json [--model me5-small --steps 50]
    python bench/train_step.py --profile          # where a plain step's time goes (torch.profiler, 4 steps)

All arms train the same model from the same weights on the same MLQA-R batches (hybridviz's hybrid sampler,
passed to every trainer as its `batch_sampler`, same seed) with the same loss (InfoNCE over in-batch negatives,
scale 1/τ), batch size, learning rate, maximum length, precision and frozen word embeddings:
- **baseline**: plain `SentenceTransformerTrainer` with `MultipleNegativesRankingLoss`, the model as loaded (SDPA
  attention), no callbacks of ours;
- **hybridviz train, fast step**: `hybridviz.training.train` with `FAST_STEP` (length-sorted sub-batches of 16
  texts without padding, eager attention on the CPU, dropout masks four elements a random draw) and everything a
  real run does (registry, status/ETA/log callback; checkpoints off);
- **fast step with torch's dropout** (the step `converged-me5-mlqa-r` trains with);
- **hybridviz train, padded step** (the step of the 100-step bundles);
- **baseline in fp32** (with `--fp32-reference`): the yardstick of bf16 noise for the loss-curve check.
Every arm runs in a fresh process, in the order above, the baseline first and again with another dropout seed
(one process running every arm in turn grew slower arm after arm and favoured the early ones).
Figures: median seconds per step (the first step, with its lazy set-up, excluded), the ratio baseline / arm
(higher is faster; the baseline's step is the median over its two runs), and the largest per-step loss
difference from the baseline over all steps, beside the largest difference between the baseline in bf16 and in
fp32 (the noise bf16 itself brings).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import print_table, write_result


def plain_fit(config, pairs, precision: str | None = None, torch_seed: int | None = None
              ) -> tuple[list[float], list[float]]:
    """(seconds at the end of each step, loss of each step) of a plain sentence-transformers fit; `torch_seed`
    changes the random state of dropout only (the batch sampler keeps `config.seed`)."""
    import torch
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from transformers import TrainerCallback

    from hybridviz.encoders import load_encoder
    from hybridviz.training.samplers import make_sampler

    torch.manual_seed(config.seed)
    encoder = load_encoder(config.model, use_cache=False)
    model = encoder.model
    model.max_seq_length = config.max_seq_length
    if config.freeze_word_embeddings:
        getattr(model[0], "auto_model", model[0]).get_input_embeddings().weight.requires_grad_(False)
    sampler = make_sampler(config.sampler, config.alpha, language_weighting=config.language_weighting,
                           metadata=pairs.columns())

    def same_batches(*args, **kwargs):  # the trainer passes its own seed; the batches keep the run's
        return sampler(*args, **{**kwargs, "seed": config.seed})

    stamps: list[float] = []
    losses: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, max_steps=config.steps, per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate, warmup_steps=config.warmup_steps,
            seed=config.seed if torch_seed is None else torch_seed,
            data_seed=config.seed, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
            dataloader_drop_last=True, logging_steps=1, bf16=(precision or config.mixed_precision) == "bf16",
            prompts={"query": encoder.query_prefix, "positive": encoder.passage_prefix},
            batch_sampler=same_batches)
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=Dataset.from_dict({"query": pairs.query,
                                                                     "positive": pairs.positive}),
            loss=MultipleNegativesRankingLoss(model, scale=1.0 / config.temperature), callbacks=[Stamp()])
        trainer.train()
    return stamps, losses


def ours_fit(config) -> tuple[list[float], list[float]]:
    from hybridviz.training.trainer import train

    with tempfile.TemporaryDirectory() as root:
        log = train(config, root=Path(root)).train_log()
    return [r["seconds"] for r in log], [r["loss"] for r in log]


def gaps(stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(stamps, stamps[1:])]


def median_step(stamps: list[float]) -> float:
    return statistics.median(gaps(stamps)) if len(stamps) > 1 else float("nan")


def max_gap(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b)) if a and b else float("nan")


ARMS = {  # key: the label in the table (one_arm says how each runs)
    "baseline": "baseline: plain SentenceTransformerTrainer (MNRL, padded batch, SDPA)",
    "fast": "hybridviz train, fast step (sub-batches of 16, unpadded, eager attention, fast dropout masks)",
    "fast_torch_dropout": "fast step with torch's dropout (converged-me5-mlqa-r's step)",
    "padded": "hybridviz train, padded step (the 100-step bundles)",
    "baseline_other_dropout_seed": "baseline, other dropout seed (same batches): the noise yardstick",
    "baseline_fp32": "baseline in fp32 (what bf16 alone changes)",
}


def one_arm(key: str, model: str, steps: int, batch_size: int, mixed_precision: str | None
            ) -> tuple[list[float], list[float]]:
    """(step end times, losses) of one arm, in this process."""
    from hybridviz.training.trainer import FAST_STEP, TrainConfig, load_pairs

    config = TrainConfig(model=model, sampler="hybrid", steps=steps, batch_size=batch_size, save_steps=10 ** 6)
    if mixed_precision:
        config.mixed_precision = mixed_precision
    if key == "baseline":
        return plain_fit(config, load_pairs(config))
    if key == "baseline_other_dropout_seed":
        return plain_fit(config, load_pairs(config), torch_seed=config.seed + 1)
    if key == "baseline_fp32":
        return plain_fit(config, load_pairs(config), precision="fp32")
    if key == "fast":
        return ours_fit(replace(config, extra=dict(FAST_STEP)))
    if key == "fast_torch_dropout":
        return ours_fit(replace(config, extra={k: v for k, v in FAST_STEP.items() if k != "dropout"}))
    if key == "padded":
        return ours_fit(config)
    raise ValueError(key)


def arm_in_process(key: str, model: str, steps: int, batch_size: int, mixed_precision: str | None
                   ) -> tuple[list[float], list[float]]:
    """`one_arm` in a fresh Python process: one process running every arm in turn grew slower arm after arm (the
    same plain fit took 1.60 s a step first and 1.88 s fifth on an idle machine), which favoured the early arms."""
    import json
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "arm.json"
        cmd = [sys.executable, __file__, "--arm", key, "--arm-out", str(out), "--model", model, "--steps",
               str(steps), "--batch-size", str(batch_size)] + (["--mixed-precision", mixed_precision]
                                                                if mixed_precision else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"arm {key} failed:\n{proc.stderr[-3000:]}")
        data = json.loads(out.read_text())
    return data["stamps"], data["losses"]


def run(model: str, steps: int, batch_size: int, mixed_precision: str | None, fp32_reference: bool) -> dict:
    """Every arm in its own process, the baseline first and last (its step is the median over both runs)."""
    from hybridviz.training.trainer import TrainConfig

    config = TrainConfig(model=model, sampler="hybrid", steps=steps, batch_size=batch_size)
    if mixed_precision:
        config.mixed_precision = mixed_precision
    order = ["baseline", "fast", "fast_torch_dropout", "padded", "baseline_other_dropout_seed"]
    if fp32_reference and config.mixed_precision == "bf16":
        order.append("baseline_fp32")
    measured = {key: arm_in_process(key, model, steps, batch_size, mixed_precision) for key in order}
    base_t, base_loss = measured["baseline"]
    base_s = statistics.median(gaps(base_t) + gaps(measured["baseline_other_dropout_seed"][0]))
    rows = [{"key": key, "arm": ARMS[key], "median_step_s": median_step(stamps),
             "speed-up": base_s / median_step(stamps), "mean_loss_diff": mean_gap(base_loss, losses),
             "max_loss_diff": max_gap(base_loss, losses)} for key, (stamps, losses) in measured.items()]
    result = {"model": model, "steps": steps, "batch_size": batch_size, "mixed_precision": config.mixed_precision,
              "baseline": "plain SentenceTransformerTrainer, same batches (hybrid sampler, seed 0), loss, lr, "
                          "precision; its step is the median over its two runs (dropout seeds 0 and 1), the first "
                          "and the fifth arm; every arm in a fresh process",
              "rows": rows, "loss_curves": {key: losses for key, (_, losses) in measured.items()}}
    by = {r["key"]: r for r in rows}
    noise = by["baseline_other_dropout_seed"]["mean_loss_diff"]
    result["baseline_median_step_s"] = base_s
    result["loss_match"] = {"fast_mean_diff": by["fast"]["mean_loss_diff"], "noise_mean_diff": noise,
                            "rule": "the fast step's mean |loss difference| from the baseline, per step, is at most "
                                    "1.5x that of the baseline run with another dropout seed on the same batches",
                            "within_noise": by["fast"]["mean_loss_diff"] <= 1.5 * noise}
    return result


def mean_gap(a: list[float], b: list[float]) -> float:
    return statistics.fmean(abs(x - y) for x, y in zip(a, b)) if a and b else float("nan")


def profile(model: str, batch_size: int) -> None:
    """Where a plain padded step's time goes: the top operators of 4 steps (torch.profiler)."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from hybridviz.encoders import load_encoder
    from hybridviz.training.trainer import TrainConfig, load_pairs

    pairs = load_pairs(TrainConfig(model=model))
    m = load_encoder(model, use_cache=False).model
    m.max_seq_length = 128
    getattr(m[0], "auto_model", m[0]).get_input_embeddings().weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-5)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for k in range(4):
            q = ["query: " + t for t in pairs.query[k * batch_size:(k + 1) * batch_size]]
            p = ["passage: " + t for t in pairs.positive[k * batch_size:(k + 1) * batch_size]]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                Q, P = m(m.tokenize(q))["sentence_embedding"], m(m.tokenize(p))["sentence_embedding"]
                loss = torch.nn.functional.cross_entropy((Q @ P.T * 20).float(), torch.arange(len(q)))
            loss.backward()
            opt.step()
            opt.zero_grad()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="me5-small")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--mixed-precision", choices=["fp32", "bf16"], help="default: bf16 where the CPU has it")
    p.add_argument("--fp32-reference", action="store_true", help="also the baseline in fp32 (bf16 noise yardstick)")
    p.add_argument("--profile", action="store_true", help="print where a plain step's time goes, then stop")
    p.add_argument("--out", default="bench/results/train_step.json")
    p.add_argument("--arm", choices=list(ARMS), help=argparse.SUPPRESS)  # one arm, in this process (run() uses it)
    p.add_argument("--arm-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.arm:
        import json

        stamps, losses = one_arm(args.arm, args.model, args.steps, args.batch_size, args.mixed_precision)
        Path(args.arm_out).write_text(json.dumps({"stamps": stamps, "losses": losses}))
        return
    if args.profile:
        profile(args.model, args.batch_size)
        return
    result = run(args.model, args.steps, args.batch_size, args.mixed_precision, args.fp32_reference)
    write_result(args.out, "train_step", result)
    print_table(f"training step, {args.model}, batch {args.batch_size}, {result['mixed_precision']}, {args.steps} "
                f"steps on the same batches (speed-up = baseline / arm; goal >= 1.5)", result["rows"],
                ["arm", "median_step_s", "speed-up", "mean_loss_diff", "max_loss_diff"])
    m = result["loss_match"]
    print(f"\nloss curve over {args.steps} steps: fast step vs baseline mean |diff| {m['fast_mean_diff']:.4f}; "
          f"baseline vs another dropout seed {m['noise_mean_diff']:.4f} -> within noise: {m['within_noise']}")


if __name__ == "__main__":
    main()
