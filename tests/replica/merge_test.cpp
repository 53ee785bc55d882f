// The merge: the join laws on random change sets (commutative, associative,
// idempotent) under each delete policy; deletes in every delivery order;
// concurrent edits, tie breaks, conflicts and their events; and bad input,
// rejected whole. Replicated state is compared as replica::dump() text.

#include "support.hpp"

#include <algorithm>
#include <array>
#include <numeric>
#include <string>
#include <vector>

using namespace replica_tests;
using crdtsync::errc;

namespace {

/// How many lines of `dump` start (after indentation) with `what`.
std::size_t count_lines(const std::string& dump, std::string_view what) {
    std::size_t n = 0, pos = 0;
    while (pos < dump.size()) {
        auto end = dump.find('\n', pos);
        if (end == std::string::npos) end = dump.size();
        auto line = std::string_view(dump).substr(pos, end - pos);
        while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        if (line.substr(0, what.size()) == what) ++n;
        pos = end + 1;
    }
    return n;
}

/// The dump of a fresh replica (holding the schema) after applying `batches`
/// in order, one apply() call per batch.
template <class Env>
std::string dump_after(Env& env, delete_policy p, const sim_time& t, const std::vector<std::vector<change_set>>& batches) {
    auto n = open_with_schema(env, p, 0x77, t);
    for (const auto& b : batches) {
        const auto res = n->apply(b);
        REQUIRE(res.rejected.empty());
    }
    return n->dump();
}

/// The join of two replicated states: a fresh replica merges everything a
/// replica holding `x` holds, then everything one holding `y` holds.
template <class Env>
std::string join_dump(Env& env, delete_policy p, const sim_time& t, const std::vector<change_set>& x,
                      const std::vector<change_set>& y) {
    auto nx = open_with_schema(env, p, 0x71, t);
    auto ny = open_with_schema(env, p, 0x72, t);
    REQUIRE(nx->apply(x).rejected.empty());
    REQUIRE(ny->apply(y).rejected.empty());
    auto z = open_with_schema(env, p, 0x73, t);
    REQUIRE(z->apply(changes_of(*nx)).rejected.empty());
    REQUIRE(z->apply(changes_of(*ny)).rejected.empty());
    return z->dump();
}

std::vector<change_set> cat(std::initializer_list<change_set> sets) { return sets; }

} // namespace

// ---------------------------------------------------------------------------
// 1. Merge laws

TEST_CASE_TEMPLATE("merge laws: commutative, associative, idempotent on random change sets", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 10'000; // every generated HLC is within the drift bound
    const int trials = static_cast<int>(env_number("CRDTSYNC_LAW_TRIALS", 10));
    Env env;
    for (const auto policy : all_policies) {
        for (int trial = 0; trial < trials; ++trial) {
            const auto seed = static_cast<std::uint64_t>(trial) * 7919 + static_cast<std::uint64_t>(policy);
            CAPTURE(crdtsync::to_text(policy));
            CAPTURE(seed);
            std::mt19937_64 rng{seed};
            change_set_generator gen{rng, epoch_ms};
            const auto pool = gen.many(9);
            const auto& a = pool[0];
            const auto& b = pool[1];
            const auto& c = pool[2];

            // A then B == B then A, as separate merges and as one batch.
            const auto ab = dump_after(env, policy, t, {{a}, {b}});
            CHECK(ab == dump_after(env, policy, t, {{b}, {a}}));
            CHECK(ab == dump_after(env, policy, t, {{b, a}}));
            CHECK(ab == dump_after(env, policy, t, {{a, b}}));

            // (A,B),C == A,(B,C), merging whole replicated states.
            const auto abc = dump_after(env, policy, t, {{a}, {b}, {c}});
            CHECK(join_dump(env, policy, t, cat({a, b}), cat({c})) == abc);
            CHECK(join_dump(env, policy, t, cat({a}), cat({b, c})) == abc);
            CHECK(join_dump(env, policy, t, cat({b}), cat({a, c})) == abc);

            // A twice == A once (also within one batch, and after B).
            const auto once = dump_after(env, policy, t, {{a}});
            CHECK(once == dump_after(env, policy, t, {{a}, {a}}));
            CHECK(once == dump_after(env, policy, t, {{a, a}}));
            CHECK(ab == dump_after(env, policy, t, {{a}, {b}, {a}, {b}}));

            // The whole pool in random orders, with duplicates, cut into random
            // batches, always gives the dump of the pool applied once in order.
            std::vector<std::vector<change_set>> in_order;
            for (const auto& cs : pool) in_order.push_back({cs});
            const auto reference = dump_after(env, policy, t, in_order);
            CHECK(count_lines(reference, "cell ") + count_lines(reference, "tomb ") > 0);
            for (int shuffle = 0; shuffle < 3; ++shuffle) {
                std::vector<change_set> seq = pool;
                for (int d = 0; d < 4; ++d) seq.push_back(pool[rng() % pool.size()]);
                std::shuffle(seq.begin(), seq.end(), rng);
                std::vector<std::vector<change_set>> batches;
                for (std::size_t i = 0; i < seq.size();) {
                    const std::size_t n = std::min<std::size_t>(seq.size() - i, 1 + rng() % 4);
                    batches.emplace_back(seq.begin() + static_cast<std::ptrdiff_t>(i), seq.begin() + static_cast<std::ptrdiff_t>(i + n));
                    i += n;
                }
                CHECK(dump_after(env, policy, t, batches) == reference);
            }
        }
    }
}

