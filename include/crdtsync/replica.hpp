#pragma once
/// \file replica.hpp
/// `replica`: the sync manager of one replica over any `kv_store`.
///
/// It holds tables, records local writes as changes, merges remote change
/// sets (column-level last-writer-wins by HLC, row deletes by the replica's
/// `delete_policy`), and hands each peer exactly the changes it lacks
/// (`changes_since`, keyed on this replica's local arrival sequence, so a
/// change that arrives late with an old HLC is still forwarded).
///
/// Merge laws (tests/replica/test_laws.cpp): applying change sets A then B
/// gives the same replicated state as B then A; (A,B),C == A,(B,C); applying
/// A twice == applying it once. docs/semantics.md explains the rules.
///
/// Threading: a replica is used from one thread at a time. Subscribers are
/// called after the write transaction committed, on the calling thread.

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <set>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <crdtsync/change.hpp>
#include <crdtsync/ddl.hpp>
#include <crdtsync/detail/change_set_record.hpp>
#include <crdtsync/detail/schema_catalog.hpp>
#include <crdtsync/detail/layout.hpp>
#include <crdtsync/detail/thread_check.hpp>
#include <crdtsync/detail/storable.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/events.hpp>
#include <crdtsync/hlc_clock.hpp>
#include <crdtsync/key.hpp>
#include <crdtsync/replica_options.hpp>
#include <crdtsync/schema.hpp>
#include <crdtsync/store.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

template <class T> struct key_spec;
template <class Replica, class T> class typed_table;
template <class Replica> class snapshot_writer;
template <class Replica> class snapshot_loader;
namespace detail {
template <class Replica> struct replica_checker;
}

/// What a peer has exchanged with this replica, in each side's own local
/// sequence. Persisted; updated only by explicit calls.
struct peer_state {
    std::uint64_t received_up_to = 0; ///< the peer's position we have applied up to
    std::uint64_t sent_up_to = 0;     ///< our position the peer has acknowledged
    friend bool operator==(const peer_state&, const peer_state&) = default;
};

/// The answer of `changes_since`.
struct [[nodiscard]] delta {
    /// One change set per source transaction, in local arrival order.
    std::vector<change_set> change_sets;
    /// Pass this as `position` next time (it covers skipped echoes too).
    std::uint64_t next_position = 0;
    /// More changes are waiting beyond `limit`.
    bool more = false;
    /// The requested position predates pruned tombstones: a delta would be
    /// incomplete, so none is given. The peer must bootstrap from a snapshot.
    bool snapshot_required = false;
};

template <class Store, physical_clock Clock = system_clock_ms>
class replica {
    static_assert(check_kv_store<Store>());
    using write_txn = write_transaction_t<Store>;

public:
    using store_type = Store;
    class transaction;

    /// Opens the replica kept in `store`, creating it when the store is empty.
    /// \throws storage_error (`errc::format_version`) when the store was
    /// written by an unknown format version.
    /// \throws usage_error (`errc::invalid_argument`) when `options.deletes`
    /// names another delete policy than the one the store was created with.
    explicit replica(Store& store, replica_options options = {}, Clock clock = Clock{})
        : store_(store), opts_(std::move(options)),
          clock_(crdtsync::site_id{}, clock, static_cast<std::uint64_t>(opts_.max_drift.count())),
          physical_(std::move(clock)) {
        open();
        if (opts_.deletes && *opts_.deletes != policy_)
            detail::raise(errc::invalid_argument,
                          "this store was created with delete policy " + std::string(to_text(policy_)) +
                              " and the options ask for " + std::string(to_text(*opts_.deletes)) +
                              "; replicas that sync together must keep one policy: leave replica_options::deletes unset "
                              "(or set it to " + std::string(to_text(policy_)) + ")");
        opts_.deletes = policy_;
    }

    replica(const replica&) = delete;
    replica& operator=(const replica&) = delete;

    /// This replica's identity.
    [[nodiscard]] const crdtsync::site_id& site_id() const noexcept {
        const auto entered = check_.enter("replica::site_id");
        return site_;
    }
    [[nodiscard]] const replica_options& options() const noexcept { return opts_; }
    /// The latest local arrival sequence number: everything this replica holds
    /// is at or below it.
    [[nodiscard]] std::uint64_t position() const noexcept {
        const auto entered = check_.enter("replica::position");
        return last_seq_;
    }
    /// The clock's last timestamp.
    [[nodiscard]] const hlc& clock() const noexcept {
        const auto entered = check_.enter("replica::clock");
        return clock_.last();
    }

    // ---------------------------------------------------------------- schema

    /// The definitions of every table, ordered by qualified name.
    [[nodiscard]] std::vector<table_def> tables() const {
        const auto entered = check_.enter("replica::tables");
        {
            auto r = store_.read();
            refresh(r);
        }
        std::vector<table_def> out;
        for (const auto& t : tables_) out.push_back(t.def);
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.qualified_name() < b.qualified_name(); });
        return out;
    }
    /// A table's definition, if this replica has the table ("name" or "schema.name").
    [[nodiscard]] std::optional<table_def> find_table(std::string_view name) const {
        const auto entered = check_.enter("replica::find_table");
        {
            auto r = store_.read();
            refresh(r);
        }
        auto [s, n] = split_name(name);
        if (auto t = lookup(s, n)) return t->def;
        return std::nullopt;
    }
    /// A number that changes whenever some table's definition may have
    /// changed (a migration applied here, or this replica re-read its state
    /// after another process committed): a typed table checks its struct
    /// again when it moved. Opens no store transaction, so it may be called
    /// inside `write`.
    [[nodiscard]] std::uint64_t schema_generation() const noexcept {
        const auto entered = check_.enter("replica::schema_generation");
        return schema_gen_;
    }
    /// Creates a table in its own transaction (see `transaction::create_table`).
    void create_table(const table_def& def) {
        write([&](transaction& tx) { tx.create_table(def); });
    }

    /// A typed table of structs reflected with Boost.Hana, created when the
    /// replica lacks it; a struct that does not fit the live table is a
    /// schema_error (`errc::schema_mismatch`). Defined in <crdtsync/table.hpp>.
    template <class T>
    [[nodiscard]] typed_table<replica, T> table(std::string name, const key_spec<T>& key);

    // ---------------------------------------------------------------- local writes

    /// Runs `body(transaction&)` in one store write transaction: data, version
    /// metadata, change-log entries and the clock commit together, or nothing
    /// does (an exception from `body` aborts). One HLC tick per transaction.
    /// If the store runs out of space and grows, `body` runs again (at most
    /// `options().storage_full_retries` times), so it should not have side
    /// effects beyond the transaction.
    template <class F>
    void write(F&& body) {
        const auto entered = check_.enter("replica::write");
        run_write([&](write_txn& w, pending& ev) {
            schema_grew_ = false;
            transaction tx{*this, w, ev};
            body(tx);
            tx.finish();
            if (schema_grew_ && held_facts_ > 0) {
                apply_result released;
                release_held(w, released, ev);
            }
        });
    }

    // ---------------------------------------------------------------- reads

    /// The visible row with primary key `pk`, all columns (NULL where unset).
    [[nodiscard]] std::optional<row> get(std::string_view table, const row_key& pk) const {
        const auto entered = check_.enter("replica::get");
        auto r = store_.read();
        refresh(r);
        const auto& t = require_table(table);
        return read_row(r, t, encode_row(t, pk).first);
    }
    /// Every visible row of `table`, in primary-key order (collation-folded).
    [[nodiscard]] std::vector<row> rows(std::string_view table) const {
        const auto entered = check_.enter("replica::rows");
        auto r = store_.read();
        refresh(r);
        return scan_rows(r, require_table(table));
    }
    /// A page of `table`'s visible rows, in the same order: from
    /// `scan.from` (after it when `scan.exclusive`), at most `scan.limit`.
    /// \throws schema_error for an unknown table; parse_error
    /// (`errc::invalid_key`) for a `from` key that does not fit the table's
    /// key (see `row_scan`).
    [[nodiscard]] std::vector<row> rows(std::string_view table, const row_scan& scan) const {
        const auto entered = check_.enter("replica::rows");
        auto r = store_.read();
        refresh(r);
        const auto& t = require_table(table);
        std::string begin = t.row_prefix;
        if (scan.from) begin += encode_row(t, *scan.from).first;
        return scan_rows(r, t, begin, scan.exclusive && scan.from, scan.limit);
    }

    // ---------------------------------------------------------------- merge

    /// Merges change sets. Each change set is validated whole before any of
    /// it is written (tables, columns, key arity, every fact's HLC against the
    /// drift bound); one that fails is rejected whole and reported in
    /// `rejected`, the others apply. The whole batch commits in one store
    /// write transaction, together with the clock; a store failure aborts all
    /// of it and throws.
    apply_result apply(std::span<const change_set> sets) {
        const auto entered = check_.enter("replica::apply");
        return apply_with(sets, [](write_txn&, const apply_result&) {}, nullptr);
    }
    apply_result apply(const std::vector<change_set>& sets) { return apply(std::span<const change_set>(sets)); }
    apply_result apply(const change_set& cs) { return apply(std::span<const change_set>(&cs, 1)); }
    /// `apply`, also telling the change-log range its transaction added:
    /// positions `first` (exclusive) to `last` (inclusive). A relay uses it
    /// to forward what it received to peers that had everything up to `first`.
    apply_result apply(std::span<const change_set> sets, std::uint64_t& first, std::uint64_t& last) {
        const auto entered = check_.enter("replica::apply");
        auto r = apply_with(sets, [&](write_txn&, const apply_result&) { last = last_seq_; }, nullptr, &first);
        return r;
    }

    // ---------------------------------------------------------------- delta sync

    /// The changes this replica holds after `position` in its own local
    /// sequence, except those written by `peer` itself, grouped one change set
    /// per source transaction (facts in op_seq order). Stops at a transaction
    /// boundary once `limit` facts are collected.
    [[nodiscard]] delta changes_since(const crdtsync::site_id& peer, std::uint64_t position,
                                      std::size_t limit = 1000) const {
        const auto entered = check_.enter("replica::changes_since");
        delta d;
        d.next_position = position;
        auto r = store_.read();
        refresh(r);
        if (position > 0 && position < gc_seq_ && !gc_exempt(peer, position)) {
            d.snapshot_required = true;
            return d;
        }
        std::size_t count = 0;
        std::optional<change_set> current;
        auto close = [&] {
            if (!current) return;
            finish_change_set(*current);
            d.change_sets.push_back(std::move(*current));
            current.reset();
        };
        const auto begin = detail::layout::log_key(position + 1);
        const std::string end(1, static_cast<char>(detail::layout::log + 1));
        std::vector<fact> facts;
        r.scan(begin, end, [&](std::string_view key, std::string_view rec) {
            const auto seq = detail::layout::log_seq(key);
            facts.clear();
            read_facts(r, detail::layout::read_log(rec), seq, facts);
            std::erase_if(facts, [&](const fact& f) { return f.version().site == peer; }); // echoes
            if (facts.empty()) {
                d.next_position = seq;
                return true;
            }
            // One entry (a row write) is never split between pages.
            if (count >= limit && current && !current->version.same_transaction(facts.front().version())) {
                d.more = true;
                return false;
            }
            for (auto& f : facts) {
                const hlc h = f.version();
                if (!current || !current->version.same_transaction(h)) {
                    close();
                    current.emplace();
                    current->version = h;
                }
                if (f.migration) current->migrations.push_back(std::move(*f.migration));
                else current->changes.push_back(std::move(*f.data));
                if (current->version < h) current->version = h;
                ++count;
            }
            d.next_position = seq;
            return true;
        });
        close();
        return d;
    }

    /// What `peer` lacks: `changes_since(peer, position)` from the position
    /// it last acknowledged (`peer(p).sent_up_to`). Once the peer confirmed
    /// it applied them, pass `next_position` to `acknowledge`.
    [[nodiscard]] delta changes_for(const crdtsync::site_id& peer, std::size_t limit = 1000) const {
        return changes_since(peer, this->peer(peer).sent_up_to, limit);
    }
    /// Records that `peer` confirmed our changes up to our position `pos`
    /// (a `next_position` this replica gave). Positions only move forward: an
    /// older or repeated confirmation changes nothing.
    void acknowledge(const crdtsync::site_id& peer, std::uint64_t pos) {
        const auto entered = check_.enter("replica::acknowledge");
        update_peer(peer, [&](peer_state& s) { s.sent_up_to = std::max(s.sent_up_to, pos); });
    }
    /// Applies a delta `from` gave (`from.changes_since` or `changes_for`)
    /// and, in the same write transaction, records `from`'s position as
    /// received when nothing of it was rejected: a crash cannot separate the
    /// two, and the position never moves past a rejected change set (it is
    /// offered again next time). The next pull asks `from` for
    /// `changes_since(site_id(), peer(from).received_up_to)`.
    ///
    /// What `from` sent need not go back to it: when `from` had acknowledged
    /// everything this replica held before the apply (`sent_up_to` was this
    /// replica's position), the positions the apply added are acknowledged
    /// too, in the same transaction, so `changes_for(from)` does not echo
    /// them.
    apply_result apply_from(const crdtsync::site_id& from, const delta& d) {
        const auto entered = check_.enter("replica::apply_from");
        std::uint64_t before = 0;
        return apply_with(
            std::span<const change_set>(d.change_sets),
            [&](write_txn& w, const apply_result& r) {
                update_peer_in(w, from, [&](peer_state& s) {
                    if (r.rejected.empty() && !d.snapshot_required)
                        s.received_up_to = std::max(s.received_up_to, d.next_position);
                    if (s.sent_up_to == before) s.sent_up_to = last_seq_;
                });
            },
            nullptr, &before);
    }

    /// The persisted exchange state with `peer` (zeros for a new peer).
    [[nodiscard]] peer_state peer(const crdtsync::site_id& peer) const {
        const auto entered = check_.enter("replica::peer");
        auto r = store_.read();
        return read_peer(r, peer);
    }
    /// Records that we applied `peer`'s changes up to its position `pos`.
    void set_peer_received(const crdtsync::site_id& p, std::uint64_t pos) {
        const auto entered = check_.enter("replica::set_peer_received");
        update_peer(p, [&](peer_state& s) { s.received_up_to = pos; });
    }
    /// Records that `peer` acknowledged our changes up to our position `pos`.
    void set_peer_sent(const crdtsync::site_id& p, std::uint64_t pos) {
        const auto entered = check_.enter("replica::set_peer_sent");
        update_peer(p, [&](peer_state& s) { s.sent_up_to = pos; });
    }
    /// Every known peer.
    [[nodiscard]] std::vector<std::pair<crdtsync::site_id, peer_state>> peers() const {
        const auto entered = check_.enter("replica::peers");
        std::vector<std::pair<crdtsync::site_id, peer_state>> out;
        auto r = store_.read();
        const std::string b(1, detail::layout::peer), e(1, static_cast<char>(detail::layout::peer + 1));
        r.scan(b, e, [&](std::string_view k, std::string_view v) {
            if (k.size() == 17 && v.size() == 16)
                out.emplace_back(crdtsync::site_id::from_bytes(k.substr(1)),
                                 peer_state{detail::load_be<std::uint64_t>(v, 0), detail::load_be<std::uint64_t>(v, 8)});
            return true;
        });
        return out;
    }

    // ---------------------------------------------------------------- held change sets

    /// The change sets held for a table or column this replica does not know
    /// yet (`unknown_table_policy::hold`), ordered by HLC.
    [[nodiscard]] std::vector<change_set> held_change_sets() const {
        const auto entered = check_.enter("replica::held_change_sets");
        std::vector<change_set> out;
        auto r = store_.read();
        const std::string b(1, detail::layout::held), e(1, static_cast<char>(detail::layout::held + 1));
        r.scan(b, e, [&](std::string_view, std::string_view v) {
            if (v.size() < 8) detail::raise(errc::storage, "a held change set record is truncated");
            out.push_back(detail::decode_change_set_record(v.substr(8)));
            return true;
        });
        return out;
    }
    /// How many facts (column changes, deletes, migrations) the held change sets hold.
    [[nodiscard]] std::uint64_t held_facts() const {
        const auto entered = check_.enter("replica::held_facts");
        auto r = store_.read();
        refresh(r);
        return held_facts_;
    }

    // ---------------------------------------------------------------- tombstone GC

    /// Removes tombstones that arrived longer ago than the retention period.
    /// Afterwards, `changes_since` answers `snapshot_required` to any peer
    /// whose position predates a removed tombstone. Returns how many were removed.
    std::size_t prune_tombstones() {
        const auto entered = check_.enter("replica::prune_tombstones");
        const auto now = physical_();
        const auto retention = static_cast<std::uint64_t>(opts_.tombstone_retention.count());
        std::size_t removed = 0;
        run_write([&](write_txn& w, pending&) {
            removed = 0;
            std::vector<std::pair<std::string, std::uint64_t>> doomed; // index key, created_ms
            const std::string b(1, detail::layout::tomb_index), e(1, static_cast<char>(detail::layout::tomb_index + 1));
            w.scan(b, e, [&](std::string_view k, std::string_view) {
                if (k.size() < 9) return true;
                const auto created = detail::load_be<std::uint64_t>(k, 1);
                if (created + retention >= now) return false; // the index ascends by arrival time
                doomed.emplace_back(std::string(k), created);
                return true;
            });
            row_image img;
            for (const auto& [k, created] : doomed) {
                (void)w.erase(k);
                const std::string_view stored_key = std::string_view(k).substr(9);
                const auto* t = stored_key.size() >= 5 ? table_by_id(detail::load_be<std::uint32_t>(stored_key, 1)) : nullptr;
                if (!t) continue;
                load_row(w, *t, stored_key.substr(5), img);
                auto& tomb = img.rec.tomb;
                if (!tomb || tomb->created_ms != created) continue;
                gc_seq_ = std::max(gc_seq_, tomb->seq);
                if (gc_exempt_.to != 0 && tomb->seq > gc_exempt_.from) { // the exempt peer may lack this delete
                    gc_exempt_ = {};
                    (void)w.erase(detail::layout::meta_key("gc-exempt"));
                }
                img.released.push_back(tomb->seq);
                tomb.reset();
                img.dirty = true;
                flush(w, img);
                ++removed;
            }
        });
        return removed;
    }
    /// The lowest position a peer may hold and still receive a delta (the
    /// sender of the last snapshot loaded may hold a lower one, when only the
    /// load raised it: it lacks nothing the load removed).
    [[nodiscard]] std::uint64_t gc_horizon() const noexcept {
        const auto entered = check_.enter("replica::gc_horizon");
        return gc_seq_;
    }

    // ---------------------------------------------------------------- events

    using listener_id = std::size_t;
    /// Called once per committed local transaction.
    listener_id on_local_change(std::function<void(const local_change&)> fn) { return add("replica::on_local_change", local_listeners_, std::move(fn)); }
    /// Called once per applied remote change set that changed something.
    listener_id on_remote_change(std::function<void(const remote_change&)> fn) { return add("replica::on_remote_change", remote_listeners_, std::move(fn)); }
    /// Called for each conflict a merge resolved.
    listener_id on_conflict(std::function<void(const conflict&)> fn) { return add("replica::on_conflict", conflict_listeners_, std::move(fn)); }
    /// Called for each change set `apply` (or a snapshot load) rejected: its
    /// reason, code and transaction id, as in `apply_result::rejected`. A
    /// rejected change set is not applied and is not retried by itself.
    listener_id on_rejected(std::function<void(const rejection&)> fn) { return add("replica::on_rejected", rejected_listeners_, std::move(fn)); }
    /// Called when a change set for a table or column this replica does not
    /// know yet is held, released (applied once its migration arrived) or
    /// dropped (`replica_options::unknown_tables`).
    listener_id on_hold(std::function<void(const hold_event&)> fn) { return add("replica::on_hold", hold_listeners_, std::move(fn)); }
    /// Called for each migration kept and forwarded without being applied:
    /// DDL outside the subset this version applies (docs/schema.md).
    listener_id on_schema_notice(std::function<void(const schema_notice&)> fn) {
        return add("replica::on_schema_notice", schema_listeners_, std::move(fn));
    }
    /// Removes a listener of any kind.
    void remove_listener(listener_id id) {
        const auto entered = check_.enter("replica::remove_listener");
        std::erase_if(local_listeners_, [&](auto& l) { return l.first == id; });
        std::erase_if(remote_listeners_, [&](auto& l) { return l.first == id; });
        std::erase_if(conflict_listeners_, [&](auto& l) { return l.first == id; });
        std::erase_if(rejected_listeners_, [&](auto& l) { return l.first == id; });
        std::erase_if(hold_listeners_, [&](auto& l) { return l.first == id; });
        std::erase_if(schema_listeners_, [&](auto& l) { return l.first == id; });
    }

    // ---------------------------------------------------------------- inspection

    /// The replicated state as text, one line per fact: table definitions,
    /// migrations, every cell (key, column, value, HLC) and every tombstone
    /// (key, HLC). Arrival-order bookkeeping (local sequence numbers, change
    /// log, peers, arrival times, table ids) is left out, so two replicas that
    /// converged give byte-identical dumps.
    [[nodiscard]] std::string dump() const {
        const auto entered = check_.enter("replica::dump");
        auto r = store_.read();
        refresh(r);
        std::vector<const table_state*> order;
        for (const auto& t : tables_) order.push_back(&t);
        std::sort(order.begin(), order.end(), [](auto a, auto b) { return a->def.qualified_name() < b->def.qualified_name(); });
        std::string out;
        for (const auto* t : order) {
            out += "table " + t->def.qualified_name() + " " + t->def.to_ddl() + "\n";
            std::vector<std::string> lines;
            detail::layout::row_record rec;
            r.scan(t->row_prefix, key_codec::tuple_range_end(t->row_prefix), [&](std::string_view k, std::string_view v) {
                const auto suffix = hex(k.substr(t->row_prefix.size()));
                detail::layout::read_row_record(v, rec);
                for (const auto& c : rec.cells) {
                    const auto col = t->column_index_by_id(c.column);
                    std::string val;
                    key_codec::append(val, c.val);
                    lines.push_back("cell " + suffix + " " + (col ? t->def.columns()[*col].name : "?") + " " + hex(val) + " " + c.version.to_text());
                }
                if (rec.tomb) lines.push_back("tomb " + suffix + " " + rec.tomb->version.to_text());
                return true;
            });
            std::sort(lines.begin(), lines.end());
            for (auto& l : lines) out += "  " + l + "\n";
        }
        const std::string b(1, detail::layout::migration), e(1, static_cast<char>(detail::layout::migration + 1));
        r.scan(b, e, [&](std::string_view k, std::string_view v) {
            const auto h = hlc::from_bytes(k.substr(1));
            const auto m = decode_migration(v, &h);
            out += "migration " + m.version.to_text() + " " + std::string(to_text(m.type)) + " " + m.schema + "." + m.table + " " + m.ddl + "\n";
            return true;
        });
        return out;
    }

