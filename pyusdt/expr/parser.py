"""bpftrace's expression syntax (the subset pyusdt runs) to a syntax tree.

Binary operators are parsed by C's precedence, one loop per level, so a long
chain (a + b + c ...) costs no recursion; only nesting (parentheses, unary
operators, casts, str()) recurses, and it is bounded.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

from pyusdt.expr.ast_nodes import (
    Arg,
    Binary,
    Builtin,
    Cast,
    CType,
    Deref,
    IntLit,
    Node,
    StrCall,
    StrLit,
    Unary,
    children,
)
from pyusdt.expr.errors import ExpressionError
from pyusdt.expr.isa import MAX_INSNS
from pyusdt.expr.tokens import Token, tokenize
from pyusdt.expr.type_names import C_WORDS, looks_like_type, lookup

MAX_ARGS = 12  # sys/sdt.h's limit: arg0 .. arg11
BUILTINS = frozenset({"pid", "tid", "cpu", "nsecs", "comm", "probe", "ustack"})
# bpftrace names that mean something there, but not here.
NOT_SUPPORTED = frozenset({
    "retval", "curtask", "uid", "gid", "kstack", "func", "username", "args", "elapsed", "rand",
    "cgroup", "ctx", "cpid", "numaid", "jiffies", "buf", "kptr", "uptr", "usym", "ksym", "ntop",
    "strncmp", "strcontains", "sizeof", "offsetof", "reg", "uaddr", "kaddr", "printf", "count", "sum",
    "avg", "min", "max", "hist", "lhist", "stats", "macaddr", "cgroupid", "path", "bswap", "len",
})
# Lowest precedence first.
LEVELS = (("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="),
          ("<<", ">>"), ("+", "-"), ("*", "/", "%"))
UNARY_OPS = ("-", "~", "!", "*")
# Nesting of parentheses, unary operators, casts and str(): bounds recursion.
MAX_NESTING = 32
# Along any path of the tree at most MAX_NESTING nodes are casts (which emit
# nothing) and one more is a folded '-' literal; every other node emits an
# instruction of its own.  A deeper tree is therefore a program too long,
# caught before anything recurses over it.
MAX_TREE_DEPTH = MAX_INSNS + MAX_NESTING + 2
_ARG = re.compile(r"arg(0|[1-9][0-9]*)")


def parse(text: str) -> Node:
    """One expression."""
    parser = _Parser(text)
    node = parser.expression()
    parser.expect_end()
    _check_depth(text, node)
    return node


def parse_list(text: str) -> list[Node]:
    """'E1, E2, ...': commas at the top level separate expressions (the comma
    of str(p, n) is inside its parentheses)."""
    parser = _Parser(text)
    nodes = [parser.expression()]
    while parser.accept(","):
        nodes.append(parser.expression())
    parser.expect_end()
    for node in nodes:
        _check_depth(text, node)
    return nodes


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.at = 0
        self.nesting = 0

    # -- tokens --------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.at = min(self.at + 1, len(self.tokens) - 1)
        return token

    def is_op(self, op: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "op" and token.text == op

    def accept(self, op: str) -> bool:
        if self.is_op(op):
            self.take()
            return True
        return False

    def expect(self, op: str) -> Token:
        if not self.is_op(op):
            raise self.error(self.peek().pos, f"expected '{op}'")
        return self.take()

    def expect_end(self) -> None:
        token = self.peek()
        if token.kind != "end":
            raise self.error(token.pos, f"unexpected '{token.text}'")

    def error(self, pos: int, reason: str) -> ExpressionError:
        return ExpressionError(self.text, pos, reason)

    def span(self, start: int) -> str:
        """The source text from `start` to the end of the last token taken."""
        return self.text[start:self.tokens[self.at - 1].end]

    # -- grammar -------------------------------------------------------------

    def expression(self) -> Node:
        return self.binary(0)

    def binary(self, level: int) -> Node:
        if level == len(LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek().kind == "op" and self.peek().text in LEVELS[level]:
            op = self.take()
            right = self.binary(level + 1)
            left = Binary(op.text, left, right, pos=left.pos, text=self.span(left.pos), op_pos=op.pos)
        return left

    def unary(self) -> Node:
        token = self.peek()
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(token.pos, f"expression nested too deeply: at most {MAX_NESTING} levels")
        try:
            if token.kind == "op" and token.text in UNARY_OPS:
                self.take()
                return self.prefixed(token, self.unary())
            if token.kind == "op" and token.text == "(" and self.peek(1).kind == "ident" \
                    and looks_like_type(self.peek(1).text):
                return self.cast()
            return self.primary()
        finally:
            self.nesting -= 1

    def prefixed(self, op: Token, operand: Node) -> Node:
        text = self.span(op.pos)
        if op.text != "*":
            return Unary(op.text, operand, pos=op.pos, text=text)
        if isinstance(operand, Cast) and operand.type.pointer:
            # *(TYPE *)E: read a TYPE at E, the plain form of a dereference.
            pointee = dataclasses.replace(operand.type, pointer=False)
            return Deref(pointee, operand.operand, pos=op.pos, text=text)
        return Deref(None, operand, pos=op.pos, text=text)

    def cast(self) -> Node:
        start = self.take().pos  # '('
        ctype = self.type_name()
        self.expect(")")
        operand = self.unary()
        return Cast(ctype, operand, pos=start, text=self.span(start))

    def type_name(self) -> CType:
        first = self.take()
        words = [first.text]
        if first.text in C_WORDS:
            while self.peek().kind == "ident" and self.peek().text in C_WORDS:
                words.append(self.take().text)
        spelling = " ".join(words)
        ctype = lookup(spelling)
        if ctype is None:
            raise self.error(first.pos, f"unknown type '{spelling}'")
        if self.accept("*"):
            return dataclasses.replace(ctype, pointer=True)
        return ctype

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "int":
            assert isinstance(token.value, int)
            return IntLit(token.value, pos=token.pos, text=token.text)
        if token.kind == "str":
            assert isinstance(token.value, bytes)
            return StrLit(token.value, pos=token.pos, text=token.text)
        if token.kind == "ident":
            return self.name(token)
        if token.kind == "var":
            raise self.error(token.pos, f"variables ({token.text}) are not supported in expressions")
        if token.kind == "map":
            raise self.error(token.pos, f"maps ({token.text}) are not supported in expressions")
        if token.kind == "op" and token.text == "(":
            inner = self.expression()
            self.expect(")")
            # The parentheses belong to the node's text, and its column is theirs.
            return dataclasses.replace(inner, pos=token.pos, text=self.span(token.pos))
        if token.kind == "end":
            raise self.error(token.pos, "expected an expression")
        raise self.error(token.pos, f"unexpected '{token.text}'")

    def name(self, token: Token) -> Node:
        word = token.text
        called = self.is_op("(")
        if word == "str":
            return self.str_call(token)
        arg = _ARG.fullmatch(word)
        if arg and not called:
            index = int(arg.group(1))
            if index >= MAX_ARGS:
                raise self.error(token.pos, f"{word} does not exist: arguments are arg0 to arg{MAX_ARGS - 1}")
            return Arg(index, pos=token.pos, text=word)
        if word in BUILTINS and not called:
            return Builtin(word, pos=token.pos, text=word)
        if looks_like_type(word):
            raise self.error(token.pos, f"'{word}' is a type: a cast is written ({word})EXPR")
        if called:
            raise self.error(token.pos, f"function '{word}()' is not supported in expressions (only str())")
        if word in NOT_SUPPORTED:
            raise self.error(token.pos, f"'{word}' is not supported in expressions")
        raise self.error(token.pos, f"unknown identifier '{word}'")

    def str_call(self, token: Token) -> Node:
        if not self.is_op("("):
            raise self.error(token.pos, "str needs an argument: str(POINTER) or str(POINTER, LENGTH)")
        self.take()
        self.nesting += 1
        try:
            if self.is_op(")"):
                raise self.error(self.peek().pos, "str() needs an argument: str(POINTER) or str(POINTER, LENGTH)")
            ptr = self.expression()
            length: Optional[Node] = self.expression() if self.accept(",") else None
            if self.is_op(","):
                raise self.error(self.peek().pos, "str() takes at most 2 arguments")
            self.expect(")")
        finally:
            self.nesting -= 1
        return StrCall(ptr, length, pos=token.pos, text=self.span(token.pos))


def _check_depth(text: str, root: Node) -> None:
    """Reject a tree too deep to lower, without recursing over it."""
    pending = [(root, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_TREE_DEPTH:
            raise ExpressionError(text, root.pos, f"expression too long: more than {MAX_INSNS} instructions")
        pending.extend((child, depth + 1) for child in children(node))
