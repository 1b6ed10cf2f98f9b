/*
 * fuzz_framer.c - chat input framing and the telnet filter over any bytes,
 * fed in any pieces.
 *
 * The first byte gives max_line (2 to 257), the second seeds how the rest
 * is cut into reads. Beyond not crashing:
 * - every line is shorter than max_line and holds only the bytes the
 *   framer keeps (tab, 0x20-0x7e, 0x80-0xff);
 * - each call consumes at least one byte when it reports an event, and
 *   all of them when it asks for more;
 * - the events are the same whether the input comes in one read or in
 *   the seeded pieces of 1 to 16 bytes;
 * - without telnet bytes (0xff), the events are exactly those of the
 *   input's lines: a line as received (terminator included) of at most
 *   max_line bytes is that line with the dropped bytes removed, a longer
 *   one is one too-long report.
 */
#include <string.h>

#include "fuzz.h"
#include "../../src/daemon/framer.h"

/* The events of one run as text: "L<len>:<bytes>|" for a line, "T0:|" for
 * a too-long report, "F<len>:<bytes>|" for framer_finish's fragment. */
struct events {
	char *s;
	size_t n, cap;
};

static void ev_add(struct events *e, char kind, const char *data, size_t len)
{
	FUZZ_CHECK(e->n + len + 32 <= e->cap);
	e->n += (size_t)sprintf(e->s + e->n, "%c%zu:", kind, len);
	if (len) /* data is NULL for "T" */
		memcpy(e->s + e->n, data, len);
	e->n += len;
	e->s[e->n++] = '|';
}

static int kept(unsigned char b)
{
	return b == '\t' || (b >= 0x20 && b != 0x7f);
}

static void check_line(const struct framer *f)
{
	FUZZ_CHECK(f->len < f->max);
	for (size_t i = 0; i < f->len; i++)
		FUZZ_CHECK(kept((unsigned char)f->line[i]));
}

/* Feeds one read of buf[0..n), recording the events. */
static void feed(struct framer *f, const uint8_t *buf, size_t n,
                 struct events *e)
{
	while (n > 0) {
		int ev = -1;
		size_t used = framer_feed(f, (const char *)buf, n, &ev);

		FUZZ_CHECK(used <= n);
		if (ev == FRAMER_MORE) {
			FUZZ_CHECK(used == n);
		} else if (ev == FRAMER_LINE) {
			FUZZ_CHECK(used >= 1);
			check_line(f);
			ev_add(e, 'L', f->line, f->len);
		} else {
			FUZZ_CHECK(ev == FRAMER_TOO_LONG && used >= 1);
			ev_add(e, 'T', NULL, 0);
		}
		buf += used;
		n -= used;
	}
}

/* A run over data in reads of the sizes step() gives (0: one read). */
static void run(size_t max, const uint8_t *data, size_t size, unsigned seed,
                struct events *e)
{
	struct framer f;

	FUZZ_CHECK(framer_init(&f, max) == 0);
	e->n = 0;
	for (size_t i = 0; i < size;) {
		size_t n = size - i;
		if (seed) {
			/* A small linear congruential step: reads of 1-16 bytes. */
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % 16;
			n = n < size - i ? n : size - i;
		}
		feed(&f, data + i, n, e);
		i += n;
	}
	if (framer_finish(&f)) {
		FUZZ_CHECK(f.len > 0);
		check_line(&f);
		ev_add(e, 'F', f.line, f.len);
	}
	framer_free(&f);
}

/* The events expected of input without telnet bytes, line by line. */
static void expect(size_t max, const uint8_t *data, size_t size,
                   struct events *e, char *buf)
{
	e->n = 0;
	for (size_t start = 0; start < size;) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t raw = nl ? (size_t)(nl - data) + 1 - start : size - start;
		size_t len = 0;

		for (size_t i = start; i < start + raw; i++)
			if (kept(data[i]))
				buf[len++] = (char)data[i];
		if (nl ? raw > max : raw >= max)
			ev_add(e, 'T', NULL, 0);
		else if (nl || len)
			ev_add(e, nl ? 'L' : 'F', buf, len);
		start += raw;
	}
}

static void check_same(const struct events *a, const struct events *b)
{
	FUZZ_CHECK(a->n == b->n && memcmp(a->s, b->s, a->n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t max = 2 + data[0];
	unsigned seed = data[1];
	struct events whole, pieces;

	data += 2;
	size -= 2;
	/* Every byte is at most one event, whose text is its bytes and a
	 * header of under 32. */
	whole.cap = pieces.cap = 33 * size + 64;
	whole.s = malloc(whole.cap);
	pieces.s = malloc(pieces.cap);
	FUZZ_CHECK(whole.s && pieces.s);
	run(max, data, size, 0, &whole);
	run(max, data, size, seed | 1, &pieces);
	check_same(&whole, &pieces);
	if (!memchr(data, 0xff, size)) {
		char *scratch = malloc(size + 1);
		FUZZ_CHECK(scratch);
		expect(max, data, size, &pieces, scratch);
		check_same(&whole, &pieces);
		free(scratch);
	}
	free(pieces.s);
	free(whole.s);
	return 0;
}
