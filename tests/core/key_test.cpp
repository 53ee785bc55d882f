// key_codec: the documented layout, round trips, order preservation on random
// tuples, prefix ranges, and strict decoding of truncated or garbage input.

#include <crdtsync/key.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <compare>
#include <cstdint>
#include <limits>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

using crdtsync::big_integer;
using crdtsync::blob;
using crdtsync::errc;
using crdtsync::json_text;
using crdtsync::key_codec;
using crdtsync::parse_error;
using crdtsync::value;
using crdtsync::value_kind;

// Failed checks show values rendered by value::to_text().
template <>
struct doctest::StringMaker<value> {
    static doctest::String convert(const value& v) { return v.to_text().c_str(); }
};

namespace {

using tuple = std::vector<value>;

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr std::int64_t i64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();

std::string bytes(std::initializer_list<int> b) {
    std::string s;
    for (int x : b) s.push_back(static_cast<char>(x));
    return s;
}

std::string hex(std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string show(const tuple& t) {
    std::string s = "(";
    for (std::size_t i = 0; i < t.size(); ++i) s += (i ? ", " : "") + t[i].to_text();
    return s + ")";
}

int sign(int c) { return (c > 0) - (c < 0); }
int sign(std::strong_ordering o) { return o < 0 ? -1 : o > 0 ? 1 : 0; }

// Tuples compare element by element, a proper prefix first.
int compare_tuples(const tuple& a, const tuple& b) {
    return sign(std::lexicographical_compare_three_way(a.begin(), a.end(), b.begin(), b.end()));
}

// Byte strings compare as unsigned bytes, a proper prefix first.
int compare_bytes(std::string_view a, std::string_view b) { return sign(a.compare(b)); }

bool is_prefix(const tuple& p, const tuple& t) {
    return p.size() <= t.size() && std::equal(p.begin(), p.end(), t.begin(), [](const value& x, const value& y) {
               return (x <=> y) == 0;
           });
}

// Same kind and same value (== alone already separates kinds and -0.0/0.0).
bool identical(const tuple& a, const tuple& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].kind() != b[i].kind() || a[i] != b[i]) return false;
    return true;
}

// Byte strings over a small alphabet with the escape-relevant bytes, so that
// equal prefixes, embedded 0x00 and 0xFF, and empty strings are common.
std::string random_bytes(std::mt19937_64& rng, std::size_t max_len) {
    static constexpr char alphabet[] = {'\0', '\x01', 'a', 'b', '\x7f', '\x80', '\xfe', '\xff'};
    std::string s(rng() % (max_len + 1), '\0');
    for (auto& c : s) c = rng() % 4 ? alphabet[rng() % sizeof alphabet] : static_cast<char>(rng());
    return s;
}

std::string random_digits(std::mt19937_64& rng, std::size_t n) {
    std::string d(n, '0');
    d[0] = static_cast<char>('1' + rng() % 9);
    for (std::size_t i = 1; i < n; ++i) d[i] = static_cast<char>('0' + (rng() % 3 ? rng() % 10 : 9 * (rng() % 2)));
    return d;
}

value random_big_integer(std::mt19937_64& rng) {
    const bool neg = rng() % 2;
    std::size_t n;
    switch (rng() % 8) {
    case 0: n = 19; break; // the int64 boundary region
    case 1: n = 20; break;
    case 2: n = 21 + rng() % 200; break;
    case 3: n = big_integer::max_digits - rng() % 3; break;
    default: n = 19 + rng() % 6; break;
    }
    std::string d = random_digits(rng, n);
    if (n == 19) d = rng() % 2 ? "9223372036854775808" : "9" + random_digits(rng, 18).substr(0, 18);
    value v{big_integer::parse((neg ? "-" : "") + d)};
    return v; // may have normalised to an integer, which is fine
}

value random_real(std::mt19937_64& rng) {
    static constexpr double specials[] = {-inf,
                                          inf,
                                          -0.0,
                                          0.0,
                                          1.0,
                                          -1.0,
                                          0.5,
                                          std::numeric_limits<double>::denorm_min(),
                                          -std::numeric_limits<double>::denorm_min(),
                                          std::numeric_limits<double>::max(),
                                          -std::numeric_limits<double>::max()};
    if (rng() % 2) return value{specials[rng() % std::size(specials)]};
    for (;;) {
        const double d = std::bit_cast<double>(rng());
        if (d == d) return value{d};
    }
}

