"""Typed syntax trees to instructions (all with field 0: the caller stamps
each field's index on its own code)."""
from __future__ import annotations

from typing import Optional

from pyusdt.expr.arg_info import ArgInfo
from pyusdt.expr.arith import to_s64
from pyusdt.expr.ast_nodes import Arg, Binary, Builtin, Cast, Deref, IntLit, Node, StrCall, StrLit, Unary
from pyusdt.expr.check import COMPARISONS, Checker, ExprType
from pyusdt.expr.errors import ExpressionError
from pyusdt.expr.isa import SIGNED, TO_OUT, WITH_LEN, Insn
from pyusdt.expr.literals import LiteralPool

ARITHMETIC = {"+": "ADD", "-": "SUB", "*": "MUL", "/": "DIV", "%": "MOD",
              "&": "AND", "|": "OR", "^": "XOR", "<<": "SHL", ">>": "SHR"}
COMPARE = {"==": "EQ", "!=": "NE", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}
UNARY = {"-": "NEG", "~": "NOT", "!": "LNOT"}


class Lowering:
    """Code for the nodes of one expression text; literals go to `literals`,
    which several texts of one program share."""

    def __init__(self, text: str, args: ArgInfo, literals: LiteralPool) -> None:
        self.text = text
        self.check = Checker(text, args)
        self.literals = literals

    def type_of(self, node: Node) -> ExprType:
        return self.check.type_of(node)

    # -- integers ------------------------------------------------------------

    def number(self, node: Node) -> list[Insn]:
        """Code that pushes the node's integer value."""
        self.check.number(node, "the expression")  # types the whole tree first: errors before code
        return self._number(node)

    def _number(self, node: Node) -> list[Insn]:
        if isinstance(node, IntLit):
            return [Insn("IMM", imm=to_s64(node.value))]
        if isinstance(node, Arg):
            return [Insn("ARG", off=node.index)]
        if isinstance(node, Builtin) and node.name != "comm":
            return [Insn(node.name.upper())]
        if isinstance(node, Cast):
            code = self._number(node.operand)
            if not node.type.pointer and node.type.size < 8:
                code.append(Insn("EXT", size=node.type.size, flags=SIGNED if node.type.signed else 0))
            return code
        if isinstance(node, Deref):
            return self._deref(node)
        if isinstance(node, Unary):
            return self._unary(node)
        if isinstance(node, Binary):
            return self._binary(node)
        raise AssertionError(f"a string where the checker allows none: {node!r}")

    def _deref(self, node: Deref) -> list[Insn]:
        if node.type is not None:
            size, signed = node.type.size, node.type.signed
        else:
            pointer = self.type_of(node.operand)
            size, signed = pointer.size, pointer.signed
        return self._number(node.operand) + [Insn("LOAD", size=size, flags=SIGNED if signed else 0)]

    def _unary(self, node: Unary) -> list[Insn]:
        if node.op == "-" and isinstance(node.operand, IntLit):
            return [Insn("IMM", imm=to_s64(-node.operand.value))]
        return self._number(node.operand) + [Insn(UNARY[node.op])]

    def _binary(self, node: Binary) -> list[Insn]:
        kind = self.type_of(node)
        left, right = self.type_of(node.left), self.type_of(node.right)
        if left.is_string:
            return self._compare_strings(node)
        if node.op in ("&&", "||"):
            # a; JZ/JNZ past b; b; BOOL: the jump leaves a's 0 (or a 1) as the result.
            first = self._number(node.left)
            second = self._number(node.right) + [Insn("BOOL")]
            return first + [Insn("JZ" if node.op == "&&" else "JNZ", off=len(second))] + second
        if node.op in ("+", "-") and "ptr" in (left.kind, right.kind):
            return self._pointer_arithmetic(node, left)
        code = self._number(node.left) + self._number(node.right)
        if node.op in COMPARISONS:
            signed = left.signed_int and right.signed_int
            return code + [Insn(COMPARE[node.op], flags=SIGNED if signed else 0)]
        op = ARITHMETIC[node.op]
        signed = kind.signed_int and op in ("DIV", "MOD", "SHR")
        return code + [Insn(op, flags=SIGNED if signed else 0)]

    def _pointer_arithmetic(self, node: Binary, left: ExprType) -> list[Insn]:
        pointer, count = (node.left, node.right) if left.kind == "ptr" else (node.right, node.left)
        size = self.type_of(pointer).size
        if size == 1:
            scaled = self._number(count)
        elif isinstance(count, IntLit):
            scaled = [Insn("IMM", imm=to_s64(count.value * size))]
        else:
            scaled = self._number(count) + [Insn("IMM", imm=size), Insn("MUL")]
        op = Insn("ADD" if node.op == "+" else "SUB")
        if pointer is node.left:
            return self._number(pointer) + scaled + [op]
        return scaled + self._number(pointer) + [op]

    # -- strings -------------------------------------------------------------

    def string_to_out(self, node: Node, offset: int) -> list[Insn]:
        """Code that writes the string `node` reads into the output at `offset`."""
        self.type_of(node)
        return self._string_operands(node) + [self._read_string(node, out=offset)]

    def _compare_strings(self, node: Binary) -> list[Insn]:
        """Self-contained: it reads into temporaries 0 and 1 only after both
        sides' pointers are on the stack, so a comparison nested inside a
        pointer expression is over before this one's temporaries fill."""
        literal: Optional[StrLit] = None
        if isinstance(node.right, StrLit):
            literal, read = node.right, node.left
        elif isinstance(node.left, StrLit):
            literal, read = node.left, node.right
        if literal is not None:
            offset, size = self.literals.add(literal, self.text)
            code = self._string_operands(read) + [self._read_string(read, tmp=0), Insn("STREQ", off=offset, size=size)]
        else:
            code = (self._string_operands(node.right) + self._string_operands(node.left)
                    + [self._read_string(node.left, tmp=0), self._read_string(node.right, tmp=1), Insn("STREQ")])
        return code + ([Insn("LNOT")] if node.op == "!=" else [])

    def _string_operands(self, node: Node) -> list[Insn]:
        if isinstance(node, StrCall):
            length = [] if node.length is None else self._number(node.length)
            return self._number(node.ptr) + length
        return []  # comm

    def _read_string(self, node: Node, *, tmp: int = 0, out: Optional[int] = None) -> Insn:
        flags = 0 if out is None else TO_OUT
        if isinstance(node, StrCall):
            if node.length is not None:
                flags |= WITH_LEN
            return Insn("STR", size=tmp, flags=flags, off=out or 0)
        if isinstance(node, Builtin) and node.name == "comm":
            return Insn("COMM", size=tmp, flags=flags, off=out or 0)
        raise ExpressionError(self.text, node.pos, "a string literal can only be compared with == or !=")
