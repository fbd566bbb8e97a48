// SPDX-License-Identifier: Apache-2.0
// The transform module's registration (listed in src/modules/registry.cc).
#pragma once

#include "worker/module.h"

namespace photon::mod::transform {

/// The module object (one per process, immutable).
worker::Module& module();

}  // namespace photon::mod::transform
