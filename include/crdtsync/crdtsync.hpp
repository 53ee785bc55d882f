#pragma once
/// \file crdtsync.hpp
/// The umbrella header: the whole core (std + Boost.Hana + nlohmann/json).
/// Stores and transports with other dependencies live in their own roots:
/// `<crdtsync/backends/memory.hpp>`, `<crdtsync/backends/lmdb.hpp>`.

#include <crdtsync/version.hpp>
#include <crdtsync/error.hpp>
#include <crdtsync/site_id.hpp>
#include <crdtsync/hlc.hpp>
#include <crdtsync/hlc_clock.hpp>
#include <crdtsync/value.hpp>
#include <crdtsync/key.hpp>
#include <crdtsync/change.hpp>
#include <crdtsync/store.hpp>
#include <crdtsync/schema.hpp>
#include <crdtsync/events.hpp>
#include <crdtsync/replica_options.hpp>
#include <crdtsync/replica.hpp>
#include <crdtsync/table.hpp>
#include <crdtsync/snapshot_chunk.hpp>
#include <crdtsync/snapshot_writer.hpp>
#include <crdtsync/snapshot_loader.hpp>
#if __has_include(<crdtsync/wire/json.hpp>)
#include <crdtsync/wire/json.hpp>
#endif
