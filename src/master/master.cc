// SPDX-License-Identifier: Apache-2.0
// Master process: supervision loop on sigtimedwait, worker respawn with backoff, reload, shutdown.
#include "master/master.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "config.h"
#include "core/config.h"
#include "core/log.h"
#include "master/config_loader.h"
#include "master/process.h"
#include "master/runtime.h"
#include "modules/health/helper.h"
#include "modules/metrics/store.h"
#include "modules/tls/server_tls.h"
#include "shm/segment.h"
#include "worker/proxy.h"
#include "worker/worker.h"

namespace photon::master {

namespace {

int64_t monoUs() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

int64_t wallUs() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

sigset_t masterSignals() {
    sigset_t s;
    sigemptyset(&s);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH}) {
        sigaddset(&s, sig);
    }
    return s;
}

constexpr int64_t kCrashWindowUs = 2'000'000;  // a worker dying sooner than this "crashed fast"
constexpr int64_t kMaxBackoffUs = 10'000'000;  // crash-loop backoff ceiling

}  // namespace

/// Raises the soft open-file limit (inherited by the workers forked after) to what
/// server.max_connections may need in one worker: a client and an upstream descriptor per
/// connection, plus room for listeners, pools, logs and health checks. Never lowers it; warns
/// when not even one descriptor per connection is allowed (connections beyond the descriptors
/// left wait in the listen queue: EMFILE pauses accepting).
void fitOpenFileLimit(const core::Config& c) {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    const uint64_t want = std::min<uint64_t>(c.server.max_connections, 1ULL << 30) * 2 + 1024;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        const rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min<rlim_t>(rl.rlim_max, want);
        if (rl.rlim_cur > old && ::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            rl.rlim_cur = old;
        }
        if (rl.rlim_cur > old) {
            LOG_INFO("open-file limit raised from %llu to %llu for max_connections %llu",
                     static_cast<unsigned long long>(old),
                     static_cast<unsigned long long>(rl.rlim_cur),
                     static_cast<unsigned long long>(c.server.max_connections));
        }
    }
    // Upstream connections are pooled and shared, so one descriptor per client connection is
    // the least that can work.
    const uint64_t least = want - std::min<uint64_t>(c.server.max_connections, 1ULL << 30);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < least) {
        LOG_WARN(
            "open-file limit %llu is below the %llu that max_connections %llu needs "
            "(raise the hard limit: LimitNOFILE= in the service, ulimit -Hn); connections "
            "beyond it wait in the listen queue",
            static_cast<unsigned long long>(rl.rlim_cur), static_cast<unsigned long long>(least),
            static_cast<unsigned long long>(c.server.max_connections));
    }
}

std::string pidPathOf(const core::Config& c) {
    const std::string& p = runtimePidFile(c);
    return p.empty() ? std::string(PHOTON_PID_PATH) : p;
}

int sendSignalCommand(const std::string& signal, const std::string& pid_path) {
    int sig = signal == "stop"     ? SIGTERM
              : signal == "quit"   ? SIGQUIT
              : signal == "reload" ? SIGHUP
                                   : SIGUSR1;
    pid_t pid = PidFile::read(pid_path);
    if (pid == 0) {
        std::fprintf(stderr, "photon: cannot read pid file %s: is photon running?\n",
                     pid_path.c_str());
        return 1;
    }
    if (::kill(pid, sig) != 0) {
        std::fprintf(stderr, "photon: kill(%d, %s) failed: %s\n", static_cast<int>(pid),
                     signal.c_str(), std::strerror(errno));
        return 1;
    }
    return 0;
}

