"""The training loss, computed faster: InfoNCE over in-batch negatives on length-sorted sub-batches.

In a bi-encoder every text is embedded independently of the others in its batch, so the forward and backward
passes need not pad every text to the batch's longest one. `BucketedMultipleNegativesRankingLoss` sorts each
column's texts by token count, embeds them in sub-batches cut to their own longest text, puts the embeddings
back in batch order and hands them to sentence-transformers' own `MultipleNegativesRankingLoss` arithmetic
(`compute_loss_from_embeddings`): the loss is the same function of the same embeddings; only the padding, which
the attention mask already ignores, is gone. `bench/train_step.py` measures the speed and the loss curve against
the plain trainer.

Where the time went at batch 32 on 2 cores (bf16, mE5-small, `bench/train_step.py --profile`): the backward
pass of PyTorch's CPU flash attention (SDPA) for these short sequences, then padding. Hence also `set_attention`:
"eager" attention while training on the CPU (the model's own attention implementation is restored before it is
saved, so evaluation is unchanged). Inside the trainer, dropout's random masks then take about 0.4 s of a 2.4 s
fast step (cProfile: `torch.dropout`, 1,900 calls in 12 steps); they are part of the recipe and stay.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss


def embed_bucketed(model, features: dict[str, Any], sub_batch: int) -> torch.Tensor:
    """Sentence embeddings of one tokenised column, computed on length-sorted sub-batches of `sub_batch` texts
    without padding beyond each sub-batch's longest text; rows come back in the column's order.

    Falls back to one forward pass where the features are not right-padded token matrices (mUSE's packed
    input has no padding to remove)."""
    mask = features.get("attention_mask")
    if (sub_batch <= 0 or not torch.is_tensor(mask) or mask.dim() != 2 or mask.shape[0] <= 1
            or bool((mask[:, 0] == 0).any())):  # left padding (or an empty text): slicing would cut tokens
        return model(features)["sentence_embedding"]
    n, width = mask.shape
    lengths = mask.sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    chunks = []
    for start in range(0, n, sub_batch):
        idx = order[start:start + sub_batch]
        cut = int(lengths[idx].max())
        sub = {}
        for key, value in features.items():
            if torch.is_tensor(value) and value.dim() == 2 and value.shape == (n, width):
                sub[key] = value[idx, :cut]
            elif torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == n:
                sub[key] = value[idx]
            else:
                sub[key] = value
        chunks.append(model(sub)["sentence_embedding"])
    embeddings = torch.cat(chunks)
    return embeddings[torch.argsort(order)]


class BucketedMultipleNegativesRankingLoss(MultipleNegativesRankingLoss):
    """`MultipleNegativesRankingLoss` whose embeddings are computed by `embed_bucketed` (sub_batch texts a pass;
    0 = the parent's single padded pass)."""

    def __init__(self, model, sub_batch: int = 16, **kwargs):
        super().__init__(model, **kwargs)
        self.sub_batch = int(sub_batch)

    def forward(self, sentence_features: Iterable[dict[str, torch.Tensor]], labels: torch.Tensor) -> torch.Tensor:
        if self.sub_batch <= 0:
            return super().forward(sentence_features, labels)
        embeddings = [embed_bucketed(self.model, f, self.sub_batch) for f in sentence_features]
        return self.compute_loss_from_embeddings(embeddings, labels)

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "sub_batch": self.sub_batch}


def transformer_of(model):
    """The transformers model behind a sentence-transformers model's first module (None for mUSE)."""
    return getattr(model[0], "auto_model", None)


def set_attention(model, implementation: str | None) -> str | None:
    """Switch the attention implementation of `model`'s transformer; returns the previous one (None when the
    model has no transformers attention to switch, or `implementation` is None)."""
    inner = transformer_of(model)
    if inner is None or implementation is None or not hasattr(inner, "set_attn_implementation"):
        return None
    previous = inner.config._attn_implementation
    if previous != implementation:
        inner.set_attn_implementation(implementation)
    return previous


# ------------------------------------------------------------------------------------------ faster dropout
#
# Dropout is part of the recipe (p = 0.1 on the embeddings, every attention map and every sub-layer output), but
# its CPU kernel draws one random number per element (`aten::bernoulli_`): 22 % of the fast step's CPU time,
# 148 calls a step for mE5-small (torch.profiler, `bench/train_step.py`). `fast_dropout` draws one 64-bit number
# for four elements and keeps an element where its 16 bits are at or above the threshold: the same Bernoulli
# masks in distribution (P(drop) = round(p * 65536) / 65536, 0.1000061 for p = 0.1), from another random stream,
# about 3x faster. The loss curve's check is the bench's: within the noise of another dropout seed.

DROPOUT_ATTENTION = "hybridviz_eager"  # eager attention whose attention-map dropout is fast_dropout


def dropout_threshold(p: float) -> int:
    """The int16 threshold: a draw below it drops its element (P = round(p * 65536) / 65536)."""
    return -32768 + round(float(p) * 65536)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout of `x` with drop probability `p` (16-bit resolution), four mask bits from each 64-bit draw
    of torch's generator (so `torch.manual_seed` fixes it)."""
    if not training or p <= 0:
        return x
    if p >= 1:
        return x * 0
    n = x.numel()
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-2 ** 63, 2 ** 63 - 1)
    keep = draws.view(torch.int16)[:n].view(x.shape) >= dropout_threshold(p)
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


def _eager_attention_fast_dropout(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' eager attention (models/bert: `eager_attention_forward`) with `fast_dropout` on the map."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.nn.functional.softmax(weights, dim=-1)
    weights = fast_dropout(weights, dropout, module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _register_attention() -> None:
    """Register the attention, and eager's mask with it (an additive float mask; an implementation without a
    registered mask would get SDPA's boolean one)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if DROPOUT_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(DROPOUT_ATTENTION, _eager_attention_fast_dropout)
    if DROPOUT_ATTENTION not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        AttentionMaskInterface.register(DROPOUT_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["eager"])


class _FastDropout(torch.nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def use_fast_dropout(model) -> Callable[[], None] | None:
    """Swap every `nn.Dropout` of `model`'s transformer for `fast_dropout` and its attention for the eager one
    with `fast_dropout`; returns the function that puts the originals back (before the model is saved), or None
    when the model has no transformers module to change (mUSE)."""
    inner = transformer_of(model)
    if inner is None or not hasattr(inner, "set_attn_implementation"):
        return None
    _register_attention()
    swapped = []
    for parent in inner.modules():
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Dropout:
                fast = _FastDropout(child.p)
                fast.train(child.training)  # the model's mode as it stands (eval stays eval)
                setattr(parent, name, fast)
                swapped.append((parent, name, child))
    previous = set_attention(model, DROPOUT_ATTENTION)

    def restore() -> None:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        if previous:
            set_attention(model, previous)

    return restore
