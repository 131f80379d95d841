"""The numbers behind the views, computed in PyTorch and kept free of any drawing.

Each function returns a small named object of tensors and lists; the view
functions in `gpt2lib.viz.views` round them and embed them in the page. The
attention view follows the "head view" of Vig (2019), "A Multiscale Visualization
of Attention in the Transformer Model" (bertviz), drawn here without any library.

Shape letters: L layers, nh heads, T tokens, C = n_embd, V = n_vocab, N chosen tokens.
"""

from dataclasses import dataclass

import torch

from .labels import token_label, visible
from .embeddings import EmbeddingData, embedding_data, nearest_neighbours, pca_2d  # noqa: F401

__all__ = [
    "AttentionData", "attention_data", "TokenData", "token_data", "SamplingData",
    "sampling_data", "EmbeddingData", "embedding_data", "nearest_neighbours", "pca_2d",
    "token_label", "TEMPERATURES",
]


def check_text_ids(ids, what: str = "text") -> list[int]:
    """ids as a list of ints, or a clear error if there are none."""
    ids = [int(i) for i in ids]
    if not ids:
        raise ValueError(f"the {what} encodes to no tokens; give at least one character")
    return ids


@dataclass
class AttentionData:
    """Attention weights of every layer and head for one text.

    ids, labels: the T tokens shown; weights: [L, nh, T, T], row i = query token i,
    column j = key token j (exactly 0 for j > i); total_tokens: tokens in the whole
    text before the cap (== T when nothing was cut).
    """

    ids: list[int]
    labels: list[str]
    weights: torch.Tensor
    total_tokens: int

    @property
    def truncated(self) -> bool:
        return self.total_tokens > len(self.ids)


@torch.no_grad()
def attention_data(model, tokenizer, ids, *, max_tokens: int = 48) -> AttentionData:
    """Run the model on the first `max_tokens` of ids and keep its attention weights.

    Cutting the end off changes nothing for the tokens that remain: attention is
    causal, so token i never sees tokens after it.
    """
    ids = check_text_ids(ids)
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    shown = ids[: min(max_tokens, model.config.n_ctx)]
    trace = model.trace(torch.tensor([shown], dtype=torch.long))
    weights = torch.stack([a[0] for a in trace.attentions])  # L x [nh, T, T] -> [L, nh, T, T]
    labels = [token_label(tokenizer, i) for i in shown]
    return AttentionData(ids=shown, labels=labels, weights=weights.float(), total_tokens=len(ids))


@dataclass
class TokenData:
    """A text cut into tokens. ids: [T]; pieces: the bytes of each token; texts: each
    token's bytes decoded on their own (a character split across tokens shows as U+FFFD);
    labels: texts with whitespace marked and split characters shown as bytes ("\\xce")."""

    ids: list[int]
    pieces: list[bytes]
    texts: list[str]
    labels: list[str]


def token_data(tokenizer, text: str) -> TokenData:
    """Encode text and describe each token. Joining `pieces` gives back text.encode()."""
    if not isinstance(text, str):
        raise TypeError(f"token_view takes a str, got {type(text).__name__}")
    ids = tokenizer.encode(text, allowed_special="all") if text else []
    pieces = [tokenizer.token_bytes(i) for i in ids]
    texts = [p.decode("utf-8", errors="replace") for p in pieces]
    # Here the bytes are the point: a piece of a character shows as its bytes ("\\xce").
    labels = [visible(p.decode("utf-8", errors="backslashreplace")) for p in pieces]
    return TokenData(ids=list(ids), pieces=pieces, texts=texts, labels=labels)


# The sampling view's temperature slider moves on this grid, so the mass of the
# tokens left out of the page can be computed exactly for every slider position.
# Temperature 0 is greedy decoding: all the mass on the most likely token.
TEMPERATURES = [0.0] + [round(0.05 * i, 2) for i in range(2, 41)]  # 0, 0.1, 0.15, ..., 2.0


@dataclass
class SamplingData:
    """The next-token scores for a prompt, the top `n_top` of them kept exactly.

    ids: the prompt's tokens; top_ids, top_labels: [n_top] most likely next tokens,
    most likely first; top_logits: [n_top], sorted descending; temperatures: the
    slider grid; tail_logsumexp: [len(temperatures)], log sum_j exp(l_j / t) over
    the V - n_top tokens not kept, one per temperature t (-inf when none are left out); logits: [V], all of them
    (for checks; not embedded in the page).
    """

    ids: list[int]
    top_ids: list[int]
    top_labels: list[str]
    top_logits: torch.Tensor
    temperatures: list[float]
    tail_logsumexp: torch.Tensor
    logits: torch.Tensor

    @property
    def n_vocab(self) -> int:
        return self.logits.numel()


@torch.no_grad()
def sampling_data(model, tokenizer, ids, *, n_top: int = 200) -> SamplingData:
    """Scores for the token after ids; the prompt keeps its last n_ctx tokens."""
    ids = check_text_ids(ids, "prompt")[-model.config.n_ctx:]
    logits = model(torch.tensor([ids], dtype=torch.long))[0, -1].double()  # [V]
    n_top = min(n_top, logits.numel())
    top_logits, top_ids = torch.sort(logits, descending=True)  # [V], [V]
    tail = top_logits[n_top:]  # [V - n_top]
    temps = torch.tensor(TEMPERATURES, dtype=torch.float64).clamp_min(1e-6)  # t=0 is never used
    tail_lse = torch.full_like(temps, float("-inf"))
    if tail.numel():
        tail_lse = torch.logsumexp(tail[None, :] / temps[:, None], dim=1)  # [n_temps, V-n] -> [n_temps]
    top_ids = top_ids[:n_top].tolist()
    return SamplingData(
        ids=ids, top_ids=top_ids, top_labels=[token_label(tokenizer, i) for i in top_ids],
        top_logits=top_logits[:n_top], temperatures=list(TEMPERATURES),
        tail_logsumexp=tail_lse, logits=logits.float(),
    )
