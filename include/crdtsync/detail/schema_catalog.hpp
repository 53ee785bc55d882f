#pragma once
// What a set of schema migrations defines: the live tables with their
// definitions, the tables dropped, and the columns dropped from each live
// table. A pure function of the set, replayed in HLC order, so every replica
// that holds the same migrations agrees whatever order they arrived in
// (docs/schema.md states the rules; the replica keeps its storage equal to
// the catalog after every migration).
//
// Renames join names: every name a RENAME TABLE links to another names one
// table, whatever the HLC order, and the table is called by the target of
// its latest rename. Its earlier names stay its aliases (a fact or a column
// change under one lands in it). Joining, never splitting, keeps the tables
// a function that only merges as migrations arrive: rows never have to be
// split apart again.
//
// Drops retire a name: a table's name, once dropped, names nothing again
// (a later create of it is ignored), and a column's name, once dropped from
// a table, is never added to it again. A drop of any of a table's names
// drops the table. That keeps what is dead a function that only grows with
// the set, so data a drop removed never has to come back, and facts for a
// dropped table or column are simply skipped.

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
    std::map<std::string, table_entry, std::less<>> tables;   // live, by qualified name
    std::set<std::string, std::less<>> dropped;                // qualified names of dropped tables (all their names)
    std::map<std::string, std::string, std::less<>> renamed;   // a live table's earlier names -> its name now
    std::map<std::string, table_def, std::less<>> graves;      // a dropped table's names -> its first create (its key)

    [[nodiscard]] static std::string qualified(std::string_view schema, std::string_view table) {
        std::string q(schema);
        q += '.';
        q.append(table);
        return q;
    }
    /// The live table named `q` now (an earlier name finds nothing).
    [[nodiscard]] const table_entry* find(std::string_view q) const {
        const auto it = tables.find(q);
        return it == tables.end() ? nullptr : &it->second;
    }
    /// The name now of the live table `q` names (`q` itself, or the name a
    /// rename gave the table `q` named); empty when `q` names no live table.
    [[nodiscard]] std::string_view live_name(std::string_view q) const {
        // Always a view of a name stored here, never of `q` (callers pass
        // temporaries).
        if (const auto t = tables.find(q); t != tables.end()) return t->first;
        const auto it = renamed.find(q);
        return it == renamed.end() ? std::string_view{} : std::string_view(it->second);
    }
    [[nodiscard]] bool table_dropped(std::string_view q) const { return dropped.contains(q); }
    /// The first create of the dropped table `q` named: a dropped name
    /// keeps its primary key. Null when `q` is live, unknown, or was dropped
    /// without a create here.
    [[nodiscard]] const table_def* dropped_definition(std::string_view q) const {
        const auto it = graves.find(q);
        return it == graves.end() ? nullptr : &it->second;
    }
    [[nodiscard]] bool column_dropped(std::string_view q, std::string_view column) const {
        const auto* e = find(live_name(q));
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
        c.join(in_order);
        for (const auto& s : in_order) c.apply(s);
        c.finish();
        return c;
    }

