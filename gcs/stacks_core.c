/* The stack capture shared by the shim and the GCS (stacks_core.h). */
#define UNW_LOCAL_ONLY
#include "gcs/stacks_core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libunwind.h>

/* /proc/<pid>/stat flags: the kernel's PF_IO_WORKER (io_uring's iou-wrk/iou-sqp threads). */
#define PF_IO_WORKER 0x00000010

/* ---- the slots and the handler ------------------------------------------------------ */

/*
 * A slot's word is (generation << 2) | phase. The signal carries the slot
 * index and the generation; the handler writes only after moving its exact
 * (generation, ARMED) to CLAIMED itself, so a signal that arrives after the
 * capture gave up on it (and set the slot IDLE) writes nothing. Static
 * storage: a late handler never writes into freed memory.
 */
enum { SLOT_IDLE, SLOT_ARMED, SLOT_CLAIMED, SLOT_DONE };
#define SLOT_IDX_BITS 8
#define SLOT_GEN_BITS 22
_Static_assert(STACKS_CORE_SLOTS == 1 << SLOT_IDX_BITS, "a slot index fills its bits");
_Static_assert(SLOT_GEN_BITS + SLOT_IDX_BITS < 31, "the signal value is a positive int");

struct slot {
	_Atomic uint32_t word;
	int n;
	uintptr_t ip[STACKS_CORE_FRAMES];
};

static struct slot slots[STACKS_CORE_SLOTS];
static sem_t answered; /* posted by each handler that finished */
static uint32_t generation;
static int own_signal;
static pid_t own_pid;
static uid_t own_uid;
static pthread_mutex_t capture_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t slot_word(uint32_t gen, uint32_t phase)
{
	return gen << 2 | phase;
}

/*
 * Walks the interrupted context: unw_init_local2 with UNW_INIT_SIGNAL_FRAME
 * starts at the instruction the signal interrupted, so the handler's own
 * frames are not in the trace. libunwind documents unw_init_local, unw_step
 * and unw_get_reg as safe in a signal handler for local unwinding; they do
 * not malloc (their caches are mmap'ed).
 */
static int walk(void *uc, uintptr_t *ip, int max)
{
	unw_cursor_t cur;
	int n = 0;

	if (unw_init_local2(&cur, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) < 0)
		return 0;
	do {
		unw_word_t w = 0;

		if (unw_get_reg(&cur, UNW_REG_IP, &w) < 0 || !w)
			break;
		ip[n++] = w;
	} while (n < max && unw_step(&cur) > 0);
	return n;
}

/*
 * Async-signal-safe: atomics, libunwind's local walk and sem_post. Names are
 * not looked up here: that opens and maps ELF files (the shim's vCPU filter
 * forbids openat) and may take locks the interrupted code holds.
 */
static void handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	uint32_t v, gen, expect;
	struct slot *s;

	(void)sig;
	if (si->si_code != SI_QUEUE || si->si_pid != own_pid)
		goto out; /* not ours: someone else's sigqueue */
	v = (uint32_t)si->si_value.sival_int;
	gen = v >> SLOT_IDX_BITS;
	s = &slots[v & (STACKS_CORE_SLOTS - 1)];
	expect = slot_word(gen, SLOT_ARMED);
	if (!atomic_compare_exchange_strong(&s->word, &expect, slot_word(gen, SLOT_CLAIMED)))
		goto out; /* the capture gave up on us, or a stale signal */
	s->n = walk(uc, s->ip, STACKS_CORE_FRAMES);
	atomic_store(&s->word, slot_word(gen, SLOT_DONE));
	sem_post(&answered);
out:
	errno = saved_errno;
}

