#include "provider/provider_probe.h"

#include <structmember.h>

#include <cstdint>

#include "elf/arch_x86_64.h"
#include "provider/provider_elf.h"
#include "provider/provider_values.h"

// Why a native type: probe.fire(...) is what a program pays per traced hit,
// and after the hit's kernel entry the interpreter runs with cold branch and
// return predictors, so every bytecode and frame around the hit costs far
// more than usual.  Measured on a 2-vCPU VM, traced, against a C loop firing
// the same uprobe: a fire through a Python attribute holding a callable cost
// about 5% more than this type's method, which CPython 3.11 specialises end
// to end (LOAD_METHOD_NO_DICT, then a direct call of the METH_FASTCALL
// function).  That needs the exact type: the type cannot be subclassed.

namespace pyusdt {

namespace {

// A probe function as build_provider_elf writes it: the site, then it
// returns None (its return_value), whatever it is passed.
using ProbeFunction = PyObject *(*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                                    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
// The same function seen with its register arguments only.  A probe of at
// most six arguments reads nothing but the six argument registers, so the
// call need not push the other six words, and it can be fire's tail call.
using RegisterProbeFunction = PyObject *(*)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                                            uint64_t);
constexpr Py_ssize_t kRegisterArgs = arch::kRegisterArgs;
// The two signatures spell their words out: they must match the limits.
static_assert(kMaxProviderArgs == 12, "ProbeFunction takes PYUSDT_MAX_ARGS words");
static_assert(kRegisterArgs == 6, "RegisterProbeFunction takes the argument registers");

// Read in place of a semaphore while the probe has no loaded object.
const volatile uint16_t kNoSemaphore = 0;

enum class LoadState : int { kNeverLoaded, kLoaded, kUnloaded };

struct ProviderProbe {
    PyObject_HEAD
    uintptr_t function;                  // called as a ProbeFunction or a RegisterProbeFunction
    const volatile uint16_t *semaphore;  // in the loaded object, or kNoSemaphore
    LoadState state;
    PyObject *provider;   // the Provider (a reference cycle: the type is GC-tracked)
    PyObject *name;       // str
    PyObject *fullname;   // str "provider:name", for messages
    PyObject *arg_names;  // list of str
    PyObject *arg_types;  // list of str
    PyObject *codes;      // bytes: one ProviderArg per argument
};

PyObject *raise_named(const char *cls_name, PyObject *message) {
    PyObject *errors = PyImport_ImportModule("pyusdt.errors");
    PyObject *cls = errors ? PyObject_GetAttrString(errors, cls_name) : nullptr;
    Py_XDECREF(errors);
    if (cls && message)
        PyErr_SetObject(cls, message);
    Py_XDECREF(cls);
    Py_XDECREF(message);
    return nullptr;
}

PyObject *arg_error(ProviderProbe *p, Py_ssize_t i, const char *what) {
    return raise_named("ProbeArgumentError",
                       PyUnicode_FromFormat("%U argument %zd: %s", p->fullname, i, what));
}

PyObject *not_loaded_error(ProviderProbe *p) {
    return raise_named("ProviderError",
                       PyUnicode_FromFormat(p->state == LoadState::kUnloaded
                                                ? "%U fired after its provider was unloaded"
                                                : "%U fired before its provider was loaded",
                                            p->fullname));
}

// Kept out of fire so that the untraced path saves no registers; fire jumps
// here (a tail call), adding no frame to return through.
__attribute__((noinline)) PyObject *fire_traced(ProviderProbe *p, PyObject *const *args,
                                                Py_ssize_t n) {
    const char *types = PyBytes_AS_STRING(p->codes);
    Py_ssize_t ntypes = PyBytes_GET_SIZE(p->codes);
    if (n != ntypes)
        return raise_named("ProbeArgumentError",
                           PyUnicode_FromFormat("%U takes %zd argument(s), %zd given", p->fullname,
                                                ntypes, n));
    // Zeroed only where the call passes words the probe does not have.
    uint64_t words[kMaxProviderArgs];
    for (Py_ssize_t i = n; i < (n <= kRegisterArgs ? kRegisterArgs : kMaxProviderArgs); i++)
        words[i] = 0;
    for (Py_ssize_t i = 0; i < n && i < kMaxProviderArgs; i++) {
        PyObject *v = args[i];
        auto t = static_cast<ProviderArg>(types[i]);
        if (t == ProviderArg::STR) {
            if (!PyUnicode_Check(v))
                return arg_error(p, i, "expected str");
            // The UTF-8 form is cached in the str object: valid while v lives.
            const char *s = PyUnicode_AsUTF8(v);
            if (!s) {
                PyErr_Clear();
                return arg_error(p, i, "str cannot be encoded as UTF-8 (lone surrogate)");
            }
            words[i] = reinterpret_cast<uint64_t>(s);
        } else if (t == ProviderArg::BYTES) {
            if (!PyBytes_Check(v))
                return arg_error(p, i, "expected bytes");
            words[i] = reinterpret_cast<uint64_t>(PyBytes_AS_STRING(v));
        } else {
            if (!PyLong_Check(v) || PyBool_Check(v))
                return arg_error(p, i, "expected int");
            IntWord w = int_word(t, v);
            if (!w.fits)
                return arg_error(p, i, "integer out of range for its type");
            words[i] = w.word;
        }
    }
    // The probe function returns None, so its call is fire's last act: a
    // jump, and the function returns straight to the interpreter (after a
    // traced hit every return mispredicts, so one frame fewer counts).
    Py_INCREF(Py_None);
    if (n <= kRegisterArgs)
        return reinterpret_cast<RegisterProbeFunction>(p->function)(words[0], words[1], words[2],
                                                                    words[3], words[4], words[5]);
    return reinterpret_cast<ProbeFunction>(p->function)(words[0], words[1], words[2], words[3],
                                                        words[4], words[5], words[6], words[7],
                                                        words[8], words[9], words[10], words[11]);
}

PyObject *probe_fire(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    auto *p = reinterpret_cast<ProviderProbe *>(self);
    if (*p->semaphore == 0) {  // nobody traces it: the whole cost of a disabled probe
        if (p->state != LoadState::kLoaded)
            return not_loaded_error(p);
        Py_RETURN_NONE;
    }
    return fire_traced(p, args, n);
}

PyObject *probe_fire_lazy(PyObject *self, PyObject *make_args) {
    auto *p = reinterpret_cast<ProviderProbe *>(self);
    if (*p->semaphore == 0 && p->state == LoadState::kLoaded)
        Py_RETURN_NONE;  // untraced: make_args is not called
    PyObject *values = PyObject_CallNoArgs(make_args);
    if (!values)
        return nullptr;
    PyObject *seq = PySequence_Fast(values, "fire_lazy: make_args() must return a sequence of values");
    Py_DECREF(values);
    if (!seq)
        return nullptr;
    PyObject *r = probe_fire(self, PySequence_Fast_ITEMS(seq), PySequence_Fast_GET_SIZE(seq));
    Py_DECREF(seq);
    return r;
}

PyObject *probe_bind(PyObject *self, PyObject *args) {
    auto *p = reinterpret_cast<ProviderProbe *>(self);
    unsigned long long function = 0, semaphore = 0;
    if (!PyArg_ParseTuple(args, "KK", &function, &semaphore))
        return nullptr;
    p->function = static_cast<uintptr_t>(function);
    p->semaphore = reinterpret_cast<const volatile uint16_t *>(semaphore);
    p->state = LoadState::kLoaded;
    Py_RETURN_NONE;
}

PyObject *probe_unbind(PyObject *self, PyObject *) {
    auto *p = reinterpret_cast<ProviderProbe *>(self);
    p->semaphore = &kNoSemaphore;  // the object is about to be unmapped
    p->function = 0;
    if (p->state == LoadState::kLoaded)
        p->state = LoadState::kUnloaded;
    Py_RETURN_NONE;
}

PyObject *probe_enabled(PyObject *self, void *) {
    return PyBool_FromLong(*reinterpret_cast<ProviderProbe *>(self)->semaphore != 0);
}

PyObject *probe_loaded(PyObject *self, void *) {
    return PyBool_FromLong(reinterpret_cast<ProviderProbe *>(self)->state == LoadState::kLoaded);
}

// Py_NewRef, which CPython has only from 3.10 (the wheels start at 3.9).
PyObject *new_ref(PyObject *o) {
    Py_INCREF(o);
    return o;
}

int probe_init(PyObject *self, PyObject *args, PyObject *kwds) {
    auto *p = reinterpret_cast<ProviderProbe *>(self);
    PyObject *provider, *name, *fullname, *arg_names, *arg_types, *codes;
    static const char *kw[] = {"provider", "name", "fullname", "arg_names", "arg_types", "codes", nullptr};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OUUO!O!S", const_cast<char **>(kw), &provider, &name,
                                     &fullname, &PyList_Type, &arg_names, &PyList_Type, &arg_types,
                                     &codes))
        return -1;
    if (PyList_GET_SIZE(arg_names) != PyBytes_GET_SIZE(codes) ||
        PyList_GET_SIZE(arg_types) != PyBytes_GET_SIZE(codes) ||
        PyBytes_GET_SIZE(codes) > kMaxProviderArgs) {
        PyErr_Format(PyExc_ValueError, "one name, type and code per argument, at most %d", kMaxProviderArgs);
        return -1;
    }
    Py_XSETREF(p->provider, new_ref(provider));
    Py_XSETREF(p->name, new_ref(name));
    Py_XSETREF(p->fullname, new_ref(fullname));
    Py_XSETREF(p->arg_names, new_ref(arg_names));
    Py_XSETREF(p->arg_types, new_ref(arg_types));
    Py_XSETREF(p->codes, new_ref(codes));
    p->function = 0;
    p->semaphore = &kNoSemaphore;
    p->state = LoadState::kNeverLoaded;
    return 0;
}

