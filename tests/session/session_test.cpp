// The sync sessions (sync_client, sync_server) over the in-process pipe:
// every message and error path driven directly, convergence of several
// clients, snapshots and their resumption, positions that only move after a
// confirmation, flow control, Quereus-shaped peers, and a property test with
// random writes, deliveries and lost connections. Each runs on the memory
// store and on LMDB.
#include "replica/support.hpp"

#include <crdtsync/pipe.hpp>
#include <crdtsync/replica_check.hpp>
#include <crdtsync/sync_client.hpp>
#include <crdtsync/sync_server.hpp>
#include <crdtsync/wire/json.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace session_tests {
using namespace replica_tests;
using crdtsync::pipe_loop;
using crdtsync::sync_state;
namespace msg = crdtsync::msg;
namespace close_code = crdtsync::close_code;
using time_point = std::chrono::steady_clock::time_point;
using json = nlohmann::json;

template <class Env>
using client_t = crdtsync::sync_client<replica_t<typename Env::store_type>>;
template <class Env>
using server_t = crdtsync::sync_server<replica_t<typename Env::store_type>>;

inline time_point at_ms(std::int64_t ms) { return time_point{} + std::chrono::milliseconds(ms); }

/// A server replica with one database ("app"), clients on pipes, one loop.
template <class Env>
struct world {
    Env env;
    sim_time t;
    node_t<Env> hub;
    server_t<Env> server;
    pipe_loop loop;
    struct client {
        node_t<Env> n;
        std::unique_ptr<client_t<Env>> c;
        std::shared_ptr<crdtsync::pipe> end;
    };
    std::deque<client> clients; // stable references

    explicit world(crdtsync::session_options o = {}, replica_options server_opts = options_for(delete_policy::insert_revives, 0x10),
                   std::function<bool(std::string_view, std::uint64_t)> hold = {})
        : hub(open_node<Env>(env, server_opts, fake_clock{&t.now})),
          server({.open_database = [this](std::string_view id) { return id == "app" ? hub.rep.get() : nullptr; },
                  .hold_result = std::move(hold)},
                 o) {}

    client& add_client(std::uint8_t site, bool with_schema = true, crdtsync::sync_client_config cfg = {.database_id = "app"},
                       std::int64_t skew_ms = 0) {
        client c;
        c.n = open_node<Env>(env, options_for(delete_policy::insert_revives, site), fake_clock{&t.now, skew_ms});
        if (with_schema) REQUIRE(c.n->apply(schema_sets()).rejected.empty());
        c.c = std::make_unique<client_t<Env>>(*c.n, cfg);
        clients.push_back(std::move(c));
        return clients.back();
    }
    void connect(client& c) {
        auto [ce, se] = loop.connect();
        (void)server.attach(se);
        c.end = ce;
        c.c->attach(ce);
    }
    void connect_all() {
        for (auto& c : clients) connect(c);
    }
    void run() { loop.run(1'000'000); }
};

template <class R>
void put_note(R& r, const std::string& k, const std::string& body) {
    r.write([&](auto& tx) {
        if (tx.get("notes", {value{k}})) (void)tx.update("notes", {value{k}}, row{{"body", value{body}}});
        else tx.insert("notes", row{{"k", value{k}}, {"body", value{body}}});
    });
}

/// A connection to the server driven by hand: every frame the server sends
/// is kept, decoded; closes are recorded; nothing is reported written unless
/// the test says so.
template <class Env>
struct raw_peer {
    server_t<Env>& server;
    typename server_t<Env>::connection_id id;
    std::vector<std::string> frames;
    std::optional<std::uint16_t> closed_with;
    std::size_t taken = 0;

    explicit raw_peer(server_t<Env>& s) : server(s), id(0) {
        id = server.accept({.send = [this](std::string f) { frames.push_back(std::move(f)); },
                            .close = [this](std::uint16_t c, std::string_view) { closed_with = c; }},
                           at_ms(0));
    }
    void say(const std::string& frame) { server.receive(id, frame); }
    void say(const json& j) { say(j.dump()); }
    /// The frames received since the last call, decoded.
    std::vector<crdtsync::message> take() {
        std::vector<crdtsync::message> out;
        for (; taken < frames.size(); ++taken) out.push_back(crdtsync::wire::decode_message(frames[taken]));
        return out;
    }
    std::vector<json> take_json() {
        std::vector<json> out;
        for (; taken < frames.size(); ++taken) out.push_back(json::parse(frames[taken]));
        return out;
    }
    void handshake(const site_id& site, bool by_position = true) {
        msg::handshake h;
        h.database_id = "app";
        h.site = site;
        h.by_position = by_position;
        say(crdtsync::wire::encode(crdtsync::message{h}));
    }
};

