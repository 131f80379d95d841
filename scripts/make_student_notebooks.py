"""Generate the student versions of the chapter notebooks: solutions out, hints in.

    python scripts/make_student_notebooks.py            # notebooks/ -> student/
    python scripts/make_student_notebooks.py --check    # exit 1 if student/ is stale

The solution notebooks in notebooks/ are the single source (see docs/EXERCISES.md):
- in a code cell, the lines from `### BEGIN SOLUTION` to `### END SOLUTION` (nbgrader's
  markers) become `raise NotImplementedError("<hint>")` at the marker's indentation,
  the hint being the text of the `# HINT:` line(s) inside the region; at the top
  level of a cell (a prediction or an answer) each `name = value` in the region
  becomes `name = None  # TODO: <hint>` instead, so "Run all" keeps going;
- cells tagged "solution", and markdown cells holding a {solution}, {solution-start}
  or {solution-end} directive, are removed;
- every output and execution count is cleared, the per-cell "execution" timing
  metadata dropped, and of the notebook's metadata only the kernelspec kept.
Only notebooks with at least one exercise are written. The output is deterministic
(nbformat 4.5, one-space JSON indent, sorted keys, newline at the end), so CI can
regenerate and compare byte for byte.
"""

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
HINT = re.compile(r"^\s*#\s*HINT:\s?(.*)$")
ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*=[^=]")
SOLUTION_DIRECTIVE = re.compile(r"^\s*(```+|:::+)\s*\{solution(-start|-end)?\}", re.MULTILINE)
EXERCISE_DIRECTIVE = re.compile(r"^\s*(```+|:::+)\s*\{exercise(-start)?\}", re.MULTILINE)
NBFORMAT, NBFORMAT_MINOR = 4, 5
KEPT_METADATA = ("kernelspec",)


class MarkerError(ValueError):
    """A solution region that cannot be turned into a stub; the message names the cell."""


def source_of(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def stub_region(region: list[str], indent: str, where: str) -> list[str]:
    """The lines that replace one marked region (markers included)."""
    hints = [m.group(1).strip() for line in region if (m := HINT.match(line))]
    hint = " ".join(h for h in hints if h)
    if not hint:
        raise MarkerError(f"{where}: the solution region has no '# HINT: ...' line; add one inside "
                          f"the markers, it becomes the student's stub message")
    if indent:  # inside a function body
        return [f"{indent}raise NotImplementedError({json.dumps(hint, ensure_ascii=False)})\n"]
    names = []
    for line in region[1:-1]:
        if line[:1] not in (" ", "\t") and (m := ASSIGNMENT.match(line)):
            names += [n.strip() for n in m.group(1).split(",") if n.strip() not in names]
    if not names:
        raise MarkerError(f"{where}: a solution region at the top level of a cell must assign the "
                          f"answer (e.g. `prediction = 3`); put function solutions inside the body")
    return [f"{name} = None  # TODO: {hint}\n" for name in names]


def strip_solutions(source: str, where: str) -> str:
    """Replace every marked region of a code cell's source by its stub."""
    lines = source.splitlines(keepends=True)
    out, region, indent = [], None, ""
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if region is not None:
                raise MarkerError(f"{where}, line {number}: {BEGIN} inside another solution region")
            region, indent = [line], line[: len(line) - len(line.lstrip())]
        elif stripped == END:
            if region is None:
                raise MarkerError(f"{where}, line {number}: {END} without a {BEGIN} before it")
            region.append(line)
            out += stub_region(region, indent, where)
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise MarkerError(f"{where}: {BEGIN} is never closed by {END}")
    text = "".join(out)
    return text[:-1] if text.endswith("\n") and not source.endswith("\n") else text


def is_solution_cell(cell) -> bool:
    tags = cell.get("metadata", {}).get("tags", [])
    return "solution" in tags or (cell["cell_type"] == "markdown" and bool(SOLUTION_DIRECTIVE.search(source_of(cell))))


def has_exercises(nb: dict) -> bool:
    return any(BEGIN in source_of(c) or EXERCISE_DIRECTIVE.search(source_of(c)) for c in nb["cells"])


def student_version(nb: dict, name: str) -> dict:
    """The student notebook (a new dict) made from a solution notebook's JSON."""
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if is_solution_cell(cell):
            continue
        where = f"{name}, cell {index}"
        metadata = {k: v for k, v in cell.get("metadata", {}).items() if k != "execution"}
        new = {"cell_type": cell["cell_type"], "id": cell.get("id") or f"cell-{index}",
               "metadata": metadata, "source": source_of(cell)}
        if cell["cell_type"] == "code":
            new["source"] = strip_solutions(new["source"], where)
            new["execution_count"] = None
            new["outputs"] = []
        elif "attachments" in cell:
            new["attachments"] = cell["attachments"]
        cells.append(new)
    # only the kernel: language_info and the like change whenever a chapter is re-executed
    metadata = {k: v for k, v in nb.get("metadata", {}).items() if k in KEPT_METADATA}
    return {"cells": cells, "metadata": metadata,
            "nbformat": NBFORMAT, "nbformat_minor": NBFORMAT_MINOR}


def dumps(nb: dict) -> str:
    """Stable JSON: the formatting nbformat itself writes (indent 1, sorted keys)."""
    for cell in nb["cells"]:  # nbformat stores sources as lists of lines
        cell["source"] = cell["source"].splitlines(keepends=True)
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def generate(notebooks: Path) -> dict[str, str]:
    """file name -> student notebook text, for every notebook in `notebooks` with exercises."""
    out = {}
    for path in sorted(notebooks.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        if nb.get("nbformat") != NBFORMAT:
            raise MarkerError(f"{path.name}: nbformat {nb.get('nbformat')} is not supported; save it as v4")
        if has_exercises(nb):
            out[path.name] = dumps(student_version(nb, path.name))
    return out


def stale(generated: dict[str, str], student: Path) -> list[str]:
    """What differs between a fresh generation and the files in `student`, one line each."""
    problems = []
    existing = {p.name for p in student.glob("*.ipynb")} if student.is_dir() else set()
    for name in sorted(existing - set(generated)):
        problems.append(f"student/{name} has no solution notebook with exercises in notebooks/ (delete it)")
    for name, text in generated.items():
        path = student / name
        if not path.exists():
            problems.append(f"student/{name} is missing")
        elif path.read_text(encoding="utf-8") != text:
            diff = difflib.unified_diff(path.read_text(encoding="utf-8").splitlines(), text.splitlines(),
                                        "committed", "regenerated", lineterm="", n=0)
            first = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")][:4]
            problems.append(f"student/{name} is out of date, e.g.\n      " + "\n      ".join(first))
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="the solution notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="where the student versions go")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = parser.parse_args(argv)
    try:
        generated = generate(args.notebooks)
    except MarkerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        problems = stale(generated, args.out)
        if problems:
            print(f"{args.out} does not match the solution notebooks in {args.notebooks}:", file=sys.stderr)
            for p in problems:
                print(f"  - {p}", file=sys.stderr)
            print("fix: python scripts/make_student_notebooks.py, then commit student/", file=sys.stderr)
            return 1
        print(f"{args.out}: {len(generated)} student notebooks up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in sorted({p.name for p in args.out.glob("*.ipynb")} - set(generated)):
        (args.out / name).unlink()  # a chapter whose exercises were removed
    for name, text in generated.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(generated)} student notebooks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
