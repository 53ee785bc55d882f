// libFuzzer target: a differential test of the merge. The input drives three
// replicas over the memory store, all under one delete policy (the first
// byte picks it): local transactions (inserts, updates, key changes, deletes,
// re-inserts) on a few keys of two small tables; physical clocks that stand
// still, collide and jump (back an hour, forward a day, just past the drift
// bound); and deliveries between the replicas: `changes_since` pages from
// any position with change sets dropped, duplicated and reordered, and the
// sync loop (`changes_for`, `apply_from`, `acknowledge`, an acknowledgement
// sometimes lost). The only rejection allowed is `clock_drift`, and only for
// a change set really beyond the receiver's bound.
//
// Then the clocks catch up, the sync loop runs between every pair until
// nothing moves, and:
// - the three dumps are identical;
// - each replica's visible rows equal those of a reference model that knows
//   nothing of the replica: every fact any replica committed (as reported by
//   `on_local_change`), folded per cell by greatest HLC and per row by
//   greatest delete HLC, read through the policy's visibility rule of
//   docs/semantics.md.
// Anything else (a difference, an unexpected exception, a crash, a
// sanitizer report) aborts.
//
// The input: byte 0 picks the policy; then up to 400 steps, each an opcode
// byte `op` and its operands (a used-up input reads as zeros):
//   op % 8 = 0-2  a transaction on replica op / 8 % 3: a count byte (1 + b % 3
//                 operations), then kind, key and value bytes per operation;
//   op % 8 = 3    a clock step: replica, kind (+ one byte for some kinds);
//   op % 8 = 4-5  a changes_since delivery: from, to, position, limit, one
//                 byte per change set (0 drop, 1 twice, else once), order;
//   op % 8 = 6-7  a sync-loop step: from, to, limit (high bit: ack lost).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <crdtsync/backends/memory.hpp>
#include <crdtsync/replica.hpp>

namespace {

using crdtsync::delete_policy;
using crdtsync::hlc;
using crdtsync::row;
using crdtsync::row_key;
using crdtsync::value;

constexpr std::uint64_t epoch_ms = 1'700'000'000'000;
constexpr std::uint64_t drift_ms = crdtsync::default_max_drift_ms;

/// A physical clock the input sets.
struct input_clock {
    const std::uint64_t* now = nullptr;
    std::uint64_t operator()() const noexcept { return *now; }
};
using replica_t = crdtsync::replica<crdtsync::memory_store, input_clock>;

/// CRDTSYNC_FUZZ_TRACE=1 prints what a run does (to read a crashing input).
bool tracing() {
    static const bool on = std::getenv("CRDTSYNC_FUZZ_TRACE") != nullptr;
    return on;
}
void trace(const std::string& line) {
    if (tracing()) std::fprintf(stderr, "%s\n", line.c_str());
}

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_differential: %s\n", what.c_str());
    std::abort();
}

/// Reads the input a byte at a time; zeros once it is used up.
struct input {
    const std::uint8_t* p;
    std::size_t n;
    std::uint8_t byte() {
        if (n == 0) return 0;
        --n;
        return *p++;
    }
    [[nodiscard]] bool empty() const { return n == 0; }
};

// ------------------------------------------------------------------ schema

/// a(id INTEGER, x INTEGER, y TEXT), key id; b(k TEXT, n INTEGER, v INTEGER),
/// key (k, n). BINARY keys: a key value names one row, spelled one way.
std::vector<crdtsync::change_set> make_schema() {
    std::uint64_t now = epoch_ms - 1000;
    crdtsync::memory_store s;
    crdtsync::replica_options o;
    crdtsync::site_id::bytes_type bytes{};
    bytes.fill(0x01);
    o.site = crdtsync::site_id{bytes};
    replica_t r{s, o, input_clock{&now}};
    crdtsync::table_def a{"a"};
    a.column("id", crdtsync::column_type::integer, false)
        .column("x", crdtsync::column_type::integer)
        .column("y", crdtsync::column_type::text)
        .primary_key({"id"});
    crdtsync::table_def b{"b"};
    b.column("k", crdtsync::column_type::text, false)
        .column("n", crdtsync::column_type::integer, false)
        .column("v", crdtsync::column_type::integer)
        .primary_key({"k", "n"});
    r.write([&](auto& tx) {
        tx.create_table(a);
        tx.create_table(b);
    });
    return r.changes_since(crdtsync::site_id{}, 0).change_sets;
}

const std::vector<crdtsync::change_set>& schema() {
    static const auto sets = make_schema();
    return sets;
}

// ------------------------------------------------------------------ the reference model

