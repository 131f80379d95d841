"""The notebooks as JupyterLab shows them, and the student versions as plain Jupyter and Colab do.

- the student notebooks carry no MyST markup: each exercise is a heading "Exercise 4.1 · title"
  with the book's number, each citation reads "(Vaswani et al., 2017)" as the book cites it
  (sphinxcontrib-bibtex's author-year labels, computed from the same .bib file);
- every solution cell of notebooks/ opens collapsed in JupyterLab (scripts/notebook_metadata.py);
- in a real JupyterLab server, driven in Debian's chromium: the chapter's exercises render as
  exercise cards (jupyterlab-myst) with their solution code collapsed; the student version,
  with jupyterlab-myst disabled (what plain Jupyter shows), has its exercises as headings and no
  raw ":label:"; the chapter without jupyterlab-myst does show the raw markup (the control);
  and a live view recomputes after the reader types in its box.

Screenshots: _build/screenshots/jupyterlab/*.png. Needs chromium (see tests/conftest.py).
"""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "_build" / "screenshots" / "jupyterlab"
CHAPTER = "04_attention.ipynb"  # five exercises of every kind, a model, a live view
EXERCISE = re.compile(r"^\s*(`{3,}|:{3,})\s*\{exercise\}\s*(?P<title>.*?)\s*$", re.MULTILINE)
MYST_MARKUP = re.compile(r"\{(exercise|solution|solution-start|solution-end|cite|tip|note|dropdown)\}|^:label:"
                         r"|^:class:|^\([\w-]+\)=$", re.MULTILINE)


make_student = load_script("make_student_notebooks")
notebook_metadata = load_script("notebook_metadata")


def markdown_of(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def exercise_titles(path: Path) -> list[str]:
    """The titles of a solution notebook's {exercise} blocks, in order."""
    return [m.group("title") for text in markdown_of(json.loads(path.read_text(encoding="utf-8")))
            for m in EXERCISE.finditer(text)]


def chapters_with_exercises() -> list[Path]:
    return [p for p in sorted((ROOT / "notebooks").glob("*.ipynb")) if exercise_titles(p)]


# ---------------------------------------------------------------------------
# The student versions in plain Markdown
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", chapters_with_exercises(), ids=lambda p: p.stem)
def test_student_version_is_plain_markdown(path):
    solution = json.loads(path.read_text(encoding="utf-8"))
    student = json.loads(make_student.generate(path.parent)[path.name])
    markup = [m.group(0) for text in markdown_of(solution) for m in MYST_MARKUP.finditer(text)]
    assert markup, f"{path.name}: the control failed, no MyST markup found in the solution notebook"
    left = [m.group(0) for text in markdown_of(student) for m in MYST_MARKUP.finditer(text)]
    assert not left, f"student/{path.name} still has MyST markup that plain Jupyter shows raw: {left[:5]}"
    chapter = int(path.name[:2])
    expected = [f"### Exercise {chapter}.{n} · {title}" for n, title in enumerate(exercise_titles(path), start=1)]
    headings = [line for text in markdown_of(student) for line in text.splitlines() if line.startswith("### Exercise")]
    assert headings == expected, f"student/{path.name}: exercise headings {headings}, expected {expected}"
    print(f"[PASS] student/{path.name}: {len(headings)} exercises as plain headings, no MyST markup left")


def book_citation(key: str, entry, style, formatter, textual: bool) -> str:
    """The text sphinxcontrib-bibtex renders in the book for {cite:p} or {cite:t}, e.g. "[Vaswani et al., 2017]"."""
    import pybtex_docutils
    from sphinxcontrib.bibtex.style.referencing import format_references
    from sphinxcontrib.bibtex.style.template import SphinxReferenceInfo

    builder = SimpleNamespace(name="html", get_relative_uri=lambda a, b: "references.html")
    info = SphinxReferenceInfo(builder, "chapter", "references", key, None, "", "")
    text = format_references(style, "t" if textual else "p", [(entry, formatter.format_entry(key, entry), info)])
    return "".join(node.astext() for node in text.render(pybtex_docutils.Backend()))


def test_citations_read_as_the_book_cites_them():
    """Every reference of the bibliography, parenthetical and textual, against sphinxcontrib-bibtex's
    author_year style on the same file (the book's bibtex_reference_style); brackets become parentheses."""
    from pybtex.database import parse_file
    from pybtex.plugin import find_plugin
    from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

    bib = ROOT / "book" / "references.bib"
    database, style = parse_file(str(bib)), AuthorYearReferenceStyle()
    formatter = find_plugin("pybtex.style.formatting", "plain")()
    ctx = make_student.Context({"cells": []}, "x.ipynb", bib)
    unlink = lambda text: re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)  # noqa: E731
    for key, entry in database.entries.items():
        for textual in (False, True):
            book = book_citation(key, entry, style, formatter, textual).replace("[", "(").replace("]", ")")
            ours = unlink(ctx.cite(key, textual=textual, where="x.ipynb"))
            assert ours == book, f"{key}: the student version says {ours!r}, the book {book!r}"
    assert unlink(ctx.cite("sennrich2016neural,radford2019language", False, "x")) == \
        "(Sennrich et al., 2016; Radford et al., 2019)"
    assert ctx.cite("vaswani2017attention", False, "x") == "([Vaswani et al., 2017](https://arxiv.org/abs/1706.03762))"
    print(f"[PASS] {len(database.entries)} references cited as sphinxcontrib-bibtex cites them, with their links")


