"""The whole GPT-2: embeddings, a stack of blocks, a final layer norm and the LM head.

Follows OpenAI's gpt-2/src/model.py (`model`) and uses its checkpoint names (wte,
wpe, h.{i}, ln_f) so that pretrained weights load key for key; the module layout
is that of Karpathy's nanoGPT.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from .attention import KVCache, padded_causal_mask
from .block import Block
from .config import GPTConfig
from .layers import LayerNorm


@dataclass
class Trace:
    """Everything the book looks at in one forward pass.

    logits: [B, T, V]; residual: n_layer + 1 tensors [B, T, C], the residual stream
    after the embeddings and after each block (before ln_f); attentions: n_layer
    tensors [B, nh, T, T].
    """

    logits: torch.Tensor
    residual: list[torch.Tensor]
    attentions: list[torch.Tensor]


class GPT(nn.Module):
    """Token ids [B, T] (LongTensor) -> logits [B, T, V], scores for the next token."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.n_vocab, config.n_embd)  # token embeddings [V, C]
        self.wpe = nn.Embedding(config.n_ctx, config.n_embd)  # position embeddings [n_ctx, C]
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([Block(config, i) for i in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, config.layer_norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.n_vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: the same [V, C] matrix
        self.apply(self._init_weights)
        # GPT-2 scales the layers that write into the residual stream by 1/sqrt(2 n_layer),
        # so the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        """Distinct parameters (the tied LM head is counted once, as wte)."""
        return sum(p.numel() for p in self.parameters())

    def check_ids(self, idx: torch.Tensor, T_past: int = 0):
        """Raise a clear error if idx is not a [B, T] LongTensor of valid token ids."""
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or idx.dim() != 2:
            got = f"{type(idx).__name__} {getattr(idx, 'dtype', '')} {tuple(getattr(idx, 'shape', ()))}"
            raise TypeError(
                f"the model takes token ids as a LongTensor of shape [B, T], got {got}; "
                f"e.g. torch.tensor([ids]) for one sequence"
            )
        B, T = idx.shape
        if T == 0:
            raise ValueError("the model needs at least one token; got an empty sequence")
        if T_past + T > self.config.n_ctx:
            raise ValueError(
                f"{T_past + T} tokens exceed the context window n_ctx={self.config.n_ctx}: "
                f"the model has no position embedding beyond position {self.config.n_ctx - 1}; "
                f"keep only the last {self.config.n_ctx} tokens"
            )
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.config.n_vocab:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"token id {bad} is outside the vocabulary [0, {self.config.n_vocab - 1}]; "
                f"were these ids made by a different tokenizer?"
            )

    def check_attention_mask(self, attention_mask, idx: torch.Tensor, T_past: int = 0) -> torch.Tensor:
        """Raise a clear error unless attention_mask is [B, T_past + T] of 0s and 1s with a 1
        in every row; return it as bool."""
        B, T = idx.shape
        if not isinstance(attention_mask, torch.Tensor):
            raise TypeError(f"attention_mask must be a tensor [B, S] of 1 (a real token) and 0 (padding), "
                            f"got {type(attention_mask).__name__}")
        if tuple(attention_mask.shape) != (B, T_past + T):
            past = f" (the {T_past} cached tokens, then the {T} new ones)" if T_past else ""
            raise ValueError(f"attention_mask has shape {list(attention_mask.shape)}, but the ids need [B={B}, "
                             f"S={T_past + T}]{past}: one entry per token, 1 for a real token, 0 for padding")
        if not ((attention_mask == 0) | (attention_mask == 1)).all():
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (a real token)")
        keep = attention_mask.to(device=idx.device, dtype=torch.bool)
        empty = (~keep.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"attention_mask row {empty[0]} is all zeros: sequence {empty[0]} has no real token "
                             f"to attend to; every sequence needs at least one 1")
        return keep

    def embed(self, idx: torch.Tensor, T_past: int = 0, pos: torch.Tensor | None = None) -> torch.Tensor:
        """Token plus position embeddings. [B, T] -> [B, T, C]

        pos: positions [B, T] (for a padded batch); by default T_past, T_past + 1, ...
        """
        if pos is None:
            pos = torch.arange(T_past, T_past + idx.size(1), device=idx.device)  # [T]
        return self.drop(self.wte(idx) + self.wpe(pos))  # [B, T, C] + [T, C] or [B, T, C] -> [B, T, C]

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """idx [B, T] -> logits [B, T, V]. With a cache, idx continues the cached tokens.

        attention_mask [B, T_past + T]: 1 for a real token, 0 for padding, for a batch of
        sequences of different lengths padded on the left. No token attends to padding,
        and positions count from each sequence's first real token, as in transformers.
        """
        T_past = cache.length if cache is not None else 0
        self.check_ids(idx, T_past)
        pos, mask = None, None
        if attention_mask is not None:
            keep = self.check_attention_mask(attention_mask, idx, T_past)  # [B, S]
            pos = (keep.cumsum(dim=1) - 1).clamp(min=0)[:, T_past:]  # [B, T]: 0, 1, ... from the first real token
            mask = padded_causal_mask(keep, idx.size(1))  # [B, 1, T, S]
        x = self.embed(idx, T_past, pos)  # [B, T, C]
        for block in self.h:
            x = block(x, cache, mask)  # [B, T, C]
        if cache is not None:
            cache.advance(idx.size(1))
        return self.lm_head(self.ln_f(x))  # [B, T, C] -> [B, T, V]

    @torch.no_grad()
    def trace(self, idx: torch.Tensor) -> Trace:
        """A forward pass that keeps the residual stream and the attention weights."""
        self.check_ids(idx)
        x = self.embed(idx)
        residual, attentions = [x], []
        for block in self.h:
            x, weights = block.forward_with_weights(x)
            residual.append(x)
            attentions.append(weights)
        logits = self.lm_head(self.ln_f(x))
        return Trace(logits=logits, residual=residual, attentions=attentions)
