"""Exercise checks for chapter 2, tokenization.

Byte-pair encoding as in Sennrich et al. (2016) and OpenAI's gpt-2/src/encoder.py.
The reader's encode is compared with OpenAI's tiktoken (its GPT-2 encoding, built from
the same vocab.json and merges.txt), token for token; the other references are
gpt2lib.bpe and gpt2lib's GPT-2 tokenizer.
"""

import functools
from collections import Counter

from ..bpe import merge_pair
from .core import Mistake, StudentError, call, exercise, gpt2_tokenizer, judge, short


def _as_bytes(word: str) -> list[bytes]:
    data = word.encode("utf-8")
    return [data[i : i + 1] for i in range(len(data))]


@exercise("2.1", "pair counts", kind="implement",
          hint="look at each piece together with the piece right after it, and count those pairs")
def check_get_pair_counts(get_pair_counts):
    """get_pair_counts(parts: list[bytes]) -> {(a, b): count} over adjacent pairs."""
    cases = ["aaabdaaabac", "hello", "aaa", "ab", "a", ""]
    for word in cases:
        parts = _as_bytes(word)
        counts = call(get_pair_counts, list(parts), on=f"the bytes of {word!r}")
        if not isinstance(counts, dict):
            raise Mistake(f"return a dict {{(a, b): count}}, got {type(counts).__name__}")
        expected = Counter(zip(parts, parts[1:]))
        got = {pair: n for pair, n in counts.items() if n}
        if any(not (isinstance(k, tuple) and len(k) == 2) for k in got):
            raise Mistake("the keys must be pairs (a, b) of adjacent pieces")
        if got == dict(expected):
            continue
        last = (parts[-2], parts[-1]) if len(parts) >= 2 else None
        if last is not None and got.get(last, 0) == expected[last] - 1:
            raise Mistake(f"on {word!r} the last pair {last} is missing: "
                          f"the pairs start at positions 0 .. len(parts) - 2")
        wrong = sorted(set(got) ^ set(expected) | {k for k in expected if got.get(k) != expected[k]})[0]
        raise Mistake(f"on {word!r} the pair {wrong} is counted {got.get(wrong, 0)} times, "
                      f"it occurs {expected[wrong]} times (pairs overlap: 'aaa' has ('a', 'a') twice)")
    return "right counts on 6 words, overlapping pairs and empty input included"


@exercise("2.2", "one merge step", kind="implement",
          hint="build a new list, walking through parts from left to right; a piece can join only one merge")
def check_merge_pair(merge):
    """merge(parts: list[bytes], pair) -> list[bytes], every non-overlapping occurrence merged."""
    cases = [("hello", (b"l", b"l")), ("aaa", (b"a", b"a")), ("aaaa", (b"a", b"a")),
             ("abcab", (b"a", b"b")), ("xab", (b"a", b"b")), ("abc", (b"c", b"a")), ("", (b"a", b"b"))]
    for word, pair in cases:
        parts = _as_bytes(word)
        given = list(parts)
        got = call(merge, given, pair, on=f"{parts} with pair {pair}")
        if given != parts:
            raise Mistake("your function changed the list it was given: build and return a new list")
        expected = merge_pair(parts, pair)
        try:
            got = list(got)
        except TypeError:
            raise Mistake(f"return a list of pieces, got {type(got).__name__}") from None
        if got == expected:
            continue
        hint = ": merge left to right, and a piece can belong to only one merge"
        if len(got) > len(expected):
            hint = ": after a merge skip both pieces (i += 2); the second is already inside the merged one"
        elif len(got) < len(expected) and got[-1:] != expected[-1:]:
            hint = ": the last piece is lost; keep going until i reaches len(parts)"
        raise Mistake(f"merging {parts} with {pair} gave {got}, expected {expected}{hint}")
    return "matches gpt2lib.bpe.merge_pair on 7 cases, overlaps and a pair at the end included"


class BPETables:
    """What the reader's encode may use: split (the regex), merge_ranks, encoder.

    Only these three, so that an encode that calls gpt2lib's own tokenizer cannot pass.
    """

    def __init__(self, tok):
        self.split = tok.split  # text -> chunks, GPT-2's pre-tokenization regex
        self.merge_ranks = tok.merge_ranks  # {(left bytes, right bytes): rank}, 0 = learned first
        self.encoder = tok.encoder  # {token bytes: id}

    def __getattr__(self, name):
        raise AttributeError(f"encode gets only tok.split, tok.merge_ranks and tok.encoder, not tok.{name}: "
                             f"write the merge loop yourself")


ENCODE_TEXTS = (
    " hugging",
    "Hello, I'm sure we'll've   seen 3.14159 cats!!!",
    "I'M SHOUTING,\tyou're not.\n\n  Tabs and trailing spaces   ",
    "naïve café, 日本語, emoji 🤗, e\u0301 with a combining accent",
    "def f(x):\n    return x ** 2  # indented code\n",
    " flibbertigibbetz antidisestablishmentarianism aaaaaaaaaaaaaaaaaaaaaaaa",
    "Numbers: 0 7 42 1234567890 3,000,000 $19.99",
    "Shall I compare thee to a summer's day?\n\nThou art more lovely and more temperate:",
)


