"""Attention-head measurements of gpt2lib.interpret, checked against plain loops over the weights."""

import math

import pytest
import torch
import torch.nn.functional as F

from gpt2lib.interpret import induction, previous_token_scores, repeated_random_tokens
from conftest import CONFIGS, random_gpt, random_ids


def test_previous_token_scores_match_a_loop():
    config = CONFIGS["3-heads"]
    model = random_gpt(config)
    ids = random_ids(config, B=2, T=20)
    attentions = model.trace(ids).attentions
    scores = previous_token_scores(model, ids)
    assert scores.shape == (config.n_layer, config.n_head)
    for layer in range(config.n_layer):
        for head in range(config.n_head):
            weights = [attentions[layer][b, head, t, t - 1] for b in range(2) for t in range(1, 20)]
            expected = torch.stack(weights).mean()
            assert scores[layer, head] == pytest.approx(expected.item(), abs=1e-6), (
                f"layer {layer} head {head}: got {scores[layer, head]:.4f}, loop gives {expected:.4f}")
    with pytest.raises(ValueError, match="T >= 2"):
        previous_token_scores(model, ids[:, :1])


def test_repeated_random_tokens():
    ids = repeated_random_tokens(10, batch_size=3, seed=4)
    assert ids.shape == (3, 21) and (ids[:, 0] == 50256).all()
    assert torch.equal(ids[:, 1:11], ids[:, 11:]), "the second half must repeat the first"
    assert torch.equal(ids, repeated_random_tokens(10, batch_size=3, seed=4))
    assert not torch.equal(ids, repeated_random_tokens(10, batch_size=3, seed=5))
    pool = torch.tensor([7, 11, 13])
    assert set(repeated_random_tokens(50, seed=0, pool=pool, prefix=None).flatten().tolist()) <= {7, 11, 13}


def test_induction_matches_a_loop():
    config = CONFIGS["3-heads"]  # n_ctx 48 holds 1 + 2 * 20 tokens
    model = random_gpt(config)
    n = 20
    ids = repeated_random_tokens(n, batch_size=2, seed=1, pool=torch.arange(1, config.n_vocab), prefix=0)
    result = induction(model, ids, n)
    trace = model.trace(ids)
    first, second = [], []
    for b in range(2):
        losses = F.cross_entropy(trace.logits[b, :-1], ids[b, 1:], reduction="none")
        first += [losses[t - 1] for t in range(1, n + 1)]  # predicting positions 1..n
        second += [losses[t - 1] for t in range(n + 2, 2 * n + 1)]  # positions n+2..2n
    assert result.loss_first == pytest.approx(torch.stack(first).mean().item(), abs=1e-5)
    assert result.loss_second == pytest.approx(torch.stack(second).mean().item(), abs=1e-5)
    layer, head = 1, 2
    weights = []
    for b in range(2):
        for p in range(n + 1, 2 * n + 1):
            earlier = p - n  # same token, first repeat
            assert ids[b, earlier] == ids[b, p]
            weights.append(trace.attentions[layer][b, head, p, earlier + 1])
    assert result.scores[layer, head] == pytest.approx(torch.stack(weights).mean().item(), abs=1e-6)
    assert result.best_score == pytest.approx(result.scores.max().item())
    with pytest.raises(ValueError, match="1 \\+ 2n"):
        induction(model, ids[:, :-1], n)


class HandBuilt:
    """Stands in for a model whose attention patterns and logits are given: the right scores are known."""

    def __init__(self, attentions, logits):
        self.attentions, self.logits = attentions, logits

    def trace(self, ids):
        from gpt2lib.model import Trace

        return Trace(logits=self.logits, residual=[], attentions=self.attentions)


def pattern(T: int, rows) -> torch.Tensor:
    """[T, T] attention with all of query t's weight on key rows(t)."""
    a = torch.zeros(T, T)
    for t in range(T):
        a[t, rows(t)] = 1.0
    return a


def uniform_causal(T: int) -> torch.Tensor:
    return torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]


