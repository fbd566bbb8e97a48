// SPDX-License-Identifier: Apache-2.0
// A Redis connection on the worker's loop: socket, TLS, reply parsing and the callback ring.
#include "modules/redis/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "modules/tls/server_tls.h"

namespace photon::mod::redis {

namespace {

/// Bytes read per recv/SSL_read; reads per readiness event before yielding to the loop.
constexpr size_t kReadChunk = 16384;
constexpr int kReadsPerEvent = 16;
/// The written prefix of the output buffer is dropped once it is this large (else when all is
/// written).
constexpr size_t kCompactAt = 65536;

// The arena of the reply being parsed. Replies are parsed only inside Connection::dispatch(),
// and a process runs one loop on one thread.
ReplyArena* g_arena = nullptr;
// Inside a flush run by the loop's prepare phase: a prepare watcher started now would only run
// after the loop has waited, so sends write at once instead.
bool g_in_prepare = false;

// hiredis's reply object functions (hiredis.c), allocating from g_arena.
redisReply* newReply(const redisReadTask* task, int type) {
    auto* r = static_cast<redisReply*>(g_arena->alloc(sizeof(redisReply)));
    if (r == nullptr) {
        return nullptr;
    }
    std::memset(r, 0, sizeof *r);
    r->type = type;
    if (task->parent != nullptr) {
        auto* parent = static_cast<redisReply*>(task->parent->obj);
        parent->element[task->idx] = r;
    }
    return r;
}

void* createString(const redisReadTask* task, char* str, size_t len) {
    auto* buf = static_cast<char*>(g_arena->alloc(len + 1));
    if (buf == nullptr) {
        return nullptr;
    }
    std::memcpy(buf, str, len);
    buf[len] = '\0';
    redisReply* r = newReply(task, task->type);
    if (r != nullptr) {
        r->str = buf;
        r->len = len;
    }
    return r;
}

void* createArray(const redisReadTask* task, int elements) {
    if (elements > kMaxReplyElements) {
        return nullptr;  // hiredis fails the reply as out of memory
    }
    redisReply** element = nullptr;
    if (elements > 0) {
        const size_t bytes = static_cast<size_t>(elements) * sizeof(redisReply*);
        element = static_cast<redisReply**>(g_arena->alloc(bytes));
        if (element == nullptr) {
            return nullptr;
        }
        std::memset(element, 0, bytes);
    }
    redisReply* r = newReply(task, REDIS_REPLY_ARRAY);
    if (r != nullptr) {
        r->elements = elements > 0 ? static_cast<size_t>(elements) : 0;
        r->element = element;
    }
    return r;
}

void* createInteger(const redisReadTask* task, long long value) {
    redisReply* r = newReply(task, REDIS_REPLY_INTEGER);
    if (r != nullptr) {
        r->integer = value;
    }
    return r;
}

void* createNil(const redisReadTask* task) { return newReply(task, REDIS_REPLY_NIL); }

void freeObject(void*) {}  // the arena is reset after each reply

redisReplyObjectFunctions kReplyFunctions = {createString, createArray, createInteger, createNil,
                                             freeObject};

}  // namespace

redisReader* newArenaReader() { return redisReaderCreateWithFunctions(&kReplyFunctions); }

int readArenaReply(redisReader* reader, ReplyArena& arena, void** reply) {
    g_arena = &arena;
    const int r = redisReaderGetReply(reader, reply);
    g_arena = nullptr;
    return r;
}

void* ReplyArena::alloc(size_t n) {
    n = (n + 15) & ~size_t{15};
    while (cur_ < chunks_.size()) {
        Chunk& c = chunks_[cur_];
        if (c.size - used_ >= n) {
            void* p = c.mem.get() + used_;
            used_ += n;
            return p;
        }
        ++cur_;
        used_ = 0;
    }
    Chunk c;
    c.size = std::max(kChunk, n);
    c.mem.reset(new (std::nothrow) std::byte[c.size]);
    if (c.mem == nullptr) {
        return nullptr;
    }
    chunks_.push_back(std::move(c));
    cur_ = chunks_.size() - 1;
    used_ = n;
    return chunks_.back().mem.get();
}

void ReplyArena::reset() {
    cur_ = 0;
    used_ = 0;
    if (chunks_.size() <= kKeep && std::all_of(chunks_.begin(), chunks_.end(),
                                               [](const Chunk& c) { return c.size == kChunk; })) {
        return;
    }
    std::erase_if(chunks_, [](const Chunk& c) { return c.size != kChunk; });
    if (chunks_.size() > kKeep) {
        chunks_.resize(kKeep);
    }
}

bool Connection::Ring::push(Waiting w) {
    if (size_ == buf_.size()) {
        if (buf_.size() >= kMaxInFlight) {
            return false;
        }
        std::vector<Waiting> bigger(buf_.empty() ? 64 : buf_.size() * 2);
        for (size_t i = 0; i < size_; ++i) {
            bigger[i] = buf_[(head_ + i) & (buf_.size() - 1)];
        }
        buf_.swap(bigger);
        head_ = 0;
    }
    buf_[(head_ + size_) & (buf_.size() - 1)] = w;
    ++size_;
    return true;
}

Connection::Waiting Connection::Ring::pop() {
    Waiting w = buf_[head_];
    head_ = (head_ + 1) & (buf_.size() - 1);
    --size_;
    return w;
}

Connection::Connection(struct ev_loop* loop, worker::IoBatch* io, EventFn on_event, void* owner)
    : loop_(loop), io_(io), on_event_(on_event), owner_(owner) {
    write_op_.prep = prepWrite;
    write_op_.done = wroteBatch;
    write_op_.owner = this;
    ev_io_init(&read_w_, onIo, 0, EV_READ);
    read_w_.data = this;
    ev_io_init(&write_w_, onIo, 0, EV_WRITE);
    write_w_.data = this;
    ev_prepare_init(&flush_w_, onPrepare);
    flush_w_.data = this;
}

Connection::~Connection() {
    close();
    if (session_.session != nullptr) {
        SSL_SESSION_free(session_.session);
    }
}

bool Connection::open(const std::string& ip, uint16_t port, SSL_CTX* tls, const std::string& name,
                      std::string& why) {
    close();
    sockaddr_storage sa{};
    socklen_t salen = 0;
    auto* in4 = reinterpret_cast<sockaddr_in*>(&sa);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
    if (inet_pton(AF_INET, ip.c_str(), &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        salen = sizeof *in4;
    } else if (inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        salen = sizeof *in6;
    } else {
        why = "not an IP address: " + ip;
        return false;
    }
    const int fd = ::socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        why = std::string("socket: ") + std::strerror(errno);
        return false;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int r;
    do {
        r = ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), salen);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EINPROGRESS) {
        why = std::string("connect failed: ") + std::strerror(errno);
        ::close(fd);
        return false;
    }
    fd_ = fd;
    state_ = State::Connecting;
    ++epoch_;
    answered_ = false;
    if (tls != nullptr) {
        ERR_clear_error();
        ssl_ = tls::newClientSession(tls, fd, name, &session_);
        if (ssl_ == nullptr) {
            why = "TLS set-up failed: " + tls::opensslErrors();
            close();
            return false;
        }
    }
    if (dispatching_ == 0) {
        arena_.reset();  // a partial reply of the connection before (else: after the callback)
    }
    reader_ = newArenaReader();
    if (reader_ == nullptr) {
        why = "out of memory";
        close();
        return false;
    }
    ev_io_set(&read_w_, fd, EV_READ);
    ev_io_set(&write_w_, fd, EV_WRITE);
    ev_io_start(loop_, &write_w_);  // writable: connected, or failed (SO_ERROR says)
    return true;
}

