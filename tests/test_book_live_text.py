"""The static book's live mode in Chromium: the reader's own text in the attention, token
and sampling views, computed in the page by the bundled model (web-model/, written by
scripts/export_web_model.py when the book is built), checked against gpt2lib.

For chapter 4's attention view: type a sentence and switch live mode on; its tokens
appear, the heatmap changes, weights read from the view's readout match gpt2lib's for
that sentence; no request leaves the machine; the first load asks nothing of web-model/
and typing alone loads nothing. Also chapter 2's token view, chapter 7's sampling view,
the page opened from file://, and the time of a 64-token forward pass in Chromium.

Uses the site, server and open_page fixtures of tests/test_book_browser.py (the book is
built once per session). The chapters must have been executed with the current views
(scripts/execute_notebooks.py), which inline live-text.js into their outputs.
"""

import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import export_web_model  # noqa: E402
from test_book_browser import CHAPTERS, SCREENSHOTS, open_page, server, site  # noqa: E402,F401 (fixtures)

import gpt2lib  # noqa: E402
from gpt2lib import viz  # noqa: E402

pytestmark = pytest.mark.slow
SENTENCE = "The quick brown fox jumps over the lazy dog, and the lazy dog sleeps."
# The readout shows weights to 3 decimals: half a unit of the last place, plus the
# engine's difference from gpt2lib (~3e-6, tests/test_web_engine.py).
READ_TOL = 5e-4 + 1e-5
LIVE_TIMEOUT_MS = 120_000
VIEWS = {"attention": "g2v-attention", "tokens": "g2v-tokens", "sampling": "g2v-sampling"}


@pytest.fixture(scope="module")
def live_site(site):
    """The built site, with web-model/ exported from the current sources (re-exported here
    when the build predates a change to the engine)."""
    out = site / "web-model"
    current = (out / "gpt2-shakespeare.js").is_file() and (out / "tokenizer.js").is_file() and all(
        (out / name).is_file() and (out / name).read_bytes() == (export_web_model.STATIC / name).read_bytes()
        for name in export_web_model.CODE)
    if not current:
        export_web_model.export(out)
    return site


@pytest.fixture(scope="module")
def model():
    return gpt2lib.from_pretrained(gpt2lib.BUNDLED_MODEL).eval()


@pytest.fixture(scope="module")
def tok():
    return gpt2lib.get_tokenizer()


def _chapter_with(site: Path, marker: str) -> str:
    pages = [page for page in CHAPTERS if marker in (site / page).read_text(encoding="utf-8")]
    assert pages, f"no chapter shows a {marker} view"
    page = pages[0]
    assert "G2V.liveText" in (site / page).read_text(encoding="utf-8"), (
        f"{page}: its views were executed before live mode existed; re-execute the chapter "
        "(scripts/execute_notebooks.py notebooks/<chapter>.ipynb) so its outputs inline live-text.js")
    return page


def _go_live(page, view, text: str) -> None:
    view.locator("[data-role=live-input]").fill(text)
    view.locator("[data-role=live-button]").click()
    page.wait_for_function("v => v.getAttribute('data-source') === 'live'", arg=view.element_handle(),
                           timeout=LIVE_TIMEOUT_MS)


def _web_model_requests(visit) -> list[str]:
    return [url for url, _ in visit.loaded if "/web-model/" in url]


def _read_cell(view) -> tuple[int, int, int, int, float]:
    """(layer, head, query, key, weight) from the heatmap's readout."""
    text = view.locator("[data-role=cell]").text_content()
    found = re.search(r"Layer (\d+) head (\d+): .* \((\d+)\) \u2192 .* \((\d+)\): weight ([0-9.]+)", text)
    assert found, f"the heatmap readout does not show a weight: {text!r}"
    layer, head, i, j = (int(found.group(k)) for k in range(1, 5))
    return layer, head, i, j, float(found.group(5))


