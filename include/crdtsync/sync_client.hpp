#pragma once
/// \file sync_client.hpp
/// `sync_client`: the client side of the coordinator protocol, sans-IO: a
/// state machine over one replica that syncs it with one server (a
/// `sync_server`, or a Quereus coordinator) through whatever connection the
/// host opens. No socket, thread or timer inside.
///
///     crdtsync::sync_client client{rep, {.database_id = "app"}};
///     client.connected({.send = ..., .close = ...}); // sends the handshake
///     client.receive(frame);                         // for each frame
///     client.written(bytes);                         // as frames leave
///     client.disconnected();                         // connection over: reconnect later
///     client.tick(steady_clock::now());              // every second or so
///
/// On each connection it:
/// 1. shakes hands, asking for delta sync by the server's positions
///    (`syncByPosition`, crdtsync's addition; a Quereus server ignores it
///    and the client then uses Quereus's `sinceHLC` watermark);
/// 2. bootstraps from a snapshot when the replica is new to this server
///    and holds nothing, or the server says a delta is impossible; resumes
///    an interrupted snapshot load from its checkpoint;
/// 3. pulls what it lacks (`get_changes`, batch by batch), each batch
///    applied together with the server position it reaches (`apply_from`),
///    never past a change set the replica rejected;
/// 4. pushes its own changes (`apply_changes`) from the position the server
///    last confirmed, and records a batch as sent only when the server's
///    `apply_result` confirms it without rejecting anything before it;
/// 5. stays live: local commits are pushed as they commit (and, at each
///    `tick`, commits made by other processes on the same store), pushes
///    from the server are applied as they come.
/// A lost connection loses nothing: what was not confirmed is sent again
/// on the next one, and what arrives twice is skipped by the merge.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <crdtsync/message.hpp>
#include <crdtsync/session_options.hpp>
#include <crdtsync/snapshot_loader.hpp>
#include <crdtsync/transport.hpp>
#include <crdtsync/wire/json.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// Where a `sync_client` is.
enum class sync_state : std::uint8_t {
    disconnected, ///< no connection (the initial state)
    handshaking,  ///< handshake sent, waiting for `handshake_ack`
    bootstrapping, ///< loading a snapshot
    catching_up,  ///< pulling what it lacks
    live,         ///< caught up: pushes flow both ways
    failed,       ///< the server refused the session (fatal error): do not reconnect as is
};

[[nodiscard]] constexpr std::string_view to_text(sync_state s) noexcept {
    switch (s) {
    case sync_state::disconnected: return "disconnected";
    case sync_state::handshaking: return "handshaking";
    case sync_state::bootstrapping: return "bootstrapping";
    case sync_state::catching_up: return "catching_up";
    case sync_state::live: return "live";
    case sync_state::failed: return "failed";
    }
    return "?";
}
/// The old name of `to_text(sync_state)`.
[[deprecated("use to_text")]] [[nodiscard]] constexpr std::string_view to_string(sync_state v) noexcept { return to_text(v); }

/// Counters of a `sync_client` since it was made.
struct sync_client_stats {
    std::uint64_t connections = 0;
    std::uint64_t change_sets_in = 0, facts_in = 0;   ///< received in `changes` / `push_changes`
    std::uint64_t change_sets_out = 0, facts_out = 0; ///< sent in `apply_changes`
    std::uint64_t applied = 0, skipped = 0, conflicts = 0; ///< merging what was received
    std::uint64_t rejected_here = 0;  ///< received change sets this replica rejected
    std::uint64_t rejected_there = 0; ///< sent change sets the server rejected
    std::uint64_t snapshots = 0;      ///< snapshot loads completed
    std::uint64_t snapshot_chunks = 0;
    std::uint64_t errors = 0;         ///< `error` messages received
};

