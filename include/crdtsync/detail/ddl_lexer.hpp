#pragma once
/// \file ddl_lexer.hpp
/// The lexer behind the DDL parsers (`table_def::from_ddl`,
/// `table_def::parse_add_column`, `parse_ddl`): whitespace, punctuation,
/// case-insensitive keywords, quoted identifiers ("", ``, []), and the SQL
/// literals a column DEFAULT may hold, read into a `value` and written back.
/// Every failure is a `schema_error` (`errc::schema`) that names the offset.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <crdtsync/error.hpp>
#include <crdtsync/value.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

/// The message prefix of a DDL statement that is well formed but not one
/// crdtsync replicates (`parse_ddl` documents which).
inline constexpr std::string_view unsupported_ddl_prefix = "unsupported DDL: ";

struct ddl_lexer {
    std::string_view s;
    std::size_t pos = 0;

    /// Malformed text: `DDL: <why> at offset <n> in "<text>"`.
    [[noreturn]] void fail(const std::string& why) const {
        detail::raise(errc::schema, "DDL: " + why + " at offset " + std::to_string(pos) + " in \"" + excerpt() + "\"");
    }
    /// Well-formed text crdtsync does not replicate:
    /// `unsupported DDL: <what> at offset <n> in "<text>"`.
    [[noreturn]] void unsupported(const std::string& what) const {
        detail::raise(errc::schema, std::string(unsupported_ddl_prefix) + what + " at offset " + std::to_string(pos) +
                                        " in \"" + excerpt() + "\"");
    }
    [[nodiscard]] std::string excerpt() const {
        return std::string(s.substr(0, 200)) + (s.size() > 200 ? "..." : "");
    }

    void ws() { while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos]))) ++pos; }
    /// The next character after whitespace, or '\0' at the end.
    [[nodiscard]] char peek_char() { ws(); return pos < s.size() ? s[pos] : '\0'; }
    bool accept(char c) { ws(); if (pos < s.size() && s[pos] == c) { ++pos; return true; } return false; }
    void expect(char c) { if (!accept(c)) fail(std::string("expected '") + c + "'"); }
    [[nodiscard]] bool at_end() { ws(); return pos == s.size(); }
    void expect_end() { if (!at_end()) fail("unexpected trailing text"); }
    std::string bare_word() {
        ws();
        std::size_t b = pos;
        while (pos < s.size() && (std::isalnum(static_cast<unsigned char>(s[pos])) || s[pos] == '_')) ++pos;
        return std::string(s.substr(b, pos - b));
    }
    [[nodiscard]] static bool iequal(std::string_view a, std::string_view b) {
        return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
               });
    }
    [[nodiscard]] static std::string upper(std::string w) {
        for (auto& c : w) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return w;
    }
    /// The next bare word, without consuming it ("" before a quote or punctuation).
    [[nodiscard]] std::string peek_bare_word() {
        auto save = pos;
        auto got = bare_word();
        pos = save;
        return got;
    }
    [[nodiscard]] bool peek_word(std::string_view w) { return iequal(peek_bare_word(), w); }
    bool accept_word(std::string_view w) {
        auto save = pos;
        if (iequal(bare_word(), w)) return true;
        pos = save;
        return false;
    }
    void expect_word(std::string_view w) { if (!accept_word(w)) fail("expected " + std::string(w)); }
    /// A bare or quoted ("", ``, []) identifier; never empty.
    std::string identifier() {
        ws();
        if (pos < s.size() && (s[pos] == '"' || s[pos] == '`' || s[pos] == '[')) {
            const char close = s[pos] == '[' ? ']' : s[pos];
            ++pos;
            std::string out;
            for (;;) {
                if (pos >= s.size()) fail("unterminated quoted identifier");
                if (s[pos] == close) {
                    if (close != ']' && pos + 1 < s.size() && s[pos + 1] == close) { out += close; pos += 2; continue; }
                    ++pos;
                    if (out.empty()) fail("empty identifier");
                    return out;
                }
                out += s[pos++];
            }
        }
        auto w = bare_word();
        if (w.empty()) fail("expected an identifier");
        return w;
    }
    /// `[schema.]name`; the schema is "" when not given.
    std::pair<std::string, std::string> qualified_name() {
        auto first = identifier();
        if (accept('.')) return {first, identifier()};
        return {"", first};
    }
    /// Skips to the ')' that closes an already consumed '(' (string
    /// literals and quoted identifiers may hold parentheses).
    void skip_balanced() {
        int depth = 1;
        while (pos < s.size() && depth > 0) {
            const char c = s[pos];
            if (c == '\'' || c == '"' || c == '`') {
                const auto end = s.find(c, pos + 1);
                if (end == std::string_view::npos) fail("unterminated quoted text");
                pos = end + 1;
                continue;
            }
            if (c == '(') ++depth;
            else if (c == ')') --depth;
            ++pos;
        }
        if (depth) fail("unbalanced parentheses");
    }
    [[nodiscard]] bool at_column_end() { ws(); return pos >= s.size() || s[pos] == ',' || s[pos] == ')'; }

    /// A literal: an integer or real (optionally signed), a 'string' ('' is
    /// a quote), X'hex' (a blob), TRUE / FALSE (booleans) or NULL (a null
    /// value). Anything else is an expression, refused with a message saying
    /// so: an expression default (CURRENT_TIMESTAMP, random(), (1 + 2))
    /// would evaluate differently on each replica.
    value literal(std::string_view what) {
        value out = literal_token(what);
        // A literal followed by an operator is an expression: `1 + 2`, `'a' || 'b'`.
        ws();
        if (pos < s.size() && std::string_view("+-*/%|&<>=!~(^.").find(s[pos]) != std::string_view::npos)
            not_literal(what);
        return out;
    }

    /// The literal text `literal()` reads back as `v` (a json value is
    /// written as a string literal).
    [[nodiscard]] static std::string literal_text(const value& v) {
        switch (v.kind()) {
        case value_kind::null: return "NULL";
        case value_kind::boolean: return v.as_bool() ? "TRUE" : "FALSE";
        case value_kind::integer: return std::to_string(v.as_integer());
        case value_kind::big_integer: return v.get_if<big_integer>()->text();
        case value_kind::real: return real_text(v.as_real());
        case value_kind::text: return quote_string(v.as_text());
        case value_kind::blob: {
            static constexpr char hex[] = "0123456789ABCDEF";
            std::string out = "X'";
            for (const char b : v.as_blob().bytes) {
                const auto u = static_cast<unsigned char>(b);
                out += hex[u >> 4];
                out += hex[u & 15];
            }
            return out + "'";
        }
        case value_kind::json: return quote_string(v.get_if<json_text>()->text);
        }
        return "NULL";
    }

