"""Small helpers the chapters use to show the package's own source code.

The chapters never copy code out of gpt2lib: they display the installed source, so
what the reader sees is exactly what runs.
"""

import inspect
import textwrap


def show_source(obj):
    """Display the source of a gpt2lib function, class or method, syntax-highlighted.

    Returns an IPython Code object (rendered as highlighted HTML in notebooks and in
    the book, as plain text elsewhere).
    >>> from gpt2lib.layers import gelu
    >>> show_source(gelu)  # doctest: +SKIP
    """
    from IPython.display import Code

    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise TypeError(f"cannot show the source of {obj!r}: {err}; pass a function, class or method") from err
    # dedent, not cleandoc: a method's body must stay indented under its def
    return Code(textwrap.dedent(source), language="python")
