/*
 * framer.c - chat input: telnet filter and line framing, byte by byte.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "gb.h"
#include "framer.h"

enum { IAC = 255, SB = 250, SE = 240, WILL = 251, DONT = 254 };

enum telnet_state {
	T_DATA,         /* ordinary bytes */
	T_IAC,          /* after IAC */
	T_OPT,          /* after IAC WILL/WONT/DO/DONT: the option byte */
	T_SB,           /* inside IAC SB ... */
	T_SB_IAC,       /* IAC inside a subnegotiation */
};

int framer_init(struct framer *f, size_t max)
{
	*f = (struct framer){ .max = max };
	f->line = gb_malloc(max);
	return f->line ? 0 : -ENOMEM;
}

void framer_free(struct framer *f)
{
	free(f->line);
	f->line = NULL;
}

/* Runs the telnet parser over byte b; returns 1 if b is data. */
static int telnet_step(struct framer *f, unsigned char b)
{
	switch (f->telnet) {
	case T_DATA:
		if (b != IAC)
			return 1;
		f->telnet = T_IAC;
		return 0;
	case T_IAC:
		f->telnet = b == SB ? T_SB : b >= WILL && b <= DONT ? T_OPT : T_DATA;
		return b == IAC; /* IAC IAC is a data byte 0xff */
	case T_OPT:
		f->telnet = T_DATA;
		return 0;
	case T_SB:
		if (b == IAC)
			f->telnet = T_SB_IAC;
		return 0;
	default: /* T_SB_IAC */
		f->telnet = b == SE ? T_DATA : T_SB;
		return 0;
	}
}

static int kept(unsigned char b)
{
	return b == '\t' || (b >= 0x20 && b != 0x7f);
}

size_t framer_feed(struct framer *f, const char *buf, size_t n, int *ev)
{
	size_t i = 0;

	if (f->done) {
		f->done = 0;
		f->len = 0;
		f->raw = 0;
	}
	while (i < n) {
		unsigned char b = (unsigned char)buf[i++];
		int data = telnet_step(f, b);

		f->raw++;
		if (data && b == '\n') {
			if (f->discarding) {
				f->discarding = 0;
				f->raw = 0;
				continue;
			}
			f->done = 1;
			*ev = FRAMER_LINE;
			return i;
		}
		if (f->discarding)
			continue;
		if (data && kept(b))
			f->line[f->len++] = (char)b;
		if (f->raw >= f->max) {
			/* Even a newline next would make the line too long. */
			f->discarding = 1;
			f->len = 0;
			*ev = FRAMER_TOO_LONG;
			return i;
		}
	}
	*ev = FRAMER_MORE;
	return i;
}

int framer_finish(struct framer *f)
{
	if (f->done || f->discarding || f->len == 0)
		return 0;
	f->done = 1;
	return 1;
}
