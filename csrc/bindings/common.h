// What both extension modules' bindings share: the os.PathLike argument
// caster, text from file-name bytes and pyusdt.errors exceptions.
// pybind11 only: no numpy, no libbpf, so the provider module can use it.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

namespace py = pybind11;

namespace pyusdt::bindings {

// A path argument: str, bytes or os.PathLike, as the os module takes paths.
// A str is os.fsencode'd, so a name that is not UTF-8 (legal on Linux, held
// by Python as surrogates) reaches open() as the same bytes; pybind11's
// std::string would refuse it with a TypeError.
struct FsPath {
    std::string bytes;
};

// Text that may hold a file name as Linux allows it (any bytes but NUL and
// '/'), as Python holds such names: undecodable bytes become surrogates
// (os.fsdecode), so the message prints the name back byte for byte.
inline py::str fs_text(const std::string &s) {
    PyObject *o = PyUnicode_DecodeFSDefaultAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
    if (!o)
        throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
}

// Raises the pyusdt.errors exception named `cls` (defined in Python so the
// public hierarchy has one home).
[[noreturn]] inline void raise_py(const char *cls, const std::string &msg, int err = 0) {
    py::object type = py::module_::import("pyusdt.errors").attr(cls);
    py::object exc = type(fs_text(msg));
    exc.attr("os_errno") = err;
    PyErr_SetObject(type.ptr(), exc.ptr());
    throw py::error_already_set();
}

}  // namespace pyusdt::bindings

namespace pybind11::detail {
template <> struct type_caster<pyusdt::bindings::FsPath> {
    PYBIND11_TYPE_CASTER(pyusdt::bindings::FsPath, const_name("os.PathLike"));
    bool load(handle src, bool) {
        PyObject *encoded = nullptr;
        if (!PyUnicode_FSConverter(src.ptr(), &encoded)) {  // fspath + fsencode, as open() does
            PyErr_Clear();
            return false;
        }
        value.bytes.assign(PyBytes_AS_STRING(encoded), static_cast<size_t>(PyBytes_GET_SIZE(encoded)));
        Py_DECREF(encoded);
        return true;
    }
};
}  // namespace pybind11::detail
