// SPDX-License-Identifier: Apache-2.0
// Registration of the transform module.
#include "modules/transform/module.h"

#include "modules/transform/config.h"

#include "modules/transform/transform.h"

namespace photon::mod::transform {

namespace {

using worker::Phase;
using worker::Verdict;



class TransformModule final : public worker::Module {
public:
    std::string_view name() const override { return "transform"; }
    std::string_view blockKey() const override { return "transform"; }

    bool configure(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                   const std::string& instance, core::MiddlewareConfig& out) const override {
        std::optional<core::TransformConfig> c;
        decodeTransform(ctx, node, path, c);
        if (!c) {
            return false;
        }
        if (instance.empty()) {
            out.transform = std::move(*c);
        } else {
            out.transform_named.emplace_back(instance, std::move(*c));
        }
        return true;
    }

    bool hasInstance(const core::MiddlewareConfig& mw, std::string_view instance) const override {
        return core::MiddlewareConfig::instance(mw.transform, mw.transform_named, instance) != nullptr;
    }

    core::Result<void> attach(worker::RouteChainBuilder& chain, const core::Config& cfg,
                              const core::RouteConfig& route, std::string_view instance,
                              uint16_t module) const override;
};

}  // namespace

worker::Module& module() {
    static TransformModule m;
    return m;
}

core::Result<void> TransformModule::attach(worker::RouteChainBuilder& chain,
                                           const core::Config& cfg, const core::RouteConfig&,
                                           std::string_view instance, uint16_t module) const {
    const core::TransformConfig* c = core::MiddlewareConfig::instance(
        cfg.middleware.transform, cfg.middleware.transform_named, instance);
    if (c == nullptr) {
        return core::Error{"transform instance '" + std::string(instance) +
                           "' is not configured"};
    }
    auto compiled = TransformConf::compile(*c);
    if (!compiled.ok()) {
        return core::Error{compiled.error().msg};
    }
    auto conf = std::make_unique<TransformConf>(std::move(compiled.value()));
    conf->slot = module;
    conf->index();
    TransformConf* k = chain.keep(std::move(conf));
    if (k->uses_path_params) {
        chain.needsMatch();
    }
    if (k->response_needs_request) {
        chain.add(Phase::Access, captureHandler, k, module);
    }
    if (!k->request.empty()) {
        chain.add(Phase::Proxy, requestHandler, k, module);
    }
    if (!k->response.empty()) {
        chain.add(Phase::HeaderFilter, responseHandler, k, module);
    }
    return {};
}

}  // namespace photon::mod::transform
