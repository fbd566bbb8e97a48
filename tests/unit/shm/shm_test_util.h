// SPDX-License-Identifier: Apache-2.0
// Test helpers: unique shm segment names per test, removed again when the test ends.
#pragma once

#include <unistd.h>

#include <string>

#include "shm/segment.h"

namespace photon::shm::testing {

/// A segment name unique to this process and call, e.g. "photon.<hash>.<tag>"; the segment (if
/// any was created) is removed when the object is destroyed.
class ScopedSegmentName {
public:
    explicit ScopedSegmentName(const std::string& tag) {
        static int counter = 0;
        name_ = segmentName(
            instanceName("unit-test/" + std::to_string(getpid()) + "/" + std::to_string(++counter)),
            tag);
        MappedSegment::remove(name_);
    }
    ~ScopedSegmentName() { MappedSegment::remove(name_); }
    ScopedSegmentName(const ScopedSegmentName&) = delete;
    ScopedSegmentName& operator=(const ScopedSegmentName&) = delete;

    const std::string& str() const { return name_; }

private:
    std::string name_;
};

}  // namespace photon::shm::testing