/// Every fact folded per cell (greatest HLC) and per row (greatest delete),
/// read through the delete policy. Deliberately knows nothing of the
/// replica: no arrival order, no dropped cells, no change log.
struct reference {
    struct cell {
        hlc h;
        value v;
    };
    struct row_state {
        std::optional<hlc> tomb;
        std::map<std::string, cell> cells;
    };
    // table -> key -> state
    std::map<std::string, std::map<row_key, row_state>> tables;

    void fold(const crdtsync::change_set& cs) {
        for (const auto& c : cs.changes) {
            if (const auto* cc = std::get_if<crdtsync::column_change>(&c)) {
                auto& cells = tables[cc->table][cc->pk].cells;
                auto it = cells.find(cc->column);
                if (it == cells.end() || it->second.h < cc->version) cells[cc->column] = cell{cc->version, cc->val};
            } else {
                const auto& d = std::get<crdtsync::row_delete>(c);
                auto& tomb = tables[d.table][d.pk].tomb;
                if (!tomb || *tomb < d.version) tomb = d.version;
            }
        }
    }

    /// The visible rows of `table` (columns `cols`, the first `keys` of them
    /// the key), as docs/semantics.md, "Delete policies", defines them.
    [[nodiscard]] std::vector<row> rows(const std::string& table, const std::vector<std::string>& cols,
                                        std::size_t keys, delete_policy policy) const {
        std::vector<row> out;
        const auto t = tables.find(table);
        if (t == tables.end()) return out;
        for (const auto& entry : t->second) {
            const row_key& pk = entry.first;
            const row_state& s = entry.second;
            const auto newer = [&](const cell& c) { return !s.tomb || *s.tomb < c.h; };
            bool key_cell = false, any_newer = false, key_newer = false;
            for (std::size_t i = 0; i < cols.size(); ++i) {
                const auto it = s.cells.find(cols[i]);
                if (it == s.cells.end()) continue;
                if (i < keys) key_cell = true;
                if (newer(it->second)) {
                    any_newer = true;
                    if (i < keys) key_newer = true;
                }
            }
            bool visible = false;
            switch (policy) {
            case delete_policy::insert_revives: visible = key_newer; break;
            case delete_policy::delete_wins: visible = !s.tomb && key_cell; break;
            case delete_policy::lww: visible = any_newer; break;
            }
            if (!visible) continue;
            // Cells newer than the tombstone show; a key column without one
            // reads from the key; other columns read as NULL.
            row r;
            for (std::size_t i = 0; i < cols.size(); ++i) {
                const auto it = s.cells.find(cols[i]);
                if (it != s.cells.end() && newer(it->second)) r[cols[i]] = it->second.v;
                else r[cols[i]] = i < keys ? pk[i] : value{};
            }
            out.push_back(std::move(r));
        }
        return out;
    }
};

