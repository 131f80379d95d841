"""Exercise checks for chapter 9, looking inside.

The logit lens is nostalgebraist's (2020, "interpreting GPT: the logit lens");
previous-token and induction heads follow Olsson et al. (2022). References:
gpt2lib.GPT.trace and the model's own ln_f and lm_head.
"""

import torch

from ..config import GPTConfig
from ..model import GPT
from .core import Mistake, as_tensor, call, exercise, expect_close, expect_shape, fmt, judge

SAMPLE_TEXT = ("Friends, Romans, countrymen, lend me your ears; I come to bury Caesar, "
               "not to praise him. The evil that men do lives after them.")


def sample_ids() -> torch.Tensor:
    """SAMPLE_TEXT as GPT-2 token ids [1, T]."""
    from .core import gpt2_tokenizer

    return torch.tensor([gpt2_tokenizer().encode(SAMPLE_TEXT)])


def previous_token_score(weights: torch.Tensor) -> float:
    """Mean attention on the previous token: weights [T, T] -> mean of weights[i, i - 1], i >= 1."""
    return float(torch.diagonal(weights, offset=-1).mean())


def previous_token_scores(model: GPT, ids: torch.Tensor) -> torch.Tensor:
    """previous_token_score of every head: ids [1, T] -> [n_layer, nh]."""
    attentions = model.trace(ids).attentions  # n_layer x [1, nh, T, T]
    return torch.stack([torch.diagonal(a[0], offset=-1, dim1=-2, dim2=-1).mean(-1) for a in attentions])


def _tiny_model(seed: int, n_layer: int = 3) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(n_vocab=40, n_ctx=16, n_embd=8, n_layer=n_layer, n_head=2)).eval()
    with torch.no_grad():
        model.ln_f.weight.normal_(1.0, 0.5)  # a non-trivial ln_f, so skipping it shows
        model.ln_f.bias.normal_(0.0, 0.5)
    return model


@exercise("9.1", "logit lens", kind="implement",
          hint="do what the model itself does after its last block, in the same order")
def check_logit_lens(lens):
    """lens(model, residual [B, T, C]) -> logits [B, T, V], as if the model stopped there."""
    model = _tiny_model(91)
    trace = model.trace(torch.tensor([[3, 14, 15, 9, 2, 6]]))
    for layer, residual in enumerate(trace.residual):
        with torch.no_grad():
            out = as_tensor(call(lens, model, residual.clone(), on=f"the residual after layer {layer}"),
                            "the logits", like=residual)
            expected = model.lm_head(model.ln_f(residual))
            expect_shape(out, expected, f"the logits after layer {layer}")
            if torch.allclose(out, model.lm_head(residual), atol=1e-5):
                raise Mistake("apply the final layer norm ln_f before the LM head: the model always does")
        expect_close(out, expected, 1e-5, f"the logits after layer {layer}")
    expect_close(out, trace.logits, 1e-5, "the lens on the last layer",
                 hint="on the last residual the lens must give the model's own logits")
    return "matches ln_f + lm_head on every layer, and the model's logits on the last"


@exercise("9.2", "previous-token score", kind="implement",
          hint="row i's weight on the token before it sits just below the main diagonal")
def check_previous_token_score(score):
    """score(weights [T, T]) -> float, the mean of weights[i, i - 1] over i = 1 .. T-1."""
    T = 6
    perfect = torch.zeros(T, T)
    perfect[0, 0] = 1.0
    perfect[torch.arange(1, T), torch.arange(T - 1)] = 1.0  # a pure previous-token head
    model = _tiny_model(92, n_layer=1)
    real = model.trace(torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])).attentions[0][0, 1]  # [T, T]
    cases = [("a pure previous-token pattern", perfect), ("a uniform causal pattern",
             torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]), ("a real head", real)]
    for what, w in cases:
        got = call(score, w.clone(), on=what)
        try:
            got = float(got)
        except Exception:
            raise Mistake(f"return one number, got {type(got).__name__}") from None
        expected = previous_token_score(w)
        if abs(got - expected) <= 1e-5:
            continue
        if abs(got - float(torch.diagonal(w).mean())) <= 1e-5:
            raise Mistake(f"on {what} you measured attention to the token itself (the diagonal): "
                          f"the previous token is one below it, offset=-1")
        if abs(got - float(torch.diagonal(w, offset=-1).sum()) / T) <= 1e-5:
            raise Mistake(f"on {what} you divided by T = {T}: only the T - 1 rows after the first "
                          f"have a previous token")
        raise Mistake(f"on {what} your score is {fmt(got)}, expected {fmt(expected)}")
    return "1.0 for a pure previous-token pattern, right on a uniform and a real head"


