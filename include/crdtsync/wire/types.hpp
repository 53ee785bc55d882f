#pragma once
/// \file wire/types.hpp
/// How each wire type travels: its JSON members, read and written.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <limits>
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

// ---------------------------------------------------------------------------
// Decoders. Each `read(r, p, out)` reads the value that comes next in `r`,
// found at JSON path `p`, into `out`, or throws naming `p`.

/// A string member: a view into the input, or into `buf` when it was written
/// with escapes.
inline std::string_view read_string_view(reader& r, const path& p, std::string& buf) { return r.string(p, buf); }

/// Reads a string into `out`, reusing its storage.
inline void read_string_into(reader& r, const path& p, std::string& out) {
    std::string scratch;
    out.assign(r.string(p, scratch));
}

// Facts are read into `*_parts` first (names as views, no string built) and
// built once complete, straight into the vector that holds them.

/// Members shared by both kinds of change, as read.
struct fact_parts {
    std::string_view schema, table;
    std::string schema_buf, table_buf; // for names written with escapes
    row_key pk;
    hlc version;
    bool type = false, has_schema = false, has_table = false, has_pk = false, has_version = false;
};

struct column_parts : fact_parts {
    std::string_view column;
    std::string column_buf;
    value val;
    std::optional<value> prior_value;
    std::optional<hlc> prior_version;
};

struct delete_parts : fact_parts {
    std::optional<row_key> prior_row;
};

// Member dispatch is the decoders' inner loop: it switches on the name's
// length, then compares once.
[[gnu::always_inline]] inline bool read_fact_member(reader& r, std::string_view key, const path& kp,
                                                    std::string_view type, fact_parts& out) {
    switch (key.size()) {
    case 2:
        if (!key_is(key, "pk")) return false;
        read(r, kp, out.pk);
        out.has_pk = true;
        return true;
    case 3:
        if (!key_is(key, "hlc")) return false;
        read(r, kp, out.version);
        out.has_version = true;
        return true;
    case 4:
        if (!key_is(key, "type")) return false;
        expect_type(r, kp, type);
        out.type = true;
        return true;
    case 5:
        if (!key_is(key, "table")) return false;
        out.table = read_string_view(r, kp, out.table_buf);
        out.has_table = true;
        return true;
    case 6:
        if (!key_is(key, "schema")) return false;
        out.schema = read_string_view(r, kp, out.schema_buf);
        out.has_schema = true;
        return true;
    default: return false;
    }
}

inline void require_fact(const fact_parts& seen, const path& p) {
    require(seen.type, p, "type");
    require(seen.has_schema, p, "schema");
    require(seen.has_table, p, "table");
    require(seen.has_pk, p, "pk");
    require(seen.has_version, p, "hlc");
}

/// Members in the order writers put them (as `write` does).
inline constexpr member_name column_change_members[] = {"type", "schema", "table",      "pk",      "hlc",
                                                        "column", "value", "priorValue", "priorHlc"};
inline constexpr member_name row_delete_members[] = {"type", "schema", "table", "pk", "hlc", "priorRow"};

/// `type_head`: see `peek_change_kind`.
inline void read_parts(reader& r, const path& p, column_parts& out, std::size_t type_head) {
    out.type = type_head != 0;
    bool column = false, val = false, prior_value = false, prior_version = false;
    r.object(p, "a column change object", [&](std::string_view key, const path& kp) CRDTSYNC_WIRE_INLINE {
        if (read_fact_member(r, key, kp, "column", out)) return;
        if (key_is(key, "column")) {
            out.column = read_string_view(r, kp, out.column_buf);
            column = true;
        } else if (key_is(key, "value")) {
            read(r, kp, out.val);
            val = true;
        } else if (key_is(key, "priorValue")) { // null is a value here: the cell was NULL
            out.prior_value.emplace();
            read(r, kp, *out.prior_value);
            prior_value = true;
        } else if (key_is(key, "priorHlc")) {
            if (r.try_null(kp)) {
                prior_version = false;
                return;
            }
            out.prior_version.emplace();
            read(r, kp, *out.prior_version);
            prior_version = true;
        } else {
            r.skip(kp);
        }
    }, column_change_members, type_head);
    require_fact(out, p);
    require(column, p, "column");
    require(val, p, "value");
    if (prior_value != prior_version)
        fail(p / (prior_value ? "priorValue" : "priorHlc"),
             prior_value ? "priorValue without priorHlc: they travel together or not at all"
                         : "priorHlc without priorValue: they travel together or not at all");
    if (!prior_value) {
        out.prior_value.reset();
        out.prior_version.reset();
    }
}

