// crdtsync: the command-line tool. The command line (CLI11), logging
// (spdlog), exit codes, and the commands that need no network: exec, stat,
// dump, snapshot export / import, conflicts, version. serve and sync are in
// net.cpp. docs/cli.md documents every command.

#include "render.hpp"
#include "sql.hpp"
#include "tool.hpp"

#include <crdtsync/ddl.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

namespace crdtsync_cli {
namespace {

// ---------------------------------------------------------------- helpers

std::string read_all(std::istream& in) { return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}; }

std::string size_text(std::uint64_t bytes) {
    const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    if (u == 0) std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
    else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

/// A progress line on stderr, drawn only when stderr is a terminal, at
/// most every 100 ms, and once more, complete, at the end.
class progress {
public:
    explicit progress(std::string what) : what_(std::move(what)), tty_(::isatty(STDERR_FILENO) == 1) {}
    ~progress() { finish(); }
    /// `done` of `total` (total 0: unknown), and a count to show.
    void update(std::uint64_t done, std::uint64_t total, std::uint64_t entries) {
        if (!tty_) return;
        done_ = done;
        total_ = total;
        entries_ = entries;
        used_ = true;
        const auto now = std::chrono::steady_clock::now();
        if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        draw();
    }
    /// Draws the final state and ends the line.
    void finish() {
        if (!tty_ || !used_) return;
        draw();
        std::fputs("\n", stderr);
        used_ = drawn_ = false;
    }
    /// The work is complete: the final line shows 100 %.
    void complete() { done_ = total_; }

private:
    void draw() {
        drawn_ = true;
        std::string line = "\r" + what_ + " ";
        if (total_ > 0) {
            const int width = 30;
            const int filled = std::min(width, static_cast<int>(static_cast<double>(done_) / static_cast<double>(total_) * width));
            line += "[" + std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(width - filled), '.') +
                    "] " + std::to_string(std::min<std::uint64_t>(100, done_ * 100 / total_)) + "% ";
        }
        line += std::to_string(entries_) + " entries";
        std::fputs(line.c_str(), stderr);
        std::fflush(stderr);
    }

    std::string what_;
    bool tty_;
    bool drawn_ = false, used_ = false;
    std::uint64_t done_ = 0, total_ = 0, entries_ = 0;
    std::chrono::steady_clock::time_point last_{};
};

// ---------------------------------------------------------------- exec

struct exec_args {
    std::string data;
    std::vector<std::string> sql;
    std::string format = "table";
};

row_format parse_row_format(const std::string& f) {
    if (f == "json") return row_format::json;
    if (f == "csv") return row_format::csv;
    return row_format::table;
}

/// A literal as the value column `i` of `def` stores: text written to a
/// JSON column is parsed as JSON.
crdtsync::value to_value(const crdtsync::table_def& def, std::size_t i, const sql::literal& lit) {
    if (lit.text && def.columns()[i].type == crdtsync::column_type::json) {
        try {
            return crdtsync::wire::decode<crdtsync::value>(lit.v.as_text());
        } catch (const crdtsync::error& e) {
            fail(exit_code::refused, "column \"" + def.columns()[i].name + "\" of table " + def.qualified_name() +
                                         " is JSON and " + lit.v.to_text() + " is not JSON text: " + e.message());
        }
    }
    return lit.v;
}

/// The primary key a WHERE clause names: every key column, nothing else.
crdtsync::row_key key_of(const crdtsync::table_def& def, const sql::equalities& where) {
    std::string key_names;
    for (auto k : def.key_columns()) key_names += (key_names.empty() ? "" : ", ") + def.columns()[k].name;
    for (const auto& [name, lit] : where) {
        const auto i = def.find_column(name);
        if (!i) fail(exit_code::refused, "table " + def.qualified_name() + " has no column \"" + name + "\"");
        if (!def.is_key_column(*i))
            fail(exit_code::sql, "WHERE names \"" + name + "\", which is not a primary key column of " +
                                     def.qualified_name() + " (" + key_names +
                                     "): this tool reads, updates and deletes rows by their primary key");
    }
    crdtsync::row_key pk;
    for (auto k : def.key_columns()) {
        const auto& col = def.columns()[k].name;
        const auto it = std::find_if(where.begin(), where.end(), [&](const auto& e) { return e.first == col; });
        if (it == where.end())
            fail(exit_code::sql, "WHERE must give every primary key column of " + def.qualified_name() + " (" +
                                     key_names + "); \"" + col + "\" is missing");
        pk.push_back(to_value(def, k, it->second));
    }
    return pk;
}

crdtsync::row row_of(const crdtsync::table_def& def, const std::vector<std::string>& columns,
                     const std::vector<sql::literal>& values) {
    crdtsync::row r;
    if (columns.empty()) {
        if (values.size() != def.columns().size())
            fail(exit_code::sql, "INSERT INTO " + def.qualified_name() + " gives " + std::to_string(values.size()) +
                                     " value(s) for its " + std::to_string(def.columns().size()) +
                                     " columns; name the columns to give fewer");
        for (std::size_t i = 0; i < values.size(); ++i) r[def.columns()[i].name] = to_value(def, i, values[i]);
        return r;
    }
    if (values.size() != columns.size())
        fail(exit_code::sql, "INSERT INTO " + def.qualified_name() + " names " + std::to_string(columns.size()) +
                                 " column(s) and gives " + std::to_string(values.size()) + " value(s)");
    for (std::size_t i = 0; i < columns.size(); ++i) r[columns[i]] = to_value(def, def.column_index(columns[i]), values[i]);
    return r;
}

void print_select(const crdtsync::table_def& def, const std::vector<crdtsync::row>& rows, row_format f) {
    switch (f) {
    case row_format::table: print_rows_table(std::cout, def, rows); break;
    case row_format::json: std::cout << rows_json(def, rows).dump(2) << "\n"; break;
    case row_format::csv: print_csv(std::cout, def, rows); break;
    }
}

/// A statement for a message: its first 120 characters.
std::string excerpt(const std::string& text) { return text.size() <= 120 ? text : text.substr(0, 117) + "..."; }

/// Where a transaction of statements [first, end) failed: in statement
/// `at`, or at the commit (`at == end`).
std::string failed_in(const std::vector<sql::parsed_statement>& st, std::size_t first, std::size_t at, std::size_t end) {
    const std::string nothing = end - first > 1 ? "; none of the " + std::to_string(end - first) +
                                                      " statements of its transaction was written"
                                                : "; nothing was written";
    if (at < end) return " (in \"" + excerpt(st[at].text) + "\")" + nothing;
    return " (committing " + (end - first > 1 ? "statements " + std::to_string(first + 1) + " to " + std::to_string(end)
                                              : "\"" + excerpt(st[first].text) + "\"") + ")" + nothing;
}

int cmd_exec(const exec_args& a) {
    std::string script;
    if (a.sql.size() == 1 && a.sql[0] == "-") script = read_all(std::cin);
    else
        for (const auto& s : a.sql) script += (script.empty() ? "" : " ") + s;
    const auto statements = sql::parse(script); // before the directory is touched
    const auto dir = replica_dir(a.data, dir_use::create);
    const auto r = open_replica(dir);
    auto& rep = r->rep;
    const auto format = parse_row_format(a.format);

    std::size_t i = 0;
    while (i < statements.size()) {
        const auto& st = statements[i];
        if (const auto* s = std::get_if<sql::select>(&st.what)) {
            try {
                const auto def = rep.find_table(s->table);
                if (!def) {
                    (void)rep.rows(s->table); // throws, saying when the name was dropped or renamed
                    fail(exit_code::refused, "no table " + s->table);
                }
                std::vector<crdtsync::row> rows;
                if (s->where) {
                    if (auto row = rep.get(s->table, key_of(*def, *s->where))) rows.push_back(std::move(*row));
                } else {
                    rows = rep.rows(s->table);
                }
                print_select(*def, rows, format);
            } catch (const crdtsync::error& e) {
                fail(code_of(e), e.message() + " (in \"" + excerpt(st.text) + "\")");
            } catch (const tool_error& e) {
                fail(e.code(), std::string(e.what()) + " (in \"" + excerpt(st.text) + "\")");
            }
            ++i;
            continue;
        }
        // Consecutive writes commit together, in one transaction.
        auto end = i;
        while (end < statements.size() && !std::holds_alternative<sql::select>(statements[end].what)) ++end;
        std::vector<std::string> done;
        std::size_t at = i;
        try {
            rep.write([&](replica_t::transaction& tx) {
                done.clear();
                for (at = i; at < end; ++at) {
                    std::visit(
                        [&](const auto& x) {
                            using T = std::decay_t<decltype(x)>;
                            if constexpr (std::is_same_v<T, sql::create_table>) {
                                auto def = crdtsync::table_def::from_ddl(x.ddl);
                                bool exists = false;
                                try {
                                    (void)tx.table(def.qualified_name());
                                    exists = true;
                                } catch (const crdtsync::schema_error&) {
                                }
                                // SQL's rule: CREATE TABLE of a table that exists is an
                                // error, IF NOT EXISTS makes it nothing. (The replica
                                // itself treats a create it already covers as nothing,
                                // and merges one that adds columns: docs/schema.md.)
                                if (exists && !x.if_not_exists)
                                    crdtsync::detail::raise(crdtsync::errc::schema,
                                                            "table " + def.qualified_name() + " already exists (CREATE TABLE IF NOT EXISTS "
                                                            "leaves it as it is; ALTER TABLE ... ADD COLUMN adds a column)");
                                if (!exists) tx.create_table(def);
                                done.push_back("CREATE TABLE " + def.qualified_name());
                            } else if constexpr (std::is_same_v<T, sql::add_column>) {
                                const auto add = crdtsync::table_def::parse_add_column(x.ddl);
                                tx.add_column(add.schema + "." + add.table, add.column);
                                done.push_back("ALTER TABLE " + add.schema + "." + add.table + " ADD COLUMN " + add.column.name);
                            } else if constexpr (std::is_same_v<T, sql::schema_change>) {
                                // The library parses and applies it; indexes are
                                // refused there (docs/schema.md).
                                const auto stmt = crdtsync::parse_ddl(x.ddl);
                                tx.execute(x.ddl);
                                done.push_back(std::visit(
                                    [](const auto& d) -> std::string {
                                        using D = std::decay_t<decltype(d)>;
                                        if constexpr (std::is_same_v<D, crdtsync::ddl_drop_table>) return "DROP TABLE " + d.schema + "." + d.table;
                                        else if constexpr (std::is_same_v<D, crdtsync::ddl_drop_column>)
                                            return "ALTER TABLE " + d.schema + "." + d.table + " DROP COLUMN " + d.column;
                                        else if constexpr (std::is_same_v<D, crdtsync::ddl_alter_column>)
                                            return "ALTER TABLE " + d.schema + "." + d.table + " ALTER COLUMN " + d.column;
                                        else if constexpr (std::is_same_v<D, crdtsync::ddl_rename_table>)
                                            return "ALTER TABLE " + d.schema + "." + d.from + " RENAME TO " + d.to;
                                        else return "OK";
                                    },
                                    stmt));
                            } else if constexpr (std::is_same_v<T, sql::insert>) {
                                const auto& def = tx.table(x.table);
                                for (const auto& values : x.rows) tx.insert(x.table, row_of(def, x.columns, values));
                                done.push_back("INSERT " + std::to_string(x.rows.size()));
                            } else if constexpr (std::is_same_v<T, sql::update>) {
                                const auto& def = tx.table(x.table);
                                crdtsync::row changes;
                                for (const auto& [col, lit] : x.set) changes[col] = to_value(def, def.column_index(col), lit);
                                done.push_back(std::string("UPDATE ") + (tx.update(x.table, key_of(def, x.where), changes) ? "1" : "0"));
                            } else if constexpr (std::is_same_v<T, sql::erase>) {
                                const auto& def = tx.table(x.table);
                                done.push_back(std::string("DELETE ") + (tx.erase(x.table, key_of(def, x.where)) ? "1" : "0"));
                            }
                        },
                        statements[at].what);
                }
            });
        } catch (const crdtsync::error& e) {
            fail(code_of(e), e.message() + failed_in(statements, i, at, end));
        } catch (const tool_error& e) {
            fail(e.code(), std::string(e.what()) + failed_in(statements, i, at, end));
        }
        for (const auto& line : done) std::cout << line << "\n";
        i = end;
    }
    return 0;
}

// ---------------------------------------------------------------- stat

struct table_counts {
    std::uint64_t rows = 0, cells = 0, tombstones = 0;
};

/// Per table: visible rows, stored cells and tombstones. Cells and
/// tombstones come from the replica's state dump.
std::map<std::string, table_counts> count_tables(const replica_t& rep) {
    std::map<std::string, table_counts> out;
    for (const auto& t : rep.tables()) out[t.qualified_name()].rows = rep.rows(t.qualified_name()).size();
    std::istringstream dump(rep.dump());
    std::string line, table;
    while (std::getline(dump, line)) {
        if (line.rfind("table ", 0) == 0) {
            table = line.substr(6, line.find(' ', 6) - 6);
        } else if (line.rfind("  cell ", 0) == 0) {
            ++out[table].cells;
        } else if (line.rfind("  tomb ", 0) == 0) {
            ++out[table].tombstones;
        }
    }
    return out;
}

struct stat_args {
    std::string data;
    std::string format = "text";
};

int cmd_stat(const stat_args& a) {
    const auto dir = replica_dir(a.data, dir_use::existing);
    const auto r = open_replica(dir);
    const auto& rep = r->rep;
    const auto counts = count_tables(rep);
    const auto peers = rep.peers();

    MDB_envinfo info{};
    MDB_stat st{};
    (void)mdb_env_info(r->store.native_handle(), &info);
    (void)mdb_env_stat(r->store.native_handle(), &st);
    const std::uint64_t used = (static_cast<std::uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
    struct ::stat fst {};
    const auto file = (dir / replica_file).string();
    const std::uint64_t file_size = ::stat(file.c_str(), &fst) == 0 ? static_cast<std::uint64_t>(fst.st_size) : 0;
    crdtsync::snapshot_loader<replica_t> probe{r->rep};
    const auto load = probe.checkpoint();

    std::uint64_t conflicts = 0;
    if (std::ifstream cf{dir / conflicts_file}) {
        std::string l;
        while (std::getline(cf, l)) conflicts += !l.empty();
    }

    if (a.format == "json") {
        nlohmann::json j;
        j["directory"] = dir.string();
        j["siteId"] = rep.site_id().to_text();
        j["position"] = rep.position();
        j["clock"] = rep.clock().to_text();
        j["deletePolicy"] = std::string(crdtsync::to_text(*rep.options().deletes));
        j["tables"] = nlohmann::json::array();
        for (const auto& [name, c] : counts)
            j["tables"].push_back({{"name", name}, {"rows", c.rows}, {"cells", c.cells}, {"tombstones", c.tombstones}});
        j["peers"] = nlohmann::json::array();
        for (const auto& [site, p] : peers)
            j["peers"].push_back({{"siteId", site.to_text()}, {"receivedUpTo", p.received_up_to}, {"sentUpTo", p.sent_up_to}});
        j["store"] = {{"file", file}, {"fileBytes", file_size}, {"usedBytes", used}, {"mapBytes", r->store.map_size()}};
        j["snapshotLoad"] = load ? nlohmann::json{{"snapshotId", load->snapshot_id}, {"entries", load->entries_processed}}
                                 : nlohmann::json(nullptr);
        j["conflicts"] = conflicts;
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::uint64_t tombstones = 0;
    for (const auto& [name, c] : counts) tombstones += c.tombstones;
    std::cout << "replica        " << dir.string() << "\n"
              << "site id        " << rep.site_id().to_text() << "\n"
              << "position       " << rep.position() << "\n"
              << "clock          " << rep.clock().to_text() << "\n"
              << "delete policy  " << crdtsync::to_text(*rep.options().deletes) << "\n"
              << "tables         " << counts.size() << "\n";
    for (const auto& [name, c] : counts)
        std::cout << "  " << name << ": " << c.rows << (c.rows == 1 ? " row" : " rows") << ", " << c.cells
                  << (c.cells == 1 ? " cell" : " cells") << ", " << c.tombstones
                  << (c.tombstones == 1 ? " tombstone" : " tombstones") << "\n";
    std::cout << "tombstones     " << tombstones << "\n"
              << "peers          " << peers.size() << "\n";
    for (const auto& [site, p] : peers)
        std::cout << "  " << site.to_text() << ": received up to " << p.received_up_to << ", sent up to " << p.sent_up_to << "\n";
    std::cout << "store          " << size_text(file_size) << " file, " << size_text(used) << " in use, map "
              << size_text(r->store.map_size()) << "\n"
              << "snapshot load  "
              << (load ? "unfinished: snapshot " + load->snapshot_id + ", " + std::to_string(load->entries_processed) + " entries loaded"
                       : std::string("none"))
              << "\n"
              << "conflicts      " << conflicts << " kept (crdtsync conflicts)\n";
    return 0;
}

// ---------------------------------------------------------------- dump

struct dump_args {
    std::string data;
    std::string table;
    std::string format = "table";
};

int cmd_dump(const dump_args& a) {
    const auto dir = replica_dir(a.data, dir_use::existing);
    const auto r = open_replica(dir);
    const auto& rep = r->rep;
    if (a.format == "state") {
        std::cout << rep.dump();
        return 0;
    }
    std::vector<crdtsync::table_def> tables;
    if (!a.table.empty()) {
        auto t = rep.find_table(a.table);
        if (!t) {
            std::string names;
            for (const auto& d : rep.tables()) names += (names.empty() ? "" : ", ") + d.qualified_name();
            fail(exit_code::refused, "the replica has no table " + a.table + (names.empty() ? " (it has no tables)" : " (it has " + names + ")"));
        }
        tables.push_back(std::move(*t));
    } else {
        tables = rep.tables();
    }
    if (a.format == "json") {
        nlohmann::json j = nlohmann::json::object();
        for (const auto& t : tables) j[t.qualified_name()] = table_json(t, rep.rows(t.qualified_name()));
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    if (a.format == "csv") {
        if (tables.size() != 1)
            fail(exit_code::usage, "CSV holds one table and the replica has " + std::to_string(tables.size()) + ": pass --table");
        print_csv(std::cout, tables[0], rep.rows(tables[0].qualified_name()));
        return 0;
    }
    if (tables.empty()) std::cout << "(no tables)\n";
    bool first = true;
    for (const auto& t : tables) {
        std::cout << (first ? "" : "\n") << t.qualified_name() << "\n";
        first = false;
        print_rows_table(std::cout, t, rep.rows(t.qualified_name()));
    }
    return 0;
}

// ---------------------------------------------------------------- conflicts

struct conflicts_args {
    std::string data;
    std::string format = "table";
};

int cmd_conflicts(const conflicts_args& a) {
    const auto dir = replica_dir(a.data, dir_use::existing);
    std::vector<nlohmann::json> items;
    if (std::ifstream in{dir / conflicts_file}) {
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            try {
                items.push_back(nlohmann::json::parse(line));
            } catch (const std::exception&) {
                spdlog::warn("skipping a line of {} that is not JSON", (dir / conflicts_file).string());
            }
        }
    }
    if (a.format == "json") {
        std::cout << nlohmann::json(items).dump(2) << "\n";
        return 0;
    }
    if (items.empty()) {
        std::cout << "no conflicts\n";
        return 0;
    }
    std::vector<std::vector<std::pair<std::string, bool>>> cells;
    auto text = [](const nlohmann::json& j, const char* k) {
        const auto it = j.find(k);
        if (it == j.end()) return std::string();
        return it->is_string() ? it->get<std::string>() : it->dump();
    };
    for (const auto& j : items)
        cells.push_back({{text(j, "at"), false},
                         {text(j, "table"), false},
                         {text(j, "pk"), false},
                         {text(j, "column"), false},
                         {text(j, "kept"), false},
                         {text(j, "dropped"), false}});
    print_table(std::cout, {"at", "table", "key", "column", "kept", "dropped"}, cells);
    std::cout << "(" << items.size() << (items.size() == 1 ? " conflict)\n" : " conflicts)\n");
    return 0;
}

// ---------------------------------------------------------------- snapshot

struct snapshot_args {
    std::string data;
    std::string file;
};

std::uint64_t entries_of(const crdtsync::snapshot_chunk& c) {
    if (const auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&c)) return cv->entries.size();
    if (const auto* t = std::get_if<crdtsync::snapshot_tombstones>(&c)) return t->entries.size();
    return 0;
}

int cmd_snapshot_export(const snapshot_args& a) {
    const auto dir = replica_dir(a.data, dir_use::existing);
    const auto r = open_replica(dir);
    const bool to_stdout = a.file == "-";
    const std::string partial = a.file + ".partial";
    std::ofstream file;
    if (!to_stdout) {
        file.open(partial, std::ios::binary | std::ios::trunc);
        if (!file) fail(exit_code::file, "cannot write '" + partial + "': " + std::strerror(errno));
    }
    std::ostream& out = to_stdout ? std::cout : file;
    std::uint64_t chunks = 0, entries = 0;
    progress bar("exporting");
    try {
        crdtsync::snapshot_writer<replica_t> w{r->rep};
        while (auto c = w.next()) {
            out << crdtsync::wire::encode_snapshot_chunk(*c) << "\n";
            if (!out) fail(exit_code::file, "cannot write '" + (to_stdout ? std::string("stdout") : partial) + "': " + std::strerror(errno));
            ++chunks;
            entries += entries_of(*c);
            bar.update(0, 0, entries);
        }
        bar.finish();
        if (!to_stdout) {
            file.close();
            if (!file) fail(exit_code::file, "cannot write '" + partial + "': " + std::strerror(errno));
            std::error_code ec;
            fs::rename(partial, a.file, ec);
            if (ec) fail(exit_code::file, "cannot rename '" + partial + "' to '" + a.file + "': " + ec.message());
        }
        spdlog::info("exported snapshot {} of site {}: {} chunks, {} entries{}", w.header().snapshot_id,
                     r->rep.site_id().to_text(), chunks, entries, to_stdout ? "" : " to " + a.file);
    } catch (...) {
        if (!to_stdout) {
            std::error_code ec;
            fs::remove(partial, ec);
        }
        throw;
    }
    return 0;
}

int cmd_snapshot_import(const snapshot_args& a) {
    std::ifstream in(a.file, std::ios::binary);
    if (!in) fail(exit_code::file, "cannot read '" + a.file + "': " + std::strerror(errno));
    std::error_code ec;
    const auto total = a.file == "/dev/stdin" ? 0 : fs::file_size(a.file, ec);

    std::uint64_t line_no = 0, read_bytes = 0, entries = 0;
    std::string line;
    auto next_chunk = [&]() -> std::optional<crdtsync::snapshot_chunk> {
        while (std::getline(in, line)) {
            ++line_no;
            read_bytes += line.size() + 1;
            if (line.empty()) continue;
            try {
                return crdtsync::wire::decode_snapshot_chunk(line);
            } catch (const crdtsync::error& e) {
                fail(exit_code::bad_snapshot, "'" + a.file + "' line " + std::to_string(line_no) +
                                                  " is not a snapshot chunk: " + e.message());
            }
        }
        return std::nullopt;
    };

    // The file's first line is checked before the directory is touched.
    auto first = next_chunk();
    if (!first) fail(exit_code::bad_snapshot, "'" + a.file + "' holds no snapshot chunk");
    const auto* header = std::get_if<crdtsync::snapshot_header>(&*first);
    if (!header)
        fail(exit_code::bad_snapshot, "'" + a.file + "' does not start with a snapshot header (line 1 is a " +
                                          std::string(crdtsync::wire_type_of(*first)) + " chunk)");
    const auto dir = replica_dir(a.data, dir_use::create);
    dir_lock lock{dir, "snapshot import"};
    const auto r = open_replica(dir);
    keep_conflicts(r->rep, dir);
    crdtsync::snapshot_loader<replica_t> loader{r->rep};
    const auto checkpoint = loader.checkpoint();
    const bool resume = checkpoint && checkpoint->snapshot_id == header->snapshot_id;
    if (resume)
        spdlog::info("resuming the import of snapshot {} after {} entries", header->snapshot_id, checkpoint->entries_processed);
    else if (checkpoint)
        spdlog::warn("an unfinished import of snapshot {} is given up for snapshot {}", checkpoint->snapshot_id, header->snapshot_id);

    // On a resume, what the loader holds is skipped: the tables it completed,
    // and the entries it loaded of the table in progress (the file is the
    // same stream, so its chunks fall where they fell the first time).
    std::set<std::string> completed;
    std::uint64_t skip_entries = 0;
    bool in_progress_seen = false, skipping_table = false;
    if (resume) completed.insert(checkpoint->completed_tables.begin(), checkpoint->completed_tables.end());

    progress bar("importing");
    try {
        loader.push(*first);
        while (auto c = next_chunk()) {
            if (auto* ts = std::get_if<crdtsync::snapshot_table_start>(&*c); ts && resume) {
                const auto name = ts->schema + "." + ts->table;
                if (completed.contains(name)) {
                    skipping_table = true;
                    continue;
                }
                if (!in_progress_seen) {
                    in_progress_seen = true;
                    ts->first_entry = checkpoint->last_entry_index;
                    skip_entries = checkpoint->last_entry_index;
                }
            } else if (skipping_table) {
                if (std::holds_alternative<crdtsync::snapshot_table_end>(*c)) skipping_table = false;
                continue;
            } else if (auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&*c); cv && skip_entries > 0) {
                const auto n = std::min<std::uint64_t>(skip_entries, cv->entries.size());
                cv->entries.erase(cv->entries.begin(), cv->entries.begin() + static_cast<std::ptrdiff_t>(n));
                skip_entries -= n;
                if (cv->entries.empty()) continue;
            }
            entries += entries_of(*c);
            loader.push(*c);
            bar.update(read_bytes, total, entries);
        }
        bar.complete();
    } catch (const crdtsync::error& e) {
        bar.finish();
        fail(code_of(e), "'" + a.file + "' line " + std::to_string(line_no) + ": " + e.message() +
                             (line_no > 1 && (e.code() == crdtsync::errc::snapshot || e.code() == crdtsync::errc::storage_full)
                                  ? "; what was loaded before it stays, and the same command resumes the import"
                                  : ""));
    }
    bar.finish();
    if (!loader.done())
        fail(exit_code::bad_snapshot, "'" + a.file + "' ends before the snapshot's footer (line " + std::to_string(line_no) +
                                          "): the file is cut short; what was loaded stays, and importing the whole file resumes");
    const auto& res = loader.result();
    std::cout << "imported snapshot " << header->snapshot_id << " of site " << header->origin.to_text() << ": "
              << res.applied << " applied, " << res.skipped << " skipped, " << res.conflicts << " conflicts";
    if (loader.removed() > 0) std::cout << ", " << loader.removed() << " removed (the sender had dropped them)";
    std::cout << "\n";
    return 0;
}

// ---------------------------------------------------------------- version

int cmd_version() {
    std::cout << "crdtsync " << CRDTSYNC_VERSION_MAJOR << "." << CRDTSYNC_VERSION_MINOR << "." << CRDTSYNC_VERSION_PATCH
              << " (storage format " << crdtsync::storage_format_version << ", sync protocol "
              << crdtsync::protocol_version << ", snapshot format " << crdtsync::snapshot_format_version << ")\n";
    return 0;
}

// ---------------------------------------------------------------- logging

void setup_logging(const std::string& level, bool long_running) {
    auto logger = spdlog::stderr_color_mt("crdtsync");
    logger->set_pattern(long_running ? "%Y-%m-%d %H:%M:%S.%e %^%l%$ %v" : "crdtsync: %^%l%$: %v");
    logger->set_level(spdlog::level::from_str(level));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(logger);
}

} // namespace

