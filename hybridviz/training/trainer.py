"""Fine-tuning on sentence-transformers' trainer: InfoNCE over in-batch negatives with our batch samplers.

`TrainConfig.validate()` rejects settings that make no sense before any work starts. `train()` creates (or
resumes) a run in the registry, takes the one training slot, trains, and saves the model with its prompts.
Progress, ETA and the loss curve go to the run's files; a `cancel` file stops it at the next step.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from hybridviz.encoders.policy import default_precision, encoding_device, training_precision_problem
from hybridviz.errors import HybridvizError
from hybridviz.fileio import read_jsonl
from hybridviz.provenance import provenance
from hybridviz.training.data import DEFAULT_GUARD, check_zero_shot
from hybridviz.training.runs import Run, reconcile, training_slot, write_json_atomic
from hybridviz.training.samplers import SAMPLERS, SourceMixBatchSampler, make_sampler


class TrainConfigError(HybridvizError):
    """A training setting that makes no sense; raised before any work starts."""


@dataclass
class TrainConfig:
    model: str = "me5-small"
    sampler: str = "hybrid"
    alpha: float = 0.5
    steps: int = 100
    batch_size: int = 32
    # chosen by `python -m hybridviz sweep` (held-out MLQA-R groups, 100 hybrid steps): cache/reference/lr-sweep
    learning_rate: float = 3e-5
    warmup_steps: int = 0
    temperature: float = 0.05  # InfoNCE temperature; the loss's scale is 1 / temperature
    symmetric: bool = False  # also rank queries for each passage
    max_seq_length: int = 128
    freeze_word_embeddings: bool = True  # the 250k x 384 matrix: most parameters, least to gain on CPU
    train_data: str = "mlqa-r"  # or a train-extra source (mintaka, bipar, xlinghealth, xor-tydi), or a JSONL file
    allow_eval_overlap: bool = False  # the zero-shot guard refuses training texts found in evaluation data
    train_languages: list[str] | None = None
    language_weighting: str | float = "uniform"
    seed: int = 0
    save_steps: int = 50
    holdout: float = 0.0  # share of training groups held out for validation (the lr / warm-up sweep)
    holdout_seed: int = 0
    # bf16 autocast: 1.5x faster steps on CPUs with native bf16, same loss curve (bench/train_step.py); None: the
    # policy's default for `model` (encoders/policy.py), resolved when the config is made
    mixed_precision: str | None = None
    extra: dict = field(default_factory=dict)  # later settings, kept out of run ids at their defaults

    def __post_init__(self):
        if self.mixed_precision is None:  # the one default (encoders/policy.py): bf16 where fast; tiny, muse fp32
            self.mixed_precision = default_precision(self.model)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The config of `asdict(config)`, or of a run's config.json (whose other keys, the data checksums and
        provenance, are left out): the same settings, hence the same run id."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    # -- later settings, read from `extra` (absent = the behaviour every committed run was trained with) --
    @property
    def sub_batch(self) -> int:
        """Texts per forward pass inside a batch, length-sorted, unpadded (training/losses.py); 0 = one padded pass."""
        return int(self.extra.get("sub_batch", 0))

    @property
    def attention(self) -> str | None:
        """"cpu-eager": eager attention while training on the CPU (faster backward than SDPA for short texts)."""
        return self.extra.get("attention")

    @property
    def dropout(self) -> str | None:
        """"cpu-fast": dropout's masks drawn four elements a random number while training on the CPU
        (training/losses.py: fast_dropout; the same masks in distribution, another random stream)."""
        return self.extra.get("dropout")

    @property
    def lr_scheduler(self) -> str:
        return str(self.extra.get("lr_scheduler", "linear"))

    @property
    def weight_decay(self) -> float:
        return float(self.extra.get("weight_decay", 0.0))

    @property
    def eval_steps(self) -> int:
        """Score the held-out validation pool every this many steps (0: no validation during training)."""
        return int(self.extra.get("eval_steps", 0))

    @property
    def patience(self) -> int:
        """Stop after this many validations without a gain in `criterion` (0: train to `steps`)."""
        return int(self.extra.get("patience", 0))

    @property
    def criterion(self) -> str:
        return str(self.extra.get("criterion", "mean_mAP"))

    @property
    def holdout_pool(self) -> str:
        """"answers": hold out parallel groups, pool of their answers; "paragraphs": hold out paragraph
        components, pool of every sentence of their paragraphs (training/validation.py)."""
        return str(self.extra.get("holdout_pool", "answers"))

    @property
    def probe_steps(self) -> list[int]:
        """Steps at which a seeded XQuAD-R paragraph sample is scored (reported, never used to choose)."""
        return [int(s) for s in self.extra.get("probe_steps", [])]

    @property
    def source_temperature(self) -> float:
        """A mix draws each batch's source with probability ∝ (its pairs)^t: 1 = by size (the paper), 0 = uniform."""
        return float(self.extra.get("source_temperature", 1.0))

    def validate(self, n_pairs: int | None = None, languages: list[str] | None = None) -> None:
        problems = []
        if self.sampler not in SAMPLERS:
            problems.append(f"sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}")
        if not 0.0 <= float(self.alpha) <= 1.0:
            problems.append(f"alpha must lie in [0, 1], got {self.alpha}")
        if int(self.steps) < 1:
            problems.append(f"steps must be at least 1, got {self.steps}")
        if int(self.batch_size) < 2:
            problems.append(f"batch size must be at least 2 (in-batch negatives), got {self.batch_size}")
        if not 0 < float(self.learning_rate) < 1:
            problems.append(f"learning rate must lie in (0, 1), got {self.learning_rate}")
        if not 0 < float(self.temperature) <= 10:
            problems.append(f"temperature must lie in (0, 10], got {self.temperature}")
        if not 0 <= int(self.warmup_steps) <= int(self.steps):
            problems.append(f"warm-up steps must lie in [0, steps], got {self.warmup_steps}")
        if not 0.0 <= float(self.holdout) < 1.0:
            problems.append(f"holdout must lie in [0, 1), got {self.holdout}")
        if training_precision_problem(self.mixed_precision):
            problems.append(training_precision_problem(self.mixed_precision))
        if not 8 <= int(self.max_seq_length) <= 512:
            problems.append(f"max sequence length must lie in [8, 512], got {self.max_seq_length}")
        if n_pairs is not None and self.batch_size > n_pairs:
            problems.append(f"batch size {self.batch_size} is larger than the {n_pairs} training pairs")
        langs = self.train_languages or languages
        if langs is not None and len(set(langs)) < 2 and (self.sampler == "x-y" or
                                                          (self.sampler == "hybrid" and float(self.alpha) < 1)):
            problems.append(f"the {self.sampler} sampler needs at least two training languages (X-Y batches pair "
                            f"different languages); got {', '.join(langs)}")
        if languages is not None and self.train_languages:
            unknown = sorted(set(self.train_languages) - set(languages))
            if unknown:
                problems.append(f"unknown training language(s) {', '.join(unknown)} "
                                f"(available: {', '.join(languages)})")
        if not 0.0 <= self.source_temperature <= 1.0:
            problems.append(f"source temperature must lie in [0, 1], got {self.source_temperature}")
        if self.sub_batch < 0:
            problems.append(f"sub-batch must be 0 (off) or a positive number of texts, got {self.sub_batch}")
        if self.attention not in (None, "cpu-eager", "eager", "sdpa"):
            problems.append(f"attention must be cpu-eager, eager or sdpa, not {self.attention!r}")
        if self.dropout not in (None, "cpu-fast", "fast"):
            problems.append(f"dropout must be cpu-fast or fast (or unset: torch's own), not {self.dropout!r}")
        if self.lr_scheduler not in ("linear", "constant", "constant_with_warmup", "cosine"):
            problems.append(f"lr scheduler must be linear, constant, constant_with_warmup or cosine, "
                            f"not {self.lr_scheduler!r}")
        if not 0.0 <= self.weight_decay < 1.0:
            problems.append(f"weight decay must lie in [0, 1), got {self.weight_decay}")
        if self.eval_steps < 0 or self.patience < 0:
            problems.append("eval steps and patience must be 0 (off) or positive")
        if (self.eval_steps or self.patience) and not float(self.holdout) > 0:
            problems.append("validation during training needs a held-out share (holdout > 0)")
        if self.patience and not self.eval_steps:
            problems.append("early stopping (patience) needs eval steps")
        from hybridviz.training.validation import CRITERIA, POOLS

        if self.criterion not in CRITERIA:
            problems.append(f"criterion must be one of {', '.join(CRITERIA)}, not {self.criterion!r}")
        if self.holdout_pool not in POOLS:
            problems.append(f"holdout pool must be one of {', '.join(POOLS)}, not {self.holdout_pool!r}")
        if problems:
            raise TrainConfigError("Invalid training settings: " + "; ".join(problems) + ".")

    @property
    def train_data_sha256(self) -> str | None:
        """The content hash a JSONL training file was pinned to (`pin_training_file`); None for built-in data
        and for unpinned files (the lab's uploads, whose file name is their hash)."""
        return self.extra.get("train_data_sha256")

    def run_id(self) -> str:
        """Deterministic: the same settings name the same run, so a grid can skip what is finished. A pinned JSONL
        file is named by its content hash, not its path: the same pairs give the same run wherever the file lies,
        changed pairs another run (unpinned configs, and every built-in source, hash exactly as before)."""
        settings = asdict(self)
        if self.train_data_sha256:
            settings["train_data"] = "jsonl"
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        alpha = f"-a{self.alpha:g}" if self.sampler == "hybrid" else ""
        return f"{self.sampler}{alpha}-s{self.seed}-{self.steps}st-{digest}"


