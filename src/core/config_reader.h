// SPDX-License-Identifier: Apache-2.0
// Typed reading of a ConfigNode tree with located diagnostics: shared by the config loader and
// the modules, each of which validates its own keys (master side only).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/address.h"
#include "core/config_node.h"
#include "core/duration.h"

namespace photon::core::cfg {

/// One problem found while loading. Errors make the load fail; warnings do not.
struct Diagnostic {
    enum class Severity { Error, Warning } severity = Severity::Error;
    std::string file;  // display name of the config file ("" when not tied to a file)
    int line = 0;      // 1-based; 0 = unknown
    int column = 0;    // 1-based; 0 = unknown
    std::string path;  // key path such as "routes[2].backend"; "" for document-level problems
    std::string message;

    /// "file:line:col: path: message". Parts that are unknown are left out together with their
    /// separator ("file: path: message", "file:line: message", ...). The severity is not part of
    /// the text; callers prefix it as they like.
    std::string format() const;
};

/// Decides whether an upstream DNS name resolves (see master::systemResolver).
using HostResolver = std::function<bool(const std::string& host)>;

/// Levenshtein distance, used for "did you mean" hints.
size_t editDistance(std::string_view a, std::string_view b);

/// 'text' in single quotes, for messages.
std::string quoted(std::string_view s);
/// "parent.key" (or "key" at the root).
std::string childPath(const std::string& parent, std::string_view key);
/// "parent[i]".
std::string indexPath(const std::string& parent, size_t i);
/// The closest candidate within a small edit distance, or "".
std::string closest(std::string_view word, const std::vector<std::string>& candidates);
/// "; did you mean 'x'?" or "".
std::string didYouMean(std::string_view word, const std::vector<std::string>& candidates);
/// "a, b or c".
std::string joinNames(const std::vector<std::string>& names);
/// RFC 9110 tchar / token.
bool isTchar(char c);
bool isToken(std::string_view s);
/// Any CTL other than HT.
bool hasControlChars(std::string_view s);
/// ASCII upper case.
std::string upper(std::string s);
/// Parses YAML/TOML/JSON integer text: optional sign, then decimal, 0x hex or 0o octal digits.
bool parseIntText(std::string_view s, bool& negative, uint64_t& magnitude);
/// true/True/TRUE, false/False/FALSE.
bool isBoolText(std::string_view s, bool& value);

using Kind = ConfigNode::ScalarKind;

/// Collects diagnostics and converts scalars; every conversion reports its own error (with the
/// source mark and key path) and returns false on failure.
class Ctx {
public:
    Ctx(std::string display_name, const HostResolver& resolver)
        : display_name_(std::move(display_name)), resolver_(resolver) {}

    std::vector<Diagnostic> diags;
    bool failed = false;

    void report(Diagnostic::Severity sev, const SourceMark& m, const std::string& path,
                std::string msg) {
        Diagnostic d;
        d.severity = sev;
        d.file = m.file().empty() ? display_name_ : m.file();
        d.line = m.line();
        d.column = m.column();
        d.path = path;
        d.message = std::move(msg);
        diags.push_back(std::move(d));
        if (sev == Diagnostic::Severity::Error) {
            failed = true;
        }
    }
    void error(const SourceMark& m, const std::string& path, std::string msg) {
        report(Diagnostic::Severity::Error, m, path, std::move(msg));
    }
    void warn(const SourceMark& m, const std::string& path, std::string msg) {
        report(Diagnostic::Severity::Warning, m, path, std::move(msg));
    }
    void error(const ConfigNode& n, const std::string& path, std::string msg) {
        error(n.mark(), path, std::move(msg));
    }
    void warn(const ConfigNode& n, const std::string& path, std::string msg) {
        warn(n.mark(), path, std::move(msg));
    }

    bool resolves(const std::string& host) {
        auto it = resolved_.find(host);
        if (it != resolved_.end()) {
            return it->second;
        }
        bool ok = resolver_ ? resolver_(host) : true;
        resolved_.emplace(host, ok);
        return ok;
    }

    // --- scalar conversions; each reports its own error and returns false on failure ---

    bool convert(const ConfigNode& n, const std::string& path, std::string& out) {
        if (!n.isScalar()) {
            error(n, path, "expected a string, got " + n.describe());
            return false;
        }
        out = n.text();
        return true;
    }

