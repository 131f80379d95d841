"""Byte-level byte-pair encoding: the algorithm behind GPT-2's tokenizer.

Follows OpenAI's original encoder (github.com/openai/gpt-2, src/encoder.py) from
Radford et al. (2019), "Language Models are Unsupervised Multitask Learners",
section 2.2, and the training loop of Karpathy's minbpe. BPE itself is Sennrich
et al. (2016), "Neural Machine Translation of Rare Words with Subword Units".

Everything here works on `bytes`: a word is split into single bytes, and a merge
glues two adjacent pieces into one. Tokens are stored in GPT-2's files (vocab.json,
merges.txt) in a printable form, one character per byte. The tokenizer object that
puts these together lives in tokenizer.py.
"""

import heapq
import json
import os
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import regex

# GPT-2's pre-tokenization: contractions, letters, numbers, other symbols, each
# optionally led by one space; runs of whitespace keep their last space for the
# next word ("\s+(?!\S)"). Merges never cross these chunk boundaries.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """Map each of the 256 byte values to a printable character (GPT-2's table).

    Printable Latin-1 bytes map to themselves; the other 68 (control codes, space,
    ...) are shifted to U+0100 onwards, so the space byte 32 shows as "Ġ" (U+0120)
    and "\\n" (10) as "Ċ". vocab.json and merges.txt store tokens in this form.
    The dict's order is GPT-2's order of the 256 base tokens: ids 0..255.
    """
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(visible)
    shifted = 0
    for b in range(256):
        if b not in visible:
            visible.append(b)
            chars.append(256 + shifted)
            shifted += 1
    return {b: chr(c) for b, c in zip(visible, chars)}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def to_text(token: bytes) -> str:
    """Bytes in GPT-2's printable form: b" the" -> "Ġthe"."""
    return "".join(BYTE_TO_CHAR[b] for b in token)


def from_text(text: str) -> bytes:
    """Inverse of to_text: "Ġthe" -> b" the". KeyError for a character outside the table."""
    return bytes(CHAR_TO_BYTE[c] for c in text)


# --- GPT-2's files ---------------------------------------------------------------


def write_vocab_files(directory, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], special_tokens: dict[str, int],
                      extra_files: dict[str, str] | None = None) -> Path:
    """Write vocab.json ({token text: id}) and merges.txt ("#version: 0.2", then "left right" per line),
    and any extra_files {name: text}, so that a failed write never leaves a pair that loads.

    Every file is written under a temporary name first; then merges.txt is removed, the
    others are renamed into place, and merges.txt comes last. A write that fails (disk
    full, a file size limit) leaves the old files as they were; a crash between the
    renames leaves no merges.txt, which read_vocab_files refuses: never the vocab.json of
    one tokenizer next to the merges.txt of another.
    """
    directory = Path(directory).expanduser()
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} is a file; a tokenizer is saved as files in a directory: pass a directory path")
    directory.mkdir(parents=True, exist_ok=True)
    entries = {to_text(token): i for i, token in vocab.items()} | special_tokens
    entries = dict(sorted(entries.items(), key=lambda item: item[1]))
    lines = ["#version: 0.2"] + [f"{to_text(a)} {to_text(b)}" for a, b in merges]
    # vocab.json ASCII-escaped, in id order: for GPT-2 this is byte for byte OpenAI's encoder.json
    files = (extra_files or {}) | {"vocab.json": json.dumps(entries), "merges.txt": "\n".join(lines) + "\n"}
    temporary = {}
    try:
        for name, text in files.items():
            temporary[name] = path = directory / f".{name}.{secrets.token_hex(4)}.tmp"
            # mode 0o666 under the umask: the permissions a plain write gives (mkstemp's are private)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        (directory / "merges.txt").unlink(missing_ok=True)  # until the last rename, nothing here loads
        for name in [*files.keys() - {"merges.txt"}, "merges.txt"]:
            os.replace(temporary.pop(name), directory / name)
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)
    return directory


SPECIAL_TOKEN = regex.compile(r"<\|[^|\s]+\|>")  # the form of a special token: <|endoftext|>


