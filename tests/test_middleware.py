"""pyusdt.provide.middleware: request__start / request__done from WSGI and ASGI apps.

Traced in a separate Python process (tests/programs/tracers_child.py): a
real wsgiref server serving requests this test makes with urllib, and an
ASGI app driven directly through the middleware; exact method, path and
status per request, and bpftrace seeing the same requests.  The in-process
tests check the WSGI iterable protocol and the ASGI message flow with
stand-in probes.
"""
from __future__ import annotations

import asyncio
import gc
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from pyusdt import Provider, Tracer
from pyusdt.errors import ProviderError
from pyusdt.provide import latency as tracers
from pyusdt.provide.middleware import ASGIMiddleware, WSGIMiddleware, web_provider

from proc_helpers import ask, events_within, start_tracers_child

# The requests made to the child's WSGI server: (method, url path, body, status, path as traced).
WSGI_REQUESTS = [
    ("GET", "/hello", None, 200, "/hello"),
    ("GET", "/missing?secret=1", None, 404, "/missing"),
    ("POST", "/echo", b"abc", 201, "/echo"),
    ("GET", "/slow", None, 200, "/slow"),
    ("GET", "/stream", None, 200, "/stream"),
    ("GET", "/caf%C3%A9", None, 200, "/café"),
    ("GET", "/boom", None, 500, "/boom"),
]
WSGI_BODIES = {"/hello": b"hello", "/echo": b"abc", "/slow": b"slow", "/stream": b"abc", "/café": b"cafe"}

# The http requests the child's "asgi" command makes (lifespan and websocket pass through).
ASGI_EXPECTED = [("GET", "/a", 200), ("POST", "/b", 404), ("GET", "/raise", 500),
                 ("PUT", "/late", 503), ("GET", "/café", 200)]


def request(port: int, method: str, path: str, body=None) -> tuple:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def trace_web(pid: int) -> Tracer:
    t = Tracer()
    found = t.attach_pid(pid, "pyusdt_web:*", strings=[0, 1])
    assert sorted(p.fullname for p in found) == ["pyusdt_web:request__done", "pyusdt_web:request__start"]
    t.start()
    return t


def expected_wsgi_events() -> list:
    out = []
    for method, _, _, status, path in WSGI_REQUESTS:
        out += [("request__start", (method, path)), ("request__done", (method, path, status))]
    return out


def shape(events: list) -> list:
    """(probe name, args without the duration) of each event."""
    return [(e.probe.probe.name, e.args[:3]) for e in events]


def make_wsgi_requests(port: int) -> int:
    """Every WSGI_REQUESTS request, checked; returns CLOCK_MONOTONIC before
    the first was sent (the kernel's clock), which every duration the
    middleware measures comes after."""
    sent_ns = time.monotonic_ns()
    for method, url, body, status, path in WSGI_REQUESTS:
        got_status, got_body = request(port, method, url, body)
        assert got_status == status, url
        if path in WSGI_BODIES:
            assert got_body == WSGI_BODIES[path], url
    return sent_ns


# -- traced, in a separate process ------------------------------------------


def test_wsgi_server_requests(bpf):
    c = start_tracers_child()
    try:
        port = int(ask(c, "wsgi"))
        assert request(port, "GET", "/hello") == (200, b"hello")  # untraced: passes through
        with trace_web(c.pid) as t:
            assert ask(c, "traced") == "0 1"
            sent_ns = make_wsgi_requests(port)
            events = events_within(t, 2 * len(WSGI_REQUESTS))
            stats = {s.probe: (s.hits, s.events, s.lost_ringbuf, s.str_fail) for s in t.stats()}
        assert shape(events) == expected_wsgi_events()
        assert {e.pid for e in events} == {c.pid}
        done = {e.args[1]: e for e in events if e.probe.probe.name == "request__done"}
        starts = [e for e in events if e.probe.probe.name == "request__start"]
        for s, d in zip(starts, done.values()):
            # The middleware reads the clock after the request was sent and
            # before it fires done: its duration ends before the done hit's
            # timestamp (the same clock) and begins after sent_ns.
            assert sent_ns < s.ts_ns < d.ts_ns
            assert 0 < d.args[3] <= d.ts_ns - sent_ns, d.args
        assert done["/slow"].args[3] >= 20_000_000  # it sleeps 20 ms
        n = len(WSGI_REQUESTS)
        assert stats == {"pyusdt_web:request__start": (n, n, 0, 0), "pyusdt_web:request__done": (n, n, 0, 0)}
        assert ask(c, "closes") == "1"  # /stream's close() reached through the middleware
        c.send("quit")
        assert c.wait() == 0
    finally:
        c.kill()


