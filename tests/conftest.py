"""Shared fixtures: building the C programs tests trace, and the BPF gate.

Tests that need BPF use the `bpf` fixture: it skips with the reason when the
kernel or privileges are missing, and fails instead when PYUSDT_REQUIRE_BPF=1
(as CI sets it), so a machine that cannot trace never passes silently.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# tests/containers.py's fixtures (docker_ready, containers), for every module.
pytest_plugins = ["containers"]

HERE = Path(__file__).parent
PROGRAMS = HERE / "programs"
BUILD = HERE / "bin"


def _bpf_unavailable() -> str:
    if os.geteuid() != 0:
        return "not root: tracing needs CAP_BPF and CAP_PERFMON"
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "kernel has no BTF (/sys/kernel/btf/vmlinux)"
    try:
        import pyusdt._native  # noqa: F401
    except ImportError as e:
        return f"pyusdt native module not built: {e}"
    return ""


def missing(reason: str) -> None:
    """Skips a test this machine cannot run, saying why; under
    PYUSDT_REQUIRE_BPF=1 (CI, where everything is installed) fails instead,
    so a missing package or privilege never passes as a skip there."""
    if os.environ.get("PYUSDT_REQUIRE_BPF") == "1":
        pytest.fail(f"PYUSDT_REQUIRE_BPF=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bpf() -> None:
    reason = _bpf_unavailable()
    if reason:
        missing(f"BPF is unavailable: {reason}")


@pytest.fixture(scope="session")
def bpftrace(bpf) -> str:
    """bpftrace, the reference peer, ready to attach: it goes through tracefs,
    which is mounted here when missing."""
    path = shutil.which("bpftrace")
    if path is None:
        missing("bpftrace, the reference peer, is not installed")
    uprobe_events = "/sys/kernel/tracing/uprobe_events"
    if not os.path.exists(uprobe_events):
        res = subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                             capture_output=True, text=True)
        if not os.path.exists(uprobe_events):
            pytest.fail(f"cannot mount tracefs at /sys/kernel/tracing: {res.stderr.strip()}")
    return path


def compile_c(source: str, output: str, *extra: str) -> Path:
    """Compiles tests/programs/SOURCE to tests/bin/OUTPUT (cached by mtime)."""
    BUILD.mkdir(exist_ok=True)
    src = PROGRAMS / source
    out = BUILD / output
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    cmd = ["cc", "-O2", "-g", "-Wall", "-o", str(out), str(src), *extra]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"compiling {source} failed:\n{res.stderr}")
    return out


@pytest.fixture(scope="session")
def build():
    """The compile_c function, for tests that build their own programs."""
    return compile_c


@pytest.fixture(scope="session")
def lib(build):
    """libproc_probes.so (tests/programs/proc_probes_lib.c), for the library tests."""
    return build("proc_probes_lib.c", "libproc_probes.so", "-shared", "-fPIC")


@pytest.fixture(scope="session")
def dlopener(build):
    """proc_dlopen, which loads a library after the trace has started."""
    return build("proc_dlopen.c", "proc_dlopen")


PYUSDT = str(Path(sys.executable).parent / "pyusdt")


def pyusdt_cli(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Runs the installed `pyusdt` console script (not the source tree, which
    has no native module)."""
    return subprocess.run([PYUSDT, *args], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="session")
def cli():
    return pyusdt_cli


def read_u16(pid: int, addr: int) -> int:
    """A semaphore's value, read from the process's memory."""
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return int.from_bytes(f.read(2), "little")


def load_base(pid: int, path: str) -> int:
    """Where `path` is mapped in `pid`: start minus file offset of its first mapping."""
    real = os.path.realpath(path)
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.realpath(parts[5]) == real:
                start = int(parts[0].split("-")[0], 16)
                return start - int(parts[2], 16)
    raise LookupError(f"{path} not mapped in {pid}")
