"""nbgrader 0.9.6 runs the course: the chapters as its source, a release, graded submissions.

- scripts/nbgrader_metadata.py gives the exercises' cells nbgrader's metadata, the same
  on every run; --check fails on a notebook without it and names the cells;
- a temporary nbgrader course directory holds copies of notebooks/ with that metadata:
  `nbgrader generate_assignment` accepts every chapter (and refuses one without the
  metadata, as it did before), the release holds no solution and locks every check cell;
- `nbgrader autograde` grades the solution notebooks, the untouched release and a half-done
  submission of chapter 2: full marks, 0, and the points of the one exercise solved. The
  expected totals come from the exercises' difficulty badges, not from the metadata.
nbgrader runs from its own environment (.venv-nbgrader, requirements-nbgrader.txt); the
notebooks run on a kernel that is this interpreter, so gpt2lib and torch are the course's.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SCRIPT = ROOT / "scripts" / "nbgrader_metadata.py"
NBGRADER_ENV = ROOT / ".venv-nbgrader"
# autograde executes every notebook twice or three times: chapters with several kinds of
# exercise (implement, predict, explore) and short run times; generate_assignment takes all
AUTOGRADED = ("02_tokenization", "05_transformer_block", "06_full_model")
EXERCISE = re.compile(r"^\s*(```+|:::+)\s*\{exercise(-start)?\}", re.MULTILINE)
LABEL = re.compile(r"^:label:\s*(ex-\d+-\d+)", re.MULTILINE)
STARS = re.compile(r"\*\*([★☆]{3}) ·")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


make_student = load_script("make_student_notebooks")


def source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def chapters() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def badge_points(nb: dict) -> dict[str, int]:
    """exercise label -> stars of its badge, read from the exercise cells themselves."""
    points = {}
    for cell in nb["cells"]:
        text = source(cell)
        if cell["cell_type"] == "markdown" and EXERCISE.search(text):
            points[LABEL.search(text).group(1)] = STARS.search(text).group(1).count("★")
    return points


def regions(text: str) -> list[str]:
    """The solution lines of a cell (inside the markers, stripped, blank lines left out)."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip() in (BEGIN, END):
            inside = line.strip() == BEGIN
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


def apply_script(*args, check=True):
    run = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                         timeout=120)
    if check:
        assert run.returncode == 0, run.stdout + run.stderr
    return run


# ---------------------------------------------------------------------------
# The metadata script (no nbgrader needed)
# ---------------------------------------------------------------------------

def test_metadata_is_complete_stable_and_checked(tmp_path):
    copies = []
    for path in chapters():  # the chapters without their nbgrader metadata, which the script then adds
        nb = read(path)
        for cell in nb["cells"]:
            cell["metadata"].pop("nbgrader", None)
        (tmp_path / path.name).write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
        copies.append(tmp_path / path.name)
    with_exercises = [p for p in copies if badge_points(read(p))]
    before = apply_script("--check", *copies, check=False)
    assert before.returncode == 1 and "should be ex-" in before.stderr, before.stderr  # negative control
    apply_script(*copies)
    first = {p.name: p.read_bytes() for p in copies}
    assert "0 of" in apply_script(*copies).stdout  # a second run changes nothing ...
    assert {p.name: p.read_bytes() for p in copies} == first  # ... byte for byte
    assert apply_script("--check", *copies).returncode == 0
    for path in copies:
        original, nb = read(NOTEBOOKS / path.name), read(path)
        for a, b in zip(original["cells"], nb["cells"]):  # only cell metadata changed
            assert (a["cell_type"], source(a), a.get("outputs")) == (b["cell_type"], source(b), b.get("outputs"))
        graded = [(i, c["metadata"]["nbgrader"]) for i, c in enumerate(nb["cells"]) if "nbgrader" in c["metadata"]]
        ids = [m["grade_id"] for _, m in graded]
        assert len(ids) == len(set(ids)), f"{path.name}: grade_ids repeat: {ids}"
        stars = badge_points(original)
        answers = {m["grade_id"][: -len("-answer")] for _, m in graded if m["solution"]}
        checks = {m["grade_id"][: -len("-check")]: m for _, m in graded if m["grade"]}
        assert answers == set(checks) == set(stars), path.name  # one answer and one check per exercise
        assert {label: m["points"] for label, m in checks.items()} == stars, path.name
        for i, m in graded:
            text = source(nb["cells"][i])
            assert (BEGIN in text) == m["solution"], f"{path.name} cell {i}: {m}"
            assert m["schema_version"] == 3 and m["locked"] == m["grade"] and m["task"] is False
            if m["grade"]:
                assert re.search(r"\bcheck_\w+\s*\(", text), f"{path.name} cell {i} is graded but checks nothing"
    assert with_exercises and all(
        any("nbgrader" in c["metadata"] for c in read(p)["cells"]) for p in with_exercises)
    # a cell marked by hand that is not an exercise cell loses its metadata: --check names it
    nb = read(copies[1])
    nb["cells"][0]["metadata"]["nbgrader"] = dict(read(copies[1])["cells"][0]["metadata"].get("nbgrader", {}),
                                                  grade_id="stray", solution=True)
    copies[1].write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    stray = apply_script("--check", copies[1], check=False)
    assert stray.returncode == 1 and "cell 0 has nbgrader metadata it should not have" in stray.stderr, stray.stderr


