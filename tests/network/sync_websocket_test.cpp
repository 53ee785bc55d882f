// The sync sessions over real WebSocket connections on 127.0.0.1 (ports
// chosen by the OS), every replica on LMDB files: three clients converge
// through a server; a client that connects while another streams changes
// ends with all of them; bad peers (malformed and oversized frames, a wrong
// protocol version, a second handshake, a wrong token) get the right error
// and close code while the server keeps serving the others.
#include <crdtsync/backends/lmdb.hpp>
#include <crdtsync/crdtsync.hpp>
#include <crdtsync/sync_client.hpp>
#include <crdtsync/sync_server.hpp>
#include <crdtsync/transports/websocket.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace network_tests {
namespace ws = crdtsync::websocket;
namespace asio = boost::asio;
namespace cc = crdtsync::close_code;
using json = nlohmann::json;
using namespace std::chrono_literals;
using replica = crdtsync::replica<crdtsync::lmdb_store>;

class temp_dir {
public:
    temp_dir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "crdtsync-net-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

bool run_until(asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        if (io.stopped()) io.restart();
        io.run_one_for(20ms);
    }
    return true;
}

crdtsync::table_def notes_table() {
    return crdtsync::table_def{"notes"}
        .column("id", crdtsync::column_type::integer, false)
        .column("body", crdtsync::column_type::text)
        .primary_key({"id"});
}

struct store_and_replica {
    std::unique_ptr<crdtsync::lmdb_store> store;
    std::unique_ptr<replica> rep;
    store_and_replica(const std::filesystem::path& file) {
        crdtsync::lmdb_options o;
        o.path = file.string();
        store = std::make_unique<crdtsync::lmdb_store>(o);
        rep = std::make_unique<replica>(*store);
    }
    replica* operator->() const { return rep.get(); }
    replica& operator*() const { return *rep; }
};

/// A server on 127.0.0.1 with database "app" (token "secret"), and clients.
struct net {
    temp_dir dir;
    asio::io_context io;
    store_and_replica hub{dir.path() / "server.mdb"};
    crdtsync::sync_server<replica> sessions{{
        .open_database = [this](std::string_view id) { return id == "app" ? hub.rep.get() : nullptr; },
        .authenticate = [](const crdtsync::msg::handshake& h) -> std::optional<std::string> {
            if (h.token == std::optional<std::string>("secret")) return std::nullopt;
            return "wrong or missing token";
        },
    }};
    std::unique_ptr<ws::server> server;
    std::string url;
    struct client {
        store_and_replica r;
        std::unique_ptr<crdtsync::sync_client<replica>> c;
    };
    std::deque<client> clients;

    explicit net(std::size_t max_message_bytes = ws::default_max_message_bytes) {
        ws::server_options o;
        o.max_message_bytes = max_message_bytes;
        o.on_connection = [this](std::shared_ptr<ws::connection> c, const ws::upgrade_info&) { (void)sessions.attach(c); };
        server = std::make_unique<ws::server>(io, o);
        url = "ws://127.0.0.1:" + std::to_string(server->port()) + "/sync/ws";
    }
    client& add(const std::string& name) {
        clients.push_back({store_and_replica{dir.path() / (name + ".mdb")}, nullptr});
        auto& c = clients.back();
        c.c = std::make_unique<crdtsync::sync_client<replica>>(*c.r, crdtsync::sync_client_config{.database_id = "app", .token = "secret"});
        return c;
    }
    void connect(client& c) {
        ws::connect(io, url, {}, [&c](boost::system::error_code ec, std::shared_ptr<ws::connection> conn) {
            REQUIRE_FALSE(ec);
            c.c->attach(conn);
        });
    }
    bool all_synced() {
        for (auto& c : clients)
            if (!c.c->synced()) return false;
        return true;
    }
    bool all_equal() {
        const auto d = hub->dump();
        for (auto& c : clients)
            if (c.r->dump() != d) return false;
        return true;
    }
};

/// A WebSocket peer that sends what the test says and records what it gets.
struct raw_peer {
    std::shared_ptr<ws::connection> conn;
    std::vector<json> got;
    std::optional<std::uint16_t> closed;
    bool failed = false;

    raw_peer(net& n) {
        ws::connect(n.io, n.url, {}, [this](boost::system::error_code ec, std::shared_ptr<ws::connection> c) {
            if (ec) {
                failed = true;
                return;
            }
            conn = c;
            conn->on_events({.frame = [this](std::string_view f) { got.push_back(json::parse(f)); },
                             .written = [](std::size_t) {},
                             .closed = [this](std::uint16_t code, std::string_view) { closed = code; }});
        });
        REQUIRE(run_until(n.io, [&] { return conn || failed; }));
        REQUIRE_FALSE(failed);
    }
    void say(const json& j) { conn->send(j.dump()); }
    void say(std::string text) { conn->send(std::move(text)); }
};

json handshake(std::string token = "secret", int version = 1) {
    crdtsync::site_id::bytes_type b{};
    b.fill(0x77);
    return json{{"type", "handshake"}, {"databaseId", "app"}, {"siteId", crdtsync::site_id{b}.to_text()},
                {"protocolVersion", version}, {"token", token}};
}

