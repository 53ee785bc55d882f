// Applies the change sets a real Quereus replica put on the wire to fresh
// crdtsync replicas (delete_wins policy, as Quereus) and checks the tables
// against the states Quereus itself reached (steps.json), as the vectors'
// README describes. Runs over the memory store and, when built, LMDB.

#include <doctest/doctest.h>

#include <crdtsync/crdtsync.hpp>
#include <crdtsync/backends/memory.hpp>
#ifdef CRDTSYNC_TEST_LMDB
#include <crdtsync/backends/lmdb.hpp>
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string read_file(const std::string& name) {
    std::ifstream in(fs::path(CRDTSYNC_VECTOR_DIR) / name, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "missing vector file " << name);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> pull_files(int last) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(CRDTSYNC_VECTOR_DIR)) {
        const auto n = e.path().filename().string();
        if (n.size() > 3 && std::isdigit(static_cast<unsigned char>(n[0])) && n.find("snapshot") == std::string::npos &&
            std::stoi(n.substr(0, 2)) <= last)
            out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
}

// The physical clock of the test replicas: shortly after the vectors' T0, so
// every vector HLC is within the drift bound.
struct vector_clock {
    std::uint64_t operator()() const noexcept { return 1'700'000'010'000; }
};

// A site id that is none of A, B, C.
const crdtsync::site_id site_d = crdtsync::site_id::from_text("3d3d3d3d3d3d3d3d3d3d3Q");

crdtsync::replica_options quereus_options() {
    crdtsync::replica_options o;
    o.deletes = crdtsync::delete_policy::delete_wins;
    o.site = site_d;
    return o;
}

struct memory_fixture {
    crdtsync::memory_store store;
};
#ifdef CRDTSYNC_TEST_LMDB
struct lmdb_fixture {
    fs::path dir = fs::temp_directory_path() / ("crdtsync-interop-" + std::to_string(std::random_device{}()));
    std::optional<crdtsync::lmdb_store> holder;
    crdtsync::lmdb_store& store;
    lmdb_fixture() : store((fs::create_directories(dir), holder.emplace((dir / "replica.db").string()))) {}
    ~lmdb_fixture() {
        holder.reset();
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};
#endif

// The state of every table as steps.json writes it: {"main.items": [rows]}.
template <class Replica>
json tables_json(const Replica& r) {
    json out = json::object();
    for (const auto& def : r.tables()) {
        json rows = json::array();
        for (const auto& row : r.rows(def.qualified_name())) {
            json o = json::object();
            for (const auto& [name, v] : row) o[name] = crdtsync::wire::to_json(v);
            rows.push_back(std::move(o));
        }
        out[def.qualified_name()] = std::move(rows);
    }
    return out;
}

json expected_state(std::string_view label_part, const char* replica_name) {
    const auto steps = json::parse(read_file("steps.json"));
    for (const auto& st : steps["steps"])
        if (st["kind"] == "state" && st["label"].get<std::string>().find(label_part) != std::string::npos)
            return st["tables"][replica_name];
    FAIL("steps.json has no state labelled " << label_part);
    return {};
}

template <class Replica>
void apply_file(Replica& r, const std::string& name) {
    const auto sets = crdtsync::wire::decode_change_sets(read_file(name));
    const auto res = r.apply(sets);
    INFO("file " << name);
    CHECK(res.rejected.empty());
    CHECK(res.transactions == sets.size());
}

} // namespace

#ifdef CRDTSYNC_TEST_LMDB
#define INTEROP_FIXTURES memory_fixture, lmdb_fixture
#else
#define INTEROP_FIXTURES memory_fixture
#endif

template <class F>
using replica_of = crdtsync::replica<std::remove_reference_t<decltype(std::declval<F&>().store)>, vector_clock>;

TEST_CASE_TEMPLATE("Quereus vector 01 bootstraps A's state after S3", F, INTEROP_FIXTURES) {
    F f;
    replica_of<F> r{f.store, quereus_options()};
    apply_file(r, "01-S3-A-to-B.json");
    CHECK(tables_json(r) == expected_state("after S3", "A"));
}

