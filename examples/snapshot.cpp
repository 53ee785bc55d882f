// Bootstrapping a new replica from a snapshot, over a transfer that breaks
// half way and resumes, while both sides keep writing; then delta sync.
// docs/snapshots.md explains each step.
#include <crdtsync/crdtsync.hpp>
#include <crdtsync/backends/memory.hpp>

#include <iostream>
#include <string>

int main() {
    crdtsync::memory_store server_store, fresh_store;
    crdtsync::replica server{server_store};
    crdtsync::replica fresh{fresh_store};

    server.create_table(crdtsync::table_def{"notes"}
                            .column("id", crdtsync::column_type::integer, false)
                            .column("body", crdtsync::column_type::text)
                            .primary_key({"id"}));
    server.write([](auto& tx) {
        for (int i = 0; i < 2500; ++i) tx.insert("notes", {{"id", i}, {"body", "note " + std::to_string(i)}});
    });

    // The server streams its state, chunk by chunk (1000 entries each); each
    // chunk travels as Quereus JSON text.
    auto send = [](const crdtsync::snapshot_chunk& c) { return crdtsync::wire::encode_snapshot_chunk(c); };
    auto receive = [](const std::string& text) { return crdtsync::wire::decode_snapshot_chunk(text); };
    {
        crdtsync::snapshot_writer out{server, fresh.site_id()};
        crdtsync::snapshot_loader in{fresh};
        for (int i = 0; i < 4; ++i) in.push(receive(send(*out.next()))); // ... and the connection drops
    }
    server.write([](auto& tx) { tx.insert("notes", {{"id", 9000}, {"body", "written meanwhile"}}); });

    // Later: the new replica's store remembers how far the load got. Its
    // checkpoint asks the server to resume right after the last entry loaded.
    crdtsync::snapshot_loader in{fresh};
    const auto checkpoint = *in.checkpoint();
    std::cout << "resuming after " << checkpoint.entries_processed << " entries\n";
    crdtsync::snapshot_writer rest{server, checkpoint};
    while (auto chunk = rest.next()) in.push(receive(send(*chunk)));
    std::cout << "snapshot loaded: " << (in.done() ? "yes" : "no") << ", " << fresh.rows("notes").size() << " notes\n";

    // Delta sync continues from the snapshot's position: only the write made
    // after the snapshot began comes.
    const auto position = fresh.peer(server.site_id()).received_up_to;
    const auto delta = server.changes_since(fresh.site_id(), position);
    (void)fresh.apply(delta.change_sets);
    fresh.set_peer_received(server.site_id(), delta.next_position);
    std::cout << "then " << delta.change_sets.size() << " change set(s) by delta sync\n";

    const bool same = fresh.dump() == server.dump();
    std::cout << (same ? "identical" : "DIFFERENT") << "\n";
    return same ? 0 : 1;
}
