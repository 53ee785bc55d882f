#pragma once
/// \file connection.ipp
/// The definitions of `crdtsync::websocket::connection`'s member functions:
/// inline in every translation unit that includes connection.hpp, or
/// compiled once in the unit that includes <crdtsync/transports/websocket/src.hpp>
/// (see config.hpp).

#include <crdtsync/transports/websocket/connection.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace websocket {

CRDTSYNC_WEBSOCKET_DECL connection::connection(stream_type&& ws, std::size_t max_message_bytes)
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

CRDTSYNC_WEBSOCKET_DECL connection::~connection() = default;

CRDTSYNC_WEBSOCKET_DECL void connection::send(std::string frame) {
    if (close_requested_ || done_)
        return;
    queued_bytes_ += frame.size();
    queue_.push_back(std::move(frame));
    if (!writing_)
        write_next();
}

CRDTSYNC_WEBSOCKET_DECL void connection::close(std::uint16_t code, std::string_view why) {
    if (close_requested_ || done_)
        return;
    close_requested_ = true;
    close_code_ = code;
    close_why_ = std::string(detail::close_reason_text(why));
    if (!writing_)
        start_close();
}

CRDTSYNC_WEBSOCKET_DECL void connection::on_events(transport_events events) {
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

CRDTSYNC_WEBSOCKET_DECL void connection::write_next() {
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

CRDTSYNC_WEBSOCKET_DECL void connection::on_write(boost::beast::error_code ec) {
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

CRDTSYNC_WEBSOCKET_DECL void connection::start_close() {
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

CRDTSYNC_WEBSOCKET_DECL void connection::on_close(boost::beast::error_code ec) {
    closing_ = false;
    // When a read is pending it ends too, and knows more (the peer's
    // close frame, or what failed).
    if (ec == boost::asio::error::operation_aborted && reading_)
        return;
    finish(ec);
}

CRDTSYNC_WEBSOCKET_DECL void connection::read_next() {
    reading_ = true;
    ws_.async_read(buffer_, [self = shared_from_this()](boost::beast::error_code ec, std::size_t) { self->on_read(ec); });
}

CRDTSYNC_WEBSOCKET_DECL void connection::on_read(boost::beast::error_code ec) {
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

CRDTSYNC_WEBSOCKET_DECL void connection::drop_tcp() {
    boost::beast::error_code ignored;
    boost::beast::get_lowest_layer(ws_).socket().close(ignored);
}

// What `closed` reports for the error an operation ended with.
CRDTSYNC_WEBSOCKET_DECL void connection::finish(boost::beast::error_code ec) {
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

CRDTSYNC_WEBSOCKET_DECL void connection::deliver_closed() {
    auto events = std::move(events_);
    events_.reset();
    if (!events || closed_delivered_)
        return;
    closed_delivered_ = true;
    if (events->closed)
        events->closed(final_code_, final_reason_);
}

} // namespace websocket
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
