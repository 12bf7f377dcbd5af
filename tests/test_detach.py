"""Clean detach: however a trace ends, no uprobe stays attached.

Ways a trace ends: SIGINT and SIGTERM to `pyusdt trace`, the traced command
exiting, the traced pid exiting, an exception inside `with Tracer()`, and a
SIGKILLed pyusdt (the kernel closes its fds).  After each:
  - the BPF program and links the tracer held (found through the fdinfo of
    the tracer's process while it traced) are gone from `bpftool prog list`
    and `bpftool link list`;
  - procsem:tick's semaphore, which the tracer raised to 1, is back to 0 in a
    process that is still running (read through /proc/PID/mem, and as the
    program itself sees it);
  - that process is healthy: its loop, which runs over the probe sites, keeps
    going, and it exits with status 0 when asked (a stray int3 would have
    killed it with SIGTRAP).

The program is tests/programs/proc_sem.c: procsem:plain every 10 ms
iteration, procsem:tick when its semaphore is set, procsem:burst on demand.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import threading
import time

import pytest

from pyusdt import Tracer, probes_at_path

from conftest import load_base, read_u16
from proc_helpers import Cli, fdinfos, linked_sites, wait_until

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes


@pytest.fixture(scope="module")
def semprog(build):
    return build("proc_sem.c", "proc_sem")


@pytest.fixture(scope="module")
def tick_sem_vaddr(semprog):
    (tick,) = [p for p in probes_at_path(str(semprog)) if p.fullname == "procsem:tick"]
    assert tick.semaphore
    return tick.semaphore


# -- helpers ----------------------------------------------------------------------


def lowest_load_vaddr(path) -> int:
    with open(path, "rb") as f:
        ehdr = f.read(64)
        phoff, = struct.unpack_from("<Q", ehdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", ehdr, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return min(struct.unpack_from("<IIQQ", table, i * phentsize)[3] & ~0xFFF
               for i in range(phnum)
               if struct.unpack_from("<I", table, i * phentsize)[0] == 1)


def sem_in_memory(pid: int, path, vaddr: int) -> int:
    """A semaphore's value as /proc/PID/mem has it."""
    return read_u16(pid, load_base(pid, str(path)) - lowest_load_vaddr(path) + vaddr)


def bpf_fd_ids(pid: int) -> tuple[set, set]:
    """(prog ids, link ids) of the BPF objects process `pid` holds fds to."""
    infos = fdinfos(pid)
    return ({int(i["prog_id"]) for i in infos if "prog_id" in i},
            {int(i["link_id"]) for i in infos if "link_id" in i})


def bpftool(*args) -> list:
    res = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout or "[]")


def attached(prog_ids: set, link_ids: set) -> tuple[list, list]:
    """Our programs still loaded (by name pyusdt_stream) and links still there."""
    progs = [p for p in bpftool("prog", "list") if p["id"] in prog_ids]
    links = [lk for lk in bpftool("link", "list")
             if lk["id"] in link_ids or lk.get("prog_id") in prog_ids]
    return progs, links


def assert_attached(prog_ids: set, link_ids: set) -> None:
    assert prog_ids and link_ids
    progs, links = attached(prog_ids, link_ids)
    assert [p["name"] for p in progs] == ["pyusdt_stream"], progs
    assert {lk["id"] for lk in links} >= link_ids


def assert_detached(prog_ids: set, link_ids: set, timeout: float = 5.0) -> None:
    """None of them left (the kernel frees a program after its last reference,
    a moment after the fds close, so allow a short wait)."""
    deadline = time.monotonic() + timeout
    while True:
        progs, links = attached(prog_ids, link_ids)
        if not progs and not links:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"still attached after the trace ended: programs {progs}, links {links}")
        time.sleep(0.05)


