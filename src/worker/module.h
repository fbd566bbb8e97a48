// SPDX-License-Identifier: Apache-2.0
// The module interface: what a middleware module provides to the config loader (its keys and
// their validation), to route compilation (its handlers in a route's chain) and to each process.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/config_reader.h"
#include "core/result.h"
#include "worker/request.h"

namespace photon::worker {

/// Collects the handlers of one route while it is compiled (master side).
class RouteChainBuilder {
public:
    /// Adds `fn` to `phase`; `conf` must live as long as the Proxy model (use keep()).
    void add(Phase phase, PhaseFn fn, const void* conf, uint16_t module) {
        pending_.push_back(Handler{fn, conf, phase, module});
    }
    /// Takes ownership of a compiled configuration and returns it.
    template <typename T>
    T* keep(std::unique_ptr<T> conf) {
        T* raw = conf.get();
        owned_.push_back(std::move(conf));
        return raw;
    }
    /// Declares that the chain answers every CORS preflight itself (see Chain).
    void answersPreflight() { preflight_ = true; }
    /// Declares that a handler reads the route match's captures (see Chain::needs_match).
    void needsMatch() { needs_match_ = true; }
    /// Sorts the handlers into a Chain: by phase, then by module (registry) order.
    Chain build() const;
    /// Compiled configurations, moved into the Proxy model after all routes are built.
    std::vector<std::unique_ptr<ModuleConf>>& owned() { return owned_; }

private:
    std::vector<Handler> pending_;
    std::vector<std::unique_ptr<ModuleConf>> owned_;
    bool preflight_ = false;
    bool needs_match_ = false;
};

/// One middleware module. Modules are listed in src/modules/registry.cc; their order there is
/// the handler order inside a phase. Every method runs in the master, before fork, except
/// initProcess (each worker and the helper, after fork).
class Module {
public:
    virtual ~Module() = default;
    /// The name routes use in `middleware: [...]` ("cors"); "name:instance" picks an instance.
    virtual std::string_view name() const = 0;
    /// The key of the default instance's block under `middleware` ("cors", "rate_limiting").
    virtual std::string_view blockKey() const = 0;
    /// Decodes and validates one block: the default instance (`instance` empty, from
    /// middleware.<blockKey>) or a named one (from middleware."<name>:<instance>"), into
    /// `out`. Reports every problem through `ctx`; returns false when the block is invalid.
    virtual bool configure(core::cfg::Ctx& ctx, const core::ConfigNode& node,
                           const std::string& path, const std::string& instance,
                           core::MiddlewareConfig& out) const = 0;
    /// Whether `instance` ("" = the default) is configured in `mw`.
    virtual bool hasInstance(const core::MiddlewareConfig& mw, std::string_view instance) const = 0;
    /// Adds this module's handlers to a route that lists it (with `instance`, "" = default).
    /// `module` is this module's registry index (its request slot).
    virtual core::Result<void> attach(RouteChainBuilder& chain, const core::Config& cfg,
                                      const core::RouteConfig& route, std::string_view instance,
                                      uint16_t module) const = 0;
    /// Master only, at start and before every reload, before routes are compiled (attach):
    /// creates or re-attaches the shared-memory segments the configured instances need, with
    /// names under `shm_instance` (shm::segmentName). A segment whose shape is unchanged keeps
    /// its state. Mappings a running worker may use stay mapped until removeShared().
    virtual core::Result<void> mapShared(const core::Config& /*cfg*/,
                                         std::string_view /*shm_instance*/) {
        return {};
    }
    /// Master only, about once a second between signals: background work that must stay off
    /// the workers' loops (fetching key documents). May block briefly (bounded).
    virtual void masterTick(uint64_t /*now_us*/) {}
    /// Master only, on clean exit: unmaps the module's segments and removes their names.
    virtual void removeShared() {}
    /// Whether a route may list several instances of this module, all of which apply (rate
    /// limits); otherwise the first instance listed is used and the others warned about.
    virtual bool stacks() const { return false; }
    /// Per-process set-up after fork (worker and helper).
    virtual core::Result<void> initProcess() { return {}; }
    /// Whether the module enforces what it promises in this version. A route that lists a
    /// module that does not is refused (503), never served unprotected; `photon -t` and the
    /// start-up log say so.
    virtual bool available() const { return true; }
};

/// Splits a route's middleware entry "name" or "name:instance".
inline void splitMiddlewareName(std::string_view entry, std::string_view& name,
                                std::string_view& instance) {
    size_t colon = entry.find(':');
    name = entry.substr(0, colon);
    instance = colon == std::string_view::npos ? std::string_view() : entry.substr(colon + 1);
}

}  // namespace photon::worker
