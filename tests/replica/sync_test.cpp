// Delta sync: convergence of several replicas under random local writes and
// random, duplicated, dropped and retried exchanges (hub-and-spoke, and a full
// mesh whose messages travel as Quereus JSON text); the relay of a late change with an old HLC; changes_since's echo
// suppression, grouping, paging and tombstone horizon.

#include "support.hpp"

#include <crdtsync/wire/json.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

using namespace replica_tests;
using crdtsync::errc;

#ifndef CRDTSYNC_TEST_PROPERTY_SEEDS
#define CRDTSYNC_TEST_PROPERTY_SEEDS 20
#endif

// ---------------------------------------------------------------------------
// 2. Convergence property

namespace {

enum class topology { hub, mesh };

/// A simulated network of replicas. Each step does one of: a local write
/// transaction on a random replica; a pull request (a delta from one replica
/// to another, put in flight, sometimes dropped or duplicated); delivery of a
/// random message in flight (so in random order); a resend of a dropped one.
/// A receiver applies every message it gets, but advances its position for a
/// source only when the message starts at or before that position, so a gap
/// is never skipped: what was lost is asked for again by the next pull.
/// With `json_wire`, messages travel as the wire codec's JSON text.
template <class Env>
class network {
public:
    network(Env& env, std::uint64_t seed, topology topo, bool persisted_positions, bool json_wire)
        : rng_(seed), topo_(topo), persisted_(persisted_positions), json_(json_wire) {
        policy_ = all_policies[seed % 3];
        const std::size_t n = 3 + seed % 3;
        for (std::size_t i = 0; i < n; ++i) {
            // Clocks disagree by up to +-2 s, well inside the drift bound.
            const auto skew = static_cast<std::int64_t>(rng_() % 4001) - 2000;
            nodes_.push_back(open_node(env, options_for(policy_, static_cast<std::uint8_t>(0x10 + i)), fake_clock{&time_.now, skew}));
            // Offline first: every replica creates the tables itself; the
            // identical definitions merge.
            nodes_.back()->write([](auto& tx) {
                tx.create_table(items_table());
                tx.create_table(notes_table());
            });
        }
    }

    [[nodiscard]] delete_policy policy() const noexcept { return policy_; }
    [[nodiscard]] std::size_t size() const noexcept { return nodes_.size(); }

    void run(int steps) {
        for (int s = 0; s < steps; ++s) {
            time_.now += rng_() % 3;
            const auto r = rng_() % 100;
            if (r < 50) local_transaction(nodes_[rng_() % nodes_.size()]);
            else if (r < 75) request();
            else if (r < 95) deliver_random();
            else if (!dropped_.empty()) {
                in_flight_.push_back(std::move(dropped_.back()));
                dropped_.pop_back();
            }
        }
    }

    /// Delivers what is in flight, then pulls along every link, without loss,
    /// until a whole round moves nothing. Returns the rounds it took.
    int settle() {
        while (!in_flight_.empty()) deliver(take(0));
        for (int round = 1; round <= 20; ++round) {
            std::size_t moved = 0;
            for (auto [to, from] : links()) {
                for (;;) {
                    auto m = make_message(to, from, 1 + rng_() % 64);
                    moved += json_ ? crdtsync::wire::decode_change_sets(m.json).size() : m.sets.size();
                    const bool more = m.more;
                    deliver(std::move(m));
                    if (!more) break;
                }
            }
            if (moved == 0) return round;
        }
        FAIL("the replicas did not become quiescent in 20 rounds");
        return 0;
    }

    /// Checks every replica holds the same replicated state and shows the same rows.
    void check_converged() {
        const auto dump0 = nodes_[0]->dump();
        const auto rows0 = rows_text(*nodes_[0]);
        CHECK(dump0.find("cell ") != std::string::npos); // not vacuous
        CHECK(dump0.find("tomb ") != std::string::npos);
        for (std::size_t i = 1; i < nodes_.size(); ++i) {
            CAPTURE(i);
            CHECK(nodes_[i]->dump() == dump0);
            CHECK(rows_text(*nodes_[i]) == rows0);
        }
        if (persisted_) {
            // What each receiver recorded, its source recorded as acknowledged.
            for (auto [to, from] : links()) {
                CHECK(nodes_[to]->peer(nodes_[from]->site_id()).received_up_to ==
                      nodes_[from]->peer(nodes_[to]->site_id()).sent_up_to);
                CHECK(nodes_[to]->peer(nodes_[from]->site_id()).received_up_to == nodes_[from]->position());
            }
        }
    }

