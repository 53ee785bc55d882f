#pragma once
/// \file snapshot_writer.hpp
/// `snapshot_writer`: streams a replica's whole replicated state as snapshot
/// chunks (format version 1, `snapshot_chunk.hpp`), one chunk per `next()`.
///
///     crdtsync::snapshot_writer out{alice, bob.site_id()}; // for bob; chunks of 1000 entries
///     while (auto chunk = out.next()) send(*chunk);      // e.g. wire::encode_snapshot_chunk
///
/// The stream is read from one store read transaction opened by the
/// constructor, so it is one consistent state however long the transfer
/// takes and whatever the replica writes meanwhile; memory holds one chunk.
/// The header carries the replica's `position()` at that moment: a receiver
/// that loads the whole snapshot continues with delta sync from there
/// (`snapshot_loader`, docs/snapshots.md).
///
/// An interrupted transfer resumes from the receiver's checkpoint:
/// `snapshot_writer{alice, checkpoint}` checks that the checkpoint names a
/// snapshot of this replica, skips the tables the receiver completed, and
/// continues the table it was in right after the last entry loaded, found by
/// the checkpoint's key (`lastEntry`), so exactly even if the replica changed
/// since. A checkpoint without that key resumes by entry index if the replica
/// wrote nothing since (same `position()`), else from that table's start.
///
/// The writer reads through the replica's store and table list: it must not
/// outlive the replica, and is used on the replica's thread. A long-lived
/// writer keeps its read transaction open (on LMDB, growth of the map waits
/// for it; on the memory store, versions it can see are kept).

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
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

namespace detail {
/// A random UUIDv4 in its 36-character text form (a snapshot id).
[[nodiscard]] inline std::string random_uuid() {
    const auto b = site_id::generate().bytes(); // 122 random bits, version and variant set
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        out += digits[b[i] >> 4];
        out += digits[b[i] & 15];
    }
    return out;
}
} // namespace detail

template <class Replica>
class snapshot_writer {
    using store_type = typename Replica::store_type;
    using read_txn = read_transaction_t<store_type>;
    using table_state = typename Replica::table_state;

public:
    /// The default number of entries in one `column-versions` or `tombstone`
    /// chunk (Quereus's).
    static constexpr std::size_t default_chunk_entries = 1000;

    /// Starts a snapshot of `r` as it is now.
    /// \throws usage_error when `chunk_entries` is 0.
    explicit snapshot_writer(const Replica& r, std::size_t chunk_entries = default_chunk_entries)
        : rep_(r), txn_(open_read(r)), chunk_(chunk_entries) {
        const auto entered = rep_.check_.enter("snapshot_writer");
        start();
        header_.snapshot_id = detail::random_uuid();
        header_.version = clock_reading();
        header_.position = r.last_seq_;
    }

    /// Starts a snapshot of `r` for the replica `receiver`: the header also
    /// says how far `r` had applied the receiver's changes (`peer(receiver)
    /// .received_up_to`), so that the receiver can remove the facts `r` has
    /// seen and dropped since (docs/snapshots.md).
    snapshot_writer(const Replica& r, const site_id& receiver, std::size_t chunk_entries = default_chunk_entries)
        : snapshot_writer(r, chunk_entries) {
        header_.receiver_position = received_from(receiver);
    }

    /// Resumes the snapshot that `from` (a receiver's checkpoint) names.
    /// \throws snapshot_error when the checkpoint is not one of this
    /// replica's snapshots, names tables it lacks, or does not add up.
    snapshot_writer(const Replica& r, const snapshot_checkpoint& from, std::size_t chunk_entries = default_chunk_entries)
        : rep_(r), txn_(open_read(r)), chunk_(chunk_entries) {
        const auto entered = rep_.check_.enter("snapshot_writer");
        start();
        check_checkpoint(from);
        header_.snapshot_id = from.snapshot_id;
        header_.version = from.version;
        header_.position = from.position;
        header_.receiver_position = received_from(from.origin); // a loader keeps the first stream's
        for (const auto& name : from.completed_tables) completed_.insert(name);
        entries_ = from.entries_processed - from.last_entry_index; // those of the completed tables
        // Inside a table, resume right after the last entry loaded, found by
        // its key (exact whatever changed since); without it, by its index,
        // which counts the same entries only if nothing changed since.
        if (from.last_entry_index > 0) {
            if (from.last_entry) resume_after_ = from.last_entry;
            if (resume_after_ || (from.position && *from.position == r.last_seq_)) resume_entry_ = from.last_entry_index;
        }
    }

