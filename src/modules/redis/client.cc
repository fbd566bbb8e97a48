// SPDX-License-Identifier: Apache-2.0
// A worker's Redis connections: pools per node, handshakes, cluster and Sentinel discovery.
#include "modules/redis/client.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <string>

#include "core/address.h"
#include "core/log.h"
#include "modules/tls/client_tls.h"
#include "shm/clock.h"

namespace photon::mod::redis {

namespace {

/// One log line per this many microseconds per process at most; the rest are counted.
constexpr uint64_t kLogEveryUs = 10'000'000;
/// The retry pause grows up to this multiple of retry_interval.
constexpr uint32_t kMaxBackoff = 8;
/// Cluster: the slot map is asked for again this often (seconds), besides after MOVED.
constexpr double kRefreshEvery = 5.0;
/// Most nodes a cluster may announce (a bound on memory and connections).
constexpr size_t kMaxNodes = 64;
/// Sentinel mode: the failure reasons of one round kept for its log line, in bytes (about).
constexpr size_t kMaxReasons = 1024;

double seconds(core::Duration d) { return std::chrono::duration<double>(d).count(); }

/// "$len\r\narg\r\n", appended to `out`.
void appendArg(std::string& out, std::string_view a) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out.append(a.data(), a.size());
    out += "\r\n";
}

constexpr std::array<uint16_t, 256> crcTable() {
    std::array<uint16_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
        uint16_t c = static_cast<uint16_t>(i << 8);
        for (int b = 0; b < 8; ++b) {
            c = (c & 0x8000) != 0 ? static_cast<uint16_t>((c << 1) ^ 0x1021)
                                  : static_cast<uint16_t>(c << 1);
        }
        t[i] = c;
    }
    return t;
}
constexpr std::array<uint16_t, 256> kCrc = crcTable();

/// Splits "ip:port" or "[v6]:port"; false when it is not that.
bool splitAddr(std::string_view addr, std::string& ip, uint16_t& port) {
    size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
        return false;
    }
    std::string_view host = addr.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    std::string_view p = addr.substr(colon + 1);
    unsigned v = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc() || end != p.data() + p.size() || v == 0 || v > 65535) {
        return false;
    }
    if (!core::parseIpAddress(host).ok()) {
        return false;  // only IP literals: connecting must not resolve names
    }
    ip = std::string(host);
    port = static_cast<uint16_t>(v);
    return true;
}

std::string labelOf(const std::string& ip, uint16_t port) {
    return (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

SSL_CTX* g_tls = nullptr;  // installTlsContext(); inherited by the workers

}  // namespace

core::Result<SSL_CTX*> makeTlsContext(const core::RedisConfig& cfg) {
    if (!cfg.configured || !cfg.tls.enabled) {
        return static_cast<SSL_CTX*>(nullptr);
    }
    tls::ClientTlsOptions o;
    o.verify = cfg.tls.tls_verify;
    o.ca_file = cfg.tls.ca_file;
    o.cert = cfg.tls.tls_cert;
    o.key = cfg.tls.tls_key;
    o.alpn_http11 = false;
    return tls::makeClientContext(o);
}

core::Result<void> installTlsContext(const core::RedisConfig& cfg) {
    auto ctx = makeTlsContext(cfg);
    if (!ctx.ok()) {
        return ctx.error();
    }
    if (g_tls != nullptr) {
        SSL_CTX_free(g_tls);
    }
    g_tls = ctx.value();
    return {};
}

SSL_CTX* tlsContext() { return g_tls; }

uint16_t keySlot(std::string_view key) {
    size_t open = key.find('{');
    if (open != std::string_view::npos) {
        size_t close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1) {
            key = key.substr(open + 1, close - open - 1);
        }
    }
    uint16_t crc = 0;
    for (unsigned char ch : key) {
        crc = static_cast<uint16_t>((crc << 8) ^ kCrc[((crc >> 8) ^ ch) & 0xff]);
    }
    return static_cast<uint16_t>(crc & (kSlots - 1));
}

Client::Conn::Conn(Client* c, Node* n, uint32_t i)
    : owner(c), node(n), link(c->loop_, c->io_, onConnEvent, this), index(i) {
    ev_timer_init(&timer, onTimer, 0., 0.);
    timer.data = this;
}

