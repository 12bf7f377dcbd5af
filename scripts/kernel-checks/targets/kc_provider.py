"""scripts/check-kernels: a Python provider, kcpy:hit(word str, small int8,
big uint64, neg int64), fired three times with known values once a tracer
has raised its semaphore (at most 60 s after loading it).
Usage: python3 kc_provider.py [serve]
  serve: print "ready PID" once loaded, fire once a line arrives on stdin
         (the tracer is attached by then), print "fired" after the hits,
         then wait for EOF on stdin before exiting."""
import os
import sys
import time

from pyusdt import Provider

serve = sys.argv[1:] == ["serve"]
app = Provider("kcpy")
hit = app.probe("hit", ("word", "str"), ("small", "int8"), ("big", "uint64"), ("neg", "int64"))
app.load()
if serve:
    print(f"ready {os.getpid()}", flush=True)
deadline = time.monotonic() + 60
while not hit.enabled and time.monotonic() < deadline:
    time.sleep(0.01)
if not hit.enabled:
    sys.exit("kc_provider: kcpy:hit was never traced")
if serve:
    sys.stdin.readline()
for i, word in enumerate(["alpha", "", "gr\u00fc\u00dfe \u2713"]):
    hit.fire(word, -128 + i, 2**64 - 1 - i, -(2**63) + i)
if serve:
    print("fired", flush=True)
    sys.stdin.read()
