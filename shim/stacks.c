/*
 * Stacks of the shim's own threads (stacks.h): a real-time signal per thread,
 * a libunwind walk inside its handler, symbols resolved afterwards.
 */
#define UNW_LOCAL_ONLY
#include "shim/stacks.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <libunwind.h>

#include "vmm/log.h"

#define TAG "stacks"

/* /proc/<pid>/stat flags: the kernel's PF_IO_WORKER (io_uring's iou-wrk/iou-sqp threads). */
#define PF_IO_WORKER 0x00000010

/* ---- the handler and its slots ---------------------------------------------------- */

/*
 * One slot per thread being captured, in static storage so that a handler
 * running late (its thread had the signal blocked, then unblocked it) never
 * writes into freed memory. A slot's state word is (generation << 2) | phase;
 * the signal carries the slot index and the generation, and the handler
 * writes only after moving its exact (generation, ARMED) to CLAIMED. The
 * capturing thread gives up on a slot by moving (generation, ARMED) to IDLE,
 * so a late handler then finds nothing to claim.
 */
enum { SLOT_IDLE = 0, SLOT_ARMED = 1, SLOT_CLAIMED = 2, SLOT_DONE = 3 };
#define SLOT_GEN_BITS 22
#define SLOT_IDX_BITS 8
_Static_assert(STACKS_MAX_THREADS <= 1 << SLOT_IDX_BITS, "slot index must fit the signal value");
_Static_assert(SLOT_GEN_BITS + SLOT_IDX_BITS < 31, "the signal value is a positive int");

struct slot {
	_Atomic uint32_t state;
	int tid;
	int n;
	uintptr_t ip[STACKS_MAX_FRAMES];
};

static struct slot slots[STACKS_MAX_THREADS];
static sem_t answered; /* posted by each handler that finished */
static uint32_t generation;
static pid_t own_pid;
static uid_t own_uid;
static bool initialized;
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
 * not malloc (their caches are mmap'ed) and, under the vCPU filter, need
 * nothing beyond mmap/munmap/rt_sigprocmask/futex (tests/unit/test_stacks.c
 * runs this under both filters).
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
 * Async-signal-safe: atomics, libunwind's local walk (above) and sem_post.
 * Names are not looked up here: libunwind's unw_get_proc_name opens and maps
 * the ELF file, which the vCPU filter forbids (no openat) and which may take
 * locks the interrupted code holds.
 */
static void stacks_handler(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	uint32_t v, idx, gen, expect;
	struct slot *s;

	(void)sig;
	if (si->si_code != SI_QUEUE || si->si_pid != own_pid)
		goto out; /* not ours: someone else's sigqueue */
	v = (uint32_t)si->si_value.sival_int;
	idx = v & ((1u << SLOT_IDX_BITS) - 1);
	gen = v >> SLOT_IDX_BITS;
	if (idx >= STACKS_MAX_THREADS)
		goto out;
	s = &slots[idx];
	expect = slot_word(gen, SLOT_ARMED);
	if (!atomic_compare_exchange_strong(&s->state, &expect, slot_word(gen, SLOT_CLAIMED)))
		goto out; /* the capture gave up on us, or a stale signal */
	s->n = walk(uc, s->ip, STACKS_MAX_FRAMES);
	atomic_store(&s->state, slot_word(gen, SLOT_DONE));
	sem_post(&answered);
out:
	errno = saved_errno;
}

int stacks_signal(void)
{
	return SIGRTMIN + 4;
}

int stacks_init(void)
{
	struct sigaction sa = {.sa_sigaction = stacks_handler, .sa_flags = SA_SIGINFO | SA_RESTART};
	unw_context_t ctx;
	uintptr_t ip[4];

	if (initialized)
		return 0;
	if (sem_init(&answered, 0, 0) < 0)
		return -errno;
	sigemptyset(&sa.sa_mask);
	if (sigaction(stacks_signal(), &sa, NULL) < 0)
		return -errno;
	own_pid = getpid();
	own_uid = getuid();
	/* libunwind sets itself up on first use: do it here, unfiltered. */
	if (unw_getcontext(&ctx) == 0)
		(void)walk(&ctx, ip, 4);
	initialized = true;
	return 0;
}

/* ---- the threads ------------------------------------------------------------------ */

/* Name, state and kernel flags from /proc/self/task/<tid>/stat. */
static int read_task(int tid, struct stacks_thread *t, unsigned long *flags)
{
	char path[64], buf[512], *open_paren, *close_paren;
	unsigned long fl = 0;
	ssize_t n;
	size_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* "tid (comm) S ppid pgrp session tty tpgid flags ...": comm may hold spaces and ')'. */
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -EIO;
	len = close_paren - open_paren - 1;
	if (len >= sizeof(t->name))
		len = sizeof(t->name) - 1;
	memcpy(t->name, open_paren + 1, len);
	t->name[len] = '\0';
	if (sscanf(close_paren + 1, " %c %*d %*d %*d %*d %*d %lu", &t->state, &fl) != 2)
		return -EIO;
	*flags = fl;
	return 0;
}

static int list_threads(struct stacks *st)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int cap = 16;

	if (!d)
		return -errno;
	st->threads = calloc(cap, sizeof(*st->threads));
	if (!st->threads) {
		closedir(d);
		return -ENOMEM;
	}
	while ((e = readdir(d))) {
		struct stacks_thread *t;
		unsigned long flags = 0;
		int tid = atoi(e->d_name);

		if (tid <= 0)
			continue;
		if (st->nthreads == cap) {
			void *p = realloc(st->threads, 2 * cap * sizeof(*st->threads));

			if (!p)
				break; /* report what we have */
			st->threads = p;
			memset(st->threads + cap, 0, cap * sizeof(*st->threads));
			cap *= 2;
		}
		t = &st->threads[st->nthreads];
		t->tid = tid;
		if (read_task(tid, t, &flags) == -ENOENT)
			continue; /* ended meanwhile */
		if (flags & PF_IO_WORKER)
			t->status = STACKS_KERNEL_WORKER;
		st->nthreads++;
	}
	closedir(d);
	return 0;
}

