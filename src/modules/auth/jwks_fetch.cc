// SPDX-License-Identifier: Apache-2.0
// Blocking HTTPS GET (JWKS documents), bounded by one deadline.
#include "modules/auth/jwks_fetch.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/http_parser.h"

namespace photon::mod::auth {

namespace {

constexpr size_t kMaxBody = 1 << 20;

double nowS() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/// Waits until `fd` is ready for `events` or the deadline passes.
bool waitFd(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - nowS();
        if (left <= 0) {
            return false;
        }
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, static_cast<int>(left * 1000) + 1);
        if (r > 0) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            return false;
        }
    }
}

int connectTo(const std::string& host, const std::string& port, double deadline,
              std::string& why) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || res == nullptr) {
        why = std::string("cannot resolve the host: ") + gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            why = std::string("connect: ") + std::strerror(errno);
            ::close(fd);
            fd = -1;
            continue;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (!waitFd(fd, POLLOUT, deadline) ||
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            why = err != 0 ? std::string("connect: ") + std::strerror(err) : "connect timed out";
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(res);
    return fd;
}

struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

/// Drives one TLS call (handshake, read, write) on the non-blocking socket until it completes
/// or the deadline passes. Returns its result (> 0 done, 0 closed, < 0 failed).
template <typename Call>
int drive(SSL* ssl, int fd, double deadline, Call&& call) {
    for (;;) {
        int r = call();
        if (r > 0) {
            return r;
        }
        int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (!waitFd(fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
                return -2;  // timed out
            }
            continue;
        }
        return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
}

}  // namespace

bool splitHttpsUrl(std::string_view url, std::string& host, std::string& port,
                   std::string& target) {
    constexpr std::string_view kScheme = "https://";
    if (url.size() <= kScheme.size() ||
        !core::http::equalsIgnoreCase(url.substr(0, kScheme.size()), kScheme)) {
        return false;
    }
    std::string_view rest = url.substr(kScheme.size());
    size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (authority.empty() || authority.find('@') != std::string_view::npos ||
        target.find_first_of(" \r\n\t#") != std::string::npos) {
        return false;
    }
    port = "443";
    if (authority.front() == '[') {
        size_t close = authority.find(']');
        if (close == std::string_view::npos) {
            return false;
        }
        host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        if (!authority.empty()) {
            if (authority.front() != ':') {
                return false;
            }
            port = std::string(authority.substr(1));
        }
    } else {
        size_t colon = authority.rfind(':');
        host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = std::string(authority.substr(colon + 1));
        }
    }
    if (host.empty() || port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos) {
        return false;
    }
    return true;
}

core::Result<std::string> fetchHttps(const std::string& url, const std::string& ca_file,
                                     double timeout_s) {
    std::string host, port, target;
    if (!splitHttpsUrl(url, host, port, target)) {
        return core::Error{"not an https:// URL"};
    }
    const double deadline = nowS() + timeout_s;
    std::unique_ptr<SSL_CTX, SslFree> ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
        return core::Error{"cannot create a TLS context"};
    }
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx.get()) != 1
                        : SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
        ERR_clear_error();
        return core::fail("cannot load the CA certificates",
                          ca_file.empty() ? std::string() : " from '" + ca_file + "'");
    }
    std::string why;
    int fd = connectTo(host, port, deadline, why);
    if (fd < 0) {
        return core::Error{why};
    }
    std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
    in6_addr ip{};
    const bool literal = inet_pton(AF_INET, host.c_str(), &ip) == 1 ||
                         inet_pton(AF_INET6, host.c_str(), &ip) == 1;
    bool setup = ssl && SSL_set_fd(ssl.get(), fd) == 1;
    if (setup && literal) {
        setup = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), host.c_str()) == 1;
    } else if (setup) {
        setup = SSL_set_tlsext_host_name(ssl.get(), host.c_str()) == 1 &&
                SSL_set1_host(ssl.get(), host.c_str()) == 1;
    }
    std::string out;
    auto fail = [&](std::string msg) {
        ERR_clear_error();
        ::close(fd);
        return core::Error{std::move(msg)};
    };
    if (!setup) {
        return fail("cannot set up TLS");
    }
    int r = drive(ssl.get(), fd, deadline, [&] { return SSL_connect(ssl.get()); });
    if (r <= 0) {
        long v = SSL_get_verify_result(ssl.get());
        return fail(r == -2           ? std::string("TLS handshake timed out")
                    : v != X509_V_OK ? std::string("certificate verify failed: ") +
                                           X509_verify_cert_error_string(v)
                                     : std::string("TLS handshake failed"));
    }
    // HTTP/1.0: the answer ends when the server closes, never chunked.
    std::string req = "GET " + target + " HTTP/1.0\r\nHost: " + host +
                      "\r\nAccept: application/json\r\nUser-Agent: photon-jwks\r\n\r\n";
    size_t sent = 0;
    while (sent < req.size()) {
        r = drive(ssl.get(), fd, deadline, [&] {
            return SSL_write(ssl.get(), req.data() + sent, static_cast<int>(req.size() - sent));
        });
        if (r <= 0) {
            return fail("sending the request failed");
        }
        sent += static_cast<size_t>(r);
    }
    char buf[16384];
    for (;;) {
        r = drive(ssl.get(), fd, deadline,
                  [&] { return SSL_read(ssl.get(), buf, static_cast<int>(sizeof buf)); });
        if (r == 0 || (r == -1 && !out.empty())) {
            break;  // closed (some servers close without close_notify after the body)
        }
        if (r < 0) {
            return fail(r == -2 ? "timed out reading the answer" : "reading the answer failed");
        }
        out.append(buf, static_cast<size_t>(r));
        if (out.size() > kMaxBody + 65536) {
            return fail("the answer is larger than 1 MiB");
        }
    }
    ::close(fd);
    ERR_clear_error();
    size_t head_end = out.find("\r\n\r\n");
    if (out.compare(0, 9, "HTTP/1.1 ") != 0 && out.compare(0, 9, "HTTP/1.0 ") != 0) {
        return core::Error{"not an HTTP answer"};
    }
    if (head_end == std::string::npos) {
        return core::Error{"incomplete answer"};
    }
    if (out.compare(9, 3, "200") != 0) {
        return core::fail("status ", out.substr(9, 3), " (expected 200)");
    }
    std::string body = out.substr(head_end + 4);
    if (body.size() > kMaxBody) {
        return core::Error{"the answer is larger than 1 MiB"};
    }
    return body;
}

}  // namespace photon::mod::auth
