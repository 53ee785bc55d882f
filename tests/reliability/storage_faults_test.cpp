// Storage faults on real LMDB files, with a replica on top: the file
// truncated, pages and records overwritten with garbage, the directory
// read-only, the disk full, the map full with growth disabled. Each must
// give a typed crdtsync error (storage_error: errc::corrupt,
// errc::storage_full, errc::storage), never crash the process, and keep
// what was committed before: after the fault, reopening (or restoring the
// file, or re-bootstrapping from a peer, where the file itself is damaged)
// shows every committed row, and the store passes `crdtsync::check`.
//
// tests/store/test_stores.cpp checks the LMDB store alone (a few truncation
// lengths, zeroed pages, a simulated ENOSPC); these add the replica, every
// truncation length and every page, garbage rather than zeros, real
// read-only and full file systems, and the full map under the replica's
// retries.
//
// Faults that could crash the process run in a forked child, so that a
// crash is reported as a failure naming the page, not the end of the suite.
// A read-only bind mount and a 2 MiB tmpfs need a private mount namespace
// (root, or CAP_SYS_ADMIN); without one those cases say so and are skipped.

#include "replica/support.hpp"

#include <crdtsync/replica_check.hpp>

#include <array>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace replica_tests {
namespace {

using crdtsync::errc;
using crdtsync::lmdb_options;
using crdtsync::lmdb_store;
using lmdb_replica = replica_t<lmdb_store>;

// ------------------------------------------------------------------ files

std::string file_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::filesystem::path& path, std::string_view bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::size_t page_size() { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

// ------------------------------------------------------------------ replicas on files

/// A replica and the LMDB store under it, opened from a path.
struct on_file {
    std::unique_ptr<lmdb_store> store;
    std::unique_ptr<lmdb_replica> rep;
    lmdb_replica* operator->() const noexcept { return rep.get(); }
};

lmdb_options options_at(const std::filesystem::path& path, crdtsync::lmdb_sync sync = crdtsync::lmdb_sync::no_sync) {
    lmdb_options o;
    o.path = path.string();
    o.sync = sync;
    return o;
}

/// Opens the replica at `o.path` (creating it with the shared schema when new).
on_file open_at(const lmdb_options& o, const sim_time& t, std::uint8_t site = 0x71) {
    on_file f;
    f.store = std::make_unique<lmdb_store>(o);
    f.rep = std::make_unique<lmdb_replica>(*f.store, options_for(delete_policy::insert_revives, site), fake_clock{&t.now});
    if (f.rep->tables().empty() && !f.rep->apply(schema_sets()).rejected.empty())
        throw std::runtime_error("the schema was rejected");
    return f;
}

/// Inserts items first .. first+count-1 (each with a `b` of `payload`
/// bytes), `per_txn` to a transaction; deletes every tenth. Returns how
/// many transactions committed before one threw (all of them when none did).
template <class R>
int fill(R& r, int first, int count, int per_txn, std::size_t payload) {
    int committed = 0;
    for (int i = first; i < first + count; i += per_txn) {
        r.write([&](auto& tx) {
            for (int k = i; k < i + per_txn && k < first + count; ++k) {
                tx.insert("items", row{{"id", value{k}}, {"name", value{"n" + std::to_string(k)}}, {"a", value{k}},
                                       {"b", value{std::string(payload, static_cast<char>('a' + k % 26))}}});
                if (k % 10 == 9) (void)tx.erase("items", item_key(k - 5, "n" + std::to_string(k - 5)));
            }
        });
        ++committed;
    }
    return committed;
}

/// What a replica shows and whether its store is sound, in one string.
template <class R>
std::string state_of(const R& r) {
    const auto report = crdtsync::check(r);
    std::string out = rows_text(r);
    for (const auto& p : report.problems) out += "check: " + p + "\n";
    return out;
}

// ------------------------------------------------------------------ child processes

/// What a child process reported.
struct child_outcome {
    int signal = 0;      // non-zero: killed by this signal (a crash)
    int exit_code = 0;
    std::string output; // what it wrote before it ended
};

/// Runs `body(report)` in a forked child; `report` sends a line to the
/// parent. The child ends with exit code 0 unless `body` throws (code 2).
child_outcome in_child(const std::function<void(const std::function<void(const std::string&)>&)>& body) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        // The test framework's handlers would report the crash as its own.
        for (const int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, SIG_DFL);
        const auto report = [&](const std::string& line) {
            const std::string l = line + "\n";
            for (std::size_t done = 0; done < l.size();) {
                const auto n = ::write(fds[1], l.data() + done, l.size() - done);
                if (n <= 0) break;
                done += static_cast<std::size_t>(n);
            }
        };
        int code = 0;
        try {
            body(report);
        } catch (const std::exception& e) {
            report(std::string("child: uncaught exception: ") + e.what());
            code = 2;
        }
        ::close(fds[1]);
        ::_exit(code);
    }
    ::close(fds[1]);
    child_outcome out;
    std::array<char, 4096> buf{};
    for (;;) {
        const auto n = ::read(fds[0], buf.data(), buf.size());
        if (n <= 0) break;
        out.output.append(buf.data(), static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status)) out.signal = WTERMSIG(status);
    if (WIFEXITED(status)) out.exit_code = WEXITSTATUS(status);
    return out;
}

