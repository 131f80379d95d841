"""Live versions of the views for JupyterLab: edit the text, the view is recomputed.

A text box (ipywidgets) drives an Output widget that displays the view, so its
JavaScript runs as for any cell output. The view follows the typing: each change of
the box restarts a short timer (DEBOUNCE_S), and the view is recomputed when it runs
out, so a burst of keystrokes costs one forward pass (the debouncing pattern of the
ipywidgets documentation, "Widget Events"). The view is put in the Output widget's
`outputs` state rather than printed inside `with output:`: a recompute that runs after
the pause is no longer part of the keystroke's message, whose replies JupyterLab has
stopped routing by then, so printed output would be dropped. Needs a running kernel; in the static
book use the plain views (attention_view, ...), which keep working without one.
ipywidgets is imported here, when a live view is made, not with gpt2lib.
"""

import asyncio
import html
from functools import lru_cache

DEBOUNCE_S = 0.4
TYPING_HINT = "The view below updates as you type (after a short pause)."
# Errors are shown on a light card of their own, readable on light and dark themes
# alike: #8c1020 on #fff5f5 has a contrast ratio of about 8:1 (WCAG asks for 4.5:1).
ERROR_STYLE = ("background-color:#fff5f5;color:#8c1020;border:1px solid #e8b4b8;border-radius:6px;"
               "padding:6px 10px;margin:4px 0;font-size:13px;white-space:pre-wrap;")


def error_html(err: Exception) -> str:
    """An exception as a small HTML card: "ValueError: ..." in dark red on a pale background."""
    return f'<div class="g2v-live-error" style="{ERROR_STYLE}">{html.escape(f"{type(err).__name__}: {err}")}</div>'


def display_output(obj) -> dict:
    """`obj` as one display_data output (nbformat's dict), formatted as IPython displays it."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        data, metadata = shell.display_formatter.format(obj)
    else:  # a script or a test: the two representations the views and errors have
        data, metadata = {"text/plain": repr(obj)}, {}
        if hasattr(obj, "_repr_html_"):
            data["text/html"] = obj._repr_html_()
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def running_loop():
    """The event loop running this code (the kernel's, inside a widget callback), or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@lru_cache(maxsize=None)
def live_view_class():
    """The LiveView widget class (built on first use, so importing gpt2lib.viz needs no ipywidgets)."""
    import ipywidgets as widgets

    class LiveView(widgets.VBox):
        """A text box, a line saying that the view follows the typing, and the view.
        .text is the box; .output holds the view; .view is the current View (None on an error)."""

        def __init__(self, kind, make_view, value, description, multiline):
            box_type = widgets.Textarea if multiline else widgets.Text
            self.kind = kind
            self.make_view = make_view
            self.text = box_type(value=value, description=description, continuous_update=True,
                                 layout=widgets.Layout(width="100%"),
                                 style={"description_width": "initial"})
            self.hint = widgets.HTML(f'<span style="font-size:12px;opacity:0.8">{TYPING_HINT}</span>')
            self.output = widgets.Output()
            self.view = None
            self._pending = None
            super().__init__([self.text, self.hint, self.output])
            self.text.observe(lambda change: self.schedule(), names="value")
            self.refresh()

        def schedule(self):
            """Recompute DEBOUNCE_S after the last change; at once when no event loop runs (a script, a test)."""
            loop = running_loop()
            if loop is None:
                self.refresh()
                return
            if self._pending is not None:
                self._pending.cancel()
            self._pending = loop.call_later(DEBOUNCE_S, self.refresh)

        def refresh(self):
            """Recompute the view from the text box and show it (or the error, in words)."""
            from IPython.display import HTML

            self._pending = None
            try:
                self.view = self.make_view(self.text.value)
                shown = self.view
            except (ValueError, TypeError) as err:
                self.view = None
                shown = HTML(error_html(err))
            self.output.outputs = (display_output(shown),)

        def __repr__(self):
            return f"<gpt2lib.viz live {self.kind} view>"

    return LiveView


def live_attention(model, tokenizer, text: str = "", *, max_tokens: int = 48,
                   layer: int | None = None, head: int | None = None):
    """attention_view driven by a text box; editing the text recomputes the weights."""
    from .views import attention_view

    def make(t):
        return attention_view(model, tokenizer, t, max_tokens=max_tokens, layer=layer, head=head)
    return live_view_class()("attention", make, text, "Text:", multiline=True)


def live_tokens(tokenizer, text: str = ""):
    """token_view driven by a text box."""
    from .views import token_view
    return live_view_class()("tokens", lambda t: token_view(tokenizer, t), text, "Text:", multiline=True)


def live_sampling(model, tokenizer, prompt: str = "", *, n_top: int = 200, n_bars: int = 20):
    """sampling_view driven by a prompt box; the sliders then work in the browser."""
    from .views import sampling_view
    return live_view_class()("sampling", lambda t: sampling_view(model, tokenizer, t, n_top=n_top, n_bars=n_bars),
                             prompt, "Prompt:", multiline=True)


def live_embedding(model, tokenizer, words: str = "", *, k: int = 12):
    """embedding_view driven by a box of comma-separated words.

    Each word gets a leading space, the form it has inside a sentence: "king" -> " king".
    """
    from .views import embedding_view

    def make(text):
        return embedding_view(model, tokenizer, [" " + w.strip() for w in text.split(",") if w.strip()], k=k)
    return live_view_class()("embedding", make, words, "Words (comma-separated):", multiline=False)