TEST_CASE_TEMPLATE("merge: the dump tells different states apart", Env, CRDTSYNC_TEST_STORES) {
    // Guards the law tests against a dump that hides what they compare.
    sim_time t;
    Env env;
    const auto s = site_of(0xa1);
    const auto w1 = change_set_builder{at(epoch_ms, 0, s)}.set("items", item_key(1, "x"), "a", value{1}).build();
    const auto w2 = change_set_builder{at(epoch_ms, 1, s)}.set("items", item_key(1, "x"), "a", value{1}).build();
    const auto w3 = change_set_builder{at(epoch_ms, 0, s)}.set("items", item_key(1, "x"), "a", value{2}).build();
    const auto d = change_set_builder{at(epoch_ms, 0, s)}.erase("items", item_key(1, "x")).build();
    const auto d1 = dump_after(env, delete_policy::insert_revives, t, {{w1}});
    CHECK(d1 != dump_after(env, delete_policy::insert_revives, t, {}));
    CHECK(d1 != dump_after(env, delete_policy::insert_revives, t, {{w2}})); // same value, other HLC
    CHECK(d1 != dump_after(env, delete_policy::insert_revives, t, {{w3}})); // same HLC, other value
    CHECK(d1 != dump_after(env, delete_policy::insert_revives, t, {{d}}));
    CHECK(count_lines(dump_after(env, delete_policy::insert_revives, t, {{d}}), "tomb ") == 1);
}

// ---------------------------------------------------------------------------
// 4. Deletes in every order

namespace {

const site_id s1 = site_of(0xb1), s2 = site_of(0xb2), s3 = site_of(0xb3);
const row_key key1 = item_key(1, "x");

change_set insert_at(std::uint64_t wall, std::int64_t a, std::string b, double c) {
    return change_set_builder{at(wall, 0, s1)}
        .insert("items", key1, {{"id", value{1}}, {"name", value{"x"}}, {"a", value{a}}, {"b", value{std::move(b)}}, {"c", value{c}}})
        .build();
}
change_set delete_at(std::uint64_t wall) { return change_set_builder{at(wall, 0, s2)}.erase("items", key1).build(); }
change_set update_at(std::uint64_t wall) { return change_set_builder{at(wall, 0, s3)}.set("items", key1, "b", value{"two"}).build(); }

struct order_outcome {
    std::string dump;
    std::optional<row> row_;
    std::size_t visible_rows = 0;
};

/// Delivers `facts` in every order (one apply per change set) to fresh
/// replicas; checks every order gives the same dump and returns it with the
/// row as the replica shows it. Under delete_wins, also checks the row is
/// never visible once `facts[delete_index]` has arrived.
template <class Env>
order_outcome every_order(Env& env, delete_policy p, const sim_time& t, const std::vector<change_set>& facts,
                          std::size_t delete_index = 1) {
    std::vector<std::size_t> idx(facts.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    order_outcome first;
    bool have_first = false;
    int orders = 0;
    do {
        auto n = open_with_schema(env, p, 0x60, t);
        bool deleted = false;
        for (auto i : idx) {
            REQUIRE(n->apply(facts[i]).rejected.empty());
            deleted = deleted || i == delete_index;
            if (p == delete_policy::delete_wins && deleted) CHECK_FALSE(n->get("items", key1));
        }
        order_outcome o{n->dump(), n->get("items", key1), n->rows("items").size()};
        if (!have_first) {
            first = o;
            have_first = true;
        } else {
            CAPTURE(orders);
            CHECK(o.dump == first.dump);
            CHECK(o.row_ == first.row_);
            CHECK(o.visible_rows == first.visible_rows);
        }
        ++orders;
    } while (std::next_permutation(idx.begin(), idx.end()));
    std::size_t expected = 1;
    for (std::size_t i = 2; i <= facts.size(); ++i) expected *= i;
    CHECK(static_cast<std::size_t>(orders) == expected);
    return first;
}

row full_row(std::int64_t a, std::string b, double c) {
    return row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{a}}, {"b", value{std::move(b)}}, {"c", value{c}}};
}

} // namespace

