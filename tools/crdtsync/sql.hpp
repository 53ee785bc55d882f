#pragma once
// The SQL subset of `crdtsync exec`: enough for demos and scripts, parsed
// here and executed by main.cpp through the replica's API. CREATE TABLE and
// ALTER TABLE ... ADD COLUMN are handed whole to the library's own DDL
// parser (table_def::from_ddl, table_def::parse_add_column), so a table
// means here exactly what it means when its migration travels.
//
//   CREATE TABLE [IF NOT EXISTS] t (...)
//   ALTER TABLE t ADD [COLUMN] c type [NULL]
//   INSERT INTO t [(c, ...)] VALUES (v, ...)[, (v, ...)]...
//   UPDATE t SET c = v[, c = v]... WHERE pk = v [AND pk2 = v]...
//   DELETE FROM t WHERE pk = v [AND pk2 = v]...
//   SELECT * FROM t [WHERE pk = v [AND pk2 = v]...]
//
// Values are literals: NULL, TRUE, FALSE, integers, reals, 'text' ('' is a
// quote), x'hex' blobs. Statements are separated by ';'; `--` and `/* */`
// comments are ignored.

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <crdtsync/value.hpp>

#include "tool.hpp"

namespace crdtsync_cli::sql {

inline constexpr std::string_view supported =
    "crdtsync exec supports: CREATE TABLE, ALTER TABLE ... ADD / DROP / ALTER COLUMN, ALTER TABLE ... RENAME TO, DROP TABLE, "
    "INSERT INTO ... VALUES, "
    "UPDATE ... SET ... WHERE <primary key> = ..., DELETE FROM ... WHERE <primary key> = ..., "
    "SELECT * FROM ... [WHERE <primary key> = ...]";

/// A literal, and whether it was written as text (a JSON column parses it).
struct literal {
    crdtsync::value v;
    bool text = false;
};

/// `col = literal AND ...`
using equalities = std::vector<std::pair<std::string, literal>>;

struct create_table {
    std::string ddl;
    std::string table;
    bool if_not_exists = false;
};
struct add_column {
    std::string ddl;
};
/// DROP TABLE, ALTER TABLE ... DROP COLUMN / ALTER COLUMN / RENAME TO (and what else the
/// library's DDL parser reads: it decides, through `transaction::execute`).
struct schema_change {
    std::string ddl;
};
struct insert {
    std::string table;
    std::vector<std::string> columns; ///< empty: every column, in table order
    std::vector<std::vector<literal>> rows;
};
struct update {
    std::string table;
    equalities set;
    equalities where;
};
struct erase {
    std::string table;
    equalities where;
};
struct select {
    std::string table;
    std::optional<equalities> where;
};

using statement = std::variant<create_table, add_column, schema_change, insert, update, erase, select>;

struct parsed_statement {
    statement what;
    std::string text; ///< the statement as written, for messages
};

namespace detail {

enum class tok { word, quoted, string, blob, number, punct, end };

struct token {
    tok kind = tok::end;
    std::string text;   ///< identifier / string contents, number text, punctuation
    std::size_t pos = 0; ///< offset in the script
};

class lexer {
public:
    explicit lexer(std::string_view s) : s_(s) {}

