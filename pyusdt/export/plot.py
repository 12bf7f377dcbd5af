"""Pictures of aggregations: histograms, and latency heatmaps over time.

    r = t.aggregation(spec)
    pyusdt.export.plot.histogram(r, "hist.png")     # one panel per key (the top keys)

    heat = pyusdt.export.plot.Heatmap(interval=1.0)
    while running:
        t.poll()
        if heat.due():
            heat.add(t.aggregation(spec))       # cumulative: the interval's part is kept
    heat.add(t.aggregation(spec))
    pyusdt.export.plot.heatmap(heat, "heat.png")

Drawn with matplotlib (extra ``pyusdt[plot]``), imported on first use, on
its own Agg canvas: no window, no display, and the pyplot state of the
calling program is left alone.  The file type follows the extension (png,
svg, pdf, ...).  Bucket labels are the ones bpftrace prints (``[4K, 8K)``).
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Tuple, Union

import numpy as np

from pyusdt.aggregate.histogram import Histogram
from pyusdt.aggregate.specs import Latency
from pyusdt.errors import ConfigError, OutputError
from pyusdt.export.paths import OutputPath
from pyusdt.extras import require

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.aggregate.results import AggregationResult
    from pyusdt.aggregate.specs import Aggregate

TOP_KEYS = 12
_PURPOSE = "plotting"


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on an Agg canvas (no pyplot, no backend switch)."""
    require("matplotlib", _PURPOSE)
    figure = require("matplotlib.figure", _PURPOSE)
    agg = require("matplotlib.backends.backend_agg", _PURPOSE)
    fig = figure.Figure(figsize=(width, height), dpi=100)
    agg.FigureCanvasAgg(fig)
    return fig


def check_output(path: OutputPath) -> str:
    """Checks, before any tracing, that a picture can be written to `path`:
    matplotlib is installed, it knows the extension, the directory is
    writable.  Returns the path as a string."""
    path = os.fspath(path)
    fig = _figure(1, 1)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    types = fig.canvas.get_supported_filetypes()
    if ext not in types:
        raise OutputError(f"cannot draw to {path!r}: name it "
                          f"{', '.join('.' + t for t in ('png', 'svg', 'pdf'))} or another of: "
                          f"{' '.join(sorted(types))}")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a directory")
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write {path}: no such directory {folder}")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise OutputError(f"cannot write {path}: permission denied")
    return path


