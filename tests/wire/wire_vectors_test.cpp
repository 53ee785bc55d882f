// The codec against the wire vectors a real Quereus replica produced
// (tests/vectors/quereus), and against thousands of mutations of them.

#include "wire_samples.hpp"

#include <map>
#include <random>

using namespace wire_test;
using nlohmann::json;
namespace wire = crdtsync::wire;

namespace {

std::size_t count_facts(const std::vector<change_set>& sets) {
    std::size_t n = 0;
    for (const auto& cs : sets) n += cs.changes.size();
    return n;
}

} // namespace

TEST_CASE("every change set vector decodes and re-encodes to the same JSON") {
    const auto files = change_set_vector_files();
    REQUIRE(files.size() == 16);
    for (const auto& f : files) {
        CAPTURE(f.filename().string());
        const std::string text = read_file(f);
        const auto sets = wire::decode_change_sets(text);
        CHECK(!sets.empty());
        const std::string again = wire::encode_change_sets(sets);
        CHECK(json::parse(again) == json::parse(text));
        CHECK(wire::decode_change_sets(again) == sets);
        CHECK(wire::encode_change_sets(wire::decode_change_sets(again)) == again);
        // The same change sets inside coordinator messages.
        const message m = wire::decode_message(R"({"type":"push_changes","changeSets":)" + text + "}");
        CHECK(std::get<msg::push_changes>(m).change_sets == sets);
        CHECK(wire::from_json<std::vector<change_set>>(json::parse(text)) == sets);
    }
}

TEST_CASE("vector counts match what steps.json says Quereus pulled") {
    const json steps = json::parse(read_file(std::filesystem::path(vector_dir()) / "steps.json"));
    std::size_t pulls = 0;
    for (const auto& step : steps.at("steps")) {
        if (step.at("kind") != "pull") continue;
        ++pulls;
        const std::string file = step.at("file").get<std::string>();
        CAPTURE(file);
        const auto sets = wire::decode_change_sets(read_file(std::filesystem::path(vector_dir()) / file));
        CHECK(sets.size() == step.at("changeSets").get<std::size_t>());
        CHECK(count_facts(sets) == step.at("changes").get<std::size_t>());
        std::size_t migrations = 0;
        for (const auto& cs : sets) migrations += cs.migrations.size();
        CHECK(migrations == step.at("schemaMigrations").get<std::size_t>());
        // Quereus's apply result travels as our apply_result.
        const json& result = step.at("applyResult");
        const auto decoded = wire::from_json<apply_result>(result);
        CHECK(wire::to_json(decoded) == result);
        CHECK(decoded.applied + decoded.skipped + decoded.conflicts <= count_facts(sets) + migrations);
    }
    CHECK(pulls == 16);
}

TEST_CASE("table states in steps.json: every cell value round trips") {
    const json steps = json::parse(read_file(std::filesystem::path(vector_dir()) / "steps.json"));
    std::size_t cells = 0;
    for (const auto& step : steps.at("steps")) {
        if (step.at("kind") != "state") continue;
        for (const auto& replica : step.at("tables").items())
            for (const auto& table : replica.value().items())
                for (const auto& row : table.value())
                    for (const auto& cell : row.items()) {
                        const value v = wire::from_json<value>(cell.value());
                        const std::string where = replica.key() + " " + table.key() + "." + cell.key();
                        CHECK_MESSAGE(wire::to_json(v) == cell.value(), where);
                        ++cells;
                    }
    }
    CHECK(cells > 100);
}

