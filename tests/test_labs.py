"""Tests of the classroom labs: the checks, the student versions, and the grading script.

- every check passes the solution, says TODO on the stub, and fails each typical wrong
  solution below with the message that names the mistake;
- student/ equals a fresh generation from notebooks/ (it fails when student/ is stale);
- every exercise in notebooks/ (and in the fixture) is driven from the notebook itself:
  its solution cell passes its check and its generated stub gives TODO;
- scripts/grade.py over solved, unsolved and broken submissions writes the expected CSV.
"""

import ast
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import torch.nn.functional as F

from gpt2lib.labs import LAB_KEY, REGISTRY, LabCheckFailed, LabResult, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09
from gpt2lib.labs import check_prediction
from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "lab_fixture.ipynb"


make_student = load_script("make_student_notebooks")
grade_script = load_script("grade")

# ---------------------------------------------------------------------------
# Solutions and typical wrong solutions, written the way a reader would write them.
# ---------------------------------------------------------------------------

def todo(*args, **kwargs):
    raise NotImplementedError("the hint from the notebook")


# chapter 2
def pair_counts(parts):
    counts = {}
    for pair in zip(parts, parts[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def pair_counts_misses_last(parts):
    counts = {}
    for i in range(len(parts) - 2):
        pair = (parts[i], parts[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def pair_counts_as_set(parts):
    return {pair: 1 for pair in zip(parts, parts[1:])}


def merge(parts, pair):
    out, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
            out.append(parts[i] + parts[i + 1])
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


def merge_overlapping(parts, pair):
    out, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
            out.append(parts[i] + parts[i + 1])
        else:
            out.append(parts[i])
        i += 1
    return out


def merge_drops_last(parts, pair):
    out, i = [], 0
    while i < len(parts) - 1:
        if (parts[i], parts[i + 1]) == pair:
            out.append(parts[i] + parts[i + 1])
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


def merge_in_place(parts, pair):
    i = 0
    while i < len(parts) - 1:
        if (parts[i], parts[i + 1]) == pair:
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        i += 1
    return parts


# chapter 3
def one_hot_embed(ids, wte):
    return F.one_hot(ids, num_classes=wte.shape[0]).to(wte.dtype) @ wte


def one_hot_no_num_classes(ids, wte):
    return F.one_hot(ids).float() @ wte


def one_hot_long(ids, wte):
    return F.one_hot(ids, num_classes=wte.shape[0]) @ wte


def cosine(a, b):
    return (a @ b) / (a.norm() * b.norm())


def cosine_dot_only(a, b):
    return a @ b


def cosine_squared_norms(a, b):
    return (a @ b) / ((a @ a) * (b @ b))


def embed_positions(idx, wte, wpe):
    return wte[idx] + wpe[torch.arange(idx.shape[1])]


def embed_no_positions(idx, wte, wpe):
    return wte[idx]


def embed_positions_by_token(idx, wte, wpe):
    return wte[idx] + wpe[idx]


def embed_positions_from_one(idx, wte, wpe):
    return wte[idx] + wpe[torch.arange(1, idx.shape[1] + 1)]


# chapter 4
def stable_softmax(x):
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def naive_softmax(x):
    e = torch.exp(x)
    return e / e.sum(dim=-1, keepdim=True)


def softmax_global_max(x):
    e = torch.exp(x - x.max())
    return e / e.sum(dim=-1, keepdim=True)


def softmax_wrong_axis(x):
    e = torch.exp(x - x.max(dim=0, keepdim=True).values)
    return e / e.sum(dim=0, keepdim=True)


def mask(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def mask_upper(T):
    return torch.triu(torch.ones(T, T, dtype=torch.bool))


def mask_no_diagonal(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1)


def mask_inverted(T):
    return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)


def mask_additive(T):
    return torch.zeros(T, T).masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))


def head(q, k, v):
    T, hs = q.shape
    scores = q @ k.T / math.sqrt(hs)
    scores = scores.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def head_mask_after_softmax(q, k, v):
    T, hs = q.shape
    weights = torch.softmax(q @ k.T / math.sqrt(hs), dim=-1)
    return (weights * torch.tril(torch.ones(T, T))) @ v


def head_no_mask(q, k, v):
    return torch.softmax(q @ k.T / math.sqrt(q.shape[1]), dim=-1) @ v


def head_zero_fill(q, k, v):
    T, hs = q.shape
    scores = (q @ k.T / math.sqrt(hs)).masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), 0.0)
    return torch.softmax(scores, dim=-1) @ v


