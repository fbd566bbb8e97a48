// SPDX-License-Identifier: Apache-2.0
// Config loader: front-end dispatch, env substitution, typed decoding, validation and dumps.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "master/config_loader.h"

#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pcre2.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "modules/redis/config.h"
#include "modules/registry.h"
#include "modules/transform/transform.h"

namespace photon::master {

using core::ConfigNode;
using core::Duration;
using core::SourceMark;
using Kind = ConfigNode::ScalarKind;
using namespace core::cfg;  // NOLINT: the reader helpers are this file's vocabulary

// ---------------------------------------------------------------------------------------------
// Diagnostics and small helpers
// ---------------------------------------------------------------------------------------------

bool LoadResult::hasWarnings() const {
    return std::any_of(diagnostics.begin(), diagnostics.end(), [](const Diagnostic& d) {
        return d.severity == Diagnostic::Severity::Warning;
    });
}

const EnvLookup& processEnv() {
    static const EnvLookup kEnv = [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (v == nullptr) {
            return std::nullopt;
        }
        return std::string(v);
    };
    return kEnv;
}

const HostResolver& systemResolver() {
    static const HostResolver kResolver = [](const std::string& host) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
        if (res != nullptr) {
            freeaddrinfo(res);
        }
        return rc == 0;
    };
    return kResolver;
}

namespace {

constexpr size_t kMaxConfigBytes = 64u << 20;

// ---------------------------------------------------------------------------------------------
// Env substitution
// ---------------------------------------------------------------------------------------------

bool isVarStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool isVarChar(char c) { return isVarStart(c) || (c >= '0' && c <= '9'); }

class EnvSubstituter {
public:
    EnvSubstituter(const EnvLookup& env, std::vector<Diagnostic>& diags)
        : env_(env), diags_(diags) {}

    bool ok() const { return ok_; }

    void walk(ConfigNode& node, const std::string& path) {
        if (node.isScalar()) {
            if (node.scalarKind() == Kind::String && node.text().find('$') != std::string::npos) {
                substitute(node, path, takesGatewayVariables(path));
            }
            return;
        }
        for (size_t i = 0; i < node.size(); ++i) {
            std::string p = node.isMap() ? childPath(path, node.keyAt(i)) : indexPath(path, i);
            walk(node.item(i), p);
        }
    }

    /// Values expanded per request (PHOTON-SPEC decision 11): the header values of
    /// middleware.transform (and its named instances), request and response side.
    static bool takesGatewayVariables(const std::string& path) {
        std::string_view p(path);
        auto next = [&p]() {
            size_t dot = p.find('.');
            std::string_view part = p.substr(0, dot);
            p = dot == std::string_view::npos ? std::string_view() : p.substr(dot + 1);
            return part;
        };
        if (next() != "middleware") {
            return false;
        }
        std::string_view block = next();
        if (block != "transform" && block.substr(0, 10) != "transform:") {
            return false;
        }
        std::string_view side = next();
        if (side != "request_headers" && side != "response_headers") {
            return false;
        }
        std::string_view op = next();
        return (op == "add" || op == "set") && !p.empty();
    }

private:
    void warn(const ConfigNode& node, const std::string& path, std::string msg) {
        report(Diagnostic::Severity::Warning, node, path, std::move(msg));
    }

    void error(const ConfigNode& node, const std::string& path, std::string msg) {
        report(Diagnostic::Severity::Error, node, path, std::move(msg));
        ok_ = false;
    }

    void report(Diagnostic::Severity sev, const ConfigNode& node, const std::string& path,
                std::string msg) {
        Diagnostic d;
        d.severity = sev;
        d.file = node.mark().file();
        d.line = node.mark().line();
        d.column = node.mark().column();
        d.path = path;
        d.message = std::move(msg);
        diags_.push_back(std::move(d));
    }

    // `gateway`: the value also takes the gateway's own variables (${request_id}, ...), which
    // are left for the per-request expansion, together with "$${" (so that it still means a
    // literal "${" there); an environment value's own "${" is escaped the same way.
    void substitute(ConfigNode& node, const std::string& path, bool gateway) {
        const std::string& in = node.text();
        std::string out;
        bool substituted = false;
        size_t i = 0;
        while (i < in.size()) {
            char c = in[i];
            if (c != '$') {
                out += c;
                ++i;
                continue;
            }
            if (in.compare(i, 3, "$${") == 0) {
                out += gateway ? "$${" : "${";
                i += 3;
                continue;
            }
            if (in.compare(i, 2, "${") != 0) {
                out += c;
                ++i;
                continue;
            }
            size_t close = in.find('}', i + 2);
            if (close == std::string::npos) {
                error(node, path, "unterminated '${' in value (write '$${' for a literal '${')");
                return;
            }
            std::string_view body(in.data() + i + 2, close - i - 2);
            std::string_view name = body;
            std::optional<std::string_view> fallback;
            size_t sep = body.find(":-");
            if (sep != std::string_view::npos) {
                name = body.substr(0, sep);
                fallback = body.substr(sep + 2);
            }
            if (gateway && !fallback && mod::transform::isGatewayVariable(name)) {
                if (env_(std::string(name))) {
                    warn(node, path,
                         "'${" + std::string(name) + "}' is the gateway variable " +
                             std::string(name) +
                             ", expanded per request; the environment variable of that name is "
                             "not used here");
                }
                out.append(in, i, close + 1 - i);  // kept for the per-request expansion
                i = close + 1;
                continue;
            }
            if (name.empty() || !isVarStart(name[0]) ||
                !std::all_of(name.begin(), name.end(), isVarChar)) {
                error(node, path,
                      "invalid environment variable reference '${" + std::string(body) +
                          "}' (expected ${NAME} or ${NAME:-default})");
                return;
            }
            std::optional<std::string> value = env_(std::string(name));
            auto put = [&](std::string_view v) {
                if (!gateway) {
                    out.append(v);
                    return;
                }
                for (size_t k = 0; k < v.size(); ++k) {
                    if (v.compare(k, 2, "${") == 0) {
                        out += '$';  // literal in a value that takes gateway variables
                    }
                    out += v[k];
                }
            };
            if (value && (!value->empty() || !fallback)) {
                put(*value);
            } else if (fallback) {
                put(*fallback);
            } else if (gateway && std::all_of(name.begin(), name.end(),
                                              [](char ch) { return !(ch >= 'A' && ch <= 'Z'); })) {
                error(node, path,
                      "unknown variable '${" + std::string(name) +
                          "}' (gateway variables: request_id, client_ip, route_id, host, path, "
                          "method, upstream, path.NAME, jwt.CLAIM; or set the environment "
                          "variable " +
                          std::string(name) + ")");
                return;
            } else {
                error(node, path,
                      "environment variable '" + std::string(name) + "' is not set (use ${" +
                          std::string(name) + ":-default} to provide a default)");
                return;
            }
            substituted = true;
            i = close + 1;
        }
        node.setScalar(std::move(out), substituted ? Kind::Untyped : Kind::String);
    }

    const EnvLookup& env_;
    std::vector<Diagnostic>& diags_;
    bool ok_ = true;
};

// ---------------------------------------------------------------------------------------------
// Typed decoding
// ---------------------------------------------------------------------------------------------

template <typename E>
struct EnumName {
    const char* name;
    E value;
};

template <typename E, size_t N>
bool decodeEnum(Ctx& ctx, const ConfigNode& n, const std::string& path, const char* what,
                const EnumName<E> (&table)[N], E& out) {
    std::string s;
    if (!ctx.convert(n, path, s)) {
        return false;
    }
    std::vector<std::string> names;
    for (const auto& e : table) {
        if (s == e.name) {
            out = e.value;
            return true;
        }
        names.emplace_back(e.name);
    }
    std::string hint = didYouMean(s, names);
    ctx.error(n, path,
              "unknown " + std::string(what) + " " + quoted(s) +
                  (hint.empty() ? " (expected " + joinNames(names) + ")" : hint));
    return false;
}

constexpr EnumName<core::LbAlgorithm> kAlgorithms[] = {
    {"round_robin", core::LbAlgorithm::RoundRobin},
    {"least_connections", core::LbAlgorithm::LeastConnections},
    {"weighted_round_robin", core::LbAlgorithm::WeightedRoundRobin},
    {"ip_hash", core::LbAlgorithm::IpHash},
    {"consistent_hash", core::LbAlgorithm::ConsistentHash},
    {"random", core::LbAlgorithm::Random},
};

constexpr EnumName<core::HealthCheckType> kCheckTypes[] = {
    {"tcp", core::HealthCheckType::Tcp},
    {"http", core::HealthCheckType::Http},
    {"https", core::HealthCheckType::Https},
};

// Keys kept for session tickets (see modules/tls/server_tls.h): the current one and 7 before.
constexpr int kMaxTicketRotations = 7;

constexpr EnumName<core::RequestIdMode> kRequestIdModes[] = {
    {"keep", core::RequestIdMode::Keep},
    {"always_generate", core::RequestIdMode::AlwaysGenerate},
};

constexpr EnumName<core::AccessLogFormat> kAccessLogFormats[] = {
    {"json", core::AccessLogFormat::Json},
    {"combined", core::AccessLogFormat::Combined},
};

// ---------------------------------------------------------------------------------------------
// The decoder: one method per block, in the order of core/config.h
// ---------------------------------------------------------------------------------------------

class Decoder {
public:
    explicit Decoder(Ctx& ctx) : ctx_(ctx) {}

    void decode(const ConfigNode& root, core::Config& cfg) {
        if (!root.isMap()) {
            ctx_.error(root, "",
                       root.isNull() ? "the configuration is empty"
                                     : "the configuration must be a map of sections (server, "
                                       "load_balancing, routes, ...), got " +
                                           root.describe());
            return;
        }
        MapReader r(ctx_, &root, "", /*allow_extension_keys=*/true);
        // Read every section first (so unknown-key detection knows them all), then decode in
        // dependency order: backends need the health-check defaults, routes need the backends
        // and middleware blocks.
        const ConfigNode* server = r.require("server");
        const ConfigNode* lb = r.require("load_balancing");
        const ConfigNode* routes = r.require("routes");
        const ConfigNode* middleware = r.get("middleware");
        const ConfigNode* health = r.require("health_check");
        const ConfigNode* metrics = r.require("metrics");
        const ConfigNode* cache = r.get("cache");
        const ConfigNode* redis = r.get("redis");

        if (server != nullptr) {
            decodeServer(*server, cfg.server);
        }
        if (health != nullptr) {
            decodeHealthCheck(*health, cfg.health_check);
        }
        if (metrics != nullptr) {
            decodeMetrics(*metrics, cfg.metrics);
        }
        if (cache != nullptr) {
            decodeCache(*cache, cfg.cache);
        }
        if (redis != nullptr) {
            mod::redis::decodeRedis(ctx_, *redis, cfg.redis);
        }
        if (middleware != nullptr) {
            decodeMiddleware(*middleware, cfg.middleware);
            if (redis == nullptr) {
                mod::redis::checkRedisUsers(ctx_, middleware, cfg);
            }
        }
        if (lb != nullptr) {
            decodeLoadBalancing(*lb, cfg);
        }
        if (routes != nullptr) {
            decodeRoutes(*routes, cfg);
        }
        checkListeners(cfg);
    }

private:
    // --- server -----------------------------------------------------------------------------

