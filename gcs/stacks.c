/*
 * The GCS's own thread stacks (dump_stacks): the bridge thread and the
 * storage workers (storage.c) alike.
 *
 * A thread can only walk its own stack, so each one is asked with a queued
 * real-time signal whose value names a slot in a static table; its handler
 * walks the interrupted context with libunwind into that slot and wakes the
 * asking thread through an eventfd. The asking thread waits a bounded time:
 * a thread that never takes the signal (blocked, or asleep in the kernel in
 * an uninterruptible wait such as a mount) is reported as silent. Names are
 * looked up afterwards, on the asking thread.
 *
 * The guest has no seccomp filter on the GCS (only the shim is sandboxed,
 * docs/seccomp.md), so the handler and the lookup may use whatever
 * libunwind needs. The GCS links libunwind and libc dynamically; libunwind
 * reads each object's symbol table itself (the binary is not stripped in the
 * initrd), so static functions have names too.
 */
#define UNW_LOCAL_ONLY
#include "gcs/gcs.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libunwind.h>

/* Slots: the bridge thread, up to 64 storage workers (storage.c MAX_JOBS), and room. */
#define STK_THREADS  128
#define STK_FRAMES   40
#define STK_IDX_BITS 7
_Static_assert(STK_THREADS == 1 << STK_IDX_BITS, "a slot index fills its bits");

/* ---- the slots and the handler ------------------------------------------------ */

/*
 * Slot word: round << 2 | phase. A request carries (round, index); the
 * handler fills the slot only if it moves the word from (round, ASKED) to
 * (round, WALKING) itself, so a signal that arrives after the asking thread
 * gave up on it (and set the slot FREE) writes nothing. Static storage: a
 * late handler never writes into freed memory.
 */
enum { STK_FREE, STK_ASKED, STK_WALKING, STK_FILLED };
#define STK_ROUND_MAX ((1u << (31 - STK_IDX_BITS)) - 1) /* the value stays a positive int */

struct stk_slot {
	_Atomic uint32_t word;
	int nframes;
	uintptr_t ip[STK_FRAMES];
};

static struct stk_slot stk_slots[STK_THREADS];
static int stk_wake_fd = -1; /* eventfd: a handler filled its slot */
static uint32_t stk_round;
static pid_t stk_pid;
static pthread_mutex_t stk_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t stk_word(uint32_t round, uint32_t phase)
{
	return round << 2 | phase;
}

/* From the interrupted instruction outwards: the handler's own frames are skipped. */
static int stk_walk(void *uc, uintptr_t *ip, int max)
{
	unw_cursor_t cur;
	int n = 0;

	if (unw_init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) < 0)
		return 0;
	while (n < max) {
		unw_word_t w = 0;

		if (unw_get_reg(&cur, UNW_REG_IP, &w) < 0 || !w)
			break;
		ip[n++] = w;
		if (unw_step(&cur) <= 0)
			break;
	}
	return n;
}

/* Async-signal-safe: atomics, libunwind's local walk, write(2). */
static void stk_handler(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	uint32_t val, want, round;
	struct stk_slot *s;
	uint64_t one = 1;

	(void)sig;
	if (si->si_code != SI_QUEUE || si->si_pid != stk_pid)
		goto out;
	val = (uint32_t)si->si_value.sival_int;
	s = &stk_slots[val & (STK_THREADS - 1)];
	round = val >> STK_IDX_BITS;
	want = stk_word(round, STK_ASKED);
	if (!atomic_compare_exchange_strong(&s->word, &want, stk_word(round, STK_WALKING)))
		goto out;
	s->nframes = stk_walk(uc, s->ip, STK_FRAMES);
	atomic_store(&s->word, stk_word(round, STK_FILLED));
	if (write(stk_wake_fd, &one, sizeof(one)) < 0) {
		/* cannot fail short of a counter overflow; the asker polls the words anyway */
	}
out:
	errno = saved;
}

int gcs_stacks_signal(void)
{
	return SIGRTMIN + 3;
}

