"""Turning a view's data into one self-contained piece of HTML.

The output is plain HTML: a static first frame drawn with inline styles (what an
untrusted notebook shows, since Jupyter strips scripts from untrusted outputs),
the data as JSON, the stylesheet, and the view's vanilla JavaScript, all inlined
from gpt2lib/viz/static/. Nothing is fetched, so the same output works in
JupyterLab and in the static HTML book without a kernel or a network. In the static
book the attention, token and sampling views also offer "Try your own text"
(live-text.js): only then does the page load the tokenizer and the bundled model,
from the site's own web-model/ folder (docs/WEB_ENGINE.md). Element
ids come from a hash of the data, so re-running a notebook gives identical HTML.
"""

import hashlib
import html
import json
from functools import lru_cache
from importlib import resources

BLUES = ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"]
RDBU = ["#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7", "#d1e5f0", "#92c5de", "#4393c3", "#2166ac"]
MASKED = "#e4e4e4"
# The views that, in the static book, take the reader's own text and recompute their data
# in the page (live-text.js, with bpe.js, engine.js and viewdata.js from web-model/).
LIVE_TEXT_KINDS = ("attention", "tokens", "sampling")
NOT_LIVE = ("A static preview: run the cell (or trust the notebook) to make this view "
            "interactive.")


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """The text of a file shipped in gpt2lib/viz/static/."""
    return resources.files("gpt2lib.viz").joinpath("static", name).read_text(encoding="utf-8")


def ramp(stops: list[str], t: float) -> str:
    """The colour at t in [0, 1] on a piecewise-linear scale; the same rule as G2V.ramp in JS."""
    t = min(max(float(t), 0.0), 1.0)
    x = t * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    a = [int(stops[i][k:k + 2], 16) for k in (1, 3, 5)]
    b = [int(stops[i + 1][k:k + 2], 16) for k in (1, 3, 5)]
    # JS Math.round rounds halves up; Python's round() would round them to even.
    return "#" + "".join(f"{int(a[k] + (b[k] - a[k]) * f + 0.5):02x}" for k in range(3))


def ink_on(t: float) -> str:
    """Text colour readable on ramp(BLUES, t)."""
    return "#fff" if t > 0.55 else "#1b1b1b"


def to_json(data) -> str:
    """Canonical JSON (sorted keys, no spaces), safe inside a <script> element."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # "<" can only occur inside JSON strings, where \u003c means the same character.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def element_id(kind: str, data_json: str) -> str:
    """A stable id: the view's kind and the hash of its data."""
    return f"g2v-{kind}-{hashlib.sha1(data_json.encode('utf-8')).hexdigest()[:12]}"


def esc(text) -> str:
    return html.escape(str(text), quote=True)


class View:
    """An interactive view: displays itself in Jupyter and can be saved as a web page.

    kind: "attention", "embedding", "tokens" or "sampling"; data: the JSON-ready
    dict the view's JavaScript draws from; fallback: the static first frame (HTML);
    summary: one line for repr; result: the named data object the view was built from.
    """

    def __init__(self, kind: str, data: dict, fallback: str, summary: str, result=None):
        self.kind = kind
        self.data = data
        self.fallback = fallback
        self.summary = summary
        self.result = result
        self.data_json = to_json(data)
        self.element_id = element_id(kind, self.data_json)

    def __repr__(self) -> str:
        return f"<gpt2lib.viz {self.kind} view: {self.summary}>"

    def html(self) -> str:
        """The HTML fragment (what Jupyter displays)."""
        start = f"G2V.start(document.currentScript, {json.dumps(self.element_id)}, G2V.{self.kind});"
        live = ""
        if self.kind in LIVE_TEXT_KINDS:  # a text box in the static book (live-text.js)
            live = (f"{asset('live-text.js')}\nG2V.liveText(document.currentScript, {json.dumps(self.element_id)}, "
                    f"{json.dumps(self.kind)}, G2V.{self.kind});\n")
        script = f"(function(){{\n{asset('common.js')}\n{asset(self.kind + '.js')}\n{start}\n{live}}})();"
        return (
            f'<div class="g2v g2v-{self.kind}" id="{self.element_id}" '
            f'style="background-color:#ffffff;color:#1b1b1b;padding:8px;">'
            f"<style>{asset('viz.css')}</style>"
            f'<div class="g2v-fallback">{self.fallback}'
            f'<div style="color:#6b6b6b;font-size:12px;margin-top:4px;">{NOT_LIVE}</div></div>'
            f'<script type="application/json" class="g2v-data">{self.data_json}</script>'
            f"<script>{script}</script></div>"
        )

    def _repr_html_(self) -> str:
        return self.html()

    def page(self, title: str | None = None) -> str:
        """A complete standalone HTML page holding this view."""
        title = esc(title or f"gpt2lib {self.kind} view")
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
                f'</head><body style="margin:16px;background:#fff;">{self.html()}</body></html>\n')

    def save(self, path, title: str | None = None):
        """Write the standalone page to path; returns the path."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.page(title))
        return path
