#include "provider_fire.h"

#include <cstdint>
#include <cstring>

#include "provider_elf.h"

namespace pyusdt {

namespace {

using ProbeFunction = void (*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                               uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

PyObject *type_error(int index, const char *what) {
    PyObject *errors = PyImport_ImportModule("pyusdt.errors");
    PyObject *cls = errors ? PyObject_GetAttrString(errors, "ProbeArgumentError") : nullptr;
    Py_XDECREF(errors);
    if (!cls)
        return nullptr;
    PyErr_Format(cls, "argument %d: %s", index, what);
    Py_DECREF(cls);
    return nullptr;
}

// Range of each integer type, for the overflow check.
bool int_in_range(ProviderArg t, PyObject *v, uint64_t *out) {
    int overflow = 0;
    long long s = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow > 0) {  // above INT64_MAX: only a uint64 can hold it
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

}  // namespace

PyObject *provider_fire(PyObject *, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 2 || !PyLong_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fire(function_address, arg_types, *values)");
        return nullptr;
    }
    auto fn = reinterpret_cast<ProbeFunction>(PyLong_AsVoidPtr(args[0]));
    const char *types = PyBytes_AS_STRING(args[1]);
    Py_ssize_t ntypes = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t nvalues = nargs - 2;
    if (nvalues != ntypes) {
        PyObject *errors = PyImport_ImportModule("pyusdt.errors");
        PyObject *cls = errors ? PyObject_GetAttrString(errors, "ProbeArgumentError") : nullptr;
        Py_XDECREF(errors);
        if (cls) {
            PyErr_Format(cls, "the probe takes %zd argument(s), %zd given", ntypes, nvalues);
            Py_DECREF(cls);
        }
        return nullptr;
    }
    uint64_t words[kMaxProviderArgs] = {};
    for (Py_ssize_t i = 0; i < nvalues && i < kMaxProviderArgs; i++) {
        PyObject *v = args[i + 2];
        auto t = static_cast<ProviderArg>(types[i]);
        if (t == ProviderArg::kStr) {
            if (!PyUnicode_Check(v))
                return type_error(static_cast<int>(i), "expected str");
            // The UTF-8 form is cached in the str object: valid while v lives.
            const char *s = PyUnicode_AsUTF8(v);
            if (!s)
                return nullptr;
            words[i] = reinterpret_cast<uint64_t>(s);
        } else if (t == ProviderArg::kBytes) {
            if (!PyBytes_Check(v))
                return type_error(static_cast<int>(i), "expected bytes");
            words[i] = reinterpret_cast<uint64_t>(PyBytes_AS_STRING(v));
        } else {
            if (!PyLong_Check(v) || PyBool_Check(v))
                return type_error(static_cast<int>(i), "expected int");
            if (!int_in_range(t, v, &words[i]))
                return type_error(static_cast<int>(i), "integer out of range for its type");
        }
    }
    fn(words[0], words[1], words[2], words[3], words[4], words[5], words[6], words[7], words[8],
       words[9], words[10], words[11]);
    Py_RETURN_NONE;
}

}  // namespace pyusdt
