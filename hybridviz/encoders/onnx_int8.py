"""An int8 ONNX Runtime copy of a sentence-transformers encoder, for fast CPU encoding.

The transformer is exported to ONNX once (fp32), its MatMul weights quantised to int8 per output channel with
dynamic activation quantisation (ONNX Runtime's `quantize_dynamic`), and the result cached under
`cache/models/onnx-int8/<fp32 fingerprint>-v<FORMAT_VERSION>/`. Pooling and normalisation stay in numpy, as the
model's own sentence-transformers modules do them.

Why this path (see `bench/encode.py`): on the 2-core AVX512-VNNI CPU it was measured at 3.4x (questions) and
3.9x (sentences) plain `SentenceTransformer.encode`, embeddings within cosine 0.994 of fp32. PyTorch's own
dynamic int8 quantisation was no faster than bf16 and fell to cosine 0.96 (per-tensor scales); fusing the graph
with ONNX Runtime's transformer optimizer gained nothing here.

Outlier channels are split off, LLM.int8()-style (Dettmers et al. 2022). Dynamic quantisation gives each
activation tensor one scale, so a single huge channel costs every other channel its resolution; in BERT-style
encoders that happens at the input of the FFN output projections (Bondarenko et al. 2021). In mE5-small, layer 4's
has one channel reaching ~69 while the others stay under ~5. On a small calibration set (MLQA-R training texts,
never evaluation data) each FFN output projection's input channels are measured; the few far above the median
(>= OUTLIER_FACTOR x) are multiplied in fp32 by a separate small MatMul, the rest in int8. With the split the
full XQuAD-R multilingual mAP of int8 rose from .277 to .290 (bf16: .299; `bench/evaluate.py`) at no measurable
cost in speed (`bench/encode.py`). What was split is written next to the graph in `quantization.json`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import queue
import random
import re
import shutil
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from hybridviz.errors import EncoderUnavailable

FORMAT_VERSION = "2"  # bump when the export changes what it writes (it also keys the int8 embedding cache)
# Texts per ONNX Runtime call, at most. Measured on 2 cores (256 XQuAD-R sentences): 4-8 texts per call ran
# ~1.5x faster than 64 — length-sorted small batches carry almost no padding and stay in cache.
BATCH = 8
MAX_SESSIONS = 4
CALIBRATION_TEXTS = 32  # per kind (questions, sentences): a few seconds of fp32 encoding at export
OUTLIER_FACTOR = 8.0  # a channel whose calibration max is >= 8x the median channel max is computed in fp32 ...
MAX_OUTLIER_CHANNELS = 4  # ... at most this many per projection


def _pooling(model) -> str:
    """'mean' or 'cls' from the model's Pooling module; other poolings are not exported."""
    for module in model:
        config = getattr(module, "get_config_dict", lambda: {})()
        mode = config.get("pooling_mode")
        if mode is None and "pooling_mode_mean_tokens" in config:
            mode = "mean" if config["pooling_mode_mean_tokens"] else ("cls" if config.get("pooling_mode_cls_token")
                                                                      else "other")
        if mode is not None:
            if mode not in ("mean", "cls"):
                raise EncoderUnavailable(f"int8 encoding supports mean or CLS pooling, not {mode!r}; "
                                         f"use precision fp32 or bf16 for this model.")
            return mode
    raise EncoderUnavailable("int8 encoding needs a Pooling module in the model; use fp32 or bf16.")


def calibration_texts(query_prefix: str, passage_prefix: str, n: int = CALIBRATION_TEXTS) -> list[str]:
    """`n` MLQA-R training questions and `n` sentences (seeded), with the model's prefixes; [] without MLQA-R."""
    from hybridviz.data.lareqa import load_lareqa
    from hybridviz.errors import HybridvizError

    try:
        data = load_lareqa("mlqa-r")
    except HybridvizError:
        return []
    rng = random.Random(0)
    return ([query_prefix + q.text for q in rng.sample(data.questions, min(n, len(data.questions)))]
            + [passage_prefix + s.text for s in rng.sample(data.sentences, min(n, len(data.sentences)))])


def ffn_output_projections(hf) -> dict[str, object]:
    """The FFN output projections (GELU output -> hidden) of a BERT-style transformer, by module path."""
    import torch

    return {name: module for name, module in hf.named_modules()
            if re.fullmatch(r"(.+\.)?layer\.\d+\.output\.dense", name) and isinstance(module, torch.nn.Linear)}


