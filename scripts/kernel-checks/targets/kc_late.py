"""scripts/check-kernels: a provider made after the trace began.  Run with
pyusdt -c, it builds kclate:tick and dlopens it, then at once fires
tick(i) for i in 0..49: only the dynamic linker's site, holding the script
until the probe is attached, lets a tracer see all 50 (sum 1225)."""
from pyusdt import Provider

app = Provider("kclate")
tick = app.probe("tick", ("i", "int64"))
app.load()
for i in range(50):
    tick.fire(i)
