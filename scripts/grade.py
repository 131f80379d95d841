"""Run every submitted notebook and collect its exercise checks into one CSV.

    python scripts/grade.py submissions/ --out results.csv [--timeout 120] [--executed DIR]

Where the student's name comes from:
- submissions/<student>/<notebook>.ipynb     -> the folder name (e.g. exported per student);
- submissions/<student>__<notebook>.ipynb    -> the part before the double underscore;
- submissions/<notebook>.ipynb               -> the file name (one notebook per student).
Each notebook is executed from a copy in a temporary folder (nbclient, its
python3 kernel, HF_HUB_OFFLINE=1, errors allowed so one broken cell does not hide the
rest). Every displayed check result (output metadata key "gpt2lib.lab_result", see
gpt2lib/labs/core.py) becomes a row; a check call whose cell raised before a result was shown becomes an
"error" row with the exception, and one that ran without showing its result (it was
not the last line of its cell) a "missing" row. Columns: student, notebook, exercise,
status (pass, fail, todo, error, missing), message. The submissions are never modified.
"""

import argparse
import csv
import os
import re
import sys
import tempfile
from pathlib import Path

from gpt2lib.labs.core import LAB_KEY

CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")
COLUMNS = ["student", "notebook", "exercise", "status", "message"]


def submissions(folder: Path) -> list[tuple[str, str, Path]]:
    """(student, notebook, path) for every notebook under `folder`, in a stable order."""
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        relative = path.relative_to(folder)
        if len(relative.parts) > 1:
            student, notebook = relative.parts[0], path.stem
        elif "__" in path.stem:
            student, notebook = path.stem.split("__", 1)
        else:
            student, notebook = path.stem, path.stem
        found.append((student, notebook, path))
    return found


def execute(path: Path, timeout: int, executed_copy: Path | None):
    """Execute a copy of the notebook in a scratch folder; return the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": scratch}})
        try:
            client.execute()
        except Exception as e:  # a dead kernel or a cell over the timeout: keep what ran
            nb.metadata["grade_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:200]}"
    if executed_copy is not None:
        executed_copy.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed_copy)
    return nb


def results_of(nb, registry: dict) -> list[dict]:
    """The check results in an executed notebook, in cell order."""
    rows = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        shown = [o["metadata"][LAB_KEY] for o in cell.get("outputs", [])
                 if o.get("output_type") in ("display_data", "execute_result") and LAB_KEY in o.get("metadata", {})]
        rows += [{"exercise": r["exercise"], "status": r["status"], "message": r["message"]} for r in shown]
        called = [registry[name].exercise for name in CHECK_CALL.findall(cell.source) if name in registry]
        missing = [ex for ex in called if ex not in {r["exercise"] for r in shown}]
        error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
        for ex in missing:
            if error is not None:
                rows.append({"exercise": ex, "status": "error",
                             "message": f"the cell raised {error['ename']}: {error['evalue']}".strip()})
            elif cell.get("execution_count") is None:
                rows.append({"exercise": ex, "status": "error", "message": "the cell did not run "
                             f"({nb.metadata.get('grade_error', 'execution stopped before it')})"})
            else:
                rows.append({"exercise": ex, "status": "missing", "message": "the check ran but its "
                             "result was not shown: make the check call the last line of its cell"})
    return rows


def grade(folder: Path, timeout: int = 120, executed: Path | None = None) -> list[dict]:
    os.environ["HF_HUB_OFFLINE"] = "1"  # inherited by the kernels: nothing downloads
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from gpt2lib.labs import REGISTRY

    rows = []
    for student, notebook, path in submissions(folder):
        copy = executed / student / f"{notebook}.ipynb" if executed else None
        nb = execute(path, timeout, copy)
        found = results_of(nb, REGISTRY)
        if not found:
            found = [{"exercise": "", "status": "error",
                      "message": nb.metadata.get("grade_error", "no exercise check found in this notebook")}]
        rows += [{"student": student, "notebook": notebook, **r} for r in found]
        passed = sum(r["status"] == "pass" for r in found)
        print(f"{student:>20}  {notebook:<28} {passed}/{len(found)} passed", file=sys.stderr)
    return rows


def write_csv(rows: list[dict], out: Path):
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the submitted notebooks (see the module docstring)")
    parser.add_argument("--out", type=Path, default=Path("results.csv"), help="the CSV to write")
    parser.add_argument("--timeout", type=int, default=120, help="seconds allowed per cell")
    parser.add_argument("--executed", type=Path, help="also save the executed notebooks here")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder of submitted notebooks", file=sys.stderr)
        return 2
    if not submissions(args.folder):
        print(f"error: no .ipynb files under {args.folder}", file=sys.stderr)
        return 2
    rows = grade(args.folder, args.timeout, args.executed)
    write_csv(rows, args.out)
    print(f"wrote {len(rows)} results to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
