// A sync server and two clients over real WebSocket connections on loopback,
// in one process on one io_context (the port is chosen by the OS). Each
// replica is in memory here; a deployment gives each its own LMDB store and
// runs the server and the clients in their own processes (the `crdtsync`
// tool does: docs/cli.md). docs/protocol.md and docs/websocket.md explain
// the pieces.
#include <crdtsync/crdtsync.hpp>
#include <crdtsync/backends/memory.hpp>
#include <crdtsync/sync_client.hpp>
#include <crdtsync/sync_server.hpp>
#include <crdtsync/transports/websocket.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

using replica = crdtsync::replica<crdtsync::memory_store>;
namespace ws = crdtsync::websocket;
using namespace std::chrono_literals;

int main() {
    boost::asio::io_context io;

    // The server: database "todo", its sessions, and a WebSocket listener.
    crdtsync::memory_store server_store;
    replica hub{server_store};
    crdtsync::sync_server<replica> sessions{{.open_database = [&](std::string_view id) { return id == "todo" ? &hub : nullptr; },
                                             .authenticate = {}}};
    ws::server_options listen;
    listen.on_connection = [&](std::shared_ptr<ws::connection> c, const ws::upgrade_info&) { (void)sessions.attach(c); };
    ws::server server{io, listen};
    const std::string url = "ws://127.0.0.1:" + std::to_string(server.port()) + "/sync/ws";

    // Two clients, each with its replica.
    crdtsync::memory_store alice_store, bob_store;
    replica alice{alice_store}, bob{bob_store};
    crdtsync::sync_client_config config;
    config.database_id = "todo";
    crdtsync::sync_client<replica> alice_sync{alice, config}, bob_sync{bob, config};
    for (auto* client : {&alice_sync, &bob_sync})
        ws::connect(io, url, {}, [client](boost::system::error_code ec, std::shared_ptr<ws::connection> c) {
            if (ec) throw std::runtime_error("connect: " + ec.message());
            client->attach(c);
        });

    // Runs the io_context until `done` (or gives up after 10 s).
    auto run_until = [&](auto done) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!done() && std::chrono::steady_clock::now() < deadline) io.run_one_for(20ms);
        return done();
    };
    if (!run_until([&] { return alice_sync.synced() && bob_sync.synced(); })) return EXIT_FAILURE;
    std::cout << "connected to " << url << "\n";

    // Alice creates a table and writes; Bob receives it as it commits.
    alice.create_table(crdtsync::table_def{"tasks"}
                           .column("id", crdtsync::column_type::integer, false)
                           .column("title", crdtsync::column_type::text)
                           .column("done", crdtsync::column_type::boolean)
                           .primary_key({"id"}));
    alice.write([](auto& tx) { tx.insert("tasks", {{"id", 1}, {"title", "write the report"}, {"done", false}}); });
    if (!run_until([&] { return bob.find_table("tasks") && bob.get("tasks", {1}); })) return EXIT_FAILURE;
    std::cout << "bob sees: " << bob.get("tasks", {1})->at("title").as_text() << "\n";

    // Concurrent edits of different columns of one row both survive.
    alice.write([](auto& tx) { (void)tx.update("tasks", {1}, {{"title", "write the final report"}}); });
    bob.write([](auto& tx) { (void)tx.update("tasks", {1}, {{"done", true}}); });
    if (!run_until([&] { return alice.dump() == bob.dump() && bob.dump() == hub.dump() && alice_sync.synced() && bob_sync.synced(); }))
        return EXIT_FAILURE;
    const auto row = *alice.get("tasks", {1});
    std::cout << "both see: \"" << row.at("title").as_text() << "\", done = " << (row.at("done").as_bool() ? "yes" : "no") << "\n";

    server.stop(); // closes every connection with 1001 (going away)
    run_until([&] { return alice_sync.state() == crdtsync::sync_state::disconnected; });
    std::cout << "after the server stopped, alice is " << crdtsync::to_text(alice_sync.state()) << "\n";
    return row.at("done").as_bool() && row.at("title").as_text() == "write the final report" ? EXIT_SUCCESS : EXIT_FAILURE;
}
