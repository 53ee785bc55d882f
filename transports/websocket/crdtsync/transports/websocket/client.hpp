#pragma once
/// \file client.hpp
/// `crdtsync::websocket::connect`: opens a WebSocket connection to a
/// `ws://host:port/path` URL and hands the `connection` to a callback.
///
/// ```
/// boost::asio::io_context io;
/// crdtsync::websocket::connect(io, "ws://127.0.0.1:8080/sync/ws", {},
///     [&](boost::system::error_code ec, std::shared_ptr<crdtsync::websocket::connection> c) {
///         if (ec) { std::cerr << ec.message() << "\n"; return; }
///         // hand `c` to a sync session
///     });
/// io.run();
/// ```
///
/// Resolving, connecting and the handshake together must finish within
/// `client_options::connect_timeout`, or the callback gets
/// `boost::beast::error::timeout`. Other failures arrive as the error Asio or
/// Beast reported: `connection_refused` when nothing listens,
/// `boost::beast::websocket::error::upgrade_declined` when the server
/// answered the upgrade with anything but 101 (a wrong path: 404).
///
/// Not supported: `wss://` (TLS; put a TLS-terminating proxy in front of the
/// server, and for now reach TLS servers through a local proxy too),
/// permessage-deflate, user info in the URL.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <crdtsync/error.hpp>
#include <crdtsync/transports/websocket/connection.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace websocket {

/// A parsed WebSocket URL.
struct url {
    bool secure = false;      ///< `wss://` (which `connect` refuses)
    std::string host;         ///< a name or an IP address (IPv6 without its brackets)
    std::uint16_t port = 80;  ///< 80 for ws://, 443 for wss:// when the URL has none
    std::string target = "/"; ///< path and query, as sent in the request line
};

/// Parses `ws://host[:port][/path][?query]` (or `wss://`; the scheme is
/// case-insensitive; an IPv6 host is written `[::1]`). Throws `usage_error`
/// (`errc::invalid_argument`) naming what is wrong: another scheme, no host,
/// a port that is not 1-65535, user info, a fragment, spaces or control
/// characters.
[[nodiscard]] inline url parse_url(std::string_view text) {
    const auto bad = [&](std::string_view why) {
        crdtsync::detail::raise(errc::invalid_argument,
                                "websocket url \"" + std::string(text) + "\": " + std::string(why));
    };
    for (const char c : text)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
            bad("contains a space or control character");
    const auto starts_with_nocase = [&](std::string_view prefix) {
        if (text.size() < prefix.size())
            return false;
        for (std::size_t i = 0; i < prefix.size(); ++i) {
            char c = text[i];
            if (c >= 'A' && c <= 'Z')
                c = static_cast<char>(c - 'A' + 'a');
            if (c != prefix[i])
                return false;
        }
        return true;
    };
    url out;
    std::string_view rest;
    if (starts_with_nocase("ws://")) {
        rest = text.substr(5);
    } else if (starts_with_nocase("wss://")) {
        out.secure = true;
        out.port = 443;
        rest = text.substr(6);
    } else {
        bad("the scheme must be ws:// or wss://");
    }
    if (rest.find('#') != std::string_view::npos)
        bad("a WebSocket url has no fragment");
    const auto authority_end = rest.find_first_of("/?");
    const std::string_view authority = rest.substr(0, authority_end);
    if (authority_end != std::string_view::npos) {
        out.target = std::string(rest.substr(authority_end));
        if (out.target.front() == '?')
            out.target.insert(out.target.begin(), '/');
    }
    if (authority.find('@') != std::string_view::npos)
        bad("user info (user@host) is not supported");
    std::string_view host = authority;
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            bad("an IPv6 address must end with ']'");
        host = authority.substr(1, close - 1);
        const auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                bad("only a port may follow ']'");
            port = after.substr(1);
            if (port.empty())
                bad("an empty port");
        }
    } else if (const auto colon = authority.find(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
        if (port.empty())
            bad("an empty port");
        if (port.find(':') != std::string_view::npos)
            bad("an IPv6 address must be written in brackets: ws://[::1]:8080/");
    }
    if (host.empty())
        bad("no host");
    out.host = std::string(host);
    if (!port.empty()) {
        unsigned long value = 0;
        for (const char c : port) {
            if (c < '0' || c > '9')
                bad("the port is not a number");
            value = value * 10 + static_cast<unsigned long>(c - '0');
            if (value > 65535)
                bad("the port is above 65535");
        }
        if (value == 0)
            bad("the port is 0");
        out.port = static_cast<std::uint16_t>(value);
    }
    return out;
}

/// How `connect` connects.
struct client_options {
    /// Resolving, the TCP connection and the WebSocket handshake together.
    std::chrono::steady_clock::duration connect_timeout = std::chrono::seconds(10);
    /// A received message larger than this closes the connection with 1009.
    std::size_t max_message_bytes = default_max_message_bytes;
};

/// Called once, with an error and no connection or with no error and the
/// connection.
using connect_handler = std::function<void(boost::system::error_code, std::shared_ptr<connection>)>;

/// Opens a WebSocket connection to `url` (`ws://host:port/path?query`) on
/// `io` and calls `done` once from `io`'s `run()`: with an error and no
/// connection, or with no error and the connection (handshake done; set its
/// callbacks with `on_events` to start reading). Throws `usage_error`
/// (`errc::invalid_argument`) at once for a malformed URL (see `parse_url`)
/// or a `wss://` URL (TLS is not supported yet).
CRDTSYNC_WEBSOCKET_DECL void connect(boost::asio::io_context& io, std::string_view ws_url, client_options options,
                                     connect_handler done);

} // namespace websocket
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync

#if !CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION
#include <crdtsync/transports/websocket/impl/client.ipp>
#endif
