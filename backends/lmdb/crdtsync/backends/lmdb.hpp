#pragma once
/// \file lmdb.hpp
/// `crdtsync::lmdb_store`: a persistent `kv_store` over LMDB (links liblmdb).
///
/// One store is one file (plus a lock file beside it, the same path with
/// `-lock` appended). Transactions are LMDB's own: a read transaction is an
/// MVCC snapshot, the single write transaction commits atomically and, with
/// the default `lmdb_sync::durable`, durably.
///
/// LMDB maps the file into memory with a fixed upper size, the map size.
/// When a write transaction needs more, it is aborted and `storage_error`
/// with `errc::storage_full` is thrown; the store then doubles the map size
/// (up to `lmdb_options::max_map_size`) before the next `write()`, so the
/// caller can retry the transaction. A full disk is `errc::storage_full` too.
///
/// A damaged file (truncated, its header overwritten, not an LMDB file) is
/// refused when opened with `storage_error` and `errc::corrupt`, rather than
/// read through the map: LMDB trusts its metadata, and reading a page the
/// metadata counts but a truncated file lacks kills the process with SIGBUS.
/// Pages overwritten inside the file are refused at open too with
/// `lmdb_options::verify_on_open` (a walk of the whole file; off by default
/// for its cost), and can crash the process inside LMDB without it; see
/// docs/store.md, "Damage inside the pages".
///
/// Threading: a `lmdb_store` and all its transactions are used by one thread
/// at a time. Several processes may open the same file; one process opens a
/// file once (a second `lmdb_store` on the same file throws).

#include <algorithm>
#include <cerrno>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lmdb.h>

#include <crdtsync/backends/detail/lmdb_handles.hpp>
#include <crdtsync/backends/detail/lmdb_verify.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/store.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// How hard a commit works to reach the disk. Each level trades a risk on
/// a crash of the machine (not of the process: a process crash never loses
/// a committed transaction) for commit speed.
enum class lmdb_sync {
    /// Flush data and metadata at every commit. A committed transaction
    /// survives a power loss. The default.
    durable,
    /// Flush the data but not the metadata page at commit (`MDB_NOMETASYNC`).
    /// A system crash may undo the last committed transaction; the database
    /// stays intact.
    no_meta_sync,
    /// Do not flush at commit (`MDB_NOSYNC`); the OS writes back when it
    /// likes, or `lmdb_store::sync()` forces it. A system crash may undo the
    /// transactions committed since the last flush; on a file system that
    /// does not keep write order it may corrupt the database.
    no_sync,
};

/// Everything configurable about a `lmdb_store`.
struct lmdb_options {
    /// The database file. Its directory must exist. The lock file is
    /// `path + "-lock"`.
    std::string path;
    /// The map size to start with. A file that has grown larger keeps its
    /// size. Rounded up to whole pages.
    std::size_t map_size = std::size_t{64} << 20; // 64 MiB
    /// The map never grows beyond this: the write that needs more fails with
    /// `errc::storage_full`. Map space is address space, not memory or disk:
    /// a large value costs nothing until the data is there.
    std::size_t max_map_size = sizeof(void*) >= 8 ? std::size_t{1} << 40  // 1 TiB
                                                  : std::size_t{1} << 30; // 1 GiB
    /// Flushing at commit; see `lmdb_sync`.
    lmdb_sync sync = lmdb_sync::durable;
    /// How many read transactions may be open at once, over all processes.
    unsigned max_readers = 126;
    /// Permissions of newly created files.
    unsigned file_mode = 0644;
    /// Check the whole file's structure when opening it, as
    /// `lmdb_store::verify` does: a page overwritten with garbage then gives
    /// `storage_error` with `errc::corrupt` at open instead of crashing the
    /// process later inside LMDB. Reads every page in use once (about the
    /// time of reading the file; docs/store.md has figures), so it is off by
    /// default; turn it on where a damaged file is likely (removable or
    /// unreliable storage, files copied in by users) or opening is rare.
    bool verify_on_open = false;
};

/// What `lmdb_store::verify` walked in a sound file.
struct lmdb_verify_counts {
    std::uint64_t pages = 0;     ///< pages of the snapshot: its last page number + 1 (two are meta pages)
    std::uint64_t in_use = 0;    ///< pages of the trees (branch, leaf and overflow pages)
    std::uint64_t free = 0;      ///< pages listed as free space
    std::uint64_t entries = 0;   ///< entries of the main database
    std::uint64_t databases = 0; ///< named databases (a `lmdb_store` itself makes none)
    /// Pages neither in a tree nor listed free: leaked space (LMDB never
    /// reads them, so they are not refused). 0 in files LMDB 0.9 wrote whole.
    std::uint64_t lost = 0;
};

