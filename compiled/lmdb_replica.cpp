// The one definition of replica<lmdb_store>'s member functions for programs
// that include <crdtsync/compiled/lmdb_replica.hpp> (meson: crdtsync-lmdb-compiled;
// docs/embedding.md, "Compile time"). The explicit instantiation definition
// follows the header's explicit instantiation declaration, as it must.
#include <crdtsync/compiled/lmdb_replica.hpp>
template class crdtsync::replica<crdtsync::lmdb_store>;
