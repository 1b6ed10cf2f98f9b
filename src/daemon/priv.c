/*
 * priv.c - dropping root.
 *
 * The order matters: supplementary groups and the group go first, while
 * the process may still change them; setuid last, since after it nothing
 * else can be changed. setgid and setuid as root set the real, effective
 * and saved ids alike, so that nothing is left to switch back to.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "priv.h"

static int dropped;

int priv_dropped(void)
{
	return dropped;
}

int priv_check(const struct conf *c)
{
	uid_t euid = geteuid();

	if (euid != 0 && c->user && euid != c->uid) {
		log_error("cannot switch to user %s (uid %u): giambiod was "
		          "started as uid %u, not root; start it as root, or as "
		          "%s, or leave user out", c->user, (unsigned)c->uid,
		          (unsigned)euid, c->user);
		return -1;
	}
	return 0;
}

static int drop_failed(const char *what, const struct conf *c)
{
	log_error("cannot drop root to user %s: %s: %s; exiting", c->user,
	          what, strerror(errno));
	return -1;
}

/* Whether every id is the user's and no way back to root is left. */
static int verify(const struct conf *c)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;

	if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return drop_failed("reading the ids back", c);
	errno = EPERM;
	if (r != c->uid || e != c->uid || s != c->uid || rg != c->gid ||
	    eg != c->gid || sg != c->gid)
		return drop_failed("the ids did not all change", c);
	if (getgroups(0, NULL) != 0)
		return drop_failed("supplementary groups remain", c);
	/* c->uid is never 0 (conf.c refuses root), so this must fail. */
	if (setuid(0) == 0 || seteuid(0) == 0) {
		errno = EPERM;
		return drop_failed("root could be regained", c);
	}
	return 0;
}

int priv_drop(const struct conf *c)
{
	/* Said here, where the drop would be, after the startup lines (and
	 * so once, since reloads do not come back here). */
	if (!c->user && geteuid() == 0)
		log_warning("running as root: set user in [server] of "
		            "giambio.conf to drop root once the listening "
		            "sockets are open");
	if (!c->user || geteuid() != 0)
		return 0; /* priv_check has dealt with a user that is not us */
	if (setgroups(0, NULL) < 0)
		return drop_failed("setgroups", c);
	if (setgid(c->gid) < 0)
		return drop_failed("setgid", c);
	if (setuid(c->uid) < 0)
		return drop_failed("setuid", c);
	if (verify(c) < 0)
		return -1;
	dropped = 1;
	log_info("Dropped root: running as %s (uid %u, gid %u)", c->user,
	         (unsigned)c->uid, (unsigned)c->gid);
	return 0;
}
