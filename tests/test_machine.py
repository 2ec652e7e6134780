"""The embedded server's settings follow the machine: dtype from the CPU's bf16 support, binding from its size,
the KV cache from free memory; every choice can be overridden and a bad override is one ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodes import machine
from nodes.errors import ConfigError
from nodes.machine import CPU, ServerSettings, choose_settings, memory_available, parse_size
from nodes.server import EmbeddedServer

EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx avx2 fma f16c bmi2
"""
SAPPHIRE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C
flags\t\t: fpu avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes sve bf16 i8mm
"""
GIB = 1 << 30


def cpu(text: str, cpus: tuple[int, ...] = (0, 1)) -> CPU:
    read = CPU.read(text)
    return CPU(model=read.model, flags=read.flags, cpus=cpus)


def test_reads_the_model_and_flags_from_cpuinfo() -> None:
    c = cpu(EPYC)
    assert c.model == "AMD EPYC 7B13"
    assert "avx2" in c.flags and not c.native_bf16
    assert c.describe() == "AMD EPYC 7B13, 2 CPUs (0-1), flags: avx2"
    assert cpu(SAPPHIRE).native_bf16
    assert cpu(GRAVITON).native_bf16  # Arm names it in Features


def test_this_machine_is_read() -> None:
    c = CPU.read()
    assert c.cpus and c.model


@pytest.mark.parametrize(("text", "dtype"), [(EPYC, "float32"), (SAPPHIRE, "bfloat16"), (GRAVITON, "bfloat16")])
def test_bf16_only_where_the_cpu_has_it(text: str, dtype: str) -> None:
    s = choose_settings(cpu=cpu(text), free_memory=16 * GIB)
    assert s.dtype == dtype
    assert s.args()[:2] == ["--dtype", dtype]
    assert ("no native bf16" in s.describe()) == (dtype == "float32")


def test_every_cpu_computes_on_a_small_machine_and_vllm_binds_a_large_one() -> None:
    small = choose_settings(cpu=cpu(EPYC, (0, 1)), free_memory=16 * GIB, openmp="gnu")
    assert small.bind == "0-1"
    assert small.env() == {"VLLM_CPU_OMP_THREADS_BIND": "0-1"}
    # An affinity mask with holes binds exactly the CPUs this process may use.
    assert choose_settings(cpu=cpu(EPYC, (2, 3, 5)), free_memory=16 * GIB).bind == "2-3,5"
    large = choose_settings(cpu=cpu(EPYC, tuple(range(32))), free_memory=16 * GIB, openmp="gnu")
    assert large.bind == "auto"
    assert large.env() == {"VLLM_CPU_OMP_THREADS_BIND": "auto"}
    assert "one reserved" in large.describe()


def test_kv_cache_is_a_quarter_of_what_is_free_after_the_weights_within_bounds() -> None:
    c = cpu(EPYC)
    assert choose_settings(cpu=c, free_memory=10 * GIB, weight_bytes=GIB).kv_cache_bytes == 2 * GIB
    assert choose_settings(cpu=c, free_memory=200 * GIB, weight_bytes=GIB).kv_cache_bytes == 4 * GIB
    assert choose_settings(cpu=c, free_memory=GIB, weight_bytes=GIB).kv_cache_bytes == 512 << 20


def test_memory_available_reads_meminfo() -> None:
    assert memory_available("MemTotal: 100 kB\nMemAvailable:   2048 kB\n") == 2 << 20
    assert memory_available("MemTotal: 100 kB\n") is None


def test_overrides_win_and_say_so() -> None:
    s = choose_settings(dtype="fp32", bind="vllm", kv_cache="2G", openmp="gnu", cpu=cpu(SAPPHIRE), free_memory=16 * GIB)
    assert s == ServerSettings(dtype="float32", bind="auto", kv_cache_bytes=2 * GIB, openmp=None)
    assert s.describe().count("as asked") == 4
    assert choose_settings(bind="0,2-3", cpu=cpu(EPYC), free_memory=GIB).bind == "0,2-3"
    assert choose_settings(bind="all", cpu=cpu(EPYC, tuple(range(32))), free_memory=GIB).bind == "0-31"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "float16"}, "unknown dtype 'float16'"),
        ({"bind": "both"}, "unknown thread binding 'both'"),
        ({"kv_cache": "lots"}, "not a size: 'lots'"),
        ({"kv_cache": "0"}, "must be positive"),
        ({"openmp": "llvm"}, "unknown OpenMP runtime 'llvm'"),
    ],
)
def test_bad_overrides_are_one_config_error(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        choose_settings(cpu=cpu(EPYC), free_memory=GIB, **kwargs)


def test_parse_size() -> None:
    assert parse_size("1.5G") == 3 * GIB // 2
    assert parse_size("256MiB") == 256 << 20


def test_the_embedded_server_takes_its_settings_before_it_starts() -> None:
    server = EmbeddedServer("smollm2-135m", dtype="float32", bind="vllm", kv_cache_memory="1G", openmp="gnu")
    assert not server.running
    assert server.settings == ServerSettings(dtype="float32", bind="auto", kv_cache_bytes=GIB)
    with pytest.raises(ConfigError, match="unknown dtype"):
        EmbeddedServer("smollm2-135m", dtype="half")


def test_intel_openmp_is_preloaded_where_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "libiomp5.so"
    lib.parent.mkdir()
    lib.write_bytes(b"")
    monkeypatch.setattr(machine.sys, "prefix", str(tmp_path))
    assert machine.intel_openmp() == str(lib)
    s = choose_settings(cpu=cpu(EPYC), free_memory=GIB)
    assert s.openmp == str(lib) and "Intel OpenMP: installed" in s.describe()
    # It goes first in LD_PRELOAD; another OpenMP runtime there is dropped, anything else kept.
    env = s.env({"LD_PRELOAD": "/usr/lib/libgomp.so.1:/opt/libfoo.so"})
    assert env["LD_PRELOAD"] == f"{lib}:/opt/libfoo.so"
    assert "LD_PRELOAD" not in choose_settings(openmp="gnu", cpu=cpu(EPYC), free_memory=GIB).env()


def test_intel_openmp_asked_for_but_missing_is_one_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "intel_openmp", lambda: None)
    assert "GNU OpenMP: Intel's is not installed" in choose_settings(cpu=cpu(EPYC), free_memory=GIB).describe()
    with pytest.raises(ConfigError, match="pip install intel-openmp"):
        choose_settings(openmp="intel", cpu=cpu(EPYC), free_memory=GIB)
