"""The build track of chapters 2 to 8: the reader's pieces checked against independent references.

Each check here must pass on a right solution and fail, naming the problem, on each typical
mistake and on a piece with a planted bug. TRACK_CASES joins tests/test_labs.py's CASES, so the
generic tests there (verdict and message, TODO on a stub, a right and a wrong solution per
implement check) cover these checks too.
"""

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gpt2lib import bpe
from gpt2lib.labs import ch02, ch03, ch04, ch05, ch07, ch08
from gpt2lib.labs.core import bundled_model, gpt2_tokenizer
from gpt2lib.labs.plug import PLUG_TEXT, places, plug_check, plugged
from gpt2lib.layers import gelu

ROOT = Path(__file__).resolve().parent.parent
TRACK_CHAPTERS = ["02_tokenization.ipynb", "03_embeddings.ipynb", "04_attention.ipynb", "05_transformer_block.ipynb",
                  "06_full_model.ipynb", "08_training.ipynb"]


# chapter 2: encode, against tiktoken
def _merge_lowest_rank_first(data: bytes, ranks) -> list[bytes]:
    parts = [data[i : i + 1] for i in range(len(data))]
    while len(parts) > 1:
        best = min(zip(parts, parts[1:]), key=lambda pair: ranks.get(pair, float("inf")))
        if best not in ranks:
            break
        parts = bpe.merge_pair(parts, best)
    return parts


def encode(text, tok):
    return [tok.encoder[p] for chunk in tok.split(text) for p in _merge_lowest_rank_first(chunk.encode(), tok.merge_ranks)]


def encode_leftmost_pair_first(text, tok):
    return [tok.encoder[p] for chunk in tok.split(text) for p in ch02._leftmost_first(chunk.encode(), tok.merge_ranks)]


def encode_without_split(text, tok):
    return [tok.encoder[p] for p in _merge_lowest_rank_first(text.encode(), tok.merge_ranks)]


def encode_characters(text, tok):
    ids = []
    for chunk in tok.split(text):
        parts = [ch.encode() for ch in chunk]  # one piece per character: a bug for non-ASCII text
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda pair: tok.merge_ranks.get(pair, float("inf")))
            if best not in tok.merge_ranks:
                break
            parts = bpe.merge_pair(parts, best)
        ids += [tok.encoder[p] for p in parts]
    return ids


def encode_bytes_only(text, tok):
    data = text.encode()
    return [tok.encoder[data[i : i + 1]] for i in range(len(data))]


def encode_highest_rank_first(text, tok):  # planted bug: max instead of min
    ids = []
    for chunk in tok.split(text):
        data = chunk.encode()
        parts = [data[i : i + 1] for i in range(len(data))]
        while known := [pair for pair in zip(parts, parts[1:]) if pair in tok.merge_ranks]:
            parts = bpe.merge_pair(parts, max(known, key=tok.merge_ranks.get))
        ids += [tok.encoder[p] for p in parts]
    return ids


def encode_with_gpt2lib(text, tok):
    return tok.encode(text)


