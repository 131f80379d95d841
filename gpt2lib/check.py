"""Checks: each gpt2lib piece against Hugging Face transformers' GPT-2 on identical weights.

The reference is transformers' GPT2LMHeadModel (models/gpt2/modeling_gpt2.py), run with
attn_implementation="eager" so that its attention weights exist. For the whole-model checks
(logits, hidden states, greedy tokens) transformers loads the checkpoint file the model was
loaded from with its own from_pretrained (see hf_gpt2). Every check returns a
CheckResult whose printed form is one stable line, the same on every machine:

    >>> check_logits(model, ids)
    [PASS] logits: gpt2lib vs transformers, max |diff| <= 1e-05
"""

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .generate import generate
from .loading import hf_config, save_pretrained
from .model import GPT


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one comparison. max_abs_diff is the exact number; the line shows the verdict."""

    what: str
    max_abs_diff: float
    atol: float
    passed: bool
    ours: str = "gpt2lib"
    reference: str = "transformers"

    def __str__(self) -> str:
        if self.passed:
            verdict = "identical" if self.atol == 0 else f"max |diff| <= {self.atol:g}"
            return f"[PASS] {self.what}: {self.ours} vs {self.reference}, {verdict}"
        return f"[FAIL] {self.what}: {self.ours} vs {self.reference}, max |diff| = {self.max_abs_diff:.3g} > {self.atol:g}"

    __repr__ = __str__  # a notebook cell ending in a check shows just the line

    def __bool__(self) -> bool:
        return self.passed


def compare(what: str, ours, reference, atol: float = 1e-5, *, ours_name: str = "gpt2lib",
            reference_name: str = "transformers") -> CheckResult:
    """Max |ours - reference| over all elements, passed if <= atol. Tensors (or lists) of equal shape."""
    ours, reference = torch.as_tensor(ours).detach(), torch.as_tensor(reference).detach()
    if ours.shape != reference.shape:
        raise ValueError(f"{what}: shapes differ, {ours_name} {list(ours.shape)} vs {reference_name} {list(reference.shape)}")
    diff = (ours.double() - reference.double()).abs()
    max_diff = float(diff.max()) if diff.numel() else 0.0
    passed = max_diff <= atol and not diff.isnan().any()  # nan fails: nan <= atol is False anyway
    return CheckResult(what, max_diff if not math.isnan(max_diff) else math.inf, atol, bool(passed),
                       ours_name, reference_name)


def hf_gpt2(model: GPT):
    """transformers' GPT2LMHeadModel as transformers itself loads this model's checkpoint file:
    GPT2LMHeadModel.from_pretrained(source, attn_implementation="eager", dtype=torch.float32),
    in eval mode, dropout 0.

    source is model.name_or_path, the directory from_pretrained read the model from.
    transformers then reads the names, the Conv1D layout and the tied lm_head from the file
    with its own code, never from gpt2lib's tensors: a loader that puts the right numbers
    under the wrong names, or weights changed after loading, make the checks fail. To check
    a loaded model after changing its weights on purpose, set model.name_or_path = None.

    A model that was not loaded from a file (random initialization, trained in memory,
    name_or_path None) is first written by gpt2lib's save_pretrained to a temporary
    directory, and transformers reads that file. The reference then holds this model's
    current weights, as transformers reads gpt2lib's file format (which tests/test_loading.py
    checks against transformers' own save_pretrained).
    """
    import tempfile

    source = getattr(model, "name_or_path", None)
    if source is not None:
        return _hf_from_file(model, Path(source))
    with tempfile.TemporaryDirectory(prefix="gpt2lib-check-") as directory:
        save_pretrained(model, directory, dtype=torch.float32)
        return _hf_from_file(model, Path(directory))


def _hf_from_file(model: GPT, directory: Path):
    """GPT2LMHeadModel.from_pretrained(directory), its sizes checked against the model's."""
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"model.name_or_path is {str(directory)!r}, which holds no config.json: the checkpoint "
                                f"was moved or deleted after loading; load it again, or set model.name_or_path = None "
                                f"to compare with the weights in memory")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # no notices about the causal-mask buffers
    hf_logging.disable_progress_bar()  # no loading bar in the reader's notebook
    try:
        hf = GPT2LMHeadModel.from_pretrained(directory, attn_implementation="eager", dtype=torch.float32,
                                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    finally:
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)
    theirs = {"n_vocab": hf.config.vocab_size, "n_ctx": hf.config.n_positions, "n_embd": hf.config.n_embd,
              "n_layer": hf.config.n_layer, "n_head": hf.config.n_head}
    ours = {field: getattr(model.config, field) for field in theirs}
    if ours != theirs:
        raise ValueError(f"{directory} now holds a model of other sizes ({theirs}) than this one ({ours}): the "
                         f"checkpoint changed after loading; load it again, or set model.name_or_path = None "
                         f"to compare with the weights in memory")
    eos = hf_config(model.config)["eos_token_id"]  # <|endoftext|>, when the vocabulary has it
    hf.generation_config.eos_token_id = eos
    hf.generation_config.pad_token_id = eos
    hf.loss_type = "ForCausalLM"  # the loss GPT2LMHeadModel computes from labels=; named to avoid a warning
    return hf.eval()


