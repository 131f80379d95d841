"""Exercise checks for chapter 7, generation.

References: gpt2lib.generate (next_token_probs, top_k_filter, top_p_filter); top-k
sampling after Fan et al. (2018), nucleus (top-p) sampling after Holtzman et al. (2020).
"""

import torch

from ..generate import next_token_probs, top_k_filter, top_p_filter
from .core import Mistake, as_tensor, call, exercise, expect_close, expect_shape, fmt, judge

LOGITS = torch.tensor([2.0, -1.0, 0.5, 3.5, 1.0, -2.0, 0.0, 2.5])  # distinct, so no ties


@exercise("7.1", "temperature", kind="implement",
          hint="softmax(logits / temperature): below 1 sharpens, above 1 flattens")
def check_temperature(probs_fn):
    """probs_fn(logits [V], temperature) -> probabilities [V]."""
    for t in (1.0, 0.5, 2.0):
        out = as_tensor(call(probs_fn, LOGITS.clone(), t, on=f"temperature {t}"), "the result", like=LOGITS)
        expected = next_token_probs(LOGITS, temperature=t)
        expect_shape(out, expected, f"the result at temperature {t}")
        if abs(float(out.sum()) - 1) > 1e-5:
            raise Mistake(f"at temperature {t} the probabilities sum to {fmt(float(out.sum()))}, not 1: "
                          f"return softmax(logits / temperature)")
        if t != 1.0 and torch.allclose(out, torch.softmax(LOGITS * t, -1), atol=1e-6):
            raise Mistake(f"at temperature {t} you multiplied by the temperature: divide the logits by it "
                          f"(a low temperature must sharpen the distribution)")
        expect_close(out, expected, 1e-6, f"the result at temperature {t}")
    return "matches gpt2lib.generate.next_token_probs at temperatures 0.5, 1 and 2"


def _kept(logits: torch.Tensor) -> list[int]:
    return torch.isfinite(logits).nonzero().flatten().tolist()


def _check_filter(out, expected, what: str):
    out = as_tensor(out, "the result", like=expected)
    expect_shape(out, expected, what)
    if out.is_floating_point() and (out >= 0).all() and abs(float(out.sum()) - 1) < 1e-4:
        raise Mistake(f"{what}: return logits with -inf for removed tokens, not probabilities")
    if not torch.isinf(out).any() and torch.isinf(expected).any():
        raise Mistake(f"{what}: no logit is -inf; set removed tokens to -inf (probability 0): "
                      f"a logit of 0 still has probability")
    if _kept(out) != _kept(expected):
        raise Mistake(f"{what}: you kept tokens {_kept(out)}, expected {_kept(expected)}")
    expect_close(out, expected, 1e-6, what, hint="leave the kept logits unchanged")


@exercise("7.2", "top-k filtering", kind="implement",
          hint="torch.topk(logits, k).values[-1] is the k-th largest; set smaller logits to -inf")
def check_top_k(top_k):
    """top_k(logits [V], k) -> logits [V] with all but the k largest set to -inf."""
    for k in (1, 3, len(LOGITS)):
        out = call(top_k, LOGITS.clone(), k, on=f"k={k}")
        expected = top_k_filter(LOGITS, k)
        kept = _kept(as_tensor(out, "the result"))
        if len(kept) == k + 1:
            raise Mistake(f"for k={k} you kept {k + 1} tokens: keep logits >= the k-th largest "
                          f"(topk(...).values[-1]), not > the (k+1)-th")
        _check_filter(out, expected, f"for k={k}")
    return "matches gpt2lib.generate.top_k_filter for k = 1, 3 and V"


@exercise("7.3", "top-p (nucleus) filtering", kind="implement",
          hint="sort descending, cumulative softmax; keep tokens until the mass reaches p, "
               "the one that crosses p included")
def check_top_p(top_p):
    """top_p(logits [V], p) -> logits [V], the smallest most-likely set with mass >= p kept."""
    probs = torch.softmax(LOGITS, -1)
    top = float(probs.max())
    for p in (0.5, 0.9, 0.99, 1.0):
        out = call(top_p, LOGITS.clone(), p, on=f"p={p}")
        kept = _kept(as_tensor(out, "the result"))
        expected = top_p_filter(LOGITS, p)
        if not kept:
            raise Mistake(f"for p={p} you removed every token: the most likely token is always kept")
        removed = [i for i in range(len(LOGITS)) if i not in kept]
        if removed and max(LOGITS[removed]) > min(LOGITS[kept]):
            raise Mistake(f"for p={p} you removed a token more likely than one you kept: "
                          f"sort the logits in descending order before the cumulative sum")
        if len(kept) == len(_kept(expected)) - 1:
            raise Mistake(f"for p={p} you dropped the token that crosses p: keep tokens while the mass "
                          f"*before* them is below p (the top token alone has {top:.2f})")
        _check_filter(out, expected, f"for p={p}")
    return "matches gpt2lib.generate.top_p_filter for p = 0.5, 0.9, 0.99, 1"


@exercise("7.4", "predict: a cold temperature", kind="predict",
          hint="logits [2, 1, 0] at temperature 0.5: the probability of the first token (0 to 1)")
def check_predict_temperature(prediction):
    """prediction: probability of the top token of logits [2, 1, 0] at temperature 0.5 (within 0.05)."""
    p = float(next_token_probs(torch.tensor([2.0, 1.0, 0.0]), temperature=0.5)[0])
    return judge(prediction, round(p, 3), tolerance=0.05,
                 explain="dividing by 0.5 doubles the gaps, softmax([4, 2, 0]): "
                 "the favourite grows from 0.665 to 0.867")


@exercise("7.5", "find a sharp temperature", kind="explore",
          hint="in the sampling view, lower the temperature until one token holds 90% of the mass")
def check_sharp_temperature(temperature, *, model=None, prompt: str = "To be, or not to"):
    """temperature: one at which the most likely next token after `prompt` has p > 0.9."""
    from .core import bundled_model, gpt2_tokenizer

    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise Mistake(f"answer with a positive number, got {temperature!r}")
    model = model if model is not None else bundled_model()
    ids = torch.tensor([gpt2_tokenizer().encode(prompt)])
    with torch.no_grad():
        logits = model(ids)[0, -1]  # [V]
    top = float(next_token_probs(logits, temperature=float(temperature)).max())
    if top <= 0.9:
        raise Mistake(f"at temperature {temperature} the top token has p = {top:.2f}; go lower")
    return f"at temperature {temperature} the top token after {prompt!r} has p = {top:.2f}"
