// Snapshot streaming: a replica streamed by snapshot_writer and loaded by
// snapshot_loader (through the Quereus JSON text of every chunk) ends
// byte-identical to its sender and continues with delta sync; the stream is
// one consistent state while the sender writes; an interrupted load resumes
// at every cut point, also after a restart; bad streams and bad checkpoints
// are refused with snapshot_error and lose nothing; local writes made during
// a load survive it; a re-bootstrap removes what the sender dropped and keeps
// what it never had.

#include "support.hpp"

#include <crdtsync/snapshot_loader.hpp>
#include <crdtsync/snapshot_writer.hpp>
#include <crdtsync/wire/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

using namespace replica_tests;
using crdtsync::errc;

#ifndef CRDTSYNC_TEST_PROPERTY_SEEDS
#define CRDTSYNC_TEST_PROPERTY_SEEDS 20
#endif
using crdtsync::snapshot_chunk;
namespace wire = crdtsync::wire;

namespace {

/// A chunk as it arrives after a trip through the wire's JSON text.
snapshot_chunk over_the_wire(const snapshot_chunk& c) {
    return wire::decode_snapshot_chunk(wire::encode_snapshot_chunk(c));
}

/// Moves up to `max` chunks from `out` into `in`; returns how many moved.
template <class W, class L>
std::size_t pump(W& out, L& in, std::size_t max = SIZE_MAX) {
    std::size_t n = 0;
    for (; n < max; ++n) {
        auto c = out.next();
        if (!c) break;
        in.push(over_the_wire(*c));
    }
    return n;
}

/// Every chunk of a fresh snapshot of `r`.
template <class R>
std::vector<snapshot_chunk> all_chunks(const R& r, std::size_t chunk_entries) {
    crdtsync::snapshot_writer out{r, chunk_entries};
    std::vector<snapshot_chunk> v;
    while (auto c = out.next()) v.push_back(over_the_wire(*c));
    return v;
}

/// A replica with both tables and data of every kind: random remote change
/// sets from several sites (collisions, NOCASE and RTRIM keys, deletes and
/// revivals), then local inserts, updates and deletes of many rows.
template <class Env>
node_t<Env> populated(Env& env, delete_policy p, const sim_time& t, std::uint64_t seed, int rows = 120) {
    auto a = open_with_schema(env, p, 0x0a, t);
    std::mt19937_64 rng{seed};
    change_set_generator gen{rng, epoch_ms - 5000};
    for (int i = 0; i < 40; ++i) (void)a->apply(gen.next());
    a->write([&](auto& tx) {
        for (int i = 10; i < 10 + rows; ++i)
            tx.insert("items", row{{"id", value{i}}, {"name", value{"row " + std::to_string(i)}}, {"a", value{i * 3}},
                                   {"b", i % 4 ? value{"text"} : value{}}, {"c", value{i + 0.5}}});
    });
    a->write([&](auto& tx) {
        for (int i = 10; i < 10 + rows; i += 7) (void)tx.update("items", item_key(i, "row " + std::to_string(i)), row{{"a", value{-i}}});
        for (int i = 12; i < 10 + rows; i += 9) (void)tx.erase("items", item_key(i, "row " + std::to_string(i)));
        tx.insert("notes", row{{"k", value{"local "}}, {"body", value{"x"}}});
    });
    return a;
}

/// Lines of a dump, to check one replica holds nothing another lacks.
std::vector<std::string> lines_of(const std::string& dump) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < dump.size()) {
        const auto nl = dump.find('\n', at);
        out.push_back(dump.substr(at, nl - at));
        at = nl + 1;
    }
    return out;
}

/// Changes `b` lacks from `a` since `b`'s recorded position for `a`.
template <class A, class B>
void pull(A& a, B& b) {
    const auto pos = b.peer(a.site_id()).received_up_to;
    auto d = a.changes_since(b.site_id(), pos, 100000);
    REQUIRE_FALSE(d.snapshot_required);
    REQUIRE_FALSE(d.more);
    const auto res = b.apply(d.change_sets);
    CHECK(res.rejected.empty());
    b.set_peer_received(a.site_id(), d.next_position);
}

} // namespace

TEST_CASE_TEMPLATE("snapshot: a fresh replica loads it byte-identical, then delta sync continues", Env, CRDTSYNC_TEST_STORES) {
    for (const auto p : all_policies) {
        CAPTURE(crdtsync::to_text(p));
        sim_time t;
        Env env;
        auto a = populated(env, p, t, 7);
        auto b = open_node(env, options_for(p, 0x0b), fake_clock{&t.now});

        crdtsync::snapshot_writer out{*a, 16};
        CHECK(out.header().origin == a->site_id());
        CHECK(out.header().position == a->position());
        crdtsync::snapshot_loader in{*b};
        CHECK_FALSE(in.checkpoint());
        std::size_t events = 0, facts = 0;
        b->on_remote_change([&](const crdtsync::remote_change& rc) {
            ++events;
            facts += rc.applied.size() + rc.migrations.size();
            CHECK(rc.origin == a->site_id());
        });
        const auto chunks = pump(out, in);
        CHECK(events > 10); // one a chunk that changed something
        CHECK(facts == in.result().applied);
        CHECK(out.done());
        CHECK(in.done());
        CHECK(chunks > 20); // several chunks per table, so chunking is exercised
        CHECK_FALSE(in.checkpoint());
        CHECK(in.removed() == 0);
        CHECK(in.result().rejected.empty());
        CHECK(b->dump() == a->dump());
        CHECK(rows_text(*b) == rows_text(*a));
        CHECK(b->peer(a->site_id()).received_up_to == a->position());

        // Delta sync from the snapshot's position brings later writes only.
        const auto at_snapshot = a->position();
        t.now += 10;
        a->write([](auto& tx) {
            tx.insert("items", row{{"id", value{500}}, {"name", value{"later"}}});
            CHECK(tx.erase("items", item_key(10, "row 10")));
        });
        CHECK(a->changes_since(b->site_id(), at_snapshot).change_sets.size() == 1);
        pull(*a, *b);
        CHECK(b->dump() == a->dump());
    }
}

