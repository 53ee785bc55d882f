#pragma once
/// \file hlc_clock.hpp
/// `hlc_clock`: the hybrid logical clock of one replica (Kulkarni et al. 2014),
/// over an injectable physical clock.
///
/// Laws (checked by tests/core/hlc_clock_test.cpp):
/// - monotonic: every `tick()` returns a timestamp greater than every earlier
///   `tick()` and every HLC passed to a successful `receive()`, even when the
///   physical clock goes backwards;
/// - bounded: `receive(r)` with `r.wall_time > now + max_drift` throws
///   `clock_error` (`errc::clock_drift`) and leaves the clock unchanged;
/// - counter overflow: when the counter would pass 0xFFFF the wall time
///   advances by one millisecond and the counter restarts at 0.

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include <crdtsync/error.hpp>
#include <crdtsync/hlc.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// A physical clock: a callable returning milliseconds since the Unix epoch.
template <class C>
concept physical_clock = requires(C& c) {
    { c() } -> std::convertible_to<std::uint64_t>;
};

/// The system wall clock in milliseconds.
struct system_clock_ms {
    [[nodiscard]] std::uint64_t operator()() const noexcept {
        using namespace std::chrono;
        return static_cast<std::uint64_t>(
            duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
    }
};

/// Default drift bound: 60 seconds, as in Quereus.
inline constexpr std::uint64_t default_max_drift_ms = 60'000;

template <physical_clock Physical = system_clock_ms>
class hlc_clock {
public:
    explicit hlc_clock(site_id site, Physical physical = Physical{},
                       std::uint64_t max_drift_ms = default_max_drift_ms, hlc last = {})
        : site_(site), physical_(std::move(physical)), max_drift_(max_drift_ms), last_(last) {
        last_.site = site_;
        last_.op_seq = 0;
    }

    /// Advances the clock for one local transaction and returns its timestamp
    /// (op_seq 0; fact i of the transaction uses `with_op_seq(i)`).
    [[nodiscard]] hlc tick() {
        const std::uint64_t now = physical_();
        hlc next = last_;
        if (now > last_.wall_time) {
            next.wall_time = now;
            next.counter = 0;
        } else {
            bump(next, last_.counter);
        }
        last_ = next;
        return last_;
    }

    /// Folds a remote timestamp into the clock (the receive rule of the HLC
    /// paper). \throws clock_error if `remote` is beyond the drift bound; the
    /// clock is then unchanged.
    void receive(const hlc& remote) {
        const std::uint64_t now = physical_();
        check_drift(remote, now);
        hlc next = last_;
        const std::uint64_t wall = std::max({last_.wall_time, remote.wall_time, now});
        if (wall == last_.wall_time && wall == remote.wall_time) {
            next.wall_time = wall;
            bump(next, std::max(last_.counter, remote.counter));
        } else if (wall == last_.wall_time) {
            bump(next, last_.counter);
        } else if (wall == remote.wall_time) {
            next.wall_time = wall;
            bump(next, remote.counter);
        } else {
            next.wall_time = wall;
            next.counter = 0;
        }
        last_ = next;
    }

    /// Throws `clock_error` if `remote` is further ahead of the physical clock
    /// than the drift bound; otherwise does nothing.
    void check_drift(const hlc& remote) const { check_drift(remote, physical_()); }
    /// The same against a physical reading `now` taken by the caller (to
    /// check many timestamps against one reading).
    void check_drift(const hlc& remote, std::uint64_t now) const {
        const bool beyond = now > std::numeric_limits<std::uint64_t>::max() - max_drift_
                                ? false
                                : remote.wall_time > now + max_drift_;
        if (beyond)
            detail::raise(errc::clock_drift,
                          "remote HLC wall time " + std::to_string(remote.wall_time) + " is " +
                              std::to_string(remote.wall_time - now) +
                              " ms ahead of the local clock; the bound is " +
                              std::to_string(max_drift_) + " ms");
    }

    /// The last timestamp issued or received (persist it to survive restarts).
    [[nodiscard]] const hlc& last() const noexcept { return last_; }
    [[nodiscard]] const site_id& site() const noexcept { return site_; }
    [[nodiscard]] std::uint64_t max_drift_ms() const noexcept { return max_drift_; }
    /// The physical clock's current reading.
    [[nodiscard]] std::uint64_t physical_now() const { return physical_(); }

private:
    // counter + 1, carrying into the wall time past 0xFFFF.
    static void bump(hlc& h, std::uint16_t from) {
        if (from == std::numeric_limits<std::uint16_t>::max()) {
            if (h.wall_time == std::numeric_limits<std::uint64_t>::max())
                detail::raise(errc::clock_overflow, "HLC wall time is at its maximum");
            ++h.wall_time;
            h.counter = 0;
        } else {
            h.counter = static_cast<std::uint16_t>(from + 1);
        }
    }

    site_id site_;
    mutable Physical physical_;
    std::uint64_t max_drift_;
    hlc last_;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
