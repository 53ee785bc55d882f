#pragma once
/// \file ddl.hpp
/// `ddl_statement`: the DDL text of every schema migration kind, read with
/// `parse_ddl` and written with `to_ddl`. Quereus replicas send only the
/// text, so the parser reads what Quereus writes (lowercase keywords,
/// identifiers quoted only when needed, `alter table items ...` unqualified
/// for schema main) and the writer writes one canonical text that Quereus
/// reads back (keywords upper case, every identifier double-quoted, every
/// table qualified):
///
/// | statement            | canonical text                                                        |
/// |----------------------|-----------------------------------------------------------------------|
/// | `ddl_create_table`   | `table_def::to_ddl()`: `CREATE TABLE "main"."items" (...) USING store` |
/// | `ddl_drop_table`     | `DROP TABLE "main"."items"`                                           |
/// | `ddl_rename_table`   | `ALTER TABLE "main"."items" RENAME TO "things"`                       |
/// | `ddl_add_column`     | `ALTER TABLE "main"."items" ADD COLUMN "note" TEXT NULL`              |
/// | `ddl_drop_column`    | `ALTER TABLE "main"."items" DROP COLUMN "note"`                       |
/// | `ddl_alter_column`   | `ALTER TABLE "main"."items" ALTER COLUMN "x" SET NOT NULL` (or DROP NOT NULL, SET DATA TYPE INTEGER, SET COLLATE NOCASE, SET DEFAULT 0, DROP DEFAULT) |
/// | `ddl_create_index`   | `CREATE [UNIQUE] INDEX "idx" ON "main"."items" ("a", "b")`            |
/// | `ddl_drop_index`     | `DROP INDEX "main"."idx"`                                             |
///
/// Two kinds of failure, both `schema_error` with `errc::schema`, told apart
/// by the message:
/// - malformed text: the message starts with `DDL: ` and names the offset
///   (`DDL: expected TABLE or INDEX after CREATE at offset 7 in "..."`);
/// - well-formed text crdtsync does not replicate (ADD CONSTRAINT, RENAME
///   COLUMN, CREATE VIEW / TRIGGER, an index on an expression...): the
///   message starts with `unsupported DDL: `.

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <crdtsync/change.hpp>
#include <crdtsync/detail/ddl_lexer.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/schema.hpp>
#include <crdtsync/value.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// `CREATE TABLE [IF NOT EXISTS] ...` (see `table_def::from_ddl`).
struct ddl_create_table {
    table_def def;
    friend bool operator==(const ddl_create_table&, const ddl_create_table&) = default;
};
/// `DROP TABLE [IF EXISTS] [schema.]table`
struct ddl_drop_table {
    std::string schema = "main";
    std::string table;
    friend bool operator==(const ddl_drop_table&, const ddl_drop_table&) = default;
};
/// `ALTER TABLE [schema.]from RENAME TO to` (a migration's `fromTable` is
/// `from`, its `table` is `to`).
struct ddl_rename_table {
    std::string schema = "main";
    std::string from;
    std::string to;
    friend bool operator==(const ddl_rename_table&, const ddl_rename_table&) = default;
};
/// `ALTER TABLE [schema.]table ADD [COLUMN] column-definition` (a column
/// without NULL / NOT NULL is NOT NULL, as in Quereus).
struct ddl_add_column {
    std::string schema = "main";
    std::string table;
    column_def column;
    friend bool operator==(const ddl_add_column&, const ddl_add_column&) = default;
};
/// `ALTER TABLE [schema.]table DROP [COLUMN] column`
struct ddl_drop_column {
    std::string schema = "main";
    std::string table;
    std::string column;
    friend bool operator==(const ddl_drop_column&, const ddl_drop_column&) = default;
};
/// `ALTER TABLE [schema.]table ALTER [COLUMN] column <action>`, the action
/// one of SET NOT NULL, DROP NOT NULL, SET DATA TYPE <type>, SET COLLATE
/// <collation>, SET DEFAULT <literal>, DROP DEFAULT. Only the field of the
/// action is read (`type` for set_type, `coll` for set_collation,
/// `default_value` for set_default, where none is `SET DEFAULT NULL`); the
/// parser leaves the others at their defaults, and `parse_ddl(to_ddl(s)) == s`
/// holds when they are.
struct ddl_alter_column {
    std::string schema = "main";
    std::string table;
    std::string column;
    enum class action : std::uint8_t { set_not_null, drop_not_null, set_type, set_collation, set_default, drop_default };
    action what = action::set_not_null;
    column_type type = column_type::any;
    collation coll = collation::binary;
    std::optional<value> default_value;
    friend bool operator==(const ddl_alter_column&, const ddl_alter_column&) = default;
};
/// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [schema.]index ON [schema.]table
/// (column [COLLATE c] [ASC | DESC], ...) [WHERE ...]`. `columns` are the
/// indexed column names in order. `text` is the statement as received,
/// kept only when the fields do not say all it says (a DESC, a COLLATE, a
/// WHERE predicate or WITH TAGS), and then `to_ddl` writes it back verbatim;
/// otherwise it is empty and `to_ddl` writes the canonical form. The
/// schema is the table's (or the index's when only the index is qualified).
struct ddl_create_index {
    std::string schema = "main";
    std::string index;
    std::string table;
    std::vector<std::string> columns;
    bool unique = false;
    std::string text;
    friend bool operator==(const ddl_create_index&, const ddl_create_index&) = default;
};
/// `DROP INDEX [IF EXISTS] [schema.]index`
struct ddl_drop_index {
    std::string schema = "main";
    std::string index;
    friend bool operator==(const ddl_drop_index&, const ddl_drop_index&) = default;
};

