// The JSON codec on hand-built data: round trips of every type, golden texts
// written from the wire spec, malformed inputs with their codes and paths,
// and the decode limits.

#include "wire_samples.hpp"

#include <charconv>
#include <cmath>
#include <functional>

using namespace wire_test;
using nlohmann::json;
namespace wire = crdtsync::wire;

namespace {

/// encode -> decode gives the value back; to_json / from_json agree with the text.
template <class T>
void check_round_trip(const T& x) {
    const std::string text = wire::encode(x);
    const T back = wire::decode<T>(text);
    CHECK_MESSAGE(back == x, text);
    CHECK(wire::encode(back) == text);
    const json dom = wire::to_json(x);
    CHECK_MESSAGE(dom == json::parse(text), text);
    CHECK(wire::from_json<T>(dom) == x);
    // nlohmann's own conversions go through the same codec.
    const json via_adl = x;
    CHECK(via_adl == dom);
    CHECK(via_adl.template get<T>() == x);
}

/// Runs `f`, which must throw a parse_error with `code` whose message starts
/// with `path` followed by ": ".
void check_fails(const std::function<void()>& f, errc code, const std::string& path,
                 std::string_view also_contains = {}) {
    try {
        f();
        FAIL_CHECK("no error; expected one at " << path);
    } catch (const parse_error& e) {
        const std::string what = e.what();
        CHECK_MESSAGE(e.code() == code, what);
        CHECK_MESSAGE(e.message().rfind(path + ": ", 0) == 0, "expected the path \"" << path << "\": " << what);
        if (!also_contains.empty()) CHECK_MESSAGE(e.message().find(also_contains) != std::string::npos, what);
    } catch (const std::exception& e) {
        FAIL_CHECK("not a parse_error: " << std::string(e.what()));
    }
}

} // namespace

TEST_CASE("values round trip, kind by kind") {
    for (const auto& v : sample_values()) {
        CAPTURE(v.to_text());
        check_round_trip(v);
    }
}

TEST_CASE("value encodings follow the wire spec") {
    CHECK(wire::encode(value{}) == "null");
    CHECK(wire::encode(value{true}) == "true");
    CHECK(wire::encode(value{std::int64_t(-12)}) == "-12");
    CHECK(wire::encode(value{wire::max_safe_integer}) == "9007199254740991");
    CHECK(wire::encode(value{wire::max_safe_integer + 1}) == R"({"__bigint":"9007199254740992"})");
    CHECK(wire::encode(value{-wire::max_safe_integer - 1}) == R"({"__bigint":"-9007199254740992"})");
    CHECK(wire::encode(value{std::numeric_limits<std::int64_t>::max()}) == R"({"__bigint":"9223372036854775807"})");
    CHECK(wire::encode(value{big_integer::parse("-123456789012345678901")}) == R"({"__bigint":"-123456789012345678901"})");
    CHECK(wire::encode(value{blob{std::string("\x00\xff\x7f\x80", 4)}}) == R"({"__bin":"AP9/gA=="})");
    CHECK(wire::encode(value{blob{}}) == R"({"__bin":""})");
    CHECK(wire::encode(value{"a\"b\\c\n\x1f"}) == R"("a\"b\\c\n\u001f")");
    CHECK(wire::encode(value{json_text{R"({ "b" : 1, "a" : [true, null] })"}}) == R"({"a":[true,null],"b":1})");
    // Reals print as JavaScript prints numbers.
    CHECK(wire::encode(value{2.0}) == "2");
    CHECK(wire::encode(value{-0.0}) == "0");
    CHECK(wire::encode(value{1.25}) == "1.25");
    CHECK(wire::encode(value{-1e-7}) == "-1e-7");
    CHECK(wire::encode(value{0.000001}) == "0.000001");
    CHECK(wire::encode(value{1e21}) == "1e+21");
    CHECK(wire::encode(value{1e20}) == "100000000000000000000");
    CHECK(wire::encode(value{123456789.125}) == "123456789.125");
    CHECK(wire::encode(value{0.1 + 0.2}) == "0.30000000000000004");
    CHECK(wire::encode(value{5e-324}) == "5e-324");
    CHECK(wire::encode(value{std::numeric_limits<double>::infinity()}) == "null");
    CHECK(wire::encode(value{-std::numeric_limits<double>::infinity()}) == "null");
}

TEST_CASE("value decoding: one number type, tagged objects, JSON pass-through") {
    CHECK(wire::decode<value>("2") == value{std::int64_t(2)});
    CHECK(wire::decode<value>("2.0") == value{std::int64_t(2)}); // the column type decides
    CHECK(wire::decode<value>("-0.0") == value{std::int64_t(0)});
    CHECK(wire::decode<value>("1e3") == value{std::int64_t(1000)});
    CHECK(wire::decode<value>("2.5") == value{2.5});
    CHECK(wire::decode<value>("1e300") == value{1e300});
    CHECK(wire::decode<value>("1e-400") == value{std::int64_t(0)}); // underflows to zero
    CHECK(wire::decode<value>("18446744073709551615") == value{big_integer::parse("18446744073709551615")});
    CHECK(wire::decode<value>("-9223372036854775808") == value{std::numeric_limits<std::int64_t>::min()});
    // An integer written out beyond 64 bits is the real it rounds to, even
    // when that real is -2^63 (it is not INT64_MIN).
    CHECK(wire::decode<value>("-9223372036854775809") == value{-0x1p63});
    CHECK(wire::decode<value>("-9223372036854775809").kind() == value_kind::real);
    CHECK(wire::decode<value>("18446744073709551616") == value{0x1p64});
    CHECK(wire::decode<value>("-9223372036854775808.0") == value{std::numeric_limits<std::int64_t>::min()});
    CHECK(wire::decode<value>(R"({"__bigint":"9007199254740993"})") == value{std::int64_t(9007199254740993)});
    CHECK(wire::decode<value>(R"({"__bigint":"5"})") == value{std::int64_t(5)});
    CHECK(wire::decode<value>(R"({"__bigint":"-99999999999999999999"})").kind() == value_kind::big_integer);
    CHECK(wire::decode<value>(R"({"__bin":"3q2+7w=="})") == value{blob{"\xde\xad\xbe\xef"}});
    CHECK(wire::decode<value>(R"({"__bin":""})") == value{blob{}});
    CHECK(wire::decode<value>(R"({"z": 1, "a": {"y": [1.0, 2.5e0]}})") == value{json_text{R"({"a":{"y":[1,2.5]},"z":1})"}});
    CHECK(wire::decode<value>("[]") == value{json_text{"[]"}});
    CHECK(wire::decode<value>(R"("\u00fc\ud83d\ude00\/")") == value{"\xc3\xbc\xf0\x9f\x98\x80/"});
    CHECK(wire::decode<value>(" true ") == value{true});
}

