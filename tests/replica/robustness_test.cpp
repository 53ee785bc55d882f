// Robustness at the edges: values that must survive the wire unchanged,
// keys the store cannot hold, several processes on one LMDB replica, two
// facts under one HLC. Each case is a regression test of a way a replica
// once lost data, diverged from its peers or stalled sync.

#include "support.hpp"

#include <crdtsync/wire/json.hpp>

#include <cmath>
#include <limits>

#include <sys/wait.h>
#include <unistd.h>

namespace replica_tests {
namespace {

using crdtsync::blob;
using crdtsync::column_type;
using crdtsync::errc;
using crdtsync::json_text;

constexpr column_type all_types[] = {column_type::any,  column_type::integer, column_type::real,   column_type::text,
                                     column_type::blob, column_type::boolean, column_type::json};

/// Values of every kind, with the edges that the wire changes or cannot carry.
std::vector<value> edge_values() {
    std::vector<value> v{
        value{},
        value{true},
        value{false},
        value{std::int64_t{0}},
        value{std::int64_t{-7}},
        value{std::numeric_limits<std::int64_t>::min()},
        value{std::numeric_limits<std::int64_t>::max()},
        value{(std::int64_t{1} << 53) + 1},
        value{crdtsync::big_integer::parse("9223372036854775808")},
        value{crdtsync::big_integer::parse("-9223372036854775809")},
        value{crdtsync::big_integer::parse("123456789012345678901234567890")},
        value{2.0},
        value{-2.0},
        value{0.0},
        value{-0.0},
        value{2.5},
        value{-1e-300},
        value{0x1p63},  // integral, beyond int64: a big integer on the wire
        value{-0x1p63}, // integral, INT64_MIN
        value{1e19},
        value{1e20},
        value{1e300},
        value{std::numeric_limits<double>::infinity()},
        value{-std::numeric_limits<double>::infinity()},
        value{std::numeric_limits<double>::quiet_NaN()}, // null
        value{""},
        value{"plain"},
        value{"ü and 𐐀"},
        value{std::string("nul\0inside", 10)},
        value{std::string("\xff\xfe")},     // not UTF-8
        value{std::string("a\xed\xa0\x80")}, // a UTF-16 surrogate
        value{blob{}},
        value{blob{std::string("\0\xff", 2)}},
        value{json_text{R"({"b":1,"a":[1,2.0,"x"]})"}},
        value{json_text{R"([ 1 , {"z" : null} ])"}},
        value{json_text{"[1,"}},
        value{json_text{"5"}},
        value{json_text{R"({"__bin":"AA=="})"}},
        value{json_text{std::string(100, '[') + std::string(100, ']')}},
    };
    return v;
}

/// One replica writes `v` into a column of type `type` (or as the key);
/// either the write is refused with invalid_value and nothing changes, or
/// a peer that receives the change through the JSON wire ends with exactly
/// the origin's dump.
template <class Env>
void round_trip(Env& env, sim_time& t, column_type type, const value& v, bool as_key) {
    auto origin = open_node(env, options_for(delete_policy::insert_revives, 0x11), fake_clock{&t.now});
    auto peer = open_node(env, options_for(delete_policy::insert_revives, 0x22), fake_clock{&t.now});
    crdtsync::table_def def{"t"};
    if (as_key) def.column("k", type, false).column("x", column_type::integer).primary_key({"k"});
    else def.column("k", column_type::integer, false).column("x", type).primary_key({"k"});
    origin->create_table(def);
    const auto before = origin->dump();
    const auto pos = origin->position();
    bool refused = false;
    try {
        origin->write([&](auto& tx) {
            if (as_key) tx.insert("t", row{{"k", v}, {"x", value{1}}});
            else tx.insert("t", row{{"k", value{1}}, {"x", v}});
        });
    } catch (const crdtsync::error& e) {
        refused = true;
        // A NULL key is a constraint error; every other refusal names the value.
        CHECK_MESSAGE((e.code() == errc::invalid_value || (as_key && v.is_null() && e.code() == errc::constraint) ||
                       (as_key && e.code() == errc::invalid_key)),
                      e.what());
        CHECK(origin->dump() == before);
        CHECK(origin->position() == pos);
    }
    const auto text = crdtsync::wire::encode_change_sets(changes_of(*origin));
    const auto res = peer->apply(crdtsync::wire::decode_change_sets(text));
    CHECK(res.rejected.empty());
    CHECK_MESSAGE(origin->dump() == peer->dump(), "value " << v.to_text() << " in " << crdtsync::to_text(type)
                                                          << (as_key ? " key" : " column") << (refused ? " (refused)" : ""));
    // And the peer's own export gives a third replica the same state again.
    auto third = open_node(env, options_for(delete_policy::insert_revives, 0x33), fake_clock{&t.now});
    (void)third->apply(crdtsync::wire::decode_change_sets(crdtsync::wire::encode_change_sets(changes_of(*peer))));
    CHECK(third->dump() == origin->dump());
}

TEST_CASE_TEMPLATE("values: what a replica stores is what every peer stores after the wire", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    for (const auto type : all_types)
        for (const auto& v : edge_values()) {
            CAPTURE(crdtsync::to_text(type));
            CAPTURE(v.to_text());
            round_trip(env, t, type, v, false);
        }
    // As keys: the same rule, in BINARY key columns of each type.
    for (const auto type : all_types)
        for (const auto& v : edge_values()) {
            CAPTURE(crdtsync::to_text(type));
            CAPTURE(v.to_text());
            round_trip(env, t, type, v, true);
        }
}

TEST_CASE_TEMPLATE("values: the forms they are stored in, and the refusals", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto r = open_node(env, options_for(delete_policy::insert_revives, 0x11), fake_clock{&t.now});
    crdtsync::table_def def{"v"};
    def.column("k", column_type::any, false)
        .column("any", column_type::any)
        .column("real", column_type::real)
        .column("text", column_type::text)
        .column("json", column_type::json)
        .primary_key({"k"});
    r->create_table(def);
    auto stored = [&](const char* col, value v) {
        r->write([&](auto& tx) {
            (void)tx.erase("v", {value{1}});
            tx.insert("v", row{{"k", value{1}}, {col, std::move(v)}});
        });
        return r->get("v", {value{1}})->at(col);
    };
    SUBCASE("-0.0 is 0.0 in every column; an integral real is an integer outside REAL columns") {
        const auto z = stored("real", value{-0.0});
        REQUIRE(z.kind() == crdtsync::value_kind::real);
        CHECK_FALSE(std::signbit(z.as_real()));
        CHECK(stored("any", value{-0.0}) == value{std::int64_t{0}});
        CHECK(stored("any", value{2.0}) == value{std::int64_t{2}});
        CHECK(stored("text", value{2.0}) == value{std::int64_t{2}});
        CHECK(stored("any", value{2.5}) == value{2.5});
        CHECK(stored("any", value{0x1p63}) == value{crdtsync::big_integer::parse("9223372036854775808")});
        CHECK(stored("real", value{std::int64_t{3}}) == value{3.0});
        CHECK(stored("real", value{crdtsync::big_integer::parse("9223372036854775808")}) == value{0x1p63});
        CHECK(stored("any", value{1e20}) == value{1e20});
    }
    SUBCASE("-0.0 and 0.0 keys are one row, at the origin as at peers") {
        r->write([](auto& tx) { tx.insert("v", row{{"k", value{-0.0}}}); });
        check_throws_code<crdtsync::constraint_error>([&] { r->write([](auto& tx) { tx.insert("v", row{{"k", value{0.0}}}); }); },
                                                      errc::constraint);
        CHECK(r->get("v", {value{0.0}}).has_value());
        CHECK(r->get("v", {value{std::int64_t{0}}}).has_value());
    }
    SUBCASE("infinities are refused, NaN is NULL") {
        const auto before = r->dump();
        check_throws_code<crdtsync::parse_error>(
            [&] { r->write([](auto& tx) { tx.insert("v", row{{"k", value{1}}, {"real", value{std::numeric_limits<double>::infinity()}}}); }); },
            errc::invalid_value);
        check_throws_code<crdtsync::parse_error>(
            [&] { r->write([](auto& tx) { tx.insert("v", row{{"k", value{-std::numeric_limits<double>::infinity()}}}); }); },
            errc::invalid_value);
        CHECK(r->dump() == before);
        CHECK(stored("real", value{std::numeric_limits<double>::quiet_NaN()}).is_null());
    }
    SUBCASE("text that is not UTF-8 is refused where it enters; later writes still sync") {
        const auto before = r->dump();
        try {
            r->write([](auto& tx) { tx.insert("v", row{{"k", value{1}}, {"text", value{std::string("ok\xc3")}}}); });
            FAIL("accepted text that is not UTF-8");
        } catch (const crdtsync::parse_error& e) {
            CHECK(e.code() == errc::invalid_value);
            CHECK(std::string(e.what()).find("column \"text\" of table main.v") != std::string::npos);
            CHECK(std::string(e.what()).find("UTF-8 (byte 2)") != std::string::npos);
        }
        check_throws_code<crdtsync::parse_error>([&] { r->write([](auto& tx) { tx.insert("v", row{{"k", value{std::string("\x80")}}}); }); },
                                                 errc::invalid_value);
        CHECK(r->dump() == before);
        r->write([](auto& tx) { tx.insert("v", row{{"k", value{2}}, {"text", value{"fine"}}}); });
        const auto text = crdtsync::wire::encode_change_sets(changes_of(*r)); // never blocked
        CHECK(text.find("fine") != std::string::npos);
    }
    SUBCASE("JSON cells are stored canonical; JSON that cannot travel is refused") {
        CHECK(stored("json", value{json_text{R"({ "b" : 2.0, "a" : [1, 2.5] })"}}) == value{json_text{R"({"a":[1,2.5],"b":2})"}});
        for (const auto* bad : {"[1,", "5", "\"s\"", R"({"__bigint":"1"})"})
            check_throws_code<crdtsync::parse_error>(
                [&] { r->write([&](auto& tx) { tx.insert("v", row{{"k", value{9}}, {"json", value{json_text{bad}}}}); }); },
                errc::invalid_value);
        const std::string deep = std::string(65, '[') + std::string(65, ']');
        check_throws_code<crdtsync::parse_error>(
            [&] { r->write([&](auto& tx) { tx.insert("v", row{{"k", value{9}}, {"json", value{json_text{deep}}}}); }); },
            errc::invalid_value);
        CHECK_FALSE(r->get("v", {value{9}}).has_value());
    }
    SUBCASE("apply: a change set holding a value that cannot travel is rejected alone") {
        auto good1 = change_set_builder{at(epoch_ms, 0, site_of(0x40))}.insert("v", {value{5}}, {{"k", value{5}}, {"json", value{json_text{"[ 1 ]"}}}}).build();
        auto bad = change_set_builder{at(epoch_ms, 1, site_of(0x40))}.insert("v", {value{6}}, {{"k", value{6}}, {"text", value{std::string("\xff")}}}).build();
        auto inf = change_set_builder{at(epoch_ms, 2, site_of(0x40))}.insert("v", {value{7}}, {{"k", value{7}}, {"real", value{-std::numeric_limits<double>::infinity()}}}).build();
        auto good2 = change_set_builder{at(epoch_ms, 3, site_of(0x40))}.insert("v", {value{8}}, {{"k", value{8}}, {"real", value{-0.0}}}).build();
        const auto res = r->apply(std::vector<change_set>{good1, bad, inf, good2});
        REQUIRE(res.rejected.size() == 2);
        CHECK(res.rejected[0].code == "invalid_value");
        CHECK(res.rejected[1].code == "invalid_value");
        CHECK(res.transactions == 2);
        CHECK(r->get("v", {value{5}})->at("json") == value{json_text{"[1]"}});
        CHECK_FALSE(r->get("v", {value{6}}).has_value());
        CHECK_FALSE(r->get("v", {value{7}}).has_value());
        const auto z = r->get("v", {value{8}})->at("real");
        CHECK_FALSE(std::signbit(z.as_real()));
    }
}


TEST_CASE_TEMPLATE("keys: a row that can be inserted can be updated and deleted, here and at peers", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto origin = open_node(env, options_for(delete_policy::insert_revives, 0x11), fake_clock{&t.now});
    auto peer = open_node(env, options_for(delete_policy::insert_revives, 0x22), fake_clock{&t.now});
    crdtsync::table_def def{"long"};
    def.column("k", column_type::text, false, crdtsync::collation::nocase).column("x", column_type::integer).primary_key({"k"});
    origin->create_table(def);
    int inserted = 0, refused = 0;
    // Around LMDB's 511-byte key limit, with ASCII and with text that NOCASE
    // lengthens (U+023A is 2 bytes, its lower case 3).
    for (std::size_t len = 470; len <= 530; ++len)
        for (const std::string unit : {"k", "\xc8\xba"}) {
            std::string k;
            while (k.size() + unit.size() <= len) k += unit;
            const auto before = origin->dump();
            try {
                origin->write([&](auto& tx) { tx.insert("long", row{{"k", value{k}}, {"x", value{1}}}); });
            } catch (const crdtsync::constraint_error& e) {
                ++refused;
                CHECK(std::string(e.what()).find("bytes encoded") != std::string::npos);
                CHECK(origin->dump() == before);
                continue;
            }
            ++inserted;
            origin->write([&](auto& tx) { CHECK(tx.update("long", {value{k}}, row{{"x", value{2}}})); });
            origin->write([&](auto& tx) { CHECK(tx.erase("long", {value{k}})); });
        }
    CHECK(inserted > 0);
    if (Env::persistent) CHECK(refused > 0); // LMDB has a limit, the memory store none
    else CHECK(refused == 0);
    const auto res = peer->apply(changes_of(*origin));
    CHECK(res.rejected.empty());
    CHECK(peer->dump() == origin->dump());
}

TEST_CASE_TEMPLATE("NOCASE folds as JavaScript's toLowerCase: 'Ü' and 'ü' are one row", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    auto a = open_node(env, options_for(delete_policy::insert_revives, 0x11), fake_clock{&t.now});
    auto b = open_node(env, options_for(delete_policy::insert_revives, 0x22), fake_clock{&t.now});
    crdtsync::table_def def{"pairs"};
    def.column("ns", column_type::text, false, crdtsync::collation::nocase).column("k", column_type::integer, false)
        .column("v", column_type::text).primary_key({"ns", "k"});
    a->create_table(def);
    REQUIRE(b->apply(changes_of(*a)).rejected.empty());
    const auto pa = a->position(), pb = b->position();
    a->write([](auto& tx) { tx.insert("pairs", row{{"ns", value{"Ü"}}, {"k", value{5}}, {"v", value{"a"}}}); });
    t.now += 5;
    b->write([](auto& tx) { tx.insert("pairs", row{{"ns", value{"ü"}}, {"k", value{5}}, {"v", value{"b"}}}); });
    check_throws_code<crdtsync::constraint_error>(
        [&] { a->write([](auto& tx) { tx.insert("pairs", row{{"ns", value{"ü"}}, {"k", value{5}}}); }); }, errc::constraint);
    CHECK(a->get("pairs", {value{"Ü"}, value{5}})->at("v") == value{"a"});
    CHECK(a->get("pairs", {value{"ü"}, value{5}})->at("v") == value{"a"});
    CHECK(a->get("pairs", {value{"İ"}, value{5}}) == std::nullopt);
    (void)a->apply(changes_of(*b, pb, a->site_id()));
    (void)b->apply(changes_of(*a, pa, b->site_id()));
    CHECK(a->rows("pairs").size() == 1);
    CHECK(a->dump() == b->dump());
    CHECK(a->get("pairs", {value{"Ü"}, value{5}})->at("v") == value{"b"});
}

TEST_CASE_TEMPLATE("NOCASE: a format 2 store is upgraded on open, merging rows whose keys now fold together", Env, CRDTSYNC_TEST_STORES) {
    sim_time t;
    Env env;
    const auto opts = options_for(delete_policy::insert_revives, 0x11);
    auto n = open_node(env, opts, fake_clock{&t.now});
    // A format 2 store: its NOCASE folded ASCII only, so non-ASCII keys were
    // stored as spelled. Written here through a BINARY table, then marked as
    // a NOCASE table of format 2.
    crdtsync::table_def binary{"pairs"};
    binary.column("ns", column_type::text, false).column("k", column_type::integer, false).column("v", column_type::text)
        .primary_key({"ns", "k"});
    n->create_table(binary);
    auto put = [&](const char* ns, int k, const char* v) {
        t.now += 3;
        n->write([&](auto& tx) { tx.insert("pairs", row{{"ns", value{ns}}, {"k", value{k}}, {"v", value{v}}}); });
    };
    put("Ü", 5, "upper");
    put("ü", 5, "lower"); // newer: wins the merged row
    put("ΣΑΣ", 1, "sigma");
    put("σας", 1, "sigma2");
    put("abc", 2, "ascii");
    put("Éa", 3, "gone");
    t.now += 3;
    n->write([](auto& tx) { CHECK(tx.erase("pairs", {value{"Éa"}, value{3}})); });
    put("éA", 3, "older than the delete? no: newer, revives");
    const auto facts = changes_of(*n);
    n.rep.reset();
    {
        auto w = n.store->write();
        std::string table_key, record;
        w.scan("s", "t", [&](std::string_view k, std::string_view v) {
            table_key = k;
            record = v;
            return false;
        });
        auto f = crdtsync::key_codec::decode(record);
        for (std::size_t i = 4; i < f.size(); i += 6)
            if (f[i] == value{"ns"}) f[i + 3] = value{std::int64_t{1}}; // collation::nocase
        w.put(table_key, crdtsync::key_codec::encode(f));
        std::string two;
        crdtsync::detail::put_be<std::uint32_t>(two, 2);
        w.put("mformat", two);
        w.commit();
    }
    n.rep = std::make_unique<replica_t<typename Env::store_type>>(*n.store, opts, fake_clock{&t.now});
    {
        auto r = n.store->read();
        const auto f = r.get("mformat");
        REQUIRE(f.has_value());
        CHECK(crdtsync::detail::load_be<std::uint32_t>(*f) == crdtsync::storage_format_version);
    }
    // The same facts merged by a replica whose table was NOCASE from the start.
    auto ref = open_node(env, options_for(delete_policy::insert_revives, 0x33), fake_clock{&t.now});
    crdtsync::table_def nocase{"pairs"};
    nocase.column("ns", column_type::text, false, crdtsync::collation::nocase).column("k", column_type::integer, false)
        .column("v", column_type::text).primary_key({"ns", "k"});
    ref->create_table(nocase);
    auto data = facts;
    for (auto& cs : data) cs.migrations.clear();
    REQUIRE(ref->apply(data).rejected.empty());
    auto without_migrations = [](const std::string& dump) {
        std::string out, line;
        for (char c : dump) {
            line += c;
            if (c != '\n') continue;
            if (line.rfind("migration ", 0) != 0) out += line;
            line.clear();
        }
        return out;
    };
    CHECK(n->rows("pairs").size() == 4);
    CHECK(n->get("pairs", {value{"Ü"}, value{5}})->at("v") == value{"lower"});
    CHECK(n->get("pairs", {value{"ΣΑΣ"}, value{1}})->at("v") == value{"sigma2"});
    CHECK(rows_text(*n) == rows_text(*ref));
    CHECK(without_migrations(n->dump()) == without_migrations(ref->dump()));
    // Every live fact is in the change log once, under its new key.
    std::size_t logged = 0;
    for (const auto& cs : changes_of(*n)) logged += cs.changes.size();
    std::size_t ref_logged = 0;
    for (const auto& cs : changes_of(*ref)) ref_logged += cs.changes.size();
    CHECK(logged == ref_logged);
    // Opening again changes nothing.
    const auto once = n->dump();
    n.rep = std::make_unique<replica_t<typename Env::store_type>>(*n.store, opts, fake_clock{&t.now});
    CHECK(n->dump() == once);
}

#if defined(CRDTSYNC_TEST_LMDB)
TEST_CASE("keys: a change set whose key the store cannot hold is rejected alone") {
    sim_time t;
    lmdb_env env;
    auto r = open_node(env, options_for(delete_policy::insert_revives, 0x11), fake_clock{&t.now});
    crdtsync::table_def def{"long"};
    def.column("k", column_type::text, false).column("x", column_type::integer).primary_key({"k"});
    r->create_table(def);
    const std::string too_long(600, 'z');
    auto good1 = change_set_builder{at(epoch_ms, 0, site_of(0x40))}.insert("long", {value{"a"}}, {{"k", value{"a"}}, {"x", value{1}}}).build();
    auto bad = change_set_builder{at(epoch_ms, 1, site_of(0x40))}.insert("long", {value{too_long}}, {{"k", value{too_long}}, {"x", value{1}}}).build();
    auto bad_delete = change_set_builder{at(epoch_ms, 2, site_of(0x40))}.erase("long", {value{std::string(505, 'd')}}).build();
    auto good2 = change_set_builder{at(epoch_ms, 3, site_of(0x40))}.insert("long", {value{"b"}}, {{"k", value{"b"}}, {"x", value{2}}}).build();
    const auto res = r->apply(std::vector<change_set>{good1, bad, bad_delete, good2});
    REQUIRE(res.rejected.size() == 2);
    CHECK(res.rejected[0].code == "constraint");
    CHECK(res.rejected[0].transaction_id == bad.transaction_id);
    CHECK(res.rejected[0].reason.find("this store holds keys of at most") != std::string::npos);
    CHECK(res.rejected[1].transaction_id == bad_delete.transaction_id);
    CHECK(res.transactions == 2);
    CHECK(r->rows("long").size() == 2);
}

/// Runs `body` in a child process; returns the child's pid. The child exits
/// 0 when `body` returns, 1 when it throws (after printing what).
template <class F>
pid_t spawn(F&& body) {
    std::fflush(nullptr); // or the child would print the parent's buffered output again
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int code = 0;
        try {
            body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "child %d: %s\n", static_cast<int>(::getpid()), e.what());
            code = 1;
        }
        std::fflush(nullptr);
        ::_exit(code);
    }
    return pid;
}
int wait_exit(pid_t pid) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// A pipe whose write end the parent closes to let children start at once.
struct start_gate {
    int fd[2]{-1, -1};
    start_gate() { REQUIRE(::pipe(fd) == 0); }
    ~start_gate() {
        for (int f : fd)
            if (f >= 0) ::close(f);
    }
    void wait() const { // in a child
        ::close(fd[1]);
        char c;
        (void)!::read(fd[0], &c, 1);
    }
    void open_gate() {
        ::close(fd[1]);
        fd[1] = -1;
    }
};

