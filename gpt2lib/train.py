"""Training a GPT: next-token prediction, AdamW, warmup and cosine decay, clipping.

The recipe is GPT-2's and GPT-3's (Radford et al. 2019; Brown et al. 2020, appendix
B: AdamW with betas (0.9, 0.95), weight decay 0.1 on matrices only, linear warmup
then cosine decay, gradients clipped to norm 1.0), written as in Karpathy's
nanoGPT/train.py. AdamW is Loshchilov & Hutter (2019), "Decoupled Weight Decay
Regularization". Given the same seed and the same number of threads, a run is
reproducible step for step on the same machine kind.

The same loop runs at the machine's speed and past one machine: bf16 autocast
(fp32 master weights; GPUs and CPUs with AVX-512 run it 1.7-3x as fast; see bf16_is_fast),
checkpoints that a stopped run resumes from, and torch.distributed data
parallelism (DDP; launched with torchrun, gloo on CPUs, nccl on GPUs).
"""

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
    bf16: bool = False  # bf16 autocast for the forward pass and the loss; weights stay fp32
    checkpoint_interval: int = 0  # with a checkpoint_dir: save the run's state every this many steps
    repeat_fraction: float = 0.0  # share of windows whose second half repeats the first (a curriculum)

    def __post_init__(self):
        positive = ("steps", "batch_size", "block_size", "eval_interval", "eval_batches")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "checkpoint_interval", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("max_lr", "min_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {value!r}")
        if self.max_lr == 0 or self.min_lr > self.max_lr:
            raise ValueError(f"need 0 <= min_lr <= max_lr and max_lr > 0, got min_lr={self.min_lr}, "
                             f"max_lr={self.max_lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        if not 0 <= self.repeat_fraction <= 1:
            raise ValueError(f"TrainConfig.repeat_fraction must be in [0, 1], got {self.repeat_fraction!r}")


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
    check_token_data(data, block_size)
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # [B]
    x = torch.stack([data[s : s + block_size] for s in starts.tolist()])  # [B, T]
    y = torch.stack([data[s + 1 : s + 1 + block_size] for s in starts.tolist()])  # [B, T]
    return x.long(), y.long()


def check_token_data(data: torch.Tensor, block_size: int, name: str = "data") -> None:
    """Token data must be a 1-D integer tensor longer than one window: say so plainly."""
    if not isinstance(data, torch.Tensor) or data.dim() != 1 or len(data) < block_size + 1:
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"{name}: need a 1-D tensor of at least block_size + 1 = {block_size + 1} token ids, "
                         f"got {shape}")
    if data.dtype.is_floating_point or data.dtype.is_complex or data.dtype == torch.bool:
        raise ValueError(f"{name}: token ids must be integers, got dtype {data.dtype} "
                         "(convert with .long() only if the values are whole numbers)")


def repeat_windows(x: torch.Tensor, y: torch.Tensor, fraction: float, generator: torch.Generator):
    """Turn a share of the windows into a passage followed by the same passage again.

    In the second copy every next token can be read off the first: attention heads
    that find the earlier occurrence and copy what came after it (induction heads)
    lower the loss there, so they form early. x, y: [B, T] -> the same shapes.
    """
    if fraction == 0:
        return x, y
    B, T = x.shape
    chosen = (torch.rand(B, generator=generator) < fraction).nonzero().flatten().tolist()
    window = torch.cat([x, y[:, -1:]], dim=1)  # [B, T + 1]
    half = (T + 2) // 2
    for b in chosen:
        window[b] = window[b, :half].repeat(2)[: T + 1]  # [T + 1]
    return window[:, :-1], window[:, 1:]  # [B, T] each


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


