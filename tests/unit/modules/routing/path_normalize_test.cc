// SPDX-License-Identifier: Apache-2.0
// Tests for normalizePath(): escape canonicalisation, slash merging, dot segments, rejections.
#include "modules/routing/path_normalize.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace photon::mod::routing {
namespace {

struct NormCase {
    std::string raw;
    NormalizeResult result;
    std::string expected;  // only when result == Ok
};

std::string normalizeOrEmpty(std::string_view raw, NormalizeResult* r = nullptr) {
    std::string out(raw.size() + 1, '\0');
    size_t len = 0;
    const NormalizeResult res = normalizePath(raw, out.data(), out.size(), len);
    if (r != nullptr) {
        *r = res;
    }
    if (res != NormalizeResult::Ok) {
        return {};
    }
    out.resize(len);
    return out;
}

using R = NormalizeResult;

const std::vector<NormCase>& cases() {
    static const std::vector<NormCase> kCases = {
        // Already normal.
        {"/", R::Ok, "/"},
        {"/a", R::Ok, "/a"},
        {"/a/b/c", R::Ok, "/a/b/c"},
        {"/a/b/", R::Ok, "/a/b/"},
        {"/.well-known/acme", R::Ok, "/.well-known/acme"},
        {"/a/.../b", R::Ok, "/a/.../b"},
        {"/a/..b/.c", R::Ok, "/a/..b/.c"},
        {"/a:b@c!$&'()*+,;=", R::Ok, "/a:b@c!$&'()*+,;="},
        // Duplicate slashes.
        {"//admin", R::Ok, "/admin"},
        {"///", R::Ok, "/"},
        {"/a//b///c", R::Ok, "/a/b/c"},
        {"/a/b//", R::Ok, "/a/b/"},
        // Dot segments.
        {"/api/../admin", R::Ok, "/admin"},
        {"/a/./b", R::Ok, "/a/b"},
        {"/a/.", R::Ok, "/a/"},
        {"/a/..", R::Ok, "/"},
        {"/a/b/..", R::Ok, "/a/"},
        {"/a/b/../", R::Ok, "/a/"},
        {"/a/b/../../c", R::Ok, "/c"},
        {"/./", R::Ok, "/"},
        {"/.", R::Ok, "/"},
        {"/.//./", R::Ok, "/"},
        {"/a/.//../b", R::Ok, "/b"},
        {"/a//..//b", R::Ok, "/b"},
        // Decoded dots are dots.
        {"/api/%2e%2e/admin", R::Ok, "/admin"},
        {"/api/%2E%2E/admin", R::Ok, "/admin"},
        {"/api/.%2e/admin", R::Ok, "/admin"},
        {"/api/%2e/admin", R::Ok, "/api/admin"},
        // Unreserved characters are decoded, others kept with upper-case hex.
        {"/%7euser", R::Ok, "/~user"},
        {"/%41%62%30", R::Ok, "/Ab0"},
        {"/%2d%2E%5f%7E", R::Ok, "/-._~"},
        {"/caf%c3%a9", R::Ok, "/caf%C3%A9"},
        {"/a%20b", R::Ok, "/a%20b"},
        {"/a%3ab", R::Ok, "/a%3Ab"},
        {"/a%3Fb", R::Ok, "/a%3Fb"},
        {"/%25", R::Ok, "/%25"},
        // Double encoding is not decoded twice.
        {"/%252e%252e/admin", R::Ok, "/%252e%252e/admin"},
        {"/%252F", R::Ok, "/%252F"},
        // Overlong UTF-8 forms of '.' and '/' stay encoded and are not separators.
        {"/api/%c0%ae%c0%ae/admin", R::Ok, "/api/%C0%AE%C0%AE/admin"},
        {"/api/..%c0%afadmin", R::Ok, "/api/..%C0%AFadmin"},
        // Bytes >= 0x80 pass through.
        {"/caf\xc3\xa9", R::Ok, "/caf\xc3\xa9"},
        // Encoded slash and NUL are rejected.
        {"/api/..%2fadmin", R::EncodedSlash, ""},
        {"/api%2Fadmin", R::EncodedSlash, ""},
        {"/%2f", R::EncodedSlash, ""},
        {"/a%00b", R::EncodedNul, ""},
        {"/%00", R::EncodedNul, ""},
        // Malformed escapes.
        {"/a%zz", R::BadEscape, ""},
        {"/a%4", R::BadEscape, ""},
        {"/a%", R::BadEscape, ""},
        {"/%g0", R::BadEscape, ""},
        {"/%%41", R::BadEscape, ""},
        // Climbing above the root.
        {"/..", R::EscapesRoot, ""},
        {"/../x", R::EscapesRoot, ""},
        {"/a/../../x", R::EscapesRoot, ""},
        {"/%2e%2e/x", R::EscapesRoot, ""},
        {"/./../x", R::EscapesRoot, ""},
        {"//../x", R::EscapesRoot, ""},
        // Not origin-form.
        {"", R::NotAbsolute, ""},
        {"a/b", R::NotAbsolute, ""},
        {"*", R::NotAbsolute, ""},
        {"http://x/a", R::NotAbsolute, ""},
        // Raw control bytes and spaces.
        {"/a b", R::BadCharacter, ""},
        {"/a\tb", R::BadCharacter, ""},
        {"/a\x7f", R::BadCharacter, ""},
        {std::string("/a\0b", 4), R::BadCharacter, ""},
        {"/a\r\n", R::BadCharacter, ""},
    };
    return kCases;
}

TEST(NormalizePathTest, MatchesTable) {
    for (const NormCase& c : cases()) {
        SCOPED_TRACE("raw=\"" + c.raw + "\"");
        NormalizeResult r;
        const std::string got = normalizeOrEmpty(c.raw, &r);
        EXPECT_EQ(normalizeResultName(r), normalizeResultName(c.result));
        if (c.result == R::Ok) {
            EXPECT_EQ(got, c.expected);
        }
    }
}

TEST(NormalizePathTest, WorksInPlace) {
    for (const NormCase& c : cases()) {
        SCOPED_TRACE("raw=\"" + c.raw + "\"");
        std::string buf = c.raw;
        size_t len = 0;
        const NormalizeResult r = normalizePath(buf, buf.data(), buf.size(), len);
        EXPECT_EQ(normalizeResultName(r), normalizeResultName(c.result));
        if (c.result == R::Ok) {
            EXPECT_EQ(buf.substr(0, len), c.expected);
        }
    }
}

TEST(NormalizePathTest, ReportsTooLongWhenOutputDoesNotFit) {
    char out[8];
    size_t len = 0;
    EXPECT_EQ(normalizePath("/abcdefghij", out, sizeof(out), len), R::TooLong);
    EXPECT_EQ(normalizePath("/a%C3%A9bcd", out, sizeof(out), len), R::TooLong);
    EXPECT_EQ(normalizePath("/a", out, 0, len), R::TooLong);
    ASSERT_EQ(normalizePath("/abcdefg", out, sizeof(out), len), R::Ok);
    EXPECT_EQ(std::string_view(out, len), "/abcdefg");
    // Decoding shrinks the output, so it fits although the input does not.
    ASSERT_EQ(normalizePath("/%41%42%43%44", out, sizeof(out), len), R::Ok);
    EXPECT_EQ(std::string_view(out, len), "/ABCD");
}

TEST(NormalizePathTest, HandlesLongPathsLinearly) {
    std::string raw = "/";
    for (int i = 0; i < 20000; ++i) {
        raw += "a/";
    }
    for (int i = 0; i < 19999; ++i) {
        raw += "../";
    }
    EXPECT_EQ(normalizeOrEmpty(raw), "/a/");
    raw += "../../";
    NormalizeResult r;
    normalizeOrEmpty(raw, &r);
    EXPECT_EQ(r, R::EscapesRoot);
}

// Properties over random inputs drawn from an alphabet rich in the characters that matter.
TEST(NormalizePathTest, OutputIsCanonicalAndIdempotent) {
    std::mt19937_64 rng(20240611);
    const std::string alphabet = "/./%2eEfF0a~";
    int ok_count = 0;
    for (int iter = 0; iter < 20000; ++iter) {
        std::string raw = "/";
        const size_t len = rng() % 24;
        for (size_t i = 0; i < len; ++i) {
            raw.push_back(alphabet[rng() % alphabet.size()]);
        }
        NormalizeResult r;
        const std::string out = normalizeOrEmpty(raw, &r);
        if (r != R::Ok) {
            continue;
        }
        ++ok_count;
        SCOPED_TRACE("raw=\"" + raw + "\" out=\"" + out + "\"");
        ASSERT_FALSE(out.empty());
        EXPECT_EQ(out[0], '/');
        EXPECT_LE(out.size(), raw.size());
        EXPECT_EQ(out.find("//"), std::string::npos);
        EXPECT_EQ(out.find("/./"), std::string::npos);
        EXPECT_EQ(out.find("/../"), std::string::npos);
        EXPECT_FALSE(out.size() >= 2 && out.compare(out.size() - 2, 2, "/.") == 0);
        EXPECT_FALSE(out.size() >= 3 && out.compare(out.size() - 3, 3, "/..") == 0);
        EXPECT_EQ(out.find("%2e"), std::string::npos);
        EXPECT_EQ(out.find("%2E"), std::string::npos);
        NormalizeResult r2;
        EXPECT_EQ(normalizeOrEmpty(out, &r2), out);
        EXPECT_EQ(r2, R::Ok);
    }
    EXPECT_GT(ok_count, 1000);
}

TEST(NormalizePathTest, NamesEveryResult) {
    EXPECT_EQ(normalizeResultName(R::Ok), "ok");
    EXPECT_EQ(normalizeResultName(R::EncodedSlash), "encoded_slash");
    EXPECT_EQ(normalizeResultName(R::EscapesRoot), "escapes_root");
    EXPECT_EQ(normalizeResultName(R::TooLong), "too_long");
}

}  // namespace
}  // namespace photon::mod::routing
