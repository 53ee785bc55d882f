#pragma once
// A store written by a user of crdtsync: what it takes to run a replica on
// your own storage. docs/store.md walks through this file.
//
// The data lives in a `std::unordered_map` (fast point lookups) and a
// `std::set` of its keys (the order `scan` needs). Isolation comes from
// copy-on-write: the committed state is an immutable snapshot held by
// `std::shared_ptr`. A read transaction keeps the snapshot it started with;
// the write transaction copies the snapshot on its first change and
// publishes the copy on commit. Copying everything per write transaction is
// slow for big data sets, but short to write and obviously right: a
// starting point, or a model to test a faster store against.
//
// The store passes the conformance suite of <crdtsync/testing/store_laws.hpp>, as
// every store should.

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <crdtsync/error.hpp>
#include <crdtsync/store.hpp>

namespace example {

/// An in-memory key-value store built from standard containers.
class custom_store {
    // One version of the whole data set. Never changed once published.
    struct snapshot {
        std::unordered_map<std::string, std::string> values;
        // std::string compares its bytes as unsigned char, which is the
        // order kv_store demands.
        std::set<std::string, std::less<>> keys;
    };
    using snapshot_ptr = std::shared_ptr<const snapshot>;

    // Visits [begin, end) of `snap` in key order. `snap` does not change
    // during the walk, whatever the callback does (see write_txn::scan).
    template <class Fn>
    static void scan_snapshot(const snapshot& snap, std::string_view begin, std::string_view end, Fn& fn) {
        for (auto it = snap.keys.lower_bound(begin); it != snap.keys.end(); ++it) {
            if (!end.empty() && std::string_view(*it) >= end) return;
            if (!std::invoke(fn, std::string_view(*it), std::string_view(snap.values.at(*it)))) return;
        }
    }

    [[nodiscard]] static std::optional<std::string_view> lookup(const snapshot& snap, std::string_view key) {
        const auto it = snap.values.find(std::string(key));
        if (it == snap.values.end()) return std::nullopt; // absent is not an error
        return std::string_view(it->second);
    }

public:
    // (1) The opt-in: without it, crdtsync::kv_store<custom_store> is false
    // however well the rest fits.
    using kv_store_concept = crdtsync::kv_store_tag;

    // (2) A read transaction: a consistent snapshot with get and scan.
    class read_txn {
    public:
        [[nodiscard]] std::optional<std::string_view> get(std::string_view key) const {
            return lookup(*snap_, key);
        }
        template <class Fn>
        void scan(std::string_view begin, std::string_view end, Fn&& fn) const {
            scan_snapshot(*snap_, begin, end, fn);
        }

    private:
        friend class custom_store;
        explicit read_txn(snapshot_ptr snap) : snap_(std::move(snap)) {}
        snapshot_ptr snap_; // keeps the snapshot alive, and views into it valid
    };

    // (3) The write transaction: reads see its own changes; commit publishes
    // them all at once; abort or destruction drops them.
    class write_txn {
    public:
        write_txn(write_txn&& other) noexcept
            : store_(std::exchange(other.store_, nullptr)), base_(std::move(other.base_)),
              draft_(std::move(other.draft_)) {}
        write_txn& operator=(write_txn&&) = delete;
        write_txn(const write_txn&) = delete;
        write_txn& operator=(const write_txn&) = delete;
        ~write_txn() { abort(); }

        [[nodiscard]] std::optional<std::string_view> get(std::string_view key) const {
            return lookup(current(), key);
        }

        template <class Fn>
        void scan(std::string_view begin, std::string_view end, Fn&& fn) const {
            // Hold on to the state being walked: a change made by `fn` sees
            // this extra owner and copies the draft instead of changing it
            // under our feet (see `draft()`).
            const std::shared_ptr<const snapshot> walked = draft_ ? draft_ : base_;
            scan_snapshot(*walked, begin, end, fn);
        }

        void put(std::string_view key, std::string_view value) {
            snapshot& d = draft();
            auto [it, inserted] = d.values.insert_or_assign(std::string(key), std::string(value));
            if (inserted) d.keys.insert(it->first);
        }

        bool erase(std::string_view key) {
            if (!lookup(current(), key)) return false;
            snapshot& d = draft();
            d.values.erase(std::string(key));
            d.keys.erase(d.keys.find(key));
            return true;
        }

        void commit() {
            if (store_ == nullptr) {
                throw crdtsync::usage_error(crdtsync::errc::invalid_argument, "custom_store: transaction has ended");
            }
            if (draft_) store_->committed_ = std::move(draft_); // the one step that publishes
            std::exchange(store_, nullptr)->writing_ = false;
        }

        void abort() noexcept {
            if (store_ == nullptr) return; // already committed or aborted
            draft_.reset();
            std::exchange(store_, nullptr)->writing_ = false;
        }

    private:
        friend class custom_store;
        explicit write_txn(custom_store& store) : store_(&store), base_(store.committed_) {}

        [[nodiscard]] const snapshot& current() const {
            if (store_ == nullptr) {
                throw crdtsync::usage_error(crdtsync::errc::invalid_argument, "custom_store: transaction has ended");
            }
            return draft_ ? *draft_ : *base_;
        }

        // The private copy to change. Copied from the committed snapshot on
        // the first change, and again whenever someone else (a scan in
        // progress) still holds the current draft.
        [[nodiscard]] snapshot& draft() {
            const snapshot& from = current();
            if (!draft_ || draft_.use_count() > 1) draft_ = std::make_shared<snapshot>(from);
            return *draft_;
        }

        custom_store* store_;
        snapshot_ptr base_;               // the committed state this transaction started from
        std::shared_ptr<snapshot> draft_; // its changes, once there are any
    };

    [[nodiscard]] read_txn read() const { return read_txn(committed_); }

    [[nodiscard]] write_txn write() {
        // One writer at a time, as kv_store requires. Errors are crdtsync's
        // typed exceptions, so callers handle every store alike.
        if (writing_) {
            throw crdtsync::usage_error(crdtsync::errc::invalid_argument,
                                        "custom_store: a write transaction is already open");
        }
        writing_ = true;
        return write_txn(*this);
    }

private:
    snapshot_ptr committed_ = std::make_shared<const snapshot>();
    bool writing_ = false;
};

// (4) Check the whole shape at compile time, with readable diagnostics.
static_assert(crdtsync::check_kv_store<custom_store>());

} // namespace example
