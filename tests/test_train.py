"""The training loop of gpt2lib.train: batches, schedule, clipping, optimizer groups, learning."""

import math

import pytest
import torch
import torch.nn.functional as F

from gpt2lib import GPT, GPTConfig
from gpt2lib.train import (TrainConfig, clip_gradients, estimate_loss, evaluate_loss, fixed_batches, get_batch,
                           lr_at, make_optimizer, train)

TINY = GPTConfig(n_vocab=32, n_ctx=16, n_embd=32, n_layer=2, n_head=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(TINY)


def test_labels_are_inputs_shifted_by_one():
    data = torch.arange(100) * 3  # distinct values: a wrong offset cannot go unnoticed
    x, y = get_batch(data, 4, 10, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 10) and x.dtype == y.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:]), "y must be x shifted left by one"
    assert torch.equal(y, x + 3), "each label must be the token that follows its input in the data"
    starts = x[:, 0] // 3
    assert int(starts.max()) + 10 < 100, "a window ran past the end of the data"


def test_batches_follow_the_generator():
    data = torch.arange(1000)
    a = get_batch(data, 8, 16, torch.Generator().manual_seed(5))[0]
    b = get_batch(data, 8, 16, torch.Generator().manual_seed(5))[0]
    c = get_batch(data, 8, 16, torch.Generator().manual_seed(6))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="block_size"):
        get_batch(torch.arange(10), 2, 10, torch.Generator())


def test_lr_schedule_at_key_steps():
    kw = dict(max_lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110)
    assert lr_at(0, **kw) == pytest.approx(0.1), "step 0 gets max_lr / warmup_steps, not 0"
    assert lr_at(4, **kw) == pytest.approx(0.5)
    assert lr_at(9, **kw) == pytest.approx(1.0), "warmup ends at max_lr"
    assert lr_at(10, **kw) == pytest.approx(1.0), "the cosine starts at max_lr"
    # a quarter of the way through the cosine: 0.1 + 0.45 * (1 + cos(pi/4))
    assert lr_at(35, **kw) == pytest.approx(0.868198052)
    assert lr_at(60, **kw) == pytest.approx(0.55), "half way: the mean of max_lr and min_lr"
    assert lr_at(110, **kw) == pytest.approx(0.1) and lr_at(500, **kw) == pytest.approx(0.1)
    steps = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(steps, steps[1:])), "the cosine part must never increase"


def grads(model):
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def global_norm(tensors) -> float:
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in tensors))


def test_clipping_bounds_the_global_norm_and_keeps_the_direction():
    model = tiny_model()
    x, y = get_batch(torch.randint(0, 32, (200,), generator=torch.Generator().manual_seed(0)), 4, 16,
                     torch.Generator().manual_seed(1))
    (100.0 * F.cross_entropy(model(x).flatten(0, 1), y.flatten())).backward()  # a large gradient
    before = grads(model)
    reported = clip_gradients(model, 1.0)
    after = grads(model)
    assert reported == pytest.approx(global_norm(before), rel=1e-5), "must return the norm before clipping"
    assert reported > 1.0
    assert global_norm(after) == pytest.approx(1.0, rel=1e-4), f"norm after clipping is {global_norm(after)}, not 1"
    for b, a in zip(before, after):  # one common factor: clipping per tensor would change the direction
        torch.testing.assert_close(a, b / reported, rtol=1e-4, atol=1e-9)
    clip_gradients(model, 10.0)  # below the limit: untouched
    for a, again in zip(after, grads(model)):
        assert torch.equal(a, again)


def test_weight_decay_only_on_matrices_and_every_parameter_once():
    model = tiny_model()
    opt = make_optimizer(model, 1e-3, 0.1, (0.9, 0.95))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "the tied wte / lm_head matrix must appear once"
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_parameters()
    assert any(p is model.wte.weight for p in decay["params"])
    assert any(p is model.h[0].ln_1.weight for p in no_decay["params"])


def test_loss_decreases_on_a_repeated_pattern():
    data = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6] * 60)  # perfectly predictable after a few tokens
    config = TrainConfig(steps=60, batch_size=8, block_size=16, max_lr=1e-2, min_lr=1e-3, warmup_steps=5,
                         eval_interval=20, eval_batches=2, seed=0)
    model = tiny_model()
    start = estimate_loss(model, fixed_batches(data, 2, 8, 16, config.seed + 1))
    history = train(model, data, data, config, progress=False)
    assert len(history.records) == 60
    assert [r["step"] for r in history.validations()] == [19, 39, 59]
    assert [r["lr"] for r in history.records] == [lr_at(s, max_lr=1e-2, min_lr=1e-3, warmup_steps=5, total_steps=60)
                                                   for s in range(60)]
    final = history.validations()[-1]["val_loss"]
    assert start > 3.0, f"an untrained model should be near ln(32) = 3.47, got {start:.3f}"
    # After a 1 comes 4 or 5: only attention to the token before the 1 tells which, so a model
    # that cannot use attention is stuck at 2 * ln(2) / 8 = 0.173 or above.
    assert final < 0.1, f"loss only fell from {start:.3f} to {final:.3f} on a repeating pattern"
    assert not model.training, "train() leaves the model in eval mode"


def test_training_is_reproducible_from_the_seed():
    data = torch.randint(0, 32, (500,), generator=torch.Generator().manual_seed(0))
    config = TrainConfig(steps=5, batch_size=4, block_size=16, warmup_steps=2, eval_interval=5, eval_batches=1)
    runs = [train(tiny_model(), data, data, config, progress=False) for _ in range(2)]
    assert runs[0].column("train_loss") == runs[1].column("train_loss")
    other = train(tiny_model(), data, data, TrainConfig(**{**config.__dict__, "seed": 1}), progress=False)
    assert other.column("train_loss") != runs[0].column("train_loss"), "the seed must pick the batches"


def test_evaluate_loss_predicts_every_token_once():
    model = tiny_model().eval()
    ids = torch.randint(0, 32, (2 * 16 + 6,), generator=torch.Generator().manual_seed(3))  # a partial last window
    losses = []
    for start in range(0, len(ids) - 1, 16):  # window by window, one at a time
        window = ids[start : start + 17]
        with torch.no_grad():
            logits = model(window[None, :-1])[0]
        losses.append(F.cross_entropy(logits, window[1:], reduction="none"))
    expected = torch.cat(losses)
    assert len(expected) == len(ids) - 1
    assert evaluate_loss(model, ids, 16, batch_size=2) == pytest.approx(expected.mean().item(), rel=1e-6)


def test_block_size_beyond_the_context_is_refused():
    with pytest.raises(ValueError, match="n_ctx"):
        train(tiny_model(), torch.arange(100) % 32, torch.arange(100) % 32, TrainConfig(steps=1, block_size=32),
              progress=False)
