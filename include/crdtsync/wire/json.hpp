#pragma once
/// \file wire/json.hpp
/// The Quereus-compatible JSON codec: change sets, schema migrations, apply
/// results, snapshot chunks and checkpoints, and every coordinator message,
/// as the TypeScript Quereus sync packages put them on the wire. The format,
/// with an example of every message, is in docs/wire.md.
///
/// Text in, text out:
///
///     std::vector<crdtsync::change_set> sets = crdtsync::wire::decode_change_sets(text);
///     std::string out = crdtsync::wire::encode_change_sets(sets);
///     crdtsync::message m = crdtsync::wire::decode_message(frame);
///
/// or for any supported type `T` (`is_wire_type_v<T>`, plus `std::vector`s of
/// them): `decode<T>(text)`, `encode(x)`, and on `nlohmann::json` values
/// `from_json<T>(j)`, `to_json(x)`. With this header included,
/// `nlohmann::json j = x;` and `j.get<T>()` work too.
///
/// Decoding is strict about what it needs and lenient about the rest: unknown
/// members are ignored; a missing required member, a wrong JSON type, bad
/// base64, a wrong length, an out-of-range number, an unknown `type` string, a
/// `priorValue` without `priorHlc` are errors. Every error is a `parse_error`
/// whose message starts with the JSON path of the offending member
/// (`changeSets[2].changes[7].hlc: expected a 40-character base64 HLC, got 38
/// characters`); its code is `errc::limit_exceeded` when the input breaks a
/// `decode_options` bound and `errc::decode` otherwise. Bounds are enforced
/// while parsing, before a hostile document can exhaust the stack or memory.
///
/// Encoding writes compact JSON exactly as JavaScript's `JSON.stringify`
/// would for the same data (numbers printed the JavaScript way, same string
/// escapes), so text written here matches Quereus byte for byte, up to member
/// order.

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include <crdtsync/change.hpp>
#include <crdtsync/message.hpp>
#include <crdtsync/snapshot_chunk.hpp>
#include <crdtsync/value.hpp>
#include <crdtsync/wire/decode_options.hpp>
#include <crdtsync/wire/detail/reader.hpp>
#include <crdtsync/wire/detail/writer.hpp>
#include <crdtsync/wire/types.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {

namespace detail {
template <class T, class... Ts>
inline constexpr bool is_one_of_v = (std::is_same_v<T, Ts> || ...);

template <class T, class V>
struct is_alternative;
template <class T, class... Ts>
struct is_alternative<T, std::variant<Ts...>> : std::bool_constant<is_one_of_v<T, Ts...>> {};

} // namespace detail

/// True for every type this codec reads and writes directly. `std::vector`s
/// of these (a JSON array) are supported too.
template <class T>
inline constexpr bool is_wire_type_v =
    detail::is_one_of_v<T, value, hlc, site_id, column_change, row_delete, change, schema_migration, change_set,
                        rejection, apply_result, snapshot_chunk, column_version_entry, tombstone_entry,
                        snapshot_checkpoint, message> ||
    detail::is_alternative<T, snapshot_chunk>::value || detail::is_alternative<T, message>::value;

namespace detail {
template <class T>
struct is_codec_type : std::bool_constant<is_wire_type_v<T>> {};
template <class T>
struct is_codec_type<std::vector<T>> : is_codec_type<T> {};
} // namespace detail

/// Types accepted by `decode`, `encode`, `from_json` and `to_json`.
template <class T>
concept wire_type = detail::is_codec_type<T>::value;

/// Parses JSON text within the bounds of `opts`.
/// \throws parse_error: `errc::limit_exceeded` for a broken bound, else
/// `errc::decode`; the message names the JSON path where parsing stopped.
[[nodiscard]] inline nlohmann::json parse(std::string_view json_text, const decode_options& opts = {}) {
    if (json_text.size() > opts.max_bytes)
        detail::fail_limit("$", "the input is " + std::to_string(json_text.size()) + " bytes, more than max_bytes = " +
                                    std::to_string(opts.max_bytes));
    detail::reader r(json_text, opts);
    nlohmann::json doc = r.dom(detail::path{});
    r.expect_end();
    return doc;
}

/// Decodes JSON text.
/// \throws parse_error: `errc::limit_exceeded` when the text breaks a bound
/// of `opts`, `errc::decode` for anything else; the message starts with the
/// JSON path of the problem.
template <wire_type T>
[[nodiscard]] T decode(std::string_view json_text, const decode_options& opts = {}) {
    if (json_text.size() > opts.max_bytes)
        detail::fail_limit("$", "the input is " + std::to_string(json_text.size()) + " bytes, more than max_bytes = " +
                                    std::to_string(opts.max_bytes));
    detail::reader r(json_text, opts);
    T out{};
    detail::read(r, detail::path{}, out);
    r.expect_end();
    return out;
}

