// crdtsync_bench: the benchmark suite (docs/benchmarks.md explains the method).
//
//   crdtsync_bench [--changes N] [--runs R] [--json FILE] [--only LIST] ...
//
// Every measured merge is checked for correctness (row values, apply result
// counts); a failed check aborts the run with exit status 1. Missed targets
// are reported, not failed: the status stays 0.

#include <sys/wait.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <crdtsync/backends/memory.hpp>
#include <crdtsync/hlc_clock.hpp>
#include <crdtsync/replica.hpp>
#include <crdtsync/snapshot_loader.hpp>
#include <crdtsync/snapshot_writer.hpp>
#include <crdtsync/wire/json.hpp>

#if CRDTSYNC_BENCH_LMDB
#include <crdtsync/backends/lmdb.hpp>
#include "raw_lmdb.hpp"
#endif

#include "harness.hpp"
#include "workload.hpp"

namespace fs = std::filesystem;
using namespace crdtsync_bench;

namespace {

// ================================================================ options

struct options {
    std::size_t changes = 100'002;
    int runs = 5;
    int scale_runs = 3; // runs at sizes above 100,002 changes
    std::vector<std::size_t> scaling{10'002, 100'002, 1'000'002};
    std::size_t rss_changes = 1'000'002;
    std::size_t batch = 10'000;
    std::size_t map_mib = 2048;
    std::string json_path;
    std::string markdown_path;
    std::set<std::string> only; // empty: everything
    std::set<std::string> stores{"memory", "lmdb", "lmdb-nosync"};
    fs::path dir;
    bool keep = false;
    // internal: the child process of the peak-RSS measurement
    std::string child;
    std::string child_store;
    std::string wire_file;
};

void usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: crdtsync_bench [options]\n"
                 "  --changes N       counted changes of the standard workload (default 100002 = 33,334 rows x 3)\n"
                 "  --runs R          runs per figure, reported as median/min/max (default 5)\n"
                 "  --scale-runs R    runs per figure above 100,002 changes (default 3)\n"
                 "  --scaling LIST    sizes of the scaling series (default 10002,100002,1000002)\n"
                 "  --rss-changes N   size of the peak-RSS merge, run in a child process (default 1000002)\n"
                 "  --batch N         counted changes per apply() call / write transaction (default 10000)\n"
                 "  --map-mib N       LMDB map size, MiB, for the stores and the raw bound (default 2048)\n"
                 "  --stores LIST     memory,lmdb,lmdb-nosync (default all)\n"
                 "  --only LIST       merge,wire,bound,local,extract,snapshot,hlc,codec,scaling,rss (default all)\n"
                 "  --json FILE       also write the results as JSON\n"
                 "  --markdown FILE   also write the results as Markdown tables\n"
                 "  --dir DIR         scratch directory for the LMDB files (default: a fresh one in $TMPDIR)\n"
                 "  --keep            keep the scratch directory\n");
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

std::size_t to_size(const std::string& s, const char* what) {
    std::size_t used = 0;
    unsigned long long v = 0;
    try {
        v = std::stoull(s, &used);
    } catch (...) {
        used = 0;
    }
    if (used != s.size() || s.empty()) throw std::invalid_argument(std::string("bad number for ") + what + ": " + s);
    return static_cast<std::size_t>(v);
}

options parse_options(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument("missing value after " + a);
            return argv[++i];
        };
        if (a == "--changes") o.changes = to_size(next(), "--changes");
        else if (a == "--runs") o.runs = static_cast<int>(to_size(next(), "--runs"));
        else if (a == "--scale-runs") o.scale_runs = static_cast<int>(to_size(next(), "--scale-runs"));
        else if (a == "--scaling") {
            o.scaling.clear();
            for (auto& s : split(next())) o.scaling.push_back(to_size(s, "--scaling"));
        } else if (a == "--rss-changes") o.rss_changes = to_size(next(), "--rss-changes");
        else if (a == "--batch") o.batch = to_size(next(), "--batch");
        else if (a == "--map-mib") o.map_mib = to_size(next(), "--map-mib");
        else if (a == "--stores") {
            o.stores.clear();
            for (auto& s : split(next())) o.stores.insert(s);
        } else if (a == "--only") {
            for (auto& s : split(next())) o.only.insert(s);
        } else if (a == "--json") o.json_path = next();
        else if (a == "--markdown") o.markdown_path = next();
        else if (a == "--dir") o.dir = next();
        else if (a == "--keep") o.keep = true;
        else if (a == "--child") o.child = next();
        else if (a == "--store") o.child_store = next();
        else if (a == "--wire") o.wire_file = next();
        else if (a == "--help" || a == "-h") {
            usage(stdout);
            std::exit(0);
        } else throw std::invalid_argument("unknown option " + a);
    }
    if (o.runs < 1 || o.scale_runs < 1) throw std::invalid_argument("--runs and --scale-runs must be at least 1");
    if (o.changes < 3 || o.batch < 1) throw std::invalid_argument("--changes must be at least 3, --batch at least 1");
    for (const auto& s : o.stores)
        if (s != "memory" && s != "lmdb" && s != "lmdb-nosync") throw std::invalid_argument("unknown store " + s);
#if !CRDTSYNC_BENCH_LMDB
    o.stores.erase("lmdb");
    o.stores.erase("lmdb-nosync");
#endif
    return o;
}

bool wanted(const options& o, const char* section) { return o.only.empty() || o.only.count(section) != 0; }

// ================================================================ stores

enum class store_kind { memory, lmdb_durable, lmdb_nosync };

