#pragma once
// UTF-8 validation shared by the wire codec (text it reads and writes) and
// the replica (text a write stores must be text every peer can receive).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

/// Length of the valid UTF-8 sequence starting at `s[i]` (a byte >= 0x80), or
/// 0 if it is malformed (overlong, surrogate, beyond U+10FFFF, truncated).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
    const auto b = [&](std::size_t j) { return static_cast<unsigned char>(s[j]); };
    const unsigned char c = b(i);
    const auto cont = [&](std::size_t j) { return j < s.size() && (b(j) & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(i + 1) || !cont(i + 2)) return 0;
        if (c == 0xE0 && b(i + 1) < 0xA0) return 0; // overlong
        if (c == 0xED && b(i + 1) > 0x9F) return 0; // UTF-16 surrogate
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
        if (c == 0xF0 && b(i + 1) < 0x90) return 0; // overlong
        if (c == 0xF4 && b(i + 1) > 0x8F) return 0; // beyond U+10FFFF
        return 4;
    }
    return 0;
}

/// The offset of the first byte of `s` that does not start a valid UTF-8
/// sequence, or `s.size()` when `s` is valid UTF-8. ASCII goes eight bytes
/// a step.
[[nodiscard]] inline std::size_t utf8_invalid_at(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        if (i + 8 <= s.size()) {
            std::uint64_t w;
            std::memcpy(&w, s.data() + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        const std::size_t n = utf8_sequence_length(s, i);
        if (n == 0) return i;
        i += n;
    }
    return s.size();
}

/// `s` with every byte that does not start a valid UTF-8 sequence replaced
/// by U+FFFD: for messages that quote untrusted input and must travel as
/// JSON text.
[[nodiscard]] inline std::string utf8_repaired(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto bad = i + utf8_invalid_at(s.substr(i));
        out.append(s.substr(i, bad - i));
        if (bad >= s.size()) break;
        out.append("\xEF\xBF\xBD");
        i = bad + 1;
    }
    return out;
}

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
