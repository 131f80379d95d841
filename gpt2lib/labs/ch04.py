"""Exercise checks for chapter 4, attention.

References: gpt2lib.attention (softmax, causal_mask, attention_weights), after
Vaswani et al. (2017) and OpenAI's gpt-2/src/model.py (`attn`, `mask_attn_weights`).
"""

import math

import torch

from ..attention import CausalSelfAttention, attention_weights, causal_mask, softmax
from ..config import SIZES
from .core import Mistake, as_tensor, call, exercise, expect_close, expect_shape, fmt, judge, seeded


@exercise("4.1", "softmax", kind="implement",
          hint="subtract each row's max (keepdim=True), exponentiate, divide by the row sum")
def check_softmax(softmax_fn):
    """softmax_fn(scores [..., N]) -> probabilities [..., N], each row summing to 1."""
    g = seeded(41)
    big = torch.tensor([[1000.0, 1001.0, 1002.0]])
    cases = [("scores [1, 2, 3]", torch.tensor([[1.0, 2.0, 3.0]])),
             ("a batch of shape [2, 3, 5]", torch.randn(2, 3, 5, generator=g) * 3),
             ("scores [1000, 1001, 1002]", big),
             ("rows [0, 1, 2] and [1000, 1001, 1002]", torch.cat([big - 1000, big])),
             ("a row with -inf (masked) scores", torch.tensor([[0.5, float("-inf"), 1.5]]))]
    for what, x in cases:
        out = as_tensor(call(softmax_fn, x.clone(), on=what), "the result", like=x)
        expected = softmax(x)
        expect_shape(out, expected, f"the result on {what}")
        if torch.isnan(out).any():
            if what.startswith("rows"):
                raise Mistake(f"nan on {what}: subtract each row's own max "
                              f"(x.amax(dim=-1, keepdim=True)), not the max of the whole tensor")
            raise Mistake(f"overflow to nan on {what}: exp(1000.) is inf; "
                          f"subtract the row max before exponentiating")
        if (out.sum(-1) - 1).abs().max() > 1e-5:
            raise Mistake(f"the rows do not sum to 1 on {what}: normalize over the last axis (dim=-1)")
        expect_close(out, expected, 1e-6, f"the result on {what}")
    return "matches gpt2lib.attention.softmax on 5 inputs, large scores and -inf included"


@exercise("4.2", "causal mask", kind="implement",
          hint="torch.tril(torch.ones(T, T, dtype=torch.bool)): True where a token may look")
def check_causal_mask(mask_fn):
    """mask_fn(T) -> bool [T, T], True where query i may attend to key j (j <= i)."""
    for T in (4, 7, 1):  # T=1 last: a 1x1 mask cannot tell most mistakes apart
        out = as_tensor(call(mask_fn, T, on=f"T={T}"), "the mask")
        expected = causal_mask(T)
        expect_shape(out, expected, f"the mask for T={T}")
        if out.is_floating_point() and torch.isinf(out).any():
            raise Mistake("this is an additive mask (0 and -inf); return a boolean mask, "
                          "True where a token may attend")
        if out.dtype != torch.bool:
            if not ((out == 0) | (out == 1)).all():
                raise Mistake(f"return a boolean mask, got {out.dtype} values other than 0 and 1")
            out = out.bool()
        if torch.equal(out, expected):
            continue
        if torch.equal(out, ~expected):
            raise Mistake("the mask is inverted: True must mean 'may attend' (the lower triangle)")
        if T > 1 and out[0, 1]:
            raise Mistake("query 0 may attend to key 1, a future token: keep the lower triangle "
                          "(torch.tril), not the upper")
        if not out.diagonal().all():
            raise Mistake("a token must be allowed to attend to itself: include the diagonal")
        i, j = (out != expected).nonzero()[0].tolist()
        raise Mistake(f"for T={T}, entry [{i}, {j}] is {bool(out[i, j])}, expected {bool(expected[i, j])}")
    return "matches gpt2lib.attention.causal_mask for T = 4, 7, 1"


def _reference_head(q, k, v):
    return attention_weights(q, k, causal_mask(q.size(-2))) @ v  # [T, T] @ [T, hs] -> [T, hs]


@exercise("4.3", "one attention head", kind="implement",
          hint="scores = q @ k.T / sqrt(hs); future scores to -inf; softmax over the last axis; @ v")