value random_integer(std::mt19937_64& rng) {
    switch (rng() % 5) {
    case 0: return value{i64_min + static_cast<std::int64_t>(rng() % 3)};
    case 1: return value{i64_max - static_cast<std::int64_t>(rng() % 3)};
    case 2: return value{static_cast<std::int64_t>(rng() % 5) - 2};
    case 3: return value{static_cast<std::int64_t>(rng() % 512) - 256};
    default: return value{static_cast<std::int64_t>(rng())};
    }
}

value random_value(std::mt19937_64& rng) {
    switch (rng() % 9) {
    case 0: return value{};
    case 1: return value{rng() % 2 == 1};
    case 2: return random_integer(rng);
    case 3: return random_big_integer(rng);
    case 4: return random_real(rng);
    case 5: return value{random_bytes(rng, 6)};
    case 6: return value{blob{random_bytes(rng, 6)}};
    case 7: return value{json_text{rng() % 2 ? "[" + random_bytes(rng, 3) + "]" : random_bytes(rng, 4)}};
    default: return rng() % 2 ? random_integer(rng) : value{random_bytes(rng, 3)};
    }
}

tuple random_tuple(std::mt19937_64& rng, std::size_t max_len = 4) {
    tuple t(rng() % (max_len + 1));
    for (auto& v : t) v = random_value(rng);
    return t;
}

// A second tuple close to `a`: equal, a prefix, an extension, or `a` with one
// element replaced, so that comparisons reach deep into the tuples.
tuple nearby_tuple(std::mt19937_64& rng, const tuple& a) {
    tuple b = a;
    switch (rng() % 5) {
    case 0: break;
    case 1: b.resize(a.empty() ? 0 : rng() % a.size()); break;
    case 2: b.push_back(random_value(rng)); break;
    case 3:
        if (!b.empty()) b[rng() % b.size()] = random_value(rng);
        break;
    default: return random_tuple(rng);
    }
    return b;
}

// Runs f expecting a parse_error with errc::invalid_key; returns the message.
template <class F>
std::string key_error_of(F&& f) {
    try {
        f();
    } catch (const parse_error& e) {
        CHECK(e.code() == errc::invalid_key);
        return e.message();
    }
    FAIL_CHECK("no parse_error");
    return {};
}

} // namespace