@functools.lru_cache(maxsize=1)
def _tiktoken():
    from ..tokenizer import tiktoken_encoding

    return tiktoken_encoding()


def _leftmost_first(word: bytes, ranks) -> list[bytes]:
    """A typical mistake: merge the leftmost pair that has a rank, not the lowest rank."""
    parts = [word[i : i + 1] for i in range(len(word))]
    while True:
        known = [pair for pair in zip(parts, parts[1:]) if pair in ranks]
        if not known:
            return parts
        parts = merge_pair(parts, known[0])


@exercise("2.3", "encode", kind="implement",
          hint="split the text into chunks, start each chunk from its bytes, and merge until no pair has a rank")
def check_encode(encode):
    """encode(text: str, tok) -> list[int], using only tok.split, tok.merge_ranks, tok.encoder."""
    gpt2 = gpt2_tokenizer()
    tables, enc = BPETables(gpt2), _tiktoken()
    n_tokens = 0
    for text in ENCODE_TEXTS:
        try:
            got = call(encode, text, tables, on=repr(text[:24]))
        except StudentError as e:
            if isinstance(e.__cause__, NotImplementedError):
                raise
            if isinstance(e.__cause__, KeyError) and not text.isascii():
                raise Mistake(f"{e}: a piece is not in tok.encoder. BPE starts from the UTF-8 bytes of each "
                              f"chunk (chunk.encode('utf-8')), one byte per piece, not from characters") from None
            raise Mistake(str(e)) from None
        try:
            got = [int(i) for i in got]
        except (TypeError, ValueError):
            raise Mistake(f"return a list of token ids (ints), got {short(repr(got), 60)}") from None
        expected = enc.encode(text)
        n_tokens += len(expected)
        if got == expected:
            continue
        shown = repr(text if len(text) <= 40 else text[:37] + "...")
        def pieces(ids):  # the first few tokens, printable
            return [gpt2.token_text(i) if 0 <= i < 50256 else i for i in ids][:8]
        if got and all(isinstance(i, int) and 0 <= i < 256 for i in got) and len(got) == len(text.encode()):
            raise Mistake(f"on {shown} you returned one id per byte: apply the merges, lowest rank first, "
                          f"until no adjacent pair has a rank")
        chunks = gpt2.split(text)
        leftmost = [gpt2.encoder[p] for c in chunks for p in _leftmost_first(c.encode(), gpt2.merge_ranks)]
        if got == leftmost:
            raise Mistake(f"on {shown} you gave {pieces(got)}, tiktoken {pieces(expected)}: merge the pair "
                          f"with the lowest rank first, wherever it is in the chunk, not the leftmost one")
        if len(chunks) > 1 and len(got) < len(expected):
            raise Mistake(f"on {shown} you gave {len(got)} tokens, tiktoken {len(expected)}: split the text "
                          f"with tok.split first; merges never cross a chunk boundary")
        first = next(i for i, (a, b) in enumerate(zip(got + [None] * len(expected), expected)) if a != b)
        raise Mistake(f"on {shown} your ids differ from tiktoken's from token {first} on: "
                      f"yours {pieces(got[first:])}, tiktoken's {pieces(expected[first:])}")
    return f"your encode vs tiktoken on {len(ENCODE_TEXTS)} texts ({n_tokens} tokens), identical"


PREDICT_TEXT = " tokenization"


@exercise("2.4", "predict a token count", kind="predict",
          hint=f"how many tokens is {PREDICT_TEXT!r}? guess before you run the tokenizer")
def check_predict_token_count(prediction):
    """prediction: the number of GPT-2 tokens in PREDICT_TEXT."""
    tok = gpt2_tokenizer()
    ids = tok.encode(PREDICT_TEXT)
    pieces = " + ".join(repr(tok.token_text(i)) for i in ids)
    return judge(prediction, len(ids), explain=f"{PREDICT_TEXT!r} -> {pieces}; "
                 f"common words are one token, rarer ones split into known pieces")


@exercise("2.6", "find a one-token word", kind="explore",
          hint="in the token view, look for a long word that shows as a single colour")
def check_single_token_word(word):
    """word: a word of at least 8 letters that GPT-2 encodes, after a space, as one token."""
    if not isinstance(word, str) or not word.strip().isalpha():
        raise Mistake(f"answer with one word made of letters, got {word!r}")
    word = word.strip()
    if len(word) < 8:
        raise Mistake(f"{word!r} has {len(word)} letters; find one with at least 8")
    tok = gpt2_tokenizer()
    ids = tok.encode(" " + word)
    if len(ids) != 1:
        pieces = " + ".join(repr(tok.token_text(i)) for i in ids)
        raise Mistake(f"' {word}' is {len(ids)} tokens ({pieces}); look for a more frequent word")
    return f"' {word}' is the single token {ids[0]} ({tok.token_text(ids[0])!r})"