const char* store_label(store_kind k) {
    switch (k) {
    case store_kind::memory: return "memory";
    case store_kind::lmdb_durable: return "lmdb durable";
    case store_kind::lmdb_nosync: return "lmdb no-sync";
    }
    return "?";
}
const char* store_option(store_kind k) {
    switch (k) {
    case store_kind::memory: return "memory";
    case store_kind::lmdb_durable: return "lmdb";
    case store_kind::lmdb_nosync: return "lmdb-nosync";
    }
    return "?";
}
std::optional<store_kind> parse_store(const std::string& s) {
    if (s == "memory") return store_kind::memory;
    if (s == "lmdb") return store_kind::lmdb_durable;
    if (s == "lmdb-nosync") return store_kind::lmdb_nosync;
    return std::nullopt;
}
bool is_lmdb(store_kind k) { return k != store_kind::memory; }

void remove_lmdb_files(const fs::path& file) {
    std::error_code ec;
    fs::remove(file, ec);
    fs::remove(fs::path(file.string() + "-lock"), ec);
}

/// Hands the memory freed by the previous run back before the next one.
/// Without it glibc consolidates the previous store's millions of freed
/// chunks lazily, at some allocation inside the next timed merge (hundreds
/// of milliseconds after a 1M-change store).
void settle_heap() {
#if defined(__GLIBC__)
    ::malloc_trim(0);
#endif
}

/// Opens a fresh, empty store of kind `k` (LMDB: the file `file`), calls
/// `fn(store)`, then closes and deletes it.
template <class Fn>
void with_fresh_store(store_kind k, const fs::path& file, std::size_t map_bytes, Fn&& fn) {
    settle_heap();
    if (k == store_kind::memory) {
        {
            crdtsync::memory_store s;
            fn(s);
        }
        settle_heap();
        return;
    }
#if CRDTSYNC_BENCH_LMDB
    remove_lmdb_files(file);
    {
        crdtsync::lmdb_options lo;
        lo.path = file.string();
        lo.map_size = map_bytes;
        lo.sync = k == store_kind::lmdb_durable ? crdtsync::lmdb_sync::durable : crdtsync::lmdb_sync::no_sync;
        crdtsync::lmdb_store s{lo};
        fn(s);
    }
    remove_lmdb_files(file);
    settle_heap();
#else
    (void)file;
    (void)map_bytes;
    throw std::runtime_error("this build has no LMDB store");
#endif
}

crdtsync::replica_options replica_opts(const crdtsync::site_id& site) {
    crdtsync::replica_options o;
    o.site = site;
    return o;
}

// ================================================================ the prepared export

/// A's export for one workload size, split into apply batches, and the same
/// batches as Quereus JSON wire text.
struct prepared {
    workload w;
    std::vector<crdtsync::change_set> sets;
    std::vector<batch> batches;
    std::vector<std::size_t> batch_counted; // counted changes per batch (the raw bound's transactions)
    std::size_t facts = 0;
    std::size_t counted = 0;
    std::vector<std::string> wire;
    std::size_t wire_bytes = 0;
};

prepared prepare(std::size_t changes, std::size_t changes_per_batch, bool with_wire) {
    prepared p;
    p.w = workload::for_changes(changes);
    {
        crdtsync::memory_store store;
        std::int64_t offset = 0;
        bench_replica<crdtsync::memory_store> a(store, replica_opts(site_a()), offset_clock{&offset});
        a.create_table(bench_table());
        write_rows(a, 0, p.w.rows, writer::a);
        p.sets = export_all(a, site_b());
    }
    p.facts = fact_count(p.sets);
    p.counted = counted_changes(p.sets);
    check(p.counted == p.w.changes(), "export holds " + std::to_string(p.counted) + " counted changes, expected " +
                                          std::to_string(p.w.changes()));
    check(p.facts == p.w.rows * 4 + 1, "export holds " + std::to_string(p.facts) + " facts, expected " +
                                           std::to_string(p.w.rows * 4 + 1));
    p.batches = make_batches(p.sets, changes_per_batch);
    for (const auto& b : p.batches) p.batch_counted.push_back(b.counted);
    if (with_wire) {
        for (const auto& b : p.batches) {
            p.wire.push_back(crdtsync::wire::encode_change_sets(slice(p.sets, b)));
            p.wire_bytes += p.wire.back().size();
        }
    }
    return p;
}

// ================================================================ merges

struct merge_outcome {
    double seconds = 0;
    double cpu_seconds = 0;
    crdtsync::apply_result totals;
};

/// One timed merge of the export into a fresh replica B over `store`
/// (round 2: after B wrote its own rows), verified afterwards.
template <class Store>
merge_outcome merge_once(Store& store, const prepared& p, int round, bool from_wire) {
    std::int64_t offset = 0;
    bench_replica<Store> b(store, replica_opts(site_b()), offset_clock{&offset});
    if (round == 2) build_round2_state(b, offset, p.w);
    merge_outcome out;
    const auto start = clock_type::now();
    const double cpu_start = cpu_seconds();
    if (from_wire) {
        for (const auto& text : p.wire) {
            const auto sets = crdtsync::wire::decode_change_sets(text);
            accumulate(out.totals, b.apply(sets));
        }
    } else {
        for (const auto& bt : p.batches) accumulate(out.totals, b.apply(slice(p.sets, bt)));
    }
    out.seconds = seconds_since(start);
    out.cpu_seconds = cpu_seconds() - cpu_start;
    if (round == 1) verify_round1(b, p.w, out.totals, p.facts);
    else verify_round2(b, p.w, out.totals, p.facts);
    return out;
}

merge_outcome merge_run(store_kind k, const fs::path& file, std::size_t map_bytes, const prepared& p, int round, bool from_wire) {
    merge_outcome out;
    with_fresh_store(k, file, map_bytes, [&](auto& store) { out = merge_once(store, p, round, from_wire); });
    return out;
}