def test_previous_token_scores_on_known_patterns():
    T = 10
    previous = pattern(T, lambda t: max(t - 1, 0))
    itself = pattern(T, lambda t: t)
    first = pattern(T, lambda t: 0)
    heads = torch.stack([previous, itself, first, uniform_causal(T)])[None]  # [1, 4, T, T]
    model = HandBuilt([heads, heads.flip(1)], torch.zeros(1, T, 5))
    scores = previous_token_scores(model, torch.zeros(1, T, dtype=torch.long))
    # the first-token head looks one back only at t = 1; the uniform head gives 1 / (t + 1) at t
    uniform = sum(1 / (t + 1) for t in range(1, T)) / (T - 1)
    expected = torch.tensor([[1.0, 0.0, 1 / (T - 1), uniform], [uniform, 1 / (T - 1), 0.0, 1.0]])
    assert torch.allclose(scores, expected, atol=1e-6), scores


def test_induction_on_a_known_induction_head():
    n, V = 6, 20
    ids = repeated_random_tokens(n, seed=1, pool=torch.arange(V), prefix=0)  # [1, 13]
    T = 1 + 2 * n
    # head 0: from the second repeat, attend to the token after the earlier occurrence; head 1: previous token
    induction_head = pattern(T, lambda t: t - n + 1 if t > n else t)
    heads = torch.stack([induction_head, pattern(T, lambda t: max(t - 1, 0))])[None]  # [1, 2, T, T]
    # logits that copy: after position t >= n + 1, the next token is certain; elsewhere uniform
    logits = torch.zeros(1, T, V)
    for t in range(n + 1, T - 1):
        logits[0, t, ids[0, t + 1]] = 100.0
    result = induction(HandBuilt([heads], logits), ids, n)
    assert result.loss_first == pytest.approx(torch.log(torch.tensor(float(V))).item(), abs=1e-5)
    assert result.loss_second == pytest.approx(0.0, abs=1e-5)
    assert result.best == (0, 0) and result.best_score == pytest.approx(1.0)
    # the previous-token head looks at p - 1, never at p - n + 1 (n > 2)
    assert result.scores[0, 1] == pytest.approx(0.0)


def induction_setup(n: int, V: int = 20, batch_size: int = 1, seed: int = 1):
    """Repeated random ids [B, 1 + 2n] and zero logits: the losses are ln V, the scores come from the pattern."""
    ids = repeated_random_tokens(n, batch_size=batch_size, seed=seed, pool=torch.arange(V), prefix=0)
    return ids, torch.zeros(batch_size, 1 + 2 * n, V)


def test_induction_scores_on_known_patterns():
    n = 8
    T = 1 + 2 * n
    ids, logits = induction_setup(n)
    stripe = pattern(T, lambda t: t - n + 1 if t > n else t)  # the token after the earlier occurrence
    duplicate = pattern(T, lambda t: t - n if t > n else t)  # the earlier occurrence itself, one too far left
    itself = pattern(T, lambda t: t)
    previous = pattern(T, lambda t: max(t - 1, 0))
    heads = torch.stack([stripe, duplicate, itself, previous, uniform_causal(T)])[None]  # [1, 5, T, T]
    result = induction(HandBuilt([heads], logits), ids, n)
    # the uniform head gives 1 / (p + 1) at each query p of the second repeat, n + 1 .. 2n
    uniform = sum(1 / (p + 1) for p in range(n + 1, 2 * n + 1)) / n
    expected = torch.tensor([[1.0, 0.0, 0.0, 0.0, uniform]])
    assert torch.allclose(result.scores, expected, atol=1e-6), result.scores
    assert result.best == (0, 0)
    # with the stripe in another layer and head, best names that layer and head
    other = induction(HandBuilt([heads[:, [4, 3, 2, 1, 1]], heads[:, [4, 3, 2, 0, 1]]], logits), ids, n)
    assert other.best == (1, 3) and other.best_score == pytest.approx(1.0)
    # uniform logits: both repeats cost ln V, and nothing is easier the second time
    assert result.loss_first == pytest.approx(math.log(20), abs=1e-5)
    assert result.loss_second == pytest.approx(math.log(20), abs=1e-5)


