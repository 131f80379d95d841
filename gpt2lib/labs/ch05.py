"""Exercise checks for chapter 5, the transformer block.

References: gpt2lib.layers (LayerNorm after Ba et al. 2016; GELU after Hendrycks &
Gimpel 2016, tanh form as in OpenAI's gpt-2/src/model.py) and gpt2lib.block.Block.
"""

import math

import torch
import torch.nn.functional as F

from ..block import Block
from ..config import SIZES, GPTConfig
from ..layers import LayerNorm, gelu
from .core import Mistake, as_tensor, call, exercise, expect_shape, fmt, judge, max_diff, seeded


def _layer_norm_mistakes(x, w, b, eps):
    """What the usual wrong layer norms compute, each with what to tell the reader."""
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    return [
        ((x - mean) / (var.sqrt() + eps) * w + b, "is eps inside the square root? (x - mean) / sqrt(var + eps)"),
        ((x - mean) / (x.var(-1, keepdim=True) + eps).sqrt() * w + b,
         "use the biased variance, x.var(dim=-1, unbiased=False): divide by C, not C - 1"),
        ((x - mean) / (var + eps).sqrt(), "scale by weight and add bias after normalizing"),
        ((x - x.mean()) / (x.var(unbiased=False) + eps).sqrt() * w + b,
         "the mean and variance are per token, over the last axis (dim=-1, keepdim=True)"),
    ]


@exercise("5.1", "layer norm", kind="implement",
          hint="per token over the last axis: (x - mean) / sqrt(var + eps) * weight + bias, biased var")
def check_layer_norm(layer_norm):
    """layer_norm(x [..., C], weight [C], bias [C], eps) -> [..., C]."""
    g = seeded(51)
    C, eps = 8, 1e-5
    w, b = torch.randn(C, generator=g), torch.randn(C, generator=g)
    cases = [("a batch of shape [2, 3, 8]", torch.randn(2, 3, C, generator=g) * 2 + 1),
             ("a token with tiny variance", 1 + 1e-3 * torch.randn(1, C, generator=g)),
             ("a token with large values", 1000 + 50 * torch.randn(1, C, generator=g))]
    reference = LayerNorm(C, eps)
    with torch.no_grad():
        reference.weight.copy_(w)
        reference.bias.copy_(b)
    for what, x in cases:
        out = as_tensor(call(layer_norm, x.clone(), w.clone(), b.clone(), eps, on=what), "the result", like=x)
        with torch.no_grad():
            expected = reference(x)
        expect_shape(out, expected, f"the result on {what}")
        diff = max_diff(out, expected)
        if diff <= 1e-4:
            continue
        for wrong, why in _layer_norm_mistakes(x, w, b, eps):
            if max_diff(out, wrong) <= 1e-4:
                raise Mistake(f"your layer norm is off by {fmt(diff)} on {what}: {why}")
        raise Mistake(f"your layer norm is off by {fmt(diff)} on {what}: check the biased variance, "
                      f"eps inside the square root, and the last axis")
    return "matches gpt2lib.layers.LayerNorm on 3 inputs, a tiny-variance token included"


@exercise("5.2", "GELU (tanh approximation)", kind="implement",
          hint="0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))")
def check_gelu(gelu_fn):
    """gelu_fn(x) -> x * Phi(x) with GPT-2's tanh approximation, elementwise."""
    x = torch.linspace(-6, 6, 241)
    out = as_tensor(call(gelu_fn, x.clone(), on="x from -6 to 6"), "the result", like=x)
    expected = gelu(x)
    expect_shape(out, expected, "the result")
    diff = max_diff(out, expected)
    if diff <= 1e-5:
        return "matches gpt2lib.layers.gelu from -6 to 6"
    c = math.sqrt(2 / math.pi)
    mistakes = [
        (F.gelu(x), "this is the exact (erf) GELU; GPT-2 uses the tanh approximation"),
        (0.5 * x * (1 + torch.tanh(c * x)), "the 0.044715 * x**3 term is missing"),
        (0.5 * x * (1 + torch.tanh(math.sqrt(2 * math.pi) * (x + 0.044715 * x**3))),
         "the constant is sqrt(2 / pi), not sqrt(2 pi)"),
        (torch.relu(x), "this is ReLU; GELU is smooth and slightly negative for x < 0"),
    ]
    for wrong, why in mistakes:
        if max_diff(out, wrong) <= 1e-5:
            raise Mistake(f"off by {fmt(diff)}: {why}")
    worst = float(x[(out - expected).abs().argmax()])
    raise Mistake(f"off by {fmt(diff)} (worst at x = {worst:.2f}): compare with the formula in the hint")


def _random_block(seed: int) -> Block:
    """A tiny block with weights large enough that every wrong wiring shows."""
    torch.manual_seed(seed)
    block = Block(GPTConfig(n_vocab=10, n_ctx=8, n_embd=16, n_layer=1, n_head=2)).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.3)
    return block


@exercise("5.3", "pre-norm residual block", kind="implement",
          hint="x = x + block.attn(block.ln_1(x)); then x = x + block.mlp(block.ln_2(x))")
def check_block_forward(block_forward):
    """block_forward(block, x [B, T, C]) -> [B, T, C], using block.ln_1, attn, ln_2, mlp."""
    block = _random_block(53)
    x = torch.randn(2, 5, 16, generator=seeded(53))
    with torch.no_grad():
        out = as_tensor(call(block_forward, block, x.clone(), on="x of shape [2, 5, 16]"), "the result", like=x)
        expected = block(x)
        a = block.attn(block.ln_1(x))
        post = block.ln_1(x + block.attn(x))  # post-norm: normalize after adding
        mistakes = [
            (block.ln_2(post + block.mlp(post)),
             "this is post-norm (the original Transformer); GPT-2 normalizes each sublayer's input: "
             "x + attn(ln_1(x))"),
            (block.mlp(block.ln_2(a)), "each sublayer adds its update to x: x = x + ..., twice"),
            (a + block.mlp(block.ln_2(a)), "the attention's update must be added to x itself: x = x + attn(ln_1(x))"),
            (x + a + block.mlp(block.ln_2(x)), "the MLP reads the stream after the attention update: "
             "ln_2 of the new x"),
            (x + a + block.mlp(block.ln_1(x + a)), "the MLP's input goes through ln_2, not ln_1"),
        ]
    expect_shape(out, expected, "the result")
    diff = max_diff(out, expected)
    if diff <= 1e-5:
        return "matches gpt2lib.block.Block: x + attn(ln_1(x)), then + mlp(ln_2(x))"
    for wrong, why in mistakes:
        if max_diff(out, wrong) <= 1e-5:
            raise Mistake(f"off by {fmt(diff)}: {why}")
    raise Mistake(f"off by {fmt(diff)} from gpt2lib's Block: follow the hint's two lines")


@exercise("5.4", "predict: parameters in one block", kind="predict",
          hint="count ln_1, c_attn, c_proj, ln_2, c_fc, c_proj of GPT-2 small (C = 768), biases included")
def check_predict_block_parameters(prediction):
    """prediction: the number of parameters in one GPT-2 small block (within 1%)."""
    n = sum(p.numel() for p in Block(SIZES["gpt2"]).parameters())
    return judge(prediction, n, tolerance=0.01 * n,
                 explain="2 layer norms 2x2x768, c_attn 768x2304+2304, c_proj 768x768+768, "
                 "c_fc 768x3072+3072, c_proj 3072x768+768: two thirds of it is the MLP")
