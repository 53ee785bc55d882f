#pragma once
/// \file client.ipp
/// `crdtsync::websocket::connect`'s implementation: resolve, connect, and
/// the WebSocket handshake under one deadline. Inline in every unit that
/// includes client.hpp, or compiled once (see config.hpp).

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/websocket.hpp>

#include <crdtsync/transports/websocket/client.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace websocket {

namespace detail {

class connect_op : public std::enable_shared_from_this<connect_op> {
public:
    connect_op(boost::asio::io_context& io, url where, client_options options, connect_handler done)
        : resolver_(io), ws_(io), timer_(io), url_(std::move(where)), options_(options), done_(std::move(done)) {}

    void start() {
        const auto deadline = std::chrono::steady_clock::now() + options_.connect_timeout;
        timer_.expires_at(deadline);
        timer_.async_wait([self = shared_from_this()](boost::beast::error_code ec) {
            if (!ec && !self->resolved_) {
                self->timed_out_ = true;
                self->resolver_.cancel();
            }
        });
        resolver_.async_resolve(url_.host, std::to_string(url_.port),
                                [self = shared_from_this(), deadline](boost::beast::error_code ec,
                                                                      boost::asio::ip::tcp::resolver::results_type results) {
                                    self->on_resolve(ec, std::move(results), deadline);
                                });
    }

private:
    void on_resolve(boost::beast::error_code ec, boost::asio::ip::tcp::resolver::results_type results,
                    std::chrono::steady_clock::time_point deadline) {
        resolved_ = true;
        timer_.cancel();
        if (timed_out_)
            ec = boost::beast::error::timeout;
        if (ec) {
            fail(ec);
            return;
        }
        // The TCP stream's own timer covers the connection and the handshake.
        auto& tcp = boost::beast::get_lowest_layer(ws_);
        tcp.expires_at(deadline);
        tcp.async_connect(results, [self = shared_from_this()](boost::beast::error_code connect_ec,
                                                               const boost::asio::ip::tcp::endpoint&) {
            self->on_connect(connect_ec);
        });
    }

    void on_connect(boost::beast::error_code ec) {
        if (ec) {
            fail(ec);
            return;
        }
        ws_.set_option(boost::beast::websocket::stream_base::decorator(
            [](boost::beast::websocket::request_type& req) { req.set(boost::beast::http::field::user_agent, "crdtsync"); }));
        std::string host = url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
        host += ':';
        host += std::to_string(url_.port);
        ws_.async_handshake(host, url_.target,
                            [self = shared_from_this()](boost::beast::error_code handshake_ec) { self->on_handshake(handshake_ec); });
    }

    void on_handshake(boost::beast::error_code ec) {
        if (ec) {
            fail(ec);
            return;
        }
        boost::beast::get_lowest_layer(ws_).expires_never();
        ws_.set_option(boost::beast::websocket::stream_base::timeout::suggested(boost::beast::role_type::client));
        auto conn = std::make_shared<connection>(std::move(ws_), options_.max_message_bytes);
        auto done = std::move(done_);
        done(boost::system::error_code{}, std::move(conn));
    }

    void fail(boost::beast::error_code ec) {
        boost::beast::get_lowest_layer(ws_).close();
        auto done = std::move(done_);
        done(ec, nullptr);
    }

    boost::asio::ip::tcp::resolver resolver_;
    connection::stream_type ws_;
    boost::asio::steady_timer timer_; // bounds the resolve, which has no timeout of its own
    url url_;
    client_options options_;
    connect_handler done_;
    bool resolved_ = false;
    bool timed_out_ = false;
};

} // namespace detail

CRDTSYNC_WEBSOCKET_DECL void connect(boost::asio::io_context& io, std::string_view ws_url, client_options options, connect_handler done) {
    auto where = parse_url(ws_url);
    if (where.secure)
        crdtsync::detail::raise(errc::invalid_argument,
                                "websocket url \"" + std::string(ws_url) +
                                    "\": wss:// (TLS) is not supported; connect through a TLS-terminating proxy");
    if (!done)
        crdtsync::detail::raise(errc::invalid_argument, "websocket connect: no completion handler");
    std::make_shared<detail::connect_op>(io, std::move(where), options, std::move(done))->start();
}

} // namespace websocket
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
