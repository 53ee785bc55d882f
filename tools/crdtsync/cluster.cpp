// crdtsync serve --cluster: the NATS JetStream link (cluster.hpp explains
// the shape; docs/cluster.md the rules). The only translation unit that
// includes the NATS client.

#include "cluster.hpp"

#include <crdtsync/snapshot_loader.hpp>
#include <crdtsync/snapshot_writer.hpp>
#include <crdtsync/wire/json.hpp>

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

namespace crdtsync_cli {

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* stream_prefix = "CRDTSYNC_";
constexpr const char* subject_prefix = "crdtsync.db.";
constexpr const char* snapshot_bucket = "crdtsync-snapshots";
/// Facts per published message (a client batch larger than this goes as several).
constexpr std::size_t facts_per_message = 1000;
/// Messages a consumer fetches at once.
constexpr int fetch_batch = 256;
/// How long an unacknowledged message waits before JetStream delivers it again
/// (a re-subscribe recreates the consumer at the replica's position anyway).
constexpr auto ack_wait = 30s;

std::string status_text(natsStatus s) {
    std::string t = natsStatus_GetText(s);
    const char* last = nats_GetLastError(nullptr);
    if (last && *last && t.find(last) == std::string::npos) t += std::string(" (") + last + ")";
    return t;
}

/// A database id ([A-Za-z0-9._-], checked by serve) as a stream name and
/// subject token ([A-Za-z0-9_-]): '_' -> "__", '.' -> "_d". Reversible.
std::string encode_id(std::string_view id) {
    std::string out;
    for (char c : id) {
        if (c == '_') out += "__";
        else if (c == '.') out += "_d";
        else out += c;
    }
    return out;
}
std::optional<std::string> decode_id(std::string_view enc) {
    std::string out;
    for (std::size_t i = 0; i < enc.size(); ++i) {
        if (enc[i] != '_') {
            out += enc[i];
            continue;
        }
        if (++i == enc.size()) return std::nullopt;
        if (enc[i] == '_') out += '_';
        else if (enc[i] == 'd') out += '.';
        else return std::nullopt;
    }
    return out;
}

/// The fixed site the stream stands for in each node's peer table: its
/// received_up_to is the stream sequence merged up to, its sent_up_to the
/// node's own position published up to. Derived from the stream's name, so
/// it is the same on every node and never a real replica's id.
crdtsync::site_id cluster_site_of(std::string_view stream) {
    std::uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0x84222325cbf29ce4ull;
    for (char c : std::string("crdtsync-cluster:") + std::string(stream)) {
        h1 = (h1 ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
        h2 = (h2 ^ static_cast<unsigned char>(c)) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
    }
    std::string raw(16, '\0');
    for (int i = 0; i < 8; ++i) {
        raw[static_cast<std::size_t>(i)] = static_cast<char>(h1 >> (8 * i));
        raw[static_cast<std::size_t>(8 + i)] = static_cast<char>(h2 >> (8 * i));
    }
    raw[6] = static_cast<char>((raw[6] & 0x0f) | 0x80); // version 8 (custom), variant 10: never a generated v4 id
    raw[8] = static_cast<char>((raw[8] & 0x3f) | 0x80);
    return crdtsync::site_id::from_bytes(raw);
}

/// One job queue on one thread: the publisher (publishes, stream and
/// snapshot calls), so each database's messages leave in order.
class worker {
public:
    worker() : thread_([this] { run(); }) {}
    ~worker() { stop(); }
    void post(std::function<void()> f) {
        {
            std::lock_guard lock(m_);
            if (stopping_) return;
            jobs_.push_back(std::move(f));
        }
        cv_.notify_one();
    }
    void stop() {
        {
            std::lock_guard lock(m_);
            if (stopping_ && !thread_.joinable()) return;
            stopping_ = true;
            jobs_.clear();
        }
        cv_.notify_one();
        if (thread_.joinable()) thread_.join();
    }

private:
    void run() {
        for (;;) {
            std::function<void()> f;
            {
                std::unique_lock lock(m_);
                cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
                if (stopping_) return;
                f = std::move(jobs_.front());
                jobs_.pop_front();
            }
            f();
        }
    }
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::thread thread_;
};

/// A fetched stream message, as the server's thread merges it (the NATS
/// message itself stays with the consumer thread, which acknowledges it).
struct fetched {
    std::uint64_t seq = 0;     ///< its stream sequence (0: no JetStream metadata)
    std::uint64_t pending = 0; ///< messages after it for this consumer
    std::string data;
};

struct snapshot_head {
    std::string gen;
    std::uint64_t chunks = 0;
    std::uint64_t stream_seq = 0;
    std::string node;
};

} // namespace

std::vector<std::string> parse_cluster_servers(const std::string& text) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at <= text.size()) {
        auto comma = text.find(',', at);
        if (comma == std::string::npos) comma = text.size();
        auto url = text.substr(at, comma - at);
        at = comma + 1;
        if (url.empty()) continue;
        if (url.rfind("nats://", 0) != 0)
            fail(exit_code::usage, "--cluster '" + text + "': '" + url + "' is not a nats://HOST:PORT URL");
        const auto hostport = url.substr(7);
        const auto colon = hostport.rfind(':');
        if (hostport.empty() || colon == 0 || (colon != std::string::npos && (colon + 1 == hostport.size() ||
                                                                           hostport.find_first_not_of("0123456789", colon + 1) != std::string::npos)))
            fail(exit_code::usage, "--cluster '" + text + "': '" + url + "' is not a nats://HOST:PORT URL");
        out.push_back(url);
    }
    if (out.empty()) fail(exit_code::usage, "--cluster needs at least one nats://HOST:PORT URL");
    return out;
}

struct cluster_node::impl {
    enum class phase { preparing, bootstrapping, live, waiting };
    static const char* phase_name(phase p) {
        switch (p) {
        case phase::preparing: return "preparing";
        case phase::bootstrapping: return "bootstrapping";
        case phase::live: return "live";
        case phase::waiting: return "waiting";
        }
        return "?";
    }

