#pragma once
// What the network benchmarks share (net_bench.cpp, cluster_bench.cpp):
// one clock for every process, pipes between forked processes, durable
// LMDB replicas and sync_clients over the WebSocket transport.

#include <crdtsync/backends/lmdb.hpp>
#include <crdtsync/crdtsync.hpp>
#include <crdtsync/sync_client.hpp>
#include <crdtsync/transports/websocket.hpp>

#include "harness.hpp"

#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace crdtsync_bench {

using lmdb_replica = crdtsync::replica<crdtsync::lmdb_store>;

/// CLOCK_MONOTONIC in ns: one clock for every process of the machine, so a
/// time written by one process can be compared with another's.
inline std::int64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// CPU time (user + system) of this process, in microseconds.
inline std::int64_t cpu_us() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1'000'000 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

// ---- processes and the pipes between them

/// A pipe carrying 64-bit words from one process to another.
struct channel {
    int fd[2]{-1, -1};
    channel() { check(::pipe(fd) == 0, "pipe"); }
    void put(std::int64_t x) const { check(::write(fd[1], &x, sizeof x) == sizeof x, "write to pipe"); }
    /// Waits at most two minutes: a child that died never writes.
    std::int64_t get() const {
        pollfd p{fd[0], POLLIN, 0};
        check(::poll(&p, 1, 120'000) == 1, "no word from a child process in two minutes (did it fail?)");
        std::int64_t x = 0;
        check(::read(fd[0], &x, sizeof x) == sizeof x, "read from pipe (a child died?)");
        return x;
    }
    /// A count, then that many words.
    void put_all(const std::vector<std::int64_t>& xs) const {
        put(static_cast<std::int64_t>(xs.size()));
        for (auto x : xs) put(x);
    }
    std::vector<std::int64_t> get_all() const {
        std::vector<std::int64_t> out(static_cast<std::size_t>(get()));
        for (auto& x : out) x = get();
        return out;
    }
};

/// Runs `fn` in a forked child, which exits 0 when it returns, 1 when it
/// throws (saying why on stderr).
template <class Fn>
pid_t spawn(Fn&& fn) {
    std::cout.flush();
    const pid_t pid = ::fork();
    check(pid >= 0, "fork");
    if (pid == 0) {
        int rc = 0;
        try {
            fn();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child: %s\n", e.what());
            rc = 1;
        }
        std::_Exit(rc);
    }
    return pid;
}

/// Waits for `pid`, which must have exited 0.
inline void reap(pid_t pid, const char* who) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, std::string(who) + " failed");
}

/// Raises the open file limit to the hard limit (many connections).
inline void more_files() {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
        r.rlim_cur = r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }
}

/// An LMDB store with durable commits (the network benchmarks' setting).
inline std::unique_ptr<crdtsync::lmdb_store> open_store(const std::filesystem::path& file) {
    crdtsync::lmdb_options o;
    o.path = file.string();
    o.map_size = std::size_t(1) << 30;
    o.sync = crdtsync::lmdb_sync::durable;
    return std::make_unique<crdtsync::lmdb_store>(o);
}

inline std::string url_of(std::int64_t port) { return "ws://127.0.0.1:" + std::to_string(port) + "/sync/ws"; }

// ---- sync clients

/// Connects a sync_client.
inline void connect_client(boost::asio::io_context& io, crdtsync::sync_client<lmdb_replica>& client, const std::string& url) {
    crdtsync::websocket::connect(io, url, {}, [&](boost::system::error_code ec, std::shared_ptr<crdtsync::websocket::connection> c) {
        check(!ec, "connect failed: " + ec.message());
        client.attach(c);
    });
}
/// Runs `io` until `done`.
template <class Done>
void run_until(boost::asio::io_context& io, const crdtsync::sync_client<lmdb_replica>& client, Done&& done) {
    using namespace std::chrono_literals;
    while (!done()) {
        check(client.state() != crdtsync::sync_state::failed, "session refused");
        io.run_one_for(20ms);
    }
}
/// Connects a sync_client and runs until `done`.
template <class Done>
void run_client(boost::asio::io_context& io, crdtsync::sync_client<lmdb_replica>& client, const std::string& url, Done&& done) {
    connect_client(io, client, url);
    run_until(io, client, done);
}

/// The table of the latency measurements: one row per write, `t` its
/// commit time (mono_ns).
inline crdtsync::table_def ping_table() {
    return crdtsync::table_def{"ping"}
        .column("id", crdtsync::column_type::integer, false)
        .column("t", crdtsync::column_type::integer)
        .primary_key({"id"});
}

/// Collects, for every `t` a remote change brings into `rep`, the time from
/// that write's commit to now, in ns.
inline void record_latencies(lmdb_replica& rep, std::vector<std::int64_t>& out) {
    rep.on_remote_change([&out](const crdtsync::remote_change& rc) {
        const auto now = mono_ns();
        for (const auto& c : rc.applied)
            if (const auto* cc = std::get_if<crdtsync::column_change>(&c); cc && cc->column == "t")
                out.push_back(now - cc->val.as_integer());
    });
}

/// Percentiles of latency samples (ms).
struct latency_summary {
    double p50_ms = 0, p99_ms = 0, max_ms = 0;
    std::size_t samples = 0;

    static latency_summary of(std::vector<double> ms) {
        std::sort(ms.begin(), ms.end());
        latency_summary r;
        r.samples = ms.size();
        if (!ms.empty()) {
            r.p50_ms = ms[ms.size() / 2];
            r.p99_ms = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
            r.max_ms = ms.back();
        }
        return r;
    }
};

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

} // namespace crdtsync_bench