/* ---- the capture ------------------------------------------------------------------ */

static int send_request(int tid, uint32_t value)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = stacks_signal();
	si.si_code = SI_QUEUE;
	si.si_pid = own_pid;
	si.si_uid = own_uid;
	si.si_value.sival_int = (int)value;
	if (syscall(SYS_rt_tgsigqueueinfo, own_pid, tid, stacks_signal(), &si) < 0)
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

/* Waits until every slot in use[] left `phase`, or the deadline. */
static void wait_phase(const int *use, int n, uint32_t gen, uint32_t phase,
		       const struct timespec *deadline)
{
	for (;;) {
		bool pending = false;

		for (int i = 0; i < n && !pending; i++)
			if (use[i] >= 0 &&
			    atomic_load(&slots[use[i]].state) == slot_word(gen, phase))
				pending = true;
		if (!pending)
			return;
		/* Any post wakes us to recheck (a stale one from a late handler too). */
		if (sem_clockwait(&answered, CLOCK_MONOTONIC, deadline) < 0 && errno == ETIMEDOUT)
			return;
	}
}

/* A free slot (IDLE); a slot left CLAIMED by a stuck handler is never reused. */
static int slot_get(int *next)
{
	for (; *next < STACKS_MAX_THREADS; (*next)++)
		if (atomic_load(&slots[*next].state) == SLOT_IDLE)
			return (*next)++;
	return -1;
}

