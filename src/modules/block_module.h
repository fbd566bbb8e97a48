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

/// A module this version validates but cannot enforce (authentication, rate limiting): a route
/// that lists it answers 503 from the Access phase, never forwarding the request unprotected.
template <typename Base>
class FailClosedModule : public Base {
public:
    core::Result<void> attach(worker::RouteChainBuilder& chain, const core::Config&,
                              const core::RouteConfig&, std::string_view,
                              uint16_t module) const override {
        chain.add(worker::Phase::Access, refuse, this, module);
        return {};
    }
    bool available() const override { return false; }

private:
    static worker::Verdict refuse(worker::Request& req, const void* self) {
        const auto* m = static_cast<const FailClosedModule*>(self);
        return req.fail(503, m->refusal());
    }
    /// "middleware 'auth' is not available in this version" (static text).
    virtual std::string_view refusal() const = 0;
};

}  // namespace photon::mod
