"""Prometheus's naming rules, as `pyusdt serve` applies them: valid names,
exported names (namespace, unit suffix, _total), label names made from
expression text, and the names of the exporter's own metrics."""
from __future__ import annotations

import re
from typing import Optional, Sequence

# The data model's rules (prometheus.io/docs/concepts/data_model).
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# The sample names a histogram adds to its family's name: a histogram's own
# name cannot end in them (nor in a counter's _total) without confusing readers.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_total")

# The exporter's own metrics: (family name, type, help).  Counters' family
# names are without _total, as OpenMetrics names them.
SELF_METRICS: tuple[tuple[str, str, str], ...] = (
    ("pyusdt_target_attached", "gauge",
     "1 while the metric's probes are attached in the target, 0 while they are not (not yet, or the "
     "process exited)"),
    ("pyusdt_attached_sites", "gauge", "Probe sites the metric's tracer has attached"),
    ("pyusdt_attach_errors", "counter", "Attempts to attach a target that failed (each retry counts)"),
    ("pyusdt_attach_warnings", "counter", "Warnings while attaching (probes or sites left out)"),
    ("pyusdt_probe_hits", "counter", "Hits of each probe in the traced processes"),
    ("pyusdt_probe_drops", "counter", "Hits of each probe lost, by cause (lost_ringbuf, str_fail, arg_fail, busy)"),
    ("pyusdt_aggregation_hits", "counter", "Hits that reached the metric's aggregation"),
    ("pyusdt_aggregation_drops", "counter",
     "Values the aggregation lost, by cause: map_full (its map was full), unmatched (a latency done "
     "without its start), evicted (a latency start replaced or evicted before its done)"),
    ("pyusdt_aggregation_filtered", "counter", "Hits the metric's where predicate rejected"),
    ("pyusdt_aggregation_read_failures", "counter",
     "Values, keys or predicates whose memory could not be read (counted as 0, as bpftrace does)"),
    ("pyusdt_latency_pending", "gauge", "Latency starts waiting for their done"),
    ("pyusdt_series_dropped", "counter",
     "Label sets beyond the metric's max_series, summed into its __overflow__ series"),
    ("pyusdt_config_reloads", "counter", "Config reloads (SIGHUP), by result"),
    ("pyusdt_config_last_reload_success", "gauge", "1 if the last config reload succeeded, else 0"),
    ("pyusdt_config_last_reload_success_timestamp_seconds", "gauge",
     "When the config was last loaded successfully (Unix time)"),
    ("pyusdt_scrape_duration_seconds", "gauge", "Seconds this scrape took to read every aggregation"),
)


def sample_names(base: str, counter: bool) -> tuple[str, ...]:
    """Every name a family's samples (and its TYPE line, in either format) use."""
    if counter:
        return base, base + "_total"
    return base, base + "_bucket", base + "_sum", base + "_count"


SELF_METRIC_NAMES = frozenset(n for base, kind, _ in SELF_METRICS for n in sample_names(base, kind == "counter"))


def exported_name(namespace: str, name: str, unit: Optional[str], counter: bool) -> str:
    """NAMESPACE_NAME, then _UNIT unless the name ends in it already; a
    counter's family name is without _total (its samples add it), so a name
    given with _total is not doubled."""
    full = f"{namespace}_{name}" if namespace else name
    if counter and full.endswith("_total"):
        full = full[:-len("_total")]
    if unit and not full.endswith("_" + unit):
        full += "_" + unit
    return full


def label_names_for(texts: Sequence[str]) -> tuple[str, ...]:
    """A label name for each key expression, from its text: "str(arg0)" ->
    "str_arg0", "pid" -> "pid", "*(uint64 *)(arg1 + 8)" -> "uint64_arg1_8";
    made unique by a number where two come out the same."""
    names: list[str] = []
    for i, text in enumerate(texts):
        name = re.sub(r"[^a-zA-Z0-9_]+", "_", text).strip("_")
        if not name:
            name = f"key{i}"
        elif name[0].isdigit():
            name = "key_" + name
        if name == "le":  # a histogram's bucket label
            name = "key_le"
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return tuple(names)
