// The store models: the conformance laws over each, and what is particular
// to each (memory: version bookkeeping; LMDB: map growth, reopening, sync
// modes, key limits, errors, damaged files, a full disk; the
// fault-injecting decorator).

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <new>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <doctest/doctest.h>

#include <crdtsync/backends/memory.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/store.hpp>
#include <crdtsync/testing/faulty_store.hpp>
#include <crdtsync/testing/store_laws.hpp>
#if defined(CRDTSYNC_TEST_LMDB)
#include <crdtsync/backends/lmdb.hpp>
#endif

#include <examples/custom_store.hpp>

#include <stdlib.h> // mkdtemp
#if defined(CRDTSYNC_TEST_LMDB) && defined(__linux__)
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

// Allocation failures on demand: while `fail_allocation_in` is n > 0, the
// n-th allocation from now throws std::bad_alloc (then it disarms). This
// program's replacement of the global operator new; unarmed it is malloc.
// (g++ takes the replacement's free() for a mismatch with the builtin new.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::size_t fail_allocation_in = 0;
}
void* operator new(std::size_t n) {
    if (fail_allocation_in != 0 && --fail_allocation_in == 0) throw std::bad_alloc();
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

#if defined(CRDTSYNC_TEST_LMDB) && defined(__linux__)
#define CRDTSYNC_TEST_WRITE_FAULTS 1
// Write failures on demand, for a full disk without filling one: this
// program defines `pwrite` and `writev`, which liblmdb calls to write pages
// and metadata, so its calls land here (the executable's definitions come
// first in symbol lookup). Unarmed they are the system calls. The assembler
// names are explicit because <unistd.h> renames `pwrite` to `pwrite64` in a
// build with 64-bit file offsets, and liblmdb calls `pwrite`.
namespace {
enum class write_fault { none, fail, short_write };
write_fault write_fault_mode = write_fault::none;
int write_fault_errno = 0;
int write_fault_hits = 0;
} // namespace
extern "C" ssize_t crdtsync_test_pwrite(int fd, const void* buf, std::size_t n, off_t off) __asm__("pwrite");
extern "C" ssize_t crdtsync_test_pwrite(int fd, const void* buf, std::size_t n, off_t off) {
    if (write_fault_mode == write_fault::fail) {
        ++write_fault_hits;
        errno = write_fault_errno;
        return -1;
    }
    if (write_fault_mode == write_fault::short_write && n > 1) {
        ++write_fault_hits;
        n /= 2; // what write(2) returns when the disk fills midway
    }
    return static_cast<ssize_t>(::syscall(SYS_pwrite64, fd, buf, n, off));
}
extern "C" ssize_t crdtsync_test_writev(int fd, const struct iovec* iov, int count) __asm__("writev");
extern "C" ssize_t crdtsync_test_writev(int fd, const struct iovec* iov, int count) {
    if (write_fault_mode == write_fault::fail) {
        ++write_fault_hits;
        errno = write_fault_errno;
        return -1;
    }
    if (write_fault_mode == write_fault::short_write && count > 0 && iov[0].iov_len > 1) {
        ++write_fault_hits;
        return static_cast<ssize_t>(::syscall(SYS_write, fd, iov[0].iov_base, iov[0].iov_len / 2));
    }
    return static_cast<ssize_t>(::syscall(SYS_writev, fd, iov, count));
}
#endif

using crdtsync::testing::laws::commit_all;
using crdtsync::testing::laws::entries;
using crdtsync::testing::laws::numbered;
using crdtsync::testing::laws::owned;
using crdtsync::testing::laws::scan_all;

namespace store_tests {

/// A fresh temporary directory, removed with its contents at the end.
class temp_dir {
public:
    temp_dir() {
        auto pattern = (std::filesystem::temp_directory_path() / "crdtsync-store-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
        path_ = pattern;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

// ---------------------------------------------------------------- factories

struct memory_factory {
    using store_type = crdtsync::memory_store;
    static constexpr bool persistent = false;
    std::unique_ptr<store_type> open() { return std::make_unique<store_type>(); }
};

struct custom_factory {
    using store_type = example::custom_store;
    static constexpr bool persistent = false;
    std::unique_ptr<store_type> open() { return std::make_unique<store_type>(); }
};

/// The decorator with no fault armed must be indistinguishable from its store.
struct faulty_memory_factory {
    using store_type = crdtsync::testing::faulty_store<crdtsync::memory_store>;
    static constexpr bool persistent = false;
    std::unique_ptr<store_type> open() { return std::make_unique<store_type>(); }
};

#if defined(CRDTSYNC_TEST_LMDB)
/// Real LMDB files in a fresh directory per test, with the default options
/// (durable commits).
struct lmdb_factory {
    using store_type = crdtsync::lmdb_store;
    static constexpr bool persistent = true;
    temp_dir dir;
    int opened = 0;
    [[nodiscard]] std::string path() const { return (dir.path() / (numbered("store-", opened) + ".mdb")).string(); }
    std::unique_ptr<store_type> open() {
        ++opened;
        return std::make_unique<store_type>(path());
    }
    std::unique_ptr<store_type> reopen() { return std::make_unique<store_type>(path()); }
};

/// The same over an LMDB store behind the fault decorator.
struct faulty_lmdb_factory {
    using store_type = crdtsync::testing::faulty_store<crdtsync::lmdb_store>;
    static constexpr bool persistent = true;
    temp_dir dir;
    [[nodiscard]] std::string path() const { return (dir.path() / "faulty.mdb").string(); }
    std::unique_ptr<store_type> open() {
        std::filesystem::remove(path());
        std::filesystem::remove(path() + "-lock");
        return std::make_unique<store_type>(path());
    }
    std::unique_ptr<store_type> reopen() { return std::make_unique<store_type>(path()); }
};
#endif

} // namespace store_tests

TYPE_TO_STRING(store_tests::memory_factory);
TYPE_TO_STRING(store_tests::custom_factory);
TYPE_TO_STRING(store_tests::faulty_memory_factory);

CRDTSYNC_STORE_LAWS(store_tests::memory_factory, store_tests::custom_factory, store_tests::faulty_memory_factory);

#if defined(CRDTSYNC_TEST_LMDB)
TYPE_TO_STRING(store_tests::lmdb_factory);
TYPE_TO_STRING(store_tests::faulty_lmdb_factory);
CRDTSYNC_STORE_LAWS(store_tests::lmdb_factory, store_tests::faulty_lmdb_factory);
#endif

// ------------------------------------------------------- every model alike

TEST_CASE_TEMPLATE_DEFINE("stores: one write transaction at a time", F, store_single_writer) {
    F factory;
    auto store = factory.open();
    {
        auto w = store->write();
        w.put("k", "v");
        try {
            auto second = store->write();
            FAIL("a second write transaction was opened");
        } catch (const crdtsync::usage_error& e) {
            CHECK(e.code() == crdtsync::errc::invalid_argument);
        }
        w.commit(); // the refusal did not disturb the first writer
    }
    auto w = store->write(); // free again after commit
    CHECK(owned(w.get("k")) == "v");
}

TEST_CASE_TEMPLATE_DEFINE("stores: an ended transaction refuses use; abort() again is harmless", F, store_ended) {
    F factory;
    auto store = factory.open();
    auto w = store->write();
    w.put("k", "v");
    w.commit();
    CHECK_NOTHROW(w.abort());
    CHECK_THROWS_AS(w.commit(), crdtsync::usage_error);
    CHECK_THROWS_AS(w.put("x", "y"), crdtsync::usage_error);
    CHECK_THROWS_AS((void)w.get("k"), crdtsync::usage_error);
    auto moved_from = store->read();
    auto holder = std::move(moved_from);
    CHECK(owned(holder.get("k")) == "v");
    CHECK_THROWS_AS((void)moved_from.get("k"), crdtsync::usage_error); // NOLINT(bugprone-use-after-move)
}

TEST_CASE_TEMPLATE_INVOKE(store_single_writer, store_tests::memory_factory, store_tests::custom_factory,
                          store_tests::faulty_memory_factory);
TEST_CASE_TEMPLATE_INVOKE(store_ended, store_tests::memory_factory);
#if defined(CRDTSYNC_TEST_LMDB)
TEST_CASE_TEMPLATE_INVOKE(store_single_writer, store_tests::lmdb_factory);
TEST_CASE_TEMPLATE_INVOKE(store_ended, store_tests::lmdb_factory);
#endif

// --------------------------------------------------------------- memory

TEST_CASE("memory_store: old versions are kept only while a reader needs them") {
    crdtsync::memory_store store;
    commit_all(store, {{"a", "1"}, {"b", "2"}, {"c", "3"}});
    CHECK(store.stats().retained_versions == 0);
    CHECK(store.stats().nodes == 3);
    {
        // No reader open: overwriting and erasing keep nothing.
        auto w = store.write();
        w.put("a", "1'");
        CHECK(w.erase("b"));
        w.commit();
    }
    CHECK(store.stats().retained_versions == 0);
    CHECK(store.stats().nodes == 2); // the erased key's node is gone

    std::optional<crdtsync::memory_store::read_txn> old_reader{store.read()};
    for (int i = 0; i < 10; ++i) {
        auto w = store.write();
        w.put("a", numbered("v", i));
        if (i == 0) CHECK(w.erase("c"));
        w.put(numbered("n", i), "new");
        w.commit();
    }
    // The reader sees one old version of "a" and of "c", whatever came after.
    CHECK(store.stats().retained_versions == 2);
    CHECK(owned(old_reader->get("a")) == "1'");
    CHECK(owned(old_reader->get("c")) == "3");
    CHECK(store.stats().open_readers == 1);

    auto newer = store.read();
    {
        auto w = store.write();
        w.put("a", "latest");
        w.commit();
    }
    CHECK(store.stats().retained_versions == 3); // plus "a" as `newer` sees it
    old_reader.reset();
    CHECK(store.stats().retained_versions == 1); // only what `newer` needs
    CHECK(owned(newer.get("a")) == "v9");
    CHECK_FALSE(newer.get("c").has_value());
    {
        auto finished = std::move(newer);
    }
    CHECK(store.stats().retained_versions == 0);
    CHECK(store.stats().open_readers == 0);
    CHECK(store.stats().nodes == 11); // "a" and n0..n9: erased "c" left no node
}

TEST_CASE("memory_store: aborting restores the versions readers see") {
    crdtsync::memory_store store;
    commit_all(store, {{"k", "committed"}});
    auto r = store.read();
    const auto view = r.get("k");
    {
        auto w = store.write();
        w.put("k", "pending");
        CHECK(w.erase("k"));
        w.put("fresh", "x");
        auto during = store.read();
        CHECK(owned(during.get("k")) == "committed");
        CHECK_FALSE(during.get("fresh").has_value());
    } // aborted
    CHECK(*view == "committed");
    CHECK(store.stats().nodes == 1);
    CHECK(store.stats().retained_versions == 0);
}

TEST_CASE("memory_store: commit and abort inside the transaction's own scan are refused") {
    crdtsync::memory_store store;
    commit_all(store, {{"a", "1"}, {"b", "2"}});
    auto w = store.write();
    int calls = 0;
    w.scan("", "", [&](std::string_view, std::string_view) {
        ++calls;
        CHECK_THROWS_AS(w.commit(), crdtsync::usage_error);
        CHECK_THROWS_AS(w.abort(), crdtsync::usage_error);
        return true;
    });
    CHECK(calls == 2);
    w.commit(); // fine once the scan is over
    CHECK(scan_all(store.read()).size() == 2);
}

TEST_CASE("memory_store: a large store stays ordered and consistent") {
    crdtsync::memory_store store;
    // Keys inserted out of order, in ascending runs, and appended, to go
    // through every insertion path.
    std::vector<std::string> keys;
    for (int i = 0; i < 3000; ++i) keys.push_back(numbered("r", 100000 + (i * 7919) % 3000));
    for (int i = 0; i < 3000; ++i) keys.push_back(numbered("s", 100000 + i));
    for (int i = 0; i < 3000; ++i) keys.push_back(numbered("m", 100000 + i));
    {
        auto w = store.write();
        for (const auto& k : keys) w.put(k, k);
        w.commit();
    }
    auto r = store.read();
    const auto all = scan_all(r);
    REQUIRE(all.size() == keys.size());
    for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i - 1].first < all[i].first);
    for (const auto& k : keys) CHECK(owned(r.get(k)) == k);
    {
        auto w = store.write();
        for (std::size_t i = 0; i < keys.size(); i += 2) CHECK(w.erase(keys[i]));
        w.commit();
    }
    CHECK(scan_all(r).size() == keys.size()); // the old reader still sees all
    CHECK(scan_all(store.read()).size() == keys.size() / 2);
}

TEST_CASE("memory_store: interleaved ascending runs with erases and aborts match a std::map") {
    // The access pattern of a replica's merge (rows' cells in key order, the
    // change log by sequence number, old log entries erased) mixed with
    // random keys, to drive every lookup and insertion path of the store.
    using crdtsync::testing::laws::model;
    using crdtsync::testing::laws::model_range;
    crdtsync::memory_store store;
    model committed;
    std::mt19937 rng(99);
    auto pick = [&](unsigned n) { return static_cast<unsigned>(rng() % n); };
    int cell = 0, log = 0, erased_log = 0;
    for (int round = 0; round < 200; ++round) {
        model pending = committed;
        auto w = store.write();
        for (int op = 0; op < 60; ++op) {
            std::string key;
            switch (pick(6)) {
            case 0: key = numbered("c", 100000 + (cell += 1 + static_cast<int>(pick(3)))); break;
            case 1: key = numbered("l", 100000 + ++log); break;
            case 2: key = numbered("c", 100000 + static_cast<int>(pick(static_cast<unsigned>(cell + 1)))); break;
            case 3: key = numbered("m", pick(50)); break;
            case 4: key = numbered("l", 100000 + (erased_log < log ? ++erased_log : log)); break;
            default: key = numbered("c", 100000 + cell) + "x"; break;
            }
            const auto it = pending.find(key);
            CHECK(owned(w.get(key)) == (it == pending.end() ? std::nullopt : std::optional(it->second)));
            if (pick(4) == 0) {
                CHECK(w.erase(key) == (pending.erase(key) != 0));
            } else {
                const std::string value = numbered("v", round * 100 + op);
                w.put(key, value);
                pending[key] = value;
            }
        }
        if (pick(5) == 0) {
            w.abort();
        } else {
            w.commit();
            committed = std::move(pending);
        }
        if (round % 20 == 0) CHECK(scan_all(store.read()) == model_range(committed, {}, {}));
    }
    auto r = store.read();
    CHECK(scan_all(r) == model_range(committed, {}, {}));
    for (const auto& [k, v] : committed) CHECK(owned(r.get(k)) == v);
    CHECK(store.stats().nodes == committed.size());
}

TEST_CASE("memory_store: binary keys of every length order as unsigned bytes") {
    // Keys of 0 to 40 bytes over the whole byte range, sharing prefixes:
    // every path of the store's word-wise key compare and hash.
    crdtsync::memory_store store;
    std::map<std::string, std::string> expected; // std::string orders as unsigned bytes
    std::mt19937_64 rng(0x5EED'0003);
    {
        auto w = store.write();
        std::string previous;
        for (int i = 0; i < 4000; ++i) {
            std::string k = previous.substr(0, static_cast<std::size_t>(rng() % (previous.size() + 1)));
            const auto extra = static_cast<std::size_t>(rng() % 12);
            for (std::size_t n = 0; n < extra && k.size() < 40; ++n) k.push_back(static_cast<char>(rng()));
            const std::string v = numbered("v", i);
            w.put(k, v);
            expected[k] = v;
            previous = k;
        }
        w.commit();
    }
    auto r = store.read();
    const auto all = scan_all(r);
    CHECK(all == entries(expected.begin(), expected.end()));
    for (const auto& [k, v] : expected) CHECK(owned(r.get(k)) == v);
    CHECK(store.stats().nodes == expected.size());
}

TEST_CASE("memory_store: the hash index is keyed per store") {
    // Peers choose the keys a replica stores: with a seed of its own per
    // store, which keys share probe runs is not theirs to know.
    using index = crdtsync::detail::memory_index<std::map<std::string, int>::iterator>;
    const index a, b;
    int differ = 0;
    for (int i = 0; i < 16; ++i) differ += a.hash(numbered("k", i)) != b.hash(numbered("k", i)) ? 1 : 0;
    CHECK(differ >= 15); // equal by chance with odds of about 2^-64 each
    // The same index hashes a key the same way every time.
    CHECK(a.hash("key") == a.hash("key"));
    CHECK(a.hash("") != 0);
}

TEST_CASE("memory_store: the arena reuses what overwrites and erases free") {
    // Values on both sides of the arena's 512-byte limit, and empty ones.
    crdtsync::memory_store store;
    auto value_of = [](int key, int round) {
        const std::size_t size = static_cast<std::size_t>(key * 37 % 700);
        return std::string(size, static_cast<char>('a' + round % 26));
    };
    std::size_t after_second = 0;
    for (int round = 0; round < 10; ++round) {
        {
            auto w = store.write();
            for (int k = 0; k < 500; ++k) {
                // Odd rounds erase a third of the keys, even rounds put them back.
                if (round % 2 == 1 && k % 3 == 0) CHECK(w.erase(numbered("k", k)));
                else w.put(numbered("k", k), value_of(k, round));
            }
            w.commit();
        }
        auto r = store.read();
        for (int k = 0; k < 500; ++k) {
            CAPTURE(k);
            if (round % 2 == 1 && k % 3 == 0) CHECK_FALSE(r.get(numbered("k", k)).has_value());
            else CHECK(owned(r.get(numbered("k", k))) == value_of(k, round));
        }
        // A write allocates its new value before the old one is freed (at
        // commit): the second round takes what the whole working set needs,
        // and every later round reuses it.
        if (round == 1) after_second = store.stats().arena_bytes;
        if (round > 1) CHECK(store.stats().arena_bytes == after_second);
    }
    CHECK(after_second > 0);
}

TEST_CASE("memory_store: an allocation failure in put loses nothing") {
    // The n-th allocation of a put fails, for every n until the put runs
    // through: a new node, a value past the arena's limit, the undo log's
    // growth, a new arena chunk. The key must keep what it had (in the
    // transaction and after commit), no empty node may stay behind, and the
    // transaction must still commit the rest.
    using crdtsync::testing::laws::model;
    using crdtsync::testing::laws::model_range;
    enum class target { fresh, untouched, touched };
    auto run = [](std::size_t n, target which, std::size_t value_size) {
        CAPTURE(n);
        CAPTURE(static_cast<int>(which));
        CAPTURE(value_size);
        crdtsync::memory_store store;
        model committed;
        // 65 keys, one a transaction: the undo log keeps its first capacity
        // (64), which the 64 overwrites below fill exactly.
        for (int k = 0; k < 65; ++k) {
            auto w = store.write();
            w.put(numbered("k", k), numbered("v", k));
            w.commit();
            committed[numbered("k", k)] = numbered("v", k);
        }
        const auto nodes = store.stats().nodes;
        auto w = store.write();
        model pending = committed;
        for (int k = 0; k < 64; ++k) {
            w.put(numbered("k", k), numbered("w", k));
            pending[numbered("k", k)] = numbered("w", k);
        }
        // A fresh key and k64 are first touches (the undo log must grow);
        // k5 is in it already.
        const std::string key = which == target::fresh ? numbered("new", 0)
                                : which == target::untouched ? numbered("k", 64)
                                                             : numbered("k", 5);
        const auto before = pending.count(key) ? std::optional(pending[key]) : std::nullopt;
        bool failed = false;
        fail_allocation_in = n;
        try {
            w.put(key, std::string(value_size, 'z'));
        } catch (const std::bad_alloc&) {
            failed = true;
        }
        fail_allocation_in = 0;
        if (failed) {
            CHECK(owned(w.get(key)) == before);
            CHECK(store.stats().nodes == nodes); // no empty node left behind
        } else {
            pending[key] = std::string(value_size, 'z');
        }
        CHECK(scan_all(w) == model_range(pending, {}, {}));
        w.commit();
        CHECK(scan_all(store.read()) == model_range(pending, {}, {}));
        CHECK(store.stats().nodes == pending.size());
        return failed;
    };
    for (const auto which : {target::fresh, target::untouched, target::touched}) {
        for (const std::size_t value_size : {std::size_t{3}, std::size_t{600}}) {
            std::size_t n = 1;
            while (run(n, which, value_size)) {
                ++n;
                REQUIRE(n < 100);
            }
            // A first touch grows the undo log; a large value is allocated.
            if (which != target::touched || value_size > crdtsync::detail::memory_arena::small_limit) CHECK(n > 1);
        }
    }
}

TEST_CASE("memory_store: small, busy key spaces match a std::map") {
    // Few keys, so that lookups, inserts and erases keep landing next to
    // each other: every way the store's remembered positions can go stale.
    using crdtsync::testing::laws::model;
    for (unsigned seed = 0; seed < 60; ++seed) {
        CAPTURE(seed);
        crdtsync::memory_store store;
        model committed;
        std::mt19937 rng(seed);
        auto pick = [&](unsigned n) { return static_cast<unsigned>(rng() % n); };
        const unsigned keys = 3 + seed % 20;
        for (int round = 0; round < 30; ++round) {
            model pending = committed;
            auto w = store.write();
            for (int op = 0; op < 30; ++op) {
                const std::string key = numbered("k", 10 + pick(keys));
                const auto it = pending.find(key);
                REQUIRE(owned(w.get(key)) == (it == pending.end() ? std::nullopt : std::optional(it->second)));
                const unsigned what = pick(3);
                if (what == 0) {
                    REQUIRE(w.erase(key) == (pending.erase(key) != 0));
                } else if (what == 1) {
                    const std::string value = numbered("v", round * 100 + op);
                    w.put(key, value);
                    pending[key] = value;
                }
            }
            if (pick(4) == 0) {
                w.abort();
            } else {
                w.commit();
                committed = std::move(pending);
            }
        }
        REQUIRE(scan_all(store.read()) == crdtsync::testing::laws::model_range(committed, {}, {}));
        REQUIRE(store.stats().nodes == committed.size());
    }
}

// --------------------------------------------------------------- faulty_store

TEST_CASE("faulty_store: a fault at any step leaves the inner store unchanged") {
    crdtsync::testing::faulty_store<crdtsync::memory_store> store;
    const entries base{{"a", "1"}, {"b", "2"}, {"c", "3"}};
    commit_all(store.inner(), base);
    // The transaction makes 5 mutating calls: put, put, erase, put, commit.
    auto run = [&] {
        auto w = store.write();
        w.put("a", "changed");
        w.put("d", "new");
        const bool erased = w.erase("b"); // (not inside CHECK, which would catch the fault)
        CHECK(erased);
        w.put("e", "new");
        w.commit();
    };
    for (std::size_t n = 1; n <= 5; ++n) {
        CAPTURE(n);
        store.fail_at(n);
        try {
            run();
            FAIL("no fault was injected");
        } catch (const crdtsync::storage_error& e) {
            CHECK(e.code() == crdtsync::errc::storage);
            CHECK(std::string(e.what()).find("injected fault") != std::string::npos);
        }
        CHECK(store.calls() == n);
        CHECK_FALSE(store.armed());
        CHECK(scan_all(store.inner().read()) == base);
        CHECK(scan_all(store.read()) == base);
    }
    CHECK(store.faults() == 5);
    store.fail_at(6); // past the last call: never fires
    run();
    CHECK(store.faults() == 5);
    CHECK(store.armed());
    CHECK(scan_all(store.inner().read()) == entries{{"a", "changed"}, {"c", "3"}, {"d", "new"}, {"e", "new"}});
}

TEST_CASE("faulty_store: counts put, erase and commit together, fires once, 0 never fires") {
    crdtsync::testing::faulty_store<crdtsync::memory_store> store;
    store.fail_at(0);
    for (int i = 0; i < 100; ++i) commit_all(store, {{numbered("k", i), "v"}});
    CHECK(store.faults() == 0);
    CHECK(store.calls() == 200);

    store.fail_at(3);
    auto w = store.write();
    w.put("x", "1");              // 1
    CHECK_FALSE(w.erase("none")); // 2 (counted, even though nothing was erased)
    CHECK(owned(w.get("x")) == "1");
    CHECK_THROWS_AS(w.put("y", "2"), crdtsync::storage_error); // 3: fires
    CHECK(store.faults() == 1);
    CHECK_THROWS_AS(w.put("y", "2"), crdtsync::usage_error); // the failed transaction was discarded
    auto w2 = store.write();                                  // so the writer slot is free
    w2.put("z", "3");
    w2.commit(); // disarmed: no second fault
    CHECK(store.faults() == 1);
    CHECK_FALSE(store.read().get("x").has_value());
    CHECK(owned(store.read().get("z")) == "3");
}

// --------------------------------------------------------------- LMDB

#if defined(CRDTSYNC_TEST_LMDB)

namespace store_tests {

// Writes `count` values of `size` bytes in one transaction, retrying after
// storage_full up to `attempts` times; returns how many attempts failed full.
inline int write_with_retry(crdtsync::lmdb_store& store, int count, std::size_t size, int attempts,
                            std::vector<std::string>* messages = nullptr) {
    int full = 0;
    for (int attempt = 0; attempt < attempts; ++attempt) {
        try {
            auto w = store.write();
            for (int i = 0; i < count; ++i) w.put(numbered("big", 100000 + i), std::string(size, 'd'));
            w.commit();
            return full;
        } catch (const crdtsync::storage_error& e) {
            REQUIRE(e.code() == crdtsync::errc::storage_full);
            if (messages != nullptr) messages->push_back(e.message());
            ++full;
        }
    }
    return full;
}

} // namespace store_tests

TEST_CASE("lmdb_store: a full map grows and the retried transaction succeeds") {
    store_tests::temp_dir dir;
    crdtsync::lmdb_options o;
    o.path = (dir.path() / "grow.mdb").string();
    o.map_size = 64 * 1024;
    auto store = std::make_unique<crdtsync::lmdb_store>(o);
    const std::size_t initial = store->map_size();
    CHECK(initial == 64 * 1024);
    commit_all(*store, {{"before", "kept"}});

    std::vector<std::string> messages;
    const int full = store_tests::write_with_retry(*store, 1000, 1024, 12, &messages); // ~1 MiB
    CHECK(full >= 1);
    REQUIRE(full < 12);
    CHECK(store->map_size() > initial);
    CHECK(store->map_size() <= 4 * 1024 * 1024); // doubling, not a leap
    CHECK(messages.front().find("full") != std::string::npos);
    CHECK(messages.front().find("grows to") != std::string::npos);
    CHECK(messages.front().find("retry") != std::string::npos);
    {
        auto r = store->read();
        CHECK(owned(r.get("before")) == "kept");
        int n = 0;
        r.scan("big", "bih", [&](std::string_view, std::string_view v) {
            CHECK(v == std::string(1024, 'd'));
            ++n;
            return true;
        });
        CHECK(n == 1000);
    }
    const std::size_t grown = store->map_size();

    // Reopened, even when asked for a small map, it keeps the size it grew to.
    store.reset();
    store = std::make_unique<crdtsync::lmdb_store>(o);
    CHECK(store->map_size() >= grown);
    CHECK(scan_all(store->read()).size() == 1001);
}

TEST_CASE("lmdb_store: a full map at max_map_size fails with storage_full and keeps the data") {
    store_tests::temp_dir dir;
    crdtsync::lmdb_options o;
    o.path = (dir.path() / "capped.mdb").string();
    o.map_size = 256 * 1024;
    o.max_map_size = 256 * 1024;
    crdtsync::lmdb_store store{o};
    entries data;
    for (int i = 0; i < 20; ++i) data.emplace_back(numbered("small", 100 + i), std::string(100, 's'));
    commit_all(store, data);

    std::vector<std::string> messages;
    CHECK(store_tests::write_with_retry(store, 1000, 1024, 3, &messages) == 3); // never fits
    REQUIRE(messages.size() == 3);
    for (const auto& m : messages) {
        CHECK(m.find("maximum") != std::string::npos);
        CHECK(m.find("max_map_size") != std::string::npos);
    }
    CHECK(store.map_size() == 256 * 1024);
    CHECK(scan_all(store.read()) == data);
    commit_all(store, {{"still", "writable"}}); // a transaction that fits still commits
    CHECK(owned(store.read().get("still")) == "writable");
}

TEST_CASE("lmdb_store: the map grows only once this store's readers have ended") {
    store_tests::temp_dir dir;
    crdtsync::lmdb_options o;
    o.path = (dir.path() / "readers.mdb").string();
    o.map_size = 64 * 1024;
    crdtsync::lmdb_store store{o};
    commit_all(store, {{"k", std::string(40, 'r')}});
    std::optional<crdtsync::lmdb_store::read_txn> reader{store.read()};
    const auto view = reader->get("k");
    REQUIRE(view.has_value());

    std::vector<std::string> messages;
    CHECK(store_tests::write_with_retry(store, 200, 1024, 2, &messages) == 2);
    CHECK(store.map_size() == 64 * 1024); // remapping now would pull the map from under the reader
    REQUIRE(!messages.empty());
    CHECK(messages.back().find("read transactions") != std::string::npos);
    CHECK(*view == std::string(40, 'r')); // the reader's view is intact

    reader.reset(); // the last reader ends: the map grows now
    CHECK(store.map_size() > 64 * 1024);
    CHECK(store_tests::write_with_retry(store, 200, 1024, 8) < 8);
    CHECK(scan_all(store.read()).size() == 201);
}

TEST_CASE("lmdb_store: a failure inside a scan callback discards the transaction") {
    store_tests::temp_dir dir;
    crdtsync::lmdb_options o;
    o.path = (dir.path() / "scanfail.mdb").string();
    o.map_size = 64 * 1024;
    o.max_map_size = 64 * 1024;
    crdtsync::lmdb_store store{o};
    entries data;
    for (int i = 0; i < 10; ++i) data.emplace_back(numbered("k", i), "v");
    commit_all(store, data);
    {
        auto w = store.write();
        int i = 0;
        CHECK_THROWS_AS(w.scan("", "",
                               [&](std::string_view, std::string_view) {
                                   for (int j = 0; j < 100; ++j) w.put(numbered("fill", i++), std::string(1024, 'f'));
                                   return true;
                               }),
                        crdtsync::storage_error);
        CHECK_THROWS_AS(w.put("after", "x"), crdtsync::usage_error); // discarded: ended
        CHECK_NOTHROW(w.abort());
    }
    CHECK(scan_all(store.read()) == data);
    commit_all(store, {{"next", "ok"}});
    CHECK(owned(store.read().get("next")) == "ok");
}

TEST_CASE("lmdb_store: reopening finds the committed data") {
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "reopen.mdb").string();
    {
        crdtsync::lmdb_store store{path};
        commit_all(store, {{"a", "1"}, {"b", "2"}});
        auto w = store.write();
        w.put("c", "uncommitted");
    }
    CHECK(std::filesystem::exists(path));
    CHECK(std::filesystem::exists(path + "-lock"));
    for (int round = 0; round < 3; ++round) {
        crdtsync::lmdb_store store{path};
        CHECK(scan_all(store.read()) == entries{{"a", "1"}, {"b", "2"}});
    }
}

TEST_CASE("lmdb_store: every sync mode opens, commits and reopens") {
    store_tests::temp_dir dir;
    const crdtsync::lmdb_sync modes[] = {crdtsync::lmdb_sync::durable, crdtsync::lmdb_sync::no_meta_sync,
                                         crdtsync::lmdb_sync::no_sync};
    int i = 0;
    for (const auto mode : modes) {
        CAPTURE(i);
        crdtsync::lmdb_options o;
        o.path = (dir.path() / (numbered("sync", i++) + ".mdb")).string();
        o.sync = mode;
        {
            crdtsync::lmdb_store store{o};
            unsigned flags = 0;
            REQUIRE(mdb_env_get_flags(store.native_handle(), &flags) == MDB_SUCCESS);
            CHECK(((flags & MDB_NOSYNC) != 0) == (mode == crdtsync::lmdb_sync::no_sync));
            CHECK(((flags & MDB_NOMETASYNC) != 0) == (mode == crdtsync::lmdb_sync::no_meta_sync));
            for (int t = 0; t < 5; ++t) commit_all(store, {{numbered("t", t), "v"}});
            store.sync();
        }
        crdtsync::lmdb_store again{o};
        CHECK(scan_all(again.read()).size() == 5);
    }
}

TEST_CASE("lmdb_store: keys LMDB cannot hold give a typed error, not a crash") {
    store_tests::temp_dir dir;
    crdtsync::lmdb_store store{(dir.path() / "keys.mdb").string()};
    const std::size_t max = store.max_key_size();
    CHECK(max == 511);
    auto w = store.write();
    w.put("ok", "1");
    w.put(std::string(max, 'm'), "longest");
    try {
        w.put(std::string(max + 1, 'm'), "too long");
        FAIL("an oversized key was accepted");
    } catch (const crdtsync::usage_error& e) {
        CHECK(e.code() == crdtsync::errc::invalid_argument);
        CHECK(e.message().find(std::to_string(max + 1) + " bytes") != std::string::npos);
        CHECK(e.message().find(numbered("maximum key size of ", max)) != std::string::npos);
    }
    CHECK_THROWS_AS(w.put("", "empty key"), crdtsync::usage_error);
    // The refused puts changed nothing, and the transaction goes on.
    CHECK_FALSE(w.get(std::string(max + 1, 'm')).has_value());
    CHECK_FALSE(w.get("").has_value());
    CHECK_FALSE(w.erase(std::string(max + 1, 'm')));
    w.put("n", "2");
    w.commit();
    auto r = store.read();
    CHECK(scan_all(r).size() == 3);
    CHECK(owned(r.get(std::string(max, 'm'))) == "longest");
    // Bounds longer than any key still bound correctly: "mmm...m" (511) is
    // below a 600-byte run of 'm'.
    CHECK(scan_all(r, std::string(600, 'm')) == entries{{"n", "2"}, {"ok", "1"}});
    CHECK(scan_all(r, std::string(max, 'm'), std::string(600, 'm')).size() == 1);
}

TEST_CASE("lmdb_store: open failures and misuse are typed errors") {
    store_tests::temp_dir dir;
    const std::string missing_dir = (dir.path() / "no" / "such" / "dir" / "x.mdb").string();
    try {
        crdtsync::lmdb_store store{missing_dir};
        FAIL("opened a store in a missing directory");
    } catch (const crdtsync::storage_error& e) {
        CHECK(e.code() == crdtsync::errc::storage);
        CHECK(e.message().find(missing_dir) != std::string::npos);
        CHECK(e.message().find("No such file or directory") != std::string::npos);
    }

    crdtsync::lmdb_options bad;
    bad.path = (dir.path() / "bad.mdb").string();
    bad.map_size = 1 << 30;
    bad.max_map_size = 1 << 20;
    CHECK_THROWS_AS(crdtsync::lmdb_store{bad}, crdtsync::usage_error);
    CHECK_THROWS_AS(crdtsync::lmdb_store{std::string()}, crdtsync::usage_error);

    // One open per file and process: a second would break LMDB's locks.
    const std::string path = (dir.path() / "once.mdb").string();
    auto first = std::make_unique<crdtsync::lmdb_store>(path);
    commit_all(*first, {{"k", "v"}});
    try {
        crdtsync::lmdb_store second{path};
        FAIL("the same file was opened twice");
    } catch (const crdtsync::usage_error& e) {
        CHECK(e.message().find("already open") != std::string::npos);
    }
    CHECK(owned(first->read().get("k")) == "v"); // the first is unharmed
    first.reset();
    crdtsync::lmdb_store third{path}; // closed, so it opens again
    CHECK(owned(third.read().get("k")) == "v");
}

TEST_CASE("lmdb_store: faulty_store over LMDB: a fault leaves the file unchanged") {
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "faulty.mdb").string();
    {
        crdtsync::testing::faulty_store<crdtsync::lmdb_store> store{path};
        commit_all(store, {{"a", "1"}});
        store.fail_at(3);
        {
            auto w = store.write();
            w.put("a", "2");
            w.put("b", "2");
            CHECK_THROWS_AS(w.commit(), crdtsync::storage_error);
        }
        CHECK(scan_all(store.inner().read()) == entries{{"a", "1"}});
    }
    crdtsync::lmdb_store reopened{path};
    CHECK(scan_all(reopened.read()) == entries{{"a", "1"}});
}

// ------------------------------------------------ LMDB: damaged files

namespace store_tests {

/// What `many_pages` wrote and what LMDB says of the file.
struct lmdb_file {
    entries data;
    std::size_t page = 0;     // LMDB's page size
    std::size_t required = 0; // (last page + 1) * page: what the file must hold
};

/// A closed LMDB file of many pages (about 90) at `path`: 3000 rows of 100 bytes.
inline lmdb_file many_pages(const std::string& path) {
    lmdb_file f;
    for (int i = 0; i < 3000; ++i) f.data.emplace_back(numbered("row", 100000 + i), std::string(100, 'r'));
    crdtsync::lmdb_store store{path};
    commit_all(store, f.data);
    MDB_stat st{};
    MDB_envinfo info{};
    REQUIRE(mdb_env_stat(store.native_handle(), &st) == MDB_SUCCESS);
    REQUIRE(mdb_env_info(store.native_handle(), &info) == MDB_SUCCESS);
    f.page = st.ms_psize;
    f.required = (info.me_last_pgno + 1) * f.page;
    REQUIRE(info.me_last_pgno > 50);
    REQUIRE(std::filesystem::file_size(path) == f.required);
    return f;
}

/// "(4096 bytes)", as the size appears in messages. (Appended: g++ 12
/// warns wrongly on `"(" + std::to_string(n)`, GCC bug 105329.)
inline std::string exact_size(std::size_t n) {
    std::string out = "(";
    out += std::to_string(n);
    out += " bytes)";
    return out;
}

inline std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A store in `dir` opens, commits and reads back: what a failure before it
/// must not have broken.
inline void another_store_works(const temp_dir& dir) {
    static int n = 0;
    crdtsync::lmdb_store store{(dir.path() / (numbered("healthy", ++n) + ".mdb")).string()};
    commit_all(store, {{"k", "v"}});
    CHECK(owned(store.read().get("k")) == "v");
}

/// Opening `path` and reading it throws storage_error with errc::corrupt,
/// leaves the file as it was, and leaves nothing behind: opening it again
/// fails the same way (not as "already open"), and other stores work.
/// Returns the message.
inline std::string open_fails_corrupt(const temp_dir& dir, const std::string& path) {
    const std::string before = file_bytes(path);
    std::string message;
    for (int attempt = 0; attempt < 2; ++attempt) {
        CAPTURE(attempt);
        try {
            crdtsync::lmdb_store store{path};
            (void)scan_all(store.read());
            FAIL("a damaged file opened and read");
        } catch (const crdtsync::storage_error& e) {
            CHECK(e.code() == crdtsync::errc::corrupt);
            CHECK(std::string(e.what()).find("crdtsync: corrupt: ") == 0);
            message = e.message();
        }
    }
    CHECK(message.find("'" + path + "'") != std::string::npos);
    CHECK(message.find("damaged") != std::string::npos);
    CHECK(message.find("backup") != std::string::npos);
    CHECK(message.find("snapshot") != std::string::npos);
    CHECK(file_bytes(path) == before);
    another_store_works(dir);
    return message;
}

} // namespace store_tests

TEST_CASE("lmdb_store: a truncated file is refused with errc::corrupt, not a crash (SIGBUS)") {
    store_tests::temp_dir dir;
    enum class cut { half, half_and_a_bit, two_pages_and_a_byte, one_page, one_page_and_a_bit, below_a_header };
    int i = 0;
    for (const cut c : {cut::half, cut::half_and_a_bit, cut::two_pages_and_a_byte, cut::one_page,
                        cut::one_page_and_a_bit, cut::below_a_header}) {
        CAPTURE(i);
        const std::string path = (dir.path() / (numbered("cut", i++) + ".mdb")).string();
        const auto f = store_tests::many_pages(path);
        const std::size_t half = f.required / 2 / f.page * f.page;
        std::size_t size = 0;
        switch (c) {
        case cut::half: size = half; break;
        case cut::half_and_a_bit: size = half + 123; break; // not a whole number of pages
        case cut::two_pages_and_a_byte: size = 2 * f.page + 1; break;
        case cut::one_page: size = f.page; break;
        case cut::one_page_and_a_bit: size = f.page + 100; break;
        case cut::below_a_header: size = 100; break;
        }
        CAPTURE(size);
        std::filesystem::resize_file(path, size);
        const std::string message = store_tests::open_fails_corrupt(dir, path);
        if (size >= 2 * f.page) {
            // Both meta pages are there: the size check names both sizes.
            CHECK(message.find(store_tests::exact_size(size)) != std::string::npos);
            CHECK(message.find(store_tests::exact_size(f.required)) != std::string::npos);
            CHECK(message.find("truncated") != std::string::npos);
        } else {
            // Not even the two meta pages: LMDB finds no database.
            CHECK(message.find("not an LMDB database") != std::string::npos);
            CHECK(message.find("MDB_INVALID") != std::string::npos);
        }
        // Restored from a copy, the same path opens again.
        std::filesystem::remove(path);
        crdtsync::lmdb_store restored{path};
        commit_all(restored, f.data);
        CHECK(scan_all(restored.read()) == f.data);
    }
}

TEST_CASE("lmdb_store: a file that is not an LMDB database is refused with errc::corrupt") {
    store_tests::temp_dir dir;
    std::mt19937 rng(20);
    std::string noise(64 * 1024, '\0');
    for (auto& b : noise) b = static_cast<char>(rng());
    const std::string random_path = (dir.path() / "random.mdb").string();
    store_tests::write_file(random_path, noise);
    CHECK(store_tests::open_fails_corrupt(dir, random_path).find("65536 bytes") != std::string::npos);

    const std::string text_path = (dir.path() / "text.mdb").string();
    store_tests::write_file(text_path, "this is a text file, not a database\n");
    CHECK(store_tests::open_fails_corrupt(dir, text_path).find("not an LMDB database") != std::string::npos);

    // A real LMDB file whose first meta page was overwritten with zeros.
    const std::string zeroed_path = (dir.path() / "zeroed-meta.mdb").string();
    const auto f = store_tests::many_pages(zeroed_path);
    std::string bytes = store_tests::file_bytes(zeroed_path);
    std::fill_n(bytes.begin(), f.page, '\0');
    store_tests::write_file(zeroed_path, bytes);
    (void)store_tests::open_fails_corrupt(dir, zeroed_path);
}

TEST_CASE("lmdb_store: a file of another LMDB data format is errc::format_version, not corrupt") {
    // Both meta pages keep LMDB's magic but name another data format
    // version: a file this LMDB cannot read, not a damaged one.
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "version.mdb").string();
    const auto f = store_tests::many_pages(path);
    std::string bytes = store_tests::file_bytes(path);
    // A meta page: a 16-byte page header, then MDB_meta's mm_magic and
    // mm_version (32 bits each, native order).
    const auto u32_at = [&](std::size_t at) {
        std::uint32_t v = 0;
        std::memcpy(&v, bytes.data() + at, sizeof v);
        return v;
    };
    for (const std::size_t meta : {std::size_t{0}, f.page}) {
        REQUIRE(u32_at(meta + 16) == 0xBEEFC0DEu); // MDB_MAGIC: the layout is as assumed
        REQUIRE(u32_at(meta + 20) == 1u);          // MDB_DATA_VERSION of LMDB 0.9
        const std::uint32_t other = 999;
        std::memcpy(bytes.data() + meta + 20, &other, sizeof other);
    }
    store_tests::write_file(path, bytes);
    try {
        crdtsync::lmdb_store store{path};
        FAIL("a file of another data format opened");
    } catch (const crdtsync::storage_error& e) {
        CHECK(e.code() == crdtsync::errc::format_version);
        CHECK(e.message().find(path) != std::string::npos);
        CHECK(e.message().find("MDB_VERSION_MISMATCH") != std::string::npos);
        CHECK(e.message().find("incompatible LMDB version") != std::string::npos);
    }
    CHECK(store_tests::file_bytes(path) == bytes);
    store_tests::another_store_works(dir);
}