namespace {

/// The original's hand-over, old side: connects to `path` (a `photon --upgrade` waiting there),
/// retrying for 5 s, and sends every listening socket with its address (SCM_RIGHTS); true once
/// the new instance confirmed it has them. Our workers go on serving meanwhile.
bool sendListeners(const std::string& path, const std::vector<Listener>& ls) {
    sockaddr_un sa{};
    if (ls.empty() || path.size() >= sizeof sa.sun_path) {
        return false;
    }
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size());
    const int64_t until = monoUs() + 5'000'000;
    while (true) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
            // Only a process of our own user gets the sockets: /tmp is writable by everyone,
            // and these may be port 80's.
            ucred peer{};
            socklen_t plen = sizeof peer;
            if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &plen) != 0 ||
                peer.uid != ::geteuid()) {
                LOG_ERROR(
                    "upgrade: %s is held by uid %d, not ours: the sockets are not handed "
                    "over",
                    path.c_str(), static_cast<int>(peer.uid));
                ::close(fd);
                return false;
            }
            std::string names;
            std::vector<int> fds;
            for (const auto& l : ls) {
                names += l.addr + ";";
                fds.push_back(l.fd);
            }
            iovec iov{names.data(), names.size()};
            std::vector<char> ctl(CMSG_SPACE(sizeof(int) * fds.size()));
            msghdr mh{};
            mh.msg_iov = &iov;
            mh.msg_iovlen = 1;
            mh.msg_control = ctl.data();
            mh.msg_controllen = ctl.size();
            cmsghdr* cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
            std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
            timeval tv{5, 0};
            ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            char ack = 0;
            bool ok = ::sendmsg(fd, &mh, MSG_NOSIGNAL) == static_cast<ssize_t>(names.size()) &&
                      ::recv(fd, &ack, 1, 0) == 1 && ack == 'k';
            ::close(fd);
            if (ok) {
                LOG_NOTICE("handed the listening sockets over through %s", path.c_str());
                return true;
            }
            LOG_WARN("upgrade: the instance at %s did not take the sockets", path.c_str());
            return false;
        }
        if (fd >= 0) {
            ::close(fd);
        }
        if (monoUs() >= until) {
            return false;  // nobody waits there: an ordinary stop
        }
        ::usleep(100'000);
    }
}

}  // namespace

/// The original's hand-over, new side (`photon --upgrade`): waits up to 10 s at `path` for the
/// running instance to send its listening sockets; none (nothing running) means they are
/// opened as usual.
std::vector<Listener> receiveListeners(const std::string& path) {
    std::vector<Listener> out;
    sockaddr_un sa{};
    if (path.size() >= sizeof sa.sun_path) {
        LOG_ERROR("upgrade_sock %s: path too long", path.c_str());
        return out;
    }
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size());
    int srv = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ::unlink(path.c_str());
    if (srv < 0 || ::bind(srv, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(srv, 1) != 0) {
        LOG_ERROR("upgrade_sock %s: %s", path.c_str(), std::strerror(errno));
        if (srv >= 0) {
            ::close(srv);
        }
        return out;
    }
    ::chmod(path.c_str(), 0600);
    pollfd pfd{srv, POLLIN, 0};
    int c = -1;
    if (::poll(&pfd, 1, 10'000) == 1) {
        c = ::accept4(srv, nullptr, nullptr, SOCK_CLOEXEC);
    }
    ::close(srv);
    ::unlink(path.c_str());
    ucred peer{};
    socklen_t plen = sizeof peer;
    if (c >= 0 &&
        (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &peer, &plen) != 0 || peer.uid != ::geteuid())) {
        std::fprintf(stderr, "photon: --upgrade: refusing sockets from uid %d\n",
                     static_cast<int>(peer.uid));
        ::close(c);
        c = -1;
    }
    if (c < 0) {
        std::fprintf(stderr,
                     "photon: --upgrade: no running instance handed its sockets over through %s "
                     "within 10 s; opening them\n",
                     path.c_str());
        return out;
    }
    char names[4096];
    std::vector<char> ctl(CMSG_SPACE(sizeof(int) * 64));
    iovec iov{names, sizeof names - 1};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.data();
    mh.msg_controllen = ctl.size();
    ssize_t n = ::recvmsg(c, &mh, MSG_CMSG_CLOEXEC);
    std::vector<int> fds;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm != nullptr; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            fds.resize(k);
            std::memcpy(fds.data(), CMSG_DATA(cm), k * sizeof(int));
        }
    }
    std::string list = n > 0 ? std::string(names, static_cast<size_t>(n)) : std::string();
    size_t pos = 0;
    for (int fd : fds) {
        size_t end = list.find(';', pos);
        Listener l;
        l.fd = fd;
        l.addr = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        pos = end == std::string::npos ? list.size() : end + 1;
        ::fcntl(fd, F_SETFD, 0);  // inherited by our workers
        out.push_back(l);
    }
    char ack = 'k';
    ::send(c, &ack, 1, MSG_NOSIGNAL);
    ::close(c);
    std::fprintf(stderr, "photon: --upgrade: took over %zu listening socket(s) through %s\n",
                 out.size(), path.c_str());
    return out;
}

namespace {
std::vector<std::string> g_argv;
std::string g_exe;
}  // namespace

void saveCommandLine(int argc, char** argv) {
    g_argv.assign(argv, argv + argc);
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    g_exe = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string(argv[0]);
}

