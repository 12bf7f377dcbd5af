// One tracing session: the generic USDT program loaded once, its maps, the
// uprobe links (one uprobe_multi link per file, process and program where the
// kernel has them, else one perf-event link per probe site), and the ring
// buffer reader.  Everything
// it opens it owns and releases in its destructor, so a session that goes out
// of scope, however it ends, leaves no uprobe attached.
#pragma once

#include <condition_variable>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

#include "elf/usdt_notes.h"

struct usdt;
struct bpf_link;
struct bpf_program;

namespace pyusdt {

class RingReader;

// The kernel refused to load the program (no BTF, no privileges, ...).
struct LoadError : std::runtime_error {
    int err;
    LoadError(int e, const std::string &what) : std::runtime_error(what), err(e) {}
};

// One probe site could not be attached.
struct AttachError : std::runtime_error {
    int err;
    AttachError(int e, const std::string &what) : std::runtime_error(what), err(e) {}
};

struct SessionOptions {
    uint64_t ringbuf_bytes = 16u << 20;  // power of two, multiple of the page size
    uint32_t str_len = PYUSDT_DEFAULT_STR_LEN;
    uint32_t string_slots = 0;  // string arguments a record can carry
    uint64_t wakeup_bytes = 0;  // 0: ring buffer's own policy
    uint64_t wakeup_interval_ns = 0;  // below wakeup_bytes, wake at most this often (0: never)
    uint32_t max_sites = 4096;
    uint32_t max_probes = 1024;
    uint32_t max_agg_keys = 10240;  // rows of each aggregation map (buckets x keys)
    uint32_t max_starts = 10240;    // outstanding latency starts (LRU beyond)
    bool aggregate = false;         // load the aggregating program too
    uint32_t flat_aggs = 0;         // aggregations 0..n-1 may use the agg_flat array
    bool uprobe_multi = true;       // use uprobe_multi links if the kernel has them
    bool expressions = false;       // some site will run an expression program
    uint32_t max_stacks = 0;        // user stacks kept (ustack); 0: none taken
    // Rows the reader's thread may keep, drained from the ring buffer but
    // not yet taken by poll(), in bytes (0: a share of the machine's memory,
    // see Session::Session).  Past it the thread stops draining: the ring
    // fills and the BPF side counts what it then drops (lost_ringbuf).
    uint64_t queue_bytes = 0;
};

// The expression programs a site runs (ids in the `exprs` map, 0: none).
struct SiteExprs {
    uint32_t pred_prog = 0;
    uint32_t out_prog = 0;
    uint32_t string_fields = 0;  // string slots the output program fills
    bool reads_strings = false;  // the programs read strings (the sleepable program faults pages in)
    bool takes_stacks = false;   // the programs take user stacks (the plain program: the sleepable may not)
};

// One row of agg_tuple summed over CPUs: the packed key bytes as the
// output program wrote them.
struct AggTupleRow {
    uint32_t agg_id;
    uint32_t bucket;
    uint8_t key[PYUSDT_TUPLE_KEY_LEN];
    uint64_t count;
    int64_t sum;
    int64_t min;
    int64_t max;
};

// A site attach() accepted that commit() could not link.
struct AttachFailure {
    int err;
    std::string message;
};

// One aggregation row summed over CPUs: a histogram bucket (count only) or
// the count/sum/min/max row (bucket PYUSDT_STATS_ROW) of one key.
struct AggRow {
    uint32_t agg_id;
    uint32_t bucket;
    uint64_t key;                     // integer key (0 for string keys)
    char str_key[PYUSDT_STR_KEY_LEN]; // string key, NUL padded ("" for integer keys)
    uint64_t count;
    int64_t sum;
    int64_t min;
    int64_t max;
    uint8_t is_str;
    uint8_t _pad[7];
};

// Which arguments of a site are strings and which slot each fills.
struct StringArgs {
    std::vector<int> arg_index;  // slot k receives argument arg_index[k]
};

class Session {
  public:
    explicit Session(const SessionOptions &opts);
    ~Session();
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;

