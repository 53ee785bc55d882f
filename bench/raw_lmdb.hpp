#pragma once
// The raw LMDB bound: what plain liblmdb calls achieve on the same number of
// keys, in the same transaction batches as the merge, so that the merge's
// figure can be read as a fraction of what the storage engine allows.
//
// Each "change" is one 16-byte key (8 bytes "crdtbnch" + u64 big-endian
// index) with a 100-byte value whose first 8 bytes are a version. For each
// key: mdb_get, compare the stored version with the incoming one, mdb_put when
// the key is absent or older: a last-writer-wins read-then-write, like the
// merge, without any of its encoding, change log or validation.
//
// Round 1: an empty database. Round 2: the database already holds the keys of
// B's rows with versions older (1) or newer (3) than the incoming ones (2) in
// the same proportions as the merge's round 2, so the same share is written.

#include <lmdb.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.hpp"

namespace crdtsync_bench {

struct raw_lmdb_env {
    MDB_env* env = nullptr;
    MDB_dbi dbi = 0;

    // The same environment flags as crdtsync::lmdb_store: one file
    // (MDB_NOSUBDIR), MDB_NOTLS, and MDB_NOSYNC only when not durable.
    raw_lmdb_env(const std::filesystem::path& file, std::size_t map_size, bool durable) {
        ok(mdb_env_create(&env), "mdb_env_create");
        ok(mdb_env_set_mapsize(env, map_size), "mdb_env_set_mapsize");
        const unsigned flags = MDB_NOSUBDIR | MDB_NOTLS | (durable ? 0u : static_cast<unsigned>(MDB_NOSYNC));
        ok(mdb_env_open(env, file.c_str(), flags, 0644), "mdb_env_open");
        MDB_txn* t = nullptr;
        ok(mdb_txn_begin(env, nullptr, 0, &t), "mdb_txn_begin");
        ok(mdb_dbi_open(t, nullptr, 0, &dbi), "mdb_dbi_open");
        ok(mdb_txn_commit(t), "mdb_txn_commit");
    }
    raw_lmdb_env(const raw_lmdb_env&) = delete;
    raw_lmdb_env& operator=(const raw_lmdb_env&) = delete;
    ~raw_lmdb_env() {
        if (env) mdb_env_close(env);
    }

    static void ok(int rc, const char* what) {
        if (rc != MDB_SUCCESS) throw std::runtime_error(std::string("raw LMDB bound: ") + what + ": " + mdb_strerror(rc));
    }
};

inline constexpr std::size_t raw_key_size = 16;
inline constexpr std::size_t raw_value_size = 100;

inline void raw_key(unsigned char* k, std::uint64_t i) {
    std::memcpy(k, "crdtbnch", 8);
    for (int b = 0; b < 8; ++b) k[8 + b] = static_cast<unsigned char>(i >> (8 * (7 - b)));
}
// The filler after the version is the same for every key: it is stored, not
// computed, so the bound spends its time in LMDB.
inline void raw_value_filler(unsigned char* v) {
    for (std::size_t b = 8; b < raw_value_size; ++b) v[b] = static_cast<unsigned char>('a' + b % 26);
}
inline void raw_value_version(unsigned char* v, std::uint64_t version) {
    for (int b = 0; b < 8; ++b) v[b] = static_cast<unsigned char>(version >> (8 * (7 - b)));
}
inline std::uint64_t raw_version(const MDB_val& v) {
    std::uint64_t x = 0;
    const auto* p = static_cast<const unsigned char*>(v.mv_data);
    for (int b = 0; b < 8; ++b) x = (x << 8) | p[b];
    return x;
}

struct raw_lmdb_outcome {
    double seconds = 0;
    double cpu_seconds = 0;
    std::size_t written = 0; // puts that happened
    std::size_t skipped = 0; // keys whose stored version was newer
};

/// Pre-state of round 2: keys [0, older) at version 1, [older, held) at 3.
inline void raw_lmdb_prefill(raw_lmdb_env& e, std::size_t older, std::size_t held) {
    MDB_txn* t = nullptr;
    raw_lmdb_env::ok(mdb_txn_begin(e.env, nullptr, 0, &t), "mdb_txn_begin");
    unsigned char k[raw_key_size], v[raw_value_size];
    raw_value_filler(v);
    for (std::size_t i = 0; i < held; ++i) {
        raw_key(k, i);
        raw_value_version(v, i < older ? 1 : 3);
        MDB_val kv{raw_key_size, k}, vv{raw_value_size, v};
        const int rc = mdb_put(t, e.dbi, &kv, &vv, 0);
        if (rc != MDB_SUCCESS) {
            mdb_txn_abort(t);
            raw_lmdb_env::ok(rc, "mdb_put");
        }
    }
    raw_lmdb_env::ok(mdb_txn_commit(t), "mdb_txn_commit");
}

/// The timed read-then-write of keys [0, sum(batch_sizes)) at version 2,
/// one write transaction per batch.
// Not inlined, so that profilers can tell the bound from its caller.
[[gnu::noinline]] inline raw_lmdb_outcome raw_lmdb_merge(raw_lmdb_env& e, const std::vector<std::size_t>& batch_sizes) {
    raw_lmdb_outcome out;
    unsigned char k[raw_key_size], v[raw_value_size];
    raw_value_filler(v);
    raw_value_version(v, 2);
    std::uint64_t i = 0;
    const auto start = clock_type::now();
    const double cpu_start = cpu_seconds();
    for (const auto n : batch_sizes) {
        MDB_txn* t = nullptr;
        raw_lmdb_env::ok(mdb_txn_begin(e.env, nullptr, 0, &t), "mdb_txn_begin");
        for (std::size_t j = 0; j < n; ++j, ++i) {
            raw_key(k, i);
            MDB_val kv{raw_key_size, k}, got{};
            const int rc = mdb_get(t, e.dbi, &kv, &got);
            if (rc == MDB_SUCCESS && raw_version(got) >= 2) {
                ++out.skipped;
                continue;
            }
            if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
                mdb_txn_abort(t);
                raw_lmdb_env::ok(rc, "mdb_get");
            }
            MDB_val vv{raw_value_size, v};
            const int prc = mdb_put(t, e.dbi, &kv, &vv, 0);
            if (prc != MDB_SUCCESS) {
                mdb_txn_abort(t);
                raw_lmdb_env::ok(prc, "mdb_put");
            }
            ++out.written;
        }
        raw_lmdb_env::ok(mdb_txn_commit(t), "mdb_txn_commit");
    }
    out.seconds = seconds_since(start);
    out.cpu_seconds = cpu_seconds() - cpu_start;
    return out;
}

} // namespace crdtsync_bench