PyObject *probe_new(PyTypeObject *type, PyObject *, PyObject *) {
    PyObject *self = type->tp_alloc(type, 0);  // zeroed: no references yet
    if (self)
        reinterpret_cast<ProviderProbe *>(self)->semaphore = &kNoSemaphore;
    return self;
}

int probe_traverse(PyObject *self, visitproc visit, void *arg) {
    auto *p = reinterpret_cast<ProviderProbe *>(self);
    Py_VISIT(p->provider);
    Py_VISIT(p->arg_names);
    Py_VISIT(p->arg_types);
    return 0;
}

int probe_clear(PyObject *self) {
    auto *p = reinterpret_cast<ProviderProbe *>(self);
    Py_CLEAR(p->provider);
    Py_CLEAR(p->arg_names);
    Py_CLEAR(p->arg_types);
    return 0;
}

void probe_dealloc(PyObject *self) {
    auto *p = reinterpret_cast<ProviderProbe *>(self);
    PyObject_GC_UnTrack(self);
    probe_clear(self);
    Py_CLEAR(p->name);
    Py_CLEAR(p->fullname);
    Py_CLEAR(p->codes);
    Py_TYPE(self)->tp_free(self);
}

// <Probe myapp:request(method: str, status: uint16)>
PyObject *probe_repr(PyObject *self) {
    auto *p = reinterpret_cast<ProviderProbe *>(self);
    if (!p->fullname || !p->arg_names || !p->arg_types)
        return PyUnicode_FromString("<Probe (not initialised)>");
    PyObject *parts = PyList_New(0);
    if (!parts)
        return nullptr;
    Py_ssize_t n = PyList_GET_SIZE(p->arg_names);
    for (Py_ssize_t i = 0; i < n && i < PyList_GET_SIZE(p->arg_types); i++) {
        PyObject *s = PyUnicode_FromFormat("%S: %S", PyList_GET_ITEM(p->arg_names, i),
                                           PyList_GET_ITEM(p->arg_types, i));
        if (!s || PyList_Append(parts, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(parts);
            return nullptr;
        }
        Py_DECREF(s);
    }
    PyObject *sep = PyUnicode_FromString(", ");
    PyObject *joined = sep ? PyUnicode_Join(sep, parts) : nullptr;
    Py_XDECREF(sep);
    Py_DECREF(parts);
    if (!joined)
        return nullptr;
    PyObject *r = PyUnicode_FromFormat("<Probe %U(%U)>", p->fullname, joined);
    Py_DECREF(joined);
    return r;
}

PyMethodDef kMethods[] = {
    {"fire", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(probe_fire)), METH_FASTCALL,
     "fire(*values): fires the probe with these values if anyone traces it; otherwise only reads "
     "its semaphore.  While traced, the values are checked against the argument types "
     "(ProbeArgumentError)."},
    {"fire_lazy", probe_fire_lazy, METH_O,
     "fire_lazy(make_args): calls make_args() for the values and fires, only while someone "
     "traces the probe."},
    {"_bind", probe_bind, METH_VARARGS, "_bind(function, semaphore): the loaded object's addresses."},
    {"_unbind", probe_unbind, METH_NOARGS, "Before the object is unloaded: firing then raises."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef kGetSet[] = {
    {"enabled", probe_enabled, nullptr, "True while some tracer has this probe attached (its semaphore is non-zero).",
     nullptr},
    {"_loaded", probe_loaded, nullptr, "True while bound to a loaded object.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMemberDef kMembers[] = {
    {"provider", T_OBJECT, offsetof(ProviderProbe, provider), READONLY, "The Provider."},
    {"name", T_OBJECT, offsetof(ProviderProbe, name), READONLY, "The probe's name."},
    {"fullname", T_OBJECT, offsetof(ProviderProbe, fullname), READONLY, "provider:name."},
    {"arg_names", T_OBJECT, offsetof(ProviderProbe, arg_names), READONLY, "Argument names."},
    {"arg_types", T_OBJECT, offsetof(ProviderProbe, arg_types), READONLY, "Argument types (int8 ... bytes)."},
    {"_codes", T_OBJECT, offsetof(ProviderProbe, codes), READONLY, "One ProviderArg code per argument."},
    {nullptr, 0, 0, 0, nullptr},
};

PyTypeObject kProviderProbeType = {PyVarObject_HEAD_INIT(nullptr, 0)};

}  // namespace

int add_provider_probe_type(PyObject *module) {
    PyTypeObject &t = kProviderProbeType;
    t.tp_name = "pyusdt.provide.ProviderProbe";
    t.tp_basicsize = sizeof(ProviderProbe);
    // Not BASETYPE: CPython's fast call of a method needs the exact type.
    t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
    t.tp_doc = "One probe of a Provider (made by Provider.probe).  fire(...) does nothing but a "
               "semaphore read while nobody traces it; enabled tells whether anyone does.";
    t.tp_new = probe_new;
    t.tp_init = probe_init;
    t.tp_dealloc = probe_dealloc;
    t.tp_traverse = probe_traverse;
    t.tp_clear = probe_clear;
    t.tp_repr = probe_repr;
    t.tp_methods = kMethods;
    t.tp_getset = kGetSet;
    t.tp_members = kMembers;
    if (PyType_Ready(&t) < 0)
        return -1;
    Py_INCREF(&t);
    return PyModule_AddObject(module, "ProviderProbe", reinterpret_cast<PyObject *>(&t));
}

}  // namespace pyusdt
