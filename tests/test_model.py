"""The whole model against transformers' GPT2LMHeadModel on identical weights."""

import pytest
import torch

from gpt2lib import GPT, GPTConfig, KVCache, check, count_parameters
from conftest import random_gpt, random_ids


def test_logits_match_transformers(model, hf, config):
    result = check.check_logits(model, random_ids(config), atol=1e-5, hf=hf)
    assert result, f"{result}: compare hidden states layer by layer to find where it starts"


def test_hidden_states_match_after_every_layer(model, hf, config):
    result = check.check_hidden_states(model, random_ids(config, T=17), hf=hf)
    assert result, result


def test_trace_agrees_with_forward(model, config):
    ids = random_ids(config, T=13)
    trace = model.trace(ids)
    with torch.no_grad():
        logits = model(ids)
    assert len(trace.residual) == config.n_layer + 1 and len(trace.attentions) == config.n_layer
    assert trace.attentions[0].shape == (2, config.n_head, 13, 13)
    diff = (trace.logits - logits).abs().max()
    assert diff < 1e-5, f"the written-out attention and the fused kernel disagree by {diff:.2e}"


def test_attention_weights_match_transformers(model, hf, config):
    ids = random_ids(config, T=9)
    theirs = hf(ids, output_attentions=True).attentions
    for layer, (a, b) in enumerate(zip(model.trace(ids).attentions, theirs, strict=True)):
        assert check.compare(f"attention weights, layer {layer}", a, b), check.compare("weights", a, b)


def test_a_future_token_never_changes_earlier_logits(model, config):
    ids = random_ids(config, B=1, T=20)
    changed = ids.clone()
    changed[0, 12] = (ids[0, 12] + 1) % config.n_vocab
    with torch.no_grad():
        before, after = model(ids), model(changed)
    leak = (before[0, :12] - after[0, :12]).abs().max()
    assert leak < 1e-6, f"changing token 12 moved the logits at positions < 12 by {leak:.2e}: causal mask broken"
    assert (before[0, 12:] - after[0, 12:]).abs().max() > 1e-3, "changing a token had no effect at all"


def test_kv_cache_gives_the_logits_of_a_full_pass(model, config):
    ids = random_ids(config, B=2, T=20)
    cache = KVCache(config, batch_size=2)
    with torch.no_grad():
        full = model(ids)
        pieces = [model(ids[:, :7], cache), model(ids[:, 7:8], cache), model(ids[:, 8:], cache)]
    diff = (torch.cat(pieces, dim=1) - full).abs().max()
    assert diff < 1e-5, f"cached logits differ from a full pass by {diff:.2e}: positions or mask offset wrong"
    assert cache.length == 20


def test_lm_head_is_tied_and_parameters_counted_once(model, hf, config):
    assert model.lm_head.weight is model.wte.weight
    assert model.num_parameters() == count_parameters(config) == hf.num_parameters()


def test_batch_rows_are_independent(model, config):
    ids = random_ids(config, B=3, T=10)
    with torch.no_grad():
        batch = model(ids)
        alone = model(ids[1:2])
    assert (batch[1:2] - alone).abs().max() < 1e-5


def test_n_embd_not_divisible_by_n_head_is_a_clear_error():
    with pytest.raises(ValueError, match="n_embd=50 is not divisible by n_head=3"):
        GPTConfig(n_embd=50, n_head=3)


@pytest.mark.parametrize("bad, message", [
    (torch.tensor([[0, 64]]), r"token id 64 is outside the vocabulary \[0, 63\]"),
    (torch.tensor([[-1, 3]]), r"token id -1 is outside the vocabulary"),
    (torch.tensor([[1.0, 2.0]]), r"LongTensor of shape \[B, T\]"),
    (torch.tensor([1, 2]), r"LongTensor of shape \[B, T\]"),
    (torch.zeros(1, 33, dtype=torch.long), r"33 tokens exceed the context window n_ctx=32"),
])
def test_bad_token_ids_are_clear_errors(bad, message):
    model = random_gpt(GPTConfig(n_vocab=64, n_ctx=32, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises((ValueError, TypeError), match=message):
        model(bad)


def test_default_init_matches_gpt2s_recipe():
    model = GPT(GPTConfig(n_vocab=500, n_ctx=64, n_embd=256, n_layer=8, n_head=4))
    std = model.h[0].mlp.c_proj.weight.std().item()
    assert abs(std - 0.02 / 4) < 1e-3, f"c_proj std {std:.4f}, expected 0.02 / sqrt(2 * n_layer) = 0.005"
    assert abs(model.wte.weight.std().item() - 0.02) < 1e-3