def check_attention_head(head):
    """head(q [T, hs], k [T, hs], v [T, hs]) -> [T, hs], causal scaled dot-product attention."""
    g = seeded(43)
    T, hs = 6, 16
    q, k, v = (torch.randn(T, hs, generator=g) for _ in range(3))
    out = as_tensor(call(head, q.clone(), k.clone(), v.clone(), on="q, k, v of shape [6, 16]"),
                    "the output", like=q)
    expected = _reference_head(q, k, v)
    expect_shape(out, expected, "the output")
    # token 0 sees only itself, so its output must be exactly v[0]
    if not torch.allclose(out[0], v[0], atol=1e-5):
        scale = float(out[0] @ v[0] / (v[0] @ v[0]))
        if torch.allclose(out[0], scale * v[0], atol=1e-5):
            raise Mistake(f"token 0's output is {fmt(scale)} x v[0], not v[0]: its weights do not sum to 1; "
                          f"did you mask after the softmax? set the scores to -inf before it")
    k2, v2 = k.clone(), v.clone()
    k2[-1], v2[-1] = k[-1] * 5, v[-1] + 3  # change only the last token
    out2 = as_tensor(call(head, q.clone(), k2, v2, on="q, k, v with a changed last token"), "the output", like=q)
    if not torch.allclose(out[:-1], out2[:-1], atol=1e-5):
        raise Mistake("the output at earlier positions changed when only the last token changed: "
                      "the future leaks in; fill future scores with -inf (not 0) before the softmax")
    if torch.allclose(out, _reference_head(q * math.sqrt(hs), k, v), atol=1e-4):
        raise Mistake("the scores are not scaled: divide q @ k.T by sqrt(hs)")
    if torch.allclose(out, _reference_head(q / math.sqrt(hs), k, v), atol=1e-4):
        raise Mistake("divide the scores by sqrt(hs), not by hs")
    expect_close(out, expected, 1e-5, "the output", hint="compare with softmax(masked q k^T / sqrt(hs)) @ v")
    return "matches gpt2lib.attention.attention_weights(q, k, mask) @ v; no future leaks in"


@exercise("4.4", "predict: the shape of q per head", kind="predict",
          hint="GPT-2 small, B=1, T=5: the shape of q after splitting into heads, as a tuple")
def check_predict_head_shape(prediction):
    """prediction: tuple, the shape of q after CausalSelfAttention.split_heads for GPT-2 small."""
    attn = CausalSelfAttention(SIZES["gpt2"])
    with torch.no_grad():
        q, _, _ = attn.split_heads(torch.zeros(1, 5, 768))
    return judge(prediction, tuple(q.shape), explain="[B, nh, T, hs]: 768 = 12 heads x 64 dims, "
                 "and the head axis comes before T so that each head attends on its own")


@exercise("4.5", "find a previous-token head", kind="explore",
          hint="in the attention view, look for a head whose weights sit just below the diagonal")
def check_previous_token_head(layer_head, *, model=None, ids=None, threshold: float = 0.5):
    """layer_head: (layer, head) of a head that attends mostly to the previous token.

    The score is the mean weight on the previous token (chapter 9, exercise 9.2),
    on `ids` (default: a line of text) with `model` (default: the bundled model).
    """
    from .ch09 import previous_token_scores, sample_ids

    model = model if model is not None else _bundled()
    ids = ids if ids is not None else sample_ids()
    try:
        layer, h = (int(x) for x in layer_head)
    except (TypeError, ValueError):
        raise Mistake(f"answer with a pair (layer, head), got {layer_head!r}") from None
    scores = previous_token_scores(model, ids)  # [n_layer, nh]
    if not (0 <= layer < scores.size(0) and 0 <= h < scores.size(1)):
        raise Mistake(f"layers go 0 .. {scores.size(0) - 1} and heads 0 .. {scores.size(1) - 1}")
    score = float(scores[layer, h])
    if score < threshold:
        raise Mistake(f"layer {layer} head {h} puts {score:.2f} of its attention on the previous token "
                      f"on average; find one above {threshold}")
    return f"layer {layer} head {h} puts {score:.2f} of its attention on the previous token"


def _bundled():
    from .core import bundled_model

    return bundled_model()