def causal_additive_mask(T: int) -> torch.Tensor:
    """The mask transformers' model passes to each eager attention layer: 0 allowed, dtype-min not. [1, 1, T, T]"""
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.zeros(T, T).masked_fill(~allowed, torch.finfo(torch.float32).min)[None, None]


@torch.no_grad()
def check_layer_norm(ours, theirs, x: torch.Tensor, atol: float = 1e-5) -> CheckResult:
    """gpt2lib LayerNorm vs torch.nn.LayerNorm (what transformers' GPT-2 uses). x: [..., C]"""
    return compare("LayerNorm", ours(x), theirs(x), atol)


@torch.no_grad()
def check_gelu(gelu, x: torch.Tensor, atol: float = 1e-6) -> CheckResult:
    """A GELU function vs transformers' "gelu_new", the tanh approximation GPT-2 uses."""
    from transformers.activations import NewGELUActivation

    return compare("GELU (tanh approximation)", gelu(x), NewGELUActivation()(x), atol)


@torch.no_grad()
def check_mlp(ours, theirs, x: torch.Tensor, atol: float = 1e-5) -> CheckResult:
    """gpt2lib MLP vs transformers' GPT2MLP. x: [B, T, C]"""
    return compare("MLP", ours(x), theirs(x), atol)


@torch.no_grad()
def check_attention(ours, theirs, x: torch.Tensor, atol: float = 1e-5) -> CheckResult:
    """Attention outputs [B, T, C] AND weights [B, nh, T, T] vs transformers' eager GPT2Attention.

    transformers builds the causal mask once for the whole model and hands it to each
    layer, so it is passed here explicitly.
    """
    out, weights = ours.forward_with_weights(x)
    hf_out, hf_weights = theirs(x, attention_mask=causal_additive_mask(x.size(1)))
    fast = ours(x)  # the fused kernel path used by forward()
    worst = max(compare("", out, hf_out).max_abs_diff, compare("", weights, hf_weights).max_abs_diff,
                compare("", fast, hf_out).max_abs_diff)
    return CheckResult("attention outputs and weights", worst, atol, worst <= atol)


@torch.no_grad()
def check_block(ours, theirs, x: torch.Tensor, atol: float = 1e-5) -> CheckResult:
    """gpt2lib Block vs transformers' GPT2Block. x: [B, T, C]"""
    return compare("block", ours(x), theirs(x, attention_mask=causal_additive_mask(x.size(1))), atol)


@torch.no_grad()
def check_hidden_states(model: GPT, ids: torch.Tensor, atol: float = 1e-5, hf=None) -> CheckResult:
    """The residual stream after the embeddings and after every block. ids: [B, T]

    transformers' last hidden state is taken after ln_f, so ours is compared after ln_f too.
    """
    hf = hf if hf is not None else hf_gpt2(model)
    ours = model.trace(ids).residual  # n_layer + 1 tensors [B, T, C]
    ours = ours[:-1] + [model.ln_f(ours[-1])]
    theirs = hf(ids, output_hidden_states=True).hidden_states
    diffs = [compare("", a, b, atol).max_abs_diff for a, b in zip(ours, theirs, strict=True)]
    what = f"hidden states ({len(diffs)}: embeddings, then after each block)"
    if max(diffs) > atol:
        what += f", first mismatch at index {next(i for i, d in enumerate(diffs) if d > atol)}"
    return CheckResult(what, max(diffs), atol, max(diffs) <= atol)


@torch.no_grad()
def check_logits(model: GPT, ids: torch.Tensor, atol: float = 1e-5, hf=None) -> CheckResult:
    """Whole-model logits [B, T, V] for token ids [B, T]."""
    hf = hf if hf is not None else hf_gpt2(model)
    return compare("logits", model(ids), hf(ids).logits, atol)


@torch.no_grad()
def check_greedy(model: GPT, ids, n: int = 30, hf=None) -> CheckResult:
    """Greedy token ids: gpt2lib generate vs transformers generate(do_sample=False). ids: one prompt."""
    hf = hf if hf is not None else hf_gpt2(model)
    prompt = torch.as_tensor(ids).reshape(1, -1)  # [1, T]
    eos = hf.generation_config.eos_token_id
    ours = generate(model, prompt[0].tolist(), n, eos_id=eos)
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                         do_sample=False, eos_token_id=eos, pad_token_id=eos)[0, prompt.size(1):].tolist()
    what = f"greedy token ids ({n} new tokens)"
    if len(ours) != len(theirs):
        return CheckResult(what + f", lengths {len(ours)} vs {len(theirs)}", math.inf, 0, False)
    return compare(what, ours, theirs, atol=0)
