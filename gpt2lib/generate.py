"""Generating text one token at a time: greedy decoding and sampling.

Temperature and top-k follow OpenAI's gpt-2/src/sample.py; top-p (nucleus) sampling
is from Holtzman et al. (2020), "The Curious Case of Neural Text Degeneration". The
filters apply in the order Hugging Face's generate uses: temperature, top-k, top-p.
"""

import math
import numbers
import operator
from collections.abc import Iterator

import torch

from .attention import KVCache
from .model import GPT


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits, set the rest to -inf. [..., V] -> [..., V]

    Ties with the k-th largest value are kept too: [3, 1, 2, 2], k=2 -> [3, -inf, 2, 2].
    """
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # [..., 1], the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability mass reaches p. [V] -> [V]

    probabilities [0.5, 0.3, 0.2]: p=0.5 keeps 1 token, p=0.6 keeps 2, p=0.9 keeps 3.
    The most likely token is always kept.
    """
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # most likely first
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # mass of the tokens ranked above each one
    drop_sorted = mass_before >= p  # the set already reached p without this token
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token_probs(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> torch.Tensor:
    """The distribution the next token is sampled from. logits [V] -> probabilities [V].

    temperature divides the logits (< 1 sharpens, > 1 flattens; 0 means greedy: all
    the mass on the argmax); then top_k, then top_p remove unlikely tokens.
    """
    check_options(temperature, top_k, top_p)
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.size(-1)).float()
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.softmax(logits, dim=-1)


def check_options(temperature, top_k, top_p):
    """Raise a clear error for a sampling option outside its range."""
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if temperature is not None and not 0 <= temperature < math.inf:  # inf would sample uniformly
        raise ValueError(f"temperature must be >= 0 and finite (0 = greedy, 1 = the model's distribution), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 (the number of tokens kept), got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (the probability mass kept; 1 keeps every token), got {top_p}")


def prompt_tensor(model: GPT, ids, max_new_tokens: int) -> torch.Tensor:
    """The prompt as a [1, T] LongTensor, after checking it fits the model."""
    ids = prompt_ids(ids)
    n_vocab, n_ctx = model.config.n_vocab, model.config.n_ctx
    if not ids:
        raise ValueError("the prompt is empty: give at least one token id, e.g. [50256] (<|endoftext|>) to start from nothing")
    bad = [i for i in ids if not 0 <= i < n_vocab]
    if bad:
        raise ValueError(f"prompt token id {bad[0]!r} is outside the model's vocabulary [0, {n_vocab - 1}]; "
                         f"were the ids made by a different tokenizer?")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if len(ids) + max_new_tokens > n_ctx:
        room = n_ctx - len(ids)
        raise ValueError(
            f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) = {len(ids) + max_new_tokens} "
            f"exceeds the context window n_ctx={n_ctx}: "
            + (f"there is room for {room} new tokens after this prompt" if room > 0 else
               f"the prompt alone is too long; keep its last {n_ctx - 1} tokens at most")
        )
    device = next(model.parameters()).device
    return torch.tensor([ids], dtype=torch.long, device=device)  # [1, T]


def prompt_ids(ids) -> list[int]:
    """The prompt as a list of Python ints, from a list of ints (numpy and torch integer
    scalars too), a 1-D or [1, T] integer tensor or numpy array."""
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"ids must be token ids, got a {type(ids).__name__}: encode the text first, "
                        f"e.g. get_tokenizer().encode({ids[:20]!r})")
    if not isinstance(ids, torch.Tensor) and hasattr(ids, "__array__"):  # a numpy array
        ids = torch.as_tensor(ids)
    if isinstance(ids, torch.Tensor):
        if ids.dim() == 2 and ids.size(0) == 1:
            ids = ids[0]  # [1, T] -> [T]
        if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise TypeError(f"ids must be a list of ints or a 1-D integer tensor, got a {ids.dtype} tensor "
                            f"of shape {list(ids.shape)}")
        return ids.tolist()
    out = []
    for i in ids:
        try:
            if isinstance(i, bool) or getattr(i, "dtype", None) == torch.bool:
                raise TypeError
            out.append(operator.index(i))  # int, numpy.int64, a 0-d integer tensor
        except TypeError:
            raise TypeError(f"prompt token ids must be integers, got {type(i).__name__} {i!r}") from None
    return out


