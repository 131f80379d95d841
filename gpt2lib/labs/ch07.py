"""Exercise checks for chapter 7, generation.

References: transformers' GPT2LMHeadModel.generate(do_sample=False) on the bundled checkpoint
(the generation loop) and transformers' logits warpers (TemperatureLogitsWarper,
TopKLogitsWarper, TopPLogitsWarper) on gpt2-shakespeare's real next-token logits (the
sampling filters); top-k sampling after Fan et al. (2018), nucleus (top-p) sampling after
Holtzman et al. (2020).
"""

import functools

import torch

from ..generate import next_token_probs
from .core import Mistake, as_tensor, call, exercise, expect_close, expect_shape, fmt, judge

PROMPTS = ("ROMEO:\n", "To be, or not to", "KING HENRY V:\nOnce more unto the breach, dear friends,")
N_NEW = 20  # new tokens per prompt in the generation-loop check


@functools.lru_cache(maxsize=1)
def _real_logits() -> torch.Tensor:
    """gpt2-shakespeare's next-token logits after each of PROMPTS. -> [3, V]"""
    from .core import bundled_model, gpt2_tokenizer

    model, tok = bundled_model(), gpt2_tokenizer()
    with torch.no_grad():
        return torch.stack([model(torch.tensor([tok.encode(p)]))[0, -1] for p in PROMPTS])  # [3, V]


def _cases() -> list[tuple[str, torch.Tensor]]:
    """Real next-token logits [V], and the same rounded to 0.5 so that many logits tie."""
    real = _real_logits()
    cases = [(f"the logits after {p!r}", real[i]) for i, p in enumerate(PROMPTS)]
    cases.append((f"the logits after {PROMPTS[0]!r} rounded to 0.5 (many ties)", (real[0] * 2).round() / 2))
    return cases


def _warped(warper, logits: torch.Tensor) -> torch.Tensor:
    """transformers' warper applied to one row of logits [V] -> [V]."""
    return warper(torch.zeros(1, 1, dtype=torch.long), logits[None].clone())[0]  # [1, V] -> [V]


def _kept(logits: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(logits)  # [V] bool


# --- 7.1 the generation loop ------------------------------------------------------------

def _as_new_tokens(out, n: int, prompt: list[int], where: str) -> list[int]:
    """The reader's result as a list of ints, or a Mistake that names the shape problem."""
    if isinstance(out, torch.Tensor):
        if out.is_floating_point():
            raise Mistake(f"on {where} you returned floats of shape {list(out.shape)}: return token ids, "
                          f"the positions of the largest logits")
        out = out.reshape(-1).tolist() if out.dim() <= 2 and (out.dim() < 2 or out.size(0) == 1) else out
    if isinstance(out, torch.Tensor) or not isinstance(out, (list, tuple)):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Mistake(f"on {where} you returned {shape}: return the {n} new token ids, "
                      f"as a tensor [1, {n}] or a list")
    out = [int(t) for t in out]
    T = len(prompt)
    if len(out) == T + n and out[:T] == prompt:
        raise Mistake(f"on {where} you returned {T + n} ids, the prompt's {T} included: return only the {n} new ones")
    if len(out) != n:
        raise Mistake(f"on {where} you returned {len(out)} token ids; asked for {n} new tokens, "
                      f"the loop should add exactly {n}")
    return out


def _greedy_of(hf, prompt: tuple[int, ...], n: int = N_NEW) -> list[int]:
    """transformers' greedy generate(do_sample=False): the n new token ids after prompt."""
    ids = torch.tensor([prompt])  # [1, T]
    eos = hf.generation_config.eos_token_id
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                          do_sample=False, eos_token_id=eos, pad_token_id=eos)  # [1, T + n]
    return out[0, len(prompt):].tolist()


@functools.lru_cache(maxsize=4)
def _bundled_greedy(prompt: tuple[int, ...]) -> list[int]:
    """_greedy_of on the bundled checkpoint, which transformers loads from its file once per kernel."""
    from ..check import hf_gpt2
    from .core import bundled_model

    return _greedy_of(hf_gpt2(bundled_model()), prompt)