/// A persistent `kv_store` over LMDB.
///
/// ```
/// crdtsync::lmdb_store store{"./replica.db"};
/// auto w = store.write();
/// w.put("k", "v");
/// w.commit();
/// ```
/// One write transaction at a time: opening a second while one is open
/// throws `usage_error`. Keys are 1 to `max_key_size()` (511) bytes: `put`
/// of an empty or longer key throws `usage_error` (`errc::invalid_argument`)
/// and changes nothing; such a key is never found by `get` or `erase`.
/// Values may be empty and up to 4 GiB. Every LMDB failure is a
/// `storage_error` naming the operation and LMDB's reason: `errc::corrupt`
/// when the file is damaged, `errc::storage_full` when the map or the disk
/// is full, `errc::storage` for the rest.
///
/// Not copyable or movable: transactions refer to their store.
class lmdb_store {
public:
    /// The opt-in to `kv_store`.
    using kv_store_concept = kv_store_tag;

    class read_txn;
    class write_txn;

    /// Opens (creating if needed) the store at `path` with default options.
    explicit lmdb_store(std::string path) : lmdb_store(lmdb_options{std::move(path)}) {}

    /// Opens (creating if needed) the store `options.path`. An empty file is
    /// a new store. A file that is not an LMDB database, or is shorter than
    /// its metadata says (truncated), throws `storage_error` with
    /// `errc::corrupt` and is left as it was.
    explicit lmdb_store(lmdb_options options) : options_(std::move(options)) { open(); }

    lmdb_store(const lmdb_store&) = delete;
    lmdb_store& operator=(const lmdb_store&) = delete;

    /// Closes the environment. Every transaction must have ended.
    ~lmdb_store() {
        auto& files = detail::lmdb_open_files::instance();
        auto lock = files.lock();
        env_.close();
        files.remove(file_id_);
    }

    /// Opens a read transaction: a snapshot of the committed state.
    [[nodiscard]] read_txn read();

    /// Opens the write transaction, first growing the map if a transaction
    /// ran out of space. Throws `usage_error` when one is already open.
    [[nodiscard]] write_txn write();

    /// Flushes committed data to disk; what makes commits durable under
    /// `lmdb_sync::no_sync` and `no_meta_sync`.
    void sync() {
        if (const int rc = mdb_env_sync(env_.get(), 1); rc != MDB_SUCCESS) {
            if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG) {
                detail::raise(errc::storage_full, "LMDB sync of '" + options_.path + "' failed: " + mdb_strerror(rc) +
                                                      "; free space on its file system, then sync again");
            }
            detail::lmdb_raise(rc, "sync of '" + options_.path + "'");
        }
    }

    /// Checks the structure of the whole file as of now, reading it with
    /// `pread` rather than through LMDB (LMDB keeps no checksums and trusts
    /// every page, so a damaged one can crash the process): every page of
    /// every tree (the main database, named databases, duplicates, the
    /// free-space list) is inside the file, of the kind its place needs,
    /// with its nodes inside it and its keys in order, and no page is used
    /// twice (a page neither used nor free is only counted, in `lost`). Throws `storage_error` with `errc::corrupt` naming
    /// the first damaged page and what is wrong with it (`errc::storage`
    /// when the file cannot be read). Reads every page in use once, inside
    /// a read transaction; may run while other processes write. It checks
    /// structure, not values: wrong bytes inside a value are left to the
    /// replica's decoders.
    lmdb_verify_counts verify() { return walk_file(); }

    /// The current map size in bytes.
    [[nodiscard]] std::size_t map_size() const noexcept { return map_size_; }

    /// The longest key LMDB stores (511 bytes in standard builds).
    [[nodiscard]] std::size_t max_key_size() const noexcept { return max_key_; }

    /// The options the store was opened with.
    [[nodiscard]] const lmdb_options& options() const noexcept { return options_; }

    /// The LMDB environment, for tools that need LMDB directly (statistics,
    /// hot backup with `mdb_env_copy`). Do not change the map size or close it.
    [[nodiscard]] MDB_env* native_handle() const noexcept { return env_.get(); }

