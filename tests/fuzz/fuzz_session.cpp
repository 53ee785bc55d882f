// libFuzzer target: the sync sessions fed hostile frames. The input is split
// at newlines into frames; the first byte picks the side. Server side: the
// frames reach a sync_server (one database on the memory store) on one
// connection. Client side: they reach a sync_client as if a server sent them.
// Neither may throw or crash whatever arrives (every problem becomes an
// `error` message or a closed connection), and afterwards the server still
// serves a fresh, well-behaved connection.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <crdtsync/backends/memory.hpp>
#include <crdtsync/replica.hpp>
#include <crdtsync/sync_client.hpp>
#include <crdtsync/sync_server.hpp>

namespace {
using replica_t = crdtsync::replica<crdtsync::memory_store>;

std::vector<std::string_view> frames_of(std::string_view in) {
    std::vector<std::string_view> out;
    while (!in.empty() && out.size() < 64) {
        const auto nl = in.find('\n');
        out.push_back(in.substr(0, nl));
        if (nl == std::string_view::npos) break;
        in.remove_prefix(nl + 1);
    }
    return out;
}

crdtsync::replica_options opts(std::uint8_t b) {
    crdtsync::replica_options o;
    crdtsync::site_id::bytes_type bytes{};
    bytes.fill(b);
    o.site = crdtsync::site_id{bytes};
    return o;
}

void with_schema(replica_t& r) {
    crdtsync::table_def t{"notes"};
    t.column("k", crdtsync::column_type::text, false).column("body", crdtsync::column_type::text).primary_key({"k"});
    r.write([&](auto& tx) {
        tx.create_table(t);
        tx.insert("notes", crdtsync::row{{"k", crdtsync::value{"a"}}, {"body", crdtsync::value{"b"}}});
    });
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    crdtsync::memory_store store;
    replica_t rep{store, opts(0x10)};
    with_schema(rep);
    crdtsync::session_options so;
    so.max_queued_bytes = 1 << 16;
    so.decode.max_bytes = 1 << 16;
    try {
        if (data[0] & 1) {
            crdtsync::memory_store cs;
            replica_t client_rep{cs, opts(0x20)};
            crdtsync::sync_client_config cfg{.database_id = "app"};
            cfg.options = so;
            crdtsync::sync_client<replica_t> client{client_rep, cfg};
            client.connected({.send = [](std::string) {}, .close = [](std::uint16_t, std::string_view) {}});
            for (auto f : frames_of(in)) client.receive(f);
            client.tick(std::chrono::steady_clock::time_point{});
        } else {
            crdtsync::sync_server<replica_t> server{{.open_database = [&](std::string_view) { return &rep; }}, so};
            std::size_t sent = 0;
            const auto id = server.accept({.send = [&](std::string f) { sent += f.size(); },
                                           .close = [](std::uint16_t, std::string_view) {}});
            for (auto f : frames_of(in)) server.receive(id, f);
            server.written(id, sent);
            // A well-behaved client is still served.
            bool ponged = false;
            const auto ok = server.accept({.send = [&](std::string f) { ponged |= f == R"({"type":"pong"})"; },
                                           .close = [](std::uint16_t, std::string_view) { std::abort(); }});
            server.receive(ok, R"({"type":"ping"})");
            if (!ponged) std::abort();
        }
    } catch (...) {
        std::abort(); // nothing may escape a session
    }
    return 0;
}
