// tests/threading: a replica is used by one thread at a time.
//
// - replica_worker: many threads hand work to the one thread that owns a
//   replica (on the memory store and on real LMDB files); results,
//   exceptions, listeners, ordering, stop, and two workers syncing across
//   threads. CI also runs this suite under ThreadSanitizer.
// - the debug-build check: two threads inside one replica at once stop the
//   process (in a forked child) with a message naming both calls and the
//   rule; one thread entering again from a listener is fine.

#include "replica/support.hpp"

#include <crdtsync/replica_check.hpp>
#include <crdtsync/replica_worker.hpp>
#include <crdtsync/snapshot_writer.hpp>

#include <atomic>
#include <functional>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace replica_tests;
using crdtsync::replica_worker;

namespace {

row item(std::int64_t id, std::int64_t a) {
    return row{{"id", value{id}}, {"name", value{"n" + std::to_string(id)}}, {"a", value{a}}};
}

template <class Rep>
std::size_t count_rows(Rep& r) {
    return r.rows("items").size();
}

} // namespace

TEST_CASE_TEMPLATE("replica_worker: many threads write and read one replica through its worker", Env, CRDTSYNC_TEST_STORES) {
    Env env;
    auto store = env.open();
    crdtsync::replica rep(*store);
    rep.create_table(items_table());

    constexpr int threads = 4, per_thread = 150;
    std::atomic<int> local_events{0};
    std::atomic<bool> events_on_worker{true};
    {
        replica_worker worker(rep);
        const auto worker_id = worker.thread_id();
        worker.run([&](auto& r) {
            (void)r.on_local_change([&](const crdtsync::local_change&) {
                ++local_events;
                if (std::this_thread::get_id() != worker_id) events_on_worker = false;
            });
        });
        std::vector<std::thread> pool;
        std::atomic<int> seen_growing{0};
        for (int t = 0; t < threads; ++t) {
            pool.emplace_back([&, t] {
                std::size_t last = 0;
                for (int i = 0; i < per_thread; ++i) {
                    const std::int64_t id = t * per_thread + i;
                    worker.run([&](auto& r) { r.write([&](auto& tx) { tx.insert("items", item(id, t)); }); });
                    // A read through the worker sees every write this thread made.
                    const std::size_t n = worker.post([](auto& r) { return count_rows(r); }).get();
                    if (n >= last + 1) ++seen_growing;
                    last = n;
                }
            });
        }
        for (auto& th : pool) th.join();
        CHECK(seen_growing == threads * per_thread);
        CHECK(worker.run([](auto& r) { return count_rows(r); }) == std::size_t(threads * per_thread));
    } // the destructor ran what was queued and joined
    CHECK(local_events == threads * per_thread);
    CHECK(events_on_worker);
    const auto rows = rep.rows("items");
    REQUIRE(rows.size() == std::size_t(threads * per_thread));
    CHECK(crdtsync::check(rep).ok());
}

TEST_CASE_TEMPLATE("replica_worker: exceptions reach the caller, order holds, stop refuses new work", Env,
                   CRDTSYNC_TEST_STORES) {
    Env env;
    auto store = env.open();
    crdtsync::replica rep(*store);
    rep.create_table(items_table());
    replica_worker worker(rep);

    worker.run([](auto& r) { r.write([](auto& tx) { tx.insert("items", item(1, 1)); }); });
    // A duplicate key: constraint_error out of run, out of the future, and
    // the worker goes on.
    CHECK_THROWS_AS(worker.run([](auto& r) { r.write([](auto& tx) { tx.insert("items", item(1, 2)); }); }),
                    crdtsync::constraint_error);
    auto failed = worker.post([](auto& r) { r.write([](auto& tx) { tx.insert("items", item(1, 3)); }); });
    CHECK_THROWS_AS(failed.get(), crdtsync::constraint_error);
    CHECK(worker.run([](auto& r) { return count_rows(r); }) == 1u);

    // Work runs in the order posted.
    std::vector<int> order;
    std::vector<std::future<void>> done;
    for (int i = 0; i < 50; ++i) done.push_back(worker.post([&order, i](auto&) { order.push_back(i); }));
    for (auto& f : done) f.get();
    for (int i = 0; i < 50; ++i) CHECK(order[std::size_t(i)] == i);

    // run from inside the worker's own work runs at once (no self-wait).
    const int nested = worker.run([&](auto&) { return worker.run([](auto& r) { return int(count_rows(r)); }) + 1; });
    CHECK(nested == 2);

    // Queued work still runs after stop; new work is refused.
    auto slow = worker.post([](auto& r) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        r.write([](auto& tx) { tx.insert("items", item(2, 2)); });
    });
    auto queued = worker.post([](auto& r) { return count_rows(r); });
    worker.stop();
    CHECK_THROWS_AS((void)worker.post([](auto&) {}), crdtsync::usage_error);
    slow.get();
    CHECK(queued.get() == 2u);
}

