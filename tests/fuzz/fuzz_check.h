// SPDX-License-Identifier: Apache-2.0
// FUZZ_CHECK: an invariant of a fuzz target; a violation prints the line and aborts, so
// libFuzzer keeps the input as a crash.
#pragma once

#include <cstdlib>

#define FUZZ_CHECK(cond)                                                            \
    do {                                                                            \
        if (!(cond)) {                                                              \
            __builtin_printf("invariant failed at line %d: %s\n", __LINE__, #cond); \
            std::abort();                                                           \
        }                                                                           \
    } while (0)
