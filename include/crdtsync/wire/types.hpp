#pragma once
/// \file wire/types.hpp
/// How each wire type travels: its JSON members, read and written.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <crdtsync/change.hpp>
#include <crdtsync/message.hpp>
#include <crdtsync/snapshot_chunk.hpp>
#include <crdtsync/wire/detail/encodings.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {
namespace detail {

// ---------------------------------------------------------------------------
// Decoders. Each `read(r, p, out)` reads the value that comes next in `r`,
// found at JSON path `p`, into `out`, or throws naming `p`.

/// Reads member `type` and checks it is `wanted`.
inline void expect_type(reader& r, const path& p, std::string_view wanted) {
    const auto m = r.mark();
    std::string scratch;
    if (r.string(p, scratch) != wanted) {
        r.rewind(m);
        fail(p, "expected \"" + std::string(wanted) + "\", got " + r.describe_next());
    }
}

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
// (`schemaMigrations` is too long to be recognised so.)
inline constexpr member_name change_set_members[] = {"siteId", "transactionId", "hlc", "changes"};

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

inline void read(reader& r, const path& p, schema_migration& out) {
    bool type = false, schema = false, table = false, ddl = false, version = false, schema_version = false;
    out.from_table.reset();
    r.object(p, "a schema migration object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "type")) {
            const auto m = r.mark();
            std::string scratch;
            const auto t = r.string(kp, scratch);
            const auto* kind = std::find_if(std::begin(all_migration_kinds), std::end(all_migration_kinds),
                                            [&](migration_kind k) { return to_string(k) == t; });
            if (kind == std::end(all_migration_kinds)) {
                r.rewind(m);
                fail(kp, "expected one of create_table, drop_table, rename_table, add_column, drop_column, "
                         "alter_column, add_index, drop_index, got " + r.describe_next());
            }
            out.type = *kind;
            type = true;
        } else if (key_is(key, "schema")) {
            out.schema = r.string(kp);
            schema = true;
        } else if (key_is(key, "table")) {
            out.table = r.string(kp);
            table = true;
        } else if (key_is(key, "fromTable")) {
            if (r.try_null(kp)) out.from_table.reset();
            else out.from_table = r.string(kp);
        } else if (key_is(key, "ddl")) {
            out.ddl = r.string(kp);
            ddl = true;
        } else if (key_is(key, "hlc")) {
            read(r, kp, out.version);
            version = true;
        } else if (key_is(key, "schemaVersion")) {
            out.schema_version = static_cast<std::int64_t>(
                r.unsigned_integer(kp, std::uint64_t(std::numeric_limits<std::int64_t>::max())));
            schema_version = true;
        } else {
            r.skip(kp);
        }
    });
    require(type, p, "type");
    require(schema, p, "schema");
    require(table, p, "table");
    require(ddl, p, "ddl");
    require(version, p, "hlc");
    require(schema_version, p, "schemaVersion");
}

inline void read(reader& r, const path& p, change_set& out) {
    bool origin = false, transaction = false, version = false, changes = false;
    out.migrations.clear(); // Quereus reads a missing list as empty
    r.object(p, "a change set object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "siteId")) {
            read(r, kp, out.origin);
            origin = true;
        } else if (key_is(key, "transactionId")) {
            read_string_into(r, kp, out.transaction_id);
            transaction = true;
        } else if (key_is(key, "hlc")) {
            read(r, kp, out.version);
            version = true;
        } else if (key_is(key, "changes")) {
            read(r, kp, out.changes);
            changes = true;
        } else if (key_is(key, "schemaMigrations")) {
            if (r.try_null(kp)) out.migrations.clear();
            else read(r, kp, out.migrations);
        } else {
            r.skip(kp);
        }
    }, change_set_members);
    require(origin, p, "siteId");
    require(transaction, p, "transactionId");
    require(version, p, "hlc");
    require(changes, p, "changes");
}

/// An optional string member: absent and `null` both mean "not there".
inline void read_optional(reader& r, const path& kp, std::optional<std::string>& out) {
    if (r.try_null(kp)) out.reset();
    else out = r.string(kp);
}

