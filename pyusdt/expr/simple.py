"""Expressions that say no more than the older, faster routes can: an
argument, a string argument, a builtin key, `argN OP number`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from pyusdt.expr.ast_nodes import Arg, Binary, Builtin, IntLit, Node, StrCall, Unary

_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_S64_MIN, _S64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass(frozen=True)
class PlainArg:
    """`argN`: the argument, by its spec."""

    index: int


@dataclass(frozen=True)
class PlainStr:
    """`str(argN)`: the string argument N points to, up to its NUL."""

    index: int


@dataclass(frozen=True)
class PlainBuiltin:
    """`pid`, `tid`, `cpu`, `nsecs`, `comm` or `probe`."""

    name: str


@dataclass(frozen=True)
class PlainCompare:
    """`argN OP value` (or `value OP argN`, turned round).  The expression
    compares signed exactly when argument N is signed: value is in the
    signed 64-bit range, so C's rules pick the argument's signedness."""

    arg: int
    op: str
    value: int


SimpleForm = Union[PlainArg, PlainStr, PlainBuiltin, PlainCompare]


def simple_form(node: Node) -> Optional[SimpleForm]:
    """The plain form `node` is written in, or None if it is none of them.
    Whether argument N exists is not checked here."""
    if isinstance(node, Arg):
        return PlainArg(node.index)
    if isinstance(node, StrCall) and node.length is None and isinstance(node.ptr, Arg):
        return PlainStr(node.ptr.index)
    if isinstance(node, Builtin):
        return PlainBuiltin(node.name)
    if isinstance(node, Binary) and node.op in _FLIPPED:
        left, right = _literal(node.left), _literal(node.right)
        if isinstance(node.left, Arg) and right is not None:
            return PlainCompare(node.left.index, node.op, right)
        if isinstance(node.right, Arg) and left is not None:
            return PlainCompare(node.right.index, _FLIPPED[node.op], left)
    return None


def _literal(node: Node) -> Optional[int]:
    """The value of `5` or `-5`, if it is a signed 64-bit number."""
    value: Optional[int] = None
    if isinstance(node, IntLit):
        value = node.value
    elif isinstance(node, Unary) and node.op == "-" and isinstance(node.operand, IntLit):
        value = -node.operand.value
    return value if value is not None and _S64_MIN <= value <= _S64_MAX else None
