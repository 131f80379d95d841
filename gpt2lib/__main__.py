"""Command line: `python -m gpt2lib generate "prompt"` and `python -m gpt2lib info MODEL`.

    python -m gpt2lib generate "To be, or not to be" --max-new-tokens 40 --temperature 0.8 --seed 1
    python -m gpt2lib info gpt2-shakespeare
"""

import argparse
import codecs
import sys
from collections.abc import Iterator

from .loading import BUNDLED_MODEL, HUB_MODELS

USAGE_MODELS = f"{BUNDLED_MODEL} (bundled), {', '.join(HUB_MODELS)} (hub), or a directory"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpt2lib", description="GPT-2 from scratch: generate text, inspect models.")
    commands = p.add_subparsers(dest="command", required=True)
    g = commands.add_parser("generate", help="continue a prompt, printing tokens as they are generated")
    g.add_argument("prompt", help='the text to continue ("" starts from <|endoftext|>; - reads it from stdin)')
    g.add_argument("--model", default=BUNDLED_MODEL, help=f"{USAGE_MODELS}; default {BUNDLED_MODEL}")
    g.add_argument("--max-new-tokens", type=int, default=50, help="at most this many new tokens (default 50)")
    g.add_argument("--temperature", type=float, help="sample at this temperature (0 = greedy; default: greedy)")
    g.add_argument("--top-k", type=int, help="sample among the k most likely tokens")
    g.add_argument("--top-p", type=float, help="sample among the most likely tokens holding mass p")
    g.add_argument("--seed", type=int, help="make sampling reproducible")
    g.add_argument("--no-cache", action="store_true", help="recompute every step without the KV cache (slower)")
    i = commands.add_parser("info", help="show a model's config, parameter count and weight file size")
    i.add_argument("model", help=USAGE_MODELS)
    return p


def tokenizer_for(directory):
    """The model directory's own vocab.json + merges.txt if it ships them, else GPT-2's."""
    from .tokenizer import Tokenizer, get_tokenizer

    if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        return Tokenizer.load(directory)
    return get_tokenizer()


def run_generate(args, out) -> None:
    from .generate import stream_generate
    from .loading import from_pretrained, resolve

    prompt = read_prompt(args.prompt)
    directory = resolve(args.model)
    model = from_pretrained(directory)
    tokenizer = tokenizer_for(directory)
    check_vocabularies(model.config.n_vocab, tokenizer, directory)
    ids = tokenizer.encode(prompt, allowed_special="all") or [tokenizer.eot_id]
    if ids == [None]:
        raise ValueError("the prompt is empty and this tokenizer has no <|endoftext|> to start from; give a prompt")
    tokens = stream_generate(model, ids, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                             top_p=args.top_p, seed=args.seed, eos_id=tokenizer.eot_id, use_cache=not args.no_cache)
    out.write(prompt)
    out.flush()
    for text in decode_stream(tokenizer, tokens):
        out.write(text)
        out.flush()
    out.write("\n")


def read_prompt(prompt: str) -> str:
    """The prompt argument, or for "-" the text on stdin (without the newline echo adds)."""
    if prompt != "-":
        return prompt
    text = sys.stdin.read()
    return text.removesuffix("\n")


def check_vocabularies(n_vocab: int, tokenizer, directory) -> None:
    """Refuse a model and tokenizer whose vocabularies differ, before anything is printed:
    the prompt would get ids the model cannot take, or the model produce ids the tokenizer
    cannot decode (a vocabulary padded to 50,304 used with GPT-2's 50,257 tokens)."""
    if n_vocab != tokenizer.n_vocab:
        raise ValueError(
            f"the model in {directory} has n_vocab={n_vocab} but its tokenizer has {tokenizer.n_vocab} tokens; "
            f"put the model's own vocab.json + merges.txt in {directory} (Tokenizer.save), or save a model "
            f"whose vocabulary is the tokenizer's"
        )


def decode_stream(tokenizer, tokens) -> Iterator[str]:
    """Text as the tokens arrive. A character can span several tokens (an emoji often
    takes 2 or 3), so bytes are decoded incrementally: each character appears once
    complete. "".join(decode_stream(tok, ids)) == tok.decode(ids)."""
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for token in tokens:
        text = utf8.decode(tokenizer.token_bytes(token))
        if text:
            yield text
    tail = utf8.decode(b"", final=True)  # an unfinished character at the very end
    if tail:
        yield tail


def run_info(args, out) -> None:
    from .config import count_parameters
    from .loading import read_config, read_header, resolve, weight_files

    directory = resolve(args.model)
    config = read_config(directory)
    files = weight_files(directory)
    header = read_header(files[0])
    if not header:
        raise ValueError(f"{files[0]} holds no tensors; save the model's weights into it again")
    stored = next(iter(header.values()))[1]  # the dtype of the first tensor, e.g. F32
    size = sum(file.stat().st_size for file in files)
    n = count_parameters(config)
    rows = {"model": args.model, "directory": directory.resolve()}
    rows |= {field: getattr(config, field) for field in ("n_vocab", "n_ctx", "n_embd", "n_layer", "n_head", "layer_norm_eps")}
    rows["parameters"] = f"{n:,} ({n / 1e6:.1f}M; lm_head is tied to wte)"
    rows["weights"] = f"{', '.join(f.name for f in files)}, {size / 1e6:.1f} MB ({stored})"
    for name, value in rows.items():
        out.write(f"{name + ':':<16}{value}\n")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        (run_generate if args.command == "generate" else run_info)(args, sys.stdout)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except Exception as e:  # one clear line, no traceback: these are the user's inputs
        message = " ".join(str(e).split())
        if not isinstance(e, (ValueError, TypeError, OSError)):  # unexpected: name it
            message = f"{type(e).__name__}: {message}"
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