def is_training_file(train_data: str) -> bool:
    """Whether `train_data` names a user's JSONL file of {id, lang, query, positive} rather than built-in data."""
    return str(train_data).endswith(".jsonl")


def pin_training_file(config: TrainConfig) -> TrainConfig:
    """`config` with its JSONL training file validated line by line (size-checked as in the lab) and its sha256
    pinned in `extra`, so the run id follows the file's content; built-in data is returned unchanged. A config
    pinned to other content than the file now holds is refused."""
    if not is_training_file(config.train_data):
        return config
    from hybridviz.training.data import jsonl_pairs

    sha = next(iter(jsonl_pairs(config.train_data).files.values()))
    if config.train_data_sha256 and config.train_data_sha256 != sha:
        raise TrainConfigError(_changed_file(config.train_data, config.train_data_sha256, sha))
    return replace(config, extra={**config.extra, "train_data_sha256": sha})


def _changed_file(path: str, then: str, now: str) -> str:
    return (f"Training file {path} has changed since it was pinned (sha256 {then[:12]}… then, {now[:12]}… now): "
            f"restore it, or start a new bundle or run with the new file.")


# The fast training step (bench/train_step.py): length-sorted sub-batches of 16 texts, eager attention on the CPU
FAST_STEP = {"sub_batch": 16, "attention": "cpu-eager", "dropout": "cpu-fast"}


