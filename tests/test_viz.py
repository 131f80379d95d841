"""The views' data, the JavaScript that draws it, and the HTML around it.

The sampling math in the page's JavaScript is run with node and compared with
gpt2lib.generate.next_token_probs; the views are driven in headless Chromium.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gpt2lib
from gpt2lib import viz
from gpt2lib.generate import next_token_probs
from gpt2lib.viz.embeddings import word_ids
from gpt2lib.viz.render import asset

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TOKENIZER_FILES = Path(gpt2lib.__file__).parent / "data" / "gpt2-tokenizer" / "vocab.json"
TEXT = "The cat sat on the mat.\nThe dog sat on the log, and the cat looked at the dog."
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def tok():
    if not TOKENIZER_FILES.exists():
        pytest.skip("GPT-2's tokenizer files are missing from gpt2lib/data/gpt2-tokenizer/")
    return gpt2lib.get_tokenizer()


def tiny_model(seed: int = 0, wte_scale: float = 1.0) -> gpt2lib.GPT:
    """A random 2-layer GPT with GPT-2's vocabulary; wte_scale sharpens its next-token distribution."""
    torch.manual_seed(seed)
    model = gpt2lib.GPT(gpt2lib.GPTConfig(n_layer=2, n_head=3, n_embd=24, n_ctx=64)).eval()
    with torch.no_grad():
        model.wte.weight.mul_(wte_scale)
        for block in model.h:  # sharper attention than a fresh init, so patterns differ per head
            block.attn.c_attn.weight.mul_(4.0)
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def embedded(view) -> dict:
    """The JSON the page's JavaScript reads, parsed back out of the HTML."""
    found = re.search(r'<script type="application/json" class="g2v-data">(.*?)</script>', view.html(), re.S)
    assert found, "the view's HTML has no embedded data"
    return json.loads(found.group(1))


# ---- attention ----

def test_attention_rows_sum_to_one_and_future_is_zero(model, tok):
    result = viz.attention_data(model, tok, tok.encode(TEXT))
    L, nh, T, _ = result.weights.shape
    assert (L, nh, T) == (2, 3, len(tok.encode(TEXT)))
    sums = result.weights.sum(-1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5), f"rows sum to {sums.min()}..{sums.max()}, not 1"
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    leak = result.weights[..., future].abs().max()
    assert leak == 0, f"attention to future tokens is {leak}, not 0: mask applied after the softmax?"
    assert result.labels[:3] == ["The", "␣cat", "␣sat"] and "↵" in result.labels


