"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes `pyusdt serve`,
and its query API gives back exactly what the workload fired: counters,
histogram buckets, the label with a quote, a backslash and a newline.

Prometheus 2.x asks for OpenMetrics first, so this checks that format as
Prometheus parses it.  Raw samples are queried (the instant value and
max_over_time), never increase() or rate(), which extrapolate; every check
polls the API until the sample appears, with a generous deadline.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import missing
from test_serve import BYTES, METHODS, ROUND, STATUS, Serve, fire, start_workload, write_config

PROMETHEUS = "/usr/bin/prometheus"


@pytest.fixture(scope="module")
def workload(build):
    return build("serve_workload.c", "serve_workload")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, tmp_path, target_port: int):
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: pyusdt\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n")
        self.log = open(tmp_path / "prometheus.log", "w+")
        self.p = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                   f"--web.listen-address=127.0.0.1:{self.port}"],
                                  stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._ready():
            assert self.p.poll() is None, f"prometheus exited with {self.p.returncode}: {self.output()}"
            assert time.monotonic() < deadline, f"prometheus not ready: {self.output()}"
            time.sleep(0.1)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str):
        """The single value of `promql`, or None while it has none."""
        result = self.query(promql)
        if len(result) != 1:
            return None
        return float(result[0]["value"][1])

    def wait_value(self, promql: str, want: float, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        got = None
        while got != want:
            assert time.monotonic() < deadline, f"{promql} = {got}, not {want}; prometheus: {self.output()}"
            time.sleep(0.2)
            got = self.value(promql)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def test_prometheus_scrapes_exact_values(bpf, workload, tmp_path):
    if shutil.which(PROMETHEUS) is None:
        missing("prometheus is not installed (Debian's package `prometheus`)")
    app = start_workload(workload)
    served = prom = None
    path = [{"path": str(workload)}]
    config = write_config(tmp_path / "serve.json", [
        {"name": "requests", "kind": "count", "probe": "serve:request", "by": "str(arg0)", "labels": ["method"]},
        {"name": "response", "kind": "sum", "probe": "serve:request", "value": "arg2", "unit": "bytes"},
        {"name": "response_size", "kind": "hist", "probe": "serve:request", "value": "arg2", "unit": "bytes"},
        {"name": "status", "kind": "lhist", "probe": "serve:request", "value": "arg1",
         "lhist": {"min": 100, "max": 600, "step": 100}},
    ], targets=path)
    try:
        served = Serve(config)
        prom = Prometheus(tmp_path, served.port)
        prom.wait_value('up{job="pyusdt"}', 1)
        fire(app, f"r {ROUND}", f"requests {ROUND}")
        sizes = [BYTES[s % 8] for s in range(ROUND)]
        statuses = [STATUS[s % 4] for s in range(ROUND)]
        prom.wait_value("pyusdt_response_bytes_total", sum(sizes))
        for method in METHODS:
            selector = "{method=" + json.dumps(method) + "}"  # PromQL strings escape as JSON's do
            prom.wait_value(f"max_over_time(pyusdt_requests_total{selector}[1m])", 8)
        assert sorted(r["metric"]["method"] for r in prom.query("pyusdt_requests_total")) == sorted(METHODS)
        for le in ("0", "1", "7", "1023", "65535", "1048575"):
            prom.wait_value(f'pyusdt_response_size_bytes_bucket{{le="{le}"}}', sum(v <= int(le) for v in sizes))
        prom.wait_value('pyusdt_response_size_bytes_bucket{le="+Inf"}', ROUND)
        prom.wait_value("pyusdt_response_size_bytes_count", ROUND)
        prom.wait_value("pyusdt_response_size_bytes_sum", sum(sizes))
        for le in ("199", "299", "499", "599"):
            prom.wait_value(f'pyusdt_status_bucket{{le="{le}"}}', sum(v <= int(le) for v in statuses))
        prom.wait_value('pyusdt_probe_hits_total{metric="requests",probe="serve:request"}', ROUND)
        prom.wait_value('pyusdt_target_attached{metric="status"}', 1)
    finally:
        if prom is not None:
            prom.close()
        if served is not None:
            served.kill()
        app.kill()
