#pragma once
/// \file wire/types.hpp
/// How each wire type travels: its JSON members, read and written.

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <crdtsync/change.hpp>
#include <crdtsync/message.hpp>
#include <crdtsync/snapshot_chunk.hpp>
#include <crdtsync/wire/detail/described.hpp>
#include <crdtsync/wire/detail/encodings.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {
namespace detail {

inline constexpr migration_kind all_migration_kinds[] = {
    migration_kind::create_table, migration_kind::drop_table,   migration_kind::rename_table,
    migration_kind::add_column,   migration_kind::drop_column,  migration_kind::alter_column,
    migration_kind::add_index,    migration_kind::drop_index};

/// A migration's `type`: one of its kinds' names.
inline void read(reader& r, const path& p, migration_kind& out) {
    const auto m = r.mark();
    std::string scratch;
    const auto t = r.string(p, scratch);
    const auto* kind = std::find_if(std::begin(all_migration_kinds), std::end(all_migration_kinds),
                                    [&](migration_kind k) { return to_text(k) == t; });
    if (kind == std::end(all_migration_kinds)) {
        r.rewind(m);
        fail(p, "expected one of create_table, drop_table, rename_table, add_column, drop_column, "
                "alter_column, add_index, drop_index, got " + r.describe_next());
    }
    out = *kind;
}

template <class Sink>
void write(Sink& s, migration_kind k) {
    s.ascii(to_text(k));
}

/// `get_changes.sinceHLC`: Quereus reads "" as absent.
struct empty_text_is_absent {
    static void get(reader& r, const path& p, std::optional<hlc>& x) {
        if (r.next() == reader::token::string) {
            const auto m = r.mark();
            if (r.string(p).empty()) {
                x.reset();
                return;
            }
            r.rewind(m);
        }
        plain::get(r, p, x);
    }
    template <class Sink>
    static void put(Sink& s, const std::optional<hlc>& x) {
        plain::put(s, x);
    }
};

// ---------------------------------------------------------------------------
// The descriptions: every wire type lists its members here, once, in the
// order Quereus writes them. `required` members must be there; `when_set`
// ones are written only when set (an optional with a value, a non-empty
// list, a non-zero count) and read as empty when absent or null; `always`
// ones are read so too but always written. Members marked "crdtsync's
// addition" are not Quereus's: its readers ignore them.

// ---- facts: the `changes` of a change set, the decoder's hot path (the
// reader matches their members in this order first, by position)

/// The members every fact has after its `type`.
template <class T>
inline constexpr std::tuple fact_members{required("schema", &T::schema), required("table", &T::table),
                                         required("pk", &T::pk), required("hlc", &T::version)};

template <>
struct description<column_change> {
    using T = column_change;
    static constexpr std::string_view wire_type = "column";
    static constexpr std::string_view what = "a column change object";
    static constexpr std::tuple members = std::tuple_cat(
        fact_members<T>, std::tuple{required("column", &T::column), required("value", &T::val),
                                    when_set("priorValue", &T::prior_value, false), // null: the cell was NULL
                                    when_set("priorHlc", &T::prior_version)});
    /// What the writer overwrote: both or neither.
    static constexpr auto together = both_or_neither(&T::prior_value, &T::prior_version);
};

template <>
struct description<row_delete> {
    using T = row_delete;
    static constexpr std::string_view wire_type = "delete";
    static constexpr std::string_view what = "a delete object";
    static constexpr std::tuple members =
        std::tuple_cat(fact_members<T>, std::tuple{when_set("priorRow", &T::prior_row)}); // [] is present
};

inline void read(reader& r, const path& p, change& out) { read_variant(r, p, out, "a change object"); }

/// Facts are built in place in the vector. Its capacity starts at the length
/// of the previous list read (change sets of one batch tend to be alike in
/// size), which never reserves more than the document already held.
inline void read(reader& r, const path& p, std::vector<change>& out) {
    out.clear();
    if (out.capacity() < r.last_changes) out.reserve(r.last_changes);
    r.array(p, "an array", [&](std::size_t, const path& ep) {
        read_variant<change>(r, ep, "a change object", [&](auto i) -> auto& {
            constexpr std::size_t index = decltype(i)::value;
            return std::get<index>(out.emplace_back(std::in_place_index<index>));
        });
    });
    r.last_changes = out.size();
}

template <>
struct description<schema_migration> {
    using T = schema_migration;
    static constexpr std::string_view what = "a schema migration object";
    static constexpr std::tuple members{required("type", &T::type),     required("schema", &T::schema),
                                        required("table", &T::table),   when_set("fromTable", &T::from_table),
                                        required("ddl", &T::ddl),       required("hlc", &T::version),
                                        required("schemaVersion", &T::schema_version)};
};

template <>
struct description<change_set> {
    using T = change_set;
    static constexpr std::string_view what = "a change set object";
    static constexpr std::tuple members{required("siteId", &T::origin), required("transactionId", &T::transaction_id),
                                        required("hlc", &T::version), required("changes", &T::changes),
                                        always("schemaMigrations", &T::migrations)}; // Quereus reads a missing list as empty
};

template <>
struct description<rejection> {
    using T = rejection;
    static constexpr std::string_view what = "a rejection object";
    static constexpr std::tuple members{required("reason", &T::reason), when_set("code", &T::code),
                                        when_set("table", &T::table), when_set("column", &T::column),
                                        when_set("transactionId", &T::transaction_id)}; // crdtsync's addition
};

template <>
struct description<apply_result> {
    using T = apply_result;
    static constexpr std::string_view what = "an apply result object";
    static constexpr std::tuple members{required("applied", &T::applied),
                                        required("skipped", &T::skipped),
                                        required("conflicts", &T::conflicts),
                                        required("transactions", &T::transactions),
                                        when_set("rejected", &T::rejected),
                                        when_set("unknownTable", &T::unknown_table)};
};

// ---- snapshot chunks

template <>
struct description<snapshot_header> {
    using T = snapshot_header;
    static constexpr std::string_view what = "a snapshot header chunk";
    static constexpr std::tuple members{required("siteId", &T::origin),
                                        required("hlc", &T::version),
                                        required("snapshotFormat", &T::snapshot_format),
                                        required("tableCount", &T::table_count),
                                        required("migrationCount", &T::migration_count),
                                        required("snapshotId", &T::snapshot_id),
                                        when_set("position", &T::position),                  // crdtsync's addition
                                        when_set("receiverPosition", &T::receiver_position)}; // crdtsync's addition
};

template <>
struct description<snapshot_schema_migration> {
    static constexpr std::string_view what = "a snapshot schema-migration chunk";
    static constexpr std::tuple members{required("migration", &snapshot_schema_migration::migration)};
};

template <>
struct description<snapshot_table_start> {
    using T = snapshot_table_start;
    static constexpr std::string_view what = "a snapshot table-start chunk";
    static constexpr std::tuple members{required("schema", &T::schema), required("table", &T::table),
                                        required("estimatedEntries", &T::estimated_entries),
                                        when_set("firstEntry", &T::first_entry, false)}; // crdtsync's addition
};

template <>
struct description<column_version_entry> {
    using T = column_version_entry;
    static constexpr std::string_view what = "a column version entry object";
    static constexpr std::tuple members{required("column", &T::column), required("hlc", &T::version),
                                        required("value", &T::val), required("pk", &T::pk)};
};

template <>
struct description<snapshot_column_versions> {
    using T = snapshot_column_versions;
    static constexpr std::string_view what = "a snapshot column-versions chunk";
    static constexpr std::tuple members{required("schema", &T::schema), required("table", &T::table),
                                        required("entries", &T::entries)};
};

template <>
struct description<snapshot_table_end> {
    using T = snapshot_table_end;
    static constexpr std::string_view what = "a snapshot table-end chunk";
    static constexpr std::tuple members{required("schema", &T::schema), required("table", &T::table),
                                        required("entriesWritten", &T::entries_written)};
};

template <>
struct description<tombstone_entry> {
    using T = tombstone_entry;
    static constexpr std::string_view what = "a tombstone entry object";
    static constexpr std::tuple members{required("pk", &T::pk), required("hlc", &T::version),
                                        required("createdAt", &T::created_at), when_set("priorRow", &T::prior_row)};
};

template <>
struct description<snapshot_tombstones> {
    using T = snapshot_tombstones;
    static constexpr std::string_view what = "a snapshot tombstone chunk";
    static constexpr std::tuple members{required("schema", &T::schema), required("table", &T::table),
                                        required("entries", &T::entries)};
};

template <>
struct description<snapshot_footer> {
    using T = snapshot_footer;
    static constexpr std::string_view what = "a snapshot footer chunk";
    static constexpr std::tuple members{required("snapshotId", &T::snapshot_id),
                                        required("totalTables", &T::total_tables),
                                        required("totalEntries", &T::total_entries),
                                        required("totalMigrations", &T::total_migrations)};
};

template <>
struct description<snapshot_last_entry> {
    using T = snapshot_last_entry;
    static constexpr std::string_view what = "a last entry object";
    static constexpr std::tuple members{required("table", &T::table), required("pk", &T::pk),
                                        required("column", &T::column)};
};

template <>
struct description<snapshot_checkpoint> {
    using T = snapshot_checkpoint;
    static constexpr std::string_view what = "a snapshot checkpoint object";
    static constexpr std::tuple members{required("snapshotId", &T::snapshot_id),
                                        required("siteId", &T::origin),
                                        required("hlc", &T::version),
                                        required("lastTableIndex", &T::last_table_index),
                                        required("lastEntryIndex", &T::last_entry_index),
                                        required("completedTables", &T::completed_tables),
                                        required("entriesProcessed", &T::entries_processed),
                                        required("createdAt", &T::created_at),
                                        when_set("position", &T::position),    // crdtsync's addition
                                        when_set("lastEntry", &T::last_entry)}; // crdtsync's addition
};

// ---- messages

/// Messages name themselves "a message object" in errors.
struct message_description {
    static constexpr std::string_view what = "a message object";
};

template <class M>
    requires std::is_empty_v<M> && has_own_wire_type<M>
struct description<M> : message_description {
    static constexpr std::tuple<> members{};
};

template <>
struct description<msg::handshake> : message_description {
    using T = msg::handshake;
    static constexpr std::tuple members{required("databaseId", &T::database_id), required("siteId", &T::site),
                                        when_set("token", &T::token),
                                        required("protocolVersion", &T::protocol_version),
                                        when_set("syncByPosition", &T::by_position)}; // crdtsync's addition
};

template <>
struct description<msg::get_changes> : message_description {
    static constexpr std::tuple members{when_set<empty_text_is_absent>("sinceHLC", &msg::get_changes::since),
                                        when_set("sincePosition", &msg::get_changes::since_position)}; // crdtsync's addition
};

template <>
struct description<msg::apply_changes> : message_description {
    using T = msg::apply_changes;
    static constexpr std::tuple members{required("changes", &T::changes), when_set("requestId", &T::request_id)};
};

template <>
struct description<msg::resume_snapshot> : message_description {
    static constexpr std::tuple members{required("checkpoint", &msg::resume_snapshot::checkpoint)};
};

template <>
struct description<msg::handshake_ack> : message_description {
    using T = msg::handshake_ack;
    static constexpr std::tuple members{required("serverSiteId", &T::server_site),
                                        required("connectionId", &T::connection_id),
                                        when_set("databaseId", &T::database_id),
                                        required("protocolVersion", &T::protocol_version),
                                        when_set("syncByPosition", &T::by_position)}; // crdtsync's addition
};

template <>
struct description<msg::changes> : message_description {
    using T = msg::changes;
    static constexpr std::tuple members{required("changeSets", &T::change_sets),
                                        when_set("nextPosition", &T::next_position),          // crdtsync's addition
                                        when_set("more", &T::more),                           // crdtsync's addition
                                        when_set("snapshotRequired", &T::snapshot_required)}; // crdtsync's addition
};

template <>
struct description<msg::push_changes> : message_description {
    static constexpr std::tuple members{required("changeSets", &msg::push_changes::change_sets),
                                        when_set("nextPosition", &msg::push_changes::next_position)}; // crdtsync's addition
};

template <>
struct description<msg::apply_result> : message_description {
    static constexpr std::tuple members{when_set("requestId", &msg::apply_result::request_id),
                                        embed(&msg::apply_result::result)};
};

template <>
struct description<msg::snapshot_chunk> : message_description {
    static constexpr std::tuple members{required("chunk", &msg::snapshot_chunk::chunk)};
};

template <>
struct description<msg::error> : message_description {
    using T = msg::error;
    static constexpr std::tuple members{required("code", &T::code), required("message", &T::message),
                                        when_set("fatal", &T::fatal)};
};

inline void read(reader& r, const path& p, snapshot_chunk& out) { read_variant(r, p, out, "a snapshot chunk object"); }

inline void read(reader& r, const path& p, message& out) { read_variant(r, p, out, "a message object"); }


} // namespace detail
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