    void decodeServer(const ConfigNode& node, core::ServerConfig& s) {
        MapReader r(ctx_, &node, "server");
        if (!r.valid()) {
            return;
        }
        r.req("http_addr", s.http_addr);
        r.opt("https_addr", s.https_addr);
        listener_marks_["server.http_addr"] = r.markOf("http_addr");
        listener_marks_["server.https_addr"] = r.markOf("https_addr");
        r.opt("tls_cert", s.tls_cert);
        r.opt("tls_key", s.tls_key);
        positiveDuration(r, "connection_timeout", s.connection_timeout);
        uintAtLeast(r, "max_connections", 1, s.max_connections);
        s.upgrade_sock_set = r.get("upgrade_sock") != nullptr;
        if (r.opt("upgrade_sock", s.upgrade_sock) && s.upgrade_sock.empty()) {
            ctx_.error(r.markOf("upgrade_sock"), r.path("upgrade_sock"), "must not be empty");
        }
        decodeWorkerProcesses(r, s);
        r.opt("pid_file", s.pid_file);
        for (auto [key, field] : {std::pair{"user", &s.user}, std::pair{"group", &s.group}}) {
            const ConfigNode* v = r.get(key);
            if (v == nullptr || !r.opt(key, *field) || field->empty()) {
                continue;
            }
            bool known = std::string_view(key) == "user" ? ::getpwnam(field->c_str()) != nullptr
                                                         : ::getgrnam(field->c_str()) != nullptr;
            if (!known) {
                ctx_.error(*v, r.path(key),
                           std::string("unknown ") + key + " " + quoted(*field) + " on this host");
            }
        }
        if (!s.group.empty() && s.user.empty()) {
            ctx_.error(r.markOf("group"), r.path("group"), "group needs server.user");
        }
        if (r.opt("error_log", s.error_log) && s.error_log == "stderr") {
            s.error_log.clear();
        }
        if (const ConfigNode* v = r.get("log_level")) {
            std::string name;
            core::LogLevel level;
            if (ctx_.convert(*v, r.path("log_level"), name)) {
                if (core::parseLogLevel(name, level)) {
                    s.log_level = level;
                } else {
                    ctx_.error(*v, r.path("log_level"),
                               "unknown log level " + quoted(name) +
                                   " (expected error, warn, info, debug or trace)");
                }
            }
        }
        if (r.opt("access_log", s.access_log) && s.access_log == "off") {
            s.access_log.clear();
        }
        if (const ConfigNode* v = r.get("access_log_format")) {
            decodeEnum(ctx_, *v, r.path("access_log_format"), "access log format",
                       kAccessLogFormats, s.access_log_format);
        }
        r.opt("shutdown_timeout", s.shutdown_timeout);
        r.opt("max_body_size", s.max_body_size);
        uintAtLeast(r, "max_request_line", 16, s.max_request_line);
        uintAtLeast(r, "max_header_size", 64, s.max_header_size);
        uintAtLeast(r, "max_headers", 1, s.max_headers);
        r.opt("underscores_in_headers", s.underscores_in_headers);
        positiveDuration(r, "header_read_timeout", s.header_read_timeout);
        positiveDuration(r, "resolve_interval", s.resolve_interval);
        uintAtLeast(r, "keepalive_requests", 1, s.keepalive_requests);
        positiveDuration(r, "upstream_keepalive_timeout", s.upstream_keepalive_timeout);
        positiveDuration(r, "lingering_time", s.lingering_time);
        positiveDuration(r, "lingering_timeout", s.lingering_timeout);
        if (const ConfigNode* v = r.get("client_abort")) {
            std::string mode;
            if (ctx_.convert(*v, r.path("client_abort"), mode)) {
                if (mode == "continue" || mode == "cancel") {
                    s.client_abort_cancel = mode == "cancel";
                } else {
                    ctx_.error(
                        *v, r.path("client_abort"),
                        "unknown client_abort " + quoted(mode) + " (expected continue or cancel)");
                }
            }
        }
        if (const ConfigNode* v = r.get("request_id")) {
            decodeEnum(ctx_, *v, r.path("request_id"), "request_id mode", kRequestIdModes,
                       s.request_id);
        }
        if (const ConfigNode* v = r.get("trace_context")) {
            std::string mode;
            if (ctx_.convert(*v, r.path("trace_context"), mode)) {
                if (mode == "propagate" || mode == "off") {
                    s.trace_context = mode == "propagate";
                } else {
                    ctx_.error(
                        *v, r.path("trace_context"),
                        "unknown trace_context " + quoted(mode) + " (expected propagate or off)");
                }
            }
        }
        r.opt("trace_sampled", s.trace_sampled);
        if (const ConfigNode* v = r.get("trusted_proxies")) {
            std::vector<std::string> list;
            if (ctx_.convert(*v, r.path("trusted_proxies"), list)) {
                for (size_t i = 0; i < list.size(); ++i) {
                    auto c = core::parseCidr(list[i]);
                    if (c.ok()) {
                        s.trusted_proxies.push_back(c.value());
                    } else {
                        ctx_.error(v->item(i), indexPath(r.path("trusted_proxies"), i),
                                   c.error().msg);
                    }
                }
            }
        }
        r.opt("reuse_port", s.reuse_port);
        r.opt("io_uring", s.io_uring);

        if (s.max_request_line > s.max_header_size) {
            ctx_.warn(r.markOf("max_request_line"), r.path("max_request_line"),
                      "larger than server.max_header_size (" + std::to_string(s.max_header_size) +
                          "), which also bounds the request line");
        }
        if (const ConfigNode* v = r.get("tls")) {
            decodeServerTls(*v, r.path("tls"), s.tls);
        }
        auto readable = [&](const ConfigNode* at, const std::string& path,
                            const std::string& file) {
            if (::access(file.c_str(), R_OK) != 0) {
                ctx_.error(*at, path, "cannot read " + quoted(file) + ": " + std::strerror(errno));
            }
        };
        if (s.https_addr) {
            bool have_cert = s.tls_cert && !s.tls_cert->empty();
            bool have_key = s.tls_key && !s.tls_key->empty();
            if (have_cert != have_key || (!have_cert && s.tls.certificates.empty())) {
                for (const char* key : {"tls_cert", "tls_key"}) {
                    if (!(std::string_view(key) == "tls_cert" ? have_cert : have_key)) {
                        ctx_.error(r.markOf("https_addr"), r.path("https_addr"),
                                   std::string("TLS certificate and key must be provided when "
                                               "HTTPS is enabled: server.") +
                                       key + " is missing" +
                                       (s.tls.certificates.empty()
                                            ? " (or list them in server.tls.certificates)"
                                            : ""));
                    }
                }
            }
            if (have_cert) {
                readable(r.get("tls_cert"), r.path("tls_cert"), *s.tls_cert);
            }
            if (have_key) {
                readable(r.get("tls_key"), r.path("tls_key"), *s.tls_key);
            }
            if (have_cert && have_key) {
                s.tls.certificates.insert(s.tls.certificates.begin(),
                                          core::TlsCertificate{*s.tls_cert, *s.tls_key, {}});
            }
        } else {
            for (const char* key : {"tls_cert", "tls_key", "tls"}) {
                if (node.find(key) != nullptr && !node.find(key)->isNull()) {
                    ctx_.warn(r.markOf(key), r.path(key),
                              "ignored because server.https_addr is not set");
                }
            }
        }
    }

