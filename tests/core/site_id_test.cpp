// site_id: generation, the 22-character base64url text form, strict parsing
// and unsigned byte order.

#include <crdtsync/site_id.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <string_view>

#if __has_include(<unistd.h>) && __has_include(<sys/wait.h>)
#include <sys/wait.h>
#include <unistd.h>
#endif

using crdtsync::errc;
using crdtsync::parse_error;
using crdtsync::site_id;

// Failed checks show ids in their text form.
template <>
struct doctest::StringMaker<site_id> {
    static doctest::String convert(const site_id& id) { return id.to_text().c_str(); }
};

namespace {

site_id filled(std::uint8_t byte) {
    site_id::bytes_type b{};
    b.fill(byte);
    return site_id{b};
}

// Parses `text`, expecting a parse_error with errc::invalid_site_id; returns
// its message (empty if nothing or something else was thrown).
std::string site_id_error(std::string_view text) {
    try {
        (void)site_id::from_text(text);
    } catch (const parse_error& e) {
        CHECK(e.code() == errc::invalid_site_id);
        return e.message();
    }
    FAIL_CHECK("no parse_error for \"" << std::string(text) << "\"");
    return {};
}

} // namespace

TEST_CASE("site_id: generate() makes distinct UUIDv4 ids") {
    std::set<site_id> seen;
    for (int i = 0; i < 1000; ++i) {
        const auto id = site_id::generate();
        CAPTURE(i);
        CHECK((id.bytes()[6] & 0xF0) == 0x40); // version 4
        CHECK((id.bytes()[8] & 0xC0) == 0x80); // variant 10
        CHECK_FALSE(id.is_nil());
        CHECK(seen.insert(id).second);
    }
    CHECK(seen.size() == 1000);
}

#if __has_include(<unistd.h>) && __has_include(<sys/wait.h>)
TEST_CASE("site_id: a forked process does not repeat its parent's ids") {
    // Two replicas opened in the two halves of a fork must not share an id:
    // nothing generate() draws from may be copied by fork().
    (void)site_id::generate();
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        const auto id = site_id::generate();
        const bool written = ::write(fds[1], id.bytes().data(), site_id::size) == static_cast<ssize_t>(site_id::size);
        ::_exit(written ? 0 : 1);
    }
    const auto parent_id = site_id::generate();
    ::close(fds[1]);
    site_id::bytes_type child_bytes{};
    const auto got = ::read(fds[0], child_bytes.data(), site_id::size);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(got == static_cast<ssize_t>(site_id::size));
    CHECK(WIFEXITED(status));
    CHECK(site_id{child_bytes} != parent_id);
}
#endif

TEST_CASE("site_id: the default id is nil and lowest") {
    const site_id nil;
    CHECK(nil.is_nil());
    CHECK(nil.to_text() == "AAAAAAAAAAAAAAAAAAAAAA");
    CHECK(site_id::from_text("AAAAAAAAAAAAAAAAAAAAAA") == nil);
    CHECK(nil < filled(0x01));
    CHECK_FALSE(filled(0x01).is_nil());
}

TEST_CASE("site_id: the vectors' ids") {
    struct vector_case {
        std::uint8_t byte;
        const char* text;
    };
    for (const auto& c : {vector_case{0xaa, "qqqqqqqqqqqqqqqqqqqqqg"},
                          vector_case{0xbb, "u7u7u7u7u7u7u7u7u7u7uw"},
                          vector_case{0xcc, "zMzMzMzMzMzMzMzMzMzMzA"}}) {
        const std::string text = c.text;
        CAPTURE(text);
        const auto id = filled(c.byte);
        CHECK(id.to_text() == text);
        CHECK(site_id::from_text(text) == id);
        CHECK(site_id::from_text(text).bytes() == id.bytes());
    }
}

TEST_CASE("site_id: text and bytes round trip") {
    const std::uint64_t seed = 0x5173'0001;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    for (int i = 0; i < 2000; ++i) {
        site_id::bytes_type b{};
        for (auto& x : b) x = static_cast<std::uint8_t>(rng());
        const site_id id{b};
        const auto text = id.to_text();
        CAPTURE(i);
        CAPTURE(text);
        REQUIRE(text.size() == site_id::text_size);
        CHECK(text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
              std::string::npos);
        CHECK(site_id::from_text(text) == id);
        CHECK(site_id::from_bytes(id.view()) == id);
        CHECK(id.view().size() == 16);
        CHECK(std::equal(id.view().begin(), id.view().end(), reinterpret_cast<const char*>(b.data())));
    }
}

