// SPDX-License-Identifier: Apache-2.0
// Error log implementation: formats into a stack buffer and emits one write(2) per line.
#include "core/log.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace photon::core {

namespace {
constexpr std::string_view kNames[] = {"emerg",  "alert", "crit",  "error", "warn",
                                       "notice", "info",  "debug", "trace"};
}

LogState& logState() {
    static LogState s;
    return s;
}

bool parseLogLevel(std::string_view s, LogLevel& out) {
    for (size_t i = 0; i < std::size(kNames); ++i) {
        if (s == kNames[i]) {
            out = static_cast<LogLevel>(i);
            return true;
        }
    }
    if (s == "warning") {
        out = LogLevel::Warn;
        return true;
    }
    return false;
}

std::string_view logLevelName(LogLevel l) { return kNames[static_cast<size_t>(l)]; }

bool openLogFile(const char* path) {
    if (path == nullptr || *path == '\0') {
        if (logState().fd != 2) {
            ::close(logState().fd);
        }
        logState().fd = 2;
        return true;
    }
    int fd = ::open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        return false;
    }
    int old = logState().fd;
    logState().fd = fd;
    if (old != 2) {
        ::close(old);
    }
    return true;
}

void setLogLevel(LogLevel l) { logState().level = l; }
void setLogSlot(int slot) { logState().slot = slot; }

void logWriteV(LogLevel l, const char* fmt, va_list ap) {
    char buf[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    int n = static_cast<int>(strftime(buf, sizeof buf, "%Y/%m/%d %H:%M:%S", &tm));
    const LogState& st = logState();
    if (st.slot >= 0) {
        n += snprintf(buf + n, sizeof buf - n, ".%03ld [%s] %d#%d: ", ts.tv_nsec / 1000000,
                      kNames[static_cast<size_t>(l)].data(), static_cast<int>(getpid()), st.slot);
    } else {
        n += snprintf(buf + n, sizeof buf - n, ".%03ld [%s] %d: ", ts.tv_nsec / 1000000,
                      kNames[static_cast<size_t>(l)].data(), static_cast<int>(getpid()));
    }
    int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    if (m < 0) {
        m = 0;
    }
    n += m;
    if (n > static_cast<int>(sizeof buf) - 2) {
        n = sizeof buf - 2;
    }
    buf[n++] = '\n';
    ssize_t w;
    do {
        w = ::write(st.fd, buf, static_cast<size_t>(n));
    } while (w < 0 && errno == EINTR);
}

void logWrite(LogLevel l, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    logWriteV(l, fmt, ap);
    va_end(ap);
}

}  // namespace photon::core