    void decodeServerTls(const ConfigNode& node, const std::string& path,
                         core::ServerTlsConfig& t) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return;
        }
        if (const ConfigNode* list = r.get("certificates")) {
            if (!list->isList()) {
                ctx_.error(*list, r.path("certificates"),
                           "expected a list of {cert, key}, got " + list->describe());
            } else {
                for (size_t i = 0; i < list->size(); ++i) {
                    std::string ipath = indexPath(r.path("certificates"), i);
                    MapReader c(ctx_, &list->item(i), ipath);
                    if (!c.valid()) {
                        continue;
                    }
                    core::TlsCertificate cert;
                    bool ok = c.req("cert", cert.cert);
                    ok = c.req("key", cert.key) && ok;
                    if (c.opt("ocsp_response", cert.ocsp_response) && !cert.ocsp_response.empty() &&
                        ::access(cert.ocsp_response.c_str(), R_OK) != 0) {
                        ctx_.error(*c.get("ocsp_response"), c.path("ocsp_response"),
                                   "cannot read " + quoted(cert.ocsp_response) + ": " +
                                       std::strerror(errno));
                    }
                    if (ok) {
                        for (auto [key, file] :
                             {std::pair{"cert", &cert.cert}, std::pair{"key", &cert.key}}) {
                            if (::access(file->c_str(), R_OK) != 0) {
                                ctx_.error(
                                    *c.get(key), c.path(key),
                                    "cannot read " + quoted(*file) + ": " + std::strerror(errno));
                            }
                        }
                        t.certificates.push_back(std::move(cert));
                    }
                }
            }
        }
        if (const ConfigNode* v = r.get("protocols")) {
            std::vector<std::string> list;
            if (ctx_.convert(*v, r.path("protocols"), list)) {
                t.tls12 = t.tls13 = false;
                for (size_t i = 0; i < list.size(); ++i) {
                    if (list[i] == "TLSv1.2") {
                        t.tls12 = true;
                    } else if (list[i] == "TLSv1.3") {
                        t.tls13 = true;
                    } else {
                        ctx_.error(v->item(i), indexPath(r.path("protocols"), i),
                                   "unsupported protocol " + quoted(list[i]) +
                                       " (TLSv1.2 and TLSv1.3; older versions are insecure)");
                    }
                }
                if (list.empty()) {
                    ctx_.error(*v, r.path("protocols"), "must name TLSv1.2, TLSv1.3 or both");
                }
            }
        }
        for (auto [key, field] :
             {std::pair{"ciphers", &t.ciphers}, std::pair{"ciphersuites", &t.ciphersuites},
              std::pair{"curves", &t.curves}}) {
            if (r.opt(key, *field) && field->empty()) {
                ctx_.error(r.markOf(key), r.path(key), "must not be empty");
            }
        }
        r.opt("session_tickets", t.session_tickets);
        positiveDuration(r, "session_timeout", t.session_timeout);
        if (positiveDuration(r, "ticket_key_rotation", t.ticket_key_rotation) &&
            t.session_timeout > t.ticket_key_rotation * (kMaxTicketRotations)) {
            ctx_.error(r.markOf("ticket_key_rotation"), r.path("ticket_key_rotation"),
                       "session_timeout may span at most " + std::to_string(kMaxTicketRotations) +
                           " rotations: make ticket_key_rotation longer");
        }
        positiveDuration(r, "handshake_timeout", t.handshake_timeout);
        if (r.opt("client_ca", t.client_ca) && !t.client_ca.empty() &&
            ::access(t.client_ca.c_str(), R_OK) != 0) {
            ctx_.error(r.markOf("client_ca"), r.path("client_ca"),
                       "cannot read " + quoted(t.client_ca) + ": " + std::strerror(errno));
        }
        if (const ConfigNode* v = r.get("verify_client")) {
            std::string mode;
            if (ctx_.convert(*v, r.path("verify_client"), mode)) {
                if (mode == "off" || mode == "false") {
                    t.verify_client = core::TlsVerifyClient::Off;
                } else if (mode == "optional") {
                    t.verify_client = core::TlsVerifyClient::Optional;
                } else if (mode == "on" || mode == "true" || mode == "require") {
                    t.verify_client = core::TlsVerifyClient::Require;
                } else {
                    ctx_.error(*v, r.path("verify_client"),
                               "unknown verify_client " + quoted(mode) +
                                   " (expected off, optional or on)");
                }
                if (t.verify_client != core::TlsVerifyClient::Off && t.client_ca.empty()) {
                    ctx_.error(*v, r.path("verify_client"),
                               "needs server.tls.client_ca (the CAs client certificates must "
                               "chain to)");
                }
            }
        }
        uintAtLeast(r, "verify_depth", 1, t.verify_depth);
    }

    void decodeWorkerProcesses(MapReader& r, core::ServerConfig& s) {
        long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
        uint32_t auto_count =
            cpus > 0 ? static_cast<uint32_t>(std::min<long>(cpus, kMaxWorkers)) : 1;
        s.worker_processes = auto_count;
        s.worker_processes_auto = true;
        const ConfigNode* v = r.get("worker_processes");
        if (v == nullptr) {
            return;
        }
        if (v->isScalar() && v->text() == "auto" &&
            (v->scalarKind() == Kind::String || v->scalarKind() == Kind::Untyped)) {
            return;
        }
        if (v->isScalar() && (v->scalarKind() == Kind::String)) {
            ctx_.error(*v, r.path("worker_processes"),
                       "expected \"auto\" or a number of processes, got " + v->describe());
            return;
        }
        uint64_t n = 0;
        if (ctx_.integer(*v, r.path("worker_processes"), 1, kMaxWorkers, n)) {
            s.worker_processes = static_cast<uint32_t>(n);
            s.worker_processes_auto = false;
        }
    }

    // --- health_check (global) --------------------------------------------------------------

    void decodeHealthCheck(const ConfigNode& node, core::HealthCheckConfig& h) {
        MapReader r(ctx_, &node, "health_check");
        if (!r.valid()) {
            return;
        }
        r.opt("enabled", h.enabled);
        positiveDuration(r, "interval", h.interval);
        positiveDuration(r, "timeout", h.timeout);
        uintAtLeast(r, "failure_threshold", 1, h.failure_threshold);
        uintAtLeast(r, "success_threshold", 1, h.success_threshold);
        if (h.timeout > h.interval) {
            ctx_.warn(r.markOf("timeout"), r.path("timeout"),
                      "longer than health_check.interval; checks will overlap");
        }
    }

    // --- metrics ------------------------------------------------------------------------------

    void decodeMetrics(const ConfigNode& node, core::MetricsConfig& m) {
        MapReader r(ctx_, &node, "metrics");
        if (!r.valid()) {
            return;
        }
        r.req("prometheus", m.prometheus);
        if (r.opt("metrics_path", m.metrics_path) &&
            (m.metrics_path.empty() || m.metrics_path[0] != '/')) {
            ctx_.error(r.markOf("metrics_path"), r.path("metrics_path"),
                       "must start with '/', got " + quoted(m.metrics_path));
        }
        r.opt("metrics_addr", m.metrics_addr);
        listener_marks_["metrics.metrics_addr"] = r.markOf("metrics_addr");
        r.opt("detailed_metrics", m.detailed_metrics);
        r.opt("expose_on_main", m.expose_on_main);
        if (m.expose_on_main && !m.prometheus) {
            ctx_.warn(r.markOf("expose_on_main"), r.path("expose_on_main"),
                      "has no effect while metrics.prometheus is false");
        }
    }

    // --- cache (global) -------------------------------------------------------------------------

    void decodeCache(const ConfigNode& node, core::CacheConfig& c) {
        MapReader r(ctx_, &node, "cache");
        if (!r.valid()) {
            return;
        }
        c.configured = true;
        r.req("enabled", c.enabled);
        uintAtLeast(r, "max_entries", 1, c.max_entries);
        positiveDuration(r, "default_ttl", c.default_ttl);
        r.opt("max_body_size", c.max_body_size);
        r.opt("cache_with_query_params", c.cache_with_query_params);
        uintAtLeast(r, "max_memory", 1u << 20, c.max_memory);
        r.opt("min_ttl", c.min_ttl);
        r.opt("cache_authorized", c.cache_authorized);
        r.opt("strip_set_cookie", c.strip_set_cookie);
        r.opt("stale_while_revalidate", c.stale_while_revalidate);
        r.opt("stale_if_error", c.stale_if_error);
        r.opt("lock_timeout", c.lock_timeout);
        for (const char* k :
             {"min_ttl", "stale_while_revalidate", "stale_if_error", "lock_timeout"}) {
            const std::string_view key(k);
            const core::Duration& d = key == "min_ttl"          ? c.min_ttl
                                      : key == "stale_if_error" ? c.stale_if_error
                                      : key == "lock_timeout"   ? c.lock_timeout
                                                                : c.stale_while_revalidate;
            if (d < core::Duration::zero()) {
                ctx_.error(*node.find(k), r.path(k), "must not be negative");
            }
        }
    }

    // --- middleware -----------------------------------------------------------------------------

    void decodeMiddleware(const ConfigNode& node, core::MiddlewareConfig& m) {
        MapReader r(ctx_, &node, "middleware");
        if (!r.valid()) {
            return;
        }
        // Each module validates its own blocks: the default instance under its block key
        // (rate_limiting, authentication, cors, transform) and named instances under
        // "<name>:<instance>" (rate_limit:login, cors:public). A block that is present but
        // invalid was reported already; remember it so routes that use it do not get a second,
        // misleading "not configured" error.
        for (worker::Module* mod : mod::modules()) {
            std::string key(mod->blockKey());
            if (const ConfigNode* v = r.get(key)) {
                if (!mod->configure(ctx_, *v, r.path(key), "", m)) {
                    middleware_failed_.insert(std::string(mod->name()));
                }
            }
        }
        const ConfigNode* n = r.node();
        for (size_t i = 0; i < n->size(); ++i) {
            const std::string& key = n->keyAt(i);
            size_t colon = key.find(':');
            if (colon == std::string::npos) {
                continue;  // a default block, or unknown (warned about by the reader)
            }
            r.get(key);  // known: no "unknown key" warning
            std::string name = key.substr(0, colon);
            std::string instance = key.substr(colon + 1);
            worker::Module* mod = mod::findModule(name);
            if (mod == nullptr) {
                std::vector<std::string> names;
                for (worker::Module* x : mod::modules()) {
                    names.emplace_back(x->name());
                }
                ctx_.error(n->keyMarkAt(i), r.path(key),
                           "unknown middleware " + quoted(name) + " in a named instance" +
                               didYouMean(name, names) + " (write <name>:<instance> with name " +
                               joinNames(names) + ")");
                continue;
            }
            if (instance.empty() || !std::all_of(instance.begin(), instance.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
                })) {
                ctx_.error(n->keyMarkAt(i), r.path(key),
                           "invalid instance name " + quoted(instance) +
                               " (letters, digits, '_' and '-')");
                continue;
            }
            if (n->item(i).isNull()) {
                ctx_.error(n->keyMarkAt(i), r.path(key), "a value is required here, got null");
                continue;
            }
            if (!mod->configure(ctx_, n->item(i), r.path(key), instance, m)) {
                middleware_failed_.insert(key);
            }
        }
    }

    // --- load_balancing -------------------------------------------------------------------------

    void decodeLoadBalancing(const ConfigNode& node, core::Config& cfg) {
        MapReader r(ctx_, &node, "load_balancing");
        if (!r.valid()) {
            return;
        }
        auto& lb = cfg.load_balancing;
        if (const ConfigNode* v = r.get("algorithm")) {
            decodeEnum(ctx_, *v, r.path("algorithm"), "load-balancing algorithm", kAlgorithms,
                       lb.algorithm);
        }
        const ConfigNode* backends = r.require("backends");
        if (backends == nullptr) {
            return;
        }
        std::string bpath = r.path("backends");
        if (!backends->isMap()) {
            ctx_.error(*backends, bpath,
                       "expected a map of backend name to backend, got " + backends->describe());
            return;
        }
        if (backends->size() == 0) {
            ctx_.warn(*backends, bpath, "no backends are defined");
        }
        for (size_t i = 0; i < backends->size(); ++i) {
            core::BackendConfig b;
            b.name = backends->keyAt(i);
            backend_names_.push_back(b.name);
            std::string path = childPath(bpath, b.name);
            if (b.name.empty()) {
                ctx_.error(backends->keyMarkAt(i), path, "a backend name must not be empty");
                continue;
            }
            if (backends->item(i).isNull()) {
                ctx_.error(backends->keyMarkAt(i), path,
                           "Backend '" + b.name + "' must have at least one upstream server");
                continue;
            }
            if (decodeBackend(backends->item(i), path, lb.algorithm, cfg.health_check, b)) {
                lb.backends.push_back(std::move(b));
            } else {
                invalid_backends_.insert(b.name);
            }
        }
    }

    bool decodeBackend(const ConfigNode& node, const std::string& path,
                       core::LbAlgorithm default_algorithm, const core::HealthCheckConfig& global,
                       core::BackendConfig& b) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        bool ok = true;
        b.algorithm = default_algorithm;
        if (const ConfigNode* v = r.get("algorithm")) {
            ok = decodeEnum(ctx_, *v, r.path("algorithm"), "load-balancing algorithm", kAlgorithms,
                            b.algorithm) &&
                 ok;
        }
        if (const ConfigNode* ups = r.require("upstreams")) {
            std::string upath = r.path("upstreams");
            if (!ups->isList()) {
                ctx_.error(*ups, upath, "expected a list of upstreams, got " + ups->describe());
                ok = false;
            } else if (ups->size() == 0) {
                ctx_.error(*ups, upath,
                           "Backend '" + b.name + "' must have at least one upstream server");
                ok = false;
            } else {
                for (size_t i = 0; i < ups->size(); ++i) {
                    core::UpstreamConfig u;
                    if (decodeUpstream(ups->item(i), indexPath(upath, i), u)) {
                        for (const auto& prev : b.upstreams) {
                            if (prev.address == u.address) {
                                ctx_.warn(ups->item(i), indexPath(upath, i),
                                          "upstream " + quoted(u.address.toString()) +
                                              " is listed more than once");
                                break;
                            }
                        }
                        b.upstreams.push_back(std::move(u));
                    } else {
                        ok = false;
                    }
                }
            }
        } else {
            ok = false;
        }
        ok = r.opt("two_choices", b.two_choices) && ok;
        if (const ConfigNode* v = r.get("hash_key")) {
            ok = decodeHashKey(*v, r.path("hash_key"), b.hash_key) && ok;
        }
        ok = r.opt("fail_open", b.fail_open) && ok;
        ok = r.opt("max_fails", b.max_fails) && ok;
        ok = positiveDuration(r, "fail_timeout", b.fail_timeout) && ok;
        ok = r.opt("count_5xx", b.count_5xx) && ok;
        ok = percent(r, "max_ejection_percent", b.max_ejection_percent) && ok;
        ok = positiveDuration(r, "max_ejection_time", b.max_ejection_time) && ok;
        ok = percent(r, "panic_threshold", b.panic_threshold) && ok;
        ok = percent(r, "retry_budget", b.retry_budget) && ok;
        ok = r.opt("min_retry_concurrency", b.min_retry_concurrency) && ok;
        ok = r.opt("max_requests", b.max_requests) && ok;
        ok = r.opt("max_pending", b.max_pending) && ok;
        ok = percent(r, "failure_percentage", b.failure_percentage) && ok;
        ok = uintAtLeast(r, "failure_percentage_min_requests", 1,
                         b.failure_percentage_min_requests) &&
             ok;

        // Effective health check: defaults from the global block, overridden by the backend's.
        core::BackendHealthCheckConfig& hc = b.health_check;
        hc.enabled = global.enabled;
        hc.interval = global.interval;
        hc.timeout = global.timeout;
        hc.failure_threshold = global.failure_threshold;
        hc.success_threshold = global.success_threshold;
        if (const ConfigNode* v = r.get("health_check")) {
            ok = decodeBackendHealthCheck(*v, r.path("health_check"), hc) && ok;
        }

        if (ok) {
            if (b.two_choices && b.algorithm != core::LbAlgorithm::Random) {
                ctx_.warn(r.markOf("two_choices"), r.path("two_choices"),
                          "only used with algorithm 'random'");
            }
            if (!(b.hash_key == core::HashKey{}) && b.algorithm != core::LbAlgorithm::IpHash &&
                b.algorithm != core::LbAlgorithm::ConsistentHash) {
                ctx_.warn(r.markOf("hash_key"), r.path("hash_key"),
                          "only used with algorithms 'consistent_hash' and 'ip_hash'");
            }
            if (b.algorithm == core::LbAlgorithm::WeightedRoundRobin &&
                std::all_of(b.upstreams.begin(), b.upstreams.end(),
                            [](const core::UpstreamConfig& u) { return u.weight == 0; })) {
                ctx_.warn(r.markOf("upstreams"), r.path("upstreams"),
                          "every upstream has weight 0, so weighted_round_robin never picks one");
            }
        }
        return ok;
    }

    bool decodeHashKey(const ConfigNode& n, const std::string& path, core::HashKey& k) {
        using K = core::HashKey::Kind;
        std::string s;
        if (!ctx_.convert(n, path, s)) {
            return false;
        }
        if (s == "ip" || s == "path") {
            k.kind = s == "ip" ? K::Ip : K::Path;
            k.name.clear();
            return true;
        }
        for (auto [prefix, kind] :
             {std::pair{"header:", K::Header}, std::pair{"cookie:", K::Cookie}}) {
            std::string_view p(prefix);
            if (s.compare(0, p.size(), p) == 0) {
                std::string name = s.substr(p.size());
                if (!isToken(name)) {
                    ctx_.error(n, path, "invalid name " + quoted(name) + " in hash_key");
                    return false;
                }
                k.kind = kind;
                k.name = std::move(name);
                return true;
            }
        }
        ctx_.error(
            n, path,
            "unknown hash_key " + quoted(s) + " (expected ip, path, header:NAME or cookie:NAME)");
        return false;
    }

    bool decodeUpstream(const ConfigNode& node, const std::string& path, core::UpstreamConfig& u) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        bool ok = true;
        if (const ConfigNode* a = r.require("address")) {
            std::string text;
            if (ctx_.convert(*a, r.path("address"), text)) {
                auto hp = core::parseHostPort(text);
                if (hp.ok()) {
                    u.address = hp.value();
                    if (u.address.kind == core::HostKind::Name && !ctx_.resolves(u.address.host)) {
                        ctx_.warn(*a, r.path("address"),
                                  "host " + quoted(u.address.host) +
                                      " does not resolve yet; the upstream starts unhealthy and "
                                      "resolution is retried");
                    }
                } else {
                    ctx_.error(*a, r.path("address"), hp.error().msg);
                    ok = false;
                }
            } else {
                ok = false;
            }
        } else {
            ok = false;
        }
        ok = r.opt("weight", u.weight) && ok;
        ok = r.opt("tls", u.tls) && ok;
        ok = r.opt("sni_hostname", u.sni_hostname) && ok;
        if (u.sni_hostname && u.sni_hostname->empty()) {
            ctx_.error(r.markOf("sni_hostname"), r.path("sni_hostname"), "must not be empty");
            ok = false;
        }
        ok = r.opt("tls_verify", u.tls_verify) && ok;
        for (auto [key, field] :
             {std::pair{"ca_file", &u.ca_file}, std::pair{"tls_cert", &u.tls_cert},
              std::pair{"tls_key", &u.tls_key}}) {
            if (!r.opt(key, *field)) {
                ok = false;
            } else if (!field->empty() && u.tls && ::access(field->c_str(), R_OK) != 0) {
                ctx_.error(r.markOf(key), r.path(key),
                           "cannot read " + quoted(*field) + ": " + std::strerror(errno));
                ok = false;
            }
        }
        if (u.tls_cert.empty() != u.tls_key.empty()) {
            const char* missing = u.tls_cert.empty() ? "tls_cert" : "tls_key";
            ctx_.error(r.markOf(u.tls_cert.empty() ? "tls_key" : "tls_cert"),
                       r.path(u.tls_cert.empty() ? "tls_key" : "tls_cert"),
                       std::string("a client certificate needs both tls_cert and tls_key: ") +
                           missing + " is missing");
            ok = false;
        }
        if (!u.tls) {
            for (const char* key : {"tls_verify", "ca_file", "tls_cert", "tls_key"}) {
                if (r.get(key) != nullptr) {
                    ctx_.warn(r.markOf(key), r.path(key), "ignored because tls is not true");
                }
            }
        } else if (!u.tls_verify) {
            ctx_.warn(r.markOf("tls_verify"), r.path("tls_verify"),
                      "the upstream's certificate is not verified: anyone on the path can "
                      "impersonate it");
        }
        ok = r.opt("max_connections", u.max_connections) && ok;
        if (u.max_connections && *u.max_connections == 0) {
            ctx_.warn(r.markOf("max_connections"), r.path("max_connections"),
                      "0 means this upstream is never picked");
        }
        if (const ConfigNode* ka = r.get("tcp_keepalive")) {
            MapReader kr(ctx_, ka, r.path("tcp_keepalive"));
            if (kr.valid()) {
                ok = kr.opt("enabled", u.tcp_keepalive.enabled) && ok;
                ok = positiveDuration(kr, "idle", u.tcp_keepalive.idle) && ok;
                ok = positiveDuration(kr, "interval", u.tcp_keepalive.interval) && ok;
                ok = uintAtLeast(kr, "count", 1, u.tcp_keepalive.count) && ok;
            } else {
                ok = false;
            }
        }
        ok = positiveDuration(r, "connection_timeout", u.connection_timeout) && ok;
        ok = positiveDuration(r, "read_timeout", u.read_timeout) && ok;
        ok = positiveDuration(r, "write_timeout", u.write_timeout) && ok;
        if (ok && u.tls && !u.sni_hostname && u.address.kind != core::HostKind::Name) {
            ctx_.warn(r.markOf("tls"), r.path("tls"),
                      "TLS to an IP address without sni_hostname: the certificate must carry "
                      "that IP address");
        }
        return ok;
    }

    bool decodeBackendHealthCheck(const ConfigNode& node, const std::string& path,
                                  core::BackendHealthCheckConfig& hc) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        hc.configured = true;
        bool ok = true;
        if (const ConfigNode* t = r.require("check_type")) {
            ok = decodeEnum(ctx_, *t, r.path("check_type"), "check_type", kCheckTypes,
                            hc.check_type);
        } else {
            ok = false;
        }
        ok = r.opt("enabled", hc.enabled) && ok;
        if (r.opt("path", hc.path)) {
            if (hc.path.empty() || hc.path[0] != '/' || hasControlChars(hc.path) ||
                hc.path.find(' ') != std::string::npos) {
                ctx_.error(r.markOf("path"), r.path("path"),
                           "must be an absolute path starting with '/', got " + quoted(hc.path));
                ok = false;
            }
        } else {
            ok = false;
        }
        if (const ConfigNode* v = r.get("expected_status")) {
            uint64_t st = 0;
            if (ctx_.integer(*v, r.path("expected_status"), 100, 599, st)) {
                hc.expected_status = static_cast<uint16_t>(st);
            } else {
                ok = false;
            }
        }
        ok = positiveDuration(r, "interval", hc.interval) && ok;
        if (r.opt("method", hc.method)) {
            hc.method = upper(hc.method);
            if (!isToken(hc.method)) {
                ctx_.error(r.markOf("method"), r.path("method"),
                           "invalid method " + quoted(hc.method));
                ok = false;
            }
        } else {
            ok = false;
        }
        ok = r.opt("host", hc.host) && ok;
        if (hc.host && (hc.host->empty() || hasControlChars(*hc.host))) {
            ctx_.error(r.markOf("host"), r.path("host"), "invalid Host header value");
            ok = false;
        }
        ok = positiveDuration(r, "timeout", hc.timeout) && ok;
        ok = uintAtLeast(r, "failure_threshold", 1, hc.failure_threshold) && ok;
        ok = uintAtLeast(r, "success_threshold", 1, hc.success_threshold) && ok;
        ok = r.opt("tls_verify", hc.tls_verify) && ok;
        if (ok && hc.check_type == core::HealthCheckType::Tcp) {
            // Only values that differ from the defaults betray an intent worth a warning.
            const core::BackendHealthCheckConfig defaults;
            const std::pair<const char*, bool> ignored[] = {
                {"path", hc.path != defaults.path},
                {"expected_status", hc.expected_status != defaults.expected_status},
                {"method", hc.method != defaults.method},
                {"host", hc.host.has_value()},
                {"tls_verify", hc.tls_verify != defaults.tls_verify},
            };
            for (const auto& [key, set] : ignored) {
                if (set) {
                    ctx_.warn(r.markOf(key), r.path(key), "ignored for tcp health checks");
                }
            }
        }
        return ok;
    }

    // --- routes ---------------------------------------------------------------------------------

    void decodeRoutes(const ConfigNode& node, core::Config& cfg) {
        if (!node.isList()) {
            ctx_.error(node, "routes", "expected a list of routes, got " + node.describe());
            return;
        }
        if (node.size() == 0) {
            ctx_.warn(node, "routes", "no routes are defined: every request gets 404");
        }
        std::map<std::string, SourceMark> ids;
        for (size_t i = 0; i < node.size(); ++i) {
            std::string path = indexPath("routes", i);
            core::RouteConfig route;
            if (decodeRoute(node.item(i), path, cfg, route)) {
                auto [it, fresh] = ids.emplace(route.id, node.item(i).mark());
                if (!fresh) {
                    const ConfigNode* idn = node.item(i).find("id");
                    ctx_.error(idn != nullptr ? idn->mark() : node.item(i).mark(),
                               childPath(path, "id"),
                               "Duplicate route ID: " + route.id + " (first defined at line " +
                                   std::to_string(it->second.line()) + ")");
                    continue;
                }
                cfg.routes.push_back(std::move(route));
            }
        }
    }

    bool decodeRoute(const ConfigNode& node, const std::string& path, const core::Config& cfg,
                     core::RouteConfig& rt) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        bool ok = r.req("id", rt.id);
        if (ok && rt.id.empty()) {
            ctx_.error(r.markOf("id"), r.path("id"), "a route id must not be empty");
            ok = false;
        }
        if (r.req("path", rt.path)) {
            ok = checkPattern(r, "path", rt.path) && ok;
        } else {
            ok = false;
        }
        if (const ConfigNode* m = r.get("methods")) {
            if (ctx_.convert(*m, r.path("methods"), rt.methods)) {
                for (size_t i = 0; i < rt.methods.size(); ++i) {
                    rt.methods[i] = upper(rt.methods[i]);
                    if (!isToken(rt.methods[i])) {
                        ctx_.error(m->item(i), indexPath(r.path("methods"), i),
                                   "invalid method " + quoted(rt.methods[i]));
                        ok = false;
                    }
                }
                if (rt.methods.empty()) {
                    ctx_.warn(*m, r.path("methods"),
                              "an empty list allows every method; omit the key to say so");
                }
            } else {
                ok = false;
            }
        }
        if (r.opt("host", rt.host)) {
            if (rt.host) {
                ok = checkPattern(r, "host", *rt.host) && ok;
            }
        } else {
            ok = false;
        }
        if (r.req("backend", rt.backend)) {
            const core::BackendConfig* b = cfg.load_balancing.findBackend(rt.backend);
            if (b != nullptr) {
                rt.backend_index = static_cast<size_t>(b - cfg.load_balancing.backends.data());
            } else if (invalid_backends_.count(rt.backend) == 0) {
                // (A backend that exists but failed to decode was reported already.)
                std::string hint = didYouMean(rt.backend, backend_names_);
                ctx_.error(r.markOf("backend"), r.path("backend"),
                           "unknown backend " + quoted(rt.backend) + hint +
                               (hint.empty() ? " (route '" + rt.id +
                                                   "' references a backend that is not defined "
                                                   "in load_balancing.backends)"
                                             : ""));
                ok = false;
            } else {
                ok = false;
            }
        } else {
            ok = false;
        }
        if (const ConfigNode* m = r.get("middleware")) {
            ok = decodeRouteMiddleware(*m, r.path("middleware"), cfg.middleware, rt) && ok;
        }
        ok = positiveDuration(r, "timeout", rt.timeout) && ok;
        ok = r.opt("retries", rt.retries) && ok;
        ok = r.opt("retry_non_idempotent", rt.retry_non_idempotent) && ok;
        ok = positiveDuration(r, "per_try_timeout", rt.per_try_timeout) && ok;
        ok = positiveDuration(r, "retry_backoff", rt.retry_backoff) && ok;
        ok = positiveDuration(r, "retry_backoff_max", rt.retry_backoff_max) && ok;
        if (const ConfigNode* v = r.get("retry_on")) {
            std::vector<std::string> list;
            if (ctx_.convert(*v, r.path("retry_on"), list)) {
                uint8_t bits = 0;
                for (const auto& name : list) {
                    uint8_t bit = 0;
                    for (const auto& [n, b] : core::retry_on::kNames) {
                        bit = name == n ? b : bit;
                    }
                    if (bit == 0) {
                        ctx_.error(*v, r.path("retry_on"),
                                   "unknown retry_on condition " + quoted(name) +
                                       " (expected connect_failure, reset, timeout, 502, 503 or "
                                       "504)");
                        ok = false;
                    }
                    bits |= bit;
                }
                rt.retry_on = bits;
            } else {
                ok = false;
            }
        }
        ok = r.opt("fresh_connection_for_unsafe", rt.fresh_connection_for_unsafe) && ok;
        for (auto [key, field] :
             {std::pair{"strip_prefix", &rt.strip_prefix}, std::pair{"rewrite", &rt.rewrite}}) {
            if (!r.opt(key, *field)) {
                ok = false;
            } else if (*field &&
                       ((*field)->empty() || (**field)[0] != '/' || hasControlChars(**field))) {
                ctx_.error(r.markOf(key), r.path(key),
                           "must start with '/', got " + quoted(**field));
                ok = false;
            }
        }
        if (const ConfigNode* w = r.get("websocket")) {
            ok = decodeRouteWebSocket(*w, r.path("websocket"), rt) && ok;
        }
        if (const ConfigNode* c = r.get("cache")) {
            ok = decodeRouteCache(*c, r.path("cache"), cfg.cache, rt) && ok;
        }
        if (ok && rt.websocket && rt.websocket->enabled) {
            if (!rt.methods.empty() &&
                std::find(rt.methods.begin(), rt.methods.end(), "GET") == rt.methods.end()) {
                ctx_.warn(r.markOf("methods"), r.path("methods"),
                          "WebSocket upgrades are GET requests, but GET is not allowed here");
            }
            if (rt.cache && rt.cache->enabled) {
                ctx_.warn(r.markOf("cache"), r.path("cache"),
                          "caching on a WebSocket route only applies to non-upgrade requests");
            }
        }
        return ok;
    }

    bool decodeRouteMiddleware(const ConfigNode& node, const std::string& path,
                               const core::MiddlewareConfig& mw, core::RouteConfig& rt) {
        std::vector<std::string> names;
        if (!ctx_.convert(node, path, names)) {
            return false;
        }
        std::vector<std::string> known;
        for (worker::Module* m : mod::modules()) {
            known.emplace_back(m->name());
        }
        bool ok = true;
        for (size_t i = 0; i < names.size(); ++i) {
            const std::string& entry = names[i];
            const ConfigNode& item = node.item(i);
            std::string ipath = indexPath(path, i);
            std::string_view name, instance;
            worker::splitMiddlewareName(entry, name, instance);
            worker::Module* mod = mod::findModule(name);
            if (mod == nullptr) {
                std::string hint = didYouMean(name, known);
                ctx_.error(item, ipath,
                           "unknown middleware " + quoted(name) +
                               (hint.empty() ? " (known: " + joinNames(known) + ")" : hint));
                ok = false;
                continue;
            }
            if (!mod->hasInstance(mw, instance)) {
                std::string block = instance.empty() ? "middleware." + std::string(mod->blockKey())
                                                     : "middleware.\"" + entry + "\"";
                std::string failed_key = instance.empty() ? std::string(name) : entry;
                if (!middleware_failed_.count(failed_key)) {
                    ctx_.error(item, ipath,
                               "route '" + rt.id + "' uses middleware " + quoted(entry) + " but " +
                                   block + " is not configured (the route would run without it)");
                }
                ok = false;
                continue;
            }
            bool dup = false;
            for (const auto& have : rt.middleware) {
                std::string_view hn, hi;
                worker::splitMiddlewareName(have, hn, hi);
                if (hn == name && (have == entry || !mod->stacks())) {
                    ctx_.warn(item, ipath,
                              have == entry ? "middleware " + quoted(entry) + " is listed twice"
                                            : "middleware " + quoted(std::string(name)) +
                                                  " is listed twice (" + quoted(have) + " and " +
                                                  quoted(entry) + "); the first one is used");
                    dup = true;
                    break;
                }
            }
            if (!dup) {
                rt.middleware.push_back(entry);
            }
        }
        return ok;
    }

    bool decodeRouteWebSocket(const ConfigNode& node, const std::string& path,
                              core::RouteConfig& rt) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        core::RouteWebSocketConfig w;
        bool ok = r.req("enabled", w.enabled);
        ok = r.opt("protocols", w.protocols) && ok;
        ok = positiveDuration(r, "timeout", w.timeout) && ok;
        ok = positiveDuration(r, "idle_timeout", w.idle_timeout) && ok;
        ok = uintAtLeast(r, "max_message_size", 1, w.max_message_size) && ok;
        if (ok && w.protocols) {
            for (size_t i = 0; i < w.protocols->size(); ++i) {
                if (!isToken((*w.protocols)[i])) {
                    ctx_.error(r.node()->find("protocols")->item(i),
                               indexPath(r.path("protocols"), i),
                               "invalid subprotocol name " + quoted((*w.protocols)[i]));
                    ok = false;
                }
            }
        }
        if (ok) {
            rt.websocket = std::move(w);
        }
        return ok;
    }

    bool decodeRouteCache(const ConfigNode& node, const std::string& path,
                          const core::CacheConfig& global, core::RouteConfig& rt) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return false;
        }
        core::RouteCacheConfig c;
        bool ok = r.req("enabled", c.enabled);
        ok = positiveDuration(r, "ttl", c.ttl) && ok;
        ok = r.opt("max_body_size", c.max_body_size) && ok;
        ok = r.opt("cache_with_query_params", c.cache_with_query_params) && ok;
        if (const ConfigNode* m = r.get("methods")) {
            if (ctx_.convert(*m, r.path("methods"), c.methods)) {
                for (size_t i = 0; i < c.methods.size(); ++i) {
                    c.methods[i] = upper(c.methods[i]);
                    if (!isToken(c.methods[i])) {
                        ctx_.error(m->item(i), indexPath(r.path("methods"), i),
                                   "invalid method " + quoted(c.methods[i]));
                        ok = false;
                    }
                }
            } else {
                ok = false;
            }
        }
        if (ok && c.enabled && global.configured && !global.enabled) {
            ctx_.warn(r.markOf("enabled"), r.path("enabled"),
                      "has no effect while the global cache.enabled is false");
        }
        if (ok && c.enabled) {
            bool reads = false;
            std::string others;
            for (const auto& m : c.methods) {
                if (m == "GET" || m == "HEAD") {
                    reads = true;
                } else {
                    others += (others.empty() ? "" : ", ") + m;
                }
            }
            if (!reads) {
                ctx_.warn(r.markOf("methods"), r.path("methods"),
                          "neither GET nor HEAD: this route caches nothing");
            } else if (!others.empty()) {
                ctx_.warn(r.markOf("methods"), r.path("methods"),
                          "only GET responses are stored (HEAD is answered from them); " + others +
                              " ignored");
            }
        }
        if (ok) {
            rt.cache = std::move(c);
        }
        return ok;
    }

    // `^…$` patterns are PCRE2 regexes: compile them now so a typo fails the load.
    bool checkPattern(MapReader& r, const char* key, const std::string& pattern) {
        if (pattern.empty()) {
            ctx_.error(r.markOf(key), r.path(key), "must not be empty");
            return false;
        }
        if (pattern.size() < 2 || pattern.front() != '^' || pattern.back() != '$') {
            return true;
        }
        int code = 0;
        PCRE2_SIZE offset = 0;
        pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                       PCRE2_UTF, &code, &offset, nullptr);
        if (re != nullptr) {
            pcre2_code_free(re);
            return true;
        }
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(code, buf, sizeof(buf));
        ctx_.error(r.markOf(key), r.path(key),
                   std::string("invalid ") + key + " regex " + quoted(pattern) + ": " +
                       reinterpret_cast<const char*>(buf) + " at offset " + std::to_string(offset));
        return false;
    }

    // --- cross-section checks -------------------------------------------------------------------

    void checkListeners(const core::Config& cfg) {
        struct Listener {
            const char* path;
            const core::SocketAddress* addr;
        };
        std::vector<Listener> ls;
        ls.push_back({"server.http_addr", &cfg.server.http_addr});
        if (cfg.server.https_addr) {
            ls.push_back({"server.https_addr", &*cfg.server.https_addr});
        }
        if (cfg.metrics.metrics_addr) {
            ls.push_back({"metrics.metrics_addr", &*cfg.metrics.metrics_addr});
        }
        auto isAny = [](const core::IpAddress& ip) {
            return std::all_of(ip.bytes.begin(), ip.bytes.end(), [](uint8_t b) { return b == 0; });
        };
        for (size_t i = 1; i < ls.size(); ++i) {
            for (size_t j = 0; j < i; ++j) {
                const auto& a = *ls[i].addr;
                const auto& b = *ls[j].addr;
                if (a.port == 0 || a.port != b.port || a.ip.family != b.ip.family) {
                    continue;
                }
                if (a.ip == b.ip || isAny(a.ip) || isAny(b.ip)) {
                    ctx_.error(listener_marks_[ls[i].path], ls[i].path,
                               "address " + a.toString() + " overlaps " + ls[j].path + " (" +
                                   b.toString() + ")");
                }
            }
        }
    }

    // --- shared field helpers -------------------------------------------------------------------

    template <typename T>
    bool uintAtLeast(MapReader& r, const char* key, uint64_t min, T& out) {
        const ConfigNode* v = r.get(key);
        if (v == nullptr) {
            return true;
        }
        uint64_t n = 0;
        if (!ctx_.integer(*v, r.path(key), min, std::numeric_limits<T>::max(), n)) {
            return false;
        }
        out = static_cast<T>(n);
        return true;
    }

    /// An integer percentage, 0..100.
    bool percent(MapReader& r, const char* key, uint32_t& out) {
        const ConfigNode* v = r.get(key);
        if (v == nullptr) {
            return true;
        }
        uint64_t n = 0;
        if (!ctx_.integer(*v, r.path(key), 0, 100, n)) {
            return false;
        }
        out = static_cast<uint32_t>(n);
        return true;
    }

    bool positiveDuration(MapReader& r, const char* key, Duration& out) {
        const ConfigNode* v = r.get(key);
        if (v == nullptr) {
            return true;
        }
        Duration d{};
        if (!ctx_.convert(*v, r.path(key), d)) {
            return false;
        }
        if (d <= Duration::zero()) {
            ctx_.error(*v, r.path(key), "must be greater than zero");
            return false;
        }
        out = d;
        return true;
    }

    bool positiveDuration(MapReader& r, const char* key, std::optional<Duration>& out) {
        if (r.node() == nullptr || r.node()->find(key) == nullptr ||
            r.node()->find(key)->isNull()) {
            r.get(key);  // mark as known
            return true;
        }
        Duration d{};
        if (!positiveDuration(r, key, d)) {
            return false;
        }
        out = d;
        return true;
    }

    static constexpr long kMaxWorkers = 1024;

    Ctx& ctx_;
    std::vector<std::string> backend_names_;
    std::set<std::string> invalid_backends_;
    std::set<std::string> middleware_failed_;
    std::map<std::string, SourceMark> listener_marks_;
};

