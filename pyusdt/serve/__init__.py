"""`pyusdt serve`: a long-running Prometheus exporter of in-kernel aggregations.

A :class:`ServeConfig` (built in code, or :func:`load_config` from a JSON
file) declares metrics: probes, an aggregation (count, sum, hist, lhist,
latency), keys as labels, a predicate, and the targets (path, pid,
container, cgroup).  An :class:`Exporter` traces them and renders the
Prometheus text exposition; :func:`serve` adds the HTTP server and signals.

    from pyusdt.serve import Exporter, MetricSpec, ServeConfig, Target

    config = ServeConfig(metrics=(MetricSpec("requests", "count", targets=(Target("pid", 1234),),
                                             probe="app:request", by="str(arg0)", labels=("method",)),))
    with Exporter(config) as exporter:
        print(exporter.render())

Files, one job each: config (the dataclasses and their checks),
config_file (JSON), metric_names (Prometheus's naming rules), aggregations
(spec -> Aggregate/Latency), target_calls (target kind -> Tracer call),
metric_runner (one metric's tracer, retries), series_cap (max_series),
families (results -> metric families), self_metrics, exposition (the text
formats), exporter, http_server, run (the loop and signals), defaults.
"""
from __future__ import annotations

from pyusdt.serve.config import MetricSpec, ServeConfig, ServeConfigError, Target, parse_listen
from pyusdt.serve.config_file import config_from_json, load_config
from pyusdt.serve.exporter import Exporter
from pyusdt.serve.exposition import MetricFamily, Sample, render
from pyusdt.serve.run import serve

__all__ = ["Exporter", "MetricFamily", "MetricSpec", "Sample", "ServeConfig", "ServeConfigError", "Target",
           "config_from_json", "load_config", "parse_listen", "render", "serve"]