TEST_CASE("JSON cell values that cannot travel are refused on encode") {
    CHECK_THROWS_AS((void)wire::encode(value{json_text{"not json"}}), parse_error);
    CHECK_THROWS_AS((void)wire::encode(value{json_text{"42"}}), parse_error);
    CHECK_THROWS_AS((void)wire::encode(value{json_text{R"({"__bin":"AA=="})"}}), parse_error);
    CHECK_THROWS_AS((void)wire::encode(value{std::string("\xff\xfe")}), parse_error);
    column_change half = sample_column_change(0, value{});
    half.prior_value = value{};
    CHECK_THROWS_AS((void)wire::encode(change{half}), usage_error);
    try {
        (void)wire::encode(value{std::string("ok \xc3")});
    } catch (const parse_error& e) {
        CHECK(e.code() == errc::invalid_value);
    }
}

TEST_CASE("hlc and site id text forms") {
    const hlc h = at(1700000002000, 0, site_a, 4);
    CHECK(wire::encode(h) == "\"AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAE\"");
    CHECK(wire::encode(site_a) == "\"qqqqqqqqqqqqqqqqqqqqqg\"");
    CHECK(wire::decode<hlc>("\"AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAE\"") == h);
    CHECK(wire::decode<site_id>("\"u7u7u7u7u7u7u7u7u7u7uw\"") == site_b);
    check_round_trip(h);
    check_round_trip(site_b);
    check_round_trip(hlc{std::numeric_limits<std::uint64_t>::max(), 0xFFFF, site_b, 0xFFFFFFFF});
}

TEST_CASE("every wire type round trips") {
    const change_set cs = sample_change_set();
    check_round_trip(cs);
    for (const auto& c : cs.changes) check_round_trip(c);
    check_round_trip(std::get<column_change>(cs.changes[1]));
    check_round_trip(std::get<row_delete>(cs.changes[3]));
    for (const auto& m : sample_migrations()) check_round_trip(m);
    check_round_trip(std::vector<change_set>{cs, cs});
    check_round_trip(std::vector<change_set>{});
    check_round_trip(sample_apply_result());
    check_round_trip(apply_result{});
    check_round_trip(sample_apply_result().rejected[0]);
    check_round_trip(sample_checkpoint());
    for (const auto& c : sample_chunks()) check_round_trip(c);
    check_round_trip(std::get<snapshot_column_versions>(sample_chunks()[3]).entries[0]);
    check_round_trip(std::get<snapshot_tombstones>(sample_chunks()[5]).entries[0]);
    check_round_trip(sample_chunks());
    for (const auto& m : sample_messages()) {
        CAPTURE(wire_type_of(m));
        check_round_trip(m);
    }
    check_round_trip(msg::error{"X", "y", false});
    check_round_trip(sample_values());
}

TEST_CASE("crdtsync's snapshot additions: written only when set, read back, ignored members elsewhere") {
    // The header's position, table-start's firstEntry, the checkpoint's
    // position and lastEntry: Quereus readers ignore members they do not
    // know, and a stream without them reads as before.
    auto h = std::get<snapshot_header>(sample_chunks()[0]);
    h.position = 42;
    CHECK(wire::encode(h).find(R"(,"position":42})") != std::string::npos);
    check_round_trip(snapshot_chunk{h});
    h.position.reset();
    CHECK(wire::encode(h).find("position") == std::string::npos);
    snapshot_table_start ts{"main", "items", 0, 1000};
    CHECK(wire::encode(ts) == R"({"type":"table-start","schema":"main","table":"items","estimatedEntries":0,"firstEntry":1000})");
    check_round_trip(snapshot_chunk{ts});
    auto k = sample_checkpoint();
    k.position = 7;
    k.last_entry = snapshot_last_entry{"main.items", row_key{value{std::int64_t(3)}, value{"x"}}, "name"};
    CHECK(wire::encode(k).ends_with(R"("createdAt":1700000006000,"position":7,)"
                                    R"("lastEntry":{"table":"main.items","pk":[3,"x"],"column":"name"}})"));
    check_round_trip(k);
    // A checkpoint without them reads back without them.
    auto again = wire::decode<snapshot_checkpoint>(wire::encode(sample_checkpoint()));
    CHECK_FALSE(again.position);
    CHECK_FALSE(again.last_entry);
    check_fails([] { (void)wire::decode<snapshot_checkpoint>(
                    R"({"snapshotId":"s","siteId":"qqqqqqqqqqqqqqqqqqqqqg","hlc":"AAABi8/le4gAAKqqqqqqqqqqqqqqqqqqqqoAAAAA",)"
                    R"("lastTableIndex":0,"lastEntryIndex":0,"completedTables":[],"entriesProcessed":0,"createdAt":0,)"
                    R"("lastEntry":{"table":"main.items","pk":[1]}})"); },
                errc::decode, "lastEntry.column", "required member is missing");
}

TEST_CASE("named entry points agree with the generic ones") {
    const std::vector<change_set> sets{sample_change_set()};
    const std::string text = wire::encode_change_sets(sets);
    CHECK(text == wire::encode(sets));
    CHECK(wire::decode_change_sets(text) == sets);
    for (const auto& m : sample_messages()) CHECK(wire::decode_message(wire::encode_message(m)) == m);
    const auto chunks = sample_chunks();
    for (const auto& c : chunks) CHECK(wire::decode_snapshot_chunk(wire::encode_snapshot_chunk(c)) == c);
    CHECK(wire::decode_snapshot_chunks(wire::encode_snapshot_chunks(chunks)) == chunks);
    CHECK(wire::parse(text) == json::parse(text));
}

