// SPDX-License-Identifier: Apache-2.0
// Validation of the cors middleware's keys (master side).
#pragma once

#include <optional>
#include <string>

#include "core/config.h"
#include "core/config_reader.h"

namespace photon::mod::cors {

/// Decodes and validates one cors block at `path` into `out` (left empty when invalid); every
/// problem is reported through `ctx`.
void decodeCors(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                std::optional<core::CorsConfig>& out);

}  // namespace photon::mod::cors
