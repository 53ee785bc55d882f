#pragma once
/// \file wire/json.hpp
/// The Quereus-compatible JSON codec: change sets, schema migrations, apply
/// results, snapshot chunks and checkpoints, and every coordinator message,
/// as the TypeScript Quereus sync packages put them on the wire. The format,
/// with an example of every message, is in docs/wire.md.
///
/// Text in, text out:
///
///     std::vector<crdtsync::change_set> sets = crdtsync::wire::decode_change_sets(text);
///     std::string out = crdtsync::wire::encode_change_sets(sets);
///     crdtsync::message m = crdtsync::wire::decode_message(frame);
///
/// or for any supported type `T` (`is_wire_type_v<T>`, plus `std::vector`s of
/// them): `decode<T>(text)`, `encode(x)`, and on `nlohmann::json` values
/// `from_json<T>(j)`, `to_json(x)`. With this header included,
/// `nlohmann::json j = x;` and `j.get<T>()` work too.
///
/// Decoding is strict about what it needs and lenient about the rest: unknown
/// members are ignored; a missing required member, a wrong JSON type, bad
/// base64, a wrong length, an out-of-range number, an unknown `type` string, a
/// `priorValue` without `priorHlc` are errors. Every error is a `parse_error`
/// whose message starts with the JSON path of the offending member
/// (`changeSets[2].changes[7].hlc: expected a 40-character base64 HLC, got 38
/// characters`); its code is `errc::limit_exceeded` when the input breaks a
/// `decode_options` bound and `errc::decode` otherwise. Bounds are enforced
/// while parsing, before a hostile document can exhaust the stack or memory.
///
/// Encoding writes compact JSON exactly as JavaScript's `JSON.stringify`
/// would for the same data (numbers printed the JavaScript way, same string
/// escapes), so text written here matches Quereus byte for byte, up to member
/// order.

#include <algorithm>
#include <array>
#include <bit>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <nlohmann/json.hpp>

#include <crdtsync/change.hpp>
#include <crdtsync/detail/base64.hpp>
#include <crdtsync/detail/endian.hpp>
#include <crdtsync/detail/utf8.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/hlc.hpp>
#include <crdtsync/message.hpp>
#include <crdtsync/site_id.hpp>
#include <crdtsync/snapshot_chunk.hpp>
#include <crdtsync/value.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {

/// Bounds on what a decoder accepts. Exceeding one throws `parse_error` with
/// `errc::limit_exceeded`. The defaults fit any sane batch (a change set
/// batch of 1000 changes is about 10 000 JSON values and 300 KB).
struct decode_options {
    /// Longest accepted input text, in bytes.
    std::size_t max_bytes = std::size_t(64) << 20;
    /// Deepest accepted nesting of arrays and objects (the top level counts
    /// one). Wire structures need about 6; the rest is for JSON cell values.
    std::size_t max_depth = 64;
    /// Most JSON values (scalars, arrays and objects) in one document.
    std::size_t max_elements = std::size_t(1) << 22;
};

/// The greatest integer magnitude that travels as a plain JSON number
/// (JavaScript's `Number.MAX_SAFE_INTEGER`); integers beyond it travel as
/// `{"__bigint":"<decimal>"}`, as Quereus writes JavaScript bigints.
inline constexpr std::int64_t max_safe_integer = (std::int64_t(1) << 53) - 1;

namespace detail {

using json = nlohmann::json;

// ---------------------------------------------------------------------------
// JSON paths. A decoder walks down with path nodes on the stack; the text is
// only built when something is wrong.

struct path {
    const path* parent = nullptr;
    std::string_view key{};
    std::size_t index = 0;
    bool is_index = false;

    [[nodiscard]] path operator/(std::string_view k) const noexcept { return path{this, k, 0, false}; }
    [[nodiscard]] path operator[](std::size_t i) const noexcept { return path{this, {}, i, true}; }

    /// `changeSets[2].changes[7].hlc`; the document root is `$`.
    [[nodiscard]] std::string str() const {
        std::vector<const path*> chain;
        for (const path* p = this; p != nullptr; p = p->parent)
            if (p->is_index || !p->key.empty()) chain.push_back(p);
        std::string out;
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
            const path* p = *it;
            if (p->is_index) {
                out += '[';
                out += std::to_string(p->index);
                out += ']';
            } else {
                if (!out.empty()) out += '.';
                out.append(p->key);
            }
        }
        return out.empty() ? std::string("$") : out;
    }
};

[[noreturn]] inline void fail(const path& p, const std::string& what) {
    ::crdtsync::detail::raise(errc::decode, p.str() + ": " + what);
}

[[noreturn]] inline void fail_limit(const std::string& where, const std::string& what) {
    ::crdtsync::detail::raise(errc::limit_exceeded, where + ": " + what);
}

// ---------------------------------------------------------------------------
// Text output helpers: JavaScript number formatting and JSON.stringify string
// escapes.

/// Appends `d` as JavaScript's `Number.prototype.toString` prints it (the
/// shortest text that reads back as `d`; plain digits from 1e-6 up to 1e21,
/// exponent form outside). Non-finite numbers print as `null`, as in
/// `JSON.stringify`.
inline void append_js_number(std::string& out, double d) {
    if (!std::isfinite(d)) {
        out += "null";
        return;
    }
    if (d == 0) { // JSON.stringify(-0) is "0"
        out += '0';
        return;
    }
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string_view s(buf, static_cast<std::size_t>(res.ptr - buf));
    if (s.front() == '-') {
        out += '-';
        s.remove_prefix(1);
    }
    const auto epos = s.find('e');
    char digits[32];
    int k = 0;
    for (char c : s.substr(0, epos))
        if (c != '.') digits[k++] = c;
    int exp = 0;
    std::string_view es = s.substr(epos + 1);
    if (!es.empty() && es.front() == '+') es.remove_prefix(1);
    std::from_chars(es.data(), es.data() + es.size(), exp);
    const int n = exp + 1; // the decimal point sits after n digits
    if (k <= n && n <= 21) {
        out.append(digits, static_cast<std::size_t>(k));
        out.append(static_cast<std::size_t>(n - k), '0');
    } else if (0 < n && n <= 21) {
        out.append(digits, static_cast<std::size_t>(n));
        out += '.';
        out.append(digits + n, static_cast<std::size_t>(k - n));
    } else if (-6 < n && n <= 0) {
        out += "0.";
        out.append(static_cast<std::size_t>(-n), '0');
        out.append(digits, static_cast<std::size_t>(k));
    } else {
        out += digits[0];
        if (k > 1) {
            out += '.';
            out.append(digits + 1, static_cast<std::size_t>(k - 1));
        }
        out += 'e';
        out += n - 1 < 0 ? '-' : '+';
        out += std::to_string(n - 1 < 0 ? 1 - n : n - 1);
    }
}

template <class Int>
inline void append_integer(std::string& out, Int i) {
    char buf[24];
    const auto res = std::to_chars(buf, buf + sizeof buf, i);
    out.append(buf, res.ptr);
}

using ::crdtsync::detail::utf8_sequence_length;

/// Appends `s` as a quoted JSON string with JSON.stringify's escapes.
/// \throws parse_error (`errc::invalid_value`) if `s` is not valid UTF-8.
inline void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    std::size_t run = 0; // start of the pending run of bytes copied verbatim
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            ++i;
            continue;
        }
        if (c >= 0x80) {
            const std::size_t n = utf8_sequence_length(s, i);
            if (n == 0)
                ::crdtsync::detail::raise(errc::invalid_value,
                                          "text is not valid UTF-8 (byte " + std::to_string(i) +
                                              "), it cannot travel in JSON");
            i += n;
            continue;
        }
        out.append(s.data() + run, i - run);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
        run = ++i;
    }
    out.append(s.data() + run, s.size() - run);
    out += '"';
}

/// `"abc"` for messages, cut to about 40 bytes on a character boundary.
inline std::string quoted_excerpt(std::string_view v) {
    std::string_view shown = v;
    if (shown.size() > 40) {
        std::size_t cut = 37;
        while (cut > 0 && (static_cast<unsigned char>(shown[cut]) & 0xC0) == 0x80) --cut;
        shown = shown.substr(0, cut);
    }
    std::string out;
    try {
        append_json_string(out, shown);
    } catch (const ::crdtsync::error&) {
        return "(text that is not UTF-8)";
    }
    if (shown.size() < v.size()) out.insert(out.size() - 1, "...");
    return out;
}

/// Short rendering of a JSON value for error messages.
inline std::string describe(const json& j) {
    std::string out;
    switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return j.get<bool>() ? "true" : "false";
    case json::value_t::number_integer: append_integer(out, j.get<std::int64_t>()); return out;
    case json::value_t::number_unsigned: append_integer(out, j.get<std::uint64_t>()); return out;
    case json::value_t::number_float: append_js_number(out, j.get<double>()); return out;
    case json::value_t::string: return "the string " + quoted_excerpt(j.get_ref<const std::string&>());
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::binary: return "binary data";
    case json::value_t::discarded: return "nothing";
    }
    return "?";
}

// ---------------------------------------------------------------------------
// Sinks: the encoders write through one of these. `text_sink` appends compact
// JSON text; `dom_sink` builds an nlohmann::json value.

class text_sink {
public:
    std::string out;

    void begin_object() { sep(); out += '{'; comma_ = false; }
    void end_object() { out += '}'; comma_ = true; }
    void begin_array() { sep(); out += '['; comma_ = false; }
    void end_array() { out += ']'; comma_ = true; }
    /// A member name known to need no escaping (the wire's field names).
    void field(std::string_view name) {
        sep();
        out += '"';
        out += name;
        out += "\":";
        comma_ = false;
    }
    void key(std::string_view name) {
        sep();
        append_json_string(out, name);
        out += ':';
        comma_ = false;
    }
    void null() { sep(); out += "null"; comma_ = true; }
    void boolean(bool b) { sep(); out += b ? "true" : "false"; comma_ = true; }
    void integer(std::int64_t i) { sep(); append_integer(out, i); comma_ = true; }
    void uinteger(std::uint64_t i) { sep(); append_integer(out, i); comma_ = true; }
    void real(double d) { sep(); append_js_number(out, d); comma_ = true; }
    void string(std::string_view s) { sep(); append_json_string(out, s); comma_ = true; }
    /// A string known to need no escaping (base64 text).
    void ascii(std::string_view s) {
        sep();
        out += '"';
        out += s;
        out += '"';
        comma_ = true;
    }

private:
    void sep() {
        if (comma_) out += ',';
    }
    bool comma_ = false;
};

class dom_sink {
public:
    json root;

    void begin_object() { stack_.push_back(&place(json::object())); }
    void end_object() { stack_.pop_back(); }
    void begin_array() { stack_.push_back(&place(json::array())); }
    void end_array() { stack_.pop_back(); }
    void field(std::string_view name) { key_.assign(name); }
    void key(std::string_view name) {
        check_utf8(name);
        key_.assign(name);
    }
    void null() { place(json(nullptr)); }
    void boolean(bool b) { place(json(b)); }
    void integer(std::int64_t i) { place(json(i)); }
    void uinteger(std::uint64_t i) { place(json(i)); }
    /// Integral doubles within the safe range become JSON integers, so the
    /// value prints as JavaScript prints it and compares equal to a parse of
    /// Quereus text.
    void real(double d) {
        if (!std::isfinite(d)) place(json(nullptr));
        else if (d == std::trunc(d) && std::fabs(d) <= double(max_safe_integer))
            place(json(static_cast<std::int64_t>(d)));
        else place(json(d));
    }
    void string(std::string_view s) {
        check_utf8(s);
        place(json(std::string(s)));
    }
    void ascii(std::string_view s) { place(json(std::string(s))); }

private:
    static void check_utf8(std::string_view s) {
        if (const auto i = ::crdtsync::detail::utf8_invalid_at(s); i != s.size())
            ::crdtsync::detail::raise(errc::invalid_value,
                                      "text is not valid UTF-8 (byte " + std::to_string(i) + "), it cannot travel in JSON");
    }
    json& place(json&& v) {
        if (stack_.empty()) {
            root = std::move(v);
            return root;
        }
        json& top = *stack_.back();
        if (top.is_array()) {
            auto& arr = *top.get_ptr<json::array_t*>();
            arr.push_back(std::move(v));
            return arr.back();
        }
        auto& slot = (*top.get_ptr<json::object_t*>())[key_];
        slot = std::move(v);
        return slot;
    }
    std::vector<json*> stack_;
    std::string key_;
};

