// Bad input at the replica's edges, where the other suites left gaps: local
// writes naming a table or a column the replica lacks; table definitions that
// clash with a live table (a local create_table, a remote create_table
// migration, a typed table's struct); DDL text that is not DDL; snapshot
// streams carrying a chunk twice, or a value no replica can store. Each must
// be refused with a typed crdtsync error whose code and message name what was
// wrong, and leave what is stored as it was: the dump, the position, and
// every byte of the store. On every store model (support.hpp).
//
// tests/replica/robustness_test.cpp and snapshot_test.cpp check other bad
// input (bad keys, bad HLCs, bad stream order); these add the cases above.

#include "replica/support.hpp"

#include <crdtsync/snapshot_loader.hpp>
#include <crdtsync/snapshot_writer.hpp>
#include <crdtsync/table.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>

namespace replica_tests {
namespace {

using crdtsync::errc;

// ------------------------------------------------------------------ what a refusal must keep

/// Every key and value of a store, in hex, a line each. The generation
/// counter is included: a refused write commits nothing, so not even it moves.
template <class Store>
std::string bad_input_raw(Store& store) {
    static constexpr char digits[] = "0123456789abcdef";
    const auto hex = [](std::string& out, std::string_view bytes) {
        for (const unsigned char c : bytes) {
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    };
    std::string out;
    auto r = store.read();
    r.scan("", "", [&](std::string_view k, std::string_view v) {
        hex(out, k);
        out += " = ";
        hex(out, v);
        out += "\n";
        return true;
    });
    return out;
}

/// What a refusal must leave as it was.
struct bad_input_state {
    std::string dump;
    std::uint64_t position = 0;
    std::string raw;
};

template <class N>
bad_input_state bad_input_state_of(const N& n) {
    return {n->dump(), n->position(), bad_input_raw(*n.store)};
}

/// The lines of `a` that `b` lacks, prefixed with `mark`.
inline std::string bad_input_lines_not_in(const std::string& a, const std::string& b, const char* mark) {
    std::string out;
    std::size_t at = 0;
    while (at < a.size()) {
        const auto nl = a.find('\n', at);
        const auto line = a.substr(at, nl - at + 1);
        if (b.find(line) == std::string::npos) out += mark + line;
        at = nl + 1;
    }
    return out;
}

template <class N>
void bad_input_check_unchanged(const N& n, const bad_input_state& before) {
    CHECK(n->dump() == before.dump);
    CHECK(n->position() == before.position);
    const auto raw = bad_input_raw(*n.store);
    const bool same_bytes = raw == before.raw;
    CHECK_MESSAGE(same_bytes, "the stored records changed:\n"
                                  << bad_input_lines_not_in(before.raw, raw, "- ") << bad_input_lines_not_in(raw, before.raw, "+ "));
}

/// Runs `f`, expecting an exception of type E with code `code` whose what()
/// holds every one of `words`.
template <class E, class F>
void bad_input_expect(F&& f, errc code, const std::vector<std::string>& words) {
    bool threw = false;
    try {
        f();
    } catch (const E& e) {
        threw = true;
        CHECK_MESSAGE(e.code() == code, "code " << std::string(crdtsync::to_text(e.code())) << ": " << e.what());
        for (const auto& w : words)
            CHECK_MESSAGE(std::string_view(e.what()).find(w) != std::string_view::npos, "\"" << w << "\" is not in: " << e.what());
    } catch (const std::exception& e) {
        threw = true;
        FAIL_CHECK("expected a crdtsync error with code " << std::string(crdtsync::to_text(code))
                                                          << " of the right type, got: " << e.what());
    }
    CHECK_MESSAGE(threw, "nothing was thrown, expected code " << std::string(crdtsync::to_text(code)));
}

const site_id bad_input_peer = site_of(0x52);

// ------------------------------------------------------------------ typed tables

// `items` (support.hpp) as a struct, and structs that do not fit it.
struct bad_input_item {
    BOOST_HANA_DEFINE_STRUCT(bad_input_item, (std::int64_t, id), (std::string, name), (std::optional<std::int64_t>, a),
                             (std::optional<std::string>, b), (std::optional<double>, c));
};
struct bad_input_item_text_a { // a is INTEGER
    BOOST_HANA_DEFINE_STRUCT(bad_input_item_text_a, (std::int64_t, id), (std::string, name),
                             (std::optional<std::string>, a), (std::optional<std::string>, b), (std::optional<double>, c));
};
struct bad_input_item_required_a { // a is nullable
    BOOST_HANA_DEFINE_STRUCT(bad_input_item_required_a, (std::int64_t, id), (std::string, name), (std::int64_t, a),
                             (std::optional<std::string>, b), (std::optional<double>, c));
};
struct bad_input_item_colour { // no column "colour"
    BOOST_HANA_DEFINE_STRUCT(bad_input_item_colour, (std::int64_t, id), (std::string, name), (std::optional<std::int64_t>, a),
                             (std::optional<std::string>, b), (std::optional<double>, c),
                             (std::string, colour)); // NOT NULL: cannot be added to a table with rows
};
struct bad_input_item_no_name { // lacks the NOT NULL key column name
    BOOST_HANA_DEFINE_STRUCT(bad_input_item_no_name, (std::int64_t, id), (std::optional<std::int64_t>, a));
};

// ------------------------------------------------------------------ snapshots

/// A small replica: three rows of `items` (15 cells), a deleted fourth (a
/// tombstone), a row of `notes`.
template <class Env>
node_t<Env> bad_input_source(Env& env, const sim_time& t) {
    auto a = open_with_schema(env, delete_policy::insert_revives, 0x0a, t);
    a->write([](auto& tx) {
        for (int i = 1; i <= 4; ++i)
            tx.insert("items", row{{"id", value{i}}, {"name", value{"row " + std::to_string(i)}}, {"a", value{i * 3}},
                                   {"b", value{"text " + std::to_string(i)}}, {"c", value{i + 0.5}}});
        tx.insert("notes", row{{"k", value{"n"}}, {"body", value{"hello"}}});
    });
    a->write([](auto& tx) { CHECK(tx.erase("items", item_key(4, "row 4"))); });
    return a;
}

/// Every chunk of a snapshot of `r`, `per_chunk` entries a data chunk.
template <class R>
std::vector<crdtsync::snapshot_chunk> bad_input_chunks(const R& r, std::size_t per_chunk) {
    crdtsync::snapshot_writer out{r, per_chunk};
    std::vector<crdtsync::snapshot_chunk> v;
    while (auto c = out.next()) v.push_back(std::move(*c));
    return v;
}

/// Indexes of the column-versions chunks of table `table`.
inline std::vector<std::size_t> bad_input_cell_chunks(const std::vector<crdtsync::snapshot_chunk>& chunks,
                                                      std::string_view table) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < chunks.size(); ++i)
        if (const auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&chunks[i]); cv && cv->table == table)
            out.push_back(i);
    return out;
}

} // namespace

