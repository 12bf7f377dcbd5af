#include "session/ring_reader.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

namespace pyusdt {

RingReader::RingReader(int map_fd, uint64_t data_bytes) {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    mask_ = data_bytes - 1;
    // The kernel's layout: the consumer page, the producer page, then the
    // data pages mapped twice in a row, so a record that wraps around the
    // end reads as one piece.
    void *c = mmap(nullptr, page_, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (c == MAP_FAILED)
        throw std::runtime_error(std::string("mapping the ring buffer's consumer page: ") + strerror(errno));
    consumer_ = static_cast<uint64_t *>(c);
    prod_map_len_ = page_ + 2 * data_bytes;
    void *p = mmap(nullptr, prod_map_len_, PROT_READ, MAP_SHARED, map_fd, static_cast<off_t>(page_));
    if (p == MAP_FAILED) {
        int err = errno;
        munmap(c, page_);
        throw std::runtime_error(std::string("mapping the ring buffer's data: ") + strerror(err));
    }
    prod_map_ = p;
    producer_ = static_cast<const uint64_t *>(p);
    data_ = static_cast<const uint8_t *>(p) + page_;
}

RingReader::~RingReader() {
    if (prod_map_)
        munmap(prod_map_, prod_map_len_);
    if (consumer_)
        munmap(consumer_, page_);
}

uint64_t RingReader::pending() const {
    uint64_t prod = __atomic_load_n(producer_, __ATOMIC_ACQUIRE);
    uint64_t cons = __atomic_load_n(consumer_, __ATOMIC_ACQUIRE);
    return prod - cons;
}

}  // namespace pyusdt