TEST_CASE("golden: a change set with a NULL, a composite key, a blob, a big integer and a delete with its prior row") {
    change_set cs;
    cs.origin = site_a;
    cs.transaction_id = "1700000002000:0:qqqqqqqqqqqqqqqqqqqqqg";
    cs.version = at(1700000002000, 0, site_a, 4);
    column_change null_cell;
    null_cell.table = "pairs";
    null_cell.pk = {value{"\xc3\xbc"}, value{std::int64_t(-7)}};
    null_cell.version = at(1700000002000, 0, site_a, 0);
    null_cell.column = "v";
    column_change blob_cell;
    blob_cell.table = "items";
    blob_cell.pk = {value{std::numeric_limits<std::int64_t>::max()}};
    blob_cell.version = at(1700000002000, 0, site_a, 1);
    blob_cell.column = "data";
    blob_cell.val = value{blob{std::string("\x00\xff\x7f\x80", 4)}};
    column_change big_cell;
    big_cell.table = "items";
    big_cell.pk = {value{std::int64_t(3)}};
    big_cell.version = at(1700000002000, 0, site_a, 2);
    big_cell.column = "qty";
    big_cell.val = value{std::int64_t(9007199254740993)};
    big_cell.prior_value = value{};
    big_cell.prior_version = at(1700000001500, 3, site_a, 9);
    row_delete del;
    del.table = "items";
    del.pk = {value{std::int64_t(4)}};
    del.version = at(1700000002000, 0, site_a, 3);
    del.prior_row = row_key{value{std::int64_t(4)}, value{"to-delete"}, value{4.5}, value{blob{"\xde\xad\xbe\xef"}},
                            value{std::int64_t(4)}};
    cs.changes = {null_cell, blob_cell, big_cell, del};

    const std::string golden =
        R"([{"siteId":"qqqqqqqqqqqqqqqqqqqqqg","transactionId":"1700000002000:0:qqqqqqqqqqqqqqqqqqqqqg",)"
        R"("hlc":"AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAE","changes":[)"
        R"({"type":"column","schema":"main","table":"pairs","pk":["ü",-7],)"
        R"("hlc":"AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAA","column":"v","value":null},)"
        R"({"type":"column","schema":"main","table":"items","pk":[{"__bigint":"9223372036854775807"}],)"
        R"("hlc":"AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAB","column":"data","value":{"__bin":"AP9/gA=="}},)"
        R"({"type":"column","schema":"main","table":"items","pk":[3],"hlc":"AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAC",)"
        R"("column":"qty","value":{"__bigint":"9007199254740993"},"priorValue":null,)"
        R"("priorHlc":"AAABi8/lbdwAA6qqqqqqqqqqqqqqqqqqqqoAAAAJ"},)"
        R"({"type":"delete","schema":"main","table":"items","pk":[4],"hlc":"AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAD",)"
        R"("priorRow":[4,"to-delete",4.5,{"__bin":"3q2+7w=="},4]}],"schemaMigrations":[]}])";
    CHECK(wire::encode_change_sets(std::vector<change_set>{cs}) == golden);
    CHECK(wire::decode_change_sets(golden) == std::vector<change_set>{cs});
}

TEST_CASE("golden: coordinator messages") {
    CHECK(wire::encode_message(msg::handshake{"db-1", site_b, std::nullopt, 1}) ==
          R"({"type":"handshake","databaseId":"db-1","siteId":"u7u7u7u7u7u7u7u7u7u7uw","protocolVersion":1})");
    CHECK(wire::encode_message(msg::get_changes{at(1700000002000, 0, site_a, 4), std::nullopt}) ==
          R"({"type":"get_changes","sinceHLC":"AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAE"})");
    CHECK(wire::encode_message(msg::get_snapshot{}) == R"({"type":"get_snapshot"})");
    CHECK(wire::encode_message(msg::ping{}) == R"({"type":"ping"})");
    CHECK(wire::encode_message(msg::pong{}) == R"({"type":"pong"})");
    CHECK(wire::encode_message(msg::snapshot_complete{}) == R"({"type":"snapshot_complete"})");
    CHECK(wire::encode_message(msg::error{"AUTH_FAILED", "bad token", true}) ==
          R"({"type":"error","code":"AUTH_FAILED","message":"bad token","fatal":true})");
    apply_result r;
    r.applied = 53;
    r.transactions = 4;
    CHECK(wire::encode_message(msg::apply_result{std::string("7"), r}) ==
          R"({"type":"apply_result","requestId":"7","applied":53,"skipped":0,"conflicts":0,"transactions":4})");
    CHECK(wire::encode_message(msg::handshake_ack{site_a, "c1", std::string("db-1"), 1}) ==
          R"({"type":"handshake_ack","serverSiteId":"qqqqqqqqqqqqqqqqqqqqqg","connectionId":"c1","databaseId":"db-1","protocolVersion":1})");
    // Quereus' own frames decode, whatever their member order, extra members ignored.
    CHECK(wire::decode_message(R"({"fatal":false,"message":"m","code":"MESSAGE_ERROR","type":"error","extra":[1,{"a":2}]})") ==
          message{msg::error{"MESSAGE_ERROR", "m", false}});
    CHECK(wire::decode_message(R"({"type":"get_changes","sinceHLC":""})") == message{msg::get_changes{}});
    CHECK(wire::decode_message(R"({"type":"get_changes","sinceHLC":null})") == message{msg::get_changes{}});
    CHECK(wire::decode_message(R"({"type":"apply_result","applied":1,"skipped":0,"conflicts":0,"transactions":1,"rejected":[]})") ==
          message{msg::apply_result{std::nullopt, apply_result{1, 0, 0, 1, {}, std::nullopt}}});
}

TEST_CASE("golden: the rejection's transaction id is an extra member") {
    rejection x;
    x.reason = "r";
    x.code = "clock_drift";
    x.transaction_id = "1:0:qqqqqqqqqqqqqqqqqqqqqg";
    CHECK(wire::encode(x) == R"({"reason":"r","code":"clock_drift","transactionId":"1:0:qqqqqqqqqqqqqqqqqqqqqg"})");
    x.transaction_id.clear();
    CHECK(wire::encode(x) == R"({"reason":"r","code":"clock_drift"})");
}

