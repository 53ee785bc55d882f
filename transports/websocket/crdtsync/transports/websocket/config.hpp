#pragma once
/// \file config.hpp
/// How the WebSocket transport is compiled.
///
/// By default the transport is header-only: every translation unit that
/// includes it compiles Boost.Beast's asynchronous machinery again (about a
/// minute of compile time at -O2 per unit). A program with several such
/// units can compile it once instead:
///
/// 1. define `CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION=1` for every unit of the
///    program (`-DCRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION=1`);
/// 2. include <crdtsync/transports/websocket/src.hpp> in exactly one `.cpp`.
///
/// The headers then declare the transport's functions and the one unit
/// defines them. (Boost.Asio and Boost.Beast offer the same choice for their
/// own non-template code, `BOOST_ASIO_SEPARATE_COMPILATION` and
/// `BOOST_BEAST_SEPARATE_COMPILATION`.) See docs/websocket.md, "Compile time".

#ifndef CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION
#define CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION 0
#endif

#if CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION
#define CRDTSYNC_WEBSOCKET_DECL
#else
#define CRDTSYNC_WEBSOCKET_DECL inline
#endif