def test_asgi_requests(bpf):
    c = start_tracers_child()
    try:
        with trace_web(c.pid) as t:
            asked_ns = time.monotonic_ns()
            finals = json.loads(ask(c, "asgi"))
            events = events_within(t, 2 * len(ASGI_EXPECTED))
        expected = []
        for method, path, status in ASGI_EXPECTED:
            expected += [("request__start", (method, path)), ("request__done", (method, path, status))]
        assert shape(events) == expected
        done = [e for e in events if e.probe.probe.name == "request__done"]
        assert done[0].args[3] >= 20_000_000  # /a sleeps between its two body chunks
        for e, final in zip(done, finals):
            assert 0 < e.args[3] <= e.ts_ns - asked_ns  # measured inside the request
            if final is not None:  # fired after the final body was sent
                assert e.ts_ns >= final, e.args
        assert [f is None for f in finals] == [False, False, True, True, False]
        c.send("quit")
        assert c.wait() == 0
    finally:
        c.kill()


def test_middleware_respects_the_switch(bpf, monkeypatch):
    monkeypatch.setenv("PYUSDT_TRACING", "0")
    c = start_tracers_child()
    try:
        port = int(ask(c, "wsgi"))
        with trace_web(c.pid) as t:
            assert ask(c, "traced") == "0 1"
            make_wsgi_requests(port)
            assert json.loads(ask(c, "asgi"))
            assert events_within(t, 0) == []

            c.p.send_signal(signal.SIGPROF)
            deadline = time.monotonic() + 5
            while ask(c, "state") != "on":
                assert time.monotonic() < deadline
            assert request(port, "GET", "/hello") == (200, b"hello")
            assert shape(events_within(t, 2)) == [("request__start", ("GET", "/hello")),
                                                 ("request__done", ("GET", "/hello", 200))]

            assert ask(c, "disable") == "off"
            assert request(port, "GET", "/hello") == (200, b"hello")
            assert events_within(t, 0) == []
        c.send("quit")
        assert c.wait() == 0
    finally:
        c.kill()