#if CRDTSYNC_BENCH_LMDB
raw_lmdb_outcome bound_run(bool durable, const fs::path& file, std::size_t map_bytes, const prepared& p, int round) {
    settle_heap();
    remove_lmdb_files(file);
    raw_lmdb_outcome out;
    {
        raw_lmdb_env env(file, map_bytes, durable);
        if (round == 2) raw_lmdb_prefill(env, counted_columns * p.w.older_end, counted_columns * p.w.half);
        out = raw_lmdb_merge(env, p.batch_counted);
    }
    remove_lmdb_files(file);
    const std::size_t expect_written =
        round == 1 ? p.counted : p.counted - counted_columns * (p.w.half - p.w.older_end);
    check(out.written == expect_written && out.written + out.skipped == p.counted,
          "raw LMDB bound wrote " + std::to_string(out.written) + " keys, expected " + std::to_string(expect_written));
    return out;
}
#endif

// ================================================================ the suite

struct suite {
    explicit suite(options o) : opt(std::move(o)) {}
    options opt;
    std::vector<result> results;
    std::vector<target> targets;
    nlohmann::json notes = nlohmann::json::object();
    std::size_t map_bytes() const { return opt.map_mib << 20; }

    void add(result r) {
        std::fprintf(stderr, "  %s: %s = %s %s\n", r.group.c_str(), r.name.c_str(),
                     format_value(r.value.median, r.unit).c_str(), r.unit.c_str());
        results.push_back(std::move(r));
    }
    const result* find(const std::string& group, const std::string& name) const {
        for (const auto& r : results)
            if (r.group == group && r.name == name) return &r;
        return nullptr;
    }

    std::vector<store_kind> stores() const {
        std::vector<store_kind> out;
        for (auto k : {store_kind::memory, store_kind::lmdb_durable, store_kind::lmdb_nosync})
            if (opt.stores.count(store_option(k))) out.push_back(k);
        return out;
    }

    // ---- 1-3: merges (decoded and from JSON) with the raw bound interleaved

    void merges(const prepared& p) {
        const bool decoded = wanted(opt, "merge"), wire = wanted(opt, "wire"), bound = wanted(opt, "bound");
        if (!decoded && !wire && !bound) return;
        const auto file = opt.dir / "merge.mdb";
        const double n = static_cast<double>(p.counted);
        for (auto k : stores()) {
            for (int round : {1, 2}) {
                std::fprintf(stderr, "merge: %s, round %d\n", store_label(k), round);
                std::vector<double> merge_s, wire_s, bound_s, ratio, wire_ratio, merge_cpu, ratio_cpu;
                for (int run = 0; run < opt.runs; ++run) {
                    // Bound and merge alternate, so that both see the same
                    // state of a noisy machine; ratios are taken per run.
                    double b = 0, b_cpu = 0;
#if CRDTSYNC_BENCH_LMDB
                    if (bound && is_lmdb(k)) {
                        const auto o = bound_run(k == store_kind::lmdb_durable, file, map_bytes(), p, round);
                        b = o.seconds;
                        b_cpu = o.cpu_seconds;
                    }
#endif
                    if (b > 0) bound_s.push_back(n / b);
                    if (decoded) {
                        const auto o = merge_run(k, file, map_bytes(), p, round, false);
                        merge_s.push_back(n / o.seconds);
                        merge_cpu.push_back(n / o.cpu_seconds);
                        if (b > 0) ratio.push_back(b / o.seconds);
                        if (b_cpu > 0) ratio_cpu.push_back(b_cpu / o.cpu_seconds);
                    }
                    if (wire) {
                        const double s = merge_run(k, file, map_bytes(), p, round, true).seconds;
                        wire_s.push_back(n / s);
                        if (b > 0) wire_ratio.push_back(b / s);
                    }
                }
                const std::string where = std::string(store_label(k)) + ", round " + std::to_string(round);
                nlohmann::json extra{{"changes", p.counted}, {"facts", p.facts}, {"apply_calls", p.batches.size()},
                                     {"rows", p.w.rows}};
                if (round == 2) extra["rows_with_a_values"] = p.w.round2_rows_with_a_values();
                if (!bound_s.empty())
                    add({"bound", "raw LMDB read-then-write, " + std::string(k == store_kind::lmdb_durable ? "durable" : "no-sync") +
                                      ", round " + std::to_string(round),
                         "puts/s", summary::of(bound_s), extra, "16 B keys, 100 B values, same transactions as the merge"});
                if (!merge_s.empty()) add({"merge", where, "changes/s", summary::of(merge_s), extra, "decoded change sets"});
                if (!ratio.empty()) add({"merge/bound", where, "x", summary::of(ratio), extra, "per-run ratio, same run"});
                if (!merge_cpu.empty())
                    add({"merge (CPU time)", where, "changes/s", summary::of(merge_cpu), extra,
                         "per CPU second: excludes waiting for a CPU or the disk"});
                if (!ratio_cpu.empty())
                    add({"merge/bound (CPU time)", where, "x", summary::of(ratio_cpu), extra, "per-run ratio of CPU times"});
                if (!wire_s.empty()) {
                    std::vector<double> mbs;
                    for (double c : wire_s) mbs.push_back(c / n * static_cast<double>(p.wire_bytes) / 1e6);
                    auto e = extra;
                    e["wire_bytes"] = p.wire_bytes;
                    add({"json+merge", where, "changes/s", summary::of(wire_s), e, "decode + merge from Quereus JSON"});
                    add({"json+merge", where + " (text)", "MB/s", summary::of(mbs), e, "JSON text consumed"});
                }
                if (!wire_ratio.empty()) add({"json+merge/bound", where, "x", summary::of(wire_ratio), extra, "per-run ratio, same run"});
            }
        }
    }

