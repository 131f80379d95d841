"""A Sphinx extension with two fixes the book needs from its page assembly.

Chapter numbers. A chapter notebook's title carries its number ("# 4. Attention"), so it
reads well on its own in JupyterLab. In the book, _toc.yml numbers the chapters itself,
which also numbers their exercises per chapter ("Exercise 4.1"); keeping the title's own
number would show "4. 4. Attention". This extension removes a leading "N. " from a page
title and warns (an error under `-W`) when N is not the number the table of contents
gives that page, so the two cannot drift apart.

Inline scripts added twice. sphinx-thebe (loaded by Jupyter Book even when thebe is off)
adds an inline ``const THEBE_JS_URL = ...`` script after the HTML builder is set up.
Sphinx 7.4 then registers it twice (once as ``None``, once as ``''`` when the builder
re-reads its registry), and the second ``const`` throws "Identifier 'THEBE_JS_URL' has
already been declared" on every page. This extension drops any script that is an exact
repeat (same file or same inline body, same attributes) of one already on the page.
"""

import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)
TITLE_NUMBER = re.compile(r"^(\d+)\.\s+")


def strip_title_number(app: Sphinx, doctree: nodes.document) -> None:
    """doctree-read: "4. Attention" -> "Attention", remembering the 4 for the check below."""
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children or not isinstance(section[0], nodes.title):
        return
    title = section[0]
    text = title.children[0] if title.children else None
    if not isinstance(text, nodes.Text):
        return
    match = TITLE_NUMBER.match(str(text))
    if match:
        title.replace(text, nodes.Text(str(text)[match.end():]))
        app.env.book_title_numbers = getattr(app.env, "book_title_numbers", {})
        app.env.book_title_numbers[app.env.docname] = int(match.group(1))


def check_title_numbers(app: Sphinx, env) -> None:
    """env-check-consistency: the number a title carried is the one the toc gives it."""
    for docname, number in sorted(getattr(env, "book_title_numbers", {}).items()):
        toc_number = env.toc_secnumbers.get(docname, {}).get("")
        if toc_number is None:
            logger.warning(
                f"the title of {docname} starts with '{number}. ' but _toc.yml does not number it; "
                "remove the number from the title or move the page into a numbered part",
                location=docname,
            )
        elif toc_number != (number,):
            shown = ".".join(map(str, toc_number))
            logger.warning(
                f"the title of {docname} says chapter {number} but _toc.yml makes it chapter {shown}",
                location=docname,
            )


def merge_title_numbers(app: Sphinx, env, docnames, other) -> None:
    """env-merge-info: combine what parallel readers found."""
    env.book_title_numbers = getattr(env, "book_title_numbers", {})
    env.book_title_numbers.update(getattr(other, "book_title_numbers", {}))


def purge_title_number(app: Sphinx, env, docname: str) -> None:
    getattr(env, "book_title_numbers", {}).pop(docname, None)


def _script_key(script) -> tuple:
    """What makes two script entries the same script: its file (or none) and attributes."""
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (str(filename), tuple(sorted((str(k), str(v)) for k, v in attributes.items())))


def drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """html-page-context: keep the first of any repeated script entries."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict:
    # priority 400: before Sphinx's title collector (500) records the page title
    app.connect("doctree-read", strip_title_number, priority=400)
    app.connect("env-check-consistency", check_title_numbers)
    app.connect("env-merge-info", merge_title_numbers)
    app.connect("env-purge-doc", purge_title_number)
    # priority 900: after the extensions that add scripts to the page (default 500)
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
