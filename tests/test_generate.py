"""Generation: greedy ids equal transformers' generate, sampling filters equal its warpers."""

import pytest
import torch

from gpt2lib import check, generate, next_token_probs, stream_generate
from gpt2lib.generate import top_k_filter, top_p_filter
from conftest import CONFIGS, random_gpt

CONFIG = CONFIGS["3-heads"]


@pytest.fixture(scope="module")
def tiny():
    return random_gpt(CONFIG, seed=3)


PROMPT = [5, 17, 42, 8]


@pytest.mark.parametrize("name", ["3-heads", "8-heads"])
def test_greedy_ids_equal_transformers_generate(name):
    model = random_gpt(CONFIGS[name], seed=4)
    ours = generate(model, PROMPT, 40, eos_id=None)
    assert len(set(ours)) >= 4, f"degenerate test: greedy output {ours} barely varies"
    result = check.check_greedy(model, PROMPT, 40)
    assert result, f"{result}: if logits match, look at positions/cache offsets in generation"


def test_kv_cache_and_no_cache_give_the_same_tokens(tiny):
    greedy = generate(tiny, PROMPT, 40, eos_id=None)
    assert generate(tiny, PROMPT, 40, eos_id=None, use_cache=False) == greedy
    sampled = generate(tiny, PROMPT, 40, eos_id=None, temperature=1.5, top_p=0.9, seed=11)
    assert generate(tiny, PROMPT, 40, eos_id=None, temperature=1.5, top_p=0.9, seed=11, use_cache=False) == sampled


def test_seeded_sampling_is_reproducible_and_leaves_global_rng_alone(tiny):
    state = torch.get_rng_state()
    a = generate(tiny, PROMPT, 30, temperature=2.0, seed=7, eos_id=None)
    assert torch.equal(state, torch.get_rng_state()), "a seeded run must not touch torch's global RNG"
    assert generate(tiny, PROMPT, 30, temperature=2.0, seed=7, eos_id=None) == a
    assert generate(tiny, PROMPT, 30, temperature=2.0, seed=8, eos_id=None) != a


def test_unseeded_sampling_matches_transformers_under_the_same_global_seed(tiny):
    """Both draw with torch.multinomial from the global RNG: same distribution, same draws."""
    hf = check.hf_gpt2(tiny)
    torch.manual_seed(123)
    ours = generate(tiny, PROMPT, 30, temperature=1.3, top_k=20, top_p=0.95, eos_id=None)
    torch.manual_seed(123)
    theirs = hf.generate(torch.tensor([PROMPT]), attention_mask=torch.ones(1, 4, dtype=torch.long),
                         do_sample=True, temperature=1.3, top_k=20, top_p=0.95, max_new_tokens=30)
    assert ours == theirs[0, 4:].tolist()


def test_top_k_1_and_temperature_0_are_greedy(tiny):
    greedy = generate(tiny, PROMPT, 30, eos_id=None)
    assert generate(tiny, PROMPT, 30, top_k=1, temperature=3.0, seed=1, eos_id=None) == greedy
    assert generate(tiny, PROMPT, 30, temperature=0, seed=1, eos_id=None) == greedy


def test_samples_stay_in_the_top_k(tiny):
    with torch.no_grad():
        top3 = set(tiny(torch.tensor([PROMPT]))[0, -1].topk(3).indices.tolist())
    firsts = {generate(tiny, PROMPT, 1, temperature=10.0, top_k=3, seed=s)[0] for s in range(60)}
    assert firsts == top3, f"sampled first tokens {firsts}, the top 3 are {top3}"


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.125, 0.5, 0.0625, 0.25, 0.0625])  # most likely: 1, then 3, then 0
    logits = probs.log()
    kept = {p: set(torch.nonzero(top_p_filter(logits, p).isfinite()).flatten().tolist())
            for p in (0.3, 0.6, 0.8)}
    assert kept == {0.3: {1}, 0.6: {1, 3}, 0.8: {1, 3, 0}}
    assert len(top_p_filter(logits, 0.9).isfinite().nonzero()) == 4
    assert top_p_filter(logits, 1.0).isfinite().all()


