"""Probe patterns as bpftrace writes them: provider:name globs, and
PATH:provider:name for a file that may not be mapped yet."""
from __future__ import annotations

import fnmatch
from typing import Iterable, Optional

from pyusdt.discover.probes import Probe
from pyusdt.errors import ConfigTypeError, NoMatchError, NoProbesError


def normalize_pattern(pattern: Optional[str]) -> str:
    """A glob on provider:name; a bare name matches it under any provider."""
    if not pattern:
        return "*:*"
    if not isinstance(pattern, str):
        raise ConfigTypeError(f"a probe pattern must be a str (got {pattern!r})")
    return pattern if ":" in pattern else f"*:{pattern}"


def split_path_pattern(pattern: Optional[str]) -> Optional[tuple[str, str]]:
    """bpftrace's path-qualified form, PATH:provider:name (or PATH:name, or
    PATH alone): (PATH, the rest as a pattern); None for a plain pattern.
    A pattern names a file when it starts with '/'."""
    if not pattern or not pattern.startswith("/"):
        return None
    parts = pattern.rsplit(":", 2)
    if len(parts) == 1:
        return parts[0], "*"
    if len(parts) == 2:
        return parts[0], parts[1]
    return parts[0], f"{parts[1]}:{parts[2]}"


def match(probes: Iterable[Probe], pattern: Optional[str]) -> list[Probe]:
    pat = normalize_pattern(pattern)
    return [p for p in probes if fnmatch.fnmatchcase(p.fullname, pat)]


def require_match(probes: list[Probe], pattern: Optional[str], where: str) -> list[Probe]:
    """The probes matching `pattern`, or a clear error for none at all / none matching."""
    if not probes:
        raise NoProbesError(f"{where}: no USDT probes")
    found = match(probes, pattern)
    if not found:
        raise NoMatchError(f"{where}: no probe matches '{pattern}'")
    return found
