#pragma once
/// \file session_options.hpp
/// `session_options`: the knobs of the sync sessions (`sync_client`,
/// `sync_server`), and `connection_io`, how a session sends on the
/// connection it was given.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <crdtsync/version.hpp>
#include <crdtsync/wire/decode_options.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// The knobs of a sync session, client or server. The defaults are
/// Quereus's where it has one.
struct session_options {
    /// At most this many facts (column changes, deletes, migrations) in one
    /// `changes`, `push_changes` or `apply_changes` message; a transaction is
    /// never split, so one larger than this travels alone.
    std::size_t max_facts_per_message = 1000;
    /// Entries in one snapshot chunk.
    std::size_t snapshot_chunk_entries = 1000;
    /// Flow control: a session stops producing change sets and snapshot
    /// chunks for its connection while this many bytes it queued have not
    /// left the process yet (the transport's `written`), and continues from
    /// its position in the change log when they have. So a slow peer costs
    /// the sender this much memory, never more (plus one message).
    std::size_t max_queued_bytes = std::size_t(8) << 20;
    /// A client sends `ping` when it has sent nothing for this long.
    std::chrono::milliseconds ping_interval{15'000};
    /// A session closes its connection (`close_code::idle_timeout`) when it
    /// has heard nothing for this long. Measured by `tick`: its resolution is
    /// the period at which the host calls `tick`.
    std::chrono::milliseconds idle_timeout{60'000};
    /// Bounds on each received message (its size is `max_bytes`).
    wire::decode_options decode{};
};

/// How a session sends on its connection: usually a transport's `send` and
/// `close` (see transport.hpp). Neither may call back into the session
/// before returning.
struct connection_io {
    std::function<void(std::string frame)> send;
    std::function<void(std::uint16_t code, std::string_view reason)> close;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
