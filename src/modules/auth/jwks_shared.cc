// SPDX-License-Identifier: Apache-2.0
// JWKS documents from URLs: master-side fetching and publishing, worker-side reading.
#include "modules/auth/jwks_shared.h"

#include <xxhash.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "core/log.h"
#include "modules/auth/jwks_fetch.h"
#include "modules/auth/jwt.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "shm/seqlock.h"

namespace photon::mod::auth {

namespace {

struct Remote {
    std::string instance;
    std::string url;
    std::string ca_file;
    std::string name;  // the segment's
    uint64_t interval_us = 0;
    double timeout_s = 5;
    std::unique_ptr<shm::MappedSegment> seg;
    JwksShm* shm = nullptr;
    uint64_t next_fetch_us = 0;
    uint64_t last_attempt_us = 0;
};
std::vector<Remote> g_remotes;
// Segments of earlier configurations: a worker forked from an older proxy model still finds
// them mapped.
std::vector<std::unique_ptr<shm::MappedSegment>> g_retired;

constexpr uint64_t kKidRefreshGapUs = 5'000'000;

void publish(JwksShm& s, std::string_view doc, uint64_t hash) {
    uint64_t token = 0;
    if (!shm::SeqLock::tryBeginWrite(s.version, shm::SeqLock::kMasterWriter, token)) {
        return;  // only the master writes: cannot happen, and the next fetch retries
    }
    const size_t words = (doc.size() + 7) / 8;
    for (size_t i = 0; i < words; ++i) {
        uint64_t w = 0;
        std::memcpy(&w, doc.data() + i * 8, std::min<size_t>(8, doc.size() - i * 8));
        s.words[i].store(w, std::memory_order_relaxed);  // ordered by the seqlock's fences
    }
    s.length.store(doc.size(), std::memory_order_relaxed);
    s.content_hash.store(hash, std::memory_order_relaxed);
    shm::SeqLock::endWrite(s.version, token);
}

void fetch(Remote& r, uint64_t now_us) {
    r.last_attempt_us = now_us;
    auto body = fetchHttps(r.url, r.ca_file, r.timeout_s);
    std::string why;
    if (body.ok()) {
        if (body.value().size() > kJwksMaxBytes) {
            why = "the document is larger than 256 KiB";
        } else if (auto ks = JwtKeySet::fromJwks(body.value()); !ks.ok()) {
            why = ks.error().msg;
        } else {
            const uint64_t hash = XXH3_64bits(body.value().data(), body.value().size());
            if (hash != r.shm->content_hash.load(std::memory_order_relaxed) ||
                r.shm->version.load() == 0) {
                publish(*r.shm, body.value(), hash);
                LOG_NOTICE("jwks_url %s: %zu key(s) in service", r.url.c_str(), ks.value().size());
            }
            r.next_fetch_us = now_us + r.interval_us;
            return;
        }
    } else {
        why = body.error().msg;
    }
    // The last good document stays in service; try again sooner than the interval.
    LOG_WARN("jwks_url %s: fetch failed (%s); %s", r.url.c_str(), why.c_str(),
             r.shm->version.load() == 0 ? "no keys yet: its tokens are refused until a fetch "
                                          "succeeds"
                                        : "keeping the keys in service");
    r.next_fetch_us = now_us + std::min<uint64_t>(r.interval_us, 30'000'000);
}

}  // namespace

bool readJwks(const JwksShm& s, std::string& doc, uint64_t& version) {
    for (int attempt = 0; attempt < shm::SeqLock::kReadAttempts; ++attempt) {
        const uint64_t v = shm::SeqLock::readBegin(s.version);
        if (shm::SeqLock::isWriting(v)) {
            continue;
        }
        if (shm::SeqLock::sequenceOf(v) == 0) {
            return false;  // nothing published yet
        }
        const uint64_t len = s.length.load(std::memory_order_relaxed);
        if (len > kJwksMaxBytes) {
            continue;
        }
        doc.resize(len);
        for (size_t i = 0; i < (len + 7) / 8; ++i) {
            uint64_t w = s.words[i].load(std::memory_order_relaxed);
            std::memcpy(doc.data() + i * 8, &w, std::min<size_t>(8, len - i * 8));
        }
        if (shm::SeqLock::readValid(s.version, v)) {
            version = v;
            return true;
        }
    }
    return false;
}

core::Result<void> mapRemoteJwks(const core::Config& cfg, std::string_view shm_instance) {
    std::vector<std::pair<std::string, const core::AuthConfig*>> want;
    if (cfg.middleware.authentication) {
        want.emplace_back(std::string(), &*cfg.middleware.authentication);
    }
    for (const auto& [n, a] : cfg.middleware.auth_named) {
        want.emplace_back(n, &a);
    }
    std::vector<Remote> next;
    const uint64_t now = shm::monotonicMicros();
    for (const auto& [instance, a] : want) {
        if (!a->jwt || a->jwt->jwks_url.empty() || a->auth_type != core::AuthType::Jwt) {
            continue;
        }
        const core::JwtConfig& j = *a->jwt;
        Remote r;
        r.instance = instance;
        r.url = j.jwks_url;
        r.ca_file = j.jwks_ca_file;
        r.interval_us = static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(j.jwks_refresh_interval).count());
        r.timeout_s = std::chrono::duration<double>(j.jwks_timeout).count();
        std::string label = instance + '\n' + j.jwks_url;
        char hex[17];
        std::snprintf(hex, sizeof hex, "%016" PRIx64, XXH3_64bits(label.data(), label.size()));
        r.name = shm::segmentName(shm_instance, std::string("jwks-") + hex);
        for (auto& o : g_remotes) {
            if (o.name == r.name && o.seg) {
                r.seg = std::move(o.seg);  // same instance and URL: the same document
                r.shm = o.shm;
                r.last_attempt_us = o.last_attempt_us;
            }
        }
        if (!r.seg) {
            const uint64_t fp = XXH3_64bits(j.jwks_url.data(), j.jwks_url.size());
            auto seg = shm::MappedSegment::create(r.name, sizeof(JwksShm), kJwksLayoutVersion, fp);
            if (!seg.ok()) {
                for (auto& n : next) {  // give back what this call took
                    for (auto& o : g_remotes) {
                        if (o.name == n.name && !o.seg) {
                            o.seg = std::move(n.seg);
                        }
                    }
                }
                return core::fail("jwks_url ", j.jwks_url, ": ", seg.error().msg);
            }
            r.seg = std::make_unique<shm::MappedSegment>(std::move(seg.value()));
            r.shm = reinterpret_cast<JwksShm*>(r.seg->body());
        }
        // A new document is fetched before the configuration goes into service; a reload
        // re-fetches within a second.
        if (r.shm->version.load() == 0) {
            fetch(r, now);
        } else {
            r.next_fetch_us = now;
        }
        next.push_back(std::move(r));
    }
    for (auto& o : g_remotes) {
        if (!o.seg) {
            continue;
        }
        bool kept = false;
        for (const auto& n : next) {
            kept = kept || n.name == o.name;
        }
        if (!kept) {
            shm::MappedSegment::remove(o.name);
        }
        g_retired.push_back(std::move(o.seg));
    }
    g_remotes = std::move(next);
    return {};
}

void remoteJwksTick(uint64_t now_us) {
    for (auto& r : g_remotes) {
        const uint64_t asked = r.shm->refresh_request_us.load(std::memory_order_relaxed);
        const uint64_t gap = std::min(kKidRefreshGapUs, r.interval_us);
        const bool kid_miss = asked > r.last_attempt_us && now_us - r.last_attempt_us >= gap;
        if (now_us >= r.next_fetch_us || kid_miss) {
            fetch(r, now_us);
        }
    }
}

void removeRemoteJwks() {
    for (auto& r : g_remotes) {
        r.seg.reset();
        shm::MappedSegment::remove(r.name);
    }
    g_remotes.clear();
    g_retired.clear();
}

JwksShm* findRemoteJwks(std::string_view instance) {
    for (auto& r : g_remotes) {
        if (r.instance == instance) {
            return r.shm;
        }
    }
    return nullptr;
}

}  // namespace photon::mod::auth
