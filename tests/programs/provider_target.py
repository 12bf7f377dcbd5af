"""A Python process with run-time USDT providers, driven by the tests.

Prints its pid, then reads one JSON command per line on stdin and answers
each with one JSON line on stdout:

    {"op": "declare", "provider": P, "nop5": bool, "probes": {NAME: [[arg, type], ...]}}
    {"op": "probe", "provider": P, "name": N, "args": [[arg, type], ...]}  # add a probe
    {"op": "load", "provider": P}          {"op": "unload", "provider": P}
    {"op": "fire", "provider": P, "probe": N, "args": [...]}   # values, see below
    {"op": "fire_lazy", "provider": P, "probe": N, "args": [...]}
    {"op": "enabled", "provider": P, "probe": N}
    {"op": "fork"}      # forks; the child answers the commands with "in": "child"
    {"op": "exit"}

Values in "args" are JSON ints and strings, and {"bytes": HEX} for bytes.
Every answer is {"ok": RESULT} or {"error": CLASS NAME, "message": TEXT};
answers from the forked child also carry its "pid".

With fork, this process stays the only reader of stdin and writer of stdout:
it forwards "in": "child" commands to the child through a pipe and relays
the child's answer.
"""
from __future__ import annotations

import json
import os
import sys

from pyusdt.provide.provider import Provider

providers: dict = {}


def value(v):
    if isinstance(v, dict) and "bytes" in v:
        return bytes.fromhex(v["bytes"])
    return v


def run(cmd: dict):
    op = cmd["op"]
    if op == "declare":
        p = Provider(cmd["provider"], nop5=cmd.get("nop5", True))
        for name, args in cmd.get("probes", {}).items():
            p.probe(name, *[tuple(a) for a in args])
        providers[cmd["provider"]] = p
        return repr(p)
    if op == "probe":
        p = providers[cmd["provider"]]
        return repr(p.probe(cmd["name"], *[tuple(a) for a in cmd["args"]]))
    if op == "load":
        providers[cmd["provider"]].load()
        return providers[cmd["provider"]].loaded
    if op == "unload":
        providers[cmd["provider"]].unload()
        return providers[cmd["provider"]].loaded
    probe = providers[cmd["provider"]].probes[cmd["probe"]]
    if op == "fire":
        # Several rows at once: the values are built before the first fire.
        rows = [[value(v) for v in row] for row in cmd["rows"]] if "rows" in cmd else [
            [value(v) for v in cmd["args"]]]
        for row in rows:
            probe.fire(*row)
        return len(rows)
    if op == "fire_lazy":
        calls = []

        def make():
            calls.append(1)
            return [value(v) for v in cmd["args"]]

        probe.fire_lazy(make)
        return len(calls)  # 1 when the arguments were built
    if op == "enabled":
        return probe.enabled
    raise ValueError(f"unknown op {op!r}")


def answer(cmd: dict) -> dict:
    try:
        return {"ok": run(cmd)}
    except Exception as e:  # reported to the test, which checks class and message
        return {"error": type(e).__name__, "message": str(e)}


def child_loop(rfd: int, wfd: int) -> None:
    with os.fdopen(rfd, "r") as rf, os.fdopen(wfd, "w") as wf:
        for line in rf:
            cmd = json.loads(line)
            if cmd["op"] == "exit":
                break
            res = answer(cmd)
            res["pid"] = os.getpid()
            wf.write(json.dumps(res) + "\n")
            wf.flush()
    os._exit(0)


def main() -> None:
    print(os.getpid(), flush=True)
    to_child = from_child = None
    child_pid = None
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("in") == "child":
            to_child.write(line if line.endswith("\n") else line + "\n")
            to_child.flush()
            print(from_child.readline().rstrip("\n"), flush=True)
            continue
        if cmd["op"] == "exit":
            break
        if cmd["op"] == "fork":
            c_r, p_w = os.pipe()
            p_r, c_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(p_w)
                os.close(p_r)
                child_loop(c_r, c_w)
            os.close(c_r)
            os.close(c_w)
            to_child, from_child = os.fdopen(p_w, "w"), os.fdopen(p_r, "r")
            child_pid = pid
            print(json.dumps({"ok": pid}), flush=True)
            continue
        print(json.dumps(answer(cmd)), flush=True)
    if child_pid is not None:
        to_child.write(json.dumps({"op": "exit"}) + "\n")
        to_child.flush()
        os.waitpid(child_pid, 0)


if __name__ == "__main__":
    main()
