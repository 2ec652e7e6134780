from __future__ import annotations

from langgraph.runtime import Runtime

from nodes.propose import ANSWER_INSTRUCTIONS, propose
from tests.fakes import FakeServer


async def test_one_request_with_n_samples(fake: FakeServer) -> None:
    ctx = fake.context(seed=10, temperature=0.9, max_tokens=77)
    out = await propose({"question": "What is 20+22?", "first_index": 3, "n": 4}, Runtime(context=ctx))

    (body,) = fake.requests
    # langchain-openai sends max_tokens as max_completion_tokens, which vLLM honours
    assert (body["n"], body["seed"], body["temperature"], body["max_completion_tokens"]) == (4, 13, 0.9, 77)
    assert body["messages"][0]["content"] == "What is 20+22?\n\n" + ANSWER_INSTRUCTIONS["auto"]
    # the fake is right unless (seed + choice) % 3 == 2: samples 13..16 -> choices 1 and 4 are off by one
    assert [(c["index"], c["answer"]) for c in out["candidates"]] == [(3, "42"), (4, "43"), (5, "42"), (6, "42")]
    assert all(c["seed"] == 13 and c["finish_reason"] == "stop" for c in out["candidates"])
    prompt_tokens = len(body["messages"][0]["content"].split())
    completion_tokens = sum(len(c["text"].split()) for c in out["candidates"])
    assert out["ledger"] == {
        "propose": {"requests": 1, "calls": 4, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    }
    assert "failures" not in out


async def test_answer_format_changes_prompt_and_extraction() -> None:
    fake = FakeServer(reply=lambda req: "Option two fits. The answer is (B).")
    out = await propose(
        {"question": "Pick one.", "first_index": 0, "n": 1}, Runtime(context=fake.context(answer_format="choice"))
    )
    assert ANSWER_INSTRUCTIONS["choice"] in fake.requests[0]["messages"][0]["content"]
    assert out["candidates"][0]["answer"] == "B"


async def test_missing_choices_become_a_failure_not_a_gap() -> None:
    fake = FakeServer()
    original = fake.handler

    def two_of_n(request):  # type: ignore[no-untyped-def]
        response = original(request)
        if request.url.path.endswith("/chat/completions"):
            data = response.json()
            data["choices"] = data["choices"][:2]
            return type(response)(200, json=data)
        return response

    fake.handler = two_of_n  # type: ignore[method-assign]
    out = await propose({"question": "What is 1+1?", "first_index": 0, "n": 5}, Runtime(context=fake.context()))
    assert [c["index"] for c in out["candidates"]] == [0, 1]
    said = "server returned 2 of 5 samples"
    assert out["failures"] == [
        {"node": "propose", "indices": [2, 3, 4], "error": said, "message": said, "status": None, "transient": False}
    ]