Client::Probe::Probe(Client* c) : link(c->loop_, c->io_, onProbeEvent, c) {
    ev_timer_init(&timer, onProbeTimer, 0., 0.);
    timer.data = c;
}

Client::Client(const core::RedisConfig& cfg, struct ev_loop* loop, SSL_CTX* tls,
               worker::IoBatch* io)
    : cfg_(cfg),
      loop_(loop),
      tls_(cfg.tls.enabled ? tls : nullptr),
      io_(io),
      cluster_(cfg.mode == core::RedisConfig::Mode::Cluster),
      sentinel_(cfg.mode == core::RedisConfig::Mode::Sentinel),
      probe_(this),
      watch_(loop, io, onWatchEvent, this) {
    watch_.setPushHandler(onWatchMessage, this);
    if (sentinel_) {
        addNode(std::string(), 0);  // the master, once a Sentinel names it
    } else {
        for (const auto& a : cfg_.addresses) {
            addNode(a.ip.toString(), a.port);
        }
    }
    ev_timer_init(&refresh_timer_, onRefreshTimer, kRefreshEvery, kRefreshEvery);
    refresh_timer_.data = this;
}

Client::~Client() { stop(); }

Client::Node* Client::addNode(const std::string& ip, uint16_t port) {
    auto n = std::make_unique<Node>();
    n->ip = ip;
    n->port = port;
    n->label = labelOf(ip, port);
    n->index = static_cast<uint32_t>(nodes_.size());
    for (uint32_t i = 0; i < cfg_.pool_size; ++i) {
        n->conns.push_back(std::make_unique<Conn>(this, n.get(), i));
    }
    nodes_.push_back(std::move(n));
    return nodes_.back().get();
}

Client::Node* Client::findNode(std::string_view label) {
    for (auto& n : nodes_) {
        if (n->label == label) {
            return n.get();
        }
    }
    return nullptr;
}

Client::Node* Client::nodeFor(std::string_view addr) {
    std::string ip;
    uint16_t port = 0;
    if (!splitAddr(addr, ip, port)) {
        return nullptr;
    }
    const std::string label = labelOf(ip, port);
    if (Node* n = findNode(label)) {
        return n;
    }
    if (nodes_.size() >= kMaxNodes) {
        return nullptr;
    }
    Node* n = addNode(ip, port);
    if (!stopping_) {
        for (auto& c : n->conns) {
            connect(*c);
        }
    }
    return n;
}

void Client::start() {
    stopping_ = false;
    for (auto& n : nodes_) {
        for (auto& c : n->conns) {
            connect(*c);
        }
    }
    if (cluster_ || sentinel_) {
        ev_timer_start(loop_, &refresh_timer_);
    }
    if (sentinel_) {
        refreshMaster();
    }
}

void Client::stop() {
    stopping_ = true;
    ev_timer_stop(loop_, &refresh_timer_);
    closeProbe();
    closeWatch();
    probe_.active = false;
    for (auto& n : nodes_) {
        for (auto& c : n->conns) {
            ev_timer_stop(loop_, &c->timer);
            if (c->link.isOpen()) {
                teardown(*c, nullptr);
            }
        }
    }
}

const std::string& Client::verifyName(const std::string& ip) const {
    return cfg_.tls.sni_hostname ? *cfg_.tls.sni_hostname : ip;
}

void Client::connect(Conn& c) {
    if (sentinel_ && !master_known_) {
        return;  // applyMaster() connects it
    }
    const Node& n = *c.node;
    ++c.generation;
    std::string why;
    if (!c.link.open(n.ip, n.port, tls_, verifyName(n.ip), why)) {
        noteFailure(c, why.c_str());
        scheduleRetry(c);
        return;
    }
    c.state = Conn::State::Connecting;
    // Queued now, written once the connection is up; Redis answers them in order.
    std::string cmd;
    if (!cfg_.password.empty()) {
        cmd = cfg_.username.empty() ? "*2\r\n" : "*3\r\n";
        appendArg(cmd, "AUTH");
        if (!cfg_.username.empty()) {
            appendArg(cmd, cfg_.username);
        }
        appendArg(cmd, cfg_.password);
        c.link.send(cmd.data(), cmd.size(), onAuth, &c);
        std::fill(cmd.begin(), cmd.end(), '\0');  // the connection keeps its own copy until written
    }
    if (cfg_.database != 0) {
        cmd = "*2\r\n";
        appendArg(cmd, "SELECT");
        appendArg(cmd, std::to_string(cfg_.database));
        c.link.send(cmd.data(), cmd.size(), onSelect, &c);
    }
    if (sentinel_) {
        // The server the Sentinels named may have been demoted since (redis-py and Jedis check
        // the same way).
        static constexpr char kRole[] = "*1\r\n$4\r\nROLE\r\n";
        c.link.send(kRole, sizeof kRole - 1, onRole, &c);
    } else {
        static constexpr char kPing[] = "*1\r\n$4\r\nPING\r\n";
        c.link.send(kPing, sizeof kPing - 1, onPing, &c);
    }
    ev_timer_set(&c.timer, seconds(cfg_.connect_timeout), 0.);
    ev_timer_start(loop_, &c.timer);
}