TEST_CASE_TEMPLATE("snapshot: chunk sizes from one entry up give the same state", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = populated(env, delete_policy::insert_revives, t, 11, 30);
    for (const std::size_t size : {std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{1000}}) {
        CAPTURE(size);
        auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
        const auto chunks = all_chunks(*a, size);
        crdtsync::snapshot_loader in{*b};
        std::uint64_t entries = 0, tombs = 0;
        for (const auto& c : chunks) {
            if (const auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&c)) {
                CHECK(cv->entries.size() <= size);
                CHECK_FALSE(cv->entries.empty());
                entries += cv->entries.size();
            }
            if (const auto* ts = std::get_if<crdtsync::snapshot_tombstones>(&c)) {
                CHECK(ts->entries.size() <= size);
                tombs += ts->entries.size();
            }
            in.push(c);
        }
        REQUIRE(in.done());
        CHECK(std::get<crdtsync::snapshot_footer>(chunks.back()).total_entries == entries);
        CHECK(tombs > 0);
        CHECK(b->dump() == a->dump());
    }
    CHECK_THROWS_AS((crdtsync::snapshot_writer{*a, 0}), crdtsync::usage_error);
}

TEST_CASE_TEMPLATE("snapshot: the stream is the state when it began, whatever the sender writes meanwhile", Env,
                   CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = populated(env, delete_policy::insert_revives, t, 3);
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
    const auto before = a->dump();
    crdtsync::snapshot_writer out{*a, 8};
    crdtsync::snapshot_loader in{*b};
    CHECK(pump(out, in, 6) == 6);
    // The sender changes rows the stream has not reached, and some it has.
    t.now += 5;
    a->write([](auto& tx) {
        for (int i = 10; i < 130; i += 3) (void)tx.update("items", item_key(i, "row " + std::to_string(i)), row{{"b", value{"new"}}});
        for (int i = 11; i < 130; i += 10) (void)tx.erase("items", item_key(i, "row " + std::to_string(i)));
        tx.create_table(crdtsync::table_def{"extra"}.column("k", crdtsync::column_type::integer, false).primary_key({"k"}));
        tx.insert("extra", row{{"k", value{1}}});
    });
    pump(out, in);
    REQUIRE(in.done());
    CHECK(b->dump() == before);
    pull(*a, *b);
    CHECK(b->dump() == a->dump());
}

TEST_CASE_TEMPLATE("snapshot: an interrupted load resumes at every cut point", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = populated(env, delete_policy::insert_revives, t, 5, 40);
    const auto chunks = all_chunks(*a, 10);
    REQUIRE(chunks.size() > 10);
    for (std::size_t cut = 1; cut < chunks.size(); ++cut) {
        CAPTURE(cut);
        auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
        std::optional<crdtsync::snapshot_checkpoint> k;
        {
            crdtsync::snapshot_loader in{*b};
            for (std::size_t i = 0; i < cut; ++i) in.push(chunks[i]);
            k = in.checkpoint();
        }
        REQUIRE(k);
        // The checkpoint survives the loader (and travels as JSON).
        crdtsync::snapshot_loader again{*b};
        REQUIRE(again.checkpoint());
        k->created_at = again.checkpoint()->created_at;
        CHECK(*again.checkpoint() == *k);
        const auto sent = wire::decode<crdtsync::snapshot_checkpoint>(wire::encode(*k));
        CHECK(sent.origin == b->site_id());

        crdtsync::snapshot_writer rest{*a, sent, 10};
        std::size_t resumed_chunks = 0;
        while (auto c = rest.next()) {
            if (const auto* ts = std::get_if<crdtsync::snapshot_table_start>(&*c); ts && resumed_chunks == 0 + 1 + rest.header().migration_count)
                CHECK(ts->first_entry == k->last_entry_index); // nothing changed: resumes exactly
            again.push(over_the_wire(*c));
            ++resumed_chunks;
        }
        CHECK(again.done());
        CHECK(b->dump() == a->dump());
        // Only what was missing came again (plus header and migrations).
        CHECK(resumed_chunks <= chunks.size() - cut + 1 + rest.header().migration_count + 2);
    }
}

TEST_CASE_TEMPLATE("snapshot: a resume after the sender changed continues after the last entry loaded", Env,
                   CRDTSYNC_TEST_STORES) {
    // With the checkpoint's lastEntry the resume finds its place by key;
    // without it (a checkpoint that lacks crdtsync's addition) entry indexes
    // no longer count the same entries, and the table comes again whole.
    for (const bool by_key : {true, false}) {
        CAPTURE(by_key);
        sim_time t;
        Env env;
        auto a = populated(env, delete_policy::insert_revives, t, 9, 60);
        auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
        crdtsync::snapshot_writer out{*a, 10};
        {
            crdtsync::snapshot_loader in{*b};
            // Into the cells of the first table, past a few chunks.
            std::size_t n = 0;
            while (!in.checkpoint() || in.checkpoint()->last_entry_index < 25) {
                in.push(over_the_wire(*out.next()));
                REQUIRE(++n < 100);
            }
        }
        t.now += 5;
        a->write([](auto& tx) {
            // Deletes before the cut shift every later entry index; inserts
            // land before and after it.
            for (int i = 10; i < 30; ++i) (void)tx.erase("items", item_key(i, "row " + std::to_string(i)));
            tx.insert("items", row{{"id", value{0}}, {"name", value{"first"}}});
            tx.insert("items", row{{"id", value{1000}}, {"name", value{"after"}}});
        });
        crdtsync::snapshot_loader in{*b};
        auto k = *in.checkpoint();
        CHECK(k.last_entry_index >= 25);
        REQUIRE(k.last_entry);
        CHECK(k.last_entry->table == "main.items");
        if (!by_key) k.last_entry.reset();
        crdtsync::snapshot_writer rest{*a, k, 10};
        std::size_t starts = 0, entries = 0;
        while (auto c = rest.next()) {
            if (const auto* ts = std::get_if<crdtsync::snapshot_table_start>(&*c); ts && starts++ == 0)
                CHECK(ts->first_entry == (by_key ? k.last_entry_index : 0));
            if (const auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&*c)) entries += cv->entries.size();
            in.push(over_the_wire(*c));
        }
        REQUIRE(in.done());
        CHECK(starts == 2);
        const auto full = std::get<crdtsync::snapshot_footer>(all_chunks(*a, 10).back()).total_entries;
        if (by_key) CHECK(entries < full); // not the whole table again
        else CHECK(entries == full);
        // The snapshot's position is the first stream's: delta sync from it
        // brings what changed after.
        CHECK(b->peer(a->site_id()).received_up_to == out.header().position);
        pull(*a, *b);
        CHECK(b->dump() == a->dump());
    }
}

