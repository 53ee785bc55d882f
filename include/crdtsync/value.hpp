#pragma once
/// \file value.hpp
/// `value`: one SQL-like cell value. Kinds: null, boolean, integer (int64),
/// big integer (beyond int64, kept exactly as decimal text), real (double),
/// text (UTF-8), blob (bytes), json (an object or array, kept as canonical text).
///
/// One total order across kinds, the same order the key encoding preserves:
///   null < boolean < numbers (integers and big integers, numerically) < real
///   < text < blob < json.
/// Integers and reals are different kinds here: a table's column type decides
/// which one a wire number becomes, so `2` in a REAL column is the real 2.0.
/// Reals compare by IEEE total order (-0.0 < 0.0); NaN is not a value (a NaN
/// becomes null, as on the Quereus wire).

#include <cmath>
#include <cstdio>
#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include <crdtsync/detail/endian.hpp>
#include <crdtsync/error.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// A blob: raw bytes, distinct from text.
struct blob {
    std::string bytes;
    friend auto operator<=>(const blob&, const blob&) = default;
    friend bool operator==(const blob&, const blob&) = default;
};

/// An integer outside the int64 range, as canonical decimal text
/// (optional '-', no leading zeros). Construct with `big_integer::parse`.
class big_integer {
public:
    /// Longest accepted magnitude, in decimal digits.
    static constexpr std::size_t max_digits = 4096;
    /// Parses decimal text. \throws parse_error (`errc::invalid_value`) unless
    /// the text is an optional '-' followed by digits without leading zeros.
    [[nodiscard]] static big_integer parse(std::string_view text) {
        std::string_view digits = text;
        const bool neg = !digits.empty() && digits.front() == '-';
        if (neg) digits.remove_prefix(1);
        bool ok = !digits.empty() && (digits.size() == 1 || digits.front() != '0');
        for (char c : digits) ok = ok && c >= '0' && c <= '9';
        if (!ok || (neg && digits == "0") || digits.size() > max_digits)
            detail::raise(errc::invalid_value,
                          "big integer must be canonical decimal text of at most 4096 digits, got \"" + std::string(text.substr(0, 64)) + (text.size() > 64 ? "..." : "") + "\"");
        big_integer b;
        b.text_ = std::string(text);
        return b;
    }
    [[nodiscard]] const std::string& text() const noexcept { return text_; }
    [[nodiscard]] bool negative() const noexcept { return !text_.empty() && text_[0] == '-'; }
    /// The magnitude's digits, without sign.
    [[nodiscard]] std::string_view digits() const noexcept {
        return negative() ? std::string_view(text_).substr(1) : std::string_view(text_);
    }
    /// The value as int64 if it fits.
    [[nodiscard]] bool fits_int64(std::int64_t& out) const noexcept {
        const auto d = digits();
        if (d.size() > 19) return false;
        std::uint64_t mag = 0; // 19 digits always fit in 64 bits
        for (char c : d) mag = mag * 10 + static_cast<std::uint64_t>(c - '0');
        const std::uint64_t lim = negative() ? std::uint64_t(1) << 63 : (std::uint64_t(1) << 63) - 1;
        if (mag > lim) return false;
        out = negative() ? static_cast<std::int64_t>(~mag + 1) : static_cast<std::int64_t>(mag);
        return true;
    }
    friend std::strong_ordering operator<=>(const big_integer& a, const big_integer& b) noexcept {
        if (a.negative() != b.negative())
            return a.negative() ? std::strong_ordering::less : std::strong_ordering::greater;
        const auto da = a.digits(), db = b.digits();
        std::strong_ordering mag = da.size() != db.size() ? da.size() <=> db.size()
                                                          : da.compare(db) <=> 0;
        if (a.negative()) return 0 <=> mag;
        return mag;
    }
    friend bool operator==(const big_integer& a, const big_integer& b) noexcept { return a.text_ == b.text_; }

private:
    std::string text_;
};

