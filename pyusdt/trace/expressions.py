"""The expression programs of attach requests: compiled for each probe layout
(argument count and signs are the layout's), stored in the session's
`exprs` map once each, and named by the sites that run them.

What a request computes with expressions:

- streaming (trace): a predicate (``where``) and the record's fields
  (``fields``), written where the arguments would be: integers in args[],
  strings in the string slots;
- aggregating: a predicate, and the value and key(s) of each hit, the keys
  packed into the expression-keyed map (bpf/pyusdt_abi.h,
  pyusdt_agg_tuple_key).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

from pyusdt import _native, expr
from pyusdt.trace.events import RecordValue

if TYPE_CHECKING:  # pragma: no cover - type names only
    # Not at run time: a trace without aggregations needs none of the specs.
    from pyusdt.aggregate.specs import Aggregate, Latency
    from pyusdt.discover.probes import Probe

NativeInsn = tuple[int, int, int, int, int, int]


class LayoutPrograms(NamedTuple):
    """What the sites of one probe layout run for one request.  (A
    NamedTuple, not a dataclass: this module is on `pyusdt trace`'s start-up
    path, where each dataclass costs ~1 ms to create.)"""

    predicate: Optional[expr.Program]
    output: Optional[expr.Program]
    fields: Optional[tuple[RecordValue, ...]]  # streaming: what records hold
    keys: tuple[expr.OutField, ...] = ()  # aggregating: the key's parts, packed in that order
    string_fields: int = 0  # string slots the record's fields fill

    @property
    def key_bytes(self) -> int:
        """Bytes of the packed key."""
        return max((k.offset + k.size for k in self.keys), default=0)

    @property
    def takes_stacks(self) -> bool:
        return any(i.op == "USTACK" for p in (self.predicate, self.output) if p is not None for i in p.insns)

    @property
    def reads_strings(self) -> bool:
        return any(i.op in ("STR", "COMM") for p in (self.predicate, self.output) if p is not None
                   for i in p.insns)


def arg_info(probe: Probe) -> expr.ArgInfo:
    return expr.ArgInfo(probe.nargs, tuple(a.signed for a in probe.args), probe.fullname)


def stream_programs(where: Optional[str], fields: Optional[str], probe: Probe,
                    str_len: int) -> LayoutPrograms:
    """A streaming request's programs for one layout (ExpressionError if the
    text does not fit the layout: an argument it lacks, say)."""
    info = arg_info(probe)
    pred = expr.predicate_program(where, info) if where is not None else None
    if fields is None:
        return LayoutPrograms(pred, None, None)
    out, outs = expr.fields_program(fields, info, args_offset=_native.EXPR_RECORD_ARGS_OFFSET,
                               strings_offset=_native.EXPR_RECORD_STRINGS_OFFSET, str_width=str_len)
    for f in outs:
        if f.kind == "probe":
            raise expr.ExpressionError(fields, fields.find("probe"), "the probe is named in every record already: "
                                  "leave 'probe' out of the fields")
    values = tuple(RecordValue(f.name, f.kind == "str", f.signed, 8, is_stack=f.kind == "ustack") for f in outs)
    return LayoutPrograms(pred, out, values, string_fields=sum(v.is_str for v in values))


def aggregation_programs(spec: Union[Aggregate, Latency], role: int, probe: Probe) -> LayoutPrograms:
    """An aggregation's programs for one layout, from its expression texts
    (Aggregate.expression_texts); a latency's predicate runs at its start,
    its key at its done."""
    from pyusdt.aggregate.specs import Latency  # loaded already: spec is one of its classes

    info = arg_info(probe)
    agg = spec.aggregate() if isinstance(spec, Latency) else spec
    where, keys, value = agg.expression_texts()
    pred = expr.predicate_program(where, info) if where is not None and role != _native.Role.DONE else None
    if role == _native.Role.START:
        return LayoutPrograms(pred, None, None)
    out, key_fields, _ = expr.aggregation_program(keys, value if role == _native.Role.AGG else None, info,
                                             value_offset=_native.EXPR_AGG_VALUE_OFFSET,
                                             key_offset=_native.EXPR_AGG_KEY_OFFSET)
    # Even an empty output program (no key) sends the site down the
    # expression route, whose rows the results read from the same map.
    return LayoutPrograms(pred, out, None, tuple(key_fields))


def uses_expressions(where: Optional[str], fields: Optional[str],
                     agg: Union[None, Aggregate, Latency]) -> bool:
    """Whether a request's sites run programs."""
    if agg is not None:
        from pyusdt.aggregate.specs import Latency  # loaded already: agg is one of its classes

        return (agg.aggregate() if isinstance(agg, Latency) else agg).uses_expressions
    return where is not None or fields is not None


