"""Prometheus's text exposition format (version 0.0.4), and OpenMetrics 1.0.0
for scrapers that ask for it: metric families in, text out.

The input is this module's own small types, so anything can be exported
(tests build them by hand): a :class:`MetricFamily` holds its name, type,
help and :class:`Sample` s; a sample's name is the family's name plus its
suffix (_total, _bucket, _sum, _count).  A counter family is named without
_total, as OpenMetrics names it; the 0.0.4 text puts _total in its TYPE and
HELP lines too, as Prometheus's client libraries do.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Tuple, Union

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Number = Union[int, float]
Labels = Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    """One line: the family's name + suffix, its labels (in order), its value."""

    suffix: str
    labels: Labels
    value: Number


@dataclass(frozen=True)
class MetricFamily:
    """A metric: its name (a counter's without _total), type (counter, gauge,
    histogram), help text and samples."""

    name: str
    type: str
    help: str
    samples: Tuple[Sample, ...]


def escape_label_value(value: str) -> str:
    """A label value as both formats quote it: backslash, double quote and
    newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str, openmetrics: bool) -> str:
    """HELP text: 0.0.4 escapes backslash and newline; OpenMetrics the double quote too."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def format_value(value: Number) -> str:
    """Integers exactly (a float64 would round counts above 2^53), floats in
    Python's shortest round-tripping form; +Inf, -Inf and NaN as both
    formats spell them."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def format_bound(bound: Number) -> str:
    """An `le` label value: the same spelling as a sample value."""
    return format_value(bound)


def _labels_text(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels) + "}"


def render(families: Iterable[MetricFamily], openmetrics: bool = False) -> str:
    """The exposition text of `families`, in order (OpenMetrics ends with # EOF)."""
    out = []
    for fam in families:
        header = fam.name + "_total" if fam.type == "counter" and not openmetrics else fam.name
        out.append(f"# HELP {header} {escape_help(fam.help, openmetrics)}\n")
        out.append(f"# TYPE {header} {fam.type}\n")
        for s in fam.samples:
            out.append(f"{fam.name}{s.suffix}{_labels_text(s.labels)} {format_value(s.value)}\n")
    if openmetrics:
        out.append("# EOF\n")
    return "".join(out)


def wants_openmetrics(accept: str) -> bool:
    """Whether an Accept header asks for OpenMetrics before the 0.0.4 text:
    application/openmetrics-text listed (with a q above 0) before text/plain
    or */*, as Prometheus 2.x sends it."""
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media == "application/openmetrics-text":
            return not any(_is_zero_q(p) for p in params)
        if media in ("text/plain", "*/*"):
            return False
    return False


def _is_zero_q(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip() != "q":
        return False
    try:
        return float(value) == 0
    except ValueError:
        return False