// ---------------------------------------------------------------------------
// Fixed-size base64 for HLCs and site ids: no allocation on the hot path.

/// Decodes exactly `n` base64 characters (n % 4 != 1) into `out`; false on
/// any character outside the alphabet or non-zero trailing bits.
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
    if (n - i == 1) { // site ids: 16 bytes = 5 groups + 1 byte, unpadded
        const std::uint32_t v = std::uint32_t(data[i]) << 16;
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
    }
}

// ---------------------------------------------------------------------------
// The reader: a strict RFC 8259 pull parser over the input text.
// (Why not nlohmann's parser: its lexer alone runs at about 100 MB/s with a
// no-op SAX handler, and building a DOM to walk afterwards cost another 3x;
// decoding straight into the structs runs at about 150 MB/s, over a million
// changes a second. nlohmann still serves the DOM entry points.) Decoders ask
// it for the value they expect at a path (`r.string(p)`, `r.object(p, ...)`),
// so a wrong type is reported where it is found, with the path. Strings
// without escapes are returned as views into the input (no copy). Every value
// is counted against `max_elements` and every array or object against
// `max_depth` as it is entered; nothing recurses on the input's nesting, so no
// input can overflow the stack.

// Inlines a hot lambda into its caller (GCC and Clang).
#if defined(__GNUC__)
#define CRDTSYNC_WIRE_INLINE __attribute__((always_inline))
#else
#define CRDTSYNC_WIRE_INLINE
#endif

/// A member name as a decoder expects it: `"<name>":`, at most 16 bytes,
/// with no character that a JSON string would escape.
struct member_name {
    std::string_view name;
    std::array<char, 16> text{}; ///< `"<name>":`, zero-padded
    std::size_t text_size = 0;

    constexpr member_name() = default;
    template <std::size_t N>
    consteval member_name(const char (&literal)[N]) : member_name(std::string_view(literal, N - 1)) {}
    consteval explicit member_name(std::string_view n) : name(n), text_size(n.size() + 3) {
        if (text_size > text.size()) throw "member names of at most 13 characters";
        text[0] = '"';
        for (std::size_t i = 0; i < n.size(); ++i) {
            if (n[i] < 0x20 || n[i] == '"' || n[i] == '\\' || static_cast<unsigned char>(n[i]) >= 0x80)
                throw "member names of plain ASCII";
            text[i + 1] = n[i];
        }
        text[n.size() + 1] = '"';
        text[n.size() + 2] = ':';
    }

    /// True when `s` holds `"<name>":` at `pos`.
    [[nodiscard, gnu::always_inline]] bool at(std::string_view s, std::size_t pos) const noexcept {
#if defined(__SSE2__)
        if (s.size() - pos >= 16) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + pos));
            const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text.data()));
            const auto equal = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, t)));
            const unsigned wanted = (1u << text_size) - 1;
            return (equal & wanted) == wanted;
        }
#endif
        return s.size() - pos >= text_size && std::memcmp(s.data() + pos, text.data(), text_size) == 0;
    }
};

/// A JSON number token.
struct number_token {
    enum kind_t : unsigned char { int64, uint64, real } kind = int64;
    std::int64_t i = 0;
    std::uint64_t u = 0;
    double d = 0;
    std::string_view text;
    bool beyond_64_bits = false; ///< an integer written out that no 64-bit integer holds
};

class reader {
public:
    /// `decode_options::max_depth` above this acts as this: encoding a JSON
    /// cell value recurses once per level.
    static constexpr std::size_t hard_max_depth = 512;

    enum class token : unsigned char { end, invalid, null, boolean, number, string, array, object };

    reader(std::string_view text, const decode_options& opts) noexcept
        : s_(text), max_depth_(std::min(opts.max_depth, hard_max_depth)), max_elements_(opts.max_elements) {}

    struct mark_t {
        std::size_t pos, elements, depth;
    };
    [[nodiscard]] mark_t mark() const noexcept { return {pos_, elements_, depth_}; }
    void rewind(mark_t m) noexcept {
        pos_ = m.pos;
        elements_ = m.elements;
        depth_ = m.depth;
    }

    /// The kind of the next value, judged by its first character.
    [[nodiscard, gnu::always_inline]] token next() noexcept {
        skip_ws();
        if (pos_ >= s_.size()) [[unlikely]]
            return token::end;
        return token_of[static_cast<unsigned char>(s_[pos_])];
    }

    /// After the top-level value: only whitespace may follow.
    void expect_end() {
        skip_ws();
        if (pos_ != s_.size()) syntax(path{}, "unexpected text after the JSON value");
    }

    [[noreturn]] void expected(const path& p, std::string_view what) {
        if (next() == token::array || next() == token::object) {
            // A document too deep to read is reported as such, even where a
            // container of any depth would be the wrong type.
            const auto m = mark();
            try {
                skip(p);
            } catch (const parse_error& e) {
                if (e.code() == errc::limit_exceeded) throw;
            }
            rewind(m);
        }
        if (next() == token::invalid || next() == token::end) {
            if (next() == token::end) syntax(p, "unexpected end of input, expected " + std::string(what));
            syntax(p, "expected " + std::string(what) + ", got " + describe_char(s_[pos_]));
        }
        fail(p, "expected " + std::string(what) + ", got " + describe_next());
    }

    /// The input from the next value on (after whitespace), for decoders
    /// that recognise a common prefix before parsing it properly.
    [[nodiscard]] std::string_view rest() noexcept {
        skip_ws();
        return s_.substr(pos_);
    }

    /// What decoders remember between values of one document to skip
    /// repeated work: the last HLC text decoded and its bytes (the facts of
    /// one transaction share all but its last characters), and the length of
    /// the last list of changes read (a hint to reserve the next one).
    struct hlc_memo {
        std::array<char, hlc::text_size> text{};
        hlc value{};
        bool valid = false;
    };
    hlc_memo last_hlc;
    std::size_t last_changes = 0;

    /// The `n` bytes between the quotes of the string that comes next if its
    /// closing quote is `n` bytes after the opening one; empty otherwise.
    /// Consumes nothing. A caller that finds none of the bytes is '"', '\\',
    /// a control character or beyond ASCII (so that they are the whole string,
    /// with no escape) takes the string with `take_string`.
    [[nodiscard]] std::string_view peek_string_of_size(std::size_t n) noexcept {
        skip_ws();
        if (s_.size() - pos_ < n + 2 || s_[pos_] != '"' || s_[pos_ + n + 1] != '"') return {};
        return std::string_view(s_.data() + pos_ + 1, n);
    }
    void take_string(const path& p, std::size_t n) {
        count(p);
        pos_ += n + 2;
    }

    /// Fails where reading ahead into the object that comes next (`peek_member`)
    /// would: entering it at `p`, then counting the value of `member`.
    void check_read_ahead(const path& p, const path& member) {
        if (depth_ + 1 > max_depth_) too_deep(p);
        if (elements_ + 1 > max_elements_) too_many_elements(member);
    }

    // ---- scalars

    /// The next value as a string; a view into the input or into `scratch`.
    std::string_view string(const path& p, std::string& scratch, std::string_view what = "a string") {
        if (next() != token::string) expected(p, what);
        count(p);
        return string_token(p, scratch);
    }
    std::string string(const path& p, std::string_view what = "a string") {
        std::string scratch;
        const auto v = string(p, scratch, what);
        if (!scratch.empty() && v.data() == scratch.data()) return scratch;
        return std::string(v);
    }
    bool boolean(const path& p) {
        if (next() != token::boolean) expected(p, "true or false");
        count(p);
        return boolean_token(p);
    }
    /// Consumes a `null` if one comes next.
    bool try_null(const path& p) {
        if (next() != token::null) return false;
        count(p);
        literal(p, "null");
        return true;
    }
    number_token number(const path& p, std::string_view what = "a number") {
        if (next() != token::number) expected(p, what);
        count(p);
        return number_token_at(p);
    }
    /// At a number (`next()` said so): if it is a plain integer of at most
    /// 8 digits, or such an integer with a fraction whose digits make at most
    /// 2^53 (no exponent), consumes it and returns true with its token
    /// (`int64` or `real`). Otherwise consumes nothing: `number` reads it.
    bool plain_number(const path& p, number_token& t) {
        const std::size_t n = s_.size();
        const std::size_t start = pos_;
        const bool negative = s_[start] == '-';
        const std::size_t first = start + (negative ? 1 : 0);
        if (n - first < 8) return false; // near the end of the input: left to `number`
        // Eight bytes at once: the leading digits, then their value.
        std::uint64_t v;
        std::memcpy(&v, s_.data() + first, 8);
        if constexpr (std::endian::native != std::endian::little) v = byteswap64(v);
        const std::uint64_t d = v - 0x3030303030303030u;
        // High bit of each byte below '0' (borrow) or above '9' (carry);
        // carries and borrows run upwards, so the lowest flag is exact.
        const std::uint64_t non_digits = (d | (v + 0x4646464646464646u)) & 0x8080808080808080u;
        if (non_digits == 0) return false; // eight digits or more
        const int digits = std::countr_zero(non_digits) / 8;
        if (digits == 0 || (digits > 1 && s_[first] == '0')) return false; // not a number, or a leading zero
        // Shifted to the end of eight digits (the missing leading ones read
        // as zeros), then combined pairwise: 8 -> 4 -> 2 -> 1.
        std::uint64_t x = d << (8 * (8 - digits));
        x = x * 10 + (x >> 8);
        x = (((x & 0x000000FF000000FFu) * 0x000F424000000064u) +
             (((x >> 16) & 0x000000FF000000FFu) * 0x0000271000000001u)) >>
            32;
        std::size_t end = first + static_cast<std::size_t>(digits); // < n: a non-digit was loaded there
        if (s_[end] == 'e' || s_[end] == 'E') return false;
        if (s_[end] != '.') {
            t.kind = number_token::int64;
            t.i = negative ? -static_cast<std::int64_t>(x) : static_cast<std::int64_t>(x);
        } else {
            // m / 10^f with m <= 2^53 and f <= 22: both exact, so the one
            // division rounds correctly, as from_chars would (Clinger).
            if constexpr (!std::numeric_limits<double>::is_iec559 || FLT_EVAL_METHOD != 0) return false;
            const std::size_t frac = ++end;
            // At most 19 digits in all: no overflow, and at most 22 decimals.
            const std::size_t stop = std::min(n, frac + (19 - static_cast<std::size_t>(digits)));
            for (; end < stop && is_digit(s_[end]); ++end) x = x * 10 + static_cast<unsigned>(s_[end] - '0');
            if (end == frac || end == n || is_digit(s_[end]) || s_[end] == 'e' || s_[end] == 'E') return false;
            if (x > (std::uint64_t(1) << 53)) return false;
            t.kind = number_token::real;
            t.d = static_cast<double>(x) / exact_powers_of_ten[end - frac];
            if (negative) t.d = -t.d;
        }
        count(p);
        t.text = std::string_view(s_.data() + start, end - start);
        pos_ = end;
        return true;
    }

    /// A non-negative integer no greater than `max` (written as an integer,
    /// or as an integral number such as 5.0 or 5e0).
    std::uint64_t unsigned_integer(const path& p, std::uint64_t max) {
        const auto m = mark();
        const number_token n = number(p, "a non-negative integer");
        std::uint64_t v = 0;
        if (n.kind == number_token::uint64) v = n.u;
        else if (n.kind == number_token::int64 && n.i == 0) v = 0; // -0
        else if (n.kind == number_token::real && n.d >= 0 && n.d < 0x1p64 && n.d == std::trunc(n.d))
            v = static_cast<std::uint64_t>(n.d);
        else {
            rewind(m);
            expected(p, "a non-negative integer");
        }
        if (v > max) fail(p, "expected an integer of at most " + std::to_string(max) + ", got " + std::string(n.text));
        return v;
    }

    // ---- containers

