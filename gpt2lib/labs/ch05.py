"""Exercise checks for chapter 5, the transformer block.

References: gpt2lib.layers (LayerNorm after Ba et al. 2016; GELU after Hendrycks &
Gimpel 2016, tanh form as in OpenAI's gpt-2/src/model.py) and gpt2lib.block.Block on small
inputs; then the reader's piece is plugged into every place of gpt2-shakespeare where it occurs
(labs.plug) and the logits are compared with transformers' GPT-2 on the same checkpoint.
"""

import math

import torch
import torch.nn.functional as F

from torch import nn

from ..block import Block
from ..config import GPTConfig
from ..layers import MLP, LayerNorm, gelu
from .core import Mistake, StudentError, as_tensor, call, exercise, expect_shape, fmt, judge, max_diff, seeded
from .plug import expect_plugged


def _layer_norm_mistakes(x, w, b, eps):
    """What the usual wrong layer norms compute, each with what to tell the reader."""
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    return [
        ((x - mean) / (var.sqrt() + eps) * w + b, "is eps inside the square root? it is added to the variance"),
        ((x - mean) / (x.var(-1, keepdim=True) + eps).sqrt() * w + b,
         "use the biased variance, x.var(dim=-1, unbiased=False): divide by C, not C - 1"),
        ((x - mean) / (var + eps).sqrt(), "scale by weight and add bias after normalizing"),
        ((x - x.mean()) / (x.var(unbiased=False) + eps).sqrt() * w + b,
         "the mean and variance are per token, over the last axis (dim=-1, keepdim=True)"),
    ]


@exercise("5.1", "layer norm", kind="implement",
          hint="each token on its own: subtract its mean, divide by its standard deviation, then gain and bias")
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
        raise Mistake(f"your layer norm is off by {fmt(diff)} on {what}: check the variance, "
                      f"where eps goes, and the axis")
    plugged = expect_plugged("layer_norm", lambda *a: call(layer_norm, *a, on="gpt2-shakespeare's activations"))
    return f"matches gpt2lib.layers.LayerNorm on 3 inputs, a tiny-variance token included; {plugged}"


@exercise("5.2", "GELU (tanh approximation)", kind="implement",
          hint="the tanh formula of this chapter, with torch.tanh and math.sqrt")
def check_gelu(gelu_fn):
    """gelu_fn(x) -> x * Phi(x) with GPT-2's tanh approximation, elementwise."""
    x = torch.linspace(-6, 6, 241)
    out = as_tensor(call(gelu_fn, x.clone(), on="x from -6 to 6"), "the result", like=x)
    expected = gelu(x)
    expect_shape(out, expected, "the result")
    diff = max_diff(out, expected)
    if diff <= 1e-5:
        plugged = expect_plugged("gelu", lambda h: call(gelu_fn, h, on="gpt2-shakespeare's activations"))
        return f"matches gpt2lib.layers.gelu from -6 to 6; {plugged}"
    c = math.sqrt(2 / math.pi)
    mistakes = [
        (F.gelu(x), "this is the exact (erf) GELU; GPT-2 uses the tanh approximation"),
        (0.5 * x * (1 + torch.tanh(c * x)), "the 0.044715 * x**3 term is missing"),
        (0.5 * x * (1 + torch.tanh(math.sqrt(2 * math.pi) * (x + 0.044715 * x**3))),
         "the constant inside tanh is the square root of 2 / pi"),
        (torch.relu(x), "this is ReLU; GELU is smooth and slightly negative for x < 0"),
    ]
    for wrong, why in mistakes:
        if max_diff(out, wrong) <= 1e-5:
            raise Mistake(f"off by {fmt(diff)}: {why}")
    worst = float(x[(out - expected).abs().argmax()])
    raise Mistake(f"off by {fmt(diff)} (worst at x = {worst:.2f}): compare with the chapter's formula term by term")


def _random_block(seed: int) -> Block:
    """A tiny block with weights large enough that every wrong wiring shows."""
    torch.manual_seed(seed)
    block = Block(GPTConfig(n_vocab=10, n_ctx=8, n_embd=16, n_layer=1, n_head=2)).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.3)
    return block