int stacks_core_init(int signo)
{
	struct sigaction sa = {.sa_sigaction = handler, .sa_flags = SA_SIGINFO | SA_RESTART};
	unw_context_t ctx;
	uintptr_t ip[4];

	if (own_signal)
		return own_signal == signo ? 0 : -EBUSY;
	if (sem_init(&answered, 0, 0) < 0)
		return -errno;
	sigemptyset(&sa.sa_mask);
	if (sigaction(signo, &sa, NULL) < 0) {
		int err = -errno;

		sem_destroy(&answered);
		return err;
	}
	own_pid = getpid();
	own_uid = getuid();
	/* libunwind sets itself up on first use: do it here, not in a handler. */
	if (unw_getcontext(&ctx) == 0)
		(void)walk(&ctx, ip, 4);
	own_signal = signo;
	return 0;
}

/* ---- the threads -------------------------------------------------------------------- */

/* Name, state and kernel flags from /proc/self/task/<tid>/stat. */
static int read_task(struct stacks_core_thread *t, unsigned long *flags)
{
	char path[64], buf[512], *l, *r;
	size_t len;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", t->tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* "tid (comm) S ppid pgrp session tty tpgid flags ...": comm may hold spaces and ')'. */
	l = strchr(buf, '(');
	r = strrchr(buf, ')');
	if (!l || !r || r < l)
		return -EIO;
	len = r - l - 1;
	if (len >= sizeof(t->name))
		len = sizeof(t->name) - 1;
	memcpy(t->name, l + 1, len);
	t->name[len] = '\0';
	if (sscanf(r + 1, " %c %*d %*d %*d %*d %*d %lu", &t->state, flags) != 2)
		return -EIO;
	return 0;
}

static int list_threads(struct stacks_core_thread **out, int *count)
{
	DIR *d = opendir("/proc/self/task");
	struct stacks_core_thread *ts;
	struct dirent *e;
	int n = 0, cap = 16;

	if (!d)
		return -errno;
	ts = calloc(cap, sizeof(*ts));
	if (!ts) {
		closedir(d);
		return -ENOMEM;
	}
	while ((e = readdir(d))) {
		unsigned long flags = 0;
		int tid = atoi(e->d_name);

		if (tid <= 0)
			continue;
		if (n == cap) {
			void *p = realloc(ts, 2 * cap * sizeof(*ts));

			if (!p)
				break; /* report what we have */
			ts = p;
			cap *= 2;
		}
		memset(&ts[n], 0, sizeof(ts[n]));
		ts[n].tid = tid;
		if (read_task(&ts[n], &flags) == -ENOENT)
			continue; /* ended meanwhile */
		if (flags & PF_IO_WORKER)
			ts[n].result = STACKS_CORE_KERNEL_WORKER;
		n++;
	}
	closedir(d);
	*out = ts;
	*count = n;
	return 0;
}

/* ---- the capture -------------------------------------------------------------------- */

static int send_request(int tid, uint32_t value)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = own_signal;
	si.si_code = SI_QUEUE;
	si.si_pid = own_pid;
	si.si_uid = own_uid;
	si.si_value.sival_int = (int)value;
	if (syscall(SYS_rt_tgsigqueueinfo, own_pid, tid, own_signal, &si) < 0)
		return -errno;
	return 0;
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Waits until no slot in use[] is in `phase` any more, or until the deadline. */
static void wait_phase(const int *use, int n, uint32_t gen, uint32_t phase, int timeout_ms)
{
	struct timespec deadline;

	deadline_in(&deadline, timeout_ms);
	for (;;) {
		bool pending = false;

		for (int i = 0; i < n && !pending; i++)
			pending = use[i] >= 0 &&
				  atomic_load(&slots[use[i]].word) == slot_word(gen, phase);
		if (!pending)
			return;
		/* Any post wakes us to recheck (a stale one from a late handler too). */
		if (sem_clockwait(&answered, CLOCK_MONOTONIC, &deadline) < 0 && errno == ETIMEDOUT)
			return;
	}
}