    int local_writes = 0, aborted = 0, refused = 0, delivered = 0, lost = 0;

private:
    struct message {
        std::size_t to = 0, from = 0;
        std::uint64_t from_position = 0, next_position = 0;
        bool more = false;
        std::vector<change_set> sets;
        std::string json; // the sets as wire text, with json_wire
    };

    // ---- topology and positions

    std::vector<std::pair<std::size_t, std::size_t>> links() const {
        std::vector<std::pair<std::size_t, std::size_t>> out;
        for (std::size_t a = 0; a < nodes_.size(); ++a)
            for (std::size_t b = 0; b < nodes_.size(); ++b)
                if (a != b && (topo_ == topology::mesh || a == 0 || b == 0)) out.emplace_back(a, b);
        return out;
    }
    std::uint64_t position(std::size_t to, std::size_t from) {
        if (persisted_) return nodes_[to]->peer(nodes_[from]->site_id()).received_up_to;
        return positions_[{to, from}];
    }
    void advance(std::size_t to, std::size_t from, std::uint64_t p) {
        if (persisted_) {
            nodes_[to]->set_peer_received(nodes_[from]->site_id(), p);
            nodes_[from]->set_peer_sent(nodes_[to]->site_id(), p); // the acknowledgement
        } else {
            positions_[{to, from}] = p;
        }
    }

    // ---- messages

    message make_message(std::size_t to, std::size_t from, std::size_t limit) {
        message m;
        m.to = to;
        m.from = from;
        m.from_position = position(to, from);
        auto d = nodes_[from]->changes_since(nodes_[to]->site_id(), m.from_position, limit);
        REQUIRE_FALSE(d.snapshot_required);
        CHECK(d.next_position >= m.from_position);
        m.next_position = d.next_position;
        m.more = d.more;
        m.sets = std::move(d.change_sets);
        if (json_) {
            m.json = crdtsync::wire::encode_change_sets(m.sets);
            m.sets.clear();
        }
        return m;
    }
    void request() {
        const auto l = links();
        const auto [to, from] = l[rng_() % l.size()];
        auto m = make_message(to, from, 1 + rng_() % 20);
        const auto r = rng_() % 100;
        if (r < 10) { // dropped; half of those are resent later
            ++lost;
            if (r < 5) dropped_.push_back(std::move(m));
            return;
        }
        if (r < 20) in_flight_.push_back(m); // duplicated
        in_flight_.push_back(std::move(m));
    }
    message take(std::size_t i) {
        message m = std::move(in_flight_[i]);
        in_flight_.erase(in_flight_.begin() + static_cast<std::ptrdiff_t>(i));
        return m;
    }
    void deliver_random() {
        if (!in_flight_.empty()) deliver(take(rng_() % in_flight_.size()));
    }
    void deliver(message m) {
        ++delivered;
        if (json_) m.sets = crdtsync::wire::decode_change_sets(m.json);
        const auto res = nodes_[m.to]->apply(m.sets);
        CHECK(res.rejected.empty());
        CHECK(res.transactions == m.sets.size());
        const auto cur = position(m.to, m.from);
        if (m.from_position <= cur && m.next_position > cur) advance(m.to, m.from, m.next_position);
    }

    // ---- local writes

    // A value of the column's declared type, or NULL (one in four).
    value random_value(std::string_view column) {
        if (rng_() % 4 == 0) return value{};
        if (column == "a") return value{static_cast<std::int64_t>(rng_() % 4)};
        if (column == "c") return value{static_cast<double>(rng_() % 4) / 2};
        return value{std::string(1, static_cast<char>('p' + rng_() % 3))};
    }
    row_key random_item_key() {
        static const char* names[] = {"x", "X", "y"};
        return item_key(static_cast<std::int64_t>(1 + rng_() % 4), names[rng_() % 3]);
    }
    row random_item_columns() {
        static const char* cols[] = {"a", "b", "c"};
        row out;
        const int n = 1 + static_cast<int>(rng_() % 3);
        for (int i = 0; i < n; ++i) {
            const std::string col = cols[rng_() % 3];
            out[col] = random_value(col);
        }
        return out;
    }