private:
    [[nodiscard]] static std::size_t page_size() noexcept {
        const long p = ::sysconf(_SC_PAGESIZE);
        return p > 0 ? static_cast<std::size_t>(p) : 4096;
    }
    [[nodiscard]] static std::size_t round_to_pages(std::size_t n) noexcept {
        const std::size_t p = page_size();
        return n % p == 0 ? n : n + (p - n % p);
    }

    void open() {
        if (options_.path.empty()) detail::raise(errc::invalid_argument, "lmdb_store: the path is empty");
        if (options_.map_size == 0) detail::raise(errc::invalid_argument, "lmdb_store: map_size is 0");
        if (options_.max_map_size < options_.map_size) {
            detail::raise(errc::invalid_argument, "lmdb_store: max_map_size, " +
                                                      detail::lmdb_size_text(options_.max_map_size) +
                                                      ", is below map_size, " +
                                                      detail::lmdb_size_text(options_.map_size));
        }
        const std::string where = " of '" + options_.path + "'";
        MDB_env* env = env_.get();
        detail::lmdb_check(mdb_env_set_maxreaders(env, options_.max_readers), "setting max_readers" + where);
        unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
        switch (options_.sync) {
        case lmdb_sync::durable: break;
        case lmdb_sync::no_meta_sync: flags |= MDB_NOMETASYNC; break;
        case lmdb_sync::no_sync: flags |= MDB_NOSYNC; break;
        }

        auto& files = detail::lmdb_open_files::instance();
        auto lock = files.lock();
        struct ::stat st {};
        const bool exists = ::stat(options_.path.c_str(), &st) == 0;
        if (exists && files.contains({st.st_dev, st.st_ino})) {
            detail::raise(errc::invalid_argument, "lmdb_store: '" + options_.path +
                                                      "' is already open in this process (LMDB allows "
                                                      "one open per file and process; share that store)");
        }
        // A new file starts at map_size. An existing one is opened without a
        // configured size, so that LMDB adopts the size the file records: a
        // store that grew keeps its size when reopened.
        if (!exists) {
            detail::lmdb_check(mdb_env_set_mapsize(env, round_to_pages(options_.map_size)), "setting the map size" + where);
        }
        if (const int rc = mdb_env_open(env, options_.path.c_str(), flags, static_cast<mdb_mode_t>(options_.file_mode));
            rc != MDB_SUCCESS) {
            raise_open_failure(rc);
        }
        check_file_size();
        if (options_.verify_on_open) verify_at_open();
        refresh_map_size();
        if (const std::size_t wanted = round_to_pages(options_.map_size); map_size_ < wanted) {
            detail::lmdb_check(mdb_env_set_mapsize(env, wanted), "setting the map size" + where);
            refresh_map_size();
        }
        max_key_ = static_cast<std::size_t>(mdb_env_get_maxkeysize(env));

        MDB_txn* txn = nullptr;
        detail::lmdb_check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "opening a transaction" + where);
        detail::lmdb_txn owner(txn);
        detail::lmdb_check(mdb_dbi_open(txn, nullptr, 0, &dbi_), "opening the database" + where);
        detail::lmdb_check(owner.commit(), "opening the database" + where);

        mdb_filehandle_t fd{};
        detail::lmdb_check(mdb_env_get_fd(env, &fd), "getting the file" + where);
        if (::fstat(fd, &st) != 0) detail::raise(errc::storage, "cannot stat '" + options_.path + "'");
        file_id_ = {st.st_dev, st.st_ino};
        files.add(file_id_);
    }

    // What to do about a damaged file, for the messages.
    static constexpr std::string_view restore_advice =
        "restore the file from a backup, or remove it and re-bootstrap the replica from a peer's snapshot";

    // A file size for messages, exact even where it exceeds size_t.
    [[nodiscard]] static std::string size_text(std::uint64_t bytes) {
        if (bytes > std::numeric_limits<std::size_t>::max()) return std::to_string(bytes) + " bytes";
        return detail::lmdb_size_text(static_cast<std::size_t>(bytes));
    }

    // The size of the file at the path now, for messages.
    [[nodiscard]] std::string file_size_text() const {
        struct ::stat st {};
        if (::stat(options_.path.c_str(), &st) != 0) return "of unknown size";
        return size_text(static_cast<std::uint64_t>(st.st_size));
    }

    // mdb_env_open failed; LMDB has closed the files again.
    [[noreturn]] void raise_open_failure(int rc) const {
        const std::string head = "cannot open LMDB store '" + options_.path + "': ";
        const std::string lmdb = std::string(mdb_strerror(rc)) + " (error " + std::to_string(rc) + ")";
        switch (rc) {
        case MDB_INVALID:
            // LMDB could not read two meta pages with its magic number: the
            // file is shorter than its header, or holds something else.
            detail::raise(errc::corrupt, head + "the file, " + file_size_text() +
                                             ", is not an LMDB database: its header is missing, cut short or "
                                             "overwritten (" + lmdb + "). If the path is right, the file is damaged: " +
                                             std::string(restore_advice));
        case MDB_CORRUPTED:
        case MDB_PAGE_NOTFOUND:
            detail::raise(errc::corrupt, head + "the file is damaged (" + lmdb + "); " + std::string(restore_advice));
        case MDB_VERSION_MISMATCH:
            // A meta page with LMDB's magic but another data format version,
            // or a lock file in use by a process with an incompatible LMDB
            // build: nothing to restore, so not `corrupt`.
            detail::raise(errc::format_version,
                          head + "its data or lock file has a format this LMDB (" +
                              mdb_version(nullptr, nullptr, nullptr) + ") cannot use (" + lmdb +
                              "): it was written by an incompatible LMDB version, or a process using one has it open");
        default: break;
        }
        detail::raise(errc::storage, head + lmdb);
    }

    // LMDB reads pages through the map and trusts the metadata about how
    // many there are. A page the metadata counts but a truncated file lacks
    // is past the end of the mapped file, and touching it is SIGBUS, which
    // no error code reports. So the file must hold every page up to the
    // metadata's last one, (me_last_pgno + 1) * page size bytes. Until
    // then only the two meta pages are read, and mdb_env_open has read them
    // with pread already. A size that is not a whole number of pages is fine beyond
    // that: a commit cut short by a full disk leaves a part-written page
    // past the last one (LMDB then rewrites it whole). This cannot mistake
    // another process's commit for a truncation: the file never shrinks,
    // and a commit writes its pages before the metadata that counts them,
    // which is read here before the file's size is.
    void check_file_size() {
        MDB_env* env = env_.get();
        const std::string where = " of '" + options_.path + "'";
        MDB_envinfo info{};
        MDB_stat stat{};
        detail::lmdb_check(mdb_env_info(env, &info), "reading the metadata" + where);
        detail::lmdb_check(mdb_env_stat(env, &stat), "reading the metadata" + where);
        mdb_filehandle_t fd{};
        detail::lmdb_check(mdb_env_get_fd(env, &fd), "getting the file" + where);
        struct ::stat st {};
        if (::fstat(fd, &st) != 0) detail::raise(errc::storage, "cannot stat '" + options_.path + "'");
        const auto file_size = static_cast<std::uint64_t>(st.st_size);
        const std::uint64_t page = stat.ms_psize;
        const std::uint64_t last = info.me_last_pgno;
        // (last + 1) * page <= file_size, without overflow.
        if (page != 0 && last < file_size / page) return;
        env_.close();
        const std::string pages = std::to_string(last + 1) + " pages of " + std::to_string(page) + " bytes";
        const std::string needed = page != 0 && last < std::numeric_limits<std::uint64_t>::max() / page
                                       ? size_text((last + 1) * page) + ", " + pages
                                       : "more than any file holds (" + pages + ")";
        detail::raise(errc::corrupt, "cannot open LMDB store '" + options_.path + "': the file is damaged: it is " +
                                         size_text(file_size) + " but LMDB's metadata says it holds " + needed +
                                         ", so it was truncated (a copy or restore cut short, a file system "
                                         "repair) and reading it would crash the process; " +
                                         std::string(restore_advice));
    }

    // The structural walk of lmdb_verify.hpp, over the snapshot of a read
    // transaction held meanwhile (so that no writer reuses its pages).
    // Before the transaction began, another process may have committed;
    // after it, the snapshot's meta page is rewritten only by two more
    // commits, and then the walk starts again on a newer snapshot.
    [[nodiscard]] lmdb_verify_counts walk_file() {
        MDB_env* env = env_.get();
        const std::string where = " of '" + options_.path + "'";
        MDB_stat stat{};
        detail::lmdb_check(mdb_env_stat(env, &stat), "reading the metadata" + where);
        mdb_filehandle_t fd{};
        detail::lmdb_check(mdb_env_get_fd(env, &fd), "getting the file" + where);
        const std::size_t max_key = static_cast<std::size_t>(mdb_env_get_maxkeysize(env));
        detail::lmdb_walk_result result;
        for (int attempt = 0; attempt < 4; ++attempt) {
            const detail::lmdb_txn txn = begin(MDB_RDONLY, "opening a transaction to verify the file");
            struct ::stat st {};
            if (::fstat(fd, &st) != 0) detail::raise(errc::storage, "cannot stat '" + options_.path + "'");
            result = detail::lmdb_walker(fd, static_cast<std::uint64_t>(st.st_size), stat.ms_psize,
                                         static_cast<std::uint64_t>(mdb_txn_id(txn.get())), max_key)
                         .run();
            if (!result.retry) break;
        }
        if (result.code) {
            const std::string head = "LMDB store '" + options_.path + "' ";
            if (*result.code == errc::storage) detail::raise(errc::storage, head + "could not be verified: " + result.problem);
            detail::raise(errc::corrupt, head + "is damaged: " + result.problem +
                                             (result.retry ? " (the file changed under every attempt to check it)" : "") +
                                             "; " + std::string(restore_advice));
        }
        return {result.counts.pages, result.counts.in_use, result.counts.free, result.counts.entries,
                result.counts.databases, result.counts.lost};
    }

    // lmdb_options::verify_on_open: a damaged file is refused before LMDB
    // reads any page of it but the metas.
    void verify_at_open() {
        try {
            (void)walk_file();
        } catch (const error&) {
            env_.close();
            throw;
        }
    }

    // Raises the failure `rc` of the LMDB operation `what` on this store's
    // file. A page that is missing or not the kind the tree expects means
    // the file is damaged.
    [[noreturn]] void raise_lmdb(int rc, std::string_view what) const {
        const std::string what_where = std::string(what) + " on '" + options_.path + "'";
        if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND) {
            detail::raise(errc::corrupt, "LMDB " + what_where + " failed: " + mdb_strerror(rc) + " (error " +
                                             std::to_string(rc) + "): the file is damaged; " +
                                             std::string(restore_advice));
        }
        detail::lmdb_raise(rc, what_where);
    }
    void check(int rc, std::string_view what) const {
        if (rc != MDB_SUCCESS) raise_lmdb(rc, what);
    }

    // The bytes an unprivileged writer may still use on the file system
    // holding the store, if it can be told.
    [[nodiscard]] std::optional<std::size_t> free_space() const noexcept {
        mdb_filehandle_t fd{};
        struct ::statvfs fs {};
        if (mdb_env_get_fd(env_.get(), &fd) != MDB_SUCCESS || ::fstatvfs(fd, &fs) != 0) return std::nullopt;
        const std::uint64_t bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
        return static_cast<std::size_t>(std::min<std::uint64_t>(bytes, std::numeric_limits<std::size_t>::max()));
    }

    void refresh_map_size() noexcept {
        MDB_envinfo info{};
        if (mdb_env_info(env_.get(), &info) == MDB_SUCCESS) map_size_ = info.me_mapsize;
    }

    // Begins an LMDB transaction, adopting a map size another process grew.
    [[nodiscard]] detail::lmdb_txn begin(unsigned flags, std::string_view what) {
        MDB_txn* txn = nullptr;
        int rc = mdb_txn_begin(env_.get(), nullptr, flags, &txn);
        if (rc == MDB_MAP_RESIZED && open_readers_ == 0 && !writing_) {
            detail::lmdb_check(mdb_env_set_mapsize(env_.get(), 0), "adopting the map size another process set");
            refresh_map_size();
            rc = mdb_txn_begin(env_.get(), nullptr, flags, &txn);
        }
        check(rc, what);
        return detail::lmdb_txn(txn);
    }

    // A write ran out of map space: plan the growth and describe it.
    [[nodiscard]] std::string map_full(std::string_view during) {
        std::string text = "LMDB map of '" + options_.path + "' is full at " + detail::lmdb_size_text(map_size_) +
                              " during " + std::string(during) +
                              "; the transaction was aborted and nothing of it was written. ";
        if (map_size_ >= options_.max_map_size) {
            grow_to_ = 0;
            return text + "The map is at its maximum size, lmdb_options::max_map_size = " +
                   detail::lmdb_size_text(options_.max_map_size) + ", and cannot grow: raise max_map_size";
        }
        const std::size_t doubled = map_size_ > options_.max_map_size / 2 ? options_.max_map_size : map_size_ * 2;
        grow_to_ = std::max(grow_to_, doubled);
        text += "The map grows to " + detail::lmdb_size_text(grow_to_) + " before the next write transaction";
        if (open_readers_ != 0) text += " once this store's open read transactions have ended";
        return text + ": retry the transaction";
    }

    // Grows the map if a write asked for it and nothing maps it now.
    void grow_if_due() {
        if (grow_to_ == 0 || open_readers_ != 0 || writing_) return;
        const std::size_t target = std::exchange(grow_to_, 0);
        detail::lmdb_check(mdb_env_set_mapsize(env_.get(), target),
                           "growing the map of '" + options_.path + "' to " + detail::lmdb_size_text(target));
        refresh_map_size();
    }

    void end_read() noexcept {
        --open_readers_;
        if (open_readers_ == 0 && !writing_ && grow_to_ != 0) {
            try {
                grow_if_due();
            } catch (const error&) {
                // The next write() grows instead, and reports a failure there.
            }
        }
    }

    [[nodiscard]] std::string_view check_key(std::string_view key) const {
        if (key.empty()) detail::raise(errc::invalid_argument, "lmdb_store: LMDB cannot store an empty key");
        if (key.size() > max_key_) {
            detail::raise(errc::invalid_argument, "lmdb_store: a key of " + std::to_string(key.size()) +
                                                      " bytes is longer than LMDB's maximum key size of " +
                                                      std::to_string(max_key_) + " bytes");
        }
        return key;
    }
    // A key LMDB could never hold, so it is absent without asking.
    [[nodiscard]] bool unstorable(std::string_view key) const noexcept { return key.empty() || key.size() > max_key_; }

    [[nodiscard]] std::optional<std::string_view> get(MDB_txn* txn, std::string_view key) const {
        if (unstorable(key)) return std::nullopt;
        MDB_val k = detail::lmdb_val(key);
        MDB_val v{};
        const int rc = mdb_get(txn, dbi_, &k, &v);
        if (rc == MDB_NOTFOUND) return std::nullopt;
        check(rc, "get");
        return detail::lmdb_view(v);
    }

    // Visits [begin, end). With `mutations` (write transactions), a callback
    // that changed the transaction makes the cursor find its place again by
    // key, rather than rely on LMDB adjusting it. `key_copy` keeps the place.
    template <class Fn>
    void scan(MDB_txn* txn, std::string_view begin, std::string_view end, Fn& fn, const std::uint64_t* mutations,
              const bool* failed) const {
        detail::lmdb_cursor cursor(txn, dbi_);
        std::string key_copy;
        MDB_val k{};
        MDB_val v{};
        auto seek = [&](std::string_view at) {
            if (at.empty()) return cursor.get(k, v, MDB_FIRST);
            // A bound longer than any key: seek its prefix and skip below.
            k = detail::lmdb_val(at.substr(0, max_key_));
            return cursor.get(k, v, MDB_SET_RANGE);
        };
        int rc = seek(begin);
        for (;;) {
            if (rc == MDB_NOTFOUND) return;
            check(rc, "scan");
            const std::string_view key = detail::lmdb_view(k);
            if (key < begin) {
                rc = cursor.get(k, v, MDB_NEXT);
                continue;
            }
            if (!end.empty() && !(key < end)) return;
            const std::uint64_t before = mutations != nullptr ? *mutations : 0;
            if (mutations != nullptr) key_copy.assign(key);
            if (!std::invoke(fn, key, detail::lmdb_view(v))) return;
            if (failed != nullptr && *failed) return; // the callback caught a failure of the transaction
            if (mutations != nullptr && *mutations != before) {
                rc = seek(key_copy);
                if (rc == MDB_SUCCESS && detail::lmdb_view(k) == key_copy) rc = cursor.get(k, v, MDB_NEXT);
                continue;
            }
            rc = cursor.get(k, v, MDB_NEXT);
        }
    }

    lmdb_options options_;
    detail::lmdb_env env_;
    MDB_dbi dbi_ = 0;
    std::size_t max_key_ = 0;
    std::size_t map_size_ = 0;
    std::size_t grow_to_ = 0; // nonzero: grow to this before the next write
    std::size_t open_readers_ = 0;
    bool writing_ = false;
    detail::lmdb_open_files::file_id file_id_{};
};