/// Rows as sorted lines of text, to compare without caring about order.
std::vector<std::string> as_text(const std::vector<row>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) {
        std::string line;
        for (const auto& [c, v] : r) line += c + "=" + v.to_text() + ";";
        out.push_back(std::move(line));
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string join(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += "  " + l + "\n";
    return out;
}

// ------------------------------------------------------------------ the run

struct world {
    delete_policy policy;
    std::array<std::uint64_t, 3> now{epoch_ms, epoch_ms, epoch_ms};
    crdtsync::memory_store stores[3];
    std::vector<std::unique_ptr<replica_t>> reps;
    reference model;

    explicit world(delete_policy p) : policy(p) {
        for (int i = 0; i < 3; ++i) {
            crdtsync::replica_options o;
            o.deletes = p;
            crdtsync::site_id::bytes_type bytes{};
            bytes.fill(static_cast<std::uint8_t>(0xa1 + i));
            o.site = crdtsync::site_id{bytes};
            reps.push_back(std::make_unique<replica_t>(stores[i], o, input_clock{&now[static_cast<std::size_t>(i)]}));
            replica_t& r = *reps.back();
            if (!r.apply(schema()).rejected.empty()) fail("the schema was rejected");
            r.on_local_change([this](const crdtsync::local_change& c) { model.fold(c.changes); });
        }
        // Every replica has the schema: the sync loop need not send it
        // around again (DDL parsing would be most of a run's time).
        for (auto& from : reps)
            for (auto& to : reps)
                if (from != to) from->acknowledge(to->site_id(), from->position());
    }

    static value x_value(std::uint8_t b) {
        switch (b % 4) {
        case 0: return value{};
        default: return value{std::int64_t{b % 4}};
        }
    }
    static value y_value(std::uint8_t b) {
        switch (b % 3) {
        case 0: return value{};
        case 1: return value{"p"};
        default: return value{"q"};
        }
    }

    /// One local operation inside a transaction.
    void local_op(replica_t::transaction& tx, input& in) {
        const std::uint8_t kind = in.byte();
        const std::uint8_t k = in.byte();
        const std::uint8_t v = in.byte();
        if (kind & 0x80) { // table b
            const row_key pk{value{std::string(k & 1 ? "x" : "y")}, value{std::int64_t{(k >> 1) % 2}}};
            switch (kind % 4) {
            case 0: tx.insert("b", row{{"k", pk[0]}, {"n", pk[1]}, {"v", x_value(v)}}); break;
            case 1: (void)tx.update("b", pk, row{{"v", x_value(v)}}); break;
            case 2: (void)tx.update("b", pk, row{{"n", value{std::int64_t{v % 2}}}}); break; // a key change
            default: (void)tx.erase("b", pk); break;
            }
        } else {
            const row_key pk{value{std::int64_t{k % 3}}};
            switch (kind % 5) {
            case 0: tx.insert("a", row{{"id", pk[0]}, {"x", x_value(v)}, {"y", y_value(v >> 2)}}); break;
            case 1: (void)tx.update("a", pk, row{{"x", x_value(v)}}); break;
            case 2: (void)tx.update("a", pk, row{{"x", x_value(v)}, {"y", y_value(v >> 2)}}); break;
            case 3: (void)tx.update("a", pk, row{{"id", value{std::int64_t{v % 3}}}}); break; // a key change
            default: (void)tx.erase("a", pk); break;
            }
        }
    }

    void local_write(std::size_t r, input& in) {
        const int ops = 1 + in.byte() % 3;
        try {
            reps[r]->write([&](auto& tx) {
                for (int i = 0; i < ops; ++i) local_op(tx, in);
            });
            trace("replica " + std::to_string(r) + " committed; clock " + reps[r]->clock().transaction_id());
        } catch (const crdtsync::constraint_error& e) {
            trace("replica " + std::to_string(r) + " refused: " + e.what());
            // Inserting a visible key, or (delete_wins) a deleted one: the
            // transaction aborted, nothing of it was committed or reported.
        }
    }

    void clock_op(input& in) {
        const std::size_t r = in.byte() % 3;
        struct guard {
            world& w;
            ~guard() {
                std::string line = "clocks (ms from the start):";
                for (const auto n : w.now) line += " " + std::to_string(static_cast<std::int64_t>(n - epoch_ms));
                trace(line);
            }
        } g{*this};
        switch (in.byte() % 8) {
        case 0:
        case 1: { // time passes for everyone, often not at all
            const std::uint64_t dt = in.byte() % 3;
            for (auto& n : now) n += dt;
            break;
        }
        case 2: now[r] = now[(r + 1) % 3]; break; // two clocks collide
        case 3: now[r] -= 3'600'000; break;        // back an hour
        case 4: now[r] += 86'400'000; break;       // forward a day
        case 5: now[r] += drift_ms + 1; break;     // just past the drift bound
        case 6: now[r] -= in.byte() % 50; break;   // a small step back
        default: now[r] += in.byte(); break;
        }
    }

    /// The only acceptable rejection: a change set beyond `to`'s drift bound.
    void check_rejections(const crdtsync::apply_result& res, const std::vector<crdtsync::change_set>& sets,
                          std::size_t to) {
        for (const auto& rj : res.rejected) {
            if (rj.code != std::optional<std::string>("clock_drift")) fail("unexpected rejection: " + rj.reason);
            const auto it = std::find_if(sets.begin(), sets.end(),
                                         [&](const auto& cs) { return cs.transaction_id == rj.transaction_id; });
            if (it == sets.end()) fail("a rejection names no change set sent: " + rj.transaction_id);
            if (it->version.wall_time <= now[to] + drift_ms) fail("rejected within the drift bound: " + rj.reason);
        }
    }

    /// changes_since from any position, with drops, duplicates, reordering.
    void deliver(input& in) {
        const std::size_t from = in.byte() % 3;
        const std::size_t to = (from + 1 + in.byte() % 2) % 3;
        const std::uint8_t p = in.byte();
        std::uint64_t pos = 0;
        if (p & 1) pos = reps[from]->position() * (p >> 1) / 128;
        auto d = reps[from]->changes_since(reps[to]->site_id(), pos, 1 + in.byte() % 16);
        if (d.snapshot_required) fail("snapshot_required without a prune");
        std::vector<crdtsync::change_set> sets;
        for (auto& cs : d.change_sets) {
            switch (in.byte() % 4) {
            case 0: break; // dropped
            case 1: sets.push_back(cs); [[fallthrough]]; // duplicated
            default: sets.push_back(cs);
            }
        }
        const std::uint8_t order = in.byte();
        if (order & 1) std::reverse(sets.begin(), sets.end());
        if (!sets.empty()) std::rotate(sets.begin(), sets.begin() + (order >> 1) % sets.size(), sets.end());
        const auto res = reps[to]->apply(sets);
        trace("deliver " + std::to_string(from) + "->" + std::to_string(to) + " from " + std::to_string(pos) + ": " +
              std::to_string(sets.size()) + " of " + std::to_string(d.change_sets.size()) + " sets, applied " +
              std::to_string(res.applied) + ", rejected " + std::to_string(res.rejected.size()));
        check_rejections(res, sets, to);
    }

    /// One step of the sync loop; the acknowledgement may get lost.
    bool sync_step(std::size_t from, std::size_t to, std::size_t limit, bool lose_ack) {
        auto d = reps[from]->changes_for(reps[to]->site_id(), limit);
        if (d.snapshot_required) fail("snapshot_required without a prune");
        const auto res = reps[to]->apply_from(reps[from]->site_id(), d);
        trace("sync " + std::to_string(from) + "->" + std::to_string(to) + ": " + std::to_string(d.change_sets.size()) +
              " sets, applied " + std::to_string(res.applied) + ", rejected " + std::to_string(res.rejected.size()) +
              (lose_ack ? ", acknowledgement lost" : ""));
        check_rejections(res, d.change_sets, to);
        if (res.rejected.empty() && !lose_ack) reps[from]->acknowledge(reps[to]->site_id(), d.next_position);
        return d.more;
    }

    void check() {
        std::array<std::string, 3> dumps;
        for (std::size_t i = 0; i < 3; ++i) dumps[i] = reps[i]->dump();
        for (std::size_t i = 1; i < 3; ++i)
            if (dumps[i] != dumps[0]) fail("dumps differ after the full exchange:\n" + dumps[0] + "\n----\n" + dumps[i]);
        const std::vector<std::pair<std::string, std::vector<std::string>>> tables{{"a", {"id", "x", "y"}},
                                                                                  {"b", {"k", "n", "v"}}};
        for (const auto& [name, cols] : tables) {
            const auto want = as_text(model.rows(name, cols, name == "a" ? 1 : 2, policy));
            for (std::size_t i = 0; i < 3; ++i) {
                const auto got = as_text(reps[i]->rows(name));
                if (got != want)
                    fail("policy " + std::string(crdtsync::to_text(policy)) + ", table " + name + ", replica " +
                         std::to_string(i) + " shows\n" + join(got) + "the reference model\n" + join(want) + "dump:\n" +
                         dumps[i]);
            }
        }
    }

    void run(input& in) {
        for (int step = 0; step < 400 && !in.empty(); ++step) {
            const std::uint8_t op = in.byte();
            switch (op % 8) {
            case 0:
            case 1:
            case 2: local_write(op / 8 % 3, in); break;
            case 3: clock_op(in); break;
            case 4:
            case 5: deliver(in); break;
            default: {
                const std::size_t from = in.byte() % 3;
                const std::size_t to = (from + 1 + in.byte() % 2) % 3;
                const std::uint8_t b = in.byte();
                (void)sync_step(from, to, 1 + b % 8, (b & 0x80) != 0);
            }
            }
        }
        // The clocks catch up: every HLC written is now within every bound.
        std::uint64_t latest = 0;
        for (std::size_t i = 0; i < 3; ++i) latest = std::max({latest, now[i], reps[i]->clock().wall_time});
        for (auto& n : now) n = latest + 1;
        // The sync loop between every pair until nothing moves.
        for (int round = 0;; ++round) {
            if (round == 5) fail("the sync loop did not settle in 5 rounds");
            // Whatever a replica stores gets a new local position.
            std::array<std::uint64_t, 3> before{};
            for (std::size_t i = 0; i < 3; ++i) before[i] = reps[i]->position();
            for (std::size_t from = 0; from < 3; ++from)
                for (std::size_t to = 0; to < 3; ++to)
                    if (from != to)
                        while (sync_step(from, to, 64, false)) {
                        }
            bool moved = false;
            for (std::size_t i = 0; i < 3; ++i) moved = moved || before[i] != reps[i]->position();
            if (!moved) break;
        }
        if (tracing())
            for (const char* t : {"a", "b"}) trace(std::string("rows of ") + t + ":\n" + join(as_text(reps[0]->rows(t))));
        check();
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    input in{data + 1, size - 1};
    static constexpr delete_policy policies[] = {delete_policy::insert_revives, delete_policy::delete_wins,
                                                 delete_policy::lww};
    world w{policies[data[0] % 3]};
    w.run(in);
    return 0;
}
