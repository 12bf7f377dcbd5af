"""bpftrace-style expressions for USDT probes, lowered to short programs for
the stack machine the precompiled BPF programs interpret.

Pure Python, importable on its own: parse (parser), type (check), lower
(lower, programs), and run for tests (emulator).  Every bad text raises
ExpressionError, a ConfigError naming the column at fault.
"""
from __future__ import annotations

from pyusdt.expr import isa  # the instruction set's constants, for the integrator's ABI check
from pyusdt.expr.arg_info import ArgInfo
from pyusdt.expr.ast_nodes import Arg, Binary, Builtin, Cast, CType, Deref, IntLit, Node, StrCall, StrLit, Unary
from pyusdt.expr.errors import ExpressionError
from pyusdt.expr.isa import Insn, Program
from pyusdt.expr.parser import parse, parse_list
from pyusdt.expr.programs import OutField, aggregation_program, fields_program, predicate_program
from pyusdt.expr.simple import PlainArg, PlainBuiltin, PlainCompare, PlainStr, SimpleForm, simple_form

__all__ = [
    "isa", "ArgInfo", "ExpressionError", "Insn", "Program", "OutField",
    "parse", "parse_list", "predicate_program", "fields_program", "aggregation_program",
    "simple_form", "SimpleForm", "PlainArg", "PlainStr", "PlainBuiltin", "PlainCompare",
    "Node", "CType", "IntLit", "StrLit", "Arg", "Builtin", "StrCall", "Cast", "Deref", "Unary", "Binary",
]
