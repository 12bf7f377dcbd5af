/* SPDX-License-Identifier: MIT */
/*
 * The one definition of every layout shared by the BPF programs (bpf/) and the
 * C++ loader (csrc/).  Python never spells these offsets: it asks the native
 * module for a numpy dtype built from offsetof() on the structs below.
 *
 * Included from BPF C (where __BPF__ is defined and the kernel's u64 etc. are
 * not available without vmlinux.h) and from C++.
 */
#ifndef PYUSDT_ABI_H
#define PYUSDT_ABI_H

#ifdef __BPF__
typedef unsigned char pyusdt_u8;
typedef unsigned short pyusdt_u16;
typedef unsigned int pyusdt_u32;
typedef unsigned long long pyusdt_u64;
typedef long long pyusdt_s64;
#else
#include <stdint.h>
typedef uint8_t pyusdt_u8;
typedef uint16_t pyusdt_u16;
typedef uint32_t pyusdt_u32;
typedef uint64_t pyusdt_u64;
typedef int64_t pyusdt_s64;
#endif

/* A compile-time check, in BPF C, C and C++ alike. */
#ifdef __cplusplus
#define PYUSDT_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define PYUSDT_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* sys/sdt.h allows at most 12 arguments per probe. */
#define PYUSDT_MAX_ARGS 12
/* A streamed record without strings, of a site with at most this many
 * arguments, is sent short: the fixed part and this many slots, 64 bytes in
 * the ring buffer with its header (a cache line) instead of 136.  The reader
 * pads it back to a whole pyusdt_event. */
#define PYUSDT_SHORT_RECORD_ARGS 3
/*
 * Bytes of one argument a record holds: pyusdt_event.args[] is 64-bit.  A
 * note may describe a wider argument, 16 bytes (a struct or __int128 passed
 * by value, "16@%rax", "-16@8(%rbp)"): its first PYUSDT_ARG_SLOT_BYTES are
 * read (the low half, little-endian), as bpftrace 0.22+ does.
 */
#define PYUSDT_ARG_SLOT_BYTES 8
/* The widest argument a note may describe. */
#define PYUSDT_ARG_MAX_SIZE 16
/* Upper bound of one string slot (bytes, including the NUL). */
#define PYUSDT_MAX_STR_LEN 2048
/* Default string slot length when the user does not choose one. */
#define PYUSDT_DEFAULT_STR_LEN 64
/* Number of attach sites (probe locations) one session can hold. */
#define PYUSDT_MAX_SITES 16384
/* Number of distinct probes one session can count per-probe statistics for. */
#define PYUSDT_MAX_PROBES 4096
/* Largest ring buffer: the kernel takes a power of two in a u32 max_entries. */
#define PYUSDT_MAX_RINGBUF_BYTES (1ull << 31)
/* Largest hash map pyusdt asks for (aggregation rows, pending latency
 * starts).  The kernel refuses more than 2^27 buckets (E2BIG), but takes 16
 * bytes per bucket at once, and an LRU map (pending starts) preallocates
 * every entry: 2^27 would be gigabytes of kernel memory for one typo. */
#define PYUSDT_MAX_MAP_ENTRIES (1u << 22)
/* Number of traced processes tracked by the pid filter. */
#define PYUSDT_MAX_TGIDS 8192
/* How many ancestors the pid filter walks to recognise a forked child. */
#define PYUSDT_ANCESTOR_DEPTH 8
/* Cgroups (cgroup v2 ids) one session can trace, and the distinct sets of
 * them its sites can count (one bit each in a u32): two cgroup targets of
 * one session each see only their own processes. */
#define PYUSDT_MAX_CGROUPS 1024
#define PYUSDT_MAX_CGROUP_SETS 32
/* How many cgroup levels the cgroup filter walks up from a process's own:
 * a traced cgroup's sub-cgroups (a pod's containers, a unit's children)
 * are traced too, however they were made. */