TEST_CASE("lmdb_store: an empty file is a new store") {
    // LMDB takes a file of 0 bytes for one it is to create: a process that
    // opens the file while another is creating it must not be refused
    // (LMDB's lock file makes the second wait until the first has written
    // the meta pages).
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "empty.mdb").string();
    store_tests::write_file(path, "");
    REQUIRE(std::filesystem::file_size(path) == 0);
    {
        crdtsync::lmdb_store store{path};
        CHECK(scan_all(store.read()).empty());
        CHECK(store.map_size() >= crdtsync::lmdb_options{}.map_size);
        commit_all(store, {{"a", "1"}, {"b", "2"}});
    }
    CHECK(std::filesystem::file_size(path) > 0);
    crdtsync::lmdb_store again{path};
    CHECK(scan_all(again.read()) == entries{{"a", "1"}, {"b", "2"}});
}

TEST_CASE("lmdb_store: bytes past the last page (a commit cut short) are harmless") {
    // A commit that fails midway (a full disk) may leave part of a page past
    // the last one the metadata counts; the data is all there, so the file
    // opens, and LMDB writes that page whole when it next needs it.
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "tail.mdb").string();
    const auto f = store_tests::many_pages(path);
    std::filesystem::resize_file(path, f.required + f.page / 2 + 7);
    entries more;
    for (int i = 0; i < 500; ++i) more.emplace_back(numbered("more", 100000 + i), std::string(100, 'm'));
    {
        crdtsync::lmdb_store store{path};
        CHECK(scan_all(store.read()) == f.data);
        commit_all(store, more);
    }
    CHECK(std::filesystem::file_size(path) % f.page == 0);
    crdtsync::lmdb_store again{path};
    const auto all = scan_all(again.read());
    CHECK(all.size() == f.data.size() + more.size());
    CHECK(owned(again.read().get(numbered("more", 100499))) == std::string(100, 'm'));
}

