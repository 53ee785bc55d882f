#pragma once
/// \file sync_server.hpp
/// `sync_server`: the server side of the coordinator protocol, sans-IO. It
/// holds one session per connection over the replicas of the databases it
/// serves; the host gives it each connection's frames and tells it when
/// frames left, when a connection closed and what time it is, and the
/// server answers through each connection's `connection_io`. No socket,
/// thread or timer inside: the WebSocket server (transports/websocket), the
/// in-process `pipe` or any other transport carries the frames.
///
///     crdtsync::sync_server<crdtsync::replica<crdtsync::lmdb_store>> server{{
///         .open_database = [&](std::string_view id) { return id == "app" ? &rep : nullptr; },
///     }};
///     auto id = server.accept({.send = ..., .close = ...});
///     server.receive(id, frame);       // for each frame of that connection
///     server.written(id, bytes);       // as frames leave
///     server.closed(id);               // when it is over
///     server.tick(steady_clock::now()); // every second or so
///
/// What it does (docs/protocol.md has the states and the failure cases):
/// - the handshake, checked as Quereus checks it: protocol version first
///   (`PROTOCOL_VERSION_MISMATCH`, close 4003), a second handshake
///   (`ALREADY_AUTHENTICATED`, close 1008), a missing database id
///   (`MISSING_DATABASE_ID`, close 4002), then the host's `authenticate`
///   and `open_database` (`AUTH_FAILED`, close 4001);
/// - `get_changes`: by the server's positions for a client that asked for
///   them in its handshake (`syncByPosition`, crdtsync's addition), in
///   batches of `max_facts_per_message`; by HLC for a Quereus client, as its
///   coordinator does;
/// - `apply_changes`: merged into the database's replica, answered with
///   `apply_result`; what it changed is pushed (`push_changes`) to every
///   other session of the database that has caught up (forwarded as it
///   came, encoded once, to those that had everything before it; read from
///   the change log for the others);
/// - `get_snapshot` / `resume_snapshot`: a `snapshot_writer` stream;
/// - flow control: change sets and snapshot chunks are produced only while
///   the connection's unsent bytes are under `max_queued_bytes`; a session
///   behind that point continues from its position in the change log;
/// - `ping` -> `pong`, and an idle timeout.
///
/// Everything runs on the caller's thread, like the replicas it serves.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <crdtsync/detail/utf8.hpp>
#include <crdtsync/message.hpp>
#include <crdtsync/session_options.hpp>
#include <crdtsync/snapshot_writer.hpp>
#include <crdtsync/transport.hpp>
#include <crdtsync/wire/json.hpp>

namespace crdtsync {
CRDTSYNC_BEGIN_NAMESPACE

/// Counters of a `sync_server` since it started (for /metrics).
struct sync_server_stats {
    std::uint64_t connections_accepted = 0;
    std::uint64_t handshakes = 0;                ///< accepted handshakes
    std::uint64_t refused_version = 0;           ///< PROTOCOL_VERSION_MISMATCH
    std::uint64_t refused_auth = 0;              ///< AUTH_FAILED (credentials or unknown database)
    std::uint64_t refused_database_id = 0;       ///< MISSING_DATABASE_ID
    std::uint64_t refused_duplicate = 0;         ///< ALREADY_AUTHENTICATED
    std::uint64_t message_errors = 0;            ///< undecodable or unexpected messages
    std::uint64_t idle_closed = 0;               ///< sessions closed by the idle timeout
    std::uint64_t change_sets_in = 0, facts_in = 0;
    std::uint64_t change_sets_out = 0, facts_out = 0;
    std::uint64_t applied = 0, skipped = 0, conflicts = 0, rejected = 0;
    std::uint64_t bytes_in = 0, bytes_out = 0;
    std::uint64_t snapshot_chunks = 0;
};

template <class Replica>
class sync_server {
public:
    using connection_id = std::uint64_t;
    using time_point = std::chrono::steady_clock::time_point;

