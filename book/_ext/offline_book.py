"""A Sphinx extension with the fixes the offline book needs from its page assembly.

Inline scripts added twice. sphinx-thebe (loaded by Jupyter Book even when thebe is off)
adds an inline ``const THEBE_JS_URL = ...`` script after the HTML builder is set up.
Sphinx 7.4 then registers it twice (once as ``None``, once as ``''`` when the builder
re-reads its registry), and the second ``const`` throws "Identifier 'THEBE_JS_URL' has
already been declared" on every page. This extension drops any script that is an exact
repeat (same file or same inline body, same attributes) of one already on the page.
"""

from sphinx.application import Sphinx


def _script_key(script) -> tuple:
    """What makes two script entries the same script: its file (or none) and attributes."""
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (str(filename), tuple(sorted((str(k), str(v)) for k, v in attributes.items())))


def drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """html-page-context handler: keep the first of any repeated script entries."""
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
    # priority 900: after the extensions that add scripts to the page (default 500)
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
