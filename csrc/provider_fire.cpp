#include "provider_fire.h"

#include <structmember.h>

#include <cstdint>
#include <cstring>

#include "provider_elf.h"

namespace pyusdt {

namespace {

using ProbeFunction = void (*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                               uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
// The same function seen with its register arguments only.  A probe of at
// most six arguments reads nothing but the six argument registers, so the
// call need not push the other six words (the function itself is a nop and
// a ret, whatever it is passed).
using RegisterProbeFunction = void (*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
constexpr Py_ssize_t kRegisterArgs = 6;

// Read by unloaded probes in place of their (unmapped) semaphore.
const volatile uint16_t kNoSemaphore = 0;

struct ProbeFire {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    ProbeFunction function;
    const volatile uint16_t *semaphore;
    PyObject *codes;     // bytes: one ProviderArg per argument
    PyObject *fullname;  // str, for messages
    int unloaded;
};

PyObject *raise_named(const char *cls_name, PyObject *fmt_obj) {
    PyObject *errors = PyImport_ImportModule("pyusdt.errors");
    PyObject *cls = errors ? PyObject_GetAttrString(errors, cls_name) : nullptr;
    Py_XDECREF(errors);
    if (cls && fmt_obj)
        PyErr_SetObject(cls, fmt_obj);
    Py_XDECREF(cls);
    Py_XDECREF(fmt_obj);
    return nullptr;
}

PyObject *arg_error(ProbeFire *f, Py_ssize_t i, const char *what) {
    return raise_named("ProbeArgumentError",
                       PyUnicode_FromFormat("%U argument %zd: %s", f->fullname, i, what));
}

bool int_in_range(ProviderArg t, PyObject *v, uint64_t *out) {
    int overflow = 0;
    long long s = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow > 0) {  // above INT64_MAX: only a uint64 holds it
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return false;
        }
        *out = u;
        return t == ProviderArg::kUInt64;
    }
    if (overflow < 0 || (s == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return false;
    }
    *out = static_cast<uint64_t>(s);
    switch (t) {
    case ProviderArg::kInt8: return s >= INT8_MIN && s <= INT8_MAX;
    case ProviderArg::kUInt8: return s >= 0 && s <= UINT8_MAX;
    case ProviderArg::kInt16: return s >= INT16_MIN && s <= INT16_MAX;
    case ProviderArg::kUInt16: return s >= 0 && s <= UINT16_MAX;
    case ProviderArg::kInt32: return s >= INT32_MIN && s <= INT32_MAX;
    case ProviderArg::kUInt32: return s >= 0 && s <= UINT32_MAX;
    case ProviderArg::kInt64: return true;
    case ProviderArg::kUInt64: return s >= 0;
    default: return false;
    }
}

PyObject *fire_traced(ProbeFire *f, PyObject *const *args, Py_ssize_t n) {
    const char *types = PyBytes_AS_STRING(f->codes);
    Py_ssize_t ntypes = PyBytes_GET_SIZE(f->codes);
    if (n != ntypes)
        return raise_named("ProbeArgumentError",
                           PyUnicode_FromFormat("%U takes %zd argument(s), %zd given", f->fullname,
                                                ntypes, n));
    uint64_t words[kMaxProviderArgs] = {};
    for (Py_ssize_t i = 0; i < n && i < kMaxProviderArgs; i++) {
        PyObject *v = args[i];
        auto t = static_cast<ProviderArg>(types[i]);
        if (t == ProviderArg::kStr) {
            if (!PyUnicode_Check(v))
                return arg_error(f, i, "expected str");
            // The UTF-8 form is cached in the str object: valid while v lives.
            const char *s = PyUnicode_AsUTF8(v);
            if (!s) {
                PyErr_Clear();
                return arg_error(f, i, "str cannot be encoded as UTF-8 (lone surrogate)");
            }
            words[i] = reinterpret_cast<uint64_t>(s);
        } else if (t == ProviderArg::kBytes) {
            if (!PyBytes_Check(v))
                return arg_error(f, i, "expected bytes");
            words[i] = reinterpret_cast<uint64_t>(PyBytes_AS_STRING(v));
        } else {
            if (!PyLong_Check(v) || PyBool_Check(v))
                return arg_error(f, i, "expected int");
            if (!int_in_range(t, v, &words[i]))
                return arg_error(f, i, "integer out of range for its type");
        }
    }
    if (n <= kRegisterArgs)
        reinterpret_cast<RegisterProbeFunction>(f->function)(words[0], words[1], words[2], words[3],
                                                             words[4], words[5]);
    else
        f->function(words[0], words[1], words[2], words[3], words[4], words[5], words[6], words[7],
                    words[8], words[9], words[10], words[11]);
    Py_RETURN_NONE;
}

PyObject *fire_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    auto *f = reinterpret_cast<ProbeFire *>(self);
    if (*f->semaphore == 0) {  // nobody traces it: the whole cost of a disabled probe
        if (f->unloaded)
            return raise_named("ProviderError",
                               PyUnicode_FromFormat("%U fired after its provider was unloaded", f->fullname));
        Py_RETURN_NONE;
    }
    if (kwnames && PyTuple_GET_SIZE(kwnames)) {
        PyErr_SetString(PyExc_TypeError, "probe arguments are positional");
        return nullptr;
    }
    return fire_traced(f, args, PyVectorcall_NARGS(nargsf));
}

int fire_init(PyObject *self, PyObject *args, PyObject *kwds) {
    auto *f = reinterpret_cast<ProbeFire *>(self);
    unsigned long long function = 0, semaphore = 0;
    PyObject *codes = nullptr, *fullname = nullptr;
    static const char *kw[] = {"function", "semaphore", "codes", "fullname", nullptr};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKSU", const_cast<char **>(kw), &function,
                                     &semaphore, &codes, &fullname))
        return -1;
    f->vectorcall = fire_vectorcall;
    f->function = reinterpret_cast<ProbeFunction>(function);
    f->semaphore = reinterpret_cast<const volatile uint16_t *>(semaphore);
    Py_XSETREF(f->codes, Py_NewRef(codes));
    Py_XSETREF(f->fullname, Py_NewRef(fullname));
    f->unloaded = 0;
    return 0;
}

