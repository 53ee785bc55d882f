// The support every other part stands on: the version, the error hierarchy,
// and the base64 and big-endian codecs of detail/.

#include <crdtsync/detail/base64.hpp>
#include <crdtsync/detail/endian.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/version.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace detail = crdtsync::detail;
using crdtsync::errc;

#define CRDTSYNC_TEST_STR2(x) #x
#define CRDTSYNC_TEST_STR(x) CRDTSYNC_TEST_STR2(x)

TEST_CASE("version: the header agrees with the build") {
    const std::string header_version = CRDTSYNC_TEST_STR(CRDTSYNC_VERSION_MAJOR) "." CRDTSYNC_TEST_STR(
        CRDTSYNC_VERSION_MINOR) "." CRDTSYNC_TEST_STR(CRDTSYNC_VERSION_PATCH);
    CHECK(header_version == CRDTSYNC_TEST_PROJECT_VERSION);
    CHECK(crdtsync::storage_format_version == 3);
    // Public names live in the versioned inline namespace.
    static_assert(std::is_same_v<crdtsync::v0::error, crdtsync::error>);
    static_assert(std::is_same_v<crdtsync::v0::errc, crdtsync::errc>);
}

TEST_CASE("error: every code has a distinct stable name") {
    std::set<std::string_view> names;
    for (int c = 1; c <= 22; ++c) {
        CAPTURE(c);
        const auto name = crdtsync::to_text(static_cast<errc>(c));
        CHECK(name != "unknown");
        CHECK(names.insert(name).second);
    }
    // The names are part of the wire and log format: spot-check a few.
    CHECK(crdtsync::to_text(errc::invalid_argument) == "invalid_argument");
    CHECK(crdtsync::to_text(errc::clock_drift) == "clock_drift");
    CHECK(crdtsync::to_text(errc::invalid_key) == "invalid_key");
    CHECK(crdtsync::to_text(errc::snapshot_required) == "snapshot_required");
    CHECK(static_cast<int>(errc::invalid_hlc) == 3);
    CHECK(static_cast<int>(errc::snapshot_required) == 18);
    CHECK(static_cast<int>(errc::snapshot) == 19);
    CHECK(crdtsync::to_text(errc::snapshot) == "snapshot");
    CHECK(static_cast<int>(errc::corrupt) == 20);
    CHECK(crdtsync::to_text(errc::corrupt) == "corrupt");
    CHECK(static_cast<int>(errc::protocol) == 21);
    CHECK(crdtsync::to_text(errc::protocol) == "protocol");
    CHECK(static_cast<int>(errc::network) == 22);
    CHECK(crdtsync::to_text(errc::network) == "network");
    CHECK(crdtsync::to_text(static_cast<errc>(0)) == "unknown");
    CHECK(crdtsync::to_text(static_cast<errc>(999)) == "unknown");
}

namespace {

// Raises `code` and reports whether the exception caught as E, with the code
// and message intact.
template <class E>
bool raises_as(errc code) {
    try {
        detail::raise(code, "the message");
    } catch (const E& e) {
        CHECK(e.code() == code);
        CHECK(e.message() == "the message");
        CHECK(std::string(e.what()) == "crdtsync: " + std::string(crdtsync::to_text(code)) + ": the message");
        return true;
    } catch (...) {
        return false;
    }
}

} // namespace

