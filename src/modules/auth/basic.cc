// SPDX-License-Identifier: Apache-2.0
// htpasswd files and crypt(3) verification.
#include "modules/auth/basic.h"

#include <crypt.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "core/http_parser.h"

namespace photon::mod::auth {

bool readSmallFile(const std::string& path, std::string& out) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
        int e = errno;
        ::close(fd);
        errno = e == 0 || S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        return false;
    }
    out.clear();
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            ::close(fd);
            errno = e;
            return false;
        }
        if (n == 0) {
            break;
        }
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > (16u << 20)) {
            ::close(fd);
            errno = EFBIG;
            return false;
        }
    }
    ::close(fd);
    return true;
}

bool base64Decode(std::string_view in, std::string& out, bool url_strict) {
    if (!url_strict) {
        while (!in.empty() && in.back() == '=') {
            in.remove_suffix(1);
        }
    }
    if (in.size() % 4 == 1) {
        return false;
    }
    uint32_t acc = 0;
    int bits = 0;
    for (char ch : in) {
        int v;
        if (ch >= 'A' && ch <= 'Z') {
            v = ch - 'A';
        } else if (ch >= 'a' && ch <= 'z') {
            v = ch - 'a' + 26;
        } else if (ch >= '0' && ch <= '9') {
            v = ch - '0' + 52;
        } else if (ch == '-' || (ch == '+' && !url_strict)) {
            v = 62;
        } else if (ch == '_' || (ch == '/' && !url_strict)) {
            v = 63;
        } else {
            return false;
        }
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    return !url_strict || (acc & ((1u << bits) - 1)) == 0;
}

bool decodeBase64Any(std::string_view in, std::string& out) { return base64Decode(in, out, false); }

namespace {

bool acceptedHash(std::string_view h) {
    for (std::string_view p : {"$2a$", "$2b$", "$2y$", "$5$", "$6$", "$y$"}) {
        if (h.substr(0, p.size()) == p) {
            return true;
        }
    }
    return false;
}

std::string refusedWhy(std::string_view h) {
    if (h.substr(0, 6) == "$apr1$" || h.substr(0, 3) == "$1$") {
        return "an MD5 hash, which is too weak; re-create it with `htpasswd -B` (bcrypt)";
    }
    if (h.substr(0, 5) == "{SHA}") {
        return "an unsalted SHA-1 hash; re-create it with `htpasswd -B` (bcrypt)";
    }
    if (!h.empty() && h.front() == '$') {
        return "a hash scheme this build does not accept (bcrypt, SHA-crypt $5$/$6$ or "
               "yescrypt $y$)";
    }
    return "not a crypt(3) hash (plain text or DES); re-create it with `htpasswd -B` (bcrypt)";
}

}  // namespace

core::Result<std::vector<HtpasswdUser>> loadHtpasswd(const std::string& path) {
    std::string text;
    if (!readSmallFile(path, text)) {
        return core::fail("cannot read '", path, "': ", std::strerror(errno));
    }
    std::vector<HtpasswdUser> users;
    size_t at = 0;
    size_t line_no = 0;
    while (at < text.size()) {
        size_t nl = text.find('\n', at);
        std::string_view line(text.data() + at, (nl == std::string::npos ? text.size() : nl) - at);
        at = nl == std::string::npos ? text.size() : nl + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.empty() || line.front() == '#') {
            continue;
        }
        size_t colon = line.find(':');
        std::string where = "'" + path + "' line " + std::to_string(line_no) + ": ";
        if (colon == 0 || colon == std::string_view::npos) {
            return core::fail(where, "expected user:hash");
        }
        HtpasswdUser u;
        u.user = std::string(line.substr(0, colon));
        u.hash = std::string(line.substr(colon + 1));
        for (char ch : u.user) {
            if (static_cast<unsigned char>(ch) < 0x21 || ch == 0x7f) {
                return core::fail(where, "a user name is visible characters");
            }
        }
        if (!acceptedHash(u.hash)) {
            return core::fail(where, "user '", u.user, "' has ", refusedWhy(u.hash));
        }
        for (const auto& o : users) {
            if (o.user == u.user) {
                return core::fail(where, "user '", u.user, "' is listed twice");
            }
        }
        users.push_back(std::move(u));
    }
    return users;
}

bool verifyCryptPassword(std::string_view password, const std::string& hash) {
    // crypt_r's scratch area is large (tens of KiB): one per process, allocated on first use.
    static std::unique_ptr<crypt_data> data;
    if (!data) {
        data = std::make_unique<crypt_data>();
    }
    if (password.size() > 4096 || password.find('\0') != std::string_view::npos) {
        return false;
    }
    std::string phrase(password);
    std::memset(data.get(), 0, sizeof(crypt_data));
    const char* out = crypt_r(phrase.c_str(), hash.c_str(), data.get());
    OPENSSL_cleanse(phrase.data(), phrase.size());
    if (out == nullptr || out[0] == '*') {
        return false;  // libxcrypt's failure tokens start with '*'
    }
    size_t n = std::strlen(out);
    return n == hash.size() && CRYPTO_memcmp(out, hash.data(), n) == 0;
}

bool parseBasicCredentials(std::string_view v, std::string& user, std::string& password) {
    if (v.size() < 6 || !core::http::equalsIgnoreCase(v.substr(0, 6), "basic ")) {
        return false;
    }
    v.remove_prefix(6);
    while (!v.empty() && v.front() == ' ') {
        v.remove_prefix(1);
    }
    std::string decoded;
    if (v.empty() || v.size() > 8192 || !decodeBase64Any(v, decoded)) {
        return false;
    }
    size_t colon = decoded.find(':');
    if (colon == std::string::npos || colon == 0) {
        return false;
    }
    user = decoded.substr(0, colon);
    password = decoded.substr(colon + 1);
    OPENSSL_cleanse(decoded.data(), decoded.size());
    return true;
}

}  // namespace photon::mod::auth
