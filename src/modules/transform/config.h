// SPDX-License-Identifier: Apache-2.0
// Validation of the transform middleware's keys (master side).
#pragma once

#include <optional>
#include <string>

#include "core/config.h"
#include "core/config_reader.h"

namespace photon::mod::transform {

/// Decodes and validates one transform block at `path` into `out` (left empty when invalid); every
/// problem is reported through `ctx`.
void decodeTransform(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                     std::optional<core::TransformConfig>& out);

}  // namespace photon::mod::transform
