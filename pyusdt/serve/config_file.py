"""Reading a serve config from a JSON file into a ServeConfig.

JSON, because every Python from 3.9 reads it with no extra package (YAML
needs one, TOML's reader arrived in 3.11).  Every object's keys are checked:
a key the format does not know is refused (a typo is not silently ignored);
keys starting with "_" are comments.  The format, by example (README,
deploy/serve-example.json):

    {
      "namespace": "pyusdt",
      "listen": "0.0.0.0:9435",
      "targets": [{"path": "/usr/bin/app"}],
      "metrics": [
        {"name": "requests", "kind": "count", "probe": "app:request",
         "by": "str(arg0)", "labels": ["method"]},
        {"name": "response_size", "kind": "hist", "probe": "app:request",
         "value": "arg2", "unit": "bytes", "targets": [{"pid": 1234}]},
        {"name": "status", "kind": "lhist", "probe": "app:request", "value": "arg1",
         "lhist": {"min": 100, "max": 600, "step": 100}},
        {"name": "request_duration", "kind": "latency", "start": "app:start",
         "done": "app:done", "pair_by": 0}
      ]
    }

A metric without "targets" takes the top-level ones.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional, Tuple

from pyusdt.serve.config import MetricSpec, ServeConfig, ServeConfigError, Target

_TOP_KEYS = ("metrics", "targets", "namespace", "listen", "retry_interval")
# JSON key -> MetricSpec field (the same names, but lhist's object and the
# lists that become tuples are converted below).
_METRIC_KEYS = ("name", "kind", "targets", "probe", "value", "by", "labels", "where", "help", "unit", "lhist",
                "start", "done", "pair_by", "resolution", "max_series")
_HINTS = {"key": "by", "keys": "by", "filter": "where", "predicate": "where", "target": "targets",
          "type": "kind", "pattern": "probe", "label": "labels"}


def load_config(path: "os.PathLike[str] | str") -> ServeConfig:
    """The ServeConfig in the JSON file at `path`; a ServeConfigError names
    the file, the metric and the field of anything wrong in it."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ServeConfigError(f"cannot read the config: {e.strerror}", source=source) from None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f"line {e.lineno} column {e.colno}: {e.msg}" if isinstance(e, json.JSONDecodeError) else str(e)
        raise ServeConfigError(f"not valid JSON: {where}", source=source) from None
    return config_from_json(data, source)


def config_from_json(data: Any, source: Optional[str] = None) -> ServeConfig:
    """A ServeConfig from the decoded JSON of a config file."""
    try:
        return _config(data, source)
    except ServeConfigError as e:
        raise (e.in_source(source) if source else e) from None


def _config(data: Any, source: Optional[str]) -> ServeConfig:
    if not isinstance(data, dict):
        raise ServeConfigError("the config is a JSON object with a \"metrics\" list")
    _check_keys(data, _TOP_KEYS, None)
    default_targets = _targets(data["targets"], None) if "targets" in data else None
    metrics = data.get("metrics")
    if not isinstance(metrics, list):
        raise ServeConfigError("a list of metric objects is needed", field="metrics")
    specs = []
    for i, m in enumerate(metrics):
        name = m.get("name") if isinstance(m, dict) else None
        label = name if isinstance(name, str) else f"#{i + 1}"
        if not isinstance(m, dict):
            raise ServeConfigError("a metric is a JSON object", metric=label)
        try:
            specs.append(_metric(m, default_targets, label))
        except ServeConfigError as e:
            raise ServeConfigError(e.reason, metric=label, field=e.field) from None
    return ServeConfig(metrics=tuple(specs), source=source,
                       **{k: data[k] for k in ("namespace", "listen", "retry_interval") if k in data})


def _metric(m: dict[str, Any], default_targets: Optional[Tuple[Target, ...]], label: str) -> MetricSpec:
    _check_keys(m, _METRIC_KEYS, label)
    fields = {k: v for k, v in m.items() if not k.startswith("_")}
    if "targets" in fields:
        fields["targets"] = _targets(fields["targets"], label)
    elif default_targets is not None:
        fields["targets"] = default_targets
    else:
        raise ServeConfigError("no targets: give the metric \"targets\", or the config top-level ones",
                               field="targets")
    if "labels" in fields:
        if not isinstance(fields["labels"], list):
            raise ServeConfigError(f"a list of label names (got {fields['labels']!r})", field="labels")
        fields["labels"] = tuple(fields["labels"])
    if "lhist" in fields:
        fields["lhist"] = _lhist(fields["lhist"])
    if isinstance(fields.get("pair_by"), list):
        fields["pair_by"] = tuple(fields["pair_by"])
    for required in ("name", "kind"):
        if required not in fields:
            raise ServeConfigError("missing", field=required)
    return MetricSpec(**fields)


def _lhist(value: Any) -> Tuple[int, int, int]:
    if not isinstance(value, dict) or set(value) != {"min", "max", "step"}:
        raise ServeConfigError(f"an object {{\"min\": ..., \"max\": ..., \"step\": ...}} (got {value!r})",
                               field="lhist")
    parts = (value["min"], value["max"], value["step"])
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in parts):
        raise ServeConfigError(f"min, max and step are integers (got {value!r})", field="lhist")
    return parts


def _targets(value: Any, metric: Optional[str]) -> Tuple[Target, ...]:
    if not isinstance(value, list):
        raise ServeConfigError(f"a list of targets such as [{{\"path\": \"/usr/bin/app\"}}] (got {value!r})",
                               metric=metric, field="targets")
    out = []
    for t in value:
        if not isinstance(t, dict) or len(t) != 1:
            raise ServeConfigError(f"a target is one of {{\"path\": ...}}, {{\"pid\": ...}}, {{\"container\": "
                                   f"...}}, {{\"cgroup\": ...}}, {{\"object\": ...}} (got {t!r})",
                                   metric=metric, field="targets")
        ((kind, v),) = t.items()
        try:
            out.append(Target(kind, v))
        except ServeConfigError as e:
            raise ServeConfigError(e.reason, metric=metric, field="targets") from None
    return tuple(out)


def _check_keys(obj: dict[str, Any], known: Tuple[str, ...], metric: Optional[str]) -> None:
    for k in obj:
        if not isinstance(k, str) or k.startswith("_") or k in known:
            continue
        hint = f" (did you mean {_HINTS[k]!r}?)" if k in _HINTS else ""
        raise ServeConfigError(f"unknown field{hint}; known: {', '.join(known)}", metric=metric, field=k)