    // ---- 5: local writes, extraction, HLC, codec

    void local_writes(const prepared& p) {
        if (!wanted(opt, "local") && !wanted(opt, "extract")) return;
        const auto file = opt.dir / "local.mdb";
        const double n = static_cast<double>(p.counted);
        for (auto k : stores()) {
            std::fprintf(stderr, "local writes and extraction: %s\n", store_label(k));
            std::vector<double> write_s, extract_s;
            for (int run = 0; run < opt.runs; ++run) {
                with_fresh_store(k, file, map_bytes(), [&](auto& store) {
                    std::int64_t offset = 0;
                    bench_replica<std::decay_t<decltype(store)>> a(store, replica_opts(site_a()), offset_clock{&offset});
                    a.create_table(bench_table());
                    auto start = clock_type::now();
                    write_rows(a, 0, p.w.rows, writer::a);
                    write_s.push_back(n / seconds_since(start));
                    start = clock_type::now();
                    const auto sets = export_all(a, site_b());
                    extract_s.push_back(n / seconds_since(start));
                    check(counted_changes(sets) == p.counted && fact_count(sets) == p.facts,
                          "changes_since returned " + std::to_string(fact_count(sets)) + " facts, expected " + std::to_string(p.facts));
                });
            }
            if (wanted(opt, "local"))
                add({"local", std::string("write, ") + store_label(k), "changes/s", summary::of(write_s),
                     {{"rows_per_transaction", rows_per_transaction}, {"rows", p.w.rows}}, "insert, 100 rows a transaction"});
            if (wanted(opt, "extract"))
                add({"extract", std::string("changes_since, ") + store_label(k), "changes/s", summary::of(extract_s),
                     {{"page_facts", 10'000}}, "pages of 10,000 facts"});
        }
    }

    /// Snapshot out (every chunk of A's state, 1000 entries a chunk) and in
    /// (loading those chunks into a fresh B), in column-version entries per
    /// second. The chunks are kept between the two, so each side is timed
    /// alone; the first load is checked against A's dump.
    void snapshots(const prepared& p) {
        if (!wanted(opt, "snapshot")) return;
        for (auto k : stores()) {
            std::fprintf(stderr, "snapshot out and in: %s\n", store_label(k));
            std::vector<double> out_s, in_s, bound_s, ratio;
            std::size_t entries = 0, chunk_count = 0;
            with_fresh_store(k, opt.dir / "snapshot-a.mdb", map_bytes(), [&](auto& sa) {
                std::int64_t offset = 0;
                bench_replica<std::decay_t<decltype(sa)>> a(sa, replica_opts(site_a()), offset_clock{&offset});
                a.create_table(bench_table());
                write_rows(a, 0, p.w.rows, writer::a);
                const auto want = a.dump();
                for (int run = 0; run < opt.runs; ++run) {
                    std::vector<crdtsync::snapshot_chunk> chunks;
                    entries = 0;
                    auto start = clock_type::now();
                    {
                        crdtsync::snapshot_writer out{a};
                        while (auto c = out.next()) {
                            if (const auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&*c)) entries += cv->entries.size();
                            chunks.push_back(std::move(*c));
                        }
                    }
                    out_s.push_back(static_cast<double>(entries) / seconds_since(start));
                    chunk_count = chunks.size();
                    double bound = 0;
#if CRDTSYNC_BENCH_LMDB
                    if (is_lmdb(k)) { // the same keys in the same transactions, as plain LMDB writes
                        std::vector<std::size_t> sizes;
                        for (const auto& c : chunks)
                            if (const auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&c)) sizes.push_back(cv->entries.size());
                        const auto file = opt.dir / "snapshot-bound.mdb";
                        settle_heap();
                        remove_lmdb_files(file);
                        {
                            raw_lmdb_env env(file, map_bytes(), k == store_kind::lmdb_durable);
                            const auto o = raw_lmdb_merge(env, sizes);
                            check(o.written == entries, "raw LMDB bound wrote " + std::to_string(o.written) + " keys");
                            bound = o.seconds;
                        }
                        remove_lmdb_files(file);
                        bound_s.push_back(static_cast<double>(entries) / bound);
                    }
#endif
                    check(entries == p.w.rows * (counted_columns + 1),
                          "snapshot gave " + std::to_string(entries) + " entries, expected " + std::to_string(p.w.rows * (counted_columns + 1)));
                    with_fresh_store(k, opt.dir / "snapshot-b.mdb", map_bytes(), [&](auto& sb) {
                        bench_replica<std::decay_t<decltype(sb)>> b(sb, replica_opts(site_b()), offset_clock{&offset});
                        start = clock_type::now();
                        crdtsync::snapshot_loader in{b};
                        for (const auto& c : chunks) in.push(c);
                        const double secs = seconds_since(start);
                        in_s.push_back(static_cast<double>(entries) / secs);
                        if (bound > 0) ratio.push_back(bound / secs);
                        check(in.done() && in.result().rejected.empty(), "the snapshot did not load whole");
                        if (run == 0) check(b.dump() == want, "the loaded replica differs from the snapshot's sender");
                    });
                }
            });
            const nlohmann::json extra{{"entries", entries}, {"rows", p.w.rows}, {"chunks", chunk_count}, {"entries_per_chunk", 1000}};
            add({"snapshot", std::string("out, ") + store_label(k), "entries/s", summary::of(out_s), extra,
                 "snapshot_writer: every chunk of the replica"});
            add({"snapshot", std::string("in, ") + store_label(k), "entries/s", summary::of(in_s), extra,
                 "snapshot_loader into a fresh replica, one transaction a chunk"});
            if (!bound_s.empty()) {
                add({"bound", std::string("raw LMDB read-then-write, snapshot in, ") + (k == store_kind::lmdb_durable ? "durable" : "no-sync"),
                     "puts/s", summary::of(bound_s), extra, "one 16 B key, 100 B value per entry, one transaction per chunk"});
                add({"snapshot/bound", std::string("in, ") + store_label(k), "x", summary::of(ratio), extra, "per-run ratio, same run"});
            }
        }
    }

    void hlc_ticks() {
        if (!wanted(opt, "hlc")) return;
        std::fprintf(stderr, "hlc\n");
        constexpr std::size_t ticks = 5'000'000;
        std::vector<double> sys, fixed;
        for (int run = 0; run < opt.runs; ++run) {
            {
                crdtsync::hlc_clock<crdtsync::system_clock_ms> c(site_a());
                std::uint64_t sink = 0;
                const auto start = clock_type::now();
                for (std::size_t i = 0; i < ticks; ++i) sink += c.tick().counter;
                sys.push_back(seconds_since(start) * 1e9 / ticks);
                check(sink != 1, "");
            }
            {
                struct frozen {
                    std::uint64_t operator()() const noexcept { return 1'700'000'000'000; }
                };
                crdtsync::hlc_clock<frozen> c(site_a());
                std::uint64_t sink = 0;
                const auto start = clock_type::now();
                for (std::size_t i = 0; i < ticks; ++i) sink += c.tick().counter;
                fixed.push_back(seconds_since(start) * 1e9 / ticks);
                check(sink != 1, "");
            }
        }
        add({"hlc", "tick, system clock", "ns", summary::of(sys), {{"ticks", ticks}}, "hlc_clock<system_clock_ms>::tick()"});
        add({"hlc", "tick, frozen clock", "ns", summary::of(fixed), {{"ticks", ticks}}, "clock logic alone"});
    }

    void codec(const prepared& p) {
        if (!wanted(opt, "codec")) return;
        std::fprintf(stderr, "codec\n");
        std::vector<double> enc, dec, enc_c, dec_c;
        const double mb = static_cast<double>(p.wire_bytes) / 1e6, n = static_cast<double>(p.counted);
        for (int run = 0; run < opt.runs; ++run) {
            std::size_t bytes = 0;
            auto start = clock_type::now();
            for (const auto& b : p.batches) bytes += crdtsync::wire::encode_change_sets(slice(p.sets, b)).size();
            double s = seconds_since(start);
            check(bytes == p.wire_bytes, "encoding is not deterministic");
            enc.push_back(mb / s);
            enc_c.push_back(n / s);
            std::size_t sets = 0;
            start = clock_type::now();
            for (const auto& text : p.wire) sets += crdtsync::wire::decode_change_sets(text).size();
            s = seconds_since(start);
            check(sets == p.sets.size(), "decoding lost change sets");
            dec.push_back(mb / s);
            dec_c.push_back(n / s);
        }
        // Round trip once, compared whole.
        std::vector<crdtsync::change_set> back;
        for (const auto& text : p.wire) {
            auto part = crdtsync::wire::decode_change_sets(text);
            for (auto& cs : part) back.push_back(std::move(cs));
        }
        check(back == p.sets, "JSON round trip changed the change sets");
        const nlohmann::json extra{{"wire_bytes", p.wire_bytes}, {"documents", p.wire.size()}};
        add({"codec", "JSON encode", "MB/s", summary::of(enc), extra, "encode_change_sets"});
        add({"codec", "JSON encode", "changes/s", summary::of(enc_c), extra, ""});
        add({"codec", "JSON decode", "MB/s", summary::of(dec), extra, "decode_change_sets"});
        add({"codec", "JSON decode", "changes/s", summary::of(dec_c), extra, ""});
    }

    // ---- 4: scaling

    std::map<std::size_t, std::shared_ptr<prepared>> scaled;

    void scaling(const std::shared_ptr<prepared>& standard) {
        if (!wanted(opt, "scaling")) return;
        const auto file = opt.dir / "scaling.mdb";
        for (const auto n : opt.scaling) {
            auto p = n == standard->w.changes() || n == opt.changes ? standard : nullptr;
            if (!p) {
                std::fprintf(stderr, "scaling: preparing %zu changes\n", n);
                p = std::make_shared<prepared>(prepare(n, opt.batch, wanted(opt, "rss") && n == opt.rss_changes));
            }
            scaled[n] = p;
        }
        // Sizes alternate within each run, so that a change in the machine's
        // load does not masquerade as a change in per-change cost.
        for (auto k : stores()) {
            if (k == store_kind::lmdb_nosync) continue;
            std::map<std::size_t, std::vector<double>> rate, ns;
            const int most = std::max(opt.runs, opt.scale_runs);
            for (int run = 0; run < most; ++run) {
                for (const auto n : opt.scaling) {
                    const auto& p = *scaled[n];
                    const int runs = p.counted > 100'002 ? opt.scale_runs : opt.runs;
                    if (run >= runs) continue;
                    std::fprintf(stderr, "scaling: %zu changes, %s, run %d\n", p.counted, store_label(k), run + 1);
                    const double s = merge_run(k, file, map_bytes(), p, 1, false).seconds;
                    rate[n].push_back(static_cast<double>(p.counted) / s);
                    ns[n].push_back(s * 1e9 / static_cast<double>(p.counted));
                }
            }
            for (const auto n : opt.scaling) {
                const auto& p = *scaled[n];
                const nlohmann::json extra{{"changes", p.counted}, {"rows", p.w.rows}, {"apply_calls", p.batches.size()}};
                const std::string what = std::string(store_label(k)) + ", " + with_commas(static_cast<double>(p.counted)) + " changes";
                add({"scaling", what, "changes/s", summary::of(rate[n]), extra, "round 1"});
                add({"scaling", what + ", per change", "ns", summary::of(ns[n]), extra, "round 1"});
            }
        }
    }

    // ---- 5: peak RSS of a large merge, in a child process

    /// Runs this binary as `--child <args>` (with the map size and the data
    /// directory) and parses the JSON it prints.
    nlohmann::json run_child(const std::string& args) const {
        const std::string cmd = "'" + fs::read_symlink("/proc/self/exe").string() + "' --child " + args + " --map-mib " +
                                std::to_string(opt.map_mib) + " --dir '" + opt.dir.string() + "'";
        std::FILE* pipe = ::popen(cmd.c_str(), "r");
        check(pipe != nullptr, "cannot start the child process");
        std::string text;
        char buf[4096];
        while (std::size_t got = std::fread(buf, 1, sizeof buf, pipe)) text.append(buf, got);
        const int status = ::pclose(pipe);
        check(status == 0, "the child process (" + args.substr(0, args.find(' ')) + ") failed (status " + std::to_string(status) + ")");
        return nlohmann::json::parse(text);
    }

    void peak_rss(const std::shared_ptr<prepared>& standard) {
        if (!wanted(opt, "rss")) return;
        std::shared_ptr<prepared> p = scaled.count(opt.rss_changes) ? scaled[opt.rss_changes] : nullptr;
        if (!p && opt.rss_changes == standard->counted) p = standard;
        if (!p || p->wire.empty()) {
            std::fprintf(stderr, "rss: preparing %zu changes\n", opt.rss_changes);
            p = std::make_shared<prepared>(prepare(opt.rss_changes, opt.batch, true));
        }
        // The export travels to the child as JSON wire text, one batch a
        // line, so the child holds one batch at a time as a receiver would.
        const auto wire_file = opt.dir / "rss-export.jsonl";
        {
            std::ofstream out(wire_file, std::ios::binary);
            for (const auto& t : p->wire) out << t << '\n';
            check(static_cast<bool>(out), "cannot write " + wire_file.string());
        }
        for (auto k : stores()) {
            if (k == store_kind::lmdb_nosync) continue;
            std::fprintf(stderr, "rss: %zu changes, %s (child process)\n", p->counted, store_label(k));
            const auto j = run_child("merge-rss --store " + std::string(store_option(k)) + " --changes " +
                                     std::to_string(p->counted) + " --batch " + std::to_string(opt.batch) + " --wire '" +
                                     wire_file.string() + "'");
            const double hwm = j.at("vm_hwm_kib").get<double>() / 1024.0;
            summary s = summary::of({hwm});
            add({"memory", std::string("peak RSS (VmHWM), merge of ") + with_commas(static_cast<double>(p->counted)) +
                               " changes, " + store_label(k),
                 "MiB", s, j, "child process: decode + merge, one batch at a time"});
            add({"memory", std::string("peak anonymous RSS, merge of ") + with_commas(static_cast<double>(p->counted)) +
                               " changes, " + store_label(k),
                 "MiB", summary::of({j.at("peak_rss_anon_kib").get<double>() / 1024.0}), j,
                 "RssAnon (heap), sampled after each batch"});
        }
        std::error_code ec;
        fs::remove(wire_file, ec);
#if CRDTSYNC_BENCH_LMDB
        if (opt.stores.count(store_option(store_kind::lmdb_durable)) || opt.stores.count(store_option(store_kind::lmdb_nosync))) {
            // Memory while a snapshot of the same size streams from one LMDB
            // replica into another, chunk by chunk through JSON text.
            std::fprintf(stderr, "rss: snapshot of %zu changes, LMDB to LMDB (child process)\n", p->counted);
            const auto j = run_child("snapshot-rss --changes " + std::to_string(p->counted));
            const std::string entries = with_commas(j.at("entries").get<double>());
            add({"memory", "anonymous RSS growth while streaming a snapshot of " + entries + " entries", "MiB",
                 summary::of({(j.at("peak_rss_anon_kib").get<double>() - j.at("rss_anon_before_kib").get<double>()) / 1024.0}), j,
                 "child process: LMDB to LMDB, no-sync, 1000 entries a chunk, sampled after each chunk"});
        }
#endif
    }

    // ---- targets

    void check_targets() {
        auto median_of = [&](const std::string& g, const std::string& n) -> std::optional<double> {
            if (auto r = find(g, n)) return r->value.median;
            return std::nullopt;
        };
        auto add_target = [&](std::string name, std::string wanted_text, std::optional<double> v, std::string unit,
                              std::function<bool(double)> ok) {
            target t{std::move(name), std::move(wanted_text), v.value_or(0), std::move(unit), false, v.has_value()};
            if (v) t.met = ok(*v);
            targets.push_back(t);
        };
        for (int round : {1, 2}) {
            const auto r = std::to_string(round);
            add_target("memory store merge, round " + r, ">= 1,500,000 changes/s", median_of("merge", "memory, round " + r),
                       "changes/s", [](double v) { return v >= 1.5e6; });
        }
        for (int round : {1, 2}) {
            const auto r = std::to_string(round);
            add_target("LMDB durable merge, round " + r, ">= 450,000 changes/s", median_of("merge", "lmdb durable, round " + r),
                       "changes/s", [](double v) { return v >= 450e3; });
            add_target("LMDB durable merge/bound, round " + r, ">= 0.6", median_of("merge/bound", "lmdb durable, round " + r), "x",
                       [](double v) { return v >= 0.6; });
        }
        for (int round : {1, 2}) {
            const auto r = std::to_string(round);
            add_target("JSON decode + merge on LMDB durable, round " + r, ">= 300,000 changes/s",
                       median_of("json+merge", "lmdb durable, round " + r), "changes/s", [](double v) { return v >= 300e3; });
        }
        if (opt.scaling.size() >= 2) {
            const auto lo = *std::min_element(opt.scaling.begin(), opt.scaling.end());
            const auto hi = *std::max_element(opt.scaling.begin(), opt.scaling.end());
            for (auto k : {store_kind::memory, store_kind::lmdb_durable}) {
                auto per = [&](std::size_t n) -> std::optional<double> {
                    if (!scaled.count(n)) return std::nullopt;
                    return median_of("scaling", std::string(store_label(k)) + ", " +
                                                    with_commas(static_cast<double>(scaled[n]->counted)) + " changes, per change");
                };
                const auto a = per(lo), b = per(hi);
                std::optional<double> ratio;
                if (a && b) ratio = *b / *a;
                add_target(std::string("per-change cost ") + with_commas(static_cast<double>(hi)) + " / " +
                               with_commas(static_cast<double>(lo)) + ", " + store_label(k),
                           "<= 1.5x", ratio, "x", [](double v) { return v <= 1.5; });
            }
        }
        for (auto k : {store_kind::memory, store_kind::lmdb_durable}) {
            std::optional<double> v;
            std::string size = with_commas(static_cast<double>(opt.rss_changes));
            for (const auto& r : results)
                if (r.group == "memory" && r.name.rfind("peak RSS (VmHWM)", 0) == 0 && r.name.find(store_label(k)) != std::string::npos) {
                    v = r.value.median;
                    size = with_commas(r.extra.value("changes", 0.0));
                }
            add_target("peak RSS, merge of " + size + " changes, " + store_label(k), "< 256 MiB", v, "MiB",
                       [](double x) { return x < 256; });
        }
    }

    std::string load_at_start;

    nlohmann::json to_json_doc(const prepared& p) const {
        nlohmann::json doc;
        doc["machine"] = machine_description(opt.dir.string());
        doc["machine"]["load_average_at_start"] = load_at_start;
        doc["machine"]["load_average_at_end"] = load_average();
        doc["config"] = {{"changes", p.counted},
                         {"rows", p.w.rows},
                         {"facts", p.facts},
                         {"rows_per_local_transaction", rows_per_transaction},
                         {"changes_per_apply", opt.batch},
                         {"apply_calls", p.batches.size()},
                         {"runs", opt.runs},
                         {"scale_runs", opt.scale_runs},
                         {"scaling", opt.scaling},
                         {"rss_changes", opt.rss_changes},
                         {"lmdb_map_mib", opt.map_mib},
                         {"wire_bytes", p.wire_bytes}};
        nlohmann::json rs = nlohmann::json::array();
        for (const auto& r : results) rs.push_back(to_json(r));
        doc["results"] = rs;
        nlohmann::json ts = nlohmann::json::array();
        for (const auto& t : targets) ts.push_back(to_json(t));
        doc["targets"] = ts;
        return doc;
    }
};

// ================================================================ the child process

/// Merges the JSON export in `--wire` (one batch a line) into a fresh B,
/// one batch at a time, verifies round 1 and prints its memory figures as
/// JSON on stdout.
int child_merge_rss(const options& o) {
    const auto k = parse_store(o.child_store);
    if (!k) throw std::invalid_argument("unknown --store " + o.child_store);
    const auto w = workload::for_changes(o.changes);
    nlohmann::json out;
    const auto before = read_memory_status();
    with_fresh_store(*k, o.dir / "rss.mdb", o.map_mib << 20, [&](auto& store) {
        std::int64_t offset = 0;
        bench_replica<std::decay_t<decltype(store)>> b(store, replica_opts(site_b()), offset_clock{&offset});
        std::ifstream in(o.wire_file, std::ios::binary);
        check(static_cast<bool>(in), "cannot read " + o.wire_file);
        crdtsync::apply_result totals;
        std::size_t facts = 0, batches = 0, bytes = 0;
        std::uint64_t peak_anon = 0;
        std::string line;
        const auto start = clock_type::now();
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            bytes += line.size();
            {
                const auto sets = crdtsync::wire::decode_change_sets(line);
                facts += fact_count(sets);
                accumulate(totals, b.apply(sets));
            }
            ++batches;
            peak_anon = std::max(peak_anon, read_memory_status().rss_anon_kib);
        }
        const double secs = seconds_since(start);
        const auto m = read_memory_status();
        out["vm_hwm_kib"] = m.vm_hwm_kib;
        out["ru_maxrss_kib"] = max_rss_kib();
        out["rss_at_end_kib"] = m.vm_rss_kib;
        out["rss_anon_at_end_kib"] = m.rss_anon_kib;
        out["rss_file_at_end_kib"] = m.rss_file_kib;
        out["peak_rss_anon_kib"] = std::max(peak_anon, m.rss_anon_kib);
        out["rss_before_kib"] = before.vm_rss_kib;
        out["changes"] = w.changes();
        out["batches"] = batches;
        out["wire_bytes"] = bytes;
        out["seconds"] = secs;
        out["changes_per_second"] = static_cast<double>(w.changes()) / secs;
        verify_round1(b, w, totals, facts);
        if (is_lmdb(*k)) {
            std::error_code ec;
            out["store_file_bytes"] = fs::file_size(o.dir / "rss.mdb", ec);
        }
    });
    std::cout << out.dump() << std::endl;
    return 0;
}

#if CRDTSYNC_BENCH_LMDB
/// Builds a replica of `--changes` on LMDB, then streams its snapshot into a
/// fresh LMDB replica through JSON text, sampling RssAnon after every chunk;
/// prints the memory figures as JSON on stdout.
int child_snapshot_rss(const options& o) {
    const auto w = workload::for_changes(o.changes);
    nlohmann::json out;
    with_fresh_store(store_kind::lmdb_nosync, o.dir / "snapshot-rss-a.mdb", o.map_mib << 20, [&](auto& sa) {
        std::int64_t offset = 0;
        bench_replica<std::decay_t<decltype(sa)>> a(sa, replica_opts(site_a()), offset_clock{&offset});
        a.create_table(bench_table());
        write_rows(a, 0, w.rows, writer::a);
        with_fresh_store(store_kind::lmdb_nosync, o.dir / "snapshot-rss-b.mdb", o.map_mib << 20, [&](auto& sb) {
            bench_replica<std::decay_t<decltype(sb)>> b(sb, replica_opts(site_b()), offset_clock{&offset});
            settle_heap();
            const auto before = read_memory_status();
            std::uint64_t peak_anon = before.rss_anon_kib;
            std::size_t entries = 0, chunks = 0, bytes = 0;
            const auto start = clock_type::now();
            {
                crdtsync::snapshot_writer snap{a, b.site_id()};
                crdtsync::snapshot_loader in{b};
                while (auto c = snap.next()) {
                    if (const auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&*c)) entries += cv->entries.size();
                    const auto text = crdtsync::wire::encode_snapshot_chunk(*c);
                    bytes += text.size();
                    in.push(crdtsync::wire::decode_snapshot_chunk(text));
                    ++chunks;
                    peak_anon = std::max(peak_anon, read_memory_status().rss_anon_kib);
                }
                check(in.done(), "the snapshot did not load whole");
            }
            const double secs = seconds_since(start);
            check(entries == w.rows * (counted_columns + 1), "the snapshot has " + std::to_string(entries) + " entries");
            check(b.rows(bench_table().qualified_name()).size() == w.rows, "the loaded replica lacks rows");
            out["entries"] = entries;
            out["chunks"] = chunks;
            out["json_bytes"] = bytes;
            out["seconds"] = secs;
            out["entries_per_second"] = static_cast<double>(entries) / secs;
            out["rss_anon_before_kib"] = before.rss_anon_kib;
            out["peak_rss_anon_kib"] = peak_anon;
            out["vm_hwm_kib"] = read_memory_status().vm_hwm_kib;
        });
    });
    std::cout << out.dump() << std::endl;
    return 0;
}
#endif

} // namespace