void Connection::adopt(int fd) {
    close();
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    fd_ = fd;
    ++epoch_;
    if (dispatching_ == 0) {
        arena_.reset();
    }
    reader_ = newArenaReader();
    ev_io_set(&read_w_, fd, EV_READ);
    ev_io_set(&write_w_, fd, EV_WRITE);
    state_ = State::Up;
    ev_io_start(loop_, &read_w_);
}

bool Connection::send(const char* cmd, size_t len, ReplyFn fn, void* arg) {
    if (state_ == State::Closed || !ring_.push({fn, arg})) {
        return false;
    }
    out_.append(cmd, len);
    scheduleFlush();
    return true;
}

void Connection::scheduleFlush() {
    if (state_ != State::Up || ev_is_active(&write_w_)) {
        return;  // written once up, or when the socket takes more
    }
    if (io_ != nullptr) {
        io_->queue(&write_op_);
    } else if (g_in_prepare) {
        flush();  // may fail the connection: its commands are then failed, as accepted
    } else if (!ev_is_active(&flush_w_)) {
        ev_prepare_start(loop_, &flush_w_);
    }
}

bool Connection::prepWrite(worker::IoOp* op, worker::IoArgs& a) {
    auto* c = static_cast<Connection*>(op->owner);
    if (c->state_ != State::Up || c->out_pos_ >= c->out_.size() || ev_is_active(&c->write_w_)) {
        return false;
    }
    a.fd = c->fd_;
    a.send = true;
    a.ssl = c->ssl_;
    a.iovcnt = 1;
    c->prepared_ = c->out_.size() - c->out_pos_;
    a.iov[0].iov_base = c->out_.data() + c->out_pos_;
    a.iov[0].iov_len = c->prepared_;
    return true;
}

