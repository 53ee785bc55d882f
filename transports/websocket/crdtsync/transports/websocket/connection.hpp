#pragma once
/// \file connection.hpp
/// `crdtsync::websocket::connection`: one WebSocket connection (Boost.Beast
/// over Boost.Asio TCP) that models `crdtsync::transport`, so a sync session
/// can speak through it. `websocket::server` hands out the server side of
/// each connection, `websocket::connect` the client side; both are held by
/// `std::shared_ptr`.
///
/// Frames are text frames. `send` queues a frame and returns at once; one
/// write is in flight at a time, and when a frame has been written the
/// connection reports `written(size)`. `close(code, why)` lets the queued
/// frames go first, then sends the close frame and waits for the peer's. The
/// connection reports `closed(code, reason)` exactly once, and nothing after
/// it:
/// - the peer's close code when the peer sent a close frame (also the answer
///   to our own close; 1005 when its close frame had no code);
/// - `close_code::too_big` (1009) when a message exceeded the size limit (the
///   connection sends 1009 to the peer);
/// - `close_code::unsupported` (1003) after a binary frame (the connection
///   sends 1003 to the peer);
/// - `close_code::invalid_payload` (1007) for a text frame that is not UTF-8,
///   `close_code::protocol_error` (1002) for a frame that breaks RFC 6455
///   (the connection sends the same code to the peer);
/// - `close_code::abnormal` (1006) when the TCP connection was lost without
///   a close frame (or our own code, when we had sent a close frame and the
///   peer's answer never came).
///
/// The connection reads only once `on_events` has been called, so no frame
/// is lost to a session that sets its callbacks a little later. After a
/// local `close`, frames still arriving are dropped; `send` after `close` is
/// ignored.
///
/// Threading: everything runs on the io_context the connection was made on,
/// with no thread of its own; callbacks are invoked from that io_context's
/// `run()`, and `send`, `close` and `on_events` must be called from there too
/// (from a callback, or a handler posted to the io_context). An exception
/// thrown by a callback leaves `run()`.
///
/// Lifetime: while a read, write or close is in flight, the operation holds
/// the connection, so an open connection stays alive (and keeps reading)
/// after the last user `shared_ptr` is dropped: end it with `close`.
/// Destroying a connection whose socket is still open drops the TCP
/// connection (the peer sees 1006).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>

#include <crdtsync/detail/utf8.hpp>
#include <crdtsync/transport.hpp>
#include <crdtsync/transports/websocket/config.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace websocket {

/// The default limit on the size of one received message: 16 MiB.
inline constexpr std::size_t default_max_message_bytes = std::size_t{16} << 20;

namespace detail {

// Codes an endpoint may put in a close frame (RFC 6455 section 7.4): 1004,
// 1005, 1006 and 1015 are reserved for reports, 1016-2999 are unassigned.
[[nodiscard]] constexpr bool sendable_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// The longest prefix of `why` that fits a close frame (123 bytes) and is
// valid UTF-8 (the peer fails the connection on a reason that is not).
[[nodiscard]] inline std::string_view close_reason_text(std::string_view why) noexcept {
    constexpr std::size_t max_reason = 123;
    std::size_t n = crdtsync::detail::utf8_invalid_at(why);
    if (n > max_reason) {
        n = max_reason;
        while (n > 0 && (static_cast<unsigned char>(why[n]) & 0xC0) == 0x80)
            --n;
    }
    return why.substr(0, n);
}

// "address:port" of an endpoint, "[address]:port" for IPv6.
[[nodiscard]] inline std::string endpoint_text(const boost::asio::ip::tcp::endpoint& ep) {
    const auto address = ep.address().to_string();
    std::string out = ep.address().is_v6() ? "[" + address + "]" : address;
    out += ':';
    out += std::to_string(ep.port());
    return out;
}

} // namespace detail

/// One WebSocket connection; models `crdtsync::transport` (see the file
/// comment for what it reports and when).
class connection : public std::enable_shared_from_this<connection> {
public:
    /// The opt-in to `crdtsync::transport`.
    using transport_concept = transport_tag;
    /// The Beast stream underneath.
    using stream_type = boost::beast::websocket::stream<boost::beast::tcp_stream>;

    /// Wraps a stream whose WebSocket handshake is done. `server` and
    /// `connect` make connections; use this to wrap a stream you accepted or
    /// connected yourself (set its timeout option first). Messages larger
    /// than `max_message_bytes` close the connection with 1009.
    connection(stream_type&& ws, std::size_t max_message_bytes = default_max_message_bytes);
    /// Drops the TCP connection if its socket is still open.
    ~connection();

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// Queues one text frame; never blocks. Ignored once `close` was called
    /// or the connection is over.
    void send(std::string frame);

    /// Sends the frames queued so far, then a close frame with `code` and
    /// `why` (cut to 123 bytes of UTF-8), and ends the connection once the
    /// peer answers. A second call is ignored. A code that may not appear in
    /// a close frame (below 1000, 1004-1006, 1015-2999, above 4999) drops
    /// the TCP connection after the queued frames instead, and `closed`
    /// reports 1006.
    void close(std::uint16_t code, std::string_view why);

    /// Sets the callbacks and starts reading (frames are read only from
    /// then on). Called again, it replaces them. Called on a connection that
    /// is already over, it reports `closed` to the new callbacks (once).
    void on_events(transport_events events);

    /// The peer's address and port ("127.0.0.1:5173"), for logs; empty if
    /// the socket had none.
    [[nodiscard]] const std::string& remote_endpoint() const noexcept { return remote_; }

    /// Bytes of the frames queued by `send` that have not been written yet
    /// (the frame being written included).
    [[nodiscard]] std::size_t queued_bytes() const noexcept { return queued_bytes_; }

    /// True until `close` is called or the connection ends.
    [[nodiscard]] bool is_open() const noexcept { return !close_requested_ && !done_; }

private:
    void write_next();
    void on_write(boost::beast::error_code ec);
    void start_close();
    void on_close(boost::beast::error_code ec);
    void read_next();
    void on_read(boost::beast::error_code ec);
    void drop_tcp();
    void finish(boost::beast::error_code ec);  // decides what `closed` reports
    void deliver_closed();

    static constexpr std::size_t keep_buffer_bytes = 256 * 1024;

    stream_type ws_;
    boost::beast::flat_buffer buffer_;
    std::shared_ptr<transport_events> events_; // a callback may replace them while it runs
    std::deque<std::string> queue_;
    std::size_t queued_bytes_ = 0;
    std::string remote_;
    std::string close_why_;
    std::string final_reason_;
    std::uint16_t close_code_ = 0;
    std::uint16_t final_code_ = 0;
    bool writing_ = false;
    bool reading_ = false;
    bool read_started_ = false;
    bool closing_ = false;        // an async_close is in flight
    bool close_requested_ = false;
    bool close_started_ = false;
    bool close_sent_ = false;
    bool done_ = false;           // the outcome is decided
    bool closed_delivered_ = false;
};

static_assert(crdtsync::transport<connection>);

} // namespace websocket
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync

#if !CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION
#include <crdtsync/transports/websocket/impl/connection.ipp>
#endif
