// SPDX-License-Identifier: Apache-2.0
// Every middleware module of this build. The order of the list is the handler order inside a
// phase: in Access, the CORS preflight runs before rate limiting and authentication (PHOTON-SPEC
// decision 3); in HeaderFilter, CORS headers are added before the response transform runs, so a
// transform has the last word. Adding a module: its folder, plus one line here.
#include "modules/registry.h"

#include <array>

#include "modules/auth/module.h"
#include "modules/cors/module.h"
#include "modules/ratelimit/module.h"
#include "modules/transform/module.h"

namespace photon::mod {

namespace {

const std::array<worker::Module*, 4>& list() {
    static const std::array<worker::Module*, 4> kModules = {
        &cors::module(),
        &ratelimit::module(),
        &auth::module(),
        &transform::module(),
    };
    static_assert(kModules.size() <= worker::kMaxModules);
    return kModules;
}

}  // namespace

std::span<worker::Module* const> modules() { return {list().data(), list().size()}; }

worker::Module* findModule(std::string_view name) {
    for (worker::Module* m : list()) {
        if (m->name() == name) {
            return m;
        }
    }
    return nullptr;
}

worker::Module* findModuleByBlock(std::string_view key) {
    for (worker::Module* m : list()) {
        if (m->blockKey() == key) {
            return m;
        }
    }
    return nullptr;
}

uint16_t moduleIndex(const worker::Module* m) {
    for (size_t i = 0; i < list().size(); ++i) {
        if (list()[i] == m) {
            return static_cast<uint16_t>(i);
        }
    }
    return 0;
}

}  // namespace photon::mod
