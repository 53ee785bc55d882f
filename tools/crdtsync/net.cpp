// crdtsync serve and crdtsync sync: the sync sessions (sync_server,
// sync_client) over the WebSocket transport, driven by one asio io_context
// on the main thread. The only translation unit that includes Boost.Beast.

#include "tool.hpp"
#ifdef CRDTSYNC_HAVE_NATS
#include "cluster.hpp"
#endif

#include <crdtsync/sync_client.hpp>
#include <crdtsync/sync_server.hpp>
#include <crdtsync/transports/websocket.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

namespace crdtsync_cli {
namespace {

namespace asio = boost::asio;
namespace ws = crdtsync::websocket;
using clock_type = std::chrono::steady_clock;

/// How often the sessions are ticked (idle timeouts, pings, and for a
/// client, commits other processes made to its store).
constexpr auto tick_period = std::chrono::milliseconds(250);
/// How long a shutdown waits for sessions to close before it stops anyway.
constexpr auto shutdown_grace = std::chrono::milliseconds(1500);

/// Compares two secrets in time that depends only on their lengths.
bool same_secret(std::string_view a, std::string_view b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    const std::size_t n = std::max(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
        const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
        diff = static_cast<unsigned char>(diff | (x ^ y));
    }
    return diff == 0;
}

/// A database id is a directory name under the server's directory.
bool valid_database_id(std::string_view id) {
    if (id.empty() || id.size() > 64 || id == lock_file) return false;
    if (!std::isalnum(static_cast<unsigned char>(id.front()))) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    });
}

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", s);
    return buf;
}

// ---------------------------------------------------------------- serve

struct listen_address {
    std::string address;
    std::uint16_t port = 0;
};

listen_address parse_listen(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon + 1 == text.size())
        fail(exit_code::usage, "--listen '" + text + "' is not ADDRESS:PORT (for example 127.0.0.1:8080, or [::1]:8080)");
    std::string address = text.substr(0, colon);
    if (address.size() >= 2 && address.front() == '[' && address.back() == ']') address = address.substr(1, address.size() - 2);
    if (address.empty()) address = "0.0.0.0";
    if (address == "localhost") address = "127.0.0.1"; // the one name taken: the transport binds IP addresses
    unsigned long port = 0;
    const auto digits = text.substr(colon + 1);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 5 || (port = std::stoul(digits)) > 65535)
        fail(exit_code::usage, "--listen '" + text + "': the port must be a number from 0 to 65535 (0: the OS picks)");
    return {address, static_cast<std::uint16_t>(port)};
}

/// The server directory: created when missing; never a replica directory.
fs::path server_dir(const std::string& dir) {
    const fs::path p(dir);
    std::error_code ec;
    const auto st = fs::status(p, ec);
    if (!fs::exists(st)) {
        fs::create_directories(p, ec);
        if (ec) fail(exit_code::storage, "cannot create the directory '" + dir + "': " + ec.message());
        return p;
    }
    if (!fs::is_directory(st)) fail(exit_code::not_a_replica, "'" + dir + "' is not a directory");
    if (fs::exists(p / replica_file, ec))
        fail(exit_code::not_a_replica, "'" + dir + "' is a replica directory (it holds " + replica_file +
                                           "); serve takes a server directory, which holds one replica directory per database");
    for (const auto& e : fs::directory_iterator(p, ec)) {
        const auto name = e.path().filename().string();
        if (name == lock_file || (e.is_directory() && valid_database_id(name))) continue;
        fail(exit_code::not_a_replica, "'" + dir + "' is not a crdtsync server directory: it holds '" + name +
                                           "'; pass a new or empty directory, or one serve created");
    }
    return p;
}

