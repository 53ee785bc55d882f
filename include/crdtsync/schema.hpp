#pragma once
/// \file schema.hpp
/// `table_def`: a table's definition (schema name, table name, columns with
/// types, nullability and collation, a primary key of one or more columns),
/// its canonical DDL text, and a parser for the DDL subset that travels in
/// schema migrations (CREATE TABLE, ALTER TABLE ... ADD COLUMN). The other
/// migration statements (DROP TABLE, RENAME, DROP / ALTER COLUMN, indexes)
/// are in ddl.hpp.

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <crdtsync/detail/ddl_lexer.hpp>
#include <crdtsync/detail/endian.hpp>
#include <crdtsync/detail/unicode_lower.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/value.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// Declared column type. Values are stored as given, except for numbers,
/// which are stored as they read back from the wire (see `table_def::coerce`):
/// an integer written to a REAL column becomes a real (the Quereus wire sends
/// 2.0 as 2), a real 2.0 written to any other column becomes the integer 2.
enum class column_type : std::uint8_t { any, integer, real, text, blob, boolean, json };

/// Key collation: how primary-key text values are compared, and so which
/// keys name the same row. NOCASE folds case as Quereus does, with
/// JavaScript's `toLowerCase()` (every Unicode letter, not only ASCII as in
/// SQLite: 'Ü' and 'ü' are one key); RTRIM ignores trailing spaces.
enum class collation : std::uint8_t { binary, nocase, rtrim };

[[nodiscard]] constexpr std::string_view to_text(column_type t) noexcept {
    switch (t) {
    case column_type::any: return "ANY";
    case column_type::integer: return "INTEGER";
    case column_type::real: return "REAL";
    case column_type::text: return "TEXT";
    case column_type::blob: return "BLOB";
    case column_type::boolean: return "BOOLEAN";
    case column_type::json: return "JSON";
    }
    return "ANY";
}
/// The old name of `to_text(column_type)`.
[[deprecated("use to_text")]] [[nodiscard]] constexpr std::string_view to_string(column_type v) noexcept { return to_text(v); }
[[nodiscard]] constexpr std::string_view to_text(collation c) noexcept {
    switch (c) {
    case collation::binary: return "BINARY";
    case collation::nocase: return "NOCASE";
    case collation::rtrim: return "RTRIM";
    }
    return "BINARY";
}
/// The old name of `to_text(collation)`.
[[deprecated("use to_text")]] [[nodiscard]] constexpr std::string_view to_string(collation v) noexcept { return to_text(v); }

struct column_def {
    std::string name;
    column_type type = column_type::any;
    bool nullable = true;
    collation coll = collation::binary;
    /// A literal DEFAULT (as written: an integer default of a REAL column
    /// stays an integer here). None: no default; `DEFAULT NULL` reads as
    /// none. Only literals: an expression would differ per replica.
    std::optional<value> default_value{};
    friend bool operator==(const column_def&, const column_def&) = default;
};

