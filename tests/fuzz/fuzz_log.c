/*
 * fuzz_log.c - log_escape over any bytes and any output size.
 *
 * The first two input bytes give the output size (0 to 511), the rest is
 * the data. The output buffer is allocated at exactly that size, so a
 * write past it is caught by AddressSanitizer. Beyond not crashing, the
 * output must be NUL-terminated, fit, hold only printable ASCII, and be
 * either the whole escaped form (computed here independently) or its
 * longest prefix cut between two escapes that leaves room for "...",
 * followed by "..." when the size allows it.
 */
#include <string.h>

#include "fuzz.h"
#include "../../src/daemon/log.h"

/* The escape of byte c as giambio's README shows it; returns its length.
 * Written apart from log.c's on purpose: it is the reference. */
static size_t ref_escape(unsigned char c, char *e)
{
	const char *named = NULL;

	switch (c) {
	case '\\': named = "\\\\"; break;
	case '\'': named = "\\'"; break;
	case '\n': named = "\\n"; break;
	case '\r': named = "\\r"; break;
	case '\t': named = "\\t"; break;
	}
	if (named) {
		memcpy(e, named, 2);
		return 2;
	}
	if (c >= 0x20 && c < 0x7f) {
		e[0] = (char)c;
		return 1;
	}
	return (size_t)sprintf(e, "\\x%02x", c);
}

/* The whole escaped form of data into full, and in cut[i] the offset at
 * which the escape of byte i starts (cut[len] is the total length). */
static size_t ref_escape_all(const uint8_t *data, size_t len, char *full,
                             size_t *cut)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		cut[i] = o;
		o += ref_escape(data[i], full + o);
	}
	cut[len] = o;
	full[o] = '\0';
	return o;
}

static void check_printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(s[i] >= 0x20 && s[i] < 0x7f);
}

/* out (length o) was written for a size too small for all of full: it
 * must be full's longest prefix ending between escapes that leaves room
 * for "...", then "..." (or nothing, when even "..." does not fit). */
static void check_truncated(const char *out, size_t o, size_t size,
                            const char *full, const size_t *cut, size_t len)
{
	size_t room = size - 1, keep = 0;

	if (room < 3) {
		FUZZ_CHECK(o == 0);
		return;
	}
	/* The longest prefix: the escapes that fit with "..." after them. */
	while (keep < len && cut[keep + 1] + 3 <= room)
		keep++;
	FUZZ_CHECK(o == cut[keep] + 3);
	FUZZ_CHECK(memcmp(out, full, cut[keep]) == 0);
	FUZZ_CHECK(memcmp(out + cut[keep], "...", 3) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t outsize = data[0] | (size_t)(data[1] & 1) << 8;
	const uint8_t *p = data + 2;
	size_t len = size - 2;
	char *full = malloc(4 * len + 1), *out = malloc(outsize ? outsize : 1);
	size_t *cut = malloc((len + 1) * sizeof *cut);

	FUZZ_CHECK(full && out && cut);
	size_t flen = ref_escape_all(p, len, full, cut);
	if (outsize == 0) {
		/* Nothing may be written, not even the NUL. */
		out[0] = 'x';
		FUZZ_CHECK(log_escape(out, 0, p, len) == 0);
		FUZZ_CHECK(out[0] == 'x');
	} else {
		size_t o = log_escape(out, outsize, p, len);
		FUZZ_CHECK(o < outsize);
		FUZZ_CHECK(out[o] == '\0');
		FUZZ_CHECK(strlen(out) == o);
		check_printable(out, o);
		if (flen < outsize)
			FUZZ_CHECK(o == flen && memcmp(out, full, flen) == 0);
		else
			check_truncated(out, o, outsize, full, cut, len);
	}
	free(cut);
	free(out);
	free(full);
	return 0;
}
