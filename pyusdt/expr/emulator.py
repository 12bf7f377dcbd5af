"""A reference run of a program in Python, for tests: what the BPF
interpreter (bpf/usdt_expr.bpf.h) does, down to its string reads.

Memory is a dict of blocks (address -> bytes); a byte outside them is
unmapped.  Strings are read as bpf_probe_read_user_str reads them: up to
`size` bytes (the buffer, or a length + 1), stopping at a NUL, and failing
(an empty string, the field marked failed) on any unmapped byte it needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

from pyusdt.expr.arith import MASK, binary_op, extend, to_u64
from pyusdt.expr.isa import BINARY, COMM_LEN, LIT_BYTES, SIGNED, STACK, STR_KEY_LEN, TO_OUT, WITH_LEN, Insn, Program


@dataclass
class EmuResult:
    top: Optional[int]  # the stack top when the program ends (0 .. 2**64-1), None if empty
    failed_fields: set[int] = field(default_factory=set)
    truncated_fields: set[int] = field(default_factory=set)


class _Memory:
    def __init__(self, blocks: Mapping[int, bytes]) -> None:
        self.blocks = blocks

    def byte(self, address: int) -> Optional[int]:
        for start, data in self.blocks.items():
            if start <= address < start + len(data):
                return data[address - start]
        return None

    def read(self, address: int, size: int) -> Optional[bytes]:
        values = [self.byte(address + i) for i in range(size)]
        return None if None in values else bytes(v for v in values if v is not None)


def run(program: Program, args: list[int], memory: Optional[Mapping[int, bytes]] = None,
        builtins: Optional[Mapping[str, Union[int, bytes]]] = None, out: Optional[bytearray] = None,
        str_width: int = STR_KEY_LEN) -> EmuResult:
    """Runs `program` for one hit: `args` the arguments as read (extended to
    64 bits), `builtins` pid tid cpu nsecs probe (ints) and comm (bytes),
    `out` the output (records or key) whose strings are `str_width` wide."""
    return _Machine(program, args, _Memory(memory or {}), builtins or {}, out, str_width).run()


class _Machine:
    def __init__(self, program: Program, args: list[int], memory: _Memory,
                 builtins: Mapping[str, Union[int, bytes]], out: Optional[bytearray], str_width: int) -> None:
        self.program = program
        self.args = args
        self.memory = memory
        self.builtins = builtins
        self.out = out
        self.str_width = str_width
        self.stack: list[int] = []
        self.tmp = [b"", b""]  # temporary strings, up to their NUL
        self.result = EmuResult(None)

    def run(self) -> EmuResult:
        skip_to = 0
        for at, insn in enumerate(self.program.insns):
            if at < skip_to:
                continue
            if insn.op == "END":
                break
            jump = self.step(insn)
            if jump:
                skip_to = at + 1 + jump
        self.result.top = self.stack[-1] if self.stack else None
        return self.result

    def push(self, value: int) -> None:
        if len(self.stack) == STACK:
            raise ValueError("stack overflow")  # a lowering bug: BPF's masked index would wrap
        self.stack.append(value & MASK)

    def pop(self) -> int:
        if not self.stack:
            raise ValueError("stack underflow")
        return self.stack.pop()

    def fail(self, insn: Insn) -> None:
        self.result.failed_fields.add(insn.field)

    def step(self, insn: Insn) -> int:
        """Runs one instruction; returns how many to skip (0: none)."""
        op, signed = insn.op, bool(insn.flags & SIGNED)
        if op == "ARG":
            if insn.off >= len(self.args):
                self.fail(insn)
            self.push(self.args[insn.off] if insn.off < len(self.args) else 0)
        elif op == "IMM":
            self.push(insn.imm)
        elif op in ("PID", "TID", "CPU", "NSECS", "PROBE"):
            value = self.builtins.get(op.lower(), 0)
            self.push(value if isinstance(value, int) else 0)
        elif op == "LOAD":
            self.load(insn, signed)
        elif op == "EXT":
            self.push(extend(self.pop(), insn.size, signed))
        elif op in BINARY:
            b, a = self.pop(), self.pop()
            self.push(binary_op(op, a, b, signed))
        elif op in ("NEG", "NOT", "LNOT", "BOOL"):
            a = self.pop()
            self.push({"NEG": -a, "NOT": ~a, "LNOT": int(a == 0), "BOOL": int(a != 0)}[op])
        elif op in ("JZ", "JNZ"):
            return self.jump(insn)
        elif op in ("STR", "COMM"):
            self.string(insn)
        elif op == "USTACK":
            stack = self.builtins.get("ustack", 0)
            self.push(stack if isinstance(stack, int) else 0)
        elif op == "STREQ":
            self.push(self.strings_equal(insn))
        elif op == "OUT":
            self.write(insn.off, to_u64(self.pop()).to_bytes(8, "little"))
        else:
            raise ValueError(f"unknown op {op}")
        return 0

    def jump(self, insn: Insn) -> int:
        top = self.pop()
        if (top == 0) == (insn.op == "JZ"):
            self.push(int(top != 0))  # JZ keeps its 0, JNZ leaves a 1
            return insn.off
        return 0

    def load(self, insn: Insn, signed: bool) -> None:
        size = insn.size if 0 < insn.size <= 8 else 8
        data = self.memory.read(self.pop(), size)
        if data is None:
            self.fail(insn)
            self.push(0)
        else:
            self.push(extend(int.from_bytes(data, "little"), size, signed))

    def write(self, offset: int, data: bytes) -> None:
        if self.out is None or offset + len(data) > len(self.out):
            raise ValueError(f"a write of {len(data)} bytes at {offset} is outside the output")
        self.out[offset:offset + len(data)] = data

    def string(self, insn: Insn) -> None:
        to_out = bool(insn.flags & TO_OUT)
        width = self.str_width if to_out else STR_KEY_LEN
        if insn.op == "COMM":
            comm = self.builtins.get("comm", b"")
            text = comm[:COMM_LEN - 1] if isinstance(comm, bytes) else b""
            padded = text.ljust(COMM_LEN, b"\0")  # bpf_get_current_comm pads its 16 bytes
        else:
            with_len = bool(insn.flags & WITH_LEN)
            length = self.pop() if with_len else 0
            text = self.read_string(insn, self.pop(), width, with_len, length)
            padded = text + b"\0"
        if to_out:
            self.write(insn.off, padded)
        else:
            self.tmp[insn.size & 1] = text

    def read_string(self, insn: Insn, address: int, width: int, with_len: bool, length: int) -> bytes:
        size = width
        if with_len and (length + 1) & MASK < width:
            size = (length + 1) & MASK  # str(p, n): n bytes at most (a length of -1 wraps to none)
        if size == 0:
            return b""
        text = bytearray()
        for i in range(size):
            value = self.memory.byte(address + i)
            if value is None:
                self.fail(insn)
                return b""
            if value == 0:
                return bytes(text)
            if i < size - 1:
                text.append(value)
        # No NUL in size - 1 bytes, and byte size-1 was read and is not one:
        # cut, unless a length asked for no more than this.
        if not with_len or (length + 1) & MASK > width:
            self.result.truncated_fields.add(insn.field)
        return bytes(text)

    def strings_equal(self, insn: Insn) -> int:
        """Temporary 0 against literal bytes [off, off + size), or, with size 0, temporary 1."""
        first = self.tmp[0].ljust(STR_KEY_LEN, b"\0")
        second = self.tmp[1].ljust(STR_KEY_LEN, b"\0")
        lits = self.program.lits.ljust(LIT_BYTES, b"\0")
        for i in range(STR_KEY_LEN):
            if insn.size:
                if i >= insn.size:
                    return 1
                if insn.off + i >= LIT_BYTES:
                    return 0
                other = lits[insn.off + i]
            else:
                other = second[i]
            if first[i] != other:
                return 0
            if first[i] == 0:
                return 1
        return 1