def _save(fig: Any, path: str) -> None:
    try:
        fig.savefig(path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None


def _key_text(key: object) -> str:
    return "@" if key is None else f"@[{key}]"


def _histograms(data: Any) -> List[Tuple[object, Histogram]]:
    """(key, histogram) pairs from an AggregationResult, a Histogram or a mapping."""
    if isinstance(data, Histogram):
        return [(None, data)]
    if isinstance(data, Mapping):
        return list(data.items())
    if getattr(data, "kind", None) not in ("hist", "lhist"):
        raise ConfigError(f"a histogram plot needs a hist or lhist aggregation "
                          f"(this one is {getattr(data, 'kind', type(data).__name__)})")
    return list(data.histograms().items())


def histogram(data: Union["AggregationResult", Histogram, Mapping[Any, Histogram]], path: OutputPath, *,
              top: int = TOP_KEYS, title: Optional[str] = None, unit: Optional[str] = None) -> None:
    """Draws histograms as bar charts, one panel per key: the `top` keys with
    the most values, largest first.  Each panel spans the buckets from the
    first non-empty one to the last, labelled as bpftrace labels them.
    `data`: a hist/lhist AggregationResult, a Histogram, or {key: Histogram}."""
    path = os.fspath(path)
    hists = [(k, h) for k, h in _histograms(data) if h.total]
    hists.sort(key=lambda kh: -kh[1].total)
    shown = hists[:max(1, top)]
    ncols = 1 if len(shown) < 2 else 2
    nrows = max(1, (len(shown) + ncols - 1) // ncols)
    fig = _figure(7.5 * ncols, 3.4 * nrows + 0.6)
    head = title or _default_title(data, unit)
    if len(hists) > len(shown):
        head += f" (top {len(shown)} of {len(hists)} keys)"
    fig.suptitle(head)
    if not shown:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    for n, (key, h) in enumerate(shown):
        ax = fig.add_subplot(nrows, ncols, n + 1)
        nz = np.flatnonzero(h.counts)
        idx = np.arange(nz[0], nz[-1] + 1)
        counts = h.counts[idx].astype(np.float64)
        labels = h.labels
        ax.bar(np.arange(len(idx)), counts, width=0.85, color="#3b75af")
        ax.set_xticks(np.arange(len(idx)))
        ax.set_xticklabels([labels[i] for i in idx], rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("count")
        ax.set_title(f"{_key_text(key)}  total {h.total}", fontsize=10)
        ax.set_xlim(-0.6, len(idx) - 0.4)
    fig.tight_layout()
    _save(fig, path)


def _default_title(data: Any, unit: Optional[str]) -> str:
    spec = getattr(data, "spec", None)
    if spec is not None and hasattr(spec, "start"):
        return f"latency {spec.start} -> {spec.done} ({unit or spec.unit})"
    if spec is not None and getattr(spec, "value", None) is not None:
        return f"{data.kind}(arg{spec.value})"
    return "histogram" + (f" ({unit})" if unit else "")


class Heatmap:
    """Per-interval histograms of one hist/lhist aggregation, all keys summed:
    the columns of a heatmap.

    add() takes the aggregation's cumulative result and keeps what it gained
    since the previous add() (AggregationResult.minus), with the times (in
    seconds since the Heatmap was made) that the column covers.
    """

    def __init__(self, interval: float = 1.0, start: Optional[float] = None):
        if not interval > 0:
            raise ConfigError(f"heatmap interval must be positive (got {interval})")
        self.interval = float(interval)
        self.start = time.monotonic() if start is None else start
        #: (from seconds, to seconds, histogram of that interval), in time order.
        self.columns: List[Tuple[float, float, Histogram]] = []
        self._previous: Optional[AggregationResult] = None
        self._last = 0.0
        self.spec: Union[None, Aggregate, Latency] = None

    def due(self, now: Optional[float] = None) -> bool:
        """Whether an interval has passed since the last column."""
        now = time.monotonic() if now is None else now
        return now - self.start >= self._last + self.interval

    def add(self, result: "AggregationResult", now: Optional[float] = None) -> None:
        """Adds the column from the previous add() (or the start) to `now`."""
        if result.kind not in ("hist", "lhist"):
            raise ConfigError(f"a heatmap needs a hist or lhist aggregation (this one is {result.kind})")
        t = (time.monotonic() if now is None else now) - self.start
        delta = result.minus(self._previous) if self._previous is not None else result
        hist = result.hist(None)  # empty unless unkeyed: gives the bucket kind and bounds
        counts = np.zeros(len(hist.counts), dtype=np.uint64)
        for h in delta.histograms().values():
            counts += h.counts
        self.spec = result.spec
        self._previous = result
        column = Histogram(counts, hist.kind, hist.lmin, hist.lmax, hist.step)
        if t <= self._last and not column.total:
            return  # nothing new since the last column: no empty sliver at the end
        self.columns.append((self._last, max(t, self._last), column))
        self._last = max(t, self._last)

    @property
    def total(self) -> int:
        return sum(h.total for _, _, h in self.columns)


def heatmap(data: Heatmap, path: OutputPath, *, title: Optional[str] = None,
            unit: Optional[str] = None) -> None:
    """Draws a heatmap: x the time intervals, y the buckets (bpftrace labels,
    from the lowest non-empty to the highest), colour the count; empty cells
    are left white."""
    path = os.fspath(path)
    colors = require("matplotlib.colors", _PURPOSE)
    spec = data.spec
    unit = unit or getattr(spec, "unit", None)
    head = title or (f"latency {spec.start} -> {spec.done}" if isinstance(spec, Latency) else "heatmap")
    fig = _figure(10, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    fig.suptitle(head)
    if not data.total:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        _save(fig, path)
        return
    grid = np.stack([h.counts for _, _, h in data.columns], axis=1).astype(np.float64)
    rows = np.flatnonzero(grid.sum(axis=1))
    lo, hi = int(rows[0]), int(rows[-1])
    grid = grid[lo:hi + 1]
    edges = [data.columns[0][0]] + [t1 for _, t1, _ in data.columns]
    masked = np.ma.masked_equal(grid, 0)
    # A log colour scale once counts span orders of magnitude (rare slow
    # requests next to many fast ones), linear below that.
    top = float(grid.max())
    norm = colors.LogNorm(vmin=1, vmax=top) if top >= 100 else colors.Normalize(vmin=0, vmax=top)
    mesh = ax.pcolormesh(np.asarray(edges), np.arange(hi - lo + 2) - 0.5, masked, cmap="viridis",
                         norm=norm, shading="flat")
    labels = data.columns[0][2].labels[lo:hi + 1]
    ax.set_yticks(np.arange(hi - lo + 1))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel(f"time (s), {data.interval:g} s intervals")
    ax.set_ylabel(f"latency ({unit})" if unit else "bucket")
    fig.colorbar(mesh, ax=ax, label="count")
    fig.tight_layout()
    _save(fig, path)
