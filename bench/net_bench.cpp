// crdtsync_net_bench: the sync sessions over loopback WebSocket, each party
// a separate process, every replica on LMDB with durable commits
// (docs/benchmarks.md, "Network").
//
//   end to end   client A commits the standard workload (100,002 changes)
//                offline, then connects; client B, connected through the
//                server, has all of it: changes/s from A's first send (its
//                connect) to B's last commit. Three processes. Beside it,
//                the in-process JSON decode + merge of the same export into
//                an LMDB replica, measured in the same run.
//   latency      10 client processes, each committing one small transaction
//                every 100 ms; the time from the commit at the writer to the
//                commit at each other client (CLOCK_MONOTONIC is one clock
//                for every process of the machine): p50, p99.
//   connections  one process holds N idle authenticated connections (1000);
//                the server's resident memory, and a new client's connect +
//                handshake time.
//
//   crdtsync_net_bench [--only e2e,latency,connections] [--runs N] [--changes N]
//                      [--seconds S] [--clients N] [--idle N] [--in-flight N] [--dir D]
#include <crdtsync/sync_server.hpp>

#include "net_harness.hpp"
#include "workload.hpp"

#include <atomic>
#include <random>
#include <set>

namespace {
namespace fs = std::filesystem;
namespace ws = crdtsync::websocket;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using replica = crdtsync_bench::lmdb_replica;
using namespace crdtsync_bench;

struct options {
    std::set<std::string> only;
    int runs = 3;
    std::size_t changes = 100'002;
    double seconds = 5;
    int clients = 10;
    int idle = 1000;
    std::size_t in_flight = 4; // sync_client_config::max_in_flight of the writer
    fs::path dir;
};

std::int64_t resident_kib(pid_t pid) {
    const auto line = crdtsync_bench::first_line_matching(("/proc/" + std::to_string(pid) + "/status").c_str(), "VmRSS:");
    return line == "?" ? -1 : std::atoll(line.c_str()); // "12345 kB"
}

volatile std::sig_atomic_t stop_requested = 0;

/// The server process: one database "bench" on LMDB, until SIGTERM. Tells
/// its port on `ready`, and the CPU time it used on `cpu` (if given).
void run_server(const fs::path& file, const channel& ready, const channel* cpu = nullptr) {
    more_files();
    ::signal(SIGTERM, [](int) { stop_requested = 1; });
    auto store = open_store(file);
    replica hub{*store};
    crdtsync::sync_server<replica> sessions{{.open_database = [&](std::string_view) { return &hub; }}};
    asio::io_context io;
    ws::server_options o;
    o.on_connection = [&](std::shared_ptr<ws::connection> c, const ws::upgrade_info&) { (void)sessions.attach(c); };
    ws::server server{io, o};
    ready.put(server.port());
    while (!stop_requested) {
        io.run_for(50ms);
        sessions.tick(std::chrono::steady_clock::now());
    }
    if (cpu) cpu->put(cpu_us());
}

// ---- end to end

struct e2e_result {
    double changes_per_s = 0, in_process_per_s = 0;
    double cpu_a = 0, cpu_server = 0, cpu_b = 0, seconds = 0; // CPU seconds of each process, and the wall time
};

e2e_result end_to_end(const options& o, int run) {
    const auto w = crdtsync_bench::workload::for_changes(o.changes);
    const fs::path dir = o.dir / ("e2e-" + std::to_string(run));
    fs::remove_all(dir);
    fs::create_directories(dir);
    e2e_result out;

    // In process, same run: A's export as JSON, decoded and merged into a
    // fresh durable LMDB replica, 1000 facts a batch as the sessions send it.
    {
        auto sa = open_store(dir / "inproc-a.mdb");
        replica a{*sa};
        a.create_table(crdtsync_bench::bench_table());
        crdtsync_bench::write_rows(a, 0, w.rows, crdtsync_bench::writer::a);
        std::vector<std::string> batches;
        for (std::uint64_t pos = 0;;) {
            auto d = a.changes_since(crdtsync::site_id{}, pos, 1000);
            batches.push_back(crdtsync::wire::encode_change_sets(d.change_sets));
            pos = d.next_position;
            if (!d.more) break;
        }
        auto sb = open_store(dir / "inproc-b.mdb");
        replica b{*sb};
        const auto t0 = crdtsync_bench::clock_type::now();
        for (const auto& text : batches) (void)b.apply(crdtsync::wire::decode_change_sets(text));
        out.in_process_per_s = static_cast<double>(w.changes()) / crdtsync_bench::seconds_since(t0);
        check(b.rows(crdtsync_bench::table_name).size() == w.rows, "in-process merge lost rows");
    }

    channel server_ready, b_live, b_done, a_ready, a_go, a_start, cpu_a, cpu_b, cpu_server;
    const pid_t server = spawn([&] { run_server(dir / "server.mdb", server_ready, &cpu_server); });
    const auto url = url_of(server_ready.get());
    const pid_t b = spawn([&] {
        auto store = open_store(dir / "b.mdb");
        replica rep{*store};
        crdtsync::sync_client<replica> client{rep, {.database_id = "bench"}};
        asio::io_context io;
        run_client(io, client, url, [&] { return client.synced(); });
        const auto cpu0 = cpu_us();
        b_live.put(1);
        // Every row of A: its three counted columns and the key.
        const auto want = static_cast<std::uint64_t>(w.rows) * 4 + 1; // + the create table
        std::int64_t last = 0;
        run_until(io, client, [&] {
            if (client.stats().facts_in >= want && last == 0) last = mono_ns();
            return last != 0;
        });
        cpu_b.put(cpu_us() - cpu0);
        check(rep.rows(crdtsync_bench::table_name).size() == w.rows, "B lacks rows");
        b_done.put(last);
    });
    const pid_t a = spawn([&] {
        auto store = open_store(dir / "a.mdb");
        replica rep{*store};
        rep.create_table(crdtsync_bench::bench_table());
        crdtsync_bench::write_rows(rep, 0, w.rows, crdtsync_bench::writer::a);
        crdtsync::sync_client_config cfg;
        cfg.database_id = "bench";
        cfg.max_in_flight = o.in_flight;
        crdtsync::sync_client<replica> client{rep, cfg};
        asio::io_context io;
        a_ready.put(1);
        (void)a_go.get();
        const auto cpu0 = cpu_us();
        a_start.put(mono_ns());
        run_client(io, client, url, [&] { return client.synced(); });
        cpu_a.put(cpu_us() - cpu0);
    });
    (void)b_live.get();
    (void)a_ready.get();
    a_go.put(1);
    const auto t0 = a_start.get();
    out.cpu_b = static_cast<double>(cpu_b.get()) * 1e-6;
    const auto t1 = b_done.get();
    out.cpu_a = static_cast<double>(cpu_a.get()) * 1e-6;
    reap(a, "client A");
    reap(b, "client B");
    ::kill(server, SIGTERM);
    out.cpu_server = static_cast<double>(cpu_server.get()) * 1e-6; // includes its start
    reap(server, "server");
    out.seconds = static_cast<double>(t1 - t0) * 1e-9;
    out.changes_per_s = static_cast<double>(w.changes()) / out.seconds;
    fs::remove_all(dir);
    return out;
}

// ---- latency

latency_summary latency(const options& o) {
    const fs::path dir = o.dir / "latency";
    fs::remove_all(dir);
    fs::create_directories(dir);
    channel server_ready, live, go;
    std::vector<channel> results(static_cast<std::size_t>(o.clients)); // one each: their words must not interleave
    const pid_t server = spawn([&] { run_server(dir / "server.mdb", server_ready); });
    const auto url = url_of(server_ready.get());
    std::vector<pid_t> kids;
    const auto per_client = static_cast<int>(o.seconds * 10);
    for (int i = 0; i < o.clients; ++i)
        kids.push_back(spawn([&, i] {
            auto store = open_store(dir / ("c" + std::to_string(i) + ".mdb"));
            replica rep{*store};
            rep.create_table(ping_table());
            std::vector<std::int64_t> lat;
            record_latencies(rep, lat);
            crdtsync::sync_client<replica> client{rep, {.database_id = "bench"}};
            asio::io_context io;
            run_client(io, client, url, [&] { return client.synced(); });
            live.put(1);
            (void)go.get();
            auto next = std::chrono::steady_clock::now() + std::chrono::milliseconds(i * 10);
            const auto want = static_cast<std::size_t>(per_client) * static_cast<std::size_t>(o.clients - 1);
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.seconds + 10);
            for (int sent = 0; sent < per_client || lat.size() < want;) {
                check(std::chrono::steady_clock::now() < deadline, "latency: changes missing at the deadline");
                if (sent < per_client && std::chrono::steady_clock::now() >= next) {
                    rep.write([&](auto& tx) { tx.insert("ping", {{"id", i * 1'000'000 + sent}, {"t", mono_ns()}}); });
                    ++sent;
                    next += 100ms;
                }
                io.run_one_for(1ms);
            }
            results[static_cast<std::size_t>(i)].put_all(lat);
        }));
    for (int i = 0; i < o.clients; ++i) (void)live.get();
    for (int i = 0; i < o.clients; ++i) go.put(1);
    std::vector<double> all;
    for (auto& r : results)
        for (auto x : r.get_all()) all.push_back(static_cast<double>(x) * 1e-6);
    for (auto k : kids) reap(k, "latency client");
    ::kill(server, SIGTERM);
    reap(server, "server");
    fs::remove_all(dir);
    return latency_summary::of(std::move(all));
}