def test_head_scores_average_over_the_batch():
    """Two sequences, one head a stripe on the first and uniform on the second: the mean of the two."""
    n = 5
    T = 1 + 2 * n
    ids, logits = induction_setup(n, batch_size=2)
    stripe = pattern(T, lambda t: t - n + 1 if t > n else t)
    previous = pattern(T, lambda t: max(t - 1, 0))
    heads = torch.stack([torch.stack([stripe, previous]), torch.stack([uniform_causal(T), uniform_causal(T)])])  # [2, 2, T, T]
    uniform_induction = sum(1 / (p + 1) for p in range(n + 1, 2 * n + 1)) / n
    result = induction(HandBuilt([heads], logits), ids, n)
    assert result.scores[0, 0] == pytest.approx((1.0 + uniform_induction) / 2)
    assert result.scores[0, 1] == pytest.approx(uniform_induction / 2)
    uniform_previous = sum(1 / (t + 1) for t in range(1, T)) / (T - 1)
    prev = previous_token_scores(HandBuilt([heads], logits), ids)
    assert prev[0, 1] == pytest.approx((1.0 + uniform_previous) / 2)
    assert prev[0, 0] == pytest.approx((sum(float(stripe[t, t - 1]) for t in range(1, T)) / (T - 1) + uniform_previous) / 2)


def test_shortest_inputs():
    """T = 2 is the shortest a previous-token score exists for; T = 1 and n = 0 are refused by name."""
    two = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])  # [1, 1, 2, 2]: query 1 looks at key 0
    assert previous_token_scores(HandBuilt([two], torch.zeros(1, 2, 5)), torch.zeros(1, 2, dtype=torch.long)).item() == 1.0
    one = HandBuilt([torch.ones(1, 1, 1, 1)], torch.zeros(1, 1, 5))
    with pytest.raises(ValueError, match="T >= 2"):
        previous_token_scores(one, torch.zeros(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="T >= 2"):
        previous_token_scores(one, torch.zeros(3, dtype=torch.long))  # no batch axis
    # n = 2, the shortest repeat with a predictable target: r_1 r_2 r_1 r_2, where the second r_1 (position 3)
    # looks at the first r_2 (position 2) and predicts the last token
    ids, logits = induction_setup(2)
    stripe = pattern(5, lambda t: t - 1 if t > 2 else t)  # [5, 5]: 3 -> 2, 4 -> 3
    logits[0, 3, ids[0, 4]] = 100.0
    result = induction(HandBuilt([stripe[None, None]], logits), ids, 2)
    assert result.scores.item() == pytest.approx(1.0) and result.loss_second == pytest.approx(0.0, abs=1e-5)
    # n = 1 has nothing to predict in the second repeat (its only token follows a new one): refused, not NaN
    ids, logits = induction_setup(1)
    with pytest.raises(ValueError, match="n >= 2"):
        induction(HandBuilt([pattern(3, lambda t: t)[None, None]], logits), ids, 1)
    with pytest.raises(ValueError, match="1 \\+ 2n"):
        induction(HandBuilt([stripe[None, None]], logits), ids, 2)


def test_masked_weights_prediction_never_gives_the_number_away():
    from gpt2lib.labs import ch09

    T, heads = 10, 12 * 12
    right = heads * T * (T - 1) // 2
    assert ch09.check_predict_masked_weights(right).status == "pass"
    for wrong in (heads * T * T, heads * T * (T + 1) // 2, T * (T - 1) // 2, 12 * 45, 100, 10**6, right + 1):
        result = ch09.check_predict_masked_weights(wrong)
        assert result.status == "fail" and result.message.startswith(f"you predicted {wrong!r}"), str(result)
        assert f"{right}" not in result.message and f"{right:,}" not in result.message, str(result)
    assert ch09.check_predict_masked_weights(None).status == "todo"
    assert ch09.check_predict_masked_weights("many").status == "fail"
