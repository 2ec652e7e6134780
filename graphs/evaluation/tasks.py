"""Built-in question sets that need no files.

:func:`graded_arithmetic` makes arithmetic questions in levels of rising difficulty. A small
model answers the easy levels right more often than not and the hard ones rarely, which is the
mix of easy and hard items that makes a vote's accuracy non-monotone in the number of calls.
"""

from __future__ import annotations

import random
from typing import TypedDict

__all__ = ["LEVELS", "Question", "graded_arithmetic"]


class Question(TypedDict):
    qid: str
    question: str
    answer: str
    level: str


# level name -> (digits of a, digits of b, operator)
LEVELS: dict[str, tuple[int, int, str]] = {
    "1+1": (1, 1, "+"),
    "2+2": (2, 2, "+"),
    "3+3": (3, 3, "+"),
    "1x2": (1, 2, "*"),
    "2x2": (2, 2, "*"),
    "3x2": (3, 2, "*"),
}


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 2, 10**digits - 1)


def graded_arithmetic(per_level: int, *, levels: list[str] | None = None, seed: int = 0) -> list[Question]:
    """``per_level`` questions for each level (default: all of :data:`LEVELS`), reproducibly.

    Example:
        >>> [q["question"] for q in graded_arithmetic(1, levels=["1+1", "2x2"], seed=3)]
        ['What is 5 + 4?', 'What is 57 * 87?']
    """
    if per_level < 1:
        raise ValueError(f"per_level must be at least 1, got {per_level}")
    chosen = levels or list(LEVELS)
    unknown = [name for name in chosen if name not in LEVELS]
    if unknown:
        raise ValueError(f"unknown levels {unknown} (known: {', '.join(LEVELS)})")
    rng = random.Random(seed)
    out: list[Question] = []
    for name in chosen:
        da, db, op = LEVELS[name]
        for i in range(per_level):
            a, b = _number(rng, da), _number(rng, db)
            value = a + b if op == "+" else a * b
            out.append(
                {"qid": f"{name}-{i}", "question": f"What is {a} {op} {b}?", "answer": str(value), "level": name}
            )
    return out
