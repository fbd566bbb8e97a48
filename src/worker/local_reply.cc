// SPDX-License-Identifier: Apache-2.0
// Gateway-generated responses.
#include "worker/local_reply.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "config.h"
#include "core/config.h"
#include "core/http_parser.h"
#include "modules/ratelimit/redis_store.h"
#include "worker/context.h"
#include "worker/proxy.h"
#include "worker/shared_state.h"

namespace photon::worker {

namespace {

void head(Buffer& out, int status, size_t body_len, std::string_view request_id,
          std::string_view extra, bool keep_alive, const core::http::HeaderList* fields = nullptr,
          bool body = true) {
    char line[256];
    std::string_view reason = core::http::reasonPhrase(status);
    // A field the filters set replaces the reply's own (a transform's Cache-Control, say).
    bool own_type = false, own_cache = false;
    if (fields != nullptr) {
        own_type = fields->find("content-type") != nullptr;
        own_cache = fields->find("cache-control") != nullptr;
    }
    int n;
    if (body) {
        n = snprintf(line, sizeof line, "HTTP/1.1 %d %.*s\r\n%sContent-Length: %zu\r\n%s", status,
                     static_cast<int>(reason.size()), reason.data(),
                     own_type ? "" : "Content-Type: application/json\r\n", body_len,
                     own_cache ? "" : "Cache-Control: no-store\r\n");
    } else if (status < 200 || status == 204 || status == 304) {
        n = snprintf(line, sizeof line, "HTTP/1.1 %d %.*s\r\n", status,
                     static_cast<int>(reason.size()), reason.data());
    } else {
        n = snprintf(line, sizeof line, "HTTP/1.1 %d %.*s\r\nContent-Length: 0\r\n", status,
                     static_cast<int>(reason.size()), reason.data());
    }
    out.append(line, static_cast<size_t>(n));
    if (fields != nullptr) {
        for (const auto& f : *fields) {
            size_t need = f.name.size() + f.value.size() + 4;
            if (need > out.space()) {
                out.overflowed = true;
                return;
            }
            out.append(f.name.data(), f.name.size());
            out.append(": ", 2);
            out.append(f.value.data(), f.value.size());
            out.append("\r\n", 2);
        }
    }
    if (!request_id.empty()) {
        out.append("X-Request-ID: ", 14);
        out.append(request_id.data(), request_id.size());
        out.append("\r\n", 2);
    }
    out.append(extra.data(), extra.size());
    if (!keep_alive) {
        out.append("Connection: close\r\n", 19);
    }
    out.append("\r\n", 2);
}

void escapeInto(char* buf, size_t cap, size_t& len, std::string_view s) {
    for (unsigned char ch : s) {
        if (len + 7 >= cap) {
            break;
        }
        if (ch == '"' || ch == '\\') {
            buf[len++] = '\\';
            buf[len++] = static_cast<char>(ch);
        } else if (ch < 0x20 || ch == 0x7f) {
            len += static_cast<size_t>(snprintf(buf + len, cap - len, "\\u%04x", ch));
        } else {
            buf[len++] = static_cast<char>(ch);
        }
    }
}

}  // namespace

void appendJsonEscaped(std::string& out, std::string_view s) {
    char buf[512];
    for (size_t i = 0; i < s.size(); i += 64) {
        size_t len = 0;
        escapeInto(buf, sizeof buf, len, s.substr(i, 64));
        out.append(buf, len);
    }
}

void buildLocalReply(Buffer& out, int status, std::string_view error, std::string_view request_id,
                     std::string_view extra_headers, bool keep_alive, bool head_only,
                     const core::http::HeaderList* fields, bool with_body) {
    if (!with_body) {
        head(out, status, 0, request_id, extra_headers, keep_alive, fields, false);
        return;
    }
    char body[768];
    size_t len = 0;
    auto put = [&](std::string_view s) {
        size_t k = std::min(s.size(), sizeof body - len);
        std::memcpy(body + len, s.data(), k);
        len += k;
    };
    put("{\"error\":\"");
    escapeInto(body, sizeof body - 64, len, error);
    len += static_cast<size_t>(
        snprintf(body + len, sizeof body - len, "\",\"status\":%d,\"request_id\":\"", status));
    escapeInto(body, sizeof body - 8, len, request_id);
    put("\"}\n");
    head(out, status, len, request_id, extra_headers, keep_alive, fields);
    if (!head_only) {
        out.append(body, len);
    }
}

void buildJsonReply(Buffer& out, int status, std::string_view json_body,
                    std::string_view request_id, bool keep_alive, bool head_only) {
    head(out, status, json_body.size(), request_id, {}, keep_alive);
    if (!head_only) {
        out.append(json_body.data(), json_body.size());
    }
}

void buildTypedHead(Buffer& out, int status, std::string_view content_type, size_t body_len,
                    std::string_view request_id, bool keep_alive) {
    char line[512];
    std::string_view reason = core::http::reasonPhrase(status);
    int n = snprintf(line, sizeof line,
                     "HTTP/1.1 %d %.*s\r\nContent-Type: %.*s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n",
                     status, static_cast<int>(reason.size()), reason.data(),
                     static_cast<int>(std::min<size_t>(content_type.size(), 200)),
                     content_type.data(), body_len);
    out.append(line, static_cast<size_t>(n));
    if (!request_id.empty()) {
        out.append("X-Request-ID: ", 14);
        out.append(request_id.data(), request_id.size());
        out.append("\r\n", 2);
    }
    if (!keep_alive) {
        out.append("Connection: close\r\n", 19);
    }
    out.append("\r\n", 2);
}

int healthBody(std::string& out) {
    const WorkerInit& init = *ctx().init;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_us = static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
    std::string backends;
    bool healthy = sharedHealthJson(*ctx().proxy, backends);
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"status\":\"%s\",\"version\":\"" PHOTON_VERSION
             "\",\"uptime_seconds\":%lld,"
             "\"pid\":%d,\"worker_slot\":%d,\"workers\":%u,\"generation\":%llu,"
             "\"connections\":%llu,\"backends\":",
             healthy ? "ok" : "degraded",
             static_cast<long long>((now_us - init.start_time_us) / 1000000),
             static_cast<int>(getppid()), init.slot, init.config->server.worker_processes,
             static_cast<unsigned long long>(init.generation),
             static_cast<unsigned long long>(sharedConnectionCount()));
    out = buf;
    out += backends;
    mod::ratelimit::appendStoreHealth(*init.config, out);
    out += "}\n";
    return healthy ? 200 : 503;
}

}  // namespace photon::worker
