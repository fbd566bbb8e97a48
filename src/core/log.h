// SPDX-License-Identifier: Apache-2.0
// Error log: nginx-style levels, one line per event with time, level, pid#slot and the message.
#pragma once

#include <cstdarg>
#include <cstdint>
#include <string_view>

namespace photon::core {

/// Levels, most severe first. The CLI accepts error|warn|info|debug|trace; emerg/crit/alert/notice
/// exist for parity with nginx and are printed by name.
enum class LogLevel : uint8_t { Emerg, Alert, Crit, Error, Warn, Notice, Info, Debug, Trace };

/// Parses "error", "warn", "info", "debug", "trace" (also "warning", "notice", "crit", "alert",
/// "emerg"). Returns false on anything else, leaving `out` unchanged.
bool parseLogLevel(std::string_view s, LogLevel& out);
std::string_view logLevelName(LogLevel l);

/// Process-wide logger state. Set once at start-up (master) and inherited by forked children;
/// a child calls setLogSlot() to tag its lines with its slot number.
struct LogState {
    LogLevel level = LogLevel::Info;
    int fd = 2;     // stderr by default; a file opened O_APPEND when log_file is set
    int slot = -1;  // worker slot, -1 for the master
};
LogState& logState();

/// Opens (or reopens, for `-s reopen` / USR1) the error log file; empty path = stderr.
/// Returns false and keeps the old fd when the file cannot be opened.
bool openLogFile(const char* path);
void setLogLevel(LogLevel l);
void setLogSlot(int slot);

inline bool logEnabled(LogLevel l) {
    return static_cast<uint8_t>(l) <= static_cast<uint8_t>(logState().level);
}

/// printf-style; writes one line with a single write(2) so lines from several processes never
/// interleave. Safe to call from any process; not async-signal-safe.
void logWrite(LogLevel l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void logWriteV(LogLevel l, const char* fmt, va_list ap);

}  // namespace photon::core

// A disabled level costs one branch.
#define PHOTON_LOG(lvl, ...)                                                      \
    do {                                                                          \
        if (::photon::core::logEnabled(::photon::core::LogLevel::lvl)) {          \
            ::photon::core::logWrite(::photon::core::LogLevel::lvl, __VA_ARGS__); \
        }                                                                         \
    } while (0)
#define LOG_ERROR(...) PHOTON_LOG(Error, __VA_ARGS__)
#define LOG_WARN(...) PHOTON_LOG(Warn, __VA_ARGS__)
#define LOG_NOTICE(...) PHOTON_LOG(Notice, __VA_ARGS__)
#define LOG_INFO(...) PHOTON_LOG(Info, __VA_ARGS__)
#define LOG_DEBUG(...) PHOTON_LOG(Debug, __VA_ARGS__)

/// Always-on invariant check: logs file:line and the condition, then aborts. Never use it for
/// anything input or the environment can cause.
#define PHOTON_CHECK(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ::photon::core::logWrite(::photon::core::LogLevel::Emerg, "check failed at %s:%d: %s", \
                                     __FILE__, __LINE__, #cond);                                   \
            __builtin_abort();                                                                     \
        }                                                                                          \
    } while (0)
