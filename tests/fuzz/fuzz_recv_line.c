/*
 * fuzz_recv_line.c - gb_sock_recv_line's line splitting over any bytes,
 * arriving in any pieces.
 *
 * The first byte gives max (1 to 256), the second seeds the sizes of the
 * writes. Each input runs the scheduler once: a writer task sends the
 * rest of the input into a socketpair in pieces of 1 to 64 bytes, yielding
 * between them so that the reader finds partial lines, then closes its
 * end; the reader takes lines until the end of stream. Beyond not
 * crashing: every line is 1 to max bytes, holds a newline only as its last
 * byte, ends with one unless it is max bytes long or the input's last
 * bytes, and the lines put together are the input.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "gb.h"

struct run {
	const uint8_t *data;
	size_t size, max, got;
	unsigned seed;
	int fd[2];              /* [0] the reader's, [1] the writer's */
	uint8_t *out;           /* the lines, put together */
};

static int writer(void *arg)
{
	struct run *r = arg;
	unsigned seed = r->seed;
	gb_sock *w;

	FUZZ_CHECK(gb_sock_wrap(&w, r->fd[1]) == 0);
	for (size_t off = 0; off < r->size;) {
		/* A small linear congruential step: writes of 1-64 bytes. */
		seed = seed * 1103515245u + 12345u;
		size_t n = 1 + (seed >> 16) % 64;
		n = n < r->size - off ? n : r->size - off;
		FUZZ_CHECK(gb_sock_send_all(w, r->data + off, n, NULL,
		                            gb_after(GB_SEC(5))) == 0);
		off += n;
		gb_yield();
	}
	gb_sock_close(w);
	return 0;
}

static void check_line(const struct run *r, const char *line, size_t n)
{
	const char *nl = memchr(line, '\n', n);

	FUZZ_CHECK(n >= 1 && n <= r->max);
	FUZZ_CHECK(!nl || nl == line + n - 1);
	/* Without a newline: max bytes, or the end of the input. */
	FUZZ_CHECK(nl || n == r->max || r->got + n == r->size);
	FUZZ_CHECK(r->got + n <= r->size);
}

static int reader(void *arg)
{
	struct run *r = arg;
	gb_sock *s;
	gb_group *g;
	const char *line;
	ssize_t n;

	FUZZ_CHECK(gb_sock_wrap(&s, r->fd[0]) == 0);
	FUZZ_CHECK(gb_group_open(&g) == 0);
	FUZZ_CHECK(gb_spawn(g, writer, r, NULL, NULL) == 0);
	/* Every call takes at least a byte: at most size + 1 calls. */
	for (size_t calls = 0; calls <= r->size; calls++) {
		n = gb_sock_recv_line(s, r->max, &line, gb_after(GB_SEC(5)));
		FUZZ_CHECK(n >= 0);
		if (n == 0)
			break;
		check_line(r, line, (size_t)n);
		memcpy(r->out + r->got, line, (size_t)n);
		r->got += (size_t)n;
	}
	FUZZ_CHECK(n == 0);
	FUZZ_CHECK(gb_group_close(g) == 0);
	gb_sock_close(s);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run r = { 0 };

	if (size < 2)
		return 0;
	r.max = 1 + data[0];
	r.seed = data[1];
	r.data = data + 2;
	r.size = size - 2;
	r.out = malloc(r.size + 1);
	FUZZ_CHECK(r.out);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r.fd) == 0);
	FUZZ_CHECK(gb_run(reader, &r) == 0);
	FUZZ_CHECK(r.got == r.size && memcmp(r.out, r.data, r.size) == 0);
	free(r.out);
	return 0;
}