TEST_CASE_TEMPLATE("Quereus vectors 01-14 give the converged state after S5", F, INTEROP_FIXTURES) {
    F f;
    replica_of<F> r{f.store, quereus_options()};
    for (const auto& name : pull_files(14)) apply_file(r, name);
    const auto want = expected_state("after S5", "A");
    CHECK(tables_json(r) == want);
    // All three Quereus replicas agreed; so does this one with each of them.
    CHECK(want == expected_state("after S5", "B"));
    CHECK(want == expected_state("after S5", "C"));

    SUBCASE("applying every file again changes nothing") {
        // (Losing facts without a prior may be reported as conflicts again:
        // Quereus sends no priorHlc, see docs/semantics.md.)
        const auto before = r.dump();
        for (const auto& name : pull_files(14)) {
            const auto res = r.apply(crdtsync::wire::decode_change_sets(read_file(name)));
            CHECK(res.applied == 0);
            CHECK(res.rejected.empty());
        }
        CHECK(r.dump() == before);
    }
}

TEST_CASE_TEMPLATE("Quereus vectors 01-16 add A's S6 column and rows", F, INTEROP_FIXTURES) {
    F f;
    replica_of<F> r{f.store, quereus_options()};
    for (const auto& name : pull_files(16)) apply_file(r, name);
    // The state after S5, plus A's S6 writes: a nullable "note" column,
    // note = 'n1 ✓' on item 1, and item 7.
    auto want = expected_state("after S5", "A");
    for (auto& row : want["main.items"]) row["note"] = row["id"] == 1 ? json("n1 ✓") : json(nullptr);
    want["main.items"].push_back(json::parse(R"({"id":7,"name":"after-alter","price":7,"data":{"__bin":"Bw=="},"qty":7,"note":null})"));
    std::sort(want["main.items"].begin(), want["main.items"].end(), [](const json& a, const json& b) {
        // key order: integers, then the int64-max big integer (kept as __bigint on the wire)
        auto key = [](const json& j) { return j["id"].is_object() ? INT64_MAX : j["id"].get<std::int64_t>(); };
        return key(a) < key(b);
    });
    CHECK(tables_json(r) == want);
    const auto items = r.find_table("items");
    REQUIRE(items);
    CHECK(items->columns().back().name == "note");
    CHECK(items->columns().back().nullable);
}

TEST_CASE("Quereus vectors converge in any delivery order, with duplicates") {
    // Every change set of files 01-16, shuffled and duplicated. With
    // unknown_table_policy::reject, change sets rejected because their table
    // or column does not exist yet are retried later; with hold (the
    // default), one pass applies everything: what came too early is held and
    // applied when its migration arrives.
    std::vector<crdtsync::change_set> all;
    for (const auto& name : pull_files(16))
        for (auto& cs : crdtsync::wire::decode_change_sets(read_file(name))) all.push_back(std::move(cs));

    crdtsync::memory_store in_order_store;
    replica_of<memory_fixture> in_order{in_order_store, quereus_options()};
    for (const auto& name : pull_files(16)) apply_file(in_order, name);
    const auto want = in_order.dump();

    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        INFO("seed " << seed);
        std::mt19937_64 rng{seed};
        auto queue = all;
        queue.insert(queue.end(), all.begin(), all.begin() + static_cast<std::ptrdiff_t>(all.size() / 3));
        std::shuffle(queue.begin(), queue.end(), rng);
        crdtsync::memory_store held_store;
        replica_of<memory_fixture> held{held_store, quereus_options()};
        for (const auto& cs : queue) REQUIRE(held.apply(cs).rejected.empty());
        CHECK(held.held_facts() == 0);
        CHECK(held.dump() == want);

        crdtsync::memory_store store;
        auto rejecting = quereus_options();
        rejecting.unknown_tables = crdtsync::unknown_table_policy::reject;
        replica_of<memory_fixture> r{store, rejecting};
        for (int round = 0; !queue.empty(); ++round) {
            REQUIRE(round < 50);
            std::vector<crdtsync::change_set> retry;
            for (auto& cs : queue) {
                const auto res = r.apply(cs);
                if (!res.rejected.empty()) {
                    const auto code = res.rejected.front().code.value_or("");
                    CHECK((code == "unknown_table" || code == "unknown_column"));
                    retry.push_back(std::move(cs));
                }
            }
            queue = std::move(retry);
        }
        CHECK(r.dump() == want);
    }
}