def test_attention_view_takes_the_readers_text(live_site, open_page, model, tok):
    path = _chapter_with(live_site, VIEWS["attention"])
    page, visit = open_page(path)
    page.wait_for_timeout(1000)  # the favicon comes after the load
    first_load, n_first = visit.bytes_loaded, len(visit.loaded)
    assert not _web_model_requests(visit), f"the first load fetched live-mode files: {_web_model_requests(visit)}"
    view = page.locator("div.g2v.g2v-attention").first
    view.scroll_into_view_if_needed()

    def snapshot():
        return view.evaluate("""v => ({heatmap: v.querySelector('[data-role=heatmap]').innerHTML,
            tokens: Array.from(v.querySelectorAll('[data-role=tokens] .g2v-tok'), s => s.textContent)})""")

    before = snapshot()
    view.locator("[data-role=live-input]").fill(SENTENCE)
    page.wait_for_timeout(300)
    late = [url for url, _ in visit.loaded[n_first:] if not url.endswith(("favicon.svg", "favicon.ico"))]
    assert not late, f"typing alone loaded {late}: the model must load only when live mode is switched on"
    _go_live(page, view, SENTENCE)

    ids = tok.encode(SENTENCE)
    after = snapshot()
    assert after["tokens"] == [viz.token_label(tok, i) for i in ids], f"the view shows tokens {after['tokens']}"
    assert after["heatmap"] != before["heatmap"], "live mode did not redraw the heatmap"
    loaded = [url.rsplit("/", 1)[-1] for url in _web_model_requests(visit)]
    assert {"gpt2-shakespeare.js", "tokenizer.js", "engine.js", "bpe.js", "viewdata.js"} <= set(loaded), loaded

    with torch.no_grad():
        trace = model.trace(torch.tensor([ids]))
    weights = torch.stack([a[0] for a in trace.attentions])  # L x [nh, T, T] -> [L, nh, T, T]
    heatmap = view.locator("[data-role=heatmap]")
    heatmap.focus()  # the cursor opens on the last token's largest weight
    reads = [_read_cell(view)]
    for key in ("ArrowLeft", "ArrowUp", "ArrowUp", "ArrowLeft"):
        heatmap.press(key)
        reads.append(_read_cell(view))
    view.locator("select[data-role=head]").select_option("0")
    view.locator("select[data-role=layer]").select_option("1")
    heatmap.focus()
    reads.append(_read_cell(view))
    worst = 0.0
    for layer, head, i, j, shown in reads:
        want = float(weights[layer, head, i, j])
        worst = max(worst, abs(shown - want))
        assert abs(shown - want) <= READ_TOL, (f"layer {layer} head {head} ({i} -> {j}): the view shows {shown}, "
                                               f"gpt2lib computes {want:.5f}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    view.screenshot(path=str(SCREENSHOTS / "attention-view-live.png"))

    view.locator("[data-role=live-reset]").click()
    assert snapshot()["tokens"] == before["tokens"], "'Back to the chapter's text' did not restore the chapter's tokens"
    assert not visit.external_requests, visit.external_requests
    assert not visit.problems(), visit.problems()
    live_bytes = sum(size for url, size in visit.loaded if "/web-model/" in url)
    print(f"[PASS] {path}: live attention view for {len(ids)} tokens; {len(reads)} weights read from the view within "
          f"{worst:.1e} of gpt2lib; first load {first_load / 1e6:.2f} MB, live mode then loads {live_bytes / 1e6:.1f} MB, "
          "all from the site itself")


def test_token_view_takes_the_readers_text(live_site, open_page, tok):
    path = _chapter_with(live_site, VIEWS["tokens"])
    page, visit = open_page(path)
    view = page.locator("div.g2v.g2v-tokens").first
    text = "Naïve cafés, 2024 🤗 —   spaces\nand <|endoftext|> too"
    _go_live(page, view, text)
    view.locator("[data-role=show-ids]").check()
    shown = view.locator("[data-role=tokens] .g2v-tok").all_text_contents()
    want = tok.encode(text, allowed_special="all")
    assert shown == [str(i) for i in want], f"the token view shows ids {shown}, gpt2lib gives {want}"
    assert not visit.problems(), visit.problems()
    print(f"[PASS] {path}: the token view shows gpt2lib's {len(want)} ids for the reader's text")


def test_sampling_view_takes_the_readers_text(live_site, open_page, model, tok):
    path = _chapter_with(live_site, VIEWS["sampling"])
    page, visit = open_page(path)
    view = page.locator("div.g2v.g2v-sampling").first
    prompt = "JULIET:\nO Romeo, Romeo! wherefore art thou"
    _go_live(page, view, prompt)
    names = view.locator(".g2v-tokname").all_text_contents()
    probs = [float(p) for p in view.locator(".g2v-num[data-p]").evaluate_all("ns => ns.map(n => n.getAttribute('data-p'))")]
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([tok.encode(prompt)]))[0, -1].double(), -1)  # [V]
    top = torch.argsort(p, descending=True)[: len(probs)].tolist()
    assert names[: len(top)] == [viz.token_label(tok, i) for i in top], f"the bars show {names[:5]}..."
    worst = max(abs(a - float(p[i])) for a, i in zip(probs, top))
    assert worst <= 1e-4, f"the bars' probabilities differ from gpt2lib's by up to {worst:.1e}"
    assert not visit.problems(), visit.problems()
    print(f"[PASS] {path}: the sampling view's top {len(top)} tokens and probabilities (within {worst:.0e}) are gpt2lib's")


def test_every_view_offers_its_text_box_and_loads_nothing_first(live_site, open_page):
    for kind, marker in VIEWS.items():
        pages = [page for page in CHAPTERS if marker in (live_site / page).read_text(encoding="utf-8")]
        for path in pages:
            page, visit = open_page(path)
            n_views = page.locator(f"div.g2v.{marker}").count()
            n_boxes = page.locator(f"div.g2v.{marker} [data-role=live-input]").count()
            assert n_boxes == n_views, f"{path}: {n_views} {kind} views but {n_boxes} text boxes (re-execute the chapter?)"
            assert not _web_model_requests(visit), f"{path}: the first load fetched {_web_model_requests(visit)}"
            assert not visit.problems(), visit.problems()
    print("[PASS] every attention, token and sampling view offers a text box; no first load fetches web-model/")


def test_live_mode_works_from_file_and_times_a_forward_pass(live_site, browser, tok):
    """Opened as a file (no server), live mode loads its scripts; one forward pass of 64 tokens is timed."""
    path = _chapter_with(live_site, VIEWS["attention"])
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.goto((live_site / path).resolve().as_uri(), wait_until="load")
    view = page.locator("div.g2v.g2v-attention").first
    _go_live(page, view, SENTENCE)
    text = (gpt2lib.tokenizer.GPT2_DIR.parent / "shakespeare" / "henry_iv_part_1.txt").read_text()[:2000]
    ids = tok.encode(text)[:64]
    ms = page.evaluate("""ids => { const m = G2VWeb.model, times = [];
        for (let r = 0; r < 4; r++) { const t0 = performance.now(); m.forward(ids, {logits: "last"}); times.push(performance.now() - t0); }
        return Math.min(...times.slice(1)); }""", ids)
    context.close()
    assert not errors, errors
    print(f"[PASS] live mode works from file://; one forward pass of 64 tokens takes {ms:.0f} ms in Chromium")
