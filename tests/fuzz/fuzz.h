/* fuzz.h — the one entry point every fuzz target defines.  libFuzzer calls
 * it for each input; tests/fuzz/replay.c calls it for each corpus file, so
 * the seeds and every crash input found run under `meson test` too. */
#ifndef PPROFC_TESTS_FUZZ_FUZZ_H
#define PPROFC_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
