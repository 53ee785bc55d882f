#pragma once
// JSON text shared by the reader and the writer: JSON paths and the errors
// that name them, JavaScript number formatting, JSON.stringify string escapes,
// and the short renderings error messages quote.

#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <crdtsync/detail/utf8.hpp>
#include <crdtsync/error.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {
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

/// JSON's two-character escapes: the letter after the backslash, and the
/// character it stands for. `\/` is read, never written (JSON.stringify
/// leaves '/' alone).
inline constexpr std::pair<char, char> short_escapes[] = {{'"', '"'}, {'\\', '\\'}, {'b', '\b'}, {'f', '\f'},
                                                          {'n', '\n'}, {'r', '\r'}, {'t', '\t'}, {'/', '/'}};

/// The character a backslash and `c` stand for; 0 when that is no short escape.
inline constexpr std::array<char, 256> unescaped_char = [] {
    std::array<char, 256> t{};
    for (const auto& [letter, c] : short_escapes) t[static_cast<unsigned char>(letter)] = c;
    return t;
}();

/// The letter JSON.stringify writes after a backslash for `c`; 0 when it
/// writes `c` as itself or as `\u00XX`.
inline constexpr std::array<char, 256> escape_letter = [] {
    std::array<char, 256> t{};
    for (const auto& [letter, c] : short_escapes)
        if (c != '/') t[static_cast<unsigned char>(c)] = letter;
    return t;
}();

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
        if (const char letter = escape_letter[c]; letter != 0) {
            out += '\\';
            out += letter;
        } else {
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

} // namespace detail
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