inline void read(reader& r, const path& p, rejection& out) {
    bool reason = false;
    out.code.reset();
    out.table.reset();
    out.column.reset();
    out.transaction_id.clear();
    r.object(p, "a rejection object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "reason")) {
            out.reason = r.string(kp);
            reason = true;
        } else if (key_is(key, "code")) {
            read_optional(r, kp, out.code);
        } else if (key_is(key, "table")) {
            read_optional(r, kp, out.table);
        } else if (key_is(key, "column")) {
            read_optional(r, kp, out.column);
        } else if (key_is(key, "transactionId")) { // crdtsync's addition
            if (r.try_null(kp)) out.transaction_id.clear();
            else out.transaction_id = r.string(kp);
        } else {
            r.skip(kp);
        }
    });
    require(reason, p, "reason");
}

// `apply_result::unknown_table`: Quereus sends a count of diverted facts;
// these serve whichever of a count or a table name this build keeps.
template <class U>
void read_unknown_table(reader& r, const path& p, std::optional<U>& out) {
    if (r.try_null(p)) {
        out.reset();
    } else if constexpr (std::is_integral_v<U>) {
        out = static_cast<U>(r.unsigned_integer(p, std::numeric_limits<U>::max()));
    } else if (r.next() == reader::token::string) {
        out = r.string(p);
    } else { // a Quereus count, kept as its decimal text
        out = std::to_string(r.unsigned_integer(p, std::numeric_limits<std::uint64_t>::max()));
    }
}

struct apply_result_fields {
    bool applied = false, skipped = false, conflicts = false, transactions = false;
};

/// One member of an apply result; false if `key` is none of its members
/// (the `apply_result` message puts `type` and `requestId` beside them).
inline bool read_apply_result_member(reader& r, std::string_view key, const path& kp, apply_result& out,
                                     apply_result_fields& seen) {
    constexpr auto max = std::numeric_limits<std::uint64_t>::max();
    if (key_is(key, "applied")) {
        out.applied = r.unsigned_integer(kp, max);
        seen.applied = true;
    } else if (key_is(key, "skipped")) {
        out.skipped = r.unsigned_integer(kp, max);
        seen.skipped = true;
    } else if (key_is(key, "conflicts")) {
        out.conflicts = r.unsigned_integer(kp, max);
        seen.conflicts = true;
    } else if (key_is(key, "transactions")) {
        out.transactions = r.unsigned_integer(kp, max);
        seen.transactions = true;
    } else if (key_is(key, "rejected")) {
        if (r.try_null(kp)) out.rejected.clear();
        else read(r, kp, out.rejected);
    } else if (key_is(key, "unknownTable")) {
        read_unknown_table(r, kp, out.unknown_table);
    } else {
        return false;
    }
    return true;
}

inline void require_apply_result(const apply_result_fields& seen, const path& p) {
    require(seen.applied, p, "applied");
    require(seen.skipped, p, "skipped");
    require(seen.conflicts, p, "conflicts");
    require(seen.transactions, p, "transactions");
}

inline void read(reader& r, const path& p, apply_result& out) {
    apply_result_fields seen;
    out.rejected.clear();
    out.unknown_table.reset();
    r.object(p, "an apply result object", [&](std::string_view key, const path& kp) {
        if (!read_apply_result_member(r, key, kp, out, seen)) r.skip(kp);
    });
    require_apply_result(seen, p);
}

// ---- snapshot chunks and messages: flat objects with a `type`

/// Reads an object whose `type` must be `T::wire_type`; `on_member` handles
/// the other members and returns false for those it does not know.
template <class T, class F>
void read_typed(reader& r, const path& p, std::string_view what, F&& on_member) {
    bool type = false;
    r.object(p, what, [&](std::string_view key, const path& kp) {
        if (key_is(key, "type")) {
            expect_type(r, kp, T::wire_type);
            type = true;
        } else if (!on_member(key, kp)) {
            r.skip(kp);
        }
    });
    require(type, p, "type");
}

