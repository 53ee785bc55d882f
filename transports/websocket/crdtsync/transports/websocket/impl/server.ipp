#pragma once
/// \file server.ipp
/// `crdtsync::websocket::server`'s implementation: the accepting state and
/// the HTTP session that upgrades a request to a WebSocket connection.
/// Inline in every unit that includes server.hpp, or compiled once (see
/// config.hpp).

#include <chrono>
#include <exception>
#include <optional>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <crdtsync/transports/websocket/server.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace websocket {

namespace detail {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

class http_session;

// What the server's handlers share; they hold it, so it outlives the
// `server` object while operations are in flight.
struct server_state : std::enable_shared_from_this<server_state> {
    server_state(boost::asio::io_context& io, server_options opts)
        : acceptor(io), retry(io), options(std::move(opts)) {}

    void listen();
    void accept();
    void stop();

    template <class T>
    static void prune(std::vector<std::weak_ptr<T>>& list) {
        std::erase_if(list, [](const std::weak_ptr<T>& w) { return w.expired(); });
    }

    tcp::acceptor acceptor;
    boost::asio::steady_timer retry; // paces accepting again after an error (too many open files)
    server_options options;
    std::uint16_t port = 0;
    bool stopped = false;
    std::vector<std::weak_ptr<http_session>> sessions;
    std::vector<std::weak_ptr<connection>> connections;
};

// One accepted TCP connection until it becomes a WebSocket connection:
// reads HTTP requests, answers plain ones, upgrades the right one.
class http_session : public std::enable_shared_from_this<http_session> {
public:
    http_session(std::shared_ptr<server_state> server, tcp::socket socket)
        : server_(std::move(server)), stream_(std::move(socket)) {
        beast::error_code ec;
        const auto ep = stream_.socket().remote_endpoint(ec);
        if (!ec)
            remote_ = endpoint_text(ep);
    }

    void start() { read_request(); }

    // The server stops: end whatever this session is doing.
    void shutdown() {
        beast::error_code ignored;
        if (upgraded_)
            return; // the connection is the server's to close now
        if (ws_)
            beast::get_lowest_layer(*ws_).socket().close(ignored);
        else
            stream_.socket().close(ignored);
    }

private:
    static constexpr std::size_t max_request_body = 64 * 1024;

    void read_request() {
        parser_.emplace();
        parser_->body_limit(max_request_body);
        stream_.expires_after(server_->options.handshake_timeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_request(ec); });
    }

    void on_request(beast::error_code ec) {
        if (ec || server_->stopped) {
            end();
            return;
        }
        const auto& req = parser_->get();
        const std::string_view target(req.target().data(), req.target().size());
        const auto q = target.find('?');
        const std::string_view path = target.substr(0, q);
        const std::string_view query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
        if (beast::websocket::is_upgrade(req)) {
            if (path == server_->options.path && server_->options.on_connection) {
                upgrade(upgrade_info{std::string(path), std::string(query), remote_});
                return;
            }
            reply(http_reply{404, "text/plain; charset=utf-8", "not found\n"}, false);
            return;
        }
        std::optional<http_reply> answer;
        if (server_->options.http) {
            try {
                const std::string_view method(req.method_string().data(), req.method_string().size());
                answer = server_->options.http(method, target);
            } catch (const std::exception&) {
                answer = http_reply{500, "text/plain; charset=utf-8", "internal error\n"};
            }
        }
        if (!answer)
            answer = http_reply{404, "text/plain; charset=utf-8", "not found\n"};
        reply(std::move(*answer), req.keep_alive());
    }

    void reply(http_reply answer, bool keep_alive) {
        const auto& req = parser_->get();
        response_.emplace(static_cast<http::status>(answer.status), req.version());
        response_->set(http::field::server, "crdtsync");
        response_->set(http::field::content_type, answer.content_type);
        response_->keep_alive(keep_alive);
        response_->body() = std::move(answer.body);
        response_->prepare_payload();
        http::async_write(stream_, *response_, [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
            if (!ec && keep_alive && !self->server_->stopped)
                self->read_request();
            else
                self->end();
        });
    }

    void upgrade(upgrade_info info) {
        stream_.expires_never();
        ws_.emplace(std::move(stream_));
        auto timeouts = beast::websocket::stream_base::timeout::suggested(beast::role_type::server);
        timeouts.handshake_timeout = server_->options.handshake_timeout;
        ws_->set_option(timeouts);
        ws_->read_message_max(server_->options.max_message_bytes);
        ws_->async_accept(parser_->get(), [self = shared_from_this(), info = std::move(info)](beast::error_code ec) {
            self->on_accept(ec, info);
        });
    }