static void capture_locked(struct stacks *st, int timeout_ms)
{
	int *use = malloc(st->nthreads * sizeof(*use));
	int next = 0;
	struct timespec deadline;
	uint32_t gen;

	if (!use) {
		for (int i = 0; i < st->nthreads; i++)
			if (st->threads[i].status == STACKS_OK)
				st->threads[i].status = STACKS_TOO_MANY;
		return;
	}
	generation = generation % ((1u << SLOT_GEN_BITS) - 1) + 1;
	gen = generation;
	while (sem_trywait(&answered) == 0)
		; /* posts of earlier, late handlers */
	for (int i = 0; i < st->nthreads; i++) {
		struct stacks_thread *t = &st->threads[i];
		int idx, ret;

		use[i] = -1;
		if (t->status != STACKS_OK)
			continue;
		idx = slot_get(&next);
		if (idx < 0) {
			t->status = STACKS_TOO_MANY;
			continue;
		}
		slots[idx].tid = t->tid;
		slots[idx].n = 0;
		atomic_store(&slots[idx].state, slot_word(gen, SLOT_ARMED));
		use[i] = idx;
		ret = send_request(t->tid, (uint32_t)idx | gen << SLOT_IDX_BITS);
		if (ret) {
			atomic_store(&slots[idx].state, SLOT_IDLE);
			use[i] = -1;
			t->status = ret == -ESRCH ? STACKS_GONE : STACKS_SEND_FAILED;
			t->err = -ret;
		}
	}
	deadline_in(&deadline, timeout_ms);
	wait_phase(use, st->nthreads, gen, SLOT_ARMED, &deadline);
	/* Give up on the silent ones; a handler already walking gets some more time. */
	for (int i = 0; i < st->nthreads; i++) {
		uint32_t expect = slot_word(gen, SLOT_ARMED);

		if (use[i] >= 0 &&
		    atomic_compare_exchange_strong(&slots[use[i]].state, &expect, SLOT_IDLE)) {
			st->threads[i].status = STACKS_NO_ANSWER;
			use[i] = -1;
		}
	}
	deadline_in(&deadline, timeout_ms);
	wait_phase(use, st->nthreads, gen, SLOT_CLAIMED, &deadline);
	for (int i = 0; i < st->nthreads; i++) {
		struct slot *s;

		if (use[i] < 0)
			continue;
		s = &slots[use[i]];
		if (atomic_load(&s->state) != slot_word(gen, SLOT_DONE)) {
			st->threads[i].status = STACKS_STUCK; /* the slot stays CLAIMED */
			continue;
		}
		st->threads[i].nframes = s->n;
		for (int f = 0; f < s->n; f++)
			st->threads[i].frames[f].ip = s->ip[f];
		atomic_store(&s->state, SLOT_IDLE);
	}
	free(use);
}

/* ---- symbols ------------------------------------------------------------------------ */

/*
 * Resolved on the capturing thread from each object's own ELF symbol table
 * (.symtab, else .dynsym): dladdr only sees exported symbols and would name
 * a static function after the exported one before it. The object and its
 * load bias come from dl_iterate_phdr; the file is mapped read-only.
 */
struct elf_obj {
	uintptr_t bias;
	char path[PATH_MAX];
	const uint8_t *map;
	size_t size;
	const Elf64_Sym *syms;
	size_t nsyms;
	const char *str;
	size_t strsz;
	bool failed;
};

struct find_obj {
	uintptr_t ip;
	uintptr_t bias;
	const char *name;
	bool found;
};

static int find_obj_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct find_obj *f = arg;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && f->ip >= lo && f->ip - lo < ph->p_memsz) {
			f->bias = info->dlpi_addr;
			f->name = info->dlpi_name;
			f->found = true;
			return 1;
		}
	}
	return 0;
}

static bool in_file(const struct elf_obj *o, uint64_t off, uint64_t len)
{
	return off <= o->size && len <= o->size - off;
}