int gcs_stacks_init(void)
{
	struct sigaction sa = {.sa_sigaction = stk_handler, .sa_flags = SA_SIGINFO | SA_RESTART};
	unw_context_t ctx;
	uintptr_t ip[2];

	if (stk_wake_fd >= 0)
		return 0;
	stk_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (stk_wake_fd < 0)
		return -errno;
	sigemptyset(&sa.sa_mask);
	if (sigaction(gcs_stacks_signal(), &sa, NULL) < 0) {
		int err = -errno;

		close(stk_wake_fd);
		stk_wake_fd = -1;
		return err;
	}
	/* libunwind sets itself up on first use: not inside a handler, then. */
	if (unw_getcontext(&ctx) == 0)
		(void)stk_walk(&ctx, ip, 2);
	return 0;
}

void gcs_stacks_allow(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, gcs_stacks_signal());
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* ---- one capture --------------------------------------------------------------- */

enum stk_result { STK_OK, STK_SILENT, STK_STUCK, STK_ENDED, STK_UNSENT, STK_OVER };

struct stk_thread {
	int tid;
	char name[16];
	char state;
	int slot; /* -1: not asked, or no longer waited for */
	enum stk_result result;
	int err;
	int nframes;
	uintptr_t ip[STK_FRAMES];
};

/* "tid (comm) S ...": comm may itself hold spaces and parentheses. */
static int stk_read_stat(struct stk_thread *t)
{
	char path[64], buf[256], *l, *r;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", t->tid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	l = strchr(buf, '(');
	r = strrchr(buf, ')');
	if (!l || !r || r < l || r[1] != ' ')
		return -EIO;
	snprintf(t->name, sizeof(t->name), "%.*s", (int)(r - l - 1), l + 1);
	t->state = r[2];
	return 0;
}

static int stk_list(struct stk_thread **out, int *count)
{
	struct stk_thread *ts = NULL;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0, cap = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		int tid = atoi(e->d_name);

		if (tid <= 0)
			continue;
		if (n == cap) {
			struct stk_thread *p = realloc(ts, (cap ? 2 * cap : 8) * sizeof(*ts));

			if (!p) {
				free(ts);
				closedir(d);
				return -ENOMEM;
			}
			ts = p;
			cap = cap ? 2 * cap : 8;
		}
		memset(&ts[n], 0, sizeof(ts[n]));
		ts[n].tid = tid;
		ts[n].slot = -1;
		if (stk_read_stat(&ts[n]) == -ENOENT)
			continue; /* ended since readdir saw it */
		n++;
	}
	closedir(d);
	*out = ts;
	*count = n;
	return 0;
}

/* A slot nobody waits for: FREE, or filled by a handler that came too late. */
static int stk_slot_take(uint32_t round)
{
	for (int i = 0; i < STK_THREADS; i++) {
		uint32_t w = atomic_load(&stk_slots[i].word);

		if ((w & 3) == STK_FREE || ((w & 3) == STK_FILLED && w >> 2 != round))
			return i;
	}
	return -1;
}

static int stk_ask(int tid, uint32_t value)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = gcs_stacks_signal();
	si.si_code = SI_QUEUE;
	si.si_pid = stk_pid;
	si.si_uid = getuid();
	si.si_value.sival_int = (int)value;
	return syscall(SYS_rt_tgsigqueueinfo, stk_pid, tid, si.si_signo, &si) < 0 ? -errno : 0;
}

static long stk_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000;
}

/* Waits until no asked thread is in `phase` any more, or until the deadline. */
static void stk_wait(struct stk_thread *ts, int n, uint32_t round, uint32_t phase, long deadline)
{
	for (;;) {
		uint64_t drained;
		struct pollfd p = {.fd = stk_wake_fd, .events = POLLIN};
		bool waiting = false;
		long left;

		for (int i = 0; i < n && !waiting; i++)
			waiting = ts[i].slot >= 0 && atomic_load(&stk_slots[ts[i].slot].word) ==
							 stk_word(round, phase);
		left = deadline - stk_now_ms();
		if (!waiting || left <= 0)
			return;
		if (poll(&p, 1, (int)left) > 0 &&
		    read(stk_wake_fd, &drained, sizeof(drained)) < 0) {
			/* EAGAIN: another wake-up took it; the words are what count */
		}
	}
}