def read_vocab_files(directory) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]], dict[str, int]]:
    """Read vocab.json + merges.txt -> (vocab {id: bytes}, merges, special_tokens {text: id}).

    Every entry of vocab.json is a single byte, the result of a merge, or a special
    token of the form <|...|> (for GPT-2: "<|endoftext|>": 50256); all 256 bytes are
    there, and every merge's two pieces and result are in the vocabulary. Anything else
    (a merges.txt cut short, an empty entry) raises ValueError naming the file and entry.
    """
    directory = Path(directory).expanduser()
    vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
    entries = _read_vocab_json(vocab_path)
    lines = _read_merges_txt(merges_path)  # {line number: merge}
    made = {bytes([b]) for b in range(256)} | {a + b for a, b in lines.values()}
    vocab, special_tokens = {}, {}
    for text, i in entries.items():
        token = from_text(text) if set(text) <= CHAR_TO_BYTE.keys() else None
        if token in made:
            vocab[i] = token
        elif SPECIAL_TOKEN.fullmatch(text):
            special_tokens[text] = i
        else:
            raise ValueError(
                f"{vocab_path}: entry {text!r} (id {i}) is not a byte, not made by any of the {len(lines)} "
                f"merges in {merges_path.name}, and not a special token of the form <|...|>; is "
                f"{merges_path.name} complete, and do the two files belong together?"
            )
    known = set(vocab.values())
    missing = [b for b in range(256) if bytes([b]) not in known]
    if missing:
        raise ValueError(f"{vocab_path} lacks the single-byte tokens for bytes {missing[:5]}...; byte-level BPE needs all 256")
    for rank, (n, (a, b)) in enumerate(lines.items()):
        absent = [to_text(piece) for piece in (a, b, a + b) if piece not in known]
        if absent:
            raise ValueError(f"{merges_path}, line {n}: merge {rank} ({to_text(a)!r}, {to_text(b)!r}): {absent[0]!r} "
                             f"is missing from the vocabulary in {vocab_path.name}; do the two files belong together?")
    return vocab, list(lines.values()), special_tokens


def _read_text(path: Path) -> str:
    """A tokenizer file's text, with an error naming the file when it is missing or not UTF-8."""
    if not path.is_file():  # also refuses a FIFO, which would block the read forever
        raise FileNotFoundError(f"{path} is missing or not a regular file; a tokenizer directory holds vocab.json + merges.txt")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e}); GPT-2's tokenizer files are UTF-8") from None


def _read_vocab_json(path: Path) -> dict[str, int]:
    try:
        entries = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); expected {{token text: id}} as in GPT-2's vocab.json") from None
    if not isinstance(entries, dict) or not all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in entries.items()):
        raise ValueError(f'{path} must be one JSON object mapping token text to a non-negative integer id, like {{"!": 0}}')
    if "" in entries:
        raise ValueError(f'{path}: the empty string "" is an entry (id {entries[""]}); every token is at least one byte, so remove it')
    seen: dict[int, str] = {}
    for text, i in entries.items():
        if i in seen:
            raise ValueError(f"{path}: id {i} is given to both {seen[i]!r} and {text!r}; every token needs its own id")
        seen[i] = text
    return entries


def _read_merges_txt(path: Path) -> dict[int, tuple[bytes, bytes]]:
    """{line number: (left, right)}, in rank order."""
    merges = {}
    for n, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line or (n == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts) or not set(line.replace(" ", "")) <= CHAR_TO_BYTE.keys():
            raise ValueError(f"{path}, line {n}: {line!r} is not a merge; expected two tokens in GPT-2's printable form separated by one space, like 'Ġ t'")
        merges[n] = (from_text(parts[0]), from_text(parts[1]))
    return merges


# --- the algorithm -----------------------------------------------------------------


def merge_pair(parts: list[bytes], pair: tuple[bytes, bytes]) -> list[bytes]:
    """Replace every non-overlapping occurrence of `pair`, left to right.

    [b"a", b"a", b"a"], (b"a", b"a") -> [b"aa", b"a"]
    """
    first, second = pair
    out, i = [], 0
    while i < len(parts):
        if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
            out.append(first + second)
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


def bpe_steps(word: bytes, merge_ranks: dict[tuple[bytes, bytes], int]) -> Iterator[tuple[int, tuple[bytes, bytes], list[bytes]]]:
    """GPT-2's merge loop, one step at a time.

    Start from single bytes; repeatedly take the adjacent pair with the lowest
    merge rank (learned earliest) and merge all its occurrences. Stops when no
    adjacent pair has a rank. Yields (rank, pair, parts after the merge).
    """
    parts = [word[i : i + 1] for i in range(len(word))]
    while len(parts) > 1:
        pairs = set(zip(parts, parts[1:]))
        best = min(pairs, key=lambda pair: merge_ranks.get(pair, float("inf")))
        if best not in merge_ranks:
            return
        parts = merge_pair(parts, best)
        yield merge_ranks[best], best, parts