    /// Reads an object, calling `on_member(key, path)` for each member; the
    /// callback must consume the member's value (read it or `skip` it).
    ///
    /// `order` lists the members writers usually put, in their order: the
    /// name of each is recognised by one comparison, not read as a string
    /// (any other name is read as a string). `head_size`, when not 0, is the
    /// length of the object's opening text `{"<order[0]>":"<string>"` that the
    /// caller has already checked (it holds no escape and no byte to
    /// validate): that member is taken as read, not passed to `on_member`.
    template <class F>
    void object(const path& p, std::string_view what, F&& on_member, std::span<const member_name> order = {},
                std::size_t head_size = 0) {
        if (next() != token::object) expected(p, what);
        count(p);
        enter(p);
        std::string escaped_key; // only used by keys with escapes
        std::string_view key;
        std::size_t index = 0; // of the member in the object
        if (head_size != 0) {
            key = order[0].name;
            count(p / key);
            pos_ += head_size;
            index = 1;
        } else {
            ++pos_;
            if (peek_char() == '}') {
                ++pos_;
                --depth_;
                return;
            }
            key = member(p, escaped_key, on_member, index < order.size() ? &order[index] : nullptr);
            ++index;
        }
        for (;;) {
            const char c = peek_char();
            if (c == ',') {
                ++pos_;
                key = member(p, escaped_key, on_member, index < order.size() ? &order[index] : nullptr);
                ++index;
                continue;
            }
            if (c == '}') {
                ++pos_;
                --depth_;
                return;
            }
            syntax(p / key, "expected ',' or '}' after the member's value");
        }
    }

    /// One member of an object: its name (`likely` first), then `on_member`
    /// reads its value.
    template <class F>
    [[gnu::always_inline]] std::string_view member(const path& p, std::string& escaped_key, F& on_member,
                                                   const member_name* likely) {
        if (likely != nullptr && likely->at(s_, pos_)) {
            pos_ += likely->text_size;
            on_member(likely->name, p / likely->name);
            return likely->name;
        }
        if (peek_char() != '"') syntax(p, "expected a member name in double quotes");
        const std::string_view key = string_token(p, escaped_key);
        const path child = p / key;
        if (peek_char() != ':') syntax(child, "expected ':' after the member name");
        ++pos_;
        on_member(key, child);
        return key;
    }

    /// Reads an array, calling `on_element(index, path)` for each element;
    /// the callback must consume the element.
    template <class F>
    void array(const path& p, std::string_view what, F&& on_element) {
        if (next() != token::array) expected(p, what);
        count(p);
        enter(p);
        ++pos_;
        if (peek_char() == ']') {
            ++pos_;
            --depth_;
            return;
        }
        for (std::size_t i = 0;; ++i) {
            const path child = p[i];
            on_element(i, child);
            const char c = peek_char();
            if (c == ',') {
                ++pos_;
                continue;
            }
            if (c == ']') {
                ++pos_;
                --depth_;
                return;
            }
            syntax(child, "expected ',' or ']' after an array element");
        }
    }

    /// The string value of member `key` of the object that comes next, read
    /// ahead without consuming anything; nullopt if there is no such member.
    /// Lets a decoder dispatch on `type` wherever it sits in the object.
    std::optional<std::string> peek_member(const path& p, std::string_view what, std::string_view key) {
        if (next() != token::object) expected(p, what);
        const auto m = mark();
        std::optional<std::string> found;
        enter(p);
        ++pos_;
        if (peek_char() != '}') {
            std::string scratch;
            for (;;) {
                if (peek_char() != '"') syntax(p, "expected a member name in double quotes");
                const bool match = string_token(p, scratch) == key;
                if (peek_char() != ':') syntax(p, "expected ':' after the member name");
                ++pos_;
                if (match) {
                    found = string(p / key);
                    break;
                }
                skip(p);
                const char c = peek_char();
                if (c == ',') {
                    ++pos_;
                    continue;
                }
                if (c == '}') break;
                syntax(p, "expected ',' or '}' after the member's value");
            }
        }
        rewind(m);
        return found;
    }

    /// Consumes the next value, whatever it is (it must still be valid JSON).
    void skip(const path& p) {
        skip_handler h;
        walk(p, h);
    }

    /// The next value as a JSON document.
    nlohmann::json dom(const path& p) {
        dom_handler h;
        walk(p, h);
        return std::move(h.root);
    }

    /// A short rendering of the next value, for messages; consumes nothing.
    std::string describe_next() {
        const auto m = mark();
        std::string out;
        try {
            switch (next()) {
            case token::end: out = "the end of the input"; break;
            case token::invalid: out = "invalid JSON"; break;
            case token::null: out = "null"; break;
            case token::boolean: out = s_[pos_] == 't' ? "true" : "false"; break;
            case token::number: {
                std::size_t end = pos_;
                while (end < s_.size() && std::string_view("+-.0123456789eE").find(s_[end]) != std::string_view::npos)
                    ++end;
                out = std::string(s_.substr(pos_, std::min<std::size_t>(end - pos_, 40)));
                break;
            }
            case token::string: {
                std::string scratch;
                out = "a malformed string";
                out = "the string " + quoted_excerpt(string_token(path{}, scratch));
                break;
            }
            case token::array: out = "an array"; break;
            case token::object: out = "an object"; break;
            }
        } catch (const ::crdtsync::error&) {
            if (out.empty()) out = "invalid JSON";
        }
        rewind(m);
        return out;
    }

private:
    // The kind of value each first character starts.
    static constexpr std::array<token, 256> token_of = [] {
        std::array<token, 256> t{};
        for (auto& k : t) k = token::invalid;
        t['n'] = token::null;
        t['t'] = t['f'] = token::boolean;
        t['"'] = token::string;
        t['['] = token::array;
        t['{'] = token::object;
        t['-'] = token::number;
        for (char c = '0'; c <= '9'; ++c) t[static_cast<unsigned char>(c)] = token::number;
        return t;
    }();

    static bool is_ws(char c) noexcept { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
    [[gnu::always_inline]] void skip_ws() noexcept {
        // Compact JSON has no whitespace: one test settles the common case.
        if (pos_ < s_.size() && static_cast<unsigned char>(s_[pos_]) > ' ') [[likely]]
            return;
        skip_ws_loop();
    }
    [[gnu::noinline]] void skip_ws_loop() noexcept {
        while (pos_ < s_.size() && is_ws(s_[pos_])) ++pos_;
    }
    [[gnu::always_inline]] char peek_char() noexcept {
        skip_ws();
        return pos_ < s_.size() ? s_[pos_] : '\0';
    }
    static std::string describe_char(char c) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
        static constexpr char hex[] = "0123456789abcdef";
        return std::string("byte 0x") + hex[u >> 4] + hex[u & 15];
    }

    [[noreturn]] void syntax(const path& p, const std::string& what) const {
        fail(p, "invalid JSON at byte " + std::to_string(pos_) + ": " + what);
    }
    void count(const path& p) {
        if (++elements_ > max_elements_) [[unlikely]]
            too_many_elements(p);
    }
    void enter(const path& p) {
        if (++depth_ > max_depth_) [[unlikely]]
            too_deep(p);
    }
    [[noreturn, gnu::noinline, gnu::cold]] void too_many_elements(const path& p) const {
        fail_limit(p.str(), "the document holds more than max_elements = " + std::to_string(max_elements_) +
                                " JSON values");
    }
    [[noreturn, gnu::noinline, gnu::cold]] void too_deep(const path& p) const {
        fail_limit(p.str(), "nesting deeper than max_depth = " + std::to_string(max_depth_));
    }
    void literal(const path& p, std::string_view word) {
        if (s_.substr(pos_, word.size()) != word) syntax(p, "invalid literal (true, false or null expected)");
        pos_ += word.size();
    }
    bool boolean_token(const path& p) {
        if (s_[pos_] == 't') {
            literal(p, "true");
            return true;
        }
        literal(p, "false");
        return false;
    }

    static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
    static std::uint64_t byteswap64(std::uint64_t v) noexcept {
        std::uint64_t r = 0;
        for (int i = 0; i < 8; ++i, v >>= 8) r = (r << 8) | (v & 0xFF);
        return r;
    }

    // At a '-' or digit.
    number_token number_token_at(const path& p) {
        const std::size_t start = pos_;
        std::size_t i = pos_;
        const std::size_t n = s_.size();
        {
            // Fast path: an integer of 1 to 18 digits (it cannot overflow),
            // read in one pass. Anything else (a leading zero before more
            // digits, a fraction, an exponent, more digits) is read below.
            std::size_t k = i + (s_[i] == '-' ? 1 : 0);
            const std::size_t digits = k;
            std::uint64_t u = 0;
            const std::size_t stop = std::min(n, digits + 19);
            for (; k < stop && is_digit(s_[k]); ++k) u = u * 10 + static_cast<unsigned>(s_[k] - '0');
            const std::size_t n_digits = k - digits;
            if (n_digits != 0 && n_digits <= 18 && (n_digits == 1 || s_[digits] != '0') &&
                (k == n || (!is_digit(s_[k]) && s_[k] != '.' && s_[k] != 'e' && s_[k] != 'E'))) {
                number_token t;
                t.text = std::string_view(s_.data() + start, k - start);
                pos_ = k;
                if (digits != start) {
                    t.kind = number_token::int64;
                    t.i = -static_cast<std::int64_t>(u);
                } else {
                    t.kind = number_token::uint64;
                    t.u = u;
                }
                return t;
            }
        }
        const bool negative = s_[i] == '-';
        if (negative) ++i;
        if (i >= n || !is_digit(s_[i])) syntax(p, "invalid number");
        const std::size_t int_start = i;
        if (s_[i] == '0') ++i;
        else
            while (i < n && is_digit(s_[i])) ++i;
        const std::size_t int_end = i;
        bool integral = true;
        std::size_t frac_start = i, frac_end = i;
        if (i < n && s_[i] == '.') {
            ++i;
            integral = false;
            frac_start = i;
            if (i >= n || !is_digit(s_[i])) syntax(p, "invalid number: digits must follow '.'");
            while (i < n && is_digit(s_[i])) ++i;
            frac_end = i;
        }
        std::int64_t exp10 = 0;
        if (i < n && (s_[i] == 'e' || s_[i] == 'E')) {
            ++i;
            integral = false;
            bool exp_negative = false;
            if (i < n && (s_[i] == '+' || s_[i] == '-')) exp_negative = s_[i++] == '-';
            if (i >= n || !is_digit(s_[i])) syntax(p, "invalid number: digits must follow the exponent mark");
            for (; i < n && is_digit(s_[i]); ++i)
                if (exp10 < 100000000) exp10 = exp10 * 10 + (s_[i] - '0');
            if (exp_negative) exp10 = -exp10;
        }
        number_token t;
        t.text = std::string_view(s_.data() + start, i - start);
        pos_ = i;
        const char* first = s_.data() + start;
        const char* last = s_.data() + i;
        if (integral) {
            if (negative) {
                if (std::from_chars(first, last, t.i).ec == std::errc{}) {
                    t.kind = number_token::int64;
                    return t;
                }
            } else if (std::from_chars(first, last, t.u).ec == std::errc{}) {
                t.kind = number_token::uint64;
                return t;
            }
            // Beyond 64 bits: a double, as every JSON reader does.
            t.beyond_64_bits = true;
        }
        t.kind = number_token::real;
        if (exact_decimal(int_start, int_end, frac_start, frac_end, exp10, negative, t.d)) return t;
        const auto res = std::from_chars(first, last, t.d);
        if (res.ec == std::errc::result_out_of_range) {
            // Decimal exponent of the first significant digit decides between
            // underflow (the value is a zero) and overflow (an error).
            std::int64_t magnitude = exp10;
            std::size_t lead = int_start;
            while (lead < int_end && s_[lead] == '0') ++lead;
            if (lead < int_end) {
                magnitude += static_cast<std::int64_t>(int_end - lead) - 1;
            } else {
                std::size_t f = frac_start;
                while (f < frac_end && s_[f] == '0') ++f;
                magnitude -= static_cast<std::int64_t>(f - frac_start) + 1;
            }
            if (magnitude >= 0) syntax(p, "number " + std::string(t.text.substr(0, 40)) + " is too large");
            t.d = negative ? -0.0 : 0.0;
        } else if (res.ec != std::errc{}) {
            syntax(p, "invalid number");
        }
        return t;
    }

