// pybind11 bindings of pyusdt._native, the reader side: type conversion,
// GIL release, exception mapping.  The logic lives in elf/ (notes, argument
// specs) and session/ (the libbpf session); the provider side is the
// separate module pyusdt._provider (provider_module.cpp).
#include <pybind11/native_enum.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <tuple>

#include <cstddef>
#include <cstring>
#include <memory>

#include "bindings/common.h"
#include "elf/usdt_notes.h"
#include "session/session.h"

using namespace pyusdt;
using namespace pyusdt::bindings;

namespace {

const char *kind_name(uint8_t kind) {
    switch (kind) {
    case PYUSDT_ARG_CONST: return "const";
    case PYUSDT_ARG_REG: return "reg";
    case PYUSDT_ARG_MEM: return "mem";
    case PYUSDT_ARG_MEM_INDEX: return "mem_index";
    case PYUSDT_ARG_MEM_ABS: return "mem_abs";
    default: return "none";
    }
}

py::dict arg_to_dict(const pyusdt_arg_spec &a, const std::string &text) {
    py::dict d;
    d["spec"] = text;
    d["kind"] = kind_name(a.kind);
    d["size"] = int(a.size);
    d["signed"] = bool(a.is_signed);
    return d;
}

// The event row's fields as (names, numpy formats, offsets, itemsize), from
// the shared C layout: numpy's dtype and the struct unpacking of the
// per-event path (pyusdt.trace.record_layout) are both built from it.
py::tuple event_layout(uint32_t str_len, uint32_t string_slots) {
    py::list names, formats, offsets;
    auto field = [&](const char *name, const std::string &fmt, size_t off) {
        names.append(name);
        formats.append(fmt);
        offsets.append(off);
    };
    field("ts_ns", "<u8", offsetof(pyusdt_event, ts_ns));
    field("pid", "<u4", offsetof(pyusdt_event, pid));
    field("tid", "<u4", offsetof(pyusdt_event, tid));
    field("cpu", "<u4", offsetof(pyusdt_event, cpu));
    field("probe_id", "<u4", offsetof(pyusdt_event, probe_id));
    field("flags", "<u4", offsetof(pyusdt_event, flags));
    field("args", "(" + std::to_string(PYUSDT_MAX_ARGS) + ",)<u8", offsetof(pyusdt_event, args));
    if (string_slots)
        field("strings", "(" + std::to_string(string_slots) + ",)S" + std::to_string(str_len),
              sizeof(pyusdt_event));
    return py::make_tuple(names, formats, offsets, sizeof(pyusdt_event) + size_t(string_slots) * str_len);
}

py::object event_dtype(uint32_t str_len, uint32_t string_slots) {
    py::tuple layout = event_layout(str_len, string_slots);
    py::dict spec;
    spec["names"] = layout[0];
    spec["formats"] = layout[1];
    spec["offsets"] = layout[2];
    spec["itemsize"] = layout[3];
    return py::module_::import("numpy").attr("dtype")(spec);
}

// pybind11 looks numpy's C API up once, on first use, inside std::call_once
// (pthread_once, a C frame).  Were numpy not imported yet, that lookup would
// import it, running Python code, where a signal handler can raise (Ctrl-C):
// the exception would be thrown through pthread_once (std::terminate,
// SIGABRT).  So numpy is imported first, here, where an exception is an
// ordinary one; the lookup then only finds it.  Not at module import: a
// trace's first events need no numpy (its import is most of a CLI's start).
void need_numpy_api() {
    static bool ready = false;
    if (ready)
        return;
    py::module_::import("numpy");
    py::array_t<uint8_t> warm(0);
    ready = true;
}

// Hands a byte vector to numpy without copying: the capsule owns it.
py::array rows_to_array(std::unique_ptr<std::vector<uint8_t>> buf, size_t rows, py::object dtype) {
    need_numpy_api();
    uint8_t *ptr = buf->data();
    auto *raw = buf.release();
    py::capsule owner(raw, [](void *p) { delete static_cast<std::vector<uint8_t> *>(p); });
    return py::array(py::dtype::from_args(dtype), {py::ssize_t(rows)}, {}, ptr, owner);
}

struct Field {
    const char *name;
    std::string format;
    size_t offset;
};

// A numpy dtype from (name, format, offsetof) triples of one C struct.
py::object make_dtype(std::initializer_list<Field> fields, size_t itemsize) {
    py::list names, formats, offsets;
    for (const Field &f : fields) {
        names.append(f.name);
        formats.append(f.format);
        offsets.append(f.offset);
    }
    py::dict spec;
    spec["names"] = names;
    spec["formats"] = formats;
    spec["offsets"] = offsets;
    spec["itemsize"] = itemsize;
    return py::module_::import("numpy").attr("dtype")(spec);
}

#define U64_FIELD(type, f) Field{#f, "<u8", offsetof(type, f)}

// The counter structs' fields, from their X-macros in pyusdt_abi.h.
py::object stats_dtype() {
#define PYUSDT_X(f) U64_FIELD(pyusdt_probe_stats, f),
    return make_dtype({PYUSDT_PROBE_STATS(PYUSDT_X)}, sizeof(pyusdt_probe_stats));
#undef PYUSDT_X
}

py::object agg_counters_dtype() {
#define PYUSDT_X(f) U64_FIELD(pyusdt_agg_counters, f),
    return make_dtype({PYUSDT_AGG_COUNTERS(PYUSDT_X)}, sizeof(pyusdt_agg_counters));
#undef PYUSDT_X
}

py::tuple field_names(std::initializer_list<const char *> names) {
    py::list out;
    for (const char *n : names)
        out.append(n);
    return py::tuple(out);
}

py::object agg_row_dtype() {
    return make_dtype({{"agg_id", "<u4", offsetof(AggRow, agg_id)},
                       {"bucket", "<u4", offsetof(AggRow, bucket)},
                       {"key", "<u8", offsetof(AggRow, key)},
                       {"str_key", "S" + std::to_string(PYUSDT_STR_KEY_LEN), offsetof(AggRow, str_key)},
                       {"count", "<u8", offsetof(AggRow, count)},
                       {"sum", "<i8", offsetof(AggRow, sum)},
                       {"min", "<i8", offsetof(AggRow, min)},
                       {"max", "<i8", offsetof(AggRow, max)},
                       {"is_str", "u1", offsetof(AggRow, is_str)}},
                      sizeof(AggRow));
}

py::object agg_tuple_row_dtype() {
    return make_dtype({{"agg_id", "<u4", offsetof(AggTupleRow, agg_id)},
                       {"bucket", "<u4", offsetof(AggTupleRow, bucket)},
                       {"key", "V" + std::to_string(PYUSDT_TUPLE_KEY_LEN), offsetof(AggTupleRow, key)},
                       {"count", "<u8", offsetof(AggTupleRow, count)},
                       {"sum", "<i8", offsetof(AggTupleRow, sum)},
                       {"min", "<i8", offsetof(AggTupleRow, min)},
                       {"max", "<i8", offsetof(AggTupleRow, max)}},
                      sizeof(AggTupleRow));
}

// An expression program from Python's (op, size, flags, field, off, imm)
// tuples and its literal bytes.
pyusdt_expr make_expr(const std::vector<std::tuple<int, int, int, int, int, int64_t>> &insns,
                      const py::bytes &lits) {
    pyusdt_expr p{};
    if (insns.size() > PYUSDT_EXPR_MAX_INSNS)
        raise_py("ConfigError", "an expression program has at most " + std::to_string(PYUSDT_EXPR_MAX_INSNS) +
                                    " instructions");
    for (size_t i = 0; i < insns.size(); i++) {
        auto [op, size, flags, field, off, imm] = insns[i];
        if (op < 0 || op >= PYUSDT_OP_COUNT || size < 0 || size > 255 || flags < 0 || flags > 255 ||
            field < 0 || field > 255 || off < 0 || off > 65535)
            raise_py("ConfigError", "expression instruction " + std::to_string(i) + " out of range");
        p.insns[i] = pyusdt_insn{imm, uint16_t(off), uint8_t(op), uint8_t(size), uint8_t(flags), uint8_t(field), 0};
    }
    std::string bytes = lits;
    if (bytes.size() > sizeof(p.lits))
        raise_py("ConfigError", "an expression program has at most " + std::to_string(sizeof(p.lits)) +
                                    " bytes of string literals");
    std::memcpy(p.lits, bytes.data(), bytes.size());
    return p;
}

// Copies a vector of C structs into a numpy array of `dtype`.
template <typename T>
py::array structs_to_array(const std::vector<T> &v, py::object dtype) {
    auto buf = std::make_unique<std::vector<uint8_t>>(v.size() * sizeof(T));
    if (!v.empty())
        std::memcpy(buf->data(), v.data(), buf->size());
    return rows_to_array(std::move(buf), v.size(), dtype);
}

// One poll's event rows as they left the ring buffer: `count` rows of
// `row_size` bytes (struct pyusdt_event, then the string slots), exposed as
// a writable byte buffer.  numpy views it without copying (np.frombuffer);
// the per-event path unpacks it with struct, without numpy.
struct EventRows {
    std::vector<uint8_t> data;
    size_t count = 0;
    size_t row_size = 0;
    std::vector<uint32_t> loader_pids;  // processes whose dynamic linker hit the loader hook
};

class PySession {
  public:
    PySession(const SessionOptions &opts) {
        try {
            // Loading (BTF, the verifier, the maps) needs no Python: other
            // threads run meanwhile (pyusdt.trace.session_prefetch).
            py::gil_scoped_release nogil;
            s_ = std::make_unique<Session>(opts);
        } catch (const LoadError &e) {
            raise_py(e.err == ENOENT ? "KernelSupportError" : (e.err == EPERM || e.err == EACCES)
                                                                  ? "PrivilegeError"
                                                                  : "LoadError",
                     e.what(), e.err);
        } catch (const std::invalid_argument &e) {
            raise_py("ConfigError", e.what());
        }
        row_size_ = sizeof(pyusdt_event) + size_t(opts.string_slots) * opts.str_len;
        str_len_ = opts.str_len;
        string_slots_ = opts.string_slots;
    }

