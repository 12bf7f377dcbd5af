"""pyusdt serve without the kernel: the config (JSON file and dataclasses)
and its one-line errors, Prometheus's naming rules, the exposition text of
known results (exact, in both formats), label escaping, and the cap on
series.  The exporter itself, tracing for real, is tests/test_serve.py."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pyusdt import _native
from pyusdt.aggregate.results import AggregationResult, Counters
from pyusdt.aggregate.specs import Aggregate, Arg, Latency, StrArg, Where
from pyusdt.serve import MetricFamily, MetricSpec, Sample, ServeConfig, ServeConfigError, Target, load_config, render
from pyusdt.serve.aggregations import build_aggregation
from pyusdt.serve.exposition import escape_label_value, wants_openmetrics
from pyusdt.serve.families import metric_family
from pyusdt.serve.series_cap import SeriesCap

from conftest import PYUSDT

REPO = Path(__file__).resolve().parent.parent
APP = {"path": "/usr/bin/app"}


def write(tmp_path: Path, data: object, name: str = "serve.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def config_with(metric: dict, **top: object) -> dict:
    return {"targets": [APP], "metrics": [metric], **top}


COUNT = {"name": "requests", "kind": "count", "probe": "app:request"}


# --------------------------------------------------------------------------
# Errors: one line naming the file, the metric and the field


@pytest.mark.parametrize("metric,where,reason", [
    ({**COUNT, "key": "str(arg0)"}, "metric 'requests': field 'key'", "unknown field (did you mean 'by'?)"),
    ({**COUNT, "name": "9lives"}, "metric '9lives': field 'name'", "a metric name matches [a-zA-Z_:][a-zA-Z0-9_:]*"),
    ({**COUNT, "kind": "histogram"}, "metric 'requests': field 'kind'",
     "one of count, sum, hist, lhist, latency (got 'histogram')"),
    ({**COUNT, "kind": "hist"}, "metric 'requests': field 'value'", "hist needs a value (an expression such as arg2)"),
    ({**COUNT, "value": "arg1"}, "metric 'requests': field 'value'", "count takes no value"),
    ({**COUNT, "where": "arg1 >= "}, "metric 'requests': field 'where'", "at column"),
    ({**COUNT, "by": "str(arg0), arg1", "labels": ["method"]}, "metric 'requests': field 'labels'",
     "one label name per key of 'by' (2), got 1"),
    ({**COUNT, "by": "arg1", "labels": ["__x"]}, "metric 'requests': field 'labels'", "does not start with __"),
    ({**COUNT, "targets": [{"pid": "12"}]}, "metric 'requests': field 'targets'", "a pid is an integer (got '12')"),
    ({**COUNT, "targets": [{"host": "x"}]}, "metric 'requests': field 'targets'", "a target is one of path"),
    ({**COUNT, "targets": []}, "metric 'requests': field 'targets'", "at least one target is needed"),
    ({**COUNT, "kind": "lhist", "value": "arg1", "lhist": {"min": 10, "max": 5, "step": 1}},
     "metric 'requests': field 'lhist'", "lhist min must be below max (got min 10, max 5)"),
    ({**COUNT, "unit": "bytes"}, "metric 'requests': field 'unit'", "count has no unit"),
    ({**COUNT, "kind": "sum", "value": "arg1", "unit": "furlongs"}, "metric 'requests': field 'unit'",
     "one of bytes (got 'furlongs')"),
    ({"name": "lat", "kind": "latency", "probe": "app:x", "done": "app:done"}, "metric 'lat': field 'probe'",
     "not for latency (it takes start and done)"),
    ({"name": "lat", "kind": "latency", "start": "app:start", "done": "app:done", "pair_by": [0, 1, 2]},
     "metric 'lat': field 'pair_by'", "an argument index or (start index, done index)"),
    ({**COUNT, "max_series": 0}, "metric 'requests': field 'max_series'", "an integer from 1 to 1000000 (got 0)"),
    ({**COUNT, "name": "target_attached"}, "metric 'target_attached': field 'name'",
     "exported as pyusdt_target_attached, which is a self-metric of pyusdt serve"),
    ({**COUNT, "kind": "hist", "value": "arg1", "name": "latency_count"}, "metric 'latency_count': field 'name'",
     "a histogram's name does not end in _bucket, _sum, _count, _total"),
])
def test_metric_errors_name_file_metric_and_field(tmp_path, metric, where, reason):
    path = write(tmp_path, config_with(metric))
    with pytest.raises(ServeConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {where}: "), msg
    assert reason in msg
    assert "\n" not in msg


@pytest.mark.parametrize("data,message", [
    ("{\"metrics\": [", "not valid JSON: line 1 column 14: Expecting value"),
    ([], "the config is a JSON object with a \"metrics\" list"),
    ({"metrics": []}, "field 'metrics': no metrics: there is nothing to export"),
    ({"metrics": [COUNT]}, "metric 'requests': field 'targets': no targets: give the metric \"targets\", "
                           "or the config top-level ones"),
    (config_with(COUNT, listen="localhost"), "field 'listen': listen address must be HOST:PORT (got 'localhost')"),
    (config_with(COUNT, namespace="my-app"), "field 'namespace': a namespace matches"),
    ({"targets": [APP], "metrics": [COUNT, COUNT]}, "metric 'requests': field 'name': two metrics have this name"),
    ({"targets": [APP], "metrics": [COUNT, {**COUNT, "name": "requests_total"}]},
     "metric 'requests_total': field 'name': exported as pyusdt_requests, which is metric 'requests''s"),
    (config_with(COUNT, target=[APP]), "field 'target': unknown field (did you mean 'targets'?)"),
])
def test_config_errors(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ServeConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: {message}"), str(e.value)


def test_unreadable_file(tmp_path):
    with pytest.raises(ServeConfigError) as e:
        load_config(tmp_path / "nope.json")
    assert str(e.value) == f"{tmp_path / 'nope.json'}: cannot read the config: No such file or directory"


def test_container_cgroup_and_object_targets(tmp_path):
    for kind, value in (("container", "web-1"), ("cgroup", "/sys/fs/cgroup/app.slice"),
                        ("object", "libstdc++.so.6")):
        path = write(tmp_path, config_with({**COUNT, "targets": [{kind: value}]}))
        assert load_config(path).metrics[0].targets == (Target(kind, value),)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYUSDT, *args], capture_output=True, text=True, timeout=60)


def test_cli_bad_config_is_one_line_and_exit_1(tmp_path):
    path = write(tmp_path, config_with({**COUNT, "by": "str(arg0"}))
    res = run_cli("serve", str(path))
    assert res.returncode == 1
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"pyusdt: {path}: metric 'requests': field 'by': "), lines
    res = run_cli("serve", str(write(tmp_path, config_with(COUNT), "ok.json")), "--listen", "nowhere")
    assert (res.returncode, res.stderr) == (1, "pyusdt: listen address must be HOST:PORT (got 'nowhere')\n")


def test_cli_check_lists_what_is_exported(tmp_path):
    path = write(tmp_path, REPO.joinpath("deploy", "serve-example.json").read_text())
    res = run_cli("serve", str(path), "--check")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "pyusdt_transactions_total  count  object:postgres",
        "pyusdt_query_duration_seconds  latency  object:postgres",
        "pyusdt_buffer_reads_total  count  object:postgres",
        "pyusdt_python_gc_total  count  object:python3.11",
        "pyusdt_python_imports_total  count  object:python3.11",
    ]


# --------------------------------------------------------------------------
# The dataclasses: the file and the code build the same thing


def test_file_and_code_give_the_same_config(tmp_path):
    path = write(tmp_path, {
        "namespace": "shop", "listen": "127.0.0.1:9999", "targets": [APP],
        "metrics": [
            {"name": "requests", "kind": "count", "probe": "app:request", "by": "str(arg0), arg1",
             "labels": ["method", "status"], "where": "arg1 >= 500", "_comment": "comments start with _"},
            {"name": "size", "kind": "hist", "probe": "app:request", "value": "arg2", "unit": "bytes",
             "targets": [{"pid": 42}], "max_series": 10},
            {"name": "lat", "kind": "latency", "start": "app:start", "done": "app:done", "pair_by": [0, 1],
             "lhist": {"min": 0, "max": 100, "step": 10}, "resolution": "us"},
        ]})
    app = (Target("path", "/usr/bin/app"),)
    built = ServeConfig(namespace="shop", listen="127.0.0.1:9999", metrics=(
        MetricSpec("requests", "count", app, probe="app:request", by="str(arg0), arg1", labels=("method", "status"),
                   where="arg1 >= 500"),
        MetricSpec("size", "hist", (Target("pid", 42),), probe="app:request", value="arg2", unit="bytes",
                   max_series=10),
        MetricSpec("lat", "latency", app, start="app:start", done="app:done", pair_by=(0, 1), lhist=(0, 100, 10),
                   resolution="us"),
    ))
    loaded = load_config(path)
    assert loaded == built
    assert loaded.source == str(path)
    assert [m.exported_base("shop") for m in loaded.metrics] == ["shop_requests", "shop_size_bytes",
                                                                 "shop_lat_seconds"]
    # plain forms take the plain (faster) route in the kernel
    agg = build_aggregation(loaded.metrics[0])
    assert (agg.key, agg.where) == ("str(arg0), arg1", Where(1, ">=", 500))
    size = build_aggregation(loaded.metrics[1])
    assert isinstance(size, Aggregate) and (size.kind, size.value, size.key) == ("hist", 2, None)
    lat = build_aggregation(loaded.metrics[2])
    assert isinstance(lat, Latency) and (lat.kind, lat.lhist, lat.unit, lat.pair_by) == ("lhist", (0, 100, 10),
                                                                                         "us", (0, 1))


def test_code_built_errors_name_metric_and_field():
    with pytest.raises(ServeConfigError) as e:
        MetricSpec("sizes", "hist", (Target("path", "/x"),), probe="app:request", value="arg2", by="arg0",
                   labels=("le",))
    assert str(e.value) == "metric 'sizes': field 'labels': 'le' is the bucket label of a histogram"
    with pytest.raises(ServeConfigError) as e:
        Target("pid", 0)
    assert str(e.value) == "field 'targets': pid must be at least 1 (got 0)"


def test_names_and_labels():
    t = (Target("path", "/x"),)
    assert MetricSpec("requests_total", "count", t, probe="p").exported_base("pyusdt") == "pyusdt_requests"
    assert MetricSpec("rx", "sum", t, probe="p", value="arg1", unit="bytes").exported_base("") == "rx_bytes"
    assert MetricSpec("rx_bytes", "sum", t, probe="p", value="arg1", unit="bytes").exported_base("a") == "a_rx_bytes"
    assert MetricSpec("q", "latency", t, start="s", done="d").exported_base("pyusdt") == "pyusdt_q_seconds"
    spec = MetricSpec("x", "count", t, probe="p", by="str(arg0), pid, comm, *(uint64 *)(arg1 + 8), str(arg0)")
    assert spec.label_names == ("str_arg0", "pid", "comm", "uint64_arg1_8", "str_arg0_2")


# --------------------------------------------------------------------------
# Exposition: exact text


FAMILIES = [
    MetricFamily("app_requests", "counter", 'Requests "seen"\nby method \\ path', (
        Sample("_total", (("method", "GET"),), 3),
        Sample("_total", (("method", 'we"ird\\na\nme'),), 18446744073709551615),
    )),
    MetricFamily("app_size_bytes", "histogram", "Sizes", (
        Sample("_bucket", (("le", "0"),), 1),
        Sample("_bucket", (("le", "1"),), 1),
        Sample("_bucket", (("le", "3"),), 4),
        Sample("_bucket", (("le", "+Inf"),), 5),
        Sample("_sum", (), 10),
        Sample("_count", (), 5),
    )),
    MetricFamily("app_up", "gauge", "Up", (Sample("", (), 1.5), Sample("", (("x", "nan"),), float("nan")))),
]


def test_text_format_0_0_4():
    assert render(FAMILIES) == (
        '# HELP app_requests_total Requests "seen"\\nby method \\\\ path\n'
        "# TYPE app_requests_total counter\n"
        'app_requests_total{method="GET"} 3\n'
        'app_requests_total{method="we\\"ird\\\\na\\nme"} 18446744073709551615\n'
        "# HELP app_size_bytes Sizes\n"
        "# TYPE app_size_bytes histogram\n"
        'app_size_bytes_bucket{le="0"} 1\n'
        'app_size_bytes_bucket{le="1"} 1\n'
        'app_size_bytes_bucket{le="3"} 4\n'
        'app_size_bytes_bucket{le="+Inf"} 5\n'
        "app_size_bytes_sum 10\n"
        "app_size_bytes_count 5\n"
        "# HELP app_up Up\n"
        "# TYPE app_up gauge\n"
        "app_up 1.5\n"
        'app_up{x="nan"} NaN\n'
    )


def test_openmetrics_format():
    text = render(FAMILIES, openmetrics=True)
    assert text.splitlines()[:4] == [
        '# HELP app_requests Requests \\"seen\\"\\nby method \\\\ path',  # no _total on the family
        "# TYPE app_requests counter",
        'app_requests_total{method="GET"} 3',
        'app_requests_total{method="we\\"ird\\\\na\\nme"} 18446744073709551615',
    ]
    assert text.endswith("app_up 1.5\napp_up{x=\"nan\"} NaN\n# EOF\n")


def test_label_escaping():
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_label_value("plain ✓") == "plain ✓"


def test_accept_header():
    prometheus_2 = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert wants_openmetrics(prometheus_2)
    assert not wants_openmetrics("")
    assert not wants_openmetrics("text/plain;version=0.0.4")
    assert not wants_openmetrics("*/*")
    assert not wants_openmetrics("application/openmetrics-text;q=0")


# --------------------------------------------------------------------------
# Results -> families, from rows as the kernel's maps hold them

ROW = np.dtype([("agg_id", "<u4"), ("bucket", "<u4"), ("key", "<u8"), ("str_key", "S64"), ("count", "<u8"),
                ("sum", "<i8"), ("min", "<i8"), ("max", "<i8"), ("is_str", "u1")])


def result_of(spec, rows) -> AggregationResult:
    """An AggregationResult from (bucket, key, count, sum) rows."""
    arr = np.zeros(len(rows), dtype=ROW)
    for i, (bucket, key, count, total) in enumerate(rows):
        arr[i]["bucket"], arr[i]["count"], arr[i]["sum"] = bucket, count, total
        arr[i]["min"] = arr[i]["max"] = total // max(count, 1)
        if isinstance(key, str):
            arr[i]["str_key"], arr[i]["is_str"] = key.encode(), 1
        else:
            arr[i]["key"] = key
    return AggregationResult(spec, arr, Counters(0, 0, 0, 0, 0, 0, 0, 0), [])


STATS = _native.STATS_ROW


def test_log2_histogram_buckets_are_exact():
    """Values 0, 1, 5, 5, 100 (log2 buckets [0], [1], [4, 8) twice, [64, 128)):
    le is each bucket's largest integer, cumulative, up to the highest non-empty."""
    spec = MetricSpec("size", "hist", (Target("path", "/x"),), probe="p", value="arg2", by="str(arg0)",
                      labels=("method",), unit="bytes")
    result = result_of(build_aggregation(spec), [(1, "GET", 1, 0), (2, "GET", 1, 1), (4, "GET", 2, 10),
                                                 (8, "GET", 1, 100)])
    text = render([metric_family(spec, "pyusdt", result, SeriesCap(10))])
    les = ["0", "1", "3", "7", "15", "31", "63", "127"]
    counts = [1, 2, 2, 4, 4, 4, 4, 5]
    assert text == (
        "# HELP pyusdt_size_bytes log2 histogram: hist of arg2 at p by str(arg0)\n"
        "# TYPE pyusdt_size_bytes histogram\n"
        + "".join(f'pyusdt_size_bytes_bucket{{method="GET",le="{le}"}} {c}\n' for le, c in zip(les, counts))
        + 'pyusdt_size_bytes_bucket{method="GET",le="+Inf"} 5\n'
        'pyusdt_size_bytes_sum{method="GET"} 111\n'
        'pyusdt_size_bytes_count{method="GET"} 5\n')


