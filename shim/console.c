/*
 * Console line watcher: spots kernel panics and power-off in the guest's
 * output. Console sink: where the bytes go, capped for files.
 */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/vm.h"
#include "vmm/host_open.h"

static enum console_event console_classify(struct console_watch *w)
{
	const char *p;

	w->line[w->len] = '\0';
	p = strstr(w->line, "Kernel panic - not syncing");
	if (p) {
		/* Keep the reason for the error message, without the "---[ end" decoration. */
		strncpy(w->panic_msg, p, sizeof(w->panic_msg) - 1);
		w->panic_msg[sizeof(w->panic_msg) - 1] = '\0';
		for (char *q = w->panic_msg; *q; q++)
			if (*q == '\r' || *q == ']')
				*q = '\0';
		return strstr(w->line, "---[ end Kernel panic") ? CONSOLE_EV_PANIC_END
								: CONSOLE_EV_PANIC_BEGIN;
	}
	if (strstr(w->line, "reboot: Power down") || strstr(w->line, "reboot: System halted"))
		return CONSOLE_EV_POWER_OFF;
	return CONSOLE_EV_NONE;
}

enum console_event console_watch_byte(struct console_watch *w, uint8_t c)
{
	enum console_event ev = CONSOLE_EV_NONE;

	if (c == '\n') {
		if (!w->truncated)
			ev = console_classify(w);
		w->len = 0;
		w->truncated = false;
		return ev;
	}
	if (w->len < sizeof(w->line) - 1)
		w->line[w->len++] = (char)c;
	else
		w->truncated = true; /* over-long lines are never fatal markers */
	return ev;
}

void console_watch_feed(struct console_watch *w, struct vm *vm, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		switch (console_watch_byte(w, buf[i])) {
		case CONSOLE_EV_PANIC_BEGIN:
			w->panic_seen = true;
			break;
		case CONSOLE_EV_PANIC_END:
			w->panic_seen = true;
			vm_request_exit(vm, VM_EXIT_PANIC);
			break;
		case CONSOLE_EV_POWER_OFF:
			/*
			 * The kernel prints this just before it powers off; a guest
			 * using ACPI does so with an S5 write right after, which ends
			 * the VM (vmm/acpi_pm.c). Ending it here would stop the vCPU
			 * before that write.
			 */
			if (!vm_acpi_pm_used(vm))
				vm_request_exit(vm, VM_EXIT_POWEROFF);
			break;
		default:
			break;
		}
	}
}

/* ---- the sink ------------------------------------------------------------------------ */

void console_sink_fd(struct console_sink *s, int fd)
{
	*s = (struct console_sink){.fd = fd};
}

int console_sink_open(struct console_sink *s, const char *path)
{
	struct stat st;
	/* Through the opener once the sandbox is up (vmm/host_open.h). */
	int fd = host_open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NOCTTY, 0644);

	console_sink_fd(s, -1);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 ||
	    !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
		close(fd);
		return -EINVAL;
	}
	s->fd = fd;
	s->own = true;
	s->cap = S_ISREG(st.st_mode) ? CONSOLE_FILE_CAP : 0;
	return 0;
}

void console_sink_write(struct console_sink *s, const uint8_t *buf, size_t len)
{
	static const char note[] = "\n[uvm-shim: console output past the 64 MiB cap dropped]\n";
	bool capped = false;

	if (s->fd < 0 || s->dropped)
		return;
	if (s->cap && s->written + len > s->cap) {
		len = s->cap - s->written;
		capped = true;
	}
	while (len) {
		ssize_t n = write(s->fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			s->dropped = true; /* the reader went away or the disk is full: the guest goes on */
			return;
		}
		buf += n;
		len -= n;
		s->written += n;
	}
	if (capped) {
		s->dropped = true;
		if (write(s->fd, note, sizeof(note) - 1) < 0) {
			/* nothing more to do */
		}
	}
}

void console_sink_close(struct console_sink *s)
{
	if (s->own && s->fd >= 0)
		close(s->fd);
	console_sink_fd(s, -1);
}
