"""Package names loaded when first used (a package's __getattr__ and
__dir__, PEP 562): importing the package costs nothing, and each name
imports its own module on first use.  pyusdt's start-up depends on it: a
provider loads neither numpy nor the tracer, and a plain trace neither the
expression compiler nor numpy."""
from __future__ import annotations

import importlib

# typing.TYPE_CHECKING without importing typing (~8 ms with re and enum),
# for the modules a CLI trace imports before it starts loading its session
# (pyusdt.cli.entry).  Type checkers take any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - type names only
    from typing import Any, Callable, Mapping


def lazy_names(package: str, homes: Mapping[str, str],
               namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for `package`, whose public names live in
    `homes` (name -> module; a submodule is its own home).  A name found is
    stored in `namespace` (the package's globals), a plain attribute since."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(home)
        value = module if home == f"{package}.{name}" else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