// ------------------------------------------------------------------ mounts

/// A private mount namespace for this process, so that the mounts below are
/// invisible to every other process and vanish with this one. False where
/// the process may not make one (not root): those cases are skipped.
bool private_mounts() {
    static const bool ok = [] {
        if (::unshare(CLONE_NEWNS) != 0) return false;
        return ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
    }();
    return ok;
}

/// Unmounts `path` at the end of a scope.
struct mounted {
    std::filesystem::path path;
    explicit mounted(std::filesystem::path p) : path(std::move(p)) {}
    mounted(const mounted&) = delete;
    mounted& operator=(const mounted&) = delete;
    ~mounted() { ::umount2(path.c_str(), MNT_DETACH); }
};

/// The typed error `f` throws, or nullopt. A non-crdtsync exception escapes.
template <class F>
std::optional<crdtsync::storage_error> storage_error_of(F&& f) {
    try {
        f();
    } catch (const crdtsync::storage_error& e) {
        return e;
    }
    return std::nullopt;
}

/// With CRDTSYNC_RELIABILITY_FIGURES set, prints a figure for
/// docs/reliability.md.
void report_figure(const std::string& what, std::size_t n) {
    if (std::getenv("CRDTSYNC_RELIABILITY_FIGURES") != nullptr) MESSAGE(what << ": " << n);
}

/// Runs `trial(i, report)` for i in [0, count) in forked children, starting
/// a new child after one that crashed. Returns the trials that crashed, as
/// "<label>: signal <n>"; `label(i)` names trial i; a child reports lines
/// through `report`, collected in `lines`.
std::vector<std::string> sweep(std::size_t count, const std::function<std::string(std::size_t)>& label,
                               const std::function<void(std::size_t, const std::function<void(const std::string&)>&)>& trial,
                               std::vector<std::string>& lines) {
    std::vector<std::string> crashes;
    // CRDTSYNC_RELIABILITY_TRIAL=i runs trial i alone in this process (to
    // debug a crash under gdb).
    if (const char* one = std::getenv("CRDTSYNC_RELIABILITY_TRIAL"); one != nullptr) {
        const auto i = static_cast<std::size_t>(std::stoul(one));
        if (i < count) trial(i, [&](const std::string& line) { lines.push_back(line); });
        for (const auto& l : lines) MESSAGE(l);
        return crashes;
    }
    std::size_t start = 0;
    while (start < count) {
        const auto outcome = in_child([&](const auto& report) {
            // LMDB's own assertion messages would flood the test output; a
            // crash is reported by its trial (run it alone to see them).
            if (const int null = ::open("/dev/null", O_WRONLY); null >= 0) ::dup2(null, STDERR_FILENO);
            for (std::size_t i = start; i < count; ++i) {
                report("trial " + std::to_string(i));
                trial(i, report);
            }
        });
        std::size_t last = start;
        std::size_t from = 0;
        for (std::size_t nl; (nl = outcome.output.find('\n', from)) != std::string::npos; from = nl + 1) {
            const auto line = outcome.output.substr(from, nl - from);
            if (line.rfind("trial ", 0) == 0) last = std::stoul(line.substr(6));
            else lines.push_back(line);
        }
        if (outcome.signal == 0) {
            if (outcome.exit_code != 0) crashes.push_back(label(last) + ": exit code " + std::to_string(outcome.exit_code));
            break;
        }
        crashes.push_back(label(last) + ": signal " + std::to_string(outcome.signal) + " (" + ::strsignal(outcome.signal) + ")");
        start = last + 1;
    }
    return crashes;
}

