// value: kinds, construction rules (NaN, wide unsigned, big integer
// normalisation), big integer parsing, the total order across kinds, typed
// access and rendering.

#include <crdtsync/value.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <compare>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using crdtsync::big_integer;
using crdtsync::blob;
using crdtsync::errc;
using crdtsync::json_text;
using crdtsync::parse_error;
using crdtsync::usage_error;
using crdtsync::value;
using crdtsync::value_kind;

// Failed checks show values rendered by value::to_text().
template <>
struct doctest::StringMaker<value> {
    static doctest::String convert(const value& v) { return v.to_text().c_str(); }
};

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr std::int64_t i64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();

value big(std::string_view text) { return value{big_integer::parse(text)}; }

int sign(std::strong_ordering o) { return o < 0 ? -1 : o > 0 ? 1 : 0; }

// Expects big_integer::parse(text) to fail with errc::invalid_value.
void check_rejected(std::string_view text) {
    CAPTURE(text.substr(0, 40));
    try {
        (void)big_integer::parse(text);
        FAIL_CHECK("accepted");
    } catch (const parse_error& e) {
        CHECK(e.code() == errc::invalid_value);
        CHECK(e.message().find("canonical decimal") != std::string::npos);
        CHECK(e.message().size() < 200); // long input is cut short in the message
    }
}

} // namespace

TEST_CASE("value: each kind constructs and reports its kind") {
    CHECK(value{}.kind() == value_kind::null);
    CHECK(value{}.is_null());
    CHECK(value{nullptr}.kind() == value_kind::null);
    CHECK(value{true}.kind() == value_kind::boolean);
    CHECK(value{false}.as_bool() == false);
    CHECK(value{42}.kind() == value_kind::integer);
    CHECK(value{42}.as_integer() == 42);
    CHECK(big("99999999999999999999").kind() == value_kind::big_integer);
    CHECK(value{1.5}.kind() == value_kind::real);
    CHECK(value{1.5}.as_real() == 1.5);
    CHECK(value{2.5f}.kind() == value_kind::real);
    CHECK(value{2.5f}.as_real() == 2.5);
    CHECK(value{"abc"}.kind() == value_kind::text);
    CHECK(value{std::string("abc")}.as_text() == "abc");
    CHECK(value{std::string_view("a\0b", 3)}.as_text() == std::string("a\0b", 3));
    CHECK(value{blob{"\x01\x02"}}.kind() == value_kind::blob);
    CHECK(value{blob{"\x01\x02"}}.as_blob().bytes == "\x01\x02");
    CHECK(value{json_text{"[1,2]"}}.kind() == value_kind::json);
    CHECK(value{json_text{"[1,2]"}}.as<json_text>().text == "[1,2]");
    // No kind but null is null.
    CHECK_FALSE(value{0}.is_null());
    CHECK_FALSE(value{""}.is_null());
    CHECK_FALSE(value{false}.is_null());
    CHECK_FALSE(value{0.0}.is_null());
}

TEST_CASE("value: get_if returns the held alternative only") {
    const value v{7};
    REQUIRE(v.get_if<std::int64_t>() != nullptr);
    CHECK(*v.get_if<std::int64_t>() == 7);
    CHECK(v.get_if<double>() == nullptr);
    CHECK(v.get_if<std::string>() == nullptr);
    CHECK(v.raw().index() == 2);
}

TEST_CASE("value: NaN becomes null, infinities stay reals") {
    CHECK(value{std::nan("")}.is_null());
    CHECK(value{-std::numeric_limits<double>::quiet_NaN()}.is_null());
    CHECK(value{std::numeric_limits<float>::quiet_NaN()}.is_null());
    CHECK(value{inf}.kind() == value_kind::real);
    CHECK(value{-inf}.kind() == value_kind::real);
    CHECK(value{-0.0}.kind() == value_kind::real);
    CHECK(std::signbit(value{-0.0}.as_real()));
}

