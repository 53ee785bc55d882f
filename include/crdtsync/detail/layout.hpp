#pragma once
// The replica's storage layout: one ordered keyspace, partitioned by a
// leading byte. docs/storage.md describes it for users; this file is the
// single place that builds and parses those keys and records.
//
//   'm' name                        -> meta (format, site, clock, seq, gc, next table id)
//   's' u32 table                   -> table record (definition + local column ids)
//   'c' u32 table, pk..., i(column) -> cell: hlc(30) seq(8) value-element
//   't' u32 table, pk...            -> tombstone: hlc(30) seq(8) created_ms(8) original-pk-tuple
//   'g' hlc(30)                     -> schema migration record
//   'l' u64 seq                     -> change-log entry: kind(1) u16 key length, key, [original pk tuple]
//   'p' site(16)                    -> peer: received_up_to(8) sent_up_to(8)
//
// pk... is the key-codec encoding of the primary key after collation
// folding, so keys that a collation calls equal name one row. Table and
// column ids are local to one replica (never on the wire).

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <string_view>

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
inline constexpr char cell = 'c';
inline constexpr char tomb = 't';
inline constexpr char migration = 'g';
inline constexpr char log = 'l';
inline constexpr char peer = 'p';

inline std::string meta_key(std::string_view name) { return std::string(1, meta) + std::string(name); }

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

/// Cell record: hlc | seq | value element [| prior hlc | prior value element].
/// The prior is what the writer saw before it wrote (known for local updates
/// and relayed from remote ones); it lets a receiver tell a causal overwrite
/// from a conflict.
inline void put_cell_record(std::string& out, const hlc& h, std::uint64_t seq, const value& v,
                            const hlc* prior_version = nullptr, const value* prior_value = nullptr) {
    out.clear();
    h.append_bytes(out);
    put_be<std::uint64_t>(out, seq);
    key_codec::append(out, v);
    if (prior_version && prior_value) {
        prior_version->append_bytes(out);
        key_codec::append(out, *prior_value);
    }
}
struct cell_header {
    hlc version;
    std::uint64_t seq = 0;
};
inline cell_header read_cell_header(std::string_view rec) {
    if (rec.size() < hlc::byte_size + 8) raise(errc::invalid_key, "stored cell record is truncated");
    return {hlc::read_bytes(reinterpret_cast<const unsigned char*>(rec.data())), load_be<std::uint64_t>(rec, hlc::byte_size)};
}
inline value read_cell_value(std::string_view rec) {
    rec.remove_prefix(hlc::byte_size + 8);
    return key_codec::read(rec);
}
/// The prior (version, value) of a cell record, if it holds one.
inline std::optional<std::pair<hlc, value>> read_cell_prior(std::string_view rec) {
    rec.remove_prefix(hlc::byte_size + 8);
    (void)key_codec::skip(rec);
    if (rec.empty()) return std::nullopt;
    if (rec.size() < hlc::byte_size) raise(errc::invalid_key, "stored cell record has a truncated prior");
    const auto h = hlc::read_bytes(reinterpret_cast<const unsigned char*>(rec.data()));
    rec.remove_prefix(hlc::byte_size);
    return std::pair<hlc, value>{h, key_codec::read(rec)};
}

/// Tombstone record: hlc | seq | created_ms | original pk tuple.
struct tomb_record {
    hlc version;
    std::uint64_t seq = 0;
    std::uint64_t created_ms = 0;
    std::string_view original_pk; // encoded tuple
};
inline void put_tomb_record(std::string& out, const hlc& h, std::uint64_t seq, std::uint64_t created,
                            std::string_view original_pk) {
    out.clear();
    h.append_bytes(out);
    put_be<std::uint64_t>(out, seq);
    put_be<std::uint64_t>(out, created);
    out.append(original_pk);
}
inline tomb_record read_tomb(std::string_view rec) {
    if (rec.size() < hlc::byte_size + 16) raise(errc::invalid_key, "stored tombstone record is truncated");
    return {hlc::read_bytes(reinterpret_cast<const unsigned char*>(rec.data())),
            load_be<std::uint64_t>(rec, hlc::byte_size), load_be<std::uint64_t>(rec, hlc::byte_size + 8),
            rec.substr(hlc::byte_size + 16)};
}

/// Log record: kind | u16 key length | key | [original pk tuple].
inline void put_log_record(std::string& out, char kind, std::string_view key, std::string_view original_pk) {
    out.clear();
    out.push_back(kind);
    put_be<std::uint16_t>(out, static_cast<std::uint16_t>(key.size()));
    out.append(key);
    out.append(original_pk);
}
struct log_record {
    char kind = 0;
    std::string_view key;
    std::string_view original_pk; // empty: decode the pk from the key
};
inline log_record read_log(std::string_view rec) {
    if (rec.size() < 3) raise(errc::invalid_key, "stored change-log record is truncated");
    const auto n = load_be<std::uint16_t>(rec, 1);
    if (rec.size() < 3u + n) raise(errc::invalid_key, "stored change-log record is truncated");
    return {rec[0], rec.substr(3, n), rec.substr(3 + n)};
}

} // namespace detail::layout
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
