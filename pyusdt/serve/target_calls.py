"""The one place a serve target becomes a Tracer call.

path, pid, container and cgroup targets call Tracer.attach_<kind> (for a
latency, attach_latency with <kind>=); an object target (a file name or
build-id) traces that object in every process on the host, containers and
processes started later included: Tracer.attach_object (attach_latency
with objects=).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

from pyusdt.aggregate.specs import Aggregate, Latency
from pyusdt.trace.tracer import Tracer

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.discover.probes import Probe
    from pyusdt.serve.config import Target


def attach_target(tracer: Tracer, target: Target, spec: Union[Aggregate, Latency],
                  probe: Optional[str]) -> list[Probe]:
    """Attaches `spec` (the metric's aggregation) in `target`: the probes
    matching `probe`, or a Latency's start and done probes."""
    kind, value = target.kind, target.value
    if isinstance(spec, Latency):
        if kind == "pid":
            assert isinstance(value, int)
            return tracer.attach_latency(spec, pid=value)
        assert isinstance(value, str)
        if kind == "path":
            return tracer.attach_latency(spec, path=value)
        if kind == "container":
            return tracer.attach_latency(spec, container=value)
        if kind == "cgroup":
            return tracer.attach_latency(spec, cgroup=value)
        return tracer.attach_latency(spec, objects=value)
    assert probe is not None  # MetricSpec checked it: every kind but latency has one
    if kind == "pid":
        assert isinstance(value, int)
        return tracer.attach_pid(value, probe, aggregate=spec)
    assert isinstance(value, str)
    if kind == "path":
        return tracer.attach_path(value, probe, aggregate=spec)
    if kind == "container":
        return tracer.attach_container(value, probe, aggregate=spec)
    if kind == "cgroup":
        return tracer.attach_cgroup(value, probe, aggregate=spec)
    return tracer.attach_object(value, probe, aggregate=spec)
