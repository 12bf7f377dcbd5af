// pybind11 bindings of pyusdt._provider: what declaring and firing a
// run-time provider needs, and nothing else (no libbpf, no libelf, no numpy),
// so that a program that only fires probes loads only this.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/common.h"
#include "provider/provider_elf.h"
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