#define PYUSDT_CGROUP_DEPTH 16

/* Which processes a site counts (pyusdt_site.filter). */
enum pyusdt_filter_kind {
	PYUSDT_FILTER_NONE = 0,   /* every process that runs the file (or the one the link names) */
	PYUSDT_FILTER_TGID = 1,   /* processes in the tgids map, and their descendants */
	PYUSDT_FILTER_CGROUP = 2, /* processes in (or below) a cgroup of one of the site's cgroup sets */
};

/* How one argument is located at the probe site. */
enum pyusdt_arg_kind {
	PYUSDT_ARG_NONE = 0,  /* slot unused */
	PYUSDT_ARG_CONST = 1, /* value = disp                              ($5)       */
	PYUSDT_ARG_REG = 2,   /* value = reg >> shift                      (%eax)     */
	PYUSDT_ARG_MEM = 3,   /* value = *(base + disp)                    (-20(%rbp)) */
	PYUSDT_ARG_MEM_INDEX = 4, /* value = *(base + index*scale + disp)  (8(%rax,%rdx,8)) */
	PYUSDT_ARG_MEM_ABS = 5,   /* value = *(load_bias + disp)  (symbol(%rip), resolved to a link-time address) */
};

/* One argument's location, as parsed from the note's "N@OPERAND" string. */
struct pyusdt_arg_spec {
	pyusdt_s64 disp;      /* constant value, displacement, or link-time address */
	pyusdt_u16 base_off;  /* offsetof(struct pt_regs, base register) */
	pyusdt_u16 index_off; /* offsetof(struct pt_regs, index register) */
	pyusdt_u8 kind;       /* enum pyusdt_arg_kind */
	pyusdt_u8 size;       /* the note's width: 1, 2, 4, 8 or 16 bytes (at most PYUSDT_ARG_SLOT_BYTES read) */
	pyusdt_u8 is_signed;  /* sign-extend to 64 bits (else zero-extend) */
	pyusdt_u8 scale;      /* 1, 2, 4 or 8 for PYUSDT_ARG_MEM_INDEX */
	pyusdt_u8 shift;      /* right shift of a register (8 for %ah..%dh) */
	pyusdt_u8 is_string;  /* the value is a user pointer to a NUL-terminated string */
	pyusdt_u8 str_slot;   /* which string slot of the record receives it */
	pyusdt_u8 _pad;
};

/* ---- In-kernel aggregation ------------------------------------------------ */

/* What a site does with a hit when the aggregate program is attached there. */
enum pyusdt_agg_role {
	PYUSDT_ROLE_NONE = 0,  /* a streaming site */
	PYUSDT_ROLE_AGG = 1,   /* aggregate a value (or just count) */
	PYUSDT_ROLE_START = 2, /* latency: remember when the request started */
	PYUSDT_ROLE_DONE = 3,  /* latency: aggregate the time since its start */
};

/* What an aggregation is keyed by, like bpftrace's @[key]. */
enum pyusdt_key_kind {
	PYUSDT_KEY_NONE = 0,
	PYUSDT_KEY_ARG = 1,        /* an integer argument */
	PYUSDT_KEY_STR = 2,        /* a string argument (bounded) */
	PYUSDT_KEY_PID = 3,
	PYUSDT_KEY_TID = 4,
	PYUSDT_KEY_COMM = 5,
	PYUSDT_KEY_PROBE = 6,      /* the probe's id: one row per probe */
	PYUSDT_KEY_TUPLE = 7,      /* keys computed by the site's output program (agg_tuple) */
	PYUSDT_KEY_TUPLE_SMALL = 8, /* the same, packed in PYUSDT_TUPLE_SMALL_KEY_LEN bytes (agg_tuple_small) */
};

