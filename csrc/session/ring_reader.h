// The consuming side of a BPF ring buffer, read through its own mappings.
//
// libbpf's ring_buffer__consume hands records to a callback one at a time
// and publishes the consumer position after each: every record then moves
// the consumer page's cache line to the reader's CPU and back to the next
// producer's, whose reserve reads it.  Here the position is published once
// per `release_bytes` of records read (and at the end of a pass), so a
// producer finds the line where it left it most of the time, and records
// are read in place without a call per record.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pyusdt {

class RingReader {
  public:
    // `map_fd` is a BPF_MAP_TYPE_RINGBUF of `data_bytes` (its max_entries).
    RingReader(int map_fd, uint64_t data_bytes);
    ~RingReader();
    RingReader(const RingReader &) = delete;
    RingReader &operator=(const RingReader &) = delete;

    // Calls visit(const uint8_t *record, uint32_t len) for each committed
    // record in order, at most `max_records`; stops early (the record not
    // consumed) when visit returns false.  Returns the records consumed.
    // The space they held is released every `release_bytes` and before
    // returning, never before visit has returned for a record.
    template <typename Visit>
    size_t consume(size_t max_records, uint64_t release_bytes, Visit &&visit);

    // Bytes the producers have reserved or committed that are not consumed.
    uint64_t pending() const;
    // The last consume() stopped at a record reserved but not yet committed
    // (a producer is still writing it; those behind it wait).
    bool stopped_at_busy() const { return stopped_at_busy_; }
    uint64_t data_bytes() const { return mask_ + 1; }

  private:
    uint64_t *consumer_ = nullptr;        // the consumer page (ours to write)
    const uint64_t *producer_ = nullptr;  // the producer page, then the data mapped twice
    const uint8_t *data_ = nullptr;
    uint64_t mask_ = 0;
    size_t page_ = 0;
    void *prod_map_ = nullptr;
    size_t prod_map_len_ = 0;
    bool stopped_at_busy_ = false;
};

// The kernel's record header (include/uapi/linux/bpf.h, BPF_RINGBUF_*).
constexpr uint32_t kRingBusyBit = 1u << 31;
constexpr uint32_t kRingDiscardBit = 1u << 30;
constexpr uint32_t kRingHeaderBytes = 8;

template <typename Visit>
size_t RingReader::consume(size_t max_records, uint64_t release_bytes, Visit &&visit) {
    uint64_t cons = __atomic_load_n(consumer_, __ATOMIC_ACQUIRE);
    uint64_t released = cons;
    size_t n = 0;
    bool stop = false;
    stopped_at_busy_ = false;
    while (!stop && n < max_records) {
        uint64_t prod = __atomic_load_n(producer_, __ATOMIC_ACQUIRE);
        if (cons >= prod)
            break;
        while (cons < prod && n < max_records) {
            const uint8_t *hdr = data_ + (cons & mask_);
            uint32_t word = __atomic_load_n(reinterpret_cast<const uint32_t *>(hdr), __ATOMIC_ACQUIRE);
            if (word & kRingBusyBit) {  // reserved, not yet committed: later records wait for it
                stop = stopped_at_busy_ = true;
                break;
            }
            uint32_t len = word & ~(kRingBusyBit | kRingDiscardBit);
            uint64_t next = cons + ((len + kRingHeaderBytes + 7) & ~uint64_t(7));
            if (!(word & kRingDiscardBit)) {
                if (!visit(hdr + kRingHeaderBytes, len)) {
                    stop = true;
                    break;
                }
                n++;
            }
            cons = next;
            if (cons - released >= release_bytes) {
                __atomic_store_n(consumer_, cons, __ATOMIC_RELEASE);
                released = cons;
            }
        }
    }
    if (cons != released)
        __atomic_store_n(consumer_, cons, __ATOMIC_RELEASE);
    return n;
}

}  // namespace pyusdt
