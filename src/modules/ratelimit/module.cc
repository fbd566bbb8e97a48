// SPDX-License-Identifier: Apache-2.0
// Registration of the rate_limit module (validated; refused with 503 until implemented).
#include "modules/ratelimit/module.h"

#include "modules/block_module.h"
#include "modules/ratelimit/config.h"

namespace photon::mod::ratelimit {

namespace {

using Base = BlockModule<core::RateLimitConfig, &core::MiddlewareConfig::rate_limiting,
                         &core::MiddlewareConfig::rate_limit_named, decodeRateLimit>;

class RateLimitModule final : public FailClosedModule<Base> {
public:
    std::string_view name() const override { return "rate_limit"; }
    std::string_view blockKey() const override { return "rate_limiting"; }

private:
    std::string_view refusal() const override {
        return "middleware 'rate_limit' is not available in this version";
    }
};

}  // namespace

worker::Module& module() {
    static RateLimitModule m;
    return m;
}

}  // namespace photon::mod::ratelimit
