#pragma once
// Base64 (RFC 4648 section 4, padded) and base64url (section 5, unpadded)
// codecs. Decoders return std::nullopt on any malformed input; callers turn
// that into a typed error naming the field.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

inline constexpr std::string_view b64_std =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
inline constexpr std::string_view b64_url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

inline constexpr std::array<std::int8_t, 256> make_b64_table(std::string_view alphabet) {
    std::array<std::int8_t, 256> t{};
    for (auto& v : t) v = -1;
    for (std::size_t i = 0; i < alphabet.size(); ++i)
        t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
    return t;
}
inline constexpr auto b64_std_table = make_b64_table(b64_std);
inline constexpr auto b64_url_table = make_b64_table(b64_url);

/// Encodes `n` bytes into exactly `(4 * n + 2) / 3` characters at `out`,
/// unpadded (the fixed-size fields, HLCs and site ids, need no allocation).
inline void base64_encode_fixed(const unsigned char* data, std::size_t n, char* out,
                                std::string_view alphabet) noexcept {
    std::size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        const std::uint32_t v = (std::uint32_t(data[i]) << 16) | (std::uint32_t(data[i + 1]) << 8) | data[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 0) return;
    const std::uint32_t v = (std::uint32_t(data[i]) << 16) | (n - i == 2 ? std::uint32_t(data[i + 1]) << 8 : 0);
    out[o++] = alphabet[(v >> 18) & 63];
    out[o++] = alphabet[(v >> 12) & 63];
    if (n - i == 2) out[o++] = alphabet[(v >> 6) & 63];
}

/// Encodes bytes; `pad` appends '=' to a multiple of four characters.
inline void base64_encode_to(std::string& out, const unsigned char* data, std::size_t n,
                             std::string_view alphabet, bool pad) {
    const std::size_t at = out.size(), chars = (4 * n + 2) / 3;
    out.resize(at + chars);
    base64_encode_fixed(data, n, out.data() + at, alphabet);
    if (pad) out.append((4 - chars % 4) % 4, '=');
}

[[nodiscard]] inline std::string base64_encode(std::string_view bytes, bool url = false) {
    std::string out;
    base64_encode_to(out, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                     url ? b64_url : b64_std, !url);
    return out;
}

/// Index of the first character of `text` outside the alphabet ('=' included),
/// or `std::string_view::npos`. Lets callers name the offending character.
[[nodiscard]] inline std::size_t base64_invalid_at(std::string_view text, bool url = false) noexcept {
    const auto& table = url ? b64_url_table : b64_std_table;
    for (std::size_t i = 0; i < text.size(); ++i)
        if (table[static_cast<unsigned char>(text[i])] < 0) return i;
    return std::string_view::npos;
}

/// A character quoted for an error message: `'+'`, or `byte 0x0a` when it is
/// not printable ASCII.
[[nodiscard]] inline std::string describe_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
    static constexpr char hex[] = "0123456789abcdef";
    return std::string("byte 0x") + hex[u >> 4] + hex[u & 15];
}

/// Decodes exactly `text.size()` characters (size % 4 != 1, no padding) into
/// `3 * size / 4` bytes at `out`; false on any character outside the
/// alphabet or non-zero trailing bits.
inline bool base64_decode_fixed(std::string_view text, unsigned char* out,
                                const std::array<std::int8_t, 256>& table) noexcept {
    std::uint32_t acc = 0;
    int bits = 0;
    std::size_t o = 0;
    for (char ch : text) {
        const int v = table[static_cast<unsigned char>(ch)];
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = static_cast<unsigned char>((acc >> bits) & 0xFF);
        }
    }
    return bits == 0 || (acc & ((1u << bits) - 1)) == 0;
}

/// Decodes `n` groups of four standard base64 characters from `in` into
/// 3 * n bytes at `out`; false if any character is outside the alphabet.
/// Branch-free over the groups (the HLC decoder's inner loop).
inline bool base64_decode_groups(const char* in, std::size_t n, unsigned char* out) noexcept {
    const auto& table = b64_std_table;
    int bad = 0; // negative once any character is outside the alphabet
    for (std::size_t g = 0; g < n; ++g, in += 4, out += 3) {
        const int a = table[static_cast<unsigned char>(in[0])], b = table[static_cast<unsigned char>(in[1])],
                  c = table[static_cast<unsigned char>(in[2])], d = table[static_cast<unsigned char>(in[3])];
        bad |= a | b | c | d;
        const std::uint32_t v = (std::uint32_t(a & 63) << 18) | (std::uint32_t(b & 63) << 12) |
                                (std::uint32_t(c & 63) << 6) | std::uint32_t(d & 63);
        out[0] = static_cast<unsigned char>(v >> 16);
        out[1] = static_cast<unsigned char>(v >> 8);
        out[2] = static_cast<unsigned char>(v);
    }
    return bad >= 0;
}

/// Strict decoder: standard alphabet requires correct '=' padding; url alphabet
/// forbids padding. Non-zero trailing bits are rejected so every byte string
/// has exactly one text form.
[[nodiscard]] inline std::optional<std::string> base64_decode(std::string_view text, bool url = false) {
    const auto& table = url ? b64_url_table : b64_std_table;
    std::size_t len = text.size();
    if (!url) {
        if (len % 4 != 0) return std::nullopt;
        if (len >= 1 && text[len - 1] == '=') --len;
        if (len >= 1 && text[len - 1] == '=') --len;
    }
    if (len % 4 == 1) return std::nullopt;
    std::string out(len * 3 / 4, '\0');
    if (!base64_decode_fixed(text.substr(0, len), reinterpret_cast<unsigned char*>(out.data()), table))
        return std::nullopt;
    return out;
}

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
