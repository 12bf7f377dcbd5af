// The strings of an ELF note's payload, as the stapsdt note and pyusdt's own
// provider note both lay them out: NUL-terminated, one after another.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pyusdt {

// Reads one NUL-terminated string of `desc` from `pos` into `out` and moves
// `pos` past it; false (nothing read) when no NUL ends it.
inline bool take_note_string(std::string_view desc, size_t &pos, std::string &out) {
    size_t end = desc.find('\0', pos);
    if (end == std::string_view::npos)
        return false;
    out.assign(desc.substr(pos, end - pos));
    pos = end + 1;
    return true;
}

}  // namespace pyusdt