#if defined(CRDTSYNC_TEST_LMDB)
TEST_CASE("snapshot: a load interrupted by closing the LMDB file resumes after reopening it") {
    sim_time t;
    lmdb_env env;
    auto a = populated(env, delete_policy::insert_revives, t, 13, 50);
    const auto chunks = all_chunks(*a, 7);
    std::optional<crdtsync::snapshot_checkpoint> k;
    {
        auto store = env.open("b.mdb");
        replica_t<crdtsync::lmdb_store> b{*store, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now}};
        crdtsync::snapshot_loader in{b};
        for (std::size_t i = 0; i < chunks.size() / 2; ++i) in.push(chunks[i]);
        k = in.checkpoint();
    }
    auto store = env.open("b.mdb");
    replica_t<crdtsync::lmdb_store> b{*store, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now}};
    crdtsync::snapshot_loader in{b};
    REQUIRE(in.checkpoint());
    CHECK(in.checkpoint()->entries_processed == k->entries_processed);
    crdtsync::snapshot_writer rest{*a, *in.checkpoint(), 7};
    pump(rest, in);
    REQUIRE(in.done());
    CHECK(b.dump() == a->dump());
}
#endif

#if defined(CRDTSYNC_TEST_LMDB)
TEST_CASE("snapshot: a loading process killed with SIGKILL resumes to the sender's state") {
    // A child process loads a snapshot into an LMDB file, one chunk for each
    // byte the parent sends; the parent allows a random number of chunks and
    // kills the child with SIGKILL after a random delay (so sometimes in the
    // middle of a chunk's transaction, sometimes waiting for the next byte),
    // reopens the file and resumes from the checkpoint the store kept.
    sim_time t;
    memory_env menv;
    auto a = populated(menv, delete_policy::insert_revives, t, 29, 150);
    const auto chunks = all_chunks(*a, 8); // made before the fork: the child only loads
    lmdb_env env;
    std::mt19937_64 rng{29};
    int killed = 0, resumed = 0;
    for (int trial = 0; trial < 12; ++trial) {
        CAPTURE(trial);
        const std::string name = "killed-" + std::to_string(trial) + ".mdb";
        int go[2], done[2];
        REQUIRE(::pipe(go) == 0);
        REQUIRE(::pipe(done) == 0);
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            ::close(go[1]);
            ::close(done[0]);
            try {
                auto store = env.open(name);
                replica_t<crdtsync::lmdb_store> b{*store, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now}};
                crdtsync::snapshot_loader in{b};
                char token = 0;
                for (const auto& c : chunks) {
                    if (::read(go[0], &token, 1) != 1) ::_exit(3);
                    in.push(c);
                    if (::write(done[1], &token, 1) != 1) ::_exit(4);
                }
            } catch (...) {
                ::_exit(2);
            }
            ::_exit(0);
        }
        ::close(go[0]);
        ::close(done[1]);
        // Allow some chunks; wait until all but the last few are loaded, so
        // that the kill lands while the child loads one or waits for more.
        const auto allowed = static_cast<std::size_t>(rng() % (chunks.size() - 1)); // never the footer
        const std::string tokens(allowed, 'g');
        REQUIRE(::write(go[1], tokens.data(), tokens.size()) == static_cast<ssize_t>(tokens.size()));
        const auto wait_for = allowed - std::min<std::size_t>(allowed, rng() % 3);
        char ack = 0;
        for (std::size_t n = 0; n < wait_for; ++n) REQUIRE(::read(done[0], &ack, 1) == 1);
        ::usleep(static_cast<useconds_t>(rng() % 200));
        ::kill(child, SIGKILL);
        ::close(done[0]);
        int status = 0;
        ::waitpid(child, &status, 0);
        ::close(go[1]);
        REQUIRE(WIFSIGNALED(status));
        ++killed;

        auto store = env.open(name);
        replica_t<crdtsync::lmdb_store> b{*store, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now}};
        crdtsync::snapshot_loader in{b};
        if (const auto k = in.checkpoint()) {
            ++resumed;
            crdtsync::snapshot_writer rest{*a, *k, 8};
            pump(rest, in);
            CHECK(in.done());
        } else if (b.dump() != a->dump()) { // killed before the header's transaction committed
            crdtsync::snapshot_writer out{*a, 8};
            pump(out, in);
            CHECK(in.done());
        }
        CHECK(b.dump() == a->dump());
        CHECK(b.peer(a->site_id()).received_up_to == a->position());
    }
    CHECK(killed == 12);
    CHECK(resumed >= 6);
}

#endif

