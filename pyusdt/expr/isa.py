"""The instruction set of the expression stack machine, as Python sees it.

The numbers here are the BPF interpreter's (PYUSDT_EXPR_* and
PYUSDT_EXPR_OPS in bpf/pyusdt_abi.h); the integrator checks them against
the native module, so each is a named constant defined once.
"""
from __future__ import annotations

from dataclasses import dataclass

# Bits of Insn.flags.
SIGNED = 0x1  # signed division, shift, comparison or extension
WITH_LEN = 0x2  # STR: a length was pushed after the pointer
TO_OUT = 0x4  # STR, COMM: into the output at `off`, not a temporary string

MAX_INSNS = 32  # instructions in one program (the interpreter's loop count)
STACK = 8  # values on the stack at once
TMP_STRS = 2  # temporary strings (for comparisons)
LIT_BYTES = 128  # bytes of string literals in one program, NULs included
STR_KEY_LEN = 64  # bytes of a temporary string or a string key, NUL included
TUPLE_KEY_LEN = 128  # bytes of an aggregation key made of expressions
MAX_FIELDS = 12  # output fields of one program (the failure bits per record)
COMM_LEN = 16  # the kernel's TASK_COMM_LEN: what COMM writes, NUL padding included

# In the order of PYUSDT_EXPR_OPS: an op's number is its index.  END is the
# zero the BPF side finds after a program shorter than MAX_INSNS; Python never
# emits it.
OPS = ("END", "ARG", "IMM", "PID", "TID", "CPU", "NSECS", "PROBE",
       "LOAD", "EXT", "ADD", "SUB", "MUL", "DIV", "MOD", "AND", "OR", "XOR", "SHL", "SHR",
       "EQ", "NE", "LT", "LE", "GT", "GE", "NEG", "NOT", "LNOT", "JZ", "JNZ", "BOOL",
       "STR", "COMM", "STREQ", "OUT", "USTACK")
OPCODES = {name: number for number, name in enumerate(OPS)}

PUSHERS = frozenset({"ARG", "IMM", "PID", "TID", "CPU", "NSECS", "PROBE", "STREQ", "USTACK"})
UNARY = frozenset({"LOAD", "EXT", "NEG", "NOT", "LNOT", "BOOL"})
ARITHMETIC = frozenset({"ADD", "SUB", "MUL", "DIV", "MOD", "AND", "OR", "XOR", "SHL", "SHR"})
COMPARISONS = frozenset({"EQ", "NE", "LT", "LE", "GT", "GE"})
BINARY = ARITHMETIC | COMPARISONS

# The widths of struct pyusdt_insn's fields.
_FIELD_BITS = {"size": 8, "flags": 8, "field": 8, "off": 16}


@dataclass(frozen=True)
class Insn:
    """One instruction (struct pyusdt_insn)."""

    op: str
    size: int = 0
    flags: int = 0
    field: int = 0
    off: int = 0
    imm: int = 0

    def __post_init__(self) -> None:
        # A value that does not fit its C field is a bug in whoever built the
        # instruction (an offset from the integrator, say), not a bad expression.
        if self.op not in OPCODES:
            raise ValueError(f"unknown op {self.op!r}")
        for name, bits in _FIELD_BITS.items():
            value = getattr(self, name)
            if not 0 <= value < 1 << bits:
                raise ValueError(f"{self.op}: {name} {value} does not fit in {bits} bits")
        if not -(1 << 63) <= self.imm < 1 << 63:
            raise ValueError(f"{self.op}: imm {self.imm} is not a signed 64-bit number")


@dataclass(frozen=True)
class Program:
    """Instructions (at most MAX_INSNS, no END) and the string literals they name."""

    insns: tuple[Insn, ...]
    lits: bytes = b""


def stack_effect(insn: Insn) -> tuple[int, int]:
    """(values popped, values pushed) when the instruction does not jump.

    A JZ or JNZ that jumps keeps its value and lands where the path that did
    not jump has the same depth, so walking a program straight through sees
    every depth any run can reach.
    """
    if insn.op in PUSHERS:
        return 0, 1
    if insn.op in UNARY:
        return 1, 1
    if insn.op in BINARY:
        return 2, 1
    if insn.op in ("JZ", "JNZ", "OUT"):
        return 1, 0
    if insn.op == "STR":
        return (2 if insn.flags & WITH_LEN else 1), 0
    return 0, 0  # COMM, END


def max_depth(insns: list[Insn] | tuple[Insn, ...], start: int = 0) -> int:
    """The most values on the stack while `insns` run from `start` values."""
    depth = deepest = start
    for insn in insns:
        pops, pushes = stack_effect(insn)
        depth += pushes - pops
        deepest = max(deepest, depth)
    return deepest