/// A required member's flag and reader, for `read_typed` callbacks.
#define CRDTSYNC_WIRE_MEMBER(name, flag, ...) \
    if (key_is(key, name)) {                   \
        __VA_ARGS__;                           \
        flag = true;                           \
        return true;                           \
    }

inline void read(reader& r, const path& p, snapshot_header& out) {
    out.position.reset();
    out.receiver_position.reset();
    bool site = false, version = false, format = false, tables = false, migrations = false, id = false;
    read_typed<snapshot_header>(r, p, "a snapshot header chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("siteId", site, read(r, kp, out.origin))
        CRDTSYNC_WIRE_MEMBER("hlc", version, read(r, kp, out.version))
        CRDTSYNC_WIRE_MEMBER("snapshotFormat", format,
                             out.snapshot_format = static_cast<std::uint32_t>(r.unsigned_integer(kp, 0xFFFFFFFFu)))
        CRDTSYNC_WIRE_MEMBER("tableCount", tables, out.table_count = r.unsigned_integer(kp, UINT64_MAX))
        CRDTSYNC_WIRE_MEMBER("migrationCount", migrations, out.migration_count = r.unsigned_integer(kp, UINT64_MAX))
        CRDTSYNC_WIRE_MEMBER("snapshotId", id, out.snapshot_id = r.string(kp))
        if (key_is(key, "position")) { // crdtsync's addition
            if (r.try_null(kp)) out.position.reset();
            else out.position = r.unsigned_integer(kp, UINT64_MAX);
            return true;
        }
        if (key_is(key, "receiverPosition")) { // crdtsync's addition
            if (r.try_null(kp)) out.receiver_position.reset();
            else out.receiver_position = r.unsigned_integer(kp, UINT64_MAX);
            return true;
        }
        return false;
    });
    require(site, p, "siteId");
    require(version, p, "hlc");
    require(format, p, "snapshotFormat");
    require(tables, p, "tableCount");
    require(migrations, p, "migrationCount");
    require(id, p, "snapshotId");
}

inline void read(reader& r, const path& p, snapshot_schema_migration& out) {
    bool migration = false;
    read_typed<snapshot_schema_migration>(r, p, "a snapshot schema-migration chunk",
                                          [&](std::string_view key, const path& kp) {
                                              CRDTSYNC_WIRE_MEMBER("migration", migration, read(r, kp, out.migration))
                                              return false;
                                          });
    require(migration, p, "migration");
}

inline void read(reader& r, const path& p, snapshot_table_start& out) {
    out.first_entry = 0;
    bool schema = false, table = false, estimated = false;
    read_typed<snapshot_table_start>(r, p, "a snapshot table-start chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("schema", schema, out.schema = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("estimatedEntries", estimated, out.estimated_entries = r.unsigned_integer(kp, UINT64_MAX))
        if (key_is(key, "firstEntry")) { // crdtsync's addition
            out.first_entry = r.unsigned_integer(kp, UINT64_MAX);
            return true;
        }
        return false;
    });
    require(schema, p, "schema");
    require(table, p, "table");
    require(estimated, p, "estimatedEntries");
}

inline void read(reader& r, const path& p, column_version_entry& out) {
    bool column = false, version = false, val = false, pk = false;
    r.object(p, "a column version entry object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "column")) {
            out.column = r.string(kp);
            column = true;
        } else if (key_is(key, "hlc")) {
            read(r, kp, out.version);
            version = true;
        } else if (key_is(key, "value")) {
            read(r, kp, out.val);
            val = true;
        } else if (key_is(key, "pk")) {
            read(r, kp, out.pk);
            pk = true;
        } else {
            r.skip(kp);
        }
    });
    require(column, p, "column");
    require(version, p, "hlc");
    require(val, p, "value");
    require(pk, p, "pk");
}

