#pragma once
/// \file replica_worker.hpp
/// `crdtsync::replica_worker`: one thread that owns a replica, and a queue
/// that any thread hands work to.
///
/// A replica and its store are used by one thread at a time (builds without
/// `NDEBUG` stop the process when two threads are inside one replica at
/// once; see docs/reliability.md, "Threading"). A multi-threaded application gives the
/// replica to a worker and reaches it only through `post` and `run`:
///
/// \code
/// crdtsync::lmdb_store store({.path = "app.mdb"});
/// crdtsync::replica rep(store);
/// crdtsync::replica_worker worker(rep);  // from here on, only the worker touches rep
///
/// // on any thread:
/// worker.run([](auto& r) {
///     r.write([](auto& tx) { tx.insert("tasks", crdtsync::row{{"id", crdtsync::value{1}}, {"title", crdtsync::value{"buy milk"}}}); });
/// });
/// std::future<std::size_t> n = worker.post([](auto& r) { return r.rows("tasks").size(); });
/// \endcode
///
/// Work runs in the order it was posted, one piece at a time, on the
/// worker's thread; listeners registered on the replica fire on that thread
/// too. An exception thrown by a piece of work reaches the caller through its
/// future (or out of `run`); the worker goes on with the next piece. The
/// destructor runs what is queued, then joins the thread.
///
/// On the worker's own thread (inside a piece of work or a listener), use
/// `run`, which runs at once: waiting there on a future from `post` waits
/// for itself forever. The worker must not be destroyed from its own thread
/// (a piece of work holding the last owner of it): joining itself ends the
/// process.

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

#include <crdtsync/error.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

template <class Replica>
class replica_worker {
public:
    /// Starts the worker thread. The caller keeps `rep` (and its store)
    /// alive for the worker's lifetime and stops touching it directly.
    explicit replica_worker(Replica& rep) : rep_(rep), thread_([this] { loop(); }) {}

    replica_worker(const replica_worker&) = delete;
    replica_worker& operator=(const replica_worker&) = delete;

    /// Runs the queued work, then joins the thread.
    ~replica_worker() {
        stop();
        if (thread_.joinable()) thread_.join();
    }

    /// Queues `fn(replica&)` and returns a future for its result (or its
    /// exception).
    /// \throws usage_error (`errc::invalid_argument`) after `stop()`.
    template <class F>
    [[nodiscard]] std::future<std::invoke_result_t<F&, Replica&>> post(F&& fn) {
        using result = std::invoke_result_t<F&, Replica&>;
        auto job = std::make_unique<task<result, std::decay_t<F>>>(std::forward<F>(fn));
        auto future = job->promise.get_future();
        {
            std::lock_guard lock(mutex_);
            if (stopping_)
                detail::raise(errc::invalid_argument, "replica_worker: work was posted after stop(); the worker "
                                                      "takes no more work once it is stopping");
            queue_.push_back(std::move(job));
        }
        wake_.notify_one();
        return future;
    }

    /// Runs `fn(replica&)` on the worker and waits for it: its result, or
    /// its exception rethrown here. Called on the worker's own thread (from a
    /// piece of work or a listener), runs `fn` at once instead of waiting
    /// for itself.
    template <class F>
    std::invoke_result_t<F&, Replica&> run(F&& fn) {
        if (std::this_thread::get_id() == thread_.get_id()) return std::invoke(fn, rep_);
        return post(std::forward<F>(fn)).get();
    }

    /// Takes no more work; what is queued still runs. The destructor calls it.
    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
    }

    /// The worker's thread id (for asserting where code runs).
    [[nodiscard]] std::thread::id thread_id() const noexcept { return thread_.get_id(); }

private:
    struct task_base {
        virtual ~task_base() = default;
        virtual void run(Replica& r) = 0;
    };
    template <class Result, class F>
    struct task final : task_base {
        explicit task(F f) : fn(std::move(f)) {}
        void run(Replica& r) override {
            try {
                if constexpr (std::is_void_v<Result>) {
                    std::invoke(fn, r);
                    promise.set_value();
                } else {
                    promise.set_value(std::invoke(fn, r));
                }
            } catch (...) {
                promise.set_exception(std::current_exception());
            }
        }
        F fn;
        std::promise<Result> promise;
    };

    void loop() {
        for (;;) {
            std::unique_ptr<task_base> job;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;  // stopping, and nothing left
                job = std::move(queue_.front());
                queue_.pop_front();
            }
            job->run(rep_);
        }
    }

    Replica& rep_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::unique_ptr<task_base>> queue_;
    bool stopping_ = false;
    std::thread thread_;  // last: starts once the members above exist
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
