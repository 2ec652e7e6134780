"""The ``ttc`` command: ``ttc run`` answers a question with a strategy graph; ``ttc serve``
runs the embedded vLLM server in the foreground; ``ttc gateway`` serves every strategy behind an
OpenAI-compatible API (:mod:`graphs.serving.openai_api`) in the foreground.

With no endpoint configured (``--base-url`` or ``TTC_BASE_URL``), ``ttc run`` starts the
embedded server for the run and stops it afterwards. User mistakes and endpoint failures end
with one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

from graphs.cli.evaluate import _evaluate, format_eval
from graphs.cli.parser import build_parser
from graphs.cli.run import _endpoint, _run, format_result
from nodes.errors import ConfigError, EndpointError, ServerError, TTCError
from nodes.server import EmbeddedServer

__all__ = ["amain", "main"]


def _serve(args: argparse.Namespace) -> None:
    server = EmbeddedServer(
        args.model,
        port=args.port,
        dtype=args.dtype,
        bind=args.bind,
        kv_cache_memory=args.kv_cache,
        openmp=args.openmp,
        log=sys.stderr,
    )
    with server:
        print(f"serving {server.model.served_name} at {server.base_url}", flush=True)
        print(
            f"use it with: TTC_BASE_URL={server.base_url} TTC_MODEL={server.model.served_name} ttc run ...", flush=True
        )
        try:
            while server.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("ttc: stopping the server", file=sys.stderr, flush=True)
            return  # Ctrl-C is how a foreground server is meant to stop; `with` stops it
        raise ServerError(f"vLLM stopped unexpectedly (log: {server.log_path})")


def _gateway(args: argparse.Namespace) -> None:
    import uvicorn
    from pydantic import SecretStr

    from graphs.serving.openai_api import GatewaySettings, create_app
    from nodes.endpoint import LLM

    if args.run_timeout <= 0:
        raise ConfigError("--run-timeout must be positive")
    key = os.environ.get(args.api_key_env)
    with _endpoint(args) as endpoint:

        async def check() -> None:
            async with LLM(endpoint) as llm:
                await llm.check()

        asyncio.run(check())  # an unreachable upstream ends here, with one line
        settings = GatewaySettings(
            endpoint=endpoint, api_key=SecretStr(key) if key else None, max_runs=args.max_runs,
            run_timeout=args.run_timeout, defaults={"answer_format": args.answer_format, "max_tokens": args.max_tokens},
            log=None if args.quiet else sys.stderr,
        )  # fmt: skip
        print(f"ttc gateway: strategies on {endpoint.model} at {endpoint.base_url}, served at "
              f"http://{args.host}:{args.port}/v1 (model names: <strategy>[-<k>][/{endpoint.model}]; "
              f"API key: {'required' if key else 'none'})", file=sys.stderr, flush=True)  # fmt: skip
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False)


def _sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ttc`` with ``argv`` (default the command line); returns the exit status."""
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like Ctrl-C, so the embedded server is stopped on the way out.
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.command == "serve":
            _serve(args)
            return 0
        if args.command == "gateway":
            _gateway(args)
            return 0
        return asyncio.run(_command(args))
    except TTCError as exc:
        return _failed(exc)
    except KeyboardInterrupt:
        print("ttc: interrupted", file=sys.stderr)
        return 130


async def amain(argv: Sequence[str]) -> int:
    """``ttc run`` or ``ttc eval`` from within a running event loop (a notebook cell, an app):
    ``await amain(["eval", ...])``. The same flags, output and exit status as the command, and the
    strategies registered in this process (:func:`graphs.registry.register`) are available to it.
    (``ttc serve`` runs in the foreground: use the command.)"""
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "gateway"):
        return _failed(ConfigError(f"ttc {args.command} runs in the foreground: start it from the command line"))
    try:
        return await _command(args)
    except TTCError as exc:
        return _failed(exc)


async def _command(args: argparse.Namespace) -> int:
    """``ttc run`` or ``ttc eval``: prints the result; raises :class:`TTCError` for a failure."""
    if args.command == "eval":
        report, res, sel = await _evaluate(args)
        print(json.dumps(report, indent=2) if args.json else format_eval(report, res, sel))
        return 0
    if not args.question.strip():
        raise ConfigError("the question is empty")
    result = await _run(args)
    if not result.get("candidates") and result.get("failures"):  # nothing came back: the run failed
        first = result["failures"][0]
        raise EndpointError(first["message"], status=first["status"])
    print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else format_result(result))
    return 0


def _failed(exc: TTCError) -> int:
    print(f"ttc: error: {' '.join(str(exc).split())}", file=sys.stderr)
    return 2 if isinstance(exc, ConfigError) else 1


if __name__ == "__main__":
    sys.exit(main())
