/*
 * group.c - task groups (giambio's task pools, trio's nurseries): spawning,
 * joining, and how a child's failure reaches its siblings and its parent.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

struct gb_group {
	gb_scope scope;      /* on the owner's chain while the group is open */
	gb_task *owner;
	gb_task *members;    /* tasks not yet ended, linked by gprev/gnext */
	size_t live;
	gb_task *joiner;     /* the owner, while it waits for live == 0 */
	unsigned char cancelled;
	int first_err;
	size_t nerrs;        /* failed children */
	int *errs;           /* their errors, as many as memory allowed */
	size_t errs_len, errs_cap;
};

int gb_group_open(gb_group **out)
{
	gb_group *g = gb_calloc(1, sizeof *g);

	if (!g)
		return -ENOMEM;
	gb_scope_enter(&g->scope, GB_NEVER, 0);
	g->scope.group = g;
	g->owner = gb__s.current;
	*out = g;
	return 0;
}

static void member_link(gb_group *g, gb_task *t)
{
	t->gprev = NULL;
	t->gnext = g->members;
	if (g->members)
		g->members->gprev = t;
	g->members = t;
	g->live++;
}

static void member_unlink(gb_group *g, gb_task *t)
{
	if (t->gprev)
		t->gprev->gnext = t->gnext;
	else
		g->members = t->gnext;
	if (t->gnext)
		t->gnext->gprev = t->gprev;
	g->live--;
}

int gb_spawn(gb_group *g, gb_fn fn, void *arg, const gb_spawn_opts *opts,
             gb_task **handle)
{
	int err = 0;

	if (!g || !fn)
		return -EINVAL;
	/* A group opened by a cancelled owner (outside any shield) is
	 * cancelled from birth, and so are its children. */
	gb_task *o = g->owner;
	if (!g->cancelled && (o->cancelled | o->scopes_timed | o->scopes_cancelled) &&
	    gb__scope_check(o, &g->scope, NULL))
		gb_group_cancel(g);
	gb_task *t = gb__task_new(g, fn, arg, opts, &err);
	if (!t)
		return err;
	member_link(g, t);
	t->cancelled = g->cancelled;
	if (handle) {
		t->refs = 1;
		*handle = t;
	}
	return 0;
}

void gb_group_cancel(gb_group *g)
{
	if (g->cancelled)
		return;
	g->cancelled = 1;
	for (gb_task *m = g->members; m; m = m->gnext)
		gb_cancel(m);
}

/* A child failed: remember why, stop its siblings and interrupt the
 * owner's work inside the group (it sees the error when it closes). */
static void child_failed(gb_group *g, int err)
{
	if (g->nerrs++ == 0)
		g->first_err = err;
	if (g->errs_len == g->errs_cap) {
		size_t cap = g->errs_cap ? 2 * g->errs_cap : 4;
		int *e = gb_realloc(g->errs, cap * sizeof *e);
		if (e) {
			g->errs = e;
			g->errs_cap = cap;
		}
	}
	if (g->errs_len < g->errs_cap)
		g->errs[g->errs_len++] = err;
	if (g->nerrs > 1)
		return;
	gb__scope_mark_cancelled(&g->scope);
	gb__cancel_groups_in(g->owner, &g->scope);
	gb__recheck(g->owner);
}

void gb__group_child_done(gb_task *t)
{
	gb_group *g = t->group;

	member_unlink(g, t);
	/* A child that ends with -ECANCELED because it was cancelled has not
	 * failed: it did what cancellation asked. */
	if (t->result < 0 && !(t->result == -ECANCELED && t->cancelled))
		child_failed(g, t->result);
	if (g->live == 0 && g->joiner) {
		gb_task *j = g->joiner;
		g->joiner = NULL;
		gb__wake(j, 0);
	}
}

static void detach_joiner(gb_task *t)
{
	gb_group *g = t->wait_obj;

	g->joiner = NULL;
}

int gb_group_wait(gb_group *g, int64_t deadline)
{
	gb_task *t = gb__s.current;

	if (t != g->owner)
		return -EPERM;
	while (g->live) {
		g->joiner = t;
		t->wait_obj = g;
		/* The group's own failure must not interrupt the wait for it. */
		t->skip_scope = &g->scope;
		int rc = gb__block(deadline, detach_joiner);
		t->skip_scope = NULL;
		if (rc)
			return rc;
	}
	return g->first_err;
}

int gb_group_close(gb_group *g)
{
	gb_task *t = gb__s.current;
	int rc;

	if (t != g->owner || t->scope != &g->scope) {
		gb__log(GB_LOG_ERROR, "task %llu: group closed by another task "
		        "or out of order", (unsigned long long)t->id);
		abort();
	}
	gb_group_cancel(g);
	while (g->live) {
		g->joiner = t;
		t->wait_obj = g;
		gb__block(GB_NEVER, NULL); /* children are cancelled: they end */
	}
	gb__scope_pop(&g->scope);
	rc = g->first_err;
	free(g->errs);
	free(g);
	return rc;
}

int gb__group_close_all(gb_task *t)
{
	int err = 0;

	while (t->scope) {
		gb_scope *s = t->scope;

		if (!s->group) {
			/* A scope entered and never left: its frame is gone. */
			gb__scope_pop(s);
			continue;
		}
		/* gb_group_close pops s (t->scope becomes its parent) before
		 * freeing it; the analyser does not see the pop. */
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		int rc = gb_group_close(s->group);
		if (err == 0)
			err = rc;
	}
	return err;
}

size_t gb_group_errors(const gb_group *g, int *errs, size_t max)
{
	for (size_t i = 0; i < max && i < g->errs_len; i++)
		errs[i] = g->errs[i];
	return g->nerrs;
}

size_t gb_group_size(const gb_group *g)
{
	return g->live;
}
