"""The machinery behind the exercise checks: results, the check decorator, comparisons.

A check takes the reader's function (or prediction, or answer), runs it on a few
inputs including the one that catches the usual mistake, and returns a LabResult
whose text is one stable line:

    [PASS] ex 4.1 softmax: matches gpt2lib.attention.softmax on 4 inputs
    [FAIL] ex 4.1 softmax: overflow to nan on large scores: subtract the row max first
    [TODO] ex 4.1 softmax: not implemented yet: subtract the max, exp, divide by the sum

Checks never raise (a notebook keeps running past a failed exercise); call
`result.raise_if_failed()` where an exception is wanted. Displayed in Jupyter, a
result's output also carries a JSON copy in its output metadata under the key
LAB_KEY, which is what scripts/grade.py reads back from executed notebooks (metadata,
not a MIME type of its own: Jupyter Book and nbval ignore output metadata). The exercise format follows
nbgrader's solution markers (jupyter/nbgrader); see docs/EXERCISES.md.
"""

import functools
import math
from dataclasses import asdict, dataclass

import torch

LAB_KEY = "gpt2lib.lab_result"  # output metadata key of a displayed LabResult
STATUSES = ("pass", "fail", "todo", "error")


class LabCheckFailed(AssertionError):
    """Raised by LabResult.raise_if_failed() for a result that did not pass."""


@dataclass(frozen=True)
class LabResult:
    """The outcome of one exercise check. str() and repr() are the same single line."""

    exercise: str  # "4.1"
    title: str  # "softmax"
    status: str  # one of STATUSES
    message: str

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def __str__(self) -> str:
        return f"[{self.status.upper()}] ex {self.exercise} {self.title}: {self.message}"

    __repr__ = __str__

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": str(self)}, {LAB_KEY: asdict(self)}  # (data, metadata)

    def raise_if_failed(self) -> "LabResult":
        """Raise LabCheckFailed (an AssertionError) unless the check passed; else return self."""
        if not self.passed:
            raise LabCheckFailed(str(self))
        return self


class Mistake(Exception):
    """Raised inside a check: the reader's answer is wrong; the message says why."""


class StudentError(Exception):
    """The reader's function raised; wraps the original exception with the input it got."""


@dataclass(frozen=True)
class CheckSpec:
    exercise: str
    title: str
    kind: str  # implement | predict | explore
    hint: str


# check function name -> CheckSpec, filled as the chapter modules are imported.
REGISTRY: dict[str, CheckSpec] = {}


def exercise(number: str, title: str, *, kind: str, hint: str):
    """Turn `body(answer, ...) -> success message` into a check returning a LabResult.

    The body raises Mistake(message) when the answer is wrong; calls to the reader's
    function go through call() so that its exceptions are reported as theirs.
    An answer of None or ..., or a NotImplementedError, gives TODO with the hint.
    """
    if kind not in ("implement", "predict", "explore"):
        raise ValueError(f"kind must be implement, predict or explore, got {kind!r}")

    def decorate(body):
        spec = CheckSpec(number, title, kind, hint)
        REGISTRY[body.__name__] = spec

        @functools.wraps(body)
        def check(*args, **kwargs) -> LabResult:
            def result(status, message):
                return LabResult(number, title, status, message)

            answer = args[0] if args else None
            if answer is None or answer is Ellipsis or answer == (None, None):
                return result("todo", f"not answered yet: {hint}")
            if kind == "implement" and not callable(answer):
                return result("fail", f"expected a function, got {type(answer).__name__}")
            try:
                return result("pass", body(*args, **kwargs))
            except NotImplementedError as e:
                return result("todo", f"not implemented yet: {str(e) or hint}")
            except StudentError as e:
                if isinstance(e.__cause__, NotImplementedError):
                    return result("todo", f"not implemented yet: {str(e.__cause__) or hint}")
                return result("fail", str(e))
            except Mistake as e:
                return result("fail", str(e))
            except Exception as e:  # a defect in the check or its inputs, not the reader's
                return result("error", f"the check itself failed ({type(e).__name__}: {e})")

        check.spec = spec
        return check

    return decorate


def call(fn, *args, on: str = ""):
    """Call the reader's function; if it raises, say so in their terms (StudentError)."""
    try:
        return fn(*args)
    except NotImplementedError as e:
        raise StudentError(str(e)) from e
    except Exception as e:
        where = f" on {on}" if on else ""
        raise StudentError(f"your function raised {type(e).__name__}{where}: {short(str(e))}") from e


