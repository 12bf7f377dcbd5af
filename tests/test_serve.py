"""`pyusdt serve` for real: the command exports what tests/programs/serve_workload.c
fired, exactly, over HTTP; SIGHUP reloads (an unchanged metric keeps
counting, a new one starts, a bad config changes nothing); a pid target
that exits is reported; a path target that appears later is attached;
SIGTERM and SIGINT exit 0 with every BPF program and link gone and the port
closed."""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import PYUSDT
from proc_helpers import Child, fdinfos

# What serve_workload.c fires: request s has these, by s % 3, s % 4, s % 8.
METHODS = ("GET", "POST", 'odd "name"\\ with\nnewline')
STATUS = (200, 200, 404, 503)
BYTES = (0, 1, 5, 100, 1000, 4096, 65535, 1000000)
ROUND = 24  # one round fires every combination: each method 8 times, each size 3 times
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


@pytest.fixture(scope="module")
def workload(build):
    return build("serve_workload.c", "serve_workload")


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse_exposition(text: str) -> dict:
    """{(name, ((label, value), ...) sorted): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(sorted((k, unescape(v)) for k, v in LABEL.findall(m.group(2) or "")))
        value = m.group(3)
        out[(m.group(1), labels)] = float(value) if any(c in value for c in ".eInN") else int(value)
    return out


class Serve:
    """`pyusdt serve CONFIG --listen 127.0.0.1:0` in the background; the port
    it chose read from its log line; stderr collected by a thread."""

    def __init__(self, config: Path):
        # The installed console script, as users run it (the source tree has no native module).
        self.p = subprocess.Popen([PYUSDT, "serve", str(config), "--listen", "127.0.0.1:0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self._reader = threading.Thread(target=lambda: self.err.extend(line.rstrip("\n") for line in self.p.stderr),
                                        daemon=True)
        self._reader.start()
        self.port = 0
        deadline = time.monotonic() + 60
        while not self.port:
            for line in self.err:
                m = re.search(r"on http://127\.0\.0\.1:(\d+)/metrics", line)
                if m:
                    self.port = int(m.group(1))
            assert self.p.poll() is None, f"pyusdt serve exited with {self.p.returncode}: {self.err}"
            assert time.monotonic() < deadline, f"pyusdt serve did not start: {self.err}"
            time.sleep(0.02)

    def scrape(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as r:
            assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            return parse_exposition(r.read().decode())

    def wait_for(self, cond, what: str, timeout: float = 30.0) -> dict:
        """Scrapes until `cond(samples)` holds (the timeout only turns a hang into a failure)."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.scrape()
            if cond(samples):
                return samples
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.err}"
            time.sleep(0.05)

    def bpf_ids(self) -> tuple[set, set]:
        infos = fdinfos(self.p.pid)
        return ({int(i["prog_id"]) for i in infos if "prog_id" in i},
                {int(i["link_id"]) for i in infos if "link_id" in i})

    def stop(self, sig=signal.SIGTERM) -> int:
        self.p.send_signal(sig)
        rc = self.p.wait(30)
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def bpftool_ids(kind: str) -> set:
    res = subprocess.run(["bpftool", "-j", kind, "list"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return {item["id"] for item in json.loads(res.stdout or "[]")}


def assert_detached(progs: set, links: set, timeout: float = 10.0) -> None:
    """None of the programs and links the exporter held is left (the kernel
    frees them a moment after the fds close)."""
    deadline = time.monotonic() + timeout
    while (progs & bpftool_ids("prog")) or (links & bpftool_ids("link")):
        assert time.monotonic() < deadline, (f"still attached: programs {progs & bpftool_ids('prog')}, "
                                             f"links {links & bpftool_ids('link')}")
        time.sleep(0.05)


def port_closed(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except OSError:
        return True
    return False


def start_workload(prog) -> Child:
    c = Child([prog])
    line = c.readline()
    assert line == f"pid {c.pid}", line
    return c


def fire(c: Child, cmd: str, expect: str) -> None:
    c.send(cmd)
    assert c.readline() == expect


def fired(rounds: int) -> list[int]:
    return [BYTES[s % 8] for s in range(rounds * ROUND)]


def le_value(text: str) -> float:
    return float("inf") if text == "+Inf" else float(text)


def buckets(samples: dict, name: str, labels: tuple = ()) -> dict:
    """{le: cumulative count} of one histogram series."""
    out = {}
    for (n, lab), v in samples.items():
        if n == name + "_bucket" and tuple(x for x in lab if x[0] != "le") == labels:
            out[dict(lab)["le"]] = v
    return out


def check_histogram(samples: dict, name: str, values: list, labels: tuple = ()) -> None:
    """Every bucket counts exactly the values <= its le; _sum and _count exact."""
    got = buckets(samples, name, labels)
    assert got, f"no buckets of {name}"
    for le, count in got.items():
        assert count == sum(v <= le_value(le) for v in values), (name, le, count)
    assert got["+Inf"] == len(values)
    assert samples[(name + "_sum", labels)] == sum(values)
    assert samples[(name + "_count", labels)] == len(values)


def write_config(path: Path, metrics: list, **top) -> Path:
    path.write_text(json.dumps({"metrics": metrics, **top}))
    return path


def test_serve_exact_values_reload_pid_exit_and_clean_stop(bpf, workload, tmp_path):
    prog = workload
    app = start_workload(prog)
    served = None
    path = [{"path": str(prog)}]
    methods = {"name": "requests", "kind": "count", "probe": "serve:request", "by": "str(arg0)",
               "labels": ["method"], "targets": path}
    by_status = {"name": "by_status", "kind": "count", "probe": "serve:request", "by": "arg1", "labels": ["status"],
                 "max_series": 1, "targets": path}
    metrics = [
        methods,
        by_status,
        {"name": "response", "kind": "sum", "probe": "serve:request", "value": "arg2", "unit": "bytes",
         "targets": path},
        {"name": "response_size", "kind": "hist", "probe": "serve:request", "value": "arg2", "unit": "bytes",
         "targets": path},
        {"name": "status", "kind": "lhist", "probe": "serve:request", "value": "arg1",
         "lhist": {"min": 100, "max": 600, "step": 100}, "targets": path},
        {"name": "request_duration", "kind": "latency", "start": "serve:start", "done": "serve:done",
         "pair_by": 0, "targets": path},
        {"name": "pid_requests", "kind": "count", "probe": "serve:request", "targets": [{"pid": app.pid}]},
    ]
    config = write_config(tmp_path / "serve.json", metrics)
    try:
        served = Serve(config)
        progs, links = served.bpf_ids()
        assert progs and links
        before = served.scrape()  # nothing fired yet: unkeyed counters read 0, keyed ones have no series
        assert before[("pyusdt_pid_requests_total", ())] == 0
        assert not any(name == "pyusdt_requests_total" for name, _ in before)

        fire(app, f"r {ROUND}", f"requests {ROUND}")
        fire(app, "l 3", "timed 3")
        s = served.wait_for(lambda s: s.get(("pyusdt_request_duration_seconds_count", ())) == 3, "3 latencies")
        assert {lab: v for (n, lab), v in s.items() if n == "pyusdt_requests_total"} == {
            (("method", m),): 8 for m in METHODS}  # the odd one's quote, backslash and newline escaped and back
        # max_series 1: status 200 keeps its series, 404 and 503 are summed and counted
        assert {lab: v for (n, lab), v in s.items() if n == "pyusdt_by_status_total"} == {
            (("status", "200"),): 12, (("status", "__overflow__"),): 12}
        assert s[("pyusdt_series_dropped_total", (("metric", "by_status"),))] == 2
        assert s[("pyusdt_series_dropped_total", (("metric", "requests"),))] == 0
        assert s[("pyusdt_response_bytes_total", ())] == sum(fired(1))
        check_histogram(s, "pyusdt_response_size_bytes", fired(1))
        assert list(buckets(s, "pyusdt_response_size_bytes")) == [
            str((1 << k) - 1) for k in range(21)] + ["+Inf"]  # le 0, 1, 3, ... 1048575: up to the highest
        statuses = [STATUS[i % 4] for i in range(ROUND)]
        check_histogram(s, "pyusdt_status", statuses)
        assert list(buckets(s, "pyusdt_status")) == ["99", "199", "299", "399", "499", "599", "+Inf"]
        lat = buckets(s, "pyusdt_request_duration_seconds")
        assert lat["0.001048575"] == 0 and lat["+Inf"] == 3  # each took at least the 2 ms slept
        assert s[("pyusdt_request_duration_seconds_sum", ())] >= 0.006
        assert s[("pyusdt_pid_requests_total", ())] == ROUND
        # self-metrics
        req = (("metric", "requests"),)
        assert s[("pyusdt_probe_hits_total", (("metric", "requests"), ("probe", "serve:request")))] == ROUND
        assert s[("pyusdt_aggregation_hits_total", req)] == ROUND
        assert s[("pyusdt_aggregation_drops_total", (("cause", "map_full"), ("metric", "requests")))] == 0
        assert s[("pyusdt_target_attached", (("metric", "pid_requests"), ("target", f"pid:{app.pid}")))] == 1
        assert s[("pyusdt_target_attached", (("metric", "requests"), ("target", f"path:{prog}")))] == 1
        assert s[("pyusdt_attached_sites", (("metric", "request_duration"),))] == 2
        assert s[("pyusdt_latency_pending", (("metric", "request_duration"),))] == 0

        # SIGHUP: `requests` unchanged keeps counting; by_status removed; `posts` new.
        posts = {"name": "posts", "kind": "count", "probe": "serve:request", "where": 'str(arg0) == "POST"',
                 "targets": path}
        write_config(config, [methods, posts, metrics[-1]])
        served.p.send_signal(signal.SIGHUP)
        s = served.wait_for(lambda s: s.get(("pyusdt_config_reloads_total", (("result", "success"),))) == 1,
                            "the reload")
        assert s[("pyusdt_config_last_reload_success", ())] == 1
        assert not any(n.startswith("pyusdt_by_status") for n, _ in s)
        fire(app, f"r {ROUND}", f"requests {2 * ROUND}")
        s = served.wait_for(lambda s: s.get(("pyusdt_posts_total", ())) == 8, "the new metric's 8 POSTs")
        assert {lab: v for (n, lab), v in s.items() if n == "pyusdt_requests_total"} == {
            (("method", m),): 16 for m in METHODS}
        assert s[("pyusdt_aggregation_filtered_total", (("metric", "posts"),))] == 16

        # A bad config changes nothing: one line logged, the success gauge 0.
        config.write_text('{"metrics": [{"name": "x"')
        served.p.send_signal(signal.SIGHUP)
        s = served.wait_for(lambda s: s.get(("pyusdt_config_reloads_total", (("result", "failure"),))) == 1,
                            "the failed reload")
        assert s[("pyusdt_config_last_reload_success", ())] == 0
        assert s[("pyusdt_posts_total", ())] == 8
        assert [line for line in served.err if "not reloaded" in line] == [
            f"pyusdt: serve: config not reloaded, the previous one goes on: {config}: not valid JSON: "
            "line 1 column 26: Expecting ',' delimiter"]

        # The pid target exits: reported, its counts kept, the exporter goes on.
        app.send("q")
        assert app.wait() == 0
        s = served.wait_for(lambda s: s.get(("pyusdt_target_attached", (("metric", "pid_requests"),
                                                                        ("target", f"pid:{app.pid}")))) == 0,
                            "the pid target reported gone")
        assert s[("pyusdt_pid_requests_total", ())] == 2 * ROUND
        progs, links = progs | served.bpf_ids()[0], links | served.bpf_ids()[1]

        port = served.port
        assert served.stop(signal.SIGTERM) == 0, served.err
        assert not any("Traceback" in line for line in served.err), served.err
        assert_detached(progs, links)
        assert port_closed(port)
    finally:
        app.kill()
        if served is not None:
            served.kill()


def test_serve_attaches_a_file_that_appears_later_and_stops_on_sigint(bpf, workload, tmp_path):
    later = tmp_path / "bin" / "late_workload"
    config = write_config(tmp_path / "serve.json", [
        {"name": "late", "kind": "count", "probe": "serve:request", "targets": [{"path": str(later)}]}],
        retry_interval=0.2)
    served = app = None
    try:
        served = Serve(config)
        s = served.scrape()
        target = (("metric", "late"), ("target", f"path:{later}"))
        assert s[("pyusdt_target_attached", target)] == 0
        assert ("pyusdt_late_total", ()) not in s  # not attached, not started: no value to claim yet
        later.parent.mkdir()
        shutil.copy(workload, later)
        served.wait_for(lambda s: s[("pyusdt_target_attached", target)] == 1, "the late file attached")
        assert s[("pyusdt_attach_errors_total", (("metric", "late"),))] >= 1
        app = start_workload(later)
        fire(app, "r 5", "requests 5")
        served.wait_for(lambda s: s.get(("pyusdt_late_total", ())) == 5, "5 requests of the late file")
        progs, links = served.bpf_ids()
        assert served.stop(signal.SIGINT) == 0, served.err
        assert_detached(progs, links)
        # the traced program runs on, unharmed
        fire(app, "r 1", "requests 6")
    finally:
        if app is not None:
            app.kill()
        if served is not None:
            served.kill()