class server_host {
public:
    server_host(const serve_args& a, asio::io_context& io, fs::path dir, std::vector<token_entry> tokens, bool auth)
        : io_(io), dir_(std::move(dir)), tokens_(std::move(tokens)), auth_(auth), ticker_(io), closer_(io), signals_(io, SIGINT, SIGTERM),
          started_(clock_type::now()), started_text_(utc_now_text()) {
        crdtsync::session_options opts;
        opts.decode.max_bytes = a.max_message_bytes;
        sync_ = std::make_unique<crdtsync::sync_server<replica_t>>(
            crdtsync::sync_server<replica_t>::hooks{
                .open_database = [this](std::string_view id) { return open_database(id); },
                .authenticate = [this](const crdtsync::msg::handshake& h) { return authenticate(h); },
                .hold_result = [this](std::string_view id, std::uint64_t last) {
#ifdef CRDTSYNC_HAVE_NATS
                    if (cluster_) return cluster_->hold_result(id, last);
#endif
                    (void)id, (void)last;
                    return false;
                },
            },
            opts);
        if (!a.cluster.empty()) start_cluster(a);
        const auto where = parse_listen(a.listen);
        try {
            server_ = std::make_unique<ws::server>(
                io, ws::server_options{
                        .address = where.address,
                        .port = where.port,
                        .path = "/sync/ws",
                        .max_message_bytes = a.max_message_bytes,
                        .handshake_timeout = std::chrono::seconds(10),
                        .http = [this](std::string_view method, std::string_view target) { return http(method, target); },
                        .on_connection =
                            [this](std::shared_ptr<ws::connection> c, const ws::upgrade_info& info) {
                                if (stopping_) return c->close(crdtsync::close_code::going_away, "server shutting down");
                                const auto id = sync_->attach(c);
                                spdlog::debug("connection {} from {}", id, info.remote_endpoint);
                            },
                    });
        } catch (const crdtsync::error& e) {
            fail(exit_code::listen_failed, "cannot listen on " + a.listen + ": " + e.message());
        }
        const bool v6 = where.address.find(':') != std::string::npos;
        url_ = "ws://" + (v6 ? "[" + where.address + "]" : where.address) + ":" + std::to_string(server_->port()) + "/sync/ws";
        signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
            if (!ec) shutdown(sig);
        });
        tick();
    }

    ~server_host() {
        // The sessions go before the replicas they listen to; the cluster
        // link (its threads) before both.
#ifdef CRDTSYNC_HAVE_NATS
        if (cluster_) cluster_->stop();
#endif
        server_.reset();
        sync_.reset();
#ifdef CRDTSYNC_HAVE_NATS
        cluster_.reset();
#endif
    }

    [[nodiscard]] const std::string& url() const noexcept { return url_; }

private:
    struct database {
        std::unique_ptr<dir_lock> lock;
        std::unique_ptr<local_replica> replica;
    };

    replica_t* open_database(std::string_view id_view) {
        const std::string id(id_view);
        if (auto it = databases_.find(id); it != databases_.end()) return &it->second.replica->rep;
        if (!valid_database_id(id))
            throw std::runtime_error("invalid database id '" + id.substr(0, 80) +
                                     "': use 1 to 64 letters, digits, '.', '_' and '-', starting with a letter or digit");
        try {
            const auto dir = replica_dir((dir_ / id).string(), dir_use::create);
            database db;
            db.lock = std::make_unique<dir_lock>(dir, "serve");
            db.replica = open_replica(dir, true); // a long-running server checks the file once
            keep_conflicts(db.replica->rep, dir, "[" + id + "] ");
            auto& rep = db.replica->rep;
            databases_.emplace(id, std::move(db));
            spdlog::info("opened database {} ({}, site {}, position {})", id, dir.string(), rep.site_id().to_text(), rep.position());
#ifdef CRDTSYNC_HAVE_NATS
            if (cluster_) cluster_->database_opened(id, rep);
#endif
            return &rep;
        } catch (const std::exception& e) {
            spdlog::error("cannot open database {}: {}", id, e.what());
            throw std::runtime_error("the server cannot open database '" + id + "'");
        }
    }

    void start_cluster(const serve_args& a) {
#ifdef CRDTSYNC_HAVE_NATS
        crdtsync_cli::cluster_options o;
        o.servers = parse_cluster_servers(a.cluster);
        o.replicas = a.cluster_replicas;
        o.max_age_seconds = a.cluster_max_age;
        o.max_msgs = a.cluster_max_msgs;
        o.ack_timeout_seconds = a.cluster_ack_timeout;
        o.snapshot_interval_seconds = a.cluster_snapshot_interval;
        cluster_ = std::make_unique<cluster_node>(
            std::move(o), cluster_node::host{
                              .post = [this](std::function<void()> f) { asio::post(io_, std::move(f)); },
                              .open_database = [this](const std::string& id) { return open_database(id); },
                              .release = [this](const std::string& id, std::uint64_t up_to) { sync_->release(id, up_to); },
                          });
        // Every database this node held before: the others may have news.
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(dir_, ec))
            if (e.is_directory() && valid_database_id(e.path().filename().string()) && fs::exists(e.path() / replica_file))
                (void)open_database(e.path().filename().string());
