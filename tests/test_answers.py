from __future__ import annotations

import pytest

from nodes.answers import equivalent, extract_answer, group_answers, normalize


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("6 x 7 = 42. The answer is 42.", "auto", "42"),
        ("The answer is 41.\nWait, recount: the answer is 42", "auto", "42"),  # the last statement counts
        ("so $\\boxed{\\frac{1}{2}}$ is it", "auto", "\\frac{1}{2}"),
        ("\\boxed{x^{2}+1}", "math", "x^{2}+1"),
        ("Thus the answer is (B) because of friction.", "choice", "B"),
        ("The answer is (b).", "auto", "B"),
        ("Final answer: 1,000 apples", "number", "1,000"),
        ("#### 18", "auto", "18"),
        ("The answer is $-3.5$.", "number", "-3.5"),
        ("I think it is probably 42 or so.", "auto", None),  # states no answer: not guessed
        ("The answer is N.", "number", None),  # the prompt's placeholder copied
        ("Therefore, the answer is N = 15.", "number", "15"),  # ... and assigned
        ("Therefore, the answer is \\(\\boxed{15}\\).", "number", "15"),
        ("", "auto", None),
        ("The answer is (Q)", "choice", None),
    ],
)
def test_extract_answer(text: str, fmt: str, expected: str | None) -> None:
    assert extract_answer(text, fmt) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b"),
    [("0.5", "\\frac{1}{2}"), ("(B)", "B"), ("(b)", "B"), ("1,000", "1000"), ("42", "42.0"), ("\\boxed{3}", "3"),
     ("$12$", "12"), ("\\dfrac{3}{4}", "0.75"), ("x+1", "1+x"), ("\\sqrt{4}", "2")],
)  # fmt: skip
def test_equivalent(a: str, b: str) -> None:
    assert equivalent(a, b)
    assert equivalent(b, a)


@pytest.mark.parametrize(("a", "b"), [("B", "C"), ("0.5", "0.25"), ("42", "41"), ("A", "1"), ("x+1", "x+2")])
def test_not_equivalent(a: str, b: str) -> None:
    assert not equivalent(a, b)


def test_normalize_canonical_forms() -> None:
    assert [normalize(x) for x in ["0.50", "\\frac{2}{4}", "1,000", "(c)", "$7$."]] == ["1/2", "1/2", "1000", "C", "7"]


def test_group_answers_merges_equivalents_in_first_seen_order() -> None:
    groups = group_answers(["\\frac{1}{2}", "3", None, "0.5", "3.0", "x"])
    assert [(g.answer, g.members) for g in groups] == [("\\frac{1}{2}", [0, 3]), ("3", [1, 4]), ("x", [5])]


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("The answer is 7 + 8 = 15.", "number", "15"),
        ("The answer is 3/4.", "number", "3/4"),
        ("The correct answer is (B).", "auto", "B"),
        ("The final answer is 12.", "number", "12"),
        ("The answer is N, 122.", "number", "122"),
        ("The answer is N, which is 11.", "number", "11"),
        ("So the answer is N: 9", "number", "9"),
    ],
)
def test_extraction_of_restated_answers(text: str, fmt: str, expected: str) -> None:
    assert extract_answer(text, fmt) == expected  # type: ignore[arg-type]


def test_a_lowercase_letter_alone_is_not_an_option() -> None:
    assert normalize("e") == "e" and not equivalent("e", "E")  # Euler's e, not option E
