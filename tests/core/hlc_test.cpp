// hlc: the 30-byte layout, the 40-character text form, their agreement with
// the logical order, strict parsing, and the transaction id.

#include <crdtsync/hlc.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <compare>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <string_view>

using crdtsync::errc;
using crdtsync::hlc;
using crdtsync::parse_error;
using crdtsync::site_id;

// Failed checks show timestamps as (wall, counter, site, op_seq).
template <>
struct doctest::StringMaker<hlc> {
    static doctest::String convert(const hlc& h) {
        // Appended piece by piece: g++ 12 warns (-Wrestrict, GCC bug 105329)
        // on a chain of std::string operator+ here.
        std::string s = "(";
        s += std::to_string(h.wall_time);
        s += ", ";
        s += std::to_string(h.counter);
        s += ", ";
        s += h.site.to_text();
        s += ", ";
        s += std::to_string(h.op_seq);
        s += ")";
        return s.c_str();
    }
};

namespace {

site_id filled(std::uint8_t byte) {
    site_id::bytes_type b{};
    b.fill(byte);
    return site_id{b};
}

int sign(int c) { return (c > 0) - (c < 0); }
int sign(std::strong_ordering o) { return o < 0 ? -1 : o > 0 ? 1 : 0; }

std::string hlc_error(std::string_view text) {
    try {
        (void)hlc::from_text(text);
    } catch (const parse_error& e) {
        CHECK(e.code() == errc::invalid_hlc);
        return e.message();
    }
    FAIL_CHECK("no parse_error for \"" << std::string(text) << "\"");
    return {};
}

// Random timestamps drawn from a few values per field, so that ties on the
// leading fields (and thus comparisons decided by the later ones) are common.
hlc random_hlc(std::mt19937_64& rng) {
    hlc h;
    switch (rng() % 4) {
    case 0: h.wall_time = rng(); break;
    case 1: h.wall_time = 1'700'000'000'000 + rng() % 3; break;
    case 2: h.wall_time = rng() % 2 ? 0 : std::numeric_limits<std::uint64_t>::max(); break;
    default: h.wall_time = std::uint64_t(1) << (rng() % 64); break;
    }
    h.counter = rng() % 2 ? static_cast<std::uint16_t>(rng()) : static_cast<std::uint16_t>(rng() % 3 + 0xFFFD);
    site_id::bytes_type s{};
    const auto shape = rng() % 3;
    for (auto& b : s) b = shape == 0 ? static_cast<std::uint8_t>(rng()) : static_cast<std::uint8_t>(0x7E + rng() % 4);
    h.site = site_id{s};
    h.op_seq = rng() % 2 ? static_cast<std::uint32_t>(rng()) : static_cast<std::uint32_t>(rng() % 3);
    return h;
}

} // namespace

TEST_CASE("hlc: the default value is the zero timestamp, lowest of all") {
    const hlc zero;
    CHECK(zero.wall_time == 0);
    CHECK(zero.counter == 0);
    CHECK(zero.site.is_nil());
    CHECK(zero.op_seq == 0);
    CHECK(zero < hlc{0, 0, site_id{}, 1});
    CHECK(zero.to_text() == std::string(40, 'A'));
}

TEST_CASE("hlc: byte layout is u64 wall | u16 counter | 16B site | u32 op_seq, big-endian") {
    site_id::bytes_type s{};
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(0xA0 + i);
    const hlc h{0x0102030405060708ULL, 0x090A, site_id{s}, 0x1B1C1D1EU};
    const auto b = h.to_bytes();
    REQUIRE(b.size() == 30);
    const unsigned char expected[30] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // wall
                                        0x09, 0x0A,                                     // counter
                                        0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, // site
                                        0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF,
                                        0x1B, 0x1C, 0x1D, 0x1E}; // op_seq
    for (std::size_t i = 0; i < 30; ++i) {
        CAPTURE(i);
        CHECK(b[i] == expected[i]);
    }

    std::string appended = "prefix";
    h.append_bytes(appended);
    CHECK(appended.size() == 6 + 30);
    CHECK(std::memcmp(appended.data() + 6, expected, 30) == 0);

    unsigned char raw[32] = {};
    h.write_bytes(raw + 1);
    CHECK(raw[0] == 0);
    CHECK(std::memcmp(raw + 1, expected, 30) == 0);
    CHECK(raw[31] == 0);

    CHECK(hlc::read_bytes(expected) == h);
    CHECK(hlc::from_bytes(std::string_view(reinterpret_cast<const char*>(expected), 30)) == h);
}