    // The powers of ten that doubles hold exactly.
    static constexpr double exact_powers_of_ten[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

    // Clinger's fast path: a decimal whose digits make an integer m of at
    // most 2^53 and whose power of ten p is within 10^22 is m * 10^p or
    // m / 10^-p, both exact operands, so one IEEE operation rounds it
    // correctly, as from_chars would. False when that does not apply.
    bool exact_decimal(std::size_t int_start, std::size_t int_end, std::size_t frac_start, std::size_t frac_end,
                       std::int64_t exp10, bool negative, double& out) const noexcept {
        if constexpr (!std::numeric_limits<double>::is_iec559 || FLT_EVAL_METHOD != 0) {
            return false;
        } else {
            if ((int_end - int_start) + (frac_end - frac_start) > 19) return false;
            std::uint64_t m = 0;
            for (std::size_t k = int_start; k < int_end; ++k) m = m * 10 + static_cast<unsigned>(s_[k] - '0');
            for (std::size_t k = frac_start; k < frac_end; ++k) m = m * 10 + static_cast<unsigned>(s_[k] - '0');
            const std::int64_t power = exp10 - static_cast<std::int64_t>(frac_end - frac_start);
            if (m > (std::uint64_t(1) << 53) || power < -22 || power > 22) return false;
            const double d = static_cast<double>(m);
            out = power < 0 ? d / exact_powers_of_ten[-power] : d * exact_powers_of_ten[power];
            if (negative) out = -out;
            return true;
        }
    }

    static int hex_value(char c) noexcept {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    // Four hex digits at s_[i]; -1 if malformed.
    long hex4(std::size_t i) const noexcept {
        if (i + 4 > s_.size()) return -1;
        long v = 0;
        for (std::size_t k = 0; k < 4; ++k) {
            const int h = hex_value(s_[i + k]);
            if (h < 0) return -1;
            v = v * 16 + h;
        }
        return v;
    }
    static void append_utf8(std::string& out, unsigned long cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    // Bytes a string scan must stop at: '"', '\\', control characters and
    // the start of a multi-byte UTF-8 sequence.
    static constexpr std::array<bool, 256> string_stops = [] {
        std::array<bool, 256> t{};
        for (std::size_t c = 0; c < 256; ++c) t[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
        return t;
    }();

    // Index of the lowest-addressed byte whose high bit is set in `flags`
    // (the eight bytes were loaded with memcpy, so in memory order).
    static int first_flagged_byte(std::uint64_t flags) noexcept {
        if constexpr (std::endian::native == std::endian::little) return std::countr_zero(flags) / 8;
        else return std::countl_zero(flags) / 8;
    }

    // The first index at or after `i` holding a string stop (or the end):
    // eight bytes at a time while none of them is one.
    [[nodiscard]] std::size_t skip_plain(std::size_t i) const noexcept {
        constexpr std::uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
        const std::size_t n = s_.size();
#if defined(__SSE2__)
        // Sixteen bytes at a time. The comparison with ' ' is signed: bytes
        // from 0x80 up are negative, so it finds control characters and the
        // start of multi-byte UTF-8 alike.
        const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(' ');
        for (; i + 16 <= n; i += 16) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s_.data() + i));
            const __m128i stops = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                               _mm_cmplt_epi8(v, space));
            const auto mask = static_cast<unsigned>(_mm_movemask_epi8(stops));
            if (mask != 0) return i + static_cast<std::size_t>(std::countr_zero(mask));
        }
#endif
        for (; i + 8 <= n; i += 8) {
            std::uint64_t v;
            std::memcpy(&v, s_.data() + i, 8);
            const std::uint64_t quote = v ^ (ones * '"'), backslash = v ^ (ones * '\\');
            // A byte is flagged when it is zero in `quote` or `backslash`, below
            // 0x20, or has its high bit set.
            const std::uint64_t stops = (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
                                         ((v - ones * 0x20) & ~v) | v) &
                                        highs;
            // Borrows can flag bytes after a stop, never before the first
            // one: the lowest flagged byte (first in memory) is a real stop.
            if (stops != 0) return i + static_cast<std::size_t>(first_flagged_byte(stops));
        }
        while (i < n && !string_stops[static_cast<unsigned char>(s_[i])]) ++i;
        return i;
    }

    // At a '"'. Validates UTF-8 and escapes; the result views the input when
    // the string has no escapes, `scratch` otherwise.
    [[gnu::always_inline]] std::string_view string_token(const path& p, std::string& scratch) {
        const std::size_t start = pos_ + 1;
        const std::size_t i = skip_plain(start);
        if (i < s_.size() && s_[i] == '"') [[likely]] { // no escape, nothing to check
            pos_ = i + 1;
            return std::string_view(s_.data() + start, i - start);
        }
        return string_token_slow(p, scratch, start, i);
    }
    // The rest of a string from `i`, the first byte at or after `start` that
    // is not plain ASCII.
    [[gnu::noinline]] std::string_view string_token_slow(const path& p, std::string& scratch, const std::size_t start,
                                                         std::size_t i) {
        pos_ = start;
        const std::size_t n = s_.size();
        for (;;) {
            i = skip_plain(i);
            if (i >= n) syntax(p, "unterminated string");
            const auto c = static_cast<unsigned char>(s_[i]);
            if (c == '"') {
                pos_ = i + 1;
                return std::string_view(s_.data() + start, i - start);
            }
            if (c == '\\') break;
            if (c < 0x20) {
                pos_ = i;
                syntax(p, "control character " + describe_char(static_cast<char>(c)) + " in a string");
            }
            if (c >= 0x80) {
                const std::size_t len = utf8_sequence_length(s_, i);
                if (len == 0) {
                    pos_ = i;
                    syntax(p, "invalid UTF-8 in a string");
                }
                i += len;
            } else {
                ++i;
            }
        }
        scratch.assign(s_.data() + start, i - start);
        for (;;) {
            if (i >= n) syntax(p, "unterminated string");
            const auto c = static_cast<unsigned char>(s_[i]);
            if (c == '"') {
                pos_ = i + 1;
                return scratch;
            }
            if (c == '\\') {
                if (i + 1 >= n) syntax(p, "unterminated string");
                const char e = s_[i + 1];
                switch (e) {
                case '"': scratch += '"'; break;
                case '\\': scratch += '\\'; break;
                case '/': scratch += '/'; break;
                case 'b': scratch += '\b'; break;
                case 'f': scratch += '\f'; break;
                case 'n': scratch += '\n'; break;
                case 'r': scratch += '\r'; break;
                case 't': scratch += '\t'; break;
                case 'u': {
                    long cp = hex4(i + 2);
                    pos_ = i;
                    if (cp < 0) syntax(p, "invalid \\u escape: four hex digits expected");
                    i += 6;
                    if (cp >= 0xDC00 && cp <= 0xDFFF)
                        syntax(p, "lone UTF-16 surrogate in a \\u escape: not representable in UTF-8");
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        const long low = i + 1 < n && s_[i] == '\\' && s_[i + 1] == 'u' ? hex4(i + 2) : -1;
                        if (low < 0xDC00 || low > 0xDFFF)
                            syntax(p, "lone UTF-16 surrogate in a \\u escape: not representable in UTF-8");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        i += 6;
                    }
                    append_utf8(scratch, static_cast<unsigned long>(cp));
                    continue;
                }
                default:
                    pos_ = i;
                    syntax(p, "invalid escape \\" + std::string(1, e) + " in a string");
                }
                i += 2;
                continue;
            }
            if (c < 0x20) {
                pos_ = i;
                syntax(p, "control character " + describe_char(static_cast<char>(c)) + " in a string");
            }
            if (c >= 0x80) {
                const std::size_t len = utf8_sequence_length(s_, i);
                if (len == 0) {
                    pos_ = i;
                    syntax(p, "invalid UTF-8 in a string");
                }
                scratch.append(s_.data() + i, len);
                i += len;
            } else {
                scratch += static_cast<char>(c);
                ++i;
            }
        }
    }

    struct skip_handler {
        void null() {}
        void boolean(bool) {}
        void number(const number_token&) {}
        void string(std::string_view) {}
        void key(std::string_view) {}
        void begin_object() {}
        void end_object() {}
        void begin_array() {}
        void end_array() {}
    };

    struct dom_handler {
        nlohmann::json root;
        std::vector<nlohmann::json*> stack;
        std::string key_;
        nlohmann::json& place(nlohmann::json&& v) {
            if (stack.empty()) {
                root = std::move(v);
                return root;
            }
            nlohmann::json& top = *stack.back();
            if (top.is_array()) {
                auto& arr = *top.get_ptr<nlohmann::json::array_t*>();
                arr.push_back(std::move(v));
                return arr.back();
            }
            auto& slot = (*top.get_ptr<nlohmann::json::object_t*>())[key_];
            slot = std::move(v); // a repeated member: the last one wins, as in JavaScript
            return slot;
        }
        void null() { place(nlohmann::json(nullptr)); }
        void boolean(bool b) { place(nlohmann::json(b)); }
        void number(const number_token& t) {
            switch (t.kind) {
            case number_token::int64: place(nlohmann::json(t.i)); break;
            case number_token::uint64: place(nlohmann::json(t.u)); break;
            case number_token::real: place(nlohmann::json(t.d)); break;
            }
        }
        void string(std::string_view s) { place(nlohmann::json(std::string(s))); }
        void key(std::string_view k) { key_.assign(k); }
        void begin_object() { stack.push_back(&place(nlohmann::json::object())); }
        void end_object() { stack.pop_back(); }
        void begin_array() { stack.push_back(&place(nlohmann::json::array())); }
        void end_array() { stack.pop_back(); }
    };

    // Parses one value of any shape into handler events, iteratively.
    template <class H>
    void walk(const path& p, H& h) {
        std::vector<bool> in_object; // one entry per open container
        std::string scratch;
        for (;;) {
            // A value starts here.
            switch (next()) {
            case token::object:
                count(p);
                enter(p);
                ++pos_;
                h.begin_object();
                if (peek_char() == '}') {
                    ++pos_;
                    --depth_;
                    h.end_object();
                    break;
                }
                in_object.push_back(true);
                member_name(p, h, scratch);
                continue;
            case token::array:
                count(p);
                enter(p);
                ++pos_;
                h.begin_array();
                if (peek_char() == ']') {
                    ++pos_;
                    --depth_;
                    h.end_array();
                    break;
                }
                in_object.push_back(false);
                continue;
            case token::string: count(p); h.string(string_token(p, scratch)); break;
            case token::number: count(p); h.number(number_token_at(p)); break;
            case token::boolean: count(p); h.boolean(boolean_token(p)); break;
            case token::null: count(p); literal(p, "null"); h.null(); break;
            case token::end: syntax(p, "unexpected end of input, expected a JSON value");
            case token::invalid: syntax(p, "expected a JSON value, got " + describe_char(s_[pos_]));
            }
            // A value ended: close what ends with it, then find the next value.
            for (;;) {
                if (in_object.empty()) return;
                const char c = peek_char();
                if (c == ',') {
                    ++pos_;
                    if (in_object.back()) member_name(p, h, scratch);
                    break;
                }
                if (c == (in_object.back() ? '}' : ']')) {
                    ++pos_;
                    --depth_;
                    if (in_object.back()) h.end_object();
                    else h.end_array();
                    in_object.pop_back();
                    continue;
                }
                syntax(p, in_object.back() ? "expected ',' or '}'" : "expected ',' or ']'");
            }
        }
    }
    template <class H>
    void member_name(const path& p, H& h, std::string& scratch) {
        if (peek_char() != '"') syntax(p, "expected a member name in double quotes");
        h.key(string_token(p, scratch));
        if (peek_char() != ':') syntax(p, "expected ':' after the member name");
        ++pos_;
    }

    std::string_view s_;
    std::size_t pos_ = 0;
    std::size_t depth_ = 0;
    std::size_t elements_ = 0;
    std::size_t max_depth_;
    std::size_t max_elements_;
};

// ---------------------------------------------------------------------------
// Decoders. Each `read(r, p, out)` reads the value that comes next in `r`,
// found at JSON path `p`, into `out`, or throws naming `p`.

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

