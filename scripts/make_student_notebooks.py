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
- the MyST markup only the book (and jupyterlab-myst) understands becomes plain Markdown,
  so the notebook reads cleanly in any Jupyter and in Colab: an {exercise} block becomes a
  heading "Exercise 4.1 · <title>" (the book's number: the chapter's, from the file name,
  and the exercise's place in it) followed by its text; {cite}`key` becomes
  "(Vaswani et al., 2017)" from book/references.bib, linked to the paper; a {tip} or
  {note} becomes a quote, a {dropdown} a <details> block; `(label)=` targets go;
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
BIB = ROOT / "book" / "references.bib"
DIRECTIVE = re.compile(r"^ {0,3}(?P<fence>`{3,}|:{3,})\s*\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*?)\s*$")
CODE_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*?)\s*$")
TARGET = re.compile(r"^\s*\([\w.:-]+\)=\s*$")
ROLE = re.compile(r"\{(?P<name>cite(?::[a-z]+)?|ref|numref|doc|term|math)\}`(?P<text>[^`]+)`")
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
EXERCISE_LABEL = re.compile(r"^ex-(\d+)-(\d+)$")
ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important", "seealso": "See also",
               "warning": "Warning", "caution": "Caution", "attention": "Attention", "danger": "Danger",
               "error": "Error", "admonition": None}
NO_OUTPUT = ("solution", "solution-start", "solution-end", "exercise-end")


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


# ---------------------------------------------------------------------------
# MyST markup -> plain Markdown
# ---------------------------------------------------------------------------

def bib_value(text: str, start: int) -> tuple[str, int]:
    """The field value at text[start:] ({...} with nested braces, "...", or a bare word), and the end."""
    if text[start] == "{":
        depth = 0
        for end in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                return text[start + 1 : end], end + 1
        raise MarkerError(f"an unbalanced brace in the bibliography near {text[start:start + 40]!r}")
    if text[start] == '"':
        end = text.index('"', start + 1)
        return text[start + 1 : end], end + 1
    word = re.match(r"[^,}\s]+", text[start:]).group(0)
    return word, start + len(word)


def read_bib(path: Path) -> dict[str, dict[str, str]]:
    """key -> {field: value} for every entry of a BibTeX file (the subset the book's file uses)."""
    entries = {}
    text = path.read_text(encoding="utf-8")
    for entry in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,", text):
        fields, pos = {}, entry.end()
        while (field := re.compile(r"\s*(\w+)\s*=\s*").match(text, pos)):
            fields[field.group(1).lower()], pos = bib_value(text, field.end())
            pos = re.compile(r"\s*,?").match(text, pos).end()
        entries[entry.group(1)] = fields
    return entries


LATEX = {r"{\L}": "Ł", r"{\l}": "ł", r"\L": "Ł", r"\l": "ł", r"{\o}": "ø", r"\&": "&"}


def plain_tex(text: str) -> str:
    for macro, char in LATEX.items():
        text = text.replace(macro, char)
    return re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()


def cite_names(fields: dict[str, str]) -> str:
    """The author part of an author-year citation: "Vaswani et al.", "Hendrycks and Gimpel", "Karpathy"."""
    authors = [a.strip() for a in re.split(r"\s+and\s+", fields["author"]) if a.strip()]
    last = [plain_tex(a.split(",")[0] if "," in a else a.split()[-1]) for a in authors]
    if len(last) == 1:
        return last[0]
    if len(last) == 2 and last[1] != "others":
        return f"{last[0]} and {last[1]}"
    return f"{last[0]} et al."


class Context:
    """What converting one notebook's Markdown needs: the exercise numbers and the bibliography."""

    def __init__(self, nb: dict, name: str, bib: Path):
        self.name, self.bib_path, self._bib = name, bib, None
        chapter = re.match(r"(\d+)_", name)
        self.numbers = {}  # exercise label -> "4.1", as the book numbers them
        count = 0
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown" or is_solution_cell(cell):
                continue
            for label in re.findall(r"\{exercise(?:-start)?\}.*\n(?::\w+:.*\n)*?:label:\s*(\S+)", source_of(cell)):
                count += 1
                own = EXERCISE_LABEL.match(label)
                self.numbers[label] = (f"{int(chapter.group(1))}.{count}" if chapter
                                       else f"{own.group(1)}.{own.group(2)}" if own else str(count))
        self.count = count

    def bib(self) -> dict:
        if self._bib is None:
            if not self.bib_path.exists():
                raise MarkerError(f"{self.name} cites a reference, and the bibliography {self.bib_path} is "
                                  f"missing; pass its path with --bib")
            self._bib = read_bib(self.bib_path)
        return self._bib

    def cite(self, keys: str, textual: bool, where: str) -> str:
        parts = []
        for key in (k.strip() for k in keys.split(",")):
            if key not in self.bib():
                raise MarkerError(f"{where}: {{cite}}`{key}` is not in {self.bib_path.name}; add the entry "
                                  f"there (the book needs it too) or fix the key")
            fields = self.bib()[key]
            names, year = cite_names(fields), fields.get("year", "n.d.")
            text = f"{names} ({year})" if textual else f"{names}, {year}"
            parts.append(f"[{text}]({fields['url']})" if fields.get("url") else text)
        return ", ".join(parts) if textual else f"({'; '.join(parts)})"

    def exercise(self, label: str | None, where: str) -> str:
        if label is None:
            return ""
        if label not in self.numbers:
            raise MarkerError(f"{where}: no exercise has the label {label!r}")
        return self.numbers[label]