def short(text: str, limit: int = 160) -> str:
    """The first line of an error message, cut to a readable length."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def fmt(x: float) -> str:
    """A difference in two significant digits, so messages stay the same across machines."""
    if x != x:
        return "nan"
    if math.isinf(x):
        return "inf"
    return f"{x:.2g}"


def as_tensor(value, what: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """The reader's result as a tensor (lists and NumPy arrays are accepted)."""
    if not isinstance(value, torch.Tensor):
        try:
            value = torch.as_tensor(value)
        except Exception:
            raise Mistake(f"{what} should be a tensor, got {type(value).__name__}") from None
    if like is not None and value.is_floating_point() and like.is_floating_point():
        value = value.to(like.dtype)
    return value


def max_diff(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference|, treating matching infinities as equal and nan as a difference."""
    ours, reference = ours.double(), reference.double()
    same_inf = torch.isinf(ours) & torch.isinf(reference) & (ours == reference)
    diff = (ours - reference).abs().masked_fill(same_inf, 0.0)
    diff = diff.masked_fill(torch.isnan(diff), float("inf"))
    return float(diff.max()) if diff.numel() else 0.0


def expect_shape(value: torch.Tensor, reference: torch.Tensor, what: str):
    if tuple(value.shape) != tuple(reference.shape):
        raise Mistake(
            f"{what} has shape {list(value.shape)}, expected {list(reference.shape)}"
        )


def expect_close(value, reference: torch.Tensor, atol: float, what: str, hint: str = ""):
    """Raise Mistake unless value matches reference (shape, no nan, within atol)."""
    value = as_tensor(value, what, like=reference)
    expect_shape(value, reference, what)
    if torch.isnan(value.double()).any() and not torch.isnan(reference.double()).any():
        raise Mistake(f"{what} contains nan" + (f": {hint}" if hint else ""))
    diff = max_diff(value, reference)
    if diff > atol:
        raise Mistake(f"{what} is off by {fmt(diff)}" + (f": {hint}" if hint else ""))


def judge(prediction, actual, *, explain: str, nudge: str = "", tolerance: float = 0.0) -> str:
    """Compare a prediction with the real value: the pass message, or raise Mistake.

    Numbers match within `tolerance` (absolute); tuples, lists and torch.Size compare
    element-wise; everything else with ==. `explain` says why the real value is what it is,
    and is shown only after a right try: a wrong try hears that it is wrong, whether a
    number is too high or too low, and `nudge`, a question about the reasoning, never the answer.
    """
    if isinstance(actual, torch.Size):
        actual = tuple(actual)
    if isinstance(actual, (tuple, list)):
        right = isinstance(prediction, (tuple, list, torch.Size)) and tuple(prediction) == tuple(actual)
    elif isinstance(actual, bool) or not isinstance(actual, (int, float)):
        right = prediction == actual
    else:
        right = isinstance(prediction, (int, float)) and abs(prediction - actual) <= tolerance
    if not right:
        side = ""
        if isinstance(actual, (int, float)) and not isinstance(actual, bool) and isinstance(prediction, (int, float)):
            side = " (too high)" if prediction > actual else " (too low)"
        raise Mistake(f"you predicted {prediction!r}: not it{side}. "
                      f"{nudge or 'Go over your reasoning step by step.'} Then try again; the answer "
                      f"is in the collapsed solution")
    return f"right, it is {actual!r}: {explain}"


def check_prediction(number: str, title: str, prediction, actual, *, explain: str, nudge: str = "",
                     tolerance: float = 0.0) -> LabResult:
    """A ready-made "predict, then run" check for exercises that have no dedicated one."""
    if prediction is None or prediction is Ellipsis:
        return LabResult(number, title, "todo", "not answered yet: write your prediction first")
    try:
        return LabResult(number, title, "pass", judge(prediction, actual, explain=explain, nudge=nudge,
                                                      tolerance=tolerance))
    except Mistake as e:
        return LabResult(number, title, "fail", str(e))


def seeded(seed: int) -> torch.Generator:
    """A CPU generator, so every check draws the same inputs on every machine."""
    return torch.Generator().manual_seed(seed)


def check_answer(number: str, title: str, answer, verify) -> LabResult:
    """A ready-made "explore" check: verify(answer) returns a pass message or raises Mistake."""
    if answer is None or answer is Ellipsis:
        return LabResult(number, title, "todo", "not answered yet: explore, then write your answer")
    try:
        return LabResult(number, title, "pass", verify(answer))
    except Mistake as e:
        return LabResult(number, title, "fail", str(e))


@functools.lru_cache(maxsize=1)
def bundled_model():
    """The course's offline model (gpt2lib.BUNDLED_MODEL), loaded once per kernel."""
    import gpt2lib

    return gpt2lib.from_pretrained(gpt2lib.BUNDLED_MODEL)


@functools.lru_cache(maxsize=1)
def gpt2_tokenizer():
    """GPT-2's tokenizer from the files shipped with gpt2lib, built once per kernel."""
    from gpt2lib.tokenizer import get_tokenizer

    return get_tokenizer()