TEST_CASE("golden: snapshot chunks") {
    const auto chunks = sample_chunks();
    CHECK(wire::encode(chunks[0]) ==
          R"({"type":"header","siteId":"qqqqqqqqqqqqqqqqqqqqqg","hlc":"AAABi8/le4gAAKqqqqqqqqqqqqqqqqqqqqoAAAAA",)"
          R"("snapshotFormat":1,"tableCount":1,"migrationCount":1,"snapshotId":"00000000-0000-4000-8000-00000000000d"})");
    CHECK(wire::encode(chunks[2]) == R"({"type":"table-start","schema":"main","table":"items","estimatedEntries":0})");
    CHECK(wire::encode(chunks[5]) ==
          R"({"type":"tombstone","schema":"main","table":"items","entries":[)"
          R"({"pk":[4],"hlc":"AAABi8/ldUgAAKqqqqqqqqqqqqqqqqqqqqoAAAAA","createdAt":1700000003400,"priorRow":[4,"to-delete"]},)"
          R"({"pk":["a",2],"hlc":"AAABi8/ld8gAALu7u7u7u7u7u7u7u7u7u7sAAAAA","createdAt":1700000004040}]})");
    CHECK(wire::encode(sample_checkpoint()) ==
          R"({"snapshotId":"00000000-0000-4000-8000-00000000000d","siteId":"u7u7u7u7u7u7u7u7u7u7uw",)"
          R"("hlc":"AAABi8/le4gAAKqqqqqqqqqqqqqqqqqqqqoAAAAA","lastTableIndex":1,"lastEntryIndex":1000,)"
          R"("completedTables":["main.items"],"entriesProcessed":1000,"createdAt":1700000006000})");
}

namespace {

struct malformed {
    const char* name;
    const char* kind; // "sets", "message", "chunk", "value"
    std::string input;
    errc code;
    std::string path;
    std::string contains = {};
};

const std::string hlc0 = "AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAA";

std::string change_json(const std::string& inner) {
    return R"({"type":"column","schema":"main","table":"items","pk":[1],"hlc":")" + hlc0 +
           R"(","column":"name","value":"x")" + inner + "}";
}
std::string set_json(const std::string& changes, const std::string& extra = "") {
    return R"({"siteId":"qqqqqqqqqqqqqqqqqqqqqg","transactionId":"t","hlc":")" + hlc0 + R"(","changes":[)" + changes +
           "]" + extra + "}";
}
std::string sets_json(const std::string& changes, const std::string& extra = "") {
    return "[" + set_json(changes, extra) + "]";
}

void decode_as(const malformed& m) {
    const std::string_view kind = m.kind;
    if (kind == "sets") (void)wire::decode_change_sets(m.input);
    else if (kind == "message") (void)wire::decode_message(m.input);
    else if (kind == "chunk") (void)wire::decode_snapshot_chunk(m.input);
    else (void)wire::decode<value>(m.input);
}