@exercise("9.3", "where the answer appears", kind="explore",
          hint="with the logit lens view, find the first layer whose top guess at the last position "
               "is already the model's final one")
def check_lens_layer(layer, *, model=None, ids=None):
    """layer: the first index into trace.residual (0 = embeddings) whose lens top-1 at the last
    position equals the final prediction, on `ids` (default: the sample text) with `model`."""
    from .core import bundled_model

    model = model if model is not None else bundled_model()
    ids = ids if ids is not None else sample_ids()
    trace = model.trace(ids)
    final = int(trace.logits[0, -1].argmax())
    with torch.no_grad():
        tops = [int(model.lm_head(model.ln_f(r[0, -1])).argmax()) for r in trace.residual]
    first = next(i for i, t in enumerate(tops) if t == final)
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise Mistake(f"answer with a layer index (an int), got {layer!r}")
    if layer != first:
        direction = "later" if layer < first else "earlier"
        raise Mistake(f"at layer {layer} the lens's top token is {tops[layer] if 0 <= layer < len(tops) else '?'}, "
                      f"the final one is {final}; look {direction}")
    return f"layer {first} is the first whose top guess is the final token {final}"


@exercise("9.4", "predict: how many residual snapshots", kind="predict",
          hint="len(model.trace(ids).residual) for GPT-2 small (12 layers)")
def check_predict_residual_count(prediction):
    """prediction: the number of residual-stream tensors a trace of a 12-layer model holds."""
    torch.manual_seed(94)
    model = GPT(GPTConfig(n_vocab=20, n_ctx=8, n_embd=12, n_layer=12, n_head=12)).eval()
    n = len(model.trace(torch.tensor([[1, 2, 3]])).residual)
    return judge(prediction, n, explain="the embeddings, then one snapshot after each of the 12 blocks")


MASKED_TEXT_TOKENS = 10


def _masked_weight_count() -> tuple[int, dict]:
    """The exactly-zero attention weights of a 12-layer, 12-head model on 10 tokens, and the usual wrong counts."""
    torch.manual_seed(94)
    model = GPT(GPTConfig(n_vocab=20, n_ctx=16, n_embd=24, n_layer=12, n_head=12)).eval()
    T = MASKED_TEXT_TOKENS
    attentions = model.trace(torch.arange(T)[None] % 20).attentions  # 12 x [1, 12, T, T]
    zeros = sum(int((a == 0).sum()) for a in attentions)
    per_head, heads = T * (T - 1) // 2, 12 * 12
    wrong = {
        heads * T * T: "that is every weight of every head; only the ones the causal mask removes are zero",
        heads * (T * (T + 1) // 2): "those are the weights a token may use (itself and the tokens before it); "
                                    "count the others",
        per_head: "that is one head's count; every head of every layer has its own [T, T] weights",
        12 * per_head: "that counts one head per layer; every layer has 12 heads",
        heads * T * (T - 1): "row i has a zero for each token after i, not for every other token",
    }
    return zeros, wrong


@exercise("9.4", "predict: the weights the mask removes", kind="predict",
          hint="each row of a head's weights belongs to one token; which keys can it not see?")
def check_predict_masked_weights(prediction):
    """prediction: how many of trace.attentions' weights are exactly 0 for GPT-2 small (12 layers of 12
    heads) on a 10-token text. A wrong try says why the reasoning may be off, never the number."""
    actual, wrong = _masked_weight_count()
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)):
        raise Mistake(f"answer with a number, got {prediction!r}")
    if prediction == actual:
        return (f"right, it is {actual:,}: in each of the 144 heads, token i cannot see the "
                f"{MASKED_TEXT_TOKENS} - 1 - i tokens after it, 45 zeros per head")
    why = wrong.get(prediction)
    if why is None:
        why = "count the zeros of one head's [T, T] weights first, then the heads; " + (
            "your number is too high" if prediction > actual else "your number is too low")
    raise Mistake(f"you predicted {prediction!r}, not right: {why}")
