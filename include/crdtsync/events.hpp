#pragma once
/// \file events.hpp
/// What a replica tells its subscribers, always after the write transaction
/// committed: local changes, remote changes, resolved conflicts, and (as
/// `rejection`, from change.hpp) change sets `apply` rejected.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <crdtsync/change.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// Which side's value a conflict kept.
enum class conflict_winner : std::uint8_t { local, remote };

/// Two different values met in one cell; the higher HLC won.
struct conflict {
    std::string schema;
    std::string table;
    row_key pk;
    std::string column;
    value local_value;
    hlc local_version;
    value remote_value;
    hlc remote_version;
    conflict_winner winner = conflict_winner::local;
};

/// One committed local transaction, as the change set peers will receive.
struct local_change {
    change_set changes;
};

/// One applied remote change set: the facts of it that changed this replica.
struct remote_change {
    site_id origin;
    std::string transaction_id;
    std::vector<change> applied;
    std::vector<schema_migration> migrations;
};

/// A migration kept and forwarded without being applied (its DDL is outside
/// the subset this version applies; docs/schema.md).
struct schema_notice {
    schema_migration migration;
    std::string message;
};

/// What happened to a change set that names a table (or a column) this
/// replica does not know yet (`replica_options::unknown_tables`).
enum class hold_event_kind : std::uint8_t {
    held,     ///< kept in the store until its table's migration arrives
    released, ///< its migration arrived: it was applied
    dropped,  ///< let go without being applied: ignored by policy, or invalid once its table arrived
};

[[nodiscard]] constexpr std::string_view to_text(hold_event_kind k) noexcept {
    switch (k) {
    case hold_event_kind::held: return "held";
    case hold_event_kind::released: return "released";
    case hold_event_kind::dropped: return "dropped";
    }
    return "?";
}

/// A change set held, released or dropped (see `hold_event_kind`).
struct hold_event {
    hold_event_kind kind = hold_event_kind::held;
    site_id origin;
    std::string transaction_id;
    std::string table;  ///< the unknown table ("schema.name") when held
    std::string column; ///< the unknown column, when the table was known
    std::size_t facts = 0; ///< column changes and deletes in the change set
    std::string reason;    ///< why it was dropped (empty otherwise)
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