std::vector<malformed> malformed_inputs() {
    const std::string ok_change = change_json("");
    const std::string hlc38 = hlc0.substr(0, 38);
    std::string changes8;
    for (int i = 0; i < 8; ++i) changes8 += (i ? "," : "") + (i == 7 ? R"({"type":"delete","schema":"main","table":"items","pk":[1],"hlc":")" + hlc38 + "\"}" : ok_change);
    std::string sets3 = set_json(ok_change) + "," + set_json(ok_change) + "," + set_json(changes8);
    return {
        {"not an array", "sets", "{}", errc::decode, "$", "expected an array"},
        {"empty input", "sets", "", errc::decode, "$", "end of input"},
        {"trailing text", "sets", "[] x", errc::decode, "$", "after the JSON value"},
        {"short hlc", "sets", "[" + set_json("") .replace(set_json("").find(hlc0), 40, hlc38) + "]", errc::decode, "[0].hlc",
         "expected a 40-character base64 HLC, got 38 characters"},
        {"the brief's example", "message", R"({"type":"changes","changeSets":[)" + sets3 + "]}", errc::decode,
         "changeSets[2].changes[7].hlc", "expected a 40-character base64 HLC, got 38 characters"},
        {"hlc not base64", "sets", sets_json(change_json("").replace(change_json("").find(hlc0), 1, "*")), errc::decode,
         "[0].changes[0].hlc"},
        {"hlc not a string", "sets", sets_json(R"({"type":"delete","schema":"main","table":"t","pk":[],"hlc":12})"),
         errc::decode, "[0].changes[0].hlc", "got 12"},
        {"missing transactionId", "sets", R"([{"siteId":"qqqqqqqqqqqqqqqqqqqqqg","hlc":")" + hlc0 + R"(","changes":[]}])",
         errc::decode, "[0].transactionId", "required member is missing"},
        {"missing changes", "sets", R"([{"siteId":"qqqqqqqqqqqqqqqqqqqqqg","transactionId":"t","hlc":")" + hlc0 + R"("}])",
         errc::decode, "[0].changes", "required member is missing"},
        {"site id too short", "sets", "[" + set_json("").replace(11, 22, "qqqqqqqqqqqqqqqqqqqqq") + "]", errc::decode, "[0].siteId",
         "22"},
        {"site id with '+'", "sets", "[" + set_json("").replace(11, 22, "qqqqqqqqqqqqqqqqqqqq+g") + "]", errc::decode,
         "[0].siteId"},
        {"site id padding bits", "sets", "[" + set_json("").replace(11, 22, "qqqqqqqqqqqqqqqqqqqqqh") + "]", errc::decode,
         "[0].siteId"},
        {"unknown change type", "sets", sets_json(R"({"type":"colum","schema":"main","table":"t","pk":[],"hlc":")" + hlc0 + "\"}"),
         errc::decode, "[0].changes[0].type", "\"column\" or \"delete\""},
        {"change type missing", "sets", sets_json(R"({"schema":"main"})"), errc::decode, "[0].changes[0].type",
         "required member is missing"},
        {"change missing hlc", "sets", sets_json(R"({"type":"delete","schema":"main","table":"t","pk":[]})"), errc::decode,
         "[0].changes[0].hlc", "required member is missing"},
        {"priorValue without priorHlc", "sets", sets_json(change_json(R"(,"priorValue":1)")), errc::decode,
         "[0].changes[0].priorValue", "priorValue without priorHlc"},
        {"priorHlc without priorValue", "sets", sets_json(change_json(R"(,"priorHlc":")" + hlc0 + "\"")), errc::decode,
         "[0].changes[0].priorHlc", "priorHlc without priorValue"},
        {"pk not an array", "sets", sets_json(change_json("").replace(change_json("").find("[1]"), 3, "1")), errc::decode,
         "[0].changes[0].pk", "expected an array"},
        {"column change without value", "sets",
         sets_json(R"({"type":"column","schema":"main","table":"t","pk":[1],"hlc":")" + hlc0 + R"(","column":"c"})"),
         errc::decode, "[0].changes[0].value", "required member is missing"},
        {"bad base64 blob", "sets", sets_json(change_json(R"(,"value":{"__bin":"AP9/gA="})")), errc::decode,
         "[0].changes[0].value.__bin", "base64"},
        {"blob with another member", "value", R"({"__bin":"AA==","x":1})", errc::decode, "$", "no other member"},
        {"tag after another member", "value", R"({"x":1,"__bigint":"1"})", errc::decode, "$", "no other member"},
        {"blob not text", "value", R"({"__bin":7})", errc::decode, "__bin", "expected padded standard base64 text"},
        {"bigint not decimal", "sets", sets_json(change_json(R"(,"value":{"__bigint":"12a"})")), errc::decode,
         "[0].changes[0].value.__bigint"},
        {"bigint with leading zero", "value", R"({"__bigint":"007"})", errc::decode, "__bigint"},
        {"unknown migration type", "sets",
         sets_json("", R"(,"schemaMigrations":[{"type":"create_view","schema":"main","table":"v","ddl":"","hlc":")" + hlc0 +
                           R"(","schemaVersion":1}])"),
         errc::decode, "[0].schemaMigrations[0].type", "create_table"},
        {"negative schemaVersion", "sets",
         sets_json("", R"(,"schemaMigrations":[{"type":"drop_table","schema":"main","table":"v","ddl":"","hlc":")" + hlc0 +
                           R"(","schemaVersion":-1}])"),
         errc::decode, "[0].schemaMigrations[0].schemaVersion", "non-negative integer"},
        {"fractional schemaVersion", "sets",
         sets_json("", R"(,"schemaMigrations":[{"type":"drop_table","schema":"main","table":"v","ddl":"","hlc":")" + hlc0 +
                           R"(","schemaVersion":1.5}])"),
         errc::decode, "[0].schemaMigrations[0].schemaVersion", "got 1.5"},
        {"NaN is not JSON", "sets", sets_json(change_json(R"(,"value":NaN)")), errc::decode, "[0].changes[0].value",
         "invalid JSON"},
        {"number overflow", "value", "1e400", errc::decode, "$", "too large"},
        {"lone surrogate", "value", R"("\ud800")", errc::decode, "$", "surrogate"},
        {"invalid UTF-8", "value", "\"\xc3\x28\"", errc::decode, "$", "UTF-8"},
        {"raw control character", "value", "\"a\nb\"", errc::decode, "$", "control character"},
        {"bad escape", "value", R"("\q")", errc::decode, "$", "escape"},
        {"unterminated string", "sets", R"([{"siteId":"qqq)", errc::decode, "[0].siteId", "unterminated"},
        {"syntax error inside a member", "sets", R"([{"siteId": }])", errc::decode, "[0].siteId", "invalid JSON"},
        {"missing comma", "sets", R"([{"siteId":"qqqqqqqqqqqqqqqqqqqqqg" "x":1}])", errc::decode, "[0].siteId",
         "expected ',' or '}'"},
        {"leading zero", "value", "01", errc::decode, "$", "after the JSON value"},
        {"unknown message type", "message", R"({"type":"bogus"})", errc::decode, "type", "handshake, get_changes"},
        {"message without type", "message", R"({"databaseId":"d"})", errc::decode, "type", "required member is missing"},
        {"message type not a string", "message", R"({"type":5})", errc::decode, "type", "expected a string"},
        {"message not an object", "message", R"(["ping"])", errc::decode, "$", "expected a message object"},
        {"protocolVersion beyond u32", "message",
         R"({"type":"handshake","databaseId":"d","siteId":"qqqqqqqqqqqqqqqqqqqqqg","protocolVersion":4294967296})",
         errc::decode, "protocolVersion", "at most 4294967295"},
        {"handshake without protocolVersion", "message",
         R"({"type":"handshake","databaseId":"d","siteId":"qqqqqqqqqqqqqqqqqqqqqg"})", errc::decode, "protocolVersion",
         "required member is missing"},
        {"negative count", "message", R"({"type":"apply_result","applied":-1,"skipped":0,"conflicts":0,"transactions":0})",
         errc::decode, "applied", "non-negative integer"},
        {"count is text", "message", R"({"type":"apply_result","applied":"1","skipped":0,"conflicts":0,"transactions":0})",
         errc::decode, "applied", "got the string \"1\""},
        {"rejection without reason", "message",
         R"({"type":"apply_result","applied":0,"skipped":0,"conflicts":0,"transactions":0,"rejected":[{"code":"x"}]})",
         errc::decode, "rejected[0].reason", "required member is missing"},
        {"fatal not a boolean", "message", R"({"type":"error","code":"c","message":"m","fatal":"yes"})", errc::decode,
         "fatal", "true or false"},
        {"bad sinceHLC", "message", R"({"type":"get_changes","sinceHLC":"AAAA"})", errc::decode, "sinceHLC", "got 4 characters"},
        {"checkpoint without createdAt", "message",
         R"({"type":"resume_snapshot","checkpoint":{"snapshotId":"s","siteId":"qqqqqqqqqqqqqqqqqqqqqg","hlc":")" + hlc0 +
             R"(","lastTableIndex":0,"lastEntryIndex":0,"completedTables":[],"entriesProcessed":0}})",
         errc::decode, "checkpoint.createdAt", "required member is missing"},
        {"completedTables not text", "message",
         R"({"type":"resume_snapshot","checkpoint":{"snapshotId":"s","siteId":"qqqqqqqqqqqqqqqqqqqqqg","hlc":")" + hlc0 +
             R"(","lastTableIndex":0,"lastEntryIndex":0,"completedTables":["a",1],"entriesProcessed":0,"createdAt":1}})",
         errc::decode, "checkpoint.completedTables[1]", "expected a string"},
        {"unknown chunk type", "message", R"({"type":"snapshot_chunk","chunk":{"type":"trailer"}})", errc::decode,
         "chunk.type", "header, schema-migration"},
        {"header without snapshotFormat", "chunk",
         R"({"type":"header","siteId":"qqqqqqqqqqqqqqqqqqqqqg","hlc":")" + hlc0 +
             R"(","tableCount":1,"migrationCount":0,"snapshotId":"s"})",
         errc::decode, "snapshotFormat", "required member is missing"},
        {"entry pk not an array", "chunk",
         R"({"type":"column-versions","schema":"main","table":"t","entries":[{"column":"c","hlc":")" + hlc0 +
             R"(","value":1,"pk":[1]},{"column":"c","hlc":")" + hlc0 + R"(","value":1,"pk":1}]})",
         errc::decode, "entries[1].pk", "expected an array"},
        {"tombstone createdAt not a number", "chunk",
         R"({"type":"tombstone","schema":"main","table":"t","entries":[{"pk":[1],"hlc":")" + hlc0 + R"(","createdAt":"x"}]})",
         errc::decode, "entries[0].createdAt", "non-negative integer"},
        {"negative total", "chunk", R"({"type":"footer","snapshotId":"s","totalTables":1,"totalEntries":-2,"totalMigrations":0})",
         errc::decode, "totalEntries", "non-negative integer"},
    };
}

} // namespace