    struct outgoing {
        std::uint64_t last = 0; // this node's position the message covers up to
        std::string payload;    // the change sets, as the wire writes them
        std::size_t facts = 0;
        std::string msg_id;     // Nats-Msg-Id: unique per message (a retry reuses it)
    };

    // One database's link. Fields without a comment belong to the server's
    // thread.
    struct link {
        std::string id, enc, stream, subject, durable;
        replica_t* rep = nullptr;
        std::string rep_site; // the replica's site id as text (read by the other threads)
        crdtsync::site_id csite;
        phase ph = phase::preparing;
        std::string why; // what the node waits for, in `waiting`
        clock_type::time_point retry_at{};
        bool preparing = false;          // a prepare job is out
        bool stream_ready = false;       // the stream exists (publishing may start)
        std::uint64_t known = 0;         // the replica's position after the last change this thread saw
        std::deque<outgoing> out;        // accepted here, not yet acknowledged by the stream
        bool publishing = false;         // out.front() is with the publisher
        clock_type::time_point publish_retry_at{};
        std::uint64_t published = 0;     // sent_up_to in memory; persisted on tick
        bool published_dirty = false;
        std::uint64_t received = 0;      // the stream sequence merged up to
        std::uint64_t stream_last = 0;   // the last sequence the stream is known to hold
        std::deque<std::pair<std::uint64_t, clock_type::time_point>> holds;
        // the consumer thread
        std::thread consumer;
        std::shared_ptr<std::atomic<bool>> consumer_stop;
        // snapshots
        bool snapshot_out = false;
        std::uint64_t snapshot_seq = 0;  // the stream sequence of the last snapshot published here
        clock_type::time_point snapshot_at{};
        std::string snapshot_gen;
        // counters
        std::uint64_t published_msgs = 0, published_facts = 0, publish_errors = 0;
        std::uint64_t consumed_msgs = 0, consumed_facts = 0, applied_facts = 0, bad_msgs = 0, rejected_sets = 0;
        std::uint64_t local_acks = 0, bootstraps = 0, snapshots_published = 0, oversized = 0;
        std::uint64_t queued_msgs = 0; // numbers the message ids
        std::string last_error;
    };

    cluster_options opts;
    host h;
    natsOptions* nopts = nullptr;
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    kvStore* kv = nullptr; // the admin thread's
    std::map<std::string, std::shared_ptr<link>, std::less<>> links;
    std::unique_ptr<worker> pub; // publishes, in order; nothing else, so nothing slow delays a client's result
    std::unique_ptr<worker> adm; // streams, snapshots (the KV bucket), discovery
    const std::string nonce = crdtsync::site_id::generate().to_text().substr(0, 8);
    std::atomic<bool> connected{false};
    std::atomic<std::uint64_t> connections{0}; // times the link (re)connected, counted by NATS's callbacks
    std::atomic<bool> stopped{false};
    bool was_connected = false;
    clock_type::time_point discover_at{};
    bool discovering = false;

    impl(cluster_options o, host hh) : opts(std::move(o)), h(std::move(hh)) {
        if (opts.replicas < 1 || opts.replicas > 5) fail(exit_code::usage, "--cluster-replicas must be 1 to 5 (JetStream's limit)");
        if (opts.max_age_seconds > 0 && opts.snapshot_interval_seconds * 2 > opts.max_age_seconds)
            fail(exit_code::usage, "--cluster-snapshot-interval must be at most half of --cluster-max-age: a node that fell "
                                   "behind the stream's retention bootstraps from a snapshot, which must still be newer than "
                                   "the oldest message the stream keeps");
        std::vector<const char*> urls;
        for (const auto& s : opts.servers) urls.push_back(s.c_str());
        auto check = [](natsStatus s, const char* what) {
            if (s != NATS_OK) fail(exit_code::failure, std::string("NATS: ") + what + ": " + status_text(s));
        };
        check(natsOptions_Create(&nopts), "options");
        check(natsOptions_SetServers(nopts, urls.data(), static_cast<int>(urls.size())), "servers");
        check(natsOptions_SetMaxReconnect(nopts, -1), "reconnect");
        check(natsOptions_SetReconnectWait(nopts, 250), "reconnect wait");
        check(natsOptions_SetTimeout(nopts, 2000), "timeout");
        check(natsOptions_SetRetryOnFailedConnect(nopts, true, &impl::on_connected, this), "retry");
        check(natsOptions_SetDisconnectedCB(nopts, &impl::on_disconnected, this), "disconnected callback");
        check(natsOptions_SetReconnectedCB(nopts, &impl::on_connected, this), "reconnected callback");
        const auto s = natsConnection_Connect(&nc, nopts);
        if (s == NATS_OK) {
            connected = true;
            ++connections;
        } else if (s == NATS_NOT_YET_CONNECTED) {
            spdlog::error("cluster: cannot reach NATS at {} yet; serving this node's clients and retrying (what they write "
                          "is acknowledged by this node alone until NATS answers, then published)",
                          join(opts.servers));
        } else {
            fail(exit_code::unreachable, "cluster: cannot connect to NATS at " + join(opts.servers) + ": " + status_text(s));
        }
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 2000;
        check(natsConnection_JetStream(&js, nc, &jo), "JetStream context");
        pub = std::make_unique<worker>();
        adm = std::make_unique<worker>();
        if (connected) spdlog::info("cluster: connected to NATS at {}", join(opts.servers));
        was_connected = connected;
    }

    ~impl() { stop(); }

    static std::string join(const std::vector<std::string>& v) {
        std::string out;
        for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
        return out;
    }

    static void on_connected(natsConnection*, void* self) {
        auto* me = static_cast<impl*>(self);
        if (!me->connected.exchange(true)) ++me->connections;
    }
    static void on_disconnected(natsConnection*, void* self) { static_cast<impl*>(self)->connected = false; }

