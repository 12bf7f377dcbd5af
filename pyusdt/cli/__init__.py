"""The `pyusdt` command: main parses and dispatches, one module per command
(list, trace, aggregate with hist/lhist/count/latency, demo), and targets
holds what they share (-p, -c, PATH, stopping)."""
