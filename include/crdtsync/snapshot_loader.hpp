#pragma once
/// \file snapshot_loader.hpp
/// `snapshot_loader`: loads a snapshot stream (`snapshot_writer`'s, or a
/// Quereus server's) into a replica, chunk by chunk, and resumes an
/// interrupted one.
///
///     crdtsync::snapshot_loader in{bob};
///     while (!in.done()) in.push(receive_chunk());      // throws snapshot_error on a bad stream
///
/// Each chunk is checked against the stream's order and counts, then its
/// facts merge like any change set (column last-writer-wins, deletes by the
/// replica's policy) in one write transaction together with the load's
/// progress. So:
/// - memory holds one chunk, whatever the snapshot's size;
/// - a chunk that fails (out of order, counts that disagree, a fact the
///   replica refuses) writes nothing, and what was loaded before it stays:
///   every fact loaded is a real fact of the sender;
/// - the progress survives a crash: a new loader over the same store picks
///   the load up, and `checkpoint()` is what to send the sender to resume
///   (`resume_snapshot{checkpoint}`; `snapshot_writer{sender, checkpoint}`);
/// - the replica stays usable meanwhile: local writes made during the load
///   are newer facts and survive it.
///
/// The footer completes the load in one transaction: it checks the totals,
/// removes what the snapshot lacks among the facts this replica held before
/// the load and the sender is known to have seen (docs/snapshots.md: the
/// sender dropped them, e.g. rows whose tombstones it pruned), and records
/// the sender's position, so that delta sync continues from the snapshot.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <crdtsync/detail/layout.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/key.hpp>
#include <crdtsync/replica.hpp>
#include <crdtsync/snapshot_chunk.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

template <class Replica>
class snapshot_loader {
    using write_txn = typename Replica::write_txn;

public:
    /// A loader for `r`. If the store holds an unfinished load (an
    /// interrupted transfer, before or after a restart), the loader continues
    /// it: `checkpoint()` names it, and a stream whose header has the same
    /// snapshot id resumes it. A header with another id starts over.
    explicit snapshot_loader(Replica& r) : rep_(r) {
        const auto entered = rep_.check_.enter("snapshot_loader");
        auto txn = r.store_.read();
        if (auto v = txn.get(state_key())) state_ = decode_state(*v);
    }

    snapshot_loader(const snapshot_loader&) = delete;
    snapshot_loader& operator=(const snapshot_loader&) = delete;

    /// Loads the next chunk of the stream.
    /// \throws snapshot_error when the chunk does not fit the stream (first
    /// chunk not a header, chunks out of order, counts that disagree, a chunk
    /// of another snapshot, a fact or migration the replica refuses), with
    /// nothing of the chunk written; storage_error when the store fails.
    void push(const snapshot_chunk& chunk) {
        const auto entered = rep_.check_.enter("snapshot_loader::push");
        if (done_) fail("the snapshot is already loaded; a " + std::string(wire_type_of(chunk)) + " chunk came after its footer");
        if (!header_ && !std::holds_alternative<snapshot_header>(chunk))
            fail("a snapshot stream starts with its header, got a " + std::string(wire_type_of(chunk)) + " chunk");
        std::visit([&](const auto& c) { load(c); }, chunk);
    }

    /// True once the footer has been loaded: the replica holds the snapshot.
    [[nodiscard]] bool done() const noexcept { return done_; }

    /// The checkpoint of the unfinished load, to send to the sender in
    /// `resume_snapshot`; nothing when no load is unfinished.
    [[nodiscard]] std::optional<snapshot_checkpoint> checkpoint() const {
        const auto entered = rep_.check_.enter("snapshot_loader::checkpoint");
        if (!state_) return std::nullopt;
        snapshot_checkpoint k;
        k.snapshot_id = state_->snapshot_id;
        k.origin = rep_.site_;
        k.version = state_->version;
        k.position = state_->position;
        k.last_table_index = state_->completed.size();
        k.last_entry_index = state_->in_table ? state_->table_entries : 0;
        k.completed_tables = state_->completed;
        k.entries_processed = state_->completed_entries + k.last_entry_index;
        k.created_at = rep_.clock_.physical_now();
        if (state_->in_table && !state_->last_column.empty())
            k.last_entry = snapshot_last_entry{state_->table, key_codec::decode(state_->last_pk), state_->last_column};
        return k;
    }