def _last_token_only(model, prompt: list[int], n: int) -> list[int]:
    """What a loop that feeds only the newest token, without a cache, produces."""
    ids, new = torch.tensor([prompt]), []  # [1, T]
    with torch.no_grad():
        for _ in range(n):
            token = int(model(ids[:, -1:])[0, -1].argmax())
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)  # [1, T + 1]
    return new


@exercise("7.1", "the generation loop", kind="implement",
          hint="run the model on everything so far, choose at the last position, append, repeat")
def check_generate(my_generate, *, model=None):
    """my_generate(model, ids [1, T], n) -> the n new token ids, [1, n] or a list, greedy."""
    from ..check import hf_gpt2
    from .core import bundled_model, gpt2_tokenizer

    tok = gpt2_tokenizer()
    reference = _bundled_greedy if model is None else functools.partial(_greedy_of, hf_gpt2(model))
    model = model if model is not None else bundled_model()
    for text in PROMPTS[:2]:
        prompt = tok.encode(text)
        where = f"the prompt {text!r}"
        with torch.no_grad():
            out = call(my_generate, model, torch.tensor([prompt]), N_NEW, on=where)
        ours = _as_new_tokens(out, N_NEW, prompt, where)
        theirs = reference(tuple(prompt))
        if ours == theirs:
            continue
        first = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
        if ours == _last_token_only(model, prompt, N_NEW):
            raise Mistake(f"on {where} your tokens follow the newest token alone: without a cache the model "
                          f"must see every token so far, the prompt included")
        if max(ours) < len(prompt) + N_NEW or (len(set(ours)) == 1 and ours[0] != theirs[0]):
            raise Mistake(f"on {where} every token you chose is {ours[0]}: choose the largest logit over the "
                          f"vocabulary (the logits' last axis), at the last position")
        raise Mistake(f"on {where} your new token {first + 1} is {ours[first]} "
                      f"({tok.decode([ours[first]])!r}), transformers' is {theirs[first]} "
                      f"({tok.decode([theirs[first]])!r}): choose the most likely token after all the tokens so far")
    return (f"the same {N_NEW} greedy tokens as transformers' generate on gpt2-shakespeare, "
            f"after 2 prompts")


# --- 7.2 to 7.4 the sampling filters, against transformers' logits warpers ---------------

@exercise("7.2", "temperature", kind="implement",
          hint="the temperature acts on the logits, before they become probabilities")
def check_temperature(probs_fn):
    """probs_fn(logits [V], temperature) -> probabilities [V]."""
    from transformers.generation.logits_process import TemperatureLogitsWarper

    for what, logits in _cases()[:3]:
        for t in (1.0, 0.5, 2.0):
            on = f"{what} at temperature {t}"
            out = as_tensor(call(probs_fn, logits.clone(), t, on=on), "the result", like=logits)
            expected = torch.softmax(_warped(TemperatureLogitsWarper(t), logits), dim=-1)  # [V]
            expect_shape(out, expected, f"the result on {on}")
            if abs(float(out.sum()) - 1) > 1e-4:
                raise Mistake(f"on {on} your probabilities sum to {fmt(float(out.sum()))}, not 1: "
                              f"turn the scaled logits into probabilities")
            if t != 1.0 and torch.allclose(out, torch.softmax(logits * t, -1), atol=1e-6):
                raise Mistake(f"on {on} you multiplied by the temperature: a temperature below 1 must "
                              f"sharpen the distribution, above 1 flatten it")
            expect_close(out, expected, 1e-6, f"the result on {on}")
    return ("matches transformers' TemperatureLogitsWarper and softmax on gpt2-shakespeare's "
            "next-token logits after 3 prompts, at temperatures 0.5, 1 and 2")


def _check_filter(out, expected, what: str):
    out = as_tensor(out, "the result", like=expected)
    expect_shape(out, expected, what)
    if out.is_floating_point() and (out >= 0).all() and abs(float(out.sum()) - 1) < 1e-3:
        raise Mistake(f"{what}: return logits with -inf for removed tokens, not probabilities")
    if torch.isfinite(out).all() and not torch.isfinite(expected).all():
        raise Mistake(f"{what}: no logit is -inf; a removed token needs probability exactly 0, "
                      f"and a logit of 0 still has some")
    mine, theirs = _kept(out), _kept(expected)
    if not torch.equal(mine, theirs):
        extra, missing = int((mine & ~theirs).sum()), int((theirs & ~mine).sum())
        raise Mistake(f"{what}: you kept {int(mine.sum())} tokens, transformers keeps {int(theirs.sum())} "
                      f"({extra} kept that it removes, {missing} removed that it keeps)")
    expect_close(out[theirs], expected[theirs], 1e-6, f"{what}, the kept logits",
                 hint="leave the kept logits unchanged")