bool Client::mayLog() {
    const uint64_t now = shm::monotonicMicros();
    if (last_log_us_ != 0 && now - last_log_us_ < kLogEveryUs) {
        ++suppressed_;
        return false;
    }
    last_log_us_ = now;
    return true;
}

void Client::noteFailure(Conn& c, const char* why) {
    ++failures_;
    ++c.failures_in_row;
    if (why == nullptr || !mayLog()) {
        return;
    }
    if (suppressed_ != 0) {
        LOG_WARN("redis %s: %s (connection %u; %" PRIu64 " more failures not logged)",
                 c.node->label.c_str(), why, c.index, suppressed_);
    } else {
        LOG_WARN("redis %s: %s (connection %u)", c.node->label.c_str(), why, c.index);
    }
    suppressed_ = 0;
}

void Client::scheduleRetry(Conn& c) {
    if (stopping_) {
        return;
    }
    const uint32_t factor = std::min(kMaxBackoff, std::max<uint32_t>(1, c.failures_in_row));
    ev_timer_stop(loop_, &c.timer);
    ev_timer_set(&c.timer, seconds(cfg_.retry_interval) * factor, 0.);
    ev_timer_start(loop_, &c.timer);
    if (cluster_) {
        refreshSlots();  // a failover may have moved its slots
    }
    if (sentinel_) {
        refreshMaster();  // a failover may have named another master
    }
}

void Client::markReady(Conn& c) {
    ev_timer_stop(loop_, &c.timer);
    if (c.state != Conn::State::Ready) {
        c.state = Conn::State::Ready;
        ++ready_count_;
        ++c.node->ready;
        if (c.failures_in_row != 0) {
            LOG_NOTICE("redis %s: connected again (connection %u)", c.node->label.c_str(), c.index);
        }
    }
    c.failures_in_row = 0;
    if (cluster_ && !map_known_) {
        refreshSlots();
    }
}

void Client::setDown(Conn& c) {
    if (c.state == Conn::State::Ready) {
        --ready_count_;
        --c.node->ready;
    }
    c.state = Conn::State::Down;
    ++c.generation;  // late timeouts of the old connection no longer match
}

void Client::teardown(Conn& c, const char* why) {
    setDown(c);
    if (why != nullptr) {
        noteFailure(c, why);
    }
    c.link.close();  // pending commands get nullptr (after the running callback, if inside one)
    scheduleRetry(c);
}

bool Client::sendOn(Node& n, bool asking, const char* cmd, size_t len, ReplyFn fn, void* arg,
                    SentOn& where) {
    const size_t count = n.conns.size();
    for (size_t i = 0; i < count && n.ready > 0; ++i) {
        Conn& c = *n.conns[(n.next + i) % count];
        if (c.state != Conn::State::Ready) {
            continue;
        }
        n.next = static_cast<uint32_t>((n.next + i + 1) % count);
        if (asking) {
            static constexpr char kAsking[] = "*1\r\n$6\r\nASKING\r\n";
            if (!c.link.send(kAsking, sizeof kAsking - 1, nullptr, nullptr)) {
                continue;
            }
        }
        if (!c.link.send(cmd, len, fn, arg)) {
            continue;
        }
        where.node = n.index;
        where.conn = c.index;
        where.generation = c.generation;
        return true;
    }
    return false;
}

bool Client::send(uint16_t slot, const char* cmd, size_t len, ReplyFn fn, void* arg,
                  SentOn& where) {
    if (!cluster_) {
        return sendOn(*nodes_.front(), false, cmd, len, fn, arg, where);
    }
    const uint16_t n = slots_[slot % kSlots];
    if (n == 0) {
        refreshSlots();
        return false;
    }
    return sendOn(*nodes_[n - 1], false, cmd, len, fn, arg, where);
}

