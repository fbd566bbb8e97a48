// SPDX-License-Identifier: Apache-2.0
// Registration of the rate_limit module.
#include "modules/ratelimit/module.h"

#include "modules/ratelimit/config.h"



namespace photon::mod::ratelimit {

namespace {

using worker::Phase;
using worker::Verdict;

Verdict unavailable(worker::Request& req, const void*) {
    // Fail closed: a route that asks for protection this build cannot give is never proxied
    // unprotected.
    return req.fail(503, "middleware 'rate_limit' is not available in this version");
}

class RateLimitModule final : public worker::Module {
public:
    std::string_view name() const override { return "rate_limit"; }
    std::string_view blockKey() const override { return "rate_limiting"; }

    bool configure(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                   const std::string& instance, core::MiddlewareConfig& out) const override {
        std::optional<core::RateLimitConfig> c;
        decodeRateLimit(ctx, node, path, c);
        if (!c) {
            return false;
        }
        if (instance.empty()) {
            out.rate_limiting = std::move(*c);
        } else {
            out.rate_limit_named.emplace_back(instance, std::move(*c));
        }
        return true;
    }

    bool hasInstance(const core::MiddlewareConfig& mw, std::string_view instance) const override {
        return core::MiddlewareConfig::instance(mw.rate_limiting, mw.rate_limit_named, instance) != nullptr;
    }

    core::Result<void> attach(worker::RouteChainBuilder& chain, const core::Config&,
                              const core::RouteConfig&, std::string_view,
                              uint16_t module) const override {
        chain.add(Phase::Access, unavailable, nullptr, module);
        return {};
    }

    bool available() const override { return false; }
};

}  // namespace

worker::Module& module() {
    static RateLimitModule m;
    return m;
}

}  // namespace photon::mod::ratelimit