    std::vector<token> run() {
        std::vector<token> out;
        for (;;) {
            skip_space();
            token t;
            t.pos = i_;
            if (i_ >= s_.size()) {
                out.push_back(t);
                return out;
            }
            const char c = s_[i_];
            if ((c == 'x' || c == 'X') && i_ + 1 < s_.size() && s_[i_ + 1] == '\'') {
                ++i_;
                t.kind = tok::blob;
                t.text = quoted_string('\'', "blob literal");
            } else if (is_word_start(c)) {
                t.kind = tok::word;
                while (i_ < s_.size() && is_word_char(s_[i_])) t.text += s_[i_++];
            } else if (c == '"' || c == '`' || c == '[') {
                t.kind = tok::quoted;
                t.text = c == '[' ? bracketed() : quoted_string(c, "quoted identifier");
            } else if (c == '\'') {
                t.kind = tok::string;
                t.text = quoted_string('\'', "string");
            } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                       (c == '.' && i_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_ + 1])))) {
                t.kind = tok::number;
                t.text = number();
            } else if (std::string_view("(),;=*.-+").find(c) != std::string_view::npos) {
                t.kind = tok::punct;
                t.text = std::string(1, c);
                ++i_;
            } else {
                fail_at(s_, i_, std::string("unexpected character '") + c + "'");
            }
            out.push_back(std::move(t));
        }
    }

    [[noreturn]] static void fail_at(std::string_view s, std::size_t pos, const std::string& why, std::string_view hint = {}) {
        std::size_t line = 1, col = 1;
        for (std::size_t k = 0; k < pos && k < s.size(); ++k) {
            if (s[k] == '\n') {
                ++line;
                col = 1;
            } else {
                ++col;
            }
        }
        std::string near(s.substr(std::min(pos, s.size()), 30));
        if (const auto nl = near.find('\n'); nl != std::string::npos) near.resize(nl);
        fail(exit_code::sql, "SQL: " + why + " at line " + std::to_string(line) + ", column " + std::to_string(col) +
                                 (near.empty() ? std::string(" (end of input)") : " near \"" + near + "\"") +
                                 (hint.empty() ? std::string() : "; " + std::string(hint)));
    }

private:
    static bool is_word_start(char c) {
        return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80;
    }
    static bool is_word_char(char c) { return is_word_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$'; }

    void skip_space() {
        for (;;) {
            while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
            if (s_.substr(i_, 2) == "--") {
                while (i_ < s_.size() && s_[i_] != '\n') ++i_;
            } else if (s_.substr(i_, 2) == "/*") {
                const auto end = s_.find("*/", i_ + 2);
                if (end == std::string_view::npos) fail_at(s_, i_, "unterminated comment");
                i_ = end + 2;
            } else {
                return;
            }
        }
    }
    std::string quoted_string(char q, const char* what) {
        const auto start = i_;
        ++i_;
        std::string out;
        for (;;) {
            if (i_ >= s_.size()) fail_at(s_, start, std::string("unterminated ") + what);
            if (s_[i_] == q) {
                if (i_ + 1 < s_.size() && s_[i_ + 1] == q) {
                    out += q;
                    i_ += 2;
                    continue;
                }
                ++i_;
                return out;
            }
            out += s_[i_++];
        }
    }
    std::string bracketed() {
        const auto start = i_;
        const auto end = s_.find(']', i_);
        if (end == std::string_view::npos) fail_at(s_, start, "unterminated [identifier]");
        std::string out(s_.substr(i_ + 1, end - i_ - 1));
        i_ = end + 1;
        return out;
    }
    std::string number() {
        const auto start = i_;
        while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
        if (i_ < s_.size() && s_[i_] == '.') {
            ++i_;
            while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
        }
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
            ++i_;
            if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
            if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) fail_at(s_, start, "malformed number");
            while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
        }
        if (i_ < s_.size() && is_word_start(s_[i_])) fail_at(s_, start, "malformed number");
        return std::string(s_.substr(start, i_ - start));
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

inline bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

class parser {
public:
    parser(std::string_view script, std::vector<token> toks) : s_(script), t_(std::move(toks)) {}

    std::vector<parsed_statement> run() {
        std::vector<parsed_statement> out;
        for (;;) {
            while (accept_punct(";")) {}
            if (peek().kind == tok::end) return out;
            const auto start = peek().pos;
            auto st = statement_();
            if (!accept_punct(";") && peek().kind != tok::end) fail_here("expected ';' or the end of the statement");
            out.push_back({std::move(st), std::string(trim(s_.substr(start, stmt_end_ - start)))});
        }
    }

private:
    static std::string_view trim(std::string_view v) {
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
        return v;
    }
    const token& peek(std::size_t ahead = 0) const { return t_[std::min(at_ + ahead, t_.size() - 1)]; }
    const token& next() {
        const auto& t = t_[at_];
        if (at_ + 1 < t_.size()) ++at_;
        return t;
    }
    [[noreturn]] void fail_here(const std::string& why, std::string_view hint = {}) const {
        lexer::fail_at(s_, peek().pos, why, hint);
    }