TEST_CASE_TEMPLATE("snapshot: a bad stream is refused with snapshot_error and nothing of the bad chunk is written", Env,
                   CRDTSYNC_TEST_STORES) {
    using namespace crdtsync;
    sim_time t;
    Env env;
    auto a = populated(env, delete_policy::insert_revives, t, 17, 20);
    const auto good = all_chunks(*a, 10);
    const auto& header = std::get<snapshot_header>(good.front());
    // Index of the first chunk of a kind.
    auto first = [&](auto pred) {
        for (std::size_t i = 0; i < good.size(); ++i)
            if (pred(good[i])) return i;
        FAIL("no such chunk");
        return std::size_t{0};
    };
    const auto first_start = first([](const auto& c) { return std::holds_alternative<snapshot_table_start>(c); });
    const auto first_cells = first([](const auto& c) { return std::holds_alternative<snapshot_column_versions>(c); });
    const auto first_end = first([](const auto& c) { return std::holds_alternative<snapshot_table_end>(c); });
    const auto first_tomb = first([](const auto& c) { return std::holds_alternative<snapshot_tombstones>(c); });
    const auto footer_at = good.size() - 1;

    struct bad_case {
        const char* name;
        std::size_t at;                               // replaces chunk `at` (or is pushed there, when `insert`)
        std::function<snapshot_chunk(snapshot_chunk)> make;
        const char* says;
        bool insert = false;
    };
    const std::vector<bad_case> cases = {
        {"no header first", 0, [&](auto) { return good[first_start]; }, "starts with its header"},
        {"another format", 0,
         [](snapshot_chunk c) {
             std::get<snapshot_header>(c).snapshot_format = 2;
             return c;
         },
         "format version 2"},
        {"the replica's own snapshot", 0,
         [&](snapshot_chunk c) {
             std::get<snapshot_header>(c).origin = site_of(0x0b);
             return c;
         },
         "of this replica itself"},
        {"a second header", 1, [&](auto) { return good[0]; }, "second header", true},
        {"a migration missing", first_start, [&](auto c) { return c; }, "announces"},
        {"migrations out of HLC order", 2, [&](auto) { return good[1]; }, "migrations travel in HLC order"},
        {"a migration from the far future", 1,
         [&](snapshot_chunk c) {
             std::get<snapshot_schema_migration>(c).migration.version.wall_time = t.now + 3'600'000;
             return c;
         },
         "was refused"},
        {"entries of another table", first_cells,
         [](snapshot_chunk c) {
             std::get<snapshot_column_versions>(c).table = "notes";
             return c;
         },
         "outside its table-start"},
        {"an entry of an unknown column", first_cells,
         [](snapshot_chunk c) {
             std::get<snapshot_column_versions>(c).entries.back().column = "colour";
             return c;
         },
         "unknown column"},
        {"an entry from the far future", first_cells,
         [&](snapshot_chunk c) {
             std::get<snapshot_column_versions>(c).entries.back().version.wall_time = t.now + 3'600'000;
             return c;
         },
         "was refused"},
        {"a table-end that miscounts", first_end,
         [](snapshot_chunk c) {
             ++std::get<snapshot_table_end>(c).entries_written;
             return c;
         },
         "were received"},
        {"tombstones before the tables end", first_start + 1, [&](auto) { return good[first_tomb]; }, "came before table",
         true},
        {"a footer of another snapshot", footer_at,
         [](snapshot_chunk c) {
             std::get<snapshot_footer>(c).snapshot_id = "other";
             return c;
         },
         "the footer is of snapshot other"},
        {"a footer that miscounts entries", footer_at,
         [](snapshot_chunk c) {
             --std::get<snapshot_footer>(c).total_entries;
             return c;
         },
         "entries"},
    };
    for (const auto& bc : cases) {
        CAPTURE(bc.name);
        auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
        snapshot_loader in{*b};
        std::size_t i = 0;
        for (; i < bc.at; ++i) in.push(good[i]);
        // "a migration missing": skip the migrations instead of replacing.
        if (std::string_view(bc.name) == "a migration missing") {
            auto b2 = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
            snapshot_loader in2{*b2};
            in2.push(good[0]);
            const auto dump = b2->dump();
            try {
                in2.push(good[first_start]);
                FAIL("accepted");
            } catch (const snapshot_error& e) {
                CHECK(e.code() == errc::snapshot);
                CHECK_MESSAGE(std::string(e.what()).find(bc.says) != std::string::npos, e.what());
            }
            CHECK(b2->dump() == dump);
            continue;
        }
        const auto dump = b->dump();
        const auto checkpoint = in.checkpoint();
        bool refused = false;
        try {
            in.push(bc.make(good[i]));
        } catch (const snapshot_error& e) {
            refused = true;
            CHECK(e.code() == errc::snapshot);
            CHECK_MESSAGE(std::string(e.what()).find(bc.says) != std::string::npos, e.what());
        }
        CHECK(refused);
        CHECK(b->dump() == dump);
        CHECK(in.checkpoint() == checkpoint);
        CHECK_FALSE(in.done());
        // Whatever was loaded is the sender's: every line of b's dump but the
        // schema lines appears in a's.
        const auto lines = lines_of(a->dump());
        for (const auto& l : lines_of(b->dump()))
            CHECK_MESSAGE(std::find(lines.begin(), lines.end(), l) != lines.end(), l);
        // A refusal changes nothing, in the store or in the loader: the
        // right chunks from there on complete the load.
        for (; i < good.size(); ++i) in.push(good[i]);
        CHECK(in.done());
        CHECK(b->dump() == a->dump());
    }

    // A truncated stream leaves an unfinished load that resumes.
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
    {
        snapshot_loader in{*b};
        for (std::size_t i = 0; i < footer_at; ++i) in.push(good[i]);
        CHECK_FALSE(in.done());
        CHECK(in.checkpoint());
    }
    snapshot_loader in{*b};
    REQUIRE(in.checkpoint());
    CHECK(in.checkpoint()->snapshot_id == header.snapshot_id);
    snapshot_writer rest{*a, *in.checkpoint(), 10};
    pump(rest, in);
    CHECK(in.done());
    CHECK(b->dump() == a->dump());
    check_throws_code<snapshot_error>([&] { in.push(good.back()); }, errc::snapshot);
}

TEST_CASE("snapshot: a refused table-start of a resumed stream leaves the loader as it was") {
    sim_time t;
    memory_env env;
    auto a = open_with_schema(env, delete_policy::insert_revives, 0x0a, t);
    a->write([](auto& tx) {
        for (int i = 0; i < 30; ++i) tx.insert("items", row{{"id", value{i}}, {"name", value{"x"}}});
    });
    crdtsync::snapshot_writer out{*a, 10};
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
    {
        crdtsync::snapshot_loader in{*b};
        for (int i = 0; i < 5; ++i) in.push(over_the_wire(*out.next())); // header, 2 migrations, table-start, 10 entries
    }
    crdtsync::snapshot_loader in{*b};
    const auto k = *in.checkpoint();
    REQUIRE(k.last_entry_index == 10);
    crdtsync::snapshot_writer rest{*a, k, 10};
    std::vector<snapshot_chunk> cs;
    while (auto c = rest.next()) cs.push_back(over_the_wire(*c));
    std::size_t i = 0;
    for (; !std::holds_alternative<crdtsync::snapshot_table_start>(cs[i]); ++i) in.push(cs[i]);
    auto bad = cs[i];
    std::get<crdtsync::snapshot_table_start>(bad).first_entry = 11;
    check_throws_code<crdtsync::snapshot_error>([&] { in.push(bad); }, errc::snapshot);
    for (; i < cs.size(); ++i) in.push(cs[i]);
    CHECK(in.done());
    CHECK(b->dump() == a->dump());
}