class Server:
    """`proc_sem serve`: answers status queries on its stdin/stdout."""

    def __init__(self, prog):
        self.prog = prog
        self.p = subprocess.Popen([str(prog), "serve"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.pid = self.p.pid
        assert self.readline() == f"pid {self.pid}"

    def readline(self, timeout=10.0) -> str:
        box = []
        th = threading.Thread(target=lambda: box.append(self.p.stdout.readline()), daemon=True)
        th.start()
        th.join(timeout)
        assert box and box[0], f"no answer from proc_sem {self.pid} (exit status {self.p.poll()})"
        return box[0].rstrip("\n")

    def ask(self, cmd: str) -> str:
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self.readline()

    def status(self) -> dict:
        line = self.ask("s")
        assert line.startswith("status "), line
        return {k: int(v) for k, v in (w.split("=") for w in line.split()[1:])}

    def sem(self, vaddr) -> int:
        return sem_in_memory(self.pid, self.prog, vaddr)

    def check_traced(self, vaddr) -> None:
        assert self.sem(vaddr) == 1
        assert self.status()["sem"] == 1

    def check_detached_and_healthy(self, vaddr) -> None:
        assert self.p.poll() is None, f"traced process died: {self.p.returncode}"
        assert self.sem(vaddr) == 0
        first = self.status()
        time.sleep(0.1)
        second = self.status()
        assert first["sem"] == second["sem"] == 0
        assert second["iter"] > first["iter"]  # its loop over the probe sites runs on
        assert second["ticks"] == first["ticks"]  # the guarded probe is off again
        assert self.ask("f 2") == "burst 2"

    def quit(self) -> int:
        self.p.stdin.write("q\n")
        self.p.stdin.flush()
        return self.p.wait(10)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def summary_counts(err: list[str]) -> dict:
    return {line.split()[0]: int(line.split()[1]) for line in err
            if line.startswith("  procsem:")}


# -- the CLI ended by a signal ----------------------------------------------------


@pytest.mark.parametrize("sig,ignored", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGINT", "SIGTERM", "SIGINT-inherited-ignored"])
def test_cli_signal_detaches(bpf, semprog, tick_sem_vaddr, sig, ignored):
    """SIGINT stops a trace even in a background job whose shell left SIGINT
    ignored (as bpftrace's does), and SIGTERM does."""
    server = Server(semprog)
    trace = None
    try:
        trace = Cli("trace", "-p", server.pid, "procsem:*", sigint_ignored=ignored)
        trace.wait_tracing()
        # One site each: plain, tick, burst; and the dynamic linker's (objects
        # loaded later), linked once the first events are read.
        wait_until(lambda: linked_sites(trace.pid) == 4, what="the 4 sites linked")
        progs, links = bpf_fd_ids(trace.pid)
        assert_attached(progs, links)
        server.check_traced(tick_sem_vaddr)
        assert server.ask("f 3") == "burst 3"
        wait_until(lambda: sum(" procsem:burst " in line for line in trace.out) == 3,
                   what="the 3 bursts in the trace")

        trace.p.send_signal(sig)
        rc = trace.wait()
        assert rc == 0, trace.err
        assert "Traceback" not in "\n".join(trace.err)
        assert summary_counts(trace.err)["procsem:burst"] == 3
        assert not any("exited during the trace" in line for line in trace.err)

        assert_detached(progs, links)
        server.check_detached_and_healthy(tick_sem_vaddr)
        assert server.quit() == 0
    finally:
        server.kill()
        if trace is not None:
            trace.kill()


def test_cli_sigkill_leaves_nothing_attached(bpf, semprog, tick_sem_vaddr):
    server = Server(semprog)
    trace = None
    try:
        trace = Cli("trace", "-p", server.pid, "procsem:*")
        trace.wait_tracing()
        progs, links = bpf_fd_ids(trace.pid)
        assert_attached(progs, links)
        server.check_traced(tick_sem_vaddr)

        trace.p.send_signal(signal.SIGKILL)
        assert trace.wait() == -signal.SIGKILL

        assert_detached(progs, links)
        server.check_detached_and_healthy(tick_sem_vaddr)
        assert server.quit() == 0
    finally:
        server.kill()
        if trace is not None:
            trace.kill()


# -- the traced process exits -------------------------------------------------------


def _pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_command_exit_detaches_from_its_surviving_child(bpf, semprog, tick_sem_vaddr, tmp_path):
    """`trace -c` ends when the command exits; the child it forked, traced
    with it and still running, gets its semaphore back to 0 and runs on."""
    statefile = tmp_path / "state"
    trace = Cli("trace", "-f", "-c", f"{semprog} spawn {statefile} 2", "procsem:*")
    child = None
    try:
        wait_until(lambda: statefile.exists() and statefile.read_text().endswith("\n"),
                   what="the command's child")
        child = int(statefile.read_text().split()[1])
        # The command sleeps 1 s before it exits: look at the trace meanwhile.
        progs, links = bpf_fd_ids(trace.pid)
        assert_attached(progs, links)
        assert sem_in_memory(child, semprog, tick_sem_vaddr) == 1

        rc = trace.wait()
        assert rc == 0, trace.err
        assert summary_counts(trace.err)["procsem:burst"] == 2
        assert_detached(progs, links)

        assert not _pid_gone(child)
        assert sem_in_memory(child, semprog, tick_sem_vaddr) == 0

        def status_lines():
            return [line for line in statefile.read_text().splitlines() if line.startswith("status ")]

        def ask(n):
            os.kill(child, signal.SIGUSR1)
            wait_until(lambda: len(status_lines()) == n, what="the child's status")
            return {k: int(v) for k, v in (w.split("=") for w in status_lines()[-1].split()[1:])}

        first = ask(1)
        time.sleep(0.1)
        second = ask(2)
        assert first["sem"] == second["sem"] == 0
        assert second["iter"] > first["iter"]
        assert second["ticks"] == first["ticks"]
        os.kill(child, signal.SIGTERM)
        wait_until(lambda: _pid_gone(child), what="the child to exit")
    finally:
        trace.kill()
        if child is not None and not _pid_gone(child):
            os.kill(child, signal.SIGKILL)


def test_pid_exit_detaches(bpf, semprog, tick_sem_vaddr):
    """`trace -p` of a process that exits: the trace ends, everything is
    detached, and another running instance of the same program (which maps
    the same file) is left with its semaphore at 0 and healthy."""
    target = Server(semprog)
    other = Server(semprog)
    trace = None
    try:
        trace = Cli("trace", "-p", target.pid, "procsem:*")
        trace.wait_tracing()
        progs, links = bpf_fd_ids(trace.pid)
        assert_attached(progs, links)
        target.check_traced(tick_sem_vaddr)
        assert target.ask("f 2") == "burst 2"
        assert target.quit() == 0

        assert trace.wait() == 0
        assert trace.err[-1] == f"pyusdt: process {target.pid} exited during the trace"
        assert summary_counts(trace.err)["procsem:burst"] == 2
        assert_detached(progs, links)
        other.check_detached_and_healthy(tick_sem_vaddr)
        assert other.quit() == 0
    finally:
        target.kill()
        other.kill()
        if trace is not None:
            trace.kill()


# -- an exception inside `with Tracer()` ----------------------------------------------


@pytest.mark.parametrize("multi", [True, False], ids=["uprobe_multi", "perf_event"])
def test_exception_inside_with_detaches(bpf, semprog, tick_sem_vaddr, multi):
    """Both ways of linking: one uprobe_multi link for the three sites, or
    (older kernels, or uprobe_multi=False) one perf-event link per site."""
    server = Server(semprog)
    before_progs, before_links = bpf_fd_ids(os.getpid())
    try:
        with pytest.raises(RuntimeError, match="^boom$"):
            with Tracer(uprobe_multi=multi) as t:
                t.attach_pid(server.pid, "procsem:*")
                t.start()
                assert t.attached_sites == 3 and linked_sites(os.getpid()) == 3
                # The dynamic linker's site (objects loaded later) of a process
                # pyusdt does not hold comes once the first events are read,
                # at the second poll; it is not counted as a probe site.
                t.poll(0)
                t.poll(0)
                assert t.attached_sites == 3 and linked_sites(os.getpid()) == 4
                progs, links = bpf_fd_ids(os.getpid())
                progs, links = progs - before_progs, links - before_links
                assert len(links) == (2 if multi else 4)  # the dynamic linker's is a file of its own
                assert_attached(progs, links)
                server.check_traced(tick_sem_vaddr)
                assert server.ask("f 2") == "burst 2"
                seen = []
                wait_until(lambda: seen.extend(
                    e.args for e in t.poll(0.05) if e.probe.fullname == "procsem:burst")
                    or len(seen) == 2, what="the 2 bursts")
                assert seen == [(0, 3), (1, 13)]
                raise RuntimeError("boom")
        assert t.attached_sites == 0
        assert bpf_fd_ids(os.getpid()) == (before_progs, before_links)
        assert_detached(progs, links)
        server.check_detached_and_healthy(tick_sem_vaddr)
        assert server.quit() == 0
    finally:
        server.kill()


def test_count_pid_exits_0_when_the_target_ends(bpf, semprog):
    """The traced process ending is a normal end of `count -p`, as of
    bpftrace: the output is complete and the exit status 0 (a script's
    `&&` goes on)."""
    target = Server(semprog)
    count = None
    try:
        count = Cli("count", "-p", target.pid, "procsem:burst")
        wait_until(lambda: any(line.startswith("pyusdt: aggregating ") for line in count.err), 20, "aggregating")
        assert target.ask("f 3") == "burst 3"
        assert target.quit() == 0
        assert count.wait() == 0, count.err
        assert count.out == ["@[procsem:burst]: 3"]
        assert count.err[-1] == f"pyusdt: process {target.pid} exited during the trace"
    finally:
        target.kill()
        if count is not None:
            count.kill()