/// A JSON object or array kept as canonical text (the wire codec produces
/// and consumes it). Compared by text.
struct json_text {
    std::string text;
    friend auto operator<=>(const json_text&, const json_text&) = default;
    friend bool operator==(const json_text&, const json_text&) = default;
};

/// The kinds of `value`, in their order.
enum class value_kind : std::uint8_t { null, boolean, integer, big_integer, real, text, blob, json };

class value {
public:
    using storage = std::variant<std::monostate, bool, std::int64_t, big_integer, double,
                                 std::string, blob, json_text>;

    value() noexcept = default;
    value(std::nullptr_t) noexcept {}
    value(bool b) noexcept : v_(b) {}
    template <std::integral I>
        requires(!std::same_as<I, bool> && !std::same_as<I, char>)
    value(I i) : v_(from_integral(i)) {}
    /// NaN becomes null.
    value(double d) noexcept : v_(std::isnan(d) ? storage{} : storage{d}) {}
    value(float f) noexcept : value(static_cast<double>(f)) {}
    value(std::string s) noexcept : v_(std::move(s)) {}
    value(std::string_view s) : v_(std::string(s)) {}
    value(const char* s) : v_(std::string(s)) {}
    value(blob b) noexcept : v_(std::move(b)) {}
    value(json_text j) noexcept : v_(std::move(j)) {}
    /// A big integer that fits int64 becomes an integer.
    value(big_integer b) : v_(from_big(std::move(b))) {}

    [[nodiscard]] value_kind kind() const noexcept { return static_cast<value_kind>(v_.index()); }
    [[nodiscard]] bool is_null() const noexcept { return v_.index() == 0; }

    /// Pointer to the held T, or nullptr.
    template <class T>
    [[nodiscard]] const T* get_if() const noexcept { return std::get_if<T>(&v_); }

    /// The held T. \throws usage_error naming both kinds if the value is another kind.
    template <class T>
    [[nodiscard]] const T& as() const {
        if (auto p = std::get_if<T>(&v_)) return *p;
        detail::raise(errc::invalid_argument, std::string("value is ") + kind_name(kind()) +
                                                  ", not " + kind_name(static_cast<value_kind>(
                                                                 storage(T{}).index())));
    }
    [[nodiscard]] std::int64_t as_integer() const { return as<std::int64_t>(); }
    [[nodiscard]] double as_real() const { return as<double>(); }
    [[nodiscard]] const std::string& as_text() const { return as<std::string>(); }
    [[nodiscard]] bool as_bool() const { return as<bool>(); }
    [[nodiscard]] const blob& as_blob() const { return as<blob>(); }

    [[nodiscard]] const storage& raw() const noexcept { return v_; }

    /// The total order described in the file comment.
    friend std::strong_ordering operator<=>(const value& a, const value& b) noexcept {
        const int ra = rank(a), rb = rank(b);
        if (ra != rb) return ra <=> rb;
        switch (a.kind()) {
        case value_kind::null: return std::strong_ordering::equal;
        case value_kind::boolean: return std::get<bool>(a.v_) <=> std::get<bool>(b.v_);
        case value_kind::integer:
        case value_kind::big_integer: return compare_numbers(a, b);
        case value_kind::real: return std::strong_order(std::get<double>(a.v_), std::get<double>(b.v_));
        case value_kind::text: return std::get<std::string>(a.v_).compare(std::get<std::string>(b.v_)) <=> 0;
        case value_kind::blob: return std::get<blob>(a.v_).bytes.compare(std::get<blob>(b.v_).bytes) <=> 0;
        case value_kind::json: return std::get<json_text>(a.v_).text.compare(std::get<json_text>(b.v_).text) <=> 0;
        }
        return std::strong_ordering::equal;
    }
    /// Equal under the total order; values of different kinds never are
    /// (an integer and a big integer never hold the same number).
    friend bool operator==(const value& a, const value& b) noexcept {
        if (a.v_.index() != b.v_.index()) return false;
        switch (a.kind()) {
        case value_kind::integer: return *std::get_if<std::int64_t>(&a.v_) == *std::get_if<std::int64_t>(&b.v_);
        case value_kind::text: return detail::same_bytes(*std::get_if<std::string>(&a.v_), *std::get_if<std::string>(&b.v_));
        default: return (a <=> b) == 0;
        }
    }

