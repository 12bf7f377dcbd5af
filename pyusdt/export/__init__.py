"""Getting events and aggregations out: tables (pandas, Arrow), files
(Parquet, Arrow, CSV, JSON lines), pictures (matplotlib) and text.  Each
optional library is imported only when its output is asked for, and numpy
(which tables need) only when a table is: text output needs none."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["to_arrow", "to_pandas"]

if TYPE_CHECKING:
    from pyusdt.export.table import to_arrow as to_arrow
    from pyusdt.export.table import to_pandas as to_pandas


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'pyusdt.export' has no attribute {name!r}")
    from pyusdt.export import table

    value = getattr(table, name)
    globals()[name] = value  # once found, a plain attribute
    return value
