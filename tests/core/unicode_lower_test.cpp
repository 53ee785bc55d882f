// detail::js_to_lower against JavaScript's String.prototype.toLowerCase: every
// code point, the Final_Sigma context role of every code point, and a set of
// strings, each compared with what Node wrote into tests/vectors/unicode/
// (scripts/gen-unicode-lower-reference.mjs); then invalid UTF-8, which is
// copied through, and views, which are never read outside.

#include <crdtsync/detail/unicode_lower.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace detail = crdtsync::detail;
using detail::js_to_lower;

namespace {

namespace fs = std::filesystem;

std::string read_vector(const std::string& name) {
    std::ifstream in(fs::path(CRDTSYNC_TEST_VECTORS_DIR) / "unicode" / name, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "missing vector file unicode/" << name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The lines of a vector file without its '#' comments, split at spaces.
std::vector<std::vector<std::string>> read_rows(const std::string& name) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream in(read_vector(name));
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        std::vector<std::string> row;
        for (std::string f; fields >> f;) row.push_back(f);
        rows.push_back(row);
    }
    return rows;
}

std::uint32_t parse_hex(const std::string& s) { return static_cast<std::uint32_t>(std::stoul(s, nullptr, 16)); }

std::string utf8(std::uint32_t cp) {
    std::string s;
    detail::js_lower_put_utf8(s, cp);
    return s;
}

std::string hex_bytes(std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        if (!out.empty()) out += ' ';
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

bool is_surrogate(std::uint32_t cp) { return cp >= 0xD800 && cp <= 0xDFFF; }

const std::string sigma = "\xCE\xA3";       // U+03A3
const std::string small_sigma = "\xCF\x83"; // U+03C3
const std::string final_sigma = "\xCF\x82"; // U+03C2

} // namespace

TEST_CASE("js_to_lower: ASCII, the Greek sigma, U+0130 and supplementary letters") {
    CHECK(js_to_lower("") == "");
    CHECK(js_to_lower("Hello, WORLD 123 @[`{") == "hello, world 123 @[`{");
    CHECK(js_to_lower("\xC3\x80\xC3\x89 \xC3\x9F") == "\xC3\xA0\xC3\xA9 \xC3\x9F"); // ÀÉ ß -> àé ß
    CHECK(js_to_lower("\xCE\x91\xCE\xA3") == "\xCE\xB1" + final_sigma);              // ΑΣ -> ας
    CHECK(js_to_lower("\xCE\x91\xCE\xA3\xCE\x91") == "\xCE\xB1" + small_sigma + "\xCE\xB1");
    CHECK(js_to_lower(sigma) == small_sigma);
    CHECK(js_to_lower("1" + sigma) == "1" + small_sigma);
    CHECK(js_to_lower("A." + sigma) == "a." + final_sigma);       // '.' is case-ignorable
    CHECK(js_to_lower("A" + sigma + ".") == "a" + final_sigma + ".");
    CHECK(js_to_lower("A" + sigma + "\xCC\x81" "A") == "a" + small_sigma + "\xCC\x81" "a");
    CHECK(js_to_lower("\xC4\xB0") == "i\xCC\x87");                 // U+0130 -> U+0069 U+0307
    CHECK(js_to_lower("\xC4\xB0stanbul") == "i\xCC\x87stanbul");
    CHECK(js_to_lower("\xE2\x84\xAA") == "k");                     // KELVIN SIGN
    CHECK(js_to_lower("\xF0\x90\x90\x80") == "\xF0\x90\x90\xA8");  // U+10400 -> U+10428
    // The overload taking `out` appends.
    std::string out = "KEEP:";
    js_to_lower("AB\xCE\xA3", out);
    CHECK(out == "KEEP:ab" + final_sigma);
}

TEST_CASE("js_to_lower: every code point lowers as toLowerCase (tests/vectors/unicode/lower.txt)") {
    std::map<std::uint32_t, std::string> reference;
    for (const auto& row : read_rows("lower.txt")) {
        REQUIRE(row.size() >= 2);
        std::string lower;
        for (std::size_t k = 1; k < row.size(); ++k) lower += utf8(parse_hex(row[k]));
        reference[parse_hex(row[0])] = lower;
    }
    CHECK(reference.size() > 1400); // Unicode 17: 1488
    CHECK(reference.at(0x0130) == "i\xCC\x87");
    std::size_t compared = 0, changed = 0, wrong = 0;
    std::string first_wrong;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if (is_surrogate(cp)) continue;
        const std::string in = utf8(cp);
        const auto it = reference.find(cp);
        const std::string& want = it == reference.end() ? in : it->second;
        const std::string got = js_to_lower(in);
        ++compared;
        if (got != in) ++changed;
        if (got != want && wrong++ == 0)
            first_wrong = "code point " + hex_bytes(in) + ": got " + hex_bytes(got) + ", want " + hex_bytes(want);
    }
    CHECK(compared == 0x110000 - 0x800);
    CHECK_MESSAGE(wrong == 0, wrong << " code points differ, first " << first_wrong);
    CHECK(changed == reference.size());
}