@exercise("7.3", "top-k filtering", kind="implement",
          hint="find the value of the k-th largest logit first; every logit below it goes")
def check_top_k(top_k):
    """top_k(logits [V], k) -> logits [V] with all but the k largest set to -inf (ties kept)."""
    from transformers.generation.logits_process import TopKLogitsWarper

    for what, logits in _cases():
        for k in (1, 5, 40):
            on = f"{what}, k={k}"
            out = as_tensor(call(top_k, logits.clone(), k, on=on), "the result", like=logits)
            expected = _warped(TopKLogitsWarper(k), logits)
            n_kept, n_expected = int(_kept(out).sum()), int(_kept(expected).sum())
            if n_kept == k and n_expected > k:
                raise Mistake(f"on {on} you kept exactly {k} tokens, but {n_expected - k + 1} logits tie "
                              f"with the k-th largest value: tokens tied with it stay too")
            if n_kept == k + 1 and n_expected == k:
                raise Mistake(f"on {on} you kept {k + 1} tokens: the threshold is the k-th largest logit, "
                              f"not the (k+1)-th")
            _check_filter(out, expected, f"on {on}")
    return ("matches transformers' TopKLogitsWarper on gpt2-shakespeare's next-token logits after 3 prompts "
            "and on tied logits, for k = 1, 5 and 40")


@exercise("7.4", "top-p (nucleus) filtering", kind="implement",
          hint="rank the tokens from most to least likely and add up their probabilities as you go down")
def check_top_p(top_p):
    """top_p(logits [V], p) -> logits [V], the smallest most-likely set with mass >= p kept."""
    from transformers.generation.logits_process import TopPLogitsWarper

    for what, logits in _cases()[:3]:
        for p in (0.3, 0.5, 0.9, 0.95):
            on = f"{what}, p={p}"
            out = as_tensor(call(top_p, logits.clone(), p, on=on), "the result", like=logits)
            expected = _warped(TopPLogitsWarper(p), logits)
            mine, theirs = _kept(out), _kept(expected)
            if not mine.any():
                raise Mistake(f"on {on} you removed every token: the most likely token is always kept")
            if (~mine).any() and float(logits[~mine].max()) > float(logits[mine].min()):
                raise Mistake(f"on {on} you removed a token more likely than one you kept: "
                              f"the nucleus is taken from the top of the ranking")
            if int(mine.sum()) == int(theirs.sum()) - 1:
                raise Mistake(f"on {on} you kept one token too few: the token whose probability carries "
                              f"the mass past p belongs to the nucleus")
            if int(mine.sum()) == int(theirs.sum()) + 1:
                raise Mistake(f"on {on} you kept one token too many: stop at the first token that "
                              f"brings the mass to p")
            _check_filter(out, expected, f"on {on}")
    return ("matches transformers' TopPLogitsWarper on gpt2-shakespeare's next-token logits after 3 prompts, "
            "for p = 0.3, 0.5, 0.9 and 0.95")


@exercise("7.5", "predict: a cold temperature", kind="predict",
          hint="logits [2, 1, 0] at temperature 0.5: the probability of the first token (0 to 1)")
def check_predict_temperature(prediction):
    """prediction: probability of the top token of logits [2, 1, 0] at temperature 0.5 (within 0.05)."""
    p = float(next_token_probs(torch.tensor([2.0, 1.0, 0.0]), temperature=0.5)[0])
    return judge(prediction, round(p, 3), tolerance=0.05,
                 nudge="What are the logits once divided by 0.5, and what share of the sum of their "
                       "exponentials does the first one hold?",
                 explain="dividing by 0.5 doubles the gaps, softmax([4, 2, 0]): "
                 "the favourite grows from 0.665 to 0.867")


@exercise("7.6", "find a sharp temperature", kind="explore",
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
