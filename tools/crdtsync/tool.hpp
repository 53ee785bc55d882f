#pragma once
// What the crdtsync tool's two translation units share: exit codes, the
// error that carries one, data directories (layout, checks, the owner
// lock), opening a replica, and the conflict log. main.cpp holds the
// command line and the local commands; net.cpp holds serve and sync (the
// only one that includes Boost.Beast, which is slow to compile).

#include <crdtsync/crdtsync.hpp>
#include <crdtsync/backends/lmdb.hpp>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace crdtsync_cli {

namespace fs = std::filesystem;
using replica_t = crdtsync::replica<crdtsync::lmdb_store>;

/// Exit codes: one per kind of user error, stable (docs/cli.md lists them).
enum class exit_code : int {
    ok = 0,
    failure = 1,         ///< an unexpected failure (a bug)
    usage = 2,           ///< bad arguments
    sql = 3,             ///< SQL that does not parse, or that this tool does not support
    refused = 4,         ///< the replica refused a write or read (constraint, unknown table or column, schema)
    file = 5,            ///< a file (snapshot, token file) cannot be read or written
    bad_snapshot = 6,    ///< a snapshot file that does not load
    not_a_replica = 10,  ///< --data is not a crdtsync replica (or server) directory
    corrupt = 11,        ///< the replica's file is damaged or of an unknown format
    locked = 12,         ///< another crdtsync process owns the directory
    disk_full = 13,      ///< the disk (or the store's map) is full
    storage = 14,        ///< another storage failure (permissions, I/O)
    bad_url = 20,        ///< --server is not a ws:// URL, or the server has nothing at its path
    unreachable = 21,    ///< nothing answers at --server (refused, timed out, host unknown)
    auth_failed = 22,    ///< the server refused the token or the database (AUTH_FAILED, 4001)
    version_mismatch = 23, ///< the server speaks another protocol version (4003)
    sync_failed = 24,    ///< the sync ended otherwise before it was complete
    listen_failed = 25,  ///< serve cannot listen (port in use, address not local)
};

/// An error the tool reports as one line and an exit code.
class tool_error : public std::runtime_error {
public:
    tool_error(exit_code code, const std::string& message) : std::runtime_error(message), code_(code) {}
    [[nodiscard]] exit_code code() const noexcept { return code_; }

private:
    exit_code code_;
};

[[noreturn]] inline void fail(exit_code code, const std::string& message) { throw tool_error(code, message); }

/// The exit code of a library error.
[[nodiscard]] inline exit_code code_of(const crdtsync::error& e) noexcept {
    using crdtsync::errc;
    switch (e.code()) {
    case errc::corrupt:
    case errc::format_version: return exit_code::corrupt;
    case errc::storage_full: return exit_code::disk_full;
    case errc::storage: return exit_code::storage;
    case errc::unknown_table:
    case errc::unknown_column:
    case errc::schema_mismatch:
    case errc::schema:
    case errc::constraint:
    case errc::invalid_value:
    case errc::invalid_key: return exit_code::refused;
    case errc::snapshot:
    case errc::decode:
    case errc::limit_exceeded: return exit_code::bad_snapshot;
    case errc::protocol: return exit_code::sync_failed;
    case errc::invalid_argument: return exit_code::usage;
    default: return exit_code::failure;
    }
}

// ---------------------------------------------------------------- data directories
//
// A replica directory (exec, stat, dump, sync, snapshot, conflicts) holds
//   replica.mdb, replica.mdb-lock  the LMDB store and LMDB's lock file
//   crdtsync.lock                  held (flock) by the process that owns it: sync, serve, snapshot import
//   conflicts.jsonl                the conflicts merges resolved here, one JSON object a line
// A server directory (serve) holds crdtsync.lock and one replica directory
// per database id.

inline constexpr const char* replica_file = "replica.mdb";
inline constexpr const char* lock_file = "crdtsync.lock";
inline constexpr const char* conflicts_file = "conflicts.jsonl";