TEST_CASE("error: raise picks the exception type from the code") {
    for (errc c : {errc::invalid_site_id, errc::invalid_hlc, errc::invalid_value, errc::invalid_key, errc::decode,
                   errc::limit_exceeded}) {
        CAPTURE(crdtsync::to_text(c));
        CHECK(raises_as<crdtsync::parse_error>(c));
        CHECK_FALSE(raises_as<crdtsync::usage_error>(c));
    }
    for (errc c : {errc::clock_drift, errc::clock_overflow}) CHECK(raises_as<crdtsync::clock_error>(c));
    for (errc c : {errc::storage, errc::storage_full, errc::format_version, errc::corrupt})
        CHECK(raises_as<crdtsync::storage_error>(c));
    for (errc c : {errc::unknown_table, errc::unknown_column, errc::schema_mismatch, errc::schema})
        CHECK(raises_as<crdtsync::schema_error>(c));
    CHECK(raises_as<crdtsync::constraint_error>(errc::constraint));
    for (errc c : {errc::snapshot_required, errc::protocol, errc::network}) CHECK(raises_as<crdtsync::sync_error>(c));
    CHECK(raises_as<crdtsync::snapshot_error>(errc::snapshot));
    CHECK(raises_as<crdtsync::usage_error>(errc::invalid_argument));
    CHECK_FALSE(raises_as<crdtsync::parse_error>(errc::invalid_argument));
    // Every error is a crdtsync::error and a std::runtime_error.
    for (int c = 1; c <= 22; ++c) {
        CAPTURE(c);
        CHECK(raises_as<crdtsync::error>(static_cast<errc>(c)));
        CHECK_THROWS_AS(detail::raise(static_cast<errc>(c), "x"), std::runtime_error);
    }
    // A code this version does not know still throws the base type.
    CHECK(raises_as<crdtsync::error>(static_cast<errc>(999)));
    CHECK_FALSE(raises_as<crdtsync::parse_error>(static_cast<errc>(999)));
}

TEST_CASE("detail::base64: RFC 4648 section 10 vectors, standard and url") {
    struct vector_case {
        const char* bytes;
        const char* padded;
        const char* url;
    };
    for (const auto& c : {vector_case{"", "", ""}, vector_case{"f", "Zg==", "Zg"}, vector_case{"fo", "Zm8=", "Zm8"},
                          vector_case{"foo", "Zm9v", "Zm9v"}, vector_case{"foob", "Zm9vYg==", "Zm9vYg"},
                          vector_case{"fooba", "Zm9vYmE=", "Zm9vYmE"}, vector_case{"foobar", "Zm9vYmFy", "Zm9vYmFy"}}) {
        const std::string bytes = c.bytes;
        CAPTURE(bytes);
        CHECK(detail::base64_encode(bytes) == c.padded);
        CHECK(detail::base64_encode(bytes, /*url=*/true) == c.url);
        CHECK(detail::base64_decode(c.padded) == bytes);
        CHECK(detail::base64_decode(c.url, /*url=*/true) == bytes);
    }
    // The two alphabets differ only in the last two characters.
    CHECK(detail::base64_encode("\xfb\xff") == "+/8=");
    CHECK(detail::base64_encode("\xfb\xff", true) == "-_8");
    CHECK(detail::base64_decode("+/8=") == std::string("\xfb\xff"));
    CHECK(detail::base64_decode("-_8", true) == std::string("\xfb\xff"));
}

TEST_CASE("detail::base64: strict decoding") {
    // Standard: padding required and only at the end; no url characters.
    for (const char* bad : {"Zg", "Zg=", "Zm8", "Z===", "====", "=Zg=", "Zg==Zg==", "Zm9v=", "Z", "-_8=", "Zm 9v",
                            "Zh==", "Zm9=", "\xc3\xa9==="}) {
        CAPTURE(bad);
        CHECK_FALSE(detail::base64_decode(bad).has_value());
    }
    // Url: no padding at all; no standard characters; no impossible lengths.
    for (const char* bad : {"Zg==", "Zm8=", "Z", "Zm9vY", "+/8", "Zh", "Zm9"}) {
        CAPTURE(bad);
        CHECK_FALSE(detail::base64_decode(bad, true).has_value());
    }
}

TEST_CASE("detail::base64: random bytes round trip, invalid characters are located") {
    const std::uint64_t seed = 0xB64'0001;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    for (int i = 0; i < 2000; ++i) {
        std::string bytes(rng() % 40, '\0');
        for (auto& b : bytes) b = static_cast<char>(rng());
        CAPTURE(i);
        for (bool url : {false, true}) {
            const auto text = detail::base64_encode(bytes, url);
            CHECK(text.size() == (url ? (bytes.size() * 4 + 2) / 3 : (bytes.size() + 2) / 3 * 4));
            CHECK(detail::base64_decode(text, url) == bytes);
            CHECK(detail::base64_invalid_at(text, url) == (url || text.find('=') == std::string::npos
                                                               ? std::string_view::npos
                                                               : text.find('=')));
        }
    }
    CHECK(detail::base64_invalid_at("ab+c", true) == 2);
    CHECK(detail::base64_invalid_at("ab-c", false) == 2);
    CHECK(detail::base64_invalid_at("abc=", false) == 3);
    CHECK(detail::base64_invalid_at("", false) == std::string_view::npos);
    CHECK(detail::describe_char('+') == "'+'");
    CHECK(detail::describe_char('\n') == "byte 0x0a");
    CHECK(detail::describe_char('\xff') == "byte 0xff");
}

