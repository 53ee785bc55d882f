// Reads: pages of rows (`rows(table, row_scan)`), the typed table's `scan`
// and scalar `get`, and the stream operators of value, hlc and site_id.

#include "support.hpp"

#include <crdtsync/table.hpp>

#include <sstream>
#include <string>
#include <vector>

using namespace replica_tests;

namespace {

struct reads_task {
    BOOST_HANA_DEFINE_STRUCT(reads_task, (std::int64_t, id), (std::string, title), (bool, done));
};

/// "id/name" of each row, in order.
std::string keys_of(const std::vector<row>& rows) {
    std::string out;
    for (const auto& r : rows) out += r.at("id").to_text() + "/" + r.at("name").to_text() + " ";
    return out;
}

} // namespace

TEST_CASE_TEMPLATE("reads: pages of rows in key order, from any key, after any key, up to a limit", Env,
                   CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x51, t);
    // items: key (id INTEGER, name TEXT COLLATE NOCASE). Rows 1..9 with names
    // "a" and "B"; row 5/"a" deleted (a tombstone inside the range).
    n->write([](auto& tx) {
        for (std::int64_t id = 1; id <= 9; ++id)
            for (const char* name : {"a", "B"}) tx.insert("items", row{{"id", value{id}}, {"name", value{name}}});
    });
    n->write([](auto& tx) { (void)tx.erase("items", row_key{value{5}, value{"a"}}); });
    const auto all = n->rows("items");
    REQUIRE(all.size() == 17);

    // No limit, no start: everything, as rows(table).
    CHECK(n->rows("items", crdtsync::row_scan{}) == all);
    // A limit.
    CHECK(keys_of(n->rows("items", {.limit = 3})) == "1/'a' 1/'B' 2/'a' ");
    CHECK(n->rows("items", {.limit = 0}).empty());
    // From a key the table holds (inclusive), and after it (exclusive).
    CHECK(keys_of(n->rows("items", {.from = row_key{value{3}, value{"B"}}, .limit = 2})) == "3/'B' 4/'a' ");
    CHECK(keys_of(n->rows("items", {.from = row_key{value{3}, value{"B"}}, .exclusive = true, .limit = 2})) ==
          "4/'a' 4/'B' ");
    // From a key spelled in another case: NOCASE folds it to the same row.
    CHECK(keys_of(n->rows("items", {.from = row_key{value{3}, value{"b"}}, .limit = 1})) == "3/'B' ");
    // From a key the table does not hold: the next one. The deleted 5/a is skipped.
    CHECK(keys_of(n->rows("items", {.from = row_key{value{5}, value{"a"}}, .limit = 2})) == "5/'B' 6/'a' ");
    CHECK(keys_of(n->rows("items", {.from = row_key{value{4}, value{"c"}}, .limit = 1})) == "5/'B' ");
    // Past the end.
    CHECK(n->rows("items", {.from = row_key{value{100}, value{"a"}}}).empty());
    CHECK(n->rows("items", {.from = row_key{value{9}, value{"B"}}, .exclusive = true}).empty());

    // Paging through with every page size gives every row once, in order.
    for (std::size_t size = 1; size <= 18; ++size) {
        CAPTURE(size);
        crdtsync::row_scan page{.limit = size};
        std::vector<row> seen;
        for (auto rows = n->rows("items", page); !rows.empty(); rows = n->rows("items", page)) {
            CHECK(rows.size() <= size);
            seen.insert(seen.end(), rows.begin(), rows.end());
            page.from = row_key{rows.back().at("id"), rows.back().at("name")};
            page.exclusive = true;
        }
        CHECK(seen == all);
    }

    // A start key that does not fit the table's key, and an unknown table.
    CHECK_THROWS_AS((void)n->rows("items", {.from = row_key{value{1}}}), crdtsync::error);
    CHECK_THROWS_AS((void)n->rows("nope", crdtsync::row_scan{}), crdtsync::schema_error);
}

TEST_CASE_TEMPLATE("reads: a typed table pages with scan and reads one row with a scalar key", Env,
                   CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto n = open_node(env, options_for(delete_policy::insert_revives, 0x52), fake_clock{&t.now});
    auto tasks = n->template table<reads_task>("tasks", crdtsync::key(&reads_task::id));
    n->write([&](auto& tx) {
        for (std::int64_t id = 1; id <= 10; ++id) tasks.insert(tx, {id, "task " + std::to_string(id), id % 2 == 0});
    });
    // tasks.get(1), as table.hpp's comment shows.
    const auto one = tasks.get(1);
    REQUIRE(one);
    CHECK(one->title == "task 1");
    CHECK_FALSE(tasks.get(std::int64_t{11}));
    CHECK(tasks.get(row_key{value{2}})->done);

    std::vector<std::int64_t> ids;
    crdtsync::row_scan page{.limit = 4};
    for (auto rows = tasks.scan(page); !rows.empty(); rows = tasks.scan(page)) {
        for (const auto& r : rows) ids.push_back(r.id);
        page = {.from = tasks.key_of(rows.back()), .exclusive = true, .limit = 4};
    }
    CHECK(ids == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    CHECK(tasks.scan({.from = row_key{value{8}}}).size() == 3);
}

TEST_CASE("reads: value, hlc and site_id write their text forms to a stream") {
    std::ostringstream os;
    const hlc h{1'700'000'000'000, 7, site_of(0x33)};
    os << value{42} << ' ' << value{"x"} << ' ' << value{} << ' ' << h << ' ' << h.site;
    CHECK(os.str() == "42 'x' NULL " + h.to_text() + " " + h.site.to_text());
}