/// Decodes a JSON value held as an nlohmann::json (through its text, so it
/// is checked exactly as `decode` checks text).
/// \throws parse_error as `decode` does.
template <wire_type T>
[[nodiscard]] T from_json(const nlohmann::json& j, const decode_options& opts = {}) {
    // Bound the depth before dump() recurses over a caller-built document.
    std::vector<std::pair<const nlohmann::json*, std::size_t>> todo{{&j, 1}};
    const std::size_t max_depth = std::min(opts.max_depth, detail::reader::hard_max_depth);
    while (!todo.empty()) {
        const auto [v, d] = todo.back();
        todo.pop_back();
        if (d > max_depth)
            detail::fail_limit("$", "nesting deeper than max_depth = " + std::to_string(max_depth));
        if (v->is_structured())
            for (const auto& child : *v) todo.emplace_back(&child, d + 1);
    }
    std::string text;
    try {
        text = j.dump();
    } catch (const nlohmann::json::exception& e) {
        detail::fail(detail::path{}, std::string("cannot read the document: ") + e.what());
    }
    return decode<T>(text, opts);
}

/// Encodes as an nlohmann::json value (equal, as a JSON value, to a parse of
/// `encode(x)`).
/// \throws parse_error (`errc::invalid_value`) for text that is not UTF-8 or a
/// JSON cell value that is not JSON; usage_error for a column change with only
/// one of prior_value / prior_version.
template <wire_type T>
[[nodiscard]] nlohmann::json to_json(const T& x) {
    detail::dom_sink s;
    detail::write(s, x);
    return std::move(s.root);
}

/// Encodes as compact JSON text, byte for byte what JavaScript's
/// JSON.stringify writes for the same data (up to member order).
/// \throws as `to_json`.
template <wire_type T>
[[nodiscard]] std::string encode(const T& x) {
    detail::text_sink s;
    detail::write(s, x);
    return std::move(s.out);
}

/// The text of a JSON cell value as it travels, and so as every replica
/// stores it: compact, members sorted by name, numbers and strings as
/// JSON.stringify writes them. A replica stores JSON cells in this form.
/// \throws parse_error (`errc::invalid_value`) when `text` is not a JSON
/// object or array, nests deeper than `decode_options::max_depth`, or is an
/// object with a `__bin` or `__bigint` member (it would read back as a blob
/// or a big integer).
[[nodiscard]] inline std::string canonical_json_cell(const json_text& cell) {
    detail::text_sink s;
    detail::write_json_value(s, cell);
    return std::move(s.out);
}

/// A JSON array of change sets, as `getChangesSince` returns them.
[[nodiscard]] inline std::vector<change_set> decode_change_sets(std::string_view json_text,
                                                                const decode_options& opts = {}) {
    return decode<std::vector<change_set>>(json_text, opts);
}

[[nodiscard]] inline std::string encode_change_sets(std::span<const change_set> sets) {
    detail::text_sink s;
    s.out.reserve(64 + sets.size() * 256);
    s.begin_array();
    for (const auto& cs : sets) detail::write(s, cs);
    s.end_array();
    return std::move(s.out);
}

/// One coordinator frame. An unknown `type` is an error.
[[nodiscard]] inline message decode_message(std::string_view json_text, const decode_options& opts = {}) {
    return decode<message>(json_text, opts);
}

[[nodiscard]] inline std::string encode_message(const message& m) { return encode(m); }

[[nodiscard]] inline snapshot_chunk decode_snapshot_chunk(std::string_view json_text,
                                                          const decode_options& opts = {}) {
    return decode<snapshot_chunk>(json_text, opts);
}

[[nodiscard]] inline std::string encode_snapshot_chunk(const snapshot_chunk& c) { return encode(c); }

/// A JSON array of snapshot chunks (a whole stream kept as one document).
[[nodiscard]] inline std::vector<snapshot_chunk> decode_snapshot_chunks(std::string_view json_text,
                                                                        const decode_options& opts = {}) {
    return decode<std::vector<snapshot_chunk>>(json_text, opts);
}

[[nodiscard]] inline std::string encode_snapshot_chunks(std::span<const snapshot_chunk> chunks) {
    detail::text_sink s;
    s.begin_array();
    for (const auto& c : chunks) detail::write(s, c);
    s.end_array();
    return std::move(s.out);
}

} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync

/// `nlohmann::json j = x;` and `j.get<T>()` for every wire type. `get`
/// reports errors with paths relative to `j`.
namespace nlohmann {
template <class T>
struct adl_serializer<T, std::enable_if_t<crdtsync::wire::is_wire_type_v<T>>> {
    static void to_json(json& j, const T& x) { j = crdtsync::wire::to_json(x); }
    static T from_json(const json& j) { return crdtsync::wire::from_json<T>(j); }
    static void from_json(const json& j, T& x) { x = crdtsync::wire::from_json<T>(j); }
};
} // namespace nlohmann