TEST_CASE_TEMPLATE("deletes: insert, delete, update, re-insert in all 24 orders", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 1000;
    Env env;
    const auto ins = insert_at(epoch_ms + 10, 1, "one", 1.0);
    const auto del = delete_at(epoch_ms + 20);

    SUBCASE("the re-insert is newest") {
        const std::vector<change_set> facts{ins, del, update_at(epoch_ms + 30), insert_at(epoch_ms + 40, 3, "three", 3.0)};
        const auto revives = every_order(env, delete_policy::insert_revives, t, facts);
        CHECK(revives.row_ == full_row(3, "three", 3.0));
        CHECK(revives.visible_rows == 1);
        CHECK(count_lines(revives.dump, "tomb ") == 1);
        CHECK(count_lines(revives.dump, "cell ") == 5);

        const auto wins = every_order(env, delete_policy::delete_wins, t, facts);
        CHECK_FALSE(wins.row_);
        CHECK(wins.visible_rows == 0);
        CHECK(count_lines(wins.dump, "tomb ") == 1);
        CHECK(count_lines(wins.dump, "cell ") == 0);

        const auto lww = every_order(env, delete_policy::lww, t, facts);
        CHECK(lww.row_ == full_row(3, "three", 3.0));
        CHECK(lww.dump == revives.dump); // same stored state, only visibility rules differ
    }
    SUBCASE("the update is newer than the re-insert") {
        const std::vector<change_set> facts{ins, del, insert_at(epoch_ms + 30, 3, "three", 3.0), update_at(epoch_ms + 40)};
        const auto revives = every_order(env, delete_policy::insert_revives, t, facts);
        CHECK(revives.row_ == full_row(3, "two", 3.0));
        const auto wins = every_order(env, delete_policy::delete_wins, t, facts);
        CHECK_FALSE(wins.row_);
        CHECK(count_lines(wins.dump, "cell ") == 0);
        const auto lww = every_order(env, delete_policy::lww, t, facts);
        CHECK(lww.row_ == full_row(3, "two", 3.0));
    }
    SUBCASE("insert, delete, newer update: no re-insert") {
        const std::vector<change_set> facts{ins, del, update_at(epoch_ms + 30)};
        const auto revives = every_order(env, delete_policy::insert_revives, t, facts);
        CHECK_FALSE(revives.row_); // an update never revives
        CHECK(revives.visible_rows == 0);
        CHECK(count_lines(revives.dump, "cell ") == 1); // the update's cell is kept
        const auto wins = every_order(env, delete_policy::delete_wins, t, facts);
        CHECK_FALSE(wins.row_);
        CHECK(count_lines(wins.dump, "cell ") == 0);
        const auto lww = every_order(env, delete_policy::lww, t, facts);
        REQUIRE(lww.row_);
        // Only the updated column holds a value; the key reads from the key itself.
        CHECK(*lww.row_ == row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{}}, {"b", value{"two"}}, {"c", value{}}});
        CHECK(lww.visible_rows == 1);
    }
    SUBCASE("a delete newer than everything hides the row under every policy") {
        const std::vector<change_set> facts{ins, update_at(epoch_ms + 30), insert_at(epoch_ms + 40, 3, "three", 3.0), delete_at(epoch_ms + 50)};
        for (const auto p : all_policies) {
            CAPTURE(crdtsync::to_text(p));
            const auto o = every_order(env, p, t, facts, 3);
            CHECK_FALSE(o.row_);
            CHECK(count_lines(o.dump, "cell ") == 0);
            CHECK(count_lines(o.dump, "tomb ") == 1);
        }
    }
}

TEST_CASE_TEMPLATE("deletes: a local re-insert of a deleted key", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 1000;
    Env env;
    const auto ins = insert_at(epoch_ms + 10, 1, "one", 1.0);
    const auto del = delete_at(epoch_ms + 20);
    const row again{{"id", value{1}}, {"name", value{"X"}}, {"a", value{7}}};

    SUBCASE("delete_wins: a constraint_error, and nothing changes") {
        auto n = open_with_schema(env, delete_policy::delete_wins, 0x61, t);
        REQUIRE(n->apply(cat({ins, del})).transactions == 2);
        const auto before = n->dump();
        const auto pos = n->position();
        // NOCASE: "X" names the deleted row (1, "x") too.
        check_throws_code<crdtsync::constraint_error>([&] { n->write([&](auto& tx) { tx.insert("items", again); }); }, errc::constraint);
        CHECK(n->dump() == before);
        CHECK(n->position() == pos);
        CHECK_FALSE(n->get("items", key1));
        // Another key is fine.
        n->write([&](auto& tx) { tx.insert("items", row{{"id", value{2}}, {"name", value{"x"}}}); });
        CHECK(n->rows("items").size() == 1);
    }
    for (const auto p : {delete_policy::insert_revives, delete_policy::lww}) {
        CAPTURE(crdtsync::to_text(p));
        auto n = open_with_schema(env, p, 0x62, t);
        REQUIRE(n->apply(cat({ins, del})).transactions == 2);
        n->write([&](auto& tx) { tx.insert("items", again); });
        const auto r = n->get("items", key1);
        REQUIRE(r);
        CHECK(r->at("name") == value{"X"}); // the spelling of the latest insert
        CHECK(r->at("a") == value{7});
        CHECK(r->at("b") == value{});
    }
}

// ---------------------------------------------------------------------------
// 5. Concurrent edits, tie breaks, conflicts, events

