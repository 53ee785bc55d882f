#pragma once
// The standard workload of the merge benchmarks, and its correctness checks.
//
// Table main.bench (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, r REAL).
// Replica A inserts `rows` rows (name 'nameA-<id>', n id*7+1, r id+0.25),
// committing every 100 rows, and exports everything with changes_since.
// Only the three non-key columns count as changes: 3 per row (an insert also
// records the key column, which travels but is not counted).
//
// Round 1: a fresh replica B merges A's export.
// Round 2: B already holds rows [0, half) (half = ceil(rows / 2)), written by
// B itself with B's values (name 'nameB-<id>', n id*7+2, r id+0.5):
// rows [0, older_end) (older_end = floor(half / 2)) at a wall clock one hour
// behind A's, so A must win them; rows [older_end, half) one hour ahead, so
// B must win them. After the merge exactly rows - (half - older_end) rows hold
// A's values (25,000 of 33,334 for the standard 100,002 changes).

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <crdtsync/change.hpp>
#include <crdtsync/hlc_clock.hpp>
#include <crdtsync/replica.hpp>
#include <crdtsync/schema.hpp>

#include "harness.hpp"

namespace crdtsync_bench {

/// A wall clock with an adjustable offset: the real clock (so the merge pays
/// for reading it as it would in production) shifted by `*offset` ms, which
/// lets the benchmark place B's versions before or after A's.
struct offset_clock {
    const std::int64_t* offset = nullptr;
    [[nodiscard]] std::uint64_t operator()() const noexcept {
        const auto now = crdtsync::system_clock_ms{}();
        return offset ? static_cast<std::uint64_t>(static_cast<std::int64_t>(now) + *offset) : now;
    }
};

template <class Store>
using bench_replica = crdtsync::replica<Store, offset_clock>;

inline constexpr std::int64_t one_hour_ms = 3'600'000;
inline constexpr std::size_t rows_per_transaction = 100;
inline constexpr std::size_t counted_columns = 3; // name, n, r
inline constexpr const char* table_name = "bench";

inline crdtsync::site_id fixed_site(std::uint8_t tag) {
    crdtsync::site_id::bytes_type b{};
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(tag * 16 + i);
    b[6] = static_cast<std::uint8_t>((b[6] & 0x0F) | 0x40);
    b[8] = static_cast<std::uint8_t>((b[8] & 0x3F) | 0x80);
    return crdtsync::site_id{b};
}
inline crdtsync::site_id site_a() { return fixed_site(0xA); }
inline crdtsync::site_id site_b() { return fixed_site(0xB); }

inline crdtsync::table_def bench_table() {
    crdtsync::table_def t{table_name};
    t.column("id", crdtsync::column_type::integer, false)
        .column("name", crdtsync::column_type::text)
        .column("n", crdtsync::column_type::integer)
        .column("r", crdtsync::column_type::real)
        .primary_key({"id"});
    return t;
}

/// The sizes of one instance of the workload.
struct workload {
    std::size_t rows = 0;      // A's rows
    std::size_t half = 0;      // round 2: B holds [0, half)
    std::size_t older_end = 0; // round 2: B's rows [0, older_end) are older than A's