    bool is_word(const token& t, std::string_view w) const { return t.kind == tok::word && iequal(t.text, w); }
    bool accept_word(std::string_view w) {
        if (!is_word(peek(), w)) return false;
        next();
        return true;
    }
    void expect_word(std::string_view w) {
        if (!accept_word(w)) fail_here("expected " + std::string(w));
    }
    bool accept_punct(std::string_view p) {
        if (peek().kind != tok::punct || peek().text != p) return false;
        next();
        return true;
    }
    void expect_punct(std::string_view p) {
        if (!accept_punct(p)) fail_here("expected '" + std::string(p) + "'");
    }

    std::string identifier(const char* what) {
        const auto& t = peek();
        if (t.kind != tok::word && t.kind != tok::quoted) fail_here(std::string("expected ") + what);
        return next().text;
    }
    std::string table_name() {
        auto name = identifier("a table name");
        if (accept_punct(".")) name += "." + identifier("a table name after the schema");
        return name;
    }

    // The raw text of the statement from `start` to its ';' (or the end).
    std::string raw_until_end(std::size_t start) {
        while (peek().kind != tok::end && !(peek().kind == tok::punct && peek().text == ";")) next();
        return std::string(trim(s_.substr(start, peek().pos - start)));
    }

    statement statement_() {
        const auto& first = peek();
        const auto start = first.pos;
        statement st;
        if (is_word(first, "CREATE")) {
            next();
            if (!is_word(peek(), "TABLE"))
                fail_here("CREATE " + (peek().kind == tok::end ? std::string() : peek().text) + " is not supported", supported);
            next();
            create_table c;
            if (is_word(peek(), "IF")) c.if_not_exists = true;
            if (c.if_not_exists) {
                next();
                expect_word("NOT");
                expect_word("EXISTS");
            }
            c.table = table_name();
            c.ddl = raw_until_end(start);
            st = std::move(c);
        } else if (is_word(first, "ALTER")) {
            next();
            expect_word("TABLE");
            (void)table_name();
            if (is_word(peek(), "ADD")) st = add_column{raw_until_end(start)};
            else st = schema_change{raw_until_end(start)};
        } else if (is_word(first, "DROP")) {
            next();
            if (!is_word(peek(), "TABLE"))
                fail_here("DROP " + (peek().kind == tok::end ? std::string() : peek().text) + " is not supported", supported);
            st = schema_change{raw_until_end(start)};
        } else if (is_word(first, "INSERT")) {
            next();
            expect_word("INTO");
            insert in;
            in.table = table_name();
            if (accept_punct("(")) {
                do in.columns.push_back(identifier("a column name"));
                while (accept_punct(","));
                expect_punct(")");
            }
            expect_word("VALUES");
            do {
                expect_punct("(");
                std::vector<literal> r;
                do r.push_back(value_());
                while (accept_punct(","));
                expect_punct(")");
                in.rows.push_back(std::move(r));
            } while (accept_punct(","));
            st = std::move(in);
        } else if (is_word(first, "UPDATE")) {
            next();
            update u;
            u.table = table_name();
            expect_word("SET");
            do {
                auto c = identifier("a column name");
                expect_punct("=");
                u.set.emplace_back(std::move(c), value_());
            } while (accept_punct(","));
            if (!is_word(peek(), "WHERE"))
                fail_here("UPDATE needs WHERE <primary key> = <value>: this tool updates one row at a time");
            next();
            u.where = equalities_();
            st = std::move(u);
        } else if (is_word(first, "DELETE")) {
            next();
            expect_word("FROM");
            erase d;
            d.table = table_name();
            if (!is_word(peek(), "WHERE"))
                fail_here("DELETE needs WHERE <primary key> = <value>: this tool deletes one row at a time");
            next();
            d.where = equalities_();
            st = std::move(d);
        } else if (is_word(first, "SELECT")) {
            next();
            if (!accept_punct("*")) fail_here("only SELECT * is supported");
            expect_word("FROM");
            select s;
            s.table = table_name();
            if (accept_word("WHERE")) s.where = equalities_();
            st = std::move(s);
        } else {
            fail_here(first.kind == tok::word ? "unsupported statement " + first.text : std::string("expected a statement"), supported);
        }
        stmt_end_ = peek().pos;
        return st;
    }