/// A read transaction of a `lmdb_store`: LMDB's snapshot of the committed
/// state at the time it began. Views it returns stay valid until it ends.
/// Move-only; ends when destroyed.
class lmdb_store::read_txn {
public:
    read_txn(read_txn&& other) noexcept
        : store_(std::exchange(other.store_, nullptr)), txn_(std::move(other.txn_)) {}
    read_txn& operator=(read_txn&& other) noexcept {
        if (this != &other) {
            release();
            store_ = std::exchange(other.store_, nullptr);
            txn_ = std::move(other.txn_);
        }
        return *this;
    }
    read_txn(const read_txn&) = delete;
    read_txn& operator=(const read_txn&) = delete;
    ~read_txn() { release(); }

    /// The value of `key`, or `std::nullopt` when absent.
    [[nodiscard]] std::optional<std::string_view> get(std::string_view key) const {
        return store().get(txn_.get(), key);
    }

    /// Calls `fn(key, value) -> bool` for each key in `[begin, end)` in
    /// ascending order (`end` empty: no upper bound), until `fn` returns false.
    template <class Fn>
    void scan(std::string_view begin, std::string_view end, Fn&& fn) const {
        store().scan(txn_.get(), begin, end, fn, nullptr, nullptr);
    }

private:
    friend class lmdb_store;
    read_txn(lmdb_store& store, detail::lmdb_txn txn) noexcept : store_(&store), txn_(std::move(txn)) {}

