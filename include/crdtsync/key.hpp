#pragma once
/// \file key.hpp
/// `key_codec`: the order-preserving, prefix-free encoding of value tuples that
/// every stored key is built from (in the spirit of FoundationDB's tuple layer).
///
/// Laws (checked on random tuples by tests/core/key_test.cpp):
/// - order: `memcmp(encode(a), encode(b))` has the sign of `a <=> b`, comparing
///   tuples element by element with `value`'s total order, shorter first;
/// - self-delimiting: a tuple decodes unambiguously from the front of any
///   longer encoding, so encoded tuples can be concatenated; every element
///   type byte is below 0xFF, so `tuple_range_end` bounds "all tuples that
///   extend this one" exactly;
/// - round trip: `decode(encode(t)) == t`.
///
/// Element layout (type byte, then payload):
///   0x01 null | 0x02 false | 0x03 true
///   0x0F negative big integer: ~u16 digit count, then ~digits
///   0x10 int64: 8 bytes big-endian with the sign bit flipped
///   0x11 positive big integer: u16 digit count, then digits
///   0x20 real: 8 bytes big-endian IEEE, negatives inverted, positives sign-flipped
///   0x30 text | 0x40 blob | 0x50 json: bytes with 0x00 escaped as 0x00 0xFF, then 0x00

#include <bit>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <crdtsync/detail/endian.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/value.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

struct key_codec {
    enum tag : unsigned char {
        tag_null = 0x01,
        tag_false = 0x02,
        tag_true = 0x03,
        tag_big_negative = 0x0F,
        tag_integer = 0x10,
        tag_big_positive = 0x11,
        tag_real = 0x20,
        tag_text = 0x30,
        tag_blob = 0x40,
        tag_json = 0x50,
    };

    /// Appends one element.
    static void append(std::string& out, const value& v) {
        const auto at = out.size();
        out.resize(at + encoded_size(v));
        (void)write(out.data() + at, v);
    }
    static void append_integer(std::string& out, std::int64_t i) {
        const auto at = out.size();
        out.resize(at + 9);
        (void)write_integer(out.data() + at, i);
    }
    static void append_real(std::string& out, double d) {
        const auto at = out.size();
        out.resize(at + 9);
        (void)write_real(out.data() + at, d);
    }

    /// The number of bytes `write` (and `append`) produce for `v`.
    [[nodiscard]] static std::size_t encoded_size(const value& v) noexcept {
        switch (v.kind()) {
        case value_kind::null:
        case value_kind::boolean: return 1;
        case value_kind::integer:
        case value_kind::real: return 9;
        case value_kind::big_integer: return 3 + v.get_if<big_integer>()->digits().size();
        case value_kind::text: return bytes_size(*v.get_if<std::string>());
        case value_kind::blob: return bytes_size(v.get_if<blob>()->bytes);
        case value_kind::json: return bytes_size(v.get_if<json_text>()->text);
        }
        return 0;
    }

    /// Writes one element at `p`: exactly `encoded_size(v)` bytes. Returns
    /// the end of what it wrote.
    static char* write(char* p, const value& v) noexcept {
        switch (v.kind()) {
        case value_kind::null: *p = char(tag_null); return p + 1;
        case value_kind::boolean: *p = char(*v.get_if<bool>() ? tag_true : tag_false); return p + 1;
        case value_kind::integer: return write_integer(p, *v.get_if<std::int64_t>());
        case value_kind::big_integer: {
            const auto d = v.get_if<big_integer>()->digits();
            const bool neg = v.get_if<big_integer>()->negative();
            *p++ = char(neg ? tag_big_negative : tag_big_positive);
            const auto n = static_cast<std::uint16_t>(d.size());
            detail::store_be<std::uint16_t>(reinterpret_cast<unsigned char*>(p), neg ? static_cast<std::uint16_t>(~n) : n);
            p += 2;
            for (char c : d) *p++ = neg ? static_cast<char>(~static_cast<unsigned char>(c)) : c;
            return p;
        }
        case value_kind::real: return write_real(p, *v.get_if<double>());
        case value_kind::text: return write_bytes(p, tag_text, *v.get_if<std::string>());
        case value_kind::blob: return write_bytes(p, tag_blob, v.get_if<blob>()->bytes);
        case value_kind::json: return write_bytes(p, tag_json, v.get_if<json_text>()->text);
        }
        return p;
    }
    static char* write_integer(char* p, std::int64_t i) noexcept {
        *p = char(tag_integer);
        detail::store_be<std::uint64_t>(reinterpret_cast<unsigned char*>(p + 1), static_cast<std::uint64_t>(i) ^ (std::uint64_t(1) << 63));
        return p + 9;
    }
    static char* write_real(char* p, double d) noexcept {
        *p = char(tag_real);
        auto bits = std::bit_cast<std::uint64_t>(d);
        bits = (bits >> 63) ? ~bits : bits ^ (std::uint64_t(1) << 63);
        detail::store_be<std::uint64_t>(reinterpret_cast<unsigned char*>(p + 1), bits);
        return p + 9;
    }
    // Text, blob and json: the bytes with each 0x00 escaped as 0x00 0xFF,
    // then a terminating 0x00.
    [[nodiscard]] static std::size_t bytes_size(std::string_view bytes) noexcept {
        std::size_t n = bytes.size() + 2;
        for (const char* z = bytes.data(), *end = z + bytes.size();
             (z = static_cast<const char*>(std::memchr(z, 0, static_cast<std::size_t>(end - z)))) != nullptr; ++z)
            ++n;
        return n;
    }
    static char* write_bytes(char* p, unsigned char t, std::string_view bytes) noexcept {
        *p++ = char(t);
        const char* in = bytes.data();
        const char* const end = in + bytes.size();
        while (in != end) {
            const auto* z = static_cast<const char*>(std::memchr(in, 0, static_cast<std::size_t>(end - in)));
            const std::size_t run = z ? static_cast<std::size_t>(z - in) + 1 : static_cast<std::size_t>(end - in);
            std::memcpy(p, in, run);
            p += run;
            in += run;
            if (z) *p++ = '\xFF';
        }
        *p++ = '\0';
        return p;
    }