private:
    // The names a table has had, joined by renames (union-find: a name to
    // another name of its table; a root maps to nothing). During the replay
    // `tables` and `early_` are keyed by root; `finish` keys `tables` by the
    // name now.
    std::map<std::string, std::string, std::less<>> parent_;
    std::set<std::string, std::less<>> names_;                      // every table name a statement uses
    std::map<std::string, std::pair<std::string, std::string>, std::less<>> now_; // root -> (qualified, table) of its latest rename's target
    std::set<std::string, std::less<>> dead_;                       // roots of dropped tables
    std::map<std::string, table_def, std::less<>> dead_defs_;       // root of a dropped table -> its first create

    [[nodiscard]] std::string root(std::string_view q) const {
        std::string r(q);
        for (auto it = parent_.find(r); it != parent_.end(); it = parent_.find(r)) r = it->second;
        return r;
    }
    /// The table root of the table `schema.table` names during the replay.
    [[nodiscard]] std::string table_of(std::string_view schema, std::string_view table) const {
        return root(qualified(schema, table));
    }

    /// Joins the names renames link, names each table by its latest
    /// rename's target, and marks the tables a drop names: all before the
    /// replay, so neither depends on where in HLC order a statement falls.
    void join(const std::vector<ddl_statement>& in_order) {
        for (const auto& s : in_order)
            std::visit(
                [&](const auto& x) {
                    using S = std::decay_t<decltype(x)>;
                    if constexpr (std::is_same_v<S, ddl_create_table>) names_.insert(x.def.qualified_name());
                    else if constexpr (std::is_same_v<S, ddl_rename_table>) {
                        auto a = qualified(x.schema, x.from), b = qualified(x.schema, x.to);
                        names_.insert(a);
                        names_.insert(b);
                        a = root(a);
                        b = root(b);
                        if (a != b) parent_.emplace(std::max(a, b), std::min(a, b));
                    } else if constexpr (!std::is_same_v<S, ddl_create_index> && !std::is_same_v<S, ddl_drop_index>)
                        names_.insert(qualified(x.schema, x.table));
                },
                s);
        for (const auto& s : in_order)
            if (const auto* x = std::get_if<ddl_rename_table>(&s)) now_[table_of(x->schema, x->to)] = {qualified(x->schema, x->to), x->to};
            else if (const auto* d = std::get_if<ddl_drop_table>(&s)) dead_.insert(table_of(d->schema, d->table));
    }

    /// Keys the live tables by their names now, and lists the dropped
    /// tables' names and the live tables' earlier names.
    void finish() {
        std::map<std::string, table_entry, std::less<>> live;
        std::map<std::string, std::string, std::less<>> name_of; // root -> name now
        for (auto& [r, e] : tables) {
            auto it = now_.find(r);
            std::string q = r;
            if (it != now_.end()) {
                q = it->second.first;
                e.def.rename(it->second.second);
            }
            name_of.emplace(r, q);
            live.emplace(std::move(q), std::move(e));
        }
        tables = std::move(live);
        for (const auto& n : names_) {
            const auto r = root(n);
            if (dead_.contains(r)) {
                dropped.insert(n);
                if (auto d = dead_defs_.find(r); d != dead_defs_.end()) graves.emplace(n, d->second);
            } else if (auto it = name_of.find(r); it != name_of.end() && it->second != n) renamed.emplace(n, it->second);
        }
        early_.clear();
    }

    // Column changes ordered before every create of their table: applied,
    // in order, right after the first create.
    std::map<std::string, std::vector<ddl_statement>, std::less<>> early_;

    void apply(const ddl_statement& s) {
        std::visit([&](const auto& x) { apply_one(x); }, s);
    }

    void apply_one(const ddl_create_table& x) {
        const auto q = table_of(x.def.schema_name(), x.def.name());
        if (dead_.contains(q)) { // a dropped name names nothing again; it keeps its first create's key
            dead_defs_.try_emplace(q, x.def);
            return;
        }
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
        const auto q = table_of(x.schema, x.table);
        if (auto it = tables.find(q); it != tables.end()) {
            auto& e = it->second;
            if (!e.def.find_column(x.column.name) && !e.dropped_columns.contains(x.column.name)) e.def.append_column(x.column);
        } else if (!dead_.contains(q)) {
            early_[q].emplace_back(x);
        }
    }
    void apply_one(const ddl_drop_column& x) {
        const auto q = table_of(x.schema, x.table);
        if (auto it = tables.find(q); it != tables.end()) {
            auto& e = it->second;
            if (auto i = e.def.find_column(x.column)) {
                if (e.def.is_key_column(*i)) return; // refused where it entered
                e.def.remove_column(*i);
            }
            e.dropped_columns.insert(x.column);
        } else if (!dead_.contains(q)) {
            early_[q].emplace_back(x);
        }
    }
    void apply_one(const ddl_alter_column& x) {
        const auto q = table_of(x.schema, x.table);
        if (auto it = tables.find(q); it != tables.end()) {
            auto& e = it->second;
            const auto i = e.def.find_column(x.column);
            if (!i || changes_key(e.def, *i, x)) return; // a column not there (yet, in HLC order) is not altered
            e.def.replace_column(*i, altered(e.def.columns()[*i], x));
        } else if (!dead_.contains(q)) {
            early_[q].emplace_back(x);
        }
    }
    // Drops and renames took effect in `join`; indexes are kept and
    // forwarded only.
    void apply_one(const ddl_drop_table&) {}
    void apply_one(const ddl_rename_table&) {}
    void apply_one(const ddl_create_index&) {}
    void apply_one(const ddl_drop_index&) {}
};

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