/// One DDL statement of a schema migration.
using ddl_statement = std::variant<ddl_create_table, ddl_drop_table, ddl_rename_table, ddl_add_column, ddl_drop_column,
                                   ddl_alter_column, ddl_create_index, ddl_drop_index>;

namespace detail {

inline std::string ddl_qualified(const std::string& schema, const std::string& name) {
    return table_def::quote(schema) + "." + table_def::quote(name);
}

/// After ALTER TABLE name: one action.
inline ddl_statement parse_alter_table(ddl_lexer& lx, std::string schema, std::string table) {
    if (lx.accept_word("RENAME")) {
        if (lx.accept_word("TO")) {
            auto to = lx.identifier();
            lx.expect_end();
            return ddl_rename_table{std::move(schema), std::move(table), std::move(to)};
        }
        lx.unsupported("ALTER TABLE ... RENAME COLUMN (a renamed column does not replicate)");
    }
    if (lx.accept_word("ADD")) {
        const bool column_word = lx.accept_word("COLUMN");
        if (!column_word)
            for (auto w : {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"})
                if (lx.peek_word(w)) lx.unsupported("ALTER TABLE ... ADD " + std::string(w) + " (table constraints do not replicate)");
        bool is_key = false;
        auto c = parse_column_def(lx, is_key, table);
        if (is_key) lx.fail("an added column cannot be part of the primary key");
        lx.expect_end();
        return ddl_add_column{std::move(schema), std::move(table), std::move(c)};
    }
    if (lx.accept_word("DROP")) {
        if (!lx.accept_word("COLUMN") && lx.peek_word("CONSTRAINT"))
            lx.unsupported("ALTER TABLE ... DROP CONSTRAINT (table constraints do not replicate)");
        auto column = lx.identifier();
        lx.expect_end();
        return ddl_drop_column{std::move(schema), std::move(table), std::move(column)};
    }
    if (lx.accept_word("ALTER")) {
        if (!lx.accept_word("COLUMN") && lx.peek_word("PRIMARY"))
            lx.unsupported("ALTER TABLE ... ALTER PRIMARY KEY (a changed key does not replicate)");
        ddl_alter_column a;
        a.schema = std::move(schema);
        a.table = std::move(table);
        a.column = lx.identifier();
        using act = ddl_alter_column::action;
        const auto expected = "expected SET NOT NULL, DROP NOT NULL, SET DATA TYPE, SET COLLATE, SET DEFAULT or DROP DEFAULT";
        if (lx.accept_word("SET")) {
            if (lx.accept_word("NOT")) {
                lx.expect_word("NULL");
                a.what = act::set_not_null;
            } else if (lx.accept_word("DATA")) {
                lx.expect_word("TYPE");
                a.what = act::set_type;
                a.type = parse_column_type(lx);
            } else if (lx.accept_word("COLLATE")) {
                a.what = act::set_collation;
                a.coll = parse_collation(lx, "column \"" + a.column + "\"");
            } else if (lx.accept_word("DEFAULT")) {
                a.what = act::set_default;
                a.default_value = parse_default(lx, a.column);
            } else {
                lx.fail(expected);
            }
        } else if (lx.accept_word("DROP")) {
            if (lx.accept_word("NOT")) {
                lx.expect_word("NULL");
                a.what = act::drop_not_null;
            } else if (lx.accept_word("DEFAULT")) {
                a.what = act::drop_default;
            } else {
                lx.fail(expected);
            }
        } else {
            lx.fail(expected);
        }
        lx.expect_end();
        return a;
    }
    for (auto w : {"SET", "OWNER", "ENABLE", "DISABLE"})
        if (lx.peek_word(w)) lx.unsupported("ALTER TABLE ... " + ddl_lexer::upper(w));
    lx.fail("expected RENAME, ADD, DROP or ALTER after ALTER TABLE " + table);
}

/// After CREATE [UNIQUE] INDEX.
inline ddl_statement parse_create_index(ddl_lexer& lx, bool unique) {
    if (lx.accept_word("IF")) { lx.expect_word("NOT"); lx.expect_word("EXISTS"); }
    auto [index_schema, index] = lx.qualified_name();
    lx.expect_word("ON");
    auto [table_schema, table] = lx.qualified_name();
    if (!index_schema.empty() && !table_schema.empty() && index_schema != table_schema)
        lx.fail("index " + index_schema + "." + index + " is not in the schema of its table " + table_schema + "." + table);
    ddl_create_index out;
    out.schema = !table_schema.empty() ? table_schema : !index_schema.empty() ? index_schema : "main";
    out.index = std::move(index);
    out.table = std::move(table);
    out.unique = unique;
    bool lossy = false;
    lx.expect('(');
    do {
        if (lx.peek_char() == '(') lx.unsupported("an index on an expression");
        out.columns.push_back(lx.identifier());
        if (lx.peek_char() == '(') lx.unsupported("an index on an expression");
        if (lx.accept_word("COLLATE")) {
            (void)parse_collation(lx, "index " + out.index);
            lossy = true;
        }
        if (lx.accept_word("DESC")) lossy = true;
        else (void)lx.accept_word("ASC");
    } while (lx.accept(','));
    lx.expect(')');
    if (!lx.at_end()) {
        if (lx.accept_word("WHERE")) {
            if (lx.at_end()) lx.fail("expected a predicate after WHERE");
        } else if (lx.accept_word("WITH")) {
            lx.expect_word("TAGS");
        } else {
            lx.expect_end();
        }
        lossy = true; // the rest is kept as written, not parsed
    }
    if (lossy) {
        std::string_view t = lx.s;
        while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
        while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
        out.text = std::string(t);
    }
    return out;
}

inline std::string alter_column_action_ddl(const ddl_alter_column& a) {
    using act = ddl_alter_column::action;
    switch (a.what) {
    case act::set_not_null: return "SET NOT NULL";
    case act::drop_not_null: return "DROP NOT NULL";
    case act::set_type: return "SET DATA TYPE " + std::string(to_text(a.type));
    case act::set_collation: return "SET COLLATE " + std::string(to_text(a.coll));
    case act::set_default: return "SET DEFAULT " + ddl_lexer::literal_text(a.default_value.value_or(value{}));
    case act::drop_default: return "DROP DEFAULT";
    }
    detail::raise(errc::invalid_argument, "ddl_alter_column: unknown action " + std::to_string(static_cast<int>(a.what)));
}

} // namespace detail

/// Parses one DDL statement of the forms above (keywords in any case,
/// identifiers bare or quoted with "", `` or []; no trailing ';').
/// \throws schema_error (`errc::schema`): malformed text with a message
/// starting `DDL: ` that names the offset, or a well-formed statement
/// crdtsync does not replicate with a message starting `unsupported DDL: `.
[[nodiscard]] inline ddl_statement parse_ddl(std::string_view text) {
    detail::ddl_lexer lx{text};
    if (lx.accept_word("CREATE")) {
        if (lx.peek_word("TABLE")) return ddl_create_table{table_def::from_ddl(text)};
        const bool unique = lx.accept_word("UNIQUE");
        if (lx.accept_word("INDEX")) return detail::parse_create_index(lx, unique);
        if (unique) lx.fail("expected INDEX after CREATE UNIQUE");
        for (auto w : {"VIEW", "TRIGGER", "VIRTUAL", "TEMP", "TEMPORARY", "MATERIALIZED", "ASSERTION", "SCHEMA"})
            if (lx.peek_word(w)) lx.unsupported("CREATE " + detail::ddl_lexer::upper(w));
        lx.fail("expected TABLE or INDEX after CREATE");
    }
    if (lx.accept_word("DROP")) {
        const bool table = lx.accept_word("TABLE");
        if (!table && !lx.accept_word("INDEX")) {
            for (auto w : {"VIEW", "TRIGGER", "MATERIALIZED", "ASSERTION", "SCHEMA"})
                if (lx.peek_word(w)) lx.unsupported("DROP " + detail::ddl_lexer::upper(w));
            lx.fail("expected TABLE or INDEX after DROP");
        }
        if (lx.accept_word("IF")) lx.expect_word("EXISTS");
        auto [schema, name] = lx.qualified_name();
        lx.expect_end();
        if (schema.empty()) schema = "main";
        if (table) return ddl_drop_table{std::move(schema), std::move(name)};
        return ddl_drop_index{std::move(schema), std::move(name)};
    }
    if (lx.accept_word("ALTER")) {
        if (!lx.accept_word("TABLE")) {
            for (auto w : {"INDEX", "VIEW", "MATERIALIZED", "SCHEMA"})
                if (lx.peek_word(w)) lx.unsupported("ALTER " + detail::ddl_lexer::upper(w));
            lx.fail("expected TABLE after ALTER");
        }
        auto [schema, table] = lx.qualified_name();
        return detail::parse_alter_table(lx, schema.empty() ? "main" : std::move(schema), std::move(table));
    }
    lx.fail("expected CREATE, DROP or ALTER");
}

/// The canonical text of `s` (see the file comment); `parse_ddl` reads it
/// back as `s`. A `ddl_create_index` with `text` writes that text.
[[nodiscard]] inline std::string to_ddl(const ddl_statement& s) {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            using detail::ddl_qualified;
            if constexpr (std::is_same_v<T, ddl_create_table>) {
                return x.def.to_ddl();
            } else if constexpr (std::is_same_v<T, ddl_drop_table>) {
                return "DROP TABLE " + ddl_qualified(x.schema, x.table);
            } else if constexpr (std::is_same_v<T, ddl_rename_table>) {
                return "ALTER TABLE " + ddl_qualified(x.schema, x.from) + " RENAME TO " + table_def::quote(x.to);
            } else if constexpr (std::is_same_v<T, ddl_add_column>) {
                // table_def::add_column_to_ddl writes the same.
                return "ALTER TABLE " + ddl_qualified(x.schema, x.table) + " ADD COLUMN " + table_def::column_ddl(x.column);
            } else if constexpr (std::is_same_v<T, ddl_drop_column>) {
                return "ALTER TABLE " + ddl_qualified(x.schema, x.table) + " DROP COLUMN " + table_def::quote(x.column);
            } else if constexpr (std::is_same_v<T, ddl_alter_column>) {
                return "ALTER TABLE " + ddl_qualified(x.schema, x.table) + " ALTER COLUMN " + table_def::quote(x.column) + " " +
                       detail::alter_column_action_ddl(x);
            } else if constexpr (std::is_same_v<T, ddl_create_index>) {
                if (!x.text.empty()) return x.text;
                std::string out = std::string("CREATE ") + (x.unique ? "UNIQUE " : "") + "INDEX " + table_def::quote(x.index) +
                                  " ON " + ddl_qualified(x.schema, x.table) + " (";
                for (std::size_t i = 0; i < x.columns.size(); ++i) out += (i ? ", " : "") + table_def::quote(x.columns[i]);
                return out + ")";
            } else {
                static_assert(std::is_same_v<T, ddl_drop_index>);
                return "DROP INDEX " + ddl_qualified(x.schema, x.index);
            }
        },
        s);
}

/// The migration `type` a statement travels with, as Quereus sends it:
/// every ALTER TABLE except RENAME TO (add, drop and alter column) is
/// `alter_column`.
[[nodiscard]] inline migration_kind migration_kind_of(const ddl_statement& s) noexcept {
    return std::visit(
        [](const auto& x) noexcept {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, ddl_create_table>) return migration_kind::create_table;
            else if constexpr (std::is_same_v<T, ddl_drop_table>) return migration_kind::drop_table;
            else if constexpr (std::is_same_v<T, ddl_rename_table>) return migration_kind::rename_table;
            else if constexpr (std::is_same_v<T, ddl_create_index>) return migration_kind::add_index;
            else if constexpr (std::is_same_v<T, ddl_drop_index>) return migration_kind::drop_index;
            else return migration_kind::alter_column; // add, drop and alter column
        },
        s);
}

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