// ================================================================== 1. local writes

TEST_CASE_TEMPLATE("bad input: a local write naming an unknown table or column is schema_error naming it, and its "
                   "whole transaction is aborted",
                   Env, CRDTSYNC_TEST_STORES) {
    using transaction = typename replica_t<typename Env::store_type>::transaction;
    sim_time t;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x31, t);
    n->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{10}}}); });
    std::size_t committed = 0;
    n->on_local_change([&](const crdtsync::local_change&) { ++committed; });
    const auto before = bad_input_state_of(n);
    const row fresh{{"id", value{2}}, {"name", value{"y"}}, {"b", value{"never stored"}}};

    struct bad_write {
        const char* name;
        std::function<void(transaction&)> bad;
        errc code;
        std::vector<std::string> words;
    };
    const std::vector<bad_write> cases = {
        {"insert into an unknown table", [](transaction& tx) { tx.insert("nope", row{{"id", value{1}}}); },
         errc::unknown_table, {"\"main.nope\""}},
        {"insert into a table of an unknown schema",
         [](transaction& tx) { tx.insert("aux.items", row{{"id", value{3}}, {"name", value{"z"}}}); }, errc::unknown_table,
         {"\"aux.items\""}},
        {"insert naming an unknown column",
         [](transaction& tx) { tx.insert("items", row{{"id", value{3}}, {"name", value{"z"}}, {"colour", value{"red"}}}); },
         errc::unknown_column, {"main.items", "\"colour\""}},
        {"update of an unknown table", [](transaction& tx) { (void)tx.update("nope", item_key(1, "x"), row{{"a", value{1}}}); },
         errc::unknown_table, {"\"main.nope\""}},
        {"update of a visible row naming an unknown column",
         [](transaction& tx) {
             (void)tx.update("items", item_key(1, "x"), row{{"a", value{11}}, {"colour", value{"red"}}});
         },
         errc::unknown_column, {"main.items", "\"colour\""}},
        {"erase from an unknown table", [](transaction& tx) { (void)tx.erase("nope", item_key(1, "x")); },
         errc::unknown_table, {"\"main.nope\""}},
    };
    for (const auto& bc : cases) {
        INFO("case: " << std::string(bc.name));
        bad_input_expect<crdtsync::schema_error>(
            [&] {
                n->write([&](transaction& tx) {
                    // Writes the transaction makes before the bad call: they go with it.
                    tx.insert("items", fresh);
                    REQUIRE(tx.update("items", item_key(1, "x"), row{{"a", value{99}}}));
                    REQUIRE(tx.get("items", item_key(2, "y")));
                    bc.bad(tx);
                });
            },
            bc.code, bc.words);
        bad_input_check_unchanged(n, before);
        CHECK_FALSE(n->get("items", item_key(2, "y")));
        const auto one = n->get("items", item_key(1, "x"));
        REQUIRE(one);
        CHECK(one->at("a") == value{10});
        CHECK(committed == 0);
    }

    // The replica is not wedged: the same writes without the bad call commit.
    n->write([&](transaction& tx) {
        tx.insert("items", fresh);
        CHECK(tx.update("items", item_key(1, "x"), row{{"a", value{99}}}));
    });
    CHECK(committed == 1);
    CHECK(n->position() > before.position);
    CHECK(n->get("items", item_key(2, "y")));
    CHECK(n->get("items", item_key(1, "x"))->at("a") == value{99});
}