inline void read(reader& r, const path& p, snapshot_column_versions& out) {
    bool schema = false, table = false, entries = false;
    read_typed<snapshot_column_versions>(r, p, "a snapshot column-versions chunk",
                                         [&](std::string_view key, const path& kp) {
                                             CRDTSYNC_WIRE_MEMBER("schema", schema, out.schema = r.string(kp))
                                             CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
                                             CRDTSYNC_WIRE_MEMBER("entries", entries, read(r, kp, out.entries))
                                             return false;
                                         });
    require(schema, p, "schema");
    require(table, p, "table");
    require(entries, p, "entries");
}

inline void read(reader& r, const path& p, snapshot_table_end& out) {
    bool schema = false, table = false, written = false;
    read_typed<snapshot_table_end>(r, p, "a snapshot table-end chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("schema", schema, out.schema = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("entriesWritten", written, out.entries_written = r.unsigned_integer(kp, UINT64_MAX))
        return false;
    });
    require(schema, p, "schema");
    require(table, p, "table");
    require(written, p, "entriesWritten");
}

inline void read(reader& r, const path& p, tombstone_entry& out) {
    bool pk = false, version = false, created = false;
    out.prior_row.reset();
    r.object(p, "a tombstone entry object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "pk")) {
            read(r, kp, out.pk);
            pk = true;
        } else if (key_is(key, "hlc")) {
            read(r, kp, out.version);
            version = true;
        } else if (key_is(key, "createdAt")) {
            out.created_at = r.unsigned_integer(kp, UINT64_MAX);
            created = true;
        } else if (key_is(key, "priorRow")) {
            if (r.try_null(kp)) {
                out.prior_row.reset();
                return;
            }
            out.prior_row.emplace();
            read(r, kp, *out.prior_row);
        } else {
            r.skip(kp);
        }
    });
    require(pk, p, "pk");
    require(version, p, "hlc");
    require(created, p, "createdAt");
}

inline void read(reader& r, const path& p, snapshot_tombstones& out) {
    bool schema = false, table = false, entries = false;
    read_typed<snapshot_tombstones>(r, p, "a snapshot tombstone chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("schema", schema, out.schema = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("entries", entries, read(r, kp, out.entries))
        return false;
    });
    require(schema, p, "schema");
    require(table, p, "table");
    require(entries, p, "entries");
}

inline void read(reader& r, const path& p, snapshot_footer& out) {
    bool id = false, tables = false, entries = false, migrations = false;
    read_typed<snapshot_footer>(r, p, "a snapshot footer chunk", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("snapshotId", id, out.snapshot_id = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("totalTables", tables, out.total_tables = r.unsigned_integer(kp, UINT64_MAX))
        CRDTSYNC_WIRE_MEMBER("totalEntries", entries, out.total_entries = r.unsigned_integer(kp, UINT64_MAX))
        CRDTSYNC_WIRE_MEMBER("totalMigrations", migrations, out.total_migrations = r.unsigned_integer(kp, UINT64_MAX))
        return false;
    });
    require(id, p, "snapshotId");
    require(tables, p, "totalTables");
    require(entries, p, "totalEntries");
    require(migrations, p, "totalMigrations");
}

inline void read(reader& r, const path& p, snapshot_chunk& out) { read_variant(r, p, out, "a snapshot chunk object"); }

inline void read(reader& r, const path& p, snapshot_last_entry& out) {
    bool table = false, pk = false, column = false;
    r.object(p, "a last entry object", [&](std::string_view key, const path& kp) {
        const auto member = [&]() -> bool {
            CRDTSYNC_WIRE_MEMBER("table", table, out.table = r.string(kp))
            CRDTSYNC_WIRE_MEMBER("pk", pk, read(r, kp, out.pk))
            CRDTSYNC_WIRE_MEMBER("column", column, out.column = r.string(kp))
            return false;
        };
        if (!member()) r.skip(kp);
    });
    require(table, p, "table");
    require(pk, p, "pk");
    require(column, p, "column");
}