void Master::upgrade() {
    if (new_master_ != 0) {
        LOG_WARN("received SIGUSR2: an upgrade is already under way (new master %d)",
                 static_cast<int>(new_master_));
        return;
    }
    const std::string old = pid_path_ + ".oldbin";
    if (::rename(pid_path_.c_str(), old.c_str()) != 0) {
        LOG_ERROR("upgrade: cannot rename %s: %s", pid_path_.c_str(), std::strerror(errno));
        return;
    }
    std::string fds;
    for (const auto& l : listeners_) {
        fds += std::to_string(l.fd) + "=" + l.addr + ";";
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        LOG_ERROR("upgrade: fork: %s", std::strerror(errno));
        ::rename(old.c_str(), pid_path_.c_str());
        return;
    }
    if (pid == 0) {
        // The new binary, on the same sockets (they are not close-on-exec). It is detached
        // already: a daemon's child does not daemonize again.
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, nullptr);
        ::setenv("PHOTON_LISTEN_FDS", fds.c_str(), 1);
        std::vector<char*> args;
        for (auto& a : g_argv) {
            if (a != "-d" && a != "--daemon") {
                args.push_back(a.data());
            }
        }
        args.push_back(nullptr);
        ::execv(g_exe.c_str(), args.data());
        std::fprintf(stderr, "photon: upgrade: cannot run %s: %s\n", g_exe.c_str(),
                     std::strerror(errno));
        std::_Exit(127);
    }
    new_master_ = pid;
    LOG_NOTICE("received SIGUSR2: started %s as new master %d on the same sockets", g_exe.c_str(),
               static_cast<int>(pid));
}