def test_plain_markdown_forms():
    nb = {"cells": [{"cell_type": "markdown", "source": "```{exercise} Count\n:label: ex-2-1\n```"},
                    {"cell_type": "markdown", "source": "```{exercise} Encode\n:label: ex-2-2\n```"}]}
    ctx = make_student.Context(nb, "02_tokenization.ipynb", ROOT / "book" / "references.bib")
    source = ("(sec-bpe)=\n"
              "## BPE\n\n"
              "````{exercise} Encode with the merges\n:label: ex-2-2\n\n**★★☆ · 10 min · implement**\n\n"
              "Call it as\n```python\nencode(\"hi\")  # {cite}`not_a_citation`\n```\nas {cite:t}`radford2019language` do.\n"
              "````\n\n"
              ":::{tip}\nRun it twice.\n:::\n\n"
              "```{dropdown} Why?\nBecause.\n```\n"
              "See {ref}`the exercise <ex-2-2>` and {ref}`ex-2-1`.\n")
    expected = ("## BPE\n\n"
                "### Exercise 2.2 · Encode with the merges\n\n**★★☆ · 10 min · implement**\n\n"
                "Call it as\n```python\nencode(\"hi\")  # {cite}`not_a_citation`\n```\n"
                "as [Radford et al. (2019)](https://cdn.openai.com/better-language-models/language_models_are_"
                "unsupervised_multitask_learners.pdf) do.\n\n"
                "> **Tip**\n>\n> Run it twice.\n\n"
                "<details><summary>Why?</summary>\n\nBecause.\n\n</details>\n"
                "See the exercise and Exercise 2.1.\n")
    assert make_student.plain_markdown(source, ctx, "x") == expected
    for bad, problem in [("```{figure} a.png\n```", "the {figure} directive has no plain-Markdown form"),
                         ("{cite}`nobody2030`", "{cite}`nobody2030` is not in references.bib"),
                         ("```{exercise} Open\n:label: ex-2-1\ntext", "the {exercise} block is never closed"),
                         ("{ref}`ex-9-9`", "{ref}`ex-9-9` has no plain form")]:
        with pytest.raises(make_student.MarkerError, match=re.escape(problem)):
            make_student.plain_markdown(bad, ctx, "02_tokenization.ipynb, cell 7")
    print("[PASS] exercise, citation, tip, dropdown, ref and target in plain Markdown; code blocks kept as written")


# ---------------------------------------------------------------------------
# Solution cells collapsed in JupyterLab
# ---------------------------------------------------------------------------

