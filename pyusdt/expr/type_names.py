"""The integer types a cast may name: bpftrace's, C's and the kernel's spellings."""
from __future__ import annotations

import re
from typing import Optional

from pyusdt.expr.ast_nodes import CType

_CANONICAL = {f"{prefix}int{bits}": CType(f"{prefix}int{bits}", bits // 8, prefix == "")
              for prefix in ("", "u") for bits in (8, 16, 32, 64)}
_ALIASES = {
    "char": "int8", "signed char": "int8", "unsigned char": "uint8",
    "short": "int16", "signed short": "int16", "unsigned short": "uint16",
    "int": "int32", "signed int": "int32", "signed": "int32", "unsigned int": "uint32", "unsigned": "uint32",
    "long": "int64", "signed long": "int64", "unsigned long": "uint64",
    "long long": "int64", "signed long long": "int64", "unsigned long long": "uint64",
    "size_t": "uint64", "ssize_t": "int64",
}
for _bits in (8, 16, 32, 64):
    _ALIASES[f"u{_bits}"] = _ALIASES[f"uint{_bits}_t"] = f"uint{_bits}"
    _ALIASES[f"s{_bits}"] = _ALIASES[f"int{_bits}_t"] = f"int{_bits}"

# The words of C's multi-word spellings ("unsigned long long").
C_WORDS = frozenset({"signed", "unsigned", "char", "short", "int", "long"})
# A word that looks like a type name (int33, u128, uint7_t): an unknown type,
# not an unknown identifier.
_TYPE_LIKE = re.compile(r"(u?int|[us])[0-9]+(_t)?")


def lookup(spelling: str) -> Optional[CType]:
    """The type a (space-separated) spelling names, or None."""
    return _CANONICAL.get(_ALIASES.get(spelling, spelling))


def looks_like_type(word: str) -> bool:
    return word in C_WORDS or lookup(word) is not None or _TYPE_LIKE.fullmatch(word) is not None
