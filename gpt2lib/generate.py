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


def check_prompt(model: GPT, ids: list[int], max_new_tokens: int, name: str = "the prompt") -> None:
    """Raise a clear error unless the prompt (a list of ints) and max_new_tokens fit the model."""
    n_vocab, n_ctx = model.config.n_vocab, model.config.n_ctx
    if not ids:
        raise ValueError(f"{name} is empty: give at least one token id, e.g. [50256] (<|endoftext|>) to start from nothing")
    bad = [i for i in ids if not 0 <= i < n_vocab]
    if bad:
        raise ValueError(f"{name}: token id {bad[0]!r} is outside the model's vocabulary [0, {n_vocab - 1}]; "
                         f"were the ids made by a different tokenizer?")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if len(ids) + max_new_tokens > n_ctx:
        room = n_ctx - len(ids)
        raise ValueError(
            f"{name} ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) = {len(ids) + max_new_tokens} "
            f"exceeds the context window n_ctx={n_ctx}: "
            + (f"there is room for {room} new tokens after it" if room > 0 else
               f"the prompt alone is too long; keep its last {n_ctx - 1} tokens at most")
        )


def is_batch(ids) -> bool:
    """A list of prompts (a list of lists, tensors or arrays), or a [B, T] array with B > 1."""
    if isinstance(ids, torch.Tensor) or hasattr(ids, "__array__"):
        return len(getattr(ids, "shape", ())) == 2 and ids.shape[0] > 1
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple)) or not ids:
        return False
    return all(isinstance(p, (list, tuple)) or getattr(p, "ndim", 0) >= 1 for p in ids)


def prompt_batch(model: GPT, prompts: list[list[int]], max_new_tokens: int = 0, pad_id: int = 50256,
                 names: list[str] | None = None):
    """Prompts of different lengths, padded on the left into one batch.

    Returns ids [B, T] (T = the longest prompt) and attention_mask [B, T], 1 for a real
    token and 0 for padding; the mask is None when every prompt has the same length.
    Padding on the left puts every prompt's last token in the last column, where the
    next token is read off, and lets all of them grow by one column per step.
    """
    names = names or [f"prompt {b}" for b in range(len(prompts))]
    for ids, name in zip(prompts, names, strict=True):
        check_prompt(model, ids, max_new_tokens, name)
    T = max(len(ids) for ids in prompts)
    device = next(model.parameters()).device
    idx = torch.tensor([[pad_id] * (T - len(ids)) + ids for ids in prompts], dtype=torch.long, device=device)  # [B, T]
    if all(len(ids) == T for ids in prompts):
        return idx, None
    mask = torch.tensor([[0] * (T - len(ids)) + [1] * len(ids) for ids in prompts], device=device)  # [B, T]
    return idx, mask


def prompt_ids(ids, name: str = "the prompt") -> list[int]:
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
            raise TypeError(f"{name}: token ids must be integers, got {type(i).__name__} {i!r}") from None
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
                    eos_id: int | None = 50256, use_cache: bool = True) -> Iterator:
    """Yield new token ids one by one as they are produced; arguments as in generate.

    For one prompt each item is a token id; for a list of prompts each item is a list
    with one token id per prompt, None for a prompt that has already stopped.
    Bad arguments raise here, at the call, not at the first next().
    """
    check_options(temperature, top_k, top_p)
    check_seed(seed)
    batched = is_batch(ids)
    names = [f"prompt {b}" for b in range(len(ids))] if batched else ["the prompt"]
    prompts = [prompt_ids(p, name) for p, name in zip(ids if batched else [ids], names)]
    pad_id = eos_id if eos_id is not None and 0 <= eos_id < model.config.n_vocab else 0  # any id: it is masked
    idx, mask = prompt_batch(model, prompts, max_new_tokens, pad_id, names)  # [B, T], [B, T] or None
    sampling = (temperature, top_k, top_p) != (None, None, None) and temperature != 0
    generator = None  # without a seed, sampling draws from torch's global generator
    if sampling and seed is not None:
        generator = torch.Generator(idx.device).manual_seed(seed)
    options = dict(temperature=1.0 if temperature is None else temperature, top_k=top_k, top_p=top_p)
    steps = _tokens(model, idx, mask, max_new_tokens, options if sampling else None, generator, eos_id, use_cache)
    if not batched:
        steps = (tokens[0] for tokens in steps)
    return _in_eval_mode(model, steps)


def _in_eval_mode(model: GPT, tokens: Iterator) -> Iterator:
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
def _tokens(model, idx, mask, max_new_tokens, sampling, generator, eos_id, use_cache) -> Iterator[list]:
    """The decoding loop, for B prompts at once.

    idx: the prompts [B, T], padded on the left where mask [B, T] has 0s (None: no padding);
    sampling: next_token_probs options, or None for greedy. Yields, each step, the B new
    tokens, None for a prompt that has already produced eos_id.
    """
    if max_new_tokens == 0:
        return
    B = idx.size(0)
    cache = KVCache(model.config, B, idx.device, model.wte.weight.dtype) if use_cache else None
    logits = model(idx, cache, attention_mask=mask)[:, -1]  # [B, V], scores for the token after each prompt
    done = [False] * B
    for step in range(max_new_tokens):
        check_logits(logits, step)
        if sampling is not None:
            probs = next_token_probs(logits, **sampling)  # [B, V]
            new = torch.multinomial(probs, 1, generator=generator)  # [B, 1]
        else:
            new = logits.argmax(dim=-1, keepdim=True)  # [B, 1]
        tokens = new[:, 0].tolist()
        yield [None if stopped else token for stopped, token in zip(done, tokens)]
        done = [stopped or token == eos_id for stopped, token in zip(done, tokens)]
        if all(done) or step == max_new_tokens - 1:
            return
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(B, 1)], dim=1)  # [B, S + 1]: the new tokens are real
        if cache is not None:
            logits = model(new, cache, attention_mask=mask)[:, -1]  # only the new tokens; the rest is cached
        else:
            idx = torch.cat([idx, new], dim=1)  # [B, T + 1]
            logits = model(idx, attention_mask=mask)[:, -1]  # the whole sequences again


def generate(model: GPT, ids, max_new_tokens: int, *, temperature: float | None = None,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             eos_id: int | None = 50256, use_cache: bool = True) -> list:
    """Continue a prompt; return the NEW token ids only.

    ids: the prompt, a list of ints or a 1-D LongTensor (one sequence). Greedy (the most
    likely token each step) unless temperature, top_k or top_p is given; temperature=0
    is greedy too. seed makes sampling reproducible with a private torch.Generator
    (torch's global random state is left alone). Generation stops after max_new_tokens,
    or after eos_id (<|endoftext|>) is produced; that eos token IS included in the
    result. eos_id=None never stops early. use_cache=False recomputes the whole
    sequence every step (same tokens, slower: for comparison). The prompt plus
    max_new_tokens must fit in n_ctx; there is no sliding window.

    ids may also be a list of prompts of different lengths: they run as one batch,
    padded on the left with an attention mask, each stopping at eos_id on its own, and
    the result is one list of new token ids per prompt.
    """
    steps = stream_generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k,
                            top_p=top_p, seed=seed, eos_id=eos_id, use_cache=use_cache)
    if not is_batch(ids):
        return list(steps)
    n = len(ids)
    new = [[] for _ in range(n)]
    for tokens in steps:
        for row, token in zip(new, tokens):
            if token is not None:
                row.append(token)
    return new