crdtsync::table_def counter_table() {
    crdtsync::table_def def{"t"};
    def.column("id", column_type::integer, false).column("who", column_type::integer).primary_key({"id"});
    return def;
}

TEST_CASE("processes: two processes writing one LMDB replica: every write is in the change log once, every HLC distinct") {
    temp_dir dir;
    const auto path = (dir.path() / "shared.mdb").string();
    {
        crdtsync::lmdb_store s{path};
        crdtsync::replica r{s};
        r.create_table(counter_table());
    }
    constexpr int per_child = 1500;
    start_gate gate;
    std::vector<pid_t> kids;
    for (int who = 0; who < 2; ++who)
        kids.push_back(spawn([&, who] {
            gate.wait();
            crdtsync::lmdb_options o{path};
            o.sync = crdtsync::lmdb_sync::no_sync;
            crdtsync::lmdb_store s{o};
            crdtsync::replica r{s};
            for (int i = 0; i < per_child; ++i)
                r.write([&](auto& tx) { tx.insert("t", row{{"id", value{who * 100000 + i}}, {"who", value{who}}}); });
        }));
    gate.open_gate();
    for (auto k : kids) CHECK(wait_exit(k) == 0);

    crdtsync::lmdb_store s{path};
    crdtsync::replica r{s};
    CHECK(r.rows("t").size() == 2 * per_child);
    std::size_t facts = 0;
    std::set<hlc> versions;
    const auto sets = changes_of(r);
    for (const auto& cs : sets)
        for (const auto& c : cs.changes) {
            ++facts;
            versions.insert(crdtsync::version_of(c));
            CHECK(crdtsync::version_of(c).site == r.site_id());
        }
    CHECK(facts == 2 * per_child * 2); // both columns of every insert
    CHECK(versions.size() == facts);
    // A peer that syncs from it receives everything.
    crdtsync::memory_store ms;
    crdtsync::replica peer{ms};
    CHECK(peer.apply(sets).rejected.empty());
    CHECK(peer.rows("t").size() == 2 * per_child);
    CHECK(peer.dump() == r.dump());
}

