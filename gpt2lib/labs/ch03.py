"""Exercise checks for chapter 3, embeddings.

The references are torch's embedding lookup (what gpt2lib's `wte` and `wpe` are)
and gpt2lib.GPT.embed, following OpenAI's gpt-2/src/model.py (`model`: h = wte[X] + wpe[pos]).
"""

import torch
import torch.nn.functional as F

from ..config import GPTConfig
from ..model import GPT
from .core import Mistake, StudentError, as_tensor, call, exercise, expect_close, expect_shape, fmt, judge, seeded
from .plug import expect_plugged


@exercise("3.1", "embedding as one-hot times a matrix", kind="implement",
          hint="a one-hot vector as long as the vocabulary, times the matrix, picks one row")
def check_one_hot_embedding(embed):
    """embed(ids [T] LongTensor, wte [V, C]) -> [T, C], computed as one_hot(ids) @ wte."""
    g = seeded(31)
    wte = torch.randn(10, 4, generator=g)  # [V, C]
    for ids in (torch.tensor([3]), torch.tensor([1, 4, 1, 2]), torch.tensor([9, 0, 5])):
        try:
            out = call(embed, ids.clone(), wte.clone(), on=f"ids {ids.tolist()}")
        except StudentError as e:
            if isinstance(e.__cause__, NotImplementedError):
                raise
            if "multiplied" in str(e) or "shape" in str(e):
                raise Mistake(f"{e}: give the one-hot vectors the vocabulary's length, "
                              f"F.one_hot(ids, num_classes=wte.shape[0])") from None
            if "dtype" in str(e) or "Long" in str(e):
                raise Mistake(f"{e}: one_hot returns integers; convert it with .to(wte.dtype) "
                              f"before the matrix product") from None
            raise
        out = as_tensor(out, "the result", like=wte)
        expect_close(out, F.embedding(ids, wte), 1e-6, f"the embedding of ids {ids.tolist()}",
                     hint="row i of the result must be row ids[i] of wte")
    return "one_hot(ids) @ wte picks the rows of wte, as gpt2lib's wte lookup does (3 inputs)"


@exercise("3.2", "cosine similarity", kind="implement",
          hint="a . b divided by the product of the two lengths |a| |b|")
def check_cosine_similarity(cosine):
    """cosine(a [C], b [C]) -> a number in [-1, 1]."""
    g = seeded(32)
    a = torch.randn(8, generator=g)
    cases = [("a and 3a", a, 3 * a), ("a and -a", a, -a),
             ("two orthogonal vectors", torch.tensor([2.0, 0.0]), torch.tensor([0.0, 5.0])),
             ("two random vectors", torch.randn(8, generator=g), torch.randn(8, generator=g) * 4)]
    for what, x, y in cases:
        got = as_tensor(call(cosine, x.clone(), y.clone(), on=what), "the similarity")
        if got.numel() != 1:
            raise Mistake(f"return one number, got a tensor of shape {list(got.shape)}")
        got = float(got)
        expected = float(F.cosine_similarity(x, y, dim=0))
        if abs(got - expected) <= 1e-5:
            continue
        dot = float(x @ y)
        if abs(got - dot) <= 1e-4:
            raise Mistake(f"on {what} you returned the dot product {fmt(dot)}: divide by both lengths |a| |b|")
        if abs(got - dot / float(x @ x) / float(y @ y)) <= 1e-5:
            raise Mistake(f"on {what}: divide by the lengths |a| |b| (the square roots), not by a.a and b.b")
        raise Mistake(f"on {what} you returned {fmt(got)}, the cosine similarity is {fmt(expected)}")
    return "matches F.cosine_similarity: 1 for a and 3a, -1 for a and -a, 0 for orthogonal vectors"


def _tiny_model(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(n_vocab=50, n_ctx=16, n_embd=8, n_layer=1, n_head=2)).eval()


@exercise("3.3", "token plus position embeddings", kind="implement",
          hint="one vector for each token id, plus one for each position 0 .. T - 1")
def check_embed_with_positions(embed):
    """embed(idx [B, T] LongTensor, wte [V, C], wpe [n_ctx, C]) -> [B, T, C]."""
    model = _tiny_model(33)
    wte, wpe = model.wte.weight.detach(), model.wpe.weight.detach()
    idx = torch.tensor([[7, 3, 7, 7, 1], [2, 2, 9, 4, 0]])  # token 7 at positions 0, 2 and 3
    with torch.no_grad():
        expected = model.embed(idx)
    out = as_tensor(call(embed, idx.clone(), wte.clone(), wpe.clone(), on="idx of shape [2, 5]"),
                    "the result", like=wte)
    expect_shape(out, expected, "the result")
    if torch.allclose(out, F.embedding(idx, wte), atol=1e-6):
        raise Mistake("token 7 gets the same vector at positions 0, 2 and 3: add the position "
                      "embeddings wpe[0 .. T-1]")
    if torch.allclose(out, F.embedding(idx, wte) + F.embedding(idx, wpe), atol=1e-6):
        raise Mistake("wpe is indexed by position (0 .. T-1), not by token id")
    if torch.allclose(out, F.embedding(idx, wte) + wpe[1:6], atol=1e-6):
        raise Mistake("positions start at 0: the first token gets wpe[0]")
    expect_close(out, expected, 1e-6, "the embeddings", hint="each position t adds its own row of wpe")
    expect_plugged("embed", lambda idx, wte, wpe: as_tensor(
        call(embed, idx.clone(), wte.detach().clone(), wpe.detach().clone(), on="the bundled model's ids"),
        "the result", like=wte))
    return ("matches gpt2lib.GPT.embed on a small model; yours in gpt2-shakespeare, logits vs transformers "
            "(the same checkpoint file), max |diff| <= 1e-4")


@exercise("3.4", "predict: same token, two positions", kind="predict",
          hint="True or False: does ' bank' get the same input vector at positions 1 and 6?")
def check_predict_same_vector(prediction):
    """prediction: bool, are the input vectors of one token at two positions equal?"""
    model = _tiny_model(34)
    idx = torch.tensor([[4, 11, 4]])
    with torch.no_grad():
        x = model.embed(idx)  # [1, 3, C]
    same = bool(torch.equal(x[0, 0], x[0, 2]))
    return judge(prediction, same, explain="wte gives both the same row, but wpe adds a different "
                 "vector at each position, so the model can tell them apart")