def test_filters_match_transformers_warpers():
    from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)
    logits = torch.randn(300, generator=torch.Generator().manual_seed(0)) * 3
    dummy = torch.zeros(1, 1, dtype=torch.long)
    for t, k, p in [(1.0, None, 0.9), (0.7, 50, None), (1.5, 40, 0.8), (0.5, 5, 0.3), (1.0, 300, 1.0)]:
        theirs = TemperatureLogitsWarper(t)(dummy, logits[None].clone())
        if k is not None:
            theirs = TopKLogitsWarper(k)(dummy, theirs)
        if p is not None:
            theirs = TopPLogitsWarper(p)(dummy, theirs)
        ours = next_token_probs(logits, temperature=t, top_k=k, top_p=p)
        assert torch.allclose(ours, torch.softmax(theirs[0], -1), atol=1e-6), f"t={t}, k={k}, p={p}"
    assert torch.equal(top_k_filter(logits, 7).isfinite(), TopKLogitsWarper(7)(dummy, logits[None])[0].isfinite())


def test_stops_after_eos_and_includes_it(tiny):
    greedy = generate(tiny, PROMPT, 30, eos_id=None)
    k = next(i for i in range(2, 30) if greedy[i] not in greedy[:i])  # a first occurrence
    assert generate(tiny, PROMPT, 30, eos_id=greedy[k]) == greedy[: k + 1]
    assert generate(tiny, PROMPT, 0) == []


def test_stream_generate_yields_the_same_ints(tiny):
    stream = stream_generate(tiny, PROMPT, 10, eos_id=None)
    first = next(stream)
    assert isinstance(first, int)
    assert [first, *stream] == generate(tiny, PROMPT, 10, eos_id=None)


def test_accepts_tensors(tiny):
    expected = generate(tiny, PROMPT, 5)
    assert generate(tiny, torch.tensor(PROMPT), 5) == expected == generate(tiny, torch.tensor([PROMPT]), 5)


@pytest.mark.parametrize("ids, kwargs, message", [
    ([], {}, "the prompt is empty"),
    ([1] * 40, {"max_new_tokens": 9}, r"prompt \(40 tokens\) \+ max_new_tokens \(9\) = 49 exceeds the context "
                                      r"window n_ctx=48: there is room for 8 new tokens"),
    ([1] * 49, {}, r"the prompt alone is too long; keep its last 47 tokens"),
    (PROMPT, {"temperature": -0.5}, r"temperature must be >= 0"),
    (PROMPT, {"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    (PROMPT, {"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    (PROMPT, {"top_k": 0}, r"top_k must be an int >= 1"),
    ([3, 97], {}, r"the prompt: token id 97 is outside the model's vocabulary \[0, 96\]"),
    ([-1, 3], {}, r"the prompt: token id -1 is outside"),
    (PROMPT, {"max_new_tokens": -1}, r"max_new_tokens must be an int >= 0"),
])
def test_bad_arguments_are_clear_errors(tiny, ids, kwargs, message):
    kwargs = {"max_new_tokens": 5} | kwargs
    with pytest.raises(ValueError, match=message):
        generate(tiny, ids, **kwargs)
    with pytest.raises(ValueError, match=message):
        stream_generate(tiny, ids, **kwargs)  # at the call, before any iteration


# --- hostile inputs -------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [float("inf"), float("nan")])
def test_temperature_must_be_finite(tiny, temperature):
    """temperature=inf divided every logit to 0: uniform sampling, and top_k=2 then kept every token."""
    with pytest.raises(ValueError, match=r"temperature must be >= 0 and finite"):
        generate(tiny, PROMPT, 5, temperature=temperature, top_k=2, seed=1)
    with pytest.raises(ValueError, match=r"temperature must be >= 0 and finite"):
        next_token_probs(torch.zeros(10), temperature=temperature)


def test_greedy_is_deterministic_on_a_model_left_in_train_mode():
    model = random_gpt(CONFIG.replace(dropout=0.5), seed=3).train()
    model.h[1].eval()  # a caller's mixed modes come back as they were
    outputs = [generate(model, PROMPT, 20, eos_id=None) for _ in range(5)]
    assert outputs == [generate(model.eval(), PROMPT, 20, eos_id=None)] * 5, "dropout was on while generating"
    model.train()
    model.h[1].eval()
    stream = stream_generate(model, PROMPT, 5, eos_id=None)
    next(stream)
    stream.close()
    assert model.training and model.h[0].training and not model.h[1].training and not model.h[1].attn.training


def test_non_finite_logits_raise_instead_of_picking_token_0():
    model = random_gpt(CONFIG, seed=3)
    with torch.no_grad():
        model.ln_f.weight[0] = float("nan")
    with pytest.raises(ValueError, match=r"the model's logits hold NaN or inf at new token 0; its weights are broken"):
        generate(model, PROMPT, 5)
    with pytest.raises(ValueError, match=r"logits hold NaN or inf"):
        generate(model, PROMPT, 5, temperature=1.0, seed=0)


def test_numpy_and_torch_integer_ids_are_accepted(tiny):
    import numpy as np

    expected = generate(tiny, PROMPT, 5)
    for ids in [np.array(PROMPT), np.array([PROMPT]), [np.int64(i) for i in PROMPT], [np.int32(i) for i in PROMPT],
                [torch.tensor(i) for i in PROMPT], np.array(PROMPT, dtype=np.uint16)]:
        assert generate(tiny, ids, 5) == expected, f"ids of type {type(ids).__name__}"


@pytest.mark.parametrize("ids, error, message", [
    ("Hello", TypeError, r"ids must be token ids, got a str: encode the text first, e.g. get_tokenizer\(\).encode\('Hello'\)"),
    ([1.0, 2.0], TypeError, r"the prompt: token ids must be integers, got float 1.0"),
    ([True, 2], TypeError, r"the prompt: token ids must be integers, got bool True"),
    (torch.tensor([1.5]), TypeError, r"ids must be a list of ints or a 1-D integer tensor, got a torch.float32 tensor"),
])
def test_ids_that_are_not_token_ids(tiny, ids, error, message):
    with pytest.raises(error, match=message):
        generate(tiny, ids, 5)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"seed": 2**70}, ValueError, r"seed must be an int in \[0, 2\*\*64\), got 1180591620717411303424"),
    ({"seed": -1}, ValueError, r"seed must be an int in \[0, 2\*\*64\)"),
    ({"temperature": "1.0"}, TypeError, r"temperature must be a number, got str '1.0'"),
    ({"top_p": float("nan")}, ValueError, r"top_p must be in \(0, 1\]"),
])
def test_bad_sampling_arguments(tiny, kwargs, error, message):
    with pytest.raises(error, match=message):
        generate(tiny, PROMPT, 5, **({"temperature": 1.0} | kwargs))


