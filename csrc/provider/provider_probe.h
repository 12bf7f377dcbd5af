// pyusdt.provide.ProviderProbe, a native type: one probe of a run-time provider.
// probe.fire(...) is its METH_FASTCALL method: while nobody traces the probe
// it reads the semaphore and returns; while traced it checks the values
// against the probe's argument types, converts them to the 64-bit words of
// the x86-64 calling convention and jumps to the probe function, whose first
// instruction is the probe site.
#pragma once

#include <Python.h>

namespace pyusdt {

// Registers the type as `ProviderProbe` in `module`; returns 0, or -1 with an
// exception set.
int add_provider_probe_type(PyObject *module);

}  // namespace pyusdt
