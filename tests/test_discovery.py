"""Discovery and machine-readable output: `pyusdt list` (file and pid, text
and JSON), probes_at_path / probes_in_process, and `trace --format jsonl`,
all checked field by field against readelf and the values fired."""
from __future__ import annotations

import calendar
import json
import os
import re
import subprocess
import time

import pytest

import pyusdt
from pyusdt import ArgSpec, probes_at_path, probes_in_process


def readelf_probes(path) -> list[dict]:
    """The stapsdt notes grouped by provider:name, in note order, as
    `pyusdt list --json` should show them: each site's own location,
    semaphore and args, and the top-level args when every site has the same."""
    out = subprocess.run(["readelf", "-n", str(path)], capture_output=True, text=True, check=True).stdout
    probes: dict = {}
    for m in re.finditer(
        r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: 0x[0-9a-f]+, "
        r"Semaphore: (0x[0-9a-f]+)\s+Arguments:([^\n]*)",
        out,
    ):
        key = (m.group(1), m.group(2))
        sem = int(m.group(4), 16)
        site = {"location": hex(int(m.group(3), 16)), "semaphore": hex(sem) if sem else None,
                "args": m.group(5).split()}
        if key not in probes:
            probes[key] = {
                "path": str(path),
                "provider": m.group(1),
                "name": m.group(2),
                "locations": [],
                "semaphore": site["semaphore"],
                "args": site["args"],
                "sites": [],
            }
        probe = probes[key]
        probe["locations"].append(site["location"])
        probe["sites"].append(site)
        if site["args"] != probe["sites"][0]["args"]:
            probe["args"] = None
    return list(probes.values())


@pytest.fixture(scope="module")
def semprog(build):
    return build("args_semaphore.c", "args_semaphore")


@pytest.fixture(scope="module")
def multisite(build):
    return build("args_multisite.c", "args_multisite")


@pytest.fixture(scope="module")
def widths(build):
    return build("args_widths.c", "args_widths")


@pytest.fixture(scope="module")
def xcheck(build):
    return build("args_crosscheck.c", "args_crosscheck")