TEST_CASE("vector 01 holds the values the README describes") {
    const auto sets = wire::decode_change_sets(read_file(std::filesystem::path(vector_dir()) / "01-S3-A-to-B.json"));
    std::vector<value> values;
    std::vector<row_key> keys;
    for (const auto& cs : sets) {
        CHECK(cs.origin == site_a);
        CHECK(cs.transaction_id == cs.version.transaction_id());
        for (const auto& c : cs.changes) {
            if (const auto* cc = std::get_if<column_change>(&c)) {
                values.push_back(cc->val);
                keys.push_back(cc->pk);
            }
        }
    }
    const auto has = [&](const value& v) { return std::find(values.begin(), values.end(), v) != values.end(); };
    CHECK(has(value{std::int64_t(9007199254740993)}));                 // {"__bigint": ...}, fits int64
    CHECK(has(value{-std::numeric_limits<std::int64_t>::max()}));      // travels as __bigint too
    CHECK(has(value{std::int64_t(2)}));                                // the REAL 2.0, as JSON 2
    CHECK(has(value{blob{}}));                                         // empty blob
    CHECK(has(value{blob{std::string("\x00\xff\x7f\x80", 4)}}));
    CHECK(has(value{"Gr\xc3\xbc\xc3\x9f" "e, \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80 \"q\" \\ end"}));
    CHECK(has(value{}));
    CHECK(std::find(keys.begin(), keys.end(), row_key{value{std::numeric_limits<std::int64_t>::max()}}) != keys.end());
    CHECK(std::find(keys.begin(), keys.end(), row_key{value{"\xc3\xbc"}, value{std::int64_t(-7)}}) != keys.end());
    CHECK(sets[0].migrations.size() == 1);
    CHECK(sets[0].migrations[0].type == migration_kind::create_table);
}

TEST_CASE("the snapshot stream vector decodes chunk by chunk") {
    const json stream = json::parse(read_file(snapshot_vector_file()));
    REQUIRE(stream.is_array());
    REQUIRE(stream.size() == 23);
    std::vector<snapshot_chunk> chunks;
    for (const auto& j : stream) {
        const std::string frame = j.dump();
        const snapshot_chunk c = wire::decode_snapshot_chunk(frame);
        CHECK(wire_type_of(c) == j.at("type").get<std::string>());
        CHECK(json::parse(wire::encode_snapshot_chunk(c)) == j);
        // As a coordinator frame.
        const message m = wire::decode_message(R"({"type":"snapshot_chunk","chunk":)" + frame + "}");
        CHECK(std::get<msg::snapshot_chunk>(m).chunk == c);
        chunks.push_back(c);
    }
    CHECK(wire::decode_snapshot_chunks(read_file(snapshot_vector_file())) == chunks);

    // Stream order: header, migrations, tables (start, versions, end), tombstones, footer.
    const auto& header = std::get<snapshot_header>(chunks.front());
    const auto& footer = std::get<snapshot_footer>(chunks.back());
    CHECK(header.snapshot_format == snapshot_format_version);
    CHECK(header.origin == site_a);
    CHECK(header.snapshot_id == footer.snapshot_id);
    std::size_t migrations = 0, tables = 0, entries = 0, tombstones = 0, phase = 0;
    for (std::size_t i = 1; i + 1 < chunks.size(); ++i) {
        std::visit(
            [&](const auto& c) {
                using T = std::decay_t<decltype(c)>;
                if constexpr (std::is_same_v<T, snapshot_schema_migration>) {
                    CHECK(phase == 0);
                    ++migrations;
                } else if constexpr (std::is_same_v<T, snapshot_table_start>) {
                    CHECK(phase <= 1);
                    phase = 1;
                    ++tables;
                } else if constexpr (std::is_same_v<T, snapshot_column_versions>) {
                    CHECK(phase == 1);
                    CHECK(c.entries.size() <= 4);
                    entries += c.entries.size();
                } else if constexpr (std::is_same_v<T, snapshot_tombstones>) {
                    phase = 2;
                    tombstones += c.entries.size();
                    for (const auto& t : c.entries) CHECK(t.prior_row.has_value());
                } else if constexpr (std::is_same_v<T, snapshot_table_end>) {
                    CHECK(phase == 1);
                } else {
                    FAIL("unexpected chunk " << T::wire_type);
                }
            },
            chunks[i]);
    }
    CHECK(migrations == header.migration_count);
    CHECK(migrations == footer.total_migrations);
    CHECK(tables == header.table_count);
    CHECK(tables == footer.total_tables);
    CHECK(entries == footer.total_entries);
    CHECK(tombstones == 4);
}