    template <class Tx>
    void item_op(Tx& tx) {
        const auto pk = random_item_key();
        const bool visible = tx.get("items", pk).has_value();
        switch (rng_() % 7) {
        case 0:
        case 1: // insert, or a re-insert of a deleted key; update when visible
            if (visible) (void)tx.update("items", pk, random_item_columns());
            else {
                row r = random_item_columns();
                r["id"] = pk[0];
                r["name"] = pk[1];
                tx.insert("items", r);
            }
            break;
        case 2:
        case 3: // update
            (void)tx.update("items", pk, random_item_columns());
            break;
        case 4: // re-spell the NOCASE key ("x" <-> "X"): a plain cell update
            if (pk[1].as_text() != "y") (void)tx.update("items", pk, row{{"name", value{pk[1].as_text() == "x" ? "X" : "x"}}});
            break;
        case 5: // change the key: a delete of the old row and an insert of the new one
            if (visible && !tx.get("items", item_key(pk[0].as_integer() + 10, pk[1].as_text())))
                (void)tx.update("items", pk, row{{"id", value{pk[0].as_integer() + 10}}});
            break;
        default: (void)tx.erase("items", pk);
        }
    }
    template <class Tx>
    void note_op(Tx& tx) {
        static const char* keys[] = {"n", "n ", "m"};
        const std::string k = keys[rng_() % 3];
        const row_key pk{value{k}};
        if (rng_() % 3 == 0) {
            (void)tx.erase("notes", pk);
        } else if (tx.get("notes", pk)) {
            (void)tx.update("notes", pk, row{{"body", random_value("body")}});
        } else {
            tx.insert("notes", row{{"k", value{k}}, {"body", value{"made"}}});
        }
    }

    struct abandon {};

    void local_transaction(node_t<Env>& n) {
        const int ops = 1 + static_cast<int>(rng_() % 3);
        const bool abandoned = rng_() % 20 == 0;
        const auto ops_seed = rng_();
        const std::mt19937_64 saved = rng_;
        try {
            n->write([&](auto& tx) {
                // The body runs again if the store was full and grew: it
                // draws the same operations each time.
                rng_.seed(ops_seed);
                for (int i = 0; i < ops; ++i) {
                    if (rng_() % 4 == 0) note_op(tx);
                    else item_op(tx);
                }
                if (abandoned) throw abandon{};
            });
            ++local_writes;
        } catch (const abandon&) {
            ++aborted;
        } catch (const crdtsync::constraint_error& e) {
            // Only delete_wins refuses writes here: re-inserting a deleted key.
            CHECK_MESSAGE(policy_ == delete_policy::delete_wins, e.what());
            ++refused;
        }
        rng_ = saved;
    }

    sim_time time_;
    std::mt19937_64 rng_;
    topology topo_;
    bool persisted_;
    bool json_;
    delete_policy policy_;
    std::vector<node_t<Env>> nodes_;
    std::map<std::pair<std::size_t, std::size_t>, std::uint64_t> positions_;
    std::vector<message> in_flight_, dropped_;
};

} // namespace