int upgradeCommand(const std::string& pid_path) {
    pid_t old = PidFile::read(pid_path);
    if (old == 0 || !PidFile::alive(old)) {
        std::fprintf(stderr, "photon: cannot read pid file %s: is photon running?\n",
                     pid_path.c_str());
        return 1;
    }
    if (::kill(old, SIGUSR2) != 0) {
        std::fprintf(stderr, "photon: kill(%d, USR2) failed: %s\n", static_cast<int>(old),
                     std::strerror(errno));
        return 1;
    }
    // The new master writes the pid file once it serves; the old one restores it if the new
    // binary fails.
    const int64_t until = monoUs() + 30'000'000;
    pid_t fresh = 0;
    while (monoUs() < until) {
        ::usleep(50'000);
        pid_t p = PidFile::read(pid_path);
        if (p != 0 && p != old && PidFile::alive(p)) {
            fresh = p;
            break;
        }
        if (p == old && ::access((pid_path + ".oldbin").c_str(), F_OK) != 0) {
            std::fprintf(stderr,
                         "photon: the new binary did not start; the old master %d serves on "
                         "(the error log says why)\n",
                         static_cast<int>(old));
            return 1;
        }
    }
    if (fresh == 0) {
        std::fprintf(stderr, "photon: no new master within 30 s; the old master %d serves on\n",
                     static_cast<int>(old));
        return 1;
    }
    if (::kill(old, SIGQUIT) != 0) {
        std::fprintf(stderr, "photon: kill(%d, QUIT) failed: %s\n", static_cast<int>(old),
                     std::strerror(errno));
        return 1;
    }
    std::fprintf(stderr, "photon: upgraded: new master %d; old master %d finishes its requests\n",
                 static_cast<int>(fresh), static_cast<int>(old));
    return 0;
}

int reloadCommand(const std::string& pid_path) {
    pid_t pid = PidFile::read(pid_path);
    if (pid == 0) {
        std::fprintf(stderr, "photon: cannot read pid file %s: is photon running?\n",
                     pid_path.c_str());
        return 1;
    }
    // The master counts its reloads in the metrics segment: watch them to report the outcome.
    auto seg = shm::MappedSegment::attachExisting(
        shm::segmentName(shm::instanceName(pid_path), "metrics"), mod::metrics::kLayoutVersion);
    const mod::metrics::MasterStatsShm* stats = nullptr;
    if (seg.ok() &&
        seg.value().size() >= shm::kSegmentHeaderBytes + sizeof(mod::metrics::MasterStatsShm)) {
        stats = reinterpret_cast<const mod::metrics::MasterStatsShm*>(seg.value().body());
    }
    const uint64_t ok0 = stats ? stats->reloads_ok.load() : 0;
    const uint64_t failed0 = stats ? stats->reloads_failed.load() : 0;
    if (::kill(pid, SIGHUP) != 0) {
        std::fprintf(stderr, "photon: kill(%d, reload) failed: %s\n", static_cast<int>(pid),
                     std::strerror(errno));
        return 1;
    }
    if (stats == nullptr) {
        return 0;  // a gateway without the counters: the signal is all we can do
    }
    const int64_t until = monoUs() + 30'000'000;  // a reload resolves names and maps segments
    while (monoUs() < until) {
        if (stats->reloads_failed.load() != failed0) {
            std::fprintf(stderr,
                         "photon: reload failed; the running configuration stays (the error "
                         "log says why)\n");
            return 1;
        }
        if (stats->reloads_ok.load() != ok0) {
            std::fprintf(stderr, "photon: reloaded: configuration generation %llu\n",
                         static_cast<unsigned long long>(stats->generation.load()));
            return 0;
        }
        ::usleep(20'000);
    }
    std::fprintf(stderr, "photon: reload signal sent; no outcome within 30 s\n");
    return 1;
}

Master::Master(CliOptions cli, std::unique_ptr<core::Config> config)
    : cli_(std::move(cli)), config_(std::move(config)) {}

Master::~Master() { closeListeners(listeners_); }

int Master::run() {
    pid_path_ = pidPathOf(*config_);
    start_time_us_ = wallUs();
    if (!config_->server.user.empty() && ::geteuid() != 0) {
        LOG_WARN("server.user %s is ignored: the master does not run as root",
                 config_->server.user.c_str());
    }

    // A second instance on the same pid file is refused before anything is opened (but for a
    // --upgrade, which takes over from the instance the pid file names).
    if (pid_t other = PidFile::read(pid_path_);
        !cli_.upgrade && other != 0 && other != getpid() && PidFile::alive(other)) {
        std::fprintf(stderr, "photon: already running (pid %d, pid file %s)\n",
                     static_cast<int>(other), pid_path_.c_str());
        return 1;
    }

    // A binary upgrade hands over its listening sockets: "fd=address;..." (see upgrade()).
    std::vector<Listener> inherited;
    if (const char* env = std::getenv("PHOTON_LISTEN_FDS")) {
        std::string s = env;
        size_t pos = 0;
        while (pos < s.size()) {
            size_t end = s.find(';', pos);
            std::string item = s.substr(pos, end == std::string::npos ? end : end - pos);
            pos = end == std::string::npos ? s.size() : end + 1;
            size_t eq = item.find('=');
            if (eq == std::string::npos) {
                continue;
            }
            Listener l;
            l.fd = std::atoi(item.substr(0, eq).c_str());
            l.addr = item.substr(eq + 1);
            int listening = 0;
            socklen_t len = sizeof listening;
            if (l.fd > 2 && ::getsockopt(l.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
                listening != 0) {
                inherited.push_back(l);
            }
        }
        ::unsetenv("PHOTON_LISTEN_FDS");
    }
    if (cli_.upgrade && inherited.empty()) {
        inherited = receiveListeners(config_->server.upgrade_sock);
    }
    auto ls = reopenRuntimeListeners(*config_, inherited);
    if (!ls.ok()) {
        std::fprintf(stderr, "photon: %s\n", ls.error().msg.c_str());
        return 1;
    }
    listeners_ = std::move(ls.value());
    closeListenersNotIn(inherited, listeners_);  // addresses the new configuration dropped
    if (!inherited.empty()) {
        LOG_NOTICE("took over the listening sockets of the previous master");
    }

    const std::string& error_log = runtimeErrorLog(*config_);
    if (!error_log.empty() && !core::openLogFile(error_log.c_str())) {
        std::fprintf(stderr, "photon: cannot open error log %s: %s\n", error_log.c_str(),
                     std::strerror(errno));
        return 1;
    }
    {
        std::vector<std::string> warnings;  // printed by the configuration check already
        auto tls = buildServerTls(*config_, warnings);
        if (!tls.ok()) {
            std::fprintf(stderr, "photon: %s\n", tls.error().msg.c_str());
            return 1;
        }
        installServerTls(std::move(tls.value()));
    }
    fitOpenFileLimit(*config_);
    if (auto r = setupSharedState(*config_, pid_path_); !r.ok()) {
        std::fprintf(stderr, "photon: %s\n", r.error().msg.c_str());
        return 1;
    }
    mod::metrics::masterStarted(generation_, static_cast<uint32_t>(runtimeWorkerCount(*config_)));
    int ready_fd = -1;
    if (cli_.daemon) {
        auto r = daemonize();
        if (!r.ok()) {
            std::fprintf(stderr, "photon: %s\n", r.error().msg.c_str());
            return 1;
        }
        ready_fd = r.value();
    }
    if (auto r = PidFile::write(pid_path_, getpid()); !r.ok()) {
        LOG_ERROR("%s", r.error().msg.c_str());
        if (cli_.daemon) {
            daemonReady(ready_fd, false);
            return 1;
        }
    }

    ProcTitle::set("photon: master process " + ProcTitle::commandLine());
    sigset_t set = masterSignals();
    sigprocmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    slots_.resize(static_cast<size_t>(runtimeWorkerCount(*config_)));
    for (size_t i = 0; i < slots_.size(); ++i) {
        spawnWorker(i);
    }
    if (helperWanted()) {
        spawnHelper();
    }
    for (const auto& l : listeners_) {
        LOG_NOTICE(
            "listening on %s%s", l.addr.c_str(),
            l.kind == ListenerKind::Metrics ? " (metrics, /health, /ready, /dashboard)" : "");
    }
    LOG_NOTICE("photon %s started: master pid %d, %zu worker(s)", PHOTON_VERSION,
               static_cast<int>(getpid()), slots_.size());
    daemonReady(ready_fd, true);

    int exit_code = 0;
    auto resolveEveryUs = [this] {
        return std::chrono::duration_cast<std::chrono::microseconds>(
                   config_->server.resolve_interval)
            .count();
    };
    // The interval is read every time round: a reload that shortens it applies at once.
    int64_t last_resolve = monoUs();
    int64_t last_module_tick = monoUs();
    while (true) {
        int64_t now = monoUs();
        if (now - last_resolve >= resolveEveryUs()) {
            runtimeResolveTick();
            last_resolve = monoUs();
        }
        if (now - last_module_tick >= 1'000'000) {
            runtimeModuleTick();
            last_module_tick = monoUs();
        }
        int64_t wake = nextWakeUs(now);
        struct timespec ts = {static_cast<time_t>(wake / 1000000),
                              static_cast<long>((wake % 1000000) * 1000)};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &ts);
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            LOG_ERROR("sigtimedwait: %s", std::strerror(errno));
        }
        if (sig == SIGCHLD) {
            reapChildren();
        } else if (sig == SIGTERM || sig == SIGINT) {
            LOG_NOTICE("received %s: fast shutdown", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            stopping_ = true;
            mod::metrics::masterDraining();
            signalWorkers(SIGTERM);
            if (!waitAllExited(monoUs() + 3'000'000)) {
                signalWorkers(SIGKILL);
                waitAllExited(monoUs() + 1'000'000);
            }
            break;
        } else if (sig == SIGQUIT) {
            LOG_NOTICE("received SIGQUIT: graceful shutdown");
            stopping_ = true;
            mod::metrics::masterDraining();  // /ready says so while the sockets are offered
            if (config_->server.upgrade_sock_set &&
                sendListeners(config_->server.upgrade_sock, listeners_)) {
                handed_over_ = true;  // a new instance serves on our sockets and shared memory
            }
            closeListeners(listeners_);  // new connections are refused from now on
            signalWorkers(SIGQUIT);
            int64_t grace = runtimeShutdownTimeoutUs(*config_);
            if (!waitAllExited(monoUs() + grace + 1'000'000)) {
                LOG_WARN("workers still busy after shutdown_timeout: killing them");
                signalWorkers(SIGKILL);
                waitAllExited(monoUs() + 1'000'000);
            }
            break;
        } else if (sig == SIGHUP) {
            winched_ = false;
            reload();
        } else if (sig == SIGUSR1) {
            reopenLogs();
        } else if (sig == SIGUSR2) {
            upgrade();
        } else if (sig == SIGWINCH) {
            // After an upgrade: the old workers stop gracefully, the master stays (a HUP brings
            // them back should the new binary misbehave).
            LOG_NOTICE("received SIGWINCH: stopping the workers gracefully");
            winched_ = true;
            signalWorkers(SIGQUIT);
        }
        respawnDue(monoUs());
    }
    if (handed_over_) {
        // The instance that took our sockets runs on the same shared memory and pid file.
    } else if (new_master_ != 0 && ::kill(new_master_, 0) == 0) {
        // The new master runs on the same shared memory: leave it in place.
        PidFile::removeIfOwned(pid_path_ + ".oldbin", getpid());
    } else {
        teardownSharedState();
        PidFile::removeIfOwned(pid_path_, getpid());
    }
    LOG_NOTICE("exiting");
    return exit_code;
}

void Master::closeSiblingChannels() {
    // In a new child: the master's ends of the other children's socketpairs. Holding them would
    // keep those children from seeing EOF when the master dies.
    for (auto* list : {&slots_, &retiring_}) {
        for (const auto& s : *list) {
            if (s.fd >= 0) {
                ::close(s.fd);
            }
        }
    }
    if (helper_.fd >= 0) {
        ::close(helper_.fd);
    }
}

bool Master::helperWanted() const {
    for (const auto& b : config_->load_balancing.backends) {
        if (b.health_check.enabled) {
            return true;
        }
    }
    return false;
}

namespace {

/// Who workers and the helper run as (server.user / server.group), when the master is root.
struct RunAs {
    bool active = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string user;
};

RunAs runAsOf(const core::Config& c) {
    RunAs r;
    if (c.server.user.empty() || ::geteuid() != 0) {
        return r;
    }
    const passwd* pw = ::getpwnam(c.server.user.c_str());
    if (pw == nullptr) {
        return r;  // validated at load; gone since: keep going rather than refuse to serve
    }
    r.active = true;
    r.uid = pw->pw_uid;
    r.gid = pw->pw_gid;
    r.user = c.server.user;
    if (!c.server.group.empty()) {
        if (const group* gr = ::getgrnam(c.server.group.c_str())) {
            r.gid = gr->gr_gid;
        }
    }
    return r;
}

/// In a new worker or the helper: becomes the configured user for good (groups, gid, uid),
/// or exits: it never runs as root when told not to.
void dropPrivileges(const RunAs& r) {
    if (!r.active) {
        return;
    }
    if (::initgroups(r.user.c_str(), r.gid) != 0 || ::setgid(r.gid) != 0 || ::setuid(r.uid) != 0 ||
        ::setuid(0) == 0) {
        LOG_ERROR("cannot run as user %s (uid %d, gid %d): %s", r.user.c_str(),
                  static_cast<int>(r.uid), static_cast<int>(r.gid), std::strerror(errno));
        std::_Exit(1);
    }
}

/// The master, as root, makes sure the access log exists and belongs to the workers' user, so
/// that workers can open and reopen it after they dropped their privileges (as nginx does).
void prepareAccessLog(const core::Config& c, const RunAs& r) {
    const std::string& p = c.server.access_log;
    if (!r.active || p.empty() || p == "off") {
        return;
    }
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        LOG_ERROR("cannot open access log %s: %s", p.c_str(), std::strerror(errno));
        return;
    }
    if (::fchown(fd, r.uid, r.gid) != 0) {
        LOG_WARN("cannot give the access log %s to user %s: %s", p.c_str(), r.user.c_str(),
                 std::strerror(errno));
    }
    ::close(fd);
}

}  // namespace

bool Master::forkChild(WorkerSlot& s, bool helper, const std::function<int(int, int)>& run) {
    const RunAs run_as = runAsOf(*config_);
    prepareAccessLog(*config_, run_as);
    const char* what = helper ? "health-check helper" : "worker";
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        LOG_ERROR("socketpair: %s", std::strerror(errno));
        s.respawn_at_us = monoUs() + 1'000'000;
        return false;
    }
    int slot_id = acquireShmSlot(helper);
    pid_t pid = slot_id < 0 ? -1 : ::fork();
    if (pid < 0) {
        if (slot_id < 0) {
            LOG_ERROR("no free process slot for a new %s", what);
        } else {
            LOG_ERROR("fork: %s", std::strerror(errno));
            releaseShmSlot(slot_id);
        }
        ::close(sv[0]);
        ::close(sv[1]);
        s.respawn_at_us = monoUs() + 1'000'000;
        return false;
    }
    if (pid == 0) {
        ::close(sv[0]);
        closeSiblingChannels();
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, nullptr);
        core::setLogSlot(slot_id);
        ProcTitle::set(helper ? "photon: helper process" : "photon: worker process");
        dropPrivileges(run_as);
        std::_Exit(run(slot_id, sv[1]));
    }
    ::close(sv[1]);
    s.pid = pid;
    s.fd = sv[0];
    s.shm_slot = slot_id;
    s.generation = generation_;
    s.started_us = monoUs();
    s.respawn_at_us = 0;
    s.retiring = false;
    registerWorkerPid(slot_id, pid);
    LOG_INFO("started %s %d in slot %d", what, static_cast<int>(pid), slot_id);
    return true;
}