def test_a_cache_made_for_another_model_names_both_configs(tiny):
    from gpt2lib import GPTConfig
    from gpt2lib.attention import KVCache

    other = GPTConfig(**{**vars(CONFIG), "n_layer": CONFIG.n_layer + 1})
    with pytest.raises(ValueError, match=rf"made for .*n_layer={other.n_layer}.*stored only {CONFIG.n_layer} layers"):
        tiny(torch.tensor([PROMPT]), KVCache(other))
    wider = GPTConfig(**{**vars(CONFIG), "n_head": 1})
    with pytest.raises(ValueError, match=rf"made for .*n_head=1.*nh={CONFIG.n_head}"):
        tiny(torch.tensor([PROMPT]), KVCache(wider))
    with pytest.raises(ValueError, match="batch_size=2.*B=1"):
        tiny(torch.tensor([PROMPT]), KVCache(CONFIG, batch_size=2))


# --- a batch of prompts of different lengths: left padding and the attention mask ---

PROMPTS = [[5, 17, 42, 8], [60, 3], [9, 31, 77, 2, 14, 50, 6], [88]]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """transformers' GPT-2 with random weights, and gpt2lib's model loaded from the file transformers saved."""
    from transformers import GPT2Config, GPT2LMHeadModel
    import gpt2lib

    torch.manual_seed(5)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=97, n_positions=48, n_embd=48, n_layer=3, n_head=3, bos_token_id=96,
                                    eos_token_id=96, attn_implementation="eager", resid_pdrop=0.0, embd_pdrop=0.0,
                                    attn_pdrop=0.0))
    with torch.no_grad():  # large random weights, layer norm gains not 1: varied greedy text
        for name, p in hf.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.3)
    hf.eval()
    directory = tmp_path_factory.mktemp("hf-gpt2")
    hf.save_pretrained(directory)
    hf.generation_config.pad_token_id = 0
    return gpt2lib.from_pretrained(directory), hf


def left_padded(prompts, pad_id=0):
    T = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (T - len(p)) + p for p in prompts])  # [B, T]
    mask = torch.tensor([[0] * (T - len(p)) + [1] * len(p) for p in prompts])  # [B, T]
    return ids, mask


