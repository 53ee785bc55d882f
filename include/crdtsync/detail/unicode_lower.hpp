#pragma once
// JavaScript's String.prototype.toLowerCase on UTF-8 text: the fold behind the
// NOCASE collation of primary keys. A Quereus (TypeScript) replica compares
// NOCASE keys as `a.toLowerCase() === b.toLowerCase()`, so a crdtsync replica
// must lower text exactly as JavaScript does, or the two disagree on which text
// keys name the same row.
//
// The tables come from scripts/gen-unicode-lower.mjs (see
// unicode_lower_table.hpp for the Node and Unicode versions); the test
// (tests/core/unicode_lower_test.cpp) compares every code point and a set of
// strings with reference data that Node wrote. A JavaScript engine built on an
// older or newer Unicode version lowers newly assigned letters differently:
// regenerate both with the Node the peers use.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <crdtsync/detail/unicode_lower_table.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

/// A decoded UTF-8 unit: a code point and its length in bytes, or
/// `js_lower_invalid` and length 1 for a byte that does not start a well-formed
/// sequence (RFC 3629: no overlong forms, no surrogates, nothing above
/// U+10FFFF).
struct js_lower_unit {
    std::uint32_t cp;
    std::size_t len;
};

inline constexpr std::uint32_t js_lower_invalid = 0xFFFFFFFF;

/// Decodes the unit starting at `s[i]` (`i < s.size()`); reads nothing outside `s`.
[[nodiscard]] inline js_lower_unit js_lower_decode(std::string_view s, std::size_t i) noexcept {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const auto cont = [](unsigned char b) { return (b & 0xC0) == 0x80; };
    const std::size_t left = s.size() - i;
    const unsigned char b0 = byte(i);
    if (b0 < 0x80) return {b0, 1};
    if (b0 < 0xC2) return {js_lower_invalid, 1}; // a continuation byte, or overlong C0/C1
    if (b0 < 0xE0) {
        if (left < 2 || !cont(byte(i + 1))) return {js_lower_invalid, 1};
        return {(std::uint32_t(b0 & 0x1F) << 6) | (byte(i + 1) & 0x3F), 2};
    }
    if (b0 < 0xF0) {
        if (left < 3) return {js_lower_invalid, 1};
        const unsigned char b1 = byte(i + 1);
        const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80; // E0: no overlong
        const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF; // ED: no surrogate
        if (b1 < lo || b1 > hi || !cont(byte(i + 2))) return {js_lower_invalid, 1};
        return {(std::uint32_t(b0 & 0x0F) << 12) | (std::uint32_t(b1 & 0x3F) << 6) | (byte(i + 2) & 0x3F), 3};
    }
    if (b0 < 0xF5) {
        if (left < 4) return {js_lower_invalid, 1};
        const unsigned char b1 = byte(i + 1);
        const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80; // F0: no overlong
        const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF; // F4: nothing above U+10FFFF
        if (b1 < lo || b1 > hi || !cont(byte(i + 2)) || !cont(byte(i + 3))) return {js_lower_invalid, 1};
        return {(std::uint32_t(b0 & 0x07) << 18) | (std::uint32_t(b1 & 0x3F) << 12) |
                    (std::uint32_t(byte(i + 2) & 0x3F) << 6) | (byte(i + 3) & 0x3F),
                4};
    }
    return {js_lower_invalid, 1};
}

/// Decodes the unit that ends just before `s[i]` (`0 < i <= s.size()`), the
/// same unit a forward decode from the start of `s` reaches: forward decoding
/// starts a unit at every byte that is not a continuation byte, so the unit is
/// the one decoded from the nearest such byte, if it ends exactly at `i`, and
/// otherwise the single invalid byte `s[i - 1]`. Reads nothing outside `s`.
[[nodiscard]] inline js_lower_unit js_lower_decode_before(std::string_view s, std::size_t i) noexcept {
    const auto cont = [&](std::size_t k) { return (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80; };
    std::size_t start = i - 1;
    for (int skipped = 0; cont(start); ++skipped) {
        if (skipped == 3 || start == 0) return {js_lower_invalid, 1};
        --start;
    }
    const js_lower_unit u = js_lower_decode(s, start);
    if (u.cp != js_lower_invalid && start + u.len == i) return u;
    return {js_lower_invalid, 1};
}

/// Appends the UTF-8 form of the code point `cp` (a scalar value).
inline void js_lower_put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

/// Whether `cp` lies in one of the sorted, disjoint `ranges`.
template <std::size_t N>
[[nodiscard]] constexpr bool js_lower_in_ranges(const unicode_cp_range (&ranges)[N], std::uint32_t cp) noexcept {
    std::size_t lo = 0, hi = N; // the first range starting after cp is at lo
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (ranges[mid].first <= cp) lo = mid + 1;
        else hi = mid;
    }
    return lo > 0 && cp <= ranges[lo - 1].last;
}