TEST_CASE_TEMPLATE("concurrent edits: columns, HLC order, site tie break", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms;
    Env env;
    auto alice = open_node(env, options_for(delete_policy::insert_revives, 0x10), fake_clock{&t.now});
    auto bob = open_node(env, options_for(delete_policy::insert_revives, 0x20), fake_clock{&t.now});
    alice->create_table(items_table());
    REQUIRE(bob->apply(changes_of(*alice)).rejected.empty());
    alice->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{0}}, {"b", value{"base"}}}); });
    REQUIRE(bob->apply(changes_of(*alice, 0, bob->site_id())).rejected.empty());
    const auto alice_pos = alice->position();
    const auto bob_pos = bob->position();

    SUBCASE("different columns of one row both survive") {
        t.now += 5;
        alice->write([](auto& tx) { CHECK(tx.update("items", item_key(1, "x"), row{{"a", value{1}}})); });
        bob->write([](auto& tx) { CHECK(tx.update("items", item_key(1, "x"), row{{"b", value{"bob"}}})); });
        const auto to_bob = bob->apply(changes_of(*alice, alice_pos, bob->site_id()));
        const auto to_alice = alice->apply(changes_of(*bob, bob_pos, alice->site_id()));
        CHECK(to_bob.applied == 1);
        CHECK(to_bob.conflicts == 0);
        CHECK(to_alice.applied == 1);
        CHECK(to_alice.conflicts == 0);
        for (auto* n : {&alice, &bob}) {
            const auto r = (*n)->get("items", item_key(1, "x"));
            REQUIRE(r);
            CHECK(r->at("a") == value{1});
            CHECK(r->at("b") == value{"bob"});
        }
        CHECK(alice->dump() == bob->dump());
    }
    SUBCASE("one column: the higher HLC wins on both sides") {
        t.now += 5;
        alice->write([](auto& tx) { CHECK(tx.update("items", item_key(1, "x"), row{{"b", value{"alice"}}})); });
        t.now += 1; // bob writes later
        bob->write([](auto& tx) { CHECK(tx.update("items", item_key(1, "x"), row{{"b", value{"bob"}}})); });
        const auto to_bob = bob->apply(changes_of(*alice, alice_pos, bob->site_id()));
        const auto to_alice = alice->apply(changes_of(*bob, bob_pos, alice->site_id()));
        CHECK(to_bob.conflicts == 1); // a concurrent different value, lost by the remote side
        CHECK(to_alice.conflicts == 1);
        CHECK(alice->get("items", item_key(1, "x"))->at("b") == value{"bob"});
        CHECK(bob->get("items", item_key(1, "x"))->at("b") == value{"bob"});
        CHECK(alice->dump() == bob->dump());
    }
    SUBCASE("equal wall time and counter: the larger site id wins") {
        // Two crafted writes with the same (wall, counter), different sites,
        // delivered in both orders to replicas holding the base row.
        const auto low = change_set_builder{at(epoch_ms + 50, 3, site_of(0x30))}.set("items", item_key(1, "x"), "b", value{"low"}).build();
        const auto high = change_set_builder{at(epoch_ms + 50, 3, site_of(0x31))}.set("items", item_key(1, "x"), "b", value{"high"}).build();
        // Each meets a different value another site wrote unseen: a conflict.
        CHECK(alice->apply(low).conflicts == 1);
        CHECK(alice->apply(high).conflicts == 1); // high beats low
        CHECK(bob->apply(high).conflicts == 1);
        const auto r = bob->apply(low); // low loses to high
        CHECK(r.conflicts == 1);
        CHECK(r.applied == 0);
        CHECK(alice->get("items", item_key(1, "x"))->at("b") == value{"high"});
        CHECK(bob->get("items", item_key(1, "x"))->at("b") == value{"high"});
        // Wall time outranks counter and site: (w+1, 0, low site) beats (w, 3, high site).
        const auto later = change_set_builder{at(epoch_ms + 51, 0, site_of(0x30))}.set("items", item_key(1, "x"), "b", value{"later"}).build();
        CHECK(bob->apply(later).conflicts == 1);
        CHECK(bob->get("items", item_key(1, "x"))->at("b") == value{"later"});
    }
    SUBCASE("an equal HLC redelivered is skipped, not a conflict") {
        const auto w = change_set_builder{at(epoch_ms + 50, 0, site_of(0x30))}.set("items", item_key(1, "x"), "b", value{"w"}).build();
        const auto first = alice->apply(w);
        CHECK(first.applied + first.conflicts == 1);
        int events = 0;
        alice->on_conflict([&](const crdtsync::conflict&) { ++events; });
        const auto again = alice->apply(w);
        CHECK(again.skipped == 1);
        CHECK(again.applied == 0);
        CHECK(again.conflicts == 0);
        CHECK(again.transactions == 1);
        CHECK(events == 0);
    }
    SUBCASE("two different facts under one HLC: the greater value wins in both orders, as a conflict") {
        // A faulty or hostile peer reuses an HLC with another value.
        const auto w = change_set_builder{at(epoch_ms + 50, 0, site_of(0x30))}.set("items", item_key(1, "x"), "b", value{"w"}).build();
        auto forged = w;
        std::get<column_change>(forged.changes[0]).val = value{"other"};
        REQUIRE(alice->apply(w).rejected.empty());
        std::vector<crdtsync::conflict> seen;
        alice->on_conflict([&](const crdtsync::conflict& c) { seen.push_back(c); });
        const auto r = alice->apply(forged);
        CHECK(r.conflicts == 1);
        CHECK(r.applied == 0);
        REQUIRE(seen.size() == 1);
        CHECK(seen[0].winner == crdtsync::conflict_winner::local);
        CHECK(alice->get("items", item_key(1, "x"))->at("b") == value{"w"});
        // The other order: "w" > "other", so "w" replaces it.
        REQUIRE(bob->apply(forged).rejected.empty());
        std::vector<crdtsync::conflict> bob_seen;
        bob->on_conflict([&](const crdtsync::conflict& c) { bob_seen.push_back(c); });
        const auto r2 = bob->apply(w);
        CHECK(r2.conflicts == 1);
        REQUIRE(bob_seen.size() == 1);
        CHECK(bob_seen[0].winner == crdtsync::conflict_winner::remote);
        CHECK(bob->get("items", item_key(1, "x"))->at("b") == value{"w"});
        // Both hold the same state after exchanging the rest.
        (void)alice->apply(changes_of(*bob, bob_pos, alice->site_id()));
        (void)bob->apply(changes_of(*alice, alice_pos, bob->site_id()));
        CHECK(alice->dump() == bob->dump());
        // And a redelivery of either is then idempotent.
        CHECK(alice->apply(forged).applied == 0);
        CHECK(bob->apply(forged).applied == 0);
        CHECK(alice->dump() == bob->dump());
    }
}