TEST_CASE_TEMPLATE("snapshot: the sender checks a checkpoint names one of its snapshots", Env, CRDTSYNC_TEST_STORES) {
    using namespace crdtsync;
    sim_time t;
    Env env;
    auto a = populated(env, delete_policy::insert_revives, t, 19, 20);
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0x0b), fake_clock{&t.now});
    snapshot_writer out{*a, 10};
    snapshot_loader in{*b};
    pump(out, in, 5);
    const auto good = *in.checkpoint();
    CHECK_NOTHROW((snapshot_writer{*a, good}));
    auto refused = [&](snapshot_checkpoint k, const char* says) {
        CAPTURE(says);
        try {
            snapshot_writer w{*a, k};
            FAIL("accepted");
        } catch (const snapshot_error& e) {
            CHECK(e.code() == errc::snapshot);
            CHECK_MESSAGE(std::string(e.what()).find(says) != std::string::npos, e.what());
        }
    };
    auto k = good;
    k.version.site = site_of(0x0c);
    refused(k, "is for a snapshot of site");
    k = good;
    k.position = a->position() + 1;
    refused(k, "beyond this replica's position");
    k = good;
    k.completed_tables.push_back("main.nothing");
    k.last_table_index = k.completed_tables.size();
    refused(k, "which this replica does not have");
    k = good;
    k.last_table_index += 1;
    refused(k, "does not match");
    k = good;
    k.last_entry_index = k.entries_processed + 1;
    refused(k, "entries in its current table");
    k = good;
    k.version.wall_time = t.now + 3'600'000;
    refused(k, "later than this replica's clock");
    // b's checkpoint is no snapshot of b's own.
    CHECK_THROWS_AS((snapshot_writer{*b, good}), snapshot_error);
}

TEST_CASE_TEMPLATE("snapshot: local writes made during a load survive it", Env, CRDTSYNC_TEST_STORES) {
    for (const auto p : all_policies) {
        CAPTURE(crdtsync::to_text(p));
        sim_time t;
        Env env;
        auto a = populated(env, p, t, 23, 40);
        auto b = open_node(env, options_for(p, 0x0b), fake_clock{&t.now});
        crdtsync::snapshot_writer out{*a, 10};
        crdtsync::snapshot_loader in{*b};
        pump(out, in, 8); // the schema is in, some rows too
        t.now += 5;
        b->write([](auto& tx) {
            tx.insert("items", row{{"id", value{900}}, {"name", value{"mine"}}, {"a", value{1}}});
            tx.insert("notes", row{{"k", value{"during"}}, {"body", value{"b"}}});
            CHECK(tx.update("items", item_key(11, "row 11"), row{{"b", value{"b's edit"}}}));
        });
        pump(out, in);
        REQUIRE(in.done());
        CHECK(in.removed() == 0);
        CHECK(b->get("items", item_key(900, "mine")));
        CHECK(b->get("notes", {value{"during"}}));
        // Both ways, and they converge.
        auto up = b->changes_since(a->site_id(), 0);
        CHECK(a->apply(up.change_sets).rejected.empty());
        CHECK(b->dump() == a->dump());
        CHECK(a->get("items", item_key(11, "row 11"))->at("b") == value{"b's edit"});
    }
}

namespace {

/// b sends a what a lacks; a applies it and records how far it got (what a
/// snapshot for b then tells b a had seen).
template <class B, class A>
void push(B& b, A& a) {
    auto d = b.changes_since(a.site_id(), a.peer(b.site_id()).received_up_to, 100000);
    REQUIRE_FALSE(d.snapshot_required);
    REQUIRE_FALSE(d.more);
    CHECK(a.apply(d.change_sets).rejected.empty());
    a.set_peer_received(b.site_id(), d.next_position);
}

/// Two replicas for the re-bootstrap cases: a prunes tombstones after 1 s.
template <class Env>
std::pair<node_t<Env>, node_t<Env>> pruning_pair(Env& env, delete_policy p, sim_time& t) {
    auto ao = options_for(p, 0x0a);
    ao.tombstone_retention = std::chrono::milliseconds(1000);
    auto a = open_node(env, ao, fake_clock{&t.now});
    auto b = open_node(env, options_for(p, 0x0b), fake_clock{&t.now});
    a->write([](auto& tx) { tx.create_table(items_table()); });
    pull(*a, *b);
    return {std::move(a), std::move(b)};
}

/// Loads a snapshot of `a` made for `b` into `b`; returns what it removed.
template <class A, class B>
std::uint64_t rebootstrap(A& a, B& b) {
    CHECK(a.changes_since(b.site_id(), b.peer(a.site_id()).received_up_to).snapshot_required);
    crdtsync::snapshot_writer out{a, b.site_id(), 3};
    crdtsync::snapshot_loader in{b};
    pump(out, in);
    REQUIRE(in.done());
    return in.removed();
}

} // namespace

TEST_CASE_TEMPLATE("snapshot: a re-bootstrap removes what the sender dropped and keeps what it never had", Env,
                   CRDTSYNC_TEST_STORES) {
    for (const auto p : all_policies) {
        CAPTURE(crdtsync::to_text(p));
        sim_time t;
        Env env;
        auto [a, b] = pruning_pair(env, p, t);
        const auto c = site_of(0x0c);
        a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"gone"}}, {"a", value{1}}}); });
        a->write([](auto& tx) { tx.insert("items", row{{"id", value{2}}, {"name", value{"kept"}}, {"a", value{2}}}); });
        pull(*a, *b);
        t.now += 5;
        b->write([](auto& tx) { tx.insert("items", row{{"id", value{3}}, {"name", value{"from b"}}}); });
        // A third replica's row reaches a through b.
        CHECK(b->apply(change_set_builder{at(t.now, 0, c)}.insert("items", item_key(5, "from c"), {{"id", value{5}}, {"name", value{"from c"}}}).build()).applied > 0);
        push(*b, *a);
        // a deletes rows 1 and 5 and prunes the tombstones before b hears of it.
        t.now += 5;
        a->write([](auto& tx) {
            CHECK(tx.erase("items", item_key(1, "gone")));
            CHECK(tx.erase("items", item_key(5, "from c")));
        });
        t.now += 2000;
        CHECK(a->prune_tombstones() == 2);
        // Meanwhile b writes something a never had.
        b->write([](auto& tx) { tx.insert("items", row{{"id", value{4}}, {"name", value{"unsent"}}}); });

        CHECK(rebootstrap(*a, *b) == 5 + 2); // row 1's five cells (a's own), row 5's two (c's, which a had seen)
        CHECK_FALSE(b->get("items", item_key(1, "gone")));
        CHECK_FALSE(b->get("items", item_key(5, "from c")));
        CHECK(b->get("items", item_key(2, "kept")));
        CHECK(b->get("items", item_key(3, "from b")));
        CHECK(b->get("items", item_key(4, "unsent")));
        // b's other peers behind the removal must bootstrap too.
        CHECK(b->gc_horizon() > 0);
        push(*b, *a);
        pull(*a, *b);
        CHECK(b->dump() == a->dump());
    }
}

