/*
 * fuzz_conf.c - giambio.conf's parser over any bytes.
 *
 * The input is read through conf_load_stream from an fmemopen() stream
 * named "fuzz.conf", which is how giambiod reads a file, down to libinih
 * and the line reader. Beyond not crashing:
 * - the count returned is the number of error messages recorded;
 * - every message names the file, and the line it names (if any) is a
 *   line of the input;
 * - a file with errors leaves the conf as it was; a good one gives a
 *   conf whose every value is within the range its key allows;
 * - reading the same text again over the result gives the same result.
 */
#include <string.h>

#include "fuzz.h"
#include "../../src/daemon/conf.h"
#include "../../src/daemon/log.h"
#include "gb.h"

#define NAME "fuzz.conf"
#define SEC 1000000000LL

static int load(struct conf *c, const uint8_t *data, size_t size,
                struct conf_errors *e)
{
	/* fmemopen may refuse a size of 0: an empty file is then read from a
	 * one-byte buffer that ends before its first byte. */
	static char empty[1];
	FILE *f = size ? fmemopen((void *)data, size, "r")
	               : fmemopen(empty, 1, "r");
	int rc;

	FUZZ_CHECK(f);
	if (!size)
		fgetc(f);
	rc = conf_load_stream(c, f, NAME, e);
	fclose(f);
	return rc;
}

/* The number of lines in the input: a last line needs no newline. */
static long count_lines(const uint8_t *data, size_t size)
{
	long n = 0;

	for (size_t i = 0; i < size; i++)
		n += data[i] == '\n';
	return n + (size && data[size - 1] != '\n');
}

/* "fuzz.conf:LINE: ..." with LINE a line of the input, or "fuzz.conf: ...". */
static void check_message(const char *m, long lines)
{
	size_t k = strlen(NAME);

	FUZZ_CHECK(!strncmp(m, NAME, k) && m[k] == ':');
	if (m[k + 1] == ' ')
		return;
	char *end;
	long line = strtol(m + k + 1, &end, 10);
	FUZZ_CHECK(*end == ':');
	FUZZ_CHECK(line >= 1 && line <= lines);
}

static void check_ranges(const struct conf *c)
{
	struct sockaddr_storage ss;
	socklen_t len;

	FUZZ_CHECK(c->nlisten <= CONF_LISTEN_MAX);
	for (size_t i = 0; i < c->nlisten; i++)
		FUZZ_CHECK(gb_addr_parse(c->listen[i], &ss, &len) == 0);
	FUZZ_CHECK(c->mode == MODE_ECHO || c->mode == MODE_CHAT);
	FUZZ_CHECK(c->welcome && strlen(c->welcome) <= 160);
	FUZZ_CHECK(c->max_clients <= 1000000 && c->max_clients_per_ip <= 1000000);
	FUZZ_CHECK(c->max_line >= 2 && c->max_line <= 1024 * 1024);
	FUZZ_CHECK(c->idle_timeout >= 0 && c->idle_timeout <= 720 * 3600 * SEC);
	FUZZ_CHECK(c->send_buffer <= (size_t)1024 * 1024 * 1024);
	FUZZ_CHECK(c->rate <= 1000000 && c->rate_burst <= 1000000);
	FUZZ_CHECK(c->shutdown_timeout >= 0 && c->shutdown_timeout <= 3600 * SEC);
	FUZZ_CHECK(c->log_level >= LOG_ERROR && c->log_level <= LOG_DEBUG);
}

static int same_conf(const struct conf *a, const struct conf *b)
{
	if (a->nlisten != b->nlisten || strcmp(a->welcome, b->welcome))
		return 0;
	for (size_t i = 0; i < a->nlisten; i++)
		if (strcmp(a->listen[i], b->listen[i]))
			return 0;
	return a->mode == b->mode && a->max_clients == b->max_clients &&
	       a->max_clients_per_ip == b->max_clients_per_ip &&
	       a->max_line == b->max_line && a->idle_timeout == b->idle_timeout &&
	       a->send_buffer == b->send_buffer && a->rate == b->rate &&
	       a->rate_burst == b->rate_burst &&
	       a->shutdown_timeout == b->shutdown_timeout &&
	       a->log_level == b->log_level;
}

static int same_errors(const struct conf_errors *a, const struct conf_errors *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->msg[i], b->msg[i]))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c, defaults, first;
	struct conf_errors e = { 0 }, again = { 0 };
	long lines = count_lines(data, size);
	int rc;

	conf_defaults(&c);
	conf_defaults(&defaults);
	rc = load(&c, data, size, &e);
	FUZZ_CHECK(rc >= 0 && (size_t)rc == e.n);
	for (size_t i = 0; i < e.n; i++)
		check_message(e.msg[i], lines);
	if (rc)
		FUZZ_CHECK(same_conf(&c, &defaults));
	else
		check_ranges(&c);
	/* A reload of the same text starts from the defaults again. */
	FUZZ_CHECK(conf_copy(&first, &c) == 0);
	FUZZ_CHECK(load(&c, data, size, &again) == rc);
	FUZZ_CHECK(same_errors(&e, &again) && same_conf(&c, &first));
	conf_errors_free(&again);
	conf_errors_free(&e);
	conf_free(&first);
	conf_free(&defaults);
	conf_free(&c);
	return 0;
}