TEST_CASE("replica_worker: two replicas on LMDB files, each with its worker, sync from other threads") {
#if defined(CRDTSYNC_TEST_LMDB)
    lmdb_env env;
    auto sa = env.open(), sb = env.open();
    crdtsync::replica a(*sa), b(*sb);
    a.create_table(items_table());
    replica_worker wa(a), wb(b);
    const auto site_a = wa.run([](auto& r) { return r.site_id(); });
    const auto site_b = wb.run([](auto& r) { return r.site_id(); });

    std::atomic<bool> writing{true};
    std::thread writer_a([&] {
        for (int i = 0; i < 200; ++i)
            wa.run([&](auto& r) { r.write([&](auto& tx) { tx.insert("items", item(i, 1)); }); });
    });
    std::thread writer_b([&] {
        // b learns the table from a first, then writes its own rows.
        for (;;) {
            const auto d = wa.run([&](auto& r) { return r.changes_for(site_b); });
            const auto res = wb.run([&](auto& r) { return r.apply_from(site_a, d); });
            CHECK(res.rejected.empty());
            wa.run([&](auto& r) { r.acknowledge(site_b, d.next_position); });
            if (wb.run([](auto& r) { return r.find_table("items").has_value(); })) break;
        }
        for (int i = 1000; i < 1200; ++i)
            wb.run([&](auto& r) { r.write([&](auto& tx) { tx.insert("items", item(i, 2)); }); });
        writing = false;
    });
    // A third thread moves changes both ways while both write.
    std::thread syncer([&] {
        auto round = [&] {
            const auto ab = wa.run([&](auto& r) { return r.changes_for(site_b); });
            (void)wb.run([&](auto& r) { return r.apply_from(site_a, ab); });
            wa.run([&](auto& r) { r.acknowledge(site_b, ab.next_position); });
            const auto ba = wb.run([&](auto& r) { return r.changes_for(site_a); });
            (void)wa.run([&](auto& r) { return r.apply_from(site_b, ba); });
            wb.run([&](auto& r) { r.acknowledge(site_a, ba.next_position); });
            return !ab.more && !ba.more && ab.change_sets.empty() && ba.change_sets.empty();
        };
        while (writing) (void)round();
        while (!round()) {}
    });
    writer_a.join();
    writer_b.join();
    syncer.join();
    // writer_a may have finished after the syncer's last round: one more.
    const auto ab = wa.run([&](auto& r) { return r.changes_for(site_b); });
    (void)wb.run([&](auto& r) { return r.apply_from(site_a, ab); });
    CHECK(wa.run([](auto& r) { return r.dump(); }) == wb.run([](auto& r) { return r.dump(); }));
    CHECK(wa.run([](auto& r) { return count_rows(r); }) == 400u);
#else
    MESSAGE("built without LMDB");
#endif
}

#if CRDTSYNC_THREAD_CHECKS
namespace {

/// Runs `body` in a forked child; returns how the child ended and what it
/// wrote to stderr.
template <class Body>
std::pair<int, std::string> in_child(Body body) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::fflush(nullptr);  // nothing buffered is written twice
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::signal(SIGABRT, SIG_DFL);  // not doctest's crash report: the parent judges
        ::dup2(fds[1], 2);
        if (const int null = ::open("/dev/null", O_WRONLY); null >= 0) ::dup2(null, 1);  // doctest's own output
        ::close(fds[0]);
        body();
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string err;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, std::size_t(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {status, err};
}

} // namespace

/// In a forked child: thread 1 stays inside replica::write (in a listener)
/// until the process ends, and this thread calls `call` on the replica
/// meanwhile, which must stop the process. Returns how the child ended and
/// its stderr.
template <class Call>
std::pair<int, std::string> call_while_another_thread_writes(Call call) {
    return in_child([&] {
        crdtsync::memory_store store;
        crdtsync::replica rep(store);
        rep.create_table(items_table());
        std::atomic<bool> inside{false};
        (void)rep.on_local_change([&](const crdtsync::local_change&) {
            inside = true;
            std::this_thread::sleep_for(std::chrono::seconds(10));
        });
        std::thread writer([&] { rep.write([](auto& tx) { tx.insert("items", item(1, 1)); }); });
        while (!inside) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        call(rep);
        ::_exit(0); // not reached: the call above stops the process
    });
}

TEST_CASE("debug builds stop the process when two threads are inside one replica at once") {
    const auto [status, err] = call_while_another_thread_writes([](auto& rep) { (void)rep.rows("items"); });
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
    INFO(err);
    CHECK(err.find("replica::rows was called on thread") != std::string::npos);
    CHECK(err.find("is inside replica::write") != std::string::npos);
    CHECK(err.find("one thread at a time") != std::string::npos);
}

TEST_CASE("the accessors and snapshot_writer's constructor are checked too") {
    // One child per call, each made while thread 1 is inside replica::write.
    const std::pair<const char*, std::function<void(crdtsync::replica<crdtsync::memory_store>&)>> calls[] = {
        {"replica::position", [](auto& r) { (void)r.position(); }},
        {"replica::site_id", [](auto& r) { (void)r.site_id(); }},
        {"replica::clock", [](auto& r) { (void)r.clock(); }},
        {"replica::gc_horizon", [](auto& r) { (void)r.gc_horizon(); }},
        {"snapshot_writer", [](auto& r) { crdtsync::snapshot_writer<crdtsync::replica<crdtsync::memory_store>> w(r); }},
    };
    for (const auto& [name, call] : calls) {
        const auto [status, err] = call_while_another_thread_writes(call);
        INFO(name, ": ", err);
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == SIGABRT);
        CHECK(err.find(std::string(name) + " was called on thread") != std::string::npos);
    }
}

TEST_CASE("the same thread may enter its replica again, from a listener") {
    crdtsync::memory_store store;
    crdtsync::replica rep(store);
    rep.create_table(items_table());
    std::size_t seen = 0;
    (void)rep.on_local_change([&](const crdtsync::local_change&) { seen = rep.rows("items").size(); });
    rep.write([](auto& tx) { tx.insert("items", item(1, 1)); });
    CHECK(seen == 1);
    // The check was released: another thread may use the replica now.
    std::thread([&] { CHECK(rep.rows("items").size() == 1); }).join();
}
#else
TEST_CASE("thread checks are off in this build (NDEBUG)") {
    MESSAGE("CRDTSYNC_THREAD_CHECKS is 0: the two-threads check is not compiled in");
}
#endif
