"""The aggregating commands: pyusdt count|sum|min|max|avg|stats|hist|lhist
and pyusdt latency.

Their text is bpftrace's: the same workload (tests/programs/agg_values.c)
run under bpftrace prints, for each map, exactly what the pyusdt command
prints (the map name aside: pyusdt's map is "@").  JSON output carries the
same exact counts; --interval prints periodic blocks; bad input is one line
"pyusdt: ..." and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import pyusdt
from pyusdt.aggregate.histogram import Histogram, render_hist, render_scalar
from pyusdt.cli.main import main

from conftest import PYUSDT
from latency_report import assert_hist, pairs_of, possible_hists
from latency_report import read_report as read_latency_report
from proc_helpers import Child
from test_aggregate import LABELS, PER_ROUND, read_report

ROUNDS = 3
N = ROUNDS * PER_ROUND
TIME_LINE = re.compile(r"^\d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def prog(build):
    return build("agg_values.c", "agg_values")


@pytest.fixture(scope="module")
def latprog(build):
    return build("agg_latency.c", "agg_latency", "-pthread")


def counters_line(hits: int, filtered: int = 0) -> str:
    return f"pyusdt: {hits} aggregated, {filtered} filtered out, 0 lost (map full), 0 unreadable arguments"


def run_ok(cli, *args: str) -> subprocess.CompletedProcess:
    return check_ok(cli(*map(str, args), timeout=60))


def check_ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, (res.args, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def run_many(cli, argvs: list, timeout: float = 60) -> list:
    """Runs pyusdt once per argv, four at a time (each its own BPF session and
    its own -c process); the results in order."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda a: cli(*map(str, a), timeout=timeout), argvs))


def stderr_lines(res) -> list:
    """stderr: the 'aggregating' line, then the counters line."""
    lines = res.stderr.splitlines()
    assert len(lines) == 2, res.stderr
    assert lines[0].startswith("pyusdt: aggregating "), lines
    return lines


# --------------------------------------------------------------------------
# Same text as bpftrace

# pyusdt command (after TARGET/PATTERN) -> bpftrace map giving the same text.
SAME_AS_BPFTRACE = [
    (("hist", "-v", "1"), "@h", "hist(arg1)"),
    (("lhist", "-v", "1", "--min", "0", "--max", "1000", "--step", "100"), "@l", "lhist(arg1, 0, 1000, 100)"),
    (("lhist", "-v", "1", "--min", "0", "--max", "1000", "--step", "300"), "@m", "lhist(arg1, 0, 1000, 300)"),
    (("count", "--by", "none"), "@c", "count()"),
    (("count", "--by", "str2"), "@k[str(arg2)]", "count()"),
    (("sum", "-v", "1"), "@s", "sum(arg1)"),
    (("avg", "-v", "1"), "@a", "avg(arg1)"),
    (("stats", "-v", "1"), "@st", "stats(arg1)"),
    (("stats", "-v", "1", "--by", "str2"), "@kst[str(arg2)]", "stats(arg1)"),
    (("hist", "-v", "1", "--by", "str2"), "@kh[str(arg2)]", "hist(arg1)"),
]


def _map_name(m: str) -> str:
    return m.split("[")[0]


