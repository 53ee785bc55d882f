#pragma once
// The tokenizer: a strict RFC 8259 pull parser that decoders drive.

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
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <nlohmann/json.hpp>

#include <crdtsync/detail/utf8.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/hlc.hpp>
#include <crdtsync/wire/decode_options.hpp>
#include <crdtsync/wire/detail/text.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {
namespace detail {

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

/// A member name as a decoder expects it: `"<name>":`, at most 16 bytes,
/// with no character that a JSON string would escape.
struct member_name {
    std::string_view name;
    std::array<char, 16> text{}; ///< `"<name>":`, zero-padded
    std::size_t text_size = 0;

    constexpr member_name() = default;
    template <std::size_t N>
    consteval member_name(const char (&literal)[N]) : member_name(std::string_view(literal, N - 1)) {}
    /// Constant-evaluated only (descriptions build their members' names so).
    constexpr explicit member_name(std::string_view n) : name(n), text_size(n.size() + 3) {
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
    template <class F>
    void object(const path& p, std::string_view what, F&& on_member) {
        bool more = enter_object(p, what);
        std::string escaped_key; // only used by keys with escapes
        while (more) {
            const std::string_view key = member_key(p, escaped_key);
            const path kp = p / key;
            on_member(key, kp);
            more = after_member(kp);
        }
    }

    // ---- objects step by step, for decoders that expect their members in
    // an order (wire/detail/described.hpp): `enter_object`, then for each
    // member its name (`member_is` or `member_key`), its value, and
    // `after_member`, until that says the object ended.

    /// Enters the object that comes next; false if it is empty (then it is
    /// read whole). `head_size`, when not 0, is the length of its opening
    /// text `{"<head_key>":"<string>"`, which the caller has already checked
    /// (it holds no escape and no byte to validate): that member is taken as
    /// read, and the result says whether another follows.
    bool enter_object(const path& p, std::string_view what, std::string_view head_key = {},
                      std::size_t head_size = 0) {
        if (next() != token::object) expected(p, what);
        count(p);
        enter(p);
        if (head_size != 0) {
            const path kp = p / head_key;
            count(kp);
            pos_ += head_size;
            return after_member(kp);
        }
        ++pos_;
        if (peek_char() != '}') return true;
        ++pos_;
        --depth_;
        return false;
    }

    /// At a member: if its name is `name` (written as a writer writes it),
    /// consumes the name and its ':' and returns true. One comparison.
    [[nodiscard, gnu::always_inline]] bool member_is(const member_name& name) noexcept {
        if (!name.at(s_, pos_)) return false;
        pos_ += name.text_size;
        return true;
    }

    /// At a member: reads its name (a view into the input, or into
    /// `scratch` when written with escapes) and its ':'.
    std::string_view member_key(const path& p, std::string& scratch) {
        if (peek_char() != '"') syntax(p, "expected a member name in double quotes");
        const std::string_view key = string_token(p, scratch);
        if (peek_char() != ':') syntax(p / key, "expected ':' after the member name");
        ++pos_;
        return key;
    }

    /// After the value of member `kp`: true if another member follows, false
    /// if the object ends here (it is left).
    [[gnu::always_inline]] bool after_member(const path& kp) {
        const char c = peek_char();
        if (c == ',') {
            ++pos_;
            return true;
        }
        if (c == '}') {
            ++pos_;
            --depth_;
            return false;
        }
        syntax(kp, "expected ',' or '}' after the member's value");
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
            const std::uint64_t at_quote = v ^ (ones * '"'), at_backslash = v ^ (ones * '\\');
            // A byte is flagged when it is zero in `at_quote` or `at_backslash`, below
            // 0x20, or has its high bit set.
            const std::uint64_t stops = (((at_quote - ones) & ~at_quote) | ((at_backslash - ones) & ~at_backslash) |
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
            i += char_length(p, i, c);
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
                if (const char plain = unescaped_char[static_cast<unsigned char>(e)]; plain != 0) {
                    scratch += plain;
                    i += 2;
                    continue;
                }
                pos_ = i;
                if (e != 'u') syntax(p, "invalid escape \\" + std::string(1, e) + " in a string");
                long cp = hex4(i + 2);
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
            const std::size_t len = char_length(p, i, c);
            scratch.append(s_.data() + i, len);
            i += len;
        }
    }

    // The length of the character of a string at `i` (`c` is its first byte,
    // neither '"' nor '\\'); fails on a control character or invalid UTF-8.
    [[gnu::always_inline]] std::size_t char_length(const path& p, std::size_t i, unsigned char c) {
        if (c < 0x20) {
            pos_ = i;
            syntax(p, "control character " + describe_char(static_cast<char>(c)) + " in a string");
        }
        if (c < 0x80) return 1;
        const std::size_t len = utf8_sequence_length(s_, i);
        if (len == 0) {
            pos_ = i;
            syntax(p, "invalid UTF-8 in a string");
        }
        return len;
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
            switch (const token t = next()) {
            case token::object:
            case token::array: {
                const bool object = t == token::object;
                count(p);
                enter(p);
                ++pos_;
                object ? h.begin_object() : h.begin_array();
                if (peek_char() == (object ? '}' : ']')) {
                    ++pos_;
                    --depth_;
                    object ? h.end_object() : h.end_array();
                    break;
                }
                in_object.push_back(object);
                if (object) walk_key(p, h, scratch);
                continue;
            }
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
                    if (in_object.back()) walk_key(p, h, scratch);
                    break;
                }
                if (c == (in_object.back() ? '}' : ']')) {
                    ++pos_;
                    --depth_;
                    in_object.back() ? h.end_object() : h.end_array();
                    in_object.pop_back();
                    continue;
                }
                syntax(p, in_object.back() ? "expected ',' or '}'" : "expected ',' or ']'");
            }
        }
    }
    template <class H>
    void walk_key(const path& p, H& h, std::string& scratch) {
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

} // namespace detail
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
