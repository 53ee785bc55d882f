#pragma once
/// \file replica_check.hpp
/// `check(replica)`: walks everything a replica keeps in its store and
/// reports every way it disagrees with itself. For tests (the crash trials
/// run it after every SIGKILL), for the `crdtsync` tool, and for an
/// application that wants to know its store is sound after a crash.
///
///     auto report = crdtsync::check(rep);
///     if (!report.ok()) for (auto& p : report.problems) std::cerr << p << "\n";
///
/// It reads in one read transaction (a consistent state) and writes nothing.
/// What it checks (docs/storage.md describes the layout):
/// - meta: the format version, the site id, the clock, the counters;
/// - every table record decodes and is what the stored migrations define
///   (no more tables, no fewer); every row belongs to a table, decodes
///   whole, names only that table's columns;
/// - the change log and the data agree both ways: every cell and tombstone
///   carries a sequence number at or below the replica's, whose log entry
///   names its row; every log entry names a row (or migration) that still
///   holds something written at that sequence number, every migration has
///   its entry; every held change set decodes, has its entry, and their
///   facts add up to meta 'held';
/// - the tombstone arrival index and the tombstones agree both ways;
/// - every stored HLC is at or below the clock (the clock has seen it);
/// - every peer record is whole, and no peer acknowledged a position this
///   replica has not reached.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <crdtsync/detail/change_set_record.hpp>
#include <crdtsync/detail/schema_catalog.hpp>
#include <crdtsync/detail/layout.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/hlc.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// What `check` found.
struct consistency_report {
    std::uint64_t tables = 0, rows = 0, cells = 0, tombstones = 0, log_entries = 0, migrations = 0, peers = 0;
    std::uint64_t held_change_sets = 0; ///< held for a table or column not known yet
    /// One line per problem, naming where it is; empty when the store is sound.
    std::vector<std::string> problems;
    [[nodiscard]] bool ok() const noexcept { return problems.empty(); }
};

