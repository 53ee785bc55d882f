// Three replicas kept in sync through a server, over the in-process pipe
// transport: offline writes, a first sync (a snapshot for the empty one),
// live pushes, a lost connection and a reconnect. docs/protocol.md explains
// the sessions; a real deployment swaps the pipe for the WebSocket
// transport (examples/sync_websocket.cpp) and keeps everything else.
#include <crdtsync/crdtsync.hpp>
#include <crdtsync/backends/memory.hpp>
#include <crdtsync/pipe.hpp>
#include <crdtsync/sync_client.hpp>
#include <crdtsync/sync_server.hpp>

#include <array>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

using replica = crdtsync::replica<crdtsync::memory_store>;

int main() {
    // The server holds database "notes-app".
    crdtsync::memory_store server_store;
    replica hub{server_store};
    crdtsync::sync_server<replica> server{{
        .open_database = [&](std::string_view id) { return id == "notes-app" ? &hub : nullptr; },
        .authenticate = [](const crdtsync::msg::handshake& h) -> std::optional<std::string> {
            if (h.token == "let-me-in") return std::nullopt;
            return "wrong token";
        },
    }};

    // Three devices; the first two write while offline.
    std::array<crdtsync::memory_store, 3> stores;
    std::array<std::unique_ptr<replica>, 3> devices;
    std::array<std::unique_ptr<crdtsync::sync_client<replica>>, 3> clients;
    for (std::size_t i = 0; i < 3; ++i) {
        devices[i] = std::make_unique<replica>(stores[i]);
        clients[i] = std::make_unique<crdtsync::sync_client<replica>>(
            *devices[i], crdtsync::sync_client_config{.database_id = "notes-app", .token = "let-me-in"});
    }
    const auto notes = crdtsync::table_def{"notes"}
                           .column("id", crdtsync::column_type::integer, false)
                           .column("body", crdtsync::column_type::text)
                           .primary_key({"id"});
    devices[0]->create_table(notes);
    devices[0]->write([](auto& tx) { tx.insert("notes", {{"id", 1}, {"body", "from the laptop"}}); });
    devices[1]->create_table(notes);
    devices[1]->write([](auto& tx) { tx.insert("notes", {{"id", 2}, {"body", "from the phone"}}); });

    // Connect everyone: one pipe per device, one loop for all of them.
    crdtsync::pipe_loop loop;
    std::array<std::shared_ptr<crdtsync::pipe>, 3> links;
    auto connect = [&](std::size_t i) {
        auto [device_end, server_end] = loop.connect();
        (void)server.attach(server_end);
        clients[i]->attach(device_end);
        links[i] = device_end;
    };
    for (std::size_t i = 0; i < 3; ++i) connect(i);
    loop.run();
    std::cout << "after the first sync, the tablet (new and empty) loaded " << clients[2]->stats().snapshots
              << " snapshot and holds " << devices[2]->rows("notes").size() << " notes\n";

    // Live: a write on one device reaches the others as it commits.
    devices[2]->write([](auto& tx) { tx.insert("notes", {{"id", 3}, {"body", "from the tablet"}}); });
    loop.run();
    std::cout << "the laptop sees: " << devices[0]->get("notes", {3})->at("body").as_text() << "\n";

    // The phone loses its connection with a write in flight, then reconnects:
    // the write was not confirmed, so it is sent again.
    devices[1]->write([](auto& tx) { (void)tx.update("notes", {2}, {{"body", "edited offline"}}); });
    links[1]->sever();
    loop.run();
    std::cout << "phone after losing its link: " << crdtsync::to_text(clients[1]->state()) << "\n";
    connect(1);
    loop.run();

    bool same = true;
    for (auto& d : devices) same = same && d->dump() == hub.dump();
    std::cout << "the laptop sees the phone's edit: " << devices[0]->get("notes", {2})->at("body").as_text() << "\n"
              << "all three devices equal the server: " << (same ? "yes" : "no") << "\n";
    return same && devices[0]->get("notes", {2})->at("body").as_text() == "edited offline" ? EXIT_SUCCESS : EXIT_FAILURE;
}
