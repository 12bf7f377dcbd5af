"""Events as tables: pandas DataFrames and Apache Arrow tables.

    df = batch.to_pandas()                        # one EventBatch
    df = pyusdt.to_pandas(batches)                # several, as one table
    tbl = pyusdt.to_arrow(t.batches(duration=5))

The columns are described in :mod:`pyusdt.trace.columns`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Optional, Union

from pyusdt.extras import require
from pyusdt.trace.columns import decode, decoded_to_arrow, decoded_to_pandas
from pyusdt.trace.events import EventBatch

if TYPE_CHECKING:  # pragma: no cover - type names only
    import pandas
    import pyarrow

Batches = Union[EventBatch, Iterable[EventBatch]]


def _as_batch_list(batches: Batches) -> List[EventBatch]:
    return [batches] if isinstance(batches, EventBatch) else list(batches)


def to_arrow(batches: Batches, *, clock_offset_ns: Optional[int] = None) -> "pyarrow.Table":
    """One Arrow table of every event of `batches` (an EventBatch or an
    iterable of them, from one tracer or several); columns in the module doc.
    Needs pyarrow (``pip install 'pyusdt[arrow]'``)."""
    require("pyarrow", "Arrow conversion")
    return decoded_to_arrow(decode(_as_batch_list(batches), clock_offset_ns=clock_offset_ns))


def to_pandas(batches: Batches, *, clock_offset_ns: Optional[int] = None) -> "pandas.DataFrame":
    """One DataFrame of every event of `batches` (an EventBatch or an iterable
    of them, from one tracer or several); columns in the module doc.  Integer
    arguments are pandas nullable integers (null: unreadable, or the row's
    probe has no such argument).  Needs pandas (``pip install 'pyusdt[pandas]'``)."""
    require("pandas", "pandas conversion")
    return decoded_to_pandas(decode(_as_batch_list(batches), clock_offset_ns=clock_offset_ns))
