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
    CHECK_MESSAGE(origin->dump() == peer->dump(), "value " << v.to_string() << " in " << crdtsync::to_string(type)
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
            CAPTURE(crdtsync::to_string(type));
            CAPTURE(v.to_string());
            round_trip(env, t, type, v, false);
        }
    // As keys: the same rule, in BINARY key columns of each type.
    for (const auto type : all_types)
        for (const auto& v : edge_values()) {
            CAPTURE(crdtsync::to_string(type));
            CAPTURE(v.to_string());
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

} // namespace
} // namespace replica_tests