    // Attaches the generic program at one probe site of the file at `path`
    // (any path naming the same inode works: /proc/PID/map_files/... too).
    // pid -1 traces every process that maps the file; `filter` (enum
    // pyusdt_filter_kind) narrows that in BPF: FILTER_TGID, to the processes
    // added with add_tgid() and their descendants; FILTER_CGROUP, to those in
    // (or below) a cgroup added with add_cgroup() to one of `cgroup_sets`.
    // Returns the site index.
    // With `agg` (role other than NONE) the site aggregates in the kernel
    // instead of streaming.
    // With uprobe_multi links the site is linked by the next commit(), else
    // here and now (an AttachError names it).
    uint32_t attach(const std::string &path, const UsdtSite &site, uint32_t probe_id,
                    const std::vector<int> &string_args, int pid, uint8_t filter,
                    const pyusdt_agg_spec *agg = nullptr, bool hold = false,
                    const SiteExprs &exprs = SiteExprs{}, uint32_t cgroup_sets = 0);

    // The frames of user stack `id` (ustack), innermost first; empty when unknown.
    std::vector<uint64_t> ustack(uint32_t id) const;

    // Stores expression program `id` (1..PYUSDT_MAX_EXPR_PROGS-1) for sites to name.
    void set_expr(uint32_t id, const pyusdt_expr &program);

    // For a trace that will attach soon: with uprobe_multi links, the
    // program is linked to a throwaway site and unlinked now, in a thread,
    // so that the next commit does not wait for the kernel's grace period
    // itself (attach_warmup.h).
    void warm_attach();

    // Links the sites attach() accepted since the last commit: one link per
    // (file, pid, program).  A link the kernel refuses is retried one site at
    // a time, so that each failure names its probe; returns the failures.
    std::vector<AttachFailure> commit();

    // Every aggregation row, summed over CPUs.
    std::vector<AggRow> agg_rows() const;
    // Every row of the aggregations keyed by expressions, summed over CPUs.
    std::vector<AggTupleRow> agg_tuple_rows() const;
    // Counters of aggregations 0..n-1, summed over CPUs.
    std::vector<pyusdt_agg_counters> agg_counters(uint32_t n) const;
    // Latency starts still waiting for their done, per aggregation id.
    std::vector<uint64_t> pending_starts(uint32_t n) const;

    // Registers a process for the tgid filter (its descendants follow).
    void add_tgid(uint32_t tgid);
    // Forgets a process that has exited, so the filter map does not fill up.
    void remove_tgid(uint32_t tgid);
    // Every process the filter currently admits (registered and discovered children).
    std::vector<uint32_t> tgids() const;

    // Adds a cgroup (v2 id) to cgroup set `set` (0..PYUSDT_MAX_CGROUP_SETS-1)
    // of the cgroup filter; its sub-cgroups follow.
    void add_cgroup(uint64_t id, uint32_t set);
    // Takes it out of every set.
    void remove_cgroup(uint64_t id);

    // Waits up to timeout_ms for records and appends at most max_events rows
    // (row_size() bytes each) to `out`.  Returns the number of rows appended.
    // The first call starts the reader's thread, which moves records from the
    // ring buffer into user memory as they come (up to queue_bytes), so that
    // how fast the caller consumes rows does not decide what the ring drops.
    // Records of a hold site (the dynamic linker's, under -c) come first.
    size_t poll(int timeout_ms, size_t max_events, std::vector<uint8_t> &out);

    // Ends streaming: from now on streaming sites neither count nor send a
    // hit (they stay attached until detach_all), so the ring buffer only empties.
    void stop_streaming();
    // Bytes the BPF side has committed or reserved that the reader has not consumed
    // (rows already drained into user memory are not counted: poll() returns them).
    uint64_t pending_bytes() const;
    // Holds (the dynamic linker's, under -c) the reader resumed itself: every
    // object the process maps has no USDT notes, or had them at its last hold.
    uint64_t holds_resumed() const { return holds_resumed_; }
    // Times the reader's thread woke by its own timeout and found
    // wakeup_bytes or more pending: a wake-up the BPF side owed and did not
    // send (the ring fills meanwhile).  Stays 0 unless the policy is broken.
    uint64_t late_wakeups() const { return late_wakeups_.load(std::memory_order_relaxed); }

    // Per-probe counters summed over CPUs, indexed by probe id (every id
    // below the highest one attached so far).
    std::vector<pyusdt_probe_stats> stats() const;