// ================================================================== 2. schema

TEST_CASE_TEMPLATE("bad input: create_table under a live table's name with another definition is errc::schema, and "
                   "the live table and its rows stay",
                   Env, CRDTSYNC_TEST_STORES) {
    using crdtsync::collation;
    using crdtsync::column_type;
    using crdtsync::table_def;
    sim_time t;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x32, t);
    n->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"c", value{1.5}}}); });
    const auto before = bad_input_state_of(n);

    auto items_with = [](const std::function<void(table_def&)>& last) {
        table_def d{"items"};
        d.column("id", column_type::integer, false).column("name", column_type::text, false, collation::nocase);
        last(d);
        return d;
    };
    struct variant {
        const char* name;
        table_def def;
    };
    const std::vector<variant> variants = {
        {"c is TEXT",
         items_with([](table_def& d) {
             d.column("a", column_type::integer).column("b", column_type::text).column("c", column_type::text).primary_key({"id", "name"});
         })},
        {"a is NOT NULL",
         items_with([](table_def& d) {
             d.column("a", column_type::integer, false).column("b", column_type::text).column("c", column_type::real)
                 .primary_key({"id", "name"});
         })},
        {"a column of another type",
         items_with([](table_def& d) {
             d.column("a", column_type::integer).column("b", column_type::text).column("c", column_type::integer)
                 .primary_key({"id", "name"});
         })},
        {"another primary key",
         items_with([](table_def& d) {
             d.column("a", column_type::integer).column("b", column_type::text).column("c", column_type::real).primary_key({"id"});
         })},
        {"name without NOCASE",
         [] {
             table_def d{"items"};
             d.column("id", column_type::integer, false).column("name", column_type::text, false)
                 .column("a", column_type::integer).column("b", column_type::text).column("c", column_type::real)
                 .primary_key({"id", "name"});
             return d;
         }()},
    };
    REQUIRE(items_with([](table_def& d) {
                d.column("a", column_type::integer).column("b", column_type::text).column("c", column_type::real)
                    .primary_key({"id", "name"});
            }) == items_table());
    for (const auto& v : variants) {
        INFO("case: " << std::string(v.name));
        REQUIRE_FALSE(v.def == items_table());
        // On its own ...
        bad_input_expect<crdtsync::schema_error>([&] { n->create_table(v.def); }, errc::schema,
                                                 {"main.items", "already exists with another definition"});
        bad_input_check_unchanged(n, before);
        // ... and after other writes of its transaction, which go with it.
        bad_input_expect<crdtsync::schema_error>(
            [&] {
                n->write([&](auto& tx) {
                    tx.insert("items", row{{"id", value{2}}, {"name", value{"y"}}});
                    tx.create_table(v.def);
                });
            },
            errc::schema, {"main.items", "already exists with another definition"});
        bad_input_check_unchanged(n, before);
        CHECK(n->find_table("items") == items_table());
        CHECK_FALSE(n->get("items", item_key(2, "y")));
        CHECK(n->rows("items").size() == 1);
    }
    // The same definition again is no change at all, nor is one with fewer
    // columns (the live table covers it: docs/schema.md).
    CHECK_NOTHROW(n->create_table(items_table()));
    CHECK_NOTHROW(n->create_table(items_with([](table_def& d) { d.column("a", column_type::integer).primary_key({"id", "name"}); })));
    CHECK(n->dump() == before.dump);
    CHECK(n->position() == before.position);
    // One with the same key and one more column is no error either: it merges
    // (a create migration that adds the column here and at every peer).
    n->create_table(items_with([](table_def& d) {
        d.column("a", column_type::integer).column("b", column_type::text).column("c", column_type::real)
            .column("d", column_type::blob).primary_key({"id", "name"});
    }));
    CHECK(n->find_table("items")->columns().back().name == "d");
    CHECK(n->rows("items").size() == 1);
}