    /// What the server asks of its host.
    struct hooks {
        /// The replica of database `id`, or nullptr to refuse it
        /// (`AUTH_FAILED`). Called at each handshake; the replica must
        /// outlive the server's sessions of it.
        std::function<Replica*(std::string_view id)> open_database;
        /// Checks a handshake's credentials: an error message refuses it
        /// (`AUTH_FAILED`). Unset: everyone is admitted.
        std::function<std::optional<std::string>(const msg::handshake&)> authenticate{};
        /// Asked after every `apply_changes` of a session committed, with
        /// the replica's position after it (`last`): true holds the
        /// `apply_result` until the host calls `release(database_id, up_to)`
        /// with `up_to >= last` (a cluster node answers only once what it
        /// accepted is also acknowledged elsewhere). Held results leave in
        /// the order they were held. Unset: every result is sent at once.
        std::function<bool(std::string_view database_id, std::uint64_t last)> hold_result{};
    };

    /// One session, as /status shows it.
    struct session_info {
        connection_id id = 0;
        std::string database_id; ///< empty before the handshake
        std::optional<site_id> peer;
        bool by_position = false;
        bool live = false;             ///< caught up: receives pushes
        bool snapshot = false;         ///< a snapshot stream is in progress
        std::uint64_t position = 0;    ///< the server's position it has been sent up to
        std::size_t queued_bytes = 0;  ///< sent to the transport, not yet written
    };

    explicit sync_server(hooks h, session_options options = {}) : hooks_(std::move(h)), opts_(options) {
        if (!hooks_.open_database) detail::raise(errc::invalid_argument, "sync_server: hooks.open_database is required");
        if (opts_.max_facts_per_message == 0 || opts_.snapshot_chunk_entries == 0)
            detail::raise(errc::invalid_argument, "sync_server: max_facts_per_message and snapshot_chunk_entries must be positive");
    }
    ~sync_server() {
        for (auto& [name, db] : databases_) {
            db.rep->remove_listener(db.on_local);
            db.rep->remove_listener(db.on_remote);
        }
    }
    sync_server(const sync_server&) = delete;
    sync_server& operator=(const sync_server&) = delete;

    /// A new connection; `io` is how the server sends on it. `now` starts
    /// its idle clock.
    connection_id accept(connection_io io, time_point now = std::chrono::steady_clock::now()) {
        const auto id = ++next_id_;
        auto s = std::make_unique<session>();
        s->id = id;
        s->io = std::move(io);
        s->last_heard = now;
        sessions_.emplace(id, std::move(s));
        ++stats_.connections_accepted;
        return id;
    }

    /// Binds a transport (see transport.hpp) to a new session: its frames,
    /// `written` and `closed` reach this server. The transport must outlive
    /// the session (until it reported `closed`).
    template <transport T>
    connection_id attach(std::shared_ptr<T> t, time_point now = std::chrono::steady_clock::now()) {
        std::weak_ptr<T> weak = t;
        const auto id = accept({.send = [weak](std::string f) { if (auto c = weak.lock()) c->send(std::move(f)); },
                                .close = [weak](std::uint16_t code, std::string_view why) { if (auto c = weak.lock()) c->close(code, why); }},
                               now);
        t->on_events({.frame = [this, id](std::string_view f) { receive(id, f); },
                      .written = [this, id](std::size_t n) { written(id, n); },
                      .closed = [this, id](std::uint16_t, std::string_view) { closed(id); }});
        return id;
    }

    /// One text frame from connection `id` (ignored once it is closed).
    void receive(connection_id id, std::string_view frame) {
        auto* s = find(id);
        if (!s) return;
        s->heard = true;
        stats_.bytes_in += frame.size();
        message m;
        try {
            m = wire::decode_message(frame, opts_.decode);
        } catch (const error& e) {
            if (is_versionless_handshake(frame)) {
                refuse_version(*s, "client sent none (pre-versioning client)");
                return;
            }
            ++stats_.message_errors;
            send_error(*s, "MESSAGE_ERROR", e.what(), false);
            return;
        }
        std::visit([&](auto& x) { handle(*s, x); }, m);
    }

