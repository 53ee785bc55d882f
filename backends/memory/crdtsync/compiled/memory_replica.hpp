#pragma once
/// \file compiled/memory_replica.hpp
/// `replica<memory_store>` compiled once for the whole program, instead of in
/// every translation unit that uses it.
///
/// Including this header declares the specialisation
/// `extern template class crdtsync::replica<crdtsync::memory_store>;`, which
/// tells the compiler not to instantiate the replica's member functions in
/// this unit; exactly one unit of the program must define them, which
/// compiled/memory_replica.cpp does (meson: the `crdtsync-compiled`
/// dependency, a static library). Without that unit the program does not
/// link. Member templates (`write` with your lambda, `table<T>`, the
/// typed tables) are still instantiated where they are used, and at -O2
/// the compiler still reads the replica's inline member functions to inline
/// them. docs/embedding.md, "Compile time", has what this saves, measured.

#include <crdtsync/backends/memory.hpp>
#include <crdtsync/replica.hpp>
#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
extern template class replica<memory_store>;
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