TEST_CASE("value: integral types become integers, wide unsigned may become big integers") {
    CHECK(value{static_cast<signed char>(-5)}.as_integer() == -5);
    CHECK(value{static_cast<unsigned char>(250)}.as_integer() == 250);
    CHECK(value{static_cast<short>(-30000)}.as_integer() == -30000);
    CHECK(value{static_cast<std::uint16_t>(65535)}.as_integer() == 65535);
    CHECK(value{-7}.as_integer() == -7);
    CHECK(value{4'000'000'000U}.as_integer() == 4'000'000'000);
    CHECK(value{i64_min}.as_integer() == i64_min);
    CHECK(value{i64_max}.as_integer() == i64_max);
    CHECK(value{-1LL}.as_integer() == -1);

    const auto at_max = value{static_cast<std::uint64_t>(i64_max)};
    CHECK(at_max.kind() == value_kind::integer);
    CHECK(at_max.as_integer() == i64_max);

    const auto above = value{static_cast<std::uint64_t>(i64_max) + 1};
    CHECK(above.kind() == value_kind::big_integer);
    CHECK(above.as<big_integer>().text() == "9223372036854775808");

    const auto top = value{std::numeric_limits<std::uint64_t>::max()};
    CHECK(top.kind() == value_kind::big_integer);
    CHECK(top.as<big_integer>().text() == "18446744073709551615");
    CHECK(value{std::numeric_limits<unsigned long long>::max()}.kind() == value_kind::big_integer);
    CHECK(value{static_cast<std::size_t>(12)}.as_integer() == 12);
}

TEST_CASE("big_integer::parse accepts canonical decimal text") {
    for (const char* text : {"0", "1", "-1", "10", "-10", "123456789012345678901234567890",
                             "-123456789012345678901234567890"}) {
        CAPTURE(text);
        CHECK(big_integer::parse(text).text() == text);
    }
    const auto neg = big_integer::parse("-12345");
    CHECK(neg.negative());
    CHECK(neg.digits() == "12345");
    const auto pos = big_integer::parse("12345");
    CHECK_FALSE(pos.negative());
    CHECK(pos.digits() == "12345");

    // The longest accepted magnitude, with and without a sign.
    const std::string longest = "1" + std::string(big_integer::max_digits - 1, '0');
    CHECK(big_integer::parse(longest).digits().size() == 4096);
    CHECK(big_integer::parse("-" + longest).digits().size() == 4096);
}

TEST_CASE("big_integer::parse rejects anything else") {
    for (const char* text : {"", "-", "01", "00", "-0", "-01", "+1", "1a", "a1", " 1", "1 ", "1.0", "1e5",
                             "--1", "0x10", "1-", "\xd9\xa1"}) {
        check_rejected(text);
    }
    check_rejected(std::string_view("1\0", 2));
    check_rejected("1" + std::string(big_integer::max_digits, '0')); // 4097 digits
    check_rejected("-1" + std::string(big_integer::max_digits, '0'));
    check_rejected(std::string(100'000, '9'));
}

TEST_CASE("big integers that fit int64 normalise to integers") {
    CHECK(big("9223372036854775807").kind() == value_kind::integer);
    CHECK(big("9223372036854775807").as_integer() == i64_max);
    CHECK(big("9223372036854775808").kind() == value_kind::big_integer);
    CHECK(big("-9223372036854775808").kind() == value_kind::integer);
    CHECK(big("-9223372036854775808").as_integer() == i64_min);
    CHECK(big("-9223372036854775809").kind() == value_kind::big_integer);
    CHECK(big("0").as_integer() == 0);
    CHECK(big("-42").as_integer() == -42);
    CHECK(big("9999999999999999999").kind() == value_kind::big_integer); // 19 digits, > int64
    CHECK(big("10000000000000000000").kind() == value_kind::big_integer);
    CHECK(big("1000000000000000000").as_integer() == 1'000'000'000'000'000'000);

    std::int64_t out = 0;
    CHECK(big_integer::parse("-9223372036854775808").fits_int64(out));
    CHECK(out == i64_min);
    CHECK_FALSE(big_integer::parse("18446744073709551616").fits_int64(out));
    CHECK_FALSE(big_integer::parse("18446744073709551615").fits_int64(out));

    // The same number reached two ways is the same value.
    CHECK(value{std::numeric_limits<std::uint64_t>::max()} == big("18446744073709551615"));
    CHECK(big("12") == value{12});
}

TEST_CASE("value: the total order across kinds") {
    // One representative per rank, in the documented order:
    // null < boolean < numbers < real < text < blob < json.
    const std::vector<value> ladder = {
        value{},
        value{false},
        value{true},
        big("-100000000000000000000"),
        value{i64_min},
        value{0},
        value{i64_max},
        big("100000000000000000000"),
        value{-inf},
        value{-1.0},
        value{-0.0},
        value{0.0},
        value{1.0},
        value{inf},
        value{""},
        value{"a"},
        value{blob{}},
        value{blob{"a"}},
        value{json_text{"[]"}},
        value{json_text{"{}"}},
    };
    for (std::size_t i = 0; i < ladder.size(); ++i) {
        for (std::size_t j = 0; j < ladder.size(); ++j) {
            CAPTURE(i);
            CAPTURE(j);
            CAPTURE(ladder[i].to_text());
            CAPTURE(ladder[j].to_text());
            CHECK(sign(ladder[i] <=> ladder[j]) == (i < j ? -1 : i > j ? 1 : 0));
            CHECK((ladder[i] == ladder[j]) == (i == j));
        }
    }
    // Reals are above every integer, however large: kinds first.
    CHECK(value{-inf} > big("9" + std::string(4000, '9')));
    CHECK(value{-1e300} > value{i64_max});
    // Text is above every real; blobs above every text; json above every blob.
    CHECK(value{""} > value{inf});
    CHECK(value{blob{}} > value{"\xff\xff"});
    CHECK(value{json_text{""}} > value{blob{"\xff"}});
}

TEST_CASE("value: numbers compare numerically across integer and big integer") {
    const std::vector<value> ascending = {
        big("-" + std::string(50, '9')),
        big("-100000000000000000000000"),
        big("-99999999999999999999999"),
        big("-18446744073709551616"),
        big("-9223372036854775810"),
        big("-9223372036854775809"),
        value{i64_min},
        value{i64_min + 1},
        value{-1},
        value{0},
        value{1},
        value{i64_max - 1},
        value{i64_max},
        big("9223372036854775808"),
        big("9223372036854775809"),
        big("18446744073709551615"),
        big("18446744073709551616"),
        big("99999999999999999999999"),
        big("100000000000000000000000"),
        big(std::string(50, '9')),
    };
    for (std::size_t i = 0; i < ascending.size(); ++i)
        for (std::size_t j = 0; j < ascending.size(); ++j) {
            CAPTURE(ascending[i].to_text());
            CAPTURE(ascending[j].to_text());
            CHECK(sign(ascending[i] <=> ascending[j]) == (i < j ? -1 : i > j ? 1 : 0));
        }

    // Random big integers against each other: same order as by length, then digits.
    const std::uint64_t seed = 0x7A1E'0001;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    for (int i = 0; i < 2000; ++i) {
        auto make = [&] {
            std::string d(20 + rng() % 5, '0');
            d[0] = static_cast<char>('1' + rng() % 9);
            for (std::size_t k = 1; k < d.size(); ++k) d[k] = static_cast<char>('0' + rng() % 10);
            return std::pair{rng() % 2 == 1, d};
        };
        const auto [na, da] = make();
        const auto [nb, db] = make();
        // Expected: compare magnitudes, flip for two negatives.
        int mag = da.size() != db.size() ? (da.size() < db.size() ? -1 : 1) : (da < db ? -1 : da > db ? 1 : 0);
        int expected = na != nb ? (na ? -1 : 1) : (na ? -mag : mag);
        const auto a = big((na ? "-" : "") + da), b = big((nb ? "-" : "") + db);
        CAPTURE(i);
        CAPTURE(a.to_text());
        CAPTURE(b.to_text());
        CHECK(sign(a <=> b) == expected);
    }
}

TEST_CASE("value: reals in IEEE total order") {
    const std::vector<double> ascending = {-inf,
                                           -std::numeric_limits<double>::max(),
                                           -1.0,
                                           -std::numeric_limits<double>::min(),
                                           -std::numeric_limits<double>::denorm_min(),
                                           -0.0,
                                           0.0,
                                           std::numeric_limits<double>::denorm_min(),
                                           std::numeric_limits<double>::min(),
                                           1.0,
                                           std::nextafter(1.0, 2.0),
                                           std::numeric_limits<double>::max(),
                                           inf};
    for (std::size_t i = 0; i < ascending.size(); ++i)
        for (std::size_t j = 0; j < ascending.size(); ++j) {
            CAPTURE(ascending[i]);
            CAPTURE(ascending[j]);
            CHECK(sign(value{ascending[i]} <=> value{ascending[j]}) == (i < j ? -1 : i > j ? 1 : 0));
        }
    CHECK(value{-0.0} != value{0.0});
    CHECK(value{-0.0} < value{0.0});
}

TEST_CASE("value: text, blob and json compare as unsigned bytes") {
    CHECK(value{"a"} < value{"b"});
    CHECK(value{"a"} < value{"ab"});
    CHECK(value{std::string_view("a\0", 2)} > value{"a"});
    CHECK(value{"\x7f"} < value{"\x80"}); // 0x80 is above 0x7F, not negative
    CHECK(value{"\xff"} > value{"z"});
    CHECK(value{blob{"\x7f"}} < value{blob{"\x80"}});
    CHECK(value{blob{std::string("\0", 1)}} > value{blob{}});
    CHECK(value{json_text{"[\"\x80\"]"}} > value{json_text{"[\"z\"]"}});
    CHECK(value{"B"} < value{"a"}); // binary, not case-folded
}

TEST_CASE("value: as<T>() on the wrong kind names both kinds") {
    struct wrong_case {
        value v;
        const char* held;
    };
    const std::vector<wrong_case> cases = {{value{}, "null"},
                                           {value{true}, "boolean"},
                                           {value{1}, "integer"},
                                           {big("-99999999999999999999"), "big integer"},
                                           {value{1.0}, "real"},
                                           {value{"x"}, "text"},
                                           {value{blob{"x"}}, "blob"},
                                           {value{json_text{"{}"}}, "json"}};
    for (const auto& c : cases) {
        const value& v = c.v;
        const char* held = c.held;
        CAPTURE(held);
        auto expect = [&](auto&& access, std::string_view wanted) {
            try {
                access();
                FAIL_CHECK("no usage_error");
            } catch (const usage_error& e) {
                CHECK(e.code() == errc::invalid_argument);
                CHECK(e.message() == std::string("value is ") + held + ", not " + std::string(wanted));
            }
        };
        if (v.kind() != value_kind::integer) expect([&] { (void)v.as_integer(); }, "integer");
        if (v.kind() != value_kind::real) expect([&] { (void)v.as_real(); }, "real");
        if (v.kind() != value_kind::text) expect([&] { (void)v.as_text(); }, "text");
        if (v.kind() != value_kind::boolean) expect([&] { (void)v.as_bool(); }, "boolean");
        if (v.kind() != value_kind::blob) expect([&] { (void)v.as_blob(); }, "blob");
        if (v.kind() != value_kind::big_integer) expect([&] { (void)v.as<big_integer>(); }, "big integer");
        if (v.kind() != value_kind::json) expect([&] { (void)v.as<json_text>(); }, "json");
    }
    // An integer is not readable as a real, nor a real as an integer.
    CHECK_THROWS_AS((void)value{2}.as_real(), usage_error);
    CHECK_THROWS_AS((void)value{2.0}.as_integer(), usage_error);
}

TEST_CASE("value: kind names") {
    CHECK(std::string_view(value::kind_name(value_kind::null)) == "null");
    CHECK(std::string_view(value::kind_name(value_kind::big_integer)) == "big integer");
    CHECK(std::string_view(value::kind_name(value_kind::json)) == "json");
}

TEST_CASE("value: to_text") {
    CHECK(value{}.to_text() == "NULL");
    CHECK(value{true}.to_text() == "true");
    CHECK(value{false}.to_text() == "false");
    CHECK(value{-42}.to_text() == "-42");
    CHECK(value{i64_min}.to_text() == "-9223372036854775808");
    CHECK(big("-123456789012345678901234567890").to_text() == "-123456789012345678901234567890");
    CHECK(value{1.5}.to_text() == "1.5");
    CHECK(value{0.1}.to_text() == "0.10000000000000001"); // round-trip precision
    CHECK(value{-0.0}.to_text() == "-0");
    CHECK(value{1e300}.to_text() == "1.0000000000000001e+300");
    CHECK(value{-std::numeric_limits<double>::max()}.to_text() == "-1.7976931348623157e+308");
    CHECK(value{inf}.to_text() == "inf");
    CHECK(value{-inf}.to_text() == "-inf");
    CHECK(value{"abc"}.to_text() == "'abc'");
    CHECK(value{blob{std::string("\x00\x1f\xab\xff", 4)}}.to_text() == "x'001fabff'");
    CHECK(value{blob{}}.to_text() == "x''");
    CHECK(value{json_text{"{\"a\":1}"}}.to_text() == "{\"a\":1}");
}

// Every text conversion is named to_text (issue 17, point 7). The old names
// stay as deprecated forwarders so that code written against them compiles;
// this checks they still give the same text.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
TEST_CASE("value: to_string is the deprecated old name of to_text") {
    for (const value& v : {value{}, value{-42}, value{1.5}, value{"abc"}, value{blob{std::string("\x01", 1)}}}) {
        CAPTURE(v.to_text());
        CHECK(v.to_string() == v.to_text());
    }
    CHECK(crdtsync::to_string(errc::clock_drift) == crdtsync::to_text(errc::clock_drift));
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