    Session &s() {
        if (!s_)
            raise_py("SessionClosedError", "the tracing session is closed");
        return *s_;
    }

    uint32_t attach(const FsPath &path, const UsdtSite &site, uint32_t probe_id,
                    const std::vector<int> &string_args, int pid, int filter,
                    std::optional<pyusdt_agg_spec> agg, bool hold, const SiteExprs &exprs,
                    uint32_t cgroup_sets) {
        Session &sess = s();
        // An int (FilterKind, or a bool: TGID is 1); one out of range is refused there.
        uint8_t kind = filter < 0 || filter > 0xff ? 0xff : static_cast<uint8_t>(filter);
        try {
            py::gil_scoped_release nogil;
            return sess.attach(path.bytes, site, probe_id, string_args, pid, kind,
                               agg ? &*agg : nullptr, hold, exprs, cgroup_sets);
        } catch (const AttachError &e) {
            py::gil_scoped_acquire gil;
            raise_py("AttachError", e.what(), e.err);
        }
    }

    // [(errno, message)] of the sites the kernel would not link.
    py::list commit() {
        Session &sess = s();
        std::vector<AttachFailure> failures;
        {
            py::gil_scoped_release nogil;
            failures = sess.commit();
        }
        py::list out;
        for (const AttachFailure &f : failures)
            out.append(py::make_tuple(f.err, fs_text(f.message)));
        return out;
    }

