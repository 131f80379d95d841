"""Collapse the solutions of the chapter notebooks in JupyterLab: solution cells open hidden.

    python scripts/notebook_metadata.py            # notebooks/*.ipynb, in place
    python scripts/notebook_metadata.py --check    # exit 1 if a solution cell would open in plain view
    python scripts/notebook_metadata.py some.ipynb other.ipynb

In the book a solution sits in a collapsed block from `{solution-start}` to `{solution-end}`
(sphinx-exercise). JupyterLab, even with jupyterlab-myst, renders each Markdown cell on its
own: the start marker becomes an empty "Solution to Exercise N" dropdown and the cells after
it stay in plain view. So every cell between the two markers (the solution code and its
explanation) gets `metadata.jupyter.source_hidden: true`, the nbformat field JupyterLab
reads to open a cell collapsed ("..."; a click shows it). The book ignores the field, and
the student versions drop it (scripts/make_student_notebooks.py), where the cell is a stub.
A second run changes nothing. The notebook is written back as nbformat writes it
(one-space indent, sorted keys), and only if it changed.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = re.compile(r"^\s*(```+|:::+)\s*\{solution-start\}", re.MULTILINE)
END = re.compile(r"^\s*(```+|:::+)\s*\{solution-end\}", re.MULTILINE)


class MetadataError(ValueError):
    """Solution markers that do not pair up; the message names the notebook and the cell."""


def source_of(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def solution_cells(nb: dict, name: str) -> list[int]:
    """Indices of the cells between each {solution-start} cell and its {solution-end} cell."""
    inside, found = None, []
    for index, cell in enumerate(nb["cells"]):
        text = source_of(cell) if cell["cell_type"] == "markdown" else ""
        if START.search(text):
            if inside is not None:
                raise MetadataError(f"{name}, cell {index}: a {{solution-start}} before the {{solution-end}} "
                                    f"of the one in cell {inside}; close that solution first")
            inside = index
        elif END.search(text):
            if inside is None:
                raise MetadataError(f"{name}, cell {index}: a {{solution-end}} without a {{solution-start}} before it")
            inside = None
        elif inside is not None:
            found.append(index)
    if inside is not None:
        raise MetadataError(f"{name}, cell {inside}: a {{solution-start}} never closed by a {{solution-end}}")
    return found


def collapse_solutions(nb: dict, name: str) -> list[int]:
    """Set metadata.jupyter.source_hidden on every solution cell of `nb` (in place); the cells changed."""
    changed = []
    for index in solution_cells(nb, name):
        jupyter = nb["cells"][index].setdefault("metadata", {}).setdefault("jupyter", {})
        if jupyter.get("source_hidden") is not True:
            jupyter["source_hidden"] = True
            changed.append(index)
    return changed


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="report, change nothing; exit 1 if a cell would change")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    stale = []
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        try:
            changed = collapse_solutions(nb, path.name)
        except MetadataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if changed and args.check:
            stale.append(f"{path.name}: cells {', '.join(map(str, changed))} are solution cells that JupyterLab "
                         f"would show open")
        elif changed:
            path.write_text(dumps(nb), encoding="utf-8")
            print(f"{path.name}: {len(changed)} solution cells now open collapsed")
    if stale:
        print("\n".join(stale) + "\nfix: python scripts/notebook_metadata.py, then commit notebooks/", file=sys.stderr)
        return 1
    if args.check:
        print(f"{len(paths)} notebooks: every solution cell opens collapsed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
