#pragma once
/// \file lmdb_handles.hpp
/// RAII owners of LMDB's environment, transaction and cursor handles, and
/// the error translation shared by `crdtsync::lmdb_store`. Internal.

#include <cstddef>
#include <iterator>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include <sys/stat.h>

#include <lmdb.h>

#include <crdtsync/error.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace detail {

/// "64 MiB (67108864 bytes)": readable, and exact.
[[nodiscard]] inline std::string lmdb_size_text(std::size_t bytes) {
    const std::string exact = std::to_string(bytes) + " bytes";
    if (bytes < 1024) return exact;
    const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes) / 1024.0;
    std::size_t u = 0;
    while (v >= 1024.0 && u + 1 < std::size(units)) {
        v /= 1024.0;
        ++u;
    }
    const auto tenths = static_cast<unsigned long long>(v * 10.0 + 0.5);
    std::string num = std::to_string(tenths / 10);
    if (tenths % 10 != 0) {
        num += '.'; // (not `"." + std::to_string(...)`: g++ 12 warns wrongly on it, GCC bug 105329)
        num += std::to_string(tenths % 10);
    }
    return num + " " + units[u] + " (" + exact + ")";
}

/// Throws `storage_error` (`errc::storage`) naming the failed operation and
/// LMDB's own description of `rc`.
[[noreturn]] inline void lmdb_raise(int rc, std::string_view what) {
    raise(errc::storage, "LMDB " + std::string(what) + " failed: " + mdb_strerror(rc) + " (error " +
                             std::to_string(rc) + ")");
}

inline void lmdb_check(int rc, std::string_view what) {
    if (rc != MDB_SUCCESS) lmdb_raise(rc, what);
}

[[nodiscard]] inline MDB_val lmdb_val(std::string_view bytes) noexcept {
    // LMDB takes `void*` but never writes through a key or a value to put.
    return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

[[nodiscard]] inline std::string_view lmdb_view(const MDB_val& v) noexcept {
    return {static_cast<const char*>(v.mv_data), v.mv_size};
}

/// Owns an `MDB_env`.
class lmdb_env {
public:
    lmdb_env() { lmdb_check(mdb_env_create(&env_), "environment creation"); }
    lmdb_env(const lmdb_env&) = delete;
    lmdb_env& operator=(const lmdb_env&) = delete;
    ~lmdb_env() { close(); }

    [[nodiscard]] MDB_env* get() const noexcept { return env_; }
    void close() noexcept {
        if (env_ != nullptr) mdb_env_close(std::exchange(env_, nullptr));
    }

private:
    MDB_env* env_ = nullptr;
};

/// Owns an `MDB_txn`: aborts it unless it was committed or released.
class lmdb_txn {
public:
    lmdb_txn() noexcept = default;
    explicit lmdb_txn(MDB_txn* txn) noexcept : txn_(txn) {}
    lmdb_txn(lmdb_txn&& other) noexcept : txn_(std::exchange(other.txn_, nullptr)) {}
    lmdb_txn& operator=(lmdb_txn&& other) noexcept {
        if (this != &other) {
            abort();
            txn_ = std::exchange(other.txn_, nullptr);
        }
        return *this;
    }
    lmdb_txn(const lmdb_txn&) = delete;
    lmdb_txn& operator=(const lmdb_txn&) = delete;
    ~lmdb_txn() { abort(); }

    [[nodiscard]] MDB_txn* get() const noexcept { return txn_; }
    [[nodiscard]] explicit operator bool() const noexcept { return txn_ != nullptr; }

    /// Commits; LMDB frees the handle whether or not the commit succeeds,
    /// so this one is empty afterwards in every case.
    [[nodiscard]] int commit() noexcept { return mdb_txn_commit(std::exchange(txn_, nullptr)); }

    void abort() noexcept {
        if (txn_ != nullptr) mdb_txn_abort(std::exchange(txn_, nullptr));
    }

private:
    MDB_txn* txn_ = nullptr;
};

/// Owns an `MDB_cursor`. Must be destroyed before its transaction ends.
class lmdb_cursor {
public:
    lmdb_cursor(MDB_txn* txn, MDB_dbi dbi) { lmdb_check(mdb_cursor_open(txn, dbi, &cursor_), "cursor open"); }
    lmdb_cursor(const lmdb_cursor&) = delete;
    lmdb_cursor& operator=(const lmdb_cursor&) = delete;
    ~lmdb_cursor() { mdb_cursor_close(cursor_); }

    [[nodiscard]] int get(MDB_val& key, MDB_val& value, MDB_cursor_op op) noexcept {
        return mdb_cursor_get(cursor_, &key, &value, op);
    }

private:
    MDB_cursor* cursor_ = nullptr;
};

/// The files this process has open as LMDB environments. LMDB forbids
/// opening one file twice in a process: closing the second would drop the
/// first's POSIX locks. So a second open is refused instead.
class lmdb_open_files {
public:
    using file_id = std::pair<dev_t, ino_t>;

    [[nodiscard]] static lmdb_open_files& instance() {
        static lmdb_open_files files;
        return files;
    }
    [[nodiscard]] std::unique_lock<std::mutex> lock() { return std::unique_lock<std::mutex>(mutex_); }

    // The caller holds the lock for these.
    [[nodiscard]] bool contains(const file_id& id) const { return open_.count(id) != 0; }
    void add(const file_id& id) { open_.insert(id); }
    void remove(const file_id& id) noexcept { open_.erase(id); }

private:
    std::mutex mutex_;
    std::set<file_id> open_;
};

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
