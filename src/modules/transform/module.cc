// SPDX-License-Identifier: Apache-2.0
// Registration of the transform module.
#include "modules/transform/module.h"

#include "modules/block_module.h"
#include "modules/transform/config.h"
#include "modules/transform/transform.h"

namespace photon::mod::transform {

namespace {

using Base = BlockModule<core::TransformConfig, &core::MiddlewareConfig::transform,
                         &core::MiddlewareConfig::transform_named, decodeTransform>;

class TransformModule final : public Base {
public:
    std::string_view name() const override { return "transform"; }
    std::string_view blockKey() const override { return "transform"; }

    core::Result<void> attach(worker::RouteChainBuilder& chain, const core::Config& cfg,
                              const core::RouteConfig&, std::string_view instance,
                              uint16_t module) const override {
        const core::TransformConfig* c = find(cfg.middleware, instance);
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
            chain.add(worker::Phase::Access, captureHandler, k, module);
        }
        if (!k->request.empty()) {
            chain.add(worker::Phase::Proxy, requestHandler, k, module);
        }
        if (!k->response.empty()) {
            chain.add(worker::Phase::HeaderFilter, responseHandler, k, module);
        }
        return {};
    }
};

}  // namespace

worker::Module& module() {
    static TransformModule m;
    return m;
}

}  // namespace photon::mod::transform
