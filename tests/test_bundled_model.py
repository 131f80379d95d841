"""The bundled model "gpt2-shakespeare": loads offline in gpt2lib and transformers, matches
its model card, and reproduces the card's measurements.

The card's numbers are re-measured here on the files shipped next to the model
(validation_sample.txt is the start of a held-out play), not taken from the code under test.
"""

import hashlib
import json
import re

import pytest
import torch

import gpt2lib
from gpt2lib.interpret import induction, previous_token_scores, repeated_random_tokens
from gpt2lib.loading import BUNDLED_DIR
from gpt2lib.train import evaluate_loss

CARD = BUNDLED_DIR / "README.md"


@pytest.fixture(scope="module")
def model():
    return gpt2lib.from_pretrained(gpt2lib.BUNDLED_MODEL)


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2lib.get_tokenizer()


@pytest.fixture(scope="module")
def sample_ids(tokenizer):
    return tokenizer.encode((BUNDLED_DIR / "validation_sample.txt").read_text())


@pytest.fixture(scope="module")
def card() -> str:
    return CARD.read_text()


@pytest.fixture(scope="module")
def evaluation() -> dict:
    return json.loads((BUNDLED_DIR / "evaluation.json").read_text())


def card_number(card: str, key: str) -> float:
    match = re.search(rf"^{key}: ([0-9.]+)$", card, re.MULTILINE)
    assert match, f"the model card has no line '{key}: <number>'; rerun scripts/train_shakespeare.py --card-only"
    return float(match.group(1))


def test_shipped_files():
    for name in ("config.json", "model.safetensors", "vocab.json", "merges.txt", "README.md", "loss_curve.png",
                 "training_log.json", "evaluation.json", "validation_sample.txt"):
        assert (BUNDLED_DIR / name).is_file(), f"{name} is missing from {BUNDLED_DIR}"
    size = (BUNDLED_DIR / "model.safetensors").stat().st_size
    assert size <= 25e6, f"model.safetensors is {size / 1e6:.1f} MB; the package ships at most 25 MB"
    for name in ("vocab.json", "merges.txt"):  # GPT-2's tokenizer, byte for byte
        shipped = (BUNDLED_DIR / name).read_bytes()
        assert shipped == (BUNDLED_DIR.parent / "gpt2-tokenizer" / name).read_bytes(), f"{name} is not GPT-2's"


def test_same_logits_in_gpt2lib_and_transformers(model, sample_ids):
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(BUNDLED_DIR, dtype=torch.float32, attn_implementation="eager").eval()
    ids = torch.tensor([sample_ids[:128], sample_ids[128:256]])  # [2, 128]
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    # Logits reach |20| here: float32 rounding in a different order of operations gives
    # ~1e-6 relative differences, so the tolerance is 1e-5 plus 1e-5 of the logit's size.
    diff = (ours - theirs).abs()
    excess = (diff - 1e-5 * theirs.abs()).max().item()
    assert excess <= 1e-5, (f"logits differ by up to {diff.max().item():.2e} (largest |logit| "
                            f"{theirs.abs().max().item():.1f}): a weight loaded or transposed differently?")
    prompt = sample_ids[:8]
    hf_greedy = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                            pad_token_id=50256)[0, 8:].tolist()
    assert gpt2lib.generate(model, prompt, 20, eos_id=None) == hf_greedy, "greedy continuations differ"


def test_seeded_generation_is_deterministic(model, tokenizer):
    prompt = tokenizer.encode("ROMEO:\n")
    first = gpt2lib.generate(model, prompt, 30, temperature=1.0, seed=7)
    assert first == gpt2lib.generate(model, prompt, 30, temperature=1.0, seed=7)
    assert first != gpt2lib.generate(model, prompt, 30, temperature=1.0, seed=8), "the seed has no effect"


def test_card_sha256_matches_the_weights(card):
    digest = hashlib.sha256((BUNDLED_DIR / "model.safetensors").read_bytes()).hexdigest()
    listed = re.findall(r"`([0-9a-f]{64})`", card)
    assert listed == [digest], f"the card lists {listed}, the shipped weights hash to {digest}"


def test_card_validation_loss_is_reproduced(model, sample_ids, card, evaluation):
    recorded = card_number(card, "validation_sample_loss")
    measured = evaluate_loss(model, sample_ids, model.config.n_ctx)
    assert abs(measured - recorded) <= 0.01, f"card says {recorded:.4f} nats/token, the shipped model gives {measured:.4f}"
    assert card_number(card, "validation_loss") == pytest.approx(evaluation["val_loss"], abs=1e-4)
    assert evaluation["val_loss"] < evaluation["val_unigram"] - 1.0, "no better than counting token frequencies"
    log = json.loads((BUNDLED_DIR / "training_log.json").read_text())
    play = log["data"]["val_plays"][0]
    assert play not in log["data"]["train_plays"], "the validation sample comes from a play the model trained on"


def test_measured_behaviour_is_reproduced(model, sample_ids, evaluation):
    windows = torch.tensor(sample_ids[: 16 * 256]).view(16, 256)  # the card's 16 windows
    scores = previous_token_scores(model, windows)
    torch.testing.assert_close(scores, torch.tensor(evaluation["prev_scores"]), atol=1e-4, rtol=0)
    ids = repeated_random_tokens(100, batch_size=8, seed=1234)
    result = induction(model, ids, 100)
    recorded = evaluation["induction_full_vocab"]
    assert result.loss_second == pytest.approx(recorded["loss_second"], abs=1e-3)
    assert list(result.best) == recorded["best"]