bool Master::spawnHelper() {
    return forkChild(helper_, true, [this](int slot, int master_fd) {
        closeListeners(listeners_);  // the helper never accepts clients
        mod::health::HelperInit init;
        init.config = config_.get();
        init.proxy = runtimeProxy();
        init.slot = slot;
        init.master_fd = master_fd;
        return mod::health::runHealthHelper(init);
    });
}

bool Master::spawnWorker(size_t i) {
    return forkChild(slots_[i], false, [this](int slot, int master_fd) {
        worker::WorkerInit init;
        init.config = config_.get();
        init.proxy = runtimeProxy();
        init.listeners = &listeners_;
        init.slot = slot;
        init.master_fd = master_fd;
        init.generation = generation_;
        init.start_time_us = start_time_us_;
        return worker::runWorker(init);
    });
}

namespace {

// Frees what a dead child held: the master's end of its socketpair and its process slot in
// shared memory.
void releaseChild(WorkerSlot& s) {
    ::close(s.fd);
    s.fd = -1;
    s.pid = 0;
    releaseShmSlot(s.shm_slot);
    s.shm_slot = -1;
}

// When a dead child may be started again: at once after its first death, with an exponential
// back-off (100 ms doubling, at most kMaxBackoffUs) while it keeps dying within kCrashWindowUs
// of its start. Returns the back-off.
int64_t scheduleRespawn(WorkerSlot& s, int64_t now) {
    s.fast_crashes = now - s.started_us < kCrashWindowUs ? s.fast_crashes + 1 : 0;
    const int64_t backoff =
        s.fast_crashes > 1
            ? std::min<int64_t>(kMaxBackoffUs, 100'000LL << std::min(s.fast_crashes - 2, 10))
            : 0;
    s.respawn_at_us = now + backoff;
    return backoff;
}

}  // namespace

void Master::reapChildren() {
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == new_master_) {
            // The new binary of an upgrade is gone: it failed to start, or was stopped.
            new_master_ = 0;
            const std::string old = pid_path_ + ".oldbin";
            if (PidFile::read(old) == getpid()) {
                ::rename(old.c_str(), pid_path_.c_str());
            }
            LOG_ERROR("the new master %d exited (%s %d); this master serves on%s",
                      static_cast<int>(pid), WIFSIGNALED(status) ? "signal" : "status",
                      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                      winched_ ? " (its workers stopped: send HUP to start them again)" : "");
            continue;
        }
        int64_t now = monoUs();
        bool found = false;
        for (size_t i = 0; i < slots_.size(); ++i) {
            WorkerSlot& s = slots_[i];
            if (s.pid != pid) {
                continue;
            }
            found = true;
            releaseChild(s);
            bool crashed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            if (crashed && !stopping_) {
                mod::metrics::masterWorkerRestart();
                if (WIFSIGNALED(status)) {
                    LOG_ERROR("worker %d (slot %zu) killed by signal %d; respawning",
                              static_cast<int>(pid), i, WTERMSIG(status));
                } else {
                    LOG_ERROR("worker %d (slot %zu) exited with status %d; respawning",
                              static_cast<int>(pid), i, WEXITSTATUS(status));
                }
            }
            const int64_t backoff = scheduleRespawn(s, now);
            if (backoff > 0) {
                LOG_WARN("slot %zu is crash-looping; next start in %lld ms", i,
                         static_cast<long long>(backoff / 1000));
            }
        }
        if (!found && helper_.pid == pid) {
            found = true;
            releaseChild(helper_);
            if (!stopping_) {
                LOG_ERROR("health-check helper %d exited unexpectedly; respawning",
                          static_cast<int>(pid));
            }
            scheduleRespawn(helper_, now);
        }
        for (auto it = retiring_.begin(); !found && it != retiring_.end(); ++it) {
            if (it->pid == pid) {
                releaseChild(*it);
                LOG_INFO("old worker %d exited", static_cast<int>(pid));
                retiring_.erase(it);
                found = true;
                break;
            }
        }
        if (!found) {
            LOG_DEBUG("reaped unknown child %d", static_cast<int>(pid));
        }
    }
    if (retiring_.empty()) {
        old_configs_.clear();
        releaseOldProxies();
    }
}