bool Client::sendTo(std::string_view addr, bool asking, const char* cmd, size_t len, ReplyFn fn,
                    void* arg, SentOn& where) {
    Node* n = nodeFor(addr);
    if (n == nullptr) {
        return false;
    }
    ++redirects_;
    return sendOn(*n, asking, cmd, len, fn, arg, where);
}

void Client::moved(uint16_t slot, std::string_view addr) {
    if (Node* n = nodeFor(addr)) {
        slots_[slot % kSlots] = static_cast<uint16_t>(n->index + 1);
    }
    refreshSlots();
}

void Client::timedOut(const SentOn& where) {
    if (where.node >= nodes_.size() || where.conn >= nodes_[where.node]->conns.size()) {
        return;
    }
    Conn& c = *nodes_[where.node]->conns[where.conn];
    if (c.generation != where.generation || !c.link.isOpen()) {
        return;  // already replaced
    }
    teardown(c, "no reply within command_timeout; reconnecting");
}

void Client::readOnly(const SentOn& where) {
    if (!sentinel_ || where.node >= nodes_.size() ||
        where.conn >= nodes_[where.node]->conns.size()) {
        return;
    }
    Conn& c = *nodes_[where.node]->conns[where.conn];
    if (c.generation != where.generation || !c.link.isOpen()) {
        return;  // already replaced
    }
    teardown(c, "READONLY: the server is a replica now; asking the Sentinels again");
}

std::string_view Client::master() const {
    if (!sentinel_ || !master_known_) {
        return {};
    }
    return nodes_.front()->label;
}

void Client::refreshMaster() {
    if (!sentinel_ || stopping_) {
        return;
    }
    if (probe_.active) {
        probe_.wanted = true;
        return;
    }
    probe_.active = true;
    probe_.wanted = false;
    probe_.tried = 0;
    askSentinel();
}

void Client::askSentinel() {
    const core::SocketAddress& a = cfg_.addresses[probe_.sentinel];
    const std::string ip = a.ip.toString();
    std::string why;
    if (!probe_.link.open(ip, a.port, sentinelTls(), verifyName(ip), why)) {
        sentinelFailed(why);
        return;
    }
    std::string cmd;
    if (!cfg_.sentinel_password.empty()) {
        cmd = cfg_.sentinel_username.empty() ? "*2\r\n" : "*3\r\n";
        appendArg(cmd, "AUTH");
        if (!cfg_.sentinel_username.empty()) {
            appendArg(cmd, cfg_.sentinel_username);
        }
        appendArg(cmd, cfg_.sentinel_password);
        probe_.link.send(cmd.data(), cmd.size(), onProbeAuth, this);
        std::fill(cmd.begin(), cmd.end(), '\0');
    }
    cmd = "*3\r\n";
    appendArg(cmd, "SENTINEL");
    appendArg(cmd, "get-master-addr-by-name");
    appendArg(cmd, cfg_.master_name);
    probe_.link.send(cmd.data(), cmd.size(), onProbeReply, this);
    ev_timer_set(&probe_.timer, seconds(cfg_.connect_timeout), 0.);
    ev_timer_start(loop_, &probe_.timer);
}

void Client::closeProbe() {
    ev_timer_stop(loop_, &probe_.timer);
    probe_.link.close();  // its remaining callbacks get nullptr and ignore it
}

void Client::sentinelFailed(const std::string& why) {
    closeProbe();
    ++failures_;
    // Reasons are kept for the one line logged when the whole round fails.
    if (probe_.tried == 0) {
        probe_.reasons.clear();
    }
    if (probe_.reasons.size() < kMaxReasons) {
        probe_.reasons += (probe_.reasons.empty() ? "" : "; ") +
                          cfg_.addresses[probe_.sentinel].toString() + ": " + why;
    }
    probe_.sentinel = (probe_.sentinel + 1) % cfg_.addresses.size();
    if (++probe_.tried < cfg_.addresses.size() && !stopping_) {
        askSentinel();  // the next one
        return;
    }
    probe_.active = false;
    probe_.wanted = false;
    if (stopping_) {
        return;
    }
    if (mayLog()) {
        if (master_known_) {
            LOG_WARN("redis sentinel: no Sentinel named master '%s' (%s); keeping %s",
                     cfg_.master_name.c_str(), probe_.reasons.c_str(),
                     nodes_.front()->label.c_str());
        } else {
            LOG_WARN(
                "redis sentinel: no Sentinel named master '%s' (%s); limits with store: "
                "redis use on_store_error until one does",
                cfg_.master_name.c_str(), probe_.reasons.c_str());
        }
    }
    // The whole round failed: the next one after retry_interval, then every kRefreshEvery.
    ev_timer_stop(loop_, &refresh_timer_);
    ev_timer_set(&refresh_timer_, seconds(cfg_.retry_interval), kRefreshEvery);
    ev_timer_start(loop_, &refresh_timer_);
}

