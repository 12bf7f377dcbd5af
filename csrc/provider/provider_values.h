// Python values as the 64-bit words a provider probe function is called
// with: ints checked against their declared width and sign, str as a pointer
// to its cached UTF-8 form, bytes as a pointer to their buffer.  Inline: they
// run on every traced fire, where each call out costs more than its
// instructions (see provider_probe.cpp).
#pragma once

#include <Python.h>

#include <cstdint>

#include "provider/provider_note.h"

namespace pyusdt {

// An int argument's word, and whether the value fits its type.  Returned by
// value, so the caller takes no local's address (which would keep the
// compiler from making the probe call a tail call).
struct IntWord {
    uint64_t word;
    bool fits;
};

inline IntWord int_word_fits(ProviderArg t, long long s) {
    auto w = static_cast<uint64_t>(s);
    switch (t) {
    case ProviderArg::INT8: return {w, s >= INT8_MIN && s <= INT8_MAX};
    case ProviderArg::UINT8: return {w, s >= 0 && s <= UINT8_MAX};
    case ProviderArg::INT16: return {w, s >= INT16_MIN && s <= INT16_MAX};
    case ProviderArg::UINT16: return {w, s >= 0 && s <= UINT16_MAX};
    case ProviderArg::INT32: return {w, s >= INT32_MIN && s <= INT32_MAX};
    case ProviderArg::UINT32: return {w, s >= 0 && s <= UINT32_MAX};
    case ProviderArg::INT64: return {w, true};
    case ProviderArg::UINT64: return {w, s >= 0};
    default: return {w, false};
    }
}

// Any int, through libpython.  Leaves no exception set.
inline IntWord int_word_slow(ProviderArg t, PyObject *v) {
    int overflow = 0;
    long long s = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow > 0) {  // above INT64_MAX: only a uint64 holds it
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return {0, false};
        }
        return {u, t == ProviderArg::UINT64};
    }
    if (overflow < 0 || (s == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return {0, false};
    }
    return int_word_fits(t, s);
}

// `v` must be an int.  Most ints a program passes are "compact" (one digit,
// |v| < 2**30): their value is read in place, with no call into libpython.
inline IntWord int_word(ProviderArg t, PyObject *v) {
#if PY_VERSION_HEX >= 0x030C0000
    auto *l = reinterpret_cast<PyLongObject *>(v);
    if (PyUnstable_Long_IsCompact(l))
        return int_word_fits(t, PyUnstable_Long_CompactValue(l));
#else
    Py_ssize_t size = Py_SIZE(v);
    if (size == 0)
        return int_word_fits(t, 0);
    if (size == 1 || size == -1)
        return int_word_fits(
            t, size * static_cast<long long>(reinterpret_cast<PyLongObject *>(v)->ob_digit[0]));
#endif
    return int_word_slow(t, v);
}

}  // namespace pyusdt
