#pragma once
// How the tool prints rows: a readable table (the default), JSON (values as
// the Quereus wire writes them: blobs {"__bin": base64}, big integers
// {"__bigint": text}), or CSV (RFC 4180; NULL is an empty field, blobs are
// hex). JSON output is deterministic: two converged replicas print the same
// bytes.

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "tool.hpp"

namespace crdtsync_cli {

enum class row_format { table, json, csv };

/// A value as one table or CSV cell.
inline std::string cell_text(const crdtsync::value& v, bool csv) {
    switch (v.kind()) {
    case crdtsync::value_kind::null: return csv ? "" : "NULL";
    case crdtsync::value_kind::text: return v.as_text();
    case crdtsync::value_kind::blob: {
        static constexpr char hex[] = "0123456789abcdef";
        std::string s = csv ? "" : "x'";
        for (unsigned char c : v.as_blob().bytes) {
            s += hex[c >> 4];
            s += hex[c & 15];
        }
        return csv ? s : s + "'";
    }
    default: return v.to_text();
    }
}

inline bool right_aligned(const crdtsync::value& v) {
    const auto k = v.kind();
    return k == crdtsync::value_kind::integer || k == crdtsync::value_kind::big_integer || k == crdtsync::value_kind::real;
}

/// Number of UTF-8 code points (close enough to the display width).
inline std::size_t display_width(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

/// Rows of `def` as a JSON array of objects, in primary-key order.
inline nlohmann::json rows_json(const crdtsync::table_def& def, const std::vector<crdtsync::row>& rows) {
    auto out = nlohmann::json::array();
    for (const auto& r : rows) {
        nlohmann::json o = nlohmann::json::object();
        for (const auto& c : def.columns()) {
            const auto it = r.find(c.name);
            o[c.name] = it == r.end() ? nlohmann::json(nullptr) : value_json(it->second);
        }
        out.push_back(std::move(o));
    }
    return out;
}

/// One table's description and rows, as `dump --format json` prints each table.
inline nlohmann::json table_json(const crdtsync::table_def& def, const std::vector<crdtsync::row>& rows) {
    auto key = nlohmann::json::array();
    for (auto k : def.key_columns()) key.push_back(def.columns()[k].name);
    auto cols = nlohmann::json::array();
    for (const auto& c : def.columns()) cols.push_back(c.name);
    return {{"ddl", def.to_ddl()}, {"columns", cols}, {"primaryKey", key}, {"rows", rows_json(def, rows)}};
}

inline std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

inline void print_csv(std::ostream& out, const crdtsync::table_def& def, const std::vector<crdtsync::row>& rows) {
    const auto& cols = def.columns();
    for (std::size_t i = 0; i < cols.size(); ++i) out << (i ? "," : "") << csv_field(cols[i].name);
    out << "\r\n";
    for (const auto& r : rows) {
        for (std::size_t i = 0; i < cols.size(); ++i) {
            const auto it = r.find(cols[i].name);
            out << (i ? "," : "") << (it == r.end() ? std::string() : csv_field(cell_text(it->second, true)));
        }
        out << "\r\n";
    }
}

/// An aligned table with a header: `title` above it when not empty.
inline void print_table(std::ostream& out, const std::vector<std::string>& header,
                        const std::vector<std::vector<std::pair<std::string, bool>>>& cells) {
    std::vector<std::size_t> width(header.size());
    for (std::size_t i = 0; i < header.size(); ++i) width[i] = display_width(header[i]);
    for (const auto& r : cells)
        for (std::size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], display_width(r[i].first));
    auto pad = [&](const std::string& s, std::size_t w, bool right) {
        const std::string fill(w - std::min(w, display_width(s)), ' ');
        return right ? fill + s : s + fill;
    };
    std::string line;
    for (std::size_t i = 0; i < header.size(); ++i) line += (i ? " | " : " ") + pad(header[i], width[i], false);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
    line.clear();
    for (std::size_t i = 0; i < header.size(); ++i) line += (i ? "-+-" : "-") + std::string(width[i], '-');
    out << line << "-\n";
    for (const auto& r : cells) {
        line.clear();
        for (std::size_t i = 0; i < r.size(); ++i) line += (i ? " | " : " ") + pad(r[i].first, width[i], r[i].second);
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out << line << "\n";
    }
}

inline void print_rows_table(std::ostream& out, const crdtsync::table_def& def, const std::vector<crdtsync::row>& rows) {
    std::vector<std::string> header;
    for (const auto& c : def.columns()) header.push_back(c.name);
    std::vector<std::vector<std::pair<std::string, bool>>> cells;
    for (const auto& r : rows) {
        auto& line = cells.emplace_back();
        for (const auto& c : def.columns()) {
            const auto it = r.find(c.name);
            if (it == r.end()) line.emplace_back("NULL", false);
            else line.emplace_back(cell_text(it->second, false), right_aligned(it->second));
        }
    }
    print_table(out, header, cells);
    out << "(" << rows.size() << (rows.size() == 1 ? " row)\n" : " rows)\n");
}

} // namespace crdtsync_cli
