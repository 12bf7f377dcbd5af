"""The exporter: a ServeConfig's metrics, each traced by its own tracer, read
at every scrape.

    exporter = Exporter(config)
    exporter.start()              # attaches what it can; the rest is retried by maintain()
    text = exporter.render()      # the exposition text, as /metrics serves it
    exporter.maintain()           # call every POLL_INTERVAL_S (the serve loop does)
    exporter.reload(new_config)   # unchanged metrics keep running and counting
    exporter.close()              # every probe detached

Every method takes one lock: the HTTP server's thread renders while the
serve loop maintains and reloads.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Optional

from pyusdt.serve.config import ServeConfig
from pyusdt.serve.exposition import MetricFamily, render
from pyusdt.serve.families import metric_family
from pyusdt.serve.metric_runner import MetricRunner, MetricStatus
from pyusdt.serve.self_metrics import ReloadStatus, self_families

Log = Callable[[str], None]


def log_to_stderr(message: str) -> None:
    print(f"pyusdt: serve: {message}", file=sys.stderr, flush=True)


class Exporter:
    """Exports the metrics of a ServeConfig (see the module's docstring)."""

    def __init__(self, config: ServeConfig, log: Optional[Log] = None) -> None:
        self.config = config
        self.log: Log = log or log_to_stderr
        self.reloads = ReloadStatus(last_success_time=time.time())
        self._lock = threading.Lock()
        self._runners: dict[str, MetricRunner] = {}
        self._started = False

    def start(self) -> None:
        """Attaches every metric's targets that can be attached now (the others
        are tried again by maintain()).  Raises PrivilegeError or
        KernelSupportError when nothing can be traced at all."""
        with self._lock:
            if self._started:
                return
            self._started = True
            try:
                self._start_runners(self.config, {})
            except BaseException:
                self._close_runners()
                raise

    def _start_runners(self, config: ServeConfig, keep: dict[str, MetricRunner]) -> None:
        """Runners for `config`: those in `keep` as they are, new ones started."""
        self._runners = dict(keep)  # each new one joins as it is made: close() finds it if one fails
        for spec in config.metrics:
            if spec.name not in keep:
                runner = MetricRunner(spec, self.log, config.retry_interval)
                self._runners[spec.name] = runner
                runner.maintain()
        self._runners = {spec.name: self._runners[spec.name] for spec in config.metrics}  # config order

    def maintain(self) -> None:
        """Polls every tracer, notices exited processes, retries failed targets."""
        with self._lock:
            for runner in self._runners.values():
                runner.maintain()

    def reload(self, config: ServeConfig) -> None:
        """Switches to `config`: metrics whose spec is unchanged keep their
        tracer (and counts); changed and removed ones are closed; new ones start."""
        with self._lock:
            keep = {name: r for name, r in self._runners.items()
                    if name in {m.name for m in config.metrics} and config.metric(name) == r.spec}
            for name, runner in self._runners.items():
                if name not in keep:
                    runner.close()
            for runner in keep.values():
                runner.retry_interval = config.retry_interval
            self.config = config
            self._start_runners(config, keep)
            self.reloads.successes += 1
            self.reloads.last_success = True
            self.reloads.last_success_time = time.time()
            changed = len(config.metrics) - len(keep)
            self.log(f"config reloaded: {len(keep)} metric(s) unchanged, {changed} started")

    def reload_failed(self, reason: str) -> None:
        """A new config could not be used: the old one goes on (counted, logged)."""
        with self._lock:
            self.reloads.failures += 1
            self.reloads.last_success = False
        self.log(f"config not reloaded, the previous one goes on: {reason}")

    def collect(self) -> list[MetricFamily]:
        """Every metric's family (in config order), then the self-metrics."""
        with self._lock:
            began = time.monotonic()
            families: list[MetricFamily] = []
            statuses: list[MetricStatus] = []
            for runner in self._runners.values():
                result = runner.result()
                if result is not None:
                    families.append(metric_family(runner.spec, self.config.namespace, result, runner.cap))
                statuses.append(runner.status(result))
            took = time.monotonic() - began
            return families + self_families(statuses, self.reloads, took)

    def render(self, openmetrics: bool = False) -> str:
        """The exposition text: Prometheus 0.0.4, or OpenMetrics 1.0.0."""
        return render(self.collect(), openmetrics=openmetrics)

    def close(self) -> None:
        """Detaches every probe; idempotent."""
        with self._lock:
            self._close_runners()

    def _close_runners(self) -> None:
        for runner in self._runners.values():
            runner.close()
        self._runners = {}

    def __enter__(self) -> Exporter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
