// SPDX-License-Identifier: Apache-2.0
// A worker's connections to Redis: per server node a small pool of connections (connection.h:
// our own non-blocking sockets on the worker's libev loop, TLS when configured, hiredis's
// reader for the replies), with connect/handshake deadlines and reconnection with backoff. In
// cluster mode the nodes and the slot map come from CLUSTER SLOTS (asked of any node),
// refreshed after a MOVED redirect or a lost node. In sentinel mode the one node is the master
// the Sentinels name (SENTINEL get-master-addr-by-name, asked of each in turn), checked with
// ROLE, and asked for again after a lost connection, a timeout, a READONLY reply and every 5
// seconds; a subscription to +switch-master on the Sentinel that answered last brings a
// failover at once.
#pragma once

#include <ev.h>
#include <openssl/ssl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"
#include "modules/redis/connection.h"

namespace photon::mod::redis {

/// Redis Cluster hash slots.
inline constexpr size_t kSlots = 16384;

/// The cluster slot of `key`: CRC16 (XMODEM) of the key, or of the text inside its first
/// non-empty {hash tag}, modulo 16384.
uint16_t keySlot(std::string_view key);

/// The client SSL_CTX for `cfg.tls` (TLS 1.2+, no ALPN; verification, CA file and client
/// certificate as configured), or nullptr when TLS is off. Master only: files are read here.
/// Errors name the file and OpenSSL's reason (never a key's contents). The caller owns it.
core::Result<SSL_CTX*> makeTlsContext(const core::RedisConfig& cfg);

/// Master only, before forking workers (at start and at every reload): makes the context of
/// `cfg` (makeTlsContext) and keeps it for tlsContext(), freeing the one before (workers
/// already running have their own copy). On error the previous one stays.
core::Result<void> installTlsContext(const core::RedisConfig& cfg);

/// The context installed last (inherited through fork), or nullptr without TLS.
SSL_CTX* tlsContext();

/// Where a command went: timedOut() takes it.
struct SentOn {
    uint32_t node = 0;
    uint32_t conn = 0;
    uint32_t generation = 0;
};

/// The connections of one worker process. Worker only; never blocks: connects are
/// non-blocking and addresses are IP literals. Commands are pipelined on the ready connections
/// of their node, in turn.
class Client {
public:
    /// `tls`: the client context when cfg.tls.enabled (borrowed; must outlive the client), used
    /// for the servers and, unless cfg.tls.sentinels is false, the Sentinels. `io`: the
    /// worker's batch of socket operations, which then carries the writes (may be null).
    Client(const core::RedisConfig& cfg, struct ev_loop* loop, SSL_CTX* tls, worker::IoBatch* io);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    /// Starts connecting to the configured address(es).
    void start();
    /// Closes every connection; pending commands get nullptr.
    void stop();

    /// Whether some connection has completed its handshake (AUTH, SELECT, PING; in sentinel
    /// mode ROLE instead of PING, which must say master) and, in cluster mode, the slot map is
    /// known. In sentinel mode false until a Sentinel has named the master.
    bool ready() const { return ready_count_ > 0 && (!cluster_ || map_known_); }
    /// Connections ready now, over all nodes.
    uint32_t readyCount() const { return ready_count_; }
    /// Nodes known (cluster: every master in the slot map, plus the seeds).
    size_t nodeCount() const { return nodes_.size(); }

    /// Queues the RESP-formatted command `cmd` (copied) on a ready connection of the node that
    /// serves `slot` (standalone: the one server); `fn` gets the reply (see ReplyFn). False
    /// (and `fn` never called) when that node has no ready connection that takes it.
    bool send(uint16_t slot, const char* cmd, size_t len, ReplyFn fn, void* arg, SentOn& where);
    /// Same, to the node at `addr` ("ip:port", as in a redirect), preceded by ASKING when
    /// `asking`. Unknown nodes are added (and connected) first, so the first try may fail.
    bool sendTo(std::string_view addr, bool asking, const char* cmd, size_t len, ReplyFn fn,
                void* arg, SentOn& where);
    /// A MOVED redirect: `slot` is served by `addr` now. Updates the map at once and asks for
    /// the whole map again (at most one refresh in flight).
    void moved(uint16_t slot, std::string_view addr);
    /// A command sent on `where` went unanswered past its deadline: the connection is torn
    /// down (its pending commands fail) and reconnected after the retry interval, unless it was
    /// already replaced.
    void timedOut(const SentOn& where);

    /// A command sent on `where` got a READONLY error: in sentinel mode the server is a replica
    /// now, so the connection is closed (its other pending commands fail once the running
    /// reply callback returns: the server would refuse them too) and the Sentinels are asked
    /// for the master again. Other modes: nothing. May be called from inside the command's
    /// reply callback.
    void readOnly(const SentOn& where);

    /// Sentinel mode: the master's "ip:port" as the Sentinels last named it, or empty when no
    /// Sentinel has answered yet. The view lives until the next return to the loop.
    std::string_view master() const;
    /// Sentinel mode: how often the named master changed since the first answer (failovers
    /// followed by this process).
    uint64_t masterChanges() const { return master_changes_; }

