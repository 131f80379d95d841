"""Exercise checks for chapter 2, tokenization.

Byte-pair encoding as in Sennrich et al. (2016) and OpenAI's gpt-2/src/encoder.py;
the references are gpt2lib.bpe and gpt2lib's GPT-2 tokenizer.
"""

from collections import Counter

from ..bpe import merge_pair
from .core import Mistake, call, exercise, gpt2_tokenizer, judge


def _as_bytes(word: str) -> list[bytes]:
    data = word.encode("utf-8")
    return [data[i : i + 1] for i in range(len(data))]


@exercise("2.1", "pair counts", kind="implement",
          hint="count every adjacent pair: zip(parts, parts[1:])")
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
          hint="walk left to right; on a match append the merged piece and skip two, else append one")
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


PREDICT_TEXT = " tokenization"


@exercise("2.3", "predict a token count", kind="predict",
          hint=f"how many tokens is {PREDICT_TEXT!r}? guess before you run the tokenizer")
def check_predict_token_count(prediction):
    """prediction: the number of GPT-2 tokens in PREDICT_TEXT."""
    tok = gpt2_tokenizer()
    ids = tok.encode(PREDICT_TEXT)
    pieces = " + ".join(repr(tok.token_text(i)) for i in ids)
    return judge(prediction, len(ids), explain=f"{PREDICT_TEXT!r} -> {pieces}; "
                 f"common words are one token, rarer ones split into known pieces")


@exercise("2.5", "find a one-token word", kind="explore",
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