inline void read_parts(reader& r, const path& p, delete_parts& out, std::size_t type_head) {
    out.type = type_head != 0;
    r.object(p, "a delete object", [&](std::string_view key, const path& kp) CRDTSYNC_WIRE_INLINE {
        if (read_fact_member(r, key, kp, "delete", out)) return;
        if (key_is(key, "priorRow")) {
            if (r.try_null(kp)) {
                out.prior_row.reset();
                return;
            }
            out.prior_row.emplace();
            read(r, kp, *out.prior_row);
        } else {
            r.skip(kp);
        }
    }, row_delete_members, type_head);
    require_fact(out, p);
}

/// Converts to the fact its parts make. A fact initialised from it (a
/// variant's alternative, a vector's element) is the returned prvalue itself,
/// built in place: nothing is moved but the parts' vectors and values.
struct column_builder {
    column_parts& c;
    operator column_change() const {
        return column_change{std::string(c.schema), std::string(c.table), std::move(c.pk),
                             c.version,             std::string(c.column), std::move(c.val),
                             std::move(c.prior_value), std::move(c.prior_version)};
    }
};
struct delete_builder {
    delete_parts& d;
    operator row_delete() const {
        return row_delete{std::string(d.schema), std::string(d.table), std::move(d.pk), d.version,
                          std::move(d.prior_row)};
    }
};

/// Sets every member of `out` from the parts.
inline void assign(column_change& out, column_parts& c) {
    out.schema.assign(c.schema);
    out.table.assign(c.table);
    out.pk = std::move(c.pk);
    out.version = c.version;
    out.column.assign(c.column);
    out.val = std::move(c.val);
    out.prior_value = std::move(c.prior_value);
    out.prior_version = std::move(c.prior_version);
}
inline void assign(row_delete& out, delete_parts& d) {
    out.schema.assign(d.schema);
    out.table.assign(d.table);
    out.pk = std::move(d.pk);
    out.version = d.version;
    out.prior_row = std::move(d.prior_row);
}

/// `type_head`: see `peek_change_kind`.
inline void read(reader& r, const path& p, column_change& out, std::size_t type_head = 0) {
    column_parts c;
    read_parts(r, p, c, type_head);
    assign(out, c);
}

inline void read(reader& r, const path& p, row_delete& out, std::size_t type_head = 0) {
    delete_parts d;
    read_parts(r, p, d, type_head);
    assign(out, d);
}

/// Reads the alternative of variant `V` whose `wire_type` equals `t`; false if none.
template <class V, std::size_t I = 0>
bool read_alternative(std::string_view t, reader& r, const path& p, V& out) {
    if constexpr (I == std::variant_size_v<V>) {
        return false;
    } else {
        using alt = std::variant_alternative_t<I, V>;
        if (t == alt::wire_type) {
            alt x;
            read(r, p, x);
            out = std::move(x);
            return true;
        }
        return read_alternative<V, I + 1>(t, r, p, out);
    }
}

template <class V>
std::string wire_type_list() {
    std::string out;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((out += (I == 0 ? "" : ", "), out += std::variant_alternative_t<I, V>::wire_type), ...);
    }(std::make_index_sequence<std::variant_size_v<V>>{});
    return out;
}

/// The `type` member of the object that comes next, read ahead.
inline std::string peek_type(reader& r, const path& p, std::string_view what) {
    auto t = r.peek_member(p, what, "type");
    if (!t) fail(p / "type", "required member is missing");
    return std::move(*t);
}

template <class V>
void read_variant(reader& r, const path& p, V& out, std::string_view what) {
    const std::string t = peek_type(r, p, what);
    if (!read_alternative(t, r, p, out))
        fail(p / "type", "expected one of " + wire_type_list<V>() + ", got the string " + quoted_excerpt(t));
}

enum class change_kind : unsigned char { column, row_delete };

/// The `type` of the change object that comes next, and the length of its
/// opening text `{"type":"column"` when it starts so (else 0).
struct change_head {
    change_kind kind;
    std::size_t head_size;
};

