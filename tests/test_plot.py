"""Pictures (pyusdt.export.plot): `pyusdt hist|lhist ... --plot FILE`, `pyusdt
latency ... --plot FILE --heatmap FILE`, and the Python API.  Each picture
is a valid PNG with something drawn in colour (bars, heatmap cells), never a
blank page; a heatmap's columns add up exactly to the final histogram; bad
picture options fail with one line before anything is attached."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from pyusdt import HeldProcess, Tracer
from pyusdt.aggregate.histogram import Histogram
from pyusdt.aggregate.specs import Latency
from pyusdt.export.plot import Heatmap, heatmap, histogram

from proc_helpers import Cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def values_prog(build):
    return build("agg_values.c", "agg_values")


@pytest.fixture(scope="module")
def latprog(build):
    return build("agg_latency.c", "agg_latency", "-pthread")


def coloured_pixels(path: Path) -> int:
    """Checks `path` is a PNG that is not blank; returns how many of its
    pixels are coloured (not white, black or grey: bars and cells)."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = matplotlib.image.imread(str(path))
    assert img.ndim == 3 and img.shape[0] >= 200 and img.shape[1] >= 300
    rgb = img[..., :3].astype(np.float64)
    assert rgb.var() > 0.001
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return int((spread > 0.15).sum())


def check_ok(res: subprocess.CompletedProcess) -> list:
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res.stderr.splitlines()


def test_hist_plot(cli, values_prog, tmp_path):
    """One panel per key; the text output is what it is without --plot."""
    png = tmp_path / "hist.png"
    args = ("hist", "-c", f"{values_prog} -r 3", "agg:value", "-v", "1", "--by", "str2")
    res = cli(*args, "--plot", str(png))
    err = check_ok(res)
    assert err[-1] == f"pyusdt: histogram drawn to {png}"
    assert coloured_pixels(png) > 2000
    assert res.stdout == check_ok_stdout(cli, args)


def check_ok_stdout(cli, args) -> str:
    res = cli(*args)
    check_ok(res)
    return res.stdout


def test_lhist_plot(cli, values_prog, tmp_path):
    png = tmp_path / "lhist.png"
    err = check_ok(cli("lhist", "-c", f"{values_prog} -r 3", "agg:value", "-v", "1", "--min", "0", "--max",
                       "1000", "--step", "100", "--plot", str(png)))
    assert err[-1] == f"pyusdt: histogram drawn to {png}"
    assert coloured_pixels(png) > 2000


@pytest.mark.parametrize("kind_args", [("--unit", "us"), ("--unit", "ms", "--lhist", "0,50,10")])
def test_latency_plot_and_heatmap(cli, latprog, tmp_path, kind_args):
    """latency (hist and lhist): --plot and --heatmap in one run, columns of 0.1 s."""
    plot, heat = tmp_path / "lat.png", tmp_path / "heat.png"
    err = check_ok(cli("latency", "-c", f"{latprog} seq 8", "--start", "lat:start", "--done", "lat:done",
                       *kind_args, "--plot", str(plot), "--heatmap", str(heat), "-i", "0.1"))
    assert err[-2] == f"pyusdt: histogram drawn to {plot}"
    assert err[-1].startswith("pyusdt: heatmap of ") and err[-1].endswith(f" interval(s) drawn to {heat}")
    assert coloured_pixels(plot) > 2000
    assert coloured_pixels(heat) > 2000


def test_heatmap_drawn_after_ctrl_c(bpf, latprog, tmp_path):
    """A run ended by SIGINT still draws its heatmap (default 1 s columns)."""
    heat = tmp_path / "heat.png"
    cli = Cli("latency", "-c", f"{latprog} seq 2000", "--start", "lat:start", "--done", "lat:done",
              "--heatmap", heat, "-i", "0.2", "--format", "json")
    child = None
    try:
        deadline = time.monotonic() + 20
        while not any(json.loads(line)["data"] for line in list(cli.out)):
            assert time.monotonic() < deadline and cli.p.poll() is None, cli.err
            time.sleep(0.05)
        with open(f"/proc/{cli.pid}/task/{cli.pid}/children") as f:
            child = int(f.read().split()[0])
        cli.p.send_signal(signal.SIGINT)
        cli.p.wait(60)
    finally:
        if child:  # it shares pyusdt's stdout: gone before the readers are joined
            os.kill(child, signal.SIGKILL)
        cli.kill()
    assert cli.wait() == 0, cli.err
    assert not any("Traceback" in line for line in cli.err)
    assert cli.err[-1].startswith("pyusdt: heatmap of ")
    assert coloured_pixels(heat) > 2000


