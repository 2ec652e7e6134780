"""Questions sent through an optillm 0.4.0 proxy, for ``benchmarks/peers.py``.

Run by the peers' own venv python (never imported by this project): a JSON request on stdin, a
JSON report on stdout. The proxy is already running (``benchmarks/peers.py`` starts it in front of
the vLLM server); this is what an optillm user's client does: one chat request per question with
the approach as the model-name prefix (``majority_voting-MODEL``, ``bon-MODEL``), ``concurrency``
questions in flight at once (threads, as the proxy itself is a threaded Flask server).

Request::

    {"base_url": "http://127.0.0.1:PROXY/v1", "model": "majority_voting-MODEL", "prompts": ["..."],
     "temperature": 0.7, "max_tokens": 384, "concurrency": 4, "extra_body": {"k": 8}}

Report::

    {"results": [{"text": "...", "usage": {...} | null, "error": null}],
     "seconds": wall seconds of the work, "cpu_seconds": this process's CPU seconds for it}
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI


def main(request: dict) -> dict:
    # Not "sk-...": the proxy then uses its own client for the upstream base URL.
    client = OpenAI(base_url=request["base_url"], api_key="none", max_retries=0, timeout=1800.0)

    def one(prompt: str) -> dict:
        try:
            reply = client.chat.completions.create(
                model=request["model"],
                messages=[{"role": "user", "content": prompt}],
                temperature=request["temperature"],
                max_tokens=request["max_tokens"],
                extra_body=request.get("extra_body") or None,
            )
        except Exception as exc:  # a failed question is reported, not fatal to the batch
            return {"text": "", "usage": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
        usage = reply.usage.model_dump() if reply.usage else None
        return {"text": reply.choices[0].message.content or "", "usage": usage, "error": None}

    start, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(request["concurrency"]) as pool:
        results = list(pool.map(one, request["prompts"]))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    client.close()
    return {"results": results, "seconds": seconds, "cpu_seconds": cpu}


if __name__ == "__main__":
    json.dump(main(json.load(sys.stdin)), sys.stdout)
