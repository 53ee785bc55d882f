#pragma once
/// \file change.hpp
/// The change model, field for field the Quereus sync wire model:
/// `column_change` and `row_delete` facts, `schema_migration`, the
/// `change_set` that groups one source transaction's facts, and the
/// `apply_result` of merging change sets.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <crdtsync/hlc.hpp>
#include <crdtsync/site_id.hpp>
#include <crdtsync/value.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// A primary key: values in primary-key column order.
using row_key = std::vector<value>;

/// One column of one row set to a value at an HLC. Wire `type:"column"`.
struct column_change {
    std::string schema = "main";
    std::string table;
    row_key pk;
    hlc version;          ///< wire `hlc`
    std::string column;
    value val;            ///< wire `value`
    /// What the writer saw before it wrote (both present or both absent).
    std::optional<value> prior_value;
    std::optional<hlc> prior_version; ///< wire `priorHlc`
    friend bool operator==(const column_change&, const column_change&) = default;
};

/// A row deleted at an HLC. Wire `type:"delete"`.
struct row_delete {
    std::string schema = "main";
    std::string table;
    row_key pk;
    hlc version;                      ///< wire `hlc`
    std::optional<row_key> prior_row; ///< the row's values before the delete, in column order
    friend bool operator==(const row_delete&, const row_delete&) = default;
};

using change = std::variant<column_change, row_delete>;

/// The HLC of either kind of fact.
[[nodiscard]] inline const hlc& version_of(const change& c) noexcept {
    return std::visit([](const auto& x) -> const hlc& { return x.version; }, c);
}

/// The schema and table either kind of fact names.
[[nodiscard]] inline const std::string& schema_of(const change& c) noexcept {
    return std::visit([](const auto& x) -> const std::string& { return x.schema; }, c);
}
[[nodiscard]] inline const std::string& table_of(const change& c) noexcept {
    return std::visit([](const auto& x) -> const std::string& { return x.table; }, c);
}

enum class migration_kind : std::uint8_t {
    create_table, drop_table, rename_table, add_column, drop_column, alter_column, add_index, drop_index
};

[[nodiscard]] constexpr std::string_view to_text(migration_kind k) noexcept {
    switch (k) {
    case migration_kind::create_table: return "create_table";
    case migration_kind::drop_table: return "drop_table";
    case migration_kind::rename_table: return "rename_table";
    case migration_kind::add_column: return "add_column";
    case migration_kind::drop_column: return "drop_column";
    case migration_kind::alter_column: return "alter_column";
    case migration_kind::add_index: return "add_index";
    case migration_kind::drop_index: return "drop_index";
    }
    return "?";
}
/// The old name of `to_text(migration_kind)`.
[[deprecated("use to_text")]] [[nodiscard]] constexpr std::string_view to_string(migration_kind v) noexcept { return to_text(v); }

/// A schema change that travels with the data.
struct schema_migration {
    migration_kind type = migration_kind::create_table;
    std::string schema = "main";
    std::string table;
    std::optional<std::string> from_table; ///< rename_table only
    std::string ddl;                        ///< canonical DDL text
    hlc version;                            ///< wire `hlc`
    std::int64_t schema_version = 1;
    friend bool operator==(const schema_migration&, const schema_migration&) = default;
};

/// The facts of one source transaction. `version` is the greatest HLC of its
/// facts; `transaction_id` is `"<wall>:<counter>:<site>"`.
struct change_set {
    site_id origin;             ///< wire `siteId`
    std::string transaction_id;
    hlc version;                ///< wire `hlc`
    std::vector<change> changes;
    std::vector<schema_migration> migrations; ///< wire `schemaMigrations`
    friend bool operator==(const change_set&, const change_set&) = default;
};

/// Why a change set was rejected whole.
struct rejection {
    std::string reason;                ///< a human-readable message
    std::optional<std::string> code;   ///< a stable `errc` name
    std::optional<std::string> table;
    std::optional<std::string> column;
    std::string transaction_id;        ///< which change set (not on the Quereus wire)
    friend bool operator==(const rejection&, const rejection&) = default;
};

/// The outcome of `replica::apply`. Every fact (column change, delete,
/// migration) of every accepted change set is counted exactly once:
/// `applied + skipped + conflicts` == the number of facts.
/// - applied: the fact changed the replicated state;
/// - skipped: it changed nothing (already known: equal HLC; or older than
///   the cell, the tombstone or the table's drop), and it was no conflict;
/// - conflicts: it met a different concurrent value of the same cell; the
///   HLC order resolved it either way (see docs/semantics.md).
///
/// A change set held for a table or column this replica does not know yet
/// (`unknown_table_policy::hold`) counts its column changes and deletes in
/// `held` (its migrations apply at once); when a later apply releases it,
/// that apply counts them among its applied, skipped and conflicts, and in
/// `released`. So `applied + skipped + conflicts + held` equals the facts of
/// the accepted change sets plus `released`.
struct [[nodiscard]] apply_result {
    std::uint64_t applied = 0;
    std::uint64_t skipped = 0;
    std::uint64_t conflicts = 0;
    std::uint64_t transactions = 0; ///< change sets accepted
    std::vector<rejection> rejected; ///< change sets rejected whole (nothing of them applied)
    /// wire `unknownTable`: how many changes were in change sets that named an
    /// unknown table, whether held, ignored or rejected (each rejection names
    /// the table).
    std::optional<std::uint64_t> unknown_table;
    /// Column changes and deletes held (not on the wire).
    std::uint64_t held = 0;
    /// Column changes and deletes of earlier held change sets this apply
    /// released (not on the wire).
    std::uint64_t released = 0;
    friend bool operator==(const apply_result&, const apply_result&) = default;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