void Client::applyMaster(const std::string& ip, uint16_t port) {
    Node& n = *nodes_.front();
    const std::string label = labelOf(ip, port);
    if (master_known_ && n.label == label) {
        return;
    }
    if (master_known_) {
        ++master_changes_;
        LOG_NOTICE("redis sentinel: master '%s' moved from %s to %s", cfg_.master_name.c_str(),
                   n.label.c_str(), label.c_str());
    } else {
        LOG_INFO("redis sentinel: master '%s' is %s", cfg_.master_name.c_str(), label.c_str());
    }
    // Every connection to the old address goes; commands pending there fail now (their
    // requests take on_store_error). All are marked down before any is closed, so that a
    // request resumed by a failure sends nothing to the old address.
    for (auto& c : n.conns) {
        ev_timer_stop(loop_, &c->timer);
        setDown(*c);
        c->failures_in_row = 0;
    }
    n.ip = ip;
    n.port = port;
    n.label = label;
    master_known_ = true;
    for (auto& c : n.conns) {
        c->link.close();
    }
    for (auto& c : n.conns) {
        if (c->state == Conn::State::Down && !c->link.isOpen() && !stopping_) {
            connect(*c);
        }
    }
}

void Client::onProbeEvent(Connection&, const char* why, void* owner) {
    if (why != nullptr) {
        static_cast<Client*>(owner)->sentinelFailed(why);
    }
}

void Client::onProbeAuth(const redisReply* r, void* arg) {
    auto* self = static_cast<Client*>(arg);
    if (r == nullptr || r->type != REDIS_REPLY_ERROR) {
        return;  // OK: the SENTINEL command queued behind it answers
    }
    // The server's text names the problem, never the password.
    self->sentinelFailed("AUTH refused: " + std::string(r->str, std::min<size_t>(r->len, 200)));
}

void Client::onProbeReply(const redisReply* r, void* arg) {
    auto* self = static_cast<Client*>(arg);
    if (r == nullptr) {
        return;  // closed by us, or the connection's failure is reported
    }
    std::string why;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
        std::string ip;
        uint16_t port = 0;
        const std::string addr = std::string(r->element[0]->str, r->element[0]->len) + ":" +
                                 std::string(r->element[1]->str, r->element[1]->len);
        if (splitAddr(addr, ip, port)) {
            self->closeProbe();
            self->probe_.active = false;
            if (!self->watch_.isOpen()) {
                self->watchSentinel(self->probe_.sentinel);
            }
            self->applyMaster(ip, port);
            if (self->probe_.wanted) {
                self->refreshMaster();
            }
            return;
        }
        why = "named the master by an address that is not an IP literal and port: " +
              addr.substr(0, 200);
    } else if (r->type == REDIS_REPLY_NIL) {
        why = "does not monitor a master named '" + self->cfg_.master_name + "'";
    } else if (r->type == REDIS_REPLY_ERROR) {
        why = "SENTINEL get-master-addr-by-name refused: " +
              std::string(r->str, std::min<size_t>(r->len, 200));
    } else {
        why = "unexpected reply to SENTINEL get-master-addr-by-name";
    }
    self->sentinelFailed(why);
}