def bpe(word: bytes, merge_ranks: dict[tuple[bytes, bytes], int]) -> list[bytes]:
    """The pieces `word` ends as after all merges: b" hello" -> [b" hello"].

    The same pieces as running bpe_steps to the end, in O(n log n) for a word of n
    bytes instead of bpe_steps' O(n^2), the way fast tokenizers do it: a 10 MB chunk
    without spaces takes seconds, not days. The pieces form a linked list; `waiting`
    holds, for each rank, where its pairs start, and a heap gives the lowest rank.
    Each round takes all the pairs of the lowest rank, left to right, and merges those
    still there (one may have been used up by the merge on its left: "aaa" -> "aa",
    "a"). The pairs a round creates wait for a later round, as in bpe_steps' next step.
    """
    n = len(word)
    parts = [word[i : i + 1] for i in range(n)]  # parts[i]: the piece starting at byte i; b"" once merged away
    after = list(range(1, n + 1))  # after[i]: where the next piece starts (n: none)
    before = list(range(-1, n - 1))  # before[i]: where the previous piece starts (-1: none)

    def rank_at(i: int) -> int | None:  # the rank of the pair (piece at i, next piece), if it has one
        return merge_ranks.get((parts[i], parts[after[i]])) if 0 <= i and after[i] < n else None

    waiting: dict[int, list[int]] = {}  # rank -> positions of pairs with that rank
    for i, pair in enumerate(zip(parts, parts[1:])):
        if (rank := merge_ranks.get(pair)) is not None:
            waiting.setdefault(rank, []).append(i)
    ranks = list(waiting)
    heapq.heapify(ranks)
    while ranks:
        rank, merged = heapq.heappop(ranks), []
        for i in sorted(set(waiting.pop(rank))):  # one round, left to right
            if parts[i] and rank_at(i) == rank:  # the pair is still there
                j = after[i]
                parts[i], parts[j] = parts[i] + parts[j], b""  # piece j joins piece i
                after[i] = after[j]
                if after[j] < n:
                    before[after[j]] = i
                merged.append(i)
        for i in {before[i] for i in merged} | set(merged):  # the new pairs around each merged piece
            if (new := rank_at(i)) is not None:
                if new not in waiting:
                    heapq.heappush(ranks, new)
                waiting.setdefault(new, []).append(i)
    return [piece for piece in parts if piece]


def recover_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Recover the merge list from tiktoken-style ranks {token bytes: rank}.

    A token of rank r was made by the merge learned r-th, so running BPE over its
    bytes with only tokens of lower rank leaves exactly two pieces: its merge.
    Returned in rank order (for GPT-2: 50,000 merges, ranks 256..50255).
    """
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 2:
            lower = [(ranks.get(a + b, rank), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            best_rank, i = min(lower)
            if best_rank >= rank:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not one merge of lower-ranked tokens: {parts}")
        merges.append((parts[0], parts[1]))
    return merges


def learn_merges(text: str, n_merges: int, pattern: str = GPT2_PATTERN) -> list[tuple[bytes, bytes]]:
    """Learn up to `n_merges` merges from `text`, most frequent pair first.

    The text is pre-tokenized with `pattern` and each distinct chunk is counted
    once with its frequency; pair counts are then updated only for the chunks a
    merge touches. Ties (equal counts) go to the smallest pair, comparing the
    pieces' bytes: (b"a", b"b") before (b"a", b"c") before (b"b", b"a").
    Stops early when every chunk is a single token (no pairs are left).
    """
    chunks = Counter(regex.findall(pattern, text))
    words = [[c[i : i + 1] for i in range(len(c))] for c in (chunk.encode("utf-8") for chunk in chunks)]
    freqs = list(chunks.values())
    counts: Counter = Counter()
    where: dict[tuple[bytes, bytes], set[int]] = defaultdict(set)  # pair -> words that contain it
    for w, (parts, freq) in enumerate(zip(words, freqs)):
        for pair in zip(parts, parts[1:]):
            counts[pair] += freq
            where[pair].add(w)
    merges = []
    while len(merges) < n_merges and counts:
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        for w in where.pop(best):
            old = words[w]
            for pair in zip(old, old[1:]):
                counts[pair] -= freqs[w]
                if counts[pair] == 0:
                    del counts[pair]
            words[w] = new = merge_pair(old, best)
            for pair in zip(new, new[1:]):
                counts[pair] += freqs[w]
                where[pair].add(w)
    return merges