inline void read(reader& r, const path& p, snapshot_checkpoint& out) {
    out.position.reset();
    out.last_entry.reset();
    bool id = false, site = false, version = false, table_index = false, entry_index = false, completed = false,
         processed = false, created = false;
    r.object(p, "a snapshot checkpoint object", [&](std::string_view key, const path& kp) {
        const auto member = [&]() -> bool {
            CRDTSYNC_WIRE_MEMBER("snapshotId", id, out.snapshot_id = r.string(kp))
            CRDTSYNC_WIRE_MEMBER("siteId", site, read(r, kp, out.origin))
            CRDTSYNC_WIRE_MEMBER("hlc", version, read(r, kp, out.version))
            CRDTSYNC_WIRE_MEMBER("lastTableIndex", table_index, out.last_table_index = r.unsigned_integer(kp, UINT64_MAX))
            CRDTSYNC_WIRE_MEMBER("lastEntryIndex", entry_index, out.last_entry_index = r.unsigned_integer(kp, UINT64_MAX))
            CRDTSYNC_WIRE_MEMBER("completedTables", completed, read(r, kp, out.completed_tables))
            CRDTSYNC_WIRE_MEMBER("entriesProcessed", processed, out.entries_processed = r.unsigned_integer(kp, UINT64_MAX))
            CRDTSYNC_WIRE_MEMBER("createdAt", created, out.created_at = r.unsigned_integer(kp, UINT64_MAX))
            if (key_is(key, "position")) { // crdtsync's addition
                if (r.try_null(kp)) out.position.reset();
                else out.position = r.unsigned_integer(kp, UINT64_MAX);
                return true;
            }
            if (key_is(key, "lastEntry")) { // crdtsync's addition
                if (r.try_null(kp)) out.last_entry.reset();
                else read(r, kp, out.last_entry.emplace());
                return true;
            }
            return false;
        };
        if (!member()) r.skip(kp);
    });
    require(id, p, "snapshotId");
    require(site, p, "siteId");
    require(version, p, "hlc");
    require(table_index, p, "lastTableIndex");
    require(entry_index, p, "lastEntryIndex");
    require(completed, p, "completedTables");
    require(processed, p, "entriesProcessed");
    require(created, p, "createdAt");
}

// ---- messages

inline void read(reader& r, const path& p, msg::handshake& out) {
    bool database = false, site = false, version = false;
    out.token.reset();
    read_typed<msg::handshake>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("databaseId", database, out.database_id = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("siteId", site, read(r, kp, out.site))
        CRDTSYNC_WIRE_MEMBER("protocolVersion", version,
                             out.protocol_version = static_cast<std::uint32_t>(r.unsigned_integer(kp, 0xFFFFFFFFu)))
        if (key_is(key, "token")) {
            read_optional(r, kp, out.token);
            return true;
        }
        return false;
    });
    require(database, p, "databaseId");
    require(site, p, "siteId");
    require(version, p, "protocolVersion");
}

inline void read(reader& r, const path& p, msg::get_changes& out) {
    out.since.reset();
    read_typed<msg::get_changes>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        if (!key_is(key, "sinceHLC")) return false;
        if (r.try_null(kp)) {
            out.since.reset();
            return true;
        }
        if (r.next() == reader::token::string) { // Quereus reads "" as absent
            const auto m = r.mark();
            if (r.string(kp).empty()) {
                out.since.reset();
                return true;
            }
            r.rewind(m);
        }
        out.since.emplace();
        read(r, kp, *out.since);
        return true;
    });
}

inline void read(reader& r, const path& p, msg::apply_changes& out) {
    bool changes = false;
    out.request_id.reset();
    read_typed<msg::apply_changes>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("changes", changes, read(r, kp, out.changes))
        if (key_is(key, "requestId")) {
            read_optional(r, kp, out.request_id);
            return true;
        }
        return false;
    });
    require(changes, p, "changes");
}

template <class Empty>
    requires std::is_empty_v<Empty>
void read(reader& r, const path& p, Empty&) {
    read_typed<Empty>(r, p, "a message object", [](std::string_view, const path&) { return false; });
}

