// Clock faults: the wall clock jumping back an hour, forward a day, standing
// still for 100,000 transactions, a peer beyond the drift bound, and the
// clock at the end of its range. Local timestamps must stay strictly
// increasing, a remote timestamp beyond the bound must be refused with a
// typed answer, the counter must carry rather than wrap, and a refusal must
// leave every stored byte as it was. On every store model (support.hpp).
//
// docs/clock.md states the rules; tests/core/hlc_clock_test.cpp checks the
// clock alone. Here the replica is in the loop: its persisted clock, its
// validation, its transactions.

#include "replica/support.hpp"

#include <limits>

namespace replica_tests {
namespace {

using crdtsync::errc;
using crdtsync::local_change;
using crdtsync::rejection;

constexpr std::uint64_t hour_ms = 3'600'000;
constexpr std::uint64_t day_ms = 24 * hour_ms;
constexpr std::uint64_t drift_ms = crdtsync::default_max_drift_ms;

/// Every key and value in the store, in order, in hex, a line each: what
/// "nothing stored changed" compares (the dump leaves out the clock, the
/// change log, the peers). Leaves out the generation counter (meta "gen"),
/// which every commit bumps so that other processes re-read the replica,
/// a commit that changed nothing too, and the records of peers when
/// `with_peers` is false.
template <class Store>
std::string raw(Store& store, bool with_peers = true) {
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
        if (k == "mgen" || (!with_peers && k.front() == 'p')) return true;
        hex(out, k);
        out += " = ";
        hex(out, v);
        out += "\n";
        return true;
    });
    return out;
}

/// Watches a replica's local change sets: each transaction's HLC must be
/// strictly greater than the one before (in wall time and counter, the HLC
/// proper), never below the physical clock at the time, and shared by all
/// its facts. Counts rather than CHECKs, to stay quick over 100,000
/// transactions.
struct hlc_watch {
    const sim_time* t = nullptr;
    std::int64_t skew = 0;
    std::optional<hlc> last;
    std::vector<hlc> all;
    std::size_t not_increasing = 0, below_physical = 0, split = 0;

    void operator()(const local_change& c) {
        const hlc base = c.changes.version.with_op_seq(0);
        for (const auto& f : c.changes.changes)
            if (!crdtsync::version_of(f).same_transaction(base)) ++split;
        if (last && !(*last < base)) ++not_increasing;
        if (base.wall_time < static_cast<std::uint64_t>(static_cast<std::int64_t>(t->now) + skew)) ++below_physical;
        last = base;
        all.push_back(base);
    }
    void check_clean() const {
        CHECK(not_increasing == 0);
        CHECK(below_physical == 0);
        CHECK(split == 0);
    }
};

/// One transaction on `n`: item (1, "x") gets a = i (a new value each time,
/// so every transaction records a fact and ticks the clock).
template <class N>
void bump(N& n, std::int64_t i) {
    n->write([&](auto& tx) {
        if (!tx.update("items", item_key(1, "x"), row{{"a", value{i}}}))
            tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{i}}});
    });
}

/// A change set from site `s` at `base` setting item (2, "r").a = v.
change_set remote_write(const hlc& base, std::int64_t v) {
    return change_set_builder{base}.set("items", item_key(2, "r"), "a", value{v}).build();
}

const site_id peer_site = site_of(0x7e);

} // namespace