void Client::watchSentinel(size_t index) {
    if (stopping_) {
        return;
    }
    const core::SocketAddress& a = cfg_.addresses[index];
    const std::string ip = a.ip.toString();
    std::string why;
    if (!watch_.open(ip, a.port, sentinelTls(), verifyName(ip), why)) {
        return;  // the periodic ask still follows failovers
    }
    watch_sentinel_ = index;
    std::string cmd;
    if (!cfg_.sentinel_password.empty()) {
        cmd = cfg_.sentinel_username.empty() ? "*2\r\n" : "*3\r\n";
        appendArg(cmd, "AUTH");
        if (!cfg_.sentinel_username.empty()) {
            appendArg(cmd, cfg_.sentinel_username);
        }
        appendArg(cmd, cfg_.sentinel_password);
        watch_.send(cmd.data(), cmd.size(), onWatchMessage, this);
        std::fill(cmd.begin(), cmd.end(), '\0');
    }
    static constexpr char kSubscribe[] = "*2\r\n$9\r\nSUBSCRIBE\r\n$14\r\n+switch-master\r\n";
    watch_.send(kSubscribe, sizeof kSubscribe - 1, onWatchMessage, this);
}

void Client::closeWatch() { watch_.close(); }

void Client::onWatchEvent(Connection&, const char*, void*) {
    // Lost (or never up): opened again after the next answer to an ask.
}

void Client::onWatchMessage(const redisReply* r, void* arg) {
    auto* self = static_cast<Client*>(arg);
    if (r == nullptr) {
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        // AUTH or SUBSCRIBE refused: the periodic ask still follows failovers.
        self->closeWatch();
        return;
    }
    // ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"]
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING ||
        std::string_view(r->element[0]->str, r->element[0]->len) != "message") {
        return;  // the subscription's confirmation, or AUTH's OK
    }
    std::string_view text(r->element[2]->str, r->element[2]->len);
    std::string_view part[5];
    for (auto& p : part) {
        const size_t sp = text.find(' ');
        p = text.substr(0, sp);
        text = sp == std::string_view::npos ? std::string_view() : text.substr(sp + 1);
    }
    if (part[0] != self->cfg_.master_name) {
        return;  // another master this Sentinel watches
    }
    LOG_INFO("redis sentinel %s: +switch-master %s to %.*s:%.*s",
             self->cfg_.addresses[self->watch_sentinel_].toString().c_str(),
             self->cfg_.master_name.c_str(), static_cast<int>(std::min<size_t>(part[3].size(), 64)),
             part[3].data(), static_cast<int>(std::min<size_t>(part[4].size(), 8)), part[4].data());
    std::string ip;
    uint16_t port = 0;
    if (splitAddr(std::string(part[3]) + ":" + std::string(part[4]), ip, port)) {
        self->applyMaster(ip, port);
    } else {
        self->refreshMaster();
    }
}

void Client::onProbeTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    static_cast<Client*>(w->data)->sentinelFailed("no answer within connect_timeout");
}

void Client::refreshSlots() {
    if (!cluster_ || stopping_) {
        return;
    }
    if (refreshing_) {
        refresh_wanted_ = true;
        return;
    }
    static constexpr char kSlotsCmd[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
    // Any ready connection will do; the first node with one answers.
    for (auto& n : nodes_) {
        for (auto& c : n->conns) {
            if (c->state == Conn::State::Ready &&
                c->link.send(kSlotsCmd, sizeof kSlotsCmd - 1, onSlots, n.get())) {
                refreshing_ = true;
                refresh_wanted_ = false;
                return;
            }
        }
    }
}

void Client::applySlots(const redisReply* r, const Node& asked) {
    if (r->type != REDIS_REPLY_ARRAY) {
        return;
    }
    std::array<uint16_t, kSlots> next{};
    size_t covered = 0;
    for (size_t i = 0; i < r->elements; ++i) {
        const redisReply* e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2) {
            continue;
        }
        const long long from = e->element[0]->integer;
        const long long to = e->element[1]->integer;
        const redisReply* m = e->element[2];
        if (from < 0 || to >= static_cast<long long>(kSlots) || from > to ||
            m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER || m->element[1]->integer < 1 ||
            m->element[1]->integer > 65535) {
            continue;  // malformed, or a port that is not one (never truncated to 16 bits)
        }
        std::string ip(m->element[0]->str, m->element[0]->len);
        if (ip.empty() || ip == "?") {
            ip = asked.ip;  // the node does not know its own address: the one we asked
        }
        const std::string label = labelOf(ip, static_cast<uint16_t>(m->element[1]->integer));
        Node* n = nodeFor(label);
        if (n == nullptr) {
            continue;
        }
        for (long long s = from; s <= to; ++s) {
            next[static_cast<size_t>(s)] = static_cast<uint16_t>(n->index + 1);
        }
        covered += static_cast<size_t>(to - from + 1);
    }
    if (covered == 0) {
        return;
    }
    if (!map_known_) {
        LOG_INFO("redis cluster: slot map of %zu nodes loaded (%zu of %zu slots served)",
                 nodes_.size(), covered, kSlots);
    } else if (next != slots_) {
        // A failover or a resharding: which node took slots over, for the operator.
        size_t moved = 0;
        uint16_t to = 0;
        for (size_t s = 0; s < kSlots; ++s) {
            if (next[s] != slots_[s]) {
                ++moved;
                to = next[s];
            }
        }
        LOG_NOTICE("redis cluster: slot map changed: %zu slots moved (to %s%s; %zu of %zu served)",
                   moved, to != 0 ? nodes_[to - 1]->label.c_str() : "none",
                   moved > 1 ? " and maybe others" : "", covered, kSlots);
    }
    slots_ = next;
    map_known_ = true;
}

