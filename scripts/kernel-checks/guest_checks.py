"""The checks of scripts/check-kernels, run on the kernel under test: in a QEMU
guest booted from Debian's kernel, or chrooted on the host.  They drive the
`pyusdt` CLI (and, through the provider script, the Python API) with
subprocess, on the target programs of this directory, compiled on the host.

One line per check on stdout:
    check-kernels: <uname -r> <check>: PASS
    check-kernels: <uname -r> <check>: FAIL: <one-line reason>
then "check-kernels: <uname -r> done: N passed, M failed".  Every value is
compared exactly: the programs fire known values (see targets/*.c).

Usage: python guest_checks.py [--dir DIR] [--kmsg-from SEQ|-1] [CHECK...]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KVER = os.uname().release
PYUSDT = os.path.join(os.path.dirname(sys.executable), "pyusdt")
EVENT = re.compile(r"^\d+ \d+/\d+ cpu\d+ (.*)$")


class Fail(Exception):
    """A check failed: the message is the one-line reason."""


def one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def pyusdt_reason(stderr: str, rc) -> str:
    """What went wrong, in pyusdt's own words: its first line that is not the
    tracing/aggregating announcement, or a traceback's last line."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if lines and lines[0].startswith("Traceback"):
        return f"exit {rc}: {one_line(lines[-1])}"
    for ln in lines:
        if not re.match(r"pyusdt: (tracing|aggregating) ", ln):
            return f"exit {rc}: {one_line(ln)}"
    return f"exit {rc}, nothing on stderr"


def run_reason(r) -> str:
    """pyusdt_reason, or the last line of stdout when stderr is empty."""
    if not r.stderr.strip() and r.stdout.strip():
        return f"exit {r.returncode}: {one_line(r.stdout.strip().splitlines()[-1])}"
    return pyusdt_reason(r.stderr, r.returncode)