// ---------------------------------------------------------------------------------------------
// Dump
// ---------------------------------------------------------------------------------------------

class Dumper {
public:
    explicit Dumper(bool mask) : mask_(mask) {}

    std::string run(const core::Config& c) {
        section("server");
        const auto& s = c.server;
        kv("http_addr", str(s.http_addr.toString()));
        kv("https_addr", s.https_addr ? str(s.https_addr->toString()) : "~");
        kv("tls_cert", optStr(s.tls_cert));
        kv("tls_key", optStr(s.tls_key));
        if (s.https_addr) {
            const auto& t = s.tls;
            section("tls");
            // tls_cert / tls_key, printed above, are the first entry of the list.
            size_t from =
                s.tls_cert && s.tls_key && !t.certificates.empty() &&
                        t.certificates[0] == core::TlsCertificate{*s.tls_cert, *s.tls_key, {}}
                    ? 1
                    : 0;
            line(from == t.certificates.size() ? "certificates: []" : "certificates:");
            for (size_t i = from; i < t.certificates.size(); ++i) {
                const auto& cert = t.certificates[i];
                item();
                kv("cert", str(cert.cert));
                kv("key", str(cert.key));
                if (!cert.ocsp_response.empty()) {
                    kv("ocsp_response", str(cert.ocsp_response));
                }
                endItem();
            }
            std::vector<std::string> protocols;
            if (t.tls12) {
                protocols.emplace_back("TLSv1.2");
            }
            if (t.tls13) {
                protocols.emplace_back("TLSv1.3");
            }
            kv("protocols", strList(protocols));
            kv("ciphers", str(t.ciphers));
            kv("ciphersuites", str(t.ciphersuites));
            kv("curves", str(t.curves));
            kv("session_tickets", boolean(t.session_tickets));
            kv("session_timeout", dur(t.session_timeout));
            kv("ticket_key_rotation", dur(t.ticket_key_rotation));
            kv("handshake_timeout", dur(t.handshake_timeout));
            kv("client_ca", t.client_ca.empty() ? "~" : str(t.client_ca));
            kv("verify_client", t.verify_client == core::TlsVerifyClient::Off        ? "off"
                                : t.verify_client == core::TlsVerifyClient::Optional ? "optional"
                                                                                     : "on");
            kv("verify_depth", std::to_string(t.verify_depth));
            end();
        }
        kv("connection_timeout", dur(s.connection_timeout));
        kv("max_connections", std::to_string(s.max_connections));
        if (s.upgrade_sock_set) {
            kv("upgrade_sock", str(s.upgrade_sock));  // QUIT offers the sockets there
        } else {
            line("# upgrade_sock: " + str(s.upgrade_sock) + "  (not set: QUIT offers nothing)");
        }
        kv("worker_processes", s.worker_processes_auto
                                   ? "auto  # " + std::to_string(s.worker_processes)
                                   : std::to_string(s.worker_processes));
        kv("pid_file", str(s.pid_file));
        kv("error_log", s.error_log.empty() ? "stderr" : str(s.error_log));
        kv("log_level", s.log_level ? std::string(core::logLevelName(*s.log_level)) : "~");
        kv("access_log", s.access_log.empty() ? "off" : str(s.access_log));
        kv("user", s.user.empty() ? "~" : str(s.user));
        kv("group", s.group.empty() ? "~" : str(s.group));
        kv("access_log_format",
           s.access_log_format == core::AccessLogFormat::Combined ? "combined" : "json");
        kv("shutdown_timeout", dur(s.shutdown_timeout));
        kv("max_body_size", std::to_string(s.max_body_size));
        kv("max_request_line", std::to_string(s.max_request_line));
        kv("max_header_size", std::to_string(s.max_header_size));
        kv("max_headers", std::to_string(s.max_headers));
        kv("underscores_in_headers", boolean(s.underscores_in_headers));
        kv("header_read_timeout", dur(s.header_read_timeout));
        kv("resolve_interval", dur(s.resolve_interval));
        kv("keepalive_requests", std::to_string(s.keepalive_requests));
        kv("upstream_keepalive_timeout", dur(s.upstream_keepalive_timeout));
        kv("lingering_time", dur(s.lingering_time));
        kv("lingering_timeout", dur(s.lingering_timeout));
        kv("client_abort", s.client_abort_cancel ? "cancel" : "continue");
        kv("request_id", s.request_id == core::RequestIdMode::Keep ? "keep" : "always_generate");
        kv("trace_context", s.trace_context ? "propagate" : "off");
        kv("trace_sampled", s.trace_sampled ? "true" : "false");
        std::vector<std::string> cidrs;
        for (const auto& cidr : s.trusted_proxies) {
            cidrs.push_back(cidr.toString());
        }
        kv("trusted_proxies", strList(cidrs));
        kv("reuse_port", boolean(s.reuse_port));
        kv("io_uring", boolean(s.io_uring));
        end();

        section("load_balancing");
        kv("algorithm", std::string(core::lbAlgorithmName(c.load_balancing.algorithm)));
        section("backends");
        for (const auto& b : c.load_balancing.backends) {
            dumpBackend(b);
        }
        end();
        end();

        line("routes:" + std::string(c.routes.empty() ? " []" : ""));
        for (const auto& r : c.routes) {
            dumpRoute(r);
        }

        const auto& m = c.middleware;
        if (!m.rate_limiting && !m.authentication && !m.cors && !m.transform &&
            m.rate_limit_named.empty() && m.auth_named.empty() && m.cors_named.empty() &&
            m.transform_named.empty()) {
            kv("middleware", "{}");
        } else {
            section("middleware");
            dumpMiddleware(m);
            end();
        }

        if (c.redis.configured) {
            dumpRedis(c.redis);
        }

        section("health_check");
        kv("enabled", boolean(c.health_check.enabled));
        kv("interval", dur(c.health_check.interval));
        kv("timeout", dur(c.health_check.timeout));
        kv("failure_threshold", std::to_string(c.health_check.failure_threshold));
        kv("success_threshold", std::to_string(c.health_check.success_threshold));
        end();

        section("metrics");
        kv("prometheus", boolean(c.metrics.prometheus));
        kv("metrics_path", str(c.metrics.metrics_path));
        kv("metrics_addr", c.metrics.metrics_addr ? str(c.metrics.metrics_addr->toString()) : "~");
        kv("detailed_metrics", boolean(c.metrics.detailed_metrics));
        kv("expose_on_main", boolean(c.metrics.expose_on_main));
        end();

        if (c.cache.configured) {
            section("cache");
            kv("enabled", boolean(c.cache.enabled));
            kv("max_entries", std::to_string(c.cache.max_entries));
            kv("default_ttl", dur(c.cache.default_ttl));
            kv("max_body_size", std::to_string(c.cache.max_body_size));
            kv("cache_with_query_params", boolean(c.cache.cache_with_query_params));
            kv("max_memory", std::to_string(c.cache.max_memory));
            kv("min_ttl", dur(c.cache.min_ttl));
            kv("cache_authorized", boolean(c.cache.cache_authorized));
            kv("strip_set_cookie", boolean(c.cache.strip_set_cookie));
            kv("stale_while_revalidate", dur(c.cache.stale_while_revalidate));
            kv("stale_if_error", dur(c.cache.stale_if_error));
            kv("lock_timeout", dur(c.cache.lock_timeout));
            end();
        } else {
            line("# cache: not configured (routes' cache blocks use the defaults)");
        }
        return out_;
    }

private:
    void dumpBackend(const core::BackendConfig& b) {
        section(keyText(b.name));
        kv("algorithm", std::string(core::lbAlgorithmName(b.algorithm)));
        kv("two_choices", boolean(b.two_choices));
        kv("hash_key", hashKey(b.hash_key));
        kv("fail_open", boolean(b.fail_open));
        kv("max_fails", std::to_string(b.max_fails));
        kv("fail_timeout", dur(b.fail_timeout));
        kv("count_5xx", boolean(b.count_5xx));
        kv("max_ejection_percent", std::to_string(b.max_ejection_percent));
        kv("max_ejection_time", dur(b.max_ejection_time));
        kv("panic_threshold", std::to_string(b.panic_threshold));
        kv("retry_budget", std::to_string(b.retry_budget));
        kv("min_retry_concurrency", std::to_string(b.min_retry_concurrency));
        kv("max_requests", std::to_string(b.max_requests));
        kv("max_pending", std::to_string(b.max_pending));
        kv("failure_percentage", std::to_string(b.failure_percentage));
        kv("failure_percentage_min_requests", std::to_string(b.failure_percentage_min_requests));
        line("upstreams:");
        for (const auto& u : b.upstreams) {
            item();
            kv("address", str(u.address.toString()));
            kv("weight", std::to_string(u.weight));
            kv("tls", boolean(u.tls));
            kv("sni_hostname", optStr(u.sni_hostname));
            if (u.tls) {
                kv("tls_verify", boolean(u.tls_verify));
                kv("ca_file", u.ca_file.empty() ? "~" : str(u.ca_file));
                kv("tls_cert", u.tls_cert.empty() ? "~" : str(u.tls_cert));
                kv("tls_key", u.tls_key.empty() ? "~" : str(u.tls_key));
            }
            kv("max_connections",
               u.max_connections ? std::to_string(*u.max_connections) : std::string("~"));
            section("tcp_keepalive");
            kv("enabled", boolean(u.tcp_keepalive.enabled));
            kv("idle", dur(u.tcp_keepalive.idle));
            kv("interval", dur(u.tcp_keepalive.interval));
            kv("count", std::to_string(u.tcp_keepalive.count));
            end();
            kv("connection_timeout", dur(u.connection_timeout));
            kv("read_timeout", dur(u.read_timeout));
            kv("write_timeout", dur(u.write_timeout));
            endItem();
        }
        const auto& h = b.health_check;
        if (!h.configured) {
            // Not a block of the file: shown commented out so the dump reads back the same.
            line("# effective health check (no health_check block; defaults and global values)");
            comment_ = true;
        }
        section("health_check");
        kv("enabled", boolean(h.enabled));
        kv("check_type", std::string(core::healthCheckTypeName(h.check_type)));
        kv("path", str(h.path));
        kv("expected_status", std::to_string(h.expected_status));
        kv("interval", dur(h.interval));
        kv("method", str(h.method));
        kv("host", optStr(h.host));
        kv("timeout", dur(h.timeout));
        kv("failure_threshold", std::to_string(h.failure_threshold));
        kv("success_threshold", std::to_string(h.success_threshold));
        kv("tls_verify", boolean(h.tls_verify));
        end();
        comment_ = false;
        end();
    }

