"""One transformer block, pre-norm as in GPT-2 (gpt-2/src/model.py, `block`).

The original Transformer (Vaswani et al. 2017) normalized after each residual
addition (post-norm); GPT-2 normalizes each sublayer's input instead, which leaves
the residual stream itself untouched: x + attn(ln_1(x)), then + mlp(ln_2(x)).
"""

import torch
from torch import nn

from .attention import CausalSelfAttention, KVCache
from .config import GPTConfig
from .layers import MLP, LayerNorm


class Block(nn.Module):
    """[B, T, C] -> [B, T, C]: each sublayer reads a normalized copy and adds its update."""

    def __init__(self, config: GPTConfig, layer_index: int = 0):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.layer_norm_eps)
        self.attn = CausalSelfAttention(config, layer_index)
        self.ln_2 = LayerNorm(config.n_embd, config.layer_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, mask)
        x = x + self.mlp(self.ln_2(x))
        return x

    def forward_with_weights(self, x: torch.Tensor):
        """As forward, also returning the attention weights [B, nh, T, T]."""
        update, weights = self.attn.forward_with_weights(self.ln_1(x))
        x = x + update
        x = x + self.mlp(self.ln_2(x))
        return x, weights