TEST_CASE("malformed inputs fail with the right code at the right path") {
    const auto cases = malformed_inputs();
    CHECK(cases.size() >= 25);
    for (const auto& m : cases) {
        CAPTURE(m.name);
        CAPTURE(m.input);
        check_fails([&] { decode_as(m); }, m.code, m.path, m.contains);
    }
}

TEST_CASE("limits: depth, size and element count are enforced while parsing") {
    // A depth bomb: 100 000 nested arrays stop at max_depth, no stack overflow.
    const std::string bomb(100000, '[');
    check_fails([&] { (void)wire::decode_change_sets(bomb); }, errc::limit_exceeded, "[0]", "max_depth = 64");
    check_fails([&] { (void)wire::decode_message(bomb); }, errc::limit_exceeded, "$", "max_depth = 64");
    check_fails([&] { (void)wire::parse(bomb); }, errc::limit_exceeded, "$", "max_depth");
    check_fails([&] { (void)wire::decode_message(R"({"type":"ping","x":)" + bomb); }, errc::limit_exceeded, "x",
                "max_depth");
    const std::string object_bomb = [] {
        std::string s;
        for (int i = 0; i < 50000; ++i) s += "{\"a\":";
        return s;
    }();
    check_fails([&] { (void)wire::decode<value>(object_bomb); }, errc::limit_exceeded, "a", "max_depth");
    // A deep JSON cell value inside a change set: the path names the change.
    std::string deep_value = sets_json(change_json(",\"value\":" + std::string(70, '[') + std::string(70, ']')));
    check_fails([&] { (void)wire::decode_change_sets(deep_value); }, errc::limit_exceeded, "[0].changes[0].value",
                "max_depth");
    wire::decode_options loose;
    loose.max_depth = 100;
    CHECK(wire::decode_change_sets(deep_value, loose).size() == 1);

    // Oversized input.
    wire::decode_options small;
    small.max_bytes = 16;
    check_fails([&] { (void)wire::decode_change_sets("[                 ]", small); }, errc::limit_exceeded, "$",
                "max_bytes = 16");
    CHECK(wire::decode_change_sets("[]", small).empty());

    // Too many values.
    wire::decode_options few;
    few.max_elements = 10;
    check_fails([&] { (void)wire::decode<std::vector<value>>("[1,2,3,4,5,6,7,8,9,10,11]", few); }, errc::limit_exceeded,
                "[9]", "max_elements = 10");
    CHECK(wire::decode<std::vector<value>>("[1,2,3,4,5,6,7,8,9]", few).size() == 9);

    // The DOM entry point bounds a caller-built document too.
    json deep = json::array();
    json* cur = &deep;
    for (int i = 0; i < 200; ++i) {
        cur->push_back(json::array());
        cur = &cur->back();
    }
    check_fails([&] { (void)wire::from_json<value>(deep); }, errc::limit_exceeded, "$", "max_depth");
}

TEST_CASE("decoding ignores unknown members and accepts any member order") {
    const change_set cs = sample_change_set();
    json j = wire::to_json(cs);
    j["futureField"] = {{"nested", {1, 2, 3}}};
    j["changes"][0]["also"] = "ignored";
    CHECK(wire::from_json<change_set>(j) == cs);
    // Reverse every object's member order in the text.
    const std::string text = wire::encode(cs);
    json ordered = json::parse(text);
    std::string rebuilt;
    std::function<void(const json&)> dump_reversed = [&](const json& v) {
        if (v.is_object()) {
            rebuilt += '{';
            std::vector<std::pair<std::string, const json*>> members;
            for (auto it = v.begin(); it != v.end(); ++it) members.emplace_back(it.key(), &it.value());
            std::reverse(members.begin(), members.end());
            for (std::size_t i = 0; i < members.size(); ++i) {
                if (i) rebuilt += ',';
                rebuilt += json(members[i].first).dump() + ":";
                dump_reversed(*members[i].second);
            }
            rebuilt += '}';
        } else if (v.is_array()) {
            rebuilt += '[';
            for (std::size_t i = 0; i < v.size(); ++i) {
                if (i) rebuilt += ',';
                dump_reversed(v[i]);
            }
            rebuilt += ']';
        } else {
            rebuilt += v.dump();
        }
    };
    dump_reversed(ordered);
    CHECK(rebuilt.find("{\"type\":\"column\"") == std::string::npos); // a change's type is not first now
    CHECK(wire::decode<change_set>(rebuilt) == cs);
    // Whitespace anywhere JSON allows it.
    CHECK(wire::decode<change_set>(ordered.dump(2)) == cs);
}

TEST_CASE("an integral real comes back as an integer: the column type decides") {
    const value two{2.0};
    CHECK(wire::encode(two) == "2");
    CHECK(wire::decode<value>(wire::encode(two)) == value{std::int64_t(2)});
    CHECK(wire::to_json(two) == json(2));
}

// ---- The decoder's fast paths: member names recognised where writers put
// them, a change's `{"type":"column"` head, HLCs decoded against the previous
// one, plain integers and short decimals. Each must read exactly what the
// general reader reads, and refuse what it refuses.