TEST_CASE_TEMPLATE("conflicts: events carry both sides and the winner", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 1000;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x40, t);
    // The row (1, "x") with b = "base", inserted by s1; `base_h` is b's HLC.
    const auto base = change_set_builder{at(epoch_ms + 10, 0, s1)}
                          .set("items", key1, "id", value{1})
                          .set("items", key1, "name", value{"x"})
                          .set("items", key1, "b", value{"base"})
                          .build();
    const auto base_h = at(epoch_ms + 10, 0, s1, 2);
    REQUIRE(n->apply(base).applied == 3);
    std::vector<crdtsync::conflict> seen;
    const auto id = n->on_conflict([&](const crdtsync::conflict& c) { seen.push_back(c); });

    SUBCASE("remote newer: remote wins") {
        const auto h = at(epoch_ms + 20, 0, s2);
        const auto r = n->apply(change_set_builder{h}.set("items", key1, "b", value{"new"}).build());
        CHECK(r.conflicts == 1);
        CHECK(r.applied == 0);
        REQUIRE(seen.size() == 1);
        const auto& c = seen[0];
        CHECK(c.schema == "main");
        CHECK(c.table == "items");
        CHECK(c.pk == key1);
        CHECK(c.column == "b");
        CHECK(c.local_value == value{"base"});
        CHECK(c.local_version == base_h);
        CHECK(c.remote_value == value{"new"});
        CHECK(c.remote_version == h);
        CHECK(c.winner == crdtsync::conflict_winner::remote);
    }
    SUBCASE("remote older: local wins") {
        const auto h = at(epoch_ms + 5, 0, s2);
        const auto r = n->apply(change_set_builder{h}.set("items", key1, "b", value{"old"}).build());
        CHECK(r.conflicts == 1);
        REQUIRE(seen.size() == 1);
        CHECK(seen[0].local_value == value{"base"});
        CHECK(seen[0].local_version == base_h);
        CHECK(seen[0].remote_value == value{"old"});
        CHECK(seen[0].remote_version == h);
        CHECK(seen[0].winner == crdtsync::conflict_winner::local);
        CHECK(n->get("items", key1)->at("b") == value{"base"});
    }
    SUBCASE("a writer that saw the local value overwrites without a conflict") {
        auto cs = change_set_builder{at(epoch_ms + 20, 0, s2)}.set("items", key1, "b", value{"next"}).build();
        auto& cc = std::get<column_change>(cs.changes[0]);
        cc.prior_version = base_h;
        cc.prior_value = value{"base"};
        const auto r = n->apply(cs);
        CHECK(r.applied == 1);
        CHECK(r.conflicts == 0);
        CHECK(seen.empty());
        // The older fact the writer had seen, arriving late (relayed), is no
        // conflict either: the local cell's prior names it (docs/semantics.md).
        const auto late = n->apply(base);
        CHECK(late.skipped == 3);
        CHECK(late.conflicts == 0);
    }
    SUBCASE("the same value from another site is no conflict") {
        const auto r = n->apply(change_set_builder{at(epoch_ms + 20, 0, s2)}.set("items", key1, "b", value{"base"}).build());
        CHECK(r.applied == 1);
        CHECK(r.conflicts == 0);
        CHECK(seen.empty());
    }
    SUBCASE("a removed listener is not called") {
        n->remove_listener(id);
        const auto r = n->apply(change_set_builder{at(epoch_ms + 20, 0, s2)}.set("items", key1, "b", value{"new"}).build());
        CHECK(r.conflicts == 1);
        CHECK(seen.empty());
    }
}