enum pyusdt_cmp { PYUSDT_CMP_NONE = 0, PYUSDT_CMP_EQ, PYUSDT_CMP_NE, PYUSDT_CMP_LT,
		  PYUSDT_CMP_LE, PYUSDT_CMP_GT, PYUSDT_CMP_GE };

enum pyusdt_hist_kind { PYUSDT_HIST_NONE = 0, PYUSDT_HIST_LOG2 = 1, PYUSDT_HIST_LINEAR = 2 };

/* An argument index that means "no argument": count only, or pair by thread. */
#define PYUSDT_NO_ARG 0xff
/* Bytes of a string key (string argument or comm), NUL included. */
#define PYUSDT_STR_KEY_LEN 64
/* The bucket number of an aggregation's count/sum/min/max row. */
#define PYUSDT_STATS_ROW 0xffffffffu
/* Aggregations one session can hold. */
#define PYUSDT_MAX_AGGS 256
/*
 * An unkeyed aggregation with a log2 histogram (or none) lives in the per-CPU
 * array agg_flat, rows agg_id * PYUSDT_FLAT_ROWS + bucket, its count/sum/min/max
 * row last: an array lookup is inlined by the verifier, a hash lookup is not.
 */
#define PYUSDT_LOG2_BUCKETS 66
#define PYUSDT_FLAT_ROWS (PYUSDT_LOG2_BUCKETS + 1)

struct pyusdt_agg_spec {
	pyusdt_s64 lmin, lmax, step; /* linear histogram: [lmin, lmax) in steps */
	pyusdt_s64 filter_value;     /* compared with argument filter_arg */
	pyusdt_u64 divisor;          /* value / divisor (units); 0 or 1: as is */
	pyusdt_u32 agg_id;
	pyusdt_u32 filter_pid;       /* 0: any process */
	pyusdt_u32 lbuckets;         /* linear histogram: in-range buckets */
	pyusdt_u8 role;              /* enum pyusdt_agg_role */
	pyusdt_u8 value_arg;         /* ROLE_AGG: argument aggregated; PYUSDT_NO_ARG: count only */
	pyusdt_u8 key_kind;          /* enum pyusdt_key_kind */
	pyusdt_u8 key_arg;           /* argument of KEY_ARG/KEY_STR */
	pyusdt_u8 hist_kind;         /* enum pyusdt_hist_kind */
	pyusdt_u8 keep_stats;        /* maintain the count/sum/min/max row */
	pyusdt_u8 filter_op;         /* enum pyusdt_cmp */
	pyusdt_u8 filter_arg;
	pyusdt_u8 pair_arg;          /* START/DONE: argument with the request id; NO_ARG: by thread */
	pyusdt_u8 key_from_start;    /* DONE: use the key its START site computed */
	pyusdt_u8 flat;              /* unkeyed, log2 or no histogram: rows in agg_flat */
	pyusdt_u8 _pad;
};

/* Key of an aggregation row keyed by nothing or by an integer. */
struct pyusdt_agg_key {
	pyusdt_u32 agg_id;
	pyusdt_u32 bucket; /* histogram bucket, or PYUSDT_STATS_ROW */
	pyusdt_u64 key;
};

/* Key of an aggregation row keyed by a string. */
struct pyusdt_agg_str_key {
	pyusdt_u32 agg_id;
	pyusdt_u32 bucket;
	char key[PYUSDT_STR_KEY_LEN];
};

/* One row, per CPU; bucket rows use count only. */
struct pyusdt_agg_value {
	pyusdt_u64 count;
	pyusdt_s64 sum;
	pyusdt_s64 min;
	pyusdt_s64 max;
};

/* Latency: an outstanding start, found again by the done probe. */
struct pyusdt_start_key {
	pyusdt_u32 agg_id;
	pyusdt_u32 _pad;
	pyusdt_u64 pair; /* thread id or request id */
};

struct pyusdt_start_value {
	pyusdt_u64 ts_ns;
	pyusdt_u64 key;                 /* integer key computed at the start */
	char str_key[PYUSDT_STR_KEY_LEN]; /* string key computed at the start */
};

