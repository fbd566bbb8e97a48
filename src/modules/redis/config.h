// SPDX-License-Identifier: Apache-2.0
// Validation of the top-level `redis` block (master side).
#pragma once

#include "core/config.h"
#include "core/config_reader.h"

namespace photon::mod::redis {

/// Decodes and validates the `redis` block `node` into `out` (out.configured set when it is
/// valid); every problem is reported through `ctx`. Addresses must be IP literals: workers never
/// resolve names (that would block their loops).
void decodeRedis(core::cfg::Ctx& ctx, const core::ConfigNode& node, core::RedisConfig& out);

/// Reports an error for every rate limit in `middleware` (the config node, may be null) with
/// `store: redis` while `redis` is not configured.
void checkRedisUsers(core::cfg::Ctx& ctx, const core::ConfigNode* middleware,
                     const core::Config& cfg);

}  // namespace photon::mod::redis
