#pragma once
// crdtsync serve --cluster: several serve nodes share each database through
// NATS JetStream (docs/cluster.md). This header keeps NATS out of net.cpp:
// only cluster.cpp includes the NATS client.
//
// Per database, one JetStream stream (one subject). A node
//   - publishes what its clients' apply_changes added to its replica, in
//     order, and tells the server when the stream acknowledged it (the
//     server holds the clients' apply_result until then);
//   - consumes the stream with a durable pull consumer and merges what it
//     lacks (the merge skips duplicates; its own messages come back too);
//     the stream position it applied up to is stored in the replica, in
//     the same transaction as the merge (peer state of a fixed "cluster
//     site" derived from the stream name);
//   - publishes a snapshot of its replica to a KV bucket now and then, and
//     bootstraps from one when it is new or fell behind the stream's
//     retention.
// Everything but the NATS calls runs on the server's thread (the replica's
// thread); NATS calls run on a publisher thread (publishes only), an admin
// thread (streams, snapshots, discovery) and one consumer thread
// per database, which hand their results back through `host::post`.

#include "tool.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace crdtsync_cli {

struct cluster_options {
    std::vector<std::string> servers;       ///< nats://HOST:PORT, one or more
    int replicas = 1;                       ///< JetStream replicas of each stream (R)
    double max_age_seconds = 0;             ///< stream retention by age (0: none)
    std::int64_t max_msgs = -1;             ///< stream retention by count (-1: none)
    double ack_timeout_seconds = 5;         ///< how long a client's apply_result waits for the stream
    double snapshot_interval_seconds = 30;  ///< how often a node publishes a snapshot (when it changed)
    std::size_t snapshot_chunk_entries = 500;
};

/// Parses `--cluster nats://a:4222,nats://b:4222` (a usage error otherwise).
std::vector<std::string> parse_cluster_servers(const std::string& text);

class cluster_node {
public:
    struct host {
        /// Runs `f` on the server's thread (the replicas' thread).
        std::function<void(std::function<void()>)> post;
        /// Opens (creating if needed) database `id`; nullptr if it cannot.
        std::function<replica_t*(const std::string& id)> open_database;
        /// The stream acknowledged database `id`'s positions up to `up_to`:
        /// the held apply_results up to there may go (sync_server::release).
        std::function<void(const std::string& id, std::uint64_t up_to)> release;
    };

    cluster_node(cluster_options options, host h);
    ~cluster_node();
    cluster_node(const cluster_node&) = delete;
    cluster_node& operator=(const cluster_node&) = delete;

    /// A database the server opened: the node creates or joins its stream.
    void database_opened(const std::string& id, replica_t& rep);
    /// sync_server's hold_result: a client's apply committed up to `last`.
    /// Queues what it added for publishing; true (hold the apply_result)
    /// while NATS is reachable.
    bool hold_result(std::string_view id, std::uint64_t last);
    /// Every 250 ms or so, on the server's thread: retries, timeouts,
    /// snapshots, stream discovery, persisting the published position.
    void tick();
    /// Stops the threads and persists positions. Idempotent.
    void stop();

    [[nodiscard]] nlohmann::json status() const;
    void metrics(std::ostream& out) const;

private:
    struct impl;
    std::unique_ptr<impl> p_;
};

} // namespace crdtsync_cli
