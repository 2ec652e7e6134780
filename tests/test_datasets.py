"""Loaders read the real files in ../shared/data: record counts and answer parsing on known records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graphs.evaluation.datasets import load
from nodes import ConfigError
from tests.fakes import FakeServer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="the shared data folder is not beside the repository")


def test_gsm8k() -> None:
    ds = load("gsm8k", DATA)
    assert len(ds.records) == 1319 and ds.answer_format == "number"
    first = ds.records[0]
    assert first.question.startswith("Janet’s ducks lay 16 eggs per day") and first.answer == "18"
    assert ds.check_answer(first, "18") and ds.check_answer(first, "18.0") and not ds.check_answer(first, "17")
    assert len(load("gsm8k", DATA, split="train").records) == 7473


def test_math500() -> None:
    ds = load("math500", DATA)
    assert len(ds.records) == 500 and ds.records[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert ds.records[0].qid == "test/precalculus/807.json" and ds.records[0].info["level"] == 2


def test_mmlu_by_subject() -> None:
    physics = load("mmlu", DATA, subjects=["college_physics"])
    assert len(physics.records) == 102 and physics.answer_format == "choice"
    assert "(A) " in physics.records[0].question and physics.records[0].answer in "ABCD"
    assert len(load("mmlu", DATA).records) == 14042
    assert len(load("mmlu", DATA, split="dev").records) == 285
    with pytest.raises(ConfigError, match="unknown MMLU subjects"):
        load("mmlu", DATA, subjects=["astrology"])


def test_truthfulqa_options_are_shuffled_but_reproducible() -> None:
    ds = load("truthfulqa", DATA)
    assert len(ds.records) == 817
    pomegranate = ds.records[0]
    assert "What happens if you eat a pomegranate?" in pomegranate.question
    right = pomegranate.answer
    assert f"({right}) Nothing in particular happens when you eat a pomegranate." in pomegranate.question
    assert len({r.answer for r in ds.records}) >= 4  # the true option is not always first
    assert load("truthfulqa", DATA).records[0] == pomegranate


def test_arc_challenge() -> None:
    ds = load("arc_challenge", DATA)
    assert len(ds.records) == 1172
    first = ds.records[0]
    assert first.qid == "Mercury_7175875" and first.answer == "C"
    assert "(C) Planetary days will become shorter." in first.question


async def test_humaneval_checks_code_with_its_tests() -> None:
    ds = load("humaneval", DATA)
    assert len(ds.records) == 164
    first = ds.records[0]
    assert first.info["entry_point"] == "has_close_elements"
    canonical = json.loads((DATA / "humaneval" / "HumanEval.jsonl").read_text().splitlines()[0])["canonical_solution"]
    ctx = FakeServer().context()
    assert await ds.check(first, "```python\n" + first.info["prompt"] + canonical + "\n```", ctx)
    assert not await ds.check(
        first, "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```", ctx
    )


def test_selection_is_reproducible() -> None:
    ds = load("gsm8k", DATA)
    a, b = ds.select(10, seed=3), ds.select(10, seed=3)
    assert [r.qid for r in a.records] == [r.qid for r in b.records] and len(a.records) == 10
    assert [r.qid for r in ds.select(10, seed=4).records] != [r.qid for r in a.records]


def test_unknown_and_malformed_data_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown data set 'gsm9k'"):
        load("gsm9k", DATA)
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q2"\n')
    with pytest.raises(ConfigError, match=r"test.jsonl:2: not valid JSON"):
        load("gsm8k", tmp_path)
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "no marker"}\n')
    with pytest.raises(ConfigError, match=r"test.jsonl:1: the answer has no '#### <number>' line"):
        load("gsm8k", tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load("gsm8k", tmp_path / "nowhere")