// ---- idle connections

struct connections_result {
    double server_rss_mib = 0, server_rss_before_mib = 0, handshake_ms = 0;
    int held = 0;
};

connections_result connections(const options& o) {
    const fs::path dir = o.dir / "connections";
    fs::remove_all(dir);
    fs::create_directories(dir);
    channel server_ready, held, measured, release;
    const pid_t server = spawn([&] { run_server(dir / "server.mdb", server_ready); });
    const auto port = server_ready.get();
    connections_result r;
    r.server_rss_before_mib = static_cast<double>(resident_kib(server)) / 1024.0;
    const pid_t holder = spawn([&] {
        more_files();
        asio::io_context io;
        std::vector<std::shared_ptr<ws::connection>> conns;
        int acked = 0, failed = 0;
        crdtsync::site_id::bytes_type b{};
        for (int i = 0; i < o.idle; ++i) {
            ws::connect(io, url_of(port), {}, [&, i](boost::system::error_code ec, std::shared_ptr<ws::connection> c) {
                if (ec) {
                    ++failed;
                    return;
                }
                conns.push_back(c);
                c->on_events({.frame = [&](std::string_view f) { acked += f.find("handshake_ack") != std::string_view::npos; },
                              .written = [](std::size_t) {},
                              .closed = [&](std::uint16_t, std::string_view) { ++failed; }});
                auto bytes = b;
                bytes[0] = static_cast<std::uint8_t>(i);
                bytes[1] = static_cast<std::uint8_t>(i >> 8);
                crdtsync::msg::handshake h;
                h.database_id = "bench";
                h.site = crdtsync::site_id{bytes};
                h.by_position = true;
                c->send(crdtsync::wire::encode_message(h));
            });
        }
        while (acked + failed < o.idle) io.run_one_for(10ms);
        held.put(acked);
        (void)release.get();
    });
    r.held = static_cast<int>(held.get());
    r.server_rss_mib = static_cast<double>(resident_kib(server)) / 1024.0;
    // A new client's connect + handshake while the others are held.
    {
        asio::io_context io;
        auto store = open_store(dir / "new.mdb");
        replica rep{*store};
        crdtsync::sync_client<replica> client{rep, {.database_id = "bench"}};
        const auto t0 = crdtsync_bench::clock_type::now();
        run_client(io, client, url_of(port), [&] { return client.server().has_value(); });
        r.handshake_ms = crdtsync_bench::seconds_since(t0) * 1000;
    }
    release.put(1);
    reap(holder, "connection holder");
    ::kill(server, SIGTERM);
    reap(server, "server");
    fs::remove_all(dir);
    return r;
}