TEST_CASE_TEMPLATE("convergence: random writes, random delivery with loss and duplicates", Env, CRDTSYNC_TEST_STORES) {
    const auto seeds = env_number("CRDTSYNC_PROPERTY_SEEDS", CRDTSYNC_TEST_PROPERTY_SEEDS);
    const int steps = static_cast<int>(env_number("CRDTSYNC_PROPERTY_STEPS", 3000));
    for (long s = 0; s < seeds; ++s) {
        const auto seed = static_cast<std::uint64_t>(s) + 1;
        for (const auto topo : {topology::hub, topology::mesh}) {
            // Hub and spokes: peer positions live in the replicas
            // (set_peer_received / set_peer_sent), messages are change_set
            // objects. Full mesh: positions live in the test, messages are
            // Quereus JSON text.
            const bool hub = topo == topology::hub;
            const std::string run = "seed " + std::to_string(seed) + (hub ? ", hub and spokes" : ", full mesh over JSON");
            INFO(run);
            Env env;
            network<Env> net{env, seed, topo, hub, !hub};
            CAPTURE(crdtsync::to_text(net.policy()));
            CAPTURE(net.size());
            net.run(steps);
            const int rounds = net.settle();
            CAPTURE(rounds);
            net.check_converged();
            CHECK(net.local_writes + net.refused + net.aborted > steps / 3);
            CHECK(net.local_writes > steps / 10);
            CHECK(net.delivered > 0);
            if (net.policy() != delete_policy::delete_wins) CHECK(net.refused == 0);
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Relay of a late change with an old HLC

TEST_CASE_TEMPLATE("relay: a late change with an old HLC still reaches every peer", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0x0a), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
    // C's clock runs 30 s behind (inside the 60 s drift bound).
    auto c = open_node(env, options_for(delete_policy::insert_revives, 0x0c), fake_clock{&t.now, -30'000});

    // A and B share a table and write; A pulls from B only.
    a->create_table(items_table());
    std::uint64_t b_from_a = 0, a_from_b = 0;
    auto pull = [](auto& to, auto& from, std::uint64_t& pos) {
        const auto d = from->changes_since(to->site_id(), pos, 1000);
        REQUIRE_FALSE(d.snapshot_required);
        REQUIRE_FALSE(d.more);
        REQUIRE(to->apply(d.change_sets).rejected.empty());
        pos = d.next_position;
        return d.change_sets;
    };
    a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"a"}}}); });
    (void)pull(b, a, b_from_a);
    t.now += 10;
    b->write([](auto& tx) { tx.insert("items", row{{"id", value{2}}, {"name", value{"b"}}}); });
    const auto first = pull(a, b, a_from_b);
    REQUIRE(first.size() == 1); // B's insert; A's own changes are not echoed
    // An HLC watermark: the greatest HLC A has received from B.
    const hlc watermark = first.back().version;
    const auto position_after_first = a_from_b;

    // C, offline and behind, creates the table and writes; B gets it late.
    c->write([](auto& tx) {
        tx.create_table(items_table());
        tx.insert("items", row{{"id", value{3}}, {"name", value{"c"}}});
    });
    const hlc c_version = changes_of(*c).back().version;
    CHECK(c_version < watermark); // older than what A already has from B
    std::uint64_t b_from_c = 0;
    (void)pull(b, c, b_from_c);

    // A pulls from B from its position: C's change is there, after it.
    const auto second = pull(a, b, a_from_b);
    REQUIRE(second.size() == 1);
    CHECK(second[0].origin == c->site_id());
    CHECK(second[0].version == c_version);
    CHECK(a_from_b > position_after_first);
    CHECK(a->get("items", item_key(3, "c")));
    CHECK(a->find_table("items"));

    // What an HLC watermark would have sent A: nothing of C's.
    std::size_t above_watermark = 0;
    for (const auto& cs : changes_of(*b, 0, a->site_id()))
        if (cs.version > watermark) ++above_watermark;
    CHECK(above_watermark == 0);

    // A and B now hold the same state.
    (void)pull(b, a, b_from_a);
    CHECK(a->dump() == b->dump());
    CHECK(a->rows("items").size() == 3);
}

// ---------------------------------------------------------------------------
// 8. changes_since details

namespace {

/// The HLC of every fact and migration of `cs`, in order.
std::vector<hlc> versions_of(const change_set& cs) {
    std::vector<hlc> out;
    for (const auto& m : cs.migrations) out.push_back(m.version);
    for (const auto& c : cs.changes) out.push_back(crdtsync::version_of(c));
    return out;
}

/// Checks `cs` is one source transaction: every fact carries its (wall,
/// counter, site), op_seq strictly increases, and the header fields agree.
void check_one_transaction(const change_set& cs) {
    const auto vs = versions_of(cs);
    REQUIRE_FALSE(vs.empty());
    hlc max = vs[0];
    for (std::size_t i = 0; i < vs.size(); ++i) {
        CHECK(vs[i].same_transaction(cs.version));
        max = std::max(max, vs[i]);
    }
    for (std::size_t i = 1; i < cs.changes.size(); ++i)
        CHECK(crdtsync::version_of(cs.changes[i - 1]).op_seq < crdtsync::version_of(cs.changes[i]).op_seq);
    CHECK(cs.version == max);
    CHECK(cs.origin == cs.version.site);
    CHECK(cs.transaction_id == cs.version.transaction_id());
}

std::size_t facts_of(const change_set& cs) { return cs.changes.size() + cs.migrations.size(); }

} // namespace