    void dumpRoute(const core::RouteConfig& r) {
        item();
        kv("id", str(r.id));
        kv("path", str(r.path));
        kv("methods", r.methods.empty() ? "~  # any" : strList(r.methods));
        kv("host", optStr(r.host));
        kv("backend", str(r.backend));
        kv("middleware", strList(r.middleware));
        kv("timeout", r.timeout ? dur(*r.timeout) : "~");
        kv("retries", std::to_string(r.retries));
        kv("retry_non_idempotent", boolean(r.retry_non_idempotent));
        {
            std::string on;
            for (const auto& [n, b] : core::retry_on::kNames) {
                if ((r.retry_on & b) != 0) {
                    on += on.empty() ? "" : ", ";
                    on += n;
                }
            }
            kv("retry_on", "[" + on + "]");
        }
        kv("per_try_timeout", r.per_try_timeout ? dur(*r.per_try_timeout) : "~");
        kv("retry_backoff", dur(r.retry_backoff));
        kv("retry_backoff_max", dur(r.retry_backoff_max));
        kv("fresh_connection_for_unsafe", boolean(r.fresh_connection_for_unsafe));
        kv("strip_prefix", optStr(r.strip_prefix));
        kv("rewrite", optStr(r.rewrite));
        if (r.websocket) {
            const auto& w = *r.websocket;
            section("websocket");
            kv("enabled", boolean(w.enabled));
            kv("protocols", w.protocols ? strList(*w.protocols) : "~");
            kv("timeout", w.timeout ? dur(*w.timeout) : "~");
            kv("idle_timeout", w.idle_timeout ? dur(*w.idle_timeout) : "~");
            kv("max_message_size", std::to_string(w.max_message_size));
            end();
        }
        if (r.cache) {
            const auto& c = *r.cache;
            section("cache");
            kv("enabled", boolean(c.enabled));
            kv("ttl", c.ttl ? dur(*c.ttl) : "~");
            kv("max_body_size", c.max_body_size ? std::to_string(*c.max_body_size) : "~");
            kv("cache_with_query_params",
               c.cache_with_query_params ? boolean(*c.cache_with_query_params) : "~");
            kv("methods", strList(c.methods));
            end();
        }
        endItem();
    }

