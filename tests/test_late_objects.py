"""Probes in objects a process loads after the trace began, seen from their
very first event: a library dlopen'ed with no pause before it fires (its
constructor fires inside dlopen itself), the JVM's libjvm.so (dlopen'ed by
the java launcher), patterns that match nothing until then, and bpftrace's
PATH:provider:name form.

The dynamic linker's notification site holds a command pyusdt started
until the new object's probes are attached, so every event is counted
against what the program fired, exactly.  A -p process is not held: its
new probes attach within milliseconds, checked with a pause before firing.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pyusdt import Tracer
from pyusdt.errors import NoProbesError

from conftest import missing
from proc_helpers import Child

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

JDK = "/usr/lib/jvm/java-17-openjdk-amd64"
GC_JAVA = """public class Gc {
    public static void main(String[] a) {
        int n = Integer.parseInt(a[0]);
        for (int i = 0; i < n; i++) System.gc();
        System.out.println("gcs " + n);
    }
}
"""


def maps(stdout: str) -> list:
    """The map lines of a count (the traced command prints too)."""
    return [line for line in stdout.splitlines() if line.startswith("@")]


def fires(n: int) -> list:
    return [(i, 1000 * i + 7, f"dl-{i}") for i in range(n)]


@pytest.mark.parametrize("mode", ["file", "memfd"])
def test_dlopen_without_pause_sees_every_event(bpf, lib, dlopener, mode):
    """START 0, PRE 0: dlopen, then fire at once.  The constructor's event
    (inside dlopen) and every fire are seen; before the loader site, only a
    rescan every 0.2 s found the library, after they had fired."""
    n = 25
    with Tracer(str_len=32) as t:
        held = t.attach_command([str(dlopener), str(lib), mode, "0", "0", str(n), "0"], "proclib:fire",
                                strings=[2], later=True)
        t.attach_command(held, "proclibinit:ctor", later=True)
        assert t.waiting == [f"command {dlopener}: no probe matches 'proclib:fire'",
                             f"command {dlopener}: no probe matches 'proclibinit:ctor'"]
        t.start()
        events = [(e.probe.fullname, e.args) for b in t.batches(timeout=0.1, duration=30) for e in b]
        stats = {s.probe: s for s in t.stats()}
    assert events == [("proclibinit:ctor", (4242,))] + [("proclib:fire", a) for a in fires(n)]
    assert stats["proclib:fire"].hits == n and stats["proclibinit:ctor"].hits == 1
    assert t.unmatched == []


def test_cli_command_waits_for_the_library(bpf, cli, lib, dlopener):
    res = cli("count", "--by", "probe", "-c", f"{dlopener} {lib} file 0 0 40 0", "proclib*:*")
    assert res.returncode == 0, res.stderr
    assert sorted(maps(res.stdout)) == ["@[proclib:done]: 1", "@[proclib:fire]: 40", "@[proclib:loaded]: 1",
                                        "@[proclibinit:ctor]: 1"]
    res = cli("count", "-c", f"{dlopener} {lib} file 0 0 3 0", "proclibinit:ctor")
    assert res.returncode == 0, res.stderr
    assert maps(res.stdout) == ["@[proclibinit:ctor]: 1"]
    assert res.stderr.splitlines()[0] == (f"pyusdt: command {dlopener}: no probe matches 'proclibinit:ctor' yet; "
                                          "waiting for the objects it loads")


def test_path_qualified_pattern_before_the_object_is_mapped(bpf, cli, lib, dlopener):
    """PATH:provider:name attaches to the file by inode before the process
    maps it; the kernel applies the uprobes when it does."""
    res = cli("count", "-c", f"{dlopener} {lib} file 0 0 7 0", f"{lib}:proclib:fire")
    assert res.returncode == 0, res.stderr
    assert maps(res.stdout) == ["@[proclib:fire]: 7"]
    assert res.stderr.splitlines()[0] == "pyusdt: aggregating 1 probe(s) at 1 site(s); Ctrl-C to stop"


def test_pid_dlopen_is_attached_at_once(bpf, lib, dlopener):
    """-p: the process is not held, but its dlopen is noticed by the loader
    site, not by a rescan: 100 ms between dlopen and the first fire (less
    than the 0.2 s rescan interval) are enough."""
    child = Child([dlopener, lib, "file", "stdin", "100", "10", "stdin"])
    try:
        assert child.readline().startswith("pid ")
        with Tracer(str_len=32) as t:
            t.attach_pid(child.pid, "proclib:fire", strings=[2], later=True)
            t.start()
            child.send()  # dlopen now; the reader polls meanwhile
            events: list = []
            deadline = time.monotonic() + 30
            while len(events) < 10 and time.monotonic() < deadline:
                events.extend(e.args for e in t.poll(0.05))
            assert child.readline().startswith("loaded ")
            assert child.readline() == "fired"
            child.send()
            assert child.wait() == 0
            events.extend(e.args for b in t.batches(timeout=0.1, duration=30) for e in b)
        assert events == fires(10)
    finally:
        child.kill()


def test_nothing_ever_matched_fails_at_the_end(bpf, cli, dlopener, lib):
    res = cli("trace", "-c", f"{dlopener} {lib} file 0 0 1 0", "nosuch:probe")
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert lines[0] == (f"pyusdt: command {dlopener}: no probe matches 'nosuch:probe' yet; "
                        "waiting for the objects it loads")
    assert lines[-1] == f"pyusdt: command {dlopener}: no probe matches 'nosuch:probe': none appeared during the trace"
    with Tracer() as t, pytest.raises(NoProbesError):
        t.attach_command(["true"], "*")  # without later=True, as before


@pytest.fixture(scope="module")
def gc_class(tmp_path_factory):
    if not os.path.exists(f"{JDK}/bin/javac"):
        missing(f"{JDK}/bin/javac is not installed (openjdk-17-jdk-headless)")
    d = tmp_path_factory.mktemp("java")
    (d / "Gc.java").write_text(GC_JAVA)
    subprocess.run([f"{JDK}/bin/javac", "Gc.java"], cwd=d, check=True, capture_output=True, timeout=120)
    return d


@pytest.mark.parametrize("pattern", ["hotspot:gc__*", f"{JDK}/lib/server/libjvm.so:hotspot:gc__*"],
                         ids=["pattern", "path-qualified"])
def test_jvm_gc_probes_in_the_dlopened_libjvm(bpf, cli, gc_class, pattern):
    """java dlopens libjvm.so: with -c, 'hotspot:gc__*' waits for it, and
    the 6 System.gc() calls are 6 begin/end pairs.  bpftrace 0.17 cannot
    attach this ('Error finding location for probe': libjvm.so is not
    mapped when -c starts)."""
    java = f"{JDK}/bin/java -Xmx64m -XX:+UseSerialGC -cp {gc_class} Gc 6"
    res = cli("count", "--by", "probe", "-c", java, pattern, timeout=180)
    assert res.returncode == 0, res.stderr
    assert maps(res.stdout) == ["@[hotspot:gc__begin]: 6", "@[hotspot:gc__end]: 6"]


def test_a_python_programs_own_provider(bpf, cli, tmp_path):
    """A Provider's probes live in an object the program makes at run time:
    -c waits for them and counts every fire."""
    script = tmp_path / "late_provider.py"
    script.write_text(
        "from pyusdt.provide import Provider\n"
        "p = Provider('lateapp')\n"
        "tick = p.probe('tick', ('n', 'int64'))\n"
        "p.load()\n"
        "for i in range(50):\n"
        "    tick.fire(i)\n")
    python = sys.executable  # the venv's, where pyusdt is installed
    res = cli("sum", "-v", "0", "-c", f"{python} {script}", "lateapp:tick", timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"@: {sum(range(50))}"


def test_libstdcxx_loaded_with_a_dlopened_library(bpf, cli, build):
    """A C program dlopens a C++ library, which brings libstdc++ in: the
    libstdcxx:throw and :catch probes (Debian's libstdc++.so.6) are
    attached as it loads, and each of the 30 exceptions is one of each."""
    cxx = build("cxx_throw_lib.cc", "libcxx_throw.so", "-shared", "-fPIC", "-lstdc++")
    prog = build("cxx_dlopen.c", "cxx_dlopen")
    res = cli("count", "--by", "probe", "-c", f"{prog} {cxx} 30", "libstdcxx:*")
    assert res.returncode == 0, res.stderr
    assert sorted(maps(res.stdout)) == ["@[libstdcxx:catch]: 30", "@[libstdcxx:throw]: 30"]
    assert res.stderr.splitlines()[0] == (f"pyusdt: command {prog}: no USDT probes yet; "
                                          "waiting for the objects it loads")


def test_wrapper_script_execs_the_program(bpf, cli, build, tmp_path):
    """-c runs a shell script that execs the program with the probes: the
    dynamic linker's site holds the new image before main, so all of its
    events are counted (3 rounds of 3 sites, and done)."""
    prog = build("args_site_specs.c", "args_site_specs_pie")
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(f'#!/bin/sh\nexec {prog} "$@"\n')
    wrapper.chmod(0o755)
    res = cli("count", "--by", "probe", "-c", f"{wrapper} 3", "sites:*")
    assert res.returncode == 0, res.stderr
    assert sorted(maps(res.stdout)) == ["@[sites:done]: 1", "@[sites:mixed]: 9"]