/// What a `sync_client` needs to know.
struct sync_client_config {
    std::string database_id;          ///< wire `databaseId`
    std::optional<std::string> token; ///< wire `token`
    /// Pull only: never send this replica's changes.
    bool read_only = false;
    /// At most this many `apply_changes` awaiting their `apply_result`.
    std::size_t max_in_flight = 4;
    session_options options{};
};

template <class Replica>
class sync_client {
public:
    using time_point = std::chrono::steady_clock::time_point;

    /// A client of `r` (which must outlive it).
    /// \throws usage_error when the database id is empty.
    sync_client(Replica& r, sync_client_config config) : rep_(r), cfg_(std::move(config)) {
        if (cfg_.database_id.empty()) detail::raise(errc::invalid_argument, "sync_client: database_id is required");
        if (cfg_.max_in_flight == 0 || cfg_.options.max_facts_per_message == 0)
            detail::raise(errc::invalid_argument, "sync_client: max_in_flight and max_facts_per_message must be positive");
        listener_ = rep_.on_local_change([this](const local_change&) {
            local_clean_ = false;
            if (state_ == sync_state::live) send_local();
        });
    }
    ~sync_client() { rep_.remove_listener(listener_); }
    sync_client(const sync_client&) = delete;
    sync_client& operator=(const sync_client&) = delete;

    /// A connection to the server is open: sends the handshake on it.
    void connected(connection_io io, time_point now = std::chrono::steady_clock::now()) {
        reset_connection();
        io_ = std::move(io);
        ++stats_.connections;
        last_heard_ = last_sent_ = now;
        set_state(sync_state::handshaking);
        msg::handshake h;
        h.database_id = cfg_.database_id;
        h.site = rep_.site_id();
        h.token = cfg_.token;
        h.by_position = true;
        send(h);
    }

    /// Binds a transport (see transport.hpp) and sends the handshake on it.
    /// The transport must outlive the connection (until it reported `closed`).
    template <transport T>
    void attach(std::shared_ptr<T> t, time_point now = std::chrono::steady_clock::now()) {
        std::weak_ptr<T> weak = t;
        const auto gen = generation_ + 1; // the connection `connected` starts
        t->on_events({.frame = [this, gen](std::string_view f) { if (gen == generation_) receive(f); },
                      .written = [this, gen](std::size_t n) { if (gen == generation_) written(n); },
                      .closed = [this, gen](std::uint16_t code, std::string_view why) {
                          if (gen == generation_) disconnected(code, why);
                      }});
        connected({.send = [weak](std::string f) { if (auto c = weak.lock()) c->send(std::move(f)); },
                   .close = [weak](std::uint16_t code, std::string_view why) { if (auto c = weak.lock()) c->close(code, why); }},
                  now);
    }

    /// One text frame from the server.
    void receive(std::string_view frame) {
        if (!io_.send) return;
        heard_ = true;
        message m;
        try {
            m = wire::decode_message(frame, cfg_.options.decode);
        } catch (const error& e) {
            return fail_connection(close_code::invalid_payload, std::string("undecodable message from the server: ") + e.what());
        }
        try {
            std::visit([&](auto& x) { handle(x); }, m);
        } catch (const snapshot_error& e) {
            // The stream does not fit (or the store refused it): what was
            // loaded stays, and the next connection resumes or starts over.
            fail_connection(close_code::protocol_error, e.what());
        }
    }

    /// Frames of `bytes` bytes left the process.
    void written(std::size_t bytes) {
        queued_ -= std::min(queued_, bytes);
        if (state_ == sync_state::live) send_local();
    }

    /// The connection is over. Reconnect with `connected` (after a backoff).
    void disconnected(std::uint16_t code = close_code::abnormal, std::string_view why = {}) {
        if (!io_.send && state_ != sync_state::handshaking) return;
        last_close_ = code;
        if (!why.empty()) last_problem_ = std::string(why);
        reset_connection();
        if (state_ != sync_state::failed) set_state(sync_state::disconnected);
    }