void Connection::wroteBatch(worker::IoOp* op, ssize_t n) {
    auto* c = static_cast<Connection*>(op->owner);
    if (c->state_ != State::Up) {
        return;
    }
    if (n == -EAGAIN) {
        ev_io_start(c->loop_, &c->write_w_);
        return;
    }
    if (n < 0) {
        c->fail(c->lost(std::strerror(static_cast<int>(-n))));
        return;
    }
    c->out_pos_ += static_cast<size_t>(n);
    if (c->out_pos_ >= c->out_.size()) {
        c->out_.clear();  // keeps its capacity
        c->out_pos_ = 0;
        return;
    }
    if (static_cast<size_t>(n) < c->prepared_) {
        ev_io_start(c->loop_, &c->write_w_);  // the socket is full: when it takes more
        return;
    }
    c->io_->queue(&c->write_op_);  // commands added while it ran: the next round
}

void Connection::setPushHandler(ReplyFn fn, void* arg) {
    push_fn_ = fn;
    push_arg_ = arg;
}

void Connection::close() {
    shutdownIo();
    if (dispatching_ == 0) {
        drainDead();
    }
}

void Connection::shutdownIo() {
    if (state_ == State::Closed) {
        return;
    }
    ev_io_stop(loop_, &read_w_);
    ev_io_stop(loop_, &write_w_);
    ev_prepare_stop(loop_, &flush_w_);
    if (io_ != nullptr) {
        io_->cancel(&write_op_);
    }
    if (ssl_ != nullptr) {
        SSL_free(ssl_);  // no close_notify: nothing is waited for
        ssl_ = nullptr;
    }
    ::close(fd_);
    fd_ = -1;
    state_ = State::Closed;
    ++epoch_;
    out_.clear();
    out_pos_ = 0;
    // The reply being handed out (if any) lives in the arena, not in the reader, and
    // dispatch() touches the reader no more once the epoch changed.
    if (reader_ != nullptr) {
        redisReaderFree(reader_);
        reader_ = nullptr;
    }
    if (dead_.empty()) {
        std::swap(ring_, dead_);
    } else {
        while (!ring_.empty()) {
            dead_.push(ring_.pop());
        }
    }
}

void Connection::drainDead() {
    while (!dead_.empty()) {
        Waiting w = dead_.pop();
        if (w.fn != nullptr) {
            w.fn(nullptr, w.arg);
        }
    }
}

std::string Connection::lost(const std::string& detail) const {
    if (ssl_ != nullptr && !answered_ && detail.rfind("TLS: ", 0) != 0) {
        // With TLS 1.3 the server checks the client's certificate after the client has
        // finished its handshake: a refusal shows as a reset or a close before any reply.
        return "TLS session ended before any reply (" + detail +
               "): the server may want a client certificate (tls_cert, tls_key) or refuse this "
               "one";
    }
    return "connection lost: " + detail;
}

