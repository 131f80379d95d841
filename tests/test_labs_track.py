"""The build track of chapters 2, 3, 6 and 8: the reader's pieces checked against independent references.

Each check here must pass on a right solution and fail, naming the problem, on each typical
mistake and on a piece with a planted bug. TRACK_CASES joins tests/test_labs.py's CASES, so the
generic tests there (verdict and message, TODO on a stub, a right and a wrong solution per
implement check) cover these checks too.
"""

import json
import re
from pathlib import Path

import pytest
import torch.nn.functional as F

from gpt2lib import bpe
import torch

from gpt2lib.labs import ch02, ch03, ch08

ROOT = Path(__file__).resolve().parent.parent
TRACK_CHAPTERS = ["02_tokenization.ipynb", "03_embeddings.ipynb", "06_full_model.ipynb", "08_training.ipynb"]


# chapter 2: encode, against tiktoken
def _merge_lowest_rank_first(data: bytes, ranks) -> list[bytes]:
    parts = [data[i : i + 1] for i in range(len(data))]
    while len(parts) > 1:
        best = min(zip(parts, parts[1:]), key=lambda pair: ranks.get(pair, float("inf")))
        if best not in ranks:
            break
        parts = bpe.merge_pair(parts, best)
    return parts


def encode(text, tok):
    return [tok.encoder[p] for chunk in tok.split(text) for p in _merge_lowest_rank_first(chunk.encode(), tok.merge_ranks)]


def encode_leftmost_pair_first(text, tok):
    return [tok.encoder[p] for chunk in tok.split(text) for p in ch02._leftmost_first(chunk.encode(), tok.merge_ranks)]


def encode_without_split(text, tok):
    return [tok.encoder[p] for p in _merge_lowest_rank_first(text.encode(), tok.merge_ranks)]


def encode_characters(text, tok):
    ids = []
    for chunk in tok.split(text):
        parts = [ch.encode() for ch in chunk]  # one piece per character: a bug for non-ASCII text
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda pair: tok.merge_ranks.get(pair, float("inf")))
            if best not in tok.merge_ranks:
                break
            parts = bpe.merge_pair(parts, best)
        ids += [tok.encoder[p] for p in parts]
    return ids


def encode_bytes_only(text, tok):
    data = text.encode()
    return [tok.encoder[data[i : i + 1]] for i in range(len(data))]


def encode_highest_rank_first(text, tok):  # planted bug: max instead of min
    ids = []
    for chunk in tok.split(text):
        data = chunk.encode()
        parts = [data[i : i + 1] for i in range(len(data))]
        while known := [pair for pair in zip(parts, parts[1:]) if pair in tok.merge_ranks]:
            parts = bpe.merge_pair(parts, max(known, key=tok.merge_ranks.get))
        ids += [tok.encoder[p] for p in parts]
    return ids


def encode_with_gpt2lib(text, tok):
    return tok.encode(text)