    /// Time passed: pings the server when idle, closes a connection silent
    /// past the idle timeout, and sends commits made by other processes.
    void tick(time_point now) {
        if (!io_.send) return;
        if (heard_) {
            heard_ = false;
            last_heard_ = now;
        } else if (now - last_heard_ > cfg_.options.idle_timeout) {
            return fail_connection(close_code::idle_timeout, "idle timeout: nothing heard from the server");
        }
        if (state_ == sync_state::live) {
            local_clean_ = false;
            send_local();
        }
        if (now - last_sent_ >= cfg_.options.ping_interval) {
            last_sent_ = now;
            send(msg::ping{});
        }
    }

    [[nodiscard]] sync_state state() const noexcept { return state_; }
    /// True when live with nothing left to send or awaiting confirmation
    /// (as of the last local commit seen or `tick`).
    [[nodiscard]] bool synced() const noexcept {
        return state_ == sync_state::live && in_flight_.empty() && (local_clean_ || cfg_.read_only);
    }
    /// The server's site, once the handshake succeeded.
    [[nodiscard]] const std::optional<site_id>& server() const noexcept { return server_; }
    /// True when this connection syncs by the server's positions (a
    /// crdtsync server), false with a Quereus server.
    [[nodiscard]] bool by_position() const noexcept { return by_position_; }
    [[nodiscard]] const sync_client_stats& stats() const noexcept { return stats_; }
    /// The last `error` the server sent.
    [[nodiscard]] const std::optional<msg::error>& last_error() const noexcept { return last_error_; }
    /// Why the last connection ended, when this client knows (its own close,
    /// or the reason the transport reported).
    [[nodiscard]] const std::string& last_problem() const noexcept { return last_problem_; }
    /// The close code the last connection ended with.
    [[nodiscard]] std::uint16_t last_close_code() const noexcept { return last_close_; }

    /// Called at each state change.
    void on_state(std::function<void(sync_state)> fn) { on_state_ = std::move(fn); }

private:
    // ---- connection bookkeeping

    void reset_connection() {
        ++generation_;
        io_ = {};
        queued_ = 0;
        in_flight_.clear();
        ack_blocked_ = recv_blocked_ = false;
        loader_.reset();
        snapshot_version_.reset();
    }
    void set_state(sync_state s) {
        if (s == state_) return;
        state_ = s;
        if (on_state_) on_state_(s);
    }
    template <class M>
    void send(const M& m) {
        if (!io_.send) return;
        auto text = wire::encode(message{m});
        queued_ += text.size();
        io_.send(std::move(text));
    }
    void fail_connection(std::uint16_t code, std::string why) {
        last_problem_ = std::move(why);
        last_close_ = code;
        auto io = std::move(io_);
        reset_connection();
        if (state_ != sync_state::failed) set_state(sync_state::disconnected);
        if (io.close) io.close(code, last_problem_);
    }

    // ---- the messages

    void handle(msg::handshake_ack& a) {
        if (state_ != sync_state::handshaking) return protocol_violation("a second handshake_ack");
        if (a.protocol_version != protocol_version) {
            set_state(sync_state::failed);
            return fail_connection(close_code::protocol_version,
                                   "sync protocol version mismatch: client speaks v" + std::to_string(protocol_version) +
                                       ", server speaks v" + std::to_string(a.protocol_version));
        }
        server_ = a.server_site;
        by_position_ = a.by_position;
        const auto p = rep_.peer(*server_);
        send_cursor_ = p.sent_up_to;
        snapshot_loader<Replica> probe{rep_};
        if (auto k = probe.checkpoint()) {
            set_state(sync_state::bootstrapping);
            loader_.emplace(rep_);
            resuming_ = true;
            return send(msg::resume_snapshot{*k});
        }
        if (p == peer_state{} && rep_.position() == 0) return start_snapshot();
        pull();
    }

    void start_snapshot() {
        set_state(sync_state::bootstrapping);
        resuming_ = false;
        loader_.emplace(rep_);
        send(msg::get_snapshot{});
    }