    void stop() {
        if (stopped.exchange(true)) return;
        for (auto& [id, l] : links) stop_consumer(*l);
        if (pub) pub->stop();
        if (adm) adm->stop();
        for (auto& [id, l] : links) persist_published(*l);
        if (kv) kvStore_Destroy(kv);
        kv = nullptr;
        if (js) jsCtx_Destroy(js);
        js = nullptr;
        if (nc) {
            natsConnection_Close(nc);
            natsConnection_Destroy(nc);
        }
        nc = nullptr;
        if (nopts) natsOptions_Destroy(nopts);
        nopts = nullptr;
        // The client library's own threads (its callbacks reach this
        // object) end before it goes; one cluster link per process.
        (void)nats_CloseAndWait(2000);
    }

    // Posts `f` to the server's thread unless the node stopped meanwhile.
    void to_server(std::function<void()> f) {
        h.post([this, f = std::move(f)] {
            if (!stopped) f();
        });
    }

    // ------------------------------------------------------------ databases

    void opened(const std::string& id, replica_t& rep) {
        if (links.count(id)) return;
        auto l = std::make_shared<link>();
        l->id = id;
        l->enc = encode_id(id);
        l->stream = stream_prefix + l->enc;
        l->subject = subject_prefix + l->enc;
        l->rep = &rep;
        l->csite = cluster_site_of(l->stream);
        l->rep_site = rep.site_id().to_text();
        l->durable = "node-" + l->rep_site;
        const auto ps = rep.peer(l->csite);
        l->received = ps.received_up_to;
        l->published = ps.sent_up_to;
        l->known = rep.position();
        // What this node accepted but had not seen acknowledged before it
        // stopped goes again (duplicates are skipped by every merge).
        queue_range(*l, l->published, l->known);
        links.emplace(id, l);
        spdlog::info("cluster: database {} on stream {} (merged up to sequence {}, published up to position {} of {})", id,
                     l->stream, l->received, l->published, l->known);
        prepare(l);
    }

    // Reads what the replica holds after `from` (up to `to`) into messages.
    void queue_range(link& l, std::uint64_t from, std::uint64_t to) {
        while (from < to) {
            auto d = l.rep->changes_since(l.csite, from, facts_per_message);
            if (d.next_position <= from) break;
            from = d.next_position;
            if (d.change_sets.empty()) {
                if (l.out.empty() && l.published < from) {
                    l.published = from;
                    l.published_dirty = true;
                }
                continue;
            }
            split_into(l, d.change_sets, from);
        }
    }

    // Queues change sets as messages that fit NATS's max_payload: halves
    // until each fits. The last message carries the position `last`; the
    // others that of the one before it, so a position is published only
    // with all it covers. A single change set too large for NATS cannot
    // travel: it is reported, counted and left out (this node keeps it).
    void split_into(link& l, std::span<const crdtsync::change_set> sets, std::uint64_t last) {
        auto payload = crdtsync::wire::encode_change_sets(sets);
        const auto limit = max_payload();
        if (payload.size() > limit && sets.size() > 1) {
            const auto half = sets.size() / 2;
            split_into(l, sets.first(half), l.out.empty() ? l.published : l.out.back().last);
            split_into(l, sets.subspan(half), last);
            return;
        }
        if (payload.size() > limit) {
            ++l.oversized;
            ++l.publish_errors;
            l.last_error = "a change set of " + std::to_string(payload.size()) + " bytes is larger than NATS's max_payload (" +
                           std::to_string(limit) + "): other nodes do not get it through the stream";
            spdlog::error("cluster: database {}: {}", l.id, l.last_error);
            return;
        }
        outgoing o;
        o.last = last;
        for (const auto& cs : sets) o.facts += cs.changes.size() + cs.migrations.size();
        o.payload = std::move(payload);
        // The process's random nonce and a counter: a retry of this message
        // is dropped by JetStream as a duplicate, no other message ever is
        // (split messages share their position, a restart regroups).
        o.msg_id = l.rep_site + "-" + nonce + "-" + std::to_string(++l.queued_msgs);
        l.out.push_back(std::move(o));
    }
    std::size_t max_payload() const {
        const auto n = nc ? natsConnection_GetMaxPayload(nc) : 0;
        // Headers and the message id travel in the same frame.
        return static_cast<std::size_t>(n > 0 ? n : 1 << 20) - 1024;
    }

    // Creates or finds the stream, reads the newest snapshot's head, and
    // decides where the node continues (on the admin thread, then here).
    void prepare(const std::shared_ptr<link>& l) {
        if (l->preparing || stopped) return;
        l->preparing = true;
        l->ph = phase::preparing;
        adm->post([this, l] {
            std::uint64_t first = 0, last = 0;
            std::optional<snapshot_head> head;
            std::string error;
            if (!connected) {
                error = "NATS is not reachable";
            } else {
                error = ensure_stream(*l, first, last);
                if (error.empty()) head = read_head(*l);
            }
            to_server([this, l, first, last, head, error] {
                l->preparing = false;
                if (!error.empty()) return wait(*l, error, 1s);
                decide(l, first, last, head);
            });
        });
    }

    // The admin thread.
    std::string ensure_stream(link& l, std::uint64_t& first, std::uint64_t& last) {
        jsStreamInfo* si = nullptr;
        jsErrCode je = static_cast<jsErrCode>(0);
        auto s = js_GetStreamInfo(&si, js, l.stream.c_str(), nullptr, &je);
        if (s == NATS_NOT_FOUND) {
            jsStreamConfig cfg;
            jsStreamConfig_Init(&cfg);
            const char* subjects[] = {l.subject.c_str()};
            cfg.Name = l.stream.c_str();
            cfg.Subjects = subjects;
            cfg.SubjectsLen = 1;
            cfg.Storage = js_FileStorage;
            cfg.Replicas = opts.replicas;
            cfg.Retention = js_LimitsPolicy;
            cfg.Discard = js_DiscardOld;
            if (opts.max_age_seconds > 0) cfg.MaxAge = static_cast<int64_t>(opts.max_age_seconds * 1e9);
            if (opts.max_msgs > 0) cfg.MaxMsgs = opts.max_msgs;
            s = js_AddStream(&si, js, &cfg, nullptr, &je);
            if (s == NATS_OK) spdlog::info("cluster: created stream {} (subject {}, {} replica(s))", l.stream, l.subject, opts.replicas);
        }
        if (s != NATS_OK) {
            if (si) jsStreamInfo_Destroy(si);
            return "cannot create or read the stream " + l.stream + ": " + status_text(s) +
                   (je ? " (JetStream error " + std::to_string(static_cast<int>(je)) + ")" : std::string());
        }
        first = si->State.FirstSeq;
        last = si->State.LastSeq;
        jsStreamInfo_Destroy(si);
        return {};
    }