TEST_CASE_TEMPLATE("snapshot: a re-bootstrap keeps what the sender saw only after its snapshot began", Env,
                   CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto [a, b] = pruning_pair(env, delete_policy::insert_revives, t);
    b->write([](auto& tx) { tx.insert("items", row{{"id", value{2}}, {"name", value{"b1"}}}); });
    push(*b, *a);
    crdtsync::snapshot_writer out{*a, b->site_id(), 10}; // a's state now: row 2
    // b's sync goes on: row 3 reaches a, after the snapshot began.
    t.now += 5;
    b->write([](auto& tx) { tx.insert("items", row{{"id", value{3}}, {"name", value{"b2"}}}); });
    push(*b, *a);
    crdtsync::snapshot_loader in{*b};
    pump(out, in);
    REQUIRE(in.done());
    CHECK(in.removed() == 0);
    CHECK(b->get("items", item_key(3, "b2")));
    pull(*a, *b);
    CHECK(b->dump() == a->dump());
}

TEST_CASE_TEMPLATE("snapshot: a re-bootstrap removes the sender's own dropped rows, however b got them", Env,
                   CRDTSYNC_TEST_STORES) {
    for (const auto p : all_policies) {
        CAPTURE(crdtsync::to_text(p));
        sim_time t;
        Env env;
        auto [a, b] = pruning_pair(env, p, t);
        b->write([](auto& tx) { tx.insert("items", row{{"id", value{9}}, {"name", value{"b"}}}); });
        push(*b, *a);
        a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}}); });
        pull(*a, *b); // after b's last push: a has not seen b holding row 1
        t.now += 5;
        a->write([](auto& tx) { CHECK(tx.erase("items", item_key(1, "x"))); });
        t.now += 2000;
        CHECK(a->prune_tombstones() == 1);
        CHECK(rebootstrap(*a, *b) > 0);
        CHECK_FALSE(b->get("items", item_key(1, "x")));
        push(*b, *a);
        pull(*a, *b);
        CHECK(b->dump() == a->dump());
    }
}

TEST_CASE_TEMPLATE("snapshot: a tombstone the load removes does not hide the snapshot's cells", Env, CRDTSYNC_TEST_STORES) {
    // b holds a's delete of key 1; a prunes it and inserts key 1 again (the
    // key is free again at a, under every policy); the snapshot's cells of
    // the new row meet b's old tombstone before the load removes it.
    for (const auto p : all_policies) {
        CAPTURE(crdtsync::to_text(p));
        sim_time t;
        Env env;
        auto [a, b] = pruning_pair(env, p, t);
        a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{1}}}); });
        pull(*a, *b);
        t.now += 5;
        a->write([](auto& tx) { CHECK(tx.erase("items", item_key(1, "x"))); });
        pull(*a, *b);
        push(*b, *a);
        t.now += 2000;
        CHECK(a->prune_tombstones() == 1);
        a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{7}}}); });
        // b's position predates the prune only if b's last pull does: make it so.
        b->set_peer_received(a->site_id(), 1);
        (void)rebootstrap(*a, *b);
        REQUIRE(b->get("items", item_key(1, "x")));
        CHECK(b->get("items", item_key(1, "x"))->at("a") == value{7});
        pull(*a, *b);
        CHECK(b->dump() == a->dump());
    }
}

TEST_CASE_TEMPLATE("snapshot: a re-bootstrap keeps what the sender still holds, tombstones too", Env,
                   CRDTSYNC_TEST_STORES) {
    // b holds a's row and its delete, both seen by a; the snapshot names the
    // delete: nothing is removed, and b is unchanged.
    for (const auto p : all_policies) {
        CAPTURE(crdtsync::to_text(p));
        sim_time t;
        Env env;
        auto [a, b] = pruning_pair(env, p, t);
        a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{1}}}); });
        pull(*a, *b);
        t.now += 5;
        a->write([](auto& tx) { CHECK(tx.erase("items", item_key(1, "x"))); });
        pull(*a, *b);
        push(*b, *a);
        const auto before = b->dump();
        crdtsync::snapshot_writer out{*a, b->site_id(), 2};
        crdtsync::snapshot_loader in{*b};
        pump(out, in);
        REQUIRE(in.done());
        CHECK(in.removed() == 0);
        CHECK(b->dump() == before);
        CHECK(b->dump() == a->dump());
    }
}

TEST_CASE_TEMPLATE("snapshot: a re-bootstrap keeps what the sender wrote in the millisecond its snapshot began", Env,
                   CRDTSYNC_TEST_STORES) {
    // The header's HLC is a reading of the sender's clock, not a tick: the
    // sender's next write can carry that very timestamp, and is not covered.
    sim_time t;
    Env env;
    auto [a, b] = pruning_pair(env, delete_policy::insert_revives, t);
    push(*b, *a);
    t.now += 5;
    crdtsync::snapshot_writer out{*a, b->site_id(), 3};
    a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{1}}}); });
    CHECK(version_of(a->changes_since(b->site_id(), 0).change_sets.back().changes.front()) == out.header().version);
    pull(*a, *b); // b has the row before the load begins
    crdtsync::snapshot_loader in{*b};
    pump(out, in);
    REQUIRE(in.done());
    CHECK(in.removed() == 0);
    push(*b, *a);
    pull(*a, *b);
    CHECK(b->dump() == a->dump());
}