private:
    [[noreturn]] void not_literal(std::string_view what) const {
        fail(std::string(what) + " is not a literal; non-literal defaults are not supported "
                                 "(an expression would evaluate differently on each replica)");
    }
    value literal_token(std::string_view what) {
        ws();
        if (pos >= s.size()) fail("expected a literal for " + std::string(what));
        const char c = s[pos];
        if (c == '\'') return value{string_literal()};
        if ((c == 'x' || c == 'X') && pos + 1 < s.size() && s[pos + 1] == '\'') {
            ++pos;
            const auto hex = string_literal();
            if (hex.size() % 2 != 0) fail("a blob literal needs an even number of hex digits");
            std::string bytes;
            for (std::size_t i = 0; i < hex.size(); i += 2) {
                const int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
                if (hi < 0 || lo < 0) fail("a blob literal holds hex digits only");
                bytes += static_cast<char>(hi * 16 + lo);
            }
            return value{blob{std::move(bytes)}};
        }
        if (c == '-' || c == '+' || c == '.' || std::isdigit(static_cast<unsigned char>(c))) return number(what);
        if (accept_word("NULL")) return value{};
        if (accept_word("TRUE")) return value{true};
        if (accept_word("FALSE")) return value{false};
        not_literal(what);
    }
    static std::string quote_string(std::string_view t) {
        std::string out = "'";
        for (char c : t) { if (c == '\'') out += '\''; out += c; }
        return out + "'";
    }
    /// The shortest text that reads back as `d`, always with a '.' or an
    /// exponent so it reads back as a real. An infinite real has no literal:
    /// it is written as one beyond the range of a real, which `literal()` refuses.
    static std::string real_text(double d) {
        if (!std::isfinite(d)) return d < 0 ? "-1e999" : "1e999";
        char buf[64];
        const auto r = std::to_chars(buf, buf + sizeof buf, d);
        std::string out(buf, r.ptr);
        if (out.find_first_of(".eE") == std::string::npos) out += ".0";
        return out;
    }
    static int hex_digit(char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
    /// At an opening quote: the string up to its closing quote ('' is one quote).
    std::string string_literal() {
        ++pos;
        std::string out;
        for (;;) {
            if (pos >= s.size()) fail("unterminated string literal");
            if (s[pos] == '\'') {
                if (pos + 1 < s.size() && s[pos + 1] == '\'') { out += '\''; pos += 2; continue; }
                ++pos;
                return out;
            }
            out += s[pos++];
        }
    }
    value number(std::string_view what) {
        bool negative = false, had_sign = false;
        if (s[pos] == '-' || s[pos] == '+') {
            negative = s[pos] == '-';
            had_sign = true;
            ++pos;
            ws();
        }
        const std::size_t b = pos;
        bool is_real = false;
        while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
        if (pos < s.size() && s[pos] == '.') {
            is_real = true;
            ++pos;
            while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
        }
        const std::size_t mantissa_end = pos;
        if (mantissa_end == b || (is_real && mantissa_end == b + 1)) {
            pos = b;
            if (had_sign) not_literal(what); // -x, -(1), +abs(x)
            fail("expected a number for " + std::string(what));
        }
        if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
            is_real = true;
            ++pos;
            if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
            const std::size_t digits = pos;
            while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
            if (pos == digits) fail("malformed exponent");
        }
        if (pos < s.size() && (std::isalnum(static_cast<unsigned char>(s[pos])) || s[pos] == '_'))
            fail("malformed number");
        const std::string_view text = s.substr(b, pos - b);
        if (is_real) {
            double d = 0;
            const auto r = std::from_chars(text.data(), text.data() + text.size(), d);
            if (r.ec == std::errc::result_out_of_range) {
                // Underflow reads as zero; overflow has no value that replicates.
                const auto e = text.find_first_of("eE");
                if (e != std::string_view::npos && text.find('-', e) != std::string_view::npos) d = 0;
                else { pos = b; fail("the real " + std::string(text) + " is beyond the range of a real"); }
            } else if (r.ec != std::errc{} || r.ptr != text.data() + text.size()) {
                pos = b;
                fail("malformed number");
            }
            return value{negative ? -d : d};
        }
        std::string_view digits = text;
        while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
        if (digits == "0") return value{std::int64_t{0}};
        if (digits.size() > big_integer::max_digits) {
            pos = b;
            fail("the integer literal is longer than " + std::to_string(big_integer::max_digits) + " digits");
        }
        return value{big_integer::parse((negative ? "-" : "") + std::string(digits))};
    }
};

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
