"""pyusdt.expr without BPF: parsing, types, lowering, and programs run by the
Python reference emulator, checked against Python's own arithmetic."""
from __future__ import annotations

import random
import re
from fractions import Fraction
from math import trunc

import pytest

from pyusdt.errors import ConfigError
from pyusdt.expr import (
    Arg,
    ArgInfo,
    Binary,
    Builtin,
    Cast,
    CType,
    Deref,
    ExpressionError,
    IntLit,
    PlainArg,
    PlainBuiltin,
    PlainCompare,
    PlainStr,
    StrCall,
    StrLit,
    Unary,
    aggregation_program,
    fields_program,
    isa,
    parse,
    parse_list,
    predicate_program,
    simple_form,
)
from pyusdt.expr.emulator import run

U64 = 1 << 64
S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
SIGNED3 = ArgInfo(3, (True, True, True), "app:req")
UNSIGNED3 = ArgInfo(3, (False, False, False), "app:req")


def u64(x: int) -> int:
    return x % U64


def s64(x: int) -> int:
    x = u64(x)
    return x - U64 if x > S64_MAX else x


def cdiv(a: int, b: int) -> int:
    """C's division: toward zero (0 for a zero divisor, as BPF)."""
    return trunc(Fraction(a, b)) if b else 0


def cmod(a: int, b: int) -> int:
    return a - b * cdiv(a, b) if b else 0


def evaluate(text: str, args: list[int], info: ArgInfo = SIGNED3, **kw) -> int:
    result = run(predicate_program(text, info), [u64(a) for a in args], **kw)
    assert result.failed_fields == set()
    assert result.top is not None
    return result.top


# -- arithmetic, precedence and associativity -----------------------------------