def head_unscaled(q, k, v):
    T, _ = q.shape
    scores = (q @ k.T).masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def head_scaled_by_hs(q, k, v):
    T, hs = q.shape
    scores = (q @ k.T / hs).masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


# chapter 5
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def layer_norm_eps_outside(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    std = x.var(dim=-1, keepdim=True, unbiased=False).sqrt()
    return (x - mean) / (std + eps) * weight + bias


def layer_norm_unbiased(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(x.var(dim=-1, keepdim=True) + eps) * weight + bias


def layer_norm_no_affine(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False) + eps)


def layer_norm_whole_tensor(x, weight, bias, eps=1e-5):
    return (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + eps) * weight + bias


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def gelu_erf(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def gelu_no_cubic(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x))


def gelu_relu(x):
    return torch.clamp(x, min=0)


def block_forward(block, x):
    x = x + block.attn(block.ln_1(x))
    return x + block.mlp(block.ln_2(x))


def block_post_norm(block, x):
    x = block.ln_1(x + block.attn(x))
    return block.ln_2(x + block.mlp(x))


def block_no_residual(block, x):
    x = block.attn(block.ln_1(x))
    return block.mlp(block.ln_2(x))


def block_mlp_reads_old_x(block, x):
    return x + block.attn(block.ln_1(x)) + block.mlp(block.ln_2(x))


# chapter 6
def count_params(c):
    C = c.n_embd
    block = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    return c.n_vocab * C + c.n_ctx * C + c.n_layer * block + 2 * C


def count_params_untied(c):
    return count_params(c) + c.n_vocab * c.n_embd


def count_params_no_ln_f(c):
    return count_params(c) - 2 * c.n_embd


def count_params_no_wpe(c):
    return count_params(c) - c.n_ctx * c.n_embd


CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def convert(hf_state):
    out = {}
    for name, tensor in hf_state.items():
        name = name.removeprefix("transformer.")
        out[name] = tensor.t() if name.endswith(CONV1D) else tensor
    return out


def convert_no_transpose(hf_state):
    return {name.removeprefix("transformer."): tensor for name, tensor in hf_state.items()}


def convert_keeps_prefix(hf_state):
    return {name: tensor.t() if name.endswith(CONV1D) else tensor for name, tensor in hf_state.items()}


def convert_transposes_all_2d(hf_state):
    return {name.removeprefix("transformer."): tensor.t() if tensor.dim() == 2 else tensor
            for name, tensor in hf_state.items()}


def convert_only_rectangular(hf_state):  # transposes what does not fit, misses the square c_proj
    out = {}
    for name, tensor in hf_state.items():
        name = name.removeprefix("transformer.")
        out[name] = tensor.t() if name.endswith(("c_attn.weight", "c_fc.weight", "mlp.c_proj.weight")) else tensor
    return out


# chapter 7
def probs_with_temperature(logits, temperature):
    return torch.softmax(logits / temperature, dim=-1)


def probs_times_temperature(logits, temperature):
    return torch.softmax(logits * temperature, dim=-1)


def probs_no_softmax(logits, temperature):
    return logits / temperature


def top_k(logits, k):
    kth = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_zero(logits, k):
    kth = torch.topk(logits, k).values[-1]
    return logits.masked_fill(logits < kth, 0.0)


def top_k_one_too_many(logits, k):
    if k >= len(logits):
        return logits
    kth = torch.topk(logits, k + 1).values[-1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_probabilities(logits, k):
    kth = torch.topk(logits, k).values[-1]
    return torch.softmax(logits.masked_fill(logits < kth, float("-inf")), -1)


def top_p(logits, p):
    sorted_logits, order = torch.sort(logits, descending=True)
    probs = torch.softmax(sorted_logits, -1)
    before = torch.cumsum(probs, -1) - probs
    remove = before >= p
    remove[0] = False
    out = logits.clone()
    out[order[remove]] = float("-inf")
    return out


def top_p_drops_crossing_token(logits, p):
    sorted_logits, order = torch.sort(logits, descending=True)
    remove = torch.cumsum(torch.softmax(sorted_logits, -1), -1) > p
    out = logits.clone()
    out[order[remove]] = float("-inf")
    return out


def top_p_unsorted(logits, p):
    probs = torch.softmax(logits, -1)
    remove = torch.cumsum(probs, -1) - probs >= p
    remove[0] = False
    return logits.masked_fill(remove, float("-inf"))


# chapter 8
def inputs_and_labels(window):
    return window[:, :-1], window[:, 1:]


def labels_not_shifted(window):
    return window[:, :-1], window[:, :-1]


def labels_swapped(window):
    return window[:, 1:], window[:, :-1]


def labels_1d_slicing(window):
    return window[:-1], window[1:]


def lm_loss(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1))


def lm_loss_double_softmax(logits, labels):
    return F.cross_entropy(torch.softmax(logits, -1).reshape(-1, logits.size(-1)), labels.reshape(-1))


def lm_loss_sum(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), reduction="sum")