/// Decodes `n` groups of four standard base64 characters from `in` into
/// 3 * n bytes at `out`; false if any character is outside the alphabet.
inline bool base64_decode_groups(const char* in, std::size_t n, unsigned char* out) noexcept {
    const auto& table = ::crdtsync::detail::b64_std_table;
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

inline void read(reader& r, const path& p, std::string& out) { out = r.string(p); }

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

/// Reads member `type` and checks it is `wanted`.
inline void expect_type(reader& r, const path& p, std::string_view wanted) {
    const auto m = r.mark();
    std::string scratch;
    if (r.string(p, scratch) != wanted) {
        r.rewind(m);
        fail(p, "expected \"" + std::string(wanted) + "\", got " + r.describe_next());
    }
}

/// A string member: a view into the input, or into `buf` when it was written
/// with escapes.
inline std::string_view read_string_view(reader& r, const path& p, std::string& buf) { return r.string(p, buf); }

/// Reads a string into `out`, reusing its storage.
inline void read_string_into(reader& r, const path& p, std::string& out) {
    std::string scratch;
    out.assign(r.string(p, scratch));
}

// Facts are read into `*_parts` first (names as views, no string built) and
// built once complete, straight into the vector that holds them.

/// Members shared by both kinds of change, as read.
struct fact_parts {
    std::string_view schema, table;
    std::string schema_buf, table_buf; // for names written with escapes
    row_key pk;
    hlc version;
    bool type = false, has_schema = false, has_table = false, has_pk = false, has_version = false;
};

struct column_parts : fact_parts {
    std::string_view column;
    std::string column_buf;
    value val;
    std::optional<value> prior_value;
    std::optional<hlc> prior_version;
};

struct delete_parts : fact_parts {
    std::optional<row_key> prior_row;
};

// Member dispatch is the decoders' inner loop: it switches on the name's
// length, then compares once.
[[gnu::always_inline]] inline bool read_fact_member(reader& r, std::string_view key, const path& kp,
                                                    std::string_view type, fact_parts& out) {
    switch (key.size()) {
    case 2:
        if (!key_is(key, "pk")) return false;
        read(r, kp, out.pk);
        out.has_pk = true;
        return true;
    case 3:
        if (!key_is(key, "hlc")) return false;
        read(r, kp, out.version);
        out.has_version = true;
        return true;
    case 4:
        if (!key_is(key, "type")) return false;
        expect_type(r, kp, type);
        out.type = true;
        return true;
    case 5:
        if (!key_is(key, "table")) return false;
        out.table = read_string_view(r, kp, out.table_buf);
        out.has_table = true;
        return true;
    case 6:
        if (!key_is(key, "schema")) return false;
        out.schema = read_string_view(r, kp, out.schema_buf);
        out.has_schema = true;
        return true;
    default: return false;
    }
}

inline void require_fact(const fact_parts& seen, const path& p) {
    require(seen.type, p, "type");
    require(seen.has_schema, p, "schema");
    require(seen.has_table, p, "table");
    require(seen.has_pk, p, "pk");
    require(seen.has_version, p, "hlc");
}

/// Members in the order writers put them (as `write` does).
inline constexpr member_name column_change_members[] = {"type", "schema", "table",      "pk",      "hlc",
                                                        "column", "value", "priorValue", "priorHlc"};
inline constexpr member_name row_delete_members[] = {"type", "schema", "table", "pk", "hlc", "priorRow"};
// (`schemaMigrations` is too long to be recognised so.)
inline constexpr member_name change_set_members[] = {"siteId", "transactionId", "hlc", "changes"};

/// `type_head`: see `peek_change_kind`.
inline void read_parts(reader& r, const path& p, column_parts& out, std::size_t type_head) {
    out.type = type_head != 0;
    bool column = false, val = false, prior_value = false, prior_version = false;
    r.object(p, "a column change object", [&](std::string_view key, const path& kp) CRDTSYNC_WIRE_INLINE {
        if (read_fact_member(r, key, kp, "column", out)) return;
        if (key_is(key, "column")) {
            out.column = read_string_view(r, kp, out.column_buf);
            column = true;
        } else if (key_is(key, "value")) {
            read(r, kp, out.val);
            val = true;
        } else if (key_is(key, "priorValue")) { // null is a value here: the cell was NULL
            out.prior_value.emplace();
            read(r, kp, *out.prior_value);
            prior_value = true;
        } else if (key_is(key, "priorHlc")) {
            if (r.try_null(kp)) {
                prior_version = false;
                return;
            }
            out.prior_version.emplace();
            read(r, kp, *out.prior_version);
            prior_version = true;
        } else {
            r.skip(kp);
        }
    }, column_change_members, type_head);
    require_fact(out, p);
    require(column, p, "column");
    require(val, p, "value");
    if (prior_value != prior_version)
        fail(p / (prior_value ? "priorValue" : "priorHlc"),
             prior_value ? "priorValue without priorHlc: they travel together or not at all"
                         : "priorHlc without priorValue: they travel together or not at all");
    if (!prior_value) {
        out.prior_value.reset();
        out.prior_version.reset();
    }
}

inline void read_parts(reader& r, const path& p, delete_parts& out, std::size_t type_head) {
    out.type = type_head != 0;
    r.object(p, "a delete object", [&](std::string_view key, const path& kp) CRDTSYNC_WIRE_INLINE {
        if (read_fact_member(r, key, kp, "delete", out)) return;
        if (key_is(key, "priorRow")) {
            if (r.try_null(kp)) {
                out.prior_row.reset();
                return;
            }
            out.prior_row.emplace();
            read(r, kp, *out.prior_row);
        } else {
            r.skip(kp);
        }
    }, row_delete_members, type_head);
    require_fact(out, p);
}

/// Converts to the fact its parts make. A fact initialised from it (a
/// variant's alternative, a vector's element) is the returned prvalue itself,
/// built in place: nothing is moved but the parts' vectors and values.
struct column_builder {
    column_parts& c;
    operator column_change() const {
        return column_change{std::string(c.schema), std::string(c.table), std::move(c.pk),
                             c.version,             std::string(c.column), std::move(c.val),
                             std::move(c.prior_value), std::move(c.prior_version)};
    }
};
struct delete_builder {
    delete_parts& d;
    operator row_delete() const {
        return row_delete{std::string(d.schema), std::string(d.table), std::move(d.pk), d.version,
                          std::move(d.prior_row)};
    }
};

/// Sets every member of `out` from the parts.
inline void assign(column_change& out, column_parts& c) {
    out.schema.assign(c.schema);
    out.table.assign(c.table);
    out.pk = std::move(c.pk);
    out.version = c.version;
    out.column.assign(c.column);
    out.val = std::move(c.val);
    out.prior_value = std::move(c.prior_value);
    out.prior_version = std::move(c.prior_version);
}
inline void assign(row_delete& out, delete_parts& d) {
    out.schema.assign(d.schema);
    out.table.assign(d.table);
    out.pk = std::move(d.pk);
    out.version = d.version;
    out.prior_row = std::move(d.prior_row);
}

/// `type_head`: see `peek_change_kind`.
inline void read(reader& r, const path& p, column_change& out, std::size_t type_head = 0) {
    column_parts c;
    read_parts(r, p, c, type_head);
    assign(out, c);
}

inline void read(reader& r, const path& p, row_delete& out, std::size_t type_head = 0) {
    delete_parts d;
    read_parts(r, p, d, type_head);
    assign(out, d);
}

/// Reads the alternative of variant `V` whose `wire_type` equals `t`; false if none.
template <class V, std::size_t I = 0>
bool read_alternative(std::string_view t, reader& r, const path& p, V& out) {
    if constexpr (I == std::variant_size_v<V>) {
        return false;
    } else {
        using alt = std::variant_alternative_t<I, V>;
        if (t == alt::wire_type) {
            alt x;
            read(r, p, x);
            out = std::move(x);
            return true;
        }
        return read_alternative<V, I + 1>(t, r, p, out);
    }
}

template <class V>
std::string wire_type_list() {
    std::string out;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((out += (I == 0 ? "" : ", "), out += std::variant_alternative_t<I, V>::wire_type), ...);
    }(std::make_index_sequence<std::variant_size_v<V>>{});
    return out;
}

/// The `type` member of the object that comes next, read ahead.
inline std::string peek_type(reader& r, const path& p, std::string_view what) {
    auto t = r.peek_member(p, what, "type");
    if (!t) fail(p / "type", "required member is missing");
    return std::move(*t);
}

template <class V>
void read_variant(reader& r, const path& p, V& out, std::string_view what) {
    const std::string t = peek_type(r, p, what);
    if (!read_alternative(t, r, p, out))
        fail(p / "type", "expected one of " + wire_type_list<V>() + ", got the string " + quoted_excerpt(t));
}

enum class change_kind : unsigned char { column, row_delete };

/// The `type` of the change object that comes next, and the length of its
/// opening text `{"type":"column"` when it starts so (else 0).
struct change_head {
    change_kind kind;
    std::size_t head_size;
};

inline change_head peek_change_kind(reader& r, const path& p) {
    // Writers put `type` first: recognise that without reading ahead. The
    // object's reader then takes that member as read.
    constexpr std::string_view column_head = R"({"type":"column")", delete_head = R"({"type":"delete")";
    static_assert(column_head.size() == delete_head.size());
    constexpr std::size_t n = column_head.size();
    if (const std::string_view rest = r.rest(); rest.size() > n && (rest[n] == ',' || rest[n] == '}')) {
        const bool column = std::memcmp(rest.data(), column_head.data(), n) == 0;
        if (column || std::memcmp(rest.data(), delete_head.data(), n) == 0) {
            r.check_read_ahead(p, p / "type"); // the limits break where the read-ahead would break them
            return {column ? change_kind::column : change_kind::row_delete, n};
        }
    }
    const std::string t = peek_type(r, p, "a change object");
    if (t == "column") return {change_kind::column, 0};
    if (t == "delete") return {change_kind::row_delete, 0};
    fail(p / "type", "expected \"column\" or \"delete\", got the string " + quoted_excerpt(t));
}

inline void read(reader& r, const path& p, change& out) {
    const change_head h = peek_change_kind(r, p);
    if (h.kind == change_kind::column) {
        column_parts c;
        read_parts(r, p, c, h.head_size);
        if (auto* x = std::get_if<column_change>(&out)) assign(*x, c);
        else out.emplace<column_change>(column_builder{c});
    } else {
        delete_parts d;
        read_parts(r, p, d, h.head_size);
        if (auto* x = std::get_if<row_delete>(&out)) assign(*x, d);
        else out.emplace<row_delete>(delete_builder{d});
    }
}

/// Facts are built in place in the vector. Its capacity starts at the length
/// of the previous list read (change sets of one batch tend to be alike in
/// size), which never reserves more than the document already held.
inline void read(reader& r, const path& p, std::vector<change>& out) {
    out.clear();
    if (out.capacity() < r.last_changes) out.reserve(r.last_changes);
    r.array(p, "an array", [&](std::size_t, const path& ep) {
        const change_head h = peek_change_kind(r, ep);
        if (h.kind == change_kind::column) {
            column_parts c;
            read_parts(r, ep, c, h.head_size);
            out.emplace_back(std::in_place_type<column_change>, column_builder{c});
        } else {
            delete_parts d;
            read_parts(r, ep, d, h.head_size);
            out.emplace_back(std::in_place_type<row_delete>, delete_builder{d});
        }
    });
    r.last_changes = out.size();
}

inline constexpr migration_kind all_migration_kinds[] = {
    migration_kind::create_table, migration_kind::drop_table,   migration_kind::rename_table,
    migration_kind::add_column,   migration_kind::drop_column,  migration_kind::alter_column,
    migration_kind::add_index,    migration_kind::drop_index};

inline void read(reader& r, const path& p, schema_migration& out) {
    bool type = false, schema = false, table = false, ddl = false, version = false, schema_version = false;
    out.from_table.reset();
    r.object(p, "a schema migration object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "type")) {
            const auto m = r.mark();
            std::string scratch;
            const auto t = r.string(kp, scratch);
            const auto* kind = std::find_if(std::begin(all_migration_kinds), std::end(all_migration_kinds),
                                            [&](migration_kind k) { return to_string(k) == t; });
            if (kind == std::end(all_migration_kinds)) {
                r.rewind(m);
                fail(kp, "expected one of create_table, drop_table, rename_table, add_column, drop_column, "
                         "alter_column, add_index, drop_index, got " + r.describe_next());
            }
            out.type = *kind;
            type = true;
        } else if (key_is(key, "schema")) {
            out.schema = r.string(kp);
            schema = true;
        } else if (key_is(key, "table")) {
            out.table = r.string(kp);
            table = true;
        } else if (key_is(key, "fromTable")) {
            if (r.try_null(kp)) out.from_table.reset();
            else out.from_table = r.string(kp);
        } else if (key_is(key, "ddl")) {
            out.ddl = r.string(kp);
            ddl = true;
        } else if (key_is(key, "hlc")) {
            read(r, kp, out.version);
            version = true;
        } else if (key_is(key, "schemaVersion")) {
            out.schema_version = static_cast<std::int64_t>(
                r.unsigned_integer(kp, std::uint64_t(std::numeric_limits<std::int64_t>::max())));
            schema_version = true;
        } else {
            r.skip(kp);
        }
    });
    require(type, p, "type");
    require(schema, p, "schema");
    require(table, p, "table");
    require(ddl, p, "ddl");
    require(version, p, "hlc");
    require(schema_version, p, "schemaVersion");
}