TEST_CASE("site_id: wrong text lengths are errors naming the length") {
    for (std::size_t n : {0u, 1u, 21u, 23u, 24u}) {
        CAPTURE(n);
        const auto msg = site_id_error(std::string(n, 'A'));
        CHECK(msg.find("22") != std::string::npos);
        CHECK(msg.find("got " + std::to_string(n)) != std::string::npos);
    }
    // The padded form (24 characters) is not accepted either.
    const auto msg = site_id_error("qqqqqqqqqqqqqqqqqqqqqg==");
    CHECK(msg.find("got 24") != std::string::npos);
}

TEST_CASE("site_id: characters outside base64url are errors naming the character") {
    const std::string good = "qqqqqqqqqqqqqqqqqqqqqg";
    for (char bad : {'+', '/', '=', ' ', '.', '\0'}) {
        for (std::size_t at : {std::size_t{0}, std::size_t{7}, std::size_t{21}}) {
            auto text = good;
            text[at] = bad;
            CAPTURE(text);
            const auto msg = site_id_error(text);
            CHECK(msg.find("position " + std::to_string(at)) != std::string::npos);
            CHECK(msg.find("base64url") != std::string::npos);
            if (bad == '\0')
                CHECK(msg.find("0x00") != std::string::npos);
            else
                CHECK(msg.find(std::string("'") + bad + "'") != std::string::npos);
        }
    }
    // Padding where the data would be.
    CHECK(site_id_error("qqqqqqqqqqqqqqqqqqqq==").find("'='") != std::string::npos);
}

TEST_CASE("site_id: non-canonical trailing bits are rejected") {
    // The last character carries 2 data bits and 4 bits that must be zero:
    // 'g' (32) is canonical for 0xaa..., 'h'..'v' (33..47) are not.
    const std::string base = "qqqqqqqqqqqqqqqqqqqqq";
    for (char last : std::string_view("hijklmnopqrstuv")) {
        CAPTURE(last);
        const auto msg = site_id_error(base + last);
        CHECK(msg.find("canonical") != std::string::npos);
        CHECK(msg.find(std::string("'") + last + "'") != std::string::npos);
    }
    CHECK(site_id::from_text(base + 'g') == filled(0xaa));
    CHECK(site_id::from_text(base + 'w').bytes()[15] == 0xab);
}

TEST_CASE("site_id: from_bytes requires exactly 16 bytes") {
    for (std::size_t n : {0u, 15u, 17u, 30u}) {
        CAPTURE(n);
        try {
            (void)site_id::from_bytes(std::string(n, 'x'));
            FAIL_CHECK("accepted " << n << " bytes");
        } catch (const parse_error& e) {
            CHECK(e.code() == errc::invalid_site_id);
            CHECK(e.message().find("16 bytes, got " + std::to_string(n)) != std::string::npos);
            CHECK(std::string(e.what()).find("crdtsync: invalid_site_id: ") == 0);
        }
    }
    CHECK(site_id::from_bytes(std::string(16, '\xaa')) == filled(0xaa));
}

TEST_CASE("site_id: ordered as unsigned bytes") {
    site_id::bytes_type lo{}, hi{};
    lo[0] = 0x7F;
    hi[0] = 0x80; // negative as a signed char: must still sort above 0x7F
    CHECK(site_id{lo} < site_id{hi});
    CHECK(filled(0xaa) < filled(0xbb));
    CHECK(filled(0xbb) < filled(0xcc));
    CHECK(filled(0xff) > filled(0x00));

    // Later bytes only decide on a tie.
    site_id::bytes_type a{}, b{};
    a[0] = 1;
    a[15] = 0xFF;
    b[0] = 2;
    CHECK(site_id{a} < site_id{b});

    const std::uint64_t seed = 0x5173'0002;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    for (int i = 0; i < 2000; ++i) {
        site_id::bytes_type x{}, y{};
        for (auto& v : x) v = static_cast<std::uint8_t>(rng());
        y = x;
        // Equal prefixes of random length make the interesting cases common.
        const auto from = static_cast<std::size_t>(rng() % 17);
        for (std::size_t k = from; k < 16; ++k) y[k] = static_cast<std::uint8_t>(rng());
        const site_id sx{x}, sy{y};
        const auto expected = std::lexicographical_compare_three_way(x.begin(), x.end(), y.begin(), y.end());
        CAPTURE(i);
        CHECK((sx <=> sy) == expected);
        CHECK((sx == sy) == (x == y));
        // The text form does not preserve order (base64url's alphabet is not
        // ASCII-sorted), so only the bytes are compared.
    }
}

TEST_CASE("site_id: hashing follows equality") {
    const std::hash<site_id> h;
    CHECK(h(filled(0xaa)) == h(site_id::from_text("qqqqqqqqqqqqqqqqqqqqqg")));
    const auto a = site_id::generate();
    auto copy = a;
    CHECK(h(a) == h(copy));
}