    /// Frames of `bytes` bytes sent on connection `id` left the process.
    void written(connection_id id, std::size_t bytes) {
        auto* s = find(id);
        if (!s) return;
        s->queued -= std::min(s->queued, bytes);
        pump(*s);
    }

    /// Connection `id` is over (either side closed it, or it was lost).
    void closed(connection_id id) {
        auto it = sessions_.find(id);
        if (it == sessions_.end()) return;
        if (auto* db = it->second->db) std::erase(db->members, id);
        sessions_.erase(it);
    }

    /// Time passed: closes the sessions that were silent past the idle timeout.
    void tick(time_point now) {
        std::vector<connection_id> idle;
        for (auto& [id, s] : sessions_) {
            if (s->heard) {
                s->heard = false;
                s->last_heard = now;
            } else if (now - s->last_heard > opts_.idle_timeout) {
                idle.push_back(id);
            }
        }
        for (auto id : idle) {
            ++stats_.idle_closed;
            end(*find(id), close_code::idle_timeout, "idle timeout");
        }
    }

    /// Closes every session with `going_away` (a shutdown): what each had
    /// queued is sent first. Accepts nothing afterwards.
    void shutdown() {
        std::vector<connection_id> ids;
        for (auto& [id, s] : sessions_) ids.push_back(id);
        for (auto id : ids) end(*find(id), close_code::going_away, "server shutting down");
    }

    [[nodiscard]] const sync_server_stats& stats() const noexcept { return stats_; }
    [[nodiscard]] const session_options& options() const noexcept { return opts_; }

    /// Sends the `apply_result`s of database `database_id` that `hold_result`
    /// held for positions up to `up_to` (all of them with the largest
    /// `std::uint64_t`). Results of sessions that closed meanwhile are gone.
    void release(std::string_view database_id, std::uint64_t up_to) {
        auto it = databases_.find(database_id);
        if (it == databases_.end()) return;
        const auto members = it->second.members;
        for (auto id : members) {
            auto* s = find(id);
            while (s && !s->held.empty() && s->held.front().first <= up_to) {
                auto text = std::move(s->held.front().second);
                s->held.pop_front();
                s->queued += text.size();
                stats_.bytes_out += text.size();
                s->io.send(std::move(text));
                s = find(id); // a send may end the session
            }
        }
    }
    /// How many `apply_result`s are held (see `hooks::hold_result`).
    [[nodiscard]] std::size_t held_results() const noexcept {
        std::size_t n = 0;
        for (const auto& [id, s] : sessions_) n += s->held.size();
        return n;
    }

    /// Every open session.
    [[nodiscard]] std::vector<session_info> sessions() const {
        std::vector<session_info> out;
        for (const auto& [id, s] : sessions_)
            out.push_back({id, s->db ? s->database_id : std::string{}, s->peer, s->by_position, s->live,
                           s->snap.has_value(), s->cursor, s->queued});
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
        return out;
    }

private:
    struct database;
    struct session {
        connection_id id = 0;
        connection_io io;
        database* db = nullptr; // set by the handshake
        std::string database_id;
        site_id peer;
        bool by_position = false;
        bool live = false;        // caught up: pushes flow from `cursor`
        std::uint64_t cursor = 0; // the server's position sent up to
        std::size_t queued = 0;   // bytes handed to io.send, not yet written
        std::optional<snapshot_writer<Replica>> snap;
        std::deque<std::pair<std::uint64_t, std::string>> held; // apply_results awaiting `release`
        bool heard = false;
        time_point last_heard{};
        bool closing = false;
    };
    struct database {
        Replica* rep = nullptr;
        std::vector<connection_id> members;
        typename Replica::listener_id on_local = 0, on_remote = 0;
        bool applying = false; // a session's apply is running: it forwards what it applied
    };

    session* find(connection_id id) {
        auto it = sessions_.find(id);
        return it == sessions_.end() || it->second->closing ? nullptr : it->second.get();
    }

    // ---- sending