/*
 * Per-aggregation counters: nothing dropped goes unseen.  X(field): the
 * fields in order, each a pyusdt_u64; the loader's numpy dtype and Python's
 * names of them (AGG_COUNTER_NAMES) come from this list.
 *   hits       hits that reached the aggregation
 *   filtered   hits the predicate or pid filter rejected
 *   map_full   values lost: the aggregation map was full
 *   starts     latency starts recorded
 *   matched    latency dones that found their start
 *   unmatched  latency dones without a start (evicted or begun before the trace)
 *   read_fail  a value, key or filter argument could not be read
 */
#define PYUSDT_AGG_COUNTERS(X) X(hits) X(filtered) X(map_full) X(starts) X(matched) X(unmatched) X(read_fail)

struct pyusdt_agg_counters {
#define PYUSDT_X(field) pyusdt_u64 field;
	PYUSDT_AGG_COUNTERS(PYUSDT_X)
#undef PYUSDT_X
};

/* ---- Expressions ------------------------------------------------------------
 *
 * bpftrace's expressions (str(arg1, arg2), *(uint64 *)(arg1 + 8), a && b, ...)
 * are parsed and lowered in Python (pyusdt/expr/) to a short program for a
 * stack machine, stored in the `exprs` map; a site names at most two of them,
 * a predicate and an output program, and the precompiled programs interpret
 * them (bpf/usdt_expr.bpf.h).  A site that names none takes the plain path.
 *
 * X(op): the instruction set.  Each pops its operands and pushes its result;
 * "a OP b" pops b, then a.  `size`, `flags`, `field`, `off` and `imm` are the
 * instruction's fields (struct pyusdt_insn).
 *   END      stop here
 *   ARG      push argument `off` of the site, by its spec (width, sign)
 *   IMM      push imm
 *   PID TID CPU NSECS PROBE   push the builtin (PROBE: the probe id)
 *   LOAD     pop an address; push the `size`-byte value there, sign-extended
 *            if flags has PYUSDT_EXPR_SIGNED; an unreadable address pushes 0
 *            and marks the read failed
 *   EXT      truncate the top to `size` bytes, sign- or zero-extended (casts)
 *   ADD SUB MUL DIV MOD AND OR XOR SHL SHR   a OP b; DIV MOD SHR signed
 *            with PYUSDT_EXPR_SIGNED; x/0 and x%0 are 0, as in BPF
 *   EQ NE LT LE GT GE   a OP b as 1 or 0; signed with PYUSDT_EXPR_SIGNED
 *   NEG NOT LNOT   -a, ~a, !a
 *   JZ       if the top is 0, skip the next `off` instructions (it stays);
 *            else pop it: `a && b`
 *   JNZ      if the top is not 0, make it 1 and skip `off`; else pop: `a || b`
 *   BOOL     the top becomes 1 if it is not 0
 *   STR      pop a pointer (and first, with PYUSDT_EXPR_WITH_LEN, a length)
 *            and read the NUL-terminated string there into the scratch at
 *            byte `off`, `imm` bytes wide (NUL included): a temporary
 *            string, a record's string slot or a key's string.  A length
 *            reads at most that many bytes, as bpftrace's str(p, n) does
 *   COMM     the task's comm into the scratch at `off`, `imm` bytes wide (at most 16)
 *   STREQ    push 1 if temporary string 0 equals literal bytes [off, off +
 *            size) (NUL included) or, with `size` 0, temporary string 1
 *   OUT      pop a value into the scratch at byte `off` (8 bytes)
 *   USTACK   push the user stack of the hit: the process id << 32 | its id
 *            in the `ustacks` map (PYUSDT_USTACK_NONE there when it could
 *            not be taken: the map full, or a bucket taken by another stack)
 * Every place a program writes is in the scratch (struct
 * pyusdt_expr_scratch): a record's fields in `rec`, an aggregation's value
 * and key in `agg`.  `field` names the output field an instruction belongs
 * to: a failed read or a cut string there sets that field's bit in the
 * record's flags (streaming) or counts read_fail (aggregating).
 */
