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
/// ## Laws (<crdtsync/testing/store_laws.hpp> runs them over every model)
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
#include <utility>

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

// The operations one by one, so that check_kv_store can name the one that
// is missing or mistyped; the concepts below are their conjunctions.
namespace detail {
template <class T>
concept kv_has_get = requires(T& t, std::string_view k) {
    { t.get(k) } -> std::same_as<std::optional<std::string_view>>;
};
template <class T>
concept kv_has_scan = requires(T& t, std::string_view k, scan_probe fn) { t.scan(k, k, fn); };
template <class T>
concept kv_has_put = requires(T& t, std::string_view k) { t.put(k, k); };
template <class T>
concept kv_has_erase = requires(T& t, std::string_view k) {
    { t.erase(k) } -> std::same_as<bool>;
};
template <class T>
concept kv_has_commit = requires(T& t) { t.commit(); };
template <class T>
concept kv_has_abort = requires(T& t) { t.abort(); };
template <class S>
concept kv_has_read = requires(S& s) { s.read(); };
template <class S>
concept kv_has_write = requires(S& s) { s.write(); };

// The transaction types, or void when the store lacks the operation (void
// satisfies none of the kv_has_* concepts, and names no type to diagnose).
template <class S>
struct kv_read_txn {
    using type = void;
};
template <kv_has_read S>
struct kv_read_txn<S> {
    using type = decltype(std::declval<S&>().read());
};
template <class S>
struct kv_write_txn {
    using type = void;
};
template <kv_has_write S>
struct kv_write_txn<S> {
    using type = decltype(std::declval<S&>().write());
};
} // namespace detail

template <class T>
concept kv_read_transaction = detail::kv_has_get<T> && detail::kv_has_scan<T>;

template <class T>
concept kv_write_transaction = kv_read_transaction<T> && detail::kv_has_put<T> && detail::kv_has_erase<T> &&
                               detail::kv_has_commit<T> && detail::kv_has_abort<T>;

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
/// `static_assert(crdtsync::check_kv_store<S>());`. Each missing or mistyped
/// operation fails its own assertion, whose message names the operation and
/// the signature expected; an operation of a transaction that is itself
/// missing is not reported twice. A type without the opt-in gets the opt-in
/// message only.
template <class S>
consteval bool check_kv_store() {
    constexpr bool tagged = kv_store_tagged<S>;
    static_assert(tagged,
                  "crdtsync: this type is not a kv_store: it must opt in with "
                  "`using kv_store_concept = crdtsync::kv_store_tag;` (see crdtsync/store.hpp)");

    constexpr bool has_read = detail::kv_has_read<S>;
    constexpr bool has_write = detail::kv_has_write<S>;
    using r = typename detail::kv_read_txn<S>::type;
    using w = typename detail::kv_write_txn<S>::type;
    static_assert(!tagged || has_read,
                  "crdtsync: kv_store: read() is missing: expected `read_txn read()`, "
                  "returning a read transaction (see crdtsync/store.hpp)");
    static_assert(!tagged || has_write,
                  "crdtsync: kv_store: write() is missing: expected `write_txn write()`, "
                  "returning the write transaction (see crdtsync/store.hpp)");

    static_assert(!tagged || !has_read || detail::kv_has_get<r>,
                  "crdtsync: kv_store: the read transaction's get is missing or mistyped: expected "
                  "`std::optional<std::string_view> get(std::string_view key)`");
    static_assert(!tagged || !has_read || detail::kv_has_scan<r>,
                  "crdtsync: kv_store: the read transaction's scan is missing or mistyped: expected "
                  "`scan(std::string_view begin, std::string_view end, Fn fn)` calling "
                  "`bool fn(std::string_view key, std::string_view value)`");

    static_assert(!tagged || !has_write || detail::kv_has_get<w>,
                  "crdtsync: kv_store: the write transaction's get is missing or mistyped: expected "
                  "`std::optional<std::string_view> get(std::string_view key)`");
    static_assert(!tagged || !has_write || detail::kv_has_scan<w>,
                  "crdtsync: kv_store: the write transaction's scan is missing or mistyped: expected "
                  "`scan(std::string_view begin, std::string_view end, Fn fn)` calling "
                  "`bool fn(std::string_view key, std::string_view value)`");
    static_assert(!tagged || !has_write || detail::kv_has_put<w>,
                  "crdtsync: kv_store: the write transaction's put is missing or mistyped: expected "
                  "`put(std::string_view key, std::string_view value)`");
    static_assert(!tagged || !has_write || detail::kv_has_erase<w>,
                  "crdtsync: kv_store: the write transaction's erase is missing or mistyped: expected "
                  "`bool erase(std::string_view key)`, true when the key was present");
    static_assert(!tagged || !has_write || detail::kv_has_commit<w>,
                  "crdtsync: kv_store: the write transaction's commit is missing or mistyped: expected "
                  "`commit()`, callable without arguments");
    static_assert(!tagged || !has_write || detail::kv_has_abort<w>,
                  "crdtsync: kv_store: the write transaction's abort is missing or mistyped: expected "
                  "`abort()`, callable without arguments");
    return true;
}

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