enum class dir_use { existing, create };

/// Checks that `dir` is a replica directory (or, with `create`, a new or
/// empty one, created if missing) and returns it.
inline fs::path replica_dir(const std::string& dir, dir_use use) {
    const fs::path p(dir);
    std::error_code ec;
    const auto st = fs::status(p, ec);
    if (!fs::exists(st)) {
        if (use == dir_use::existing)
            fail(exit_code::not_a_replica, "'" + dir + "' does not exist: there is no crdtsync replica there "
                                           "(exec, sync and snapshot import create one)");
        fs::create_directories(p, ec);
        if (ec) fail(exit_code::storage, "cannot create the directory '" + dir + "': " + ec.message());
        return p;
    }
    if (!fs::is_directory(st))
        fail(exit_code::not_a_replica, "'" + dir + "' is not a directory: --data names a replica's directory");
    if (fs::exists(p / replica_file, ec)) return p;
    for (const auto& e : fs::directory_iterator(p, ec)) {
        const auto name = e.path().filename().string();
        if (name == lock_file || name == conflicts_file || name == std::string(replica_file) + "-lock") continue;
        fail(exit_code::not_a_replica, "'" + dir + "' is not a crdtsync replica: it has no " + replica_file +
                                           " but holds other files ('" + name +
                                           "'); pass a new or empty directory, or the directory of a replica");
    }
    if (ec) fail(exit_code::storage, "cannot read the directory '" + dir + "': " + ec.message());
    if (use == dir_use::existing)
        fail(exit_code::not_a_replica, "'" + dir + "' holds no crdtsync replica yet (no " + replica_file +
                                           "): exec, sync and snapshot import create one");
    return p;
}

/// Holds `dir/crdtsync.lock` (flock, exclusive) for the life of the object:
/// one owner process per directory. Released by the kernel when the process
/// dies, however it dies.
class dir_lock {
public:
    dir_lock(const fs::path& dir, std::string_view who) {
        const auto path = (dir / lock_file).string();
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) fail(exit_code::storage, "cannot open the lock file '" + path + "': " + std::strerror(errno));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            const int err = errno;
            std::string holder(200, '\0');
            const auto n = ::pread(fd_, holder.data(), holder.size(), 0);
            holder.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
            while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
            ::close(fd_);
            fd_ = -1;
            if (err == EWOULDBLOCK)
                fail(exit_code::locked, "'" + dir.string() + "' is in use by another crdtsync process" +
                                            (holder.empty() ? std::string() : " (" + holder + ")") +
                                            ": stop it first, or use another directory");
            fail(exit_code::storage, "cannot lock '" + path + "': " + std::strerror(err));
        }
        const auto text = "pid " + std::to_string(::getpid()) + ", crdtsync " + std::string(who) + "\n";
        if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, text.data(), text.size(), 0);
    }
    ~dir_lock() {
        if (fd_ >= 0) ::close(fd_);
    }
    dir_lock(const dir_lock&) = delete;
    dir_lock& operator=(const dir_lock&) = delete;

private:
    int fd_ = -1;
};

/// A replica over the LMDB store of a replica directory.
struct local_replica {
    explicit local_replica(const fs::path& d, bool verify = false)
        : dir(d), store(options(d, verify)), rep(store) {}
    static crdtsync::lmdb_options options(const fs::path& d, bool verify) {
        crdtsync::lmdb_options o{(d / replica_file).string()};
        o.verify_on_open = verify;
        return o;
    }
    fs::path dir;
    crdtsync::lmdb_store store;
    replica_t rep;
};

