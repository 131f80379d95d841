#!/usr/bin/env bash
# Build the book into _build/html, offline, failing on any Sphinx warning.
#
#     bash scripts/build_book.sh            # incremental (Sphinx rebuilds changed pages)
#     bash scripts/build_book.sh --all      # every page from scratch
#
# The chapters are committed executed, so the build runs no code; it only renders.
# Then scripts/export_web_model.py writes _build/html/web-model/: the bundled model, GPT-2's
# tokenizer files and the JavaScript that runs them, which a view loads only when a reader
# asks to try their own text (docs/WEB_ENGINE.md). Nothing there is committed.
# On success it writes _build/.book-built, which tests/test_book_browser.py compares with
# the sources to decide whether the built site is current or must be rebuilt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JB="${JUPYTER_BOOK:-$ROOT/.venv/bin/jupyter-book}"
if [ ! -x "$JB" ]; then
    echo "error: $JB not found; create the environment first (python -m venv .venv && .venv/bin/pip install -r requirements.txt -e .)" >&2
    exit 2
fi

export HF_HUB_OFFLINE=1
rm -f _build/.book-built
start=$(date +%s)
# -W: warnings are errors; -n: nitpicky (every cross-reference must resolve);
# --keep-going: report every warning, not just the first.
"$JB" build . -W -n --keep-going "$@"
PY="$(dirname "$JB")/python"
[ -x "$PY" ] || PY=python3
"$PY" scripts/export_web_model.py --out _build/html/web-model
end=$(date +%s)
touch _build/.book-built
echo "book built in $((end - start)) s: open _build/html/index.html"