    // The admin thread: the bucket, created on first use.
    bool open_bucket(std::string& error) {
        if (kv) return true;
        auto s = js_KeyValue(&kv, js, snapshot_bucket);
        if (s == NATS_NOT_FOUND) {
            kvConfig cfg;
            kvConfig_Init(&cfg);
            cfg.Bucket = snapshot_bucket;
            cfg.History = 1;
            cfg.Replicas = opts.replicas;
            cfg.StorageType = js_FileStorage;
            s = js_CreateKeyValue(&kv, js, &cfg);
        }
        if (s != NATS_OK) {
            kv = nullptr;
            error = std::string("cannot open the snapshot bucket ") + snapshot_bucket + ": " + status_text(s);
            return false;
        }
        return true;
    }

    // The admin thread.
    std::optional<snapshot_head> read_head(link& l) {
        std::string error;
        if (!open_bucket(error)) return std::nullopt;
        kvEntry* e = nullptr;
        if (kvStore_Get(&e, kv, (l.enc + ".head").c_str()) != NATS_OK) return std::nullopt;
        std::optional<snapshot_head> out;
        try {
            const auto j = nlohmann::json::parse(std::string_view(static_cast<const char*>(kvEntry_Value(e)),
                                                                  static_cast<std::size_t>(kvEntry_ValueLen(e))));
            out = snapshot_head{j.at("gen").get<std::string>(), j.at("chunks").get<std::uint64_t>(),
                                j.at("streamSeq").get<std::uint64_t>(), j.value("node", std::string())};
        } catch (const std::exception& ex) {
            spdlog::warn("cluster: the snapshot head of {} does not parse ({}); ignored", l.id, ex.what());
        }
        kvEntry_Destroy(e);
        return out;
    }

    void wait(link& l, const std::string& why, clock_type::duration retry) {
        if (l.why != why) spdlog::warn("cluster: database {}: {}; retrying", l.id, why); // once per reason
        l.ph = phase::waiting;
        l.why = why;
        l.last_error = why;
        l.retry_at = clock_type::now() + retry;
    }

    // Where the node continues: from the stream position it merged up to,
    // or from a snapshot when it is new (faster than the whole stream) or
    // when the stream no longer holds what it needs (retention).
    void decide(const std::shared_ptr<link>& l, std::uint64_t first, std::uint64_t last, std::optional<snapshot_head> head) {
        l->stream_last = last;
        l->stream_ready = true;
        pump(l);
        const bool stream_has_next = last == 0 || first <= l->received + 1;
        const bool usable_head = head && head->node != l->rep_site && head->stream_seq + 1 >= first &&
                                 head->stream_seq > l->received;
        if (l->received == 0 && usable_head && head->stream_seq > 0) return bootstrap(l, *head);
        if (stream_has_next) return consume(l, l->received + 1);
        if (usable_head) {
            spdlog::warn("cluster: database {}: the stream now starts at sequence {} but this node merged only up to {} "
                         "(the stream's retention dropped the rest): bootstrapping from the snapshot at sequence {}",
                         l->id, first, l->received, head->stream_seq);
            return bootstrap(l, *head);
        }
        wait(*l,
             "cannot continue: the stream starts at sequence " + std::to_string(first) + ", this node merged up to " +
                 std::to_string(l->received) + ", and no snapshot published by another node is recent enough",
             5s);
    }

    void bootstrap(const std::shared_ptr<link>& l, snapshot_head head) {
        l->ph = phase::bootstrapping;
        adm->post([this, l, head] {
            std::vector<std::string> chunks;
            std::string error;
            for (std::uint64_t i = 0; i < head.chunks && error.empty(); ++i) {
                kvEntry* e = nullptr;
                const auto key = l->enc + "." + head.gen + "." + std::to_string(i);
                const auto s = kvStore_Get(&e, kv, key.c_str());
                if (s != NATS_OK) {
                    error = "snapshot chunk " + key + ": " + status_text(s);
                    break;
                }
                chunks.emplace_back(static_cast<const char*>(kvEntry_Value(e)), static_cast<std::size_t>(kvEntry_ValueLen(e)));
                kvEntry_Destroy(e);
            }
            to_server([this, l, head, chunks = std::move(chunks), error] {
                if (!error.empty()) return wait(*l, "cannot read the snapshot (" + error + ")", 2s);
                load(l, head, chunks);
            });
        });
    }

    void load(const std::shared_ptr<link>& l, const snapshot_head& head, const std::vector<std::string>& chunks) {
        auto& rep = *l->rep;
        // Nothing of this node's own waits to be published: what the load
        // adds is in the stream already.
        const bool fresh = rep.position() == 0 || (l->out.empty() && l->published == l->known);
        try {
            crdtsync::snapshot_loader<replica_t> loader(rep);
            for (const auto& c : chunks) loader.push(crdtsync::wire::decode<crdtsync::snapshot_chunk>(c));
            if (!loader.done()) throw std::runtime_error("the snapshot ended before its footer");
            rep.set_peer_received(l->csite, head.stream_seq);
            if (fresh) rep.set_peer_sent(l->csite, rep.position());
        } catch (const std::exception& e) {
            return wait(*l, std::string("the snapshot of node ") + head.node + " did not load: " + e.what(), 5s);
        }
        l->received = head.stream_seq;
        if (fresh) l->published = rep.position();
        l->known = rep.position();
        ++l->bootstraps;
        spdlog::info("cluster: database {}: loaded the snapshot of node {} ({} chunks, stream sequence {}); continuing from "
                     "the stream",
                     l->id, head.node, chunks.size(), head.stream_seq);
        consume(l, l->received + 1);
    }

