"""Export the bundled model and GPT-2's tokenizer for the book's live mode (the views in the browser).

    python scripts/export_web_model.py                       # into _build/html/web-model/
    python scripts/export_web_model.py --out DIR --model gpt2-shakespeare

Writes, into DIR:
  <model>.js    the weights: G2VWeb.weights = {config, tensors: {name: [offset, shape]}, data},
                data being the fp16 values, base64. A script rather than a binary file, so
                that a page opened from file:// can load it (a fetch there is refused);
  tokenizer.js  G2VWeb.tokenizerFiles = {vocab: vocab.json, merges: merges.txt's text};
  bpe.js, engine.js, viewdata.js  the code that runs them (copied from gpt2lib/viz/static/).

scripts/build_book.sh runs this after Sphinx. Nothing here is committed: the files are made
from gpt2lib/data/ at every build. The page loads them only when a reader switches on live
mode ("Try your own text"), so a chapter's first load does not grow. Names are the
checkpoint's (h.0.attn.c_attn.weight, ...) without the "transformer." prefix, in its Conv1D
[in, out] layout. The bundled model is stored in fp16, so the export is exact; a model
stored in fp32 is rounded to fp16 (stated in the output).
"""

import argparse
import base64
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpt2lib import loading  # noqa: E402
from gpt2lib.tokenizer import GPT2_DIR  # noqa: E402

CODE = ["bpe.js", "engine.js", "viewdata.js"]
STATIC = ROOT / "gpt2lib" / "viz" / "static"


def read_weights(directory: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """{name without "transformer.": fp16 array in the file's layout}, and the names of
    tensors that were not fp16 in the file (rounded here)."""
    from safetensors import safe_open

    tensors, rounded = {}, []
    for file in loading.weight_files(directory):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                name = key.removeprefix(loading.PREFIX)
                if name.endswith(loading.IGNORED):
                    continue
                t = f.get_tensor(key)
                if str(t.dtype) != "torch.float16":
                    rounded.append(name)
                tensors[name] = t.half().numpy()
    return tensors, rounded


def weights_script(name: str, directory: Path) -> tuple[str, list[str]]:
    """The text of <model>.js, and the names of the tensors rounded to fp16."""
    config = loading.read_config(directory)
    tensors, rounded = read_weights(directory)
    lm_head = tensors.pop("lm_head.weight", None)
    if lm_head is not None and not np.array_equal(lm_head, tensors.get("wte.weight")):
        raise ValueError(f"{directory}: lm_head.weight differs from wte.weight; the browser engine needs the "
                         "tied head GPT-2 uses (tie_word_embeddings)")
    layout, chunks, offset = {}, [], 0
    for key in sorted(tensors):
        array = np.ascontiguousarray(tensors[key], dtype="<f2")
        layout[key] = [offset, list(array.shape)]
        chunks.append(array.tobytes())
        offset += array.size
    packed = {
        "name": name,
        "config": {"n_layer": config.n_layer, "n_head": config.n_head, "n_embd": config.n_embd,
                   "n_ctx": config.n_ctx, "n_vocab": config.n_vocab, "eps": config.layer_norm_eps},
        "dtype": "float16",
        "tensors": layout,
    }
    data = base64.b64encode(b"".join(chunks)).decode("ascii")
    header = json.dumps(packed, sort_keys=True, separators=(",", ":"))
    text = (f"/* {name} for gpt2lib's live views: written by scripts/export_web_model.py; do not edit. */\n"
            f"(function (root) {{ var G2VWeb = root.G2VWeb = root.G2VWeb || {{}};\n"
            f"var packed = {header};\npacked.data = \"{data}\";\nG2VWeb.weights = packed;\n"
            f"}})(typeof globalThis !== \"undefined\" ? globalThis : this);\n")
    return text, rounded


def tokenizer_script(directory: Path = GPT2_DIR) -> str:
    """The text of tokenizer.js: vocab.json and merges.txt as they are on disk."""
    vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
    merges = (directory / "merges.txt").read_text(encoding="utf-8")
    body = json.dumps({"vocab": vocab, "merges": merges}, ensure_ascii=True, separators=(",", ":"))
    return ("/* GPT-2's tokenizer files for gpt2lib's live views: written by scripts/export_web_model.py. */\n"
            "(function (root) { var G2VWeb = root.G2VWeb = root.G2VWeb || {};\n"
            f"G2VWeb.tokenizerFiles = {body};\n}})(typeof globalThis !== \"undefined\" ? globalThis : this);\n")


def export(out: Path, model: str = loading.BUNDLED_MODEL) -> dict[str, int]:
    """Write the files into out; returns {file name: size in bytes}."""
    out.mkdir(parents=True, exist_ok=True)
    weights, rounded = weights_script(model, loading.resolve(model))
    files = {f"{Path(model).name}.js": weights, "tokenizer.js": tokenizer_script()}
    files |= {name: (STATIC / name).read_text(encoding="utf-8") for name in CODE}
    sizes = {}
    for name, text in files.items():
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # a page never sees half a file
        sizes[name] = path.stat().st_size
    if rounded:
        print(f"note: {len(rounded)} tensors were not fp16 in the checkpoint and were rounded to fp16 "
              f"(e.g. {rounded[0]})")
    return sizes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "html" / "web-model",
                        help="directory to write into (default: _build/html/web-model)")
    parser.add_argument("--model", default=loading.BUNDLED_MODEL,
                        help=f"model name or directory (default: the bundled {loading.BUNDLED_MODEL})")
    args = parser.parse_args(argv)
    sizes = export(args.out, args.model)
    for name, size in sizes.items():
        print(f"{args.out / name}: {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