    /// What merging the snapshot's facts did so far (in this loader).
    [[nodiscard]] const apply_result& result() const noexcept { return result_; }
    /// Facts of this replica that the completed load removed because the
    /// sender had dropped them (see the file comment).
    [[nodiscard]] std::uint64_t removed() const noexcept { return removed_; }

private:
    /// What a load has reached; persisted with every chunk.
    struct load_state {
        std::string snapshot_id;
        site_id origin;
        hlc version;
        std::optional<std::uint64_t> position;
        std::uint64_t held_upto = 0; // this replica's position when the load began
        std::uint64_t seen_upto = 0; // the header's receiver_position (0: not given)
        std::uint64_t table_count = 0;
        bool in_table = false;
        std::string table; // "schema.name" while in_table
        std::uint64_t table_entries = 0;
        std::uint64_t completed_entries = 0;
        std::string last_pk;     // the last entry loaded of the table in progress: its key tuple (encoded)
        std::string last_column; // and column
        std::vector<std::string> completed;
    };

    static std::string state_key() { return detail::layout::meta_key("snapshot-in"); }

    static value u64(std::uint64_t x) { return value{static_cast<std::int64_t>(x)}; }
    static std::string encode_state(const load_state& s) {
        std::vector<value> f{value{s.snapshot_id},
                             value{s.origin.to_text()},
                             value{s.version.to_text()},
                             s.position ? u64(*s.position) : value{},
                             u64(s.held_upto),
                             u64(s.seen_upto),
                             u64(s.table_count),
                             value{s.in_table},
                             value{s.table},
                             u64(s.table_entries),
                             u64(s.completed_entries),
                             value{s.last_pk},
                             value{s.last_column}};
        for (const auto& t : s.completed) f.emplace_back(t);
        return key_codec::encode(f);
    }
    static load_state decode_state(std::string_view rec) {
        const auto f = key_codec::decode(rec);
        if (f.size() < 13) detail::raise(errc::storage, "stored snapshot load state is malformed");
        auto n = [&](std::size_t i) { return static_cast<std::uint64_t>(f[i].as_integer()); };
        load_state s;
        s.snapshot_id = f[0].as_text();
        s.origin = site_id::from_text(f[1].as_text());
        s.version = hlc::from_text(f[2].as_text());
        if (!f[3].is_null()) s.position = n(3);
        s.held_upto = n(4);
        s.seen_upto = n(5);
        s.table_count = n(6);
        s.in_table = f[7].as_bool();
        s.table = f[8].as_text();
        s.table_entries = n(9);
        s.completed_entries = n(10);
        s.last_pk = f[11].as_text();
        s.last_column = f[12].as_text();
        for (std::size_t i = 13; i < f.size(); ++i) s.completed.push_back(f[i].as_text());
        return s;
    }

    [[noreturn]] static void fail(const std::string& why) { detail::raise(errc::snapshot, "snapshot refused: " + why); }

    static std::string name_of(const std::string& schema, const std::string& table) { return schema + "." + table; }

    /// Runs `sets` through the replica's merge, storing `next` as the load's
    /// state in the same transaction; commits nothing if a set is refused.
    void merge(std::span<const change_set> sets, const load_state& next, std::string_view what) {
        const auto rule = rule_of(next);
        const auto record = encode_state(next);
        struct refusing {
            Replica& r;
            ~refusing() { r.refuse_unknown_ = false; }
        } const guard{rep_};
        rep_.refuse_unknown_ = true; // a snapshot's migrations precede its data: nothing is held
        const auto res = rep_.apply_with(
            sets,
            [&](write_txn& w, const apply_result& so_far) {
                if (!so_far.rejected.empty()) fail(std::string(what) + " was refused: " + so_far.rejected.front().reason);
                w.put(state_key(), record);
            },
            rule.held_upto == 0 ? nullptr : &rule);
        result_.applied += res.applied;
        result_.skipped += res.skipped;
        result_.conflicts += res.conflicts;
        result_.transactions += res.transactions;
        state_ = next;
    }

    /// What the load must confirm: parts held before it that the sender had
    /// seen (this replica's log up to the header's receiver_position, or
    /// the sender's own writes up to its snapshot).
    static typename Replica::sweep_rule rule_of(const load_state& s) {
        return {s.held_upto, s.seen_upto, s.origin, s.version};
    }

