// Crash trials: a child process runs a long seeded mix of work on an LMDB
// replica (local transactions, applies of remote change sets, peer
// acknowledgements, tombstone pruning, snapshot loads) and reports each
// operation over a pipe once it returned; the parent kills it with SIGKILL at
// a random moment, then reopens the store and checks:
// - `crdtsync::check` finds the store consistent (log, data, index, clock);
// - every transaction is wholly present or wholly absent;
// - everything the child reported committed is there: re-applying every
//   reported change set changes nothing;
// - a reported acknowledgement is still recorded;
// - an interrupted snapshot load completes on the next attempt;
// - the replica then syncs with a fresh peer to identical dumps.
// Half the trials commit durably, half with MDB_NOSYNC.
//
//   CRDTSYNC_CRASH_TRIALS  kills (default 200); the seed of a failing trial is printed
#include <crdtsync/backends/lmdb.hpp>
#include <crdtsync/backends/memory.hpp>
#include <crdtsync/crdtsync.hpp>
#include <crdtsync/replica_check.hpp>

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace crash_tests {
namespace fs = std::filesystem;
using lmdb_replica = crdtsync::replica<crdtsync::lmdb_store>;
using mem_replica = crdtsync::replica<crdtsync::memory_store>;

crdtsync::site_id site(std::uint8_t b) {
    crdtsync::site_id::bytes_type bytes{};
    bytes.fill(b);
    return crdtsync::site_id{bytes};
}

crdtsync::table_def table(const char* name) {
    return crdtsync::table_def{name}
        .column("id", crdtsync::column_type::integer, false)
        .column("body", crdtsync::column_type::text)
        .column("n", crdtsync::column_type::integer)
        .primary_key({"id"});
}

std::unique_ptr<crdtsync::lmdb_store> open_store(const fs::path& file, bool durable) {
    crdtsync::lmdb_options o;
    o.path = file.string();
    o.sync = durable ? crdtsync::lmdb_sync::durable : crdtsync::lmdb_sync::no_sync;
    // Every open after a kill walks the whole file (lmdb_store::verify):
    // a file LMDB left by a killed process must always pass it.
    o.verify_on_open = true;
    return std::make_unique<crdtsync::lmdb_store>(o);
}

crdtsync::replica_options options() {
    crdtsync::replica_options o;
    o.site = site(0x11);
    o.tombstone_retention = std::chrono::milliseconds(1);
    return o;
}

/// The source of the snapshots the child loads: the same in every process
/// for one seed (fixed site, fixed clock).
struct fixed_clock {
    std::uint64_t operator()() const noexcept { return 1'700'000'000'000; }
};
using source_replica = crdtsync::replica<crdtsync::memory_store, fixed_clock>;
void fill_source(source_replica& s, std::uint64_t seed) {
    s.create_table(table("snap"));
    std::mt19937_64 rng(seed);
    s.write([&](auto& tx) {
        for (int i = 0; i < 300; ++i) tx.insert("snap", {{"id", i}, {"body", "s" + std::to_string(rng() % 1000)}, {"n", i}});
    });
}
crdtsync::replica_options source_options() {
    crdtsync::replica_options o;
    o.site = site(0x33);
    return o;
}

// ---- the report pipe: records of u32 length, u8 kind, payload

void report(int fd, char kind, const std::string& payload = {}) {
    std::string rec(5, '\0');
    const auto n = static_cast<std::uint32_t>(payload.size() + 1);
    std::memcpy(rec.data(), &n, 4);
    rec[4] = kind;
    rec += payload;
    for (std::size_t off = 0; off < rec.size();) {
        const auto w = ::write(fd, rec.data() + off, rec.size() - off);
        if (w <= 0) std::_Exit(3);
        off += static_cast<std::size_t>(w);
    }
}

struct reported {
    std::vector<crdtsync::change_set> sets; // local and applied, in order
    std::uint64_t ack = 0;                  // the last acknowledged position reported
    std::size_t ops = 0;
    std::size_t snapshot_chunks = 0;
};

reported read_reports(int fd) {
    std::string all;
    char buf[65536];
    for (;;) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        all.append(buf, static_cast<std::size_t>(n));
    }
    reported out;
    for (std::size_t at = 0; at + 5 <= all.size();) {
        std::uint32_t n = 0;
        std::memcpy(&n, all.data() + at, 4);
        if (at + 4 + n > all.size()) break; // the record the kill cut
        const char kind = all[at + 4];
        const std::string payload = all.substr(at + 5, n - 1);
        at += 4 + n;
        ++out.ops;
        if (kind == 'L' || kind == 'A')
            for (auto& cs : crdtsync::wire::decode_change_sets(payload)) out.sets.push_back(std::move(cs));
        else if (kind == 'K') out.ack = std::stoull(payload);
        else if (kind == 'S') ++out.snapshot_chunks;
    }
    return out;
}