void Client::onSlots(const redisReply* r, void* arg) {
    auto* asked = static_cast<Node*>(arg);
    Client* self = asked->conns.front()->owner;
    self->refreshing_ = false;
    if (r != nullptr && r->type != REDIS_REPLY_ERROR) {
        self->applySlots(r, *asked);
    } else if (r != nullptr) {
        LOG_WARN("redis %s: CLUSTER SLOTS refused: %.*s", asked->label.c_str(),
                 static_cast<int>(std::min<size_t>(r->len, 200)), r->str);
    }
    if (self->refresh_wanted_ && r != nullptr) {
        self->refreshSlots();
    }
}

void Client::onRefreshTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    auto* self = static_cast<Client*>(w->data);
    if (self->sentinel_) {
        self->refreshMaster();
    } else {
        self->refreshSlots();
    }
}

void Client::onConnEvent(Connection&, const char* why, void* owner) {
    if (why == nullptr) {
        return;  // up: the handshake's PING (or ROLE) reply makes the connection ready
    }
    // Closed already, its commands failed.
    auto* c = static_cast<Conn*>(owner);
    Client* self = c->owner;
    self->setDown(*c);
    self->noteFailure(*c, why);
    self->scheduleRetry(*c);
}

void Client::onAuth(const redisReply* r, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    c->owner->handshakeReply(*c, r, Step::Auth);
}

void Client::onSelect(const redisReply* r, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    c->owner->handshakeReply(*c, r, Step::Select);
}

void Client::onPing(const redisReply* r, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    c->owner->handshakeReply(*c, r, Step::Ping);
}

void Client::onRole(const redisReply* r, void* arg) {
    auto* c = static_cast<Conn*>(arg);
    c->owner->handshakeReply(*c, r, Step::Role);
}

void Client::handshakeReply(Conn& c, const redisReply* r, Step step) {
    if (r == nullptr) {
        return;  // the connection is going away: its failure (or our teardown) reports it
    }
    if (r->type == REDIS_REPLY_ERROR) {
        // The server's text names the problem (WRONGPASS, NOAUTH, ERR DB index ...), never the
        // password.
        std::string why = std::string(step == Step::Auth     ? "AUTH refused: "
                                      : step == Step::Select ? "SELECT refused: "
                                      : step == Step::Role   ? "ROLE refused: "
                                                             : "PING refused: ") +
                          std::string(r->str, std::min<size_t>(r->len, 200));
        teardown(c, why.c_str());
        return;
    }
    if (step == Step::Role) {
        const bool master = r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                            r->element[0]->type == REDIS_REPLY_STRING &&
                            std::string_view(r->element[0]->str, r->element[0]->len) == "master";
        if (!master) {
            // Demoted since the Sentinels named it: teardown() asks them again.
            teardown(c, "ROLE is not master; asking the Sentinels again");
            return;
        }
    }
    if (step == Step::Ping || step == Step::Role) {
        markReady(c);
    }
}

void Client::onTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    auto* c = static_cast<Conn*>(w->data);
    Client* self = c->owner;
    if (c->state == Conn::State::Connecting) {
        self->teardown(*c, "no connection within connect_timeout");
        return;
    }
    if (c->state == Conn::State::Down && !c->link.isOpen() && !self->stopping_) {
        self->connect(*c);
    }
}

}  // namespace photon::mod::redis
