"""GPT-2's tokenizer, written from scratch: text <-> token ids.

Follows OpenAI's original encoder (github.com/openai/gpt-2, src/encoder.py): split
the text with GPT-2's pattern, run byte-level BPE on each chunk (bpe.py), cache the
result per chunk. The special-token policy follows tiktoken's `Encoding.encode`.
GPT-2's own vocabulary (MIT, OpenAI) ships in data/gpt2-tokenizer/; see PROVENANCE.md.
"""

import json
import operator
from dataclasses import dataclass
from pathlib import Path

import regex

from .bpe import BYTE_TO_CHAR, GPT2_PATTERN, SPECIAL_TOKEN, bpe, bpe_steps, learn_merges, read_vocab_files, to_text, write_vocab_files

GPT2_DIR = Path(__file__).parent / "data" / "gpt2-tokenizer"
ENDOFTEXT = "<|endoftext|>"
CACHED_CHUNK = 256  # longest chunk (in characters) kept in the cache: real words are shorter


@dataclass(frozen=True)
class MergeStep:
    """One merge applied to a word, in GPT-2's printable form."""

    rank: int  # line of merges.txt (0 = learned first); lower ranks merge first
    pair: tuple[str, str]  # the two adjacent pieces glued together, e.g. ("Ġ", "t")
    parts: tuple[str, ...]  # the word's pieces after this merge