// ------------------------------------------------------------------ a damaged file's battery

/// Everything a replica does with its store, on the file at `o.path`:
/// open, read every table, dump, page through the change log, check, write,
/// apply, reopen. Returns "" when all of it worked, else the first typed
/// error's code; a non-crdtsync exception escapes (the caller reports it).
std::string battery(const lmdb_options& o, const sim_time& t) {
    try {
        auto f = open_at(o, t);
        (void)f->rows("items");
        (void)f->rows("notes");
        (void)f->dump();
        (void)changes_of(*f.rep);
        const auto report = crdtsync::check(*f.rep);
        if (!report.ok()) return "check: " + report.problems.front();
        f->write([](auto& tx) { tx.insert("notes", row{{"k", value{"after"}}, {"body", value{"x"}}}); });
        (void)f->apply(change_set_builder{at(t.now, 0, site_of(0x7e))}.set("notes", {value{"remote"}}, "body", value{1}).build());
        f.rep.reset();
        f.store.reset();
        auto again = open_at(o, t);
        (void)again->rows("items");
        return "";
    } catch (const crdtsync::error& e) {
        return std::string(crdtsync::to_text(e.code())) + ": " + e.message();
    }
}

} // namespace

// ================================================================== truncated

TEST_CASE("storage faults: a replica file truncated to any length is refused with errc::corrupt; its backup, or a "
          "peer, restores every row") {
    temp_dir dir;
    sim_time t;
    const auto path = dir.path() / "replica.mdb";
    const auto o = options_at(path);
    std::string expected;
    crdtsync::memory_store peer_store;
    replica_t<crdtsync::memory_store> peer{peer_store, options_for(delete_policy::insert_revives, 0x72), fake_clock{&t.now}};
    {
        auto f = open_at(o, t);
        fill(*f.rep, 0, 2000, 50, 100);
        expected = rows_text(*f.rep);
        REQUIRE(peer.apply(changes_of(*f.rep)).rejected.empty());
    }
    const std::string backup = file_bytes(path);
    const std::size_t page = page_size();
    REQUIRE(backup.size() % page == 0);
    const std::size_t pages = backup.size() / page;
    REQUIRE(pages > 50);

    // Every whole number of pages, a byte short of each, and half a page
    // past each: in a child, so that a crash names the length.
    std::vector<std::size_t> lengths{1, 100};
    for (std::size_t k = 1; k < pages; ++k) {
        lengths.push_back(k * page - 1);
        lengths.push_back(k * page);
        lengths.push_back(k * page + page / 2);
    }
    const auto outcome = in_child([&](const auto& report) {
        for (const std::size_t l : lengths) {
            write_file(path, std::string_view(backup).substr(0, l));
            report("length " + std::to_string(l)); // the last line names a crash
            try {
                auto f = open_at(o, t);
                report("FAIL: a file truncated to " + std::to_string(l) + " bytes of " + std::to_string(backup.size()) +
                       " opened");
            } catch (const crdtsync::storage_error& e) {
                if (e.code() != errc::corrupt)
                    report("FAIL: length " + std::to_string(l) + ": " + e.what() + " (not errc::corrupt)");
            }
            if (file_bytes(path).size() != l) report("FAIL: the failed open changed the file at length " + std::to_string(l));
        }
        report("done");
    });
    CHECK(outcome.signal == 0);
    CHECK(outcome.exit_code == 0);
    const auto& out = outcome.output;
    CHECK_MESSAGE(out.find("FAIL") == std::string::npos, out.substr(0, 2000));
    CHECK(out.find("done") != std::string::npos);
    report_figure("truncation lengths tried", lengths.size());
    if (outcome.signal != 0) FAIL("the child crashed with signal " << outcome.signal << " at " << out.substr(out.rfind("length")));

    // Restored from the backup: every row, a sound store, and it writes.
    write_file(path, backup);
    {
        auto f = open_at(o, t);
        CHECK(rows_text(*f.rep) == expected);
        CHECK(crdtsync::check(*f.rep).ok());
        fill(*f.rep, 5000, 10, 10, 10);
    }
    // Or, without a backup, re-bootstrapped from a peer into a new file.
    std::filesystem::remove(path);
    std::filesystem::remove(path.string() + "-lock");
    {
        auto f = open_at(o, t, 0x73);
        CHECK(f->apply(changes_of(peer)).rejected.empty());
        CHECK(rows_text(*f.rep) == expected);
        CHECK(crdtsync::check(*f.rep).ok());
    }
}

