"""Exercise checks for chapter 8, training.

References: gpt2lib.train (get_batch's shifted labels, loss_fn, lr_at, the warmup and
cosine schedule of Loshchilov & Hutter 2017 as in nanoGPT), and transformers'
GPT2LMHeadModel's own loss on identical logits.
"""

import math

import torch
import torch.nn.functional as F

from ..config import SIZES
from ..model import GPT
from ..train import lr_at
from .core import Mistake, StudentError, as_tensor, call, exercise, expect_shape, fmt, judge, seeded


@exercise("8.2", "inputs and labels", kind="implement",
          hint="the label at position t is the token that comes right after it in the window")
def check_inputs_and_labels(split):
    """split(window [B, T + 1]) -> (x [B, T], y [B, T])."""
    window = torch.tensor([[5, 6, 7, 8, 9], [20, 21, 22, 23, 24]])
    out = call(split, window.clone(), on="a window of shape [2, 5]")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Mistake("return the pair (inputs, labels)")
    x, y = (as_tensor(t, name) for t, name in zip(out, ("the inputs", "the labels")))
    expected_x, expected_y = window[:, :-1], window[:, 1:]
    expect_shape(x, expected_x, "the inputs")
    expect_shape(y, expected_y, "the labels")
    if torch.equal(x, y):
        raise Mistake("the labels are the inputs: the model would learn to copy; the label at "
                      "position t is the next token, window[:, t + 1]")
    if torch.equal(x, expected_y) and torch.equal(y, expected_x):
        raise Mistake("inputs and labels are swapped: the model must predict the later token")
    if not (torch.equal(x, expected_x) and torch.equal(y, expected_y)):
        raise Mistake(f"for the window {window[0].tolist()} expected inputs {expected_x[0].tolist()} "
                      f"and labels {expected_y[0].tolist()}, got {x[0].tolist()} and {y[0].tolist()}")
    return "x = [5, 6, 7, 8] predicts y = [6, 7, 8, 9], as gpt2lib.train.get_batch pairs them"


@exercise("8.3", "the language-model loss", kind="implement",
          hint="F.cross_entropy takes raw logits [N, V] and labels [N]; the loss is a mean over tokens")
def check_lm_loss(loss_fn):
    """loss_fn(logits [B, T, V], labels [B, T]) -> scalar mean cross-entropy in nats."""
    from .ch06 import _tiny_hf_model

    hf = _tiny_hf_model(82)
    ids = torch.randint(0, 64, (2, 9), generator=seeded(82))
    with torch.no_grad():
        result = hf(ids, labels=ids)  # transformers shifts the labels itself
    logits, labels = result.logits[:, :-1], ids[:, 1:]  # [2, 8, 64], [2, 8]
    try:
        got = call(loss_fn, logits.clone(), labels.clone(), on="logits [2, 8, 64] and labels [2, 8]")
    except StudentError as e:
        if isinstance(e.__cause__, NotImplementedError):
            raise
        raise Mistake(f"{e}: cross_entropy wants [N, V] logits and [N] labels; flatten both "
                      f"with .view(-1, V) and .view(-1)") from None
    got = as_tensor(got, "the loss", like=logits)
    if got.numel() != 1:
        raise Mistake(f"return one number (the mean over tokens), got shape {list(got.shape)}")
    got, expected = float(got), float(result.loss)
    if abs(got - expected) <= 1e-4:
        return f"matches transformers' GPT-2 loss on the same logits ({expected:.2f} nats, ~ln 64)"
    flat, target = logits.reshape(-1, 64), labels.reshape(-1)
    if abs(got - float(F.cross_entropy(flat.softmax(-1), target))) <= 1e-4:
        raise Mistake("you passed probabilities to cross_entropy: it takes raw logits and applies "
                      "log_softmax itself")
    if abs(got - float(F.cross_entropy(flat, target, reduction="sum"))) <= 1e-3:
        raise Mistake(f"you summed over the {target.numel()} tokens: take the mean")
    if abs(got - float(F.cross_entropy(result.logits.reshape(-1, 64), ids.reshape(-1)))) <= 1e-4:
        raise Mistake("the loss was computed with unshifted labels; use the labels you were given")
    raise Mistake(f"your loss is {fmt(got)}, transformers' is {fmt(expected)} on the same logits")


@exercise("8.4", "learning-rate schedule", kind="implement",
          hint="three phases: a linear climb that is not 0 at step 0, half a cosine down to min_lr, then min_lr")
def check_lr_schedule(lr_fn):
    """lr_fn(step, *, max_lr, min_lr, warmup_steps, total_steps) -> float, as gpt2lib.train.lr_at."""
    kw = dict(max_lr=6e-4, min_lr=6e-5, warmup_steps=10, total_steps=110)
    steps = [0, 4, 9, 10, 35, 60, 85, 109, 110, 200]
    got = {step: _call_kw(lr_fn, step, kw) for step in steps}
    wrong = [step for step in steps if abs(got[step] - lr_at(step, **kw)) > 1e-9]
    if got[0] == 0:
        raise Mistake("at step 0 the rate is 0, so the first step is wasted: warm up with "
                      "max_lr * (step + 1) / warmup_steps")
    low = [step for step in steps if got[step] < kw["min_lr"] - 1e-12]
    if low:
        raise Mistake(f"at step {low[0]} the rate {got[low[0]]:.3g} fell below min_lr = {kw['min_lr']:g}: "
                      f"decay to min_lr, not to 0 (min_lr + 0.5 (1 + cos) (max_lr - min_lr))")
    for step in wrong:
        got_step, expected = got[step], lr_at(step, **kw)
        if step < kw["warmup_steps"]:
            raise Mistake(f"during warmup (step {step}) the rate is {got_step:.3g}, expected {expected:.3g}: "
                          f"climb linearly to max_lr")
        raise Mistake(f"at step {step} the rate is {got_step:.3g}, expected {expected:.3g}: after warmup "
                      f"follow half a cosine from max_lr down to min_lr, then stay at min_lr")
    return "matches gpt2lib.train.lr_at at 10 steps: warmup, cosine decay and after the end"