def split_maps(text: str, names: list) -> dict:
    """bpftrace's output at exit, cut into each map's text (maps come out
    sorted by name; a map's text starts at its first '@name:' or '@name['
    line)."""
    starts = []
    for name in names:
        m = re.search(rf"^{re.escape(name)}[:\[]", text, re.M)
        assert m, f"{name} missing from bpftrace output:\n{text}"
        starts.append(m.start())
    assert starts == sorted(starts), "bpftrace printed the maps in another order"
    assert starts[0] == 0
    bounds = starts + [len(text)]
    return {name: text[bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}


def run_bpftrace(bpftrace, prog, report: Path, *options: str) -> subprocess.CompletedProcess:
    """bpftrace with every map of SAME_AS_BPFTRACE, on the workload."""
    body = " ".join(f"{m} = {call};" for _, m, call in SAME_AS_BPFTRACE)
    res = subprocess.run([bpftrace, *options, "-e", f"usdt:{prog}:agg:value {{ {body} }}",
                          "-c", f"{prog} -r {ROUNDS} -o {report}"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def bpftrace_maps(bpftrace, prog, tmp_path_factory):
    report = tmp_path_factory.mktemp("bt") / "report.txt"
    res = run_bpftrace(bpftrace, prog, report)
    head = "Attaching 1 probe...\n\n\n"
    assert res.stdout.startswith(head), res.stdout[:300]
    names = sorted({_map_name(m) for _, m, _ in SAME_AS_BPFTRACE})
    return split_maps(res.stdout[len(head):], names), read_report(report)


def renamed(text: str, name: str) -> str:
    """pyusdt's map '@' printed under bpftrace's map name."""
    return "".join(name + line[1:] if line.startswith("@") else line
                   for line in text.splitlines(keepends=True))


def run_same_as_bpftrace(cli, prog, d: Path, *extra: str) -> dict:
    """Every command of SAME_AS_BPFTRACE (with `extra` options), each on the
    workload: {its args: (result, the workload's report)}."""
    argvs = [(args[0], "-c", f"{prog} -r {ROUNDS} -o {d / f'report{i}.txt'}", "agg:value", *args[1:], *extra)
             for i, (args, _, _) in enumerate(SAME_AS_BPFTRACE)]
    results = run_many(cli, argvs)
    return {args: (res, read_report(d / f"report{i}.txt"))
            for i, ((args, _, _), res) in enumerate(zip(SAME_AS_BPFTRACE, results))}


@pytest.fixture(scope="module")
def pyusdt_maps(cli, prog, bpf, tmp_path_factory):
    return run_same_as_bpftrace(cli, prog, tmp_path_factory.mktemp("cmds"))


@pytest.mark.parametrize("args,bt_map,call", SAME_AS_BPFTRACE, ids=[" ".join(a) for a, _, _ in SAME_AS_BPFTRACE])
def test_same_text_as_bpftrace(bpftrace_maps, pyusdt_maps, args, bt_map, call):
    maps, bt_report = bpftrace_maps
    res, report = pyusdt_maps[args]
    check_ok(res)
    assert report.hits == bt_report.hits  # the same hits under both
    name = _map_name(bt_map)
    assert renamed(res.stdout, name) == maps[name], \
        f"--- bpftrace\n{maps[name]}\n--- pyusdt\n{res.stdout}"
    assert stderr_lines(res)[1] == counters_line(N)


@pytest.fixture(scope="module")
def bpftrace_json_maps(bpftrace, prog, tmp_path_factory):
    """bpftrace -f json on the same workload: each map's line, by map name."""
    report = tmp_path_factory.mktemp("btjson") / "report.txt"
    res = run_bpftrace(bpftrace, prog, report, "-f", "json")
    objs = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    maps = {next(iter(o["data"])): o for o in objs if o["type"] != "attached_probes"}
    return maps, read_report(report)


@pytest.fixture(scope="module")
def pyusdt_json_maps(cli, prog, bpf, tmp_path_factory):
    return run_same_as_bpftrace(cli, prog, tmp_path_factory.mktemp("jsoncmds"), "--format", "bpftrace-json")


@pytest.mark.parametrize("args,bt_map,call", SAME_AS_BPFTRACE, ids=[" ".join(a) for a, _, _ in SAME_AS_BPFTRACE])
def test_same_json_as_bpftrace(bpftrace_json_maps, pyusdt_json_maps, args, bt_map, call):
    """--format bpftrace-json: the line bpftrace -f json prints for the same
    map, keys in the same order."""
    maps, bt_report = bpftrace_json_maps
    res, report = pyusdt_json_maps[args]
    check_ok(res)
    assert report.hits == bt_report.hits  # the same hits under both
    ours = json.loads(res.stdout)
    name = _map_name(bt_map)
    ours["data"] = {name: ours["data"]["@"]}
    theirs = maps[name]
    assert ours == theirs
    if isinstance(theirs["data"][name], dict):
        assert list(ours["data"][name]) == list(theirs["data"][name])  # the same order


def test_scalar_text_equals_the_workload(pyusdt_maps):
    """count / sum / avg / stats, plain and by label, are the workload's own numbers."""
    res = {args: r.stdout for args, (r, _) in pyusdt_maps.items()}
    rep = next(iter(pyusdt_maps.values()))[1]
    count, total, lo, hi, avg = rep.all
    assert count == N
    assert res[("count", "--by", "none")] == f"@: {count}\n"
    assert res[("sum", "-v", "1")] == f"@: {total}\n"
    assert res[("avg", "-v", "1")] == f"@: {avg}\n\n"
    assert res[("stats", "-v", "1")] == f"@: count {count}, average {avg}, total {total}\n\n"
    labels = rep.labels
    assert res[("count", "--by", "str2")] == render_scalar("@", {k: labels[k][0] for k in LABELS}, "count")
    assert res[("stats", "-v", "1", "--by", "str2")] == \
        render_scalar("@", {k: labels[k][:2] for k in LABELS}, "stats")
    assert res[("hist", "-v", "1")] == render_hist("@", {None: Histogram.from_values(rep.values())})


# --------------------------------------------------------------------------
# Exact values, text and JSON

def test_min_max_and_keys(cli, prog, tmp_path):
    """min and max (bpftrace 0.17 cannot be the reference), keyed by label,
    the default key (the probe) and the pid key."""
    reports = [tmp_path / f"r{i}.txt" for i in range(5)]
    argvs = [
        ("min", "-c", f"{prog} -r {ROUNDS} -o {reports[0]}", "agg:value", "-v", "1"),
        ("max", "-c", f"{prog} -r {ROUNDS} -o {reports[1]}", "agg:value", "-v", "1"),
        ("max", "-c", f"{prog} -r {ROUNDS} -o {reports[2]}", "agg:value", "-v", "1", "--by", "str2"),
        ("count", "-c", f"{prog} -r {ROUNDS} -o {reports[3]}", "agg:*"),
        ("count", "-c", f"{prog} -r {ROUNDS} -o {reports[4]}", "agg:value", "--by", "pid"),
    ]
    out = [check_ok(r) for r in run_many(cli, argvs)]
    reps = [read_report(p) for p in reports]
    count, total, lo, hi, avg = reps[0].all
    assert out[0].stdout == f"@: {lo}\n"
    assert out[1].stdout == f"@: {hi}\n"
    assert out[2].stdout == render_scalar("@", {lab: reps[2].labels[lab][3] for lab in LABELS}, "max")
    assert out[3].stdout == f"@[agg:other]: {reps[3].other}\n@[agg:value]: {N}\n"
    assert out[4].stdout == f"@[{reps[4].pid}]: {N}\n"
    for res in out[:3] + out[4:]:
        assert stderr_lines(res)[1] == counters_line(N)
    assert stderr_lines(out[3])[1] == counters_line(N + reps[3].other)


def test_json_output(cli, prog, tmp_path):
    reports = [tmp_path / f"r{i}.txt" for i in range(3)]
    argvs = [
        ("hist", "-c", f"{prog} -r {ROUNDS} -o {reports[0]}", "agg:value", "-v", "1", "--format", "json"),
        ("stats", "-c", f"{prog} -r {ROUNDS} -o {reports[1]}", "agg:value", "-v", "1", "--by", "str2",
         "--format", "json"),
        ("count", "-c", f"{prog} -r {ROUNDS} -o {reports[2]}", "agg:value", "--by", "arg4", "--format", "json"),
    ]
    out = [check_ok(r) for r in run_many(cli, argvs)]
    rep = read_report(reports[0])

    lines = out[0].stdout.splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["final"] is True and obj["kind"] == "hist"
    h = obj["data"][""]["hist"]
    expect = Histogram.from_values(rep.values())
    assert h["total"] == N
    assert {b["label"]: b["count"] for b in h["buckets"]} == \
        {expect.labels[i]: int(c) for i, c in enumerate(expect.counts) if c}
    assert obj["counters"] == {"hits": N, "filtered": 0, "map_full": 0, "starts": 0, "matched": 0,
                               "unmatched": 0, "pending": 0, "read_fail": 0, "dropped": 0}

    obj = json.loads(out[1].stdout)
    assert {k: (v["count"], v["sum"], v["min"], v["max"], v["avg"]) for k, v in obj["data"].items()} == \
        {lab: rep.labels[lab] for lab in LABELS}

    obj = json.loads(out[2].stdout)
    assert {k: v["count"] for k, v in obj["data"].items()} == {"-1": N // 3, "0": N // 3, "1": N // 3}


def test_top_keys(cli, prog, tmp_path):
    """--top N prints the N keys bpftrace's print(@, N) prints (the largest
    last), says on stderr how many it left out, and limits JSON the same way."""
    reports = [tmp_path / f"r{i}.txt" for i in range(3)]
    argvs = [
        ("sum", "-c", f"{prog} -r {ROUNDS} -o {reports[0]}", "agg:value", "-v", "1", "--by", "str2", "--top", "2"),
        ("sum", "-c", f"{prog} -r {ROUNDS} -o {reports[1]}", "agg:value", "-v", "1", "--by", "str2", "--top", "2",
         "--format", "json"),
        ("hist", "-c", f"{prog} -r {ROUNDS} -o {reports[2]}", "agg:value", "-v", "1", "--by", "str2",
         "--top", "1"),
    ]
    out = [check_ok(r) for r in run_many(cli, argvs)]
    reps = [read_report(p) for p in reports]

    sums = {lab: reps[0].labels[lab][1] for lab in LABELS}
    every = render_scalar("@", sums, "sum").splitlines()
    assert len(every) == len(LABELS)
    assert out[0].stdout == "\n".join(every[-2:]) + "\n"
    assert f"pyusdt: {len(LABELS) - 2} more key(s) not printed (--top 2)" in out[0].stderr.splitlines()

    largest = sorted(LABELS, key=lambda lab: reps[1].labels[lab][1])[-2:]
    assert sorted(json.loads(out[1].stdout)["data"]) == sorted(largest)

    hists = {lab: Histogram.from_values([h.v for h in reps[2].hits if h.label == lab]) for lab in LABELS}
    biggest = max(LABELS, key=lambda lab: (hists[lab].total, lab))
    assert out[2].stdout == render_hist("@", {biggest: hists[biggest]})


def test_version(cli):
    res = cli("--version")
    assert (res.returncode, res.stdout, res.stderr) == (0, f"pyusdt {pyusdt.__version__}\n", "")


WHERE_CASES = {
    "arg1 < 0": lambda h: h.v < 0,
    "arg1>=1024": lambda h: h.v >= 1024,
    "arg1 <= 0x10": lambda h: h.v <= 16,
    "arg1 == -0x5": lambda h: h.v == -5,
    "arg1 > -6": lambda h: h.v > -6,
    "arg3 > 0x7fffffff": lambda h: h.u > 0x7FFFFFFF,
    "arg4 == -1": lambda h: h.grp == -1,
}


def test_where_and_divisor(cli, prog, tmp_path):
    """--where on a signed 64-bit, an unsigned 32-bit and a signed 32-bit
    argument, decimal and hex constants: the count and the filtered-out
    counter are exact."""
    argvs, reports = [], []
    for i, where in enumerate(WHERE_CASES):
        reports.append(tmp_path / f"w{i}.txt")
        argvs.append(("count", "-c", f"{prog} -r {ROUNDS} -o {reports[-1]}", "agg:value", "--by", "none",
                      "--where", where))
    reports.append(tmp_path / "div.txt")
    argvs.append(("sum", "-c", f"{prog} -r {ROUNDS} -o {reports[-1]}", "agg:value", "-v", "1",
                  "--divisor", "1000", "--where", "arg1 > 0"))
    out = [check_ok(r) for r in run_many(cli, argvs)]
    for (where, pred), res, report in zip(WHERE_CASES.items(), out, reports):
        want = sum(1 for h in read_report(report).hits if pred(h))
        assert res.stdout == f"@: {want}\n", where
        assert stderr_lines(res)[1] == counters_line(want, N - want), where
    vals = [v for v in read_report(reports[-1]).values() if v > 0]
    assert out[-1].stdout == f"@: {sum(v // 1000 for v in vals)}\n"
    assert stderr_lines(out[-1])[1] == counters_line(len(vals), N - len(vals))


def test_filter_pid(prog, tmp_path, bpf):
    """A path target, two processes: --filter-pid keeps one, the other's hits
    are counted as filtered out."""
    reports = [tmp_path / "a.txt", tmp_path / "b.txt"]
    kids = [Child([prog, "-w", "-r", r, "-o", p]) for r, p in zip((2, 3), reports)]
    cli = None
    try:
        cli = subprocess.Popen([PYUSDT, "count", str(prog), "agg:value", "--by", "pid",
                                "--filter-pid", str(kids[0].pid), "-d", "30"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = cli.stderr.readline()
        assert first.startswith("pyusdt: aggregating 1 probe(s)"), first
        for k in kids:
            k.send("go")
        assert [k.wait() for k in kids] == [0, 0]
        time.sleep(0.2)
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=20)
    finally:
        for k in kids:
            k.kill()
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, err
    a, b = (read_report(p) for p in reports)
    assert out == f"@[{a.pid}]: {len(a.hits)}\n"
    assert err.splitlines() == [counters_line(len(a.hits), len(b.hits))]


def test_interval(cli, prog, tmp_path):
    """-i prints a timestamped block every interval, growing, then the final one."""
    rounds = 6
    res = run_ok(cli, "count", "-c", f"{prog} -r {rounds} -s 120", "agg:value", "--by", "none",
                 "-i", "0.2")
    lines = res.stdout.splitlines()
    stamps = [i for i, line in enumerate(lines) if TIME_LINE.match(line)]
    assert len(stamps) >= 2, res.stdout
    # Each stamp is followed by one '@: N' line; the final block has no stamp.
    assert len(lines) == 2 * len(stamps) + 1, res.stdout
    counts = [int(lines[i + 1].removeprefix("@: ")) for i in stamps]
    assert all(lines[i + 1].startswith("@: ") for i in stamps)
    assert counts == sorted(counts) and counts[-1] <= rounds * PER_ROUND
    assert lines[-1] == f"@: {rounds * PER_ROUND}"


def test_per_interval_json(cli, prog):
    """--per-interval: each block holds what its interval added; they add up
    to the total, bucket by bucket; only the last is final."""
    rounds = 6
    res = run_ok(cli, "hist", "-c", f"{prog} -r {rounds} -s 120", "agg:value", "-v", "1",
                 "-i", "0.2", "--per-interval", "--format", "json")
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(objs) >= 3
    assert [o["final"] for o in objs] == [False] * (len(objs) - 1) + [True]
    totals: dict = {}
    for o in objs:
        for b in o.get("data", {}).get("", {}).get("hist", {}).get("buckets", []):
            totals[b["index"]] = totals.get(b["index"], 0) + b["count"]
    one_round = Histogram.from_values(read_values_once(prog))
    assert totals == {i: int(c) * rounds for i, c in enumerate(one_round.counts) if c}
    assert objs[-1]["counters"]["hits"] == rounds * PER_ROUND


def read_values_once(prog) -> list:
    """The values of one round, as the program reports them (no tracing)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.txt"
        subprocess.run([str(prog), "-r", "1", "-o", str(path)], check=True, timeout=10)
        return read_report(path).values()


# --------------------------------------------------------------------------
# pyusdt latency

def run_latency(cli, latprog, tmp_path: Path, mode: str, args: tuple) -> tuple:
    """`pyusdt latency -c "agg_latency MODE 2 REPORT" ARGS`: (the result, the
    probes the workload fired, with their clock bounds: tests/latency_report.py)."""
    report = tmp_path / f"{mode}.txt"
    res = run_ok(cli, "latency", "-c", f"{latprog} {mode} 2 {report}", "--start", "lat:start",
                 "--done", "lat:done", *args)
    return res, read_latency_report(report)[1]


def possible_texts(keyed: dict) -> set:
    """The text of every histogram map the kernel can have made: keyed is
    {key: possible histograms of that key}."""
    keys = list(keyed)
    return {render_hist("@", dict(zip(keys, hists))) for hists in itertools.product(*keyed.values())}


MS, US = 1_000_000, 1_000


def test_latency_text(cli, latprog, tmp_path):
    """1.2, 5 and 20 ms requests, twice: each in its bucket, in us and ms,
    log2 and lhist, keyed or not, as bpftrace prints them."""
    res, fired = run_latency(cli, latprog, tmp_path, "seq", ("--unit", "us"))
    pairs = pairs_of(fired)
    assert len(pairs) == 6
    assert res.stdout in possible_texts({None: possible_hists(pairs, US)})
    assert stderr_lines(res)[1] == ("pyusdt: 6 requests timed, 0 filtered out, 0 lost (map full), "
                                    "0 unreadable arguments; 6 starts, 0 dones without start, "
                                    "0 pending, 0 dropped")

    res, fired = run_latency(cli, latprog, tmp_path, "seq", ("--unit", "ms", "--lhist", "0,50,10"))
    assert res.stdout in possible_texts({None: possible_hists(pairs_of(fired), MS, "linear", 0, 50, 10)})

    res, fired = run_latency(cli, latprog, tmp_path, "seq", ("--unit", "ms", "--by", "arg1"))
    pairs = pairs_of(fired)
    assert res.stdout in possible_texts({cls: possible_hists([p for p in pairs if p[1].cls == cls], MS)
                                         for cls in (0, 1, 2)})


def test_latency_pair_by_and_json(cli, latprog, tmp_path):
    res, fired = run_latency(cli, latprog, tmp_path, "ids", ("--unit", "ms", "--pair-by", "0", "--format", "json"))
    obj = json.loads(res.stdout)
    assert obj["final"] is True and obj["kind"] == "hist"
    got = Histogram({b["index"]: b["count"] for b in obj["data"][""]["hist"]["buckets"]})
    assert_hist(got, pairs_of(fired, key=lambda e: e.id), MS)
    c = obj["counters"]
    assert (c["starts"], c["matched"], c["unmatched"], c["pending"], c["dropped"]) == (4, 4, 0, 0, 0)

    # By thread (the default), start(2) replaces start(1): done(2) is unmatched.
    res, fired = run_latency(cli, latprog, tmp_path, "ids", ("--unit", "ms"))
    assert res.stdout in possible_texts({None: possible_hists(pairs_of(fired), MS)})
    assert stderr_lines(res)[1].endswith("; 4 starts, 2 dones without start, 0 pending, 2 dropped")

    # Orphans by id: 3 dones without start, 10 starts pending.
    res = run_ok(cli, "latency", "-c", f"{latprog} orphans 10", "--start", "lat:start",
                 "--done", "lat:done", "--pair-by", "0,0", "--kind", "count", "--by", "none")
    assert res.stdout == "@: 1\n"
    assert stderr_lines(res)[1].endswith("; 11 starts, 3 dones without start, 10 pending, 0 dropped")


# --------------------------------------------------------------------------
# Bad input

def assert_error(res: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exactly one 'pyusdt: ...' line naming every fragment, non-zero exit, no traceback."""
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode != 0, (res.stdout, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("pyusdt: "), lines[0]
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert res.stdout == ""
    return lines[0]


V, L = "{values}", "{latency}"
BAD = [
    # lhist parameters
    (("lhist", V, "agg:value", "-v", "1", "--min", "0", "--max", "100", "--step", "0"), ["step must be positive"]),
    (("lhist", V, "agg:value", "-v", "1", "--min", "0", "--max", "100", "--step", "-5"), ["step must be positive"]),
    (("lhist", V, "agg:value", "-v", "1", "--min", "100", "--max", "100", "--step", "1"), ["min must be below max"]),
    (("lhist", V, "agg:value", "-v", "1", "--min", "200", "--max", "100", "--step", "1"), ["min must be below max"]),
    # argument indexes the probe does not have, strings that are integers
    (("hist", V, "agg:value", "-v", "5"), ["value argument 5 out of range", "agg:value"]),
    (("sum", V, "agg:other", "-v", "1"), ["value argument 1 out of range", "agg:other"]),
    (("hist", V, "agg:value", "-v", "-1"), ["value argument -1 out of range"]),
    (("count", V, "agg:value", "--by", "arg7"), ["key argument 7 out of range"]),
    (("count", V, "agg:value", "--by", "str9"), ["key argument 9 out of range"]),
    (("count", V, "agg:value", "--by", "str4"), ["string key argument 4", "4-byte integer"]),
    (("count", V, "agg:value", "--by", "str3"), ["string key argument 3", "4-byte integer"]),
    (("count", V, "agg:value", "--by", "uid"), ["'uid' is not supported in expressions at column 1 of 'uid'"]),
    (("count", V, "agg:value", "--by", "arg"), ["unknown identifier 'arg' at column 1 of 'arg'"]),
    (("count", V, "agg:nothing"), ["no probe matches 'agg:nothing'"]),
    # other options out of range
    (("sum", V, "agg:value", "-v", "1", "--divisor", "0"), ["divisor must be at least 1"]),
    (("count", V, "agg:value", "--max-keys", "0"), ["--max-keys must be at least 1 (got 0)"]),
    (("count", V, "agg:value", "-i", "0"), ["--interval must be positive"]),
    (("count", V, "agg:value", "-d", "-1"), ["--duration must be positive"]),
    # malformed --where: the parser names the column at fault
    (("count", V, "agg:value", "--where", "arg1 ~ 5"), ["unexpected '~' at column 6 of 'arg1 ~ 5'"]),
    (("count", V, "agg:value", "--where", "arg1 = 5"),
     ["assignment is not supported in expressions at column 6 of 'arg1 = 5'"]),
    (("count", V, "agg:value", "--where", "arg1 >"), ["expected an expression at column 7 of 'arg1 >'"]),
    (("count", V, "agg:value", "--where", "x1 > 5"), ["unknown identifier 'x1' at column 1"]),
    (("count", V, "agg:value", "--where", "arg1 > five"), ["unknown identifier 'five' at column 8"]),
    (("count", V, "agg:value", "--where", "arg1 > 5 or arg2 < 3"), ["unexpected 'or' at column 10"]),
    (("count", V, "agg:value", "--where", "arg9 > 0"), ["filter argument 9 out of range"]),
    # numbers the pattern accepts but that are not valid: one line, no traceback
    (("count", V, "agg:value", "--where", "arg1 == 08"), ["08"]),
    (("count", V, "agg:value", "--where", "arg1 > 99999999999999999999"), ["99999999999999999999"]),
    # latency
    (("latency", L, "--start", "lat:nope", "--done", "lat:done"), ["no probe matches 'lat:nope'"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:nope"), ["no probe matches 'lat:nope'"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--lhist", "0,50"), ["--lhist must be"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--lhist", "0,50,0"), ["step must be positive"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--lhist", "50,50,1"), ["min must be below max"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--kind", "lhist"), ["lhist needs"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--unit", "us", "--where", "arg1 => 1"),
     ["at column 6 of 'arg1 => 1'"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--pair-by", "5"),
     ["pairing argument 5 out of range"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--by", "str1"), ["4-byte integer"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--by", "arg3"), ["key argument 3 out of range"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--pair-by", "x"), ["--pair-by"]),
    (("latency", L, "--start", "lat:start", "--done", "lat:done", "--pair-by", "0,1,2"), ["--pair-by"]),
]


def run_in_process(argv: list, capsys) -> subprocess.CompletedProcess:
    """pyusdt's main(argv) in this process (no interpreter start-up per
    case), as the console script would end: an exception escaping main() is
    the traceback the script would print."""
    old = signal.getsignal(signal.SIGTERM)
    tb = ""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - what the console script would print
        rc = 1
        tb = traceback.format_exc()
    finally:
        signal.signal(signal.SIGTERM, old)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, rc, out, err + tb)


def bad_argv(args, prog, latprog) -> list:
    argv = [str(prog) if a == V else str(latprog) if a == L else a for a in args]
    return argv if "-d" in argv else argv + ["-d", "0.3"]  # ends a command wrongly accepted


@pytest.mark.parametrize("args,fragments", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input(bpf, prog, latprog, capsys, args, fragments):
    assert_error(run_in_process(bad_argv(args, prog, latprog), capsys), *fragments)


# A few of them through the installed console script, as a user runs it.
SCRIPT_CASES = [
    ("lhist", V, "agg:value", "-v", "1", "--min", "0", "--max", "100", "--step", "0"),
    ("count", V, "agg:value", "--by", "str4"),
    ("latency", L, "--start", "lat:nope", "--done", "lat:done"),
    ("count", V, "agg:value", "--where", "arg1 == 08"),
]


def test_bad_input_console_script(cli, prog, latprog):
    cases = [(args, frags) for args, frags in BAD if args in SCRIPT_CASES]
    assert len(cases) == len(SCRIPT_CASES)
    results = run_many(cli, [bad_argv(args, prog, latprog) for args, _ in cases], timeout=30)
    failures = []
    for (args, fragments), res in zip(cases, results):
        try:
            assert_error(res, *fragments)
        except AssertionError as e:
            failures.append(f"{' '.join(args)}: {str(e).splitlines()[0]}")
    assert failures == []