void Connection::fail(const std::string& why) {
    close();
    on_event_(*this, why.c_str(), owner_);
}

void Connection::onIo(struct ev_loop*, ev_io* w, int revents) noexcept {
    auto* c = static_cast<Connection*>(w->data);
    switch (c->state_) {
        case State::Connecting:
            c->connected();
            return;
        case State::Handshaking:
            c->handshake();
            return;
        case State::Up: {
            const uint64_t e = c->epoch_;
            if ((revents & EV_READ) != 0) {
                c->readable();
                if (c->epoch_ != e) {
                    return;
                }
            }
            if ((revents & EV_WRITE) != 0) {
                c->flush();  // the socket takes more
            } else if (c->out_pos_ < c->out_.size()) {
                c->scheduleFlush();  // sent by reply callbacks, or a TLS write waiting to read
            }
            return;
        }
        case State::Closed:
            return;
    }
}

void Connection::onPrepare(struct ev_loop*, ev_prepare* w, int) noexcept {
    auto* c = static_cast<Connection*>(w->data);
    g_in_prepare = true;
    c->flush();
    g_in_prepare = false;
}

void Connection::connected() {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (err == EINPROGRESS || err == EINTR) {
        return;
    }
    if (err != 0) {
        fail(std::string("connect failed: ") + std::strerror(err));
        return;
    }
    if (ssl_ != nullptr) {
        state_ = State::Handshaking;
        handshake();
        return;
    }
    ev_io_stop(loop_, &write_w_);
    up();
}

void Connection::handshake() {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
        ev_io_stop(loop_, &write_w_);
        up();
        return;
    }
    switch (SSL_get_error(ssl_, r)) {
        case SSL_ERROR_WANT_READ:
            ev_io_stop(loop_, &write_w_);
            ev_io_start(loop_, &read_w_);
            return;
        case SSL_ERROR_WANT_WRITE:
            ev_io_start(loop_, &write_w_);
            return;
        default:
            fail("TLS handshake failed: " + tls::clientHandshakeError(ssl_));
            return;
    }
}

void Connection::up() {
    state_ = State::Up;
    ev_io_start(loop_, &read_w_);
    const uint64_t e = epoch_;
    flush();  // the commands queued while connecting (AUTH, SELECT, PING ...)
    if (epoch_ == e) {
        on_event_(*this, nullptr, owner_);
    }
}

ssize_t Connection::receive(char* buf, size_t len, std::string& why) {
    if (ssl_ != nullptr) {
        ERR_clear_error();
        size_t got = 0;
        const int r = SSL_read_ex(ssl_, buf, len, &got);
        if (r == 1) {
            return static_cast<ssize_t>(got);
        }
        switch (SSL_get_error(ssl_, r)) {
            case SSL_ERROR_WANT_READ:
                return -EAGAIN;
            case SSL_ERROR_WANT_WRITE:
                ev_io_start(loop_, &write_w_);  // renegotiation is off; a key update, say
                return -EAGAIN;
            case SSL_ERROR_ZERO_RETURN:
                return 0;
            case SSL_ERROR_SYSCALL: {
                const int e = errno;
                if (e == 0) {
                    return 0;
                }
                why = std::strerror(e);
                return -e;
            }
            default:
                why = "TLS: " + tls::opensslErrors();
                return -EPROTO;
        }
    }
    ssize_t n;
    do {
        n = ::recv(fd_, buf, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return -EAGAIN;
        }
        why = std::strerror(errno);
        return -errno;
    }
    return n;
}

