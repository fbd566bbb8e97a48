// SPDX-License-Identifier: Apache-2.0
// Registration of the auth module (validated; refused with 503 until implemented).
#include "modules/auth/module.h"

#include "modules/auth/config.h"
#include "modules/block_module.h"

namespace photon::mod::auth {

namespace {

using Base = BlockModule<core::AuthConfig, &core::MiddlewareConfig::authentication,
                         &core::MiddlewareConfig::auth_named, decodeAuth>;

class AuthModule final : public FailClosedModule<Base> {
public:
    std::string_view name() const override { return "auth"; }
    std::string_view blockKey() const override { return "authentication"; }

private:
    std::string_view refusal() const override {
        return "middleware 'auth' is not available in this version";
    }
};

}  // namespace

worker::Module& module() {
    static AuthModule m;
    return m;
}

}  // namespace photon::mod::auth
