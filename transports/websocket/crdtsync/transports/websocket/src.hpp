#pragma once
/// \file src.hpp
/// The WebSocket transport's compiled unit: include this in exactly one `.cpp`
/// of a program built with `CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION=1` (see
/// config.hpp).

#include <crdtsync/transports/websocket/config.hpp>

#if !CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION
#error "include <crdtsync/transports/websocket/src.hpp> only with CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION=1 defined for every translation unit (see config.hpp)"
#endif

#include <crdtsync/transports/websocket/impl/client.ipp>
#include <crdtsync/transports/websocket/impl/connection.ipp>
#include <crdtsync/transports/websocket/impl/server.ipp>