    // Destroys every uprobe link now (the destructor does it too).
    void detach_all();
    // Hands the perf-event links to a background process that detaches them
    // (csrc/background_detach.h), then lets go of them here: returns its pid,
    // or -1 when there are none or it could not start (nothing changed).
    int detach_in_background();
    size_t attached_sites() const { return links_.size() + multi_sites_; }
    size_t perf_links() const { return links_.size(); }
    bool sleepable_strings() const { return sleepable_; }
    bool uprobe_multi() const { return multi_; }

    size_t row_size() const { return sizeof(pyusdt_event) + size_t(opts_.string_slots) * opts_.str_len; }
    const SessionOptions &options() const { return opts_; }

  private:
    // Copies one ring record into a row at the end of `rows` (or of
    // `urgent`, for a hold site's, unless the hold was resumed here).
    void expand(const uint8_t *rec, uint32_t len, std::vector<uint8_t> &rows, std::vector<uint8_t> &urgent);
    // Moves at most max_rows records from the ring buffer into the queue; returns how many.
    size_t drain_pass(size_t max_rows);
    bool ring_stopped_at_busy();
    void drain_loop();
    void start_drainer();
    void stop_drainer();
    // A hold site's hit of `pid`: resumes it here when no object it maps can
    // have probes the caller has not seen; false when the caller must look.
    bool resume_hold(uint32_t pid);
    void read_strings_late(uint8_t *row);
    // 0 or a positive errno; CO-RE against the kernel's own BTF if
    // `kernel_btf`, else against the minimal one (core_btf.h) when there is one.
    int open_and_load(bool kernel_btf = false);
    void index_by_address(const struct stat &st, uint64_t offset, uint32_t prog, uint32_t idx,
                          const pyusdt_site &s, const std::string &where);
    void open_waiter();
    void release();  // frees everything the session holds; safe to repeat

    SessionOptions opts_;
    usdt *skel_ = nullptr;
    std::unique_ptr<RingReader> ring_;
    bool sleepable_ = false;  // string reads use the sleepable programs
    int epfd_ = -1;           // epoll on the ring buffer (edge-triggered) and stop_fd_
    int stop_fd_ = -1;        // eventfd: wakes the reader's thread to end it
    std::vector<bpf_link *> links_;  // perf-event links, one per site
    // uprobe_multi: sites waiting for commit(), the links made, the sites in them.
    struct PendingSite {
        std::string path;
        int pid;
        bpf_program *prog;
        uint64_t offset, ref_ctr_offset, cookie;
        std::string label;  // provider:name, for errors
    };
    bool multi_ = false;
    std::vector<PendingSite> pending_;
    std::vector<int> multi_links_;
    size_t multi_sites_ = 0;
    uint32_t next_site_ = 0;
    uint32_t probe_count_ = 0;
    // Per probe id: which argument fills each string slot, and how many
    // strings the reader read after the program could not.
    std::vector<std::vector<int>> probe_strings_;
    std::vector<uint64_t> late_strings_;
    // The files attached so far by the kernel's (dev, inode), for strings
    // read late from a file (pyusdt_str_file).
    std::map<std::pair<uint32_t, uint64_t>, std::string> known_files_;
    // The reader's thread and its queue.  Lock order: ring_mu_, meta_mu_, queue_mu_.
    std::thread drainer_;
    bool drainer_started_ = false;
    std::mutex ring_mu_;   // one consumer of the ring buffer at a time (thread or poll)
    mutable std::mutex meta_mu_;  // the per-probe tables attach() writes and the reader reads
    std::mutex queue_mu_;
    std::condition_variable rows_cv_;  // rows queued
    std::condition_variable room_cv_;  // rows taken: the thread may drain again
    std::deque<std::vector<uint8_t>> queue_;  // chunks of rows, oldest first
    size_t front_taken_ = 0;                  // bytes of queue_.front() already returned
    uint64_t queued_bytes_ = 0;
    std::vector<uint8_t> urgent_;             // hold sites' rows: returned first
    bool drainer_stop_ = false;
    // Holds: the probe ids of hold sites; objects (dev, inode) known to have
    // no USDT notes; per held process, the objects with notes it had mapped
    // when its last hold went to the caller (who then looked at them all).
    std::set<uint32_t> hold_probes_;
    std::set<std::pair<uint64_t, uint64_t>> no_notes_;
    std::map<uint32_t, std::set<std::pair<uint64_t, uint64_t>>> seen_with_notes_;
    uint64_t holds_resumed_ = 0;
    std::atomic<uint64_t> late_wakeups_{0};
};


}  // namespace pyusdt