TEST_CASE_TEMPLATE("changes_since: never echoes a peer's own changes", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0x0a), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
    const auto c_site = site_of(0x0c);
    a->create_table(items_table());
    a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"a"}}}); });
    REQUIRE(b->apply(changes_of(*a, 0, b->site_id())).rejected.empty());
    t.now += 1;
    b->write([](auto& tx) { tx.insert("items", row{{"id", value{2}}, {"name", value{"b"}}}); });
    b->write([](auto& tx) { CHECK(tx.update("items", item_key(1, "a"), row{{"a", value{5}}})); });

    const auto to_a = b->changes_since(a->site_id(), 0, 1000);
    CHECK_FALSE(to_a.more);
    REQUIRE(to_a.change_sets.size() == 2);
    for (const auto& cs : to_a.change_sets) {
        CHECK(cs.origin == b->site_id());
        for (const auto& v : versions_of(cs)) CHECK(v.site == b->site_id());
    }
    // The position covers the skipped echoes too.
    CHECK(to_a.next_position == b->position());
    CHECK(b->changes_since(a->site_id(), to_a.next_position).change_sets.empty());

    // A third peer gets both A's and B's changes.
    const auto to_c = b->changes_since(c_site, 0, 1000);
    std::size_t from_a = 0;
    for (const auto& cs : to_c.change_sets) from_a += cs.origin == a->site_id();
    CHECK(from_a == 2); // A's create_table and A's insert
    CHECK(to_c.change_sets.size() == 4);
}

TEST_CASE_TEMPLATE("changes_since: one change set per source transaction, facts in op_seq order", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0x0a), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
    std::vector<std::string> local_ids;
    a->on_local_change([&](const crdtsync::local_change& c) { local_ids.push_back(c.changes.transaction_id); });

    a->create_table(items_table()); // 1 migration
    a->write([](auto& tx) {         // 10 facts, of which b and c of (1, a) and all of (2, b) are later superseded
        tx.insert("items", row{{"id", value{1}}, {"name", value{"a"}}, {"a", value{1}}});
        tx.insert("items", row{{"id", value{2}}, {"name", value{"b"}}});
    });
    a->write([](auto& tx) { // 3 facts: two updates and a delete
        CHECK(tx.update("items", item_key(1, "a"), row{{"b", value{"u"}}, {"c", value{2.5}}}));
        CHECK(tx.erase("items", item_key(2, "b")));
    });
    a->write([](auto& tx) { // a migration and 2 facts in one transaction
        tx.create_table(notes_table());
        tx.insert("notes", row{{"k", value{"n"}}, {"body", value{"hi"}}});
    });
    REQUIRE(local_ids.size() == 4);

    const auto sets = changes_of(*a);
    REQUIRE(sets.size() == 4);
    const std::size_t expected_facts[] = {1, 3, 3, 3};
    for (std::size_t i = 0; i < sets.size(); ++i) {
        CAPTURE(i);
        check_one_transaction(sets[i]);
        CHECK(sets[i].transaction_id == local_ids[i]);
        CHECK(facts_of(sets[i]) == expected_facts[i]);
    }
    CHECK(sets[2].changes.size() == 3);
    CHECK(std::holds_alternative<row_delete>(sets[2].changes[2]));
    CHECK(sets[3].migrations.size() == 1);

    // A relay regroups what it received the same way.
    REQUIRE(b->apply(sets).rejected.empty());
    const auto relayed = changes_of(*b);
    REQUIRE(relayed.size() == sets.size());
    for (std::size_t i = 0; i < sets.size(); ++i) {
        CAPTURE(i);
        check_one_transaction(relayed[i]);
        CHECK(relayed[i].transaction_id == sets[i].transaction_id);
        CHECK(versions_of(relayed[i]) == versions_of(sets[i]));
    }
}