    // ------------------------------------------------------------ consuming

    void stop_consumer(link& l) {
        if (l.consumer_stop) *l.consumer_stop = true;
        if (l.consumer.joinable()) l.consumer.join();
        l.consumer_stop.reset();
    }

    void consume(const std::shared_ptr<link>& l, std::uint64_t start) {
        stop_consumer(*l);
        l->ph = phase::live;
        l->why.clear();
        l->last_error.clear();
        auto stop_flag = std::make_shared<std::atomic<bool>>(false);
        l->consumer_stop = stop_flag;
        l->consumer = std::thread([this, l, start, stop_flag] { consumer_loop(l, start, stop_flag); });
    }

    // The consumer thread: the node's durable pull consumer of the stream,
    // (re)created at the replica's own position `start` each time it
    // subscribes. The replica's position is the truth (it is written with
    // the merge); a consumer left from before could deliver new messages
    // ahead of the unacknowledged ones it redelivers, which would look like
    // a gap.
    natsSubscription* subscribe(link& l, std::uint64_t start, std::string& error) {
        jsConsumerInfo* ci = nullptr;
        jsErrCode je = static_cast<jsErrCode>(0);
        (void)js_DeleteConsumer(js, l.stream.c_str(), l.durable.c_str(), nullptr, &je); // gone already is fine
        natsStatus s = NATS_OK;
        {
            jsConsumerConfig cc;
            jsConsumerConfig_Init(&cc);
            cc.Durable = l.durable.c_str();
            cc.AckPolicy = js_AckExplicit;
            cc.AckWait = std::chrono::duration_cast<std::chrono::nanoseconds>(ack_wait).count();
            cc.FilterSubject = l.subject.c_str();
            cc.MaxAckPending = 4 * fetch_batch;
            cc.DeliverPolicy = js_DeliverByStartSequence;
            cc.OptStartSeq = std::max<std::uint64_t>(start, 1);
            s = js_AddConsumer(&ci, js, l.stream.c_str(), &cc, nullptr, &je);
            if (ci) jsConsumerInfo_Destroy(ci);
        }
        if (s != NATS_OK) {
            error = "cannot create the durable consumer " + l.durable + ": " + status_text(s);
            return nullptr;
        }
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = l.stream.c_str();
        so.Consumer = l.durable.c_str();
        natsSubscription* sub = nullptr;
        s = js_PullSubscribe(&sub, js, l.subject.c_str(), l.durable.c_str(), nullptr, &so, &je);
        if (s != NATS_OK) {
            error = "cannot bind the durable consumer " + l.durable + ": " + status_text(s);
            return nullptr;
        }
        return sub;
    }

    void consumer_loop(std::shared_ptr<link> l, std::uint64_t start, std::shared_ptr<std::atomic<bool>> stop_flag) {
        natsSubscription* sub = nullptr;
        std::string reported;
        while (!*stop_flag) {
            if (!sub) {
                std::string error;
                if (connected) sub = subscribe(*l, start, error);
                else error = "NATS is not reachable";
                if (!sub) {
                    if (error != reported) to_server([l, error] { l->last_error = error; });
                    reported = error;
                    std::this_thread::sleep_for(500ms);
                    continue;
                }
                reported.clear();
            }
            natsMsgList list{nullptr, 0};
            jsErrCode je = static_cast<jsErrCode>(0);
            const auto s = natsSubscription_Fetch(&list, sub, fetch_batch, 500, &je);
            if (s == NATS_TIMEOUT) {
                to_server([l] {
                    if (l->ph == phase::live) l->stream_last = l->received; // caught up: nothing pending
                });
                continue;
            }
            if (s != NATS_OK) {
                natsMsgList_Destroy(&list);
                if (!connected || s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION || s == NATS_NOT_FOUND) {
                    natsSubscription_Destroy(sub);
                    sub = nullptr;
                }
                std::this_thread::sleep_for(200ms);
                continue;
            }
            // The batch is merged on the server's thread; this thread waits
            // (bounded memory: one batch at a time per database), then
            // acknowledges what was merged and frees the messages itself, so
            // none outlives the NATS library at a shutdown.
            auto batch = std::make_shared<std::vector<fetched>>();
            for (int i = 0; i < list.Count; ++i) {
                fetched f;
                jsMsgMetaData* meta = nullptr;
                if (natsMsg_GetMetaData(&meta, list.Msgs[i]) == NATS_OK) {
                    f.seq = meta->Sequence.Stream;
                    f.pending = meta->NumPending;
                    jsMsgMetaData_Destroy(meta);
                }
                f.data.assign(natsMsg_GetData(list.Msgs[i]), static_cast<std::size_t>(natsMsg_GetDataLength(list.Msgs[i])));
                batch->push_back(std::move(f));
            }
            // The answer: how many of the batch were merged (or were known),
            // the stream sequence merged up to, and whether to go on (not
            // after a gap: the node re-bootstraps).
            struct answer {
                std::size_t acks = 0;
                std::uint64_t upto = 0;
                bool keep = false;
            };
            auto done = std::make_shared<std::promise<answer>>();
            auto fut = done->get_future();
            h.post([this, l, batch, done] {
                answer r;
                if (!stopped) {
                    bool gap = false;
                    r.acks = merge(l, *batch, gap);
                    r.upto = l->received;
                    r.keep = !gap;
                }
                done->set_value(r);
            });
            answer merged;
            for (;;) {
                if (fut.wait_for(100ms) == std::future_status::ready) {
                    merged = fut.get();
                    break;
                }
                if (*stop_flag || stopped) break;
            }
            for (std::size_t i = 0; i < merged.acks && i < static_cast<std::size_t>(list.Count); ++i)
                (void)natsMsg_Ack(list.Msgs[i], nullptr);
            const bool failed = merged.keep && merged.acks < static_cast<std::size_t>(list.Count);
            natsMsgList_Destroy(&list);
            if (!merged.keep) break;
            start = merged.upto + 1; // where a re-subscribe continues
            // A merge that failed (the store): subscribe again from the
            // replica's position, so the rest comes again in order.
            if (failed) {
                natsSubscription_Unsubscribe(sub);
                natsSubscription_Destroy(sub);
                sub = nullptr;
                std::this_thread::sleep_for(500ms);
            }
        }
        if (sub) {
            natsSubscription_Unsubscribe(sub); // the durable consumer stays
            natsSubscription_Destroy(sub);
        }
    }

