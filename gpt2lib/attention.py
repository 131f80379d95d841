"""Causal multi-head self-attention, as in GPT-2.

Scaled dot-product attention is from Vaswani et al. (2017), "Attention Is All You
Need"; the causal mask and the fused q/k/v projection `c_attn` follow OpenAI's
gpt-2/src/model.py (`attn`, `mask_attn_weights`).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import GPTConfig


def softmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """exp(s_i) / sum_j exp(s_j), computed stably by first subtracting the row maximum.

    Subtracting a constant leaves the result unchanged but keeps exp() from
    overflowing: softmax([1000., 1001.]) is [0.2689, 0.7311], not [nan, nan].
    A row of all -inf has no defined softmax and gives nan, as torch.softmax does.
    """
    shifted = scores - scores.amax(dim=dim, keepdim=True)
    exp = torch.exp(shifted)
    return exp / exp.sum(dim=dim, keepdim=True)


def causal_mask(T: int, T_past: int = 0, device=None) -> torch.Tensor:
    """Boolean [T, T_past + T] mask: True where query i may look at key j.

    Query i sits at position T_past + i and may attend to every key up to and
    including its own position. With T=3, T_past=0:
        [[1, 0, 0],
         [1, 1, 0],
         [1, 1, 1]]
    """
    rows = torch.arange(T, device=device)[:, None] + T_past  # [T, 1]
    cols = torch.arange(T_past + T, device=device)[None, :]  # [1, T_past + T]
    return cols <= rows


def padded_causal_mask(keep: torch.Tensor, T: int) -> torch.Tensor:
    """Boolean [B, 1, T, S] mask for a batch padded on the left; keep: [B, S] bool, True for real tokens.

    The last T of the S positions are the queries. Query i may look at key j if j is a
    real token at or before i's position. A padding query looks at itself only: its
    output is never used, and a row with no key allowed would make the softmax nan.
    keep = [[0, 1, 1]], T=3 -> [[1, 0, 0],
                                [0, 1, 0],
                                [0, 1, 1]]
    """
    B, S = keep.shape
    causal = causal_mask(T, S - T, device=keep.device)  # [T, S]
    allowed = causal & keep[:, None, :]  # [T, S] & [B, 1, S] -> [B, T, S]
    rows = torch.arange(T, device=keep.device)[:, None] + S - T  # [T, 1]
    cols = torch.arange(S, device=keep.device)[None, :]  # [1, S]
    allowed = allowed | (cols == rows)  # every query may look at itself
    return allowed[:, None]  # [B, T, S] -> [B, 1, T, S], the same for every head


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs)) with disallowed positions set to -inf *before* the softmax.

    q: [B, nh, T, hs], k: [B, nh, S, hs], mask: [T, S] bool -> weights [B, nh, T, S];
    every row sums to 1 over the allowed keys and is exactly 0 elsewhere.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # [B, nh, T, S]
    scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=-1)


class KVCache:
    """Keys and values of every token seen so far, for every layer.

    Generating one token at a time, a token's keys and values never change, so
    they are computed once and kept here: each step then costs O(T) instead of
    O(T^2). Storage is allocated once for the whole context: [B, nh, n_ctx, hs]
    per layer for keys and for values.
    """

    def __init__(self, config: GPTConfig, batch_size: int = 1, device=None, dtype=torch.float32):
        shape = (batch_size, config.n_head, config.n_ctx, config.head_size)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.config = config
        self.n_ctx = config.n_ctx
        self.length = 0  # tokens stored so far (the same for every layer)
        self.stored = set()  # layers that stored this step's tokens

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store k, v [B, nh, T, hs] after the cached ones; return all keys and values so far."""
        start, end = self.length, self.length + k.size(2)
        B, nh, _, hs = self.keys[0].shape
        if not 0 <= layer < len(self.keys) or (k.size(0), k.size(1), k.size(3)) != (B, nh, hs) or end > self.n_ctx:
            raise ValueError(
                f"this KVCache was made for {self.config} with batch_size={B}, but layer {layer} "
                f"of the model sends keys of shape [B={k.size(0)}, nh={k.size(1)}, T={k.size(2)}, hs={k.size(3)}] "
                f"at position {start}; make the cache with KVCache(model.config, batch_size=B) of the model that runs it"
            )
        self.stored.add(layer)
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]  # [B, nh, S, hs]

    def advance(self, T: int):
        """Called by the model once every layer has stored the T new tokens."""
        if len(self.stored) != len(self.keys):
            raise ValueError(
                f"this KVCache was made for {self.config}, but the model using it stored only "
                f"{len(self.stored)} layers; make the cache with KVCache(model.config) of the model that runs it"
            )
        self.stored = set()
        self.length += T


class CausalSelfAttention(nn.Module):
    """Every token mixes in the values of itself and the tokens before it. [B, T, C] -> [B, T, C]."""

    def __init__(self, config: GPTConfig, layer_index: int = 0):
        super().__init__()
        self.n_head = config.n_head
        self.layer_index = layer_index  # which slot of a KVCache is this layer's
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout_p = config.dropout
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def split_heads(self, x: torch.Tensor):
        """The fused projection, split into queries, keys and values, one slice per head."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # [B, T, 3C] -> 3 x [B, T, C]
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # [B, T, C] -> [B, nh, T, hs]
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # [B, T, C] -> [B, nh, T, hs]
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # [B, T, C] -> [B, nh, T, hs]
        return q, k, v

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        """Concatenate the heads' outputs and mix them with c_proj. [B, nh, T, hs] -> [B, T, C]"""
        B, nh, T, hs = y.shape
        y = y.transpose(1, 2).contiguous().view(B, T, nh * hs)  # [B, nh, T, hs] -> [B, T, C]
        return self.resid_dropout(self.c_proj(y))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, C] -> [B, T, C]. mask: from padded_causal_mask, for a padded batch."""
        q, k, v = self.split_heads(x)
        T_past = 0
        if cache is not None:
            T_past = cache.length
            k, v = cache.update(self.layer_index, k, v)  # [B, nh, T_past + T, hs]
        # torch's fused kernel computes exactly attention_weights(q, k, mask) @ v, faster
        # and without materializing the [T, S] matrix; tests check the two agree.
        dropout_p = self.dropout_p if self.training else 0.0
        if mask is not None:  # a padded batch: the causal mask and the padding in one [B, 1, T, S]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        elif T_past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        elif q.size(2) == 1:  # one new token may attend to every key: no mask to build
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            mask = causal_mask(q.size(2), T_past, device=x.device)  # [T, T_past + T]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return self.merge_heads(y)  # [B, nh, T, hs] -> [B, T, C]

    def forward_with_weights(self, x: torch.Tensor):
        """The same computation written out step by step; returns (output, weights).

        output: [B, T, C]; weights: [B, nh, T, T], row i = how much token i attends
        to each token j <= i in each head. For the book's views and checks.
        """
        q, k, v = self.split_heads(x)
        mask = causal_mask(x.size(1), device=x.device)  # [T, T]
        weights = attention_weights(q, k, mask)  # [B, nh, T, T]
        y = self.attn_dropout(weights) @ v  # [B, nh, T, T] @ [B, nh, T, hs] -> [B, nh, T, hs]
        return self.merge_heads(y), weights