    void on_accept(beast::error_code ec, const upgrade_info& info) {
        if (ec || server_->stopped) {
            beast::error_code ignored;
            beast::get_lowest_layer(*ws_).socket().close(ignored);
            return;
        }
        auto conn = std::make_shared<connection>(std::move(*ws_), server_->options.max_message_bytes);
        ws_.reset();
        upgraded_ = true;
        server_state::prune(server_->connections);
        server_->connections.push_back(conn);
        server_->options.on_connection(std::move(conn), info);
    }

    // Sends FIN after the last answer; the socket closes with this session.
    void end() {
        if (ws_ || upgraded_)
            return;
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    std::shared_ptr<server_state> server_;
    beast::tcp_stream stream_; // moved into ws_ by an upgrade
    std::optional<connection::stream_type> ws_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::string_body>> response_;
    std::string remote_;
    bool upgraded_ = false; // stream_ went into a connection
};

CRDTSYNC_WEBSOCKET_DECL void server_state::listen() {
    if (options.path.empty() || options.path.front() != '/')
        crdtsync::detail::raise(errc::invalid_argument,
                                "websocket server: the path must start with '/', not \"" + options.path + "\"");
    beast::error_code ec;
    const auto address = boost::asio::ip::make_address(options.address, ec);
    if (ec)
        crdtsync::detail::raise(errc::invalid_argument,
                                "websocket server: \"" + options.address + "\" is not an IP address");
    const tcp::endpoint endpoint(address, options.port);
    const auto where = endpoint_text(endpoint);
    const auto fail = [&](std::string_view step) {
        crdtsync::detail::raise(errc::network,
                                "websocket server: cannot " + std::string(step) + " " + where + ": " + ec.message());
    };
    if (acceptor.open(endpoint.protocol(), ec); ec)
        fail("open a socket for");
    if (acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec); ec)
        fail("set SO_REUSEADDR on");
    if (acceptor.bind(endpoint, ec); ec)
        fail("bind");
    if (acceptor.listen(boost::asio::socket_base::max_listen_connections, ec); ec)
        fail("listen on");
    port = acceptor.local_endpoint().port();
}

CRDTSYNC_WEBSOCKET_DECL void server_state::accept() {
    acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
        if (self->stopped || ec == boost::asio::error::operation_aborted)
            return;
        if (ec) {
            self->retry.expires_after(std::chrono::milliseconds(100));
            self->retry.async_wait([self](beast::error_code wait_ec) {
                if (!wait_ec && !self->stopped)
                    self->accept();
            });
            return;
        }
        auto session = std::make_shared<http_session>(self, std::move(socket));
        prune(self->sessions);
        self->sessions.push_back(session);
        session->start();
        self->accept();
    });
}

CRDTSYNC_WEBSOCKET_DECL void server_state::stop() {
    if (stopped)
        return;
    stopped = true;
    beast::error_code ignored;
    acceptor.close(ignored);
    retry.cancel();
    for (const auto& s : sessions)
        if (auto session = s.lock())
            session->shutdown();
    for (const auto& c : connections)
        if (auto conn = c.lock())
            conn->close(close_code::going_away, "server stopping");
    sessions.clear();
    connections.clear();
}

} // namespace detail

CRDTSYNC_WEBSOCKET_DECL server::server(boost::asio::io_context& io, server_options options)
    : state_(std::make_shared<detail::server_state>(io, std::move(options))) {
    state_->listen();
    state_->accept();
}

CRDTSYNC_WEBSOCKET_DECL server::server(server&&) noexcept = default;

CRDTSYNC_WEBSOCKET_DECL server& server::operator=(server&& other) noexcept {
    if (this != &other) {
        if (state_)
            state_->stop();
        state_ = std::move(other.state_);
    }
    return *this;
}

CRDTSYNC_WEBSOCKET_DECL server::~server() {
    if (state_)
        state_->stop();
}

CRDTSYNC_WEBSOCKET_DECL std::uint16_t server::port() const noexcept { return state_->port; }

CRDTSYNC_WEBSOCKET_DECL std::size_t server::connection_count() const {
    std::size_t n = 0;
    for (const auto& c : state_->connections)
        if (auto conn = c.lock(); conn && conn->is_open())
            ++n;
    return n;
}

CRDTSYNC_WEBSOCKET_DECL void server::stop() { state_->stop(); }

} // namespace websocket
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
