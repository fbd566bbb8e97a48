// SPDX-License-Identifier: Apache-2.0
// Access log implementation.
#include "worker/access_log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/config.h"
#include "core/log.h"
#include "modules/registry.h"
#include "modules/tracing/traceparent.h"
#include "worker/context.h"
#include "worker/http_conn.h"
#include "worker/local_reply.h"
#include "worker/proxy.h"

namespace photon::worker {

namespace {
constexpr size_t kFlushBytes = 32 * 1024;
}

std::unique_ptr<AccessLog> AccessLog::create(const core::Config& cfg) {
    const std::string& p = cfg.server.access_log;
    if (p.empty() || p == "off") {
        return nullptr;
    }
    std::unique_ptr<AccessLog> log(new AccessLog);
    log->path_ = p;
    log->combined_ = cfg.server.access_log_format == core::AccessLogFormat::Combined;
    log->buf_.reserve(kFlushBytes * 2);
    log->reopen();
    ev_init(&log->timer_, onTimer);
    log->timer_.data = log.get();
    return log;
}

AccessLog::~AccessLog() {
    flush();
    if (timer_on_ && ctx().loop) {
        ev_timer_stop(ctx().loop, &timer_);
    }
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

void AccessLog::reopen() {
    flush();
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        LOG_ERROR("cannot open access log %s: %s", path_.c_str(), std::strerror(errno));
        return;
    }
    if (fd_ >= 0) {
        ::close(fd_);
    }
    fd_ = fd;
}

void AccessLog::flush() {
    if (buf_.empty() || fd_ < 0) {
        buf_.clear();
        return;
    }
    ssize_t n = ::write(fd_, buf_.data(), buf_.size());
    if (n < 0 || static_cast<size_t>(n) < buf_.size()) {
        // A full disk (or a dead pipe) loses log lines, never requests: said at most every 10 s.
        const int err = n < 0 ? errno : ENOSPC;
        const double t = ev_time();
        if (t - last_warn_ >= 10) {
            last_warn_ = t;
            LOG_ERROR("access log %s: %s; log lines are being lost", path_.c_str(),
                      std::strerror(err));
        }
    }
    buf_.clear();
}

void AccessLog::onTimer(struct ev_loop*, ev_timer* w, int) noexcept {
    auto* self = static_cast<AccessLog*>(w->data);
    self->timer_on_ = false;
    self->flush();
}

namespace {

/// A value inside the combined format's quotes: '"', '\\' and bytes outside printable ASCII as
/// \xHH, as nginx writes them.
void appendQuoted(std::string& out, std::string_view v) {
    static constexpr char kDigits[] = "0123456789ABCDEF";
    for (unsigned char ch : v) {
        if (ch == '"' || ch == '\\' || ch < 0x20 || ch > 0x7e) {
            out += "\\x";
            out += kDigits[ch >> 4];
            out += kDigits[ch & 15];
        } else {
            out += static_cast<char>(ch);
        }
    }
}

}  // namespace

void AccessLog::writeCombined(const ClientConn& c) {
    const RequestMeta& m = c.st->meta;
    static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[160];
    int n = snprintf(line, sizeof line, "%s - - [%02d/%s/%04d:%02d:%02d:%02d +0000] \"", c.peer_ip,
                     tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
    buf_.append(line, static_cast<size_t>(n));
    appendQuoted(buf_, std::string_view(m.method, m.method_len));
    buf_ += ' ';
    appendQuoted(buf_, std::string_view(m.path, m.path_len));
    n = snprintf(line, sizeof line, " %s\" %d %llu \"",
                 c.st->req.version == core::http::Version::Http10 ? "HTTP/1.0" : "HTTP/1.1",
                 m.status, static_cast<unsigned long long>(m.bytes_out));
    buf_.append(line, static_cast<size_t>(n));
    if (m.referer_len != 0) {
        appendQuoted(buf_, std::string_view(m.referer, m.referer_len));
    } else {
        buf_ += '-';
    }
    buf_ += "\" \"";
    if (m.agent_len != 0) {
        appendQuoted(buf_, std::string_view(m.agent, m.agent_len));
    } else {
        buf_ += '-';
    }
    buf_ += "\"\n";
}

void AccessLog::write(const ClientConn& c, double now) {
    if (combined_) {
        writeCombined(c);
        scheduleFlush();
        return;
    }
    const RequestMeta& m = c.st->meta;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[1024];
    char trace[33] = "";
    if (m.traced) {
        mod::tracing::hex(m.trace_id, 16, trace);
        trace[32] = '\0';
    }
    int n = snprintf(line, sizeof line,
                     "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"request_id\":\"%.*s\","
                     "\"trace_id\":\"%s\",\"client\":\"%s\",\"method\":\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, static_cast<int>(m.id_len), m.id, trace, c.peer_ip);
    buf_.append(line, static_cast<size_t>(n));
    appendJsonEscaped(buf_, std::string_view(m.method, m.method_len));
    buf_ += "\",\"path\":\"";
    appendJsonEscaped(buf_, std::string_view(m.path, m.path_len));
    const Proxy& p = *ctx().proxy;
    const char* route = m.route >= 0 ? p.routes[static_cast<size_t>(m.route)].id.c_str() : "";
    n = snprintf(line, sizeof line,
                 "\",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%.3f,"
                 "\"upstream_ms\":%.3f,\"upstream\":\"%s\",\"route\":\"",
                 m.status, static_cast<unsigned long long>(m.bytes_in),
                 static_cast<unsigned long long>(m.bytes_out), (now - m.start) * 1000.0,
                 m.upstream_time * 1000.0, m.upstream_addr ? m.upstream_addr : "");
    buf_.append(line, static_cast<size_t>(n));
    appendJsonEscaped(buf_, route);
    buf_ += "\",\"refused_by\":\"";
    if (c.st->rq.answered_by != 0 && c.st->rq.answered_by <= mod::modules().size()) {
        buf_ += mod::modules()[c.st->rq.answered_by - 1]->name();  // a module that answered itself
    }
    buf_ += "\"}\n";
    scheduleFlush();
}

void AccessLog::scheduleFlush() {
    if (buf_.size() >= kFlushBytes) {
        flush();
    } else if (!timer_on_) {
        ev_timer_set(&timer_, 1.0, 0.);
        ev_timer_start(ctx().loop, &timer_);
        timer_on_ = true;
    }
}

}  // namespace photon::worker
