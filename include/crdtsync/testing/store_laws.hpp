#pragma once
/// \file testing/store_laws.hpp
/// The kv_store conformance suite: the laws of crdtsync/store.hpp (and
/// docs/store.md, "Laws") as doctest template test cases, to run over a store
/// of your own. A store that passes them can carry a replica. crdtsync runs
/// the same suite over its own models (tests/store/test_stores.cpp).
///
/// This header needs doctest (<doctest/doctest.h>, https://github.com/doctest/doctest),
/// which crdtsync itself does not: include it only in a test program, linked
/// with a doctest main (`#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN` in one
/// unit). It is not part of the umbrella <crdtsync/crdtsync.hpp>.
///
/// Instantiate over "store factories", one per model:
/// ```
/// struct my_factory {
///     using store_type = my_store;                       // a kv_store
///     static constexpr bool persistent = false;          // true: reopen() exists
///     std::unique_ptr<store_type> open();                // a new, empty store
///     std::unique_ptr<store_type> reopen();              // persistent only: the store
///                                                        // last opened, after it was destroyed
/// };
/// CRDTSYNC_STORE_LAWS(my_factory, other_factory);        // at namespace scope
/// ```
/// Each test case default-constructs a fresh factory, and destroys it (and
/// whatever it created) at the end. Keys in the laws are 1 to 100 bytes, the
/// range every model must take (LMDB refuses empty keys and keys over 511).
/// docs/store.md, "Running the laws on your store", has a whole program and
/// the command that builds it.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include <crdtsync/error.hpp>
#include <crdtsync/store.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
namespace testing::laws {

using entries = std::vector<std::pair<std::string, std::string>>;

/// Every (key, value) a transaction's scan of [begin, end) visits, in order.
template <class Txn>
entries scan_all(const Txn& txn, std::string_view begin = {}, std::string_view end = {}) {
    entries out;
    txn.scan(begin, end, [&](std::string_view k, std::string_view v) {
        out.emplace_back(std::string(k), std::string(v));
        return true;
    });
    return out;
}

/// The value as an owned string, or nullopt; for CHECKs that print well.
inline std::optional<std::string> owned(std::optional<std::string_view> v) {
    if (!v) return std::nullopt;
    return std::string(*v);
}

/// a < b comparing bytes as unsigned, spelled out rather than trusting
/// std::string's ordering, since that ordering is what is under test.
inline bool unsigned_less(std::string_view a, std::string_view b) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        const auto x = static_cast<unsigned char>(a[i]);
        const auto y = static_cast<unsigned char>(b[i]);
        if (x != y) return x < y;
    }
    return a.size() < b.size();
}

/// `prefix` followed by `n` in decimal. (Spelled out because g++ 12 warns
/// wrongly on `"literal" + std::to_string(n)`: GCC bug 105329.)
inline std::string numbered(std::string_view prefix, long long n) {
    std::string s(prefix);
    s += std::to_string(n);
    return s;
}

/// Bytes from a list of numbers (keys with 0x00 and high bytes).
inline std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (int b : list) s.push_back(static_cast<char>(static_cast<unsigned char>(b)));
    return s;
}

struct unsigned_order {
    bool operator()(const std::string& a, const std::string& b) const { return unsigned_less(a, b); }
};

/// The model the randomized check compares against.
using model = std::map<std::string, std::string, unsigned_order>;

inline entries model_range(const model& m, std::string_view begin, std::string_view end) {
    entries out;
    for (const auto& [k, v] : m) {
        if (unsigned_less(k, begin)) continue;
        if (!end.empty() && !unsigned_less(k, end)) break;
        out.emplace_back(k, v);
    }
    return out;
}

template <class Store>
void commit_all(Store& store, const entries& data) {
    auto w = store.write();
    for (const auto& [k, v] : data) w.put(k, v);
    w.commit();
}

} // namespace testing::laws
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync

// ---------------------------------------------------------------------------
// The laws.