ssize_t Connection::transmit(const char* buf, size_t len, bool& want_read, std::string& why) {
    if (ssl_ != nullptr) {
        ERR_clear_error();
        size_t put = 0;
        const int r = SSL_write_ex(ssl_, buf, len, &put);
        if (r == 1) {
            return static_cast<ssize_t>(put);
        }
        switch (SSL_get_error(ssl_, r)) {
            case SSL_ERROR_WANT_WRITE:
                return -EAGAIN;
            case SSL_ERROR_WANT_READ:
                want_read = true;
                return -EAGAIN;
            case SSL_ERROR_ZERO_RETURN:
                why = "closed by the server";
                return -EPIPE;
            case SSL_ERROR_SYSCALL: {
                const int e = errno;
                why = e != 0 ? std::strerror(e) : "closed by the server";
                return e != 0 ? -e : -EPIPE;
            }
            default:
                why = "TLS: " + tls::opensslErrors();
                return -EPROTO;
        }
    }
    ssize_t n;
    do {
        n = ::send(fd_, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return -EAGAIN;
        }
        why = std::strerror(errno);
        return -errno;
    }
    return n;
}

void Connection::readable() {
    char buf[kReadChunk];
    const uint64_t e = epoch_;
    for (int i = 0; i < kReadsPerEvent; ++i) {
        std::string why;
        const ssize_t n = receive(buf, sizeof buf, why);
        if (n == -EAGAIN) {
            return;
        }
        if (n == 0) {
            fail(lost("closed by the server"));
            return;
        }
        if (n < 0) {
            fail(lost(why));
            return;
        }
        if (redisReaderFeed(reader_, buf, static_cast<size_t>(n)) != REDIS_OK) {
            fail("out of memory");
            return;
        }
        dispatch();
        if (epoch_ != e) {
            return;
        }
        if (ssl_ == nullptr && static_cast<size_t>(n) < sizeof buf) {
            return;  // the socket is drained
        }
    }
    // More may wait (in the socket, or decrypted inside OpenSSL where the socket cannot say
    // so): come back on the next loop turn.
    ev_feed_event(loop_, &read_w_, EV_READ);
}

void Connection::dispatch() {
    const uint64_t e = epoch_;
    ++dispatching_;
    const char* error = nullptr;
    for (;;) {
        void* reply = nullptr;
        const int r = readArenaReply(reader_, arena_, &reply);
        if (r != REDIS_OK) {
            error = "protocol error";
            break;
        }
        if (reply == nullptr) {
            break;
        }
        Waiting w{push_fn_, push_arg_};
        if (!ring_.empty()) {
            w = ring_.pop();
        } else if (push_fn_ == nullptr) {
            error = "a reply to no command";
            break;
        }
        answered_ = true;
        if (w.fn != nullptr) {
            w.fn(static_cast<const redisReply*>(reply), w.arg);
        }
        arena_.reset();
        if (epoch_ != e) {
            break;  // closed (or opened again) by the callback
        }
    }
    if (error != nullptr) {
        arena_.reset();  // a partial reply the reader dropped
    }
    --dispatching_;
    if (dispatching_ == 0) {
        drainDead();
    }
    if (error != nullptr && epoch_ == e) {
        std::string why = error;
        if (reader_ != nullptr && reader_->errstr[0] != '\0') {
            why += std::string(": ") + reader_->errstr;
        }
        fail(why);
    }
}

void Connection::flush() {
    ev_prepare_stop(loop_, &flush_w_);
    if (state_ != State::Up) {
        return;  // written once up
    }
    bool want_read = false;
    while (out_pos_ < out_.size()) {
        std::string why;
        const ssize_t n = transmit(out_.data() + out_pos_, out_.size() - out_pos_, want_read, why);
        if (n == -EAGAIN) {
            if (out_pos_ >= kCompactAt) {
                out_.erase(0, out_pos_);
                out_pos_ = 0;
            }
            if (want_read) {
                ev_io_stop(loop_, &write_w_);  // the next read event writes again
            } else {
                ev_io_start(loop_, &write_w_);
            }
            return;
        }
        if (n < 0) {
            fail(lost(why));
            return;
        }
        out_pos_ += static_cast<size_t>(n);
    }
    out_.clear();  // keeps its capacity
    out_pos_ = 0;
    ev_io_stop(loop_, &write_w_);
}

}  // namespace photon::mod::redis
