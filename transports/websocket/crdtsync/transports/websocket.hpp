#pragma once
/// \file websocket.hpp
/// The WebSocket transport (Boost.Beast over Boost.Asio): `connection`
/// (models `crdtsync::transport`), `server` and `connect`. Take the meson
/// dependency `crdtsync-websocket`. Beast is costly to compile: include this
/// in one translation unit of your application. See docs/websocket.md.

#include <crdtsync/transports/websocket/client.hpp>
#include <crdtsync/transports/websocket/connection.hpp>
#include <crdtsync/transports/websocket/server.hpp>
