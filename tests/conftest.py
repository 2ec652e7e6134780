"""Shared fixtures: the fake server for unit tests and the real local vLLM for ``live`` tests.

Live tests use the endpoint in ``TTC_TEST_BASE_URL``/``TTC_TEST_MODEL`` when set; otherwise
they start the embedded server once per session with the small SmolLM2 model (fast, fluent and
wrong at arithmetic, so live tests assert behaviour, not correct answers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from nodes import Endpoint
from nodes.server import EmbeddedServer
from tests.fakes import FakeServer

LIVE_MODEL = os.environ.get("TTC_TEST_SERVER_MODEL", "smollm2-135m")
# fp32, not the machine's choice: on a CPU with AMX, bf16 results depend on the batch a sequence runs in, so a
# seeded sample retried alone differs from the same sample batched (the fault tests compare such runs).
LIVE_DTYPE = os.environ.get("TTC_TEST_SERVER_DTYPE", "float32")


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture(scope="session")
def live_server() -> Iterator[EmbeddedServer | None]:
    if os.environ.get("TTC_TEST_BASE_URL"):
        yield None
        return
    with EmbeddedServer(LIVE_MODEL, dtype=LIVE_DTYPE) as server:
        yield server


@pytest.fixture(scope="session")
def live_endpoint(live_server: EmbeddedServer | None) -> Endpoint:
    if live_server is None:
        return Endpoint(base_url=os.environ["TTC_TEST_BASE_URL"], model=os.environ["TTC_TEST_MODEL"])
    return live_server.endpoint()