#define PYUSDT_EXPR_OPS(X) X(END) X(ARG) X(IMM) X(PID) X(TID) X(CPU) X(NSECS) X(PROBE) \
	X(LOAD) X(EXT) X(ADD) X(SUB) X(MUL) X(DIV) X(MOD) X(AND) X(OR) X(XOR) X(SHL) X(SHR) \
	X(EQ) X(NE) X(LT) X(LE) X(GT) X(GE) X(NEG) X(NOT) X(LNOT) X(JZ) X(JNZ) X(BOOL) \
	X(STR) X(COMM) X(STREQ) X(OUT) X(USTACK)

enum pyusdt_expr_op {
#define PYUSDT_X(op) PYUSDT_OP_##op,
	PYUSDT_EXPR_OPS(PYUSDT_X)
#undef PYUSDT_X
	PYUSDT_OP_COUNT
};

/* Bits of pyusdt_insn.flags. */
#define PYUSDT_EXPR_SIGNED 0x1   /* signed arithmetic, comparison or extension */
#define PYUSDT_EXPR_WITH_LEN 0x2 /* STR: a (pointer, length) string */
#define PYUSDT_EXPR_TO_OUT 0x4   /* STR, COMM: an output, not a temporary (Python's bookkeeping only) */

/* Instructions one program may have: the interpreter's loop runs this often. */
#define PYUSDT_EXPR_MAX_INSNS 32
/* Values the stack holds (a power of two: the index is masked). */
#define PYUSDT_EXPR_STACK 8
/* Temporary strings (for comparisons), PYUSDT_STR_KEY_LEN bytes each. */
#define PYUSDT_EXPR_TMP_STRS 2
/* Bytes of string literals one program may carry. */
#define PYUSDT_EXPR_LIT_BYTES 128
/* Programs one session can hold (id 0 means "none"). */
#define PYUSDT_MAX_EXPR_PROGS 256
/* Frames of a user stack (ustack): the kernel's default perf_event_max_stack. */
#define PYUSDT_USTACK_DEPTH 127
/* The low half of a USTACK value when no stack could be taken. */
#define PYUSDT_USTACK_NONE 0xffffffffu
/* Bytes of an aggregation key made of expressions (several keys, packed). */
#define PYUSDT_TUPLE_KEY_LEN 128
/* Keys that fit in this many bytes (three numbers, or comm and a number)
 * live in a map of short keys: a key is hashed and compared whole on every
 * hit, and most keys are short. */
#define PYUSDT_TUPLE_SMALL_KEY_LEN 24

struct pyusdt_insn {
	pyusdt_s64 imm;
	pyusdt_u16 off;
	pyusdt_u8 op;     /* enum pyusdt_expr_op */
	pyusdt_u8 size;
	pyusdt_u8 flags;  /* PYUSDT_EXPR_* */
	pyusdt_u8 field;  /* output field of this instruction (failure and truncation bits) */
	pyusdt_u16 _pad;
};

struct pyusdt_expr {
	struct pyusdt_insn insns[PYUSDT_EXPR_MAX_INSNS];
	char lits[PYUSDT_EXPR_LIT_BYTES];
};

/* Key of an aggregation row keyed by expressions: the key values packed at
 * the offsets Python chose (8 bytes per integer, PYUSDT_STR_KEY_LEN per string). */
struct pyusdt_agg_tuple_key {
	pyusdt_u32 agg_id;
	pyusdt_u32 bucket;
	pyusdt_u8 key[PYUSDT_TUPLE_KEY_LEN];
};

/* The key of agg_tuple_small: the first bytes of a pyusdt_agg_tuple_key,
 * so that the same packed key is looked up in either map. */
