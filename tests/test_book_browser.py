"""Open every page of the built book in headless Chromium and check that it works offline.

The book is built once per test session with scripts/build_book.sh (offline, -W -n),
unless _build/.book-built (written by a successful build) is newer than every source
file, in which case the existing _build/html is used. The site is served from
127.0.0.1 by a thread, and Debian's chromium, driven by Playwright, opens each page.

For every page: it loads (HTTP 200); no request goes to any host but 127.0.0.1 (every
other request is blocked and reported); no JavaScript error and no console error; no
local file is missing (404); every formula was converted to MathML at build time;
every saved ipywidgets view renders into a non-empty widget. A screenshot of each chapter
is saved under _build/screenshots/ (<chapter>.jpg, and <chapter>-widget.png for
the first widget; attention-view-before/after.png for the attention view test).

Needs Debian's chromium (`apt-get install -y chromium`); set CHROMIUM to use another.
"""

import functools
import http.server
import os
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
HTML = BUILD / "html"
STAMP = BUILD / ".book-built"
SCREENSHOTS = BUILD / "screenshots"
# What the built site is made from: when any of these is newer than the last build, rebuild.
SOURCES = ["_config.yml", "_toc.yml", "book", "notebooks", "scripts/build_book.sh"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'
PAGE_TIMEOUT_MS = 30_000


def toc_documents(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """The documents _toc.yml lists, in reading order, e.g. ["book/intro", "book/preface", ...]."""
    toc = yaml.safe_load(toc_path.read_text())
    documents = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                documents.append(str(Path(entry["file"]).with_suffix("")))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return documents


# Every page Sphinx writes: the documents in the table of contents, the redirect at the
# site root, the search page and the index.
PAGES = [f"{doc}.html" for doc in toc_documents()] + ["index.html", "search.html", "genindex.html"]
CHAPTERS = [page for page in PAGES if page.startswith("notebooks/")]


def _newest_source_mtime() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for file in files:
            if file.is_file() and ".ipynb_checkpoints" not in file.parts:
                newest = max(newest, file.stat().st_mtime)
    return newest


@pytest.fixture(scope="session")
def site() -> Path:
    """_build/html, built now unless the last successful build is newer than the sources."""
    if STAMP.exists() and STAMP.stat().st_mtime >= _newest_source_mtime() and HTML.is_dir():
        return HTML
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_book.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if result.returncode != 0:
        log = (result.stdout + result.stderr).splitlines()
        pytest.fail(
            "the book does not build cleanly (bash scripts/build_book.sh, which runs "
            "`jupyter-book build . -W -n --keep-going`); last lines of its output:\n" + "\n".join(log[-60:])
        )
    return HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="session")
def server(site: Path):
    """The built site served at http://127.0.0.1:<free port>/."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


@dataclass
class Visit:
    """What happened while one page loaded."""

    status: int | None = None
    external_requests: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    loaded: list[tuple[str, int]] = field(default_factory=list)  # (url, bytes transferred)

    @property
    def bytes_loaded(self) -> int:
        return sum(size for _, size in self.loaded)

    def problems(self) -> list[str]:
        found = []
        if self.status != 200:
            found.append(f"the page answered HTTP {self.status}, not 200")
        found += [f"request to another host (blocked): {url}" for url in self.external_requests]
        found += [f"missing local file: {what}" for what in self.missing_files]
        found += [f"JavaScript error: {text}" for text in self.page_errors]
        found += [f"console error: {text}" for text in self.console_errors]
        return found


def _transferred(request) -> int:
    """Bytes a finished request brought over the wire (headers and body, as Chromium counts them)."""
    sizes = request.sizes()
    return sizes["responseHeadersSize"] + sizes["responseBodySize"]


def _is_local(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS


@pytest.fixture
def open_page(browser, server):
    """open_page(path, width=1280) -> (page, Visit): load a page of the site in a window `width`
    CSS pixels wide and record what it asked for; visit.bytes_loaded is what it transferred."""
    contexts = []

    def _open(path: str, width: int = 1280):
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        visit = Visit()

        def route(route):
            url = route.request.url
            if _is_local(url):
                route.continue_()
            else:
                visit.external_requests.append(url)
                route.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
        page.on("console", lambda msg: msg.type == "error" and visit.console_errors.append(msg.text))
        page.on(
            "response",
            lambda r: r.status >= 400 and _is_local(r.url) and visit.missing_files.append(f"{r.url} ({r.status})"),
        )
        page.on("websocket", lambda ws: _is_local(ws.url) or visit.external_requests.append(ws.url))
        page.on("requestfinished", lambda request: visit.loaded.append((request.url, _transferred(request))))
        response = page.goto(server + path, wait_until="load")
        visit.status = response.status if response else None
        page.wait_for_load_state("networkidle")
        return page, visit

    yield _open
    for context in contexts:
        context.close()


def _math_problems(page) -> list[str]:
    """The build turns every formula into MathML (book/_ext/light_pages.py): none is left as TeX."""
    untyped = page.evaluate(
        """() => Array.from(document.querySelectorAll('.math'))
               .filter(m => !m.querySelector('math') || /\\\\[a-zA-Z(\\[]/.test(m.textContent))
               .map(m => m.textContent.trim().slice(0, 80))"""
    )
    return [f"math left as TeX (not converted to MathML): {text!r}" for text in untyped]


def _widget_problems(page) -> list[str]:
    """Every saved widget view must have become a visible, non-empty widget."""
    n_views = page.locator(WIDGET_VIEW).count()
    if n_views == 0:
        return []
    try:
        page.wait_for_function(
            "n => document.querySelectorAll('.widget-subarea .jupyter-widgets').length >= n",
            arg=n_views,
            timeout=PAGE_TIMEOUT_MS,
        )
    except Exception:  # noqa: BLE001 (the count below says what is missing)
        pass
    rendered = page.evaluate(
        """() => Array.from(document.querySelectorAll('.widget-subarea')).map(area => {
               const widget = area.querySelector('.jupyter-widgets');
               const box = widget ? widget.getBoundingClientRect() : null;
               return {ok: !!widget && box.width > 0 && box.height > 0, text: area.innerText.slice(0, 200)};
           })"""
    )
    found = []
    if len(rendered) < n_views:
        found.append(
            f"{n_views} saved widget views but {len(rendered)} rendered: is the widget state saved in the "
            "notebook metadata (scripts/execute_notebooks.py saves it), and did the vendored html-manager load?"
        )
    for i, view in enumerate(rendered):
        if not view["ok"]:
            found.append(f"widget view {i} rendered empty or invisible")
        if "Error displaying widget" in view["text"] or "not found" in view["text"]:
            found.append(f"widget view {i} shows an error: {view['text']!r}")
    return found


def _view_problems(page) -> list[str]:
    """gpt2lib's views (div.g2v) replace their static first frame once their script runs."""
    views = page.evaluate(
        """() => Array.from(document.querySelectorAll('div.g2v')).map(v => ({
               kind: v.className, live: v.getAttribute('data-live') === '1',
               error: (v.querySelector('.g2v-error') || {}).textContent || ''}))"""
    )
    found = []
    for i, view in enumerate(views):
        if view["error"]:
            found.append(f"view {i} ({view['kind']}) failed: {view['error'][:200]}")
        elif not view["live"]:
            found.append(f"view {i} ({view['kind']}) still shows its static first frame: its script did not run")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES)
def test_page_works_offline(open_page, path):
    page, visit = open_page(path)
    problems = visit.problems() + _math_problems(page) + _widget_problems(page) + _view_problems(page)
    if path in CHAPTERS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        stem = Path(path).stem
        # the whole page; JPEG because a chapter is 10,000+ pixels tall (PNG takes twice as long)
        page.screenshot(path=str(SCREENSHOTS / f"{stem}.jpg"), full_page=True, type="jpeg", quality=75)
        if page.locator(".widget-subarea").count():
            widget = page.locator(".widget-subarea").first
            widget.scroll_into_view_if_needed()
            widget.screenshot(path=str(SCREENSHOTS / f"{stem}-widget.png"))
    assert not problems, f"{path} has {len(problems)} problem(s):\n  " + "\n  ".join(problems)


@pytest.mark.slow
def test_every_built_page_is_checked(site):
    """The parametrized list above covers every HTML page the build wrote."""
    skip = {"_static", "_sources", "_images", "vendor", "js"}
    built = {
        path.relative_to(site).as_posix()
        for path in site.rglob("*.html")
        if not skip.intersection(path.relative_to(site).parts[:1])
    }
    unchecked = built - set(PAGES)
    missing = set(PAGES) - built
    assert not unchecked, f"built pages that no test opens (add them to _toc.yml or to PAGES): {sorted(unchecked)}"
    assert not missing, f"pages in _toc.yml that the build did not write: {sorted(missing)}"


@pytest.mark.slow
def test_search_finds_chapters(open_page):
    page, visit = open_page("search.html?q=attention")
    page.wait_for_selector("#search-results ul.search li", timeout=PAGE_TIMEOUT_MS)
    links = page.locator("#search-results ul.search li a").evaluate_all("links => links.map(a => a.href)")
    assert any("/notebooks/" in link for link in links), (
        f"searching the book for 'attention' found no chapter (results: {links[:10]}); "
        "is searchindex.js built and served?"
    )
    assert not visit.problems(), visit.problems()


@pytest.mark.slow
def test_solutions_start_collapsed(open_page):
    """sphinx-exercise solutions carry the dropdown class: hidden until the reader opens one."""
    for path in CHAPTERS:
        page, _ = open_page(path)
        solutions = page.locator("div.solution")
        if solutions.count() == 0:
            page.context.close()
            continue
        for i in range(solutions.count()):
            solution = solutions.nth(i)
            body = solution.locator("section").first
            assert "dropdown" in (solution.get_attribute("class") or ""), (
                f"{path}: solution {i} is not collapsible; give it `:class: dropdown`"
            )
            assert not body.is_visible(), f"{path}: solution {i} is open when the page loads"
        solutions.first.locator("button.toggle-button").click()
        assert solutions.first.locator("section").first.is_visible(), f"{path}: clicking a solution does not open it"
        return
    pytest.fail(f"no chapter has a solution block (checked {len(CHAPTERS)} chapters); the labs need them")


@pytest.mark.slow
def test_launch_and_download_buttons(open_page):
    """A chapter links to Binder and Colab for its own notebook, and offers the .ipynb. JupyterHub
    is offered only where _config.yml names a hub (launch_buttons.jupyterhub_url); by default none."""
    chapter = CHAPTERS[0]
    notebook = chapter.replace(".html", ".ipynb")
    page, _ = open_page(chapter)
    links = page.locator("a").evaluate_all("links => links.map(a => a.href)")
    hub = (yaml.safe_load((ROOT / "_config.yml").read_text()).get("launch_buttons") or {}).get("jupyterhub_url")
    services = ["mybinder.org", "colab.research.google.com"] + (["/hub/user-redirect/git-pull"] if hub else [])
    if not hub:
        assert not [link for link in links if "/hub/user-redirect/" in link], (
            f"{chapter}: a JupyterHub launch link, but _config.yml names no hub"
        )
    for service in services:
        matching = [link for link in links if service in link]
        assert matching, f"{chapter}: no launch link containing {service!r}; check launch_buttons in _config.yml"
        assert any(urllib.parse.unquote(link).endswith(notebook) or notebook in urllib.parse.unquote(link)
                   for link in matching), f"{chapter}: the {service} link does not open {notebook}: {matching}"
    assert any(link.endswith(f"_sources/{notebook}") for link in links), f"{chapter}: no download link for {notebook}"


def _chapters_with(site: Path, marker: str) -> list[str]:
    return [page for page in CHAPTERS if marker in (site / page).read_text(encoding="utf-8")]


@pytest.mark.slow
def test_attention_view_responds(site, open_page):
    """In the static page (no kernel), choosing another head redraws the heatmap, and
    hovering a token recolours the text by where that token looks."""
    pages = _chapters_with(site, "g2v-attention")
    assert pages, "no chapter shows gpt2lib's attention view (div.g2v-attention); chapter 4 should"
    page, visit = open_page(pages[0])
    view = page.locator("div.g2v-attention").first
    view.scroll_into_view_if_needed()
    page.wait_for_function("v => v.getAttribute('data-live') === '1'", arg=view.element_handle())

    def snapshot():
        return view.evaluate(
            """v => ({heatmap: v.querySelector('[data-role=heatmap]').innerHTML,
                      tokens: v.querySelector('[data-role=tokens]').innerHTML,
                      title: v.querySelector('.g2v-title').textContent})"""
        )

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    view.screenshot(path=str(SCREENSHOTS / "attention-view-before.png"))
    before = snapshot()
    head = view.locator("select[data-role=head]")
    options = head.locator("option").all_inner_texts()
    assert len(options) > 1, f"the head selector offers {options}; expected one option per head"
    current = head.input_value()
    head.select_option(next(value for value in options if value != current))
    after_head = snapshot()
    assert after_head["heatmap"] != before["heatmap"], "choosing another head did not redraw the heatmap"
    assert after_head["title"] != before["title"], f"the title still reads {before['title']!r} after changing head"

    tokens = view.locator("[data-role=tokens] span")
    assert tokens.count() >= 2, "the token view shows fewer than 2 tokens"
    tokens.nth(1).hover()
    after_hover = snapshot()
    assert after_hover["tokens"] != after_head["tokens"], (
        "hovering a token did not change how the text is coloured (it should show where that token looks)"
    )
    view.screenshot(path=str(SCREENSHOTS / "attention-view-after.png"))
    assert not visit.problems(), visit.problems()


# --- How a reader sees the book, at a desktop width and a phone's -------------------------

WIDTHS = [1400, 390]
PAGE_WEIGHT_LIMIT = 1_500_000  # bytes a chapter may transfer on a cold first load
PLACEHOLDER_HOSTS = ("example.org", "example.com", "example.net")


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_check_lines_are_not_cut(open_page, width):
    """Every check line ("[PASS] ...", "[FAIL] ...") in an output is readable to its end:
    it wraps inside the column, never scrolls sideways or runs past the window."""
    cut = []
    for path in CHAPTERS:
        page, _ = open_page(path, width=width)
        lines = page.evaluate(
            """() => Array.from(document.querySelectorAll('div.cell_output pre'))
                 .filter(pre => /\\[(PASS|FAIL)\\]/.test(pre.textContent))
                 .map(pre => ({text: pre.textContent.trim().slice(0, 70), scroll: pre.scrollWidth,
                               client: pre.clientWidth, right: pre.getBoundingClientRect().right,
                               window: document.documentElement.clientWidth}))"""
        )
        cut += [f"{path}: {line['text']!r} ({line['scroll']} px wide in a {line['client']} px box)"
                for line in lines
                if line["scroll"] > line["client"] + 1 or line["right"] > line["window"] + 1]
        if path == "notebooks/03_embeddings.html":
            box = page.locator("div.cell_output pre", has_text="[PASS] ex 3.5").first
            if box.count():
                box.scroll_into_view_if_needed()
                box.screenshot(path=str(SCREENSHOTS / f"check-line-{width}.png"))
        page.context.close()
    assert not cut, f"{len(cut)} check line(s) cut at {width} px (book/_extra/css/book.css wraps outputs):\n  " + \
        "\n  ".join(cut[:20])


@pytest.mark.slow
def test_solution_title_link_opens_the_solution(open_page):
    """Clicking the link in a solution's title ("Exercise 4.1 (...)") opens the solution,
    stays on it and throws no JavaScript error (sphinx-togglebutton threw
    "button is not defined"; book/_extra/js/book.js handles the link)."""
    path = next(p for p in CHAPTERS if "04_attention" in p)
    page, visit = open_page(path)
    solution = page.locator("div.solution.toggle").first
    body = solution.locator("section").first
    link = solution.locator(".admonition-title a").first
    assert link.count(), f"{path}: the first solution's title has no link to its exercise"
    assert not body.is_visible(), f"{path}: the solution is open before the click"
    url_before = page.url
    link.click()
    page.wait_for_timeout(400)  # the toggle's transition
    assert body.is_visible(), f"{path}: clicking the title's link left the solution closed"
    assert page.url == url_before, f"{path}: the click jumped to {page.url} instead of opening the solution"
    solution.scroll_into_view_if_needed()
    solution.screenshot(path=str(SCREENSHOTS / "solution-opened-by-title-link.png"))
    link.click()
    page.wait_for_timeout(400)
    assert not body.is_visible(), f"{path}: a second click on the link did not close the solution again"
    assert not visit.problems(), visit.problems()


@pytest.mark.slow
def test_one_solution_per_exercise(site):
    """Each exercise has one "Solution to Exercise N" block, and no code box is empty."""
    import re

    problems = []
    title = re.compile(r'<p class="admonition-title">Solution to<a class="reference internal" href="#([\w-]+)">')
    empty_code = re.compile(r'<div class="highlight"><pre><span></span>\s*</pre>')
    for path in CHAPTERS:
        html = (site / path).read_text(encoding="utf-8")
        labels = title.findall(html)
        problems += [f"{path}: {labels.count(label)} solutions to {label}"
                     for label in sorted(set(labels)) if labels.count(label) > 1]
        problems += [f"{path}: {n} empty code box(es)" for n in [len(empty_code.findall(html))] if n]
    assert not problems, (
        "exercises with more than one solution block, or empty code boxes (a predict exercise's "
        "explanation belongs inside its {solution-start}...{solution-end} block; a ```{solution} "
        "that holds a ```python block needs a longer fence, ````{solution}):\n  " + "\n  ".join(problems)
    )


@pytest.mark.slow
def test_no_placeholder_url(site):
    """No page links to a placeholder address (such as a JupyterHub at jupyterhub.example.org)."""
    import re

    found = []
    for path in PAGES:
        html = (site / path).read_text(encoding="utf-8")
        for url in re.findall(r'(?:href|src)="([^"]+)"', html):
            host = urllib.parse.urlsplit(urllib.parse.unquote(url)).hostname or ""
            if host.endswith(PLACEHOLDER_HOSTS):
                found.append(f"{path}: {url}")
    assert not found, "links to placeholder addresses:\n  " + "\n  ".join(found[:20])


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS)
def test_chapter_first_load_is_light(open_page, path):
    """A chapter's cold first load (HTML, styles, scripts, fonts and the images near the top,
    as Chromium counts the bytes) stays under 1.5 MB."""
    page, visit = open_page(path, width=1400)
    page.wait_for_timeout(500)  # fonts and images requested after load
    total = visit.bytes_loaded
    heaviest = sorted(visit.loaded, key=lambda item: -item[1])[:8]
    listing = "\n  ".join(f"{size / 1e3:7.1f} KB  {url}" for url, size in heaviest)
    assert total <= PAGE_WEIGHT_LIMIT, (
        f"{path} transferred {total / 1e6:.2f} MB on first load (limit {PAGE_WEIGHT_LIMIT / 1e6:.1f} MB); "
        f"the heaviest requests:\n  {listing}"
    )


@pytest.mark.slow
def test_search_over_file_says_make_serve(browser, site):
    """Opened from a file, the search page lists results and says that `make serve` gives snippets;
    it requests no snippet (which the browser would refuse with a CORS error)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.goto((site / "search.html").as_uri() + "?q=attention")
    page.wait_for_selector("#search-results ul.search li", timeout=PAGE_TIMEOUT_MS)
    note = page.locator(".book-search-note")
    assert note.count() == 1, "over file:// the search page does not say that search needs `make serve`"
    assert "make serve" in note.inner_text()
    _shot(page, "search-over-file.png")
    context.close()
    assert not errors, f"errors on the search page over file://: {errors}"


@pytest.mark.slow
def test_search_snippets_show_no_tex(open_page):
    """Over http the results carry snippets of the page's text, with formulas as text, not TeX."""
    page, visit = open_page("search.html?q=softmax")
    page.wait_for_selector("#search-results ul.search li p.context", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(1000)  # every result fetches its snippet
    snippets = page.locator("#search-results ul.search li p.context").all_inner_texts()
    tex = [s for s in snippets if "\\(" in s or "\\frac" in s or "\\text" in s or "$" in s]
    assert snippets, "searching for 'softmax' over http showed no snippet"
    assert not tex, f"snippets with raw TeX: {tex[:3]}"
    _shot(page, "search-over-http.png")
    assert not visit.problems(), visit.problems()


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_figures_fit_and_keep_their_size(open_page, width):
    """A figure is never wider than the column, keeps its aspect ratio and, where the column
    has room (1400 px), is never shown smaller than it was drawn (its width in CSS pixels,
    which a retina figure records, else its pixel width)."""
    problems = []
    for path in CHAPTERS:
        page, _ = open_page(path, width=width)
        # the figures load lazily, as the reader scrolls to them: load them all now
        page.evaluate("() => document.querySelectorAll('div.cell_output img').forEach(img => { img.loading = 'eager'; })")
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('div.cell_output img')).every(i => i.complete && i.naturalWidth)"
        )
        figures = page.evaluate(
            """() => Array.from(document.querySelectorAll('div.cell_output img')).map(img => {
                   const column = img.closest('div.cell_output').getBoundingClientRect().width;
                   const drawn = parseFloat(img.style.width) || parseFloat(img.getAttribute('width')) || img.naturalWidth;
                   const box = img.getBoundingClientRect();
                   return {src: img.getAttribute('src').slice(-30), shown: box.width, drawn, column,
                           right: box.right, window: document.documentElement.clientWidth,
                           squash: img.naturalWidth ? Math.abs(box.height / box.width
                                   - img.naturalHeight / img.naturalWidth) / (img.naturalHeight / img.naturalWidth) : 0};
               })"""
        )
        for f in figures:
            if f["right"] > f["window"] + 1:
                problems.append(f"{path}: {f['src']} runs past the window ({f['right']:.0f} > {f['window']} px)")
            if f["squash"] > 0.02:
                problems.append(f"{path}: {f['src']} is distorted (aspect ratio off by {f['squash']:.0%})")
            if width >= 1400 and f["drawn"] and f["shown"] + 1 < min(f["drawn"], f["column"]):
                problems.append(f"{path}: {f['src']} shown {f['shown']:.0f} px wide, drawn {f['drawn']:.0f} px")
        page.context.close()
    assert not problems, f"at {width} px:\n  " + "\n  ".join(problems[:20])


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_wide_tables_fit_or_scroll(open_page, width):
    """A table fits its column at 1400 px (the appendix's name table lost its fifth column);
    narrower, a table wider than its column scrolls inside its own box, never past the window."""
    problems = []
    for path in CHAPTERS + [p for p in PAGES if p.startswith("book/")]:
        page, _ = open_page(path, width=width)
        tables = page.evaluate(
            """() => Array.from(document.querySelectorAll('.bd-article table')).map(table => {
                   let box = table.parentElement;
                   while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)
                          && box.tagName !== 'ARTICLE') box = box.parentElement;
                   return {head: table.innerText.slice(0, 40).replace(/\\s+/g, ' '),
                           width: table.getBoundingClientRect().width, box: box.clientWidth,
                           scrolls: ['auto', 'scroll'].includes(getComputedStyle(box).overflowX)};
               })"""
        )
        for t in tables:
            if width >= 1400 and t["width"] > t["box"] + 1:
                problems.append(f"{path}: table {t['head']!r} is {t['width']:.0f} px in a {t['box']} px column")
            elif t["width"] > t["box"] + 1 and not t["scrolls"]:
                problems.append(f"{path}: table {t['head']!r} is cut ({t['width']:.0f} px, {t['box']} px box)")
        if "10_appendix" in path:
            table = page.locator("div.cell_output table").first
            table.scroll_into_view_if_needed()
            _shot(page, f"appendix-table-{width}.png")
        page.context.close()
    assert not problems, f"at {width} px:\n  " + "\n  ".join(problems[:20])


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_formulas_can_be_read_whole(open_page, width):
    """A displayed formula wider than the column starts at the column's left edge and scrolls
    (centred in a flex row, it overflowed to the left, where no scrollbar reaches)."""
    problems = []
    for path in CHAPTERS:
        page, _ = open_page(path, width=width)
        formulas = page.evaluate(
            """() => Array.from(document.querySelectorAll('div.math')).map(box => {
                   const math = box.querySelector('math');
                   return {text: box.textContent.trim().slice(0, 40), box: box.getBoundingClientRect().left,
                           math: math ? math.getBoundingClientRect().left : null};
               })"""
        )
        problems += [f"{path}: {f['text']!r} starts {f['box'] - f['math']:.0f} px left of its box"
                     for f in formulas if f["math"] is not None and f["math"] < f["box"] - 1]
        page.context.close()
    assert not problems, f"at {width} px:\n  " + "\n  ".join(problems[:20])


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_embedding_labels_stay_apart(site, open_page, width):
    """In the chapter's embedding view, as drawn by the browser: no two PCA labels overlap,
    no label covers a point, and a label set away from its point has a leader line to it.
    Clicking a token outlines its row and column of the similarity matrix."""
    pages = _chapters_with(site, "g2v-embedding")
    assert pages, "no chapter shows gpt2lib's embedding view (div.g2v-embedding); chapter 3 should"
    page, visit = open_page(pages[0], width=width)
    view = page.locator("div.g2v-embedding").first
    view.scroll_into_view_if_needed()
    page.wait_for_function("v => v.getAttribute('data-live') === '1'", arg=view.element_handle())
    found = view.evaluate(
        """v => {
          const box = e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
          const svg = v.querySelector('svg[data-role=pca]');
          return {labels: [...svg.querySelectorAll('[data-role=pca-labels] text')].map(t => ({text: t.textContent, ...box(t)})),
                  points: [...svg.querySelectorAll('circle[data-index]')].map(c => box(c)),
                  leaders: svg.querySelectorAll('[data-role=pca-labels] line').length};
        }"""
    )
    labels, points = found["labels"], found["points"]
    assert len(labels) == len(points) >= 5, f"{len(labels)} labels for {len(points)} points"

    def overlap(a, b):
        return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    for k, a in enumerate(labels):
        for b in labels[k + 1:]:
            assert not overlap(a, b), f"at {width} px the labels {a['text']!r} and {b['text']!r} overlap: {a}, {b}"
        for p in points:
            centre = {"x": p["x"] + p["w"] / 2 - 1, "y": p["y"] + p["h"] / 2 - 1, "w": 2, "h": 2}
            assert not overlap(a, centre), f"at {width} px the label {a['text']!r} covers a point"
    view.locator("button.g2v-chipbtn[data-index='1']").click()
    row = view.locator("[data-role=selected-row]").bounding_box()
    column = view.locator("[data-role=selected-column]").bounding_box()
    assert row and column and row["width"] > 3 * row["height"] and column["height"] > 3 * column["width"], (
        "the selected token's row and column are outlined in the matrix")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    view.screenshot(path=str(SCREENSHOTS / f"embedding-view-{width}.png"))
    assert not visit.problems(), visit.problems()