def _split(config: TrainConfig):
    from hybridviz.training.data import subset
    from hybridviz.training.validation import split_groups

    pairs = _all_pairs(config)
    if not config.holdout:
        return pairs, subset(pairs, [])
    held = split_groups(pairs, config.holdout, config.holdout_seed, config.holdout_pool, config.train_data,
                        config.train_languages)
    return (subset(pairs, [i for i, g in enumerate(pairs.group) if g not in held]),
            subset(pairs, [i for i, g in enumerate(pairs.group) if g in held]))


def load_pairs(config: TrainConfig):
    """The training pairs of `config` (without its held-out validation groups)."""
    return _split(config)[0]


def validation_pairs(config: TrainConfig):
    return _split(config)[1]


def validation_corpus(config: TrainConfig):
    """The held-out retrieval task of `config` (training/validation.py)."""
    from hybridviz.training.validation import validation_corpus as build

    return build(validation_pairs(config), config.holdout_pool, config.train_data, config.train_languages)


def _all_pairs(config: TrainConfig):
    from hybridviz.data.train_extra import LOADERS
    from hybridviz.training.data import extra_pairs, jsonl_pairs, lareqa_pairs, mix_pairs, subset

    if "+" in config.train_data:  # a multi-source mix, e.g. "mlqa-r+mintaka+bipar"
        names = config.train_data.split("+")
        if len(set(names)) != len(names) or any(n.endswith(".jsonl") or "+" in n for n in names):
            raise TrainConfigError(f"A training mix names distinct built-in sources, got {config.train_data!r}.")
        # in a mix each source trains on the requested languages it has (MLQA-R has no fr or ja, Mintaka no zh
        # ...); a language that no source has is still an error
        sources = {n: _all_pairs(replace(config, train_data=n,
                                         train_languages=_languages_of(n, config.train_languages)))
                   for n in names}
        if config.train_languages:
            found = {lang for pairs in sources.values() for lang in pairs.query_lang + pairs.passage_lang}
            missing = [lang for lang in config.train_languages if lang not in found]
            if missing:
                raise TrainConfigError(f"No source of {config.train_data!r} has {', '.join(missing)}.")
        return mix_pairs(sources)
    if config.train_data == "mlqa-r":
        return lareqa_pairs(config.train_data, config.train_languages)
    if config.train_data in LOADERS:
        return extra_pairs(config.train_data, config.train_languages)
    if is_training_file(config.train_data):
        pairs = jsonl_pairs(config.train_data)
        sha = next(iter(pairs.files.values()))
        if config.train_data_sha256 and config.train_data_sha256 != sha:  # the run id would lie about its data
            raise TrainConfigError(_changed_file(config.train_data, config.train_data_sha256, sha))
        if config.train_languages:
            pairs = subset(pairs, [i for i, (q, p) in enumerate(zip(pairs.query_lang, pairs.passage_lang))
                                   if q in config.train_languages and p in config.train_languages])
        return pairs
    raise TrainConfigError(f"Unknown training data {config.train_data!r}; use 'mlqa-r', one of "
                           f"{', '.join(LOADERS)} (train-extra) or a .jsonl file "
                           f"(XQuAD-R and MKQA are evaluation data).")