    template <class M>
    void send(session& s, const M& m) {
        auto text = wire::encode(message{m});
        s.queued += text.size();
        stats_.bytes_out += text.size();
        s.io.send(std::move(text));
    }
    // Messages may quote the peer's bytes (a decode error names what it
    // found): repaired to valid UTF-8, or the JSON writer would refuse them.
    void send_error(session& s, std::string code, std::string_view text, bool fatal) {
        send(s, msg::error{std::move(code), detail::utf8_repaired(text), fatal});
    }
    void end(session& s, std::uint16_t code, std::string_view why) {
        s.closing = true;
        s.snap.reset();
        if (s.db) std::erase(s.db->members, s.id);
        s.db = nullptr;
        s.io.close(code, why);
    }
    void refuse_version(session& s, const std::string& what) {
        ++stats_.refused_version;
        send_error(s, "PROTOCOL_VERSION_MISMATCH",
                   "sync protocol version mismatch: server speaks v" + std::to_string(protocol_version) + ", " + what, true);
        end(s, close_code::protocol_version, "Protocol version mismatch");
    }
    static std::size_t facts_in(const std::vector<change_set>& sets) {
        std::size_t n = 0;
        for (const auto& cs : sets) n += cs.changes.size() + cs.migrations.size();
        return n;
    }
    void count_out(const std::vector<change_set>& sets) {
        stats_.change_sets_out += sets.size();
        stats_.facts_out += facts_in(sets);
    }

    // A handshake without `protocolVersion` does not decode (the member is
    // required); Quereus answers it as a version mismatch, and so do we.
    static bool is_versionless_handshake(std::string_view frame) {
        try {
            const auto j = nlohmann::json::parse(frame);
            return j.is_object() && j.value("type", "") == "handshake" && !j.contains("protocolVersion");
        } catch (...) {
            return false;
        }
    }

    // ---- the messages

    bool require_session(session& s) {
        if (s.db) return true;
        send_error(s, "NOT_AUTHENTICATED", "send a handshake first", false);
        return false;
    }

    void handle(session& s, msg::handshake& h) {
        if (h.protocol_version != protocol_version)
            return refuse_version(s, "client speaks v" + std::to_string(h.protocol_version));
        if (s.db) {
            ++stats_.refused_duplicate;
            send_error(s, "ALREADY_AUTHENTICATED", "this connection already completed its handshake", true);
            return end(s, close_code::policy_violation, "Already authenticated");
        }
        if (h.database_id.empty()) {
            ++stats_.refused_database_id;
            send_error(s, "MISSING_DATABASE_ID", "databaseId is required", true);
            return end(s, close_code::missing_database, "Missing databaseId");
        }
        std::optional<std::string> refusal;
        Replica* rep = nullptr;
        try {
            if (hooks_.authenticate) refusal = hooks_.authenticate(h);
            if (!refusal) {
                rep = hooks_.open_database(h.database_id);
                if (!rep) refusal = "unknown database '" + h.database_id + "'";
            }
        } catch (const std::exception& e) {
            refusal = e.what();
        }
        if (refusal) {
            ++stats_.refused_auth;
            send_error(s, "AUTH_FAILED", *refusal, true);
            return end(s, close_code::auth_failed, "Authentication failed");
        }
        ++stats_.handshakes;
        s.db = &database_of(h.database_id, *rep);
        s.db->members.push_back(s.id);
        s.database_id = h.database_id;
        s.peer = h.site;
        s.by_position = h.by_position;
        send(s, msg::handshake_ack{rep->site_id(), detail::random_uuid(), h.database_id, protocol_version, h.by_position});
    }

    void handle(session& s, msg::get_changes& g) {
        if (!require_session(s)) return;
        auto& rep = *s.db->rep;
        s.snap.reset();
        try {
            if (s.by_position) return changes_by_position(s, rep, g);
            changes_by_hlc(s, rep, g);
        } catch (const error& e) {
            send_error(s, "GET_CHANGES_ERROR", e.what(), false);
        }
    }

