"""A trace prints its first events without numpy: its import is most of a
Python tracer's start-up (bench/section_startup.py), so the CLI's trace
path and the per-event decoding (struct over the rows the native reader
drained) must not need it.  The values must be the numpy path's, exactly."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from test_args import expected_hits


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_trace_command_imports_no_numpy():
    """What `pyusdt trace` imports before its first event: not numpy, not the
    aggregation results, not the HTTP server of `serve`."""
    code = ("import sys, pyusdt.cli.main, pyusdt.cli.trace_command, pyusdt.trace.tracer\n"
            "heavy = ('numpy', 'pyusdt.aggregate.results', 'pyusdt.serve', 'asyncio', 'http.server')\n"
            "print(','.join(m for m in heavy if m in sys.modules))")
    assert _run(code).strip() == ""


def test_trace_run_imports_only_what_a_plain_trace_needs():
    """`pyusdt trace -p PID PATTERN` builds its parser and imports its run
    without what only other options need: -c's launcher (subprocess,
    shutil), the aggregation specs, cgroup and container scans, user
    stacks, --printf (together ~25 ms of start-up, before the first event)."""
    code = ("import sys, pyusdt.cli.main as m\n"
            "m.make_parser('trace').parse_known_args(['trace', '-p', '1', 'x:y'])\n"
            "import pyusdt.cli.trace_run\n"
            "later = ('subprocess', 'shutil', 'pyusdt.trace.launcher', 'pyusdt.aggregate.specs',\n"
            "         'pyusdt.discover.cgroups', 'pyusdt.discover.containers', 'pyusdt.trace.scan_targets',\n"
            "         'pyusdt.trace.process_table', 'pyusdt.trace.stacks', 'pyusdt.export.printf',\n"
            "         'pyusdt._provider')\n"
            "print(','.join(m for m in later if m in sys.modules))")
    assert _run(code).strip() == ""


@pytest.mark.usefixtures("bpf")
def test_attach_warmup_leaves_nothing_behind(build):
    """warm_attach() (what the CLI's session loaded ahead does) links and
    unlinks a throwaway site in a thread of its own: soon after, the process
    holds no link and no memfd of it, and a trace attached then gets every
    hit."""
    prog = build("args_widths.c", "args_widths")
    code = f"""
import os, time
from pyusdt import _native
from pyusdt.trace.tracer import Tracer
def held():
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{{fd}}"))
        except OSError:
            pass
    return [t for t in out if "bpf_link" in t or "pyusdt-attach-warmup" in t]
s = _native.Session(_native.SessionOptions())
s.warm_attach()
deadline = time.monotonic() + 10
while held() and time.monotonic() < deadline:
    time.sleep(0.01)
print(held())
s.close()
with Tracer() as t:
    t.attach_command([{str(prog)!r}, "2", "/dev/null"], "args:*")
    t.start()
    print(sum(len(b) for b in t.batches()))
"""
    held, hits = _run(code).splitlines()
    assert held == "[]"
    assert int(hits) == len(expected_hits(2))


@pytest.mark.usefixtures("bpf")
def test_first_events_decoded_without_numpy(build):
    """Every width and sign of args_widths, decoded from the raw rows with
    numpy never imported; then the same batches through numpy's view give
    the same Events."""
    prog = build("args_widths.c", "args_widths")
    code = f"""
import json, sys
from pyusdt.trace.tracer import Tracer
from pyusdt.trace.events import EventBatch
with Tracer() as t:
    t.attach_command([{str(prog)!r}, "2", "/dev/null"], "args:*")
    t.start()
    batches = list(t.batches(timeout=0.1))
    plain = [(e.probe.fullname, list(e.args), e.read_failed) for b in batches for e in b]
    stats = [(s.probe, s.hits, s.events, s.lost_ringbuf) for s in t.stats()]
    numpy_before = "numpy" in sys.modules
    viewed = [(e.probe.fullname, list(e.args), e.read_failed)
              for b in batches for e in EventBatch(b.array, b.probes)]
    print(json.dumps({{"plain": plain, "viewed": viewed, "numpy_before": numpy_before,
                      "lost": t.lost, "stats": sorted(stats)}}))
"""
    res = json.loads(_run(code))
    assert res["numpy_before"] is False
    want = [[name, list(args), []] for name, args in expected_hits(2)]
    assert res["plain"] == want
    assert res["viewed"] == want
    assert res["lost"] == 0
    per_probe: dict = {}
    for name, _ in expected_hits(2):
        per_probe[name] = per_probe.get(name, 0) + 1
    assert res["stats"] == sorted([name, n, n, 0] for name, n in per_probe.items())


@pytest.mark.usefixtures("bpf")
def test_cli_trace_never_imports_numpy(build):
    """`pyusdt trace` to stdout, from start to its summary: every event
    printed, and numpy not among the modules Python imported."""
    prog = build("args_widths.c", "args_widths")
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "pyusdt"), "trace", "-c",
                          f"{prog} 1 /dev/null", "args:*"], capture_output=True, text=True, env=env,
                         timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(out.stdout.splitlines()) == len(expected_hits(1))
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "pyusdt.trace.tracer" in imported and "numpy" not in imported
    assert f"pyusdt: {len(expected_hits(1))} events, 0 lost" in out.stderr


@pytest.mark.usefixtures("bpf")
@pytest.mark.parametrize("strings", [[], [0], [1, 0, 1]])
def test_cli_session_loaded_ahead_is_the_one_started(build, strings):
    """The session `pyusdt trace` loads ahead (plain_stream_options, from its
    arguments alone) has exactly the options start() computes after the
    probes are found, so it is the one used; one that differs is closed."""
    from pyusdt.trace import session_prefetch
    from pyusdt.trace.sizing import plain_stream_options
    from pyusdt.trace.tracer import Tracer

    prog = build("args_widths.c", "args_widths")
    before = dict(session_prefetch.counts)
    session_prefetch.prefetch(plain_stream_options(strings, ringbuf_bytes=1 << 20, str_len=32))
    with Tracer(ringbuf_bytes=1 << 20, str_len=32) as t:
        t.attach_path(prog, "args:*", strings=strings)
        t.start()
    assert session_prefetch.counts == {"taken": before["taken"] + 1, "discarded": before["discarded"]}

    session_prefetch.prefetch(plain_stream_options(strings, ringbuf_bytes=1 << 20, str_len=32))
    with Tracer(ringbuf_bytes=2 << 20, str_len=32) as t:  # another ring: not the session loaded ahead
        t.attach_path(prog, "args:*", strings=strings)
        t.start()
    assert session_prefetch.counts == {"taken": before["taken"] + 1, "discarded": before["discarded"] + 1}


@pytest.mark.usefixtures("bpf")
@pytest.mark.parametrize("extra", [[], ["-s", "0"], ["--str-len", "16"]], ids=["plain", "strings", "str-len"])
def test_cli_session_loaded_before_parsing_is_used(build, extra, capsys):
    """`pyusdt trace` starts loading the default session before its parser
    is built; the parsed arguments keep that load when they ask for the same
    options, and the session start() takes is the one loaded ahead, once:
    nothing loaded twice, nothing discarded (with -s or --str-len nothing
    is guessed before parsing)."""
    from pyusdt.cli.main import main
    from pyusdt.trace import session_prefetch

    prog = build("args_widths.c", "args_widths")
    before = dict(session_prefetch.counts)
    assert main(["trace", *extra, "-c", f"{prog} 1 /dev/null", "args:*"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(expected_hits(1))
    assert session_prefetch.counts == {"taken": before["taken"] + 1, "discarded": before["discarded"]}


@pytest.mark.usefixtures("bpf")
def test_console_script_starts_the_load_before_typing_and_argparse(build, capsys, monkeypatch):
    """The console script (pyusdt.cli.entry) starts loading a trace's
    session before typing or argparse is imported, so that those imports
    (~15 ms) overlap the load; main() then keeps that very load: taken once,
    nothing discarded."""
    from pyusdt.cli import entry
    from pyusdt.trace import session_prefetch

    prog = build("args_widths.c", "args_widths")
    argv = ["trace", "-c", f"{prog} 1 /dev/null", "args:*"]
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "pyusdt"), *argv], capture_output=True,
                         text=True, env=env, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    order = [line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    assert order.index("pyusdt.cli.trace_ahead") < min(order.index("typing"), order.index("argparse"))

    before = dict(session_prefetch.counts)
    monkeypatch.setattr(sys, "argv", ["pyusdt", *argv])
    assert entry.main() == 0
    assert len(capsys.readouterr().out.splitlines()) == len(expected_hits(1))
    assert session_prefetch.counts == {"taken": before["taken"] + 1, "discarded": before["discarded"]}


@pytest.mark.usefixtures("bpf")
def test_cli_usage_error_closes_the_session_loaded_ahead(capsys):
    """A usage error found by the parser, after the load started: one line,
    exit 2, and the session loaded ahead closed (not left to the process)."""
    from pyusdt import _native
    from pyusdt.cli.main import main
    from pyusdt.trace import session_prefetch
    from pyusdt.trace.sizing import DEFAULT_RINGBUF_BYTES, plain_stream_options

    before = dict(session_prefetch.counts)
    with pytest.raises(SystemExit) as exc:
        main(["trace", "-p", "not-a-pid", "x:y"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("pyusdt: trace: argument -p/--pid: invalid int value")
    assert session_prefetch.counts == {"taken": before["taken"], "discarded": before["discarded"] + 1}
    assert session_prefetch.take(plain_stream_options([], ringbuf_bytes=DEFAULT_RINGBUF_BYTES,
                                                      str_len=_native.DEFAULT_STR_LEN)) is None  # none pending


def _nice_of_threads(pid: int) -> dict[int, int]:
    """Each thread's nice value (field 19 of /proc/PID/task/TID/stat)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = int(fields[16])  # fields after "(comm)" start at field 3
    return out


@pytest.mark.usefixtures("bpf")
def test_cli_formatter_gives_way_reader_does_not(build):
    """While `pyusdt trace` prints, its formatting thread runs at nice 19 and
    the session's reader thread at the priority the trace began with (0):
    the output may lag on a busy machine, the ring buffer still empties."""
    prog = build("proc_sem.c", "proc_sem")
    target = subprocess.Popen([str(prog), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert target.stdout.readline().startswith("pid ")
    cli = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "pyusdt"), "trace", "-p",
                            str(target.pid), "procsem:tick"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd="/")
    try:
        assert cli.stdout.readline()  # reading has begun
        nice = _nice_of_threads(cli.pid)
        start = os.getpriority(os.PRIO_PROCESS, 0)  # what the CLI inherits
        assert nice[cli.pid] == max(start, 19)
        assert start in [n for tid, n in nice.items() if tid != cli.pid]
    finally:
        cli.send_signal(signal.SIGINT)
        cli.communicate(timeout=60)
        target.kill()
        target.wait(timeout=60)
    assert cli.returncode == 0