def _tiny_config() -> GPTConfig:
    return GPTConfig(n_vocab=10, n_ctx=8, n_embd=16, n_layer=1, n_head=2)


@exercise("5.3", "the MLP", kind="implement",
          hint="two linear layers named as in GPT-2's checkpoint, C -> 4C -> C, with GELU between them")
def check_mlp_module(mlp_class):
    """mlp_class(config) -> an nn.Module with c_fc and c_proj; forward(x [B, T, C]) -> [B, T, C]."""
    config = _tiny_config()
    torch.manual_seed(53)
    reference = MLP(config).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0.0, 0.5)  # large enough that a missing GELU or bias shows
    yours = call(mlp_class, config, on="a config with n_embd=16")
    if not isinstance(yours, nn.Module):
        raise Mistake(f"{getattr(mlp_class, '__name__', 'it')}(config) should build an nn.Module, "
                      f"got {type(yours).__name__}")
    names = {name: tuple(p.shape) for name, p in yours.state_dict().items()}
    expected = {name: tuple(p.shape) for name, p in reference.state_dict().items()}
    if names != expected:
        missing = sorted(set(expected) - set(names))
        if missing:
            raise Mistake(f"your module's weights are {sorted(names)}; GPT-2's checkpoint names them "
                          f"{sorted(expected)}, so the model's weights can load into it")
        wrong = {n: s for n, s in names.items() if expected.get(n) != s}
        raise Mistake(f"shapes {wrong} should be {({n: expected[n] for n in wrong if n in expected})}: nn.Linear(in, out) "
                      f"stores its weight as [out, in]; the hidden layer is 4 times as wide as C = 16")
    yours.load_state_dict(reference.state_dict())
    yours.eval()
    x = torch.randn(2, 5, 16, generator=seeded(53))
    with torch.no_grad():
        out = as_tensor(call(yours, x.clone(), on="x of shape [2, 5, 16]"), "the output", like=x)
        expect_shape(out, reference(x), "the output")
        diff = max_diff(out, reference(x))
        hidden = reference.c_fc(x)  # [2, 5, 64]
        mistakes = [
            (reference.c_proj(hidden), "no nonlinearity between c_fc and c_proj: two linear layers in a row are one"),
            (reference.c_proj(torch.relu(hidden)), "this is ReLU; GPT-2's MLP uses GELU (tanh form)"),
            (reference.c_proj(F.gelu(hidden)), "this is the exact (erf) GELU; GPT-2 uses the tanh approximation"),
            (gelu(hidden) @ reference.c_proj.weight.T, "c_proj's bias is missing"),
        ]
    if diff > 1e-5:
        for wrong, why in mistakes:
            if wrong.shape == out.shape and max_diff(out, wrong) <= 1e-5:
                raise Mistake(f"off by {fmt(diff)}: {why}")
        raise Mistake(f"off by {fmt(diff)} from gpt2lib's MLP with the same weights: widen with c_fc, "
                      f"activate, project back with c_proj")
    plugged = expect_plugged("mlp", _built_through_call(mlp_class))
    return f"matches gpt2lib.layers.MLP with the same weights; {plugged}"


def _built_through_call(cls):
    """The reader's class, built so that what it raises inside the model is reported as theirs."""
    class Yours(nn.Module):
        def __init__(self, *args):
            super().__init__()
            self.inner = call(cls, *args, on="the bundled model's config")

        def load_state_dict(self, state, strict=True):
            return self.inner.load_state_dict(state, strict)

        def forward(self, x):
            return call(self.inner, x, on="gpt2-shakespeare's activations")

    Yours.__name__ = getattr(cls, "__name__", "Yours")
    return Yours


def _random_block(seed: int) -> Block:
    """A tiny block with weights large enough that every wrong wiring shows."""
    torch.manual_seed(seed)
    block = Block(_tiny_config()).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.3)
    return block


@exercise("5.4", "pre-norm residual block", kind="implement",
          hint="two lines, one per sublayer; each reads a normalized copy of the stream and adds to it")
