"""Encode throughput of gpt2lib's tokenizer vs tiktoken and transformers, and BPE training time.

Text: the docstrings of Python's standard library (ast.get_docstring over the .py files
of sysconfig's "stdlib" directory, in sorted path order), joined by blank lines and cut
at 1,000,000 characters: English prose with some code and numbers, available offline.
All three tokenizers are built from gpt2lib/data/gpt2-tokenizer/ and must agree on every
id. Single thread: RAYON_NUM_THREADS=1 for the Rust tokenizers; best of --repeat runs.

    python benchmarks/bench_tokenizer.py            # prints a Markdown table
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers/tiktoken start their thread pools
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import ast  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

from gpt2lib.tokenizer import GPT2_DIR, Tokenizer, hf_tokenizer, tiktoken_encoding, train_bpe  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from machine import cpu_name  # noqa: E402


def stdlib_docstrings(n_chars: int) -> str:
    """The first n_chars characters of the standard library's docstrings."""
    docs, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    docs.append(doc)
                    total += len(doc) + 2
        if total >= n_chars:
            break
    return "\n\n".join(docs)[:n_chars]


def best_time(fn, repeat: int):
    """(fastest wall time in seconds, result of the last call)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--merges", type=int, default=1000)
    args = parser.parse_args()

    text = stdlib_docstrings(args.chars)
    n_bytes = len(text.encode("utf-8"))
    tt, hf = tiktoken_encoding(), hf_tokenizer()
    rust = hf.backend_tokenizer  # the tokenizers (Rust) object behind transformers' fast tokenizer

    cold, warm = Tokenizer.load(GPT2_DIR), Tokenizer.load(GPT2_DIR)

    def ours_cold():  # the word cache starts empty on every run
        cold._cache.clear()
        return cold.encode_ordinary(text)

    warm.encode_ordinary(text)
    rows = [
        ("gpt2lib, empty word cache", *best_time(ours_cold, args.repeat)),
        ("gpt2lib, warm word cache", *best_time(lambda: warm.encode_ordinary(text), args.repeat)),
        ("tiktoken (Rust)", *best_time(lambda: tt.encode_ordinary(text), args.repeat)),
        ("transformers fast = tokenizers (Rust)", *best_time(lambda: rust.encode(text, add_special_tokens=False).ids, args.repeat)),
    ]
    ids = rows[2][2]
    for name, _, result in rows:
        if result != ids:
            raise SystemExit(f"{name} disagrees with tiktoken on the benchmark text")
    load_s, _ = best_time(lambda: Tokenizer.load(GPT2_DIR), 1)
    train_s, trained = best_time(lambda: train_bpe(text, 257 + args.merges), 1)

    by_name = {name: seconds for name, seconds, _ in rows}
    print(f"Text: {len(text):,} characters ({n_bytes:,} UTF-8 bytes) of Python {platform.python_version()} stdlib docstrings, {len(ids):,} GPT-2 tokens; all tokenizers agree on every id.")
    print(f"Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()}; single thread, best of {args.repeat}.")
    print(f"Versions: Python {platform.python_version()}, regex {version('regex')}, tiktoken {version('tiktoken')}, tokenizers {version('tokenizers')}, transformers {version('transformers')}.\n")
    print("| tokenizer | seconds | tokens/s | MB/s | time vs tiktoken | time vs tokenizers |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, seconds, _ in rows:
        ratio_tt = seconds / by_name["tiktoken (Rust)"]
        ratio_hf = seconds / by_name["transformers fast = tokenizers (Rust)"]
        print(f"| {name} | {seconds:.3f} | {len(ids) / seconds:,.0f} | {n_bytes / seconds / 1e6:.2f} | {ratio_tt:.2f}x | {ratio_hf:.2f}x |")
    print(f"\nLoading GPT-2's vocab.json + merges.txt into gpt2lib: {load_s:.2f} s.")
    print(f"Training: train_bpe on the same text learned {len(trained.merges):,} merges in {train_s:.1f} s ({train_s / len(trained.merges) * 1000:.1f} ms per merge).")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