    /// Failures seen by this process (connect errors, timeouts, lost connections, Sentinels
    /// that did not answer).
    uint64_t failures() const { return failures_; }
    /// MOVED and ASK redirects followed by this process.
    uint64_t redirects() const { return redirects_; }

private:
    struct Node;
    struct Conn {
        Conn(Client* c, Node* n, uint32_t i);
        Client* owner = nullptr;
        Node* node = nullptr;
        Connection link;
        ev_timer timer;  // connect/handshake deadline, or the pause before reconnecting
        uint32_t index = 0;
        uint32_t generation = 0;
        uint32_t failures_in_row = 0;
        enum class State : uint8_t { Down, Connecting, Ready } state = State::Down;
    };
    struct Node {
        std::string ip;
        uint16_t port = 0;
        std::string label;  // "ip:port" for logs and redirect matching
        uint32_t index = 0;
        std::vector<std::unique_ptr<Conn>> conns;
        uint32_t ready = 0;
        uint32_t next = 0;
    };
    enum class Step : uint8_t { Auth, Select, Ping, Role };

    Node* addNode(const std::string& ip, uint16_t port);
    Node* findNode(std::string_view label);
    Node* nodeFor(std::string_view addr);
    bool sendOn(Node& n, bool asking, const char* cmd, size_t len, ReplyFn fn, void* arg,
                SentOn& where);
    void connect(Conn& c);
    void teardown(Conn& c, const char* why);
    void scheduleRetry(Conn& c);
    void markReady(Conn& c);
    void setDown(Conn& c);
    void noteFailure(Conn& c, const char* why);
    void handshakeReply(Conn& c, const redisReply* r, Step step);
    void refreshSlots();
    void applySlots(const redisReply* r, const Node& asked);
    void refreshMaster();
    void askSentinel();
    void closeProbe();
    void sentinelFailed(const std::string& why);
    void applyMaster(const std::string& ip, uint16_t port);
    void watchSentinel(size_t index);
    void closeWatch();
    bool mayLog();
    /// The name a server's certificate must carry: sni_hostname, else its address.
    const std::string& verifyName(const std::string& ip) const;
    SSL_CTX* sentinelTls() const { return cfg_.tls.sentinels ? tls_ : nullptr; }

    static void onConnEvent(Connection& link, const char* why, void* owner);
    static void onAuth(const redisReply* r, void* arg);
    static void onSelect(const redisReply* r, void* arg);
    static void onPing(const redisReply* r, void* arg);
    static void onRole(const redisReply* r, void* arg);
    static void onSlots(const redisReply* r, void* arg);
    static void onTimer(struct ev_loop* loop, ev_timer* w, int revents) noexcept;
    static void onRefreshTimer(struct ev_loop* loop, ev_timer* w, int revents) noexcept;
    static void onProbeEvent(Connection& link, const char* why, void* owner);
    static void onProbeAuth(const redisReply* r, void* arg);
    static void onProbeReply(const redisReply* r, void* arg);
    static void onProbeTimer(struct ev_loop* loop, ev_timer* w, int revents) noexcept;
    static void onWatchEvent(Connection& link, const char* why, void* owner);
    static void onWatchMessage(const redisReply* r, void* arg);

    /// Sentinel mode: the one exchange with a Sentinel in progress (AUTH, then SENTINEL
    /// get-master-addr-by-name), bounded by connect_timeout.
    struct Probe {
        explicit Probe(Client* c);
        Connection link;
        ev_timer timer;
        size_t sentinel = 0;  // index in cfg_.addresses of the one asked now
        size_t tried = 0;     // Sentinels asked in this round
        bool active = false;  // a round is in progress
        bool wanted = false;  // ask again when it ends
        std::string reasons;  // why the Sentinels of this round did not answer, for the log
    };

    core::RedisConfig cfg_;
    struct ev_loop* loop_;
    SSL_CTX* tls_;         // null without TLS
    worker::IoBatch* io_;  // may be null
    bool cluster_ = false;
    bool sentinel_ = false;
    // Sentinel mode: whether a Sentinel has named the master (then node 0 is it).
    bool master_known_ = false;
    uint64_t master_changes_ = 0;
    Probe probe_;
    // Sentinel mode: the connection subscribed to +switch-master (closed while there is none;
    // opened again after the next answer), and the Sentinel it is to.
    Connection watch_;
    size_t watch_sentinel_ = 0;
    std::vector<std::unique_ptr<Node>> nodes_;
    // Cluster: node index + 1 per slot (0 = unknown). Standalone: unused (node 0).
    std::array<uint16_t, kSlots> slots_{};
    bool map_known_ = false;
    bool refreshing_ = false;      // a CLUSTER SLOTS is in flight
    bool refresh_wanted_ = false;  // ask again when it returns
    ev_timer refresh_timer_;       // periodic refresh (cluster, sentinel), and retries
    uint32_t ready_count_ = 0;
    uint64_t failures_ = 0;
    uint64_t redirects_ = 0;
    uint64_t last_log_us_ = 0;
    uint64_t suppressed_ = 0;
    bool stopping_ = false;
};

}  // namespace photon::mod::redis
