// Change sets for a table or column a replica does not know yet: held in the
// store (durably), offered to peers like any change set, applied once the
// migration they need arrives; or ignored, or rejected, as the options say.
// docs/schema.md, "Unknown tables".

#include "support.hpp"

#include <crdtsync/replica_check.hpp>

namespace replica_tests {
namespace {

using crdtsync::hold_event;
using crdtsync::hold_event_kind;
using crdtsync::unknown_table_policy;

/// The change sets of a small history on one replica: a create, two rows,
/// an added column and a write of it, one change set per transaction.
template <class R>
std::vector<change_set> history(R& a) {
    a.write([](auto& tx) {
        crdtsync::table_def t{"tasks"};
        t.column("id", crdtsync::column_type::integer, false).column("title", crdtsync::column_type::text).primary_key({"id"});
        tx.create_table(t);
    });
    a.write([](auto& tx) { tx.insert("tasks", {{"id", value{1}}, {"title", value{"one"}}}); });
    a.write([](auto& tx) { tx.insert("tasks", {{"id", value{2}}, {"title", value{"two"}}}); });
    a.write([](auto& tx) { tx.add_column("tasks", crdtsync::column_def{"done", crdtsync::column_type::boolean}); });
    a.write([](auto& tx) { (void)tx.update("tasks", {value{1}}, {{"done", value{true}}}); });
    auto sets = changes_of(a);
    REQUIRE(sets.size() == 5);
    return sets;
}

template <class R>
void require_sound(const R& r) {
    const auto report = crdtsync::check(r);
    for (const auto& p : report.problems) INFO(p);
    REQUIRE(report.ok());
}

} // namespace

TEST_CASE_TEMPLATE("a change set whose table is not known yet is held, relayed, and applied when its create arrives", Env,
                   CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0xc3), fake_clock{&t.now});
    const auto sets = history(*a);
    std::vector<hold_event> events;
    b->on_hold([&](const hold_event& e) { events.push_back(e); });

    // The rows and the added column's write reach b before the create.
    const auto first = b->apply(std::vector<change_set>{sets[1], sets[2], sets[4]});
    CHECK(first.rejected.empty());
    CHECK(first.transactions == 3);
    CHECK(first.held == 5); // 2 + 2 cells, then 1
    CHECK(first.applied + first.skipped + first.conflicts == 0);
    CHECK(first.unknown_table == std::optional<std::uint64_t>(5)); // every one names the unknown table
    CHECK(b->held_facts() == 5);
    REQUIRE(b->held_change_sets().size() == 3);
    REQUIRE(events.size() == 3);
    CHECK(events[0].kind == hold_event_kind::held);
    CHECK(events[0].table == "main.tasks");
    CHECK(events[0].facts == 2);
    require_sound(*b);

    // The same change set again is held once.
    const auto again = b->apply(sets[1]);
    CHECK(again.held == 2);
    CHECK(b->held_facts() == 5);
    CHECK(events.size() == 3);

    // b relays what it holds: c gets it from b, like any change set.
    const auto relayed = c->apply_from(b->site_id(), b->changes_since(c->site_id(), 0));
    CHECK(relayed.held == 5);
    CHECK(c->held_facts() == 5);

    // The create arrives: the rows apply; the column write waits for its column.
    events.clear();
    const auto created = b->apply(sets[0]);
    CHECK(created.applied == 1 + 4);
    CHECK(created.released == 4);
    CHECK(created.held == 0);
    CHECK(b->held_facts() == 1);
    REQUIRE(events.size() == 2);
    CHECK(events[0].kind == hold_event_kind::released);
    CHECK(b->get("tasks", {value{2}}) == std::optional<row>(row{{"id", value{2}}, {"title", value{"two"}}}));
    require_sound(*b);

    // Then the add-column: the last held change set applies.
    const auto added = b->apply(sets[3]);
    CHECK(added.released == 1);
    CHECK(b->held_facts() == 0);
    CHECK(b->held_change_sets().empty());
    CHECK(b->get("tasks", {value{1}})->at("done") == value{true});
    CHECK(b->dump() == a->dump());
    require_sound(*b);

    // c gets the migrations from a directly; what b relayed applies there too.
    const auto from_a = c->apply(std::vector<change_set>{sets[0], sets[3]});
    CHECK(from_a.released == 5);
    CHECK(c->dump() == a->dump());
    CHECK(c->held_facts() == 0);
    require_sound(*c);
}

TEST_CASE_TEMPLATE("held change sets survive a restart and apply after it", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    const auto sets = history(*a);
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    CHECK(b->apply(std::vector<change_set>{sets[2], sets[1]}).held == 4);
    const auto held_before = b->held_change_sets();
    REQUIRE(held_before.size() == 2);

    // Reopen the replica over the same store (for LMDB, the same file).
    reopen(env, b, "store-2.mdb", fake_clock{&t.now});
    CHECK(b->held_facts() == 4);
    CHECK(b->held_change_sets() == held_before);
    require_sound(*b);

    const auto r = b->apply(sets[0]);
    CHECK(r.released == 4);
    CHECK(b->rows("tasks").size() == 2);
    CHECK(b->held_facts() == 0);
    require_sound(*b);
}