TEST_CASE_TEMPLATE("changes_since: the limit cuts at transaction boundaries; paging reaches everything", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0x0a), fake_clock{&t.now});
    a->create_table(items_table());
    for (int i = 0; i < 8; ++i)
        a->write([&](auto& tx) { tx.insert("items", row{{"id", value{i}}, {"name", value{"r"}}}); }); // 5 facts each
    const auto all = changes_of(*a);
    REQUIRE(all.size() == 9);

    for (const std::size_t limit : {1, 2, 5, 6, 7, 11, 40, 41, 1000}) {
        CAPTURE(limit);
        std::vector<change_set> paged;
        std::uint64_t pos = 0;
        int pages = 0;
        for (;;) {
            const auto d = a->changes_since(site_of(0x0b), pos, limit);
            REQUIRE_FALSE(d.snapshot_required);
            ++pages;
            REQUIRE(pages <= 20);
            std::size_t facts = 0;
            for (const auto& cs : d.change_sets) facts += facts_of(cs);
            if (d.more) {
                // Full: at least `limit` facts, and without its last change set fewer.
                CHECK(facts >= limit);
                REQUIRE_FALSE(d.change_sets.empty());
                CHECK(facts - facts_of(d.change_sets.back()) < limit);
                CHECK(d.next_position > pos);
            }
            paged.insert(paged.end(), d.change_sets.begin(), d.change_sets.end());
            pos = d.next_position;
            if (!d.more) break;
        }
        CHECK(paged == all); // whole transactions, nothing lost or repeated
        CHECK(pos == a->position());
        if (limit == 1) CHECK(pages == 9);
        if (limit >= 41) CHECK(pages == 1);
    }
    // A transaction larger than the limit is not split.
    REQUIRE(all[0].migrations.size() == 1);
    const auto d = a->changes_since(site_of(0x0b), 1, 2); // after the create_table at position 1
    REQUIRE(d.change_sets.size() == 1);
    CHECK(d.change_sets[0].changes.size() == 5);
    CHECK(d.more);
}

TEST_CASE_TEMPLATE("tombstone GC: prune by arrival age; a position before the horizon needs a snapshot", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto opts = options_for(delete_policy::insert_revives, 0x0a);
    opts.tombstone_retention = std::chrono::milliseconds(1000);
    auto a = open_node(env, opts, fake_clock{&t.now});
    const auto peer = site_of(0x0b);
    a->create_table(items_table());
    for (int i = 1; i <= 3; ++i)
        a->write([&](auto& tx) { tx.insert("items", row{{"id", value{i}}, {"name", value{"r"}}}); });
    const auto before_deletes = a->position();
    a->write([](auto& tx) { CHECK(tx.erase("items", item_key(1, "r"))); });
    const auto first_delete = a->position();
    t.now += 500;
    a->write([](auto& tx) { CHECK(tx.erase("items", item_key(2, "r"))); });
    const auto second_delete = a->position();
    // A delete that arrives now with a very old HLC is young by arrival.
    const auto old = change_set_builder{at(t.now - 86'400'000, 0, site_of(0x0c))}.erase("items", item_key(3, "r")).build();
    CHECK(a->apply(old).applied == 1);
    CHECK(a->prune_tombstones() == 0); // nothing older than 1 s yet
    CHECK(a->gc_horizon() == 0);

    t.now += 700; // the first delete is 1.2 s old, the others 0.7 s
    CHECK(a->prune_tombstones() == 1);
    CHECK(a->gc_horizon() == first_delete);
    const auto dump = a->dump();
    std::size_t tombs = 0;
    for (std::size_t p = dump.find("tomb "); p != std::string::npos; p = dump.find("tomb ", p + 1)) ++tombs;
    CHECK(tombs == 2);

    // Before the horizon: a snapshot is required, and no change set is given.
    for (const auto pos : {std::uint64_t{1}, before_deletes, first_delete - 1}) {
        CAPTURE(pos);
        const auto d = a->changes_since(peer, pos);
        CHECK(d.snapshot_required);
        CHECK(d.change_sets.empty());
        CHECK_FALSE(d.more);
    }
    // Position 0 (a full transfer) and positions at or after the horizon work.
    const auto full = a->changes_since(peer, 0);
    CHECK_FALSE(full.snapshot_required);
    CHECK_FALSE(full.change_sets.empty());
    for (const auto pos : {first_delete, second_delete}) {
        CAPTURE(pos);
        const auto d = a->changes_since(peer, pos);
        CHECK_FALSE(d.snapshot_required);
    }
    const auto after = a->changes_since(peer, first_delete);
    REQUIRE(after.change_sets.size() == 2); // the second delete and the old one
    CHECK(std::holds_alternative<row_delete>(after.change_sets[0].changes[0]));

    // Everything old enough goes; the horizon moves up.
    t.now += 1000;
    CHECK(a->prune_tombstones() == 2);
    CHECK(a->gc_horizon() == a->position());
    CHECK(a->changes_since(peer, second_delete).snapshot_required);
    CHECK(a->prune_tombstones() == 0);
}

