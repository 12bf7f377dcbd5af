"""Optional packages (pandas, pyarrow, matplotlib), imported only when used,
so that pyusdt itself needs nothing but numpy."""
from __future__ import annotations

import importlib
from types import ModuleType

from pyusdt.errors import MissingExtraError

# Module -> the pyusdt extra that installs it.
EXTRAS = {"pandas": "pandas", "pyarrow": "arrow", "matplotlib": "plot"}


def require(module: str, purpose: str) -> ModuleType:
    """Imports `module` (pandas, pyarrow, matplotlib or a submodule of one),
    or raises MissingExtraError with the pip command that installs it."""
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{purpose} needs {top}, which is not installed: "
                                f"pip install 'pyusdt[{EXTRAS[top]}]'") from None
