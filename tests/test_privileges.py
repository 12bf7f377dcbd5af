"""Least privilege: each job works with exactly the capabilities
pyusdt.privileges lists, and one fewer gives one line naming the one missing.

pyusdt runs as root with its capabilities cut to a set by `setpriv
--bounding-set` (root's capabilities after exec are the bounding set), as
a Kubernetes container with `capabilities: {drop: [ALL], add: [...]}` runs.
The traced processes are root's, with every capability: reading their
mappings is what needs CAP_SYS_PTRACE.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import PYUSDT, missing
from containers import Container, image_with
from proc_helpers import Child

TRACE = ("bpf", "perfmon")
PROCESS = ("bpf", "perfmon", "checkpoint_restore", "sys_ptrace")


@pytest.fixture(scope="module")
def setpriv():
    path = shutil.which("setpriv")
    if path is None:
        missing("setpriv (util-linux) is not installed")
    return path


@pytest.fixture(scope="module")
def prog(build):
    return build("seq_events.c", "seq_events")


# uprobe_multi links (Linux 6.6+), unless a test asks for perf-event links.
MULTI = {**os.environ, "PYUSDT_UPROBE_MULTI": "1"}
PERF_LINKS = {**os.environ, "PYUSDT_UPROBE_MULTI": "0"}


def with_caps(setpriv: str, caps: tuple[str, ...], *args: str, env: dict = MULTI) -> subprocess.CompletedProcess:
    bounding = ",".join(["-all", *(f"+{c}" for c in caps)])
    return subprocess.run([setpriv, f"--bounding-set={bounding}", "--", PYUSDT, *args], capture_output=True,
                          text=True, timeout=60, env=env)


def background(setpriv: str, caps: tuple[str, ...], *args: str) -> subprocess.Popen:
    bounding = ",".join(["-all", *(f"+{c}" for c in caps)])
    return subprocess.Popen([setpriv, f"--bounding-set={bounding}", "--", PYUSDT, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=MULTI)


def wait_tracing(p: subprocess.Popen) -> list[str]:
    assert p.stderr is not None
    seen = []
    for line in p.stderr:
        seen.append(line)
        if line.startswith("pyusdt: tracing "):
            return seen
    raise AssertionError(f"pyusdt never started tracing: {''.join(seen)}")


def one_line_error(res: subprocess.CompletedProcess, text: str) -> None:
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr == f"pyusdt: {text}\n"


def test_list_a_file_needs_nothing(setpriv, prog):
    res = with_caps(setpriv, (), "list", str(prog))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{prog} seq:event sites=1 ")


def test_trace_a_command_with_bpf_and_perfmon(bpf, setpriv, prog):
    res = with_caps(setpriv, TRACE, "trace", "-c", f"{prog} 3", "--format", "json")
    assert res.returncode == 0, res.stderr
    # The command's own output (its pid, "fired 3") shares stdout.
    assert [json.loads(line)["args"][0] for line in res.stdout.splitlines() if line.startswith("{")] == [0, 1, 2]


def test_perf_event_links_need_sys_admin(bpf, setpriv, prog):
    """Sites linked by perf events (kernels before 6.6): the kernel's uprobe
    event asks CAP_SYS_ADMIN, and the refusal says so."""
    res = with_caps(setpriv, TRACE, "trace", str(prog), "-d", "0.1", env=PERF_LINKS)
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    assert res.stderr == (f"pyusdt: seq:event in {prog}: attach failed: Permission denied (attaching with "
                          "perf-event links (Linux before 6.6, or uprobe_multi off) needs CAP_SYS_ADMIN, which this "
                          "process lacks)\n")
    res = with_caps(setpriv, (*TRACE, "sys_admin"), "trace", "-c", f"{prog} 3", "--format", "json", env=PERF_LINKS)
    assert res.returncode == 0, res.stderr
    assert [json.loads(line)["args"][0] for line in res.stdout.splitlines() if line.startswith("{")] == [0, 1, 2]


@pytest.mark.parametrize("caps, lacking", [
    ((), "CAP_BPF and CAP_PERFMON"),
    (("bpf",), "CAP_PERFMON"),
    (("perfmon",), "CAP_BPF"),
])
def test_loading_names_the_missing_capability(bpf, setpriv, prog, caps, lacking):
    one_line_error(with_caps(setpriv, caps, "trace", str(prog)),
                   f"permission denied loading BPF: this process lacks {lacking} (run as root, or grant them)")


def test_a_process_needs_checkpoint_restore_then_ptrace(bpf, setpriv, prog):
    child = Child([prog, "0"])
    try:
        assert child.readline() == str(child.pid)
        pid = child.pid
        where = f"cannot read the files process {pid} maps (/proc/{pid}/map_files): permission denied"
        one_line_error(with_caps(setpriv, TRACE, "trace", "-p", str(pid)),
                       f"{where}: this process lacks CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN)")
        one_line_error(with_caps(setpriv, ("bpf", "perfmon", "checkpoint_restore"), "list", "-p", str(pid)),
                       f"{where}: process {pid} has capabilities this one lacks, or another user: that needs "
                       "CAP_SYS_PTRACE")
        assert child.readline() == "fired 0"
        p = background(setpriv, PROCESS, "trace", "-p", str(pid), "--format", "json")
        try:
            wait_tracing(p)
            child.send("4")
            assert child.readline() == "fired 4"
        finally:
            p.send_signal(2)
            out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert [json.loads(line)["args"][0] for line in out.splitlines()] == [0, 1, 2, 3]
    finally:
        child.kill()


def test_a_container_with_the_process_set(bpf, setpriv, containers, build):
    image = image_with({"/usr/local/bin/container_worker": build("container_worker.c", "container_worker")},
                       "pyusdt-test-worker:a")
    c = Container(image, ["container_worker", "2"])
    containers.append(c)
    c.wait_for_output("ready")
    p = background(setpriv, PROCESS, "trace", "--container", c.name, "ctr:tick", "--format", "json")
    try:
        wait_tracing(p)
        c.signal("SIGUSR1")
        c.wait_for_output("fired 2")
    finally:
        p.send_signal(2)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert [(r["pid"], r["ns_pid"], r["container"], r["args"]) for r in map(json.loads, out.splitlines())] == \
        [(c.pid, 1, c.id, [k, 1, 1000 + k]) for k in range(2)]