TEST_CASE("lmdb_store: data pages overwritten with zeros give errc::corrupt on use, not a crash") {
    // The file is long enough, so it opens; the first read or write that
    // reaches a zeroed page finds it is not a page of the tree.
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "zeroed.mdb").string();
    const auto f = store_tests::many_pages(path);
    std::string bytes = store_tests::file_bytes(path);
    std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(2 * f.page), bytes.end(), '\0');
    store_tests::write_file(path, bytes);
    {
        crdtsync::lmdb_store store{path};
        auto expect_corrupt = [&](auto&& use) {
            try {
                use();
                FAIL("a zeroed page went unnoticed");
            } catch (const crdtsync::storage_error& e) {
                CHECK(e.code() == crdtsync::errc::corrupt);
                CHECK(e.message().find(path) != std::string::npos);
                CHECK(e.message().find("damaged") != std::string::npos);
            }
        };
        expect_corrupt([&] { (void)store.read().get(f.data[1500].first); });
        expect_corrupt([&] { (void)scan_all(store.read()); });
        expect_corrupt([&] {
            auto w = store.write();
            w.put("new", "value");
            w.commit();
        });
        store_tests::another_store_works(dir);
    }
    CHECK(store_tests::file_bytes(path) == bytes);
}

// ------------------------------------------------ LMDB: the structural walk (verify)

