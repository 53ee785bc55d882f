#pragma once
/// \file transport.hpp
/// The `transport` concept: one connection between a sync client and a sync
/// server, as the sessions (`sync_client`, `sync_server`) need it. The
/// sessions never touch a socket: a transport carries their text frames.
///
/// ## Minimal definition
/// A type `C` models `transport` when it says so and has the operations:
/// ```
/// struct my_connection {
///     using transport_concept = crdtsync::transport_tag;     // the opt-in
///     void send(std::string frame);                        // queue one text frame
///     void close(std::uint16_t code, std::string_view why); // close with a code
///     void on_events(crdtsync::transport_events events);    // where to report
/// };
/// ```
/// - `send` queues one whole text frame (a JSON message) and never blocks;
///   frames leave in the order they were queued.
/// - `close` sends the frames queued before it, then a close with `code`
///   (a WebSocket close code, `close_code`) and ends the connection.
/// - `on_events` says where the connection reports what happens to it:
///   `frame` for each whole text frame received, `written` with the size of
///   each frame once it has left the process (the sessions use it to bound
///   what they queue: flow control), `closed` once, when the connection is
///   over, whichever side ended it (`close_code::abnormal` when it was lost
///   without a close frame). A transport never calls these from inside
///   `send` or `close`: they report later, from its own event loop.
///
/// ## Laws (tests/session: the pipe; tests/websocket: Beast)
/// - order: frames arrive whole, each once, in the order they were sent;
/// - accounting: the `written` sizes of a connection sum to the sizes of the
///   frames sent, in order, until it closes;
/// - closure: `closed` is reported exactly once, and nothing after it; a
///   `send` after `close` is ignored.
///
/// ## Models
/// `crdtsync::pipe` (in-process, `pipe.hpp`: tests, embedding, and the worked
/// example in docs/protocol.md) and `crdtsync::websocket::connection`
/// (transports/websocket, Boost.Beast).

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// The opt-in: a transport declares `using transport_concept = crdtsync::transport_tag;`.
struct transport_tag {};

/// What a transport reports to the session it carries.
struct transport_events {
    /// One whole text frame arrived.
    std::function<void(std::string_view frame)> frame;
    /// A frame of `bytes` bytes, sent earlier, has left the process.
    std::function<void(std::size_t bytes)> written;
    /// The connection is over (reported once).
    std::function<void(std::uint16_t code, std::string_view reason)> closed;
};

/// WebSocket close codes the sessions send or recognise. 1000-1011 are the
/// WebSocket protocol's (RFC 6455); 4001-4003 are Quereus's coordinator
/// codes; 4008 is crdtsync's.
namespace close_code {
inline constexpr std::uint16_t normal = 1000;          ///< the session ended normally
inline constexpr std::uint16_t going_away = 1001;      ///< the server is shutting down
inline constexpr std::uint16_t protocol_error = 1002;  ///< a frame that is not the protocol
inline constexpr std::uint16_t unsupported = 1003;     ///< a binary frame
inline constexpr std::uint16_t abnormal = 1006;        ///< lost without a close frame (never sent)
inline constexpr std::uint16_t invalid_payload = 1007; ///< a frame that is not UTF-8 / JSON
inline constexpr std::uint16_t policy_violation = 1008; ///< a second handshake
inline constexpr std::uint16_t too_big = 1009;         ///< a message over the size limit
inline constexpr std::uint16_t internal_error = 1011;  ///< the server failed
inline constexpr std::uint16_t auth_failed = 4001;     ///< Quereus: AUTH_FAILED
inline constexpr std::uint16_t missing_database = 4002; ///< Quereus: no databaseId
inline constexpr std::uint16_t protocol_version = 4003; ///< Quereus: PROTOCOL_VERSION_MISMATCH
inline constexpr std::uint16_t idle_timeout = 4008;    ///< crdtsync: nothing heard for the idle timeout
} // namespace close_code

/// True when `C` declares the opt-in tag.
template <class C>
concept transport_tagged = requires { typename C::transport_concept; } &&
                           std::derived_from<typename C::transport_concept, transport_tag>;

/// A connection the sessions can speak through (see the file comment).
template <class C>
concept transport = transport_tagged<C> && requires(C& c, std::string frame, std::string_view why, transport_events ev) {
    c.send(std::move(frame));
    c.close(std::uint16_t{}, why);
    c.on_events(std::move(ev));
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