// ================================================================== garbage pages

namespace {

/// What happened to each trial of a garbage-page sweep.
struct garbage_sweep {
    std::size_t trials = 0;
    std::vector<std::string> crashes; // "<trial>: signal <n> (...)"
    std::map<std::string, std::size_t> counts; // outcome kind -> trials
    std::string bad;  // the trials whose outcome the sweep refuses, one a line
    std::string summary() const {
        std::string out;
        for (const auto& [what, n] : counts) out += what + " " + std::to_string(n) + "; ";
        return out;
    }
};

/// Overwrites each page of a replica file with garbage in turn (two shapes
/// per page: all of it random, and random after an intact 16-byte page
/// header, which LMDB's own checks look at) and runs the battery on it in a
/// forked child. With `verify` (lmdb_options::verify_on_open), opening must
/// refuse the file with errc::corrupt or the battery must find every row
/// as it was; without it, any typed error is accepted (a crash is counted,
/// not refused: the known limit the option closes). A silent change of the
/// rows, or an exception of another type, is refused either way. Each
/// further round repeats the pages with other garbage.
garbage_sweep sweep_garbage_pages(bool verify, std::size_t rounds = 1) {
    temp_dir dir;
    sim_time t;
    const auto path = dir.path() / "replica.mdb";
    auto o = options_at(path);
    std::string expected;
    {
        auto f = open_at(o, t);
        fill(*f.rep, 0, 600, 20, 100);
        expected = rows_text(*f.rep);
        REQUIRE(crdtsync::check(*f.rep).ok());
        if (verify) (void)f.store->verify(); // the sound file passes
    }
    o.verify_on_open = verify;
    const std::string pristine = file_bytes(path);
    const std::size_t page = page_size();
    const std::size_t pages = pristine.size() / page;
    REQUIRE(pages > 20);

    const auto label = [&](std::size_t i) {
        const std::size_t j = i % (2 * pages);
        return (i < 2 * pages ? std::string() : "round " + std::to_string(i / (2 * pages)) + ", ") + "page " +
               std::to_string(j / 2) + (j % 2 == 0 ? " (all random)" : " (random after its header)");
    };
    const auto rows_before = expected.substr(0, expected.find("main.notes:"));
    std::vector<std::string> lines;
    garbage_sweep out;
    out.trials = 2 * pages * rounds;
    out.crashes = sweep(out.trials, label, [&](std::size_t i, const auto& report) {
        std::string bytes = pristine;
        std::mt19937_64 rng(i);
        const std::size_t j = i % (2 * pages);
        for (std::size_t b = (j / 2) * page + (j % 2 == 0 ? 0 : 16); b < (j / 2 + 1) * page; ++b)
            bytes[b] = static_cast<char>(rng());
        write_file(path, bytes);
        std::string outcome;
        try {
            if (verify) {
                // The walk must refuse it at open, or the file is sound for
                // LMDB (the page was free) and everything else must work.
                try {
                    const lmdb_store s(o);
                } catch (const crdtsync::storage_error& e) {
                    // The walk names the page; LMDB's own check of the meta
                    // pages (pages 0 and 1) says the file is not LMDB's.
                    report(label(i) + (e.code() == errc::corrupt ? ": corrupt at open: " : ": AFTER VERIFY: at open: ") +
                           e.message());
                    return;
                }
            }
            outcome = battery(o, t);
            if (outcome.empty()) {
                auto f = open_at(o, t);
                // The battery wrote a note and applied one: leave those out.
                const auto rows = rows_text(*f.rep);
                outcome = rows.substr(0, rows.find("main.notes:")) == rows_before ? "as before" : "SILENT: no error, other rows";
            } else if (verify) {
                outcome = "AFTER VERIFY: " + outcome;
            }
        } catch (const std::exception& e) {
            outcome = std::string("UNTYPED: ") + e.what();
        }
        report(label(i) + ": " + outcome);
    }, lines);

    for (const auto& l : lines) {
        const auto what = l.substr(l.find(": ") + 2);
        ++out.counts[what.substr(0, what.find(':'))];
        if (what.rfind("SILENT", 0) == 0 || what.rfind("UNTYPED", 0) == 0 || what.rfind("AFTER VERIFY", 0) == 0)
            out.bad += l + "\n";
    }
    CHECK(lines.size() + out.crashes.size() == out.trials);
    return out;
}

} // namespace

