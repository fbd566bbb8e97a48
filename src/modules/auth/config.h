// SPDX-License-Identifier: Apache-2.0
// Validation of the auth middleware's keys (master side).
#pragma once

#include <optional>
#include <string>

#include "core/config.h"
#include "core/config_reader.h"

namespace photon::mod::auth {

/// Decodes and validates one auth block at `path` into `out` (left empty when invalid); every
/// problem is reported through `ctx`.
void decodeAuth(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                std::optional<core::AuthConfig>& out);

}  // namespace photon::mod::auth
