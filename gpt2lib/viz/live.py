"""Live versions of the views for JupyterLab: edit the text, the view is recomputed.

A text box (ipywidgets) drives an Output widget that displays the view, so its
JavaScript runs as for any cell output. Needs a running kernel; in the static book
use the plain views (attention_view, ...), which keep working without one.
ipywidgets is imported here, when a live view is made, not with gpt2lib.
"""

from functools import lru_cache


@lru_cache(maxsize=None)
def live_view_class():
    """The LiveView widget class (built on first use, so importing gpt2lib.viz needs no ipywidgets)."""
    import ipywidgets as widgets

    class LiveView(widgets.VBox):
        """A text box and the view it drives. .text is the box; .output holds the view."""

        def __init__(self, kind, make_view, value, description, multiline):
            box_type = widgets.Textarea if multiline else widgets.Text
            self.kind = kind
            self.make_view = make_view
            self.text = box_type(value=value, description=description, continuous_update=False,
                                 layout=widgets.Layout(width="100%"),
                                 style={"description_width": "initial"})
            self.output = widgets.Output()
            self.view = None
            super().__init__([self.text, self.output])
            self.text.observe(lambda change: self.refresh(), names="value")
            self.refresh()

        def refresh(self):
            """Recompute the view from the text box and show it (or the error, in words)."""
            from IPython.display import HTML, display

            with self.output:
                self.output.clear_output(wait=True)
                try:
                    self.view = self.make_view(self.text.value)
                    display(self.view)
                except (ValueError, TypeError) as err:
                    self.view = None
                    display(HTML(f'<div style="color:#b2182b">{type(err).__name__}: {err}</div>'))

        def __repr__(self):
            return f"<gpt2lib.viz live {self.kind} view>"

    return LiveView


def live_attention(model, tokenizer, text: str = "", *, max_tokens: int = 48):
    """attention_view driven by a text box; editing the text recomputes the weights."""
    from .views import attention_view
    return live_view_class()("attention", lambda t: attention_view(model, tokenizer, t, max_tokens=max_tokens),
                             text, "Text:", multiline=True)


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
