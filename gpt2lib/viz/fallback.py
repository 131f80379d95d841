"""Static first frames: what each view shows before (or without) its JavaScript.

Jupyter strips scripts from the outputs of a notebook it does not trust (one just
cloned, say), and only inline styles survive its sanitizer, so these frames are
plain tables and spans styled inline: the head the view opens on, the similarity matrix,
the distribution at temperature 1. The interactive view replaces them when it runs.
"""

import torch

from .render import BLUES, MASKED, RDBU, esc, ink_on, ramp

MONO = "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace;"
TITLE = "font-weight:600;font-size:15px;margin-bottom:4px;"
TOKEN_COLOURS = ["#fde68a", "#bbf7d0", "#bfdbfe", "#fecaca", "#ddd6fe", "#a5f3fc", "#fbcfe8"]


def attention_frame(result, layer: int = 0, head: int = 0) -> str:
    """One head as a table of coloured cells, rows labelled by token."""
    w = result.weights[layer, head]  # [T, T]
    T = w.size(0)
    cell = max(6, min(24, 440 // T))
    cols = f'<col style="width:90px">' + f'<col style="width:{cell}px">' * T
    rows = []
    for i in range(T):
        cells = "".join(
            f'<td style="background-color:{ramp(BLUES, float(w[i, j]))};padding:0"></td>' if j <= i
            else f'<td style="background-color:{MASKED};padding:0"></td>' for j in range(T))
        rows.append(f'<tr style="height:{cell}px"><td style="{MONO}font-size:10px;text-align:right;'
                    f'padding:0 4px;white-space:pre;background-color:#ffffff">{esc(result.labels[i][:12])}'
                    f"</td>{cells}</tr>")
    cut = (f" (the first {T} of {result.total_tokens} tokens)" if result.truncated else "")
    return (f'<div style="{TITLE}">Attention · layer {layer} · head {head}{cut}</div>'
            f'<table style="border-collapse:collapse;table-layout:fixed;border:0">{cols}{"".join(rows)}</table>'
            '<div style="font-size:12px;color:#5a5a5a">Rows: the token looking; columns: the tokens '
            "it looks at, in the same order. Darker blue = more attention; grey = later tokens, masked.</div>")


def token_frame(result, n_chars: int) -> str:
    """The text with each token on its own colour; the id and bytes in each token's tooltip."""
    spans = []
    for k, (i, text, piece) in enumerate(zip(result.ids, result.texts, result.pieces)):
        spans.append(f'<span title="id {i} · bytes {piece.hex(" ")}" style="background-color:'
                     f'{TOKEN_COLOURS[k % len(TOKEN_COLOURS)]};border-radius:3px;padding:1px 0">'
                     f"{esc(text)}</span>")
    return (f'<div style="{TITLE}">{n_chars} characters → {len(result.ids)} tokens</div>'
            f'<div style="{MONO}font-size:14px;line-height:1.9;white-space:pre-wrap;'
            f'word-break:break-word">{"".join(spans)}</div>')


def embedding_frame(result) -> str:
    """The cosine similarity matrix of the chosen tokens, values in the cells."""
    sim = result.similarity
    head = "".join(f'<th style="{MONO}font-size:11px;padding:2px 4px;white-space:pre">{esc(s)}</th>'
                   for s in result.labels)
    rows = []
    for i, label in enumerate(result.labels):
        cells = []
        for j in range(len(result.labels)):
            v = float(sim[i, j])
            ink = "#fff" if abs(v) > 0.6 else "#1b1b1b"
            cells.append(f'<td style="background-color:{ramp(RDBU, (v + 1) / 2)};color:{ink};'
                         f'font-size:11px;text-align:center;padding:2px 4px">{v:.2f}</td>')
        rows.append(f'<tr><th style="{MONO}font-size:11px;text-align:right;padding:2px 4px;'
                    f'white-space:pre">{esc(label)}</th>{"".join(cells)}</tr>')
    return (f'<div style="{TITLE}">Cosine similarity of token embeddings (wte)</div>'
            f'<table style="border-collapse:collapse"><tr><th></th>{head}</tr>{"".join(rows)}</table>')


def sampling_frame(result, n_bars: int) -> str:
    """The n_bars most likely next tokens at temperature 1, no filtering."""
    probs = torch.softmax(result.logits.double(), dim=-1)
    rows = []
    for i, label in zip(result.top_ids[:n_bars], result.top_labels[:n_bars]):
        p = float(probs[i])
        width = max(1, round(300 * p / float(probs[result.top_ids[0]])))
        rows.append(f'<tr><td style="{MONO}font-size:12px;text-align:right;white-space:pre;'
                    f'padding:1px 6px">{esc(label)}</td><td style="padding:1px 0"><div style="'
                    f'background-color:#2171b5;width:{width}px;height:10px"></div></td>'
                    f'<td style="{MONO}font-size:12px;padding:1px 6px">{100 * p:.2f}%</td></tr>')
    return (f'<div style="{TITLE}">Next-token probabilities (temperature 1, no top-k/top-p)</div>'
            f'<table style="border-collapse:collapse">{"".join(rows)}</table>')