TEST_CASE_TEMPLATE("snapshot: a load given up for another snapshot leaves no cell under a tombstone", Env,
                   CRDTSYNC_TEST_STORES) {
    // b's delete, seen by a, which prunes it and writes the key again: the
    // load lets the new row's cells through b's tombstone (it may remove it);
    // given up before its footer for a snapshot whose rule does not cover the
    // tombstone, the cells go again: b ends as any merge of a's and b's
    // facts ends.
    sim_time t;
    Env env;
    auto [a, b] = pruning_pair(env, delete_policy::delete_wins, t);
    a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{1}}}); });
    pull(*a, *b);
    t.now += 5;
    b->write([](auto& tx) { CHECK(tx.erase("items", item_key(1, "x"))); });
    push(*b, *a);
    t.now += 2000;
    CHECK(a->prune_tombstones() == 1);
    a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{7}}}); });
    {
        crdtsync::snapshot_writer out{*a, b->site_id(), 1};
        crdtsync::snapshot_loader in{*b};
        std::vector<snapshot_chunk> v;
        while (auto c = out.next()) v.push_back(*c);
        for (std::size_t i = 0; i + 1 < v.size(); ++i) in.push(over_the_wire(v[i])); // all but the footer
    }
    crdtsync::snapshot_writer other{*a, 2}; // no receiverPosition: b's own tombstone is not covered
    crdtsync::snapshot_loader in{*b};
    pump(other, in);
    REQUIRE(in.done());
    auto z = open_node(env, options_for(delete_policy::delete_wins, 0x0d), fake_clock{&t.now});
    (void)z->apply(a->changes_since(z->site_id(), 0, 100000).change_sets);
    (void)z->apply(b->changes_since(z->site_id(), 0, 100000).change_sets);
    CHECK(b->dump() == z->dump());
}

TEST_CASE_TEMPLATE("snapshot: a prune after a re-bootstrap ends the sender's exemption from the GC horizon", Env,
                   CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto [a, b] = pruning_pair(env, delete_policy::insert_revives, t);
    // b prunes too.
    auto bo = options_for(delete_policy::insert_revives, 0x0b);
    bo.tombstone_retention = std::chrono::milliseconds(1000);
    auto store = std::move(b.store);
    b.rep.reset();
    b.store = std::move(store);
    b.rep = std::make_unique<replica_t<typename Env::store_type>>(*b.store, bo, fake_clock{&t.now});
    b->write([](auto& tx) { tx.insert("items", row{{"id", value{7}}, {"name", value{"b"}}}); });
    push(*b, *a);
    t.now += 5;
    b->write([](auto& tx) { CHECK(tx.erase("items", item_key(7, "b"))); }); // a does not hear of it
    t.now += 5;
    a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}}); });
    pull(*a, *b);
    t.now += 5;
    a->write([](auto& tx) { CHECK(tx.erase("items", item_key(1, "x"))); });
    t.now += 2000;
    CHECK(a->prune_tombstones() == 1);
    CHECK(rebootstrap(*a, *b) > 0);
    // The sender still gets deltas from where it was...
    CHECK_FALSE(b->changes_since(a->site_id(), a->peer(b->site_id()).received_up_to).snapshot_required);
    // ...until b prunes its delete of row 7, which a lacks.
    t.now += 2000;
    CHECK(b->prune_tombstones() == 1);
    CHECK(b->changes_since(a->site_id(), a->peer(b->site_id()).received_up_to).snapshot_required);
}

TEST_CASE_TEMPLATE("snapshot: a re-bootstrap takes the sender's older version of a cell it dropped", Env,
                   CRDTSYNC_TEST_STORES) {
    // b holds a's a=1; a deletes the row, prunes the delete, then receives a
    // third replica's older a=99. The snapshot names only a=99: a dropped
    // b's newer version (and never takes it back: it is a's own write).
    for (const auto p : {delete_policy::insert_revives, delete_policy::lww}) {
        CAPTURE(crdtsync::to_text(p));
        sim_time t;
        Env env;
        auto [a, b] = pruning_pair(env, p, t);
        const auto old = t.now;
        t.now += 5;
        a->write([](auto& tx) { tx.insert("items", row{{"id", value{1}}, {"name", value{"x"}}, {"a", value{1}}}); });
        pull(*a, *b);
        t.now += 5;
        a->write([](auto& tx) { CHECK(tx.erase("items", item_key(1, "x"))); });
        t.now += 2000;
        CHECK(a->prune_tombstones() == 1);
        CHECK(a->apply(change_set_builder{at(old, 0, site_of(0x0c))}.set("items", item_key(1, "x"), "a", value{99}).build()).applied == 1);
        (void)rebootstrap(*a, *b);
        push(*b, *a);
        pull(*a, *b);
        CHECK(b->dump() == a->dump());
    }
}