TEST_CASE_TEMPLATE("bad input: apply rejects whole a change set whose create_table migration is not valid DDL or "
                   "redefines a table, or whose migration it refuses; the other change sets of the batch apply",
                   Env, CRDTSYNC_TEST_STORES) {
    using crdtsync::migration_kind;
    sim_time t;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x33, t);
    // `ref` gets only the good change sets; its local write has the same HLC.
    auto ref = open_with_schema(env, delete_policy::insert_revives, 0x33, t);
    auto local = [](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{1}}}); };
    n->write(local);
    ref->write(local);
    t.now += 10;

    std::uint64_t wall = t.now - 5000;
    auto next_base = [&] { return at(wall++, 0, bad_input_peer); };
    // A change set with a create_table migration carrying `ddl`, after its facts.
    auto with_migration = [](change_set cs, migration_kind kind, const std::string& table, const std::string& ddl) {
        crdtsync::schema_migration m;
        m.type = kind;
        m.table = table;
        m.ddl = ddl;
        m.version = cs.version.with_op_seq(cs.version.op_seq + 1 + static_cast<std::uint32_t>(cs.migrations.size()));
        cs.version = m.version;
        cs.migrations.push_back(std::move(m));
        return cs;
    };
    auto with_create = [&](change_set cs, const std::string& table, const std::string& ddl) {
        return with_migration(std::move(cs), migration_kind::create_table, table, ddl);
    };

    std::vector<change_set> good;
    struct bad_set {
        const char* name;
        change_set cs;
        const char* says;
    };
    std::vector<bad_set> bad;
    std::vector<change_set> batch;
    auto add_good = [&](change_set cs) {
        good.push_back(cs);
        batch.push_back(std::move(cs));
    };
    auto add_bad = [&](const char* name, change_set cs, const char* says) {
        bad.push_back({name, cs, says});
        batch.push_back(std::move(cs));
    };

    add_good(change_set_builder{next_base()}
                 .insert("items", item_key(5, "r"), {{"id", value{5}}, {"name", value{"r"}}, {"a", value{5}}})
                 .build());
    // DDL that does not parse, or parses to no usable table. Each set also
    // carries a fact of the table it would create.
    const std::pair<const char*, const char*> broken[] = {
        {"CREATE TABLE \"main\".\"broken\" (\"id\" INTEGER NOT NULL PRIMARY KEY", "expected ')'"},
        {"CREATE TABEL broken (id INTEGER PRIMARY KEY)", "expected TABLE"},
        {"", "expected CREATE"},
        {"DROP TABLE items", "carries DDL of another kind"},
        {"CREATE TABLE broken (id INTEGER PRIMARY KEY) USING store trailing", "unexpected trailing text"},
        {"CREATE TABLE broken ()", "expected an identifier"},
        {"CREATE TABLE broken (id INTEGER NULL)", "has no primary key"},
        {"CREATE TABLE broken (id INTEGER PRIMARY KEY, id TEXT)", "duplicate column"},
        {"CREATE TABLE broken (id INTEGER PRIMARY KEY, PRIMARY KEY (nope))", "\"nope\" is not a column"},
        {"CREATE TABLE broken (id INTEGER PRIMARY KEY COLLATE klingon)", "unknown collation"},
        {"CREATE TABLE \"broken (id INTEGER PRIMARY KEY)", "unterminated quoted identifier"},
    };
    for (const auto& [ddl, says] : broken)
        add_bad(ddl,
                with_create(change_set_builder{next_base()}.set("broken", {value{1}}, "id", value{1}).build(), "broken", ddl),
                says);
    add_good(change_set_builder{next_base()}.set("items", item_key(5, "r"), "b", value{"two"}).build());
    // A live table created again with another primary key (a create with
    // the same key merges instead: docs/schema.md).
    {
        crdtsync::table_def redefined{"items"};
        redefined.column("id", crdtsync::column_type::integer, false).column("name", crdtsync::column_type::text).primary_key({"id"});
        add_bad("items with another primary key",
                with_create(change_set_builder{next_base()}.set("items", {value{6}}, "name", value{"s"}).build(), "items",
                            redefined.to_ddl()),
                "already exists with another primary key");
    }
    {
        crdtsync::table_def redefined{"notes"};
        redefined.column("k", crdtsync::column_type::text, false).column("body", crdtsync::column_type::text).primary_key({"k"});
        add_bad("notes without RTRIM",
                with_create(change_set_builder{next_base()}.set("notes", {value{"m"}}, "body", value{"b"}).build(), "notes",
                            redefined.to_ddl()),
                "already exists with another primary key");
    }
    // One set creating a new table twice, with two primary keys.
    {
        auto cs = change_set_builder{next_base()}.set("twice", {value{1}}, "k", value{1}).build();
        cs = with_create(std::move(cs), "twice", "CREATE TABLE twice (k INTEGER PRIMARY KEY, v TEXT NULL)");
        cs = with_create(std::move(cs), "twice", "CREATE TABLE twice (k TEXT PRIMARY KEY, v INTEGER NULL)");
        add_bad("a new table created twice with two primary keys", std::move(cs), "already exists with another primary key");
    }
    // Migrations this replica refuses: a rename into a table with another
    // primary key (a rename joins the two tables), and changes to a
    // primary-key column.
    {
        auto cs = with_migration(change_set_builder{next_base()}.set("items", item_key(7, "t"), "a", value{7}).build(),
                                 migration_kind::rename_table, "notes", "ALTER TABLE \"main\".\"items\" RENAME TO \"notes\"");
        cs.migrations.back().from_table = "items";
        add_bad("rename_table into a table with another key", std::move(cs), "with another primary key");
    }
    add_bad("drop of a key column",
            with_migration(change_set_builder{next_base()}.set("items", item_key(7, "t"), "a", value{7}).build(),
                           migration_kind::alter_column, "items", "ALTER TABLE \"main\".\"items\" DROP COLUMN \"name\""),
            "a primary-key column cannot be dropped");
    add_bad("type change of a key column",
            with_migration(change_set_builder{next_base()}.set("items", item_key(7, "t"), "a", value{7}).build(),
                           migration_kind::alter_column, "items", "alter table items alter column id set data type text"),
            "a primary-key column's type, collation and NOT NULL cannot change");
    add_good(change_set_builder{next_base()}.insert("notes", {value{"n"}}, {{"k", value{"n"}}, {"body", value{"kept"}}}).build());

    std::size_t good_facts = 0;
    for (const auto& cs : good) good_facts += cs.changes.size() + cs.migrations.size();
    std::vector<crdtsync::rejection> heard;
    n->on_rejected([&](const crdtsync::rejection& r) { heard.push_back(r); });

    const auto res = n->apply(batch);
    CHECK(res.transactions == good.size());
    CHECK(res.applied == good_facts);
    CHECK(res.skipped == 0);
    CHECK(res.conflicts == 0);
    REQUIRE(res.rejected.size() == bad.size());
    CHECK(heard == res.rejected);
    for (std::size_t i = 0; i < bad.size(); ++i) {
        INFO("case: " << std::string(bad[i].name));
        const auto& rj = res.rejected[i]; // in batch order
        CHECK(rj.transaction_id == bad[i].cs.transaction_id);
        CHECK(rj.code == std::optional<std::string>("schema"));
        CHECK_MESSAGE(rj.reason.find(bad[i].says) != std::string::npos, rj.reason);
    }

    // Nothing of the rejected sets is written: the replica is what one given
    // only the good sets is, byte for byte in its dump, and at its position.
    const auto ref_res = ref->apply(good);
    CHECK(ref_res.rejected.empty());
    CHECK(n->dump() == ref->dump());
    CHECK(n->position() == ref->position());
    CHECK_FALSE(n->find_table("broken"));
    CHECK_FALSE(n->find_table("twice"));
    CHECK(n->find_table("items") == items_table());
    CHECK(n->find_table("notes") == notes_table());
    CHECK_FALSE(n->get("items", item_key(6, "s")));
    CHECK_FALSE(n->get("notes", {value{"m"}}));
    CHECK_FALSE(n->get("items", item_key(7, "t")));
    CHECK(n->get("items", item_key(5, "r"))->at("b") == value{"two"});
    CHECK(n->get("notes", {value{"n"}})->at("body") == value{"kept"});

    // A rejected set is not remembered as seen: offered again, it is rejected again.
    const auto again = n->apply(bad.front().cs);
    CHECK(again.rejected.size() == 1);
    CHECK(again.skipped == 0);
    CHECK(n->dump() == ref->dump());
}