def channel_maxima(model, hf, texts: list[str]) -> dict[str, np.ndarray]:
    """Per FFN output projection of `hf`: the largest |input| per channel over `texts` (tokenised as `model` does)."""
    import torch

    maxima: dict = {}

    def record(name):
        def hook(module, args):
            x = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x
        return hook

    handles = [m.register_forward_pre_hook(record(n)) for n, m in ffn_output_projections(hf).items()]
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH):
                batch = model.tokenizer(texts[start : start + BATCH], return_tensors="pt", padding=True,
                                        truncation=True, max_length=model.max_seq_length)
                hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for handle in handles:
            handle.remove()
    return {name: x.float().numpy() for name, x in maxima.items()}


def outlier_channels(maxima: np.ndarray) -> list[int]:
    """Channels far above the typical one (>= OUTLIER_FACTOR x the median channel maximum), largest first."""
    typical = float(np.median(maxima))
    ranked = np.argsort(-maxima)[:MAX_OUTLIER_CHANNELS]
    return [int(c) for c in ranked if typical > 0 and maxima[c] >= OUTLIER_FACTOR * typical]


def _split_linear(linear, channels: list[int]):
    """y = W x + b with `channels` of x multiplied in fp32 by their own small MatMul (named `outlier`)."""
    import torch

    class OutlierSplitLinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            keep = torch.ones(linear.in_features)
            keep[channels] = 0
            self.register_buffer("keep", keep)
            self.register_buffer("channels", torch.tensor(channels))
            self.main = torch.nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
            self.main.load_state_dict(linear.state_dict())
            with torch.no_grad():
                self.main.weight[:, channels] = 0  # so they do not widen the int8 weight scales either
            self.outlier = torch.nn.Linear(len(channels), linear.out_features, bias=False)
            with torch.no_grad():
                self.outlier.weight.copy_(linear.weight[:, channels])

        def forward(self, x):
            return self.main(x * self.keep) + self.outlier(x.index_select(-1, self.channels))

    return OutlierSplitLinear()


