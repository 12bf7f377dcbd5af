"""A process with a run-time provider whose probes describe their arguments.

Prints its pid, loads the provider, prints "ready", then for each line on
stdin fires myapp:hello(count, msg, big) once per number 0..N-1 (N the line)
and prints "fired N"; exits at EOF."""
import os
import sys

from pyusdt import Provider

app = Provider("describedapp")
hello = app.probe("hello", ("count", "int32"), ("msg", "str"), ("big", "uint64"))
app.probe("bye")
app.load()
print(os.getpid(), flush=True)
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    for i in range(n):
        hello.fire(-i, f"héllo {i}", 2**64 - 1 - i)
    print(f"fired {n}", flush=True)
