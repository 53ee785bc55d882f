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
    connection(stream_type&& ws, std::size_t max_message_bytes = default_max_message_bytes)
        : ws_(std::move(ws)) {
        ws_.read_message_max(max_message_bytes);
        ws_.text(true);
        boost::beast::error_code ec;
        // Small messages (acknowledgements, pushes) must not wait for the
        // peer's delayed ACK (Nagle): without this a request and its reply
        // cost tens of milliseconds on loopback (docs/benchmarks.md, Network).
        boost::beast::get_lowest_layer(ws_).socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
        const auto ep = boost::beast::get_lowest_layer(ws_).socket().remote_endpoint(ec);
        if (!ec)
            remote_ = detail::endpoint_text(ep);
    }

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// Queues one text frame; never blocks. Ignored once `close` was called
    /// or the connection is over.
    void send(std::string frame) {
        if (close_requested_ || done_)
            return;
        queued_bytes_ += frame.size();
        queue_.push_back(std::move(frame));
        if (!writing_)
            write_next();
    }

    /// Sends the frames queued so far, then a close frame with `code` and
    /// `why` (cut to 123 bytes of UTF-8), and ends the connection once the
    /// peer answers. A second call is ignored. A code that may not appear in
    /// a close frame (below 1000, 1004-1006, 1015-2999, above 4999) drops
    /// the TCP connection after the queued frames instead, and `closed`
    /// reports 1006.
    void close(std::uint16_t code, std::string_view why) {
        if (close_requested_ || done_)
            return;
        close_requested_ = true;
        close_code_ = code;
        close_why_ = std::string(detail::close_reason_text(why));
        if (!writing_)
            start_close();
    }

    /// Sets the callbacks and starts reading (frames are read only from
    /// then on). Called again, it replaces them. Called on a connection that
    /// is already over, it reports `closed` to the new callbacks (once).
    void on_events(transport_events events) {
        events_ = std::make_shared<transport_events>(std::move(events));
        if (done_) {
            if (!closed_delivered_)
                boost::asio::post(ws_.get_executor(), [self = shared_from_this()] { self->deliver_closed(); });
            return;
        }
        if (!reading_ && !read_started_) {
            read_started_ = true;
            read_next();
        }
    }

    /// The peer's address and port ("127.0.0.1:5173"), for logs; empty if
    /// the socket had none.
    [[nodiscard]] const std::string& remote_endpoint() const noexcept { return remote_; }

    /// Bytes of the frames queued by `send` that have not been written yet
    /// (the frame being written included).
    [[nodiscard]] std::size_t queued_bytes() const noexcept { return queued_bytes_; }

    /// True until `close` is called or the connection ends.
    [[nodiscard]] bool is_open() const noexcept { return !close_requested_ && !done_; }

private:
    void write_next() {
        if (queue_.empty()) {
            writing_ = false;
            if (close_requested_ && !close_started_)
                start_close();
            return;
        }
        writing_ = true;
        // A deque never moves its elements on push_back: the front string
        // stays where the write reads it.
        ws_.async_write(boost::asio::buffer(queue_.front()),
                        [self = shared_from_this()](boost::beast::error_code ec, std::size_t) { self->on_write(ec); });
    }

    void on_write(boost::beast::error_code ec) {
        if (ec) {
            writing_ = false;
            queue_.clear();
            queued_bytes_ = 0;
            if (!reading_ && !closing_) {
                finish(ec);
            } else if (ec != boost::asio::error::operation_aborted && ec != boost::beast::websocket::error::closed) {
                // The TCP connection failed under the write: make sure the
                // pending read (or close) learns it too.
                drop_tcp();
            }
            return;
        }
        const std::size_t size = queue_.front().size();
        queue_.pop_front();
        queued_bytes_ -= size;
        if (!done_) {
            auto events = events_;
            if (events && events->written)
                events->written(size);
        }
        write_next();
    }

    void start_close() {
        close_started_ = true;
        if (!detail::sendable_close_code(close_code_)) {
            drop_tcp();
            if (!reading_)
                boost::asio::post(ws_.get_executor(), [self = shared_from_this()] { self->finish(boost::asio::error::operation_aborted); });
            return;
        }
        close_sent_ = true;
        closing_ = true;
        boost::beast::websocket::close_reason reason{close_code_};
        reason.reason = boost::beast::string_view(close_why_.data(), close_why_.size());
        ws_.async_close(reason, [self = shared_from_this()](boost::beast::error_code ec) { self->on_close(ec); });
    }

    void on_close(boost::beast::error_code ec) {
        closing_ = false;
        // When a read is pending it ends too, and knows more (the peer's
        // close frame, or what failed).
        if (ec == boost::asio::error::operation_aborted && reading_)
            return;
        finish(ec);
    }

    void read_next() {
        reading_ = true;
        ws_.async_read(buffer_, [self = shared_from_this()](boost::beast::error_code ec, std::size_t) { self->on_read(ec); });
    }

    void on_read(boost::beast::error_code ec) {
        reading_ = false;
        if (ec) {
            // A close in flight reports when it ends.
            if (ec == boost::asio::error::operation_aborted && closing_)
                return;
            finish(ec);
            return;
        }
        if (close_requested_ || done_) {
            // Dropped: the session asked to close.
        } else if (ws_.got_binary()) {
            close(close_code::unsupported, "binary frames are not supported");
        } else {
            const auto data = buffer_.cdata();
            const std::string_view frame(static_cast<const char*>(data.data()), data.size());
            auto events = events_;
            if (events && events->frame)
                events->frame(frame);
        }
        buffer_.clear();
        // One large message should not pin its buffer for the connection's life.
        if (buffer_.capacity() > keep_buffer_bytes)
            buffer_.shrink_to_fit();
        if (!done_)
            read_next();
    }

    void drop_tcp() {
        boost::beast::error_code ignored;
        boost::beast::get_lowest_layer(ws_).socket().close(ignored);
    }

    // What `closed` reports for the error an operation ended with.
    void finish(boost::beast::error_code ec) {
        namespace bws = boost::beast::websocket;
        if (done_)
            return;
        done_ = true;
        queue_.clear();
        queued_bytes_ = 0;
        const auto& peer = ws_.reason();
        if ((!ec || ec == bws::error::closed) && peer.code != bws::close_code::none) {
            final_code_ = peer.code;
            final_reason_.assign(peer.reason.data(), peer.reason.size());
        } else if (ec == bws::error::closed) {
            final_code_ = 1005; // a close frame without a code (RFC 6455 section 7.1.5)
        } else if (ec == bws::error::message_too_big) {
            final_code_ = close_code::too_big;
            final_reason_ = "message too big";
        } else if (ec == bws::error::bad_frame_payload) {
            final_code_ = close_code::invalid_payload;
            final_reason_ = "text frame is not UTF-8";
        } else if (ec == bws::condition::protocol_violation) {
            final_code_ = close_code::protocol_error;
            final_reason_ = ec.message();
        } else if (close_sent_) {
            final_code_ = close_code_;
            final_reason_ = close_why_;
        } else {
            final_code_ = close_code::abnormal;
            final_reason_ = ec ? ec.message() : std::string("connection lost");
        }
        deliver_closed();
    }

    void deliver_closed() {
        auto events = std::move(events_);
        events_.reset();
        if (!events || closed_delivered_)
            return;
        closed_delivered_ = true;
        if (events->closed)
            events->closed(final_code_, final_reason_);
    }

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
