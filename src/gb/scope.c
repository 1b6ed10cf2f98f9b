/*
 * scope.c - cancel scopes: deadlines and cancellation for a stretch of a
 * task's work, shields, and how a blocking call decides whether it may
 * block at all.
 *
 * A task's scopes form a chain from the innermost (t->scope) outwards;
 * group scopes (group.c) are links of the same chain. Cancellation is
 * level-triggered: a cancelled or expired scope stays so until it is left.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * Cancels the groups whose scopes lie inside `outer` on t's chain (all of
 * t's groups when outer is NULL), except those protected by a shield that
 * itself lies inside outer. outer itself counts when it is a group scope.
 */
void gb__cancel_groups_in(gb_task *t, gb_scope *outer)
{
	gb_scope *start = t->scope, *s;

	for (s = t->scope; s && s != outer; s = s->parent)
		if (s->shield)
			start = s->parent;
	for (s = start; s && s != outer; s = s->parent)
		if (s->group)
			gb_group_cancel(s->group);
	if (outer && outer->group)
		gb_group_cancel(outer->group);
}

int gb__scope_check(gb_task *t, gb_scope *from, int64_t *deadline)
{
	int64_t now = 0;

	for (gb_scope *s = from; s; s = s->parent) {
		int rc = 0;

		if (s->cancelled && s != t->skip_scope) {
			rc = -ECANCELED;
		} else if (s->expired) {
			rc = -ETIMEDOUT;
		} else if (s->deadline != GB_NEVER) {
			if (!now)
				now = gb_now();
			if (now >= s->deadline) {
				s->expired = 1;
				rc = -ETIMEDOUT;
			} else if (deadline && s->deadline < *deadline) {
				*deadline = s->deadline;
			}
		}
		if (rc) {
			/* Work inside this scope is over: so is its groups'. */
			gb__cancel_groups_in(t, s);
			return rc;
		}
		if (s->shield)
			return 0;
	}
	return t->cancelled ? -ECANCELED : 0;
}

void gb_scope_enter(gb_scope *s, int64_t deadline, int flags)
{
	gb_task *t = gb__s.current;

	memset(s, 0, sizeof *s);
	s->parent = t->scope;
	s->task = t;
	s->deadline = deadline;
	s->shield = (flags & GB_SHIELD) != 0;
	t->scope = s;
	t->scopes_timed += deadline != GB_NEVER;
}

/* Scopes nest like the code that enters them; anything else is a bug in
 * the caller that would corrupt the chain, so stop here. */
void gb__scope_pop(gb_scope *s)
{
	if (s->task->scope != s) {
		gb__log(GB_LOG_ERROR, "task %llu: scope or group closed out of "
		        "order (they must close in reverse order of opening)",
		        (unsigned long long)s->task->id);
		abort();
	}
	s->task->scope = s->parent;
	s->task->scopes_timed -= s->deadline != GB_NEVER;
	s->task->scopes_cancelled -= s->cancelled;
}

void gb__scope_mark_cancelled(gb_scope *s)
{
	if (!s->cancelled) {
		s->cancelled = 1;
		s->task->scopes_cancelled++;
	}
}

int gb_scope_leave(gb_scope *s)
{
	gb__scope_pop(s);
	if (s->cancelled)
		return -ECANCELED;
	if (s->expired || (s->deadline != GB_NEVER && gb_now() >= s->deadline))
		return -ETIMEDOUT;
	return 0;
}

void gb_scope_cancel(gb_scope *s)
{
	if (s->cancelled)
		return;
	gb__scope_mark_cancelled(s);
	gb__cancel_groups_in(s->task, s);
	gb__recheck(s->task);
}

void gb_scope_set_deadline(gb_scope *s, int64_t deadline)
{
	s->task->scopes_timed += (deadline != GB_NEVER) - (s->deadline != GB_NEVER);
	s->deadline = deadline;
	gb__rearm(s->task);
}
