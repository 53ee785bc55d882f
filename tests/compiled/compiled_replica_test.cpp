// replica<memory_store> and replica<lmdb_store> compiled once: this unit
// includes <crdtsync/compiled/*_replica.hpp>, so it does not instantiate the
// replicas' member functions itself, and links only because the
// crdtsync-compiled and crdtsync-lmdb-compiled libraries define them
// (compiled/*_replica.cpp). It uses core.hpp, the umbrella without the
// snapshot streams and the wire codec, which must be enough to merge.

#include <crdtsync/core.hpp>
#include <crdtsync/compiled/lmdb_replica.hpp>
#include <crdtsync/compiled/memory_replica.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <stdlib.h> // mkdtemp

namespace {

crdtsync::table_def notes() {
    crdtsync::table_def t{"notes"};
    t.column("id", crdtsync::column_type::integer, false).column("body", crdtsync::column_type::text).primary_key({"id"});
    return t;
}

template <class Store>
void merge_one_row(Store& sa, Store& sb) {
    crdtsync::replica a{sa};
    crdtsync::replica b{sb};
    a.create_table(notes());
    a.write([](auto& tx) {
        tx.insert("notes", crdtsync::row{{"id", crdtsync::value{1}}, {"body", crdtsync::value{"hello"}}});
    });
    const auto d = a.changes_since(b.site_id(), 0);
    const auto r = b.apply(d.change_sets);
    CHECK(r.rejected.empty());
    const auto rows = b.rows("notes");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].at("body") == crdtsync::value{"hello"});
    CHECK(a.dump() == b.dump());
}

} // namespace

TEST_CASE("compiled replica<memory_store>: merges through the library's instantiation") {
    crdtsync::memory_store sa, sb;
    merge_one_row(sa, sb);
}

TEST_CASE("compiled replica<lmdb_store>: merges through the library's instantiation") {
    std::string dir = (std::filesystem::temp_directory_path() / "crdtsync-compiled-XXXXXX").string();
    if (!::mkdtemp(dir.data())) throw std::runtime_error("mkdtemp failed");
    {
        crdtsync::lmdb_store sa{dir + "/a.mdb"}, sb{dir + "/b.mdb"};
        merge_one_row(sa, sb);
    }
    std::filesystem::remove_all(dir);
}