TEST_CASE_TEMPLATE_DEFINE("kv_store law: a missing key is nullopt, not an error", F, crdtsync_law_missing) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    auto r = store->read();
    CHECK_FALSE(r.get("absent").has_value());
    CHECK(scan_all(r).empty());
    auto w = store->write();
    CHECK_FALSE(w.get("absent").has_value());
    w.put("present", "1");
    CHECK_FALSE(w.get("absent").has_value());
    CHECK_FALSE(w.get("presen").has_value()); // a prefix of a key is another key
    CHECK_FALSE(w.get("present\x01").has_value());
    CHECK(scan_all(w).size() == 1);
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: read-your-writes inside a write transaction", F, crdtsync_law_ryw) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    commit_all(*store, {{"b", "committed-b"}, {"d", "committed-d"}});
    auto w = store->write();
    w.put("a", "1");
    w.put("c", "3");
    CHECK(owned(w.get("a")) == "1");
    CHECK(owned(w.get("b")) == "committed-b");
    CHECK(scan_all(w) == entries{{"a", "1"}, {"b", "committed-b"}, {"c", "3"}, {"d", "committed-d"}});
    CHECK(w.erase("b"));
    CHECK(w.erase("c"));
    CHECK_FALSE(w.get("b").has_value());
    CHECK_FALSE(w.get("c").has_value());
    CHECK(scan_all(w) == entries{{"a", "1"}, {"d", "committed-d"}});
    w.put("b", "again");
    CHECK(owned(w.get("b")) == "again");
    CHECK(scan_all(w, "b") == entries{{"b", "again"}, {"d", "committed-d"}});
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: abort discards every change", F, crdtsync_law_abort) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    const entries base{{"k1", "v1"}, {"k2", "v2"}, {"k3", "v3"}};
    commit_all(*store, base);
    {
        auto w = store->write();
        w.put("k0", "new");
        w.put("k2", "changed");
        CHECK(w.erase("k3"));
        w.abort();
    }
    auto r = store->read();
    CHECK(scan_all(r) == base);
    CHECK_FALSE(r.get("k0").has_value());
    CHECK(owned(r.get("k2")) == "v2");
    CHECK(owned(r.get("k3")) == "v3");
    // The store takes a new write transaction after an abort.
    auto w = store->write();
    CHECK(scan_all(w) == base);
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: destroying an uncommitted write transaction discards it", F,
                          crdtsync_law_destroy) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    const entries base{{"k1", "v1"}, {"k2", "v2"}};
    commit_all(*store, base);
    {
        auto w = store->write();
        w.put("k1", "changed");
        w.put("k9", "new");
        CHECK(w.erase("k2"));
    }
    CHECK(scan_all(store->read()) == base);
    auto w = store->write(); // the writer slot is free again
    w.put("k3", "v3");
    w.commit();
    CHECK(scan_all(store->read()).size() == 3);
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: commit makes all of the transaction visible", F, crdtsync_law_commit) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    commit_all(*store, {{"gone", "x"}, {"kept", "y"}, {"over", "old"}});
    {
        auto w = store->write();
        for (int i = 0; i < 50; ++i) w.put(numbered("n", 100 + i), std::to_string(i));
        CHECK(w.erase("gone"));
        w.put("over", "new");
        w.commit();
    }
    auto r = store->read();
    const auto all = scan_all(r);
    CHECK(all.size() == 52);
    CHECK_FALSE(r.get("gone").has_value());
    CHECK(owned(r.get("kept")) == "y");
    CHECK(owned(r.get("over")) == "new");
    for (int i = 0; i < 50; ++i) CHECK(owned(r.get(numbered("n", 100 + i))) == std::to_string(i));
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: a read transaction is isolated from later commits", F,
                          crdtsync_law_isolation) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    const std::string long_value(300, 'L');
    const entries base{{"a", "short"}, {"b", long_value}, {"c", "erased later"}, {"e", ""}};
    commit_all(*store, base);

    auto before = store->read();
    // Views taken now must stay valid and unchanged until `before` ends.
    const auto a_view = before.get("a");
    const auto b_view = before.get("b");
    REQUIRE(a_view.has_value());
    REQUIRE(b_view.has_value());

    {
        auto w = store->write();
        // A reader opened while the write is open sees the committed state.
        auto during = store->read();
        w.put("a", "SHORT");
        w.put("b", std::string(500, 'M'));
        CHECK(w.erase("c"));
        w.put("d", "inserted");
        CHECK(scan_all(during) == base);
        CHECK(owned(during.get("a")) == "short");
        w.commit();
        CHECK(scan_all(during) == base);
    }
    {
        // A second commit, touching the same keys again.
        auto w = store->write();
        w.put("a", "third");
        CHECK(w.erase("e"));
        w.commit();
    }
    CHECK(scan_all(before) == base);
    CHECK(owned(before.get("a")) == "short");
    CHECK_FALSE(before.get("d").has_value());
    CHECK(owned(before.get("c")) == "erased later");
    CHECK(*a_view == "short");
    CHECK(*b_view == long_value);

    auto after = store->read();
    CHECK(scan_all(after) == entries{{"a", "third"}, {"b", std::string(500, 'M')}, {"d", "inserted"}});
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: scan visits keys in ascending unsigned-byte order", F, crdtsync_law_order) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    std::vector<std::string> keys{
        "a",  bytes({'a', 0x00}), bytes({'a', 0x00, 0x00}), bytes({'a', 0x00, 0x01}), bytes({'a', 0x01}),
        "ab", bytes({'a', 0x7f}), bytes({'a', 0x80}),       bytes({'a', 0xff}),       bytes({'a', 0xff, 0x00}),
        "b",  bytes({0x00}),      bytes({0x00, 0x00}),      bytes({0x01}),            bytes({0x7f}),
        bytes({0x80}), bytes({0x80, 0x00}), bytes({0xc3, 0xa9}), bytes({0xfe}), bytes({0xff}),
        bytes({0xff, 0xff}), "B", "Z", "z"};
    std::vector<std::string> shuffled = keys;
    std::mt19937 rng(7);
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    {
        auto w = store->write();
        for (const auto& k : shuffled) w.put(k, std::string("v").append(k));
        // Order holds for uncommitted data too.
        std::vector<std::string> seen;
        w.scan("", "", [&](std::string_view k, std::string_view) {
            seen.emplace_back(k);
            return true;
        });
        std::vector<std::string> expected = keys;
        std::sort(expected.begin(), expected.end(), unsigned_less);
        CHECK(seen == expected);
        w.commit();
    }
    std::vector<std::string> expected = keys;
    std::sort(expected.begin(), expected.end(), unsigned_less);
    std::vector<std::string> seen;
    auto r = store->read();
    r.scan("", "", [&](std::string_view k, std::string_view v) {
        CHECK(v == std::string("v").append(k));
        seen.emplace_back(k);
        return true;
    });
    CHECK(seen == expected);
    // Keys with 0x00 inside are whole keys, not cut at the zero.
    CHECK(owned(r.get(bytes({'a', 0x00, 0x01}))) == std::string("v").append(bytes({'a', 0x00, 0x01})));
    CHECK_FALSE(r.get(bytes({'a', 0x00, 0x02})).has_value());
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: scan is bounded by [begin, end), empty end = unbounded", F,
                          crdtsync_law_bounds) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    commit_all(*store, {{"b", "1"}, {"c", "2"}, {"ca", "3"}, {"d", "4"}, {bytes({0xf0}), "5"}});
    auto r = store->read();
    auto keys_of = [](const entries& e) {
        std::string s;
        for (const auto& [k, v] : e) s += (k == bytes({0xf0}) ? std::string("F0") : k) + ",";
        return s;
    };
    CHECK(keys_of(scan_all(r, "b", "d")) == "b,c,ca,");       // begin inclusive, end exclusive
    CHECK(keys_of(scan_all(r, "a", "c")) == "b,");            // begin before the first key
    CHECK(keys_of(scan_all(r, "bb", "cz")) == "c,ca,");       // bounds that are not keys
    CHECK(keys_of(scan_all(r, "c", "ca")) == "c,");           // end excludes the key equal to it
    CHECK(keys_of(scan_all(r, "c", "")) == "c,ca,d,F0,");     // empty end: to the last key
    CHECK(keys_of(scan_all(r, "ca", bytes({0xf0}))) == "ca,d,");
    CHECK(keys_of(scan_all(r, "d", bytes({0xff}))) == "d,F0,");
    CHECK(keys_of(scan_all(r, "", "c")) == "b,");             // empty begin: from the first key
    CHECK(scan_all(r, "c", "c").empty());                     // empty range
    CHECK(scan_all(r, "d", "b").empty());                     // begin after end
    CHECK(scan_all(r, bytes({0xf1})).empty());                // past the last key
    auto w = store->write();
    w.put("cb", "6");
    CHECK(keys_of(scan_all(w, "c", "d")) == "c,ca,cb,");
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: scan stops when the callback returns false", F, crdtsync_law_stop) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    entries data;
    for (int i = 0; i < 10; ++i) data.emplace_back(numbered("k", i), std::to_string(i));
    commit_all(*store, data);
    auto count_until = [](const auto& txn, int stop_after) {
        int calls = 0;
        txn.scan("", "", [&](std::string_view, std::string_view) { return ++calls < stop_after; });
        return calls;
    };
    auto r = store->read();
    CHECK(count_until(r, 1) == 1);
    CHECK(count_until(r, 3) == 3);
    CHECK(count_until(r, 100) == 10);
    auto w = store->write();
    CHECK(count_until(w, 1) == 1);
    CHECK(count_until(w, 4) == 4);
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: erase returns whether the key was present", F, crdtsync_law_erase) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    commit_all(*store, {{"committed", "1"}});
    auto w = store->write();
    CHECK_FALSE(w.erase("never"));
    CHECK(w.erase("committed"));
    CHECK_FALSE(w.erase("committed")); // already erased in this transaction
    w.put("fresh", "2");
    CHECK(w.erase("fresh")); // put and erased in the same transaction
    CHECK_FALSE(w.erase("fresh"));
    w.put("committed", "3"); // back again
    CHECK(w.erase("committed"));
    w.commit();
    auto r = store->read();
    CHECK(scan_all(r).empty());
    auto w2 = store->write();
    CHECK_FALSE(w2.erase("committed"));
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: put overwrites", F, crdtsync_law_overwrite) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    commit_all(*store, {{"k", "first"}});
    {
        auto w = store->write();
        w.put("k", "second, and longer than the first");
        CHECK(owned(w.get("k")) == "second, and longer than the first");
        w.put("k", "3rd");
        CHECK(owned(w.get("k")) == "3rd");
        CHECK(scan_all(w) == entries{{"k", "3rd"}});
        w.commit();
    }
    CHECK(owned(store->read().get("k")) == "3rd");
    commit_all(*store, {{"k", std::string(5000, 'x')}});
    CHECK(owned(store->read().get("k")) == std::string(5000, 'x'));
    commit_all(*store, {{"k", "tiny"}});
    CHECK(scan_all(store->read()) == entries{{"k", "tiny"}});
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: an empty value is present, unlike a missing key", F, crdtsync_law_empty) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    {
        auto w = store->write();
        w.put("empty", "");
        const auto v = w.get("empty");
        REQUIRE(v.has_value());
        CHECK(v->empty());
        w.commit();
    }
    auto r = store->read();
    const auto v = r.get("empty");
    REQUIRE(v.has_value());
    CHECK(v->empty());
    CHECK(scan_all(r) == entries{{"empty", ""}});
    auto w = store->write();
    CHECK(w.erase("empty"));
    CHECK_FALSE(w.get("empty").has_value());
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: keys and values are arbitrary bytes", F, crdtsync_law_bytes) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    std::string all_bytes;
    for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
    const std::string key_with_zero = bytes({0x00, 'k', 0x00, 0xff, 0x00});
    const std::string long_key(100, static_cast<char>(0xee));
    const std::string big_value(200000, '\0');
    commit_all(*store, {{key_with_zero, all_bytes}, {long_key, big_value}, {bytes({0xff}), bytes({0x00})}});
    auto r = store->read();
    CHECK(owned(r.get(key_with_zero)) == all_bytes);
    CHECK(owned(r.get(long_key)) == big_value);
    CHECK(owned(r.get(bytes({0xff}))) == bytes({0x00}));
    CHECK_FALSE(r.get(bytes({0x00, 'k'})).has_value());
    CHECK(scan_all(r).size() == 3);
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: the write transaction may change the store during its scan", F,
                          crdtsync_law_scan_mutation) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    entries data;
    for (int i = 0; i < 2000; ++i) data.emplace_back(numbered("k", 10000 + i), std::string(50, 'v'));
    commit_all(*store, data);
    auto w = store->write();
    // Erase every visited key and overwrite the one after it: each key is
    // still visited exactly once, in order. (Whether a scan sees keys its
    // callback adds ahead of it is up to the model, so none are added.)
    std::vector<std::string> seen;
    w.scan("", "", [&](std::string_view k, std::string_view) {
        const std::string key(k);
        seen.push_back(key);
        CHECK(w.erase(key));
        const int next = std::stoi(key.substr(1)) + 1;
        if (next < 12000) w.put(numbered("k", next), "next");
        return seen.size() < 5000; // a runaway scan stops here and fails below
    });
    REQUIRE(seen.size() == data.size());
    for (std::size_t i = 0; i < data.size(); ++i) CHECK(seen[i] == data[i].first);
    CHECK(scan_all(w).empty());
    // A bounded scan that overwrites each visited key.
    w.abort();
    auto w2 = store->write();
    int visits = 0;
    w2.scan("k10100", "k10200", [&](std::string_view k, std::string_view) {
        ++visits;
        w2.put(std::string(k), "rewritten");
        return true;
    });
    CHECK(visits == 100);
    CHECK(owned(w2.get("k10150")) == "rewritten");
    CHECK(owned(w2.get("k10200")) == std::string(50, 'v'));
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: randomized check against std::map", F, crdtsync_law_model) {
    using namespace crdtsync::testing::laws;
    F factory;
    auto store = factory.open();
    const unsigned seed = 20240611u;
    CAPTURE(seed);
    std::mt19937 rng(seed);
    auto pick = [&](unsigned n) { return static_cast<unsigned>(rng() % n); };
    std::vector<std::string> key_pool;
    for (int i = 0; i < 120; ++i) {
        std::string k;
        const unsigned len = 1 + pick(6);
        for (unsigned j = 0; j < len; ++j) {
            // Bytes biased towards the interesting ones: 0x00, 0x7f-0x81, 0xff.
            static const int special[] = {0x00, 0x01, 0x7f, 0x80, 0x81, 0xff, 'a', 'b'};
            k.push_back(static_cast<char>(pick(3) == 0 ? special[pick(8)] : static_cast<int>(pick(256))));
        }
        key_pool.push_back(k);
    }
    auto random_key = [&] { return key_pool[pick(static_cast<unsigned>(key_pool.size()))]; };
    auto random_value = [&] {
        const unsigned r = pick(10);
        const std::size_t len = r == 0 ? 0 : r < 8 ? pick(40) : 200 + pick(3000);
        std::string v(len, '\0');
        for (auto& c : v) c = static_cast<char>(pick(256));
        return v;
    };

    model committed;
    struct open_reader {
        typename crdtsync::read_transaction_t<typename F::store_type> txn;
        model snapshot;
    };
    std::vector<open_reader> readers;
    std::size_t commits = 0, aborts = 0, checks = 0;

    for (int round = 0; round < 300; ++round) {
        model pending = committed;
        auto w = store->write();
        const int ops = 1 + static_cast<int>(pick(25));
        for (int op = 0; op < ops; ++op) {
            const unsigned what = pick(100);
            if (what < 45) {
                const auto k = random_key();
                const auto v = random_value();
                w.put(k, v);
                pending[k] = v;
            } else if (what < 65) {
                const auto k = random_key();
                const bool present = pending.erase(k) != 0;
                CHECK(w.erase(k) == present);
            } else if (what < 85) {
                const auto k = random_key();
                const auto it = pending.find(k);
                CHECK(owned(w.get(k)) == (it == pending.end() ? std::nullopt : std::optional(it->second)));
                ++checks;
            } else if (what < 95) {
                std::string b = pick(4) == 0 ? std::string() : random_key();
                std::string e = pick(4) == 0 ? std::string() : random_key();
                CHECK(scan_all(w, b, e) == model_range(pending, b, e));
                ++checks;
            } else if (!readers.empty()) {
                // Check an open reader against the state it started from.
                auto& rd = readers[pick(static_cast<unsigned>(readers.size()))];
                const auto k = random_key();
                const auto it = rd.snapshot.find(k);
                CHECK(owned(rd.txn.get(k)) == (it == rd.snapshot.end() ? std::nullopt : std::optional(it->second)));
                CHECK(scan_all(rd.txn) == model_range(rd.snapshot, {}, {}));
                ++checks;
            }
        }
        const unsigned end = pick(10);
        if (end < 7) {
            w.commit();
            committed = std::move(pending);
            ++commits;
        } else if (end < 9) {
            w.abort();
            ++aborts;
        } // else: destroyed without commit
        // Readers come and go across commits.
        if (pick(3) == 0 && readers.size() < 4) readers.push_back(open_reader{store->read(), committed});
        if (pick(4) == 0 && !readers.empty()) readers.erase(readers.begin() + pick(static_cast<unsigned>(readers.size())));
    }
    readers.clear();
    auto r = store->read();
    CHECK(scan_all(r) == model_range(committed, {}, {}));
    for (const auto& k : key_pool) {
        const auto it = committed.find(k);
        CHECK(owned(r.get(k)) == (it == committed.end() ? std::nullopt : std::optional(it->second)));
    }
    CHECK(commits > 150); // the walk really exercised both outcomes
    CHECK(aborts > 30);
    CHECK(checks > 1000);
}

