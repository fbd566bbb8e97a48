// SPDX-License-Identifier: Apache-2.0
// Socket reads and writes of a client connection, in plain text or through its TLS session,
// with one result convention: bytes moved, 0 at end of stream, or -errno (-EAGAIN when the
// socket is not ready, whichever direction TLS waits for).
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

namespace photon::worker {

inline ssize_t tlsResult(SSL* ssl, int r) {
    switch (SSL_get_error(ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return -EAGAIN;
        case SSL_ERROR_ZERO_RETURN:
            return 0;  // close_notify, or an end of stream without it (IGNORE_UNEXPECTED_EOF)
        case SSL_ERROR_SYSCALL: {
            int e = errno;
            ERR_clear_error();
            return e != 0 ? -e : -ECONNRESET;
        }
        default:
            ERR_clear_error();  // a protocol error: the connection is over
            return -EPROTO;
    }
}

inline ssize_t tlsRead(SSL* ssl, void* buf, size_t len) {
    size_t got = 0;
    int r = SSL_read_ex(ssl, buf, len, &got);
    return r == 1 ? static_cast<ssize_t>(got) : tlsResult(ssl, r);
}

/// Writes the vectors in order; stops at the first short write. Records are not coalesced
/// across vectors (each write is at least one record).
inline ssize_t tlsWritev(SSL* ssl, const struct iovec* iov, int cnt) {
    size_t total = 0;
    for (int i = 0; i < cnt; ++i) {
        if (iov[i].iov_len == 0) {
            continue;
        }
        size_t n = 0;
        int r = SSL_write_ex(ssl, iov[i].iov_base, iov[i].iov_len, &n);
        if (r != 1) {
            if (total != 0) {
                ssize_t e = tlsResult(ssl, r);
                (void)e;  // the error shows again on the next write
                return static_cast<ssize_t>(total);
            }
            return tlsResult(ssl, r);
        }
        total += n;
        if (n < iov[i].iov_len) {
            break;
        }
    }
    return static_cast<ssize_t>(total);
}

/// recv(2) or SSL_read.
inline ssize_t connRecv(int fd, SSL* ssl, void* buf, size_t len) {
    if (ssl != nullptr) {
        return tlsRead(ssl, buf, len);
    }
    ssize_t n;
    do {
        n = ::recv(fd, buf, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/// sendmsg(2) or SSL_write of each vector.
inline ssize_t connSendv(int fd, SSL* ssl, const struct iovec* iov, int cnt) {
    if (ssl != nullptr) {
        return tlsWritev(ssl, iov, cnt);
    }
    msghdr m{};
    m.msg_iov = const_cast<struct iovec*>(iov);
    m.msg_iovlen = static_cast<size_t>(cnt);
    ssize_t n;
    do {
        n = ::sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

inline ssize_t connSend(int fd, SSL* ssl, const void* buf, size_t len) {
    struct iovec v = {const_cast<void*>(buf), len};
    if (ssl == nullptr) {
        ssize_t n;
        do {
            n = ::send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
    }
    return tlsWritev(ssl, &v, 1);
}

}  // namespace photon::worker