    [[nodiscard]] const lmdb_store& store() const {
        if (store_ == nullptr) detail::raise(errc::invalid_argument, "lmdb_store: the read transaction has ended");
        return *store_;
    }
    void release() noexcept {
        if (store_ == nullptr) return;
        txn_.abort();
        std::exchange(store_, nullptr)->end_read();
    }

    lmdb_store* store_;
    detail::lmdb_txn txn_;
};

/// The write transaction of a `lmdb_store`. Sees its own changes; nothing
/// of it is visible to readers before `commit()`. Destroying it without
/// `commit()` aborts it. Move-only.
///
/// A failure (`storage_error`) discards the whole transaction. After
/// `commit()`, `abort()` or a failure the transaction has ended: `abort()`
/// again does nothing, anything else throws `usage_error`.
class lmdb_store::write_txn {
public:
    write_txn(write_txn&& other) noexcept
        : store_(std::exchange(other.store_, nullptr)), txn_(std::move(other.txn_)), mutations_(other.mutations_),
          scans_(std::exchange(other.scans_, 0)), failed_(std::exchange(other.failed_, false)),
          cursors_(std::exchange(other.cursors_, {})) {}
    write_txn& operator=(write_txn&& other) noexcept {
        if (this != &other) {
            discard();
            store_ = std::exchange(other.store_, nullptr);
            txn_ = std::move(other.txn_);
            mutations_ = other.mutations_;
            scans_ = std::exchange(other.scans_, 0);
            failed_ = std::exchange(other.failed_, false);
            cursors_ = std::exchange(other.cursors_, {});
        }
        return *this;
    }
    write_txn(const write_txn&) = delete;
    write_txn& operator=(const write_txn&) = delete;
    ~write_txn() { discard(); }