namespace store_tests {

/// A copy of an LMDB file's bytes with LMDB 0.9's page layout (64-bit),
/// for damaging one field at a time: page header (pgno, pad, flags, lower,
/// upper), node pointers after the 16-byte header, nodes (lo, hi, flags,
/// ksize, key, data), the meta page's database records.
struct lmdb_bytes {
    std::string bytes;
    std::size_t page = 0;

    template <class T>
    [[nodiscard]] T get(std::size_t at) const {
        T v{};
        std::memcpy(&v, bytes.data() + at, sizeof v);
        return v;
    }
    template <class T>
    void set(std::size_t at, T v) {
        std::memcpy(bytes.data() + at, &v, sizeof v);
    }
    [[nodiscard]] std::size_t at(std::uint64_t pgno) const { return static_cast<std::size_t>(pgno) * page; }
    // The meta page of the newest transaction, and its main database record.
    [[nodiscard]] std::size_t meta() const { return get<std::uint64_t>(144) >= get<std::uint64_t>(page + 144) ? 0 : page; }
    [[nodiscard]] std::size_t main_record() const { return meta() + 88; }
    [[nodiscard]] std::size_t free_record() const { return meta() + 40; }
    [[nodiscard]] std::uint64_t root() const { return get<std::uint64_t>(main_record() + 40); }
    [[nodiscard]] std::uint16_t flags(std::uint64_t pgno) const { return get<std::uint16_t>(at(pgno) + 10); }
    [[nodiscard]] std::size_t keys(std::uint64_t pgno) const { return (get<std::uint16_t>(at(pgno) + 12) - 16u) / 2; }
    // Byte offset in the file of node i of page pgno.
    [[nodiscard]] std::size_t node(std::uint64_t pgno, std::size_t i) const {
        return at(pgno) + get<std::uint16_t>(at(pgno) + 16 + 2 * i);
    }
    [[nodiscard]] std::uint64_t child(std::uint64_t pgno, std::size_t i) const {
        const std::size_t n = node(pgno, i);
        return get<std::uint16_t>(n) | std::uint64_t{get<std::uint16_t>(n + 2)} << 16 |
               std::uint64_t{get<std::uint16_t>(n + 4)} << 32;
    }
    void set_child(std::uint64_t pgno, std::size_t i, std::uint64_t to) {
        const std::size_t n = node(pgno, i);
        set(n, static_cast<std::uint16_t>(to));
        set(n + 2, static_cast<std::uint16_t>(to >> 16));
        set(n + 4, static_cast<std::uint16_t>(to >> 32));
    }
    // The leftmost leaf, and the leaf holding a node with F_BIGDATA.
    [[nodiscard]] std::uint64_t first_leaf() const {
        std::uint64_t p = root();
        while (flags(p) == 1) p = child(p, 0);
        return p;
    }
    [[nodiscard]] std::uint64_t leaf_at(std::size_t k) const {
        std::uint64_t p = root();
        while (flags(p) == 1) p = child(p, std::min(k, keys(p) - 1));
        return p;
    }
};

/// A closed store of about 1,300 pages and depth 3: 20,000 rows, every
/// 500th value 9,000 bytes long (overflow pages), a tenth of them erased
/// again (free pages).
inline lmdb_bytes deep_store(const std::string& path) {
    {
        crdtsync::lmdb_store store{path};
        for (int t = 0; t < 20; ++t) {
            auto w = store.write();
            for (int i = t * 1000; i < (t + 1) * 1000; ++i)
                w.put(numbered("row", 100000 + i), std::string(i % 500 == 0 ? 9000 : 100, 'r'));
            for (int i = t * 1000; i < (t + 1) * 1000; i += 10) (void)w.erase(numbered("row", 100000 + i + 3));
            w.commit();
        }
    }
    lmdb_bytes b{file_bytes(path), 0};
    b.page = static_cast<std::size_t>(b.get<std::uint32_t>(40));
    REQUIRE(b.get<std::uint16_t>(b.main_record() + 6) == 3); // depth
    return b;
}

/// Opening `path` with verify_on_open throws errc::corrupt whose message
/// names `what`; the file is left as it was. Returns the message.
inline std::string verify_refuses(const temp_dir& dir, const std::string& path, const std::string& what) {
    const std::string before = file_bytes(path);
    crdtsync::lmdb_options o;
    o.path = path;
    o.verify_on_open = true;
    std::string message;
    try {
        crdtsync::lmdb_store store{o};
        FAIL("verify_on_open let a damaged file through (", what, ")");
    } catch (const crdtsync::storage_error& e) {
        CHECK(e.code() == crdtsync::errc::corrupt);
        message = e.message();
    }
    CHECK_MESSAGE(message.find(what) != std::string::npos, message);
    CHECK(message.find("is damaged: ") != std::string::npos);
    CHECK(message.find("backup") != std::string::npos);
    CHECK(file_bytes(path) == before);
    another_store_works(dir);
    return message;
}

} // namespace store_tests

