#pragma once
/// \file version.hpp
/// Library version and the versioned inline namespace. Every public name lives
/// in `crdtsync::v0`, reachable as `crdtsync::name`.

// Every header includes this one first: a compiler below C++20 stops here,
// with one line that says what to do, instead of a thousand lines of errors.
#if !defined(_MSVC_LANG) && __cplusplus < 202002L
#error "crdtsync needs C++20: compile with -std=c++20 (or -std=gnu++20, or newer)"
#elif defined(_MSVC_LANG) && _MSVC_LANG < 202002L
#error "crdtsync needs C++20: compile with /std:c++20 (or newer)"
#endif

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