    void changes_by_position(session& s, Replica& rep, const msg::get_changes& g) {
        auto from = g.since_position.value_or(0);
        // A position beyond ours is another server's (this one was replaced):
        // start over, the merge skips what the client has.
        if (from > rep.position()) from = 0;
        else if (from > 0) rep.acknowledge(s.peer, from); // the client holds everything up to it
        auto d = rep.changes_since(s.peer, from, opts_.max_facts_per_message);
        msg::changes reply;
        reply.snapshot_required = d.snapshot_required;
        reply.more = d.more;
        reply.next_position = d.next_position;
        count_out(d.change_sets);
        reply.change_sets = std::move(d.change_sets);
        s.live = !reply.more && !reply.snapshot_required;
        s.cursor = reply.next_position.value_or(0);
        send(s, reply);
        pump(s);
    }

    // Quereus's rule: every change set with facts newer than `sinceHLC`, in
    // one reply, in HLC order (so the watermark it advances to covers them).
    void changes_by_hlc(session& s, Replica& rep, const msg::get_changes& g) {
        auto d = rep.changes_since(s.peer, 0, static_cast<std::size_t>(-1));
        msg::changes reply;
        for (auto& cs : d.change_sets) {
            if (g.since) {
                std::erase_if(cs.changes, [&](const change& c) { return version_of(c) <= *g.since; });
                std::erase_if(cs.migrations, [&](const schema_migration& m) { return m.version <= *g.since; });
                if (cs.changes.empty() && cs.migrations.empty()) continue;
            }
            reply.change_sets.push_back(std::move(cs));
        }
        std::stable_sort(reply.change_sets.begin(), reply.change_sets.end(),
                         [](const change_set& a, const change_set& b) { return a.version < b.version; });
        count_out(reply.change_sets);
        s.live = true;
        s.cursor = d.next_position;
        send(s, reply);
        pump(s);
    }

    void handle(session& s, msg::apply_changes& a) {
        if (!require_session(s)) return;
        stats_.change_sets_in += a.changes.size();
        stats_.facts_in += facts_in(a.changes);
        msg::apply_result reply;
        reply.request_id = a.request_id;
        auto& db = *s.db;
        std::uint64_t first = 0, last = 0;
        try {
            db.applying = true; // the listeners leave the pushes to `forward`
            reply.result = db.rep->apply(a.changes, first, last);
            db.applying = false;
        } catch (const error& e) {
            db.applying = false;
            send_error(s, "APPLY_CHANGES_ERROR", e.what(), false);
            return;
        }
        stats_.applied += reply.result.applied;
        stats_.skipped += reply.result.skipped;
        stats_.conflicts += reply.result.conflicts;
        stats_.rejected += reply.result.rejected.size();
        // The hook hears of every apply (a cluster node publishes what it
        // added); a result waits behind the ones held before it, so they
        // stay in order.
        const bool hold = hooks_.hold_result && hooks_.hold_result(s.database_id, last);
        if (hold || !s.held.empty())
            s.held.emplace_back(last, wire::encode(message{reply}));
        else
            send(s, reply);
        forward(db, s, a.changes, reply.result, first, last);
        changed(db);
    }

    // What one session applied, sent on as it came (encoded once) to every
    // session that had everything up to `first`: the change log from `first`
    // to `last` is exactly these change sets' surviving facts, and the ones
    // that did not survive (duplicates, older values) lose at the receiver
    // too. Rejected change sets stay behind. A session that is behind, or
    // whose queue is full, or that wrote some of them, gets them later by
    // position from the change log.
    void forward(database& db, session& from, std::vector<change_set>& sets, const crdtsync::apply_result& result,
                 std::uint64_t first, std::uint64_t last) {
        if (last == first) return;
        if (!result.rejected.empty())
            std::erase_if(sets, [&](const change_set& cs) {
                return std::any_of(result.rejected.begin(), result.rejected.end(),
                                   [&](const rejection& r) { return r.transaction_id == cs.transaction_id; });
            });
        std::optional<std::string> by_position, plain;
        const auto members = db.members;
        for (auto id : members) {
            auto* t = find(id);
            if (!t || !t->live || t->snap || t->cursor != first) continue;
            if (t->id == from.id) { // the sender has them
                t->cursor = last;
                continue;
            }
            if (t->queued >= opts_.max_queued_bytes) continue;
            if (std::any_of(sets.begin(), sets.end(), [&](const change_set& cs) { return cs.origin == t->peer; })) continue;
            auto& text = t->by_position ? by_position : plain;
            if (!text) {
                msg::push_changes push{sets, std::nullopt};
                if (t->by_position) push.next_position = last;
                text = wire::encode(message{std::move(push)});
            }
            count_out(sets);
            t->queued += text->size();
            stats_.bytes_out += text->size();
            t->cursor = last;
            t->io.send(*text);
        }
    }

