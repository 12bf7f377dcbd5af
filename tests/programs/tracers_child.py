"""A Python program using pyusdt.provide.latency and pyusdt.provide.middleware, driven by the
tests over stdin (one command a line, one answer a line).

Start-up: installs the SIGPROF toggle, loads the "pyusdt_app" and
"pyusdt_web" providers (unless --lazy: then they load when the switch turns
on), prints its pid and waits for commands:

    latency     runs WORKLOAD (see LATENCY_EXPECTED in test_tracers.py); "done"
    state       "on" or "off" (the runtime switch)
    enable, disable
                flips the switch from Python; answers the state
    traced      "<latency traced> <request__done traced>" (each 0/1, "-" if not loaded)
    loaded      which pyusdt providers are mapped: "app=0/1 web=0/1"
    wsgi        starts a wsgiref server on 127.0.0.1 in a thread; answers its port
    closes      how many times the server closed /stream's body iterable
    asgi        drives ASGI_REQUESTS through ASGIMiddleware; answers a JSON
                list: per http request, the CLOCK_MONOTONIC ns when its
                final body was sent (null if none)
    quit        exits
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pyusdt.provide import latency as tracers
from pyusdt.provide.latency import latency_block, trace_latency
from pyusdt.provide.middleware import ASGIMiddleware, WSGIMiddleware, web_provider


@trace_latency
def sleepy() -> None:
    time.sleep(0.02)


@trace_latency(name="db.query")
def query(n: int) -> int:
    time.sleep(0.01)
    return n * 2


@trace_latency
async def fetch() -> str:
    await asyncio.sleep(0.03)
    return "ok"


@trace_latency
def fails() -> None:
    time.sleep(0.01)
    raise ValueError("boom")


@trace_latency("inner")
def inner() -> None:
    time.sleep(0.01)


@trace_latency
def outer() -> None:
    inner()
    time.sleep(0.01)


def plain() -> None:
    time.sleep(0.001)


def workload() -> None:
    sleepy()
    assert query(21) == 42
    assert asyncio.run(fetch()) == "ok"
    with latency_block("block"):
        time.sleep(0.02)
    try:
        fails()
    except ValueError:
        pass
    else:
        raise AssertionError("fails() did not raise")
    outer()
    plain()


# -- WSGI --------------------------------------------------------------------

closes = [0]


class Body:
    """A streamed body whose close() the server must reach through the middleware."""

    def __init__(self, start_response):
        self.start_response = start_response

    def __iter__(self):
        # start_response called lazily, from the first iteration, as PEP 3333 allows
        self.start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"a"
        yield b"b"
        yield b"c"

    def close(self):
        closes[0] += 1


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    method = environ["REQUEST_METHOD"]
    text = [("Content-Type", "text/plain")]
    if path == "/hello":
        start_response("200 OK", text)
        return [b"hello"]
    if path == "/echo" and method == "POST":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("201 Created", text)
        return [body]
    if path == "/slow":
        time.sleep(0.02)
        start_response("200 OK", text)
        return [b"slow"]
    if path == "/stream":
        return Body(start_response)
    if path == "/caf\xc3\xa9":  # PEP 3333: UTF-8 bytes as latin-1
        start_response("200 OK", text)
        return [b"cafe"]
    if path == "/boom":
        raise RuntimeError("boom")
    start_response("404 Not Found", text)
    return [b"not found"]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass

    def get_stderr(self):
        return io.StringIO()  # wsgiref prints /boom's traceback there


def start_wsgi() -> int:
    server = make_server("127.0.0.1", 0, WSGIMiddleware(wsgi_app), WSGIServer, QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_port


# -- ASGI --------------------------------------------------------------------


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 1000})
        return
    path = scope["path"]
    if path == "/a":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await asyncio.sleep(0.02)
        await send({"type": "http.response.body", "body": b"y"})
        return
    if path == "/raise":
        raise RuntimeError("before start")
    if path == "/late":
        await send({"type": "http.response.start", "status": 503, "headers": []})
        raise RuntimeError("after start")
    if path == "/café":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"no"})


ASGI_REQUESTS = [
    {"type": "lifespan"},
    {"type": "http", "method": "GET", "path": "/a"},
    {"type": "http", "method": "POST", "path": "/b"},
    {"type": "websocket", "path": "/ws"},
    {"type": "http", "method": "GET", "path": "/raise"},
    {"type": "http", "method": "PUT", "path": "/late"},
    {"type": "http", "method": "GET", "path": "/café"},
]


async def drive_asgi() -> list:
    mw = ASGIMiddleware(asgi_app)
    finals = []
    for base in ASGI_REQUESTS:
        scope = dict(base, asgi={"version": "3.0"})
        if scope["type"] == "lifespan":
            inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        elif scope["type"] == "websocket":
            inbox = [{"type": "websocket.connect"}]
        else:
            scope.update(query_string=b"q=1", headers=[])
            inbox = [{"type": "http.request", "body": b"", "more_body": False}]
        final = [None]

        async def receive(inbox=inbox):
            return inbox.pop(0) if inbox else {"type": "http.disconnect"}

        async def send(message, final=final):
            await asyncio.sleep(0)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                final[0] = time.monotonic_ns()

        try:
            await mw(scope, receive, send)
        except RuntimeError:
            pass
        if scope["type"] == "http":
            finals.append(final[0])
    return finals


# -- the command loop ----------------------------------------------------------


def mapped() -> str:
    with open("/proc/self/maps") as f:
        maps = f.read()
    return "app=%d web=%d" % ("/memfd:pyusdt-pyusdt_app " in maps, "/memfd:pyusdt-pyusdt_web " in maps)


def traced() -> str:
    web = web_provider()
    app = tracers._app
    lat = "%d" % app.get().probes["latency"].enabled if app.loaded else "-"
    done = "%d" % web.get().probes["request__done"].enabled if web.loaded else "-"
    return f"{lat} {done}"


def main() -> None:
    tracers.install_signal_toggle()
    WSGIMiddleware(wsgi_app)  # a middleware exists: turning the switch on loads pyusdt_web
    if "--lazy" not in sys.argv:
        tracers.app_provider()
        web_provider().load()
    print(os.getpid(), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "latency":
            workload()
            out = "done"
        elif cmd == "state":
            out = "on" if tracers.tracing_enabled() else "off"
        elif cmd in ("enable", "disable"):
            getattr(tracers, cmd)()
            out = "on" if tracers.tracing_enabled() else "off"
        elif cmd == "traced":
            out = traced()
        elif cmd == "loaded":
            out = mapped()
        elif cmd == "wsgi":
            out = str(start_wsgi())
        elif cmd == "closes":
            out = str(closes[0])
        elif cmd == "asgi":
            out = json.dumps(asyncio.run(drive_asgi()))
        elif cmd == "quit":
            return
        else:
            out = f"unknown command {cmd!r}"
        print(out, flush=True)


if __name__ == "__main__":
    main()
