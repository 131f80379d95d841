"""What each attention head does on one text, in a few numbers, and where the view opens.

The scores follow the head taxonomy of Olsson et al. (2022), "In-context Learning
and Induction Heads", and Elhage et al. (2021), "A Mathematical Framework for
Transformer Circuits": a previous-token head attends from each token to the one
just before it (the same measure as gpt2lib.interpret.previous_token_scores, here
read from weights already computed); an induction head, at a token that occurred
earlier, attends to the token that followed the earlier copy; an attention sink
parks most of its weight on the first token (Xiao et al. 2023, "Efficient Streaming
Language Models with Attention Sinks"). Shapes: L layers, nh heads, T tokens.
"""

from dataclasses import dataclass

import torch

# A head is listed under a kind when its score reaches this share of its weight.
THRESHOLDS = {"previous": 0.4, "induction": 0.3, "sink": 0.5}


@dataclass
class HeadScores:
    """Per-head scores in [0, 1], each [L, nh], averaged over the query tokens that allow them.

    previous: weight on the token just before (queries 1..T-1); sink: weight on the first
    token (queries 1..T-1); focus: the largest weight a query gives any token but the first
    (queries 1..T-1), high for sharp heads that are not sinks; induction: weight on the
    token after an earlier copy of the query token (queries whose token occurred before,
    None when no token repeats).
    """

    previous: torch.Tensor
    sink: torch.Tensor
    focus: torch.Tensor
    induction: torch.Tensor | None


def induction_targets(ids: list[int]) -> list[tuple[int, list[int]]]:
    """For each query i whose token occurred earlier, the keys right after those copies.

    ids=[5, 7, 5, 7] -> [(2, [1]), (3, [2])]: token 5 at 2 saw 5 at 0, followed by 7 at 1.
    """
    out = []
    for i, token in enumerate(ids):
        after = [p + 1 for p in range(i) if ids[p] == token and p + 1 <= i]
        if after:
            out.append((i, after))
    return out


def head_scores(weights: torch.Tensor, ids: list[int]) -> HeadScores:
    """weights: [L, nh, T, T] (rows sum to 1, causal), ids: the T tokens -> HeadScores."""
    T = weights.size(-1)
    if T < 2:  # one token: every head puts all its weight on it
        zeros = weights.new_zeros(weights.shape[:2])
        return HeadScores(previous=zeros, sink=zeros, focus=zeros, induction=None)
    previous = weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)  # [L, nh, T-1] -> [L, nh]
    sink = weights[..., 1:, 0].mean(-1)  # [L, nh, T-1] -> [L, nh]
    focus = weights[..., 1:, 1:].max(-1).values.mean(-1)  # [L, nh, T-1, T-1] -> [L, nh]
    targets = induction_targets(ids)
    induction = None
    if targets:
        per_query = [weights[..., i, after].sum(-1) for i, after in targets]  # each [L, nh]
        induction = torch.stack(per_query).mean(0)  # [n_queries, L, nh] -> [L, nh]
    return HeadScores(previous=previous, sink=sink, focus=focus, induction=induction)


@dataclass
class HeadChoice:
    """The head a view opens on, and why in words (e.g. "the most focused head")."""

    layer: int
    head: int
    reason: str


def best(scores: torch.Tensor, allowed: torch.Tensor) -> tuple[int, int, float]:
    """(layer, head, score) of the highest score among allowed heads ([L, nh] bool)."""
    masked = torch.where(allowed, scores, torch.full_like(scores, -1.0))
    flat = int(masked.argmax())
    layer, head = divmod(flat, scores.size(1))
    return layer, head, float(scores[layer, head])


def choose_head(scores: HeadScores, layer: int | None = None, head: int | None = None) -> HeadChoice:
    """The most informative head: an induction head if the text repeats and one scores
    >= 0.3, else a previous-token head scoring >= 0.4, else the most focused head.

    layer or head, when given, restrict the choice to that layer or that head; both
    given choose exactly that head.
    """
    L, nh = scores.previous.shape
    for name, value, size in (("layer", layer, L), ("head", head, nh)):
        if value is not None and not 0 <= value < size:
            raise ValueError(f"{name}={value} is out of range: the model has {size} {name}s (0..{size - 1})")
    if layer is not None and head is not None:
        return HeadChoice(layer, head, "chosen")
    allowed = torch.ones(L, nh, dtype=torch.bool)
    if layer is not None:
        allowed &= torch.arange(L)[:, None] == layer
    if head is not None:
        allowed &= torch.arange(nh)[None, :] == head
    candidates = []
    if scores.induction is not None:
        candidates.append((scores.induction, THRESHOLDS["induction"], "the strongest induction head"))
    candidates.append((scores.previous, THRESHOLDS["previous"], "the strongest previous-token head"))
    for values, threshold, reason in candidates:
        l, h, s = best(values, allowed)
        if s >= threshold:
            return HeadChoice(l, h, f"{reason} ({s:.2f})")
    l, h, s = best(scores.focus, allowed)
    return HeadChoice(l, h, f"the most focused head (its largest weight off the first token averages {s:.2f})")


def summary_lists(scores: HeadScores, n: int = 4) -> dict:
    """For the page: each kind's heads at or above its threshold, best first (at most n;
    the 3 best for "focus", which has none), and the best head of each kind even when
    below it: {kind: {"heads": [[l, h, s]], "best": [l, h, s]}}, s rounded to 2 decimals
    (the page shows them as they are)."""
    kinds = {"previous": scores.previous, "sink": scores.sink, "focus": scores.focus}
    if scores.induction is not None:
        kinds["induction"] = scores.induction
    out = {}
    for kind, values in kinds.items():
        nh = values.size(1)
        order = torch.argsort(values.flatten(), descending=True, stable=True).tolist()
        ranked = [[k // nh, k % nh, round(float(values.flatten()[k]), 2)] for k in order]
        threshold = THRESHOLDS.get(kind, 0.0)
        listed = [r for r in ranked if r[2] >= threshold][:n] if kind in THRESHOLDS else ranked[:3]
        out[kind] = {"heads": listed, "best": ranked[0]}
    return out