def test_an_exercise_without_its_check_cell_is_named(tmp_path):
    nb = read(NOTEBOOKS / "02_tokenization.ipynb")
    first_check = next(i for i, c in enumerate(nb["cells"])
                       if c["cell_type"] == "code" and "check_get_pair_counts(" in source(c))
    nb["cells"][first_check]["source"] = "print('checked by hand')\n"
    broken = tmp_path / "02_tokenization.ipynb"
    broken.write_text(json.dumps(nb), encoding="utf-8")
    run = apply_script(broken, check=False)
    assert run.returncode == 2
    assert "exercise ex-2-1 has an answer cell but no check cell after it" in run.stderr, run.stderr
    nb["cells"][first_check - 2]["source"] += "\nch02.check_get_pair_counts(get_pair_counts)\n"  # in the answer
    broken.write_text(json.dumps(nb), encoding="utf-8")
    run = apply_script(broken, check=False)
    assert run.returncode == 2 and "answer cell also calls the check" in run.stderr, run.stderr


def test_committed_notebooks_carry_the_metadata():
    run = apply_script("--check", *chapters(), check=False)
    assert run.returncode == 0, run.stderr


# ---------------------------------------------------------------------------
# nbgrader itself
# ---------------------------------------------------------------------------

def nbgrader_env(tmp: Path) -> dict:
    """nbgrader's environment: its own bin first (it calls `alembic`), kernels from `tmp` only."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONNOUSERSITE="1",
               JUPYTER_PATH=str(tmp / "jupyter"), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               JUPYTER_DATA_DIR=str(tmp / "jupyter-data"), PATH=f"{NBGRADER_ENV / 'bin'}{os.pathsep}{os.environ['PATH']}")
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    return env


def nbgrader(course: Path, *args, timeout=900) -> subprocess.CompletedProcess:
    run = subprocess.run([str(NBGRADER_ENV / "bin" / "nbgrader"), *args], cwd=course, capture_output=True,
                         text=True, timeout=timeout, env=nbgrader_env(course.parent))
    (course / f"nbgrader-{args[0]}.log").write_text(run.stdout + run.stderr)
    return run


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A graded nbgrader course: source, release, submitted, autograded and grades.csv."""
    made = subprocess.run(["make", "-s", ".venv-nbgrader/.installed"], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800)
    assert made.returncode == 0, f"could not make nbgrader's environment:\n{made.stdout}{made.stderr}"
    tmp = tmp_path_factory.mktemp("nbgrader")
    course = tmp / "course"
    for path in chapters():  # one assignment per chapter, named after it
        (course / "source" / path.stem).mkdir(parents=True)
        shutil.copy(path, course / "source" / path.stem / path.name)
    apply_script(*(course / "source").glob("*/*.ipynb"))
    for name in {read(p)["metadata"]["kernelspec"]["name"] for p in chapters()}:
        kernel = tmp / "jupyter" / "kernels" / name
        kernel.mkdir(parents=True)
        (kernel / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "the course's Python", "language": "python"}))
    (course / "nbgrader_config.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'scripts')!r})\n"
        "from nbgrader_metadata import configure\n"
        "c = get_config()\n"
        "configure(c)\n"
        "c.Execute.timeout = 600\n")
    generated = nbgrader(course, "generate_assignment", "*", "--force")
    assert generated.returncode == 0, generated.stdout + generated.stderr[-4000:]

    for stem in AUTOGRADED:
        for student, path in (("solved", course / "source"), ("unsolved", course / "release")):
            (course / "submitted" / student / stem).mkdir(parents=True)
            shutil.copy(path / stem / f"{stem}.ipynb", course / "submitted" / student / stem)
    # half done: ex 2.1 solved, ex 2.2 with the usual mistake, the rest as handed out
    partly = read(course / "release" / "02_tokenization" / "02_tokenization.ipynb")
    solved = {c["metadata"]["nbgrader"]["grade_id"]: source(c)
              for c in read(course / "source" / "02_tokenization" / "02_tokenization.ipynb")["cells"]
              if "nbgrader" in c["metadata"]}
    for cell in partly["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if grade_id == "ex-2-1-answer":
            cell["source"] = solved[grade_id]
        elif grade_id == "ex-2-2-answer":  # merges overlapping pairs: [a, a, a] -> [aa, aa]
            cell["source"] = ("def merge(parts, pair):\n"
                              "    return [parts[i] + parts[i + 1] if (parts[i], parts[i + 1]) == pair else parts[i]\n"
                              "            for i in range(len(parts) - 1)]\n")
    (course / "submitted" / "partly" / "02_tokenization").mkdir(parents=True)
    (course / "submitted" / "partly" / "02_tokenization" / "02_tokenization.ipynb").write_text(json.dumps(partly))

    graded = nbgrader(course, "autograde", "*", "--create", "--force", timeout=1800)
    assert graded.returncode == 0, graded.stdout + graded.stderr[-4000:]
    exported = nbgrader(course, "export")
    assert exported.returncode == 0, exported.stdout + exported.stderr[-4000:]
    return course


def test_generate_assignment_takes_every_chapter_and_releases_no_solution(course):
    log = (course / "nbgrader-generate_assignment.log").read_text()
    assert "ERROR" not in log, log[-4000:]
    for path in chapters():
        released = course / "release" / path.stem / path.name
        assert released.is_file(), f"no release of {path.name}:\n{log[-4000:]}"
        source_nb, release = read(course / "source" / path.stem / path.name), read(released)
        by_id = {c["metadata"]["nbgrader"]["grade_id"]: c for c in release["cells"] if "nbgrader" in c["metadata"]}
        for cell in source_nb["cells"]:
            grading = cell["metadata"].get("nbgrader")
            if not grading:
                continue
            out = by_id[grading["grade_id"]]
            if grading["solution"]:  # the student's cell: no line of the solution is left
                left = [line for line in regions(source(cell)) if line in source(out)]
                assert not left, f"{path.name} {grading['grade_id']}: the release still shows {left}"
                assert "raise NotImplementedError()" in source(out)
            else:  # the check: as written, locked
                assert source(out) == source(cell) and out["metadata"]["nbgrader"]["locked"] is True
        assert not [c for c in release["cells"] if make_student.is_solution_cell(c)], (
            f"{path.name}: the release keeps the collapsed solutions")


def test_generate_assignment_refuses_a_chapter_without_the_metadata(course):
    """The control: nbgrader stops on the markers alone, as the chapters were before the script."""
    raw = course / "source" / "raw_02"
    raw.mkdir()
    shutil.copy(NOTEBOOKS / "02_tokenization.ipynb", raw)
    nb = read(raw / "02_tokenization.ipynb")
    for cell in nb["cells"]:
        cell["metadata"].pop("nbgrader", None)
    (raw / "02_tokenization.ipynb").write_text(json.dumps(nb))
    run = nbgrader(course, "generate_assignment", "raw_02", "--force")
    assert run.returncode != 0 and "Solution region detected in a non-solution cell" in run.stdout + run.stderr


def scores(course: Path) -> dict[tuple[str, str], tuple[float, float]]:
    with open(course / "grades.csv", newline="") as f:
        return {(r["student_id"], r["assignment"]): (float(r["raw_score"]), float(r["max_score"]))
                for r in csv.DictReader(f)}


@pytest.mark.parametrize("stem", AUTOGRADED)
def test_autograde_gives_full_marks_to_the_solutions_and_none_to_the_release(course, stem):
    expected = sum(badge_points(read(NOTEBOOKS / f"{stem}.ipynb")).values())
    assert expected > 0
    got = scores(course)
    assert got[("solved", stem)] == (expected, expected), (got, (course / "nbgrader-autograde.log").read_text()[-4000:])
    assert got[("unsolved", stem)] == (0, expected), got


def test_autograde_scores_each_exercise_on_its_own(course):
    stars = badge_points(read(NOTEBOOKS / "02_tokenization.ipynb"))
    assert scores(course)[("partly", "02_tokenization")] == (stars["ex-2-1"], sum(stars.values()))
    # the student's feedback names the problem in the check's own words
    graded = read(course / "autograded" / "partly" / "02_tokenization" / "02_tokenization.ipynb")
    errors = {c["metadata"]["nbgrader"]["grade_id"]: [o for o in c["outputs"] if o["output_type"] == "error"]
              for c in graded["cells"] if c["metadata"].get("nbgrader", {}).get("grade")}
    assert errors["ex-2-1-check"] == []
    assert [e["evalue"][:20] for e in errors["ex-2-2-check"]] == ["[FAIL] ex 2.2 one me"], errors["ex-2-2-check"]
    assert [e["evalue"][:11] for e in errors["ex-2-3-check"]] == ["[TODO] ex 2"], errors["ex-2-3-check"]
