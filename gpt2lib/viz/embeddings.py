"""Token and position embeddings seen through cosine similarity and a 2-D projection.

Cosine similarity and nearest neighbours in an embedding table follow Mikolov et
al. (2013), "Efficient Estimation of Word Representations in Vector Space"; the
projection is principal component analysis (Pearson 1901) computed with an SVD.
Shapes: V vocabulary, C = n_embd, N chosen tokens, P positions.
"""

from dataclasses import dataclass

import torch

from .labels import token_label


@dataclass
class Neighbours:
    """The k tokens of wte closest to one token, most similar first (the token itself leads)."""

    ids: list[int]
    labels: list[str]
    scores: list[float]


@dataclass
class Projection:
    """coords: [N, 2] points; components: [2, C] unit directions; explained: [2] share of
    the variance each direction keeps. Signs: each column of coords has its largest
    absolute entry positive, so the picture does not flip between runs."""

    coords: torch.Tensor
    components: torch.Tensor
    explained: torch.Tensor


@dataclass
class EmbeddingData:
    """Everything the embedding view shows for N chosen tokens.

    similarity: [N, N] cosine similarities of their wte rows; positions: [P] sampled
    positions; vs_token: [N, P] cos(wte[t] + wpe[p], wte[t]); vs_first: [N, P]
    cos(wte[t] + wpe[p], wte[t] + wpe[0]); token_norm: [N] |wte[t]|; position_norm: [P] |wpe[p]|.
    """

    words: list[str]
    ids: list[int]
    labels: list[str]
    similarity: torch.Tensor
    projection: Projection
    neighbours: list[Neighbours]
    positions: list[int]
    vs_token: torch.Tensor
    vs_first: torch.Tensor
    token_norm: torch.Tensor
    position_norm: torch.Tensor


@torch.no_grad()
def cosine_similarity_matrix(x: torch.Tensor) -> torch.Tensor:
    """[N, C] -> [N, N]: entry (i, j) = x_i . x_j / (|x_i| |x_j|)."""
    unit = x / x.norm(dim=-1, keepdim=True)  # [N, C]
    return unit @ unit.T  # [N, C] @ [C, N] -> [N, N]


@torch.no_grad()
def nearest_neighbours(wte: torch.Tensor, token_id: int, k: int = 12):
    """The k rows of wte [V, C] most cosine-similar to row token_id -> (ids [k], scores [k])."""
    unit = wte / wte.norm(dim=-1, keepdim=True)  # [V, C]
    scores = unit @ unit[token_id]  # [V, C] @ [C] -> [V]
    top = torch.topk(scores, min(k, scores.numel()))  # sorted, most similar first
    return top.indices, top.values


@torch.no_grad()
def pca_2d(x: torch.Tensor) -> Projection:
    """Project the rows of x [N, C] onto their two main directions of variance -> [N, 2]."""
    if x.size(0) < 2:
        raise ValueError(f"a 2-D projection needs at least 2 vectors, got {x.size(0)}")
    x = x.double()
    centred = x - x.mean(dim=0, keepdim=True)  # [N, C]
    U, S, Vh = torch.linalg.svd(centred, full_matrices=False)  # [N, r], [r], [r, C]
    coords = U[:, :2] * S[:2]  # [N, 2]
    # Fix each direction's sign: the point furthest along it lies on the positive side.
    signs = torch.sign(coords[coords.abs().argmax(dim=0), torch.arange(coords.size(1))])
    signs[signs == 0] = 1.0
    variance = S**2
    coords, components = coords * signs, Vh[:2] * signs[:, None]
    if coords.size(1) < 2:  # two points span one direction only
        coords = torch.cat([coords, torch.zeros_like(coords)], dim=1)
        components = torch.cat([components, torch.zeros_like(components)], dim=0)
    explained = torch.zeros(2, dtype=x.dtype)
    explained[: variance[:2].numel()] = variance[:2] / variance.sum().clamp_min(1e-30)
    return Projection(coords=coords, components=components, explained=explained)


def single_token_forms(tokenizer, word: str) -> list[str]:
    """Other spellings of word that are one token each: with or without a leading space,
    lower case or capitalised. "unbelievably" -> []; "King" -> [" King", " king", "king"]."""
    bare = word.strip()
    forms = [" " + bare, bare, " " + bare.lower(), " " + bare.capitalize(), bare.lower()]
    out = []
    for form in forms:
        if form and form != word and form not in out and len(tokenizer.encode(form)) == 1:
            out.append(form)
    return out


def word_ids(tokenizer, words) -> list[int]:
    """Each word (a str that is one token, or a token id) -> its token id."""
    ids = []
    for word in words:
        if isinstance(word, int):
            ids.append(word)
            continue
        found = tokenizer.encode(word)
        if len(found) != 1:
            pieces = [token_label(tokenizer, i) for i in found]
            forms = single_token_forms(tokenizer, word)
            hint = (f"{forms[0]!r} is one token: try it" if forms else
                    f"No spelling of {word.strip()!r} (with or without a leading space, in either case) "
                    f"is one token: choose another word")
            raise ValueError(
                f"{word!r} is {len(found)} tokens {pieces}, not one: the embedding view compares rows "
                f"of wte, one per token, so each word must be a single token. {hint}. Most common "
                f"words are one token with a leading space, e.g. ' king'"
            )
        ids.append(found[0])
    return ids


def default_positions(n_ctx: int) -> list[int]:
    """Every position up to 16, then about 48 evenly spaced ones up to n_ctx - 1."""
    step = max(1, n_ctx // 48)
    return sorted(set(range(min(16, n_ctx))) | set(range(0, n_ctx, step)) | {n_ctx - 1})


@torch.no_grad()
def embedding_data(model, tokenizer, words, *, k: int = 12, positions=None) -> EmbeddingData:
    """Similarities, projection, neighbours and position effects for the chosen words."""
    words = list(words)
    if len(words) < 2:
        raise ValueError(f"give at least two words to compare, got {words!r}")
    ids = word_ids(tokenizer, words)
    wte, wpe = model.wte.weight.float(), model.wpe.weight.float()  # [V, C], [n_ctx, C]
    vectors = wte[ids]  # [N, C]
    neighbours = []
    for i in ids:
        nb_ids, nb_scores = nearest_neighbours(wte, i, k)
        neighbours.append(Neighbours(
            ids=nb_ids.tolist(), labels=[token_label(tokenizer, j) for j in nb_ids.tolist()],
            scores=nb_scores.tolist(),
        ))
    positions = list(positions) if positions is not None else default_positions(wpe.size(0))
    moved = vectors[:, None, :] + wpe[positions][None, :, :]  # [N, 1, C] + [1, P, C] -> [N, P, C]
    unit_moved = moved / moved.norm(dim=-1, keepdim=True)  # [N, P, C]
    unit_tok = vectors / vectors.norm(dim=-1, keepdim=True)  # [N, C]
    first = (vectors + wpe[0]) / (vectors + wpe[0]).norm(dim=-1, keepdim=True)  # [N, C]
    return EmbeddingData(
        words=[str(w) for w in words], ids=ids, labels=[token_label(tokenizer, i) for i in ids],
        similarity=cosine_similarity_matrix(vectors), projection=pca_2d(vectors),
        neighbours=neighbours, positions=positions,
        vs_token=(unit_moved * unit_tok[:, None, :]).sum(-1),  # [N, P]
        vs_first=(unit_moved * first[:, None, :]).sum(-1),  # [N, P]
        token_norm=vectors.norm(dim=-1), position_norm=wpe[positions].norm(dim=-1),
    )
