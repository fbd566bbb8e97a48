// SPDX-License-Identifier: Apache-2.0
// Validation of the ratelimit middleware's keys (master side).
#pragma once

#include <optional>
#include <string>

#include "core/config.h"
#include "core/config_reader.h"

namespace photon::mod::ratelimit {

/// Decodes and validates one ratelimit block at `path` into `out` (left empty when invalid); every
/// problem is reported through `ctx`.
void decodeRateLimit(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                     std::optional<core::RateLimitConfig>& out);

}  // namespace photon::mod::ratelimit