TEST_CASE("lmdb_store: verify passes sound files, with named databases and every kind of duplicates") {
    store_tests::temp_dir dir;
    SUBCASE("a store's own file: overflow values, erased rows, several commits") {
        const std::string path = (dir.path() / "deep.mdb").string();
        (void)store_tests::deep_store(path);
        crdtsync::lmdb_options o;
        o.path = path;
        o.verify_on_open = true;
        crdtsync::lmdb_store store{o};
        const auto counts = store.verify();
        MDB_envinfo info{};
        MDB_stat st{};
        REQUIRE(mdb_env_info(store.native_handle(), &info) == MDB_SUCCESS);
        REQUIRE(mdb_env_stat(store.native_handle(), &st) == MDB_SUCCESS);
        CHECK(counts.pages == info.me_last_pgno + 1);
        // The main database's pages, and the free-space database's own.
        CHECK(counts.in_use > st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
        CHECK(st.ms_overflow_pages > 0);
        CHECK(counts.in_use + counts.free + 2 == counts.pages);
        CHECK(counts.lost == 0);
        CHECK(counts.free > 0);
        CHECK(counts.entries == st.ms_entries);
        CHECK(counts.entries == 18000);
        CHECK(counts.databases == 0);
        // It goes on working, and verifies after more commits.
        auto w = store.write();
        w.put("after", "verify");
        w.commit();
        CHECK(store.verify().entries == 18001);
    }
    SUBCASE("named databases written through liblmdb: plain, sorted duplicates (in sub-pages and in sub-databases), "
            "fixed-size and integer duplicates, integer and reverse keys, overflow values") {
        const std::string path = (dir.path() / "named.mdb").string();
        for (const int dups_per_key : {5, 60, 600}) {
            CAPTURE(dups_per_key);
            std::filesystem::remove(path);
            std::filesystem::remove(path + "-lock");
            {
                MDB_env* env = nullptr;
                REQUIRE(mdb_env_create(&env) == MDB_SUCCESS);
                REQUIRE(mdb_env_set_maxdbs(env, 10) == MDB_SUCCESS);
                REQUIRE(mdb_env_set_mapsize(env, std::size_t{1} << 28) == MDB_SUCCESS);
                REQUIRE(mdb_env_open(env, path.c_str(), MDB_NOSUBDIR, 0644) == MDB_SUCCESS);
                const unsigned flags[] = {0u, MDB_DUPSORT, MDB_DUPSORT | MDB_DUPFIXED, MDB_INTEGERKEY, MDB_REVERSEKEY,
                                          MDB_DUPSORT | MDB_DUPFIXED | MDB_INTEGERDUP, MDB_DUPSORT | MDB_REVERSEDUP};
                for (int round = 0; round < 3; ++round) {
                    MDB_txn* txn = nullptr;
                    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == MDB_SUCCESS);
                    for (std::size_t d = 0; d < std::size(flags); ++d) {
                        MDB_dbi dbi = 0;
                        const std::string name = numbered("db", static_cast<long long>(d));
                        REQUIRE(mdb_dbi_open(txn, name.c_str(), flags[d] | MDB_CREATE, &dbi) == MDB_SUCCESS);
                        const bool dups = (flags[d] & MDB_DUPSORT) != 0;
                        const bool fixed = (flags[d] & MDB_DUPFIXED) != 0;
                        for (int i = 0; i < 1200; ++i) {
                            std::uint64_t int_key = static_cast<std::uint64_t>(i) * 7919 + static_cast<std::uint64_t>(round);
                            std::uint64_t int_value = static_cast<std::uint64_t>(i) * 31 + static_cast<std::uint64_t>(round);
                            const std::string key = numbered("k", dups ? i % (1200 / dups_per_key) : i) + "/" + std::to_string(round);
                            const std::string value = std::string(d == 0 && i % 100 == 0 ? 9000 : 20 + i % 40, 'v') + std::to_string(i);
                            MDB_val k{key.size(), const_cast<char*>(key.data())};
                            if (d == 3) k = MDB_val{sizeof int_key, &int_key};
                            MDB_val v{value.size(), const_cast<char*>(value.data())};
                            if (fixed) v = MDB_val{sizeof int_value, &int_value};
                            REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == MDB_SUCCESS);
                        }
                        if (dups) { // erase some keys' duplicates: free pages, emptied sub-databases
                            for (int i = 0; i < 3; ++i) {
                                const std::string key = numbered("k", i) + "/" + std::to_string(round);
                                MDB_val k{key.size(), const_cast<char*>(key.data())};
                                const int rc = mdb_del(txn, dbi, &k, nullptr);
                                REQUIRE((rc == MDB_SUCCESS || rc == MDB_NOTFOUND));
                            }
                        }
                    }
                    MDB_dbi main = 0;
                    REQUIRE(mdb_dbi_open(txn, nullptr, 0, &main) == MDB_SUCCESS);
                    for (int i = 0; i < 100; ++i) {
                        const std::string key = numbered("zz", i);
                        MDB_val k{key.size(), const_cast<char*>(key.data())};
                        REQUIRE(mdb_put(txn, main, &k, &k, 0) == MDB_SUCCESS);
                    }
                    REQUIRE(mdb_txn_commit(txn) == MDB_SUCCESS);
                }
                mdb_env_close(env);
            }
            crdtsync::lmdb_options o;
            o.path = path;
            o.verify_on_open = true;
            crdtsync::lmdb_store store{o};
            const auto counts = store.verify();
            CHECK(counts.databases == 7);
            CHECK(counts.entries == 107);
            CHECK(counts.in_use + counts.free + 2 == counts.pages);
            CHECK(counts.lost == 0);
        }
    }
}

