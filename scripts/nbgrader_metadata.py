"""Give the solution notebooks nbgrader's cell metadata, so nbgrader can use them as its source.

    python scripts/nbgrader_metadata.py            # notebooks/*.ipynb, in place
    python scripts/nbgrader_metadata.py --check    # exit 1 if a notebook lacks it or has it stale
    python scripts/nbgrader_metadata.py some.ipynb other.ipynb

nbgrader (0.9.6, schema 3) needs to know which cells the student answers and which cells
grade them; the `### BEGIN SOLUTION` markers alone make `nbgrader generate_assignment`
stop with "Solution region detected in a non-solution cell". For every exercise
(a `{exercise}` directive with `:label: ex-N-M` and a badge `**★★☆ · 20 min · kind**`):
- the code cell(s) holding the markers become autograded answers, grade_id `ex-N-M-answer`
  (`-answer-2`, ... after the first): solution, not graded, not locked;
- the first code cell after them that calls a check (`check_...(`) becomes a locked
  autograder test, grade_id `ex-N-M-check`, worth one point per star of the badge.
Every other cell loses any nbgrader metadata it had. The grade_ids come from the labels, so
they are unique and stay the same across runs; a second run changes nothing. The notebook
is written back as nbformat writes it (one-space indent, sorted keys), only if it changed.

A check never raises (a failed exercise does not stop "Run all"), but nbgrader gives a test
cell its points unless the cell shows an error. For nbgrader_config.py, `configure(c)` adds
two preprocessors to nbgrader's own: the cells tagged "solution" (the collapsed solutions
and their explanations) are left out of the release, and after execution a check result
that is not [PASS] is shown as an error in its cell, so the cell scores 0:

    import sys; sys.path.insert(0, "/path/to/gpt2-course/scripts")
    from nbgrader_metadata import configure
    configure(c)
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "### BEGIN SOLUTION"
EXERCISE = re.compile(r"^\s*(```+|:::+)\s*\{exercise(-start)?\}", re.MULTILINE)
LABEL = re.compile(r"^:label:\s*(ex-\d+-\d+)\s*$", re.MULTILINE)
BADGE = re.compile(r"\*\*([★☆]{3})\s*·")
CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")
LAB_KEY = "gpt2lib.lab_result"  # gpt2lib.labs.core.LAB_KEY: a displayed check result's output metadata
SCHEMA = 3


class MetadataError(ValueError):
    """An exercise whose cells cannot be told apart; the message names the cell and the fix."""


def source_of(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def answer_metadata(grade_id: str) -> dict:
    return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": SCHEMA,
            "solution": True, "task": False}


def check_metadata(grade_id: str, points: int) -> dict:
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
            "schema_version": SCHEMA, "solution": False, "task": False}


def nbgrader_cells(nb: dict, name: str) -> dict[int, dict]:
    """cell index -> the nbgrader metadata that cell should carry (cells not listed carry none)."""
    wanted: dict[int, dict] = {}
    label, points, answers, checked, answer_at = None, 0, 0, True, None

    def close(where: str):
        if not checked:
            raise MetadataError(f"{name}, cell {answer_at}: exercise {label} has an answer cell but no "
                                f"check cell after it (before {where}); add a code cell calling its check")

    for index, cell in enumerate(nb["cells"]):
        text = source_of(cell)
        if cell["cell_type"] == "markdown" and EXERCISE.search(text):
            close(f"the next exercise, cell {index}")
            found, badge = LABEL.search(text), BADGE.search(text)
            if not found:
                raise MetadataError(f"{name}, cell {index}: an exercise without ':label: ex-N-M' on the line "
                                    f"after the directive; the label names its grade_ids")
            if not badge:
                raise MetadataError(f"{name}, cell {index}: exercise {found.group(1)} has no badge "
                                    f"'**★☆☆ · 10 min · kind**'; its stars are the check's points")
            label, points, answers, checked = found.group(1), badge.group(1).count("★"), 0, True
            continue
        if cell["cell_type"] != "code":
            continue
        if BEGIN in text:
            if label is None:
                raise MetadataError(f"{name}, cell {index}: a solution region before any exercise directive; "
                                    f"put the exercise's markdown cell ({{exercise}} with :label:) above it")
            if CHECK_CALL.search(text):
                raise MetadataError(f"{name}, cell {index}: exercise {label}'s answer cell also calls the "
                                    f"check; move the check call into a code cell of its own (nbgrader "
                                    f"locks and grades that cell, the student edits the answer)")
            answers += 1
            wanted[index] = answer_metadata(f"{label}-answer" + (f"-{answers}" if answers > 1 else ""))
            checked, answer_at = False, index
        elif not checked and CHECK_CALL.search(text):
            wanted[index] = check_metadata(f"{label}-check", points)
            checked = True
    close("the end of the notebook")
    return wanted


def with_metadata(nb: dict, name: str) -> dict:
    """A copy of the notebook whose cells carry exactly the nbgrader metadata they should."""
    wanted = nbgrader_cells(nb, name)
    out = json.loads(json.dumps(nb))
    for index, cell in enumerate(out["cells"]):
        metadata = cell.setdefault("metadata", {})
        if index in wanted:
            metadata["nbgrader"] = wanted[index]
        else:
            metadata.pop("nbgrader", None)
    return out


def dumps(nb: dict) -> str:
    """The text nbformat writes (indent 1, sorted keys, newline at the end)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def differences(old: dict, new: dict) -> list[str]:
    """One line per cell whose nbgrader metadata differs between two versions of a notebook."""
    lines = []
    for index, (a, b) in enumerate(zip(old["cells"], new["cells"])):
        before, after = a.get("metadata", {}).get("nbgrader"), b.get("metadata", {}).get("nbgrader")
        if before != after:
            what = (f"should be {after['grade_id']}" if after and not before else
                    "has nbgrader metadata it should not have" if before and not after else
                    f"is stale ({before.get('grade_id')!r} should be {after['grade_id']!r})")
            lines.append(f"cell {index} {what}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to update (default: every notebook in notebooks/)")
    parser.add_argument("--check", action="store_true", help="report what would change instead of writing")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    stale, changed = [], 0
    for path in paths:
        if not path.is_file():
            print(f"error: {path} is not a notebook file", file=sys.stderr)
            return 2
        text = path.read_text(encoding="utf-8")
        try:
            nb = json.loads(text)
            new = with_metadata(nb, path.name)
        except json.JSONDecodeError as e:
            print(f"error: {path} is not valid JSON ({e}); is it a notebook?", file=sys.stderr)
            return 2
        except MetadataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if dumps(new) == text:
            continue
        if args.check:
            stale += [f"{path.name}: {line}" for line in differences(nb, new)] or [
                f"{path.name}: not in nbformat's layout (one-space indent, sorted keys)"]
        else:
            path.write_text(dumps(new), encoding="utf-8")
            changed += 1
    if args.check:
        if stale:
            print("nbgrader metadata missing or stale:", file=sys.stderr)
            for line in stale:
                print(f"  - {line}", file=sys.stderr)
            print("fix: python scripts/nbgrader_metadata.py, then commit the notebooks", file=sys.stderr)
            return 1
        print(f"{len(paths)} notebooks carry their nbgrader metadata")
        return 0
    print(f"nbgrader metadata: {changed} of {len(paths)} notebooks updated")
    return 0


