"""Checks for the classroom labs: one module per chapter (ch02 ... ch09) plus core.

In a chapter notebook:

    from gpt2lib.labs import ch04
    ch04.check_softmax(softmax)     # -> [PASS] ex 4.1 softmax: ...

Every check returns a LabResult (one stable line; never raises). REGISTRY maps each
check's name to its exercise number, title, kind and hint. The authoring convention
is in docs/EXERCISES.md.
"""

from .core import (LAB_KEY, REGISTRY, LabCheckFailed, LabResult, Mistake, check_answer,
                   check_prediction)
from . import ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09

CHAPTERS = {2: ch02, 3: ch03, 4: ch04, 5: ch05, 6: ch06, 7: ch07, 8: ch08, 9: ch09}