TEST_CASE("lmdb_store: verify_on_open refuses a file whose structure is damaged with errc::corrupt naming the page, "
          "before LMDB reads it") {
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "damaged.mdb").string();
    const auto pristine = store_tests::deep_store(path);
    const std::uint64_t root = pristine.root();
    const std::uint64_t leaf = pristine.first_leaf();
    const std::uint64_t branch = pristine.child(root, 0);
    const std::uint64_t last = pristine.get<std::uint64_t>(pristine.meta() + 136);
    REQUIRE(pristine.flags(branch) == 1);
    const auto damaged = [&](const std::string& what, auto&& damage) {
        CAPTURE(what);
        auto b = pristine;
        damage(b);
        store_tests::write_file(path, b.bytes);
        return store_tests::verify_refuses(dir, path, what);
    };
    const auto page = [](std::uint64_t p) { return "page " + std::to_string(p) + " "; };

    // Page numbers: past the end, a cycle, a page used twice.
    damaged(page(branch) + "points at page " + std::to_string(last + 7), [&](store_tests::lmdb_bytes& b) { b.set_child(branch, 1, last + 7); });
    damaged(page(root) + "is reached twice", [&](store_tests::lmdb_bytes& b) { b.set_child(branch, 2, root); });
    damaged(page(pristine.child(branch, 1)) + "is reached twice", [&](store_tests::lmdb_bytes& b) {
        b.set_child(branch, 2, b.child(branch, 1));
    });
    damaged("records itself as page", [&](store_tests::lmdb_bytes& b) { b.set<std::uint64_t>(b.at(leaf), leaf + 1); });
    // Page kinds and bounds.
    damaged(page(leaf) + "has flags 1 at the leaf level", [&](store_tests::lmdb_bytes& b) { b.set<std::uint16_t>(b.at(leaf) + 10, 1); });
    damaged(page(branch) + "has flags 2 at level 2", [&](store_tests::lmdb_bytes& b) { b.set<std::uint16_t>(b.at(branch) + 10, 2); });
    damaged(page(leaf) + "leaf page has free-space bounds", [&](store_tests::lmdb_bytes& b) {
        b.set<std::uint16_t>(b.at(leaf) + 14, static_cast<std::uint16_t>(b.page + 2));
    });
    damaged(page(leaf) + "leaf page has free-space bounds", [&](store_tests::lmdb_bytes& b) { b.set<std::uint16_t>(b.at(leaf) + 12, 17); });
    damaged(page(leaf) + "leaf page holds no nodes", [&](store_tests::lmdb_bytes& b) { b.set<std::uint16_t>(b.at(leaf) + 12, 16); });
    damaged(page(leaf) + "leaf page: node 3 is at offset", [&](store_tests::lmdb_bytes& b) {
        b.set<std::uint16_t>(b.at(leaf) + 16 + 6, static_cast<std::uint16_t>(b.page - 4));
    });
    damaged(page(leaf) + "leaf page: node 2 has a key of 4000 bytes", [&](store_tests::lmdb_bytes& b) {
        b.set<std::uint16_t>(b.node(leaf, 2) + 6, 4000);
    });
    damaged(page(leaf) + "leaf page: node 1 has 70000 bytes of data", [&](store_tests::lmdb_bytes& b) {
        b.set<std::uint16_t>(b.node(leaf, 1), static_cast<std::uint16_t>(70000 & 0xffff));
        b.set<std::uint16_t>(b.node(leaf, 1) + 2, 1);
    });
    damaged(page(leaf) + "leaf page: node 1 has unknown flags 8", [&](store_tests::lmdb_bytes& b) { b.set<std::uint16_t>(b.node(leaf, 1) + 4, 8); });
    damaged(page(leaf) + "leaf page: node 1 names a database with a record of 100 bytes", [&](store_tests::lmdb_bytes& b) {
        b.set<std::uint16_t>(b.node(leaf, 1) + 4, 2);
    });
    // Keys out of order: two node pointers swapped, a separator above its child's keys.
    damaged(page(leaf) + "has its key 5 out of order", [&](store_tests::lmdb_bytes& b) {
        const auto p4 = b.get<std::uint16_t>(b.at(leaf) + 16 + 8);
        b.set<std::uint16_t>(b.at(leaf) + 16 + 8, b.get<std::uint16_t>(b.at(leaf) + 16 + 10));
        b.set<std::uint16_t>(b.at(leaf) + 16 + 10, p4);
    });
    damaged(page(pristine.child(branch, 1)) + "has its key 0 out of order", [&](store_tests::lmdb_bytes& b) {
        const std::size_t n = b.node(branch, 1);
        b.bytes[n + 8 + b.get<std::uint16_t>(n + 6) - 1] = '\x7f'; // the separator's last byte raised
    });
    // Overflow values.
    {
        // The first row's value is 9,000 bytes: three overflow pages.
        const std::uint64_t big_leaf = leaf;
        const std::size_t big_node = 0;
        REQUIRE(pristine.get<std::uint16_t>(pristine.node(big_leaf, big_node) + 4) == 1);
        const auto value_at = [&](const store_tests::lmdb_bytes& b) {
            return b.node(big_leaf, big_node) + 8 + b.get<std::uint16_t>(b.node(big_leaf, big_node) + 6);
        };
        const auto first = pristine.get<std::uint64_t>(value_at(pristine));
        damaged(page(big_leaf) + "leaf page: node " + std::to_string(big_node) + " points at overflow page 999999",
                [&](store_tests::lmdb_bytes& b) { b.set<std::uint64_t>(value_at(b), 999999); });
        damaged(page(first) + "is named by leaf page: node", [&](store_tests::lmdb_bytes& b) { b.set<std::uint32_t>(b.at(first) + 12, 1); });
        damaged(page(first) + "is named by leaf page: node", [&](store_tests::lmdb_bytes& b) { b.set<std::uint16_t>(b.at(first) + 10, 2); });
        damaged(page(first) + "is named by leaf page: node", [&](store_tests::lmdb_bytes& b) {
            b.set<std::uint32_t>(b.at(first) + 12, static_cast<std::uint32_t>(last));
        });
    }
    // The meta page's records, and the free-space list.
    damaged("the main database, whose record counts 17999 entries; the tree has 18000", [&](store_tests::lmdb_bytes& b) {
        b.set<std::uint64_t>(b.main_record() + 32, 17999);
    });
    damaged("whose record counts", [&](store_tests::lmdb_bytes& b) { b.set<std::uint64_t>(b.main_record() + 16, b.get<std::uint64_t>(b.main_record() + 16) + 1); });
    damaged(page(root) + "is the root of the main database, recorded with depth 40", [&](store_tests::lmdb_bytes& b) {
        b.set<std::uint16_t>(b.main_record() + 6, 40);
    });
    damaged(page(root) + "has flags 1 at the leaf level", [&](store_tests::lmdb_bytes& b) { b.set<std::uint16_t>(b.main_record() + 6, 1); });
    damaged(page(last + 5) + "is named by the main database", [&](store_tests::lmdb_bytes& b) { b.set<std::uint64_t>(b.main_record() + 40, last + 5); });
    {
        // The first free page listed, made a page in use (the root).
        const std::uint64_t free_root = pristine.get<std::uint64_t>(pristine.free_record() + 40);
        REQUIRE(pristine.flags(free_root) == 2);
        REQUIRE(pristine.get<std::uint16_t>(pristine.node(free_root, 0) + 4) == 0);
        const auto list_at = [&](const store_tests::lmdb_bytes& b) { return b.node(free_root, 0) + 8 + 8; };
        REQUIRE(pristine.get<std::uint64_t>(list_at(pristine)) > 0);
        damaged(page(root) + "is reached twice", [&](store_tests::lmdb_bytes& b) {
            b.set<std::uint64_t>(list_at(b) + 8, root);
        });
        damaged("has a list of free pages of", [&](store_tests::lmdb_bytes& b) {
            b.set<std::uint64_t>(list_at(b), b.get<std::uint64_t>(list_at(b)) + 1);
        });
        // One page fewer listed (the count shortened, the node's data with
        // it) is a leaked page: counted, not refused, since LMDB never reads
        // it; the file opens with every row.
        auto b = pristine;
        const std::size_t n = b.node(free_root, 0);
        b.set<std::uint64_t>(list_at(b), b.get<std::uint64_t>(list_at(b)) - 1);
        b.set<std::uint16_t>(n, static_cast<std::uint16_t>(b.get<std::uint16_t>(n) - 8));
        store_tests::write_file(path, b.bytes);
        crdtsync::lmdb_options o;
        o.path = path;
        o.verify_on_open = true;
        crdtsync::lmdb_store store{o};
        CHECK(store.verify().lost == 1);
        CHECK(scan_all(store.read()).size() == 18000);
    }
    // The sound file again: it verifies, and has every row.
    store_tests::write_file(path, pristine.bytes);
    crdtsync::lmdb_options o;
    o.path = path;
    o.verify_on_open = true;
    crdtsync::lmdb_store store{o};
    CHECK(scan_all(store.read()).size() == 18000);
}