    // The server's thread: merges a fetched batch in stream order, in one
    // transaction (one flush for up to `fetch_batch` messages) together with
    // the stream position; returns how many messages (from the first) are
    // merged or were merged before, which the consumer thread then
    // acknowledges. `gap`: the stream skipped messages (retention).
    std::size_t merge(const std::shared_ptr<link>& l, const std::vector<fetched>& batch, bool& gap) {
        auto& rep = *l->rep;
        std::size_t done = 0;    // messages merged and committed
        std::size_t waiting = 0; // messages in `d`, committed by `commit`
        crdtsync::delta d;
        std::uint64_t upto = l->received;
        auto commit = [&]() -> bool {
            if (waiting == 0) return true;
            if (upto == l->received) { // only redeliveries: nothing to write
                done += waiting;
                waiting = 0;
                return true;
            }
            d.next_position = upto;
            const bool nothing_pending = l->out.empty() && l->published == l->known;
            try {
                const auto r = rep.apply_from(l->csite, d);
                l->applied_facts += r.applied;
                if (!r.rejected.empty()) {
                    l->rejected_sets += r.rejected.size();
                    spdlog::warn("cluster: database {}: stream messages up to {}: {} change set(s) refused here ({})", l->id,
                                 upto, r.rejected.size(), r.rejected.front().reason);
                    rep.set_peer_received(l->csite, upto);
                }
            } catch (const crdtsync::error& e) {
                // A store failure: the messages are not acknowledged and come again.
                spdlog::error("cluster: database {}: cannot merge stream messages up to {}: {}", l->id, upto, e.message());
                l->last_error = e.message();
                return false;
            }
            // What the merge added is in the stream already: when nothing of
            // this node's own was waiting, apply_from marked it published.
            l->known = rep.position();
            if (nothing_pending) l->published = l->known;
            l->received = upto;
            done += waiting;
            waiting = 0;
            d.change_sets.clear();
            return true;
        };
        for (const auto& m : batch) {
            const auto seq = m.seq;
            if (seq != 0) l->stream_last = std::max(l->stream_last, seq + m.pending);
            if (seq == 0 || seq <= upto) { // not a JetStream message, or merged before (a redelivery)
                ++waiting;
                continue;
            }
            if (seq > upto + 1) {
                // The stream dropped messages this node had not merged.
                if (!commit()) return done;
                spdlog::warn("cluster: database {}: the stream skipped from sequence {} to {} (retention): re-bootstrapping",
                             l->id, upto, seq);
                gap = true;
                auto self = l;
                to_server([this, self] {
                    stop_consumer(*self);
                    prepare(self);
                });
                return done;
            }
            ++l->consumed_msgs;
            ++waiting;
            upto = seq;
            try {
                auto sets = crdtsync::wire::decode_change_sets(m.data);
                for (auto& cs : sets) {
                    l->consumed_facts += cs.changes.size() + cs.migrations.size();
                    d.change_sets.push_back(std::move(cs));
                }
            } catch (const crdtsync::error& e) {
                ++l->bad_msgs;
                spdlog::error("cluster: database {}: stream message {} does not decode ({}); skipped", l->id, seq, e.message());
            }
        }
        (void)commit();
        return done;
    }

    // ------------------------------------------------------------ publishing

    bool hold(std::string_view id, std::uint64_t last) {
        auto it = links.find(id);
        if (it == links.end()) return false;
        auto& l = *it->second;
        if (last > l.known) {
            queue_range(l, l.known, last);
            l.known = last;
        }
        pump(it->second);
        if (!connected || last <= l.published) {
            if (last > l.published) ++l.local_acks;
            return false;
        }
        l.holds.emplace_back(last, clock_type::now());
        return true;
    }

