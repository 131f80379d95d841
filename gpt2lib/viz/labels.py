"""Readable labels for tokens: GPT-2's invisible characters made visible.

GPT-2 stores a leading space inside the token (" the" is one token, shown as
"Ġthe" in vocab.json). The views show the token's real bytes instead, with the
whitespace marked, so "␣the" is the token " the" and "↵" is a newline.
"""

# Whitespace that would be invisible or break a label, and the mark shown instead.
VISIBLE = {" ": "␣", "\n": "↵", "\r": "␍", "\t": "⇥", "\u00a0": "⍽"}


def visible(text: str) -> str:
    """Replace whitespace and control characters with visible marks.

    >>> visible(" the\\n")
    '␣the↵'
    """
    out = []
    for ch in text:
        if ch in VISIBLE:
            out.append(VISIBLE[ch])
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def token_label(tokenizer, token_id: int) -> str:
    """The token's bytes decoded as UTF-8 with whitespace marked.

    A token holding part of a multi-byte character shows U+FFFD (�) for that part.
    """
    return visible(tokenizer.token_bytes(int(token_id)).decode("utf-8", errors="replace"))