    /// The value of `key` including this transaction's changes. The view is
    /// valid until the next `put`/`erase` or the end of the transaction.
    [[nodiscard]] std::optional<std::string_view> get(std::string_view key) const {
        const auto& s = store();
        if (s.unstorable(key)) return std::nullopt;
        MDB_val k = detail::lmdb_val(key);
        MDB_val v{};
        const int rc = mdb_cursor_get(cursor_for(key), &k, &v, MDB_SET_KEY);
        if (rc == MDB_NOTFOUND) return std::nullopt;
        if (rc != MDB_SUCCESS) fail(rc, "get");
        return detail::lmdb_view(v);
    }

    /// Visits `[begin, end)` in ascending order including this transaction's
    /// changes. `fn` may put and erase (the visited key too); the scan then
    /// goes on after the visited key.
    template <class Fn>
    void scan(std::string_view begin, std::string_view end, Fn&& fn) const {
        const auto& s = store();
        ++scans_;
        struct guard {
            const write_txn& w;
            ~guard() {
                // A failure inside the callback was held back while LMDB's
                // cursor was open; discard the transaction now.
                if (--w.scans_ == 0 && w.failed_) w.discard();
            }
        } g{*this};
        s.scan(txn_.get(), begin, end, fn, &mutations_, &failed_);
        if (failed_) {
            detail::raise(errc::storage, "lmdb_store: the write transaction failed during the scan and was discarded");
        }
    }

