// The WebSocket transport compiled once, for programs built with
// CRDTSYNC_WEBSOCKET_SEPARATE_COMPILATION=1 (meson: crdtsync-websocket-compiled;
// see crdtsync/transports/websocket/config.hpp).
#include <crdtsync/transports/websocket/src.hpp>
