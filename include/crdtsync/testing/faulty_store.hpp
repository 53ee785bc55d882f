#pragma once
/// \file testing/faulty_store.hpp
/// crdtsync::testing::faulty_store<Inner>: a kv_store decorator that fails on
/// purpose. It forwards everything to an inner store and throws
/// storage_error (errc::storage, "injected fault ...") on the N-th mutating
/// call (put, erase and commit counted together), so a test can fail a
/// transaction at every step in turn and check that nothing of it remains.
///
///     crdtsync::testing::faulty_store<crdtsync::memory_store> store;
///     store.fail_at(3);          // the 3rd put/erase/commit from now throws
///     ...                        // run the code under test, expect storage_error
///     store.inner().read()...    // and check the inner store is unchanged
///
/// A fault fires once and disarms itself, so the retry that follows runs
/// clean. The failed transaction is aborted before the throw, like a real
/// store that "discards a failed transaction whole" (crdtsync/store.hpp).
/// One thread at a time, like the stores it wraps.
///
/// Needs nothing beyond crdtsync's core (no test framework); not part of
/// the umbrella <crdtsync/crdtsync.hpp>.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <crdtsync/error.hpp>
#include <crdtsync/store.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace testing {

template <kv_store Inner>
class faulty_store {
    using inner_write = write_transaction_t<Inner>;

public:
    using kv_store_concept = kv_store_tag;
    using inner_type = Inner;
    /// Reads never fail on purpose: the inner read transaction as is.
    using read_txn = read_transaction_t<Inner>;

    /// The write transaction: the inner one, with a fault counter on the way.
    class write_txn {
    public:
        write_txn(write_txn&&) noexcept = default;
        write_txn& operator=(write_txn&&) = delete;
        write_txn(const write_txn&) = delete;
        write_txn& operator=(const write_txn&) = delete;
        ~write_txn() = default; // the inner transaction aborts itself

        [[nodiscard]] std::optional<std::string_view> get(std::string_view key) const { return inner_.get(key); }

        template <class Fn>
        void scan(std::string_view begin, std::string_view end, Fn&& fn) const {
            inner_.scan(begin, end, std::forward<Fn>(fn));
        }

        void put(std::string_view key, std::string_view value) {
            step("put");
            inner_.put(key, value);
        }

        bool erase(std::string_view key) {
            step("erase");
            return inner_.erase(key);
        }

        void commit() {
            step("commit");
            inner_.commit();
        }

        void abort() { inner_.abort(); }

    private:
        friend class faulty_store;
        write_txn(faulty_store& owner, inner_write inner) : owner_(&owner), inner_(std::move(inner)) {}

        void step(const char* what) {
            if (owner_->count_call()) {
                inner_.abort(); // a failed transaction is discarded whole
                detail::raise(errc::storage, std::string("injected fault in ") + what + " (mutating call " +
                                                 std::to_string(owner_->calls_) + " since fail_at)");
            }
        }

        faulty_store* owner_;
        mutable inner_write inner_;
    };

    /// Constructs the inner store from `args`.
    template <class... Args>
    explicit faulty_store(Args&&... args) : inner_(std::forward<Args>(args)...) {}
    faulty_store(const faulty_store&) = delete;
    faulty_store& operator=(const faulty_store&) = delete;

    [[nodiscard]] read_txn read() { return inner_.read(); }
    [[nodiscard]] write_txn write() { return write_txn(*this, inner_.write()); }

    /// Arms the fault: the `n`-th mutating call from now throws. 0 disarms.
    void fail_at(std::size_t n) noexcept {
        fail_at_ = n;
        calls_ = 0;
    }
    /// Mutating calls since the last `fail_at`.
    [[nodiscard]] std::size_t calls() const noexcept { return calls_; }
    /// Faults injected so far.
    [[nodiscard]] std::size_t faults() const noexcept { return faults_; }
    /// Whether a fault is still waiting to fire.
    [[nodiscard]] bool armed() const noexcept { return fail_at_ != 0; }

    /// The wrapped store, to inspect what a failure left behind.
    [[nodiscard]] Inner& inner() noexcept { return inner_; }

private:
    // Counts a mutating call; true when this is the one to fail.
    [[nodiscard]] bool count_call() noexcept {
        ++calls_;
        if (fail_at_ == 0 || calls_ != fail_at_) return false;
        fail_at_ = 0; // fires once
        ++faults_;
        return true;
    }

    Inner inner_;
    std::size_t fail_at_ = 0;
    std::size_t calls_ = 0;
    std::size_t faults_ = 0;
};

} // namespace testing
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