    /// Inserts or overwrites `key`. Throws `usage_error` for a key LMDB
    /// cannot store (empty, or longer than `max_key_size()`), changing nothing.
    void put(std::string_view key, std::string_view value) {
        const auto& s = store();
        MDB_val k = detail::lmdb_val(s.check_key(key));
        MDB_val v = detail::lmdb_val(value);
        ++mutations_;
        if (const int rc = mdb_cursor_put(cursor_for(key), &k, &v, 0); rc != MDB_SUCCESS) fail(rc, "put");
    }

    /// Removes `key`; true when it was present.
    bool erase(std::string_view key) {
        const auto& s = store();
        if (s.unstorable(key)) return false;
        MDB_val k = detail::lmdb_val(key);
        MDB_val v{};
        ++mutations_;
        MDB_cursor* c = cursor_for(key);
        int rc = mdb_cursor_get(c, &k, &v, MDB_SET);
        if (rc == MDB_NOTFOUND) return false;
        if (rc == MDB_SUCCESS) rc = mdb_cursor_del(c, 0);
        if (rc != MDB_SUCCESS) fail(rc, "erase");
        return true;
    }

    /// Makes every change durable (per `lmdb_options::sync`) and visible.
    /// On failure nothing is written and the transaction has ended.
    void commit() {
        (void)store();
        if (scans_ != 0) detail::raise(errc::invalid_argument, "lmdb_store: commit() called inside this transaction's scan");
        lmdb_store& s = *std::exchange(store_, nullptr);
        cursors_.fill(nullptr);
        const int rc = txn_.commit();
        s.writing_ = false;
        if (rc == MDB_SUCCESS) return;
        if (rc == MDB_MAP_FULL) detail::raise(errc::storage_full, s.map_full("commit"));
        // A write that fills the disk usually comes back short rather than
        // failing with ENOSPC, and LMDB reports a short write as EIO
        // (mdb_page_flush: "short write, filesystem full?").
        if (rc == EIO) {
            if (const auto free = s.free_space(); free && *free < disk_full_below) {
                detail::raise(errc::storage_full,
                              "LMDB commit on '" + s.options_.path + "' failed: a write came back short (" +
                                  mdb_strerror(rc) + ") and its file system has " + detail::lmdb_size_text(*free) +
                                  " left: the disk is full. Nothing of the transaction was committed; free space "
                                  "and retry it");
            }
        }
        raise_failure(s, rc, "commit");
    }