    [[nodiscard]] static const char* kind_name(value_kind k) noexcept {
        switch (k) {
        case value_kind::null: return "null";
        case value_kind::boolean: return "boolean";
        case value_kind::integer: return "integer";
        case value_kind::big_integer: return "big integer";
        case value_kind::real: return "real";
        case value_kind::text: return "text";
        case value_kind::blob: return "blob";
        case value_kind::json: return "json";
        }
        return "?";
    }

    /// Writes `to_text()` (include <ostream> where it is used).
    template <class Traits>
    friend std::basic_ostream<char, Traits>& operator<<(std::basic_ostream<char, Traits>& os, const value& v) {
        return os << v.to_text();
    }

    /// A short human-readable rendering, for messages and examples.
    [[nodiscard]] std::string to_text() const {
        switch (kind()) {
        case value_kind::null: return "NULL";
        case value_kind::boolean: return std::get<bool>(v_) ? "true" : "false";
        case value_kind::integer: return std::to_string(std::get<std::int64_t>(v_));
        case value_kind::big_integer: return std::get<big_integer>(v_).text();
        case value_kind::real: {
            std::string s(32, '\0');
            const int n = std::snprintf(s.data(), s.size(), "%.17g", std::get<double>(v_));
            s.resize(static_cast<std::size_t>(n));
            return s;
        }
        case value_kind::text: return "'" + std::get<std::string>(v_) + "'";
        case value_kind::blob: {
            static constexpr char hex[] = "0123456789abcdef";
            std::string s = "x'";
            for (const auto b : std::get<blob>(v_).bytes) {
                const auto c = static_cast<unsigned char>(b);
                s += hex[c >> 4];
                s += hex[c & 15];
            }
            return s + "'";
        }
        case value_kind::json: return std::get<json_text>(v_).text;
        }
        return "?";
    }
    /// The old name of `to_text()`: crdtsync names every text conversion
    /// `to_text` (hlc and site_id pair it with `from_text`).
    [[deprecated("use to_text")]] [[nodiscard]] std::string to_string() const { return to_text(); }

private:
    // Members are initialised, never assigned after default construction:
    // that keeps g++ 12's -Wmaybe-uninitialized false positive on variant
    // assignment away from every caller.
    template <class I>
    static storage from_integral(I i) {
        if constexpr (std::is_unsigned_v<I> && sizeof(I) >= sizeof(std::int64_t)) {
            if (i > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                return storage{big_integer::parse(std::to_string(i))};
        }
        return storage{static_cast<std::int64_t>(i)};
    }
    static storage from_big(big_integer b) {
        std::int64_t i = 0;
        if (b.fits_int64(i)) return storage{i};
        return storage{std::move(b)};
    }

    static int rank(const value& v) noexcept {
        switch (v.kind()) {
        case value_kind::null: return 0;
        case value_kind::boolean: return 1;
        case value_kind::integer:
        case value_kind::big_integer: return 2;
        case value_kind::real: return 3;
        case value_kind::text: return 4;
        case value_kind::blob: return 5;
        case value_kind::json: return 6;
        }
        return 7;
    }
    // Integers and big integers: a big integer is outside the int64 range, so
    // its sign alone orders it against any int64.
    static std::strong_ordering compare_numbers(const value& a, const value& b) noexcept {
        const auto* ia = std::get_if<std::int64_t>(&a.v_);
        const auto* ib = std::get_if<std::int64_t>(&b.v_);
        if (ia && ib) return *ia <=> *ib;
        if (!ia && !ib) return std::get<big_integer>(a.v_) <=> std::get<big_integer>(b.v_);
        if (ia) return std::get<big_integer>(b.v_).negative() ? std::strong_ordering::greater
                                                              : std::strong_ordering::less;
        return std::get<big_integer>(a.v_).negative() ? std::strong_ordering::less
                                                      : std::strong_ordering::greater;
    }

    storage v_;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