TEST_CASE_TEMPLATE("Quereus's snapshot stream loads into a fresh replica", F, INTEROP_FIXTURES) {
    // 23-S7 is A's snapshot (4 entries a chunk) of its final state: every
    // pull file's facts and a few later ones (item 2's note by B). Loaded
    // chunk by chunk through the loader's order and count checks into a
    // fresh replica, it gives exactly its entries and tombstones, and the
    // same state as a replica that applied every pull file and then loads it
    // too (the snapshot's state includes theirs).
    const auto chunks = crdtsync::wire::decode_snapshot_chunks(read_file("23-S7-snapshot-stream-A.json"));
    REQUIRE(chunks.size() > 5);
    const auto& header = std::get<crdtsync::snapshot_header>(chunks.front());
    CHECK_FALSE(header.position); // Quereus sends no position
    std::size_t entries = 0, tombstones = 0;
    for (const auto& c : chunks) {
        if (const auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&c)) entries += cv->entries.size();
        if (const auto* ts = std::get_if<crdtsync::snapshot_tombstones>(&c)) tombstones += ts->entries.size();
    }
    CHECK(entries > 20);
    CHECK(tombstones > 0);

    F f;
    replica_of<F> r{f.store, quereus_options()};
    crdtsync::snapshot_loader in{r};
    for (const auto& c : chunks) in.push(c);
    CHECK(in.done());
    CHECK(in.result().rejected.empty());
    CHECK(in.result().applied == entries + tombstones + header.migration_count);
    const auto dump = r.dump();
    auto count = [&](std::string_view what) {
        std::size_t n = 0;
        for (auto at = dump.find(what); at != std::string::npos; at = dump.find(what, at + 1)) ++n;
        return n;
    };
    CHECK(count("\n  cell ") == entries);
    CHECK(count("\n  tomb ") == tombstones);
    CHECK(r.get("items", {crdtsync::value{std::int64_t{2}}})->at("note") == crdtsync::value{"n2 from B"});
    // Without a position, nothing is recorded for the sender: delta sync
    // with a Quereus server goes by its sinceHLC.
    CHECK(r.peer(header.origin) == crdtsync::peer_state{});

    crdtsync::memory_store applied_store;
    replica_of<memory_fixture> applied{applied_store, quereus_options()};
    for (const auto& name : pull_files(16)) apply_file(applied, name);
    {
        crdtsync::snapshot_loader also{applied};
        for (const auto& c : chunks) also.push(c);
        CHECK(also.done());
        CHECK(also.removed() == 0); // it never sent A anything: nothing can be removed
    }
    CHECK(applied.dump() == dump);

    SUBCASE("cut anywhere and resumed by replaying the stream") {
        // A server without crdtsync's resume sends the stream again from its
        // header, skipping the tables the checkpoint lists as completed; the
        // loader takes the unfinished table again from its start.
        for (std::size_t cut = 1; cut < chunks.size(); ++cut) {
            CAPTURE(cut);
            crdtsync::memory_store s;
            replica_of<memory_fixture> b{s, quereus_options()};
            {
                crdtsync::snapshot_loader first{b};
                for (std::size_t i = 0; i < cut; ++i) first.push(chunks[i]);
            }
            crdtsync::snapshot_loader again{b};
            REQUIRE(again.checkpoint());
            const auto done = again.checkpoint()->completed_tables;
            for (const auto& c : chunks) {
                const auto* ts = std::get_if<crdtsync::snapshot_table_start>(&c);
                const auto* cv = std::get_if<crdtsync::snapshot_column_versions>(&c);
                const auto* te = std::get_if<crdtsync::snapshot_table_end>(&c);
                const std::string table = ts ? ts->schema + "." + ts->table
                                          : cv ? cv->schema + "." + cv->table
                                          : te ? te->schema + "." + te->table
                                               : "";
                if (!table.empty() && std::find(done.begin(), done.end(), table) != done.end()) continue;
                again.push(c);
            }
            CHECK(again.done());
            CHECK(b.dump() == dump);
        }
    }
}

