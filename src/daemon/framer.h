/*
 * framer.h - chat mode's input: telnet commands removed, control bytes
 * dropped, bytes cut into lines of at most max_line bytes as received.
 *
 * Telnet: IAC with its command (and option) and IAC SB ... IAC SE are
 * removed, also when split across reads; IAC IAC is one 0xFF data byte.
 * Bytes 0x00-0x1F other than tab, and 0x7F, are dropped (a CR before the
 * LF is part of the terminator either way); bytes from 0x80 up pass, so
 * UTF-8 arrives untouched. A line whose bytes as received (telnet and
 * terminator included) pass max_line is reported once as too long and
 * discarded up to its end.
 */
#ifndef GIAMBIOD_FRAMER_H
#define GIAMBIOD_FRAMER_H

#include <stddef.h>

enum framer_event {
	FRAMER_MORE,        /* the input was used up; feed more */
	FRAMER_LINE,        /* f->line[0..f->len) is a line, no terminator */
	FRAMER_TOO_LONG,    /* the current line passed max_line */
};

struct framer {
	size_t max;         /* max_line */
	size_t raw;         /* bytes of the current line as received */
	char *line;         /* owned; max bytes */
	size_t len;
	unsigned char telnet;       /* telnet parser state */
	unsigned char discarding;   /* inside a too-long line */
	unsigned char done;         /* line was handed out: reset first */
};

int framer_init(struct framer *f, size_t max);
void framer_free(struct framer *f);

/* Consumes bytes of buf[0..n) up to the next event and returns how many;
 * *ev says which event stopped it. The line stays valid until the next
 * call. */
size_t framer_feed(struct framer *f, const char *buf, size_t n, int *ev);

/* At end of input: 1 if an unfinished line is pending (then it is in
 * f->line, f->len), else 0. */
int framer_finish(struct framer *f);

#endif
