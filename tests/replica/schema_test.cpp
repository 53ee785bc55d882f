// Schema migrations as data: defaults, concurrent ADD COLUMNs and creates of
// one table, drops, ALTER COLUMN and renames resolve the same way in every
// delivery order; index migrations and DDL outside the applied subset are
// kept and forwarded; typed tables evolve by ADD COLUMN. docs/schema.md.

#include "support.hpp"

#include <crdtsync/ddl.hpp>
#include <crdtsync/replica_check.hpp>
#include <crdtsync/snapshot_loader.hpp>
#include <crdtsync/snapshot_writer.hpp>
#include <crdtsync/table.hpp>

#include <boost/hana.hpp>

#include <optional>

namespace replica_tests {
namespace {

using crdtsync::column_def;
using crdtsync::column_type;
using crdtsync::migration_kind;
using crdtsync::schema_migration;
using crdtsync::table_def;

table_def tasks_def() {
    table_def t{"tasks"};
    t.column("id", column_type::integer, false).column("title", column_type::text).primary_key({"id"});
    return t;
}

/// A migration of main.`table` at `h`, as a peer (Quereus, say) writes it:
/// only the kind and the DDL text.
schema_migration migration_of(const hlc& h, migration_kind kind, std::string ddl, std::string table = "tasks") {
    schema_migration m;
    m.type = kind;
    m.schema = "main";
    m.table = std::move(table);
    m.ddl = std::move(ddl);
    m.version = h;
    m.schema_version = 3;
    return m;
}

/// A change set from `from` at `h` carrying one migration of main.tasks.
change_set one_migration(const site_id& from, const hlc& h, migration_kind kind, std::string ddl) {
    change_set cs;
    cs.origin = from;
    cs.transaction_id = "m" + h.to_text();
    cs.version = h;
    cs.migrations.push_back(migration_of(h, kind, std::move(ddl)));
    return cs;
}

/// Every order of `sets` (up to 4; 40 random ones beyond), each set
/// delivered alone and then all again (duplicates), to a fresh replica;
/// returns the dumps, which must agree.
template <class Env>
std::set<std::string> dumps_in_every_order(Env& env, const sim_time& t, std::vector<change_set> sets) {
    std::set<std::string> dumps;
    std::vector<std::size_t> order(sets.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::mt19937 rng(11);
    int random_orders = 40;
    auto next = [&] {
        if (order.size() <= 4) return std::next_permutation(order.begin(), order.end());
        std::shuffle(order.begin(), order.end(), rng);
        return --random_orders > 0;
    };
    do {
        auto n = open_node(env, options_for(delete_policy::insert_revives, 0x77), fake_clock{&t.now});
        for (const auto i : order) REQUIRE(n->apply(sets[i]).rejected.empty());
        REQUIRE(n->apply(sets).rejected.empty());
        CHECK(n->held_facts() == 0);
        REQUIRE(crdtsync::check(*n).ok());
        dumps.insert(n->dump());
    } while (next());
    return dumps;
}

} // namespace

TEST_CASE_TEMPLATE("schema: an ADD COLUMN with a default on one replica while another writes rows", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    a->create_table(tasks_def());
    REQUIRE(b->apply(changes_of(*a)).rejected.empty());
    const auto base = a->position();
    const auto base_b = b->position();

    // a adds a column with a default and writes it on one row; b, unaware,
    // inserts rows.
    a->write([](auto& tx) {
        tx.insert("tasks", {{"id", value{1}}, {"title", value{"one"}}});
        tx.add_column("tasks", column_def{"priority", column_type::integer, false, crdtsync::collation::binary, value{3}});
        tx.insert("tasks", {{"id", value{2}}, {"title", value{"two"}}});
        (void)tx.update("tasks", {value{1}}, {{"priority", value{9}}});
    });
    b->write([](auto& tx) {
        tx.insert("tasks", {{"id", value{10}}, {"title", value{"ten"}}});
        tx.insert("tasks", {{"id", value{11}}, {"title", value{"eleven"}}});
    });
    const auto from_a = changes_of(*a, base), from_b = changes_of(*b, base_b);

    auto check_rows = [](auto& n) {
        const auto rows = n->rows("tasks");
        REQUIRE(rows.size() == 4);
        CHECK(rows[0].at("priority") == value{9});  // written
        CHECK(rows[1].at("priority") == value{3});  // inserted after the column, given its default
        CHECK(rows[2].at("priority") == value{3});  // written without knowing the column: the default
        CHECK(rows[3].at("priority") == value{3});
    };
    SUBCASE("a's changes first") {
        auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
        REQUIRE(c->apply(changes_of(*a, 0)).rejected.empty());
        REQUIRE(c->apply(from_b).rejected.empty());
        check_rows(c);
    }
    SUBCASE("b's changes first, the column after") {
        auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
        REQUIRE(c->apply(changes_of(*a, 0, site_id{}).front()).rejected.empty()); // the create
        REQUIRE(c->apply(from_b).rejected.empty());
        REQUIRE(c->apply(from_a).rejected.empty());
        check_rows(c);
    }
    REQUIRE(a->apply(from_b).rejected.empty());
    REQUIRE(b->apply(from_a).rejected.empty());
    check_rows(a);
    check_rows(b);
    CHECK(a->dump() == b->dump());
    CHECK(a->find_table("tasks")->columns().back().default_value == std::optional<value>(value{3}));

    // The default is kept in the table record: it survives a restart, and the
    // same migrations offered again after it change nothing.
    reopen(env, b, "store-2.mdb", fake_clock{&t.now});
    check_rows(b);
    const auto again = b->apply(changes_of(*a, 0));
    CHECK(again.rejected.empty());
    CHECK(again.applied == 0);
    CHECK(b->dump() == a->dump());
}

TEST_CASE_TEMPLATE("schema: concurrent ADD COLUMNs converge to one table in every delivery order", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    a->create_table(tasks_def());
    const auto create = changes_of(*a);
    // Three replicas add columns concurrently, two of them one named "size"
    // with different types (REAL first by HLC), and write them.
    std::vector<change_set> sets = create;
    int k = 0;
    for (auto [site, col, type] : {std::tuple{0xb2, "size", column_type::real}, std::tuple{0xc3, "size", column_type::integer},
                                   std::tuple{0xd4, "colour", column_type::text}}) {
        t.now += 1;
        auto n = open_node(env, options_for(delete_policy::insert_revives, static_cast<std::uint8_t>(site)), fake_clock{&t.now});
        REQUIRE(n->apply(create).rejected.empty());
        const auto pos = n->position();
        n->write([&, col = col, type = type](auto& tx) { tx.add_column("tasks", column_def{col, type}); });
        n->write([&, col = col](auto& tx) { tx.insert("tasks", {{"id", value{++k}}, {col, value{7}}}); });
        for (auto& cs : changes_of(*n, pos)) sets.push_back(std::move(cs));
    }
    const auto dumps = dumps_in_every_order(env, t, sets);
    CHECK(dumps.size() == 1);
    // The earliest definition of "size" wins: REAL, and the 7 written under
    // INTEGER is stored as the REAL column stores it.
    auto n = open_node(env, options_for(delete_policy::insert_revives, 0x78), fake_clock{&t.now});
    REQUIRE(n->apply(std::vector<change_set>(sets.rbegin(), sets.rend())).rejected.empty());
    const auto def = n->find_table("tasks");
    REQUIRE(def);
    REQUIRE(def->columns().size() == 4);
    CHECK(def->columns()[2].name == "size");
    CHECK(def->columns()[2].type == column_type::real);
    CHECK(def->columns()[3].name == "colour");
    for (const auto& r : n->rows("tasks"))
        if (!r.at("size").is_null()) CHECK(r.at("size").kind() == crdtsync::value_kind::real);
    // The adverse order, fixed: the later INTEGER definition and its row
    // first, then the earlier REAL one, which must re-coerce the stored 7.
    auto late = open_node(env, options_for(delete_policy::insert_revives, 0x79), fake_clock{&t.now});
    for (const std::size_t i : {0, 3, 4, 5, 6, 2, 1}) REQUIRE(late->apply(sets[i]).rejected.empty());
    CHECK(late->held_facts() == 0);
    CHECK(late->dump() == n->dump());
    for (const auto& r : late->rows("tasks"))
        if (!r.at("size").is_null()) CHECK(r.at("size").kind() == crdtsync::value_kind::real);
}

TEST_CASE_TEMPLATE("schema: two creates of one table merge when their primary keys agree, in both orders", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    a->create_table(tasks_def());
    a->write([](auto& tx) { tx.insert("tasks", {{"id", value{1}}, {"title", value{"a"}}}); });
    t.now += 5;
    auto wider = tasks_def();
    wider.column("due", column_type::text);
    b->create_table(wider);
    b->write([](auto& tx) { tx.insert("tasks", {{"id", value{2}}, {"title", value{"b"}}, {"due", value{"soon"}}}); });
    const auto sa = changes_of(*a), sb = changes_of(*b);
    CHECK(dumps_in_every_order(env, t, {sa[0], sa[1], sb[0], sb[1]}).size() == 1);
    REQUIRE(a->apply(sb).rejected.empty());
    REQUIRE(b->apply(sa).rejected.empty());
    CHECK(a->dump() == b->dump());
    CHECK(a->find_table("tasks")->columns().size() == 3);
    CHECK(a->get("tasks", {value{1}})->at("due").is_null());

    // A create with another primary key cannot merge: rejected, named.
    auto other = table_def{"tasks"};
    other.column("id", column_type::text, false).column("title", column_type::text).primary_key({"id"});
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    c->create_table(other);
    const auto r = a->apply(changes_of(*c));
    REQUIRE(r.rejected.size() == 1);
    CHECK(r.rejected[0].code == std::optional<std::string>("schema"));
    CHECK(r.rejected[0].reason.find("another primary key") != std::string::npos);
    // Locally too, and a create the table already covers does nothing.
    check_throws_code<crdtsync::schema_error>([&] { a->create_table(other); }, crdtsync::errc::schema);
    const auto pos = a->position();
    a->create_table(tasks_def());
    CHECK(a->position() == pos);
}

TEST_CASE_TEMPLATE("schema: index migrations and DDL outside the applied subset are kept, forwarded and reported", Env,
                   CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    a->create_table(tasks_def());
    auto cs = change_set_builder(at(t.now, 5, site_of(0xe5))).build();
    auto migration = [&](migration_kind kind, std::string ddl, std::uint32_t op) {
        schema_migration m;
        m.type = kind;
        m.table = "tasks";
        m.ddl = std::move(ddl);
        m.version = at(t.now, 5, site_of(0xe5), op);
        m.schema_version = 2;
        return m;
    };
    cs.migrations = {migration(migration_kind::add_index, R"(create index "by_title" on "main"."tasks" ("title"))", 0),
                     migration(migration_kind::alter_column, "alter table tasks add constraint one_title unique (title)", 1),
                     migration(migration_kind::drop_index, R"(drop index "main"."by_title")", 2)};
    cs.version = cs.migrations.back().version;
    std::vector<crdtsync::schema_notice> notices;
    a->on_schema_notice([&](const crdtsync::schema_notice& n) { notices.push_back(n); });
    const auto r = a->apply(cs);
    CHECK(r.rejected.empty());
    CHECK(r.applied == 3);
    REQUIRE(notices.size() == 1);
    CHECK(notices[0].migration == cs.migrations[1]);
    CHECK(notices[0].message.find("outside") != std::string::npos);
    CHECK(a->find_table("tasks") == tasks_def());

    // Forwarded: a third replica receives all three from a.
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    REQUIRE(b->apply(changes_of(*a)).rejected.empty());
    CHECK(b->dump() == a->dump());
    CHECK(b->dump().find("add constraint one_title") != std::string::npos);

    // Malformed DDL, DDL of another kind than the migration's, and a key
    // column's drop are refused by name.
    for (auto [kind, ddl] : {std::pair{migration_kind::add_index, std::string("create index (")},
                             std::pair{migration_kind::create_table, std::string(R"(alter table "main"."tasks" rename to "jobs")")},
                             std::pair{migration_kind::alter_column, std::string("alter table tasks drop column id")}}) {
        auto bad = change_set_builder(at(t.now, 9, site_of(0xe6))).build();
        bad.migrations = {migration(kind, ddl, 0)};
        bad.migrations[0].version = at(t.now, 9, site_of(0xe6));
        bad.version = bad.migrations[0].version;
        const auto res = a->apply(bad);
        REQUIRE(res.rejected.size() == 1);
        CHECK(res.rejected[0].code == std::optional<std::string>("schema"));
    }
}

struct task_v1 {
    BOOST_HANA_DEFINE_STRUCT(task_v1, (std::int64_t, id), (std::string, title));
};
struct task_v2 {
    BOOST_HANA_DEFINE_STRUCT(task_v2, (std::int64_t, id), (std::string, title), (std::optional<std::string>, note));
};

TEST_CASE_TEMPLATE("schema: a typed table whose struct gained an optional member evolves by ADD COLUMN", Env,
                   CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto old_app = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto new_app = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    auto v1 = old_app->template table<task_v1>("tasks", crdtsync::key(&task_v1::id));
    old_app->write([&](auto& tx) { v1.insert(tx, task_v1{1, "old"}); });
    // A fresh replica of the new struct: its create has the new column, and
    // the old replica merges it instead of rejecting it.
    auto v2 = new_app->template table<task_v2>("tasks", crdtsync::key(&task_v2::id));
    new_app->write([&](auto& tx) { v2.insert(tx, task_v2{2, "new", std::string("hello")}); });
    REQUIRE(old_app->apply(changes_of(*new_app)).rejected.empty());
    REQUIRE(new_app->apply(changes_of(*old_app)).rejected.empty());
    CHECK(old_app->dump() == new_app->dump());
    CHECK(old_app->find_table("tasks")->find_column("note"));

    // An existing replica opening the new struct adds the column by migration.
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    auto c1 = c->template table<task_v1>("tasks", crdtsync::key(&task_v1::id));
    c->write([&](auto& tx) { c1.insert(tx, task_v1{3, "c"}); });
    const auto pos = c->position();
    auto c2 = c->template table<task_v2>("tasks", crdtsync::key(&task_v2::id));
    const auto added = changes_of(*c, pos);
    REQUIRE(added.size() == 1);
    REQUIRE(added[0].migrations.size() == 1);
    CHECK(added[0].migrations[0].ddl.find("ADD COLUMN \"note\"") != std::string::npos);
    const auto got = c2.get(3);
    REQUIRE(got);
    CHECK(got->title == "c");
    CHECK_FALSE(got->note.has_value());
    REQUIRE(old_app->apply(changes_of(*c)).rejected.empty());
    CHECK(old_app->rows("tasks").size() == 3);
}

} // namespace replica_tests

namespace replica_tests {

// Random ADD COLUMNs (names from a small pool, so that replicas add the same
// name with different types), DROP COLUMNs, ALTER COLUMNs (types, NOT NULL,
// defaults), creates and drops of a second table with different extra
// columns, and row writes on three replicas; random exchanges between pairs
// (all, a random part, or a random part delivered twice, in random order);
// finally everyone pulls from everyone until nothing changes. Every replica
// ends with the same dump and nothing held.
TEST_CASE_TEMPLATE("schema: random migrations interleaved with writes converge on three replicas", Env, CRDTSYNC_TEST_STORES) {
    const auto seeds = static_cast<unsigned>(env_number("CRDTSYNC_SCHEMA_SEEDS", 6));
    const auto steps = static_cast<int>(env_number("CRDTSYNC_SCHEMA_STEPS", 120));
    std::size_t renames = 0, renamed_at_end = 0; // the test must exercise renames
    for (unsigned seed = 1; seed <= seeds; ++seed) {
        CAPTURE(seed);
        Env env;
        sim_time t;
        std::mt19937 rng(seed);
        std::vector<node_t<Env>> n;
        for (std::uint8_t s = 1; s <= 3; ++s)
            n.push_back(open_node(env, options_for(delete_policy::insert_revives, static_cast<std::uint8_t>(0x10 * s)),
                                  fake_clock{&t.now}));
        n[0]->create_table(tasks_def());
        const auto base = changes_of(*n[0]);
        for (int i = 1; i < 3; ++i) REQUIRE(n[i]->apply(base).rejected.empty());

        const char* pool[] = {"a", "b", "c", "d"};
        const column_type types[] = {column_type::integer, column_type::real, column_type::text};
        auto pick = [&](std::size_t k) { return static_cast<std::size_t>(rng() % k); };
        for (int step = 0; step < steps; ++step) {
            t.now += pick(3);
            auto& r = n[pick(3)];
            const auto what = pick(14);
            // The second table starts as "extra" and may be renamed to the others.
            const auto extra = [&]() -> std::string {
                for (const char* name : {"extra", "extra_b", "extra_c"})
                    if (r->find_table(name)) return name;
                return {};
            }();
            // A migration or write a replica refuses (a dropped name, a NOT
            // NULL column left NULL) changes nothing: the test goes on.
            auto attempt = [&](auto&& f) {
                try {
                    f();
                } catch (const crdtsync::schema_error&) {
                } catch (const crdtsync::constraint_error&) {
                }
            };
            if (what == 0) { // an ADD COLUMN
                const std::string col = pool[pick(4)];
                if (!r->find_table("tasks")->find_column(col))
                    attempt([&] { r->write([&](auto& tx) { tx.add_column("tasks", column_def{col, types[pick(3)]}); }); });
            } else if (what == 1 && extra.empty()) { // a create of a second table, extra columns differ
                table_def e{"extra"};
                e.column("k", column_type::integer, false).primary_key({"k"});
                e.column(pool[pick(4)], types[pick(3)]);
                attempt([&] { r->create_table(e); });
            } else if (what == 10) { // a DROP COLUMN
                const std::string col = pool[pick(4)];
                if (r->find_table("tasks")->find_column(col)) r->write([&](auto& tx) { tx.drop_column("tasks", col); });
            } else if (what == 11) { // an ALTER COLUMN
                const std::string col = pool[pick(4)];
                const std::string actions[] = {"SET DATA TYPE REAL", "SET DATA TYPE INTEGER", "SET DATA TYPE TEXT", "SET NOT NULL",
                                               "DROP NOT NULL", "SET DEFAULT 7", "SET DEFAULT 'x'", "DROP DEFAULT"};
                if (r->find_table("tasks")->find_column(col))
                    r->write([&](auto& tx) { tx.execute("ALTER TABLE tasks ALTER COLUMN " + col + " " + actions[pick(8)]); });
            } else if (what == 12 && pick(6) == 0 && !extra.empty()) { // a DROP TABLE
                r->write([&](auto& tx) { tx.drop_table(extra); });
            } else if (what == 13 && !extra.empty()) { // a RENAME TABLE (refused when the name was used)
                const char* names[] = {"extra", "extra_b", "extra_c"};
                const std::string to = names[pick(3)];
                if (to != extra) attempt([&] {
                    r->write([&](auto& tx) { tx.rename_table(extra, to); });
                    ++renames;
                });
            } else if (what == 2 && !extra.empty()) {
                attempt([&] { r->write([&](auto& tx) {
                    const auto def = tx.table(extra);
                    row values{{"k", value{static_cast<std::int64_t>(pick(5))}}};
                    values[def.columns().back().name] = value{static_cast<std::int64_t>(pick(100))};
                    if (!tx.get(extra, {values.at("k")})) tx.insert(extra, values);
                    else (void)tx.update(extra, {values.at("k")}, {{def.columns().back().name, value{static_cast<std::int64_t>(pick(100))}}});
                }); });
            } else if (what < 7) { // a write of a random known column
                attempt([&] { r->write([&](auto& tx) {
                    const auto def = tx.table("tasks");
                    const value id{static_cast<std::int64_t>(pick(6))};
                    const auto& col = def.columns()[pick(def.columns().size())];
                    const value v = col.name == "id" ? value{} : pick(2) ? value{static_cast<std::int64_t>(pick(50))} : value{"v" + std::to_string(pick(50))};
                    if (!tx.get("tasks", {id})) tx.insert("tasks", {{"id", id}});
                    else if (pick(8) == 0) (void)tx.erase("tasks", {id});
                    else if (col.name != "id") (void)tx.update("tasks", {id}, {{col.name, v}});
                }); });
            } else { // an exchange: some of what one replica holds, to another, maybe twice, in random order
                auto& from = n[pick(3)];
                auto& to = n[pick(3)];
                if (&from == &to) continue;
                auto sets = changes_of(*from, 0);
                std::vector<change_set> part;
                for (auto& cs : sets)
                    if (pick(3)) part.push_back(cs);
                if (pick(2)) part.insert(part.end(), part.begin(), part.begin() + static_cast<std::ptrdiff_t>(part.size() / 2));
                std::shuffle(part.begin(), part.end(), rng);
                const auto res = to->apply(part);
                REQUIRE(res.rejected.empty());
            }
        }
        // Everyone pulls everything from everyone, until nothing changes.
        for (int round = 0; round < 4; ++round)
            for (auto& to : n)
                for (auto& from : n)
                    if (&to != &from) REQUIRE(to->apply(changes_of(*from, 0)).rejected.empty());
        for (auto& r : n) {
            CHECK(r->held_facts() == 0);
            REQUIRE(crdtsync::check(*r).ok());
        }
        CHECK(n[0]->dump() == n[1]->dump());
        CHECK(n[0]->dump() == n[2]->dump());
        CHECK(rows_text(*n[0]) == rows_text(*n[2]));
        if (n[0]->find_table("extra_b") || n[0]->find_table("extra_c")) ++renamed_at_end;
    }
    CHECK(renames > 0);
    CHECK(renamed_at_end > 0);
}

} // namespace replica_tests

namespace replica_tests {

struct sized_v1 {
    BOOST_HANA_DEFINE_STRUCT(sized_v1, (std::int64_t, id), (std::optional<std::int64_t>, size));
};

TEST_CASE_TEMPLATE("schema: a typed table is checked again after a migration changed its table", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    table_def base{"things"};
    base.column("id", column_type::integer, false).primary_key({"id"});
    a->create_table(base);
    REQUIRE(b->apply(changes_of(*a)).rejected.empty());
    // b adds "size" as REAL first (by HLC); a's typed table adds it as INTEGER later.
    b->write([](auto& tx) { tx.add_column("things", column_def{"size", column_type::real}); });
    t.now += 10;
    auto things = a->template table<sized_v1>("things", crdtsync::key(&sized_v1::id));
    a->write([&](auto& tx) { things.insert(tx, sized_v1{1, 5}); });
    CHECK(things.all().size() == 1);
    // b's earlier definition arrives and wins: the struct no longer fits.
    REQUIRE(a->apply(changes_of(*b)).rejected.empty());
    CHECK(a->find_table("things")->columns()[1].type == column_type::real);
    check_throws_code<crdtsync::schema_error>([&] { (void)things.all(); }, crdtsync::errc::schema_mismatch);
}

} // namespace replica_tests

namespace replica_tests {

// Drops and ALTER COLUMN (docs/schema.md): what is dropped goes on every
// replica in every delivery order, concurrent writes to it are skipped, and a
// dropped name is not used again.

/// The tables and rows of a dump, without its migrations (which name what
/// was dropped).
std::string live_part(const std::string& dump) {
    return dump.substr(0, dump.find("migration "));
}

TEST_CASE_TEMPLATE("schema: a dropped table's rows go everywhere and concurrent writes do not bring it back", Env,
                   CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    a->create_table(tasks_def());
    a->write([](auto& tx) {
        for (int i = 1; i <= 5; ++i) tx.insert("tasks", {{"id", value{i}}, {"title", value{"t" + std::to_string(i)}}});
    });
    table_def keep{"keep"};
    keep.column("k", column_type::integer, false).primary_key({"k"});
    a->create_table(keep);
    const auto created = changes_of(*a);
    REQUIRE(b->apply(created).rejected.empty());
    const auto pa = a->position(), pb = b->position();
    t.now += 5;
    // b, not knowing yet, updates, inserts and deletes rows of "tasks", and writes "keep".
    b->write([](auto& tx) {
        (void)tx.update("tasks", {value{1}}, {{"title", value{"b's"}}});
        tx.insert("tasks", {{"id", value{9}}, {"title", value{"nine"}}});
        (void)tx.erase("tasks", {value{2}});
        tx.insert("keep", {{"k", value{1}}});
    });
    t.now += 5;
    a->write([](auto& tx) { tx.drop_table("tasks"); });
    CHECK_FALSE(a->find_table("tasks"));
    const auto drop = changes_of(*a, pa), writes = changes_of(*b, pb);
    std::vector<change_set> sets = created;
    sets.insert(sets.end(), drop.begin(), drop.end());
    sets.insert(sets.end(), writes.begin(), writes.end());
    const auto dumps = dumps_in_every_order(env, t, sets);
    CHECK(dumps.size() == 1);
    CHECK(live_part(*dumps.begin()).find("tasks") == std::string::npos);
    CHECK(live_part(*dumps.begin()).find("table main.keep") != std::string::npos);

    // Both orders between a and b directly, with duplicates.
    REQUIRE(a->apply(writes).rejected.empty());
    REQUIRE(b->apply(drop).rejected.empty());
    REQUIRE(b->apply(writes).rejected.empty());
    CHECK(a->dump() == b->dump());
    CHECK(b->rows("keep").size() == 1);
    for (auto* r : {&a, &b}) {
        CHECK_FALSE((*r)->find_table("tasks"));
        REQUIRE(crdtsync::check(**r).ok());
        // The name is retired: it names no table again.
        check_throws_code<crdtsync::schema_error>([&] { (*r)->create_table(tasks_def()); }, crdtsync::errc::schema);
        check_throws_code<crdtsync::schema_error>([&] { (void)(*r)->rows("tasks"); }, crdtsync::errc::unknown_table);
    }
    // A create of the name from a peer that did not know is kept and changes nothing.
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    c->create_table(tasks_def());
    c->write([](auto& tx) { tx.insert("tasks", {{"id", value{77}}}); });
    REQUIRE(a->apply(changes_of(*c)).rejected.empty());
    CHECK_FALSE(a->find_table("tasks"));
    REQUIRE(c->apply(changes_of(*a)).rejected.empty());
    REQUIRE(b->apply(changes_of(*a)).rejected.empty());
    CHECK(c->dump() == a->dump());
    CHECK(b->dump() == a->dump());
    REQUIRE(crdtsync::check(*c).ok());
}

TEST_CASE_TEMPLATE("schema: ADD COLUMN against DROP COLUMN of one name, with writes to it, in every order", Env,
                   CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    a->create_table(tasks_def());
    a->write([](auto& tx) {
        tx.add_column("tasks", column_def{"note", column_type::text});
        tx.insert("tasks", {{"id", value{1}}, {"title", value{"one"}}, {"note", value{"a's note"}}});
    });
    const auto base = changes_of(*a);
    REQUIRE(b->apply(base).rejected.empty());
    const auto pb = b->position();
    t.now += 5;
    // c never saw "note": it adds its own, as INTEGER, later by HLC, and writes it.
    c->create_table(tasks_def());
    t.now += 10;
    c->write([](auto& tx) {
        tx.add_column("tasks", column_def{"note", column_type::integer});
        tx.insert("tasks", {{"id", value{3}}, {"title", value{"three"}}, {"note", value{33}}});
    });
    // b writes the note, then drops it; c's add is concurrent with both.
    b->write([](auto& tx) { (void)tx.update("tasks", {value{1}}, {{"note", value{"b's note"}}}); });
    b->write([](auto& tx) { tx.drop_column("tasks", "note"); });
    CHECK_FALSE(b->find_table("tasks")->find_column("note"));
    const auto from_b = changes_of(*b, pb), from_c = changes_of(*c);
    std::vector<change_set> sets = base;
    sets.insert(sets.end(), from_b.begin(), from_b.end());
    sets.insert(sets.end(), from_c.begin(), from_c.end());
    const auto dumps = dumps_in_every_order(env, t, sets);
    REQUIRE(dumps.size() == 1);
    // The drop wins over the concurrent add of the name: no column, no values.
    CHECK(live_part(*dumps.begin()).find("note") == std::string::npos);
    CHECK(live_part(*dumps.begin()).find("cell") != std::string::npos);
    // Whatever the order, the rows written with a note stay (without it).
    for (auto& r : {&a, &c}) {
        for (auto& from : {&a, &b, &c}) REQUIRE((*r)->apply(changes_of(**from)).rejected.empty());
        REQUIRE(crdtsync::check(**r).ok());
        CHECK((*r)->rows("tasks").size() == 2);
    }
    CHECK(a->dump() == c->dump());
    CHECK(a->dump() == *dumps.begin());
    check_throws_code<crdtsync::schema_error>(
        [&] { a->write([](auto& tx) { tx.add_column("tasks", column_def{"note", column_type::text}); }); }, crdtsync::errc::schema);
    check_throws_code<crdtsync::schema_error>([&] { a->write([](auto& tx) { tx.drop_column("tasks", "id"); }); },
                                              crdtsync::errc::schema);
}

TEST_CASE_TEMPLATE("schema: ALTER COLUMN changes defaults, nullability and types the same way in every order", Env,
                   CRDTSYNC_TEST_STORES) {
    using action = crdtsync::ddl_alter_column::action;
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    a->create_table(tasks_def());
    a->write([](auto& tx) {
        tx.add_column("tasks", column_def{"size", column_type::integer});
        tx.add_column("tasks", column_def{"tag", column_type::text});
        tx.insert("tasks", {{"id", value{1}}, {"title", value{"one"}}, {"size", value{4}}});
    });
    const auto base = changes_of(*a);
    REQUIRE(b->apply(base).rejected.empty());
    const auto pa = a->position(), pb = b->position();
    t.now += 5;
    a->write([](auto& tx) {
        crdtsync::ddl_alter_column to_real;
        to_real.column = "size";
        to_real.what = action::set_type;
        to_real.type = column_type::real;
        tx.alter_column("tasks", to_real);
        tx.execute("ALTER TABLE tasks ALTER COLUMN tag SET DEFAULT 'none'");
        tx.execute("alter table tasks alter column title set not null");
    });
    CHECK(a->rows("tasks")[0].at("size") == value{4.0});
    auto tag_default = [](auto& r) {
        const auto def = *r->find_table("tasks");
        return def.columns()[*def.find_column("tag")].default_value;
    };
    CHECK(tag_default(a) == value{"none"});
    // b, unaware, writes integers into "size" and leaves "tag" unset.
    b->write([](auto& tx) {
        tx.insert("tasks", {{"id", value{2}}, {"title", value{"two"}}, {"size", value{7}}});
        (void)tx.update("tasks", {value{1}}, {{"size", value{5}}});
    });
    const auto from_a = changes_of(*a, pa), from_b = changes_of(*b, pb);
    std::vector<change_set> sets = base;
    sets.insert(sets.end(), from_a.begin(), from_a.end());
    sets.insert(sets.end(), from_b.begin(), from_b.end());
    const auto dumps = dumps_in_every_order(env, t, sets);
    CHECK(dumps.size() == 1);
    REQUIRE(a->apply(from_b).rejected.empty());
    REQUIRE(b->apply(from_a).rejected.empty());
    CHECK(a->dump() == b->dump());
    CHECK(a->dump() == *dumps.begin());
    for (auto* r : {&a, &b}) {
        const auto rows = (*r)->rows("tasks");
        REQUIRE(rows.size() == 2);
        CHECK(rows[0].at("size") == value{5.0});
        CHECK(rows[1].at("size") == value{7.0});
        CHECK(tag_default(*r) == value{"none"});
        const auto def = *(*r)->find_table("tasks");
        CHECK_FALSE(def.columns()[*def.find_column("title")].nullable);
        // SET NOT NULL holds for later local writes.
        check_throws_code<crdtsync::constraint_error>(
            [&] { (*r)->write([](auto& tx) { tx.insert("tasks", {{"id", value{5}}}); }); }, crdtsync::errc::constraint);
    }
    // An insert that leaves the column unset writes the default; after DROP
    // DEFAULT, NULL.
    a->write([](auto& tx) { tx.insert("tasks", {{"id", value{3}}, {"title", value{"three"}}}); });
    CHECK(a->rows("tasks")[2].at("tag") == value{"none"});
    a->write([](auto& tx) { tx.execute("ALTER TABLE tasks ALTER COLUMN tag DROP DEFAULT"); });
    CHECK_FALSE(tag_default(a).has_value());
    a->write([](auto& tx) { tx.insert("tasks", {{"id", value{4}}, {"title", value{"four"}}}); });
    CHECK(a->rows("tasks")[3].at("tag").is_null());
    // A key column's type, collation and NOT NULL do not change: refused locally, and from a peer.
    check_throws_code<crdtsync::schema_error>(
        [&] { a->write([](auto& tx) { tx.execute("ALTER TABLE tasks ALTER COLUMN id SET DATA TYPE TEXT"); }); },
        crdtsync::errc::schema);
    const auto bad = one_migration(b->site_id(), at(epoch_ms + 100, 0, b->site_id()), migration_kind::alter_column,
                                   "alter table tasks alter column id drop not null");
    const auto before = a->dump();
    const auto res = a->apply(bad);
    REQUIRE(res.rejected.size() == 1);
    CHECK(res.rejected[0].code == "schema");
    CHECK(a->dump() == before);
}

TEST_CASE_TEMPLATE("schema: Quereus-written drops and renames apply, and forward", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    a->create_table(tasks_def());
    a->write([](auto& tx) {
        tx.add_column("tasks", column_def{"note", column_type::text});
        tx.insert("tasks", {{"id", value{1}}, {"title", value{"one"}}, {"note", value{"n"}}});
    });
    const auto peer = crdtsync::site_id::from_bytes(std::string(16, '\x51'));
    auto migration = [&](migration_kind kind, std::string ddl, std::uint64_t ms) {
        return one_migration(peer, at(epoch_ms + ms, 0, peer), kind, std::move(ddl));
    };
    auto rename = migration(migration_kind::rename_table, "alter table tasks rename to jobs", 100);
    rename.migrations[0].from_table = "tasks";
    rename.migrations[0].table = "jobs";
    REQUIRE(a->apply(rename).rejected.empty());
    CHECK_FALSE(a->find_table("tasks"));
    REQUIRE(a->find_table("jobs"));
    CHECK(a->rows("jobs").size() == 1);
    // The peer, not knowing yet, still writes under the old name: it lands in jobs.
    change_set late;
    late.origin = peer;
    late.version = at(epoch_ms + 150, 0, peer);
    late.transaction_id = "late";
    late.changes.push_back(crdtsync::column_change{"main", "tasks", {value{1}}, late.version, "title", value{"uno"}, std::nullopt, std::nullopt});
    std::vector<crdtsync::remote_change> heard;
    const auto listener = a->on_remote_change([&](const crdtsync::remote_change& rc) { heard.push_back(rc); });
    REQUIRE(a->apply(late).rejected.empty());
    a->remove_listener(listener);
    CHECK(a->rows("jobs").at(0).at("title") == value{"uno"});
    // Reported under the table's name now.
    REQUIRE(heard.size() == 1);
    REQUIRE(heard[0].applied.size() == 1);
    CHECK(crdtsync::table_of(heard[0].applied[0]) == "jobs");
    REQUIRE(a->apply(migration(migration_kind::alter_column, "alter table tasks drop column note", 200)).rejected.empty());
    CHECK_FALSE(a->find_table("jobs")->find_column("note"));
    CHECK(a->rows("jobs").size() == 1);
    REQUIRE(a->apply(migration(migration_kind::drop_table, "drop table jobs", 300)).rejected.empty());
    CHECK_FALSE(a->find_table("jobs"));
    REQUIRE(crdtsync::check(*a).ok());
    // Kept and forwarded: a peer gets the renames and drops.
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    REQUIRE(b->apply(changes_of(*a)).rejected.empty());
    CHECK(b->dump() == a->dump());
}

// RENAME TABLE (docs/schema.md): the data follows the table, in every order.

TEST_CASE_TEMPLATE("schema: a rename against concurrent writes under the old name, in every order", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    a->create_table(tasks_def());
    a->write([](auto& tx) {
        for (int i = 1; i <= 5; ++i) tx.insert("tasks", {{"id", value{i}}, {"title", value{"t" + std::to_string(i)}}});
    });
    const auto created = changes_of(*a);
    REQUIRE(b->apply(created).rejected.empty());
    const auto pa = a->position(), pb = b->position();
    t.now += 5;
    // b, not knowing yet, updates, inserts and deletes under "tasks", before and after the rename's HLC.
    b->write([](auto& tx) {
        (void)tx.update("tasks", {value{1}}, {{"title", value{"b's"}}});
        (void)tx.erase("tasks", {value{2}});
    });
    t.now += 5;
    // a renames, and writes under the new name in the same transaction.
    a->write([](auto& tx) {
        tx.rename_table("tasks", "jobs");
        tx.insert("jobs", {{"id", value{10}}, {"title", value{"ten"}}});
        (void)tx.update("jobs", {value{3}}, {{"title", value{"a's"}}});
    });
    REQUIRE(a->find_table("jobs"));
    CHECK(a->rows("jobs").size() == 6);
    t.now += 5;
    b->write([](auto& tx) { tx.insert("tasks", {{"id", value{9}}, {"title", value{"nine"}}}); });
    const auto rename = changes_of(*a, pa), writes = changes_of(*b, pb);
    std::vector<change_set> sets = created;
    sets.insert(sets.end(), rename.begin(), rename.end());
    sets.insert(sets.end(), writes.begin(), writes.end());
    const auto dumps = dumps_in_every_order(env, t, sets);
    REQUIRE(dumps.size() == 1);
    CHECK(live_part(*dumps.begin()).find("table main.tasks") == std::string::npos);
    CHECK(live_part(*dumps.begin()).find("table main.jobs") != std::string::npos);

    // Both orders between a and b directly, with duplicates.
    REQUIRE(a->apply(writes).rejected.empty());
    REQUIRE(b->apply(rename).rejected.empty());
    REQUIRE(b->apply(writes).rejected.empty());
    CHECK(a->dump() == b->dump());
    for (auto* r : {&a, &b}) {
        CHECK_FALSE((*r)->find_table("tasks"));
        const auto rows = (*r)->rows("jobs");
        std::map<std::int64_t, std::string> titles;
        for (const auto& row : rows) titles[row.at("id").as_integer()] = row.at("title").as_text();
        CHECK(titles == std::map<std::int64_t, std::string>{{1, "b's"}, {3, "a's"}, {4, "t4"}, {5, "t5"}, {9, "nine"}, {10, "ten"}});
        REQUIRE(crdtsync::check(**r).ok());
        // The earlier name is not used again, and says where the table went.
        check_throws_code<crdtsync::schema_error>([&] { (*r)->create_table(tasks_def()); }, crdtsync::errc::schema);
        try {
            (void)(*r)->rows("tasks");
            FAIL("rows of a renamed-away name");
        } catch (const crdtsync::error& e) {
            CHECK(e.code() == crdtsync::errc::unknown_table);
            CHECK(std::string(e.what()).find("renamed to main.jobs") != std::string::npos);
        }
    }
    // A fresh peer that pulls from b after the rename gets the migration before
    // the rows under the new name (b's rows were logged again): nothing held.
    auto d = open_node(env, options_for(delete_policy::insert_revives, 0xd4), fake_clock{&t.now});
    REQUIRE(d->apply(changes_of(*b)).rejected.empty());
    CHECK(d->held_facts() == 0);
    CHECK(d->dump() == b->dump());
}

TEST_CASE_TEMPLATE("schema: concurrent renames, a rename into a table created concurrently, and a rename against a drop",
                   Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    a->create_table(tasks_def());
    a->write([](auto& tx) {
        for (int i = 1; i <= 3; ++i) tx.insert("tasks", {{"id", value{i}}, {"title", value{"t" + std::to_string(i)}}});
    });
    const auto created = changes_of(*a);
    REQUIRE(b->apply(created).rejected.empty());
    const auto pa = a->position(), pb = b->position();
    // c, who never saw tasks, creates todo (same key, one more column) with
    // rows of its own; a renames tasks to jobs; b, later by HLC, renames it to todo.
    t.now += 2;
    table_def todo{"todo"};
    todo.column("id", column_type::integer, false).column("title", column_type::text).column("due", column_type::integer).primary_key({"id"});
    c->create_table(todo);
    c->write([](auto& tx) {
        tx.insert("todo", {{"id", value{1}}, {"due", value{7}}});
        tx.insert("todo", {{"id", value{20}}, {"title", value{"c's"}}});
    });
    t.now += 3;
    a->write([](auto& tx) {
        tx.rename_table("tasks", "jobs");
        (void)tx.update("jobs", {value{1}}, {{"title", value{"a's"}}});
    });
    t.now += 5;
    b->write([](auto& tx) {
        tx.rename_table("tasks", "todo");
        (void)tx.update("todo", {value{2}}, {{"title", value{"b's"}}});
    });
    const auto ra = changes_of(*a, pa), rb = changes_of(*b, pb), rc = changes_of(*c);
    std::vector<change_set> sets = created;
    for (const auto* part : {&ra, &rb, &rc}) sets.insert(sets.end(), part->begin(), part->end());
    const auto dumps = dumps_in_every_order(env, t, sets);
    REQUIRE(dumps.size() == 1);
    const auto live = live_part(*dumps.begin());
    CHECK(live.find("table main.todo") != std::string::npos); // the latest rename names the table
    CHECK(live.find("table main.jobs") == std::string::npos);
    CHECK(live.find("table main.tasks") == std::string::npos);

    // Every replica, every part: one table "todo" with everyone's rows.
    for (auto* to : {&a, &b, &c})
        for (const auto* part : {&created, &ra, &rb, &rc}) REQUIRE((*to)->apply(*part).rejected.empty());
    CHECK(a->dump() == b->dump());
    CHECK(a->dump() == c->dump());
    std::map<std::int64_t, std::pair<value, value>> rows;
    for (const auto& row : c->rows("todo")) rows[row.at("id").as_integer()] = {row.at("title"), row.at("due")};
    CHECK(rows == std::map<std::int64_t, std::pair<value, value>>{{1, {value{"a's"}, value{7}}},
                                                                  {2, {value{"b's"}, value{}}},
                                                                  {3, {value{"t3"}, value{}}},
                                                                  {20, {value{"c's"}, value{}}}});
    for (auto* r : {&a, &b, &c}) {
        REQUIRE(crdtsync::check(**r).ok());
        // The earlier names are not used again.
        for (const char* name : {"tasks", "jobs"})
            check_throws_code<crdtsync::schema_error>([&] { (*r)->create_table(table_def{tasks_def()}.rename(name)); },
                                                      crdtsync::errc::schema);
    }

    // A rename against a concurrent drop of the table: the drop wins, under every name.
    auto d = open_node(env, options_for(delete_policy::insert_revives, 0xd4), fake_clock{&t.now});
    REQUIRE(d->apply(created).rejected.empty());
    t.now += 5;
    const auto pd = d->position();
    d->write([](auto& tx) { tx.drop_table("tasks"); });
    std::vector<change_set> with_drop = sets;
    const auto drop = changes_of(*d, pd);
    with_drop.insert(with_drop.end(), drop.begin(), drop.end());
    const auto dropped = dumps_in_every_order(env, t, with_drop);
    REQUIRE(dropped.size() == 1);
    CHECK(live_part(*dropped.begin()).find("table main.") == std::string::npos);
    REQUIRE(a->apply(drop).rejected.empty());
    CHECK(a->tables().empty());
    REQUIRE(crdtsync::check(*a).ok());
}

TEST_CASE_TEMPLATE("schema: migrations and writes under an earlier name, in one change set, land in the renamed table",
                   Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    table_def base{"t"};
    base.column("id", column_type::integer, false).column("c", column_type::integer).primary_key({"id"});
    a->create_table(base);
    a->write([](auto& tx) { tx.insert("t", {{"id", value{1}}, {"c", value{1}}}); });
    const auto created = changes_of(*a);
    REQUIRE(b->apply(created).rejected.empty());
    REQUIRE(c->apply(created).rejected.empty());
    const auto pb = b->position(), pc = c->position();
    t.now += 5;
    // b renames t to u and writes c = 7 under the new name in the same transaction.
    b->write([](auto& tx) {
        tx.rename_table("t", "u");
        (void)tx.update("u", {value{1}}, {{"c", value{7}}});
    });
    t.now += 5;
    // c, offline, adds a column to t and writes it in one transaction.
    c->write([](auto& tx) {
        tx.add_column("t", column_def{"note", column_type::text});
        (void)tx.update("t", {value{1}}, {{"note", value{"c's"}}});
    });
    // d, who never saw t, creates u with c REAL (later by HLC than t's create).
    auto d = open_node(env, options_for(delete_policy::insert_revives, 0xd4), fake_clock{&t.now});
    table_def other{"u"};
    other.column("id", column_type::integer, false).column("c", column_type::real).primary_key({"id"});
    d->create_table(other);
    d->write([](auto& tx) { tx.insert("u", {{"id", value{2}}, {"c", value{2.5}}}); });
    std::vector<change_set> sets = created;
    for (const auto& part : {changes_of(*b, pb), changes_of(*c, pc), changes_of(*d)}) sets.insert(sets.end(), part.begin(), part.end());
    // Never held for good (dumps_in_every_order checks nothing stays held), one result in every order.
    const auto dumps = dumps_in_every_order(env, t, sets);
    REQUIRE(dumps.size() == 1);
    for (auto* r : {&a, &b, &c, &d}) REQUIRE((*r)->apply(sets).rejected.empty());
    CHECK(a->dump() == *dumps.begin());
    CHECK(c->dump() == a->dump());
    const auto row = a->get("u", {value{1}});
    REQUIRE(row);
    CHECK(row->at("c") == value{std::int64_t{7}}); // the first create's INTEGER wins, in every order
    CHECK(row->at("note") == value{"c's"});
    CHECK(a->get("u", {value{2}})->at("c") == value{2.5});
}

TEST_CASE_TEMPLATE("schema: a value the joined table's column type cannot hold is stored as it came, the batch applies",
                   Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    table_def first{"a"};
    first.column("id", column_type::integer, false).column("c", column_type::real).primary_key({"id"});
    a->create_table(first); // first by HLC: its REAL column wins the join
    t.now += 5;
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    table_def second{"b"};
    second.column("id", column_type::integer, false).column("c", column_type::integer).primary_key({"id"});
    b->create_table(second);
    REQUIRE(a->apply(changes_of(*b)).rejected.empty());
    // A peer renames a into b and writes an integer beyond the range of a real in the same set.
    const auto peer = site_of(0xe8);
    t.now += 5;
    change_set cs = change_set_builder(at(t.now, 0, peer))
                       .set("b", {value{1}}, "id", value{1})
                       .set("b", {value{1}}, "c", value{crdtsync::big_integer::parse(std::string(400, '9'))})
                       .build();
    schema_migration m;
    m.type = migration_kind::rename_table;
    m.schema = "main";
    m.table = "b";
    m.from_table = "a";
    m.ddl = "ALTER TABLE a RENAME TO b";
    m.version = at(t.now, 0, peer);
    m.schema_version = 2;
    cs.migrations.push_back(m);
    crdtsync::apply_result res;
    REQUIRE_NOTHROW(res = a->apply(cs));
    CHECK(res.rejected.empty());
    CHECK(a->find_table("b")->columns()[1].type == column_type::real);
    REQUIRE(a->get("b", {value{1}}));
    CHECK(a->get("b", {value{1}})->at("c").template get_if<crdtsync::big_integer>() != nullptr);
    REQUIRE(crdtsync::check(*a).ok());
}

TEST_CASE_TEMPLATE("schema: a rename into a table with another key is refused whether or not its old name was dropped first",
                   Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    table_def base{"t"};
    base.column("id", column_type::integer, false).primary_key({"id"});
    a->create_table(base);
    const auto create_t = changes_of(*a);
    REQUIRE(b->apply(create_t).rejected.empty());
    const auto pa = a->position(), pb = b->position();
    t.now += 5;
    table_def other{"u"};
    other.column("k", column_type::text, false).primary_key({"k"});
    c->create_table(other);
    c->write([](auto& tx) { tx.insert("u", {{"k", value{"kept"}}}); });
    t.now += 5;
    a->write([](auto& tx) { tx.rename_table("t", "u"); });
    t.now += 5;
    b->write([](auto& tx) { tx.drop_table("t"); });
    const auto create_u = changes_of(*c), rename = changes_of(*a, pa), drop = changes_of(*b, pb);
    std::set<std::string> ends;
    for (const bool drop_first : {false, true}) {
        auto n = open_node(env, options_for(delete_policy::insert_revives, 0x77), fake_clock{&t.now});
        REQUIRE(n->apply(create_t).rejected.empty());
        REQUIRE(n->apply(create_u).rejected.empty());
        if (drop_first) REQUIRE(n->apply(drop).rejected.empty());
        const auto res = n->apply(rename);
        REQUIRE(res.rejected.size() == 1);
        CHECK(res.rejected[0].reason.find("another primary key") != std::string::npos);
        REQUIRE(n->apply(drop).rejected.empty());
        CHECK(n->rows("u").size() == 1);
        REQUIRE(crdtsync::check(*n).ok());
        ends.insert(n->dump());
        // Its snapshot loads.
        auto fresh = open_node(env, options_for(delete_policy::insert_revives, 0x78), fake_clock{&t.now});
        crdtsync::snapshot_writer out{*n, 7};
        crdtsync::snapshot_loader in{*fresh};
        while (auto chunk = out.next()) in.push(*chunk);
        REQUIRE(in.done());
        CHECK(fresh->dump() == n->dump());
    }
    CHECK(ends.size() == 1);
}

TEST_CASE_TEMPLATE("schema: data under a rename's new name arrives before the rename: held, relayed, applied after a restart",
                   Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    a->create_table(tasks_def());
    a->write([](auto& tx) { tx.insert("tasks", {{"id", value{1}}, {"title", value{"one"}}}); });
    const auto created = changes_of(*a);
    REQUIRE(b->apply(created).rejected.empty());
    const auto pa = a->position();
    t.now += 5;
    a->write([](auto& tx) { tx.rename_table("tasks", "jobs"); });
    const auto pr = a->position();
    t.now += 5;
    a->write([](auto& tx) { tx.insert("jobs", {{"id", value{2}}, {"title", value{"two"}}}); });
    const auto rename = changes_of(*a, pa);
    const auto insert = changes_of(*a, pr);
    REQUIRE(insert.size() == 1);
    // b gets the insert first: jobs is not known there yet, so it is held.
    const auto r = b->apply(insert);
    CHECK(r.rejected.empty());
    CHECK(r.held == 2);
    CHECK(b->held_facts() == 2);
    // Relayed: c, pulling from b, gets what b holds (and holds it too).
    REQUIRE(c->apply(changes_of(*b)).rejected.empty());
    CHECK(c->held_facts() == 2);
    // A restart keeps it held (for LMDB, from the file).
    reopen(env, b, "store-2.mdb", fake_clock{&t.now});
    CHECK(b->held_facts() == 2);
    const auto released = b->apply(rename);
    CHECK(released.released == 2);
    CHECK(b->held_facts() == 0);
    CHECK(b->rows("jobs").size() == 2);
    REQUIRE(c->apply(rename).rejected.empty());
    CHECK(c->held_facts() == 0);
    CHECK(c->dump() == a->dump());
    CHECK(b->dump() == a->dump());
    REQUIRE(crdtsync::check(*b).ok());
    REQUIRE(crdtsync::check(*c).ok());
}

TEST_CASE_TEMPLATE("schema: a rename with writes under the new name, against a concurrent drop of a column or of the table, "
                   "in every order",
                   Env, CRDTSYNC_TEST_STORES) {
    // The rename's own change set writes under the new name, so a replica
    // that has the drop judges those writes by what the drop retired under
    // the earlier name: skipped, never held for a name it does not know.
    for (const bool drop_table : {true, false}) {
        INFO("drop_table: " << drop_table);
        Env env;
        sim_time t;
        auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
        auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
        table_def def{"tasks"};
        def.column("id", column_type::integer, false).column("title", column_type::text).column("note", column_type::text).primary_key({"id"});
        a->create_table(def);
        a->write([](auto& tx) { tx.insert("tasks", {{"id", value{1}}, {"title", value{"one"}}, {"note", value{"n1"}}}); });
        const auto created = changes_of(*a);
        REQUIRE(b->apply(created).rejected.empty());
        const auto pa = a->position(), pb = b->position();
        t.now += 5;
        b->write([&](auto& tx) {
            if (drop_table) tx.drop_table("tasks");
            else tx.drop_column("tasks", "note");
        });
        t.now += 5;
        a->write([](auto& tx) {
            tx.rename_table("tasks", "jobs");
            tx.insert("jobs", {{"id", value{2}}, {"title", value{"two"}}, {"note", value{"n2"}}});
            tx.add_column("jobs", column_def{"due", column_type::integer});
            (void)tx.update("jobs", {value{1}}, {{"due", value{7}}});
        });
        const auto drop = changes_of(*b, pb);
        // As one change set, as a Quereus peer sends a transaction (this
        // replica's changes_since offers the rename's migration alone, then
        // the rows it logged again).
        std::vector<change_set> rename{change_set{}};
        for (const auto& cs : changes_of(*a, pa)) {
            if (rename[0].transaction_id.empty()) rename[0] = cs;
            else {
                rename[0].migrations.insert(rename[0].migrations.end(), cs.migrations.begin(), cs.migrations.end());
                rename[0].changes.insert(rename[0].changes.end(), cs.changes.begin(), cs.changes.end());
            }
        }
        REQUIRE(rename[0].migrations.size() == 2);
        REQUIRE(rename[0].changes.size() == 7);
        std::vector<change_set> sets = created;
        sets.insert(sets.end(), drop.begin(), drop.end());
        sets.insert(sets.end(), rename.begin(), rename.end());
        const auto dumps = dumps_in_every_order(env, t, sets); // nothing held, one dump
        REQUIRE(dumps.size() == 1);
        const auto live = live_part(*dumps.begin());
        CHECK(live.find("table main.tasks") == std::string::npos);
        CHECK(live.find("note") == std::string::npos);
        CHECK((live.find("table main.jobs") != std::string::npos) == !drop_table);

        // Directly, the drop first at a (its rename then meets it) and the rename
        // first at b, with duplicates.
        REQUIRE(a->apply(drop).rejected.empty());
        REQUIRE(b->apply(rename).rejected.empty());
        REQUIRE(b->apply(drop).rejected.empty());
        CHECK(a->dump() == b->dump());
        CHECK(b->dump() == *dumps.begin());
        for (auto* r : {&a, &b}) {
            CHECK((*r)->held_facts() == 0);
            REQUIRE(crdtsync::check(**r).ok());
            if (drop_table) {
                CHECK_FALSE((*r)->find_table("jobs"));
                continue;
            }
            std::map<std::int64_t, std::string> titles;
            for (const auto& row : (*r)->rows("jobs")) {
                CHECK_FALSE(row.contains("note"));
                titles[row.at("id").as_integer()] = row.at("title").as_text();
            }
            CHECK(titles == std::map<std::int64_t, std::string>{{1, "one"}, {2, "two"}});
        }
        if (!drop_table) continue;
        // The same set creating the new name with another primary key is
        // refused in both orders: the dropped table keeps its key (rule 11)
        // under the name the set renames it to as well.
        auto other_key = rename;
        table_def jobs{"jobs"};
        jobs.column("code", column_type::text, false).column("title", column_type::text).primary_key({"code"});
        other_key[0].migrations.insert(other_key[0].migrations.begin() + 1,
                                       migration_of(other_key[0].version, migration_kind::create_table, jobs.to_ddl(), "jobs"));
        std::set<std::string> ends;
        for (const bool drop_first : {true, false}) {
            INFO("drop first: " << drop_first);
            auto n = open_node(env, options_for(delete_policy::insert_revives, drop_first ? 0x51 : 0x52), fake_clock{&t.now});
            REQUIRE(n->apply(created).rejected.empty());
            if (drop_first) REQUIRE(n->apply(drop).rejected.empty());
            const auto r = n->apply(other_key);
            REQUIRE(r.rejected.size() == 1);
            CHECK(r.rejected[0].reason.find("primary key") != std::string::npos);
            REQUIRE(n->apply(drop).rejected.empty());
            CHECK(n->held_facts() == 0);
            ends.insert(n->dump());
        }
        CHECK(ends.size() == 1);
    }
}

TEST_CASE_TEMPLATE("schema: the snapshot of a replica after drops, ALTERs and a rename loads into a fresh replica", Env,
                   CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    a->create_table(tasks_def());
    table_def gone{"gone"};
    gone.column("k", column_type::integer, false).primary_key({"k"});
    a->create_table(gone);
    a->write([](auto& tx) {
        tx.add_column("tasks", column_def{"note", column_type::text});
        tx.add_column("tasks", column_def{"size", column_type::integer});
        for (int i = 1; i <= 20; ++i) {
            tx.insert("tasks", {{"id", value{i}}, {"title", value{"t"}}, {"note", value{"n"}}, {"size", value{i}}});
            tx.insert("gone", {{"k", value{i}}});
        }
    });
    a->write([](auto& tx) {
        tx.drop_column("tasks", "note");
        tx.execute("ALTER TABLE tasks ALTER COLUMN size SET DATA TYPE REAL");
        tx.drop_table("gone");
        (void)tx.erase("tasks", {value{3}});
    });
    a->write([](auto& tx) {
        tx.rename_table("tasks", "jobs");
        (void)tx.update("jobs", {value{4}}, {{"title", value{"renamed"}}});
    });
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    crdtsync::snapshot_writer out{*a, 7};
    crdtsync::snapshot_loader in{*b};
    while (auto c = out.next()) in.push(*c);
    REQUIRE(in.done());
    CHECK(b->dump() == a->dump());
    CHECK(b->tables() == a->tables());
    REQUIRE(crdtsync::check(*b).ok());
    // The loaded replica knows what was dropped: a late write to it is skipped.
    auto late = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    late->create_table(gone);
    late->write([](auto& tx) { tx.insert("gone", {{"k", value{99}}}); });
    REQUIRE(b->apply(changes_of(*late)).rejected.empty());
    CHECK_FALSE(b->find_table("gone"));
    CHECK(b->held_facts() == 0);
    // It knows the earlier name too: a late write under "tasks" lands in "jobs".
    change_set old_name = change_set_builder(at(t.now + 1, 0, site_of(0xe7))).set("tasks", {value{5}}, "title", value{"late"}).build();
    REQUIRE(b->apply(old_name).rejected.empty());
    CHECK(b->get("jobs", {value{5}})->at("title") == value{"late"});
    CHECK_FALSE(b->find_table("tasks"));
    REQUIRE(crdtsync::check(*b).ok());
}

} // namespace replica_tests
