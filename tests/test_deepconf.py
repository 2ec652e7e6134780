"""DeepConf: token and trace confidence against the reference code, the offline vote, and the online
graph's stopping (low confidence, consensus) with a fake server whose confidences come from the
sample, streamed one word at a time."""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Any

import numpy as np
import pytest

from graphs.registry import get
from graphs.strategies.deepconf import (
    build_deepconf_graph,
    build_deepconf_online_graph,
    confidence_vote,
    online_threshold,
)
from nodes import ConfigError
from nodes.confidence import GroupMonitor, group_confidences, keep_most_confident, token_confidences, trace_confidence
from tests.fakes import FakeServer, Request, arithmetic_truth

# -- the reference code (facebookresearch/deepconf, deepconf/utils.py and processors.py), condensed ----------------


def ref_bottom_window(confs: list[float], window: int, bottom: float) -> float:
    if len(confs) < window:
        return float(np.mean(confs))
    means = [float(np.mean(confs[i : i + window])) for i in range(len(confs) - window + 1)]
    if bottom == -1:
        return min(means)
    num = max(1, int(len(means) * bottom))
    return min(means) if num == 1 else float(np.mean(np.partition(means, num - 1)[:num]))


def ref_tail(confs: list[float], tail: int) -> float:
    return float(np.mean(confs[-tail:] if len(confs) > tail else confs))


def ref_processor_stops_at(confs: list[float], threshold: float, window: int) -> int | None:
    """The token after which the reference logits processor forces EOS (None: never)."""
    group: deque[float] = deque(maxlen=window)
    for i, c in enumerate(confs):
        group.append(c)
        if len(group) >= window and sum(group) / len(group) < threshold:
            return i + 1
    return None


@pytest.mark.parametrize("seed", range(20))
def test_trace_confidences_match_the_reference_code(seed: int) -> None:
    rng = random.Random(seed)
    confs = [rng.uniform(0.1, 12.0) for _ in range(rng.randint(1, 80))]
    window = rng.choice([1, 4, 16, 2048])
    assert trace_confidence(confs, "lowest", window=window) == pytest.approx(ref_bottom_window(confs, window, -1))
    assert trace_confidence(confs, "bottom10", window=window) == pytest.approx(ref_bottom_window(confs, window, 0.1))
    assert trace_confidence(confs, "tail", window=window) == pytest.approx(ref_tail(confs, window))
    assert trace_confidence(confs, "mean", window=window) == pytest.approx(float(np.mean(confs)))
    threshold = rng.uniform(2.0, 10.0)
    monitor = GroupMonitor(threshold, window)
    stopped = next((i + 1 for i, c in enumerate(confs) if monitor.add(c)), None)
    assert stopped == ref_processor_stops_at(confs, threshold, window)


def test_group_confidences_are_the_sliding_means() -> None:
    confs = [float(x) for x in range(10)]
    assert group_confidences(confs, 3) == pytest.approx([np.mean(confs[i : i + 3]) for i in range(8)])
    assert group_confidences(confs, 20) == [4.5]
    assert group_confidences([], 3) == []
    with pytest.raises(ConfigError, match="window"):
        group_confidences(confs, 0)


def test_token_confidence_is_minus_the_mean_of_the_top_k_logprobs() -> None:
    entry = {"token": "a", "logprob": -0.1, "top_logprobs": [{"logprob": -0.1}, {"logprob": -3.0}, {"logprob": -5.9}]}
    assert token_confidences({"content": [entry]}) == [pytest.approx(3.0)]
    assert token_confidences({"content": [entry]}, 2) == [pytest.approx(1.55)]
    no_tops = {"token": "b", "logprob": -0.5, "top_logprobs": []}
    floor = {"token": "c", "logprob": -1.0, "top_logprobs": [{"logprob": float("-inf")}, {"logprob": -9999.0}]}
    assert token_confidences({"content": [no_tops, floor]}) == [pytest.approx(0.5), pytest.approx(100.0)]
    assert token_confidences(None) == [] and token_confidences({"content": None}) == []