class Tokenizer:
    """A byte-level BPE tokenizer: encode(str) -> list[int], decode(list[int]) -> str.

    vocab: {id: token bytes}; merges: [(left, right), ...] in rank order, each
    concatenation in vocab; special_tokens: {text: id}, e.g. {"<|endoftext|>": 50256}.
    """

    def __init__(self, vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], special_tokens: dict[str, int] | None = None, *, cache_size: int = 100_000):
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.special_tokens = dict(special_tokens or {})
        self.encoder = {token: i for i, token in self.vocab.items()}
        if len(self.encoder) != len(self.vocab):
            raise ValueError("vocab maps two ids to the same bytes; every token must be distinct")
        missing = [b for b in range(256) if bytes([b]) not in self.encoder]
        if missing:
            raise ValueError(f"vocab lacks the single-byte tokens for bytes {missing[:5]}...; byte-level BPE needs all 256")
        for rank, (a, b) in enumerate(self.merges):
            if a not in self.encoder or b not in self.encoder or a + b not in self.encoder:
                raise ValueError(f"merge {rank} ({to_text(a)!r}, {to_text(b)!r}): a piece or the result is missing from the vocabulary")
        odd = [token for token in self.special_tokens if not isinstance(token, str) or not SPECIAL_TOKEN.fullmatch(token)]
        if odd:
            raise ValueError(f"special token {odd[0]!r} is not of the form <|...|>, like {ENDOFTEXT!r}")
        clash = set(self.special_tokens.values()) & set(self.vocab)
        if clash:
            raise ValueError(f"special token ids {sorted(clash)} are also ordinary token ids")
        self.merge_ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.pattern = regex.compile(GPT2_PATTERN)
        self.n_vocab = 1 + max([*self.vocab, *self.special_tokens.values()])
        self.eot_id = self.special_tokens.get(ENDOFTEXT)
        self._cache: dict[str, tuple[int, ...]] = {}  # chunk -> ids, as GPT-2's encoder.py
        self._cache_size = cache_size

    def __repr__(self) -> str:
        return f"Tokenizer(n_vocab={self.n_vocab}, merges={len(self.merges)}, special_tokens={self.special_tokens})"

    # --- encoding -----------------------------------------------------------
    def split(self, text: str) -> list[str]:
        """Pre-tokenization: "Hello world!" -> ["Hello", " world", "!"]."""
        return self.pattern.findall(text)

    def encode_chunk(self, chunk: str) -> list[int]:
        """BPE on one pre-tokenized chunk, through the cache: " hello" -> [23748]."""
        ids = self._cache.get(chunk)
        if ids is None:
            ids = tuple(self.encoder[piece] for piece in bpe(chunk.encode("utf-8"), self.merge_ranks))
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # bounded memory; real text refills it quickly
            if len(chunk) <= CACHED_CHUNK:  # a 10 MB chunk would be a 10 MB key
                self._cache[chunk] = ids
        return list(ids)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode treating every character as plain text (no special tokens)."""
        _check_str(text)
        if _has_surrogates(text):  # lone surrogates cannot be UTF-8; tiktoken makes them U+FFFD
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        ids = []
        for chunk in self.pattern.findall(text):
            ids.extend(self.encode_chunk(chunk))
        return ids

    def encode(self, text: str, *, allowed_special: set[str] | str = frozenset(), disallowed_special: set[str] | str = "all") -> list[int]:
        """Text -> token ids, with tiktoken's policy for special-token text.

        allowed_special: special tokens to encode as their id ("all" for every one).
        disallowed_special: special tokens whose text raises ValueError; "all" (the
        default) means every special token not allowed. Special-token text that is
        neither allowed nor disallowed is encoded as plain text.
        "Not all heroes wear capes." -> [3673, 477, 10281, 5806, 1451, 274, 13]
        """
        _check_str(text)
        specials = set(self.special_tokens)
        allowed = specials if allowed_special == "all" else _special_set("allowed_special", allowed_special)
        disallowed = specials - allowed if disallowed_special == "all" else _special_set("disallowed_special", disallowed_special)
        unknown = (allowed | disallowed) - specials
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not special tokens of this tokenizer; its special tokens are {sorted(specials)}")
        for token in disallowed:
            if token in text:
                raise ValueError(
                    f"the text contains the special token {token!r}. To encode it as the special token "
                    f"(id {self.special_tokens[token]}), pass allowed_special={{{token!r}}} (or \"all\"); to encode it "
                    f"as plain text, pass disallowed_special=() or use encode_ordinary(text)."
                )
        if not allowed:
            return self.encode_ordinary(text)
        ids = []
        special_re = "(" + "|".join(regex.escape(t) for t in sorted(allowed, key=len, reverse=True)) + ")"
        for i, part in enumerate(regex.split(special_re, text)):
            ids.extend([self.special_tokens[part]] if i % 2 else self.encode_ordinary(part))
        return ids

    def merge_steps(self, word: str) -> list[MergeStep]:
        """Show your work: the merges BPE applies to one chunk, in order.

        word must be one pre-tokenized chunk (an element of split(text)). " hugging" ->
        [MergeStep(rank=3, pair=("i", "n"), parts=("Ġ", "h", "u", "g", "g", "in", "g")),
         MergeStep(rank=22, pair=("in", "g"), ...), ..., MergeStep(rank=46036,
         pair=("Ġhug", "ging"), parts=("Ġhugging",))]
        """
        _check_str(word)
        if self.split(word) != [word]:
            raise ValueError(f"{word!r} is several chunks {self.split(word)}; call merge_steps on each one")
        return [MergeStep(rank, (to_text(a), to_text(b)), tuple(map(to_text, parts))) for rank, (a, b), parts in bpe_steps(word.encode("utf-8"), self.merge_ranks)]

    # --- decoding -----------------------------------------------------------
    def token_bytes(self, token_id: int) -> bytes:
        """One token's bytes: 262 -> b" the"; a special token gives its text as UTF-8."""
        token_id = self._check_id(token_id)
        if token_id in self.vocab:
            return self.vocab[token_id]
        return next(t for t, i in self.special_tokens.items() if i == token_id).encode("utf-8")

    def token_text(self, token_id: int) -> str:
        """One token in GPT-2's printable form (as in vocab.json): 262 -> "Ġthe"."""
        token_id = self._check_id(token_id)
        if token_id in self.vocab:
            return to_text(self.vocab[token_id])
        return self.token_bytes(token_id).decode("utf-8")

    def decode_bytes(self, ids) -> bytes:
        """Token ids -> the raw bytes they stand for."""
        return b"".join(self.token_bytes(i) for i in ids)

    def decode(self, ids) -> str:
        """Token ids -> text. Bytes that are not valid UTF-8 on their own (a token
        sequence that splits a character) become U+FFFD, as GPT-2's errors="replace"."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def _check_id(self, token_id) -> int:
        try:
            token_id = operator.index(token_id)
        except TypeError:
            raise TypeError(f"token ids must be integers, got {type(token_id).__name__} {token_id!r}") from None
        if token_id not in self.vocab and token_id not in self.special_tokens.values():
            raise ValueError(f"token id {token_id} is not in this vocabulary (valid ids: 0..{self.n_vocab - 1})")
        return token_id

    # --- files ----------------------------------------------------------------
    def save(self, directory) -> Path:
        """Write vocab.json + merges.txt (GPT-2's files) and a tokenizer_config.json
        so that transformers' AutoTokenizer.from_pretrained(directory) loads them."""
        config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "errors": "replace"}
        if self.eot_id is not None:  # GPT-2 uses <|endoftext|> as bos, eos and unk
            config |= {name: ENDOFTEXT for name in ("bos_token", "eos_token", "unk_token")}
        config_file = {"tokenizer_config.json": json.dumps(config, indent=2) + "\n"}
        return write_vocab_files(directory, self.vocab, self.merges, self.special_tokens, config_file)

    @classmethod
    def load(cls, directory) -> "Tokenizer":
        """Read vocab.json + merges.txt from directory (see bpe.read_vocab_files)."""
        return cls(*read_vocab_files(directory))