struct pyusdt_agg_tuple_small_key {
	pyusdt_u32 agg_id;
	pyusdt_u32 bucket;
	pyusdt_u8 key[PYUSDT_TUPLE_SMALL_KEY_LEN];
};

/* What an aggregating output program writes: its value, and its key. */
struct pyusdt_agg_out {
	pyusdt_s64 value;
	struct pyusdt_agg_tuple_key tuple;
};

/* One attach site: the BPF cookie of each uprobe link is the site's index. */
struct pyusdt_site {
	struct pyusdt_agg_spec agg; /* unused (role NONE) on streaming sites */
	struct pyusdt_arg_spec args[PYUSDT_MAX_ARGS];
	pyusdt_u64 site_vaddr; /* link-time address of the probe site, for the load bias */
	pyusdt_u32 probe_id;   /* index of the probe (statistics, names) */
	pyusdt_u8 nargs;
	pyusdt_u8 nstrings;    /* string slots this site fills */
	pyusdt_u8 filter;      /* enum pyusdt_filter_kind: which processes count */
	pyusdt_u8 hold;        /* 1: stop the process (SIGSTOP) once the record is sent; the reader resumes it */
	pyusdt_u16 pred_prog;  /* `exprs` entry of the predicate; 0: none */
	pyusdt_u16 out_prog;   /* `exprs` entry of the output program (fields, or key and value); 0: none */
	pyusdt_u32 cgroup_sets; /* FILTER_CGROUP: the cgroup sets it counts (bits of the cgroups map's values) */
};

/*
 * Where there are no BPF cookies (before Linux 5.15) a hit finds its site by
 * the file and offset of the instruction that hit: this is the key of the
 * site_by_addr map.  The device is left out: a file in a
 * container's overlayfs is mapped as the file of the layer below, whose
 * inode number stat() reports but whose device it does not.  Among the
 * sites a session attached, an inode number and file offset in common is
 * not to be met in practice.
 */
enum pyusdt_prog_kind { PYUSDT_PROG_STREAM = 0, PYUSDT_PROG_AGGREGATE = 1 };

struct pyusdt_site_addr {
	pyusdt_u64 ino;
	pyusdt_u64 offset; /* file offset of the probe instruction */
	pyusdt_u32 prog;   /* enum pyusdt_prog_kind: the program the site's link runs */
	pyusdt_u32 _pad;
};

/*
 * A string a plain read could not fault in, on a kernel whose uprobes cannot
 * sleep (before 6.0), in memory no one can write: its slot holds this
 * instead of the string, so that the reader can read the string from the
 * file even when the process has exited by then.  Found before 6.1 only
 * (where the program can walk the vma tree); the reader tries the process
 * first.
 */
#define PYUSDT_STR_FILE_MAGIC 0x52545366u /* "fSTR" */
struct pyusdt_str_file {
	pyusdt_u32 magic;
	pyusdt_u32 dev;    /* the kernel's encoding: major << 20 | minor */
	pyusdt_u64 ino;
	pyusdt_u64 offset; /* file offset of the string's first byte */
};

/* Session-wide settings, written once before attaching. */
struct pyusdt_config {
	pyusdt_u32 str_len;       /* bytes per string slot, 1..PYUSDT_MAX_STR_LEN */
	pyusdt_u32 string_slots;  /* string slots in every record that carries strings */
	pyusdt_u64 wakeup_bytes;  /* wake the reader only when this much data is pending */
	pyusdt_u64 wakeup_interval_ns; /* and, below that, at most this often (0: never) */
	pyusdt_u32 expressions;   /* 1: some site has an expression program; 0: the interpreter is dead code */
	pyusdt_u32 _pad;
};

