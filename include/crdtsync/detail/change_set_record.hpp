#pragma once
// A change set as one stored record (the replica's quarantine of change sets
// for tables or columns it does not know yet, docs/schema.md). Internal: the
// wire form is JSON (crdtsync/wire/json.hpp); this one is the key codec's
// tuple encoding, compact and exact for every value kind, and has no
// dependency on the wire codec.
//
//   u8 format(1), origin(16), transaction id, version(30), migration count,
//   change count, then per migration:
//     type, schema, table, from table (null: none), ddl, hlc(30), schema version
//   per change:
//     0 (column): schema, table, pk tuple, hlc(30), column, value, prior flag, [prior value, prior hlc(30)]
//     1 (delete): schema, table, pk tuple, hlc(30), prior row tuple (null: none)

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <crdtsync/change.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/key.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

namespace change_set_record_detail {
inline value hlc_value(const hlc& h) {
    std::string b;
    h.append_bytes(b);
    return value{blob{std::move(b)}};
}
[[noreturn]] inline void malformed() { raise(errc::storage, "a stored held change set record is malformed"); }
inline value tuple_value(const row_key& pk) { return value{blob{key_codec::encode(std::span<const value>(pk))}}; }
} // namespace change_set_record_detail

[[nodiscard]] inline std::string encode_change_set_record(const change_set& cs) {
    using namespace change_set_record_detail;
    std::vector<value> f;
    f.reserve(6 + cs.migrations.size() * 7 + cs.changes.size() * 9);
    f.insert(f.end(), {value{std::int64_t{1}}, value{blob{std::string(cs.origin.view())}}, value{cs.transaction_id},
                       hlc_value(cs.version), value{static_cast<std::int64_t>(cs.migrations.size())},
                       value{static_cast<std::int64_t>(cs.changes.size())}});
    for (const auto& m : cs.migrations)
        f.insert(f.end(), {value{static_cast<std::int64_t>(m.type)}, value{m.schema}, value{m.table},
                           m.from_table ? value{*m.from_table} : value{}, value{m.ddl}, hlc_value(m.version),
                           value{m.schema_version}});
    for (const auto& c : cs.changes) {
        if (const auto* cc = std::get_if<column_change>(&c)) {
            f.insert(f.end(), {value{std::int64_t{0}}, value{cc->schema}, value{cc->table}, tuple_value(cc->pk),
                               hlc_value(cc->version), value{cc->column}, cc->val,
                               value{cc->prior_value && cc->prior_version}});
            if (cc->prior_value && cc->prior_version) f.insert(f.end(), {*cc->prior_value, hlc_value(*cc->prior_version)});
        } else {
            const auto& d = std::get<row_delete>(c);
            f.insert(f.end(), {value{std::int64_t{1}}, value{d.schema}, value{d.table}, tuple_value(d.pk),
                               hlc_value(d.version), d.prior_row ? tuple_value(*d.prior_row) : value{}});
        }
    }
    return key_codec::encode(std::span<const value>(f));
}

/// \throws storage_error (`errc::storage`) when the record is malformed.
[[nodiscard]] inline change_set decode_change_set_record(std::string_view rec) {
    const auto f = key_codec::decode(rec);
    std::size_t at = 0;
    auto bad = [] { change_set_record_detail::malformed(); };
    auto next = [&]() -> const value& {
        if (at >= f.size()) bad();
        return f[at++];
    };
    auto text = [&] {
        const auto& v = next();
        if (v.kind() != value_kind::text) bad();
        return v.as_text();
    };
    auto integer = [&] {
        const auto& v = next();
        if (v.kind() != value_kind::integer) bad();
        return v.as_integer();
    };
    auto bytes = [&]() -> const std::string& {
        const auto& v = next();
        if (v.kind() != value_kind::blob) bad();
        return v.as_blob().bytes;
    };
    auto version = [&] { return hlc::from_bytes(bytes()); };
    auto tuple = [&] { return key_codec::decode(bytes()); };
    if (integer() != 1) bad();
    change_set cs;
    cs.origin = site_id::from_bytes(bytes());
    cs.transaction_id = text();
    cs.version = version();
    const auto migrations = integer(), changes = integer();
    if (migrations < 0 || changes < 0 || static_cast<std::uint64_t>(migrations + changes) > f.size()) bad();
    for (std::int64_t i = 0; i < migrations; ++i) {
        schema_migration m;
        const auto type = integer();
        if (type < 0 || type > static_cast<std::int64_t>(migration_kind::drop_index)) bad();
        m.type = static_cast<migration_kind>(type);
        m.schema = text();
        m.table = text();
        if (const auto& from = next(); !from.is_null()) {
            if (from.kind() != value_kind::text) bad();
            m.from_table = from.as_text();
        }
        m.ddl = text();
        m.version = version();
        m.schema_version = integer();
        cs.migrations.push_back(std::move(m));
    }
    for (std::int64_t i = 0; i < changes; ++i) {
        const auto kind = integer();
        if (kind == 0) {
            column_change c;
            c.schema = text();
            c.table = text();
            c.pk = tuple();
            c.version = version();
            c.column = text();
            c.val = next();
            const auto& prior = next();
            if (prior.kind() != value_kind::boolean) bad();
            if (prior.as_bool()) {
                c.prior_value = next();
                c.prior_version = version();
            }
            cs.changes.emplace_back(std::move(c));
        } else if (kind == 1) {
            row_delete d;
            d.schema = text();
            d.table = text();
            d.pk = tuple();
            d.version = version();
            if (const auto& prior = next(); !prior.is_null()) {
                if (prior.kind() != value_kind::blob) bad();
                d.prior_row = key_codec::decode(prior.as_blob().bytes);
            }
            cs.changes.emplace_back(std::move(d));
        } else {
            bad();
        }
    }
    if (at != f.size()) bad();
    return cs;
}

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
