// SPDX-License-Identifier: Apache-2.0
// One connection to a Redis server or Sentinel, driven by a worker's libev loop: a non-blocking
// TCP socket, optionally wrapped in TLS (OpenSSL, with the context the master made), commands
// written from one reusable buffer, replies parsed by hiredis's redisReader into a
// per-connection arena and handed in order to a ring of callbacks.
#pragma once

#include <ev.h>
#include <openssl/ssl.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "modules/tls/client_tls.h"
#include "worker/io_batch.h"

struct redisReader;
struct redisReply;

namespace photon::mod::redis {

/// A reply callback. `reply` is the parsed reply, valid only during the call (it lives in the
/// connection's arena), or nullptr when the command failed: the connection closed before its
/// reply came (lost, closed by its owner, worker stopping). Called exactly once per accepted
/// Connection::send(), from the loop, possibly from inside Connection::close(). Must not throw.
using ReplyFn = void (*)(const redisReply* reply, void* arg);

/// Memory for the replies of one connection: bump allocation from reusable chunks, reset after
/// each reply has been handed over, so a steady stream of replies allocates nothing.
class ReplyArena {
public:
    /// `n` bytes, aligned to 16; valid until reset(). nullptr when out of memory.
    void* alloc(size_t n);
    /// Forgets everything allocated; keeps up to kKeep chunks of the standard size.
    void reset();
    /// Chunks held now (for tests).
    size_t chunks() const { return chunks_.size(); }

    static constexpr size_t kChunk = 4096;
    static constexpr size_t kKeep = 4;

private:
    struct Chunk {
        std::unique_ptr<std::byte[]> mem;
        size_t size = 0;
    };
    std::vector<Chunk> chunks_;
    size_t cur_ = 0;   // the chunk allocated from now
    size_t used_ = 0;  // bytes used in it
};

/// Most elements a reply array may announce. The array of element pointers is allocated when
/// the header arrives, before any element, so without a bound a few bytes from the server
/// ("*2000000000") would make the worker allocate and zero gigabytes. The largest reply we ask
/// for, CLUSTER SLOTS, has one entry per slot range (at most 16 384). A larger header fails
/// the reply like an allocation failure (REDIS_ERR from readArenaReply).
inline constexpr int kMaxReplyElements = 1 << 16;

/// A hiredis reader whose replies are built in a ReplyArena (Connection's parser), or nullptr
/// when out of memory. The caller owns it (redisReaderFree).
redisReader* newArenaReader();

/// redisReaderGetReply() on a reader from newArenaReader(), building the reply in `arena`: the
/// reply (nullptr when more input is needed) lives until arena.reset(), which must come only
/// after a whole reply was taken (or after an error). Returns REDIS_OK or REDIS_ERR (protocol
/// error or out of memory; the reader is then unusable). Single-threaded.
int readArenaReply(redisReader* reader, ReplyArena& arena, void** reply);

/// One connection. Worker and helper only (single-threaded, on `loop`); never blocks: the
/// connect and the TLS handshake are non-blocking and addresses are IP literals. A Connection
/// is reusable: open(), close(), open() again (the object stays where it is, so owners keep
/// plain pointers to it).
///
/// Re-entrancy: callbacks may send on, close() and open() this connection or any other. A
/// close() from inside one of this connection's reply callbacks takes effect at once for
/// sending (nothing more is accepted or written) and fails the remaining commands right after
/// that callback returns.
class Connection {
public:
    /// Told when the connection is up (TCP connected and, with TLS, the handshake done: `why`
    /// is null) or has failed on its own (`why` says how: refused, TLS verification failed,
    /// closed by the server, a protocol error). Never for the owner's close(). When a failure
    /// is reported the connection is closed and its pending commands have been failed. May
    /// open() or close() the connection.
    using EventFn = void (*)(Connection& c, const char* why, void* owner);

    /// `io`: the worker's batch of socket operations (worker/io_batch.h), which carries out
    /// the writes with the loop turn's other reads and writes; null (tests, other processes):
    /// writes go out from a prepare watcher of their own.
    Connection(struct ev_loop* loop, worker::IoBatch* io, EventFn on_event, void* owner);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Starts connecting to `ip` (an IP literal: nothing is resolved) and `port`. With `tls`
    /// non-null a TLS handshake follows (SNI `name` when it is a DNS name; the certificate
    /// must match `name` when the context verifies). False, with `why`, when it failed at
    /// once; the connection is then closed and nothing is reported. Closes a connection still
    /// open first (failing its commands).
    bool open(const std::string& ip, uint16_t port, SSL_CTX* tls, const std::string& name,
              std::string& why);

