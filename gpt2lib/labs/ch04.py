"""Exercise checks for chapter 4, attention.

References: gpt2lib.attention (softmax, causal_mask, attention_weights, CausalSelfAttention),
after Vaswani et al. (2017) and OpenAI's gpt-2/src/model.py (`attn`, `mask_attn_weights`), on
small inputs; then the reader's mask, head or attention is plugged into all 6 attention layers of
gpt2-shakespeare (labs.plug) and the logits are compared with transformers' GPT-2.
"""

import math

import torch

from ..attention import CausalSelfAttention, attention_weights, causal_mask, softmax
from ..config import SIZES, GPTConfig
from .core import Mistake, as_tensor, call, exercise, expect_close, expect_shape, fmt, judge, max_diff, seeded
from .plug import expect_plugged, plugged


@exercise("4.1", "softmax", kind="implement",
          hint="the same numbers as the formula, with no exponent above 0, so nothing overflows")
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
          hint="a boolean [T, T] tensor, True where key j is not later than query i")
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
            raise Mistake("query 0 may attend to key 1, a future token: keep the lower triangle, "
                          "not the upper")
        if not out.diagonal().all():
            raise Mistake("a token must be allowed to attend to itself: include the diagonal")
        i, j = (out != expected).nonzero()[0].tolist()
        raise Mistake(f"for T={T}, entry [{i}, {j}] is {bool(out[i, j])}, expected {bool(expected[i, j])}")
    plugged_in = expect_plugged("causal_mask", lambda T: call(mask_fn, T, on="gpt2-shakespeare's length"))
    return f"matches gpt2lib.attention.causal_mask for T = 4, 7, 1; {plugged_in}"


def _reference_head(q, k, v):
    return attention_weights(q, k, causal_mask(q.size(-2))) @ v  # [T, T] @ [T, hs] -> [T, hs]


@exercise("4.3", "one attention head", kind="implement",
          hint="scale, mask, softmax, weighted average of the values: four steps, in that order")
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
    expect_close(out, expected, 1e-5, "the output", hint="scale, mask, softmax, then average the values")
    plugged_in = expect_plugged("attention_head", lambda *qkv: call(head, *qkv, on="gpt2-shakespeare's heads"))
    return f"matches gpt2lib.attention.attention_weights(q, k, mask) @ v; no future leaks in; {plugged_in}"


@exercise("4.4", "predict: the shape of q per head", kind="predict",
          hint="GPT-2 small, B=1, T=5: the shape of q after splitting into heads, as a tuple")
def check_predict_head_shape(prediction):
    """prediction: tuple, the shape of q after CausalSelfAttention.split_heads for GPT-2 small."""
    attn = CausalSelfAttention(SIZES["gpt2"])
    with torch.no_grad():
        q, _, _ = attn.split_heads(torch.zeros(1, 5, 768))
    return judge(prediction, tuple(q.shape), nudge="How wide is each head, and which two axes must sit last "
                 "for one head's queries to meet its keys in a matrix product?",
                 explain="[B, nh, T, hs]: 768 = 12 heads x 64 dims, "
                 "and the head axis comes before T so that each head attends on its own")


def _random_attention(seed: int) -> CausalSelfAttention:
    """A tiny attention layer (C = 16, 2 heads) with weights large enough that every wrong split shows."""
    torch.manual_seed(seed)
    attn = CausalSelfAttention(GPTConfig(n_vocab=10, n_ctx=8, n_embd=16, n_layer=1, n_head=2)).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0.0, 0.4)
    return attn


def _attention_mistakes(attn: CausalSelfAttention, x: torch.Tensor):
    """What the usual wrong multi-head attentions compute, each with what to tell the reader."""
    B, T, C = x.shape
    nh, hs = attn.n_head, C // attn.n_head
    q, k, v = attn.c_attn(x).split(C, dim=2)  # 3 x [B, T, C]
    mask = causal_mask(T)

    def heads(t, transpose=True):  # [B, T, C] -> [B, nh, T, hs]
        return t.view(B, T, nh, hs).transpose(1, 2) if transpose else t.reshape(B, nh, T, hs)

    def merged(y, transpose=True):  # [B, nh, T, hs] -> [B, T, C]
        return attn.c_proj(y.transpose(1, 2).reshape(B, T, C) if transpose else y.reshape(B, T, C))

    right = attention_weights(heads(q), heads(k), mask) @ heads(v)  # [B, nh, T, hs]
    one_head = attention_weights(q[:, None], k[:, None], mask) @ v[:, None]  # [B, 1, T, C]
    cut_wrong = attention_weights(heads(q, False), heads(k, False), mask) @ heads(v, False)  # [B, nh, T, hs]
    why_cut = ("the heads were cut with a view to [B, nh, T, hs] straight away, which mixes tokens and heads; "
               "view as [B, T, nh, hs] first, then swap T and nh")
    return [
        (merged(cut_wrong, False), why_cut),
        (merged(cut_wrong), why_cut),
        (merged(right, False), "the heads' outputs were put back without moving the head axis back "
         "behind T: transpose before the view to [B, T, C]"),
        (right.transpose(1, 2).reshape(B, T, C), "the merged heads must still go through c_proj"),
        (attn.c_proj(one_head[:, 0]), "this is one head of width C; cut q, k and v into n_head heads of C / n_head"),
        (merged(attention_weights(heads(k), heads(q), mask) @ heads(v)), "c_attn's output is q, k, v in that order"),
        (merged(softmax(heads(q) @ heads(k).transpose(-2, -1) / math.sqrt(hs)) @ heads(v)),
         "the future leaks in: mask the scores before the softmax"),
    ]