static void stk_capture(struct stk_thread *ts, int n, int timeout_ms)
{
	uint64_t drained;
	uint32_t round;

	stk_round = stk_round % STK_ROUND_MAX + 1;
	round = stk_round;
	if (read(stk_wake_fd, &drained, sizeof(drained)) < 0) {
		/* nothing left from late handlers of earlier rounds */
	}
	for (int i = 0; i < n; i++) {
		struct stk_thread *t = &ts[i];
		int idx = stk_slot_take(round), ret;

		if (idx < 0) {
			t->result = STK_OVER;
			continue;
		}
		stk_slots[idx].nframes = 0;
		atomic_store(&stk_slots[idx].word, stk_word(round, STK_ASKED));
		t->slot = idx;
		ret = stk_ask(t->tid, round << STK_IDX_BITS | (uint32_t)idx);
		if (ret) {
			atomic_store(&stk_slots[idx].word, stk_word(0, STK_FREE));
			t->slot = -1;
			t->result = ret == -ESRCH ? STK_ENDED : STK_UNSENT;
			t->err = -ret;
		}
	}
	stk_wait(ts, n, round, STK_ASKED, stk_now_ms() + timeout_ms);
	for (int i = 0; i < n; i++) {
		uint32_t want = stk_word(round, STK_ASKED);

		/* Still not taken: give up; a late signal then finds nothing to fill. */
		if (ts[i].slot >= 0 &&
		    atomic_compare_exchange_strong(&stk_slots[ts[i].slot].word, &want,
						   stk_word(0, STK_FREE))) {
			ts[i].result = STK_SILENT;
			ts[i].slot = -1;
		}
	}
	/* Handlers already walking get one more bound. */
	stk_wait(ts, n, round, STK_WALKING, stk_now_ms() + timeout_ms);
	for (int i = 0; i < n; i++) {
		struct stk_slot *s;

		if (ts[i].slot < 0)
			continue;
		s = &stk_slots[ts[i].slot];
		ts[i].slot = -1;
		if (atomic_load(&s->word) != stk_word(round, STK_FILLED)) {
			ts[i].result = STK_STUCK; /* its slot is reused once it finishes */
			continue;
		}
		ts[i].nframes = s->nframes;
		memcpy(ts[i].ip, s->ip, s->nframes * sizeof(s->ip[0]));
		atomic_store(&s->word, stk_word(0, STK_FREE));
	}
}

/* ---- the text ------------------------------------------------------------------ */

static const char *stk_result_text(enum stk_result r)
{
	switch (r) {
	case STK_OK:
		return "ok";
	case STK_SILENT:
		return "did not answer";
	case STK_STUCK:
		return "began its walk but did not finish";
	case STK_ENDED:
		return "ended before it was asked";
	case STK_UNSENT:
		return "could not be signalled";
	case STK_OVER:
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

static char *stk_format(const struct stk_thread *ts, int n, int timeout_ms)
{
	char *text = NULL, name[128];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	fprintf(f, "gcs pid %d: %d thread%s\n", stk_pid, n, n == 1 ? "" : "s");
	for (int i = 0; i < n; i++) {
		const struct stk_thread *t = &ts[i];

		fprintf(f, "thread %d (%s) %c", t->tid, t->name, t->state ? t->state : '?');
		if (t->result != STK_OK) {
			fprintf(f, ": %s", stk_result_text(t->result));
			if (t->result == STK_SILENT || t->result == STK_STUCK)
				fprintf(f, " within %d ms", timeout_ms);
			if (t->result == STK_UNSENT)
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
	struct stk_thread *ts = NULL;
	char *text;
	int n = 0;

	if (stk_wake_fd < 0)
		return NULL;
	pthread_mutex_lock(&stk_lock);
	stk_pid = getpid();
	if (stk_list(&ts, &n)) {
		pthread_mutex_unlock(&stk_lock);
		return NULL;
	}
	stk_capture(ts, n, timeout_ms);
	pthread_mutex_unlock(&stk_lock);
	text = stk_format(ts, n, timeout_ms);
	free(ts);
	return text;
}
