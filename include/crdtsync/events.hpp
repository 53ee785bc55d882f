#pragma once
/// \file events.hpp
/// What a replica tells its subscribers, always after the write transaction
/// committed: local changes, remote changes, resolved conflicts, and (as
/// `rejection`, from change.hpp) change sets `apply` rejected.

#include <string>
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

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
