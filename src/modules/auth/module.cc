// SPDX-License-Identifier: Apache-2.0
// Registration of the auth module.
#include "modules/auth/module.h"

#include <map>
#include <memory>

#include "modules/auth/auth.h"
#include "modules/auth/config.h"
#include "modules/auth/jwks_shared.h"
#include "modules/block_module.h"

namespace photon::mod::auth {

namespace {

using Base = BlockModule<core::AuthConfig, &core::MiddlewareConfig::authentication,
                         &core::MiddlewareConfig::auth_named, decodeAuth>;

class AuthModule final : public Base {
public:
    std::string_view name() const override { return "auth"; }
    std::string_view blockKey() const override { return "authentication"; }

    core::Result<void> attach(worker::RouteChainBuilder& chain, const core::Config& cfg,
                              const core::RouteConfig&, std::string_view instance,
                              uint16_t module) const override {
        const core::AuthConfig* c = find(cfg.middleware, instance);
        if (c == nullptr) {
            return core::Error{"auth instance '" + std::string(instance) + "' is not configured"};
        }
        // One compiled instance (keys, cache) for every route of this configuration that
        // lists it; a new configuration (reload) compiles afresh, re-reading key files.
        auto key = std::make_pair(&cfg, std::string(instance));
        auto it = compiled_.find(key);
        if (it == compiled_.end()) {
            auto inst = AuthInstance::compile(*c, instance, transformClaimNames(cfg));
            if (!inst.ok()) {
                return inst.error();
            }
            it = compiled_.emplace(key, std::move(inst.value())).first;
        }
        auto conf = std::make_unique<AuthConf>();
        conf->inst = it->second;
        conf->slot = module;
        AuthConf* k = chain.keep(std::move(conf));
        chain.add(worker::Phase::Access, accessHandler, k, module);
        chain.add(worker::Phase::HeaderFilter, headerHandler, k, module);
        return {};
    }

    core::Result<void> mapShared(const core::Config& cfg,
                                 std::string_view shm_instance) override {
        compiled_.clear();  // a build starts: the routes' AuthConfs keep what they use
        return mapRemoteJwks(cfg, shm_instance);
    }
    void masterTick(uint64_t now_us) override { remoteJwksTick(now_us); }
    void removeShared() override { removeRemoteJwks(); }

private:
    mutable std::map<std::pair<const core::Config*, std::string>,
                     std::shared_ptr<const AuthInstance>>
        compiled_;
};

}  // namespace

worker::Module& module() {
    static AuthModule m;
    return m;
}

}  // namespace photon::mod::auth
