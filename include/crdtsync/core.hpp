#pragma once
/// \file core.hpp
/// The umbrella for a program that only writes, reads and merges: everything
/// of <crdtsync/crdtsync.hpp> except the snapshot streams
/// (snapshot_chunk/writer/loader.hpp) and the Quereus JSON wire codec's
/// public entry points (wire/json.hpp). Include those headers beside it when
/// you need them. The replica itself still validates JSON cells with
/// nlohmann/json, so this saves parsing the snapshot code, not the JSON
/// library: docs/embedding.md, "Compile time", has the figures.

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