std::vector<token_entry> read_token_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) fail(exit_code::file, "cannot read the token file '" + path + "': " + std::strerror(errno));
    std::vector<token_entry> out;
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        std::istringstream words(line);
        std::vector<std::string> w{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
        if (w.empty()) continue;
        if (w.size() == 1) {
            out.push_back({"", w[0]}); // a bare token (a client's token file)
            continue;
        }
        if (w.size() != 2)
            fail(exit_code::usage, "the token file '" + path + "' line " + std::to_string(n) +
                                       " is not `database-id token` (nor a single token)");
        out.push_back({w[0], w[1]});
    }
    return out;
}

} // namespace crdtsync_cli

int main(int argc, char** argv) {
    using namespace crdtsync_cli;
    CLI::App app{"crdtsync: offline-first table replication. Run a sync server, sync replicas, inspect and seed them."};
    app.require_subcommand(1);
    app.fallthrough();
    app.set_version_flag("--version", std::string("crdtsync ") + std::to_string(CRDTSYNC_VERSION_MAJOR) + "." +
                                          std::to_string(CRDTSYNC_VERSION_MINOR) + "." + std::to_string(CRDTSYNC_VERSION_PATCH));
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "Log level on stderr")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
        ->capture_default_str();
    app.footer("Exit codes: 0 ok, 2 usage, 3 SQL, 4 refused by the replica, 5 file, 6 bad snapshot, 10 not a replica,\n"
               "11 corrupt, 12 locked, 13 disk full, 14 storage, 20 bad URL, 21 unreachable, 22 auth failed,\n"
               "23 protocol version, 24 sync failed, 25 cannot listen (docs/cli.md).");

    serve_args serve;
    auto* serve_cmd = app.add_subcommand("serve", "Run the sync server (coordinator): one LMDB replica per database id");
    serve_cmd->add_option("--data", serve.data, "Server directory (one replica directory per database under it)")->required();
    serve_cmd->add_option("--listen", serve.listen, "ADDRESS:PORT to listen on (port 0: the OS picks)")->required();
    serve_cmd->add_option("--token-file", serve.token_file, "File of `database-id token` lines (`*` for every database)");
    serve_cmd->add_option("--max-message-bytes", serve.max_message_bytes, "Largest message accepted")->capture_default_str();
    serve_cmd->add_option("--cluster", serve.cluster,
                          "Share every database with other serve nodes through NATS JetStream: nats://HOST:PORT[,...] (docs/cluster.md)");
    serve_cmd->add_option("--cluster-replicas", serve.cluster_replicas, "JetStream replicas of each database's stream (R; 3 with a 3-server NATS cluster)")
        ->capture_default_str();
    serve_cmd->add_option("--cluster-max-age", serve.cluster_max_age, "Seconds a stream keeps a message (0: no limit)")->capture_default_str();
    serve_cmd->add_option("--cluster-max-msgs", serve.cluster_max_msgs, "Messages a stream keeps (-1: no limit)")->capture_default_str();
    serve_cmd->add_option("--cluster-ack-timeout", serve.cluster_ack_timeout,
                          "Seconds a client's apply_result waits for the stream's acknowledgement before the local one is sent")
        ->capture_default_str();
    serve_cmd->add_option("--cluster-snapshot-interval", serve.cluster_snapshot_interval,
                          "Seconds between the snapshots a node publishes for joining nodes (when its replica changed)")
        ->capture_default_str();
    serve_cmd->footer("Examples:\n  crdtsync serve --data ./server --listen 127.0.0.1:8080 --token-file tokens.txt\n"
                      "  crdtsync serve --data ./node1 --listen 127.0.0.1:8081 --cluster nats://127.0.0.1:4222 --cluster-replicas 1\n"
                      "Clients connect to ws://127.0.0.1:8080/sync/ws; GET /status and /metrics on the same port.");

    sync_args sync;
    auto* sync_cmd = app.add_subcommand("sync", "Sync a replica with a server: once, or stay connected with --watch");
    sync_cmd->add_option("--data", sync.data, "Replica directory (created when missing)")->required();
    sync_cmd->add_option("--server", sync.server, "Server URL, ws://HOST:PORT/sync/ws")->required();
    sync_cmd->add_option("--db", sync.db, "Database id on the server")->required();
    auto* token_opt = sync_cmd->add_option("--token", sync.token, "Token (visible to other users in ps: prefer --token-file)");
    sync_cmd->add_option("--token-file", sync.token_file, "File holding the token (or `database-id token` lines)")->excludes(token_opt);
    sync_cmd->add_flag("--watch", sync.watch, "Stay connected: push local commits as they happen, reconnect with backoff");
    sync_cmd->add_option("--retry-max", sync.retry_max, "With --watch: longest wait between reconnects, in seconds")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 3600.0));
    sync_cmd->add_option("--timeout", sync.timeout, "Without --watch: give up after this many seconds")
        ->capture_default_str()
        ->check(CLI::Range(0.1, 86400.0));
    sync_cmd->footer("Examples:\n  crdtsync sync --data ./alice --server ws://127.0.0.1:8080/sync/ws --db notes --token-file alice.token\n"
                     "  crdtsync sync --data ./alice --server ws://127.0.0.1:8080/sync/ws --db notes --watch");

    exec_args exec;
    auto* exec_cmd = app.add_subcommand("exec", "Run SQL statements on a replica (a subset: see docs/cli.md)");
    exec_cmd->add_option("--data", exec.data, "Replica directory (created when missing)")->required();
    exec_cmd->add_option("--format", exec.format, "Output of SELECT")
        ->check(CLI::IsMember({"table", "json", "csv"}))
        ->capture_default_str();
    exec_cmd->add_option("sql", exec.sql, "SQL statements separated by ';' (- reads them from stdin)")->required();
    exec_cmd->footer("Examples:\n"
                     "  crdtsync exec --data ./alice \"CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NULL, done BOOLEAN NULL)\"\n"
                     "  crdtsync exec --data ./alice \"INSERT INTO tasks VALUES (1, 'buy milk', FALSE)\"\n"
                     "  crdtsync exec --data ./alice \"UPDATE tasks SET done = TRUE WHERE id = 1\"\n"
                     "  crdtsync exec --data ./alice \"SELECT * FROM tasks WHERE id = 1\"\n"
                     "Columns are NOT NULL unless declared NULL (Quereus's rule); added columns must be NULL.");

    stat_args stat;
    auto* stat_cmd = app.add_subcommand("stat", "Show a replica: site id, position, tables, peers, tombstones, store size");
    stat_cmd->add_option("--data", stat.data, "Replica directory")->required();
    stat_cmd->add_option("--format", stat.format, "Output format")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
    stat_cmd->footer("Example:\n  crdtsync stat --data ./alice");

    dump_args dump;
    auto* dump_cmd = app.add_subcommand("dump", "Print a replica's tables");
    dump_cmd->add_option("--data", dump.data, "Replica directory")->required();
    dump_cmd->add_option("--table", dump.table, "Only this table");
    dump_cmd->add_option("--format", dump.format, "table, json, csv (one table), or state (every cell with its HLC)")
        ->check(CLI::IsMember({"table", "json", "csv", "state"}))
        ->capture_default_str();
    dump_cmd->footer("Examples:\n  crdtsync dump --data ./alice\n  crdtsync dump --data ./alice --table tasks --format csv");

    snapshot_args snap;
    auto* snap_cmd = app.add_subcommand("snapshot", "Export a replica's state to a file, or import one");
    snap_cmd->require_subcommand(1);
    auto* export_cmd = snap_cmd->add_subcommand("export", "Write the replica's snapshot (Quereus chunk JSON, one chunk a line)");
    export_cmd->add_option("--data", snap.data, "Replica directory")->required();
    export_cmd->add_option("file", snap.file, "Output file (- for stdout)")->required();
    export_cmd->footer("Example:\n  crdtsync snapshot export --data ./alice alice.snapshot");
    auto* import_cmd = snap_cmd->add_subcommand("import", "Load a snapshot file into a replica (resumes an interrupted import)");
    import_cmd->add_option("--data", snap.data, "Replica directory (created when missing)")->required();
    import_cmd->add_option("file", snap.file, "Snapshot file")->required();
    import_cmd->footer("Example:\n  crdtsync snapshot import --data ./carol alice.snapshot");
    snap_cmd->footer("Examples:\n  crdtsync snapshot export --data ./alice alice.snapshot\n  crdtsync snapshot import --data ./carol alice.snapshot");

    conflicts_args conflicts;
    auto* conflicts_cmd = app.add_subcommand("conflicts", "List the conflicts merges into this replica resolved");
    conflicts_cmd->add_option("--data", conflicts.data, "Replica directory")->required();
    conflicts_cmd->add_option("--format", conflicts.format, "Output format")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();
    conflicts_cmd->footer("Example:\n  crdtsync conflicts --data ./alice");

    auto* version_cmd = app.add_subcommand("version", "Print the version, storage format and protocol version");
    version_cmd->footer("Example:\n  crdtsync version");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : static_cast<int>(exit_code::usage);
    }

    setup_logging(log_level, serve_cmd->parsed() || (sync_cmd->parsed() && sync.watch));
    try {
        if (serve_cmd->parsed()) return run_serve(serve);
        if (sync_cmd->parsed()) return run_sync(sync);
        if (exec_cmd->parsed()) return cmd_exec(exec);
        if (stat_cmd->parsed()) return cmd_stat(stat);
        if (dump_cmd->parsed()) return cmd_dump(dump);
        if (export_cmd->parsed()) return cmd_snapshot_export(snap);
        if (import_cmd->parsed()) return cmd_snapshot_import(snap);
        if (conflicts_cmd->parsed()) return cmd_conflicts(conflicts);
        if (version_cmd->parsed()) return cmd_version();
    } catch (const tool_error& e) {
        spdlog::error("{}", e.what());
        return static_cast<int>(e.code());
    } catch (const crdtsync::error& e) {
        spdlog::error("{}", e.message());
        return static_cast<int>(code_of(e));
    } catch (const std::bad_alloc&) {
        spdlog::error("out of memory");
        return static_cast<int>(exit_code::failure);
    } catch (const std::exception& e) {
        spdlog::error("unexpected failure: {}", e.what());
        return static_cast<int>(exit_code::failure);
    }
    return static_cast<int>(exit_code::usage);
}