def lm_loss_not_flattened(logits, labels):
    return F.cross_entropy(logits, labels)


def lr(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def lr_warmup_from_zero(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    return lr(step, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_steps, total_steps=total_steps)


def lr_decays_to_zero(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * progress)) * max_lr


# chapter 9
def logit_lens(model, residual):
    return model.lm_head(model.ln_f(residual))


def logit_lens_no_ln_f(model, residual):
    return model.lm_head(residual)


def prev_score(weights):
    return torch.diagonal(weights, offset=-1).mean().item()


def prev_score_diagonal(weights):
    return torch.diagonal(weights).mean().item()


def prev_score_divides_by_T(weights):
    return (torch.diagonal(weights, offset=-1).sum() / weights.shape[0]).item()


# (check, answer, expected status, a phrase the message must contain)
CASES = [
    (ch02.check_get_pair_counts, pair_counts, "pass", "right counts"),
    (ch02.check_get_pair_counts, pair_counts_misses_last, "fail", "the last pair"),
    (ch02.check_get_pair_counts, pair_counts_as_set, "fail", "pairs overlap"),
    (ch02.check_merge_pair, merge, "pass", "gpt2lib.bpe.merge_pair"),
    (ch02.check_merge_pair, merge_overlapping, "fail", "skip both pieces"),
    (ch02.check_merge_pair, merge_drops_last, "fail", "the last piece is lost"),
    (ch02.check_merge_pair, merge_in_place, "fail", "changed the list it was given"),
    (ch03.check_one_hot_embedding, one_hot_embed, "pass", "picks the rows of wte"),
    (ch03.check_one_hot_embedding, one_hot_no_num_classes, "fail", "num_classes=wte.shape[0]"),
    (ch03.check_one_hot_embedding, one_hot_long, "fail", ".to(wte.dtype)"),
    (ch03.check_cosine_similarity, cosine, "pass", "F.cosine_similarity"),
    (ch03.check_cosine_similarity, cosine_dot_only, "fail", "you returned the dot product"),
    (ch03.check_cosine_similarity, cosine_squared_norms, "fail", "not by a.a and b.b"),
    (ch03.check_embed_with_positions, embed_positions, "pass", "gpt2lib.GPT.embed"),
    (ch03.check_embed_with_positions, embed_no_positions, "fail", "add the position embeddings"),
    (ch03.check_embed_with_positions, embed_positions_by_token, "fail", "not by token id"),
    (ch03.check_embed_with_positions, embed_positions_from_one, "fail", "positions start at 0"),
    (ch04.check_softmax, stable_softmax, "pass", "gpt2lib.attention.softmax"),
    (ch04.check_softmax, naive_softmax, "fail", "overflow to nan"),
    (ch04.check_softmax, softmax_global_max, "fail", "each row's own max"),
    (ch04.check_softmax, softmax_wrong_axis, "fail", "do not sum to 1"),
    (ch04.check_causal_mask, mask, "pass", "gpt2lib.attention.causal_mask"),
    (ch04.check_causal_mask, mask_upper, "fail", "a future token"),
    (ch04.check_causal_mask, mask_no_diagonal, "fail", "attend to itself"),
    (ch04.check_causal_mask, mask_inverted, "fail", "inverted"),
    (ch04.check_causal_mask, mask_additive, "fail", "additive mask"),
    (ch04.check_attention_head, head, "pass", "no future leaks in"),
    (ch04.check_attention_head, head_mask_after_softmax, "fail", "did you mask after the softmax?"),
    (ch04.check_attention_head, head_no_mask, "fail", "the future leaks in"),
    (ch04.check_attention_head, head_zero_fill, "fail", "with -inf (not 0)"),
    (ch04.check_attention_head, head_unscaled, "fail", "divide q @ k.T by sqrt(hs)"),
    (ch04.check_attention_head, head_scaled_by_hs, "fail", "not by hs"),
    (ch05.check_layer_norm, layer_norm, "pass", "gpt2lib.layers.LayerNorm"),
    (ch05.check_layer_norm, layer_norm_eps_outside, "fail", "is eps inside the square root?"),
    (ch05.check_layer_norm, layer_norm_unbiased, "fail", "biased variance"),
    (ch05.check_layer_norm, layer_norm_no_affine, "fail", "add bias after normalizing"),
    (ch05.check_layer_norm, layer_norm_whole_tensor, "fail", "over the last axis"),
    (ch05.check_gelu, gelu_tanh, "pass", "gpt2lib.layers.gelu"),
    (ch05.check_gelu, gelu_erf, "fail", "exact (erf) GELU"),
    (ch05.check_gelu, gelu_no_cubic, "fail", "0.044715"),
    (ch05.check_gelu, gelu_relu, "fail", "this is ReLU"),
    (ch05.check_block_forward, block_forward, "pass", "gpt2lib.block.Block"),
    (ch05.check_block_forward, block_post_norm, "fail", "post-norm"),
    (ch05.check_block_forward, block_no_residual, "fail", "adds its update"),
    (ch05.check_block_forward, block_mlp_reads_old_x, "fail", "after the attention update"),
    (ch06.check_count_parameters, count_params, "pass", "124,439,808"),
    (ch06.check_count_parameters, count_params_untied, "fail", "weight tying"),
    (ch06.check_count_parameters, count_params_no_ln_f, "fail", "ln_f"),
    (ch06.check_count_parameters, count_params_no_wpe, "fail", "position embeddings wpe"),
    (ch06.check_convert_state_dict, convert, "pass", "transformers' logits"),
    (ch06.check_convert_state_dict, convert_no_transpose, "fail", "Conv1D stores [in, out]"),
    (ch06.check_convert_state_dict, convert_keeps_prefix, "fail", "'transformer.'"),
    (ch06.check_convert_state_dict, convert_transposes_all_2d, "fail", "only the Conv1D weights"),
    (ch06.check_convert_state_dict, convert_only_rectangular, "fail", "square c_proj"),
    (ch07.check_temperature, probs_with_temperature, "pass", "TemperatureLogitsWarper"),
    (ch07.check_temperature, probs_times_temperature, "fail", "you multiplied by the temperature"),
    (ch07.check_temperature, probs_no_softmax, "fail", "not 1"),
    (ch07.check_top_k, top_k, "pass", "TopKLogitsWarper"),
    (ch07.check_top_k, top_k_zero, "fail", "no logit is -inf"),
    (ch07.check_top_k, top_k_one_too_many, "fail", "you kept 2 tokens"),
    (ch07.check_top_k, top_k_probabilities, "fail", "not probabilities"),
    (ch07.check_top_p, top_p, "pass", "TopPLogitsWarper"),
    (ch07.check_top_p, top_p_drops_crossing_token, "fail", "one token too few"),
    (ch07.check_top_p, top_p_unsorted, "fail", "more likely than one you kept"),
    (ch08.check_inputs_and_labels, inputs_and_labels, "pass", "get_batch"),
    (ch08.check_inputs_and_labels, labels_not_shifted, "fail", "the labels are the inputs"),
    (ch08.check_inputs_and_labels, labels_swapped, "fail", "swapped"),
    (ch08.check_inputs_and_labels, labels_1d_slicing, "fail", "shape"),
    (ch08.check_lm_loss, lm_loss, "pass", "transformers' GPT-2 loss"),
    (ch08.check_lm_loss, lm_loss_double_softmax, "fail", "it takes raw logits"),
    (ch08.check_lm_loss, lm_loss_sum, "fail", "take the mean"),
    (ch08.check_lm_loss, lm_loss_not_flattened, "fail", "flatten both"),
    (ch08.check_lr_schedule, lr, "pass", "gpt2lib.train.lr_at"),
    (ch08.check_lr_schedule, lr_warmup_from_zero, "fail", "the first step is wasted"),
    (ch08.check_lr_schedule, lr_decays_to_zero, "fail", "not to 0"),
    (ch09.check_logit_lens, logit_lens, "pass", "ln_f + lm_head"),
    (ch09.check_logit_lens, logit_lens_no_ln_f, "fail", "apply the final layer norm ln_f"),
    (ch09.check_previous_token_score, prev_score, "pass", "pure previous-token"),
    (ch09.check_previous_token_score, prev_score_diagonal, "fail", "the token itself"),
    (ch09.check_previous_token_score, prev_score_divides_by_T, "fail", "you divided by T"),
]

from test_labs_track import TRACK_CASES  # noqa: E402  the build-track checks of chapters 2, 3, 6 and 8

CASES += TRACK_CASES



def case_id(case):
    check, answer, status, _ = case
    return f"{check.spec.exercise}-{answer.__name__}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_check_verdict_and_message(case):
    check, answer, status, phrase = case
    result = check(answer)
    assert isinstance(result, LabResult)
    assert result.status == status and phrase in result.message, (
        f"{check.__name__}({answer.__name__}) should give {status.upper()} mentioning {phrase!r}, got: {result}")
    assert str(result).startswith(f"[{status.upper()}] ex {check.spec.exercise} ")
    assert "\n" not in str(result)


IMPLEMENT = sorted(name for name, spec in REGISTRY.items() if spec.kind == "implement")


@pytest.mark.parametrize("name", IMPLEMENT)
def test_implement_check_says_todo_on_the_stub(name):
    check = getattr(sys.modules[f"gpt2lib.labs.ch0{REGISTRY[name].exercise[0]}"], name)
    result = check(todo)
    assert result.status == "todo", f"{name} on a stub should be TODO, got: {result}"
    assert result.message == "not implemented yet: the hint from the notebook"
    assert check(None).status == "todo"


@pytest.mark.parametrize("name", IMPLEMENT)
def test_implement_check_is_exercised_by_a_right_and_a_wrong_solution(name):
    verdicts = {status for check, _, status, _ in CASES if check.__name__ == name}
    assert verdicts == {"pass", "fail"}, f"{name} needs a solution and at least one wrong solution in CASES"


def test_a_wrong_return_type_fails_and_an_exception_is_reported_as_the_readers():
    assert ch04.check_softmax(lambda x: "probabilities").status == "fail"
    result = ch04.check_softmax(lambda x: x.nonexistent())
    assert result.status == "fail" and "your function raised AttributeError" in result.message
    assert ch04.check_softmax(3).message == "expected a function, got int"


def test_result_is_one_stable_line_and_carries_machine_readable_data():
    result = ch04.check_softmax(stable_softmax)
    assert repr(result) == str(result) == (
        "[PASS] ex 4.1 softmax: matches gpt2lib.attention.softmax on 5 inputs, large scores and -inf included")
    data, metadata = result._repr_mimebundle_()
    assert data == {"text/plain": str(result)}
    assert metadata[LAB_KEY] == {"exercise": "4.1", "title": "softmax", "status": "pass",
                                "message": result.message}
    assert result.raise_if_failed() is result
    with pytest.raises(LabCheckFailed, match=r"\[FAIL\] ex 4.1 softmax: overflow to nan"):
        ch04.check_softmax(naive_softmax).raise_if_failed()


def test_failure_messages_do_not_depend_on_float_noise():
    # the same wrong answer twice, from inputs built anew, gives the identical line
    assert str(ch05.check_layer_norm(layer_norm_eps_outside)) == str(ch05.check_layer_norm(layer_norm_eps_outside))
    # differences are shown with two significant digits, not the float32 noise after them
    assert re.search(r"is off by \d\.?\d? on a token with tiny variance", ch05.check_layer_norm(layer_norm_eps_outside).message)


# predictions: (check, the right answer worked out by hand, a wrong one)
PREDICTIONS = [
    (ch03.check_predict_same_vector, False, True),
    (ch04.check_predict_head_shape, (1, 12, 5, 64), (1, 5, 12, 64)),
    (ch04.check_predict_unscaled, ("sharper", "up"), ("flatter", "up")),
    (ch05.check_predict_breaks, ["skip_attention", "post_norm", "skip_mlp"], ["skip_mlp", "post_norm", "skip_attention"]),
    (ch06.check_predict_untied_parameters, 163_037_184, 124_439_808),
    (ch07.check_predict_temperature, math.exp(4) / (math.exp(4) + math.exp(2) + 1), 0.5),
    (ch08.check_predict_initial_loss, math.log(50257), 2.0),
    (ch09.check_predict_residual_count, 13, 12),
]


@pytest.mark.parametrize("check, right, wrong", PREDICTIONS, ids=lambda x: getattr(x, "__name__", None))
def test_prediction_checks(check, right, wrong):
    assert check(right).status == "pass", str(check(right))
    result = check(wrong)
    assert result.status == "fail" and result.message.startswith(f"you predicted {wrong!r}"), str(result)
    if not isinstance(right, float):  # a wrong try hears why to think again, not the answer
        assert repr(right) not in result.message.removeprefix(f"you predicted {wrong!r}"), str(result)
    assert check(None).status == "todo"


def test_token_count_prediction_and_one_token_word_agree_with_tiktoken():
    from gpt2lib.tokenizer import tiktoken_encoding

    enc = tiktoken_encoding()
    n = len(enc.encode(ch02.PREDICT_TEXT))
    assert ch02.check_predict_token_count(n).status == "pass"
    assert ch02.check_predict_token_count(n + 1).status == "fail"
    assert len(enc.encode(" something")) == 1
    assert ch02.check_single_token_word("something").status == "pass"
    long_word = "antidisestablishmentarianism"
    result = ch02.check_single_token_word(long_word)
    assert result.status == "fail" and f"is {len(enc.encode(' ' + long_word))} tokens" in result.message
    assert "at least 8" in ch02.check_single_token_word("the").message


def test_generic_prediction_check():
    assert check_prediction("3.9", "rows", 4, 4, explain="one per token").status == "pass"
    assert str(check_prediction("3.9", "rows", 5, 4, explain="one per token")) == (
        "[FAIL] ex 3.9 rows: you predicted 5: not it (too high). Go over your reasoning step by step. "
        "Then try again; the answer is in the collapsed solution")
    assert str(check_prediction("3.9", "rows", 4, 4, explain="one per token")) == "[PASS] ex 3.9 rows: right, it is 4: one per token"
    assert "(too low). How many tokens?" in str(check_prediction("3.9", "rows", 3, 4, explain="", nudge="How many tokens?"))


def test_explore_checks_on_a_small_model():
    from gpt2lib import GPT, GPTConfig
    from gpt2lib.labs.ch09 import previous_token_scores

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_embd=16, n_head=2, n_layer=2, n_ctx=64)).eval()
    ids = torch.tensor([[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]])
    attn = model.trace(ids).attentions[1][0, 0]  # layer 1, head 0: [T, T]
    score = float(torch.stack([attn[i, i - 1] for i in range(1, ids.size(1))]).mean())
    assert float(previous_token_scores(model, ids)[1, 0]) == pytest.approx(score)
    # the lens: the answer is the first residual whose top token is the model's final one
    trace = model.trace(ids)
    final = int(trace.logits[0, -1].argmax())
    with torch.no_grad():
        first = next(i for i, r in enumerate(trace.residual) if int(model.lm_head(model.ln_f(r[0, -1])).argmax()) == final)
    assert ch09.check_lens_layer(first, model=model, ids=ids).status == "pass"
    assert ch09.check_lens_layer(first + 1, model=model, ids=ids).status == "fail"
    assert ch07.check_sharp_temperature(0.001, model=model).status == "pass"
    assert "go lower" in ch07.check_sharp_temperature(100.0, model=model).message
    assert ch07.check_sharp_temperature(None).status == "todo"