#else
        (void)a;
        fail(exit_code::usage, "--cluster: this crdtsync was built without NATS (install libnats-dev and rebuild)");
#endif
    }

    std::optional<std::string> authenticate(const crdtsync::msg::handshake& h) {
        if (!auth_) return std::nullopt;
        bool known = false, match = false;
        for (const auto& t : tokens_) {
            if (t.database != "*" && t.database != h.database_id) continue;
            known = true;
            // Every candidate is compared, so the time taken says nothing
            // about which one matched.
            if (h.token && same_secret(*h.token, t.token)) match = true;
        }
        if (match) return std::nullopt;
        const auto why = !known ? "no token is configured for database '" + h.database_id + "'"
                                : std::string(h.token ? "wrong token" : "no token") + " for database '" + h.database_id + "'";
        spdlog::warn("refused a client (site {}): {}", h.site.to_text(), why);
        return why;
    }

    std::optional<ws::http_reply> http(std::string_view method, std::string_view target) {
        if (stopping_) return ws::http_reply{503, "text/plain; charset=utf-8", "shutting down\n"};
        if (method != "GET") return std::nullopt;
        const auto path = target.substr(0, target.find('?'));
        if (path == "/status") return ws::http_reply{200, "application/json", status_json().dump(2) + "\n"};
        if (path == "/metrics") return ws::http_reply{200, "text/plain; version=0.0.4; charset=utf-8", metrics_text()};
        if (path == "/")
            return ws::http_reply{200, "text/plain; charset=utf-8",
                                  "crdtsync sync server. WebSocket: /sync/ws; GET /status, GET /metrics\n"};
        return std::nullopt;
    }

    double uptime() const { return std::chrono::duration<double>(clock_type::now() - started_).count(); }

    nlohmann::json status_json() const {
        nlohmann::json j;
        j["version"] = std::to_string(CRDTSYNC_VERSION_MAJOR) + "." + std::to_string(CRDTSYNC_VERSION_MINOR) + "." +
                       std::to_string(CRDTSYNC_VERSION_PATCH);
        j["protocolVersion"] = crdtsync::protocol_version;
        j["url"] = url_;
        j["startedAt"] = started_text_;
        j["uptimeSeconds"] = uptime();
        const auto sessions = sync_->sessions();
        j["databases"] = nlohmann::json::array();
        for (const auto& [id, db] : databases_) {
            const auto& rep = db.replica->rep;
            const auto n = std::count_if(sessions.begin(), sessions.end(), [&](const auto& s) { return s.database_id == id; });
            j["databases"].push_back({{"id", id}, {"siteId", rep.site_id().to_text()}, {"position", rep.position()}, {"connections", n}});
        }
#ifdef CRDTSYNC_HAVE_NATS
        if (cluster_) j["cluster"] = cluster_->status();
#endif
        j["connections"] = nlohmann::json::array();
        for (const auto& s : sessions)
            j["connections"].push_back({{"id", s.id},
                                        {"database", s.database_id},
                                        {"peer", s.peer ? nlohmann::json(s.peer->to_text()) : nlohmann::json(nullptr)},
                                        {"live", s.live},
                                        {"snapshot", s.snapshot},
                                        {"position", s.position},
                                        {"queuedBytes", s.queued_bytes}});
        return j;
    }

    std::string metrics_text() const {
        const auto& s = sync_->stats();
        std::ostringstream out;
        auto metric = [&](const char* name, const char* type, const char* help) {
            out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
        };
        auto line = [&](const std::string& name, auto value) { out << name << " " << value << "\n"; };
        metric("crdtsync_up", "gauge", "1 while the server runs.");
        line("crdtsync_up", 1);
        metric("crdtsync_uptime_seconds", "gauge", "Seconds since the server started.");
        line("crdtsync_uptime_seconds", uptime());
        metric("crdtsync_databases", "gauge", "Databases open.");
        line("crdtsync_databases", databases_.size());
        metric("crdtsync_connections", "gauge", "Open sync sessions.");
        line("crdtsync_connections", sync_->sessions().size());
        metric("crdtsync_connections_accepted_total", "counter", "WebSocket connections accepted.");
        line("crdtsync_connections_accepted_total", s.connections_accepted);
        metric("crdtsync_handshakes_total", "counter", "Handshakes accepted.");
        line("crdtsync_handshakes_total", s.handshakes);
        metric("crdtsync_handshakes_refused_total", "counter", "Handshakes refused, by reason.");
        line("crdtsync_handshakes_refused_total{reason=\"auth_failed\"}", s.refused_auth);
        line("crdtsync_handshakes_refused_total{reason=\"protocol_version_mismatch\"}", s.refused_version);
        line("crdtsync_handshakes_refused_total{reason=\"missing_database_id\"}", s.refused_database_id);
        line("crdtsync_handshakes_refused_total{reason=\"already_authenticated\"}", s.refused_duplicate);
        metric("crdtsync_message_errors_total", "counter", "Messages that did not decode or were unexpected.");
        line("crdtsync_message_errors_total", s.message_errors);
        metric("crdtsync_idle_closed_total", "counter", "Sessions closed by the idle timeout.");
        line("crdtsync_idle_closed_total", s.idle_closed);
        metric("crdtsync_change_sets_received_total", "counter", "Change sets received from clients.");
        line("crdtsync_change_sets_received_total", s.change_sets_in);
        metric("crdtsync_change_sets_sent_total", "counter", "Change sets sent to clients.");
        line("crdtsync_change_sets_sent_total", s.change_sets_out);
        metric("crdtsync_facts_received_total", "counter", "Facts (column changes, deletes, migrations) received.");
        line("crdtsync_facts_received_total", s.facts_in);
        metric("crdtsync_facts_sent_total", "counter", "Facts sent.");
        line("crdtsync_facts_sent_total", s.facts_out);
        metric("crdtsync_facts_applied_total", "counter", "Received facts that changed a replica.");
        line("crdtsync_facts_applied_total", s.applied);
        metric("crdtsync_facts_skipped_total", "counter", "Received facts already known or superseded.");
        line("crdtsync_facts_skipped_total", s.skipped);
        metric("crdtsync_conflicts_total", "counter", "Received facts that met a concurrent value (resolved by HLC).");
        line("crdtsync_conflicts_total", s.conflicts);
        metric("crdtsync_change_sets_rejected_total", "counter", "Received change sets a replica rejected.");
        line("crdtsync_change_sets_rejected_total", s.rejected);
        metric("crdtsync_received_bytes_total", "counter", "Message bytes received.");
        line("crdtsync_received_bytes_total", s.bytes_in);
        metric("crdtsync_sent_bytes_total", "counter", "Message bytes sent.");
        line("crdtsync_sent_bytes_total", s.bytes_out);
        metric("crdtsync_snapshot_chunks_sent_total", "counter", "Snapshot chunks served.");
        line("crdtsync_snapshot_chunks_sent_total", s.snapshot_chunks);
#ifdef CRDTSYNC_HAVE_NATS
        if (cluster_) cluster_->metrics(out);
#endif
        return out.str();
    }

    void tick() {
        if (stopping_) return;
        sync_->tick(clock_type::now());
#ifdef CRDTSYNC_HAVE_NATS
        if (cluster_) cluster_->tick();
#endif
        ticker_.expires_after(tick_period);
        ticker_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) tick();
        });
    }

    // Stops accepting, closes every session with 1001 (going away) after
    // what it had queued, and stops the loop once they are closed, or after
    // the grace period. Every transaction committed before: nothing that
    // was acknowledged is lost.
    void shutdown(int sig) {
        spdlog::info("{}: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        stopping_ = true;
        ticker_.cancel();
        sync_->shutdown();
        server_->stop();
        const auto deadline = clock_type::now() + shutdown_grace;
        wait_closed(deadline);
    }
    // A session leaves sync_server::sessions() when its transport reported
    // `closed`: the peer answered the close (or the connection was lost).
    void wait_closed(clock_type::time_point deadline) {
        const auto open = sync_->sessions().size();
        if (open == 0 || clock_type::now() >= deadline) {
            if (open != 0) spdlog::warn("{} connection(s) did not answer the close in time", open);
            io_.stop();
            return;
        }
        closer_.expires_after(std::chrono::milliseconds(20));
        closer_.async_wait([this, deadline](const boost::system::error_code& ec) {
            if (!ec) wait_closed(deadline);
        });
    }

    asio::io_context& io_;
    fs::path dir_;
    std::vector<token_entry> tokens_;
    bool auth_;
    std::map<std::string, database> databases_; // before the sessions: they go first
    std::unique_ptr<crdtsync::sync_server<replica_t>> sync_;
#ifdef CRDTSYNC_HAVE_NATS
    std::unique_ptr<cluster_node> cluster_;
#endif
    std::unique_ptr<ws::server> server_;
    asio::steady_timer ticker_, closer_;
    asio::signal_set signals_;
    clock_type::time_point started_;
    std::string started_text_;
    std::string url_;
    bool stopping_ = false;
};