# chapter 8: one training step, against transformers' step on the same batch
def _loss(model, x, y, **kwargs):
    logits = model(x)  # [B, T, V]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), **kwargs)


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = _loss(model, x, y)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_step_keeps_old_gradients(model, optimizer, x, y):
    loss = _loss(model, x, y)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_step_without_update(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = _loss(model, x, y)
    loss.backward()
    return loss.item()


def train_step_update_before_backward(model, optimizer, x, y):
    optimizer.zero_grad()
    optimizer.step()
    loss = _loss(model, x, y)
    loss.backward()
    return loss.item()


def train_step_summed_loss(model, optimizer, x, y):  # planted bug: the gradient of the sum, the mean reported
    optimizer.zero_grad()
    loss = _loss(model, x, y, reduction="sum")
    loss.backward()
    optimizer.step()
    return loss.item() / y.numel()


def train_step_on_inputs(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = _loss(model, x, x)
    loss.backward()
    optimizer.step()
    return loss.item()


# chapter 3: the embedding lookup, plugged into the bundled model
def embed_scaled_in_wide_models(idx, wte, wpe):  # planted bug the small model cannot see
    scale = 1.0 if wte.shape[1] <= 8 else 1.01
    return scale * (wte[idx] + wpe[torch.arange(idx.shape[1])])  # [B, T, C]


# chapter 4: the mask, one head and multi-head attention, plugged into all 6 attention layers
def causal(T):
    return torch.arange(T)[None, :] <= torch.arange(T)[:, None]  # [T, T]: key j <= query i


def mask_sees_one_ahead_in_long_texts(T):  # planted bug the check's T = 4, 7, 1 cannot see
    return torch.arange(T)[None, :] <= torch.arange(T)[:, None] + (1 if T > 7 else 0)


def head_mask_after_softmax_in_wide_heads(q, k, v):  # planted bug: only for hs > 16, as in gpt2-shakespeare
    T, hs = q.shape
    scores = q @ k.T / math.sqrt(hs)  # [T, T]
    if hs > 16:
        return (torch.softmax(scores, -1) * causal(T)) @ v
    return torch.softmax(scores.masked_fill(~causal(T), float("-inf")), -1) @ v


def multi_head(attn, x):
    B, T, C = x.shape
    nh, hs = attn.n_head, C // attn.n_head
    q, k, v = attn.c_attn(x).split(C, dim=2)  # 3 x [B, T, C]
    q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))  # [B, T, C] -> [B, nh, T, hs]
    scores = (q @ k.transpose(-2, -1) / math.sqrt(hs)).masked_fill(~causal(T), float("-inf"))  # [B, nh, T, T]
    y = torch.softmax(scores, -1) @ v  # [B, nh, T, hs]
    return attn.c_proj(y.transpose(1, 2).reshape(B, T, C))  # [B, nh, T, hs] -> [B, T, C]


def multi_head_split(attn, x, transpose_split=True, transpose_merge=True, project=True, mask=True, order="qkv"):
    B, T, C = x.shape
    nh, hs = attn.n_head, C // attn.n_head
    parts = dict(zip(order, attn.c_attn(x).split(C, dim=2)))  # 3 x [B, T, C]
    if transpose_split:
        q, k, v = (parts[n].view(B, T, nh, hs).transpose(1, 2) for n in "qkv")  # [B, nh, T, hs]
    else:
        q, k, v = (parts[n].reshape(B, nh, T, hs) for n in "qkv")  # the missing transpose
    scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # [B, nh, T, T]
    if mask:
        scores = scores.masked_fill(~causal(T), float("-inf"))
    y = torch.softmax(scores, -1) @ v  # [B, nh, T, hs]
    y = y.transpose(1, 2).reshape(B, T, C) if transpose_merge else y.reshape(B, T, C)
    return attn.c_proj(y) if project else y


def mha_missing_split_transpose(attn, x):
    return multi_head_split(attn, x, transpose_split=False)


def mha_missing_merge_transpose(attn, x):
    return multi_head_split(attn, x, transpose_merge=False)


def mha_without_c_proj(attn, x):
    return multi_head_split(attn, x, project=False)


def mha_not_causal(attn, x):
    return multi_head_split(attn, x, mask=False)


def mha_kqv(attn, x):
    return multi_head_split(attn, x, order="kqv")


def mha_missing_transpose_beyond_two_heads(attn, x):  # planted bug: right for the check's 2 heads only
    return multi_head_split(attn, x, transpose_split=attn.n_head <= 2)


