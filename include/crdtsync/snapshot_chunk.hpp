#pragma once
/// \file snapshot_chunk.hpp
/// The streamed snapshot (format version 1), chunk by chunk, field for field
/// the Quereus snapshot stream. A snapshot travels in this order:
///
///     header, schema-migration*, (table-start, column-versions*, table-end)*,
///     tombstone*, footer
///
/// `snapshot_chunk` is the variant of the seven kinds; `snapshot_checkpoint`
/// is what a receiver keeps to resume an interrupted transfer. These are plain
/// types: `crdtsync/wire/json.hpp` turns them into JSON and back, and the
/// replica produces and consumes them. Each kind names its wire `type` string
/// in `wire_type`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <crdtsync/change.hpp>
#include <crdtsync/hlc.hpp>
#include <crdtsync/site_id.hpp>
#include <crdtsync/value.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// The snapshot format this library reads and writes (wire `snapshotFormat`).
/// A snapshot whose header names another format must be refused whole.
inline constexpr std::uint32_t snapshot_format_version = 1;

/// First chunk: who made the snapshot, as of which HLC, and what follows.
struct snapshot_header {
    static constexpr std::string_view wire_type = "header";
    site_id origin;                                       ///< wire `siteId`
    hlc version;                                          ///< wire `hlc`: the sender's clock when it began
    std::uint32_t snapshot_format = snapshot_format_version; ///< wire `snapshotFormat`
    std::uint64_t table_count = 0;                        ///< wire `tableCount`
    std::uint64_t migration_count = 0;                    ///< wire `migrationCount`
    std::string snapshot_id;                              ///< wire `snapshotId` (a UUID text)
    /// wire `position`, a crdtsync addition (Quereus readers ignore it): the
    /// sender's local sequence the snapshot was taken at. A receiver that
    /// completes the snapshot continues with delta sync from there.
    std::optional<std::uint64_t> position;
    /// wire `receiverPosition`, a crdtsync addition: when the sender knew
    /// who receives the snapshot, how far it had applied that receiver's own
    /// changes (the receiver's local sequence). The receiver then knows which
    /// of its facts the sender had seen, and removes those the snapshot lacks.
    std::optional<std::uint64_t> receiver_position;
    friend bool operator==(const snapshot_header&, const snapshot_header&) = default;
};

/// One schema migration; every migration comes before any table data, in HLC order.
struct snapshot_schema_migration {
    static constexpr std::string_view wire_type = "schema-migration";
    schema_migration migration;
    friend bool operator==(const snapshot_schema_migration&, const snapshot_schema_migration&) = default;
};

/// Opens one table's live cells.
struct snapshot_table_start {
    static constexpr std::string_view wire_type = "table-start";
    std::string schema = "main";
    std::string table;
    std::uint64_t estimated_entries = 0; ///< wire `estimatedEntries` (a hint; Quereus sends 0)
    /// wire `firstEntry`, a crdtsync addition written only when not 0: a
    /// resumed stream continues this table at its entry `first_entry`
    /// (the entries before it were received before the interruption).
    std::uint64_t first_entry = 0;
    friend bool operator==(const snapshot_table_start&, const snapshot_table_start&) = default;
};

/// One live cell: the winning value of (row, column) and its HLC.
struct column_version_entry {
    std::string column;
    hlc version; ///< wire `hlc`
    value val;   ///< wire `value`
    row_key pk;  ///< the row's primary key values, in key column order
    friend bool operator==(const column_version_entry&, const column_version_entry&) = default;
};

/// A batch of live cells of the current table (Quereus: 1000 a chunk by default).
struct snapshot_column_versions {
    static constexpr std::string_view wire_type = "column-versions";
    std::string schema = "main";
    std::string table;
    std::vector<column_version_entry> entries;
    friend bool operator==(const snapshot_column_versions&, const snapshot_column_versions&) = default;
};