# --- nbgrader_config.py: the two preprocessors added to nbgrader's own ---------------------

def _failed_check_error(result: dict) -> dict:
    line = f"[{result['status'].upper()}] ex {result['exercise']} {result['title']}: {result['message']}"
    return {"output_type": "error", "ename": "LabCheckFailed", "evalue": line, "traceback": [line]}


def failed_checks_as_errors(nb, resources):
    """After execution: put an error output before every check result that is not a pass.

    nbgrader scores a test cell 0 when an error output comes before its first result,
    else full points; a test cell that shows no check result at all also gets an error.
    """
    from nbformat import from_dict

    for cell in nb.cells:
        grading = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not grading.get("grade") or grading.get("solution"):
            continue
        outputs = list(cell.get("outputs", []))
        if any(o.get("output_type") == "error" for o in outputs):
            continue
        at = next((i for i, o in enumerate(outputs) if LAB_KEY in o.get("metadata", {})), None)
        if at is None:
            error = {"output_type": "error", "ename": "LabCheckFailed", "traceback": [],
                     "evalue": "no check result was shown: the check call must be the last line of the cell"}
            error["traceback"] = [error["evalue"]]
            outputs.append(error)
        elif outputs[at]["metadata"][LAB_KEY].get("status") != "pass":
            outputs.insert(at, _failed_check_error(outputs[at]["metadata"][LAB_KEY]))
        cell.outputs = from_dict(outputs)
    return nb, resources


def configure(c):
    """Set an nbgrader config `c` (in nbgrader_config.py) for the course's notebooks."""
    from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor
    from nbgrader.converters import Autograde, GenerateAssignment
    from nbgrader.preprocessors import Execute
    from traitlets import Bool

    class FailedChecksAsErrors(Preprocessor):
        """A check result other than [PASS] becomes an error in its cell: the cell scores 0."""

        enabled = Bool(True)

        def preprocess(self, nb, resources):
            return failed_checks_as_errors(nb, resources)

    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_cell_tags = {"solution"}
    c.GenerateAssignment.preprocessors = [TagRemovePreprocessor,
                                          *GenerateAssignment.class_traits()["preprocessors"].default()]
    grading = list(Autograde.class_traits()["autograde_preprocessors"].default())
    grading.insert(grading.index(Execute) + 1, FailedChecksAsErrors)
    c.Autograde.autograde_preprocessors = grading
    return c


if __name__ == "__main__":
    sys.exit(main())