inline void read(reader& r, const path& p, msg::resume_snapshot& out) {
    bool checkpoint = false;
    read_typed<msg::resume_snapshot>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("checkpoint", checkpoint, read(r, kp, out.checkpoint))
        return false;
    });
    require(checkpoint, p, "checkpoint");
}

inline void read(reader& r, const path& p, msg::handshake_ack& out) {
    bool server = false, connection = false, version = false;
    out.database_id.reset();
    read_typed<msg::handshake_ack>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("serverSiteId", server, read(r, kp, out.server_site))
        CRDTSYNC_WIRE_MEMBER("connectionId", connection, out.connection_id = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("protocolVersion", version,
                             out.protocol_version = static_cast<std::uint32_t>(r.unsigned_integer(kp, 0xFFFFFFFFu)))
        if (key_is(key, "databaseId")) {
            read_optional(r, kp, out.database_id);
            return true;
        }
        return false;
    });
    require(server, p, "serverSiteId");
    require(connection, p, "connectionId");
    require(version, p, "protocolVersion");
}

template <class M>
void read_change_sets_message(reader& r, const path& p, M& out) {
    bool sets = false;
    read_typed<M>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("changeSets", sets, read(r, kp, out.change_sets))
        return false;
    });
    require(sets, p, "changeSets");
}

inline void read(reader& r, const path& p, msg::changes& out) { read_change_sets_message(r, p, out); }
inline void read(reader& r, const path& p, msg::push_changes& out) { read_change_sets_message(r, p, out); }

inline void read(reader& r, const path& p, msg::apply_result& out) {
    apply_result_fields seen;
    out.request_id.reset();
    out.result.rejected.clear();
    out.result.unknown_table.reset();
    read_typed<msg::apply_result>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        if (key_is(key, "requestId")) {
            read_optional(r, kp, out.request_id);
            return true;
        }
        return read_apply_result_member(r, key, kp, out.result, seen);
    });
    require_apply_result(seen, p);
}

inline void read(reader& r, const path& p, msg::snapshot_chunk& out) {
    bool chunk = false;
    read_typed<msg::snapshot_chunk>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("chunk", chunk, read(r, kp, out.chunk))
        return false;
    });
    require(chunk, p, "chunk");
}

inline void read(reader& r, const path& p, msg::error& out) {
    bool code = false, message = false;
    out.fatal.reset();
    read_typed<msg::error>(r, p, "a message object", [&](std::string_view key, const path& kp) {
        CRDTSYNC_WIRE_MEMBER("code", code, out.code = r.string(kp))
        CRDTSYNC_WIRE_MEMBER("message", message, out.message = r.string(kp))
        if (key_is(key, "fatal")) {
            if (r.try_null(kp)) out.fatal.reset();
            else out.fatal = r.boolean(kp);
            return true;
        }
        return false;
    });
    require(code, p, "code");
    require(message, p, "message");
}

inline void read(reader& r, const path& p, message& out) { read_variant(r, p, out, "a message object"); }

#undef CRDTSYNC_WIRE_MEMBER

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

template <class Sink>
void write(Sink& s, const change& c) {
    std::visit([&](const auto& x) { write(s, x); }, c);
}

template <class Sink>
void write(Sink& s, const schema_migration& m) {
    s.begin_object();
    s.field("type");
    s.ascii(to_string(m.type));
    s.field("schema");
    s.string(m.schema);
    s.field("table");
    s.string(m.table);
    if (m.from_table) {
        s.field("fromTable");
        s.string(*m.from_table);
    }
    s.field("ddl");
    s.string(m.ddl);
    s.field("hlc");
    write(s, m.version);
    s.field("schemaVersion");
    s.integer(m.schema_version);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const change_set& cs) {
    s.begin_object();
    s.field("siteId");
    write(s, cs.origin);
    s.field("transactionId");
    s.string(cs.transaction_id);
    s.field("hlc");
    write(s, cs.version);
    s.field("changes");
    write(s, cs.changes);
    s.field("schemaMigrations");
    write(s, cs.migrations);
    s.end_object();
}