TEST_CASE("storage faults: any page of a replica file overwritten with garbage gives a typed error or the rows as "
          "they were; without verify_on_open some trials crash inside LMDB") {
    const auto sweep_result = sweep_garbage_pages(false);
    INFO("outcomes: " << sweep_result.summary());
    std::string crashed;
    for (const auto& c : sweep_result.crashes) crashed += "\n  " + c;
    // Known limit without lmdb_options::verify_on_open (docs/reliability.md):
    // LMDB keeps no page checksums, and garbage in a page of a tree can
    // crash the process inside LMDB while it walks the tree. The trials run
    // in forked children, so the crashes are counted and shown here, not
    // hidden; what must hold is the rest: no silent wrong rows, no untyped
    // error. The next case is the same sweep with the option, where a
    // crash fails.
    WARN_MESSAGE(sweep_result.crashes.empty(), sweep_result.crashes.size()
                                                   << " of " << sweep_result.trials
                                                   << " trials crashed the process without verify_on_open "
                                                      "(known limit; the option closes it):"
                                                   << crashed);
    CHECK_MESSAGE(sweep_result.bad.empty(), sweep_result.bad);
    report_figure("garbage page trials", sweep_result.trials);
    report_figure("garbage page trials that crashed (without verify_on_open)", sweep_result.crashes.size());
    if (std::getenv("CRDTSYNC_RELIABILITY_FIGURES") != nullptr) MESSAGE("outcomes: " << sweep_result.summary());
}

TEST_CASE("storage faults: with verify_on_open, any page of a replica file overwritten with garbage is errc::corrupt "
          "at open, or the file opens with every row as it was; never a crash") {
    // CRDTSYNC_GARBAGE_ROUNDS=N runs N rounds of other garbage (CI: 1).
    const char* rounds = std::getenv("CRDTSYNC_GARBAGE_ROUNDS");
    const auto sweep_result = sweep_garbage_pages(true, rounds != nullptr ? std::max(1ul, std::stoul(rounds)) : 1);
    std::string crashed;
    for (const auto& c : sweep_result.crashes) crashed += "\n  " + c;
    MESSAGE("garbage pages with verify_on_open: " << sweep_result.trials << " trials, "
                                                  << sweep_result.crashes.size() << " crashes; "
                                                  << sweep_result.summary());
    CHECK_MESSAGE(sweep_result.crashes.empty(), sweep_result.crashes.size() << " of " << sweep_result.trials
                                                                            << " trials crashed the process:" << crashed);
    CHECK_MESSAGE(sweep_result.bad.empty(), sweep_result.bad);
    // Most pages are in use: the walk must have refused most trials, not
    // let them through to luck.
    const auto at = sweep_result.counts.find("corrupt at open");
    CHECK((at != sweep_result.counts.end() && at->second * 2 > sweep_result.trials));
    report_figure("garbage page trials with verify_on_open", sweep_result.trials);
}

// ================================================================== read-only

TEST_CASE("storage faults: a read-only directory, or a path under a file: errc::storage naming the path and the "
          "reason; the replica is intact once its directory is writable") {
    temp_dir dir;
    sim_time t;
    const auto rw = dir.path() / "rw";
    std::filesystem::create_directory(rw);
    std::string expected;
    {
        auto f = open_at(options_at(rw / "replica.mdb"), t);
        fill(*f.rep, 0, 300, 30, 50);
        expected = rows_text(*f.rep);
    }
    const std::string bytes = file_bytes(rw / "replica.mdb");

    // A path whose parent is a file: needs no privileges.
    const auto plain = dir.path() / "plain-file";
    write_file(plain, "not a directory");
    const auto under_file = (plain / "replica.mdb").string();
    const auto e1 = storage_error_of([&] { (void)open_at(options_at(under_file), t); });
    REQUIRE(e1.has_value());
    CHECK(e1->code() == errc::storage);
    CHECK(e1->message().find(under_file) != std::string::npos);
    CHECK(e1->message().find("Not a directory") != std::string::npos);

    // The directory read-only for everyone, root included: a read-only bind
    // mount of it (file modes do not stop root).
    if (!private_mounts()) {
        MESSAGE("skipped the read-only directory: no private mount namespace (needs root or CAP_SYS_ADMIN)");
        return;
    }
    const auto ro = dir.path() / "ro";
    std::filesystem::create_directory(ro);
    REQUIRE(::mount(rw.c_str(), ro.c_str(), nullptr, MS_BIND, nullptr) == 0);
    mounted guard{ro};
    REQUIRE(::mount(nullptr, ro.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) == 0);
    const int probe = ::open((ro / "probe").c_str(), O_CREAT | O_WRONLY, 0644);
    REQUIRE(probe < 0); // root cannot write there either
    REQUIRE(errno == EROFS);

    for (const auto* name : {"replica.mdb", "new.mdb"}) { // the existing replica, and a new one
        CAPTURE(name);
        const auto path = (ro / name).string();
        const auto e = storage_error_of([&] { (void)open_at(options_at(path), t); });
        REQUIRE(e.has_value());
        CHECK(e->code() == errc::storage);
        CHECK(e->message().find(path) != std::string::npos);
        CHECK(e->message().find("Read-only file system") != std::string::npos);
    }
    CHECK(file_bytes(rw / "replica.mdb") == bytes);
    CHECK_FALSE(std::filesystem::exists(rw / "new.mdb"));

    // Writable again (the same directory through its own path): every row.
    auto f = open_at(options_at(rw / "replica.mdb"), t);
    CHECK(rows_text(*f.rep) == expected);
    CHECK(crdtsync::check(*f.rep).ok());
    fill(*f.rep, 1000, 10, 10, 10);
}