def test_api_heatmap_columns_add_up(bpf, latprog, tmp_path):
    """Heatmap.add() keeps each interval's part: the columns sum to the final
    histogram bucket for bucket; histogram() and heatmap() draw them."""
    spec = Latency("lat:start", "lat:done", unit="us")
    held = HeldProcess([str(latprog), "seq", "6"])
    with Tracer() as t:
        t.attach_latency(spec, command=held)
        t.start()
        heat = Heatmap(interval=0.05)
        deadline = time.monotonic() + 20
        while not t.done:
            assert time.monotonic() < deadline
            t.poll(timeout=0.02)
            if heat.due():
                heat.add(t.aggregation(spec))
        final = t.aggregation(spec)
        heat.add(final)
    assert final.hist().total == 18
    summed = np.sum([h.counts for _, _, h in heat.columns], axis=0)
    assert summed.tolist() == final.hist().counts.tolist()
    starts = [c[0] for c in heat.columns]
    assert starts == sorted(starts) and all(c[0] <= c[1] for c in heat.columns)
    histogram(final, tmp_path / "h.png")
    heatmap(heat, tmp_path / "m.png")
    assert coloured_pixels(tmp_path / "h.png") > 2000
    assert coloured_pixels(tmp_path / "m.png") > 2000


def test_api_histogram_objects(tmp_path):
    """histogram() takes a Histogram or {key: Histogram} too; an empty one
    draws 'no values' (a valid PNG without bars)."""
    log2 = Histogram.from_values([0, 1, 2, 3, 900, 1 << 40, -5])
    linear = Histogram.from_values(range(0, 100, 7), kind="linear", lmin=0, lmax=100, step=10)
    histogram({"a": log2, "b": linear}, tmp_path / "two.png", title="two keys")
    assert coloured_pixels(tmp_path / "two.png") > 2000
    histogram(Histogram({}), tmp_path / "empty.png")
    assert coloured_pixels(tmp_path / "empty.png") < 50


# -- bad options ------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (("hist", "{v}", "agg:value", "-v", "1", "--plot", "{tmp}/h.xyz"), "cannot draw to '{tmp}/h.xyz': name it"),
    (("lhist", "{v}", "agg:value", "-v", "1", "--min", "0", "--max", "10", "--step", "1", "--plot",
      "{tmp}/nodir/h.png"), "cannot write {tmp}/nodir/h.png: no such directory {tmp}/nodir"),
    (("latency", "{l}", "--start", "lat:start", "--done", "lat:done", "--kind", "avg", "--plot", "{tmp}/h.png"),
     "--plot draws histograms: use it with --kind hist or lhist"),
    (("latency", "{l}", "--start", "lat:start", "--done", "lat:done", "--kind", "stats", "--heatmap",
      "{tmp}/h.png"), "--heatmap draws histograms: use it with --kind hist or lhist"),
    (("latency", "{l}", "--start", "lat:start", "--done", "lat:done", "--heatmap", "{tmp}"),
     "cannot draw to '{tmp}': name it"),
])
def test_bad_picture_options(cli, values_prog, latprog, tmp_path, args, message):
    fill = {"v": str(values_prog), "l": str(latprog), "tmp": str(tmp_path)}
    res = cli(*(a.format(**fill) for a in args))
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyusdt: " + message.format(**fill)), lines
    assert res.stdout == ""


def test_without_matplotlib(values_prog, tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from pyusdt.cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    res = subprocess.run([sys.executable, "-c", code, "hist", str(values_prog), "agg:value", "-v", "1",
                          "--plot", str(tmp_path / "h.png")], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "pyusdt: plotting needs matplotlib, which is not installed: pip install 'pyusdt[plot]'"]
