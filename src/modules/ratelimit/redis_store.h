// SPDX-License-Identifier: Apache-2.0
// Rate limits with `store: redis`: GCRA decided by a Lua script in Redis, one round trip per
// decision, the request suspended in the Access phase until the reply or the deadline.
#pragma once

#include <ev.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/result.h"
#include "worker/io_batch.h"
#include "worker/request.h"

namespace photon::mod::ratelimit {

struct LimitConf;

/// The Lua script (GCRA over one key holding the theoretical arrival time in µs of Redis's
/// clock) and its SHA-1 as EVALSHA takes it (40 lowercase hex digits).
std::string_view gcraScript();
std::string_view gcraScriptSha();

/// The Redis key of key hash `h` under `prefix`: prefix, then the hash in hex inside a hash
/// tag ("photon:rl:{0123456789abcdef}"), so that a decision touches one cluster slot. The key
/// hash already mixes in the limit's identity, so two limits never share a key; the client's
/// key itself (an address, an API key) never reaches Redis. Writes at most
/// prefix.size() + 18 bytes to `out` and returns the length.
size_t redisKey(std::string_view prefix, uint64_t h, char* out);

/// Worker only, after fork: connects the process's Redis pool when a limit of `cfg` has
/// store: redis. Never blocks. `io`: the worker's batch of socket operations (writes go with it).
core::Result<void> startRedisStore(const core::Config& cfg, struct ev_loop* loop,
                                   worker::IoBatch* io);

/// Access for a store: redis limit and key hash `h`. Returns Suspend after sending the
/// decision (the request resumes on the reply or at redis.command_timeout), or decides at once
/// by on_store_error when no connection is ready or every pending record is taken.
worker::Verdict redisDecide(worker::Request& req, const LimitConf& c, uint64_t h);

/// Appends `,"redis":{...}` for /health when `cfg` has a redis block: this worker's
/// connections, and per limit with store: redis the shared error counters. Worker only.
void appendStoreHealth(const core::Config& cfg, std::string& out);

}  // namespace photon::mod::ratelimit
