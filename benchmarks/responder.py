"""An OpenAI-compatible endpoint that answers instantly, for the overhead and memory benchmarks.

A bare HTTP/1.1 server on asyncio streams (keep-alive, ``Content-Length`` bodies): ``GET
/v1/models`` and ``POST /v1/chat/completions`` with ``n`` choices whose text states the sum in the
question ("What is 3 + 4?" → "... The answer is 7."), and usage counted in whitespace tokens. It
does as little as possible so that what a benchmark measures is the client. Run it in its own
process: ``python -m benchmarks.responder --port 8123``.

``--delay D`` makes each completion take ``D`` seconds, as a server generating would; with
``--jitter J`` each takes a random ``D × (1 ± J)`` instead, so that requests sent together do not
all come back together. ``GET /v1/stats`` says how many completions it has answered, their
delays in seconds in all, and the seconds they were held from the request read to the reply
made (Little's law: held seconds over a span of time are the mean number of requests in flight
at the server; held beyond the delays is the responder's own lateness).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time

_SUM = re.compile(rb"What is (\d+) \+ (\d+)")


def _completion(body: dict, raw: bytes) -> bytes:  # type: ignore[type-arg]
    n = int(body.get("n") or 1)
    m = _SUM.search(raw)
    value = int(m.group(1)) + int(m.group(2)) if m else 0
    text = f"Adding the two numbers gives {value}. The answer is {value}."
    prompt_tokens = sum(len(str(msg.get("content", "")).split()) for msg in body.get("messages", []))
    choice = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
    reply = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "bench"),
        "choices": [{"index": i, **choice} for i in range(n)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 9 * n, "total_tokens": prompt_tokens + 9 * n},
    }
    return json.dumps(reply).encode()


DELAY = 0.0  # seconds before each completion (tests that kill a run mid-way need it to take a while)
JITTER = 0.0  # each delay is DELAY × uniform(1 - JITTER, 1 + JITTER)
_random = random.Random(0)
_stats = {"answered": 0, "delay": 0.0, "held": 0.0}  # completions; their delays and time here, in seconds


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            raw = await reader.readexactly(length) if length else b""
            if path.endswith(b"/models"):
                payload = b'{"object":"list","data":[{"id":"bench","object":"model"}]}'
            elif path.endswith(b"/stats"):
                payload = json.dumps(_stats).encode()
            elif method == b"POST" and path.endswith(b"/chat/completions"):
                started = time.monotonic()
                delay = DELAY * _random.uniform(1 - JITTER, 1 + JITTER) if JITTER else DELAY
                if delay:
                    await asyncio.sleep(delay)
                payload = _completion(json.loads(raw), raw)
                _stats["answered"] += 1
                _stats["delay"] += delay
                _stats["held"] += time.monotonic() - started
            else:
                payload = b'{"error":{"message":"not found"}}'
            status = b"200 OK" if not payload.startswith(b'{"error"') else b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(payload)).encode() + b"\r\n\r\n" + payload
            )  # fmt: skip
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(_serve_connection, "127.0.0.1", port, backlog=1024)
    print(f"responder ready on {port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    global DELAY, JITTER
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each completion")
    parser.add_argument("--jitter", type=float, default=0.0, help="each delay is DELAY × (1 ± up to JITTER)")
    args = parser.parse_args()
    if not 0 <= args.jitter <= 1:
        parser.error("--jitter must be between 0 and 1")
    DELAY, JITTER = args.delay, args.jitter
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
