// A program that uses crdtsync the way an embedding application does: an LMDB
// replica, a table, a write, a read. tests/consumers/run.sh builds it against
// an installed crdtsync four ways (pkg-config, CMake, a meson subproject, a
// plain g++ command) and checks what it prints.
#include <crdtsync/backends/lmdb.hpp>
#include <crdtsync/replica.hpp>

#include <iostream>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: consumer FILE.mdb\n";
        return 2;
    }
    crdtsync::lmdb_options options;
    options.path = argv[1];
    crdtsync::lmdb_store store(options);
    crdtsync::replica rep(store);
    crdtsync::table_def notes{"notes"};
    notes.column("id", crdtsync::column_type::integer, false)
        .column("body", crdtsync::column_type::text)
        .primary_key({"id"});
    rep.create_table(notes);
    rep.write([](auto& tx) {
        tx.insert("notes", crdtsync::row{{"id", crdtsync::value{1}}, {"body", crdtsync::value{"hello"}}});
    });
    const auto rows = rep.rows("notes");
    std::cout << "crdtsync " << CRDTSYNC_VERSION_MAJOR << '.' << CRDTSYNC_VERSION_MINOR << ": " << rows.size()
              << " row, body " << rows.at(0).at("body").to_text() << "\n";
    return 0;
}
