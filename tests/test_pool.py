"""Sample pools: built through the real graphs (on the fake server), durable, extendable, and
their exact curves agree with brute-force enumeration of subsets."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from graphs.evaluation.tasks import graded_arithmetic
from graphs.lab.pool import QuestionPool, bootstrap_band, pool_curves
from graphs.lab.pool_store import Pool
from tests.fakes import FakeServer

QUESTIONS = [{"qid": f"q{i}", "question": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)} for i in range(4)]


async def test_build_and_extend_a_pool(tmp_path: Path, fake: FakeServer) -> None:
    path = tmp_path / "pool.sqlite"
    with Pool(path) as pool:
        pool.add_questions(QUESTIONS)
        assert await pool.extend(3, fake.context(seed=100)) == 12
        assert await pool.extend(3, fake.context(seed=100)) == 0  # already complete: no calls
        calls_before = len(fake.requests)
        assert await pool.extend(6, fake.context(seed=100)) == 12
        assert len(fake.requests) > calls_before

    with Pool(path) as pool:  # reopened from disk
        q = pool.question("q1")
        assert q.size == 6 and q.correct == "3"
        # the fake is off by one on every third sample number (seed + choice): seeds 100.. give 101, 104
        assert q.answers == ["3", "4", "3", "3", "4", "3"]
        assert q.verdicts == ["correct", "wrong", "correct", "correct", "wrong", "correct"]
        seeds = [r[0] for r in pool._db.execute("SELECT seed FROM samples WHERE qid='q1' ORDER BY idx")]
        assert seeds == [100, 100, 100, 103, 103, 103]  # the extension continues the seeds
        ledger = pool.ledger()
        assert ledger["propose"]["calls"] == 24 and ledger["verify"]["calls"] == 24


async def test_pool_refuses_other_settings_and_other_answers(tmp_path: Path, fake: FakeServer) -> None:
    with Pool(tmp_path / "p.sqlite") as pool:
        pool.add_questions(QUESTIONS[:1])
        await pool.extend(2, fake.context(temperature=0.7))
        with pytest.raises(ValueError, match="temperature"):
            await pool.extend(4, fake.context(temperature=1.0))
        with pytest.raises(ValueError, match="another text or answer"):
            pool.add_questions([{**QUESTIONS[0], "answer": "99"}])


def brute_curve(answers: list[str | None], verdicts: list[str], correct: str, k: int) -> tuple[float, float]:
    def win(sample: list[str | None]) -> float:
        counts = Counter(a for a in sample if a is not None)
        if correct not in counts:
            return 0.0
        top = max(counts.values())
        tied = [a for a, c in counts.items() if c == top]
        return 1 / len(tied) if correct in tied else 0.0

    vote = filt = 0.0
    subsets = list(itertools.combinations(range(len(answers)), k))
    for s in subsets:
        vote += win([answers[i] for i in s])
        kept = [answers[i] for i in s if verdicts[i] == "correct" and answers[i] is not None]
        filt += win(kept) if kept else win([answers[i] for i in s])
    return vote / len(subsets), filt / len(subsets)


def test_pool_curves_agree_with_enumerating_every_subset() -> None:
    answers: list[str | None] = ["0.5", "2", "1/2", "2", None, "\\frac{1}{2}", "3", "2"]
    verdicts = ["correct", "wrong", "wrong", "correct", "correct", "wrong", "unparseable", "error"]
    q = QuestionPool("q", "question", "0.5", {}, answers, verdicts)  # type: ignore[arg-type]
    curves = pool_curves([q])
    canon = ["0.5" if a in ("0.5", "1/2", "\\frac{1}{2}") else a for a in answers]  # equivalent answers
    for j, k in enumerate(curves.ks):
        vote, filt = brute_curve(canon, verdicts, "0.5", k)
        assert curves.vote[0, j] == pytest.approx(vote, abs=1e-12)
        assert curves.filter_vote[0, j] == pytest.approx(filt, abs=1e-12)
    assert curves.pass_at[0, 0] == pytest.approx(3 / 8)
    assert curves.difficulty[0] == 0.0  # "2" and "0.5" both 3 of 8: a tie, neither easy nor hard


def test_bootstrap_band_brackets_the_mean() -> None:
    rows = np.array([[0.0, 1.0], [1.0, 1.0], [0.5, 1.0], [0.2, 1.0]])
    mean, low, high = bootstrap_band(rows, resamples=500)
    assert mean.tolist() == [0.425, 1.0]
    assert low[0] < mean[0] < high[0] and low[1] == high[1] == 1.0


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from graphs.lab.pool_store import Pool
    from graphs.evaluation.tasks import graded_arithmetic
    from tests.fakes import FakeServer, default_reply

    def slow(req):
        time.sleep(0.02)  # keep the build going long enough to be killed mid-way
        return default_reply(req)

    async def main():
        with Pool(sys.argv[1]) as pool:
            pool.add_questions(graded_arithmetic(10, levels=["1+1", "2+2"], seed=1))
            await pool.extend(4, FakeServer(reply=slow).context(seed=5), concurrency=2)

    asyncio.run(main())
    """
)


