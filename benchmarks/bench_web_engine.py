"""The book's live mode: one forward pass of the bundled model in node (engine.js) against
gpt2lib in PyTorch (fp32, one thread), and the size of the files the page loads for it.

    python benchmarks/bench_web_engine.py          # about a minute

The JavaScript side runs the same files the built book serves (scripts/export_web_model.py
writes them into a temporary folder); each time is the best of 5 after one warm-up run,
with the next-token logits (the sampling view's work; the attention view skips them).
Chromium's time is printed by tests/test_book_live_text.py.
"""

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import export_web_model  # noqa: E402

import gpt2lib  # noqa: E402

LENGTHS = [16, 64, 256]
DRIVER = r"""
const fs = require("fs"), vm = require("vm"), path = require("path");
const [dir, lengths] = [process.argv[2], JSON.parse(process.argv[3])];
let t0 = performance.now();
for (const f of ["bpe.js", "engine.js", "viewdata.js", "tokenizer.js", "gpt2-shakespeare.js"]) {
  vm.runInThisContext(fs.readFileSync(path.join(dir, f), "utf8"), {filename: f});
}
const model = G2VWeb.loadModel(G2VWeb.weights), load = performance.now() - t0, out = {load_ms: load, ms: {}};
for (const T of lengths) {
  const ids = Array.from({length: T}, (_, i) => (i * 7919) % 50000), times = [];
  for (let r = 0; r < 6; r++) { t0 = performance.now(); model.forward(ids, {logits: "last"}); times.push(performance.now() - t0); }
  out.ms[T] = Math.min(...times.slice(1));
}
console.log(JSON.stringify(out));
"""


def torch_ms(model, T: int) -> float:
    ids = torch.tensor([[(i * 7919) % 50000 for i in range(T)]])
    times = []
    with torch.no_grad():
        for _ in range(6):
            start = time.perf_counter()
            model(ids)
            times.append(time.perf_counter() - start)
    return 1000 * min(times[1:])


def main() -> None:
    node = shutil.which("node") or "/usr/bin/node"
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        sizes = export_web_model.export(Path(tmp))
        (Path(tmp) / "driver.js").write_text(DRIVER)
        done = subprocess.run([node, str(Path(tmp) / "driver.js"), tmp, json.dumps(LENGTHS)],
                              capture_output=True, text=True, check=True)
        js = json.loads(done.stdout)
    model = gpt2lib.from_pretrained(gpt2lib.BUNDLED_MODEL).eval()
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"node {version}, torch {torch.__version__} (1 thread); load + decode of the weights in node: {js['load_ms']:.0f} ms")
    print("| tokens | engine.js in node (ms) | gpt2lib, torch fp32 (ms) |")
    print("|---:|---:|---:|")
    for T in LENGTHS:
        print(f"| {T} | {js['ms'][str(T)]:.0f} | {torch_ms(model, T):.1f} |")
    print("files the page loads in live mode: " + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items()))


if __name__ == "__main__":
    main()
