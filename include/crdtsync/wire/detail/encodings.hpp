#pragma once
// The encodings of the wire's leaf values, both ways: HLCs (standard base64),
// site ids (base64url), cell values (tagged __bin / __bigint, canonical JSON
// cells), strings, arrays and row keys.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <crdtsync/detail/base64.hpp>
#include <crdtsync/detail/endian.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/hlc.hpp>
#include <crdtsync/site_id.hpp>
#include <crdtsync/change.hpp>
#include <crdtsync/value.hpp>
#include <crdtsync/wire/detail/reader.hpp>
#include <crdtsync/wire/detail/writer.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {
namespace detail {

using ::crdtsync::detail::base64_decode_fixed;
using ::crdtsync::detail::base64_decode_groups;
using ::crdtsync::detail::base64_encode_fixed;

/// `key == literal`, with a compile-time length so the comparison inlines
/// (member dispatch is the decoders' inner loop).
template <std::size_t N>
[[nodiscard]] inline bool key_is(std::string_view key, const char (&literal)[N]) noexcept {
    return key.size() == N - 1 && std::memcmp(key.data(), literal, N - 1) == 0;
}

/// Presence flags of required members, checked after an object is read.
inline void require(bool present, const path& p, std::string_view key) {
    if (!present) fail(p / key, "required member is missing");
}

/// The HLC that 40 characters of text encode; false if any is outside the
/// standard base64 alphabet. `memo` holds the last HLC decoded: when the
/// first 32 characters are its own (same wall time, counter and site but its
/// last two bytes: the facts of one transaction) they were checked and
/// decoded then, and only the last 8 characters (6 bytes) are decoded.
inline bool decode_hlc_text(std::string_view s, reader::hlc_memo& memo, hlc& out) noexcept {
    static_assert(hlc::text_size == 40 && hlc::byte_size == 30, "10 groups of 4 characters, 3 bytes each");
    constexpr std::size_t shared_chars = 32, shared_bytes = 24;
    if (memo.valid && std::memcmp(s.data(), memo.text.data(), shared_chars) == 0) {
        unsigned char tail[hlc::byte_size - shared_bytes]; // site id bytes 14 and 15, op_seq
        if (!base64_decode_groups(s.data() + shared_chars, 2, tail)) return false;
        site_id::bytes_type site = memo.value.site.bytes();
        site[14] = tail[0];
        site[15] = tail[1];
        memo.value.site = site_id{site};
        memo.value.op_seq = ::crdtsync::detail::load_be<std::uint32_t>(tail + 2);
        std::memcpy(memo.text.data() + shared_chars, s.data() + shared_chars, hlc::text_size - shared_chars);
        out = memo.value;
        return true;
    }
    unsigned char raw[hlc::byte_size];
    if (!base64_decode_groups(s.data(), 10, raw)) return false;
    out = hlc::read_bytes(raw);
    std::memcpy(memo.text.data(), s.data(), hlc::text_size);
    memo.value = out;
    memo.valid = true;
    return true;
}

inline void read(reader& r, const path& p, hlc& out) {
    // Base64 characters need neither escapes nor a scan for the string's
    // end: 40 of them between two quotes are the whole string.
    if (const std::string_view s = r.peek_string_of_size(hlc::text_size);
        !s.empty() && decode_hlc_text(s, r.last_hlc, out)) {
        r.take_string(p, hlc::text_size);
        return;
    }
    std::string scratch;
    const std::string_view s = r.string(p, scratch, "a 40-character base64 HLC");
    if (s.size() == hlc::text_size && decode_hlc_text(s, r.last_hlc, out)) return; // written with escapes
    try {
        out = hlc::from_text(s); // for its precise message
    } catch (const ::crdtsync::error& e) {
        fail(p, e.message());
    }
}

inline void read(reader& r, const path& p, site_id& out) {
    std::string scratch;
    const std::string_view s = r.string(p, scratch, "a 22-character base64url site id");
    site_id::bytes_type raw{};
    if (s.size() == site_id::text_size && base64_decode_fixed(s, raw.data(), ::crdtsync::detail::b64_url_table)) {
        out = site_id{raw};
        return;
    }
    try {
        out = site_id::from_text(s);
    } catch (const ::crdtsync::error& e) {
        fail(p, e.message());
    }
}

inline void read(reader& r, const path& p, std::string& out) {
    std::string scratch; // for a string written with escapes
    const std::string_view v = r.string(p, scratch);
    out.clear(); // then append: cheaper than assign, which allows for overlap
    out.append(v.data(), v.size());
}

template <class Sink>
void write_dom(Sink& s, const json& j);

/// The canonical text of a JSON object or array cell value: compact, members
/// sorted by name (bytewise), numbers and strings as JSON.stringify writes them.
inline std::string canonical_json_text(const json& doc) {
    text_sink t;
    write_dom(t, doc);
    return std::move(t.out);
}

/// JSON (and JavaScript) have one number type: an integral number is an
/// integer however it is written (2, 2.0, 2e0), anything else a real. The
/// column type decides what a replica stores.
///
/// Passes the number to `make` as the argument of a `value` constructor, so
/// that the caller can construct the value where it belongs.
template <class Make>
void make_number_value(const number_token& n, Make&& make) {
    switch (n.kind) {
    case number_token::int64: make(n.i); return;
    case number_token::uint64: make(n.u); return; // beyond int64: a big integer
    case number_token::real: break;
    }
    const double d = n.d;
    if (!std::isfinite(d)) return make(nullptr); // NaN and infinities are null on the wire
    // An integer beyond 64 bits stays the real it rounds to, even when that
    // real is -2^63 (-9223372036854775809 is no int64).
    if (d != std::trunc(d) || d < -0x1p63 || d >= 0x1p64 || n.beyond_64_bits) return make(d);
    if (d < 0x1p63) return make(static_cast<std::int64_t>(d));
    make(static_cast<std::uint64_t>(d));
}

/// Reads a cell value and passes it to `make` as the argument of a `value`
/// constructor (a scalar, a string, or a whole `value`).
template <class Make>
void read_value(reader& r, const path& p, Make&& make) {
    switch (r.next()) {
    case reader::token::null: (void)r.try_null(p); return make(nullptr);
    case reader::token::boolean: return make(r.boolean(p));
    case reader::token::number: {
        number_token t;
        if (!r.plain_number(p, t)) t = r.number(p);
        return make_number_value(t, make);
    }
    case reader::token::string: return make(r.string(p));
    case reader::token::array: return make(value{json_text{canonical_json_text(r.dom(p))}});
    case reader::token::object: break;
    case reader::token::end:
    case reader::token::invalid: r.expected(p, "a JSON value");
    }
    // {"__bin": "<base64>"} and {"__bigint": "<decimal>"} are tagged values;
    // any other object is a JSON cell value.
    const auto m = r.mark();
    std::string scratch;
    std::optional<std::string> tag;
    std::size_t members = 0;
    r.object(p, "an object", [&](std::string_view key, const path& kp) {
        const bool is_tag = key_is(key, "__bin") || key_is(key, "__bigint");
        if (++members == 1 && is_tag) {
            tag = key;
            scratch = r.string(kp, key_is(key, "__bin") ? "padded standard base64 text" : "decimal integer text");
            return;
        }
        if (tag || is_tag)
            fail(p, "a tagged value {\"__bin\": ...} or {\"__bigint\": ...} must have no other member, got \"" +
                        std::string(key) + "\" beside \"" + (tag ? *tag : std::string("other members")) + "\"");
        r.skip(kp);
    });
    if (!tag) {
        r.rewind(m);
        return make(value{json_text{canonical_json_text(r.dom(p))}});
    }
    const path tp = p / *tag;
    if (*tag == "__bin") {
        auto bytes = ::crdtsync::detail::base64_decode(scratch, /*url=*/false);
        if (!bytes)
            fail(tp, "expected padded standard base64 (A-Z a-z 0-9 + /), got the string " +
                         quoted_excerpt(scratch));
        return make(value{blob{std::move(*bytes)}});
    }
    std::optional<big_integer> big;
    try {
        big.emplace(big_integer::parse(scratch));
    } catch (const ::crdtsync::error& e) {
        fail(tp, e.message());
    }
    make(value{std::move(*big)});
}

inline void read(reader& r, const path& p, value& out) {
    read_value(r, p, [&](auto&& x) { out = value{std::forward<decltype(x)>(x)}; });
}

template <class T>
void read(reader& r, const path& p, std::vector<T>& out) {
    out.clear();
    r.array(p, "an array", [&](std::size_t, const path& ep) {
        out.emplace_back();
        read(r, ep, out.back());
    });
}

inline void read(reader& r, const path& p, row_key& out) {
    out.clear();
    r.array(p, "an array of values", [&](std::size_t, const path& ep) {
        read_value(r, ep, [&](auto&& x) { out.emplace_back(std::forward<decltype(x)>(x)); });
    });
}


/// Validates a JSON cell value's text and writes it canonically.
template <class Sink>
void write_json_value(Sink& s, const json_text& jt) {
    json doc;
    try {
        const decode_options opts{};
        reader r(jt.text, opts);
        doc = r.dom(path{});
        r.expect_end();
    } catch (const ::crdtsync::error& e) {
        ::crdtsync::detail::raise(errc::invalid_value, "a JSON cell value must hold JSON text: " + e.message());
    }
    if (!doc.is_structured())
        ::crdtsync::detail::raise(errc::invalid_value,
                                  "a JSON cell value must be an object or an array, got " + describe(doc));
    if (doc.is_object() && (doc.contains("__bin") || doc.contains("__bigint")))
        ::crdtsync::detail::raise(errc::invalid_value,
                                  "a JSON cell value object cannot have a __bin or __bigint member: "
                                  "it would read back as a blob or a big integer");
    write_dom(s, doc);
}

template <class Sink>
void write_value(Sink& s, const value& v) {
    switch (v.kind()) {
    case value_kind::null: s.null(); return;
    case value_kind::boolean: s.boolean(*v.get_if<bool>()); return;
    case value_kind::integer: {
        const std::int64_t i = *v.get_if<std::int64_t>();
        if (i >= -max_safe_integer && i <= max_safe_integer) {
            s.integer(i);
        } else {
            std::string text;
            append_integer(text, i);
            write_tagged(s, "__bigint", text);
        }
        return;
    }
    case value_kind::big_integer: write_tagged(s, "__bigint", v.get_if<big_integer>()->text()); return;
    case value_kind::real: s.real(*v.get_if<double>()); return;
    case value_kind::text: s.string(*v.get_if<std::string>()); return;
    case value_kind::blob: {
        const auto& bytes = v.get_if<blob>()->bytes;
        std::string text;
        ::crdtsync::detail::base64_encode_to(text, reinterpret_cast<const unsigned char*>(bytes.data()),
                                             bytes.size(), ::crdtsync::detail::b64_std, true);
        write_tagged(s, "__bin", text);
        return;
    }
    case value_kind::json: write_json_value(s, *v.get_if<json_text>()); return;
    }
}

template <class Sink>
void write(Sink& s, const value& v) {
    write_value(s, v);
}

template <class Sink>
void write(Sink& s, const hlc& h) {
    const auto bytes = h.to_bytes();
    char text[hlc::text_size];
    base64_encode_fixed(bytes.data(), bytes.size(), text, ::crdtsync::detail::b64_std);
    s.ascii(std::string_view(text, sizeof text));
}

template <class Sink>
void write(Sink& s, const site_id& id) {
    char text[site_id::text_size];
    base64_encode_fixed(id.bytes().data(), site_id::size, text, ::crdtsync::detail::b64_url);
    s.ascii(std::string_view(text, sizeof text));
}

template <class Sink>
void write(Sink& s, const std::string& str) {
    s.string(str);
}

template <class Sink, class T>
void write(Sink& s, const std::vector<T>& xs) {
    s.begin_array();
    for (const auto& x : xs) write(s, x);
    s.end_array();
}

template <class Sink>
void write(Sink& s, const row_key& row) {
    s.begin_array();
    for (const auto& v : row) write_value(s, v);
    s.end_array();
}

} // namespace detail
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