def bf16_is_fast(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 autocast makes a training step faster than fp32 on this device.

    GPUs: those with bf16 support (Ampere and later). CPUs: those for which torch picks
    its AVX-512 kernels (oneDNN runs bf16 products natively with AVX512-BF16 or AMX).
    On a CPU with AVX2 only, bf16 is emulated: a step of the bundled model's recipe
    measured 18x slower than fp32 (benchmarks/README.md), so use fp32 there.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    return False


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """Mean cross-entropy of the next-token predictions, in nats/token. x, y: [B, T].

    With bf16=True the matrix products and the log-softmax over the vocabulary run in
    bfloat16 (in a small model the vocabulary's log-softmax costs as much as the
    blocks); the weights, their gradients and the mean loss stay fp32.
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(x)  # [B, T, V], bf16 under autocast
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")  # [B*T]
    return losses.float().mean()  # the mean in fp32: bf16 would round it to 3 digits


def fixed_batches(data: torch.Tensor, n_batches: int, batch_size: int, block_size: int, seed: int):
    """The same n_batches (x, y) pairs every time: for comparable validation estimates."""
    generator = torch.Generator().manual_seed(seed)
    return [get_batch(data, batch_size, block_size, generator) for _ in range(n_batches)]


@torch.no_grad()
def estimate_loss(model: nn.Module, batches) -> float:
    """Average loss over a list of (x, y) batches, in eval mode (no dropout), in fp32."""
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
          *, progress: bool = True, callback=None, checkpoint_dir=None) -> History:
    """Train model in place on 1-D token tensors; return the History.

    callback(record, model), if given, is called after every validation (e.g. to
    measure the heads). With checkpoint_dir, the run's whole state is saved there every
    config.checkpoint_interval steps and at the end, and a run that finds a checkpoint
    there continues from it. Under torch.distributed each process takes its share of
    every batch and DDP averages the gradients. The progress bar is the only output.
    """
    from tqdm.auto import tqdm

    if config.block_size > model.config.n_ctx:
        raise ValueError(f"block_size={config.block_size} exceeds the model's n_ctx={model.config.n_ctx}")
    check_token_data(train_data, config.block_size, "train_data")
    check_token_data(val_data, config.block_size, "val_data")
    rank, world = distributed_rank()
    if config.batch_size % world:
        raise ValueError(f"batch_size={config.batch_size} must be a multiple of the {world} processes")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(config.seed)  # the data order
    val_batches = fixed_batches(val_data, config.eval_batches, config.batch_size, config.block_size, config.seed + 1)
    optimizer = make_optimizer(model, config.max_lr, config.weight_decay, config.betas)
    history = History()
    first_step = 0 if checkpoint_dir is None else load_checkpoint(checkpoint_dir, model, optimizer, generator,
                                                                  history, config)
    net = wrap_distributed(model)  # the model itself in a single process
    start = time.perf_counter() - (history.records[-1]["seconds"] if history.records else 0.0)
    model.train()
    bar = tqdm(range(first_step, config.steps), disable=not progress or rank != 0, desc="training",
               initial=first_step, total=config.steps)
    for step in bar:
        lr = lr_at(step, max_lr=config.max_lr, min_lr=config.min_lr,
                   warmup_steps=config.warmup_steps, total_steps=config.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, config.batch_size, config.block_size, generator)  # [B, T] each
        x, y = repeat_windows(x, y, config.repeat_fraction, generator)
        x, y = x.chunk(world)[rank].to(device), y.chunk(world)[rank].to(device)  # [B / world, T]
        loss = loss_fn(net, x, y, config.bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: gradients averaged over the processes
        grad_norm = clip_gradients(model, config.grad_clip)
        check_finite(step, loss.item(), grad_norm, lr)
        optimizer.step()
        last = step == config.steps - 1
        val_loss = None
        if (step + 1) % config.eval_interval == 0 or last:
            val_loss = estimate_loss(model, val_batches)
        record = {"step": step, "lr": lr, "train_loss": mean_over_processes(loss), "grad_norm": grad_norm,
                  "tokens": (step + 1) * config.batch_size * config.block_size,
                  "seconds": time.perf_counter() - start, "val_loss": val_loss}
        history.records.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val=f"{val_loss:.3f}" if val_loss else "-")
        if val_loss is not None and callback is not None and rank == 0:
            callback(record, model)
        interval = config.checkpoint_interval or config.steps
        if checkpoint_dir is not None and rank == 0 and ((step + 1) % interval == 0 or last):
            save_checkpoint(checkpoint_dir, model, optimizer, generator, history, config)
    model.eval()
    return history


def check_finite(step: int, loss: float, grad_norm: float, lr: float) -> None:
    """Stop before an update that would put NaN or inf into the weights."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return
    raise FloatingPointError(
        f"step {step}: loss {loss}, gradient norm {grad_norm} (learning rate {lr:.3g}): training would "
        "write non-finite numbers into the weights, so it stopped before the update. Check the weights "
        "and the data for NaN or inf; if they are finite, lower max_lr.")


# --- running on several processes (torchrun) -------------------------------------------------

def init_distributed() -> tuple[int, int]:
    """Join the process group that torchrun describes in the environment: gloo on CPUs, nccl on GPUs.

    Returns (rank, world_size); (0, 1) when the script was not started by torchrun.
    """
    import torch.distributed as dist

    if "RANK" not in os.environ or dist.is_initialized():
        return distributed_rank()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    return distributed_rank()


def distributed_rank() -> tuple[int, int]:
    """(rank, world_size) of this process; (0, 1) without torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def wrap_distributed(model: nn.Module) -> nn.Module:
    """DDP around the model when several processes train it; the model itself otherwise."""
    if distributed_rank()[1] == 1:
        return model
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def mean_over_processes(loss: torch.Tensor) -> float:
    """The batch's loss averaged over the processes (each saw its share of the batch)."""
    import torch.distributed as dist

    if distributed_rank()[1] == 1:
        return loss.item()
    total = loss.detach().clone()
    dist.all_reduce(total)
    return total.item() / dist.get_world_size()


# --- checkpoints: a stopped run continues where it was ------------------------------------------

STATE_FILE = "train_state.pt"


def save_checkpoint(directory, model: nn.Module, optimizer, generator: torch.Generator, history: History,
                    config: TrainConfig) -> Path:
    """Write everything a run needs to continue to directory/train_state.pt, atomically.

    Model, optimizer moments, the data order's generator, torch's RNG (dropout), the
    history and both configs. The file is written under a temporary name and renamed:
    a save that fails leaves the previous checkpoint, never half of a new one.
    """
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    state = {"format": 1, "train_config": config_dict(config), "model_config": asdict(model.config),
             "step": len(history.records), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
             "history": history.records}
    path, temporary = directory / STATE_FILE, directory / (STATE_FILE + ".partial")
    try:
        with open(temporary, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def load_checkpoint(directory, model: nn.Module, optimizer, generator: torch.Generator, history: History,
                    config: TrainConfig) -> int:
    """Restore a run saved by save_checkpoint into model, optimizer, generator and history.

    Returns the step to continue from: 0 when directory holds no checkpoint. A
    checkpoint of another config, or one that cannot be read, is an error, never a
    silent fresh start. Loaded with weights_only=True: no code in the file runs.
    """
    path = Path(directory).expanduser() / STATE_FILE
    if not path.exists():
        return 0
    fix = f"delete {path} to start afresh, or give another checkpoint_dir"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != 1:
            raise ValueError("not a gpt2lib training checkpoint")
    except Exception as error:  # torch raises many kinds for a damaged zip or pickle
        raise ValueError(f"{path} cannot be resumed from: it is damaged or not a gpt2lib training checkpoint "
                         f"({type(error).__name__}; see the chained error): {fix}") from error
    wanted = {"train_config": config_dict(config), "model_config": asdict(model.config)}
    for key, expected in wanted.items():
        saved = state[key]
        differ = sorted(k for k in expected.keys() | saved.keys() if expected.get(k) != saved.get(k))
        if differ:
            details = ", ".join(f"{k}: saved {saved.get(k)!r}, now {expected.get(k)!r}" for k in differ)
            raise ValueError(f"{path} belongs to another run ({key} differs: {details}): {fix}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    history.records[:] = state["history"]
    return state["step"]


def config_dict(config: TrainConfig) -> dict:
    """The config as a JSON-friendly dict (for logs and model cards)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