    equalities equalities_() {
        equalities out;
        do {
            auto c = identifier("a primary key column");
            if (!accept_punct("=")) fail_here("expected '=': WHERE takes <primary key column> = <value> [AND ...]");
            out.emplace_back(std::move(c), value_());
        } while (accept_word("AND"));
        return out;
    }

    literal value_() {
        bool negative = false;
        if (accept_punct("-")) negative = true;
        else (void)accept_punct("+");
        const auto& t = peek();
        if (t.kind == tok::number) return {number_value(next(), negative), false};
        if (negative) fail_here("expected a number after '-'");
        if (t.kind == tok::string) return {crdtsync::value{next().text}, true};
        if (t.kind == tok::blob) {
            const auto& b = next();
            if (b.text.size() % 2 != 0) lexer::fail_at(s_, b.pos, "a blob literal needs an even number of hex digits");
            std::string bytes;
            for (std::size_t i = 0; i < b.text.size(); i += 2) {
                unsigned byte = 0;
                const auto r = std::from_chars(b.text.data() + i, b.text.data() + i + 2, byte, 16);
                if (r.ec != std::errc{} || r.ptr != b.text.data() + i + 2) lexer::fail_at(s_, b.pos, "a blob literal holds hex digits only");
                bytes += static_cast<char>(byte);
            }
            return {crdtsync::value{crdtsync::blob{std::move(bytes)}}, false};
        }
        if (is_word(t, "NULL")) return (next(), literal{});
        if (is_word(t, "TRUE")) return (next(), literal{crdtsync::value{true}, false});
        if (is_word(t, "FALSE")) return (next(), literal{crdtsync::value{false}, false});
        fail_here("expected a value (NULL, TRUE, FALSE, a number, 'text' or x'hex')");
    }

    crdtsync::value number_value(const token& t, bool negative) {
        const std::string text = (negative ? "-" : "") + t.text;
        if (t.text.find_first_of(".eE") == std::string::npos) {
            std::int64_t i = 0;
            const auto r = std::from_chars(text.data(), text.data() + text.size(), i);
            if (r.ec == std::errc{} && r.ptr == text.data() + text.size()) return crdtsync::value{i};
            std::string digits = t.text;
            const auto nz = digits.find_first_not_of('0');
            digits = nz == std::string::npos ? "0" : digits.substr(nz);
            try {
                return crdtsync::value{crdtsync::big_integer::parse((negative ? "-" : "") + digits)};
            } catch (const crdtsync::error& e) {
                lexer::fail_at(s_, t.pos, e.message());
            }
        }
        return crdtsync::value{std::strtod(text.c_str(), nullptr)};
    }

    std::string_view s_;
    std::vector<token> t_;
    std::size_t at_ = 0;
    std::size_t stmt_end_ = 0;
};

} // namespace detail

/// Parses a script of statements. \throws tool_error (exit_code::sql)
/// naming the line and column of the problem.
inline std::vector<parsed_statement> parse(std::string_view script) {
    detail::lexer lx{script};
    detail::parser p{script, lx.run()};
    auto out = p.run();
    if (out.empty()) fail(exit_code::sql, "SQL: no statement given; " + std::string(supported));
    return out;
}

} // namespace crdtsync_cli::sql