/*
 * A slot nobody waits for: IDLE, or DONE by a handler of an earlier
 * generation that came too late. One still CLAIMED (a handler walking) is
 * left alone until it finishes.
 */
static int slot_take(uint32_t gen, int *next)
{
	for (; *next < STACKS_CORE_SLOTS; (*next)++) {
		uint32_t w = atomic_load(&slots[*next].word);

		if ((w & 3) == SLOT_IDLE || ((w & 3) == SLOT_DONE && w >> 2 != gen))
			return (*next)++;
	}
	return -1;
}

static void capture_locked(struct stacks_core_thread *ts, int n, int *use, int timeout_ms)
{
	uint32_t gen;
	int next = 0;

	generation = generation % ((1u << SLOT_GEN_BITS) - 1) + 1;
	gen = generation;
	while (sem_trywait(&answered) == 0)
		; /* posts of earlier, late handlers */
	for (int i = 0; i < n; i++) {
		struct stacks_core_thread *t = &ts[i];
		int idx, ret;

		use[i] = -1;
		if (t->result != STACKS_CORE_OK)
			continue;
		idx = slot_take(gen, &next);
		if (idx < 0) {
			t->result = STACKS_CORE_TOO_MANY;
			continue;
		}
		slots[idx].n = 0;
		atomic_store(&slots[idx].word, slot_word(gen, SLOT_ARMED));
		use[i] = idx;
		ret = send_request(t->tid, (uint32_t)idx | gen << SLOT_IDX_BITS);
		if (ret) {
			atomic_store(&slots[idx].word, SLOT_IDLE);
			use[i] = -1;
			t->result = ret == -ESRCH ? STACKS_CORE_GONE : STACKS_CORE_SEND_FAILED;
			t->err = -ret;
		}
	}
	wait_phase(use, n, gen, SLOT_ARMED, timeout_ms);
	/* Give up on the silent ones: a late signal then finds nothing to claim. */
	for (int i = 0; i < n; i++) {
		uint32_t expect = slot_word(gen, SLOT_ARMED);

		if (use[i] >= 0 &&
		    atomic_compare_exchange_strong(&slots[use[i]].word, &expect, SLOT_IDLE)) {
			ts[i].result = STACKS_CORE_NO_ANSWER;
			use[i] = -1;
		}
	}
	/* Handlers already walking get one more bound. */
	wait_phase(use, n, gen, SLOT_CLAIMED, timeout_ms);
	for (int i = 0; i < n; i++) {
		struct slot *s;

		if (use[i] < 0)
			continue;
		s = &slots[use[i]];
		if (atomic_load(&s->word) != slot_word(gen, SLOT_DONE)) {
			ts[i].result = STACKS_CORE_STUCK; /* its slot is reused once it finishes */
			continue;
		}
		ts[i].nframes = s->n;
		memcpy(ts[i].ip, s->ip, s->n * sizeof(s->ip[0]));
		atomic_store(&s->word, SLOT_IDLE);
	}
}

int stacks_core_capture(int timeout_ms, struct stacks_core_thread **threads, int *n, int *pid)
{
	struct stacks_core_thread *ts = NULL;
	int count = 0, ret, *use;

	*threads = NULL;
	*n = 0;
	if (!own_signal)
		return -EINVAL;
	pthread_mutex_lock(&capture_lock);
	own_pid = getpid(); /* a forked child captures its own threads */
	*pid = own_pid;
	ret = list_threads(&ts, &count);
	if (ret)
		goto out;
	use = malloc((count ? count : 1) * sizeof(*use));
	if (!use) {
		for (int i = 0; i < count; i++)
			if (ts[i].result == STACKS_CORE_OK)
				ts[i].result = STACKS_CORE_TOO_MANY;
	} else {
		capture_locked(ts, count, use, timeout_ms);
		free(use);
	}
	*threads = ts;
	*n = count;
out:
	pthread_mutex_unlock(&capture_lock);
	return ret;
}
