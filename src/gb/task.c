/*
 * task.c - a task's life: creation, its first and last moments, handles,
 * names and cancellation.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

static void task_exit(gb_task *t) __attribute__((noreturn));

/* First code every task runs, on its own stack. */
static void task_entry(void *arg)
{
	gb_task *t = arg;

#ifdef GB_ASAN
	gb__asan_finish_switch(NULL);
#endif
	gb__after_switch();
	t->result = t->fn(t->arg);
	task_exit(t);
}

/*
 * Ends the running task: closes the groups it left open (so no task
 * outlives its group), reports to its own group, and switches away for
 * good; the next context to run reclaims the stack.
 */
static void task_exit(gb_task *t)
{
	int err = gb__group_close_all(t);

	if (t->result >= 0 && err < 0)
		t->result = err;
	if (GB_UNLIKELY(gb__hooks && gb__hooks->on_exit))
		gb__hooks->on_exit(t, t->result, gb__hooks->ud);
	t->state = GB_TASK_DONE;
	gb__s.live--;
	if (t->group)
		gb__group_child_done(t);
	gb__exit_switch();
}

gb_task *gb__task_new(gb_group *g, gb_fn fn, void *arg,
                      const gb_spawn_opts *opts, int *err)
{
	size_t size = opts && opts->stack_size ? opts->stack_size
	                                       : gb__s.cfg.stack_size;
	gb_task *t = gb__stack_get(size);

	if (!t) {
		*err = -errno;
		return NULL;
	}
	t->fn = fn;
	t->arg = arg;
	t->group = g;
	t->id = gb__s.next_id++;
	t->name[0] = '\0';
	if (opts && opts->name)
		gb_task_set_name(t, opts->name);
	gb__ctx_init(&t->ctx, t->stack_lo, gb__stack_usable(t), task_entry, t);
	gb__s.live++;
	gb__runq_push(t);
	if (GB_UNLIKELY(gb__hooks && gb__hooks->on_spawn))
		gb__hooks->on_spawn(t, gb__hooks->ud);
	return t;
}

void gb__task_free(gb_task *t)
{
	gb__stack_put(t);
}

void gb_task_release(gb_task *t)
{
	if (--t->refs == 0 && t->state == GB_TASK_DONE && gb__s.dead != t)
		gb__task_free(t);
}

int gb_task_done(const gb_task *t, int *result)
{
	if (t->state != GB_TASK_DONE)
		return 0;
	if (result)
		*result = t->result;
	return 1;
}

const char *gb_task_name(const gb_task *t)
{
	return t->name;
}

void gb_task_set_name(gb_task *t, const char *name)
{
	size_t n = strnlen(name, GB_NAME_MAX - 1);

	memcpy(t->name, name, n);
	t->name[n] = '\0';
}

uint64_t gb_task_id(const gb_task *t)
{
	return t->id;
}

void gb_cancel(gb_task *t)
{
	if (t->state == GB_TASK_DONE || t->cancelled)
		return;
	t->cancelled = 1;
	gb__cancel_groups_in(t, NULL);
	gb__recheck(t);
}

int gb_cancelled(const gb_task *t)
{
	return t->cancelled;
}
