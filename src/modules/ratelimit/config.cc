// SPDX-License-Identifier: Apache-2.0
// Validation of the ratelimit middleware's keys.
#include "modules/ratelimit/config.h"

#include <algorithm>
#include <cstdint>
#include <tuple>

namespace photon::mod::ratelimit {

namespace {

using core::ConfigNode;
using namespace core::cfg;  // NOLINT: the reader helpers are this file's vocabulary

class Decoder {
public:
    explicit Decoder(Ctx& ctx) : ctx_(ctx) {}

    void decodeRateLimit(const ConfigNode& node, const std::string& path,
                         std::optional<core::RateLimitConfig>& out) {
        MapReader r(ctx_, &node, path);
        if (!r.valid()) {
            return;
        }
        core::RateLimitConfig rl;
        bool ok = r.req("requests_per_second", rl.requests_per_second);
        std::optional<uint32_t> burst;
        ok = r.opt("burst", burst) && ok;
        rl.burst = burst ? *burst
                         : static_cast<uint32_t>(
                               std::min<uint64_t>(2ull * rl.requests_per_second, UINT32_MAX));
        const ConfigNode* key = r.require("key");
        ok = key != nullptr && decodeRateLimitKey(*key, r.path("key"), rl.key) && ok;
        if (ok && rl.requests_per_second == 0) {
            ctx_.warn(r.markOf("requests_per_second"), r.path("requests_per_second"),
                      "0 admits only the initial burst of " + std::to_string(rl.burst) +
                          " requests per key and then rejects everything");
        }
        if (ok) {
            out = std::move(rl);
        }
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
