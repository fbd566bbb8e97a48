// SPDX-License-Identifier: Apache-2.0
// A request parsed from text and set up as the phase engine hands it to module handlers, for
// the modules' unit tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "core/http_parser.h"
#include "worker/http_conn.h"
#include "worker/phases.h"

namespace photon::worker {

class RequestFixture : public ::testing::Test {
protected:
    /// Parses `text` (a whole request head) into a fresh request from `client`.
    void parse(const std::string& text, std::string_view client = "10.0.0.1") {
        text_ = text;
        size_t hint = 0;
        core::http::Limits lim;
        ASSERT_EQ(core::http::parseRequest(text_.data(), text_.size(), lim, head_, hint),
                  core::http::ParseStatus::Complete);
        req_.reset();
        req_.clearSlots();
        req_.head = &head_;
        req_.resp = &resp_;
        req_.meta = &meta_;
        req_.client_ip = client;
        resp_.headers.count = 0;
    }
    /// The response field `name` as the HeaderFilter handlers left it, or "<absent>".
    std::string value(std::string_view name) {
        const auto* f = resp_.headers.find(name);
        return f ? std::string(f->value) : std::string("<absent>");
    }

    std::string text_;
    core::http::RequestHead head_;
    core::http::ResponseHead resp_;
    RequestMeta meta_;
    Request req_;
};

}  // namespace photon::worker
