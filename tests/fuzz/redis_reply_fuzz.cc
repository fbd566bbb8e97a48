// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the Redis reply path: hiredis's reader with our reply object functions,
// which build replies in a per-connection arena (src/modules/redis/connection.cc). The input
// is what a server sends; byte 0 picks the sizes of the reads it arrives in.
// Property: the replies built in the arena, fed in pieces and reset after each reply as
// Connection does, are the same trees as hiredis's own functions build from the whole input
// (with the same bound on array sizes), and a protocol error is reported at the same reply.
// fuzz-sources: all
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "modules/redis/connection.h"

using namespace photon::mod::redis;

// An array header of a few bytes may ask for gigabytes: the allocation must fail cleanly.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

namespace {

void describe(const redisReply* r, std::string& out) {
    out += std::to_string(r->type);
    out += ':';
    switch (r->type) {
        case REDIS_REPLY_ARRAY:
            out += std::to_string(r->elements) + '[';
            for (size_t i = 0; i < r->elements; ++i) {
                FUZZ_CHECK(r->element[i] != nullptr);
                describe(r->element[i], out);
                out += ',';
            }
            out += ']';
            break;
        case REDIS_REPLY_INTEGER:
            out += std::to_string(r->integer);
            break;
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
        case REDIS_REPLY_ERROR:
            FUZZ_CHECK(r->str != nullptr && r->str[r->len] == '\0');
            out += std::to_string(r->len) + '"';
            out.append(r->str, r->len);
            break;
        default:
            break;
    }
    out += ';';
}

struct Outcome {
    std::vector<std::string> replies;
    bool error = false;
};

// hiredis's own createArray with our bound on the element count (kMaxReplyElements).
void* (*g_hiredis_create_array)(const redisReadTask*, int) = nullptr;

void* boundedCreateArray(const redisReadTask* task, int elements) {
    return elements > kMaxReplyElements ? nullptr : g_hiredis_create_array(task, elements);
}

Outcome reference(std::string_view in) {
    Outcome o;
    redisReader* rd = redisReaderCreate();
    static redisReplyObjectFunctions fn = [rd] {
        redisReplyObjectFunctions f = *rd->fn;
        g_hiredis_create_array = f.createArray;
        f.createArray = boundedCreateArray;
        return f;
    }();
    rd->fn = &fn;
    if (redisReaderFeed(rd, in.data(), in.size()) != REDIS_OK) {
        o.error = true;
    }
    while (!o.error) {
        void* reply = nullptr;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
            o.error = true;
            break;
        }
        if (reply == nullptr) {
            break;
        }
        std::string d;
        describe(static_cast<redisReply*>(reply), d);
        o.replies.push_back(std::move(d));
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
    return o;
}

ReplyArena g_arena;

Outcome arena(std::string_view in, size_t step) {
    Outcome o;
    redisReader* rd = newArenaReader();
    FUZZ_CHECK(rd != nullptr);
    size_t off = 0;
    while (!o.error && off < in.size()) {
        const size_t n = in.size() - off < step ? in.size() - off : step;
        if (redisReaderFeed(rd, in.data() + off, n) != REDIS_OK) {
            o.error = true;
            break;
        }
        off += n;
        step = step * 5 % 23 + 1;
        for (;;) {
            void* reply = nullptr;
            if (readArenaReply(rd, g_arena, &reply) != REDIS_OK) {
                o.error = true;
                break;
            }
            if (reply == nullptr) {
                break;
            }
            std::string d;
            describe(static_cast<redisReply*>(reply), d);
            o.replies.push_back(std::move(d));
            g_arena.reset();
        }
    }
    g_arena.reset();
    redisReaderFree(rd);
    return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) {
        return 0;
    }
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    const Outcome ref = reference(in);
    const Outcome got = arena(in, 1 + data[0] % 64);
    FUZZ_CHECK(got.replies == ref.replies);
    FUZZ_CHECK(got.error == ref.error);
    FUZZ_CHECK(g_arena.chunks() <= ReplyArena::kKeep);
    return 0;
}