    /// Stores `next` as the load's state (a chunk with no facts).
    void save(const load_state& next) {
        const auto record = encode_state(next);
        rep_.run_write([&](write_txn& w, auto&) { w.put(state_key(), record); });
        state_ = next;
    }

    void load(const snapshot_header& h) {
        if (header_) fail("a second header came in the middle of the stream");
        if (h.snapshot_format != snapshot_format_version)
            fail("the snapshot is in format version " + std::to_string(h.snapshot_format) + ", this library reads version " +
                 std::to_string(snapshot_format_version));
        if (h.origin == rep_.site_) fail("the snapshot was taken of this replica itself (site " + h.origin.to_text() + ")");
        if (h.snapshot_id.empty()) fail("the header has no snapshot id");
        if (state_ && state_->snapshot_id == h.snapshot_id) {
            if (!(state_->version == h.version) || !(state_->origin == h.origin))
                fail("the header has snapshot id " + h.snapshot_id + " but another site or time than the load it would resume");
            load_state next = *state_;
            next.table_count = h.table_count;
            save(next);
            header_ = h;
            resumed_ = true;
            return;
        }
        load_state next;
        next.snapshot_id = h.snapshot_id;
        next.origin = h.origin;
        next.version = h.version;
        next.position = h.position;
        next.table_count = h.table_count;
        // Facts this replica held before the load and the sender had seen:
        // the load keeps those the snapshot names, and removes the others at
        // its end. A load that replaces an unfinished one keeps the older,
        // lower start (what the first loaded came after it).
        next.held_upto = rep_.last_seq_;
        if (state_) next.held_upto = std::min(next.held_upto, state_->held_upto);
        next.seen_upto = h.receiver_position.value_or(0);
        if (state_) {
            // The unfinished load is given up: the cells its tombstones let
            // through go again, so that no state outlives it that a merge
            // could not produce.
            const auto old_rule = rule_of(*state_);
            const auto record = encode_state(next);
            rep_.run_write([&](write_txn& w, auto&) {
                (void)sweep(w, old_rule, false);
                w.put(state_key(), record);
            });
            state_ = next;
        } else {
            save(next);
        }
        header_ = h;
    }

    void load(const snapshot_schema_migration& c) {
        if (tables_started_) fail("schema migration " + c.migration.version.to_text() + " came after table data");
        if (migrations_ + 1 > header_->migration_count)
            fail("more schema migrations than the header's " + std::to_string(header_->migration_count));
        // HLC order is causal order: a table's creation comes before its changes.
        if (last_migration_ && !(*last_migration_ < c.migration.version))
            fail("schema migration " + c.migration.version.to_text() + " came after " + last_migration_->to_text() +
                 ": migrations travel in HLC order");
        change_set cs;
        cs.origin = header_->origin;
        cs.version = c.migration.version;
        cs.migrations.push_back(c.migration);
        merge(std::span<const change_set>(&cs, 1), *state_,
              "schema migration " + std::string(to_text(c.migration.type)) + " of " + name_of(c.migration.schema, c.migration.table));
        ++migrations_; // counted once loaded: a refused chunk changes nothing
        last_migration_ = c.migration.version;
    }

    void check_migrations_done() const {
        if (migrations_ != header_->migration_count)
            fail("the header announces " + std::to_string(header_->migration_count) + " schema migration(s), " +
                 std::to_string(migrations_) + " came before the table data");
    }

    void load(const snapshot_table_start& c) {
        check_migrations_done();
        if (tombstones_) fail("table " + name_of(c.schema, c.table) + " started after the tombstones");
        const auto name = name_of(c.schema, c.table);
        if (!rep_.lookup(c.schema, c.table)) fail("table " + name + " is not in the replica: no schema migration created it");
        if (std::find(state_->completed.begin(), state_->completed.end(), name) != state_->completed.end())
            fail("table " + name + " was already loaded");
        load_state next = *state_;
        const bool first = !tables_started_;
        if (next.in_table && next.table == name && first && resumed_) {
            // The resumed table: entries before first_entry arrived before.
            if (c.first_entry > next.table_entries)
                fail("table " + name + " resumes at entry " + std::to_string(c.first_entry) + ", only " +
                     std::to_string(next.table_entries) + " were loaded");
            if (c.first_entry != next.table_entries) {
                next.last_pk.clear(); // the table comes again from an earlier entry
                next.last_column.clear();
            }
            next.table_entries = c.first_entry;
        } else {
            // A resumed stream may restart elsewhere (the sender changed since):
            // the unfinished table then comes again from its start.
            if (next.in_table && !(first && resumed_))
                fail("table " + name + " started before table " + next.table + " ended");
            if (c.first_entry != 0)
                fail("table " + name + " starts at entry " + std::to_string(c.first_entry) + " but none of it was loaded");
            if (next.completed.size() >= next.table_count)
                fail("more tables than the header's " + std::to_string(next.table_count));
            next.in_table = true;
            next.table = name;
            next.table_entries = 0;
            next.last_pk.clear();
            next.last_column.clear();
        }
        save(next);
        tables_started_ = true;
    }

