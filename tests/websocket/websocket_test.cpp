// The WebSocket transport over real sockets on 127.0.0.1 (ports chosen by the
// OS): the transport laws in both directions, size limits, binary and
// invalid frames, lost connections, server stop, HTTP on the same port,
// connect errors and URL parsing. Nothing sleeps: each test drives the
// io_context until what it waits for has happened, or fails at a deadline.

#include <crdtsync/transports/websocket.hpp>

#include <doctest/doctest.h>

#include <boost/beast/http.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ws = crdtsync::websocket;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace cc = crdtsync::close_code;
using namespace std::chrono_literals;

static_assert(crdtsync::transport<ws::connection>);

namespace {

// Runs `io` until `done()` holds. False when the deadline passed first, or
// when the io_context ran out of work with `done()` still false.
bool run_until(asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        if (io.stopped())
            io.restart();
        io.run_one_for(50ms);
        if (io.stopped() && !done())
            return false;
    }
    return true;
}

// Runs `io` until it has no work left; false if it still had some after `limit`.
bool run_out(asio::io_context& io, std::chrono::milliseconds limit = 10s) {
    io.restart();
    io.run_for(limit);
    return io.stopped();
}

// Everything one connection reported, in order, and whether any report came
// after `closed`.
struct recorder {
    std::vector<std::string> frames;
    std::vector<std::size_t> written;
    int closed = 0;
    std::uint16_t code = 0;
    std::string reason;
    int after_closed = 0;

    crdtsync::transport_events events() {
        return {[this](std::string_view f) {
                    after_closed += closed;
                    frames.emplace_back(f);
                },
                [this](std::size_t n) {
                    after_closed += closed;
                    written.push_back(n);
                },
                [this](std::uint16_t c, std::string_view r) {
                    after_closed += closed;
                    ++closed;
                    code = c;
                    reason = r;
                }};
    }
    [[nodiscard]] std::size_t written_total() const {
        std::size_t n = 0;
        for (auto w : written)
            n += w;
        return n;
    }
};

// Closed exactly once, with `code`, and nothing after it.
void check_closed(const recorder& r, std::uint16_t code) {
    CHECK(r.closed == 1);
    CHECK(r.code == code);
    CHECK(r.after_closed == 0);
}

std::vector<std::size_t> sizes(const std::vector<std::string>& frames) {
    std::vector<std::size_t> out;
    for (const auto& f : frames)
        out.push_back(f.size());
    return out;
}

// A server on 127.0.0.1 that keeps every connection it hands out, with a
// recorder set as its callbacks (at once, unless `set_events` is false).
struct fixture {
    asio::io_context io;
    std::vector<std::shared_ptr<ws::connection>> server_conns;
    std::vector<std::unique_ptr<recorder>> server_recs;
    std::vector<ws::upgrade_info> upgrades;
    bool set_events = true;
    std::optional<ws::server> server;

    explicit fixture(ws::server_options opts = {}, bool events = true) : set_events(events) {
        opts.on_connection = [this](std::shared_ptr<ws::connection> c, const ws::upgrade_info& info) {
            server_recs.push_back(std::make_unique<recorder>());
            if (set_events)
                c->on_events(server_recs.back()->events());
            server_conns.push_back(std::move(c));
            upgrades.push_back(info);
        };
        server.emplace(io, std::move(opts));
    }

    [[nodiscard]] std::uint16_t port() const { return server->port(); }
    [[nodiscard]] std::string url(std::string_view target = "/sync/ws") const {
        return "ws://127.0.0.1:" + std::to_string(port()) + std::string(target);
    }

    // A client connection whose server side has arrived too, with `rec` as
    // its callbacks.
    std::shared_ptr<ws::connection> connect(recorder& rec, ws::client_options opts = {}, std::string_view target = "/sync/ws") {
        std::shared_ptr<ws::connection> out;
        boost::system::error_code got;
        int called = 0;
        const auto before = server_conns.size();
        ws::connect(io, url(target), opts, [&](boost::system::error_code ec, std::shared_ptr<ws::connection> c) {
            ++called;
            got = ec;
            out = std::move(c);
        });
        REQUIRE(run_until(io, [&] { return called == 1 && server_conns.size() > before; }));
        REQUIRE_FALSE(got);
        REQUIRE(out);
        out->on_events(rec.events());
        return out;
    }
};