def _languages_of(source: str, languages: list[str] | None) -> list[str] | None:
    """The requested languages that a LAReQA source has (the extra sources filter by language themselves)."""
    from hybridviz.data.lareqa import BENCHMARKS

    if not languages or source not in BENCHMARKS:
        return languages
    return [lang for lang in languages if lang in BENCHMARKS[source]["languages"]]


def unseen_languages(seen: list[str]) -> dict[str, list[str]]:
    """Evaluation languages the training never saw (zh_cn counts as zh), so results can be split."""
    from hybridviz.data.lareqa import BENCHMARKS

    base = {lang.split("_")[0] for lang in seen}
    mkqa = ["ar", "en", "es", "fi", "ja", "km", "ko", "ms", "ru", "sv", "tr", "zh_cn"]  # the default subset
    return {"xquad-r": [x for x in BENCHMARKS["xquad-r"]["languages"] if x not in base],
            "mkqa": [x for x in mkqa if x.split("_")[0] not in base]}


def _run_callback(run: Run, total_steps: int, on_progress=None):
    """A TrainerCallback that writes the loss curve, progress and ETA, and stops on a cancel request."""
    from transformers import TrainerCallback  # imported here: the trainer module loads without transformers

    class RunCallback(TrainerCallback):
        def __init__(self):
            self.start = time.perf_counter()
            self.first_step = None

        def on_step_end(self, args, state, control, **kwargs):
            if self.first_step is None:
                self.first_step = state.global_step - 1
            done = state.global_step - self.first_step
            elapsed = time.perf_counter() - self.start
            eta = elapsed / max(done, 1) * (total_steps - state.global_step)
            run.set_status("running", pid=os.getpid(), step=state.global_step, total_steps=total_steps,
                           progress=state.global_step / total_steps, eta_s=round(eta, 1),
                           world_size=args.world_size)
            if on_progress:
                on_progress(state.global_step, total_steps, eta)
            if run.cancel_requested():
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                run.log({"step": state.global_step, "loss": float(logs["loss"]),
                         "lr": float(logs.get("learning_rate", 0.0)),
                         "seconds": round(time.perf_counter() - self.start, 3)})

    return RunCallback()


