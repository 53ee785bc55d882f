#pragma once
/// \file message.hpp
/// The coordinator protocol: every message a client and a sync server
/// exchange (JSON text frames over a WebSocket at `{basePath}/ws` in Quereus),
/// field for field the Quereus sync coordinator protocol, version 1.
///
/// Each message is a struct in `crdtsync::msg` whose `wire_type` is its wire
/// `type` string; `crdtsync::message` is the variant of all of them.
/// `crdtsync/wire/json.hpp` encodes and decodes them.
///
/// client -> server: `handshake`, `get_changes`, `apply_changes`,
/// `get_snapshot`, `resume_snapshot`, `ping`.
/// server -> client: `handshake_ack`, `changes` (reply to `get_changes`),
/// `push_changes` (broadcast of another session's changes), `apply_result`,
/// `snapshot_chunk`, `snapshot_complete`, `error`, `pong`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <crdtsync/change.hpp>
#include <crdtsync/hlc.hpp>
#include <crdtsync/site_id.hpp>
#include <crdtsync/snapshot_chunk.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// The coordinator protocol version this library speaks (wire `protocolVersion`).
inline constexpr std::uint32_t protocol_version = 1;

namespace msg {

// ---- client -> server ------------------------------------------------------

/// Opens a session. The server checks the protocol version first (mismatch:
/// error `PROTOCOL_VERSION_MISMATCH`), then authenticates.
struct handshake {
    static constexpr std::string_view wire_type = "handshake";
    std::string database_id;                       ///< wire `databaseId`: which database (tenant)
    site_id site;                                  ///< wire `siteId`: the client replica
    std::optional<std::string> token;              ///< wire `token`: credentials, if any
    std::uint32_t protocol_version = crdtsync::protocol_version; ///< wire `protocolVersion`
    /// wire `syncByPosition` (crdtsync's addition; Quereus ignores it): the
    /// client asks for delta sync by the server's local positions
    /// (`sincePosition`, `nextPosition`) instead of Quereus's HLC watermark.
    bool by_position = false;
    friend bool operator==(const handshake&, const handshake&) = default;
};

/// Asks for the change sets the client has not seen.
struct get_changes {
    static constexpr std::string_view wire_type = "get_changes";
    /// wire `sinceHLC`: Quereus's watermark; absent asks for everything. A
    /// crdtsync server treats it as a hint (see docs/wire.md, delta sync).
    std::optional<hlc> since;
    /// wire `sincePosition` (crdtsync's addition, on a session that agreed
    /// `syncByPosition`): the server's position the client has applied up to.
    std::optional<std::uint64_t> since_position;
    friend bool operator==(const get_changes&, const get_changes&) = default;
};

/// Pushes the client's change sets; answered by `apply_result`.
struct apply_changes {
    static constexpr std::string_view wire_type = "apply_changes";
    std::vector<change_set> changes;        ///< wire `changes`: change sets, not single facts
    std::optional<std::string> request_id;  ///< wire `requestId`: echoed on the `apply_result`
    friend bool operator==(const apply_changes&, const apply_changes&) = default;
};

/// Asks for a full snapshot stream.
struct get_snapshot {
    static constexpr std::string_view wire_type = "get_snapshot";
    friend bool operator==(const get_snapshot&, const get_snapshot&) = default;
};

/// Asks to resume an interrupted snapshot stream.
struct resume_snapshot {
    static constexpr std::string_view wire_type = "resume_snapshot";
    snapshot_checkpoint checkpoint;
    friend bool operator==(const resume_snapshot&, const resume_snapshot&) = default;
};

/// Heartbeat; answered by `pong`.
struct ping {
    static constexpr std::string_view wire_type = "ping";
    friend bool operator==(const ping&, const ping&) = default;
};

// ---- server -> client ------------------------------------------------------

/// Accepts a handshake.
struct handshake_ack {
    static constexpr std::string_view wire_type = "handshake_ack";
    site_id server_site;                   ///< wire `serverSiteId`
    std::string connection_id;             ///< wire `connectionId`
    std::optional<std::string> database_id; ///< wire `databaseId`: echoed, if sent
    std::uint32_t protocol_version = crdtsync::protocol_version; ///< wire `protocolVersion`
    /// wire `syncByPosition` (crdtsync's addition): the server agrees to
    /// delta sync by its positions; absent from a Quereus server.
    bool by_position = false;
    friend bool operator==(const handshake_ack&, const handshake_ack&) = default;
};

/// Reply to `get_changes`.
struct changes {
    static constexpr std::string_view wire_type = "changes";
    std::vector<change_set> change_sets; ///< wire `changeSets`
    /// wire `nextPosition` (crdtsync's addition, by-position sessions): the
    /// server's position these change sets reach; the client records it as
    /// received in the transaction that applies them.
    std::optional<std::uint64_t> next_position;
    /// wire `more` (crdtsync's addition): the reply stopped at the batch
    /// limit; ask again from `nextPosition`.
    bool more = false;
    /// wire `snapshotRequired` (crdtsync's addition): `sincePosition` predates
    /// the server's pruned tombstones; bootstrap with `get_snapshot`.
    bool snapshot_required = false;
    friend bool operator==(const changes&, const changes&) = default;
};

/// Change sets another session of the same database applied (broadcast).
struct push_changes {
    static constexpr std::string_view wire_type = "push_changes";
    std::vector<change_set> change_sets; ///< wire `changeSets`
    /// wire `nextPosition` (crdtsync's addition, by-position sessions): as in
    /// `changes`; pushes on one connection continue where the last `changes`
    /// or `push_changes` ended.
    std::optional<std::uint64_t> next_position;
    friend bool operator==(const push_changes&, const push_changes&) = default;
};

/// Reply to `apply_changes`. On the wire the counters sit beside `type` and
/// `requestId` in one flat object.
struct apply_result {
    static constexpr std::string_view wire_type = "apply_result";
    std::optional<std::string> request_id; ///< wire `requestId`: the `apply_changes`'s
    crdtsync::apply_result result;
    friend bool operator==(const apply_result&, const apply_result&) = default;
};

/// One chunk of a snapshot stream.
struct snapshot_chunk {
    static constexpr std::string_view wire_type = "snapshot_chunk";
    crdtsync::snapshot_chunk chunk;
    friend bool operator==(const snapshot_chunk&, const snapshot_chunk&) = default;
};

/// The snapshot stream is over.
struct snapshot_complete {
    static constexpr std::string_view wire_type = "snapshot_complete";
    friend bool operator==(const snapshot_complete&, const snapshot_complete&) = default;
};

/// A request failed. Quereus codes include `AUTH_FAILED`,
/// `PROTOCOL_VERSION_MISMATCH`, `ALREADY_AUTHENTICATED`, `NOT_AUTHENTICATED`,
/// `UNKNOWN_MESSAGE`, `MESSAGE_ERROR`.
struct error {
    static constexpr std::string_view wire_type = "error";
    std::string code;
    std::string message;
    /// wire `fatal`: true when the session is over and the client should not
    /// reconnect as it is; absent or false for a failed request.
    std::optional<bool> fatal;
    friend bool operator==(const error&, const error&) = default;
};

/// Answer to `ping`.
struct pong {
    static constexpr std::string_view wire_type = "pong";
    friend bool operator==(const pong&, const pong&) = default;
};

} // namespace msg

/// Any coordinator message, client -> server first, then server -> client.
using message = std::variant<msg::handshake, msg::get_changes, msg::apply_changes, msg::get_snapshot,
                             msg::resume_snapshot, msg::ping, msg::handshake_ack, msg::changes,
                             msg::push_changes, msg::apply_result, msg::snapshot_chunk,
                             msg::snapshot_complete, msg::error, msg::pong>;

/// The wire `type` string of a message (`"apply_result"`).
[[nodiscard]] inline std::string_view wire_type_of(const message& m) noexcept {
    return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::wire_type; }, m);
}

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
