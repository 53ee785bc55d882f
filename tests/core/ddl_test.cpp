// DDL text both ways: every schema migration kind parses from the forms
// Quereus writes, writes a canonical text that parses back to the same
// statement, and literal column defaults survive table_def::to_ddl and
// from_ddl. Malformed text and well-formed but unsupported text are both
// errc::schema, told apart by the message ("DDL: ..." / "unsupported DDL: ...").

#include <crdtsync/ddl.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using crdtsync::big_integer;
using crdtsync::blob;
using crdtsync::collation;
using crdtsync::column_def;
using crdtsync::column_type;
using crdtsync::ddl_add_column;
using crdtsync::ddl_alter_column;
using crdtsync::ddl_create_index;
using crdtsync::ddl_create_table;
using crdtsync::ddl_drop_column;
using crdtsync::ddl_drop_index;
using crdtsync::ddl_drop_table;
using crdtsync::ddl_rename_table;
using crdtsync::ddl_statement;
using crdtsync::errc;
using crdtsync::migration_kind;
using crdtsync::parse_ddl;
using crdtsync::table_def;
using crdtsync::value;
using act = crdtsync::ddl_alter_column::action;

// Failed checks show statements in their canonical text, values as text.
template <>
struct doctest::StringMaker<ddl_statement> {
    static doctest::String convert(const ddl_statement& s) { return crdtsync::to_ddl(s).c_str(); }
};
template <>
struct doctest::StringMaker<value> {
    static doctest::String convert(const value& v) { return v.to_text().c_str(); }
};

