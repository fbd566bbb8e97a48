// SPDX-License-Identifier: Apache-2.0
// Validation of the ratelimit middleware's keys.
#include "modules/ratelimit/config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <utility>
#include <cstdint>
#include <tuple>

namespace photon::mod::ratelimit {

namespace {

using core::ConfigNode;
using namespace core::cfg;  // NOLINT: the reader helpers are this file's vocabulary

/// Upper bound of max_keys: a table of 2^25 slots (512 MiB of shared memory).
constexpr uint64_t kMaxKeys = 16777216;
/// Upper bound of instances (Photon instances sharing one Redis-backed limit).
constexpr uint64_t kMaxInstances = 1024;

class Decoder {
public:
    explicit Decoder(Ctx& ctx) : ctx_(ctx) {}

    void decodeRateLimit(const ConfigNode& node, const std::string& path,
                         std::optional<core::RateLimitConfig>& out) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return;
        }
        using RL = core::RateLimitConfig;
        RL rl;
        bool ok = true;
        // Exactly one of the three rate spellings.
        static constexpr std::pair<const char*, RL::Per> kRates[] = {
            {"requests_per_second", RL::Per::Second},
            {"requests_per_minute", RL::Per::Minute},
            {"requests_per_hour", RL::Per::Hour},
        };
        const char* rate_key = nullptr;
        for (auto [key, per] : kRates) {
            const ConfigNode* v = r.get(key);
            if (v == nullptr) {
                continue;
            }
            if (rate_key != nullptr) {
                ctx_.error(*v, r.path(key),
                           std::string("give one rate only: ") + rate_key + " is set too");
                ok = false;
                continue;
            }
            rate_key = key;
            rl.per = per;
            ok = readRate(*v, r.path(key), rl.requests) && ok;
        }
        if (rate_key == nullptr) {
            ctx_.error(node.mark(), r.path("requests_per_second"),
                       "missing required key \"requests_per_second\" (or requests_per_minute / "
                       "requests_per_hour)");
            ok = false;
        }
        std::optional<uint32_t> burst;
        ok = r.opt("burst", burst) && ok;
        const double per_second = rl.ratePerSecond();
        if (burst) {
            rl.burst = *burst;
        } else if (rl.per == RL::Per::Second) {
            // The original's default: two seconds' worth (rounded up, so 0.5/s gets 1).
            rl.burst = static_cast<uint32_t>(std::min(std::ceil(2 * per_second), 4294967295.0));
        } else {
            // A minute's or an hour's worth, as written.
            rl.burst = static_cast<uint32_t>(std::min(std::ceil(rl.requests), 4294967295.0));
        }
        const ConfigNode* key = r.require("key");
        ok = key != nullptr && decodeRateLimitKey(*key, r.path("key"), rl.key) && ok;
        ok = readChoice(r, "scope", {{"shared", RL::Scope::Shared}, {"route", RL::Scope::Route}},
                        rl.scope) &&
             ok;
        ok = readChoice(r, "missing_key",
                        {{"share", RL::MissingKey::Share}, {"reject", RL::MissingKey::Reject}},
                        rl.missing_key) &&
             ok;
        ok = readChoice(r, "on_full", {{"allow", RL::OnFull::Allow}, {"deny", RL::OnFull::Deny}},
                        rl.on_full) &&
             ok;
        if (const ConfigNode* mk = r.get("max_keys")) {
            uint64_t v = 0;
            if (ctx_.integer(*mk, r.path("max_keys"), 1, kMaxKeys, v)) {
                rl.max_keys = static_cast<uint32_t>(v);
            } else {
                ok = false;
            }
        }
        ok = r.opt("headers", rl.headers) && ok;
        ok = r.opt("legacy_headers", rl.legacy_headers) && ok;
        ok = readChoice(r, "store", {{"local", RL::Store::Local}, {"redis", RL::Store::Redis}},
                        rl.store) &&
             ok;
        ok = readChoice(r, "on_store_error",
                        {{"allow", RL::OnStoreError::Allow},
                         {"deny", RL::OnStoreError::Deny},
                         {"local", RL::OnStoreError::Local}},
                        rl.on_store_error) &&
             ok;
        if (const ConfigNode* n = r.get("instances")) {
            uint64_t v = 0;
            if (ctx_.integer(*n, r.path("instances"), 1, kMaxInstances, v)) {
                rl.instances = static_cast<uint32_t>(v);
            } else {
                ok = false;
            }
        }
        ok = readChoice(r, "sync", {{"exact", RL::Sync::Exact}, {"batched", RL::Sync::Batched}},
                        rl.sync) &&
             ok;
        if (const ConfigNode* n = r.get("batch_interval")) {
            core::Duration d{};
            if (!ctx_.convert(*n, r.path("batch_interval"), d)) {
                ok = false;
            } else if (d < std::chrono::milliseconds(1) || d > std::chrono::seconds(10)) {
                ctx_.error(*n, r.path("batch_interval"), "must be 1ms to 10s");
                ok = false;
            } else {
                rl.batch_interval = d;
            }
            if (ok && rl.sync != RL::Sync::Batched) {
                ctx_.warn(r.markOf("batch_interval"), r.path("batch_interval"),
                          "only sync: batched uses it");
                rl.batch_interval = RL{}.batch_interval;  // ignored: the model keeps the default
            }
        }
        if (ok && rl.store == RL::Store::Local) {
            for (const char* k : {"on_store_error", "instances", "sync", "batch_interval"}) {
                if (r.get(k) != nullptr) {
                    ctx_.warn(r.markOf(k), r.path(k), "has no effect with store: local");
                }
            }
            // Ignored settings keep their defaults, so that configs that behave the same compare
            // (and dump) the same.
            const RL def;
            rl.on_store_error = def.on_store_error;
            rl.instances = def.instances;
            rl.sync = def.sync;
            rl.batch_interval = def.batch_interval;
        } else if (ok && r.get("instances") != nullptr &&
                   rl.on_store_error != RL::OnStoreError::Local) {
            ctx_.warn(r.markOf("instances"), r.path("instances"),
                      "only on_store_error: local uses it");
        }
        if (ok && rl.key.kind == core::RateLimitKey::Kind::Route &&
            rl.scope == RL::Scope::Route) {
            ctx_.warn(r.markOf("scope"), r.path("scope"),
                      "key: route already gives each route its own bucket");
        }
        if (ok && per_second == 0) {
            ctx_.warn(r.markOf(rate_key), r.path(rate_key),
                      "0 admits only the initial burst of " + std::to_string(rl.burst) +
                          " requests per key and then rejects everything");
        } else if (ok && rl.burst == 0) {
            ctx_.warn(r.markOf("burst"), r.path("burst"), "0 rejects every request");
        }
        if (ok) {
            out = std::move(rl);
        }
    }