def _check_str(text) -> None:
    if not isinstance(text, str):
        hint = " (decode bytes first: data.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
        raise TypeError(f"expected text as a str, got {type(text).__name__}{hint}")


def _special_set(name: str, value) -> set[str]:
    """allowed_special or disallowed_special as a set of str, with an error naming the argument."""
    if isinstance(value, str):
        raise ValueError(f'{name} must be "all" or a set of special tokens, e.g. {{{value!r}}}; got the string {value!r}')
    try:
        tokens = set(value)
    except TypeError:
        raise TypeError(f'{name} must be "all" or a set of special tokens like {{"<|endoftext|>"}} (an empty set for none), '
                        f"got {value!r}") from None
    if not all(isinstance(token, str) for token in tokens):
        raise TypeError(f"{name} must hold special tokens as str, like {{'<|endoftext|>'}}, got {sorted(map(repr, tokens))}")
    return tokens


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_GPT2: Tokenizer | None = None


def get_tokenizer() -> Tokenizer:
    """GPT-2's tokenizer (50,257 tokens) from the files shipped with gpt2lib; loaded once."""
    global _GPT2
    if _GPT2 is None:
        _GPT2 = Tokenizer.load(GPT2_DIR)
    return _GPT2


def train_bpe(text: str, vocab_size: int) -> Tokenizer:
    """Learn a GPT-2-style tokenizer from text.

    vocab_size counts everything, as GPT-2's 50,257: the 256 bytes (ids 0..255 in
    GPT-2's order), vocab_size - 257 merges (ids 256, 257, ...) and <|endoftext|>
    last. Fewer merges if the text runs out of pairs. Tie-breaking: see learn_merges.
    """
    _check_str(text)
    if not isinstance(vocab_size, int) or vocab_size < 257:
        raise ValueError(f"vocab_size must be an int >= 257 (256 bytes + <|endoftext|>), got {vocab_size!r}")
    merges = learn_merges(text, vocab_size - 257)
    vocab = {i: bytes([b]) for i, b in enumerate(BYTE_TO_CHAR)}
    known = set(vocab.values())
    for a, b in merges:
        if a + b not in known:  # two merges can spell the same bytes; it keeps one id
            known.add(a + b)
            vocab[len(vocab)] = a + b
    return Tokenizer(vocab, merges, {ENDOFTEXT: len(vocab)})


def tiktoken_encoding(directory=GPT2_DIR):
    """tiktoken's Encoding built offline from vocab.json + merges.txt in directory
    (by default GPT-2's; equal to tiktoken.get_encoding("gpt2"))."""
    import tiktoken
    from tiktoken_ext.openai_public import r50k_pat_str  # tiktoken's form of GPT2_PATTERN

    tok = Tokenizer.load(directory)
    ranks = {token: i for i, token in tok.vocab.items()}
    return tiktoken.Encoding(name=f"gpt2lib:{Path(directory).name}", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens=tok.special_tokens, explicit_n_vocab=tok.n_vocab)


def hf_tokenizer(directory=GPT2_DIR):
    """transformers' GPT2TokenizerFast loaded offline from directory (by default GPT-2's)."""
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast.from_pretrained(str(directory), local_files_only=True)