namespace {

/// One random edit of `s`: the kinds of damage a flaky transport or a
/// hostile peer produces, biased towards JSON punctuation.
std::string mutate(std::string s, std::mt19937_64& rng) {
    static constexpr std::string_view punct = "{}[],:\"\\-+.eE0123456789 tfn_";
    const auto pick = [&](std::size_t n) { return n == 0 ? std::size_t(0) : static_cast<std::size_t>(rng() % n); };
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
        const std::size_t at = pick(s.size());
        switch (rng() % 8) {
        case 0: if (!s.empty()) s[at] = static_cast<char>(rng() & 0xFF); break;
        case 1: if (!s.empty()) s[at] = punct[pick(punct.size())]; break;
        case 2: s.insert(at, 1, punct[pick(punct.size())]); break;
        case 3: s.erase(at, 1 + pick(16)); break;
        case 4: s.resize(at); break;
        case 5: { // duplicate a span
            const std::size_t len = 1 + pick(64);
            s.insert(pick(s.size() + 1), s.substr(at, len));
            break;
        }
        case 6: { // swap two spans' bytes
            if (s.size() > 2) std::swap(s[at], s[pick(s.size())]);
            break;
        }
        default: { // replace a digit run by a huge or odd number
            static const char* odd[] = {"-0", "1e400", "1e-400", "99999999999999999999999", "-9223372036854775809",
                                        "4294967296", "0.5", "1E2", "-1"};
            const auto d = s.find_first_of("0123456789", at);
            if (d != std::string::npos) s.replace(d, 1, odd[pick(std::size(odd))]);
        }
        }
    }
    return s;
}

/// Decodes `text` as `T`; a success must survive encode and decode unchanged.
template <class T>
void decode_or_error(const std::string& text, std::size_t& decoded) {
    try {
        const T x = wire::decode<T>(text);
        const std::string again = wire::encode(x);
        const T y = wire::decode<T>(again);
        CHECK_MESSAGE(y == x, text);
        CHECK(wire::encode(y) == again);
        ++decoded;
    } catch (const crdtsync::error&) {
        // A typed error is the other acceptable outcome.
    } catch (const std::exception& e) {
        FAIL_CHECK("decoding threw something other than crdtsync::error: " << e.what() << "\n" << text);
    }
}

} // namespace

TEST_CASE("mutated vectors decode or fail with crdtsync::error, nothing else") {
    std::mt19937_64 rng(20260326);
    std::vector<std::string> seeds;
    for (const auto& f : change_set_vector_files()) seeds.push_back(read_file(f));
    const std::string snapshot = read_file(snapshot_vector_file());
    std::vector<std::string> frames;
    for (const auto& m : sample_messages()) frames.push_back(wire::encode(m));

    std::size_t tried = 0, decoded = 0;
    for (int round = 0; round < 100; ++round)
        for (const auto& s : seeds) {
            decode_or_error<std::vector<change_set>>(mutate(s, rng), decoded);
            ++tried;
        }
    for (int round = 0; round < 600; ++round) {
        decode_or_error<std::vector<snapshot_chunk>>(mutate(snapshot, rng), decoded);
        ++tried;
    }
    for (int round = 0; round < 60; ++round)
        for (const auto& f : frames) {
            decode_or_error<message>(mutate(f, rng), decoded);
            decode_or_error<value>(mutate(f, rng), decoded);
            tried += 2;
        }
    MESSAGE(tried << " mutated inputs, " << decoded << " decoded");
    CHECK(tried >= 3000);
    CHECK(decoded > 0);
}