TEST_CASE_TEMPLATE("events: delivered after commit, once per transaction or change set", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 1000;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x41, t);
    auto& rep = *n;

    std::vector<crdtsync::local_change> locals;
    std::vector<crdtsync::remote_change> remotes;
    std::vector<std::optional<row>> seen_by_local, seen_by_remote;
    std::vector<std::string> seen_by_conflict;
    // Each subscriber reads through the replica, which opens a store read
    // transaction: it sees the new data only if the write committed first.
    rep.on_local_change([&](const crdtsync::local_change& c) {
        locals.push_back(c);
        seen_by_local.push_back(rep.get("items", item_key(5, "e")));
    });
    rep.on_remote_change([&](const crdtsync::remote_change& c) {
        remotes.push_back(c);
        seen_by_remote.push_back(rep.get("items", key1));
    });
    rep.on_conflict([&](const crdtsync::conflict&) {
        const auto r = rep.get("items", key1);
        seen_by_conflict.push_back(r ? r->at("b").to_text() : "none");
    });

    rep.write([](auto& tx) {
        tx.insert("items", row{{"id", value{5}}, {"name", value{"e"}}, {"a", value{1}}});
        CHECK(tx.update("items", item_key(5, "e"), row{{"a", value{2}}}));
    });
    REQUIRE(locals.size() == 1);
    REQUIRE(seen_by_local.size() == 1);
    REQUIRE(seen_by_local[0]);
    CHECK(seen_by_local[0]->at("a") == value{2});
    CHECK(locals[0].changes.origin == rep.site_id());
    CHECK(locals[0].changes.changes.size() == 6); // five columns inserted, one updated
    // The event's change set is what peers receive for that transaction.
    const auto sent = changes_of(rep, 0, s1);
    REQUIRE(!sent.empty());
    CHECK(sent.back().transaction_id == locals[0].changes.transaction_id);

    // A transaction that throws commits nothing and tells nobody.
    CHECK_THROWS_AS(rep.write([](auto& tx) {
        tx.insert("items", row{{"id", value{6}}, {"name", value{"f"}}});
        throw std::runtime_error("abandon");
    }), std::runtime_error);
    CHECK(locals.size() == 1);
    CHECK_FALSE(rep.get("items", item_key(6, "f")));

    // Two remote change sets in one batch: one event each; the second meets
    // the first's value (a conflict) and both are visible to the subscribers.
    const auto r1 = change_set_builder{at(epoch_ms + 10, 0, s1)}.insert("items", key1, {{"id", value{1}}, {"name", value{"x"}}, {"b", value{"one"}}}).build();
    const auto r2 = change_set_builder{at(epoch_ms + 20, 0, s2)}.set("items", key1, "b", value{"two"}).build();
    const auto res = rep.apply(cat({r1, r2}));
    CHECK(res.transactions == 2);
    REQUIRE(remotes.size() == 2);
    CHECK(remotes[0].origin == s1);
    CHECK(remotes[0].transaction_id == r1.transaction_id);
    CHECK(remotes[0].applied.size() == 3);
    CHECK(remotes[1].origin == s2);
    CHECK(remotes[1].applied.size() == 1);
    REQUIRE(seen_by_remote.size() == 2);
    REQUIRE(seen_by_remote[0]);
    CHECK(seen_by_remote[0]->at("b") == value{"two"}); // the whole batch committed before any event
    REQUIRE(seen_by_conflict.size() == 1);
    CHECK(seen_by_conflict[0] == "'two'");

    // A batch that changes nothing fires no remote event.
    // (r1's older "one" meets r2's "two" again: r2 carries no prior, so that
    // counts as a conflict once more, as docs/semantics.md defines it.)
    const auto again = rep.apply(cat({r1, r2}));
    CHECK(again.applied == 0);
    CHECK(again.skipped + again.conflicts == 4);
    CHECK(again.transactions == 2);
    CHECK(remotes.size() == 2);
}

// ---------------------------------------------------------------------------
// 6. Bad input

