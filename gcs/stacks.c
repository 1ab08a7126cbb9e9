/*
 * The GCS's own thread stacks (dump_stacks): the bridge thread and the
 * storage workers (storage.c) alike. The capture is the shim's too
 * (stacks_core.c: a queued real-time signal per thread, a libunwind walk in
 * its handler, a bounded wait); here the frames get their names and the
 * text its shape.
 *
 * The guest has no seccomp filter on the GCS (only the shim is sandboxed,
 * docs/seccomp.md), so the lookup may use whatever libunwind needs. The GCS
 * links libunwind and libc dynamically; libunwind reads each object's
 * symbol table itself (the binary is not stripped in the initrd), so static
 * functions have names too.
 */
#define UNW_LOCAL_ONLY
#include "gcs/gcs.h"
#include "gcs/stacks_core.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libunwind.h>

int gcs_stacks_signal(void)
{
	return SIGRTMIN + 3;
}

int gcs_stacks_init(void)
{
	return stacks_core_init(gcs_stacks_signal());
}

void gcs_stacks_allow(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, gcs_stacks_signal());
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* ---- the text ------------------------------------------------------------------ */

static const char *stk_result_text(enum stacks_core_result r)
{
	switch (r) {
	case STACKS_CORE_OK:
		return "ok";
	case STACKS_CORE_NO_ANSWER:
		return "did not answer";
	case STACKS_CORE_STUCK:
		return "began its walk but did not finish";
	case STACKS_CORE_GONE:
		return "ended before it was asked";
	case STACKS_CORE_KERNEL_WORKER:
		return "a kernel worker: no user stack";
	case STACKS_CORE_SEND_FAILED:
		return "could not be signalled";
	case STACKS_CORE_TOO_MANY:
		return "not asked: too many threads";
	}
	return "?";
}

/*
 * The function around ip: a cursor on our own context with its ip replaced
 * (libunwind 1.6 has no lookup by address); return addresses (every frame but
 * the innermost) are looked up one byte back, inside the call. libunwind
 * takes the nearest symbol below, whatever its size: where a stripped
 * library lacks the real one (libc's start_thread, clone3) that is another
 * function, so a name whose start is not the start of the unwind entry
 * around ip is dropped. Returns false when there is no trustworthy name.
 */
static bool stk_name(uintptr_t ip, bool is_return, char *name, size_t len, uintptr_t *off)
{
	unw_word_t o = 0;
	unw_proc_info_t pi;
	unw_context_t ctx;
	unw_cursor_t cur;
	uintptr_t at = is_return ? ip - 1 : ip;

	if (unw_getcontext(&ctx) || unw_init_local(&cur, &ctx) ||
	    unw_set_reg(&cur, UNW_REG_IP, at) || unw_get_proc_name(&cur, name, len, &o))
		return false;
	if (unw_get_proc_info(&cur, &pi) == 0 && pi.start_ip && pi.start_ip != at - o)
		return false;
	*off = o + (ip - at);
	return true;
}

static char *stk_format(const struct stacks_core_thread *ts, int n, int pid, int timeout_ms)
{
	char *text = NULL, name[128];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	fprintf(f, "gcs pid %d: %d thread%s\n", pid, n, n == 1 ? "" : "s");
	for (int i = 0; i < n; i++) {
		const struct stacks_core_thread *t = &ts[i];

		fprintf(f, "thread %d (%s) %c", t->tid, t->name, t->state ? t->state : '?');
		if (t->result != STACKS_CORE_OK) {
			fprintf(f, ": %s", stk_result_text(t->result));
			if (t->result == STACKS_CORE_NO_ANSWER || t->result == STACKS_CORE_STUCK)
				fprintf(f, " within %d ms", timeout_ms);
			if (t->result == STACKS_CORE_SEND_FAILED)
				fprintf(f, " (%s)", strerror(t->err));
			fputc('\n', f);
			continue;
		}
		fputs(":\n", f);
		for (int k = 0; k < t->nframes; k++) {
			uintptr_t off;

			if (stk_name(t->ip[k], k > 0, name, sizeof(name), &off))
				fprintf(f, "  #%d 0x%lx %s+0x%lx\n", k, (unsigned long)t->ip[k],
					name, (unsigned long)off);
			else
				fprintf(f, "  #%d 0x%lx ?\n", k, (unsigned long)t->ip[k]);
		}
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

char *gcs_stacks_dump(int timeout_ms)
{
	struct stacks_core_thread *ts;
	char *text;
	int n, pid;

	if (stacks_core_capture(timeout_ms, &ts, &n, &pid))
		return NULL;
	text = stk_format(ts, n, pid, timeout_ms);
	free(ts);
	return text;
}