def _call_kw(fn, step, kw):
    try:
        got = fn(step, **kw)
    except NotImplementedError:
        raise
    except Exception as e:
        raise StudentError(f"your function raised {type(e).__name__} at step {step}: {e}") from e
    try:
        return float(got)
    except Exception:
        raise Mistake(f"return a number, got {type(got).__name__}") from None


@exercise("8.5", "predict: the loss before training", kind="predict",
          hint="a model that knows nothing: what cross-entropy (nats) over 50,257 tokens?")
def check_predict_initial_loss(prediction):
    """prediction: the loss of a freshly initialized GPT-2-sized model (within 0.5 nats)."""
    torch.manual_seed(84)
    model = GPT(SIZES["gpt2"].replace(n_layer=1, n_ctx=64)).eval()
    ids = torch.randint(0, 50257, (1, 33), generator=seeded(84))
    with torch.no_grad():
        loss = F.cross_entropy(model(ids[:, :-1])[0], ids[0, 1:])
    return judge(prediction, round(float(loss), 1), tolerance=0.5,
                 explain=f"ln(50257) = {math.log(50257):.2f}: untrained, the model spreads its "
                 f"probability almost evenly over the vocabulary")


STEP_LR = 0.5  # plain SGD with a large rate: a step's effect on the weights is far above float noise


def _tiny_pair(seed: int):
    """A transformers GPT-2 (its own initialization, no dropout) and gpt2lib's GPT loaded from its saved file."""
    import tempfile

    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    from ..loading import from_pretrained

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
                        attn_implementation="eager")
    hf = GPT2LMHeadModel(config)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # no progress bar or notice in the reader's notebook
    try:
        with tempfile.TemporaryDirectory() as directory:
            hf.save_pretrained(directory)
            ours = from_pretrained(directory)
    finally:
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)
    return hf.train(), ours.train()


def _reference_step(hf, window: torch.Tensor) -> float:
    """One SGD step of transformers' model on its own loss (it shifts the labels itself)."""
    from transformers.utils import logging as hf_logging

    hf.zero_grad()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # no notice about the default loss in the reader's notebook
    try:
        loss = hf(window, labels=window).loss
    finally:
        hf_logging.set_verbosity(verbosity)
    loss.backward()
    with torch.no_grad():
        for p in hf.parameters():
            p -= STEP_LR * p.grad
    return loss.item()


def _weight_diff(ours, hf) -> tuple[float, str]:
    """The largest difference between our weights (in transformers' layout) and transformers'; its name."""
    from ..loading import hf_state_dict

    theirs = hf.state_dict()
    diffs = {name: float((tensor - theirs[name]).abs().max()) for name, tensor in hf_state_dict(ours).items()}
    name = max(diffs, key=diffs.get)
    return diffs[name], name


@exercise("8.1", "one training step", kind="implement",
          hint="four calls, in the right order: clear the old gradients, the loss, the gradients, the update")
def check_training_step(train_step):
    """train_step(model, optimizer, x [B, T], y [B, T]) -> the batch's loss (a float), after one update."""
    hf, ours = _tiny_pair(85)
    before, _ = _weight_diff(ours, hf)
    if before > 1e-6:
        raise RuntimeError(f"gpt2lib's loaded weights differ from transformers' by {before:.2g}")
    optimizer = torch.optim.SGD(ours.parameters(), lr=STEP_LR)
    windows = torch.randint(0, 64, (2, 4, 13), generator=seeded(85))  # two steps of [B=4, T+1=13]
    for step, window in enumerate(windows):
        x, y = window[:, :-1], window[:, 1:]  # [B, T] each
        untouched = {name: p.detach().clone() for name, p in ours.named_parameters()}
        got = call(train_step, ours, optimizer, x.clone(), y.clone(), on=f"step {step} of a 2-layer model")
        expected = _reference_step(hf, window)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise Mistake(f"return the loss as a number (loss.item()), got {type(got).__name__}") from None
        if abs(got - expected) > 1e-4:
            raise Mistake(f"at step {step} your loss is {fmt(got)}, transformers' {fmt(expected)} on the same "
                          f"batch: the mean cross-entropy of the logits against y")
        if all(torch.equal(p, untouched[name]) for name, p in ours.named_parameters()):
            raise Mistake(f"at step {step} no weight changed: call optimizer.step() after loss.backward()")
        diff, name = _weight_diff(ours, hf)
        if diff > 1e-4:
            if step == 1:
                raise Mistake(f"the first step matches transformers', the second does not ({name} off by "
                              f"{fmt(diff)}): the first step's gradients were added to the second's; clear "
                              f"them with optimizer.zero_grad() before loss.backward()")
            raise Mistake(f"after step {step} {name} is off by {fmt(diff)} from transformers' step on the same "
                          f"batch: backpropagate this batch's loss, then step")
    return (f"two steps, loss and every weight vs transformers' GPT-2 on the same batches and file, "
            f"max |diff| <= 1e-4")