TEST_CASE_TEMPLATE("bad input: a bad change set is rejected whole, the others apply", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 1000;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x50, t);

    const auto good1 = change_set_builder{at(epoch_ms + 1, 0, s1)}.set("items", item_key(1, "a"), "a", value{1}).build();
    const auto good2 = change_set_builder{at(epoch_ms + 2, 0, s1)}.insert("notes", {value{"k"}}, {{"k", value{"k"}}, {"body", value{"b"}}}).build();
    // A change set whose last fact is bad, after four good ones.
    auto bad_after = [&](auto&& add_bad) {
        change_set_builder b{at(epoch_ms + 3, 0, s2)};
        b.set("items", item_key(2, "a"), "a", value{1})
            .set("items", item_key(2, "a"), "b", value{"x"})
            .erase("notes", {value{"k"}})
            .set("notes", {value{"z"}}, "body", value{"z"});
        add_bad(b);
        return b.build();
    };
    struct bad_case {
        const char* what;
        change_set cs;
        const char* code;
        const char* reason; // the whole message, or "" when it names a time
    };
    const std::vector<bad_case> cases{
        {"unknown table", bad_after([](auto& b) { b.set("nope", {value{1}}, "a", value{1}); }), "unknown_table",
         "change for unknown table main.nope"},
        {"key of the wrong length", bad_after([](auto& b) { b.set("items", {value{3}}, "a", value{1}); }), "invalid_key",
         "change for table main.items has a key of 1 value(s), the table's primary key has 2"},
        {"delete with a key of the wrong length",
         bad_after([](auto& b) { b.erase("items", {value{3}, value{"a"}, value{"extra"}}); }), "invalid_key",
         "change for table main.items has a key of 3 value(s), the table's primary key has 2"},
        {"NULL key value", bad_after([](auto& b) { b.set("items", {value{3}, value{}}, "a", value{1}); }), "invalid_key",
         "change for table main.items has a NULL key value"},
        {"far-future HLC",
         [&] {
             auto cs = bad_after([](auto& b) { b.set("items", item_key(3, "a"), "a", value{1}); });
             // Only the fifth fact is beyond the drift bound (60 s by default).
             std::get<column_change>(cs.changes[4]).version.wall_time = t.now + 61'000;
             return cs;
         }(),
         "clock_drift", ""},
        {"unknown column", bad_after([](auto& b) { b.set("items", item_key(3, "a"), "zzz", value{1}); }), "unknown_column",
         "change for unknown column \"zzz\" of table main.items"},
    };
    for (const auto& bc : cases) {
        CAPTURE(bc.what);
        REQUIRE(bc.cs.changes.size() == 5);
        auto m = open_with_schema(env, rejecting(delete_policy::insert_revives, 0x51), t);
        REQUIRE(m->apply(good1).applied == 1);
        const auto before = m->dump();
        const auto clock_before = m->clock();
        const auto pos_before = m->position();

        // Alone: rejected, and nothing of its first four facts is written.
        const auto alone = m->apply(bc.cs);
        REQUIRE(alone.rejected.size() == 1);
        CHECK(alone.rejected[0].code == std::optional<std::string>(bc.code));
        CHECK(alone.rejected[0].transaction_id == bc.cs.transaction_id);
        CHECK_FALSE(alone.rejected[0].reason.empty());
        if (*bc.reason != '\0') CHECK(alone.rejected[0].reason == bc.reason);
        CHECK(alone.transactions == 0);
        CHECK(alone.applied + alone.skipped + alone.conflicts == 0);
        CHECK(m->dump() == before);
        CHECK(m->clock() == clock_before);
        CHECK(m->position() == pos_before);
        CHECK(changes_of(*m, pos_before).empty());

        // In a batch: the others still apply.
        const auto batch = m->apply(std::vector<change_set>{good2, bc.cs, good1});
        REQUIRE(batch.rejected.size() == 1);
        CHECK(batch.rejected[0].code == std::optional<std::string>(bc.code));
        CHECK(batch.transactions == 2);
        CHECK(batch.applied == 2);
        CHECK(batch.skipped == 1);
        CHECK(m->get("notes", {value{"k"}})); // the bad set's delete of it did not apply
        CHECK_FALSE(m->get("items", item_key(2, "a")));
        CHECK(m->rows("items").empty()); // good1 wrote no key column: no visible row
        if (std::string_view(bc.code) == "unknown_table") {
            CHECK(batch.unknown_table == std::optional<std::uint64_t>(bc.cs.changes.size()));
            CHECK(batch.rejected[0].table == std::optional<std::string>("main.nope"));
        }
    }
}

