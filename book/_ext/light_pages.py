"""A Sphinx extension that keeps a chapter's first load light (<= 1.5 MB, no other host).

What a page does not use is not loaded:

- Math is converted to MathML when the book is built (latex2mathml), so browsers draw it
  natively and no page loads MathJax (1.2 MB of JavaScript and its fonts). The search
  snippets, which Sphinx takes from the page's text, then show the formula, not its TeX.
- The theme's Font Awesome script (1.5 MB, it swaps each icon for an inline SVG) is dropped:
  the theme's stylesheet already draws the same icons from the Font Awesome web font (and
  book.css draws the GitHub icon, so the 118 KB brands font is not needed either).
- The search index and its scripts (120 KB) are loaded by the search page only; the theme
  adds them to every page for a search-as-you-type box this book does not turn on.
- Images carry loading="lazy": a figure far down a chapter is fetched when the reader
  scrolls to it, not with the page.

It also adds the book's own stylesheet and script (book/_extra/css/book.css and
book/_extra/js/book.js: outputs that wrap, wide tables, figures, solution titles, search
over file://).
"""

import re
from pathlib import Path

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number

logger = logging.getLogger(__name__)

# The tags the theme's templates write and this extension removes, exactly as written; if a
# theme update changes them, the build warns (an error under -W) instead of silently
# shipping the heavy page again.
FONTAWESOME_JS = re.compile(r'\s*<script defer src="[^"]*_static/scripts/fontawesome\.js\?digest=\w+"></script>')
SEARCH_SCRIPTS = re.compile(
    r'\s*<script src="[^"]*_static/searchtools\.js"></script>'
    r'\s*<script src="[^"]*_static/language_data\.js"></script>'
    r'\s*<script src="[^"]*searchindex\.js"></script>'
)
IMG_WITHOUT_LOADING = re.compile(r"<img (?![^>]*\bloading=)")
DISPLAY_ENVIRONMENT = re.compile(r"^\\begin\{(split|aligned)\}(.*)\\end\{\1\}$", re.DOTALL)


def to_mathml(latex: str, display: bool) -> str:
    """TeX -> a <math> element, e.g. "x^2" -> '<math ...><msup><mi>x</mi><mn>2</mn></msup></math>'."""
    latex = latex.strip()
    match = DISPLAY_ENVIRONMENT.match(latex)
    if match:  # myst's amsmath wraps multi-line displays in split; MathML needs no wrapper
        latex = match.group(2).strip()
    return convert(latex, display="block" if display else "inline")


def visit_math(self, node: nodes.math) -> None:
    """Inline math: <span class="math"><math>...</math></span>."""
    self.body.append(self.starttag(node, "span", "", CLASS="math notranslate"))
    self.body.append(to_mathml(node.astext(), display=False))
    self.body.append("</span>")
    raise nodes.SkipNode


def visit_math_block(self, node: nodes.math_block) -> None:
    """Display math, with its equation number when it has one."""
    self.body.append(self.starttag(node, "div", CLASS="math notranslate"))
    if node.get("number"):
        self.body.append(f'<span class="eqno">({get_node_equation_number(self, node)})</span>')
    self.body.append(to_mathml(node.astext(), display=True))
    self.body.append("</div>\n")
    raise nodes.SkipNode


def lazy_images(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """html-page-context: every <img> in the page body loads when it nears the screen."""
    if "body" in context:
        context["body"] = IMG_WITHOUT_LOADING.sub('<img loading="lazy" ', context["body"])


def _remove(pattern: re.Pattern, html: str, what: str, page: Path) -> str:
    html, count = pattern.subn("", html, count=1)
    if count == 0:
        logger.warning(f"{page.name}: found no {what} to remove; has the theme's layout changed? "
                       f"(book/_ext/light_pages.py)")
    return html


def strip_unused_scripts(app: Sphinx, exception) -> None:
    """build-finished: remove from the written pages the scripts they do not use."""
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    for docname in app.env.found_docs | {"search", "genindex"}:
        page = outdir / f"{docname}.html"
        if not page.is_file():
            continue
        html = page.read_text(encoding="utf-8")
        if "fontawesome.js" in html:
            html = _remove(FONTAWESOME_JS, html, "Font Awesome script", page)
        if docname != "search" and "searchindex.js" in html:
            html = _remove(SEARCH_SCRIPTS, html, "search scripts", page)
        page.write_text(html, encoding="utf-8")


def recopy_changed_extra_files(app: Sphinx, env, added, changed, removed) -> list[str]:
    """env-get-outdated: when only a file of html_extra_path changed (book.css, book.js),
    Sphinx finds nothing to rebuild and stops before copying it; rebuilding the root page
    makes it finish the build, which copies the extra files again."""
    outdir = Path(app.outdir)
    for extra in app.config.html_extra_path:
        source = Path(app.confdir) / extra
        for file in source.rglob("*") if source.is_dir() else []:
            copy = outdir / file.relative_to(source)
            if file.is_file() and (not copy.exists() or copy.stat().st_mtime < file.stat().st_mtime):
                return [app.config.root_doc]
    return []


def setup(app: Sphinx) -> dict:
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_math_block, None))
    app.connect("html-page-context", lazy_images)
    app.connect("build-finished", strip_unused_scripts)
    app.connect("env-get-outdated", recopy_changed_extra_files)
    # book/_extra/ is copied to the site's root; these paths are relative to _static/
    app.add_css_file("../css/book.css")
    app.add_js_file("../js/book.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
