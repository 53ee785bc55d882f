#pragma once
/// \file store.hpp
/// The `kv_store` concept: the storage a replica is parameterised on.
///
/// ## Minimal definition
/// A type `S` models `kv_store` when it says so and has the operations:
/// ```
/// struct my_store {
///     using kv_store_concept = crdtsync::kv_store_tag;   // the opt-in
///     read_txn  read();    // a read transaction (a consistent snapshot)
///     write_txn write();   // the one write transaction (single writer)
/// };
/// ```
/// A read transaction `r` offers
/// - `r.get(key) -> std::optional<std::string_view>`: the value, or
///   `std::nullopt` when the key is absent (never an error). The view stays
///   valid until the next `put`/`erase` in the same transaction or its end;
/// - `r.scan(begin, end, fn)`: calls `fn(key, value) -> bool` for each key in
///   `[begin, end)` in ascending byte order (`end` empty = no upper bound),
///   stopping when `fn` returns false. Views are valid during the call only.
///
/// A write transaction `w` offers everything a read transaction does, plus
/// - `w.put(key, value)`: insert or overwrite;
/// - `w.erase(key) -> bool`: remove, true when the key was present;
/// - `w.commit()`: make every change durable and visible at once;
/// - `w.abort()`: discard every change. Destroying an uncommitted write
///   transaction aborts it.
///
/// Keys and values are byte strings (`std::string_view`), compared as unsigned
/// bytes. Failures throw `storage_error`; a transaction that failed is
/// discarded whole. A write transaction that runs out of space throws
/// `storage_error` with `errc::storage_full` after discarding its changes;
/// a store that can grow does so before the next `write()`, so the caller may
/// retry the transaction (the replica does, a bounded number of times).
///
/// ## Laws (tests/laws/store_laws.hpp runs them over every model)
/// - read-your-writes: inside a write transaction `get` and `scan` see its
///   own puts and erases;
/// - atomicity: after `abort()` (or destruction) nothing of the transaction is
///   visible; after `commit()` all of it is;
/// - isolation: a read transaction sees the state as of its start, whatever
///   commits later;
/// - order: `scan` visits keys in ascending unsigned-byte order, bounded by
///   `[begin, end)`;
/// - durability (persistent models): committed data survives reopening.
///
/// ## Models
/// `crdtsync::memory_store` (backends/memory), `crdtsync::lmdb_store`
/// (backends/lmdb) and the user store in examples/custom_store.cpp.

#include <concepts>
#include <optional>
#include <string_view>
#include <type_traits>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// The opt-in: a store declares `using kv_store_concept = crdtsync::kv_store_tag;`.
struct kv_store_tag {};

namespace detail {
// A concrete callable to check that `scan` accepts a visitor.
struct scan_probe {
    bool operator()(std::string_view, std::string_view) const noexcept { return true; }
};
} // namespace detail

/// True when `S` declares the opt-in tag.
template <class S>
concept kv_store_tagged = requires { typename S::kv_store_concept; } &&
                          std::derived_from<typename S::kv_store_concept, kv_store_tag>;

template <class T>
concept kv_read_transaction = requires(T& t, std::string_view k, detail::scan_probe fn) {
    { t.get(k) } -> std::same_as<std::optional<std::string_view>>;
    t.scan(k, k, fn);
};

template <class T>
concept kv_write_transaction = kv_read_transaction<T> && requires(T& t, std::string_view k) {
    t.put(k, k);
    { t.erase(k) } -> std::same_as<bool>;
    t.commit();
    t.abort();
};

/// A key-value store a replica can run on. See the file comment.
template <class S>
concept kv_store = kv_store_tagged<S> && requires(S& s) {
    { s.read() } -> kv_read_transaction;
    { s.write() } -> kv_write_transaction;
};

/// The read and write transaction types of a store.
template <kv_store S>
using read_transaction_t = decltype(std::declval<S&>().read());
template <kv_store S>
using write_transaction_t = decltype(std::declval<S&>().write());

/// Use in a template that takes a store, for a readable diagnostic:
/// `static_assert(crdtsync::check_kv_store<S>());`
template <class S>
consteval bool check_kv_store() {
    static_assert(kv_store_tagged<S>,
                  "crdtsync: this type is not a kv_store: it must opt in with "
                  "`using kv_store_concept = crdtsync::kv_store_tag;` (see crdtsync/store.hpp)");
    static_assert(!kv_store_tagged<S> || kv_store<S>,
                  "crdtsync: this type opts in to kv_store but lacks read()/write() transactions "
                  "with get/scan/put/erase/commit/abort as crdtsync/store.hpp describes");
    return true;
}

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
