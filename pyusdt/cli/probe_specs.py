"""Probe specs on trace's command line, one per positional argument, each
with its own predicate and fields, in bpftrace's shape:

    PATTERN [/PREDICATE/] [{ FIELDS }]

    'hotspot:method__entry { str(arg1, arg2), str(arg3, arg4) }'
    'hotspot:gc__done /arg0 > 0/'
    'app:request /str(arg0) == "GET"/ { str(arg1), arg2 }'

The pattern is the text up to the first blank, '/' after a blank, or '{'
(a PATH:provider:name pattern keeps its slashes).  The predicate runs to the
last '/' before the fields; the fields to the last '}'.  A spec without
either takes --where and --fields (and -s) of the command line."""
from __future__ import annotations

from typing import NamedTuple, Optional

from pyusdt import expr
from pyusdt.errors import ConfigError


class ProbeSpec(NamedTuple):
    """One probe spec, parsed.  (A NamedTuple, not a dataclass: trace's
    start-up imports this module, and a dataclass costs ~1 ms to create.)"""

    pattern: str
    where: Optional[str] = None
    fields: Optional[str] = None

    @property
    def plain(self) -> bool:
        """Only a pattern: the command line's options apply."""
        return self.where is None and self.fields is None


def _outside_strings(text: str, char: str) -> list[int]:
    """Positions of `char` in `text` that are not inside a "string literal"."""
    out, quoted, escaped = [], False, False
    for i, c in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == char:
            out.append(i)
    return out


def parse_spec(text: str) -> ProbeSpec:
    """One positional argument as a ProbeSpec; ConfigError naming the column
    of what is malformed, and the expressions' own errors for their syntax."""
    stripped = text.strip()
    braces = _outside_strings(stripped, "{")
    head_end = len(stripped)
    fields = None
    if braces:
        opening = braces[0]
        closings = _outside_strings(stripped, "}")
        if not closings or closings[-1] < opening:
            raise ConfigError(f"probe spec: no '}}' closes the '{{' at column {opening + 1} of '{text}'")
        after = stripped[closings[-1] + 1:]
        if after.strip():
            column = closings[-1] + 2 + len(after) - len(after.lstrip())
            raise ConfigError(f"probe spec: unexpected text after '}}' at column {column} of '{text}'")
        fields = stripped[opening + 1:closings[-1]].strip()
        if not fields:
            raise ConfigError(f"probe spec: empty '{{ }}' at column {opening + 1} of '{text}'")
        head_end = opening
    head = stripped[:head_end].rstrip()
    parts = head.split(None, 1)
    if not parts:
        raise ConfigError(f"probe spec: no pattern in '{text}'")
    pattern, rest = parts[0], (parts[1] if len(parts) > 1 else "")
    where = None
    if rest:
        at = head.index(rest)
        slashes = _outside_strings(rest, "/")
        if not rest.startswith("/"):
            raise ConfigError(f"probe spec: expected /PREDICATE/ or {{ FIELDS }} at column {at + 1} of '{text}'")
        if len(slashes) < 2:
            raise ConfigError(f"probe spec: no '/' closes the predicate at column {at + 1} of '{text}'")
        if rest[slashes[-1] + 1:].strip():
            raise ConfigError(f"probe spec: unexpected text after the predicate at column "
                              f"{at + slashes[-1] + 2} of '{text}'")
        where = rest[1:slashes[-1]].strip()
        if not where:
            raise ConfigError(f"probe spec: empty predicate at column {at + 1} of '{text}'")
    if where is not None:
        expr.parse(where)
    if fields is not None:
        expr.parse_list(fields)
    return ProbeSpec(pattern, where, fields)
