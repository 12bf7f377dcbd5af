"""bpftrace's printf() for trace --printf: a C format applied to each event's
fields.  Conversions: %d %i %u %x %X %o %c %s %p and %%, with flags, width
and precision; length modifiers (l, ll, h, hh, z, j, t) are accepted and
ignored, since every field is already a 64-bit value or a string.  Escapes
\\n \\t \\\\ \\" \\0 in the format are what bpftrace makes of them.  As
bpftrace's, the output has no newline but the ones the format writes."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, Union

from pyusdt.errors import ConfigError

_SPEC = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d+)?(?:\.(?P<precision>\d+))?"
                   r"(?P<length>hh|h|ll|l|z|j|t)?(?P<conv>[diuxXocsp%])")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "0": "\0", "r": "\r", "a": "\a"}
_INTEGER = "diuxXocp"


@dataclass(frozen=True)
class _Conversion:
    python: str  # the Python %-format of this conversion
    conv: str


class Printf:
    """A parsed format: `render(values)` gives the text for one event."""

    def __init__(self, fmt: str, nfields: int) -> None:
        self.fmt = fmt
        self._parts: list[Union[str, _Conversion]] = []
        text = _unescape(fmt)
        at = 0
        for m in re.finditer(r"%", text):
            if m.start() < at:
                continue
            spec = _SPEC.match(text, m.start())
            if spec is None:
                raise ConfigError(f"--printf: unknown conversion at column {m.start() + 1} of {fmt!r} "
                                  "(known: %d %i %u %x %X %o %c %s %p %%)")
            self._parts.append(text[at:m.start()])
            at = spec.end()
            if spec["conv"] == "%":
                self._parts.append("%")
                continue
            conv = spec["conv"]
            py = {"i": "d", "u": "d", "p": "x"}.get(conv, conv)
            flags = spec["flags"] + ("#" if conv == "p" else "")
            width = spec["width"] or ""
            precision = f".{spec['precision']}" if spec["precision"] is not None else ""
            self._parts.append(_Conversion(f"%{flags}{width}{precision}{py}", conv))
        self._parts.append(text[at:])
        used = sum(isinstance(p, _Conversion) for p in self._parts)
        if used != nfields:
            raise ConfigError(f"--printf: '{fmt}' has {used} conversion(s) for {nfields} field(s)")

    def render(self, values: Sequence[Union[int, str, None]]) -> str:
        out: list[str] = []
        it = iter(values)
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            v = next(it)
            if v is None:  # a value the kernel could not read
                out.append("?")
            elif part.conv in _INTEGER and isinstance(v, str):
                out.append(v)
            elif part.conv == "s":
                out.append(part.python % str(v))
            elif part.conv == "c":
                out.append(part.python % chr(v & 0xFF) if isinstance(v, int) else str(v))
            elif part.conv in "uxXop" and isinstance(v, int) and v < 0:
                out.append(part.python % (v & ((1 << 64) - 1)))  # C prints the 64 bits unsigned
            else:
                out.append(part.python % v)
        return "".join(out)


def _unescape(fmt: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), fmt)