TEST_CASE("hlc: the vectors' timestamp") {
    const hlc h{1'700'000'001'000ULL, 0, filled(0xaa), 0};
    const auto b = h.to_bytes();
    // 1700000001000 == 0x0000018BCFE56BE8
    CHECK(b[0] == 0x00);
    CHECK(b[1] == 0x00);
    CHECK(b[2] == 0x01);
    CHECK(b[3] == 0x8B);
    CHECK(b[4] == 0xCF);
    CHECK(b[5] == 0xE5);
    CHECK(b[6] == 0x6B);
    CHECK(b[7] == 0xE8);
    CHECK(b[8] == 0x00);
    CHECK(b[9] == 0x00);
    CHECK(b[10] == 0xAA);
    CHECK(b[25] == 0xAA);
    CHECK(b[29] == 0x00);
    CHECK(h.to_text() == "AAABi8/la+gAAKqqqqqqqqqqqqqqqqqqqqoAAAAA");
    CHECK(hlc::from_text("AAABi8/la+gAAKqqqqqqqqqqqqqqqqqqqqoAAAAA") == h);
    CHECK(h.with_op_seq(2).to_text() == "AAABi8/la+gAAKqqqqqqqqqqqqqqqqqqqqoAAAAC");
    CHECK(h.transaction_id() == "1700000001000:0:qqqqqqqqqqqqqqqqqqqqqg");
}

TEST_CASE("hlc: extreme fields round trip") {
    site_id::bytes_type ff{};
    ff.fill(0xFF);
    const hlc top{std::numeric_limits<std::uint64_t>::max(), 0xFFFF, site_id{ff}, 0xFFFFFFFFU};
    CHECK(top.to_text() == std::string(40, '/'));
    CHECK(hlc::from_text(top.to_text()) == top);
    CHECK(hlc::from_bytes(std::string(30, '\xFF')) == top);
    CHECK(hlc{} < top);
}

TEST_CASE("hlc: byte order equals logical order; bytes and text round trip") {
    const std::uint64_t seed = 0x4C43'0001;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    for (int i = 0; i < 5000; ++i) {
        const hlc a = random_hlc(rng);
        const hlc b = rng() % 8 == 0 ? a : random_hlc(rng);
        CAPTURE(i);
        CAPTURE(a.to_text());
        CAPTURE(b.to_text());
        const auto ba = a.to_bytes(), bb = b.to_bytes();
        CHECK(sign(std::memcmp(ba.data(), bb.data(), 30)) == sign(a <=> b));
        CHECK((ba == bb) == (a == b));

        const auto raw = std::string(reinterpret_cast<const char*>(ba.data()), ba.size());
        CHECK(hlc::from_bytes(raw) == a);
        const auto text = a.to_text();
        CHECK(text.size() == 40);
        CHECK(hlc::from_text(text) == a);
    }
}

TEST_CASE("hlc: order is (wall_time, counter, site, op_seq)") {
    const auto s1 = filled(0x01), s2 = filled(0x02);
    CHECK(hlc{1, 9, s2, 9} < hlc{2, 0, s1, 0}); // wall first
    CHECK(hlc{1, 1, s2, 9} < hlc{1, 2, s1, 0}); // then counter
    CHECK(hlc{1, 1, s1, 9} < hlc{1, 1, s2, 0}); // then site
    CHECK(hlc{1, 1, s1, 0} < hlc{1, 1, s1, 1}); // then op_seq
    CHECK(hlc{1, 1, s1, 1} == hlc{1, 1, s1, 1});
    // Site bytes compare unsigned: 0x80 sorts above 0x7F.
    CHECK(hlc{1, 1, filled(0x7F), 0} < hlc{1, 1, filled(0x80), 0});
}

