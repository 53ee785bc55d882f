// hlc_clock over a physical clock the test controls: the tick and receive
// rules of Kulkarni et al. 2014, counter overflow, the drift bound, and
// monotonicity whatever the physical clock does.

#include <crdtsync/hlc_clock.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>

using crdtsync::clock_error;
using crdtsync::errc;
using crdtsync::hlc;
using crdtsync::hlc_clock;
using crdtsync::site_id;

// Failed checks show timestamps as (wall, counter, site, op_seq).
template <>
struct doctest::StringMaker<hlc> {
    static doctest::String convert(const hlc& h) {
        // Appended piece by piece: g++ 12 warns (-Wrestrict, GCC bug 105329)
        // on a chain of std::string operator+ here.
        std::string s = "(";
        s += std::to_string(h.wall_time);
        s += ", ";
        s += std::to_string(h.counter);
        s += ", ";
        s += h.site.to_text();
        s += ", ";
        s += std::to_string(h.op_seq);
        s += ")";
        return s.c_str();
    }
};

namespace {

// A physical clock reading a number the test sets.
struct fake_clock {
    const std::uint64_t* now;
    std::uint64_t operator()() const noexcept { return *now; }
};
static_assert(crdtsync::physical_clock<fake_clock>);
static_assert(crdtsync::physical_clock<crdtsync::system_clock_ms>);

using clock_type = hlc_clock<fake_clock>;

site_id filled(std::uint8_t byte) {
    site_id::bytes_type b{};
    b.fill(byte);
    return site_id{b};
}

const site_id local_site = filled(0xaa);
const site_id remote_site = filled(0xbb);

hlc remote(std::uint64_t wall, std::uint16_t counter, std::uint32_t op_seq = 0) {
    return hlc{wall, counter, remote_site, op_seq};
}

// (wall_time, counter) as one number, the part of the order a clock advances.
std::pair<std::uint64_t, std::uint16_t> time_of(const hlc& h) { return {h.wall_time, h.counter}; }

// Runs f, expecting a clock_error with `code`; returns its message.
template <class F>
std::string clock_error_of(F&& f, errc code) {
    try {
        f();
    } catch (const clock_error& e) {
        CHECK(e.code() == code);
        return e.message();
    }
    FAIL_CHECK("no clock_error");
    return {};
}

} // namespace

