"""bpftrace-style expressions for USDT probes, lowered to short programs for
the stack machine the precompiled BPF programs interpret.

Pure Python, importable on its own: parse (parser), type (check), lower
(lower, programs), and run for tests (emulator).  Every bad text raises
ExpressionError, a ConfigError naming the column at fault.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pyusdt._lazy import lazy_names

# public name -> its module; loaded when first used, so that a module that
# only names ExpressionError (or compiles nothing) does not load the parser
# and compiler: a plain `pyusdt trace` has no expression at all.
_HOMES = {
    "isa": "pyusdt.expr.isa",
    "ArgInfo": "pyusdt.expr.arg_info",
    "Arg": "pyusdt.expr.ast_nodes",
    "Binary": "pyusdt.expr.ast_nodes",
    "Builtin": "pyusdt.expr.ast_nodes",
    "Cast": "pyusdt.expr.ast_nodes",
    "CType": "pyusdt.expr.ast_nodes",
    "Deref": "pyusdt.expr.ast_nodes",
    "IntLit": "pyusdt.expr.ast_nodes",
    "Node": "pyusdt.expr.ast_nodes",
    "StrCall": "pyusdt.expr.ast_nodes",
    "StrLit": "pyusdt.expr.ast_nodes",
    "Unary": "pyusdt.expr.ast_nodes",
    "ExpressionError": "pyusdt.expr.errors",
    "Insn": "pyusdt.expr.isa",
    "Program": "pyusdt.expr.isa",
    "parse": "pyusdt.expr.parser",
    "parse_list": "pyusdt.expr.parser",
    "OutField": "pyusdt.expr.programs",
    "aggregation_program": "pyusdt.expr.programs",
    "fields_program": "pyusdt.expr.programs",
    "predicate_program": "pyusdt.expr.programs",
    "PlainArg": "pyusdt.expr.simple",
    "PlainBuiltin": "pyusdt.expr.simple",
    "PlainCompare": "pyusdt.expr.simple",
    "PlainStr": "pyusdt.expr.simple",
    "SimpleForm": "pyusdt.expr.simple",
    "simple_form": "pyusdt.expr.simple",
}

__all__ = [
    "isa", "ArgInfo", "ExpressionError", "Insn", "Program", "OutField",
    "parse", "parse_list", "predicate_program", "fields_program", "aggregation_program",
    "simple_form", "SimpleForm", "PlainArg", "PlainStr", "PlainBuiltin", "PlainCompare",
    "Node", "CType", "IntLit", "StrLit", "Arg", "Builtin", "StrCall", "Cast", "Deref", "Unary", "Binary",
]

if TYPE_CHECKING:
    from pyusdt.expr import isa as isa
    from pyusdt.expr.arg_info import ArgInfo as ArgInfo
    from pyusdt.expr.ast_nodes import Arg as Arg
    from pyusdt.expr.ast_nodes import Binary as Binary
    from pyusdt.expr.ast_nodes import Builtin as Builtin
    from pyusdt.expr.ast_nodes import Cast as Cast
    from pyusdt.expr.ast_nodes import CType as CType
    from pyusdt.expr.ast_nodes import Deref as Deref
    from pyusdt.expr.ast_nodes import IntLit as IntLit
    from pyusdt.expr.ast_nodes import Node as Node
    from pyusdt.expr.ast_nodes import StrCall as StrCall
    from pyusdt.expr.ast_nodes import StrLit as StrLit
    from pyusdt.expr.ast_nodes import Unary as Unary
    from pyusdt.expr.errors import ExpressionError as ExpressionError
    from pyusdt.expr.isa import Insn as Insn
    from pyusdt.expr.isa import Program as Program
    from pyusdt.expr.parser import parse as parse
    from pyusdt.expr.parser import parse_list as parse_list
    from pyusdt.expr.programs import OutField as OutField
    from pyusdt.expr.programs import aggregation_program as aggregation_program
    from pyusdt.expr.programs import fields_program as fields_program
    from pyusdt.expr.programs import predicate_program as predicate_program
    from pyusdt.expr.simple import PlainArg as PlainArg
    from pyusdt.expr.simple import PlainBuiltin as PlainBuiltin
    from pyusdt.expr.simple import PlainCompare as PlainCompare
    from pyusdt.expr.simple import PlainStr as PlainStr
    from pyusdt.expr.simple import SimpleForm as SimpleForm
    from pyusdt.expr.simple import simple_form as simple_form

__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