/// Opens (or creates) the replica in `dir`; library errors become
/// tool errors that name the directory.
/// `verify`: walk the LMDB file's structure first (lmdb_options::verify_on_open),
/// so a damaged page is a `corrupt` error, not a crash; serve does, once per
/// database it opens.
inline std::unique_ptr<local_replica> open_replica(const fs::path& dir, bool verify = false) {
    try {
        return std::make_unique<local_replica>(dir, verify);
    } catch (const crdtsync::error& e) {
        fail(code_of(e), "cannot open the replica in '" + dir.string() + "': " + e.message());
    }
}

// ---------------------------------------------------------------- conflicts

/// Now as UTC ISO 8601 text with milliseconds.
inline std::string utc_now_text() {
    const auto now = std::chrono::system_clock::now();
    const auto t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

/// A value as Quereus's wire writes it (blobs and big integers tagged).
inline nlohmann::json value_json(const crdtsync::value& v) {
    try {
        return crdtsync::wire::to_json(v);
    } catch (const crdtsync::error&) {
        return v.to_text(); // not representable on the wire: shown as text
    }
}

/// The conflict as one JSON object (a line of conflicts.jsonl).
inline nlohmann::json conflict_json(const crdtsync::conflict& c) {
    const bool local = c.winner == crdtsync::conflict_winner::local;
    nlohmann::json pk = nlohmann::json::array();
    for (const auto& v : c.pk) pk.push_back(value_json(v));
    return {{"at", utc_now_text()},
            {"table", c.schema + "." + c.table},
            {"pk", pk},
            {"column", c.column},
            {"kept", value_json(local ? c.local_value : c.remote_value)},
            {"dropped", value_json(local ? c.remote_value : c.local_value)},
            {"winner", local ? "local" : "remote"},
            {"keptHlc", (local ? c.local_version : c.remote_version).to_text()},
            {"droppedHlc", (local ? c.remote_version : c.local_version).to_text()}};
}

/// Keeps every conflict a merge into `rep` resolves: appended to
/// `dir/conflicts.jsonl` and logged at info level. (The library reports
/// conflicts as events and keeps none; the tool keeps them for
/// `crdtsync conflicts`.)
inline void keep_conflicts(replica_t& rep, const fs::path& dir, std::string label = {}) {
    (void)rep.on_conflict([file = (dir / conflicts_file).string(), label = std::move(label)](const crdtsync::conflict& c) {
        const auto j = conflict_json(c);
        spdlog::info("{}conflict on {}.{} {}: kept {}, dropped {}", label, j["table"].get<std::string>(), c.column,
                     j["pk"].dump(), j["kept"].dump(), j["dropped"].dump());
        if (std::FILE* f = std::fopen(file.c_str(), "a")) {
            const auto line = j.dump() + "\n";
            (void)std::fwrite(line.data(), 1, line.size(), f);
            std::fclose(f);
        } else {
            spdlog::warn("cannot append to '{}': {}", file, std::strerror(errno));
        }
    });
}

// ---------------------------------------------------------------- the network commands (net.cpp)

struct serve_args {
    std::string data;
    std::string listen;
    std::string token_file;
    std::size_t max_message_bytes = std::size_t{16} << 20;
    // --cluster (docs/cluster.md): empty without it
    std::string cluster;
    int cluster_replicas = 1;
    double cluster_max_age = 0;
    std::int64_t cluster_max_msgs = -1;
    double cluster_ack_timeout = 5;
    double cluster_snapshot_interval = 30;
};

struct sync_args {
    std::string data;
    std::string server;
    std::string db;
    std::optional<std::string> token;
    std::string token_file;
    bool watch = false;
    double retry_max = 60;  ///< seconds: the reconnect backoff's ceiling
    double timeout = 60;    ///< seconds: a sync without --watch gives up after this long
};

int run_serve(const serve_args& a);
int run_sync(const sync_args& a);

/// Reads a token file: `database-id token` lines (`*` for every database),
/// `#` comments, blank lines. Tokens are never logged.
struct token_entry {
    std::string database;
    std::string token;
};
std::vector<token_entry> read_token_file(const std::string& path);

} // namespace crdtsync_cli
