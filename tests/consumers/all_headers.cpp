// Every public header in one unit, for tests/consumers/warnings.sh (the
// non-template code of each header under the strictest warnings).
#include <crdtsync/crdtsync.hpp>
#include <crdtsync/core.hpp>
#include <crdtsync/backends/lmdb.hpp>
#include <crdtsync/backends/memory.hpp>
#include <crdtsync/compiled/lmdb_replica.hpp>
#include <crdtsync/compiled/memory_replica.hpp>
#include <crdtsync/pipe.hpp>
#include <crdtsync/replica_check.hpp>
#include <crdtsync/replica_worker.hpp>
#include <crdtsync/sync_client.hpp>
#include <crdtsync/sync_server.hpp>
#include <crdtsync/transports/websocket.hpp>
// The conformance suite (needs doctest) and the fault-injecting store.
#include <crdtsync/testing/faulty_store.hpp>
#include <crdtsync/testing/store_laws.hpp>

int main() {}