namespace {

/// The number of JSON values in a document (what max_elements counts).
std::size_t json_values(const json& j) {
    std::size_t n = 1;
    if (j.is_structured())
        for (const auto& c : j) n += json_values(c);
    return n;
}

/// `j` as compact JSON text with every ASCII character of every string and
/// member name written as a \u escape, so that no fast path applies.
std::string dump_escaped(const json& j) {
    const auto str = [](const std::string& s) {
        static constexpr char hex[] = "0123456789abcdef";
        std::string out = "\"";
        for (unsigned char c : s) {
            if (c < 0x80) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += static_cast<char>(c);
            }
        }
        return out + "\"";
    };
    if (j.is_object()) {
        std::string out = "{";
        for (auto it = j.begin(); it != j.end(); ++it) {
            if (out.size() > 1) out += ',';
            out += str(it.key()) + ":" + dump_escaped(it.value());
        }
        return out + "}";
    }
    if (j.is_array()) {
        std::string out = "[";
        for (const auto& e : j) {
            if (out.size() > 1) out += ',';
            out += dump_escaped(e);
        }
        return out + "]";
    }
    if (j.is_string()) return str(j.get<std::string>());
    return j.dump();
}

/// Change sets whose facts share HLC prefixes the way transactions do, with
/// HLCs that differ anywhere in their 40 characters, and lists of changes of
/// varying lengths.
std::vector<change_set> hlc_pattern_sets() {
    std::vector<change_set> sets;
    const std::uint64_t walls[] = {1700000002000, 1700000002000, 1700000002001, 0, 1700000002000};
    const std::uint16_t counters[] = {0, 1, 1, 0, 0};
    const std::size_t lengths[] = {3, 0, 5, 1, 4};
    for (std::size_t t = 0; t < std::size(walls); ++t) {
        change_set cs;
        cs.origin = t % 2 ? site_b : site_a;
        cs.version = at(walls[t], counters[t], cs.origin, static_cast<std::uint32_t>(lengths[t]));
        cs.transaction_id = cs.version.transaction_id();
        for (std::size_t i = 0; i < lengths[t]; ++i) {
            // op_seq values that change the last bytes, and one that changes
            // the bytes shared with the site id's end.
            const std::uint32_t op = i == 3 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(i * 0x01010101u);
            column_change c = sample_column_change(op, value{std::int64_t(i)});
            c.version = at(walls[t], counters[t], i == 2 ? site_of(0x5c) : cs.origin, op);
            cs.changes.emplace_back(std::move(c));
        }
        sets.push_back(std::move(cs));
    }
    return sets;
}

} // namespace

TEST_CASE("fast paths: text with escapes, whitespace or other member orders decodes the same") {
    std::vector<change_set> sets = hlc_pattern_sets();
    sets.push_back(sample_change_set());
    const std::string text = wire::encode_change_sets(sets);
    CHECK(wire::decode_change_sets(text) == sets);
    const json doc = json::parse(text);
    const std::string escaped = dump_escaped(doc);
    CHECK(escaped.find("\"type\"") == std::string::npos);
    CHECK(wire::decode_change_sets(escaped) == sets);
    CHECK(wire::decode_change_sets(doc.dump(1)) == sets);

    // The same JSON values are counted whichever path reads them.
    for (const std::string* t : {&text, &escaped}) {
        const std::size_t n = json_values(doc);
        wire::decode_options exact;
        exact.max_elements = n;
        CHECK(wire::decode_change_sets(*t, exact) == sets);
        exact.max_elements = n - 1;
        try {
            (void)wire::decode_change_sets(*t, exact);
            FAIL_CHECK("max_elements = n - 1 accepted");
        } catch (const parse_error& e) {
            CHECK(e.code() == errc::limit_exceeded);
        }
    }
}

TEST_CASE("fast paths: limits break where the general reader breaks them") {
    // Six values come before the first change (array, set, siteId,
    // transactionId, hlc, changes): the seventh breaks max_elements = 6 where
    // the read-ahead for the change's type counts it.
    wire::decode_options six;
    six.max_elements = 6;
    for (const std::string& head : {std::string(R"("type":"column",)"), std::string(R"("type" : "column" ,)")}) {
        const std::string text = sets_json("{" + head + change_json("").substr(17));
        CHECK(wire::decode_change_sets(text).size() == 1);
        check_fails([&] { (void)wire::decode_change_sets(text, six); }, errc::limit_exceeded, "[0].changes[0].type",
                    "max_elements = 6");
    }
    wire::decode_options shallow;
    shallow.max_depth = 3;
    check_fails([&] { (void)wire::decode_change_sets(sets_json(change_json("")), shallow); }, errc::limit_exceeded,
                "[0].changes[0]", "max_depth = 3");
}

TEST_CASE("fast paths: a change read alone, into either kind") {
    const change_set cs = sample_change_set();
    for (const change& c : cs.changes) {
        const std::string text = wire::encode(c);
        CHECK(wire::decode<change>(text) == c);
        CHECK(wire::decode<change>(dump_escaped(json::parse(text))) == c);
    }
    const column_change& cc = std::get<column_change>(cs.changes[1]);
    CHECK(wire::decode<column_change>(wire::encode(cc)) == cc);
    const row_delete& d = std::get<row_delete>(cs.changes[3]);
    CHECK(wire::decode<row_delete>(wire::encode(d)) == d);
}

TEST_CASE("fast paths: repeated and unexpected members") {
    // A repeated member: the last one wins, as in JavaScript.
    auto sets = wire::decode_change_sets(sets_json(change_json(R"(,"table":"other","column":"again")")));
    const auto& c = std::get<column_change>(sets.at(0).changes.at(0));
    CHECK(c.table == "other");
    CHECK(c.column == "again");
    // A name that starts like the expected one is another member.
    sets = wire::decode_change_sets(sets_json(
        R"({"type":"column","schema":"main","table":"items","pk":[1],"hlc":")" + hlc0 +
        R"(","column":"name","valueX":"ignored","value":2,"priorValueX":1})"));
    CHECK(std::get<column_change>(sets.at(0).changes.at(0)).val == value{std::int64_t(2)});
    // A second `type` is still checked.
    check_fails([&] { (void)wire::decode_change_sets(sets_json(change_json(R"(,"type":"delete")"))); }, errc::decode,
                "[0].changes[0].type", "expected \"column\"");
    // A `type` head alone, or one that only starts like a known type.
    check_fails([&] { (void)wire::decode_change_sets(sets_json(R"({"type":"column"})")); }, errc::decode,
                "[0].changes[0].schema", "required member is missing");
    check_fails([&] { (void)wire::decode_change_sets(sets_json(R"({"type":"columns","schema":"main"})")); },
                errc::decode, "[0].changes[0].type", "got the string \"columns\"");
    check_fails([&] { (void)wire::decode_change_sets(sets_json(R"({"type":"column" "schema":"main"})")); },
                errc::decode, "[0].changes[0].type", "expected ',' or '}'");
    CHECK(wire::decode_change_sets(
              sets_json(R"({"type":"delete" ,"schema":"main","table":"t","pk":[],"hlc":")" + hlc0 + R"("})"))
              .at(0)
              .changes.size() == 1);
}