TEST_CASE_TEMPLATE("bad input: a far-future change-set HLC and NULL keys are rejected", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 1000;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x52, t);
    const auto before = n->dump();

    auto future = change_set_builder{at(epoch_ms + 1, 0, s1)}.set("items", key1, "a", value{1}).build();
    future.version.wall_time = t.now + 120'000;
    auto r = n->apply(future);
    REQUIRE(r.rejected.size() == 1);
    CHECK(r.rejected[0].code == std::optional<std::string>("clock_drift"));

    // Exactly at the bound is accepted; one millisecond beyond is not.
    const auto edge = change_set_builder{at(t.now + 60'000, 0, s1)}.set("items", key1, "a", value{2}).build();
    const auto beyond = change_set_builder{at(t.now + 60'001, 0, s1)}.set("items", key1, "a", value{3}).build();
    CHECK(n->apply(beyond).rejected.size() == 1);
    CHECK(n->dump() == before);
    CHECK(n->apply(edge).rejected.empty());

    const auto null_key = change_set_builder{at(epoch_ms + 2, 0, s1)}.set("items", {value{1}, value{}}, "a", value{1}).build();
    const auto before_null = n->dump();
    r = n->apply(null_key);
    REQUIRE(r.rejected.size() == 1);
    CHECK(r.rejected[0].code == std::optional<std::string>("invalid_key"));
    CHECK(n->dump() == before_null);

    // A smaller drift bound is honoured.
    replica_options tight = options_for(delete_policy::insert_revives, 0x53);
    tight.max_drift = std::chrono::milliseconds(10);
    auto m = open_node(env, tight, fake_clock{&t.now});
    REQUIRE(m->apply(schema_sets()).rejected.empty());
    const auto ahead = change_set_builder{at(t.now + 11, 0, s1)}.set("items", key1, "a", value{1}).build();
    const auto r2 = m->apply(ahead);
    REQUIRE(r2.rejected.size() == 1);
    CHECK(r2.rejected[0].code == std::optional<std::string>("clock_drift"));
}

TEST_CASE_TEMPLATE("bad input: a migration for an unknown table names that table", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 1000;
    Env env;
    auto n = open_with_schema(env, rejecting(delete_policy::insert_revives, 0x54), t);
    const auto before = n->dump();
    // A good change set first, so that a stale name from its validation would show.
    const auto good = change_set_builder{at(epoch_ms + 1, 0, s1)}.set("items", key1, "a", value{1}).build();
    change_set ghost = change_set_builder{at(epoch_ms + 2, 0, s2)}.set("items", key1, "a", value{2}).build();
    crdtsync::schema_migration m;
    m.type = crdtsync::migration_kind::add_column;
    m.table = "ghost";
    m.ddl = R"(ALTER TABLE "main"."ghost" ADD COLUMN "x" TEXT NULL)";
    m.version = at(epoch_ms + 2, 0, s2, 1);
    ghost.migrations.push_back(m);

    const auto r = n->apply(std::vector<change_set>{good, ghost});
    CHECK(r.transactions == 1);
    REQUIRE(r.rejected.size() == 1);
    CHECK(r.rejected[0].code == std::optional<std::string>("unknown_table"));
    CHECK(r.rejected[0].table == std::optional<std::string>("main.ghost"));
    CHECK(r.unknown_table == std::optional<std::uint64_t>(ghost.changes.size()));
    CHECK(n->get("items", key1) == std::nullopt);

    auto m2 = open_with_schema(env, rejecting(delete_policy::insert_revives, 0x55), t);
    const auto alone = m2->apply(ghost);
    REQUIRE(alone.rejected.size() == 1);
    CHECK(alone.rejected[0].table == std::optional<std::string>("main.ghost"));
    CHECK(m2->dump() == before);
}

TEST_CASE_TEMPLATE("events: a listener may remove itself or add another while it is called", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 1000;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x42, t);
    auto& rep = *n;
    int once_calls = 0, later_calls = 0, steady_calls = 0;
    std::size_t once = 0; // replica::listener_id
    once = rep.on_local_change([&](const crdtsync::local_change&) {
        ++once_calls;
        rep.remove_listener(once); // a one-shot listener
        (void)rep.on_local_change([&](const crdtsync::local_change&) { ++later_calls; });
    });
    (void)rep.on_local_change([&](const crdtsync::local_change&) { ++steady_calls; });
    for (int i = 0; i < 3; ++i)
        rep.write([&](auto& tx) { tx.insert("items", row{{"id", value{i}}, {"name", value{"r"}}}); });
    CHECK(once_calls == 1);
    CHECK(steady_calls == 3);
    CHECK(later_calls >= 2); // added during the first write: called for the next two
}

TEST_CASE_TEMPLATE("key identity follows the key columns' collation", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    t.now = epoch_ms + 1000;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x43, t);
    crdtsync::table_def plain{"plain"};
    plain.column("k", crdtsync::column_type::text, false).column("v", crdtsync::column_type::integer).primary_key({"k"});
    n->create_table(plain);

    auto insert = [&](std::uint64_t wall, const std::string& table, const row_key& pk, const row& values) {
        const auto r = n->apply(change_set_builder{at(wall, 0, s1)}.insert(table, pk, values).build());
        REQUIRE(r.rejected.empty());
    };
    // NOCASE: "x" and "X" name one row, which shows the latest spelling.
    insert(epoch_ms + 1, "items", item_key(1, "x"), {{"id", value{1}}, {"name", value{"x"}}, {"a", value{1}}});
    insert(epoch_ms + 2, "items", item_key(1, "X"), {{"id", value{1}}, {"name", value{"X"}}, {"b", value{"B"}}});
    auto rows = n->rows("items");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].at("name") == value{"X"});
    CHECK(rows[0].at("a") == value{1});
    CHECK(rows[0].at("b") == value{"B"});
    CHECK(n->get("items", item_key(1, "x")) == n->get("items", item_key(1, "X")));
    // RTRIM: trailing spaces do not count.
    insert(epoch_ms + 3, "notes", {value{"n"}}, {{"k", value{"n"}}, {"body", value{"one"}}});
    insert(epoch_ms + 4, "notes", {value{"n  "}}, {{"k", value{"n  "}}, {"body", value{"two"}}});
    REQUIRE(n->rows("notes").size() == 1);
    CHECK(n->get("notes", {value{"n "}})->at("body") == value{"two"});
    // BINARY: case matters.
    insert(epoch_ms + 5, "plain", {value{"a"}}, {{"k", value{"a"}}, {"v", value{1}}});
    insert(epoch_ms + 6, "plain", {value{"A"}}, {{"k", value{"A"}}, {"v", value{2}}});
    CHECK(n->rows("plain").size() == 2);
    // A delete spelled differently removes the one row.
    REQUIRE(n->apply(change_set_builder{at(epoch_ms + 7, 0, s2)}.erase("items", item_key(1, "x")).build()).applied == 1);
    CHECK(n->rows("items").empty());
    CHECK_FALSE(n->get("items", item_key(1, "X")));
    // And locally: inserting "X" when "x" exists is a duplicate key.
    n->write([](auto& tx) { tx.insert("items", row{{"id", value{2}}, {"name", value{"y"}}}); });
    check_throws_code<crdtsync::constraint_error>(
        [&] { n->write([](auto& tx) { tx.insert("items", row{{"id", value{2}}, {"name", value{"Y"}}}); }); }, errc::constraint);
}
