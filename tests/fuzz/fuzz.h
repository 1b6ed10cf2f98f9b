/*
 * fuzz.h - what every libFuzzer harness shares: the entry point's
 * declaration and FUZZ_CHECK, which turns a broken invariant into a crash
 * the fuzzer reports (with the input that caused it), like any other.
 */
#ifndef GIAMBIOD_FUZZ_H
#define GIAMBIOD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, \
		        __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#endif
