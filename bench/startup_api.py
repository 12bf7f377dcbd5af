"""Where pyusdt's start-up goes, through its API (run by section_startup.py):

    python bench/startup_api.py PID PROBE

Times, from this script's first line (after the interpreter has started):
importing pyusdt, Tracer(), attach_pid(PID, PROBE), start(), and the first
non-empty batch of `batches()` at its default timeout, as a user's program
would read.  Prints "first-event" the moment that batch arrives (the suite
times it from the spawn), then one JSON line of the step times in seconds.
"""
import json
import sys
import time

t0 = time.perf_counter()
sys.path.pop(0)  # this script's directory (bench/) must not shadow anything

from pyusdt import Tracer  # noqa: E402  (timed: the import is a step)

steps = {"import": time.perf_counter() - t0}
pid, probe = int(sys.argv[1]), sys.argv[2]
t = Tracer()
steps["Tracer()"] = time.perf_counter() - t0
try:
    t.attach_pid(pid, probe)
    steps["attach_pid()"] = time.perf_counter() - t0
    t.start()
    steps["start()"] = time.perf_counter() - t0
    for batch in t.batches():
        if len(batch):
            break
    steps["first batch"] = time.perf_counter() - t0
    print("first-event", flush=True)
finally:
    t.close()
print(json.dumps(steps), flush=True)
