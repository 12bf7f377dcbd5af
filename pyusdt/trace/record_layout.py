"""The layout of an event row, as the native side defines it (from the C
struct in bpf/pyusdt_abi.h): numpy's dtype for batches, and a struct
unpacker for the per-event path, which needs no numpy.  A CLI trace prints
its first events with this module alone: numpy's import is most of a
Python tracer's start-up, so it waits until a batch is used as an array."""
from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING, Any, Optional, Sequence

from pyusdt import _native

if TYPE_CHECKING:  # pragma: no cover - type names only
    import numpy as np

# numpy's little-endian formats -> struct's; "(n,)X" is n of them.
_STRUCT_CODES = {"<u8": "Q", "<i8": "q", "<u4": "I", "<i4": "i", "<u2": "H", "u1": "B"}
_SHAPED = re.compile(r"\((\d+),\)(.+)")


def _struct_code(fmt: str) -> tuple[str, int]:
    """(struct code, how many values) of one numpy field format."""
    count = 1
    shaped = _SHAPED.fullmatch(fmt)
    if shaped:
        count, fmt = int(shaped.group(1)), shaped.group(2)
    if fmt.startswith("S"):  # fixed-width bytes: each one value
        return f"{fmt[1:]}s" * count, count
    return f"{count}{_STRUCT_CODES[fmt]}", count


class RecordLayout:
    """One session's event row: field names, numpy formats, offsets, size."""

    def __init__(self, names: Sequence[str], formats: Sequence[str], offsets: Sequence[int], itemsize: int):
        self.names = tuple(names)
        self.formats = tuple(formats)
        self.offsets = tuple(offsets)
        self.itemsize = itemsize
        parts: list[str] = ["<"]
        self._spans: dict[str, tuple[int, int, bool]] = {}
        at, value = 0, 0
        for name, fmt, off in sorted(zip(self.names, self.formats, self.offsets), key=lambda f: f[2]):
            if off > at:
                parts.append(f"{off - at}x")  # padding the C struct has
            code, count = _struct_code(fmt)
            parts.append(code)
            self._spans[name] = (value, count, fmt.startswith("("))
            value += count
            at = off + struct.calcsize("<" + code)
        if itemsize > at:
            parts.append(f"{itemsize - at}x")
        self.unpacker = struct.Struct("".join(parts))
        assert self.unpacker.size == itemsize, "the struct layout must cover the row exactly"
        self._dtype: Optional[np.dtype] = None

    @classmethod
    def of_session(cls, str_len: int, string_slots: int) -> RecordLayout:
        return cls(*_native.event_layout(str_len, string_slots))

    @classmethod
    def of_dtype(cls, dtype: np.dtype) -> RecordLayout:
        """The layout of rows a numpy array already holds."""
        fields: dict[str, Any] = dict(dtype.fields or {})
        names = list(fields)
        formats = [_numpy_format(fields[n][0]) for n in names]
        return cls(names, formats, [fields[n][1] for n in names], dtype.itemsize)

    @property
    def has_strings(self) -> bool:
        return "strings" in self.names

    def span(self, name: str) -> tuple[int, int, bool]:
        """(first value index in an unpacked row, values, is an array)."""
        return self._spans[name]

    def dtype(self) -> np.dtype:
        """The numpy dtype of these rows (imports numpy)."""
        if self._dtype is None:
            import numpy as np

            self._dtype = np.dtype({"names": list(self.names), "formats": list(self.formats),
                                    "offsets": list(self.offsets), "itemsize": self.itemsize})
        dtype: np.dtype = self._dtype
        return dtype


def _numpy_format(field: np.dtype) -> str:
    """numpy's own field dtype as the format strings event_layout gives."""
    if field.subdtype is not None:
        base, shape = field.subdtype
        return f"({shape[0]},){str(base.str).replace('|', '')}"
    return str(field.str).replace("|", "")


def decode_c_string(raw: bytes) -> str:
    """A string slot's bytes as text: up to the first NUL, UTF-8 with
    undecodable bytes replaced."""
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")