    /// Discards every change. Does nothing when the transaction has ended.
    void abort() {
        if (store_ != nullptr && scans_ != 0) {
            detail::raise(errc::invalid_argument, "lmdb_store: abort() called inside this transaction's scan");
        }
        discard();
    }

private:
    friend class lmdb_store;
    write_txn(lmdb_store& store, detail::lmdb_txn txn) noexcept : store_(&store), txn_(std::move(txn)) {}

    [[nodiscard]] const lmdb_store& store() const {
        if (store_ == nullptr) detail::raise(errc::invalid_argument, "lmdb_store: the write transaction has ended");
        if (failed_) {
            detail::raise(errc::storage, "lmdb_store: the write transaction failed and was discarded; start a new one");
        }
        return *store_;
    }

    // One cursor per leading key byte (the replica's keyspace partitions):
    // consecutive operations in one partition usually land on the page the
    // cursor already holds, and LMDB then skips the search from the root.
    // LMDB closes a write transaction's cursors when the transaction ends.
    [[nodiscard]] MDB_cursor* cursor_for(std::string_view key) const {
        auto& c = cursors_[static_cast<unsigned char>(key.front())];
        if (c == nullptr) {
            if (const int rc = mdb_cursor_open(txn_.get(), store_->dbi_, &c); rc != MDB_SUCCESS) {
                c = nullptr;
                fail(rc, "cursor open");
            }
        }
        return c;
    }

    void discard() const noexcept {
        cursors_.fill(nullptr);
        if (store_ == nullptr) return;
        txn_.abort();
        std::exchange(store_, nullptr)->writing_ = false;
        failed_ = false;
    }

    // An LMDB call failed: the transaction is discarded (at once, or when
    // the scan whose callback failed unwinds) and the error thrown.
    [[noreturn]] void fail(int rc, std::string_view what) const {
        lmdb_store& s = *store_;
        if (scans_ == 0) discard();
        else failed_ = true;
        if (rc == MDB_MAP_FULL) detail::raise(errc::storage_full, s.map_full(what));
        raise_failure(s, rc, what);
    }

    [[noreturn]] static void raise_failure(const lmdb_store& s, int rc, std::string_view what) {
        const std::string where = " on '" + s.options_.path + "'";
        if (rc == MDB_TXN_FULL) {
            detail::raise(errc::storage, "LMDB " + std::string(what) + where +
                                             " failed: the transaction changes too many pages at once; split it");
        }
        if (rc == ENOSPC || rc == EDQUOT || rc == EFBIG) {
            const char* why = rc == ENOSPC   ? "no space left on the device"
                              : rc == EDQUOT ? "disk quota exceeded"
                                             : "the file reached its size limit (RLIMIT_FSIZE, or the file system's largest file)";
            detail::raise(errc::storage_full, "LMDB " + std::string(what) + where + " failed: " + why +
                                                  "; nothing of the transaction was committed: free space and "
                                                  "retry it");
        }
        s.raise_lmdb(rc, what);
    }

    // Less free space than this after a short write means the disk filled.
    static constexpr std::size_t disk_full_below = std::size_t{1} << 20;

    // `mutable`: a scan is logically const but must manage the cursor's
    // place and a failure raised from inside its callback.
    mutable lmdb_store* store_;
    mutable detail::lmdb_txn txn_;
    std::uint64_t mutations_ = 0;
    mutable unsigned scans_ = 0;
    mutable bool failed_ = false;
    mutable std::array<MDB_cursor*, 256> cursors_{};
};

inline lmdb_store::read_txn lmdb_store::read() {
    auto txn = begin(MDB_RDONLY, "begin of a read transaction");
    ++open_readers_;
    return read_txn(*this, std::move(txn));
}

inline lmdb_store::write_txn lmdb_store::write() {
    if (writing_) {
        detail::raise(errc::invalid_argument, "lmdb_store: a write transaction is already open (one writer at a time)");
    }
    grow_if_due();
    auto txn = begin(0, "begin of a write transaction");
    writing_ = true;
    return write_txn(*this, std::move(txn));
}

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
