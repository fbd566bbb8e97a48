// SPDX-License-Identifier: Apache-2.0
// Registration of the rate_limit module.
#include "modules/ratelimit/module.h"

#include "modules/block_module.h"
#include "modules/ratelimit/config.h"
#include "modules/ratelimit/limiter.h"
#include "modules/ratelimit/redis_store.h"
#include "worker/context.h"

namespace photon::mod::ratelimit {

namespace {

using Base = BlockModule<core::RateLimitConfig, &core::MiddlewareConfig::rate_limiting,
                         &core::MiddlewareConfig::rate_limit_named, decodeRateLimit>;

class RateLimitModule final : public Base {
public:
    std::string_view name() const override { return "rate_limit"; }
    std::string_view blockKey() const override { return "rate_limiting"; }

    core::Result<void> attach(worker::RouteChainBuilder& chain, const core::Config& cfg,
                              const core::RouteConfig& route, std::string_view instance,
                              uint16_t module) const override {
        const core::RateLimitConfig* c = find(cfg.middleware, instance);
        if (c == nullptr) {
            return core::Error{"rate_limit instance '" + std::string(instance) +
                               "' is not configured"};
        }
        // Without a mapped table (photon -t) the handler refuses with 503; never unlimited.
        auto conf = LimitConf::compile(*c, instance, route.id, findSharedLimit(instance));
        conf->slot = module;
        LimitConf* k = chain.keep(std::move(conf));
        chain.add(worker::Phase::Access, accessHandler, k, module);
        chain.add(worker::Phase::HeaderFilter, headerHandler, k, module);
        return {};
    }

    bool stacks() const override { return true; }  // several limits on a route all apply

    core::Result<void> mapShared(const core::Config& cfg, std::string_view shm_instance) override {
        return mapSharedLimits(cfg, shm_instance);
    }
    void removeShared() override { removeSharedLimits(); }

    // Workers connect to Redis when a limit has store: redis (never blocks).
    core::Result<void> initProcess() override {
        return startRedisStore(*worker::ctx().init->config, worker::ctx().loop, &worker::ctx().io);
    }
};

}  // namespace

worker::Module& module() {
    static RateLimitModule m;
    return m;
}

}  // namespace photon::mod::ratelimit
