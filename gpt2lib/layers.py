"""The position-wise pieces of a transformer block, written out from their definitions.

Layer normalization: Ba, Kiros & Hinton (2016), "Layer Normalization".
GELU: Hendrycks & Gimpel (2016), "Gaussian Error Linear Units", with the tanh
approximation that OpenAI's GPT-2 code uses (gpt-2/src/model.py, `gelu`).
"""

import math

import torch
from torch import nn

from .config import GPTConfig


class LayerNorm(nn.Module):
    """Normalize each token's vector to mean 0 and variance 1, then scale and shift.

    x: [..., C] -> [..., C]. Statistics are taken per token over the last axis only,
    with the biased variance (divide by C), and eps inside the square root.
    """

    def __init__(self, n_embd: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_embd))  # the learned gain
        self.bias = nn.Parameter(torch.zeros(n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)  # [..., 1]
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # [..., 1]
        x_hat = (x - mean) / torch.sqrt(var + self.eps)  # [..., C]
        return x_hat * self.weight + self.bias


def gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU, x * Phi(x), with GPT-2's tanh approximation of the normal CDF Phi."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class MLP(nn.Module):
    """The feed-forward sublayer: widen to 4C, GELU, project back. [B, T, C] -> [B, T, C]."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = gelu(self.c_fc(x))  # [B, T, C] -> [B, T, 4C]
        return self.dropout(self.c_proj(h))  # [B, T, 4C] -> [B, T, C]
