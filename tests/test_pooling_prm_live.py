"""The PRM client end to end against the embedded vLLM started in pooling mode (live; runs in CI).

The small generative model stands in for a PRM: ``classifier_from_token`` builds its two-class head
from the model's own "no" and "yes" rows of the LM head, so a step's score is P("yes" | "no" or "yes")
at the step's last token. (Without it, vLLM's converted head is uninitialised memory: the scores
change from start to start and are sometimes NaN, which once failed CI.) The scores say little about
correctness at 135M parameters; what is real is the path: vLLM's ``/pooling`` (token_classify) and
``/tokenize`` over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from nodes import Endpoint, PermanentEndpointError
from nodes.scorers import PoolingPRM
from nodes.server import EmbeddedServer
from tests.conftest import LIVE_DTYPE, LIVE_MODEL
from tests.fakes import FakeServer

pytestmark = pytest.mark.live

YES_NO_HEAD = json.dumps({"classifier_from_token": ["no", "yes"], "method": "no_post_processing"})
POOLING = ("--runner", "pooling", "--convert", "classify", "--hf-overrides", YES_NO_HEAD)
POOLING += ("--pooler-config", '{"task": "token_classify"}')


@pytest.fixture(scope="module")
def prm_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(LIVE_MODEL, dtype=LIVE_DTYPE, extra_args=POOLING) as server:
        yield server


QUESTION = "What is 25 + 32?"
SOLUTION = "First add the tens: 20 + 30 = 50.\n\nThen the ones: 5 + 2 = 7.\n\nThe answer is 57."
WRONG = "Add 25 and 32 digit by digit.\n\nThe answer is 67."


async def test_pooling_prm_scores_every_step_over_http(prm_server: EmbeddedServer) -> None:
    ctx = FakeServer().context()
    async with PoolingPRM(prm_server.base_url, prm_server.model.served_name) as prm:
        scored = await prm.score(QUESTION, SOLUTION, ctx)
        again = await prm.score(QUESTION, SOLUTION, ctx)
    assert len(scored.steps) == 3
    assert all(s is not None and 0.0 < s < 1.0 for s in scored.steps)
    assert again.steps == pytest.approx(scored.steps, abs=1e-4)  # a real head, not whatever memory held
    usage = scored.usage["verify"]
    assert usage["requests"] == 1 and usage["calls"] == 1 and usage["prompt_tokens"] > 20


async def test_pooling_prm_scores_a_wave_in_one_request(prm_server: EmbeddedServer) -> None:
    ctx = FakeServer().context()
    async with PoolingPRM(prm_server.base_url, prm_server.model.served_name) as prm:
        alone = [await prm.score(QUESTION, s, ctx) for s in (SOLUTION, WRONG)]
        wave = await prm.score_many(QUESTION, [SOLUTION, WRONG], ctx)
    assert [len(s.steps) for s in wave] == [3, 2]
    for batched, single in zip(wave, alone, strict=True):
        assert batched.steps == pytest.approx(single.steps, abs=1e-3)  # fp32: batching barely moves a score
    usage = [s.usage["verify"] for s in wave]
    assert [u["requests"] for u in usage] == [1, 0]  # one request: vLLM's /pooling took the list
    assert sum(u["prompt_tokens"] for u in usage) == sum(s.usage["verify"]["prompt_tokens"] for s in alone)


async def test_pooling_prm_on_a_generating_server_fails_with_one_clear_error(live_endpoint: Endpoint) -> None:
    async with PoolingPRM(live_endpoint.base_url, live_endpoint.model) as prm:
        with pytest.raises(PermanentEndpointError, match="answered HTTP 404"):  # no pooling route on a generator
            await prm.score("q", "one step", FakeServer().context())
