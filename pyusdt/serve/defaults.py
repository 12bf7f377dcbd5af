"""Every default and limit of `pyusdt serve`, each defined once."""
from __future__ import annotations

# 9435: not in IANA's registry nor in Prometheus's list of exporter default
# ports (which has 9434 and 9436 taken, 9435 free when this was written).
DEFAULT_PORT = 9435
DEFAULT_LISTEN = f"0.0.0.0:{DEFAULT_PORT}"
# Prefix of every exported metric name (config "namespace").
DEFAULT_NAMESPACE = "pyusdt"
# Series (label sets) one metric exports; the keys beyond are summed into one
# series labelled OVERFLOW_LABEL_VALUE and counted in pyusdt_series_dropped_total.
DEFAULT_MAX_SERIES = 1000
MAX_SERIES_LIMIT = 1_000_000
OVERFLOW_LABEL_VALUE = "__overflow__"
# Targets that failed to attach (no such file yet, no process, no probe
# matched) are tried again this often.
# (config "retry_interval").
RETRY_INTERVAL_S = 5.0
MAX_RETRY_INTERVAL_S = 24 * 3600.0
# The run loop's tick: every tracer is polled this often (objects a traced
# process dlopens are attached from the poll) and signals are seen within it.
POLL_INTERVAL_S = 0.1
# How long the HTTP server waits for a slow client before giving up on it.
HTTP_TIMEOUT_S = 10.0
# Latency is exported in seconds; the kernel times in nanoseconds.
NS_PER_SECOND = 1_000_000_000
