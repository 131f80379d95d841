"""Decoding at the memory-bandwidth limit: fp32, bf16 and int8 against transformers, and batching.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_decode.py [--runs 3] [--threads 2]

A model with GPT-2 124M's shapes and random weights (they cost what the real ones cost)
is saved by transformers and loaded by both libraries. Greedy decoding, CPU, the same
thread count for both. Each decoding step with the KV cache reads every weight once,
so tokens/s is bounded by bandwidth / bytes of weights; the bandwidth is measured here
by summing a 1 GB tensor (a read of known size), and each row reports the fraction of
that bound reached. Timings alternate between the variants and report the median, so
that a busy machine slows all of them alike. Prints Markdown tables for benchmarks/README.md.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import gpt2lib  # noqa: E402
from gpt2lib.quantize import Int8Linear, quantize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import median_times  # noqa: E402
from machine import cpu_name  # noqa: E402


def read_bandwidth(threads: int, gigabytes: float = 1.0) -> float:
    """Bytes/s of reading a large float32 tensor once (torch.sum), best of 5."""
    x = torch.ones(int(gigabytes * 1e9 / 4))
    assert float(x.sum()) == x.numel()  # the read really happened: the sum of ones is known
    best = min(_seconds(lambda: x.sum()) for _ in range(5))
    return x.numel() * 4 / best


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bytes_per_token(model) -> int:
    """Bytes a decoding step reads: every linear layer's weights (the LM head included), once."""
    total = 0
    for module in model.modules():
        if isinstance(module, Int8Linear):
            total += module.weight_int8.numel() + module.scale.numel() * module.scale.element_size()
        elif isinstance(module, nn.Linear):
            total += module.weight.numel() * module.weight.element_size()
        elif type(module).__name__ == "Linear" and hasattr(module, "_packed_params"):  # torch's dynamic int8
            w, _ = module._packed_params._weight_bias()
            total += w.numel()  # 1 byte each
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement (median)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=100, help="new tokens per generation")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*deprecated.*")  # torch's quantized tensor types

    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    bandwidth = read_bandwidth(args.threads)
    n = args.tokens
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config()).save_pretrained(directory)
        fp32 = gpt2lib.from_pretrained(directory)
        hf = GPT2LMHeadModel.from_pretrained(directory).eval()  # default attention: sdpa
        models = {"gpt2lib fp32": fp32} | {f"gpt2lib {kind}": quantize(fp32, kind)
                                            for kind in ("bf16", "int8", "int8-dynamic")}
        prompt = torch.randint(0, 50257, (20,), generator=torch.Generator().manual_seed(0)).tolist()
        results = {}

        def run(name, fn):
            def timed():
                results[name] = fn()
            return timed

        fns = {name: run(name, lambda m=m: gpt2lib.generate(m, prompt, n, eos_id=None)) for name, m in models.items()}
        fns["transformers fp32"] = run("transformers fp32", lambda: hf.generate(
            torch.tensor([prompt]), attention_mask=torch.ones(1, 20, dtype=torch.long), do_sample=False,
            max_new_tokens=n, min_new_tokens=n, pad_token_id=50256)[0, 20:].tolist())
        with torch.inference_mode():
            t = median_times(fns, args.runs)

        rows = []
        for name, seconds in t.items():
            model = models.get(name, fp32)
            nbytes = bytes_per_token(model)
            limit = bandwidth / nbytes
            agree = next((i for i, (a, b) in enumerate(zip(results[name], results["gpt2lib fp32"])) if a != b), n)
            rows.append((name, f"{n / seconds:.1f}", f"{seconds / t['transformers fp32']:.2f}",
                         f"{nbytes / 1e6:.0f} MB", f"{limit:.1f}", f"{n / seconds / limit:.0%}", f"{agree} of {n}"))

        batch_rows = []
        lengths = [20, 7, 15, 3, 11, 18, 5, 9]
        for B in (1, 4, 16):
            prompts = [prompt[:lengths[b % len(lengths)]] for b in range(B)]
            padded = max(map(len, prompts))
            ids = torch.tensor([[50256] * (padded - len(p)) + p for p in prompts])  # [B, T], left-padded
            mask = torch.tensor([[0] * (padded - len(p)) + [1] * len(p) for p in prompts])
            k = 50
            bfns = {"gpt2lib": run("b ours", lambda: gpt2lib.generate(fp32, prompts, k, eos_id=None)),
                    "transformers": run("b hf", lambda: hf.generate(
                        ids, attention_mask=mask, do_sample=False, max_new_tokens=k, min_new_tokens=k,
                        pad_token_id=50256)[:, padded:].tolist())}
            with torch.inference_mode():
                bt = median_times(bfns, args.runs)
            same = results["b ours"] == results["b hf"]
            batch_rows.append((B, f"{B * k / bt['gpt2lib']:.1f}", f"{B * k / bt['transformers']:.1f}",
                               f"{bt['gpt2lib'] / bt['transformers']:.2f}", "yes" if same else "NO"))

    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} torch threads; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.")
    print(f"Versions: Python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, gpt2lib {gpt2lib.__version__}.")
    print(f"Measured read bandwidth: {bandwidth / 1e9:.1f} GB/s.\n")
    print(f"Greedy decoding, {n} tokens after a 20-token prompt, batch 1:\n")
    print("| model | tokens/s | time vs transformers fp32 | weights read per token | bandwidth limit, tokens/s "
          "| fraction of the limit | greedy ids equal to fp32's |\n|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nBatched greedy decoding, fp32, 50 new tokens per prompt, prompts of 3-20 tokens left-padded:\n")
    print("| batch | gpt2lib tokens/s | transformers tokens/s | time gpt2lib / transformers | same ids |\n"
          "|---:|---:|---:|---:|---|")
    for row in batch_rows:
        print("| " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