    void pull() {
        set_state(sync_state::catching_up);
        msg::get_changes g;
        if (by_position_) {
            recv_cursor_ = rep_.peer(*server_).received_up_to;
            g.since_position = recv_cursor_;
        } else {
            g.since = hlc_watermark_;
        }
        send(g);
    }

    void handle(msg::changes& c) {
        if (state_ != sync_state::catching_up && state_ != sync_state::live) return protocol_violation("changes without get_changes");
        if (c.snapshot_required) return start_snapshot();
        take(c.change_sets, c.next_position, true);
        if (!io_.send) return;
        if (by_position_ && c.more) {
            msg::get_changes g;
            g.since_position = recv_cursor_;
            return send(g);
        }
        if (state_ != sync_state::live) {
            set_state(sync_state::live);
            local_clean_ = false;
            send_local();
        }
    }

    void handle(msg::push_changes& p) {
        // During a bootstrap a push would interleave with the load: dropped,
        // the pull after it fetches the same changes by position.
        if (state_ != sync_state::live && state_ != sync_state::catching_up) return;
        take(p.change_sets, p.next_position, false);
    }

    // Applies received change sets. By position, the server's position is
    // recorded in the same transaction (`apply_from`), unless a rejection
    // came before on this connection: then it stays where it was, and the
    // next connection fetches the rejected change set again.
    void take(std::vector<change_set>& sets, std::optional<std::uint64_t> next, bool ordered) {
        stats_.change_sets_in += sets.size();
        for (const auto& cs : sets) stats_.facts_in += cs.changes.size() + cs.migrations.size();
        apply_result r;
        if (by_position_ && next) {
            delta d;
            d.change_sets = std::move(sets);
            d.next_position = recv_blocked_ ? 0 : *next;
            r = rep_.apply_from(*server_, d);
            recv_cursor_ = std::max(recv_cursor_, *next);
            if (in_flight_.empty()) send_cursor_ = std::max(send_cursor_, rep_.peer(*server_).sent_up_to);
        } else {
            r = rep_.apply(sets);
            // Quereus's rule: only an ordered reply (`changes`) moves the
            // watermark, to the newest change set it carried.
            if (ordered && r.rejected.empty() && !recv_blocked_)
                for (const auto& cs : sets)
                    if (!hlc_watermark_ || *hlc_watermark_ < cs.version) hlc_watermark_ = cs.version;
        }
        if (!r.rejected.empty()) recv_blocked_ = true;
        stats_.applied += r.applied;
        stats_.skipped += r.skipped;
        stats_.conflicts += r.conflicts;
        stats_.rejected_here += r.rejected.size();
    }

    void handle(msg::apply_result& a) {
        if (!a.request_id) return;
        auto it = std::find_if(in_flight_.begin(), in_flight_.end(), [&](const auto& f) { return f.first == *a.request_id; });
        if (it == in_flight_.end()) return; // an earlier connection's, or not ours
        const auto pos = it->second;
        // A batch before this one got no apply_result (an error instead):
        // it was not applied, so nothing after it may count as sent.
        if (it != in_flight_.begin()) ack_blocked_ = true;
        in_flight_.erase(in_flight_.begin(), it + 1);
        stats_.rejected_there += a.result.rejected.size();
        if (!a.result.rejected.empty()) ack_blocked_ = true;
        if (!ack_blocked_) rep_.acknowledge(*server_, pos);
        send_local();
    }

    void handle(msg::snapshot_chunk& c) {
        if (state_ != sync_state::bootstrapping || !loader_) return protocol_violation("a snapshot chunk nobody asked for");
        if (const auto* h = std::get_if<snapshot_header>(&c.chunk)) snapshot_version_ = h->version;
        loader_->push(c.chunk);
        ++stats_.snapshot_chunks;
    }