namespace detail {

/// The column type a declared type name means (SQLite's affinity rules,
/// plus BOOLEAN and JSON; an unknown name is ANY).
[[nodiscard]] inline column_type column_type_from_name(std::string name) {
    name = ddl_lexer::upper(std::move(name));
    if (name.empty() || name == "ANY") return column_type::any;
    if (name == "BOOLEAN" || name == "BOOL") return column_type::boolean;
    if (name == "JSON") return column_type::json;
    if (name.find("INT") != std::string::npos) return column_type::integer;
    if (name.find("CHAR") != std::string::npos || name.find("CLOB") != std::string::npos ||
        name.find("TEXT") != std::string::npos) return column_type::text;
    if (name.find("BLOB") != std::string::npos) return column_type::blob;
    if (name.find("REAL") != std::string::npos || name.find("FLOA") != std::string::npos ||
        name.find("DOUB") != std::string::npos) return column_type::real;
    return column_type::any;
}

/// Reads a declared type name (`VARCHAR(20)` reads as TEXT).
[[nodiscard]] inline column_type parse_column_type(ddl_lexer& lx) {
    auto name = lx.bare_word();
    if (name.empty()) lx.fail("expected a type name");
    if (lx.accept('(')) lx.skip_balanced();
    return column_type_from_name(std::move(name));
}

/// Reads a collation name: BINARY, NOCASE or RTRIM.
[[nodiscard]] inline collation parse_collation(ddl_lexer& lx, const std::string& where) {
    lx.ws();
    const auto at = lx.pos;
    auto n = lx.identifier();
    if (ddl_lexer::iequal(n, "NOCASE")) return collation::nocase;
    if (ddl_lexer::iequal(n, "RTRIM")) return collation::rtrim;
    if (ddl_lexer::iequal(n, "BINARY")) return collation::binary;
    lx.pos = at; // the offset names the collation
    lx.fail("unknown collation \"" + n + "\" in " + where);
}

/// Reads a DEFAULT literal (after the DEFAULT keyword); NULL reads as none.
[[nodiscard]] inline std::optional<value> parse_default(ddl_lexer& lx, const std::string& column) {
    auto v = lx.literal("the DEFAULT of column \"" + column + "\"");
    if (v.is_null()) return std::nullopt;
    return v;
}

/// Reads a column definition: `name [type] [NULL | NOT NULL] [PRIMARY KEY
/// [ASC | DESC]] [COLLATE c] [DEFAULT literal] [UNIQUE] [CHECK (...)]`, the
/// constraints in any order. Without NULL / NOT NULL a column is NOT NULL,
/// as in Quereus. `is_key` is set by an inline PRIMARY KEY.
[[nodiscard]] inline column_def parse_column_def(ddl_lexer& lx, bool& is_key, const std::string& table) {
    column_def c;
    c.name = lx.identifier();
    c.nullable = false; // Quereus: NOT NULL unless declared NULL
    static constexpr std::string_view constraint_words[] = {"NULL", "NOT", "PRIMARY", "COLLATE", "DEFAULT", "UNIQUE", "CHECK"};
    auto is_constraint = [&] {
        for (auto w : constraint_words) if (lx.peek_word(w)) return true;
        return false;
    };
    if (!lx.at_column_end() && !is_constraint()) c.type = parse_column_type(lx);
    while (!lx.at_column_end()) {
        if (lx.accept_word("NULL")) c.nullable = true;
        else if (lx.accept_word("NOT")) { lx.expect_word("NULL"); c.nullable = false; }
        else if (lx.accept_word("PRIMARY")) {
            lx.expect_word("KEY");
            (void)(lx.accept_word("ASC") || lx.accept_word("DESC"));
            is_key = true;
        } else if (lx.accept_word("COLLATE")) {
            c.coll = parse_collation(lx, "table " + table);
        } else if (lx.accept_word("DEFAULT")) {
            c.default_value = parse_default(lx, c.name);
        } else if (lx.accept_word("CHECK")) {
            // Checks do not change replication.
            lx.expect('(');
            lx.skip_balanced();
        } else if (lx.accept_word("UNIQUE")) {
        } else {
            lx.fail("unexpected text in the definition of column \"" + c.name + "\"");
        }
    }
    return c;
}

} // namespace detail

/// A row for the dynamic API: column name -> value.
using row = std::map<std::string, value, std::less<>>;

/// Which rows `replica::rows(table, scan)` reads: a page of a table in
/// primary-key order (collation-folded, the order `rows(table)` gives).
///
/// ```
/// crdtsync::row_scan page{.limit = 100};
/// for (auto rows = rep.rows("tasks", page); !rows.empty(); rows = rep.rows("tasks", page)) {
///     // ... use rows ...
///     page.from = crdtsync::row_key{rows.back().at("id")};  // the key columns, in key order
///     page.exclusive = true;
/// }
/// ```
struct row_scan {
    /// The key to start at (key column values in key order); none: the
    /// table's first row. It need not be a key the table holds.
    std::optional<std::vector<value>> from;
    /// Start strictly after `from` (the last key of the previous page).
    bool exclusive = false;
    /// At most this many rows.
    std::size_t limit = static_cast<std::size_t>(-1);
};

class table_def {
public:
    table_def() = default;
    /// A table `name` in schema `schema_name` (default "main").
    explicit table_def(std::string name, std::string schema_name = "main")
        : schema_(std::move(schema_name)), name_(std::move(name)) {
        if (name_.empty()) detail::raise(errc::schema, "a table needs a name");
    }

