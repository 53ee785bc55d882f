#pragma once
/// \file pipe.hpp
/// `pipe`: an in-process `transport` (transport.hpp), and `pipe_loop`, the
/// event loop its two ends share. For tests, for syncing replicas inside
/// one process, and as the worked example of a transport (docs/protocol.md).
///
///     crdtsync::pipe_loop loop;
///     auto [client_end, server_end] = loop.connect();
///     server.attach(server_end);   // a sync_server
///     client.attach(client_end);   // a sync_client: sends its handshake
///     loop.run();                  // deliver until nothing is left to do
///
/// Nothing is delivered from inside `send` or `close`: each end queues
/// what it reports to the other, and `pipe_loop::run_one` delivers one
/// event: a frame, a `written` (sent once the peer took the frame, so a
/// peer that is not run holds the sender's bytes: flow control can be
/// tested), or a closure. `run_one(rng)` picks which connection's next
/// event to deliver at random (each connection's own order is kept), and
/// `pipe::sever` loses the connection with what it had in flight. The loop
/// owns the ends of the connections it made (a host holds them by
/// `shared_ptr` as long as it wants to use them).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <crdtsync/transport.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

class pipe_loop;

/// One end of an in-process connection; made in pairs by `pipe_loop::connect`.
class pipe : public std::enable_shared_from_this<pipe> {
public:
    using transport_concept = transport_tag;

    /// Queues a text frame for the other end (ignored once closed).
    void send(std::string frame);
    /// Closes the connection with `code`: the other end receives the
    /// frames sent before, then `closed(code)`; this end reports
    /// `closed(code)` too.
    void close(std::uint16_t code, std::string_view why);
    /// Where this end reports frames, `written` and closure.
    void on_events(transport_events ev) { events_ = std::move(ev); }
    /// Loses the connection: both ends report `closed(close_code::abnormal)`
    /// next, and every frame in flight is lost.
    void sever();

    /// Bytes sent by this end that the other end has not taken yet.
    [[nodiscard]] std::size_t queued_bytes() const noexcept { return queued_; }
    /// True once this end reported `closed`.
    [[nodiscard]] bool is_closed() const noexcept { return reported_; }

    pipe(pipe_loop& loop, std::size_t lane) : loop_(&loop), lane_(lane) {}

private:
    friend class pipe_loop;
    void post_to_peer(std::function<void(pipe&)> fn);
    void post_to_self(std::function<void(pipe&)> fn);
    void report_closed(std::uint16_t code, std::string_view why) {
        if (reported_) return;
        reported_ = true;
        closing_ = true;
        auto ev = std::move(events_);
        events_ = {};
        if (ev.closed) ev.closed(code, why);
    }

    pipe_loop* loop_;
    std::size_t lane_;
    std::weak_ptr<pipe> peer_;
    transport_events events_;
    std::size_t queued_ = 0;
    bool closing_ = false;  // close() or sever() was called, or the peer closed
    bool reported_ = false; // closed was reported
};

/// The event loop of a set of pipes.
class pipe_loop {
public:
    /// A new connection: its two ends.
    std::pair<std::shared_ptr<pipe>, std::shared_ptr<pipe>> connect() {
        auto a = std::make_shared<pipe>(*this, lanes_.size());
        lanes_.emplace_back();
        auto b = std::make_shared<pipe>(*this, lanes_.size());
        lanes_.emplace_back();
        a->peer_ = b;
        b->peer_ = a;
        lanes_[a->lane_].end = a;
        lanes_[b->lane_].end = b;
        return {a, b};
    }

    /// Delivers the oldest pending event; false when there is none.
    bool run_one() {
        std::size_t best = lanes_.size();
        for (std::size_t i = 0; i < lanes_.size(); ++i)
            if (!lanes_[i].events.empty() && (best == lanes_.size() || lanes_[i].events.front().seq < lanes_[best].events.front().seq))
                best = i;
        return best != lanes_.size() && deliver(best);
    }
    /// Delivers the next event of a connection end picked at random.
    template <class URBG>
    bool run_one(URBG& rng) {
        std::vector<std::size_t> ready;
        for (std::size_t i = 0; i < lanes_.size(); ++i)
            if (!lanes_[i].events.empty()) ready.push_back(i);
        if (ready.empty()) return false;
        return deliver(ready[std::uniform_int_distribution<std::size_t>(0, ready.size() - 1)(rng)]);
    }
    /// Delivers events until none is left, or `limit` of them; returns how many.
    std::size_t run(std::size_t limit = std::numeric_limits<std::size_t>::max()) {
        std::size_t n = 0;
        while (n < limit && run_one()) ++n;
        return n;
    }
    /// True when no event is pending.
    [[nodiscard]] bool idle() const noexcept {
        for (const auto& l : lanes_)
            if (!l.events.empty()) return false;
        return true;
    }

private:
    friend class pipe;
    struct event {
        std::uint64_t seq;
        std::function<void(pipe&)> fn;
    };
    struct lane { // what is to be delivered to one end
        std::shared_ptr<pipe> end; // the loop keeps both ends of its connections alive
        std::deque<event> events;
    };

    void post(std::size_t which, std::function<void(pipe&)> fn) { lanes_[which].events.push_back({++seq_, std::move(fn)}); }
    bool deliver(std::size_t i) {
        auto ev = std::move(lanes_[i].events.front());
        lanes_[i].events.pop_front();
        if (auto end = lanes_[i].end; !end->reported_) ev.fn(*end);
        return true;
    }
    void drop(std::size_t which) { lanes_[which].events.clear(); }

    std::vector<lane> lanes_;
    std::uint64_t seq_ = 0;
};

inline void pipe::post_to_peer(std::function<void(pipe&)> fn) {
    if (auto p = peer_.lock()) loop_->post(p->lane_, std::move(fn));
}
inline void pipe::post_to_self(std::function<void(pipe&)> fn) { loop_->post(lane_, std::move(fn)); }

inline void pipe::send(std::string frame) {
    if (closing_) return;
    queued_ += frame.size();
    std::weak_ptr<pipe> self = weak_from_this();
    post_to_peer([self, f = std::move(frame)](pipe& to) {
        if (to.events_.frame) to.events_.frame(f);
        if (auto from = self.lock()) {
            const auto n = f.size();
            from->post_to_self([n](pipe& back) {
                back.queued_ -= n;
                if (back.events_.written) back.events_.written(n);
            });
        }
    });
}

inline void pipe::close(std::uint16_t code, std::string_view why) {
    if (closing_) return;
    closing_ = true;
    std::string reason(why);
    post_to_peer([code, reason](pipe& to) {
        to.closing_ = true;
        to.report_closed(code, reason);
    });
    post_to_self([code, reason](pipe& me) { me.report_closed(code, reason); });
}

inline void pipe::sever() {
    if (reported_) return;
    closing_ = true;
    loop_->drop(lane_);
    post_to_self([](pipe& me) { me.report_closed(close_code::abnormal, "connection lost"); });
    if (auto p = peer_.lock(); p && !p->reported_) {
        p->closing_ = true;
        loop_->drop(p->lane_);
        loop_->post(p->lane_, [](pipe& to) { to.report_closed(close_code::abnormal, "connection lost"); });
    }
}

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