    snapshot_writer(const snapshot_writer&) = delete;
    snapshot_writer& operator=(const snapshot_writer&) = delete;

    /// The next chunk, or nothing once the footer has been given.
    [[nodiscard]] std::optional<snapshot_chunk> next() {
        const auto entered = rep_.check_.enter("snapshot_writer::next");
        switch (phase_) {
        case phase::header: {
            phase_ = phase::migrations;
            key_ = std::string(1, detail::layout::migration);
            return snapshot_chunk{header_};
        }
        case phase::migrations:
            if (auto m = next_migration()) return snapshot_chunk{std::move(*m)};
            phase_ = phase::table_start;
            table_ = 0;
            return next();
        case phase::table_start: {
            while (table_ < tables_.size() && completed_.count(tables_[table_].def.qualified_name())) ++table_;
            if (table_ == tables_.size()) {
                phase_ = phase::tombstones;
                table_ = 0;
                key_ = tables_.empty() ? std::string() : tables_[0].row_prefix;
                return next();
            }
            const auto& t = tables_[table_];
            snapshot_table_start c{t.def.schema_name(), t.def.name(), 0, resume_entry_};
            table_entries_ = 0;
            key_ = t.row_prefix;
            skip_cells_ = 0;
            if (resume_entry_ > 0 && !(resume_after_ ? seek_key(t, *resume_after_) : seek_entry(t, resume_entry_))) {
                resume_entry_ = 0; // cannot find the place: the table comes again from its start
                key_ = t.row_prefix;
                skip_cells_ = 0;
            }
            c.first_entry = resume_entry_;
            table_entries_ = resume_entry_;
            resume_entry_ = 0; // only the first table not completed resumes inside
            phase_ = phase::cells;
            return snapshot_chunk{std::move(c)};
        }
        case phase::cells:
            if (auto c = next_cells()) return snapshot_chunk{std::move(*c)};
            phase_ = phase::table_end;
            return next();
        case phase::table_end: {
            const auto& t = tables_[table_];
            snapshot_table_end c{t.def.schema_name(), t.def.name(), table_entries_};
            entries_ += table_entries_;
            ++table_;
            phase_ = phase::table_start;
            return snapshot_chunk{std::move(c)};
        }
        case phase::tombstones:
            if (auto c = next_tombstones()) return snapshot_chunk{std::move(*c)};
            phase_ = phase::footer;
            return next();
        case phase::footer:
            phase_ = phase::done;
            return snapshot_chunk{snapshot_footer{header_.snapshot_id, tables_.size(), entries_, header_.migration_count}};
        case phase::done: break;
        }
        return std::nullopt;
    }

    /// The header this stream starts with.
    [[nodiscard]] const snapshot_header& header() const noexcept { return header_; }
    /// True once the footer has been given.
    [[nodiscard]] bool done() const noexcept { return phase_ == phase::done; }

private:
    // The read transaction, opened under the thread check (docs/reliability.md).
    static auto open_read(const Replica& r) {
        const auto entered = r.check_.enter("snapshot_writer");
        return r.store_.read();
    }

    enum class phase { header, migrations, table_start, cells, table_end, tombstones, footer, done };

    void start() {
        if (chunk_ == 0) detail::raise(errc::invalid_argument, "a snapshot chunk must hold at least one entry");
        rep_.refresh(txn_);
        tables_ = rep_.tables_;
        std::sort(tables_.begin(), tables_.end(),
                  [](const auto& a, const auto& b) { return a.def.qualified_name() < b.def.qualified_name(); });
        header_.origin = rep_.site_;
        header_.table_count = tables_.size();
        const std::string b(1, detail::layout::migration), e(1, static_cast<char>(detail::layout::migration + 1));
        txn_.scan(b, e, [&](std::string_view, std::string_view) {
            ++header_.migration_count;
            return true;
        });
    }

    /// How far the replica had applied `peer`'s changes, as of the read
    /// transaction.
    [[nodiscard]] std::uint64_t received_from(const site_id& peer) { return Replica::read_peer(txn_, peer).received_up_to; }