def test_solution_cells_open_collapsed():
    """Every cell between {solution-start} and {solution-end} of notebooks/ has source_hidden."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "notebook_metadata.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout
    print("[PASS] notebooks/: every solution cell opens collapsed in JupyterLab")


def test_collapsing_solutions_is_idempotent_and_the_student_stub_stays_open():
    nb = json.loads((ROOT / "tests" / "fixtures" / "lab_fixture.ipynb").read_text(encoding="utf-8"))
    before = notebook_metadata.dumps(nb)
    changed = notebook_metadata.collapse_solutions(nb, "lab_fixture.ipynb")
    cells = nb["cells"]
    assert changed and all(cells[i]["metadata"]["jupyter"]["source_hidden"] for i in changed)
    assert all("BEGIN SOLUTION" in "".join(cells[i]["source"]) for i in changed if cells[i]["cell_type"] == "code")
    assert not any(c["metadata"].get("jupyter") for i, c in enumerate(cells) if i not in changed), \
        "only solution cells are collapsed"
    once = notebook_metadata.dumps(nb)
    assert once != before and notebook_metadata.collapse_solutions(nb, "x") == [] and notebook_metadata.dumps(nb) == once
    student = make_student.student_version(nb, "lab_fixture.ipynb")
    assert not any("jupyter" in c["metadata"] for c in student["cells"]), "a student's stub must open in plain view"
    broken = {"cells": [{"cell_type": "markdown", "source": "```{solution-start} ex-1-1\n```"}]}
    with pytest.raises(notebook_metadata.MetadataError, match="never closed by a {solution-end}"):
        notebook_metadata.collapse_solutions(broken, "x.ipynb")
    print(f"[PASS] {len(changed)} solution cells of the fixture collapsed, a second run changes nothing")


# ---------------------------------------------------------------------------
# A real JupyterLab, driven in chromium
# ---------------------------------------------------------------------------

SETTINGS = {
    # every cell in the page, so that the checks see the whole notebook
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # the test runs cells in copies; nothing is written back
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(home: Path, root: Path, myst: bool):
    """A JupyterLab server on a free port serving `root`, with its own settings, config and runtime
    folders under `home`; jupyterlab-myst disabled when `myst` is False. Stopped (kernels too) at the end."""
    dirs = {name: home / name for name in ("settings", "config", "data", "runtime", "workspaces", "ipython")}
    for relative, value in SETTINGS.items():
        (dirs["settings"] / relative).parent.mkdir(parents=True, exist_ok=True)
        (dirs["settings"] / relative).write_text(json.dumps(value))
    (dirs["config"] / "labconfig").mkdir(parents=True)
    (dirs["config"] / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {} if myst else {"jupyterlab-myst": True}}))
    port = free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
               JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]), HF_HUB_OFFLINE="1")
    log = open(home / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--IdentityProvider.token=",
         "--ServerApp.password=", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={dirs['settings']}", f"--LabApp.workspaces_dir={dirs['workspaces']}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{(home / 'server.log').read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/api/status", timeout=2).status == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {url} in 90 s:\n{(home / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def open_notebook(browser, url: str, name: str, rendered: str = ".jp-RenderedMarkdown"):
    """A page with `name` open in JupyterLab, its Markdown rendered (each Markdown cell holding a
    `rendered` element: .jp-RenderedMarkdown plain, .myst with jupyterlab-myst; a collapsed cell holds
    a placeholder instead) and its kernel idle."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{url}/lab/tree/{name}?reset", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-MarkdownCell", timeout=120_000)
    page.wait_for_function(f"""() => {{
        const cells = [...document.querySelectorAll('.jp-NotebookPanel .jp-MarkdownCell')];
        return cells.length > 0 && cells.every(c => c.querySelector('{rendered}, .jp-InputPlaceholder')); }}""", timeout=120_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    return page, errors


def rendered_markdown(page) -> list[str]:
    return page.eval_on_selector_all(".jp-NotebookPanel .jp-MarkdownCell .jp-RenderedMarkdown, "
                                     ".jp-NotebookPanel .jp-MarkdownCell .myst",
                                     "els => els.map(e => e.innerText)")


def run_cell(page, index: int, timeout_s: float = 120):
    """Select cell `index` of the open notebook, run it with Shift+Enter, wait for its result."""
    cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputArea-prompt")
    deadline = time.monotonic() + timeout_s
    while not re.fullmatch(r"\[\d+\]:", prompt.inner_text().strip()):
        assert time.monotonic() < deadline, f"cell {index} did not finish in {timeout_s} s"
        page.wait_for_timeout(250)
    return cell


def shot(page, name: str, locator=None):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if locator is not None:
        locator.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / name))


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory) -> Path:
    """A copy of the chapter (solutions collapsed as in notebooks/) and its student version."""
    root = tmp_path_factory.mktemp("lab-root")
    nb = json.loads((ROOT / "notebooks" / CHAPTER).read_text(encoding="utf-8"))
    notebook_metadata.collapse_solutions(nb, CHAPTER)  # a no-op once notebooks/ carry it
    for cell in nb["cells"]:  # outputs kept; "[ ]:" prompts, so a finished run shows as "[n]:"
        if cell["cell_type"] == "code":
            cell["execution_count"] = None
    (root / "chapter.ipynb").write_text(notebook_metadata.dumps(nb), encoding="utf-8")
    # its student version as scripts/make_student_notebooks.py writes it to student/ (which
    # tests/test_labs.py keeps equal to a fresh generation)
    (root / "student.ipynb").write_text(make_student.generate(ROOT / "notebooks")[CHAPTER], encoding="utf-8")
    return root


