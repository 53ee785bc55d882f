#pragma once
/// \file error.hpp
/// The typed error hierarchy. Every throw in crdtsync goes through
/// `detail::raise`, so every error carries a stable `errc` and a message that
/// names what was wrong. Normal outcomes (a missing key, a skipped change) are
/// never errors.

#include <stdexcept>
#include <string>
#include <string_view>

#include <crdtsync/version.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// Stable error codes. Values never change meaning once released; new codes
/// are only appended.
enum class errc : int {
    invalid_argument = 1,   ///< a caller passed something out of contract
    invalid_site_id = 2,    ///< site id text or bytes malformed
    invalid_hlc = 3,        ///< HLC text or bytes malformed
    clock_drift = 4,        ///< a remote HLC is too far ahead of the local wall clock
    clock_overflow = 5,     ///< the clock cannot advance (wall time at its maximum)
    invalid_value = 6,      ///< a value cannot be represented (e.g. malformed big integer)
    invalid_key = 7,        ///< an encoded key or value is truncated or malformed
    storage = 8,            ///< the store failed (I/O, corruption)
    storage_full = 9,       ///< the store ran out of space and could not grow
    format_version = 10,    ///< a store was written by an incompatible format version
    unknown_table = 11,     ///< a change names a table this replica does not have
    unknown_column = 12,    ///< a change names a column the table does not have
    schema_mismatch = 13,   ///< a struct or row does not fit the table's schema
    schema = 14,            ///< a table definition or DDL text is invalid
    constraint = 15,        ///< a write breaks a rule (duplicate key, deleted key, NOT NULL)
    decode = 16,            ///< wire input malformed (JSON path in the message)
    limit_exceeded = 17,    ///< wire input exceeds a configured size or depth bound
    snapshot_required = 18, ///< delta sync impossible, the peer must take a snapshot
    snapshot = 19,          ///< a snapshot stream is out of order, inconsistent, or not this replica's to resume
    corrupt = 20,           ///< the store's file is damaged (truncated, overwritten): restore it or re-bootstrap
    protocol = 21,          ///< a sync peer broke the coordinator protocol, or refused this session
    network = 22,           ///< a socket could not be opened, bound or connected (a port in use, say)
};

/// Short, stable name of a code (`"clock_drift"`), for logs and wire errors.
[[nodiscard]] constexpr std::string_view to_text(errc c) noexcept {
    switch (c) {
    case errc::invalid_argument: return "invalid_argument";
    case errc::invalid_site_id: return "invalid_site_id";
    case errc::invalid_hlc: return "invalid_hlc";
    case errc::clock_drift: return "clock_drift";
    case errc::clock_overflow: return "clock_overflow";
    case errc::invalid_value: return "invalid_value";
    case errc::invalid_key: return "invalid_key";
    case errc::storage: return "storage";
    case errc::storage_full: return "storage_full";
    case errc::format_version: return "format_version";
    case errc::unknown_table: return "unknown_table";
    case errc::unknown_column: return "unknown_column";
    case errc::schema_mismatch: return "schema_mismatch";
    case errc::schema: return "schema";
    case errc::constraint: return "constraint";
    case errc::decode: return "decode";
    case errc::limit_exceeded: return "limit_exceeded";
    case errc::snapshot_required: return "snapshot_required";
    case errc::snapshot: return "snapshot";
    case errc::corrupt: return "corrupt";
    case errc::protocol: return "protocol";
    case errc::network: return "network";
    }
    return "unknown";
}
/// The old name of `to_text(errc)`.
[[deprecated("use to_text")]] [[nodiscard]] constexpr std::string_view to_string(errc v) noexcept { return to_text(v); }

/// Base of every crdtsync exception. `what()` is `"crdtsync: <code>: <message>"`.
class error : public std::runtime_error {
public:
    error(errc code, const std::string& message)
        : std::runtime_error(compose(code, message)), code_(code), message_(message) {}
    /// The stable code.
    [[nodiscard]] errc code() const noexcept { return code_; }
    /// The message without the prefix.
    [[nodiscard]] const std::string& message() const noexcept { return message_; }

private:
    // Appends rather than chaining operator+, which trips g++ 12's spurious
    // -Wrestrict (GCC bug 105329).
    static std::string compose(errc code, const std::string& message) {
        std::string out = "crdtsync: ";
        out.append(to_text(code));
        out.append(": ");
        out.append(message);
        return out;
    }
    errc code_;
    std::string message_;
};

/// Input text or bytes could not be parsed: site ids, HLCs, keys, wire JSON.
class parse_error : public error { using error::error; };
/// The clock refused a timestamp (drift bound, overflow). The clock is unchanged.
class clock_error : public error { using error::error; };
/// The store failed or holds data this version cannot read.
class storage_error : public error { using error::error; };
/// Tables, columns and rows that do not fit the schema.
class schema_error : public error { using error::error; };
/// A write that breaks a rule of the data model (NOT NULL, deleted key, ...).
class constraint_error : public error { using error::error; };
/// A delta cannot be served; the peer must bootstrap from a snapshot.
class sync_error : public error { using error::error; };
/// A snapshot stream that cannot be loaded as it stands (chunks out of order,
/// counts that disagree, another snapshot's chunks), or a checkpoint that
/// does not name a snapshot of this replica. Nothing of the refused chunk is
/// written; what was loaded before it stays (every fact is a real fact).
class snapshot_error : public error { using error::error; };
/// A caller passed an argument outside the documented contract.
class usage_error : public error { using error::error; };

namespace detail {

/// The one place crdtsync throws. The code picks the exception type.
[[noreturn]] inline void raise(errc code, const std::string& message) {
    switch (code) {
    case errc::invalid_site_id:
    case errc::invalid_hlc:
    case errc::invalid_value:
    case errc::invalid_key:
    case errc::decode:
    case errc::limit_exceeded: throw parse_error(code, message);
    case errc::clock_drift:
    case errc::clock_overflow: throw clock_error(code, message);
    case errc::storage:
    case errc::storage_full:
    case errc::format_version:
    case errc::corrupt: throw storage_error(code, message);
    case errc::unknown_table:
    case errc::unknown_column:
    case errc::schema_mismatch:
    case errc::schema: throw schema_error(code, message);
    case errc::constraint: throw constraint_error(code, message);
    case errc::snapshot_required:
    case errc::protocol:
    case errc::network: throw sync_error(code, message);
    case errc::snapshot: throw snapshot_error(code, message);
    case errc::invalid_argument: throw usage_error(code, message);
    }
    throw error(code, message);
}

} // namespace detail
CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
