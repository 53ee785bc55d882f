#pragma once
// The rule that keeps an origin and its peers byte-identical: a replica
// stores a value exactly as every peer will store it after the wire, or
// refuses it where it enters (a local write, `apply`, a snapshot load), with
// a typed error, never at sync time. docs/semantics.md ("Values") states it.
//
// - numbers: `table_def::coerce` (a REAL column holds reals; elsewhere a
//   real with an integral value is that integer; -0.0 is 0.0; infinities are
//   refused, since the wire carries them as null);
// - text: must be UTF-8 (JSON carries nothing else);
// - JSON cells: stored in their canonical text (what a peer decodes), and
//   refused when they are not a JSON object or array or nest too deep.

#include <cstddef>
#include <optional>
#include <string>

#include <crdtsync/detail/utf8.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/schema.hpp>
#include <crdtsync/value.hpp>
#include <crdtsync/wire/json.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

[[noreturn, gnu::cold, gnu::noinline]] inline void refuse_value(const table_def& def, std::size_t col,
                                                                 const std::string& why) {
    raise(errc::invalid_value, "column \"" + def.columns()[col].name + "\" of table " + def.qualified_name() + ": " + why);
}

/// The value column `col` of `def` stores for `v`: `&v` when that is `v`
/// itself, else a pointer to `scratch`, which then holds it.
/// \throws parse_error (`errc::invalid_value`) naming the table and column
/// when no replica can store `v` (see the file comment).
[[nodiscard]] inline const value* storable(const table_def& def, std::size_t col, const value& v,
                                           std::optional<value>& scratch) {
    switch (v.kind()) {
    case value_kind::text: {
        const auto& s = *v.get_if<std::string>();
        if (const auto at = utf8_invalid_at(s); at != s.size())
            refuse_value(def, col, "text is not valid UTF-8 (byte " + std::to_string(at) + "), it cannot travel in JSON");
        return &v;
    }
    case value_kind::json: {
        std::string canonical;
        try {
            canonical = wire::canonical_json_cell(*v.get_if<json_text>());
        } catch (const error& e) {
            refuse_value(def, col, e.message());
        }
        if (canonical == v.get_if<json_text>()->text) return &v;
        return &scratch.emplace(json_text{std::move(canonical)});
    }
    default:
        if (!def.coerces(col, v)) return &v;
        return &scratch.emplace(def.coerce(col, v));
    }
}

/// `storable` as a value of its own.
[[nodiscard]] inline value storable_copy(const table_def& def, std::size_t col, value v) {
    std::optional<value> scratch;
    const value* out = storable(def, col, v, scratch);
    return out == &v ? std::move(v) : std::move(*scratch);
}

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