def test_attention_page_data_is_the_lower_triangle_row_by_row(model, tok):
    """The JavaScript reads weight (i, j) at w[l][h][i(i+1)/2 + j]; a transposed layout would pass any sum check."""
    view = viz.attention_view(model, tok, TEXT)
    data, weights = embedded(view), view.result.weights
    T, scale = data["T"], data["scale"]
    for l in range(data["n_layer"]):
        for h in range(data["n_head"]):
            flat = data["w"][l][h]
            assert len(flat) == T * (T + 1) // 2
            for i in range(T):
                for j in range(i + 1):
                    expected = round(float(weights[l, h, i, j]) * scale)
                    assert abs(flat[i * (i + 1) // 2 + j] - expected) <= 1, (
                        f"layer {l} head {h}: page has {flat[i * (i + 1) // 2 + j]} at ({i}, {j}), "
                        f"weights say {expected} (units of 1/{scale})")


def test_attention_cap_keeps_the_first_tokens_and_says_so(model, tok):
    ids = tok.encode(TEXT)
    view = viz.attention_view(model, tok, TEXT, max_tokens=8)
    full = model.trace(torch.tensor([ids])).attentions  # the whole text
    assert view.result.ids == ids[:8] and view.result.total_tokens == len(ids)
    for l, a in enumerate(full):  # causal: the first 8 tokens' weights ignore the rest
        diff = (view.result.weights[l] - a[0, :, :8, :8]).abs().max()
        assert diff < 1e-6, f"layer {l}: capped weights differ from the full text's by {diff}"
    assert embedded(view)["total"] == len(ids)
    assert f"the first 8 of {len(ids)} tokens" in view.html()


def causal_uniform(L: int, nh: int, T: int) -> torch.Tensor:
    """[L, nh, T, T]: every head spreads each row evenly over the tokens it can see."""
    mask = torch.tril(torch.ones(T, T))
    return (mask / mask.sum(-1, keepdim=True)).expand(L, nh, T, T).clone()


def one_hot_rows(T: int, key) -> torch.Tensor:
    """[T, T]: row i puts all its weight on key(i) (which must be <= i)."""
    w = torch.zeros(T, T)
    for i in range(T):
        w[i, key(i)] = 1.0
    return w


def test_default_head_prefers_induction_then_previous_token_then_focus():
    ids = [5, 6, 7, 8, 5, 6, 7, 8]  # repeats: token 5 at 4 saw 5 at 0, then 6 at 1
    T = len(ids)
    weights = causal_uniform(3, 4, T)
    weights[0, 0] = one_hot_rows(T, lambda i: 0)  # an attention sink: sharp, but on the first token
    weights[1, 3] = one_hot_rows(T, lambda i: max(i - 1, 0))  # previous token
    weights[2, 1] = one_hot_rows(T, lambda i: i - 3 if i >= 4 else max(i - 1, 0))  # induction in the repeat
    scores = viz.heads.head_scores(weights, ids)
    assert float(scores.previous[1, 3]) == 1.0 and float(scores.sink[0, 0]) == 1.0
    assert abs(float(scores.induction[2, 1]) - 1.0) < 1e-6, f"induction score {scores.induction[2, 1]}, not 1"
    choice = viz.heads.choose_head(scores)
    assert (choice.layer, choice.head) == (2, 1) and "induction" in choice.reason, choice
    assert viz.heads.head_scores(weights, list(range(T))).induction is None, "no repeat, no induction score"
    choice = viz.heads.choose_head(viz.heads.head_scores(weights, list(range(T))))
    assert (choice.layer, choice.head) == (1, 3) and "previous-token" in choice.reason, choice
    weights[1, 3] = causal_uniform(1, 1, T)[0, 0]
    weights[2, 1] = causal_uniform(1, 1, T)[0, 0]
    weights[1, 2] = one_hot_rows(T, lambda i: min(i, 2))  # sharp on token 2, not the first token
    choice = viz.heads.choose_head(viz.heads.head_scores(weights, list(range(T))))
    assert (choice.layer, choice.head) == (1, 2) and "focused" in choice.reason, (
        f"{choice}: a sink on the first token must not win as the most informative head")


def test_default_head_respects_a_given_layer_or_head():
    T = 6
    weights = causal_uniform(2, 3, T)
    weights[1, 2] = one_hot_rows(T, lambda i: max(i - 1, 0))
    weights[0, 1] = 0.5 * one_hot_rows(T, lambda i: max(i - 1, 0)) + 0.5 * causal_uniform(1, 1, T)[0, 0]
    scores = viz.heads.head_scores(weights, list(range(T)))
    assert (viz.heads.choose_head(scores, layer=0).layer, viz.heads.choose_head(scores, layer=0).head) == (0, 1)
    assert viz.heads.choose_head(scores, head=2).layer == 1
    assert viz.heads.choose_head(scores, layer=0, head=0).reason == "chosen"
    with pytest.raises(ValueError, match="layer=2 is out of range"):
        viz.heads.choose_head(scores, layer=2)


def test_previous_token_scores_match_interpret(model, tok):
    from gpt2lib.interpret import previous_token_scores

    ids = tok.encode(TEXT)
    result = viz.attention_data(model, tok, ids)
    ours = viz.heads.head_scores(result.weights, result.ids).previous
    ref = previous_token_scores(model, torch.tensor([ids]))
    assert torch.allclose(ours, ref, atol=1e-6), f"max difference {(ours - ref).abs().max():.2e}"


def test_attention_view_opens_on_the_chosen_head(model, tok):
    view = viz.attention_view(model, tok, TEXT)
    data = embedded(view)
    scores = viz.heads.head_scores(view.result.weights, view.result.ids)
    choice = viz.heads.choose_head(scores)
    assert data["start"] == [choice.layer, choice.head] and data["reason"] == choice.reason
    assert set(data["heads"]) >= {"previous", "sink", "focus"}
    explicit = viz.attention_view(model, tok, TEXT, layer=1, head=0)
    assert embedded(explicit)["start"] == [1, 0] and "Attention · layer 1 · head 0" in explicit.fallback
    with pytest.raises(ValueError, match="head=3 is out of range"):
        viz.attention_view(model, tok, TEXT, head=3)


def run_js(files: list[str], body: str, payload) -> object:
    """Run the shipped JavaScript files, then body (which reads `input` and sets `out`), under node."""
    script = "\n".join(asset(f) for f in files) + """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
let out;
""" + body + "\nprocess.stdout.write(JSON.stringify(out));"
    done = subprocess.run([NODE, "-e", script], input=json.dumps(payload), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_attention_weights_show_correctly_rounded(model, tok):
    """The page rounds the stored integers; what it shows must be the weight itself rounded.
    Thousandths failed this: 0.5951 was stored as 595 and shown as 0.59."""
    view = viz.attention_view(model, tok, TEXT)
    data = embedded(view)
    scale, T = data["scale"], data["T"]
    rows = torch.tril_indices(T, T)
    true = view.result.weights.double()[:, :, rows[0], rows[1]].flatten()  # [L * nh * T(T+1)/2]
    units = [u for layer in data["w"] for head in layer for u in head]
    shown = run_js(["common.js"], "out = [2, 3].map(d => input.units.map(u => G2V.fixedFromUnits(u, input.scale, d)));",
                   {"units": units + [59510, 59499], "scale": scale})
    assert shown[0][-2:] == ["0.60", "0.59"], f"0.59510 and 0.59499 show as {shown[0][-2:]}"
    for digits, texts in zip([2, 3], shown):
        for w, text in zip(true.tolist(), texts):
            tie = abs(w * 10**digits % 1 - 0.5) < 2 * 10**digits / scale  # too close to call at this precision
            assert tie or text == f"{w:.{digits}f}", f"weight {w!r} shows as {text} with {digits} decimals"


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_masked_future_is_a_staircase():
    """Cells j > i, one step per row: no diagonal edge through cells, nothing past the last row."""
    path = run_js(["common.js", "attention.js"], "out = G2V.maskPath(input.T, input.cell);", {"T": 3, "cell": 10})
    assert path == "M10,0 H30 V20 H20 V10 H10 V0 Z", path


def test_token_labels_make_whitespace_visible(tok):
    ids = tok.encode(" the\n\t")
    assert [viz.token_label(tok, i) for i in ids] == ["␣the", "↵", "⇥"]
    split = tok.encode("🤗")  # one character, several tokens
    assert len(split) > 1 and all("\ufffd" in viz.token_label(tok, i) for i in split)


# ---- embeddings ----

def test_neighbours_are_sorted_and_match_brute_force(model):
    wte = model.wte.weight.detach()
    ids, scores = viz.nearest_neighbours(wte, 464, k=10)
    assert int(ids[0]) == 464 and abs(float(scores[0]) - 1) < 1e-5, "a token's nearest neighbour is itself"
    assert torch.all(scores[:-1] >= scores[1:]), f"scores not sorted: {scores.tolist()}"
    reference = F.cosine_similarity(wte, wte[464][None, :], dim=-1)  # [V]
    ref_scores, ref_ids = torch.sort(reference, descending=True)
    assert ids.tolist() == ref_ids[:10].tolist()
    assert torch.allclose(scores, ref_scores[:10], atol=1e-5)


def test_pca_matches_an_eigendecomposition_of_the_covariance():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 10, generator=gen, dtype=torch.float64) * torch.linspace(3, 0.1, 10, dtype=torch.float64)
    proj = viz.pca_2d(x)
    xc = (x - x.mean(0)).numpy()
    evals, evecs = np.linalg.eigh(xc.T @ xc)  # ascending
    top = evecs[:, ::-1][:, :2]  # [C, 2], the two main directions
    ref = xc @ top  # [N, 2]
    for c in range(2):
        ours = proj.coords[:, c].numpy()
        assert np.allclose(ours, ref[:, c], atol=1e-8) or np.allclose(ours, -ref[:, c], atol=1e-8), (
            f"component {c} differs from the eigenvector projection beyond a sign flip")
        assert ours[np.abs(ours).argmax()] > 0, "sign convention: the furthest point lies on the + side"
    assert np.allclose(proj.explained.numpy(), evals[::-1][:2] / evals.sum(), atol=1e-10)
    again = viz.pca_2d(x.flip(1))  # the same points with their coordinates reordered
    assert torch.allclose(again.coords, proj.coords, atol=1e-8), "the picture must not flip between runs"


def test_embedding_data_against_direct_formulas(model, tok):
    words = [" king", " queen", " river", " bank"]
    r = viz.embedding_data(model, tok, words, k=5)
    wte, wpe = model.wte.weight.detach(), model.wpe.weight.detach()
    ids = word_ids(tok, words)
    ref = F.cosine_similarity(wte[ids][:, None, :], wte[ids][None, :, :], dim=-1)
    assert torch.allclose(r.similarity, ref, atol=1e-5)
    for n, i in zip(r.neighbours, ids):
        assert n.ids[0] == i and n.scores == sorted(n.scores, reverse=True)
    p = r.positions.index(37)
    moved = wte[ids[1]] + wpe[37]
    assert abs(float(r.vs_token[1, p]) - float(F.cosine_similarity(moved, wte[ids[1]], dim=0))) < 1e-5
    assert abs(float(r.vs_first[1, p]) - float(F.cosine_similarity(moved, wte[ids[1]] + wpe[0], dim=0))) < 1e-5
    assert r.positions[0] == 0 and r.positions[-1] == model.config.n_ctx - 1


def test_embedding_rejects_words_of_several_tokens(model, tok):
    with pytest.raises(ValueError, match="is 4 tokens.*leading space"):
        viz.embedding_view(model, tok, [" king", "unbelievably"])


@pytest.mark.parametrize("word, suggestion", [("unbelievably", "' unbelievably' is one token"),
                                              (" Montague", "No spelling of 'Montague'")])
def test_embedding_hint_never_suggests_the_word_that_failed(model, tok, word, suggestion):
    """For " Montague" the hint once said "e.g. ' Montague'": the very word that is 2 tokens."""
    with pytest.raises(ValueError) as err:
        viz.embedding_view(model, tok, [" king", word])
    message = str(err.value)
    assert suggestion in message, message
    hint = message.split("single token.", 1)[1]
    assert repr(word) not in hint, f"the hint suggests {word!r}, which is what failed: {message}"
    for quoted in re.findall(r"'([^']*)' is one token", message):
        assert len(tok.encode(quoted)) == 1, f"the hint suggests {quoted!r}, which is {len(tok.encode(quoted))} tokens"


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_pca_labels_do_not_overlap():
    """Five points almost on top of each other (king, queen, lord, father, mother in
    a small model): every label box is clear of every other box and of every dot."""
    points = [[150, 140], [154, 143], [149, 146], [157, 139], [152, 150], [60, 60], [280, 230]]
    widths = [7.3 * n + 2 for n in [5, 6, 5, 7, 7, 4, 5]]
    boxes = run_js(["common.js", "embedding.js"], "out = G2V.placeLabels(input.p, input.w, 14, [36, 19, 294, 254]);",
                   {"p": points, "w": widths})

    def overlap(a, b):
        return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    for k, a in enumerate(boxes):
        assert 36 <= a["x"] and a["x"] + a["w"] <= 294 and 19 <= a["y"] and a["y"] + a["h"] <= 254, f"label {k} leaves the plot"
        for b in boxes[k + 1:]:
            assert not overlap(a, b), f"labels overlap: {a} and {b}"
        for x, y in points:
            assert not overlap(a, {"x": x - 5, "y": y - 5, "w": 10, "h": 10}), f"label {a} covers the point ({x}, {y})"


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_similarities_are_written_so_that_neighbours_stay_apart():
    texts = run_js(["common.js", "embedding.js"], "out = input.map(G2V.cosText);", [0.74, -0.18, 1.0, -0.001, 0.05, -1.0])
    assert texts == [".74", "\u2212.18", "1", ".00", ".05", "\u22121"], texts
    assert all(len(t) <= 4 for t in texts)


# ---- tokens ----

@pytest.mark.parametrize("text", [TEXT, "naïve café 🤗\r\n\ttabs  and  spaces", "x<|endoftext|>y", ""])
def test_token_view_round_trips_the_text(tok, text):
    view = viz.token_view(tok, text)
    data = embedded(view)
    assert b"".join(bytes.fromhex(b) for b in data["bytes"]).decode("utf-8") == text
    assert data["ids"] == tok.encode(text, allowed_special="all")
    assert len(data["labels"]) == len(data["ids"]) == len(data["texts"])
    if "🤗" not in text:  # whole characters only: each token's text is exact
        assert "".join(data["texts"]) == text


# ---- sampling: the page's JavaScript against next_token_probs ----

def run_sampling_js(data: dict, settings: list) -> list:
    """Run G2V.nextTokenProbs from the shipped files under node on the page's data."""
    harness = """
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = input.settings.map(([t, k, p]) =>
  G2V.nextTokenProbs(input.data.logits, input.data.tail_lse[t], input.data.temps[t], k, p));
process.stdout.write(JSON.stringify(out));
"""
    script = asset("common.js") + "\n" + asset("sampling.js") + "\n" + harness
    done = subprocess.run([NODE, "-e", script], input=json.dumps({"data": data, "settings": settings}),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def clear_of_boundaries(logits, t, k, p, n, margin=1e-4):
    """p moved (if needed) at least `margin` away from the cumulative masses of the n most
    likely tokens (those on the page): next_token_probs sums in float32, whose error
    (~1e-6 over 50k tokens) may flip a token sitting exactly at the edge of the top-p set."""
    if p is None or t == 0:
        return p
    probs = torch.softmax(torch.sort(logits.double() / t, descending=True).values, -1)
    if k is not None:
        probs = probs[:k] / probs[:k].sum()
    cum = torch.cumsum(probs, -1)[:n]
    while (cum - p).abs().min() < margin:
        p = p + margin
    return round(p, 6)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.parametrize("wte_scale", [60.0, 30.0])
def test_sampling_js_matches_next_token_probs(tok, wte_scale):
    model = tiny_model(seed=3, wte_scale=wte_scale)
    view = viz.sampling_view(model, tok, "To be, or not to be, that is the")
    data, logits = embedded(view), view.result.logits
    top = torch.tensor(data["ids"])
    temps = data["temps"]
    settings = [(1.0, None, None), (0.7, None, None), (1.5, 50, None), (0.5, 10, 0.8), (1.0, None, 0.5),
                (1.3, None, 0.9), (1.0, 200, 0.95), (0.0, None, None), (2.0, 3, None), (0.8, None, 0.99)]
    settings = [(t, k, clear_of_boundaries(logits, t, k, p, len(top))) for t, k, p in settings]
    js = run_sampling_js(data, [(temps.index(t), k, p) for t, k, p in settings])
    for (t, k, p), got in zip(settings, js):
        want = next_token_probs(logits, temperature=t, top_k=k, top_p=p).double()  # [V]
        ours = torch.tensor(got["probs"], dtype=torch.float64)
        diff = (ours - want[top]).abs().max().item()
        kept = int((want[top] > 0).sum())
        rest = want.sum() - want[top].sum()
        tol = 2e-3 if got["approx"] else 2e-4  # logits on the page keep 4 decimals
        assert diff < tol, (f"T={t} top_k={k} top_p={p}: the page's probabilities differ from "
                            f"next_token_probs by {diff:.2e} (approx={got['approx']})")
        assert got["kept"] == kept, f"T={t} top_k={k} top_p={p}: page keeps {got['kept']} top tokens, generate keeps {kept}"
        assert abs(got["other"] - rest.item()) < tol, f"'other' is {got['other']}, the rest of the vocabulary has {rest}"


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_sampling_js_top_p_boundary(tok):
    """p just above the mass of the top 3 keeps 4 tokens; just below it keeps 3 ("reaches p")."""
    model = tiny_model(seed=3, wte_scale=60.0)
    view = viz.sampling_view(model, tok, "The king said")
    data = embedded(view)
    probs = torch.softmax(view.result.logits.double(), -1)[torch.tensor(data["ids"])]
    mass3 = float(probs[:3].sum())
    ps = [mass3 + 0.5 * float(probs[3]), mass3 - 0.5 * float(probs[2])]
    js = run_sampling_js(data, [(data["temps"].index(1.0), None, p) for p in ps])
    assert [r["kept"] for r in js] == [4, 3]
    for p, r in zip(ps, js):
        want = next_token_probs(view.result.logits, top_p=p)
        assert int((want > 0).sum()) == r["kept"]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_sampling_draws_follow_the_distribution():
    """G2V.sample maps a uniform number onto the tokens in order of the bars, "other" last;
    a token filtered out (probability 0) is never drawn."""
    r = {"probs": [0.5, 0.0, 0.3], "other": 0.2}
    picks = run_js(["common.js", "sampling.js"], "out = input.us.map(u => G2V.sample(input.r, u));",
                   {"r": r, "us": [0.0, 0.49, 0.5, 0.79, 0.8, 0.999]})
    assert picks == [0, 0, 2, 2, -1, -1], picks
    greedy = run_js(["common.js", "sampling.js"], "out = G2V.sample({probs: [1, 0], other: 0}, 0.9999999);", None)
    assert greedy == 0


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_seeded_draws_follow_next_token_probs(tok):
    """The draw button's tokens: 40000 draws with the page's seeded generator fall on the top
    tokens as often as next_token_probs (generate's distribution) says, within 4 standard
    errors; the same seed draws the same tokens, another seed others."""
    model = tiny_model(seed=3, wte_scale=30.0)
    view = viz.sampling_view(model, tok, "To be, or not to be, that is the")
    data, n = embedded(view), 40000
    body = """const d = input.d, r = G2V.nextTokenProbs(d.logits, d.tail_lse[input.t], input.T, input.k, null);
const draw = seed => { const u = G2V.rng(seed); return Array.from({length: input.n}, () => G2V.sample(r, u())); };
const a = draw(1);
out = {a: a.slice(0, 50), again: draw(1).slice(0, 50), other: draw(2).slice(0, 50),
       counts: a.reduce((c, i) => { c[i] = (c[i] || 0) + 1; return c; }, {})};"""
    out = run_js(["common.js", "sampling.js"], body, {"d": data, "t": data["temps"].index(0.7), "T": 0.7, "k": 8, "n": n})
    assert out["a"] == out["again"] and out["a"] != out["other"], "seed 1 twice must agree, seed 2 differ"
    want = next_token_probs(view.result.logits, temperature=0.7, top_k=8).double()[torch.tensor(data["ids"])]
    assert int((want > 0).sum()) == 8
    for i, p in enumerate(want.tolist()):
        freq = out["counts"].get(str(i), 0) / n
        assert abs(freq - p) <= 4 * (p * (1 - p) / n) ** 0.5 + 1e-9, f"token {i}: drawn {freq:.4f}, generate gives {p:.4f}"
    assert "-1" not in out["counts"], "top-k 8 leaves no 'other' to draw"


def test_sampling_title_is_the_end_of_the_prompt(model, tok):
    prompt = "KING HENRY V:\nOnce more unto the breach, dear friends,"
    assert embedded(viz.sampling_view(model, tok, prompt))["prompt"] == prompt, "a short prompt is shown whole"
    long = " ".join(["word"] * 40) + "\nthe last line"
    shown = viz.views.prompt_tail(long)
    assert shown.startswith("\u2026 word") and shown.endswith("\nthe last line") and len(shown) <= 82, shown


def test_sampling_other_mass_is_exact_at_every_temperature(model, tok):
    data = viz.sampling_data(model, tok, tok.encode("Hello"), n_top=50)
    logits = data.logits.double()
    for t, lse in zip(data.temperatures[1:], data.tail_logsumexp[1:]):
        probs = torch.softmax(logits / t, -1)
        want = 1 - probs[torch.tensor(data.top_ids)].sum()
        got = torch.exp(lse - torch.logsumexp(logits / t, -1))
        assert abs(float(got - want)) < 1e-9, f"T={t}: tail mass {got} vs {want}"


# ---- the HTML ----

def test_html_is_deterministic_and_ids_follow_the_data(tok):
    a = viz.attention_view(tiny_model(0), tok, TEXT).html()
    b = viz.attention_view(tiny_model(0), tok, TEXT).html()
    assert a == b, "the same model and text must give byte-identical HTML (nbval compares it)"
    ids = lambda h: set(re.findall(r'id="(g2v-[a-z]+-[0-9a-f]{12})"', h))  # noqa: E731
    assert len(ids(a)) == 1
    c = viz.attention_view(tiny_model(0), tok, TEXT + " More.").html()
    d = viz.attention_view(tiny_model(1), tok, TEXT).html()
    assert len(ids(a) | ids(c) | ids(d)) == 3, "different data must give different element ids"
    assert viz.token_view(tok, "ab").html() == viz.token_view(tok, "ab").html()


def all_views(model, tok):
    return [viz.attention_view(model, tok, TEXT), viz.token_view(tok, TEXT),
            viz.embedding_view(model, tok, [" king", " queen", " man", " woman"]),
            viz.sampling_view(model, tok, "The cat")]


# Every way a page could ask for another file: markup and CSS, and the script forms
# (an element's src set as a property or by setAttribute, fetch, XHR, import(), workers).
LOADS = re.compile(r"""\bsrc\s*=|\bhref\s*=\s*["'](?!#)|setAttribute\(\s*["'](?:src|href)["']|@import|url\((?!#)|<link\b"""
                   r"""|\bfetch\s*\(|XMLHttpRequest|\bimport\s*\(|\bnew\s+(?:Worker|Image)\b|sendBeacon""")


def test_resource_pattern_catches_every_form():
    for form in ['<img src="a.png">', 's.src = url', 's.setAttribute("src", url)', "a.setAttribute('href', u)",
                 "fetch(url)", "new XMLHttpRequest()", "import('./m.js')", "new Worker(u)", "@import 'x.css'",
                 "background: url(a.png)", '<link rel="stylesheet" href="a.css">']:
        assert LOADS.search(form), f"the resource pattern misses {form!r}"
    for harmless in ["G2V.el('span', {text: 'src'})", "fill: url(#mask)", "function importance(x) {}"]:
        assert not LOADS.search(harmless), f"the resource pattern flags {harmless!r}"


def test_html_fetches_nothing(model, tok):
    """A view's page asks for no file, except the static book's "Try your own text" loader
    (live-text.js), which builds only web-model/ paths next to the page."""
    live = asset("live-text.js")
    loader = re.search(r"G2V\.loadWeb = function.*?\n\};\n", live, re.S).group(0)
    assert [m.group(0) for m in LOADS.finditer(loader)] == ['setAttribute("src"'], "the loader's one request"
    assert 'base + "web-model/" + name' in loader and "http" not in loader
    assert not LOADS.search(live.replace(loader, "")), "live-text.js asks for a file outside its loader"
    for view in all_views(model, tok):
        page = view.page()
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", page)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{view.kind} view refers to {urls}; the book must work offline"
        rest = page.replace(loader, "")
        assert page.count(loader) == (view.kind in viz.render.LIVE_TEXT_KINDS), f"{view.kind}: live-text.js once or not at all"
        found = [m.group(0) for m in LOADS.finditer(rest)]
        assert not found, f"{view.kind} view loads a resource: {found}"


def test_untrusted_fallback_and_repr(model, tok):
    """Without scripts (an untrusted notebook) the first frame is plain inline-styled HTML."""
    for view in all_views(model, tok):
        html = view.html()
        frame = html.split('<div class="g2v-fallback">', 1)[1].split("<script", 1)[0]
        assert "background-color" in frame and "class=" not in frame, f"{view.kind}: fallback needs inline styles"
        assert repr(view).startswith(f"<gpt2lib.viz {view.kind} view: ")
    attention = all_views(model, tok)[0]
    layer, head = embedded(attention)["start"]
    assert f"Attention · layer {layer} · head {head}" in attention.html(), "the first frame shows the head the view opens on"


def test_fallback_html_is_well_formed(model, tok):
    """A quote inside a style attribute ends the attribute early; browsers shrug, but
    JupyterLab's sanitizer of untrusted outputs can stall on the result."""
    from html.parser import HTMLParser

    class Attributes(HTMLParser):
        names: set = set()

        def handle_starttag(self, tag, attrs):
            self.names.update(name for name, _ in attrs)

    for view in all_views(model, tok):
        parser = Attributes()
        parser.names = set()
        parser.feed(view.fallback)
        assert parser.names <= {"style", "title"}, f"{view.kind}: unexpected attributes {parser.names}"


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_javascript_parses(tmp_path):
    for kind in ["attention", "tokens", "embedding", "sampling"]:
        path = tmp_path / f"{kind}.js"
        path.write_text(asset("common.js") + "\n" + asset(f"{kind}.js"), encoding="utf-8")
        done = subprocess.run([NODE, "--check", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{kind}.js: {done.stderr}"


def without_event_loop(fn):
    """Run fn() in a new thread, where no event loop runs (as in a script), and return its result.

    Other tests (browser drivers, kernels) may leave an event loop running in the main thread;
    the live views would then take it for the kernel's.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


def test_live_views_recompute(model, tok):
    pytest.importorskip("ipywidgets")
    without_event_loop(lambda: check_live_views_recompute(model, tok))


def check_live_views_recompute(model, tok):
    live = viz.live_attention(model, tok, "The cat sat")
    assert repr(live) == "<gpt2lib.viz live attention view>"
    first = live.view.element_id
    live.text.value = "The dog sat on the log"
    assert live.view.element_id != first and len(live.view.result.ids) == 6
    emb = viz.live_embedding(model, tok, "king, queen, man")
    assert emb.view.result.labels == ["␣king", "␣queen", "␣man"]
    emb.text.value = "king, qwzxv"  # several tokens: an error in words, not a crash
    assert emb.view is None


def test_live_views_follow_typing_with_one_recompute_per_pause(model, tok):
    """Inside the kernel's event loop a burst of edits is recomputed once, after the pause;
    the box updates while typing (continuous_update) and says so on screen."""
    pytest.importorskip("ipywidgets")
    from gpt2lib.viz import live

    calls = []

    def make(text):
        calls.append(text)
        return viz.token_view(tok, text)

    async def type_then_wait():
        view = live.live_view_class()("tokens", make, "The", "Text:", multiline=True)
        for text in ["The c", "The ca", "The cat"]:
            view.text.value = text
        assert calls == ["The"], f"recomputed while typing: {calls}"
        await asyncio.sleep(live.DEBOUNCE_S + 0.2)
        return view

    view = without_event_loop(lambda: asyncio.run(type_then_wait()))
    assert calls == ["The", "The cat"], calls
    assert view.view.result.ids == tok.encode("The cat")
    assert view.text.continuous_update and live.TYPING_HINT in view.hint.value


def relative_luminance(colour: str) -> float:
    rgb = [int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    la, lb = sorted([relative_luminance(a), relative_luminance(b)], reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_error_text_is_readable_on_any_theme(model, tok):
    """A live view's error sits on its own light card: its contrast does not depend on the
    page behind it (red on JupyterLab's dark background was about 2.7:1)."""
    from gpt2lib.viz.live import error_html

    card = error_html(ValueError("' Montague' is 2 tokens"))
    fg = re.search(r"(?<!-)color:(#[0-9a-f]{6})", card).group(1)
    bg = re.search(r"background-color:(#[0-9a-f]{6})", card).group(1)
    assert contrast(fg, bg) >= 4.5, f"error text {fg} on {bg}: contrast {contrast(fg, bg):.1f}"
    assert "&#x27; Montague&#x27;" in card or "' Montague'" in card
    css = asset("viz.css")
    error_fg = re.search(r"\.g2v-error \{ color: (#[0-9a-f]{6})", css).group(1)
    assert contrast(error_fg, "#ffffff") >= 4.5, f"the view's error text {error_fg} on its white card"
    assert "color-scheme: light" in css, "controls on the white card must not take a dark theme's styling"


# ---- in a browser: the views respond to the reader ----

def open_view(browser, view, tmp_path, width: int = 900):
    """Load the view as a standalone page; fail on any script error or network request."""
    path = view.save(tmp_path / f"{view.kind}.html")
    page = browser.new_page(viewport={"width": width, "height": 1000})
    problems = []
    page.on("pageerror", lambda err: problems.append(f"script error: {err}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith("file:") else None)
    page.goto(path.as_uri())
    root = page.locator(f"#{view.element_id}")
    assert root.get_attribute("data-live") == "1", f"{view.kind} view did not start: {problems}"
    assert page.locator(".g2v-fallback").count() == 0, "the static frame should give way to the live view"
    return page, root, problems


@pytest.mark.slow
def test_attention_view_in_browser(browser, model, tok, tmp_path):
    view = viz.attention_view(model, tok, TEXT)
    data = embedded(view)
    page, root, problems = open_view(browser, view, tmp_path)
    fills = lambda: page.eval_on_selector_all(".g2v-heat rect[fill^='rgb']", "rs => rs.map(r => r.getAttribute('fill'))")  # noqa: E731
    before = fills()
    root.locator("select[data-role=head]").select_option("2")
    assert root.get_attribute("data-head") == "2" and fills() != before, "changing the head must redraw the heatmap"
    root.locator("canvas.g2v-thumb[data-layer='1'][data-head='1']").click()
    assert (root.get_attribute("data-layer"), root.get_attribute("data-head")) == ("1", "1")
    assert root.locator("select[data-role=layer]").input_value() == "1"
    token = root.locator(".g2v-tok[data-index='5']")
    token.hover()
    assert root.get_attribute("data-query") == "5"
    assert root.locator("[data-role=top]").inner_text().startswith(f"{data['labels'][5]} (5) looks most at")
    colours = page.eval_on_selector_all(".g2v-tok", "ts => ts.map(t => t.style.backgroundColor)")
    assert all(c for c in colours[:6]) and not any(colours[6:]), "tokens after the query must stay uncoloured"
    box = root.locator("svg.g2v-heat").bounding_box()
    T, i, j = data["T"], 4, 2
    heat = root.locator("svg.g2v-heat rect[fill^='rgb']").first.bounding_box()  # cell (0, 0)
    cell = heat["width"]
    page.mouse.move(heat["x"] + (j + 0.5) * cell, heat["y"] + (i + 0.5) * cell)
    readout = root.locator("[data-role=cell]").inner_text()
    w = data["w"][1][1][i * (i + 1) // 2 + j] / data["scale"]
    assert readout.endswith(f"weight {w:.3f}"), f"hovering cell ({i}, {j}) shows {readout!r}, expected weight {w:.3f}"
    assert box["width"] > T * 10 and not problems, problems
    page.screenshot(path=str(tmp_path / "attention.png"), full_page=True)


def assert_nothing_clipped(page, root, what: str):
    """The view fits its card: nothing scrolls sideways and no child sticks out of it."""
    widths = root.evaluate("r => [r.scrollWidth, r.clientWidth]")
    assert widths[0] <= widths[1], f"{what}: the view is {widths[0]} px wide in a {widths[1]} px card"
    out = root.evaluate("""r => { const box = r.getBoundingClientRect(); return Array.from(r.querySelectorAll('*'))
      .filter(e => { const b = e.getBoundingClientRect(); return b.width > 0 && (b.right > box.right + 0.5 || b.left < box.left - 0.5); })
      .map(e => e.tagName + '.' + (e.getAttribute('class') || '') + ' ' + (e.getAttribute('data-role') || '')); }""")
    assert not out, f"{what}: these stick out of the card: {out[:5]}"


@pytest.mark.slow
def test_attention_view_by_keyboard_and_on_a_phone(browser, model, tok, tmp_path):
    view = viz.attention_view(model, tok, TEXT)
    data = embedded(view)
    page, root, problems = open_view(browser, view, tmp_path)
    layer, head = data["start"]
    assert (root.get_attribute("data-layer"), root.get_attribute("data-head")) == (str(layer), str(head))
    heat, grid = root.locator("svg.g2v-heat").bounding_box(), root.locator("[data-role=grid]").bounding_box()
    assert grid["x"] >= heat["x"] + heat["width"] and grid["y"] < heat["y"] + heat["height"], (
        f"at 900 px the head grid {grid} should sit beside the heatmap {heat}")
    root.locator("svg.g2v-heat").focus()
    start = root.get_attribute("data-cell")
    assert start is not None and page.evaluate("document.activeElement.matches('svg.g2v-heat')")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Home")
    i = int(start.split(",")[0]) - 1
    assert root.get_attribute("data-cell") == f"{i},0"
    readout = lambda: root.locator("[data-role=cell]").inner_text()  # noqa: E731
    before = readout()
    assert before.startswith(f"Layer {layer} head {head}:"), before
    root.locator("select[data-role=head]").select_option(str((head + 1) % data["n_head"]))
    after = readout()
    assert after.startswith(f"Layer {layer} head {(head + 1) % data['n_head']}:"), (
        f"after changing head the readout still says {after!r}: stale")
    root.locator(".g2v-tok[data-index='3']").focus()
    assert root.get_attribute("data-query") == "3"
    page.keyboard.press("ArrowRight")
    assert root.get_attribute("data-query") == "4"
    assert root.locator("[data-role=cell]").inner_text().startswith("Hover a cell"), "leaving the heatmap clears its readout"
    thumb = root.locator("canvas.g2v-thumb[aria-checked=true]")
    thumb.focus()
    page.keyboard.press("ArrowDown" if int(root.get_attribute("data-layer")) == 0 else "ArrowUp")
    assert root.get_attribute("data-layer") != str(layer), "arrow keys in the head grid choose another layer"
    assert page.evaluate("document.activeElement.getAttribute('aria-checked')") == "true"
    root.locator("button.g2v-headchip").first.press("Enter")
    page.evaluate("document.documentElement.style.colorScheme = 'dark'; document.body.style.background = '#111'")
    schemes = root.evaluate("r => Array.from(r.querySelectorAll('input, select')).map(e => getComputedStyle(e).colorScheme)")
    assert set(schemes) == {"light"}, f"on a dark page the card's controls take {schemes}: they must stay light"
    assert not problems, problems
    page.screenshot(path=str(tmp_path / "attention-900.png"), full_page=True)
    phone, root, more = open_view(browser, view, tmp_path, width=390)
    assert_nothing_clipped(phone, root, "attention view at 390 px")
    assert not more, more
    phone.screenshot(path=str(tmp_path / "attention-390.png"), full_page=True)


@pytest.mark.slow
def test_attention_lines_mode_overlays_heads(browser, model, tok, tmp_path):
    view = viz.attention_view(model, tok, TEXT, layer=1, head=0)
    data = embedded(view)
    page, root, problems = open_view(browser, view, tmp_path)
    root.locator("input[data-role=mode-lines]").check()
    assert root.get_attribute("data-mode") == "lines" and not root.locator("svg.g2v-heat").is_visible()
    def drawn():
        return root.evaluate("r => Array.from(r.querySelectorAll('svg[data-role=lines] line'))"
                             ".map(l => [+l.dataset.head, +l.dataset.i, +l.dataset.j])")
    T, scale = data["T"], data["scale"]
    expected = {(0, i, j) for i in range(T) for j in range(i + 1) if data["w"][1][0][i * (i + 1) // 2 + j] / scale >= 0.01}
    assert set(map(tuple, drawn())) == expected, "one line per weight of at least 0.01 of the chosen head"
    root.locator("input[data-role=line-head][data-head='2']").check()
    assert {h for h, _, _ in drawn()} == {0, 2}, "ticking a head overlays its lines"
    root.locator("svg[data-role=lines] text[data-index='5']").hover()
    assert {i for _, i, _ in drawn()} == {5}, "hovering a token keeps only its lines"
    assert not problems, problems


@pytest.mark.slow
def test_sampling_view_in_browser(browser, tok, tmp_path):
    model = tiny_model(seed=3, wte_scale=60.0)
    view = viz.sampling_view(model, tok, "To be, or not to be")
    page, root, problems = open_view(browser, view, tmp_path)
    for role, value in [("top-k", "5"), ("temperature", str(view.result.temperatures.index(0.7)))]:
        page.eval_on_selector(f"#{view.element_id} input[data-role={role}]",
                              "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", value)
    assert root.get_attribute("data-settings") == "0.7,5,"
    shown = [float(x) for x in page.eval_on_selector_all(
        f"#{view.element_id} .g2v-num[data-p]", "ns => ns.map(n => n.getAttribute('data-p'))")]
    want = next_token_probs(view.result.logits, temperature=0.7, top_k=5)[torch.tensor(view.result.top_ids[:20])]
    assert np.allclose(shown, want.numpy(), atol=2e-4), f"bars show {shown[:6]}, generate gives {want[:6].tolist()}"
    assert root.locator(".g2v-num.g2v-dropped").count() == 20 - 5 + 1  # 15 bars and "other"
    root.locator("button[data-role=draw]").click()
    drawn = [int(i) for i in root.get_attribute("data-draws").split(",")]
    assert len(drawn) == 10 and all(0 <= i < 5 for i in drawn), f"top-k 5 drew {drawn}"
    assert root.get_attribute("data-seed") == "1" and "seed 1" in root.locator("[data-role=draws]").inner_text()
    page.reload()
    for role, value in [("top-k", "5"), ("temperature", str(view.result.temperatures.index(0.7)))]:
        page.eval_on_selector(f"#{view.element_id} input[data-role={role}]",
                              "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", value)
    root.locator("button[data-role=draw]").click()
    assert [int(i) for i in root.get_attribute("data-draws").split(",")] == drawn, "a reload draws the same tokens"
    assert len(set(drawn)) > 1, f"ten draws at temperature 0.7 over five tokens all gave {drawn}"
    chips = root.locator("[data-role=draws] .g2v-drawn").all_inner_texts()
    assert chips == [view.result.top_labels[i] for i in drawn], chips
    page.eval_on_selector(f"#{view.element_id} input[data-role=temperature]",
                          "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")
    assert root.locator("[data-role=draws] .g2v-stale").count() == 1, "draws made with other settings are marked"
    root.locator("button[data-role=draw]").focus()
    page.keyboard.press("Enter")
    assert root.get_attribute("data-draws") == ",".join(["0"] * 10), "temperature 0 always draws the top token"
    assert root.locator("[data-role=slot]").inner_text() == view.result.top_labels[0]
    assert not problems, problems
    phone, phone_root, more = open_view(browser, viz.sampling_view(model, tok, "KING HENRY V:\nOnce more unto the breach"),
                                        tmp_path, width=390)
    assert_nothing_clipped(phone, phone_root, "sampling view at 390 px")
    assert "KING HENRY V:\u21b5\nOnce more" in phone_root.locator("[data-role=prompt]").inner_text()
    assert not more, more


@pytest.mark.slow
def test_embedding_and_token_views_in_browser(browser, model, tok, tmp_path):
    view = viz.embedding_view(model, tok, [" king", " queen", " river", " bank"])
    page, root, problems = open_view(browser, view, tmp_path)
    root.locator("button.g2v-chipbtn[data-index='2']").click()
    assert root.get_attribute("data-selected") == "2"
    assert root.locator("[data-role=neighbours] .g2v-tokname").first.inner_text() == "␣river"
    root.locator("svg[data-role=pca] circle[data-index='3']").click()
    assert root.get_attribute("data-selected") == "3"
    row = root.locator("[data-role=selected-row]").bounding_box()
    label = root.locator("svg[data-role=similarity] text.g2v-on").first.bounding_box()
    assert abs((row["y"] + row["height"] / 2) - (label["y"] + label["height"] / 2)) < 3, "the selected row is outlined"
    assert_nothing_clipped(page, root, "embedding view at 900 px")
    phone, phone_root, phone_problems = open_view(browser, view, tmp_path, width=390)
    assert_nothing_clipped(phone, phone_root, "embedding view at 390 px")
    assert not phone_problems, phone_problems
    view = viz.token_view(tok, TEXT)
    page, root, more = open_view(browser, view, tmp_path)
    root.locator(".g2v-tok[data-index='4']").hover()
    info = root.locator("[data-role=info]").inner_text()
    assert f"id {view.result.ids[4]}" in info and view.result.pieces[4].hex(" ") in info
    root.locator("input[data-role=show-ids]").check()
    assert root.locator(".g2v-tok").first.inner_text() == str(view.result.ids[0])
    assert not problems + more, problems + more
