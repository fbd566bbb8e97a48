// SPDX-License-Identifier: Apache-2.0
// ws_bench: a WebSocket (RFC 6455) echo server and load client for benchmarks/load/websocket.sh.
// Linux epoll, standalone: SHA-1 and base64 for Sec-WebSocket-Accept are implemented here, no
// library beyond libc/libstdc++ (glibc >= 2.34 has the threads in libc).
//
//   g++ -O2 -std=c++20 -Wall -Wextra -o ws_bench ws_bench.cc
//
//   ws_bench server PORT [--host 127.0.0.1] [--threads 1]
//       Echo server: answers the opening handshake with 101 and the right Sec-WebSocket-Accept,
//       echoes every data frame unmasked as it arrives (frame by frame, streamed: a 16 MiB frame
//       is never held whole), answers ping with pong and close with close. Non-upgrade requests
//       get 426. --threads T runs T epoll loops on SO_REUSEPORT sockets.
//
//   ws_bench client HOST:PORT --conns N --seconds S --size BYTES [--pipeline K] [--path /ws]
//                  [--warmup W] [--threads T] [--handshake-timeout S]
//       Opens N connections and completes every handshake (101, Upgrade, Connection and the
//       Accept value checked); then each connection keeps K masked binary messages of BYTES in
//       flight: a message is sent when the echo of an earlier one has arrived in full. Every
//       echoed byte is checked (the first 8 bytes of a message carry its sequence number).
//       Messages whose echo completes in the S seconds after a warm-up of W seconds (default 1)
//       are counted; latency is from queueing a message to the end of its echo. The last line
//       printed is machine-readable:
//         RESULT msgs_per_s=.. mbytes_per_s=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
//                msgs=.. total_msgs=.. errors=.. idle_conns=.. close_timeouts=.. conns=.. ...
//       mbytes_per_s counts echoed payload in one direction, 10^6 bytes per MB. A failed
//       handshake prints `RESULT error=handshake ok=.. conns=.. reason=".." status=".."` and
//       exits 2; errors after the handshake (bad frames, wrong bytes, closes) still print the
//       figures, with errors=N and error="first one", and exit 3.
//
//   ws_bench selftest      checks SHA-1, base64 and the RFC 6455 example Accept value.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

// ------------------------------------------------------------------------------------------
// SHA-1 (FIPS 180-4) and base64, enough for Sec-WebSocket-Accept
// ------------------------------------------------------------------------------------------
class Sha1 {
public:
    void update(const void* data, size_t n) {
        const auto* p = static_cast<const uint8_t*>(data);
        total_ += n;
        while (n > 0) {
            size_t take = std::min(n, sizeof buf_ - blen_);
            memcpy(buf_ + blen_, p, take);
            blen_ += take;
            p += take;
            n -= take;
            if (blen_ == sizeof buf_) {
                block(buf_);
                blen_ = 0;
            }
        }
    }
    void final(uint8_t out[20]) {
        uint64_t bits = total_ * 8;
        uint8_t pad = 0x80;
        update(&pad, 1);
        uint8_t zero = 0;
        while (blen_ != 56) update(&zero, 1);
        uint8_t len[8];
        for (int i = 0; i < 8; ++i) len[i] = uint8_t(bits >> (56 - 8 * i));
        update(len, 8);
        for (int i = 0; i < 5; ++i) {
            out[4 * i] = uint8_t(h_[i] >> 24);
            out[4 * i + 1] = uint8_t(h_[i] >> 16);
            out[4 * i + 2] = uint8_t(h_[i] >> 8);
            out[4 * i + 3] = uint8_t(h_[i]);
        }
    }

private:
    static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }
    void block(const uint8_t* p) {
        uint32_t w[80];
        for (int i = 0; i < 16; ++i) {
            w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 |
                   uint32_t(p[4 * i + 2]) << 8 | uint32_t(p[4 * i + 3]);
        }
        for (int i = 16; i < 80; ++i) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4];
        for (int i = 0; i < 80; ++i) {
            uint32_t f, k;
            if (i < 20) {
                f = (b & c) | (~b & d);
                k = 0x5A827999;
            } else if (i < 40) {
                f = b ^ c ^ d;
                k = 0x6ED9EBA1;
            } else if (i < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8F1BBCDC;
            } else {
                f = b ^ c ^ d;
                k = 0xCA62C1D6;
            }
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d;
            d = c;
            c = rol(b, 30);
            b = a;
            a = t;
        }
        h_[0] += a;
        h_[1] += b;
        h_[2] += c;
        h_[3] += d;
        h_[4] += e;
    }
    uint32_t h_[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint8_t buf_[64];
    size_t blen_ = 0;
    uint64_t total_ = 0;
};

std::string base64(const uint8_t* p, size_t n) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = uint32_t(p[i]) << 16;
        if (i + 1 < n) v |= uint32_t(p[i + 1]) << 8;
        if (i + 2 < n) v |= p[i + 2];
        out += tbl[(v >> 18) & 63];
        out += tbl[(v >> 12) & 63];
        out += i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out += i + 2 < n ? tbl[v & 63] : '=';
    }
    return out;
}

std::string acceptFor(std::string_view key) {
    static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    Sha1 s;
    s.update(key.data(), key.size());
    s.update(guid.data(), guid.size());
    uint8_t d[20];
    s.final(d);
    return base64(d, 20);
}

// ------------------------------------------------------------------------------------------
// small helpers
// ------------------------------------------------------------------------------------------
uint64_t nowNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