    /// A rate: a non-negative decimal number (integer, fraction or exponent form).
    bool readRate(const ConfigNode& n, const std::string& path, double& out) {
        using Kind = ConfigNode::ScalarKind;
        const std::string& t = n.text();
        bool numeric = n.isScalar() && (n.scalarKind() == Kind::Int ||
                                        n.scalarKind() == Kind::Float ||
                                        n.scalarKind() == Kind::Untyped);
        // Digits, one optional fraction, one optional exponent: no sign, hex, inf or nan.
        size_t i = 0;
        auto digits = [&] {
            size_t from = i;
            while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
                ++i;
            }
            return i > from;
        };
        bool shape = digits();
        if (shape && i < t.size() && t[i] == '.') {
            ++i;
            shape = digits();
        }
        if (shape && i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
            ++i;
            if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
                ++i;
            }
            shape = digits();
        }
        shape = shape && i == t.size();
        if (!numeric || !shape) {
            ctx_.error(n, path, "expected a non-negative number of requests, got " + n.describe());
            return false;
        }
        double v = std::strtod(t.c_str(), nullptr);
        if (!std::isfinite(v) || v > 4294967295.0) {
            ctx_.error(n, path, "value " + t + " is out of range (0-4294967295)");
            return false;
        }
        if (v > 0 && v * 1e6 < 1) {
            ctx_.error(n, path, "value " + t + " is too small (one request per million seconds "
                       "at least)");
            return false;
        }
        out = v;
        return true;
    }

    template <typename E>
    bool readChoice(MapReader& r, const char* key,
                    std::initializer_list<std::pair<const char*, E>> choices, E& out) {
        const ConfigNode* v = r.get(key);
        if (v == nullptr) {
            return true;
        }
        std::string s;
        if (!ctx_.convert(*v, r.path(key), s)) {
            return false;
        }
        std::string names;
        for (const auto& [name, value] : choices) {
            if (s == name) {
                out = value;
                return true;
            }
            names += names.empty() ? "" : " or ";
            names += name;
        }
        ctx_.error(*v, r.path(key), "unknown value " + quoted(s) + " (expected " + names + ")");
        return false;
    }

    bool decodeRateLimitKey(const ConfigNode& n, const std::string& path, core::RateLimitKey& k) {
        using K = core::RateLimitKey::Kind;
        static const char* kExpected =
            "expected ip, route, header:NAME or query_param:NAME (YAML also !header NAME and "
            "!query_param NAME; JSON/TOML also {\"header\": NAME} and {\"query_param\": NAME})";
        auto named = [&](K kind, const ConfigNode& value, const std::string& vpath,
                         std::string_view what) {
            std::string name;
            if (!ctx_.convert(value, vpath, name)) {
                return false;
            }
            if (!isToken(name)) {
                ctx_.error(value, vpath,
                           std::string(what) + " name " + quoted(name) + " is not a valid name");
                return false;
            }
            k.kind = kind;
            k.name = std::move(name);
            return true;
        };
        if (!n.tag().empty()) {
            if (n.tag() == "!header") {
                return named(K::Header, n, path, "header");
            }
            if (n.tag() == "!query_param") {
                return named(K::QueryParam, n, path, "query parameter");
            }
            if ((n.tag() == "!ip" || n.tag() == "!route") && n.isScalar() && n.text().empty()) {
                k.kind = n.tag() == "!ip" ? K::Ip : K::Route;
                return true;
            }
            ctx_.error(n, path, "unknown rate-limit key tag " + quoted(n.tag()) + ": " + kExpected);
            return false;
        }
        if (n.isMap()) {
            if (n.size() == 1 && (n.keyAt(0) == "header" || n.keyAt(0) == "query_param")) {
                bool header = n.keyAt(0) == "header";
                return named(header ? K::Header : K::QueryParam, n.item(0),
                             childPath(path, n.keyAt(0)), header ? "header" : "query parameter");
            }
            ctx_.error(n, path, "invalid rate-limit key map: " + std::string(kExpected));
            return false;
        }
        if (!n.isScalar()) {
            ctx_.error(n, path, "invalid rate-limit key, got " + n.describe() + ": " + kExpected);
            return false;
        }
        const std::string& s = n.text();
        if (s == "ip" || s == "route") {
            k.kind = s == "ip" ? K::Ip : K::Route;
            k.name.clear();
            return true;
        }
        for (auto [prefix, kind, what] :
             {std::tuple{"header:", K::Header, "header"},
              std::tuple{"query_param:", K::QueryParam, "query parameter"}}) {
            std::string_view p(prefix);
            if (s.compare(0, p.size(), p) == 0) {
                std::string name = s.substr(p.size());
                while (!name.empty() && name.front() == ' ') {
                    name.erase(0, 1);
                }
                if (!isToken(name)) {
                    ctx_.error(
                        n, path,
                        std::string(what) + " name " + quoted(name) + " is not a valid name");
                    return false;
                }
                k.kind = kind;
                k.name = std::move(name);
                return true;
            }
        }
        ctx_.error(n, path, "unknown rate-limit key " + quoted(s) + ": " + kExpected);
        return false;
    }

private:
    Ctx& ctx_;
};

}  // namespace

void decodeRateLimit(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                     std::optional<core::RateLimitConfig>& out) {
    Decoder(ctx).decodeRateLimit(node, path, out);
}

}  // namespace photon::mod::ratelimit
