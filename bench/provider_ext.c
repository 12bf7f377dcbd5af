/*
 * The floor for bench/provider.py: the least a Python provider can cost.  A
 * hand-written CPython extension whose fire(a, b, c) converts three ints and
 * calls a function holding a sys/sdt.h probe (with a semaphore, like a
 * provider probe and like provider_raw.c) - no checks beyond the conversion,
 * no generated object, no pyusdt.  Timed from a Python loop exactly as
 * probe.fire(1, 2, 3) is, and traced the same way, it separates what the
 * uprobe hit costs when it comes from under the interpreter (ext count
 * against C count) from what pyusdt's provider adds (fire count against ext
 * count).
 *
 * Built by bench/provider.py: gcc -O2 -shared -fPIC, with
 *   -DMODULE=<import name> -DPROVIDER=<sdt provider> [-DBENCH_NOP5]
 * (-DBENCH_NOP5 makes the site the 5-byte nop of a Provider(nop5=True)).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

#ifdef BENCH_NOP5
#undef _SDT_NOP
#define _SDT_NOP .byte 0x0f; .byte 0x1f; .byte 0x44; .byte 0x00; .byte 0x00
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define STR_(a) #a
#define STR(a) STR_(a)

__extension__ unsigned short CAT(PROVIDER, _fire_semaphore) __attribute__((unused, section(".probes")));

/* Not inlined: the probe sits in its own function, as a provider's does. */
__attribute__((noinline)) static void probe_site(long long a, long long b, long long c)
{
	DTRACE_PROBE3(PROVIDER, fire, a, b, c);
}

static PyObject *fire(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	(void)self;
	if (nargs != 3) {
		PyErr_SetString(PyExc_TypeError, "fire takes 3 arguments");
		return NULL;
	}
	long long a = PyLong_AsLongLong(args[0]);
	long long b = PyLong_AsLongLong(args[1]);
	long long c = PyLong_AsLongLong(args[2]);
	if (PyErr_Occurred())
		return NULL;
	probe_site(a, b, c);
	Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
	{"fire", (PyCFunction)(void (*)(void))fire, METH_FASTCALL, "fires PROVIDER:fire(a, b, c)"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, STR(MODULE), NULL, -1, methods};

PyMODINIT_FUNC CAT(PyInit_, MODULE)(void)
{
	return PyModule_Create(&module);
}