@pytest.mark.slow
def test_chapter_in_jupyterlab_with_myst(browser, lab_root, tmp_path):
    """Exercises as cards, solutions collapsed, no raw markup; a live view follows the typing."""
    titles = exercise_titles(ROOT / "notebooks" / CHAPTER)
    with jupyterlab(tmp_path, lab_root, myst=True) as url:
        page, errors = open_notebook(browser, url, "chapter.ipynb", rendered=".myst")
        cards = page.locator(".jp-NotebookPanel aside.myst-exercise[id^='ex-']")
        assert cards.count() == len(titles), f"{cards.count()} exercise cards for {len(titles)} exercises"
        for n, title in enumerate(titles, start=1):
            header = cards.nth(n - 1).locator(".myst-exercise-title").inner_text().strip()
            assert header == f"Exercise {n} ({title})", f"card {n} is titled {header!r}"
            assert cards.nth(n - 1).get_attribute("id") == f"ex-{int(CHAPTER[:2])}-{n}", "the card lost its label"
        text = "\n".join(rendered_markdown(page))
        for raw in (":label:", ":class: dropdown", "{cite}", "{exercise}", "**★"):
            assert raw not in text, f"{raw!r} shows raw in the rendered chapter"
        assert "★☆☆ · 10 min · implement" in cards.first.inner_text()
        assert cards.first.locator(".katex").count() >= 1, "the exercise's maths ($-\\infty$) is not typeset"
        nb = json.loads((lab_root / "chapter.ipynb").read_text(encoding="utf-8"))
        solutions = notebook_metadata.solution_cells(nb, CHAPTER)
        collapsed = page.eval_on_selector_all(".jp-NotebookPanel .jp-Notebook .jp-Cell",
                                              "cs => cs.map(c => !!c.querySelector('.jp-InputPlaceholder'))")
        assert len(collapsed) == len(nb["cells"]), "not every cell is in the page (windowingMode)"
        assert [i for i, c in enumerate(collapsed) if c] == solutions, "the collapsed cells are not the solutions"
        solution_lines = [line.strip() for i in solutions if nb["cells"][i]["cell_type"] == "code"
                          for line in "".join(nb["cells"][i]["source"]).splitlines()[1:]
                          if line.strip() and not line.strip().startswith("#")]
        visible = "\n".join(page.eval_on_selector_all(".jp-NotebookPanel .jp-CodeCell .cm-content",
                                                      "els => els.filter(e => e.offsetParent).map(e => e.innerText)"))
        assert solution_lines and not [line for line in solution_lines if line in {v.strip() for v in visible.splitlines()}], \
            "a solution line is in plain view"
        shot(page, "chapter-exercise.png", cards.first)

        run_cell(page, 1)  # the imports
        run_cell(page, 2, timeout_s=180)  # the bundled model and the tokenizer
        page.keyboard.press("Escape")
        page.keyboard.press("b")  # a new cell below, as a reader adds one
        page.keyboard.press("Enter")
        page.keyboard.insert_text('live = viz.live_attention(model, tok, "The cat sat")\nlive')
        page.keyboard.press("Shift+Enter")
        view = page.locator(".jp-NotebookPanel .g2v-attention[data-live='1']")
        view.wait_for(timeout=120_000)
        tokens = lambda: view.locator(".g2v-tok").count()  # noqa: E731
        assert tokens() == 3, f"the live view shows {tokens()} tokens for 'The cat sat'"
        widget = page.locator(".jp-NotebookPanel .widget-textarea textarea")
        hint = page.locator(".jp-NotebookPanel .jp-OutputArea").get_by_text("updates as you type")
        assert hint.count() == 1, "the live view does not say when it updates"
        widget.click()
        widget.press("End")
        page.keyboard.type(" on the mat", delay=40)  # no Enter, no click elsewhere
        deadline = time.monotonic() + 60
        while tokens() != 6:
            assert time.monotonic() < deadline, f"after typing, the live view still shows {tokens()} tokens"
            page.wait_for_timeout(250)
        assert widget.evaluate("el => document.activeElement === el"), "the box lost the focus while updating"
        shot(page, "chapter-live-view.png", view)
        assert not errors, f"script errors in JupyterLab: {errors[:3]}"
        page.close()
    print(f"[PASS] JupyterLab + jupyterlab-myst: {len(titles)} exercise cards, solutions collapsed, "
          f"the live view went from 3 to 6 tokens as the reader typed")