    void load(const snapshot_column_versions& c) {
        const auto name = name_of(c.schema, c.table);
        if (!state_->in_table || !tables_started_ || state_->table != name)
            fail("entries of table " + name + " came outside its table-start and table-end");
        // Each (key, column) comes once in a stream: a chunk holding the last
        // entry loaded repeats the chunk before it (a duplicated message).
        // (An older chunk replayed is caught by table-end's count.)
        if (!state_->last_column.empty()) {
            for (const auto& e : c.entries) {
                if (e.column == state_->last_column && key_codec::encode(e.pk) == state_->last_pk)
                    fail("a column-versions chunk of table " + name + " repeats entries already loaded (column \"" +
                         e.column + "\" of the last key loaded): the chunk came twice");
            }
        }
        change_set cs;
        cs.origin = header_->origin;
        cs.changes.reserve(c.entries.size());
        for (const auto& e : c.entries) {
            cs.changes.emplace_back(column_change{c.schema, c.table, e.pk, e.version, e.column, e.val, std::nullopt, std::nullopt});
            cs.version = std::max(cs.version, e.version);
        }
        load_state next = *state_;
        next.table_entries += c.entries.size();
        if (!c.entries.empty()) {
            next.last_pk = key_codec::encode(c.entries.back().pk);
            next.last_column = c.entries.back().column;
        }
        merge(std::span<const change_set>(&cs, 1), next, "a column-versions chunk of table " + name);
    }

    void load(const snapshot_table_end& c) {
        const auto name = name_of(c.schema, c.table);
        if (!state_->in_table || !tables_started_ || state_->table != name) fail("table " + name + " ended but had not started");
        if (c.entries_written != state_->table_entries)
            fail("table " + name + " ended with " + std::to_string(c.entries_written) + " entries written, " +
                 std::to_string(state_->table_entries) + " were received");
        load_state next = *state_;
        next.in_table = false;
        next.table.clear();
        next.completed_entries += next.table_entries;
        next.table_entries = 0;
        next.last_pk.clear();
        next.last_column.clear();
        next.completed.push_back(name);
        save(next);
    }

    void check_tables_done(const char* what) const {
        check_migrations_done();
        if (state_->in_table) fail(std::string(what) + " came before table " + state_->table + " ended");
        if (state_->completed.size() != state_->table_count)
            fail(std::string(what) + " came after " + std::to_string(state_->completed.size()) + " of the header's " +
                 std::to_string(state_->table_count) + " table(s)");
    }

    void load(const snapshot_tombstones& c) {
        check_tables_done("tombstones");
        change_set cs;
        cs.origin = header_->origin;
        for (const auto& e : c.entries) {
            cs.changes.emplace_back(row_delete{c.schema, c.table, e.pk, e.version, e.prior_row});
            cs.version = std::max(cs.version, e.version);
        }
        merge(std::span<const change_set>(&cs, 1), *state_, "a tombstone chunk of table " + name_of(c.schema, c.table));
        tombstones_ = true;
    }