[[noreturn]] void die(const char* fmt, const char* arg = "") {
    fprintf(stderr, "ws_bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

void tuneSocket(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// dst[i] = src[i] ^ mask[(off + i) % 4]; dst may equal src.
void xorMask(uint8_t* dst, const uint8_t* src, size_t n, const uint8_t mask[4], uint64_t off) {
    uint8_t m[8];
    for (int i = 0; i < 8; ++i) m[i] = mask[(off + i) & 3];
    uint64_t m64;
    memcpy(&m64, m, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m64;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; ++i) dst[i] = src[i] ^ m[i & 7];
}

// Writes a frame header (2..14 bytes) and returns its length. mask null = unmasked.
size_t frameHeader(uint8_t* h, uint8_t b0, uint64_t len, const uint8_t* mask) {
    size_t n = 0;
    h[n++] = b0;
    uint8_t mbit = mask ? 0x80 : 0;
    if (len < 126) {
        h[n++] = uint8_t(mbit | len);
    } else if (len < 65536) {
        h[n++] = mbit | 126;
        h[n++] = uint8_t(len >> 8);
        h[n++] = uint8_t(len);
    } else {
        h[n++] = mbit | 127;
        for (int i = 7; i >= 0; --i) h[n++] = uint8_t(len >> (8 * i));
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    return n;
}

// Header state machine shared by both sides: collects 2..14 bytes.
struct FrameHead {
    uint8_t h[14];
    size_t have = 0, need = 2;
    // Feeds bytes; returns how many were used. `done` is set when a header is complete.
    size_t feed(const uint8_t* p, size_t n, bool& done) {
        size_t used = 0;
        done = false;
        while (used < n) {
            size_t take = std::min(n - used, need - have);
            memcpy(h + have, p + used, take);
            have += take;
            used += take;
            if (have < need) break;
            if (need == 2) {
                uint8_t l7 = h[1] & 0x7f;
                size_t full = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
                if (full > 2) {
                    need = full;
                    continue;
                }
            }
            done = true;
            break;
        }
        return used;
    }
    uint8_t b0() const { return h[0]; }
    bool masked() const { return h[1] & 0x80; }
    uint64_t length() const {
        uint8_t l7 = h[1] & 0x7f;
        if (l7 < 126) return l7;
        if (l7 == 126) return uint64_t(h[2]) << 8 | h[3];
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v = v << 8 | h[2 + i];
        return v;
    }
    const uint8_t* mask() const { return h + need - 4; }
    void reset() { have = 0, need = 2; }
};

// A byte buffer with a read offset; realloc-grown, compacted when appending.
class Buf {
public:
    Buf() = default;
    Buf(const Buf&) = delete;
    Buf& operator=(const Buf&) = delete;
    ~Buf() { free(p_); }
    size_t pending() const { return len_ - off_; }
    const uint8_t* data() const { return p_ + off_; }
    uint8_t* reserve(size_t n) {
        if (off_ == len_) off_ = len_ = 0;
        if (len_ + n > cap_) {
            if (off_ > 0) {
                memmove(p_, p_ + off_, len_ - off_);
                len_ -= off_;
                off_ = 0;
            }
            if (len_ + n > cap_) {
                cap_ = std::max({cap_ * 2, len_ + n, size_t(16384)});
                p_ = static_cast<uint8_t*>(realloc(p_, cap_));
                if (!p_) die("out of memory");
            }
        }
        return p_ + len_;
    }
    void commit(size_t n) { len_ += n; }
    void append(const void* d, size_t n) {
        memcpy(reserve(n), d, n);
        commit(n);
    }
    void consume(size_t n) {
        off_ += n;
        if (off_ == len_) off_ = len_ = 0;
    }

private:
    uint8_t* p_ = nullptr;
    size_t off_ = 0, len_ = 0, cap_ = 0;
};

bool ieq(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (tolower(uint8_t(a[i])) != tolower(uint8_t(b[i]))) return false;
    }
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// True when the comma-separated list `v` holds `token` (case-insensitive).
bool hasToken(std::string_view v, std::string_view token) {
    while (!v.empty()) {
        size_t c = v.find(',');
        if (ieq(trim(v.substr(0, c)), token)) return true;
        if (c == std::string_view::npos) break;
        v.remove_prefix(c + 1);
    }
    return false;
}

// Header fields of an HTTP head (lines after the first), as name/value pairs.
std::vector<std::pair<std::string_view, std::string_view>> headerFields(std::string_view head) {
    std::vector<std::pair<std::string_view, std::string_view>> out;
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos + 2 < head.size()) {
        size_t start = pos + 2;
        size_t end = head.find("\r\n", start);
        std::string_view line = head.substr(start, end == std::string_view::npos ? end : end - start);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos) {
            out.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
        }
        pos = end;
    }
    return out;
}

constexpr size_t kReadBuf = 256 * 1024;

// ------------------------------------------------------------------------------------------
// server
// ------------------------------------------------------------------------------------------
struct SConn {
    int fd = -1;
    bool upgraded = false;
    std::string hs;
    FrameHead head;
    bool in_payload = false;
    uint8_t b0 = 0;
    uint64_t remain = 0, moff = 0;
    uint8_t mask[4] = {};
    bool masked = false;
    std::string ctl;
    Buf out;
    bool close_after_flush = false;
    bool reading = true, writing = false;
};

class EchoServer {
public:
    EchoServer(const char* host, int port, bool reuseport) {
        lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (reuseport) setsockopt(lfd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(uint16_t(port));
        if (inet_pton(AF_INET, host, &a.sin_addr) != 1) die("bad --host %s", host);
        if (bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("bind: %s", strerror(errno));
        if (listen(lfd_, 4096) != 0) die("listen: %s", strerror(errno));
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;
        epoll_ctl(ep_, EPOLL_CTL_ADD, lfd_, &ev);
        rbuf_.resize(kReadBuf);
    }

    void run() {
        std::vector<epoll_event> evs(256);
        for (;;) {
            int n = epoll_wait(ep_, evs.data(), int(evs.size()), -1);
            if (n < 0) {
                if (errno == EINTR) continue;
                die("epoll_wait: %s", strerror(errno));
            }
            for (int i = 0; i < n; ++i) {
                if (evs[i].data.ptr == nullptr) {
                    acceptAll();
                    continue;
                }
                auto* c = static_cast<SConn*>(evs[i].data.ptr);
                uint32_t e = evs[i].events;
                if ((e & EPOLLOUT) && !flush(c)) continue;
                if ((e & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->reading) onReadable(c);
            }
        }
    }

private:
    void acceptAll() {
        for (;;) {
            int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;  // EAGAIN, or EMFILE and friends: try again on the next event
            tuneSocket(fd);
            auto* c = new SConn;
            c->fd = fd;
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.ptr = c;
            epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
        }
    }

    void closeConn(SConn* c) {
        epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
        close(c->fd);
        delete c;
    }

    void setEvents(SConn* c, bool rd, bool wr) {
        if (rd == c->reading && wr == c->writing) return;
        c->reading = rd;
        c->writing = wr;
        epoll_event ev{};
        ev.events = (rd ? uint32_t(EPOLLIN) : 0u) | (wr ? uint32_t(EPOLLOUT) : 0u);
        ev.data.ptr = c;
        epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
    }

    void onReadable(SConn* c) {
        for (int rounds = 0; rounds < 4; ++rounds) {
            ssize_t n = recv(c->fd, rbuf_.data(), rbuf_.size(), 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                closeConn(c);
                return;
            }
            if (n < 0) break;
            const uint8_t* p = rbuf_.data();
            size_t len = size_t(n);
            bool ok = c->upgraded ? feed(c, p, len) : handshake(c, p, len);
            if (!ok) {
                closeConn(c);
                return;
            }
            if (c->close_after_flush || c->out.pending() > (4u << 20) || size_t(n) < rbuf_.size()) break;
        }
        flush(c);
    }

    // Returns false when the connection was closed.
    bool flush(SConn* c) {
        while (c->out.pending() > 0) {
            ssize_t w = send(c->fd, c->out.data(), c->out.pending(), MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                closeConn(c);
                return false;
            }
            c->out.consume(size_t(w));
        }
        if (c->out.pending() == 0 && c->close_after_flush) {
            closeConn(c);
            return false;
        }
        bool wr = c->out.pending() > 0;
        bool rd = !c->close_after_flush && c->out.pending() < (1u << 20);
        setEvents(c, rd, wr);
        return true;
    }

    bool handshake(SConn* c, const uint8_t* p, size_t n) {
        c->hs.append(reinterpret_cast<const char*>(p), n);
        size_t end = c->hs.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (c->hs.size() > 16384) {
                reply(c, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
                return true;
            }
            return true;
        }
        std::string_view head(c->hs.data(), end + 2);
        std::string_view key;
        bool upgrade = false;
        for (auto& [name, value] : headerFields(head)) {
            if (ieq(name, "sec-websocket-key")) key = value;
            if (ieq(name, "upgrade") && hasToken(value, "websocket")) upgrade = true;
        }
        if (head.substr(0, 4) != "GET ") {
            reply(c, "HTTP/1.1 405 Method Not Allowed\r\n");
        } else if (!upgrade) {
            reply(c, "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n");
        } else if (key.empty()) {
            reply(c, "HTTP/1.1 400 Bad Request\r\n");
        } else {
            std::string r =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " +
                acceptFor(key) + "\r\n\r\n";
            c->out.append(r.data(), r.size());
            c->upgraded = true;
            std::string rest = c->hs.substr(end + 4);
            c->hs.clear();
            c->hs.shrink_to_fit();
            return rest.empty() || feed(c, reinterpret_cast<const uint8_t*>(rest.data()), rest.size());
        }
        return true;
    }

    void reply(SConn* c, const char* status_and_fields) {
        std::string r = std::string(status_and_fields) + "Content-Length: 0\r\nConnection: close\r\n\r\n";
        c->out.append(r.data(), r.size());
        c->close_after_flush = true;
    }

    void queueControl(SConn* c, uint8_t op, const std::string& payload) {
        uint8_t h[14];
        size_t hl = frameHeader(h, uint8_t(0x80 | op), payload.size(), nullptr);
        c->out.append(h, hl);
        c->out.append(payload.data(), payload.size());
    }

    bool control(SConn* c) {
        switch (c->b0 & 0x0f) {
            case 0x9:  // ping
                queueControl(c, 0xA, c->ctl);
                return true;
            case 0xA:  // pong
                return true;
            case 0x8:  // close: echo the status code, then close once flushed
                queueControl(c, 0x8, c->ctl.size() >= 2 ? c->ctl.substr(0, 2) : std::string());
                c->close_after_flush = true;
                return true;
            default:
                return false;
        }
    }

    // Streams frames back: each data frame's header is written as soon as it is read, its
    // payload unmasked as it arrives. Returns false on a protocol error.
    bool feed(SConn* c, const uint8_t* p, size_t n) {
        while (n > 0 && !c->close_after_flush) {
            if (!c->in_payload) {
                bool done;
                size_t used = c->head.feed(p, n, done);
                p += used;
                n -= used;
                if (!done) continue;
                c->b0 = c->head.b0();
                c->masked = c->head.masked();
                if (c->masked) memcpy(c->mask, c->head.mask(), 4);
                uint64_t len = c->head.length();
                c->head.reset();
                bool ctl = c->b0 & 0x08;
                if (ctl) {
                    if (len > 125 || !(c->b0 & 0x80)) return false;
                    c->ctl.clear();
                } else {
                    uint8_t h[14];
                    c->out.append(h, frameHeader(h, c->b0, len, nullptr));
                }
                c->remain = len;
                c->moff = 0;
                c->in_payload = true;
                if (len == 0) {
                    c->in_payload = false;
                    if (ctl && !control(c)) return false;
                }
                continue;
            }
            size_t take = size_t(std::min<uint64_t>(n, c->remain));
            if (c->b0 & 0x08) {
                size_t o = c->ctl.size();
                c->ctl.append(reinterpret_cast<const char*>(p), take);
                if (c->masked) {
                    auto* d = reinterpret_cast<uint8_t*>(c->ctl.data()) + o;
                    xorMask(d, d, take, c->mask, c->moff);
                }
            } else {
                uint8_t* d = c->out.reserve(take);
                if (c->masked) {
                    xorMask(d, p, take, c->mask, c->moff);
                } else {
                    memcpy(d, p, take);
                }
                c->out.commit(take);
            }
            c->moff += take;
            c->remain -= take;
            p += take;
            n -= take;
            if (c->remain == 0) {
                c->in_payload = false;
                if ((c->b0 & 0x08) && !control(c)) return false;
            }
        }
        return true;
    }

    int lfd_ = -1, ep_ = -1;
    std::vector<uint8_t> rbuf_;
};

int serverMain(int argc, char** argv) {
    if (argc < 3) die("usage: ws_bench server PORT [--host 127.0.0.1] [--threads T]");
    int port = atoi(argv[2]);
    const char* host = "127.0.0.1";
    int threads = 1;
    for (int i = 3; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--host" && i + 1 < argc) {
            host = argv[++i];
        } else if (a == "--threads" && i + 1 < argc) {
            threads = std::max(1, atoi(argv[++i]));
        } else {
            die("unknown server option %s", argv[i]);
        }
    }
    if (port <= 0 || port > 65535) die("bad port %s", argv[2]);
    std::vector<std::unique_ptr<EchoServer>> servers;
    for (int t = 0; t < threads; ++t) servers.push_back(std::make_unique<EchoServer>(host, port, threads > 1));
    fprintf(stderr, "ws_bench server: echo on %s:%d, %d thread(s)\n", host, port, threads);
    std::vector<std::thread> ts;
    for (int t = 1; t < threads; ++t) ts.emplace_back([&servers, t] { servers[t]->run(); });
    servers[0]->run();
    return 0;
}

// ------------------------------------------------------------------------------------------
// client
// ------------------------------------------------------------------------------------------
// Latency histogram: exact below 128 ns, then 64 buckets per power of two (error < 1.6 %).
class Hist {
public:
    Hist() : b_(128 + 57 * 64, 0) {}
    void add(uint64_t v) {
        ++b_[index(v)];
        ++n_;
        max_ = std::max(max_, v);
    }
    void merge(const Hist& o) {
        for (size_t i = 0; i < b_.size(); ++i) b_[i] += o.b_[i];
        n_ += o.n_;
        max_ = std::max(max_, o.max_);
    }
    uint64_t count() const { return n_; }
    uint64_t max() const { return max_; }
    double quantile(double q) const {
        if (n_ == 0) return 0;
        uint64_t rank = uint64_t(std::ceil(q * double(n_)));
        if (rank == 0) rank = 1;
        uint64_t seen = 0;
        for (size_t i = 0; i < b_.size(); ++i) {
            seen += b_[i];
            if (seen >= rank) return std::min<double>(mid(i), double(max_));
        }
        return double(max_);
    }

private:
    static size_t index(uint64_t v) {
        if (v < 128) return size_t(v);
        int msb = 63 - __builtin_clzll(v);
        int shift = msb - 6;
        return 128 + size_t(msb - 7) * 64 + size_t((v >> shift) - 64);
    }
    static double mid(size_t i) {
        if (i < 128) return double(i);
        size_t k = i - 128;
        int msb = int(k / 64) + 7;
        uint64_t sub = k % 64 + 64;
        int shift = msb - 6;
        double lo = double(sub << shift), hi = double((sub + 1) << shift);
        return (lo + hi) / 2;
    }
    std::vector<uint64_t> b_;
    uint64_t n_ = 0, max_ = 0;
};

struct ClientCfg {
    std::string hostport, host, path = "/ws";
    sockaddr_storage addr{};
    socklen_t alen = 0;
    int conns = 0, pipeline = 1, threads = 1;
    uint64_t size = 0;
    double seconds = 0, warmup = 1, hs_timeout = 5;
    std::vector<uint8_t> tmpl;  // payload pattern; bytes 0..7 are replaced by the sequence number
};

struct Shared {
    std::mutex mu;
    std::string first_error, first_status;
    int hs_ok = 0, hs_fail = 0;
    uint64_t t0 = 0;
    void error(const std::string& e, const std::string& status = "") {
        std::lock_guard<std::mutex> l(mu);
        if (first_error.empty()) {
            first_error = e;
            first_status = status;
        }
    }
};

enum class St { Connecting, Handshake, Open, Closing, Dead };

struct CConn {
    int fd = -1;
    St st = St::Connecting;
    std::string req, resp, accept;
    size_t req_off = 0;
    bool events_out = true;
    // tx
    uint8_t mask[4];
    uint8_t hdr[14];
    size_t hlen = 0;
    uint64_t next_seq = 0;  // next sequence number to queue
    uint64_t gen_seq = 0;   // sequence number of the frame being generated
    uint64_t gen_off = 0;   // bytes of that frame already generated
    bool gen_active = false;
    uint64_t queued = 0;    // queued messages whose frame was not started
    std::string ctl_out;    // control frames waiting for a frame boundary
    bool close_wanted = false, close_queued = false;
    Buf out;
    std::vector<uint64_t> ts;  // queue time per in-flight message, ring of `pipeline`
    // rx
    FrameHead head;
    bool in_payload = false;
    uint8_t b0 = 0;
    uint64_t remain = 0;
    bool msg_active = false;
    uint64_t msg_off = 0, recv_seq = 0;
    std::string ctl;
    uint64_t counted = 0;
    bool got_close = false;
};

struct ThreadResult {
    Hist hist;
    uint64_t msgs = 0, total_msgs = 0, errors = 0, idle = 0, close_timeouts = 0;
    uint64_t min_conn = UINT64_MAX, max_conn = 0;
};

class ClientThread {
public:
    ClientThread(const ClientCfg& cfg, Shared& sh, int nconns, uint64_t seed)
        : cfg_(cfg), sh_(sh), nconns_(nconns), rng_(seed | 1) {
        rbuf_.resize(kReadBuf);
    }

    template <class Barrier>
    void run(Barrier& bar) {
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        handshakes();
        bar.arrive_and_wait();
        bool go;
        {
            std::lock_guard<std::mutex> l(sh_.mu);
            go = sh_.hs_fail == 0;
        }
        if (go) {
            measure();
            closing();
        }
        for (auto& c : conns_) {
            if (c->fd >= 0) close(c->fd);
            c->fd = -1;
        }
        close(ep_);
    }

    ThreadResult res;

private:
    uint64_t rand64() {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        return rng_;
    }

    void setOut(CConn* c, bool on) {
        if (c->events_out == on || c->fd < 0) return;
        c->events_out = on;
        epoll_event ev{};
        ev.events = EPOLLIN | (on ? uint32_t(EPOLLOUT) : 0u);
        ev.data.ptr = c;
        epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
    }

    void kill(CConn* c) {
        if (c->fd >= 0) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
            close(c->fd);
        }
        c->fd = -1;
        c->st = St::Dead;
    }

    void fail(CConn* c, const std::string& why) {
        if (c->st == St::Closing) {  // whatever happens while closing is not counted
            kill(c);
            return;
        }
        bool hs = c->st == St::Connecting || c->st == St::Handshake;
        std::string status;
        if (hs && !c->resp.empty()) status = c->resp.substr(0, c->resp.find("\r\n"));
        sh_.error(why, status);
        if (hs) {
            std::lock_guard<std::mutex> l(sh_.mu);
            ++sh_.hs_fail;
        } else {
            ++res.errors;
        }
        kill(c);
    }

    // ---- phase 1: connect and handshake
    void handshakes() {
        for (int i = 0; i < nconns_; ++i) {
            auto c = std::make_unique<CConn>();
            c->ts.assign(size_t(cfg_.pipeline), 0);
            uint64_t k[2] = {rand64(), rand64()};
            std::string key = base64(reinterpret_cast<const uint8_t*>(k), 16);
            c->accept = acceptFor(key);
            c->req = "GET " + cfg_.path + " HTTP/1.1\r\nHost: " + cfg_.hostport +
                     "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                     "\r\nSec-WebSocket-Version: 13\r\nUser-Agent: ws_bench\r\n\r\n";
            uint32_t m = uint32_t(rand64());
            memcpy(c->mask, &m, 4);
            c->hlen = frameHeader(c->hdr, 0x82, cfg_.size, c->mask);
            c->fd = socket(cfg_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            tuneSocket(c->fd);
            CConn* raw = c.get();
            conns_.push_back(std::move(c));
            int r = connect(raw->fd, reinterpret_cast<const sockaddr*>(&cfg_.addr), cfg_.alen);
            if (r != 0 && errno != EINPROGRESS) {
                fail(raw, std::string("connect: ") + strerror(errno));
                continue;
            }
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLOUT;
            ev.data.ptr = raw;
            epoll_ctl(ep_, EPOLL_CTL_ADD, raw->fd, &ev);
        }
        uint64_t deadline = nowNs() + uint64_t(cfg_.hs_timeout * 1e9);
        std::vector<epoll_event> evs(256);
        for (;;) {
            int waiting = 0;
            for (auto& c : conns_) waiting += c->st == St::Connecting || c->st == St::Handshake;
            if (waiting == 0) break;
            uint64_t now = nowNs();
            if (now >= deadline) {
                for (auto& c : conns_) {
                    if (c->st == St::Connecting) fail(c.get(), "timeout: connect did not complete");
                    if (c->st == St::Handshake) {
                        fail(c.get(), c->resp.empty() ? "timeout: no answer to the upgrade request"
                                                      : "timeout: incomplete answer to the upgrade request");
                    }
                }
                break;
            }
            int n = epoll_wait(ep_, evs.data(), int(evs.size()), int((deadline - now) / 1000000) + 1);
            for (int i = 0; i < n; ++i) {
                auto* c = static_cast<CConn*>(evs[i].data.ptr);
                if (c->st == St::Connecting) {
                    int err = 0;
                    socklen_t el = sizeof err;
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                    if (err != 0) {
                        fail(c, std::string("connect: ") + strerror(err));
                        continue;
                    }
                    if (!(evs[i].events & EPOLLOUT)) continue;
                    c->st = St::Handshake;
                }
                if (c->st != St::Handshake) continue;
                if (c->req_off < c->req.size()) {
                    ssize_t w = send(c->fd, c->req.data() + c->req_off, c->req.size() - c->req_off, MSG_NOSIGNAL);
                    if (w < 0 && errno != EAGAIN) {
                        fail(c, std::string("send: ") + strerror(errno));
                        continue;
                    }
                    if (w > 0) c->req_off += size_t(w);
                    if (c->req_off == c->req.size()) setOut(c, false);
                }
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readHandshake(c);
            }
        }
        std::lock_guard<std::mutex> l(sh_.mu);
        for (auto& c : conns_) sh_.hs_ok += c->st == St::Open;
    }

    void readHandshake(CConn* c) {
        char b[4096];
        ssize_t n = recv(c->fd, b, sizeof b, 0);
        if (n == 0) {
            fail(c, c->resp.empty() ? "connection closed without an answer to the upgrade request"
                                    : "connection closed in the middle of the answer to the upgrade request");
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) fail(c, std::string("recv: ") + strerror(errno));
            return;
        }
        c->resp.append(b, size_t(n));
        size_t end = c->resp.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (c->resp.size() > 65536) fail(c, "answer to the upgrade request has no end of head");
            return;
        }
        std::string_view head(c->resp.data(), end + 2);
        std::string_view status = head.substr(0, head.find("\r\n"));
        if (status.substr(0, 13) != "HTTP/1.1 101 " && status != "HTTP/1.1 101") {
            fail(c, "the upgrade was not accepted");
            return;
        }
        bool upgrade = false, connection = false;
        std::string_view accept;
        for (auto& [name, value] : headerFields(head)) {
            if (ieq(name, "upgrade") && hasToken(value, "websocket")) upgrade = true;
            if (ieq(name, "connection") && hasToken(value, "upgrade")) connection = true;
            if (ieq(name, "sec-websocket-accept")) accept = value;
        }
        if (!upgrade) return fail(c, "101 without Upgrade: websocket");
        if (!connection) return fail(c, "101 without Connection: upgrade");
        if (accept != c->accept) {
            return fail(c, "101 with a wrong Sec-WebSocket-Accept (got '" + std::string(accept) +
                               "', expected '" + c->accept + "')");
        }
        std::string rest = c->resp.substr(end + 4);
        c->st = St::Open;
        if (!rest.empty()) feed(c, reinterpret_cast<const uint8_t*>(rest.data()), rest.size(), nowNs());
        if (c->st == St::Open) {
            c->resp.clear();
            c->resp.shrink_to_fit();
        }
    }

    // ---- frames out
    void queueMsg(CConn* c, uint64_t now) {
        c->ts[c->next_seq % c->ts.size()] = now;
        ++c->next_seq;
        ++c->queued;
    }

    // Generates frame bytes into c->out, at most ~256 KiB ahead of what was sent.
    void generate(CConn* c) {
        const uint64_t frame_len = c->hlen + cfg_.size;
        while (c->out.pending() < 256 * 1024) {
            if (!c->gen_active) {
                if (!c->ctl_out.empty()) {
                    c->out.append(c->ctl_out.data(), c->ctl_out.size());
                    c->ctl_out.clear();
                    continue;
                }
                if (c->queued > 0) {
                    --c->queued;
                    c->gen_active = true;
                    c->gen_off = 0;
                } else {
                    if (c->close_wanted && !c->close_queued) {
                        uint8_t f[8];
                        uint8_t code[2] = {0x03, 0xE8};  // 1000
                        size_t hl = frameHeader(f, 0x88, 2, c->mask);
                        xorMask(f + hl, code, 2, c->mask, 0);
                        c->out.append(f, hl + 2);
                        c->close_queued = true;
                    }
                    return;
                }
            }
            uint64_t left = frame_len - c->gen_off;
            size_t chunk = size_t(std::min<uint64_t>(left, 128 * 1024));
            uint8_t* d = c->out.reserve(chunk);
            size_t done = 0;
            if (c->gen_off < c->hlen) {
                size_t h = std::min<size_t>(chunk, c->hlen - size_t(c->gen_off));
                memcpy(d, c->hdr + c->gen_off, h);
                done = h;
            }
            uint64_t po = c->gen_off + done - c->hlen;  // payload offset
            while (done < chunk && po < 8) {
                d[done] = uint8_t(c->gen_seq >> (8 * po)) ^ c->mask[po & 3];
                ++done;
                ++po;
            }
            if (done < chunk) xorMask(d + done, cfg_.tmpl.data() + po, chunk - done, c->mask, po);
            c->out.commit(chunk);
            c->gen_off += chunk;
            if (c->gen_off == frame_len) {
                c->gen_active = false;
                ++c->gen_seq;
            }
        }
    }

    void flush(CConn* c) {
        if (c->fd < 0) return;
        for (;;) {
            generate(c);
            if (c->out.pending() == 0) break;
            ssize_t w = send(c->fd, c->out.data(), c->out.pending(), MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                return fail(c, std::string("send: ") + strerror(errno));
            }
            bool partial = size_t(w) < c->out.pending();
            c->out.consume(size_t(w));
            if (partial) break;
        }
        setOut(c, c->out.pending() > 0);
    }

    // ---- frames in
    bool verify(CConn* c, const uint8_t* p, size_t n) const {
        uint64_t off = c->msg_off;
        size_t i = 0;
        for (; i < n && off + i < 8; ++i) {
            if (p[i] != uint8_t(c->recv_seq >> (8 * (off + i)))) return false;
        }
        return i == n || memcmp(p + i, cfg_.tmpl.data() + off + i, n - i) == 0;
    }

    void messageDone(CConn* c, uint64_t now) {
        if (c->msg_off != cfg_.size) {
            return fail(c, "echoed message has " + std::to_string(c->msg_off) + " bytes, sent " +
                               std::to_string(cfg_.size));
        }
        if (c->recv_seq >= c->next_seq) return fail(c, "a message arrived that was never sent");
        uint64_t lat = now - c->ts[c->recv_seq % c->ts.size()];
        ++c->recv_seq;
        c->msg_active = false;
        ++res.total_msgs;
        if (now >= meas_start_ && now < meas_end_) {
            ++c->counted;
            res.hist.add(lat);
        }
        if (c->st == St::Open && now < meas_end_) queueMsg(c, now);
    }

    void controlIn(CConn* c) {
        uint8_t op = c->b0 & 0x0f;
        if (op == 0x9) {  // ping: pong, masked
            uint8_t f[14];
            size_t hl = frameHeader(f, 0x8A, c->ctl.size(), c->mask);
            std::string pong(reinterpret_cast<char*>(f), hl);
            pong += c->ctl;
            xorMask(reinterpret_cast<uint8_t*>(pong.data()) + hl, reinterpret_cast<uint8_t*>(pong.data()) + hl,
                    c->ctl.size(), c->mask, 0);
            c->ctl_out += pong;
        } else if (op == 0x8) {
            c->got_close = true;
            if (c->st != St::Closing) {
                unsigned code = c->ctl.size() >= 2 ? (uint8_t(c->ctl[0]) << 8 | uint8_t(c->ctl[1])) : 1005;
                std::string reason = c->ctl.size() > 2 ? c->ctl.substr(2) : "";
                fail(c, "the server closed the WebSocket: code " + std::to_string(code) +
                            (reason.empty() ? "" : " '" + reason + "'"));
            } else {
                kill(c);
            }
        } else if (op != 0xA) {
            fail(c, "reserved control opcode " + std::to_string(op));
        }
    }

    void feed(CConn* c, const uint8_t* p, size_t n, uint64_t now) {
        while (n > 0 && c->fd >= 0) {
            if (!c->in_payload) {
                bool done;
                size_t used = c->head.feed(p, n, done);
                p += used;
                n -= used;
                if (!done) continue;
                if (c->head.masked()) return fail(c, "masked frame from the server");
                c->b0 = c->head.b0();
                uint64_t len = c->head.length();
                c->head.reset();
                if (c->b0 & 0x70) return fail(c, "frame with RSV bits set (no extension was negotiated)");
                uint8_t op = c->b0 & 0x0f;
                if (op & 0x08) {
                    if (len > 125 || !(c->b0 & 0x80)) return fail(c, "invalid control frame");
                    c->ctl.clear();
                } else if (op == 0) {
                    if (!c->msg_active) return fail(c, "continuation frame outside a message");
                } else if (op == 1 || op == 2) {
                    if (c->msg_active) return fail(c, "new message inside a fragmented one");
                    if (op != 2) return fail(c, "text message echoed for a binary one");
                    c->msg_active = true;
                    c->msg_off = 0;
                } else {
                    return fail(c, "reserved data opcode " + std::to_string(op));
                }
                if (!(op & 0x08) && c->msg_off + len > cfg_.size) {
                    return fail(c, "echoed message longer than the one sent");
                }
                c->remain = len;
                c->in_payload = len > 0;
                if (len == 0) frameDone(c, now);
                continue;
            }
            size_t take = size_t(std::min<uint64_t>(n, c->remain));
            if (c->b0 & 0x08) {
                c->ctl.append(reinterpret_cast<const char*>(p), take);
            } else {
                if (!verify(c, p, take)) {
                    return fail(c, "echoed bytes differ from the ones sent (message " +
                                       std::to_string(c->recv_seq) + ", offset " + std::to_string(c->msg_off) + ")");
                }
                c->msg_off += take;
            }
            c->remain -= take;
            p += take;
            n -= take;
            if (c->remain == 0) {
                c->in_payload = false;
                frameDone(c, now);
            }
        }
    }

    void frameDone(CConn* c, uint64_t now) {
        if (c->b0 & 0x08) {
            controlIn(c);
        } else if (c->b0 & 0x80) {
            messageDone(c, now);
        }
    }

    void onReadable(CConn* c) {
        for (int rounds = 0; rounds < 4 && c->fd >= 0; ++rounds) {
            ssize_t n = recv(c->fd, rbuf_.data(), rbuf_.size(), 0);
            if (n == 0) {
                return fail(c, c->st == St::Closing ? "closed" : "the connection was closed without a close frame");
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                return fail(c, std::string("recv: ") + strerror(errno));
            }
            feed(c, rbuf_.data(), size_t(n), nowNs());
            if (size_t(n) < rbuf_.size()) break;
        }
        flush(c);
    }

    void loop(uint64_t until, bool closing) {
        std::vector<epoll_event> evs(256);
        for (;;) {
            uint64_t now = nowNs();
            if (now >= until) return;
            if (closing) {
                bool any = false;
                for (auto& c : conns_) any |= c->fd >= 0;
                if (!any) return;
            }
            int n = epoll_wait(ep_, evs.data(), int(evs.size()), int((until - now) / 1000000) + 1);
            for (int i = 0; i < n; ++i) {
                auto* c = static_cast<CConn*>(evs[i].data.ptr);
                if (c->fd < 0) continue;
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) onReadable(c);
                if (c->fd >= 0 && (evs[i].events & EPOLLOUT)) flush(c);
            }
        }
    }

    // ---- phase 2: the measured run
    void measure() {
        uint64_t t0 = sh_.t0;
        meas_start_ = t0 + uint64_t(cfg_.warmup * 1e9);
        meas_end_ = meas_start_ + uint64_t(cfg_.seconds * 1e9);
        for (auto& c : conns_) {
            if (c->st != St::Open) continue;
            for (int k = 0; k < cfg_.pipeline; ++k) queueMsg(c.get(), t0);
            flush(c.get());
        }
        loop(meas_end_, false);
        for (auto& c : conns_) {
            if (c->st != St::Open && !(c->st == St::Dead && c->recv_seq > 0)) continue;
            res.min_conn = std::min(res.min_conn, c->counted);
            res.max_conn = std::max(res.max_conn, c->counted);
            res.msgs += c->counted;
            if (c->counted == 0) ++res.idle;
        }
    }

    // ---- phase 3: close handshake (bounded)
    void closing() {
        for (auto& c : conns_) {
            if (c->st != St::Open) continue;
            c->st = St::Closing;
            c->queued = 0;
            c->close_wanted = true;
            flush(c.get());
        }
        loop(nowNs() + 2000000000ull, true);
        for (auto& c : conns_) {
            if (c->fd >= 0 && !c->got_close) ++res.close_timeouts;
        }
    }

    const ClientCfg& cfg_;
    Shared& sh_;
    int nconns_;
    uint64_t rng_;
    int ep_ = -1;
    std::vector<std::unique_ptr<CConn>> conns_;
    std::vector<uint8_t> rbuf_;
    uint64_t meas_start_ = 0, meas_end_ = 0;
};

std::string quoteValue(std::string s) {
    for (char& ch : s) {
        if (ch == '"' || ch == '\n' || ch == '\r') ch = '\'';
    }
    return "\"" + s + "\"";
}

int clientMain(int argc, char** argv) {
    if (argc < 3) {
        die("usage: ws_bench client HOST:PORT --conns N --seconds S --size BYTES [--pipeline K] "
            "[--path /ws] [--warmup W] [--threads T] [--handshake-timeout S]");
    }
    ClientCfg cfg;
    cfg.hostport = argv[2];
    bool have_size = false;
    for (int i = 3; i < argc; ++i) {
        std::string_view a = argv[i];
        if (i + 1 >= argc) die("option %s needs a value", argv[i]);
        const char* v = argv[++i];
        char* end = nullptr;
        double d = strtod(v, &end);
        bool num = end && *end == '\0' && end != v && d >= 0;
        if (a == "--path") {
            cfg.path = v;
            if (cfg.path.empty() || cfg.path[0] != '/') die("--path must start with '/'");
            continue;
        }
        if (!num) die("option value is not a number: %s", v);
        if (a == "--conns") {
            cfg.conns = int(d);
        } else if (a == "--seconds") {
            cfg.seconds = d;
        } else if (a == "--size") {
            cfg.size = uint64_t(d);
            have_size = true;
        } else if (a == "--pipeline") {
            cfg.pipeline = int(d);
        } else if (a == "--warmup") {
            cfg.warmup = d;
        } else if (a == "--threads") {
            cfg.threads = int(d);
        } else if (a == "--handshake-timeout") {
            cfg.hs_timeout = d;
        } else {
            die("unknown client option %s", std::string(a).c_str());
        }
    }
    if (cfg.conns < 1 || cfg.conns > 100000) die("--conns must be 1..100000");
    if (cfg.seconds <= 0 || cfg.seconds > 3600) die("--seconds must be > 0 and <= 3600");
    if (!have_size || cfg.size > (256u << 20)) die("--size is required and at most 256 MiB");
    if (cfg.pipeline < 1 || cfg.pipeline > 100000) die("--pipeline must be 1..100000");
    if (cfg.warmup > 3600 || cfg.hs_timeout <= 0) die("bad --warmup or --handshake-timeout");
    cfg.threads = std::clamp(cfg.threads, 1, cfg.conns);

    size_t colon = cfg.hostport.rfind(':');
    if (colon == std::string::npos) die("expected HOST:PORT, got %s", cfg.hostport.c_str());
    cfg.host = cfg.hostport.substr(0, colon);
    std::string port = cfg.hostport.substr(colon + 1);
    if (cfg.host.size() > 2 && cfg.host.front() == '[' && cfg.host.back() == ']') {
        cfg.host = cfg.host.substr(1, cfg.host.size() - 2);
    }
    addrinfo hints{}, *ai = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    int gr = getaddrinfo(cfg.host.c_str(), port.c_str(), &hints, &ai);
    if (gr != 0 || !ai) die("cannot resolve %s", cfg.hostport.c_str());
    memcpy(&cfg.addr, ai->ai_addr, ai->ai_addrlen);
    cfg.alen = ai->ai_addrlen;
    freeaddrinfo(ai);

    cfg.tmpl.resize(cfg.size);
    for (uint64_t i = 0; i < cfg.size; ++i) cfg.tmpl[i] = uint8_t((i * 131 + (i >> 8) * 7 + 17) & 0xff);

    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed) seed = nowNs();

    Shared sh;
    std::vector<std::unique_ptr<ClientThread>> workers;
    for (int t = 0; t < cfg.threads; ++t) {
        int n = cfg.conns / cfg.threads + (t < cfg.conns % cfg.threads ? 1 : 0);
        workers.push_back(std::make_unique<ClientThread>(cfg, sh, n, seed + uint64_t(t) * 0x9E3779B97F4A7C15ull));
    }
    uint64_t hs_start = nowNs();
    uint64_t hs_end = 0;
    auto done = [&]() noexcept {
        hs_end = nowNs();
        sh.t0 = hs_end;
    };
    std::barrier bar(cfg.threads, done);
    std::vector<std::thread> ts;
    for (int t = 1; t < cfg.threads; ++t) ts.emplace_back([&, t] { workers[t]->run(bar); });
    workers[0]->run(bar);
    for (auto& t : ts) t.join();

    printf("ws_bench client: %s%s, %d connections, %llu-byte binary messages, pipeline %d, %d thread(s)\n",
           cfg.hostport.c_str(), cfg.path.c_str(), cfg.conns, static_cast<unsigned long long>(cfg.size),
           cfg.pipeline, cfg.threads);
    printf("handshakes: %d of %d in %.1f ms\n", sh.hs_ok, cfg.conns, double(hs_end - hs_start) / 1e6);
    if (sh.hs_fail > 0) {
        fprintf(stderr, "ws_bench: handshake failed: %s%s%s\n", sh.first_error.c_str(),
                sh.first_status.empty() ? "" : ": ", sh.first_status.c_str());
        printf("RESULT error=handshake ok=%d conns=%d reason=%s status=%s\n", sh.hs_ok, cfg.conns,
               quoteValue(sh.first_error).c_str(), quoteValue(sh.first_status).c_str());
        return 2;
    }
    ThreadResult all;
    for (auto& w : workers) {
        all.hist.merge(w->res.hist);
        all.msgs += w->res.msgs;
        all.total_msgs += w->res.total_msgs;
        all.errors += w->res.errors;
        all.idle += w->res.idle;
        all.close_timeouts += w->res.close_timeouts;
        all.min_conn = std::min(all.min_conn, w->res.min_conn);
        all.max_conn = std::max(all.max_conn, w->res.max_conn);
    }
    if (all.min_conn == UINT64_MAX) all.min_conn = 0;
    double mps = double(all.msgs) / cfg.seconds;
    double mbps = mps * double(cfg.size) / 1e6;
    auto us = [&](double q) { return all.hist.quantile(q) / 1e3; };
    printf("window: %.3f s after %.3f s of warm-up: %llu messages echoed, per connection %llu..%llu, "
           "%llu idle connection(s), %llu error(s), %llu close handshake(s) unfinished after 2 s\n",
           cfg.seconds, cfg.warmup, static_cast<unsigned long long>(all.msgs),
           static_cast<unsigned long long>(all.min_conn), static_cast<unsigned long long>(all.max_conn),
           static_cast<unsigned long long>(all.idle), static_cast<unsigned long long>(all.errors),
           static_cast<unsigned long long>(all.close_timeouts));
    printf("latency (queued to echoed): p50 %.1f us, p90 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
           us(0.5), us(0.9), us(0.99), us(0.999), double(all.hist.max()) / 1e3);
    if (all.errors > 0) fprintf(stderr, "ws_bench: first error: %s\n", sh.first_error.c_str());
    printf("RESULT msgs_per_s=%.0f mbytes_per_s=%.2f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
           "msgs=%llu total_msgs=%llu errors=%llu idle_conns=%llu close_timeouts=%llu conns=%d size=%llu "
           "pipeline=%d seconds=%g%s%s\n",
           mps, mbps, us(0.5), us(0.9), us(0.99), us(0.999), double(all.hist.max()) / 1e3,
           static_cast<unsigned long long>(all.msgs), static_cast<unsigned long long>(all.total_msgs),
           static_cast<unsigned long long>(all.errors), static_cast<unsigned long long>(all.idle),
           static_cast<unsigned long long>(all.close_timeouts), cfg.conns,
           static_cast<unsigned long long>(cfg.size), cfg.pipeline, cfg.seconds,
           all.errors > 0 ? " error=" : "", all.errors > 0 ? quoteValue(sh.first_error).c_str() : "");
    return all.errors > 0 ? 3 : 0;
}

