// SPDX-License-Identifier: Apache-2.0
// Validation of the top-level `redis` block.
#include "modules/redis/config.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace photon::mod::redis {

namespace {

using core::ConfigNode;
using namespace core::cfg;  // NOLINT: the reader helpers are this file's vocabulary

constexpr uint32_t kMaxPool = 16;
constexpr uint64_t kMaxDatabase = 1000000;
constexpr size_t kMaxPrefix = 128;
constexpr size_t kMaxMasterName = 128;

bool readAddress(Ctx& ctx, const ConfigNode& n, const std::string& path, core::SocketAddress& out) {
    std::string s;
    if (!ctx.convert(n, path, s)) {
        return false;
    }
    auto hp = core::parseHostPort(s);
    if (!hp.ok()) {
        ctx.error(n, path, hp.error().msg);
        return false;
    }
    const core::HostPort& h = hp.value();
    if (h.kind == core::HostKind::Name && h.host != "localhost") {
        ctx.error(n, path,
                  "give an IP address and port (\"10.0.0.5:6379\"), not the name " +
                      quoted(h.host) + ": workers do not resolve names");
        return false;
    }
    auto a = core::parseListenAddress(
        h.kind == core::HostKind::Name ? "127.0.0.1:" + std::to_string(h.port) : h.toString());
    if (!a.ok()) {
        ctx.error(n, path, a.error().msg);
        return false;
    }
    out = a.value();
    return true;
}

bool positive(Ctx& ctx, MapReader& r, const char* key, core::Duration& out) {
    const ConfigNode* n = r.get(key);
    if (n == nullptr) {
        return true;
    }
    core::Duration d{};
    if (!ctx.convert(*n, r.path(key), d)) {
        return false;
    }
    if (d <= core::Duration::zero() || d > std::chrono::seconds(60)) {
        ctx.error(*n, r.path(key), "must be above 0 and at most 60s");
        return false;
    }
    out = d;
    return true;
}

/// `tls`: a boolean, or a block with the upstreams' key names.
bool decodeTls(Ctx& ctx, const ConfigNode& n, const std::string& path, core::RedisConfig& c) {
    core::RedisTlsConfig& t = c.tls;
    if (!n.isMap()) {
        return ctx.convert(n, path, t.enabled);
    }
    MapReader r(ctx, &n, path);
    bool ok = true;
    t.enabled = true;
    ok = r.opt("enabled", t.enabled) && ok;
    ok = r.opt("tls_verify", t.tls_verify) && ok;
    ok = r.opt("sni_hostname", t.sni_hostname) && ok;
    if (t.sni_hostname && (t.sni_hostname->empty() || t.sni_hostname->size() > 253 ||
                           t.sni_hostname->find_first_of(" \t\r\n/") != std::string::npos)) {
        ctx.error(r.markOf("sni_hostname"), r.path("sni_hostname"),
                  "give a DNS name or an IP address (1 to 253 bytes, no spaces or slashes)");
        ok = false;
    }
    ok = r.opt("sentinels", t.sentinels) && ok;
    if (r.get("sentinels") != nullptr && c.mode != core::RedisConfig::Mode::Sentinel) {
        ctx.error(r.markOf("sentinels"), r.path("sentinels"), "is read in mode sentinel only");
        ok = false;
    }
    for (auto [key, field] : {std::pair{"ca_file", &t.ca_file}, std::pair{"tls_cert", &t.tls_cert},
                              std::pair{"tls_key", &t.tls_key}}) {
        if (!r.opt(key, *field)) {
            ok = false;
        } else if (!field->empty() && t.enabled && ::access(field->c_str(), R_OK) != 0) {
            ctx.error(r.markOf(key), r.path(key),
                      "cannot read " + quoted(*field) + ": " + std::strerror(errno));
            ok = false;
        }
    }
    if (t.tls_cert.empty() != t.tls_key.empty()) {
        const char* missing = t.tls_cert.empty() ? "tls_cert" : "tls_key";
        const char* given = t.tls_cert.empty() ? "tls_key" : "tls_cert";
        ctx.error(r.markOf(given), r.path(given),
                  std::string("a client certificate needs both tls_cert and tls_key: ") + missing +
                      " is missing");
        ok = false;
    }
    if (!t.enabled) {
        for (const char* key :
             {"tls_verify", "ca_file", "tls_cert", "tls_key", "sni_hostname", "sentinels"}) {
            if (r.get(key) != nullptr) {
                ctx.warn(r.markOf(key), r.path(key), "ignored because enabled is false");
            }
        }
    } else if (!t.tls_verify) {
        ctx.warn(r.markOf("tls_verify"), r.path("tls_verify"),
                 "the Redis servers' certificates are not verified: anyone on the path can "
                 "impersonate them");
    }
    return ok;
}

}  // namespace

