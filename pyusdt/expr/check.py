"""Types of expressions, and the errors of expressions that have none.

Integers are 64 bits, signed or unsigned.  An arithmetic or comparison is
unsigned if either side is (C's rule for two 64-bit operands), a shift has
its left side's signedness (C's rule), comparisons and ! && || give a signed
0 or 1.  A cast or a dereference gives its type's sign, the value extended to
64 bits (no promotion to int: a uint8 stays unsigned, as in bpftrace).
Pointers are unsigned addresses that remember their pointee, for `*` and for
C's scaled `pointer + n`.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyusdt.expr.arg_info import ArgInfo
from pyusdt.expr.ast_nodes import Arg, Binary, Builtin, Cast, Deref, IntLit, Node, StrCall, StrLit, Unary
from pyusdt.expr.errors import ExpressionError

S64_MAX = (1 << 63) - 1
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
LOGICAL = ("&&", "||")


@dataclass(frozen=True)
class ExprType:
    """kind: "int", "ptr" (an address; `signed`/`size` describe the
    pointee), "str" (a string read at run time: str() or comm), "lit" (a
    string literal), "probe" (the probe id, an unsigned integer the caller
    shows as a name) or "ustack" (a user stack: a key or field of its own)."""

    kind: str
    signed: bool = False
    size: int = 8

    @property
    def is_string(self) -> bool:
        return self.kind in ("str", "lit")

    @property
    def signed_int(self) -> bool:
        """Signed in arithmetic: pointers and probe ids are unsigned."""
        return self.kind == "int" and self.signed


SIGNED_INT = ExprType("int", True)
UNSIGNED_INT = ExprType("int", False)


class Checker:
    """Types the nodes of one expression text for one probe's arguments."""

    def __init__(self, text: str, args: ArgInfo) -> None:
        self.text = text
        self.args = args
        self._types: dict[int, ExprType] = {}  # by id(node): the tree outlives the checker

    def error(self, pos: int, reason: str) -> ExpressionError:
        return ExpressionError(self.text, pos, reason)

    def type_of(self, node: Node) -> ExprType:
        known = self._types.get(id(node))
        if known is None:
            known = self._types[id(node)] = self._compute(node)
        return known

    def number(self, node: Node, what: str) -> ExprType:
        """The type of a node that must be a number (`what` names its role)."""
        kind = self.type_of(node)
        if kind.is_string:
            raise self.error(node.pos, f"{what} must be a number, not a string")
        if kind.kind == "ustack":
            raise self.error(node.pos, "ustack is a key or a field of its own, not a number")
        return kind

    def _compute(self, node: Node) -> ExprType:
        if isinstance(node, IntLit):
            # C's rule: a literal that no signed 64-bit type holds is unsigned.
            return SIGNED_INT if node.value <= S64_MAX else UNSIGNED_INT
        if isinstance(node, StrLit):
            return ExprType("lit")
        if isinstance(node, Arg):
            return self._arg(node)
        if isinstance(node, Builtin):
            return {"comm": ExprType("str"), "probe": ExprType("probe"), "ustack": ExprType("ustack")}.get(
                node.name, UNSIGNED_INT)
        if isinstance(node, StrCall):
            self.number(node.ptr, "the pointer of str()")
            if node.length is not None:
                self.number(node.length, "the length of str()")
            return ExprType("str")
        if isinstance(node, Cast):
            self._no_stack(node.operand)
            if self.type_of(node.operand).is_string:
                raise self.error(node.pos, f"cannot cast a string to {node.type.name}")
            return ExprType("ptr" if node.type.pointer else "int", node.type.signed, node.type.size)
        if isinstance(node, Deref):
            return self._deref(node)
        if isinstance(node, Unary):
            return self._unary(node)
        return self._binary(node)

    def _arg(self, node: Arg) -> ExprType:
        nargs = self.args.nargs
        if node.index >= nargs:
            probe = f"probe {self.args.probe}" if self.args.probe else "the probe"
            has = {0: "no arguments", 1: "1 argument (arg0)"}.get(nargs, f"{nargs} arguments (arg0 to arg{nargs - 1})")
            raise self.error(node.pos, f"arg{node.index} out of range: {probe} has {has}")
        signed = node.index < len(self.args.signed) and self.args.signed[node.index]
        return ExprType("int", signed)

    def _no_stack(self, node: Node) -> None:
        if self.type_of(node).kind == "ustack":
            raise self.error(node.pos, "ustack is a key or a field of its own, not a number")

    def _deref(self, node: Deref) -> ExprType:
        self._no_stack(node.operand)
        operand = self.type_of(node.operand)
        if operand.is_string:
            raise self.error(node.pos, "cannot dereference a string")
        if node.type is not None:
            return ExprType("int", node.type.signed)
        if operand.kind != "ptr":
            raise self.error(node.pos, "cannot dereference an integer: "
                                       "cast it to a pointer first, e.g. *(uint64 *)EXPR")
        return ExprType("int", operand.signed)

    def _unary(self, node: Unary) -> ExprType:
        operand = self.number(node.operand, f"the operand of '{node.op}'")
        if node.op == "!":
            return SIGNED_INT
        if isinstance(node.operand, IntLit) and node.op == "-":
            # A negative literal: signed if it fits (-2**63 does).
            return SIGNED_INT if node.operand.value <= S64_MAX + 1 else UNSIGNED_INT
        return ExprType("int", operand.signed_int)

    def _binary(self, node: Binary) -> ExprType:
        left, right = self.type_of(node.left), self.type_of(node.right)
        for side, kind in ((node.left, left), (node.right, right)):
            if kind.kind == "ustack":
                raise self.error(side.pos, "ustack is a key or a field of its own, not a number")
        if left.is_string or right.is_string:
            return self._string_binary(node, left, right)
        if node.op in COMPARISONS or node.op in LOGICAL:
            return SIGNED_INT
        if node.op in ("+", "-") and "ptr" in (left.kind, right.kind):
            return self._pointer_arithmetic(node, left, right)
        if node.op in ("<<", ">>"):
            return ExprType("int", left.signed_int)
        return ExprType("int", left.signed_int and right.signed_int)

    def _string_binary(self, node: Binary, left: ExprType, right: ExprType) -> ExprType:
        if node.op not in COMPARISONS:
            raise self.error(node.op_pos, f"cannot apply '{node.op}' to a string")
        if node.op not in ("==", "!="):
            raise self.error(node.op_pos, "strings compare only with == and !=")
        if not (left.is_string and right.is_string):
            raise self.error(node.op_pos, "cannot compare a string with a number")
        if left.kind == right.kind == "lit":
            raise self.error(node.op_pos, "cannot compare two string literals: compare str(...) or comm with one")
        return SIGNED_INT

    def _pointer_arithmetic(self, node: Binary, left: ExprType, right: ExprType) -> ExprType:
        """C's: pointer + n and n + pointer advance n pointees, pointer - n goes back."""
        if left.kind == right.kind == "ptr":
            raise self.error(node.op_pos, f"cannot {'add' if node.op == '+' else 'subtract'} two pointers")
        if right.kind == "ptr" and node.op == "-":
            raise self.error(node.op_pos, "cannot subtract a pointer from an integer")
        return left if left.kind == "ptr" else right
