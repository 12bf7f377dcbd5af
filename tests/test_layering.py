"""The package's dependencies point one way (no BPF needed).

discover <- aggregate <- trace <- export <- serve <- cli: a module imports from its
own subpackage, from the shared base (errors, limits, extras, privileges, the native
modules) and from the subpackages before its own, never after.  provide
(the provider side) imports only the base it needs to fire probes, so a web
worker loads neither numpy nor the tracer.  Module-level imports form no
cycle.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pyusdt"
BASE = {"errors", "limits", "extras", "privileges", "arch_x86_64", "_native", "_provider", "_lazy"}
ORDER = ["expr", "discover", "aggregate", "trace", "export", "serve", "cli"]
PROVIDE_MAY_USE = {"errors", "_native", "_provider", "provide"}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out[name] = path
    return out


def _in_type_checking(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported pyusdt module, imported at module level) for each import."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}: relative import (the package uses absolute ones)")
        targets = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyusdt"):
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("pyusdt")]
        if not targets:
            continue
        top = not any(isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for p in _ancestors(node, parents))
        if _in_type_checking(node, parents):
            top = False
        found.extend((t, top) for t in targets)
    return found


def _ancestors(node: ast.AST, parents: dict) -> list:
    out = []
    while node in parents:
        node = parents[node]
        out.append(node)
    return out


def part(module: str) -> str:
    """The subpackage (or base module) a dotted module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_dependencies_point_one_way():
    known = modules()
    wrong = []
    for name, path in known.items():
        me = part(name)
        if me == "":  # the package facade: loads its names lazily from anywhere
            continue
        for target, _top in imports(path):
            if target not in known:
                continue  # a name imported from a module, counted with the module
            them = part(target)
            if them == me or them in BASE or them == "":
                if me == "provide" and them not in PROVIDE_MAY_USE and them != "":
                    wrong.append(f"{name} -> {target}")
                continue
            if me == "provide" and them not in PROVIDE_MAY_USE:
                wrong.append(f"{name} -> {target}")
                continue
            if me in BASE:
                wrong.append(f"{name} -> {target} (the base imports nothing above it)")
                continue
            if them == "provide" or ORDER.index(them) > ORDER.index(me):
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_no_import_cycles():
    known = modules()
    graph = {name: {t for t, top in imports(path) if top and t in known and t != name}
             for name, path in known.items()}
    # A submodule import runs its package's __init__ too.
    for name in known:
        for t in list(graph[name]):
            pkg = t.rsplit(".", 1)[0]
            if pkg in known and pkg != "pyusdt" and pkg != name and not name.startswith(pkg + "."):
                graph[name].add(pkg)
    state: dict[str, int] = {}
    cycles = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append(" -> ".join(stack[stack.index(m):] + [m]))
            elif m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert cycles == []


@pytest.mark.parametrize("module", ["pyusdt.provide", "pyusdt.provide.middleware", "pyusdt.provide.latency"])
def test_provider_side_imports_light(module):
    """What a web worker imports to fire probes loads neither numpy nor the tracer."""
    code = (f"import sys, {module}\n"
            "heavy = sorted(m for m in ('numpy', 'pyusdt._native', 'pyusdt.trace', 'pyusdt.discover')"
            " if m in sys.modules)\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         timeout=60, check=True)
    assert out.stdout.strip() == ""