int selftest() {
    int bad = 0;
    auto hex = [](const std::string& msg) {
        Sha1 s;
        s.update(msg.data(), msg.size());
        uint8_t d[20];
        s.final(d);
        char out[41];
        for (int i = 0; i < 20; ++i) snprintf(out + 2 * i, 3, "%02x", d[i]);
        return std::string(out);
    };
    auto check = [&](const std::string& got, const char* want, const char* what) {
        bool ok = got == want;
        printf("%s %s: %s\n", ok ? "ok  " : "FAIL", what, got.c_str());
        bad += !ok;
    };
    check(hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1('')");
    check(hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d", "sha1('abc')");
    check(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1", "sha1(448 bits)");
    check(hex(std::string(1000000, 'a')), "34aa973cd4c4daa4f61eeb2bdbad27316534016f", "sha1(a x 1e6)");
    check(base64(reinterpret_cast<const uint8_t*>("foob"), 4), "Zm9vYg==", "base64('foob')");
    check(acceptFor("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "RFC 6455 accept");
    return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, nullptr, _IOLBF, 0);
    std::string_view mode = argc > 1 ? argv[1] : "";
    if (mode == "server") return serverMain(argc, argv);
    if (mode == "client") return clientMain(argc, argv);
    if (mode == "selftest") return selftest();
    fprintf(stderr,
            "usage: ws_bench server PORT [--host 127.0.0.1] [--threads T]\n"
            "       ws_bench client HOST:PORT --conns N --seconds S --size BYTES [--pipeline K] [--path /ws]\n"
            "                       [--warmup W] [--threads T] [--handshake-timeout S]\n"
            "       ws_bench selftest\n");
    return 2;
}
