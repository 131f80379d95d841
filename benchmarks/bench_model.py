"""gpt2lib vs transformers on a GPT-2 124M-sized model: forward time, generation speed, load memory.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_model.py [--runs 7] [--threads 2]

Random weights with GPT-2 small's shapes (GPT2Config() defaults) cost exactly what the real
ones cost; they are saved in Hugging Face format to a temporary directory and loaded by
both libraries. CPU, fp32, batch 1, torch.inference_mode for both, the same thread count.
Timings alternate between the two libraries and report the median, so that a busy
machine slows both alike. Prints a Markdown table for benchmarks/README.md.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import gpt2lib  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from machine import cpu_name  # noqa: E402

RSS_SCRIPT = """
import sys
import torch, safetensors, {module}
def kb(field):
    return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith(field)))
base = kb("VmRSS")
{load}
print(base, kb("VmHWM"))
"""
LOADERS = {
    "gpt2lib": ("gpt2lib", "gpt2lib.from_pretrained(sys.argv[1])"),
    "transformers": ("transformers", "transformers.GPT2LMHeadModel.from_pretrained(sys.argv[1])"),
}


def median_times(fns: dict, runs: int) -> dict:
    """Median seconds of each function, calls interleaved; one warm-up call each first."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_rss(library: str, directory: Path, threads: int) -> tuple[float, float]:
    """(increase over the post-import baseline, absolute peak) in MB, in a fresh process."""
    module, load = LOADERS[library]
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT.format(module=module, load=load), str(directory)],
                         capture_output=True, text=True, env=env, check=True).stdout.split()
    base, peak = int(out[-2]) * 1024 / 1e6, int(out[-1]) * 1024 / 1e6
    return peak - base, peak




def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="timed runs per forward measurement (median)")
    ap.add_argument("--gen-runs", type=int, default=3, help="timed runs per generation measurement (median)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config()).save_pretrained(directory)
        weights_mb = (directory / "model.safetensors").stat().st_size / 1e6
        ours = gpt2lib.from_pretrained(directory)
        hf = GPT2LMHeadModel.from_pretrained(directory).eval()  # default attention: sdpa
        g = torch.Generator().manual_seed(0)

        for T in (128, 1024):
            ids = torch.randint(0, 50257, (1, T), generator=g)
            with torch.inference_mode():
                t = median_times({"gpt2lib": lambda: ours(ids), "transformers": lambda: hf(ids).logits}, args.runs)
            rows.append((f"forward, {T} tokens: time gpt2lib / transformers (goal <= 1.0)",
                         f"{t['gpt2lib'] * 1e3:.1f} ms / {t['transformers'] * 1e3:.1f} ms",
                         f"**{t['gpt2lib'] / t['transformers']:.2f}**"))

        prompt = torch.randint(0, 50257, (1, 20), generator=g)
        n = 200
        results = {}

        def run(name, fn):
            def timed():
                results[name] = fn()
            return timed

        with torch.inference_mode():
            t = median_times({
                "gpt2lib": run("gpt2lib", lambda: gpt2lib.generate(ours, prompt[0], n, eos_id=None)),
                "transformers": run("transformers", lambda: hf.generate(
                    prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=n,
                    min_new_tokens=n, pad_token_id=50256)[0, 20:].tolist()),
                "no cache": run("no cache", lambda: gpt2lib.generate(ours, prompt[0], n, eos_id=None, use_cache=False)),
            }, args.gen_runs)
        same = results["gpt2lib"] == results["transformers"] == results["no cache"]
        tps = {name: n / seconds for name, seconds in t.items()}
        rows.append((f"greedy generate, {n} tokens after 20: gpt2lib / transformers tokens/s (goal >= 1.0)",
                     f"{tps['gpt2lib']:.1f} / {tps['transformers']:.1f} tokens/s",
                     f"**{tps['gpt2lib'] / tps['transformers']:.2f}x**"))
        rows.append(("greedy generate: gpt2lib with KV cache / without",
                     f"{tps['gpt2lib']:.1f} / {tps['no cache']:.1f} tokens/s",
                     f"{tps['gpt2lib'] / tps['no cache']:.2f}x"))
        rows.append(("same 200 token ids from all three", "yes" if same else "NO", ""))

        for library in LOADERS:
            increase, peak = peak_rss(library, directory, args.threads)
            goal = " (goal <= 1.5)" if library == "gpt2lib" else ""
            rows.append((f"load, {library}: peak RSS increase / weights file{goal}",
                         f"{increase:.0f} MB / {weights_mb:.0f} MB (absolute peak {peak:.0f} MB)",
                         f"**{increase / weights_mb:.2f}**" if goal else f"{increase / weights_mb:.2f}"))

    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} torch threads; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.")
    print(f"Versions: Python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, gpt2lib {gpt2lib.__version__}.\n")
    print("| measurement | numbers | ratio |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