    /// The workload closest to `changes` counted changes (3 per row).
    static workload for_changes(std::size_t changes) {
        workload w;
        w.rows = (changes + counted_columns - 1) / counted_columns;
        w.half = (w.rows + 1) / 2;
        w.older_end = w.half / 2;
        return w;
    }
    [[nodiscard]] std::size_t changes() const { return rows * counted_columns; }
    /// Rows that must end with A's values after round 2.
    [[nodiscard]] std::size_t round2_rows_with_a_values() const { return rows - (half - older_end); }
};

enum class writer { a, b };

inline crdtsync::row row_values(writer who, std::int64_t id) {
    crdtsync::row r;
    r["id"] = crdtsync::value{id};
    if (who == writer::a) {
        r["name"] = crdtsync::value{"nameA-" + std::to_string(id)};
        r["n"] = crdtsync::value{id * 7 + 1};
        r["r"] = crdtsync::value{static_cast<double>(id) + 0.25};
    } else {
        r["name"] = crdtsync::value{"nameB-" + std::to_string(id)};
        r["n"] = crdtsync::value{id * 7 + 2};
        r["r"] = crdtsync::value{static_cast<double>(id) + 0.5};
    }
    return r;
}

/// Inserts rows [begin, end) with `who`'s values, `per_txn` rows a transaction.
template <class Replica>
void write_rows(Replica& rep, std::size_t begin, std::size_t end, writer who, std::size_t per_txn = rows_per_transaction) {
    for (std::size_t at = begin; at < end;) {
        const std::size_t stop = std::min(end, at + per_txn);
        rep.write([&](auto& tx) {
            for (std::size_t id = at; id < stop; ++id) tx.insert(table_name, row_values(who, static_cast<std::int64_t>(id)));
        });
        at = stop;
    }
}

/// Everything `rep` holds that `peer` lacks, paged `page` facts at a time,
/// concatenated: the export a peer would receive.
template <class Replica>
std::vector<crdtsync::change_set> export_all(const Replica& rep, const crdtsync::site_id& peer, std::size_t page = 10'000) {
    std::vector<crdtsync::change_set> out;
    std::uint64_t pos = 0;
    for (;;) {
        auto d = rep.changes_since(peer, pos, page);
        check(!d.snapshot_required, "changes_since asked for a snapshot");
        for (auto& cs : d.change_sets) out.push_back(std::move(cs));
        pos = d.next_position;
        if (!d.more) break;
    }
    return out;
}

/// Facts in change sets (data changes plus migrations).
inline std::size_t fact_count(std::span<const crdtsync::change_set> sets) {
    std::size_t n = 0;
    for (const auto& cs : sets) n += cs.changes.size() + cs.migrations.size();
    return n;
}

/// Counted changes: column changes of non-key columns.
inline std::size_t counted_changes(std::span<const crdtsync::change_set> sets) {
    std::size_t n = 0;
    for (const auto& cs : sets)
        for (const auto& c : cs.changes)
            if (const auto* cc = std::get_if<crdtsync::column_change>(&c); cc && cc->column != "id") ++n;
    return n;
}

/// A slice of the export that one apply() call (one write transaction) takes.
struct batch {
    std::size_t begin = 0, end = 0; // change-set indexes
    std::size_t counted = 0;        // counted changes in it
    std::size_t facts = 0;          // every fact in it
};

/// Splits the export into consecutive batches of whole change sets, each
/// closed as soon as it holds at least `changes_per_batch` counted changes.
inline std::vector<batch> make_batches(const std::vector<crdtsync::change_set>& sets, std::size_t changes_per_batch) {
    std::vector<batch> out;
    batch cur;
    for (std::size_t i = 0; i < sets.size(); ++i) {
        const std::span<const crdtsync::change_set> one(&sets[i], 1);
        cur.counted += counted_changes(one);
        cur.facts += fact_count(one);
        cur.end = i + 1;
        if (cur.counted >= changes_per_batch) {
            out.push_back(cur);
            cur = batch{cur.end, cur.end, 0, 0};
        }
    }
    if (cur.end > cur.begin) out.push_back(cur);
    return out;
}

inline std::span<const crdtsync::change_set> slice(const std::vector<crdtsync::change_set>& sets, const batch& b) {
    return std::span<const crdtsync::change_set>(sets).subspan(b.begin, b.end - b.begin);
}

/// Adds an apply result to a running total.
inline void accumulate(crdtsync::apply_result& total, const crdtsync::apply_result& r) {
    total.applied += r.applied;
    total.skipped += r.skipped;
    total.conflicts += r.conflicts;
    total.transactions += r.transactions;
    total.rejected.insert(total.rejected.end(), r.rejected.begin(), r.rejected.end());
}

/// Builds round 2's pre-state on a fresh replica B (whose clock offset is
/// `*offset`): rows [0, older_end) an hour behind, [older_end, half) an hour ahead.
template <class Replica>
void build_round2_state(Replica& b, std::int64_t& offset, const workload& w) {
    offset = -one_hour_ms;
    b.create_table(bench_table());
    write_rows(b, 0, w.older_end, writer::b);
    offset = +one_hour_ms;
    write_rows(b, w.older_end, w.half, writer::b);
}

inline bool has_values(const crdtsync::row& r, writer who, std::int64_t id) {
    const auto want = row_values(who, id);
    for (const auto& [k, v] : want) {
        auto it = r.find(k);
        if (it == r.end() || !(it->second == v)) return false;
    }
    return true;
}

/// Round 1: every row holds A's values; the apply results add up.
template <class Replica>
void verify_round1(const Replica& b, const workload& w, const crdtsync::apply_result& res, std::size_t facts) {
    check(res.rejected.empty(), "round 1: " + std::to_string(res.rejected.size()) + " change sets rejected" +
                                    (res.rejected.empty() ? "" : ": " + res.rejected.front().reason));
    check(res.applied == facts && res.skipped == 0 && res.conflicts == 0,
          "round 1: expected " + std::to_string(facts) + " facts applied, got applied " + std::to_string(res.applied) +
              " skipped " + std::to_string(res.skipped) + " conflicts " + std::to_string(res.conflicts));
    for (std::size_t id = 0; id < w.rows; ++id) {
        auto r = b.get(table_name, {crdtsync::value{static_cast<std::int64_t>(id)}});
        check(r.has_value(), "round 1: row " + std::to_string(id) + " is missing");
        check(has_values(*r, writer::a, static_cast<std::int64_t>(id)), "round 1: row " + std::to_string(id) + " lacks A's values");
    }
}

/// Round 2: exactly round2_rows_with_a_values() rows hold A's values, the
/// others B's, as the versions dictate; the apply results add up.
template <class Replica>
std::size_t verify_round2(const Replica& b, const workload& w, const crdtsync::apply_result& res, std::size_t facts) {
    check(res.rejected.empty(), "round 2: " + std::to_string(res.rejected.size()) + " change sets rejected" +
                                    (res.rejected.empty() ? "" : ": " + res.rejected.front().reason));
    check(res.applied + res.skipped + res.conflicts == facts,
          "round 2: applied + skipped + conflicts = " + std::to_string(res.applied + res.skipped + res.conflicts) +
              ", expected " + std::to_string(facts));
    // Cells of B's rows where the values differ are conflicts either way.
    check(res.conflicts == counted_columns * w.half,
          "round 2: expected " + std::to_string(counted_columns * w.half) + " conflicts, got " + std::to_string(res.conflicts));
    std::size_t with_a = 0, with_b = 0;
    for (std::size_t id = 0; id < w.rows; ++id) {
        const auto sid = static_cast<std::int64_t>(id);
        auto r = b.get(table_name, {crdtsync::value{sid}});
        check(r.has_value(), "round 2: row " + std::to_string(id) + " is missing");
        const bool a_wins = id < w.older_end || id >= w.half;
        if (has_values(*r, writer::a, sid)) ++with_a;
        else if (has_values(*r, writer::b, sid)) ++with_b;
        check(has_values(*r, a_wins ? writer::a : writer::b, sid),
              "round 2: row " + std::to_string(id) + " should hold " + (a_wins ? "A" : "B") + "'s values");
    }
    check(with_a == w.round2_rows_with_a_values(), "round 2: " + std::to_string(with_a) + " rows hold A's values, expected " +
                                                       std::to_string(w.round2_rows_with_a_values()));
    check(with_a + with_b == w.rows, "round 2: some rows hold neither A's nor B's values");
    return with_a;
}

} // namespace crdtsync_bench
