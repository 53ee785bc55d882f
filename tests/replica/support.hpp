#pragma once
// Shared pieces of the replica suites: a physical clock the tests drive,
// store environments (memory, and LMDB in a fresh temporary directory) for
// TEST_CASE_TEMPLATE, a replica "node" that owns its store, a fixed schema,
// change-set builders and a random change-set generator, and sync helpers.
//
// Every suite runs over each environment in CRDTSYNC_TEST_STORES, so that the
// merge code is checked on every store model, not only on the in-memory one.

#include <crdtsync/backends/memory.hpp>
#include <crdtsync/replica.hpp>
#if defined(CRDTSYNC_TEST_LMDB)
#include <crdtsync/backends/lmdb.hpp>
#endif

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <unistd.h> // access, mkdtemp

namespace replica_tests {

using crdtsync::change;
using crdtsync::change_set;
using crdtsync::column_change;
using crdtsync::delete_policy;
using crdtsync::hlc;
using crdtsync::replica_options;
using crdtsync::row;
using crdtsync::row_delete;
using crdtsync::row_key;
using crdtsync::site_id;
using crdtsync::value;

// ------------------------------------------------------------------ time

/// The start of simulated time: a plausible wall clock in milliseconds.
inline constexpr std::uint64_t epoch_ms = 1'700'000'000'000;

/// Simulated time shared by the clocks of every replica of a test.
struct sim_time {
    std::uint64_t now = epoch_ms;
};

/// A physical clock reading the shared simulated time, plus a fixed skew (a
/// replica whose clock runs ahead or behind).
struct fake_clock {
    const std::uint64_t* now = nullptr;
    std::int64_t skew = 0;
    std::uint64_t operator()() const noexcept { return static_cast<std::uint64_t>(static_cast<std::int64_t>(*now) + skew); }
};
static_assert(crdtsync::physical_clock<fake_clock>);

inline constexpr delete_policy all_policies[] = {delete_policy::insert_revives, delete_policy::delete_wins,
                                                 delete_policy::lww};

/// A site id with every byte `b` (so ids order like their bytes).
inline site_id site_of(std::uint8_t b) {
    site_id::bytes_type bytes{};
    bytes.fill(b);
    return site_id{bytes};
}

// ------------------------------------------------------------------ stores

/// Fresh in-memory stores. `open<S>()` builds any store constructed like a
/// memory_store (e.g. a faulty_store decorating one).
struct memory_env {
    using store_type = crdtsync::memory_store;
    static constexpr bool persistent = false;
    template <class Store = store_type>
    std::unique_ptr<Store> open() {
        return std::make_unique<Store>();
    }
};

/// Where temporary directories go: $CRDTSYNC_TEST_TMPDIR if set, else
/// /dev/shm when there is one (the suites create hundreds of small LMDB files;
/// on a disk, creating and removing them costs more than the tests), else
/// the system's temporary directory.
inline std::filesystem::path temp_root() {
    if (const char* d = std::getenv("CRDTSYNC_TEST_TMPDIR"); d && *d) return d;
    std::error_code ec;
    if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
    return std::filesystem::temp_directory_path();
}

/// A temporary directory, removed with everything in it at the end.
class temp_dir {
public:
    temp_dir() {
        auto pattern = (temp_root() / "crdtsync-replica-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
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

#if defined(CRDTSYNC_TEST_LMDB)
/// LMDB stores: files in one fresh temporary directory, removed at the end.
/// Commits do not flush (the tests never crash the machine), which keeps
/// thousands of small transactions fast.
struct lmdb_env {
    using store_type = crdtsync::lmdb_store;
    static constexpr bool persistent = true;
    temp_dir dir;
    int opened = 0;
    /// A new store (`Store` is built from lmdb_options, e.g. a faulty_store
    /// decorating an lmdb_store).
    template <class Store = store_type>
    std::unique_ptr<Store> open() {
        return open<Store>("store-" + std::to_string(++opened) + ".mdb");
    }
    /// The store in file `name` (new, or the one opened under that name before).
    template <class Store = store_type>
    std::unique_ptr<Store> open(const std::string& name) {
        crdtsync::lmdb_options o;
        o.path = (dir.path() / name).string();
        o.sync = crdtsync::lmdb_sync::no_sync;
        return std::make_unique<Store>(std::move(o));
    }
};
#define CRDTSYNC_TEST_STORES replica_tests::memory_env, replica_tests::lmdb_env
#else
#define CRDTSYNC_TEST_STORES replica_tests::memory_env
#endif

template <class Store>
using replica_t = crdtsync::replica<Store, fake_clock>;

/// A replica together with the store it runs on (the store outlives it).
template <class Store>
struct node {
    std::unique_ptr<Store> store;
    std::unique_ptr<replica_t<Store>> rep;
    replica_t<Store>* operator->() const noexcept { return rep.get(); }
    replica_t<Store>& operator*() const noexcept { return *rep; }
};

template <class Env>
using node_t = node<typename Env::store_type>;

/// Options with a delete policy and a fixed site id.
inline replica_options options_for(delete_policy p, std::uint8_t site_byte) {
    replica_options o;
    o.deletes = p;
    o.site = site_of(site_byte);
    return o;
}

/// A replica over a fresh store of `env` (of type `Store`, by default the
/// environment's own).
template <class Env, class Store = typename Env::store_type>
node<Store> open_node(Env& env, replica_options opts, fake_clock clock) {
    node<Store> n;
    n.store = env.template open<Store>();
    n.rep = std::make_unique<replica_t<Store>>(*n.store, std::move(opts), clock);
    return n;
}

/// Closes node `n`'s replica and opens it again over the same store with
/// default options (a restart): for a persistent environment the store is
/// closed too and reopened from its file `name` (the n-th store an
/// environment opens is "store-<n>.mdb").
template <class Env>
void reopen(Env& env, node_t<Env>& n, const std::string& name, fake_clock clock) {
    n.rep.reset();
    if constexpr (Env::persistent) {
        n.store.reset();
        n.store = env.open(name);
    } else {
        (void)env;
        (void)name;
    }
    n.rep = std::make_unique<replica_t<typename Env::store_type>>(*n.store, replica_options{}, clock);
}

// ------------------------------------------------------------------ schema

/// `items`: a composite key (id INTEGER, name TEXT COLLATE NOCASE) and three
/// nullable columns; `notes`: a TEXT COLLATE RTRIM key and one column. The
/// collations make differently spelled keys name one row.
inline crdtsync::table_def items_table() {
    crdtsync::table_def t{"items"};
    t.column("id", crdtsync::column_type::integer, false)
        .column("name", crdtsync::column_type::text, false, crdtsync::collation::nocase)
        .column("a", crdtsync::column_type::integer)
        .column("b", crdtsync::column_type::text)
        .column("c", crdtsync::column_type::real)
        .primary_key({"id", "name"});
    return t;
}
inline crdtsync::table_def notes_table() {
    crdtsync::table_def t{"notes"};
    t.column("k", crdtsync::column_type::text, false, crdtsync::collation::rtrim)
        .column("body", crdtsync::column_type::text)
        .primary_key({"k"});
    return t;
}

/// Site of the replica that wrote the shared schema.
inline const site_id schema_site = site_of(0x01);

/// Every change set of `r` after `position`, paging through `limit` at a
/// time, as seen by a peer with id `peer` (the nil id: nobody's echo).
template <class R>
std::vector<change_set> changes_of(const R& r, std::uint64_t position = 0, const site_id& peer = site_id{},
                                   std::size_t limit = 1000) {
    std::vector<change_set> out;
    for (;;) {
        auto d = r.changes_since(peer, position, limit);
        REQUIRE_FALSE(d.snapshot_required);
        for (auto& cs : d.change_sets) out.push_back(std::move(cs));
        position = d.next_position;
        if (!d.more) return out;
    }
}

/// The change sets that create both tables, written once by a fixed site at
/// a fixed time: every replica of a law test starts by applying them, so that
/// their dumps agree on the schema.
inline const std::vector<change_set>& schema_sets() {
    static const std::vector<change_set> sets = [] {
        sim_time t;
        crdtsync::memory_store s;
        replica_t<crdtsync::memory_store> r{s, options_for(delete_policy::insert_revives, 0x01), fake_clock{&t.now}};
        r.write([](auto& tx) {
            tx.create_table(items_table());
            tx.create_table(notes_table());
        });
        return changes_of(r);
    }();
    return sets;
}

/// A replica over a fresh store of `env`, with options `o`, that holds the
/// shared schema.
template <class Env, class Store = typename Env::store_type>
node<Store> open_with_schema(Env& env, replica_options o, const sim_time& t) {
    auto n = open_node<Env, Store>(env, std::move(o), fake_clock{&t.now});
    const auto res = n->apply(schema_sets());
    REQUIRE(res.rejected.empty());
    return n;
}
template <class Env, class Store = typename Env::store_type>
node<Store> open_with_schema(Env& env, delete_policy p, std::uint8_t site_byte, const sim_time& t) {
    return open_with_schema<Env, Store>(env, options_for(p, site_byte), t);
}

/// `options_for`, with change sets for unknown tables rejected rather than
/// held (the tests of rejections).
inline replica_options rejecting(delete_policy p, std::uint8_t site_byte) {
    auto o = options_for(p, site_byte);
    o.unknown_tables = crdtsync::unknown_table_policy::reject;
    return o;
}

// ------------------------------------------------------------------ building change sets

/// An HLC from its parts.
inline hlc at(std::uint64_t wall, std::uint16_t counter, const site_id& site, std::uint32_t op = 0) {
    return hlc{wall, counter, site, op};
}

/// Builds one change set (one source transaction at `base`), giving its facts
/// op_seq 0, 1, 2, ... in the order they are added.
class change_set_builder {
public:
    explicit change_set_builder(hlc base) : base_(base) { base_.op_seq = 0; }

    change_set_builder& set(std::string table, row_key pk, std::string column, value v) {
        column_change cc;
        cc.table = std::move(table);
        cc.pk = std::move(pk);
        cc.version = next();
        cc.column = std::move(column);
        cc.val = std::move(v);
        cs_.changes.emplace_back(std::move(cc));
        return *this;
    }
    /// A write of every listed column, key columns included: an insert.
    change_set_builder& insert(const std::string& table, const row_key& pk, const row& values) {
        for (const auto& [col, v] : values) set(table, pk, col, v);
        return *this;
    }
    change_set_builder& erase(std::string table, row_key pk) {
        row_delete d;
        d.table = std::move(table);
        d.pk = std::move(pk);
        d.version = next();
        cs_.changes.emplace_back(std::move(d));
        return *this;
    }
    /// The change set, with `version` the greatest HLC of its facts.
    [[nodiscard]] change_set build() const {
        change_set cs = cs_;
        cs.origin = base_.site;
        cs.transaction_id = base_.transaction_id();
        cs.version = base_;
        for (const auto& c : cs.changes) cs.version = std::max(cs.version, crdtsync::version_of(c));
        return cs;
    }

private:
    hlc next() { return base_.with_op_seq(op_++); }
    hlc base_;
    std::uint32_t op_ = 0;
    change_set cs_;
};

/// A key of `items`.
inline row_key item_key(std::int64_t id, std::string name) { return {value{id}, value{std::move(name)}}; }

/// Random change sets over a small set of rows, columns and values, so that
/// they collide often: column writes, inserts (writes of every column, key
/// columns included), partial key writes, deletes; from a few sites, with
/// wall times and counters in a narrow window, every source transaction a
/// distinct (wall, counter, site).
class change_set_generator {
public:
    change_set_generator(std::mt19937_64& rng, std::uint64_t base_ms, std::uint64_t window_ms = 30)
        : rng_(rng), base_(base_ms), window_(window_ms) {}

    change_set next() {
        change_set_builder b{fresh_base()};
        const int facts = pick(1, 4);
        for (int i = 0; i < facts; ++i) {
            if (pick(0, 3) == 0) note_fact(b);
            else item_fact(b);
        }
        return b.build();
    }

    std::vector<change_set> many(std::size_t n) {
        std::vector<change_set> out;
        for (std::size_t i = 0; i < n; ++i) out.push_back(next());
        return out;
    }

private:
    int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

    hlc fresh_base() {
        for (;;) {
            const auto wall = base_ + static_cast<std::uint64_t>(pick(0, static_cast<int>(window_) - 1));
            const auto counter = static_cast<std::uint16_t>(pick(0, 2));
            const auto site = site_of(static_cast<std::uint8_t>(0xa0 + pick(0, 3)));
            if (used_.insert({wall, counter, site}).second) return at(wall, counter, site);
        }
    }
    value any_value() {
        switch (pick(0, 6)) {
        case 0: return value{};
        case 1: return value{std::int64_t{pick(0, 3)}};
        case 2: return value{std::string(pick(0, 1) ? "p" : "q")};
        case 3: return value{1.5};
        case 4: return value{true};
        default: return value{std::int64_t{pick(0, 1)}};
        }
    }
    row_key any_item_key() {
        static const char* names[] = {"x", "X", "y"};
        return item_key(pick(1, 2), names[pick(0, 2)]);
    }
    void item_fact(change_set_builder& b) {
        const auto pk = any_item_key();
        switch (pick(0, 5)) {
        case 0: // insert: every column
            b.insert("items", pk, {{"id", pk[0]}, {"name", pk[1]}, {"a", any_value()}, {"b", any_value()}, {"c", value{std::int64_t{2}}}});
            break;
        case 1: // a write of one key column only
            b.set("items", pk, pick(0, 1) ? "id" : "name", pick(0, 1) ? pk[0] : pk[1]);
            break;
        case 2:
        case 3: { // update of one or two plain columns
            static const char* cols[] = {"a", "b", "c"};
            b.set("items", pk, cols[pick(0, 2)], any_value());
            if (pick(0, 1)) b.set("items", pk, cols[pick(0, 2)], any_value());
            break;
        }
        default: b.erase("items", pk);
        }
    }
    void note_fact(change_set_builder& b) {
        static const char* keys[] = {"n", "n  ", "m"};
        const std::string k = keys[pick(0, 2)];
        switch (pick(0, 2)) {
        case 0: b.insert("notes", {value{k}}, {{"k", value{k}}, {"body", any_value()}}); break;
        case 1: b.set("notes", {value{k}}, "body", any_value()); break;
        default: b.erase("notes", {value{k}});
        }
    }

    std::mt19937_64& rng_;
    std::uint64_t base_;
    std::uint64_t window_;
    std::set<std::tuple<std::uint64_t, std::uint16_t, site_id>> used_;
};

// ------------------------------------------------------------------ misc

/// Runs `f`, expecting a crdtsync::error of type E with code `code`.
template <class E, class F>
void check_throws_code(F&& f, crdtsync::errc code) {
    bool threw = false;
    try {
        f();
    } catch (const E& e) {
        threw = true;
        CHECK_MESSAGE(e.code() == code, "got " << e.what());
    }
    CHECK_MESSAGE(threw, "expected an exception with code " << crdtsync::to_text(code));
}

/// The rows of every table, as text, to compare replicas by what they show.
template <class R>
std::string rows_text(const R& r) {
    std::string out;
    for (const auto& t : r.tables()) {
        out += t.qualified_name() + ":\n";
        for (const auto& rw : r.rows(t.qualified_name())) {
            out += " ";
            for (const auto& [c, v] : rw) out += " " + c + "=" + v.to_text();
            out += "\n";
        }
    }
    return out;
}

/// An integer from an environment variable, or `fallback`.
inline long env_number(const char* name, long fallback) {
    if (const char* v = std::getenv(name); v && *v) {
        char* end = nullptr;
        const long n = std::strtol(v, &end, 10);
        if (end && *end == '\0' && n >= 0) return n;
    }
    return fallback;
}

} // namespace replica_tests