    void pump(const std::shared_ptr<link>& l) {
        if (l->publishing || l->out.empty() || !connected || stopped) return;
        if (!l->stream_ready) return; // the stream may not exist yet
        if (clock_type::now() < l->publish_retry_at) return;
        l->publishing = true;
        const auto last = l->out.front().last;
        auto payload = l->out.front().payload; // copies: the queue stays this thread's
        auto msg_id = l->out.front().msg_id;
        pub->post([this, l, last, payload = std::move(payload), msg_id = std::move(msg_id)] {
            natsMsg* m = nullptr;
            auto s = natsMsg_Create(&m, l->subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size()));
            // The message id lets JetStream drop a retry of a publish whose
            // acknowledgement was lost (its duplicate window).
            if (s == NATS_OK) s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id.c_str());
            jsPubAck* ack = nullptr;
            jsErrCode je = static_cast<jsErrCode>(0);
            if (s == NATS_OK) s = js_PublishMsg(&ack, js, m, nullptr, &je);
            std::uint64_t seq = ack ? ack->Sequence : 0;
            const bool duplicate = ack && ack->Duplicate;
            if (ack) jsPubAck_Destroy(ack);
            if (m) natsMsg_Destroy(m);
            std::string error = s == NATS_OK ? std::string() : status_text(s);
            if (duplicate) // a retry whose first try was stored (ids are never reused)
                spdlog::debug("cluster: database {}: message {} was already in the stream (sequence {})", l->id, msg_id, seq);
            to_server([this, l, last, seq, error] { published(l, last, seq, error); });
        });
    }

    void published(const std::shared_ptr<link>& l, std::uint64_t last, std::uint64_t seq, const std::string& error) {
        l->publishing = false;
        if (!error.empty()) {
            ++l->publish_errors;
            if (l->last_error != "publish: " + error) spdlog::warn("cluster: database {}: publishing failed: {}; retrying", l->id, error);
            l->last_error = "publish: " + error;
            l->publish_retry_at = clock_type::now() + 250ms;
            return;
        }
        if (l->out.empty() || l->out.front().last != last) return; // cannot happen: one in flight per database
        ++l->published_msgs;
        if (l->last_error.rfind("publish: ", 0) == 0) l->last_error.clear(); // it went through now
        l->published_facts += l->out.front().facts;
        l->out.pop_front();
        l->stream_last = std::max(l->stream_last, seq);
        // Everything up to the next queued message is published or came
        // from the stream; with nothing queued, everything this node holds.
        const auto upto = l->out.empty() ? l->known : last;
        if (upto > l->published) {
            l->published = upto;
            l->published_dirty = true;
        }
        while (!l->holds.empty() && l->holds.front().first <= l->published) l->holds.pop_front();
        h.release(l->id, l->published);
        pump(l);
    }

    void persist_published(link& l) {
        if (!l.published_dirty) return;
        try {
            l.rep->acknowledge(l.csite, l.published);
            l.published_dirty = false;
        } catch (const crdtsync::error& e) {
            spdlog::error("cluster: database {}: cannot record the published position: {}", l.id, e.message());
        }
    }

    // ------------------------------------------------------------ snapshots

    void maybe_snapshot(const std::shared_ptr<link>& l) {
        const auto now = clock_type::now();
        if (l->snapshot_out || l->ph != phase::live || !connected) return;
        if (l->received <= l->snapshot_seq || l->stream_last > l->received) return; // nothing new, or still catching up
        if (now - l->snapshot_at < std::chrono::duration<double>(opts.snapshot_interval_seconds)) return;
        l->snapshot_at = now;
        std::vector<std::string> chunks;
        std::string gen;
        try {
            crdtsync::snapshot_writer<replica_t> w(*l->rep, opts.snapshot_chunk_entries);
            gen = w.header().snapshot_id;
            while (auto c = w.next()) chunks.push_back(crdtsync::wire::encode(*c));
        } catch (const crdtsync::error& e) {
            spdlog::error("cluster: database {}: cannot write a snapshot: {}", l->id, e.message());
            return;
        }
        l->snapshot_out = true;
        const auto seq = l->received;
        const auto old_gen = l->snapshot_gen;
        adm->post([this, l, chunks = std::move(chunks), gen, seq, old_gen] {
            std::string error;
            if (open_bucket(error)) {
                for (std::size_t i = 0; i < chunks.size() && error.empty(); ++i) {
                    const auto key = l->enc + "." + gen + "." + std::to_string(i);
                    const auto s = kvStore_Put(nullptr, kv, key.c_str(), chunks[i].data(), static_cast<int>(chunks[i].size()));
                    if (s != NATS_OK) error = "chunk " + std::to_string(i) + " (" + std::to_string(chunks[i].size()) + " bytes): " + status_text(s);
                }
                if (error.empty()) {
                    const auto head = nlohmann::json{{"gen", gen},
                                                     {"chunks", chunks.size()},
                                                     {"streamSeq", seq},
                                                     {"node", l->rep_site}}
                                          .dump();
                    const auto s = kvStore_Put(nullptr, kv, (l->enc + ".head").c_str(), head.data(), static_cast<int>(head.size()));
                    if (s != NATS_OK) error = "head: " + status_text(s);
                }
                // The previous snapshot of this node goes (a node reading it
                // now fails and reads the new head instead).
                if (error.empty() && !old_gen.empty())
                    for (std::uint64_t i = 0;; ++i) {
                        const auto key = l->enc + "." + old_gen + "." + std::to_string(i);
                        kvEntry* e = nullptr;
                        if (kvStore_Get(&e, kv, key.c_str()) != NATS_OK) break;
                        kvEntry_Destroy(e);
                        (void)kvStore_Purge(kv, key.c_str(), nullptr);
                    }
            }
            to_server([this, l, gen, seq, error, n = chunks.size()] {
                l->snapshot_out = false;
                if (!error.empty()) {
                    ++l->publish_errors;
                    spdlog::warn("cluster: database {}: cannot publish a snapshot: {}", l->id, error);
                    return;
                }
                l->snapshot_seq = seq;
                l->snapshot_gen = gen;
                ++l->snapshots_published;
                spdlog::debug("cluster: database {}: published a snapshot ({} chunks) at stream sequence {}", l->id, n, seq);
            });
        });
    }

    // ------------------------------------------------------------ tick

    void tick() {
        if (stopped) return;
        const auto now = clock_type::now();
        const bool up = connected;
        if (up != was_connected) {
            if (up) {
                spdlog::info("cluster: connected to NATS; publishing what was accepted meanwhile");
            } else {
                spdlog::warn("cluster: lost NATS; clients of this node are acknowledged by this node alone until it is back");
            }
            was_connected = up;
        }
        for (auto& [id, l] : links) {
            // A result held too long (or NATS gone): the client gets the
            // local commit's acknowledgement; publishing goes on.
            const auto timeout = std::chrono::duration<double>(opts.ack_timeout_seconds);
            if (!up && !l->holds.empty()) {
                l->local_acks += l->holds.size();
                l->holds.clear();
                h.release(id, std::numeric_limits<std::uint64_t>::max());
            }
            std::uint64_t expired = 0; // positions rise with the holds: release up to the last expired
            while (!l->holds.empty() && now - l->holds.front().second > timeout) {
                expired = l->holds.front().first;
                l->holds.pop_front();
                ++l->local_acks;
            }
            if (expired) h.release(id, expired);
            if (l->ph == phase::waiting && now >= l->retry_at) prepare(l);
            pump(l);
            persist_published(*l);
            maybe_snapshot(l);
        }
        if (up && !discovering && now >= discover_at) discover();
    }

    // Databases other nodes created: every node holds every database.
    void discover() {
        discovering = true;
        discover_at = clock_type::now() + 2s;
        adm->post([this] {
            std::vector<std::string> ids;
            jsStreamNamesList* list = nullptr;
            jsErrCode je = static_cast<jsErrCode>(0);
            if (js_StreamNames(&list, js, nullptr, &je) == NATS_OK && list) {
                const std::string prefix = stream_prefix;
                for (int i = 0; i < list->Count; ++i) {
                    std::string_view n = list->List[i];
                    if (n.substr(0, prefix.size()) != prefix) continue;
                    if (auto id = decode_id(n.substr(prefix.size()))) ids.push_back(*id);
                }
                jsStreamNamesList_Destroy(list);
            }
            to_server([this, ids] {
                discovering = false;
                for (const auto& id : ids)
                    if (!links.count(id)) {
                        try {
                            (void)h.open_database(id); // calls database_opened
                        } catch (const std::exception& e) {
                            spdlog::error("cluster: cannot open database {} found on the cluster: {}", id, e.what());
                        }
                    }
            });
        });
    }

    // ------------------------------------------------------------ reports

    bool caught_up(const link& l) const {
        return connected && l.ph == phase::live && l.stream_last <= l.received && l.out.empty();
    }

    nlohmann::json status() const {
        nlohmann::json j;
        j["servers"] = opts.servers;
        j["connected"] = connected.load();
        j["replicas"] = opts.replicas;
        j["databases"] = nlohmann::json::array();
        for (const auto& [id, l] : links) {
            j["databases"].push_back({{"id", id},
                                      {"stream", l->stream},
                                      {"state", phase_name(l->ph)},
                                      {"streamPosition", l->received},
                                      {"streamLast", l->stream_last},
                                      {"consumerLag", l->stream_last > l->received ? l->stream_last - l->received : 0},
                                      {"publishedPosition", l->published},
                                      {"position", l->known},
                                      {"unpublishedMessages", l->out.size()},
                                      {"heldResults", l->holds.size()},
                                      {"publishErrors", l->publish_errors},
                                      {"caughtUp", caught_up(*l)},
                                      {"lastError", l->last_error}});
        }
        return j;
    }

    void metrics(std::ostream& out) const {
        auto metric = [&](const char* name, const char* type, const char* help) {
            out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
        };
        metric("crdtsync_cluster_connected", "gauge", "1 while the node is connected to NATS.");
        out << "crdtsync_cluster_connected " << (connected ? 1 : 0) << "\n";
        metric("crdtsync_cluster_reconnects_total", "counter", "Times the node got NATS back after losing it.");
        const auto n = connections.load();
        out << "crdtsync_cluster_reconnects_total " << (n > 0 ? n - 1 : 0) << "\n";
        struct per {
            const char* name;
            const char* type;
            const char* help;
            std::function<std::uint64_t(const link&)> get;
        };
        const per rows[] = {
            {"crdtsync_cluster_stream_position", "gauge", "The stream sequence this node merged up to.", [](const link& l) { return l.received; }},
            {"crdtsync_cluster_consumer_lag", "gauge", "Stream messages this node has not merged yet.",
             [](const link& l) { return l.stream_last > l.received ? l.stream_last - l.received : 0; }},
            {"crdtsync_cluster_caught_up", "gauge", "1 when the node merged the whole stream and published all it accepted.",
             [this](const link& l) { return caught_up(l) ? 1 : 0; }},
            {"crdtsync_cluster_unpublished_messages", "gauge", "Messages accepted here, not yet acknowledged by the stream.",
             [](const link& l) { return l.out.size(); }},
            {"crdtsync_cluster_published_messages_total", "counter", "Messages this node published.", [](const link& l) { return l.published_msgs; }},
            {"crdtsync_cluster_published_facts_total", "counter", "Facts this node published.", [](const link& l) { return l.published_facts; }},
            {"crdtsync_cluster_publish_errors_total", "counter", "Publishes (and snapshot puts) that failed and were retried.",
             [](const link& l) { return l.publish_errors; }},
            {"crdtsync_cluster_consumed_messages_total", "counter", "Stream messages merged.", [](const link& l) { return l.consumed_msgs; }},
            {"crdtsync_cluster_consumed_facts_total", "counter", "Facts in the stream messages merged.", [](const link& l) { return l.consumed_facts; }},
            {"crdtsync_cluster_applied_facts_total", "counter", "Stream facts that changed this node's replica.", [](const link& l) { return l.applied_facts; }},
            {"crdtsync_cluster_bad_messages_total", "counter", "Stream messages that did not decode (skipped).", [](const link& l) { return l.bad_msgs; }},
            {"crdtsync_cluster_rejected_change_sets_total", "counter", "Stream change sets this node's replica refused.",
             [](const link& l) { return l.rejected_sets; }},
            {"crdtsync_cluster_local_acks_total", "counter",
             "apply_results sent before the stream acknowledged them (NATS unreachable or the ack timeout).",
             [](const link& l) { return l.local_acks; }},
            {"crdtsync_cluster_bootstraps_total", "counter", "Snapshots this node loaded to join or rejoin.", [](const link& l) { return l.bootstraps; }},
            {"crdtsync_cluster_snapshots_published_total", "counter", "Snapshots this node published.",
             [](const link& l) { return l.snapshots_published; }},
        };
        for (const auto& r : rows) {
            metric(r.name, r.type, r.help);
            for (const auto& [id, l] : links) out << r.name << "{database=\"" << id << "\"} " << r.get(*l) << "\n";
        }
    }
};

cluster_node::cluster_node(cluster_options options, host h) : p_(std::make_unique<impl>(std::move(options), std::move(h))) {}
cluster_node::~cluster_node() = default;
void cluster_node::database_opened(const std::string& id, replica_t& rep) { p_->opened(id, rep); }
bool cluster_node::hold_result(std::string_view id, std::uint64_t last) { return p_->hold(id, last); }
void cluster_node::tick() { p_->tick(); }
void cluster_node::stop() { p_->stop(); }
nlohmann::json cluster_node::status() const { return p_->status(); }
void cluster_node::metrics(std::ostream& out) const { p_->metrics(out); }

} // namespace crdtsync_cli