def test_latency_and_linear_bounds():
    """Latency in us: a bucket holding at most u us holds at most (u+1)*1000-1 ns."""
    spec = MetricSpec("lat", "latency", (Target("path", "/x"),), start="s", done="d", resolution="us")
    result = result_of(build_aggregation(spec), [(3, 0, 2, 5)])  # two values in [2, 4) us, summing 5 us
    fam = metric_family(spec, "pyusdt", result, SeriesCap(10))
    assert [(s.suffix, s.labels, s.value) for s in fam.samples] == [
        ("_bucket", (("le", "9.99e-07"),), 0),
        ("_bucket", (("le", "1.999e-06"),), 0),
        ("_bucket", (("le", "3.999e-06"),), 2),
        ("_bucket", (("le", "+Inf"),), 2),
        ("_sum", (), 5e-06),
        ("_count", (), 2),
    ]
    lin = MetricSpec("st", "lhist", (Target("path", "/x"),), probe="p", value="arg1", lhist=(100, 600, 100))
    result = result_of(build_aggregation(lin), [(2, 0, 3, 600), (6, 0, 1, 777)])  # [200, 300) x3, [600, ...) x1
    fam = metric_family(lin, "pyusdt", result, SeriesCap(10))
    assert [(s.labels, s.value) for s in fam.samples if s.suffix == "_bucket"] == [
        ((("le", "99"),), 0), ((("le", "199"),), 0), ((("le", "299"),), 3), ((("le", "+Inf"),), 4)]


