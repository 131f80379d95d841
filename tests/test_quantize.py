"""Low-precision copies of a model: they generate, agree with fp32, and leave the original alone."""

import warnings

import pytest
import torch
from torch import nn

import gpt2lib
from gpt2lib.quantize import KINDS, Int8Linear, quantize

PROMPTS = ["ROMEO:\n", "To be, or not to", "KING HENRY V:\nOnce more unto the breach, dear friends,", "JULIET:\n",
           "First Citizen:\nBefore we proceed any further, hear me speak.", "O Romeo,"]


@pytest.fixture(scope="module")
def bundled():
    return gpt2lib.from_pretrained("gpt2-shakespeare")


@pytest.fixture(scope="module")
def copies(bundled):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks its quantized tensor types as deprecated
        return {kind: quantize(bundled, kind) for kind in KINDS}


def test_int8_linear_is_the_product_with_the_rounded_weights():
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    q = Int8Linear(linear)
    assert q.weight_int8.dtype == torch.int8 and q.weight_int8.abs().max() == 127
    x = torch.randn(3, 5, 96)
    dequantized = q.weight_int8.float() * q.scale.float()[:, None]  # [out, in]
    assert (dequantized - linear.weight).abs().max() <= linear.weight.abs().max() / 127  # rounding: half a step at most
    expected = x.bfloat16().float() @ dequantized.T + q.bias.float()
    assert (q(x).float() - expected).abs().max() <= 0.05  # bf16 output: about 3 significant digits
    assert (q(x).float() - linear(x)).abs().max() <= 0.05


@pytest.fixture(scope="module")
def greedy_fp32(bundled):
    tok = gpt2lib.get_tokenizer()
    return [gpt2lib.generate(bundled, tok.encode(prompt), 30, eos_id=None) for prompt in PROMPTS]


@pytest.mark.parametrize("kind, mean_tokens", [("bf16", 20), ("int8", 12), ("int8-dynamic", 4)])
def test_quantized_greedy_text_starts_as_fp32(copies, greedy_fp32, kind, mean_tokens):
    """Greedy text follows fp32's until two candidates are close enough for the rounding to swap them."""
    tok = gpt2lib.get_tokenizer()
    agreed = []
    for prompt, ref in zip(PROMPTS, greedy_fp32):
        ours = gpt2lib.generate(copies[kind], tok.encode(prompt), 30, eos_id=None)
        agreed.append(next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), 30))
    assert min(agreed) >= 2, f"{kind}: greedy tokens equal to fp32's per prompt: {agreed}"
    assert sum(agreed) / len(agreed) >= mean_tokens, f"{kind}: greedy tokens equal to fp32's per prompt: {agreed}"


@pytest.mark.parametrize("kind, bound", [("bf16", 0.5), ("int8", 1.0), ("int8-dynamic", 1.5)])
def test_quantized_logits_stay_close(bundled, copies, kind, bound):
    ids = torch.tensor([gpt2lib.get_tokenizer().encode(PROMPTS[2])])
    with torch.no_grad():
        ref, out = bundled(ids)[0], copies[kind](ids)[0].float()
    diff = float((out - ref).abs().max())
    assert 0 < diff <= bound, f"{kind}: max |logit diff| {diff:.3f}"  # 0 would mean nothing was quantized
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.85


def test_quantize_leaves_the_model_alone_and_sampling_works(bundled, copies):
    assert bundled.wte.weight.dtype == torch.float32 and isinstance(bundled.lm_head, nn.Linear)
    assert bundled.lm_head.weight is bundled.wte.weight
    assert isinstance(copies["int8"].h[0].attn.c_attn, Int8Linear) and isinstance(copies["int8"].lm_head, Int8Linear)
    ids = gpt2lib.get_tokenizer().encode(PROMPTS[0])
    for model in copies.values():
        a = gpt2lib.generate(model, ids, 12, temperature=0.9, top_p=0.9, seed=4)
        assert a == gpt2lib.generate(model, ids, 12, temperature=0.9, top_p=0.9, seed=4)
        assert [len(row) for row in gpt2lib.generate(model, [ids, ids[:2]], 6, eos_id=None)] == [6, 6]


def test_bad_kinds_are_named(bundled):
    with pytest.raises(ValueError, match=r"kind must be one of 'bf16', 'int8', 'int8-dynamic', got 'int4'"):
        quantize(bundled, "int4")
    with pytest.raises(TypeError, match="quantize takes a gpt2lib GPT"):
        quantize(nn.Linear(2, 2), "bf16")