TEST_CASE_TEMPLATE("bad input: a typed table whose struct does not fit the live table is schema_mismatch naming the "
                   "column, and changes nothing",
                   Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x34, t);
    n->write([](auto& tx) {
        tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{7}}, {"b", value{"bee"}}, {"c", value{2.5}}});
    });
    const auto before = bad_input_state_of(n);
    auto& rep = *n;

    struct mismatch {
        const char* name;
        std::function<void()> open;
        std::vector<std::string> words;
    };
    const std::vector<mismatch> cases = {
        {"a member of another type",
         [&] {
             (void)rep.template table<bad_input_item_text_a>("items",
                                                             crdtsync::key(&bad_input_item_text_a::id, &bad_input_item_text_a::name));
         },
         {"main.items", "\"a\" INTEGER NULL", "\"a\" TEXT NULL"}},
        {"a NOT NULL member for a nullable column",
         [&] {
             (void)rep.template table<bad_input_item_required_a>(
                 "items", crdtsync::key(&bad_input_item_required_a::id, &bad_input_item_required_a::name));
         },
         {"main.items", "\"a\" INTEGER NULL", "\"a\" INTEGER NOT NULL"}},
        {"a member the table lacks",
         [&] {
             (void)rep.template table<bad_input_item_colour>("items",
                                                             crdtsync::key(&bad_input_item_colour::id, &bad_input_item_colour::name));
         },
         {"main.items", "no column \"colour\""}},
        {"a NOT NULL column the struct lacks",
         [&] { (void)rep.template table<bad_input_item_no_name>("items", crdtsync::key(&bad_input_item_no_name::id)); },
         {"main.items", "NOT NULL column \"name\""}},
        {"another primary key",
         [&] { (void)rep.template table<bad_input_item>("items", crdtsync::key(&bad_input_item::id)); },
         {"main.items", "another primary key"}},
        {"the primary key in another order",
         [&] { (void)rep.template table<bad_input_item>("items", crdtsync::key(&bad_input_item::name, &bad_input_item::id)); },
         {"main.items", "another primary key"}},
    };
    for (const auto& mc : cases) {
        INFO("case: " << std::string(mc.name));
        bad_input_expect<crdtsync::schema_error>(mc.open, errc::schema_mismatch, mc.words);
        bad_input_check_unchanged(n, before);
        CHECK(n->find_table("items") == items_table());
    }

    // The struct that fits reads the row.
    auto items = rep.template table<bad_input_item>("items", crdtsync::key(&bad_input_item::id, &bad_input_item::name));
    const auto all = items.all();
    REQUIRE(all.size() == 1);
    CHECK(all[0].id == 1);
    CHECK(all[0].name == "x");
    CHECK(all[0].a == std::optional<std::int64_t>{7});
    CHECK(all[0].b == std::optional<std::string>{"bee"});
    CHECK(all[0].c == std::optional<double>{2.5});
    bad_input_check_unchanged(n, before);
}