/// The lowercase of one code point outside any context (so U+03A3 gives
/// U+03C3) when it is a single code point; U+0130 (and any other code point
/// that lowers to several) is left to `js_lower_append`.
[[nodiscard]] constexpr std::uint32_t js_lower_simple(std::uint32_t cp) noexcept {
    if (cp < 0x80) return cp - 'A' < 26 ? cp + 32 : cp;
    std::size_t lo = 0, hi = std::size(unicode_lower_runs);
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (unicode_lower_runs[mid].first <= cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return cp;
    const unicode_lower_run& r = unicode_lower_runs[lo - 1];
    if (cp > r.last || (cp - r.first) % r.stride != 0) return cp;
    return static_cast<std::uint32_t>(static_cast<std::int64_t>(cp) + r.delta);
}

/// Whether the first code point that is not Case_Ignorable, searching `s`
/// backward from just before `s[i]` (`backward`) or forward from `s[i]`, is
/// Cased; false when there is none.
/// This is ICU's reading of Final_Sigma (ucase.cpp, isFollowedByCasedLetter),
/// which V8 uses: a code point that is both case-ignorable and cased (U+02B0,
/// U+0345) is skipped. An invalid byte stops the search as uncased.
[[nodiscard]] inline bool js_lower_cased_next(std::string_view s, std::size_t i, bool backward) noexcept {
    while (backward ? i > 0 : i < s.size()) {
        const js_lower_unit u = backward ? js_lower_decode_before(s, i) : js_lower_decode(s, i);
        if (u.cp == js_lower_invalid) return false;
        if (!js_lower_in_ranges(unicode_case_ignorable, u.cp)) return js_lower_in_ranges(unicode_cased, u.cp);
        if (backward) i -= u.len;
        else i += u.len;
    }
    return false;
}

/// Appends the lowercase of the code point `cp` found at `s[begin, end)`,
/// which decides U+03A3 (capital sigma): final sigma U+03C2 when preceded by a
/// cased letter and not followed by one (Unicode 3.13, Final_Sigma), else
/// U+03C3.
inline void js_lower_append(std::string_view s, std::size_t begin, std::size_t end, std::uint32_t cp,
                            std::string& out) {
    if (cp == 0x03A3) {
        const bool final_sigma = js_lower_cased_next(s, begin, true) && !js_lower_cased_next(s, end, false);
        out.append(final_sigma ? "\xCF\x82" : "\xCF\x83");
        return;
    }
    const std::uint32_t lower = js_lower_simple(cp);
    if (lower == cp) {
        for (const auto& sp : unicode_lower_specials) {
            if (sp.cp == cp) {
                out.append(sp.utf8);
                return;
            }
        }
    }
    js_lower_put_utf8(out, lower);
}

/// Appends to `out` the lowercase of the UTF-8 text `utf8`, exactly as
/// JavaScript's `String.prototype.toLowerCase` lowers the same text: the
/// locale-independent full lowercase mapping of Unicode (see
/// `unicode_lower_version`), U+0130 becoming "i\u0307", and capital sigma
/// becoming final sigma at the end of a word (the Final_Sigma rule).
///
/// This is the NOCASE fold: Quereus compares NOCASE text as
/// `a.toLowerCase() === b.toLowerCase()`, and replicas of both must agree on
/// which text keys are equal. It is not Unicode case folding: "ß" and "SS",
/// or "ς" and "σ", stay different.
///
/// The input should be valid UTF-8; a byte that does not start a well-formed
/// sequence is copied through unchanged (and counts as uncased for the sigma
/// rule). Pure ASCII, the common case, only maps A-Z.
inline void js_to_lower(std::string_view utf8, std::string& out) {
    out.reserve(out.size() + utf8.size());
    const std::size_t n = utf8.size();
    std::size_t i = 0;
    while (i < n) {
        std::size_t j = i;
        while (j < n && static_cast<unsigned char>(utf8[j]) < 0x80) ++j;
        if (j > i) {
            const std::size_t base = out.size();
            out.append(utf8.data() + i, j - i);
            for (std::size_t k = base; k < out.size(); ++k)
                if (static_cast<unsigned char>(out[k] - 'A') < 26) out[k] = static_cast<char>(out[k] + 32);
            i = j;
            if (i == n) break;
        }
        const js_lower_unit u = js_lower_decode(utf8, i);
        if (u.cp == js_lower_invalid) out.push_back(utf8[i]);
        else js_lower_append(utf8, i, i + u.len, u.cp, out);
        i += u.len;
    }
}

/// The lowercase of `utf8` as JavaScript's `toLowerCase` gives it; see the
/// appending overload.
[[nodiscard]] inline std::string js_to_lower(std::string_view utf8) {
    std::string out;
    js_to_lower(utf8, out);
    return out;
}

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