    // The rows drained, without the loader hook's (their pids are returned
    // apart), and each probe's rows counted: the reader's bookkeeping in one
    // pass here rather than a numpy pass per batch in Python.
    std::unique_ptr<EventRows> poll(int timeout_ms, size_t max_events) {
        Session &sess = s();
        auto rows = std::make_unique<EventRows>();
        rows->row_size = row_size_;
        {
            py::gil_scoped_release nogil;
            size_t n = sess.poll(timeout_ms, max_events, rows->data);
            size_t kept = 0;
            for (size_t i = 0; i < n; i++) {
                const uint8_t *row = rows->data.data() + i * row_size_;
                pyusdt_event head;
                std::memcpy(&head, row, sizeof(head));
                if (head.probe_id == loader_probe_) {
                    rows->loader_pids.push_back(head.pid);
                    continue;
                }
                if (head.probe_id >= delivered_.size())
                    delivered_.resize(head.probe_id + 1);
                delivered_[head.probe_id]++;
                if (kept != i)
                    std::memcpy(rows->data.data() + kept * row_size_, row, row_size_);
                kept++;
            }
            rows->data.resize(kept * row_size_);
            rows->count = kept;
        }
        return rows;
    }

    // Rows delivered by poll(), by probe id.
    const std::vector<uint64_t> &delivered() const { return delivered_; }
    void set_loader_probe(uint32_t id) { loader_probe_ = id; }

    void stop_streaming() { s().stop_streaming(); }
    int detach_in_background() { return s().detach_in_background(); }
    size_t perf_links() { return s().perf_links(); }
    uint64_t pending_bytes() { return s().pending_bytes(); }
    py::array stats() { return structs_to_array(s().stats(), stats_dtype()); }
    // The same counters as tuples (PROBE_STATS_NAMES order), without numpy:
    // a trace that only prints reads them at its end and on every loss check.
    std::vector<std::vector<uint64_t>> stats_rows() {
        std::vector<std::vector<uint64_t>> out;
        for (const pyusdt_probe_stats &st : s().stats()) {
            uint64_t words[sizeof(st) / sizeof(uint64_t)];
            std::memcpy(words, &st, sizeof(words));
            out.emplace_back(std::begin(words), std::end(words));
        }
        return out;
    }
    py::array agg_rows() { return structs_to_array(s().agg_rows(), agg_row_dtype()); }
    py::array agg_tuple_rows() { return structs_to_array(s().agg_tuple_rows(), agg_tuple_row_dtype()); }
    void set_expr(uint32_t id, const std::vector<std::tuple<int, int, int, int, int, int64_t>> &insns,
                  const py::bytes &lits) {
        pyusdt_expr p = make_expr(insns, lits);
        try {
            s().set_expr(id, p);
        } catch (const AttachError &e) {
            raise_py("AttachError", e.what(), e.err);
        }
    }
    py::array agg_counters(uint32_t n) { return structs_to_array(s().agg_counters(n), agg_counters_dtype()); }