void decodeRedis(Ctx& ctx, const ConfigNode& node, core::RedisConfig& out) {
    MapReader r(ctx, &node, "redis");
    if (!r.valid()) {
        return;
    }
    using RC = core::RedisConfig;
    RC c;
    bool ok = true;
    const ConfigNode* one = r.get("address");
    const ConfigNode* list = r.get("addresses");
    if (one != nullptr && list != nullptr) {
        ctx.error(*list, r.path("addresses"), "give address or addresses, not both");
        ok = false;
    } else if (one != nullptr) {
        core::SocketAddress a;
        ok = readAddress(ctx, *one, r.path("address"), a) && ok;
        c.addresses.push_back(a);
    } else if (list != nullptr) {
        if (!list->isList() || list->size() == 0) {
            ctx.error(*list, r.path("addresses"),
                      "expected a non-empty list of addresses, got " + list->describe());
            ok = false;
        } else {
            for (size_t i = 0; i < list->size(); ++i) {
                core::SocketAddress a;
                ok = readAddress(ctx, list->item(i), indexPath(r.path("addresses"), i), a) && ok;
                c.addresses.push_back(a);
            }
        }
    } else {
        ctx.error(node.mark(), r.path("address"), "missing required key \"address\"");
        ok = false;
    }
    if (const ConfigNode* m = r.get("mode")) {
        std::string s;
        if (!ctx.convert(*m, r.path("mode"), s)) {
            ok = false;
        } else if (s == "standalone") {
            c.mode = RC::Mode::Standalone;
        } else if (s == "cluster") {
            c.mode = RC::Mode::Cluster;
        } else if (s == "sentinel") {
            c.mode = RC::Mode::Sentinel;
        } else {
            ctx.error(*m, r.path("mode"),
                      "unknown mode " + quoted(s) + " (expected standalone, sentinel or cluster)");
            ok = false;
        }
    }
    if (ok && c.mode == RC::Mode::Standalone && c.addresses.size() > 1) {
        ctx.error(*list, r.path("addresses"), "mode standalone takes exactly one address");
        ok = false;
    }
    ok = r.opt("username", c.username) && ok;
    ok = r.opt("password", c.password) && ok;
    ok = r.opt("sentinel_username", c.sentinel_username) && ok;
    ok = r.opt("sentinel_password", c.sentinel_password) && ok;
    for (const char* user : {"username", "sentinel_username"}) {
        const bool sentinel = user[0] == 's';
        if (!(sentinel ? c.sentinel_username : c.username).empty() &&
            (sentinel ? c.sentinel_password : c.password).empty()) {
            ctx.error(r.markOf(user), r.path(user),
                      sentinel ? "a Sentinel ACL user needs sentinel_password"
                               : "an ACL user needs a password");
            ok = false;
        }
    }
    const std::pair<const char*, const std::string*> secrets[] = {
        {"username", &c.username},
        {"password", &c.password},
        {"sentinel_username", &c.sentinel_username},
        {"sentinel_password", &c.sentinel_password}};
    for (const auto& [key, s] : secrets) {
        if (s->find_first_of("\r\n") != std::string::npos) {
            ctx.error(r.markOf(key), r.path(key), "must not contain a line break");
            ok = false;
        }
    }
    if (const ConfigNode* n = r.get("master_name")) {
        if (!ctx.convert(*n, r.path("master_name"), c.master_name)) {
            ok = false;
        } else if (c.master_name.empty() || c.master_name.size() > kMaxMasterName ||
                   !std::all_of(c.master_name.begin(), c.master_name.end(), [](char ch) {
                       return ch > ' ' && ch < 0x7f && ch != '"' && ch != '\\';
                   })) {
            ctx.error(*n, r.path("master_name"),
                      "give the name the Sentinels monitor: 1 to 128 printable ASCII bytes, "
                      "without spaces, quotes or backslashes");
            ok = false;
        }
    }
    if (c.mode == RC::Mode::Sentinel) {
        if (r.get("master_name") == nullptr) {
            ctx.error(node.mark(), r.path("master_name"),
                      "mode sentinel needs master_name (the name the Sentinels monitor)");
            ok = false;
        }
    } else {
        for (const char* key : {"master_name", "sentinel_username", "sentinel_password"}) {
            if (r.get(key) != nullptr) {
                ctx.error(r.markOf(key), r.path(key), "is read in mode sentinel only");
                ok = false;
            }
        }
    }
    if (const ConfigNode* n = r.get("database")) {
        uint64_t v = 0;
        if (ctx.integer(*n, r.path("database"), 0, kMaxDatabase, v)) {
            c.database = static_cast<uint32_t>(v);
            if (v != 0 && c.mode == RC::Mode::Cluster) {
                ctx.error(*n, r.path("database"), "a Redis Cluster has database 0 only");
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    ok = positive(ctx, r, "connect_timeout", c.connect_timeout) && ok;
    ok = positive(ctx, r, "command_timeout", c.command_timeout) && ok;
    ok = positive(ctx, r, "retry_interval", c.retry_interval) && ok;
    if (const ConfigNode* n = r.get("key_prefix")) {
        std::string s;
        if (!ctx.convert(*n, r.path("key_prefix"), s)) {
            ok = false;
        } else if (s.size() > kMaxPrefix || s.find_first_of("{}\r\n ") != std::string::npos) {
            ctx.error(*n, r.path("key_prefix"),
                      "at most 128 bytes, without braces, spaces or line breaks");
            ok = false;
        } else {
            c.key_prefix = std::move(s);
        }
    }
    if (const ConfigNode* n = r.get("pool_size")) {
        uint64_t v = 0;
        if (ctx.integer(*n, r.path("pool_size"), 1, kMaxPool, v)) {
            c.pool_size = static_cast<uint32_t>(v);
        } else {
            ok = false;
        }
    }
    if (const ConfigNode* n = r.get("tls")) {
        ok = decodeTls(ctx, *n, r.path("tls"), c) && ok;
    }
    if (ok) {
        c.configured = true;
        out = std::move(c);
    }
}

void checkRedisUsers(Ctx& ctx, const ConfigNode* middleware, const core::Config& cfg) {
    if (cfg.redis.configured || middleware == nullptr || !middleware->isMap()) {
        return;
    }
    for (size_t i = 0; i < middleware->size(); ++i) {
        const std::string& key = middleware->keyAt(i);
        if (key != "rate_limiting" && key.rfind("rate_limit:", 0) != 0) {
            continue;
        }
        const ConfigNode& block = middleware->item(i);
        const ConfigNode* store = block.isMap() ? block.find("store") : nullptr;
        if (store != nullptr && store->isScalar() && store->text() == "redis") {
            ctx.error(*store, childPath(childPath("middleware", key), "store"),
                      "store: redis needs the top-level redis block (address of the server)");
        }
    }
}

}  // namespace photon::mod::redis
