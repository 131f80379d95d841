"""Training a GPT: next-token prediction, AdamW, warmup and cosine decay, clipping.

The recipe is GPT-2's and GPT-3's (Radford et al. 2019; Brown et al. 2020, appendix
B: AdamW with betas (0.9, 0.95), weight decay 0.1 on matrices only, linear warmup
then cosine decay, gradients clipped to norm 1.0), written as in Karpathy's
nanoGPT/train.py. AdamW is Loshchilov & Hutter (2019), "Decoupled Weight Decay
Regularization". Given the same seed and the same number of threads, a run is
reproducible step for step on the same machine kind.
"""

import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TrainConfig:
    """The knobs of one training run (defaults: the bundled model's recipe)."""

    steps: int = 800  # optimizer steps
    batch_size: int = 8  # sequences per step
    block_size: int = 256  # tokens per sequence (at most the model's n_ctx)
    max_lr: float = 2e-3
    min_lr: float = 2e-4  # the cosine ends here
    warmup_steps: int = 80
    weight_decay: float = 0.1  # on 2-D weights only
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    eval_interval: int = 80  # validate every this many steps (and after the last)
    eval_batches: int = 8  # fixed validation batches per estimate
    seed: int = 1337


@dataclass
class History:
    """What happened during training: one dict per step, in order.

    Each record has step, lr, train_loss (the batch's loss before the update),
    grad_norm (before clipping), tokens (seen so far), seconds (since the start)
    and val_loss (None except at validation steps). Losses are in nats/token.
    """

    records: list[dict] = field(default_factory=list)

    def column(self, key: str) -> list:
        return [r[key] for r in self.records]

    def validations(self) -> list[dict]:
        """The records at which the validation loss was measured."""
        return [r for r in self.records if r["val_loss"] is not None]


def get_batch(data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator):
    """Random contiguous windows of a 1-D token tensor: inputs x and labels y, both [B, T].

    y is x shifted left by one: the label at position t is the token that follows
    x[:, t]. data=[5, 6, 7, 8, 9], block_size=3, a window starting at 1 gives
    x=[6, 7, 8], y=[7, 8, 9].
    """
    if data.dim() != 1 or len(data) < block_size + 1:
        raise ValueError(f"need a 1-D tensor of at least block_size + 1 = {block_size + 1} tokens, "
                         f"got shape {tuple(data.shape)}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # [B]
    x = torch.stack([data[s : s + block_size] for s in starts.tolist()])  # [B, T]
    y = torch.stack([data[s + 1 : s + 1 + block_size] for s in starts.tolist()])  # [B, T]
    return x.long(), y.long()


def lr_at(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate at a 0-based step: linear warmup, then cosine decay to min_lr.

    Steps 0 .. warmup_steps-1 climb linearly to max_lr (step 0 already gets
    max_lr / warmup_steps, never 0); from warmup_steps to total_steps the rate follows
    half a cosine from max_lr down to min_lr, and stays at min_lr afterwards.
    """
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, betas) -> torch.optim.AdamW:
    """AdamW with weight decay on the 2-D weights (matmuls, embeddings) only.

    Biases and layer-norm gains are 1-D: decaying them towards 0 only hurts.
    """
    params = [p for p in model.parameters() if p.requires_grad]  # tied weights appear once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next-token predictions, in nats/token. x, y: [B, T]."""
    logits = model(x)  # [B, T, V]
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())  # [B*T, V] vs [B*T]


def fixed_batches(data: torch.Tensor, n_batches: int, batch_size: int, block_size: int, seed: int):
    """The same n_batches (x, y) pairs every time: for comparable validation estimates."""
    generator = torch.Generator().manual_seed(seed)
    return [get_batch(data, batch_size, block_size, generator) for _ in range(n_batches)]


@torch.no_grad()
def estimate_loss(model: nn.Module, batches) -> float:
    """Average loss over a list of (x, y) batches, in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    losses = [loss_fn(model, x, y).item() for x, y in batches]
    model.train(was_training)
    return sum(losses) / len(losses)


@torch.no_grad()
def evaluate_loss(model: nn.Module, ids, block_size: int, batch_size: int = 8) -> float:
    """Loss over a whole token sequence, in nats/token: every token after the first is predicted once.

    The sequence is cut into consecutive windows of block_size + 1 tokens that overlap
    by one (x = window[:-1], y = window[1:]); a token's context is what precedes it in
    its window. ids: list of ints or 1-D tensor -> a float, the mean over all targets.
    """
    ids = torch.as_tensor(ids, dtype=torch.long)
    starts = list(range(0, len(ids) - 1, block_size))
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        group = starts[i : i + batch_size]
        length = min(block_size, len(ids) - 1 - group[-1])  # the last window may be shorter
        full = [s for s in group if len(ids) - 1 - s >= block_size] if length < block_size else group
        for chunk, T in ((full, block_size), ([group[-1]] if length < block_size else [], length)):
            if not chunk:
                continue
            x = torch.stack([ids[s : s + T] for s in chunk])  # [b, T]
            y = torch.stack([ids[s + 1 : s + 1 + T] for s in chunk])  # [b, T]
            total += loss_fn(model, x, y).item() * y.numel()
            count += y.numel()
    model.train(was_training)
    return total / count


def clip_gradients(model: nn.Module, max_norm: float) -> float:
    """Scale all gradients down together so their global L2 norm is at most max_norm.

    Returns the norm before clipping (a useful thing to log: spikes mean trouble).
    """
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm <= 0:
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item()
    return nn.utils.clip_grad_norm_(params, max_norm).item()


def train(model: nn.Module, train_data: torch.Tensor, val_data: torch.Tensor, config: TrainConfig,
          *, progress: bool = True, callback=None) -> History:
    """Train model in place on 1-D token tensors; return the History.

    callback(record, model), if given, is called after every validation (e.g. to
    save a checkpoint). The progress bar is the only output.
    """
    from tqdm.auto import tqdm

    if config.block_size > model.config.n_ctx:
        raise ValueError(f"block_size={config.block_size} exceeds the model's n_ctx={model.config.n_ctx}")
    generator = torch.Generator().manual_seed(config.seed)
    val_batches = fixed_batches(val_data, config.eval_batches, config.batch_size, config.block_size, config.seed + 1)
    optimizer = make_optimizer(model, config.max_lr, config.weight_decay, config.betas)
    history, start = History(), time.perf_counter()
    model.train()
    bar = tqdm(range(config.steps), disable=not progress, desc="training")
    for step in bar:
        lr = lr_at(step, max_lr=config.max_lr, min_lr=config.min_lr,
                   warmup_steps=config.warmup_steps, total_steps=config.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, config.batch_size, config.block_size, generator)
        loss = loss_fn(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_gradients(model, config.grad_clip)
        optimizer.step()
        last = step == config.steps - 1
        val_loss = None
        if (step + 1) % config.eval_interval == 0 or last:
            val_loss = estimate_loss(model, val_batches)
        record = {"step": step, "lr": lr, "train_loss": loss.item(), "grad_norm": grad_norm,
                  "tokens": (step + 1) * config.batch_size * config.block_size,
                  "seconds": time.perf_counter() - start, "val_loss": val_loss}
        history.records.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{val_loss:.3f}" if val_loss else "-")
        if val_loss is not None and callback is not None:
            callback(record, model)
    model.eval()
    return history


def config_dict(config: TrainConfig) -> dict:
    """The config as a JSON-friendly dict (for logs and model cards)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