TEST_CASE_TEMPLATE_DEFINE("kv_store law: committed data survives reopening (persistent stores)", F,
                          crdtsync_law_durable) {
    using namespace crdtsync::testing::laws;
    if constexpr (F::persistent) {
        F factory;
        entries expected;
        {
            auto store = factory.open();
            entries data;
            for (int i = 0; i < 500; ++i) data.emplace_back(numbered("key", 1000 + i), std::string(static_cast<std::size_t>(i), 'x'));
            commit_all(*store, data);
            {
                auto w = store->write();
                CHECK(w.erase("key1000"));
                w.put("key1001", "changed");
                w.commit();
            }
            {
                auto w = store->write();
                w.put("uncommitted", "lost");
                w.abort();
            }
            {
                auto w = store->write();
                w.put("destroyed", "lost");
            }
            expected = scan_all(store->read());
            REQUIRE(expected.size() == 499);
        }
        auto store = factory.reopen();
        auto r = store->read();
        CHECK(scan_all(r) == expected);
        CHECK(owned(r.get("key1001")) == "changed");
        CHECK_FALSE(r.get("key1000").has_value());
        CHECK_FALSE(r.get("uncommitted").has_value());
        CHECK_FALSE(r.get("destroyed").has_value());
    } else {
        // Not persistent: each open() is a new, empty store.
        F factory;
        commit_all(*factory.open(), {{"k", "v"}});
        CHECK(scan_all(factory.open()->read()).empty());
    }
}

/// Runs every law over each of the given store factories.
#define CRDTSYNC_STORE_LAWS(...)                                                                                      \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_missing, __VA_ARGS__);                                                    \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_ryw, __VA_ARGS__);                                                        \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_abort, __VA_ARGS__);                                                      \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_destroy, __VA_ARGS__);                                                    \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_commit, __VA_ARGS__);                                                     \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_isolation, __VA_ARGS__);                                                  \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_order, __VA_ARGS__);                                                      \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_bounds, __VA_ARGS__);                                                     \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_stop, __VA_ARGS__);                                                       \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_erase, __VA_ARGS__);                                                      \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_overwrite, __VA_ARGS__);                                                  \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_empty, __VA_ARGS__);                                                      \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_bytes, __VA_ARGS__);                                                      \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_scan_mutation, __VA_ARGS__);                                              \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_model, __VA_ARGS__);                                                      \
    TEST_CASE_TEMPLATE_INVOKE(crdtsync_law_durable, __VA_ARGS__)