def mentions_ustack(*texts: Optional[str]) -> bool:
    """Whether any of these expression texts takes a user stack."""
    def walk(node: object) -> bool:
        if isinstance(node, expr.Builtin):
            return node.name == "ustack"
        if dataclasses.is_dataclass(node):
            return any(walk(getattr(node, f.name)) for f in dataclasses.fields(node))
        return False
    return any(walk(n) for t in texts if t is not None for n in expr.parse_list(t))


def encode(program: expr.Program, str_width: int) -> list[NativeInsn]:
    """The program as the native side stores it: op numbers, and every
    string's place in the interpreter's scratch with its width (temporaries
    are the scratch's own; an output string is `str_width` bytes wide)."""
    out: list[NativeInsn] = []
    for insn in program.insns:
        off, imm = insn.off, insn.imm
        if insn.op in ("STR", "COMM") and not insn.flags & expr.isa.TO_OUT:
            off = _native.EXPR_TMP_OFFSET + insn.size * expr.isa.STR_KEY_LEN
            imm = expr.isa.STR_KEY_LEN
        elif insn.op in ("STR", "COMM"):
            imm = str_width
        out.append((_native.EXPR_OPS[insn.op], insn.size, insn.flags, insn.field, off, imm))
    return out


class ProgramStore:
    """The programs a session holds, each stored once (by content)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._ids: dict[tuple[tuple[NativeInsn, ...], bytes], int] = {}

    def store(self, program: Optional[expr.Program], str_width: int) -> int:
        """The program's id in the session (0 for no program)."""
        if program is None:
            return 0
        key = (tuple(encode(program, str_width)), program.lits)
        known = self._ids.get(key)
        if known is not None:
            return known
        pid = len(self._ids) + 1
        self.session.set_expr(pid, list(key[0]), key[1])
        self._ids[key] = pid
        return pid

    def site_exprs(self, programs: LayoutPrograms, str_width: int) -> Any:
        """The native SiteExprs naming these programs."""
        ex = _native.SiteExprs()
        ex.pred_prog = self.store(programs.predicate, expr.isa.STR_KEY_LEN)
        ex.out_prog = self.store(programs.output, str_width)
        ex.string_fields = programs.string_fields
        ex.reads_strings = programs.reads_strings
        ex.takes_stacks = programs.takes_stacks
        return ex


def check_isa() -> None:
    """The Python instruction set is the BPF interpreter's (a wheel built from
    other sources would disagree here, not in the kernel)."""
    isa = expr.isa
    pairs = {"SIGNED": (isa.SIGNED, _native.EXPR_SIGNED), "WITH_LEN": (isa.WITH_LEN, _native.EXPR_WITH_LEN),
             "MAX_INSNS": (isa.MAX_INSNS, _native.EXPR_MAX_INSNS), "STACK": (isa.STACK, _native.EXPR_STACK),
             "TMP_STRS": (isa.TMP_STRS, _native.EXPR_TMP_STRS), "LIT_BYTES": (isa.LIT_BYTES, _native.EXPR_LIT_BYTES),
             "STR_KEY_LEN": (isa.STR_KEY_LEN, _native.STR_KEY_LEN),
             "TUPLE_KEY_LEN": (isa.TUPLE_KEY_LEN, _native.TUPLE_KEY_LEN),
             "MAX_FIELDS": (isa.MAX_FIELDS, _native.MAX_ARGS), "OPS": (isa.OPCODES, _native.EXPR_OPS)}
    wrong = [name for name, (mine, native) in pairs.items() if mine != native]
    if wrong:
        raise RuntimeError(f"pyusdt.expr.isa disagrees with the native module on {', '.join(wrong)}")