TEST_CASE_TEMPLATE("tombstone GC: after pruning, a key deleted under delete_wins can be inserted again", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto opts = options_for(delete_policy::delete_wins, 0x0a);
    opts.tombstone_retention = std::chrono::milliseconds(1000);
    auto a = open_node(env, opts, fake_clock{&t.now});
    a->create_table(items_table());
    a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"r"}}}); });
    a->write([](auto& tx) { CHECK(tx.erase("items", item_key(1, "r"))); });
    check_throws_code<crdtsync::constraint_error>(
        [&] { a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"r"}}}); }); }, errc::constraint);
    t.now += 2000;
    REQUIRE(a->prune_tombstones() == 1);
    // "A delete is final until its tombstone is pruned."
    a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"r"}}, {"a", value{9}}}); });
    const auto r = a->get("items", item_key(1, "r"));
    REQUIRE(r);
    CHECK(r->at("a") == value{9});
    CHECK(a->rows("items").size() == 1);
}

// ---------------------------------------------------------------------------
// The sync loop an app writes: changes_for / apply_from / acknowledge.

TEST_CASE_TEMPLATE("sync loop: changes_for, apply_from and acknowledge keep both positions", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = open_with_schema(env, delete_policy::insert_revives, 0x10, t);
    auto b = open_with_schema(env, rejecting(delete_policy::insert_revives, 0x20), t);
    auto sync = [&](auto& from, auto& to) {
        const auto d = from->changes_for(to->site_id());
        const auto r = to->apply_from(from->site_id(), d);
        if (r.rejected.empty()) from->acknowledge(to->site_id(), d.next_position);
        return r;
    };
    a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{1}}}); });
    CHECK(sync(a, b).applied > 0);
    CHECK(b->rows("items").size() == 1);
    CHECK(a->peer(b->site_id()).sent_up_to == a->position());
    CHECK(b->peer(a->site_id()).received_up_to == a->position());
    // Nothing new: nothing sent.
    CHECK(a->changes_for(b->site_id()).change_sets.empty());
    // An older acknowledgement does not move the position back.
    a->acknowledge(b->site_id(), 1);
    CHECK(a->peer(b->site_id()).sent_up_to == a->position());
    // A rejected change set keeps the receiver's position where it was.
    const auto before = b->peer(a->site_id()).received_up_to;
    a->write([](auto& tx) { tx.create_table(crdtsync::table_def{"extra"}.column("k", crdtsync::column_type::integer, false).primary_key({"k"})); });
    a->write([](auto& tx) { tx.insert("extra", row{{"k", value{1}}}); });
    auto d = a->changes_for(b->site_id());
    REQUIRE(d.change_sets.size() == 2);
    d.change_sets.erase(d.change_sets.begin()); // lost the creation: the insert is rejected
    std::vector<crdtsync::rejection> seen;
    b->on_rejected([&](const crdtsync::rejection& r) { seen.push_back(r); });
    const auto r = b->apply_from(a->site_id(), d);
    REQUIRE(r.rejected.size() == 1);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == r.rejected[0]);
    CHECK(seen[0].code == "unknown_table");
    CHECK(b->peer(a->site_id()).received_up_to == before);
    CHECK(a->peer(b->site_id()).sent_up_to < a->position()); // not acknowledged: offered again
    CHECK(sync(a, b).rejected.empty());
    CHECK(b->rows("extra").size() == 1);
    CHECK(a->dump() == b->dump());
}