/* Maps the file and finds its symbol table; o->failed when there is none. */
static void elf_open(struct elf_obj *o)
{
	const Elf64_Ehdr *eh;
	const Elf64_Shdr *sh;
	struct stat sb;
	int fd = open(o->path, O_RDONLY | O_CLOEXEC);

	o->failed = true;
	if (fd < 0)
		return;
	if (fstat(fd, &sb) < 0 || sb.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		close(fd);
		return;
	}
	o->map = mmap(NULL, sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (o->map == MAP_FAILED) {
		o->map = NULL;
		return;
	}
	o->size = sb.st_size;
	eh = (const Elf64_Ehdr *)o->map;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    !in_file(o, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr)))
		return;
	sh = (const Elf64_Shdr *)(o->map + eh->e_shoff);
	for (int pass = 0; pass < 2; pass++) {
		uint32_t want = pass ? SHT_DYNSYM : SHT_SYMTAB;

		for (int i = 0; i < eh->e_shnum; i++) {
			const Elf64_Shdr *s = &sh[i], *strs;

			if (s->sh_type != want || s->sh_link >= eh->e_shnum ||
			    !in_file(o, s->sh_offset, s->sh_size))
				continue;
			strs = &sh[s->sh_link];
			if (!in_file(o, strs->sh_offset, strs->sh_size) || !strs->sh_size)
				continue;
			o->syms = (const Elf64_Sym *)(o->map + s->sh_offset);
			o->nsyms = s->sh_size / sizeof(Elf64_Sym);
			o->str = (const char *)(o->map + strs->sh_offset);
			o->strsz = strs->sh_size;
			o->failed = false;
			return;
		}
	}
}

/* The function containing addr (a link-time address): name and start. */
static const char *elf_lookup(const struct elf_obj *o, uintptr_t addr, uintptr_t *start)
{
	const Elf64_Sym *best = NULL;

	for (size_t i = 0; i < o->nsyms; i++) {
		const Elf64_Sym *s = &o->syms[i];
		int type = ELF64_ST_TYPE(s->st_info);

		if ((type != STT_FUNC && type != STT_GNU_IFUNC) || !s->st_value ||
		    s->st_shndx == SHN_UNDEF || s->st_name >= o->strsz)
			continue;
		if (addr < s->st_value || addr - s->st_value >= (s->st_size ? s->st_size : 1))
			continue;
		if (!best || s->st_size < best->st_size)
			best = s;
	}
	if (!best)
		return NULL;
	*start = best->st_value;
	return o->str + best->st_name;
}

#define MAX_OBJS 32

static void symbolize(struct stacks *st)
{
	struct elf_obj *objs = calloc(MAX_OBJS, sizeof(*objs));
	int nobjs = 0;

	if (!objs)
		return;
	for (int t = 0; t < st->nthreads; t++) {
		for (int i = 0; i < st->threads[t].nframes; i++) {
			struct stacks_frame *fr = &st->threads[t].frames[i];
			/* A caller's ip is a return address: look up the call itself. */
			uintptr_t ip = i ? fr->ip - 1 : fr->ip, start;
			struct find_obj f = {.ip = ip};
			struct elf_obj *o = NULL;
			const char *path, *base, *name;

			dl_iterate_phdr(find_obj_cb, &f);
			if (!f.found)
				continue;
			/* The main program has no name in its link map. */
			path = f.name && f.name[0] ? f.name : "/proc/self/exe";
			base = f.name && f.name[0] ? f.name : program_invocation_name;
			snprintf(fr->object, sizeof(fr->object), "%s",
				 strrchr(base, '/') ? strrchr(base, '/') + 1 : base);
			for (int k = 0; k < nobjs && !o; k++)
				if (objs[k].bias == f.bias && !strcmp(objs[k].path, path))
					o = &objs[k];
			if (!o && nobjs < MAX_OBJS) {
				o = &objs[nobjs++];
				o->bias = f.bias;
				snprintf(o->path, sizeof(o->path), "%s", path);
				elf_open(o);
			}
			if (!o || o->failed)
				continue;
			name = elf_lookup(o, ip - f.bias, &start);
			if (!name)
				continue;
			snprintf(fr->function, sizeof(fr->function), "%s", name);
			fr->offset = fr->ip - (start + f.bias);
		}
	}
	for (int k = 0; k < nobjs; k++)
		if (objs[k].map)
			munmap((void *)objs[k].map, objs[k].size);
	free(objs);
}

