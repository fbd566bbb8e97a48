// SPDX-License-Identifier: Apache-2.0
// Process titles (argv overwrite, as nginx's ngx_setproctitle), daemonizing and pid files.
#include "master/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

extern char** environ;

namespace photon::master {

namespace {
char* g_title_start = nullptr;
size_t g_title_len = 0;
std::string g_cmdline;
}  // namespace

void ProcTitle::init(int argc, char** argv) {
    for (int i = 0; i < argc; ++i) {
        if (i) {
            g_cmdline += ' ';
        }
        g_cmdline += argv[i];
    }
    if (argc == 0 || argv[0] == nullptr) {
        return;
    }
    // The argv strings and then the environ strings are contiguous; take the whole area.
    char* end = argv[0] + std::strlen(argv[0]) + 1;
    for (int i = 1; i < argc; ++i) {
        if (argv[i] == end) {
            end = argv[i] + std::strlen(argv[i]) + 1;
        }
    }
    size_t n = 0;
    while (environ[n]) {
        ++n;
    }
    char** new_env = static_cast<char**>(std::malloc((n + 1) * sizeof(char*)));
    if (new_env == nullptr) {
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        if (environ[i] == end) {
            end = environ[i] + std::strlen(environ[i]) + 1;
        }
        new_env[i] = strdup(environ[i]);
    }
    new_env[n] = nullptr;
    environ = new_env;
    g_title_start = argv[0];
    g_title_len = static_cast<size_t>(end - argv[0]);
}

void ProcTitle::set(const std::string& title) {
    ::prctl(PR_SET_NAME, title.c_str(), 0, 0, 0);
    if (g_title_start == nullptr || g_title_len < 2) {
        return;
    }
    size_t n = std::min(title.size(), g_title_len - 1);
    std::memcpy(g_title_start, title.data(), n);
    std::memset(g_title_start + n, 0, g_title_len - n);
}

const std::string& ProcTitle::commandLine() { return g_cmdline; }

core::Result<int> daemonize() {
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        return core::fail("open(/dev/null) failed: ", std::strerror(errno));
    }
    int pfd[2];
    if (::pipe2(pfd, O_CLOEXEC) != 0) {
        ::close(devnull);
        return core::fail("pipe() failed: ", std::strerror(errno));
    }
    pid_t p = ::fork();
    if (p < 0) {
        ::close(devnull);
        ::close(pfd[0]);
        ::close(pfd[1]);
        return core::fail("fork() failed: ", std::strerror(errno));
    }
    if (p > 0) {
        ::close(pfd[1]);
        char c = 0;
        ssize_t n;
        do {
            n = ::read(pfd[0], &c, 1);
        } while (n < 0 && errno == EINTR);
        std::_Exit(n == 1 && c == '1' ? 0 : 1);
    }
    ::close(pfd[0]);
    if (::setsid() < 0) {
        return core::fail("setsid() failed: ", std::strerror(errno));
    }
    ::umask(027);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::close(devnull);
    return pfd[1];
}

void daemonReady(int fd, bool ok) {
    if (fd < 0) {
        return;
    }
    char c = ok ? '1' : '0';
    ssize_t n = ::write(fd, &c, 1);
    (void)n;
    ::close(fd);
}

pid_t PidFile::read(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char buf[32] = {};
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) {
        return 0;
    }
    char* end = nullptr;
    long v = std::strtol(buf, &end, 10);
    if (end == buf || v <= 0 || v > 0x3fffffff) {
        return 0;
    }
    return static_cast<pid_t>(v);
}

bool PidFile::alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

core::Result<void> PidFile::write(const std::string& path, pid_t pid) {
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return core::fail("cannot write pid file ", path, ": ", std::strerror(errno));
    }
    std::string s = std::to_string(pid) + "\n";
    bool ok = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        return core::fail("cannot write pid file ", path, ": ", std::strerror(errno));
    }
    return {};
}

void PidFile::removeIfOwned(const std::string& path, pid_t pid) {
    if (read(path) == pid) {
        ::unlink(path.c_str());
    }
}

}  // namespace photon::master