    bool convert(const ConfigNode& n, const std::string& path, bool& out) {
        if (n.isScalar() && (n.scalarKind() == Kind::Bool || n.scalarKind() == Kind::Untyped) &&
            isBoolText(n.text(), out)) {
            return true;
        }
        error(n, path, "expected a boolean (true or false), got " + n.describe());
        return false;
    }

    bool integer(const ConfigNode& n, const std::string& path, uint64_t min, uint64_t max,
                 uint64_t& out) {
        bool neg = false;
        uint64_t mag = 0;
        if (n.isScalar() && (n.scalarKind() == Kind::Int || n.scalarKind() == Kind::Untyped) &&
            parseIntText(n.text(), neg, mag)) {
            if ((neg && mag != 0) || mag < min || mag > max) {
                error(n, path,
                      "value " + n.text() + " is out of range (" + std::to_string(min) + "-" +
                          std::to_string(max) + ")");
                return false;
            }
            out = mag;
            return true;
        }
        std::string hint;
        if (n.isScalar() && n.scalarKind() == Kind::String && parseIntText(n.text(), neg, mag)) {
            hint = " (quoted numbers are not converted; remove the quotes)";
        }
        error(n, path, "expected a non-negative integer, got " + n.describe() + hint);
        return false;
    }

    bool convert(const ConfigNode& n, const std::string& path, uint64_t& out) {
        return integer(n, path, 0, UINT64_MAX, out);
    }
    bool convert(const ConfigNode& n, const std::string& path, uint32_t& out) {
        uint64_t v = 0;
        if (!integer(n, path, 0, UINT32_MAX, v)) {
            return false;
        }
        out = static_cast<uint32_t>(v);
        return true;
    }
    bool convert(const ConfigNode& n, const std::string& path, uint16_t& out) {
        uint64_t v = 0;
        if (!integer(n, path, 0, UINT16_MAX, v)) {
            return false;
        }
        out = static_cast<uint16_t>(v);
        return true;
    }

    bool convert(const ConfigNode& n, const std::string& path, Duration& out) {
        if (n.isScalar()) {
            bool neg = false;
            uint64_t secs = 0;
            bool plain_int = n.scalarKind() == Kind::Int ||
                             (n.scalarKind() == Kind::Untyped && !n.text().empty() &&
                              std::all_of(n.text().begin(), n.text().end(),
                                          [](char c) { return c >= '0' && c <= '9'; }));
            if (plain_int) {
                if (!parseIntText(n.text(), neg, secs) || (neg && secs != 0)) {
                    error(n, path, "a duration must not be negative, got " + n.text());
                    return false;
                }
                if (secs > static_cast<uint64_t>(INT64_MAX / 1'000'000'000)) {
                    error(n, path, "duration " + n.text() + "s is too large");
                    return false;
                }
                out = std::chrono::seconds(static_cast<int64_t>(secs));
                return true;
            }
            if (n.scalarKind() == Kind::String || n.scalarKind() == Kind::Untyped) {
                auto d = core::parseDuration(n.text());
                if (!d.ok()) {
                    error(n, path, d.error().msg);
                    return false;
                }
                out = d.value();
                return true;
            }
        }
        error(n, path, "expected a duration such as \"30s\" or \"1h 30m\", got " + n.describe());
        return false;
    }

    bool convert(const ConfigNode& n, const std::string& path, std::vector<std::string>& out) {
        if (!n.isList()) {
            error(n, path, "expected a list of strings (e.g. [\"a\", \"b\"]), got " + n.describe());
            return false;
        }
        bool ok = true;
        std::vector<std::string> v;
        for (size_t i = 0; i < n.size(); ++i) {
            std::string s;
            if (convert(n.item(i), indexPath(path, i), s)) {
                v.push_back(std::move(s));
            } else {
                ok = false;
            }
        }
        if (ok) {
            out = std::move(v);
        }
        return ok;
    }

    bool convert(const ConfigNode& n, const std::string& path, core::SocketAddress& out) {
        std::string s;
        if (!convert(n, path, s)) {
            return false;
        }
        auto a = core::parseListenAddress(s);
        if (!a.ok()) {
            error(n, path, a.error().msg);
            return false;
        }
        out = a.value();
        return true;
    }

    template <typename T>
    bool convert(const ConfigNode& n, const std::string& path, std::optional<T>& out) {
        T v{};
        if (!convert(n, path, v)) {
            return false;
        }
        out = std::move(v);
        return true;
    }

private:
    std::string display_name_;
    const HostResolver& resolver_;
    std::map<std::string, bool> resolved_;
};

// Reads one map: hands out values by key, remembers which keys the schema knows, and warns
// about the others (with a "did you mean") when it goes out of scope.
class MapReader {
public:
    // `node` may be null (block absent) or not a map (reported as an error here).
    MapReader(Ctx& ctx, const ConfigNode* node, std::string path, bool allow_extension_keys = false)
        : ctx_(ctx),
          node_(node),
          path_(std::move(path)),
          allow_extension_keys_(allow_extension_keys) {
        if (node_ != nullptr && !node_->isMap()) {
            ctx_.error(*node_, path_, "expected a map of keys, got " + node_->describe());
            node_ = nullptr;
        }
    }
    MapReader(const MapReader&) = delete;
    MapReader& operator=(const MapReader&) = delete;

