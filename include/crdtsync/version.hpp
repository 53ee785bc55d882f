#pragma once
/// \file version.hpp
/// Library version and the versioned inline namespace. Every public name lives
/// in `crdtsync::v0`, reachable as `crdtsync::name`.

#define CRDTSYNC_VERSION_MAJOR 0
#define CRDTSYNC_VERSION_MINOR 1
#define CRDTSYNC_VERSION_PATCH 0

#define CRDTSYNC_BEGIN_NAMESPACE inline namespace v0 {
#define CRDTSYNC_END_NAMESPACE }

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE
/// The on-disk format this library writes. A store written by another format
/// version is refused with `errc::format_version`.
inline constexpr unsigned storage_format_version = 3;
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
