"""Getting events and aggregations out: tables (pandas, Arrow), files
(Parquet, Arrow, CSV, JSON lines), pictures (matplotlib) and text.  Each
optional library is imported only when its output is asked for."""
from pyusdt.export.table import to_arrow, to_pandas

__all__ = ["to_arrow", "to_pandas"]