// A raw Beast client, for what `connection` never does: binary frames,
// invalid UTF-8, dropping the TCP connection without a close frame.
struct raw_client {
    beast::websocket::stream<beast::tcp_stream> ws;
    beast::websocket::response_type response;
    std::optional<beast::error_code> handshake;
    std::optional<beast::error_code> read;
    beast::flat_buffer buffer;

    explicit raw_client(asio::io_context& io) : ws(io) {}

    void open(std::uint16_t port, std::string target) {
        const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
        beast::get_lowest_layer(ws).async_connect(ep, [this, target](beast::error_code ec) {
            if (ec) {
                handshake = ec;
                return;
            }
            ws.async_handshake(response, "127.0.0.1", target, [this](beast::error_code hec) { handshake = hec; });
        });
    }

    // Reads until an error (the close handshake ends reads with `closed`).
    void read_all() {
        ws.async_read(buffer, [this](beast::error_code ec, std::size_t) {
            buffer.clear();
            if (ec)
                read = ec;
            else
                read_all();
        });
    }
};

// Plain HTTP requests, one after another on one connection.
struct http_client {
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request<http::empty_body> request;
    std::vector<http::response<http::string_body>> responses;
    std::size_t completed = 0; // responses read whole
    std::optional<beast::error_code> error;

    explicit http_client(asio::io_context& io) : stream(io) {}

    void get_all(std::uint16_t port, std::vector<std::string> targets) {
        const asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
        stream.async_connect(ep, [this, targets = std::move(targets)](beast::error_code ec) mutable {
            if (ec) {
                error = ec;
                return;
            }
            next(std::move(targets), 0);
        });
    }

private:
    void next(std::vector<std::string> targets, std::size_t i) {
        if (i == targets.size())
            return;
        request = {http::verb::get, targets[i], 11};
        request.set(http::field::host, "127.0.0.1");
        request.keep_alive(i + 1 < targets.size());
        http::async_write(stream, request, [this, targets = std::move(targets), i](beast::error_code ec, std::size_t) mutable {
            if (ec) {
                error = ec;
                return;
            }
            responses.emplace_back();
            http::async_read(stream, buffer, responses.back(), [this, targets = std::move(targets), i](beast::error_code rec, std::size_t) mutable {
                if (rec) {
                    error = rec;
                    return;
                }
                ++completed;
                next(std::move(targets), i + 1);
            });
        });
    }
};

// A port on 127.0.0.1 nothing listens on (bound by the OS, then released).
std::uint16_t free_port(asio::io_context& io) {
    asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto port = a.local_endpoint().port();
    a.close();
    return port;
}

std::vector<std::string> numbered(std::string_view prefix, int n, std::size_t pad = 0) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i)
        out.push_back(std::string(prefix) + std::to_string(i) + std::string(pad, 'p'));
    return out;
}

} // namespace