// ================================================================== full disk

namespace {

/// Fills `f` a transaction of 20 rows at a time until one throws; checks
/// that the one that threw left the dump as it was and was not reported.
/// Returns the error and how many transactions committed.
template <class F>
std::pair<std::optional<crdtsync::storage_error>, int> fill_until_full(F& f, int first, std::size_t payload) {
    int committed = 0, reported = 0;
    const auto id = f->on_local_change([&](const crdtsync::local_change&) { ++reported; });
    std::optional<crdtsync::storage_error> error;
    for (int i = first; i < first + 100'000 && !error; i += 20) {
        const auto before = f->dump();
        const auto position = f->position();
        error = storage_error_of([&] { committed += fill(*f.rep, i, 20, 20, payload); });
        if (error) {
            CHECK(f->dump() == before);
            CHECK(f->position() == position);
        }
    }
    f->remove_listener(id);
    CHECK(reported == committed);
    return {error, committed};
}

/// A remote batch of `n` change sets, each inserting a note with a body of
/// `payload` bytes.
std::vector<change_set> remote_batch(const sim_time& t, int n, std::size_t payload) {
    std::vector<change_set> out;
    for (int i = 0; i < n; ++i) {
        const std::string k = "remote-" + std::to_string(i);
        out.push_back(change_set_builder{at(t.now, static_cast<std::uint16_t>(i), site_of(0x7e))}
                          .insert("notes", {value{k}}, {{"k", value{k}}, {"body", value{std::string(payload, 'r')}}})
                          .build());
    }
    return out;
}

} // namespace