# chapter 5: layer norm, GELU, the MLP and the block, plugged into every place of gpt2-shakespeare
def layer_norm_eps_outside(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    return (x - mean) / (x.var(dim=-1, keepdim=True, unbiased=False).sqrt() + eps) * weight + bias


def layer_norm_eps_outside_when_wide(x, weight, bias, eps=1e-5):  # planted bug: C = 8 in the check, 192 in the model
    mean = x.mean(dim=-1, keepdim=True)
    std = x.var(dim=-1, keepdim=True, unbiased=False).sqrt()
    if x.shape[-1] > 8:
        return (x - mean) / (std + eps) * weight + bias
    return (x - mean) / torch.sqrt(std**2 + eps) * weight + bias


def gelu_formula(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gelu_exact_on_matrices(x):  # planted bug: the check's x is 1-d, the model's [B, T, 4C]
    return F.gelu(x) if x.dim() > 1 else gelu_formula(x)


class MyMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(gelu_formula(self.c_fc(x)))  # [B, T, C] -> [B, T, 4C] -> [B, T, C]


class MLPWithOtherNames(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.up = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.down = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.down(gelu_formula(self.up(x)))


class MLPNotWidened(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(gelu_formula(self.c_fc(x)))


class MLPWithoutActivation(MyMLP):
    def forward(self, x):
        return self.c_proj(self.c_fc(x))


class MLPWithRelu(MyMLP):
    def forward(self, x):
        return self.c_proj(torch.relu(self.c_fc(x)))


class MLPWithoutOutputBias(MyMLP):
    def forward(self, x):
        return gelu_formula(self.c_fc(x)) @ self.c_proj.weight.T


class MLPWithoutBiasWhenWide(MyMLP):  # planted bug: n_embd 16 in the check, 192 in the model
    def forward(self, x):
        h = gelu_formula(self.c_fc(x))  # [B, T, 4C]
        return h @ self.c_proj.weight.T if x.shape[-1] > 16 else self.c_proj(h)


def block_forward(block, x):
    x = x + block.attn(block.ln_1(x))
    return x + block.mlp(block.ln_2(x))


def block_post_norm_when_wide(block, x):  # planted bug: n_embd 16 in the check, 192 in the model
    if x.shape[-1] <= 16:
        return block_forward(block, x)
    x = block.ln_1(x + block.attn(x))
    return block.ln_2(x + block.mlp(x))


def block_ln_1_twice(block, x):
    x = x + block.attn(block.ln_1(x))
    return x + block.mlp(block.ln_1(x))


# chapter 7: the generation loop against transformers' generate, the filters against its logits warpers
def greedy_loop(model, ids, n):
    T = ids.size(1)
    for _ in range(n):
        next_id = model(ids)[:, -1, :].argmax(dim=-1, keepdim=True)  # [1, 1]
        ids = torch.cat([ids, next_id], dim=1)  # [1, T + 1]
    return ids[:, T:]  # [1, n]


def greedy_loop_with_cache(model, ids, n):
    from gpt2lib.attention import KVCache

    cache, new = KVCache(model.config), []
    for _ in range(n):
        ids = model(ids, cache)[:, -1].argmax(-1, keepdim=True)  # [1, 1], only the new token goes in next
        new.append(int(ids))
    return new


def greedy_returns_the_prompt(model, ids, n):
    for _ in range(n):
        ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


def greedy_feeds_the_last_token_only(model, ids, n):
    T = ids.size(1)
    for _ in range(n):
        ids = torch.cat([ids, model(ids[:, -1:])[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[:, T:]


def greedy_argmax_over_positions(model, ids, n):
    T = ids.size(1)
    for _ in range(n):
        ids = torch.cat([ids, model(ids).argmax(dim=1)[:, -1:]], dim=1)  # indices of positions, not tokens
    return ids[:, T:]


def greedy_one_short(model, ids, n):
    return greedy_loop(model, ids, n - 1)


def top_k_exactly_k(logits, k):  # ties with the k-th value dropped
    out = torch.full_like(logits, float("-inf"))
    best = torch.topk(logits, k).indices
    out[best] = logits[best]
    return out


def top_p_one_short(logits, p):  # the token that carries the mass past p dropped, top token kept
    sorted_logits, order = torch.sort(logits, descending=True)
    remove = torch.cumsum(torch.softmax(sorted_logits, -1), -1) > p
    remove[0] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def top_p_one_too_many(logits, p):
    sorted_logits, order = torch.sort(logits, descending=True)
    probs = torch.softmax(sorted_logits, -1)
    remove = torch.cumsum(probs, -1) - probs >= p
    remove[1:] = remove[:-1].clone()  # shifted once more: the token after the crossing one stays
    remove[0] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def temperature_not_renormalized(logits, temperature):
    return torch.softmax(logits, -1) ** (1 / temperature)


# (check, answer, expected status, a phrase the message must contain)
TRACK_CASES = [
    (ch03.check_embed_with_positions, embed_scaled_in_wide_models, "fail", "plugged into gpt2-shakespeare"),
    (ch04.check_causal_mask, causal, "pass", "your causal mask in all 6 places of gpt2-shakespeare: logits vs transformers"),
    (ch04.check_causal_mask, mask_sees_one_ahead_in_long_texts, "fail", "plugged into all 6 places of gpt2-shakespeare"),
    (ch04.check_attention_head, head_mask_after_softmax_in_wide_heads, "fail",
     "plugged into all 6 places of gpt2-shakespeare, your attention head makes the logits differ"),
    (ch04.check_multi_head_attention, multi_head, "pass",
     "your multi-head attention in all 6 places of gpt2-shakespeare: logits vs transformers, max |diff| <= 1e-04"),
    (ch04.check_multi_head_attention, mha_missing_split_transpose, "fail", "view as [B, T, nh, hs] first"),
    (ch04.check_multi_head_attention, mha_missing_merge_transpose, "fail", "transpose before the view"),
    (ch04.check_multi_head_attention, mha_without_c_proj, "fail", "must still go through c_proj"),
    (ch04.check_multi_head_attention, mha_not_causal, "fail", "the future leaks in"),
    (ch04.check_multi_head_attention, mha_kqv, "fail", "q, k, v in that order"),
    (ch04.check_multi_head_attention, mha_missing_transpose_beyond_two_heads, "fail",
     "plugged into all 6 places of gpt2-shakespeare"),
    (ch05.check_layer_norm, layer_norm_eps_outside_when_wide, "fail",
     "plugged into all 13 places of gpt2-shakespeare, your layer norm makes the logits differ"),
    (ch05.check_gelu, gelu_exact_on_matrices, "fail", "plugged into all 6 places of gpt2-shakespeare"),
    (ch05.check_mlp_module, MyMLP, "pass", "your MLP in all 6 places of gpt2-shakespeare: logits vs transformers"),
    (ch05.check_mlp_module, MLPWithOtherNames, "fail", "GPT-2's checkpoint names them"),
    (ch05.check_mlp_module, MLPNotWidened, "fail", "4 times as wide"),
    (ch05.check_mlp_module, MLPWithoutActivation, "fail", "no nonlinearity"),
    (ch05.check_mlp_module, MLPWithRelu, "fail", "this is ReLU"),
    (ch05.check_mlp_module, MLPWithoutOutputBias, "fail", "c_proj's bias is missing"),
    (ch05.check_mlp_module, MLPWithoutBiasWhenWide, "fail", "plugged into all 6 places of gpt2-shakespeare"),
    (ch05.check_block_forward, block_post_norm_when_wide, "fail", "plugged into all 6 places of gpt2-shakespeare"),
    (ch05.check_block_forward, block_ln_1_twice, "fail", "through ln_2, not ln_1"),
    (ch07.check_generate, greedy_loop, "pass", "the same 20 greedy tokens as transformers' generate on gpt2-shakespeare"),
    (ch07.check_generate, greedy_loop_with_cache, "pass", "the same 20 greedy tokens as transformers' generate"),
    (ch07.check_generate, greedy_returns_the_prompt, "fail", "return only the 20 new ones"),
    (ch07.check_generate, greedy_feeds_the_last_token_only, "fail", "must see every token so far"),
    (ch07.check_generate, greedy_argmax_over_positions, "fail", "largest logit over the vocabulary"),
    (ch07.check_generate, greedy_one_short, "fail", "add exactly 20"),
    (ch07.check_temperature, temperature_not_renormalized, "fail", "not 1"),
    (ch07.check_top_k, top_k_exactly_k, "fail", "tokens tied with it stay too"),
    (ch07.check_top_p, top_p_one_short, "fail", "one token too few"),
    (ch07.check_top_p, top_p_one_too_many, "fail", "one token too many"),
    (ch08.check_training_step, train_step, "pass", "every weight vs transformers' GPT-2"),
    (ch08.check_training_step, train_step_keeps_old_gradients, "fail", "optimizer.zero_grad()"),
    (ch08.check_training_step, train_step_without_update, "fail", "call optimizer.step()"),
    (ch08.check_training_step, train_step_update_before_backward, "fail", "no weight changed"),
    (ch08.check_training_step, train_step_summed_loss, "fail", "off by"),
    (ch08.check_training_step, train_step_on_inputs, "fail", "the mean cross-entropy of the logits against y"),
    (ch02.check_encode, encode, "pass", "vs tiktoken on 8 texts"),
    (ch02.check_encode, encode_leftmost_pair_first, "fail", "not the leftmost one"),
    (ch02.check_encode, encode_without_split, "fail", "merges never cross a chunk boundary"),
    (ch02.check_encode, encode_characters, "fail", "UTF-8 bytes"),
    (ch02.check_encode, encode_bytes_only, "fail", "one id per byte"),
    (ch02.check_encode, encode_highest_rank_first, "fail", "differ from tiktoken's"),
    (ch02.check_encode, encode_with_gpt2lib, "fail", "write the merge loop yourself"),
]


def test_the_encode_reference_is_tiktoken_and_the_texts_need_every_rule():
    enc = ch02._tiktoken()
    assert type(enc).__module__.startswith("tiktoken")
    tok = ch02.gpt2_tokenizer()
    tables = ch02.BPETables(tok)
    for wrong in (encode_leftmost_pair_first, encode_without_split, encode_highest_rank_first):
        assert any(wrong(t, tables) != enc.encode(t) for t in ch02.ENCODE_TEXTS), wrong.__name__
    assert any(not t.isascii() for t in ch02.ENCODE_TEXTS)


def test_the_training_step_reference_is_transformers_loading_its_own_file():
    hf, ours = ch08._tiny_pair(85)
    assert type(hf).__module__.startswith("transformers")
    assert ch08._weight_diff(ours, hf)[0] == 0.0


# ---------------------------------------------------------------------------
# Plugging the reader's pieces into the bundled model
# ---------------------------------------------------------------------------

def _ids():
    return torch.tensor([gpt2_tokenizer().encode(PLUG_TEXT)])  # [1, T]


def _logits(model, ids):
    with torch.no_grad():
        return model(ids)  # [1, T, V]


def torch_layer_norm(x, weight, bias, eps):
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def head(q, k, v):
    T, hs = q.shape
    scores = (q @ k.T / math.sqrt(hs)).masked_fill(~causal(T), float("-inf"))  # [T, T]
    return torch.softmax(scores, -1) @ v  # [T, hs]


def test_a_piece_goes_into_every_place_where_it_occurs():
    model = bundled_model()
    assert model.config.n_layer == 6
    expected = {"embed": 1, "causal_mask": 6, "attention_head": 6, "attention": 6, "layer_norm": 13, "gelu": 6,
                "mlp": 6, "block": 6}
    assert {piece: len(places(model, piece)) for piece in expected} == expected
    calls = []

    def counting_layer_norm(x, weight, bias, eps):
        calls.append(weight.data_ptr())
        return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)

    with plugged(model, layer_norm=counting_layer_norm):
        _logits(model, _ids())
    assert len(calls) == len(set(calls)) == 13  # each layer norm once, with its own weights


@pytest.mark.parametrize("piece, right, wrong", [
    ("layer_norm", torch_layer_norm, layer_norm_eps_outside),  # eps outside the square root
    ("attention_head", head, head_mask_after_softmax_in_wide_heads),  # the mask after the softmax
    ("attention", multi_head, mha_missing_split_transpose),  # a missing transpose
    ("gelu", gelu_formula, F.gelu),
    ("causal_mask", causal, mask_sees_one_ahead_in_long_texts),
    ("mlp", MyMLP, MLPWithoutBiasWhenWide),
    ("block", block_forward, block_post_norm_when_wide),
])
def test_a_planted_bug_plugged_into_the_full_model_fails_and_the_right_piece_passes(piece, right, wrong):
    model = bundled_model()
    before = _logits(model, _ids())
    good, bad = plug_check(piece, right), plug_check(piece, wrong)
    assert good.passed and good.max_abs_diff <= 1e-4, str(good)
    assert not bad.passed and bad.max_abs_diff > 1e-3, str(bad)
    n = len(places(model, piece))
    assert str(good).startswith(f"[PASS] your ") and f" in all {n} places of gpt2-shakespeare: logits vs transformers" in str(good)
    assert str(bad).startswith("[FAIL] ") and "max |diff| = " in str(bad)
    assert torch.equal(_logits(model, _ids()), before)  # the model is itself again


def test_the_check_line_is_stable():
    line = str(plug_check("layer_norm", torch_layer_norm))
    assert line == "[PASS] your layer norm in all 13 places of gpt2-shakespeare: logits vs transformers, max |diff| <= 1e-04"


def test_the_reference_is_transformers():
    from gpt2lib.check import hf_gpt2

    hf = hf_gpt2(bundled_model())
    assert type(hf).__module__.startswith("transformers")
    assert plug_check("block", block_forward).passed


def test_plugging_gpt2libs_own_pieces_changes_nothing():
    from gpt2lib.attention import CausalSelfAttention
    from gpt2lib.block import Block
    from gpt2lib.layers import MLP, LayerNorm

    model = bundled_model()
    ids = _ids()
    before = _logits(model, ids)
    own = {"layer_norm": LayerNorm, "gelu": gelu, "mlp": MLP, "attention": CausalSelfAttention, "block": Block,
           "embed": lambda idx, wte, wpe: wte[idx] + wpe[torch.arange(idx.shape[1])]}
    for piece, fn in own.items():
        with plugged(model, piece, fn):
            inside = _logits(model, ids)
        assert (inside - before).abs().max() <= 1e-5, piece


@pytest.mark.parametrize("piece", ["layer_norm", "gelu", "mlp", "attention", "attention_head", "causal_mask", "block", "embed"])
def test_plugging_restores_the_model_even_after_an_exception(piece):
    model = bundled_model()
    ids = _ids()
    before = _logits(model, ids)

    class Broken(Exception):
        pass

    def broken(*args):
        raise Broken(piece)

    with pytest.raises(Broken):
        with plugged(model, piece, broken):
            _logits(model, ids)
    assert torch.equal(_logits(model, ids), before)
    assert not any("forward" in m.__dict__ or "embed" in m.__dict__ for m in model.modules())
    with pytest.raises(Broken):  # an exception raised by the with block itself
        with plugged(model, piece, broken):
            raise Broken("in the block")
    assert torch.equal(_logits(model, ids), before)
    result = plug_check(piece, broken)  # inside a check: a failed line naming the error, and the model restored
    assert not result.passed and f"raised Broken inside the model: {piece}" in str(result)
    assert torch.equal(_logits(model, ids), before)


def test_several_pieces_at_once_and_nested():
    model = bundled_model()
    ids = _ids()
    before = _logits(model, ids)
    with plugged(model, layer_norm=torch_layer_norm, gelu=gelu_formula):
        with plugged(model, block=block_forward):
            assert (_logits(model, ids) - before).abs().max() <= 1e-4  # the same up to float32 rounding
        assert (_logits(model, ids) - before).abs().max() <= 1e-4
    assert torch.equal(_logits(model, ids), before)


def test_plugging_refuses_what_it_cannot_do():
    from gpt2lib.attention import KVCache

    model = bundled_model()
    with pytest.raises(ValueError, match="no piece called 'ln'; the pieces are embed, causal_mask"):
        with plugged(model, "ln", torch_layer_norm):
            pass
    with pytest.raises(ValueError, match="name a piece"):
        with plugged(model):
            pass
    with pytest.raises(TypeError, match="plug in a function or an nn.Module class as gelu, got int"):
        with plugged(model, gelu=3):
            pass
    with pytest.raises(TypeError, match="the GELU plugs in as a function"):
        with plugged(model, gelu=MyMLP):
            pass
    with pytest.raises(RuntimeError, match="MLPWithOtherNames cannot take the weights of gpt2lib's MLP"):
        with plugged(model, mlp=MLPWithOtherNames):
            pass
    with pytest.raises(RuntimeError, match="without a KV cache"), torch.no_grad():
        with plugged(model, block=block_forward):
            model(_ids(), cache=KVCache(model.config))
    assert not any("forward" in m.__dict__ for m in model.modules())


# ---------------------------------------------------------------------------
# No spoilers in the build-track chapters
# ---------------------------------------------------------------------------

def _student_notebooks() -> dict[str, str]:
    """The student versions as scripts/make_student_notebooks.py generates them from notebooks/ now."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_student_notebooks", ROOT / "scripts" / "make_student_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate(ROOT / "notebooks")


def _cells(name: str, folder: str) -> list[dict]:
    if folder == "student":  # what the generator makes (test_labs.py checks that student/ equals it)
        return json.loads(_student_notebooks()[name])["cells"]
    return json.loads((ROOT / folder / name).read_text(encoding="utf-8"))["cells"]


def _solution_lines(cells) -> set[str]:
    lines, inside = set(), False
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            stripped = line.strip()
            if stripped in ("### BEGIN SOLUTION", "### END SOLUTION"):
                inside = stripped == "### BEGIN SOLUTION"
            elif inside and len(stripped) > 12 and not stripped.startswith("#"):
                lines.add(stripped)
    return lines


@pytest.mark.parametrize("name", TRACK_CHAPTERS)
def test_no_solution_line_reaches_the_student_notebook(name):
    """Stubs, hints and messages hold no solution line, except what the chapter itself teaches in plain view."""
    solution = _solution_lines(_cells(name, "notebooks"))
    student = "\n".join("".join(c["source"]) for c in _cells(name, "student"))
    taught = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", "\n".join(
        "".join(c["source"]) for c in _cells(name, "notebooks")
        if "solution" not in c.get("metadata", {}).get("tags", []) and "<summary>Hint" not in "".join(c["source"])), flags=re.S)
    leaked = sorted(line for line in solution if line in student and line not in taught)
    assert not leaked, f"student/{name} contains solution lines: {leaked[:3]}"


@pytest.mark.parametrize("name", TRACK_CHAPTERS)
def test_every_solution_region_is_inside_a_collapsed_block(name):
    """The book shows solution code only inside {solution-start} ... {solution-end} (collapsed)."""
    inside = False
    for i, cell in enumerate(_cells(name, "notebooks")):
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "{solution-start}" in text:
            inside = True
        elif cell["cell_type"] == "markdown" and "{solution-end}" in text:
            inside = False
        elif cell["cell_type"] == "code" and "### BEGIN SOLUTION" in text:
            assert inside, f"{name}, cell {i}: solution code outside a collapsed solution block"


@pytest.mark.parametrize("name", TRACK_CHAPTERS)
def test_every_exercise_has_two_collapsed_hints(name):
    cells = _cells(name, "notebooks")
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown" and "{exercise}" in "".join(cell["source"]):
            after = "".join(cells[i + 1]["source"])
            assert re.search(r"<details><summary>Hint 1</summary>.*<details><summary>Hint 2</summary>", after, re.S), (
                f"{name}, cell {i + 1}: the exercise should be followed by Hint 1 and Hint 2 in <details>")


SOLUTION_CODE_OF_CHAPTERS_4_AND_5 = ("tril", "0.044715", "sqrt(var", "unbiased=False", "amax", "keepdim", "view(B, T",
                                     "transpose(1, 2)", "ln_1(x)", "nn.Linear(")


@pytest.mark.parametrize("name", ["04_attention.ipynb", "05_transformer_block.ipynb"])
def test_stubs_and_check_hints_of_chapters_4_and_5_hold_no_solution_code(name):
    stubs = [line for cell in _cells(name, "student") if cell["cell_type"] == "code"
             for line in "".join(cell["source"]).splitlines() if "NotImplementedError(" in line or "# TODO:" in line]
    assert stubs
    chapter = int(name[:2])
    hints = [spec.hint for spec in __import__("gpt2lib.labs", fromlist=["REGISTRY"]).REGISTRY.values()
             if spec.exercise.startswith(f"{chapter}.")]
    for text in stubs + hints:
        leaked = [code for code in SOLUTION_CODE_OF_CHAPTERS_4_AND_5 if code in text]
        assert not leaked, f"{name}: {text!r} gives away {leaked}"


def _text_of(cell) -> str:
    text = "".join(cell["source"])
    for output in cell.get("outputs", []):
        text += "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
    return text


@pytest.mark.parametrize("name", ["04_attention.ipynb", "05_transformer_block.ipynb"])
def test_no_predict_or_explore_answer_appears_before_its_exercise(name):
    import ast

    cells = _cells(name, "notebooks")
    seen, checked = [], 0
    for cell in cells:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and text.startswith("### BEGIN SOLUTION"):
            answer = ast.literal_eval(re.search(r"^\w+ = (.+)$", text, re.M).group(1))
            forms = {repr(answer), str(answer), repr(tuple(answer)) if isinstance(answer, list) else repr(answer)}
            if isinstance(answer, tuple) and len(answer) == 2 and all(isinstance(a, int) for a in answer):
                forms.add(f"layer {answer[0]} head {answer[1]}")
            exercise_at = max(i for i, t in enumerate(seen) if "{exercise}" in t)
            before = "\n".join(seen[:exercise_at])
            assert not [f for f in forms if f in before], f"{name}: the answer {answer!r} appears before its exercise"
            checked += 1
        if "solution" not in cell.get("metadata", {}).get("tags", []):
            seen.append(_text_of(cell))
    assert checked >= 1


CH07 = "07_generation.ipynb"
SOLUTION_CODE_OF_CHAPTER_7 = ("argmax", "torch.cat", "topk", "masked_fill", "cumsum", "sort(", "/ temperature",
                              "[:, -1", "scatter")


def test_chapter_7_exercises_have_two_collapsed_hints_and_collapsed_solutions():
    cells = _cells(CH07, "notebooks")
    exercises = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "{exercise}" in "".join(c["source"])]
    assert len(exercises) == 6
    test_every_exercise_has_two_collapsed_hints(CH07)
    test_every_solution_region_is_inside_a_collapsed_block(CH07)


def test_chapter_7_stubs_hints_and_messages_hold_no_solution_code():
    from gpt2lib.labs import REGISTRY

    cells = _cells(CH07, "notebooks")
    hint_lines = [line for c in cells if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()
                  if line.strip().startswith("# HINT:")]
    assert len(hint_lines) == 6
    hints = [spec.hint for spec in REGISTRY.values() if spec.exercise.startswith("7.")]
    messages = [str(check(answer)) for check, answer, status, _ in TRACK_CASES if check.__module__.endswith("ch07")]
    for text in hint_lines + hints + messages:
        leaked = [code for code in SOLUTION_CODE_OF_CHAPTER_7 if code in text]
        assert not leaked, f"{text!r} gives away {leaked}"
    solution = _solution_lines(cells)
    for cell in cells:  # the collapsed hints may name a function, never hold a line of the solution
        text = "".join(cell["source"])
        if "<summary>Hint" in text:
            assert not [line for line in solution if line in text], f"a hint holds a solution line: {text[:80]!r}"


def test_chapter_7_shows_gpt2libs_version_only_after_the_readers_exercise():
    cells = ["".join(c["source"]) for c in _cells(CH07, "notebooks")]

    def first(text):
        return next(i for i, cell in enumerate(cells) if text in cell)

    for shown, check in [("show_source(_tokens)", "check_generate("), ("show_source(next_token_probs)", "check_top_p("),
                         ("show_source(top_k_filter)", "check_top_k("), ("show_source(top_p_filter)", "check_top_p(")]:
        assert first(check) < first(shown), f"{shown} comes before the exercise checked by {check}"
    assert first("check_temperature(") < first("show_source(next_token_probs)")