int main(int argc, char** argv) {
    options opt;
    try {
        opt = parse_options(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "crdtsync_bench: %s\n", e.what());
        usage(stderr);
        return 2;
    }
    bool own_dir = false;
    try {
        if (!opt.child.empty()) {
#if CRDTSYNC_BENCH_LMDB
            if (opt.child == "snapshot-rss") return child_snapshot_rss(opt);
#endif
            if (opt.child != "merge-rss") throw std::invalid_argument("unknown --child " + opt.child);
            return child_merge_rss(opt);
        }
        if (opt.dir.empty()) {
            opt.dir = fs::temp_directory_path() / ("crdtsync-bench-" + std::to_string(::getpid()));
            own_dir = true;
        }
        fs::create_directories(opt.dir);

        suite s(opt);
        s.load_at_start = load_average();
        std::fprintf(stderr, "preparing the standard workload: %zu changes\n", opt.changes);
        const bool need_wire = wanted(opt, "wire") || wanted(opt, "codec");
        auto standard = std::make_shared<prepared>(prepare(opt.changes, opt.batch, need_wire));

        s.merges(*standard);
        s.local_writes(*standard);
        s.snapshots(*standard);
        s.hlc_ticks();
        if (need_wire) s.codec(*standard);
        s.scaling(standard);
        s.peak_rss(standard);
        s.check_targets();

        const auto machine = machine_description(opt.dir.string());
        std::printf("crdtsync_bench: %zu changes (%zu rows x 3 columns, %zu facts), %zu apply calls of ~%zu changes, "
                    "%d runs (median, min, max)\n",
                    standard->counted, standard->w.rows, standard->facts, standard->batches.size(), opt.batch, opt.runs);
        std::printf("machine: %s, %u cores, %s memory, %s; data on %s\n", machine["cpu_model"].get<std::string>().c_str(),
                    machine["nproc"].get<unsigned>(), machine["memory_total"].get<std::string>().c_str(),
                    machine.value("kernel", std::string("?")).c_str(), machine["data_dir_filesystem"].get<std::string>().c_str());
        std::printf("load average at start: %s, at end: %s\n\n", s.load_at_start.c_str(), load_average().c_str());
        print_table(stdout, s.results);
        std::printf("\n");
        print_targets(stdout, s.targets);
        if (!opt.markdown_path.empty()) {
            std::FILE* md = std::fopen(opt.markdown_path.c_str(), "w");
            if (!md) throw std::runtime_error("cannot write " + opt.markdown_path);
            print_markdown(md, s.results, s.targets);
            std::fclose(md);
        }
        if (!opt.json_path.empty()) {
            std::ofstream out(opt.json_path);
            out << s.to_json_doc(*standard).dump(2) << "\n";
            if (!out) throw std::runtime_error("cannot write " + opt.json_path);
        }
    } catch (const verification_failure& e) {
        std::fprintf(stderr, "crdtsync_bench: VERIFICATION FAILED: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "crdtsync_bench: %s\n", e.what());
        return 1;
    }
    if (own_dir && !opt.keep) {
        std::error_code ec;
        fs::remove_all(opt.dir, ec);
    }
    return 0;
}
