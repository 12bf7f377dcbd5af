"""The one place a serve target becomes a Tracer call.

path and pid targets call Tracer.attach_path / attach_pid (attach_latency
with path= / pid=).  container and cgroup targets call
Tracer.attach_container / attach_cgroup (attach_latency with container= /
cgroup=) with the same arguments; until this pyusdt's Tracer has those
methods, a config naming such a target is refused with one line saying so.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from pyusdt.aggregate.specs import Aggregate, Latency
from pyusdt.trace.tracer import Tracer

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.discover.probes import Probe
    from pyusdt.serve.config import Target

# Target kinds whose Tracer method is attach_<kind>, and whose attach_latency
# keyword is <kind>=.
_NEWER_KINDS = ("container", "cgroup")


def missing_target_support(kind: str) -> Optional[str]:
    """Why this pyusdt cannot trace targets of `kind` (None: it can)."""
    if kind in _NEWER_KINDS and not hasattr(Tracer, f"attach_{kind}"):
        return (f"{kind} targets need Tracer.attach_{kind}(), which this version of pyusdt does not have "
                "yet: use path or pid targets")
    return None


def attach_target(tracer: Tracer, target: Target, spec: Union[Aggregate, Latency],
                  probe: Optional[str]) -> list[Probe]:
    """Attaches `spec` (the metric's aggregation) in `target`: the probes
    matching `probe`, or a Latency's start and done probes."""
    kind, value = target.kind, target.value
    if isinstance(spec, Latency):
        if kind == "path":
            assert isinstance(value, str)
            return tracer.attach_latency(spec, path=value)
        if kind == "pid":
            assert isinstance(value, int)
            return tracer.attach_latency(spec, pid=value)
        newer_latency: Any = tracer.attach_latency  # container= / cgroup= arrive with attach_container
        probes: list[Probe] = newer_latency(spec, **{kind: value})
        return probes
    assert probe is not None  # MetricSpec checked it: every kind but latency has one
    if kind == "path":
        assert isinstance(value, str)
        return tracer.attach_path(value, probe, aggregate=spec)
    if kind == "pid":
        assert isinstance(value, int)
        return tracer.attach_pid(value, probe, aggregate=spec)
    newer: Any = getattr(tracer, f"attach_{kind}")
    found: list[Probe] = newer(value, probe, aggregate=spec)
    return found