// ---- the child

[[noreturn]] void child(const fs::path& file, bool durable, std::uint64_t seed, int fd) {
    try {
        auto store = open_store(file, durable);
        lmdb_replica rep{*store, options()};
        if (!rep.find_table("notes"))
            rep.write([](auto& tx) {
                tx.create_table(table("notes"));
                tx.create_table(table("scratch"));
            });
        std::optional<crdtsync::change_set> last_local;
        rep.on_local_change([&](const crdtsync::local_change& c) { last_local = c.changes; });
        crdtsync::memory_store remote_store;
        mem_replica remote{remote_store, [] {
                               crdtsync::replica_options o;
                               o.site = site(0x22);
                               return o;
                           }()};
        remote.create_table(table("notes"));
        std::uint64_t remote_pos = 0;
        crdtsync::memory_store source_store;
        source_replica source{source_store, source_options()};
        fill_source(source, seed);
        std::optional<crdtsync::snapshot_writer<source_replica>> writer;
        std::optional<crdtsync::snapshot_loader<lmdb_replica>> loader;

        std::mt19937_64 rng(seed);
        auto pick = [&](int lo, int hi) { return static_cast<int>(std::uniform_int_distribution<int>(lo, hi)(rng)); };
        // Each trial continues the store of the previous one: ids must not repeat.
        // (a transaction of three new rows advances the position by three).
        std::int64_t next_id = static_cast<std::int64_t>(rep.position()) * 1000;
        for (;;) {
            switch (pick(0, 9)) {
            case 0:
            case 1:
            case 2: { // a local transaction on notes: new rows (checked whole) and updates
                const auto base = next_id;
                next_id += 3;
                rep.write([&](auto& tx) {
                    for (int k = 0; k < 3; ++k) tx.insert("notes", {{"id", base + k}, {"body", "t" + std::to_string(base)}, {"n", k}});
                    const std::int64_t older = base - 1 - pick(0, 2);
                    if (pick(0, 1) && tx.get("notes", {older})) (void)tx.update("notes", {older}, {{"n", pick(0, 99)}});
                });
                report(fd, 'L', crdtsync::wire::encode_change_sets(std::span(&*last_local, 1)));
                break;
            }
            case 3: { // a local transaction on scratch, with deletes
                rep.write([&](auto& tx) {
                    for (int k = 0; k < 4; ++k) {
                        const auto id = pick(0, 30);
                        if (tx.get("scratch", {id})) {
                            if (pick(0, 1)) (void)tx.erase("scratch", {id});
                            else (void)tx.update("scratch", {id}, {{"n", pick(0, 9)}});
                        } else {
                            tx.insert("scratch", {{"id", id}, {"body", "x"}, {"n", 0}});
                        }
                    }
                });
                report(fd, 'T');
                break;
            }
            case 4: { // apply a remote peer's change sets
                remote.write([&](auto& tx) {
                    for (int k = 0; k < 5; ++k) {
                        const auto id = 900'000'000 + pick(0, 50);
                        if (tx.get("notes", {id})) (void)tx.update("notes", {id}, {{"body", "r" + std::to_string(pick(0, 99))}});
                        else tx.insert("notes", {{"id", id}, {"body", "r"}, {"n", 1}});
                    }
                });
                auto d = remote.changes_since(rep.site_id(), remote_pos, 1000);
                remote_pos = d.next_position;
                const auto r = rep.apply_from(remote.site_id(), d);
                if (!r.rejected.empty()) std::_Exit(4);
                report(fd, 'A', crdtsync::wire::encode_change_sets(d.change_sets));
                break;
            }
            case 5: { // a peer confirms what it was sent
                const auto peer = site(0x44);
                auto d = rep.changes_for(peer, static_cast<std::size_t>(pick(1, 500)));
                rep.acknowledge(peer, d.next_position);
                report(fd, 'K', std::to_string(rep.peer(peer).sent_up_to));
                break;
            }
            case 6: // prune tombstones
                (void)rep.prune_tombstones();
                report(fd, 'P');
                break;
            default: { // the next chunk of a snapshot load
                if (!writer) {
                    writer.emplace(source, 50);
                    loader.emplace(rep);
                }
                if (auto chunk = writer->next()) {
                    loader->push(*chunk);
                    report(fd, 'S');
                } else {
                    if (!loader->done()) std::_Exit(5);
                    writer.reset();
                    loader.reset();
                }
            }
            }
        }
    } catch (const std::exception& e) {
        const std::string msg = std::string("child failed: ") + e.what() + "\n";
        (void)::write(2, msg.data(), msg.size());
        std::_Exit(2);
    }
}