TEST_CASE_TEMPLATE("snapshot: property: re-bootstraps after pruning converge", Env, CRDTSYNC_TEST_STORES) {
    // Shared history on a and b (writes, third-party change sets, both ways,
    // acknowledged), then a deletes and prunes, both sides keep writing, and
    // b loads a's snapshot through random interruptions; then one round of
    // delta sync both ways leaves identical dumps.
    const auto seeds = env_number("CRDTSYNC_PROPERTY_SEEDS", CRDTSYNC_TEST_PROPERTY_SEEDS) * 5;
    std::uint64_t removed = 0;
    for (long s = 0; s < seeds; ++s) {
        const auto seed = static_cast<std::uint64_t>(s) + 1;
        CAPTURE(seed);
        const auto p = all_policies[seed % 3];
        CAPTURE(crdtsync::to_text(p));
        std::mt19937_64 rng{seed};
        auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
        sim_time t;
        Env env;
        auto ao = options_for(p, 0x0a);
        ao.tombstone_retention = std::chrono::milliseconds(50);
        auto a = open_node(env, ao, fake_clock{&t.now});
        (void)a->apply(schema_sets());
        auto b = open_with_schema(env, p, 0x0b, t);
        change_set_generator gen{rng, epoch_ms - 2000, 4000};
        auto write_on = [&](auto& r, bool deletes) {
            r.write([&](auto& tx) {
                const int id = pick(1, 40);
                const auto k = item_key(id, "k");
                if (deletes && pick(0, 1)) (void)tx.erase("items", k);
                else if (!tx.update("items", k, row{{"a", value{pick(0, 9)}}}) && p != delete_policy::delete_wins)
                    tx.insert("items", row{{"id", value{id}}, {"name", value{"k"}}});
            });
        };
        for (int i = 0; i < 30; ++i) {
            t.now += 1;
            (void)(pick(0, 1) ? a : b)->apply(gen.next());
            if (pick(0, 2) == 0) write_on(*b, false);
            if (pick(0, 2) == 0) write_on(*a, true);
        }
        push(*b, *a);
        pull(*a, *b);
        if (pick(0, 1)) push(*b, *a);
        t.now += 10;
        for (int i = 0; i < 5; ++i) write_on(*a, true);
        for (int i = 0; i < 5; ++i) (void)a->apply(gen.next());
        t.now += 100;
        (void)a->prune_tombstones();

        using W = crdtsync::snapshot_writer<replica_t<typename Env::store_type>>;
        using L = crdtsync::snapshot_loader<replica_t<typename Env::store_type>>;
        const auto chunk = static_cast<std::size_t>(pick(1, 20));
        auto out = std::make_unique<W>(*a, b->site_id(), chunk);
        auto in = std::make_unique<L>(*b);
        int steps = 0, next_id = 2000;
        while (!in->done()) {
            REQUIRE(++steps < 100000);
            switch (pick(0, 9)) {
            case 0:
                t.now += 1;
                if (pick(0, 1)) (void)a->apply(gen.next());
                else write_on(*a, false);
                break;
            case 1:
                t.now += 1;
                if (pick(0, 1)) (void)b->apply(gen.next());
                else b->write([&](auto& tx) { tx.insert("items", row{{"id", value{next_id++}}, {"name", value{"b"}}}); });
                break;
            case 2:
                in.reset();
                out.reset();
                in = std::make_unique<L>(*b);
                if (const auto k = in->checkpoint()) out = std::make_unique<W>(*a, *k, chunk);
                else out = std::make_unique<W>(*a, b->site_id(), chunk);
                break;
            default: {
                auto c = out->next();
                REQUIRE(c);
                in->push(over_the_wire(*c));
            }
            }
        }
        removed += in->removed();
        push(*b, *a);
        pull(*a, *b);
        CHECK(b->dump() == a->dump());
    }
    CHECK(removed > 0); // the sweep did run
}

TEST_CASE_TEMPLATE("snapshot: property: loads interrupted at random, with writes on both sides, converge", Env,
                   CRDTSYNC_TEST_STORES) {
    const auto seeds = env_number("CRDTSYNC_PROPERTY_SEEDS", CRDTSYNC_TEST_PROPERTY_SEEDS);
    for (long s = 0; s < seeds; ++s) {
        const auto seed = static_cast<std::uint64_t>(s) + 1;
        CAPTURE(seed);
        const auto p = all_policies[seed % 3];
        CAPTURE(crdtsync::to_text(p));
        std::mt19937_64 rng{seed};
        auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
        sim_time t;
        Env env;
        auto a = populated(env, p, t, seed, pick(0, 60));
        auto b = open_node(env, options_for(p, 0x0b), fake_clock{&t.now});
        // Remote change sets from third sites, arriving at either side.
        change_set_generator gen{rng, epoch_ms - 2000, 4000};
        const auto chunk = static_cast<std::size_t>(pick(1, 20));
        auto out = std::make_unique<crdtsync::snapshot_writer<replica_t<typename Env::store_type>>>(*a, chunk);
        auto in = std::make_unique<crdtsync::snapshot_loader<replica_t<typename Env::store_type>>>(*b);
        int next_id = 2000, interruptions = 0, steps = 0;
        while (!in->done()) {
            REQUIRE(++steps < 100000);
            switch (pick(0, 9)) {
            case 0: // the sender writes
                t.now += static_cast<std::uint64_t>(pick(0, 3));
                if (pick(0, 1)) {
                    (void)a->apply(gen.next());
                } else {
                    a->write([&](auto& tx) {
                        const int id = 10 + pick(0, 70);
                        const auto k = item_key(id, "row " + std::to_string(id));
                        if (!tx.update("items", k, row{{"a", value{pick(0, 9)}}}) && p != delete_policy::delete_wins)
                            tx.insert("items", row{{"id", value{id}}, {"name", value{"row " + std::to_string(id)}}});
                        const int gone = 10 + pick(0, 70);
                        if (pick(0, 2) == 0) (void)tx.erase("items", item_key(gone, "row " + std::to_string(gone)));
                    });
                }
                break;
            case 1: // the receiver writes, once it has the tables
                if (b->find_table("items") && b->find_table("notes")) {
                    t.now += static_cast<std::uint64_t>(pick(0, 3));
                    if (pick(0, 1)) (void)b->apply(gen.next());
                    else b->write([&](auto& tx) { tx.insert("items", row{{"id", value{next_id++}}, {"name", value{"b"}}}); });
                }
                break;
            case 2: { // the transfer breaks; both sides start again from the checkpoint
                ++interruptions;
                in.reset();
                out.reset();
                in = std::make_unique<crdtsync::snapshot_loader<replica_t<typename Env::store_type>>>(*b);
                if (const auto k = in->checkpoint())
                    out = std::make_unique<crdtsync::snapshot_writer<replica_t<typename Env::store_type>>>(*a, *k, chunk);
                else
                    out = std::make_unique<crdtsync::snapshot_writer<replica_t<typename Env::store_type>>>(*a, chunk);
                break;
            }
            default: {
                auto c = out->next();
                REQUIRE(c);
                in->push(over_the_wire(*c));
            }
            }
        }
        CAPTURE(interruptions);
        CHECK(out->done());
        // Delta sync both ways from where the snapshot left them.
        pull(*a, *b);
        const auto up = b->changes_since(a->site_id(), 0);
        CHECK(a->apply(up.change_sets).rejected.empty());
        CHECK(b->dump() == a->dump());
    }
}