class Proc:
    """A background process whose stdout and stderr lines are collected by
    threads, so a check can wait for one of them with a deadline."""

    def __init__(self, argv, stdin=False, **kw):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        self.out: list = []
        self.err: list = []
        self.cv = threading.Condition()
        self.threads = [threading.Thread(target=self._read, args=(f, lines), daemon=True)
                        for f, lines in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _read(self, f, lines):
        for raw in f:
            with self.cv:
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_for(self, lines, test, timeout, what, start=0):
        """Waits for a line of `lines` (from index start) for which test(line)
        holds; returns it."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for ln in lines[start:]:
                    if test(ln):
                        return ln
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not any(t.is_alive() for t in self.threads)):
                    if self.p.poll() is not None:
                        raise Fail(f"{what}: {os.path.basename(self.argv[0])} ended first "
                                   f"({pyusdt_reason(self.stderr(), self.p.returncode)})")
                    raise Fail(f"{what}: not seen within {timeout:g} s")
                self.cv.wait(min(left, 0.2))

    def count(self, lines, test, n, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cv:
            while sum(1 for ln in lines if test(ln)) < n:
                left = deadline - time.monotonic()
                if left <= 0 or (self.p.poll() is not None and not any(t.is_alive() for t in self.threads)):
                    got = sum(1 for ln in lines if test(ln))
                    raise Fail(f"{what}: {got} of {n} within {timeout:g} s")
                self.cv.wait(min(left, 0.2))

    def write(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def finish(self, timeout=60, sig=None):
        if sig is not None and self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Fail(f"{os.path.basename(self.argv[0])} did not exit within {timeout} s") from None
        for t in self.threads:
            t.join(5)
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def stdout(self):
        with self.cv:
            return "\n".join(self.out) + ("\n" if self.out else "")

    def stderr(self):
        with self.cv:
            return "\n".join(self.err)


def target(name):
    return os.path.join(ARGS.dir, name)


def run(argv, timeout=120):
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Fail(f"{' '.join(argv[:3])} ...: no exit within {timeout} s") from None


VERIFIER_LOG_LINES = 60
_verifier_log_shown = False


def show_verifier_log(args):
    """The first time the kernel refuses the program, the end of its verifier
    log (PYUSDT_DEBUG=1), on lines of their own: a refusal on a kernel that
    only QEMU has is otherwise one line with no context."""
    global _verifier_log_shown
    if _verifier_log_shown:
        return
    _verifier_log_shown = True
    r = subprocess.run([PYUSDT, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYUSDT_DEBUG": "1"})
    lines = r.stderr.splitlines()
    end = max((i for i, ln in enumerate(lines) if "END PROG LOAD LOG" in ln), default=len(lines))
    for ln in lines[max(0, end - VERIFIER_LOG_LINES):end + 1]:
        print(f"check-kernels-log: {KVER} {ln}", flush=True)


def pyusdt(*args, timeout=120):
    r = run([PYUSDT, *args], timeout)
    if r.returncode != 0:
        if "refused pyusdt's BPF program" in r.stderr:
            show_verifier_log(args)
        raise Fail(run_reason(r))
    return r


def events(stdout):
    """The event lines of `pyusdt trace`, without timestamp, pid/tid and cpu."""
    return [m.group(1) for m in map(EVENT.match, stdout.splitlines()) if m]


def expect_lines(what, got, expected):
    if got != expected:
        for i, (g, e) in enumerate(zip(got + [None] * len(expected), expected + [None] * len(got))):
            if g != e:
                raise Fail(f"{what}: line {i + 1} is {g!r}, expected {e!r} "
                           f"({len(got)} lines, expected {len(expected)})")


def expect_summary(stderr, events_n, filtered=0):
    want = (f"pyusdt: {events_n} events, 0 lost (ring buffer full), 0 unreadable strings, "
            "0 unreadable arguments" + (f", {filtered} filtered out (--where)" if filtered else ""))
    got = [ln for ln in stderr.splitlines() if re.match(r"pyusdt: \d+ events, ", ln)]
    if got != [want]:
        raise Fail(f"summary {got[0] if got else 'missing'!r}, expected {want!r}")


# ---------------------------------------------------------------- the checks

INTS = ("check:ints arg0=-128 arg1=255 arg2=-32768 arg3=65535 arg4=-2147483648 arg5=4294967295 "
        "arg6=-9223372036854775808 arg7=9223372036854775807 arg8=18446744073709551615")
INTS_EXPECTED = [line for i in range(3)
                 for line in (INTS, f'check:text arg0={i} arg1="traced with no compiler here"')]

# pyusdt list: name, sites, whether it has a semaphore, argument widths
# (sys/sdt.h's N@ prefixes: -1 is int8, 8 is uint64...).
LIST_EXPECTED = {
    "kc_ints": [("check:ints", 1, False, "-1 1 -2 2 -4 4 -8 -8 8"), ("check:text", 1, False, "-4 8")],
    "kc_strings": [("kc:str", 1, False, "-8 8"), ("kc:cold", 1, False, "-8 8")],
    "kc_agg": [("kc:val", 1, False, "-8 -8 8"), ("kc:other", 1, False, "-4")],
    "kc_latency": [("kc:start", 1, False, "-8"), ("kc:done", 1, False, "-8")],
    "kc_sem": [("kcsem:plain", 1, True, "-4"), ("kcsem:guarded", 1, True, "-4 4")],
}
LIST_LINE = re.compile(r"^(\S+) (\S+) sites=(\d+)( semaphore=0x[0-9a-f]+)? args=\[(.*)\]$")


def check_list():
    for name, probes in LIST_EXPECTED.items():
        r = pyusdt("list", target(name))
        got = []
        for line in r.stdout.splitlines():
            m = LIST_LINE.match(line)
            if not m or m.group(1) != target(name):
                raise Fail(f"pyusdt list {name}: unexpected line {line!r}")
            widths = " ".join(a.split("@")[0] for a in m.group(5).split())
            got.append((m.group(2), int(m.group(3)), m.group(4) is not None, widths))
        if got != probes:
            raise Fail(f"pyusdt list {name}: {got}, expected {probes}")


def check_ints_cmd():
    r = pyusdt("trace", "-c", target("kc_ints"), "check:*", "-s", "1")
    expect_lines("trace -c", events(r.stdout), INTS_EXPECTED)
    expect_summary(r.stderr, 6)


def stop_trace(tr, n_events):
    """Waits for n_events event lines, then stops the trace with SIGINT, as
    Ctrl-C does; the trace must exit 0."""
    try:
        tr.count(tr.out, EVENT.match, n_events, 30, "events")
    finally:
        rc = tr.finish(60, signal.SIGINT)
    if rc != 0:
        raise Fail(pyusdt_reason(tr.stderr(), rc))


def check_ints_path():
    tr = Proc([PYUSDT, "trace", target("kc_ints"), "check:*", "-s", "1"])
    try:
        tr.wait_for(tr.err, lambda ln: ln.startswith("pyusdt: tracing "), 90, "the 'tracing' line")
        r = run([target("kc_ints")], 30)
        if r.returncode != 0:
            raise Fail(f"kc_ints exited {r.returncode}")
        stop_trace(tr, 6)
    finally:
        tr.kill()
    expect_lines("trace PATH", events(tr.stdout()), INTS_EXPECTED)
    expect_summary(tr.stderr(), 6)


def trace_by_pid(argv, name, trace_args, n_events, timeout):
    """Starts a target that prints "ready PID" and waits for a line on stdin;
    traces it with -p; lets it fire once the trace says it is attached
    (before 6.6 each site's semaphore is raised when its uprobe is
    registered, a moment before the program is attached to it, and hits in
    between are not seen, by bpftrace either); stops the trace after
    n_events.  Returns the trace's Proc, ended."""
    tg = Proc(argv, stdin=True)
    tr = None
    try:
        pid = tg.wait_for(tg.out, lambda ln: ln.startswith("ready "), timeout, f"{name} 'ready'").split()[1]
        tr = Proc([PYUSDT, "trace", "-p", pid, *trace_args])
        tr.wait_for(tr.err, lambda ln: ln.startswith("pyusdt: tracing "), 90, "the 'tracing' line")
        tg.write("go\n")
        tg.wait_for(tg.out, lambda ln: ln == "fired", timeout, f"{name} 'fired'")
        stop_trace(tr, n_events)
        tg.p.stdin.close()
        if tg.finish(30) != 0:
            raise Fail(f"{name} exited {tg.p.returncode}: {one_line(tg.stderr())}")
    finally:
        tg.kill()
        if tr is not None:
            tr.kill()
    return tr


def check_ints_pid():
    tr = trace_by_pid([target("kc_ints"), "wait"], "kc_ints", ["check:*", "-s", "1"], 6, 30)
    expect_lines("trace -p", events(tr.stdout()), INTS_EXPECTED)
    expect_summary(tr.stderr(), 6)


def check_strings():
    r = pyusdt("trace", "-c", target("kc_strings"), "kc:str", "-s", "1")
    expect_lines("trace -c kc_strings kc:str", events(r.stdout),
                 ['kc:str arg0=0 arg1=""', 'kc:str arg0=1 arg1="plain"', 'kc:str arg0=2 arg1="héllo ✓"'])
    expect_summary(r.stderr, 3)


def check_cold_string():
    r = pyusdt("trace", "-c", target("kc_strings"), "kc:cold", "-s", "1")
    present = [ln for ln in r.stdout.splitlines() if ln.startswith("cold-present ")]
    if not present or present[0] != "cold-present 0":
        raise Fail(f"test invalid: the cold page was mapped before the probe fired ({present})")
    expect_lines("trace -c kc_strings kc:cold", events(r.stdout),
                 ['kc:cold arg0=3 arg1="a string in a page this process never touched"'])
    expect_summary(r.stderr, 1)


COUNT_EXPECTED = "@[kc:other]: 4\n@[kc:val]: 11\n"


def hist_block(key, rows):
    """One map as bpftrace prints it: "@key: ", a line per bucket, a blank line."""
    return f"@{key}: \n" + "".join(f"{label:<16}{n:>8} |{'@' * w:<52}|\n" for label, n, w in rows) + "\n"


# kc_agg's rows (targets/kc_agg.c): key 1: 0 1 5 -3 7; key 2: 10 15 64 100;
# key 3: 99 1000; red: 0 1 7 15 99; green: 5 -3 10 64; blue: 100 1000.
# Maps print in ascending order of their totals (2, 4, 5), as bpftrace does.
HIST_ARG0_EXPECTED = "".join([
    hist_block("[3]", [("[64, 128)", 1, 52), ("[128, 256)", 0, 0), ("[256, 512)", 0, 0), ("[512, 1K)", 1, 52)]),
    hist_block("[2]", [("[8, 16)", 2, 52), ("[16, 32)", 0, 0), ("[32, 64)", 0, 0), ("[64, 128)", 2, 52)]),
    hist_block("[1]", [("(..., 0)", 1, 26), ("[0]", 1, 26), ("[1]", 1, 26), ("[2, 4)", 0, 0), ("[4, 8)", 2, 52)]),
])
HIST_STR2_EXPECTED = "".join([
    hist_block("[blue]", [("[64, 128)", 1, 52), ("[128, 256)", 0, 0), ("[256, 512)", 0, 0), ("[512, 1K)", 1, 52)]),
    hist_block("[green]", [("(..., 0)", 1, 52), ("[0]", 0, 0), ("[1]", 0, 0), ("[2, 4)", 0, 0), ("[4, 8)", 1, 52),
                           ("[8, 16)", 1, 52), ("[16, 32)", 0, 0), ("[32, 64)", 0, 0), ("[64, 128)", 1, 52)]),
    hist_block("[red]", [("[0]", 1, 52), ("[1]", 1, 52), ("[2, 4)", 0, 0), ("[4, 8)", 1, 52), ("[8, 16)", 1, 52),
                         ("[16, 32)", 0, 0), ("[32, 64)", 0, 0), ("[64, 128)", 1, 52)]),
])
LHIST_EXPECTED = hist_block("", [
    ("(..., 0)", 1, 13), ("[0, 10)", 4, 52), ("[10, 20)", 2, 26), ("[20, 30)", 0, 0), ("[30, 40)", 0, 0),
    ("[40, 50)", 0, 0), ("[50, 60)", 0, 0), ("[60, 70)", 1, 13), ("[70, 80)", 0, 0), ("[80, 90)", 0, 0),
    ("[90, 100)", 1, 13), ("[100, ...)", 2, 26)])


def check_aggregate(args, expected, aggregated, filtered=0):
    r = pyusdt(*args)
    if r.stdout != expected:
        got, want = r.stdout.splitlines(), expected.splitlines()
        expect_lines(args[0], got, want)
    want = f"pyusdt: {aggregated} aggregated, {filtered} filtered out, 0 lost (map full), 0 unreadable arguments"
    if want not in r.stderr.splitlines():
        raise Fail(f"{args[0]}: stderr has no {want!r}: {one_line(r.stderr)}")


def check_count():
    check_aggregate(["count", "-c", target("kc_agg"), "kc:*"], COUNT_EXPECTED, 15)


def check_hist_arg():
    check_aggregate(["hist", "-c", target("kc_agg"), "kc:val", "-v", "1", "--by", "arg0"], HIST_ARG0_EXPECTED, 11)


def check_hist_str():
    check_aggregate(["hist", "-c", target("kc_agg"), "kc:val", "-v", "1", "--by", "str2"], HIST_STR2_EXPECTED, 11)


def check_lhist():
    check_aggregate(["lhist", "-c", target("kc_agg"), "kc:val", "-v", "1", "--min", "0", "--max", "100",
                     "--step", "10"], LHIST_EXPECTED, 11)


# Expressions, interpreted by the BPF program (its verifier's work on every
# kernel): kc_agg's rows that are not blue and not negative, by label and
# key parity, their values doubled; bpftrace prints sums in ascending order.
EXPR_SUM_EXPECTED = "@[green, 1]: 10\n@[red, 0]: 30\n@[green, 0]: 148\n@[red, 1]: 214\n"


def check_expr_aggregate():
    check_aggregate(["sum", "-c", target("kc_agg"), "kc:val", "-v", "arg1 * 2", "--by", "str(arg2), arg0 % 2",
                     "--where", 'str(arg2) != "blue" && arg1 >= 0'], EXPR_SUM_EXPECTED, 8,
                    filtered=3)


def check_expr_trace():
    r = pyusdt("trace", "-c", target("kc_agg"), "kc:val", "--fields", "arg0, *(uint8 *)arg2, str(arg2, 2)",
               "--where", "arg1 > 50")
    expect_lines("trace --fields", events(r.stdout), [
        f'kc:val arg0={k} *(uint8 *)arg2={ord(label[0])} str(arg2, 2)="{label[:2]}"'
        for k, label in ((2, "green"), (2, "blue"), (3, "red"), (3, "blue"))])
    expect_summary(r.stderr, 4, filtered=7)


def check_expr_ustack():
    """User stacks (a stack map, bpf_get_stackid in the interpreter), named
    from the mappings pyusdt read while the dynamic linker held the command."""
    r = pyusdt("count", "-c", target("kc_agg"), "kc:val", "--by", "ustack", "--format", "folded")
    rows = [line.rsplit(" ", 1) for line in r.stdout.splitlines()]
    if sum(int(n) for _, n in rows) != 11 or not rows:
        raise Fail(f"count --by ustack: {one_line(r.stdout)!r}, expected 11 hits")
    if any(not frames.split(";")[-1].startswith("main+") for frames, _ in rows):
        raise Fail(f"count --by ustack: a stack does not end in main: {one_line(r.stdout)!r}")


PAIRS = 8


def check_latency():
    r = pyusdt("latency", "-c", f"{target('kc_latency')} {PAIRS}", "--start", "kc:start", "--done", "kc:done",
               "--unit", "ns", "--format", "json")
    try:
        final = json.loads(r.stdout.splitlines()[-1])
        hist = final["data"][""]["hist"]
        counters = final["counters"]
    except (ValueError, KeyError, IndexError) as e:
        raise Fail(f"unexpected latency output ({e!r}): {one_line(r.stdout)}") from None
    want = {"starts": PAIRS, "matched": PAIRS, "unmatched": 0, "pending": 0, "dropped": 0, "read_fail": 0}
    got = {k: counters.get(k) for k in want}
    if got != want or hist["total"] != PAIRS:
        raise Fail(f"total {hist['total']}, counters {got}, expected {PAIRS} pairs and {want}")
    low = min(b["lower"] for b in hist["buckets"] if b["count"])
    if low <= 0:
        raise Fail(f"a latency in bucket {[b['label'] for b in hist['buckets'] if b['count']][0]}: expected > 0")


PROVIDER_EXPECTED = [
    f'kcpy:hit word={json.dumps(w, ensure_ascii=False)} small={-128 + i} big={2**64 - 1 - i} neg={-(2**63) + i}'
    for i, w in enumerate(["alpha", "", "gr\u00fc\u00dfe \u2713"])]


def check_provider_pid():
    """The provider script started first, traced with -p once it has loaded."""
    tr = trace_by_pid(["python3", target("kc_provider.py"), "serve"], "kc_provider", ["kcpy:*"], 3, 60)
    expect_lines("trace -p (provider)", events(tr.stdout()), PROVIDER_EXPECTED)
    expect_summary(tr.stderr(), 3)


def check_late_provider():
    """-c: a provider the script makes and dlopens after the trace began,
    fired at once: held at the dynamic linker's site, every fire is seen."""
    check_aggregate(["sum", "-c", f"python3 {target('kc_late.py')}", "kclate:tick", "-v", "0"], "@: 1225\n", 50)


def read_u16(pid, addr):
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(addr)
        return int.from_bytes(mem.read(2), "little")


def fire_traced_sem(tg):
    """Tells kc_sem to fire once: it does only while its semaphore is set."""
    n = len(tg.out)
    tg.write("f\n")
    fired = tg.wait_for(tg.out, lambda ln: ln.startswith(("fired", "skipped")), 10, "kc_sem 'fired'", n)
    if fired != "fired 1":
        raise Fail(f"kc_sem answered {fired!r} to 'f' while traced, expected 'fired 1'")


def check_semaphore():
    tg = Proc([target("kc_sem")], stdin=True)
    tr = None
    try:
        _, pid, addr = tg.wait_for(tg.out, lambda ln: ln.startswith("ready "), 30, "kc_sem 'ready'").split()
        addr = int(addr, 16)

        def sem(what):
            n = len(tg.out)
            tg.write("s\n")
            told = int(tg.wait_for(tg.out, lambda ln: ln.startswith("sem "), 10, "kc_sem 'sem'", n).split()[1])
            mem = read_u16(pid, addr)
            if told != mem:
                raise Fail(f"{what}: the target says {told}, /proc/{pid}/mem says {mem}")
            return told

        if sem("before") != 0:
            raise Fail("the semaphore is not 0 before the trace")
        tr = Proc([PYUSDT, "trace", "-p", pid, "kcsem:guarded"])
        tr.wait_for(tr.err, lambda ln: ln.startswith("pyusdt: tracing "), 90, "the 'tracing' line")
        during = sem("traced")
        if during != 1:
            raise Fail(f"semaphore {during} while traced, expected 1")
        fire_traced_sem(tg)
        stop_trace(tr, 1)
        after = sem("after")
        if after != 0:
            raise Fail(f"semaphore {after} after the trace ended, expected 0")
        tg.p.stdin.close()
        tg.finish(30)
    finally:
        tg.kill()
        if tr is not None:
            tr.kill()
    expect_lines("trace -p kc_sem", events(tr.stdout()), ["kcsem:guarded arg0=7 arg1=1"])
    expect_summary(tr.stderr(), 1)


# init (and check-kernels, chrooted on the host) mounts cgroup v2 here.
CGROUP = "/sys/fs/cgroup/kc-traced"


def check_cgroup():
    """--cgroup: two kc_sem processes map one file (attached once), one of
    them in the traced cgroup: only its hit counts (the BPF filter walks
    the process's cgroup and its parents by CO-RE on this kernel)."""
    os.makedirs(CGROUP, exist_ok=True)
    inside = Proc(["sh", "-c", f"echo $$ > {CGROUP}/cgroup.procs && exec {target('kc_sem')}"], stdin=True)
    outside = Proc([target("kc_sem")], stdin=True)
    tr = None
    try:
        for tg in (inside, outside):
            tg.wait_for(tg.out, lambda ln: ln.startswith("ready "), 30, "kc_sem 'ready'")
        tr = Proc([PYUSDT, "trace", "--cgroup", CGROUP, "kcsem:guarded"])
        tr.wait_for(tr.err, lambda ln: ln.startswith("pyusdt: tracing 1 probe(s) at 1 site(s)"), 90,
                    "the 'tracing 1 probe(s) at 1 site(s)' line")
        for tg in (outside, inside):
            fire_traced_sem(tg)
        stop_trace(tr, 1)
    finally:
        for p in (inside, outside, tr):
            if p is not None:
                p.kill()
        os.rmdir(CGROUP)  # on the host (chrooted) this is the host's own hierarchy
    inside_pid = inside.p.pid
    expect_lines("trace --cgroup", events(tr.stdout()), [f"ns_pid={inside_pid} kcsem:guarded arg0=7 arg1=1"])
    expect_summary(tr.stderr(), 1)


DEMO_LABELS = ["alpha", "beta", "gamma", "delta"]


def check_demo():
    r = pyusdt("demo", timeout=180)
    got = events(r.stdout)
    ticks = [ln for ln in got if ln.startswith("demo:tick ")]
    dones = [ln for ln in got if ln.startswith("demo:work__done ")]
    expect_lines("demo:tick", ticks, [f'demo:tick arg0={i} arg1={i * i - 10} arg2="{DEMO_LABELS[i % 4]}"'
                                      for i in range(20)])
    expect_lines("demo:work__done", dones, [f"demo:work__done arg0={i} arg1=100000000" for i in range(20)])
    last = r.stdout.splitlines()[-1] if r.stdout else ""
    if last != "pyusdt demo: saw every probe hit":
        raise Fail(f"last line {last!r}")


def kmsg_records():
    """(seq, message) of every record in the kernel's log buffer."""
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    out = []
    try:
        while True:
            try:
                rec = os.read(fd, 8192).decode("utf-8", "replace")
            except BlockingIOError:
                break
            except OSError:      # EPIPE: a record was overwritten; go on
                continue
            head, _, msg = rec.partition(";")
            out.append((int(head.split(",")[1]), msg.split("\n")[0]))
    finally:
        os.close(fd)
    return out


def check_core_btf():
    """CO-RE against pyusdt's minimal BTF relocates every program exactly as
    against the kernel's own BTF: the same instructions, so the same tags."""
    for opts in ([], ["string_slots=2", "aggregate=1", "expressions=1"]):
        tags = {}
        for mode in ("kernel", "minimal"):
            env = {**os.environ, "PYUSDT_CORE_BTF": mode}
            r = subprocess.run([sys.executable, target("kc_program_tags.py"), *opts], capture_output=True,
                               text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise Fail(f"{mode} BTF, {' '.join(opts) or 'defaults'}: {run_reason(r)}")
            tags[mode] = r.stdout.strip()
        if tags["kernel"] != tags["minimal"] or tags["kernel"] in ("", "[]"):
            raise Fail(f"{' '.join(opts) or 'defaults'}: kernel BTF {tags['kernel']}, minimal {tags['minimal']}")


def check_dmesg():
    bad = [m for seq, m in kmsg_records() if seq >= ARGS.kmsg_from
           and re.search(r"WARNING:|BUG:|Call Trace:|general protection|Oops", m)]
    if bad:
        raise Fail(f"{len(bad)} line(s), the first: {one_line(bad[0])}")


CHECKS = [
    ("list", check_list),
    ("trace-ints-path", check_ints_path),
    ("trace-ints-pid", check_ints_pid),
    ("trace-ints-cmd", check_ints_cmd),
    ("strings", check_strings),
    ("cold-string", check_cold_string),
    ("count", check_count),
    ("hist-arg", check_hist_arg),
    ("hist-str", check_hist_str),
    ("lhist", check_lhist),
    ("latency", check_latency),
    ("expr-aggregate", check_expr_aggregate),
    ("expr-trace", check_expr_trace),
    ("expr-ustack", check_expr_ustack),
    ("provider-pid", check_provider_pid),
    ("late-provider", check_late_provider),
    ("semaphore", check_semaphore),
    ("cgroup", check_cgroup),
    ("demo", check_demo),
    ("core-btf", check_core_btf),
    ("dmesg", check_dmesg),     # last: after everything else has run
]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=HERE, help="where the target programs are")
    ap.add_argument("--kmsg-from", type=int, default=0,
                    help="dmesg: only records from this sequence number (-1: those logged after the start)")
    ap.add_argument("checks", nargs="*", help="only these checks")
    ARGS = ap.parse_args()
    if ARGS.kmsg_from < 0:
        ARGS.kmsg_from = max((seq for seq, _ in kmsg_records()), default=-1) + 1
    os.environ["PATH"] = os.path.dirname(sys.executable) + ":" + os.environ.get("PATH", "/usr/bin:/bin")
    import resource
    memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    memlock = "unlimited" if memlock == resource.RLIM_INFINITY else f"{memlock // 1024} KiB"
    print(f"check-kernels: {KVER} begin: {len(CHECKS)} checks, python {sys.version.split()[0]}, "
          f"RLIMIT_MEMLOCK {memlock}", flush=True)
    passed = failed = 0
    for name, fn in CHECKS:
        if ARGS.checks and name not in ARGS.checks:
            continue
        t0 = time.monotonic()
        try:
            fn()
            verdict = "PASS"
            passed += 1
        except Fail as e:
            verdict = f"FAIL: {e}"
            failed += 1
        except Exception as e:  # a bug here, or something very unexpected there
            verdict = f"FAIL: {type(e).__name__}: {one_line(str(e))}"
            failed += 1
        print(f"check-kernels: {KVER} {name}: {verdict}", flush=True)
        print(f"check-kernels-time: {KVER} {name} {time.monotonic() - t0:.1f}s", flush=True)
    print(f"check-kernels: {KVER} done: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