TEST_CASE_TEMPLATE("clock faults: back an hour, forward a day, back again: local HLCs strictly increase, "
                   "later writes still win, and a restart keeps the clock",
                   Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x61, t);
    hlc_watch watch{&t, 0, {}, {}, 0, 0, 0};
    n->on_local_change(std::ref(watch));
    std::int64_t i = 0;

    for (int k = 0; k < 500; ++k, t.now += 1) bump(n, ++i);
    const hlc before_jump = n->clock();

    // Back an hour: the HLC keeps its wall time and counts up.
    t.now -= hour_ms;
    for (int k = 0; k < 500; ++k, t.now += 1) bump(n, ++i);
    CHECK(n->clock().wall_time == before_jump.wall_time);
    CHECK(n->clock().counter == 500);
    // The write made after the jump is the one that shows: the replica's
    // own newer write beats its older one whatever the wall clock says.
    CHECK(n->get("items", item_key(1, "x"))->at("a") == value{i});

    // Forward a day: the physical clock takes over again.
    t.now += day_ms;
    for (int k = 0; k < 500; ++k) bump(n, ++i);
    CHECK(n->clock().wall_time == t.now);
    CHECK(n->clock().counter == 499);

    // Back a day (the clock is fixed): the HLC stays a day ahead, counting.
    const hlc day_ahead = n->clock();
    t.now -= day_ms;
    for (int k = 0; k < 500; ++k, t.now += 7) bump(n, ++i);
    CHECK(n->clock().wall_time == day_ahead.wall_time);
    CHECK(n->clock().counter == day_ahead.counter + 500);
    CHECK(n->get("items", item_key(1, "x"))->at("a") == value{i});

    // A restart with the clock still behind: the persisted clock goes on
    // from where it was, not from the physical clock.
    const hlc at_close = n->clock();
    n.rep.reset();
    n.rep = std::make_unique<replica_t<typename Env::store_type>>(*n.store, options_for(delete_policy::insert_revives, 0x61),
                                                                fake_clock{&t.now});
    CHECK(n->clock() == at_close);
    n->on_local_change(std::ref(watch));
    t.now -= hour_ms; // and back another hour while it was down
    for (int k = 0; k < 100; ++k) bump(n, ++i);
    CHECK(n->clock().wall_time == at_close.wall_time);
    CHECK(n->clock().counter == at_close.counter + 100);

    CHECK(watch.all.size() == 2100);
    // No physical check across the backward jumps: the HLC is ahead there
    // by design; `below_physical` counts only when it is behind.
    watch.check_clean();
    CHECK(n->get("items", item_key(1, "x"))->at("a") == value{i});

    // Every one of those change sets reaches a peer whose clock reads the
    // latest time the replica's HLC shows, and the peer ends on the last
    // value.
    sim_time peer_time{n->clock().wall_time};
    auto peer = open_with_schema(env, delete_policy::insert_revives, 0x62, peer_time);
    const auto res = peer->apply(changes_of(*n));
    CHECK(res.rejected.empty());
    CHECK(peer->get("items", item_key(1, "x"))->at("a") == value{i});
    CHECK(peer->dump() == n->dump());
}

TEST_CASE_TEMPLATE("clock faults: the wall clock stands still for 100,000 transactions: the counter carries into "
                   "the wall time, never wraps",
                   Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x63, t);
    hlc_watch watch{&t, 0, {}, {}, 0, 0, 0};
    n->on_local_change(std::ref(watch));
    constexpr std::int64_t count = 100'000;
    for (std::int64_t i = 1; i <= count; ++i) bump(n, i);

    REQUIRE(watch.all.size() == static_cast<std::size_t>(count));
    watch.check_clean();
    // Transaction k is exactly k steps after the first in (wall, counter),
    // counting 65,536 counter values per millisecond: the 65,536th step
    // carries into the wall time (counter 0), it does not wrap back.
    const hlc first = watch.all.front();
    std::size_t off_step = 0;
    for (std::size_t k = 0; k < watch.all.size(); ++k) {
        const std::uint64_t steps = first.counter + k;
        const hlc& h = watch.all[k];
        if (h.wall_time != first.wall_time + steps / 65'536 || h.counter != steps % 65'536) ++off_step;
    }
    CHECK(off_step == 0);
    CHECK(first.wall_time == t.now);
    CHECK(n->clock().wall_time == t.now + (first.counter + count - 1) / 65'536);
    CHECK(n->clock().wall_time == t.now + 1); // one carry: 1 ms ahead of the clock that stood still

    // The carried HLCs are 1 ms ahead of the physical clock, well within a
    // peer's drift bound: a peer on the same clock takes all of them.
    auto peer = open_with_schema(env, delete_policy::insert_revives, 0x64, t);
    const auto res = peer->apply(changes_of(*n));
    CHECK(res.rejected.empty());
    CHECK(peer->get("items", item_key(1, "x"))->at("a") == value{count});
    CHECK(peer->dump() == n->dump());
}

