"""The four views of the book: attention, embeddings, tokens and sampling.

Each function computes its numbers with gpt2lib.viz.data, rounds them, and returns
a View: shown by Jupyter, interactive in JupyterLab and in the static book (the
JavaScript in gpt2lib/viz/static/ draws it), and savable as a standalone page.
"""

import torch

from . import data as vd
from . import heads
from .fallback import attention_frame, embedding_frame, sampling_frame, token_frame
from .render import View


def rounded(x: torch.Tensor, digits: int = 3):
    """A tensor as nested lists of floats rounded to `digits` decimals (small, stable JSON)."""
    return torch.round(x.double(), decimals=digits).tolist()


# Attention weights are stored as integers in units of 1/WEIGHT_SCALE: fine enough that
# the page, rounding these integers to 2 or 3 decimals, shows what rounding the weight
# itself would (thousandths would turn 0.5951 into 0.595 and then "0.59").
WEIGHT_SCALE = 100_000


def attention_view(model, tokenizer, text: str, *, max_tokens: int = 48,
                   layer: int | None = None, head: int | None = None) -> View:
    """Attention weights of every layer and head for text (its first max_tokens tokens).

    Shows one head as a heatmap with layer and head selectors, every head as a
    thumbnail (click to open), the text coloured by where a chosen token looks, and
    which heads look at the previous token, at an earlier copy's successor or at the
    first token. It opens on layer/head when given; otherwise on an informative head
    (gpt2lib.viz.heads.choose_head: induction, then previous-token, then the most
    focused head; a given layer or head alone restricts the choice to it).
    Weights are embedded as integers in units of 1/WEIGHT_SCALE, only the causal lower triangle.
    """
    result = vd.attention_data(model, tokenizer, tokenizer.encode(text), max_tokens=max_tokens)
    L, nh, T, _ = result.weights.shape
    scores = heads.head_scores(result.weights, result.ids)
    choice = heads.choose_head(scores, layer, head)
    rows = torch.tril_indices(T, T)  # [2, T(T+1)/2]: the entries j <= i, row by row
    units = torch.round(result.weights.double()[:, :, rows[0], rows[1]] * WEIGHT_SCALE).to(torch.int64)  # [L, nh, T(T+1)/2]
    data = {"labels": result.labels, "n_layer": L, "n_head": nh, "T": T,
            "total": result.total_tokens, "w": units.tolist(), "scale": WEIGHT_SCALE,
            "start": [choice.layer, choice.head], "reason": choice.reason,
            "heads": heads.summary_lists(scores)}
    summary = (f"{T} tokens" + (f" of {result.total_tokens}" if result.truncated else "")
               + f", {L} layers x {nh} heads, opens on layer {choice.layer} head {choice.head}")
    frame = attention_frame(result, choice.layer, choice.head)
    return View("attention", data, frame, summary, result)


def token_view(tokenizer, text: str) -> View:
    """text with each token coloured; hover a token for its id and bytes."""
    result = vd.token_data(tokenizer, text)
    data = {"ids": result.ids, "texts": result.texts, "labels": result.labels,
            "bytes": [p.hex(" ") for p in result.pieces], "n_chars": len(text),
            "n_bytes": len(text.encode("utf-8"))}
    summary = f"{len(text)} characters -> {len(result.ids)} tokens"
    return View("tokens", data, token_frame(result, len(text)), summary, result)


def embedding_view(model, tokenizer, words, *, k: int = 12) -> View:
    """Compare chosen tokens' embeddings: cosine similarities, a 2-D PCA projection,
    each one's k nearest neighbours in wte, and how wpe moves it at each position.

    words: strings that are one token each (e.g. " king"), or token ids.
    """
    r = vd.embedding_data(model, tokenizer, words, k=k)
    data = {
        "labels": r.labels, "ids": r.ids, "sim": rounded(r.similarity),
        "xy": rounded(r.projection.coords), "explained": rounded(r.projection.explained),
        "nb": [{"ids": n.ids, "labels": n.labels, "scores": [round(s, 3) for s in n.scores]}
               for n in r.neighbours],
        "positions": r.positions, "vs_token": rounded(r.vs_token), "vs_first": rounded(r.vs_first),
        "token_norm": rounded(r.token_norm), "position_norm": rounded(r.position_norm),
        "n_vocab": model.config.n_vocab, "n_embd": model.config.n_embd,
    }
    summary = f"{len(r.ids)} tokens, {k} neighbours each"
    return View("embedding", data, embedding_frame(r), summary, r)


def prompt_tail(text: str, max_chars: int = 80) -> str:
    """The end of a prompt for a title: its last max_chars characters, starting at a word
    (or line) boundary, with "…" in front when cut. "a b c d" with max_chars=4 -> "… c d"."""
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    cut = min((k for k in (tail.find(" "), tail.find("\n")) if k >= 0), default=-1)
    return "\u2026" + (tail[cut:] if 0 <= cut < len(tail) - 1 else tail)


def sampling_view(model, tokenizer, prompt: str, *, n_top: int = 200, n_bars: int = 20) -> View:
    """The next-token distribution after prompt, reshaped live by temperature, top-k and top-p,
    with a button that draws next tokens from it in the page.

    The page keeps the n_top most likely tokens' logits exactly; the other V - n_top
    tokens are folded into one "other" entry whose mass is exact at every
    temperature on the slider (their log-sum-exp is precomputed per temperature).
    """
    if n_bars > n_top:
        raise ValueError(f"n_bars={n_bars} exceeds n_top={n_top}: bars show a subset of the kept tokens")
    r = vd.sampling_data(model, tokenizer, tokenizer.encode(prompt), n_top=n_top)
    tail = [None if not torch.isfinite(v) else round(float(v), 4) for v in r.tail_logsumexp]
    data = {"ids": r.top_ids, "labels": r.top_labels, "logits": rounded(r.top_logits, 4),
            "temps": r.temperatures, "tail_lse": tail, "n_vocab": r.n_vocab, "n_bars": n_bars,
            "prompt": prompt_tail(tokenizer.decode(r.ids)), "n_prompt": len(r.ids)}
    summary = f"next token after {len(r.ids)} prompt tokens, top {len(r.top_ids)} of {r.n_vocab}"
    return View("sampling", data, sampling_frame(r, n_bars), summary, r)