    void close() { s_.reset(); }
    bool closed() const { return !s_; }
    py::object dtype() const { return event_dtype(str_len_, string_slots_); }
    size_t row_size() const { return row_size_; }

  private:
    std::unique_ptr<Session> s_;
    size_t row_size_ = 0;
    uint32_t str_len_ = 0, string_slots_ = 0;
    uint32_t loader_probe_ = UINT32_MAX;  // none
    std::vector<uint64_t> delivered_;
};

// (sites, number of malformed notes skipped)
std::pair<std::vector<UsdtSite>, size_t> read_sites(const FsPath &path) {
    try {
        std::unique_ptr<ElfFile> elf;
        {
            py::gil_scoped_release nogil;
            elf = std::make_unique<ElfFile>(path.bytes);
            size_t malformed = 0;
            auto sites = read_usdt_sites(*elf, &malformed);
            return {std::move(sites), malformed};
        }
    } catch (const ElfError &e) {
        raise_py(e.kind == ElfError::kNotFound ? "ELFNotFoundError" : e.kind == ElfError::kNotElf
                                                                          ? "NotELFError"
                                                                          : "ELFReadError",
                 e.what());
    }
}

// glibc's dynamic linker calls _dl_debug_state (its r_brk, the function
// debuggers break on) before and after it maps objects (dlopen included),
// before their constructors run: the point to notice a new object.  A site
// with no arguments there, or None when `path` has no such function.
std::optional<UsdtSite> loader_hook_site(const FsPath &path) {
    try {
        ElfFile elf(path.bytes);
        std::optional<uint64_t> vaddr = elf.symbol_value("_dl_debug_state");
        if (!vaddr)
            return std::nullopt;
        std::optional<uint64_t> offset = elf.vaddr_to_offset(*vaddr);
        if (!offset)
            return std::nullopt;
        UsdtSite site;
        site.provider = "pyusdt";
        site.name = "loader";
        site.pc_vaddr = *vaddr;
        site.pc_offset = *offset;
        return site;
    } catch (const ElfError &) {
        return std::nullopt;
    }
}

// {(provider, name): [(type code, arg name), ...]} from a provider's pyusdt note.
py::dict described_probes(const FsPath &path) {
    py::dict out;
    try {
        std::vector<DescribedProbe> found;
        {
            py::gil_scoped_release nogil;
            ElfFile elf(path.bytes);
            found = read_described_probes(elf);
        }
        for (const DescribedProbe &d : found)
            out[py::make_tuple(d.provider, d.name)] = d.args;
    } catch (const ElfError &) {
        // Not readable or not ELF: it describes nothing.
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "pyusdt native core: ELF note discovery and the libbpf tracing session";
    m.attr("MAX_ARGS") = PYUSDT_MAX_ARGS;
    m.attr("ARG_SLOT_BYTES") = PYUSDT_ARG_SLOT_BYTES;
    m.attr("MAX_STR_LEN") = PYUSDT_MAX_STR_LEN;
    m.attr("DEFAULT_STR_LEN") = PYUSDT_DEFAULT_STR_LEN;
    m.attr("MAX_RINGBUF_BYTES") = PYUSDT_MAX_RINGBUF_BYTES;
    m.attr("MAX_SITES") = PYUSDT_MAX_SITES;
    m.attr("MAX_MAP_ENTRIES") = PYUSDT_MAX_MAP_ENTRIES;
    m.attr("MAX_CGROUPS") = PYUSDT_MAX_CGROUPS;
    m.attr("MAX_CGROUP_SETS") = PYUSDT_MAX_CGROUP_SETS;
    m.attr("FLAG_STR_TRUNC_SHIFT") = PYUSDT_FLAG_STR_TRUNC_SHIFT;
    m.attr("FLAG_READ_FAIL_SHIFT") = PYUSDT_FLAG_READ_FAIL_SHIFT;

    py::class_<UsdtSite>(m, "UsdtSite", "One probe site read from an NT_STAPSDT note.")
        .def_readonly("provider", &UsdtSite::provider)
        .def_readonly("name", &UsdtSite::name)
        .def_readonly("pc_vaddr", &UsdtSite::pc_vaddr)
        .def_readonly("pc_offset", &UsdtSite::pc_offset)
        .def_readonly("semaphore_vaddr", &UsdtSite::semaphore_vaddr)
        .def_readonly("semaphore_offset", &UsdtSite::semaphore_offset)
        .def_readonly("args_text", &UsdtSite::args_text)
        .def_readonly("args_error", &UsdtSite::args_error)
        .def_property_readonly("args", [](const UsdtSite &s) {
            py::list out;
            std::vector<std::string> tokens = split_args(s.args_text);
            for (size_t i = 0; i < s.args.size() && i < tokens.size(); i++)
                out.append(arg_to_dict(s.args[i], tokens[i]));
            return out;
        })
        .def_property_readonly("nargs", [](const UsdtSite &s) { return split_args(s.args_text).size(); });

    m.def("loader_hook_site", &loader_hook_site, py::arg("path"),
          "A site at the dynamic linker's _dl_debug_state in `path` (ld.so), or None.");
    m.def("read_sites", &read_sites, py::arg("path"),
          "(every USDT probe site in the ELF file at `path`, in note order; malformed notes skipped).");
    py::class_<EventRows>(m, "EventRows", py::buffer_protocol(),
                          "Event rows drained by one poll: a writable byte buffer of count rows of row_size bytes.")
        .def_buffer([](EventRows &r) {
            return py::buffer_info(r.data.data(), 1, py::format_descriptor<uint8_t>::format(), 1,
                                   {py::ssize_t(r.data.size())}, {py::ssize_t(1)}, false);
        })
        .def_readonly("count", &EventRows::count)
        .def_readonly("row_size", &EventRows::row_size)
        .def_readonly("loader_pids", &EventRows::loader_pids)
        .def("__len__", [](const EventRows &r) { return r.count; });
    m.def("event_layout", &event_layout, py::arg("str_len"), py::arg("string_slots"),
          "The event row's (names, numpy formats, offsets, itemsize), from the shared C layout.");
    m.def("event_dtype", &event_dtype, py::arg("str_len"), py::arg("string_slots"),
          "The numpy dtype of event batches, built from the shared C layout.");
    m.def("stats_dtype", &stats_dtype, "The numpy dtype of per-probe counters.");
    m.def("parse_arg", [](const std::string &token) {
        try {
            return arg_to_dict(parse_arg(token, nullptr), token);
        } catch (const ArgSpecError &e) {
            raise_py("UnsupportedArgumentError", e.what());
        }
    }, py::arg("token"), "Parses one 'N@OPERAND' argument spec.");

    py::class_<SessionOptions>(m, "SessionOptions")
        .def(py::init<>())
        .def_readwrite("ringbuf_bytes", &SessionOptions::ringbuf_bytes)
        .def_readwrite("str_len", &SessionOptions::str_len)
        .def_readwrite("string_slots", &SessionOptions::string_slots)
        .def_readwrite("wakeup_bytes", &SessionOptions::wakeup_bytes)
        .def_readwrite("wakeup_interval_ns", &SessionOptions::wakeup_interval_ns)
        .def_readwrite("max_sites", &SessionOptions::max_sites)
        .def_readwrite("max_probes", &SessionOptions::max_probes)
        .def_readwrite("max_agg_keys", &SessionOptions::max_agg_keys)
        .def_readwrite("max_starts", &SessionOptions::max_starts)
        .def_readwrite("aggregate", &SessionOptions::aggregate)
        .def_readwrite("flat_aggs", &SessionOptions::flat_aggs)
        .def_readwrite("uprobe_multi", &SessionOptions::uprobe_multi)
        .def_readwrite("expressions", &SessionOptions::expressions)
        .def_readwrite("max_stacks", &SessionOptions::max_stacks);

    py::class_<SiteExprs>(m, "SiteExprs", "The expression programs one site runs (ids; 0: none).")
        .def(py::init<>())
        .def_readwrite("pred_prog", &SiteExprs::pred_prog)
        .def_readwrite("out_prog", &SiteExprs::out_prog)
        .def_readwrite("string_fields", &SiteExprs::string_fields)
        .def_readwrite("reads_strings", &SiteExprs::reads_strings)
        .def_readwrite("takes_stacks", &SiteExprs::takes_stacks);

    // The expression instruction set (pyusdt_abi.h), by name.
    py::dict ops;
#define PYUSDT_X(op) ops[#op] = int(PYUSDT_OP_##op);
    PYUSDT_EXPR_OPS(PYUSDT_X)
#undef PYUSDT_X
    m.attr("EXPR_OPS") = ops;
    const std::pair<const char *, size_t> expr_constants[] = {
        {"EXPR_SIGNED", PYUSDT_EXPR_SIGNED}, {"EXPR_WITH_LEN", PYUSDT_EXPR_WITH_LEN},
        {"EXPR_TO_OUT", PYUSDT_EXPR_TO_OUT}, {"EXPR_MAX_INSNS", PYUSDT_EXPR_MAX_INSNS},
        {"EXPR_STACK", PYUSDT_EXPR_STACK}, {"EXPR_TMP_STRS", PYUSDT_EXPR_TMP_STRS},
        {"EXPR_LIT_BYTES", PYUSDT_EXPR_LIT_BYTES}, {"MAX_EXPR_PROGS", PYUSDT_MAX_EXPR_PROGS},
        {"TUPLE_KEY_LEN", PYUSDT_TUPLE_KEY_LEN}, {"EVENT_SIZE", sizeof(pyusdt_event)},
        {"USTACK_DEPTH", PYUSDT_USTACK_DEPTH}, {"USTACK_NONE", PYUSDT_USTACK_NONE},
        {"TUPLE_SMALL_KEY_LEN", PYUSDT_TUPLE_SMALL_KEY_LEN},
        // Where programs write, as offsets into the scratch (pyusdt_expr_scratch).
        {"EXPR_TMP_OFFSET", offsetof(pyusdt_expr_scratch, tmp)},
        {"EXPR_RECORD_ARGS_OFFSET", offsetof(pyusdt_expr_scratch, rec) + offsetof(pyusdt_event, args)},
        {"EXPR_RECORD_STRINGS_OFFSET", offsetof(pyusdt_expr_scratch, rec) + sizeof(pyusdt_event)},
        {"EXPR_AGG_VALUE_OFFSET", offsetof(pyusdt_expr_scratch, agg) + offsetof(pyusdt_agg_out, value)},
        {"EXPR_AGG_KEY_OFFSET", offsetof(pyusdt_expr_scratch, agg) + offsetof(pyusdt_agg_out, tuple) +
                                    offsetof(pyusdt_agg_tuple_key, key)},
    };
    for (auto &[name, value] : expr_constants)
        m.attr(name) = value;

    py::class_<pyusdt_agg_spec>(m, "AggSpec", "What an aggregating site does (bpf/pyusdt_abi.h).")
        .def(py::init([] { pyusdt_agg_spec a{}; a.value_arg = a.key_arg = a.filter_arg = a.pair_arg = PYUSDT_NO_ARG; return a; }))
        .def_readwrite("lmin", &pyusdt_agg_spec::lmin)
        .def_readwrite("lmax", &pyusdt_agg_spec::lmax)
        .def_readwrite("step", &pyusdt_agg_spec::step)
        .def_readwrite("filter_value", &pyusdt_agg_spec::filter_value)
        .def_readwrite("divisor", &pyusdt_agg_spec::divisor)
        .def_readwrite("agg_id", &pyusdt_agg_spec::agg_id)
        .def_readwrite("filter_pid", &pyusdt_agg_spec::filter_pid)
        .def_readwrite("lbuckets", &pyusdt_agg_spec::lbuckets)
        .def_readwrite("role", &pyusdt_agg_spec::role)
        .def_readwrite("value_arg", &pyusdt_agg_spec::value_arg)
        .def_readwrite("key_kind", &pyusdt_agg_spec::key_kind)
        .def_readwrite("key_arg", &pyusdt_agg_spec::key_arg)
        .def_readwrite("hist_kind", &pyusdt_agg_spec::hist_kind)
        .def_readwrite("keep_stats", &pyusdt_agg_spec::keep_stats)
        .def_readwrite("filter_op", &pyusdt_agg_spec::filter_op)
        .def_readwrite("filter_arg", &pyusdt_agg_spec::filter_arg)
        .def_readwrite("pair_arg", &pyusdt_agg_spec::pair_arg)
        .def_readwrite("key_from_start", &pyusdt_agg_spec::key_from_start)
        .def_readwrite("flat", &pyusdt_agg_spec::flat);

    // The enums of the aggregation spec as enum.IntEnum types, and (as
    // before them) each member as a flat int named PREFIX_MEMBER: ROLE_AGG,
    // KEY_STR, CMP_EQ, HIST_LOG2 ...
    auto flat_aliases = [&m](const char *enum_name, const std::string &prefix) {
        py::dict members = m.attr(enum_name).attr("__members__");
        for (auto item : members)
            m.attr((prefix + item.first.cast<std::string>()).c_str()) = item.second.attr("value");
    };
    py::native_enum<pyusdt_agg_role>(m, "Role", "enum.IntEnum", "What a site does with a hit (AggSpec.role).")
        .value("NONE", PYUSDT_ROLE_NONE)
        .value("AGG", PYUSDT_ROLE_AGG)
        .value("START", PYUSDT_ROLE_START)
        .value("DONE", PYUSDT_ROLE_DONE)
        .finalize();
    flat_aliases("Role", "ROLE_");
    py::native_enum<pyusdt_filter_kind>(m, "FilterKind", "enum.IntEnum",
                                        "Which processes a site counts (Session.attach's filter).")
        .value("NONE", PYUSDT_FILTER_NONE)
        .value("TGID", PYUSDT_FILTER_TGID)
        .value("CGROUP", PYUSDT_FILTER_CGROUP)
        .finalize();
    py::native_enum<pyusdt_key_kind>(m, "KeyKind", "enum.IntEnum", "What an aggregation is keyed by (AggSpec.key_kind).")
        .value("NONE", PYUSDT_KEY_NONE)
        .value("ARG", PYUSDT_KEY_ARG)
        .value("STR", PYUSDT_KEY_STR)
        .value("PID", PYUSDT_KEY_PID)
        .value("TID", PYUSDT_KEY_TID)
        .value("COMM", PYUSDT_KEY_COMM)
        .value("PROBE", PYUSDT_KEY_PROBE)
        .value("TUPLE", PYUSDT_KEY_TUPLE)
        .value("TUPLE_SMALL", PYUSDT_KEY_TUPLE_SMALL)
        .finalize();
    flat_aliases("KeyKind", "KEY_");
    py::native_enum<pyusdt_cmp>(m, "Cmp", "enum.IntEnum", "A predicate's comparison (AggSpec.filter_op).")
        .value("NONE", PYUSDT_CMP_NONE)
        .value("EQ", PYUSDT_CMP_EQ)
        .value("NE", PYUSDT_CMP_NE)
        .value("LT", PYUSDT_CMP_LT)
        .value("LE", PYUSDT_CMP_LE)
        .value("GT", PYUSDT_CMP_GT)
        .value("GE", PYUSDT_CMP_GE)
        .finalize();
    flat_aliases("Cmp", "CMP_");
    py::native_enum<pyusdt_hist_kind>(m, "HistKind", "enum.IntEnum", "An aggregation's histogram (AggSpec.hist_kind).")
        .value("NONE", PYUSDT_HIST_NONE)
        .value("LOG2", PYUSDT_HIST_LOG2)
        .value("LINEAR", PYUSDT_HIST_LINEAR)
        .finalize();
    flat_aliases("HistKind", "HIST_");
    const std::pair<const char *, unsigned> constants[] = {
        {"NO_ARG", PYUSDT_NO_ARG}, {"STR_KEY_LEN", PYUSDT_STR_KEY_LEN}, {"MAX_AGGS", PYUSDT_MAX_AGGS},
        {"MAX_SITES", PYUSDT_MAX_SITES}, {"MAX_PROBES", PYUSDT_MAX_PROBES},
        {"LOG2_BUCKETS", PYUSDT_LOG2_BUCKETS},
    };
    for (auto &[name, value] : constants)
        m.attr(name) = value;
    m.attr("STATS_ROW") = PYUSDT_STATS_ROW;
    m.def("agg_counters_dtype", &agg_counters_dtype, "The numpy dtype of per-aggregation counters.");
#define PYUSDT_X(f) #f,
    m.attr("AGG_COUNTER_NAMES") = field_names({PYUSDT_AGG_COUNTERS(PYUSDT_X)});
    m.attr("PROBE_STATS_NAMES") = field_names({PYUSDT_PROBE_STATS(PYUSDT_X)});
#undef PYUSDT_X

    // What a run-time provider's note describes.
    m.def("described_probes", &described_probes, py::arg("path"),
          "Argument names and types from a pyusdt provider's note: {(provider, name): [(type, name)]}.");

    py::class_<PySession>(m, "Session", "A loaded BPF program with its maps, links and ring buffer.")
        .def(py::init<const SessionOptions &>(), py::arg("options"))
        .def("attach", &PySession::attach, py::arg("path"), py::arg("site"), py::arg("probe_id"),
             py::arg("string_args"), py::arg("pid") = -1, py::arg("filter") = static_cast<int>(PYUSDT_FILTER_NONE),
             py::arg("agg") = py::none(), py::arg("hold") = false, py::arg("exprs") = SiteExprs{},
             py::arg("cgroup_sets") = 0)
        .def("set_expr", &PySession::set_expr, py::arg("id"), py::arg("insns"), py::arg("lits"),
             "Stores expression program `id`: [(op, size, flags, field, off, imm)] and literal bytes.")
        .def("ustack", [](PySession &p, uint32_t id) { return p.s().ustack(id); }, py::arg("id"),
             "The frames of user stack `id`, innermost first ([] when unknown).")
        .def("agg_tuple_rows", &PySession::agg_tuple_rows,
             "Every row of the aggregations keyed by expressions, summed over CPUs.")
        .def("warm_attach", [](PySession &p) { p.s().warm_attach(); },
             "With uprobe_multi links, links the program to a throwaway site and unlinks it now, in a thread, so that the "
             "next commit does not wait for the kernel's RCU grace period itself (a trace that will attach soon).")
        .def("commit", &PySession::commit,
             "Links the sites attached since the last commit (uprobe_multi); [(errno, message)] of "
             "those the kernel refused.")
        .def("agg_rows", &PySession::agg_rows, "Every aggregation row, summed over CPUs.")
        .def("agg_counters", &PySession::agg_counters, py::arg("n"),
             "Counters of aggregations 0..n-1, summed over CPUs.")
        .def("pending_starts", [](PySession &p, uint32_t n) { return p.s().pending_starts(n); },
             py::arg("n"), "Latency starts still waiting for their done, per aggregation.")
        .def("add_tgid", [](PySession &p, uint32_t tgid) { p.s().add_tgid(tgid); })
        .def("remove_tgid", [](PySession &p, uint32_t tgid) { p.s().remove_tgid(tgid); })
        .def("tgids", [](PySession &p) { return p.s().tgids(); })
        .def("add_cgroup", [](PySession &p, uint64_t id, uint32_t set) { p.s().add_cgroup(id, set); },
             py::arg("id"), py::arg("set"),
             "Adds cgroup `id` (its v2 id), and so the cgroups below it, to cgroup set `set`: the sites "
             "attached with FILTER_CGROUP and that set's bit in cgroup_sets count its processes.")
        .def("remove_cgroup", [](PySession &p, uint64_t id) { p.s().remove_cgroup(id); }, py::arg("id"))
        .def("poll", &PySession::poll, py::arg("timeout_ms"), py::arg("max_events"),
             "Waits up to timeout_ms for records; returns the rows drained (at most max_events).")
        .def("delivered", &PySession::delivered, "Rows poll() returned so far, by probe id.")
        .def("set_loader_probe", &PySession::set_loader_probe, py::arg("probe_id"),
             "Rows of this probe id (the loader hook's) are not events: poll() gives their pids apart.")
        .def_property_readonly("row_size", &PySession::row_size)
        .def("stop_streaming", &PySession::stop_streaming,
             "Streaming sites stop counting and sending hits; the ring buffer only empties.")
        .def_property_readonly("pending_bytes", &PySession::pending_bytes)
        .def_property_readonly("late_wakeups", [](PySession &p) { return p.s().late_wakeups(); },
                               "Times the reader's thread found wakeup_bytes pending after sleeping its whole "
                               "timeout: wake-ups the BPF side did not send (0 unless its policy is broken).")
        .def("detach_in_background", &PySession::detach_in_background,
             "Hands the perf-event links to a process that detaches them; its pid, or -1.")
        .def_property_readonly("perf_links", &PySession::perf_links)
        .def("stats", &PySession::stats)
        .def("stats_rows", &PySession::stats_rows,
             "Per-probe counters as lists of ints in PROBE_STATS_NAMES order (no numpy).")
        .def("lost_ringbuf",
             [](PySession &p) {
                 uint64_t lost = 0;
                 for (const pyusdt_probe_stats &st : p.s().stats())
                     lost += st.lost_ringbuf;
                 return lost;
             },
             "Records the kernel dropped because the ring buffer was full, all probes (no numpy).")
        .def("detach_all", [](PySession &p) { p.s().detach_all(); })
        .def_property_readonly("attached_sites", [](PySession &p) { return p.s().attached_sites(); })
        .def_property_readonly("sleepable_strings", [](PySession &p) { return p.s().sleepable_strings(); })
        .def_property_readonly("uprobe_multi", [](PySession &p) { return p.s().uprobe_multi(); })
        .def_property_readonly("string_slots", [](PySession &p) { return p.s().options().string_slots; })
        .def_property_readonly("str_len", [](PySession &p) { return p.s().options().str_len; })
        .def_property_readonly("expressions", [](PySession &p) { return p.s().options().expressions; })
        .def_property_readonly("dtype", &PySession::dtype)
        .def_property_readonly("closed", &PySession::closed)
        .def("close", &PySession::close);
}