def plain_role(match: re.Match, ctx: Context, where: str) -> str:
    name, text = match.group("name"), match.group("text")
    if name.startswith("cite"):
        return ctx.cite(text, textual=name in ("cite:t", "cite:ts"), where=where)
    if name == "math":
        return f"${text}$"
    explicit = EXPLICIT.match(text)
    if explicit:  # {ref}`the text <label>`
        return explicit.group("text")
    if name in ("ref", "numref") and text in ctx.numbers:
        return f"Exercise {ctx.numbers[text]}"
    if name in ("term", "doc"):
        return text
    raise MarkerError(f"{where}: {{{name}}}`{text}` has no plain form; write {{{name}}}`the words <{text}>`")


def closing_line(lines: list[str], start: int, fence: str) -> int | None:
    """Index of the line closing a block opened by `fence` (the same character, at least as many)."""
    for j in range(start, len(lines)):
        s = lines[j].strip()
        if s and set(s) == {fence[0]} and len(s) >= len(fence):
            return j
    return None


def directive_parts(body: list[str]) -> tuple[dict[str, str], list[str]]:
    """A directive's options (`:key: value` lines or a `---` YAML block) and its content."""
    options, i = {}, 0
    if body[:1] == ["---"]:
        end = body.index("---", 1)
        for line in body[1:end]:
            key, _, value = line.partition(":")
            options[key.strip()] = value.strip()
        i = end + 1
    while i < len(body) and (m := OPTION.match(body[i])):
        options[m.group("key")] = m.group("value")
        i += 1
    while i < len(body) and not body[i].strip():
        i += 1
    return options, body[i:]


def plain_directive(name: str, arg: str, options: dict, content: list[str], ctx: Context, where: str) -> list[str]:
    if name in ("exercise", "exercise-start"):
        number = "" if "nonumber" in options else ctx.exercise(options.get("label"), where)
        heading = " ".join(p for p in ("Exercise", number) if p) + (f" · {arg}" if arg else "")
        return [f"### {heading}", ""] + content
    if name in NO_OUTPUT:
        return []
    if name in ADMONITIONS:
        title = arg if name == "admonition" or arg else ADMONITIONS[name]
        return [f"> **{title}**", ">"] + [f"> {line}" if line.strip() else ">" for line in content]
    if name == "dropdown":
        return [f"<details><summary>{arg or 'More'}</summary>", ""] + content + ["", "</details>"]
    if name == "math":
        return ["$$"] + content + ["$$"]
    raise MarkerError(f"{where}: the {{{name}}} directive has no plain-Markdown form for Jupyter and Colab; "
                      f"add one to plain_directive() in scripts/make_student_notebooks.py, or write the cell without it")


def plain_markdown(source: str, ctx: Context, where: str) -> str:
    """A Markdown cell's source with every MyST directive, role and target in plain Markdown."""
    lines, out, i = source.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if (m := DIRECTIVE.match(line)):
            end = closing_line(lines, i + 1, m.group("fence"))
            if end is None:
                raise MarkerError(f"{where}: the {{{m.group('name')}}} block is never closed (a line "
                                  f"{m.group('fence')} alone ends it)")
            options, content = directive_parts(lines[i + 1 : end])
            inner = plain_markdown("\n".join(content), ctx, where).splitlines()
            out += plain_directive(m.group("name"), m.group("arg"), options, inner, ctx, where)
            i = end + 1
        elif (m := CODE_FENCE.match(line)):  # a code block: kept as written
            end = closing_line(lines, i + 1, m.group("fence"))
            end = len(lines) - 1 if end is None else end
            out += lines[i : end + 1]
            i = end + 1
        else:
            if not TARGET.match(line):
                out.append(ROLE.sub(lambda r: plain_role(r, ctx, where), line))
            i += 1
    while out and not out[-1].strip():
        out.pop()
    text = "\n".join(out)
    return text + "\n" if source.endswith("\n") else text


def student_version(nb: dict, name: str, bib: Path = BIB) -> dict:
    """The student notebook (a new dict) made from a solution notebook's JSON."""
    ctx = Context(nb, name, bib)
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if is_solution_cell(cell):
            continue
        where = f"{name}, cell {index}"
        metadata = {k: v for k, v in cell.get("metadata", {}).items() if k != "execution"}
        if "jupyter" in metadata:  # the stub replacing a collapsed solution is shown open
            metadata["jupyter"] = {k: v for k, v in metadata["jupyter"].items() if k != "source_hidden"}
            metadata = {k: v for k, v in metadata.items() if v != {} or k != "jupyter"}
        new = {"cell_type": cell["cell_type"], "id": cell.get("id") or f"cell-{index}",
               "metadata": metadata, "source": source_of(cell)}
        if cell["cell_type"] == "code":
            new["source"] = strip_solutions(new["source"], where)
            new["execution_count"] = None
            new["outputs"] = []
        else:
            if cell["cell_type"] == "markdown":
                new["source"] = plain_markdown(new["source"], ctx, where)
            if "attachments" in cell:
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


def generate(notebooks: Path, bib: Path = BIB) -> dict[str, str]:
    """file name -> student notebook text, for every notebook in `notebooks` with exercises."""
    out = {}
    for path in sorted(notebooks.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        if nb.get("nbformat") != NBFORMAT:
            raise MarkerError(f"{path.name}: nbformat {nb.get('nbformat')} is not supported; save it as v4")
        if has_exercises(nb):
            out[path.name] = dumps(student_version(nb, path.name, bib))
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
    parser.add_argument("--bib", type=Path, default=BIB, help="the bibliography {cite} keys refer to")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = parser.parse_args(argv)
    try:
        generated = generate(args.notebooks, args.bib)
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