    ~MapReader() {
        if (node_ == nullptr) {
            return;
        }
        for (size_t i = 0; i < node_->size(); ++i) {
            const std::string& key = node_->keyAt(i);
            if (allow_extension_keys_ && key.compare(0, 2, "x-") == 0) {
                continue;  // extension fields, e.g. anchors for YAML merge keys
            }
            if (std::find(known_.begin(), known_.end(), key) == known_.end()) {
                ctx_.warn(
                    node_->keyMarkAt(i), childPath(path_, key),
                    "unknown key " + cfg::quoted(key) + " is ignored" + didYouMean(key, known_));
            }
        }
    }

    bool valid() const { return node_ != nullptr; }
    Ctx& ctx() { return ctx_; }
    const ConfigNode* node() const { return node_; }
    const std::string& path() const { return path_; }
    std::string path(std::string_view key) const { return childPath(path_, key); }
    SourceMark mark() const { return node_ != nullptr ? node_->mark() : SourceMark(); }

    /// Value of `key`, or nullptr when absent or null.
    const ConfigNode* get(std::string_view key) {
        known_.emplace_back(key);
        if (node_ == nullptr) {
            return nullptr;
        }
        const ConfigNode* v = node_->find(key);
        return v != nullptr && !v->isNull() ? v : nullptr;
    }

    /// Like get(), but reports a missing (or null) key as an error.
    const ConfigNode* require(std::string_view key) {
        const ConfigNode* v = get(key);
        if (v == nullptr && node_ != nullptr) {
            const ConfigNode* present = node_->find(key);
            if (present != nullptr) {
                ctx_.error(*present, path(key), "a value is required here, got null");
            } else {
                ctx_.error(node_->mark(), path(key), "missing required key " + cfg::quoted(key));
            }
        }
        return v;
    }

    /// Where `key` was written (its value), or this map's mark when absent.
    SourceMark markOf(std::string_view key) const {
        const ConfigNode* v = node_ != nullptr ? node_->find(key) : nullptr;
        return v != nullptr ? v->mark() : mark();
    }

    template <typename T>
    bool opt(std::string_view key, T& out) {
        const ConfigNode* v = get(key);
        return v == nullptr || ctx_.convert(*v, path(key), out);
    }

    template <typename T>
    bool req(std::string_view key, T& out) {
        const ConfigNode* v = require(key);
        return v != nullptr && ctx_.convert(*v, path(key), out);
    }

private:
    Ctx& ctx_;
    const ConfigNode* node_;
    std::string path_;
    bool allow_extension_keys_;
    std::vector<std::string> known_;
};

/// Reads an optional header-name key (kept at its current value when absent); a value that is
/// not a token is an error.
inline bool readHeaderName(MapReader& r, const char* key, std::string& out) {
    std::string v = out;
    if (!r.opt(key, v)) {
        return false;
    }
    if (!isToken(v)) {
        r.ctx().error(r.markOf(key), r.path(key), "invalid header name " + cfg::quoted(v));
        return false;
    }
    out = std::move(v);
    return true;
}

}  // namespace photon::core::cfg
