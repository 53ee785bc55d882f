// crdtsync_cluster_bench: `crdtsync serve --cluster` nodes sharing each
// database through NATS JetStream (docs/cluster.md; docs/benchmarks.md,
// "Cluster"). Every party is a process: one nats-server (JetStream, file
// store, loopback, a port the OS picks), three cluster nodes, one node
// without --cluster (the single-node figures of the same run), and the
// clients (sync_client over WebSocket, LMDB with durable commits, as in
// crdtsync_net_bench).
//
//   throughput   one writer client on each cluster node, each committing
//                transactions of --batch rows as fast as its node accepts
//                them (at most 8 unacknowledged) for --agg-seconds: the
//                changes/s the three nodes acknowledged (a node's
//                apply_result waits for the stream's acknowledgement), and
//                the CPU every process used meanwhile (the machine is the
//                limit). Then until every node merged the whole stream.
//                Before it, three writers on the single node. Changes are
//                facts: a row of agg (id, a, b) is 3.
//   consume      a fourth cluster node started after the throughput phase
//                (snapshots are off, so it reads the whole stream): the time
//                from its start to crdtsync_cluster_caught_up, changes/s.
//   latency      a writer client on node 1 commits one row per transaction
//                at R writes/s for --seconds; a reader client on node 3
//                records each row's arrival (CLOCK_MONOTONIC is one clock
//                for every process of the machine): p50, p99; the same with
//                both clients on the single node. R steps through --rates;
//                a rate holds when every write arrived, the writer kept
//                within 10% of R, and p99 < --p99-bound.
//
//   crdtsync_cluster_bench [--crdtsync PATH] [--nats-server PATH] [--only throughput,consume,latency]
//                          [--runs N] [--rates 100,200,...] [--seconds S] [--agg-seconds S]
//                          [--batch N] [--p99-bound MS] [--dir D] [--keep]
//
// --crdtsync defaults to $CRDTSYNC, --nats-server to $NATS_SERVER, else
// `nats-server` on PATH. Exit 77 (a skipped test) when either is missing or
// the tool was built without NATS; 1 when a phase failed or stalled (a
// writer whose apply_results stopped coming for 20 s), after reporting it
// and going on with the other phases. Whatever it started is killed when it
// ends, however it ends (and by the kernel if it is killed: PDEATHSIG).
#include "net_harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

namespace {
namespace fs = std::filesystem;
namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace crdtsync_bench;
using replica = lmdb_replica;

struct options {
    std::string crdtsync, nats_server;
    std::set<std::string> only;
    int runs = 1;
    std::vector<int> rates{100, 200, 400, 800, 1600};
    double seconds = 5;
    double agg_seconds = 10;
    int batch = 100;
    double p99_bound_ms = 50;
    fs::path dir;
    bool keep = false;
};

/// A phase failed or stalled: reported, the run goes on, the exit status is 1.
bool any_failed = false;

struct skipped : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---- every process this one started, killed when it ends

std::array<std::atomic<pid_t>, 256> started{};

void track(pid_t pid) {
    for (auto& s : started) {
        pid_t zero = 0;
        if (s.compare_exchange_strong(zero, pid)) return;
    }
    ::kill(pid, SIGKILL);
    throw std::runtime_error("too many processes");
}
void untrack(pid_t pid) {
    for (auto& s : started) {
        pid_t p = pid;
        if (s.compare_exchange_strong(p, 0)) return;
    }
}
/// SIGKILL to everything still running (async-signal-safe).
void kill_all() {
    for (auto& s : started)
        if (const pid_t p = s.exchange(0); p > 0) {
            ::kill(p, SIGKILL);
            ::waitpid(p, nullptr, 0);
        }
}
extern "C" void on_signal(int sig) {
    kill_all();
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

/// In a child: dies with its parent, default signal handlers, nothing of
/// the parent's to clean up.
void child_setup() {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
    for (auto& s : started) s = 0;
}

/// A client process (a forked function).
template <class Fn>
pid_t start_child(Fn&& fn) {
    const auto pid = spawn([&] {
        child_setup();
        fn();
    });
    track(pid);
    return pid;
}
void reap_child(pid_t pid, const char* who) {
    untrack(pid);
    reap(pid, who);
}

/// A program, its stdout and stderr to files.
pid_t start_program(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
    std::cout.flush();
    const pid_t pid = ::fork();
    check(pid >= 0, "fork");
    if (pid == 0) {
        child_setup();
        const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) std::_Exit(126);
        ::dup2(o, 1);
        ::dup2(e, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        std::_Exit(127);
    }
    track(pid);
    return pid;
}

/// SIGTERM, then SIGKILL after five seconds.
void stop_program(pid_t pid) {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 500; ++i) {
        if (::waitpid(pid, nullptr, WNOHANG) == pid) return untrack(pid);
        std::this_thread::sleep_for(10ms);
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    untrack(pid);
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}
std::string tail(const fs::path& p, std::size_t n = 1500) {
    const auto s = read_file(p);
    return s.size() > n ? "..." + s.substr(s.size() - n) : s;
}

/// Waits until `file` holds `marker`, and returns what follows it up to the
/// end of that line. Fails when `pid` exits first.
std::string wait_for_line(pid_t pid, const fs::path& file, const std::string& marker, const fs::path& log, const std::string& who) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
        const auto s = read_file(file);
        if (const auto at = s.find(marker); at != std::string::npos) {
            const auto from = at + marker.size();
            const auto eol = s.find('\n', from);
            if (eol != std::string::npos) return s.substr(from, eol - from);
        }
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            untrack(pid);
            const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            const auto why = tail(log);
            if (rc == 127) throw skipped(who + ": cannot run the program");
            if (why.find("built without NATS") != std::string::npos) throw skipped(who + ": " + why);
            throw std::runtime_error(who + " exited (" + std::to_string(rc) + "): " + why);
        }
        check(std::chrono::steady_clock::now() < deadline, who + ": not ready in 30 s: " + tail(log));
        std::this_thread::sleep_for(10ms);
    }
}