options parse(int argc, char** argv) {
    options o;
    o.dir = fs::temp_directory_path() / ("crdtsync-net-bench-" + std::to_string(::getpid()));
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--only") {
            const auto s = next();
            for (std::size_t p = 0; p <= s.size();) {
                const auto q = std::min(s.find(',', p), s.size());
                o.only.insert(s.substr(p, q - p));
                p = q + 1;
            }
        } else if (a == "--runs") o.runs = std::stoi(next());
        else if (a == "--changes") o.changes = std::stoul(next());
        else if (a == "--seconds") o.seconds = std::stod(next());
        else if (a == "--clients") o.clients = std::stoi(next());
        else if (a == "--idle") o.idle = std::stoi(next());
        else if (a == "--dir") o.dir = next();
        else if (a == "--in-flight") o.in_flight = std::stoul(next());
        else if (a == "--help") {
            std::cout << "crdtsync_net_bench [--only e2e,latency,connections] [--runs N] [--changes N] [--seconds S]\n"
                         "                   [--clients N] [--idle N] [--in-flight N] [--dir D]\n";
            std::exit(0);
        } else throw std::runtime_error("unknown option " + a + " (see --help)");
    }
    return o;
}
} // namespace

int main(int argc, char** argv) {
    try {
        const auto o = parse(argc, argv);
        auto wanted = [&](const char* s) { return o.only.empty() || o.only.count(s) != 0; };
        fs::create_directories(o.dir);
        std::cout << "crdtsync network benchmark, every party a process, LMDB durable commits, data in " << o.dir
                  << " (" << crdtsync_bench::filesystem_type(o.dir.string()) << ")\n";
        if (wanted("e2e")) {
            std::vector<double> e2e, inproc;
            for (int r = 0; r < o.runs; ++r) {
                const auto x = end_to_end(o, r);
                e2e.push_back(x.changes_per_s);
                inproc.push_back(x.in_process_per_s);
                std::cout << "  e2e run " << r + 1 << ": " << crdtsync_bench::with_commas(x.changes_per_s)
                          << " changes/s A->server->B; in-process JSON decode + merge "
                          << crdtsync_bench::with_commas(x.in_process_per_s) << " changes/s; " << x.seconds
                          << " s wall, CPU s: A " << x.cpu_a << ", server " << x.cpu_server << ", B " << x.cpu_b << "\n";
            }
            std::cout << "end to end (" << o.changes << " changes, median of " << o.runs
                      << "): " << crdtsync_bench::with_commas(median(e2e)) << " changes/s (target 250,000); in-process "
                      << crdtsync_bench::with_commas(median(inproc)) << " changes/s; ratio "
                      << median(e2e) / median(inproc) << "\n";
        }
        if (wanted("latency")) {
            const auto l = latency(o);
            std::cout << "propagation latency (" << o.clients << " clients, one commit each per 100 ms, " << l.samples
                      << " samples): p50 " << l.p50_ms << " ms (target < 2), p99 " << l.p99_ms
                      << " ms (target < 10), max " << l.max_ms << " ms\n";
        }
        if (wanted("connections")) {
            const auto c = connections(o);
            std::cout << "idle connections: " << c.held << " held; server resident " << c.server_rss_mib
                      << " MiB (target < 150; " << c.server_rss_before_mib << " MiB before); a new client's handshake "
                      << c.handshake_ms << " ms (target < 50)\n";
        }
        fs::remove_all(o.dir);
    } catch (const std::exception& e) {
        std::cerr << "crdtsync_net_bench: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