inline void read(reader& r, const path& p, change_set& out) {
    bool origin = false, transaction = false, version = false, changes = false;
    out.migrations.clear(); // Quereus reads a missing list as empty
    r.object(p, "a change set object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "siteId")) {
            read(r, kp, out.origin);
            origin = true;
        } else if (key_is(key, "transactionId")) {
            read_string_into(r, kp, out.transaction_id);
            transaction = true;
        } else if (key_is(key, "hlc")) {
            read(r, kp, out.version);
            version = true;
        } else if (key_is(key, "changes")) {
            read(r, kp, out.changes);
            changes = true;
        } else if (key_is(key, "schemaMigrations")) {
            if (r.try_null(kp)) out.migrations.clear();
            else read(r, kp, out.migrations);
        } else {
            r.skip(kp);
        }
    }, change_set_members);
    require(origin, p, "siteId");
    require(transaction, p, "transactionId");
    require(version, p, "hlc");
    require(changes, p, "changes");
}

/// An optional string member: absent and `null` both mean "not there".
inline void read_optional(reader& r, const path& kp, std::optional<std::string>& out) {
    if (r.try_null(kp)) out.reset();
    else out = r.string(kp);
}

inline void read(reader& r, const path& p, rejection& out) {
    bool reason = false;
    out.code.reset();
    out.table.reset();
    out.column.reset();
    out.transaction_id.clear();
    r.object(p, "a rejection object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "reason")) {
            out.reason = r.string(kp);
            reason = true;
        } else if (key_is(key, "code")) {
            read_optional(r, kp, out.code);
        } else if (key_is(key, "table")) {
            read_optional(r, kp, out.table);
        } else if (key_is(key, "column")) {
            read_optional(r, kp, out.column);
        } else if (key_is(key, "transactionId")) { // crdtsync's addition
            if (r.try_null(kp)) out.transaction_id.clear();
            else out.transaction_id = r.string(kp);
        } else {
            r.skip(kp);
        }
    });
    require(reason, p, "reason");
}

// `apply_result::unknown_table`: Quereus sends a count of diverted facts;
// these serve whichever of a count or a table name this build keeps.
template <class U>
void read_unknown_table(reader& r, const path& p, std::optional<U>& out) {
    if (r.try_null(p)) {
        out.reset();
    } else if constexpr (std::is_integral_v<U>) {
        out = static_cast<U>(r.unsigned_integer(p, std::numeric_limits<U>::max()));
    } else if (r.next() == reader::token::string) {
        out = r.string(p);
    } else { // a Quereus count, kept as its decimal text
        out = std::to_string(r.unsigned_integer(p, std::numeric_limits<std::uint64_t>::max()));
    }
}

struct apply_result_fields {
    bool applied = false, skipped = false, conflicts = false, transactions = false;
};

/// One member of an apply result; false if `key` is none of its members
/// (the `apply_result` message puts `type` and `requestId` beside them).
inline bool read_apply_result_member(reader& r, std::string_view key, const path& kp, apply_result& out,
                                     apply_result_fields& seen) {
    constexpr auto max = std::numeric_limits<std::uint64_t>::max();
    if (key_is(key, "applied")) {
        out.applied = r.unsigned_integer(kp, max);
        seen.applied = true;
    } else if (key_is(key, "skipped")) {
        out.skipped = r.unsigned_integer(kp, max);
        seen.skipped = true;
    } else if (key_is(key, "conflicts")) {
        out.conflicts = r.unsigned_integer(kp, max);
        seen.conflicts = true;
    } else if (key_is(key, "transactions")) {
        out.transactions = r.unsigned_integer(kp, max);
        seen.transactions = true;
    } else if (key_is(key, "rejected")) {
        if (r.try_null(kp)) out.rejected.clear();
        else read(r, kp, out.rejected);
    } else if (key_is(key, "unknownTable")) {
        read_unknown_table(r, kp, out.unknown_table);
    } else {
        return false;
    }
    return true;
}

inline void require_apply_result(const apply_result_fields& seen, const path& p) {
    require(seen.applied, p, "applied");
    require(seen.skipped, p, "skipped");
    require(seen.conflicts, p, "conflicts");
    require(seen.transactions, p, "transactions");
}

inline void read(reader& r, const path& p, apply_result& out) {
    apply_result_fields seen;
    out.rejected.clear();
    out.unknown_table.reset();
    r.object(p, "an apply result object", [&](std::string_view key, const path& kp) {
        if (!read_apply_result_member(r, key, kp, out, seen)) r.skip(kp);
    });
    require_apply_result(seen, p);
}

// ---- snapshot chunks and messages: flat objects with a `type`

/// Reads an object whose `type` must be `T::wire_type`; `on_member` handles
/// the other members and returns false for those it does not know.
template <class T, class F>
void read_typed(reader& r, const path& p, std::string_view what, F&& on_member) {
    bool type = false;
    r.object(p, what, [&](std::string_view key, const path& kp) {
        if (key_is(key, "type")) {
            expect_type(r, kp, T::wire_type);
            type = true;
        } else if (!on_member(key, kp)) {
            r.skip(kp);
        }
    });
    require(type, p, "type");
}

/// A required member's flag and reader, for `read_typed` callbacks.
#define CRDTSYNC_WIRE_MEMBER(name, flag, ...) \
    if (key_is(key, name)) {                   \
        __VA_ARGS__;                           \
        flag = true;                           \
        return true;                           \
    }

inline void read(reader& r, const path& p, snapshot_header& out) {
    out.position.reset();
    out.receiver_position.reset();
    bool site = false, version = false, format = false, tables = false, migrations = false, id = false;
    read_typed<snapshot_header>(r, p, "a snapshot header chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("siteId", site, read(r, kp, out.origin))
        CRDTSYNC_WIRE_MEMBER("hlc", version, read(r, kp, out.version))
        CRDTSYNC_WIRE_MEMBER("snapshotFormat", format,
                             out.snapshot_format = static_cast<std::uint32_t>(r.unsigned_integer(kp, 0xFFFFFFFFu)))
        CRDTSYNC_WIRE_MEMBER("tableCount", tables, out.table_count = r.unsigned_integer(kp, UINT64_MAX))
        CRDTSYNC_WIRE_MEMBER("migrationCount", migrations, out.migration_count = r.unsigned_integer(kp, UINT64_MAX))
        CRDTSYNC_WIRE_MEMBER("snapshotId", id, out.snapshot_id = r.string(kp))
        if (key_is(key, "position")) { // crdtsync's addition
            if (r.try_null(kp)) out.position.reset();
            else out.position = r.unsigned_integer(kp, UINT64_MAX);
            return true;
        }
        if (key_is(key, "receiverPosition")) { // crdtsync's addition
            if (r.try_null(kp)) out.receiver_position.reset();
            else out.receiver_position = r.unsigned_integer(kp, UINT64_MAX);
            return true;
        }
        return false;
    });
    require(site, p, "siteId");
    require(version, p, "hlc");
    require(format, p, "snapshotFormat");
    require(tables, p, "tableCount");
    require(migrations, p, "migrationCount");
    require(id, p, "snapshotId");
}

inline void read(reader& r, const path& p, snapshot_schema_migration& out) {
    bool migration = false;
    read_typed<snapshot_schema_migration>(r, p, "a snapshot schema-migration chunk",
                                          [&](std::string_view key, const path& kp) {
                                              CRDTSYNC_WIRE_MEMBER("migration", migration, read(r, kp, out.migration))
                                              return false;
                                          });
    require(migration, p, "migration");
}

inline void read(reader& r, const path& p, snapshot_table_start& out) {
    out.first_entry = 0;
    bool schema = false, table = false, estimated = false;
    read_typed<snapshot_table_start>(r, p, "a snapshot table-start chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("schema", schema, out.schema = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("estimatedEntries", estimated, out.estimated_entries = r.unsigned_integer(kp, UINT64_MAX))
        if (key_is(key, "firstEntry")) { // crdtsync's addition
            out.first_entry = r.unsigned_integer(kp, UINT64_MAX);
            return true;
        }
        return false;
    });
    require(schema, p, "schema");
    require(table, p, "table");
    require(estimated, p, "estimatedEntries");
}

inline void read(reader& r, const path& p, column_version_entry& out) {
    bool column = false, version = false, val = false, pk = false;
    r.object(p, "a column version entry object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "column")) {
            out.column = r.string(kp);
            column = true;
        } else if (key_is(key, "hlc")) {
            read(r, kp, out.version);
            version = true;
        } else if (key_is(key, "value")) {
            read(r, kp, out.val);
            val = true;
        } else if (key_is(key, "pk")) {
            read(r, kp, out.pk);
            pk = true;
        } else {
            r.skip(kp);
        }
    });
    require(column, p, "column");
    require(version, p, "hlc");
    require(val, p, "value");
    require(pk, p, "pk");
}

inline void read(reader& r, const path& p, snapshot_column_versions& out) {
    bool schema = false, table = false, entries = false;
    read_typed<snapshot_column_versions>(r, p, "a snapshot column-versions chunk",
                                         [&](std::string_view key, const path& kp) {
                                             CRDTSYNC_WIRE_MEMBER("schema", schema, out.schema = r.string(kp))
                                             CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
                                             CRDTSYNC_WIRE_MEMBER("entries", entries, read(r, kp, out.entries))
                                             return false;
                                         });
    require(schema, p, "schema");
    require(table, p, "table");
    require(entries, p, "entries");
}

inline void read(reader& r, const path& p, snapshot_table_end& out) {
    bool schema = false, table = false, written = false;
    read_typed<snapshot_table_end>(r, p, "a snapshot table-end chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("schema", schema, out.schema = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("entriesWritten", written, out.entries_written = r.unsigned_integer(kp, UINT64_MAX))
        return false;
    });
    require(schema, p, "schema");
    require(table, p, "table");
    require(written, p, "entriesWritten");
}

inline void read(reader& r, const path& p, tombstone_entry& out) {
    bool pk = false, version = false, created = false;
    out.prior_row.reset();
    r.object(p, "a tombstone entry object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "pk")) {
            read(r, kp, out.pk);
            pk = true;
        } else if (key_is(key, "hlc")) {
            read(r, kp, out.version);
            version = true;
        } else if (key_is(key, "createdAt")) {
            out.created_at = r.unsigned_integer(kp, UINT64_MAX);
            created = true;
        } else if (key_is(key, "priorRow")) {
            if (r.try_null(kp)) {
                out.prior_row.reset();
                return;
            }
            out.prior_row.emplace();
            read(r, kp, *out.prior_row);
        } else {
            r.skip(kp);
        }
    });
    require(pk, p, "pk");
    require(version, p, "hlc");
    require(created, p, "createdAt");
}

inline void read(reader& r, const path& p, snapshot_tombstones& out) {
    bool schema = false, table = false, entries = false;
    read_typed<snapshot_tombstones>(r, p, "a snapshot tombstone chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("schema", schema, out.schema = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("entries", entries, read(r, kp, out.entries))
        return false;
    });
    require(schema, p, "schema");
    require(table, p, "table");
    require(entries, p, "entries");
}

inline void read(reader& r, const path& p, snapshot_footer& out) {
    bool id = false, tables = false, entries = false, migrations = false;
    read_typed<snapshot_footer>(r, p, "a snapshot footer chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("snapshotId", id, out.snapshot_id = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("totalTables", tables, out.total_tables = r.unsigned_integer(kp, UINT64_MAX))
        CRDTSYNC_WIRE_MEMBER("totalEntries", entries, out.total_entries = r.unsigned_integer(kp, UINT64_MAX))
        CRDTSYNC_WIRE_MEMBER("totalMigrations", migrations, out.total_migrations = r.unsigned_integer(kp, UINT64_MAX))
        return false;
    });
    require(id, p, "snapshotId");
    require(tables, p, "totalTables");
    require(entries, p, "totalEntries");
    require(migrations, p, "totalMigrations");
}

inline void read(reader& r, const path& p, snapshot_chunk& out) { read_variant(r, p, out, "a snapshot chunk object"); }

inline void read(reader& r, const path& p, snapshot_last_entry& out) {
    bool table = false, pk = false, column = false;
    r.object(p, "a last entry object", [&](std::string_view key, const path& kp) {
        const auto member = [&]() -> bool {
            CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
            CRDTSYNC_WIRE_MEMBER("pk", pk, read(r, kp, out.pk))
            CRDTSYNC_WIRE_MEMBER("column", column, out.column = r.string(kp))
            return false;
        };
        if (!member()) r.skip(kp);
    });
    require(table, p, "table");
    require(pk, p, "pk");
    require(column, p, "column");
}