    /// Takes `fd`, a connected stream socket (a socketpair in tests), as an up connection
    /// without TLS; made non-blocking here. Closes a connection still open first. The event
    /// callback is not told (it is up at once).
    void adopt(int fd);

    /// Queues the RESP-formatted command `cmd` (copied; `len` bytes); `fn` (may be null: the
    /// reply is dropped) gets its reply. Commands queued while connecting are written once the
    /// connection is up, in order. Writes happen when the loop is about to wait (with the
    /// worker's other socket operations), so the commands of one loop turn go out in one
    /// write. False (and `fn` never called) when the
    /// connection is closed or kMaxInFlight commands wait already.
    bool send(const char* cmd, size_t len, ReplyFn fn, void* arg);

    /// Replies that arrive with no command waiting (pub/sub messages after SUBSCRIBE) go to
    /// `fn`; without a handler they are a protocol error. Kept across open().
    void setPushHandler(ReplyFn fn, void* arg);

    /// Closes the connection (no event is reported); every pending command gets nullptr, now,
    /// or when called from inside one of this connection's reply callbacks, right after it.
    /// Nothing when already closed.
    void close();

    /// Connecting, handshaking or up.
    bool isOpen() const { return state_ != State::Closed; }
    /// Up: connected (and TLS established); commands are written.
    bool isUp() const { return state_ == State::Up; }
    /// Commands sent and not answered yet.
    size_t pending() const { return ring_.size(); }
    /// Reply chunks held by the arena (for tests).
    size_t arenaChunks() const { return arena_.chunks(); }

    /// Most commands waiting for replies on one connection.
    static constexpr size_t kMaxInFlight = 16384;

private:
    enum class State : uint8_t { Closed, Connecting, Handshaking, Up };
    struct Waiting {
        ReplyFn fn = nullptr;
        void* arg = nullptr;
    };
    /// FIFO of callbacks: a power-of-two ring that doubles when full (up to kMaxInFlight), so
    /// it stops allocating once it has seen the connection's peak.
    class Ring {
    public:
        bool push(Waiting w);
        Waiting pop();
        bool empty() const { return size_ == 0; }
        size_t size() const { return size_; }

    private:
        std::vector<Waiting> buf_;
        size_t head_ = 0;
        size_t size_ = 0;
    };

    static void onIo(struct ev_loop* loop, ev_io* w, int revents) noexcept;
    static void onPrepare(struct ev_loop* loop, ev_prepare* w, int revents) noexcept;
    static bool prepWrite(worker::IoOp* op, worker::IoArgs& a);
    static void wroteBatch(worker::IoOp* op, ssize_t n);

    void connected();
    void handshake();
    void up();
    void readable();
    void dispatch();
    void flush();
    /// Has the output written before the loop waits: through the batch, else the prepare
    /// watcher.
    void scheduleFlush();
    /// One read / write: bytes moved, 0 at end of stream (read), -EAGAIN when the socket (or
    /// TLS) is not ready, else -errno with `why` set.
    ssize_t receive(char* buf, size_t len, std::string& why);
    ssize_t transmit(const char* buf, size_t len, bool& want_read, std::string& why);
    /// Why a read or write failed, for the log (`detail`: the system's or OpenSSL's reason).
    std::string lost(const std::string& detail) const;
    void fail(const std::string& why);
    void shutdownIo();
    void drainDead();

    struct ev_loop* loop_;
    worker::IoBatch* io_;
    worker::IoOp write_op_;  // the output's write in io_'s batch
    size_t prepared_ = 0;    // bytes that write was given
    EventFn on_event_;
    void* owner_;
    State state_ = State::Closed;
    int fd_ = -1;
    SSL* ssl_ = nullptr;
    tls::SessionSlot session_;  // the last TLS session, resumed by the next open()
    ev_io read_w_;
    ev_io write_w_;
    ev_prepare flush_w_;  // writes the commands of this loop turn before the loop waits
    std::string out_;     // commands not written yet, from out_pos_
    size_t out_pos_ = 0;
    Ring ring_;  // callbacks of the commands sent, in order
    Ring dead_;  // callbacks of a closed connection, failed after the current one
    ReplyFn push_fn_ = nullptr;
    void* push_arg_ = nullptr;
    redisReader* reader_ = nullptr;
    ReplyArena arena_;
    uint64_t epoch_ = 0;        // bumped by every open() and close()
    bool answered_ = false;     // a reply came on this connection since open()
    uint32_t dispatching_ = 0;  // depth of reply callbacks of this connection on the stack
};

}  // namespace photon::mod::redis