@pytest.mark.slow
def test_student_version_in_plain_jupyterlab(browser, lab_root, tmp_path):
    """Without jupyterlab-myst (plain Jupyter): the student version reads cleanly, the chapter does not."""
    titles = exercise_titles(ROOT / "notebooks" / CHAPTER)
    chapter = int(CHAPTER[:2])
    with jupyterlab(tmp_path, lab_root, myst=False) as url:
        page, errors = open_notebook(browser, url, "student.ipynb")
        assert page.locator(".jp-NotebookPanel .myst").count() == 0, "jupyterlab-myst is still rendering"
        headings = page.eval_on_selector_all(".jp-NotebookPanel .jp-RenderedMarkdown h3",
                                             "hs => hs.map(h => h.innerText.replace(/¶$/, '').trim())")
        expected = [f"Exercise {chapter}.{n} · {t}" for n, t in enumerate(titles, start=1)]
        assert [h for h in headings if h.startswith("Exercise")] == expected
        text = "\n".join(rendered_markdown(page))
        for raw in (":label:", "{exercise}", "{cite}", "```", ":class:"):
            assert raw not in text, f"{raw!r} shows raw in the student version"
        assert "(Vaswani et al., 2017)" in text
        first = page.locator(".jp-NotebookPanel .jp-RenderedMarkdown h3").filter(has_text=f"Exercise {chapter}.1")
        shot(page, "student-plain-exercise.png", first)
        run_cell(page, 1)  # the imports run as they are
        assert not errors, f"script errors in JupyterLab: {errors[:3]}"
        page.close()

        page, _ = open_notebook(browser, url, "chapter.ipynb")  # the control: the same checks see raw markup
        text = "\n".join(rendered_markdown(page))
        assert ":label: ex-4-1" in text and "{cite}" in text, "the control failed: no raw markup without jupyterlab-myst"
        shot(page, "chapter-plain-exercise.png", page.locator(".jp-NotebookPanel .jp-RenderedMarkdown").filter(
            has_text=":label: ex-4-1").first)
        page.close()
    print(f"[PASS] plain JupyterLab: student/{CHAPTER} shows {len(expected)} exercise headings and no raw markup "
          f"(the chapter itself shows ':label:' there)")