TEST_CASE("hlc_clock: a fresh clock starts at zero with its own site") {
    std::uint64_t now = 1000;
    const clock_type clock{local_site, fake_clock{&now}};
    CHECK(clock.last() == hlc{0, 0, local_site, 0});
    CHECK(clock.site() == local_site);
    CHECK(clock.max_drift_ms() == 60'000);
    CHECK(clock.physical_now() == 1000);
}

TEST_CASE("hlc_clock: tick follows the physical clock and counts within a millisecond") {
    std::uint64_t now = 1000;
    clock_type clock{local_site, fake_clock{&now}};

    CHECK(clock.tick() == hlc{1000, 0, local_site, 0});
    CHECK(clock.tick() == hlc{1000, 1, local_site, 0});
    CHECK(clock.tick() == hlc{1000, 2, local_site, 0});
    CHECK(clock.last() == hlc{1000, 2, local_site, 0});
    now = 1001;
    CHECK(clock.tick() == hlc{1001, 0, local_site, 0});
    now = 5000;
    const auto t = clock.tick();
    CHECK(t == hlc{5000, 0, local_site, 0});
    CHECK(t.op_seq == 0);
    CHECK(t.site == local_site);
}

TEST_CASE("hlc_clock: stays monotonic when the physical clock goes backwards") {
    std::uint64_t now = 2000;
    clock_type clock{local_site, fake_clock{&now}};
    CHECK(clock.tick() == hlc{2000, 0, local_site, 0});

    now = 1500; // an NTP step back by half a second
    CHECK(clock.tick() == hlc{2000, 1, local_site, 0});
    CHECK(clock.tick() == hlc{2000, 2, local_site, 0});
    now = 0;
    CHECK(clock.tick() == hlc{2000, 3, local_site, 0});
    now = 2000; // caught up, same millisecond: still counting
    CHECK(clock.tick() == hlc{2000, 4, local_site, 0});
    now = 2001; // past it: the physical clock takes over again
    CHECK(clock.tick() == hlc{2001, 0, local_site, 0});
}

TEST_CASE("hlc_clock: counter overflow advances the wall time by one") {
    std::uint64_t now = 4000;
    clock_type clock{local_site, fake_clock{&now}, crdtsync::default_max_drift_ms,
                     hlc{5000, 0xFFFE, local_site, 0}};
    CHECK(clock.tick() == hlc{5000, 0xFFFF, local_site, 0});
    CHECK(clock.tick() == hlc{5001, 0, local_site, 0});
    CHECK(clock.tick() == hlc{5001, 1, local_site, 0});

    SUBCASE("through receive, remote at the maximum counter") {
        now = 4000;
        clock.receive(remote(6000, 0xFFFF));
        CHECK(clock.last() == hlc{6001, 0, local_site, 0});
    }
    SUBCASE("through receive, equal walls with the local counter at the maximum") {
        clock_type c{local_site, fake_clock{&now}, crdtsync::default_max_drift_ms,
                     hlc{7000, 0xFFFF, local_site, 0}};
        c.receive(remote(7000, 3));
        CHECK(c.last() == hlc{7001, 0, local_site, 0});
    }
    SUBCASE("through receive, local ahead with the counter at the maximum") {
        clock_type c{local_site, fake_clock{&now}, crdtsync::default_max_drift_ms,
                     hlc{7000, 0xFFFF, local_site, 0}};
        c.receive(remote(6999, 0xFFFF));
        CHECK(c.last() == hlc{7001, 0, local_site, 0});
    }
}

TEST_CASE("hlc_clock: the wall time at its maximum cannot advance") {
    std::uint64_t now = 0;
    const hlc top{std::numeric_limits<std::uint64_t>::max(), 0xFFFF, local_site, 0};
    clock_type clock{local_site, fake_clock{&now}, crdtsync::default_max_drift_ms, top};
    const auto msg = clock_error_of([&] { (void)clock.tick(); }, errc::clock_overflow);
    CHECK(msg.find("maximum") != std::string::npos);
    CHECK(clock.last() == top);

    now = std::numeric_limits<std::uint64_t>::max();
    (void)clock_error_of([&] { clock.receive(remote(now, 0xFFFF)); }, errc::clock_overflow);
    CHECK(clock.last() == top);
}

TEST_CASE("hlc_clock: receive follows the three cases of the HLC paper") {
    std::uint64_t now = 1000;

    SUBCASE("remote ahead: take its wall time, its counter + 1") {
        clock_type clock{local_site, fake_clock{&now}, 60'000, hlc{1000, 5, local_site, 0}};
        clock.receive(remote(1200, 7, 4));
        CHECK(clock.last() == hlc{1200, 8, local_site, 0});
    }
    SUBCASE("local ahead: keep the wall time, own counter + 1") {
        clock_type clock{local_site, fake_clock{&now}, 60'000, hlc{1500, 3, local_site, 0}};
        clock.receive(remote(1200, 9));
        CHECK(clock.last() == hlc{1500, 4, local_site, 0});
    }
    SUBCASE("equal wall times: the larger counter + 1") {
        clock_type clock{local_site, fake_clock{&now}, 60'000, hlc{1500, 3, local_site, 0}};
        clock.receive(remote(1500, 9));
        CHECK(clock.last() == hlc{1500, 10, local_site, 0});
        clock.receive(remote(1500, 2));
        CHECK(clock.last() == hlc{1500, 11, local_site, 0});
    }
    SUBCASE("physical clock ahead of both: its time, counter 0") {
        now = 2000;
        clock_type clock{local_site, fake_clock{&now}, 60'000, hlc{1000, 3, local_site, 0}};
        clock.receive(remote(1100, 9));
        CHECK(clock.last() == hlc{2000, 0, local_site, 0});
    }
    SUBCASE("physical clock equal to the remote ahead of local") {
        now = 1200;
        clock_type clock{local_site, fake_clock{&now}, 60'000, hlc{1000, 3, local_site, 0}};
        clock.receive(remote(1200, 9));
        CHECK(clock.last() == hlc{1200, 10, local_site, 0});
    }
    SUBCASE("physical clock equal to local ahead of the remote") {
        now = 1500;
        clock_type clock{local_site, fake_clock{&now}, 60'000, hlc{1500, 3, local_site, 0}};
        clock.receive(remote(1200, 9));
        CHECK(clock.last() == hlc{1500, 4, local_site, 0});
    }
    SUBCASE("the next tick is above the received timestamp") {
        clock_type clock{local_site, fake_clock{&now}};
        clock.receive(remote(1300, 2, 99));
        const auto t = clock.tick();
        CHECK(t == hlc{1300, 4, local_site, 0});
        CHECK(time_of(t) > time_of(remote(1300, 2)));
    }
}

TEST_CASE("hlc_clock: the default drift bound is 60 seconds") {
    std::uint64_t now = 1'700'000'000'000;
    clock_type clock{local_site, fake_clock{&now}};
    CHECK(clock.tick() == hlc{now, 0, local_site, 0});
    const auto before = clock.last();

    const auto too_far = remote(now + 60'001, 0);
    const auto msg = clock_error_of([&] { clock.receive(too_far); }, errc::clock_drift);
    CHECK(msg.find("1700000060001") != std::string::npos); // the remote wall time
    CHECK(msg.find("60001 ms ahead") != std::string::npos);
    CHECK(msg.find("60000 ms") != std::string::npos);      // the bound
    CHECK(clock.last() == before);
    (void)clock_error_of([&] { clock.check_drift(too_far); }, errc::clock_drift);
    CHECK(clock.last() == before);

    // Exactly at the bound is accepted.
    CHECK_NOTHROW(clock.check_drift(remote(now + 60'000, 5)));
    CHECK(clock.last() == before); // check_drift never moves the clock
    clock.receive(remote(now + 60'000, 5));
    CHECK(clock.last() == hlc{now + 60'000, 6, local_site, 0});

    // The bound is measured from the physical clock, not from last(): once
    // the physical clock catches up, the same remote is fine.
    now += 1;
    CHECK_NOTHROW(clock.receive(too_far));
    CHECK(clock.last() == hlc{now + 60'000, 1, local_site, 0});
}

TEST_CASE("hlc_clock: a custom drift bound") {
    std::uint64_t now = 100'000;
    clock_type clock{local_site, fake_clock{&now}, 5'000};
    CHECK(clock.max_drift_ms() == 5'000);
    const auto msg = clock_error_of([&] { clock.receive(remote(105'001, 0)); }, errc::clock_drift);
    CHECK(msg.find("5000 ms") != std::string::npos);
    CHECK(clock.last() == hlc{0, 0, local_site, 0});
    clock.receive(remote(105'000, 0));
    CHECK(clock.last() == hlc{105'000, 1, local_site, 0});

    SUBCASE("zero drift: nothing from the future") {
        clock_type strict{local_site, fake_clock{&now}, 0};
        (void)clock_error_of([&] { strict.receive(remote(now + 1, 0)); }, errc::clock_drift);
        strict.receive(remote(now, 0));
        CHECK(strict.last() == hlc{now, 1, local_site, 0});
    }
    SUBCASE("a physical clock near the end of time does not wrap the bound") {
        now = std::numeric_limits<std::uint64_t>::max() - 10;
        clock_type late{local_site, fake_clock{&now}, 5'000};
        CHECK_NOTHROW(late.receive(remote(std::numeric_limits<std::uint64_t>::max() - 1, 0)));
        CHECK(late.last().wall_time == std::numeric_limits<std::uint64_t>::max() - 1);
    }
}

TEST_CASE("hlc_clock: restarting from a persisted last() stays above it") {
    std::uint64_t now = 10'000;
    clock_type first{local_site, fake_clock{&now}};
    (void)first.tick();
    now = 10'000;
    (void)first.tick();
    const hlc persisted = first.last();
    CHECK(persisted == hlc{10'000, 1, local_site, 0});

    // The machine restarts with its clock set back.
    now = 9'000;
    clock_type second{local_site, fake_clock{&now}, crdtsync::default_max_drift_ms, persisted};
    CHECK(second.last() == persisted);
    CHECK(second.tick() == hlc{10'000, 2, local_site, 0});

    // A stored timestamp carrying another site or an op_seq is normalised.
    clock_type third{local_site, fake_clock{&now}, crdtsync::default_max_drift_ms,
                     hlc{10'000, 1, remote_site, 17}};
    CHECK(third.last() == hlc{10'000, 1, local_site, 0});
}

TEST_CASE("hlc_clock: the system clock") {
    const crdtsync::system_clock_ms sys;
    hlc_clock<> clock{local_site};
    const auto before = sys();
    const auto t = clock.tick();
    const auto after = sys();
    CHECK(before > 1'600'000'000'000ULL); // after September 2020
    CHECK(t.wall_time >= before);
    CHECK(t.wall_time <= after + 1);
    CHECK(clock.tick() > t);
}

TEST_CASE("hlc_clock: random ticks and receives never go backwards") {
    const std::uint64_t seed = 0xC10C'0001;
    CAPTURE(seed);
    std::mt19937_64 rng{seed};

    for (int run = 0; run < 20; ++run) {
        std::uint64_t now = 1'700'000'000'000 + rng() % 1000;
        const std::uint64_t drift = rng() % 2 ? crdtsync::default_max_drift_ms : rng() % 100;
        clock_type clock{local_site, fake_clock{&now}, drift};
        // Everything the clock must stay above: its ticks and accepted remotes.
        std::pair<std::uint64_t, std::uint16_t> high{0, 0};
        hlc previous_tick{};
        int ticks = 0, accepted = 0, rejected = 0;

        for (int step = 0; step < 1000; ++step) {
            CAPTURE(run);
            CAPTURE(step);
            // Jitter: mostly forward, sometimes a step back, sometimes frozen.
            switch (rng() % 6) {
            case 0: now -= std::min<std::uint64_t>(now, rng() % 300); break;
            case 1: break;
            default: now += rng() % 5; break;
            }
            if (rng() % 3 != 0) {
                const auto t = clock.tick();
                CAPTURE(t.to_text());
                CHECK(time_of(t) > high);
                CHECK(t > previous_tick);
                CHECK(t.site == local_site);
                CHECK(t.op_seq == 0);
                CHECK(clock.last() == t);
                high = time_of(t);
                previous_tick = t;
                ++ticks;
            } else {
                // Remotes around now, some beyond the bound, some with counters
                // near overflow.
                std::uint64_t wall = now;
                switch (rng() % 4) {
                case 0: wall = now - std::min<std::uint64_t>(now, rng() % 500); break;
                case 1: wall = now + rng() % (drift + 1); break;
                case 2: wall = now + drift - 1 + rng() % 3; break; // around the bound
                default: wall = now + drift + 1 + rng() % 1000; break;
                }
                const auto counter = static_cast<std::uint16_t>(rng() % 4 == 0 ? 0xFFFF - rng() % 3 : rng() % 100);
                const hlc r = remote(wall, counter, static_cast<std::uint32_t>(rng() % 4));
                CAPTURE(r.to_text());
                const auto before = clock.last();
                if (wall > now + drift) {
                    CHECK_THROWS_AS(clock.receive(r), clock_error);
                    CHECK(clock.last() == before);
                    ++rejected;
                } else {
                    clock.receive(r);
                    CHECK(time_of(clock.last()) > time_of(r));
                    CHECK(time_of(clock.last()) > time_of(before));
                    CHECK(clock.last().site == local_site);
                    if (time_of(r) > high) high = time_of(r);
                    ++accepted;
                }
            }
        }
        // The generator exercised every branch.
        CHECK(ticks > 0);
        CHECK(accepted > 0);
        CHECK(rejected > 0);
    }
}

TEST_CASE("hlc_clock: the worked examples of docs/clock.md") {
    const site_id a = filled(0xaa), b = filled(0xbb);
    // Layout.
    const hlc h{1'700'000'001'000, 3, a, 2};
    CHECK(h.to_text() == "AAABi8/la+gAA6qqqqqqqqqqqqqqqqqqqqoAAAAC");
    CHECK(h.transaction_id() == "1700000001000:3:qqqqqqqqqqqqqqqqqqqqqg");
    CHECK(hlc{1'700'000'001'000, 3, b, 0}.to_text() == "AAABi8/la+gAA7u7u7u7u7u7u7u7u7u7u7sAAAAA");

    // Ticks, with the physical clock stepping back.
    std::uint64_t now = 1'700'000'001'000;
    clock_type clock{a, fake_clock{&now}};
    CHECK(clock.tick() == hlc{1'700'000'001'000, 0, a, 0});
    CHECK(clock.tick() == hlc{1'700'000'001'000, 1, a, 0});
    now = 1'700'000'000'500;
    CHECK(clock.tick() == hlc{1'700'000'001'000, 2, a, 0});
    now = 1'700'000'001'007;
    CHECK(clock.tick() == hlc{1'700'000'001'007, 0, a, 0});

    // Receives.
    now = 1'700'000'001'010;
    clock.receive(hlc{1'700'000'001'250, 4, b, 7});
    CHECK(clock.last() == hlc{1'700'000'001'250, 5, a, 0});
    clock.receive(hlc{1'700'000'001'100, 9, b, 0});
    CHECK(clock.last() == hlc{1'700'000'001'250, 6, a, 0});
    clock.receive(hlc{1'700'000'001'250, 9, b, 0});
    CHECK(clock.last() == hlc{1'700'000'001'250, 10, a, 0});
    now = 1'700'000'002'000;
    clock.receive(hlc{1'700'000'001'900, 9, b, 0});
    CHECK(clock.last() == hlc{1'700'000'002'000, 0, a, 0});

    // Counter overflow.
    clock_type full{a, fake_clock{&now}, crdtsync::default_max_drift_ms, hlc{1'700'000'003'000, 65534, a, 0}};
    CHECK(full.tick() == hlc{1'700'000'003'000, 65535, a, 0});
    CHECK(full.tick() == hlc{1'700'000'003'001, 0, a, 0});
    CHECK(full.tick() == hlc{1'700'000'003'001, 1, a, 0});

    // Drift.
    now = 1'700'000'001'000;
    clock_type d{a, fake_clock{&now}};
    try {
        d.receive(hlc{1'700'000'061'001, 0, b, 0});
        FAIL_CHECK("accepted a remote beyond the bound");
    } catch (const clock_error& e) {
        CHECK(std::string(e.what()) == "crdtsync: clock_drift: remote HLC wall time 1700000061001 is 60001 ms "
                                       "ahead of the local clock; the bound is 60000 ms");
    }
    d.receive(hlc{1'700'000'061'000, 0, b, 0});
    CHECK(d.last() == hlc{1'700'000'061'000, 1, a, 0});
    CHECK(d.tick() == hlc{1'700'000'061'000, 2, a, 0});

    // Persistence: a restart with the clock set back.
    now = 1'700'000'000'000;
    clock_type restarted{a, fake_clock{&now}, crdtsync::default_max_drift_ms, hlc{1'700'000'001'000, 1, a, 0}};
    CHECK(restarted.tick() == hlc{1'700'000'001'000, 2, a, 0});

    // Site ids and the error texts quoted on the page.
    CHECK(a.to_text() == "qqqqqqqqqqqqqqqqqqqqqg");
    CHECK_THROWS_WITH_AS((void)hlc::from_text(std::string(41, 'A')),
                         "crdtsync: invalid_hlc: expected a 40-character base64 HLC, got 41 characters",
                         crdtsync::parse_error);
    CHECK_THROWS_WITH_AS((void)site_id::from_text(std::string(21, 'A')),
                         "crdtsync: invalid_site_id: site id text must be exactly 22 base64url characters, got 21 "
                         "characters",
                         crdtsync::parse_error);
    CHECK_THROWS_AS((void)site_id::from_text("qqqqqqqqqqqqqqqqqqqqqh"), crdtsync::parse_error);
}