/*
 * Per-probe counters, kept in a per-CPU array indexed by probe id.
 * X(field): the fields in order, each a pyusdt_u64 (PROBE_STATS_NAMES).
 *   hits          probe fired in a traced process
 *   lost_ringbuf  record dropped: ring buffer full
 *   str_fail      a string argument could not be read (record kept, flag set)
 *   arg_fail      a memory argument could not be read (record kept, flag set)
 *   filtered      hits a --where predicate rejected (no record)
 *   busy          hits not evaluated: this CPU's expression scratch was in use
 *                 (a sleepable program preempted while it faulted a page in)
 */
#define PYUSDT_PROBE_STATS(X) X(hits) X(lost_ringbuf) X(str_fail) X(arg_fail) X(filtered) X(busy)

struct pyusdt_probe_stats {
#define PYUSDT_X(field) pyusdt_u64 field;
	PYUSDT_PROBE_STATS(PYUSDT_X)
#undef PYUSDT_X
};

/* Bits of pyusdt_event.flags. */
#define PYUSDT_FLAG_STR_TRUNC_SHIFT 0  /* bit i: string argument i was truncated */
#define PYUSDT_FLAG_READ_FAIL_SHIFT 16 /* bit 16+i: argument i could not be read */

/*
 * One probe hit.  A record from a site with string arguments is followed by
 * string_slots * str_len bytes of string slots; in a numpy batch the slots
 * become a fixed-size field, so each record is copied once, ring buffer to batch.
 */
struct pyusdt_event {
	pyusdt_u64 ts_ns;     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	pyusdt_u32 pid;       /* process id (tgid) */
	pyusdt_u32 tid;       /* thread id */
	pyusdt_u32 cpu;
	pyusdt_u32 probe_id;
	pyusdt_u32 flags;     /* PYUSDT_FLAG_* */
	pyusdt_u16 nstrings;  /* string slots that follow in the ring buffer */
	pyusdt_u16 _pad;
	pyusdt_u64 args[PYUSDT_MAX_ARGS]; /* extended to 64 bits by width and sign */
};

/*
 * The interpreter's state for one hit, one per CPU (the expr_scratch map):
 * a map value, not the 512-byte BPF stack, and out of the verifier's
 * register tracking.  Programs write their results here, at offsets Python
 * takes from this struct: a streaming site's record in `rec` (then copied to
 * the ring buffer whole), an aggregating site's value and key in `agg`.
 * `slack` lets a string's start bound its end: a string written at any
 * offset up to sizeof - PYUSDT_MAX_STR_LEN is inside the value.
 */
struct pyusdt_expr_scratch {
	pyusdt_u64 stack[PYUSDT_EXPR_STACK];
	pyusdt_u64 sp;       /* values on the stack */
	pyusdt_u64 skip_to;  /* instructions before this one are skipped (JZ, JNZ) */
	pyusdt_u64 result;   /* the stack's top when the program ended (a predicate's truth) */
	pyusdt_u32 fail_mask;  /* output fields whose reads failed */
	pyusdt_u32 trunc_mask; /* output fields whose strings were cut */
	pyusdt_u32 arg_fails, str_fails;
	pyusdt_u32 busy;       /* a hit on this CPU is using it */
	pyusdt_u32 _pad;
	char tmp[PYUSDT_EXPR_TMP_STRS][PYUSDT_STR_KEY_LEN];
	struct pyusdt_agg_out agg;
	pyusdt_u8 rec[sizeof(struct pyusdt_event) + PYUSDT_MAX_ARGS * PYUSDT_MAX_STR_LEN];
	pyusdt_u8 slack[PYUSDT_MAX_STR_LEN];
};

/* ---- What the layouts above promise each other ---------------------------- */