template <class Sink>
void write_optional_string(Sink& s, std::string_view name, const std::optional<std::string>& v) {
    if (v) {
        s.field(name);
        s.string(*v);
    }
}

/// `transactionId` is a crdtsync addition (Quereus readers ignore it): which
/// change set was rejected. Written only when known.
template <class Sink>
void write(Sink& s, const rejection& r) {
    s.begin_object();
    s.field("reason");
    s.string(r.reason);
    write_optional_string(s, "code", r.code);
    write_optional_string(s, "table", r.table);
    write_optional_string(s, "column", r.column);
    if (!r.transaction_id.empty()) {
        s.field("transactionId");
        s.string(r.transaction_id);
    }
    s.end_object();
}

// `apply_result::unknown_table`: Quereus sends a count of diverted facts;
// these serve whichever of a count or a table name this build keeps.
template <class Sink, class U>
void write_unknown_table(Sink& s, const U& u) {
    if constexpr (std::is_integral_v<U>) s.uinteger(static_cast<std::uint64_t>(u));
    else s.string(u);
}

template <class Sink>
void write_apply_result_members(Sink& s, const apply_result& r) {
    s.field("applied");
    s.uinteger(r.applied);
    s.field("skipped");
    s.uinteger(r.skipped);
    s.field("conflicts");
    s.uinteger(r.conflicts);
    s.field("transactions");
    s.uinteger(r.transactions);
    if (!r.rejected.empty()) {
        s.field("rejected");
        write(s, r.rejected);
    }
    if (r.unknown_table) {
        s.field("unknownTable");
        write_unknown_table(s, *r.unknown_table);
    }
}

template <class Sink>
void write(Sink& s, const apply_result& r) {
    s.begin_object();
    write_apply_result_members(s, r);
    s.end_object();
}

// ---- snapshot chunks

template <class Sink, class Chunk>
void begin_chunk(Sink& s, const Chunk&) {
    s.begin_object();
    s.field("type");
    s.ascii(Chunk::wire_type);
}

template <class Sink>
void write_table_name(Sink& s, const std::string& schema, const std::string& table) {
    s.field("schema");
    s.string(schema);
    s.field("table");
    s.string(table);
}