def prepare_run(config: TrainConfig, root: Path | None = None, pairs=None,
                benchmarks: tuple[str, ...] | None = None) -> Run:
    """Validate against the data, then create the run folder (config + queued status). Nothing is trained.

    `benchmarks`: the evaluation sets the zero-shot guard checks the pairs against (training/data.py
    guard_benchmarks: a grid passes its chosen sets, custom ones included); None: xquad-r and MKQA. Not part of
    the run id: the guard decides whether a run may train, not what it trains."""
    pairs = pairs if pairs is not None else load_pairs(config)
    config.validate(len(pairs), pairs.languages)
    guard = tuple(benchmarks) if benchmarks is not None else DEFAULT_GUARD
    if not config.allow_eval_overlap:
        check_zero_shot(pairs, guard)
    run = Run(config.run_id(), root)
    write_json_atomic(run.dir / "config.json", {
        **asdict(config), "run_id": run.id, "data_files": pairs.files, "pairs": pairs.counts(),
        "zero_shot_checked": [] if config.allow_eval_overlap else list(guard),
        "seen_languages": pairs.languages, "unseen_languages": unseen_languages(pairs.languages),
        "provenance": provenance(config.seed, train_max_seq_length=config.max_seq_length,
                                 mixed_precision=config.mixed_precision),
    })
    if run.status().get("state") != "done":
        run.set_status("queued", pid=os.getpid())
    return run


def _rank() -> int:
    """This process's rank under torchrun (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def _world_size() -> int:
    """The number of processes under torchrun (1 when not distributed)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def train(config: TrainConfig, root: Path | None = None, on_progress=None, wait: bool = True,
          benchmarks: tuple[str, ...] | None = None, slot: str = "registry") -> Run:
    """Train (or resume) the run of `config`; returns the Run. A finished run is returned untouched.

    `slot`: "registry" (one fine-tune at a time in the registry: the lab, a study, a serial grid) or "run" (only
    this run's own lock: the grid's Ray executor, whose cluster places each unit on the cores it declared).

    Under `torchrun` every rank trains (DDP through the HF trainer); only rank 0 touches the registry.
    `benchmarks`: the zero-shot guard's evaluation sets (`prepare_run`).
    """
    config.validate()
    pairs = load_pairs(config)
    if _rank() != 0:
        run = Run(config.run_id(), root)
        _fit(config, run, pairs, None)
        _leave_process_group()
        return run
    reconcile(root)
    run = prepare_run(config, root, pairs, benchmarks)
    if run.status().get("state") == "done":
        return run
    if slot not in ("registry", "run"):
        raise ValueError(f"slot {slot!r}: registry or run")
    with training_slot(root, wait=wait, run_id=run.id if slot == "run" else None):
        if run.status().get("state") == "done":  # finished by another process while this one waited
            return run
        run.dir.joinpath("cancel").unlink(missing_ok=True)
        run.discard_incomplete_checkpoints()
        run.set_status("running", pid=os.getpid(), step=0, total_steps=config.steps, progress=0.0,
                       started=time.time())
        try:
            _fit(config, run, pairs, on_progress)
        except BaseException as exc:
            run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        state = "cancelled" if run.cancel_requested() else "done"
        run.set_status(state, progress=1.0 if state == "done" else run.status().get("progress", 0.0),
                       finished=time.time())
    _leave_process_group()
    return run


