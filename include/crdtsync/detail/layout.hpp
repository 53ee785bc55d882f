#pragma once
// The replica's storage layout: one ordered keyspace, partitioned by a
// leading byte. docs/storage.md describes it for users; this file is the
// single place that builds and parses those keys and records.
//
//   'm' name                        -> meta (format, site, clock, seq, gc, next table id)
//   's' u32 table                   -> table record (definition + local column ids)
//   'r' u32 table, pk...            -> row record: its tombstone (if any) and its cells
//   'g' hlc(30)                     -> schema migration record
//   'l' u64 seq                     -> change-log entry: kind(1), key of the row or migration
//   'x' u64 created_ms, row key     -> tombstone arrival index (for pruning), empty value
//   'p' site(16)                    -> peer: received_up_to(8) sent_up_to(8)
//   'q' hlc(30)                     -> held change set (its table or column is not known yet):
//                                      seq(8), change set record (detail/change_set_record.hpp)
//
// pk... is the key-codec encoding of the primary key after collation
// folding, so keys that a collation calls equal name one row. Table and
// column ids are local to one replica (never on the wire).
//
// A row is one record: deciding and writing every change to a row costs one
// read and one write of it, whatever the number of its columns. Each cell and
// the tombstone carry the local sequence number (seq) of the write that
// stored them; all cells written together share it, and the change-log entry
// of that seq names the row. An entry is live while some part of its row
// still carries its seq.

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <crdtsync/detail/endian.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/hlc.hpp>
#include <crdtsync/key.hpp>
#include <crdtsync/value.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail::layout {

inline constexpr char meta = 'm';
inline constexpr char table_rec = 's';
inline constexpr char row = 'r';
inline constexpr char migration = 'g';
inline constexpr char log = 'l';
inline constexpr char peer = 'p';
inline constexpr char tomb_index = 'x';
inline constexpr char held = 'q';

// Appends rather than using operator+, which trips g++ 12's spurious
// -Wrestrict (GCC bug 105329).
inline std::string meta_key(std::string_view name) {
    std::string k(1, meta);
    k.append(name);
    return k;
}

inline std::string table_prefix(char space, std::uint32_t table_id) {
    std::string k(1, space);
    put_be<std::uint32_t>(k, table_id);
    return k;
}
inline std::string table_key(std::uint32_t table_id) { return table_prefix(table_rec, table_id); }

inline std::string log_key(std::uint64_t seq) {
    std::string k(1, log);
    put_be<std::uint64_t>(k, seq);
    return k;
}
inline std::uint64_t log_seq(std::string_view key) { return load_be<std::uint64_t>(key, 1); }

inline std::string peer_key(const site_id& s) { return std::string(1, peer) + std::string(s.view()); }

inline std::string migration_key(const hlc& h) {
    std::string k(1, migration);
    h.append_bytes(k);
    return k;
}

/// A held change set's key: 'q' and the change set's HLC.
inline std::string held_key(const hlc& h) {
    std::string k(1, held);
    h.append_bytes(k);
    return k;
}

/// One column's cell in a row record. `seq` 0 marks a cell written since the
/// row was read, not yet given its seq.
struct row_cell {
    std::uint32_t column = 0; // local column id
    hlc version;
    std::uint64_t seq = 0;
    value val;
    // What the writer saw before it wrote (known for local updates and
    // relayed from remote ones): lets a receiver tell a causal overwrite from
    // a conflict. Both or neither.
    std::optional<hlc> prior_version;
    std::optional<value> prior_value;
    std::string original_pk; // the key as spelled by this write, when collation folding changed it
};

/// A row's tombstone.
struct row_tomb {
    hlc version;
    std::uint64_t seq = 0;
    std::uint64_t created_ms = 0; // local arrival time, for pruning
    std::string original_pk;      // the key tuple as spelled by the delete
};

/// A decoded row record; cells ascend by column id.
struct row_record {
    std::optional<row_tomb> tomb;
    std::vector<row_cell> cells;
    [[nodiscard]] bool empty() const noexcept { return !tomb && cells.empty(); }
};