/* ---- the API ------------------------------------------------------------------------ */

int stacks_capture(struct stacks **out, int timeout_ms)
{
	struct stacks *st;
	int ret;

	*out = NULL;
	if (!initialized)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->timeout_ms = timeout_ms;
	pthread_mutex_lock(&capture_lock);
	own_pid = getpid(); /* a forked child captures its own threads */
	st->pid = own_pid;
	ret = list_threads(st);
	if (!ret)
		capture_locked(st, timeout_ms);
	pthread_mutex_unlock(&capture_lock);
	if (ret) {
		stacks_free(st);
		return ret;
	}
	symbolize(st);
	*out = st;
	return 0;
}

void stacks_free(struct stacks *st)
{
	if (!st)
		return;
	free(st->threads);
	free(st);
}

const char *stacks_status_text(enum stacks_status s)
{
	switch (s) {
	case STACKS_OK:
		return "ok";
	case STACKS_NO_ANSWER:
		return "no answer within the bound (signal blocked?)";
	case STACKS_STUCK:
		return "its handler started but did not finish";
	case STACKS_GONE:
		return "ended before it could be asked";
	case STACKS_KERNEL_WORKER:
		return "io_uring kernel worker: no user stack";
	case STACKS_TOO_MANY:
		return "not captured: too many threads";
	case STACKS_SEND_FAILED:
		return "the signal could not be sent";
	}
	return "?";
}

char *stacks_format(const struct stacks *st)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	fprintf(f, "uvm-shim pid %d\n", st->pid);
	for (int t = 0; t < st->nthreads; t++) {
		const struct stacks_thread *th = &st->threads[t];

		fprintf(f, "thread %d (%s) %c", th->tid, th->name, th->state ? th->state : '?');
		if (th->status != STACKS_OK) {
			fprintf(f, ": %s", stacks_status_text(th->status));
			if (th->status == STACKS_NO_ANSWER)
				fprintf(f, " (%d ms)", st->timeout_ms);
			if (th->status == STACKS_SEND_FAILED)
				fprintf(f, ": %s", strerror(th->err));
			fputc('\n', f);
			continue;
		}
		fputs(":\n", f);
		for (int i = 0; i < th->nframes; i++) {
			const struct stacks_frame *fr = &th->frames[i];

			fprintf(f, "  #%d 0x%lx %s+0x%lx (%s)\n", i, (unsigned long)fr->ip,
				fr->function[0] ? fr->function : "?", (unsigned long)fr->offset,
				fr->object[0] ? fr->object : "?");
		}
	}
	fclose(f);
	return out;
}

cJSON *stacks_to_json(const struct stacks *st)
{
	cJSON *arr = cJSON_CreateArray();

	for (int t = 0; arr && t < st->nthreads; t++) {
		const struct stacks_thread *th = &st->threads[t];
		cJSON *o = cJSON_CreateObject(), *frames;
		char state[2] = {th->state ? th->state : '?', 0}, ip[24];

		cJSON_AddNumberToObject(o, "tid", th->tid);
		cJSON_AddStringToObject(o, "name", th->name);
		cJSON_AddStringToObject(o, "state", state);
		cJSON_AddBoolToObject(o, "answered", th->status == STACKS_OK);
		if (th->status != STACKS_OK)
			cJSON_AddStringToObject(o, "error", stacks_status_text(th->status));
		frames = cJSON_AddArrayToObject(o, "frames");
		for (int i = 0; i < th->nframes; i++) {
			const struct stacks_frame *fr = &th->frames[i];
			cJSON *j = cJSON_CreateObject();

			snprintf(ip, sizeof(ip), "0x%lx", (unsigned long)fr->ip);
			cJSON_AddStringToObject(j, "ip", ip);
			cJSON_AddStringToObject(j, "function", fr->function);
			cJSON_AddNumberToObject(j, "offset", (double)fr->offset);
			cJSON_AddStringToObject(j, "object", fr->object);
			cJSON_AddItemToArray(frames, j);
		}
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}
