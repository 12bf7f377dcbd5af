// Firing a run-time provider probe: Python values checked against the
// probe's argument types, converted to the 64-bit words of the x86-64 calling
// convention, and passed to the probe function, whose first instruction is
// the probe site.
#pragma once

#include <Python.h>

namespace pyusdt {

// fire(function_address, arg_types: bytes, *values) as a METH_FASTCALL
// function: sets a Python exception and returns NULL on a wrong count, type
// or range; returns None after calling the probe function.
PyObject *provider_fire(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

}  // namespace pyusdt