async def test_a_killed_build_loses_nothing_and_resumes(tmp_path: Path, fake: FakeServer) -> None:
    path = tmp_path / "pool.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], env=env)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and done < 4:
        time.sleep(0.05)
        if path.exists():
            try:
                with sqlite3.connect(path, timeout=5) as db:
                    done = db.execute("SELECT COUNT(DISTINCT qid) FROM samples").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 4 <= done < 20, "the build should have been killed mid-way"

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_question = dict(db.execute("SELECT qid, COUNT(*) FROM samples GROUP BY qid").fetchall())
    assert set(per_question.values()) == {4}  # whole questions only: nothing half-written

    with Pool(path) as pool:
        added = await pool.extend(4, fake.context(seed=5))
        assert added == 4 * (20 - len(per_question))
        assert all(pool.size(qid) == 4 for qid in pool.qids())
        for q in pool.questions():
            assert len(q.answers) == 4  # indices 0..3, no gap and no duplicate
    assert [q["qid"] for q in graded_arithmetic(10, levels=["1+1", "2+2"], seed=1)] == Pool(path).qids()


# -- held-out difficulty ----------------------------------------------------------------------


def test_cross_fitting_classifies_on_one_fold_and_measures_on_the_other() -> None:
    from graphs.lab.analysis import analyze_pool

    # q1: folds [4, 5] (a tie) and [4, 4] (easy); q2: folds [5, 4] (a tie) and [5, 5] (hard)
    q1 = QuestionPool("q1", "?", "4", {}, ["4", "4", "5", "4"], [None] * 4)
    q2 = QuestionPool("q2", "?", "4", {}, ["5", "5", "4", "5"], [None] * 4)
    inside = analyze_pool([q1, q2], difficulty="in-sample", fit_upto=3, resamples=50)
    assert inside.bands["Vote (easy)"][0].tolist()[-1] == 1.0  # circular: the easy item's own samples
    assert inside.bands["Vote (hard)"][0].tolist()[-1] == 0.0
    held = analyze_pool([q1, q2], difficulty="cross-fit", fit_upto=1, resamples=50)
    # q1 is easy by its second fold, so its first fold ([4, 5]) is measured: Vote@1 = Vote@2 = 1/2
    assert held.bands["Vote (easy)"][0] == pytest.approx([0.5, 0.5], abs=1e-12)
    assert held.bands["Vote (hard)"][0] == pytest.approx([0.5, 0.5], abs=1e-12)
    assert (held.n_easy, held.n_hard, held.n_tie) == (0.5, 0.5, 1.0)
    assert held.x("Vote (easy)").tolist() == [1, 2] and held.x("Vote").tolist() == [1, 2, 3, 4]
    assert len(held.laws) == 4 and held.law_ks.tolist() == [1, 2]
    assert [r["class (folds 1/2)"] for r in held.rows] == ["tie/easy", "tie/hard"]


def test_cross_fitted_classes_of_identical_items_do_not_separate() -> None:
    """Every item has the same answer distribution (the right answer 45%, one wrong answer 55%):
    in-sample, sampling noise alone makes some items "easy" with Vote@M = 1 and the rest "hard"
    with 0; cross-fitted, both classes measure what a vote of M/2 fresh samples does (0.41 at M/2 = 4)."""
    from graphs.lab.analysis import analyze_pool
    from graphs.lab.scaling import binary_vote_accuracy

    rng = np.random.default_rng(7)
    m = 8
    questions = [
        QuestionPool(f"q{i}", "?", "4", {}, ["4" if r < 0.45 else "5" for r in rng.random(m)], [None] * m)
        for i in range(300)
    ]
    inside = analyze_pool(questions, difficulty="in-sample", fit_laws=False, resamples=200)
    assert inside.bands["Vote (easy)"][0][-1] == 1.0 and inside.bands["Vote (hard)"][0][-1] == 0.0
    held = analyze_pool(questions, difficulty="cross-fit", fit_laws=False, resamples=200)
    truth = binary_vote_accuracy(0.45, m // 2)
    easy, hard = held.bands["Vote (easy)"][0][-1], held.bands["Vote (hard)"][0][-1]
    assert abs(easy - truth) < 0.1 and abs(hard - truth) < 0.1, (easy, hard, truth)
    assert abs(easy - hard) < 0.15


def test_bootstrap_ratio_band_is_the_pooled_mean_over_members() -> None:
    from graphs.lab.pool import bootstrap_ratio_band

    values = np.array([[1.0], [0.0], [1.5]])  # question 3 has two members, with curves 1.0 and 0.5
    weights = np.array([1.0, 0.0, 2.0])
    mean, low, high = bootstrap_ratio_band(values, weights, resamples=300)
    assert mean.tolist() == [2.5 / 3]
    assert low[0] <= mean[0] <= high[0]