@pytest.fixture
def running(semprog):
    """args_semaphore running (waiting on stdin); killed at the end."""
    p = subprocess.Popen([str(semprog)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        yield p
    finally:
        p.kill()
        p.wait()


def list_json(cli, *args) -> list[dict]:
    res = cli("list", *args, "--json")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_readelf_expectations(semprog, multisite):
    """The programs have what the tests below rely on."""
    sem = {p["name"]: p for p in readelf_probes(semprog)}
    assert sem["hit"]["semaphore"] and sem["plain"]["semaphore"]
    assert [a.split("@")[0] for a in sem["hit"]["args"]] == ["-8", "-4"]
    multi = {p["name"]: p for p in readelf_probes(multisite)}
    assert len(multi["hit"]["locations"]) == 3
    assert multi["done"]["args"] == []


@pytest.mark.parametrize("prog", ["semprog", "multisite", "widths"])
def test_list_json_exact(cli, request, prog):
    path = request.getfixturevalue(prog)
    got = list_json(cli, str(path))
    assert got == readelf_probes(path)
    for obj in got:
        assert list(obj) == ["path", "provider", "name", "locations", "semaphore", "args", "sites"]


def test_list_json_pattern(cli, multisite):
    got = list_json(cli, str(multisite), "multisite:hit")
    assert got == [p for p in readelf_probes(multisite) if p["name"] == "hit"]
    # A bare name matches under any provider.
    assert list_json(cli, str(multisite), "done") == [p for p in readelf_probes(multisite) if p["name"] == "done"]


def test_list_json_unsupported(cli, build):
    path = build("args_badspec.c", "args_badspec")
    got = {o["name"]: o for o in list_json(cli, str(path))}
    expected = {p["name"]: p for p in readelf_probes(path)}
    assert sorted(got) == ["fsbase", "good", "xmm"]
    assert got["good"] == expected["good"]
    for name, spec, why in (("fsbase", "8@%fs:0x28", "segment"), ("xmm", "-4@%xmm0", "register")):
        obj = dict(got[name])
        unsupported = obj.pop("unsupported")
        assert obj == expected[name]
        assert obj["args"] == [spec]
        assert spec in unsupported and why in unsupported


def test_list_text(cli, semprog):
    res = cli("list", str(semprog))
    assert res.returncode == 0, res.stderr
    expected = [
        f"{semprog} semprov:{p['name']} sites={len(p['locations'])} semaphore={p['semaphore']} "
        f"args=[{' '.join(p['args'])}]"
        for p in readelf_probes(semprog)
    ]
    assert res.stdout.splitlines() == expected


def test_probes_at_path_api(semprog):
    probes = probes_at_path(str(semprog))
    expected = readelf_probes(semprog)
    assert [(p.provider, p.name) for p in probes] == [(e["provider"], e["name"]) for e in expected]
    for p, e in zip(probes, expected):
        assert p.path == str(semprog)
        assert p.fullname == f"semprov:{e['name']}"
        assert hex(p.semaphore) == e["semaphore"]
        assert [hex(a) for a in p.locations] == e["locations"]
        assert [a.spec for a in p.args] == e["args"]
        assert p.nargs == len(e["args"])
        assert p.unsupported == ""
    hit = next(p for p in probes if p.name == "hit")
    specs = next(e["args"] for e in expected if e["name"] == "hit")
    assert hit.args == [ArgSpec(specs[0], kind_of(specs[0]), 8, True), ArgSpec(specs[1], kind_of(specs[1]), 4, True)]


def kind_of(spec: str) -> str:
    op = spec.split("@", 1)[1]
    if op.startswith("$"):
        return "const"
    if op.startswith("%"):
        return "reg"
    if "(%rip)" in op:
        return "mem_abs"
    return "mem_index" if "," in op else "mem"


def test_list_pid(cli, semprog, running):
    real = os.path.realpath(semprog)
    res = cli("list", "-p", str(running.pid))
    assert res.returncode == 0, res.stderr
    ours = [line for line in res.stdout.splitlines() if " semprov:" in line]
    expected = [
        f"{real} semprov:{p['name']} sites={len(p['locations'])} semaphore={p['semaphore']} "
        f"args=[{' '.join(p['args'])}]"
        for p in readelf_probes(semprog)
    ]
    assert ours == expected

    got = list_json(cli, "-p", str(running.pid), "semprov:*")
    assert got == [dict(p, path=real) for p in readelf_probes(semprog)]

    one = cli("list", "-p", str(running.pid), "semprov:hit")
    assert one.returncode == 0
    assert one.stdout.splitlines() == [e for e in expected if " semprov:hit " in e]


def test_probes_in_process_api(semprog, running):
    real = os.path.realpath(semprog)
    probes = [p for p in probes_in_process(running.pid) if p.provider == "semprov"]
    assert [(p.path, p.name, p.mapped_by) for p in probes] == [(real, "plain", running.pid), (real, "hit", running.pid)]
    assert all(p.open_path.startswith(f"/proc/{running.pid}/map_files/") for p in probes)
    by_name = {e["name"]: e for e in readelf_probes(semprog)}
    for p in probes:
        assert hex(p.semaphore) == by_name[p.name]["semaphore"]
        assert [hex(a) for a in p.locations] == by_name[p.name]["locations"]


@pytest.mark.parametrize("spelling", ["json", "jsonl"])
def test_trace_jsonl(bpf, cli, xcheck, spelling):
    """--format json, as the aggregating commands spell it (jsonl is still taken)."""
    rounds = 6
    res = cli("trace", "-c", f"{xcheck} {rounds}", "xcheck:point", "--format", spelling)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(objs) == rounds
    for o in objs:
        assert list(o) == ["ts_ns", "pid", "tid", "cpu", "provider", "probe", "args"]
        assert (o["provider"], o["probe"]) == ("xcheck", "point")
        assert all(isinstance(o[k], int) for k in ("ts_ns", "pid", "tid", "cpu"))
        assert o["cpu"] >= 0 and o["pid"] == o["tid"] > 0
    assert [o["args"] for o in objs] == [[i, i * i - 50, -i * 1000003] for i in range(rounds)]
    assert len({o["pid"] for o in objs}) == 1
    ts = [o["ts_ns"] for o in objs]
    assert ts == sorted(ts) and ts[0] > 0


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_trace_wall_time(bpf, cli, xcheck, fmt):
    """-T: each event's UTC time, from its kernel timestamp and one measured
    offset (the same for every line), within the run as the test saw it."""
    before = time.time_ns()
    res = cli("trace", "-c", f"{xcheck} 4", "xcheck:point", "-T", "--format", fmt)
    after = time.time_ns()
    assert res.returncode == 0, res.stderr
    if fmt == "json":
        objs = [json.loads(line) for line in res.stdout.splitlines()]
        assert [list(o)[:2] for o in objs] == [["time", "ts_ns"]] * 4
        stamps = [(o["time"], o["ts_ns"]) for o in objs]
    else:
        fields = [line.split() for line in res.stdout.splitlines()]
        assert [f[5:] for f in fields] == [[f"arg0={i}", f"arg1={i * i - 50}", f"arg2={-i * 1000003}"]
                                           for i in range(4)]
        stamps = [(f[0], int(f[1])) for f in fields]
    walls = [utc_ns(text) for text, _ in stamps]
    assert all(before <= w <= after for w in walls), (before, walls, after)
    assert len({w - ts for w, (_, ts) in zip(walls, stamps)}) == 1


def utc_ns(text: str) -> int:
    """'2026-12-02T07:30:00.123456789Z' as nanoseconds since the epoch."""
    head, frac = text.rstrip("Z").split(".")
    secs = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int(frac)


def test_trace_jsonl_big_values(bpf, cli, widths, tmp_path):
    """JSON numbers keep all 64 bits: INT64_MIN and UINT64_MAX exactly."""
    res = cli("trace", "-c", f"{widths} 1 {tmp_path / 'out'}", "args:consts", "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["args"] for o in objs] == [[5, -1, 0, -(2**63), 2**64 - 1]]


@pytest.fixture(scope="module")
def malformed_notes(build, tmp_path_factory):
    """notes_malformed with its mangled:one note's provider name made into
    bytes that are not UTF-8 (0xff), as a fuzzer or another tool might."""
    built = build("notes_malformed.c", "notes_malformed")
    data = built.read_bytes()
    assert data.count(b"mangled\0") == 1, "the provider name is expected once, in its note"
    out = tmp_path_factory.mktemp("notes") / "notes_malformed"
    out.write_bytes(data.replace(b"mangled\0", b"mang\xffed\0"))
    out.chmod(0o755)
    return out


def test_a_malformed_note_is_skipped_counted_and_said(malformed_notes):
    with pytest.warns(pyusdt.MalformedNotesWarning, match="1 malformed USDT note"):
        probes = probes_at_path(malformed_notes)
    assert [p.fullname for p in probes] == ["intact:two"]


def test_cli_lists_and_traces_the_other_probes(bpf, cli, malformed_notes):
    res = cli("list", str(malformed_notes))
    assert res.returncode == 0, res.stderr
    assert [line.split()[1] for line in res.stdout.splitlines()] == ["intact:two"]
    assert res.stderr == (f"pyusdt: warning: {malformed_notes}: 1 malformed USDT note(s) skipped "
                          "(truncated, or names that are not UTF-8)\n")
    res = cli("trace", "-c", str(malformed_notes), "intact:two")
    assert res.returncode == 0, res.stderr
    assert [line.split(" ", 3)[3] for line in res.stdout.splitlines()] == [
        "intact:two arg0=10", "intact:two arg0=11"]
    assert "Traceback" not in res.stderr