TEST_CASE("transport laws in both directions: order, whole frames, each once, written sums, closed once") {
    fixture f;
    recorder crec;
    auto client = f.connect(crec);
    REQUIRE(f.server_conns.size() == 1);
    auto server_side = f.server_conns[0];
    recorder& srec = *f.server_recs[0];

    std::vector<std::string> up = {"", "a", R"({"type":"ping"})", std::string(100'000, 'x'), "h\xC3\xA9llo \xE2\x9C\x93"};
    for (auto& s : numbered("up ", 50))
        up.push_back(s);
    std::vector<std::string> down = {std::string(70'000, 'y'), "", "b"};
    for (auto& s : numbered("down ", 50))
        down.push_back(s);
    for (const auto& s : up)
        client->send(s);
    for (const auto& s : down)
        server_side->send(s);

    REQUIRE(run_until(f.io, [&] {
        return srec.frames.size() >= up.size() && crec.frames.size() >= down.size() && crec.written.size() == up.size() &&
               srec.written.size() == down.size();
    }));
    CHECK(srec.frames == up);
    CHECK(crec.frames == down);
    CHECK(crec.written == sizes(up));
    CHECK(srec.written == sizes(down));
    CHECK(client->queued_bytes() == 0);
    CHECK(server_side->queued_bytes() == 0);
    CHECK(client->is_open());

    // Both ends name each other.
    CHECK(server_side->remote_endpoint().rfind("127.0.0.1:", 0) == 0);
    CHECK(client->remote_endpoint() == "127.0.0.1:" + std::to_string(f.port()));
    CHECK(f.upgrades[0].remote_endpoint == server_side->remote_endpoint());

    SUBCASE("the client closes") {
        client->send("last");
        client->close(cc::normal, "done");
        client->send("after close"); // ignored
        CHECK_FALSE(client->is_open());
        REQUIRE(run_until(f.io, [&] { return crec.closed && srec.closed; }));
        check_closed(crec, cc::normal);
        check_closed(srec, cc::normal);
        CHECK(srec.reason == "done");
        CHECK(srec.frames.back() == "last"); // queued before the close: sent first
        CHECK(srec.frames.size() == up.size() + 1);
        CHECK(crec.written.size() == up.size() + 1);
    }
    SUBCASE("the server closes with an application code") {
        server_side->send("last");
        server_side->close(cc::auth_failed, "who are you");
        server_side->send("after close");
        REQUIRE(run_until(f.io, [&] { return crec.closed && srec.closed; }));
        check_closed(crec, cc::auth_failed);
        check_closed(srec, cc::auth_failed);
        CHECK(crec.reason == "who are you");
        CHECK(crec.frames.back() == "last");
        CHECK(crec.frames.size() == down.size() + 1);
    }

    // Sends after the end go nowhere; nothing is reported after closed.
    client->send("ghost");
    server_side->send("ghost");
    client->close(cc::normal, "again");
    f.server->stop();
    CHECK(run_out(f.io));
    CHECK(crec.closed == 1);
    CHECK(srec.closed == 1);
    CHECK(crec.after_closed == 0);
    CHECK(srec.after_closed == 0);
    CHECK(client->queued_bytes() == 0);
    for (const auto& s : srec.frames)
        CHECK(s != "ghost");
}

TEST_CASE("many frames in flight arrive in order and are each accounted once") {
    fixture f;
    recorder crec;
    auto client = f.connect(crec);
    recorder& srec = *f.server_recs[0];
    auto server_side = f.server_conns[0];

    const auto up = numbered("u", 3000, 1000);
    const auto down = numbered("d", 3000, 500);
    std::size_t up_bytes = 0;
    for (const auto& s : up) {
        client->send(s);
        up_bytes += s.size();
    }
    for (const auto& s : down)
        server_side->send(s);
    CHECK(client->queued_bytes() == up_bytes); // nothing has run yet: all queued

    REQUIRE(run_until(f.io, [&] {
        return srec.frames.size() == up.size() && crec.frames.size() == down.size() && crec.written.size() == up.size() &&
               srec.written.size() == down.size();
    }));
    CHECK(srec.frames == up);
    CHECK(crec.frames == down);
    CHECK(crec.written_total() == up_bytes);
    CHECK(crec.written == sizes(up));
    CHECK(srec.written == sizes(down));
    CHECK(client->queued_bytes() == 0);
    CHECK(crec.closed == 0);
    CHECK(srec.closed == 0);
}

TEST_CASE("frames that arrive before on_events are delivered once it is called") {
    fixture f({}, false);
    recorder crec;
    auto client = f.connect(crec);
    auto server_side = f.server_conns[0];
    recorder& srec = *f.server_recs[0];

    const std::vector<std::string> early = {"one", "two", "three"};
    for (const auto& s : early)
        client->send(s);
    // They have left the client (and sit in the server's socket).
    REQUIRE(run_until(f.io, [&] { return crec.written.size() == early.size(); }));
    CHECK(srec.frames.empty());
    server_side->on_events(srec.events());
    REQUIRE(run_until(f.io, [&] { return srec.frames.size() == early.size(); }));
    CHECK(srec.frames == early);
}

TEST_CASE("a connection closed before on_events reports closed once, to the first callbacks set after") {
    fixture f({}, false);
    recorder crec;
    auto client = f.connect(crec);
    auto server_side = f.server_conns[0];
    server_side->send("before close");
    server_side->close(cc::normal, "early");
    REQUIRE(run_until(f.io, [&] { return crec.closed == 1; }));
    CHECK(crec.frames == std::vector<std::string>{"before close"});
    check_closed(crec, cc::normal);
    CHECK(crec.reason == "early");
    f.server->stop();
    CHECK(run_out(f.io)); // the server side's close handshake is over too

    recorder first, second;
    server_side->on_events(first.events());
    server_side->on_events(second.events()); // replaces them before anything ran
    recorder third;
    REQUIRE(run_until(f.io, [&] { return second.closed == 1; }));
    server_side->on_events(third.events()); // after closed was reported: nothing
    CHECK(run_out(f.io));
    CHECK(first.closed == 0);
    check_closed(second, cc::normal);
    CHECK(third.closed == 0);
}

TEST_CASE("a message of exactly the maximum size passes; one byte more closes with 1009 on both sides") {
    ws::server_options opts;
    opts.max_message_bytes = 1024;
    fixture f(opts);
    recorder a_rec, b_rec;
    auto a = f.connect(a_rec);
    auto b = f.connect(b_rec);
    recorder& sa = *f.server_recs[0];
    recorder& sb = *f.server_recs[1];

    a->send(std::string(1024, 'm'));
    REQUIRE(run_until(f.io, [&] { return sa.frames.size() == 1; }));
    CHECK(sa.frames[0].size() == 1024);
    CHECK(sa.closed == 0);

    a->send(std::string(1025, 'm'));
    REQUIRE(run_until(f.io, [&] { return a_rec.closed && sa.closed; }));
    check_closed(a_rec, cc::too_big);
    check_closed(sa, cc::too_big);
    CHECK(sa.frames.size() == 1);

    // The server still serves the other client, both ways.
    b->send("still here");
    f.server_conns[1]->send("and answered");
    REQUIRE(run_until(f.io, [&] { return sb.frames.size() == 1 && b_rec.frames.size() == 1; }));
    CHECK(sb.frames[0] == "still here");
    CHECK(b_rec.frames[0] == "and answered");
    CHECK(b_rec.closed == 0);
    CHECK(sb.closed == 0);

    // The client's own limit, for what the server sends.
    ws::client_options small;
    small.max_message_bytes = 100;
    recorder c_rec;
    auto c = f.connect(c_rec, small);
    recorder& sc = *f.server_recs[2];
    f.server_conns[2]->send(std::string(100, 's'));
    f.server_conns[2]->send(std::string(101, 's'));
    REQUIRE(run_until(f.io, [&] { return c_rec.closed && sc.closed; }));
    CHECK(c_rec.frames == std::vector<std::string>{std::string(100, 's')});
    check_closed(c_rec, cc::too_big);
    check_closed(sc, cc::too_big);
}

TEST_CASE("a binary frame closes with 1003; a text frame that is not UTF-8 with 1007") {
    fixture f;
    raw_client raw(f.io);
    raw.open(f.port(), "/sync/ws");
    REQUIRE(run_until(f.io, [&] { return raw.handshake.has_value() && !f.server_recs.empty(); }));
    REQUIRE_FALSE(*raw.handshake);
    recorder& srec = *f.server_recs[0];

    std::uint16_t expected = 0;
    std::string payload;
    SUBCASE("binary") {
        raw.ws.binary(true);
        payload = "\x01\x02\x03";
        expected = cc::unsupported;
    }
    SUBCASE("invalid UTF-8") {
        raw.ws.text(true);
        payload = "bad \xFF byte";
        expected = cc::invalid_payload;
    }
    bool wrote = false;
    raw.ws.async_write(asio::buffer(payload), [&](beast::error_code ec, std::size_t) {
        CHECK_FALSE(ec);
        wrote = true;
    });
    raw.read_all();
    REQUIRE(run_until(f.io, [&] { return wrote && raw.read.has_value() && srec.closed; }));
    CHECK(*raw.read == beast::websocket::error::closed);
    CHECK(raw.ws.reason().code == expected);
    check_closed(srec, expected);
    CHECK(srec.frames.empty());
}

TEST_CASE("a TCP connection lost without a close frame reports 1006") {
    fixture f;
    SUBCASE("the client's socket is closed") {
        raw_client raw(f.io);
        raw.open(f.port(), "/sync/ws");
        REQUIRE(run_until(f.io, [&] { return raw.handshake.has_value() && !f.server_recs.empty(); }));
        REQUIRE_FALSE(*raw.handshake);
        recorder& srec = *f.server_recs[0];
        beast::get_lowest_layer(raw.ws).socket().close();
        REQUIRE(run_until(f.io, [&] { return srec.closed == 1; }));
        check_closed(srec, cc::abnormal);
    }
    SUBCASE("the server drops it (close with a code that may not be sent)") {
        recorder crec;
        auto client = f.connect(crec);
        recorder& srec = *f.server_recs[0];
        f.server_conns[0]->send("first");
        f.server_conns[0]->close(cc::abnormal, "");
        REQUIRE(run_until(f.io, [&] { return crec.closed && srec.closed; }));
        CHECK(crec.frames == std::vector<std::string>{"first"});
        check_closed(crec, cc::abnormal);
        check_closed(srec, cc::abnormal);
    }
}

TEST_CASE("stop() sends each client its queued frames, then 1001, and the io_context runs out of work") {
    fixture f;
    recorder r1, r2;
    auto c1 = f.connect(r1);
    auto c2 = f.connect(r2);
    for (const auto& conn : f.server_conns)
        for (const auto& s : numbered("bye ", 3))
            conn->send(s);
    f.server->stop();
    REQUIRE(run_until(f.io, [&] { return r1.closed && r2.closed && f.server_recs[0]->closed && f.server_recs[1]->closed; }));
    for (const auto* r : {&r1, &r2}) {
        CHECK(r->frames == numbered("bye ", 3));
        check_closed(*r, cc::going_away);
    }
    check_closed(*f.server_recs[0], cc::going_away);
    check_closed(*f.server_recs[1], cc::going_away);
    CHECK(f.server->connection_count() == 0);
    CHECK(run_out(f.io));

    // Nothing listens any more.
    boost::system::error_code got;
    int called = 0;
    ws::connect(f.io, f.url(), {}, [&](boost::system::error_code ec, std::shared_ptr<ws::connection> c) {
        ++called;
        got = ec;
        CHECK_FALSE(c);
    });
    REQUIRE(run_until(f.io, [&] { return called == 1; }));
    CHECK(got);
    CHECK(f.server_conns.size() == 2);
}

TEST_CASE("an upgrade to another path gets 404; the path and query reach on_connection") {
    fixture f;
    SUBCASE("raw handshake sees the status") {
        raw_client raw(f.io);
        raw.open(f.port(), "/elsewhere/ws");
        REQUIRE(run_until(f.io, [&] { return raw.handshake.has_value(); }));
        CHECK(*raw.handshake == beast::websocket::error::upgrade_declined);
        CHECK(raw.response.result_int() == 404);
    }
    SUBCASE("connect reports upgrade_declined") {
        boost::system::error_code got;
        bool called = false;
        ws::connect(f.io, f.url("/sync/wsx"), {}, [&](boost::system::error_code ec, std::shared_ptr<ws::connection> c) {
            called = true;
            got = ec;
            CHECK_FALSE(c);
        });
        REQUIRE(run_until(f.io, [&] { return called; }));
        CHECK(got == beast::websocket::error::upgrade_declined);
    }
    SUBCASE("the right path with a query") {
        recorder rec;
        auto c = f.connect(rec, {}, "/sync/ws?databaseId=main&x=1");
        REQUIRE(f.upgrades.size() == 1);
        CHECK(f.upgrades[0].path == "/sync/ws");
        CHECK(f.upgrades[0].query == "databaseId=main&x=1");
    }
    CHECK(f.server_conns.size() == (f.upgrades.empty() ? 0u : 1u));
}

TEST_CASE("plain HTTP on the same port goes to the http handler, 404 without an answer") {
    ws::server_options opts;
    std::vector<std::string> seen;
    opts.http = [&](std::string_view method, std::string_view target) -> std::optional<ws::http_reply> {
        seen.push_back(std::string(method) + " " + std::string(target));
        if (target == "/status")
            return ws::http_reply{200, "application/json", R"({"ok":true})"};
        if (target == "/boom")
            throw std::runtime_error("handler failed");
        return std::nullopt;
    };
    fixture f(opts);
    http_client client(f.io);
    client.get_all(f.port(), {"/status", "/metrics?x=1", "/boom"});
    REQUIRE(run_until(f.io, [&] { return client.completed == 3 || client.error; }));
    CHECK_FALSE(client.error);
    CHECK(client.responses[0].result_int() == 200);
    CHECK(client.responses[0][http::field::content_type] == "application/json");
    CHECK(client.responses[0].body() == R"({"ok":true})");
    CHECK(client.responses[1].result_int() == 404);
    CHECK(client.responses[2].result_int() == 500);
    CHECK(seen == std::vector<std::string>{"GET /status", "GET /metrics?x=1", "GET /boom"});

    // Without a handler: 404.
    fixture bare;
    http_client other(bare.io);
    other.get_all(bare.port(), {"/status"});
    REQUIRE(run_until(bare.io, [&] { return other.completed == 1 || other.error; }));
    CHECK(other.responses[0].result_int() == 404);
}

TEST_CASE("connect errors: nothing listening, a handshake that never comes") {
    asio::io_context io;
    boost::system::error_code got;
    int called = 0;
    std::shared_ptr<ws::connection> conn;
    const auto done = [&](boost::system::error_code ec, std::shared_ptr<ws::connection> c) {
        ++called;
        got = ec;
        conn = std::move(c);
    };
    SUBCASE("nothing listens") {
        ws::connect(io, "ws://127.0.0.1:" + std::to_string(free_port(io)) + "/sync/ws", {}, done);
        REQUIRE(run_until(io, [&] { return called > 0; }));
        CHECK(got == asio::error::connection_refused);
    }
    SUBCASE("a listener that never answers: the connect timeout") {
        // The kernel completes the TCP connection from the backlog; nobody
        // accepts it, so the handshake never gets an answer.
        asio::ip::tcp::acceptor silent(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        ws::client_options opts;
        opts.connect_timeout = 200ms;
        ws::connect(io, "ws://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + "/", opts, done);
        REQUIRE(run_until(io, [&] { return called > 0; }));
        CHECK(got == beast::error::timeout);
    }
    CHECK(called == 1);
    CHECK_FALSE(conn);
    CHECK(run_out(io));
    CHECK(called == 1);
}

TEST_CASE("URLs: parsed by hand; a bad one is a typed error") {
    auto u = ws::parse_url("ws://example.com");
    CHECK_FALSE(u.secure);
    CHECK(u.host == "example.com");
    CHECK(u.port == 80);
    CHECK(u.target == "/");

    u = ws::parse_url("WS://[::1]:9000/sync/ws?databaseId=a");
    CHECK(u.host == "::1");
    CHECK(u.port == 9000);
    CHECK(u.target == "/sync/ws?databaseId=a");

    u = ws::parse_url("ws://h:1?x=1");
    CHECK(u.port == 1);
    CHECK(u.target == "/?x=1");

    u = ws::parse_url("wss://h/p");
    CHECK(u.secure);
    CHECK(u.port == 443);

    for (const char* bad : {"http://127.0.0.1/", "ws:/h/", "ws://", "ws://:80/", "ws://h:/", "ws://h:0/", "ws://h:65536/",
                            "ws://h:12a/", "ws://u@h/", "ws://h/a#f", "ws://h/a b", "ws://[::1/", "ws://[::1]x/",
                            "ws://::1:80/", "ws://h/\x01"}) {
        CAPTURE(bad);
        try {
            (void)ws::parse_url(bad);
            FAIL("parsed");
        } catch (const crdtsync::usage_error& e) {
            CHECK(e.code() == crdtsync::errc::invalid_argument);
        }
    }

    // connect refuses them at once, and wss:// too (no TLS).
    asio::io_context io;
    bool called = false;
    const auto done = [&](boost::system::error_code, std::shared_ptr<ws::connection>) { called = true; };
    CHECK_THROWS_AS(ws::connect(io, "ws://h:99999/", {}, done), crdtsync::usage_error);
    try {
        ws::connect(io, "wss://127.0.0.1:1/", {}, done);
        FAIL("wss accepted");
    } catch (const crdtsync::usage_error& e) {
        CHECK(e.code() == crdtsync::errc::invalid_argument);
        CHECK(std::string(e.what()).find("wss://") != std::string::npos);
    }
    CHECK(run_out(io));
    CHECK_FALSE(called);
}

TEST_CASE("server options are checked: address, path, a port in use") {
    asio::io_context io;
    const auto code_of = [&](ws::server_options opts) {
        try {
            ws::server s(io, std::move(opts));
        } catch (const crdtsync::error& e) {
            return e.code();
        }
        return crdtsync::errc{};
    };
    ws::server_options bad_address;
    bad_address.address = "localhost:80";
    CHECK(code_of(bad_address) == crdtsync::errc::invalid_argument);
    ws::server_options bad_path;
    bad_path.path = "sync/ws";
    CHECK(code_of(bad_path) == crdtsync::errc::invalid_argument);

    ws::server first(io, {});
    ws::server_options same_port;
    same_port.port = first.port();
    CHECK(code_of(same_port) == crdtsync::errc::network);
    CHECK(first.port() != 0);
    first.stop();
    CHECK(run_out(io));
}
