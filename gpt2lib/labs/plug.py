"""Plug the reader's piece into a real model, in every place where gpt2lib's occurs, and take it out again.

    with plugged(model, layer_norm=your_layer_norm):   # or plugged(model, "layer_norm", YourLayerNorm)
        logits = model(ids)                            # all 13 layer norms of gpt2-shakespeare are yours

On exit, even after an exception, every place runs gpt2lib's code again. A piece is a
function or an nn.Module class; a class is built once per place and given that place's
weights with load_state_dict, so its parameters must carry GPT-2's names (c_fc, c_proj, ...).

| piece          | a function                             | a class, built as  | places (6 blocks) |
| -------------- | -------------------------------------- | ------------------ | ----------------- |
| embed          | embed(idx, wte, wpe) -> [B, T, C]      |                    | 1                 |
| causal_mask    | mask(T) -> bool [T, T]                 |                    | 6 attentions      |
| attention_head | head(q, k, v), each [T, hs] -> [T, hs] |                    | 6 attentions      |
| attention      | attention(attn, x [B, T, C]) -> [B, T, C] | cls(config)     | 6 attentions      |
| layer_norm     | layer_norm(x, weight, bias, eps)       | cls(n_embd, eps)   | 13 (2 x 6 + ln_f) |
| gelu           | gelu(x)                                |                    | 6 MLPs            |
| mlp            | mlp(mlp_module, x) -> [B, T, C]        | cls(config)        | 6 MLPs            |
| block          | block(block_module, x) -> [B, T, C]    | cls(config)        | 6 blocks          |

A plugged model runs forward() without a KV cache only; trace() and forward_with_weights()
keep gpt2lib's code. plug_check() runs the bundled model with a piece plugged in and compares
its logits with transformers' GPT-2 (check.hf_gpt2) on the same checkpoint.
"""

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..attention import CausalSelfAttention, attention_weights
from ..block import Block
from ..layers import MLP, LayerNorm
from ..model import GPT

PLUG_TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?"
_MISSING = object()


@dataclass(frozen=True)
class Piece:
    what: str  # "layer norm": how the check line names it
    kind: type  # the gpt2lib module whose forward the piece replaces
    makes: str  # how a class is built: "" (functions only), "n_embd, eps" or "config"


PIECES = {
    "embed": Piece("embeddings", GPT, ""),
    "causal_mask": Piece("causal mask", CausalSelfAttention, ""),
    "attention_head": Piece("attention head", CausalSelfAttention, ""),
    "attention": Piece("multi-head attention", CausalSelfAttention, "config"),
    "layer_norm": Piece("layer norm", LayerNorm, "n_embd, eps"),
    "gelu": Piece("GELU", MLP, ""),
    "mlp": Piece("MLP", MLP, "config"),
    "block": Piece("block", Block, "config"),
}


def places(model: nn.Module, piece: str) -> list[nn.Module]:
    """The modules of model whose forward the piece replaces, in model order."""
    return [m for m in model.modules() if isinstance(m, PIECES[_known(piece)].kind)]


def _known(piece: str) -> str:
    if piece not in PIECES:
        raise ValueError(f"no piece called {piece!r}; the pieces are {', '.join(PIECES)}")
    return piece


def _no_cache(extra, piece: str):
    """Plugged pieces run a plain forward: no KV cache, no padding mask (what generate() passes)."""
    if any(e is not None for e in extra):
        raise RuntimeError(f"your {PIECES[piece].what} is plugged in, and plugged pieces run without a "
                           f"KV cache or a padding mask; call the model as model(ids), or generate after "
                           f"the with block")


def _build(cls, piece: str, module: nn.Module, config) -> nn.Module:
    """The reader's class built for one place, holding that place's weights."""
    if not PIECES[piece].makes:
        raise TypeError(f"the {PIECES[piece].what} plugs in as a function, got the class {cls.__name__}")
    yours = cls(module.weight.numel(), module.eps) if piece == "layer_norm" else cls(config)
    try:
        yours.load_state_dict(module.state_dict())
    except RuntimeError as e:  # missing or unexpected names, or wrong shapes
        raise RuntimeError(f"{cls.__name__} cannot take the weights of gpt2lib's {type(module).__name__} "
                           f"({', '.join(module.state_dict())}): {str(e).splitlines()[-1].strip()}") from None
    return yours.to(module.weight.device if piece == "layer_norm" else next(module.parameters()).device).eval()


