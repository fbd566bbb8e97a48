// SPDX-License-Identifier: Apache-2.0
// Basic authentication against an htpasswd file (crypt(3) hashes), and the small text helpers
// the auth configuration shares: bounded file reads and base64.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace photon::mod::auth {

/// Reads a configuration side file of at most 16 MiB into `out`. False with errno set on failure.
bool readSmallFile(const std::string& path, std::string& out);

/// Base64 in the standard or the url alphabet, padding optional, no whitespace. Appends to `out`.
bool decodeBase64Any(std::string_view in, std::string& out);
/// The decoder behind both: `url_strict` accepts only the url alphabet, no padding, and zero
/// leftover bits (JWS); otherwise either alphabet and optional padding.
bool base64Decode(std::string_view in, std::string& out, bool url_strict);

/// One htpasswd line: user and crypt(3) hash.
struct HtpasswdUser {
    std::string user;
    std::string hash;
};

/// Loads an htpasswd file: "user:hash" lines, '#' comments and blank lines skipped. Accepted
/// hashes: bcrypt ($2a$, $2b$, $2y$), SHA-crypt ($5$, $6$) and yescrypt ($y$), as the system's
/// crypt(3) verifies them. Plain-text, DES, MD5 ($1$, $apr1$) and {SHA} entries are refused
/// with the line number (never the line). A user listed twice is an error.
core::Result<std::vector<HtpasswdUser>> loadHtpasswd(const std::string& path);

/// Checks `password` against a crypt(3) `hash` (constant-time comparison of the result). Slow
/// by design (bcrypt, yescrypt): callers cache successes. Worker only; not reentrant across
/// threads (one scratch area per process).
bool verifyCryptPassword(std::string_view password, const std::string& hash);

/// Splits an "Authorization: Basic <base64(user:password)>" value. False when the scheme is
/// not Basic (case-insensitive), the base64 is invalid, or there is no ':'.
bool parseBasicCredentials(std::string_view header_value, std::string& user,
                           std::string& password);

}  // namespace photon::mod::auth
