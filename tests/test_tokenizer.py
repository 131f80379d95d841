"""The from-scratch tokenizer against tiktoken and transformers on the same files."""

import hashlib
import importlib.util
import inspect
import json
import os
import random
import re
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from gpt2lib import Tokenizer, get_tokenizer, train_bpe  # noqa: E402
from gpt2lib.bpe import bpe, bpe_steps, learn_merges, recover_merges  # noqa: E402
from gpt2lib.tokenizer import GPT2_DIR, hf_tokenizer, tiktoken_encoding  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _random_unicode(seed: int, n: int) -> str:
    """Any code point (surrogates excluded), biased towards spaces so words form."""
    rng = random.Random(seed)
    chars = []
    while len(chars) < n:
        c = rng.choice([rng.randrange(0x110000), rng.randrange(0x20, 0x3000), 0x20])
        if not 0xD800 <= c < 0xE000:
            chars.append(chr(c))
    return "".join(chars)


CORPUS = {
    "prose": "Not all heroes wear capes. The quick brown fox jumps over the lazy dog, doesn't it?",
    "code": 'def f(x):\n    """Square."""\n    return x ** 2  # note\n\nif __name__ == "__main__":\n\tprint(f(3))\n',
    "numbers": "In 1984, 3.14159 and 2,718,281 and 0x1F and 1e-9 and 12345678901234567890.",
    "spaces": "a  b   c    d\t\te     \n",
    "newlines": "\n\n\nend\n \n  \n",
    "newline_alone": "\n",
    "crlf": "line one\r\nline two\r\n\r\n",
    "tabs": "\tindented\n\t\tdouble\t tab-space",
    "contractions": "it's don't you're we've I'm they'll he'd",
    "contractions_upper": "IT'S DON'T YOU'RE WE'VE I'M THEY'LL HE'D JOHN'S WHAT'SUP it'Sup 'Twas 'Re 'LL",
    "apostrophes": "'s 's' ''s rock'n'roll ’s",
    "chinese": "自然语言处理是人工智能的一个分支。",
    "japanese": "東京は日本の首都です。カタカナとひらがな",
    "hindi": "नमस्ते दुनिया, यह एक परीक्षण है।",
    "russian": "Съешь же ещё этих мягких французских булок.",
    "emoji_zwj": "family: 👨‍👩‍👧‍👦, flag: 🏳️‍🌈, skin: 👋🏽, keycap: 1️⃣",
    "combining": "e\u0301 n\u0303 a\u0308\u0304 Z\u0335\u0321\u0317a\u0336lgo",
    "rtl": "שלום עולם! مرحبا بالعالم 123 \u202bembedded\u202c",
    "random_unicode_1": _random_unicode(1, 200),
    "random_unicode_2": _random_unicode(2, 200),
    "random_unicode_3": _random_unicode(3, 200),
    "endoftext": "first document<|endoftext|>second document <|endoftext|>\n",
    "empty": "",
}


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer()


@pytest.fixture(scope="module")
def tt():
    return tiktoken_encoding()


@pytest.fixture(scope="module")
def hf():
    return hf_tokenizer()


@pytest.mark.parametrize("name", CORPUS)
def test_matches_tiktoken_and_transformers(name, tok, tt, hf):
    text = CORPUS[name]
    ours = tok.encode(text, allowed_special="all")
    tiktoken_ids = tt.encode(text, allowed_special="all")
    hf_ids = hf(text)["input_ids"]
    assert ours == tiktoken_ids, f"{name}: differs from tiktoken at position {_first_diff(ours, tiktoken_ids)}: {ours[:20]} vs {tiktoken_ids[:20]}"
    assert ours == hf_ids, f"{name}: differs from transformers at position {_first_diff(ours, hf_ids)}: {ours[:20]} vs {hf_ids[:20]}"
    assert tok.decode(ours) == text, f"{name}: decode(encode(text)) != text"


@pytest.mark.parametrize("name", CORPUS)
def test_special_text_as_plain_text_matches_tiktoken(name, tok, tt):
    text = CORPUS[name]
    assert tok.encode(text, disallowed_special=()) == tt.encode(text, disallowed_special=())
    assert tok.encode_ordinary(text) == tt.encode_ordinary(text)


