// pybind11 bindings of pyusdt._provider: what declaring and firing a
// run-time provider needs, and nothing else (no libbpf, no libelf, no numpy),
// so that a program that only fires probes loads only this.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "provider/provider_elf.h"
#include "provider/provider_note.h"
#include "provider/provider_probe.h"

using namespace pyusdt;
using namespace pyusdt::bindings;

namespace {

py::tuple build_provider(const std::string &provider, const py::list &probes, bool nop5) {
    std::vector<ProviderProbeSpec> specs;
    for (py::handle h : probes) {
        auto t = h.cast<py::tuple>();
        ProviderProbeSpec p;
        p.name = t[0].cast<std::string>();
        for (char c : t[1].cast<std::string>())
            p.args.push_back(static_cast<ProviderArg>(c));
        p.arg_names = t[2].cast<std::vector<std::string>>();
        specs.push_back(std::move(p));
    }
    ProviderLayout layout;
    std::vector<uint8_t> elf;
    try {
        // Probe functions return None's address: probe.fire tail-calls them.
        elf = build_provider_elf(provider, specs, nop5, reinterpret_cast<uint64_t>(Py_None), &layout);
    } catch (const ProviderError &e) {
        raise_py("ProviderError", e.what());
    }
    return py::make_tuple(py::bytes(reinterpret_cast<const char *>(elf.data()), elf.size()),
                          layout.function_vaddr, layout.semaphore_vaddr);
}

}  // namespace

namespace {

// ArgType (an enum.IntEnum), ARG_TYPES {"int8": code, ...} in declaration
// order, and the flat ARG_INT8 ... ARG_BYTES ints, all from the one table.
// This module alone exports them (the reader side, pyusdt._native, names
// types through it too).  ArgType is made with enum's functional API: no
// function takes a ProviderArg, so the C++ type need not be bound.
void add_provider_arg_types(py::module_ &m) {
    py::list members;
    py::dict types;
    for (const ProviderArgInfo &info : kProviderArgTypes) {
        int code = static_cast<int>(info.type);
        std::string upper;
        for (const char *c = info.name; *c; c++)
            upper += static_cast<char>(std::toupper(static_cast<unsigned char>(*c)));
        members.append(py::make_tuple(upper, code));
        types[info.name] = code;
        m.attr(("ARG_" + upper).c_str()) = code;
    }
    py::object int_enum = py::module_::import("enum").attr("IntEnum");
    py::object arg_type = int_enum("ArgType", members, py::arg("module") = m.attr("__name__"));
    arg_type.attr("__doc__") = "Argument types of a provider probe (the codes its pyusdt note stores).";
    m.attr("ArgType") = arg_type;
    m.attr("ARG_TYPES") = types;
}

}  // namespace

PYBIND11_MODULE(_provider, m) {
    m.doc() = "pyusdt run-time providers: the provider object builder and the probe type";
    m.def("build_provider", &build_provider, py::arg("provider"), py::arg("probes"), py::arg("nop5") = true,
          "The provider's shared object: (bytes, function offsets, semaphore offsets); probes are "
          "(name, arg type codes as bytes, arg names).");
    if (add_provider_probe_type(m.ptr()) < 0)
        throw py::error_already_set();
    add_provider_arg_types(m);
    m.attr("MAX_PROVIDER_ARGS") = kMaxProviderArgs;
}