inline std::string first_problem(const crdtsync::consistency_report& r) { return r.ok() ? std::string() : r.problems.front(); }

template <class M>
const M& as(const crdtsync::message& m) {
    REQUIRE_MESSAGE(std::holds_alternative<M>(m), "got a ", crdtsync::wire_type_of(m), " message, expected ", M::wire_type);
    return std::get<M>(m);
}

// ---------------------------------------------------------------------------

TEST_CASE_TEMPLATE("two clients converge through a server over pipes, both ways, live", Env, CRDTSYNC_TEST_STORES) {
    world<Env> w;
    auto& a = w.add_client(0x21);
    auto& b = w.add_client(0x22);
    put_note(*a.n, "from-a", "1");
    put_note(*b.n, "from-b", "2");
    w.connect_all();
    w.run();
    CHECK(a.c->state() == sync_state::live);
    CHECK(b.c->state() == sync_state::live);
    CHECK(a.c->by_position());
    CHECK(a.c->synced());
    CHECK(b.c->synced());
    CHECK(a.n->dump() == w.hub->dump());
    CHECK(b.n->dump() == w.hub->dump());
    REQUIRE(b.n->get("notes", {value{"from-a"}}));

    // Live: a commit on one client reaches the other by push.
    put_note(*a.n, "live", "x");
    w.run();
    REQUIRE(b.n->get("notes", {value{"live"}}));
    CHECK(b.n->get("notes", {value{"live"}})->at("body") == value{"x"});
    CHECK(a.n->dump() == b.n->dump());
    // Confirmed positions were persisted on both sides of each client.
    const auto pa = a.n->peer(w.hub->site_id());
    CHECK(pa.sent_up_to == a.n->position());
    CHECK(pa.received_up_to > 0);
    // Nothing that came from the server was sent back to it.
    CHECK(a.c->stats().change_sets_out == 3); // the schema, the note before connecting, and "live"
    CHECK(w.server.stats().handshakes == 2);
}

TEST_CASE_TEMPLATE("an empty client bootstraps by snapshot, and an interrupted one resumes from its checkpoint", Env,
                   CRDTSYNC_TEST_STORES) {
    crdtsync::session_options o;
    o.snapshot_chunk_entries = 3;
    world<Env> w{o};
    REQUIRE(w.hub->apply(schema_sets()).rejected.empty());
    for (int i = 0; i < 40; ++i) put_note(*w.hub, "n" + std::to_string(i), std::to_string(i));

    SUBCASE("whole") {
        auto& c = w.add_client(0x31, false);
        w.connect(c);
        w.run();
        CHECK(c.c->stats().snapshots == 1);
        CHECK(c.c->state() == sync_state::live);
        CHECK(c.n->dump() == w.hub->dump());
        // Delta sync continues from the snapshot's position.
        put_note(*w.hub, "after", "1");
        w.run();
        CHECK(c.n->dump() == w.hub->dump());
    }
    SUBCASE("interrupted, then resumed") {
        auto& c = w.add_client(0x32, false);
        w.connect(c);
        // Deliver until a few chunks were loaded, then lose the connection.
        while (c.c->stats().snapshot_chunks < 5) REQUIRE(w.loop.run_one());
        c.end->sever();
        w.run();
        CHECK(c.c->state() == sync_state::disconnected);
        CHECK(c.c->stats().snapshots == 0);
        put_note(*w.hub, "meanwhile", "m"); // the server changes before the resume
        w.connect(c);
        w.run();
        CHECK(c.c->stats().snapshots == 1);
        CHECK(c.c->stats().snapshot_chunks < 5 + 40); // resumed, not restarted from scratch
        CHECK(c.n->dump() == w.hub->dump());
    }
}