    /// The replica's clock as of now, as its own timestamp.
    [[nodiscard]] hlc clock_reading() const {
        hlc h = rep_.clock_.last();
        const auto now = rep_.clock_.physical_now();
        if (h.wall_time < now) {
            h.wall_time = now;
            h.counter = 0;
        }
        h.site = rep_.site_;
        h.op_seq = 0;
        return h;
    }

    [[noreturn]] static void refuse(const std::string& why) {
        detail::raise(errc::snapshot, "cannot resume this snapshot: " + why);
    }

    void check_checkpoint(const snapshot_checkpoint& k) const {
        if (k.version.site != rep_.site_)
            refuse("the checkpoint is for a snapshot of site " + k.version.site.to_text() + ", this replica is " + rep_.site_.to_text());
        if (k.snapshot_id.empty()) refuse("the checkpoint has no snapshot id");
        if (rep_.clock_.last() < k.version && k.version.wall_time > rep_.clock_.physical_now())
            refuse("the checkpoint's snapshot time " + k.version.to_text() + " is later than this replica's clock");
        if (k.position && *k.position > rep_.last_seq_)
            refuse("the checkpoint's position " + std::to_string(*k.position) + " is beyond this replica's position " +
                   std::to_string(rep_.last_seq_));
        if (k.last_entry_index > k.entries_processed)
            refuse("the checkpoint counts " + std::to_string(k.last_entry_index) + " entries in its current table but only " +
                   std::to_string(k.entries_processed) + " in all");
        if (k.last_table_index != k.completed_tables.size())
            refuse("the checkpoint's lastTableIndex " + std::to_string(k.last_table_index) + " does not match its " +
                   std::to_string(k.completed_tables.size()) + " completed table(s)");
        for (const auto& name : k.completed_tables)
            if (std::none_of(tables_.begin(), tables_.end(), [&](const auto& t) { return t.def.qualified_name() == name; }))
                refuse("the checkpoint names table " + name + ", which this replica does not have");
    }

    std::optional<snapshot_schema_migration> next_migration() {
        std::optional<snapshot_schema_migration> out;
        const std::string e(1, static_cast<char>(detail::layout::migration + 1));
        txn_.scan(key_, e, [&](std::string_view k, std::string_view v) {
            const auto h = hlc::from_bytes(k.substr(1));
            out.emplace(snapshot_schema_migration{Replica::decode_migration(v, &h)});
            key_.assign(k);
            key_ += '\0'; // the next key after this one
            return false;
        });
        return out;
    }

    /// The row's key values: the spelling a part kept, or the stored key.
    static row_key key_of(std::string_view original, std::string_view suffix) {
        return key_codec::decode(original.empty() ? suffix : original);
    }

    /// Moves the table's scan position past the entry `e`; false if `e` is
    /// not of table `t` or does not fit it.
    bool seek_key(const table_state& t, const snapshot_last_entry& e) {
        if (e.table != t.def.qualified_name()) return false;
        const auto col = t.def.find_column(e.column);
        if (!col || e.pk.size() != t.def.key_columns().size() ||
            std::any_of(e.pk.begin(), e.pk.end(), [](const value& v) { return v.is_null(); }))
            return false;
        key_ = t.row_prefix;
        try {
            key_ += rep_.encode_row(t, e.pk).first;
        } catch (const error&) { // a key value the column cannot hold
            return false;
        }
        skip_cells_ = 0;
        if (auto v = txn_.get(key_)) { // skip the row's cells up to and including that column
            detail::layout::read_row_record(*v, rec_);
            const auto id = t.column_ids[*col];
            while (skip_cells_ < rec_.cells.size() && rec_.cells[skip_cells_].column <= id) ++skip_cells_;
        }
        return true;
    }

    /// Moves the table's scan position past its first `n` entries; false if
    /// the table has fewer.
    bool seek_entry(const table_state& t, std::uint64_t n) {
        std::uint64_t seen = 0;
        bool found = false;
        txn_.scan(t.row_prefix, key_codec::tuple_range_end(t.row_prefix), [&](std::string_view k, std::string_view v) {
            detail::layout::read_row_record(v, rec_);
            if (seen + rec_.cells.size() > n) {
                key_.assign(k);
                skip_cells_ = static_cast<std::size_t>(n - seen);
                found = true;
                return false;
            }
            seen += rec_.cells.size();
            if (seen == n) {
                key_.assign(k);
                key_ += '\0';
                found = true;
                return false;
            }
            return true;
        });
        return found;
    }