TEST_CASE("detail::endian: big-endian put, store and load") {
    std::string out;
    detail::put_be<std::uint16_t>(out, 0x0102);
    detail::put_be<std::uint32_t>(out, 0x03040506U);
    detail::put_be<std::uint64_t>(out, 0x0708090A0B0C0DFFULL);
    detail::put_be<std::uint8_t>(out, 0xEE);
    CHECK(out == std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\xff\xee", 15));
    CHECK(detail::load_be<std::uint16_t>(out) == 0x0102);
    CHECK(detail::load_be<std::uint32_t>(out, 2) == 0x03040506U);
    CHECK(detail::load_be<std::uint64_t>(out, 6) == 0x0708090A0B0C0DFFULL);
    CHECK(detail::load_be<std::uint8_t>(out, 14) == 0xEE);

    unsigned char buf[8] = {};
    detail::store_be<std::uint64_t>(buf, 0xFEDCBA9876543210ULL);
    CHECK(buf[0] == 0xFE);
    CHECK(buf[7] == 0x10);
    CHECK(detail::load_be<std::uint64_t>(buf) == 0xFEDCBA9876543210ULL);

    // Byte order is numeric order.
    const std::uint64_t seed = 0xE1D1'0001;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    for (int i = 0; i < 1000; ++i) {
        const std::uint64_t a = rng() >> (rng() % 64), b = rng() >> (rng() % 64);
        std::string ea, eb;
        detail::put_be(ea, a);
        detail::put_be(eb, b);
        CAPTURE(a);
        CAPTURE(b);
        CHECK((ea < eb) == (a < b));
        CHECK(detail::load_be<std::uint64_t>(ea) == a);
    }
}

TEST_CASE("detail::endian: compare_bytes and same_bytes agree with string_view") {
    // Every length up to 40 (the word loads overlap differently at each),
    // bytes across the whole range (0x80 and up must sort above 0x7F), and
    // shared prefixes of random length so that late bytes decide.
    const std::uint64_t seed = 0xE1D1'0002;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    auto sign = [](int c) { return c < 0 ? -1 : c > 0 ? 1 : 0; };
    for (int i = 0; i < 20000; ++i) {
        std::string a(static_cast<std::size_t>(rng() % 41), '\0');
        for (auto& c : a) c = static_cast<char>(rng() % 4 == 0 ? 0x7F + rng() % 3 : rng());
        std::string b = a.substr(0, static_cast<std::size_t>(rng() % (a.size() + 1)));
        const auto extra = static_cast<std::size_t>(rng() % 6);
        for (std::size_t k = 0; k < extra; ++k) b.push_back(static_cast<char>(rng()));
        if (rng() % 4 == 0) b = a;
        CAPTURE(i);
        CAPTURE(a.size());
        CAPTURE(b.size());
        CHECK(detail::compare_bytes(a, b) == sign(std::string_view(a).compare(b)));
        CHECK(detail::compare_bytes(b, a) == sign(std::string_view(b).compare(a)));
        CHECK(detail::same_bytes(a, b) == (a == b));
    }
    CHECK(detail::compare_bytes("", "") == 0);
    CHECK(detail::compare_bytes("", std::string_view("\0", 1)) == -1);
    CHECK(detail::compare_bytes("\x7f", "\x80") == -1);
    CHECK(detail::same_bytes("", ""));
    // load_be works in constant expressions too.
    constexpr unsigned char be[4] = {0x01, 0x02, 0x03, 0x04};
    static_assert(detail::load_be<std::uint32_t>(be) == 0x01020304U);
}
