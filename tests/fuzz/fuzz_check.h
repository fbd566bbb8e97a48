// SPDX-License-Identifier: Apache-2.0
// FUZZ_CHECK: an invariant of a fuzz target; a violation prints the line to stderr (unbuffered,
// so the message survives the abort) and aborts, so libFuzzer keeps the input as a crash.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            std::fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__, #cond); \
            std::abort();                                                               \
        }                                                                               \
    } while (0)