// ---- the trials

int trials() {
    if (const char* e = std::getenv("CRDTSYNC_CRASH_TRIALS"); e && *e) return std::max(1, std::atoi(e));
    return 200;
}

TEST_CASE("crash trials: SIGKILL at random moments loses nothing committed and never half-writes") {
    std::string pattern = (fs::temp_directory_path() / "crdtsync-crash-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()));
    const fs::path dir = pattern;
    std::mt19937_64 rng(20261203);
    const int n = trials();
    int kills = 0, resumed_loads = 0;
    std::size_t ops = 0;
    for (int t = 0; t < n; ++t) {
        const auto seed = rng();
        const bool durable = (t % 2) == 0;
        // Every 20 trials a fresh store; between, a trial continues the last one's.
        const auto file = dir / ("r" + std::to_string(t / 20) + ".mdb");
        CAPTURE(t);
        CAPTURE(seed);
        CAPTURE(durable);
        int p[2];
        REQUIRE(::pipe(p) == 0);
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(p[0]);
            child(file, durable, seed, p[1]);
        }
        ::close(p[1]);
        std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 40000));
        ::kill(pid, SIGKILL);
        auto got = read_reports(p[0]);
        ::close(p[0]);
        int status = 0;
        ::waitpid(pid, &status, 0);
        REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL), "the child ended by itself, status ", status);
        ++kills;
        ops += got.ops;

        auto store = open_store(file, durable);
        lmdb_replica rep{*store, options()};
        const auto report = crdtsync::check(rep);
        for (const auto& problem : report.problems) FAIL_CHECK(problem);
        REQUIRE(report.ok());

        // Whole or absent: each local transaction wrote three new rows with one tag.
        if (rep.find_table("notes")) {
            std::map<std::string, int> per_tag;
            for (const auto& row : rep.rows("notes")) {
                const auto& body = row.at("body").as_text();
                if (!body.empty() && body[0] == 't') ++per_tag[body];
            }
            for (const auto& [tag, count] : per_tag) CHECK_MESSAGE(count == 3, "transaction ", tag, " is partly present");
        }
        // Everything reported is there.
        if (got.ack) CHECK(rep.peer(site(0x44)).sent_up_to >= got.ack);
        const auto before = rep.dump();
        const auto again = rep.apply(got.sets);
        CHECK(again.rejected.empty());
        CHECK(again.applied == 0);
        CHECK(rep.dump() == before);

        // An interrupted snapshot load completes.
        {
            crdtsync::memory_store source_store;
            source_replica source{source_store, source_options()};
            fill_source(source, seed);
            crdtsync::snapshot_loader<lmdb_replica> loader{rep};
            if (loader.checkpoint()) ++resumed_loads;
            crdtsync::snapshot_writer<source_replica> writer{source, 50};
            while (auto chunk = writer.next()) loader.push(*chunk);
            CHECK(loader.done());
            CHECK(rep.rows("snap").size() == 300);
        }
        const auto after_load = crdtsync::check(rep);
        for (const auto& problem : after_load.problems) FAIL_CHECK(problem);

        // It syncs with a fresh peer to the same state.
        crdtsync::memory_store peer_store;
        mem_replica peer{peer_store};
        {
            // One page: a second page would start below the GC horizon,
            // which the replica answers with snapshot_required.
            auto d = rep.changes_since(peer.site_id(), 0, static_cast<std::size_t>(-1));
            REQUIRE_FALSE(d.snapshot_required);
            REQUIRE(peer.apply(d.change_sets).rejected.empty());
        }
        CHECK(peer.dump() == rep.dump());
        if (!report.ok() || !after_load.ok()) break;
    }
    MESSAGE(kills, " kills survived, ", ops, " operations reported before them, ", resumed_loads,
            " snapshot loads interrupted and completed");
    CHECK(kills == n);
    CHECK(ops > static_cast<std::size_t>(n)); // the children did work before dying
    std::error_code ec;
    fs::remove_all(dir, ec);
}

} // namespace crash_tests