void Master::respawnDue(int64_t now) {
    if (stopping_ || winched_) {
        return;
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i].pid == 0 && slots_[i].respawn_at_us <= now) {
            spawnWorker(i);
        }
    }
    if (helper_.pid == 0 && helper_.respawn_at_us <= now && helperWanted()) {
        spawnHelper();
    }
}

int64_t Master::nextWakeUs(int64_t now) const {
    int64_t wake = 1'000'000;
    for (const auto& s : slots_) {
        if (s.pid == 0 && !stopping_) {
            wake = std::min(wake, std::max<int64_t>(s.respawn_at_us - now, 1000));
        }
    }
    if (helper_.pid == 0 && !stopping_ && helperWanted()) {
        wake = std::min(wake, std::max<int64_t>(helper_.respawn_at_us - now, 1000));
    }
    return wake;
}

void Master::signalWorkers(int sig, bool include_retiring) {
    for (const auto& s : slots_) {
        if (s.pid > 0) {
            ::kill(s.pid, sig);
        }
    }
    if (helper_.pid > 0) {
        ::kill(helper_.pid, sig == SIGQUIT ? SIGTERM : sig);  // the helper has nothing to drain
    }
    if (include_retiring) {
        for (const auto& s : retiring_) {
            ::kill(s.pid, sig);
        }
    }
}

