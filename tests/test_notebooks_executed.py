"""The committed chapter notebooks are executed, top to bottom, with their outputs saved.

The book shows the outputs stored in the notebooks (it does not run them), and nbval
passes a cell that has no stored output without comparing anything. So a notebook saved
without running it, or with its outputs cleared, would publish an empty chapter and pass
nbval. These checks catch that, statically (nothing is executed):

1. Every code cell was run: it has an execution count. Empty code cells are not allowed.
2. The counts are 1, 2, ..., n in cell order: one fresh kernel ran the notebook from the
   top (Kernel > Restart Kernel and Run All Cells, or scripts/execute_notebooks.py).
3. A code cell with no output must be one that displays nothing when run: its last
   statement is not an expression (an import, an assignment, a def, a loop, ...). A cell
   whose last statement is an expression (Jupyter shows its value) or that calls
   print()/display() at its top level must have outputs. A cell that legitimately shows
   nothing although it ends with an expression (a call returning None) carries the cell
   tag "no-output-expected".
   No cell hides its value with a trailing ";": nbval runs cells without IPython's input
   history, where ";" hides nothing, so the value appears and the comparison fails.
   Assign it instead (`_ = plt.plot(x)`).
4. No cell output is an error traceback unless the cell is tagged "raises-exception"
   (nbval's tag for a cell that is meant to fail).
5. A notebook that displays ipywidgets has the widget state saved in its metadata (the
   static book cannot draw the widgets otherwise).
6. At most 40 code cells per notebook (split a longer chapter).
7. Every notebook in notebooks/ is in _toc.yml, and every notebook _toc.yml lists exists.
"""

import ast
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_CODE_CELLS = 42  # more: split the chapter. An exercise's answer and its check stay in two cells (nbgrader grades the check)
NO_OUTPUT_TAG = "no-output-expected"
RERUN = "re-run it top to bottom in a fresh kernel (.venv/bin/python scripts/execute_notebooks.py {path}) and commit it"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _code_cells(path: Path) -> list[dict]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _python(source: str) -> str:
    """The cell as plain Python: IPython turns %magics and !shell lines into calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def expects_output(source: str) -> bool:
    """Does running this cell display something? (See rule 3 in the module docstring.)

    >>> expects_output("x = 1")
    False
    >>> expects_output("x = 1\\nx")
    True
    >>> expects_output("plt.plot(x);")  # ";" hides nothing under nbval
    True
    >>> expects_output("for i in range(2):\\n    pass\\nprint(i)")
    True
    """
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return True  # it cannot run without an error, which is an output
    if not tree.body:
        return False
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            function = statement.value.func
            if isinstance(function, ast.Name) and function.id in ("print", "display"):
                return True
    return isinstance(tree.body[-1], ast.Expr)


def hides_value_with_semicolon(source: str) -> bool:
    """Does the cell end with an expression followed by ";" (rule 3)? Uses IPython's own test."""
    from IPython.core.displayhook import DisplayHook

    return expects_output(source) and DisplayHook.semicolon_at_end_of_expression(_python(source))


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import torch\nx = torch.ones(2)", False),
        ("x = 1\nx", True),
        ("model.eval()", True),
        ("plt.plot(x);", True),
        ("for i in range(2):\n    pass\nprint(i)", True),
        ("def f():\n    print('inside, not run')", False),
        ("%time y = 2", True),  # the magic prints the time
        ("%matplotlib inline\nx = 1", False),
        ("!ls", True),
    ],
)
def test_output_rule(source, expected):
    assert expects_output(source) == expected, f"expects_output({source!r}) should be {expected}"


@pytest.mark.parametrize(
    "source, expected",
    [("torch.manual_seed(0);", True), ("plt.plot(x);  # no repr", True), ("x = 1;", False), ("f(a=';')", False)],
)
def test_semicolon_rule(source, expected):
    assert hides_value_with_semicolon(source) == expected, f"{source!r}"


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks in notebooks/: the chapters are committed there, executed"


def test_toc_and_notebooks_agree():
    toc = (ROOT / "_toc.yml").read_text()
    listed = {line.split("file:")[1].strip() for line in toc.splitlines() if "file: notebooks/" in line}
    present = {f"notebooks/{path.stem}" for path in NOTEBOOKS}
    assert not listed - present, f"_toc.yml lists notebooks that do not exist: {sorted(listed - present)}"
    assert not present - listed, (
        f"notebooks not in _toc.yml (the book would not show them): {sorted(present - listed)}"
    )
    assert yaml.safe_load(toc)["root"], "_toc.yml has no root page"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_executed_top_to_bottom(path):
    rel = path.relative_to(ROOT)
    problems = []
    counts = []
    for index, cell in enumerate(_code_cells(path), start=1):
        where = f"code cell {index}"
        source = _source(cell)
        if not source.strip():
            problems.append(f"{where} is empty: delete it")
            continue
        count = cell.get("execution_count")
        if count is None:
            problems.append(f"{where} was never run (execution_count is null)")
            continue
        counts.append(count)
        outputs = cell.get("outputs", [])
        if hides_value_with_semicolon(source):
            problems.append(
                f"{where} ends with ';' to hide its value: nbval runs cells without IPython's input "
                "history, where ';' hides nothing, so the value is shown and the comparison fails; "
                "assign it instead (_ = ...)"
            )
        elif not outputs and expects_output(source) and NO_OUTPUT_TAG not in _tags(cell):
            last_line = source.strip().splitlines()[-1][:60]
            problems.append(
                f"{where} (ending {last_line!r}) displays something when run but has no saved output; "
                f"if it really shows nothing, tag it {NO_OUTPUT_TAG!r}"
            )
        errors = [out for out in outputs if out.get("output_type") == "error"]
        if errors and "raises-exception" not in _tags(cell):
            problems.append(
                f"{where} raised {errors[0].get('ename')}: {errors[0].get('evalue', '')[:80]!r} "
                "(tag it 'raises-exception' if the error is the point)"
            )
    if counts and counts != list(range(1, len(counts) + 1)):
        problems.append(
            f"execution counts are {counts[:12]}{'...' if len(counts) > 12 else ''}, not 1, 2, ..., "
            f"{len(counts)}: the cells were run out of order or the kernel was not restarted"
        )
    assert not problems, f"{rel}: " + "; ".join(problems) + ". Fix: " + RERUN.format(path=rel)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_not_too_long(path):
    n = len(_code_cells(path))
    assert n <= MAX_CODE_CELLS, (
        f"{path.relative_to(ROOT)} has {n} code cells (at most {MAX_CODE_CELLS}): split the chapter "
        "or merge cells that belong together"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_widget_state_is_saved(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    shows_widgets = any(
        WIDGET_VIEW in output.get("data", {})
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    )
    state = notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state")
    assert state or not shows_widgets, (
        f"{path.relative_to(ROOT)} displays ipywidgets but saved no widget state in its metadata, so "
        "the book cannot draw them: execute it with scripts/execute_notebooks.py (nbclient saves the "
        "state), or in JupyterLab enable Settings > Save Widget State Automatically and save"
    )

