"""An int8 ONNX Runtime copy of a sentence-transformers encoder, for fast CPU encoding.

The transformer is exported to ONNX once (fp32), its MatMul weights quantised to int8 per output channel with
dynamic activation quantisation (ONNX Runtime's `quantize_dynamic`), and the result cached under
`cache/models/onnx-int8/<fp32 fingerprint>/`. Pooling and normalisation stay in numpy, as the model's own
sentence-transformers modules do them.

Why this path (see `bench/encode.py`): on the 2-core AVX512-VNNI CPU it was measured at ~2.3x plain
`SentenceTransformer.encode` with embeddings within cosine 0.99 of fp32; PyTorch's own dynamic int8
quantisation was no faster than bf16 and fell to cosine 0.96 (per-tensor scales), fusing the graph with
ONNX Runtime's transformer optimizer gained nothing here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from hybridviz.errors import EncoderUnavailable

FORMAT_VERSION = "1"  # bump when the export changes what it writes
# Texts per ONNX Runtime call, at most. Measured on 2 cores (256 XQuAD-R sentences): 4-8 texts per call ran
# ~1.5x faster than 64 — length-sorted small batches carry almost no padding and stay in cache.
BATCH = 8


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


def export_int8(model, folder: Path) -> Path:
    """Write `<folder>/model.int8.onnx` for the transformer of sentence-transformers `model` (atomic)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _pooling(model)  # refuse unsupported poolings before any work
    target = folder / "model.int8.onnx"
    if target.is_file():
        return target
    folder.parent.mkdir(parents=True, exist_ok=True)
    hf = model[0].auto_model

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
            torch.onnx.export(Transformer(hf).eval().float(), (example["input_ids"], example["attention_mask"]),
                              str(fp32), input_names=["input_ids", "attention_mask"],
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            "last_hidden_state": {0: "batch", 1: "tokens"}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(fp32), str(tmp / "model.int8.onnx"), weight_type=QuantType.QInt8,
                             per_channel=True)
        fp32.unlink()
        if not target.is_file():
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class OnnxInt8Model:
    """Runs the int8 graph with the model's tokenizer, pooling and normalisation; `encode` mirrors the subset
    of `SentenceTransformer.encode` that `Encoder` uses (`batch_size` is an upper bound: see BATCH)."""

    def __init__(self, model, path: Path, threads: int | None = None):
        import onnxruntime as ort

        self.tokenizer = model.tokenizer
        self.max_seq_length = model.max_seq_length
        self.pooling = _pooling(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or (os.cpu_count() or 1)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a damaged export is a cache entry: say so, the caller rebuilds
            raise EncoderUnavailable(f"int8 model at {path} could not be loaded ({type(exc).__name__}).") from None

    def encode(self, texts: list[str], batch_size: int = 64, show_progress_bar: bool = False,
               convert_to_numpy: bool = True, normalize_embeddings: bool = True) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # little padding per batch
        batch_size = max(1, min(batch_size, BATCH))
        out = None
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self.tokenizer([texts[i] for i in rows], return_tensors="np", padding=True, truncation=True,
                                   max_length=self.max_seq_length)
            mask = batch["attention_mask"].astype(np.int64)
            hidden = self.session.run(None, {"input_ids": batch["input_ids"].astype(np.int64),
                                             "attention_mask": mask})[0]
            if self.pooling == "cls":
                vectors = hidden[:, 0]
            else:
                weights = mask[..., None].astype(np.float32)
                vectors = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
            if normalize_embeddings:
                vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)