    void load(const snapshot_footer& c) {
        check_tables_done("the footer");
        if (c.snapshot_id != state_->snapshot_id)
            fail("the footer is of snapshot " + c.snapshot_id + ", the header of " + state_->snapshot_id);
        if (c.total_tables != state_->completed.size())
            fail("the footer counts " + std::to_string(c.total_tables) + " table(s), " +
                 std::to_string(state_->completed.size()) + " were loaded");
        if (c.total_migrations != migrations_)
            fail("the footer counts " + std::to_string(c.total_migrations) + " schema migration(s), " + std::to_string(migrations_) +
                 " came");
        if (c.total_entries != state_->completed_entries)
            fail("the footer counts " + std::to_string(c.total_entries) + " entries, " +
                 std::to_string(state_->completed_entries) + " were loaded");
        const auto rule = rule_of(*state_);
        const auto origin = state_->origin;
        const auto position = state_->position;
        std::uint64_t removed = 0;
        rep_.run_write([&](write_txn& w, auto&) {
            const auto gc_before = rep_.gc_seq_;
            removed = sweep(w, rule);
            if (rep_.gc_seq_ != gc_before) {
                std::string v(origin.view());
                detail::put_be<std::uint64_t>(v, gc_before);
                detail::put_be<std::uint64_t>(v, rep_.gc_seq_);
                w.put(detail::layout::meta_key("gc-exempt"), v);
                rep_.gc_exempt_ = {origin, gc_before, rep_.gc_seq_};
            }
            if (position)
                Replica::update_peer_in(w, origin, [&](peer_state& p) { p.received_up_to = std::max(p.received_up_to, *position); });
            (void)w.erase(state_key());
        });
        removed_ = removed;
        state_.reset();
        done_ = true;
    }

    /// Removes the parts the load had to confirm and the snapshot did not
    /// name (those it named were re-stamped, out of the rule's reach), and
    /// drops the cells that a tombstone which stays hides: while the load
    /// ran, a tombstone it might remove let the snapshot's cells through.
    /// Those parts and tombstones carry a seq at or below `held_upto`, so the
    /// change log from 1 to there names every row that can hold one. With
    /// `remove` false, only the second. Returns how many parts went.
    std::uint64_t sweep(write_txn& w, const typename Replica::sweep_rule& rule, bool remove = true) {
        std::uint64_t removed = 0;
        if (rule.held_upto == 0) return removed;
        typename Replica::row_image img;
        std::vector<std::string> rows; // row keys, a batch at a time
        const auto end = detail::layout::log_key(rule.held_upto + 1);
        auto from = detail::layout::log_key(1);
        for (;;) {
            rows.clear();
            std::uint64_t last = 0;
            w.scan(from, end, [&](std::string_view k, std::string_view v) {
                last = detail::layout::log_seq(k);
                const auto lr = detail::layout::read_log(v);
                if (lr.kind == detail::layout::row) rows.emplace_back(lr.key);
                return rows.size() < 1024;
            });
            for (const auto& key : rows) {
                const auto* t = key.size() >= 5 ? rep_.table_by_id(detail::load_be<std::uint32_t>(key, 1)) : nullptr;
                if (!t) continue;
                rep_.load_row(w, *t, std::string_view(key).substr(5), img);
                auto& r = img.rec;
                std::erase_if(r.cells, [&](const auto& c) {
                    if (!remove || !rule.covers(c.seq, c.version)) return false;
                    img.release(c.seq);
                    rep_.gc_seq_ = std::max(rep_.gc_seq_, c.seq);
                    ++removed;
                    img.dirty = true;
                    return true;
                });
                if (remove && r.tomb && rule.covers(r.tomb->seq, r.tomb->version)) {
                    img.release(r.tomb->seq);
                    rep_.gc_seq_ = std::max(rep_.gc_seq_, r.tomb->seq);
                    (void)w.erase(detail::layout::tomb_index_key(r.tomb->created_ms, img.key));
                    r.tomb.reset();
                    ++removed;
                    img.dirty = true;
                }
                if (r.tomb) {
                    const auto cells = r.cells.size();
                    rep_.drop_hidden(img, r.tomb->version);
                    if (r.cells.size() != cells) img.dirty = true;
                }
                rep_.flush(w, img);
            }
            if (rows.size() < 1024 || last == 0) break;
            from = detail::layout::log_key(last + 1);
        }
        return removed;
    }

    Replica& rep_;
    std::optional<load_state> state_;           // the unfinished load, as stored
    std::optional<snapshot_header> header_;     // this stream's header
    bool resumed_ = false;                      // this stream resumes the stored load
    bool tables_started_ = false;
    bool tombstones_ = false;
    std::uint64_t migrations_ = 0;              // in this stream
    std::optional<hlc> last_migration_;         // the previous migration's HLC in this stream
    bool done_ = false;
    apply_result result_;
    std::uint64_t removed_ = 0;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
