#pragma once
/// \file wire/decode_options.hpp
/// The bounds a wire decoder enforces, and the largest integer that travels
/// as a plain JSON number.

#include <cstddef>
#include <cstdint>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace wire {
/// Bounds on what a decoder accepts. Exceeding one throws `parse_error` with
/// `errc::limit_exceeded`. The defaults fit any sane batch (a change set
/// batch of 1000 changes is about 10 000 JSON values and 300 KB).
struct decode_options {
    /// Longest accepted input text, in bytes.
    std::size_t max_bytes = std::size_t(64) << 20;
    /// Deepest accepted nesting of arrays and objects (the top level counts
    /// one). Wire structures need about 6; the rest is for JSON cell values.
    std::size_t max_depth = 64;
    /// Most JSON values (scalars, arrays and objects) in one document.
    std::size_t max_elements = std::size_t(1) << 22;
};

/// The greatest integer magnitude that travels as a plain JSON number
/// (JavaScript's `Number.MAX_SAFE_INTEGER`); integers beyond it travel as
/// `{"__bigint":"<decimal>"}`, as Quereus writes JavaScript bigints.
inline constexpr std::int64_t max_safe_integer = (std::int64_t(1) << 53) - 1;
} // namespace wire
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