def test_padded_batch_logits_equal_transformers_at_the_real_positions(pair):
    ours, hf = pair
    ids, mask = left_padded(PROMPTS)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # what transformers' generate passes for left padding
    with torch.no_grad():
        logits = ours(ids, attention_mask=mask)  # [B, T, V]
        theirs = hf(ids, attention_mask=mask, position_ids=position_ids).logits
        alone = [ours(torch.tensor([p]))[0] for p in PROMPTS]  # each prompt on its own, no padding
    real = mask.bool()
    assert (logits[real] - theirs[real]).abs().max() <= 1e-5
    for b, p in enumerate(PROMPTS):  # and every row equals its prompt run alone
        assert (logits[b, -len(p):] - alone[b]).abs().max() <= 1e-5
    assert torch.isfinite(logits).all(), "padding positions must not produce nan (they attend to themselves)"


def test_padded_batch_greedy_equals_transformers_generate(pair):
    ours, hf = pair
    new = generate(ours, PROMPTS, 20, eos_id=None)
    ids, mask = left_padded(PROMPTS)
    theirs = hf.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=20, eos_token_id=None)
    assert new == theirs[:, ids.size(1):].tolist()
    assert all(len(set(row)) >= 5 for row in new), f"degenerate test: greedy output {new} barely varies"
    assert new == [generate(ours, p, 20, eos_id=None) for p in PROMPTS]  # padding changes nothing


def test_padded_batch_with_and_without_the_cache(pair):
    ours, _ = pair
    greedy = generate(ours, PROMPTS, 15, eos_id=None)
    assert generate(ours, PROMPTS, 15, eos_id=None, use_cache=False) == greedy
    sampled = generate(ours, PROMPTS, 15, eos_id=None, temperature=1.2, top_k=30, seed=3)
    assert generate(ours, PROMPTS, 15, eos_id=None, temperature=1.2, top_k=30, seed=3, use_cache=False) == sampled
    assert generate(ours, PROMPTS, 15, eos_id=None, temperature=1.2, top_k=30, seed=3) == sampled


def test_a_batch_of_one_equals_the_unbatched_call(tiny):
    for kwargs in ({}, {"temperature": 1.4, "top_p": 0.9, "seed": 2}):
        assert generate(tiny, [PROMPT], 25, eos_id=None, **kwargs) == [generate(tiny, PROMPT, 25, eos_id=None, **kwargs)]


def test_each_prompt_stops_at_eos_on_its_own(pair):
    ours, _ = pair
    free = generate(ours, PROMPTS, 20, eos_id=None)
    # a token that prompt 1 produces but some other prompt never does
    eos = next(t for t in free[1] if any(t not in row for row in free))
    stopped = generate(ours, PROMPTS, 20, eos_id=eos)
    for row, full in zip(stopped, free):
        cut = full.index(eos) + 1 if eos in full else len(full)
        assert row == full[:cut]  # up to and including its first eos, then nothing
    assert len(stopped[1]) < 20 and any(len(row) == 20 for row in stopped)
    steps = list(stream_generate(ours, PROMPTS, 20, eos_id=eos))
    assert all(len(step) == len(PROMPTS) for step in steps)
    assert [[t for t in col if t is not None] for col in zip(*steps)] == stopped


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m(torch.tensor([[1, 2, 3]]), attention_mask=torch.ones(1, 4)), ValueError,
     r"attention_mask has shape \[1, 4\], but the ids need \[B=1, S=3\]"),
    (lambda m: m(torch.tensor([[1, 2], [3, 4]]), attention_mask=torch.tensor([[1, 1], [0, 0]])), ValueError,
     r"attention_mask row 1 is all zeros"),
    (lambda m: m(torch.tensor([[1, 2]]), attention_mask=torch.tensor([[1, 2]])), ValueError,
     r"only 0 \(padding\) and 1"),
    (lambda m: generate(m, [[1, 2], [1] * 45, [3]], 5), ValueError,
     r"prompt 1 \(45 tokens\) \+ max_new_tokens \(5\) = 50 exceeds the context window n_ctx=48"),
    (lambda m: generate(m, [[1, 2], []], 5), ValueError, r"prompt 1 is empty"),
    (lambda m: generate(m, [[1, 2], [3, 500]], 5), ValueError, r"prompt 1: token id 500 is outside"),
])
def test_bad_batches_name_the_problem(tiny, call, error, message):
    with pytest.raises(error, match=message):
        call(tiny)