def _leave_process_group() -> None:
    """Under torchrun, end the rank's process group once its training is over: a rank that exits with gloo's
    threads still running can abort ("terminate called without an active exception", exit -6) after a run
    that finished."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _fit(config: TrainConfig, run: Run, pairs, on_progress) -> None:
    import torch
    from datasets import Dataset, DatasetDict
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from hybridviz.encoders import load_encoder
    from hybridviz.encoders.prompts import saved_prompts

    torch.manual_seed(config.seed)
    encoder = load_encoder(config.model, use_cache=False)
    model = encoder.model
    model.prompts = saved_prompts(encoder.query_prefix, encoder.passage_prefix)  # checkpoints save them too
    inference_length = model.max_seq_length  # restored before saving: models are compared at equal lengths
    model.max_seq_length = config.max_seq_length
    if config.freeze_word_embeddings:
        # a transformers model behind the first module (mE5, XLM-R), or a module with its own table (mUSE)
        getattr(model[0], "auto_model", model[0]).get_input_embeddings().weight.requires_grad_(False)
    # Only the two text columns reach the loss; the sampler reads languages and groups from `pairs`.
    parts = pairs.by_source()
    if len(parts) > 1:  # one dataset per source; SourceMixBatchSampler picks the source of each batch
        dataset = DatasetDict({name: Dataset.from_dict({"query": p.query, "positive": p.positive})
                               for name, p in parts.items()})
        metadata = {name: p.columns() for name, p in parts.items()}
    else:
        dataset = Dataset.from_dict({"query": pairs.query, "positive": pairs.positive})
        metadata = pairs.columns()
    directions = ("query_to_doc", "doc_to_query") if config.symmetric else ("query_to_doc",)
    if config.sub_batch:
        from hybridviz.training.losses import BucketedMultipleNegativesRankingLoss

        loss = BucketedMultipleNegativesRankingLoss(model, sub_batch=config.sub_batch, scale=1.0 / config.temperature,
                                                    directions=directions)
    else:
        loss = MultipleNegativesRankingLoss(model, scale=1.0 / config.temperature, directions=directions)
    from hybridviz.training.losses import set_attention, use_fast_dropout

    attention = {"cpu-eager": "eager" if encoding_device() == "cpu" else None}.get(config.attention, config.attention)
    restore_attention = set_attention(model, attention)
    fast = config.dropout == "fast" or (config.dropout == "cpu-fast" and encoding_device() == "cpu")
    restore_dropout = use_fast_dropout(model) if fast else None
    evaluator, eval_args, stop_callbacks = None, {}, []
    if config.eval_steps:
        evaluator, eval_args, stop_callbacks = _early_stopping(config, run, encoder, model)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(run.checkpoints_dir), max_steps=config.steps,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps, seed=config.seed, data_seed=config.seed, logging_steps=1,
        **{"save_strategy": "steps", "save_steps": config.save_steps, "save_total_limit": 1, **eval_args},
        report_to=[], lr_scheduler_type=config.lr_scheduler, weight_decay=config.weight_decay,
        dataloader_drop_last=True, use_cpu=encoding_device() == "cpu", disable_tqdm=True,
        bf16=config.mixed_precision == "bf16",
        ddp_backend="gloo" if _world_size() > 1 and encoding_device() == "cpu" else None,
        prompts={"query": encoder.query_prefix, "positive": encoder.passage_prefix},
        batch_sampler=make_sampler(config.sampler, config.alpha, language_weighting=config.language_weighting,
                                   metadata=metadata),
        multi_dataset_batch_sampler=functools.partial(SourceMixBatchSampler, temperature=config.source_temperature),
    )
    callbacks = [_run_callback(run, config.steps, on_progress)] if _rank() == 0 else []
    if config.probe_steps and _rank() == 0:
        callbacks.append(_probe_callback(config, run, encoder, model))
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss,
                                         callbacks=callbacks + stop_callbacks, evaluator=evaluator)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our callback logs; the printer only floods stdout
    last = run.last_checkpoint()
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    if restore_dropout:
        restore_dropout()  # torch's own dropout modules and the attention set before, in the saved model
    if restore_attention:
        set_attention(model, restore_attention)  # evaluation reads the saved model as its base is read
    if _rank() == 0 and config.eval_steps:
        _record_stop(config, run, trainer)
    if _rank() == 0 and config.probe_steps:
        _probe(config, run, encoder, model, "best" if config.eval_steps else trainer.state.global_step)
    if _rank() == 0:
        model.prompts = saved_prompts(encoder.query_prefix, encoder.passage_prefix)  # what plain ST reads
        model.max_seq_length = inference_length  # trained on 128 tokens (CPU), read texts as the base does
        model.save(str(run.model_dir))
        run.set_status("running", saved_max_seq_length=model.max_seq_length)  # the length evaluations read


# ------------------------------------------------------------------------------ early stopping and probes


def _early_stopping(config: TrainConfig, run: Run, encoder, model):
    """(evaluator, training arguments, callbacks) that score the held-out pool every `eval_steps`, keep the best
    checkpoint by the declared criterion and stop after `patience` validations without a gain."""
    from transformers import EarlyStoppingCallback

    from hybridviz.training.validation import HeldOutEvaluator

    corpus = validation_corpus(config)

    def on_score(step, scores, seconds):
        if _rank() == 0:
            with open(run.dir / "validation.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": int(step), **scores, "eval_seconds": round(seconds, 2)}) + "\n")

    evaluator = HeldOutEvaluator(corpus, encoder.query_prefix, encoder.passage_prefix, config.criterion,
                                 config.mixed_precision, on_score=on_score)
    if _rank() == 0 and not (run.dir / "validation.jsonl").exists():
        # step 0 of the curve: the model before any update (what fine-tuning gains or costs on these groups)
        on_score(0, evaluator.score(model), 0.0)
        write_json_atomic(run.dir / "validation_pool.json", {"pool": corpus.notes.get("pool"), **corpus.counts(),
                                                              "criterion": config.criterion})
    args = dict(eval_strategy="steps", eval_steps=config.eval_steps, save_steps=config.eval_steps,
                load_best_model_at_end=True, metric_for_best_model=evaluator.metric_key, greater_is_better=True,
                save_total_limit=2)
    callbacks = [EarlyStoppingCallback(early_stopping_patience=config.patience)] if config.patience else []
    return evaluator, args, callbacks


def _record_stop(config: TrainConfig, run: Run, trainer) -> None:
    """The step training stopped at and the step whose checkpoint was kept (the best by the criterion)."""
    state = trainer.state
    best = state.best_model_checkpoint
    best_step = int(Path(best).name.split("-")[1]) if best else None
    base = next((r for r in read_jsonl(run.dir / "validation.jsonl") if r["step"] == 0), None)
    # the kept checkpoint is the best *trained* one; whether it beats the model before training is recorded
    beats_base = (None if base is None or state.best_metric is None
                  else float(state.best_metric) > base[config.criterion])
    run.set_status("running", stopped_at=int(state.global_step), best_step=best_step,
                   best_metric=None if state.best_metric is None else float(state.best_metric),
                   criterion=config.criterion, early_stopped=int(state.global_step) < int(config.steps),
                   beats_base=beats_base)


def _probe(config: TrainConfig, run: Run, encoder, model, step) -> None:
    from hybridviz.training.validation import score_corpus

    corpus = _probe_corpus_cached()
    start = time.perf_counter()
    scores = score_corpus(model, corpus, encoder.query_prefix, encoder.passage_prefix, config.mixed_precision)
    with open(run.dir / "probes.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, "task": corpus.task, "sample": corpus.notes["sample"], **scores,
                            "eval_seconds": round(time.perf_counter() - start, 2)}) + "\n")


@functools.lru_cache(maxsize=1)
def _probe_corpus_cached():
    from hybridviz.training.validation import probe_corpus

    return probe_corpus()


def _probe_callback(config: TrainConfig, run: Run, encoder, model):
    from transformers import TrainerCallback

    steps = set(config.probe_steps)

    class ProbeCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in steps and state.global_step not in {
                    r.get("step") for r in read_jsonl(run.dir / "probes.jsonl")}:  # a resumed run keeps its probes
                _probe(config, run, encoder, model, state.global_step)
            return control

    return ProbeCallback()

