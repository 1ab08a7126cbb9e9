/*
 * Stacks of the shim's own threads (stacks.h): the capture is
 * gcs/stacks_core.c (a real-time signal per thread, a libunwind walk inside
 * its handler); here the frames are named from the ELF files and shaped
 * into text and JSON.
 */
#include "shim/stacks.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int stacks_signal(void)
{
	return SIGRTMIN + 4;
}

int stacks_init(void)
{
	return stacks_core_init(stacks_signal());
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
	struct stacks_core_thread *ts;
	struct stacks *st;
	int n, ret;

	*out = NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->timeout_ms = timeout_ms;
	ret = stacks_core_capture(timeout_ms, &ts, &n, &st->pid);
	if (ret) {
		stacks_free(st);
		return ret;
	}
	st->threads = calloc(n ? n : 1, sizeof(*st->threads));
	if (!st->threads) {
		free(ts);
		stacks_free(st);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		struct stacks_thread *t = &st->threads[i];

		t->tid = ts[i].tid;
		memcpy(t->name, ts[i].name, sizeof(t->name));
		t->state = ts[i].state;
		t->status = (enum stacks_status)ts[i].result;
		t->err = ts[i].err;
		t->nframes = ts[i].nframes;
		for (int f = 0; f < ts[i].nframes; f++)
			t->frames[f].ip = ts[i].ip[f];
	}
	st->nthreads = n;
	free(ts);
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
