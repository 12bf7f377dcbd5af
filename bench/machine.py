"""What the suite ran on: kernel, CPU, tool versions, and the run's load."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys


def _first_line(cmd: list) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else ""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if r.returncode != 0:
        return ""
    dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + ("+dirty" if dirty else "")


def machine_info() -> dict:
    import numpy as np

    import peers
    import pyusdt

    pg = "/usr/lib/postgresql/15/bin/postgres"
    return {
        "kernel": platform.release(),
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "mem_total_kb": _meminfo("MemTotal"),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": np.__version__,
        "pyusdt": getattr(pyusdt, "__version__", None),
        "pyusdt_commit": git_commit(),
        # Both peers (bench/peers.py), set up by run_all before this is read.
        "bpftrace": ", ".join(f"{peers.label(p)}: {v}" for p, v in peers.versions().items()) or (
            _first_line(["bpftrace", "--version"]) if shutil.which("bpftrace") else None),
        "postgres": _first_line([pg, "--version"]) if os.access(pg, os.X_OK) else None,
        "gcc": _first_line(["gcc", "--version"]),
    }


def _meminfo(key: str) -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