def check_block_forward(block_forward):
    """block_forward(block, x [B, T, C]) -> [B, T, C], using block.ln_1, attn, ln_2, mlp."""
    block = _random_block(54)
    x = torch.randn(2, 5, 16, generator=seeded(54))
    with torch.no_grad():
        out = as_tensor(call(block_forward, block, x.clone(), on="x of shape [2, 5, 16]"), "the result", like=x)
        expected = block(x)
        a = block.attn(block.ln_1(x))
        post = block.ln_1(x + block.attn(x))  # post-norm: normalize after adding
        mistakes = [
            (block.ln_2(post + block.mlp(post)),
             "this is post-norm (the original Transformer); GPT-2 normalizes each sublayer's input, "
             "not the sum"),
            (block.mlp(block.ln_2(a)), "each sublayer adds its update to x, twice"),
            (a + block.mlp(block.ln_2(a)), "the attention's update must be added to x itself"),
            (x + a + block.mlp(block.ln_2(x)), "the MLP reads the stream after the attention update: "
             "ln_2 of the new x"),
            (x + a + block.mlp(block.ln_1(x + a)), "the MLP's input goes through ln_2, not ln_1"),
        ]
    expect_shape(out, expected, "the result")
    diff = max_diff(out, expected)
    if diff > 1e-5:
        for wrong, why in mistakes:
            if max_diff(out, wrong) <= 1e-5:
                raise Mistake(f"off by {fmt(diff)}: {why}")
        raise Mistake(f"off by {fmt(diff)} from gpt2lib's Block: attention first, then the MLP, "
                      f"each with its own layer norm")
    plugged = expect_plugged("block", lambda b, h: call(block_forward, b, h, on="gpt2-shakespeare's activations"))
    return f"matches gpt2lib.block.Block on a small block; {plugged}"


def skip_attention(block, x):
    """The block without its attention sublayer: x + mlp(ln_2(x))."""
    return x + block.mlp(block.ln_2(x))


def skip_mlp(block, x):
    """The block without its MLP sublayer: x + attn(ln_1(x))."""
    return x + block.attn(block.ln_1(x))


def post_norm(block, x):
    """The original Transformer's wiring with the block's own weights: add, then normalize."""
    x = block.ln_1(x + block.attn(x))
    return block.ln_2(x + block.mlp(x))


BREAKS = {"skip_attention": skip_attention, "skip_mlp": skip_mlp, "post_norm": post_norm}
BREAK_TEXT = ("ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
              "Arise, fair sun, and kill the envious moon,\nWho is already sick and pale with grief,")


def break_losses() -> dict[str, float]:
    """The bundled model's loss on BREAK_TEXT, as trained and with each of BREAKS in all 6 blocks."""
    from .core import bundled_model, gpt2_tokenizer
    from .plug import plugged

    model = bundled_model()
    ids = torch.tensor([gpt2_tokenizer().encode(BREAK_TEXT)])  # [1, T]

    def loss() -> float:
        with torch.no_grad():
            logits = model(ids)  # [1, T, V]
        return float(F.cross_entropy(logits[0, :-1], ids[0, 1:]))  # [T - 1, V] vs [T - 1]

    losses = {"trained": loss()}
    for name, wiring in BREAKS.items():
        with plugged(model, block=wiring):
            losses[name] = loss()
    return losses


@exercise("5.5", "predict: which break hurts most", kind="predict",
          hint="order the three names from the smallest loss to the largest")
def check_predict_breaks(prediction):
    """prediction: the names of BREAKS ordered by the loss they give, smallest first."""
    if not isinstance(prediction, (list, tuple)) or sorted(prediction) != sorted(BREAKS):
        raise Mistake(f"answer with the three names {sorted(BREAKS)} in an order, got {prediction!r}")
    losses = break_losses()
    order = sorted(BREAKS, key=losses.get)
    numbers = ", ".join(f"{name} {losses[name]:.1f}" for name in order)
    return judge(list(prediction), order,
                 nudge="Which sublayer holds two thirds of a block's weights, and what does a trained layer "
                       "norm expect its input to look like?",
                 explain=f"losses in nats: trained {losses['trained']:.1f}, {numbers} (uniform guessing: "
                         f"{math.log(50257):.1f}). Without attention each token still carries itself; "
                         f"post-norm rescales the stream the later blocks were trained to read; "
                         f"without the MLPs, two thirds of every block's weights are gone")