    /// Adds a column (builder style). \throws schema_error on a duplicate name.
    table_def& column(std::string name, column_type type = column_type::any, bool nullable = true,
                      collation coll = collation::binary) {
        if (name.empty()) detail::raise(errc::schema, "table " + qualified_name() + ": a column needs a name");
        if (find_column(name))
            detail::raise(errc::schema, "table " + qualified_name() + " already has a column \"" + name + "\"");
        columns_.push_back(column_def{std::move(name), type, nullable, coll});
        return *this;
    }
    /// Declares the primary key (column names, in key order). Key columns
    /// become NOT NULL. \throws schema_error on an unknown or repeated column.
    table_def& primary_key(std::vector<std::string> names) {
        key_.clear();
        for (const auto& n : names) {
            auto i = find_column(n);
            if (!i) detail::raise(errc::schema, "table " + qualified_name() + ": primary key column \"" + n + "\" is not a column");
            if (std::find(key_.begin(), key_.end(), *i) != key_.end())
                detail::raise(errc::schema, "table " + qualified_name() + ": primary key repeats \"" + n + "\"");
            key_.push_back(*i);
            columns_[*i].nullable = false;
        }
        return *this;
    }

    [[nodiscard]] const std::string& schema_name() const noexcept { return schema_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    /// `schema.name`
    [[nodiscard]] std::string qualified_name() const { return schema_ + "." + name_; }
    [[nodiscard]] const std::vector<column_def>& columns() const noexcept { return columns_; }
    /// Indexes into columns(), in key order.
    [[nodiscard]] const std::vector<std::size_t>& key_columns() const noexcept { return key_; }
    [[nodiscard]] bool is_key_column(std::size_t i) const noexcept {
        return std::find(key_.begin(), key_.end(), i) != key_.end();
    }
    [[nodiscard]] std::optional<std::size_t> find_column(std::string_view n) const noexcept {
        for (std::size_t i = 0; i < columns_.size(); ++i)
            if (detail::same_bytes(columns_[i].name, n))
                return i;
        return std::nullopt;
    }
    /// \throws schema_error (`errc::unknown_column`) naming the table.
    [[nodiscard]] std::size_t column_index(std::string_view n) const {
        if (auto i = find_column(n)) return *i;
        detail::raise(errc::unknown_column, "table " + qualified_name() + " has no column \"" + std::string(n) + "\"");
    }

    /// Checks the definition is usable: at least one column and a primary key.
    void validate() const {
        if (columns_.empty()) detail::raise(errc::schema, "table " + qualified_name() + " has no columns");
        if (key_.empty()) detail::raise(errc::schema, "table " + qualified_name() + " has no primary key");
    }

    /// True when `coerce(i, v)` differs from `v` (or refuses it).
    [[nodiscard]] bool coerces(std::size_t i, const value& v) const noexcept {
        switch (v.kind()) {
        case value_kind::integer:
        case value_kind::big_integer: return columns_[i].type == column_type::real;
        case value_kind::real: {
            const double d = *v.get_if<double>();
            if (!std::isfinite(d) || (d == 0 && std::signbit(d))) return true;
            return columns_[i].type != column_type::real && d == std::trunc(d) && d >= -0x1p63 && d < 0x1p64;
        }
        default: return false;
        }
    }
    /// The value as column `i` stores it, which is the value every replica
    /// stores after it crossed the wire (JSON has one number type, and
    /// JavaScript writes -0 as 0): in a REAL column an integer or big
    /// integer becomes the nearest real; in any other column a real with an
    /// integral value within 64 bits becomes that integer; -0.0 becomes 0.0.
    /// \throws parse_error (`errc::invalid_value`) for an infinite real (or a
    /// big integer beyond the REAL range): the wire cannot carry it (Quereus
    /// writes null), so no replica stores it. NaN is already null (`value`).
    [[nodiscard]] value coerce(std::size_t i, value v) const {
        if (!coerces(i, v)) return v;
        const bool real_column = columns_[i].type == column_type::real;
        if (auto p = v.get_if<std::int64_t>()) return value{static_cast<double>(*p)};
        if (auto b = v.get_if<big_integer>()) {
            const double d = std::strtod(b->text().c_str(), nullptr);
            if (!std::isfinite(d))
                detail::raise(errc::invalid_value, "column \"" + columns_[i].name + "\" of table " + qualified_name() +
                                                       " is REAL and the integer " + b->text().substr(0, 40) +
                                                       (b->text().size() > 40 ? "..." : "") + " is beyond the range of a real");
            return value{d};
        }
        const double d = *v.get_if<double>();
        if (!std::isfinite(d))
            detail::raise(errc::invalid_value, "column \"" + columns_[i].name + "\" of table " + qualified_name() +
                                                   ": an infinite real cannot be replicated (the wire carries it as null)");
        if (real_column || d != std::trunc(d)) return value{0.0}; // only -0.0 comes here
        if (d < 0x1p63) return value{static_cast<std::int64_t>(d)};
        return value{static_cast<std::uint64_t>(d)}; // a big integer
    }
    /// The value that decides key identity under column `i`'s collation.
    [[nodiscard]] value key_identity(std::size_t i, value v) const {
        const auto c = columns_[i].coll;
        if (c == collation::binary) return v;
        auto p = v.get_if<std::string>();
        if (!p) return v;
        std::string s;
        if (c == collation::nocase) {
            detail::js_to_lower(*p, s);
        } else {
            s = *p;
            while (!s.empty() && s.back() == ' ') s.pop_back();
        }
        return value{std::move(s)};
    }
    /// True when some key column has a non-BINARY collation.
    [[nodiscard]] bool folds_keys() const noexcept {
        return std::any_of(key_.begin(), key_.end(),
                           [&](std::size_t i) { return columns_[i].coll != collation::binary; });
    }

    /// The canonical DDL, in the form Quereus writes:
    /// `CREATE TABLE "main"."t" ("id" INTEGER NOT NULL PRIMARY KEY, "x" TEXT NULL) USING store`.
    /// A column's clauses come in Quereus's order (generateTableDDL): type,
    /// NULL / NOT NULL, COLLATE, PRIMARY KEY, DEFAULT.
    [[nodiscard]] std::string to_ddl() const {
        std::string out = "CREATE TABLE " + quote(schema_) + "." + quote(name_) + " (";
        for (std::size_t i = 0; i < columns_.size(); ++i) {
            if (i) out += ", ";
            out += column_ddl_head(columns_[i]);
            if (key_.size() == 1 && key_[0] == i) out += " PRIMARY KEY";
            out += default_ddl(columns_[i]);
        }
        if (key_.size() > 1) {
            out += ", PRIMARY KEY (";
            for (std::size_t k = 0; k < key_.size(); ++k) out += (k ? ", " : "") + quote(columns_[key_[k]].name);
            out += ")";
        }
        return out + ") USING store";
    }
    /// `"name" TYPE NULL|NOT NULL[ COLLATE c][ DEFAULT literal]`
    [[nodiscard]] static std::string column_ddl(const column_def& c) { return column_ddl_head(c) + default_ddl(c); }

    /// Parses `CREATE TABLE [IF NOT EXISTS] [schema.]name (columns [, PRIMARY KEY (...)]) [USING module]`.
    /// Columns without NULL / NOT NULL are NOT NULL, as in Quereus.
    /// \throws schema_error (`errc::schema`) with the position of the problem.
    /// A DEFAULT must be a literal (see `column_def::default_value`).
    [[nodiscard]] static table_def from_ddl(std::string_view ddl) {
        detail::ddl_lexer lx{ddl};
        lx.expect_word("CREATE");
        lx.expect_word("TABLE");
        if (lx.accept_word("IF")) { lx.expect_word("NOT"); lx.expect_word("EXISTS"); }
        auto [schema, name] = lx.qualified_name();
        table_def t{name, schema.empty() ? "main" : schema};
        lx.expect('(');
        std::vector<std::string> key;
        do {
            if (lx.peek_word("PRIMARY")) {
                lx.expect_word("PRIMARY");
                lx.expect_word("KEY");
                lx.expect('(');
                do {
                    key.push_back(lx.identifier());
                    (void)(lx.accept_word("ASC") || lx.accept_word("DESC"));
                } while (lx.accept(','));
                lx.expect(')');
            } else {
                bool is_key = false;
                t.columns_.push_back(detail::parse_column_def(lx, is_key, t.qualified_name()));
                if (t.find_column(t.columns_.back().name) != t.columns_.size() - 1)
                    lx.fail("duplicate column \"" + t.columns_.back().name + "\"");
                if (is_key) key.push_back(t.columns_.back().name);
            }
        } while (lx.accept(','));
        lx.expect(')');
        if (lx.accept_word("USING")) {
            (void)lx.identifier();
            if (lx.accept('(')) lx.skip_balanced();
        }
        lx.expect_end();
        t.primary_key(key);
        t.validate();
        return t;
    }

    /// Parses `ALTER TABLE [schema.]name ADD [COLUMN] column-definition`;
    /// returns the qualified table name parts and the new column.
    struct add_column_ddl {
        std::string schema, table;
        column_def column;
    };
    [[nodiscard]] static add_column_ddl parse_add_column(std::string_view ddl) {
        detail::ddl_lexer lx{ddl};
        lx.expect_word("ALTER");
        lx.expect_word("TABLE");
        auto [schema, name] = lx.qualified_name();
        lx.expect_word("ADD");
        (void)lx.accept_word("COLUMN");
        bool is_key = false;
        add_column_ddl out{schema.empty() ? "main" : schema, name, detail::parse_column_def(lx, is_key, name)};
        if (is_key) lx.fail("an added column cannot be part of the primary key");
        lx.expect_end();
        return out;
    }
    /// `ALTER TABLE "schema"."name" ADD COLUMN <column ddl>`
    [[nodiscard]] std::string add_column_to_ddl(const column_def& c) const {
        return "ALTER TABLE " + quote(schema_) + "." + quote(name_) + " ADD COLUMN " + column_ddl(c);
    }
    /// Appends a column (used when applying ADD COLUMN).
    /// Gives column `i` a literal default (builder style): reads of rows
    /// without a value for it, and inserts that leave it unset, get it.
    table_def& set_default(std::size_t i, value v) {
        if (i >= columns_.size()) detail::raise(errc::invalid_argument, "table " + qualified_name() + " has no column " + std::to_string(i));
        columns_[i].default_value = std::move(v);
        return *this;
    }
    void append_column(column_def c) {
        if (find_column(c.name))
            detail::raise(errc::schema, "table " + qualified_name() + " already has a column \"" + c.name + "\"");
        columns_.push_back(std::move(c));
    }
    /// Renames the table (used when applying RENAME TABLE; the schema stays).
    table_def& rename(std::string name) {
        if (name.empty()) detail::raise(errc::schema, "a table needs a name");
        name_ = std::move(name);
        return *this;
    }
    /// Removes column `i` (used when applying DROP COLUMN). \throws
    /// schema_error for a primary-key column.
    void remove_column(std::size_t i) {
        if (i >= columns_.size()) detail::raise(errc::invalid_argument, "table " + qualified_name() + " has no column " + std::to_string(i));
        if (is_key_column(i))
            detail::raise(errc::schema, "table " + qualified_name() + ": column \"" + columns_[i].name + "\" is part of the primary key and cannot be dropped");
        columns_.erase(columns_.begin() + static_cast<std::ptrdiff_t>(i));
        for (auto& k : key_)
            if (k > i) --k;
    }
    /// Replaces the definition of column `i`, keeping its name (used when
    /// applying ALTER COLUMN). \throws schema_error when it would change a
    /// primary-key column's type or collation, or make it nullable.
    void replace_column(std::size_t i, column_def c) {
        if (i >= columns_.size()) detail::raise(errc::invalid_argument, "table " + qualified_name() + " has no column " + std::to_string(i));
        c.name = columns_[i].name;
        if (is_key_column(i) && (c.type != columns_[i].type || c.coll != columns_[i].coll || c.nullable))
            detail::raise(errc::schema, "table " + qualified_name() + ": column \"" + c.name +
                                            "\" is part of the primary key; its type, collation and NOT NULL cannot change");
        columns_[i] = std::move(c);
    }

    friend bool operator==(const table_def&, const table_def&) = default;

    [[nodiscard]] static std::string quote(std::string_view id) {
        std::string out = "\"";
        for (char c : id) { if (c == '"') out += '"'; out += c; }
        return out + "\"";
    }

private:
    [[nodiscard]] static std::string column_ddl_head(const column_def& c) {
        std::string out = quote(c.name) + " " + std::string(to_text(c.type)) + (c.nullable ? " NULL" : " NOT NULL");
        if (c.coll != collation::binary) out += " COLLATE " + std::string(to_text(c.coll));
        return out;
    }
    [[nodiscard]] static std::string default_ddl(const column_def& c) {
        if (!c.default_value || c.default_value->is_null()) return {};
        return " DEFAULT " + detail::ddl_lexer::literal_text(*c.default_value);
    }

    std::string schema_ = "main";
    std::string name_;
    std::vector<column_def> columns_;
    std::vector<std::size_t> key_;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