/// An lmdb_store whose first write transaction waits at a barrier: two
/// processes opening one new replica both look at the empty store before
/// either writes, the interleaving that once split the site id.
struct gated_lmdb_store {
    using kv_store_concept = crdtsync::kv_store_tag;
    crdtsync::lmdb_store inner;
    int arrived, go;
    bool passed = false;
    auto read() { return inner.read(); }
    auto write() {
        if (!passed) {
            passed = true;
            char c = 1;
            (void)!::write(arrived, &c, 1);
            (void)!::read(go, &c, 1); // returns when the parent closes the pipe
        }
        return inner.write();
    }
};

TEST_CASE("processes: two processes creating one new LMDB replica agree on its site id") {
    temp_dir dir;
    const auto path = (dir.path() / "new.mdb").string();
    int ids[2], arrived[2], go[2];
    REQUIRE(::pipe(ids) == 0);
    REQUIRE(::pipe(arrived) == 0);
    REQUIRE(::pipe(go) == 0);
    std::vector<pid_t> kids;
    for (int who = 0; who < 2; ++who)
        kids.push_back(spawn([&, who] {
            ::close(go[1]);
            gated_lmdb_store s{crdtsync::lmdb_store{path}, arrived[1], go[0]};
            crdtsync::replica r{s};
            r.create_table(counter_table());
            r.write([&](auto& tx) { tx.insert("t", row{{"id", value{who}}, {"who", value{who}}}); });
            const auto v = r.site_id().view();
            if (::write(ids[1], v.data(), v.size()) != static_cast<ssize_t>(v.size())) throw std::runtime_error("pipe");
        }));
    ::close(ids[1]);
    ::close(arrived[1]);
    ::close(go[0]);
    char both[2];
    CHECK(::read(arrived[0], both, 1) == 1); // both children are at their first write
    CHECK(::read(arrived[0], both + 1, 1) == 1);
    ::close(go[1]); // let them go
    for (auto k : kids) CHECK(wait_exit(k) == 0);
    ::close(arrived[0]);
    std::string got(32, '\0');
    std::size_t n = 0;
    while (n < got.size()) {
        const auto k = ::read(ids[0], got.data() + n, got.size() - n);
        if (k <= 0) break;
        n += static_cast<std::size_t>(k);
    }
    ::close(ids[0]);
    REQUIRE(n == 32);
    crdtsync::lmdb_store s{path};
    crdtsync::replica r{s};
    CHECK(got.substr(0, 16) == std::string(r.site_id().view()));
    CHECK(got.substr(16) == std::string(r.site_id().view()));
    CHECK(r.rows("t").size() == 2);
    for (const auto& cs : changes_of(r)) CHECK(cs.origin == r.site_id());
    CHECK(r.tables().size() == 1);
}

TEST_CASE("processes: a table another process created is seen by reads and writes of an open replica") {
    temp_dir dir;
    const auto path = (dir.path() / "shared.mdb").string();
    start_gate gate;
    // Forked before this process opens the file (a child must not inherit
    // an open LMDB environment).
    const auto kid = spawn([&] {
        gate.wait();
        crdtsync::lmdb_store s2{path};
        crdtsync::replica r2{s2};
        r2.create_table(counter_table());
        r2.write([](auto& tx) { tx.insert("t", row{{"id", value{1}}, {"who", value{1}}}); });
    });
    crdtsync::lmdb_store s{path};
    crdtsync::replica r{s};
    CHECK_FALSE(r.find_table("t").has_value());
    gate.open_gate();
    CHECK(wait_exit(kid) == 0);
    CHECK(r.find_table("t").has_value());
    CHECK(r.rows("t").size() == 1);
    r.write([](auto& tx) { tx.insert("t", row{{"id", value{2}}, {"who", value{0}}}); });
    CHECK(changes_of(r).size() == 3); // the creation and both inserts
    CHECK(r.position() == 3);
}
#endif

} // namespace
} // namespace replica_tests