SIGNED_CASES = [
    ("arg0 + arg1 * arg2", lambda a, b, c: a + b * c),
    ("(arg0 + arg1) * arg2", lambda a, b, c: (a + b) * c),
    ("arg0 - arg1 - arg2", lambda a, b, c: a - b - c),
    ("arg0 - (arg1 - arg2)", lambda a, b, c: a - (b - c)),
    # Each step wraps to 64 bits: S64_MIN / -1 is S64_MIN again.
    ("arg0 / arg1 / arg2", lambda a, b, c: cdiv(s64(cdiv(a, b)), c)),
    ("arg0 % arg1 * arg2", lambda a, b, c: cmod(a, b) * c),
    ("arg0 << 2 + 1", lambda a, b, c: a << 3),
    ("arg0 >> 1 >> 1", lambda a, b, c: a >> 2),
    ("arg0 & arg1 | arg2 ^ arg0", lambda a, b, c: (a & b) | (c ^ a)),
    ("arg0 | arg1 & arg2", lambda a, b, c: a | (b & c)),
    ("arg0 ^ arg1 & arg2", lambda a, b, c: a ^ (b & c)),
    ("arg0 < arg1 == arg2 < arg0", lambda a, b, c: int((a < b) == (c < a))),
    ("arg0 + 1 < arg1 * 2", lambda a, b, c: int(s64(a + 1) < s64(b * 2))),
    ("arg0 == arg1 != 0", lambda a, b, c: int((a == b) != 0)),
    ("arg0 <= arg1 && arg1 >= arg2 || arg0 > 5", lambda a, b, c: int((a <= b and b >= c) or a > 5)),
    ("arg0 || arg1 && 0", lambda a, b, c: int(bool(a) or (bool(b) and False))),
    ("-arg0 * -arg1", lambda a, b, c: a * b),
    ("~arg0 & 0xff", lambda a, b, c: ~a & 0xFF),
    ("!arg0 + 1", lambda a, b, c: int(not a) + 1),
    ("- -arg0", lambda a, b, c: a),
    ("!!arg2", lambda a, b, c: int(bool(c))),
    ("1 + 2 * 3 - 4 / 2 % 3", lambda a, b, c: 1 + 2 * 3 - cmod(cdiv(4, 2), 3)),
    ("arg0 / arg1", lambda a, b, c: cdiv(a, b)),
    ("arg0 % arg1", lambda a, b, c: cmod(a, b)),
    ("arg0 >> arg2", lambda a, b, c: a >> (c & 63)),
    ("arg0 * arg0 * arg0", lambda a, b, c: a * a * a),
    ("arg0 + arg1 + 9223372036854775807", lambda a, b, c: a + b + S64_MAX),
    ("arg0 - -9223372036854775808", lambda a, b, c: a + (1 << 63)),
    ("(int8)arg0 + (uint8)arg1", lambda a, b, c: s64(a << 56) // (1 << 56) + (b & 0xFF)),
]
SIGNED_ARGS = [(7, 2, 3), (-7, 2, 1), (7, -2, 0), (-7, -2, 63), (0, 0, 0), (S64_MIN, -1, 5),
               (S64_MAX, 3, 2), (1 << 40, 17, 4), (-1, 1, 64), (123456789, -1000, 62)]


@pytest.mark.parametrize("text,expected", SIGNED_CASES, ids=[c[0] for c in SIGNED_CASES])
def test_signed_arithmetic_matches_python(text, expected):
    for args in SIGNED_ARGS:
        assert evaluate(text, list(args)) == u64(expected(*args)), (text, args)


UNSIGNED_CASES = [
    ("arg0 / arg1", lambda a, b, c: a // b if b else 0),
    ("arg0 % arg1", lambda a, b, c: a % b if b else 0),
    ("arg0 >> arg2", lambda a, b, c: a >> (c & 63)),
    ("arg0 < arg1", lambda a, b, c: int(a < b)),
    ("arg0 - arg1 > arg2", lambda a, b, c: int(u64(a - b) > c)),
    ("arg0 * arg1 + arg2", lambda a, b, c: a * b + c),
    ("arg0 << arg2", lambda a, b, c: a << (c & 63)),
]
UNSIGNED_ARGS = [(U64 - 7, 2, 1), (7, U64 - 2, 3), (U64 - 1, U64 - 1, 63), (5, 0, 64), (1 << 63, 3, 0)]


@pytest.mark.parametrize("text,expected", UNSIGNED_CASES, ids=[c[0] for c in UNSIGNED_CASES])
def test_unsigned_arithmetic_matches_python(text, expected):
    for args in UNSIGNED_ARGS:
        assert evaluate(text, list(args), UNSIGNED3) == u64(expected(*args)), (text, args)


def test_mixed_signedness_follows_c():
    mixed = ArgInfo(2, (True, False))
    # -1 against unsigned 1: both unsigned, so -1 is the largest number.
    assert evaluate("arg0 < arg1", [-1, 1], mixed) == 0
    assert evaluate("arg0 / arg1", [-4, 2], mixed) == (U64 - 4) // 2
    # A shift keeps its left side's sign.
    assert evaluate("arg0 >> arg1", [-16, 2], mixed) == u64(-4)
    assert evaluate("arg1 >> 1", [0, U64 - 2], mixed) == (U64 - 2) >> 1
    # Literals too big for int64 are unsigned, as in C.
    assert evaluate("arg0 < 0xffffffffffffffff", [-2, 0], mixed) == 1
    assert evaluate("arg0 < -1", [-2, 0], mixed) == 1


def test_division_by_zero_and_overflow_are_bpfs():
    assert evaluate("arg0 / arg1", [5, 0]) == 0
    assert evaluate("arg0 % arg1", [5, 0]) == 0
    assert evaluate("arg0 / arg1", [S64_MIN, -1]) == u64(S64_MIN)
    assert evaluate("arg0 % arg1", [S64_MIN, -1]) == 0
    assert evaluate("arg0 + 1", [S64_MAX]) == u64(S64_MIN)


def test_casts_extend_by_width_and_sign():
    assert evaluate("(int8)arg0", [0x1FF]) == u64(-1)
    assert evaluate("(uint8)arg0", [0x1FF]) == 0xFF
    assert evaluate("(unsigned short)arg0", [-1]) == 0xFFFF
    assert evaluate("(short)arg0", [0x18000]) == u64(-0x8000)
    assert evaluate("(int32)arg0 < 0", [0xFFFFFFFF]) == 1
    assert evaluate("(uint32)arg0 < 0", [-1]) == 0
    # (u)int64 casts change the type only.
    assert predicate_program("(size_t)arg0", SIGNED3).insns == (isa.Insn("ARG"),)
    assert evaluate("(unsigned long long)arg0 > 5", [-1]) == 1


# -- memory ---------------------------------------------------------------------


def test_deref_reads_width_and_sign():
    memory = {0x1000: (-2).to_bytes(4, "little", signed=True) + (7).to_bytes(4, "little") + bytes(8)}
    assert evaluate("*(int32 *)arg2", [0, 0, 0x1000], memory=memory) == u64(-2)
    assert evaluate("*(uint32 *)arg2", [0, 0, 0x1000], memory=memory) == 0xFFFFFFFE
    assert evaluate("*(uint64 *)(arg1 + 8)", [0, 0xFF8, 0], memory=memory) == 0xFFFFFFFE | 7 << 32
    # C's pointer arithmetic: + 1 is one pointee further.
    assert evaluate("*((uint32 *)arg0 + 1)", [0x1000], memory=memory) == 7
    assert evaluate("*((uint32 *)arg0 + arg1)", [0x1000, 1], memory=memory) == 7
    assert evaluate("*(1 + (int32 *)arg0)", [0x1000], memory=memory) == 7
    assert evaluate("*((uint8 *)arg0 + 4)", [0x1000], memory=memory) == 7
    assert evaluate("(uint64 *)arg0 - 2", [0x1000]) == 0x1000 - 16


def test_failed_read_gives_zero_and_marks_the_field():
    result = run(predicate_program("*(uint64 *)arg0 + 1", SIGNED3), [0x50])
    assert (result.top, result.failed_fields) == (1, {0})


def test_str_with_length_reads_a_name_without_nul():
    program, fields = fields_program("str(arg1, arg2)", SIGNED3, args_offset=0, strings_offset=96, str_width=32)
    out = bytearray(128)
    result = run(program, [0, 0x4000, 3], {0x4000: b"GETpath/index.html"}, out=out, str_width=32)
    assert out[96:100] == b"GET\0"
    assert result.failed_fields == result.truncated_fields == set()
    assert fields[0].name == "str(arg1, arg2)" and (fields[0].kind, fields[0].size) == ("str", 32)


def test_str_of_a_pointer_read_through_two_blocks():
    memory = {0x2000: bytes(8) + (0x3000).to_bytes(8, "little"), 0x3000: b"hello\0world"}
    program, _ = fields_program("str(*(uint64 *)(arg1 + 8))", SIGNED3, args_offset=0, strings_offset=0,
                                str_width=16)
    out = bytearray(16)
    run(program, [0, 0x2000, 0], memory, out=out, str_width=16)
    assert out[:6] == b"hello\0"


def test_string_truncation_and_failure():
    program, _ = fields_program("str(arg0)", SIGNED3, args_offset=0, strings_offset=0, str_width=8)
    memory = {0x10: b"abcdefg\0", 0x20: b"abcdefgh\0"}
    out = bytearray(8)
    assert run(program, [0x10], memory, out=out, str_width=8).truncated_fields == set()
    assert out == b"abcdefg\0"
    assert run(program, [0x20], memory, out=out, str_width=8).truncated_fields == {0}
    assert out == b"abcdefg\0"
    failed = run(program, [0x99], memory, out=out, str_width=8)
    assert (failed.failed_fields, out[0]) == ({0}, 0)


# -- predicates -----------------------------------------------------------------


def test_string_compare_and_number():
    program = predicate_program('str(arg0) == "GET" && arg2 >= 500', SIGNED3)
    assert program.lits == b"GET\0"
    memory = {0x100: b"GET\0", 0x200: b"GETS\0", 0x300: b"PUT\0"}
    assert run(program, [0x100, 0, 500], memory).top == 1
    assert run(program, [0x100, 0, 499], memory).top == 0
    assert run(program, [0x200, 0, 500], memory).top == 0
    assert run(program, [0x300, 0, 900], memory).top == 0
    assert run(predicate_program('"GET" != str(arg0)', SIGNED3), [0x300], memory).top == 1


def test_negation_or():
    program = predicate_program("!(arg0 == 1) || arg1 < 0", SIGNED3)
    for a, b in [(1, 0), (1, -1), (2, 0), (2, -5)]:
        assert run(program, [a, u64(b)]).top == int(a != 1 or b < 0)


def test_and_short_circuits_before_reading_memory():
    program = predicate_program("arg0 != 0 && *(uint64 *)arg1 == 5", SIGNED3)
    skipped = run(program, [0, 0xDEAD])
    assert (skipped.top, skipped.failed_fields) == (0, set())
    read = run(program, [1, 0xDEAD])
    assert (read.top, read.failed_fields) == (0, {0})
    assert run(predicate_program("arg0 || *(uint64 *)arg1", SIGNED3), [7, 0xDEAD]).failed_fields == set()


def test_string_to_string_and_comm_compares():
    memory = {0x10: b"bash\0", 0x20: b"bash\0", 0x30: b"zsh\0"}
    same = predicate_program("str(arg0) == str(arg1)", SIGNED3)
    assert run(same, [0x10, 0x20], memory).top == 1
    assert run(same, [0x10, 0x30], memory).top == 0
    assert [i.size for i in same.insns if i.op == "STR"] == [0, 1]
    comm = predicate_program('comm != "bash" && str(arg0) == comm', SIGNED3)
    assert run(comm, [0x30], memory, builtins={"comm": b"zsh"}).top == 1
    assert run(comm, [0x30], memory, builtins={"comm": b"bash"}).top == 0


def test_literals_are_shared_and_end_at_nul():
    program = predicate_program('str(arg0) == "GET" || str(arg0) == "ET" || str(arg1) == "a\\0b"', SIGNED3)
    assert program.lits == b"GET\0a\0"
    memory = {0x10: b"ET\0", 0x20: b"a\0"}
    assert run(program, [0x10, 0x99], memory).top == 1
    assert run(program, [0x99, 0x20], memory).top == 1


def test_a_bare_string_is_no_predicate():
    with pytest.raises(ExpressionError, match="a predicate must be a number or a comparison at column 1"):
        predicate_program("str(arg0)", SIGNED3)


# -- output programs ------------------------------------------------------------


def test_fields_offsets_and_builtins():
    program, fields = fields_program("arg0, str(arg1),  arg2 , comm, pid, probe", SIGNED3,
                                     args_offset=16, strings_offset=200, str_width=32)
    assert [(f.name, f.kind, f.offset, f.size) for f in fields] == [
        ("arg0", "int", 16, 8), ("str(arg1)", "str", 200, 32), ("arg2", "int", 32, 8),
        ("comm", "str", 232, 32), ("pid", "int", 48, 8), ("probe", "probe", 56, 8)]
    assert [f.signed for f in fields] == [True, False, True, False, False, False]
    out = bytearray(264)
    memory = {0x40: b"key\0"}
    result = run(program, [-3, 0x40, 9], memory, builtins={"comm": b"python3", "pid": 42, "probe": 5},
                 out=out, str_width=32)
    assert result.failed_fields == set()
    ints = {off: int.from_bytes(out[off:off + 8], "little", signed=True) for off in (16, 32, 48, 56)}
    assert ints == {16: -3, 32: 9, 48: 42, 56: 5}
    assert out[200:204] == b"key\0" and out[232:248] == b"python3".ljust(16, b"\0")
    assert [i.field for i in program.insns] == [0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 5]
    assert len(program.insns) <= isa.MAX_INSNS and all(i.op != "END" for i in program.insns)


def test_aggregation_packs_keys_and_value():
    program, keys, value = aggregation_program("arg0, str(arg1), pid", "arg2 * 2", SIGNED3,
                                               value_offset=0, key_offset=16)
    assert [(k.name, k.kind, k.offset, k.size) for k in keys] == [
        ("arg0", "int", 0, 8), ("str(arg1)", "str", 8, 64), ("pid", "int", 72, 8)]
    assert value is not None and (value.name, value.offset, value.signed) == ("arg2 * 2", 0, True)
    out = bytearray(16 + 80)
    run(program, [7, 0x40, -21], {0x40: b"GET\0"}, builtins={"pid": 99}, out=out, str_width=isa.STR_KEY_LEN)
    assert int.from_bytes(out[0:8], "little", signed=True) == -42
    assert int.from_bytes(out[16:24], "little") == 7
    assert out[24:28] == b"GET\0"
    assert int.from_bytes(out[88:96], "little") == 99
    assert sorted({i.field for i in program.insns}) == [0, 1, 2, 3]
    assert program.insns[-1] == isa.Insn("OUT", field=3, off=0)


def test_aggregation_without_keys_or_value():
    program, keys, value = aggregation_program(None, "arg0", SIGNED3, value_offset=8, key_offset=16)
    assert keys == [] and value is not None and program.insns[-1].off == 8
    empty, keys, value = aggregation_program(None, None, SIGNED3, value_offset=0, key_offset=16)
    assert (empty.insns, keys, value) == ((), [], None)


# -- errors ---------------------------------------------------------------------

TWO_ARGS = ArgInfo(2, (False, False), "app:req")
TOO_LONG = " + ".join(["arg0"] * 17)
SEVENTY = '"' + "x" * 70 + '"'
ERRORS = [
    ("str(arg1", "expected ')' at column 9 of 'str(arg1'"),
    ("arg12", "arg12 does not exist: arguments are arg0 to arg11 at column 1 of 'arg12'"),
    ("arg0 + arg3", "arg3 out of range: probe app:req has 2 arguments (arg0 to arg1) at column 8 of 'arg0 + arg3'"),
    ("foo", "unknown identifier 'foo' at column 1 of 'foo'"),
    ("str(arg0) + 1", "cannot apply '+' to a string at column 11 of 'str(arg0) + 1'"),
    ("*arg0", "cannot dereference an integer: cast it to a pointer first, e.g. *(uint64 *)EXPR "
              "at column 1 of '*arg0'"),
    ("(int33)arg0", "unknown type 'int33' at column 2 of '(int33)arg0'"),
    ('"abc" == 1', "cannot compare a string with a number at column 7 of '\"abc\" == 1'"),
    ("1 +", "expected an expression at column 4 of '1 +'"),
    (")", "unexpected ')' at column 1 of ')'"),
    ("arg0 ==", "expected an expression at column 8 of 'arg0 =='"),
    (TOO_LONG, f"expression too long: 33 instructions, at most 32 at column 1 of '{TOO_LONG}'"),
    ('str(arg0) == "abc', "unterminated string at column 14 of 'str(arg0) == \"abc'"),
    ("ustack", "ustack is a key or a field of its own, not a number at column 1 of 'ustack'"),
    ("arg0 + ustack", "ustack is a key or a field of its own, not a number at column 8 of 'arg0 + ustack'"),
    ("*(uint64 *)ustack", "ustack is a key or a field of its own, not a number at column 12 of '*(uint64 *)ustack'"),
    ("arg0 + @x", "maps (@x) are not supported in expressions at column 8 of 'arg0 + @x'"),
    ("$x", "variables ($x) are not supported in expressions at column 1 of '$x'"),
    (f"str(arg0) == {SEVENTY}", f"string literal too long: 70 bytes, at most 63 at column 14 of "
                                f"'str(arg0) == {SEVENTY}'"),
    ("retval > 0", "'retval' is not supported in expressions at column 1 of 'retval > 0'"),
    ("kstack(3)", "function 'kstack()' is not supported in expressions (only str()) at column 1 of 'kstack(3)'"),
    ("str(arg0) < \"a\"", "strings compare only with == and != at column 11 of 'str(arg0) < \"a\"'"),
    ("(uint64)str(arg0)", "cannot cast a string to uint64 at column 1 of '(uint64)str(arg0)'"),
    ("str(arg0, 1, 2)", "str() takes at most 2 arguments at column 12 of 'str(arg0, 1, 2)'"),
    ("str(\"x\")", "the pointer of str() must be a number, not a string at column 5 of 'str(\"x\")'"),
    ("arg0 = 1", "assignment is not supported in expressions at column 6 of 'arg0 = 1'"),
    ("arg0 ? 1 : 2", "the ternary operator is not supported in expressions at column 6 of 'arg0 ? 1 : 2'"),
    ("12ab", "invalid number '12ab' at column 1 of '12ab'"),
    ("18446744073709551616", "integer too large: at most 64 bits at column 1 of '18446744073709551616'"),
    ('str(arg0) == "\\q"', "unknown escape '\\q' in a string at column 15 of 'str(arg0) == \"\\q\"'"),
    ("arg0 arg1", "unexpected 'arg1' at column 6 of 'arg0 arg1'"),
    ('"a" == "b"', "cannot compare two string literals: compare str(...) or comm with one at column 5 "
                   "of '\"a\" == \"b\"'"),
    ("(uint64 *)arg0 + (uint64 *)arg1", "cannot add two pointers at column 16 of '(uint64 *)arg0 + (uint64 *)arg1'"),
    ("arg0 + (arg0 + (arg0 + (arg0 + (arg0 + (arg0 + (arg0 + (arg0 + (arg0))))))))",
     "expression too deep: needs 9 stack slots, at most 8 at column 1 of "
     "'arg0 + (arg0 + (arg0 + (arg0 + (arg0 + (arg0 + (arg0 + (arg0 + (arg0))))))))'"),
    ("int", "'int' is a type: a cast is written (int)EXPR at column 1 of 'int'"),
    ("str", "str needs an argument: str(POINTER) or str(POINTER, LENGTH) at column 1 of 'str'"),
]


@pytest.mark.parametrize("text,message", ERRORS, ids=[e[0][:30] for e in ERRORS])
def test_error_messages(text, message):
    with pytest.raises(ExpressionError) as caught:
        predicate_program(text, TWO_ARGS)
    assert str(caught.value) == message
    assert isinstance(caught.value, ConfigError)
    assert caught.value.text == text and message.startswith(caught.value.reason)


def test_argument_counts_in_messages():
    for info, words in [(ArgInfo(0, ()), "the probe has no arguments"), (ArgInfo(1, (False,), "a:b"),
                                                                        "probe a:b has 1 argument (arg0)")]:
        with pytest.raises(ExpressionError, match=re.escape(f"arg1 out of range: {words} at column 1")):
            predicate_program("arg1", info)


def test_output_errors():
    with pytest.raises(ExpressionError) as caught:
        aggregation_program("str(arg0), str(arg1), arg2", None, SIGNED3, value_offset=0, key_offset=8)
    assert str(caught.value) == ("aggregation key too long: 136 bytes, at most 128 at column 23 of "
                                 "'str(arg0), str(arg1), arg2'")
    with pytest.raises(ExpressionError, match="the aggregated value must be a number, not a string at column 1"):
        aggregation_program("arg0", "comm", SIGNED3, value_offset=0, key_offset=8)
    with pytest.raises(ExpressionError, match="too many fields: at most 12 at column 73 of"):
        fields_program(", ".join(["arg0"] * 13), SIGNED3, args_offset=0, strings_offset=0, str_width=8)
    with pytest.raises(ExpressionError, match="a string literal cannot be a field"):
        fields_program('arg0, "x"', SIGNED3, args_offset=0, strings_offset=0, str_width=8)
    long = ", ".join(["arg0 + arg1 + arg2"] * 6)  # 6 instructions each
    with pytest.raises(ExpressionError, match=r"expression too long: 36 instructions, at most 32 at column 101"):
        fields_program(long, SIGNED3, args_offset=0, strings_offset=0, str_width=8)
    literals = "string literals too long: 164 bytes with their NULs, at most 128 at column 191"
    with pytest.raises(ExpressionError, match=literals):
        predicate_program(" || ".join(f'str(arg0) == "{c * 40}"' for c in "abcd"), SIGNED3)


def test_deep_or_long_text_fails_cleanly():
    for text in ["(" * 200 + "arg0" + ")" * 200, "-" * 500 + "arg0", " + ".join(["1"] * 3000),
                 "(int64)" * 100 + "arg0"]:
        with pytest.raises(ExpressionError):
            predicate_program(text, SIGNED3)


def test_garbage_raises_only_expression_errors():
    pieces = ["arg0", "arg1", "str(", "str", "(", ")", ",", "1", "0x10", '"a"', "comm", "probe", "*", "-",
              "!", "~", "&&", "||", "==", "<", "<<", "(uint64 *)", "(int8)", "+", "/", "%", "@m", "$v", "?",
              "\"", "\\", "ustack", "unsigned", "long", "int33", "é"]
    rng = random.Random(7)
    for _ in range(1500):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 9)))
        try:
            predicate_program(text, SIGNED3)
            fields_program(text, SIGNED3, args_offset=0, strings_offset=96, str_width=16)
        except ExpressionError as error:
            assert 0 <= error.position <= len(text) and "\n" not in str(error)


