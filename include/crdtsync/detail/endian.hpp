#pragma once
// Big-endian fixed-width integer helpers used by every binary layout
// (HLC bytes, keys, records). Big-endian so that memcmp order == numeric order.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

// UInt in big-endian byte order from native order, and back.
template <class UInt>
[[nodiscard]] constexpr UInt to_big_endian(UInt v) noexcept {
    if constexpr (std::endian::native == std::endian::big || sizeof(UInt) == 1) return v;
    else if constexpr (sizeof(UInt) == 2) return static_cast<UInt>(__builtin_bswap16(v));
    else if constexpr (sizeof(UInt) == 4) return static_cast<UInt>(__builtin_bswap32(v));
    else return static_cast<UInt>(__builtin_bswap64(v));
}

// The UInt at `p` in native byte order (any alignment).
template <class UInt>
[[nodiscard]] inline UInt load_native(const void* p) noexcept {
    UInt v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <class UInt>
inline void store_be(unsigned char* p, UInt v) noexcept {
    v = to_big_endian(v);
    std::memcpy(p, &v, sizeof v);
}

template <class UInt>
inline void put_be(std::string& out, UInt v) {
    unsigned char buf[sizeof(UInt)];
    store_be<UInt>(buf, v);
    out.append(reinterpret_cast<const char*>(buf), sizeof(UInt));
}

template <class UInt>
[[nodiscard]] constexpr UInt load_be(const unsigned char* p) noexcept {
    if (std::is_constant_evaluated()) {
        UInt v = 0;
        for (std::size_t i = 0; i < sizeof(UInt); ++i) v = static_cast<UInt>((v << 8) | p[i]);
        return v;
    }
    return to_big_endian(load_native<UInt>(p));
}

template <class UInt>
[[nodiscard]] inline UInt load_be(std::string_view s, std::size_t at = 0) {
    return load_be<UInt>(reinterpret_cast<const unsigned char*>(s.data()) + at);
}

// same_bytes and compare_bytes sit in the hottest loops (key lookups, name
// resolution) and are small: always inlined (GCC and Clang).
//
// Byte equality of two short strings (names, keys) without a call into the
// C library: overlapping word loads for up to 16 bytes, memcmp beyond.
[[nodiscard, gnu::always_inline]] inline bool same_bytes(std::string_view a, std::string_view b) noexcept {
    const std::size_t n = a.size();
    if (n != b.size()) return false;
    const char* x = a.data();
    const char* y = b.data();
    if (n >= 8) {
        if (n > 16) return std::memcmp(x, y, n) == 0;
        return load_native<std::uint64_t>(x) == load_native<std::uint64_t>(y) &&
               load_native<std::uint64_t>(x + n - 8) == load_native<std::uint64_t>(y + n - 8);
    }
    if (n >= 4)
        return load_native<std::uint32_t>(x) == load_native<std::uint32_t>(y) &&
               load_native<std::uint32_t>(x + n - 4) == load_native<std::uint32_t>(y + n - 4);
    for (std::size_t i = 0; i < n; ++i)
        if (x[i] != y[i]) return false;
    return true;
}

// Three-way comparison of two byte strings as unsigned bytes, shorter first
// on a common prefix (the order of std::string_view::compare), without a
// call into the C library for short keys: big-endian word loads.
[[nodiscard, gnu::always_inline]] inline int compare_bytes(std::string_view a, std::string_view b) noexcept {
    const std::size_t n = a.size() < b.size() ? a.size() : b.size();
    const auto* x = reinterpret_cast<const unsigned char*>(a.data());
    const auto* y = reinterpret_cast<const unsigned char*>(b.data());
    if (n >= 8) {
        for (std::size_t i = 0;; i += 8) {
            // The last word overlaps the one before it, whose bytes are equal.
            const std::size_t at = i + 8 <= n ? i : n - 8;
            const auto u = load_be<std::uint64_t>(x + at);
            const auto v = load_be<std::uint64_t>(y + at);
            if (u != v) return u < v ? -1 : 1;
            if (at + 8 >= n) break;
        }
    } else {
        for (std::size_t i = 0; i < n; ++i)
            if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    }
    return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
}

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