def check_seed(seed) -> None:
    """A seed torch.Generator.manual_seed takes: an int in [0, 2**64)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")


def check_logits(logits: torch.Tensor, step: int) -> None:
    """Stop on NaN or inf scores: argmax would pick token 0, sampling would fail or lie."""
    if not torch.isfinite(logits).all():
        raise ValueError(f"the model's logits hold NaN or inf at new token {step}; its weights are broken "
                         f"(check torch.isfinite(p).all() for model.parameters()), or a float16 model overflowed")


def stream_generate(model: GPT, ids, max_new_tokens: int, *, temperature: float | None = None,
                    top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                    eos_id: int | None = 50256, use_cache: bool = True) -> Iterator[int]:
    """Yield new token ids one by one as they are produced; arguments as in generate.

    Bad arguments raise here, at the call, not at the first next().
    """
    check_options(temperature, top_k, top_p)
    check_seed(seed)
    idx = prompt_tensor(model, ids, max_new_tokens)  # [1, T]
    sampling = (temperature, top_k, top_p) != (None, None, None) and temperature != 0
    generator = None  # without a seed, sampling draws from torch's global generator
    if sampling and seed is not None:
        generator = torch.Generator(idx.device).manual_seed(seed)
    options = dict(temperature=1.0 if temperature is None else temperature, top_k=top_k, top_p=top_p)
    tokens = _tokens(model, idx, max_new_tokens, options if sampling else None, generator, eos_id, use_cache)
    return _in_eval_mode(model, tokens)


def _in_eval_mode(model: GPT, tokens: Iterator[int]) -> Iterator[int]:
    """Run the decoding loop with every module in eval mode (no dropout: greedy is then
    deterministic), and give each module back the mode it had when the loop ends."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield from tokens
    finally:
        for module, training in modes:
            module.training = training


@torch.inference_mode()
def _tokens(model, idx, max_new_tokens, sampling, generator, eos_id, use_cache) -> Iterator[int]:
    """The decoding loop. idx: the prompt [1, T]; sampling: next_token_probs options, or None for greedy."""
    if max_new_tokens == 0:
        return
    cache = KVCache(model.config, 1, idx.device, model.wte.weight.dtype) if use_cache else None
    logits = model(idx, cache)[0, -1]  # [V], scores for the token after the prompt
    for step in range(max_new_tokens):
        check_logits(logits, step)
        if sampling is not None:
            probs = next_token_probs(logits, **sampling)  # [V]
            token = int(torch.multinomial(probs, 1, generator=generator))
        else:
            token = int(logits.argmax())
        yield token
        if token == eos_id or step == max_new_tokens - 1:
            return
        new = torch.tensor([[token]], device=idx.device)  # [1, 1]
        if cache is not None:
            logits = model(new, cache)[0, -1]  # only the new token; the rest is cached
        else:
            idx = torch.cat([idx, new], dim=1)  # [1, T + 1]
            logits = model(idx)[0, -1]  # the whole sequence again


def generate(model: GPT, ids, max_new_tokens: int, *, temperature: float | None = None,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             eos_id: int | None = 50256, use_cache: bool = True) -> list[int]:
    """Continue a prompt; return the NEW token ids only.

    ids: the prompt, a list of ints or a 1-D LongTensor (one sequence). Greedy (the most
    likely token each step) unless temperature, top_k or top_p is given; temperature=0
    is greedy too. seed makes sampling reproducible with a private torch.Generator
    (torch's global random state is left alone). Generation stops after max_new_tokens,
    or after eos_id (<|endoftext|>) is produced; that eos token IS included in the
    result. eos_id=None never stops early. use_cache=False recomputes the whole
    sequence every step (same tokens, slower: for comparison). The prompt plus
    max_new_tokens must fit in n_ctx; there is no sliding window.
    """
    return list(stream_generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k,
                                top_p=top_p, seed=seed, eos_id=eos_id, use_cache=use_cache))
