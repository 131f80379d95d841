"""The command line, run for real in a subprocess on small models saved to disk."""

import os
import subprocess
import sys

import pytest
import torch

from gpt2lib import GPTConfig, check, generate, save_pretrained
from gpt2lib.__main__ import decode_stream
from gpt2lib.tokenizer import Tokenizer, get_tokenizer, hf_tokenizer
from conftest import random_gpt

# GPT-2's vocabulary, but tiny everywhere else
CONFIG = GPTConfig(n_vocab=50257, n_ctx=64, n_embd=32, n_layer=2, n_head=2)


def run(*args):
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "gpt2lib", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    model = random_gpt(CONFIG, seed=6, std=0.1)
    return save_pretrained(model, tmp_path_factory.mktemp("small")), model


def test_generate_prints_transformers_greedy_text(small):
    directory, model = small
    prompt = "The quick brown fox"
    result = run("generate", prompt, "--model", directory, "--max-new-tokens", 25)
    assert result.returncode == 0, result.stderr
    tokenizer = hf_tokenizer()
    ids = torch.tensor([tokenizer.encode(prompt)])
    hf = check.hf_gpt2(model)
    new = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=25, do_sample=False)[0, ids.size(1):]
    assert result.stdout == prompt + tokenizer.decode(new.tolist()) + "\n"


def test_generate_passes_the_sampling_options(small):
    directory, model = small
    result = run("generate", "Hello", "--model", directory, "--max-new-tokens", 20,
                 "--temperature", 1.5, "--top-k", 50, "--top-p", 0.9, "--seed", 3)
    assert result.returncode == 0, result.stderr
    tokenizer = get_tokenizer()
    ids = generate(model, tokenizer.encode("Hello"), 20, temperature=1.5, top_k=50, top_p=0.9, seed=3)
    assert result.stdout == "Hello" + tokenizer.decode(ids) + "\n"


def test_a_model_directory_with_its_own_tokenizer_uses_it(tmp_path):
    """A byte-level tokenizer of 257 tokens: GPT-2's would give ids this model cannot take."""
    tokenizer = Tokenizer({i: bytes([i]) for i in range(256)}, [], {"<|endoftext|>": 256})
    model = random_gpt(GPTConfig(n_vocab=257, n_ctx=64, n_embd=32, n_layer=2, n_head=2), seed=8)
    save_pretrained(model, tmp_path)
    tokenizer.save(tmp_path)
    result = run("generate", "hi", "--model", tmp_path, "--max-new-tokens", 30)
    assert result.returncode == 0, result.stderr
    expected = generate(model, list(b"hi"), 30, eos_id=256)
    assert result.stdout == "hi" + tokenizer.decode(expected) + "\n"


def test_info_shows_config_parameters_and_size(small):
    directory, model = small
    result = run("info", directory)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "n_layer:        2" in lines and "n_embd:         32" in lines
    assert f"parameters:     {model.num_parameters():,} (1.6M; lm_head is tied to wte)" in lines
    size = (directory / "model.safetensors").stat().st_size / 1e6
    assert f"weights:        model.safetensors, {size:.1f} MB (F32)" in lines


@pytest.mark.parametrize("args, message", [
    (["info", "no-such-model"], "error: 'no-such-model' is neither a directory nor a known model name"),
    (["generate", " x" * 70, "--model", "SMALL"], "exceeds the context window n_ctx=64: the prompt alone is too long"),
])
def test_errors_are_one_line_and_exit_2(small, args, message):
    result = run(*[str(small[0]) if a == "SMALL" else a for a in args])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr


def test_decode_stream_prints_each_character_once_complete():
    tokenizer = get_tokenizer()
    text = "héllo 😀 世界 🤗"
    ids = tokenizer.encode(text)
    assert len(ids) > len(text.split()) * 2, "the test wants characters split across tokens"
    pieces = list(decode_stream(tokenizer, ids))
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)
    # an unfinished character at the end comes out as one replacement character, as decode() does
    assert "".join(decode_stream(tokenizer, ids[:-1])) == tokenizer.decode(ids[:-1])


def test_prompt_from_stdin_gives_the_same_text(small):
    directory, _ = small
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    piped = subprocess.run([sys.executable, "-m", "gpt2lib", "generate", "-", "--model", str(directory),
                            "--max-new-tokens", "10"], input="The quick brown fox\n", capture_output=True,
                           text=True, env=env, timeout=300)
    direct = run("generate", "The quick brown fox", "--model", directory, "--max-new-tokens", 10)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == direct.stdout and piped.stdout.startswith("The quick brown fox")


def test_a_model_whose_vocabulary_differs_from_the_tokenizer_is_refused(tmp_path):
    padded = save_pretrained(random_gpt(GPTConfig(n_vocab=50304, n_ctx=16, n_embd=16, n_layer=1, n_head=1)),
                             tmp_path / "padded")
    result = run("generate", "Hello", "--model", padded, "--max-new-tokens", 3)
    assert result.returncode != 0 and result.stdout == ""
    assert "n_vocab=50304" in result.stderr and "50257" in result.stderr, result.stderr
