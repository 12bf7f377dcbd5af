"""64-bit machine arithmetic, as the BPF interpreter does it.

Values are Python ints in 0 .. 2**64-1 (the register's bits); `signed` says
how an operation reads them.
"""
from __future__ import annotations

import operator
from typing import Callable

MASK = (1 << 64) - 1
SIGN_BIT = 1 << 63


# The operations whose 64-bit result is Python's, wrapped.
_OPERATORS: dict[str, Callable[[int, int], int]] = {
    "ADD": operator.add, "SUB": operator.sub, "MUL": operator.mul,
    "AND": operator.and_, "OR": operator.or_, "XOR": operator.xor,
    "EQ": operator.eq, "NE": operator.ne, "LT": operator.lt,
    "LE": operator.le, "GT": operator.gt, "GE": operator.ge,
}


def to_u64(value: int) -> int:
    return value & MASK


def to_s64(value: int) -> int:
    value &= MASK
    return value - (1 << 64) if value & SIGN_BIT else value


def extend(value: int, size: int, signed: bool) -> int:
    """`value` cut to `size` bytes and extended back to 64 bits (0 or >= 8: unchanged)."""
    if size == 0 or size >= 8:
        return to_u64(value)
    bits = 8 * size
    low = value & ((1 << bits) - 1)
    if signed and low >> (bits - 1):
        low -= 1 << bits
    return to_u64(low)


def _divide(a: int, b: int, signed: bool) -> tuple[int, int]:
    """Quotient and remainder truncated toward zero (C's, and BPF's sdiv/smod)."""
    if signed:
        a, b = to_s64(a), to_s64(b)
    quotient = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        quotient = -quotient
    return to_u64(quotient), to_u64(a - quotient * b)


def binary_op(op: str, a: int, b: int, signed: bool) -> int:
    """a OP b; x/0 and x%0 are 0; shift counts are taken modulo 64."""
    if op in ("DIV", "MOD"):
        if b == 0:
            return 0
        quotient, remainder = _divide(a, b, signed)
        return quotient if op == "DIV" else remainder
    if op == "SHR":
        return to_u64((to_s64(a) if signed else a) >> (b & 63))
    if op == "SHL":
        return to_u64(a << (b & 63))
    if op in ("LT", "LE", "GT", "GE") and signed:
        a, b = to_s64(a), to_s64(b)
    return to_u64(int(_OPERATORS[op](a, b)))
