"""The exporter's own metrics (names, types and help in metric_names.SELF_METRICS):
what is attached, what every probe and aggregation counted and lost, the
reloads, and how long the scrape took."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pyusdt.serve.exposition import MetricFamily, Number, Sample
from pyusdt.serve.metric_names import SELF_METRICS
from pyusdt.serve.metric_runner import MetricStatus

_KINDS = {name: (kind, text) for name, kind, text in SELF_METRICS}
# ProbeStats fields that are hits lost, by the cause label they get.
PROBE_DROP_CAUSES = ("lost_ringbuf", "str_fail", "arg_fail", "busy")


@dataclass
class ReloadStatus:
    """Config reloads since the start."""

    successes: int = 0
    failures: int = 0
    last_success: bool = True
    last_success_time: float = 0.0


def self_families(metrics: Sequence[MetricStatus], reloads: ReloadStatus,
                  scrape_seconds: float) -> list[MetricFamily]:
    rows: dict[str, list[Sample]] = {name: [] for name in _KINDS}

    def add(name: str, labels: tuple[tuple[str, str], ...], value: Number) -> None:
        suffix = "_total" if _KINDS[name][0] == "counter" else ""
        rows[name].append(Sample(suffix, labels, value))

    for m in metrics:
        metric = (("metric", m.name),)
        for st in m.targets:
            add("pyusdt_target_attached", metric + (("target", st.target.label),), int(st.attached))
        add("pyusdt_attached_sites", metric, m.attached_sites)
        add("pyusdt_attach_errors", metric, m.attach_errors)
        add("pyusdt_attach_warnings", metric, m.warnings)
        by_probe: dict[str, list[int]] = {}  # the same probe in several files: one series
        for ps in m.probe_stats:
            counts = [ps.hits, *(getattr(ps, cause) for cause in PROBE_DROP_CAUSES)]
            by_probe[ps.probe] = [a + b for a, b in zip(by_probe.get(ps.probe, [0] * len(counts)), counts)]
        for probe in sorted(by_probe):
            hits, *drops = by_probe[probe]
            add("pyusdt_probe_hits", metric + (("probe", probe),), hits)
            for cause, n in zip(PROBE_DROP_CAUSES, drops):
                add("pyusdt_probe_drops", metric + (("probe", probe), ("cause", cause)), n)
        if m.result is not None:
            c = m.result.counters
            add("pyusdt_aggregation_hits", metric, c.hits)
            causes = [("map_full", c.map_full)]
            if m.is_latency:
                causes += [("unmatched", c.unmatched), ("evicted", c.dropped)]
            for cause, n in causes:
                add("pyusdt_aggregation_drops", metric + (("cause", cause),), n)
            add("pyusdt_aggregation_filtered", metric, c.filtered)
            add("pyusdt_aggregation_read_failures", metric, c.read_fail)
            if m.is_latency:
                add("pyusdt_latency_pending", metric, c.pending)
        add("pyusdt_series_dropped", metric, m.series_dropped)
    add("pyusdt_config_reloads", (("result", "success"),), reloads.successes)
    add("pyusdt_config_reloads", (("result", "failure"),), reloads.failures)
    add("pyusdt_config_last_reload_success", (), int(reloads.last_success))
    add("pyusdt_config_last_reload_success_timestamp_seconds", (), reloads.last_success_time)
    add("pyusdt_scrape_duration_seconds", (), scrape_seconds)
    return [MetricFamily(name, kind, text, tuple(rows[name])) for name, (kind, text) in _KINDS.items()]
