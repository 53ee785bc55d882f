#pragma once
/// \file hlc.hpp
/// `hlc`: a hybrid logical clock timestamp (Kulkarni, Demirbas et al. 2014,
/// "Logical Physical Clocks"), extended with the writing site and the fact's
/// position inside its transaction, as in the Quereus wire format.
///
/// Order: (wall_time, counter, site bytes, op_seq). The 30-byte big-endian
/// encoding sorts byte-wise exactly like that order.

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <iosfwd>
#include <string>
#include <string_view>

#include <crdtsync/detail/base64.hpp>
#include <crdtsync/detail/endian.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/site_id.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// One HLC timestamp. Aggregate; the default value is the zero timestamp,
/// lower than every timestamp a clock produces.
struct hlc {
    static constexpr std::size_t byte_size = 30;
    static constexpr std::size_t text_size = 40;
    using bytes_type = std::array<unsigned char, byte_size>;

    std::uint64_t wall_time = 0; ///< milliseconds since the Unix epoch
    std::uint16_t counter = 0;   ///< logical counter within one wall_time
    site_id site{};              ///< the replica that wrote the fact
    std::uint32_t op_seq = 0;    ///< position of the fact inside its transaction

    friend constexpr auto operator<=>(const hlc&, const hlc&) noexcept = default;
    friend constexpr bool operator==(const hlc&, const hlc&) noexcept = default;

    /// The same transaction position with another op_seq.
    [[nodiscard]] constexpr hlc with_op_seq(std::uint32_t seq) const noexcept {
        hlc h = *this;
        h.op_seq = seq;
        return h;
    }
    /// True when both name the same source transaction (all but op_seq equal).
    [[nodiscard]] constexpr bool same_transaction(const hlc& o) const noexcept {
        return wall_time == o.wall_time && counter == o.counter && site == o.site;
    }

    /// `u64 wall | u16 counter | 16B site | u32 op_seq`, big-endian.
    [[nodiscard]] bytes_type to_bytes() const noexcept {
        bytes_type b{};
        write_bytes(b.data());
        return b;
    }
    void write_bytes(unsigned char* p) const noexcept {
        detail::store_be<std::uint64_t>(p, wall_time);
        detail::store_be<std::uint16_t>(p + 8, counter);
        std::memcpy(p + 10, site.bytes().data(), site_id::size);
        detail::store_be<std::uint32_t>(p + 26, op_seq);
    }
    void append_bytes(std::string& out) const {
        const auto b = to_bytes();
        out.append(reinterpret_cast<const char*>(b.data()), b.size());
    }

    /// Reads 30 bytes. \throws parse_error (`errc::invalid_hlc`) on any other length.
    [[nodiscard]] static hlc from_bytes(std::string_view raw) {
        if (raw.size() != byte_size)
            detail::raise(errc::invalid_hlc,
                          "an HLC must be 30 bytes, got " + std::to_string(raw.size()));
        return read_bytes(reinterpret_cast<const unsigned char*>(raw.data()));
    }
    /// Reads 30 bytes from p (caller guarantees the length).
    [[nodiscard]] static hlc read_bytes(const unsigned char* p) noexcept {
        hlc h;
        h.wall_time = detail::load_be<std::uint64_t>(p);
        h.counter = detail::load_be<std::uint16_t>(p + 8);
        site_id::bytes_type s{};
        std::memcpy(s.data(), p + 10, site_id::size);
        h.site = site_id{s};
        h.op_seq = detail::load_be<std::uint32_t>(p + 26);
        return h;
    }

    /// Standard base64 of the 30 bytes: 40 characters, no padding.
    [[nodiscard]] std::string to_text() const {
        const auto b = to_bytes();
        std::string out;
        detail::base64_encode_to(out, b.data(), b.size(), detail::b64_std, true);
        return out;
    }
    /// Parses the 40-character text form. \throws parse_error naming the problem.
    [[nodiscard]] static hlc from_text(std::string_view text) {
        if (text.size() != text_size)
            detail::raise(errc::invalid_hlc, "expected a 40-character base64 HLC, got " +
                                                 std::to_string(text.size()) + " characters");
        // 30 bytes are exactly 40 characters, so there is no padding and no
        // spare bit: any 40 alphabet characters decode to a valid HLC.
        if (const auto at = detail::base64_invalid_at(text, /*url=*/false); at != std::string_view::npos) {
            if (text[at] == '=')
                detail::raise(errc::invalid_hlc, "HLC text has '=' at position " + std::to_string(at) +
                                                     ": 30 bytes encode to 40 characters without padding");
            detail::raise(errc::invalid_hlc, "HLC text has " + detail::describe_char(text[at]) +
                                                 " at position " + std::to_string(at) +
                                                 ", which is not a standard base64 character (A-Z a-z 0-9 + /)");
        }
        auto raw = detail::base64_decode(text, /*url=*/false);
        if (!raw)
            detail::raise(errc::invalid_hlc, "HLC text is not valid standard base64: \"" +
                                                 std::string(text) + "\"");
        return from_bytes(*raw);
    }

    /// Writes `to_text()` (include <ostream> where it is used).
    template <class Traits>
    friend std::basic_ostream<char, Traits>& operator<<(std::basic_ostream<char, Traits>& os, const hlc& h) {
        return os << h.to_text();
    }

    /// `"<wall>:<counter>:<site text>"`: the Quereus transaction id of the
    /// transaction this timestamp belongs to.
    [[nodiscard]] std::string transaction_id() const {
        return std::to_string(wall_time) + ":" + std::to_string(counter) + ":" + site.to_text();
    }
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