void fire_dealloc(PyObject *self) {
    auto *f = reinterpret_cast<ProbeFire *>(self);
    Py_XDECREF(f->codes);
    Py_XDECREF(f->fullname);
    Py_TYPE(self)->tp_free(self);
}

PyObject *fire_unload(PyObject *self, PyObject *) {
    auto *f = reinterpret_cast<ProbeFire *>(self);
    f->semaphore = &kNoSemaphore;
    f->unloaded = 1;
    Py_RETURN_NONE;
}

PyObject *fire_enabled(PyObject *self, void *) {
    return PyBool_FromLong(*reinterpret_cast<ProbeFire *>(self)->semaphore != 0);
}

PyMethodDef kMethods[] = {
    {"unload", fire_unload, METH_NOARGS, "Detaches from the unloaded object: firing then raises."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kGetSet[] = {
    {"enabled", fire_enabled, nullptr, "True while the probe's semaphore is non-zero.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject kProbeFireType = {PyVarObject_HEAD_INIT(nullptr, 0)};

}  // namespace

int add_probe_fire_type(PyObject *module) {
    PyTypeObject &t = kProbeFireType;
    t.tp_name = "pyusdt._native.ProbeFire";
    t.tp_basicsize = sizeof(ProbeFire);
    t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL;
    t.tp_doc = "probe.fire: ProbeFire(function, semaphore, codes, fullname)(*values)";
    t.tp_new = PyType_GenericNew;
    t.tp_init = fire_init;
    t.tp_dealloc = fire_dealloc;
    t.tp_call = PyVectorcall_Call;
    t.tp_vectorcall_offset = offsetof(ProbeFire, vectorcall);
    t.tp_methods = kMethods;
    t.tp_getset = kGetSet;
    if (PyType_Ready(&t) < 0)
        return -1;
    Py_INCREF(&t);
    return PyModule_AddObject(module, "ProbeFire", reinterpret_cast<PyObject *>(&t));
}

}  // namespace pyusdt
