"""Fewer bytes per weight, for faster decoding on a CPU.

Generating one token with the KV cache is a chain of matrix-vector products: every
weight is read from memory once and used for one multiply-add. On a CPU that is
bound by memory bandwidth, not arithmetic, so

    tokens/s  <=  memory bandwidth (bytes/s)  /  bytes of weights read per token.

Halving the bytes (bfloat16) or quartering them (int8) raises that ceiling. What the
CPU really gains depends on its kernels, which benchmarks/bench_model.py measures:

- "bf16": the whole model in bfloat16 (8 bits of exponent like float32, 8 of mantissa),
  weights and activations alike.
- "int8": weight-only int8. Each output row of a linear layer is stored as int8 with one
  bfloat16 scale, w ~= scale * q, q in [-127, 127] (symmetric, per channel); the
  activations stay bfloat16 and torch's CPU kernel `_weight_int8pack_mm` multiplies
  them with the int8 rows directly, without a dequantized copy of the weights.
- "int8-dynamic": torch's dynamic quantization (torch.ao.quantization.quantize_dynamic):
  int8 weights per tensor, and each activation is quantized to int8 on the fly, so the
  product runs in int8 arithmetic (FBGEMM). Activations stay float32 between layers.

The token embeddings wte stay in their dtype: a lookup reads one row per token. The LM
head shares wte's [V, C] matrix; a quantized model gets its own quantized copy of it.
"""

import copy

import torch
from torch import nn

from .model import GPT

KINDS = ("bf16", "int8", "int8-dynamic")


class Int8Linear(nn.Module):
    """A linear layer with int8 weights and one scale per output channel. [..., in] -> [..., out] (bfloat16)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()  # [out, in]
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # [out], the largest |w| of each row maps to 127
        self.register_buffer("weight_int8", torch.round(w / scale[:, None]).to(torch.int8))  # [out, in]
        self.register_buffer("scale", scale.to(torch.bfloat16))  # [out]
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1]).to(torch.bfloat16)  # [..., in] -> [N, in]
        y = torch.ops.aten._weight_int8pack_mm(x, self.weight_int8, self.scale)  # [N, out]
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], self.out_features)  # [N, out] -> [..., out]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights, bf16 scales"


def quantize(model: GPT, kind: str) -> GPT:
    """A copy of model with its weights in fewer bytes, for generate; the original is untouched.

    kind: "bf16", "int8" (weight-only int8, bfloat16 activations) or "int8-dynamic"
    (torch's dynamic int8 quantization). The copy is in eval mode and for inference only.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if not isinstance(model, GPT):
        raise TypeError(f"quantize takes a gpt2lib GPT, got {type(model).__name__}")
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("quantize targets the CPU: move the model there first with model.cpu()")
    model = copy.deepcopy(model).eval()
    if kind == "int8-dynamic":
        model.float()
        model.lm_head = nn.Linear(model.config.n_embd, model.config.n_vocab, bias=False)
        model.lm_head.weight = nn.Parameter(model.wte.weight.detach().clone())  # untied: it gets quantized, wte does not
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    model.to(torch.bfloat16)
    if kind == "int8":
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(module, name, Int8Linear(child))  # lm_head too: a quantized copy of wte
    return model