    void handle(msg::snapshot_complete&) {
        if (state_ != sync_state::bootstrapping || !loader_) return protocol_violation("snapshot_complete without a snapshot");
        if (!loader_->done()) return fail_connection(close_code::protocol_error, "snapshot_complete before the snapshot's footer");
        loader_.reset();
        ++stats_.snapshots;
        if (!by_position_ && snapshot_version_) hlc_watermark_ = snapshot_version_;
        send_cursor_ = rep_.peer(*server_).sent_up_to;
        pull();
    }

    void handle(msg::error& e) {
        ++stats_.errors;
        last_error_ = e;
        // A batch the server failed to apply: nothing after it counts as sent.
        if (e.code == "APPLY_CHANGES_ERROR") ack_blocked_ = true;
        if (e.fatal.value_or(false)) {
            set_state(sync_state::failed);
            return fail_connection(close_code::normal, e.code + ": " + e.message);
        }
        // A resume the server refused: start the snapshot over.
        if (state_ == sync_state::bootstrapping && e.code == "SNAPSHOT_ERROR") {
            if (resuming_) return start_snapshot();
            return fail_connection(close_code::normal, e.code + ": " + e.message);
        }
    }

    void handle(msg::pong&) {}

    // A client -> server message sent to the client.
    template <class M>
    void handle(M&) {
        protocol_violation("unexpected message type " + std::string(M::wire_type));
    }

    void protocol_violation(const std::string& what) { fail_connection(close_code::protocol_error, "protocol violation: " + what); }

    // ---- pushing local changes

    void send_local() {
        if (cfg_.read_only || state_ != sync_state::live || !io_.send) return;
        while (in_flight_.size() < cfg_.max_in_flight && queued_ < cfg_.options.max_queued_bytes) {
            auto d = rep_.changes_since(*server_, send_cursor_, cfg_.options.max_facts_per_message);
            if (d.snapshot_required) d = rep_.changes_since(*server_, 0, cfg_.options.max_facts_per_message);
            if (d.change_sets.empty()) {
                if (d.next_position > send_cursor_ && in_flight_.empty() && !ack_blocked_)
                    rep_.acknowledge(*server_, d.next_position); // only echoes were left
                send_cursor_ = std::max(send_cursor_, d.next_position);
                local_clean_ = true;
                return;
            }
            msg::apply_changes a;
            a.request_id = "apply-" + std::to_string(++request_seq_);
            stats_.change_sets_out += d.change_sets.size();
            for (const auto& cs : d.change_sets) stats_.facts_out += cs.changes.size() + cs.migrations.size();
            a.changes = std::move(d.change_sets);
            send_cursor_ = d.next_position;
            in_flight_.emplace_back(*a.request_id, d.next_position);
            send(a);
        }
    }

    Replica& rep_;
    sync_client_config cfg_;
    connection_io io_;
    std::uint64_t generation_ = 0;
    sync_state state_ = sync_state::disconnected;
    std::optional<site_id> server_;
    bool by_position_ = false;
    std::uint64_t recv_cursor_ = 0; // the server's position received up to, on this connection
    std::uint64_t send_cursor_ = 0; // our position sent up to, on this connection
    std::deque<std::pair<std::string, std::uint64_t>> in_flight_; // request id, our position it reaches
    bool ack_blocked_ = false, recv_blocked_ = false; // a rejection on this connection
    std::optional<hlc> hlc_watermark_; // with a Quereus server
    std::optional<snapshot_loader<Replica>> loader_;
    std::optional<hlc> snapshot_version_;
    bool resuming_ = false;
    bool local_clean_ = false;
    std::size_t queued_ = 0;
    bool heard_ = false;
    time_point last_heard_{}, last_sent_{};
    std::uint64_t request_seq_ = 0;
    sync_client_stats stats_;
    std::optional<msg::error> last_error_;
    std::string last_problem_;
    std::uint16_t last_close_ = 0;
    std::function<void(sync_state)> on_state_;
    typename Replica::listener_id listener_ = 0;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