namespace {

/// The message of the schema_error `f` throws (a failed check if it throws
/// nothing, or another code).
template <class F>
std::string schema_error_of(F&& f) {
    try {
        (void)f();
    } catch (const crdtsync::schema_error& e) {
        CHECK(e.code() == errc::schema);
        return e.message();
    }
    FAIL("expected a schema_error");
    return {};
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

table_def items() {
    table_def t{"items"};
    t.column("id", column_type::integer).column("name", column_type::text).primary_key({"id"});
    return t;
}

column_def col(std::string name, column_type type, bool nullable, std::optional<value> def = std::nullopt,
               collation coll = collation::binary) {
    column_def c{std::move(name), type, nullable, coll};
    c.default_value = std::move(def);
    return c;
}

} // namespace

TEST_CASE("ddl: every Quereus form parses to the expected statement") {
    SUBCASE("create_table, byte-identical canonical text") {
        const std::string q = R"(CREATE TABLE "main"."items" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT NULL) USING store)";
        const auto s = parse_ddl(q);
        CHECK(s == ddl_statement{ddl_create_table{items()}});
        CHECK(crdtsync::to_ddl(s) == q);
        CHECK(items().to_ddl() == q);
    }
    SUBCASE("drop_table") {
        CHECK(parse_ddl(R"(drop table "main"."items")") == ddl_statement{ddl_drop_table{"main", "items"}});
        CHECK(parse_ddl("DROP TABLE IF EXISTS items") == ddl_statement{ddl_drop_table{"main", "items"}});
        CHECK(parse_ddl("drop table aux.[my items]") == ddl_statement{ddl_drop_table{"aux", "my items"}});
    }
    SUBCASE("rename_table") {
        CHECK(parse_ddl(R"(alter table items rename to "new_name")") == ddl_statement{ddl_rename_table{"main", "items", "new_name"}});
        CHECK(parse_ddl("ALTER TABLE aux.items RENAME TO things") == ddl_statement{ddl_rename_table{"aux", "items", "things"}});
    }
    SUBCASE("add column (COLUMN optional; no NULL / NOT NULL is NOT NULL)") {
        CHECK(parse_ddl("alter table items add column note text null") ==
              ddl_statement{ddl_add_column{"main", "items", col("note", column_type::text, true)}});
        CHECK(parse_ddl("alter table aux.items add note integer default 0") ==
              ddl_statement{ddl_add_column{"aux", "items", col("note", column_type::integer, false, value{0})}});
        CHECK(parse_ddl(R"(ALTER TABLE "items" ADD COLUMN "n" TEXT NULL COLLATE nocase DEFAULT 'x')") ==
              ddl_statement{ddl_add_column{"main", "items", col("n", column_type::text, true, value{"x"}, collation::nocase)}});
    }
    SUBCASE("drop column (COLUMN optional)") {
        CHECK(parse_ddl(R"(alter table items drop column "note")") == ddl_statement{ddl_drop_column{"main", "items", "note"}});
        CHECK(parse_ddl("alter table aux.items drop note") == ddl_statement{ddl_drop_column{"aux", "items", "note"}});
    }
    SUBCASE("alter column, every action") {
        const auto alter = [](act what) {
            ddl_alter_column a;
            a.table = "items";
            a.column = "x";
            a.what = what;
            return a;
        };
        CHECK(parse_ddl(R"(alter table items alter column "x" set not null)") == ddl_statement{alter(act::set_not_null)});
        CHECK(parse_ddl(R"(alter table items alter column "x" drop not null)") == ddl_statement{alter(act::drop_not_null)});
        auto typed = alter(act::set_type);
        typed.type = column_type::integer;
        CHECK(parse_ddl(R"(alter table items alter column "x" set data type integer)") == ddl_statement{typed});
        typed.type = column_type::text;
        CHECK(parse_ddl(R"(alter table items alter x set data type varchar(20))") == ddl_statement{typed});
        auto defaulted = alter(act::set_default);
        defaulted.default_value = value{"it's"};
        CHECK(parse_ddl(R"(alter table items alter column "x" set default 'it''s')") == ddl_statement{defaulted});
        defaulted.default_value = std::nullopt;
        CHECK(parse_ddl(R"(alter table items alter column "x" set default null)") == ddl_statement{defaulted});
        CHECK(parse_ddl(R"(alter table items alter column "x" drop default)") == ddl_statement{alter(act::drop_default)});
        auto collated = alter(act::set_collation);
        collated.coll = collation::nocase;
        CHECK(parse_ddl(R"(alter table items alter column "x" set collate NOCASE)") == ddl_statement{collated});
        collated.coll = collation::rtrim;
        CHECK(parse_ddl(R"(ALTER TABLE items ALTER COLUMN x SET COLLATE rtrim)") == ddl_statement{collated});
    }
    SUBCASE("add_index: what the fields cannot say keeps the text") {
        const std::string q = R"(create index "idx" on "main"."items" ("a", "b" desc))";
        CHECK(parse_ddl(q) == ddl_statement{ddl_create_index{"main", "idx", "items", {"a", "b"}, false, q}});
        CHECK(parse_ddl("create unique index if not exists idx on items (a, b asc)") ==
              ddl_statement{ddl_create_index{"main", "idx", "items", {"a", "b"}, true, ""}});
        const std::string partial = "  CREATE INDEX i ON aux.items (a) WHERE a > 0 and (b = ')')  ";
        CHECK(parse_ddl(partial) ==
              ddl_statement{ddl_create_index{"aux", "i", "items", {"a"}, false, "CREATE INDEX i ON aux.items (a) WHERE a > 0 and (b = ')')"}});
        const std::string collated = "create index i on items (a collate nocase)";
        CHECK(parse_ddl(collated) == ddl_statement{ddl_create_index{"main", "i", "items", {"a"}, false, collated}});
        CHECK(parse_ddl("CREATE INDEX aux.idx ON items ([a b], `c`)") ==
              ddl_statement{ddl_create_index{"aux", "idx", "items", {"a b", "c"}, false, ""}});
    }
    SUBCASE("drop_index") {
        CHECK(parse_ddl(R"(drop index "main"."idx")") == ddl_statement{ddl_drop_index{"main", "idx"}});
        CHECK(parse_ddl("DROP INDEX IF EXISTS idx") == ddl_statement{ddl_drop_index{"main", "idx"}});
    }
    SUBCASE("keywords in any case") {
        CHECK(parse_ddl("AlTeR tAbLe Items ReNaMe To Things") == ddl_statement{ddl_rename_table{"main", "Items", "Things"}});
        CHECK(parse_ddl("Drop Index \"Aux\".\"Idx\"") == ddl_statement{ddl_drop_index{"Aux", "Idx"}});
    }
}

TEST_CASE("ddl: the Quereus vector text still parses as ADD COLUMN, both ways") {
    const std::string q = "alter table items add column note text null";
    const auto s = parse_ddl(q);
    REQUIRE(std::holds_alternative<ddl_add_column>(s));
    const auto& add = std::get<ddl_add_column>(s);
    CHECK(add.schema == "main");
    CHECK(add.table == "items");
    CHECK(add.column == col("note", column_type::text, true));
    CHECK(crdtsync::migration_kind_of(s) == migration_kind::alter_column);
    const auto old = table_def::parse_add_column(q);
    CHECK(old.schema == add.schema);
    CHECK(old.table == add.table);
    CHECK(old.column == add.column);
    // The canonical text is still what table_def writes for ADD COLUMN.
    CHECK(crdtsync::to_ddl(s) == R"(ALTER TABLE "main"."items" ADD COLUMN "note" TEXT NULL)");
    CHECK(crdtsync::to_ddl(s) == items().add_column_to_ddl(add.column));
}

TEST_CASE("ddl: every kind writes its canonical text and reads it back equal") {
    struct example {
        ddl_statement s;
        std::string text;
        migration_kind kind;
    };
    const auto alter = [](act what) {
        ddl_alter_column a;
        a.schema = "aux";
        a.table = "items";
        a.column = "x";
        a.what = what;
        return a;
    };
    auto typed = alter(act::set_type);
    typed.type = column_type::real;
    auto any_typed = alter(act::set_type);
    auto collated = alter(act::set_collation);
    collated.coll = collation::nocase;
    auto defaulted = alter(act::set_default);
    defaulted.default_value = value{-1.5};
    auto null_default = alter(act::set_default);
    table_def composite{"pairs", "aux"};
    composite.column("a", column_type::text, false, collation::nocase)
        .column("b", column_type::integer)
        .column("c", column_type::blob)
        .primary_key({"a", "b"});
    const std::vector<example> examples{
        {ddl_create_table{items()}, items().to_ddl(), migration_kind::create_table},
        {ddl_create_table{composite},
         R"(CREATE TABLE "aux"."pairs" ("a" TEXT NOT NULL COLLATE NOCASE, "b" INTEGER NOT NULL, "c" BLOB NULL, PRIMARY KEY ("a", "b")) USING store)",
         migration_kind::create_table},
        {ddl_drop_table{"main", "items"}, R"(DROP TABLE "main"."items")", migration_kind::drop_table},
        {ddl_drop_table{"main", "odd \"name\""}, R"(DROP TABLE "main"."odd ""name""")", migration_kind::drop_table},
        {ddl_rename_table{"main", "items", "things"}, R"(ALTER TABLE "main"."items" RENAME TO "things")", migration_kind::rename_table},
        {ddl_add_column{"main", "items", col("note", column_type::text, true)},
         R"(ALTER TABLE "main"."items" ADD COLUMN "note" TEXT NULL)", migration_kind::alter_column},
        {ddl_add_column{"main", "items", col("n", column_type::integer, false, value{7}, collation::rtrim)},
         R"(ALTER TABLE "main"."items" ADD COLUMN "n" INTEGER NOT NULL COLLATE RTRIM DEFAULT 7)", migration_kind::alter_column},
        {ddl_drop_column{"main", "items", "note"}, R"(ALTER TABLE "main"."items" DROP COLUMN "note")", migration_kind::alter_column},
        {alter(act::set_not_null), R"(ALTER TABLE "aux"."items" ALTER COLUMN "x" SET NOT NULL)", migration_kind::alter_column},
        {alter(act::drop_not_null), R"(ALTER TABLE "aux"."items" ALTER COLUMN "x" DROP NOT NULL)", migration_kind::alter_column},
        {typed, R"(ALTER TABLE "aux"."items" ALTER COLUMN "x" SET DATA TYPE REAL)", migration_kind::alter_column},
        {any_typed, R"(ALTER TABLE "aux"."items" ALTER COLUMN "x" SET DATA TYPE ANY)", migration_kind::alter_column},
        {collated, R"(ALTER TABLE "aux"."items" ALTER COLUMN "x" SET COLLATE NOCASE)", migration_kind::alter_column},
        {defaulted, R"(ALTER TABLE "aux"."items" ALTER COLUMN "x" SET DEFAULT -1.5)", migration_kind::alter_column},
        {null_default, R"(ALTER TABLE "aux"."items" ALTER COLUMN "x" SET DEFAULT NULL)", migration_kind::alter_column},
        {alter(act::drop_default), R"(ALTER TABLE "aux"."items" ALTER COLUMN "x" DROP DEFAULT)", migration_kind::alter_column},
        {ddl_create_index{"main", "idx", "items", {"a", "b"}, false, ""}, R"(CREATE INDEX "idx" ON "main"."items" ("a", "b"))",
         migration_kind::add_index},
        {ddl_create_index{"aux", "u", "items", {"a"}, true, ""}, R"(CREATE UNIQUE INDEX "u" ON "aux"."items" ("a"))",
         migration_kind::add_index},
        {ddl_create_index{"main", "idx", "items", {"a", "b"}, false, R"(create index "idx" on "main"."items" ("a", "b" desc))"},
         R"(create index "idx" on "main"."items" ("a", "b" desc))", migration_kind::add_index},
        {ddl_drop_index{"main", "idx"}, R"(DROP INDEX "main"."idx")", migration_kind::drop_index},
    };
    for (const auto& e : examples) {
        CAPTURE(e.text);
        CHECK(crdtsync::to_ddl(e.s) == e.text);
        CHECK(parse_ddl(crdtsync::to_ddl(e.s)) == e.s);
        CHECK(crdtsync::migration_kind_of(e.s) == e.kind);
    }
}

TEST_CASE("ddl: what Quereus writes reads the same after our canonical text") {
    for (const std::string q : {
             R"(CREATE TABLE "main"."items" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT NULL) USING store)",
             R"(create table "aux"."t" ("k" text not null collate nocase primary key default 'a', "v" real null default 0.25) using store)",
             R"(drop table "main"."items")",
             R"(alter table items rename to "new_name")",
             "alter table items add column note text null",
             R"(alter table items drop column "note")",
             R"(alter table items alter column "x" set not null)",
             R"(alter table items alter column "x" drop not null)",
             R"(alter table items alter column "x" set data type integer)",
             R"(alter table items alter column "x" set default x'CAFE')",
             R"(alter table items alter column "x" drop default)",
             R"(alter table items alter column "x" set collate NOCASE)",
             R"(create unique index "idx" on "main"."items" ("a", "b"))",
             R"(create index "idx" on "main"."items" ("a", "b" desc))",
             R"(create index "idx" on "main"."items" ("a") where a is not null)",
             R"(drop index "main"."idx")",
         }) {
        CAPTURE(q);
        const auto s = parse_ddl(q);
        CHECK(parse_ddl(crdtsync::to_ddl(s)) == s);
    }
}

TEST_CASE("ddl: column defaults of every literal kind round-trip through table_def::to_ddl and from_ddl") {
    const std::vector<std::pair<value, std::string>> literals{
        {value{0}, "0"},
        {value{42}, "42"},
        {value{-7}, "-7"},
        {value{std::numeric_limits<std::int64_t>::max()}, "9223372036854775807"},
        {value{std::numeric_limits<std::int64_t>::min()}, "-9223372036854775808"},
        {value{big_integer::parse("123456789012345678901234567890")}, "123456789012345678901234567890"},
        {value{big_integer::parse("-99999999999999999999")}, "-99999999999999999999"},
        {value{2.0}, "2.0"},
        {value{-0.5}, "-0.5"},
        {value{0.1}, "0.1"},
        {value{-0.0}, "-0.0"},
        {value{1e300}, "1e+300"},
        {value{5e-324}, "5e-324"},
        {value{""}, "''"},
        {value{"it's"}, "'it''s'"},
        {value{"Zürich, \"quoted\", (parens)"}, "'Zürich, \"quoted\", (parens)'"},
        {value{blob{std::string("\x00\xff\x10", 3)}}, "X'00FF10'"},
        {value{blob{}}, "X''"},
        {value{true}, "TRUE"},
        {value{false}, "FALSE"},
    };
    for (const auto& literal : literals) {
        const value& v = literal.first;
        const std::string& text = literal.second;
        CAPTURE(text);
        table_def t{"d"};
        t.column("id", column_type::integer).column("x", column_type::any, true).primary_key({"id"});
        auto with_default = table_def::from_ddl(t.to_ddl());
        REQUIRE(with_default == t);
        // Build the same table with the default through the DDL text.
        const std::string ddl = R"(CREATE TABLE "main"."d" ("id" INTEGER NOT NULL PRIMARY KEY, "x" ANY NULL DEFAULT )" + text +
                                ") USING store";
        const auto parsed = table_def::from_ddl(ddl);
        REQUIRE(parsed.columns().size() == 2);
        REQUIRE(parsed.columns()[1].default_value.has_value());
        CHECK(*parsed.columns()[1].default_value == v);
        CHECK((v.kind() != crdtsync::value_kind::real ||
               std::signbit(parsed.columns()[1].default_value->as_real()) == std::signbit(v.as_real())));
        CHECK(parsed.to_ddl() == ddl);
        CHECK(table_def::from_ddl(parsed.to_ddl()) == parsed);
        CHECK(table_def::column_ddl(parsed.columns()[1]) == R"("x" ANY NULL DEFAULT )" + text);
        // The same literal on an ADD COLUMN and an ALTER COLUMN SET DEFAULT.
        const ddl_statement add = ddl_add_column{"main", "d", parsed.columns()[1]};
        CHECK(parse_ddl(crdtsync::to_ddl(add)) == add);
        ddl_alter_column set;
        set.table = "d";
        set.column = "x";
        set.what = act::set_default;
        set.default_value = v;
        CHECK(parse_ddl(crdtsync::to_ddl(set)) == ddl_statement{set});
    }
}

TEST_CASE("ddl: default literals in the other spellings Quereus and SQLite accept") {
    const auto default_of = [](const std::string& literal) {
        const auto t = table_def::from_ddl("create table t (id integer primary key, x any null default " + literal + ")");
        return t.columns()[1].default_value;
    };
    CHECK(default_of("null") == std::nullopt);
    CHECK(default_of("NULL") == std::nullopt);
    CHECK(default_of("true") == value{true});
    CHECK(default_of("False") == value{false});
    CHECK(default_of("+3") == value{3});
    CHECK(default_of("- 3") == value{-3});
    CHECK(default_of("007") == value{7});
    CHECK(default_of("-0") == value{0});
    CHECK(default_of(".5") == value{0.5});
    CHECK(default_of("1.5e3") == value{1500.0});
    CHECK(default_of("2E-2") == value{0.02});
    CHECK(default_of("1e-400") == value{0.0});
    CHECK(default_of("x'0aFf'") == value{blob{"\x0a\xff"}});
    CHECK(default_of("'a''b'") == value{"a'b"});
    // The default sits after NOT NULL / COLLATE / PRIMARY KEY, or before them.
    const auto t = table_def::from_ddl("create table t (id integer default 1 primary key, x text default 'a' collate nocase)");
    CHECK(t.columns()[0].default_value == value{1});
    CHECK(t.columns()[1].default_value == value{"a"});
    CHECK(t.to_ddl() ==
          R"(CREATE TABLE "main"."t" ("id" INTEGER NOT NULL PRIMARY KEY DEFAULT 1, "x" TEXT NOT NULL COLLATE NOCASE DEFAULT 'a') USING store)");
    // A table without defaults writes what it always wrote.
    CHECK(table_def::from_ddl("create table t (id integer primary key, x varchar(20) null check (x <> ')'), y int unique)").to_ddl() ==
          R"(CREATE TABLE "main"."t" ("id" INTEGER NOT NULL PRIMARY KEY, "x" TEXT NULL, "y" INTEGER NOT NULL) USING store)");
}

TEST_CASE("ddl: a non-literal default is refused, saying so") {
    for (const std::string expr : {"CURRENT_TIMESTAMP", "current_date", "(1)", "random()", "1 + 2", "'a' || 'b'", "-x",
                                   "-(1)", "abs(-1)", "x"}) {
        CAPTURE(expr);
        const auto msg = schema_error_of([&] { return table_def::from_ddl("create table t (id integer primary key default " + expr + ")"); });
        CHECK(msg.find("non-literal defaults are not supported") != std::string::npos);
        CHECK(starts_with(msg, "DDL: "));
        const auto add = schema_error_of([&] { return parse_ddl("alter table t add column x integer null default " + expr); });
        CHECK(add.find("non-literal defaults are not supported") != std::string::npos);
        const auto set = schema_error_of([&] { return parse_ddl("alter table t alter column x set default " + expr); });
        CHECK(set.find("non-literal defaults are not supported") != std::string::npos);
    }
}

TEST_CASE("ddl: malformed text is errc::schema naming what and where") {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"", "expected CREATE, DROP or ALTER"},
        {"select 1", "expected CREATE, DROP or ALTER"},
        {"drop", "expected TABLE or INDEX after DROP"},
        {"drop table", "expected an identifier"},
        {"drop table t extra", "unexpected trailing text"},
        {"drop table if t", "expected EXISTS"},
        {"create", "expected TABLE or INDEX after CREATE"},
        {"create unique table t (a integer primary key)", "expected INDEX after CREATE UNIQUE"},
        {"create table t (", "expected an identifier"},
        {"alter table", "expected an identifier"},
        {"alter items", "expected TABLE after ALTER"},
        {"alter table items", "expected RENAME, ADD, DROP or ALTER"},
        {"alter table items frobnicate", "expected RENAME, ADD, DROP or ALTER"},
        {"alter table items rename to", "expected an identifier"},
        {"alter table items drop column", "expected an identifier"},
        {"alter table items add column", "expected an identifier"},
        {"alter table items add column x integer primary key", "cannot be part of the primary key"},
        {"alter table items alter column x", "expected SET NOT NULL"},
        {"alter table items alter column x set", "expected SET NOT NULL"},
        {"alter table items alter column x drop null", "expected SET NOT NULL"},
        {"alter table items alter column x set data integer", "expected TYPE"},
        {"alter table items alter column x set data type", "expected a type name"},
        {"alter table items alter column x set collate klingon", "unknown collation \"klingon\""},
        {"alter table items alter column x set default 'open", "unterminated string literal"},
        {"alter table items alter column x set default x'abc'", "even number of hex digits"},
        {"alter table items alter column x set default x'zz'", "hex digits only"},
        {"alter table items alter column x set default 1e999", "beyond the range of a real"},
        {"alter table items alter column x set default 12abc", "malformed number"},
        {"alter table items alter column x set default 1e", "malformed exponent"},
        {"alter table items alter column x set default", "expected a literal"},
        {"alter table items alter column x set not null please", "unexpected trailing text"},
        {"alter table \"items", "unterminated quoted identifier"},
        {"alter table \"\" drop column x", "empty identifier"},
        {"create index i on t ()", "expected an identifier"},
        {"create index i on t (a", "expected ')'"},
        {"create index i on t a", "expected '('"},
        {"create index i t (a)", "expected ON"},
        {"create index i on t (a) where", "expected a predicate after WHERE"},
        {"create index i on t (a) junk", "unexpected trailing text"},
        {"create index aux.i on other.t (a)", "not in the schema of its table"},
        {"drop index", "expected an identifier"},
    };
    for (const auto& c : cases) {
        const std::string& text = c.first;
        const std::string& why = c.second;
        CAPTURE(text);
        const auto msg = schema_error_of([&] { return parse_ddl(text); });
        CHECK(starts_with(msg, "DDL: "));
        CHECK(msg.find(why) != std::string::npos);
        CHECK(msg.find(" at offset ") != std::string::npos);
        CHECK(!starts_with(msg, "unsupported DDL:"));
    }
    // The offset points at the problem.
    const auto msg = schema_error_of([] { return parse_ddl("alter table items alter column x set collate klingon"); });
    CHECK(msg.find("at offset 45") != std::string::npos);
}

TEST_CASE("ddl: well-formed statements crdtsync does not replicate say \"unsupported DDL:\"") {
    for (const std::string text : {
             "alter table t add constraint c check (x > 0)",
             "alter table t add unique (a)",
             "alter table t add primary key (a)",
             "alter table t add foreign key (a) references u (b)",
             "alter table t drop constraint c",
             "alter table t rename column a to b",
             "alter table t rename a to b",
             "alter table t alter primary key (a)",
             "create view v as select 1",
             "create temp table t (a integer primary key)",
             "create trigger tr after insert on t begin select 1; end",
             "create index i on t (lower(a))",
             "create index i on t ((a + 1))",
             "drop view v",
             "alter index i rename to j",
         }) {
        CAPTURE(text);
        const auto msg = schema_error_of([&] { return parse_ddl(text); });
        CHECK(starts_with(msg, "unsupported DDL:"));
        CHECK(msg.find(text) != std::string::npos); // the statement is quoted
    }
}

TEST_CASE("ddl: table_def::from_ddl and parse_add_column still read what they read before the lexer moved") {
    const auto t = table_def::from_ddl(
        "CREATE TABLE IF NOT EXISTS aux.[t t] (`a` varchar(10) COLLATE rtrim, \"b\" BIGINT NULL, c, PRIMARY KEY (a DESC, c)) USING store (x = 1)");
    CHECK(t.schema_name() == "aux");
    CHECK(t.name() == "t t");
    REQUIRE(t.columns().size() == 3);
    CHECK(t.columns()[0] == col("a", column_type::text, false, std::nullopt, collation::rtrim));
    CHECK(t.columns()[1] == col("b", column_type::integer, true));
    CHECK(t.columns()[2] == col("c", column_type::any, false));
    CHECK(t.key_columns() == std::vector<std::size_t>{0, 2});
    const auto add = table_def::parse_add_column("ALTER TABLE aux.t ADD COLUMN d REAL NULL DEFAULT 1.25");
    CHECK(add.schema == "aux");
    CHECK(add.table == "t");
    CHECK(add.column == col("d", column_type::real, true, value{1.25}));
    const auto msg = schema_error_of([] { return table_def::from_ddl("create table t (id integer primary key, x text collate klingon)"); });
    CHECK(msg.find("unknown collation \"klingon\" in table main.t") != std::string::npos);
    const auto dup = schema_error_of([] { return table_def::from_ddl("create table t (id integer primary key, id text)"); });
    CHECK(dup.find("duplicate column \"id\"") != std::string::npos);
}
