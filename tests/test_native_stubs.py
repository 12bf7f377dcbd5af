"""The hand-written stubs pyusdt/_native.pyi and pyusdt/_provider.pyi name
exactly what the two extension modules define: module attributes, the members
of each class, and the members and values of each enum.  So they cannot drift
from csrc/bindings/.  Also: the provider module loads without numpy."""
from __future__ import annotations

import ast
import enum
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

MODULES = ("pyusdt._native", "pyusdt._provider")


def _stub(module) -> ast.Module:
    # The stub installed beside the extension: what a type checker of an
    # installed pyusdt reads.
    path = Path(module.__file__).with_name(module.__name__.rsplit(".", 1)[1] + ".pyi")
    assert path.is_file(), f"{path} is not installed beside {module.__file__}"
    return ast.parse(path.read_text(), str(path))


def _names(body) -> dict:
    """Names a stub body declares (no imports, no private type aliases), with
    the ClassDef node or the constant assigned, when there is one."""
    out = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = None
        elif isinstance(node, ast.ClassDef):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = None
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node.value.value if isinstance(node.value, ast.Constant) else None
    return out


def _public(names) -> set:
    return {n for n in names if not n.startswith("_")}


def _members(names) -> set:
    # Dunders, and what pybind11 adds to every class it binds.
    return {n for n in names if not (n.startswith("__") and n.endswith("__")) and not n.startswith("_pybind11_")}


@pytest.mark.parametrize("name", MODULES)
def test_module_names_match_stub(name):
    module = importlib.import_module(name)
    declared = _names(_stub(module).body)
    # Private names of the stub are its own type aliases (_Path, _ArgDict), not the module's.
    assert _public(dir(module)) == _public(declared)


@pytest.mark.parametrize("name", MODULES)
def test_class_members_match_stub(name):
    module = importlib.import_module(name)
    for cls_name, node in _names(_stub(module).body).items():
        if node is None or cls_name.startswith("_"):  # a stub-only type (_ArgDict)
            continue
        cls = getattr(module, cls_name)
        stub_members = _names(node.body)
        if isinstance(cls, enum.EnumMeta):
            runtime = {m.name: m.value for m in cls}
            assert {k: v for k, v in stub_members.items()} == runtime, cls_name
        else:
            runtime = _members(k for k in vars(cls) if not inspect.isclass(vars(cls)[k]))
            assert _members(stub_members) == runtime, cls_name


def test_arg_types_agree():
    # One table (csrc/provider/provider_note.h), exported by pyusdt._provider.
    from pyusdt import _native, _provider

    assert {t.name.lower(): t.value for t in _provider.ArgType} == _provider.ARG_TYPES
    for type_name, code in _provider.ARG_TYPES.items():
        assert getattr(_provider, "ARG_" + type_name.upper()) == code
    assert not hasattr(_native, "ARG_TYPES")


def test_flat_enum_aliases():
    from pyusdt import _native

    for enum_name, prefix in (("Role", "ROLE_"), ("KeyKind", "KEY_"), ("Cmp", "CMP_"), ("HistKind", "HIST_")):
        for member in getattr(_native, enum_name):
            alias = getattr(_native, prefix + member.name)
            assert type(alias) is int and alias == member.value


def test_counter_names_are_the_dtypes():
    from pyusdt import _native

    assert _native.agg_counters_dtype().names == _native.AGG_COUNTER_NAMES
    assert _native.stats_dtype().names == _native.PROBE_STATS_NAMES


def test_provider_module_needs_no_numpy():
    import pyusdt._provider

    code = (
        "import importlib.util, sys\n"
        "sys.modules['numpy'] = None\n"  # any import of numpy now fails
        f"spec = importlib.util.spec_from_file_location('pyusdt._provider', {pyusdt._provider.__file__!r})\n"
        "m = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        "elf, functions, semaphores = m.build_provider('nonumpy', [('p', bytes([m.ArgType.STR]), ['s'])])\n"
        "assert elf[:4] == b'\\x7fELF' and len(functions) == len(semaphores) == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_counter_names_are_the_abi_names():
    """Counters and ProbeStats are filled in by the names the ABI header gives
    its counters (PYUSDT_AGG_COUNTERS, PYUSDT_PROBE_STATS): a counter added
    there needs its field here."""
    from dataclasses import fields

    from pyusdt import _native
    from pyusdt.aggregate.results import Counters
    from pyusdt.trace.results import ProbeStats

    assert [f.name for f in fields(Counters) if f.name != "pending"] == list(_native.AGG_COUNTER_NAMES)
    assert [f.name for f in fields(ProbeStats)][3:] == list(_native.PROBE_STATS_NAMES)