    void dumpMiddleware(const core::MiddlewareConfig& m) {
        if (m.rate_limiting) {
            dumpRateLimit("rate_limiting", *m.rate_limiting);
        }
        if (m.authentication) {
            dumpAuth("authentication", *m.authentication);
        }
        if (m.cors) {
            dumpCors("cors", *m.cors);
        }
        if (m.transform) {
            dumpTransform("transform", *m.transform);
        }
        for (const auto& [n, c] : m.rate_limit_named) {
            dumpRateLimit(str("rate_limit:" + n), c);
        }
        for (const auto& [n, c] : m.auth_named) {
            dumpAuth(str("auth:" + n), c);
        }
        for (const auto& [n, c] : m.cors_named) {
            dumpCors(str("cors:" + n), c);
        }
        for (const auto& [n, c] : m.transform_named) {
            dumpTransform(str("transform:" + n), c);
        }
    }

    void dumpRateLimit(const std::string& key, const core::RateLimitConfig& rl) {
        section(key);
        using RL = core::RateLimitConfig;
        char rate[32];
        std::snprintf(rate, sizeof rate, "%.9g", rl.requests);
        kv(rl.per == RL::Per::Second   ? "requests_per_second"
           : rl.per == RL::Per::Minute ? "requests_per_minute"
                                       : "requests_per_hour",
           std::string(rate));
        kv("burst", std::to_string(rl.burst));
        const auto& k = rl.key;
        using K = core::RateLimitKey::Kind;
        kv("key", k.kind == K::Ip       ? "ip"
                  : k.kind == K::Route  ? "route"
                  : k.kind == K::Header ? str("header:" + k.name)
                                        : str("query_param:" + k.name));
        kv("scope", rl.scope == RL::Scope::Shared ? "shared" : "route");
        kv("missing_key", rl.missing_key == RL::MissingKey::Share ? "share" : "reject");
        kv("on_full", rl.on_full == RL::OnFull::Allow ? "allow" : "deny");
        kv("max_keys", std::to_string(rl.max_keys));
        kv("headers", rl.headers ? "true" : "false");
        kv("legacy_headers", rl.legacy_headers ? "true" : "false");
        if (rl.store == RL::Store::Redis) {
            kv("store", "redis");
            kv("on_store_error", rl.on_store_error == RL::OnStoreError::Allow  ? "allow"
                                 : rl.on_store_error == RL::OnStoreError::Deny ? "deny"
                                                                               : "local");
            kv("instances", std::to_string(rl.instances));
            kv("sync", rl.sync == RL::Sync::Batched ? "batched" : "exact");
            if (rl.sync == RL::Sync::Batched) {
                kv("batch_interval", dur(rl.batch_interval));
            }
        } else {
            kv("store", "local");
        }
        end();
    }