namespace detail {
template <class Replica>
struct replica_checker {
    static consistency_report run(const Replica& rep) {
        const auto entered = rep.check_.enter("crdtsync::check");
        namespace L = layout;
        consistency_report out;
        auto r = rep.store_.read();
        auto problem = [&](std::string what) {
            if (out.problems.size() < 100) out.problems.push_back(std::move(what));
        };
        auto hex = [](std::string_view s) { return Replica::hex(s); };
        auto u64 = [&](std::string_view name) -> std::uint64_t {
            auto v = r.get(L::meta_key(name));
            if (!v) return 0;
            if (v->size() != 8) {
                problem("meta '" + std::string(name) + "' is " + std::to_string(v->size()) + " bytes, not 8");
                return 0;
            }
            return load_be<std::uint64_t>(*v);
        };

        // ---- meta
        auto fmt = r.get(L::meta_key("format"));
        if (!fmt) problem("meta 'format' is missing");
        else if (fmt->size() != 4 || load_be<std::uint32_t>(*fmt) != storage_format_version)
            problem("meta 'format' is not version " + std::to_string(storage_format_version));
        if (auto s = r.get(L::meta_key("site")); !s || s->size() != site_id::size) problem("meta 'site' is missing or not 16 bytes");
        hlc clock;
        if (auto c = r.get(L::meta_key("clock"))) {
            try {
                clock = hlc::from_bytes(*c);
            } catch (const error& e) {
                problem(std::string("meta 'clock' does not decode: ") + e.what());
            }
        }
        const auto seq = u64("seq");
        const auto gc = u64("gc");
        const auto next_table = u64("tables");
        if (gc > seq) problem("the GC horizon " + std::to_string(gc) + " is beyond the position " + std::to_string(seq));
        auto newer_than_clock = [&](const hlc& h) { return h.wall_time > clock.wall_time || (h.wall_time == clock.wall_time && h.counter > clock.counter); };

        // ---- tables
        std::map<std::uint32_t, std::set<std::uint32_t>> columns; // table id -> column ids
        std::optional<detail::schema_catalog> catalog;
        try {
            catalog = Replica::replay_catalog(r);
        } catch (const error& e) {
            problem(std::string("the stored migrations do not replay: ") + e.what());
        }
        std::set<std::string> defined;
        scan(r, L::table_rec, [&](std::string_view k, std::string_view v) {
            if (k.size() != 5) return problem("table key " + hex(k) + " is not 5 bytes");
            const auto id = load_be<std::uint32_t>(k, 1);
            ++out.tables;
            try {
                const auto t = Replica::decode_table(id, v);
                columns[id].insert(t.column_ids.begin(), t.column_ids.end());
                const auto q = t.def.qualified_name();
                if (!defined.insert(q).second) problem("two table records name " + q);
                if (catalog) {
                    const auto* e = catalog->find(q);
                    if (!e) problem("table record " + std::to_string(id) + " names " + q + ", which the stored migrations do not define");
                    else if (!(e->def == t.def))
                        problem("table record " + std::to_string(id) + " defines " + t.def.to_ddl() + ", the stored migrations " + e->def.to_ddl());
                }
                if (id >= next_table) problem("table id " + std::to_string(id) + " is not below meta 'tables'");
            } catch (const error& e) {
                problem("table record " + std::to_string(id) + " does not decode: " + e.what());
            }
        });

        if (catalog)
            for (const auto& [q, e] : catalog->tables)
                if (!defined.contains(q)) problem("the stored migrations define " + q + ", which has no table record");

        // ---- rows, and what the log must hold for them
        std::map<std::uint64_t, std::string> parts; // seq -> row key of a cell or tombstone at that seq
        std::set<std::pair<std::uint64_t, std::string>> tombs; // (created_ms, row key)
        L::row_record rec;
        scan(r, L::row, [&](std::string_view k, std::string_view v) {
            ++out.rows;
            const std::string key(k);
            if (k.size() < 5) return problem("row key " + hex(k) + " is shorter than its table id");
            const auto table = load_be<std::uint32_t>(k, 1);
            const auto cols = columns.find(table);
            if (cols == columns.end()) problem("row " + hex(k) + " names table id " + std::to_string(table) + ", which has no record");
            try {
                L::read_row_record(v, rec);
            } catch (const error& e) {
                return problem("row " + hex(k) + " does not decode: " + e.what());
            }
            if (rec.empty()) problem("row " + hex(k) + " is stored empty");
            auto part = [&](std::uint64_t s, const hlc& h, const std::string& what) {
                if (s == 0 || s > seq)
                    problem(what + " of row " + hex(k) + " has sequence number " + std::to_string(s) + ", outside 1.." + std::to_string(seq));
                else parts[s] = key;
                if (newer_than_clock(h)) problem(what + " of row " + hex(k) + " is newer than the clock");
            };
            if (rec.tomb) {
                ++out.tombstones;
                part(rec.tomb->seq, rec.tomb->version, "the tombstone");
                tombs.emplace(rec.tomb->created_ms, key);
            }
            for (const auto& c : rec.cells) {
                ++out.cells;
                if (cols != columns.end() && !cols->second.count(c.column))
                    problem("row " + hex(k) + " has a cell of column id " + std::to_string(c.column) + ", not in its table");
                part(c.seq, c.version, "column " + std::to_string(c.column));
            }
        });

        // ---- migrations
        std::set<std::string> migrations;
        scan(r, L::migration, [&](std::string_view k, std::string_view v) {
            ++out.migrations;
            migrations.emplace(k);
            try {
                const auto h = hlc::from_bytes(k.substr(1));
                (void)Replica::decode_migration(v, &h);
                if (newer_than_clock(h)) problem("migration " + hex(k) + " is newer than the clock");
            } catch (const error& e) {
                problem("migration " + hex(k) + " does not decode: " + e.what());
            }
        });

        // ---- held change sets
        std::map<std::string, std::uint64_t> held; // key -> the seq its record names
        std::uint64_t held_facts = 0;
        scan(r, L::held, [&](std::string_view k, std::string_view v) {
            ++out.held_change_sets;
            if (k.size() != 1 + hlc::byte_size || v.size() < 8) return problem("held change set " + hex(k) + " is malformed");
            held.emplace(k, load_be<std::uint64_t>(v, 0));
            try {
                const auto cs = decode_change_set_record(v.substr(8));
                held_facts += cs.changes.size() + cs.migrations.size();
            } catch (const error& e) {
                problem("held change set " + hex(k) + " does not decode: " + e.what());
            }
        });
        if (held_facts != u64("held"))
            problem("the held change sets hold " + std::to_string(held_facts) + " facts, meta 'held' says " + std::to_string(u64("held")));

        // ---- the change log against the data
        scan(r, L::log, [&](std::string_view k, std::string_view v) {
            ++out.log_entries;
            if (k.size() != 9) return problem("change-log key " + hex(k) + " is not 9 bytes");
            const auto s = L::log_seq(k);
            if (s == 0 || s > seq) problem("change-log entry " + std::to_string(s) + " is beyond the position " + std::to_string(seq));
            L::log_record lr;
            try {
                lr = L::read_log(v);
            } catch (const error& e) {
                return problem("change-log entry " + std::to_string(s) + " does not decode: " + e.what());
            }
            if (lr.kind == L::row) {
                auto it = parts.find(s);
                if (it == parts.end() || it->second != lr.key)
                    problem("change-log entry " + std::to_string(s) + " names row " + hex(lr.key) + ", which holds nothing written at " + std::to_string(s));
                else parts.erase(it);
            } else if (lr.kind == L::migration) {
                if (!migrations.erase(std::string(lr.key)))
                    problem("change-log entry " + std::to_string(s) + " names a migration that is not stored");
            } else if (lr.kind == L::held) {
                auto it = held.find(std::string(lr.key));
                if (it == held.end() || it->second != s)
                    problem("change-log entry " + std::to_string(s) + " names a held change set that is not stored at " + std::to_string(s));
                else held.erase(it);
            } else {
                problem("change-log entry " + std::to_string(s) + " has unknown kind " + hex(std::string_view(&lr.kind, 1)));
            }
        });
        for (const auto& [s, key] : parts)
            problem("row " + hex(key) + " holds something written at " + std::to_string(s) + " without a change-log entry for it");
        for (const auto& key : migrations) problem("migration " + hex(key) + " has no change-log entry");
        for (const auto& h : held) problem("held change set " + hex(h.first) + " has no change-log entry");

        // ---- the tombstone arrival index against the tombstones
        scan(r, L::tomb_index, [&](std::string_view k, std::string_view) {
            if (k.size() < 9) return problem("tombstone index key " + hex(k) + " is too short");
            const auto created = load_be<std::uint64_t>(k, 1);
            if (!tombs.erase({created, std::string(k.substr(9))}))
                problem("tombstone index entry " + hex(k) + " names no tombstone that arrived then");
        });
        for (const auto& t : tombs) problem("the tombstone of row " + hex(t.second) + " is missing from the arrival index");

        // ---- peers
        scan(r, L::peer, [&](std::string_view k, std::string_view v) {
            ++out.peers;
            if (k.size() != 1 + site_id::size || v.size() != 16) return problem("peer record " + hex(k) + " is malformed");
            const auto sent = load_be<std::uint64_t>(v, 8);
            if (sent > seq)
                problem("peer " + hex(k.substr(1)) + " acknowledged position " + std::to_string(sent) + ", beyond this replica's " +
                        std::to_string(seq));
        });
        return out;
    }

    template <class Txn, class Fn>
    static void scan(Txn& r, char space, Fn&& fn) {
        const std::string b(1, space), e(1, static_cast<char>(space + 1));
        r.scan(b, e, [&](std::string_view k, std::string_view v) {
            fn(k, v);
            return true;
        });
    }
};
} // namespace detail

/// Checks everything `rep` keeps in its store (see the file comment).
/// \throws storage_error when the store cannot be read at all.
template <class Replica>
[[nodiscard]] consistency_report check(const Replica& rep) {
    return detail::replica_checker<Replica>::run(rep);
}

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
