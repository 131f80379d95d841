"""Execute the chapter notebooks in place, top to bottom, offline, and time each one.

    .venv/bin/python scripts/execute_notebooks.py                      # every chapter
    .venv/bin/python scripts/execute_notebooks.py notebooks/04_attention.ipynb

Notebooks are committed executed (nbval and the book use the stored outputs), so run
this after changing a chapter or the package code it shows.
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_PER_CELL = 300


# Figures at 2x: matplotlib's inline backend saves "retina" PNGs at twice the pixels and
# records their size in CSS pixels, so the book shows them sharp on HiDPI screens and phones
# at the size they were drawn. Set for the kernel, so the chapters need no setup cell.
KERNEL_ARGUMENTS = ["--InlineBackend.figure_formats=retina"]


def merge_streams(outputs: list) -> list:
    """One output per run of consecutive prints: the kernel splits a cell's stdout by timing,
    and the book would show each piece in its own box."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.output_type == "stream" and previous is not None and previous.output_type == "stream"
                and previous.name == output.name):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    client = NotebookClient(
        nb, timeout=TIMEOUT_PER_CELL, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(path.parent)}},
        extra_arguments=KERNEL_ARGUMENTS,
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
    nbformat.write(nb, path)  # widget state is stored in the metadata, for the static book
    return elapsed


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
    for path in paths:
        seconds = execute(path.resolve())
        print(f"{path.name}: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
