"""The peers benchmark's own parts: reading vLLM's counters, the interval, the decided sample's text."""

from __future__ import annotations

import pytest

from benchmarks.peers import counters, final_text, parse_metrics, wilson

METRICS = """\
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 244.0
vllm:prompt_tokens_created{engine="0",model_name="m"} 1.7965425074945266e+09
vllm:generation_tokens_total{engine="0",model_name="m"} 78.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 2.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 2.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="m"} 0.0
vllm:request_params_n_count{engine="0",model_name="m"} 1.0
vllm:iteration_tokens_total_count{engine="0",model_name="m"} 33.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 0.0
http_requests_total{handler="/v1/chat/completions",method="POST",status="2xx"} 1.0
process_cpu_seconds_total 10.37
"""


def test_metrics_are_read_with_their_labels() -> None:
    samples = parse_metrics(METRICS)
    assert (
        "vllm:request_success_total",
        {"engine": "0", "finished_reason": "length", "model_name": "m"},
        2.0,
    ) in samples
    assert ("process_cpu_seconds_total", {}, 10.37) in samples
    assert not any(name.startswith("#") for name, _, _ in samples)


def test_counters_sum_over_series_and_filter_by_label() -> None:
    got = counters(METRICS)
    assert got == {
        "prompt_tokens": 244.0,
        "cached_tokens": 0.0,
        "generation_tokens": 78.0,
        "sequences": 4.0,  # stop + length + abort
        "truncated": 2.0,
        "requests": 1.0,
        "steps": 33.0,
        "server_cpu": 10.37,
    }
    later = counters(METRICS.replace("} 78.0", "} 178.0"))
    assert later["generation_tokens"] - got["generation_tokens"] == 100.0


def test_wilson_interval() -> None:
    low, high = wilson(8, 16)
    assert low == pytest.approx(0.280, abs=1e-3) and high == pytest.approx(0.720, abs=1e-3)
    assert wilson(0, 8)[0] == 0.0 and wilson(8, 8)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)


def test_final_text_is_the_decided_sample() -> None:
    candidates = [{"index": i, "text": f"text {i}"} for i in range(3)]
    vote = {"candidates": candidates, "decision": {"answer": "7", "supporters": [2, 0]}}
    best = {"candidates": candidates, "decision": {"answer": "7", "supporters": [1], "chosen": 1}}
    none = {"candidates": candidates, "decision": {"answer": None, "supporters": []}}
    assert [final_text(vote), final_text(best), final_text(none)] == ["text 2", "text 1", ""]