// ---------------------------------------------------------------- sync

/// The exit code and text of a connect failure.
std::pair<exit_code, std::string> connect_failure(const boost::system::error_code& ec, const std::string& url) {
    if (ec == boost::beast::websocket::error::upgrade_declined)
        return {exit_code::bad_url, "the server at " + url +
                                        " declined the WebSocket upgrade (is the path right? crdtsync serve listens on /sync/ws)"};
    return {exit_code::unreachable, "cannot reach " + url + ": " + ec.message()};
}

class client_host {
public:
    client_host(const sync_args& a, asio::io_context& io, std::string url, std::unique_ptr<local_replica> r,
                std::optional<std::string> token)
        : a_(a), io_(io), url_(std::move(url)), r_(std::move(r)),
          client_(r_->rep, crdtsync::sync_client_config{.database_id = a.db, .token = std::move(token)}), ticker_(io),
          retry_(io), deadline_(io), signals_(io, SIGINT, SIGTERM), backoff_(std::min(1.0, a.retry_max)),
          rng_(std::random_device{}()) {
        client_.on_state([this](crdtsync::sync_state s) { asio::post(io_, [this, s] { on_state(s); }); });
        signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
            if (!ec) stop(sig == SIGINT ? "SIGINT" : "SIGTERM");
        });
        if (!a_.watch) {
            deadline_.expires_after(std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(a_.timeout)));
            deadline_.async_wait([this](const boost::system::error_code& ec) {
                if (ec) return;
                if (client_.stats().connections == 0)
                    return finish(exit_code::unreachable, "cannot reach " + url_ + ": no answer within " + seconds_text(a_.timeout));
                finish(exit_code::sync_failed, "the sync did not complete within " + seconds_text(a_.timeout));
            });
        }
        connect();
        tick();
    }

    [[nodiscard]] int result() const noexcept { return static_cast<int>(result_); }

