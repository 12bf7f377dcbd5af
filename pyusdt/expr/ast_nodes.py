"""The syntax tree of an expression: public, so that callers can recognise
plain forms (an argument, str(argN)) that have faster routes of their own.

Every node has `pos` (the 0-based column where its text starts) and `text`
(its source text, parentheses around it included).  Neither takes part in
comparisons, so `parse("arg1 ") == Arg(1)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass(frozen=True)
class CType:
    """An integer type of a cast or a dereference: `name` is the canonical
    spelling (int8 .. uint64); `pointer` for `(TYPE *)`."""

    name: str
    size: int
    signed: bool
    pointer: bool = False


@dataclass(frozen=True)
class IntLit:
    value: int  # 0 .. 2**64-1 as written; a minus sign is a Unary
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class StrLit:
    value: bytes  # escapes decoded, UTF-8, without a terminating NUL
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class Arg:
    index: int  # argN
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class Builtin:
    name: str  # pid tid cpu nsecs comm probe
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class StrCall:
    """str(ptr) or str(ptr, length)."""

    ptr: Node
    length: Optional[Node] = None
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class Cast:
    """(TYPE)operand or (TYPE *)operand."""

    type: CType
    operand: Node
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class Deref:
    """*operand.  `*(TYPE *)E` is parsed as Deref(TYPE, E): read a TYPE at
    address E.  Otherwise `type` is None and the operand must be pointer-typed
    (`*((uint64 *)arg1 + 1)`), its pointee read."""

    type: Optional[CType]
    operand: Node
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "~" or "!"
    operand: Node
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class Binary:
    op: str  # C's spelling: "+", "<<", "==", "&&", ...
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)
    text: str = field(default="", compare=False)
    op_pos: int = field(default=0, compare=False)  # the operator's column (type errors point there)


Node = Union[IntLit, StrLit, Arg, Builtin, StrCall, Cast, Deref, Unary, Binary]


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, StrCall):
        return (node.ptr,) if node.length is None else (node.ptr, node.length)
    if isinstance(node, (Cast, Deref, Unary)):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    return ()