TEST_CASE("js_to_lower: every code point plays its Final_Sigma role (tests/vectors/unicode/sigma_context.txt)") {
    // Roles as Node's toLowerCase showed them: 'c' cased, 'i' case-ignorable
    // (skipped by the search), anything else stops it as uncased.
    std::vector<char> role(0x110000, 0);
    std::size_t ranges = 0;
    for (const auto& row : read_rows("sigma_context.txt")) {
        REQUIRE(row.size() == 3);
        REQUIRE((row[2] == "c" || row[2] == "i"));
        for (std::uint32_t cp = parse_hex(row[0]); cp <= parse_hex(row[1]); ++cp) role[cp] = row[2][0];
        ++ranges;
    }
    CHECK(ranges > 500);
    CHECK(role[0x02B0] == 'i'); // MODIFIER LETTER SMALL H: cased and case-ignorable, skipped
    std::size_t wrong = 0;
    std::string first_wrong;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if (is_surrogate(cp)) continue;
        const std::string x = utf8(cp);
        const char r = role[cp];
        // "A x Σ": final sigma after a cased letter, or after a skipped x.
        const std::string p1 = js_to_lower("A" + x + sigma);
        // "1 x Σ": final sigma only when x itself is cased.
        const std::string p2 = js_to_lower("1" + x + sigma);
        // "A Σ x": final sigma unless x is cased.
        const std::string p3 = js_to_lower("A" + sigma + x);
        // "A Σ x A": final sigma only when x stops the search as uncased.
        const std::string p4 = js_to_lower("A" + sigma + x + "A");
        const bool ok = p1.ends_with(r ? final_sigma : small_sigma) && p2.ends_with(r == 'c' ? final_sigma : small_sigma) &&
                        p3.starts_with("a" + (r == 'c' ? small_sigma : final_sigma)) &&
                        p4.starts_with("a" + (r == 0 ? final_sigma : small_sigma));
        if (!ok && wrong++ == 0) first_wrong = "code point " + hex_bytes(x);
    }
    CHECK_MESSAGE(wrong == 0, wrong << " code points play the wrong role, first " << first_wrong);
}

TEST_CASE("js_to_lower: strings lower as toLowerCase (tests/vectors/unicode/lower_strings.json)") {
    const auto doc = nlohmann::json::parse(read_vector("lower_strings.json"));
    // The tables and the reference come from the same Unicode version.
    CHECK(doc.at("unicode").get<std::string>() == detail::unicode_lower_version);
    const auto& strings = doc.at("strings");
    CHECK(strings.size() >= 400);
    std::size_t with_final_sigma = 0;
    for (const auto& pair : strings) {
        const auto in = pair.at(0).get<std::string>();
        const auto want = pair.at(1).get<std::string>();
        CAPTURE(hex_bytes(in));
        CHECK(js_to_lower(in) == want);
        if (want.find(final_sigma) != std::string::npos) ++with_final_sigma;
    }
    CHECK(with_final_sigma > 20); // the set does exercise the rule
}

TEST_CASE("js_to_lower: invalid UTF-8 is copied through") {
    // Each lone byte, and each malformed sequence, stays as it is: every byte
    // of it is a unit of its own, and ASCII around it still lowers.
    for (int b = 0x80; b <= 0xFF; ++b) {
        const std::string bad(1, static_cast<char>(b));
        CAPTURE(b);
        CHECK(js_to_lower("A" + bad + "B") == "a" + bad + "b");
        CHECK(js_to_lower(bad) == bad);
    }
    const std::vector<std::string> malformed = {
        "\xC0\x80",         "\xC1\xBF",         "\xE0\x80\x80",     "\xE0\x9F\xBF",     "\xED\xA0\x80",
        "\xED\xBF\xBF",     "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80",
        "\xFF\xFE",         "\xC3",             "\xE2\x82",         "\xF0\x9F\x98",     "\xC3\xC3",
        "\xE2\x28\xA1",     "\x80\x80\x80\x80\x80",
    };
    for (const auto& bad : malformed) {
        CAPTURE(hex_bytes(bad));
        CHECK(js_to_lower("X" + bad + "Y") == "x" + bad + "y");
        CHECK(js_to_lower(bad + "\xC3\x80") == bad + "\xC3\xA0"); // a valid letter after it still lowers
    }
    // An invalid byte is uncased for the sigma rule: it stops the search.
    CHECK(js_to_lower("A\x80" + sigma) == "a\x80" + small_sigma);
    CHECK(js_to_lower("A\xCE" + sigma) == "a\xCE" + small_sigma); // a truncated lead, then Σ
    CHECK(js_to_lower("A" + sigma + "\x80" "A") == "a" + final_sigma + "\x80" "a");
    CHECK(js_to_lower("A\xCC\x81\x80\xCC\x81" + sigma) == "a\xCC\x81\x80\xCC\x81" + small_sigma);
    CHECK(js_to_lower("A\xCC\x81\xCC\x81" + sigma) == "a\xCC\x81\xCC\x81" + final_sigma);
    // Continuation bytes after a valid sequence belong to no code point.
    CHECK(js_to_lower("A\xCC\x81\x81" + sigma) == "a\xCC\x81\x81" + small_sigma);
    CHECK(js_to_lower("A\x81\x81\x81\x81" + sigma) == "a\x81\x81\x81\x81" + small_sigma);
}