/* The sizes both sides lay out identically (BPF and x86-64 align a u64 to 8):
 * a change here is a change of the ABI between bpf/ and csrc/, on purpose. */
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_arg_spec) == 24, "pyusdt_arg_spec layout");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_agg_spec) == 64, "pyusdt_agg_spec layout");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_site) == 64 + 24 * PYUSDT_MAX_ARGS + 24, "pyusdt_site layout");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_insn) == 16, "pyusdt_insn layout");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_agg_tuple_key) == 8 + PYUSDT_TUPLE_KEY_LEN, "pyusdt_agg_tuple_key layout");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_agg_tuple_small_key) == 8 + PYUSDT_TUPLE_SMALL_KEY_LEN,
		     "pyusdt_agg_tuple_small_key layout");
PYUSDT_STATIC_ASSERT(PYUSDT_TUPLE_SMALL_KEY_LEN <= PYUSDT_TUPLE_KEY_LEN, "a small key is a key's prefix");
PYUSDT_STATIC_ASSERT((PYUSDT_EXPR_STACK & (PYUSDT_EXPR_STACK - 1)) == 0, "the stack index is masked");
PYUSDT_STATIC_ASSERT(PYUSDT_MAX_EXPR_PROGS <= 65536, "program ids are u16");
PYUSDT_STATIC_ASSERT(PYUSDT_OP_COUNT <= 256, "ops are u8");
/* Offsets into the scratch are u16s, and a per-CPU value is at most 32 KiB. */
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_expr_scratch) <= 32768, "the scratch is one per-CPU value");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_event) == 32 + 8 * PYUSDT_MAX_ARGS, "pyusdt_event layout");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_agg_key) == 16, "pyusdt_agg_key layout");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_start_key) == 16, "pyusdt_start_key layout");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_site_addr) == 24, "pyusdt_site_addr layout");
/* A record's argument slot is what the BPF side reads of an argument. */
PYUSDT_STATIC_ASSERT(sizeof(((struct pyusdt_event *)0)->args[0]) == PYUSDT_ARG_SLOT_BYTES,
		     "an argument slot is PYUSDT_ARG_SLOT_BYTES");
PYUSDT_STATIC_ASSERT(PYUSDT_ARG_SLOT_BYTES <= PYUSDT_ARG_MAX_SIZE, "a slot holds part of the widest argument");
/* One flag bit per argument in each half of pyusdt_event.flags. */
PYUSDT_STATIC_ASSERT(PYUSDT_FLAG_STR_TRUNC_SHIFT + PYUSDT_MAX_ARGS <= PYUSDT_FLAG_READ_FAIL_SHIFT,
		     "truncation bits fit below the read-failure bits");
PYUSDT_STATIC_ASSERT(PYUSDT_FLAG_READ_FAIL_SHIFT + PYUSDT_MAX_ARGS <= 32, "read-failure bits fit in flags");
/* Argument indexes are u8 fields, and PYUSDT_NO_ARG is none of them. */
PYUSDT_STATIC_ASSERT(PYUSDT_MAX_ARGS < PYUSDT_NO_ARG, "PYUSDT_NO_ARG is not an argument index");
/* A string slot can hold the reference to a string in a file. */
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_str_file) <= PYUSDT_DEFAULT_STR_LEN, "a default slot holds a pyusdt_str_file");
/* The counter structs are lists of u64 (their X-macros say so). */
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_agg_counters) % sizeof(pyusdt_u64) == 0, "agg counters are u64s");
PYUSDT_STATIC_ASSERT(sizeof(struct pyusdt_probe_stats) % sizeof(pyusdt_u64) == 0, "probe stats are u64s");
/* A latency start keeps the key its done aggregates under: integer and string keys alike. */
PYUSDT_STATIC_ASSERT(sizeof(((struct pyusdt_start_value *)0)->str_key) ==
		     sizeof(((struct pyusdt_agg_str_key *)0)->key), "a start's string key is a row's");
PYUSDT_STATIC_ASSERT(sizeof(((struct pyusdt_start_value *)0)->key) ==
		     sizeof(((struct pyusdt_agg_key *)0)->key), "a start's integer key is a row's");

#endif /* PYUSDT_ABI_H */
