#pragma once
/// \file site_id.hpp
/// `site_id`: the 16-byte identity of a replica (a UUIDv4). Ordered as unsigned
/// bytes; its text form is base64url without padding, exactly 22 characters.

#include <algorithm>
#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <random>
#include <string>
#include <string_view>

#include <crdtsync/detail/base64.hpp>
#include <crdtsync/detail/endian.hpp>
#include <crdtsync/error.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// The identity of one replica. Value type: 16 bytes, compared as unsigned bytes.
class site_id {
public:
    static constexpr std::size_t size = 16;
    static constexpr std::size_t text_size = 22;
    using bytes_type = std::array<std::uint8_t, size>;

    /// The all-zero id. Never produced by `generate()`.
    constexpr site_id() noexcept = default;
    constexpr explicit site_id(const bytes_type& b) noexcept : bytes_(b) {}

    /// A fresh random UUIDv4 (version nibble 4, variant bits 10): 122 bits
    /// from the operating system's random source.
    [[nodiscard]] static site_id generate() {
        // Every id is drawn from std::random_device itself rather than from a
        // seeded engine: an engine holds state that fork() copies (parent and
        // child would then make the same next id) and carries no more entropy
        // than its seed.
        std::random_device rd;
        bytes_type b{};
        for (std::size_t i = 0; i < size; i += 4) {
            const std::uint32_t r = static_cast<std::uint32_t>(rd());
            for (std::size_t j = 0; j < 4; ++j) b[i + j] = static_cast<std::uint8_t>(r >> (8 * j));
        }
        b[6] = static_cast<std::uint8_t>((b[6] & 0x0F) | 0x40);
        b[8] = static_cast<std::uint8_t>((b[8] & 0x3F) | 0x80);
        return site_id{b};
    }

    /// Parses the 22-character base64url text form.
    /// \throws parse_error (`errc::invalid_site_id`) naming what was wrong.
    [[nodiscard]] static site_id from_text(std::string_view text) {
        if (text.size() != text_size)
            detail::raise(errc::invalid_site_id,
                          "site id text must be exactly 22 base64url characters, got " +
                              std::to_string(text.size()) + " characters");
        if (const auto at = detail::base64_invalid_at(text, /*url=*/true); at != std::string_view::npos)
            detail::raise(errc::invalid_site_id,
                          "site id text has " + detail::describe_char(text[at]) + " at position " +
                              std::to_string(at) +
                              ", which is not a base64url character (A-Z a-z 0-9 - _, no padding)");
        auto raw = detail::base64_decode(text, /*url=*/true);
        // 22 characters carry 132 bits for 128: the last character's low four
        // bits must be zero, so that every id has exactly one text form.
        if (!raw || raw->size() != size)
            detail::raise(errc::invalid_site_id,
                          "site id text is not canonical: its last character " +
                              detail::describe_char(text.back()) +
                              " sets padding bits that must be zero");
        return from_bytes(*raw);
    }

    /// Reads 16 raw bytes. \throws parse_error on any other length.
    [[nodiscard]] static site_id from_bytes(std::string_view raw) {
        if (raw.size() != size)
            detail::raise(errc::invalid_site_id,
                          "site id must be 16 bytes, got " + std::to_string(raw.size()));
        bytes_type b{};
        std::copy(raw.begin(), raw.end(), reinterpret_cast<char*>(b.data()));
        return site_id{b};
    }

    /// The 22-character base64url text form.
    [[nodiscard]] std::string to_text() const {
        std::string out;
        detail::base64_encode_to(out, bytes_.data(), size, detail::b64_url, false);
        return out;
    }

    /// Writes `to_text()` (include <ostream> where it is used).
    template <class Traits>
    friend std::basic_ostream<char, Traits>& operator<<(std::basic_ostream<char, Traits>& os, const site_id& s) {
        return os << s.to_text();
    }

    [[nodiscard]] constexpr const bytes_type& bytes() const noexcept { return bytes_; }
    /// The raw bytes as a string view (for keys).
    [[nodiscard]] std::string_view view() const noexcept {
        return {reinterpret_cast<const char*>(bytes_.data()), size};
    }
    [[nodiscard]] constexpr bool is_nil() const noexcept {
        return std::all_of(bytes_.begin(), bytes_.end(), [](auto b) { return b == 0; });
    }

    /// Unsigned byte order (as two big-endian words: every HLC comparison
    /// that reaches the site compares these).
    friend constexpr std::strong_ordering operator<=>(const site_id& a, const site_id& b) noexcept {
        const auto ah = detail::load_be<std::uint64_t>(a.bytes_.data());
        const auto bh = detail::load_be<std::uint64_t>(b.bytes_.data());
        if (ah != bh) return ah <=> bh;
        return detail::load_be<std::uint64_t>(a.bytes_.data() + 8) <=> detail::load_be<std::uint64_t>(b.bytes_.data() + 8);
    }
    friend constexpr bool operator==(const site_id&, const site_id&) noexcept = default;

private:
    bytes_type bytes_{};
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync

template <>
struct std::hash<crdtsync::site_id> {
    std::size_t operator()(const crdtsync::site_id& s) const noexcept {
        return std::hash<std::string_view>{}(s.view());
    }
};
