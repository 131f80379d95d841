"""Measuring what attention heads do: previous-token heads and induction heads.

Both measurements follow Olsson et al. (2022), "In-context Learning and Induction
Heads" (Anthropic, transformer-circuits.pub) and Elhage et al. (2021), "A
Mathematical Framework for Transformer Circuits": a previous-token head attends
from each token to the one just before it; an induction head, seeing a token A
that occurred earlier as "A B", attends to that earlier B (and copies it), so the
second time a random sequence is seen it becomes predictable.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import GPT


def previous_token_scores(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """Average attention from each token to the token just before it, per head.

    ids: [B, T] token ids, T >= 2 -> scores [n_layer, n_head] in [0, 1]; the first
    position (which has no previous token) is left out. 1.0 means the head always
    looks exactly one token back.
    """
    if ids.dim() != 2 or ids.size(1) < 2:
        raise ValueError(f"need token ids of shape [B, T] with T >= 2, got {tuple(ids.shape)}")
    attentions = model.trace(ids).attentions  # n_layer x [B, nh, T, T]
    # the sub-diagonal of each [T, T] matrix: weight of query t on key t - 1
    scores = [a.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 2)) for a in attentions]  # [nh] each
    return torch.stack(scores)  # [n_layer, nh]


def repeated_random_tokens(n: int, *, batch_size: int = 1, seed: int = 0, pool=None,
                           prefix: int | None = 50256) -> torch.Tensor:
    """Random token sequences repeated twice: [B, 1 + 2n] (or [B, 2n] with prefix=None).

    Each row is [prefix, r_1 .. r_n, r_1 .. r_n]. Tokens are drawn uniformly from pool
    (a 1-D tensor of allowed ids; default all of GPT-2's 50,257) with a seeded
    torch.Generator, so the same arguments give the same sequences.
    """
    generator = torch.Generator().manual_seed(seed)
    pool = torch.arange(50257) if pool is None else torch.as_tensor(pool)
    picks = torch.randint(len(pool), (batch_size, n), generator=generator)  # [B, n]
    half = pool[picks]  # [B, n]
    parts = [half, half]
    if prefix is not None:
        parts.insert(0, torch.full((batch_size, 1), prefix, dtype=torch.long))
    return torch.cat(parts, dim=1)  # [B, 1 + 2n]


@dataclass
class InductionResult:
    """How a model does on a repeated random sequence.

    loss_first / loss_second: mean loss (nats/token) predicting the tokens of the first
    and of the second repeat; scores [n_layer, n_head]: average attention from each
    token of the second repeat to the token that followed its earlier occurrence;
    best: (layer, head) with the highest score.
    """

    loss_first: float
    loss_second: float
    scores: torch.Tensor
    best: tuple[int, int]

    @property
    def best_score(self) -> float:
        return float(self.scores[self.best])


@torch.no_grad()
def induction(model: GPT, ids: torch.Tensor, n: int) -> InductionResult:
    """Measure induction on ids from repeated_random_tokens(n, ...) (with its 1-token prefix).

    Positions: the first repeat is 1..n, the second n+1..2n. The token at position p in
    the second repeat first occurred at p - n, and what followed it sits at p - n + 1:
    that is where an induction head looks.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"need a repeat of n >= 2 tokens, got n={n!r}: with n = 1 the second repeat has "
                         "no token whose successor was seen before")
    if ids.dim() != 2 or ids.size(1) != 1 + 2 * n:
        raise ValueError(f"expected ids [B, 1 + 2n] = [B, {1 + 2 * n}] from repeated_random_tokens, "
                         f"got {tuple(ids.shape)}")
    trace = model.trace(ids)
    losses = F.cross_entropy(trace.logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # [B, 2n]
    # losses[:, j] is the loss of predicting position j + 1
    loss_first = losses[:, :n].mean().item()  # targets 1..n: the first repeat, unpredictable
    # targets n+2..2n: predictable by copying (r_1 at n+1 follows r_n, which was new)
    loss_second = losses[:, n + 1 :].mean().item()
    queries = torch.arange(n + 1, 2 * n + 1)  # positions of the second repeat
    keys = queries - n + 1  # the token after the earlier occurrence
    scores = torch.stack([a[:, :, queries, keys].mean(dim=(0, 2)) for a in trace.attentions])  # [L, nh]
    flat = int(scores.argmax())
    best = (flat // scores.size(1), flat % scores.size(1))
    return InductionResult(loss_first, loss_second, scores, best)