bool Master::waitAllExited(int64_t deadline) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    auto anyAlive = [&] {
        for (const auto& s : slots_) {
            if (s.pid > 0) {
                return true;
            }
        }
        return !retiring_.empty() || helper_.pid > 0;
    };
    while (anyAlive()) {
        reapChildren();
        if (!anyAlive()) {
            break;
        }
        int64_t left = deadline - monoUs();
        if (left <= 0) {
            return false;
        }
        left = std::min<int64_t>(left, 100'000);
        struct timespec ts = {0, static_cast<long>(left * 1000)};
        sigtimedwait(&chld, nullptr, &ts);
    }
    return true;
}

void Master::reload() {
    LOG_NOTICE("received SIGHUP: reloading %s", cli_.config_path.c_str());
    LoadResult r = loadConfigFile(cli_.config_path);
    for (const auto& d : r.diagnostics) {
        if (d.severity == Diagnostic::Severity::Error) {
            LOG_ERROR("%s", d.format().c_str());
        } else {
            LOG_WARN("%s", d.format().c_str());
        }
    }
    if (!r.ok()) {
        LOG_ERROR("reload failed: keeping the running configuration");
        mod::metrics::masterReload(false, generation_, 0);
        return;
    }
    // Certificates and keys are read again (renewed files take effect); a bad one fails the
    // reload like a configuration error.
    std::vector<std::string> tls_warnings;
    auto tls = buildServerTls(*r.config, tls_warnings);
    for (const auto& w : tls_warnings) {
        LOG_WARN("%s", w.c_str());
    }
    if (!tls.ok()) {
        LOG_ERROR("reload failed: %s; keeping the running configuration", tls.error().msg.c_str());
        mod::metrics::masterReload(false, generation_, 0);
        return;
    }
    auto nl = reopenRuntimeListeners(*r.config, listeners_);
    if (!nl.ok()) {
        LOG_ERROR("reload failed: %s; keeping the running configuration", nl.error().msg.c_str());
        mod::metrics::masterReload(false, generation_, 0);
        return;
    }
    if (auto sr = reloadSharedState(*r.config); !sr.ok()) {
        LOG_ERROR("reload failed: shared memory: %s; keeping the running configuration",
                  sr.error().msg.c_str());
        closeListeners(nl.value());
        mod::metrics::masterReload(false, generation_, 0);
        return;
    }
    std::vector<Listener> old_listeners = std::move(listeners_);
    listeners_ = std::move(nl.value());
    // New workers must not inherit sockets of addresses the new configuration dropped.
    closeListenersNotIn(old_listeners, listeners_);
    old_configs_.push_back(std::move(config_));
    config_ = std::move(r.config);
    installServerTls(std::move(tls.value()));
    ++generation_;
    applyRuntimeLogSettings(*config_, cli_.log_level.has_value());
    fitOpenFileLimit(*config_);

    // Old workers finish their requests and exit; new ones start on the new configuration.
    for (auto& s : slots_) {
        if (s.pid > 0) {
            ::kill(s.pid, SIGQUIT);
            s.retiring = true;
            retiring_.push_back(s);
        }
        s = WorkerSlot{};
    }
    size_t n = static_cast<size_t>(runtimeWorkerCount(*config_));
    mod::metrics::masterReload(true, generation_, static_cast<uint32_t>(n));
    slots_.assign(n, WorkerSlot{});
    for (size_t i = 0; i < n; ++i) {
        spawnWorker(i);
    }
    if (helper_.pid > 0) {
        ::kill(helper_.pid, SIGTERM);  // checks the old upstream set; the new one takes over
        helper_.retiring = true;
        retiring_.push_back(helper_);
    }
    helper_ = WorkerSlot{};
    if (helperWanted()) {
        spawnHelper();
    }
    LOG_NOTICE("configuration generation %llu active",
               static_cast<unsigned long long>(generation_));
}

void Master::reopenLogs() {
    LOG_NOTICE("received SIGUSR1: reopening logs");
    prepareAccessLog(*config_, runAsOf(*config_));  // a rotated log: the new file is theirs
    const std::string& error_log = runtimeErrorLog(*config_);
    if (!error_log.empty() && !core::openLogFile(error_log.c_str())) {
        LOG_ERROR("cannot reopen %s: %s", error_log.c_str(), std::strerror(errno));
    }
    signalWorkers(SIGUSR1);
}

}  // namespace photon::master
