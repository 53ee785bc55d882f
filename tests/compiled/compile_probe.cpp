// The unit whose compile cost docs/embedding.md ("Compile time") and the
// README report: the umbrella and the LMDB backend, a replica<lmdb_store>,
// a table, an insert, changes_since and apply. Not built by meson; measured
// from the source root with
//   /usr/bin/time -v g++ -std=c++20 -O2 [-DPROBE_EXTERN] [-DPROBE_CORE] \
//     -I include -I backends/memory -I backends/lmdb -c tests/compiled/compile_probe.cpp -o /tmp/probe.o
// PROBE_EXTERN includes <crdtsync/compiled/lmdb_replica.hpp> (the replica
// compiled elsewhere); PROBE_CORE takes <crdtsync/core.hpp> for the umbrella.
#ifndef PROBE_CORE
#include <crdtsync/crdtsync.hpp>
#else
#include <crdtsync/core.hpp>
#endif
#include <crdtsync/backends/lmdb.hpp>
#ifdef PROBE_EXTERN
#include <crdtsync/compiled/lmdb_replica.hpp>
#endif

#include <iostream>

int main(int argc, char** argv) {
    if (argc < 3) return 2;
    crdtsync::lmdb_store sa{argv[1]}, sb{argv[2]};
    crdtsync::replica a{sa};
    crdtsync::replica b{sb};
    crdtsync::table_def notes{"notes"};
    notes.column("id", crdtsync::column_type::integer, false).column("body", crdtsync::column_type::text).primary_key({"id"});
    a.create_table(notes);
    a.write([](auto& tx) { tx.insert("notes", crdtsync::row{{"id", crdtsync::value{1}}, {"body", crdtsync::value{"hi"}}}); });
    auto d = a.changes_since(b.site_id(), 0);
    auto r = b.apply(d.change_sets);
    std::cout << r.applied << " " << b.rows("notes").size() << "\n";
    return 0;
}
