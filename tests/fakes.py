"""A fake OpenAI-compatible server at the transport seam (``httpx.MockTransport``).

Replies are *computed from the prompt* (and the request's seed and choice number), never
taken from an ordered list, because parallel ``Send`` branches reach the server in no fixed
order. Usage is counted in whitespace tokens so tests can check the ledger exactly.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from nodes import LLM, Endpoint, RunContext


@dataclass
class Request:
    prompt: str
    seed: int | None
    choice: int  # number of this choice within the request (0..n-1)
    n: int
    temperature: float | None
    max_tokens: int | None

    @property
    def sample(self) -> int:
        """A per-sample number: the seed plus the choice number."""
        return (self.seed or 0) + self.choice


Reply = Callable[[Request], str]
Fault = Callable[[dict[str, Any], int], int | None]  # (request body, request count) -> HTTP status or None


def tokens(text: str) -> int:
    return len(text.split())


def arithmetic_truth(prompt: str) -> int | None:
    m = re.search(r"What is (\d+) ?([+x*-]) ?(\d+)", prompt)
    if not m:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return {"+": a + b, "-": a - b, "x": a * b, "*": a * b}[op]


def policy(req: Request) -> str:
    """A fake solver: right on two samples of three, off by one on the third."""
    truth = arithmetic_truth(req.prompt)
    if truth is None:
        return "I do not know."
    value = truth if req.sample % 3 != 2 else truth + 1
    return f"Adding up step by step gives {value}. The answer is {value}."


def judge(req: Request) -> str:
    """A fake judge: [[correct]] iff the judged reply states the true answer."""
    m = re.search(r"\[User Question\]:(.*?)\n\[Answer\]:(.*?)\nInstruction:", req.prompt, re.S)
    if not m:
        return "No verdict."
    truth = arithmetic_truth(m.group(1))
    stated = re.search(r"The answer is (-?\d+)", m.group(2))
    ok = stated is not None and truth is not None and int(stated.group(1)) == truth
    return "Checking each step. " + ("[[correct]]" if ok else "[[wrong]]")


def default_reply(req: Request) -> str:
    if req.prompt.startswith("[User Question]:") and "conclude with either" in req.prompt:
        return judge(req)
    return policy(req)


def yes_no_logprobs(text: str) -> dict[str, Any]:
    """First-token logprobs of a one-word Yes/No reply: 0.9 for the word said, 0.1 for the other."""
    said = text.strip().split()[0] if text.strip() else "Yes"
    other = "No" if said.lower().startswith("y") else "Yes"
    top = [{"token": said, "logprob": math.log(0.9)}, {"token": other, "logprob": math.log(0.1)}]
    return {"content": [{"token": said, "logprob": math.log(0.9), "top_logprobs": top}]}


@dataclass
class FakeServer:
    """Answers ``/chat/completions`` and ``/models`` like vLLM, from a reply function.

    Attributes:
        reply: computes each choice's text from the request.
        fault: returns an HTTP status to fail a request with (or None to answer it).
        requests: every chat request body received, in arrival order.
    """

    reply: Reply = default_reply
    fault: Fault | None = None
    model: str = "fake-model"
    requests: list[dict[str, Any]] = field(default_factory=list)
    confidence: Callable[[Request, list[str]], list[float]] | None = None  # each word's token confidence
    streamed: list[int] = field(default_factory=list)  # words each streamed reply had, in request order

    def _token_logprobs(self, req: Request, text: str, k: int) -> dict[str, Any]:
        """Word-level logprobs whose top-``k`` mean is minus the word's confidence (:attr:`confidence`)."""
        if self.confidence is None:
            return yes_no_logprobs(text)
        words = text.split()
        confs = self.confidence(req, words)
        return {"content": [{"token": w, "logprob": -c, "top_logprobs": [{"token": w, "logprob": -c}] * max(k, 1)}
                            for w, c in zip(words, confs, strict=True)]}  # fmt: skip

    def _stream(self, req: Request, text: str, body: dict[str, Any], prompt_tokens: int) -> httpx.Response:
        """The reply as Server-Sent Events: one chunk a word, usage in every chunk (vLLM's continuous usage)."""
        words = text.split()
        logprobs = (
            self._token_logprobs(req, text, body.get("top_logprobs") or 0)["content"] if body.get("logprobs") else []
        )
        self.streamed.append(len(words))
        lines = []
        for i, w in enumerate(words):
            choice: dict[str, Any] = {"index": 0, "delta": {"content": (" " if i else "") + w}, "finish_reason": None}
            if logprobs:
                choice["logprobs"] = {"content": [logprobs[i]]}
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": i + 1}
            lines.append("data: " + json.dumps({"choices": [choice], "usage": usage}))
        done = {"index": 0, "delta": {}, "finish_reason": "stop"}
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words)}
        lines.append("data: " + json.dumps({"choices": [done], "usage": usage}))
        lines.append("data: [DONE]")

        async def events() -> AsyncIterator[bytes]:
            for line in lines:  # one event at a time, letting other streams run in between
                await asyncio.sleep(0)
                yield (line + "\n\n").encode()

        return httpx.Response(200, content=events(), headers={"content-type": "text/event-stream"})

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": self.model, "object": "model"}]})
        body = json.loads(request.content)
        self.requests.append(body)
        if self.fault and (status := self.fault(body, len(self.requests))):
            return httpx.Response(status, json={"error": {"message": f"injected HTTP {status}"}})
        prompt = "\n".join(str(m["content"]) for m in body["messages"])
        n = body.get("n") or 1
        texts = [
            self.reply(
                Request(
                    prompt,
                    body.get("seed"),
                    i,
                    n,
                    body.get("temperature"),
                    body.get("max_completion_tokens", body.get("max_tokens")),
                )
            )
            for i in range(n)
        ]
        if body.get("stream"):
            req = Request(prompt, body.get("seed"), 0, 1, body.get("temperature"), body.get("max_completion_tokens"))
            return self._stream(req, texts[0], body, tokens(prompt))
        requests = [
            Request(prompt, body.get("seed"), i, n, body.get("temperature"), body.get("max_completion_tokens"))
            for i in range(n)
        ]
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": self.model,
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": t},
                        "finish_reason": "stop",
                        **(
                            {"logprobs": self._token_logprobs(requests[i], t, body.get("top_logprobs") or 0)}
                            if body.get("logprobs")
                            else {}
                        ),
                    }
                    for i, t in enumerate(texts)
                ],
                "usage": {
                    "prompt_tokens": tokens(prompt),
                    "completion_tokens": sum(tokens(t) for t in texts),
                    "total_tokens": tokens(prompt) + sum(tokens(t) for t in texts),
                },
            },
        )

    def llm(self, **endpoint: Any) -> LLM:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        return LLM(Endpoint(base_url="http://fake.test/v1", model=self.model, **endpoint), http_async_client=client)

    def context(self, *, endpoint: dict[str, Any] | None = None, **settings: Any) -> RunContext:
        return RunContext(llm=self.llm(**(endpoint or {})), **settings)

    def calls_for(self, marker: str) -> int:
        """How many samples were requested with ``marker`` in the prompt."""
        return sum((b.get("n") or 1) for b in self.requests if any(marker in str(m["content"]) for m in b["messages"]))