TEST_CASE("ADD COLUMN travels as Quereus sends it: an alter_column migration with ALTER TABLE text") {
    // Quereus's own migration (vector 15), and a crdtsync replica adding the
    // same column to the same table.
    const auto quereus_sets = json::parse(read_file("15-S6-delta-A-to-B.json"));
    json quereus;
    for (const auto& cs : quereus_sets)
        for (const auto& m : cs["schemaMigrations"]) quereus = m;
    REQUIRE(quereus.is_object());
    REQUIRE(quereus["type"] == "alter_column");

    crdtsync::memory_store store;
    crdtsync::replica<crdtsync::memory_store, vector_clock> r{store, quereus_options()};
    const auto created = r.apply(crdtsync::wire::decode_change_sets(read_file("01-S3-A-to-B.json")));
    REQUIRE(created.rejected.empty());
    const auto before = r.position();
    r.write([](auto& tx) { tx.add_column("items", crdtsync::column_def{"note", crdtsync::column_type::text, true}); });
    const auto ours_text = crdtsync::wire::encode_change_sets(r.changes_since(crdtsync::site_id{}, before).change_sets);
    const auto ours_sets = json::parse(ours_text);
    REQUIRE(ours_sets.size() == 1);
    REQUIRE(ours_sets[0]["schemaMigrations"].size() == 1);
    const auto ours = ours_sets[0]["schemaMigrations"][0];
    // The same members in the same order, the same kind, table, schema version.
    std::vector<std::string> ours_members, quereus_members;
    for (const auto& [k, v] : ours.items()) ours_members.push_back(k);
    for (const auto& [k, v] : quereus.items()) quereus_members.push_back(k);
    CHECK(ours_members == quereus_members);
    for (const char* member : {"type", "schema", "table", "schemaVersion"}) CHECK(ours[member] == quereus[member]);
    CHECK(ours_text.find(R"("type":"alter_column","schema":"main","table":"items","ddl":"ALTER TABLE \"main\".\"items\" ADD COLUMN \"note\" TEXT NULL")") !=
          std::string::npos);
    // Both DDL texts say the same thing.
    const auto a = crdtsync::table_def::parse_add_column(ours["ddl"].get<std::string>());
    const auto b = crdtsync::table_def::parse_add_column(quereus["ddl"].get<std::string>());
    CHECK(a.schema == b.schema);
    CHECK(a.table == b.table);
    CHECK(a.column == b.column);

    // A replica that already has the column (Quereus's own migration came
    // first) takes ours without complaint, and the other way round.
    crdtsync::memory_store s2;
    crdtsync::replica<crdtsync::memory_store, vector_clock> other{s2, quereus_options()};
    REQUIRE(other.apply(crdtsync::wire::decode_change_sets(read_file("16-S6-A-to-C.json"))).rejected.empty());
    const auto res = other.apply(crdtsync::wire::decode_change_sets(ours_text));
    CHECK(res.rejected.empty());
    CHECK(other.find_table("items")->columns().size() == 6);
    // The legacy kind is still understood on input.
    crdtsync::memory_store s3;
    crdtsync::replica<crdtsync::memory_store, vector_clock> legacy{s3, quereus_options()};
    REQUIRE(legacy.apply(crdtsync::wire::decode_change_sets(read_file("01-S3-A-to-B.json"))).rejected.empty());
    auto as_add = ours_sets;
    as_add[0]["schemaMigrations"][0]["type"] = "add_column";
    CHECK(legacy.apply(crdtsync::wire::decode_change_sets(as_add.dump())).rejected.empty());
    CHECK(legacy.find_table("items")->columns().size() == 6);
}