// ================================================================== 3. snapshot streams

// KNOWN LIBRARY BUG, hence should_fail: snapshot_loader::load(const
// snapshot_column_versions&) checks only that the chunk is of the table in
// progress, not that its entries come after the last entry loaded. A chunk
// pushed again is accepted: its facts merge as skipped, the stored load state
// counts its entries again and takes its last entry (an earlier chunk moves
// the checkpoint back), and the clock ticks. The table-end of the right stream
// is then refused ("ended with 15 entries written, 19 were received"), so the
// load cannot complete. This case asserts the right behaviour; once the
// loader refuses the repeat, doctest reports it, and the decorator goes.
TEST_CASE_TEMPLATE("bad input: a column-versions chunk pushed twice is refused with snapshot_error, and the right "
                   "chunks after it complete the load",
                   Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = bad_input_source(env, t);
    const auto chunks = bad_input_chunks(*a, 2);
    const auto cells = bad_input_cell_chunks(chunks, "items");
    REQUIRE(cells.size() == 8); // 15 cells, 2 a chunk

    auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
    crdtsync::snapshot_loader in{*b};
    std::size_t i = 0;
    for (; i <= cells[1]; ++i) in.push(chunks[i]);
    const auto before = bad_input_state_of(b);
    const auto checkpoint = in.checkpoint();
    REQUIRE(checkpoint);
    CHECK(checkpoint->last_entry_index == 4);

    // The chunk just loaded, again (a duplicated message), twice.
    for (int round = 0; round < 2; ++round) {
        CAPTURE(round);
        bad_input_expect<crdtsync::snapshot_error>([&] { in.push(chunks[cells[1]]); }, errc::snapshot,
                                                   {"snapshot refused", "main.items", "came twice"});
        bad_input_check_unchanged(b, before);
        CHECK(in.checkpoint() == checkpoint);
        CHECK_FALSE(in.done());
    }
    for (; i < chunks.size(); ++i) in.push(chunks[i]);
    CHECK(in.done());
    CHECK(b->dump() == a->dump());

    // An older chunk replayed is not recognised as it arrives (chunks carry no
    // index); the table's end then finds the count wrong and is refused, with
    // nothing of the table-end written (docs/snapshots.md).
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0x0c), fake_clock{&t.now});
    crdtsync::snapshot_loader late{*c};
    std::size_t j = 0;
    for (; j <= cells[1]; ++j) late.push(chunks[j]);
    late.push(chunks[cells[0]]);
    bool refused = false;
    for (; j < chunks.size() && !refused; ++j) {
        try {
            late.push(chunks[j]);
        } catch (const crdtsync::snapshot_error& e) {
            refused = true;
            CHECK(std::string(e.what()).find("entries written") != std::string::npos);
        }
    }
    CHECK(refused);
    CHECK_FALSE(late.done());
}