def test_bpftrace_sees_the_same_requests(bpftrace):
    c = start_tracers_child()
    bt = None
    try:
        port = int(ask(c, "wsgi"))
        program = 'usdt:*:pyusdt_web:request__done { printf("%s %s %d\\n", str(arg0), str(arg1), arg2); }'
        bt = subprocess.Popen([bpftrace, "-p", str(c.pid), "-e", program],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # bpftrace says "Attaching" before it attaches: wait for the semaphore.
        deadline = time.monotonic() + 20
        while ask(c, "traced") != "0 1":
            assert bt.poll() is None, bt.stderr.read()
            assert time.monotonic() < deadline, "bpftrace did not attach"
            time.sleep(0.05)
        with trace_web(c.pid) as t:
            make_wsgi_requests(port)
            ours = [e for e in events_within(t, 2 * len(WSGI_REQUESTS))
                    if e.probe.probe.name == "request__done"]
        c.send("quit")
        assert c.wait() == 0
        out, err = bt.communicate(timeout=20)  # bpftrace -p ends with the process
        theirs = [line for line in out.splitlines() if line and not line.startswith("Attaching")]
        expected = [f"{m} {p} {s}" for m, _, _, s, p in WSGI_REQUESTS]
        assert theirs == expected, err
        assert [f"{m} {p} {s}" for m, p, s, _ in (e.args for e in ours)] == expected
    finally:
        c.kill()
        if bt is not None and bt.poll() is None:
            bt.kill()
            bt.wait()


# -- the protocols, in this process (stand-in probes, nothing traced) -----------


class Log:
    """One log for the stand-in probes and the app/server side, to check order."""

    def __init__(self):
        self.entries: list = []
        self.created_ns = time.monotonic_ns()  # before any request of the test


class FakeProbe:
    def __init__(self, name: str, log: Log, enabled: bool = True):
        self.name, self.log, self.enabled = name, log, enabled

    def fire(self, *args):
        if self.name == "done":  # a duration measured since the log was made, at most
            assert args[3] <= time.monotonic_ns() - self.log.created_ns, args
        self.log.entries.append((self.name, args))


@pytest.fixture
def switch():
    was_on = tracers.tracing_enabled()
    tracers.enable()
    yield
    tracers.configure(enabled=was_on)


def faked(mw, log: Log, start_on: bool = True, done_on: bool = True):
    mw._probes.pair = (FakeProbe("start", log, start_on), FakeProbe("done", log, done_on))
    return mw


def environ(method="GET", path="/p", script=""):
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": script, "QUERY_STRING": "a=1"}


def strip(entries):
    """Log entries with durations replaced by True when plausible."""
    out = []
    for name, args in entries:
        if name == "done":
            method, path, status, ns = args
            assert isinstance(ns, int) and ns >= 0  # and bounded when fired (FakeProbe)
            args = (method, path, status)
        out.append((name, args))
    return out


class Closing:
    def __init__(self, log, chunks):
        self.log, self.chunks = log, chunks

    def __iter__(self):
        for chunk in self.chunks:
            self.log.entries.append(("yield", chunk))
            yield chunk

    def close(self):
        self.log.entries.append(("close", ()))


def test_wsgi_done_after_close(switch):
    log = Log()
    statuses = []

    def app(env, start_response):
        write = start_response("418 I'm a teapot", [("X", "y")])
        assert write == "write-callable"
        return Closing(log, [b"a", b"b"])

    def start_response(status, headers, exc_info=None):
        statuses.append(status)
        return "write-callable"

    mw = faked(WSGIMiddleware(app), log)
    result = mw(environ("DELETE", "/x/caf\xc3\xa9", script="/root"), start_response)
    assert statuses == ["418 I'm a teapot"]
    assert b"".join(result) == b"ab"
    assert strip(log.entries) == [("start", ("DELETE", "/root/x/café")), ("yield", b"a"), ("yield", b"b")]
    result.close()
    assert strip(log.entries)[3:] == [("close", ()), ("done", ("DELETE", "/root/x/café", 418))]
    result.close()  # passed on again, but fires no second done
    assert strip(log.entries)[5:] == [("close", ())]


def test_wsgi_sized_lazy_and_failing_apps(switch):
    log = Log()

    def listed(env, start_response):
        start_response("200 OK", [])
        return [b"one block"]

    def lazy(env, start_response):  # a generator: start_response at the first step
        start_response("204 No Content", [])
        yield b""

    def failing(env, start_response):
        raise ValueError("app error")

    def sr(status, headers, exc_info=None):
        return None

    r = faked(WSGIMiddleware(listed), log)(environ(), sr)
    assert len(r) == 1 and list(r) == [b"one block"]  # wsgiref sets Content-Length from len()
    r.close()
    r = faked(WSGIMiddleware(lazy), log)(environ("HEAD"), sr)
    with pytest.raises(TypeError):
        len(r)
    assert list(r) == [b""]
    r.close()
    with pytest.raises(ValueError):
        faked(WSGIMiddleware(failing), log)(environ("PUT"), sr)
    assert strip(log.entries) == [
        ("start", ("GET", "/p")), ("done", ("GET", "/p", 200)),
        ("start", ("HEAD", "/p")), ("done", ("HEAD", "/p", 204)),
        ("start", ("PUT", "/p")), ("done", ("PUT", "/p", 500)),
    ]


def test_wsgi_response_never_closed_is_reported_when_dropped(switch):
    log = Log()

    def app(env, start_response):
        start_response("200 OK", [])
        return iter([b"x"])

    r = faked(WSGIMiddleware(app), log)(environ(), lambda s, h, e=None: None)
    assert list(r) == [b"x"]
    assert strip(log.entries) == [("start", ("GET", "/p"))]
    del r
    gc.collect()
    assert strip(log.entries)[1:] == [("done", ("GET", "/p", 200))]


def test_wsgi_passes_through_when_untraced_or_off(switch):
    log = Log()
    body = [b"body"]

    def app(env, start_response):
        start_response("200 OK", [])
        return body

    sr = lambda s, h, e=None: None  # noqa: E731
    assert faked(WSGIMiddleware(app), log, False, False)(environ(), sr) is body
    # only request__start traced: fired, response untouched
    assert faked(WSGIMiddleware(app), log, True, False)(environ(), sr) is body
    assert log.entries == [("start", ("GET", "/p"))]
    tracers.disable()
    assert faked(WSGIMiddleware(app), log)(environ(), sr) is body
    assert len(log.entries) == 1
    # real probes, loaded at the first request and untraced
    tracers.enable()
    mw = WSGIMiddleware(app)
    assert mw(environ(), sr) is body
    assert mw.provider.loaded


async def call_asgi(mw, scope, log: Log, inbox=None):
    inbox = list(inbox or [{"type": "http.request", "body": b"", "more_body": False}])

    async def receive():
        return inbox.pop(0)

    async def send(message):
        await asyncio.sleep(0)
        log.entries.append(("send", (message["type"], message.get("more_body", False))))

    await mw(scope, receive, send)


def http(method="GET", path="/p"):
    return {"type": "http", "method": method, "path": path, "query_string": b"", "headers": []}


def test_asgi_done_after_final_body(switch):
    log = Log()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        log.entries.append(("app returns", ()))

    asyncio.run(call_asgi(faked(ASGIMiddleware(app), log), http("POST", "/q"), log))
    assert strip(log.entries) == [
        ("start", ("POST", "/q")),
        ("send", ("http.response.start", False)),
        ("send", ("http.response.body", True)),
        ("send", ("http.response.body", False)),
        ("done", ("POST", "/q", 201)),
        ("app returns", ()),
    ]


def test_asgi_errors_and_other_scopes(switch):
    log = Log()

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            return
        if scope["path"] == "/early":
            raise RuntimeError("early")
        await send({"type": "http.response.start", "status": 502, "headers": []})
        if scope["path"] == "/late":
            raise RuntimeError("late")
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        # returns without a final body: reported when it returns

    mw = faked(ASGIMiddleware(app), log)
    asyncio.run(call_asgi(mw, {"type": "lifespan"}, log, [{"type": "lifespan.startup"}]))
    for path in ("/early", "/late"):
        with pytest.raises(RuntimeError):
            asyncio.run(call_asgi(mw, http(path=path), log))
    asyncio.run(call_asgi(mw, http(path="/unfinished"), log))
    assert strip(log.entries) == [
        ("send", ("lifespan.startup.complete", False)),
        ("start", ("GET", "/early")), ("done", ("GET", "/early", 500)),
        ("start", ("GET", "/late")), ("send", ("http.response.start", False)),
        ("done", ("GET", "/late", 502)),
        ("start", ("GET", "/unfinished")), ("send", ("http.response.start", False)),
        ("send", ("http.response.body", True)), ("done", ("GET", "/unfinished", 502)),
    ]


def test_asgi_off_passes_through(switch):
    log = Log()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    tracers.disable()
    asyncio.run(call_asgi(faked(ASGIMiddleware(app), log), http(), log))
    assert [name for name, _ in log.entries] == ["send", "send"]


def test_provider_argument(switch):
    assert WSGIMiddleware(lambda e, s: []).provider is ASGIMiddleware(lambda *a: None).provider
    assert web_provider().name == "pyusdt_web"
    assert web_provider("shop_web") is web_provider("shop_web") is not web_provider()

    mine = Provider("mine_web")
    mine.probe("other", ("x", "int64"))
    mw = WSGIMiddleware(lambda e, s: [], provider=mine)
    assert mw._probes.get() is not None  # declared the two probes, then loaded it
    assert mine.loaded and sorted(mine.probes) == ["other", "request__done", "request__start"]
    assert mine.probes["request__done"].arg_types == ["str", "str", "uint16", "uint64"]
    mine.unload()

    loaded = Provider("loaded_web")
    loaded.probe("x", ("a", "int8"))
    with loaded:
        with pytest.raises(ProviderError, match="without probe request__start"):
            WSGIMiddleware(lambda e, s: [], provider=loaded)
    wrong = Provider("wrong_web")
    wrong.probe("request__start", ("method", "str"))
    with pytest.raises(ProviderError, match="arguments"):
        ASGIMiddleware(lambda *a: None, provider=wrong)
    with pytest.raises(TypeError):
        WSGIMiddleware(lambda e, s: [], provider=42)