    void handle(session& s, msg::get_snapshot&) {
        if (!require_session(s)) return;
        s.live = false;
        s.snap.reset();
        s.snap.emplace(*s.db->rep, s.peer, opts_.snapshot_chunk_entries);
        pump(s);
    }

    void handle(session& s, msg::resume_snapshot& r) {
        if (!require_session(s)) return;
        s.live = false;
        s.snap.reset();
        try {
            s.snap.emplace(*s.db->rep, r.checkpoint, opts_.snapshot_chunk_entries);
        } catch (const error& e) {
            send_error(s, "SNAPSHOT_ERROR", e.what(), false);
            return;
        }
        pump(s);
    }

    void handle(session& s, msg::ping&) { send(s, msg::pong{}); }

    // A server -> client message sent to the server.
    template <class M>
    void handle(session& s, M&) {
        ++stats_.message_errors;
        send_error(s, "UNKNOWN_MESSAGE", "unexpected message type: " + std::string(M::wire_type), false);
    }

    // ---- producing: snapshot chunks, then pushes, while the queue allows

    void pump(session& s) {
        while (!s.closing && s.db && s.queued < opts_.max_queued_bytes) {
            if (s.snap) {
                std::optional<snapshot_chunk> chunk;
                try {
                    chunk = s.snap->next();
                } catch (const error& e) {
                    s.snap.reset();
                    send_error(s, "SNAPSHOT_ERROR", e.what(), false);
                    return;
                }
                if (chunk) {
                    ++stats_.snapshot_chunks;
                    send(s, msg::snapshot_chunk{std::move(*chunk)});
                } else {
                    s.snap.reset();
                    send(s, msg::snapshot_complete{});
                }
                continue;
            }
            auto& rep = *s.db->rep;
            if (!s.live || s.cursor >= rep.position()) return;
            auto d = rep.changes_since(s.peer, s.cursor, opts_.max_facts_per_message);
            if (d.snapshot_required) {
                // Tombstones the client lacks were pruned: it must bootstrap.
                s.live = false;
                if (s.by_position) send(s, msg::changes{{}, std::nullopt, false, true});
                return;
            }
            s.cursor = d.next_position;
            if (d.change_sets.empty()) continue;
            count_out(d.change_sets);
            msg::push_changes push{std::move(d.change_sets), std::nullopt};
            if (s.by_position) push.next_position = d.next_position;
            send(s, push);
        }
    }

    database& database_of(const std::string& id, Replica& rep) {
        auto [it, fresh] = databases_.try_emplace(id);
        auto& db = it->second;
        if (fresh || db.rep != &rep) {
            if (db.rep) {
                db.rep->remove_listener(db.on_local);
                db.rep->remove_listener(db.on_remote);
            }
            db.rep = &rep;
            db.on_local = rep.on_local_change([this, &db](const local_change&) { changed(db); });
            db.on_remote = rep.on_remote_change([this, &db](const remote_change&) { changed(db); });
        }
        return db;
    }

    void changed(database& db) {
        if (db.applying) return;
        const auto members = db.members; // a push may end a session
        for (auto id : members)
            if (auto* s = find(id)) pump(*s);
    }

    hooks hooks_;
    session_options opts_;
    std::unordered_map<connection_id, std::unique_ptr<session>> sessions_;
    std::map<std::string, database, std::less<>> databases_;
    connection_id next_id_ = 0;
    sync_server_stats stats_;
};

CRDTSYNC_END_NAMESPACE
} // namespace crdtsync
