// SPDX-License-Identifier: Apache-2.0
// JSON front end: cJSON parses and validates; a light scanner over the validated text adds the
// line:column of every value and key (cJSON keeps none) and the raw text of numbers.
#include <cjson/cJSON.h>

#include <memory>
#include <string>

#include "master/config_loader.h"

namespace photon::master {

namespace {

using core::ConfigNode;
using core::SourceMark;
using Kind = ConfigNode::ScalarKind;

struct CJsonDeleter {
    void operator()(cJSON* p) const { cJSON_Delete(p); }
};

// Walks the (already validated) text in step with the cJSON tree. cJSON keeps object members and
// array items in document order, so the n-th value met by the scanner is the n-th cJSON child.
class JsonWalker {
public:
    JsonWalker(std::string_view text, std::shared_ptr<const std::string> file,
               std::vector<Diagnostic>& errors, const std::string& display_name)
        : p_(text.data()),
          end_(text.data() + text.size()),
          line_start_(text.data()),
          file_(std::move(file)),
          errors_(errors),
          display_name_(display_name) {}

    bool failed() const { return failed_; }

    ConfigNode walk(const cJSON* item) {
        skipWs();
        SourceMark m = mark();
        switch (item->type & 0xFF) {
            case cJSON_Object: {
                ConfigNode map = ConfigNode::map(m);
                expect('{');
                for (const cJSON* child = item->child; child != nullptr; child = child->next) {
                    skipWs();
                    SourceMark km = mark();
                    skipString();
                    skipWs();
                    expect(':');
                    std::string key = child->string != nullptr ? child->string : "";
                    size_t saved = path_.size();
                    path_ += (path_.empty() ? "" : ".") + key;
                    ConfigNode value = walk(child);
                    std::string key_path = path_;
                    path_.resize(saved);
                    skipWs();
                    if (p_ < end_ && *p_ == ',') {
                        ++p_;
                    }
                    size_t first = map.indexOf(key);
                    if (first < map.size()) {
                        error(km,
                              "duplicate key '" + key + "' (first defined at line " +
                                  std::to_string(map.keyMarkAt(first).line()) + ")",
                              key_path);
                        continue;
                    }
                    map.insert(std::move(key), km, std::move(value));
                }
                skipWs();
                expect('}');
                return map;
            }
            case cJSON_Array: {
                ConfigNode list = ConfigNode::list(m);
                expect('[');
                size_t index = 0;
                for (const cJSON* child = item->child; child != nullptr; child = child->next) {
                    size_t saved = path_.size();
                    path_ += "[" + std::to_string(index++) + "]";
                    list.append(walk(child));
                    path_.resize(saved);
                    skipWs();
                    if (p_ < end_ && *p_ == ',') {
                        ++p_;
                    }
                }
                skipWs();
                expect(']');
                return list;
            }
            case cJSON_String:
                skipString();
                return ConfigNode::scalar(item->valuestring != nullptr ? item->valuestring : "",
                                          Kind::String, m);
            case cJSON_Number: {
                const char* start = p_;
                bool is_float = false;
                while (p_ < end_ && (isDigit(*p_) || *p_ == '-' || *p_ == '+' || *p_ == '.' ||
                                     *p_ == 'e' || *p_ == 'E')) {
                    is_float = is_float || *p_ == '.' || *p_ == 'e' || *p_ == 'E';
                    ++p_;
                }
                return ConfigNode::scalar(std::string(start, p_),
                                          is_float ? Kind::Float : Kind::Int, m);
            }
            case cJSON_True:
                skipWord();
                return ConfigNode::scalar("true", Kind::Bool, m);
            case cJSON_False:
                skipWord();
                return ConfigNode::scalar("false", Kind::Bool, m);
            default:
                skipWord();
                return ConfigNode::null(m);
        }
    }

private:
    static bool isDigit(char c) { return c >= '0' && c <= '9'; }

    SourceMark mark() const {
        if (lost_) {
            return SourceMark(file_, 0, 0);
        }
        return SourceMark(file_, line_, static_cast<int>(p_ - line_start_) + 1);
    }

    void error(const SourceMark& m, std::string msg, std::string path = {}) {
        Diagnostic d;
        d.path = std::move(path);
        d.file = display_name_;
        d.line = m.line();
        d.column = m.column();
        d.message = std::move(msg);
        errors_.push_back(std::move(d));
        failed_ = true;
    }

    // Whitespace as cJSON skips it: every byte <= 32.
    void skipWs() {
        while (p_ < end_ && static_cast<unsigned char>(*p_) <= 32) {
            if (*p_ == '\n') {
                ++line_;
                line_start_ = p_ + 1;
            }
            ++p_;
        }
    }

    void expect(char c) {
        if (p_ < end_ && *p_ == c) {
            ++p_;
        } else {
            lost_ = true;  // should not happen on validated text; stop reporting positions
        }
    }

    void skipString() {
        if (p_ >= end_ || *p_ != '"') {
            lost_ = true;
            return;
        }
        ++p_;
        while (p_ < end_ && *p_ != '"') {
            if (*p_ == '\\' && p_ + 1 < end_) {
                ++p_;
            }
            ++p_;
        }
        if (p_ < end_) {
            ++p_;
        }
    }

    void skipWord() {
        while (p_ < end_ && *p_ >= 'a' && *p_ <= 'z') {
            ++p_;
        }
    }

    const char* p_;
    const char* end_;
    const char* line_start_;
    int line_ = 1;
    bool lost_ = false;
    bool failed_ = false;
    std::shared_ptr<const std::string> file_;
    std::vector<Diagnostic>& errors_;
    std::string path_;  // key path of the node being walked, for messages
    const std::string& display_name_;
};

}  // namespace

std::optional<core::ConfigNode> parseJsonDocument(std::string_view text,
                                                  const std::string& display_name,
                                                  std::vector<Diagnostic>& errors) {
    // cJSON's "require null terminated" check wants the terminating NUL inside the buffer.
    std::string buf(text);
    const char* parse_end = nullptr;
    std::unique_ptr<cJSON, CJsonDeleter> doc(
        cJSON_ParseWithLengthOpts(buf.c_str(), buf.size() + 1, &parse_end, 1));
    if (!doc) {
        size_t off = parse_end != nullptr && parse_end >= buf.c_str()
                         ? static_cast<size_t>(parse_end - buf.c_str())
                         : 0;
        if (off > buf.size()) {
            off = buf.size();
        }
        int line = 1;
        size_t line_start = 0;
        for (size_t i = 0; i < off; ++i) {
            if (buf[i] == '\n') {
                ++line;
                line_start = i + 1;
            }
        }
        Diagnostic d;
        d.file = display_name;
        d.line = line;
        d.column = static_cast<int>(off - line_start) + 1;
        if (off >= buf.size()) {
            d.message = "JSON syntax error: unexpected end of input";
        } else {
            std::string near = buf.substr(off, 20);
            size_t nl = near.find('\n');
            if (nl != std::string::npos) {
                near.resize(nl);
            }
            d.message = "JSON syntax error near '" + near + "'";
        }
        errors.push_back(std::move(d));
        return std::nullopt;
    }
    JsonWalker walker(buf, std::make_shared<const std::string>(display_name), errors, display_name);
    ConfigNode root = walker.walk(doc.get());
    if (walker.failed()) {
        return std::nullopt;
    }
    return root;
}

}  // namespace photon::master