TEST_CASE("lmdb_store: verify while another process commits finds a sound file every time") {
    // The walk holds a read transaction, so no writer reuses the pages of
    // its snapshot; a meta page rewritten meanwhile starts it again.
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "busy.mdb").string();
    {
        crdtsync::lmdb_store store{path};
        commit_all(store, {{"seed", "1"}});
    }
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int code = 0;
        try {
            crdtsync::lmdb_options o;
            o.path = path;
            o.sync = crdtsync::lmdb_sync::no_sync;
            crdtsync::lmdb_store store{o};
            for (int t = 0; t < 400; ++t) {
                auto w = store.write();
                for (int i = 0; i < 50; ++i) w.put(numbered("k", (t * 50 + i) % 3000), std::string(80 + t % 50, 'w'));
                if (t % 3 == 0) (void)w.erase(numbered("k", t % 3000));
                w.commit();
            }
        } catch (...) {
            code = 1;
        }
        ::_exit(code);
    }
    int verified = 0;
    std::string failure;
    int status = 0;
    {
        crdtsync::lmdb_store store{path};
        while (::waitpid(pid, &status, WNOHANG) == 0) {
            try {
                (void)store.verify();
                ++verified;
            } catch (const crdtsync::error& e) {
                failure = e.what();
                ::waitpid(pid, &status, 0);
                break;
            }
        }
        CHECK(failure == "");
        CHECK(store.verify().entries > 2000);
    }
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    MESSAGE("verified " << verified << " times while another process committed");
    CHECK(verified > 0);
}