inline void read(reader& r, const path& p, snapshot_checkpoint& out) {
    out.position.reset();
    out.last_entry.reset();
    bool id = false, site = false, version = false, table_index = false, entry_index = false, completed = false,
         processed = false, created = false;
    r.object(p, "a snapshot checkpoint object", [&](std::string_view key, const path& kp) {
        const auto member = [&]() -> bool {
            CRDTSYNC_WIRE_MEMBER("snapshotId", id, out.snapshot_id = r.string(kp))
            CRDTSYNC_WIRE_MEMBER("siteId", site, read(r, kp, out.origin))
            CRDTSYNC_WIRE_MEMBER("hlc", version, read(r, kp, out.version))
            CRDTSYNC_WIRE_MEMBER("lastTableIndex", table_index, out.last_table_index = r.unsigned_integer(kp, UINT64_MAX))
            CRDTSYNC_WIRE_MEMBER("lastEntryIndex", entry_index, out.last_entry_index = r.unsigned_integer(kp, UINT64_MAX))
            CRDTSYNC_WIRE_MEMBER("completedTables", completed, read(r, kp, out.completed_tables))
            CRDTSYNC_WIRE_MEMBER("entriesProcessed", processed, out.entries_processed = r.unsigned_integer(kp, UINT64_MAX))
            CRDTSYNC_WIRE_MEMBER("createdAt", created, out.created_at = r.unsigned_integer(kp, UINT64_MAX))
            if (key_is(key, "position")) { // crdtsync's addition
                if (r.try_null(kp)) out.position.reset();
                else out.position = r.unsigned_integer(kp, UINT64_MAX);
                return true;
            }
            if (key_is(key, "lastEntry")) { // crdtsync's addition
                if (r.try_null(kp)) out.last_entry.reset();
                else read(r, kp, out.last_entry.emplace());
                return true;
            }
            return false;
        };
        if (!member()) r.skip(kp);
    });
    require(id, p, "snapshotId");
    require(site, p, "siteId");
    require(version, p, "hlc");
    require(table_index, p, "lastTableIndex");
    require(entry_index, p, "lastEntryIndex");
    require(completed, p, "completedTables");
    require(processed, p, "entriesProcessed");
    require(created, p, "createdAt");
}

// ---- messages

inline void read(reader& r, const path& p, msg::handshake& out) {
    bool database = false, site = false, version = false;
    out.token.reset();
    read_typed<msg::handshake>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("databaseId", database, out.database_id = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("siteId", site, read(r, kp, out.site))
        CRDTSYNC_WIRE_MEMBER("protocolVersion", version,
                             out.protocol_version = static_cast<std::uint32_t>(r.unsigned_integer(kp, 0xFFFFFFFFu)))
        if (key_is(key, "token")) {
            read_optional(r, kp, out.token);
            return true;
        }
        return false;
    });
    require(database, p, "databaseId");
    require(site, p, "siteId");
    require(version, p, "protocolVersion");
}

inline void read(reader& r, const path& p, msg::get_changes& out) {
    out.since.reset();
    read_typed<msg::get_changes>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        if (!key_is(key, "sinceHLC")) return false;
        if (r.try_null(kp)) {
            out.since.reset();
            return true;
        }
        if (r.next() == reader::token::string) { // Quereus reads "" as absent
            const auto m = r.mark();
            if (r.string(kp).empty()) {
                out.since.reset();
                return true;
            }
            r.rewind(m);
        }
        out.since.emplace();
        read(r, kp, *out.since);
        return true;
    });
}

inline void read(reader& r, const path& p, msg::apply_changes& out) {
    bool changes = false;
    out.request_id.reset();
    read_typed<msg::apply_changes>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("changes", changes, read(r, kp, out.changes))
        if (key_is(key, "requestId")) {
            read_optional(r, kp, out.request_id);
            return true;
        }
        return false;
    });
    require(changes, p, "changes");
}

template <class Empty>
    requires std::is_empty_v<Empty>
void read(reader& r, const path& p, Empty&) {
    read_typed<Empty>(r, p, "a message object", [](std::string_view, const path&) { return false; });
}

inline void read(reader& r, const path& p, msg::resume_snapshot& out) {
    bool checkpoint = false;
    read_typed<msg::resume_snapshot>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("checkpoint", checkpoint, read(r, kp, out.checkpoint))
        return false;
    });
    require(checkpoint, p, "checkpoint");
}

inline void read(reader& r, const path& p, msg::handshake_ack& out) {
    bool server = false, connection = false, version = false;
    out.database_id.reset();
    read_typed<msg::handshake_ack>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("serverSiteId", server, read(r, kp, out.server_site))
        CRDTSYNC_WIRE_MEMBER("connectionId", connection, out.connection_id = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("protocolVersion", version,
                             out.protocol_version = static_cast<std::uint32_t>(r.unsigned_integer(kp, 0xFFFFFFFFu)))
        if (key_is(key, "databaseId")) {
            read_optional(r, kp, out.database_id);
            return true;
        }
        return false;
    });
    require(server, p, "serverSiteId");
    require(connection, p, "connectionId");
    require(version, p, "protocolVersion");
}

template <class M>
void read_change_sets_message(reader& r, const path& p, M& out) {
    bool sets = false;
    read_typed<M>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("changeSets", sets, read(r, kp, out.change_sets))
        return false;
    });
    require(sets, p, "changeSets");
}

inline void read(reader& r, const path& p, msg::changes& out) { read_change_sets_message(r, p, out); }
inline void read(reader& r, const path& p, msg::push_changes& out) { read_change_sets_message(r, p, out); }

inline void read(reader& r, const path& p, msg::apply_result& out) {
    apply_result_fields seen;
    out.request_id.reset();
    out.result.rejected.clear();
    out.result.unknown_table.reset();
    read_typed<msg::apply_result>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "requestId")) {
            read_optional(r, kp, out.request_id);
            return true;
        }
        return read_apply_result_member(r, key, kp, out.result, seen);
    });
    require_apply_result(seen, p);
}

inline void read(reader& r, const path& p, msg::snapshot_chunk& out) {
    bool chunk = false;
    read_typed<msg::snapshot_chunk>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("chunk", chunk, read(r, kp, out.chunk))
        return false;
    });
    require(chunk, p, "chunk");
}

inline void read(reader& r, const path& p, msg::error& out) {
    bool code = false, message = false;
    out.fatal.reset();
    read_typed<msg::error>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("code", code, out.code = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("message", message, out.message = r.string(kp))
        if (key_is(key, "fatal")) {
            if (r.try_null(kp)) out.fatal.reset();
            else out.fatal = r.boolean(kp);
            return true;
        }
        return false;
    });
    require(code, p, "code");
    require(message, p, "message");
}

inline void read(reader& r, const path& p, message& out) { read_variant(r, p, out, "a message object"); }

#undef CRDTSYNC_WIRE_MEMBER

// ---------------------------------------------------------------------------
// Writers. `write(s, x)` writes `x` through sink `s`; member order follows
// Quereus's serializers.

template <class Sink>
void write_dom(Sink& s, const json& j) {
    switch (j.type()) {
    case json::value_t::null: s.null(); return;
    case json::value_t::boolean: s.boolean(j.get<bool>()); return;
    case json::value_t::number_integer: s.integer(j.get<std::int64_t>()); return;
    case json::value_t::number_unsigned: s.uinteger(j.get<std::uint64_t>()); return;
    case json::value_t::number_float: s.real(j.get<double>()); return;
    case json::value_t::string: s.string(j.get_ref<const std::string&>()); return;
    case json::value_t::array:
        s.begin_array();
        for (const auto& e : j) write_dom(s, e);
        s.end_array();
        return;
    case json::value_t::object:
        s.begin_object();
        for (const auto& [k, v] : *j.get_ptr<const json::object_t*>()) {
            s.key(k);
            write_dom(s, v);
        }
        s.end_object();
        return;
    case json::value_t::binary:
    case json::value_t::discarded: s.null(); return;
    }
}