// ---- HTTP: /metrics of a node

std::string http_get(int port, const std::string& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    check(fd >= 0, "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string in;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const auto req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
            std::size_t want = std::string::npos;
            char buf[65536];
            for (;;) {
                pollfd p{fd, POLLIN, 0};
                if (::poll(&p, 1, 5000) != 1) break;
                const auto n = ::read(fd, buf, sizeof buf);
                if (n <= 0) break;
                in.append(buf, static_cast<std::size_t>(n));
                const auto head = in.find("\r\n\r\n");
                if (head != std::string::npos && want == std::string::npos) {
                    auto cl = in.find("Content-Length: ");
                    if (cl == std::string::npos) cl = in.find("content-length: ");
                    if (cl != std::string::npos && cl < head) want = head + 4 + std::stoul(in.substr(cl + 16));
                }
                if (want != std::string::npos && in.size() >= want) break;
            }
        }
    }
    ::close(fd);
    const auto head = in.find("\r\n\r\n");
    return head == std::string::npos ? std::string() : in.substr(head + 4);
}

/// `name{database="db"}`'s value in a /metrics text; nullopt when absent.
std::optional<double> metric(const std::string& text, const std::string& name, const std::string& db) {
    const auto key = "\n" + name + "{database=\"" + db + "\"} ";
    const auto at = text.find(key);
    if (at == std::string::npos) return std::nullopt;
    return std::stod(text.substr(at + key.size()));
}

/// A node's /status on one line (for the report of a stall).
std::string status_line(const std::string& name, int port) {
    std::string out;
    bool space = false;
    for (char c : http_get(port, "/status")) {
        const bool ws = c == ' ' || c == '\n';
        if (ws && space) continue;
        space = ws;
        out += c == '\n' ? ' ' : c;
    }
    return "    " + name + " /status: " + out + "\n";
}