private:
    void connect() {
        if (done_) return;
        spdlog::debug("connecting to {}", url_);
        ws::client_options opts;
        opts.connect_timeout = a_.watch ? std::chrono::seconds(10)
                                        : std::chrono::duration_cast<clock_type::duration>(
                                              std::chrono::duration<double>(std::min(10.0, a_.timeout)));
        ws::connect(io_, url_, opts, [this](boost::system::error_code ec, std::shared_ptr<ws::connection> c) {
            if (done_) {
                if (c) c->close(crdtsync::close_code::normal, "client stopping");
                return;
            }
            if (ec) {
                auto [code, why] = connect_failure(ec, url_);
                if (!a_.watch) return finish(code, why);
                return retry_later(why);
            }
            conn_ = c;
            client_.attach(c);
        });
    }

    void retry_later(const std::string& why) {
        std::uniform_real_distribution<double> jitter(0.75, 1.25);
        const double wait = std::min(a_.retry_max, backoff_ * jitter(rng_));
        backoff_ = std::min(a_.retry_max, backoff_ * 2);
        spdlog::warn("{}; reconnecting in {}", why, seconds_text(wait));
        retry_.expires_after(std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(wait)));
        retry_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) connect();
        });
    }

    void on_state(crdtsync::sync_state s) {
        if (done_) {
            if (s == crdtsync::sync_state::disconnected) io_.stop(); // the close finish() began is done
            return;
        }
        spdlog::debug("state: {}", crdtsync::to_text(s));
        using crdtsync::sync_state;
        if (s == sync_state::bootstrapping) spdlog::info("bootstrapping from the server's snapshot");
        if (s == sync_state::live) {
            backoff_ = std::min(1.0, a_.retry_max);
            if (a_.watch) spdlog::info("live: connected to {} (database {}), changes flow both ways", url_, a_.db);
            check_synced();
        }
        if (s == sync_state::failed) {
            const auto& e = client_.last_error();
            const std::string why = "the server refused the session: " + (e ? e->code + ": " + e->message : client_.last_problem());
            exit_code code = exit_code::sync_failed;
            if (e && e->code == "AUTH_FAILED") code = exit_code::auth_failed;
            else if ((e && e->code == "PROTOCOL_VERSION_MISMATCH") || client_.last_close_code() == crdtsync::close_code::protocol_version)
                code = exit_code::version_mismatch;
            return finish(code, why);
        }
        if (s == sync_state::disconnected) {
            conn_.reset();
            const auto code = client_.last_close_code();
            std::string why = code == crdtsync::close_code::going_away ? "the server is shutting down"
                                                                        : "connection lost (close code " + std::to_string(code) + ")";
            if (!client_.last_problem().empty() && code != crdtsync::close_code::going_away) why += ": " + client_.last_problem();
            if (!a_.watch) return finish(exit_code::sync_failed, why + " before the sync completed");
            retry_later(why);
        }
    }

    void tick() {
        if (done_) return;
        client_.tick(clock_type::now());
        check_synced();
        report();
        ticker_.expires_after(tick_period);
        ticker_.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) tick();
        });
    }

    // With --watch, says on stderr what moved since the last report.
    void report() {
        if (!a_.watch) return;
        const auto& s = client_.stats();
        if (s.change_sets_in != reported_.change_sets_in)
            spdlog::info("received {} change set(s): {} applied, {} skipped, {} conflict(s)", s.change_sets_in - reported_.change_sets_in,
                         s.applied - reported_.applied, s.skipped - reported_.skipped, s.conflicts - reported_.conflicts);
        if (s.change_sets_out != reported_.change_sets_out)
            spdlog::info("sent {} change set(s) ({} facts)", s.change_sets_out - reported_.change_sets_out, s.facts_out - reported_.facts_out);
        if (s.snapshots != reported_.snapshots) spdlog::info("loaded a snapshot ({} chunks)", s.snapshot_chunks - reported_.snapshot_chunks);
        reported_ = s;
    }

    void check_synced() {
        if (a_.watch || done_ || !client_.synced()) return;
        const auto& s = client_.stats();
        std::ostringstream out;
        out << "synced " << a_.data << " with " << url_ << " (database " << a_.db << "): received " << s.change_sets_in
            << " change set(s) (" << s.facts_in << " facts: " << s.applied << " applied, " << s.skipped << " skipped, "
            << s.conflicts << " conflict(s)), sent " << s.change_sets_out << " change set(s) (" << s.facts_out << " facts)";
        if (s.snapshots) out << "; bootstrapped from a snapshot (" << s.snapshot_chunks << " chunks)";
        if (s.rejected_here || s.rejected_there)
            out << "; rejected " << s.rejected_here << " received and " << s.rejected_there << " sent change set(s)";
        std::cout << out.str() << std::endl;
        finish(exit_code::ok, "");
    }

    // A signal: with --watch the normal way to stop (exit 0); without, the
    // sync was cut short.
    void stop(const char* why) {
        if (done_) return;
        if (!a_.watch) return finish(exit_code::sync_failed, std::string(why) + ": interrupted before the sync completed");
        spdlog::info("{}: stopping", why);
        finish(exit_code::ok, "");
    }

    // Ends: closes the connection (normal closure) and stops the loop once
    // it is closed (on_state sees `disconnected`), or after a second.
    void finish(exit_code code, const std::string& why) {
        if (done_) return;
        done_ = true;
        result_ = code;
        if (code != exit_code::ok) spdlog::error("{}", why);
        ticker_.cancel();
        retry_.cancel();
        deadline_.cancel();
        signals_.cancel();
        if (conn_ && conn_->is_open()) {
            conn_->close(crdtsync::close_code::normal, "client done");
            deadline_.expires_after(std::chrono::seconds(1));
            deadline_.async_wait([this](const boost::system::error_code& ec) {
                if (!ec) io_.stop();
            });
        } else {
            io_.stop();
        }
    }

    const sync_args& a_;
    asio::io_context& io_;
    std::string url_;
    std::unique_ptr<local_replica> r_;
    crdtsync::sync_client<replica_t> client_;
    std::shared_ptr<ws::connection> conn_;
    asio::steady_timer ticker_, retry_, deadline_;
    asio::signal_set signals_;
    double backoff_;
    std::mt19937 rng_;
    crdtsync::sync_client_stats reported_{};
    bool done_ = false;
    exit_code result_ = exit_code::ok;
};

} // namespace

