/*
 * priv.h - running as root: dropping to [server] user once the listening
 * sockets are open.
 */
#ifndef GIAMBIOD_PRIV_H
#define GIAMBIOD_PRIV_H

#include "conf.h"

/* Before anything is opened: returns -1 (after logging why) when user
 * names someone else and the daemon cannot switch to them, not being
 * root. */
int priv_check(const struct conf *c);

/* After everything that needs root: switches to c->user and its primary
 * group, without supplementary groups, and checks that root cannot be
 * had back; warns when started as root without user. Returns 0 (also when there is nothing to drop) or -1 after
 * logging what failed; the daemon must then not go on. */
int priv_drop(const struct conf *c);

/* 1 once priv_drop has switched users. */
int priv_dropped(void);

#endif