def _forward(piece: str, module: nn.Module, yours, config):
    """The forward that runs the reader's piece in this module's place."""
    if isinstance(yours, type):
        built = _build(yours, piece, module, config)
        if piece in ("attention", "block"):
            def forward(x, *extra, **named):
                _no_cache(extra + tuple(named.values()), piece)
                return built(x)
        else:
            def forward(x):
                return built(x)
        forward.yours = built
        return forward
    if piece == "embed":
        def forward(idx, T_past=0, *extra, **named):
            _no_cache((T_past or None,) + extra + tuple(named.values()), piece)
            return yours(idx, module.wte.weight, module.wpe.weight)  # [B, T] -> [B, T, C]
    elif piece == "causal_mask":
        def forward(x, *extra, **named):
            _no_cache(extra + tuple(named.values()), piece)
            q, k, v = module.split_heads(x)  # 3 x [B, nh, T, hs]
            mask = torch.as_tensor(yours(x.size(1)), device=x.device)  # [T, T]
            weights = attention_weights(q, k, mask.bool())  # [B, nh, T, T]
            return module.merge_heads(weights @ v)  # [B, nh, T, hs] -> [B, T, C]
    elif piece == "attention_head":
        def forward(x, *extra, **named):
            _no_cache(extra + tuple(named.values()), piece)
            q, k, v = module.split_heads(x)  # 3 x [B, nh, T, hs]
            B, nh = q.shape[:2]
            y = torch.stack([torch.stack([torch.as_tensor(yours(q[b, h], k[b, h], v[b, h]))  # [T, hs]
                                          for h in range(nh)]) for b in range(B)])  # [B, nh, T, hs]
            return module.merge_heads(y)  # [B, nh, T, hs] -> [B, T, C]
    elif piece in ("attention", "block"):
        def forward(x, *extra, **named):
            _no_cache(extra + tuple(named.values()), piece)
            return yours(module, x)  # [B, T, C] -> [B, T, C]
    elif piece == "layer_norm":
        def forward(x):
            return yours(x, module.weight, module.bias, module.eps)  # [..., C]
    elif piece == "gelu":
        def forward(x):  # MLP.forward with the reader's activation
            return module.dropout(module.c_proj(yours(module.c_fc(x))))  # [B, T, C] -> [B, T, 4C] -> [B, T, C]
    else:  # mlp
        def forward(x):
            return yours(module, x)  # [B, T, C] -> [B, T, C]
    return forward


@contextlib.contextmanager
def plugged(model: GPT, piece: str | None = None, yours=None, **pieces):
    """Run model with the reader's piece(s) in place of gpt2lib's, everywhere they occur; restore on exit.

    plugged(model, "layer_norm", fn) and plugged(model, layer_norm=fn) are the same; several
    pieces may be given at once as keywords. Yields the model.
    """
    if piece is not None:
        pieces = {piece: yours, **pieces}
    if not pieces:
        raise ValueError(f"name a piece to plug in, e.g. plugged(model, layer_norm=your_fn); "
                         f"the pieces are {', '.join(PIECES)}")
    for name, fn in pieces.items():
        _known(name)
        if fn is None or not callable(fn):
            raise TypeError(f"plug in a function or an nn.Module class as {name}, got {type(fn).__name__}")
    saved = []  # (module, attribute, what it was): undone in reverse order
    try:
        for name, fn in pieces.items():
            attribute = "embed" if name == "embed" else "forward"
            for module in places(model, name):
                forward = _forward(name, module, fn, model.config)
                saved.append((module, attribute, module.__dict__.get(attribute, _MISSING)))
                setattr(module, attribute, forward)  # an instance attribute hides the class's method
        yield model
    finally:
        for module, attribute, before in reversed(saved):
            if before is _MISSING:
                module.__dict__.pop(attribute, None)
            else:
                setattr(module, attribute, before)