TEST_CASE_TEMPLATE("a local create_table releases what was held for it", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    const auto sets = history(*a);
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    CHECK(b->apply(sets[1]).held == 2);
    int released = 0;
    b->on_hold([&](const hold_event& e) { released += e.kind == hold_event_kind::released; });
    b->write([&](auto& tx) { tx.create_table(*a->find_table("tasks")); });
    CHECK(released == 1);
    CHECK(b->held_facts() == 0);
    CHECK(b->rows("tasks").size() == 1);
}

TEST_CASE_TEMPLATE("unknown_table_policy: ignore drops, reject refuses, and the bound refuses what it cannot hold", Env,
                   CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    const auto sets = history(*a);

    SUBCASE("ignore") {
        auto o = options_for(delete_policy::insert_revives, 0xb2);
        o.unknown_tables = unknown_table_policy::ignore;
        auto b = open_node(env, o, fake_clock{&t.now});
        std::vector<hold_event> events;
        b->on_hold([&](const hold_event& e) { events.push_back(e); });
        const auto r = b->apply(sets[1]);
        CHECK(r.rejected.empty());
        CHECK(r.skipped == 2);
        CHECK(r.held == 0);
        CHECK(r.unknown_table == std::optional<std::uint64_t>(2));
        REQUIRE(events.size() == 1);
        CHECK(events[0].kind == hold_event_kind::dropped);
        CHECK(events[0].reason.find("ignore") != std::string::npos);
        CHECK(b->held_facts() == 0);
        CHECK(b->apply(sets[0]).released == 0);
        CHECK(b->rows("tasks").empty()); // ignored for good
    }
    SUBCASE("reject") {
        auto o = options_for(delete_policy::insert_revives, 0xb2);
        o.unknown_tables = unknown_table_policy::reject;
        auto b = open_node(env, o, fake_clock{&t.now});
        const auto r = b->apply(sets[1]);
        REQUIRE(r.rejected.size() == 1);
        CHECK(r.rejected[0].code == std::optional<std::string>("unknown_table"));
        CHECK(r.rejected[0].table == std::optional<std::string>("main.tasks"));
        CHECK(r.transactions == 0);
        CHECK(b->held_facts() == 0);
        CHECK(b->position() == 0);
    }
    SUBCASE("the bound") {
        auto o = options_for(delete_policy::insert_revives, 0xb2);
        o.max_held_facts = 3;
        auto b = open_node(env, o, fake_clock{&t.now});
        CHECK(b->apply(sets[1]).held == 2);
        const auto r = b->apply(sets[2]); // 2 more would make 4 > 3
        REQUIRE(r.rejected.size() == 1);
        CHECK(r.rejected[0].code == std::optional<std::string>("limit_exceeded"));
        CHECK(r.rejected[0].reason.find("max_held_facts") != std::string::npos);
        CHECK(r.held == 0);
        CHECK(b->held_facts() == 2);
        CHECK(b->held_change_sets().size() == 1);
        require_sound(*b);
        // Once the table is there, the refused change set applies when offered again.
        CHECK(b->apply(sets[0]).released == 2);
        CHECK(b->apply(sets[2]).applied == 2);
        CHECK(b->rows("tasks").size() == 2);
    }
}

TEST_CASE_TEMPLATE("a held change set that does not fit its table when the table arrives is dropped, with an event", Env,
                   CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    const auto sets = history(*a);
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
    // A key of two values for a table whose key has one column.
    const auto bad = change_set_builder(at(epoch_ms + 10, 0, site_of(0xd4))).set("tasks", {value{1}, value{2}}, "title", value{"x"}).build();
    CHECK(b->apply(bad).held == 1);
    std::vector<hold_event> events;
    b->on_hold([&](const hold_event& e) { events.push_back(e); });
    const auto r = b->apply(sets[0]);
    CHECK(r.released == 0);
    CHECK(b->held_facts() == 0);
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == hold_event_kind::dropped);
    CHECK(events[0].reason.find("key") != std::string::npos);
    require_sound(*b);
}

TEST_CASE_TEMPLATE("random delivery orders with held change sets converge", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    sim_time t;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0xa1), fake_clock{&t.now});
    const auto sets = history(*a);
    std::mt19937 rng(7);
    for (int trial = 0; trial < 20; ++trial) {
        auto b = open_node(env, options_for(delete_policy::insert_revives, 0xb2), fake_clock{&t.now});
        auto order = sets;
        for (const auto& cs : sets)
            if (rng() % 2) order.push_back(cs); // duplicates
        std::shuffle(order.begin(), order.end(), rng);
        for (std::size_t i = 0; i < order.size();) { // random batch sizes
            const std::size_t n = 1 + rng() % 3;
            const std::vector<change_set> batch(order.begin() + static_cast<std::ptrdiff_t>(i),
                                                order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), i + n)));
            const auto r = b->apply(batch);
            REQUIRE(r.rejected.empty());
            i += n;
        }
        CHECK(b->held_facts() == 0);
        CHECK(b->dump() == a->dump());
        require_sound(*b);
    }
}

} // namespace replica_tests
