#pragma once
// What a set of schema migrations defines: the live tables with their
// definitions, the tables dropped, and the columns dropped from each live
// table. A pure function of the set, replayed in HLC order, so every replica
// that holds the same migrations agrees whatever order they arrived in
// (docs/schema.md states the rules; the replica keeps its storage equal to
// the catalog after every migration).
//
// Drops retire a name: a table's name, once dropped, names nothing again
// (a later create of it is ignored), and a column's name, once dropped from
// a table, is never added to it again. That keeps what is dead a function
// that only grows with the set, so data a drop removed never has to come
// back, and facts for a dropped table or column are simply skipped.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <crdtsync/ddl.hpp>
#include <crdtsync/schema.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

struct schema_catalog {
    struct table_entry {
        table_def def;
        std::set<std::string, std::less<>> dropped_columns; // retired: facts for them are skipped
    };
    std::map<std::string, table_entry, std::less<>> tables; // live, by qualified name
    std::set<std::string, std::less<>> dropped;              // qualified names of dropped tables

    [[nodiscard]] static std::string qualified(std::string_view schema, std::string_view table) {
        std::string q(schema);
        q += '.';
        q.append(table);
        return q;
    }
    [[nodiscard]] const table_entry* find(std::string_view q) const {
        const auto it = tables.find(q);
        return it == tables.end() ? nullptr : &it->second;
    }
    [[nodiscard]] bool table_dropped(std::string_view q) const { return dropped.contains(q); }
    [[nodiscard]] bool column_dropped(std::string_view q, std::string_view column) const {
        const auto* e = find(q);
        return e && e->dropped_columns.contains(column);
    }

    /// True when `incoming` may merge into `live`: the same primary key
    /// (column names, types and collations, in key order).
    [[nodiscard]] static bool same_key(const table_def& live, const table_def& incoming) {
        const auto& a = live.key_columns();
        const auto& b = incoming.key_columns();
        if (a.size() != b.size()) return false;
        for (std::size_t k = 0; k < a.size(); ++k) {
            const auto& x = live.columns()[a[k]];
            const auto& y = incoming.columns()[b[k]];
            if (x.name != y.name || x.type != y.type || x.coll != y.coll) return false;
        }
        return true;
    }

    /// The column `alter` makes of `c` (its name kept).
    [[nodiscard]] static column_def altered(column_def c, const ddl_alter_column& alter) {
        using A = ddl_alter_column::action;
        switch (alter.what) {
        case A::set_not_null: c.nullable = false; break;
        case A::drop_not_null: c.nullable = true; break;
        case A::set_type: c.type = alter.type; break;
        case A::set_collation: c.coll = alter.coll; break;
        case A::set_default: c.default_value = alter.default_value; break;
        case A::drop_default: c.default_value.reset(); break;
        }
        return c;
    }
    /// True when `alter` would change what a primary-key column is (type,
    /// collation, NOT NULL): refused, since stored keys would change.
    [[nodiscard]] static bool changes_key(const table_def& def, std::size_t col, const ddl_alter_column& alter) {
        if (!def.is_key_column(col)) return false;
        const auto& c = def.columns()[col];
        const auto a = altered(c, alter);
        return a.type != c.type || a.coll != c.coll || a.nullable != c.nullable;
    }

    /// Replays statements given in HLC order (migrations whose DDL is kept
    /// and forwarded only, such as indexes, left out).
    [[nodiscard]] static schema_catalog replay(const std::vector<ddl_statement>& in_order) {
        schema_catalog c;
        for (const auto& s : in_order) c.apply(s);
        return c;
    }

private:
    // Column changes ordered before every create of their table: applied,
    // in order, right after the first create.
    std::map<std::string, std::vector<ddl_statement>, std::less<>> early_;

    void apply(const ddl_statement& s) {
        std::visit([&](const auto& x) { apply_one(x); }, s);
    }

    void apply_one(const ddl_create_table& x) {
        const auto q = x.def.qualified_name();
        if (dropped.contains(q)) return; // a dropped name names nothing again
        if (auto it = tables.find(q); it != tables.end()) {
            // Another create merges its columns in when the keys agree (the
            // earliest definition of a column wins); another key cannot.
            auto& e = it->second;
            if (!same_key(e.def, x.def)) return;
            for (const auto& col : x.def.columns())
                if (!e.def.find_column(col.name) && !e.dropped_columns.contains(col.name)) e.def.append_column(col);
            return;
        }
        tables.emplace(q, table_entry{x.def, {}});
        if (auto it = early_.find(q); it != early_.end()) {
            const auto early = std::move(it->second);
            early_.erase(it);
            for (const auto& s : early) apply(s);
        }
    }
    void apply_one(const ddl_add_column& x) {
        const auto q = qualified(x.schema, x.table);
        if (auto it = tables.find(q); it != tables.end()) {
            auto& e = it->second;
            if (!e.def.find_column(x.column.name) && !e.dropped_columns.contains(x.column.name)) e.def.append_column(x.column);
        } else if (!dropped.contains(q)) {
            early_[q].emplace_back(x);
        }
    }
    void apply_one(const ddl_drop_column& x) {
        const auto q = qualified(x.schema, x.table);
        if (auto it = tables.find(q); it != tables.end()) {
            auto& e = it->second;
            if (auto i = e.def.find_column(x.column)) {
                if (e.def.is_key_column(*i)) return; // refused where it entered
                e.def.remove_column(*i);
            }
            e.dropped_columns.insert(x.column);
        } else if (!dropped.contains(q)) {
            early_[q].emplace_back(x);
        }
    }
    void apply_one(const ddl_alter_column& x) {
        const auto q = qualified(x.schema, x.table);
        if (auto it = tables.find(q); it != tables.end()) {
            auto& e = it->second;
            const auto i = e.def.find_column(x.column);
            if (!i || changes_key(e.def, *i, x)) return; // a column not there (yet, in HLC order) is not altered
            e.def.replace_column(*i, altered(e.def.columns()[*i], x));
        } else if (!dropped.contains(q)) {
            early_[q].emplace_back(x);
        }
    }
    void apply_one(const ddl_drop_table& x) {
        const auto q = qualified(x.schema, x.table);
        tables.erase(q);
        early_.erase(q);
        dropped.insert(q);
    }
    // Refused where they enter (RENAME TABLE), or kept and forwarded only
    // (indexes): no effect on the tables.
    void apply_one(const ddl_rename_table&) {}
    void apply_one(const ddl_create_index&) {}
    void apply_one(const ddl_drop_index&) {}
};

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