private:
    template <class R> friend class snapshot_writer;
    template <class R> friend class snapshot_loader;
    template <class R> friend struct detail::replica_checker;

    /// Which stored parts (cells, tombstones) a snapshot load must confirm:
    /// those held before the load that the sender is known to have seen. The
    /// load re-stamps the ones its snapshot names, and removes the others at
    /// its end (docs/snapshots.md).
    struct sweep_rule {
        std::uint64_t held_upto = 0;  // held before the load: seq at or below this
        std::uint64_t seen_upto = 0;  // the sender had applied this replica's log up to here,
        crdtsync::site_id origin;     // or the sender itself wrote the part,
        hlc before;                   // at or before its snapshot
        [[nodiscard]] bool covers(std::uint64_t seq, const hlc& v) const noexcept {
            // Strictly before: the header's HLC is a clock reading, and the
            // sender's next write can carry that very timestamp.
            return seq != 0 && seq <= held_upto && (seq <= seen_upto || (v.site == origin && v < before));
        }
    };

    /// `apply`, plus `extra(w, result)` in the same write transaction after
    /// the change sets (a snapshot load records its progress there), with
    /// `rule` in force for the merge (not for the listeners).
    /// `before`, when given, receives the position at the transaction's start.
    template <class Extra>
    apply_result apply_with(std::span<const change_set> sets, Extra&& extra, const sweep_rule* rule,
                            std::uint64_t* before = nullptr) {
        apply_result result;
        struct clear {
            replica& r;
            ~clear() { r.sweep_ = nullptr; }
        };
        run_write([&](write_txn& w, pending& ev) {
            const clear guard{*this};
            sweep_ = rule;
            result = apply_result{};
            if (before) *before = last_seq_;
            schema_grew_ = false;
            for (const auto& cs : sets) (void)apply_one(w, cs, result, ev);
            release_held(w, result, ev);
            extra(w, result);
        });
        return result;
    }

    /// The running snapshot load's rule; null otherwise.
    const sweep_rule* sweep_ = nullptr;

    /// A completed snapshot load that removed facts raised the GC horizon
    /// from `from` to `to`, for this replica's other peers. Its sender lacks
    /// everything the load removed, so it still gets deltas from `from` on,
    /// as long as nothing else raised the horizon since. Persisted as meta
    /// `gc-exempt`: site(16) from(8) to(8).
    struct gc_exemption {
        crdtsync::site_id peer;
        std::uint64_t from = 0, to = 0;
    };
    mutable gc_exemption gc_exempt_;
    [[nodiscard]] bool gc_exempt(const crdtsync::site_id& peer, std::uint64_t position) const noexcept {
        return gc_exempt_.to != 0 && gc_exempt_.to == gc_seq_ && peer == gc_exempt_.peer && position >= gc_exempt_.from;
    }

    // ================================================================ state

    struct table_state {
        table_def def;
        std::uint32_t id = 0;
        std::vector<std::uint32_t> column_ids; // parallel to def.columns()
        std::uint32_t next_column_id = 0;
        std::int64_t schema_version = 1;
        std::string row_prefix; // 'r' u32 id
        bool folds = false;

        [[nodiscard]] std::optional<std::size_t> column_index_by_id(std::uint32_t id_) const noexcept {
            for (std::size_t i = 0; i < column_ids.size(); ++i)
                if (column_ids[i] == id_) return i;
            return std::nullopt;
        }
        void init_prefixes() {
            row_prefix = detail::layout::table_prefix(detail::layout::row, id);
            folds = def.folds_keys();
        }
    };

    struct pending {
        std::vector<local_change> local;
        std::vector<remote_change> remote;
        std::vector<conflict> conflicts;
        std::vector<rejection> rejected;
        std::vector<hold_event> holds;
        std::vector<schema_notice> notices;
    };

    enum class outcome { applied, skipped, conflict_local, conflict_remote };

    template <class Fn>
    using listeners = std::vector<std::pair<listener_id, std::function<Fn>>>;

    template <class L, class F>
    listener_id add(const char* what, L& list, F fn) {
        const auto entered = check_.enter(what);
        list.emplace_back(++next_listener_, std::move(fn));
        return next_listener_;
    }

    static std::pair<std::string_view, std::string_view> split_name(std::string_view name) {
        const auto dot = name.find('.');
        if (dot == std::string_view::npos) return {"main", name};
        return {name.substr(0, dot), name.substr(dot + 1)};
    }

    [[nodiscard]] const table_state* lookup(std::string_view schema, std::string_view name) const noexcept {
        if (last_lookup_ < tables_.size()) {
            const auto& t = tables_[last_lookup_];
            if (detail::same_bytes(t.def.name(), name) && detail::same_bytes(t.def.schema_name(), schema)) return &t;
        }
        for (std::size_t i = 0; i < tables_.size(); ++i)
            if (detail::same_bytes(tables_[i].def.name(), name) && detail::same_bytes(tables_[i].def.schema_name(), schema)) {
                last_lookup_ = i;
                return &tables_[i];
            }
        return nullptr;
    }
    /// `lookup`, or the live table a rename gave the name `schema.name` was
    /// (a peer's fact, or column change, under a table's earlier name lands
    /// in the table: docs/schema.md).
    [[nodiscard]] const table_state* lookup_any(std::string_view schema, std::string_view name) const {
        if (auto t = lookup(schema, name)) return t;
        if (catalog_.renamed.empty()) return nullptr;
        const auto it = catalog_.renamed.find(detail::schema_catalog::qualified(schema, name));
        if (it == catalog_.renamed.end()) return nullptr;
        auto [s, n] = split_name(it->second);
        return lookup(s, n);
    }
    [[nodiscard]] const table_state& require_table(std::string_view qualified) const {
        auto [s, n] = split_name(qualified);
        if (auto t = lookup(s, n)) return *t;
        const auto q = detail::schema_catalog::qualified(s, n);
        if (catalog_.table_dropped(q))
            detail::raise(errc::unknown_table, "table " + q + " was dropped; a dropped table's name is not used again (docs/schema.md)");
        if (auto it = catalog_.renamed.find(q); it != catalog_.renamed.end())
            detail::raise(errc::unknown_table, "table " + q + " was renamed to " + it->second +
                                                   "; a renamed table's earlier name is not used again (docs/schema.md)");
        detail::raise(errc::unknown_table, "no table \"" + q + "\" in this replica");
    }
    [[nodiscard]] const table_state* table_by_id(std::uint32_t id) const noexcept {
        for (const auto& t : tables_)
            if (t.id == id) return &t;
        return nullptr;
    }

    static std::string hex(std::string_view s) {
        static constexpr char digits[] = "0123456789abcdef";
        std::string out;
        out.reserve(s.size() * 2);
        for (const char ch : s) {
            const auto c = static_cast<unsigned char>(ch);
            out += digits[c >> 4];
            out += digits[c & 15];
        }
        return out;
    }

    // ================================================================ open / persist

    void open() {
        {
            auto r = store_.read();
            if (stored_format(r) == storage_format_version) {
                load_state(r);
                return;
            }
        }
        // A new store, or one to upgrade. Another process may be doing the
        // same at this moment: decide and write in one write transaction, so
        // that the store ends with one site id and every opener reads it.
        auto w = store_.write();
        const auto format = stored_format(w);
        if (format == storage_format_version) {
            load_state(w);
            return;
        }
        std::string v;
        detail::put_be<std::uint32_t>(v, storage_format_version);
        if (format == 0) {
            w.put(detail::layout::meta_key("format"), v);
            w.put(detail::layout::meta_key("site"), (opts_.site ? *opts_.site : crdtsync::site_id::generate()).view());
            put_policy(w, opts_.deletes.value_or(delete_policy::insert_revives));
            w.commit();
            load_state();
            return;
        }
        // Format 2 -> 3. A failure throws out of the constructor with the
        // transaction aborted: the store stays at format 2.
        put_policy(w, opts_.deletes.value_or(delete_policy::insert_revives)); // format 2 did not keep it
        load_state(w);
        refold_nocase_keys(w);
        persist_counters(w);
        w.put(detail::layout::meta_key("format"), v);
        w.commit();
        load_state();
    }

    static void put_policy(write_txn& w, delete_policy p) {
        w.put(detail::layout::meta_key("deletes"), std::string(1, static_cast<char>(p)));
    }

    /// The format version the store holds (0 when it is empty); one this
    /// version reads or upgrades. \throws storage_error
    /// (`errc::format_version`) otherwise.
    template <class Txn>
    static std::uint32_t stored_format(Txn& t) {
        auto fmt = t.get(detail::layout::meta_key("format"));
        if (!fmt) return 0;
        const auto version = fmt->size() == 4 ? detail::load_be<std::uint32_t>(*fmt) : 0;
        if (version != storage_format_version && version != 2)
            detail::raise(errc::format_version,
                          "the store holds crdtsync format version " +
                              (fmt->size() == 4 ? std::to_string(version) : std::string("(unreadable)")) +
                              ", this library reads version " + std::to_string(storage_format_version) +
                              " and upgrades version 2");
        return version;
    }

    /// The upgrade from format 2, whose NOCASE folded ASCII letters only, to
    /// format 3, whose NOCASE folds as JavaScript's `toLowerCase()`: every
    /// row whose key folds differently now moves to its new key, merged (as
    /// any merge: per cell the newer version, the greater tombstone) with a
    /// row already there ('Ü' and 'ü' become one row). Moved facts get new
    /// local sequence numbers, so peers receive them again (and skip them).
    void refold_nocase_keys(write_txn& w) {
        for (const auto& t : tables_) {
            const auto& kc = t.def.key_columns();
            if (std::none_of(kc.begin(), kc.end(), [&](std::size_t i) { return t.def.columns()[i].coll == collation::nocase; }))
                continue;
            std::vector<std::pair<std::string, std::string>> moves; // old suffix, new suffix
            w.scan(t.row_prefix, key_codec::tuple_range_end(t.row_prefix), [&](std::string_view k, std::string_view) {
                const auto suffix = k.substr(t.row_prefix.size());
                auto values = key_codec::decode(suffix);
                if (values.size() != kc.size()) detail::raise(errc::storage, "stored row key of table " + t.def.qualified_name() + " is malformed");
                for (std::size_t i = 0; i < kc.size(); ++i) values[i] = t.def.key_identity(kc[i], std::move(values[i]));
                auto refolded = key_codec::encode(values);
                if (refolded != suffix) moves.emplace_back(std::string(suffix), std::move(refolded));
                return true;
            });
            for (const auto& [from, to] : moves) move_row(w, t, from, to);
        }
    }
    void move_row(write_txn& w, const table_state& t, const std::string& from, const std::string& to) {
        row_image old;
        load_row(w, t, from, old);
        for (const auto& c : old.rec.cells) (void)w.erase(detail::layout::log_key(c.seq));
        if (old.rec.tomb) {
            (void)w.erase(detail::layout::log_key(old.rec.tomb->seq));
            (void)w.erase(detail::layout::tomb_index_key(old.rec.tomb->created_ms, old.key));
        }
        (void)w.erase(old.key);
        row_image img;
        load_row(w, t, to, img);
        for (const auto& c : old.rec.cells) {
            const auto col = t.column_index_by_id(c.column);
            if (!col) continue;
            // Format 2 kept no original spelling where its fold changed nothing.
            const std::string& original = c.original_pk.empty() ? from : c.original_pk;
            (void)put_cell(img, *col, c.val, c.version, c.prior_version, c.prior_value,
                           original == to ? std::string_view{} : std::string_view(original), false, nullptr);
        }
        if (old.rec.tomb) (void)put_tomb(w, img, old.rec.tomb->original_pk, old.rec.tomb->version);
        flush(w, img);
    }

    // Reads every in-memory mirror of the store (after open, and after an
    // aborted transaction so nothing of it survives in memory).
    void load_state() const {
        auto r = store_.read();
        load_state(r);
    }

    /// Brings the in-memory mirrors up to the store as transaction `t` sees
    /// it. Another process may have committed to the same store (LMDB is a
    /// multi-process store): every commit bumps the generation counter, so a
    /// transaction that finds another generation than the one mirrored
    /// re-reads them before it uses the sequence, the clock or the tables.
    template <class Txn>
    void refresh(Txn& t) const {
        if (read_u64(t, "gen") != gen_) load_state(t);
    }

    template <class Txn>
    void load_state(Txn& r) const {
        auto s = r.get(detail::layout::meta_key("site"));
        if (!s) detail::raise(errc::storage, "the store has a format version but no site id");
        site_ = crdtsync::site_id::from_bytes(*s);
        if (auto p = r.get(detail::layout::meta_key("deletes")); p && p->size() == 1 && static_cast<unsigned char>((*p)[0]) <= 2) {
            policy_ = static_cast<delete_policy>((*p)[0]);
        } else {
            detail::raise(errc::storage, "the store's delete policy record is missing or unreadable");
        }
        hlc last{};
        if (auto c = r.get(detail::layout::meta_key("clock"))) last = hlc::from_bytes(*c);
        clock_ = hlc_clock<Clock>(site_, physical_, static_cast<std::uint64_t>(opts_.max_drift.count()), last);
        gen_ = read_u64(r, "gen");
        last_seq_ = read_u64(r, "seq");
        gc_seq_ = read_u64(r, "gc");
        held_facts_ = read_u64(r, "held");
        ++schema_gen_;
        gc_exempt_ = {};
        if (auto v = r.get(detail::layout::meta_key("gc-exempt")); v && v->size() == crdtsync::site_id::size + 16)
            gc_exempt_ = {crdtsync::site_id::from_bytes(v->substr(0, crdtsync::site_id::size)),
                          detail::load_be<std::uint64_t>(*v, crdtsync::site_id::size), detail::load_be<std::uint64_t>(*v, crdtsync::site_id::size + 8)};
        next_table_id_ = static_cast<std::uint32_t>(std::max<std::uint64_t>(read_u64(r, "tables"), 1));
        tables_.clear();
        last_lookup_ = 0;
        const std::string b(1, detail::layout::table_rec), e(1, static_cast<char>(detail::layout::table_rec + 1));
        r.scan(b, e, [&](std::string_view k, std::string_view v) {
            tables_.push_back(decode_table(detail::load_be<std::uint32_t>(k, 1), v));
            return true;
        });
        catalog_ = replay_catalog(r);
    }
    template <class R>
    static std::uint64_t read_u64(R& r, std::string_view name) {
        auto v = r.get(detail::layout::meta_key(name));
        return v && v->size() == 8 ? detail::load_be<std::uint64_t>(*v) : 0;
    }
    void persist_counters(write_txn& w) {
        std::string v;
        detail::put_be<std::uint64_t>(v, ++gen_);
        w.put(detail::layout::meta_key("gen"), v);
        v.clear();
        clock_.last().append_bytes(v);
        w.put(detail::layout::meta_key("clock"), v);
        v.clear();
        detail::put_be<std::uint64_t>(v, last_seq_);
        w.put(detail::layout::meta_key("seq"), v);
        v.clear();
        detail::put_be<std::uint64_t>(v, gc_seq_);
        w.put(detail::layout::meta_key("gc"), v);
        v.clear();
        detail::put_be<std::uint64_t>(v, next_table_id_);
        w.put(detail::layout::meta_key("tables"), v);
    }

    static std::string encode_table(const table_state& t) {
        std::vector<value> f{value{t.def.schema_name()}, value{t.def.name()}, value{t.next_column_id}, value{t.schema_version}};
        const auto& cols = t.def.columns();
        const auto& key = t.def.key_columns();
        for (std::size_t i = 0; i < cols.size(); ++i) {
            const auto kp = std::find(key.begin(), key.end(), i);
            f.insert(f.end(), {value{cols[i].name}, value{static_cast<std::int64_t>(cols[i].type)}, value{cols[i].nullable},
                               value{static_cast<std::int64_t>(cols[i].coll)}, value{t.column_ids[i]},
                               value{kp == key.end() ? std::int64_t{-1} : static_cast<std::int64_t>(kp - key.begin())}});
        }
        // Column defaults, when some column has one: one more field, a tuple
        // of one value per column (NULL: none).
        if (std::any_of(cols.begin(), cols.end(), [](const auto& c) { return c.default_value.has_value(); })) {
            std::vector<value> defaults;
            for (const auto& c : cols) defaults.push_back(c.default_value.value_or(value{}));
            f.push_back(value{blob{key_codec::encode(std::span<const value>(defaults))}});
        }
        return key_codec::encode(f);
    }
    static table_state decode_table(std::uint32_t id, std::string_view rec) {
        auto f = key_codec::decode(rec);
        if (f.size() < 4 || (f.size() - 4) % 6 > 1) detail::raise(errc::storage, "stored table record is malformed");
        std::vector<value> defaults;
        if ((f.size() - 4) % 6 == 1) {
            if (f.back().kind() != value_kind::blob) detail::raise(errc::storage, "stored table record is malformed");
            defaults = key_codec::decode(f.back().as_blob().bytes);
            f.pop_back();
            if (defaults.size() != (f.size() - 4) / 6) detail::raise(errc::storage, "stored table record is malformed");
        }
        table_state t;
        t.id = id;
        t.def = table_def(f[1].as_text(), f[0].as_text());
        t.next_column_id = static_cast<std::uint32_t>(f[2].as_integer());
        t.schema_version = f[3].as_integer();
        std::vector<std::pair<std::int64_t, std::string>> key;
        for (std::size_t i = 4; i < f.size(); i += 6) {
            t.def.column(f[i].as_text(), static_cast<column_type>(f[i + 1].as_integer()), f[i + 2].as_bool(),
                         static_cast<collation>(f[i + 3].as_integer()));
            if (!defaults.empty() && !defaults[(i - 4) / 6].is_null()) t.def.set_default(t.def.columns().size() - 1, defaults[(i - 4) / 6]);
            t.column_ids.push_back(static_cast<std::uint32_t>(f[i + 4].as_integer()));
            if (f[i + 5].as_integer() >= 0) key.emplace_back(f[i + 5].as_integer(), f[i].as_text());
        }
        std::sort(key.begin(), key.end());
        std::vector<std::string> names;
        for (auto& k : key) names.push_back(k.second);
        // primary_key() marks key columns NOT NULL, as they were when stored.
        t.def.primary_key(names);
        t.init_prefixes();
        return t;
    }

    static std::string encode_migration(const schema_migration& m) {
        return key_codec::encode({value{static_cast<std::int64_t>(m.type)}, value{m.schema}, value{m.table},
                                  m.from_table ? value{*m.from_table} : value{}, value{m.ddl}, value{m.schema_version}});
    }
    static schema_migration decode_migration(std::string_view rec, const hlc* version = nullptr) {
        const auto f = key_codec::decode(rec);
        if (f.size() != 6) detail::raise(errc::storage, "stored migration record is malformed");
        schema_migration m;
        m.type = static_cast<migration_kind>(f[0].as_integer());
        m.schema = f[1].as_text();
        m.table = f[2].as_text();
        if (!f[3].is_null()) m.from_table = f[3].as_text();
        m.ddl = f[4].as_text();
        m.schema_version = f[5].as_integer();
        if (version) m.version = *version;
        return m;
    }

    // ================================================================ transactions

    template <class Body>
    void run_write(Body&& body) {
        for (unsigned attempt = 0;; ++attempt) {
            cur_.reset(); // the row the merge was at never outlives its transaction (nor a failed one)
            pending ev;
            std::exception_ptr failure;
            bool storage_full = false;
            {
                auto w = store_.write();
                try {
                    refresh(w);
                    struct scope {
                        pending*& p;
                        ~scope() { p = nullptr; }
                    } const in{current_ev_ = &ev};
                    body(w, ev);
                    persist_counters(w);
                    w.commit();
                } catch (const error& e) {
                    storage_full = e.code() == errc::storage_full;
                    failure = std::current_exception();
                } catch (...) {
                    failure = std::current_exception();
                }
            } // an uncommitted transaction aborts here
            if (!failure) {
                fire(ev);
                return;
            }
            load_state();
            if (!(storage_full && attempt < opts_.storage_full_retries)) std::rethrow_exception(failure);
        }
    }

    void fire(pending& ev) {
        for (const auto& e : ev.local) notify(local_listeners_, e);
        for (const auto& e : ev.remote) notify(remote_listeners_, e);
        for (const auto& e : ev.conflicts) notify(conflict_listeners_, e);
        for (const auto& e : ev.rejected) notify(rejected_listeners_, e);
        for (const auto& e : ev.holds) notify(hold_listeners_, e);
        for (const auto& e : ev.notices) notify(schema_listeners_, e);
    }
    // A listener may add or remove listeners (itself too) while it is called:
    // iterate over a copy, and skip those removed meanwhile.
    template <class L, class E>
    static void notify(const L& list, const E& e) {
        if (list.empty()) return;
        const L snapshot = list;
        for (const auto& entry : snapshot) {
            const auto id = entry.first;
            if (std::any_of(list.begin(), list.end(), [id](const auto& l) { return l.first == id; })) entry.second(e);
        }
    }

    // ================================================================ rows and keys

    /// The encoded (collation-folded) key suffix of a row, and the encoded
    /// original key when folding changed it (empty otherwise).
    std::pair<std::string, std::string> encode_row(const table_state& t, const row_key& pk) const {
        std::pair<std::string, std::string> out;
        encode_row_to(t, pk, out.first, out.second);
        return out;
    }
    /// Appends the encoded key suffix to `folded`; sets `original` as
    /// `encode_row` does.
    void encode_row_to(const table_state& t, const row_key& pk, std::string& folded, std::string& original) const {
        encode_key(t.def, t.folds, pk, folded, original);
    }
    static void encode_key(const table_def& def, bool folds, const row_key& pk, std::string& folded, std::string& original) {
        const auto& kc = def.key_columns();
        if (pk.size() != kc.size())
            detail::raise(errc::invalid_key, "table " + def.qualified_name() + " has a primary key of " + std::to_string(kc.size()) +
                                                 " column(s), got a key of " + std::to_string(pk.size()) + " value(s)");
        original.clear();
        bool changed = false;
        for (std::size_t i = 0; i < kc.size(); ++i) {
            if (pk[i].is_null())
                detail::raise(errc::invalid_key, "table " + def.qualified_name() + ": primary key column \"" +
                                                     def.columns()[kc[i]].name + "\" cannot be NULL");
            if (folds) {
                auto v = def.coerce(kc[i], pk[i]);
                auto id = def.key_identity(kc[i], v);
                changed = changed || !(id == v);
                key_codec::append(folded, id);
                key_codec::append(original, v);
            } else if (def.coerces(kc[i], pk[i])) {
                key_codec::append(folded, def.coerce(kc[i], pk[i]));
            } else {
                key_codec::append(folded, pk[i]);
            }
        }
        if (!changed) original.clear();
    }

    // ================================================================ key size

    /// The longest encoded primary key (row key suffix) the store holds, 0
    /// for no limit. A row's longest derived key is its tombstone's arrival
    /// index entry: 'x' u64 created, then the row key ('r' u32 table,
    /// suffix). Checking that one at insert means that a row that could be
    /// inserted can always be updated and deleted, here and at every peer
    /// on the same kind of store.
    static std::size_t max_key_suffix(Store& s) {
        if constexpr (requires { { s.max_key_size() } -> std::convertible_to<std::size_t>; }) {
            const std::size_t overhead = 1 + 8 + 1 + 4;
            const std::size_t m = s.max_key_size();
            return m > overhead ? m - overhead : 1;
        } else {
            return 0;
        }
    }
    /// Refuses (in validation) a fact whose row key the store cannot hold.
    /// An upper bound of the size is summed first; the key is encoded only
    /// when the bound is over the limit (or a number changes form).
    template <class Fact>
    void check_key_size(const table_def& def, const Fact& f) {
        const auto& kc = def.key_columns();
        const bool folds = def.folds_keys();
        std::size_t bound = 0;
        bool exact = false;
        for (std::size_t k = 0; k < kc.size(); ++k) {
            const value& v = f.pk[k];
            bound += key_codec::encoded_size(v);
            if (const auto* text = v.get_if<std::string>(); text && folds) bound += text->size() / 2 + 1; // folding may grow text
            exact = exact || def.coerces(kc[k], v);
        }
        if (bound <= max_key_ && !exact) return;
        std::string folded, original;
        encode_key(def, folds, f.pk, folded, original);
        if (folded.size() > max_key_) reject_fact(fact_problem::key_size, f.schema, f.table, {}, folded.size(), max_key_);
    }
    /// Refuses a key value no replica can store as given (see detail/storable.hpp);
    /// numbers change form in `encode_key`, JSON keys must be canonical already.
    static void check_key_value(const table_def& def, std::size_t col, const value& v) {
        std::optional<value> scratch;
        if (detail::storable(def, col, v, scratch) != &v && v.kind() == value_kind::json)
            detail::refuse_value(def, col, "a JSON key value must be in canonical form, " + scratch->get_if<json_text>()->text.substr(0, 60));
    }

    struct cell_view {
        hlc version;
        value val;
    };
    struct row_state {
        std::vector<std::optional<cell_view>> cells; // per column
        std::optional<hlc> tomb;
        bool visible = false;
    };

    /// A row record read into memory, changed there, and written back whole
    /// by `flush` (one read and one write per row, however many facts).
    struct row_image {
        const table_state* table = nullptr;
        std::string key; // 'r' u32 table, suffix
        detail::layout::row_record rec;
        bool stored = false; // the store holds a record under `key`
        bool dirty = false;
        std::vector<std::uint64_t> released; // seqs a replaced or dropped part carried

        [[nodiscard]] std::string_view suffix() const noexcept { return std::string_view(key).substr(table->row_prefix.size()); }
        [[nodiscard]] detail::layout::row_cell* cell(std::uint32_t column) noexcept {
            for (auto& c : rec.cells)
                if (c.column == column) return &c;
            return nullptr;
        }
        [[nodiscard]] bool carries(std::uint64_t seq) const noexcept {
            if (rec.tomb && rec.tomb->seq == seq) return true;
            return std::any_of(rec.cells.begin(), rec.cells.end(), [&](const auto& c) { return c.seq == seq; });
        }
        void release(std::uint64_t seq) {
            if (seq != 0) released.push_back(seq);
        }
        /// Forgets the row (keeping the buffers' capacity).
        void reset() noexcept {
            table = nullptr;
            rec.tomb.reset();
            rec.cells.clear();
            stored = false;
            dirty = false;
            released.clear();
        }
    };

    template <class R>
    void load_row(R& r, const table_state& t, std::string_view suffix, row_image& img) const {
        img.key.assign(t.row_prefix);
        img.key.append(suffix);
        load_row_at_key(r, t, img);
    }
    /// `load_row` for an image whose `key` is already set.
    template <class R>
    void load_row_at_key(R& r, const table_state& t, row_image& img) const {
        img.table = &t;
        img.dirty = false;
        img.released.clear();
        if (auto v = r.get(img.key)) {
            detail::layout::read_row_record(*v, img.rec);
            img.stored = true;
        } else {
            img.rec.tomb.reset();
            img.rec.cells.clear();
            img.stored = false;
        }
    }

    /// Writes a changed row back: parts written since it was read get a new
    /// seq and one change-log entry; log entries no part carries any more go.
    void flush(write_txn& w, row_image& img) {
        if (!img.dirty) return;
        img.dirty = false;
        auto& rec = img.rec;
        bool fresh = rec.tomb && rec.tomb->seq == 0;
        for (const auto& c : rec.cells) fresh = fresh || c.seq == 0;
        std::uint64_t seq = 0;
        if (fresh) {
            seq = ++last_seq_;
            if (rec.tomb && rec.tomb->seq == 0) rec.tomb->seq = seq;
            for (auto& c : rec.cells)
                if (c.seq == 0) c.seq = seq;
        }
        if (rec.empty()) {
            if (img.stored) (void)w.erase(img.key);
            img.stored = false;
        } else {
            detail::layout::put_row_record(rec_buf_, rec);
            w.put(img.key, rec_buf_);
            img.stored = true;
        }
        if (fresh) {
            detail::layout::put_log_record(log_buf_, detail::layout::row, img.key);
            w.put(detail::layout::log_key(seq), log_buf_);
        }
        if (!img.released.empty()) {
            std::sort(img.released.begin(), img.released.end());
            img.released.erase(std::unique(img.released.begin(), img.released.end()), img.released.end());
            for (const auto s : img.released)
                if (!img.carries(s)) (void)w.erase(detail::layout::log_key(s));
            img.released.clear();
        }
    }

    row_state state_of(const table_state& t, const row_image& img) const {
        row_state s;
        s.cells.resize(t.def.columns().size());
        for (const auto& c : img.rec.cells)
            if (auto col = t.column_index_by_id(c.column)) s.cells[*col] = cell_view{c.version, c.val};
        if (img.rec.tomb) s.tomb = img.rec.tomb->version;
        s.visible = visible(t, s);
        return s;
    }
    template <class R>
    row_state read_row_state(R& r, const table_state& t, std::string_view suffix) const {
        row_image img;
        load_row(r, t, suffix, img);
        return state_of(t, img);
    }
    bool visible(const table_state& t, const row_state& s) const {
        if (policy_ == delete_policy::delete_wins && s.tomb) return false;
        if (policy_ == delete_policy::lww)
            return std::any_of(s.cells.begin(), s.cells.end(), [](auto& c) { return c.has_value(); });
        for (auto k : t.def.key_columns())
            if (s.cells[k]) return true;
        return false;
    }
    row to_row(const table_state& t, const row_state& s, std::string_view suffix) const {
        row out;
        const auto& cols = t.def.columns();
        std::vector<value> key_values;
        // A column without a cell reads as its default: rows written before
        // (or without knowing) an ADD COLUMN ... DEFAULT get it.
        for (std::size_t i = 0; i < cols.size(); ++i) out[cols[i].name] = s.cells[i] ? s.cells[i]->val : cols[i].default_value.value_or(value{});
        for (std::size_t k = 0; k < t.def.key_columns().size(); ++k) {
            const auto i = t.def.key_columns()[k];
            if (!s.cells[i]) { // only under lww, after a delete: read the key itself
                if (key_values.empty()) key_values = key_codec::decode(suffix);
                out[cols[i].name] = key_values.at(k);
            }
        }
        return out;
    }
    template <class R>
    std::optional<row> read_row(R& r, const table_state& t, std::string_view suffix) const {
        auto s = read_row_state(r, t, suffix);
        if (!s.visible) return std::nullopt;
        return to_row(t, s, suffix);
    }
    template <class R>
    std::vector<row> scan_rows(R& r, const table_state& t) const {
        return scan_rows(r, t, t.row_prefix, false, static_cast<std::size_t>(-1));
    }
    /// Visible rows from store key `begin` (skipping `begin` itself when
    /// `skip_begin`), at most `limit`.
    template <class R>
    std::vector<row> scan_rows(R& r, const table_state& t, const std::string& begin, bool skip_begin,
                               std::size_t limit) const {
        std::vector<row> out;
        if (limit == 0) return out;
        row_image img;
        img.table = &t;
        r.scan(begin, key_codec::tuple_range_end(t.row_prefix), [&](std::string_view k, std::string_view v) {
            if (skip_begin && k == begin) return true;
            detail::layout::read_row_record(v, img.rec);
            const auto s = state_of(t, img);
            if (s.visible) out.push_back(to_row(t, s, k.substr(t.row_prefix.size())));
            return out.size() < limit;
        });
        return out;
    }

    // ================================================================ fact writers

    /// Gives a part a new seq at the next flush when the running snapshot
    /// load must confirm it: the snapshot names it, so the load keeps it.
    [[gnu::cold]] void restamp(row_image& img, std::uint64_t& seq, const hlc& version) {
        if (!sweep_->covers(seq, version)) return;
        img.release(seq);
        seq = 0;
        img.dirty = true;
    }
    /// Drops the cells that the row's tombstone at `h` hides.
    void drop_hidden(row_image& img, const hlc& h) {
        std::erase_if(img.rec.cells, [&](const auto& cell) {
            if (policy_ != delete_policy::delete_wins && h < cell.version) return false;
            img.release(cell.seq);
            return true;
        });
    }

    // Two writes conflict when different sites wrote different values and the
    // later writer had not overwritten a version at least as new as the other
    // write (its prior). Without a prior (Quereus sends none) any different
    // value from another site counts.
    static bool is_conflict(const hlc& local_h, const value& local_v, const hlc& remote_h, const value& remote_v,
                            const std::optional<hlc>& remote_prior) {
        if (local_h.site == remote_h.site) return false;             // one writer's own sequence
        if (remote_prior && *remote_prior >= local_h) return false; // the writer overwrote ours (or newer)
        return !(local_v == remote_v);
    }

    /// Writes one cell into the row image if `h` beats what the row holds.
    /// `local` writes are never conflicts. On a conflict, fills `c` (except
    /// the row identity).
    outcome put_cell(row_image& img, std::size_t col, const value& v, const hlc& h, const std::optional<hlc>& prior,
                     const std::optional<value>& prior_value, std::string_view original_pk, bool local, conflict* c) {
        const auto& t = *img.table;
        auto& rec = img.rec;
        if (rec.tomb && (policy_ == delete_policy::delete_wins || h <= rec.tomb->version)) {
            // During a snapshot load, a tombstone the load may yet remove (the
            // sender dropped it) does not hide the snapshot's cells; if the
            // snapshot names it, put_tomb drops what it hides again.
            if (!sweep_ || !sweep_->covers(rec.tomb->seq, rec.tomb->version)) return outcome::skipped;
        }
        const auto column = t.column_ids[col];
        outcome result = outcome::applied;
        auto* cell = img.cell(column);
        // During a snapshot load: the sender saw our cell and names only an
        // older version, so it dropped ours (a delete it pruned): take its.
        const bool dropped = cell && sweep_ && h < cell->version && sweep_->covers(cell->seq, cell->version);
        if (cell && !dropped) {
            // Two different facts under one HLC (a faulty or hostile peer
            // reused it): the greater value wins in every order, so the
            // merge stays a join, and it counts as a conflict.
            const bool tie = h == cell->version && !local && !(cell->val == v);
            if (tie) {
                const bool ours = v < cell->val;
                if (c) *c = conflict{{}, {}, {}, {}, cell->val, cell->version, v, h, ours ? conflict_winner::local : conflict_winner::remote};
                if (ours) {
                    if (sweep_) restamp(img, cell->seq, cell->version);
                    return outcome::conflict_local;
                }
                result = outcome::conflict_remote;
            } else if (h <= cell->version) {
                if (sweep_) restamp(img, cell->seq, cell->version); // the snapshot names this cell: keep it
                if (h == cell->version || local) return outcome::skipped;
                // Our value overwrote exactly the incoming one: no conflict.
                if (cell->prior_version && *cell->prior_version >= h) return outcome::skipped;
                if (!is_conflict(cell->version, cell->val, h, v, prior)) return outcome::skipped;
                if (c) *c = conflict{{}, {}, {}, {}, cell->val, cell->version, v, h, conflict_winner::local};
                return outcome::conflict_local;
            }
            if (!tie && !local && cell->version.site != h.site && !(prior && *prior >= cell->version) && !(cell->val == v)) {
                if (c) *c = conflict{{}, {}, {}, {}, cell->val, cell->version, v, h, conflict_winner::remote};
                result = outcome::conflict_remote;
            }
            img.release(cell->seq);
        } else if (cell) {
            img.release(cell->seq); // dropped by the sender: replaced below
        } else if (rec.cells.empty() || rec.cells.back().column < column) {
            cell = &rec.cells.emplace_back(); // columns mostly arrive in order
            cell->column = column;
        } else {
            auto at = std::find_if(rec.cells.begin(), rec.cells.end(), [&](const auto& x) { return x.column > column; });
            cell = &*rec.cells.emplace(at);
            cell->column = column;
        }
        cell->version = h;
        cell->seq = 0;
        cell->val = v;
        if (prior && prior_value) {
            cell->prior_version = prior;
            cell->prior_value = prior_value;
        } else {
            cell->prior_version.reset();
            cell->prior_value.reset();
        }
        if (!original_pk.empty() || !cell->original_pk.empty()) cell->original_pk.assign(original_pk);
        img.dirty = true;
        return result;
    }

    /// Records a delete of the row at `h` (a join: the tombstone keeps the
    /// greatest delete HLC) and drops the cells it hides.
    outcome put_tomb(write_txn& w, row_image& img, std::string_view original_pk, const hlc& h) {
        auto& rec = img.rec;
        // During a snapshot load: the sender saw our tombstone and names only
        // an older delete, so it dropped ours: take its (below).
        const bool dropped = rec.tomb && sweep_ && h < rec.tomb->version && sweep_->covers(rec.tomb->seq, rec.tomb->version);
        if (rec.tomb && h <= rec.tomb->version && !dropped) {
            if (sweep_ && sweep_->covers(rec.tomb->seq, rec.tomb->version)) {
                restamp(img, rec.tomb->seq, rec.tomb->version); // the snapshot names this delete: keep it,
                drop_hidden(img, rec.tomb->version);            // and what it hides goes again
            }
            return outcome::skipped;
        }
        if (rec.tomb) {
            img.release(rec.tomb->seq);
            (void)w.erase(detail::layout::tomb_index_key(rec.tomb->created_ms, img.key));
        }
        const auto now = physical_();
        rec.tomb = detail::layout::row_tomb{h, 0, now, std::string(original_pk.empty() ? img.suffix() : original_pk)};
        w.put(detail::layout::tomb_index_key(now, img.key), std::string_view{});
        // Cells at or below the tombstone are invisible forever: drop them,
        // so that every delivery order leaves the same stored state.
        drop_hidden(img, h);
        img.dirty = true;
        return outcome::applied;
    }

    // ================================================================ schema changes

    /// Applies a migration (already validated). Returns applied or skipped.
    outcome put_migration(write_txn& w, const schema_migration& m) {
        const auto mkey = detail::layout::migration_key(m.version);
        if (w.get(mkey)) return outcome::skipped; // the same fact, seen before
        schema_grew_ = true;
        w.put(mkey, encode_migration(m));
        const auto seq = ++last_seq_;
        detail::layout::put_log_record(log_buf_, detail::layout::migration, mkey);
        w.put(detail::layout::log_key(seq), log_buf_);
        const auto stmt = m.type == migration_kind::add_index || m.type == migration_kind::drop_index ? std::nullopt : parse_kept_ddl(m);
        if (stmt && changes_tables(*stmt)) {
            reconcile(w, m.schema_version);
        } else if (!stmt && current_ev_ && !schema_listeners_.empty() && m.type != migration_kind::add_index &&
                   m.type != migration_kind::drop_index) {
            current_ev_->notices.push_back(schema_notice{m, "kept and forwarded, not applied: its DDL is outside what this version "
                                                            "of crdtsync applies (" + m.ddl.substr(0, 120) + ")"});
        }
        return outcome::applied;
    }

    /// True for a statement that changes what the tables are (indexes are
    /// kept and forwarded only).
    static bool changes_tables(const ddl_statement& s) noexcept {
        return !std::holds_alternative<ddl_create_index>(s) && !std::holds_alternative<ddl_drop_index>(s);
    }

    /// What the stored migrations define (detail/schema_catalog.hpp),
    /// replayed in HLC order: a function of the set of migrations, so every
    /// replica that holds the same set agrees, whatever the order they
    /// arrived in.
    template <class Txn>
    static detail::schema_catalog replay_catalog(Txn& t) {
        std::vector<ddl_statement> stmts;
        const std::string b(1, detail::layout::migration), e(1, static_cast<char>(detail::layout::migration + 1));
        t.scan(b, e, [&](std::string_view, std::string_view v) {
            const auto m = decode_migration(v);
            if (m.type == migration_kind::add_index || m.type == migration_kind::drop_index) return true;
            if (auto s = parse_kept_ddl(m)) stmts.push_back(std::move(*s));
            return true;
        });
        return detail::schema_catalog::replay(stmts);
    }

    /// Makes the live tables what the stored migrations define: tables
    /// created, redefined (columns kept by name, new ones given new ids),
    /// or dropped with their rows; columns dropped with their cells.
    void reconcile(write_txn& w, std::int64_t version) {
        flush(w, cur_); // a merge may be at a row of a table this changes
        cur_.table = nullptr;
        catalog_ = replay_catalog(w);
        // A table record follows its table through renames (a record named
        // by an earlier name is the table's). When a rename joined two tables
        // that each have a record, the first keeps its id and the other's rows
        // merge into it.
        std::map<std::string, std::uint32_t, std::less<>> owner; // name now -> table id
        for (std::size_t i = 0; i < tables_.size();) {
            const auto now_named = catalog_.live_name(tables_[i].def.qualified_name());
            if (const auto* e = now_named.empty() ? nullptr : catalog_.find(now_named)) {
                if (auto o = owner.find(now_named); o == owner.end()) {
                    const bool renamed = tables_[i].def.name() != e->def.name();
                    define_table(w, tables_[i], e->def, version);
                    if (renamed) {
                        // Not during a snapshot load: its sweep finds the parts
                        // held before it by their seqs (docs/snapshots.md).
                        if (!sweep_) relog_rows(w, tables_[i]);
                        types_changed_ = true; // the set's facts are validated against the table now
                    }
                    owner.emplace(std::string(now_named), tables_[i].id);
                    ++i;
                    continue;
                } else {
                    const auto* rule = std::exchange(sweep_, nullptr); // the absorbed rows are new here
                    absorb_rows(w, *table_by_id(o->second), tables_[i]);
                    sweep_ = rule;
                    types_changed_ = true;
                }
            }
            purge_table(w, tables_[i]);
            tables_.erase(tables_.begin() + static_cast<std::ptrdiff_t>(i));
            last_lookup_ = 0;
            ++schema_gen_;
        }
        for (const auto& [q, e] : catalog_.tables)
            if (!owner.contains(q)) add_table(w, e.def, version);
    }

    /// Gives every row of `t` (just renamed) a new seq and one change-log
    /// entry under it: `changes_since` then offers its rows after the
    /// rename's migration, under the table's new name, so a peer that has
    /// not got the rename yet receives the migration first (rather than rows
    /// for a table it does not know, which Quereus would skip). Peers that
    /// had the rows get them again, and skip them.
    void relog_rows(write_txn& w, const table_state& t) {
        struct rewrite {
            std::string key, record;
            std::uint64_t seq;
        };
        std::vector<rewrite> rewrites;
        std::vector<std::uint64_t> old;
        detail::layout::row_record rec;
        w.scan(t.row_prefix, key_codec::tuple_range_end(t.row_prefix), [&](std::string_view k, std::string_view v) {
            detail::layout::read_row_record(v, rec);
            for (const auto& c : rec.cells) old.push_back(c.seq);
            if (rec.tomb) old.push_back(rec.tomb->seq);
            const auto seq = ++last_seq_;
            for (auto& c : rec.cells) c.seq = seq;
            if (rec.tomb) rec.tomb->seq = seq;
            auto& r = rewrites.emplace_back(rewrite{std::string(k), {}, seq});
            detail::layout::put_row_record(r.record, rec);
            return true;
        });
        std::sort(old.begin(), old.end());
        old.erase(std::unique(old.begin(), old.end()), old.end());
        for (const auto s : old) (void)w.erase(detail::layout::log_key(s)); // a seq names one row
        for (const auto& r : rewrites) {
            w.put(r.key, r.record);
            detail::layout::put_log_record(log_buf_, detail::layout::row, r.key);
            w.put(detail::layout::log_key(r.seq), log_buf_);
        }
    }

    /// Merges the rows of `from` into `into`, two tables a rename joined
    /// (the same primary key, so the same stored keys): each cell and
    /// tombstone as its fact would merge, the later version winning. Cells of
    /// columns `into` does not have (dropped) are left out; `from` is purged
    /// after.
    void absorb_rows(write_txn& w, const table_state& into, const table_state& from) {
        std::vector<std::pair<std::string, std::string>> rows; // suffix, record
        w.scan(from.row_prefix, key_codec::tuple_range_end(from.row_prefix), [&](std::string_view k, std::string_view v) {
            rows.emplace_back(k.substr(from.row_prefix.size()), v);
            return true;
        });
        row_image img;
        detail::layout::row_record rec;
        for (const auto& [suffix, v] : rows) {
            detail::layout::read_row_record(v, rec);
            load_row(w, into, suffix, img);
            if (rec.tomb) (void)put_tomb(w, img, rec.tomb->original_pk, rec.tomb->version);
            for (auto& c : rec.cells) {
                const auto at = from.column_index_by_id(c.column);
                const auto col = at ? into.def.find_column(from.def.columns()[*at].name) : std::nullopt;
                if (!col) continue;
                if (into.def.coerces(*col, c.val)) {
                    try {
                        c.val = into.def.coerce(*col, std::move(c.val));
                    } catch (const error&) {
                        // A value the column's type cannot hold stays as stored (as recoerce_cells does).
                    }
                }
                (void)put_cell(img, *col, c.val, c.version, c.prior_version, c.prior_value, c.original_pk, false, nullptr);
            }
            flush(w, img);
        }
    }

    /// Makes live table `t` what `def` says: its columns (kept by name, new
    /// ones given new ids) in `def`'s order and definitions. The cells of
    /// columns `def` lacks are removed; a column whose type changes between
    /// REAL and another type has its stored cells coerced again, so every
    /// replica stores the value the final definition gives.
    void define_table(write_txn& w, table_state& t, const table_def& def, std::int64_t version) {
        if (t.def == def) return;
        std::vector<std::uint32_t> ids;
        std::vector<std::size_t> recoerce;
        for (std::size_t i = 0; i < def.columns().size(); ++i) {
            const auto& c = def.columns()[i];
            if (auto old = t.def.find_column(c.name)) {
                ids.push_back(t.column_ids[*old]);
                const bool was_real = t.def.columns()[*old].type == column_type::real;
                if (was_real != (c.type == column_type::real)) recoerce.push_back(i);
            } else {
                ids.push_back(t.next_column_id++);
            }
        }
        std::vector<std::uint32_t> gone;
        for (std::size_t i = 0; i < t.def.columns().size(); ++i)
            if (!def.find_column(t.def.columns()[i].name)) gone.push_back(t.column_ids[i]);
        ++schema_gen_;
        t.def = def;
        t.column_ids = std::move(ids);
        t.schema_version = std::max(t.schema_version + 1, version);
        t.init_prefixes();
        w.put(detail::layout::table_key(t.id), encode_table(t));
        if (!gone.empty()) purge_columns(w, t, gone);
        if (!recoerce.empty()) {
            recoerce_cells(w, t, recoerce);
            types_changed_ = true;
        }
    }

    /// Removes a dropped table: its rows, their change-log entries and
    /// tombstone index entries, and its table record.
    void purge_table(write_txn& w, const table_state& t) {
        std::vector<std::string> keys;
        std::vector<std::uint64_t> seqs;
        std::vector<std::string> tombs;
        detail::layout::row_record rec;
        w.scan(t.row_prefix, key_codec::tuple_range_end(t.row_prefix), [&](std::string_view k, std::string_view v) {
            detail::layout::read_row_record(v, rec);
            keys.emplace_back(k);
            for (const auto& c : rec.cells) seqs.push_back(c.seq);
            if (rec.tomb) {
                seqs.push_back(rec.tomb->seq);
                tombs.push_back(detail::layout::tomb_index_key(rec.tomb->created_ms, k));
            }
            return true;
        });
        std::sort(seqs.begin(), seqs.end());
        seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
        for (const auto s : seqs) (void)w.erase(detail::layout::log_key(s)); // a seq names one row
        for (const auto& k : tombs) (void)w.erase(k);
        for (const auto& k : keys) (void)w.erase(k);
        (void)w.erase(detail::layout::table_key(t.id));
    }

    /// Removes the cells of dropped columns (`ids`) from every row of `t`,
    /// with the change-log entries no part of a row carries any more.
    void purge_columns(write_txn& w, const table_state& t, const std::vector<std::uint32_t>& ids) {
        std::vector<std::string> keys;
        detail::layout::row_record rec;
        w.scan(t.row_prefix, key_codec::tuple_range_end(t.row_prefix), [&](std::string_view k, std::string_view v) {
            detail::layout::read_row_record(v, rec);
            if (std::any_of(rec.cells.begin(), rec.cells.end(),
                            [&](const auto& c) { return std::find(ids.begin(), ids.end(), c.column) != ids.end(); }))
                keys.emplace_back(k);
            return true;
        });
        row_image img;
        for (auto& k : keys) {
            img.key = std::move(k);
            load_row_at_key(w, t, img);
            std::erase_if(img.rec.cells, [&](const auto& c) {
                if (std::find(ids.begin(), ids.end(), c.column) == ids.end()) return false;
                img.release(c.seq);
                return true;
            });
            img.dirty = true;
            flush(w, img);
        }
    }

    /// Stores the cells of columns `cols` of table `t` as their (new) column
    /// type stores them; versions and sequence numbers stay.
    void recoerce_cells(write_txn& w, const table_state& t, const std::vector<std::size_t>& cols) {
        std::vector<std::pair<std::string, std::string>> rewrites;
        detail::layout::row_record rec;
        w.scan(t.row_prefix, key_codec::tuple_range_end(t.row_prefix), [&](std::string_view k, std::string_view v) {
            detail::layout::read_row_record(v, rec);
            bool changed = false;
            for (auto& c : rec.cells)
                for (const auto col : cols)
                    if (c.column == t.column_ids[col] && t.def.coerces(col, c.val)) {
                        try {
                            c.val = t.def.coerce(col, std::move(c.val));
                            changed = true;
                        } catch (const error&) {
                            // A value the new type cannot hold (a huge integer in a REAL column) stays as stored.
                        }
                    }
            if (changed) {
                std::string out;
                detail::layout::put_row_record(out, rec);
                rewrites.emplace_back(k, std::move(out));
            }
            return true;
        });
        for (const auto& [k, v] : rewrites) w.put(k, v);
    }

    void add_table(write_txn& w, table_def def, std::int64_t version) {
        table_state t;
        t.def = std::move(def);
        t.id = next_table_id_++;
        for (std::size_t i = 0; i < t.def.columns().size(); ++i) t.column_ids.push_back(t.next_column_id++);
        t.schema_version = version;
        t.init_prefixes();
        w.put(detail::layout::table_key(t.id), encode_table(t));
        tables_.push_back(std::move(t));
        ++schema_gen_;
    }

    /// The definition a migration of the change set being validated finds
    /// for table `schema.table`: one the set's earlier migrations made, or
    /// the live one; null when there is none.
    const table_def* definition_for(std::string_view schema, std::string_view table, const std::vector<table_def>& created) const {
        const table_def* def = nullptr;
        if (auto t = lookup_any(schema, table)) def = &t->def;
        if (!created.empty()) {
            const auto renamed_to = name_now(schema, table);
            for (const auto& c : created)
                if (c.schema_name() == schema && (c.name() == table || c.name() == renamed_to)) def = &c;
        }
        return def;
    }
    /// The name the table `schema.table` names has after the change set
    /// being validated: its own renames, and the catalog's, followed.
    [[nodiscard]] std::string name_now(std::string_view schema, std::string_view table) const {
        std::string name(table);
        for (int hops = 0; hops < 16; ++hops) { // renames within one set may loop
            const auto q = detail::schema_catalog::qualified(schema, name);
            if (auto it = set_renames_.find(q); it != set_renames_.end() && it->second != name) {
                name = it->second;
            } else if (auto a = catalog_.renamed.find(q); a != catalog_.renamed.end()) {
                name = std::string(split_name(a->second).second);
            } else {
                break;
            }
        }
        return name;
    }
    /// The definition a column migration needs, or: nothing when the table
    /// was dropped (the migration is kept, and changes nothing), a hold
    /// (unknown_table) when it is not known yet.
    const table_def* target_of(std::string_view schema, std::string_view table, const std::vector<table_def>& created,
                               const char* what) {
        if (const auto* def = definition_for(schema, table, created)) return def;
        if (dropped_table(schema, table)) return nullptr;
        const auto q = detail::schema_catalog::qualified(schema, table);
        failing_table_ = q; // reported in the rejection
        detail::raise(errc::unknown_table, std::string(what) + " for unknown table " + q);
    }

    /// Checks a migration can apply on top of `schema` (the live tables plus
    /// those created earlier in the same change set). Throws on a problem.
    /// What a migration may do depends only on itself and the table's
    /// primary key (fixed when it is created), so every replica takes or
    /// refuses it alike; what it then changes is the replay's to say.
    void validate_migration(const schema_migration& m, std::vector<table_def>& created) {
        if (m.type == migration_kind::add_index || m.type == migration_kind::drop_index) {
            (void)parse_kept_ddl(m); // kept and forwarded; no effect on storage here
            return;
        }
        const auto stmt = parse_kept_ddl(m);
        if (!stmt) return; // DDL outside the supported subset: kept and forwarded
        if ((m.type == migration_kind::create_table) != std::holds_alternative<ddl_create_table>(*stmt))
            detail::raise(errc::schema, "schema migration \"" + std::string(to_text(m.type)) + "\" carries DDL of another kind: \"" +
                                            m.ddl.substr(0, 120) + "\"");
        std::visit(
            [&](const auto& x) {
                using S = std::decay_t<decltype(x)>;
                if constexpr (std::is_same_v<S, ddl_create_table>) {
                    const auto& def = x.def;
                    if (dropped_table(def.schema_name(), def.name())) {
                        // A dropped name: kept, changes nothing; it keeps its key,
                        // so that no replica joins tables of two keys under it.
                        if (const auto* d = dropped_definition(def.schema_name(), def.name()); d && !detail::schema_catalog::same_key(*d, def))
                            detail::raise(errc::schema, "table " + def.qualified_name() + " was dropped, and was created with another primary key: " +
                                                            d->to_ddl() + "; this create: " + def.to_ddl());
                        return;
                    }
                    const table_def* existing = definition_for(def.schema_name(), def.name(), created);
                    // Another create of a live table merges into it (docs/schema.md)
                    // when the primary keys agree; other primary keys cannot.
                    if (existing && !detail::schema_catalog::same_key(*existing, def))
                        detail::raise(errc::schema, "table " + def.qualified_name() + " already exists with another primary key: " +
                                                        existing->to_ddl() + "; this create: " + def.to_ddl());
                    if (!existing) {
                        created.push_back(def);
                    } else {
                        auto wider = *existing;
                        for (const auto& c : def.columns())
                            if (!wider.find_column(c.name) && !dropped_column(def.schema_name(), def.name(), c.name))
                                wider.append_column(c);
                        if (wider.columns().size() != existing->columns().size()) created.push_back(std::move(wider));
                    }
                } else if constexpr (std::is_same_v<S, ddl_add_column>) {
                    const auto* def = target_of(x.schema, x.table, created, "ADD COLUMN");
                    // A column of that name already there: the earliest
                    // definition wins (docs/schema.md), whichever arrives first.
                    if (def && !def->find_column(x.column.name) &&
                        !dropped_column(def->schema_name(), def->name(), x.column.name)) {
                        created.push_back(*def);
                        created.back().append_column(x.column);
                    }
                } else if constexpr (std::is_same_v<S, ddl_drop_column>) {
                    const auto* def = target_of(x.schema, x.table, created, "DROP COLUMN");
                    if (auto i = def ? def->find_column(x.column) : std::nullopt; i && def->is_key_column(*i))
                        detail::raise(errc::schema, "DROP COLUMN \"" + x.column + "\" of table " + def->qualified_name() +
                                                        ": a primary-key column cannot be dropped");
                } else if constexpr (std::is_same_v<S, ddl_alter_column>) {
                    const auto* def = target_of(x.schema, x.table, created, "ALTER COLUMN");
                    if (auto i = def ? def->find_column(x.column) : std::nullopt;
                        i && detail::schema_catalog::changes_key(*def, *i, x))
                        detail::raise(errc::schema, "ALTER COLUMN \"" + x.column + "\" of table " + def->qualified_name() +
                                                        ": a primary-key column's type, collation and NOT NULL cannot change");
                } else if constexpr (std::is_same_v<S, ddl_drop_table>) {
                    (void)target_of(x.schema, x.table, created, "DROP TABLE");
                } else if constexpr (std::is_same_v<S, ddl_rename_table>) {
                    // The table may be known by its earlier name; a rename of a
                    // dropped table is kept and changes nothing but joining its
                    // target to the dropped table.
                    const auto* from = target_of(x.schema, x.from, created, "RENAME TABLE");
                    const bool dead = !from || dropped_table(x.schema, x.to);
                    // A dropped table keeps its key: the check below then does not
                    // depend on whether the drop arrived before the rename.
                    if (!from) from = dropped_definition(x.schema, x.from);
                    const auto* to = definition_for(x.schema, x.to, created);
                    if (!to) to = dropped_definition(x.schema, x.to);
                    set_renames_[detail::schema_catalog::qualified(x.schema, x.from)] = x.to;
                    if (!from || (to && (to == from || to->qualified_name() == from->qualified_name()))) return; // already one table
                    // A rename joins its table with any table of the target name
                    // (docs/schema.md), which needs the same primary key.
                    if (to && !detail::schema_catalog::same_key(*to, *from))
                        detail::raise(errc::schema, "RENAME TABLE " + from->qualified_name() + " TO \"" + x.to + "\": table " +
                                                        to->qualified_name() + " exists (or existed) with another primary key: " +
                                                        to->to_ddl() + "; the renamed table: " + from->to_ddl());
                    if (dead) return; // joins a dropped table: nothing of it lives
                    auto joined = to ? *to : *from;
                    if (to)
                        for (const auto& c : from->columns())
                            if (!joined.find_column(c.name)) joined.append_column(c);
                    joined.rename(x.to);
                    created.push_back(std::move(joined));
                }
                // Index statements under another kind: kept and forwarded.
            },
            *stmt);
    }

    /// Parses the DDL of a migration this replica may keep without applying
    /// it: the statement when it is in the supported subset, nothing when it
    /// is well-formed DDL outside it (kept, forwarded, and reported through
    /// `on_schema_notice`). \throws schema_error for
    /// malformed text.
    static std::optional<ddl_statement> parse_kept_ddl(const schema_migration& m) {
        try {
            return parse_ddl(m.ddl);
        } catch (const error& e) {
            if (e.code() == errc::schema && e.message().rfind("unsupported DDL:", 0) == 0) return std::nullopt;
            throw;
        }
    }

    // ================================================================ merge

    /// What became of one change set.
    enum class set_outcome { applied, rejected, held, ignored, still_unknown };

    /// Validates and applies one change set, or holds, ignores or rejects
    /// it. `releasing`: it is a held one, tried again (its HLCs passed the
    /// drift check when it arrived); one that still names something unknown
    /// stays held (`still_unknown`).
    set_outcome apply_one(write_txn& w, const change_set& cs, apply_result& result, pending& ev, bool releasing = false) {
        // 1. Validate everything before writing anything.
        std::vector<table_def> created;
        failing_table_.clear(); // set by the check that fails, never left from an earlier set
        set_renames_.clear();
        failing_column_.clear();
        try {
            const auto now = clock_.physical_now();
            if (!releasing) clock_.check_drift(cs.version, now);
            for (const auto& m : cs.migrations) {
                if (!releasing) clock_.check_drift(m.version, now);
                validate_migration(m, created);
            }
            resolved_.resize(cs.changes.size());
            set_migrates_ = !cs.migrations.empty();
            validation_memo memo;
            struct flag {
                bool& f;
                ~flag() { f = false; }
            } const guard{releasing_ = releasing};
            for (std::size_t i = 0; i < cs.changes.size(); ++i)
                validate_change(cs.changes[i], created, now, resolved_[i], memo);
        } catch (const error& e) {
            const bool unknown = e.code() == errc::unknown_table || e.code() == errc::unknown_column;
            if (releasing) {
                if (unknown) return set_outcome::still_unknown;
                // Its table arrived, and the change set does not fit it.
                if (!hold_listeners_.empty())
                    ev.holds.push_back(hold_event{hold_event_kind::dropped, cs.origin, cs.transaction_id, failing_table_,
                                                  failing_column_, fact_count(cs), e.message()});
                return set_outcome::rejected;
            }
            over_bound_.clear();
            if (unknown && opts_.unknown_tables != unknown_table_policy::reject && !refuse_unknown_) {
                if (auto o = hold_or_ignore(w, cs, e, result, ev)) return *o;
            }
            rejection rj;
            rj.reason = over_bound_.empty() ? e.message() : over_bound_;
            rj.code = std::string(to_text(over_bound_.empty() ? e.code() : errc::limit_exceeded));
            rj.transaction_id = cs.transaction_id;
            if (e.code() == errc::unknown_table || e.code() == errc::unknown_column) {
                rj.table = failing_table_;
                if (e.code() == errc::unknown_column) rj.column = failing_column_;
                if (e.code() == errc::unknown_table)
                    result.unknown_table = result.unknown_table.value_or(0) + cs.changes.size();
            }
            if (!rejected_listeners_.empty()) ev.rejected.push_back(rj);
            result.rejected.push_back(std::move(rj));
            return set_outcome::rejected;
        }
        // 2. Apply: migrations first, then the facts in order.
        if (!releasing) ++result.transactions;
        // Event records cost copies: build them only for listeners.
        const bool want_remote = !remote_listeners_.empty();
        const bool want_conflicts = !conflict_listeners_.empty();
        remote_change rc;
        rc.origin = cs.origin;
        rc.transaction_id = cs.transaction_id;
        hlc max = cs.version;
        auto count = [&](outcome o) {
            switch (o) {
            case outcome::applied: ++result.applied; break;
            case outcome::skipped: ++result.skipped; break;
            default: ++result.conflicts; break;
            }
        };
        types_changed_ = false;
        for (const auto& m : cs.migrations) {
            const auto o = put_migration(w, m);
            count(o);
            if (want_remote && o == outcome::applied) rc.migrations.push_back(m);
            max = std::max(max, m.version);
        }
        if (types_changed_) {
            // A column's type changed between REAL and another type: the
            // values to store follow the new definition.
            types_changed_ = false;
            const std::vector<table_def> none;
            validation_memo memo;
            struct flag {
                bool& f;
                ~flag() { f = false; }
            } const guard{releasing_ = true};
            for (std::size_t i = 0; i < cs.changes.size(); ++i) {
                try {
                    validate_change(cs.changes[i], none, 0, resolved_[i], memo);
                } catch (const error&) {
                    // A value the column as it now is cannot hold (a huge
                    // integer in a column that became REAL): stored as it
                    // came, as recoerce_cells leaves such a stored cell. The
                    // merge below resolves the fact's table and column by name.
                    resolved_[i].val.reset();
                    resolved_[i].live = false;
                    memo = validation_memo{};
                }
            }
        }
        std::optional<conflict> cf;
        for (std::size_t i = 0; i < cs.changes.size(); ++i) {
            const auto& c = cs.changes[i];
            const auto& where = resolved_[i];
            outcome o;
            // A fact for a table or column dropped (before, or by this change
            // set's own migrations) is skipped.
            const table_state* t_at = where.dead ? nullptr : where.live ? &tables_[where.table] : lookup_any(schema_of(c), table_of(c));
            if (!t_at) {
                count(outcome::skipped);
                continue;
            }
            if (const auto* cc = std::get_if<column_change>(&c)) {
                const auto& t = *t_at;
                const auto found = where.live ? std::optional<std::size_t>(where.column) : t.def.find_column(cc->column);
                if (!found) {
                    count(outcome::skipped);
                    continue;
                }
                const auto col = *found;
                row_image& img = at_row(w, t, cc->pk);
                if (want_conflicts) cf.emplace();
                const value& v = where.val ? *where.val : cc->val;
                o = put_cell(img, col, v, cc->version, cc->prior_version, cc->prior_value, cur_original_, false,
                             want_conflicts ? &*cf : nullptr);
                if (want_conflicts && (o == outcome::conflict_local || o == outcome::conflict_remote)) {
                    cf->schema = cc->schema;
                    cf->table = t.def.name(); // the table's name now, for a fact under an earlier one
                    cf->pk = cc->pk;
                    cf->column = cc->column;
                    ev.conflicts.push_back(std::move(*cf));
                }
                max = std::max(max, cc->version);
            } else {
                const auto& d = std::get<row_delete>(c);
                const auto& t = *t_at;
                row_image& img = at_row(w, t, d.pk); // before reading cur_original_
                o = put_tomb(w, img, cur_original_, d.version);
                max = std::max(max, d.version);
            }
            count(o);
            if (want_remote && (o == outcome::applied || o == outcome::conflict_remote)) {
                rc.applied.push_back(c);
                // A fact under a renamed table's earlier name is reported under its name now.
                if (!detail::same_bytes(t_at->def.name(), table_of(c)))
                    std::visit([&](auto& f) { f.table = t_at->def.name(); }, rc.applied.back());
            }
        }
        // The next change set may add tables (moving table_state): start afresh.
        flush(w, cur_);
        cur_.table = nullptr;
        clock_.receive(max);
        if (!rc.applied.empty() || !rc.migrations.empty()) ev.remote.push_back(std::move(rc));
        return set_outcome::applied;
    }

    // ================================================================ held change sets

    [[nodiscard]] static std::uint64_t fact_count(const change_set& cs) noexcept {
        return cs.changes.size() + cs.migrations.size();
    }

    /// A change set names a table or column this replica does not know yet
    /// (`e`): holds it in the store, or ignores it, as the options say. Nothing
    /// (the caller rejects it, with `over_bound_` as the reason) when holding
    /// it would pass the bound.
    std::optional<set_outcome> hold_or_ignore(write_txn& w, const change_set& cs, const error& e, apply_result& result,
                                              pending& ev) {
        const auto facts = fact_count(cs);
        hold_event he{hold_event_kind::held, cs.origin, cs.transaction_id, failing_table_, failing_column_, facts, {}};
        if (opts_.unknown_tables == unknown_table_policy::ignore) {
            he.kind = hold_event_kind::dropped;
            he.reason = "ignored (unknown_table_policy::ignore): " + e.message();
            result.skipped += facts;
        } else {
            const auto key = detail::layout::held_key(cs.version);
            if (!w.get(key)) { // else: held already (the same change set again)
                if (held_facts_ + facts > opts_.max_held_facts) {
                    over_bound_ = e.message() + "; holding its " + std::to_string(facts) + " facts until that arrives would pass " +
                                  "replica_options::max_held_facts (" + std::to_string(opts_.max_held_facts) + ", " +
                                  std::to_string(held_facts_) + " held now)";
                    return std::nullopt;
                }
                std::string v;
                detail::put_be<std::uint64_t>(v, ++last_seq_);
                v += detail::encode_change_set_record(cs);
                w.put(key, v);
                detail::layout::put_log_record(log_buf_, detail::layout::held, key);
                w.put(detail::layout::log_key(last_seq_), log_buf_);
                set_held_facts(w, held_facts_ + facts);
                if (!hold_listeners_.empty()) ev.holds.push_back(std::move(he));
            }
            result.held += facts;
        }
        if (e.code() == errc::unknown_table) result.unknown_table = result.unknown_table.value_or(0) + cs.changes.size();
        ++result.transactions;
        if (he.kind == hold_event_kind::dropped && !hold_listeners_.empty()) ev.holds.push_back(std::move(he));
        return he.kind == hold_event_kind::dropped ? set_outcome::ignored : set_outcome::held;
    }

    void set_held_facts(write_txn& w, std::uint64_t n) {
        held_facts_ = n;
        std::string v;
        detail::put_be<std::uint64_t>(v, n);
        w.put(detail::layout::meta_key("held"), v);
    }

    /// After migrations applied: applies every held change set that no longer
    /// names anything unknown (and drops those that do not fit the tables
    /// they named), until a pass releases nothing that adds migrations.
    void release_held(write_txn& w, apply_result& result, pending& ev) {
        while (schema_grew_ && held_facts_ > 0) {
            schema_grew_ = false;
            std::vector<std::pair<std::string, std::string>> held;
            const std::string b(1, detail::layout::held), e(1, static_cast<char>(detail::layout::held + 1));
            w.scan(b, e, [&](std::string_view k, std::string_view v) {
                held.emplace_back(k, v);
                return true;
            });
            for (const auto& [key, rec] : held) {
                if (rec.size() < 8) detail::raise(errc::storage, "a held change set record is truncated");
                const auto cs = detail::decode_change_set_record(std::string_view(rec).substr(8));
                const auto o = apply_one(w, cs, result, ev, true);
                if (o == set_outcome::still_unknown) continue;
                (void)w.erase(key);
                (void)w.erase(detail::layout::log_key(detail::load_be<std::uint64_t>(rec, 0)));
                const auto facts = fact_count(cs);
                set_held_facts(w, held_facts_ >= facts ? held_facts_ - facts : 0);
                if (o != set_outcome::applied) continue;
                result.released += facts;
                if (!hold_listeners_.empty())
                    ev.holds.push_back(hold_event{hold_event_kind::released, cs.origin, cs.transaction_id, {}, {}, facts, {}});
            }
        }
    }

    /// The row image of the row with key `pk`, read unless the merge is
    /// already at it (the facts of a row travel together).
    row_image& at_row(write_txn& w, const table_state& t, const row_key& pk) {
        if (cur_.table == &t && (&pk == cur_pk_ || pk == *cur_pk_)) return cur_;
        if (cur_.table) flush(w, cur_);
        cur_.reset(); // until the new row is loaded
        cur_.key.assign(t.row_prefix);
        encode_row_to(t, pk, cur_.key, cur_original_);
        load_row_at_key(w, t, cur_);
        cur_pk_ = &pk;
        return cur_;
    }

    /// Where a validated fact applies: a live table (by index: the change
    /// set's migrations may add tables, moving them) and column, or `live`
    /// false when the change set's own migrations create or extend its table.
    struct resolved_fact {
        std::size_t table = 0;
        std::size_t column = 0;
        bool live = false;
        bool dead = false;        // its table or column was dropped: skipped
        std::optional<value> val; // the value to store, when it is not the fact's own (detail/storable.hpp)
    };

    /// What validating the previous fact of a change set resolved: the facts
    /// of a change set mostly share a table and name its columns in order.
    /// Holds views into the change set and pointers into `tables_` and the
    /// set's created tables, both unchanged while its facts are validated.
    struct validation_memo {
        std::string_view schema, table;
        const table_def* def = nullptr; // null: nothing resolved yet
        resolved_fact where;
        std::size_t next_column = 0; // the column after the previous fact's (wrapping to the first)
    };

    /// What makes validation refuse a fact.
    enum class fact_problem { unknown_table, unknown_column, key_arity, null_key, key_size };

    /// Refuses a fact, naming the problem as the rejection reports it: the
    /// names are built only here, out of the validation loop's way.
    /// `column` is the unknown column; `key_size` and `want` the arities.
    [[noreturn, gnu::cold, gnu::noinline]] void reject_fact(fact_problem problem, std::string_view schema,
                                                             std::string_view table, std::string_view column = {},
                                                             std::size_t key_size = 0, std::size_t want = 0) {
        const std::string qualified = std::string(schema) + "." + std::string(table);
        failing_table_ = qualified;
        switch (problem) {
        case fact_problem::unknown_table: detail::raise(errc::unknown_table, "change for unknown table " + qualified);
        case fact_problem::unknown_column:
            failing_column_ = std::string(column);
            detail::raise(errc::unknown_column, "change for unknown column \"" + failing_column_ + "\" of table " + qualified);
        case fact_problem::key_arity:
            detail::raise(errc::invalid_key, "change for table " + qualified + " has a key of " + std::to_string(key_size) +
                                                 " value(s), the table's primary key has " + std::to_string(want));
        case fact_problem::null_key: break;
        case fact_problem::key_size:
            detail::raise(errc::constraint, "change for table " + qualified + " has a primary key of " + std::to_string(key_size) +
                                                " bytes encoded; this store holds keys of at most " + std::to_string(want) + " bytes");
        }
        detail::raise(errc::invalid_key, "change for table " + qualified + " has a NULL key value");
    }

    /// The qualified names that name the table `schema.table` names while a
    /// change set is validated: that name, and the earlier names the set
    /// renames into it. The catalog's answers for any of them hold for the
    /// table (its drops, dropped columns and key), as they will once the
    /// set's renames are stored, whichever arrived first.
    [[nodiscard]] std::vector<std::string> names_in_set(std::string_view schema, std::string_view table) const {
        std::vector<std::string> names{detail::schema_catalog::qualified(schema, table)};
        if (set_renames_.empty()) return names;
        const auto now_named = name_now(schema, table);
        for (const auto& [from, to] : set_renames_) {
            const auto [s, n] = split_name(from);
            if (s == schema && name_now(s, n) == now_named) names.push_back(from);
        }
        return names;
    }
    /// True when `schema.table` names a dropped table (also through a
    /// rename in the change set being validated: the rename and the set's
    /// facts under the new name are then skipped together).
    [[gnu::cold]] bool dropped_table(std::string_view schema, std::string_view table) const {
        const auto names = names_in_set(schema, table);
        return std::any_of(names.begin(), names.end(), [&](const std::string& q) { return catalog_.table_dropped(q); });
    }
    /// True when `column` was dropped from the table `schema.table` names.
    [[gnu::cold]] bool dropped_column(std::string_view schema, std::string_view table, std::string_view column) const {
        const auto names = names_in_set(schema, table);
        return std::any_of(names.begin(), names.end(), [&](const std::string& q) { return catalog_.column_dropped(q, column); });
    }
    /// The definition the dropped table `schema.table` names was created
    /// with (it keeps its key), or null.
    [[nodiscard]] const table_def* dropped_definition(std::string_view schema, std::string_view table) const {
        for (const auto& q : names_in_set(schema, table))
            if (const auto* d = catalog_.dropped_definition(q)) return d;
        return nullptr;
    }

    void validate_change(const change& c, const std::vector<table_def>& created, std::uint64_t now, resolved_fact& where,
                         validation_memo& memo) {
        if (!releasing_) clock_.check_drift(version_of(c), now);
        where.val.reset(); // before the memo copies `where`: it never carries a value
        where.dead = false;
        auto check = [&](const auto& f) {
            const table_def* def = nullptr;
            if (memo.def && detail::same_bytes(f.table, memo.table) && detail::same_bytes(f.schema, memo.schema)) {
                def = memo.def;
                where = memo.where;
            } else {
                const table_state* live = lookup_any(f.schema, f.table);
                if (live) def = &live->def;
                if (!created.empty()) {
                    // The set's own migrations may have created, widened or
                    // renamed the table (a fact may use an earlier name).
                    const auto renamed_to = name_now(f.schema, f.table);
                    for (const auto& d : created)
                        if (d.schema_name() == f.schema && (d.name() == f.table || d.name() == renamed_to)) {
                            def = &d;
                            live = nullptr;
                        }
                }
                where.live = live != nullptr && !set_migrates_;
                if (live) where.table = static_cast<std::size_t>(live - tables_.data());
                if (!def) {
                    if (dropped_table(f.schema, f.table)) {
                        where.dead = true; // skipped: a dropped table's name names nothing again
                        return;
                    }
                    reject_fact(fact_problem::unknown_table, f.schema, f.table);
                }
                memo = validation_memo{f.schema, f.table, def, where, 0};
            }
            if constexpr (std::is_same_v<std::decay_t<decltype(f)>, column_change>) {
                const auto& cols = def->columns();
                std::optional<std::size_t> col;
                if (memo.next_column < cols.size() && detail::same_bytes(cols[memo.next_column].name, f.column))
                    col = memo.next_column;
                else
                    col = def->find_column(f.column);
                if (!col) {
                    if (dropped_column(f.schema, f.table, f.column)) {
                        where.dead = true; // skipped: a dropped column is never added again
                        return;
                    }
                    reject_fact(fact_problem::unknown_column, f.schema, f.table, f.column);
                }
                where.column = *col;
                memo.next_column = *col + 1 == cols.size() ? 0 : *col + 1;
                (void)detail::storable(*def, *col, f.val, where.val); // sets `where.val` only when it differs
            }
            const auto& kc = def->key_columns();
            if (f.pk.size() != kc.size()) reject_fact(fact_problem::key_arity, f.schema, f.table, {}, f.pk.size(), kc.size());
            for (std::size_t k = 0; k < kc.size(); ++k) {
                const auto& v = f.pk[k];
                if (v.is_null()) reject_fact(fact_problem::null_key, f.schema, f.table);
                if (v.kind() >= value_kind::big_integer && v.kind() != value_kind::blob) check_key_value(*def, kc[k], v);
            }
            if (max_key_ != 0) check_key_size(*def, f);
        };
        // Dispatched by hand: std::visit's table costs more than the test.
        if (const auto* cc = std::get_if<column_change>(&c)) check(*cc);
        else check(*std::get_if<row_delete>(&c));
    }

    // ================================================================ change-log reading

    struct fact {
        std::optional<change> data;
        std::optional<schema_migration> migration;
        [[nodiscard]] const hlc& version() const { return migration ? migration->version : version_of(*data); }
    };

    /// The facts a change-log entry stands for: a migration, or the parts of
    /// a row that still carry the entry's seq.
    template <class R>
    void read_facts(R& r, const detail::layout::log_record& lr, std::uint64_t seq, std::vector<fact>& out) const {
        auto rec = r.get(lr.key);
        if (!rec) detail::raise(errc::storage, "change-log entry points at a missing record");
        if (lr.kind == detail::layout::held) {
            if (rec->size() < 8) detail::raise(errc::storage, "a held change set record is truncated");
            auto cs = detail::decode_change_set_record(std::string_view(*rec).substr(8));
            for (auto& m : cs.migrations) out.emplace_back().migration = std::move(m);
            for (auto& c : cs.changes) out.emplace_back().data = std::move(c);
            return;
        }
        if (lr.kind == detail::layout::migration) {
            const auto h = hlc::from_bytes(lr.key.substr(1));
            out.emplace_back().migration = decode_migration(*rec, &h);
            return;
        }
        if (lr.kind != detail::layout::row || lr.key.size() < 5) detail::raise(errc::storage, "change-log entry is malformed");
        const auto tid = detail::load_be<std::uint32_t>(lr.key, 1);
        const auto* t = table_by_id(tid);
        if (!t) detail::raise(errc::storage, "change-log entry names an unknown table id " + std::to_string(tid));
        const auto suffix = lr.key.substr(5);
        detail::layout::row_record row_rec;
        detail::layout::read_row_record(*rec, row_rec);
        if (row_rec.tomb && row_rec.tomb->seq == seq) {
            row_delete d;
            d.schema = t->def.schema_name();
            d.table = t->def.name();
            d.pk = key_codec::decode(row_rec.tomb->original_pk);
            d.version = row_rec.tomb->version;
            out.emplace_back().data = std::move(d);
        }
        std::optional<row_key> folded_pk;
        for (auto& c : row_rec.cells) {
            if (c.seq != seq) continue;
            const auto col = t->column_index_by_id(c.column);
            if (!col) detail::raise(errc::storage, "stored row holds a cell of an unknown column");
            column_change cc;
            cc.schema = t->def.schema_name();
            cc.table = t->def.name();
            if (!c.original_pk.empty()) {
                cc.pk = key_codec::decode(c.original_pk);
            } else {
                if (!folded_pk) folded_pk = key_codec::decode(suffix);
                cc.pk = *folded_pk;
            }
            cc.column = t->def.columns()[*col].name;
            cc.version = c.version;
            cc.val = std::move(c.val);
            cc.prior_version = c.prior_version;
            cc.prior_value = std::move(c.prior_value);
            out.emplace_back().data = std::move(cc);
        }
    }

    static void finish_change_set(change_set& cs) {
        std::stable_sort(cs.changes.begin(), cs.changes.end(),
                         [](const change& a, const change& b) { return version_of(a) < version_of(b); });
        std::stable_sort(cs.migrations.begin(), cs.migrations.end(),
                         [](const auto& a, const auto& b) { return a.version < b.version; });
        cs.origin = cs.version.site;
        cs.transaction_id = cs.version.transaction_id();
    }

    /// A peer's record as transaction `t` sees it (zeros for a new peer).
    template <class Txn>
    static peer_state read_peer(Txn& t, const crdtsync::site_id& p) {
        auto v = t.get(detail::layout::peer_key(p));
        if (!v || v->size() != 16) return {};
        return {detail::load_be<std::uint64_t>(*v, 0), detail::load_be<std::uint64_t>(*v, 8)};
    }
    /// Changes a peer's record inside write transaction `w`.
    template <class Fn>
    static void update_peer_in(write_txn& w, const crdtsync::site_id& p, Fn&& fn) {
        peer_state s = read_peer(w, p);
        fn(s);
        std::string v;
        detail::put_be<std::uint64_t>(v, s.received_up_to);
        detail::put_be<std::uint64_t>(v, s.sent_up_to);
        w.put(detail::layout::peer_key(p), v);
    }
    template <class Fn>
    void update_peer(const crdtsync::site_id& p, Fn&& fn) {
        run_write([&](write_txn& w, pending&) { update_peer_in(w, p, fn); });
    }

    Store& store_;
    detail::thread_check check_;  // one thread at a time (builds without NDEBUG)
    replica_options opts_;
    // Mirrors of the store's state, `mutable`: a read may find that another
    // process committed and re-read them (`refresh`).
    mutable hlc_clock<Clock> clock_;
    mutable Clock physical_;
    mutable crdtsync::site_id site_;
    mutable delete_policy policy_ = delete_policy::insert_revives; // the store's
    mutable std::uint64_t gen_ = 0; // the store's commit generation the mirrors are at
    mutable std::uint64_t last_seq_ = 0;
    mutable std::uint64_t gc_seq_ = 0;
    mutable std::uint64_t held_facts_ = 0; // facts of held change sets (meta "held")
    mutable std::uint64_t schema_gen_ = 0; // bumped when table definitions may have changed
    bool schema_grew_ = false; // a migration applied in this transaction: held change sets may apply now
    bool releasing_ = false;
    std::string over_bound_;   // why a change set could not be held (max_held_facts)
    bool refuse_unknown_ = false; // a snapshot load: its migrations come first, so an unknown table is an error   // validating a held change set (its HLCs passed the drift check on arrival)
    mutable std::uint32_t next_table_id_ = 1;
    mutable std::vector<table_state> tables_;
    mutable std::size_t last_lookup_ = 0;
    row_image cur_;       // the row the merge is at
    const row_key* cur_pk_ = nullptr; // its key as the change set spells it (the set outlives the row's turn)
    std::string cur_original_;
    std::string rec_buf_, log_buf_;
    std::string failing_table_, failing_column_;
    std::size_t max_key_ = max_key_suffix(store_); // 0: no limit
    std::vector<resolved_fact> resolved_; // per fact of the change set being applied
    listener_id next_listener_ = 0;
    listeners<void(const local_change&)> local_listeners_;
    listeners<void(const remote_change&)> remote_listeners_;
    listeners<void(const conflict&)> conflict_listeners_;
    listeners<void(const rejection&)> rejected_listeners_;
    listeners<void(const hold_event&)> hold_listeners_;
    listeners<void(const schema_notice&)> schema_listeners_;
    pending* current_ev_ = nullptr; // the running write transaction's events
    bool set_migrates_ = false;     // the change set being validated has migrations: resolve its facts' tables by name
    mutable detail::schema_catalog catalog_; // what the stored migrations define (dropped tables and columns)
    bool types_changed_ = false;    // a column's type changed between REAL and another type in this change set
                                    // (or a rename joined or renamed tables): its facts are validated again
    std::map<std::string, std::string, std::less<>> set_renames_; // the change set being validated renames: old qualified -> new name