@pytest.mark.slow
def test_views_keep_light_controls_on_a_dark_page(site, open_page):
    """Under a dark page theme (prefers-color-scheme: dark, as JupyterLab's dark theme sets
    color-scheme), a view's sliders, checkboxes and selects keep light styling on its white
    card, and its text keeps at least 4.5:1 contrast against the card."""
    pages = _chapters_with(site, "g2v-sampling")
    assert pages, "no chapter shows the sampling view"
    page, visit = open_page(pages[0])
    page.emulate_media(color_scheme="dark")
    page.add_style_tag(content=":root { color-scheme: dark; }")
    view = page.locator("div.g2v-sampling").first
    view.scroll_into_view_if_needed()
    page.wait_for_function("v => v.getAttribute('data-live') === '1'", arg=view.element_handle())
    found = view.evaluate(
        """v => {
          const cs = e => getComputedStyle(e);
          const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
          return {schemes: [...v.querySelectorAll('input, select, button')].map(e => cs(e).colorScheme),
                  card: rgb(cs(v).backgroundColor),
                  texts: [...v.querySelectorAll('.g2v-title, .g2v-note, .g2v-readout, .g2v-tokname')].map(e => rgb(cs(e).color))};
        }"""
    )
    assert found["schemes"] and set(found["schemes"]) == {"light"}, f"controls' color-scheme: {set(found['schemes'])}"

    def luminance(c):
        lin = [(x / 255 / 12.92) if x / 255 <= 0.04045 else ((x / 255 + 0.055) / 1.055) ** 2.4 for x in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    card = luminance(found["card"])
    assert card > 0.9, f"the card is {found['card']} on a dark page; it should stay white"
    worst = min((card + 0.05) / (luminance(c) + 0.05) for c in found["texts"])
    assert worst >= 4.5, f"the view's text has a contrast of {worst:.1f}:1 on its card under a dark theme"
    assert not visit.problems(), visit.problems()
