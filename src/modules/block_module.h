// SPDX-License-Identifier: Apache-2.0
// What every middleware module with a `middleware.<block>` configuration has in common: decoding
// the default block and its named instances, and finding an instance.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/module.h"

namespace photon::mod {

/// A module whose configuration is one typed block `Conf`, kept in MiddlewareConfig as the
/// default instance (`Default`) and the named ones (`Named`), and decoded by `Decode`.
/// Subclasses give the names and attach().
template <typename Conf, std::optional<Conf> core::MiddlewareConfig::*Default,
          std::vector<std::pair<std::string, Conf>> core::MiddlewareConfig::*Named,
          void (*Decode)(core::cfg::Ctx&, const core::ConfigNode&, const std::string&,
                         std::optional<Conf>&)>
class BlockModule : public worker::Module {
public:
    bool configure(core::cfg::Ctx& ctx, const core::ConfigNode& node, const std::string& path,
                   const std::string& instance, core::MiddlewareConfig& out) const override {
        std::optional<Conf> c;
        Decode(ctx, node, path, c);
        if (!c) {
            return false;
        }
        if (instance.empty()) {
            out.*Default = std::move(*c);
        } else {
            (out.*Named).emplace_back(instance, std::move(*c));
        }
        return true;
    }

    bool hasInstance(const core::MiddlewareConfig& mw, std::string_view instance) const override {
        return find(mw, instance) != nullptr;
    }

    /// The configuration of `instance` ("" = the default block), or nullptr.
    static const Conf* find(const core::MiddlewareConfig& mw, std::string_view instance) {
        return core::MiddlewareConfig::instance(mw.*Default, mw.*Named, instance);
    }
};

}  // namespace photon::mod