template <class Sink>
void write_tagged(Sink& s, std::string_view tag, std::string_view text) {
    s.begin_object();
    s.field(tag);
    s.ascii(text);
    s.end_object();
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

template <class Sink>
void write_fact_base(Sink& s, std::string_view type, const std::string& schema, const std::string& table,
                     const row_key& pk, const hlc& version) {
    s.begin_object();
    s.field("type");
    s.ascii(type);
    s.field("schema");
    s.string(schema);
    s.field("table");
    s.string(table);
    s.field("pk");
    write(s, pk);
    s.field("hlc");
    write(s, version);
}

/// \throws usage_error if exactly one of prior_value / prior_version is set.
template <class Sink>
void write(Sink& s, const column_change& c) {
    if (c.prior_value.has_value() != c.prior_version.has_value())
        ::crdtsync::detail::raise(errc::invalid_argument,
                                  "column_change: prior_value and prior_version must both be set or both be empty");
    write_fact_base(s, "column", c.schema, c.table, c.pk, c.version);
    s.field("column");
    s.string(c.column);
    s.field("value");
    write_value(s, c.val);
    if (c.prior_version) {
        s.field("priorValue");
        write_value(s, *c.prior_value);
        s.field("priorHlc");
        write(s, *c.prior_version);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const row_delete& d) {
    write_fact_base(s, "delete", d.schema, d.table, d.pk, d.version);
    if (d.prior_row) {
        s.field("priorRow");
        write(s, *d.prior_row);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const change& c) {
    std::visit([&](const auto& x) { write(s, x); }, c);
}

template <class Sink>
void write(Sink& s, const schema_migration& m) {
    s.begin_object();
    s.field("type");
    s.ascii(to_string(m.type));
    s.field("schema");
    s.string(m.schema);
    s.field("table");
    s.string(m.table);
    if (m.from_table) {
        s.field("fromTable");
        s.string(*m.from_table);
    }
    s.field("ddl");
    s.string(m.ddl);
    s.field("hlc");
    write(s, m.version);
    s.field("schemaVersion");
    s.integer(m.schema_version);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const change_set& cs) {
    s.begin_object();
    s.field("siteId");
    write(s, cs.origin);
    s.field("transactionId");
    s.string(cs.transaction_id);
    s.field("hlc");
    write(s, cs.version);
    s.field("changes");
    write(s, cs.changes);
    s.field("schemaMigrations");
    write(s, cs.migrations);
    s.end_object();
}

template <class Sink>
void write_optional_string(Sink& s, std::string_view name, const std::optional<std::string>& v) {
    if (v) {
        s.field(name);
        s.string(*v);
    }
}

/// `transactionId` is a crdtsync addition (Quereus readers ignore it): which
/// change set was rejected. Written only when known.
template <class Sink>
void write(Sink& s, const rejection& r) {
    s.begin_object();
    s.field("reason");
    s.string(r.reason);
    write_optional_string(s, "code", r.code);
    write_optional_string(s, "table", r.table);
    write_optional_string(s, "column", r.column);
    if (!r.transaction_id.empty()) {
        s.field("transactionId");
        s.string(r.transaction_id);
    }
    s.end_object();
}

// `apply_result::unknown_table`: Quereus sends a count of diverted facts;
// these serve whichever of a count or a table name this build keeps.
template <class Sink, class U>
void write_unknown_table(Sink& s, const U& u) {
    if constexpr (std::is_integral_v<U>) s.uinteger(static_cast<std::uint64_t>(u));
    else s.string(u);
}

template <class Sink>
void write_apply_result_members(Sink& s, const apply_result& r) {
    s.field("applied");
    s.uinteger(r.applied);
    s.field("skipped");
    s.uinteger(r.skipped);
    s.field("conflicts");
    s.uinteger(r.conflicts);
    s.field("transactions");
    s.uinteger(r.transactions);
    if (!r.rejected.empty()) {
        s.field("rejected");
        write(s, r.rejected);
    }
    if (r.unknown_table) {
        s.field("unknownTable");
        write_unknown_table(s, *r.unknown_table);
    }
}

template <class Sink>
void write(Sink& s, const apply_result& r) {
    s.begin_object();
    write_apply_result_members(s, r);
    s.end_object();
}

// ---- snapshot chunks

template <class Sink, class Chunk>
void begin_chunk(Sink& s, const Chunk&) {
    s.begin_object();
    s.field("type");
    s.ascii(Chunk::wire_type);
}

template <class Sink>
void write_table_name(Sink& s, const std::string& schema, const std::string& table) {
    s.field("schema");
    s.string(schema);
    s.field("table");
    s.string(table);
}

template <class Sink>
void write(Sink& s, const snapshot_header& h) {
    begin_chunk(s, h);
    s.field("siteId");
    write(s, h.origin);
    s.field("hlc");
    write(s, h.version);
    s.field("snapshotFormat");
    s.uinteger(h.snapshot_format);
    s.field("tableCount");
    s.uinteger(h.table_count);
    s.field("migrationCount");
    s.uinteger(h.migration_count);
    s.field("snapshotId");
    s.string(h.snapshot_id);
    if (h.position) {
        s.field("position");
        s.uinteger(*h.position);
    }
    if (h.receiver_position) {
        s.field("receiverPosition");
        s.uinteger(*h.receiver_position);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_schema_migration& m) {
    begin_chunk(s, m);
    s.field("migration");
    write(s, m.migration);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_table_start& t) {
    begin_chunk(s, t);
    write_table_name(s, t.schema, t.table);
    s.field("estimatedEntries");
    s.uinteger(t.estimated_entries);
    if (t.first_entry != 0) {
        s.field("firstEntry");
        s.uinteger(t.first_entry);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const column_version_entry& e) {
    s.begin_object();
    s.field("column");
    s.string(e.column);
    s.field("hlc");
    write(s, e.version);
    s.field("value");
    write_value(s, e.val);
    s.field("pk");
    write(s, e.pk);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_column_versions& c) {
    begin_chunk(s, c);
    write_table_name(s, c.schema, c.table);
    s.field("entries");
    write(s, c.entries);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_table_end& t) {
    begin_chunk(s, t);
    write_table_name(s, t.schema, t.table);
    s.field("entriesWritten");
    s.uinteger(t.entries_written);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const tombstone_entry& e) {
    s.begin_object();
    s.field("pk");
    write(s, e.pk);
    s.field("hlc");
    write(s, e.version);
    s.field("createdAt");
    s.uinteger(e.created_at);
    if (e.prior_row) {
        s.field("priorRow");
        write(s, *e.prior_row);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_tombstones& t) {
    begin_chunk(s, t);
    write_table_name(s, t.schema, t.table);
    s.field("entries");
    write(s, t.entries);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_footer& f) {
    begin_chunk(s, f);
    s.field("snapshotId");
    s.string(f.snapshot_id);
    s.field("totalTables");
    s.uinteger(f.total_tables);
    s.field("totalEntries");
    s.uinteger(f.total_entries);
    s.field("totalMigrations");
    s.uinteger(f.total_migrations);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_chunk& c) {
    std::visit([&](const auto& x) { write(s, x); }, c);
}

template <class Sink>
void write(Sink& s, const snapshot_checkpoint& k) {
    s.begin_object();
    s.field("snapshotId");
    s.string(k.snapshot_id);
    s.field("siteId");
    write(s, k.origin);
    s.field("hlc");
    write(s, k.version);
    s.field("lastTableIndex");
    s.uinteger(k.last_table_index);
    s.field("lastEntryIndex");
    s.uinteger(k.last_entry_index);
    s.field("completedTables");
    write(s, k.completed_tables);
    s.field("entriesProcessed");
    s.uinteger(k.entries_processed);
    s.field("createdAt");
    s.uinteger(k.created_at);
    if (k.position) {
        s.field("position");
        s.uinteger(*k.position);
    }
    if (k.last_entry) {
        s.field("lastEntry");
        s.begin_object();
        s.field("table");
        s.string(k.last_entry->table);
        s.field("pk");
        write(s, k.last_entry->pk);
        s.field("column");
        s.string(k.last_entry->column);
        s.end_object();
    }
    s.end_object();
}

// ---- messages

template <class Sink>
void write(Sink& s, const msg::handshake& m) {
    begin_chunk(s, m);
    s.field("databaseId");
    s.string(m.database_id);
    s.field("siteId");
    write(s, m.site);
    write_optional_string(s, "token", m.token);
    s.field("protocolVersion");
    s.uinteger(m.protocol_version);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::get_changes& m) {
    begin_chunk(s, m);
    if (m.since) {
        s.field("sinceHLC");
        write(s, *m.since);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::apply_changes& m) {
    begin_chunk(s, m);
    s.field("changes");
    write(s, m.changes);
    write_optional_string(s, "requestId", m.request_id);
    s.end_object();
}

template <class Sink, class Empty>
    requires std::is_empty_v<Empty>
void write(Sink& s, const Empty& m) {
    begin_chunk(s, m);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::resume_snapshot& m) {
    begin_chunk(s, m);
    s.field("checkpoint");
    write(s, m.checkpoint);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::handshake_ack& m) {
    begin_chunk(s, m);
    s.field("serverSiteId");
    write(s, m.server_site);
    s.field("connectionId");
    s.string(m.connection_id);
    write_optional_string(s, "databaseId", m.database_id);
    s.field("protocolVersion");
    s.uinteger(m.protocol_version);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::changes& m) {
    begin_chunk(s, m);
    s.field("changeSets");
    write(s, m.change_sets);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::push_changes& m) {
    begin_chunk(s, m);
    s.field("changeSets");
    write(s, m.change_sets);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::apply_result& m) {
    begin_chunk(s, m);
    write_optional_string(s, "requestId", m.request_id);
    write_apply_result_members(s, m.result);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::snapshot_chunk& m) {
    begin_chunk(s, m);
    s.field("chunk");
    write(s, m.chunk);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::error& m) {
    begin_chunk(s, m);
    s.field("code");
    s.string(m.code);
    s.field("message");
    s.string(m.message);
    if (m.fatal) {
        s.field("fatal");
        s.boolean(*m.fatal);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const message& m) {
    std::visit([&](const auto& x) { write(s, x); }, m);
}

template <class T, class... Ts>
inline constexpr bool is_one_of_v = (std::is_same_v<T, Ts> || ...);

template <class T, class V>
struct is_alternative;
template <class T, class... Ts>
struct is_alternative<T, std::variant<Ts...>> : std::bool_constant<is_one_of_v<T, Ts...>> {};

} // namespace detail

/// True for every type this codec reads and writes directly. `std::vector`s
/// of these (a JSON array) are supported too.
template <class T>
inline constexpr bool is_wire_type_v =
    detail::is_one_of_v<T, value, hlc, site_id, column_change, row_delete, change, schema_migration, change_set,
                        rejection, apply_result, snapshot_chunk, column_version_entry, tombstone_entry,
                        snapshot_checkpoint, message> ||
    detail::is_alternative<T, snapshot_chunk>::value || detail::is_alternative<T, message>::value;

namespace detail {
template <class T>
struct is_codec_type : std::bool_constant<is_wire_type_v<T>> {};
template <class T>
struct is_codec_type<std::vector<T>> : is_codec_type<T> {};
} // namespace detail

/// Types accepted by `decode`, `encode`, `from_json` and `to_json`.
template <class T>
concept wire_type = detail::is_codec_type<T>::value;

/// Parses JSON text within the bounds of `opts`.
/// \throws parse_error: `errc::limit_exceeded` for a broken bound, else
/// `errc::decode`; the message names the JSON path where parsing stopped.
[[nodiscard]] inline nlohmann::json parse(std::string_view json_text, const decode_options& opts = {}) {
    if (json_text.size() > opts.max_bytes)
        detail::fail_limit("$", "the input is " + std::to_string(json_text.size()) + " bytes, more than max_bytes = " +
                                    std::to_string(opts.max_bytes));
    detail::reader r(json_text, opts);
    nlohmann::json doc = r.dom(detail::path{});
    r.expect_end();
    return doc;
}

/// Decodes JSON text.
/// \throws parse_error: `errc::limit_exceeded` when the text breaks a bound
/// of `opts`, `errc::decode` for anything else; the message starts with the
/// JSON path of the problem.
template <wire_type T>
[[nodiscard]] T decode(std::string_view json_text, const decode_options& opts = {}) {
    if (json_text.size() > opts.max_bytes)
        detail::fail_limit("$", "the input is " + std::to_string(json_text.size()) + " bytes, more than max_bytes = " +
                                    std::to_string(opts.max_bytes));
    detail::reader r(json_text, opts);
    T out{};
    detail::read(r, detail::path{}, out);
    r.expect_end();
    return out;
}

/// Decodes a JSON value held as an nlohmann::json (through its text, so it
/// is checked exactly as `decode` checks text).
/// \throws parse_error as `decode` does.
template <wire_type T>
[[nodiscard]] T from_json(const nlohmann::json& j, const decode_options& opts = {}) {
    // Bound the depth before dump() recurses over a caller-built document.
    std::vector<std::pair<const nlohmann::json*, std::size_t>> todo{{&j, 1}};
    const std::size_t max_depth = std::min(opts.max_depth, detail::reader::hard_max_depth);
    while (!todo.empty()) {
        const auto [v, d] = todo.back();
        todo.pop_back();
        if (d > max_depth)
            detail::fail_limit("$", "nesting deeper than max_depth = " + std::to_string(max_depth));
        if (v->is_structured())
            for (const auto& child : *v) todo.emplace_back(&child, d + 1);
    }
    std::string text;
    try {
        text = j.dump();
    } catch (const nlohmann::json::exception& e) {
        detail::fail(detail::path{}, std::string("cannot read the document: ") + e.what());
    }
    return decode<T>(text, opts);
}

/// Encodes as an nlohmann::json value (equal, as a JSON value, to a parse of
/// `encode(x)`).
/// \throws parse_error (`errc::invalid_value`) for text that is not UTF-8 or a
/// JSON cell value that is not JSON; usage_error for a column change with only
/// one of prior_value / prior_version.
template <wire_type T>
[[nodiscard]] nlohmann::json to_json(const T& x) {
    detail::dom_sink s;
    detail::write(s, x);
    return std::move(s.root);
}

/// Encodes as compact JSON text, byte for byte what JavaScript's
/// JSON.stringify writes for the same data (up to member order).
/// \throws as `to_json`.
template <wire_type T>
[[nodiscard]] std::string encode(const T& x) {
    detail::text_sink s;
    detail::write(s, x);
    return std::move(s.out);
}

/// The text of a JSON cell value as it travels, and so as every replica
/// stores it: compact, members sorted by name, numbers and strings as
/// JSON.stringify writes them. A replica stores JSON cells in this form.
/// \throws parse_error (`errc::invalid_value`) when `text` is not a JSON
/// object or array, nests deeper than `decode_options::max_depth`, or is an
/// object with a `__bin` or `__bigint` member (it would read back as a blob
/// or a big integer).
[[nodiscard]] inline std::string canonical_json_cell(const json_text& cell) {
    detail::text_sink s;
    detail::write_json_value(s, cell);
    return std::move(s.out);
}

/// A JSON array of change sets, as `getChangesSince` returns them.
[[nodiscard]] inline std::vector<change_set> decode_change_sets(std::string_view json_text,
                                                                const decode_options& opts = {}) {
    return decode<std::vector<change_set>>(json_text, opts);
}

[[nodiscard]] inline std::string encode_change_sets(std::span<const change_set> sets) {
    detail::text_sink s;
    s.out.reserve(64 + sets.size() * 256);
    s.begin_array();
    for (const auto& cs : sets) detail::write(s, cs);
    s.end_array();
    return std::move(s.out);
}

/// One coordinator frame. An unknown `type` is an error.
[[nodiscard]] inline message decode_message(std::string_view json_text, const decode_options& opts = {}) {
    return decode<message>(json_text, opts);
}

[[nodiscard]] inline std::string encode_message(const message& m) { return encode(m); }

[[nodiscard]] inline snapshot_chunk decode_snapshot_chunk(std::string_view json_text,
                                                          const decode_options& opts = {}) {
    return decode<snapshot_chunk>(json_text, opts);
}

[[nodiscard]] inline std::string encode_snapshot_chunk(const snapshot_chunk& c) { return encode(c); }

/// A JSON array of snapshot chunks (a whole stream kept as one document).
[[nodiscard]] inline std::vector<snapshot_chunk> decode_snapshot_chunks(std::string_view json_text,
                                                                        const decode_options& opts = {}) {
    return decode<std::vector<snapshot_chunk>>(json_text, opts);
}

[[nodiscard]] inline std::string encode_snapshot_chunks(std::span<const snapshot_chunk> chunks) {
    detail::text_sink s;
    s.begin_array();
    for (const auto& c : chunks) detail::write(s, c);
    s.end_array();
    return std::move(s.out);
}

} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync

/// `nlohmann::json j = x;` and `j.get<T>()` for every wire type. `get`
/// reports errors with paths relative to `j`.
namespace nlohmann {
template <class T>
struct adl_serializer<T, std::enable_if_t<crdtsync::wire::is_wire_type_v<T>>> {
    static void to_json(json& j, const T& x) { j = crdtsync::wire::to_json(x); }
    static T from_json(const json& j) { return crdtsync::wire::from_json<T>(j); }
    static void from_json(const json& j, T& x) { x = crdtsync::wire::from_json<T>(j); }
};
} // namespace nlohmann