@pytest.mark.parametrize("keep", [10, 33.3, 50, 90, 100])
def test_keeping_the_top_share_uses_numpys_percentile(keep: float) -> None:
    rng = random.Random(int(keep))
    confs = [rng.uniform(0, 10) for _ in range(17)]
    threshold = np.percentile(confs, 100 - keep)
    assert keep_most_confident(confs, keep) == [c >= threshold for c in confs]
    with pytest.raises(ConfigError, match="percentage"):
        keep_most_confident(confs, 0)


# -- the offline vote and graph --------------------------------------------------------------------


def test_confidence_vote_keeps_the_confident_and_weighs_them() -> None:
    cs: list[Any] = [
        {"index": 0, "answer": "5", "confidences": [2.0] * 4},
        {"index": 1, "answer": "5", "confidences": [2.0] * 4},
        {"index": 2, "answer": "6", "confidences": [9.0] * 4},
        {"index": 3, "answer": None, "confidences": [20.0] * 4},  # no answer: never votes, never kept
    ]
    assert confidence_vote(cs, keep=100, measure="mean")["answer"] == "6"  # 9 > 2 + 2
    assert confidence_vote(cs, keep=50, measure="mean")["kept"] == [0, 1, 2]  # the median is 2: ties are kept
    r = confidence_vote(cs, keep=30, measure="mean")
    assert r["answer"] == "6" and r["kept"] == [2]
    no_logprobs = [{k: v for k, v in c.items() if k != "confidences"} for c in cs]
    r = confidence_vote(no_logprobs)
    assert r["fallback"] and r["answer"] == "5"


def confident_when_wrong(req: Request, words: list[str]) -> list[float]:
    """The fake's samples off by one (sample % 3 == 2) are sure of themselves; the right ones hesitate."""
    return [9.0 if req.sample % 3 == 2 else 3.0] * len(words)


async def test_offline_graph_asks_for_logprobs_and_follows_the_confidences() -> None:
    fake = FakeServer(confidence=confident_when_wrong)
    out = await build_deepconf_graph(6, keep=10).compile().ainvoke({"question": "What is 2+3?"}, context=fake.context())
    assert all(b["logprobs"] is True and b["top_logprobs"] == 20 for b in fake.requests)
    assert out["answer"] == "6"  # the most confident samples are the wrong ones: DeepConf follows them
    assert out["decision"]["kept"] == [2, 5]  # the top 10% threshold is 9.0, and both at 9.0 are kept
    assert all(len(c["confidences"]) == c["tokens"] > 0 for c in out["candidates"])
    plain = (
        await build_deepconf_graph(6, keep=100, measure="mean")
        .compile()
        .ainvoke({"question": "What is 2+3?"}, context=fake.context())
    )
    assert plain["answer"] == "6"  # 2 × 9.0 against 4 × 3.0


# -- online ------------------------------------------------------------------------------------------


def solver_with_padding(req: Request) -> str:
    """Right on two samples of three; sample ``s`` thinks aloud for ``2 s`` words first."""
    truth = arithmetic_truth(req.prompt) or 0
    value = truth if req.sample % 3 != 2 else truth + 1
    return " ".join(["hmm"] * (2 * req.sample)) + f" so the answer is {value}."


def falls_when_wrong(req: Request, words: list[str]) -> list[float]:
    """Steady at 6; a wrong sample after the warm-up (5, 8, ...) falls to 1 from its fifth word."""
    return [1.0 if req.sample % 3 == 2 and req.sample > 2 and i >= 4 else 6.0 for i in range(len(words))]


async def test_online_stops_a_trace_whose_confidence_falls_and_counts_its_tokens() -> None:
    fake = FakeServer(reply=solver_with_padding, confidence=falls_when_wrong)
    graph = build_deepconf_online_graph(9, warmup=3, window=3, keep=90, wave_size=6).compile()
    out = await graph.ainvoke({"question": "What is 2+3?"}, context=fake.context())
    by = {c["index"]: c for c in out["candidates"]}
    assert sorted(by) == list(range(9))
    # the warm-up (0, 1, 2: two right, one wrong, all at 6.0) sets the bar at 6.0 and has no consensus;
    # streamed, the wrong samples 5 and 8 stop at their first group below it: tokens 3, 4, 5 (6, 6, 1)
    for i in (5, 8):
        assert by[i]["finish_reason"] == "stopped" and by[i]["answer"] is None and by[i]["tokens"] == 5
    assert out["decision"]["threshold"] == pytest.approx(6.0)
    assert out["answer"] == "5" and out["decision"]["stopped"] == [5, 8]
    streamed = [b for b in fake.requests if b.get("stream")]
    assert len(streamed) == 6 and all(b["top_logprobs"] == 20 for b in streamed)
    # the ledger holds what the stopped traces got, not what the fake would have sent
    words = {i: len(solver_with_padding(Request("What is 2+3?", i, 0, 1, None, None)).split()) for i in range(9)}
    expected = sum(words[i] for i in range(9) if i not in (5, 8)) + 2 * 5
    assert out["ledger"]["propose"]["completion_tokens"] == expected
    assert out["ledger"]["propose"]["calls"] == 9 and out["ledger"]["propose"]["requests"] == 1 + 6