TEST_CASE_TEMPLATE("clock faults: a counter overflow at the end of the clock's range is clock_overflow, and nothing "
                   "stored changes",
                   Env, CRDTSYNC_TEST_STORES) {
    // The only overflow the clock cannot carry: the wall time at 2^64 - 1
    // and the counter full. 65,536 transactions in that last millisecond
    // fill the counter; the next one is refused.
    constexpr std::uint64_t end_of_time = std::numeric_limits<std::uint64_t>::max();
    sim_time t;
    Env env;
    auto n = open_with_schema(env, delete_policy::insert_revives, 0x65, t);
    bump(n, 0);
    t.now = end_of_time;
    hlc_watch watch{&t, 0, {}, {}, 0, 0, 0};
    n->on_local_change(std::ref(watch));
    for (std::int64_t i = 1; i <= 65'536; ++i) bump(n, i);
    REQUIRE(watch.all.size() == 65'536);
    watch.check_clean();
    CHECK(watch.all.front() == at(end_of_time, 0, n->site_id()));
    CHECK(n->clock() == at(end_of_time, 65'535, n->site_id()));

    const auto dump = n->dump();
    const auto stored = raw(*n.store);
    const auto clock = n->clock();
    const auto position = n->position();
    const auto unchanged = [&] {
        CHECK(n->dump() == dump);
        CHECK(raw(*n.store) == stored);
        CHECK(n->clock() == clock);
        CHECK(n->position() == position);
    };

    // A local transaction: clock_error with errc::clock_overflow.
    check_throws_code<crdtsync::clock_error>([&] { bump(n, 65'537); }, errc::clock_overflow);
    unchanged();
    CHECK(watch.all.size() == 65'536); // no local change was reported

    // A remote change set that would move the clock past its end: within
    // the drift bound (nothing is ahead of the end of time), so it passes
    // validation, and folding its HLC into the clock fails: `apply` throws
    // clock_error for the whole batch and the transaction is aborted, the
    // good change set before it included.
    const auto good = remote_write(at(end_of_time - 5, 0, peer_site), 1);
    const auto last = remote_write(at(end_of_time, 65'535, site_of(0x7f)), 2);
    check_throws_code<crdtsync::clock_error>([&] { (void)n->apply(std::vector<change_set>{good, last}); },
                                             errc::clock_overflow);
    unchanged();
    CHECK_FALSE(n->get("items", item_key(2, "r")));

    // The replica still reads, and still takes what does not move its clock
    // past the end... which is nothing: every apply folds an HLC into the
    // clock. It stays refused, typed, and unchanged.
    check_throws_code<crdtsync::clock_error>([&] { (void)n->apply(good); }, errc::clock_overflow);
    unchanged();
    CHECK(n->get("items", item_key(1, "x"))->at("a") == value{65'536});
}

TEST_CASE_TEMPLATE("clock faults: a peer's clock a day ahead: its change sets are rejected with clock_drift, whole, "
                   "and nothing stored changes until the clocks agree",
                   Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto local = open_with_schema(env, delete_policy::insert_revives, 0x66, t);
    bump(local, 1);
    // The peer's clock runs a day ahead (skew), then is fixed (skew 0):
    // its HLC stays a day ahead until real time catches up.
    sim_time peer_t{t.now + day_ms};
    auto peer = open_with_schema(env, delete_policy::insert_revives, 0x67, peer_t);
    REQUIRE(peer->apply(changes_of(*local)).rejected.empty());
    peer->write([&](auto& tx) {
        tx.insert("items", row{{"id", value{2}}, {"name", value{"r"}}, {"a", value{10}}});
        tx.update("items", item_key(1, "x"), row{{"b", value{"from the future"}}});
    });
    peer_t.now = t.now; // the peer's clock is set right
    peer->write([&](auto& tx) { tx.update("items", item_key(2, "r"), row{{"a", value{11}}}); });
    CHECK(peer->clock().wall_time == t.now + day_ms); // still a day ahead

    std::vector<rejection> events;
    local->on_rejected([&](const rejection& r) { events.push_back(r); });
    const auto dump = local->dump();
    const auto stored = raw(*local.store);
    const auto clock = local->clock();
    const auto position = local->position();

    const auto d = peer->changes_since(local->site_id(), 0);
    std::vector<change_set> ahead; // the peer's own two, not the schema it relays
    for (const auto& cs : d.change_sets)
        if (cs.version.wall_time > t.now + drift_ms) ahead.push_back(cs);
    REQUIRE(ahead.size() == 2);
    const auto res = local->apply(ahead);
    // What the API does: no exception; each change set ahead of the bound
    // is in `rejected` with code "clock_drift", its transaction id, and a
    // reason naming the HLC's wall time and how far ahead it is. The
    // rejection does not name the fact's table or column (those are set for
    // unknown_table / unknown_column only).
    REQUIRE(res.rejected.size() == 2);
    for (std::size_t k = 0; k < 2; ++k) {
        const auto& rj = res.rejected[k];
        CHECK(rj.code == std::optional<std::string>("clock_drift"));
        CHECK(rj.transaction_id == ahead[k].transaction_id);
        CHECK(rj.reason == "remote HLC wall time " + std::to_string(ahead[k].version.wall_time) + " is " +
                               std::to_string(ahead[k].version.wall_time - t.now) +
                               " ms ahead of the local clock; the bound is 60000 ms");
        CHECK_FALSE(rj.table.has_value());
        CHECK_FALSE(rj.column.has_value());
    }
    CHECK(events == res.rejected); // the on_rejected event says the same
    CHECK(res.transactions == 0);
    CHECK(res.applied + res.skipped + res.conflicts == 0);
    // Nothing stored changed: not the data, the clock, the log, the peers.
    CHECK(local->dump() == dump);
    CHECK(local->clock() == clock);
    CHECK(local->position() == position);
    CHECK(raw(*local.store) == stored);
    CHECK_FALSE(local->get("items", item_key(2, "r")));

    // Through the sync loop, with the schema the peer relays: the two are
    // rejected again, and the position from the peer does not pass them.
    const auto res2 = local->apply_from(peer->site_id(), d);
    CHECK(res2.rejected == res.rejected);
    CHECK(res2.transactions == d.change_sets.size() - 2);
    CHECK(res2.applied == 0); // the others were known already
    CHECK(local->peer(peer->site_id()).received_up_to == 0);
    CHECK(local->dump() == dump);

    // The local clock moves up to the bound: still refused one ms before,
    // accepted at it (the bound is measured from the physical clock).
    const std::uint64_t newest = peer->clock().wall_time;
    t.now = newest - drift_ms - 1;
    CHECK(local->apply_from(peer->site_id(), peer->changes_since(local->site_id(), 0)).rejected.size() == 2);
    CHECK(local->dump() == dump);
    t.now = newest - drift_ms;
    const auto later = local->apply_from(peer->site_id(), peer->changes_since(local->site_id(), 0));
    CHECK(later.rejected.empty());
    CHECK(local->get("items", item_key(2, "r"))->at("a") == value{11});
    CHECK(local->get("items", item_key(1, "x"))->at("b") == value{"from the future"});
    CHECK(local->dump() == peer->dump());
    CHECK(local->clock().wall_time == newest); // the receive rule pulled it up to the peer's HLC
}

TEST_CASE_TEMPLATE("clock faults: a replica whose clock went back an hour refuses its peers' change sets until the "
                   "clock is right, and loses none",
                   Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = open_with_schema(env, delete_policy::insert_revives, 0x68, t);
    sim_time b_t{t.now};
    auto b = open_with_schema(env, delete_policy::insert_revives, 0x69, b_t);
    b_t.now -= hour_ms; // b's clock goes back an hour
    t.now += 10;
    bump(a, 1);
    bump(b, 2); // b's write: older than a's by the HLC
    const auto b_dump = b->dump();
    const auto b_stored = raw(*b.store, false);

    // a's change sets are an hour ahead of b's physical clock: refused.
    // So is the schema a relays, written at the time b's clock left.
    const auto to_b = a->changes_since(b->site_id(), 0);
    const auto res = b->apply_from(a->site_id(), to_b);
    REQUIRE(res.rejected.size() == to_b.change_sets.size());
    for (const auto& rj : res.rejected) CHECK(rj.code == std::optional<std::string>("clock_drift"));
    CHECK(b->dump() == b_dump);
    CHECK(raw(*b.store, false) == b_stored);
    // apply_from wrote a's peer record, as it was: nothing received.
    CHECK(b->peer(a->site_id()) == crdtsync::peer_state{});

    // b's change sets are behind a's clock, which is fine: a takes them,
    // and its own write (newer by the HLC) keeps the cell.
    CHECK(a->apply_from(b->site_id(), b->changes_since(a->site_id(), 0)).rejected.empty());
    CHECK(a->get("items", item_key(1, "x"))->at("a") == value{1});

    // b's clock is set right: the same delta applies, and both converge.
    b_t.now = t.now;
    CHECK(b->apply_from(a->site_id(), a->changes_since(b->site_id(), 0)).rejected.empty());
    CHECK(b->get("items", item_key(1, "x"))->at("a") == value{1});
    CHECK(a->dump() == b->dump());
}

} // namespace replica_tests
