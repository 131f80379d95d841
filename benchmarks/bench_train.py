"""Training speed of the bundled model's recipe: tokens/s of one step, fp32 vs bf16, gpt2lib vs transformers.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_train.py [--runs 7] [--threads 2]

One training step = forward, loss, backward, gradient clipping and an AdamW update, on a
batch of the recipe's shape (16 windows of 256 tokens) with the config of gpt2-shakespeare
(scripts/train_shakespeare.py). gpt2lib's step is the one gpt2lib.train.train runs;
transformers' GPT2LMHeadModel, filled with the same weights, runs the same step with its
own loss (labels=) under the same autocast setting, with its default attention (sdpa). Steps alternate between the four
variants and the median is reported, so that background load slows all alike. Prints a
Markdown table for benchmarks/README.md.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from machine import cpu_name  # noqa: E402
from train_shakespeare import MODEL_CONFIG, TRAIN_CONFIG  # noqa: E402

import gpt2lib  # noqa: E402
from gpt2lib.train import bf16_is_fast, clip_gradients, loss_fn, make_optimizer  # noqa: E402


def gpt2lib_step(model, optimizer, x, y, bf16: bool):
    def step():
        loss = loss_fn(model, x, y, bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model, TRAIN_CONFIG.grad_clip)
        optimizer.step()
    return step


def transformers_step(model, optimizer, x, y, bf16: bool):
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=x, labels=x).loss  # labels are shifted inside: y = x[:, 1:]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN_CONFIG.grad_clip)
        optimizer.step()
    return step


def transformers_model(model):
    """transformers' GPT2LMHeadModel with the model's weights, its default attention, in train mode."""
    import transformers
    from gpt2lib.loading import hf_config, hf_state_dict

    fields = {k: v for k, v in hf_config(model.config).items() if k not in ("model_type", "architectures", "dtype")}
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**fields))
    missing, unexpected = hf.load_state_dict(hf_state_dict(model, torch.float32), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    hf.loss_type = "ForCausalLM"
    return hf.train()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="timed steps per variant (median)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    torch.manual_seed(0)
    B, T = TRAIN_CONFIG.batch_size, TRAIN_CONFIG.block_size
    x = torch.randint(0, MODEL_CONFIG.n_vocab, (B, T + 1))
    x, y = x[:, :-1], x[:, 1:]  # [B, T] each
    steps = {}
    for bf16 in (False, True):
        ours = gpt2lib.GPT(MODEL_CONFIG).train()
        theirs = transformers_model(ours)
        name = "bf16 autocast" if bf16 else "fp32"
        steps[f"gpt2lib, {name}"] = gpt2lib_step(ours, make_optimizer(ours, 1e-4, 0.1, (0.9, 0.95)), x, y, bf16)
        steps[f"transformers, {name}"] = transformers_step(theirs, make_optimizer(theirs, 1e-4, 0.1, (0.9, 0.95)),
                                                           x, y, bf16)

    times = {name: [] for name in steps}
    for step in steps.values():
        step()  # warm-up
    for _ in range(args.runs):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}

    print(f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs ({torch.backends.cpu.get_cpu_capability()} kernels; "
          f"bf16_is_fast: {bf16_is_fast('cpu')}), {args.threads} torch threads, "
          f"{platform.system()} {platform.machine()}. Versions: Python {platform.python_version()}, "
          f"torch {torch.__version__}, transformers {transformers.__version__}.")
    print(f"Config: n_layer={MODEL_CONFIG.n_layer}, n_embd={MODEL_CONFIG.n_embd}, n_head={MODEL_CONFIG.n_head}, "
          f"{ours.num_parameters():,} parameters; batch {B} x {T} tokens; median of {args.runs} steps.\n")
    print("| training step | seconds | tokens/s | speed vs gpt2lib fp32 | speed vs transformers, same precision |")
    print("|---|---:|---:|---:|---:|")
    base = median["gpt2lib, fp32"]
    for name, seconds in median.items():
        precision = name.split(", ")[1]
        other = median[f"transformers, {precision}"]
        print(f"| {name} | {seconds:.3f} | {B * T / seconds:,.0f} | {base / seconds:.2f}x | "
              f"{other / seconds:.2f}x |")


if __name__ == "__main__":
    main()