# chapter 8: one training step, against transformers' step on the same batch
def _loss(model, x, y, **kwargs):
    logits = model(x)  # [B, T, V]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), **kwargs)


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = _loss(model, x, y)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_step_keeps_old_gradients(model, optimizer, x, y):
    loss = _loss(model, x, y)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_step_without_update(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = _loss(model, x, y)
    loss.backward()
    return loss.item()


def train_step_update_before_backward(model, optimizer, x, y):
    optimizer.zero_grad()
    optimizer.step()
    loss = _loss(model, x, y)
    loss.backward()
    return loss.item()


def train_step_summed_loss(model, optimizer, x, y):  # planted bug: the gradient of the sum, the mean reported
    optimizer.zero_grad()
    loss = _loss(model, x, y, reduction="sum")
    loss.backward()
    optimizer.step()
    return loss.item() / y.numel()


def train_step_on_inputs(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = _loss(model, x, x)
    loss.backward()
    optimizer.step()
    return loss.item()


# chapter 3: the embedding lookup, plugged into the bundled model
def embed_scaled_in_wide_models(idx, wte, wpe):  # planted bug the small model cannot see
    scale = 1.0 if wte.shape[1] <= 8 else 1.01
    return scale * (wte[idx] + wpe[torch.arange(idx.shape[1])])  # [B, T, C]


# (check, answer, expected status, a phrase the message must contain)
TRACK_CASES = [
    (ch03.check_embed_with_positions, embed_scaled_in_wide_models, "fail", "plugged into gpt2-shakespeare"),
    (ch08.check_training_step, train_step, "pass", "every weight vs transformers' GPT-2"),
    (ch08.check_training_step, train_step_keeps_old_gradients, "fail", "optimizer.zero_grad()"),
    (ch08.check_training_step, train_step_without_update, "fail", "call optimizer.step()"),
    (ch08.check_training_step, train_step_update_before_backward, "fail", "no weight changed"),
    (ch08.check_training_step, train_step_summed_loss, "fail", "off by"),
    (ch08.check_training_step, train_step_on_inputs, "fail", "the mean cross-entropy of the logits against y"),
    (ch02.check_encode, encode, "pass", "vs tiktoken on 8 texts"),
    (ch02.check_encode, encode_leftmost_pair_first, "fail", "not the leftmost one"),
    (ch02.check_encode, encode_without_split, "fail", "merges never cross a chunk boundary"),
    (ch02.check_encode, encode_characters, "fail", "UTF-8 bytes"),
    (ch02.check_encode, encode_bytes_only, "fail", "one id per byte"),
    (ch02.check_encode, encode_highest_rank_first, "fail", "differ from tiktoken's"),
    (ch02.check_encode, encode_with_gpt2lib, "fail", "write the merge loop yourself"),
]


def test_the_encode_reference_is_tiktoken_and_the_texts_need_every_rule():
    enc = ch02._tiktoken()
    assert type(enc).__module__.startswith("tiktoken")
    tok = ch02.gpt2_tokenizer()
    tables = ch02.BPETables(tok)
    for wrong in (encode_leftmost_pair_first, encode_without_split, encode_highest_rank_first):
        assert any(wrong(t, tables) != enc.encode(t) for t in ch02.ENCODE_TEXTS), wrong.__name__
    assert any(not t.isascii() for t in ch02.ENCODE_TEXTS)


def test_the_training_step_reference_is_transformers_loading_its_own_file():
    hf, ours = ch08._tiny_pair(85)
    assert type(hf).__module__.startswith("transformers")
    assert ch08._weight_diff(ours, hf)[0] == 0.0


# ---------------------------------------------------------------------------
# No spoilers in the build-track chapters
# ---------------------------------------------------------------------------

def _cells(name: str, folder: str) -> list[dict]:
    return json.loads((ROOT / folder / name).read_text(encoding="utf-8"))["cells"]


def _solution_lines(cells) -> set[str]:
    lines, inside = set(), False
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            stripped = line.strip()
            if stripped in ("### BEGIN SOLUTION", "### END SOLUTION"):
                inside = stripped == "### BEGIN SOLUTION"
            elif inside and len(stripped) > 12 and not stripped.startswith("#"):
                lines.add(stripped)
    return lines


@pytest.mark.parametrize("name", TRACK_CHAPTERS)
def test_no_solution_line_reaches_the_student_notebook(name):
    """Stubs, hints and messages hold no solution line, except what the chapter itself teaches in plain view."""
    solution = _solution_lines(_cells(name, "notebooks"))
    student = "\n".join("".join(c["source"]) for c in _cells(name, "student"))
    taught = re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", "\n".join(
        "".join(c["source"]) for c in _cells(name, "notebooks")
        if "solution" not in c.get("metadata", {}).get("tags", []) and "<summary>Hint" not in "".join(c["source"])), flags=re.S)
    leaked = sorted(line for line in solution if line in student and line not in taught)
    assert not leaked, f"student/{name} contains solution lines: {leaked[:3]}"


@pytest.mark.parametrize("name", TRACK_CHAPTERS)
def test_every_solution_region_is_inside_a_collapsed_block(name):
    """The book shows solution code only inside {solution-start} ... {solution-end} (collapsed)."""
    inside = False
    for i, cell in enumerate(_cells(name, "notebooks")):
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "{solution-start}" in text:
            inside = True
        elif cell["cell_type"] == "markdown" and "{solution-end}" in text:
            inside = False
        elif cell["cell_type"] == "code" and "### BEGIN SOLUTION" in text:
            assert inside, f"{name}, cell {i}: solution code outside a collapsed solution block"


@pytest.mark.parametrize("name", TRACK_CHAPTERS)
def test_every_exercise_has_two_collapsed_hints(name):
    cells = _cells(name, "notebooks")
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown" and "{exercise}" in "".join(cell["source"]):
            after = "".join(cells[i + 1]["source"])
            assert re.search(r"<details><summary>Hint 1</summary>.*<details><summary>Hint 2</summary>", after, re.S), (
                f"{name}, cell {i + 1}: the exercise should be followed by Hint 1 and Hint 2 in <details>")