TEST_CASE("the reader accepts exactly the JSON nlohmann accepts, with the same values") {
    std::mt19937_64 rng(7);
    std::vector<std::string> seeds;
    const auto files = change_set_vector_files();
    for (std::size_t i = 0; i < files.size(); i += 5) seeds.push_back(read_file(files[i]));
    for (const auto& m : sample_messages()) seeds.push_back(wire::encode(m));
    seeds.push_back(R"([1, -0, 0.5e-3, 1E+2, "a\u00e9\ud83d\ude00", true, false, null, {"k": [{}], "": []}])");
    seeds.push_back(R"({"n": 18446744073709551615, "m": -9223372036854775808, "big": 1e308, "tiny": 4.9e-324})");
    std::size_t agreed = 0;
    for (int round = 0; round < 40; ++round)
        for (const auto& s : seeds) {
            const std::string text = round == 0 ? s : mutate(s, rng);
            if (text.find('\0') != std::string::npos) continue; // nlohmann stops reading at a NUL byte
            const bool theirs = json::accept(text);
            bool ours = true;
            json mine;
            try {
                mine = wire::parse(text);
            } catch (const crdtsync::error&) {
                ours = false;
            }
            CHECK_MESSAGE(ours == theirs, text);
            if (ours && theirs) CHECK_MESSAGE(mine == json::parse(text), text);
            ++agreed;
        }
    CHECK(agreed > 1000);
}

TEST_CASE("every JSON example in docs/wire.md decodes and re-encodes to the same JSON") {
    const std::string doc = read_file(std::filesystem::path(CRDTSYNC_DOCS_DIR) / "wire.md");
    std::map<std::string, std::size_t> seen;
    std::size_t at = 0;
    while ((at = doc.find("```json ", at)) != std::string::npos) {
        const std::size_t kind_end = doc.find('\n', at);
        const std::string kind = doc.substr(at + 8, kind_end - at - 8);
        const std::size_t end = doc.find("```", kind_end);
        REQUIRE(end != std::string::npos);
        const std::string text = doc.substr(kind_end + 1, end - kind_end - 1);
        at = end + 3;
        CAPTURE(kind);
        CAPTURE(text);
        const json original = json::parse(text);
        json again;
        if (kind == "message") again = json::parse(wire::encode(wire::decode_message(text)));
        else if (kind == "chunk") again = json::parse(wire::encode(wire::decode_snapshot_chunk(text)));
        else if (kind == "change-sets") again = json::parse(wire::encode_change_sets(wire::decode_change_sets(text)));
        else if (kind == "value") again = json::parse(wire::encode(wire::decode<value>(text)));
        else if (kind == "checkpoint") again = json::parse(wire::encode(wire::decode<snapshot_checkpoint>(text)));
        else if (kind == "apply-result") again = json::parse(wire::encode(wire::decode<apply_result>(text)));
        else FAIL("unknown example kind " << kind);
        CHECK(again == original);
        ++seen[kind];
    }
    // One example of every message and every chunk kind.
    CHECK(seen["message"] == 14);
    CHECK(seen["chunk"] == 7);
    CHECK(seen["change-sets"] == 1);
    CHECK(seen["checkpoint"] == 1);
    CHECK(seen["apply-result"] == 1);
}

TEST_CASE("the description examples in docs/wire.md are the code in wire/types.hpp") {
    const std::filesystem::path docs(CRDTSYNC_DOCS_DIR);
    const std::string doc = read_file(docs / "wire.md");
    const std::string code = read_file(docs.parent_path() / "include" / "crdtsync" / "wire" / "types.hpp");
    const auto squeeze = [](std::string_view s) { // runs of white space as one space
        std::string out;
        for (const char c : s) {
            const bool space = c == ' ' || c == '\n';
            if (!space) out += c;
            else if (!out.empty() && out.back() != ' ') out += ' ';
        }
        return out;
    };
    const std::string squeezed_code = squeeze(code);
    std::size_t checked = 0, at = 0;
    while ((at = doc.find("```cpp\ntemplate <", at)) != std::string::npos) {
        const std::size_t start = at + 7, end = doc.find("```", start);
        REQUIRE(end != std::string::npos);
        const std::string example = doc.substr(start, end - start);
        at = end + 3;
        CAPTURE(example);
        CHECK(squeezed_code.find(squeeze(example)) != std::string::npos);
        ++checked;
    }
    CHECK(checked == 2); // msg::error; the facts
}
