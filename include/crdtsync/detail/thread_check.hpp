#pragma once
/// \file thread_check.hpp
/// `detail::thread_check`: catches two threads inside one replica at once.
/// Internal.
///
/// A replica and its store are used by one thread at a time (docs/reliability.md,
/// "Threading"). The public calls of `replica` that open a store transaction
/// (and the accessors, `snapshot_writer`, `snapshot_loader`, `check`) open a
/// `thread_check::scope`;
/// when `CRDTSYNC_THREAD_CHECKS` is 1 (the default unless `NDEBUG` is defined)
/// a second thread entering while the first is inside stops the process with a
/// message naming both calls and the rule, instead of corrupting the store
/// later. The same thread may enter again (a listener that reads the replica).
///
/// The members are there in every build, so that translation units compiled
/// with and without `NDEBUG` agree on `replica`'s layout; with the checks off
/// `enter` does nothing. A program mixing the two settings still gets one
/// definition of each function from the linker, so the check is then on in
/// some calls and off in others (harmless, but unspecified): pick one
/// setting per program.

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include <crdtsync/version.hpp>

#ifndef CRDTSYNC_THREAD_CHECKS
#ifdef NDEBUG
#define CRDTSYNC_THREAD_CHECKS 0
#else
#define CRDTSYNC_THREAD_CHECKS 1
#endif
#endif

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

class thread_check {
public:
    thread_check() = default;
    thread_check(const thread_check&) = delete;
    thread_check& operator=(const thread_check&) = delete;

    /// Leaves on destruction (when it entered).
    class [[nodiscard]] scope {
    public:
        explicit scope(const thread_check* c) noexcept : c_(c) {}
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;
        ~scope() {
            if (c_) c_->leave();
        }

    private:
        const thread_check* c_;
    };

    /// Records that the calling thread is inside `what` (a static string such
    /// as "replica::apply"); aborts when another thread is inside.
    [[nodiscard]] scope enter([[maybe_unused]] const char* what) const noexcept {
#if CRDTSYNC_THREAD_CHECKS
        const std::thread::id self = std::this_thread::get_id();
        std::thread::id expected{};
        if (owner_.compare_exchange_strong(expected, self, std::memory_order_acquire)) {
            what_.store(what, std::memory_order_relaxed);
            depth_ = 1;
        } else if (expected == self) {
            ++depth_;
        } else {
            collision(what, self, expected);
        }
        return scope(this);
#else
        return scope(nullptr);
#endif
    }

private:
    void leave() const noexcept {
        if (--depth_ == 0) owner_.store(std::thread::id{}, std::memory_order_release);
    }

    [[noreturn]] void collision(const char* what, std::thread::id self, std::thread::id other) const noexcept {
        const char* inside = what_.load(std::memory_order_relaxed);
        std::fprintf(stderr,
                     "crdtsync: %s was called on thread %zu while thread %zu is inside %s. A replica and its "
                     "store are used by one thread at a time: give the replica one owning thread and hand it "
                     "work (crdtsync::replica_worker does that), or lock around every call. See "
                     "docs/reliability.md, \"Threading\".\n",
                     what, std::hash<std::thread::id>{}(self), std::hash<std::thread::id>{}(other),
                     inside ? inside : "the replica");
        std::fflush(stderr);
        std::abort();
    }

    mutable std::atomic<std::thread::id> owner_{};
    mutable std::atomic<const char*> what_{nullptr};
    mutable unsigned depth_ = 0;  // touched only by the owning thread
};

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