public:
    /// A local write transaction: see `replica::write`.
    class transaction {
    public:
        /// Creates a table, recorded as a `create_table` migration that
        /// travels to peers. Creating a table the replica has again does
        /// nothing when every column of `def` is live as defined (the table
        /// may have more, added since); one with the same primary key and
        /// more columns adds them (the create merges, docs/schema.md). A
        /// schema_error when the primary key or a column's definition differs.
        void create_table(table_def def) {
            def.validate();
            const auto q = def.qualified_name();
            if (r_.catalog_.table_dropped(q))
                detail::raise(errc::schema, "table " + q + " was dropped; a dropped table's name is not used again, choose another (docs/schema.md)");
            if (auto it = r_.catalog_.renamed.find(q); it != r_.catalog_.renamed.end())
                detail::raise(errc::schema, "table " + q + " was renamed to " + it->second +
                                                "; a renamed table's earlier name is not used again, choose another (docs/schema.md)");
            for (const auto& c : def.columns())
                if (r_.catalog_.column_dropped(q, c.name))
                    detail::raise(errc::schema, "column \"" + c.name + "\" was dropped from table " + q +
                                                    "; a dropped column's name is not added again, choose another (docs/schema.md)");
            if (auto t = r_.lookup(def.schema_name(), def.name())) {
                bool fits = detail::schema_catalog::same_key(t->def, def), adds = false;
                for (const auto& c : def.columns()) {
                    const auto i = t->def.find_column(c.name);
                    if (!i) adds = true;
                    else fits = fits && t->def.columns()[*i] == c;
                }
                if (!fits)
                    detail::raise(errc::schema, "table " + def.qualified_name() + " already exists with another definition: " + t->def.to_ddl());
                if (!adds) return;
            }
            schema_migration m;
            m.type = migration_kind::create_table;
            m.schema = def.schema_name();
            m.table = def.name();
            m.ddl = def.to_ddl();
            m.version = next_hlc();
            m.schema_version = 1;
            (void)r_.put_migration(w_, m);
            cs_.migrations.push_back(std::move(m));
        }
        /// Adds a nullable column to a table. It travels as Quereus sends
        /// ADD COLUMN: an `alter_column` migration carrying the `ALTER TABLE
        /// ... ADD COLUMN ...` text (`add_column` is accepted on input too).
        void add_column(std::string_view table, column_def col) {
            const auto& t = r_.require_table(table);
            if (!col.nullable && !col.default_value)
                detail::raise(errc::schema, "an added column must be nullable or have a default: existing rows have no value for it");
            if (t.def.find_column(col.name))
                detail::raise(errc::schema, "table " + t.def.qualified_name() + " already has a column \"" + col.name + "\"");
            if (r_.catalog_.column_dropped(t.def.qualified_name(), col.name))
                detail::raise(errc::schema, "column \"" + col.name + "\" was dropped from table " + t.def.qualified_name() +
                                                "; a dropped column's name is not added again, choose another (docs/schema.md)");
            migrate(t, migration_kind::alter_column, t.def.add_column_to_ddl(col));
        }
        /// Drops a table: its rows go, on every replica, and writes to it
        /// from peers that did not know yet are skipped. The name is retired:
        /// it names no table again (docs/schema.md). Travels as a
        /// `drop_table` migration.
        void drop_table(std::string_view table) {
            const auto& t = r_.require_table(table);
            migrate(t, migration_kind::drop_table, to_ddl(ddl_statement{ddl_drop_table{t.def.schema_name(), t.def.name()}}));
        }
        /// Renames a table (`new_name` without a schema: the table keeps its
        /// own). Its rows follow it, and writes from peers that did not know
        /// yet, under the earlier name, land in it; the earlier name is not
        /// used again (docs/schema.md). Travels as a `rename_table`
        /// migration. \throws schema_error when `new_name` names a table,
        /// or named one (dropped or renamed).
        void rename_table(std::string_view table, std::string_view new_name) {
            const auto& t = r_.require_table(table);
            if (new_name.empty() || new_name.find('.') != std::string_view::npos)
                detail::raise(errc::schema, "RENAME TABLE " + t.def.qualified_name() + ": the new name must be a table name without a schema, not \"" +
                                                std::string(new_name) + "\"");
            const auto q = detail::schema_catalog::qualified(t.def.schema_name(), new_name);
            if (r_.lookup(t.def.schema_name(), new_name))
                detail::raise(errc::schema, "RENAME TABLE " + t.def.qualified_name() + ": table " + q + " already exists");
            if (r_.catalog_.table_dropped(q) || r_.catalog_.renamed.contains(q))
                detail::raise(errc::schema, "RENAME TABLE " + t.def.qualified_name() + ": " + q +
                                                " named a table that was dropped or renamed; such a name is not used again, choose another (docs/schema.md)");
            migrate(t, migration_kind::rename_table,
                    to_ddl(ddl_statement{ddl_rename_table{t.def.schema_name(), t.def.name(), std::string(new_name)}}), new_name);
        }
        /// Drops a column that is not part of the primary key: its values go,
        /// and writes to it from peers that did not know yet are skipped. The
        /// name is retired in that table (docs/schema.md). Travels as a
        /// `drop_column` migration.
        void drop_column(std::string_view table, std::string_view column) {
            const auto& t = r_.require_table(table);
            const auto i = t.def.column_index(column);
            if (t.def.is_key_column(i))
                detail::raise(errc::schema, "column \"" + std::string(column) + "\" of table " + t.def.qualified_name() +
                                                " is part of the primary key and cannot be dropped");
            migrate(t, migration_kind::drop_column,
                    to_ddl(ddl_statement{ddl_drop_column{t.def.schema_name(), t.def.name(), std::string(column)}}));
        }
        /// Alters a column (`alter.schema` and `alter.table` are taken from
        /// `table`): SET / DROP NOT NULL (checked on later local writes; rows
        /// stored stay), SET DATA TYPE (stored values follow the new type),
        /// SET COLLATE, SET / DROP DEFAULT (rows without a value read the
        /// new default). A primary-key column's type, collation and NOT NULL
        /// cannot change. Travels as an `alter_column` migration.
        void alter_column(std::string_view table, ddl_alter_column alter) {
            const auto& t = r_.require_table(table);
            const auto i = t.def.column_index(alter.column);
            alter.schema = t.def.schema_name();
            alter.table = t.def.name();
            if (detail::schema_catalog::changes_key(t.def, i, alter))
                detail::raise(errc::schema, "column \"" + alter.column + "\" of table " + t.def.qualified_name() +
                                                " is part of the primary key; its type, collation and NOT NULL cannot change");
            migrate(t, migration_kind::alter_column, to_ddl(ddl_statement{alter}));
        }
        /// Applies one DDL statement of the supported subset (docs/schema.md):
        /// CREATE TABLE, ALTER TABLE ... ADD / DROP / ALTER COLUMN, ALTER
        /// TABLE ... RENAME TO, DROP TABLE. \throws schema_error for
        /// malformed DDL, DDL outside the subset, indexes, and what the typed
        /// calls refuse.
        void execute(std::string_view ddl) {
            std::visit(
                [&](auto&& x) {
                    using S = std::decay_t<decltype(x)>;
                    const auto name = [&](const std::string& schema, const std::string& table) { return schema + "." + table; };
                    if constexpr (std::is_same_v<S, ddl_create_table>) create_table(std::move(x.def));
                    else if constexpr (std::is_same_v<S, ddl_add_column>) add_column(name(x.schema, x.table), std::move(x.column));
                    else if constexpr (std::is_same_v<S, ddl_drop_column>) drop_column(name(x.schema, x.table), x.column);
                    else if constexpr (std::is_same_v<S, ddl_alter_column>) {
                        const auto table = name(x.schema, x.table); // before `x` moves
                        alter_column(table, std::move(x));
                    }
                    else if constexpr (std::is_same_v<S, ddl_drop_table>) drop_table(name(x.schema, x.table));
                    else if constexpr (std::is_same_v<S, ddl_rename_table>) rename_table(name(x.schema, x.from), x.to);
                    else
                        detail::raise(errc::schema, "this version of crdtsync does not apply \"" + std::string(ddl.substr(0, 120)) +
                                                        "\" (indexes are kept and forwarded from peers only: docs/schema.md)");
                },
                parse_ddl(ddl));
        }

        /// Inserts a row. Every column is recorded (unset ones as their default,
        /// NULL when they have none).
        /// \throws constraint_error when the key exists, a NOT NULL column is
        /// NULL, or (delete_wins) the key was deleted; schema_error for an
        /// unknown table or column.
        void insert(std::string_view table, const row& values) {
            const auto& t = r_.require_table(table);
            const auto& cols = t.def.columns();
            std::vector<value> full(cols.size());
            for (std::size_t i = 0; i < cols.size(); ++i)
                if (cols[i].default_value) full[i] = *cols[i].default_value;
            for (const auto& [name, v] : values) {
                const auto i = t.def.column_index(name);
                full[i] = detail::storable_copy(t.def, i, v);
            }
            insert_full(t, std::move(full));
        }

        /// Updates the given columns of the row with key `pk`; only values that
        /// differ are recorded. Changing a key column is a delete of the old
        /// row and an insert of the new one. Returns false when no such row is
        /// visible.
        bool update(std::string_view table, const row_key& pk, const row& changes) {
            const auto& t = r_.require_table(table);
            auto [suffix, original] = r_.encode_row(t, pk);
            row_image img;
            r_.load_row(w_, t, suffix, img);
            const auto s = r_.state_of(t, img);
            if (!s.visible) return false;
            std::vector<std::pair<std::size_t, value>> updates;
            bool key_changes = false, key_respelled = false;
            for (const auto& [name, v0] : changes) {
                const auto i = t.def.column_index(name);
                auto v = detail::storable_copy(t.def, i, v0);
                check_null(t, i, v);
                const value current = s.cells[i] ? s.cells[i]->val : value{};
                if (current == v) continue;
                if (t.def.is_key_column(i)) {
                    if (t.def.key_identity(i, current) == t.def.key_identity(i, v)) key_respelled = true;
                    else key_changes = true;
                }
                updates.emplace_back(i, std::move(v));
            }
            if (updates.empty()) return true;
            if (key_changes) {
                auto next = r_.to_row(t, s, suffix);
                std::vector<value> full(t.def.columns().size());
                for (std::size_t i = 0; i < full.size(); ++i) full[i] = next[t.def.columns()[i].name];
                for (auto& [i, v] : updates) full[i] = v;
                erase_row(img, original, s);
                insert_full(t, std::move(full));
                return true;
            }
            (void)key_respelled; // a re-spelled key under NOCASE/RTRIM is a plain cell update
            for (auto& [i, v] : updates) {
                const hlc h = next_hlc();
                column_change cc{t.def.schema_name(), t.def.name(), pk, h, t.def.columns()[i].name, v, std::nullopt, std::nullopt};
                if (s.cells[i]) {
                    cc.prior_value = s.cells[i]->val;
                    cc.prior_version = s.cells[i]->version;
                }
                (void)r_.put_cell(img, i, v, h, cc.prior_version, cc.prior_value, original, true, nullptr);
                cs_.changes.push_back(std::move(cc));
            }
            r_.flush(w_, img);
            return true;
        }

        /// Deletes the row with key `pk`. Returns false when no such row is visible.
        bool erase(std::string_view table, const row_key& pk) {
            const auto& t = r_.require_table(table);
            auto [suffix, original] = r_.encode_row(t, pk);
            row_image img;
            r_.load_row(w_, t, suffix, img);
            const auto s = r_.state_of(t, img);
            if (!s.visible) return false;
            erase_row(img, original, s);
            return true;
        }

        /// The visible row with key `pk`, seeing this transaction's own writes.
        [[nodiscard]] std::optional<row> get(std::string_view table, const row_key& pk) {
            const auto& t = r_.require_table(table);
            return r_.read_row(w_, t, r_.encode_row(t, pk).first);
        }
        /// Every visible row of `table`, seeing this transaction's own writes.
        [[nodiscard]] std::vector<row> rows(std::string_view table) {
            return r_.scan_rows(w_, r_.require_table(table));
        }
        /// The table definition (throws schema_error if unknown).
        [[nodiscard]] const table_def& table(std::string_view name) const { return r_.require_table(name).def; }

    private:
        friend class replica;
        transaction(replica& r, write_txn& w, pending& ev) : r_(r), w_(w), ev_(ev) {}

        hlc next_hlc() {
            if (!ticked_) {
                base_ = r_.clock_.tick();
                ticked_ = true;
            }
            if (op_ == UINT32_MAX) detail::raise(errc::invalid_argument, "a transaction holds at most 2^32-1 facts");
            return base_.with_op_seq(op_++);
        }
        /// Records and applies a migration of table `t` (`t` may be gone after).
        /// A rename names its new table in `table`, and the old in `from_table`
        /// (as Quereus does).
        void migrate(const table_state& t, migration_kind kind, std::string ddl, std::string_view renamed_to = {}) {
            schema_migration m;
            m.type = kind;
            m.schema = t.def.schema_name();
            m.table = t.def.name();
            if (!renamed_to.empty()) {
                m.from_table = std::move(m.table);
                m.table = std::string(renamed_to);
            }
            m.ddl = std::move(ddl);
            m.schema_version = t.schema_version + 1;
            m.version = next_hlc();
            (void)r_.put_migration(w_, m);
            cs_.migrations.push_back(std::move(m));
        }
        static void check_null(const table_state& t, std::size_t i, const value& v) {
            if (v.is_null() && !t.def.columns()[i].nullable)
                detail::raise(errc::constraint, "column \"" + t.def.columns()[i].name + "\" of table " + t.def.qualified_name() + " is NOT NULL");
        }
        void insert_full(const table_state& t, std::vector<value> full) {
            for (std::size_t i = 0; i < full.size(); ++i) check_null(t, i, full[i]);
            row_key pk;
            for (auto k : t.def.key_columns()) pk.push_back(full[k]);
            auto [suffix, original] = r_.encode_row(t, pk);
            if (r_.max_key_ != 0 && suffix.size() > r_.max_key_)
                detail::raise(errc::constraint, "table " + t.def.qualified_name() + ": the primary key is " + std::to_string(suffix.size()) +
                                                    " bytes encoded; this store holds primary keys of at most " +
                                                    std::to_string(r_.max_key_) + " bytes encoded");
            row_image img;
            r_.load_row(w_, t, suffix, img);
            const auto s = r_.state_of(t, img);
            if (s.visible) detail::raise(errc::constraint, "table " + t.def.qualified_name() + " already has a row with this primary key");
            if (s.tomb && r_.policy_ == delete_policy::delete_wins)
                detail::raise(errc::constraint, "table " + t.def.qualified_name() +
                                                    ": this primary key was deleted and the delete_wins policy makes deletes final");
            for (std::size_t i = 0; i < full.size(); ++i) {
                const hlc h = next_hlc();
                (void)r_.put_cell(img, i, full[i], h, std::nullopt, std::nullopt, original, true, nullptr);
                cs_.changes.push_back(column_change{t.def.schema_name(), t.def.name(), pk, h, t.def.columns()[i].name, full[i], std::nullopt, std::nullopt});
            }
            r_.flush(w_, img);
        }
        void erase_row(row_image& img, const std::string& original, const row_state& s) {
            const auto& t = *img.table;
            const hlc h = next_hlc();
            row_key prior;
            const auto r = r_.to_row(t, s, img.suffix());
            for (const auto& c : t.def.columns()) prior.push_back(r.at(c.name));
            row_key pk;
            for (auto k : t.def.key_columns()) pk.push_back(prior[k]);
            (void)r_.put_tomb(w_, img, original, h);
            r_.flush(w_, img);
            cs_.changes.push_back(row_delete{t.def.schema_name(), t.def.name(), std::move(pk), h, std::move(prior)});
        }
        void finish() {
            if (!ticked_) return;
            r_.finish_change_set_local(cs_, base_);
            ev_.local.push_back(local_change{std::move(cs_)});
        }

        replica& r_;
        write_txn& w_;
        pending& ev_;
        hlc base_{};
        bool ticked_ = false;
        std::uint32_t op_ = 0;
        change_set cs_;
    };

private:
    static void finish_change_set_local(change_set& cs, const hlc& base) {
        hlc max = base;
        for (const auto& c : cs.changes) max = std::max(max, version_of(c));
        for (const auto& m : cs.migrations) max = std::max(max, m.version);
        cs.version = max;
        cs.origin = base.site;
        cs.transaction_id = base.transaction_id();
    }
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