@dataclass(frozen=True)
class PlugResult:
    """Logits of a model with the reader's piece plugged in vs transformers'. str() is one stable line."""

    piece: str
    n_places: int
    model_name: str
    max_abs_diff: float
    atol: float
    error: str = ""  # what the reader's piece raised inside the model, if it did

    @property
    def passed(self) -> bool:
        return not self.error and self.max_abs_diff <= self.atol

    def places(self) -> str:
        """ "gpt2-shakespeare" for one place, else "all 13 places of gpt2-shakespeare"."""
        return self.model_name if self.n_places == 1 else f"all {self.n_places} places of {self.model_name}"

    def where(self) -> str:
        return f"your {PIECES[self.piece].what} in {self.places()}"

    def __str__(self) -> str:
        if self.error:
            return f"[FAIL] {self.where()}: {self.error}"
        if self.passed:
            return f"[PASS] {self.where()}: logits vs transformers, max |diff| <= {self.atol:.0e}"
        return (f"[FAIL] {self.where()}: logits vs transformers, max |diff| = {_fmt(self.max_abs_diff)} "
                f"> {self.atol:.0e}")

    __repr__ = __str__

    def __bool__(self) -> bool:
        return self.passed


def _fmt(x: float) -> str:
    return "nan" if x != x else "inf" if math.isinf(x) else f"{x:.2g}"


def plug_check(piece: str, yours, *, model: GPT | None = None, ids: torch.Tensor | None = None,
               atol: float = 1e-4, name: str | None = None) -> PlugResult:
    """Plug yours into model (default: the bundled gpt2-shakespeare) and compare its logits
    on ids [1, T] (default: a line of Romeo and Juliet) with transformers' GPT-2 on the same
    checkpoint. A piece that raises inside the model gives a failed result naming the error."""
    from ..check import hf_gpt2
    from ..loading import BUNDLED_MODEL
    from .core import StudentError, bundled_model, gpt2_tokenizer

    if model is None:
        model, name = bundled_model(), name or BUNDLED_MODEL
    name = name or str(getattr(model, "name_or_path", "") or "the model")
    if ids is None:
        ids = torch.tensor([gpt2_tokenizer().encode(PLUG_TEXT)])  # [1, T]
    n = len(places(model, piece))
    try:
        with torch.no_grad(), plugged(model, piece, yours):
            logits = model(ids)  # [1, T, V]
    except (NotImplementedError, StudentError):  # the exercise check reports these in the reader's terms
        raise
    except Exception as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return PlugResult(piece, n, name, math.inf, atol, f"your {PIECES[piece].what} raised "
                          f"{type(e).__name__} inside the model: {text[:160]}")
    if not isinstance(logits, torch.Tensor) or logits.shape != (*ids.shape, model.config.n_vocab):
        shape = list(getattr(logits, "shape", []))
        return PlugResult(piece, n, name, math.inf, atol, f"the model's logits came out of shape {shape}")
    with torch.no_grad():
        reference = hf_gpt2(model)(ids).logits  # [1, T, V]
    diff = (logits.double() - reference.double()).abs()
    worst = float(diff.max())
    return PlugResult(piece, n, name, math.inf if worst != worst else worst, atol)


def expect_plugged(piece: str, yours, **kwargs) -> str:
    """For an exercise check: plug_check's success phrase, or raise Mistake saying what went wrong."""
    from .core import Mistake

    result = plug_check(piece, yours, **kwargs)
    if result.error:
        raise Mistake(f"plugged into {result.places()}, {result.error}")
    if not result.passed:
        raise Mistake(f"plugged into {result.places()}, your {PIECES[piece].what} makes the logits differ by "
                      f"{_fmt(result.max_abs_diff)} from transformers' on the same checkpoint "
                      f"(more than {result.atol:.0e})")
    return str(result).removeprefix("[PASS] ")
