// SPDX-License-Identifier: Apache-2.0
// Result<T>: the error-or-value return type used by worker, helper and shm code (no exceptions).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace photon::core {

/// An error carried by Result: a human-readable message and an optional errno-style code.
/// The message is meant for logs and `photon -t` output; it never contains secrets.
struct Error {
    std::string msg;
    int code = 0;
};

/// Either a T or an Error. Construct from a T (success) or from an Error (failure).
/// Access the value only after checking ok(); value() on an error is a programming error.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T v) : v_(std::move(v)) {}      // NOLINT(google-explicit-constructor)
    Result(Error e) : v_(std::move(e)) {}  // NOLINT(google-explicit-constructor)
    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &std::get<0>(v_); }
    const T* operator->() const { return &std::get<0>(v_); }
    T& operator*() & { return std::get<0>(v_); }
    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

/// Result<void>: success carries nothing.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error e) : err_(std::move(e)), ok_(false) {}  // NOLINT(google-explicit-constructor)
    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return err_; }

private:
    Error err_;
    bool ok_ = true;
};

/// Convenience: `return fail("bad thing: ", x);` builds an Error from string pieces.
template <typename... A>
Error fail(A&&... parts) {
    Error e;
    (e.msg.append(std::forward<A>(parts)), ...);
    return e;
}

}  // namespace photon::core