    std::optional<snapshot_column_versions> next_cells() {
        const auto& t = tables_[table_];
        std::optional<snapshot_column_versions> out;
        const auto end = key_codec::tuple_range_end(t.row_prefix);
        std::string stop_key;
        std::size_t stop_skip = 0;
        bool stopped = false;
        txn_.scan(key_, end, [&](std::string_view k, std::string_view v) {
            detail::layout::read_row_record(v, rec_);
            const auto suffix = k.substr(t.row_prefix.size());
            std::size_t i = k == key_ ? skip_cells_ : 0;
            std::optional<row_key> stored_key;
            for (; i < rec_.cells.size(); ++i) {
                if (out && out->entries.size() == chunk_) {
                    stop_key.assign(k);
                    stop_skip = i;
                    stopped = true;
                    return false;
                }
                auto& c = rec_.cells[i];
                const auto col = t.column_index_by_id(c.column);
                if (!col) detail::raise(errc::storage, "stored row holds a cell of an unknown column");
                if (!out) out.emplace(snapshot_column_versions{t.def.schema_name(), t.def.name(), {}});
                auto& e = out->entries.emplace_back();
                e.column = t.def.columns()[*col].name;
                e.version = c.version;
                e.val = std::move(c.val);
                if (!c.original_pk.empty()) {
                    e.pk = key_of(c.original_pk, suffix);
                } else {
                    if (!stored_key) stored_key = key_of({}, suffix);
                    e.pk = *stored_key;
                }
            }
            return true;
        });
        if (stopped) {
            key_ = std::move(stop_key);
            skip_cells_ = stop_skip;
        } else {
            key_ = end;
            skip_cells_ = 0;
        }
        if (out) table_entries_ += out->entries.size();
        return out;
    }

    std::optional<snapshot_tombstones> next_tombstones() {
        while (table_ < tables_.size()) {
            const auto& t = tables_[table_];
            const auto end = key_codec::tuple_range_end(t.row_prefix);
            std::optional<snapshot_tombstones> out;
            bool stopped = false;
            txn_.scan(key_, end, [&](std::string_view k, std::string_view v) {
                if (!detail::layout::row_has_tomb(v)) return true;
                detail::layout::read_row_record(v, rec_);
                if (!rec_.tomb) return true;
                if (out && out->entries.size() == chunk_) {
                    key_.assign(k);
                    stopped = true;
                    return false;
                }
                if (!out) out.emplace(snapshot_tombstones{t.def.schema_name(), t.def.name(), {}});
                auto& e = out->entries.emplace_back();
                e.pk = key_of(rec_.tomb->original_pk, k.substr(t.row_prefix.size()));
                e.version = rec_.tomb->version;
                e.created_at = rec_.tomb->created_ms;
                return true;
            });
            if (!stopped) {
                ++table_;
                if (table_ < tables_.size()) key_ = tables_[table_].row_prefix;
            }
            if (out) return out;
        }
        return std::nullopt;
    }

    const Replica& rep_;
    read_txn txn_;
    std::size_t chunk_;
    std::vector<table_state> tables_; // as of the read transaction, by qualified name
    std::set<std::string> completed_; // tables a resumed receiver already has
    snapshot_header header_;
    phase phase_ = phase::header;
    std::size_t table_ = 0;
    std::string key_;             // where the next scan starts
    std::size_t skip_cells_ = 0;  // cells of the row at key_ already given
    std::uint64_t resume_entry_ = 0;
    std::optional<snapshot_last_entry> resume_after_;
    std::uint64_t table_entries_ = 0;
    std::uint64_t entries_ = 0;
    detail::layout::row_record rec_;
};

template <class Store, class Clock>
snapshot_writer(const replica<Store, Clock>&, std::size_t = 0) -> snapshot_writer<replica<Store, Clock>>;
template <class Store, class Clock>
snapshot_writer(const replica<Store, Clock>&, const snapshot_checkpoint&, std::size_t = 0) -> snapshot_writer<replica<Store, Clock>>;

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
