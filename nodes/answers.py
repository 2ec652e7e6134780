"""Final-answer extraction and equivalence (numbers, ``\\boxed{}``, multiple-choice letters).

Extraction only takes answers the model *states*: the last ``\\boxed{...}``, or the last
"the answer is ...", "final answer: ..." or ``#### ...``. A reply that states no answer gives
``None``: it is recorded as such and never guessed (no "last number in the text" fallback).

Equivalence: numbers written plainly (``0.5``, ``1,000``, ``3/4``, ``\\frac{1}{2}``) compare
exactly as rationals, which is both what math-verify decides for them and much faster; every
other pair of answers (expressions, percentages, intervals, ...) is decided by math-verify.
Option letters compare as letters (``(B)`` and ``B``); a lone lowercase letter such as ``e``
is a symbol, not an option.
:func:`group_answers` turns a list of answers into groups of equivalent ones, which is what a
vote counts.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

__all__ = ["AnswerFormat", "AnswerGroup", "equivalent", "extract_answer", "group_answers", "normalize"]

AnswerFormat = Literal["auto", "number", "math", "choice"]

_CHOICE = re.compile(r"^(?:\(\s*([A-Pa-p])\s*\)|([A-P])\)?)[.:]?$")  # "(b)", "B", "B)": not a bare "e"
_ANSWER_IS = re.compile(
    r"(?:the\s+(?:\w+\s+)?answer\s+is|final\s+answer\s*(?:is)?\s*:?|answer\s*:|^####)\s*[:\-]?\s*(.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_NUMBER = re.compile(r"^[-+]?\$?\s*(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$")
_FRAC = re.compile(r"^[-+]?\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}$|^[-+]?(\d+)\s*/\s*(\d+)$")
_PLACEHOLDERS = frozenset({"X", "N", "(X)"})
_LEADING_NUMBER = re.compile(r"^[-+]?\$?\s*(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:\s*/\s*\d+)?")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    open_at = text.find("{", start)
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None


def _strip(answer: str) -> str:
    answer = answer.strip()
    answer = _TEXT_WRAP.sub(r"\1", answer)
    inner = _last_boxed(answer)
    if inner is not None and answer.lstrip("$ ").startswith(("\\boxed", "\\fbox")):
        answer = inner
    answer = answer.strip().strip("$").strip()
    answer = re.sub(r"^\*\*(.*)\*\*$", r"\1", answer).strip()  # markdown bold
    # "the answer is N = 15", "N, 122", "N, which is 11": the prompt's placeholder, then the answer
    answer = re.sub(r"^[NX]\s*(?:=|:|,\s*(?:which\s+is\s+)?|\bis\s+)\s*(?=\S)", "", answer)
    answer = answer.rstrip(".。!").strip()
    return answer


def extract_answer(text: str, fmt: AnswerFormat = "auto") -> str | None:
    """The answer a reply states, or None if it states none.

    Args:
        text: the model's reply.
        fmt: ``"choice"`` accepts only option letters; ``"number"`` only numbers; ``"math"``
            and ``"auto"`` take whatever is stated.

    Example:
        >>> extract_answer("So 6 x 7 = 42. The answer is 42.")
        '42'
        >>> extract_answer("... hence $\\\\boxed{\\\\frac{1}{2}}$")
        '\\\\frac{1}{2}'
        >>> extract_answer("The answer is (B).", "choice")
        'B'
        >>> extract_answer("I am not sure.") is None
        True
    """
    if not text:
        return None
    candidate: str | None = None
    boxed = _last_boxed(text)
    if boxed is not None and boxed.strip():
        candidate = boxed
    else:
        matches = _ANSWER_IS.findall(text)
        if matches:
            candidate = matches[-1]
    if candidate is None:
        return None
    answer = _strip(candidate)
    # "The answer is (B) because ..." / "The answer is 42 apples": keep the leading token when
    # the format says what an answer looks like.
    if fmt == "choice" or (fmt == "auto" and re.match(r"^(\([A-Pa-p]\)|[A-P]\))([\s.,:]|$)", answer)):
        m = re.match(r"^\(?\s*([A-Pa-p])\s*\)?(?:[\s.:,]|$)", answer)
        return m.group(1).upper() if m else None
    if fmt in ("auto", "number") and answer in _PLACEHOLDERS:
        return None  # the model copied the prompt's placeholder ("The answer is N")
    if fmt == "number":
        # "7 + 8 = 15" states 15: the number after the last "=" is the answer
        answer = answer.rsplit("=", 1)[-1].strip()
        m = _LEADING_NUMBER.match(answer)
        if not m or not re.search(r"\d", m.group(0)):
            return None
        return m.group(0).replace("$", "").replace(" ", "")
    return answer or None


def _as_fraction(answer: str) -> Fraction | None:
    s = answer.replace("$", "").replace(" ", "")
    if _NUMBER.match(s) and re.search(r"\d", s):
        return Fraction(s.replace(",", ""))
    m = _FRAC.match(s)
    if m:
        num, den = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den))
        return -value if s.startswith("-") and value > 0 else value
    return None


def normalize(answer: str) -> str:
    """A canonical spelling: equal spellings are certainly equivalent answers.

    Numbers become reduced fractions or integers (``"0.50"`` → ``"1/2"``, ``"1,000"`` →
    ``"1000"``), option letters become one capital letter; anything else is stripped of
    ``$``, ``\\boxed{}`` and surrounding space.

    Example:
        >>> normalize("0.5"), normalize("\\\\frac{1}{2}"), normalize("(b)")
        ('1/2', '1/2', 'B')
    """
    stripped = _strip(answer)
    m = _CHOICE.match(stripped)
    if m:
        return (m.group(1) or m.group(2)).upper()
    value = _as_fraction(stripped)
    if value is not None:
        return str(value)
    return stripped


_quiet_installed = False


def _quiet_math_verify() -> None:
    # math-verify warns on every call made without its signal-based timeout, which only works
    # in the main thread; we call it without one off the main thread.
    global _quiet_installed
    if not _quiet_installed:
        logging.getLogger("math_verify").addFilter(lambda r: "Timeout is disabled" not in r.getMessage())
        _quiet_installed = True


@lru_cache(maxsize=4096)
def _parsed(answer: str) -> tuple[Any, ...]:
    from math_verify import parse

    _quiet_math_verify()
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    return tuple(parse(f"${answer}$", parsing_timeout=timeout))


def equivalent(a: str, b: str) -> bool:
    """Whether two stated answers are the same answer.

    Example:
        >>> equivalent("0.5", "\\\\frac{1}{2}"), equivalent("(B)", "B"), equivalent("B", "C")
        (True, True, False)
    """
    na, nb = normalize(a), normalize(b)
    if na == nb:
        return True
    if _CHOICE.match(na) or _CHOICE.match(nb):
        return False  # a letter equals only the same letter
    if _as_fraction(na) is not None and _as_fraction(nb) is not None:
        return False  # two numbers with different canonical forms differ
    from math_verify import verify

    pa, pb = _parsed(na), _parsed(nb)
    if not pa or not pb:
        return False
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    return bool(verify(list(pa), list(pb), timeout_seconds=timeout)) and bool(
        verify(list(pb), list(pa), timeout_seconds=timeout)
    )


@dataclass
class AnswerGroup:
    """Equivalent answers: ``answer`` is the first-seen spelling, ``members`` their positions."""

    answer: str
    key: str
    members: list[int] = field(default_factory=list)


def group_answers(answers: list[str | None]) -> list[AnswerGroup]:
    """Group equivalent answers in first-seen order; ``None`` (no answer) joins no group.

    Example:
        >>> [(g.answer, g.members) for g in group_answers(["0.5", None, "1/2", "3"])]
        [('0.5', [0, 2]), ('3', [3])]
    """
    groups: list[AnswerGroup] = []
    by_key: dict[str, AnswerGroup] = {}
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        key = normalize(answer)
        group = by_key.get(key)
        if group is None:
            group = next((g for g in groups if equivalent(g.key, key)), None)
            if group is None:
                group = AnswerGroup(answer=answer, key=key)
                groups.append(group)
            by_key[key] = group
        group.members.append(i)
    return groups