def test_series_beyond_the_cap_are_summed_and_counted():
    spec = MetricSpec("requests", "count", (Target("path", "/x"),), probe="p", by="arg1", labels=("status",),
                      max_series=2)
    agg = build_aggregation(spec)
    assert agg.key == Arg(1)
    cap = SeriesCap(spec.max_series)
    first = result_of(agg, [(STATS, 500, 4, 0), (STATS, 200, 7, 0), (STATS, 404, 1, 0)])
    fam = metric_family(spec, "pyusdt", first, cap)
    assert [(s.labels, s.value) for s in fam.samples] == [
        ((("status", "200"),), 7), ((("status", "404"),), 1), ((("status", "__overflow__"),), 4)]
    assert cap.dropped == 1
    # Later keys, even smaller ones, go to the overflow: admitted series stay.
    later = result_of(agg, [(STATS, 500, 5, 0), (STATS, 200, 9, 0), (STATS, 404, 1, 0), (STATS, 100, 2, 0)])
    fam = metric_family(spec, "pyusdt", later, cap)
    assert [(s.labels, s.value) for s in fam.samples] == [
        ((("status", "200"),), 9), ((("status", "404"),), 1), ((("status", "__overflow__"),), 7)]
    assert cap.dropped == 2


def test_str_key_spec_is_plain():
    spec = MetricSpec("r", "count", (Target("path", "/x"),), probe="p", by="str(arg0)")
    assert build_aggregation(spec).key == StrArg(0)