    /// The encoding of a whole tuple.
    [[nodiscard]] static std::string encode(std::span<const value> tuple) {
        std::string out;
        for (const auto& v : tuple) append(out, v);
        return out;
    }
    [[nodiscard]] static std::string encode(std::initializer_list<value> tuple) {
        return encode(std::span<const value>(tuple.begin(), tuple.size()));
    }

    /// Reads one element from the front of `in` and advances past it.
    /// \throws parse_error (`errc::invalid_key`) on truncated or malformed input.
    [[nodiscard]] static value read(std::string_view& in) {
        if (in.empty()) fail("empty input where an element was expected");
        const auto t = static_cast<unsigned char>(in.front());
        in.remove_prefix(1);
        switch (t) {
        case tag_null: return value{};
        case tag_false: return value{false};
        case tag_true: return value{true};
        case tag_integer: {
            need(in, 8, "integer");
            const auto u = detail::load_be<std::uint64_t>(in) ^ (std::uint64_t(1) << 63);
            in.remove_prefix(8);
            return value{static_cast<std::int64_t>(u)};
        }
        case tag_big_negative:
        case tag_big_positive: {
            const bool neg = t == tag_big_negative;
            need(in, 2, "big integer length");
            auto n = detail::load_be<std::uint16_t>(in);
            if (neg) n = static_cast<std::uint16_t>(~n);
            in.remove_prefix(2);
            need(in, n, "big integer digits");
            // Validated here rather than by big_integer::parse, whose error
            // (errc::invalid_value) would misreport a corrupt key.
            if (n == 0 || n > big_integer::max_digits) fail("big integer element has a bad digit count");
            std::string text = neg ? "-" : "";
            for (std::size_t i = 0; i < n; ++i) {
                const char c = neg ? static_cast<char>(~static_cast<unsigned char>(in[i])) : in[i];
                if (c < '0' || c > '9' || (i == 0 && c == '0')) fail("big integer element has a bad digit");
                text.push_back(c);
            }
            in.remove_prefix(n);
            value v{big_integer::parse(text)};
            if (v.kind() != value_kind::big_integer) fail("big integer element holds an int64 value");
            return v;
        }
        case tag_real: {
            need(in, 8, "real");
            auto bits = detail::load_be<std::uint64_t>(in);
            in.remove_prefix(8);
            bits = (bits >> 63) ? bits ^ (std::uint64_t(1) << 63) : ~bits;
            const double d = std::bit_cast<double>(bits);
            if (d != d) fail("real element holds NaN");
            return value{d};
        }
        case tag_text: return value{read_bytes(in)};
        case tag_blob: return value{blob{read_bytes(in)}};
        case tag_json: return value{json_text{read_bytes(in)}};
        default: fail("unknown element type byte " + std::to_string(t));
        }
    }

    /// Decodes a whole tuple. \throws parse_error on malformed input.
    [[nodiscard]] static std::vector<value> decode(std::string_view in) {
        std::vector<value> out;
        while (!in.empty()) out.push_back(read(in));
        return out;
    }

    /// Skips one element; returns false at end of input. Accepts and rejects
    /// exactly what `read` does (\throws parse_error like `read`).
    static bool skip(std::string_view& in) {
        if (in.empty()) return false;
        const auto t = static_cast<unsigned char>(in.front());
        switch (t) {
        case tag_null: case tag_false: case tag_true: in.remove_prefix(1); return true;
        case tag_integer: need(in, 9, "integer"); in.remove_prefix(9); return true;
        default: {
            std::string_view copy = in;
            (void)read(copy);
            in = copy;
            return true;
        }
        }
    }

    /// The exclusive upper bound of a scan over every key that extends the
    /// encoded tuple prefix `prefix` by more elements. It is `prefix + 0xFF`:
    /// every element type byte is below 0xFF, while a longer text or blob
    /// element (which shares the bytes up to its escaped 0x00) continues with
    /// 0xFF and so falls outside the range.
    [[nodiscard]] static std::string tuple_range_end(std::string_view prefix) {
        std::string s(prefix);
        s.push_back('\xFF');
        return s;
    }

private:
    static std::string read_bytes(std::string_view& in) {
        std::string out;
        for (;;) {
            const auto* z = static_cast<const char*>(std::memchr(in.data(), 0, in.size()));
            if (z == nullptr) fail("unterminated text/blob element");
            const auto i = static_cast<std::size_t>(z - in.data());
            if (i + 1 < in.size() && static_cast<unsigned char>(in[i + 1]) == 0xFF) { // an escaped 0x00
                out.append(in.data(), i + 1);
                in.remove_prefix(i + 2);
                continue;
            }
            out.append(in.data(), i);
            in.remove_prefix(i + 1);
            return out;
        }
    }
    static void need(std::string_view in, std::size_t n, const char* what) {
        if (in.size() < n) fail(std::string("truncated ") + what);
    }
    [[noreturn]] static void fail(const std::string& why) {
        detail::raise(errc::invalid_key, "malformed encoded key: " + why);
    }
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