// Row record:
//   u8 flags (1: has tombstone)
//   [tombstone: hlc(30) seq(8) created_ms(8) u32 length, original pk tuple]
//   u32 cell count, then per cell:
//     u32 column, hlc(30), seq(8), u8 flags (1: prior, 2: original pk), value element,
//     [prior hlc(30), prior value element], [u32 length, original pk tuple]
inline void put_row_record(std::string& out, const row_record& r) {
    // Sized first, then written in place: one resize, no appends.
    constexpr std::size_t cell_head = 4 + hlc::byte_size + 8 + 1; // column, hlc, seq, flags
    std::size_t size = 1 + 4;
    if (r.tomb) size += hlc::byte_size + 8 + 8 + 4 + r.tomb->original_pk.size();
    for (const auto& c : r.cells) {
        size += cell_head + key_codec::encoded_size(c.val);
        if (c.prior_version && c.prior_value) size += hlc::byte_size + key_codec::encoded_size(*c.prior_value);
        if (!c.original_pk.empty()) size += 4 + c.original_pk.size();
    }
    out.resize(size);
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    auto blob = [&p](std::string_view bytes) {
        store_be<std::uint32_t>(p, static_cast<std::uint32_t>(bytes.size()));
        if (!bytes.empty()) std::memcpy(p + 4, bytes.data(), bytes.size());
        p += 4 + bytes.size();
    };
    auto element = [&p](const value& v) { p = reinterpret_cast<unsigned char*>(key_codec::write(reinterpret_cast<char*>(p), v)); };
    *p++ = r.tomb ? 1 : 0;
    if (r.tomb) {
        r.tomb->version.write_bytes(p);
        store_be<std::uint64_t>(p + hlc::byte_size, r.tomb->seq);
        store_be<std::uint64_t>(p + hlc::byte_size + 8, r.tomb->created_ms);
        p += hlc::byte_size + 16;
        blob(r.tomb->original_pk);
    }
    store_be<std::uint32_t>(p, static_cast<std::uint32_t>(r.cells.size()));
    p += 4;
    for (const auto& c : r.cells) {
        store_be<std::uint32_t>(p, c.column);
        c.version.write_bytes(p + 4);
        store_be<std::uint64_t>(p + 4 + hlc::byte_size, c.seq);
        const bool prior = c.prior_version && c.prior_value;
        p[cell_head - 1] = static_cast<unsigned char>((prior ? 1 : 0) | (c.original_pk.empty() ? 0 : 2));
        p += cell_head;
        element(c.val);
        if (prior) {
            c.prior_version->write_bytes(p);
            p += hlc::byte_size;
            element(*c.prior_value);
        }
        if (!c.original_pk.empty()) blob(c.original_pk);
    }
}

namespace row_reader {
[[noreturn]] inline void truncated() { raise(errc::invalid_key, "stored row record is truncated"); }
inline void need(std::string_view in, std::size_t n) {
    if (in.size() < n) truncated();
}
inline hlc take_hlc(std::string_view& in) {
    need(in, hlc::byte_size);
    const auto h = hlc::read_bytes(reinterpret_cast<const unsigned char*>(in.data()));
    in.remove_prefix(hlc::byte_size);
    return h;
}
template <class T>
T take_be(std::string_view& in) {
    need(in, sizeof(T));
    const auto v = load_be<T>(in);
    in.remove_prefix(sizeof(T));
    return v;
}
inline std::string take_blob(std::string_view& in) {
    const auto n = take_be<std::uint32_t>(in);
    need(in, n);
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
}
} // namespace row_reader

/// Whether a stored row record holds a tombstone, without decoding it.
inline bool row_has_tomb(std::string_view rec) noexcept { return !rec.empty() && (static_cast<unsigned char>(rec[0]) & 1u) != 0; }

inline void read_row_record(std::string_view in, row_record& out) {
    using namespace row_reader;
    out.tomb.reset();
    out.cells.clear();
    need(in, 1);
    const auto flags = static_cast<unsigned char>(in[0]);
    in.remove_prefix(1);
    if (flags & 1u) {
        row_tomb t;
        t.version = take_hlc(in);
        t.seq = take_be<std::uint64_t>(in);
        t.created_ms = take_be<std::uint64_t>(in);
        t.original_pk = take_blob(in);
        out.tomb = std::move(t);
    }
    const auto n = take_be<std::uint32_t>(in);
    if (n > in.size()) truncated();
    out.cells.resize(n);
    for (auto& c : out.cells) {
        c.column = take_be<std::uint32_t>(in);
        c.version = take_hlc(in);
        c.seq = take_be<std::uint64_t>(in);
        need(in, 1);
        const auto cf = static_cast<unsigned char>(in[0]);
        in.remove_prefix(1);
        c.val = key_codec::read(in);
        if (cf & 1u) {
            c.prior_version = take_hlc(in);
            c.prior_value = key_codec::read(in);
        } else {
            c.prior_version.reset();
            c.prior_value.reset();
        }
        if (cf & 2u) c.original_pk = take_blob(in);
        else c.original_pk.clear();
    }
    if (!in.empty()) raise(errc::invalid_key, "stored row record has trailing bytes");
}

/// Log record: kind | key (of the row, or of the migration).
inline void put_log_record(std::string& out, char kind, std::string_view key) {
    out.clear();
    out.push_back(kind);
    out.append(key);
}
struct log_record {
    char kind = 0;
    std::string_view key;
};
inline log_record read_log(std::string_view rec) {
    if (rec.size() < 2) raise(errc::invalid_key, "stored change-log record is truncated");
    return {rec[0], rec.substr(1)};
}

/// Tombstone arrival index key: 'x' created_ms(8) row key.
inline std::string tomb_index_key(std::uint64_t created_ms, std::string_view row_key) {
    std::string k(1, tomb_index);
    put_be<std::uint64_t>(k, created_ms);
    k.append(row_key);
    return k;
}

} // namespace detail::layout
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