TEST_CASE("three clients and a server converge over WebSocket on loopback, live both ways") {
    net n;
    n.hub->create_table(notes_table());
    n.hub->write([](auto& tx) { tx.insert("notes", {{"id", 0}, {"body", "server"}}); });
    for (int i = 1; i <= 3; ++i) {
        auto& c = n.add("client" + std::to_string(i));
        c.r->create_table(notes_table());
        c.r->write([i](auto& tx) {
            for (int k = 0; k < 50; ++k) tx.insert("notes", {{"id", i * 1000 + k}, {"body", "offline"}});
        });
    }
    for (auto& c : n.clients) n.connect(c);
    REQUIRE(run_until(n.io, [&] { return n.all_synced() && n.all_equal(); }));
    CHECK(n.hub->rows("notes").size() == 151);

    // Live: each client writes; every other sees it.
    for (auto& c : n.clients)
        c.r->write([&](auto& tx) { (void)tx.update("notes", {0}, {{"body", c.r->site_id().to_text()}}); });
    REQUIRE(run_until(n.io, [&] { return n.all_synced() && n.all_equal(); }));
    CHECK(n.sessions.stats().handshakes == 3);
    CHECK(n.sessions.sessions().size() == 3);
}

TEST_CASE("a client that connects while another streams changes ends with all of them") {
    net n;
    n.hub->create_table(notes_table());
    auto& writer = n.add("writer");
    auto& late = n.add("late");
    n.connect(writer);
    REQUIRE(run_until(n.io, [&] { return writer.c->synced(); }));
    for (int i = 0; i < 400; ++i) {
        writer.r->write([i](auto& tx) { tx.insert("notes", {{"id", i}, {"body", std::string(100, 'x')}}); });
        if (i == 150) n.connect(late);
        n.io.poll();
    }
    REQUIRE(run_until(n.io, [&] { return n.all_synced() && n.all_equal(); }));
    CHECK(late.r->rows("notes").size() == 400);
}

TEST_CASE("bad peers get the right error and close code; the server keeps serving the others") {
    net n{64 * 1024};
    n.hub->create_table(notes_table());
    auto& good = n.add("good");
    n.connect(good);
    REQUIRE(run_until(n.io, [&] { return good.c->synced(); }));

    SUBCASE("malformed frames: MESSAGE_ERROR, the session stays") {
        raw_peer p{n};
        p.say(handshake());
        p.say(std::string("{\"type\":\"get_changes\",\"sinceHLC\":42"));
        p.say(json{{"type", "ping"}});
        REQUIRE(run_until(n.io, [&] { return p.got.size() >= 3; }));
        CHECK(p.got[0]["type"] == "handshake_ack");
        CHECK(p.got[1]["type"] == "error");
        CHECK(p.got[1]["code"] == "MESSAGE_ERROR");
        CHECK(p.got[2]["type"] == "pong");
        CHECK_FALSE(p.closed);
    }
    SUBCASE("an oversized frame: closed with 1009") {
        raw_peer p{n};
        p.say(handshake());
        p.say(std::string(64 * 1024 + 1, ' '));
        REQUIRE(run_until(n.io, [&] { return p.closed.has_value(); }));
        CHECK(*p.closed == cc::too_big);
    }
    SUBCASE("a wrong protocol version: PROTOCOL_VERSION_MISMATCH, 4003") {
        raw_peer p{n};
        p.say(handshake("secret", 2));
        REQUIRE(run_until(n.io, [&] { return p.closed.has_value(); }));
        REQUIRE(p.got.size() == 1);
        CHECK(p.got[0]["code"] == "PROTOCOL_VERSION_MISMATCH");
        CHECK(p.got[0]["fatal"] == true);
        CHECK(*p.closed == cc::protocol_version);
    }
    SUBCASE("a second handshake: ALREADY_AUTHENTICATED, closed") {
        raw_peer p{n};
        p.say(handshake());
        p.say(handshake());
        REQUIRE(run_until(n.io, [&] { return p.closed.has_value(); }));
        REQUIRE(p.got.size() == 2);
        CHECK(p.got[1]["code"] == "ALREADY_AUTHENTICATED");
        CHECK(*p.closed == cc::policy_violation);
    }
    SUBCASE("a wrong token: AUTH_FAILED, 4001") {
        raw_peer p{n};
        p.say(handshake("guess"));
        REQUIRE(run_until(n.io, [&] { return p.closed.has_value(); }));
        REQUIRE(p.got.size() == 1);
        CHECK(p.got[0]["code"] == "AUTH_FAILED");
        CHECK(*p.closed == cc::auth_failed);
        CHECK(n.sessions.stats().refused_auth == 1);
    }
    // The good client is still served.
    n.hub->write([](auto& tx) { tx.insert("notes", {{"id", 7}, {"body", "after the bad peer"}}); });
    REQUIRE(run_until(n.io, [&] { return good.c->synced() && good.r->dump() == n.hub->dump(); }));
}

TEST_CASE("a sync_client refused by the server's token stops, and says why") {
    net n;
    auto& c = n.add("intruder");
    c.c = std::make_unique<crdtsync::sync_client<replica>>(*c.r, crdtsync::sync_client_config{.database_id = "app", .token = "nope"});
    n.connect(c);
    REQUIRE(run_until(n.io, [&] { return c.c->state() == crdtsync::sync_state::failed; }));
    REQUIRE(c.c->last_error());
    CHECK(c.c->last_error()->code == "AUTH_FAILED");
}

} // namespace network_tests
