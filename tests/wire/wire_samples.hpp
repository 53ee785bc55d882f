#pragma once
// Sample values of every wire type, and helpers shared by the wire tests.

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <crdtsync/wire/json.hpp>

namespace wire_test {

using namespace crdtsync;

inline site_id site_of(unsigned char byte) {
    site_id::bytes_type b{};
    b.fill(byte);
    return site_id{b};
}
inline const site_id site_a = site_of(0xaa);
inline const site_id site_b = site_of(0xbb);

inline hlc at(std::uint64_t wall, std::uint16_t counter, const site_id& s, std::uint32_t op) {
    return hlc{wall, counter, s, op};
}

/// Values of every kind that survive decode(encode(v)) unchanged (reals are
/// non-integral: an integral real reads back as an integer, by design).
inline std::vector<value> sample_values() {
    return {
        value{},
        value{true},
        value{false},
        value{std::int64_t(0)},
        value{std::int64_t(-1)},
        value{std::int64_t(42)},
        value{wire::max_safe_integer},
        value{-wire::max_safe_integer},
        value{wire::max_safe_integer + 1}, // travels as __bigint
        value{std::numeric_limits<std::int64_t>::max()},
        value{std::numeric_limits<std::int64_t>::min()},
        value{big_integer::parse("123456789012345678901234567890")},
        value{big_integer::parse("-98765432109876543210")},
        value{1.5},
        value{-0.25},
        value{1e-7},
        value{1.7976931348623157e308},
        value{5e-324},
        value{0.1},
        value{std::string()},
        value{"plain text"},
        value{"Gr\xc3\xbc\xc3\x9f" "e, \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80"},
        value{std::string("quote\" backslash\\ newline\n tab\t ctl\x01 nul\0 end", 45)},
        value{blob{}},
        value{blob{std::string("\x00\xff\x7f\x80", 4)}},
        value{blob{"hello blob"}},
        value{json_text{R"({"a":[1,2,{"b":null}],"c":"x","d":1.5})"}},
        value{json_text{"[]"}},
        value{json_text{"{}"}},
        value{json_text{R"([1,"two",[3],{"__bin":"nested tags are plain json"}])"}},
    };
}

template <class U>
void set_unknown_table(std::optional<U>& field) {
    if constexpr (std::is_integral_v<U>) field = 3;
    else field = "ghost";
}

inline column_change sample_column_change(std::uint32_t op, value v) {
    column_change c;
    c.table = "items";
    c.pk = {value{std::int64_t(op)}};
    c.version = at(1700000002000, 0, site_a, op);
    c.column = "name";
    c.val = std::move(v);
    return c;
}

inline change_set sample_change_set() {
    change_set cs;
    cs.origin = site_a;
    cs.version = at(1700000002000, 0, site_a, 5);
    cs.transaction_id = cs.version.transaction_id();
    column_change c1 = sample_column_change(0, value{"apple"});
    column_change c2 = sample_column_change(1, value{blob{"\x01\x02"}});
    c2.prior_value = value{};
    c2.prior_version = at(1700000001000, 7, site_b, 2);
    column_change c3 = sample_column_change(2, value{1.25});
    c3.schema = "aux";
    c3.table = "pairs";
    c3.pk = {value{"\xc3\xbc"}, value{std::int64_t(-7)}};
    row_delete d1;
    d1.table = "items";
    d1.pk = {value{std::int64_t(4)}};
    d1.version = at(1700000002000, 0, site_a, 3);
    d1.prior_row = row_key{value{std::int64_t(4)}, value{"to-delete"}, value{4.5}, value{blob{"\xde\xad"}}, value{}};
    row_delete d2 = d1;
    d2.version.op_seq = 4;
    d2.prior_row.reset();
    row_delete d3 = d1;
    d3.version.op_seq = 5;
    d3.prior_row = row_key{}; // present but empty: distinct from absent
    cs.changes = {c1, c2, c3, d1, d2, d3};
    schema_migration m;
    m.type = migration_kind::create_table;
    m.table = "items";
    m.ddl = "CREATE TABLE \"main\".\"items\" (\"id\" INTEGER NOT NULL PRIMARY KEY) USING store";
    m.version = at(1700000002000, 0, site_a, 0);
    m.schema_version = 1;
    schema_migration r = m;
    r.type = migration_kind::rename_table;
    r.table = "goods";
    r.from_table = "items";
    r.ddl = "alter table items rename to goods";
    r.schema_version = 2;
    cs.migrations = {m, r};
    return cs;
}

inline std::vector<schema_migration> sample_migrations() {
    std::vector<schema_migration> out;
    for (auto k : {migration_kind::create_table, migration_kind::drop_table, migration_kind::rename_table,
                   migration_kind::add_column, migration_kind::drop_column, migration_kind::alter_column,
                   migration_kind::add_index, migration_kind::drop_index}) {
        schema_migration m;
        m.type = k;
        m.table = "t";
        if (k == migration_kind::rename_table) m.from_table = "old_t";
        m.ddl = std::string("-- ") + std::string(to_text(k));
        m.version = at(1700000000000 + static_cast<std::uint64_t>(k), 1, site_b, 0);
        m.schema_version = static_cast<std::int64_t>(k) + 1;
        out.push_back(m);
    }
    return out;
}

inline apply_result sample_apply_result() {
    apply_result r;
    r.applied = 53;
    r.skipped = 2;
    r.conflicts = 1;
    r.transactions = 4;
    rejection x;
    x.reason = "clock drift: remote HLC is 61000 ms ahead";
    x.code = "clock_drift";
    x.transaction_id = "1700000002000:0:qqqqqqqqqqqqqqqqqqqqqg";
    rejection y;
    y.reason = "unknown column";
    y.code = "unknown_column";
    y.table = "items";
    y.column = "colour";
    r.rejected = {x, y};
    set_unknown_table(r.unknown_table);
    return r;
}

inline snapshot_checkpoint sample_checkpoint() {
    snapshot_checkpoint k;
    k.snapshot_id = "00000000-0000-4000-8000-00000000000d";
    k.origin = site_b;
    k.version = at(1700000005000, 0, site_a, 0);
    k.last_table_index = 1;
    k.last_entry_index = 1000;
    k.completed_tables = {"main.items"};
    k.entries_processed = 1000;
    k.created_at = 1700000006000;
    return k;
}

inline std::vector<snapshot_chunk> sample_chunks() {
    std::vector<snapshot_chunk> out;
    snapshot_header h;
    h.origin = site_a;
    h.version = at(1700000005000, 0, site_a, 0);
    h.table_count = 1;
    h.migration_count = 1;
    h.snapshot_id = "00000000-0000-4000-8000-00000000000d";
    out.emplace_back(h);
    out.emplace_back(snapshot_schema_migration{sample_migrations()[0]});
    out.emplace_back(snapshot_table_start{"main", "items", 0});
    snapshot_column_versions cv{"main", "items", {}};
    for (const auto& v : sample_values())
        cv.entries.push_back(column_version_entry{"name", at(1700000002000, 0, site_a, 1), v, row_key{value{std::int64_t(1)}}});
    out.emplace_back(cv);
    out.emplace_back(snapshot_table_end{"main", "items", cv.entries.size()});
    snapshot_tombstones t{"main", "items", {}};
    t.entries.push_back(tombstone_entry{{value{std::int64_t(4)}}, at(1700000003400, 0, site_a, 0), 1700000003400,
                                        row_key{value{std::int64_t(4)}, value{"to-delete"}}});
    t.entries.push_back(tombstone_entry{{value{"a"}, value{std::int64_t(2)}}, at(1700000004040, 0, site_b, 0), 1700000004040,
                                        std::nullopt});
    out.emplace_back(t);
    out.emplace_back(snapshot_footer{h.snapshot_id, 1, cv.entries.size(), 1});
    return out;
}

inline std::vector<message> sample_messages() {
    std::vector<message> out;
    out.emplace_back(msg::handshake{"db-1", site_b, std::string("secret"), 1});
    out.emplace_back(msg::handshake{"db-1", site_b, std::nullopt, 1});
    msg::get_changes since; // the additions (sincePosition, ...) left unset
    since.since = at(1700000002000, 0, site_a, 5);
    out.emplace_back(since);
    out.emplace_back(msg::get_changes{});
    out.emplace_back(msg::apply_changes{{sample_change_set()}, std::string("req-7")});
    out.emplace_back(msg::apply_changes{{}, std::nullopt});
    out.emplace_back(msg::get_snapshot{});
    out.emplace_back(msg::resume_snapshot{sample_checkpoint()});
    out.emplace_back(msg::ping{});
    out.emplace_back(msg::handshake_ack{site_a, "c0ffee", std::string("db-1"), 1});
    out.emplace_back(msg::handshake_ack{site_a, "c0ffee", std::nullopt, 1});
    msg::changes two;
    two.change_sets = {sample_change_set(), sample_change_set()};
    out.emplace_back(std::move(two));
    msg::push_changes one;
    one.change_sets = {sample_change_set()};
    out.emplace_back(std::move(one));
    out.emplace_back(msg::apply_result{std::string("req-7"), sample_apply_result()});
    out.emplace_back(msg::apply_result{std::nullopt, apply_result{}});
    for (const auto& c : sample_chunks()) out.emplace_back(msg::snapshot_chunk{c});
    out.emplace_back(msg::snapshot_complete{});
    out.emplace_back(msg::error{"AUTH_FAILED", "bad token", true});
    out.emplace_back(msg::error{"MESSAGE_ERROR", "oops", std::nullopt});
    out.emplace_back(msg::pong{});
    return out;
}

inline std::string vector_dir() { return CRDTSYNC_VECTOR_DIR; }

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    REQUIRE_MESSAGE(f.good(), "cannot open " << p.string());
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

/// The vector files holding arrays of change sets (NN-*.json but the snapshot stream).
inline std::vector<std::filesystem::path> change_set_vector_files() {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(vector_dir())) {
        const auto name = e.path().filename().string();
        if (name.size() > 3 && std::isdigit(static_cast<unsigned char>(name[0])) && name.ends_with(".json") &&
            name.find("snapshot") == std::string::npos)
            out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

inline std::filesystem::path snapshot_vector_file() { return std::filesystem::path(vector_dir()) / "23-S7-snapshot-stream-A.json"; }

} // namespace wire_test