inline change_head peek_change_kind(reader& r, const path& p) {
    // Writers put `type` first: recognise that without reading ahead. The
    // object's reader then takes that member as read.
    constexpr std::string_view column_head = R"({"type":"column")", delete_head = R"({"type":"delete")";
    static_assert(column_head.size() == delete_head.size());
    constexpr std::size_t n = column_head.size();
    if (const std::string_view rest = r.rest(); rest.size() > n && (rest[n] == ',' || rest[n] == '}')) {
        const bool column = std::memcmp(rest.data(), column_head.data(), n) == 0;
        if (column || std::memcmp(rest.data(), delete_head.data(), n) == 0) {
            r.check_read_ahead(p, p / "type"); // the limits break where the read-ahead would break them
            return {column ? change_kind::column : change_kind::row_delete, n};
        }
    }
    const std::string t = peek_type(r, p, "a change object");
    if (t == "column") return {change_kind::column, 0};
    if (t == "delete") return {change_kind::row_delete, 0};
    fail(p / "type", "expected \"column\" or \"delete\", got the string " + quoted_excerpt(t));
}

inline void read(reader& r, const path& p, change& out) {
    const change_head h = peek_change_kind(r, p);
    if (h.kind == change_kind::column) {
        column_parts c;
        read_parts(r, p, c, h.head_size);
        if (auto* x = std::get_if<column_change>(&out)) assign(*x, c);
        else out.emplace<column_change>(column_builder{c});
    } else {
        delete_parts d;
        read_parts(r, p, d, h.head_size);
        if (auto* x = std::get_if<row_delete>(&out)) assign(*x, d);
        else out.emplace<row_delete>(delete_builder{d});
    }
}

/// Facts are built in place in the vector. Its capacity starts at the length
/// of the previous list read (change sets of one batch tend to be alike in
/// size), which never reserves more than the document already held.
inline void read(reader& r, const path& p, std::vector<change>& out) {
    out.clear();
    if (out.capacity() < r.last_changes) out.reserve(r.last_changes);
    r.array(p, "an array", [&](std::size_t, const path& ep) {
        const change_head h = peek_change_kind(r, ep);
        if (h.kind == change_kind::column) {
            column_parts c;
            read_parts(r, ep, c, h.head_size);
            out.emplace_back(std::in_place_type<column_change>, column_builder{c});
        } else {
            delete_parts d;
            read_parts(r, ep, d, h.head_size);
            out.emplace_back(std::in_place_type<row_delete>, delete_builder{d});
        }
    });
    r.last_changes = out.size();
}

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
                                    [&](migration_kind k) { return to_string(k) == t; });
    if (kind == std::end(all_migration_kinds)) {
        r.rewind(m);
        fail(p, "expected one of create_table, drop_table, rename_table, add_column, drop_column, "
                "alter_column, add_index, drop_index, got " + r.describe_next());
    }
    out = *kind;
}

template <class Sink>
void write(Sink& s, migration_kind k) {
    s.ascii(to_string(k));
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
// The descriptions: every wire type but the facts (above, by hand: the
// decoder's hot path) lists its members here, once, in the order
// Quereus writes them. `required` members must be there; `when_set` ones are
// written only when set (an optional with a value, a non-empty list, a
// non-zero count) and read as empty when absent or null; `always` ones are
// read so too but always written. Members marked
// "crdtsync's addition" are not Quereus's: its readers ignore them.

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
    requires std::is_empty_v<M> && typed_wire_object<M>
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


template <class Sink>
void write_fact_base(Sink& s, std::string_view type, const std::string& schema, const std::string& table,
                     const row_key& pk, const hlc& version) {
    s.begin_object();
    s.field("type");
    s.ascii(type);
    s.field("schema");
    s.string(schema);
    s.field("table");
    s.string(table);
    s.field("pk");
    write(s, pk);
    s.field("hlc");
    write(s, version);
}

/// \throws usage_error if exactly one of prior_value / prior_version is set.
template <class Sink>
void write(Sink& s, const column_change& c) {
    if (c.prior_value.has_value() != c.prior_version.has_value())
        ::crdtsync::detail::raise(errc::invalid_argument,
                                  "column_change: prior_value and prior_version must both be set or both be empty");
    write_fact_base(s, "column", c.schema, c.table, c.pk, c.version);
    s.field("column");
    s.string(c.column);
    s.field("value");
    write_value(s, c.val);
    if (c.prior_version) {
        s.field("priorValue");
        write_value(s, *c.prior_value);
        s.field("priorHlc");
        write(s, *c.prior_version);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const row_delete& d) {
    write_fact_base(s, "delete", d.schema, d.table, d.pk, d.version);
    if (d.prior_row) {
        s.field("priorRow");
        write(s, *d.prior_row);
    }
    s.end_object();
}

/// A change, a snapshot chunk or a message: its alternative, which names
/// itself in its `type`.
template <class Sink, class... Ts>
void write(Sink& s, const std::variant<Ts...>& v) {
    std::visit([&](const auto& x) { write(s, x); }, v);
}

} // namespace detail
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