int run_serve(const serve_args& a) {
    std::vector<token_entry> tokens;
    const bool auth = !a.token_file.empty();
    if (auth) {
        tokens = read_token_file(a.token_file);
        for (const auto& t : tokens)
            if (t.database.empty())
                fail(exit_code::usage, "the token file '" + a.token_file + "' has a line with a token alone: serve needs `database-id token` lines (`*` for every database)");
        if (tokens.empty()) spdlog::warn("the token file '{}' holds no token: every client will be refused", a.token_file);
    }
    (void)parse_listen(a.listen); // a bad --listen is a usage error before anything is created
    const auto dir = server_dir(a.data);
    dir_lock lock{dir, "serve"};
    asio::io_context io;
    server_host host{a, io, dir, std::move(tokens), auth};
    if (!auth) spdlog::warn("no --token-file: every client is admitted to every database");
    spdlog::info("serving {} on {} (GET /status, /metrics on the same port)", dir.string(), host.url());
    std::cout << "listening on " << host.url() << std::endl;
    io.run();
    spdlog::info("stopped");
    return 0;
}

int run_sync(const sync_args& a) {
    std::string url = a.server;
    try {
        auto u = ws::parse_url(url);
        if (u.secure) fail(exit_code::bad_url, "--server '" + a.server + "': wss:// (TLS) is not supported; connect through a TLS-terminating proxy");
        // No path: the server's default one.
        const auto after_scheme = url.find("://");
        if (u.target == "/" && url.find('/', after_scheme + 3) == std::string::npos) url += "/sync/ws";
    } catch (const crdtsync::error& e) {
        fail(exit_code::bad_url, "--server '" + a.server + "' is not a WebSocket URL: " + e.message() +
                                     " (expected ws://HOST:PORT/sync/ws)");
    }
    std::optional<std::string> token = a.token;
    if (!a.token_file.empty()) {
        // A bare token, else the line of this database, else a `*` line.
        const auto entries = read_token_file(a.token_file);
        int rank = 0;
        for (const auto& e : entries) {
            const int r = e.database.empty() || e.database == a.db ? 2 : e.database == "*" ? 1 : 0;
            if (r > rank) {
                rank = r;
                token = e.token;
            }
        }
        if (!token) fail(exit_code::usage, "the token file '" + a.token_file + "' has no token for database '" + a.db + "'");
    }
    const auto dir = replica_dir(a.data, dir_use::create);
    dir_lock lock{dir, a.watch ? "sync --watch" : "sync"};
    auto r = open_replica(dir);
    keep_conflicts(r->rep, dir);
    asio::io_context io;
    client_host host{a, io, url, std::move(r), std::move(token)};
    io.run();
    return host.result();
}

} // namespace crdtsync_cli