/// Closes one table; `entries_written` counts its column-version entries.
struct snapshot_table_end {
    static constexpr std::string_view wire_type = "table-end";
    std::string schema = "main";
    std::string table;
    std::uint64_t entries_written = 0; ///< wire `entriesWritten`
    friend bool operator==(const snapshot_table_end&, const snapshot_table_end&) = default;
};

/// One deleted row.
struct tombstone_entry {
    row_key pk;
    hlc version;                      ///< wire `hlc`: when the row was deleted
    std::uint64_t created_at = 0;     ///< wire `createdAt`: ms since the epoch, local to the sender
    std::optional<row_key> prior_row; ///< wire `priorRow`: the row before the delete, if known
    friend bool operator==(const tombstone_entry&, const tombstone_entry&) = default;
};

/// A batch of tombstones of one table. Tombstones travel after every table's
/// cells, so a row whose every cell is gone still carries its delete.
struct snapshot_tombstones {
    static constexpr std::string_view wire_type = "tombstone";
    std::string schema = "main";
    std::string table;
    std::vector<tombstone_entry> entries;
    friend bool operator==(const snapshot_tombstones&, const snapshot_tombstones&) = default;
};

/// Last chunk: totals the receiver can check against what it got.
struct snapshot_footer {
    static constexpr std::string_view wire_type = "footer";
    std::string snapshot_id;           ///< wire `snapshotId`, the header's
    std::uint64_t total_tables = 0;    ///< wire `totalTables`
    std::uint64_t total_entries = 0;   ///< wire `totalEntries` (column-version entries)
    std::uint64_t total_migrations = 0; ///< wire `totalMigrations`
    friend bool operator==(const snapshot_footer&, const snapshot_footer&) = default;
};

/// One chunk of a snapshot stream.
using snapshot_chunk = std::variant<snapshot_header, snapshot_schema_migration, snapshot_table_start,
                                    snapshot_column_versions, snapshot_table_end, snapshot_tombstones,
                                    snapshot_footer>;

/// The wire `type` string of a chunk (`"column-versions"`).
[[nodiscard]] inline std::string_view wire_type_of(const snapshot_chunk& c) noexcept {
    return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::wire_type; }, c);
}

/// The last column-version entry a receiver loaded (a crdtsync addition to
/// the checkpoint): the sender resumes right after it, in its key order, so
/// a resume is exact even when the sender changed since.
struct snapshot_last_entry {
    std::string table; ///< wire `table`: `"schema.table"`
    row_key pk;        ///< wire `pk`
    std::string column; ///< wire `column`
    friend bool operator==(const snapshot_last_entry&, const snapshot_last_entry&) = default;
};

/// Where an interrupted snapshot transfer stopped, so it can resume
/// (wire message `resume_snapshot{checkpoint}`). The receiver keeps it; the
/// sender must check it names a snapshot it can still serve.
struct snapshot_checkpoint {
    std::string snapshot_id;                  ///< wire `snapshotId`
    site_id origin;                           ///< wire `siteId`: the receiver's site
    hlc version;                              ///< wire `hlc`: the snapshot header's HLC
    std::uint64_t last_table_index = 0;       ///< wire `lastTableIndex`: tables fully received
    std::uint64_t last_entry_index = 0;       ///< wire `lastEntryIndex`
    std::vector<std::string> completed_tables; ///< wire `completedTables`: `"schema.table"` names
    std::uint64_t entries_processed = 0;      ///< wire `entriesProcessed`
    std::uint64_t created_at = 0;             ///< wire `createdAt`: ms since the epoch
    /// wire `position`, a crdtsync addition: the header's `position`, which
    /// tells the sender whether it changed since the snapshot began.
    std::optional<std::uint64_t> position;
    /// wire `lastEntry`, a crdtsync addition: the last entry loaded of the
    /// table in progress (absent between tables).
    std::optional<snapshot_last_entry> last_entry;
    friend bool operator==(const snapshot_checkpoint&, const snapshot_checkpoint&) = default;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