def _first_diff(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_known_ids(tok):
    assert tok.encode("Not all heroes wear capes.") == [3673, 477, 10281, 5806, 1451, 274, 13]
    assert tok.encode("\n") == [198]
    assert tok.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [50256]
    assert tok.eot_id == 50256 and tok.n_vocab == 50257
    assert tok.token_text(262) == "Ġthe" and tok.token_bytes(262) == b" the"


def test_token_bytes_match_tiktoken(tok, tt):
    for i in [0, 1, 188, 198, 220, 256, 262, 1000, 30000, 50255, 50256]:
        assert tok.token_bytes(i) == tt.decode_single_token_bytes(i), f"token {i}"


def test_made_up_word_splits_into_known_pieces(tok, tt):
    word = " flibbertigibbetization"
    ids = tok.encode(word)
    assert ids == tt.encode(word)
    assert len(ids) > 1 and all(i < tok.eot_id for i in ids)
    assert "".join(tok.token_bytes(i).decode() for i in ids) == word


def test_merge_steps_show_the_work(tok):
    steps = tok.merge_steps(" tokenization")
    assert steps[0].rank == 0 and steps[0].pair == ("Ġ", "t"), "GPT-2's first merge is 'Ġ t'"
    assert [s.rank for s in steps] == sorted({s.rank for s in steps}), "each merge makes a newer token, so ranks must increase"
    assert list(steps[-1].parts) == [tok.token_text(i) for i in tok.encode(" tokenization")]
    with pytest.raises(ValueError, match="several chunks"):
        tok.merge_steps("two words")


def test_decode_split_character_gives_replacement_char(tok, tt, hf):
    ids = tok.encode("🤗")
    assert len(ids) > 1, "the emoji should need several byte-level tokens"
    for cut in [ids[:1], ids[1:], ids[:1] + tok.encode(" ok")]:
        assert tok.decode(cut) == tt.decode(cut) == hf.decode(cut)
        assert "\ufffd" in tok.decode(cut)


def test_lone_surrogate_becomes_replacement_char_as_tiktoken(tok, tt):
    assert tok.encode("a\ud800b") == tt.encode("a\ud800b")


def test_special_token_policy(tok, tt):
    text = "hello <|endoftext|>"
    with pytest.raises(ValueError, match="allowed_special"):
        tok.encode(text)
    with pytest.raises(ValueError, match="allowed_special"):
        tt.encode(text)  # the reference behaves the same way
    assert tok.encode(text, allowed_special="all")[-1] == 50256
    assert 50256 not in tok.encode(text, disallowed_special=())
    with pytest.raises(ValueError, match="must be \"all\" or a set"):
        tok.encode(text, allowed_special="<|endoftext|>")
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode(text, allowed_special={"<|im_start|>"})


def test_cache_is_bounded_and_transparent():
    small = Tokenizer.load(GPT2_DIR)
    small._cache_size = 3
    text = CORPUS["prose"] + CORPUS["code"]
    assert small.encode(text) == get_tokenizer().encode(text) == small.encode(text)
    assert len(small._cache) <= 3


# --- the shipped files --------------------------------------------------------------


def test_shipped_files_match_provenance_hashes():
    table = (GPT2_DIR / "PROVENANCE.md").read_text()
    for name in ["vocab.json", "merges.txt", "tokenizer_config.json"]:
        expected = re.search(rf"\| {re.escape(name)} \|[^|]*\| `([0-9a-f]{{64}})` \|", table).group(1)
        actual = hashlib.sha256((GPT2_DIR / name).read_bytes()).hexdigest()
        assert actual == expected, f"{name} changed (sha256 {actual}); regenerate it with scripts/make_gpt2_tokenizer_files.py"


def test_shipped_files_are_openais_encoder_json_and_vocab_bpe():
    from tiktoken_ext import openai_public

    source = inspect.getsource(openai_public.gpt2)  # the hashes tiktoken checks for GPT-2's files
    for name, key in [("vocab.json", "encoder_json_hash"), ("merges.txt", "vocab_bpe_hash")]:
        expected = re.search(rf'{key}="([0-9a-f]{{64}})"', source).group(1)
        actual = hashlib.sha256((GPT2_DIR / name).read_bytes()).hexdigest()
        assert actual == expected, f"{name} is not OpenAI's original file (sha256 {actual}, tiktoken expects {expected})"


def test_recovered_merges_equal_merges_txt(tt):
    ranks = tt._mergeable_ranks  # tiktoken's ranks, from vocab.json
    lines = (GPT2_DIR / "merges.txt").read_text(encoding="utf-8").split("\n")
    merges = Tokenizer.load(GPT2_DIR).merges
    assert lines[0] == "#version: 0.2" and len(merges) == 50_000
    assert recover_merges(ranks) == merges


def test_script_rebuilds_the_files_bit_for_bit(tmp_path, tt):
    spec = importlib.util.spec_from_file_location("make_files", ROOT / "scripts" / "make_gpt2_tokenizer_files.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.gpt2_tokenizer(dict(tt._mergeable_ranks)).save(tmp_path)
    for name in ["vocab.json", "merges.txt", "tokenizer_config.json"]:
        assert (tmp_path / name).read_bytes() == (GPT2_DIR / name).read_bytes(), f"{name} differs from the shipped file"


# --- training --------------------------------------------------------------------------


def test_training_reproduces_hand_computed_merges():
    # "aaabdaaabac" is one chunk. Counts: aa 4 -> merge (a, a): [aa a b d aa a b a c].
    # Then (aa, a) and (a, b) tie at 2; the smaller bytes win: b"a" < b"aa", so (a, b).
    # Then (aa, ab) 2; then all pairs count 1: (a, c) < (aaab, ac) < (aaab, d) < (d, aaab)...
    assert learn_merges("aaabdaaabac", 4) == [(b"a", b"a"), (b"a", b"b"), (b"aa", b"ab"), (b"a", b"c")]
    # Chunks "hug", " hug" x2, " pug": u g 4, then h ug 3, then " " hug 2, then the tie
    # (" ", p) vs (p, ug) at 1 goes to b" " < b"p". No pair spans a chunk boundary
    # (g followed by " " occurs 3 times but is never merged); then no pairs are left.
    tok = train_bpe("hug hug hug pug", vocab_size=300)
    assert tok.merges == [(b"u", b"g"), (b"h", b"ug"), (b" ", b"hug"), (b" ", b"p"), (b" p", b"ug")]
    assert tok.encode("hug hug") == [257, 258] and tok.eot_id == 261 and tok.n_vocab == 262


def test_trained_tokenizer_saves_loads_and_matches_references(tmp_path):
    text = (CORPUS["prose"] + CORPUS["code"] + CORPUS["contractions"] + CORPUS["chinese"]) * 3
    tok = train_bpe(text, vocab_size=400)
    assert len(tok.merges) == 400 - 257
    tok.save(tmp_path)
    loaded = Tokenizer.load(tmp_path)
    assert loaded.vocab == tok.vocab and loaded.merges == tok.merges and loaded.special_tokens == {"<|endoftext|>": 399}
    sample = "the quick fox's code: return x ** 2<|endoftext|>自然"
    ours = loaded.encode(sample, allowed_special="all")
    assert ours == tiktoken_encoding(tmp_path).encode(sample, allowed_special="all")
    assert ours == hf_tokenizer(tmp_path)(sample)["input_ids"]
    assert loaded.decode(ours) == sample


# --- bad input -------------------------------------------------------------------------


def test_bad_input_errors(tok):
    with pytest.raises(TypeError, match="str.*decode bytes first"):
        tok.encode(b"bytes")
    with pytest.raises(TypeError, match="expected text as a str"):
        tok.encode(None)
    with pytest.raises(ValueError, match=r"token id 50257 is not in this vocabulary \(valid ids: 0..50256\)"):
        tok.decode([50257])
    with pytest.raises(ValueError, match="token id -1"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="token ids must be integers"):
        tok.decode(["hello"])
    with pytest.raises(ValueError, match="vocab_size must be an int >= 257"):
        train_bpe("text", 100)


@pytest.mark.parametrize(
    "vocab, merges, message",
    [
        ('{"!": 0, "\\"": 1', "#version: 0.2\n", "is not valid JSON"),
        ('["!", "\\""]', "#version: 0.2\n", "must be one JSON object"),
        ('{"!": "zero"}', "#version: 0.2\n", "must be one JSON object"),
        (None, "#version: 0.2\nĠ t\nĠ  a\n", "line 3.*is not a merge"),
        (None, "#version: 0.2\nĠ t\nĠt zzz\n", "merge 1 .*missing from the vocabulary"),
        ('{"a": 0, "b": 1}', "#version: 0.2\n", "lacks the single-byte tokens"),
    ],
)
def test_malformed_vocabulary_files(tmp_path, vocab, merges, message):
    base = {c: i for i, c in enumerate(json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8")))}
    vocab = vocab or json.dumps(dict(list(base.items())[:257]), ensure_ascii=False)
    (tmp_path / "vocab.json").write_text(vocab, encoding="utf-8")
    (tmp_path / "merges.txt").write_text(merges, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        Tokenizer.load(tmp_path)


# --- hostile files and inputs ----------------------------------------------------------


def gpt2_files(tmp_path, vocab=None, merges=None):
    """A copy of GPT-2's tokenizer files in tmp_path, with vocab.json or merges.txt replaced."""
    vocab = vocab if vocab is not None else (GPT2_DIR / "vocab.json").read_text(encoding="utf-8")
    merges = merges if merges is not None else (GPT2_DIR / "merges.txt").read_text(encoding="utf-8")
    for name, text in [("vocab.json", vocab), ("merges.txt", merges)]:
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return tmp_path


def test_merges_cut_in_half_is_refused(tmp_path):
    lines = (GPT2_DIR / "merges.txt").read_text(encoding="utf-8").split("\n")
    gpt2_files(tmp_path, merges="\n".join(lines[:25_001]) + "\n")  # "#version" + 25,000 merges
    # the first token no merge makes: id 256 + 25,000
    with pytest.raises(ValueError, match=r"vocab.json: entry '.+' \(id 25256\) is not a byte, not made by any of "
                                         r"the 25000 merges in merges.txt, and not a special token .*is merges.txt complete"):
        Tokenizer.load(tmp_path)


def test_empty_vocab_entry_is_refused(tmp_path):
    entries = json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8")) | {"": 50257}
    gpt2_files(tmp_path, vocab=json.dumps(entries))
    with pytest.raises(ValueError, match=r'vocab.json: the empty string "" is an entry \(id 50257\)'):
        Tokenizer.load(tmp_path)


@pytest.mark.parametrize("entry, message", [
    ("<pad>", r"entry '<pad>' \(id 50257\) is not a byte.*not a special token of the form <\|...\|>"),
    ("<||>", r"entry '<\|\|>' \(id 50257\) is not a byte"),
    ("自然", r"entry '自然' \(id 50257\) is not a byte"),
])
def test_special_tokens_must_look_like_endoftext(tmp_path, entry, message):
    entries = json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8")) | {entry: 50257}
    gpt2_files(tmp_path, vocab=json.dumps(entries))
    with pytest.raises(ValueError, match=message):
        Tokenizer.load(tmp_path)
    with pytest.raises(ValueError, match=r"special token '<pad>' is not of the form <\|...\|>"):
        Tokenizer({i: bytes([i]) for i in range(256)}, [], {"<pad>": 256})


def test_two_entries_with_one_id_are_refused(tmp_path):
    entries = json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8")) | {"<|pad|>": 50256}
    gpt2_files(tmp_path, vocab=json.dumps(entries))
    with pytest.raises(ValueError, match=r"id 50256 is given to both '<\|endoftext\|>' and '<\|pad\|>'"):
        Tokenizer.load(tmp_path)


def test_merge_whose_result_is_not_in_the_vocabulary_names_the_line(tmp_path):
    base = {c: i for i, c in enumerate(json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8")))}
    vocab = json.dumps(dict(list(base.items())[:257]), ensure_ascii=False)  # 256 bytes + "Ġt"
    gpt2_files(tmp_path, vocab=vocab, merges="#version: 0.2\nĠ t\nh e\n")
    with pytest.raises(ValueError, match=r"merges.txt, line 3: merge 1 \('h', 'e'\): 'he' is missing from the vocabulary in vocab.json"):
        Tokenizer.load(tmp_path)


def test_vocab_json_that_is_not_utf8_names_the_file(tmp_path):
    gpt2_files(tmp_path, vocab=b'{"\xff": 0}')
    with pytest.raises(ValueError, match=r"vocab.json is not UTF-8 text"):
        Tokenizer.load(tmp_path)


def test_a_fifo_as_vocab_json_is_refused_without_blocking(tmp_path):
    gpt2_files(tmp_path)
    (tmp_path / "vocab.json").unlink()
    os.mkfifo(tmp_path / "vocab.json")
    with pytest.raises(FileNotFoundError, match=r"vocab.json is missing or not a regular file"):
        Tokenizer.load(tmp_path)  # a read would block forever: nothing writes to the FIFO


def test_tokenizer_files_expand_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    train_bpe("hug hug hug pug", vocab_size=300).save("~/tok")
    assert (tmp_path / "tok" / "vocab.json").is_file() and not Path("~").exists()
    assert Tokenizer.load("~/tok").encode("hug pug") == [257, 260]


@pytest.mark.parametrize("value", [None, 3, {1}])
def test_allowed_special_of_the_wrong_type_names_the_argument(tok, value):
    with pytest.raises(TypeError, match=r'allowed_special must be "all" or a set of special tokens|allowed_special must hold special tokens as str'):
        tok.encode("hi", allowed_special=value)


def _bpe_to_the_end(word, merge_ranks):
    """The teaching loop, bpe_steps, run to its last step."""
    parts = [word[i : i + 1] for i in range(len(word))]
    for _, _, parts in bpe_steps(word, merge_ranks):
        pass
    return parts


def test_fast_bpe_equals_the_step_by_step_loop(tok):
    rng = random.Random(0)
    for n in [0, 1, 2, 3, 7, 40, 300]:  # GPT-2's merges, on words where pairs repeat and overlap
        for _ in range(10):
            word = bytes(rng.choice(b"aaabcdeht ") for _ in range(n))
            assert bpe(word, tok.merge_ranks) == _bpe_to_the_end(word, tok.merge_ranks), word
    # a merge that makes a pair of lower rank than itself: bpe_steps merges every (a, b)
    # first, then (c, ab); a heap that took (c, ab) at once would then take (cab, a)
    ranks = {(b"a", b"b"): 2, (b"c", b"ab"): 1, (b"cab", b"a"): 0}
    assert bpe(b"cabab", ranks) == _bpe_to_the_end(b"cabab", ranks) == [b"cab", b"ab"]
    # random merge tables over 3 letters, in any order
    for seed in range(200):
        rng = random.Random(seed)
        pieces = [b"a", b"b", b"c"]
        for _ in range(8):
            pieces.append(rng.choice(pieces) + rng.choice(pieces))
        pairs = sorted({(p[:k], p[k:]) for p in pieces if len(p) > 1 for k in range(1, len(p))})
        rng.shuffle(pairs)
        ranks = {pair: rank for rank, pair in enumerate(pairs)}
        word = bytes(rng.choice(b"abc") for _ in range(rng.randrange(30)))
        assert bpe(word, ranks) == _bpe_to_the_end(word, ranks), (seed, word)


def test_a_long_chunk_without_spaces_is_fast_and_matches_tiktoken(tok, tt):
    """The step-by-step loop is quadratic: 20 KB of random letters took 13 s, 200 KB took hours."""
    rng = random.Random(0)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(200_000))
    assert len(tok.split(text)) == 1, "the test wants one chunk"
    start = time.perf_counter()
    fresh = Tokenizer(tok.vocab, tok.merges, tok.special_tokens)  # an empty cache
    ours = fresh.encode(text)
    seconds = time.perf_counter() - start
    assert ours == tt.encode_ordinary(text)
    assert not fresh._cache, "a long chunk must not be cached: 100,000 of them would fill the memory"
    assert seconds < 20, f"encoding one 200 KB chunk took {seconds:.1f} s: is BPE quadratic again?"


SAVE_UNDER_A_SIZE_LIMIT = """
import resource, sys
from gpt2lib.tokenizer import get_tokenizer
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # GPT-2's vocab.json needs ~1 MB
try:
    get_tokenizer().save(sys.argv[1])
except Exception as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(3)
"""


def test_a_tokenizer_save_that_fails_leaves_the_old_files(tmp_path):
    """GPT-2's tokenizer saved over a small one under a file-size limit: the small one must still load, whole."""
    import subprocess
    import sys

    small = train_bpe("hug hug hug pug pun bun", vocab_size=260)
    small.save(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = subprocess.run([sys.executable, "-c", SAVE_UNDER_A_SIZE_LIMIT, str(tmp_path)], capture_output=True,
                            text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == 3, f"the save should fail under the size limit: {result.stdout}{result.stderr}"
    assert "File too large" in result.stdout or "Errno 27]" in result.stdout, result.stdout  # EFBIG
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, "the old files changed, or temporary ones stayed"
    assert Tokenizer.load(tmp_path).merges == small.merges


def test_a_tokenizer_saved_over_another_replaces_all_its_files_and_keeps_plain_permissions(tmp_path):
    import stat

    train_bpe("hug hug hug pug pun bun", vocab_size=260).save(tmp_path)
    big = train_bpe("the cat sat on the mat, the cat sat", vocab_size=270)
    big.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merges.txt", "tokenizer_config.json", "vocab.json"]
    assert Tokenizer.load(tmp_path).merges == big.merges
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "vocab.json").stat().st_mode) == 0o666 & ~mask
    with pytest.raises(NotADirectoryError, match="pass a directory"):
        big.save(tmp_path / "vocab.json")
