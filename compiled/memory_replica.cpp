// The one definition of replica<memory_store>'s member functions for programs
// that include <crdtsync/compiled/memory_replica.hpp> (meson: crdtsync-compiled;
// docs/embedding.md, "Compile time"). The explicit instantiation definition
// follows the header's explicit instantiation declaration, as it must.
#include <crdtsync/compiled/memory_replica.hpp>
template class crdtsync::replica<crdtsync::memory_store>;
