// Schema migrations as data: defaults, concurrent ADD COLUMNs and creates of
// one table resolve the same way in every delivery order; index migrations and
// DDL outside the applied subset are kept and forwarded; typed tables evolve
// by ADD COLUMN. docs/schema.md.

#include "support.hpp"

#include <crdtsync/replica_check.hpp>
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

    // Malformed DDL, and kinds this version does not apply yet, are refused by name.
    for (auto [kind, ddl] : {std::pair{migration_kind::add_index, std::string("create index (")},
                             std::pair{migration_kind::drop_table, std::string(R"(drop table "main"."tasks")")},
                             std::pair{migration_kind::alter_column, std::string("alter table tasks drop column title")}}) {
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
// name with different types), creates of a second table with different extra
// columns, and row writes on three replicas; random exchanges between pairs
// (all, a random part, or a random part delivered twice, in random order);
// finally everyone pulls from everyone until nothing changes. Every replica
// ends with the same dump and nothing held.
TEST_CASE_TEMPLATE("schema: random migrations interleaved with writes converge on three replicas", Env, CRDTSYNC_TEST_STORES) {
    const auto seeds = static_cast<unsigned>(env_number("CRDTSYNC_SCHEMA_SEEDS", 6));
    const auto steps = static_cast<int>(env_number("CRDTSYNC_SCHEMA_STEPS", 120));
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
            const auto what = pick(10);
            if (what == 0) { // an ADD COLUMN
                const std::string col = pool[pick(4)];
                if (!r->find_table("tasks")->find_column(col))
                    r->write([&](auto& tx) { tx.add_column("tasks", column_def{col, types[pick(3)]}); });
            } else if (what == 1 && !r->find_table("extra")) { // a create of a second table, extra columns differ
                table_def e{"extra"};
                e.column("k", column_type::integer, false).primary_key({"k"});
                e.column(pool[pick(4)], types[pick(3)]);
                r->create_table(e);
            } else if (what == 2 && r->find_table("extra")) {
                r->write([&](auto& tx) {
                    const auto def = tx.table("extra");
                    row values{{"k", value{static_cast<std::int64_t>(pick(5))}}};
                    values[def.columns().back().name] = value{static_cast<std::int64_t>(pick(100))};
                    if (!tx.get("extra", {values.at("k")})) tx.insert("extra", values);
                });
            } else if (what < 7) { // a write of a random known column
                r->write([&](auto& tx) {
                    const auto def = tx.table("tasks");
                    const value id{static_cast<std::int64_t>(pick(6))};
                    const auto& col = def.columns()[pick(def.columns().size())];
                    const value v = col.name == "id" ? value{} : pick(2) ? value{static_cast<std::int64_t>(pick(50))} : value{"v" + std::to_string(pick(50))};
                    if (!tx.get("tasks", {id})) tx.insert("tasks", {{"id", id}});
                    else if (pick(8) == 0) (void)tx.erase("tasks", {id});
                    else if (col.name != "id") (void)tx.update("tasks", {id}, {{col.name, v}});
                });
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
    }
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
