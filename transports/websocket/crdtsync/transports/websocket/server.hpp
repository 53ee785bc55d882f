#pragma once
/// \file server.hpp
/// `crdtsync::websocket::server`: accepts WebSocket connections on one TCP
/// port and hands each to `on_connection` once its handshake is done. The
/// same port answers plain HTTP requests through an optional handler (for
/// `GET /status`, `/metrics`); anything else gets 404.
///
/// ```
/// boost::asio::io_context io;
/// crdtsync::websocket::server server{io, {
///     .port = 8080,
///     .on_connection = [&](std::shared_ptr<crdtsync::websocket::connection> c,
///                          const crdtsync::websocket::upgrade_info& info) {
///         // hand `c` to a sync session; info.query carries the URL's query
///     }}};
/// io.run();
/// ```
///
/// Everything runs on the io_context given, with no thread of its own.
/// `stop()` (also run by the destructor) stops accepting, ends the HTTP
/// exchanges in progress and closes every open connection with 1001 (going
/// away) after the frames already queued on it; once the peers have answered
/// (or the handshake timeout passed), the io_context has no more work from
/// the server.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <crdtsync/error.hpp>
#include <crdtsync/transport.hpp>
#include <crdtsync/transports/websocket/connection.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace websocket {

/// The answer to a plain HTTP request.
struct http_reply {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

/// What the client asked for when it opened a WebSocket connection.
struct upgrade_info {
    std::string path;            ///< the request target's path ("/sync/ws")
    std::string query;           ///< what followed '?' in the target, without it ("" when none)
    std::string remote_endpoint; ///< the client's address and port
};

/// Answers a plain HTTP request (`method` "GET", `target` "/status?x=1"), or
/// returns `std::nullopt` for 404. An exception it throws answers 500.
using http_handler = std::function<std::optional<http_reply>(std::string_view method, std::string_view target)>;
/// Receives each connection once its WebSocket handshake is done.
using connection_handler = std::function<void(std::shared_ptr<connection>, const upgrade_info&)>;

/// What a `server` listens on and how it answers.
struct server_options {
    /// An IP address: "127.0.0.1" (default) or "::1" for this machine only,
    /// "0.0.0.0" or "::" for every interface.
    std::string address = "127.0.0.1";
    /// 0: the OS picks a free port (`server::port()` tells which).
    std::uint16_t port = 0;
    /// The path WebSocket upgrades must ask for (Quereus: `{basePath}/ws`);
    /// an upgrade to any other path gets 404.
    std::string path = "/sync/ws";
    /// A received message larger than this closes its connection with 1009.
    std::size_t max_message_bytes = default_max_message_bytes;
    /// How long a client may take to send its HTTP request and finish the
    /// WebSocket handshake; also how long a close waits for the peer's answer.
    std::chrono::steady_clock::duration handshake_timeout = std::chrono::seconds(30);
    /// Plain HTTP requests on the same port; without it, every one gets 404.
    http_handler http;
    /// Each new connection; without it, upgrades get 404.
    connection_handler on_connection;
};

namespace detail {
struct server_state;
} // namespace detail

/// A WebSocket server on one TCP port (see the file comment).
class server {
public:
    /// Listens at once (on `options.address`, `options.port`) and accepts
    /// connections while the io_context runs. Throws `usage_error`
    /// (`errc::invalid_argument`) when the address is not an IP address or
    /// the path does not start with '/', and `sync_error` (`errc::network`)
    /// when the port cannot be bound (in use, not permitted); the message
    /// says which.
    server(boost::asio::io_context& io, server_options options);

    server(const server&) = delete;
    server& operator=(const server&) = delete;
    server(server&&) noexcept;
    server& operator=(server&& other) noexcept;

    /// Runs `stop()`.
    ~server();

    /// The port listened on (the one the OS picked when `options.port` was 0).
    [[nodiscard]] std::uint16_t port() const noexcept;

    /// How many connections handed out are still open (not closed, not
    /// closing).
    [[nodiscard]] std::size_t connection_count() const;

    /// Stops accepting and closes every open connection with 1001 (going
    /// away), after the frames already queued on it. Idempotent.
    void stop();

private:
    std::shared_ptr<detail::server_state> state_;
};

} // namespace websocket
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync

#if !CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION
#include <crdtsync/transports/websocket/impl/server.ipp>
#endif