/// CPU seconds (user + system) `pid` used so far.
double cpu_of(pid_t pid) {
    const auto s = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto close = s.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream in(s.substr(close + 2));
    std::string f;
    std::vector<std::string> fields;
    while (in >> f) fields.push_back(f);
    if (fields.size() < 13) return 0;
    // fields[0] is the state (field 3): utime, stime are fields 14 and 15.
    return static_cast<double>(std::stoll(fields[11]) + std::stoll(fields[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double load_average() {
    double l[3]{};
    return ::getloadavg(l, 3) > 0 ? l[0] : -1;
}

// ---- clients

crdtsync::sync_client_config client_config(const std::string& db) {
    crdtsync::sync_client_config c;
    c.database_id = db;
    return c;
}

std::string describe(const crdtsync::sync_client<replica>& client) {
    const auto& s = client.stats();
    return "state " + std::string(crdtsync::to_text(client.state())) + ", synced " + std::to_string(client.synced()) + ", facts out " +
           std::to_string(s.facts_out) + ", in " + std::to_string(s.facts_in) + ", rejected there " + std::to_string(s.rejected_there) +
           ", errors " + std::to_string(s.errors) + ", last problem '" + client.last_problem() + "', close code " +
           std::to_string(client.last_close_code());
}

/// Runs `io` (ticking the client: pings, timeouts) until `done`; false
/// after `seconds` (saying where the client stands on stderr).
template <class Done>
bool run_ticking(asio::io_context& io, crdtsync::sync_client<replica>& client, Done&& done, double seconds, const std::string& who) {
    const auto deadline = mono_ns() + static_cast<std::int64_t>(seconds * 1e9);
    auto next_tick = mono_ns();
    while (!done()) {
        check(client.state() != crdtsync::sync_state::failed, who + ": session refused: " + client.last_problem());
        if (mono_ns() >= next_tick) {
            client.tick(std::chrono::steady_clock::now());
            next_tick = mono_ns() + 100'000'000;
        }
        if (mono_ns() >= deadline) {
            std::fprintf(stderr, "%s: not done after %g s: %s\n", who.c_str(), seconds, describe(client).c_str());
            return false;
        }
        io.run_one_for(5ms);
    }
    return true;
}

/// Kills (SIGKILL) the processes of a phase that are still running when it
/// ends, however it ends.
struct child_group {
    std::vector<pid_t> pids;
    child_group() = default;
    child_group(const child_group&) = delete;
    child_group& operator=(const child_group&) = delete;
    ~child_group() {
        for (auto p : pids)
            for (auto& s : started) {
                pid_t q = p;
                if (s.compare_exchange_strong(q, 0)) {
                    ::kill(p, SIGKILL);
                    ::waitpid(p, nullptr, 0);
                }
            }
    }
    void reap_all(const char* who) {
        for (auto p : pids) reap_child(p, who);
        pids.clear();
    }
};

// ---- NATS and the nodes

struct program {
    pid_t pid = -1;
    int port = 0;
    std::string name;
    fs::path log;
};

program start_nats(const options& o, const fs::path& dir) {
    fs::create_directories(dir / "jetstream");
    program p;
    p.name = "nats-server";
    p.log = dir / "nats.log";
    p.pid = start_program({o.nats_server, "-js", "-p", "-1", "-sd", (dir / "jetstream").string(), "-a", "127.0.0.1"}, dir / "nats.out", p.log);
    const auto where = wait_for_line(p.pid, p.log, "Listening for client connections on 127.0.0.1:", p.log, p.name);
    p.port = std::stoi(where);
    return p;
}

/// `crdtsync serve` on a port the OS picks; with --cluster when `nats` is
/// given. Snapshots are off (a new node reads the whole stream).
program start_node(const options& o, const fs::path& dir, const std::string& name, const program* nats) {
    program p;
    p.name = name;
    p.log = dir / (name + ".log");
    std::vector<std::string> argv{o.crdtsync, "serve", "--data", (dir / name).string(), "--listen", "127.0.0.1:0"};
    if (nats) {
        argv.insert(argv.end(), {"--cluster", "nats://127.0.0.1:" + std::to_string(nats->port), "--cluster-snapshot-interval", "1000000000"});
    }
    p.pid = start_program(argv, dir / (name + ".out"), p.log);
    const auto url = wait_for_line(p.pid, dir / (name + ".out"), "listening on ws://127.0.0.1:", p.log, name);
    p.port = std::stoi(url);
    return p;
}

/// Waits until every node in `nodes` says crdtsync_cluster_caught_up for
/// `db` (and, if given, merged the stream up to `stream_seq` or more).
void wait_caught_up(const std::vector<const program*>& nodes, const std::string& db, double seconds,
                    std::optional<double> stream_seq = std::nullopt) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (const auto* n : nodes)
        for (;;) {
            const auto m = http_get(n->port, "/metrics");
            const auto up = metric(m, "crdtsync_cluster_caught_up", db);
            const auto pos = metric(m, "crdtsync_cluster_stream_position", db);
            if (up == 1.0 && (!stream_seq || (pos && *pos >= *stream_seq))) break;
            check(std::chrono::steady_clock::now() < deadline,
                  n->name + ": database " + db + " not caught up after " + std::to_string(seconds) + " s (caught_up " +
                      (up ? std::to_string(*up) : "absent") + ", stream position " + (pos ? std::to_string(*pos) : "absent") +
                      ", lag " + std::to_string(metric(m, "crdtsync_cluster_consumer_lag", db).value_or(-1)) + "): " + tail(n->log, 600));
            std::this_thread::sleep_for(20ms);
        }
}

// ---- latency

struct latency_step {
    latency_summary lat;
    int rate = 0;
    double achieved = 0; // writes/s the writer committed
    std::size_t missing = 0;
    bool stalled = false; // the writer's last apply_results never came
    bool holds = false;
};

/// A writer client on `from` at `rate` writes/s, a reader client on `to`.
latency_step propagation(const options& o, const fs::path& dir, const program& from, const program& to, bool cluster,
                         const std::string& db, int rate) {
    fs::create_directories(dir);
    const auto n = std::max<std::int64_t>(2, static_cast<std::int64_t>(rate * o.seconds));
    channel live, go_writer, go_reader, times, samples;
    child_group kids;
    kids.pids.push_back(start_child([&] {
        auto store = open_store(dir / (db + "-reader.mdb"));
        replica rep{*store};
        rep.create_table(ping_table());
        std::vector<std::int64_t> lat;
        crdtsync::sync_client<replica> client{rep, client_config(db)};
        asio::io_context io;
        connect_client(io, client, url_of(to.port));
        check(run_ticking(io, client, [&] { return client.synced(); }, 60, "latency reader (connect)"), "latency reader: no sync");
        record_latencies(rep, lat);
        live.put(1);
        (void)go_reader.get();
        const auto deadline = mono_ns() + static_cast<std::int64_t>((o.seconds + 10) * 1e9);
        while (lat.size() < static_cast<std::size_t>(n) && mono_ns() < deadline) {
            client.tick(std::chrono::steady_clock::now());
            io.run_one_for(5ms);
        }
        samples.put_all(lat);
    }));
    kids.pids.push_back(start_child([&] {
        auto store = open_store(dir / (db + "-writer.mdb"));
        replica rep{*store};
        rep.create_table(ping_table());
        crdtsync::sync_client<replica> client{rep, client_config(db)};
        asio::io_context io;
        connect_client(io, client, url_of(from.port));
        check(run_ticking(io, client, [&] { return client.synced(); }, 60, "latency writer (connect)"), "latency writer: no sync");
        live.put(1);
        (void)go_writer.get();
        const double period = 1e9 / rate;
        const auto t0 = mono_ns();
        std::int64_t first = 0, last = 0;
        for (std::int64_t sent = 0; sent < n;) {
            // What is due, at most 16 at once between turns of the loop.
            for (int k = 0; k < 16 && sent < n && mono_ns() >= t0 + static_cast<std::int64_t>(sent * period); ++k, ++sent) {
                rep.write([&](auto& tx) { tx.insert("ping", {{"id", sent}, {"t", mono_ns()}}); });
                last = mono_ns();
                if (sent == 0) first = last;
            }
            io.poll();
            client.tick(std::chrono::steady_clock::now());
            const auto wait = t0 + static_cast<std::int64_t>(sent * period) - mono_ns();
            if (sent < n && wait > 0) io.run_one_for(std::chrono::nanoseconds(std::min<std::int64_t>(wait, 1'000'000)));
        }
        times.put(first);
        times.put(last);
        times.put(run_ticking(io, client, [&] { return client.synced(); }, 20, "latency writer (last acknowledgement)") ? 0 : 1);
    }));
    (void)live.get();
    (void)live.get();
    if (cluster) wait_caught_up({&from, &to}, db, 30);
    go_reader.put(1);
    go_writer.put(1);
    const auto first = times.get(), last = times.get();
    const bool stalled = times.get() != 0;
    std::vector<double> ms;
    for (auto x : samples.get_all()) ms.push_back(static_cast<double>(x) * 1e-6);
    kids.reap_all("latency client");
    latency_step r;
    r.stalled = stalled;
    if (stalled) std::cout << status_line(from.name, from.port) << status_line(to.name, to.port);
    r.rate = rate;
    r.missing = static_cast<std::size_t>(n) - std::min(ms.size(), static_cast<std::size_t>(n));
    r.lat = latency_summary::of(std::move(ms));
    r.achieved = last > first ? static_cast<double>(n - 1) / (static_cast<double>(last - first) * 1e-9) : 0;
    r.holds = !r.stalled && r.missing == 0 && r.achieved >= 0.9 * rate && r.lat.p99_ms < o.p99_bound_ms;
    return r;
}

// ---- throughput

struct throughput_result {
    double facts_per_s = 0, seconds = 0, drain_s = 0;
    std::uint64_t facts = 0;      // the writers' own changes, acknowledged
    std::uint64_t facts_sent = 0; // what the writers sent: their own, and the changes pushed to them sent back (echoes)
    double cpu_nodes = 0, cpu_nats = 0, cpu_clients = 0; // CPU seconds over `seconds`
};

/// One writer client per entry of `nodes`, `--batch` rows a transaction.
throughput_result throughput(const options& o, const fs::path& dir, const std::vector<const program*>& nodes, const program* nats,
                             const std::string& db, bool cluster) {
    fs::create_directories(dir);
    const auto k = nodes.size();
    channel live, go;
    std::vector<channel> results(k);
    child_group kids;
    for (std::size_t i = 0; i < k; ++i)
        kids.pids.push_back(start_child([&, i] {
            auto store = open_store(dir / (db + "-w" + std::to_string(i) + ".mdb"));
            replica rep{*store};
            rep.create_table(crdtsync::table_def{"agg"}
                                 .column("id", crdtsync::column_type::integer, false)
                                 .column("a", crdtsync::column_type::integer)
                                 .column("b", crdtsync::column_type::text)
                                 .primary_key({"id"}));
            crdtsync::sync_client<replica> client{rep, client_config(db)};
            asio::io_context io;
            connect_client(io, client, url_of(nodes[i]->port));
            check(run_ticking(io, client, [&] { return client.synced(); }, 60, "throughput writer (connect)"), "throughput writer: no sync");
            const auto facts0 = client.stats().facts_out;
            live.put(1);
            (void)go.get();
            const auto cpu0 = cpu_us();
            const auto t0 = mono_ns();
            const auto end = t0 + static_cast<std::int64_t>(o.agg_seconds * 1e9);
            std::deque<std::uint64_t> unacked; // positions of commits not acknowledged yet
            std::uint64_t txns = 0, facts_per_txn = 0;
            std::int64_t row = static_cast<std::int64_t>(i) * 1'000'000'000;
            while (mono_ns() < end) {
                const auto acked = rep.peer(*client.server()).sent_up_to;
                while (!unacked.empty() && unacked.front() <= acked) unacked.pop_front();
                if (unacked.size() < 8) {
                    const auto before = rep.position();
                    rep.write([&](auto& tx) {
                        for (int r = 0; r < o.batch; ++r, ++row) tx.insert("agg", {{"id", row}, {"a", row * 7}, {"b", "x"}});
                    });
                    ++txns;
                    if (facts_per_txn == 0) // every transaction has the same shape: count the first one's facts
                        for (const auto& cs : rep.changes_since(crdtsync::site_id{}, before, 1'000'000).change_sets)
                            facts_per_txn += cs.changes.size() + cs.migrations.size();
                    unacked.push_back(rep.position());
                    io.poll();
                } else {
                    io.run_one_for(1ms);
                }
                client.tick(std::chrono::steady_clock::now());
            }
            const bool acked = run_ticking(io, client, [&] { return client.synced(); }, 20, "throughput writer (last acknowledgement)");
            const auto t1 = acked ? mono_ns() : -1;
            auto& out = results[i];
            out.put(t0);
            out.put(t1);
            out.put(static_cast<std::int64_t>(txns * facts_per_txn));
            out.put(static_cast<std::int64_t>(client.stats().facts_out - facts0));
            out.put(cpu_us() - cpu0);
        }));
    for (std::size_t i = 0; i < k; ++i) (void)live.get();
    if (cluster) wait_caught_up(nodes, db, 30);
    std::vector<const program*> servers; // each node once
    std::set<const program*> seen;
    for (const auto* n : nodes)
        if (seen.insert(n).second) servers.push_back(n);
    auto cpu_servers = [&] {
        double s = 0;
        for (const auto* n : servers) s += cpu_of(n->pid);
        return s;
    };
    const auto nodes_cpu0 = cpu_servers(), nats_cpu0 = nats ? cpu_of(nats->pid) : 0.0;
    for (std::size_t i = 0; i < k; ++i) go.put(1);
    std::int64_t t0 = std::numeric_limits<std::int64_t>::max(), t1 = 0;
    throughput_result r;
    bool stalled = false;
    for (auto& c : results) {
        t0 = std::min(t0, c.get());
        const auto end = c.get();
        stalled = stalled || end < 0;
        t1 = std::max(t1, end);
        r.facts += static_cast<std::uint64_t>(c.get());
        r.facts_sent += static_cast<std::uint64_t>(c.get());
        r.cpu_clients += static_cast<double>(c.get()) * 1e-6;
    }
    r.cpu_nodes = cpu_servers() - nodes_cpu0;
    r.cpu_nats = nats ? cpu_of(nats->pid) - nats_cpu0 : 0.0;
    kids.reap_all("throughput writer");
    if (stalled)
        for (const auto* n : servers) std::cout << status_line(n->name, n->port);
    check(!stalled, "STALLED: a writer's last apply_results did not come in 20 s (its node holds them?)");
    r.seconds = static_cast<double>(t1 - t0) * 1e-9;
    r.facts_per_s = static_cast<double>(r.facts) / r.seconds;
    if (cluster) {
        // Until every node merged what every other node published.
        double seq = 0;
        for (const auto* n : servers) seq = std::max(seq, metric(http_get(n->port, "/metrics"), "crdtsync_cluster_stream_position", db).value_or(0));
        const auto d0 = mono_ns();
        wait_caught_up(servers, db, 120, seq);
        r.drain_s = static_cast<double>(mono_ns() - d0) * 1e-9;
    }
    return r;
}

// ---- consume

struct consume_result {
    double seconds = 0, facts_per_s = 0, cpu = 0;
    double facts = 0, messages = 0;
};

/// A new cluster node: from its start to caught_up on `db`.
consume_result consume(const options& o, const fs::path& dir, const std::vector<const program*>& nodes, const program& nats,
                       const std::string& db) {
    double facts = 0, messages = 0;
    for (const auto* n : nodes) {
        const auto m = http_get(n->port, "/metrics");
        facts += metric(m, "crdtsync_cluster_published_facts_total", db).value_or(0);
        messages += metric(m, "crdtsync_cluster_published_messages_total", db).value_or(0);
    }
    const auto t0 = mono_ns();
    auto late = start_node(o, dir, "node4", &nats);
    consume_result r;
    r.facts = facts;
    r.messages = messages;
    const auto deadline = t0 + 300'000'000'000;
    for (;;) {
        const auto m = http_get(late.port, "/metrics");
        const auto consumed = metric(m, "crdtsync_cluster_consumed_facts_total", db);
        if (metric(m, "crdtsync_cluster_caught_up", db) == 1.0 && consumed && *consumed >= facts) {
            r.seconds = static_cast<double>(mono_ns() - t0) * 1e-9;
            r.facts = *consumed;
            r.messages = metric(m, "crdtsync_cluster_consumed_messages_total", db).value_or(0);
            break;
        }
        check(mono_ns() < deadline, "node4: not caught up on " + db + " after 300 s (consumed " +
                                        std::to_string(consumed.value_or(-1)) + " of " + std::to_string(facts) +
                                        " facts, lag " + std::to_string(metric(m, "crdtsync_cluster_consumer_lag", db).value_or(-1)) +
                                        "): " + tail(late.log, 600));
        std::this_thread::sleep_for(10ms);
    }
    r.cpu = cpu_of(late.pid);
    r.facts_per_s = r.facts / r.seconds;
    stop_program(late.pid);
    return r;
}

// ---- one run

void print_step(const char* where, const latency_step& s) {
    std::cout << "    " << where << " " << s.rate << " writes/s (writer " << static_cast<int>(s.achieved) << "/s): p50 " << s.lat.p50_ms
              << " ms, p99 " << s.lat.p99_ms << " ms, max " << s.lat.max_ms << " ms, " << s.lat.samples << " samples"
              << (s.missing ? ", " + std::to_string(s.missing) + " MISSING" : std::string())
              << (s.stalled ? ", STALLED (the writer's last apply_results did not come in 20 s)" : "") << (s.holds ? "" : "  (does not hold)")
              << "\n";
}

std::string cores(const throughput_result& t) {
    std::ostringstream s;
    s.precision(2);
    s << std::fixed << (t.cpu_nodes + t.cpu_nats + t.cpu_clients) / t.seconds << " cores busy (nodes " << t.cpu_nodes / t.seconds
      << ", nats-server " << t.cpu_nats / t.seconds << ", clients " << t.cpu_clients / t.seconds << ")";
    return s.str();
}

std::string echoes(const throughput_result& t) {
    return "the clients sent " + with_commas(static_cast<double>(t.facts_sent)) + " facts: their own and, back, the ones pushed to them";
}

void one_run(const options& o, int run) {
    auto wanted = [&](const char* s) { return o.only.empty() || o.only.count(s) != 0; };
    const fs::path dir = o.dir / ("run-" + std::to_string(run));
    fs::remove_all(dir);
    fs::create_directories(dir);
    const auto nats = start_nats(o, dir);
    std::vector<program> nodes;
    for (int i = 1; i <= 3; ++i) nodes.push_back(start_node(o, dir, "node" + std::to_string(i), &nats));
    const auto single = start_node(o, dir, "single", nullptr);
    const std::vector<const program*> cluster{&nodes[0], &nodes[1], &nodes[2]};
    std::cout << "run " << run << ": nats-server on port " << nats.port << ", nodes on " << nodes[0].port << ", " << nodes[1].port
              << ", " << nodes[2].port << ", single node on " << single.port << "; load average " << load_average() << "\n";

    auto phase = [&](const char* what, auto&& fn) {
        try {
            fn();
        } catch (const std::exception& e) {
            std::cout << "  " << what << " FAILED: " << e.what() << "\n";
            any_failed = true;
        }
    };
    if (wanted("throughput") || wanted("consume")) {
        phase("throughput, single node", [&] {
            const auto s = throughput(o, dir / "agg-single", {&single, &single, &single}, nullptr, "agg", false);
            std::cout << "  throughput, single node, 3 writers (" << o.batch << " rows a transaction): " << with_commas(s.facts_per_s)
                      << " changes/s acknowledged (" << with_commas(static_cast<double>(s.facts)) << " in " << s.seconds << " s; "
                      << echoes(s) << "); " << cores(s) << "\n";
        });
        phase("throughput, 3 nodes", [&] {
            const auto c = throughput(o, dir / "agg", cluster, &nats, "agg", true);
            std::cout << "  throughput, 3 nodes, a writer on each (" << o.batch << " rows a transaction): "
                      << with_commas(c.facts_per_s) << " changes/s acknowledged (" << with_commas(static_cast<double>(c.facts))
                      << " in " << c.seconds << " s; " << echoes(c) << "); " << cores(c) << "; every node merged the whole stream " << c.drain_s
                      << " s after the last acknowledgement\n";
        });
        if (wanted("consume"))
            phase("consume", [&] {
                const auto r = consume(o, dir, cluster, nats, "agg");
                std::cout << "  consume: a new node read " << with_commas(r.facts) << " changes (" << with_commas(r.messages)
                          << " stream messages) and was caught up " << r.seconds << " s after its start: "
                          << with_commas(r.facts_per_s) << " changes/s; its CPU " << r.cpu << " s\n";
            });
    }
    if (wanted("latency")) phase("latency", [&] {
        std::cout << "  propagation latency, a write at a client of node 1 to its commit at a client of node 3 (cluster), "
                     "and between two clients of the single node; holds: all arrived, writer within 10%, p99 < "
                  << o.p99_bound_ms << " ms\n";
        bool cluster_on = true, single_on = true;
        std::optional<latency_step> best_c, best_s;
        for (const int rate : o.rates) {
            if (!cluster_on && !single_on) break;
            const auto tag = std::to_string(rate);
            // A rate whose p99 is over the bound may be noise (the machine is
            // shared); one the writer cannot keep, or that loses writes, ends
            // the steps.
            auto step = [&](bool& on, std::optional<latency_step>& best, const char* what, const program& from, const program& to, bool c) {
                if (!on) return;
                const auto r = propagation(o, dir / "lat", from, to, c, std::string("lat-") + (c ? "cluster-" : "single-") + tag, rate);
                print_step(what, r);
                any_failed = any_failed || r.stalled;
                if (r.holds) best = r;
                if (r.missing || r.stalled || r.achieved < 0.9 * rate) on = false;
            };
            step(single_on, best_s, "single ", single, single, false);
            step(cluster_on, best_c, "cluster", nodes[0], nodes[2], true);
        }
        auto best = [](const char* what, const std::optional<latency_step>& b) {
            if (!b) return std::cout << "  " << what << ": no rate holds\n", void();
            std::cout << "  " << what << ": highest rate that holds " << b->rate << " writes/s: p50 " << b->lat.p50_ms << " ms, p99 "
                      << b->lat.p99_ms << " ms\n";
        };
        best("cluster node1->node3", best_c);
        best("single node", best_s);
    });
    std::cout << "  load average at the end " << load_average() << "\n";
    stop_program(single.pid);
    for (auto& n : nodes) stop_program(n.pid);
    stop_program(nats.pid);
    if (!o.keep) fs::remove_all(dir);
}

std::string find_on_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/bin:/bin";
    p += ":/usr/sbin:/sbin";
    for (std::size_t at = 0; at <= p.size();) {
        const auto colon = std::min(p.find(':', at), p.size());
        const fs::path f = fs::path(p.substr(at, colon - at)) / name;
        if (::access(f.c_str(), X_OK) == 0) return f.string();
        at = colon + 1;
    }
    return {};
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    for (std::size_t p = 0; p <= s.size();) {
        const auto q = std::min(s.find(',', p), s.size());
        if (q > p) out.push_back(s.substr(p, q - p));
        p = q + 1;
    }
    return out;
}

options parse(int argc, char** argv) {
    options o;
    if (const char* e = std::getenv("CRDTSYNC")) o.crdtsync = e;
    if (const char* e = std::getenv("NATS_SERVER")) o.nats_server = e;
    o.dir = fs::temp_directory_path() / ("crdtsync-cluster-bench-" + std::to_string(::getpid()));
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
            return argv[++i];
        };
        if (a == "--crdtsync") o.crdtsync = next();
        else if (a == "--nats-server") o.nats_server = next();
        else if (a == "--only") for (const auto& s : split(next())) o.only.insert(s);
        else if (a == "--runs") o.runs = std::stoi(next());
        else if (a == "--rates") {
            o.rates.clear();
            for (const auto& s : split(next())) o.rates.push_back(std::stoi(s));
        } else if (a == "--seconds") o.seconds = std::stod(next());
        else if (a == "--agg-seconds") o.agg_seconds = std::stod(next());
        else if (a == "--batch") o.batch = std::stoi(next());
        else if (a == "--p99-bound") o.p99_bound_ms = std::stod(next());
        else if (a == "--dir") o.dir = next();
        else if (a == "--keep") o.keep = true;
        else if (a == "--help") {
            std::cout << "crdtsync_cluster_bench [--crdtsync PATH] [--nats-server PATH] [--only throughput,consume,latency]\n"
                         "                       [--runs N] [--rates 100,200,...] [--seconds S] [--agg-seconds S]\n"
                         "                       [--batch N] [--p99-bound MS] [--dir D] [--keep]\n"
                         "--crdtsync defaults to $CRDTSYNC, --nats-server to $NATS_SERVER, else nats-server on PATH.\n";
            std::exit(0);
        } else throw std::runtime_error("unknown option " + a + " (see --help)");
    }
    if (o.nats_server.empty()) o.nats_server = find_on_path("nats-server");
    if (o.crdtsync.empty()) throw skipped("no crdtsync tool: pass --crdtsync PATH or set CRDTSYNC");
    if (o.nats_server.empty()) throw skipped("no nats-server: pass --nats-server PATH or set NATS_SERVER");
    for (const auto* p : {&o.crdtsync, &o.nats_server})
        if (::access(p->c_str(), X_OK) != 0) throw skipped(*p + " is not an executable");
    check(!o.rates.empty() && o.seconds > 0 && o.agg_seconds > 0 && o.batch > 0, "bad --rates, --seconds, --agg-seconds or --batch");
    return o;
}
} // namespace

int main(int argc, char** argv) {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, on_signal);
    int rc = 0;
    options o;
    try {
        o = parse(argc, argv);
        more_files();
        fs::create_directories(o.dir);
        std::cout << "crdtsync cluster benchmark: " << o.crdtsync << ", " << o.nats_server << "; every party a process, LMDB durable "
                  << "commits, data in " << o.dir << " (" << filesystem_type(o.dir.string()) << "), "
                  << std::thread::hardware_concurrency() << " cores\n";
        for (int r = 1; r <= o.runs; ++r) one_run(o, r);
        if (any_failed) {
            std::cerr << "crdtsync_cluster_bench: a phase failed or stalled (see above)\n";
            rc = 1;
        }
    } catch (const skipped& e) {
        std::cerr << "crdtsync_cluster_bench: skipped: " << e.what() << "\n";
        rc = 77;
    } catch (const std::exception& e) {
        std::cerr << "crdtsync_cluster_bench: " << e.what() << "\n";
        rc = 1;
    }
    kill_all();
    if (!o.keep && !o.dir.empty()) {
        std::error_code ec;
        fs::remove_all(o.dir, ec);
    }
    return rc;
}
