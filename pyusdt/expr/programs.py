"""Whole programs: a predicate, a record's fields, an aggregation's key and value."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from pyusdt.expr.arg_info import ArgInfo
from pyusdt.expr.ast_nodes import Builtin, Node
from pyusdt.expr.errors import ExpressionError
from pyusdt.expr.isa import (
    COMM_LEN,
    MAX_FIELDS,
    MAX_INSNS,
    STACK,
    STR_KEY_LEN,
    TUPLE_KEY_LEN,
    Insn,
    Program,
    max_depth,
    stack_effect,
)
from pyusdt.expr.literals import LiteralPool
from pyusdt.expr.lower import Lowering
from pyusdt.expr.parser import parse, parse_list
from pyusdt.expr.tokens import normalise


@dataclass(frozen=True)
class OutField:
    """One value an output program writes."""

    name: str  # the expression's text, spacing normalised
    kind: str  # "int", "str", "probe" or "ustack" (the process id << 32 | a stack id)
    signed: bool  # for ints
    size: int  # bytes: 8 for ints and probes, the string width for strings
    offset: int  # where the program writes it (see the function that made it)


@dataclass
class _Part:
    """The code of one field (or of a predicate), and where its text is."""

    text: str
    node: Node
    code: list[Insn]


def predicate_program(text: str, args: ArgInfo) -> Program:
    """Leaves the predicate's truth on the stack top: not 0, the hit passes."""
    node = parse(text)
    lowering = Lowering(text, args, LiteralPool())
    if lowering.type_of(node).is_string:
        raise ExpressionError(text, node.pos, "a predicate must be a number or a comparison")
    part = _Part(text, node, lowering.number(node))
    return _program([part], lowering.literals, result_values=1)


def fields_program(text: str, args: ArgInfo, *, args_offset: int, strings_offset: int,
                   str_width: int) -> tuple[Program, list[OutField]]:
    """A record's fields 'E1, E2, ...': the k-th (from 0) at args_offset + 8*k
    if it is a number, the j-th string (j counts strings only) at
    strings_offset + j*str_width."""
    nodes = parse_list(text)
    _check_count(text, nodes, MAX_FIELDS, f"too many fields: at most {MAX_FIELDS}")
    lowering = Lowering(text, args, LiteralPool())
    parts: list[_Part] = []
    fields: list[OutField] = []
    for index, node in enumerate(nodes):
        if _is_string(lowering, node, text):
            offset = strings_offset + sum(field.kind == "str" for field in fields) * str_width
            code = lowering.string_to_out(node, offset)
            fields.append(OutField(normalise(node.text), "str", False, str_width, offset))
        else:
            offset = args_offset + 8 * index
            code = _value_code(lowering, node) + [Insn("OUT", off=offset)]
            fields.append(_number_field(lowering, node, offset))
        parts.append(_Part(text, node, code))
    return _program(parts, lowering.literals), fields


def aggregation_program(keys: Optional[str], value: Optional[str], args: ArgInfo, *, value_offset: int,
                        key_offset: int) -> tuple[Program, list[OutField], Optional[OutField]]:
    """Keys 'E1, E2, ...' packed from key_offset (8 bytes per number,
    STR_KEY_LEN per string, OutField.offset relative to key_offset), and a
    numeric value at value_offset.  Fields: the keys 0..n-1, the value n."""
    key_nodes = parse_list(keys) if keys is not None else []
    value_node = parse(value) if value is not None else None
    limit = MAX_FIELDS - (value_node is not None)
    if keys is not None:
        _check_count(keys, key_nodes, limit, f"too many keys: at most {limit}"
                                             + (" with a value" if value_node is not None else ""))
    literals = LiteralPool()
    parts: list[_Part] = []
    key_fields: list[OutField] = []
    if keys is not None:
        lowering = Lowering(keys, args, literals)
        used = 0
        for node in key_nodes:
            is_string = _is_string(lowering, node, keys)
            # comm is at most COMM_LEN bytes (NUL included): a key needs no more room.
            comm = isinstance(node, Builtin) and node.name == "comm"
            size = (COMM_LEN if comm else STR_KEY_LEN) if is_string else 8
            if used + size > TUPLE_KEY_LEN:
                raise ExpressionError(keys, node.pos, f"aggregation key too long: {used + size} bytes, "
                                                      f"at most {TUPLE_KEY_LEN}")
            if is_string:
                code = lowering.string_to_out(node, key_offset + used)
                key_fields.append(OutField(normalise(node.text), "str", False, size, used))
            else:
                code = _value_code(lowering, node) + [Insn("OUT", off=key_offset + used)]
                key_fields.append(dataclasses.replace(_number_field(lowering, node, 0), offset=used))
            parts.append(_Part(keys, node, code))
            used += size
    value_field = None
    if value is not None and value_node is not None:
        lowering = Lowering(value, args, literals)
        if lowering.type_of(value_node).is_string:
            raise ExpressionError(value, value_node.pos, "the aggregated value must be a number, not a string")
        code = lowering.number(value_node) + [Insn("OUT", off=value_offset)]
        parts.append(_Part(value, value_node, code))
        value_field = _number_field(lowering, value_node, value_offset)
    return _program(parts, literals), key_fields, value_field


def _is_string(lowering: Lowering, node: Node, text: str) -> bool:
    kind = lowering.type_of(node).kind
    if kind == "lit":
        raise ExpressionError(text, node.pos, "a string literal cannot be a field: compare str(...) or comm with it")
    return kind == "str"


def _value_code(lowering: Lowering, node: Node) -> list[Insn]:
    """A field's or key's code: a number, or a user stack (a value of its own)."""
    if lowering.type_of(node).kind == "ustack":
        return [Insn("USTACK")]
    return lowering.number(node)


def _number_field(lowering: Lowering, node: Node, offset: int) -> OutField:
    kind = lowering.type_of(node)
    name = kind.kind if kind.kind in ("probe", "ustack") else "int"
    return OutField(normalise(node.text), name, kind.signed_int, 8, offset)


def _check_count(text: str, nodes: list[Node], limit: int, reason: str) -> None:
    if len(nodes) > limit:
        raise ExpressionError(text, nodes[limit].pos, reason)


def _program(parts: list[_Part], literals: LiteralPool, result_values: int = 0) -> Program:
    """The parts as one program, each with its field index, within the limits.

    An output field leaves nothing on the stack and a predicate one value,
    so each part starts from an empty stack.
    """
    total = sum(len(part.code) for part in parts)
    insns: list[Insn] = []
    for index, part in enumerate(parts):
        if len(insns) + len(part.code) > MAX_INSNS:
            raise ExpressionError(part.text, part.node.pos,
                                  f"expression too long: {total} instructions, at most {MAX_INSNS}")
        depth = max_depth(part.code)
        if depth > STACK:
            raise ExpressionError(part.text, part.node.pos,
                                  f"expression too deep: needs {depth} stack slots, at most {STACK}")
        insns.extend(dataclasses.replace(insn, field=index) for insn in part.code)
    assert max_depth(insns) <= STACK and _ends_with(insns, result_values)
    return Program(tuple(insns), literals.data)


def _ends_with(insns: list[Insn], values: int) -> bool:
    """The stack holds `values` values once the program is over (a check on lowering)."""
    depth = 0
    for insn in insns:
        pops, pushes = stack_effect(insn)
        depth += pushes - pops
    return depth == values