TEST_CASE("key_codec: element layout") {
    CHECK(key_codec::encode({value{}}) == bytes({0x01}));
    CHECK(key_codec::encode({value{false}}) == bytes({0x02}));
    CHECK(key_codec::encode({value{true}}) == bytes({0x03}));
    CHECK(key_codec::encode({value{0}}) == bytes({0x10, 0x80, 0, 0, 0, 0, 0, 0, 0}));
    CHECK(key_codec::encode({value{1}}) == bytes({0x10, 0x80, 0, 0, 0, 0, 0, 0, 1}));
    CHECK(key_codec::encode({value{-1}}) == bytes({0x10, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
    CHECK(key_codec::encode({value{i64_min}}) == bytes({0x10, 0, 0, 0, 0, 0, 0, 0, 0}));
    CHECK(key_codec::encode({value{i64_max}}) == bytes({0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
    CHECK(key_codec::encode({value{1.0}}) == bytes({0x20, 0xBF, 0xF0, 0, 0, 0, 0, 0, 0}));
    CHECK(key_codec::encode({value{0.0}}) == bytes({0x20, 0x80, 0, 0, 0, 0, 0, 0, 0}));
    CHECK(key_codec::encode({value{-0.0}}) == bytes({0x20, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
    CHECK(key_codec::encode({value{-1.0}}) == bytes({0x20, 0x40, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
    CHECK(key_codec::encode({value{""}}) == bytes({0x30, 0x00}));
    CHECK(key_codec::encode({value{std::string("a\0b", 3)}}) == bytes({0x30, 'a', 0x00, 0xFF, 'b', 0x00}));
    CHECK(key_codec::encode({value{std::string("\0\0", 2)}}) == bytes({0x30, 0x00, 0xFF, 0x00, 0xFF, 0x00}));
    CHECK(key_codec::encode({value{"\xff"}}) == bytes({0x30, 0xFF, 0x00}));
    CHECK(key_codec::encode({value{blob{"x"}}}) == bytes({0x40, 'x', 0x00}));
    CHECK(key_codec::encode({value{json_text{"[]"}}}) == bytes({0x50, '[', ']', 0x00}));
    // Big integers: a digit count, then the digits; both inverted when negative.
    CHECK(key_codec::encode({value{big_integer::parse("9223372036854775808")}}) ==
          bytes({0x11, 0x00, 0x13}) + "9223372036854775808");
    std::string neg = bytes({0x0F, 0xFF, 0xEC});
    for (char c : std::string_view("9223372036854775809")) neg.push_back(static_cast<char>(~c));
    CHECK(key_codec::encode({value{big_integer::parse("-9223372036854775809")}}) == neg);
    // A tuple is its elements' encodings, concatenated.
    CHECK(key_codec::encode({value{"t"}, value{7}, value{}}) ==
          bytes({0x30, 't', 0x00, 0x10, 0x80, 0, 0, 0, 0, 0, 0, 7, 0x01}));
    CHECK(key_codec::encode(std::span<const value>{}).empty());
}

TEST_CASE("key_codec: the span and initializer-list forms agree, append builds both") {
    const tuple t = {value{"a"}, value{1.5}, value{blob{std::string("\0", 1)}}};
    std::string appended;
    for (const auto& v : t) key_codec::append(appended, v);
    CHECK(key_codec::encode(t) == appended);
    CHECK(key_codec::encode({value{"a"}, value{1.5}, value{blob{std::string("\0", 1)}}}) == appended);
}

TEST_CASE("key_codec: random tuples round trip") {
    const std::uint64_t seed = 0x4B45'0001;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    std::size_t kinds_seen[8] = {};
    for (int i = 0; i < 5000; ++i) {
        const tuple t = random_tuple(rng, 6);
        for (const auto& v : t) ++kinds_seen[static_cast<int>(v.kind())];
        const auto enc = key_codec::encode(t);
        CAPTURE(i);
        CAPTURE(show(t));
        CAPTURE(hex(enc));
        const auto dec = key_codec::decode(enc);
        CHECK(identical(dec, t));

        // Element by element with read() and skip(), from a longer buffer.
        const std::string buffer = enc + "\x01";
        std::string_view in = buffer, skipping = buffer;
        for (const auto& v : t) {
            const auto got = key_codec::read(in);
            CHECK(got.kind() == v.kind());
            CHECK(got == v);
            CHECK(key_codec::skip(skipping));
            CHECK(skipping.size() == in.size());
        }
        CHECK(in == "\x01");
        CHECK(skipping == "\x01");
    }
    for (int k = 0; k < 8; ++k) {
        CAPTURE(k);
        CHECK(kinds_seen[k] > 100); // every kind was exercised
    }
}

TEST_CASE("key_codec: encoded_size and write agree with append") {
    const std::uint64_t seed = 0x4B45'0009;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    for (int i = 0; i < 5000; ++i) {
        const tuple t = random_tuple(rng, 6);
        CAPTURE(i);
        CAPTURE(show(t));
        const auto enc = key_codec::encode(t);
        std::size_t size = 0;
        for (const auto& v : t) size += key_codec::encoded_size(v);
        CHECK(size == enc.size());
        // write() fills exactly encoded_size() bytes: a guard byte after
        // the buffer's end stays untouched.
        std::string buf(size + 1, '\x5A');
        char* p = buf.data();
        for (const auto& v : t) {
            char* end = key_codec::write(p, v);
            CHECK(static_cast<std::size_t>(end - p) == key_codec::encoded_size(v));
            p = end;
        }
        CHECK(buf.substr(0, size) == enc);
        CHECK(buf.back() == '\x5A');
    }
    // Escapes count: each 0x00 of text, blob or json takes two bytes.
    CHECK(key_codec::encoded_size(value{std::string("\0a\0", 3)}) == 1 + 5 + 1);
    CHECK(key_codec::encoded_size(value{blob{std::string(4, '\0')}}) == 1 + 8 + 1);
    CHECK(key_codec::encoded_size(value{}) == 1);
    CHECK(key_codec::encoded_size(value{1.5}) == 9);
}

TEST_CASE("key_codec: extreme values round trip") {
    std::vector<value> extremes = {value{i64_min},
                                   value{i64_max},
                                   value{-inf},
                                   value{inf},
                                   value{-0.0},
                                   value{0.0},
                                   value{std::numeric_limits<double>::denorm_min()},
                                   value{""},
                                   value{std::string(1000, '\0')},
                                   value{std::string(1000, '\xff')},
                                   value{blob{}},
                                   value{blob{std::string(3, '\0')}},
                                   value{json_text{""}}};
    for (std::size_t n = 19; n <= big_integer::max_digits; n = n < 40 ? n + 1 : n * 2) {
        const auto digits = std::string(std::min(n, big_integer::max_digits), '9');
        extremes.push_back(value{big_integer::parse(digits)});
        extremes.push_back(value{big_integer::parse("-" + digits)});
    }
    extremes.push_back(value{big_integer::parse(std::string(big_integer::max_digits, '9'))});
    extremes.push_back(value{big_integer::parse("-" + std::string(big_integer::max_digits, '9'))});
    for (const auto& v : extremes) {
        CAPTURE(v.to_text().substr(0, 60));
        const auto dec = key_codec::decode(key_codec::encode({v}));
        REQUIRE(dec.size() == 1);
        CHECK(dec[0].kind() == v.kind());
        CHECK(dec[0] == v);
    }
    // The order of the extremes survives too (the order test below covers
    // random values; these are the corners).
    for (const auto& a : extremes)
        for (const auto& b : extremes) {
            CAPTURE(a.to_text().substr(0, 60));
            CAPTURE(b.to_text().substr(0, 60));
            CHECK(compare_bytes(key_codec::encode({a}), key_codec::encode({b})) == sign(a <=> b));
        }
}

TEST_CASE("key_codec: byte order equals tuple order") {
    const std::uint64_t seed = 0x4B45'0002;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    int less = 0, equal = 0, greater = 0;
    for (int i = 0; i < 20000; ++i) {
        const tuple a = random_tuple(rng);
        const tuple b = nearby_tuple(rng, a);
        const int expected = compare_tuples(a, b);
        CAPTURE(i);
        CAPTURE(show(a));
        CAPTURE(show(b));
        CHECK(compare_bytes(key_codec::encode(a), key_codec::encode(b)) == expected);
        (expected < 0 ? less : expected > 0 ? greater : equal)++;
    }
    CHECK(less > 1000);
    CHECK(greater > 1000);
    CHECK(equal > 1000);
}

TEST_CASE("key_codec: text with embedded 0x00 and 0xFF orders like the text") {
    // The cases the escaping exists for, each pair ascending.
    const std::vector<std::pair<tuple, tuple>> pairs = {
        {{value{"a"}}, {value{std::string("a\0", 2)}}},
        {{value{"a"}, value{"z"}}, {value{std::string("a\0", 2)}}},
        {{value{"a"}, value{blob{"\xff\xff"}}}, {value{std::string("a\0", 2)}, value{}}},
        {{value{std::string("a\0", 2)}}, {value{"a\x01"}}},
        {{value{std::string("a\0\xff", 3)}}, {value{"a\x01"}}},
        {{value{std::string("a\0", 2)}}, {value{"a\xff"}}},
        {{value{"a"}, value{}}, {value{"a\xff"}}},
        {{value{""}}, {value{std::string("\0", 1)}}},
        {{value{""}, value{json_text{"\xff"}}}, {value{std::string("\0", 1)}}},
        {{value{blob{"a"}}, value{"\xff"}}, {value{blob{std::string("a\0", 2)}}}},
    };
    for (const auto& [a, b] : pairs) {
        const auto ea = key_codec::encode(a), eb = key_codec::encode(b);
        INFO(hex(ea) << " vs " << hex(eb));
        CHECK(compare_tuples(a, b) < 0);
        CHECK(compare_bytes(ea, eb) < 0);
    }
}

TEST_CASE("key_codec: tuple_range_end bounds exactly the extensions of a tuple") {
    SUBCASE("(\"a\") against (\"a\\0\")") {
        const auto prefix = key_codec::encode({value{"a"}});
        const auto end = key_codec::tuple_range_end(prefix);
        CHECK(end == prefix + '\xff');
        auto inside = [&](const std::string& k) { return prefix <= k && k < end; };

        CHECK(inside(prefix)); // the tuple itself
        for (const auto& x : {value{}, value{false}, value{i64_min}, value{i64_max}, value{inf}, value{""},
                              value{"\xff\xff"}, value{blob{"\xff"}}, value{json_text{"\xff"}},
                              value{big_integer::parse("-" + std::string(30, '9'))},
                              value{big_integer::parse(std::string(30, '9'))}}) {
            CAPTURE(x.to_text());
            CHECK(inside(key_codec::encode({value{"a"}, x})));
            CHECK(inside(key_codec::encode({value{"a"}, x, value{"more"}})));
            CHECK_FALSE(inside(key_codec::encode({value{std::string("a\0", 2)}, x})));
            CHECK_FALSE(inside(key_codec::encode({value{std::string("a\0\xff", 3)}, x})));
            CHECK_FALSE(inside(key_codec::encode({value{"a\x01"}, x})));
            CHECK_FALSE(inside(key_codec::encode({value{"`"}, x})));
            CHECK_FALSE(inside(key_codec::encode({value{blob{"a"}}, x})));
        }
        CHECK_FALSE(inside(key_codec::encode({value{std::string("a\0", 2)}})));
        CHECK_FALSE(inside(key_codec::encode({value{"ab"}})));
    }
    SUBCASE("random prefixes") {
        const std::uint64_t seed = 0x4B45'0003;
        CAPTURE(seed);
        std::mt19937_64 rng{seed};
        int extensions = 0, others = 0;
        for (int i = 0; i < 10000; ++i) {
            const tuple p = random_tuple(rng, 3);
            tuple t = nearby_tuple(rng, p);
            if (rng() % 2) t.push_back(random_value(rng));
            const auto ep = key_codec::encode(p), et = key_codec::encode(t);
            const auto end = key_codec::tuple_range_end(ep);
            const bool expected = is_prefix(p, t);
            CAPTURE(i);
            CAPTURE(show(p));
            CAPTURE(show(t));
            CHECK((ep <= et && et < end) == expected);
            (expected ? extensions : others)++;
        }
        CHECK(extensions > 1000);
        CHECK(others > 1000);
    }
    SUBCASE("the empty prefix bounds every tuple") {
        const auto end = key_codec::tuple_range_end("");
        CHECK(end == "\xff");
        const std::uint64_t seed = 0x4B45'0004;
        CAPTURE(seed);
        std::mt19937_64 rng{seed};
        for (int i = 0; i < 1000; ++i) CHECK(key_codec::encode(random_tuple(rng)) < end);
    }
}

TEST_CASE("key_codec: truncated input is an error, element boundaries are not") {
    const std::uint64_t seed = 0x4B45'0005;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    for (int i = 0; i < 500; ++i) {
        const tuple t = random_tuple(rng, 4);
        const auto enc = key_codec::encode(t);
        std::vector<std::size_t> boundaries = {0};
        for (const auto& v : t) boundaries.push_back(boundaries.back() + key_codec::encode({v}).size());
        CAPTURE(i);
        CAPTURE(show(t));
        for (std::size_t cut = 0; cut <= enc.size(); ++cut) {
            CAPTURE(cut);
            const std::string_view part = std::string_view(enc).substr(0, cut);
            // Element k - 1 holds the cut (or ends at it): boundaries[k - 1] < cut <= boundaries[k].
            const auto upper = std::lower_bound(boundaries.begin(), boundaries.end(), cut);
            const auto k = static_cast<std::size_t>(upper - boundaries.begin());
            if (*upper == cut) {
                const auto dec = key_codec::decode(part);
                CHECK(identical(dec, tuple(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(k))));
            } else if (t[k - 1].kind() >= value_kind::text && enc[cut - 1] == '\0' && enc[cut] == '\xff') {
                // Cut between the two bytes of an escaped 0x00: what remains is
                // the valid key of a tuple whose last text ends before that 0x00.
                const auto dec = key_codec::decode(part);
                CHECK(key_codec::encode(dec) == part);
                CHECK(dec.size() == k);
                CHECK_FALSE(is_prefix(dec, t));
            } else {
                const auto msg = key_error_of([&] { (void)key_codec::decode(part); });
                CHECK(msg.find("malformed encoded key") != std::string::npos);
            }
        }
    }
}

TEST_CASE("key_codec: malformed elements are invalid_key errors naming the problem") {
    struct bad_case {
        std::string bytes;
        const char* says;
    };
    std::string leading_zero = bytes({0x11, 0x00, 0x14}) + "09223372036854775808";
    std::string neg_zero = bytes({0x0F, 0xFF, 0xFE});
    neg_zero.push_back(static_cast<char>(~'0'));
    std::string too_long = bytes({0x11, 0x10, 0x01}) + std::string(4097, '9');
    const std::vector<bad_case> cases = {
        {bytes({0x00}), "type byte 0"},
        {bytes({0x04}), "type byte 4"},
        {bytes({0xFF}), "type byte 255"},
        {bytes({0x10, 0x80}), "truncated integer"},
        {bytes({0x20, 0x80, 0, 0}), "truncated real"},
        {bytes({0x20, 0xFF, 0xF8, 0, 0, 0, 0, 0, 0}), "NaN"}, // +NaN, encoded
        {bytes({0x20, 0x00, 0x07, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), "NaN"}, // -NaN
        {bytes({0x30, 'a'}), "unterminated"},
        {bytes({0x30, 'a', 0x00, 0xFF}), "unterminated"},
        {bytes({0x40}), "unterminated"},
        {bytes({0x50, 0x00, 0xFF}), "unterminated"},
        {bytes({0x11}), "truncated big integer length"},
        {bytes({0x11, 0x00}), "truncated big integer length"},
        {bytes({0x11, 0x00, 0x14, '1'}), "truncated big integer digits"},
        {bytes({0x11, 0x00, 0x00}), "digit count"},
        {too_long, "digit count"},
        {leading_zero, "bad digit"},
        {bytes({0x11, 0x00, 0x02, '1', 'x'}), "bad digit"},
        {bytes({0x0F, 0xFF, 0xFE, '1'}), "bad digit"}, // a negative's digits must be inverted
        {neg_zero, "bad digit"},
        {bytes({0x11, 0x00, 0x01}) + "5", "int64"},                    // fits int64: must be tag 0x10
        {bytes({0x11, 0x00, 0x13}) + "9223372036854775807", "int64"}, // int64 max
    };
    for (const auto& c : cases) {
        CAPTURE(hex(c.bytes).substr(0, 40));
        const auto msg = key_error_of([&] { (void)key_codec::decode(c.bytes); });
        CHECK(msg.find(c.says) != std::string::npos);
        std::string_view in = c.bytes;
        (void)key_error_of([&] { (void)key_codec::skip(in); });
        CHECK(in.size() == c.bytes.size()); // a failed skip does not advance
    }
    // A malformed element after good ones still fails the whole decode.
    (void)key_error_of([&] { (void)key_codec::decode(key_codec::encode({value{1}, value{"x"}}) + bytes({0x04})); });
}

TEST_CASE("key_codec: read and skip at the end of input") {
    std::string_view empty;
    CHECK_FALSE(key_codec::skip(empty));
    const auto msg = key_error_of([&] { (void)key_codec::read(empty); });
    CHECK(msg.find("empty input") != std::string::npos);
    CHECK(key_codec::decode("").empty());
}

TEST_CASE("key_codec: random bytes decode to a canonical tuple or a parse_error") {
    const std::uint64_t seed = 0x4B45'0006;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    static constexpr unsigned char tags[] = {0x01, 0x02, 0x03, 0x0F, 0x10, 0x11, 0x20, 0x30, 0x40, 0x50};
    int decoded = 0, rejected = 0;
    for (int i = 0; i < 5000; ++i) {
        std::string input;
        if (rng() % 2) {
            // Mostly valid type bytes, random payloads.
            const auto n = rng() % 24;
            for (std::size_t k = 0; k < n; ++k)
                input.push_back(static_cast<char>(rng() % 3 == 0 ? tags[rng() % std::size(tags)]
                                                                 : static_cast<unsigned char>(rng())));
        } else {
            // A valid encoding with a few bytes damaged, cut or appended.
            input = key_codec::encode(random_tuple(rng, 3));
            const auto damage = rng() % 4;
            for (std::size_t k = 0; k < damage && !input.empty(); ++k)
                input[rng() % input.size()] = static_cast<char>(rng());
            if (rng() % 3 == 0 && !input.empty()) input.resize(rng() % input.size());
            if (rng() % 3 == 0) input.push_back(static_cast<char>(rng()));
        }
        CAPTURE(i);
        CAPTURE(hex(input));
        bool ok = true;
        tuple t;
        try {
            t = key_codec::decode(input);
        } catch (const parse_error& e) {
            CHECK(e.code() == errc::invalid_key);
            ok = false;
        }
        if (ok) {
            // Every byte string has at most one meaning, and it is canonical.
            CHECK(key_codec::encode(t) == input);
            ++decoded;
        } else {
            ++rejected;
        }

        // skip() walks the same elements read() does and fails where it fails.
        std::string_view by_read = input, by_skip = input;
        for (;;) {
            bool read_ok = true, skip_ok = true, more = false;
            try {
                if (by_read.empty()) break;
                (void)key_codec::read(by_read);
            } catch (const parse_error&) {
                read_ok = false;
            }
            try {
                more = key_codec::skip(by_skip);
            } catch (const parse_error&) {
                skip_ok = false;
            }
            CHECK(read_ok == skip_ok);
            if (!read_ok || !skip_ok) break;
            CHECK(more);
            CHECK(by_read.size() == by_skip.size());
        }
    }
    CHECK(decoded > 500);
    CHECK(rejected > 500);
}