TEST_CASE("fast paths: an HLC like the previous one is still checked in full") {
    // Facts of one transaction: the first 32 characters repeat.
    const std::string first = "AAABi8/lb9AAAKqqqqqqqqqqqqqqqqqqqqoAAAAA";
    const auto fact = [](const std::string& h) {
        return R"({"type":"column","schema":"main","table":"t","pk":[1],"hlc":")" + h +
               R"(","column":"c","value":1})";
    };
    const auto two = [&](const std::string& second) { return sets_json(fact(first) + "," + fact(second)); };
    const std::string next = first.substr(0, 32) + "AAAAAAAB";
    auto sets = wire::decode_change_sets(two(next));
    CHECK(version_of(sets[0].changes[1]) == hlc::from_text(next));
    CHECK(version_of(sets[0].changes[1]).op_seq == 1);
    // Written with an escape: the same HLC.
    sets = wire::decode_change_sets(two("\\u0041" + next.substr(1)));
    CHECK(version_of(sets[0].changes[1]) == hlc::from_text(next));
    // A bad character after the shared part, in it, or a wrong length.
    check_fails([&] { (void)wire::decode_change_sets(two(first.substr(0, 35) + "!AAAA")); }, errc::decode,
                "[0].changes[1].hlc", "'!' at position 35");
    check_fails([&] { (void)wire::decode_change_sets(two(first.substr(0, 39) + "=")); }, errc::decode,
                "[0].changes[1].hlc", "'=' at position 39");
    check_fails([&] { (void)wire::decode_change_sets(two("-" + first.substr(1))); }, errc::decode,
                "[0].changes[1].hlc", "'-' at position 0");
    check_fails([&] { (void)wire::decode_change_sets(two(first.substr(0, 39))); }, errc::decode,
                "[0].changes[1].hlc", "got 39 characters");
    check_fails([&] { (void)wire::decode_change_sets(two(first + "A")); }, errc::decode, "[0].changes[1].hlc",
                "got 41 characters");
    check_fails([&] { (void)wire::decode_change_sets(two(first.substr(0, 38) + "\\\"A")); }, errc::decode,
                "[0].changes[1].hlc", "'\"' at position 38");
    // 40 bytes between the quotes, fewer characters.
    check_fails([&] { (void)wire::decode_change_sets(two("\\u0041" + first.substr(0, 34))); }, errc::decode,
                "[0].changes[1].hlc", "got 35 characters");
}

TEST_CASE("fast paths: numbers read as from_chars reads them") {
    // What the codec makes of a JSON number (see number_value).
    const auto expected = [](const std::string& t) -> value {
        const bool integral = t.find_first_of(".eE") == std::string::npos;
        if (integral) {
            std::int64_t i = 0;
            if (std::from_chars(t.data(), t.data() + t.size(), i).ec == std::errc{}) return value{i};
            std::uint64_t u = 0;
            if (std::from_chars(t.data(), t.data() + t.size(), u).ec == std::errc{}) return value{u};
            double d = 0;
            REQUIRE(std::from_chars(t.data(), t.data() + t.size(), d).ec == std::errc{});
            return value{d}; // beyond 64 bits: a real
        }
        double d = 0;
        REQUIRE(std::from_chars(t.data(), t.data() + t.size(), d).ec == std::errc{});
        if (d == std::trunc(d) && d >= -0x1p63 && d < 0x1p63) return value{static_cast<std::int64_t>(d)};
        if (d == std::trunc(d) && d >= 0 && d < 0x1p64) return value{static_cast<std::uint64_t>(d)};
        return value{d};
    };
    const std::vector<std::string> numbers = {
        "0", "-0", "7", "-7", "10", "1234567", "12345678", "-12345678", "99999999", "100000000", "123456789",
        "999999999999999999", "-999999999999999999", "1000000000000000000", "9223372036854775807",
        "-9223372036854775808", "9223372036854775808", "18446744073709551615", "18446744073709551616",
        "-9223372036854775809", "-18446744073709551616", "99999999999999999999",
        "0.25", "-0.25", "1.5", "0.1", "0.3", "3.141592653589793", "2.718281828459045e-3", "1e22", "1e23", "1.5e3",
        "1E-7", "123.456e-5", "9007199254740992.5", "9007199254740993", "0.000001", "4.9e-324", "1.7976931348623157e308",
        "-0.0", "5e-1", "12345678901234567890.5", "9999999.999999999999", "1234567.1234567890123",
        "0.1234567890123456789", "12.5e2", "-7.75", "7.0", "1234567.5", "-1234567.000001"};
    for (const std::string& t : numbers) {
        CAPTURE(t);
        const value want = expected(t);
        CHECK(wire::decode<value>(t) == want);                                   // at the end of the input
        CHECK(wire::decode<std::vector<value>>("[" + t + ",1]") == std::vector<value>{want, value{1}});
        CHECK(wire::decode<std::vector<value>>("[" + t + " , \"padding to read past\"]").at(0) == want);
        const auto sets = wire::decode_change_sets(sets_json(
            R"({"type":"column","schema":"main","table":"t","pk":[)" + t + R"(],"hlc":")" + hlc0 +
            R"(","column":"c","value":)" + t + "}"));
        const auto& c = std::get<column_change>(sets.at(0).changes.at(0));
        CHECK(c.pk == row_key{want});
        CHECK(c.val == want);
    }
    for (const std::string bad : {"01", "-01", "00", "-", "-a", "1.", "1.e5", "1e", "1e+", ".5", "+1", "0x10"}) {
        CAPTURE(bad);
        check_fails([&] { (void)wire::decode<std::vector<value>>("[" + bad + ",2]"); }, errc::decode, "[0]");
        check_fails([&] { (void)wire::decode<value>(bad); }, errc::decode, "$");
    }
}