# ---------------------------------------------------------------------------
# Student versions
# ---------------------------------------------------------------------------

def test_committed_student_notebooks_equal_a_fresh_generation():
    generated = make_student.generate(ROOT / "notebooks")
    problems = make_student.stale(generated, ROOT / "student")
    assert not problems, ("student/ is stale; run `python scripts/make_student_notebooks.py` and commit:\n"
                          + "\n".join(problems))


def code_sources(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_student_version_of_the_fixture():
    text = make_student.generate(FIXTURE.parent)["lab_fixture.ipynb"]
    assert text == make_student.generate(FIXTURE.parent)["lab_fixture.ipynb"], "generation is not deterministic"
    nb = json.loads(text)
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
    sources = code_sources(nb)
    assert sources[1] == (
        'def softmax(scores):\n'
        '    """scores [..., N] -> probabilities [..., N], each row summing to 1."""\n'
        '    raise NotImplementedError("subtract each row\'s max (keepdim=True), exponentiate, divide by the row sum")')
    assert sources[5] == "prediction = None  # TODO: [B, nh, T, hs] with 12 heads of 64 dimensions"
    assert "BEGIN SOLUTION" not in text and "amax" not in text and "unbiased=False)" not in text
    assert all(c.get("outputs") == [] and c.get("execution_count") is None
               for c in nb["cells"] if c["cell_type"] == "code")
    markdown = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "{solution" not in markdown and "{exercise}" not in markdown and "### Exercise 4.1 · A stable softmax" in markdown


@pytest.mark.parametrize("source, problem", [
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", "no '# HINT: ...' line"),
    ("def f():\n    ### BEGIN SOLUTION\n    # HINT: h\n    return 1", "never closed"),
    ("### END SOLUTION", "without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n# HINT: h\nprint(3)\n### END SOLUTION", "must assign the answer"),
])
def test_generator_rejects_malformed_regions(source, problem):
    with pytest.raises(make_student.MarkerError, match=re.escape(problem)):
        make_student.strip_solutions(source, "x.ipynb, cell 3")


def test_check_mode_fails_on_a_stale_folder_and_passes_on_a_fresh_one(tmp_path):
    notebooks, student = tmp_path / "notebooks", tmp_path / "student"
    notebooks.mkdir()
    shutil.copy(FIXTURE, notebooks / "04_attention.ipynb")
    script = [sys.executable, str(ROOT / "scripts" / "make_student_notebooks.py"),
              "--notebooks", str(notebooks), "--out", str(student)]
    stale = subprocess.run(script + ["--check"], capture_output=True, text=True)
    assert stale.returncode == 1 and "student/04_attention.ipynb is missing" in stale.stderr
    assert subprocess.run(script, capture_output=True, text=True).returncode == 0
    assert subprocess.run(script + ["--check"], capture_output=True, text=True).returncode == 0
    nb = json.loads((notebooks / "04_attention.ipynb").read_text())
    nb["cells"][1]["source"] = "import torch\n"  # the solution notebook changes; student/ now lags
    (notebooks / "04_attention.ipynb").write_text(json.dumps(nb))
    lagging = subprocess.run(script + ["--check"], capture_output=True, text=True)
    assert lagging.returncode == 1 and "out of date" in lagging.stderr and "make_student_notebooks" in lagging.stderr


# ---------------------------------------------------------------------------
# Every exercise, driven from its notebook
# ---------------------------------------------------------------------------

def exercise_notebooks() -> list[Path]:
    return [FIXTURE] + [p for p in sorted((ROOT / "notebooks").glob("*.ipynb"))
                        if make_student.has_exercises(json.loads(p.read_text(encoding="utf-8")))]


# an exercise's check: chNN.check_...(...), or the generic check_prediction / check_answer; not gpt2lib.check's
EXERCISE_CHECK = re.compile(r"\bch\d\d\.check_\w+\s*\(|(?<![\w.])check_(?:prediction|answer)\s*\(")


def solution_pairs():
    """(notebook, solution cell source, [check cell sources]) for every solution cell."""
    pairs = []
    for path in exercise_notebooks():
        cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
        sources = ["".join(c["source"]) for c in cells]
        for i, src in enumerate(sources):
            if make_student.BEGIN not in src:
                continue
            checks = []  # the check may close the solution cell itself, or follow it
            for later in sources[i + 1 :]:
                if make_student.BEGIN in later:
                    break
                if EXERCISE_CHECK.search(later):
                    checks.append(later)
            pairs.append(pytest.param(path, src, checks, id=f"{path.stem}-cell{cells[i].get('id', i)}"))
    return pairs


def notebook_imports(path: Path) -> str:
    """Every top-level import statement of the notebook's code cells."""
    lines = []
    for src in code_sources(json.loads(path.read_text(encoding="utf-8"))):
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        lines += [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(lines)


def run_cell(source: str, namespace: dict):
    """exec a cell; return the value of its last expression, as Jupyter would display it."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace) if last else None


def run_alone(source: str, namespace: dict, path: Path):
    try:
        return run_cell(source, namespace)
    except NameError as e:
        pytest.fail(f"{path.name}: {e} in this cell:\n{source}\nA solution cell and its check cell must run "
                    f"after the notebook's imports alone (docs/EXERCISES.md): get a tokenizer or a model "
                    f"inside the cell (gpt2lib.get_tokenizer(), gpt2lib.labs.core.bundled_model()).")


@pytest.mark.parametrize("path, solution, checks", solution_pairs())
def test_solution_passes_and_stub_is_todo(path, solution, checks):
    in_cell = bool(EXERCISE_CHECK.search(solution))
    assert checks or in_cell, f"{path.name}: a solution cell without a check after it:\n{solution}"
    for version, status in ((solution, "pass"), (make_student.strip_solutions(solution, path.name), "todo")):
        namespace = {}
        exec(notebook_imports(path), namespace)
        results = [run_alone(version, namespace, path)] if in_cell else []
        run_alone(version, namespace, path) if not in_cell else None
        results += [run_alone(check, namespace, path) for check in checks]
        for result, cell in zip(results, ([version] if in_cell else []) + checks):
            assert isinstance(result, LabResult), f"{path.name}: the check call must be the cell's last line:\n{cell}"
            assert result.status == status, f"{path.name}, {'solution' if status == 'pass' else 'stub'}: {result}"


EXERCISE_LABEL = re.compile(r"\{exercise\}[^\n]*\n:label: ex-(\d+)-(\d+)")
BADGE = re.compile(r"^\*\*[★☆]{3} · \d+ min · (implement|predict|explore)\*\*$", re.MULTILINE)
GENERIC_CHECK = re.compile(r"check_(?:prediction|answer)\(\s*['\"](\d+\.\d+)['\"]")


@pytest.mark.parametrize("path", exercise_notebooks(), ids=lambda p: p.stem)
def test_every_exercise_has_a_badge_and_a_check_with_its_number(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    labelled, badges, checked = [], 0, []
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "{exercise}" in src:
            found = EXERCISE_LABEL.search(src)
            assert found, f"{path.name}: exercise without ':label: ex-<chapter>-<n>' right after the title:\n{src}"
            labelled.append(f"{found.group(1)}.{found.group(2)}")
            assert BADGE.search(src), f"{path.name}: exercise {labelled[-1]} lacks a line like '**★★☆ · 10 min · implement**'"
        if cell["cell_type"] == "code":
            checked += [REGISTRY[n].exercise for n in re.findall(r"\bch\d\d\.(check_\w+)\s*\(", src) if n in REGISTRY]
            checked += GENERIC_CHECK.findall(src)
    assert sorted(labelled) == sorted(checked), (
        f"{path.name}: exercise labels {sorted(labelled)} and check numbers {sorted(checked)} differ")
    if path != FIXTURE:  # a chapter: its own numbers, in order, so the book's numbering matches
        chapter = int(path.name[:2])
        expected = [f"{chapter}.{n}" for n in range(1, len(labelled) + 1)]
        assert labelled == expected, f"{path.name}: exercises should be {expected} in this order, got {labelled}"


# ---------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------

@pytest.mark.slow
def test_grading_a_folder_writes_the_expected_csv(tmp_path):
    submitted = tmp_path / "submitted"
    for student in ("alice", "bob", "carol"):
        (submitted / student).mkdir(parents=True)
    shutil.copy(FIXTURE, submitted / "alice" / "lab_fixture.ipynb")  # solved
    (submitted / "bob" / "lab_fixture.ipynb").write_text(  # handed out, untouched
        make_student.generate(FIXTURE.parent)["lab_fixture.ipynb"])
    nb = json.loads(FIXTURE.read_text())  # carol: a naive softmax, a broken cell, a wrong prediction
    sources = {i: "".join(c["source"]) for i, c in enumerate(nb["cells"])}
    for i, src in sources.items():
        if "def softmax" in src:
            nb["cells"][i]["source"] = "def softmax(scores):\n    return scores.exp() / scores.exp().sum(-1, keepdim=True)\n"
        if "def layer_norm" in src:
            nb["cells"][i]["source"] = "def layer_norm(x, weight, bias, eps=1e-5)\n    return x\n"
        if src.startswith("### BEGIN SOLUTION"):
            nb["cells"][i]["source"] = "prediction = (1, 5, 12, 64)\n"
    (submitted / "carol" / "lab_fixture.ipynb").write_text(json.dumps(nb))
    out = tmp_path / "results.csv"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "grade.py"), str(submitted), "--out", str(out),
                          "--timeout", "120"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["student", "notebook", "exercise", "status", "message"]
    got = [(r["student"], r["notebook"], r["exercise"], r["status"], r["message"]) for r in rows]
    assert got == [
        ("alice", "lab_fixture", "4.1", "pass",
         "matches gpt2lib.attention.softmax on 5 inputs, large scores and -inf included"),
        ("alice", "lab_fixture", "5.1", "pass",
         "matches gpt2lib.layers.LayerNorm on 3 inputs, a tiny-variance token included; your layer norm in all 13 "
         "places of gpt2-shakespeare: logits vs transformers, max |diff| <= 1e-04"),
        ("alice", "lab_fixture", "4.4", "pass",
         "right, it is (1, 12, 5, 64): [B, nh, T, hs]: 768 = 12 heads x 64 dims, "
         "and the head axis comes before T so that each head attends on its own"),
        ("bob", "lab_fixture", "4.1", "todo",
         "not implemented yet: subtract each row's max (keepdim=True), exponentiate, divide by the row sum"),
        ("bob", "lab_fixture", "5.1", "todo",
         "not implemented yet: (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance"),
        ("bob", "lab_fixture", "4.4", "todo",
         "not answered yet: GPT-2 small, B=1, T=5: the shape of q after splitting into heads, as a tuple"),
        ("carol", "lab_fixture", "4.1", "fail",
         "overflow to nan on scores [1000, 1001, 1002]: exp(1000.) is inf; subtract the row max before exponentiating"),
        ("carol", "lab_fixture", "5.1", "error", "the cell raised NameError: name 'layer_norm' is not defined"),
        ("carol", "lab_fixture", "4.4", "fail",
         "you predicted (1, 5, 12, 64): not it. How wide is each head, and which two axes must sit last for one "
         "head's queries to meet its keys in a matrix product? Then try again; the answer is in the collapsed solution"),
    ]
    assert not any(p.suffix == ".ipynb" and p.stat().st_mtime > out.stat().st_mtime for p in submitted.rglob("*"))