# -- the tree -------------------------------------------------------------------


def test_tree_shapes_positions_and_texts():
    tree = parse("*(int32 *)(arg1 + 8) * -2")
    assert tree == Binary("*", Deref(CType("int32", 4, True), Binary("+", Arg(1), IntLit(8))),
                          Unary("-", IntLit(2)))
    assert isinstance(tree, Binary) and (tree.op_pos, tree.left.text) == (21, "*(int32 *)(arg1 + 8)")
    assert isinstance(tree.left, Deref) and (tree.left.operand.pos, tree.left.operand.text) == (10, "(arg1 + 8)")
    cast = parse("(unsigned char *)arg0")
    assert cast == Cast(CType("uint8", 1, False, pointer=True), Arg(0))
    assert parse('comm == "x"') == Binary("==", Builtin("comm"), StrLit(b"x"))
    assert parse("*((uint64 *)arg0 + 1)") == Deref(None, Binary("+", Cast(CType("uint64", 8, False, True), Arg(0)),
                                                                   IntLit(1)))
    items = parse_list("str(arg1, arg2), pid ,arg0")
    assert items == [StrCall(Arg(1), Arg(2)), Builtin("pid"), Arg(0)]
    assert [(n.pos, n.text) for n in items] == [(0, "str(arg1, arg2)"), (17, "pid"), (22, "arg0")]


def test_simple_forms():
    assert simple_form(parse("arg3")) == PlainArg(3)
    assert simple_form(parse("str(arg1)")) == PlainStr(1)
    assert simple_form(parse("comm")) == PlainBuiltin("comm")
    assert simple_form(parse("arg2 >= 500")) == PlainCompare(2, ">=", 500)
    assert simple_form(parse("-1 < arg0")) == PlainCompare(0, ">", -1)
    for text in ["str(arg1, 4)", "arg0 + 1", "arg0 == 0xffffffffffffffff", "arg0 == arg1", "(int32)arg0"]:
        assert simple_form(parse(text)) is None


def test_isa_constants():
    assert (isa.SIGNED, isa.WITH_LEN, isa.TO_OUT) == (1, 2, 4)
    assert (isa.MAX_INSNS, isa.STACK, isa.TMP_STRS, isa.LIT_BYTES) == (32, 8, 2, 128)
    assert (isa.STR_KEY_LEN, isa.TUPLE_KEY_LEN, isa.MAX_FIELDS) == (64, 128, 12)
    assert isa.OPCODES["END"] == 0 and isa.OPCODES["USTACK"] == len(isa.OPS) - 1
    with pytest.raises(ValueError):
        isa.Insn("OUT", off=1 << 16)