def _outlier_matmuls(onnx_path: Path) -> list[str]:
    """The MatMul nodes of the split-off outlier channels: they stay fp32."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type == "MatMul" and "/outlier/" in node.name]


@contextlib.contextmanager
def _quiet_root_logger():
    """quantize_dynamic logs a generic pre-processing hint on the root logger at every export."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def export_int8(model, folder: Path, prefixes: tuple[str, str] = ("", "")) -> Path:
    """Write `<folder>/model.int8.onnx` for the transformer of sentence-transformers `model` (atomic), with
    `quantization.json` saying which projections stayed fp32 and why (see the module docstring). `prefixes`:
    the model's query and passage prefixes, put on the calibration texts."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _pooling(model)  # refuse unsupported poolings before any work
    target = folder / "model.int8.onnx"
    if target.is_file():
        return target
    folder.parent.mkdir(parents=True, exist_ok=True)
    hf = copy.deepcopy(model[0].auto_model).float().eval()  # the split below must not touch the fp32 model
    calibration = calibration_texts(*prefixes)
    maxima = channel_maxima(model, hf, calibration) if calibration else {}
    split = {}
    for name, channel_max in maxima.items():
        channels = outlier_channels(channel_max)
        if channels:
            parent, _, attribute = name.rpartition(".")
            setattr(hf.get_submodule(parent), attribute, _split_linear(hf.get_submodule(name), channels))
            split[name] = {"channels": channels, "max": [round(float(channel_max[c]), 2) for c in channels],
                           "median_channel_max": round(float(np.median(channel_max)), 3)}

    class Transformer(torch.nn.Module):  # keyword call: the exporter's positional args clash with HF's
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # Two texts of different length: the traced graph must keep the attention mask (padding present).
    example = model.tokenizer(["query: a", "query: a longer example sentence"], return_tensors="pt", padding=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".onnx-"))
    try:
        fp32 = tmp / "model.onnx"
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation notes about HF internals, not about us
            torch.onnx.export(Transformer(hf), (example["input_ids"], example["attention_mask"]),
                              str(fp32), input_names=["input_ids", "attention_mask"],
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            "last_hidden_state": {0: "batch", 1: "tokens"}})
        fp32_nodes = _outlier_matmuls(fp32)
        with warnings.catch_warnings(), _quiet_root_logger():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(fp32), str(tmp / "model.int8.onnx"), weight_type=QuantType.QInt8,
                             per_channel=True, nodes_to_exclude=fp32_nodes)
        fp32.unlink()
        (tmp / "quantization.json").write_text(json.dumps({
            "format_version": FORMAT_VERSION, "calibration_texts": len(calibration),
            "calibration_source": "MLQA-R training questions and sentences, seed 0" if calibration else None,
            "rule": f"FFN output projection input channels with a calibration max >= {OUTLIER_FACTOR:g}x the median "
                    f"channel max (at most {MAX_OUTLIER_CHANNELS} per projection) are multiplied in fp32",
            "split": split, "fp32_nodes": fp32_nodes}, indent=1))
        if not target.is_file():
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _workers(threads: int) -> tuple[int, int]:
    """(sessions, threads per session) for `threads` CPU threads.

    Several one-thread sessions run batches side by side: measured on 2 cores, two one-thread sessions
    encoded XQuAD-R questions ~1.2x faster than one two-thread session (short inputs leave a shared
    thread pool waiting on synchronisation), and sentences no slower. Each session holds its own copy
    of the weights (~120 MB for mE5-small), hence the cap.
    """
    sessions = max(1, min(threads, MAX_SESSIONS))
    return sessions, max(1, threads // sessions)


class OnnxInt8Model:
    """Runs the int8 graph with the model's tokenizer, pooling and normalisation; `encode` mirrors the subset
    of `SentenceTransformer.encode` that `Encoder` uses (`batch_size` is an upper bound: see BATCH)."""

    def __init__(self, model, path: Path, threads: int | None = None):
        import onnxruntime as ort

        self.tokenizer = model.tokenizer
        self.max_seq_length = model.max_seq_length
        self.pooling = _pooling(model)
        threads = threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or (os.cpu_count() or 1)
        n_sessions, per_session = _workers(threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = per_session
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.sessions = [ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                             for _ in range(n_sessions)]
        except Exception as exc:  # a damaged export is a cache entry: say so, the caller rebuilds
            raise EncoderUnavailable(f"int8 model at {path} could not be loaded ({type(exc).__name__}).") from None
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        for session in self.sessions:
            self._idle.put(session)
        # Fast tokenizers change their padding/truncation state on each call: concurrent calls fail with
        # "Already borrowed", so tokenisation is serialised (it is ~3 % of the encoding time).
        self._tokenize_lock = threading.Lock()

    def _tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        with self._tokenize_lock:
            batch = self.tokenizer(texts, return_tensors="np", padding=True, truncation=True,
                                   max_length=self.max_seq_length)
        return {"input_ids": batch["input_ids"].astype(np.int64),
                "attention_mask": batch["attention_mask"].astype(np.int64)}

    def _embed(self, inputs: dict[str, np.ndarray], normalize: bool) -> np.ndarray:
        session = self._idle.get()  # blocks while every session is busy (e.g. two app users at once)
        try:
            hidden = session.run(None, inputs)[0]
        finally:
            self._idle.put(session)
        mask = inputs["attention_mask"]
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        else:
            weights = mask[..., None].astype(np.float32)
            vectors = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
        if normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.astype(np.float32, copy=False)

    def encode(self, texts: list[str], batch_size: int = 64, show_progress_bar: bool = False,
               convert_to_numpy: bool = True, normalize_embeddings: bool = True) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # little padding per batch
        batch_size = max(1, min(batch_size, BATCH))
        chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)

        def work(rows: list[int]) -> np.ndarray:
            return self._embed(self._tokenize([texts[i] for i in rows]), normalize_embeddings)

        if len(self.sessions) == 1 or len(chunks) == 1:
            results = [work(rows) for rows in chunks]
        else:  # ONNX Runtime releases the GIL while it runs, so threads give real parallelism
            with ThreadPoolExecutor(len(self.sessions), thread_name_prefix="int8-encode") as executor:
                results = list(executor.map(work, chunks))
        out = np.zeros((len(texts), results[0].shape[1]), dtype=np.float32)
        for rows, vectors in zip(chunks, results):
            out[rows] = vectors
        return out
