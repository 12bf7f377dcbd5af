"""The string literals of one program, packed for STREQ."""
from __future__ import annotations

from pyusdt.expr.ast_nodes import StrLit
from pyusdt.expr.errors import ExpressionError
from pyusdt.expr.isa import LIT_BYTES, STR_KEY_LEN


class LiteralPool:
    """Literal bytes, each stored with its NUL, shared where one ends another."""

    def __init__(self) -> None:
        self._bytes = bytearray()

    @property
    def data(self) -> bytes:
        return bytes(self._bytes)

    def add(self, literal: StrLit, text: str) -> tuple[int, int]:
        """(offset, size) of the literal, NUL included; `text` is the
        expression it is written in, for errors."""
        if len(literal.value) + 1 > STR_KEY_LEN:
            raise ExpressionError(text, literal.pos, f"string literal too long: {len(literal.value)} bytes, "
                                                     f"at most {STR_KEY_LEN - 1}")
        # Compared as a C string: an embedded \0 ends it.
        stored = literal.value.split(b"\0", 1)[0] + b"\0"
        offset = self._bytes.find(stored)
        if offset < 0:
            total = len(self._bytes) + len(stored)
            if total > LIT_BYTES:
                raise ExpressionError(text, literal.pos, f"string literals too long: {total} bytes with their NULs, "
                                                         f"at most {LIT_BYTES}")
            offset = len(self._bytes)
            self._bytes += stored
        return offset, len(stored)
