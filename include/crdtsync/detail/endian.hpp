#pragma once
// Big-endian fixed-width integer helpers used by every binary layout
// (HLC bytes, keys, records). Big-endian so that memcmp order == numeric order.

#include <cstdint>
#include <string>
#include <string_view>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

template <class UInt>
inline void put_be(std::string& out, UInt v) {
    char buf[sizeof(UInt)];
    for (std::size_t i = 0; i < sizeof(UInt); ++i)
        buf[i] = static_cast<char>((v >> (8 * (sizeof(UInt) - 1 - i))) & 0xFF);
    out.append(buf, sizeof(UInt));
}

template <class UInt>
inline void store_be(unsigned char* p, UInt v) {
    for (std::size_t i = 0; i < sizeof(UInt); ++i)
        p[i] = static_cast<unsigned char>((v >> (8 * (sizeof(UInt) - 1 - i))) & 0xFF);
}

template <class UInt>
[[nodiscard]] inline UInt load_be(const unsigned char* p) {
    UInt v = 0;
    for (std::size_t i = 0; i < sizeof(UInt); ++i) v = static_cast<UInt>((v << 8) | p[i]);
    return v;
}

template <class UInt>
[[nodiscard]] inline UInt load_be(std::string_view s, std::size_t at = 0) {
    return load_be<UInt>(reinterpret_cast<const unsigned char*>(s.data()) + at);
}

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