TEST_CASE_TEMPLATE("a change set in flight when the connection drops is sent again, never skipped", Env, CRDTSYNC_TEST_STORES) {
    world<Env> w;
    auto& a = w.add_client(0x41);
    auto& b = w.add_client(0x42);
    w.connect_all();
    w.run();
    const auto before = a.n->peer(w.hub->site_id()).sent_up_to;
    put_note(*a.n, "k", "v"); // queued to the server on a's pipe
    a.end->sever();           // lost with it
    w.run();
    CHECK(a.n->peer(w.hub->site_id()).sent_up_to == before); // not confirmed: not recorded
    CHECK_FALSE(w.hub->get("notes", {value{"k"}}));
    w.connect(a);
    w.run();
    CHECK(w.hub->get("notes", {value{"k"}}));
    CHECK(b.n->get("notes", {value{"k"}}));
    CHECK(a.n->peer(w.hub->site_id()).sent_up_to == a.n->position());
}

TEST_CASE_TEMPLATE("a change set the server rejects keeps the sent position before it; later ones still flow", Env,
                   CRDTSYNC_TEST_STORES) {
    world<Env> w;
    // a's clock runs ten minutes ahead: the server refuses its facts (drift).
    auto& a = w.add_client(0x51, true, {.database_id = "app"}, 600'000);
    auto& b = w.add_client(0x52);
    w.connect_all();
    w.run();
    const auto confirmed = a.n->peer(w.hub->site_id()).sent_up_to;
    put_note(*a.n, "future", "f");
    w.run();
    CHECK(a.c->stats().rejected_there == 1);
    CHECK_FALSE(w.hub->get("notes", {value{"future"}}));
    CHECK(a.n->peer(w.hub->site_id()).sent_up_to == confirmed);
    // Pulling still works for a: b's changes arrive.
    put_note(*b.n, "from-b", "b");
    w.run();
    CHECK(a.n->get("notes", {value{"from-b"}}));
    // Once the server's clock catches up, the next connection sends it again and it lands.
    w.t.now += 600'000;
    a.end->close(close_code::normal, "bye");
    w.run();
    w.connect(a);
    w.run();
    CHECK(w.hub->get("notes", {value{"future"}}));
    CHECK(b.n->get("notes", {value{"future"}}));
    CHECK(a.n->peer(w.hub->site_id()).sent_up_to == a.n->position());
}

TEST_CASE_TEMPLATE("a held apply_result leaves only when released, in order; pushes to others do not wait", Env, CRDTSYNC_TEST_STORES) {
    // What a cluster node does: answer a client only once what it accepted
    // is acknowledged elsewhere (here: once the test says so).
    std::uint64_t published = 0;
    std::vector<std::uint64_t> asked;
    world<Env> w({}, options_for(delete_policy::insert_revives, 0x10), [&](std::string_view db, std::uint64_t last) {
        CHECK(db == "app");
        asked.push_back(last);
        return last > published;
    });
    auto& a = w.add_client(0x61);
    auto& b = w.add_client(0x62, false);
    w.connect_all();
    w.run();
    REQUIRE(!asked.empty()); // a's schema was held
    CHECK(w.server.held_results() == 1);
    CHECK_FALSE(a.c->synced());
    CHECK(a.n->peer(w.hub->site_id()).sent_up_to == 0); // not confirmed: not recorded as sent
    CHECK(b.n->dump() == w.hub->dump());               // b got the schema without waiting
    published = w.hub->position();
    w.server.release("app", published);
    w.run();
    CHECK(w.server.held_results() == 0);
    CHECK(a.c->synced());
    CHECK(a.n->peer(w.hub->site_id()).sent_up_to == a.n->position());

    // Two batches held; releasing the first lets only the first go.
    put_note(*a.n, "one", "1");
    w.run();
    const auto after_one = w.hub->position();
    put_note(*a.n, "two", "2");
    w.run();
    CHECK(w.server.held_results() == 2);
    REQUIRE(b.n->get("notes", {value{"two"}}));
    w.server.release("app", after_one);
    w.run();
    CHECK(w.server.held_results() == 1);
    CHECK_FALSE(a.c->synced());
    w.server.release("app", std::numeric_limits<std::uint64_t>::max());
    w.run();
    CHECK(w.server.held_results() == 0);
    CHECK(a.c->synced());
    // A duplicate adds nothing to the log: the hook says not to hold it.
    asked.clear();
    published = w.hub->position();
    a.end->close(close_code::normal, "bye");
    w.run();
    a.n->set_peer_sent(w.hub->site_id(), 0); // a forgets it sent anything: everything goes again
    w.connect(a);
    w.run();
    CHECK(w.server.held_results() == 0);
    CHECK(a.c->synced());
    for (auto last : asked) CHECK(last <= published);
}

TEST_CASE_TEMPLATE("the server refuses bad handshakes with Quereus's codes and keeps serving the others", Env, CRDTSYNC_TEST_STORES) {
    world<Env> w;
    auto& good = w.add_client(0x61);
    w.connect(good);
    w.run();
    REQUIRE(good.c->state() == sync_state::live);
    auto site = site_of(0x62);
    const std::string site_text = site.to_text();

    SUBCASE("wrong protocol version: PROTOCOL_VERSION_MISMATCH, close 4003") {
        raw_peer<Env> p{w.server};
        p.say(json{{"type", "handshake"}, {"databaseId", "app"}, {"siteId", site_text}, {"protocolVersion", 2}});
        auto out = p.take();
        REQUIRE(out.size() == 1);
        CHECK(as<msg::error>(out[0]).code == "PROTOCOL_VERSION_MISMATCH");
        CHECK(as<msg::error>(out[0]).fatal == true);
        CHECK(p.closed_with == close_code::protocol_version);
    }
    SUBCASE("no protocol version (a pre-versioning client): the same") {
        raw_peer<Env> p{w.server};
        p.say(json{{"type", "handshake"}, {"databaseId", "app"}, {"siteId", site_text}});
        auto out = p.take();
        REQUIRE(out.size() == 1);
        CHECK(as<msg::error>(out[0]).code == "PROTOCOL_VERSION_MISMATCH");
        CHECK(p.closed_with == close_code::protocol_version);
    }
    SUBCASE("no database id: MISSING_DATABASE_ID, close 4002") {
        raw_peer<Env> p{w.server};
        p.say(json{{"type", "handshake"}, {"databaseId", ""}, {"siteId", site_text}, {"protocolVersion", 1}});
        auto out = p.take();
        REQUIRE(out.size() == 1);
        CHECK(as<msg::error>(out[0]).code == "MISSING_DATABASE_ID");
        CHECK(p.closed_with == close_code::missing_database);
    }
    SUBCASE("unknown database: AUTH_FAILED, close 4001") {
        raw_peer<Env> p{w.server};
        p.say(json{{"type", "handshake"}, {"databaseId", "other"}, {"siteId", site_text}, {"protocolVersion", 1}});
        auto out = p.take();
        REQUIRE(out.size() == 1);
        CHECK(as<msg::error>(out[0]).code == "AUTH_FAILED");
        CHECK(as<msg::error>(out[0]).message.find("other") != std::string::npos);
        CHECK(p.closed_with == close_code::auth_failed);
        CHECK(w.server.stats().refused_auth == 1);
    }
    SUBCASE("a second handshake: ALREADY_AUTHENTICATED, closed") {
        raw_peer<Env> p{w.server};
        p.handshake(site);
        CHECK(as<msg::handshake_ack>(p.take().at(0)).server_site == w.hub->site_id());
        p.handshake(site);
        auto out = p.take();
        REQUIRE(out.size() == 1);
        CHECK(as<msg::error>(out[0]).code == "ALREADY_AUTHENTICATED");
        CHECK(p.closed_with == close_code::policy_violation);
    }
    SUBCASE("requests before the handshake: NOT_AUTHENTICATED, the session stays") {
        raw_peer<Env> p{w.server};
        p.say(json{{"type", "get_changes"}});
        auto out = p.take();
        REQUIRE(out.size() == 1);
        CHECK(as<msg::error>(out[0]).code == "NOT_AUTHENTICATED");
        CHECK_FALSE(p.closed_with);
        p.handshake(site);
        CHECK(std::holds_alternative<msg::handshake_ack>(p.take().at(0)));
    }
    SUBCASE("malformed and unexpected messages: MESSAGE_ERROR / UNKNOWN_MESSAGE, the session stays") {
        raw_peer<Env> p{w.server};
        p.handshake(site);
        (void)p.take();
        p.say(std::string("{\"type\":\"apply_changes\",\"changes\":[{\"siteId\":1}]}"));
        p.say(std::string("not json"));
        p.say(json{{"type", "pong"}});
        p.say(json{{"type", "ping"}});
        auto out = p.take();
        REQUIRE(out.size() == 4);
        CHECK(as<msg::error>(out[0]).code == "MESSAGE_ERROR");
        CHECK(as<msg::error>(out[0]).message.find("siteId") != std::string::npos); // the JSON path
        CHECK(as<msg::error>(out[1]).code == "MESSAGE_ERROR");
        CHECK(as<msg::error>(out[2]).code == "UNKNOWN_MESSAGE");
        CHECK(std::holds_alternative<msg::pong>(out[3]));
        CHECK_FALSE(p.closed_with);
    }
    SUBCASE("an authentication hook refuses a token") {
        server_t<Env> guarded{{.open_database = [&](std::string_view) { return w.hub.rep.get(); },
                               .authenticate = [](const msg::handshake& h) -> std::optional<std::string> {
                                   if (h.token == std::optional<std::string>("secret")) return std::nullopt;
                                   return "bad token";
                               }}};
        raw_peer<Env> p{guarded};
        p.say(json{{"type", "handshake"}, {"databaseId", "app"}, {"siteId", site_text}, {"protocolVersion", 1}, {"token", "nope"}});
        auto out = p.take();
        CHECK(as<msg::error>(out.at(0)).code == "AUTH_FAILED");
        CHECK(p.closed_with == close_code::auth_failed);
        raw_peer<Env> q{guarded};
        q.say(json{{"type", "handshake"}, {"databaseId", "app"}, {"siteId", site_text}, {"protocolVersion", 1}, {"token", "secret"}});
        CHECK(std::holds_alternative<msg::handshake_ack>(q.take().at(0)));
    }
    // The good client was never disturbed.
    put_note(*w.hub, "still", "here");
    w.run();
    CHECK(good.n->get("notes", {value{"still"}}));
}

TEST_CASE_TEMPLATE("a client refuses a server of another protocol version and does not retry as is", Env, CRDTSYNC_TEST_STORES) {
    world<Env> w;
    auto& c = w.add_client(0x71);
    std::vector<std::string> sent;
    std::optional<std::uint16_t> closed;
    c.c->connected({.send = [&](std::string f) { sent.push_back(std::move(f)); },
                    .close = [&](std::uint16_t code, std::string_view) { closed = code; }},
                   at_ms(0));
    REQUIRE(sent.size() == 1);
    const auto hs = json::parse(sent[0]);
    CHECK(hs["type"] == "handshake");
    CHECK(hs["protocolVersion"] == 1);
    CHECK(hs["syncByPosition"] == true);
    c.c->receive(json{{"type", "handshake_ack"}, {"serverSiteId", site_of(0x10).to_text()}, {"connectionId", "c1"},
                      {"protocolVersion", 2}}
                     .dump());
    CHECK(c.c->state() == sync_state::failed);
    CHECK(closed == close_code::protocol_version);
    CHECK(c.c->last_problem().find("v2") != std::string::npos);
}

TEST_CASE_TEMPLATE("idle sessions time out; a quiet client pings", Env, CRDTSYNC_TEST_STORES) {
    crdtsync::session_options o;
    o.idle_timeout = std::chrono::milliseconds(1000);
    o.ping_interval = std::chrono::milliseconds(300);
    world<Env> w{o};
    raw_peer<Env> p{w.server};
    p.handshake(site_of(0x72));
    w.server.tick(at_ms(100)); // heard: the idle clock restarts
    w.server.tick(at_ms(900));
    CHECK_FALSE(p.closed_with);
    w.server.tick(at_ms(1200));
    CHECK(p.closed_with == close_code::idle_timeout);
    CHECK(w.server.stats().idle_closed == 1);

    crdtsync::sync_client_config cfg{.database_id = "app"};
    cfg.options = o;
    auto& c = w.add_client(0x73, true, cfg);
    std::vector<std::string> sent;
    std::optional<std::uint16_t> closed;
    c.c->connected({.send = [&](std::string f) { sent.push_back(std::move(f)); },
                    .close = [&](std::uint16_t code, std::string_view) { closed = code; }},
                   at_ms(0));
    c.c->tick(at_ms(400));
    REQUIRE(sent.size() == 2);
    CHECK(json::parse(sent[1])["type"] == "ping");
    c.c->tick(at_ms(1500)); // nothing heard since the start
    CHECK(closed == close_code::idle_timeout);
    CHECK(c.c->state() == sync_state::disconnected);
}

TEST_CASE_TEMPLATE("flow control: a peer that takes nothing costs the server a bounded queue, then resumes by position", Env,
                   CRDTSYNC_TEST_STORES) {
    crdtsync::session_options o;
    o.max_queued_bytes = 4096;
    o.max_facts_per_message = 10;
    world<Env> w{o};
    REQUIRE(w.hub->apply(schema_sets()).rejected.empty());
    raw_peer<Env> p{w.server};
    p.handshake(site_of(0x81));
    msg::get_changes g;
    g.since_position = w.hub->position();
    p.say(crdtsync::wire::encode(crdtsync::message{g}));
    auto first = p.take(); // ack, changes (empty, live)
    REQUIRE(first.size() == 2);
    CHECK(as<msg::changes>(first[1]).more == false);
    std::size_t bytes = 0;
    for (const auto& f : p.frames) bytes += f.size();

    for (int i = 0; i < 300; ++i) put_note(*w.hub, "k" + std::to_string(i), std::string(40, 'x'));
    std::size_t queued = 0;
    for (std::size_t i = 0; i < p.frames.size(); ++i) queued += p.frames[i].size();
    CHECK(queued - bytes <= o.max_queued_bytes + 4096); // the cap, plus one message
    const auto info = w.server.sessions().at(0);
    CHECK(info.position < w.hub->position()); // behind: waiting, not buffering

    // The peer catches up: each `written` lets the server continue from its position.
    std::size_t reported = 0;
    for (int round = 0; round < 1000 && w.server.sessions().at(0).position < w.hub->position(); ++round) {
        std::size_t n = 0;
        for (std::size_t i = reported; i < p.frames.size(); ++i) n += p.frames[i].size();
        reported = p.frames.size();
        w.server.written(p.id, n);
    }
    CHECK(w.server.sessions().at(0).position == w.hub->position());
    std::set<std::string> keys;
    for (auto& m : p.take())
        if (auto* push = std::get_if<msg::push_changes>(&m)) {
            CHECK(push->next_position.has_value());
            for (auto& cs : push->change_sets)
                for (auto& c : cs.changes) keys.insert(std::visit([](auto& f) { return f.pk[0].as_text(); }, c));
        }
    CHECK(keys.size() == 300);
}

TEST_CASE_TEMPLATE("a Quereus client: plain Quereus shapes both ways, HLC watermark, pushes", Env, CRDTSYNC_TEST_STORES) {
    world<Env> w;
    REQUIRE(w.hub->apply(schema_sets()).rejected.empty());
    put_note(*w.hub, "old", "1");
    const auto mid = changes_of(*w.hub).back().version; // what a Quereus client keeps as its watermark
    w.t.now += 10;
    put_note(*w.hub, "new", "2");

    raw_peer<Env> q{w.server};
    const auto qsite = site_of(0x91);
    // Exactly what a Quereus 4.16 client sends.
    q.say(json{{"type", "handshake"}, {"databaseId", "app"}, {"siteId", qsite.to_text()}, {"protocolVersion", 1}});
    auto ack = q.take_json().at(0);
    CHECK(ack["type"] == "handshake_ack");
    CHECK(ack["databaseId"] == "app");
    CHECK(ack["protocolVersion"] == 1);
    CHECK(ack["serverSiteId"] == w.hub->site_id().to_text());
    CHECK_FALSE(ack.contains("syncByPosition"));

    q.say(json{{"type", "get_changes"}, {"sinceHLC", crdtsync::wire::to_json(crdtsync::message{msg::get_changes{mid, {}}})["sinceHLC"]}});
    auto reply = q.take_json().at(0);
    CHECK(reply["type"] == "changes");
    CHECK_FALSE(reply.contains("nextPosition"));
    CHECK_FALSE(reply.contains("more"));
    REQUIRE(reply["changeSets"].size() == 1); // only what is newer than the watermark
    CHECK(reply["changeSets"][0]["changes"][0]["pk"][0] == "new");

    // The Quereus client pushes a change set, as its sync client writes it.
    change_set_builder b{at(w.t.now, 0, qsite)};
    b.set("notes", {value{"q"}}, "k", value{"q"}).set("notes", {value{"q"}}, "body", value{"from quereus"});
    auto cs_json = crdtsync::wire::to_json(b.build());
    q.say(json{{"type", "apply_changes"}, {"changes", json::array({cs_json})}, {"requestId", "apply-1"}});
    auto res = q.take_json().at(0);
    CHECK(res["type"] == "apply_result");
    CHECK(res["requestId"] == "apply-1");
    CHECK(res["applied"] == 2);
    CHECK(res["skipped"] == 0);
    CHECK(res["conflicts"] == 0);
    CHECK(res["transactions"] == 1);
    CHECK(w.hub->get("notes", {value{"q"}}));

    // A crdtsync client gets it by push; the Quereus client gets others' by push, without positions.
    auto& c = w.add_client(0x92);
    w.connect(c);
    w.run();
    CHECK(c.n->get("notes", {value{"q"}}));
    put_note(*c.n, "to-quereus", "x");
    w.run();
    auto pushes = q.take_json();
    REQUIRE(pushes.size() >= 1);
    CHECK(pushes.back()["type"] == "push_changes");
    CHECK_FALSE(pushes.back().contains("nextPosition"));
    CHECK(pushes.back()["changeSets"][0]["siteId"] == site_of(0x92).to_text());

    // Snapshot: chunks then snapshot_complete, Quereus's chunk shapes.
    q.say(json{{"type", "get_snapshot"}});
    auto snap = q.take_json();
    REQUIRE(snap.size() >= 3);
    CHECK(snap.front()["type"] == "snapshot_chunk");
    CHECK(snap.front()["chunk"]["type"] == "header");
    CHECK(snap.back()["type"] == "snapshot_complete");
    CHECK(snap[snap.size() - 2]["chunk"]["type"] == "footer");
}

TEST_CASE_TEMPLATE("a client of a Quereus server syncs by HLC watermark", Env, CRDTSYNC_TEST_STORES) {
    // The server side is scripted: exactly Quereus's replies, no crdtsync fields.
    world<Env> w;
    auto& c = w.add_client(0xa1);
    put_note(*c.n, "mine", "1");
    std::vector<json> sent;
    c.c->connected({.send = [&](std::string f) { sent.push_back(json::parse(f)); }, .close = [](std::uint16_t, std::string_view) {}},
                   at_ms(0));
    const auto server_site = site_of(0xa0);
    c.c->receive(json{{"type", "handshake_ack"}, {"serverSiteId", server_site.to_text()}, {"connectionId", "x"},
                      {"databaseId", "app"}, {"protocolVersion", 1}}
                     .dump());
    CHECK_FALSE(c.c->by_position());
    REQUIRE(sent.size() == 2);
    CHECK(sent[1]["type"] == "get_changes");
    CHECK_FALSE(sent[1].contains("sincePosition"));
    CHECK_FALSE(sent[1].contains("sinceHLC")); // nothing received yet
    change_set_builder b{at(w.t.now, 0, server_site)};
    b.set("notes", {value{"theirs"}}, "k", value{"theirs"});
    const auto theirs = b.build();
    c.c->receive(json{{"type", "changes"}, {"changeSets", json::array({crdtsync::wire::to_json(theirs)})}}.dump());
    CHECK(c.c->state() == sync_state::live);
    CHECK(c.n->get("notes", {value{"theirs"}}));
    REQUIRE(sent.size() == 3);
    CHECK(sent[2]["type"] == "apply_changes");
    CHECK(sent[2]["requestId"] == "apply-1");
    c.c->receive(json{{"type", "apply_result"}, {"requestId", "apply-1"}, {"applied", 2}, {"skipped", 0}, {"conflicts", 0},
                      {"transactions", 1}}
                     .dump());
    CHECK(c.c->synced());
    CHECK(c.n->peer(server_site).sent_up_to == c.n->position());
    // The next connection asks from the watermark: the newest change set received.
    c.c->disconnected();
    sent.clear();
    c.c->connected({.send = [&](std::string f) { sent.push_back(json::parse(f)); }, .close = [](std::uint16_t, std::string_view) {}},
                   at_ms(0));
    c.c->receive(json{{"type", "handshake_ack"}, {"serverSiteId", server_site.to_text()}, {"connectionId", "y"},
                      {"protocolVersion", 1}}
                     .dump());
    REQUIRE(sent.size() == 2);
    CHECK(sent[1]["sinceHLC"] == crdtsync::wire::to_json(theirs)["hlc"]);
}

TEST_CASE_TEMPLATE("property: clients with random writes, deliveries and lost connections end identical to the server", Env,
                   CRDTSYNC_TEST_STORES) {
    const int seeds = std::max(1, CRDTSYNC_TEST_PROPERTY_SEEDS / 4);
    std::uint64_t severed = 0, snapshots = 0, resumed_or_interrupted = 0, pushes = 0;
    for (int seed = 1; seed <= seeds; ++seed) {
        CAPTURE(seed);
        std::mt19937_64 rng(static_cast<std::uint64_t>(seed) * 7919u);
        auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
        crdtsync::session_options o;
        o.max_facts_per_message = static_cast<std::size_t>(pick(1, 8));
        o.snapshot_chunk_entries = static_cast<std::size_t>(pick(1, 5));
        o.max_queued_bytes = static_cast<std::size_t>(pick(200, 5000));
        world<Env> w{o};
        REQUIRE(w.hub->apply(schema_sets()).rejected.empty());
        const int n = pick(3, 6);
        for (int i = 0; i < n; ++i) w.add_client(static_cast<std::uint8_t>(0x20 + i), pick(0, 2) != 0);
        for (int i = 0; i < 10; ++i) put_note(*w.hub, "s" + std::to_string(pick(0, 12)), "hub");
        std::vector<bool> online(static_cast<std::size_t>(n), false);
        for (int step = 0; step < 600; ++step) {
            const auto i = static_cast<std::size_t>(pick(0, n - 1));
            auto& c = w.clients[i];
            switch (pick(0, 9)) {
            case 0:
            case 1:
            case 2:
                if (c.n->find_table("notes")) {
                    const auto k = "k" + std::to_string(pick(0, 15));
                    if (pick(0, 4) == 0) c.n->write([&](auto& tx) {
                        if (tx.get("notes", {value{k}})) (void)tx.erase("notes", {value{k}});
                    });
                    else put_note(*c.n, k, std::to_string(pick(0, 99)));
                }
                break;
            case 3:
                if (!online[i] || c.end->is_closed()) {
                    w.connect(c);
                    online[i] = true;
                }
                break;
            case 4:
                if (online[i] && !c.end->is_closed() && pick(0, 3) == 0) {
                    if (c.c->state() == sync_state::bootstrapping) ++resumed_or_interrupted;
                    c.end->sever();
                    ++severed;
                }
                break;
            case 5:
                if (pick(0, 5) == 0) put_note(*w.hub, "s" + std::to_string(pick(0, 12)), std::to_string(step));
                break;
            default:
                for (int k = pick(1, 6); k > 0; --k) (void)w.loop.run_one(rng);
            }
            w.t.now += static_cast<std::uint64_t>(pick(0, 3));
        }
        // Heal: everyone connects, and the loop runs dry.
        for (std::size_t i = 0; i < w.clients.size(); ++i)
            if (!online[i] || w.clients[i].end->is_closed() || w.clients[i].c->state() != sync_state::live) {
                if (w.clients[i].end && !w.clients[i].end->is_closed()) w.clients[i].end->sever();
                w.run();
                w.connect(w.clients[i]);
            }
        w.run();
        for (auto& c : w.clients) {
            INFO("client site ", c.n->site_id().to_text());
            CHECK(c.c->state() == sync_state::live);
            CHECK(c.c->synced());
            CHECK(c.n->dump() == w.hub->dump());
            const auto report = crdtsync::check(*c.n);
            CHECK_MESSAGE(report.ok(), first_problem(report));
            snapshots += c.c->stats().snapshots;
        }
        const auto hub_report = crdtsync::check(*w.hub);
        CHECK_MESSAGE(hub_report.ok(), first_problem(hub_report));
        CHECK(hub_report.rows > 0);
        CHECK(hub_report.log_entries > 0);
        pushes += w.server.stats().change_sets_out;
    }
    // The runs exercised what they are for: lost connections (some in the
    // middle of a snapshot), snapshot bootstraps, traffic.
    INFO("severed ", severed, ", snapshots ", snapshots, ", interrupted bootstraps ", resumed_or_interrupted);
    CHECK(severed >= static_cast<std::uint64_t>(seeds));
    CHECK(snapshots >= 1);
    CHECK(pushes >= 10);
    if (seeds >= 5) CHECK(resumed_or_interrupted >= 1);
}

} // namespace session_tests