#if defined(CRDTSYNC_TEST_WRITE_FAULTS)
namespace store_tests {

/// Arms the write faults for its lifetime.
struct write_faults {
    write_faults(write_fault mode, int error = 0) {
        write_fault_mode = mode;
        write_fault_errno = error;
        write_fault_hits = 0;
    }
    write_faults(const write_faults&) = delete;
    write_faults& operator=(const write_faults&) = delete;
    ~write_faults() { write_fault_mode = write_fault::none; }
};

} // namespace store_tests

TEST_CASE("lmdb_store: a full disk at commit is storage_full, and nothing of the transaction is written") {
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "disk-full.mdb").string();
    crdtsync::lmdb_store store{path};
    const entries before{{"a", "1"}, {"b", "2"}};
    commit_all(store, before);
    entries big;
    for (int i = 0; i < 1000; ++i) big.emplace_back(numbered("big", 100000 + i), std::string(200, 'b'));

    for (const int error : {ENOSPC, EDQUOT}) {
        CAPTURE(error);
        {
            auto w = store.write();
            for (const auto& [k, v] : big) w.put(k, v);
            store_tests::write_faults faults(write_fault::fail, error);
            try {
                w.commit();
                FAIL("the commit succeeded on a full disk");
            } catch (const crdtsync::storage_error& e) {
                CHECK(e.code() == crdtsync::errc::storage_full);
                CHECK(e.message().find(path) != std::string::npos);
                CHECK(e.message().find("commit") != std::string::npos);
                CHECK(e.message().find(error == ENOSPC ? "no space left" : "quota") != std::string::npos);
            }
            CHECK(write_fault_hits > 0); // the failure came from LMDB's write, not elsewhere
        }
        CHECK(scan_all(store.read()) == before);
    }
    // Space again: the retried transaction commits, and it all reopens.
    commit_all(store, big);
    CHECK(scan_all(store.read()).size() == before.size() + big.size());
}

TEST_CASE("lmdb_store: a short write with space left on the disk is errc::storage") {
    // LMDB reports a write that came back short as EIO. When the disk is
    // full, the store says storage_full (checked by hand on a 2 MiB tmpfs);
    // with space left it is an I/O error and says so.
    store_tests::temp_dir dir;
    const std::string path = (dir.path() / "short.mdb").string();
    crdtsync::lmdb_store store{path};
    commit_all(store, {{"a", "1"}});
    {
        auto w = store.write();
        for (int i = 0; i < 100; ++i) w.put(numbered("k", i), std::string(200, 'v'));
        store_tests::write_faults faults(write_fault::short_write);
        try {
            w.commit();
            FAIL("the commit succeeded after a short write");
        } catch (const crdtsync::storage_error& e) {
            CHECK(e.code() == crdtsync::errc::storage);
            CHECK(e.message().find("Input/output error") != std::string::npos);
        }
        CHECK(write_fault_hits > 0);
    }
    CHECK(scan_all(store.read()) == entries{{"a", "1"}});
    commit_all(store, {{"b", "2"}});
    CHECK(scan_all(store.read()) == entries{{"a", "1"}, {"b", "2"}});
}
#endif // CRDTSYNC_TEST_WRITE_FAULTS

#endif // CRDTSYNC_TEST_LMDB