async def test_online_stops_sampling_at_consensus_and_cancels_the_rest_of_the_wave() -> None:
    fake = FakeServer(
        reply=solver_with_padding, confidence=lambda req, words: [2.0 if req.sample == 2 else 6.0] * len(words)
    )
    graph = build_deepconf_online_graph(16, warmup=3, window=2, keep=100, consensus=0.9, wave_size=4).compile()
    out = await graph.ainvoke({"question": "What is 2+3?"}, context=fake.context())
    by = {c["index"]: c for c in out["candidates"]}
    # warm-up: 5 holds 6 + 6, 6 holds 2 (share 0.857); in the wave (3..6) sample 3 is the shortest and
    # finishes first with 5: 18 of 20 is 0.9, consensus, so 4, 5 and 6 are stopped mid-stream
    assert sorted(by) == list(range(7))
    assert by[3]["finish_reason"] == "stop" and by[3]["answer"] == "5"
    assert [by[i]["finish_reason"] for i in (4, 5, 6)] == ["cancelled"] * 3
    full = {i: len(solver_with_padding(Request("What is 2+3?", i, 0, 1, None, None)).split()) for i in range(7)}
    assert by[4]["tokens"] <= full[4] and all(by[i]["tokens"] < full[i] for i in (5, 6))  # 4 was at its last word
    assert out["answer"] == "5" and out["decision"]["cancelled"] == [4, 5, 6]
    assert len([b for b in fake.requests if b.get("stream")]) == 4  # one wave, no more
    assert out["ledger"]["propose"]["completion_tokens"] == sum(full[i] for i in range(4)) + sum(
        by[i]["tokens"] for i in (4, 5, 6)
    )


async def test_online_ends_after_the_warm_up_when_it_already_agrees() -> None:
    fake = FakeServer(reply=lambda req: "The answer is 5.", confidence=lambda req, words: [5.0] * len(words))
    out = await build_deepconf_online_graph(16, warmup=4).compile().ainvoke({"question": "q"}, context=fake.context())
    assert out["answer"] == "5" and not any(b.get("stream") for b in fake.requests)
    assert out["decision"]["threshold"] == pytest.approx(5.0)


def test_online_threshold_is_the_warm_up_percentile() -> None:
    warm: list[Any] = [{"confidences": [float(c)] * 3} for c in range(1, 11)]
    lowest = [float(c) for c in range(1, 11)]
    assert online_threshold(warm, keep=10, window=2) == pytest.approx(np.percentile(lowest, 90))
    assert online_threshold(warm, keep=90, window=2) == pytest.approx(np.percentile(lowest, 10))
    assert online_threshold([{"confidences": []}], keep=10, window=2) is None


def test_bad_options_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="warm-up"):
        build_deepconf_online_graph(4, warmup=8)
    with pytest.raises(ConfigError, match="consensus"):
        build_deepconf_online_graph(8, warmup=2, consensus=0.4)
    with pytest.raises(ConfigError, match="measure"):
        build_deepconf_graph(8, measure="median")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="top_logprobs"):
        build_deepconf_graph(8, top_logprobs=50)


def test_registered_with_their_options() -> None:
    offline, online = get("deepconf"), get("deepconf-online")
    assert offline.pooled == "deepconf" and online.pooled is None
    assert {o.flag for o in offline.options} >= {"--measure", "--keep", "--conf-window", "--top-logprobs"}
    assert online.options_at(8, {"warmup": 16})["warmup"] == 8  # the warm-up fits the budget
    assert math.isfinite(online.options_at(32, {})["warmup"])