template <class Sink>
void write(Sink& s, const snapshot_header& h) {
    begin_chunk(s, h);
    s.field("siteId");
    write(s, h.origin);
    s.field("hlc");
    write(s, h.version);
    s.field("snapshotFormat");
    s.uinteger(h.snapshot_format);
    s.field("tableCount");
    s.uinteger(h.table_count);
    s.field("migrationCount");
    s.uinteger(h.migration_count);
    s.field("snapshotId");
    s.string(h.snapshot_id);
    if (h.position) {
        s.field("position");
        s.uinteger(*h.position);
    }
    if (h.receiver_position) {
        s.field("receiverPosition");
        s.uinteger(*h.receiver_position);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_schema_migration& m) {
    begin_chunk(s, m);
    s.field("migration");
    write(s, m.migration);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_table_start& t) {
    begin_chunk(s, t);
    write_table_name(s, t.schema, t.table);
    s.field("estimatedEntries");
    s.uinteger(t.estimated_entries);
    if (t.first_entry != 0) {
        s.field("firstEntry");
        s.uinteger(t.first_entry);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const column_version_entry& e) {
    s.begin_object();
    s.field("column");
    s.string(e.column);
    s.field("hlc");
    write(s, e.version);
    s.field("value");
    write_value(s, e.val);
    s.field("pk");
    write(s, e.pk);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_column_versions& c) {
    begin_chunk(s, c);
    write_table_name(s, c.schema, c.table);
    s.field("entries");
    write(s, c.entries);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_table_end& t) {
    begin_chunk(s, t);
    write_table_name(s, t.schema, t.table);
    s.field("entriesWritten");
    s.uinteger(t.entries_written);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const tombstone_entry& e) {
    s.begin_object();
    s.field("pk");
    write(s, e.pk);
    s.field("hlc");
    write(s, e.version);
    s.field("createdAt");
    s.uinteger(e.created_at);
    if (e.prior_row) {
        s.field("priorRow");
        write(s, *e.prior_row);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_tombstones& t) {
    begin_chunk(s, t);
    write_table_name(s, t.schema, t.table);
    s.field("entries");
    write(s, t.entries);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_footer& f) {
    begin_chunk(s, f);
    s.field("snapshotId");
    s.string(f.snapshot_id);
    s.field("totalTables");
    s.uinteger(f.total_tables);
    s.field("totalEntries");
    s.uinteger(f.total_entries);
    s.field("totalMigrations");
    s.uinteger(f.total_migrations);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const snapshot_chunk& c) {
    std::visit([&](const auto& x) { write(s, x); }, c);
}

template <class Sink>
void write(Sink& s, const snapshot_checkpoint& k) {
    s.begin_object();
    s.field("snapshotId");
    s.string(k.snapshot_id);
    s.field("siteId");
    write(s, k.origin);
    s.field("hlc");
    write(s, k.version);
    s.field("lastTableIndex");
    s.uinteger(k.last_table_index);
    s.field("lastEntryIndex");
    s.uinteger(k.last_entry_index);
    s.field("completedTables");
    write(s, k.completed_tables);
    s.field("entriesProcessed");
    s.uinteger(k.entries_processed);
    s.field("createdAt");
    s.uinteger(k.created_at);
    if (k.position) {
        s.field("position");
        s.uinteger(*k.position);
    }
    if (k.last_entry) {
        s.field("lastEntry");
        s.begin_object();
        s.field("table");
        s.string(k.last_entry->table);
        s.field("pk");
        write(s, k.last_entry->pk);
        s.field("column");
        s.string(k.last_entry->column);
        s.end_object();
    }
    s.end_object();
}

// ---- messages

template <class Sink>
void write(Sink& s, const msg::handshake& m) {
    begin_chunk(s, m);
    s.field("databaseId");
    s.string(m.database_id);
    s.field("siteId");
    write(s, m.site);
    write_optional_string(s, "token", m.token);
    s.field("protocolVersion");
    s.uinteger(m.protocol_version);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::get_changes& m) {
    begin_chunk(s, m);
    if (m.since) {
        s.field("sinceHLC");
        write(s, *m.since);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::apply_changes& m) {
    begin_chunk(s, m);
    s.field("changes");
    write(s, m.changes);
    write_optional_string(s, "requestId", m.request_id);
    s.end_object();
}

template <class Sink, class Empty>
    requires std::is_empty_v<Empty>
void write(Sink& s, const Empty& m) {
    begin_chunk(s, m);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::resume_snapshot& m) {
    begin_chunk(s, m);
    s.field("checkpoint");
    write(s, m.checkpoint);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::handshake_ack& m) {
    begin_chunk(s, m);
    s.field("serverSiteId");
    write(s, m.server_site);
    s.field("connectionId");
    s.string(m.connection_id);
    write_optional_string(s, "databaseId", m.database_id);
    s.field("protocolVersion");
    s.uinteger(m.protocol_version);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::changes& m) {
    begin_chunk(s, m);
    s.field("changeSets");
    write(s, m.change_sets);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::push_changes& m) {
    begin_chunk(s, m);
    s.field("changeSets");
    write(s, m.change_sets);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::apply_result& m) {
    begin_chunk(s, m);
    write_optional_string(s, "requestId", m.request_id);
    write_apply_result_members(s, m.result);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::snapshot_chunk& m) {
    begin_chunk(s, m);
    s.field("chunk");
    write(s, m.chunk);
    s.end_object();
}

template <class Sink>
void write(Sink& s, const msg::error& m) {
    begin_chunk(s, m);
    s.field("code");
    s.string(m.code);
    s.field("message");
    s.string(m.message);
    if (m.fatal) {
        s.field("fatal");
        s.boolean(*m.fatal);
    }
    s.end_object();
}

template <class Sink>
void write(Sink& s, const message& m) {
    std::visit([&](const auto& x) { write(s, x); }, m);
}

} // namespace detail
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