namespace crash_tests {
// The checker itself: each kind of damage, made by hand in the store, is
// found and named.
TEST_CASE("check() finds each kind of inconsistency, and nothing on a sound store") {
    std::string pattern = (fs::temp_directory_path() / "crdtsync-check-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()));
    const fs::path dir = pattern;
    auto fresh = [&](const std::string& name) {
        auto store = open_store(dir / name, false);
        {
            lmdb_replica rep{*store, options()};
            rep.write([](auto& tx) { tx.create_table(table("notes")); });
            rep.write([](auto& tx) {
                for (int i = 0; i < 5; ++i) tx.insert("notes", {{"id", i}, {"body", "b"}, {"n", i}});
            });
            rep.write([](auto& tx) { (void)tx.erase("notes", {3}); });
            rep.acknowledge(site(0x44), rep.position());
            const auto r = crdtsync::check(rep);
            CHECK(r.ok());
            CHECK(r.rows == 5);
            CHECK(r.tombstones == 1);
            CHECK(r.peers == 1);
            CHECK(r.migrations == 1);
        }
        return store;
    };
    auto first_key = [](crdtsync::lmdb_store& s, char space) {
        auto r = s.read();
        std::string key;
        r.scan(std::string(1, space), std::string(1, static_cast<char>(space + 1)), [&](std::string_view k, std::string_view) {
            key = std::string(k);
            return false;
        });
        return key;
    };
    auto problems_after = [&](const std::string& name, auto&& damage) {
        auto store = fresh(name);
        {
            auto w = store->write();
            damage(*store, w);
            w.commit();
        }
        lmdb_replica rep{*store, options()};
        return crdtsync::check(rep).problems;
    };
    auto mentions = [](const std::vector<std::string>& problems, const std::string& what) {
        for (const auto& p : problems)
            if (p.find(what) != std::string::npos) return true;
        return false;
    };
    namespace L = crdtsync::detail::layout;

    CHECK(mentions(problems_after("a.mdb", [&](auto& s, auto& w) { (void)w.erase(first_key(s, L::log)); }),
                   "migration"));
    CHECK(mentions(problems_after("a2.mdb", [&](auto&, auto& w) { (void)w.erase(L::log_key(2)); }),
                   "without a change-log entry"));
    CHECK(mentions(problems_after("b.mdb", [&](auto&, auto& w) {
                       std::string rec;
                       L::put_log_record(rec, L::row, std::string("r\0\0\0\x07", 5));
                       w.put(L::log_key(2), rec);
                   }),
                   "holds nothing written at"));
    CHECK(mentions(problems_after("c.mdb", [&](auto& s, auto& w) { (void)w.erase(first_key(s, L::tomb_index)); }),
                   "missing from the arrival index"));
    CHECK(mentions(problems_after("d.mdb", [&](auto& s, auto& w) { w.put(first_key(s, L::row), std::string("\x01\x02", 2)); }),
                   "does not decode"));
    CHECK(mentions(problems_after("e.mdb", [&](auto& s, auto& w) {
                       std::string v;
                       crdtsync::detail::put_be<std::uint64_t>(v, 0);
                       crdtsync::detail::put_be<std::uint64_t>(v, 1'000'000);
                       w.put(first_key(s, L::peer), v);
                   }),
                   "acknowledged position"));
    CHECK(mentions(problems_after("f.mdb", [&](auto& s, auto& w) { (void)w.erase(first_key(s, L::table_rec)); }),
                   "which has no record"));
    std::error_code ec;
    fs::remove_all(dir, ec);
}
} // namespace crash_tests
