// SPDX-License-Identifier: Apache-2.0
// Registration of the cors module.
#include "modules/cors/module.h"

#include "modules/cors/config.h"
#include "modules/cors/cors.h"


namespace photon::mod::cors {

namespace {

using worker::Phase;
using worker::Verdict;



class CorsModule final : public worker::Module {
public:
    std::string_view name() const override { return "cors"; }
    std::string_view blockKey() const override { return "cors"; }

    bool configure(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                   const std::string& instance, core::MiddlewareConfig& out) const override {
        std::optional<core::CorsConfig> c;
        decodeCors(ctx, node, path, c);
        if (!c) {
            return false;
        }
        if (instance.empty()) {
            out.cors = std::move(*c);
        } else {
            out.cors_named.emplace_back(instance, std::move(*c));
        }
        return true;
    }

    bool hasInstance(const core::MiddlewareConfig& mw, std::string_view instance) const override {
        return core::MiddlewareConfig::instance(mw.cors, mw.cors_named, instance) != nullptr;
    }

    core::Result<void> attach(worker::RouteChainBuilder& chain, const core::Config& cfg,
                              const core::RouteConfig& route, std::string_view instance,
                              uint16_t module) const override;
};

}  // namespace

worker::Module& module() {
    static CorsModule m;
    return m;
}

core::Result<void> CorsModule::attach(worker::RouteChainBuilder& chain, const core::Config& cfg,
                                      const core::RouteConfig&, std::string_view instance,
                                      uint16_t module) const {
    const core::CorsConfig* c = core::MiddlewareConfig::instance(
        cfg.middleware.cors, cfg.middleware.cors_named, instance);
    if (c == nullptr) {
        return core::Error{"cors instance '" + std::string(instance) + "' is not configured"};
    }
    auto conf = std::make_unique<CorsConf>(CorsConf::compile(*c));
    conf->slot = module;
    CorsConf* k = chain.keep(std::move(conf));
    chain.add(Phase::Access, accessHandler, k, module);
    chain.answersPreflight();
    chain.add(Phase::HeaderFilter, headerHandler, k, module);
    return {};
}

}  // namespace photon::mod::cors
