// SPDX-License-Identifier: Apache-2.0
// The list of middleware modules, in pipeline order inside each phase.
#pragma once

#include <span>
#include <string_view>

#include "worker/module.h"

namespace photon::mod {

/// Every module of this build, in registry order (index = the module's request slot).
std::span<worker::Module* const> modules();

/// The module routes name `name` ("cors"), or nullptr.
worker::Module* findModule(std::string_view name);

/// The module whose default block is middleware.<key> ("rate_limiting"), or nullptr.
worker::Module* findModuleByBlock(std::string_view key);

/// Index of `m` in modules().
uint16_t moduleIndex(const worker::Module* m);

}  // namespace photon::mod