TEST_CASE("js_to_lower: random pieces of valid and invalid UTF-8") {
    // Valid pieces (no sigma: no context) lower as listed; the malformed ones
    // are copied. No piece begins with a continuation byte except the lone
    // ones, which never follow a truncated sequence, so pieces never merge.
    struct piece {
        std::string in, out;
        bool truncated = false, lone_continuation = false;
    };
    const std::vector<piece> pieces = {
        {"A", "a"}, {"z", "z"}, {"5", "5"}, {"\xC3\x80", "\xC3\xA0"}, {"\xC4\xB0", "i\xCC\x87"},
        {"\xD0\x96", "\xD0\xB6"}, {"\xE2\x84\xAA", "k"}, {"\xF0\x90\x90\x80", "\xF0\x90\x90\xA8"},
        {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"}, {"\xCC\x81", "\xCC\x81"}, {"\xC0\x80", "\xC0\x80"},
        {"\xED\xA0\x80", "\xED\xA0\x80"}, {"\xF4\x90\x80\x80", "\xF4\x90\x80\x80"}, {"\xFF", "\xFF"},
        {"\xC3", "\xC3", true}, {"\xE2\x82", "\xE2\x82", true}, {"\xF0\x9F\x98", "\xF0\x9F\x98", true},
        {"\x80", "\x80", false, true}, {"\xBF", "\xBF", false, true},
    };
    std::mt19937 rng(20240611);
    for (int n = 0; n < 5000; ++n) {
        std::string in, want;
        bool after_truncated = false;
        const int len = static_cast<int>(rng() % 12);
        for (int k = 0; k < len; ++k) {
            const piece* p = &pieces[rng() % pieces.size()];
            while (after_truncated && p->lone_continuation) p = &pieces[rng() % pieces.size()];
            in += p->in;
            want += p->out;
            after_truncated = p->truncated;
        }
        CAPTURE(hex_bytes(in));
        REQUIRE(js_to_lower(in) == want);
    }
}

TEST_CASE("js_to_lower: a view is never read outside its bytes") {
    // Every sub-view of a buffer lowers as a copy of it: reading a byte before
    // or after the view would see a neighbour that changes the result (a
    // sigma's context, the rest of a split sequence).
    const std::string buffer = "A" + sigma + "B" + sigma + "\xCC\x81" + sigma + "1\xC4\xB0" + sigma +
                               "\xF0\x90\x90\x80" + sigma + ".A\xE2\x84\xAA" + sigma;
    const std::string_view whole(buffer);
    std::size_t views = 0;
    for (std::size_t begin = 0; begin <= whole.size(); ++begin) {
        for (std::size_t len = 0; begin + len <= whole.size(); ++len) {
            const std::string_view view = whole.substr(begin, len);
            const std::string copy(view);
            CAPTURE(begin);
            CAPTURE(len);
            REQUIRE(js_to_lower(view) == js_to_lower(copy));
            ++views;
        }
    }
    CHECK(views > 400);
    // Each prefix in an allocation of exactly its size, so that a sanitizer
    // build sees any read past the end.
    for (std::size_t len = 0; len <= whole.size(); ++len) {
        const auto exact = std::make_unique<char[]>(len);
        std::copy_n(whole.data(), len, exact.get());
        CAPTURE(len);
        REQUIRE(js_to_lower(std::string_view(exact.get(), len)) == js_to_lower(std::string(whole.substr(0, len))));
    }
    // Two of them spelled out: the sigma of "AΣ" alone, and "AΣ" cut from "AΣB".
    CHECK(js_to_lower(whole.substr(1, 2)) == small_sigma);
    CHECK(js_to_lower(whole.substr(0, 3)) == "a" + final_sigma);
    // A truncated sequence at the end of a view, whose rest follows it.
    CHECK(js_to_lower(whole.substr(0, 2)) == "a\xCE");
}
