// SPDX-License-Identifier: Apache-2.0
// Registration of the cors module.
#include "modules/cors/module.h"

#include "modules/block_module.h"
#include "modules/cors/config.h"
#include "modules/cors/cors.h"

namespace photon::mod::cors {

namespace {

using Base = BlockModule<core::CorsConfig, &core::MiddlewareConfig::cors,
                         &core::MiddlewareConfig::cors_named, decodeCors>;

class CorsModule final : public Base {
public:
    std::string_view name() const override { return "cors"; }
    std::string_view blockKey() const override { return "cors"; }

    core::Result<void> attach(worker::RouteChainBuilder& chain, const core::Config& cfg,
                              const core::RouteConfig&, std::string_view instance,
                              uint16_t module) const override {
        const core::CorsConfig* c = find(cfg.middleware, instance);
        if (c == nullptr) {
            return core::Error{"cors instance '" + std::string(instance) + "' is not configured"};
        }
        auto conf = std::make_unique<CorsConf>(CorsConf::compile(*c));
        conf->slot = module;
        CorsConf* k = chain.keep(std::move(conf));
        chain.add(worker::Phase::Access, accessHandler, k, module);
        chain.add(worker::Phase::HeaderFilter, headerHandler, k, module);
        chain.answersPreflight();
        return {};
    }
};

}  // namespace

worker::Module& module() {
    static CorsModule m;
    return m;
}

}  // namespace photon::mod::cors
