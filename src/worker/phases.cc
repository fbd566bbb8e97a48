// SPDX-License-Identifier: Apache-2.0
// The phase engine and the Request's own methods.
#include "worker/phases.h"

#include <algorithm>
#include <cstring>

#include "worker/module.h"

namespace photon::worker {

namespace {

constexpr size_t idx(Phase p) { return static_cast<size_t>(p); }

}  // namespace

Verdict Request::respond(int status) {
    local_ = true;
    reply_status_ = status;
    reply_error_ = {};
    reply_body_ = false;
    return Verdict::Respond;
}

Verdict Request::fail(int status, std::string_view why) {
    local_ = true;
    reply_status_ = status;
    reply_error_ = why;
    reply_body_ = true;
    return Verdict::Respond;
}

char* Request::alloc(size_t n) {
    size_t at = (arena_used_ + 7u) & ~size_t{7};
    if (at + n > sizeof arena_buf_) {
        return nullptr;
    }
    arena_used_ = static_cast<uint32_t>(at + n);
    return arena_buf_ + at;
}

std::string_view Request::copy(std::string_view s) {
    if (s.empty()) {
        return {};
    }
    char* p = alloc(s.size());
    if (p == nullptr) {
        return {};
    }
    std::memcpy(p, s.data(), s.size());
    return {p, s.size()};
}

void Request::resume(Verdict v) {
    if (!suspended_) {
        return;  // aborted meanwhile, or a second call: the contract allows one
    }
    suspended_ = false;
    abort_fn_ = nullptr;
    host_->resumed(*this);
    Phase ph = phase_;
    uint16_t pos = pos_;
    switch (v) {
        case Verdict::Respond:
            answered_by = static_cast<uint8_t>(chain->handlers[pos].module + 1);
            runHeaderFilter(*this);
            return;
        case Verdict::SkipPhase:
            // Only Route..Proxy handlers suspend; the next phase starts at its first handler.
            runFrom(*this, ph, chain->start[idx(ph) + 1]);
            return;
        default:
            runFrom(*this, ph, static_cast<uint16_t>(pos + 1));
            return;
    }
}

void Request::abort() {
    if (!suspended_) {
        return;
    }
    suspended_ = false;
    AbortFn fn = abort_fn_;
    abort_fn_ = nullptr;
    if (fn != nullptr) {
        fn(*this, abort_arg_);
    }
}

void runFrom(Request& req, Phase phase, uint16_t pos) {
    const Chain* ch = req.chain;
    if (ch != nullptr) {
        // Route (after the match), Access, CacheLookup and Proxy handlers, in one flat walk.
        const uint16_t end = ch->start[idx(Phase::Proxy) + 1];
        uint16_t i = pos;
        if (i < ch->start[idx(phase)]) {
            i = ch->start[idx(phase)];
        }
        while (i < end) {
            const Handler& h = ch->handlers[i];
            switch (h.fn(req, h.conf)) {
                case Verdict::Next:
                    ++i;
                    break;
                case Verdict::SkipPhase:
                    i = ch->start[idx(h.phase) + 1];
                    break;
                case Verdict::Respond:
                    req.answered_by = static_cast<uint8_t>(h.module + 1);
                    runHeaderFilter(req);
                    return;
                case Verdict::Suspend:
                    req.phase_ = h.phase;  // where resume() continues
                    req.pos_ = i;
                    req.suspended_ = true;
                    return;
            }
        }
    }
    req.phase_ = Phase::Proxy;
    req.host_->proxy(req);
}

void runAfterRoute(Request& req) {
    if (req.chain == nullptr || req.chain->empty()) {
        req.phase_ = Phase::Proxy;
        req.host_->proxy(req);
        return;
    }
    runFrom(req, Phase::Route, 0);
}

namespace {

// The HeaderFilter handlers; false when one refused the head (it set a gateway error).
bool runFilters(Request& req) {
    req.phase_ = Phase::HeaderFilter;
    const Chain* ch = req.chain;
    if (ch != nullptr && ch->has(Phase::HeaderFilter)) {
        const uint16_t end = ch->start[idx(Phase::HeaderFilter) + 1];
        for (uint16_t i = ch->start[idx(Phase::HeaderFilter)]; i < end; ++i) {
            const Handler& h = ch->handlers[i];
            // Header filters edit the head. Respond means a filter could not build it (the head
            // no longer fits): the gateway's error goes out without the filters' fields.
            Verdict v = h.fn(req, h.conf);
            if (v == Verdict::Respond) {
                req.resp->headers.count = 0;
                return false;
            }
            if (v == Verdict::SkipPhase) {
                break;
            }
        }
    }
    return true;
}

}  // namespace

void runHeaderFilter(Request& req) {
    runFilters(req);
    req.host_->sendHead(req);
}

bool filterUpstreamHead(Request& req) { return runFilters(req); }

void runLog(Request& req) {
    req.phase_ = Phase::Log;
    const Chain* ch = req.chain;
    if (ch == nullptr || !ch->has(Phase::Log)) {
        return;
    }
    const uint16_t end = ch->start[idx(Phase::Log) + 1];
    for (uint16_t i = ch->start[idx(Phase::Log)]; i < end; ++i) {
        const Handler& h = ch->handlers[i];
        h.fn(req, h.conf);
    }
}

bool HeadEdits::dropsSlow(std::string_view name) const {
    const size_t bit = name.size() < 63 ? name.size() : 63;
    for (const HeadEdits* e = this; e != nullptr; e = e->next) {
        if ((e->drop_mask >> bit & 1) == 0) {
            continue;
        }
        for (size_t k = 0; k < e->drop_count; ++k) {
            if (name.size() == e->drop[k].size() &&
                core::http::equalsIgnoreCase(name, e->drop[k])) {
                return true;
            }
        }
    }
    return false;
}

Chain RouteChainBuilder::build() const {
    Chain c;
    c.handlers = pending_;
    c.answers_preflight = preflight_;
    for (const Handler& h : c.handlers) {
        c.slots = std::max<uint16_t>(c.slots, static_cast<uint16_t>(h.module + 1));
    }
    c.needs_match = needs_match_;
    std::stable_sort(c.handlers.begin(), c.handlers.end(), [](const Handler& a, const Handler& b) {
        return a.phase != b.phase ? a.phase < b.phase : a.module < b.module;
    });
    size_t i = 0;
    for (size_t p = 0; p <= kPhaseCount; ++p) {
        while (i < c.handlers.size() && static_cast<size_t>(c.handlers[i].phase) < p) {
            ++i;
        }
        c.start[p] = static_cast<uint16_t>(i);
    }
    return c;
}

size_t removeHeader(core::http::HeaderList& h, std::string_view name) {
    size_t w = 0;
    size_t n = h.count;
    for (size_t r = 0; r < n; ++r) {
        if (core::http::equalsIgnoreCase(h.items[r].name, name)) {
            continue;
        }
        if (w != r) {
            h.items[w] = h.items[r];
        }
        ++w;
    }
    h.count = static_cast<uint16_t>(w);
    return n - w;
}

void removeHeaders(core::http::HeaderList& h, const std::string_view* names, size_t count,
                   uint64_t len_mask) {
    size_t w = 0;
    size_t n = h.count;
    for (size_t r = 0; r < n; ++r) {
        std::string_view f = h.items[r].name;
        bool drop = false;
        size_t bit = f.size() < 63 ? f.size() : 63;
        for (size_t k = 0; (len_mask >> bit & 1) != 0 && k < count; ++k) {
            if (f.size() == names[k].size() && core::http::equalsIgnoreCase(f, names[k])) {
                drop = true;
                break;
            }
        }
        if (drop) {
            continue;
        }
        if (w != r) {
            h.items[w] = h.items[r];
        }
        ++w;
    }
    h.count = static_cast<uint16_t>(w);
}

}  // namespace photon::worker
