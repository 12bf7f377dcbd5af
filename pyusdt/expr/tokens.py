"""Splitting an expression's text into tokens, each with its column."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from pyusdt.expr.errors import ExpressionError

U64_MAX = (1 << 64) - 1

# Longest first, so that '<<' is not read as two '<'.
OPERATORS = ("<<", ">>", "<=", ">=", "==", "!=", "&&", "||",
             "+", "-", "*", "/", "%", "<", ">", "&", "^", "|", "!", "~", "(", ")", ",")
ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "0": "\0"}
# Characters of bpftrace's syntax we do not take, each with the reason.
UNSUPPORTED = {"=": "assignment is not supported in expressions",
               "?": "the ternary operator is not supported in expressions",
               ":": "the ternary operator is not supported in expressions"}

_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIGIL = re.compile(r"[$@][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Token:
    """kind: "int", "str", "ident", "var" ($x), "map" (@x), "op" or "end"."""

    kind: str
    text: str  # as written (a string literal with its quotes)
    pos: int
    value: Union[int, bytes, None] = None  # the number, or the literal's bytes

    @property
    def end(self) -> int:
        return self.pos + len(self.text)


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with one "end" token at len(text)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        token = _one_token(text, pos)
        tokens.append(token)
        pos = token.end
    tokens.append(Token("end", "", len(text)))
    return tokens


def _one_token(text: str, pos: int) -> Token:
    char = text[pos]
    if "0" <= char <= "9":
        return _number(text, pos)
    if char == '"':
        return _string(text, pos)
    word = _WORD.match(text, pos)
    if word:
        return Token("ident", word.group(), pos)
    sigil = _SIGIL.match(text, pos)
    if sigil:
        return Token("var" if char == "$" else "map", sigil.group(), pos)
    for op in OPERATORS:
        if text.startswith(op, pos):
            return Token("op", op, pos)
    raise ExpressionError(text, pos, UNSUPPORTED.get(char, f"unexpected character {char!r}"))


def _number(text: str, pos: int) -> Token:
    number = _NUMBER.match(text, pos)
    assert number is not None  # the caller saw a digit
    end = number.end()
    # '12ab' or '0x1g' is one bad word, not a number then a name.
    tail = _WORD.match(text, end)
    if tail:
        raise ExpressionError(text, pos, f"invalid number '{text[pos:tail.end()]}'")
    value = int(number.group(), 0 if number.group()[1:2] in ("x", "X") else 10)
    if value > U64_MAX:
        raise ExpressionError(text, pos, "integer too large: at most 64 bits")
    return Token("int", number.group(), pos, value)


def _string(text: str, pos: int) -> Token:
    chars: list[str] = []
    at = pos + 1
    while at < len(text):
        char = text[at]
        if char == '"':
            return Token("str", text[pos:at + 1], pos, "".join(chars).encode())
        if char == "\\":
            escaped = text[at + 1:at + 2]
            if not escaped:
                break  # a backslash ending the text: the string is unterminated
            if escaped not in ESCAPES:
                raise ExpressionError(text, at, f"unknown escape '\\{escaped}' in a string")
            chars.append(ESCAPES[escaped])
            at += 2
            continue
        chars.append(char)
        at += 1
    raise ExpressionError(text, pos, "unterminated string")


def normalise(text: str) -> str:
    """`text` with its spacing made regular: one space where there was any,
    one after each comma, none inside parentheses or before a comma, none
    between a function's name and its '('."""
    tokens = tokenize(text)[:-1]
    if not tokens:
        return ""
    parts = [tokens[0].text]
    for before, token in zip(tokens, tokens[1:]):
        space = token.pos > before.end
        if before.kind == "op" and before.text == ",":
            space = True
        if token.kind == "op" and token.text in (",", ")"):
            space = False
        if before.kind == "op" and before.text == "(":
            space = False
        if before.kind == "ident" and token.kind == "op" and token.text == "(":
            space = False
        parts.append(" " + token.text if space else token.text)
    return "".join(parts)