TEST_CASE("hlc: with_op_seq and same_transaction") {
    const hlc h{42, 7, filled(0xbb), 0};
    const auto h3 = h.with_op_seq(3);
    CHECK(h3.op_seq == 3);
    CHECK(h3.wall_time == 42);
    CHECK(h3.counter == 7);
    CHECK(h3.site == filled(0xbb));
    CHECK(h.op_seq == 0);
    CHECK(h < h3);
    CHECK(h.same_transaction(h3));
    CHECK_FALSE(h.same_transaction(hlc{43, 7, filled(0xbb), 0}));
    CHECK_FALSE(h.same_transaction(hlc{42, 8, filled(0xbb), 0}));
    CHECK_FALSE(h.same_transaction(hlc{42, 7, filled(0xbc), 0}));
}

TEST_CASE("hlc: transaction_id is \"<wall>:<counter>:<site base64url>\"") {
    CHECK(hlc{1'700'000'001'000ULL, 3, filled(0xbb), 9}.transaction_id() ==
          "1700000001000:3:u7u7u7u7u7u7u7u7u7u7uw");
    CHECK(hlc{}.transaction_id() == "0:0:AAAAAAAAAAAAAAAAAAAAAA");
    CHECK(hlc{std::numeric_limits<std::uint64_t>::max(), 65535, filled(0xcc), 0}.transaction_id() ==
          "18446744073709551615:65535:zMzMzMzMzMzMzMzMzMzMzA");
    // op_seq is not part of it: all facts of a transaction share the id.
    const hlc h{5, 1, filled(0xaa), 0};
    CHECK(h.transaction_id() == h.with_op_seq(77).transaction_id());
}

TEST_CASE("hlc: wrong text lengths are errors naming the length") {
    const std::string good = "AAABi8/la+gAAKqqqqqqqqqqqqqqqqqqqqoAAAAA";
    for (std::size_t n : {0u, 1u, 38u, 39u, 41u, 44u}) {
        CAPTURE(n);
        std::string text = good.substr(0, std::min<std::size_t>(n, 40));
        text.resize(n, 'A');
        const auto msg = hlc_error(text);
        CHECK(msg.find("40") != std::string::npos);
        CHECK(msg.find("got " + std::to_string(n)) != std::string::npos);
    }
}

TEST_CASE("hlc: characters outside standard base64 are errors naming them") {
    const std::string good = "AAABi8/la+gAAKqqqqqqqqqqqqqqqqqqqqoAAAAA";
    for (char bad : {'-', '_', '.', ' ', '\n', '\xC3'}) {
        for (std::size_t at : {std::size_t{0}, std::size_t{20}, std::size_t{39}}) {
            auto text = good;
            text[at] = bad;
            CAPTURE(at);
            CAPTURE(static_cast<int>(static_cast<unsigned char>(bad)));
            const auto msg = hlc_error(text);
            CHECK(msg.find("position " + std::to_string(at)) != std::string::npos);
            CHECK(msg.find("standard base64") != std::string::npos);
        }
    }
    // The url alphabet is a different encoding: not accepted.
    CHECK(hlc_error("AAABi8_la-gAAKqqqqqqqqqqqqqqqqqqqqoAAAAA").find("'_'") != std::string::npos);
    CHECK(hlc_error(std::string(39, 'A') + '\xC3').find("0xc3") != std::string::npos);
}

TEST_CASE("hlc: padding is never valid in the 40-character form") {
    // 28 bytes padded to 40 characters, 29 bytes padded, '=' inside.
    for (const char* text : {"AAABi8/la+gAAKqqqqqqqqqqqqqqqqqqqqoAAA==",
                             "AAABi8/la+gAAKqqqqqqqqqqqqqqqqqqqqoAAAA=",
                             "AAABi8/la+gAAKqqqqqq=qqqqqqqqqqqqqoAAAAA",
                             "========================================"}) {
        CAPTURE(text);
        const auto msg = hlc_error(text);
        CHECK(msg.find("'='") != std::string::npos);
        CHECK(msg.find("padding") != std::string::npos);
    }
}

TEST_CASE("hlc: from_bytes requires exactly 30 bytes") {
    for (std::size_t n : {0u, 29u, 31u, 40u}) {
        CAPTURE(n);
        try {
            (void)hlc::from_bytes(std::string(n, '\x01'));
            FAIL_CHECK("accepted " << n << " bytes");
        } catch (const parse_error& e) {
            CHECK(e.code() == errc::invalid_hlc);
            CHECK(e.message().find("30 bytes, got " + std::to_string(n)) != std::string::npos);
        }
    }
}
