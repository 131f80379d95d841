"""Each piece of a block against its transformers counterpart on identical weights,
plus the buggy variants a reader is likely to write, which the same checks must reject."""

import math

import pytest
import torch
import torch.nn.functional as F

from gpt2lib import check
from gpt2lib.attention import attention_weights, causal_mask, softmax
from gpt2lib.layers import LayerNorm, gelu


def inputs(config, seed=2, B=2, T=11):
    """[B, T, C] activations at very different scales: some rows have a variance near
    1e-4, where eps = 1e-5 matters (an eps outside the sqrt shows there)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, config.n_embd, generator=g)
    scale = torch.logspace(-2, 1, T)[None, :, None]  # 0.01 ... 10 per token
    return x * scale + 0.1


class EpsOutsideSqrt(LayerNorm):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return (x - mean) / (torch.sqrt(var) + self.eps) * self.weight + self.bias


class UnbiasedVariance(LayerNorm):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def test_layer_norm_matches_transformers(model, hf, config):
    result = check.check_layer_norm(model.h[0].ln_1, hf.transformer.h[0].ln_1, inputs(config))
    assert result, f"{result}: check the biased variance (divide by C) and eps inside the sqrt"
    result = check.check_layer_norm(model.ln_f, hf.transformer.ln_f, inputs(config, seed=3))
    assert result, result


@pytest.mark.parametrize("bug", [EpsOutsideSqrt, UnbiasedVariance])
def test_layer_norm_check_rejects_plausible_bugs(model, hf, config, bug):
    buggy = bug(config.n_embd, config.layer_norm_eps)
    buggy.load_state_dict(model.h[0].ln_1.state_dict())
    result = check.check_layer_norm(buggy, hf.transformer.h[0].ln_1, inputs(config))
    assert not result, f"{bug.__name__} passed the LayerNorm check: the test inputs are too forgiving"


def test_gelu_is_gpt2s_tanh_approximation():
    x = torch.linspace(-8, 8, 2001)
    assert check.check_gelu(gelu, x), check.check_gelu(gelu, x)
    exact = check.check_gelu(F.gelu, x)  # the erf form: not what GPT-2 was trained with
    assert not exact and exact.max_abs_diff > 1e-4, f"the erf GELU should differ from gelu_new: {exact}"


def test_mlp_matches_transformers(model, hf, config):
    result = check.check_mlp(model.h[0].mlp, hf.transformer.h[0].mlp, inputs(config))
    assert result, f"{result}: c_fc/c_proj weights transposed? GELU variant?"


def test_attention_outputs_and_weights_match_eager_transformers(model, hf, config):
    x = inputs(config, seed=4)
    for layer in range(config.n_layer):
        result = check.check_attention(model.h[layer].attn, hf.transformer.h[layer].attn, x)
        assert result, f"layer {layer}: {result}: check the head split, the 1/sqrt(hs) scale and the mask"


def test_attention_weights_are_causal_rows_summing_to_one(model, config):
    _, weights = model.h[0].attn.forward_with_weights(inputs(config))  # [B, nh, T, T]
    T = weights.size(-1)
    above = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert weights[..., above].abs().max() == 0, "a token attends to a later one: mask missing or misplaced"
    assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-6), "rows of attention weights must sum to 1"


def hf_weights(hf, x, layer=0):
    return hf.transformer.h[layer].attn(x, attention_mask=check.causal_additive_mask(x.size(1)))[1]


def test_attention_check_rejects_mask_after_softmax(model, hf, config):
    q, k, _ = model.h[0].attn.split_heads(inputs(config))
    mask = causal_mask(q.size(2))
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    buggy = softmax(scores).masked_fill(~mask, 0.0)  # rows no longer sum to 1
    ours = attention_weights(q, k, mask)
    reference = hf_weights(hf, inputs(config))
    assert check.compare("weights", ours, reference)
    assert not check.compare("weights", buggy, reference), "masking after the softmax went unnoticed"


def test_attention_check_rejects_missing_scale(model, hf, config):
    q, k, _ = model.h[0].attn.split_heads(inputs(config))
    mask = causal_mask(q.size(2))
    scores = (q @ k.transpose(-2, -1)).masked_fill(~mask, float("-inf"))  # no 1/sqrt(hs)
    result = check.compare("weights", softmax(scores), hf_weights(hf, inputs(config)))
    assert not result, "attention without the 1/sqrt(hs) scale went unnoticed"


def test_block_matches_transformers(model, hf, config):
    x = inputs(config, seed=5)
    for layer in range(config.n_layer):
        result = check.check_block(model.h[layer], hf.transformer.h[layer], x)
        assert result, f"layer {layer}: {result}: pre-norm order? residual added twice?"


def test_softmax_is_stable_and_exact():
    scores = torch.tensor([[1000.0, 1001.0], [-3.0, 2.0], [0.0, float("-inf")]])
    assert torch.allclose(softmax(scores), torch.softmax(scores, -1), atol=1e-7)


def test_causal_mask_small_example():
    assert causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    # two cached tokens, two new ones: the new ones see the past and themselves
    assert causal_mask(2, T_past=2).int().tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_check_result_is_one_stable_line():
    result = check.compare("logits", torch.zeros(3), torch.full((3,), 3e-6))
    assert str(result) == repr(result) == "[PASS] logits: gpt2lib vs transformers, max |diff| <= 1e-05"
    assert result.max_abs_diff == pytest.approx(3e-6) and result
    failed = check.compare("logits", torch.zeros(3), torch.ones(3))
    assert str(failed) == "[FAIL] logits: gpt2lib vs transformers, max |diff| = 1 > 1e-05" and not failed
    assert not check.compare("nan", torch.tensor([float("nan")]), torch.zeros(1))
    with pytest.raises(ValueError, match=r"shapes differ, gpt2lib \[2\] vs transformers \[3\]"):
        check.compare("x", torch.zeros(2), torch.zeros(3))