    void dumpRedis(const core::RedisConfig& r) {
        section("redis");
        std::vector<std::string> addrs;
        for (const auto& a : r.addresses) {
            addrs.push_back(a.toString());
        }
        if (addrs.size() == 1) {
            kv("address", str(addrs[0]));
        } else {
            kv("addresses", strList(addrs));
        }
        using Mode = core::RedisConfig::Mode;
        kv("mode", r.mode == Mode::Cluster    ? "cluster"
                   : r.mode == Mode::Sentinel ? "sentinel"
                                              : "standalone");
        if (r.mode == Mode::Sentinel) {
            kv("master_name", str(r.master_name));
            kv("sentinel_username", r.sentinel_username.empty() ? "~" : str(r.sentinel_username));
            // Never shown, like password.
            kv("sentinel_password", r.sentinel_password.empty() ? "~" : str("****"));
        }
        kv("username", r.username.empty() ? "~" : str(r.username));
        // Never shown, not even unmasked: a dump goes to terminals and logs.
        kv("password", r.password.empty() ? "~" : str("****"));
        kv("database", std::to_string(r.database));
        kv("connect_timeout", dur(r.connect_timeout));
        kv("command_timeout", dur(r.command_timeout));
        kv("retry_interval", dur(r.retry_interval));
        kv("key_prefix", str(r.key_prefix));
        kv("pool_size", std::to_string(r.pool_size));
        section("tls");
        kv("enabled", boolean(r.tls.enabled));
        if (r.tls.enabled) {
            // Paths only: the files' contents (keys) are never shown.
            kv("tls_verify", boolean(r.tls.tls_verify));
            kv("ca_file", r.tls.ca_file.empty() ? "~" : str(r.tls.ca_file));
            kv("tls_cert", r.tls.tls_cert.empty() ? "~" : str(r.tls.tls_cert));
            kv("tls_key", r.tls.tls_key.empty() ? "~" : str(r.tls.tls_key));
            kv("sni_hostname", optStr(r.tls.sni_hostname));
            if (r.mode == Mode::Sentinel) {
                kv("sentinels", boolean(r.tls.sentinels));
            }
        }
        end();
        end();
    }

