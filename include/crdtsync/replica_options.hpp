#pragma once
/// \file replica_options.hpp
/// `replica_options`: every knob of a replica in one struct, and the
/// `delete_policy` that decides how a row delete meets concurrent writes.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include <crdtsync/hlc_clock.hpp>
#include <crdtsync/site_id.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// How deletes and writes of one row resolve. Each is a join (order and
/// duplicates never matter); docs/semantics.md has worked examples.
enum class delete_policy : std::uint8_t {
    /// A delete beats every write older than it; an insert (a write of the
    /// key columns) newer than the delete brings the row back; an update
    /// never does. The default (like cr-sqlite's causal length).
    insert_revives,
    /// A delete is final until its tombstone is pruned; re-inserting a
    /// deleted key locally is a constraint_error. Quereus's default.
    delete_wins,
    /// Any write newer than the delete brings the row back.
    lww,
};

[[nodiscard]] constexpr std::string_view to_text(delete_policy p) noexcept {
    switch (p) {
    case delete_policy::insert_revives: return "insert_revives";
    case delete_policy::delete_wins: return "delete_wins";
    case delete_policy::lww: return "lww";
    }
    return "?";
}
/// The old name of `to_text(delete_policy)`.
[[deprecated("use to_text")]] [[nodiscard]] constexpr std::string_view to_string(delete_policy v) noexcept { return to_text(v); }

/// What `replica::apply` does with a change set that names a table (or a
/// column) this replica does not know yet: its schema migration may simply
/// not have arrived (delivery order is free). docs/schema.md.
enum class unknown_table_policy : std::uint8_t {
    /// Keep it in the store, offer it to peers like any change set, and apply
    /// it as soon as the migrations it needs arrive. The default.
    hold,
    /// Drop it (counted in `apply_result::unknown_table`, reported as a
    /// `hold_event_kind::dropped` event): this replica does not want tables
    /// it was not told about. It will not have those rows.
    ignore,
    /// Reject it whole (`apply_result::rejected`, code `unknown_table` or
    /// `unknown_column`); a sync session offers it again next time.
    reject,
};

[[nodiscard]] constexpr std::string_view to_text(unknown_table_policy p) noexcept {
    switch (p) {
    case unknown_table_policy::hold: return "hold";
    case unknown_table_policy::ignore: return "ignore";
    case unknown_table_policy::reject: return "reject";
    }
    return "?";
}

struct replica_options {
    /// How deletes meet writes. Every replica that syncs together must use the
    /// same policy. A replica stores its policy when it is created: unset
    /// means "the store's" (`insert_revives` for a new store); a policy other
    /// than the store's is refused at open (`usage_error`), so that reopening
    /// a store can never switch it silently. `replica::options()` reports the
    /// policy in force.
    std::optional<delete_policy> deletes;
    /// A remote HLC further ahead of the local wall clock is rejected.
    std::chrono::milliseconds max_drift{default_max_drift_ms};
    /// Tombstones older than this (by local arrival time) may be pruned; a
    /// peer whose position predates a pruned tombstone must take a snapshot.
    std::chrono::milliseconds tombstone_retention{std::chrono::hours(24 * 30)};
    /// Used only when the store holds no site id yet (a new replica); the
    /// default is a random UUIDv4.
    std::optional<site_id> site;
    /// Change sets for tables or columns this replica does not know yet.
    unknown_table_policy unknown_tables = unknown_table_policy::hold;
    /// The most column changes and deletes held at once (`hold`); a change
    /// set that would pass it is rejected (`errc::limit_exceeded`) instead.
    std::uint64_t max_held_facts = 1'000'000;
    /// How often a transaction is retried after the store ran out of space
    /// and grew.
    unsigned storage_full_retries = 3;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
