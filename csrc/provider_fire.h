// Firing a run-time provider probe.  A ProbeFire object is what Python calls
// as probe.fire(...): while nobody traces the probe it reads the semaphore
// and returns (vectorcall, no argument parsing); while traced it checks the
// values against the probe's argument types, converts them to the 64-bit
// words of the x86-64 calling convention and calls the probe function,
// whose first instruction is the probe site.
#pragma once

#include <Python.h>

namespace pyusdt {

// Registers the ProbeFire type in `module`; returns 0, or -1 with an exception set.
int add_probe_fire_type(PyObject *module);

}  // namespace pyusdt