TEST_CASE("storage faults: a full disk (a 2 MiB tmpfs): storage_full, nothing of the transaction or batch written, "
          "every committed row kept, and writes resume once there is space") {
    if (!private_mounts()) {
        MESSAGE("skipped: no private mount namespace for a small tmpfs (needs root or CAP_SYS_ADMIN)");
        return;
    }
    temp_dir dir;
    sim_time t;
    const auto small = dir.path() / "small";
    std::filesystem::create_directory(small);
    REQUIRE(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=2m") == 0);
    mounted guard{small};
    const auto o = options_at(small / "replica.mdb", crdtsync::lmdb_sync::durable);

    std::string rows;
    {
        auto f = open_at(o, t);
        const auto [error, committed] = fill_until_full(f, 0, 300);
        REQUIRE(error.has_value());
        CHECK(committed > 10);
        CHECK(error->code() == errc::storage_full);
        CHECK(error->message().find(o.path) != std::string::npos);
        rows = rows_text(*f.rep);
        CHECK(crdtsync::check(*f.rep).ok());

        // A remote batch on the full disk: thrown, nothing of it written.
        const auto dump = f->dump();
        const auto e = storage_error_of([&] { (void)f->apply(remote_batch(t, 200, 300)); });
        REQUIRE(e.has_value());
        CHECK(e->code() == errc::storage_full);
        CHECK(f->dump() == dump);
        CHECK(f->rows("notes").empty());
    }
    // Reopened on the full disk: every committed row, a sound store.
    {
        auto f = open_at(o, t);
        CHECK(rows_text(*f.rep) == rows);
        CHECK(crdtsync::check(*f.rep).ok());
    }
    // Space again: the batch applies, writes go on.
    REQUIRE(::mount(nullptr, small.c_str(), nullptr, MS_REMOUNT, "size=16m") == 0);
    {
        auto f = open_at(o, t);
        CHECK(f->apply(remote_batch(t, 200, 300)).rejected.empty());
        CHECK(f->rows("notes").size() == 200);
        fill(*f.rep, 50'000, 100, 20, 300);
        CHECK(crdtsync::check(*f.rep).ok());
    }
}

TEST_CASE("storage faults: a file-size limit (RLIMIT_FSIZE) stops the file growing: a typed error, every committed "
          "row kept") {
    // What a quota-less limit on the file looks like: writes past it fail
    // with EFBIG (SIGXFSZ ignored, as a server would). In a child, where
    // the limit stays.
    temp_dir dir;
    sim_time t;
    const auto o = options_at(dir.path() / "replica.mdb", crdtsync::lmdb_sync::durable);
    const auto outcome = in_child([&](const auto& report) {
        std::signal(SIGXFSZ, SIG_IGN);
        std::string rows;
        {
            auto f = open_at(o, t);
            const ::rlimit limit{1 << 20, 1 << 20};
            if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) throw std::runtime_error("setrlimit failed");
            int committed = 0;
            try {
                for (int i = 0; i < 100'000; i += 20) committed += fill(*f.rep, i, 20, 20, 300);
                report("FAIL: the file grew past its limit");
            } catch (const crdtsync::storage_error& e) {
                report(std::string("code ") + std::string(crdtsync::to_text(e.code())));
                report(std::string("message ") + e.message());
            }
            report("committed " + std::to_string(committed));
            rows = rows_text(*f.rep);
            if (!crdtsync::check(*f.rep).ok()) report("FAIL: check after the error");
        }
        auto f = open_at(o, t);
        if (rows_text(*f.rep) != rows) report("FAIL: rows differ after reopening");
        if (!crdtsync::check(*f.rep).ok()) report("FAIL: check after reopening");
    });
    CHECK(outcome.signal == 0);
    CHECK(outcome.exit_code == 0);
    INFO(outcome.output);
    CHECK(outcome.output.find("FAIL") == std::string::npos);
    // The limit is a lack of space like a full disk: storage_full.
    CHECK(outcome.output.find("code storage_full") != std::string::npos);
}

// ================================================================== full map

TEST_CASE("storage faults: the map full with growth disabled: storage_full naming max_map_size, nothing of the "
          "transaction or batch written, every committed row kept; a larger max_map_size lets it go on") {
    temp_dir dir;
    sim_time t;
    auto o = options_at(dir.path() / "replica.mdb");
    o.map_size = o.max_map_size = 1 << 20;
    std::string rows;
    {
        auto f = open_at(o, t);
        const auto [error, committed] = fill_until_full(f, 0, 300);
        REQUIRE(error.has_value());
        CHECK(committed > 10);
        CHECK(error->code() == errc::storage_full);
        CHECK(error->message().find("max_map_size") != std::string::npos);
        CHECK(f.store->map_size() == std::size_t{1} << 20);
        rows = rows_text(*f.rep);
        CHECK(crdtsync::check(*f.rep).ok());

        const auto dump = f->dump();
        const auto e = storage_error_of([&] { (void)f->apply(remote_batch(t, 200, 300)); });
        REQUIRE(e.has_value());
        CHECK(e->code() == errc::storage_full);
        CHECK(f->dump() == dump);
    }
    {
        auto f = open_at(o, t);
        CHECK(rows_text(*f.rep) == rows);
        CHECK(crdtsync::check(*f.rep).ok());
    }
    o.max_map_size = 16 << 20;
    auto f = open_at(o, t);
    CHECK(f->apply(remote_batch(t, 200, 300)).rejected.empty());
    fill(*f.rep, 50'000, 200, 20, 300);
    CHECK(f.store->map_size() > std::size_t{1} << 20);
    CHECK(crdtsync::check(*f.rep).ok());
}

// ================================================================== garbage records

TEST_CASE("storage faults: any record of a replica overwritten with garbage gives a typed error or a working "
          "replica, never a crash or an untyped exception") {
    // Damage LMDB cannot see: each record (meta, table, row, change-log
    // entry, tombstone index, peer, migration) replaced through the store
    // by garbage of six shapes. The replica's decoders must refuse it with a
    // crdtsync error (or read it as some value: nothing checksums a record).
    temp_dir dir;
    sim_time t;
    const auto path = dir.path() / "replica.mdb";
    const auto o = options_at(path);
    {
        auto f = open_at(o, t);
        fill(*f.rep, 0, 30, 10, 20);
        f->write([](auto& tx) { tx.insert("notes", row{{"k", value{"n"}}, {"body", value{"b"}}}); });
        crdtsync::memory_store ps;
        replica_t<crdtsync::memory_store> peer{ps, options_for(delete_policy::insert_revives, 0x74), fake_clock{&t.now}};
        REQUIRE(peer.apply(changes_of(*f.rep)).rejected.empty());
        peer.write([](auto& tx) { tx.erase("notes", {value{"n"}}); });
        const auto d = peer.changes_since(f->site_id(), 0);
        REQUIRE(f->apply_from(peer.site_id(), d).rejected.empty());
        f->acknowledge(peer.site_id(), f->position());
        REQUIRE(crdtsync::check(*f.rep).ok());
    }
    const std::string pristine = file_bytes(path);
    std::vector<std::pair<std::string, std::string>> records;
    {
        lmdb_store s{o};
        s.read().scan("", "", [&](std::string_view k, std::string_view v) {
            records.emplace_back(std::string(k), std::string(v));
            return true;
        });
    }
    REQUIRE(records.size() > 40);
    constexpr std::size_t shapes = 6;
    const auto garbage = [&](std::size_t i) {
        const auto& v = records[i / shapes].second;
        std::mt19937_64 rng(i);
        std::string g;
        switch (i % shapes) {
        case 0: break;                                  // empty
        case 1: g = v.substr(0, v.size() / 2); break;   // cut in half
        case 2: g = v.substr(0, v.size() - (v.empty() ? 0 : 1)); break; // a byte short
        case 3: g = v + static_cast<char>(rng()); break; // a byte long
        case 4: g = v; for (auto& c : g) c = static_cast<char>(rng()); break; // random, same length
        default: g.resize(1 + rng() % 64); for (auto& c : g) c = static_cast<char>(rng()); break;
        }
        return g;
    };
    static constexpr const char* shape_names[] = {"empty", "half", "a byte short", "a byte long", "random", "random length"};
    const auto label = [&](std::size_t i) {
        std::string key;
        for (const unsigned char c : records[i / shapes].first)
            key += std::isprint(c) ? std::string(1, static_cast<char>(c)) : "\\x" + std::string(1, "0123456789abcdef"[c >> 4]) + "0123456789abcdef"[c & 15];
        return "record " + key + " (" + shape_names[i % shapes] + ")";
    };
    std::vector<std::string> lines;
    const auto crashes = sweep(records.size() * shapes, label, [&](std::size_t i, const auto& report) {
        write_file(path, pristine);
        {
            lmdb_store s{o};
            auto w = s.write();
            w.put(records[i / shapes].first, garbage(i));
            w.commit();
        }
        std::string outcome;
        try {
            outcome = battery(o, t);
            if (outcome.empty()) outcome = "works";
        } catch (const std::exception& e) {
            outcome = std::string("UNTYPED: ") + e.what();
        }
        report(label(i) + ": " + outcome);
    }, lines);

    std::map<std::string, std::size_t> counts;
    std::string bad;
    for (const auto& l : lines) {
        const auto what = l.substr(l.rfind("): ") + 3);
        ++counts[what.substr(0, what.find(':'))];
        if (what.rfind("UNTYPED", 0) == 0) bad += l + "\n";
    }
    std::string summary;
    for (const auto& [what, n] : counts) summary += what + " " + std::to_string(n) + "; ";
    INFO("outcomes: " << summary);
    std::string crashed;
    for (const auto& c : crashes) crashed += "\n  " + c;
    CHECK_MESSAGE(crashes.empty(), crashes.size() << " of " << records.size() * shapes << " trials crashed the process:" << crashed);
    CHECK_MESSAGE(bad.empty(), bad);
    CHECK(lines.size() + crashes.size() == records.size() * shapes);
    report_figure("garbage record trials", records.size() * shapes);
    if (std::getenv("CRDTSYNC_RELIABILITY_FIGURES") != nullptr) MESSAGE("outcomes: " << summary);
}

} // namespace replica_tests