    void dumpAuth(const std::string& key, const core::AuthConfig& a) {
        section(key);
        kv("auth_type", std::string(core::authTypeName(a.auth_type)));
        kv("cache_ttl", dur(a.cache_ttl));
        if (a.jwt) {
            const core::JwtConfig& j = *a.jwt;
            section("jwt");
            kv("secret", j.secret.empty() ? std::string("\"\"") : secret(j.secret));
            kv("secret_base64", boolean(j.secret_base64));
            std::vector<std::string> algs;
            for (auto alg : j.algorithms) {
                algs.emplace_back(core::jwtAlgorithmName(alg));
            }
            kv("algorithms", strList(algs));
            kv("public_key_file", str(j.public_key_file));
            kv("jwks_file", str(j.jwks_file));
            kv("jwks_url", str(j.jwks_url));
            kv("jwks_ca_file", str(j.jwks_ca_file));
            kv("jwks_refresh_interval", dur(j.jwks_refresh_interval));
            kv("jwks_timeout", dur(j.jwks_timeout));
            kv("header", str(j.header));
            kv("cookie", str(j.cookie));
            kv("query", str(j.query));
            kv("leeway", dur(j.leeway));
            kv("issuer", strList(j.issuer));
            kv("audience", strList(j.audience));
            if (!j.required_claims.empty() && j.required_claims.front().second) {
                section("required_claims");  // claim: required value
                for (const auto& [n, v] : j.required_claims) {
                    kv(str(n), str(v.value_or("")));
                }
                end();
            } else {
                std::vector<std::string> req;
                for (const auto& [n, v] : j.required_claims) {
                    req.push_back(n);
                }
                kv("required_claims", strList(req));
            }
            kv("require_exp", boolean(j.require_exp));
            kv("max_token_size", std::to_string(j.max_token_size));
            if (j.forward_claims.empty()) {
                kv("forward_claims", "{}");
            } else {
                section("forward_claims");  // claim: header
                for (const auto& [claim, header] : j.forward_claims) {
                    kv(str(claim), str(header));
                }
                end();
            }
            kv("forward_token", boolean(j.forward_token));
            end();
        }
        if (a.api_key) {
            section("api_key");
            std::string keys = "[";
            for (const auto& k : a.api_key->keys) {
                std::string shown = str(mask_ ? "****" : k.key);
                keys += keys.size() > 1 ? ", " : "";
                keys += k.name.empty() ? shown : "{key: " + shown + ", name: " + str(k.name) + "}";
            }
            kv("keys", keys + "]");
            kv("keys_file", str(a.api_key->keys_file));
            kv("header", str(a.api_key->header));
            kv("query", optStr(a.api_key->query));
            kv("consumer_header", str(a.api_key->consumer_header));
            kv("forward_key", boolean(a.api_key->forward_key));
            end();
        }
        if (a.basic) {
            section("basic");
            kv("htpasswd_file", str(a.basic->htpasswd_file));
            kv("realm", str(a.basic->realm));
            kv("consumer_header", str(a.basic->consumer_header));
            end();
        }
        end();
    }

    void dumpCors(const std::string& key, const core::CorsConfig& c) {
        section(key);
        kv("allowed_origins", strList(c.allowed_origins));
        kv("allowed_methods", strList(c.allowed_methods));
        kv("allowed_headers", strList(c.allowed_headers));
        kv("max_age", c.max_age ? dur(*c.max_age) : "~");
        kv("expose_headers", strList(c.expose_headers));
        kv("allow_credentials", boolean(c.allow_credentials));
        end();
    }

    void dumpTransform(const std::string& key, const core::TransformConfig& t) {
        section(key);
        for (auto [name, h] : {std::pair{"request_headers", &t.request_headers},
                               std::pair{"response_headers", &t.response_headers}}) {
            section(name);
            headerMap("add", h->add);
            kv("remove", strList(h->remove));
            headerMap("set", h->set);
            end();
        }
        end();
    }

    void headerMap(const char* name, const core::HeaderList& list) {
        if (list.empty()) {
            kv(name, "{}");
            return;
        }
        section(name);
        for (const auto& [k, v] : list) {
            // Transform values are templates already in the file's syntax (gateway variables
            // and "$${" kept as written): no escaping of "${".
            kv(keyText(k), str(v, false));
        }
        end();
    }

    // Scalars are written as double-quoted YAML strings (escaping quotes, backslashes and
    // control bytes, and "${" as "$${" so the dump reads back to the same value).
    static std::string str(std::string_view s, bool escape_dollar = true) {
        std::string out = "\"";
        for (size_t i = 0; i < s.size(); ++i) {
            char c = s[i];
            auto u = static_cast<unsigned char>(c);
            if (c == '"' || c == '\\') {
                out += '\\';
                out += c;
            } else if (u < 0x20 || u == 0x7f) {
                static const char* kHex = "0123456789abcdef";
                out += "\\x";
                out += kHex[u >> 4];
                out += kHex[u & 15];
            } else if (escape_dollar && c == '$' && i + 1 < s.size() && s[i + 1] == '{') {
                out += "$$";
            } else {
                out += c;
            }
        }
        out += '"';
        return out;
    }

    static std::string keyText(std::string_view k) {
        bool plain = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == '-';
        });
        return plain ? std::string(k) : str(k);
    }

    static std::string optStr(const std::optional<std::string>& s) {
        return s ? str(*s) : std::string("~");
    }
    static std::string dur(Duration d) { return str(core::formatDuration(d)); }
    static std::string boolean(bool b) { return b ? "true" : "false"; }
    static std::string strList(const std::vector<std::string>& v) {
        std::string out = "[";
        for (size_t i = 0; i < v.size(); ++i) {
            out += (i ? ", " : "") + str(v[i]);
        }
        return out + "]";
    }
    static std::string hashKey(const core::HashKey& k) {
        using K = core::HashKey::Kind;
        switch (k.kind) {
            case K::Ip:
                return "ip";
            case K::Path:
                return "path";
            case K::Header:
                return str("header:" + k.name);
            case K::Cookie:
                return str("cookie:" + k.name);
        }
        return "ip";
    }
    std::string secret(const std::string& s) const { return mask_ ? str("****") : str(s); }

    void line(const std::string& text) {
        out_ += indentText();
        if (comment_) {
            out_ += "# ";
        }
        out_ += text;
        out_ += '\n';
        pending_dash_ = false;
    }
    std::string indentText() const {
        std::string s(static_cast<size_t>(depth_) * 2, ' ');
        if (pending_dash_ && s.size() >= 2) {
            s[s.size() - 2] = '-';
        }
        return s;
    }
    void kv(std::string_view key, const std::string& value) {
        line(std::string(key) + ": " + value);
    }
    void section(std::string_view key) {
        line(std::string(key) + ":");
        ++depth_;
    }
    void end() { --depth_; }
    void item() {
        ++depth_;
        pending_dash_ = true;
    }
    void endItem() { --depth_; }

    bool mask_;
    bool comment_ = false;
    bool pending_dash_ = false;
    int depth_ = 0;
    std::string out_;
};

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

void sortDiagnostics(std::vector<Diagnostic>& d) {
    std::stable_sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) {
        int la = a.line > 0 ? a.line : INT_MAX;
        int lb = b.line > 0 ? b.line : INT_MAX;
        if (la != lb) {
            return la < lb;
        }
        return a.column < b.column;
    });
}

LoadResult fileError(const std::string& file, std::string message) {
    LoadResult res;
    Diagnostic d;
    d.file = file;
    d.message = std::move(message);
    res.diagnostics.push_back(std::move(d));
    return res;
}

}  // namespace

bool substituteEnv(core::ConfigNode& root, const EnvLookup& env, std::vector<Diagnostic>& diags) {
    EnvSubstituter sub(env, diags);
    sub.walk(root, "");
    return sub.ok();
}

LoadResult loadConfigString(std::string_view text, std::string_view format,
                            const std::string& display_name, const EnvLookup& env,
                            const HostResolver& resolver) {
    LoadResult res;
    try {
        std::optional<ConfigNode> root;
        if (format == "yaml" || format == "yml") {
            root = parseYamlDocument(text, display_name, res.diagnostics);
        } else if (format == "json") {
            root = parseJsonDocument(text, display_name, res.diagnostics);
        } else if (format == "toml") {
            root = parseTomlDocument(text, display_name, res.diagnostics);
        } else {
            return fileError(display_name, "unknown config format '" + std::string(format) +
                                               "' (expected yaml, json or toml)");
        }
        if (!root) {
            return res;
        }
        if (!substituteEnv(*root, env, res.diagnostics)) {
            sortDiagnostics(res.diagnostics);
            return res;
        }
        Ctx ctx(display_name, resolver);
        auto cfg = std::make_unique<core::Config>();
        Decoder(ctx).decode(*root, *cfg);
        for (auto& d : ctx.diags) {
            res.diagnostics.push_back(std::move(d));
        }
        sortDiagnostics(res.diagnostics);
        if (!ctx.failed) {
            res.config = std::move(cfg);
        }
    } catch (const std::exception& e) {
        res.config.reset();
        Diagnostic d;
        d.file = display_name;
        d.message = std::string("internal error while loading the configuration: ") + e.what();
        res.diagnostics.push_back(std::move(d));
    }
    return res;
}

LoadResult loadConfigFile(const std::string& path, const EnvLookup& env,
                          const HostResolver& resolver) {
    auto endsWith = [&path](std::string_view suffix) {
        return path.size() > suffix.size() &&
               path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    std::string_view format;
    if (endsWith(".yaml") || endsWith(".yml")) {
        format = "yaml";
    } else if (endsWith(".json")) {
        format = "json";
    } else if (endsWith(".toml")) {
        format = "toml";
    } else {
        return fileError(path, "unsupported config file suffix; use .yaml, .yml, .json or .toml");
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return fileError(path, std::string("failed to read config file: ") + std::strerror(errno));
    }
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = errno;
            ::close(fd);
            return fileError(path,
                             std::string("failed to read config file: ") + std::strerror(err));
        }
        if (n == 0) {
            break;
        }
        text.append(buf, static_cast<size_t>(n));
        if (text.size() > kMaxConfigBytes) {
            ::close(fd);
            return fileError(path, "failed to read config file: larger than 64 MiB");
        }
    }
    ::close(fd);
    return loadConfigString(text, format, path, env, resolver);
}

std::string dumpConfigMasked(const core::Config& config) { return Dumper(true).run(config); }

std::string dumpConfigUnmasked(const core::Config& config) { return Dumper(false).run(config); }

}  // namespace photon::master