@exercise("4.5", "multi-head attention", kind="implement",
          hint="project with c_attn and split into q, k, v; cut each into n_head heads; attend; merge; c_proj")
def check_multi_head_attention(attention):
    """attention(attn, x [B, T, C]) -> [B, T, C], from attn.c_attn, attn.n_head and attn.c_proj."""
    attn = _random_attention(45)
    x = torch.randn(2, 5, 16, generator=seeded(45))
    with torch.no_grad():
        out = as_tensor(call(attention, attn, x.clone(), on="x of shape [2, 5, 16], 2 heads"), "the output", like=x)
        expected = attn(x)
        expect_shape(out, expected, "the output")
        diff = max_diff(out, expected)
        if diff > 1e-5:
            for wrong, why in _attention_mistakes(attn, x):
                if max_diff(out, wrong) <= 1e-5:
                    raise Mistake(f"off by {fmt(diff)}: {why}")
            raise Mistake(f"off by {fmt(diff)} from gpt2lib's CausalSelfAttention with the same weights")
    plugged_in = expect_plugged("attention", lambda a, h: call(attention, a, h, on="gpt2-shakespeare's activations"))
    return f"matches gpt2lib's CausalSelfAttention on a small layer; {plugged_in}"


SCALE_TEXT = ("ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
              "Arise, fair sun, and kill the envious moon,\nWho is already sick and pale with grief,")


def scaling_effect() -> dict[str, dict[str, float]]:
    """The bundled model on SCALE_TEXT with and without 1/sqrt(hs) in every head of every layer.

    For each: "loss" (nats) and "sharpness", the largest weight of a row, on average over every
    head's rows from the fifth on.
    """
    from .core import bundled_model, gpt2_tokenizer

    model = bundled_model()
    ids = torch.tensor([gpt2_tokenizer().encode(SCALE_TEXT)])  # [1, T]
    result = {}
    for name, scaled in (("scaled", True), ("unscaled", False)):
        largest = []

        def head(q, k, v):  # q, k, v [T, hs] -> [T, hs]
            scores = q @ k.T  # [T, hs] @ [hs, T] -> [T, T]
            if scaled:
                scores = scores / math.sqrt(q.size(-1))
            weights = softmax(scores.masked_fill(~causal_mask(q.size(0)), float("-inf")))  # [T, T]
            largest.append(weights[4:].amax(-1).mean())
            return weights @ v  # [T, T] @ [T, hs] -> [T, hs]

        with torch.no_grad(), plugged(model, attention_head=head):
            logits = model(ids)  # [1, T, V]
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])  # [T - 1, V] vs [T - 1]
        result[name] = {"loss": float(loss), "sharpness": float(torch.stack(largest).mean())}
    return result


@exercise("4.6", "predict: attention without 1/sqrt(hs)", kind="predict",
          hint="two words: do the rows get sharper or flatter, and does the loss go up or down?")
def check_predict_unscaled(prediction):
    """prediction: ("sharper" or "flatter", "up" or "down") for gpt2-shakespeare without the scaling."""
    words = tuple(str(w).strip().lower() for w in prediction) if isinstance(prediction, (tuple, list)) else ()
    if len(words) != 2 or words[0] not in ("sharper", "flatter") or words[1] not in ("up", "down"):
        raise Mistake(f'answer with a pair like ("sharper", "down"), got {prediction!r}')
    effect = scaling_effect()
    scaled, unscaled = effect["scaled"], effect["unscaled"]
    actual = ("sharper" if unscaled["sharpness"] > scaled["sharpness"] else "flatter",
              "up" if unscaled["loss"] > scaled["loss"] else "down")
    return judge(words, actual,
                 nudge="With hs = 32, by how much are the scores multiplied, and what does the softmax do "
                       "with larger differences? The weights were trained with the scaling.",
                 explain=f"the scores grow by sqrt(32) = 5.7: a row's largest weight goes from "
                         f"{scaled['sharpness']:.2f} to {unscaled['sharpness']:.2f} on average, and the loss "
                         f"from {scaled['loss']:.2f} to {unscaled['loss']:.2f} nats; the weights were trained "
                         f"for scaled scores")