TEST_CASE_TEMPLATE("bad input: a column-versions chunk carrying a value no replica can store is refused with "
                   "snapshot_error naming it, and nothing of the chunk is written",
                   Env, CRDTSYNC_TEST_STORES) {
    using crdtsync::snapshot_column_versions;
    sim_time t;
    Env env;
    auto a = bad_input_source(env, t);
    const auto chunks = bad_input_chunks(*a, 2);
    const auto cells = bad_input_cell_chunks(chunks, "items");
    REQUIRE(cells.size() >= 3);

    // The value type holds no NaN (it is null, a storable value): the
    // unstorable reals are the infinities.
    CHECK(value{std::numeric_limits<double>::quiet_NaN()}.is_null());
    const double inf = std::numeric_limits<double>::infinity();

    // The first chunk (after the first) with an entry of `column`, and that entry.
    auto entry_of = [&](std::string_view column) -> std::pair<std::size_t, std::size_t> {
        for (std::size_t k = 1; k < cells.size(); ++k) {
            const auto& cv = std::get<snapshot_column_versions>(chunks[cells[k]]);
            for (std::size_t e = 0; e < cv.entries.size(); ++e)
                if (cv.entries[e].column == column) return {cells[k], e};
        }
        FAIL("no entry of column " << std::string(column));
        return {0, 0};
    };

    struct bad_value {
        const char* name;
        std::string column;
        std::function<void(crdtsync::column_version_entry&)> spoil;
        std::vector<std::string> words;
    };
    const std::vector<bad_value> cases = {
        {"+infinity in a REAL column", "c", [&](auto& e) { e.val = value{inf}; }, {"\"c\"", "infinite real"}},
        {"-infinity in a REAL column", "c", [&](auto& e) { e.val = value{-inf}; }, {"\"c\"", "infinite real"}},
        {"text that is not UTF-8", "b", [](auto& e) { e.val = value{std::string("caf\xc3")}; }, {"\"b\"", "not valid UTF-8"}},
        {"a lone surrogate encoded in text", "b", [](auto& e) { e.val = value{std::string("\xed\xa0\x80")}; },
         {"\"b\"", "not valid UTF-8"}},
        {"a key that is not UTF-8", "a", [](auto& e) { e.pk[1] = value{std::string("row \xff")}; }, {"\"name\"", "not valid UTF-8"}},
        {"a JSON cell that is not JSON", "a", [](auto& e) { e.val = value{crdtsync::json_text{"{\"open\": "}}; }, {"\"a\""}},
    };
    for (const auto& bc : cases) {
        INFO("case: " << std::string(bc.name));
        const auto [at, entry] = entry_of(bc.column);
        auto spoiled = chunks[at];
        bc.spoil(std::get<snapshot_column_versions>(spoiled).entries[entry]);

        auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
        crdtsync::snapshot_loader in{*b};
        for (std::size_t i = 0; i < at; ++i) in.push(chunks[i]);
        const auto before = bad_input_state_of(b);
        const auto checkpoint = in.checkpoint();
        std::vector<std::string> words{"snapshot refused", "column-versions chunk of table main.items was refused"};
        words.insert(words.end(), bc.words.begin(), bc.words.end());
        bool threw = false;
        try {
            in.push(spoiled);
        } catch (const crdtsync::snapshot_error& e) {
            threw = true;
            CHECK(e.code() == errc::snapshot);
            for (const auto& w : words)
                CHECK_MESSAGE(std::string_view(e.what()).find(w) != std::string_view::npos, w << " is not in: " << e.what());
        }
        CHECK_MESSAGE(threw, "the spoiled chunk was accepted");
        bad_input_check_unchanged(b, before);
        CHECK(in.checkpoint() == checkpoint);
        CHECK_FALSE(in.done());
        CHECK(in.result().rejected.empty());

        // The chunk as sent, and the rest, complete the load.
        for (std::size_t i = at; i < chunks.size(); ++i) in.push(chunks[i]);
        CHECK(in.done());
        CHECK(b->dump() == a->dump());
    }
}

} // namespace replica_tests
